"""Every run counted once, no record ever dropped: the report, plot, eval, archive, resume and data
directory under mistaken and hostile input (issue 41). Each class is tried in several variants; the
tools run in this process (``util.cli``), but for the repack killed at random points."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
import textwrap
from contextlib import contextmanager

import numpy as np
import pytest
import yaml

from nmfdnn.archive import RUNS_FILE, pack, read_runs
from nmfdnn.errors import NmfdnnError
from nmfdnn.fileio import read_bytes_checked
from nmfdnn.tools.report import collect

from util import cli, one_line_error

TINY = ["dataset=synthetic", "hidden=[8]", "epochs=1", "solver.batch_size=300", "solver.ae_samples=300",
        "solver.ae_iters=1", "progress=false"]


@contextmanager
def deadline(seconds=20):
    """Fail instead of hanging (a reader blocked on a FIFO)."""
    def boom(*_):
        raise TimeoutError(f"blocked for {seconds} s")

    old = signal.signal(signal.SIGALRM, boom)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A study folder with two finished runs (seeds 0 and 1) under runs/, packed into runs.jsonl."""
    root = tmp_path_factory.mktemp("counted") / "study"
    for seed in (0, 1):
        code, _, err = cli(["train", *TINY, f"seed={seed}", f"hydra.run.dir={root / 'runs' / f'seed{seed}'}"])
        assert code == 0, err
    assert pack(root) == 2
    return root


@pytest.fixture
def copy(study, tmp_path):
    """A private copy of :func:`study` to damage."""
    return Path(shutil.copytree(study, tmp_path / "study"))


def n_runs(paths):
    groups, warnings = collect([str(p) for p in paths])
    return sum(len(g.runs) for g in groups), warnings


# -- 1. one run, one count -------------------------------------------------------------------------
@pytest.mark.parametrize("reach", ["twice", "slash", "study_and_folder", "folder_and_study", "archive_and_folder",
                                   "copied_folder"])
def test_a_run_reached_twice_is_counted_once(copy, tmp_path, reach):
    run = copy / "runs" / "seed0"
    paths = {"twice": [run, run], "slash": [run, f"{run}/"], "study_and_folder": [copy, run],
             "folder_and_study": [run, copy], "archive_and_folder": [copy / RUNS_FILE, run],
             "copied_folder": [run, shutil.copytree(run, tmp_path / "elsewhere")]}[reach]
    n, warnings = n_runs(paths)
    assert n == (2 if reach in ("study_and_folder", "folder_and_study", "archive_and_folder") else 1)  # seeds 0, 1
    assert any("duplicate record(s)" in w and "1 duplicate" in w for w in warnings), warnings


def test_a_duplicated_archive_line_is_counted_once_and_said(copy):
    shutil.rmtree(copy / "runs")
    lines = (copy / RUNS_FILE).read_text().splitlines()
    (copy / RUNS_FILE).write_text("\n".join(lines + lines[:1] + lines[:1]) + "\n")
    n, warnings = n_runs([copy])
    assert n == 2  # seeds 0 and 1, the copies of seed 0 dropped
    assert any("2 duplicate record(s)" in w for w in warnings), warnings
    code, out, err = cli(["report", copy])
    assert code == 0 and "duplicate" in out + err
    assert json.loads((copy / "report.json").read_text())[0]["n"] == 2


def test_two_seeds_are_two_runs(copy):
    n, warnings = n_runs([copy / "runs" / "seed0", copy / "runs" / "seed1"])
    assert n == 2 and not any("duplicate" in w for w in warnings)


# -- 2. the archive loses nothing --------------------------------------------------------------------
BAD_LINES = ['{"broken', '["a list"]', '{"name": "x", "metrics": {}, "config": {}}', '{"name": "", "config": {}}']


