"""``nmfdnn tune [SPACE] [OVERRIDES] [--trials N] [--workers N] ...``: a hyper-parameter search with Optuna.

The search space is a YAML file of the ``tune`` group (``conf/tune/NAME.yaml``, or a path): the keys
to search, each a float range (optionally log), an int range or a list of choices, and the fixed
overrides of every trial's run. The objective is the run's final validation error, so the base run
must hold out ``dataset.val_size`` training samples (the test error is never the objective).

Every trial is an ordinary run folder, ``STUDY/runs/trial-NNNN`` (``nmfdnn report STUDY``, ``plot``,
``eval`` and ``resume`` work on it), trained in the worker's process by :func:`nmfdnn.train.run`;
its ``metrics.json`` names the trial's number and parameters under ``trial``. The study is kept in
an Optuna storage: ``STUDY/optuna.db`` (SQLite) unless ``--storage`` names another (any RDB URL, or
``journal`` / ``journal:PATH`` for Optuna's JournalStorage in a file).

Workers: ``--workers N`` starts N local processes, ``--slurm`` N SLURM jobs (one job array through
submitit), all drawing trials from the same study until it holds ``--trials`` trials. Two file locks
in the study folder keep the study consistent: ``.tune.lock`` is held while a worker reads or writes
the storage (so that SQLite is written by one process at a time), and ``locks/trial-NNNN.lock`` for
as long as a worker trains trial NNNN. A trial that the storage says is running but whose lock
nobody holds lost its worker (killed, or the machine went down): the next worker takes it over and
resumes its run folder from the last checkpoint, under the same trial number, so that a killed study
loses no trial and counts none twice.

Pruning (``--pruner median|hyperband``, off by default) reports the validation error after every
epoch; a pruned trial's run stops there and its ``metrics.json`` says ``status: pruned``, which
``nmfdnn report`` leaves out of its groups.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from . import Parser
from ..errors import NmfdnnError, NumericalError
from ..events import Listener

log = logging.getLogger("nmfdnn.tune")

PRUNERS = ("none", "median", "hyperband")
RUNS = "runs"
LOCKS = "locks"
STUDY_LOCK = ".tune.lock"
SUMMARY = "study.json"
_TOP_KEYS = {"study", "dir", "trials", "sampler", "pruner", "overrides", "space"}


def extra_missing() -> str | None:
    """The one-line refusal when Optuna is not installed, else None."""
    from ..extras import missing

    return missing("optuna", "nmfdnn tune")


# -- the search space ------------------------------------------------------------------------------

def space_path(name: str) -> Path:
    """``conf/tune/NAME.yaml`` for a name, else the YAML file ``name`` itself."""
    from ..config import conf_dir

    p = Path(name)
    if p.suffix in (".yaml", ".yml") or os.sep in name:
        if not p.is_file():
            raise NmfdnnError(f"{name}: no such search space file")
        return p
    p = Path(conf_dir()) / "tune" / f"{name}.yaml"
    if not p.is_file():
        known = sorted(f.stem for f in p.parent.glob("*.yaml"))
        raise NmfdnnError(f"unknown search space {name!r} (conf/tune has: {', '.join(known) or 'none'}; or give a "
                          "YAML file)")
    return p


def load_space(name: str) -> dict:
    """The search space file as a dictionary, checked: every entry of ``space`` is one of the three
    kinds with valid bounds; a problem is one line naming the file and the key."""
    import yaml

    path = space_path(name)
    try:
        spec = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise NmfdnnError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(spec, dict):
        raise NmfdnnError(f"{path}: not a mapping of study, trials, overrides and space")
    unknown = sorted(set(spec) - _TOP_KEYS)
    if unknown:
        raise NmfdnnError(f"{path}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_TOP_KEYS))})")
    space = spec.get("space")
    if not isinstance(space, dict) or not space:
        raise NmfdnnError(f"{path}: 'space' must map keys to {{float: [low, high]}}, {{int: [low, high]}} or "
                          "{choice: [...]}")
    for key, dist in space.items():
        _check_dist(path, key, dist)
    overrides = spec.get("overrides") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise NmfdnnError(f"{path}: 'overrides' must be a list of KEY=VALUE strings")
    pruner = str(spec.get("pruner", "none") or "none")
    if pruner not in PRUNERS:
        raise NmfdnnError(f"{path}: pruner {pruner!r} is not one of {', '.join(PRUNERS)}")
    sampler = spec.get("sampler") or {}
    if not isinstance(sampler, dict) or set(sampler) - {"seed", "startup_trials"}:
        raise NmfdnnError(f"{path}: 'sampler' takes seed and startup_trials")
    return {"name": path.stem, "path": str(path), "study": str(spec.get("study") or path.stem),
            "dir": spec.get("dir"), "trials": int(spec.get("trials") or 10), "pruner": pruner,
            "seed": int(sampler.get("seed", 0)), "startup_trials": int(sampler.get("startup_trials", 10)),
            "overrides": overrides, "space": space}


def _check_dist(path, key, dist) -> None:
    where = f"{path}: space {key!r}"
    if not isinstance(dist, dict):
        raise NmfdnnError(f"{where}: expected {{float: [low, high]}}, {{int: [low, high]}} or {{choice: [...]}}")
    kinds = [k for k in ("float", "int", "choice") if k in dist]
    if len(kinds) != 1 or set(dist) - {kinds[0], "log", "step"}:
        raise NmfdnnError(f"{where}: give exactly one of float, int, choice (with log and, for int, step)")
    kind, value = kinds[0], dist[kinds[0]]
    if kind == "choice":
        if not isinstance(value, list) or not value or not all(v is None or isinstance(v, (bool, int, float, str))
                                                               for v in value):
            raise NmfdnnError(f"{where}: choice must be a non-empty list of plain values")
        return
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                               for v in value)):
        raise NmfdnnError(f"{where}: {kind} must be [low, high] (numbers)")
    low, high = value
    if kind == "int" and not all(float(v).is_integer() for v in value):
        raise NmfdnnError(f"{where}: int bounds must be integers")
    if not low <= high or (dist.get("log") and low <= 0):
        raise NmfdnnError(f"{where}: needs low <= high{' and low > 0 (log)' if dist.get('log') else ''}")


def suggest(trial, space: dict) -> dict:
    """The trial's value of every key of ``space`` (a trial taken over returns the values it drew)."""
    params = {}
    for key, dist in space.items():
        log_ = bool(dist.get("log", False))
        if "float" in dist:
            params[key] = trial.suggest_float(key, float(dist["float"][0]), float(dist["float"][1]), log=log_)
        elif "int" in dist:
            params[key] = trial.suggest_int(key, int(dist["int"][0]), int(dist["int"][1]),
                                            step=int(dist.get("step", 1)), log=log_)
        else:
            params[key] = trial.suggest_categorical(key, dist["choice"])
    return params


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def param_overrides(params: dict) -> list[str]:
    return [f"{k}={_value(v)}" for k, v in params.items()]


