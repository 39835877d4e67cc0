"""The ``nmfdnn`` console script: one argparse sub-command per tool.

``train`` hands its overrides to Hydra (``nmfdnn train --help`` is Hydra's help of the composed
config); ``resume`` re-runs a run's recorded overrides; ``eval``, ``report``, ``plot`` and ``bench``
live in :mod:`nmfdnn.tools`, each with its own parser; ``fetch`` downloads and verifies a data set.
"""

from __future__ import annotations

import os
import signal
import sys


def _interrupted_while_starting(signum, frame):  # noqa: ARG001 (signal handler signature)
    """SIGINT while the console script still imports its modules: nothing is written yet; one line."""
    os.write(2, b"nmfdnn: error: interrupted\n")
    os._exit(130)


if os.path.basename(sys.argv[0]) == "nmfdnn" and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted_while_starting)  # main() restores Python's own handler


# the imports after the handler: they take most of a second
import argparse  # noqa: E402
import contextlib  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

from . import __version__  # noqa: E402
from .config import compose_config, conf_dir, plain_overrides, register_configs, sweep_jobs, validate_ranks
from .errors import NmfdnnError
from .fileio import writable_dir_problem
from .record import check_override, quote, recorded_overrides, unquote
from .tools import Parser

log = logging.getLogger("nmfdnn")

EXAMPLES = """examples:
  nmfdnn train dataset=mnist hidden=[1000,500]
  nmfdnn train experiment=paper hidden=[500]
  nmfdnn train -m seed=0,1,2 hidden=[500],[1000,500]
  nmfdnn report outputs/multirun --compare paper-table1
"""

# name -> (help line, module path of the tool's main(argv) or None for the ones defined here)
COMMANDS = {
    "train": ("train a network (Hydra app: `nmfdnn train --help` lists groups and keys; -m sweeps)", None),
    "resume": ("continue a killed or interrupted run from its last checkpoint", None),
    "eval": ("error rates of a trained run on its data set (or another: dataset=...)", "nmfdnn.tools.eval"),
    "report": ("mean and 95 %% confidence interval over seeds of every group of runs", "nmfdnn.tools.report"),
    "plot": ("Figure 1: train/test error against epoch and seconds (PNG and SVG)", "nmfdnn.tools.plot"),
    "bench": ("GEMM rate and a short run: seconds, GFLOP/s and share of GEMM per phase; --tta", "nmfdnn.tools.bench"),
    "fetch": ("download, verify and cache mnist, fashion_mnist or cifar10", None),
    "tune": ("hyper-parameter search with Optuna on the validation error (each trial a run folder)",
             "nmfdnn.tools.tune"),
}


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="nmfdnn", description=f"nmfdnn {__version__}: deep networks trained without "
                "backpropagation (Sakurai et al., ICONIP 2016)", epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=__version__)
    ap.add_argument("--debug", action="store_true", help="(before or after COMMAND) full tracebacks instead "
                    "of one-line errors")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                            description="`nmfdnn COMMAND --help` shows each command's own options")
    for name, (text, _) in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return ap


def error(msg: str, code: int = 2) -> int:
    """Print ``msg`` as one line (once: under mpiexec only rank 0 prints) and return ``code``."""
    from .parallel import launcher_rank

    if launcher_rank() == 0:
        print(f"nmfdnn: error: {msg}", file=sys.stderr)
    return code


def _follower_args(args: list[str], rank: int) -> list[str]:
    """The overrides of a rank other than 0 of an MPI run: rank 0 writes the run directory and the log;
    the others get a private scratch directory (removed at exit) and no log files."""
    import atexit
    import shutil
    import tempfile

    scratch = tempfile.mkdtemp(prefix=f"nmfdnn-rank{rank}-")
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    mine = ("hydra.run.dir=", "hydra.sweep.dir=", "hydra/job_logging=", "hydra/hydra_logging=")
    return [*(a for a in args if not a.startswith(mine)), f"hydra.run.dir={scratch}", f"hydra.sweep.dir={scratch}",
            "hydra/job_logging=disabled", "hydra/hydra_logging=disabled"]