def test_a_repack_keeps_every_line_it_cannot_read(copy):
    with open(copy / RUNS_FILE, "a") as f:
        f.write("\n".join(BAD_LINES) + "\n")
    m = copy / "runs" / "seed1" / "metrics.json"  # a redone run: the repack must rewrite the archive
    data = json.loads(m.read_text())
    data["total_seconds"] += 1.0
    m.write_text(json.dumps(data))
    warnings = []
    assert pack(copy, warnings) == 1
    text = (copy / RUNS_FILE).read_text()
    for line in BAD_LINES:
        assert line + "\n" in text
    assert len([w for w in warnings if "kept in the file" in w]) == len(BAD_LINES)
    assert sorted(r["name"] for r in read_runs(copy / RUNS_FILE, [])) == ["seed0", "seed1"]
    code, out, err = cli(["report", copy])  # the report says so, and still reports the two runs
    assert code == 0 and "malformed run record" in out + err


def test_a_repack_killed_at_random_points_loses_no_record(copy):
    with open(copy / RUNS_FILE, "a") as f:
        f.write(BAD_LINES[0] + "\n")
    for i in range(20):  # more records, so that a write takes long enough to be cut
        d = copy / "runs" / f"extra{i:02d}"
        shutil.copytree(copy / "runs" / "seed0", d)
    names = {"seed0", "seed1", *(f"extra{i:02d}" for i in range(20))}
    script = textwrap.dedent(f"""
        import json, sys
        from pathlib import Path
        from nmfdnn.archive import pack
        study = Path({str(copy)!r})
        k = 0
        while True:  # each round changes one run, so that every pack rewrites the archive
            m = study / "runs" / f"extra{{k % 20:02d}}" / "metrics.json"
            d = json.loads(m.read_text()); d["total_seconds"] = k; m.write_text(json.dumps(d))
            pack(study)
            k += 1
            if k == 1:
                print("packing", flush=True)
    """)
    rnd = random.Random(0)
    for trial in range(4):
        p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "packing"
        try:
            p.wait(timeout=rnd.uniform(0.01, 0.4))
        except subprocess.TimeoutExpired:
            p.send_signal(signal.SIGKILL)
            p.wait()
        text = (copy / RUNS_FILE).read_text()
        assert BAD_LINES[0] + "\n" in text, trial
        packed = {r["name"] for r in read_runs(copy / RUNS_FILE, [])}
        assert packed == names, (trial, names - packed)


# -- 3. only regular files of bounded size are read --------------------------------------------------
@pytest.mark.parametrize("what", ["fifo_metrics", "fifo_archive", "fifo_config", "dev_zero_metrics",
                                  "dev_zero_config", "directory_metrics"])
def test_a_file_that_is_not_regular_is_refused_not_read(copy, what):
    run = copy / "runs" / "seed0"
    name = {"fifo_metrics": run / "metrics.json", "fifo_archive": copy / RUNS_FILE, "fifo_config": run / "config.yaml",
            "dev_zero_metrics": run / "metrics.json", "dev_zero_config": run / "config.yaml",
            "directory_metrics": run / "metrics.json"}[what]
    name.unlink()
    if what.startswith("fifo"):
        os.mkfifo(name)
    elif what.startswith("dev_zero"):
        name.symlink_to("/dev/zero")
    else:
        name.mkdir()
    with deadline():
        n, warnings = n_runs([copy] if what == "fifo_archive" else [run])
        code, out, err = cli(["report", copy])
    assert any("not a regular file" in w or "unreadable" in w for w in warnings) or what == "directory_metrics"
    assert code == 0 and "Traceback" not in err


def test_an_oversized_file_is_refused(tmp_path):
    f = tmp_path / "metrics.json"
    f.write_bytes(b" " * 2000)
    with pytest.raises(NmfdnnError, match="more than the 1000"):
        read_bytes_checked(f, limit=1000)
    assert read_bytes_checked(f, limit=2000) == b" " * 2000


