"""Experiment trackers, the config group ``logger`` (conf/logger/): ``logger=mlflow``,
``logger=tensorboard`` or ``logger=[mlflow,tensorboard]``; none by default.

Each is a listener of the run's events (:mod:`nmfdnn.events`) that can never harm the run: its
first failure (the optional package missing, a tracking server out of reach, a full disk) is one
warning line, and the tracker is off for the rest of the run; the run and its files go on as they
would without it.
"""

from __future__ import annotations

from ..events import Listener


def trackers_for(cfg) -> list[Listener]:
    """The trackers ``cfg.logger`` selects, in the order MLflow, TensorBoard (empty without ``logger``)."""
    chosen = cfg.get("logger") or {}
    out: list[Listener] = []
    if chosen.get("mlflow") is not None:
        from .mlflow import MLflowTracker

        out.append(MLflowTracker(chosen.mlflow))
    if chosen.get("tensorboard") is not None:
        from .tensorboard import TensorBoardTracker

        out.append(TensorBoardTracker(chosen.tensorboard))
    return out
