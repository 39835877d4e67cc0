"""The schema of ``conf/``: one dataclass per data set, solver and backend, registered with Hydra's
ConfigStore (:mod:`nmfdnn.config.hydra`). Every key and its default are set here, and only here;
Hydra rejects unknown keys and values of the wrong type while composing."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import MISSING


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
    image: Optional[list[int]] = None  # [c, h, w]: samples are c x h x w images (n_features unused)


@dataclass
class ArrayConfig(DatasetConfig):
    """In-memory arrays handed to the estimators (:mod:`nmfdnn.estimator`)."""

    name: str = "array"
    image: Optional[list[int]] = None  # [c, h, w]: each row of X is a c x h x w image, C order (conv nets)


DATASET_SCHEMAS = {"mnist": MNISTConfig, "fashion_mnist": FashionMNISTConfig, "cifar10": CIFAR10Config,
                   "idx": IDXConfig, "synthetic": SyntheticConfig}


# -- solvers -------------------------------------------------------------------------------------
@dataclass
class NMFSolverConfig:
    """Every choice of the NMF method: the one set of defaults (the YAML and the functions take them
    from here); chosen by measurement (outputs/defaults/)."""

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
    input_energy: Optional[float] = None  # instead: the leading directions holding this share of sum s_i^2
    input_pinv: InputPinv = InputPinv.chol  # chol or qr (both exact for the batch) or literal (paper's slice)
    pinv: Pinv = Pinv.chol  # hidden-layer pseudo-inverses: chol (regularised normal equations), gram or svd
    hidden_rcond: float = 1e-14  # truncation s_i/s_1 of hidden-layer pseudo-inverses
    # precision of the small factorisations (Cholesky/eigen/SVD/QR of the Gram and batch matrices; the
    # products, the Gram products included, stay in dtype): float64 whatever dtype (mixed precision under
    # dtype=float32, no change under float64); null: dtype (pure float32; outputs/defaults/)
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
    ae_normalize: bool = False  # Alg. 5: rescale each NMF factor row of Z_hat to max 1 (W~ compensates)
    cg_iters: int = 10  # conv nets: CGLS steps for L^+ in Algorithm 3 through a convolution (method/conv.py)
    freeze_conv: bool = False  # conv nets: keep the conv weights at their pre-training values (the ablation)
    l1_weights: float = 0.0  # L1 penalty on the weights: soft threshold after each Alg. 2 step (method/sparse.py)
    l1_activations: float = 0.0  # L1 penalty on the hidden targets: semi-NMF's Z update and Alg. 3
    # conv nets: alg2 (Algorithm 3's target, then Algorithm 2 on the patches) or gauss_newton (the filters
    # fitted to the layer above's target through it, method/filters.py)
    filter_step: str = "alg2"
    filter_rho: float = 1e-3  # gauss_newton: damping rho relative to ||J W||^2 / ||W||^2
    filter_cg_iters: int = 10  # gauss_newton: CG steps on its normal equations
    filter_order: str = "after"  # gauss_newton: after the layer above's W step, or before it (on its residual)
    filter_target: str = "above"  # gauss_newton: the layer above's target, or output (Y through every layer above)
    filter_trace: bool = False  # conv nets: record each batch's filter step (share of the residual above removed)
    # conv nets: Algorithm 5 on centred, ZCA-whitened patches (this regulariser, relative to the mean
    # eigenvalue) split into positive and negative parts (method/filterbank.py); null: on the pooled patches
    ae_whiten: Optional[float] = None
    ae_patches: int = 100000  # ae_whiten: the random patches Algorithm 5 factors
    # running Gram matrices G = memory G + A A^T (float64, across batches and epochs) in every Algorithm 2
    # and semi-NMF weight step; 0: each batch's own (the paper's step)
    memory: float = 0.0


@dataclass
class BPSolverConfig:
    """Backpropagation + Adam, as the paper's baseline (Sec. 5)."""

    name: str = "bp"
    loss: Loss = Loss.mse  # squared (= mse, the paper's objective (3)) or cross_entropy (= xent, softmax output)
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
    freeze_conv: bool = False  # conv nets: keep the conv filters at their initialisation (the ablation)


SOLVER_SCHEMAS = {"nmf": NMFSolverConfig, "bp": BPSolverConfig}


@dataclass
class BackendConfig:
    name: BackendName = BackendName.numpy
    threads: Optional[int] = None  # BLAS threads; None = library default (all cores)


@dataclass
class ConvLayerConfig:
    """One convolutional layer of ``conv`` (applied before the dense layers of ``hidden``)."""

    channels: int = MISSING  # filters
    kernel: int = MISSING  # kernel x kernel
    stride: int = 1
    padding: int = 0  # zeros on each side
    pool: int = 1  # pool x pool average pooling before the ReLU (1: none)


# -- trackers (conf/logger/): logger=mlflow, logger=tensorboard or logger=[mlflow,tensorboard] ---------------
@dataclass
class MLflowLoggerConfig:
    """The run in an MLflow tracking store (nmfdnn.trackers.mlflow; pip install 'nmfdnn[mlflow]')."""

    # null: $MLFLOW_TRACKING_URI if set, else the local store mlruns/ in the working directory, beside outputs/
    # (sqlite:///mlruns/mlflow.db, artifacts in mlruns/artifacts); any MLflow URI (http://host:5000, ...)
    tracking_uri: Optional[str] = None
    experiment_name: str = "nmfdnn"
    run_name: Optional[str] = None  # null: the run folder's name; a sweep's job: its overrides
    log_artifacts: bool = True  # the run's files as the MLflow run's artifacts at its end


@dataclass
class TensorBoardLoggerConfig:
    """TensorBoard event files: scalars per epoch and the hyper-parameters (nmfdnn.trackers.tensorboard;
    pip install 'nmfdnn[tensorboard]')."""

    save_dir: Optional[str] = None  # null: the run folder's tensorboard/


@dataclass
class LoggerConfig:
    mlflow: Optional[MLflowLoggerConfig] = None
    tensorboard: Optional[TensorBoardLoggerConfig] = None


@dataclass
class TrainConfig:
    dataset: Any = MISSING
    solver: Any = MISSING
    backend: BackendConfig = MISSING
    hidden: list[int] = field(default_factory=lambda: [1000, 500])
    conv: list[ConvLayerConfig] = field(default_factory=list)  # convolutional layers before hidden; [] none
    activation: str = "relu"  # hidden layers' f: relu, leaky_relu, capped_relu, softplus (method/activations.py)
    activation_slope: float = 0.01  # leaky_relu: f(u) = max(u, slope u)
    activation_cap: float = 6.0  # capped_relu: f(u) = min(max(u, 0), cap)
    activation_beta: float = 1.0  # softplus: f(u) = log(1 + exp(beta u)) / beta
    epochs: int = 10
    seed: int = 0
    dtype: DType = DType.float64
    eval_train: bool = True  # evaluate the full training set after every epoch
    progress: bool = True  # rich progress bars
    save_model: bool = True
    checkpoint: bool = True  # save checkpoint.npz after pre-training and after every epoch
    resume: bool = False  # continue from checkpoint.npz in the run directory (a finished run: no-op)
    logger: Optional[LoggerConfig] = None  # experiment trackers (conf/logger/): logger=[mlflow,tensorboard]
