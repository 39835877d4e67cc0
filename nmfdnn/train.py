"""A run: compose config -> load data -> pre-train -> fine-tune -> evaluate -> write outputs.

Checkpoints after pre-training and after every epoch make a run resumable (``resume=true``);
SIGINT/SIGTERM finish the current batch, checkpoint, and stop with ``status: interrupted``.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from .archive import RUNS_FILE, NotFinished, archived, finished_run, metrics_problem
from .backend import backend_for, blas_threads
from .batching import n_batches
from .checkpoint import (CHECKPOINT, Checkpoint, check_content, config_differences, load_checkpoint,
                         save_checkpoint)
from .config import validate, validate_ranks
from .config.network import build_network
from .data import Dataset, load_dataset, training_arrays
from .errors import Interrupted, NmfdnnError
from .fileio import run_lock, writable_dir_problem
from .events import Listener, Listeners, RunStart
from .loop import train_loop
from .method.network import evaluate
from .parallel import World, world
from .progress import Reporter
from .record import write_record
from .timers import Timers
from .trainers import TRAINERS

log = logging.getLogger("nmfdnn")


@dataclass
class StopFlag:
    """Set by a signal handler; the training loop checks it after every batch."""

    requested: bool = False
    signal: str = ""


@dataclass
class FitResult:
    """What a training run produced: host weights, per-epoch history and timings."""

    weights: list  # host arrays W_1..W_d
    history: list = field(default_factory=list)
    pretrain_seconds: float = 0.0
    finetune_seconds: float = 0.0
    eval_seconds: float = 0.0
    phases: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def config_dict(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)


class _FitHooks(Listener):
    """What ``nmfdnn train`` does around the loop, the last listener of its events: the error rates
    after pre-training and after every epoch (outside the training clock) and a checkpoint after each,
    both emitted to ``events`` (``epoch_end``, ``checkpoint``), and the stop flag of a signal checked
    after every batch (after the other listeners have seen it)."""

    def __init__(self, cfg, bk, data, arrays, trainer, rng, timers, events, stop, ck_path):
        self.cfg, self.bk, self.data, self.trainer, self.rng = cfg, bk, data, trainer, rng
        self.X, self.X_test, self.X_val = arrays
        self.timers, self.events, self.stop, self.ck_path = timers, events, stop, ck_path
        self.cfg_plain = config_dict(cfg)
        self.result = FitResult(weights=[])
        self.partial = 0.0  # seconds a resumed epoch had already trained
        self.epoch_state = None
        self.batches = 0  # fine-tuning batches trained by this process
        self.comm_start = bk.world.seconds, bk.reduce_bytes, bk.reduce_calls  # when fine-tuning began

    def record(self, epoch, Ws, epoch_seconds):
        bk, data, result = self.bk, self.data, self.result
        t0 = time.perf_counter()
        net = self.trainer.net
        if self.cfg.eval_train:
            train_err, obj = evaluate(bk, net, Ws, self.X, data.train.labels)
        else:
            train_err, obj = float("nan"), float("nan")
        test_err, _ = evaluate(bk, net, Ws, self.X_test, data.test.labels)
        row = dict(epoch=epoch, train_error=train_err, test_error=test_err, objective=obj,
                   epoch_seconds=epoch_seconds, seconds=result.pretrain_seconds + result.finetune_seconds)
        if self.X_val is not None:
            row["val_error"], _ = evaluate(bk, net, Ws, self.X_val, data.val.labels)
        result.eval_seconds += time.perf_counter() - t0
        result.history.append(row)
        self.events.epoch_end(row)

    def checkpoint(self, Ws, epoch, next_batch, rng_state, partial=0.0):
        if self.ck_path is None:
            return
        r = self.result
        seconds = dict(pretrain=r.pretrain_seconds, finetune=r.finetune_seconds, eval=r.eval_seconds,
                       partial_epoch=partial)
        save_checkpoint(self.ck_path, Checkpoint(
            weights=[self.bk.to_numpy(W) for W in Ws], epoch=epoch, next_batch=next_batch, rng_state=rng_state,
            history=r.history, seconds=seconds, config=self.cfg_plain, solver_arrays=self.trainer.state_arrays(),
            phases=self.timers.as_dict()))
        self.events.checkpoint(self.ck_path, epoch, next_batch)

    def restore(self, ck) -> tuple[list, int, int]:
        """The weights, epoch and batch to continue from, out of checkpoint ``ck`` (its content checked
        against this run first)."""
        check_content(ck, self.trainer.net.shapes, self.cfg.epochs, self.trainer.n_batches, str(self.ck_path))
        Ws = [self.bk.asarray(W) for W in ck.weights]
        self.trainer.load_state_arrays(ck.solver_arrays, Ws)
        self.rng.bit_generator.state = ck.rng_state
        r = self.result
        r.history = list(ck.history)
        r.pretrain_seconds, r.finetune_seconds, r.eval_seconds = (ck.seconds[k] for k in ("pretrain", "finetune",
                                                                                           "eval"))
        for k, v in ck.phases.items():
            self.timers.seconds[k] = v
        self.partial = ck.seconds.get("partial_epoch", 0.0)
        t0 = time.perf_counter()  # booked where an uninterrupted run books it: pre-training
        self.trainer.prepare()
        self.bk.synchronize()
        r.pretrain_seconds += time.perf_counter() - t0
        log.info("resuming from %s: epoch %d, batch %d", self.ck_path, ck.epoch + 1, ck.next_batch)
        return Ws, ck.epoch + 1, ck.next_batch

    def stop_requested(self) -> bool:
        """Whether a signal asked to stop, on any rank (collective: every rank stops at the same batch)."""
        return self.bk.world.any(self.stop is not None and self.stop.requested)

    def pretrained(self, Ws, seconds):
        self.result.pretrain_seconds = seconds
        self.record(0, Ws, seconds)
        self.checkpoint(Ws, 0, 0, self.rng.bit_generator.state)
        self.comm_start = self.bk.world.seconds, self.bk.reduce_bytes, self.bk.reduce_calls
        if self.stop_requested():
            raise Interrupted(f"interrupted ({self.stop.signal or 'on another rank'}) after pre-training; "
                              "checkpoint saved")

    def epoch_start(self, epoch):  # noqa: ARG002 (the Listener interface)
        self.epoch_state = self.rng.bit_generator.state  # a mid-epoch checkpoint replays the epoch's batches
        self.t_epoch = time.perf_counter()

    def batch_done(self, epoch, b, Ws):
        self.batches += 1
        if self.stop_requested():
            self.bk.synchronize()
            self.checkpoint(Ws, epoch - 1, b + 1, self.epoch_state, self.partial + time.perf_counter() - self.t_epoch)
            raise Interrupted(f"interrupted ({self.stop.signal or 'on another rank'}) in epoch {epoch} after batch {b + 1} of "
                              f"{self.trainer.n_batches}; checkpoint saved")

    def epoch_done(self, epoch, Ws, seconds):
        dt, self.partial = self.partial + seconds, 0.0
        self.result.finetune_seconds += dt
        self.record(epoch, Ws, dt)
        self.checkpoint(Ws, epoch, 0, self.rng.bit_generator.state)


def fit(cfg, data: Dataset, listeners=None, run_dir=None, stop: StopFlag | None = None,
        bk=None, timers: Timers | None = None, net=None) -> FitResult:
    """Train the network of ``cfg`` on ``data`` (``net``, default: built from them by
    :func:`nmfdnn.config.network.build_network`): the solver's pre-training, then ``cfg.epochs``
    epochs (:func:`nmfdnn.loop.train_loop`), evaluating train and test error after pre-training and
    after every epoch.

    With ``run_dir`` and ``cfg.checkpoint``, a checkpoint is saved after pre-training and after every
    epoch; with ``cfg.resume`` the run continues from it.

    ``listeners`` (default: the epoch lines of :class:`nmfdnn.progress.Reporter`) receive the events
    of :mod:`nmfdnn.events` from ``run_start`` to the last ``epoch_end``; ``run_end`` and ``run_failed``
    are the caller's to emit (:func:`run` does, once the run's files are written).
    """
    events = Listeners([Reporter()] if listeners is None else listeners)
    bk = bk or backend_for(cfg)
    timers = timers or Timers(bk)
    rng = np.random.default_rng(cfg.seed)
    ck_path = Path(run_dir) / CHECKPOINT if run_dir is not None and cfg.get("checkpoint", True) else None
    X, Y, X_test = training_arrays(bk, data)
    X_val = bk.asarray(data.val.X) if data.val is not None else None
    net = net or build_network(cfg, data.n_in, data.shape, data.n_classes)
    trainer = TRAINERS[cfg.solver.name](bk, cfg, net, X, Y, rng, timers)
    hooks = _FitHooks(cfg, bk, data, (X, X_test, X_val), trainer, rng, timers, events, stop, ck_path)

    def read_checkpoint():
        if not (cfg.get("resume", False) and ck_path is not None and ck_path.exists()):
            return None
        ck = load_checkpoint(ck_path)
        diffs = config_differences(ck.config, hooks.cfg_plain)
        if diffs:
            raise NmfdnnError(f"{ck_path} was made with another config ({'; '.join(diffs[:3])}); "
                              "use a new run directory or the same overrides")
        return ck

    # with several processes rank 0 reads it (only rank 0 writes run directories) and sends it on
    ck = bk.world.agree(read_checkpoint, root_only=True)

    comm0 = bk.world.seconds
    start = (ck.epoch + 1, ck.next_batch) if ck is not None else (1, 0)
    events.run_start(RunStart(cfg, None if run_dir is None else Path(run_dir), net,
                              trainer.n_batches, *start, resumed=ck is not None))
    Ws, start_epoch, start_batch = hooks.restore(ck) if ck is not None else (None, 1, 0)
    Ws = train_loop(trainer, bk, cfg.epochs, [*events, hooks], Ws, start_epoch, start_batch)
    result = hooks.result
    result.weights = [bk.to_numpy(W) for W in Ws]
    result.phases = timers.as_dict()
    result.info.update(trainer.info)
    from .method.sparse import sparsity

    # the sparsity reached (what solver.l1_weights / l1_activations buy), on the test samples
    result.info["sparsity"] = sparsity(bk, net, Ws, hooks.X_test)
    w, (s0, b0, c0), n = bk.world, hooks.comm_start, max(1, hooks.batches)
    result.info["ranks"] = w.size
    # the all-reduces of fine-tuning per batch (counted in one process too: what P ranks would send)
    result.info["allreduce_bytes_per_batch"] = (bk.reduce_bytes - b0) // n
    result.info["allreduce_calls_per_batch"] = (bk.reduce_calls - c0) // n
    if w.parallel:  # seconds in all-reduces: fine-tuning, and the whole run
        result.info["finetune_comm_seconds"] = w.seconds - s0
        result.info["comm_seconds"] = w.seconds - comm0
    return result


@contextmanager
def stop_on_signals(stop: StopFlag):
    """SIGINT/SIGTERM set ``stop`` (the loop then checkpoints after the current batch); a second
    signal aborts at once. Only in the main thread; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):  # noqa: ARG001 (signal handler signature)
        name = signal.Signals(signum).name
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested, stop.signal = True, name
        log.warning("%s: finishing the current batch, then saving a checkpoint (again to abort at once)", name)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def run(cfg, out_dir: str | Path, listeners: list[Listener] | None = None, record: list[str] | None = None) -> dict:
    """The whole run of ``nmfdnn train``, holding the run directory's lock (one writer per run);
    returns the metrics written to ``metrics.json``. ``record``: the overrides to keep in the run's
    ``.hydra/`` record (:mod:`nmfdnn.record`), written only once every check has passed.
    ``listeners`` (default: the epoch lines of :class:`nmfdnn.progress.Reporter`) receive every event
    of :mod:`nmfdnn.events`, after the run's files (:class:`nmfdnn.outputs.RunOutputs`)."""
    validate(cfg)
    w = world()
    validate_ranks(cfg, w.size)
    backend_for(cfg, w=w)  # fail before loading data if the backend is missing
    with ExitStack() as held:
        def claim():  # with several processes only rank 0 writes: it alone checks and locks the directory
            problem = writable_dir_problem(out_dir)
            if problem:
                raise NmfdnnError(f"cannot write the run directory {problem}")
            held.enter_context(run_lock(out_dir))
            return _finished_or_none(cfg, out_dir)

        done = w.agree(claim, root_only=True)
        if done is not None:
            return done
        return _run_locked(cfg, out_dir, [Reporter()] if listeners is None else listeners, record, w)