def _output_dir(args: list[str]) -> str:
    """Where Hydra will write: ``hydra.run.dir`` (``hydra.sweep.dir`` with ``-m``) if given, else ``outputs``."""
    key = "hydra.sweep.dir=" if any(a in ("-m", "--multirun") for a in args) else "hydra.run.dir="
    given = [unquote(a.split("=", 1)[1]) for a in args if a.startswith(key)]
    return given[-1] if given and "${" not in given[-1] else "outputs"


def _absolute_data_dir(args: list[str]) -> list[str]:
    """``dataset.data_dir=REL`` as the absolute folder it names from here (the run records that, so a
    resume or a report from another directory finds the same data)."""
    out = []
    for a in args:
        key, sep, value = a.partition("=")
        if sep and key.lstrip("+") == "dataset.data_dir":
            path = unquote(value)
            if path.strip() and "${" not in path and "," not in path and path not in ("null", "None") \
                    and not os.path.isabs(os.path.expanduser(path)):
                a = f"{key}={quote(os.path.abspath(path))}"
        out.append(a)
    return out


def _train_help(args: list[str]) -> str:
    """``nmfdnn train --help``: the text Hydra's app help prints from ``conf/hydra/help/nmfdnn.yaml``
    (the config groups, then the composed config with the command line's overrides, each key with its
    range and help), made here from one composition: Hydra's own help deep-copies its config store
    once per group option (about a second on the 2-core machine); a test checks that both print the
    same text."""
    import string

    root = Path(conf_dir())
    groups = sorted(d.name for d in root.iterdir() if d.is_dir() and d.name != "hydra" and not d.name.startswith(("_", ".")))
    lines = [f"{g}: {', '.join(sorted(f.stem for f in (root / g).glob('*.yaml')))}" for g in groups]
    cfg = compose_config([a for a in args if not a.startswith("-")], return_hydra_config=True, check=False)
    return string.Template(cfg.hydra.help.template).substitute(APP_CONFIG_GROUPS="\n".join(lines) + "\n")


def _is_plain_help(args: list[str]) -> bool:
    """``--help`` / ``-h`` with plain overrides only (no ``-m``, ``--cfg``, ``--hydra-help``, ...)."""
    return any(a in ("--help", "-h") for a in args) and all(a in ("--help", "-h") or not a.startswith("-")
                                                          for a in args)


# Hydra's flags that print and run nothing (``-cjob`` is argparse's ``-c job``); with them, the flags that
# shape what they print. ``-m`` starts a sweep. Hydra's other flags (``-cd``, ``-cn``, ``-cp`` and their long
# forms, ``--experimental-rerun``) would read configs or records from outside conf/: refused.
_HELP_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--shell-completion", "-sc")
_HELP_VALUED = ("--cfg=", "--info=", "--shell-completion=", "-cjob", "-chydra", "-call")
_HELP_EXTRAS = ("--resolve", "-p", "--package")
_RUN_FLAGS = ("-m", "--multirun")


def _is_help(args: list[str]) -> bool:
    """Whether Hydra only prints (help, ``--cfg``, ``--info``, shell completion): exact flags, never a
    prefix, so that ``-cd`` or ``-cn`` is not taken for ``-c``."""
    return any(a in _HELP_FLAGS or a.startswith(_HELP_VALUED) for a in args)


def _flags_first(args: list[str]) -> list[str]:
    """The command line with Hydra's flags (and their values) before the overrides: Hydra's argparse
    takes its overrides as one positional list, so a flag between two overrides would be a usage error."""
    if "--hydra-help" in args:  # Hydra's own help composes the Hydra config alone: no override applies
        return ["--hydra-help"]
    flags, rest, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-"):
            flags.append(a)
            takes = a in ("--cfg", "-c", "-p", "--package") or (
                a in ("--info", "-i") and i + 1 < len(args)
                and args[i + 1] in ("all", "config", "defaults", "defaults-tree", "plugins", "searchpath"))
            if takes and i + 1 < len(args):
                flags.append(args[i + 1])
                i += 1
        else:
            rest.append(a)
        i += 1
    return [*flags, *rest]


