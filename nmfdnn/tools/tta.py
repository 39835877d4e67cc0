"""Time to accuracy: wall time until the test error first drops below each target (``make bench-tta``).

Each solver is trained through the same :class:`nmfdnn.trainers.Trainer` as ``nmfdnn train``
(pre-training, then epochs of mini-batches); the PyTorch comparator through
:class:`nmfdnn.baselines.torch_mlp.TorchTrainer`, which has the same methods. The clock runs during pre-training and training only:
it is paused while the test error is measured, which happens after pre-training and then
``checks_per_epoch`` times per epoch, at evenly spaced batches (so NMF with 12 batches an epoch
and backprop with 600 are looked at equally often). Data loading and the host-to-backend copy are
outside the clock, the same for every solver.
"""

from __future__ import annotations

import time

import numpy as np

from ..config import dtype_name
from ..train import backend_for, training_arrays
from ..trainers import TRAINERS


class _Reached(Exception):
    pass


def time_to_accuracy(cfg, data, targets, checks_per_epoch: int = 12, reporter=None,
                     framework: str = "nmfdnn") -> dict:
    """Train ``cfg`` for at most ``cfg.epochs`` epochs; return, for each of ``targets`` (test error in
    percent), the training seconds and epochs until the test error is first below it (None if never),
    with the curve of (seconds, epochs, error). Training stops once the lowest target is reached.
    ``framework="torch"``: the same network by :class:`nmfdnn.baselines.torch_mlp.TorchTrainer`
    (``cfg`` a ``solver=bp`` config: its Adam settings, batch size and loss)."""
    targets = sorted((float(t) for t in targets), reverse=True)
    bk = backend_for(cfg)
    rng = np.random.default_rng(cfg.seed)
    bias = bool(cfg.solver.get("bias", False))
    X, Y, X_test = training_arrays(bk, data)
    if framework == "torch":
        from ..baselines.torch_mlp import TorchTrainer

        trainer = TorchTrainer(cfg, bk.to_numpy(X), bk.to_numpy(Y), rng)
        X_test = trainer.samples(bk.to_numpy(X_test))  # once, not at every check

        def test_error(Ws):
            return trainer.test_error(Ws, X_test, data.test.labels)
    else:
        from ..method.network import evaluate

        trainer = TRAINERS[cfg.solver.name](bk, cfg, X, Y, rng)

        def test_error(Ws):
            return evaluate(bk, Ws, X_test, data.test.labels, bias)[0]
    n_batches = trainer.n_batches
    every = max(1, -(-n_batches // checks_per_epoch))
    clock = {"seconds": 0.0, "t0": 0.0}
    curve: list[dict] = []
    crossed: dict[float, dict] = {}

    def check(epochs_done: float, Ws):
        bk.synchronize()
        clock["seconds"] += time.perf_counter() - clock["t0"]
        err = test_error(Ws)
        point = {"seconds": clock["seconds"], "epochs": epochs_done, "test_error": err}
        curve.append(point)
        if reporter is not None:
            reporter(point)
        for t in targets:
            if err < t and t not in crossed:
                crossed[t] = point
        clock["t0"] = time.perf_counter()
        if targets[-1] in crossed:
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
    except _Reached:
        pass
    return {
        "solver": "torch" if framework == "torch" else cfg.solver.name, "dtype": dtype_name(cfg),
        "loss": str(cfg.solver.get("loss", "")) or None, "hidden": list(cfg.hidden),
        "targets": {f"{t:g}": ({"seconds": crossed[t]["seconds"], "epochs": crossed[t]["epochs"]}
                               if t in crossed else None) for t in targets},
        "test_error": curve[-1]["test_error"], "pretrain_seconds": pretrain_seconds, "max_epochs": cfg.epochs,
        "checks_per_epoch": checks_per_epoch, "curve": curve,
    }
