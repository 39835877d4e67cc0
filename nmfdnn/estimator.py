"""A scikit-learn style estimator over the same code path as ``nmfdnn train``.

``fit`` builds the same structured config the CLI composes (defaults and validation come from
:mod:`nmfdnn.config`, one source of truth) and calls :func:`nmfdnn.train.fit`, the function behind
``nmfdnn train``; the same seed therefore gives the same weights from either entry point.
X is samples x features here (scikit-learn's convention); it is transposed to the paper's
features x samples inside.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .config import BackendConfig, BPSolverConfig, DatasetConfig, NMFSolverConfig, TrainConfig, validate
from .data.base import DataSplit, Dataset

SOLVER_SCHEMAS = {"nmf": NMFSolverConfig, "bp": BPSolverConfig}


def make_config(solver: str, hidden, epochs: int, seed: int, dtype: str, backend: str, threads, solver_params):
    """The structured config of a run on in-memory arrays (dataset ``array``)."""
    cfg = OmegaConf.structured(TrainConfig)
    cfg.dataset = OmegaConf.structured(DatasetConfig(name="array"))
    if solver not in SOLVER_SCHEMAS:
        raise ValueError(f"unknown solver {solver!r}; choose one of {', '.join(SOLVER_SCHEMAS)}")
    sol = OmegaConf.structured(SOLVER_SCHEMAS[solver])
    try:
        sol.merge_with(dict(solver_params or {}))
    except Exception as e:  # unknown key or wrong type, as Hydra would reject it
        raise ValueError(f"bad solver_params: {str(e).splitlines()[0]}") from None
    cfg.solver = sol
    cfg.backend = OmegaConf.structured(BackendConfig(name=backend, threads=threads))
    cfg.hidden = [int(h) for h in hidden]
    cfg.epochs, cfg.seed, cfg.dtype = int(epochs), int(seed), dtype
    cfg.progress = False
    return cfg


class _NetClassifier:
    """Shared implementation of :class:`NMFNetClassifier` and :class:`BPNetClassifier`."""

    _solver = "nmf"

    def __init__(self, hidden=(1000, 500), epochs=10, seed=0, dtype="float64", backend="numpy", threads=None,
                 solver_params=None):
        self.hidden = hidden
        self.epochs = epochs
        self.seed = seed
        self.dtype = dtype
        self.backend = backend
        self.threads = threads
        self.solver_params = solver_params

    # -- scikit-learn protocol -------------------------------------------------------------------
    @classmethod
    def _param_names(cls):
        return [p for p in inspect.signature(_NetClassifier.__init__).parameters if p != "self"]

    def get_params(self, deep=True):
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

    def _config(self, n_samples: int):
        params = dict(self.solver_params or {})
        # With the defaults, mini-batch and autoencoder sizes are capped at the data size; values
        # given explicitly are validated as on the command line.
        for key in ("batch_size", "ae_samples"):
            if key not in params:
                params[key] = min(getattr(SOLVER_SCHEMAS[self._solver], key), n_samples)
        return make_config(self._solver, self.hidden, self.epochs, self.seed, self.dtype, self.backend, self.threads,
                           params)

    def fit(self, X, y):
        """Train on ``X`` (n_samples x n_features, nonnegative for the NMF solver) and labels ``y``."""
        from .train import blas_threads, fit

        X = np.asarray(X, dtype=np.float64 if self.dtype == "float64" else np.float32)
        y = np.asarray(y)
        if X.ndim != 2 or y.ndim != 1 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X must be (n_samples, n_features) and y (n_samples,), got {X.shape} and {y.shape}")
        if not np.isfinite(X).all():
            raise ValueError("X contains NaN or infinity")
        if self._solver == "nmf" and (X < 0).any():
            raise ValueError("the NMF solver needs nonnegative X (for example pixel intensities in [0, 1])")
        self.classes_, labels = np.unique(y, return_inverse=True)
        cfg = self._config(X.shape[0])
        validate(cfg, n_train=X.shape[0], n_in=X.shape[1])
        split = DataSplit(np.ascontiguousarray(X.T), labels.astype(np.int64))
        data = Dataset("array", split, split, len(self.classes_))
        cfg.eval_train = False
        with blas_threads(self.threads):
            result = fit(cfg, data)
        self._set_fitted(result.weights, cfg, result.history)
        return self

    def _set_fitted(self, weights, cfg, history=None):
        self.weights_ = [np.asarray(W) for W in weights]
        self.config_ = cfg
        self.history_ = history or []
        self.n_features_in_ = self.weights_[0].shape[1] - int(bool(cfg.solver.get("bias", False)))

    def _check_fitted(self):
        if not hasattr(self, "weights_"):
            raise AttributeError(f"this {type(self).__name__} is not fitted yet; call fit first")

    def decision_function(self, X):
        """Network outputs, n_samples x n_classes (the linear output layer W_d Z_{d-1})."""
        from .backend import get_backend
        from .network import predict_scores

        self._check_fitted()
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"X must have {self.n_features_in_} features, got shape {X.shape}")
        bk = get_backend(self.backend, self.dtype)
        Ws = [bk.asarray(W) for W in self.weights_]
        return predict_scores(bk, Ws, bk.asarray(X.T), bool(self.config_.solver.get("bias", False))).T

    def predict(self, X):
        scores = self.decision_function(X)
        return self.classes_[np.argmax(scores, axis=1)]

    def score(self, X, y):
        """Mean accuracy on (X, y)."""
        return float(np.mean(self.predict(X) == np.asarray(y)))


class NMFNetClassifier(_NetClassifier):
    """A ReLU network trained without backpropagation (Alg. 5 + Alg. 4; ``solver=nmf``).

    ``solver_params`` are the keys of ``solver=nmf`` (``nmfdnn train --help``), e.g.
    ``{"lsq_iters": 10, "bias": True}``.
    """

    _solver = "nmf"


class BPNetClassifier(_NetClassifier):
    """The same network trained by backpropagation with Adam (``solver=bp``)."""

    _solver = "bp"


def load(run_dir) -> _NetClassifier:
    """The fitted estimator of a finished ``nmfdnn train`` run (its ``model.npz`` and ``config.yaml``)."""
    from .errors import NmfdnnError

    run_dir = Path(run_dir)
    try:
        cfg = OmegaConf.load(run_dir / "config.yaml")
        with np.load(run_dir / "model.npz") as z:
            n = len([k for k in z.files if k.startswith("W")])
            weights = [z[f"W{i + 1}"] for i in range(n)]
    except FileNotFoundError as e:
        raise NmfdnnError(f"{run_dir} holds no finished run ({Path(e.filename).name} missing)") from None
    cls = {"nmf": NMFNetClassifier, "bp": BPNetClassifier}[cfg.solver.name]
    est = cls(hidden=tuple(cfg.hidden), epochs=cfg.epochs, seed=cfg.seed, dtype=str(cfg.dtype),
              backend=cfg.backend.name, threads=cfg.backend.get("threads"),
              solver_params={k: v for k, v in OmegaConf.to_container(cfg.solver).items() if k != "name"})
    est._set_fitted(weights, cfg)
    est.classes_ = np.arange(weights[-1].shape[0])
    return est
