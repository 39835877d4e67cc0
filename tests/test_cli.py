"""The CLI: configs composed through Hydra's compose API, and the real console script."""

import json
import subprocess

import pytest
from omegaconf import OmegaConf

from nmfdnn.config import validate
from nmfdnn.errors import NmfdnnError
from nmfdnn.train import run

from _util import compose_train, env_without_full_error, nmfdnn_command

SMALL = ["dataset=synthetic", "hidden=[16]", "epochs=2", "solver.batch_size=200", "solver.ae_samples=300",
         "solver.ae_iters=2", "progress=false"]


def test_defaults_compose():
    cfg = compose_train([])
    assert cfg.dataset.name == "mnist" and cfg.solver.name == "nmf" and cfg.backend.name == "numpy"
    assert list(cfg.hidden) == [1000, 500] and cfg.epochs == 10 and cfg.dtype.value == "float64"
    assert cfg.solver.batch_size == 5000 and cfg.solver.ae_samples == 5000
    validate(cfg)


def test_paper_preset_sets_the_papers_values():
    cfg = compose_train(["experiment=paper", "hidden=[500]"])
    s = cfg.solver
    assert (s.ae_iters, s.lsq_iters, s.input_threshold, s.bias) == (5, 10, 4e-2, False)
    assert s.input_pinv == "literal" and s.pinv == "svd"
    assert list(cfg.hidden) == [500]  # command-line overrides win over the preset


@pytest.mark.parametrize("override", ["dtype=float16", "hidden=[a]", "solver.nosuchkey=1", "epochs=x"])
def test_compose_rejects_bad_types_and_typos(override):
    with pytest.raises(Exception):
        compose_train([override])


@pytest.mark.parametrize("overrides,message", [
    (["hidden=[0]"], "hidden"),
    (["hidden=[100,-5]"], "hidden"),
    (["hidden=[]"], "at least one hidden layer"),
    (["solver.omega=0"], "omega"),
    (["solver.pinv=cholesky"], "solver.pinv"),
    (["solver.batch_size=0"], "batch_size"),
    (["backend.threads=0"], "threads"),
])
def test_validate_rejects_bad_values(overrides, message):
    with pytest.raises(NmfdnnError, match=message):
        validate(compose_train(overrides))


def test_validate_batch_larger_than_data():
    with pytest.raises(NmfdnnError, match="larger than the training set"):
        validate(compose_train(["solver.batch_size=70000"]), n_train=60000)


def test_run_through_compose_writes_outputs(tmp_path):
    cfg = compose_train(SMALL)
    metrics = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "finished" and saved["test_error"] == metrics["test_error"]
    assert [r["epoch"] for r in saved["history"]] == [0, 1, 2]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_error,test_error")
    import numpy as np

    model = np.load(tmp_path / "model.npz")
    assert model["W1"].shape == (16, 20) and model["W2"].shape == (3, 16)
    assert OmegaConf.load(tmp_path / "config.yaml").hidden == [16]


def test_same_seed_same_result(tmp_path):
    cfg = compose_train(SMALL)
    a = run(cfg, tmp_path / "a")
    b = run(cfg, tmp_path / "b")
    assert [r["test_error"] for r in a["history"]] == [r["test_error"] for r in b["history"]]
    assert [r["objective"] for r in a["history"]] == [r["objective"] for r in b["history"]]


# -- the installed console script ---------------------------------------------------------------

def sh(args, cwd):
    return subprocess.run(nmfdnn_command() + args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env_without_full_error())


def test_console_help(tmp_path):
    r = sh(["--help"], tmp_path)
    assert r.returncode == 0 and "train" in r.stdout and "fetch" in r.stdout
    r = sh(["train", "--help"], tmp_path)
    assert r.returncode == 0
    for group in ("dataset:", "solver:", "backend:", "experiment:"):
        assert group in r.stdout


def test_console_train_runs_and_writes_run_dir(tmp_path):
    r = sh(["train", *SMALL], tmp_path)
    assert r.returncode == 0, r.stderr
    runs = list((tmp_path / "outputs" / "train").glob("*/*/metrics.json"))
    assert len(runs) == 1
    d = runs[0].parent
    for f in ("history.csv", "model.npz", "config.yaml", "train.log", ".hydra/config.yaml"):
        assert (d / f).exists(), f


def test_console_multirun(tmp_path):
    r = sh(["train", "-m", *SMALL, "seed=0,1"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "outputs" / "multirun").glob("*/*/*/metrics.json"))) == 2


@pytest.mark.parametrize("args,message", [
    (["train", "hidden=[0]"], "hidden[0]"),
    (["train", "dataset=synthetic", "solver.batch_size=100000", "hidden=[4]"], "larger than the training set"),
    (["train", "backend=cupy", "dataset=synthetic"], "backend=cupy"),
    (["train", "dataset=idx", "dataset.train_images=/nonexistent", "dataset.train_labels=/x",
      "dataset.test_images=/x", "dataset.test_labels=/x"], "no such file"),
    (["frobnicate"], "unknown command"),
    (["train", "dtype=float16"], "expected one of [float32, float64]"),
    (["train", "hidden=[abc]"], "could not be converted to Integer"),
    (["train", "solver.lsq_iter=3"], "Key 'lsq_iter' not in 'NMFSolverConfig'"),
    (["train", "dataset=imagenet"], "Available options in 'dataset': cifar10, fashion_mnist, idx, mnist, synthetic"),
    (["train", "-m", "seed=0,1", "solver.lsq_iter=3"], "lsq_iter"),
])
def test_console_user_errors_are_one_line(tmp_path, args, message):
    r = sh(args, tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nmfdnn: error:")]
    assert len(lines) == 1 and message in lines[0], r.stderr
