"""Helpers shared by the tests."""

import os
import shutil
import sys
from pathlib import Path

import pytest


def nmfdnn_command():
    """The installed console script next to this interpreter (the real entry point)."""
    exe = Path(sys.executable).parent / "nmfdnn"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("nmfdnn")
    if found:
        return [found]
    pytest.skip("the nmfdnn console script is not installed (run `make test`)")


def env_without_full_error():
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    return env
