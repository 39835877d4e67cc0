"""The schema of ``conf/``: one dataclass per data set, solver and backend, registered with Hydra's
ConfigStore (:mod:`nmfdnn.config.hydra`). Every key is declared here, and only here, with its default,
its range and a one-line help (:func:`nmfdnn.config.ranges.key`): Hydra rejects unknown keys and values
of the wrong type while composing, :func:`nmfdnn.config.validate` values out of their range, ``nmfdnn
train --help`` prints all three, and the estimators (:mod:`nmfdnn.estimator`) take the same keys."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING

from ..method.activations import NAMES as ACTIVATIONS
from .ranges import Interval, Options, key


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
Loss = _choices("Loss", "mse", "xent", "squared", "cross_entropy")  # squared = mse, cross_entropy = xent
BackendName = _choices("BackendName", "numpy", "cupy")

POSITIVE = Interval(int, 1)  # a count: 1, 2, ...
NONNEGATIVE = Interval(int, 0)
AT_LEAST_ZERO = Interval(float, 0)  # a finite number >= 0: a penalty, a ridge, a damping
ABOVE_ZERO = Interval(float, 0, None, "neither")  # a finite positive number: a learning rate, a scale
# The most iterations a key of one step may ask for (the paper uses at most 10; solver.cg_iters
# defaults to 10): a larger count is a typo, and would hold a single batch for hours
MAX_ITERS = 1000
ITERS = Interval(int, 0, MAX_ITERS)
SOME_ITERS = Interval(int, 1, MAX_ITERS)  # at least one: 0 would leave the quantity unchanged
SHARE = Interval(float, 0, 1, "left")  # a share s_i / s_1 below 1


# -- data sets: one schema each, so that a key of another data set is rejected while composing ---------
@dataclass
class DatasetConfig:
    """What every data set has."""

    name: str = key(MISSING, "the data set (chosen with dataset=NAME)")
    data_dir: Optional[str] = key(None, "the data cache; null: $NMFDNN_DATA, else ~/.cache/nmfdnn")
    train_subset: Optional[int] = key(None, "use only this many training samples (a fixed random subset); null: all",
                                      POSITIVE)
    test_subset: Optional[int] = key(None, "use only this many test samples; null: all", POSITIVE)
    val_size: int = key(0, "hold out this many training samples for validation (0: none, the paper's setting)",
                        NONNEGATIVE)
    val_seed: int = key(0, "which ones (fixed, independent of the run's seed)", NONNEGATIVE)


@dataclass
class MNISTConfig(DatasetConfig):
    name: str = "mnist"


@dataclass
class FashionMNISTConfig(DatasetConfig):
    name: str = "fashion_mnist"


@dataclass
class CIFAR10Config(DatasetConfig):
    name: str = "cifar10"
    grayscale: bool = key(False, "false: RGB flattened to 3072 features, as in the paper")
    folder: Optional[str] = key(None, "an existing cifar-10-batches-bin (or -py) folder (skips the download)")


@dataclass
class IDXConfig(DatasetConfig):
    name: str = "idx"
    train_images: str = key(MISSING, "the IDX file (MNIST's format) of the training images")
    train_labels: str = key(MISSING, "the IDX file of the training labels")
    test_images: str = key(MISSING, "the IDX file of the test images")
    test_labels: str = key(MISSING, "the IDX file of the test labels")
    n_classes: int = key(10, "classes of the labels", Interval(int, 2))


@dataclass
class SyntheticConfig(DatasetConfig):
    name: str = "synthetic"
    n_train: int = key(600, "training samples of the Gaussian clusters", POSITIVE)
    n_test: int = key(200, "test samples", POSITIVE)
    n_features: int = key(20, "features per sample", POSITIVE)
    n_classes: int = key(3, "clusters, one per class", Interval(int, 2))
    seed: int = key(0, "the clusters' seed", NONNEGATIVE)
    image: Optional[list[int]] = key(None, "[c, h, w]: samples are c x h x w images (n_features unused)", POSITIVE)


@dataclass
class ArrayConfig(DatasetConfig):
    """In-memory arrays handed to the estimators (:mod:`nmfdnn.estimator`)."""

    name: str = "array"
    image: Optional[list[int]] = key(None, "[c, h, w]: each row of X is a c x h x w image, C order (conv nets)",
                                     POSITIVE)


DATASET_SCHEMAS = {"mnist": MNISTConfig, "fashion_mnist": FashionMNISTConfig, "cifar10": CIFAR10Config,
                   "idx": IDXConfig, "synthetic": SyntheticConfig}


# -- solvers -------------------------------------------------------------------------------------
@dataclass
class NMFSolverConfig:
    """Every choice of the NMF method: the one set of defaults (the YAML and the functions take them
    from here); chosen by measurement (outputs/defaults/)."""

    name: str = key("nmf", "the NMF method (Alg. 5 pre-training, Alg. 4 fine-tuning)")
    batch_size: int = key(5000, "mini-batch of Algorithm 4 (paper: 5000); must exceed the widest layer", POSITIVE)
    ae_samples: int = key(5000, "random samples for the autoencoder (Alg. 5; paper: 5000)", POSITIVE)
    ae_iters: int = key(5, "outer iterations of Alg. 5 (paper: 5)", ITERS)
    ae_nmf_iters: int = key(5, "NMF (9) updates per outer iteration (10 in the paper preset)", ITERS)
    ae_lsq_iters: int = key(3, "Algorithm 2 iterations for (10) per outer iteration (paper: 10)", ITERS)
    lsq_iters: int = key(1, "Algorithm 2 and 3 iterations per batch in fine-tuning (paper: 10)", ITERS)
    semi_nmf_iters: int = key(1, "semi-NMF (4) iterations per batch", ITERS)
    omega: float = key(1.0, "step of Algorithms 2 and 3", Interval(float, 0, 2, "right"))
    input_threshold: float = key(4e-2, "truncation s_i/s_1 of the input SVD (paper: 4e-2 for MNIST)", SHARE)
    input_energy: Optional[float] = key(None, "instead: the leading directions holding this share of sum s_i^2",
                                        Interval(float, 0, 1, "right"))
    input_pinv: InputPinv = key(InputPinv.chol, "chol or qr (both exact for the batch) or literal (paper's slice)")
    pinv: Pinv = key(Pinv.chol, "hidden-layer pseudo-inverses: chol (regularised normal equations), gram or svd")
    hidden_rcond: float = key(1e-14, "truncation s_i/s_1 of hidden-layer pseudo-inverses", SHARE)
    # the products, the Gram products included, stay in dtype: float64 is mixed precision under
    # dtype=float32 and no change under float64 (outputs/defaults/)
    factor_dtype: Optional[DType] = key(DType.float64, "precision of the Cholesky/eigen/SVD/QR factorisations of the "
                                        "Gram and batch matrices; null: dtype")
    output_init: OutputInit = key(OutputInit.lstsq, "W_d after pre-training: lstsq or zeros")
    bias: bool = key(False, "bias vectors (the paper has none; its follow-up adds them)")
    shuffle: bool = key(True, "new random mini-batches every epoch")
    # Beyond the paper (Arai, Imakura and Sakurai 2018); 0 / off / null: the paper's method, unchanged.
    alpha: float = key(0.0, "ridge on every W update of Alg. 4 and W_d's init: W = B A^T (A A^T + a I)^-1, "
                       "a = alpha trace(A A^T)/p", AT_LEAST_ZERO)
    beta: float = key(0.0, "+ beta Z in numerator and denominator of semi-NMF's Z update", AT_LEAST_ZERO)
    lam: float = key(0.0, "Algorithm 3 with (A^T A + l I)^-1 A^T for A^dagger, l = lam ||A||_F^2 / min(q, p)",
                     AT_LEAST_ZERO)
    safeguard: bool = key(False, "Algorithms 2/3 accept a step only if the residual falls, else halve omega")
    layer_omega: Optional[list[float]] = key(None, "omega per layer (W_1 ... W_{d-1}, conv layers first); null: "
                                             "omega everywhere", Interval(float, 0, 2, "right"))
    ae_normalize: bool = key(False, "Alg. 5: rescale each NMF factor row of Z_hat to max 1 (W~ compensates)")
    cg_iters: int = key(10, "conv nets: CGLS steps for L^+ in Algorithm 3 through a convolution (method/conv.py)",
                        SOME_ITERS)
    freeze_conv: bool = key(False, "conv nets: keep the conv weights at their pre-training values (the ablation)")
    l1_weights: float = key(0.0, "L1 penalty on the weights: soft threshold after each Alg. 2 step (method/sparse.py)",
                            AT_LEAST_ZERO)
    l1_activations: float = key(0.0, "L1 penalty on the hidden targets: semi-NMF's Z update and Alg. 3",
                                AT_LEAST_ZERO)
    # alg2: Algorithm 3's target, then Algorithm 2 on the patches; gauss_newton: the filters fitted to the
    # layer above's target through it (method/filters.py)
    filter_step: str = key("alg2", "conv nets: how the filters are fitted", Options(("alg2", "gauss_newton")))
    filter_rho: float = key(1e-3, "gauss_newton: damping rho relative to ||J W||^2 / ||W||^2", AT_LEAST_ZERO)
    filter_cg_iters: int = key(10, "gauss_newton: CG steps on its normal equations", SOME_ITERS)
    filter_order: str = key("after", "gauss_newton: after the layer above's W step, or before it (on its residual)",
                            Options(("after", "before")))
    filter_target: str = key("above", "gauss_newton: the layer above's target, or output (Y through every layer "
                             "above)", Options(("above", "output")))
    filter_trace: bool = key(False, "conv nets: record each batch's filter step (share of the residual above removed)")
    # Algorithm 5 on centred, ZCA-whitened patches split into positive and negative parts (method/filterbank.py)
    ae_whiten: Optional[float] = key(None, "conv nets: Alg. 5 on whitened patches, this regulariser relative to the "
                                     "mean eigenvalue; null: on the pooled patches", AT_LEAST_ZERO)
    ae_patches: int = key(100000, "ae_whiten: the random patches Algorithm 5 factors", Interval(int, 1, 10 ** 7))
    # running Gram matrices, float64, across batches and epochs, in every Algorithm 2 and semi-NMF weight step
    memory: float = key(0.0, "G = memory G + A A^T in the weight steps; 0: each batch's own (the paper's step)",
                        Interval(float, 0, 1))


@dataclass
class BPSolverConfig:
    """Backpropagation + Adam, as the paper's baseline (Sec. 5)."""

    name: str = key("bp", "backpropagation + Adam (the paper's baseline)")
    loss: Loss = key(Loss.mse, "squared (= mse, the paper's objective (3)) or cross_entropy (= xent, softmax output)")
    bias: bool = key(True, "bias vectors (standard in TensorFlow's dense layers)")
    batch_size: int = key(100, "mini-batch (paper: 100)", POSITIVE)
    lr: float = key(1e-3, "Adam learning rate of the fine-tuning (paper: \"initial learning rate\" 1e-3)", ABOVE_ZERO)
    lr_decay: float = key(1.0, "fine-tuning epoch e (0-based) uses lr * lr_decay**e (not stated; 1 = constant)",
                          Interval(float, 0, 1, "right"))
    ae_lr: float = key(1e-3, "Adam learning rate of the autoencoder (paper: 1e-3 MNIST, 5e-4 CIFAR-10)", ABOVE_ZERO)
    ae_samples: int = key(5000, "autoencoder trained on this many random samples (paper: 5000)", POSITIVE)
    ae_epochs: int = key(3, "autoencoder epochs per layer over those samples (not stated in the paper)", ITERS)
    beta1: float = key(0.9, "Adam's beta1 (TensorFlow's default)", Interval(float, 0, 1, "left"))
    beta2: float = key(0.999, "Adam's beta2 (TensorFlow's default)", Interval(float, 0, 1, "left"))
    eps: float = key(1e-8, "Adam's epsilon (TensorFlow's default)", ABOVE_ZERO)
    shuffle: bool = key(True, "new random mini-batches every epoch")
    freeze_conv: bool = key(False, "conv nets: keep the conv filters at their initialisation (the ablation)")


