"""``logger=tensorboard``: TensorBoard event files of the run (pip install 'nmfdnn[tensorboard]').

Written with tensorboardX (numpy and protobuf only; the ``tensorboard`` package, needed to view them,
brings its web server): one scalar per metric and epoch (step = epoch, 0 after pre-training: the
train / validation / test error, the objective, the epoch's and the run's training seconds) and the
hyper-parameters (the flattened config, shown in TensorBoard's HPARAMS tab against those metrics).
Default folder: the run folder's ``tensorboard/``; a resumed run adds an event file beside the first.
"""

from __future__ import annotations

from pathlib import Path

from .base import METRICS, Tracker, flat_params

FOLDER = "tensorboard"


class TensorBoardTracker(Tracker):
    name = "tensorboard"

    def start(self, run):
        from tensorboardX import SummaryWriter
        from tensorboardX.summary import hparams

        where = self.settings.get("save_dir") or (Path(run.run_dir) / FOLDER if run.run_dir is not None else None)
        if where is None:
            raise ValueError("no run folder and no logger.tensorboard.save_dir to write to")
        self.writer = SummaryWriter(logdir=str(where), flush_secs=30)
        if not run.resumed:  # the hyper-parameters once, with the metrics they are compared on
            exp, ssi, sei = hparams(flat_params(run.config), {k: float("nan") for k in METRICS})
            fw = self.writer._get_file_writer()
            for summary in (exp, ssi, sei):
                fw.add_summary(summary)

    def epoch(self, row):
        for k in METRICS:
            if row.get(k) is not None:
                self.writer.add_scalar(k, float(row[k]), int(row["epoch"]))

    def saved(self, path, epoch, next_batch):  # noqa: ARG002 (what a checkpoint holds is on disk too)
        self.writer.flush()

    def end(self, result):  # noqa: ARG002
        self.close()

    def failed(self, error):  # noqa: ARG002
        self.close()

    def close(self):
        writer = getattr(self, "writer", None)
        if writer is not None:
            writer.close()
            self.writer = None
