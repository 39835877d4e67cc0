"""The ``nmfdnn`` console script: ``train`` (Hydra), ``fetch``; ``--help`` lists them."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from . import __version__
from .errors import NmfdnnError

log = logging.getLogger("nmfdnn")

USAGE = f"""nmfdnn {__version__}: deep networks trained without backpropagation (Sakurai et al., ICONIP 2016)

usage: nmfdnn COMMAND [ARGS]

commands:
  train [OVERRIDES]      train a network (Hydra app: `nmfdnn train --help` lists the config groups;
                         `-m` runs a multirun sweep, e.g. `nmfdnn train -m seed=0,1,2 hidden=[500],[1000,500]`)
  resume RUN_DIR         continue a killed or interrupted run from its last checkpoint
                         (same as `nmfdnn train <its overrides> resume=true hydra.run.dir=RUN_DIR`)
  eval RUN_DIR [OVERRIDES]
                         error rates of a trained run on its data set (or another: dataset=...)
  report PATH... [--compare paper-table1]
                         mean and 95 % confidence interval over seeds of every group of runs
  plot PATH... [--out DIR]
                         Figure 1: train/test error against epoch and seconds (PNG and SVG)
  bench [OVERRIDES]       GEMM rate, then a short run: seconds, GFLOP/s and share of GEMM per phase
  fetch DATASET          download, verify and cache mnist, fashion_mnist or cifar10
                         (data_dir=... or $NMFDNN_DATA)

options:
  -h, --help             show this message
  --version              print the version
  --debug                (before or after COMMAND) show full tracebacks instead of one-line errors

examples:
  nmfdnn train dataset=mnist hidden=[1000,500]
  nmfdnn train experiment=paper hidden=[500]
  nmfdnn train dataset=mnist hidden=[500] dtype=float32 epochs=3
"""


def conf_dir() -> str:
    """Where the configs are: ``nmfdnn/conf`` in an installed wheel, else the repository's ``conf/``."""
    here = Path(__file__).resolve().parent
    for cand in (here / "conf", here.parent / "conf"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise NmfdnnError(f"cannot find the configuration directory (looked in {here / 'conf'} and {here.parent / 'conf'})")


def error(msg: str, code: int = 2) -> int:
    print(f"nmfdnn: error: {msg}", file=sys.stderr)
    return code


def _train(args: list[str], debug: bool) -> int:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from .config import register_configs

    register_configs()
    path = conf_dir()
    if not any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith(("--cfg", "-c", "--shell"))
               for a in args):
        problem = precheck_overrides(path, args)
        if problem:
            if debug:
                os.environ["HYDRA_FULL_ERROR"] = "1"  # let Hydra show the full story below
            else:
                return error(problem)

    @hydra.main(version_base="1.3", config_path=path, config_name="train")
    def task(cfg):
        from .progress import Reporter, RichReporter
        from .train import Interrupted, run

        hc = HydraConfig.get()
        _cap_threads_for_parallel_sweeps(cfg, hc)
        reporter = RichReporter() if cfg.progress and sys.stderr.isatty() else Reporter()
        try:
            metrics = run(cfg, hc.runtime.output_dir, reporter)
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
                return None  # the sweep goes on; this job has no finished metrics.json
            raise SystemExit(error(str(e))) from None
        except KeyboardInterrupt:
            reporter.stop()
            raise SystemExit(error("interrupted", 130)) from None
        _summary(metrics, hc.runtime.output_dir)
        return metrics["test_error"]

    sys.argv = ["nmfdnn-train", *args]
    task()
    return 0


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line composition errors as one line."""
    parts, options = [], []
    for e in (exc, exc.__cause__):
        if e is None:
            continue
        in_options = False
        for line in str(e).splitlines():
            line = line.strip()
            if not line or line.startswith(("provider=", "Config search path", "full_key:", "object_type=",
                                            "reference_type=", "To append to your config", "Set the environment")):
                continue
            if line.startswith("Available options in"):
                in_options = True
                parts.append(line.rstrip(":"))
            elif in_options:
                if not line.startswith("base_"):  # the schemas registered in each group
                    options.append(line)
            else:
                parts.append(line)
    text = "; ".join(parts) + (": " + ", ".join(options) if options else "")
    return text or type(exc).__name__


def precheck_overrides(path: str, args: list[str]) -> str | None:
    """Compose the config once with the command's overrides (sweep overrides left out) so that a
    typo or a value of the wrong type is a one-line error before Hydra starts a run or a sweep."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    overrides = [a for a in args if not a.startswith("-")]
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as e:
        return one_line(e)
    plain = [o.input_line for o in parsed if not o.is_sweep_override() and not o.get_key_element().startswith("hydra")]
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=path, version_base="1.3"):
            compose(config_name="train", overrides=plain)
    except Exception as e:
        return one_line(e)
    finally:
        GlobalHydra.instance().clear()
    return None


