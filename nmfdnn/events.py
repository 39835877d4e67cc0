"""The events of a run, and the one protocol of everything that follows them.

A run emits, in order::

    run_start(run)                          the config, the run folder, the network (nmfdnn.train.fit)
      pretrain_start()                      right before pre-training (not on a resume)
        layer_done(i)                       pre-training finished hidden layer i (from 0)
      pretrained(Ws, seconds)               after pre-training
      epoch_end(row)                        the error rates after pre-training (row["epoch"] == 0)
      checkpoint(path, epoch, next_batch)   checkpoint.npz saved
      epoch_start(epoch)                    then, for every epoch from 1:
        batch_done(epoch, b, Ws)            after each mini-batch
      epoch_done(epoch, Ws, seconds)        the epoch trained (seconds of training, device synchronised)
      epoch_end(row)                        its metrics: epoch, train/test(/val) error, objective, seconds
      checkpoint(path, epoch, next_batch)
    run_end(result) | run_failed(error)     (nmfdnn.train.run, which owns the run folder)

The loop's events (:func:`nmfdnn.loop.train_loop`) carry the weights; the run's events carry the
records. Every consumer is a :class:`Listener`: the run's own bookkeeping in :mod:`nmfdnn.train`
(evaluation, checkpoints, the stop flag), the progress bars and epoch lines (:mod:`nmfdnn.progress`), the
run's files (:class:`nmfdnn.outputs.RunOutputs`), the trackers (:mod:`nmfdnn.trackers`) and the clock of
``nmfdnn bench --tta``. A listener may raise to end the run early; the caller catches what it raised.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class RunStart:
    """What :meth:`Listener.run_start` receives."""

    config: Any  # the run's composed config (a DictConfig)
    run_dir: Path | None  # the run folder (None: a run that writes no files, e.g. nmfdnn bench)
    network: Any  # the network the trainer holds (nmfdnn.method.network.Network: its layers, in order)
    n_batches: int  # mini-batches per epoch
    start_epoch: int = 1  # the epoch the loop starts at, from batch start_batch
    start_batch: int = 0
    resumed: bool = False  # continued from a checkpoint (pre-training is not run again)


class Listener:
    """One receiver of a run's events; each method does nothing unless overridden."""

    def run_start(self, run: RunStart) -> None:
        """The run begins (after its checks, its data loaded, before pre-training or the resumed epoch)."""

    def pretrain_start(self) -> None:
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

    def epoch_end(self, row: dict) -> None:
        """The metrics after an epoch (epoch 0: after pre-training): ``epoch``, ``train_error``,
        ``test_error`` (and ``val_error`` with a validation split), ``objective``, ``epoch_seconds``
        and ``seconds`` (training so far)."""

    def checkpoint(self, path: Path, epoch: int, next_batch: int) -> None:
        """``path`` was saved: epochs up to ``epoch`` done, the next one from batch ``next_batch``."""

    def run_end(self, result) -> None:
        """The run finished: ``result`` is its :class:`nmfdnn.train.FitResult`."""

    def run_failed(self, error: BaseException) -> None:
        """The run stopped with ``error`` (an interrupt, a numerical failure, any exception)."""


EVENTS = tuple(name for name in vars(Listener) if not name.startswith("_"))  # in the order above


class Listeners(Listener):
    """A list of listeners, itself a listener: each event goes to every one of them, in order."""

    def __init__(self, listeners=()):
        self.listeners = [x for x in listeners if x is not None]

    def __iter__(self):
        return iter(self.listeners)


def _to_each(name):
    def emit(self, *args):
        for x in self.listeners:
            getattr(x, name)(*args)

    emit.__name__ = emit.__qualname__ = name
    emit.__doc__ = getattr(Listener, name).__doc__
    return emit


for _name in EVENTS:
    setattr(Listeners, _name, _to_each(_name))
