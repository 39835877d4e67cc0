"""Structured configs (registered with Hydra's ConfigStore) and their validation.

The dataclasses are the schema of ``conf/``: Hydra rejects unknown keys and values of the wrong
type while composing; :func:`validate` checks ranges and cross-field constraints (batch larger
than the data, ...) before any work starts, with a one-line message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from .errors import NmfdnnError


class Choice(str, Enum):
    """A config choice: compares, prints and formats as its value ("chol", not "Pinv.chol")."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


def _choices(name: str, *values: str) -> type[Choice]:
    """A string enum (OmegaConf rejects any other value while composing), picklable by name."""
    return Choice(name, {v: v for v in values}, module=__name__, qualname=name)


DType = _choices("DType", "float32", "float64")
Pinv = _choices("Pinv", "chol", "gram", "svd")  # hidden-layer pseudo-inverses (nmfdnn.method.linalg)
InputPinv = _choices("InputPinv", "chol", "qr", "literal")  # the batch input pseudo-inverse of Sec. 3.3
OutputInit = _choices("OutputInit", "lstsq", "zeros")
Loss = _choices("Loss", "mse", "xent")
BackendName = _choices("BackendName", "numpy", "cupy")


# -- data sets: one schema each, so that a key of another data set is rejected while composing ---------
@dataclass
class DatasetConfig:
    """What every data set has."""

    name: str = MISSING
    data_dir: Optional[str] = None  # default: $NMFDNN_DATA, else ~/.cache/nmfdnn
    train_subset: Optional[int] = None  # use only this many training samples (fixed random subset)
    test_subset: Optional[int] = None
    val_size: int = 0  # hold out this many training samples for validation (0: none, the paper's setting)
    val_seed: int = 0  # which ones (fixed, independent of the run's seed)


@dataclass
class MNISTConfig(DatasetConfig):
    name: str = "mnist"


@dataclass
class FashionMNISTConfig(DatasetConfig):
    name: str = "fashion_mnist"


@dataclass
class CIFAR10Config(DatasetConfig):
    name: str = "cifar10"
    grayscale: bool = False  # False: RGB flattened to 3072 features, as in the paper
    folder: Optional[str] = None  # an existing cifar-10-batches-bin (or -py) folder (skips the download)


@dataclass
class IDXConfig(DatasetConfig):
    name: str = "idx"
    train_images: str = MISSING
    train_labels: str = MISSING
    test_images: str = MISSING
    test_labels: str = MISSING
    n_classes: int = 10


@dataclass
class SyntheticConfig(DatasetConfig):
    name: str = "synthetic"
    n_train: int = 600
    n_test: int = 200
    n_features: int = 20
    n_classes: int = 3
    seed: int = 0


@dataclass
class ArrayConfig(DatasetConfig):
    """In-memory arrays handed to the estimators (:mod:`nmfdnn.estimator`)."""

    name: str = "array"


DATASET_SCHEMAS = {"mnist": MNISTConfig, "fashion_mnist": FashionMNISTConfig, "cifar10": CIFAR10Config,
                   "idx": IDXConfig, "synthetic": SyntheticConfig}


