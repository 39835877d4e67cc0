"""Sweeps on a real SLURM scheduler: a one-node cluster (munge, slurmctld, slurmd) started on this
machine in a temporary directory (nmfdnn/maint/slurm_cluster.py), a two-run sweep submitted through
Hydra's submitit launcher, collected and reported; every daemon stopped afterwards. Skipped where
SLURM cannot be started (not root, no apt-get) — except on CI (CI=true), where that is a failure."""

import json
import os
import subprocess

import pytest

from nmfdnn.maint import slurm_cluster  # an operator tool (make slurm-up)
from util import env_without_full_error, nmfdnn_command

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    d = tmp_path_factory.mktemp("slurm")
    try:
        env = slurm_cluster.up(d)
    except slurm_cluster.Unavailable as e:
        if os.environ.get("CI") == "true":
            pytest.fail(f"SLURM must run on CI: {e}")
        pytest.skip(f"SLURM cannot be started here: {e}")
    try:
        yield d, env
    finally:
        slurm_cluster.down(d)
        assert slurm_cluster.running(d) == []


def test_sweep_runs_under_slurm_and_reports(cluster, tmp_path):
    d, env = cluster
    env = {**env_without_full_error(), "SLURM_CONF": env["SLURM_CONF"]}
    sweep = tmp_path / "sweep"
    r = subprocess.run(nmfdnn_command() + ["train", "-m", "hydra/launcher=slurm", "seed=0,1", "dataset=synthetic",
                                           "hidden=[20]", "epochs=2", "solver.batch_size=300", "solver.ae_samples=300",
                                           "progress=false", f"hydra.sweep.dir={sweep}"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    job_ids = set()
    for run in ("0", "1"):
        m = json.loads((sweep / run / "metrics.json").read_text())
        assert m["status"] == "finished" and m["seed"] == int(run)
        job_ids.add(m["machine"]["slurm_job_id"])  # the run executed inside a SLURM job
    assert None not in job_ids and len(job_ids) == 2
    assert len(list((sweep / ".submitit").iterdir())) >= 2  # submitit's job folders, in the sweep directory
    r = subprocess.run(nmfdnn_command() + ["report", str(sweep)], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    (row,) = json.loads((sweep / "report.json").read_text())
    assert row["n"] == 2 and row["seeds"] == [0, 1]


def test_tasks_per_node_makes_one_mpi_run(cluster, tmp_path):
    """hydra.launcher.tasks_per_node=2: one SLURM job of two tasks that are the two ranks of one run
    (srun through PMI-2), with the weights of a one-process run (to 1e-10)."""
    pytest.importorskip("mpi4py")
    import numpy as np

    d, env = cluster
    env = {**env_without_full_error(), "SLURM_CONF": env["SLURM_CONF"]}
    args = ["dataset=synthetic", "dataset.n_train=1200", "dataset.n_features=40", "hidden=[50,30]",
            "solver.batch_size=300", "solver.ae_samples=400", "epochs=3", "progress=false", "seed=5"]
    sweep, one = tmp_path / "sweep", tmp_path / "one"
    r = subprocess.run(nmfdnn_command() + ["train", "-m", "hydra/launcher=slurm", "hydra.launcher.tasks_per_node=2",
                                           "backend.threads=1", *args, f"hydra.sweep.dir={sweep}"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((sweep / "0" / "metrics.json").read_text())
    assert m["status"] == "finished" and m["info"]["ranks"] == 2 and m["machine"]["slurm_job_id"] is not None
    r = subprocess.run(nmfdnn_command() + ["train", *args, f"hydra.run.dir={one}"], env=env_without_full_error(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    with np.load(sweep / "0" / "model.npz") as a, np.load(one / "model.npz") as b:
        diffs = [np.linalg.norm(a[k] - b[k]) / np.linalg.norm(b[k]) for k in b.files if k.startswith("W")]
    assert max(diffs) <= 1e-10


def test_tune_workers_are_a_slurm_job_array_of_one_study(cluster, tmp_path):
    """nmfdnn tune --slurm --workers 2: two SLURM jobs (one submitit array) draw the trials of one study."""
    pytest.importorskip("optuna")
    import optuna

    d, env = cluster
    env = {**env_without_full_error(), "SLURM_CONF": env["SLURM_CONF"]}
    space = tmp_path / "space.yaml"
    space.write_text("study: s\nsampler: {seed: 1, startup_trials: 2}\noverrides:\n  - dataset=synthetic\n"
                     "  - hidden=[20]\n  - epochs=2\n  - solver.batch_size=300\n  - solver.ae_samples=300\n"
                     "  - dataset.val_size=200\nspace:\n  solver.alpha: {float: [1.0e-6, 1.0e-1], log: true}\n")
    study = tmp_path / "study"
    r = subprocess.run(nmfdnn_command() + ["tune", str(space), "--dir", str(study), "--slurm", "--workers", "2",
                                           "--trials", "4", "--mem-gb", "1", "backend.threads=1"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    trials = optuna.load_study(study_name="s", storage=f"sqlite:///{study / 'optuna.db'}").get_trials()
    assert sorted((t.number, t.state.name) for t in trials) == [(i, "COMPLETE") for i in range(4)]
    jobs = set()
    for t in trials:
        m = json.loads((study / "runs" / f"trial-{t.number:04d}" / "metrics.json").read_text())
        assert m["trial"]["number"] == t.number and m["val_error"] == t.value
        jobs.add(m["machine"]["slurm_job_id"])
    assert None not in jobs  # each trial trained inside a SLURM job
    assert len(list((study / ".submitit").glob("*_[01]"))) == 2  # the array's two tasks