def _check_checkpoint_content(cfg, out_dir, data, net) -> None:
    """A checkpoint a resume would read, checked against this run's network ``net`` (weights, position,
    history, timers) before anything is written: a damaged one is refused in one line and the directory
    left as it was."""
    ck_path = Path(out_dir) / CHECKPOINT
    if not (cfg.get("resume", False) and cfg.get("checkpoint", True) and ck_path.exists()):
        return
    check_content(load_checkpoint(ck_path), net.shapes, cfg.epochs, n_batches(data.train.m, cfg.solver.batch_size),
                  str(ck_path))


def _finished_or_none(cfg, out_dir) -> dict | None:
    """The one place that decides what a run directory holds before a run, from its files: the
    metrics of a finished run of this very config (in the folder or in its study's archive) when
    resuming, None to train (afresh or from a checkpoint), or a one-line :class:`NmfdnnError`.

    "Finished" needs a complete, valid record: ``metrics.json`` with status ``finished`` and finite
    errors, and a ``config.yaml`` that fits the schema and equals the requested config. A folder
    whose metrics say finished but whose config is missing, empty or unreadable is refused (which run
    it holds cannot be told), never taken as done; an unfinished one resumes from its checkpoint."""
    out_dir = Path(out_dir)
    if not cfg.get("resume", False):
        _refuse_a_held_run(out_dir)  # fresh: the folder holds no run
        return None
    plain = config_dict(cfg)
    done = _finished_here(cfg, out_dir, plain)
    if done is None:
        done = _finished_in_archive(out_dir, plain)
    if done is not None:
        return done  # finished: nothing to do
    _check_resumable(cfg, out_dir, plain)  # from its checkpoint, or from the start (said in a warning)
    return None


