"""Progress display: rich bars for pre-training layers, epochs and batches (or nothing), and the epoch
lines of the log; both listeners of a run's events (:mod:`nmfdnn.events`)."""

from __future__ import annotations

import logging
import sys

from .events import Listener

log = logging.getLogger("nmfdnn")


def console_handler() -> logging.Handler:
    """The console log handler of ``nmfdnn train`` (conf/hydra/job_logging/rich.yaml): rich on a
    terminal (records print above the progress bars); elsewhere (a file, a pipe, CI) a plain stream
    handler, so that every record is one line, never wrapped at rich's default 80 columns."""
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        return RichHandler(show_path=False)
    return logging.StreamHandler(sys.stderr)


class Reporter(Listener):
    """The run's epoch lines in the log: a listener of :mod:`nmfdnn.events` (without bars)."""

    def epoch_end(self, row):
        val = f"  val {row['val_error']:6.2f}%" if "val_error" in row else ""
        log.info("epoch %3d  train %6.2f%%%s  test %6.2f%%  objective %.4g  %.1fs", row["epoch"],
                 row["train_error"], val, row["test_error"], row["objective"], row["epoch_seconds"])

    def run_end(self, result):  # noqa: ARG002 (the Listener interface)
        self.stop()

    def run_failed(self, error):  # noqa: ARG002
        self.stop()

    def stop(self) -> None:
        """End the display (at the run's end or failure; the CLI also calls it on an error it catches)."""


class RichReporter(Reporter):
    """Rich progress bars for pre-training layers, epochs and batches; log records are printed above
    them through the shared console. The bars stop at the run's end or failure."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), transient=True)

    def run_start(self, run):
        self.progress.start()
        self.t_layers = self.progress.add_task("pre-training layers", total=len(run.config.hidden))
        self.t_epochs = self.progress.add_task("epochs", total=run.config.epochs)
        self.t_batches = self.progress.add_task("batches", total=run.n_batches)

    def layer_done(self, i):  # noqa: ARG002 (the Listener interface)
        self.progress.advance(self.t_layers)

    def epoch_start(self, epoch):  # noqa: ARG002
        self.progress.reset(self.t_batches)

    def batch_done(self, epoch, b, Ws):  # noqa: ARG002
        self.progress.advance(self.t_batches)

    def epoch_end(self, row):
        if row["epoch"] > 0:  # epoch 0 is the evaluation right after pre-training
            self.progress.advance(self.t_epochs)
        super().epoch_end(row)

    def stop(self):
        self.progress.stop()


def reporter_for(cfg) -> Reporter:
    """The progress listener of ``nmfdnn train``: bars with ``progress=true`` on a terminal, else the
    epoch lines only."""
    return RichReporter() if cfg.progress and sys.stderr.isatty() else Reporter()
