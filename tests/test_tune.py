"""``nmfdnn tune``: the search space, trials as run folders, storages, local workers, pruning, a
SIGKILLed study resumed (no trial lost, none counted twice), and the retired optuna sweeper."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from util import env_without_full_error, nmfdnn_command

optuna = pytest.importorskip("optuna")

BASE = ["dataset=synthetic", "hidden=[20]", "epochs=2", "solver.batch_size=300", "solver.ae_samples=300",
        "dataset.val_size=200", "backend.threads=1"]


def write_space(path: Path, overrides=BASE, trials=3, space=None, extra="") -> Path:
    space = space or {"solver.alpha": "{float: [1.0e-6, 1.0e-1], log: true}", "solver.lsq_iters": "{choice: [1, 2]}",
                      "solver.omega": "{float: [0.5, 1.0]}"}
    lines = [f"study: s\ntrials: {trials}\nsampler: {{seed: 1, startup_trials: 2}}\n{extra}overrides:"]
    lines += [f"  - '{o}'" for o in overrides]
    lines += ["space:"] + [f"  {k}: {v}" for k, v in space.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def tune(args, cwd, timeout=300):
    return subprocess.run(nmfdnn_command() + ["tune", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env_without_full_error())


def trials_of(study: Path, storage=None, name="s"):
    from nmfdnn.tools.tune import open_storage, storage_url

    return optuna.load_study(study_name=name, storage=open_storage(storage_url(storage, study))).get_trials()


def check_folders(study: Path, trials):
    """Every trial's run folder: its metrics name its number and parameters, its value is the run's
    validation error."""
    for t in trials:
        m = json.loads((study / "runs" / f"trial-{t.number:04d}" / "metrics.json").read_text())
        assert m["trial"]["number"] == t.number and m["trial"]["params"] == t.params
        if t.state.name == "COMPLETE":
            assert m["status"] == "finished" and m["val_error"] == t.value


def test_trials_are_run_folders_that_report_eval_plot_and_resume_work_on(tmp_path):
    space = write_space(tmp_path / "space.yaml")
    r = tune([space, "--dir", tmp_path / "study"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    study = tmp_path / "study"
    trials = trials_of(study)
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3 and (study / "optuna.db").is_file()
    check_folders(study, trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 3
    assert "best trial" in r.stdout and len(r.stdout.strip().splitlines()) == 1
    assert "Warning" not in r.stderr  # Optuna >= 4 on SQLAlchemy 2: nothing deprecated
    summary = json.loads((study / "study.json").read_text())
    assert summary["counts"]["complete"] == 3 and summary["best"]["val_error"] == min(t.value for t in trials)
    run = study / "runs" / "trial-0001"
    assert "epoch   2" in (run / "train.log").read_text()
    r = subprocess.run(nmfdnn_command() + ["report", str(study)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(json.loads((study / "report.json").read_text())) == 3  # one group per trial
    for cmd in (["eval", run], ["resume", run, "progress=false"], ["plot", run, "--out", tmp_path / "fig"]):
        r = subprocess.run(nmfdnn_command() + list(map(str, cmd)), capture_output=True, text=True, timeout=120,
                           env=env_without_full_error())
        assert r.returncode == 0, (cmd, r.stderr[-1500:])
    assert (run / "eval.json").is_file() and list((tmp_path / "fig").glob("*.png"))
    # a second command goes on to the new total; the same space and overrides only
    r = tune([space, "--dir", study, "--trials", 4], tmp_path)
    assert r.returncode == 0 and len(trials_of(study)) == 4
    r = tune([space, "--dir", study, "--trials", 5, "epochs=3"], tmp_path)
    assert r.returncode == 2 and "another overrides" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("case, args, message", [
    ("no validation split", ["dataset.val_size=0"], "optimises the validation error"),
    ("a searched key set", ["solver.omega=0.7"], "searched by"),
    ("unknown key", ["solver.alpah=1"], "alpah"),
    ("bad storage", ["--storage", "nowhere"], "--storage"),
])
def test_refused_in_one_line_before_any_work(tmp_path, case, args, message):  # noqa: ARG001 (case: the id)
    space = write_space(tmp_path / "space.yaml")
    r = tune([space, "--dir", tmp_path / "study", *args], tmp_path)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "study" / "runs").exists()


@pytest.mark.parametrize("text, message", [
    ("space:\n  solver.alpha: {float: [1, 0]}\n", "low <= high"),
    ("space:\n  solver.alpha: {float: [0, 1], log: true}\n", "low > 0"),
    ("space:\n  solver.alpha: {uniform: [0, 1]}\n", "exactly one of"),
    ("space: {}\n", "'space' must map"),
    ("trails: 3\nspace:\n  solver.alpha: {float: [0, 1]}\n", "unknown key"),
    ("overrides: ['dataset.val_size=10']\nspace:\n  solver.alpha: {float: [-1.0, 0.0]}\n", "solver.alpha=-1.0"),
])
def test_bad_space_files_are_refused(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    r = tune([tmp_path / "bad.yaml", "--dir", tmp_path / "study", *BASE[:-2]], tmp_path)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_shipped_space_composes_and_lists_in_help(tmp_path):
    from nmfdnn.tools.tune import corners, load_space, param_overrides

    from nmfdnn.config import compose_config

    spec = load_space("nmf_optuna")
    assert set(spec["space"]) == {"solver.alpha", "solver.beta", "solver.lam", "solver.omega", "solver.lsq_iters",
                                  "solver.bias"} and spec["pruner"] == "none"
    for point in corners(spec["space"]):
        cfg = compose_config([*spec["overrides"], "hidden=[1000,500]", *param_overrides(point)])
        assert cfg.dataset.val_size == 10000
    r = subprocess.run(nmfdnn_command() + ["--help"], capture_output=True, text=True, timeout=60)
    assert "tune" in r.stdout
    r = tune(["--help"], tmp_path)
    assert r.returncode == 0 and "--workers" in r.stdout and "--pruner" in r.stdout


def test_pruned_trials_say_so_and_report_leaves_them_out(tmp_path):
    over = ["dataset=synthetic", "dataset.n_classes=6", "dataset.n_features=8", "epochs=3", "solver.batch_size=300",
            "solver.ae_samples=300", "dataset.val_size=200", "backend.threads=1"]
    space = write_space(tmp_path / "space.yaml", over, trials=8, extra="", space={
        "hidden": '{choice: ["[1]", "[2]", "[20]"]}', "solver.alpha": "{float: [1.0e-6, 1.0e-1], log: true}"})
    study = tmp_path / "study"
    r = tune([space, "--dir", study, "--pruner", "median"], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = trials_of(study)
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert pruned and len(trials) == 8
    check_folders(study, trials)
    for t in pruned:
        m = json.loads((study / "runs" / f"trial-{t.number:04d}" / "metrics.json").read_text())
        assert m["status"] == "pruned" and "median pruner" in m["error"]
        assert m["history"][-1]["epoch"] == max(t.intermediate_values) < 3
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert all(sorted(t.intermediate_values) == [0, 1, 2, 3] for t in complete)
    r = subprocess.run(nmfdnn_command() + ["report", str(study)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads((study / "report.json").read_text())
    assert sum(row["n"] for row in rows) == len(complete)  # the pruned trials are in no group
    # Hyperband runs as well (a new study folder)
    r = tune([space, "--dir", tmp_path / "hb", "--pruner", "hyperband", "--trials", 4], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]


@pytest.mark.parametrize("storage", [None, "journal"])
def test_local_workers_share_the_study(tmp_path, storage):
    space = write_space(tmp_path / "space.yaml", trials=4)
    study = tmp_path / "study"
    extra = ["--storage", storage] if storage else []
    r = tune([space, "--dir", study, "--workers", 2, *extra], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = trials_of(study, storage)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    check_folders(study, trials)
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == 4
    assert sorted(p.name for p in (study / "runs").iterdir()) == [f"trial-000{i}" for i in range(4)]
    assert (study / ("optuna.journal" if storage else "optuna.db")).is_file()


SLOW = ["dataset=synthetic", "dataset.n_train=2000", "dataset.n_features=30", "dataset.n_classes=4", "hidden=[40]",
        "epochs=40", "solver.batch_size=300", "solver.ae_samples=300", "dataset.val_size=300", "backend.threads=1"]


def test_a_sigkilled_study_resumes_with_no_trial_lost_and_none_counted_twice(tmp_path):
    space = write_space(tmp_path / "space.yaml", SLOW, trials=4)
    study = tmp_path / "study"
    cmd = nmfdnn_command() + ["tune", str(space), "--dir", str(study)]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         env=env_without_full_error())
    victim = study / "runs" / "trial-0001"
    deadline = time.time() + 120
    try:  # killed in trial 1's epochs, right after its first checkpoint (written whole: a rename)
        while time.time() < deadline and not (victim / "checkpoint.npz").exists():
            time.sleep(0.02)
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    assert (victim / "checkpoint.npz").exists() and not (victim / "metrics.json").exists()
    states = {t.number: t.state.name for t in trials_of(study)}
    assert states == {0: "COMPLETE", 1: "RUNNING"}
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env_without_full_error())
    assert r.returncode == 0, r.stderr[-2000:]
    assert "trial 1 lost its worker: resuming it" in r.stderr
    trials = trials_of(study)
    assert [(t.number, t.state.name) for t in trials] == [(i, "COMPLETE") for i in range(4)]
    check_folders(study, trials)
    m = json.loads((victim / "metrics.json").read_text())
    assert [row["epoch"] for row in m["history"]] == list(range(41))  # resumed from its checkpoint, once each
    assert sorted(trials[1].intermediate_values) == list(range(41))
    assert "resuming from" in (victim / "train.log").read_text()


def test_sigint_to_local_workers_checkpoints_and_the_rerun_finishes(tmp_path):
    """SIGINT to ``--workers 2``: forwarded once to each worker, which checkpoints and leaves its trial
    running in the storage (exit 130); the same command then resumes both and finishes the study."""
    space = write_space(tmp_path / "space.yaml", SLOW, trials=3)
    study = tmp_path / "study"
    cmd = nmfdnn_command() + ["tune", str(space), "--dir", str(study), "--workers", "2"]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                         env=env_without_full_error())
    first = [study / "runs" / f"trial-000{i}" / "checkpoint.npz" for i in (0, 1)]
    deadline = time.time() + 120
    while time.time() < deadline and not all(f.exists() for f in first):
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    running = [t.number for t in trials_of(study) if t.state.name == "RUNNING"]
    assert running and "interrupted" in err
    r = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env_without_full_error())
    assert r.returncode == 0, r.stderr[-2000:]
    trials = trials_of(study)
    assert [(t.number, t.state.name) for t in trials] == [(i, "COMPLETE") for i in range(3)]
    check_folders(study, trials)
    for n in running:
        m = json.loads((study / "runs" / f"trial-{n:04d}" / "metrics.json").read_text())
        assert [row["epoch"] for row in m["history"]] == list(range(41))


def test_a_trial_whose_worker_is_alive_is_not_taken_over(tmp_path):
    """A running trial whose lock is held (its worker is alive) is left to it: a second command only
    adds new trials."""
    import fcntl

    space = write_space(tmp_path / "space.yaml", trials=2)
    study = tmp_path / "study"
    r = tune([space, "--dir", study, "--trials", 1], tmp_path)
    assert r.returncode == 0
    from nmfdnn.tools.tune import open_storage, storage_url

    s = optuna.load_study(study_name="s", storage=open_storage(storage_url(None, study)))
    held = s.ask()  # a trial some live worker is training: its lock held here
    lock = study / "locks" / f"trial-{held.number:04d}.lock"
    lock.parent.mkdir(exist_ok=True)
    with open(lock, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        r = tune([space, "--dir", study, "--trials", 3], tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    states = {t.number: t.state.name for t in trials_of(study)}
    assert states == {0: "COMPLETE", 1: "RUNNING", 2: "COMPLETE"}
    r = tune([space, "--dir", study, "--trials", 3], tmp_path)  # now nobody holds it: taken over
    assert r.returncode == 0 and "trial 1 lost its worker" in r.stderr
    assert {t.number: t.state.name for t in trials_of(study)} == {0: "COMPLETE", 1: "COMPLETE", 2: "COMPLETE"}


def test_the_optuna_sweeper_is_retired_in_one_line(tmp_path):
    for args in (["-m", "hydra/sweeper=optuna", *BASE], ["-m", "+hparams_search=nmf_optuna", *BASE]):
        r = subprocess.run(nmfdnn_command() + ["train", *args], cwd=tmp_path, capture_output=True, text=True,
                           timeout=120, env=env_without_full_error())
        assert r.returncode == 2 and "nmfdnn tune" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not list(tmp_path.iterdir())
    assert not (Path(__file__).parent.parent / "conf" / "hparams_search").exists()


def test_no_optuna_before_it_is_needed():
    code = "import sys, nmfdnn.cli, nmfdnn.tools.tune; print('optuna' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