def _cap_threads_for_parallel_sweeps(cfg, hc) -> None:
    """Under the joblib launcher, give each job cores // n_jobs BLAS threads unless set explicitly."""
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
    t.add_row(f"{metrics['train_error']:.2f}", f"{metrics['test_error']:.2f}", f"{metrics['pretrain_seconds']:.1f}",
              f"{metrics['finetune_seconds']:.1f}", f"{metrics['total_seconds']:.1f}")
    c = Console()
    c.print(t)
    c.print(f"outputs: {out_dir}")


def _fetch(args: list[str]) -> int:
    from .data.fetch import data_root

    data_dir = None
    names = []
    for a in args:
        if a.startswith("data_dir="):
            data_dir = a.split("=", 1)[1]
        elif a in ("-h", "--help"):
            print("usage: nmfdnn fetch {mnist,fashion_mnist,cifar10} [data_dir=DIR]")
            return 0
        else:
            names.append(a)
    known = ("mnist", "fashion_mnist", "cifar10")
    if len(names) != 1 or names[0] not in known:
        return error(f"usage: nmfdnn fetch {{{','.join(known)}}} [data_dir=DIR]")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if names[0] == "mnist":
        from .data.mnist import fetch_mnist

        fetch_mnist(data_dir)
    elif names[0] == "fashion_mnist":
        from .data.mnist import fetch_fashion_mnist

        fetch_fashion_mnist(data_dir)
    else:
        from .data.cifar10 import fetch_cifar10

        fetch_cifar10(data_dir)
    print(f"{names[0]} verified in {data_root(data_dir) / names[0]}")
    return 0


def _eval(args: list[str]) -> int:
    if not args or args[0].startswith("-"):
        print("usage: nmfdnn eval RUN_DIR [OVERRIDES]   (e.g. dataset=idx dataset.test_images=...)")
        return 0 if args and args[0] in ("-h", "--help") else 2
    from rich.console import Console

    from .evaluate_run import evaluate_run

    r = evaluate_run(Path(args[0]), args[1:])
    Console().print(f"{r['dataset']}: train error {r['train_error']:.2f} %  test error {r['test_error']:.2f} %  "
                    f"({r['n_train']} / {r['n_test']} samples); written to {Path(args[0]) / 'eval.json'}")
    return 0


def _report(args: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="nmfdnn report", description="Group finished runs by config (all but the "
                                 "seed) and report error rates with 95 % t intervals and mean times.")
    ap.add_argument("paths", nargs="+", help="run, sweep or output directories (searched for metrics.json)")
    ap.add_argument("--compare", metavar="TABLE", help="print a reference table beside ours: paper-table1")
    ap.add_argument("--out", help="where report.{md,csv,tex,json} go (default: the first PATH)")
    a = ap.parse_args(args)
    from .report import report

    report(a.paths, a.compare, a.out)
    return 0


def _plot(args: list[str]) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="nmfdnn plot", description="Figure 1: error against epoch and seconds.")
    ap.add_argument("paths", nargs="+", help="run or sweep directories")
    ap.add_argument("--out", help="output folder (default: the first PATH)")
    ap.add_argument("--name", default="fig1", help="file name stem (default fig1)")
    a = ap.parse_args(args)
    from .plot import plot

    for f in plot(a.paths, a.out, a.name):
        print(f"wrote {f}")
    return 0


_TTA_RUNS = "nmf:float32,nmf:float64,bp:float32"


