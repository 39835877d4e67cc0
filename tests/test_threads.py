"""blas_threads: NumPy's BLAS gets the requested threads, any other BLAS (SciPy's copy) one; all
restored afterwards."""

from threadpoolctl import threadpool_info

from nmfdnn.train import _is_numpys, blas_threads


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
        if numpys and others:  # the wheels' two copies: SciPy's runs single-threaded
            assert all(inside[f] == 1 for f in others)
            assert all(inside[f] == dict(before).get(f, inside[f]) for f in numpys)
    assert _blas() == before or len(_blas()) > len(before)  # SciPy's may have been loaded meanwhile
    after = dict(_blas())
    assert all(after[f] == k for f, k in before)