# -- solvers -------------------------------------------------------------------------------------
@dataclass
class NMFSolverConfig:
    """Every choice of the NMF method: the one set of defaults (the YAML and the functions take them
    from here); chosen by measurement (outputs/results/)."""

    name: str = "nmf"
    batch_size: int = 5000  # mini-batch of Algorithm 4 (paper: 5000); must exceed the widest layer
    ae_samples: int = 5000  # random samples for the autoencoder (Alg. 5; paper: 5000)
    ae_iters: int = 5  # outer iterations of Alg. 5 (paper: 5)
    ae_nmf_iters: int = 5  # NMF (9) updates per outer iteration (10 in the paper preset)
    ae_lsq_iters: int = 3  # Algorithm 2 iterations for (10) per outer iteration (paper: 10)
    lsq_iters: int = 1  # Algorithm 2 and 3 iterations per batch in fine-tuning (paper: 10)
    semi_nmf_iters: int = 1  # semi-NMF (4) iterations per batch
    omega: float = 1.0  # step of Algorithms 2 and 3
    input_threshold: float = 4e-2  # truncation s_i/s_1 of the input SVD (paper: 4e-2 for MNIST)
    input_pinv: InputPinv = InputPinv.chol  # chol or qr (both exact for the batch) or literal (paper's slice)
    pinv: Pinv = Pinv.chol  # hidden-layer pseudo-inverses: chol (regularised normal equations), gram or svd
    hidden_rcond: float = 1e-14  # truncation s_i/s_1 of hidden-layer pseudo-inverses
    # precision of the small factorisations (Cholesky/eigen/SVD/QR of the Gram and batch matrices; the
    # products, the Gram products included, stay in dtype): float64 whatever dtype (mixed precision under
    # dtype=float32, no change under float64); null: dtype (pure float32, as before; outputs/results/)
    factor_dtype: Optional[DType] = DType.float64
    output_init: OutputInit = OutputInit.lstsq  # W_d after pre-training: lstsq or zeros
    bias: bool = False  # bias vectors (the paper has none; its follow-up adds them)
    shuffle: bool = True  # new random mini-batches every epoch
    # Beyond the paper (Arai, Imakura and Sakurai 2018); 0 / off / null: the paper's method, unchanged.
    alpha: float = 0.0  # ridge on every W update of Alg. 4 and W_d's init: W = B A^T (A A^T + a I)^-1, a = alpha trace(A A^T)/p
    beta: float = 0.0  # + beta Z in numerator and denominator of semi-NMF's Z update
    lam: float = 0.0  # Algorithm 3 with (A^T A + l I)^-1 A^T for A^dagger, l = lam ||A||_F^2 / min(q, p)
    safeguard: bool = False  # Algorithms 2/3 accept a step only if the residual falls, else halve omega
    layer_omega: Optional[list[float]] = None  # omega per layer (W_1 ... W_{d-1}); null: omega everywhere


@dataclass
class BPSolverConfig:
    """Backpropagation + Adam, as the paper's baseline (Sec. 5)."""

    name: str = "bp"
    loss: Loss = Loss.mse  # mse (the paper's objective (3)) or xent (softmax cross-entropy)
    bias: bool = True  # bias vectors (standard in TensorFlow's dense layers)
    batch_size: int = 100  # paper: 100
    lr: float = 1e-3  # Adam learning rate of the fine-tuning (paper: "initial learning rate" 1e-3)
    lr_decay: float = 1.0  # fine-tuning epoch e (0-based) uses lr * lr_decay**e (not stated; 1 = constant)
    ae_lr: float = 1e-3  # Adam learning rate of the autoencoder (paper: 1e-3 MNIST, 5e-4 CIFAR-10)
    ae_samples: int = 5000  # autoencoder trained on this many random samples (paper: 5000)
    ae_epochs: int = 3  # autoencoder epochs per layer over those samples (not stated in the paper)
    beta1: float = 0.9  # TensorFlow's defaults
    beta2: float = 0.999
    eps: float = 1e-8
    shuffle: bool = True


SOLVER_SCHEMAS = {"nmf": NMFSolverConfig, "bp": BPSolverConfig}


@dataclass
class BackendConfig:
    name: BackendName = BackendName.numpy
    threads: Optional[int] = None  # BLAS threads; None = library default (all cores)


@dataclass
class TrainConfig:
    dataset: Any = MISSING
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


# Keys that never change what a run computes: resume compares configs without them, the report
# groups runs without them (and without the seed, the replicate index), and a sweep's directory
# names (hydra.job.override_dirname) leave them out. ``backend.threads`` may change the last bits
# of a BLAS reduction, not the method: runs that differ only in it are replicates.
NON_RESULT_KEYS = ("resume", "progress", "checkpoint", "save_model", "eval_train", "dataset.data_dir",
                   "backend.threads")


def dtype_name(cfg) -> str:
    """``cfg.dtype`` as "float32" / "float64" (an Enum in structured configs, a string in plain ones)."""
    return cfg.dtype.value if isinstance(cfg.dtype, Enum) else str(cfg.dtype)


def effective(config: dict) -> dict:
    """A plain config dict with the values that ``null`` stands for filled in (``solver.factor_dtype``
    null = ``dtype``), so that two configs that run the same computation compare equal."""
    solver = config.get("solver")
    if not isinstance(solver, dict) or solver.get("factor_dtype", "") is not None:
        return config
    return {**config, "solver": {**solver, "factor_dtype": config.get("dtype")}}


