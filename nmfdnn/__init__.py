"""nmfdnn: deep networks trained by NMF-based alternating optimisation.

Sakurai, Imakura, Inoue and Futamura, "Alternating optimization method based on nonnegative matrix
factorizations for deep neural networks", ICONIP 2016.

``from nmfdnn import NMFNetClassifier, BPNetClassifier, load`` works as always; the estimators (and
scikit-learn behind them, about a second to import) load on first use only, so that the console
script starts without them (PEP 562 module ``__getattr__``).
"""

__version__ = "0.1.0"

__all__ = ["NMFNetClassifier", "BPNetClassifier", "load", "__version__"]

_LAZY = {"NMFNetClassifier", "BPNetClassifier", "load"}


def __getattr__(name):
    if name in _LAZY:
        from . import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module 'nmfdnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _LAZY)
