"""Time to accuracy: wall time until the test error first drops below a target (``make bench-tta``).

Each solver is trained through the same :class:`nmfdnn.trainers.Trainer` as ``nmfdnn train``
(pre-training, then epochs of mini-batches). The clock runs during pre-training and training only:
it is paused while the test error is measured, which happens after pre-training and then
``checks_per_epoch`` times per epoch, at evenly spaced batches (so NMF with 12 batches an epoch
and backprop with 600 are looked at equally often). Data loading and the host-to-backend copy are
outside the clock, the same for every solver.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import dtype_name
from ..method.network import evaluate
from ..train import backend_for, training_arrays
from ..trainers import TRAINERS


class _Reached(Exception):
    pass


def time_to_accuracy(cfg, data, target: float, checks_per_epoch: int = 12, reporter=None) -> dict:
    """Train ``cfg`` for at most ``cfg.epochs`` epochs and return the training seconds until the
    test error (percent) is first below ``target``, with the curve of (seconds, epochs, error)."""
    bk = backend_for(cfg)
    rng = np.random.default_rng(cfg.seed)
    bias = bool(cfg.solver.get("bias", False))
    X, Y, X_test = training_arrays(bk, data)
    trainer = TRAINERS[cfg.solver.name](bk, cfg, X, Y, rng)
    n_batches = trainer.n_batches
    every = max(1, -(-n_batches // checks_per_epoch))
    clock = {"seconds": 0.0, "t0": 0.0}
    curve: list[dict] = []

    def check(epochs_done: float, Ws):
        bk.synchronize()
        clock["seconds"] += time.perf_counter() - clock["t0"]
        err, _ = evaluate(bk, Ws, X_test, data.test.labels, bias)
        curve.append({"seconds": clock["seconds"], "epochs": epochs_done, "test_error": err})
        if reporter is not None:
            reporter(curve[-1])
        clock["t0"] = time.perf_counter()
        if err < target:
            raise _Reached

    clock["t0"] = time.perf_counter()
    pretrain_seconds = None
    try:
        Ws = trainer.pretrain()
        bk.synchronize()
        pretrain_seconds = clock["seconds"] + time.perf_counter() - clock["t0"]
        check(0.0, Ws)
        for epoch in range(1, cfg.epochs + 1):

            def on_batch(b, Ws=Ws, epoch=epoch):
                if (b + 1) % every == 0 or b + 1 == n_batches:
                    check(epoch - 1 + (b + 1) / n_batches, Ws)

            trainer.epoch(Ws, on_batch=on_batch)
        reached = False
    except _Reached:
        reached = True
    last = curve[-1]
    return {
        "solver": cfg.solver.name, "dtype": dtype_name(cfg), "hidden": list(cfg.hidden), "target": target,
        "reached": reached, "seconds": last["seconds"] if reached else None,
        "epochs": last["epochs"] if reached else None, "test_error": last["test_error"],
        "pretrain_seconds": pretrain_seconds, "max_epochs": cfg.epochs, "checks_per_epoch": checks_per_epoch,
        "curve": curve,
    }
