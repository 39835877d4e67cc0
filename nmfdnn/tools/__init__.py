"""The user commands behind the console script: benchmarks (``bench``, time to accuracy), ``report``, ``plot``
and ``eval``. Each module owns its argparse parser (``build_parser``) and entry point (``main``)."""

from __future__ import annotations

import argparse
import sys


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line on stderr (exit 2), like every nmfdnn error."""

    def error(self, message):  # noqa: D401 - argparse's hook
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)
