"""Kill a training run with SIGKILL at a random moment, resume it, and compare the result with an
uninterrupted run of the same config: history (errors, objective) and weights must be identical.

With ``--sweep``, the killed process is a whole sweep (``nmfdnn train -m seed=0,1,2 ...``, run
directories named by their overrides, ``resume=true``): rerunning the same command must finish every
run, each identical to the same run of an uninterrupted sweep.

Run by the test suite; also a script: ``python -m nmfdnn.maint.kill_resume --trials 5 --solver nmf``
(``--sweep`` for sweep kills).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SOLVER_ARGS = {
    "nmf": ["solver=nmf", "solver.batch_size=300", "solver.ae_samples=600", "solver.ae_iters=2", "solver.lsq_iters=2"],
    "bp": ["solver=bp", "solver.batch_size=50", "solver.ae_samples=600", "solver.ae_epochs=2"],
    # state beyond the weights: the running Gram matrices, and the filter trace of a conv net
    "nmf_memory": ["solver=nmf", "solver.batch_size=300", "solver.ae_samples=600", "solver.ae_iters=2",
                   "solver.memory=0.9", "solver.bias=true"],
    "conv_gauss_newton": ["solver=nmf", "solver.batch_size=300", "solver.ae_samples=600", "solver.ae_iters=2",
                          "solver.memory=0.9", "solver.filter_step=gauss_newton", "dataset.image=[1,10,10]",
                          "conv=[{channels:4,kernel:3,pool:2}]"],
}


def command():
    exe = Path(sys.executable).parent / "nmfdnn"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "nmfdnn.cli"]


def train_args(solver: str, run_dir: Path) -> list[str]:
    return ["train", "dataset=synthetic", "dataset.n_train=6000", "dataset.n_features=100", "dataset.n_classes=5",
            "hidden=[120,60]", "epochs=8", "backend.threads=1", "progress=false", *SOLVER_ARGS[solver],
            f"hydra.run.dir={run_dir}"]


def comparable(run_dir: Path):
    m = json.loads((run_dir / "metrics.json").read_text())
    hist = [(r["epoch"], r["train_error"], r["test_error"], r["objective"]) for r in m["history"]]
    with np.load(run_dir / "model.npz") as z:
        weights = {k: z[k].copy() for k in z.files}
    return m["status"], hist, weights


def trial(solver: str, work: Path, rng: random.Random, reference, ref_seconds: float, env,
          first_checkpoint: float = 0.0, early: bool = False) -> dict:
    """One kill: mostly at a random moment after the first checkpoint (so that resuming really
    continues a run); with ``early``, at a random moment before it (resuming then starts over)."""
    run_dir = work / f"killed-{rng.randrange(10**9)}"
    delay = rng.uniform(0.2, first_checkpoint) if early else rng.uniform(0.0, ref_seconds - first_checkpoint)
    p = subprocess.Popen(command() + train_args(solver, run_dir), env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    if not early:
        # wait for this run's own first checkpoint (on a loaded machine it can come later than the
        # reference run's), then kill at a random moment of the rest of the reference run's time
        while p.poll() is None and not (run_dir / "checkpoint.npz").exists():
            time.sleep(0.02)
    time.sleep(delay)
    killed = p.poll() is None
    if killed:
        os.kill(p.pid, signal.SIGKILL)
    p.wait()
    had_checkpoint = (run_dir / "checkpoint.npz").exists()
    if (run_dir / ".hydra" / "overrides.yaml").exists():
        r = subprocess.run(command() + ["resume", str(run_dir)], env=env, capture_output=True, text=True)
    else:  # killed before Hydra wrote anything: rerunning the same command is the resume
        r = subprocess.run(command() + train_args(solver, run_dir) + ["resume=true"], env=env, capture_output=True,
                           text=True)
    if r.returncode != 0:
        raise AssertionError(f"resume failed: {r.stderr}")
    status, hist, weights = comparable(run_dir)
    same = status == "finished" and hist == reference[1] and weights.keys() == reference[2].keys() and all(
        np.array_equal(weights[k], reference[2][k]) for k in weights)
    return dict(delay=round(delay, 2), killed=killed, had_checkpoint=had_checkpoint, identical=same)


SWEEP_SEEDS = "0,1,2"


def sweep_args(solver: str, sweep_dir: Path) -> list[str]:
    """A resumable sweep of three seeds: the train arguments without the run directory, with `-m`."""
    args = [a for a in train_args(solver, sweep_dir) if not a.startswith("hydra.run.dir=")]
    args = [a for a in args if not a.startswith("epochs=")] + ["epochs=3"]
    return ["train", "-m", *args[1:], f"seed={SWEEP_SEEDS}", "resume=true", f"hydra.sweep.dir={sweep_dir}",
            "hydra.sweep.subdir=${hydra.job.override_dirname}"]


def sweep_runs(sweep_dir: Path) -> dict:
    return {d.name: comparable(d) for d in sorted(sweep_dir.iterdir()) if (d / "metrics.json").exists()}


def run_sweep_trials(solver: str, trials: int, seed=None) -> list[dict]:
    """SIGKILL the sweep process at random moments, rerun the same command, compare every run."""
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        r = subprocess.run(command() + sweep_args(solver, work / "reference"), env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise AssertionError(f"the reference sweep failed: {r.stderr}")
        ref_seconds = time.perf_counter() - t0
        reference = sweep_runs(work / "reference")
        assert len(reference) == len(SWEEP_SEEDS.split(",")), reference.keys()
        results = []
        for i in range(trials):
            sweep_dir = work / f"killed-{i}"
            delay = rng.uniform(0.5, 0.9 * ref_seconds)
            p = subprocess.Popen(command() + sweep_args(solver, sweep_dir), env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            time.sleep(delay)
            killed = p.poll() is None
            if killed:
                os.kill(p.pid, signal.SIGKILL)
            p.wait()
            done_before = len(sweep_runs(sweep_dir)) if sweep_dir.exists() else 0
            r = subprocess.run(command() + sweep_args(solver, sweep_dir), env=env, capture_output=True, text=True)
            if r.returncode != 0:
                raise AssertionError(f"resuming the sweep failed: {r.stderr}")
            runs = sweep_runs(sweep_dir)
            same = runs.keys() == reference.keys() and all(
                runs[k][0] == "finished" and runs[k][1] == reference[k][1] and all(
                    np.array_equal(runs[k][2][w], reference[k][2][w]) for w in reference[k][2]) for k in reference)
            results.append(dict(delay=round(delay, 2), killed=killed, finished_before_resume=done_before,
                                identical=same))
        return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--solver", choices=sorted(SOLVER_ARGS), default="nmf")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--sweep", action="store_true", help="kill whole sweeps instead of single runs")
    a = ap.parse_args(argv)
    results = (run_sweep_trials if a.sweep else run_trials)(a.solver, a.trials, a.seed)
    for r in results:
        print(r)
    ok = all(r["identical"] for r in results)
    what = "resumed sweeps identical to the uninterrupted sweep" if a.sweep else \
        "resumed runs identical to the uninterrupted run"
    print(f"{sum(r['identical'] for r in results)} of {len(results)} {what}")
    return 0 if ok else 1


def run_trials(solver: str, trials: int, seed=None, work: Path | None = None):
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        ref_dir = work / "reference"
        t0 = time.perf_counter()
        p = subprocess.Popen(command() + train_args(solver, ref_dir), env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        first_checkpoint = None
        while p.poll() is None:
            if first_checkpoint is None and (ref_dir / "checkpoint.npz").exists():
                first_checkpoint = time.perf_counter() - t0
            time.sleep(0.02)
        if p.returncode != 0:
            raise AssertionError("the reference run failed")
        ref_seconds = time.perf_counter() - t0
        first_checkpoint = first_checkpoint or 0.5 * ref_seconds
        reference = comparable(ref_dir)
        # one trial in five kills before the first checkpoint, the others during training
        return [trial(solver, work, rng, reference, ref_seconds, env, first_checkpoint, early=(i % 5 == 4))
                for i in range(trials)]


if __name__ == "__main__":
    sys.exit(main())
