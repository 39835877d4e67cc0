"""What every tracker shares: the guard that turns its first failure into one warning line, and the
config as flat parameters."""

from __future__ import annotations

import logging

from omegaconf import OmegaConf

from ..events import Listener
from ..extras import EXTRAS, TRACKERS

log = logging.getLogger("nmfdnn")

# what a tracker records of each epoch (the keys of the history rows of nmfdnn.train)
METRICS = ("train_error", "val_error", "test_error", "objective", "epoch_seconds", "seconds")


def warning_line(name: str, e: BaseException) -> str:
    """The one line a failing tracker logs: what failed and that the run goes on."""
    if isinstance(e, ImportError) and name in TRACKERS:
        module = TRACKERS[name]
        why = f"the {module} package is not installed (pip install 'nmfdnn[{EXTRAS[module][1]}]')"
    else:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        why = f"{type(e).__name__}: {lines[0] if lines else ''}"[:300]
    return f"logger={name}: {why}; tracking is off for this run, which goes on"


class Tracker(Listener):
    """A tracker's events, each guarded: subclasses implement :meth:`start`, :meth:`epoch`,
    :meth:`saved`, :meth:`end` and :meth:`failed`; nothing reaches them before :meth:`start`
    has succeeded, and nothing after their first failure (one warning line)."""

    name = "tracker"

    def __init__(self, settings):
        self.settings = settings
        self.started = False
        self.off = False

    def _guard(self, fn, *args) -> None:
        if self.off:
            return
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 (whatever a tracker raises, the run goes on)
            self.off = True
            log.warning("%s", warning_line(self.name, e))
            try:
                self.close()
            except Exception:  # noqa: BLE001
                pass

    def run_start(self, run):
        def begin():
            self.start(run)
            self.started = True

        self._guard(begin)

    def epoch_end(self, row):
        if self.started:
            self._guard(self.epoch, row)

    def checkpoint(self, path, epoch, next_batch):
        if self.started:
            self._guard(self.saved, path, epoch, next_batch)

    def run_end(self, result):
        if self.started:
            self._guard(self.end, result)

    def run_failed(self, error):
        if self.started:
            self._guard(self.failed, error)

    # what a tracker implements
    def start(self, run) -> None: ...

    def epoch(self, row: dict) -> None: ...

    def saved(self, path, epoch: int, next_batch: int) -> None: ...

    def end(self, result) -> None: ...

    def failed(self, error: BaseException) -> None: ...

    def close(self) -> None:
        """Release what the tracker holds (after a failure too)."""


def flat_params(config) -> dict:
    """The config as ``{dotted.key: value}``: scalars as they are, lists and None as their text."""
    from ..train import config_dict

    out = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            key = prefix[:-1]
            out[key] = node if isinstance(node, (bool, int, float, str)) else str(node)

    walk(config_dict(config) if OmegaConf.is_config(config) else config, "")
    return out