SOLVER_SCHEMAS = {"nmf": NMFSolverConfig, "bp": BPSolverConfig}


@dataclass
class BackendConfig:
    name: BackendName = key(BackendName.numpy, "the array library: numpy (CPU) or cupy (GPU)")
    threads: Optional[int] = key(None, "BLAS threads; null: the library's default (all cores)", POSITIVE)


@dataclass
class ConvLayerConfig:
    """One convolutional layer of ``conv`` (applied before the dense layers of ``hidden``)."""

    channels: int = key(MISSING, "filters", POSITIVE)
    kernel: int = key(MISSING, "kernel x kernel", POSITIVE)
    stride: int = key(1, "stride", POSITIVE)
    padding: int = key(0, "zeros on each side", NONNEGATIVE)
    pool: int = key(1, "pool x pool average pooling before the activation (1: none)", POSITIVE)


# -- trackers (conf/logger/): logger=mlflow, logger=tensorboard or logger=[mlflow,tensorboard] ---------------
@dataclass
class MLflowLoggerConfig:
    """The run in an MLflow tracking store (nmfdnn.trackers.mlflow; pip install 'nmfdnn[mlflow]')."""

    # null: the local store mlruns/ in the working directory, beside outputs/ (sqlite:///mlruns/mlflow.db,
    # artifacts in mlruns/artifacts)
    tracking_uri: Optional[str] = key(None, "any MLflow URI (http://host:5000, ...); null: $MLFLOW_TRACKING_URI if "
                                      "set, else mlruns/ here")
    experiment_name: str = key("nmfdnn", "the MLflow experiment")
    run_name: Optional[str] = key(None, "null: the run folder's name; a sweep's job: its overrides")
    log_artifacts: bool = key(True, "the run's files as the MLflow run's artifacts at its end")