def conf_dir() -> str:
    """Where the configs are: ``nmfdnn/conf`` in an installed wheel, else the repository's ``conf/``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "conf", here.parent / "conf"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise NmfdnnError(f"cannot find the configuration directory (looked in {here / 'conf'} and {here.parent / 'conf'})")


def _sqlite_url(path: str) -> str:
    """``sqlite:///ABSOLUTE_PATH`` for an optuna study, its folder created (the sweep directory does not
    exist yet when the sweeper opens the study)."""
    p = Path(path).expanduser().absolute()
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore at the root (not in the groups, so that
    ``--help`` lists only real options); each YAML of a group extends its schema with
    ``defaults: [/schema_GROUP_NAME@_here_]``."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    # conf/train.yaml names the sweep subdirectories (hydra.job.override_dirname) without these keys
    OmegaConf.register_new_resolver("nmfdnn_non_result_keys", lambda: list(NON_RESULT_KEYS), replace=True)
    # conf/hydra/launcher/slurm.yaml: CPUs per task from backend.threads, a GPU for backend=cupy
    OmegaConf.register_new_resolver("nmfdnn_cpus", lambda threads: int(threads) if threads else 2, replace=True)
    OmegaConf.register_new_resolver("nmfdnn_gpus", lambda backend: 1 if str(backend) == "cupy" else None,
                                    replace=True)
    OmegaConf.register_new_resolver("nmfdnn_sqlite", _sqlite_url, replace=True)  # hparams_search studies
    OmegaConf.register_new_resolver(  # a short, stable folder name for a long set of overrides
        "nmfdnn_digest", lambda text: __import__("hashlib").sha1(str(text).encode()).hexdigest()[:12], replace=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, node in DATASET_SCHEMAS.items():
        cs.store(name=f"schema_dataset_{name}", node=node)
    for name, node in SOLVER_SCHEMAS.items():
        cs.store(name=f"schema_solver_{name}", node=node)
    cs.store(name="schema_backend", node=BackendConfig)


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line composition errors as one line."""
    parts, options = [], []
    for e in (exc, exc.__cause__):
        if e is None:
            continue
        in_options = False
        for line in str(e).splitlines():
            line = line.strip()
            if not line or line.startswith(("provider=", "Config search path", "full_key:", "object_type=",
                                            "reference_type=", "To append to your config", "Set the environment")):
                continue
            if line.startswith("Available options in"):
                in_options = True
                parts.append(line.rstrip(":"))
            elif in_options:
                options.append(line)
            else:
                parts.append(line)
    text = "; ".join(parts) + (": " + ", ".join(options) if options else "")
    return text or type(exc).__name__


def plain_overrides(args: list[str]) -> list[str]:
    """The overrides of a command line without sweeps and ``hydra.*`` keys (what a single compose
    can take); raises :class:`NmfdnnError` with one line for an override that does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception as e:
        raise NmfdnnError(one_line(e)) from None
    return [o.input_line for o in parsed
            if not o.is_sweep_override() and not o.get_key_element().startswith(("hydra", "+hydra", "~hydra"))]


def compose_config(overrides: list[str], return_hydra_config: bool = False, check: bool = True):
    """The ``train`` config composed through Hydra's compose API with ``overrides``, as ``nmfdnn
    train`` composes it: the one helper every command and test uses. Composition errors (unknown
    key, wrong type, unknown option) become a one-line :class:`NmfdnnError`; with ``check`` the
    result is also :func:`validate`-d."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=return_hydra_config)
    except Exception as e:
        raise NmfdnnError(one_line(e)) from None
    finally:
        GlobalHydra.instance().clear()
    if check:
        validate(cfg)
    return cfg


def _positive_int(value, key):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise NmfdnnError(f"{key} must be a positive integer, got {value!r}")


def widest_rows(cfg) -> int:
    """Rows of the widest hidden layer's ``[Z_i; e^T]`` (the bias row counts): an NMF mini-batch must
    have more samples, or every batch is fitted exactly."""
    return max(cfg.hidden) + int(bool(cfg.solver.get("bias", False)))


