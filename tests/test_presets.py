"""The experiment presets say exactly what they run: every solver key pinned, the dataset and dtype chosen."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from nmfdnn.config import SOLVER_SCHEMAS, compose_config, conf_dir

EXPERIMENTS = Path(conf_dir()) / "experiment"
PRESETS = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
PINNED = [p for p in PRESETS if p.startswith(("paper", "table1"))]


def test_the_reproduction_presets_exist():
    assert {"paper", "paper_cifar10", "paper_bp_mnist", "paper_bp_cifar10", "table1_nmf", "table1_nmf_deep", "table1_bp", "table1_bp_shallow"} <= set(PINNED)


@pytest.mark.parametrize("name", PINNED)
def test_preset_pins_every_key(name):
    """A change of the shipped defaults cannot change what a reproduction preset runs: its YAML sets the
    solver and dataset, every key of that solver's schema, dtype, epochs and the validation split."""
    text = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    chosen = {k: v for d in text["defaults"] for k, v in d.items()}
    solver = chosen["override /solver"]
    assert chosen["override /dataset"] in ("mnist", "cifar10")
    fields = {f.name for f in dataclasses.fields(SOLVER_SCHEMAS[solver])} - {"name"}
    assert set(text["solver"]) == fields, f"{name}: unpinned {sorted(fields - set(text['solver']))}"
    assert {"dtype", "epochs"} <= set(text) and text["dataset"]["val_size"] == 0
    cfg = compose_config([f"experiment={name}"])
    assert cfg.solver.name == solver and cfg.dataset.name == chosen["override /dataset"]


def test_bp_presets_select_their_dataset():
    assert compose_config(["experiment=paper_bp_cifar10"]).dataset.name == "cifar10"
    assert compose_config(["experiment=paper_bp_mnist"]).dataset.name == "mnist"
    assert str(compose_config(["experiment=table1_bp"]).dtype) == "float32"
    assert str(compose_config(["experiment=table1_bp_shallow"]).dtype) == "float32"
    # a BP run rerun alone must use the sweep's one thread to reproduce its float32 result
    assert compose_config(["experiment=table1_bp"]).backend.threads == 1
    assert compose_config(["experiment=table1_bp_shallow"]).backend.threads == 1
    assert str(compose_config(["experiment=table1_nmf"]).dtype) == "float64"
    assert str(compose_config(["experiment=table1_nmf_deep"]).dtype) == "float64"
