"""Sweeps on a real SLURM scheduler: a one-node cluster (munge, slurmctld, slurmd) started on this
machine in a temporary directory (nmfdnn/tools/slurm_cluster.py), a two-run sweep submitted through
Hydra's submitit launcher, collected and reported; every daemon stopped afterwards. Skipped where
SLURM cannot be started (not root, no apt-get) — except on CI (CI=true), where that is a failure."""

import json
import os
import subprocess

import pytest

from nmfdnn.tools import slurm_cluster  # an operator tool (make slurm-up)
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
