"""``python -m nmfdnn.maint.startup`` (``make startup``): how long the console script takes to start,
as a newcomer meets it — the median wall time of ``nmfdnn --help``, ``nmfdnn train --help`` and
``python -c "import nmfdnn.cli"`` over ``--repeat`` runs each (interleaved, so that a busy moment of
the machine touches every command alike), and the modules that ``import nmfdnn.cli`` loads that it
should not (scikit-learn, matplotlib, mpi4py, optuna, torch). Goals: ``--help`` <= 0.5 s,
``train --help`` <= 1.0 s on the 2-core machine with every extra installed. No timed test: a script.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HEAVY = ("sklearn", "matplotlib", "mpi4py", "optuna", "torch", "cupy", "pandas")


def _console() -> list[str]:
    exe = Path(sys.executable).parent / "nmfdnn"
    return [str(exe)] if exe.exists() else [shutil.which("nmfdnn") or "nmfdnn"]


def medians(repeat: int = 5) -> dict[str, float]:
    """Median seconds of each start-up command over ``repeat`` interleaved runs."""
    commands = {"nmfdnn --help": _console() + ["--help"], "nmfdnn train --help": _console() + ["train", "--help"],
                "import nmfdnn.cli": [sys.executable, "-c", "import nmfdnn.cli"]}
    times: dict[str, list[float]] = {k: [] for k in commands}
    for _ in range(repeat):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def heavy_imports() -> list[str]:
    """The heavy modules that ``import nmfdnn.cli`` loads (none is the goal)."""
    code = f"import sys, nmfdnn.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m nmfdnn.maint.startup", description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="runs per command (default 5)")
    a = ap.parse_args(argv)
    for name, sec in medians(a.repeat).items():
        print(f"{name:24s} {sec:6.3f} s  (median of {a.repeat})")
    heavy = heavy_imports()
    print(f"heavy modules loaded by import nmfdnn.cli: {', '.join(heavy) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
