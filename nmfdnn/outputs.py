"""Run outputs: metrics.json, history.csv, model.npz, written atomically (temp file + rename); written by
:class:`RunOutputs`, the listener of a run's end."""

from __future__ import annotations

import csv
import io
import os
import platform
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .checkpoint import check_weights, load_checkpoint
from .config import dtype_name, has_bias
from .errors import Interrupted, NmfdnnError, NumericalError
from .events import Listener
from .fileio import atomic_write_bytes, atomic_write_json

HISTORY_FIELDS = ["epoch", "train_error", "test_error", "objective", "epoch_seconds", "seconds"]


def load_model(run_dir) -> tuple[list, bool]:
    """The weights ``[W_1, ..., W_d]`` and the bias flag of a run's ``model.npz`` (no pickles; every
    header and field checked before it is used: :func:`nmfdnn.npzfile.read_npz`)."""
    import re

    from .npzfile import read_npz

    path = Path(run_dir) / "model.npz"
    z = read_npz(path, "a model")
    names = sorted((k for k in z if re.fullmatch(r"W[0-9]+", k)), key=lambda k: int(k[1:]))
    n = len(names)
    if n == 0 or names != [f"W{i + 1}" for i in range(n)] or "bias" not in z:
        raise NmfdnnError(f"{path} is damaged: not the weights and bias flag nmfdnn writes")
    Ws, flag = [z[k] for k in names], z["bias"]
    if flag.shape != () or flag.dtype != np.bool_ or any(W.ndim != 2 or 0 in W.shape for W in Ws):
        raise NmfdnnError(f"{path} is damaged: not the weights and bias flag nmfdnn writes")
    n_conv = z.get("n_conv", np.asarray(0))  # convolutions first (conv=[...])
    if n_conv.shape != () or n_conv.dtype.kind not in "iu" or not 0 <= int(n_conv) < n:
        raise NmfdnnError(f"{path} is damaged: n_conv is {n_conv.dtype} {n_conv.shape}, not a layer count below {n}; "
                          "remove it to start over")
    bias, n_conv = bool(flag), int(n_conv)
    # the dense part chains (W_{i+1} takes W_i's outputs); a convolution's output size is not its W's rows
    dense = Ws[n_conv:]
    n_in = dense[0].shape[1] - int(bias)
    check_weights(Ws, [W.shape for W in Ws[:n_conv]] + [
        (W.shape[0], (n_in if i == 0 else dense[i - 1].shape[0]) + int(bias)) for i, W in enumerate(dense)],
        str(path), mismatch="is damaged (its matrices do not chain)", mismatch_remedy="remove it to start over")
    return Ws, bias


def write_model(out_dir, cfg, weights) -> None:
    """``model.npz``: the weights ``W_1 .. W_d``, the hidden widths, the bias flag and (conv nets) the
    number of convolutions, written atomically."""
    buf = io.BytesIO()
    np.savez(buf, **{f"W{i + 1}": W for i, W in enumerate(weights)},
             hidden=np.asarray(list(cfg.hidden)), bias=np.asarray(has_bias(cfg)),
             **({"n_conv": np.asarray(len(cfg.conv))} if cfg.get("conv") else {}))
    atomic_write_bytes(Path(out_dir) / "model.npz", buf.getvalue())


def restore_model(cfg, out_dir) -> None:
    """A finished run whose ``model.npz`` is missing: the model written again from its final
    checkpoint (the one after the last epoch holds the final weights), said in a warning; a warning
    that says why when no checkpoint can restore it."""
    import logging

    from .checkpoint import CHECKPOINT, config_differences

    log = logging.getLogger("nmfdnn")
    out_dir = Path(out_dir)
    ck_path = out_dir / CHECKPOINT
    if not ck_path.exists():
        log.warning("%s: model.npz is missing and there is no %s to restore it from: the run's metrics stand, its "
                    "model is lost (train again into another hydra.run.dir for a model)", out_dir, CHECKPOINT)
        return
    ck = load_checkpoint(ck_path)
    plain = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    if ck.epoch != cfg.epochs or ck.next_batch != 0 or config_differences(ck.config, plain):
        log.warning("%s: model.npz is missing and %s is not the run's final checkpoint (epoch %s of %d): the model "
                    "cannot be restored", out_dir, CHECKPOINT, ck.epoch, cfg.epochs)
        return
    check_weights(ck.weights, [W.shape for W in ck.weights], str(ck_path))
    write_model(out_dir, cfg, ck.weights)
    load_model(out_dir)  # what was written reads back as a model
    log.warning("%s: model.npz was missing; restored from the final checkpoint (epoch %d)", out_dir, ck.epoch)


