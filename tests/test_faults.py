"""Faults and hostile files: one writer per run directory, write failures that lose nothing, damaged
checkpoints and models, an unwritable run directory, killed sweeps. (Hostile CIFAR-10 pickles:
tests/test_more_data.py.)"""

import errno
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from nmfdnn.maint import kill_resume  # an operator tool (make kill-resume)
from util import compose_train, env_without_full_error, nmfdnn_command, run_nmfdnn
from nmfdnn import fileio
from nmfdnn.checkpoint import load_checkpoint
from nmfdnn.errors import NmfdnnError
from nmfdnn.fileio import run_lock
from nmfdnn.train import run


def sh(args, cwd=None, timeout=300):
    """A command run in this process (util.run_nmfdnn); the process tests below start real ones."""
    return run_nmfdnn(args, cwd=cwd, timeout=timeout)


def one_error_line(r):
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nmfdnn: error:")]
    assert len(lines) == 1, r.stderr
    return lines[0]


# -- one writer per run ---------------------------------------------------------------------------

def test_run_lock_admits_one_writer(tmp_path):
    with run_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(NmfdnnError, match=rf"{tmp_path} is being written by process {os.getpid()}"):
            with run_lock(tmp_path):
                pass
    assert not (tmp_path / ".lock").exists()
    with run_lock(tmp_path):  # released: the next writer gets it
        pass


@pytest.mark.slow
def test_second_process_is_refused_and_a_killed_writer_does_not_block(tmp_path):
    """Two `nmfdnn train ... hydra.run.dir=D resume=true`: one runs, the other exits 2 at once with
    one line; after SIGKILL of the runner (its lock file stays behind), `nmfdnn resume D` proceeds."""
    d = tmp_path / "run"
    args = ["train", "dataset=synthetic", "dataset.n_train=6000", "dataset.n_features=100", "hidden=[120,60]",
            "epochs=30", "solver.batch_size=300", "solver.ae_samples=600", "progress=false", "resume=true",
            f"hydra.run.dir={d}"]
    first = subprocess.Popen(nmfdnn_command() + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             env=env_without_full_error())
    try:
        deadline = time.time() + 60
        while not (d / "checkpoint.npz").exists() and time.time() < deadline:
            time.sleep(0.05)
        assert first.poll() is None, "the first run ended before the test could race it"
        t0 = time.time()
        second = sh(args)
        assert second.returncode == 2 and time.time() - t0 < 30
        assert f"is being written by process {first.pid}" in one_error_line(second)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert (d / ".lock").exists()  # left behind by the killed process
    r = sh(["resume", str(d)], timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads((d / "metrics.json").read_text())["status"] == "finished"


def test_train_refuses_to_overwrite_a_run_without_resume(tmp_path, tiny_run):
    run(compose_train(tiny_run), tmp_path)
    before = (tmp_path / "metrics.json").read_bytes()
    with pytest.raises(NmfdnnError, match="already holds a run .*resume=true"):
        run(compose_train(tiny_run), tmp_path)
    assert (tmp_path / "metrics.json").read_bytes() == before


# -- write failures -------------------------------------------------------------------------------

def failing_replace(monkeypatch, name, code, after=0):
    """os.replace in nmfdnn.fileio fails with ``code`` for files called ``name`` after ``after`` successes."""
    real = os.replace
    seen = {"n": 0}

    def replace(src, dst):
        if Path(dst).name == name:
            seen["n"] += 1
            if seen["n"] > after:
                raise OSError(code, os.strerror(code), str(dst))
        return real(src, dst)

    monkeypatch.setattr(fileio.os, "replace", replace)


def test_full_disk_at_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch, small_nmf):
    cfg = compose_train(small_nmf)
    failing_replace(monkeypatch, "checkpoint.npz", errno.ENOSPC, after=2)  # pre-training, epoch 1, then full
    with pytest.raises(NmfdnnError, match=rf"cannot write {tmp_path}/checkpoint.npz: No space left on device"):
        run(cfg, tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.npz").epoch == 1  # the last good one, intact
    assert not list(tmp_path.glob(".*.tmp")) and not (tmp_path / ".lock").exists()
    monkeypatch.undo()  # space again: the run continues from epoch 1
    metrics = run(compose_train(small_nmf + ["resume=true"]), tmp_path)
    assert metrics["status"] == "finished" and len(metrics["history"]) == 4


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_failed_metrics_write_loses_nothing(tmp_path, monkeypatch, tiny_run, code):
    failing_replace(monkeypatch, "metrics.json", code)
    with pytest.raises(NmfdnnError, match=rf"cannot write {tmp_path}/metrics.json: {os.strerror(code)}"):
        run(compose_train(tiny_run), tmp_path)
    assert load_checkpoint(tmp_path / "checkpoint.npz").epoch == 2  # everything up to the last epoch kept
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.undo()
    assert run(compose_train(tiny_run + ["resume=true"]), tmp_path)["status"] == "finished"


def test_failed_report_write_keeps_the_previous_report(tmp_path, monkeypatch, tiny_run):
    from nmfdnn.tools.report import report

    run(compose_train(tiny_run), tmp_path / "a")
    report([str(tmp_path)])
    before = (tmp_path / "report.md").read_bytes()
    failing_replace(monkeypatch, "report.md", errno.ENOSPC)
    with pytest.raises(NmfdnnError, match="report.md: No space left on device"):
        report([str(tmp_path)])
    assert (tmp_path / "report.md").read_bytes() == before and not list(tmp_path.glob(".*.tmp"))


def _mount_tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    if not shutil.which("mount"):
        pytest.skip("no mount command")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or 'not root'})")


