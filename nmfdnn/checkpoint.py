"""Checkpoints: everything a run needs to continue bit-identically, written atomically.

``checkpoint.npz`` holds the weights, the solver's own arrays (Adam's moments for BP) and a JSON
document with the position (last finished epoch, next batch of a partly done epoch), the NumPy
random generator's state at the start of that epoch, the history so far, the timers and the
config it was made with.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import NON_RESULT_KEYS, effective
from .errors import NmfdnnError, NumericalError
from .fileio import atomic_write_bytes

CHECKPOINT = "checkpoint.npz"


@dataclass
class Checkpoint:
    weights: list  # host arrays
    epoch: int  # last finished epoch (0: pre-training done)
    next_batch: int  # > 0: epoch + 1 is partly done, resume at this batch
    rng_state: dict  # generator state at the start of epoch + 1
    history: list
    seconds: dict  # pretrain, finetune, eval, partial_epoch
    config: dict
    solver_arrays: dict = field(default_factory=dict)
    phases: dict = field(default_factory=dict)


def save_checkpoint(path: Path, ck: Checkpoint) -> None:
    """Write ``ck`` atomically; refuse to write non-finite weights."""
    for i, W in enumerate(ck.weights):
        if not np.isfinite(W).all():
            raise NumericalError(f"refusing to checkpoint non-finite weights W_{i + 1}")
    meta = dict(epoch=ck.epoch, next_batch=ck.next_batch, rng_state=ck.rng_state, history=ck.history,
                seconds=ck.seconds, config=ck.config, phases=ck.phases, n_weights=len(ck.weights))
    arrays = {f"W{i + 1}": W for i, W in enumerate(ck.weights)}
    arrays.update({f"solver__{k}": v for k, v in ck.solver_arrays.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


DAMAGED = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError)


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint (``np.load`` without pickles: arrays and a JSON document only). A truncated
    or corrupt file is an error naming it, never a silent restart over existing results."""
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(bytes(z["meta"]).decode())
            weights = [z[f"W{i + 1}"] for i in range(meta["n_weights"])]
            solver_arrays = {k[len("solver__"):]: z[k] for k in z.files if k.startswith("solver__")}
            for key in ("epoch", "next_batch", "rng_state", "history", "seconds", "config"):
                meta[key]  # noqa: B018  (a missing key is damage too)
    except DAMAGED as e:
        raise NmfdnnError(f"{path} is damaged: {type(e).__name__}: {e}; remove it to start over") from None
    return Checkpoint(weights=weights, epoch=meta["epoch"], next_batch=meta["next_batch"],
                      rng_state=meta["rng_state"], history=meta["history"], seconds=meta["seconds"],
                      config=meta["config"], solver_arrays=solver_arrays, phases=meta.get("phases", {}))


def config_differences(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Keys whose values differ between two plain config dicts, ignoring the keys that do not change
    a result (:data:`nmfdnn.config.NON_RESULT_KEYS`) and keys that only one of them has (a schema that
    gained or lost a key since the run started)."""
    if not prefix:
        saved, current = effective(saved), effective(current)
    out = []
    for key in sorted(set(saved) & set(current)):
        if f"{prefix}{key}" in NON_RESULT_KEYS:
            continue
        a, b = saved[key], current[key]
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out
