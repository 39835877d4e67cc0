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


MAX_LAYERS = 1000  # n_weights of a checkpoint: one matrix per layer


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint (arrays and a JSON document only: :func:`nmfdnn.npzfile.read_npz` checks
    every array's header before loading it). A truncated or corrupt file, or a document whose fields
    have the wrong types, is an error naming it, never a silent restart over existing results; a path
    that is not a regular file (a FIFO, a device) is refused before it is opened."""
    from .npzfile import read_npz

    z = read_npz(path, "a checkpoint")
    try:
        meta = z["meta"]
        if meta.ndim != 1 or meta.dtype != np.uint8:
            raise ValueError("meta is not a byte string")
        meta = json.loads(bytes(meta).decode())
        if not isinstance(meta, dict):
            raise ValueError("its document is not a mapping")
        n = meta["n_weights"]
        if type(n) is not int or not 1 <= n <= MAX_LAYERS:
            raise ValueError(f"n_weights {n!r}")
        weights = [z[f"W{i + 1}"] for i in range(n)]
        solver_arrays = {k[len("solver__"):]: v for k, v in z.items() if k.startswith("solver__")}
        for key in ("epoch", "next_batch", "rng_state", "history", "seconds", "config"):
            meta[key]  # noqa: B018  (a missing key is damage too; the values: check_position)
        if not isinstance(meta["config"], dict):  # compared with the run's before check_position runs
            raise ValueError(f"its config is a {type(meta['config']).__name__}, not a mapping")
    except DAMAGED as e:
        raise NmfdnnError(f"{path} is damaged: {type(e).__name__}: {e}; remove it to start over") from None
    return Checkpoint(weights=weights, epoch=meta["epoch"], next_batch=meta["next_batch"],
                      rng_state=meta["rng_state"], history=meta["history"], seconds=meta["seconds"],
                      config=meta["config"], solver_arrays=solver_arrays, phases=meta.get("phases", {}))


MISMATCH_REMEDY = ("it was made for other data or another network: use the run's own data and overrides, or remove "
                   "it to start over")


def check_weights(weights, shapes, where: str, remedy: str = "remove it to start over",
                  mismatch: str = "does not match this run", mismatch_remedy: str = MISMATCH_REMEDY) -> None:
    """Refuse weights whose content does not fit the run: one float matrix per layer, ``W_i`` of the
    shape ``shapes[i]`` (the network's, :attr:`nmfdnn.method.network.Network.shapes`), all finite. One
    line: ``WHERE is damaged`` and ``remedy``, or ``WHERE does not match this run`` (``mismatch``) and
    ``mismatch_remedy`` (the data or the overrides may be what changed, so the file is not called damaged)."""
    if len(weights) != len(shapes):
        raise NmfdnnError(f"{where} {mismatch}: {len(weights)} weight matrices for {len(shapes)} layers; "
                          f"{mismatch_remedy}")
    for i, W in enumerate(weights):
        want = tuple(shapes[i])
        if not isinstance(W, np.ndarray) or W.dtype.kind != "f":
            raise NmfdnnError(f"{where} is damaged: W_{i + 1} is not a float matrix; {remedy}")
        if W.shape != want:
            raise NmfdnnError(f"{where} {mismatch}: W_{i + 1} has shape {W.shape}, the network needs {want}; "
                              f"{mismatch_remedy}")
        if not np.isfinite(W).all():
            raise NmfdnnError(f"{where} is damaged: W_{i + 1} holds non-finite values; {remedy}")


def check_position(ck: "Checkpoint", epochs: int, n_batches: int, where: str) -> None:
    """Refuse a checkpoint whose position, history or timers are not what a run of ``epochs`` epochs of
    ``n_batches`` batches writes (types and ranges)."""
    def bad(what):
        raise NmfdnnError(f"{where} is damaged: {what}; remove it to start over")

    if type(ck.epoch) is not int or not 0 <= ck.epoch <= epochs:
        bad(f"epoch {ck.epoch!r} is not in 0..{epochs}")
    if type(ck.next_batch) is not int or not 0 <= ck.next_batch <= n_batches:  # n_batches: stopped after the last
        bad(f"next batch {ck.next_batch!r} is not in 0..{n_batches}")
    if not isinstance(ck.history, list) or len(ck.history) != ck.epoch + 1 or \
            not all(isinstance(r, dict) and r.get("epoch") == i for i, r in enumerate(ck.history)):
        bad("its history does not list epochs 0.."f"{ck.epoch}")
    if not isinstance(ck.seconds, dict) or not all(
            isinstance(ck.seconds.get(k), (int, float)) and np.isfinite(ck.seconds[k]) and ck.seconds[k] >= 0
            for k in ("pretrain", "finetune", "eval")):
        bad("its timers are not finite seconds")
    if not isinstance(ck.rng_state, dict) or not isinstance(ck.config, dict) or not isinstance(ck.phases, dict):
        bad("its random state, config or timers have the wrong type")


def check_adam_state(arrays: dict, weights, where: str):
    """Adam's step counter and moments from a checkpoint's solver arrays, checked against ``weights``
    (a nonnegative integer step; finite float moments of the weights' shapes, second moments >= 0);
    ``None`` when the checkpoint holds no Adam state."""
    if "adam_t" not in arrays:
        return None
    try:
        t = arrays["adam_t"]
        ms = [arrays[f"adam_m{i}"] for i in range(len(weights))]
        vs = [arrays[f"adam_v{i}"] for i in range(len(weights))]
        ok = t.shape == () and t.dtype.kind in "iu" and int(t) >= 0 and all(
            a.shape == tuple(W.shape) and a.dtype.kind == "f" and np.isfinite(a).all()
            for W, m, v in zip(weights, ms, vs) for a in (m, v)) and all((v >= 0).all() for v in vs)
    except KeyError:
        ok = False
    if not ok:
        raise NmfdnnError(f"{where}: its Adam state is damaged or does not match this network; remove it to "
                          "start over")
    return int(t), ms, vs


def check_content(ck: "Checkpoint", shapes, epochs: int, n_batches: int, where: str) -> None:
    """A checkpoint's weights, position, history, timers, random state and solver state against the run
    that would resume it (its network's weight ``shapes``, ``epochs`` of ``n_batches``: :func:`check_weights`,
    :func:`check_position`, :func:`check_adam_state`); one line if anything is off."""
    check_weights(ck.weights, shapes, where)
    check_position(ck, epochs, n_batches, where)
    check_adam_state(ck.solver_arrays, ck.weights, where)
    try:
        np.random.default_rng().bit_generator.state = ck.rng_state
    except (TypeError, ValueError, KeyError) as e:
        raise NmfdnnError(f"{where} is damaged: its random state ({type(e).__name__}); remove it to start over") \
            from None


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
