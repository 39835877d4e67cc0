"""The optional dependencies and the extra that installs each: a command that needs a missing one is
refused in one line naming ``pip install 'nmfdnn[EXTRA]'`` (exit 2) before any work.

:func:`missing` answers for one module; :func:`train_problem` scans the command line of ``nmfdnn
train`` (launchers, the retired optuna sweeper, the CuPy backend) before Hydra reads it; a tracker of
``logger=`` without its extra is no refusal: one warning line, and the run goes on (:mod:`nmfdnn.trackers`).
Whether a module is there is asked of the import system without importing it (``find_spec``), so
that the check costs no start-up time.
"""

from __future__ import annotations

import importlib.util

# module -> (the distribution pip installs, the extra of nmfdnn that brings it)
EXTRAS = {
    "optuna": ("optuna", "tune"),
    "submitit": ("submitit", "sweep"),
    "hydra_plugins.hydra_submitit_launcher": ("hydra-submitit-launcher", "sweep"),
    "hydra_plugins.hydra_joblib_launcher": ("hydra-joblib-launcher", "sweep"),
    "matplotlib": ("matplotlib", "plot"),
    "mpi4py": ("mpi4py", "mpi"),
    "cupy": ("CuPy", "gpu"),
    "mlflow": ("mlflow", "mlflow"),
    "tensorboardX": ("tensorboardX", "tensorboard"),
}

# logger=NAME (a tracker) -> the module it writes with
TRACKERS = {"mlflow": "mlflow", "tensorboard": "tensorboardX"}

# hydra/launcher=VALUE -> the plugin module behind it
LAUNCHERS = {"slurm": "hydra_plugins.hydra_submitit_launcher", "submitit_slurm": "hydra_plugins.hydra_submitit_launcher",
             "submitit_local": "hydra_plugins.hydra_submitit_launcher",
             "parallel": "hydra_plugins.hydra_joblib_launcher", "joblib": "hydra_plugins.hydra_joblib_launcher"}

RETIRED_SWEEPER = ("the optuna sweeper (hydra/sweeper=optuna, hparams_search) is retired: `nmfdnn tune` replaces it "
                   "(e.g. nmfdnn tune nmf_optuna hidden=[1000,500]; see nmfdnn tune --help)")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (its parent packages are imported to find it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing(module: str, what: str) -> str | None:
    """None if ``module`` is installed, else the one line: ``what`` needs it, and the extra to install."""
    if installed(module):
        return None
    dist, extra = EXTRAS[module]
    return f"{what} needs {dist}, which is not installed: pip install 'nmfdnn[{extra}]'"


def _value(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value.strip().strip("'\"")


def train_problem(args: list[str]) -> str | None:
    """The first optional dependency that ``nmfdnn train ARGS`` needs and lacks, as one line; the
    retired optuna sweeper, named with its replacement. None when nothing is missing."""
    for a in args:
        if a.startswith("-") or "=" not in a:
            continue
        key, value = _value(a)
        if key == "hydra/sweeper" and "optuna" in value or key.split(".")[0] == "hparams_search":
            return RETIRED_SWEEPER
        if key == "hydra/launcher":
            for v in value.split(","):
                module = LAUNCHERS.get(v.strip())
                if module:
                    problem = missing(module, f"hydra/launcher={v.strip()}")
                    if problem:
                        return problem
        if key == "backend" and "cupy" in value.split(","):
            problem = missing("cupy", "backend=cupy")
            if problem:
                return problem
    return None