def _differences(saved: dict, plain: dict) -> str:
    return "; ".join(config_differences(saved, plain)[:3])


def _refuse_a_held_run(out_dir: Path) -> None:
    held = [f for f in ("metrics.json", CHECKPOINT) if (out_dir / f).exists()]
    if held:
        raise NmfdnnError(f"{out_dir} already holds a run ({', '.join(held)}); continue it with resume=true "
                          "(nmfdnn resume DIR) or choose another hydra.run.dir")


def _finished_here(cfg, out_dir: Path, plain: dict) -> dict | None:
    """The metrics of the finished run of this config in ``out_dir`` (its model restored from the final
    checkpoint when it is missing), None if it holds none."""
    if not ((out_dir / "metrics.json").exists() or (out_dir / "metrics.json").is_symlink()):
        return None
    try:
        saved, done = finished_run(out_dir)
    except NotFinished:
        return None
    except NmfdnnError as e:
        raise NmfdnnError(f"{e}; cannot tell whether it is this run: move the folder away or resume into "
                          "another hydra.run.dir") from None
    if done is None:
        return None
    if _differences(saved, plain):
        raise NmfdnnError(f"{out_dir} holds a finished run with another config ({_differences(saved, plain)})")
    if cfg.get("save_model", True) and not (out_dir / "model.npz").exists():
        from .outputs import restore_model

        restore_model(cfg, out_dir)
    log.info("%s already finished; nothing to do", out_dir)
    return done