@dataclass
class TensorBoardLoggerConfig:
    """TensorBoard event files: scalars per epoch and the hyper-parameters (nmfdnn.trackers.tensorboard;
    pip install 'nmfdnn[tensorboard]')."""

    save_dir: Optional[str] = key(None, "null: the run folder's tensorboard/")


@dataclass
class LoggerConfig:
    mlflow: Optional[MLflowLoggerConfig] = key(None, "MLflow tracking (logger=mlflow)")
    tensorboard: Optional[TensorBoardLoggerConfig] = key(None, "TensorBoard event files (logger=tensorboard)")


@dataclass
class TrainConfig:
    dataset: Any = key(MISSING, "the data set and its keys (dataset=NAME)")
    solver: Any = key(MISSING, "the method and its keys (solver=nmf or solver=bp)")
    backend: BackendConfig = key(MISSING, "the array library")
    hidden: list[int] = key(help="widths of the dense hidden layers", range=POSITIVE, factory=lambda: [1000, 500])
    conv: list[ConvLayerConfig] = key(help="convolutional layers before hidden; []: none", factory=list)
    activation: str = key("relu", "hidden layers' f (method/activations.py)", Options(tuple(ACTIVATIONS)))
    activation_slope: float = key(0.01, "leaky_relu: f(u) = max(u, slope u)", Interval(float, 0, 1, "neither"))
    activation_cap: float = key(6.0, "capped_relu: f(u) = min(max(u, 0), cap)", ABOVE_ZERO)
    activation_beta: float = key(1.0, "softplus: f(u) = log(1 + exp(beta u)) / beta", ABOVE_ZERO)
    epochs: int = key(10, "fine-tuning epochs after pre-training", NONNEGATIVE)
    seed: int = key(0, "the run's random seed (initialisation, samples, batches)", NONNEGATIVE)
    dtype: DType = key(DType.float64, "precision of the arrays")
    eval_train: bool = key(True, "evaluate the full training set after every epoch")
    progress: bool = key(True, "rich progress bars")
    save_model: bool = key(True, "write model.npz at the end")
    checkpoint: bool = key(True, "save checkpoint.npz after pre-training and after every epoch")
    resume: bool = key(False, "continue from checkpoint.npz in the run directory (a finished run: no-op)")
    logger: Optional[LoggerConfig] = key(None, "experiment trackers (conf/logger/): logger=[mlflow,tensorboard]")