def _flag_problem(args: list[str]) -> str | None:
    """A flag that ``nmfdnn train`` does not take, named in one line (before Hydra reads it)."""
    allowed = _RUN_FLAGS + (_HELP_EXTRAS if _is_help(args) else ())
    for a in args:
        if not a.startswith("-") or a in _HELP_FLAGS or a.startswith(_HELP_VALUED) or a in allowed \
                or (_is_help(args) and a.startswith("--package=")):
            continue
        flag = a.split("=", 1)[0]
        if flag in ("-cd", "-cn", "-cp", "--config-dir", "--config-name", "--config-path") or \
                flag.startswith(("-cd", "-cn", "-cp")):
            return (f"{flag}: nmfdnn train composes its configs from its own conf/ folder; choose a preset "
                    "with experiment=NAME and change keys with KEY=VALUE overrides")
        return f"{flag}: not a flag of nmfdnn train (its flags: -m/--multirun, --help, --cfg job, --debug)"
    return None


class SweepJobFailed(NmfdnnError):
    """A job of a sweep that ran in another process (a joblib worker, a SLURM job) stopped with an
    error: raised there so that the launcher carries it back (Hydra's sweeper re-raises it after the
    batch, every job of which has run)."""


def launcher_failure(e: BaseException) -> tuple[str, int] | None:
    """A launcher's or a cluster's failure as ``(one line naming the cause and the remedy, exit code)``:
    2 for a submission that was refused (nothing ran), 1 when jobs ran and some failed; None for
    anything else (a bug: the traceback stands)."""
    name, text = type(e).__name__, str(e).strip()
    last = text.splitlines()[-1].strip() if text else name
    remedy = ("start a one-node cluster with `make slurm-up` and export the SLURM_CONF it prints, or check "
              "hydra.launcher.partition")
    if isinstance(e, SweepJobFailed):
        return f"a job of the sweep failed: {e} (the other jobs ran; resume=true reruns only what is missing)", 1
    if name == "FailedJobError" and "sbatch" in text:
        lines = [ln.strip() for ln in text.splitlines() if "sbatch:" in ln and ("fatal" in ln or "error" in ln)]
        cause = (lines[-1] if lines else last)[:300]
        return f"SLURM refused the submission ({cause}); {remedy}", 2
    if isinstance(e, RuntimeError) and "slurm cluster" in text:
        return f"no SLURM here ({text}): sbatch and srun are not on the PATH; {remedy}", 2
    if isinstance(e, FileNotFoundError) and any(c in text for c in ("sbatch", "srun", "squeue", "sacct")):
        return f"no SLURM here ({text}); {remedy}", 2
    if name in ("FailedJobError", "UncompletedJobError", "FailedSubmissionError"):
        return (f"a SLURM job of the sweep failed ({last[:300]}); its logs are in the sweep directory's .submitit/ "
                "folder; resume=true reruns only what is missing"), 1
    if name in ("TerminatedWorkerError", "BrokenProcessPool"):
        codes = [ln.strip() for ln in text.splitlines() if "exit code" in ln]
        why = codes[0] if codes else (text.splitlines()[0] if text else name)
        return (f"a worker of the parallel launcher died ({why[:300]}); rerun the same sweep with resume=true to "
                "finish the jobs that are missing"), 1
    return None


def _train(args: list[str], debug: bool) -> int:
    """``nmfdnn train [OVERRIDES] [-m]``: Hydra composes, sweeps and launches; each job calls
    :func:`nmfdnn.train.run`. A typo or a value out of range is a one-line error before any work."""
    from .parallel import world

    w = world()  # under mpiexec: MPI starts here (a one-line error without mpi4py)
    register_configs()
    args = _absolute_data_dir(args)
    if _is_plain_help(args) and not os.environ.get("NMFDNN_HYDRA_HELP"):
        print(_train_help(args))
        return 0
    problem = _flag_problem(args) or (None if _is_help(args) else _run_problem(args, w.size, debug))
    if problem:
        return error(problem)
    if not w.root and not _is_help(args):
        args = _follower_args(args, w.rank)
    return _launch(args, _Launch(debug))


