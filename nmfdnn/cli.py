"""The ``nmfdnn`` console script: one argparse sub-command per tool.

``train`` hands its overrides to Hydra (``nmfdnn train --help`` is Hydra's help of the composed
config); ``resume`` re-runs a run's recorded overrides; ``eval``, ``report``, ``plot`` and ``bench``
live in :mod:`nmfdnn.tools`, each with its own parser; ``fetch`` downloads and verifies a data set.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import __version__
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


def _is_help(args: list[str]) -> bool:
    return any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith(("--cfg", "-c", "--shell"))
               for a in args)


_FAILED_JOBS: list[str] = []  # the jobs of the current sweep that failed (in-process launcher)


def _train(args: list[str], debug: bool) -> int:
    """``nmfdnn train [OVERRIDES] [-m]``: Hydra composes, sweeps and launches; each job calls
    :func:`nmfdnn.train.run`. A typo or a value out of range is a one-line error before any work."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .parallel import world

    w = world()  # under mpiexec: MPI starts here (a one-line error without mpi4py)
    register_configs()
    if not _is_help(args):
        problem = writable_dir_problem(_output_dir(args))
        if problem:
            return error(f"cannot write the run directory {problem}")
        try:
            plain = plain_overrides(args)
            sweeping = len(plain) < len([a for a in args if not a.startswith("-") and not a.startswith("hydra")])
            composed = compose_config(plain, check=not sweeping)
            if not sweeping:
                validate_ranks(composed, w.size)  # what mpiexec cannot split, before Hydra writes anything
            if sweeping:  # every job of the sweep checked before the first one starts
                for job in sweep_jobs(args) or []:
                    try:
                        validate_ranks(compose_config(job, check=True), w.size)
                    except NmfdnnError as e:
                        varying = [o for o in job if o not in plain]
                        raise NmfdnnError(f"sweep job {' '.join(varying)}: {e}") from None
        except NmfdnnError as e:
            if not debug:
                return error(str(e))
            os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra show the full story below

    @hydra.main(version_base="1.3", config_path=conf_dir(), config_name="train")
    def task(cfg):
        from .progress import Reporter, RichReporter
        from .train import Interrupted, run

        hc = HydraConfig.get()
        w = world()  # again here: under hydra/launcher=slurm this runs in each SLURM task, not where _train ran
        if not w.root:  # the log is rank 0's
            logging.getLogger("nmfdnn").setLevel(logging.ERROR)
        if "optuna" in str(hc.sweeper.get("_target_", "")).lower() and not cfg.dataset.get("val_size"):
            raise SystemExit(error("a hyper-parameter search optimises the validation error: set dataset.val_size "
                                   "(e.g. dataset.val_size=10000), never the test error"))
        _cap_threads_for_parallel_sweeps(cfg, hc)
        reporter = RichReporter() if cfg.progress and sys.stderr.isatty() else Reporter()
        try:
            metrics = run(cfg, hc.runtime.output_dir, reporter, record=list(hc.overrides.task))
        except Interrupted as e:
            hint = f"resume with: nmfdnn resume {hc.runtime.output_dir}"
            if hc.mode == RunMode.MULTIRUN:
                hint = "resume with the same sweep command, the same hydra.sweep.dir and resume=true"
            raise SystemExit(error(f"{e}; {hint}", 130)) from None
        except NmfdnnError as e:
            reporter.stop()
            if debug:
                raise
            if hc.mode == RunMode.MULTIRUN:
                log.error("%s", e)
                where = str(hc.runtime.output_dir)
                _FAILED_JOBS.append(str(e) if where in str(e) else f"{where}: {e}")
                return None  # the sweep goes on; this job has no finished metrics.json
            raise SystemExit(error(str(e))) from None
        except KeyboardInterrupt:
            reporter.stop()
            if w.parallel:  # a second signal: the ranks are not at the same point; end them all
                w.abort(130)
            raise SystemExit(error("interrupted", 130)) from None
        except Exception:  # one rank's unexpected error: end them all, none left waiting in a collective
            if w.parallel:
                import traceback

                traceback.print_exc()
                w.abort(1)
            raise
        if w.root:
            _summary(metrics, hc.runtime.output_dir)
        # What a sweeper optimises: the validation error, never the test error (settings are chosen on
        # validation data); without a validation split there is nothing to return.
        return metrics.get("val_error")

    # Hydra writes no record of its own (it would before any check: a refused command would rewrite
    # the run's record); nmfdnn.record writes it once the run has passed every check.
    if not w.root and not _is_help(args):
        args = _follower_args(args, w.rank)
    sys.argv = ["nmfdnn-train", *args, *([] if _is_help(args) else ["hydra.output_subdir=null"])]
    _FAILED_JOBS.clear()
    task()
    if _FAILED_JOBS:  # jobs run in this process (the basic launcher) that stopped with an error
        return error(f"{len(_FAILED_JOBS)} job(s) of the sweep failed; first: {_FAILED_JOBS[0]}", 1)
    return 0


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
    a = ap.parse_args(args)
    data_dir = None
    if a.data_dir is not None:
        if not a.data_dir.startswith("data_dir="):
            ap.error(f"unexpected argument {a.data_dir!r}; expected data_dir=DIR")
        data_dir = a.data_dir.split("=", 1)[1]
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.dataset == "mnist":
        from .data.mnist import fetch_mnist

        fetch_mnist(data_dir)
    elif a.dataset == "fashion_mnist":
        from .data.mnist import fetch_fashion_mnist

        fetch_fashion_mnist(data_dir)
    else:
        from .data.cifar10 import fetch_cifar10

        fetch_cifar10(data_dir)
    print(f"{a.dataset} verified in {data_root(data_dir) / a.dataset}")
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
    if "${" in str(run_dir.absolute()):
        return error(f"{run_dir}: a run directory whose path contains '${{' cannot be resumed (Hydra's logging reads "
                     "it as an interpolation); rename or move it")
    saved = recorded_overrides(run_dir)  # data, never a command line: plain overrides of the schema only
    extra = [check_override(o, "nmfdnn resume") for o in a.overrides]
    return _train([*saved, *extra, "resume=true", f"hydra.run.dir={quote(run_dir)}"], debug)


def main(argv: list[str] | None = None) -> int:
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
        if cmd == "fetch":
            return _fetch(args)
        import importlib

        return importlib.import_module(COMMANDS[cmd][1]).main(args)
    except NmfdnnError as e:
        if debug:
            raise
        return error(str(e))


if __name__ == "__main__":
    sys.exit(main())
