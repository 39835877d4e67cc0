"""Launcher and cluster failures are one line (issue 39): a SLURM launcher that cannot submit (no
controller, no sbatch, a rejected partition) is refused with exit 2 and the remedy; a sweep whose job
fails in a worker process, or whose worker dies, exits 1; ``--debug`` shows the traceback. The SLURM
commands are stand-ins (scripts named sbatch and srun on the PATH answering as SLURM does), so these
run on any machine; a real cluster is tests/test_slurm.py's."""

import os
import signal
import subprocess
import sys
import time

import pytest

from util import cli, env_without_full_error, nmfdnn_command, one_line_error

TINY = ["dataset=synthetic", "hidden=[8]", "epochs=1", "solver.batch_size=300", "solver.ae_samples=300",
        "solver.ae_iters=1", "progress=false"]

NO_CONTROLLER = ("sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
                 "sbatch: error: fetch_config: DNS SRV lookup failed\n"
                 "sbatch: fatal: Could not establish a configuration source")
BAD_PARTITION = "sbatch: error: Batch job submission failed: Invalid partition name specified"


def fake_slurm(bin_dir, sbatch_stderr):
    """``sbatch`` that fails as SLURM's does, and an ``srun`` (submitit looks for it first)."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "sbatch").write_text("#!/bin/sh\ncat >&2 <<'EOF'\n" + sbatch_stderr + "\nEOF\nexit 1\n")
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for name in ("sbatch", "srun"):
        (bin_dir / name).chmod(0o755)


@pytest.mark.parametrize("stderr,cause", [(NO_CONTROLLER, "sbatch: fatal: Could not establish a configuration source"),
                                          (BAD_PARTITION, "Invalid partition name specified")])
def test_a_refused_slurm_submission_is_one_line(tmp_path, monkeypatch, stderr, cause):
    fake_slurm(tmp_path / "bin", stderr)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    code, out, err = cli(["train", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=nope", *TINY, "seed=0,1",
                          f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    line = one_line_error(code, err, "SLURM refused the submission", cause, "make slurm-up", "SLURM_CONF")
    assert "sbatch: error" not in err.replace(line, "")  # sbatch's own lines are held back


def test_no_slurm_on_the_path_is_one_line(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    code, _, err = cli(["train", "-m", "hydra/launcher=slurm", *TINY, "seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}"])
    one_line_error(code, err, "no SLURM here", "make slurm-up")


def test_debug_shows_the_launchers_traceback(tmp_path, monkeypatch):
    fake_slurm(tmp_path / "bin", BAD_PARTITION)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(Exception, match="Invalid partition"):
        cli(["--debug", "train", "-m", "hydra/launcher=slurm", *TINY, "seed=0,1", f"hydra.sweep.dir={tmp_path / 's'}"])


def test_a_job_that_fails_in_a_parallel_worker_makes_the_sweep_fail(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    code, _, err = cli(["train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *TINY,
                        "dataset.n_train=200", "solver.ae_samples=100", "solver.batch_size=300,100", f"hydra.sweep.dir={tmp_path / 's'}"])
    one_line_error(code, err, "a job of the sweep failed", "larger than the training set", expect=1)
    assert (tmp_path / "s" / "1" / "metrics.json").is_file()  # the other job ran


def _children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                continue
    return out


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the worker through /proc")
def test_a_parallel_worker_that_dies_is_one_line(tmp_path):
    """A process test: a worker of the joblib launcher is killed with SIGKILL mid-job."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    p = subprocess.Popen(nmfdnn_command() + ["train", "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                                             *TINY, "epochs=100000", "eval_train=false", "seed=0,1",
                                             f"hydra.sweep.dir={tmp_path / 's'}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_without_full_error())
    try:
        worker, deadline = None, time.time() + 60
        while worker is None and time.time() < deadline:
            worker = next((c for c in _children(p.pid) if "LokyProcess" in _cmdline(c)), None)
            time.sleep(0.2)
        assert worker is not None, "no joblib worker started"
        time.sleep(1.0)  # let it take a job
        os.kill(worker, signal.SIGKILL)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            for c in _children(p.pid):
                os.kill(c, signal.SIGKILL)
    one_line_error(p.returncode, err, "a worker of the parallel launcher died", "resume=true", expect=1)


def test_train_help_is_hydras_help(monkeypatch):
    """``train --help`` is made from one composition; it prints what Hydra's own app help prints."""
    for extra in ([], ["dataset=cifar10", "solver=bp", "hidden=[30]"]):
        code, ours, _ = cli(["train", "--help", *extra])
        assert code == 0
        monkeypatch.setenv("NMFDNN_HYDRA_HELP", "1")
        code, hydras, _ = cli(["train", "--help", *extra])
        monkeypatch.delenv("NMFDNN_HYDRA_HELP")
        assert code == 0 and ours == hydras and "== Config groups" in ours


def test_train_help_with_a_bad_override_is_one_line():
    code, _, err = cli(["train", "--help", "dataset=nope"])
    one_line_error(code, err, "dataset")


def test_console_script_starts_without_the_heavy_modules():
    """``import nmfdnn.cli`` (every command's first step) loads neither scikit-learn nor matplotlib,
    MPI, Optuna or PyTorch; ``from nmfdnn import NMFNetClassifier`` still works."""
    code = ("import sys, nmfdnn.cli; heavy = [m for m in ('sklearn', 'matplotlib', 'mpi4py', 'optuna', 'torch') "
            "if m in sys.modules]; assert not heavy, heavy; from nmfdnn import NMFNetClassifier, load; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