def _run_problem(args: list[str], size: int, debug: bool) -> str | None:
    """What stops the command before Hydra writes anything, in one line: a missing optional extra, a
    run directory that cannot be written, a bad key or value in any job of a sweep, what ``mpiexec -n
    size`` cannot split. With ``debug`` a bad config goes on to Hydra, which shows the full story."""
    from .extras import train_problem

    problem = train_problem(args)  # an optional dependency missing: one line naming its extra
    if problem:
        return problem
    problem = writable_dir_problem(_output_dir(args))
    if problem:
        return f"cannot write the run directory {problem}"
    try:
        _check_jobs(args, size)
    except NmfdnnError as e:
        if not debug:
            return str(e)
        os.environ["HYDRA_FULL_ERROR"] = "1"
    return None


def _check_jobs(args: list[str], size: int) -> None:
    """Compose and validate the command line's config; under ``-m`` every job of the sweep, before the
    first one starts (a :class:`NmfdnnError` naming the job's varying overrides)."""
    plain = plain_overrides(args)
    sweeping = len(plain) < len([a for a in args if not a.startswith("-") and not a.startswith("hydra")])
    composed = compose_config(plain, check=not sweeping)
    if not sweeping:
        validate_ranks(composed, size)  # what mpiexec cannot split, before Hydra writes anything
        return
    for job in sweep_jobs(args) or []:
        try:
            validate_ranks(compose_config(job, check=True), size)
        except NmfdnnError as e:
            varying = [o for o in job if o not in plain]
            raise NmfdnnError(f"sweep job {' '.join(varying)}: {e}") from None


@dataclass
class _Launch:
    """One ``nmfdnn train`` command as its jobs see it: ``--debug``, the process that launched them, and
    the failures of jobs that ran in that process (the basic launcher); a job in another process (a
    joblib worker, a SLURM task) raises :class:`SweepJobFailed` instead, which its launcher carries back."""

    debug: bool
    pid: int = field(default_factory=os.getpid)
    failed: list[str] = field(default_factory=list)


def _launch(args: list[str], launch: _Launch) -> int:
    """Hydra's app on the command line ``args``: it composes, sweeps and launches each job
    (:func:`_job`). A launcher's or a cluster's failure is one line (exit 2 if nothing ran, else 1), as
    is a sweep whose jobs in this process failed (exit 1)."""
    # Hydra writes no record of its own (it would before any check: a refused command would rewrite
    # the run's record); nmfdnn.record writes it once the run has passed every check.
    sys.argv = ["nmfdnn-train", *_flags_first(args), *([] if _is_help(args) else ["hydra.output_subdir=null"])]
    # submitit echoes a failed sbatch's stderr before raising: held back, and shown only if it was not a
    # submission failure (whose cause the one line names) or with --debug
    held = io.StringIO()
    slurm = any("launcher=slurm" in a or "submitit" in a for a in args) and not launch.debug
    try:
        with _hydra_reraises(), contextlib.redirect_stderr(held) if slurm else contextlib.nullcontext():
            _hydra_app(launch)()
    except Exception as e:  # noqa: BLE001 (a launcher's or a cluster's failure: one line unless --debug)
        failure = None if launch.debug else launcher_failure(e)
        if failure is None or failure[1] != 2:
            sys.stderr.write(held.getvalue())
        if failure is None:
            raise
        return error(*failure)
    sys.stderr.write(held.getvalue())
    if launch.failed:  # jobs run in this process (the basic launcher) that stopped with an error
        return error(f"{len(launch.failed)} job(s) of the sweep failed; first: {launch.failed[0]}", 1)
    return 0