def validate(cfg, n_train: int | None = None, batch_guard: bool = True) -> None:
    """Check ranges and cross-field constraints; raise :class:`NmfdnnError` with one line.

    ``n_train`` (known once the data are loaded) enables the checks against the data size.
    ``batch_guard=False`` skips the check that NMF mini-batches exceed the widest layer (the
    estimators' automatic batch size on tiny data sets: they warn instead).
    """
    hidden = list(cfg.hidden)
    if not hidden:
        raise NmfdnnError("hidden must list at least one hidden layer width, e.g. hidden=[500]")
    for i, n in enumerate(hidden):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise NmfdnnError(f"hidden[{i}] = {n!r}: every hidden width must be a positive integer")
    if not isinstance(cfg.epochs, int) or cfg.epochs < 0:
        raise NmfdnnError(f"epochs must be a nonnegative integer, got {cfg.epochs!r}")
    val_size = cfg.dataset.get("val_size", 0) or 0
    if val_size < 0:
        raise NmfdnnError(f"dataset.val_size must be 0 or more, got {val_size}")
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
        for key in ("alpha", "beta", "lam"):
            if not s[key] >= 0:
                raise NmfdnnError(f"solver.{key} must be 0 or more, got {s[key]!r}")
        if s.layer_omega is not None:
            if len(s.layer_omega) != len(hidden) or not all(0 < w <= 2 for w in s.layer_omega):
                raise NmfdnnError(f"solver.layer_omega must list one omega in (0, 2] per hidden layer "
                                  f"({len(hidden)}), got {list(s.layer_omega)}")
        if not (0 <= s.input_threshold < 1):
            raise NmfdnnError(f"solver.input_threshold must be in [0, 1), got {s.input_threshold!r}")
        if not (0 <= s.hidden_rcond < 1):
            raise NmfdnnError(f"solver.hidden_rcond must be in [0, 1), got {s.hidden_rcond!r}")
        if n_train is not None:
            if s.batch_size > n_train:
                raise NmfdnnError(f"solver.batch_size={s.batch_size} is larger than the training set ({n_train} samples); "
                                  f"set solver.batch_size={n_train} or less")
            if s.ae_samples > n_train:
                raise NmfdnnError(f"solver.ae_samples={s.ae_samples} is larger than the training set ({n_train} samples); "
                                  f"set solver.ae_samples={n_train} or less")
        widest = widest_rows(cfg)
        smallest = s.batch_size if n_train is None else n_train // max(1, -(-n_train // s.batch_size))
        if smallest <= widest and batch_guard:
            what = f"solver.batch_size={s.batch_size}" if smallest == s.batch_size else \
                f"the smallest mini-batch ({smallest} samples of {n_train} at solver.batch_size={s.batch_size})"
            rows = f"{max(hidden)} units + the bias row" if s.bias else f"{widest} units"
            raise NmfdnnError(f"{what} must exceed the widest hidden layer ({rows}): "
                              "with no more samples than rows every batch is fitted exactly and the network "
                              f"fails; use solver.batch_size={max(5000, 2 * widest)} or narrower layers")
    elif s.name == "bp":
        for key in ("batch_size", "ae_samples"):
            _positive_int(s[key], f"solver.{key}")
        if not isinstance(s.ae_epochs, int) or s.ae_epochs < 0:
            raise NmfdnnError(f"solver.ae_epochs must be a nonnegative integer, got {s.ae_epochs!r}")
        for key in ("lr", "ae_lr", "eps"):
            if not s[key] > 0:
                raise NmfdnnError(f"solver.{key} must be positive, got {s[key]!r}")
        if not 0 < s.lr_decay <= 1:
            raise NmfdnnError(f"solver.lr_decay must be in (0, 1], got {s.lr_decay!r}")
        for key in ("beta1", "beta2"):
            if not 0 <= s[key] < 1:
                raise NmfdnnError(f"solver.{key} must be in [0, 1), got {s[key]!r}")
        if n_train is not None and s.batch_size > n_train:
            raise NmfdnnError(f"solver.batch_size={s.batch_size} is larger than the training set ({n_train} samples); "
                              f"set solver.batch_size={n_train} or less")
    else:
        raise NmfdnnError(f"unknown solver {s.name!r}")
