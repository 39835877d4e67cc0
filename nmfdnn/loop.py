"""The training loop every run shares: the solver's pre-training, then epochs of mini-batches.

:func:`nmfdnn.train.fit` (``nmfdnn train``: evaluation after every epoch, checkpoints, signals) and
:func:`nmfdnn.tools.tta.time_to_accuracy` (the test error at evenly spaced batches, a clock that
pauses while it is measured) both drive it; it emits the loop's events of :mod:`nmfdnn.events` to
a list of listeners. A listener may raise to end the run early (the caller catches what it raised).
"""

from __future__ import annotations

import time

from .events import Listener, Listeners


def train_loop(trainer, bk, epochs: int, listeners, Ws=None, start_epoch: int = 1, start_batch: int = 0):
    """Pre-train (unless ``Ws`` are given: a resumed run), then train epochs ``start_epoch`` to
    ``epochs``, the first of them from batch ``start_batch``; returns the weights. ``listeners``: a
    :class:`nmfdnn.events.Listener` or a list of them (each event reaches them in list order)."""
    events = listeners if isinstance(listeners, Listener) else Listeners(listeners)
    if Ws is None:
        events.pretrain_start()
        t0 = time.perf_counter()
        Ws = trainer.pretrain(on_layer=events.layer_done)
        bk.synchronize()
        events.pretrained(Ws, time.perf_counter() - t0)
    for epoch in range(start_epoch, epochs + 1):
        events.epoch_start(epoch)
        t0 = time.perf_counter()
        trainer.epoch(Ws, on_batch=lambda b, epoch=epoch: events.batch_done(epoch, b, Ws), start_batch=start_batch)
        bk.synchronize()
        events.epoch_done(epoch, Ws, time.perf_counter() - t0)
        start_batch = 0
    return Ws