def _bench(args: list[str]) -> int:
    if args and args[0] in ("-h", "--help"):
        print("usage: nmfdnn bench [--out DIR] [--gemm-size N] [OVERRIDES]   (the train config with epochs=1; "
              "writes DIR/bench.json, default outputs/bench/DATE_TIME; the GEMM rate is that of N x N products, "
              "default 4000, measured before and after the run)\n"
              "       nmfdnn bench --table DIR...          (a markdown table of the bench.json files under DIR)\n"
              "       nmfdnn bench --shapes                (GFLOP/s of the [1000,500] MNIST fine-tuning's own "
              "products next to a square GEMM: the ceiling of the share of GEMM)\n"
              "       nmfdnn bench --tta [--target PCT] [--runs SOLVER:DTYPE,...] [--repeats N] [--out DIR] [OVERRIDES]\n"
              "                                            (time to accuracy: training seconds until the test error "
              f"first drops below PCT, default 2.0, for each run, default {_TTA_RUNS}; at most epochs=10 each; "
              "N interleaved rounds, medians reported; writes DIR/tta.json)")
        return 0
    import time as _time

    from .bench import bench, print_bench, scaling_table

    if args and args[0] == "--table":
        print(scaling_table(args[1:]))
        return 0
    if args and args[0] == "--shapes":
        from .bench import print_shape_rates, shape_rates

        for dtype in ("float64", "float32"):
            print_shape_rates(shape_rates([1000, 500], 784, 5000, dtype))
        return 0
    opts = {"--out": None, "--target": "2.0", "--runs": _TTA_RUNS, "--gemm-size": "4000", "--repeats": "1"}
    tta, rest = False, []
    while args:  # options may come anywhere; a Hydra override never starts with "--"
        if args[0] == "--tta":
            tta, args = True, args[1:]
        elif args[0] in opts and len(args) > 1:
            opts[args[0]], args = args[1], args[2:]
        elif args[0].startswith("--"):
            return error(f"bench: unknown or incomplete option {args[0]!r}; see nmfdnn bench --help")
        else:
            rest, args = rest + [args[0]], args[1:]
    args = rest
    try:
        gemm_n, repeats = int(opts["--gemm-size"]), int(opts["--repeats"])
        if gemm_n < 1 or repeats < 1:
            raise ValueError
    except ValueError:
        return error(f"bench: --gemm-size and --repeats take positive integers, got {opts['--gemm-size']!r} "
                     f"and {opts['--repeats']!r}")
    stamp = _time.strftime("%Y-%m-%d_%H-%M-%S")
    out = Path(opts["--out"]) if opts["--out"] else Path("outputs") / ("tta" if tta else "bench") / stamp
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from .config import register_configs, validate

    register_configs()
    path = conf_dir()

    def composed(overrides):
        problem = precheck_overrides(path, overrides)
        if problem:
            raise NmfdnnError(problem)
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=path, version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
        validate(cfg)
        return cfg

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if tta:
        try:
            target = float(opts["--target"])
            runs = [r.split(":") for r in opts["--runs"].split(",")]
            if not all(len(r) == 2 for r in runs):
                raise ValueError
        except ValueError:
            return error("bench --tta: --target takes a number (percent) and --runs a list like nmf:float32,bp:float32")
        from .bench import print_tta, run_tta

        cfgs = [composed(["epochs=10", "progress=false", f"solver={sol}", f"dtype={dt}", *args]) for sol, dt in runs]
        out.mkdir(parents=True, exist_ok=True)
        print_tta(run_tta(cfgs, target, out, gemm_n, repeats))
        print(f"written to {out / 'tta.json'}")
        return 0
    cfg = composed(["epochs=1", "progress=false", *args])
    out.mkdir(parents=True, exist_ok=True)
    print_bench(bench(cfg, out, gemm_n=gemm_n))
    print(f"written to {out / 'bench.json'}")
    return 0


def _resume(args: list[str], debug: bool) -> int:
    if len(args) < 1 or args[0].startswith("-"):
        return error("usage: nmfdnn resume RUN_DIR [OVERRIDES]")
    run_dir = Path(args[0])
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    if not overrides_file.is_file():
        return error(f"{run_dir} is not a run directory of nmfdnn train (no .hydra/overrides.yaml)")
    from omegaconf import OmegaConf

    saved = [str(o) for o in OmegaConf.load(overrides_file)
             if not str(o).startswith(("resume=", "hydra.run.dir="))]
    return _train([*saved, *args[1:], "resume=true", f"hydra.run.dir={run_dir}"], debug)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if debug:
        os.environ["HYDRA_FULL_ERROR"] = "1"
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] == "--version":
        print(__version__)
        return 0
    cmd, args = argv[0], argv[1:]
    commands = {"train": lambda: _train(args, debug), "resume": lambda: _resume(args, debug),
                "eval": lambda: _eval(args), "report": lambda: _report(args), "plot": lambda: _plot(args), "bench": lambda: _bench(args), "fetch": lambda: _fetch(args)}
    if cmd not in commands:
        return error(f"unknown command {cmd!r}; commands: {', '.join(commands)} (see nmfdnn --help)")
    try:
        return commands[cmd]()
    except NmfdnnError as e:
        if debug:
            raise
        return error(str(e))


if __name__ == "__main__":
    sys.exit(main())
