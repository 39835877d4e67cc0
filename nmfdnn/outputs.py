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

from .checkpoint import DAMAGED, check_weights, load_checkpoint
from .config import dtype_name, has_bias
from .errors import Interrupted, NmfdnnError, NumericalError
from .events import Listener
from .fileio import atomic_write_bytes, atomic_write_json

HISTORY_FIELDS = ["epoch", "train_error", "test_error", "objective", "epoch_seconds", "seconds"]


def load_model(run_dir) -> tuple[list, bool]:
    """The weights ``[W_1, ..., W_d]`` and the bias flag of a run's ``model.npz`` (no pickles)."""
    from .fileio import regular_file_problem

    path = Path(run_dir) / "model.npz"
    problem = regular_file_problem(path)
    if problem:
        raise NmfdnnError(f"{problem}; refused (a model is a regular file)")
    try:
        with np.load(path, allow_pickle=False) as z:
            n = len([k for k in z.files if k.startswith("W")])
            Ws = [z[f"W{i + 1}"] for i in range(n)]
            flag = z["bias"]
            n_conv = int(z["n_conv"]) if "n_conv" in z.files else 0  # convolutions first (conv=[...])
    except FileNotFoundError:
        raise
    except DAMAGED as e:
        raise NmfdnnError(f"{path} is damaged: {type(e).__name__}: {e}; remove it to start over") from None
    if n == 0 or flag.shape != () or flag.dtype != np.bool_ or any(W.ndim != 2 for W in Ws):
        raise NmfdnnError(f"{path} is damaged: not the weights and bias flag nmfdnn writes")
    bias = bool(flag)
    if not 0 <= n_conv < n:
        raise NmfdnnError(f"{path} is damaged: not the weights and bias flag nmfdnn writes")
    # the dense part chains (W_{i+1} takes W_i's outputs); a convolution's output size is not its W's rows
    dense = Ws[n_conv:]
    n_in = dense[0].shape[1] - int(bias)
    check_weights(Ws, 0, [], 0, bias, str(path), shapes=[W.shape for W in Ws[:n_conv]] + [
        (W.shape[0], (n_in if i == 0 else dense[i - 1].shape[0]) + int(bias)) for i, W in enumerate(dense)])
    return Ws, bias


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
        mbuf = io.BytesIO()
        np.savez(mbuf, **{f"W{i + 1}": W for i, W in enumerate(result.weights)},
                 hidden=np.asarray(list(cfg.hidden)), bias=np.asarray(has_bias(cfg)),
                 **({"n_conv": np.asarray(len(cfg.conv))} if cfg.get("conv") else {}))
        atomic_write_bytes(out / "model.npz", mbuf.getvalue())
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
