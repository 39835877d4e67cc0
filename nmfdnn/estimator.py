"""A scikit-learn style estimator over the same code path as ``nmfdnn train``.

``fit`` builds the same structured config the CLI composes (defaults and validation come from
:mod:`nmfdnn.config`, one source of truth) and calls :func:`nmfdnn.train.fit`, the function behind
``nmfdnn train``; the same seed therefore gives the same weights from either entry point.
X is samples x features here (scikit-learn's convention); it is transposed to the paper's
features x samples inside.
"""

from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .config import (NON_RESULT_KEYS, SOLVER_SCHEMAS, ArrayConfig, BackendConfig, TrainConfig, has_bias, one_line,
                     validate, widest_rows)
from .data import DataSplit, Dataset
from .errors import NmfdnnError

# The top-level keys of ``nmfdnn train`` that say which network is trained and for how long (all but the
# groups and the keys that do not change a result): each is an estimator parameter of the same name.
NETWORK_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                     if f.name not in ("dataset", "solver", "backend", *NON_RESULT_KEYS))


def _plain(value):
    """``value`` as OmegaConf takes it: tuples and arrays as lists, NumPy scalars as Python numbers."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value.item() if isinstance(value, np.generic) else value


def _set(node, key: str, value, what: str) -> None:
    """``node[key] = value``, typed by the schema; a value of the wrong type or a key the schema does
    not have: one line naming ``what``."""
    try:
        node.merge_with({key: _plain(value)})
    except OmegaConfBaseException as e:
        raise ValueError(f"bad {what}: {one_line(e)}") from None


def make_config(solver: str, solver_params=None, backend="numpy", threads=None, image_shape=None, **keys):
    """The structured config of a run on in-memory arrays (dataset ``array``): ``keys`` are top-level
    keys of ``nmfdnn train`` (:data:`NETWORK_KEYS`; ``conv`` a list of dicts), ``solver_params`` the
    keys of ``solver``, ``image_shape`` the ``(c, h, w)`` of the rows of X. Types are checked here
    (``ValueError``), ranges by :func:`nmfdnn.config.validate`, as on the command line."""
    if solver not in SOLVER_SCHEMAS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVER_SCHEMAS)}")
    if keys.get("conv") and image_shape is None:
        raise ValueError("conv layers need image_shape=(channels, height, width) of the rows of X")
    cfg = OmegaConf.structured(TrainConfig)
    cfg.dataset, cfg.solver = OmegaConf.structured(ArrayConfig), OmegaConf.structured(SOLVER_SCHEMAS[solver])
    cfg.backend = OmegaConf.structured(BackendConfig)
    for key, value in keys.items():
        _set(cfg, key, value, key)
    for key, value in dict(solver_params or {}).items():
        _set(cfg.solver, key, value, "solver_params")
    _set(cfg.backend, "name", backend, "backend")
    _set(cfg.backend, "threads", threads, "threads")
    _set(cfg.dataset, "image", image_shape, "image_shape")
    cfg.progress = False
    return cfg


class _EstimatorProtocol:
    """get_params/set_params/repr of scikit-learn's protocol, for when scikit-learn is absent."""

    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep=True):  # noqa: ARG002 (scikit-learn's signature)
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params):
        for k, v in params.items():
            if k not in self._param_names():
                raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}")
            setattr(self, k, v)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


try:  # scikit-learn is optional: use its base classes (tags, clone, repr) when it is installed
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError

    _BASES: tuple = (ClassifierMixin, BaseEstimator)
except ImportError:  # pragma: no cover - depends on the environment
    _BASES = (_EstimatorProtocol,)

    class NotFittedError(ValueError, AttributeError):
        """Raised by predict-like methods before fit (scikit-learn's class when it is installed)."""

try:
    from sklearn.exceptions import DataConversionWarning as _DataConversionWarning
except ImportError:  # pragma: no cover
    _DataConversionWarning = UserWarning


