"""Parallel and cluster sweep configs, resumable sweep directories, and the Figure 1 plot."""


import pytest
from util import compose_train, env_without_full_error, run_nmfdnn



def compose_with_hydra(overrides):
    return compose_train(overrides, return_hydra_config=True)


@pytest.mark.parametrize("launcher,target", [("parallel", "JoblibLauncher"), ("slurm", "SlurmLauncher")])
def test_launcher_configs_compose(launcher, target):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher" if launcher == "parallel"
                        else "hydra_plugins.hydra_submitit_launcher")
    cfg = compose_with_hydra([f"hydra/launcher={launcher}"])
    assert cfg.hydra.launcher._target_.endswith(target)
    if launcher == "slurm":  # CPUs follow backend.threads (2 if unset); a GPU only for backend=cupy
        assert cfg.hydra.launcher.cpus_per_task == 2 and cfg.hydra.launcher.timeout_min == 240
        assert cfg.hydra.launcher.gpus_per_node is None and cfg.hydra.launcher.mem_gb == 8
        cfg = compose_with_hydra([f"hydra/launcher={launcher}", "backend.threads=8", "backend=cupy"])
        assert cfg.hydra.launcher.cpus_per_task == 8 and cfg.hydra.launcher.gpus_per_node == 1


def test_parallel_sweep_caps_blas_threads(tmp_path, tiny_sweep):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    r = run_nmfdnn(["train", "-m", *tiny_sweep, "seed=0,1", "hydra/launcher=parallel",
                                            "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path}"],
                       capture_output=True, text=True, env=env_without_full_error(), timeout=300)
    assert r.returncode == 0, r.stderr
    import os

    logs = [(tmp_path / str(i) / "train.log").read_text() for i in (0, 1)]
    expect = max(1, (os.cpu_count() or 1) // 2)
    assert all(f"2 jobs, {expect} BLAS thread(s) each" in log for log in logs)


@pytest.mark.parametrize("extra", [[], ["eval_train=false"]])  # no train error: its summary says n/a
def test_sweep_with_override_dirs_resumes_by_skipping_finished_runs(tmp_path, tiny_sweep, extra):
    args = ["train", "-m", *tiny_sweep, *extra, "seed=0,1", "resume=true", f"hydra.sweep.dir={tmp_path}",
            "hydra.sweep.subdir=${hydra.job.override_dirname}"]
    r = run_nmfdnn(args, capture_output=True, text=True, env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    runs = sorted(p.parent for p in tmp_path.glob("*/metrics.json"))
    assert len(runs) == 2 and all("seed=" in p.name and "resume" not in p.name for p in runs)
    stamps = [(p / "metrics.json").stat().st_mtime_ns for p in runs]
    r = run_nmfdnn(args, capture_output=True, text=True, env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    assert [(p / "metrics.json").stat().st_mtime_ns for p in runs] == stamps  # nothing recomputed
    assert ("n/a" in r.stdout) == bool(extra)


def test_plot_writes_png_and_svg(tmp_path, tiny_sweep):
    pytest.importorskip("matplotlib")
    r = run_nmfdnn(["train", "-m", *tiny_sweep, "seed=0,1", "solver=nmf", f"hydra.sweep.dir={tmp_path}"],
                       capture_output=True, text=True, env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    r = run_nmfdnn(["plot", str(tmp_path)], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    png = tmp_path / "fig1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "fig1.svg").exists()
    first = {ext: (tmp_path / f"fig1.{ext}").read_bytes() for ext in ("png", "svg")}
    r = run_nmfdnn(["plot", str(tmp_path)], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 0 and all((tmp_path / f"fig1.{e}").read_bytes() == b for e, b in first.items())  # reproducible


def test_plot_takes_seconds_from_runs_timed_alone(tmp_path, tiny_sweep):
    """``--seconds-from DIR``: a group's seconds axis uses the matching group's seconds there (same config
    but for the seed and the thread count), not its own; a missing DIR is a one-line error."""
    pytest.importorskip("matplotlib")
    import json

    import numpy as np

    from nmfdnn.tools.plot import timed_seconds
    from nmfdnn.tools.report import collect

    study, timed = tmp_path / "study", tmp_path / "times"
    for where, extra in ((study, ["seed=0,1"]), (timed, ["seed=0", "backend.threads=1"])):
        r = run_nmfdnn(["train", "-m", *tiny_sweep, *extra, f"hydra.sweep.dir={where}"],
                           capture_output=True, text=True, env=env_without_full_error())
        assert r.returncode == 0, r.stderr
    (group,), _ = collect([study])
    seconds = timed_seconds([timed])
    own = [h["seconds"] for h in json.loads((timed / "0" / "metrics.json").read_text())["history"]]
    assert list(seconds) == [group.key] and np.array_equal(seconds[group.key], own)
    r = run_nmfdnn(["plot", str(study), "--seconds-from", str(timed)], capture_output=True,
                       text=True, env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    assert (study / "fig1.png").exists()
    r = run_nmfdnn(["plot", str(study), "--seconds-from", str(tmp_path / "nowhere")],
                       capture_output=True, text=True, env=env_without_full_error())
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "nowhere" in r.stderr
