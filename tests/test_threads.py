"""blas_threads: NumPy's BLAS gets the requested threads, any other BLAS (SciPy's copy) one; all
restored afterwards."""

import pytest
import scipy.linalg  # noqa: F401  (loads SciPy's BLAS before the first reading)
from threadpoolctl import threadpool_info

from nmfdnn.backend import _is_numpys, blas_threads


def _blas():
    return [(i["filepath"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


def test_blas_threads_caps_the_other_blas_and_restores():
    before = _blas()
    with blas_threads(1):
        inside = _blas()
        assert all(k == 1 for _, k in inside)
    with blas_threads(None):
        inside = dict(_blas())
        numpys = [f for f in inside if _is_numpys(f)]
        others = [f for f in inside if not _is_numpys(f)]
        if not (numpys and others):
            pytest.skip("NumPy and SciPy share one BLAS library here (not the PyPI wheels' two copies)")
        assert all(inside[f] == 1 for f in others)  # SciPy's copy runs single-threaded
        assert all(inside[f] == dict(before)[f] for f in numpys)  # NumPy's keeps its threads
    assert _blas() == before  # everything restored
