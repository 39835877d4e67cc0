"""nmfdnn: fully-connected deep networks trained by NMF-based alternating optimisation.

Sakurai, Imakura, Inoue and Futamura, "Alternating optimization method based on nonnegative matrix
factorizations for deep neural networks", ICONIP 2016.
"""

__version__ = "0.1.0"

from .estimator import BPNetClassifier, NMFNetClassifier, load  # noqa: E402,F401

__all__ = ["NMFNetClassifier", "BPNetClassifier", "load", "__version__"]
