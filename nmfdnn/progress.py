"""Progress display: rich bars for pre-training layers, epochs and batches (or nothing)."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("nmfdnn")


def console_handler() -> logging.Handler:
    """The console log handler of ``nmfdnn train`` (conf/hydra/job_logging/rich.yaml): rich on a
    terminal (records print above the progress bars); elsewhere (a file, a pipe, CI) a plain stream
    handler, so that every record is one line, never wrapped at rich's default 80 columns."""
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        return RichHandler(show_path=False)
    return logging.StreamHandler(sys.stderr)


class Reporter:
    """Receives the run's events; this base class only logs epoch lines."""

    def start(self, n_layers: int, epochs: int, n_batches: int) -> None: ...

    def layer_done(self, i: int) -> None: ...

    def epoch_start(self, epoch: int) -> None: ...

    def batch_done(self, b: int) -> None: ...

    def epoch_done(self, row: dict) -> None:
        val = f"  val {row['val_error']:6.2f}%" if "val_error" in row else ""
        log.info("epoch %3d  train %6.2f%%%s  test %6.2f%%  objective %.4g  %.1fs", row["epoch"],
                 row["train_error"], val, row["test_error"], row["objective"], row["epoch_seconds"])

    def stop(self) -> None: ...


class RichReporter(Reporter):
    """Rich progress bars; log records are printed above them through the shared console."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), transient=True)

    def start(self, n_layers, epochs, n_batches):
        self.progress.start()
        self.t_layers = self.progress.add_task("pre-training layers", total=n_layers)
        self.t_epochs = self.progress.add_task("epochs", total=epochs)
        self.t_batches = self.progress.add_task("batches", total=n_batches)

    def layer_done(self, i):  # noqa: ARG002 (the Reporter interface)
        self.progress.advance(self.t_layers)

    def epoch_start(self, epoch):  # noqa: ARG002
        self.progress.reset(self.t_batches)

    def batch_done(self, b):  # noqa: ARG002
        self.progress.advance(self.t_batches)

    def epoch_done(self, row):
        if row["epoch"] > 0:  # epoch 0 is the evaluation right after pre-training
            self.progress.advance(self.t_epochs)
        super().epoch_done(row)

    def stop(self):
        self.progress.stop()
