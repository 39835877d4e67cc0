"""CuPy backend: agreement with NumPy. Skipped cleanly without CuPy or a CUDA device; the rest of
the suite never imports CuPy."""

import numpy as np
import pytest

from util import compose_train




def _cupy_with_device():
    cupy = pytest.importorskip("cupy")
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            pytest.skip("no CUDA device")
    except cupy.cuda.runtime.CUDARuntimeError as e:  # no driver or no device; any other error fails
        pytest.skip(f"no usable CUDA device ({e})")
    return cupy


@pytest.mark.gpu
@pytest.mark.parametrize("solver", ["nmf", "bp"])
def test_one_epoch_agrees_with_numpy(solver):
    """float64, same seed, one epoch: weights agree to 1e-8 relative."""
    _cupy_with_device()
    from nmfdnn.data import load_dataset
    from nmfdnn.train import fit

    base = ["dataset=synthetic", "dataset.n_train=3000", "dataset.n_features=50", "hidden=[64,32]", "epochs=1",
            "progress=false", "dtype=float64"]
    base += ["solver=bp", "solver.ae_epochs=1"] if solver == "bp" else ["solver.batch_size=1000",
                                                                          "solver.ae_samples=1000"]
    cpu_cfg = compose_train(base)
    gpu_cfg = compose_train(base + ["backend=cupy"])
    data = load_dataset(cpu_cfg.dataset)
    a = fit(cpu_cfg, data).weights
    b = fit(gpu_cfg, data).weights
    for Wa, Wb in zip(a, b):
        assert np.linalg.norm(Wa - Wb) <= 1e-8 * np.linalg.norm(Wa)


def test_backend_without_cupy_is_a_one_line_error(monkeypatch):
    """Runs everywhere: with CuPy unimportable, backend=cupy is a user error, not a traceback."""
    import builtins

    from nmfdnn.backend import get_backend
    from nmfdnn.errors import NmfdnnError

    real_import = builtins.__import__

    def no_cupy(name, *args, **kwargs):
        if name == "cupy" or name.startswith("cupy."):
            raise ImportError("no cupy")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cupy)
    with pytest.raises(NmfdnnError, match=r"pip install 'nmfdnn\[gpu\]'"):
        get_backend("cupy", "float64")