def _finished_in_archive(out_dir: Path, plain: dict) -> dict | None:
    """The metrics of the finished run of this config packed into its study's runs.jsonl, if any."""
    record_ = archived(out_dir)
    if record_ is None or record_["metrics"].get("status") != "finished" or metrics_problem(record_["metrics"]):
        return None
    if _differences(record_["config"], plain):
        raise NmfdnnError(f"{out_dir}: its study's {RUNS_FILE} holds a finished run of that name with another "
                          f"config ({_differences(record_['config'], plain)})")
    log.info("%s already finished (in its study's %s); nothing to do", out_dir, RUNS_FILE)
    return record_["metrics"]


def _check_resumable(cfg, out_dir: Path, plain: dict) -> None:
    """A checkpoint of another config refused before anything is written; a run that left no checkpoint
    to resume from said in a warning (it trains from the start)."""
    ck_path = out_dir / CHECKPOINT
    if cfg.get("checkpoint", True) and ck_path.exists():
        diffs = _differences(load_checkpoint(ck_path).config, plain)
        if diffs:
            raise NmfdnnError(f"{ck_path} was made with another config ({diffs}); use a new run directory or the "
                              "same overrides")
    elif any((out_dir / f).exists() for f in ("metrics.json", "history.csv", CHECKPOINT)):  # a run was here
        why = "checkpoint=false" if not cfg.get("checkpoint", True) else f"its {CHECKPOINT} is missing"
        log.warning("%s: nothing to resume from (%s): training from the start, epoch 0", out_dir, why)


