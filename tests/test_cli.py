"""The CLI: configs composed through Hydra's compose API, and the real console script."""

import json
import re
import subprocess

import pytest
from omegaconf import OmegaConf

from nmfdnn.config import validate
from nmfdnn.errors import NmfdnnError
from nmfdnn.train import run

from util import compose_train, env_without_full_error, nmfdnn_command


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


@pytest.mark.parametrize("override,message", [
    ("dtype=float16", "Invalid value 'float16', expected one of [float32, float64]"),
    ("hidden=[a]", "Value 'a' of type 'str' could not be converted to Integer"),
    ("solver.nosuchkey=1", "Key 'nosuchkey' not in 'NMFSolverConfig'"),
    ("epochs=x", "Value 'x' of type 'str' could not be converted to Integer"),
    ("solver.pinv=cholesky", "Invalid value 'cholesky', expected one of [chol, gram, svd]"),
    ("dataset.grayscale=true", "Key 'grayscale' not in 'MNISTConfig'"),  # a CIFAR-10 key on MNIST
    ("dataset.n_features=5", "Key 'n_features' not in 'MNISTConfig'"),  # a synthetic-data key on MNIST
])
def test_compose_rejects_bad_types_typos_and_other_datasets_keys(override, message):
    with pytest.raises(NmfdnnError, match=re.escape(message)):
        compose_train([override])


def test_each_dataset_has_its_own_keys():
    assert compose_train(["dataset=cifar10", "dataset.grayscale=true"]).dataset.grayscale is True
    assert compose_train(["dataset=synthetic", "dataset.n_features=5"]).dataset.n_features == 5
    assert "grayscale" not in compose_train(["dataset=synthetic"]).dataset


@pytest.mark.parametrize("overrides,message", [
    (["hidden=[0]"], "hidden"),
    (["hidden=[100,-5]"], "hidden"),
    (["hidden=[]"], "at least one hidden layer"),
    (["solver.omega=0"], "omega"),
    (["solver.batch_size=0"], "batch_size"),
    (["solver.batch_size=1000"], "must exceed the widest hidden layer (1000 units)"),
    (["solver.batch_size=501", "solver.bias=true", "hidden=[500]"], "(500 units + the bias row)"),
    (["backend.threads=0"], "threads"),
    (["solver=bp", "solver.lr_decay=0"], "solver.lr_decay must be in (0, 1], got 0"),
    (["solver=bp", "solver.lr_decay=1.5"], "solver.lr_decay must be in (0, 1], got 1.5"),
])
def test_validate_rejects_bad_values(overrides, message):
    with pytest.raises(NmfdnnError, match=re.escape(message)):
        validate(compose_train(overrides))


def test_validate_batch_larger_than_data():
    with pytest.raises(NmfdnnError, match="larger than the training set"):
        validate(compose_train(["solver.batch_size=70000"]), n_train=60000)


def test_validate_smallest_batch_must_exceed_the_widest_layer():
    """1,500 samples in batches of 1,000 are two batches of 750: narrower than a layer of 1000."""
    validate(compose_train(["solver.batch_size=1001", "hidden=[1000]"]))
    with pytest.raises(NmfdnnError, match="smallest mini-batch"):
        validate(compose_train(["solver.batch_size=1001", "hidden=[1000]", "solver.ae_samples=1000"]), n_train=1500)
    validate(compose_train(["solver=bp", "solver.batch_size=100"]), n_train=60000)  # backprop: no such limit


def test_run_through_compose_writes_outputs(tmp_path, tiny_run):
    cfg = compose_train(tiny_run)
    metrics = run(cfg, tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["status"] == "finished" and saved["test_error"] == metrics["test_error"]
    assert [r["epoch"] for r in saved["history"]] == [0, 1, 2]
    assert (tmp_path / "history.csv").read_text().splitlines()[0].startswith("epoch,train_error,test_error")
    import numpy as np

    model = np.load(tmp_path / "model.npz")
    assert model["W1"].shape == (16, 20) and model["W2"].shape == (3, 16)
    assert OmegaConf.load(tmp_path / "config.yaml").hidden == [16]


def test_same_seed_same_result(tmp_path, tiny_run):
    cfg = compose_train(tiny_run)
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
    assert "base_" not in r.stdout and "schema" not in r.stdout  # only real options are listed
    assert "grayscale" not in r.stdout  # only the keys of the chosen data set (MNIST)
    for line in ("  omega: 1.0  # (0, 2]; step of Algorithms 2 and 3", "  pinv: chol  # chol | gram | svd; ",
                 "activation_slope: 0.01  # (0, 1); leaky_relu", "  batch_size: 5000  # int >= 1; "):
        assert line in r.stdout  # each key with its range and help, from the schema
    r = sh(["train", "dataset=cifar10", "--help"], tmp_path)
    assert r.returncode == 0 and "grayscale: false" in r.stdout
    for cmd in ("eval", "report", "plot", "bench", "fetch", "resume"):
        r = sh([cmd, "--help"], tmp_path)
        assert r.returncode == 0 and f"usage: nmfdnn {cmd}" in r.stdout, cmd


def test_console_train_runs_and_writes_run_dir(tmp_path, tiny_run):
    r = sh(["train", *tiny_run], tmp_path)
    assert r.returncode == 0, r.stderr
    runs = list((tmp_path / "outputs" / "train").glob("*/*/metrics.json"))
    assert len(runs) == 1
    d = runs[0].parent
    for f in ("history.csv", "model.npz", "config.yaml", "train.log", ".hydra/config.yaml"):
        assert (d / f).exists(), f


def test_console_multirun(tmp_path, tiny_run):
    r = sh(["train", "-m", *tiny_run, "seed=0,1"], tmp_path)
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
    (["train", "dataset=mnist", "dataset.grayscale=true"], "Key 'grayscale' not in 'MNISTConfig'"),
    (["train", "solver.batch_size=1000", "hidden=[1000,500]"], "must exceed the widest hidden layer"),
    (["train", "-m", "seed=0,1", "solver.lsq_iter=3"], "lsq_iter"),
])
def test_console_user_errors_are_one_line(tmp_path, args, message):
    r = sh(args, tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("nmfdnn: error:")]
    assert len(lines) == 1 and message in lines[0], r.stderr


def test_log_to_a_file_has_one_line_per_record(tmp_path, tiny_run):
    """On a non-terminal the console log is one record per line (rich would wrap at 80 columns)."""
    r = sh(["train", *tiny_run, "epochs=3", f"hydra.run.dir={tmp_path / 'run'}"], tmp_path)
    assert r.returncode == 0, r.stderr
    epochs = [line for line in r.stderr.splitlines() if line.startswith("epoch ")]
    assert len(epochs) == 4 and all("objective" in line and line.endswith("s") for line in epochs)
    logged = [line for line in (tmp_path / "run" / "train.log").read_text().splitlines() if " - epoch " in line]
    assert len(logged) == 4 and all("objective" in line for line in logged)
