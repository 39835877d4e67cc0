"""The training loop every run shares: the solver's pre-training, then epochs of mini-batches.

:func:`nmfdnn.train.fit` (``nmfdnn train``: evaluation after every epoch, checkpoints, signals) and
:func:`nmfdnn.tools.tta.time_to_accuracy` (the test error at evenly spaced batches, a clock that
pauses while it is measured) both drive it, each through its :class:`Hooks`; a hook may raise to
end the run early (the caller catches what it raised).
"""

from __future__ import annotations

import time


class Hooks:
    """Callbacks of :func:`train_loop`; each does nothing unless overridden."""

    def started(self) -> None:
        """Right before pre-training."""

    def layer_done(self, i: int) -> None:
        """Pre-training finished hidden layer ``i`` (from 0)."""

    def pretrained(self, Ws, seconds: float) -> None:
        """After pre-training (``seconds`` of it, the device synchronised)."""

    def epoch_start(self, epoch: int) -> None:
        """Before epoch ``epoch`` (from 1)."""

    def batch_done(self, epoch: int, b: int, Ws) -> None:
        """After mini-batch ``b`` (from 0) of ``epoch``; ``Ws`` are the current weights."""

    def epoch_done(self, epoch: int, Ws, seconds: float) -> None:
        """After ``epoch``: ``seconds`` of training in it (the device synchronised)."""


def train_loop(trainer, bk, epochs: int, hooks: Hooks, Ws=None, start_epoch: int = 1, start_batch: int = 0):
    """Pre-train (unless ``Ws`` are given: a resumed run), then train epochs ``start_epoch`` to
    ``epochs``, the first of them from batch ``start_batch``; returns the weights."""
    if Ws is None:
        hooks.started()
        t0 = time.perf_counter()
        Ws = trainer.pretrain(on_layer=hooks.layer_done)
        bk.synchronize()
        hooks.pretrained(Ws, time.perf_counter() - t0)
    for epoch in range(start_epoch, epochs + 1):
        hooks.epoch_start(epoch)
        t0 = time.perf_counter()
        trainer.epoch(Ws, on_batch=lambda b, epoch=epoch: hooks.batch_done(epoch, b, Ws), start_batch=start_batch)
        bk.synchronize()
        hooks.epoch_done(epoch, Ws, time.perf_counter() - t0)
        start_batch = 0
    return Ws