def corners(space: dict) -> list[dict]:
    """Two points of the space that between them take every bound and every choice's first and last
    value: composed and validated before any work."""
    lo, hi = {}, {}
    for key, dist in space.items():
        vals = dist.get("float") or dist.get("int") or dist["choice"]
        lo[key], hi[key] = vals[0], vals[-1]
    return [lo, hi]


# -- the study -------------------------------------------------------------------------------------

def storage_url(arg: str | None, study_dir: Path) -> str:
    """What ``--storage`` names, as the string recorded: an RDB URL, or ``journal:ABSOLUTE_PATH``."""
    if not arg:
        return f"sqlite:///{(study_dir / 'optuna.db').absolute()}"
    if arg == "journal":
        return f"journal:{(study_dir / 'optuna.journal').absolute()}"
    if arg.startswith("journal:"):
        return f"journal:{Path(arg[len('journal:'):]).expanduser().absolute()}"
    if "://" not in arg:
        raise NmfdnnError(f"--storage {arg!r}: expected an RDB URL (sqlite:///PATH, postgresql://...) or journal[:PATH]")
    return arg


def open_storage(url: str):
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:"):  # several local workers: wait for the file's lock rather than fail
        Path(url.split(":///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 300}})
    return optuna.storages.RDBStorage(url)


def _flock(path: Path, block: bool):
    """An open file holding an exclusive ``flock`` on ``path``, or None if another process holds it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        f.close()
        return None
    return f


class Tuner:
    """One worker of a study: claims trials (new ones, or running ones that lost their worker), trains
    each as a run folder, and tells the storage its validation error, until the study is full."""

    def __init__(self, spec: dict, overrides: list[str], study_dir: Path, storage: str, trials: int, pruner: str,
                 threads: int | None = None):
        self.spec, self.overrides, self.dir, self.url = spec, overrides, Path(study_dir), storage
        self.trials, self.pruner_name, self.threads = trials, pruner, threads
        self.study = None

    # storage access, one process at a time
    @contextmanager
    def locked(self):
        f = _flock(self.dir / STUDY_LOCK, block=True)
        try:
            yield
        finally:
            f.close()

    def _pruner(self):
        import optuna

        if self.pruner_name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=max(1, self.spec["startup_trials"]))
        if self.pruner_name == "hyperband":
            return optuna.pruners.HyperbandPruner(min_resource=1)
        return optuna.pruners.NopPruner()

    def _sampler(self, k: int):
        import optuna

        return optuna.samplers.TPESampler(seed=self.spec["seed"] + k, n_startup_trials=self.spec["startup_trials"])

    def open(self):
        """Create or load the study; a study made with another space or other overrides is refused."""
        import optuna

        from ..config import NON_RESULT_KEYS

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        same = [o for o in self.overrides if o.split("=", 1)[0].lstrip("+") not in NON_RESULT_KEYS]
        made = {"space": self.spec["space"], "overrides": same}  # threads, progress, ... may change
        with self.locked():
            self.study = optuna.create_study(storage=open_storage(self.url), study_name=self.spec["study"],
                                             direction="minimize", load_if_exists=True, sampler=self._sampler(0),
                                             pruner=self._pruner())
            before = self.study.user_attrs.get("nmfdnn")
            if before is None:
                self.study.set_user_attr("nmfdnn", made)
            elif json.loads(json.dumps(before)) != json.loads(json.dumps(made)):
                what = "search space" if before.get("space") != made["space"] else "overrides"
                raise NmfdnnError(f"study {self.spec['study']!r} in {self.url} was made with another {what} "
                                  f"({before.get('overrides') if what == 'overrides' else before.get('space')}); "
                                  "give the same one, or another --dir / --storage")
        return self

    @staticmethod
    def counted(t) -> bool:
        """Whether trial ``t`` is one of the study's trials: finished, pruned or failed by its run."""
        name = t.state.name
        return name in ("COMPLETE", "PRUNED") or (name == "FAIL" and t.user_attrs.get("run_failed", False))

    def claim(self):
        """``(trial, params, lock)``: a running trial nobody holds (its worker died), else a new one
        while the study has fewer than ``trials``; None when it is full."""
        import optuna

        with self.locked():
            trials = self.study.get_trials(deepcopy=False)
            for t in trials:
                if t.state.name != "RUNNING":
                    continue
                lock = _flock(self.lock_path(t.number), block=False)
                if lock is not None:
                    trial = optuna.trial.Trial(self.study, t._trial_id)
                    log.info("trial %d lost its worker: resuming it", t.number)
                    return trial, suggest(trial, self.spec["space"]), lock
            busy = sum(self.counted(t) or t.state.name == "RUNNING" for t in trials)
            if busy >= self.trials:
                return None
            self.study.sampler = self._sampler(len(trials))  # trial k's draws: seed + k
            trial = self.study.ask()
            lock = _flock(self.lock_path(trial.number), block=False)
            return trial, suggest(trial, self.spec["space"]), lock

    def lock_path(self, number: int) -> Path:
        return self.dir / LOCKS / f"trial-{number:04d}.lock"

    def run_dir(self, number: int) -> Path:
        return self.dir / RUNS / f"trial-{number:04d}"

    def work(self) -> int:
        """Train trials until the study is full; the number this worker finished."""
        done = 0
        while True:
            got = self.claim()
            if got is None:
                return done
            trial, params, lock = got
            try:
                self.run_trial(trial, params)
            finally:
                lock.close()
            done += 1

    def run_trial(self, trial, params: dict) -> None:
        import optuna

        from ..config import compose_config
        from ..fileio import atomic_write_json
        from ..outputs import write_status
        from ..train import Interrupted, run

        d = self.run_dir(trial.number)
        record = [*self.overrides, *param_overrides(params)]
        cfg = compose_config([*record, "resume=true", "progress=false"])
        if cfg.backend.get("threads") is None and self.threads:
            cfg.backend.threads = self.threads
        info = {"number": trial.number, "params": params, "study": self.spec["study"], "storage": self.url}
        t0 = time.perf_counter()
        state, value, metrics = optuna.trial.TrialState.COMPLETE, None, None
        previous = _read_json(d / "metrics.json")
        log.info("trial %d: %s", trial.number, " ".join(param_overrides(params)))
        handler = _file_log(d / "train.log")
        try:
            if previous and previous.get("status") in ("pruned", "failed"):  # its end, not yet told
                metrics = previous
                state = optuna.trial.TrialState.PRUNED if previous["status"] == "pruned" else \
                    optuna.trial.TrialState.FAIL
            else:
                try:
                    metrics = run(cfg, d, [_TrialListener(self, trial)], record=record)
                    value = metrics.get("val_error")
                    if value is None or not math.isfinite(value):
                        raise NmfdnnError(f"{d}: no validation error in metrics.json")
                except _Pruned as p:
                    metrics = write_status(d, cfg, "pruned", f"pruned by the {self.pruner_name} pruner after "
                                           f"epoch {p.row['epoch']}: validation error {p.row['val_error']:.2f} %")
                    if not metrics["history"] or metrics["history"][-1]["epoch"] != p.row["epoch"]:
                        metrics["history"].append(p.row)
                    state = optuna.trial.TrialState.PRUNED
                except NumericalError as e:
                    metrics = _read_json(d / "metrics.json") or {"status": "failed", "error": str(e)}
                    state = optuna.trial.TrialState.FAIL
                    log.warning("trial %d failed: %s", trial.number, e)
        except (Interrupted, KeyboardInterrupt):
            raise  # the trial stays running in the storage; the next worker resumes it from its checkpoint
        except NmfdnnError:
            with self.locked():
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            raise
        finally:
            logging.getLogger("nmfdnn").removeHandler(handler)
            handler.close()
        metrics["trial"] = info
        atomic_write_json(d / "metrics.json", metrics)
        with self.locked():
            if state == optuna.trial.TrialState.FAIL:
                trial.set_user_attr("run_failed", True)
            trial.set_user_attr("run_dir", str(d))
            self.study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state,
                            skip_if_finished=True)
        seconds = time.perf_counter() - t0
        what = f"validation error {value:.2f} %" if value is not None else state.name.lower()
        log.info("trial %d: %s (%.1f s) in %s", trial.number, what, seconds, d)


class _Pruned(Exception):
    def __init__(self, row):
        super().__init__(f"pruned after epoch {row['epoch']}")
        self.row = row


class _TrialListener(Listener):
    """The trial's view of its run: the validation error after every epoch reported to the trial
    (each epoch once: a resumed run's earlier epochs are in the storage already), an epoch line in
    the run's log; raises :class:`_Pruned` when the pruner says so."""

    def __init__(self, tuner: Tuner, trial):
        self.tuner, self.trial = tuner, trial
        with tuner.locked():
            (frozen,) = [t for t in tuner.study.get_trials(deepcopy=False) if t.number == trial.number]
            self.known = set(frozen.intermediate_values)

    def epoch_end(self, row):
        v, step = row.get("val_error"), int(row["epoch"])
        logging.getLogger("nmfdnn").info("epoch %3d  train %6.2f%%  val %s  test %6.2f%%  %.1fs", step,
                                         row["train_error"], "n/a" if v is None else f"{v:6.2f}%",
                                         row["test_error"], row["epoch_seconds"])
        if v is None or step in self.known:
            return
        self.known.add(step)
        with self.tuner.locked():
            self.trial.report(float(v), step)
            prune = self.tuner.pruner_name != "none" and self.trial.should_prune()
        if prune:
            raise _Pruned(dict(row))


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _file_log(path: Path) -> logging.Handler:
    """The run's log lines (epochs, warnings) appended to its ``train.log`` while the trial trains."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h = logging.FileHandler(path)
    h.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    h.setLevel(logging.INFO)
    logging.getLogger("nmfdnn").addHandler(h)
    return h


@contextmanager
def _console_log():
    """On stderr: the tuner's trial lines and every warning; the epochs go to each run's train.log.
    The ``nmfdnn`` logger is given back as it was."""
    root = logging.getLogger("nmfdnn")
    saved = root.level, root.propagate
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(logging.Formatter("%(message)s"))
    h.addFilter(lambda r: r.levelno >= logging.WARNING or r.name == "nmfdnn.tune")
    root.setLevel(logging.INFO)
    root.propagate = False
    root.addHandler(h)
    try:
        yield
    finally:
        root.removeHandler(h)
        root.level, root.propagate = saved


# -- summary ---------------------------------------------------------------------------------------

def summarise(tuner: Tuner) -> dict:
    """``STUDY/study.json``: every trial (number, state, value, parameters, seconds, run folder) and the
    best; returned for the closing line."""
    from ..fileio import atomic_write_json

    with tuner.locked():
        trials = tuner.study.get_trials(deepcopy=False)
    rows = []
    for t in trials:
        m = _read_json(tuner.run_dir(t.number) / "metrics.json") or {}
        rows.append({"number": t.number, "state": t.state.name.lower(), "val_error": t.value,
                     "params": t.params, "total_seconds": m.get("total_seconds"),
                     "run_dir": f"{RUNS}/trial-{t.number:04d}"})
    done = [r for r in rows if r["state"] == "complete"]
    best = min(done, key=lambda r: r["val_error"]) if done else None
    out = {"study": tuner.spec["study"], "space": tuner.spec["path"], "storage": tuner.url,
           "overrides": tuner.overrides, "objective": "final validation error (%)", "trials": rows, "best": best,
           "counts": {s: sum(r["state"] == s for r in rows) for s in ("complete", "pruned", "fail", "running")}}
    atomic_write_json(tuner.dir / SUMMARY, out)
    return out


# -- the command -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="nmfdnn tune", description="Hyper-parameter search with Optuna on the validation error.\n"
                "Every trial is a run folder STUDY/runs/trial-NNNN; rerunning the same command continues the\n"
                "study (a killed trial resumes from its checkpoint).",
                epilog="examples:\n  nmfdnn tune nmf_optuna hidden=[1000,500] --trials 16\n"
                       "  nmfdnn tune nmf_optuna hidden=[500] --workers 2 --pruner median\n"
                       "  nmfdnn tune nmf_optuna --slurm --workers 8 --partition cpu backend.threads=4",
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("args", nargs="*", metavar="[SPACE] OVERRIDE",
                    help="the search space (a name of conf/tune, or a YAML file; default nmf_optuna), then "
                    "overrides of the base run (after the space's own)")
    ap.add_argument("--trials", type=int, help="trials in the study, finished or pruned (default: the space's)")
    ap.add_argument("--workers", type=int, default=1, help="processes (or SLURM jobs) drawing trials (default 1)")
    ap.add_argument("--dir", help="the study folder (default: the space's dir, else outputs/tune/SPACE)")
    ap.add_argument("--storage", help="an Optuna RDB URL, or journal[:PATH] (default: sqlite in the study folder)")
    ap.add_argument("--pruner", choices=PRUNERS, help="prune on the per-epoch validation error (default: the "
                    "space's, none)")
    ap.add_argument("--slurm", action="store_true", help="the workers as a SLURM job array (submitit)")
    ap.add_argument("--partition", help="SLURM partition (--slurm)")
    ap.add_argument("--timeout-min", type=int, default=240, help="SLURM time limit per worker job (--slurm)")
    ap.add_argument("--mem-gb", type=int, default=8, help="SLURM memory per worker job (--slurm)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process started by --workers
    ap.add_argument("--threads", type=int, help=argparse.SUPPRESS)
    return ap


def prepare(argv: list[str]):
    """Parse and check everything (space, overrides, validation split, storage) before any work:
    ``(options, Tuner)``."""
    from ..config import compose_config
    from ..record import check_override

    a = build_parser().parse_intermixed_args(argv)
    problem = extra_missing()
    if problem:
        raise NmfdnnError(problem)
    if a.slurm:
        problem = __import__("nmfdnn.extras", fromlist=["missing"]).missing("submitit", "nmfdnn tune --slurm")
        if problem:
            raise NmfdnnError(problem)
    args = list(a.args)
    name = args.pop(0) if args and "=" not in args[0] else "nmf_optuna"
    spec = load_space(name)
    cli = [check_override(o, "nmfdnn tune") for o in args]
    fixed = [check_override(o, spec["path"]) for o in spec["overrides"]]
    overrides = [*fixed, *cli]
    searched = sorted({o.split("=", 1)[0] for o in cli} & set(spec["space"]))
    if searched:
        raise NmfdnnError(f"{', '.join(searched)}: searched by {spec['path']}; do not set it on the command line")
    base = compose_config(overrides, check=False)
    if not base.dataset.get("val_size"):
        raise NmfdnnError("nmfdnn tune optimises the validation error: the space's overrides or the command line "
                          "must set dataset.val_size (e.g. dataset.val_size=10000); never the test error")
    for point in corners(spec["space"]):
        try:
            compose_config([*overrides, *param_overrides(point)])
        except NmfdnnError as e:
            raise NmfdnnError(f"{spec['path']}: {' '.join(param_overrides(point))}: {e}") from None
    if a.trials is not None and a.trials < 1 or a.workers < 1:
        raise NmfdnnError("--trials and --workers must be at least 1")
    study_dir = Path(a.dir or spec["dir"] or f"outputs/tune/{spec['name']}").expanduser()
    from ..fileio import writable_dir_problem

    problem = writable_dir_problem(study_dir)
    if problem:
        raise NmfdnnError(f"cannot write the study folder {problem}")
    study_dir.mkdir(parents=True, exist_ok=True)
    url = storage_url(a.storage, study_dir)
    threads = a.threads
    if threads is None and base.backend.get("threads") is None and os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        threads = int(os.environ["SLURM_CPUS_PER_TASK"])
    tuner = Tuner(spec, overrides, study_dir, url, a.trials or spec["trials"], a.pruner or spec["pruner"], threads)
    return a, tuner


def _worker_argv(argv: list[str], threads: int | None) -> list[str]:
    """The command line of one worker: the same, one process, ``--worker``."""
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x in ("--workers", "--threads"):
            skip = True
            continue
        if x.startswith(("--workers=", "--threads=")) or x in ("--slurm", "--worker"):
            continue
        out.append(x)
    return [*out, "--worker", *(["--threads", str(threads)] if threads else [])]


def _strip_slurm(argv: list[str]) -> list[str]:
    out, skip = [], False
    for x in argv:
        if skip:
            skip = False
            continue
        if x in ("--partition", "--timeout-min", "--mem-gb"):
            skip = True
            continue
        if x.startswith(("--partition=", "--timeout-min=", "--mem-gb=")):
            continue
        out.append(x)
    return out


def slurm_worker(argv: list[str]) -> int:
    """A SLURM job of the array: one worker of the study (pickled by submitit, run on the node)."""
    code = main(argv)
    if code:
        raise RuntimeError(f"nmfdnn tune worker exited with {code}")
    return code


def _local_workers(argv: list[str], n: int, base_threads) -> int:
    threads = None if base_threads is not None else max(1, (os.cpu_count() or 1) // n)
    cmd = [sys.executable, "-m", "nmfdnn.tools.tune", *_worker_argv(argv, threads)]
    log.info("%d local workers%s", n, f", {threads} BLAS thread(s) each" if threads else "")
    # each worker in its own session: a signal reaches it once, forwarded from here (it then checkpoints)
    procs = [subprocess.Popen(cmd, start_new_session=True) for _ in range(n)]

    def forward(signum, frame):  # noqa: ARG001 (signal handler signature)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    saved = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    return max(codes, key=lambda c: (c != 0, c))


def _slurm_workers(a, argv: list[str], tuner: Tuner) -> int:
    import submitit

    from ..cli import launcher_failure

    cpus = int(tuner_threads(tuner) or 2)
    logging.getLogger("submitit").setLevel(logging.ERROR)  # its notes on a cluster without accounting (sacct)
    ex = submitit.AutoExecutor(folder=str(tuner.dir / ".submitit" / "%j"), cluster="slurm")
    params = {"timeout_min": a.timeout_min, "cpus_per_task": cpus, "mem_gb": a.mem_gb, "nodes": 1,
              "tasks_per_node": 1, "name": f"nmfdnn-tune-{tuner.spec['study']}",
              "slurm_array_parallelism": a.workers}
    if a.partition:
        params["slurm_partition"] = a.partition
    ex.update_parameters(**params)
    worker = _strip_slurm(_worker_argv(argv, cpus))
    try:
        jobs = ex.map_array(slurm_worker, [worker] * a.workers)
        log.info("%d SLURM worker jobs: %s (logs in %s)", len(jobs), " ".join(j.job_id for j in jobs),
                 tuner.dir / ".submitit")
        for j in jobs:
            j.result()
    except Exception as e:  # noqa: BLE001 (submitit's and SLURM's failures: one line)
        failure = launcher_failure(e)
        if failure is None:
            raise
        raise NmfdnnError(failure[0]) from None
    return 0


def tuner_threads(tuner: Tuner):
    from ..config import compose_config

    return compose_config(tuner.overrides, check=False).backend.get("threads")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    with _console_log():
        return _main(argv)


def _main(argv: list[str]) -> int:
    from ..train import Interrupted

    tuner = None
    try:
        a, tuner = prepare(argv)
        tuner.open()
        if a.worker or (a.workers == 1 and not a.slurm):
            tuner.work()
            if a.worker:
                return 0
        elif a.slurm:
            _slurm_workers(a, argv, tuner)
        else:
            code = _local_workers(argv, a.workers, tuner_threads(tuner))
            if code:
                print(f"nmfdnn tune: error: a worker exited with {code}; rerun the same command to go on",
                      file=sys.stderr)
                return code
    except Interrupted as e:
        if tuner is not None and tuner.study is not None:  # study.json as the study stands
            summarise(tuner)
        print(f"nmfdnn tune: error: {e}; rerun the same command to go on (the trial resumes from its checkpoint)",
              file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if tuner is not None and tuner.study is not None:
            summarise(tuner)
        print("nmfdnn tune: error: interrupted; rerun the same command to go on", file=sys.stderr)
        return 130
    s = summarise(tuner)
    c, best = s["counts"], s["best"]
    line = (f"study {s['study']}: {c['complete']} complete, {c['pruned']} pruned, {c['fail']} failed trial(s) "
            f"in {tuner.dir}")
    if best:
        line += (f"; best trial {best['number']}: validation error {best['val_error']:.2f} % "
                 f"({' '.join(param_overrides(best['params']))}) in {tuner.dir / best['run_dir']}")
    print(line)
    return 0


if __name__ == "__main__":  # a worker process of --workers N
    try:
        sys.exit(main())
    except NmfdnnError as e:
        print(f"nmfdnn tune: error: {e}", file=sys.stderr)
        sys.exit(2)
