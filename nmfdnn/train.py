"""A run: compose config -> load data -> pre-train -> fine-tune -> evaluate -> write outputs."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backend import get_backend
from .config import validate
from .data import Dataset, load_dataset
from .data.base import one_hot
from .network import evaluate
from .progress import Reporter
from .timers import Timers
from .trainers import TRAINERS

log = logging.getLogger("nmfdnn")


@dataclass
class FitResult:
    """What a training run produced: host weights, per-epoch history and timings."""

    weights: list  # host arrays W_1..W_d
    history: list = field(default_factory=list)
    pretrain_seconds: float = 0.0
    finetune_seconds: float = 0.0
    eval_seconds: float = 0.0
    phases: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def _dtype(cfg) -> str:
    return cfg.dtype.value if hasattr(cfg.dtype, "value") else str(cfg.dtype)


def blas_threads(n):
    """Cap BLAS threads for this process's numerical work (None: library default)."""
    if n is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=int(n), user_api="blas")


def fit(cfg, data: Dataset, reporter: Reporter | None = None) -> FitResult:
    """Train the network of ``cfg`` on ``data``: the solver's pre-training, then ``cfg.epochs``
    epochs, evaluating train and test error after pre-training and after every epoch."""
    reporter = reporter or Reporter()
    bk = get_backend(cfg.backend.name, _dtype(cfg))
    timers = Timers(bk)
    rng = np.random.default_rng(cfg.seed)
    bias = bool(cfg.solver.get("bias", False))

    # Columns (samples) contiguous: a mini-batch X(:, J) is then a fast gather of whole columns.
    X = bk.xp.asfortranarray(bk.asarray(data.train.X))
    Y = bk.xp.asfortranarray(bk.asarray(one_hot(data.train.labels, data.n_classes)))
    X_test = bk.asarray(data.test.X)
    trainer = TRAINERS[cfg.solver.name](bk, cfg, X, Y, rng, timers)
    reporter.start(len(cfg.hidden), cfg.epochs, trainer.n_batches)
    result = FitResult(weights=[])

    def record(epoch, Ws, epoch_seconds):
        t0 = time.perf_counter()
        if cfg.eval_train:
            train_err, obj = evaluate(bk, Ws, X, data.train.labels, bias)
        else:
            train_err, obj = float("nan"), float("nan")
        test_err, _ = evaluate(bk, Ws, X_test, data.test.labels, bias)
        result.eval_seconds += time.perf_counter() - t0
        row = dict(epoch=epoch, train_error=train_err, test_error=test_err, objective=obj,
                   epoch_seconds=epoch_seconds, seconds=result.pretrain_seconds + result.finetune_seconds)
        result.history.append(row)
        reporter.epoch_done(row)

    t0 = time.perf_counter()
    Ws = trainer.pretrain(on_layer=reporter.layer_done)
    bk.synchronize()
    result.pretrain_seconds = time.perf_counter() - t0
    record(0, Ws, result.pretrain_seconds)
    for epoch in range(1, cfg.epochs + 1):
        reporter.epoch_start(epoch)
        t0 = time.perf_counter()
        trainer.epoch(Ws, on_batch=reporter.batch_done)
        bk.synchronize()
        dt = time.perf_counter() - t0
        result.finetune_seconds += dt
        record(epoch, Ws, dt)
    reporter.stop()
    result.weights = [bk.to_numpy(W) for W in Ws]
    result.phases = timers.as_dict()
    result.info.update(trainer.info)
    return result


def run(cfg, out_dir: str | Path, reporter: Reporter | None = None) -> dict:
    """The whole run of ``nmfdnn train``; returns the metrics written to ``metrics.json``."""
    from .outputs import write_run

    validate(cfg)
    get_backend(cfg.backend.name, _dtype(cfg))  # fail before loading data if the backend is missing
    t_start = time.perf_counter()
    t0 = time.perf_counter()
    data = load_dataset(cfg.dataset)
    load_seconds = time.perf_counter() - t0
    validate(cfg, n_train=data.train.m, n_in=data.n_in)
    log.info("data %s: %d train, %d test samples, %d features, %d classes", data.name, data.train.m,
             data.test.m, data.n_in, data.n_classes)
    with blas_threads(cfg.backend.get("threads")):
        result = fit(cfg, data, reporter)
    result.info["load_seconds"] = load_seconds
    result.info["total_seconds"] = time.perf_counter() - t_start
    return write_run(out_dir, cfg, data, result)