@pytest.mark.slow
def test_a_real_full_disk_through_the_console_script(tmp_path):
    """A 128 KiB tmpfs: Hydra's files and the log fit, the weights of [600] on 60 features do not."""
    mnt = tmp_path / "small"
    _mount_tmpfs(mnt, "size=128k")
    try:
        r = sh(["train", "dataset=synthetic", "dataset.n_features=60", "dataset.n_train=1300", "hidden=[600]", "epochs=2",
                "solver.batch_size=650", "solver.ae_samples=300", "solver.ae_iters=1", "progress=false",
                f"hydra.run.dir={mnt / 'run'}"], cwd=tmp_path)
        assert r.returncode == 2
        line = one_error_line(r)
        assert "No space left on device" in line and str(mnt / "run") in line
        assert not list((mnt / "run").glob(".*.tmp"))
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_unwritable_run_dir_is_refused_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    r = sh(["train", "dataset=synthetic", "hidden=[8]", "solver.batch_size=300", "solver.ae_samples=300",
            f"hydra.run.dir={blocker / 'run'}"], cwd=tmp_path)
    assert r.returncode == 2 and "is not a directory" in one_error_line(r)


@pytest.mark.slow
def test_read_only_run_dir_is_refused_before_training(tmp_path):
    mnt = tmp_path / "ro"
    _mount_tmpfs(mnt, "ro,size=64k")
    try:
        t0 = time.time()
        r = sh(["train", "dataset=synthetic", "hidden=[8]", "solver.batch_size=300", "solver.ae_samples=300",
                f"hydra.run.dir={mnt / 'run'}"], cwd=tmp_path)
        assert r.returncode == 2 and "read-only file system" in one_error_line(r) and time.time() - t0 < 60
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


# -- damaged files --------------------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "garbage", "no meta"])
def test_damaged_checkpoint_is_an_error_not_a_restart(tmp_path, small_nmf, damage):
    cfg = compose_train(small_nmf + ["epochs=1"])
    run(cfg, tmp_path)
    ck = tmp_path / "checkpoint.npz"
    (tmp_path / "metrics.json").unlink()  # as if killed before the end
    if damage == "truncated":
        ck.write_bytes(ck.read_bytes()[: ck.stat().st_size // 2])
    elif damage == "garbage":
        ck.write_bytes(b"\x00" * 100)
    else:
        np.savez(ck, W1=np.zeros(3))
    before = ck.read_bytes()
    with pytest.raises(NmfdnnError, match=rf"{ck} is damaged: .*; remove it to start over"):
        run(compose_train(small_nmf + ["epochs=1", "resume=true"]), tmp_path)
    assert ck.read_bytes() == before  # nothing overwritten


def test_damaged_model_through_eval_and_resume_commands(tmp_path, tiny_run):
    d = tmp_path / "run"
    assert sh(["train", *tiny_run, f"hydra.run.dir={d}"]).returncode == 0
    (d / "model.npz").write_bytes(b"PK\x03\x04 not really a zip")
    r = sh(["eval", str(d)])
    assert r.returncode == 2 and f"{d / 'model.npz'} is damaged" in one_error_line(r)
    (d / "metrics.json").unlink()
    (d / "checkpoint.npz").write_bytes(b"junk")
    r = sh(["resume", str(d)])
    assert r.returncode == 2 and "checkpoint.npz is damaged" in one_error_line(r) and "remove it" in r.stderr


# -- killed sweeps --------------------------------------------------------------------------------

@pytest.mark.slow
def test_killed_sweep_resumes_to_identical_runs():
    """SIGKILL of the `nmfdnn train -m` process itself at a random moment, then the same command:
    every run finishes, identical to an uninterrupted sweep (`make kill-resume` does three)."""
    (result,) = kill_resume.run_sweep_trials("nmf", 1, seed=3)
    assert result["identical"], result
