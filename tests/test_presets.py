"""The experiment presets say exactly what they run: every solver key pinned, the dataset and dtype chosen."""

import dataclasses
from pathlib import Path

import pytest
import yaml

from nmfdnn.config import SOLVER_SCHEMAS, compose_config, conf_dir

EXPERIMENTS = Path(conf_dir()) / "experiment"
PRESETS = sorted(p.stem for p in EXPERIMENTS.glob("*.yaml"))
PINNED = [p for p in PRESETS if p.startswith(("paper", "table1", "cifar10"))]


def test_the_reproduction_presets_exist():
    assert {"paper", "paper_cifar10", "paper_bp_mnist", "paper_bp_cifar10", "table1_nmf", "table1_nmf_deep", "table1_bp", "table1_bp_constant"} <= set(PINNED)


def preset_chain(name: str) -> dict:
    """The keys a preset sets, through its parents (a preset listed in its defaults, child wins):
    ``{"defaults": {...}, "solver": {...}, "dataset": {...}, top-level keys...}``."""
    text = yaml.safe_load((EXPERIMENTS / f"{name}.yaml").read_text())
    out = {"defaults": {}, "solver": {}, "dataset": {}}
    for d in text.get("defaults", []):
        if isinstance(d, str) and d != "_self_":
            parent = preset_chain(d)
            for k, v in parent.items():
                out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
        elif isinstance(d, dict):
            out["defaults"].update(d)
    for k, v in text.items():
        if k != "defaults":
            out[k] = {**out.get(k, {}), **v} if isinstance(v, dict) else v
    return out


@pytest.mark.parametrize("name", PINNED)
def test_preset_pins_every_key(name):
    """A change of the shipped defaults cannot change what a reproduction preset runs: its YAML, with
    its parents' (a child states only what differs), sets the solver and dataset, every key of that
    solver's schema, dtype, epochs and the validation split."""
    text = preset_chain(name)
    chosen = text["defaults"]
    solver = chosen["override /solver"]
    assert chosen["override /dataset"] in ("mnist", "cifar10")
    fields = {f.name for f in dataclasses.fields(SOLVER_SCHEMAS[solver])} - {"name"}
    assert set(text["solver"]) == fields, f"{name}: unpinned {sorted(fields - set(text['solver']))}"
    assert {"dtype", "epochs"} <= set(text) and text["dataset"]["val_size"] == 0
    cfg = compose_config([f"experiment={name}"])
    assert cfg.solver.name == solver and cfg.dataset.name == chosen["override /dataset"]
    for key, value in text["solver"].items():  # what the chain says is what Hydra composes
        assert cfg.solver[key] == value, f"{name}: solver.{key}"


def test_a_preset_unpinned_in_its_chain_fails_the_check(tmp_path, monkeypatch):
    """The chain check is not vacuous: a child of a preset that drops a key of the parent's chain."""
    import test_presets as me

    for n in ("nmf_best", "table1_nmf"):
        (tmp_path / f"{n}.yaml").write_text((EXPERIMENTS / f"{n}.yaml").read_text())
    text = (tmp_path / "table1_nmf.yaml").read_text().replace("  shuffle: true\n", "")
    (tmp_path / "table1_nmf.yaml").write_text(text)
    monkeypatch.setattr(me, "EXPERIMENTS", tmp_path)
    assert "shuffle" not in me.preset_chain("table1_nmf")["solver"]
    assert "alpha" in me.preset_chain("table1_nmf")["solver"]  # from the parent


def test_no_preset_carries_lab_notes():
    """Presets say what they are in at most five comment lines; screening tables live in the studies."""
    for p in EXPERIMENTS.glob("*.yaml"):
        assert sum(line.lstrip().startswith("#") for line in p.read_text().splitlines()) <= 5, p.name


def test_bp_presets_select_their_dataset():
    assert compose_config(["experiment=paper_bp_cifar10"]).dataset.name == "cifar10"
    assert compose_config(["experiment=paper_bp_mnist"]).dataset.name == "mnist"
    assert str(compose_config(["experiment=table1_bp"]).dtype) == "float32"
    assert str(compose_config(["experiment=table1_bp_constant"]).dtype) == "float32"
    # a BP run rerun alone must use the sweep's one thread to reproduce its float32 result
    assert compose_config(["experiment=table1_bp"]).backend.threads == 1
    assert compose_config(["experiment=table1_bp_constant"]).backend.threads == 1
    assert str(compose_config(["experiment=table1_nmf"]).dtype) == "float64"
    assert str(compose_config(["experiment=table1_nmf_deep"]).dtype) == "float64"


def test_cifar10_nmf_is_the_paper_setting_plus_what_validation_chose():
    """experiment=cifar10_nmf differs from paper_cifar10 only in the keys its screen chose."""
    base, tuned = (compose_config([f"experiment={n}"]) for n in ("paper_cifar10", "cifar10_nmf"))
    differ = {k for k in base.solver if base.solver[k] != tuned.solver[k]}
    assert differ == {"alpha"} and tuned.solver.alpha > 0
    assert tuned.dataset.name == "cifar10" and str(tuned.dtype) == "float32"
    assert tuned.solver.factor_dtype == "float64" and tuned.epochs == base.epochs


@pytest.mark.parametrize("base_name", ["paper", "paper_cifar10"])
def test_paper_fast_is_the_paper_setting_in_float32(base_name):
    """paper_fast and paper_cifar10_fast: the paper's settings with float32 products, nothing else."""
    base, fast = (compose_config([f"experiment={n}"]) for n in (base_name, f"{base_name}_fast"))
    assert base.dataset.name == fast.dataset.name
    assert dict(base.solver) == dict(fast.solver) and fast.solver.factor_dtype == "float64"
    assert str(base.dtype) == "float64" and str(fast.dtype) == "float32" and fast.epochs == base.epochs