@contextlib.contextmanager
def _hydra_reraises():
    """``HYDRA_FULL_ERROR=1`` while Hydra runs (it re-raises an error instead of printing its traceback:
    :func:`_launch` turns it into one line), then the variable as it was."""
    full = os.environ.get("HYDRA_FULL_ERROR")
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        yield
    finally:
        if full is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = full


def _hydra_app(launch: _Launch):
    """The Hydra app of ``conf/train.yaml`` whose task is :func:`_job`."""
    import hydra

    @hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
    def task(cfg):
        return _job(cfg, launch)

    return task


def _job(cfg, launch: _Launch):
    """One job of the command (Hydra's task, in the process its launcher chose): the run, its summary,
    and what a sweeper optimises, the validation error (never the test error: settings are chosen on
    validation data; None without a validation split). A failure ends the job in one line."""
    from hydra.core.hydra_config import HydraConfig

    from .parallel import world
    from .progress import reporter_for
    from .trackers import trackers_for
    from .train import Interrupted, run

    hc = HydraConfig.get()
    w = world()  # again here: under hydra/launcher=slurm this runs in each SLURM task, not where _train ran
    if not w.root:  # the log is rank 0's
        logging.getLogger("nmfdnn").setLevel(logging.ERROR)
    _cap_threads_for_parallel_sweeps(cfg, hc)
    reporter = reporter_for(cfg)  # the first listener of the run's events, then the trackers of logger=
    try:
        metrics = run(cfg, hc.runtime.output_dir, [reporter, *trackers_for(cfg)], record=list(hc.overrides.task))
    except Interrupted as e:
        raise SystemExit(error(f"{e}; {_resume_hint(hc)}", 130)) from None
    except (NmfdnnError, KeyboardInterrupt, MemoryError) as e:
        reporter.stop()
        return _job_stopped(e, hc, w, launch)
    except Exception:  # one rank's unexpected error: end them all, none left waiting in a collective
        if w.parallel:
            import traceback

            traceback.print_exc()
            w.abort(1)
        raise
    if w.root:
        _summary(metrics, hc.runtime.output_dir)
    return metrics.get("val_error")


def _resume_hint(hc) -> str:
    from hydra.types import RunMode

    if hc.mode == RunMode.MULTIRUN:
        return "resume with the same sweep command, the same hydra.sweep.dir and resume=true"
    return f"resume with: nmfdnn resume {hc.runtime.output_dir}"


def _job_stopped(e: BaseException, hc, w, launch: _Launch) -> None:
    """A job that stopped on a refusal, a second signal or a failed allocation: the run's folder
    removed if it holds no run, and one line; a refused job of a sweep leaves the other jobs running
    (it returns, without a finished metrics.json)."""
    from hydra.types import RunMode

    if isinstance(e, KeyboardInterrupt):
        if w.parallel:  # a second signal: the ranks are not at the same point; end them all
            w.abort(130)
        raise SystemExit(error("interrupted", 130)) from None
    if launch.debug:
        raise e
    if isinstance(e, MemoryError):
        _remove_if_empty(hc.runtime.output_dir)
        raise SystemExit(_out_of_memory(e, w)) from None
    if hc.mode != RunMode.MULTIRUN:
        _remove_if_empty(hc.runtime.output_dir)
        raise SystemExit(error(str(e))) from None
    log.error("%s", e)
    where = str(hc.runtime.output_dir)
    message = str(e) if where in str(e) else f"{where}: {e}"
    if os.getpid() != launch.pid:
        raise SweepJobFailed(message) from None  # carried back by the launcher
    launch.failed.append(message)


def _out_of_memory(e: MemoryError, w) -> int:
    """An allocation that failed in a run: one line, exit 2. Under MPI the ranks are ended at once
    (the others would wait in the next collective); rank 0 prints the line, another rank only if
    rank 0 has not ended the run within a second (rank 0 did not run out itself)."""
    from .memory import out_of_memory

    if not w.parallel:
        return error(out_of_memory(e))
    if w.root:
        error(out_of_memory(e))
    else:
        import time

        time.sleep(1.0)
        print(f"nmfdnn: error: rank {w.rank}: {out_of_memory(e)}", file=sys.stderr)
    sys.stderr.flush()
    with open(os.devnull, "w") as null:  # MPI's own note of the abort would be a second line
        os.dup2(null.fileno(), 2)
    w.abort(2)
    return 2  # pragma: no cover - abort does not return under MPI


