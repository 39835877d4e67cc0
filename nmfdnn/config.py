"""Structured configs (registered with Hydra's ConfigStore) and their validation.

The dataclasses are the schema of ``conf/``: Hydra rejects unknown keys and values of the wrong
type while composing; :func:`validate` checks ranges and cross-field constraints (batch larger
than the data, ...) before any work starts, with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from .errors import NmfdnnError


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


@dataclass
class DatasetConfig:
    name: str = MISSING
    data_dir: Optional[str] = None  # default: $NMFDNN_DATA, else ~/.cache/nmfdnn
    train_subset: Optional[int] = None  # use only this many training samples (fixed random subset)
    test_subset: Optional[int] = None
    n_classes: int = 10
    # dataset=idx: paths of any IDX pair
    train_images: Optional[str] = None
    train_labels: Optional[str] = None
    test_images: Optional[str] = None
    test_labels: Optional[str] = None
    # dataset=cifar10
    grayscale: bool = False  # False: RGB flattened to 3072 features, as in the paper
    folder: Optional[str] = None  # an existing cifar-10-batches-py folder (skips the download)
    # dataset=synthetic
    n_train: int = 600
    n_test: int = 200
    n_features: int = 20
    seed: int = 0


@dataclass
class NMFSolverConfig:
    """Every choice of the NMF method; the defaults were chosen by measurement (README)."""

    name: str = "nmf"
    batch_size: int = 5000  # mini-batch of Algorithm 4 (paper: 5000)
    ae_samples: int = 5000  # random samples for the autoencoder (Alg. 5; paper: 5000)
    ae_iters: int = 5  # outer iterations of Alg. 5 (paper: 5)
    ae_nmf_iters: int = 5  # NMF (9) updates per outer iteration (10 in the paper preset; measured, README)
    ae_lsq_iters: int = 3  # Algorithm 2 iterations for (10) per outer iteration (paper: 10; measured, README)
    lsq_iters: int = 1  # Algorithm 2 and 3 iterations per batch in fine-tuning (paper: 10)
    semi_nmf_iters: int = 1  # semi-NMF (4) iterations per batch
    omega: float = 1.0  # step of Algorithms 2 and 3
    input_threshold: float = 4e-2  # truncation s_i/s_1 of the input SVD (paper: 4e-2 for MNIST)
    input_pinv: str = "chol"  # batch pseudo-inverse of X: chol or qr (both exact for the batch) or literal (paper's slice)
    pinv: str = "chol"  # hidden-layer pseudo-inverses: chol (regularised normal equations), gram or svd
    hidden_rcond: float = 1e-14  # truncation s_i/s_1 of hidden-layer pseudo-inverses
    output_init: str = "lstsq"  # W_d after pre-training: lstsq or zeros
    bias: bool = False  # bias vectors (the paper has none; its follow-up adds them)
    shuffle: bool = True  # new random mini-batches every epoch


@dataclass
class BPSolverConfig:
    """Backpropagation + Adam, as the paper's baseline (Sec. 5)."""

    name: str = "bp"
    loss: str = "mse"  # mse (the paper's objective (3)) or xent (softmax cross-entropy)
    bias: bool = True  # bias vectors (standard in TensorFlow's dense layers)
    batch_size: int = 100  # paper: 100
    lr: float = 1e-3  # Adam learning rate of the fine-tuning (paper: 1e-3)
    ae_lr: float = 1e-3  # Adam learning rate of the autoencoder (paper: 1e-3 MNIST, 5e-4 CIFAR-10)
    ae_samples: int = 5000  # autoencoder trained on this many random samples (paper: 5000)
    ae_epochs: int = 3  # autoencoder epochs per layer over those samples (not stated in the paper; measured, README)
    beta1: float = 0.9  # TensorFlow's defaults
    beta2: float = 0.999
    eps: float = 1e-8
    shuffle: bool = True


@dataclass
class BackendConfig:
    name: str = "numpy"
    threads: Optional[int] = None  # BLAS threads; None = library default (all cores)


@dataclass
class TrainConfig:
    dataset: DatasetConfig = MISSING
    solver: Any = MISSING
    backend: BackendConfig = MISSING
    hidden: list[int] = field(default_factory=lambda: [1000, 500])
    epochs: int = 10
    seed: int = 0
    dtype: DType = DType.float64
    eval_train: bool = True  # evaluate the full training set after every epoch
    progress: bool = True  # rich progress bars
    save_model: bool = True
    checkpoint: bool = True  # save checkpoint.npz after pre-training and after every epoch
    resume: bool = False  # continue from checkpoint.npz in the run directory (a finished run: no-op)


