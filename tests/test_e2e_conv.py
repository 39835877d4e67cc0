"""The conv presets on real data (issue 37): each runs as a quick check with ``epochs=1
dataset.train_subset=3000 dataset.test_subset=500`` and nothing else changed (its batch larger than the
subset is the whole subset, said in a warning), and learns something (the bound only separates
learning from chance, 90 %)."""

from pathlib import Path

import pytest

from nmfdnn.train import run

from util import compose_train

pytestmark = pytest.mark.slow

PRESETS = sorted(p.stem for p in (Path(__file__).parents[1] / "conf" / "experiment").glob("*_conv_*.yaml"))


def test_every_data_set_has_both_conv_presets():
    assert {"mnist_conv_nmf", "mnist_conv_bp", "cifar10_conv_nmf", "cifar10_conv_bp"} <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_a_conv_preset_runs_on_a_subset_unchanged(tmp_path, name):
    if name.startswith("cifar10"):
        from nmfdnn.data.cifar10 import fetch_cifar10

        fetch_cifar10()  # the data cache, verified (170 MB once per machine)
    cfg = compose_train([f"experiment={name}", "epochs=1", "dataset.train_subset=3000", "dataset.test_subset=500"])
    metrics = run(cfg, tmp_path)
    assert metrics["status"] == "finished" and metrics["n_train"] == 3000
    assert metrics["test_error"] < 85.0