# What makes a folder a run directory: a refused run leaves the folder Hydra made if it holds none of them
RUN_FILES = ("metrics.json", "checkpoint.npz", "model.npz", "config.yaml", ".hydra", "eval.json")


def _remove_if_empty(out_dir) -> None:
    """After a refused run: the folder Hydra made for it holds only its log (and our lock), no run:
    remove both, and the folder, so that a refused command leaves nothing behind."""
    d = Path(out_dir)
    try:
        names = {p.name for p in d.iterdir()}
        if names & set(RUN_FILES) or not names <= {"train.log", ".lock"}:
            return
        for name in names:
            (d / name).unlink(missing_ok=True)
        d.rmdir()
    except OSError:  # somebody else's folder, or it went away: leave it
        return


def _cap_threads_for_parallel_sweeps(cfg, hc) -> None:
    """Under the joblib launcher, give each job cores // n_jobs BLAS threads unless set explicitly;
    in a SLURM job, the CPUs SLURM gave it."""
    if cfg.backend.get("threads") is None and os.environ.get("SLURM_CPUS_PER_TASK", "").isdigit():
        cfg.backend.threads = int(os.environ["SLURM_CPUS_PER_TASK"])
        return
    from .parallel import world

    w = world()
    if w.parallel and cfg.backend.get("threads") is None:  # ranks x threads <= cores on each machine
        cfg.backend.threads = max(1, (os.cpu_count() or 1) // w.local_size())
        log.info("%d processes on this machine: %d BLAS thread(s) each", w.local_size(), cfg.backend.threads)
        return
    launcher = str(hc.launcher.get("_target_", "")) if hc.get("launcher") is not None else ""
    if "joblib" not in launcher.lower() or cfg.backend.get("threads") is not None:
        return
    n_jobs = int(hc.launcher.get("n_jobs", -1) or -1)
    cores = os.cpu_count() or 1
    n_jobs = cores if n_jobs < 1 else min(n_jobs, cores)
    cfg.backend.threads = max(1, cores // n_jobs)
    log.info("parallel sweep: %d jobs, %d BLAS thread(s) each", n_jobs, cfg.backend.threads)


def _summary(metrics: dict, out_dir: str) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"nmfdnn {metrics['solver']} {metrics['hidden']} on {metrics['dataset']}", show_header=True)
    for col in ("train error %", "test error %", "pre-training s", "fine-tuning s", "total s"):
        t.add_column(col, justify="right")
    def cell(key, digits):  # train_error is null in metrics.json when eval_train=false
        v = metrics.get(key)
        return "n/a" if v is None else f"{v:.{digits}f}"

    t.add_row(cell("train_error", 2), cell("test_error", 2), cell("pretrain_seconds", 1),
              cell("finetune_seconds", 1), cell("total_seconds", 1))
    c = Console()
    c.print(t)
    c.print(f"outputs: {out_dir}", soft_wrap=True)


def _fetch(args: list[str]) -> int:
    from .data.fetch import data_root

    known = ("mnist", "fashion_mnist", "cifar10")
    ap = Parser(prog="nmfdnn fetch", description="Download, verify and cache a data set (into data_dir, "
                "else $NMFDNN_DATA, else ~/.cache/nmfdnn).")
    ap.add_argument("dataset", choices=known)
    ap.add_argument("data_dir", nargs="?", metavar="data_dir=DIR", help="where to cache it")
    ap.add_argument("--verbose", "-v", action="store_true", help="also every source tried, and why it failed")
    a = ap.parse_intermixed_args(args)
    data_dir = None
    if a.data_dir is not None:
        if not a.data_dir.startswith("data_dir="):
            ap.error(f"unexpected argument {a.data_dir!r}; expected data_dir=DIR")
        data_dir = a.data_dir.split("=", 1)[1]
    said = []  # the fetch's own line ("fetched ... from ..."), if it fetched anything

    class Say(logging.StreamHandler):  # the data loggers' lines on stderr, as they are; INFO ones counted
        def emit(self, record):
            if record.levelno >= logging.INFO:
                said.append(record)
            super().emit(record)

    logger = logging.getLogger("nmfdnn.data")
    handler = Say(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if a.verbose else logging.INFO)
    logger.propagate = False

    def terminated(signum, frame):  # noqa: ARG001 (signal handler signature)
        raise KeyboardInterrupt  # as SIGINT: the fetch removes its partial files on the way out

    import signal

    saved_term = signal.signal(signal.SIGTERM, terminated)
    try:
        if a.dataset == "mnist":
            from .data.mnist import fetch_mnist

            fetch_mnist(data_dir)
        elif a.dataset == "fashion_mnist":
            from .data.mnist import fetch_fashion_mnist

            fetch_fashion_mnist(data_dir)
        else:
            from .data.cifar10 import fetch_cifar10

            fetch_cifar10(data_dir)
    finally:
        signal.signal(signal.SIGTERM, saved_term)
        logger.removeHandler(handler)
        logger.level, logger.propagate = saved
    if not said:  # everything was in the cache already
        print(f"{a.dataset} verified in {data_root(data_dir) / a.dataset} (cached)")
    return 0


def _resume(args: list[str], debug: bool) -> int:
    ap = Parser(prog="nmfdnn resume", description="Continue a killed or interrupted run from its last checkpoint "
                "(the same as `nmfdnn train <its overrides> resume=true hydra.run.dir=RUN_DIR`); a finished run "
                "is left as it is.")
    ap.add_argument("run_dir", metavar="RUN_DIR")
    ap.add_argument("overrides", nargs="*", metavar="OVERRIDE", help="overrides that do not change the result "
                    "(e.g. progress=false)")
    a = ap.parse_args(args)
    run_dir = Path(a.run_dir)
    from .fileio import path_problem, short_path

    problem = path_problem(run_dir / ".hydra" / "overrides.yaml")
    if problem:
        return error(f"{short_path(run_dir)}: {problem}")
    if "${" in str(run_dir.absolute()):
        return error(f"{run_dir}: a run directory whose path contains '${{' cannot be resumed (Hydra's logging reads "
                     "it as an interpolation); rename or move it")
    saved = recorded_overrides(run_dir)  # data, never a command line: plain overrides of the schema only
    extra = [check_override(o, "nmfdnn resume") for o in a.overrides]
    return _train([*saved, *extra, "resume=true", f"hydra.run.dir={quote(run_dir)}"], debug)


def main(argv: list[str] | None = None) -> int:
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    parser = build_parser()
    if not argv or argv[0] in ("-h", "--help", "help"):
        parser.print_help()
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd not in COMMANDS:
        return error(f"unknown command {cmd!r}; commands: {', '.join(COMMANDS)} (see nmfdnn --help)")
    try:
        if cmd == "train":
            return _train(args, debug)
        if cmd == "resume":
            return _resume(args, debug)
        from .parallel import launcher_rank

        if launcher_rank() != 0:  # a tool under mpiexec: rank 0 alone runs it (one output, one writer)
            return 0
        if cmd == "fetch":
            return _fetch(args)
        import importlib

        return importlib.import_module(COMMANDS[cmd][1]).main(args)
    except NmfdnnError as e:
        if debug:
            raise
        return error(str(e))
    except MemoryError as e:
        if debug:
            raise
        from .memory import out_of_memory

        return error(out_of_memory(e))
    except KeyboardInterrupt:
        if debug:
            raise
        return error("interrupted", 130)
    except OSError as e:  # a path the OS refuses (too long, in /proc, a file where a folder should be, ...)
        if debug:
            raise
        from .fileio import os_error_line

        return error(os_error_line(e))


if __name__ == "__main__":
    sys.exit(main())