def check_X(X, dtype, n_features=None, name="X"):
    """X as a finite 2-D float array (n_samples x n_features), as scikit-learn's check_array would."""
    import scipy.sparse

    if scipy.sparse.issparse(X):
        raise TypeError("sparse input is not supported: pass a dense array (X.toarray())")
    X = np.asarray(X)
    if np.iscomplexobj(X):
        raise ValueError("Complex data not supported")
    if X.ndim != 2:
        raise ValueError(f"Expected 2D array, got {X.ndim}D array instead. Reshape your data either using "
                         "array.reshape(-1, 1) if your data has a single feature or array.reshape(1, -1) "
                         "if it contains a single sample.")
    if X.shape[0] < 1:
        raise ValueError(f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is required.")
    if X.shape[1] < 1:
        raise ValueError(f"Found array with 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    X = X.astype(dtype, copy=False)  # a non-numeric X fails here with NumPy's own message
    if not np.isfinite(X).all():
        raise ValueError(f"Input {name} contains NaN or infinity.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features, but {name} is expecting {n_features} features as input.")
    return X


class _NetClassifier(*_BASES):
    """Shared implementation of :class:`NMFNetClassifier` and :class:`BPNetClassifier`: the parameters
    are the keys of ``nmfdnn train`` (:data:`NETWORK_KEYS`, ``backend.name``/``threads``, the solver's
    keys in ``solver_params``), their defaults and ranges those of the schema except where a subclass
    says otherwise (``_epochs``, ``_solver_defaults``)."""

    _solver = "nmf"
    _epochs = TrainConfig.epochs  # what epochs=None trains
    _solver_defaults: dict = {}  # the solver keys whose estimator default is not the schema's

    def __init__(self, hidden=(100,), epochs=None, seed=TrainConfig.seed, dtype=str(TrainConfig.dtype),
                 backend=str(BackendConfig.name), threads=None, solver_params=None, conv=(), image_shape=None,
                 activation=TrainConfig.activation, activation_slope=TrainConfig.activation_slope,
                 activation_cap=TrainConfig.activation_cap, activation_beta=TrainConfig.activation_beta):
        self.hidden, self.epochs, self.seed, self.dtype = hidden, epochs, seed, dtype
        self.backend, self.threads, self.solver_params = backend, threads, solver_params
        self.conv, self.image_shape = conv, image_shape
        self.activation, self.activation_slope = activation, activation_slope
        self.activation_cap, self.activation_beta = activation_cap, activation_beta

    def _config(self, n_samples: int):
        given = dict(self.solver_params or {})
        params = {**self._solver_defaults, **given}
        # Mini-batch and autoencoder sizes left to their defaults are capped at the data size; values
        # given explicitly are validated as on the command line.
        for key in ("batch_size", "ae_samples"):
            if key not in given:
                params[key] = min(params.get(key, getattr(SOLVER_SCHEMAS[self._solver], key)), n_samples)
        keys = {key: getattr(self, key) for key in NETWORK_KEYS}
        if keys["epochs"] is None:
            keys["epochs"] = self._epochs
        return make_config(self._solver, params, self.backend, self.threads, self.image_shape, **keys)

    def fit(self, X, y):
        """Train on ``X`` (n_samples x n_features, nonnegative for the NMF solver) and labels ``y``."""
        from .backend import blas_threads
        from .train import fit

        X = check_X(X, np.float64 if self.dtype == "float64" else np.float32)
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            import warnings

            warnings.warn("A column-vector y was passed when a 1d array was expected. Please change the shape of y "
                          "to (n_samples, ), for example using ravel().",
                          _DataConversionWarning, stacklevel=2)
            y = y.ravel()
        if y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n_samples, n_features) and y (n_samples,), got {X.shape} and {y.shape}")
        if X.shape[0] < 2:
            raise ValueError(f"n_samples={X.shape[0]}: training needs at least 2 samples")
        if y.dtype.kind == "f" and not np.isfinite(y).all():
            raise ValueError("Input y contains NaN or infinity.")
        if y.dtype.kind == "f" and (y != np.round(y)).any():
            raise ValueError("Unknown label type: continuous; a classifier needs class labels")
        if self._solver == "nmf" and (X < 0).any():
            raise ValueError("Negative values in data passed to NMFNetClassifier: the NMF solver needs X >= 0 "
                             "(for example pixel intensities in [0, 1])")
        self.classes_, labels = np.unique(y, return_inverse=True)
        cfg = self._config(X.shape[0])
        shape = self._shape(cfg, X.shape[1])
        explicit = "batch_size" in (self.solver_params or {})
        try:
            validate(cfg, n_train=X.shape[0], batch_guard=explicit, shape=shape)
        except NmfdnnError as e:  # a conv layer that does not fit the images, ...: scikit-learn's error type
            raise ValueError(str(e)) from None
        if self._solver == "nmf" and not explicit and cfg.solver.batch_size <= widest_rows(cfg):
            import warnings

            warnings.warn(f"{X.shape[0]} samples are no more than the widest hidden layer ({max(cfg.hidden)}): "
                          "every mini-batch is fitted exactly and the network will not generalise", stacklevel=2)
        split = DataSplit(np.ascontiguousarray(X.T), labels.astype(np.int64))
        data = Dataset("array", split, split, len(self.classes_), shape=shape)
        cfg.eval_train = False
        with blas_threads(self.threads):
            result = fit(cfg, data)
        self._set_fitted(result.weights, cfg, result.history, X.shape[1])
        return self

    @staticmethod
    def _shape(cfg, n_features: int):
        """The image shape of the rows of X, checked against their width (None: plain vectors)."""
        if not cfg.dataset.get("image"):
            return None
        shape = tuple(int(v) for v in cfg.dataset.image)
        if len(shape) != 3 or min(shape) < 1 or int(np.prod(shape)) != n_features:
            raise ValueError(f"image_shape={shape} does not fit rows of {n_features} features: give "
                             "(channels, height, width) with channels * height * width = n_features")
        return shape

    def _set_fitted(self, weights, cfg, history=None, n_features=None):
        from .config.network import build_network

        self.weights_ = [np.asarray(W) for W in weights]
        self.config_ = cfg
        self.history_ = history or []
        self.n_features_in_ = n_features or self.weights_[0].shape[1] - int(has_bias(cfg))
        shape = self._shape(cfg, self.n_features_in_) if cfg.get("conv") else None
        self.network_ = build_network(cfg, self.n_features_in_, shape, self.weights_[-1].shape[0])

    def _check_fitted(self):
        if not hasattr(self, "weights_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def decision_function(self, X):
        """Network outputs, n_samples x n_classes (the linear output layer W_d Z_{d-1}); for two
        classes, scikit-learn's convention: one column, output of class 1 minus output of class 0."""
        scores = self._scores(X)
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def _scores(self, X):
        from .backend import get_backend
        from .method.network import predict_scores

        self._check_fitted()
        X = check_X(X, np.float64 if self.dtype == "float64" else np.float32, self.n_features_in_,
                    type(self).__name__)
        bk = get_backend(self.backend, self.dtype)
        Ws = [bk.asarray(W) for W in self.weights_]
        return predict_scores(bk, self.network_, Ws, bk.asarray(X.T)).T

    def predict(self, X):
        scores = self._scores(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X, y):
        """Mean accuracy on (X, y)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


_PARAMETERS = """
    Parameters
    ----------
    hidden : tuple of int, default=(100,)
        Widths of the hidden layers (``nmfdnn train``'s ``hidden``).
    epochs : int or None, default=None
        Fine-tuning epochs after pre-training; None: {epochs}.
    seed, dtype, activation, activation_slope, activation_cap, activation_beta, conv
        The keys of the same names, with their defaults and ranges (``nmfdnn train --help``).
    backend, threads
        ``backend.name`` (numpy or cupy) and ``backend.threads`` (BLAS threads; None: all cores).
    solver_params : dict or None, default=None
        Keys of ``solver={solver}`` (``nmfdnn train solver={solver} --help``) over the estimator's defaults.
    image_shape : tuple (channels, height, width) or None, default=None
        The image each row of X is (C order), for ``conv`` layers.

    Defaults that differ from ``nmfdnn train``, whose presets stay the paper's (training accuracy on
    scikit-learn's three blobs, ``check_classifiers_train``):

    - ``hidden=(100,)``, scikit-learn's ``MLPClassifier``'s: the paper's ``[1000, 500]`` takes seconds
      per fit on a few hundred samples and fits every NMF mini-batch exactly.
{differ}
    - ``batch_size`` and ``ae_samples`` left at their defaults are capped at the number of samples.
"""


class NMFNetClassifier(_NetClassifier):
    __doc__ = """A network trained without backpropagation: Algorithm 5 pre-training, then Algorithm 4
    fine-tuning (Sakurai et al. 2016; ``solver=nmf``). X must be nonnegative.
    """ + _PARAMETERS.format(epochs="10, as ``nmfdnn train``", solver="nmf", differ="""\
    - ``bias=True`` (``solver.bias``; the paper has none): without bias vectors a ReLU network is
      positively homogeneous, f(a x) = a f(x), and separates classes by angle only (3-class accuracy
      0.79 without, 0.93 with).""")

    _solver = "nmf"
    _solver_defaults = {"bias": True}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True  # NMF of the input (Alg. 5, eq. 9) needs X >= 0
        return tags


class BPNetClassifier(_NetClassifier):
    __doc__ = """The same network trained by backpropagation with Adam (``solver=bp``), after the
    paper's stacked-autoencoder pre-training.
    """ + _PARAMETERS.format(epochs="200", solver="bp", differ="""\
    - ``epochs=200``, ``MLPClassifier``'s ``max_iter``, and ``batch_size=200``, its mini-batch (the CLI:
      10 and the paper's 100): 10 epochs of Adam leave a small data set underfit (3-class accuracy
      0.47 with ``hidden=(30,)``, 0.87 with ``(100,)``; 0.93 with these defaults).
    - ``loss=cross_entropy``: softmax and log-loss, as ``MLPClassifier`` (the paper's baseline and the
      CLI minimise the squared error).""")

    _solver = "bp"
    _epochs = 200
    _solver_defaults = {"loss": "cross_entropy", "batch_size": 200}


def load(run_dir) -> _NetClassifier:
    """The fitted estimator of a finished ``nmfdnn train`` run (its ``model.npz`` and ``config.yaml``)."""
    from .archive import read_config
    from .outputs import load_model

    run_dir = Path(run_dir)
    try:
        cfg = OmegaConf.create(read_config(run_dir / "config.yaml"))
        weights, bias = load_model(run_dir)
    except FileNotFoundError as e:
        raise NmfdnnError(f"{run_dir} holds no finished run ({Path(e.filename).name} missing)") from None
    _check_loaded_weights(run_dir, cfg, weights, bias)
    conv, shape, n_features = [], None, None
    if cfg.get("conv"):
        from .config.validate import image_shape

        shape = image_shape(cfg.dataset)
        if shape is None:  # idx images: their shape is read from the files, not the config
            raise NmfdnnError(f"{run_dir} is a conv net on {cfg.dataset.name} images whose shape its config does "
                              "not give; use nmfdnn eval RUN_DIR")
        conv, n_features = OmegaConf.to_container(cfg.conv), int(np.prod(shape))
        cfg.dataset = OmegaConf.merge(OmegaConf.structured(ArrayConfig()), {"image": list(shape)})
    cls = {"nmf": NMFNetClassifier, "bp": BPNetClassifier}[cfg.solver.name]
    keys = _network_keys(cfg)
    keys.update(hidden=tuple(keys["hidden"]), conv=conv)
    est = cls(**keys, backend=str(cfg.backend.name), threads=cfg.backend.get("threads"), image_shape=shape,
              solver_params={k: v for k, v in OmegaConf.to_container(cfg.solver).items() if k != "name"})
    est._set_fitted(weights, cfg, n_features=n_features)
    est.classes_ = np.arange(weights[-1].shape[0])
    return est


def _network_keys(cfg) -> dict:
    """The :data:`NETWORK_KEYS` of a run's config as plain values, every one given (a key the run's
    config predates: the schema's default, what the run computed with)."""
    schema = OmegaConf.structured(TrainConfig)
    keys = {key: cfg[key] if key in cfg else schema[key] for key in NETWORK_KEYS}
    return {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else getattr(v, "value", v) for k, v in keys.items()}


def _check_loaded_weights(run_dir, cfg, weights, bias: bool) -> None:
    """The weights of ``run_dir/model.npz`` against the network its ``config.yaml`` describes (as
    ``nmfdnn eval`` checks them): the bias flag, one matrix per layer, each of the layer's shape (the
    input width and the classes where the config tells them, else the model's own)."""
    from .checkpoint import check_weights
    from .config.validate import image_shape
    from .config.network import build_network
    from .memory import data_sizes

    where = str(Path(run_dir) / "model.npz")
    remedy = "its config.yaml describes another network (a model of another run?)"
    if bias != has_bias(cfg):
        raise NmfdnnError(f"{where} does not match its config.yaml: bias {bias}, the config says {has_bias(cfg)}; "
                          f"{remedy}")
    sizes = data_sizes(cfg.dataset)
    shape = image_shape(cfg.dataset) if cfg.get("conv") else None
    if cfg.get("conv") and shape is None:
        return  # idx images: their shape is read from the files (load refuses these)
    n_in = int(np.prod(shape)) if shape else sizes[2] if sizes else weights[0].shape[1] - int(bias)
    n_classes = sizes[3] if sizes else int(cfg.dataset.get("n_classes") or weights[-1].shape[0])
    shapes = build_network(cfg, n_in, shape, n_classes).shapes
    check_weights(weights, shapes, where, mismatch="does not match its config.yaml", mismatch_remedy=remedy)