def test_resume_refuses_a_checkpoint_that_is_a_fifo(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    os.mkfifo(d / "checkpoint.npz")
    with deadline():
        code, _, err = cli(["train", *TINY, "resume=true", f"hydra.run.dir={d}"])
    one_line_error(code, err, "not a regular file")


# -- 4. run folders validated field by field --------------------------------------------------------
def _edit_config(run, fn):
    p = run / "config.yaml"
    c = yaml.safe_load(p.read_text())
    c = fn(c)
    p.write_text(yaml.safe_dump(c))


DAMAGE = {
    "hidden_int": (lambda c: {**c, "hidden": 5}, "hidden"),
    "hidden_str_item": (lambda c: {**c, "hidden": ["wide"]}, "hidden[0]"),
    "dataset_list": (lambda c: {**c, "dataset": [1, 2]}, "dataset"),
    "dataset_unknown": (lambda c: {**c, "dataset": {**c["dataset"], "name": "imagenet"}}, "dataset.name"),
    "solver_value": (lambda c: {**c, "solver": {**c["solver"], "alpha": "much"}}, "solver.alpha"),
    "solver_unknown_key": (lambda c: {**c, "solver": {**c["solver"], "alpah": 1}}, "solver.alpah"),
    "dtype": (lambda c: {**c, "dtype": "float16"}, "dtype"),
    "config_list": (lambda _c: [1, 2], "not a mapping"),
    "no_solver": (lambda c: {k: v for k, v in c.items() if k != "solver"}, "solver"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_run_whose_config_does_not_fit_is_skipped_with_one_warning_naming_the_field(copy, damage):
    fn, field = DAMAGE[damage]
    shutil.rmtree(copy / "runs" / "seed1")
    (copy / RUNS_FILE).unlink()
    _edit_config(copy / "runs" / "seed0", fn)
    groups, warnings = collect([str(copy / "runs" / "seed0")])
    assert not groups
    assert len(warnings) == 1 and field in warnings[0] and "config.yaml" in warnings[0], warnings


@pytest.mark.parametrize("metrics", [{"test_error": float("nan")}, {"test_error": None}, {"test_error": "2.0"},
                                     {"val_error": float("inf")}, {"history": [{"epoch": 0}]},
                                     {"train_error": [1]}, {"status": "finished", "test_error": True}])
def test_a_run_with_bad_metrics_is_skipped_and_the_study_still_reports(copy, metrics):
    m = copy / "runs" / "seed0" / "metrics.json"
    data = {**json.loads(m.read_text()), **metrics}
    m.write_text(json.dumps(data).replace("NaN", "NaN"))
    (copy / RUNS_FILE).unlink()
    code, out, err = cli(["report", copy])
    assert code == 0, err
    assert "seed0" in out + err and "skipped" in out + err
    assert json.loads((copy / "report.json").read_text())[0]["n"] == 1


def test_one_damaged_config_does_not_stop_the_study(copy):
    (copy / RUNS_FILE).unlink()
    (copy / "runs" / "seed0" / "config.yaml").write_bytes(b"\xff\xfe\x00")
    code, out, err = cli(["report", copy])
    assert code == 0 and "not UTF-8" in out + err


# -- 5. --select and --name ------------------------------------------------------------------------
@pytest.mark.parametrize("args,needle", [(["--select", "hidden"], "KEY=VALUE"), (["--select", "=3"], "KEY=VALUE"),
                                         (["--select", "hidden=[8,"], "not YAML"),
                                         (["--select", "hidden=[9]"], "matches"),
                                         (["--name", "a/b"], "--name"), (["--name", "../up"], "--name"),
                                         (["--name", ".."], "--name"), (["--name", ""], "--name")])
def test_plot_refuses_a_malformed_select_or_name_in_one_line(study, tmp_path, args, needle):
    pytest.importorskip("matplotlib")
    code, _, err = cli(["plot", study, "--out", tmp_path / "fig", *args])
    one_line_error(code, err, needle)
    assert not (tmp_path / "up.png").exists()


# -- 6. overrides checked against the schema ----------------------------------------------------------
@pytest.mark.parametrize("override,needle", [
    ("+solver.alpah=1", "did you mean solver.alpha"), ("+solver.typo=10", "unknown key solver.typo"),
    ("+seed2=3", "did you mean seed"), ("+dataset.n_feature=3", "did you mean dataset.n_features"),
    ("seed=${seed}", "interpolation"), ("seed=${oc.env:NMFDNN_SURELY_UNSET}", "interpolation"),
    ("epochs=${nowhere}", "interpolation"), ("~seed", "required"), ("~hidden", "required"), ("~epochs", "required"),
])
def test_an_override_that_slips_past_hydra_is_refused_in_one_line(tmp_path, override, needle):
    d = tmp_path / "run"
    code, _, err = cli(["train", *TINY, override, f"hydra.run.dir={d}"])
    one_line_error(code, err, needle)
    assert not d.exists()


def test_a_run_started_with_a_plus_plus_override_resumes(tmp_path):
    d = tmp_path / "run"
    code, _, err = cli(["train", *TINY, "++solver.alpha=0.1", f"hydra.run.dir={d}"])
    assert code == 0, err
    code, _, err = cli(["resume", d])
    assert code == 0, err
    assert "already finished" in err


# -- 7. "finished" only from a complete, valid, matching record ---------------------------------------
@pytest.mark.parametrize("damage,needle", [("missing", "no config.yaml"), ("empty", "empty"),
                                           ("bad_yaml", "unreadable"), ("list", "not a mapping"),
                                           ("bad_bytes", "not UTF-8"), ("nan_error", "not finite")])
def test_resume_never_takes_a_damaged_run_as_finished(copy, damage, needle):
    run = copy / "runs" / "seed0"
    cfg = run / "config.yaml"
    if damage == "missing":
        cfg.unlink()
    elif damage == "empty":
        cfg.write_text("")
    elif damage == "bad_yaml":
        cfg.write_text("a: [\n")
    elif damage == "list":
        cfg.write_text("- 1\n")
    elif damage == "bad_bytes":
        cfg.write_bytes(b"\xff\xfe")
    else:
        m = run / "metrics.json"
        m.write_text(m.read_text().replace('"test_error": 0.0', '"test_error": NaN', 1))
        if "NaN" not in m.read_text():
            data = json.loads(m.read_text())
            data["test_error"] = float("nan")
            m.write_text(json.dumps(data))
    before = sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir())
    code, _, err = cli(["train", *TINY, "seed=0", "resume=true", f"hydra.run.dir={run}"])
    one_line_error(code, err, needle)
    assert sorted((p.name, p.stat().st_mtime_ns) for p in run.iterdir()) == before


@pytest.mark.parametrize("config", [{}, None, [], "text"])
def test_an_archive_record_without_a_config_is_not_taken_as_finished(copy, config):
    shutil.rmtree(copy / "runs")
    lines = [json.loads(x) for x in (copy / RUNS_FILE).read_text().splitlines()]
    lines[0]["config"] = config
    (copy / RUNS_FILE).write_text("".join(json.dumps(r) + "\n" for r in lines))
    run = copy / "runs" / lines[0]["name"]
    code, _, err = cli(["train", *TINY, f"seed={lines[0]['name'][-1]}", "resume=true", f"hydra.run.dir={run}"])
    assert code == 0, err
    assert "already finished" not in err and (run / "metrics.json").is_file()  # it ran


# -- 8. degenerate data ---------------------------------------------------------------------------------
def _idx(path, arr):
    import struct

    with open(path, "wb") as f:
        f.write(struct.pack(">BBBB", 0, 0, 8, arr.ndim))
        for d in arr.shape:
            f.write(struct.pack(">I", d))
        f.write(arr.astype(np.uint8).tobytes())


@pytest.mark.parametrize("images,needle", [((50, 4, 4), "every training input is zero"),
                                           ((50, 0, 0), "0 features"), ((50, 3, 0), "0 features")])
def test_degenerate_data_is_refused_and_leaves_nothing_behind(tmp_path, images, needle):
    _idx(tmp_path / "img", np.zeros(images))
    _idx(tmp_path / "lab", np.arange(images[0]) % 3)
    d = tmp_path / "run"
    code, _, err = cli(["train", "dataset=idx", f"dataset.train_images={tmp_path / 'img'}",
                        f"dataset.train_labels={tmp_path / 'lab'}", f"dataset.test_images={tmp_path / 'img'}",
                        f"dataset.test_labels={tmp_path / 'lab'}", "dataset.n_classes=3", "hidden=[4]",
                        "solver.batch_size=20", "solver.ae_samples=20", "progress=false", f"hydra.run.dir={d}"])
    one_line_error(code, err, needle)
    assert not d.exists()


# -- 9. the data directory -----------------------------------------------------------------------------
def _mnist_copy(mnist_data_dir, dest: Path) -> Path:
    from nmfdnn.data.mnist import fetch_mnist

    src = fetch_mnist(mnist_data_dir)
    (dest / "mnist").mkdir(parents=True)
    for name, path in src.items():
        (dest / "mnist" / name).symlink_to(path)
    return dest


@pytest.mark.slow
@pytest.mark.parametrize("how", ["config", "env"])
def test_a_relative_data_dir_works_and_is_recorded_resolved(mnist_data_dir, tmp_path, monkeypatch, how):
    _mnist_copy(mnist_data_dir, tmp_path / "data")
    if how == "env":
        monkeypatch.setenv("NMFDNN_DATA", "data")
    args = ["dataset=mnist", "hidden=[20]", "epochs=1", "dataset.train_subset=1500", "dataset.test_subset=300",
            "solver.batch_size=500", "solver.ae_samples=300", "solver.ae_iters=1", "progress=false",
            f"hydra.run.dir={tmp_path / 'run'}", *(["dataset.data_dir=data"] if how == "config" else [])]
    code, _, err = cli(["fetch", "mnist", *(["data_dir=data"] if how == "config" else [])], cwd=tmp_path)
    assert code == 0, err
    code, _, err = cli(["train", *args], cwd=tmp_path)
    assert code == 0, err
    if how == "config":
        saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
        assert saved["dataset"]["data_dir"] == str(tmp_path / "data")


def test_a_verified_read_only_data_set_is_used_as_it_is(mnist_data_dir, tmp_path, monkeypatch):
    from nmfdnn.data import fetch as fetch_mod
    from nmfdnn.data.mnist import fetch_mnist

    _mnist_copy(mnist_data_dir, tmp_path / "ro")

    def no_writes(path):
        raise NmfdnnError(f"data directory {path} is not writable")

    monkeypatch.setattr(fetch_mod, "ensure_dir", no_writes)  # as a read-only folder answers (root ignores modes)
    assert set(fetch_mnist(str(tmp_path / "ro"))) == {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}
    (tmp_path / "ro" / "mnist" / "t10k-labels-idx1-ubyte").unlink()  # now something must be written
    with pytest.raises(NmfdnnError, match="not writable"):
        fetch_mnist(str(tmp_path / "ro"))


@pytest.mark.parametrize("value", ["dataset.data_dir=", "dataset.data_dir=' '"])
def test_an_empty_data_dir_is_refused(tmp_path, value):
    d = tmp_path / "run"
    code, _, err = cli(["train", *TINY, value, f"hydra.run.dir={d}"])
    one_line_error(code, err, "data_dir is empty")


# -- 10. every tool takes what the documented options produce -------------------------------------------
@pytest.mark.parametrize("off", ["eval_train", "save_model", "checkpoint", "progress"])
def test_every_tool_accepts_a_run_with_a_boolean_option_off(tmp_path, off):
    pytest.importorskip("matplotlib")
    d = tmp_path / "study" / "runs" / "r"
    code, _, err = cli(["train", *TINY, f"{off}=false", f"hydra.run.dir={d}"])
    assert code == 0, err
    code, _, err = cli(["report", tmp_path / "study"])
    assert code == 0, err
    code, _, err = cli(["plot", tmp_path / "study"])
    assert code == 0, err
    code, _, err = cli(["eval", d])
    if off == "save_model":
        one_line_error(code, err, "no trained model")
    else:
        assert code == 0, err