def write_status(out_dir, cfg, status: str, message: str) -> dict:
    """``metrics.json`` of a run that did not finish (interrupted or failed), with the history so far
    (from the checkpoint, if any). No ``model.npz`` is written for such a run."""
    out = Path(out_dir)
    history = []
    ck = out / "checkpoint.npz"
    if ck.exists():
        try:
            history = load_checkpoint(ck).history
        except Exception:  # a broken checkpoint must not hide the real error
            history = []
    metrics = {"status": status, "error": message, "solver": cfg.solver.name, "hidden": list(cfg.hidden),
               "seed": cfg.seed, "history": history}
    atomic_write_json(out / "metrics.json", metrics)
    return metrics


def write_run(out_dir, cfg, data, result) -> dict:
    """Write the run's files into ``out_dir`` and return the metrics dictionary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = result.history[-1]
    metrics = {
        "status": "finished",
        "dataset": data.name,
        "solver": cfg.solver.name,
        "hidden": list(cfg.hidden),
        **({"conv": OmegaConf.to_container(cfg.conv)} if cfg.get("conv") else {}),
        "dtype": dtype_name(cfg),
        "backend": cfg.backend.name,
        "seed": cfg.seed,
        "epochs": cfg.epochs,
        "n_train": data.train.m,
        "n_test": data.test.m,
        "train_error": final["train_error"],
        "test_error": final["test_error"],
        "objective": final["objective"],
        **({"val_error": final["val_error"], "n_val": data.val.m} if "val_error" in final else {}),
        "pretrain_seconds": result.pretrain_seconds,
        "finetune_seconds": result.finetune_seconds,
        "eval_seconds": result.eval_seconds,
        "total_seconds": result.info.get("total_seconds"),
        "phase_seconds": result.phases,
        "info": {k: v for k, v in result.info.items() if k != "total_seconds"},
        "machine": {"node": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "slurm_job_id": os.environ.get("SLURM_JOB_ID")},
        "history": result.history,
    }
    buf = io.StringIO()
    fields = HISTORY_FIELDS + (["val_error"] if "val_error" in final else [])
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in result.history:
        w.writerow(row)
    atomic_write_bytes(out / "history.csv", buf.getvalue().encode())
    for i, W in enumerate(result.weights):
        if not np.isfinite(W).all():  # never write non-finite weights
            raise NumericalError(f"non-finite values in the final weights W_{i + 1}")
    if cfg.get("save_model", True):
        write_model(out, cfg, result.weights)
    atomic_write_bytes(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True).encode())
    atomic_write_json(out / "metrics.json", metrics)  # last: its presence means the run finished
    return metrics


class RunOutputs(Listener):
    """The run's files as a listener of its events: at ``run_end`` those of :func:`write_run` (its
    metrics in :attr:`metrics`); at ``run_failed`` the ``metrics.json`` of :func:`write_status` for an
    interrupt (``interrupted``) or a numerical failure (``failed``), nothing for any other error."""

    def __init__(self, out_dir, cfg, data):
        self.out_dir, self.cfg, self.data = out_dir, cfg, data
        self.metrics = None
        self.ended = False  # run_end began: a failure while writing leaves the files as they are

    def run_end(self, result):
        self.ended = True
        self.metrics = write_run(self.out_dir, self.cfg, self.data, result)

    def run_failed(self, error):
        if self.ended:
            return
        if isinstance(error, Interrupted):
            write_status(self.out_dir, self.cfg, "interrupted", str(error))
        elif isinstance(error, NumericalError):
            write_status(self.out_dir, self.cfg, "failed", str(error))