def _run_locked(cfg, out_dir, listeners, record=None, w: World | None = None):
    from .outputs import RunOutputs

    w = w or world()
    t_start = time.perf_counter()
    loaded = {}

    def load():  # rank 0 first (it may download and cache the data), then the others from the cache
        t0 = time.perf_counter()
        data = load_dataset(cfg.dataset)
        loaded["seconds"] = time.perf_counter() - t0
        validate(cfg, n_train=data.train.m, shape=data.shape)
        validate_ranks(cfg, w.size, n_train=data.train.m)
        loaded["net"] = build_network(cfg, data.n_in, data.shape, data.n_classes)  # the run's network, once
        if w.root:
            _check_checkpoint_content(cfg, out_dir, data, loaded["net"])
            if record is not None:  # every check has passed: the run's record, as Hydra would have written it
                write_record(out_dir, OmegaConf.to_yaml(cfg), record)
        loaded["data"] = data

    w.agree(load, root_only=True)
    if w.parallel:
        w.agree(load if not w.root else (lambda: None))
    data = loaded["data"]
    log.info("data %s: %d train, %d test samples, %d features, %d classes", data.name, data.train.m,
             data.test.m, data.n_in, data.n_classes)
    if w.parallel:
        log.info("%d processes, each with 1/%d of every column set", w.size, w.size)
    stop = StopFlag()
    outputs = RunOutputs(out_dir, cfg, data)
    events = Listeners([outputs, *listeners] if w.root else [Reporter()])  # only rank 0 writes and reports
    try:
        with blas_threads(cfg.backend.get("threads")), stop_on_signals(stop):
            result = fit(cfg, data, events, run_dir=out_dir if w.root else None, stop=stop, bk=backend_for(cfg, w=w),
                         net=loaded["net"])
    except BaseException as e:
        events.run_failed(e)
        raise
    result.info["load_seconds"] = loaded["seconds"]
    result.info["total_seconds"] = time.perf_counter() - t_start

    def finish():
        try:
            events.run_end(result)
        except BaseException as e:
            events.run_failed(e)
            raise
        return outputs.metrics

    return w.agree(finish, root_only=True)
