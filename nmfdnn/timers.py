"""Wall-clock timers per phase of the method (forward, semi-NMF, Alg. 2, Alg. 3, pinv, ...)."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class Timers:
    """Accumulates seconds per named phase; synchronises the device before reading the clock."""

    def __init__(self, bk=None):
        self.bk = bk
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    @contextmanager
    def __call__(self, name: str):
        if self.bk is not None:
            self.bk.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if self.bk is not None:
                self.bk.synchronize()
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in sorted(self.seconds.items())}


class NullTimers(Timers):
    """Timers that measure nothing (for library calls that do not care)."""

    @contextmanager
    def __call__(self, name: str):  # noqa: ARG002 (the Timers interface)
        yield