def dtype_name(cfg) -> str:
    """``cfg.dtype`` as "float32" / "float64" (an Enum in structured configs, a string in plain ones)."""
    return cfg.dtype.value if isinstance(cfg.dtype, Enum) else str(cfg.dtype)


def register_configs() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    cs.store(group="dataset", name="base_dataset", node=DatasetConfig)
    cs.store(group="solver", name="base_nmf", node=NMFSolverConfig)
    cs.store(group="solver", name="base_bp", node=BPSolverConfig)
    cs.store(group="backend", name="base_backend", node=BackendConfig)


def _positive_int(value, key):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise NmfdnnError(f"{key} must be a positive integer, got {value!r}")


def _choice(value, key, choices):
    if value not in choices:
        raise NmfdnnError(f"{key} must be one of {', '.join(choices)}, got {value!r}")


def validate(cfg, n_train: int | None = None) -> None:
    """Check ranges and cross-field constraints; raise :class:`NmfdnnError` with one line.

    ``n_train`` (known once the data are loaded) enables the checks against the data size.
    """
    hidden = list(cfg.hidden)
    if not hidden:
        raise NmfdnnError("hidden must list at least one hidden layer width, e.g. hidden=[500]")
    for i, n in enumerate(hidden):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise NmfdnnError(f"hidden[{i}] = {n!r}: every hidden width must be a positive integer")
    if not isinstance(cfg.epochs, int) or cfg.epochs < 0:
        raise NmfdnnError(f"epochs must be a nonnegative integer, got {cfg.epochs!r}")
    _choice(dtype_name(cfg), "dtype", ["float32", "float64"])
    _choice(cfg.backend.name, "backend", ["numpy", "cupy"])
    if cfg.backend.get("threads") is not None:
        _positive_int(cfg.backend.threads, "backend.threads")
    s = cfg.solver
    if s.name == "nmf":
        for key in ("batch_size", "ae_samples"):
            _positive_int(s[key], f"solver.{key}")
        for key in ("ae_iters", "ae_nmf_iters", "ae_lsq_iters", "lsq_iters", "semi_nmf_iters"):
            if not isinstance(s[key], int) or s[key] < 0:
                raise NmfdnnError(f"solver.{key} must be a nonnegative integer, got {s[key]!r}")
        if not (0 < s.omega <= 2):
            raise NmfdnnError(f"solver.omega must be in (0, 2], got {s.omega!r}")
        if not (0 <= s.input_threshold < 1):
            raise NmfdnnError(f"solver.input_threshold must be in [0, 1), got {s.input_threshold!r}")
        if not (0 <= s.hidden_rcond < 1):
            raise NmfdnnError(f"solver.hidden_rcond must be in [0, 1), got {s.hidden_rcond!r}")
        _choice(s.input_pinv, "solver.input_pinv", ["chol", "qr", "literal"])
        _choice(s.pinv, "solver.pinv", ["chol", "gram", "svd"])
        _choice(s.output_init, "solver.output_init", ["lstsq", "zeros"])
        if n_train is not None:
            if s.batch_size > n_train:
                raise NmfdnnError(f"solver.batch_size={s.batch_size} is larger than the training set ({n_train} samples); "
                                  f"set solver.batch_size={n_train} or less")
            if s.ae_samples > n_train:
                raise NmfdnnError(f"solver.ae_samples={s.ae_samples} is larger than the training set ({n_train} samples); "
                                  f"set solver.ae_samples={n_train} or less")
    elif s.name == "bp":
        for key in ("batch_size", "ae_samples"):
            _positive_int(s[key], f"solver.{key}")
        if not isinstance(s.ae_epochs, int) or s.ae_epochs < 0:
            raise NmfdnnError(f"solver.ae_epochs must be a nonnegative integer, got {s.ae_epochs!r}")
        for key in ("lr", "ae_lr", "eps"):
            if not s[key] > 0:
                raise NmfdnnError(f"solver.{key} must be positive, got {s[key]!r}")
        for key in ("beta1", "beta2"):
            if not 0 <= s[key] < 1:
                raise NmfdnnError(f"solver.{key} must be in [0, 1), got {s[key]!r}")
        _choice(s.loss, "solver.loss", ["mse", "xent"])
        if n_train is not None and s.batch_size > n_train:
            raise NmfdnnError(f"solver.batch_size={s.batch_size} is larger than the training set ({n_train} samples); "
                              f"set solver.batch_size={n_train} or less")
    else:
        raise NmfdnnError(f"unknown solver {s.name!r}")
