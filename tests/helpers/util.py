"""Helpers shared by the tests (tests/conftest.py puts this folder on sys.path)."""

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


def compose_train(overrides, return_hydra_config=False):
    """The ``train`` config composed as the CLI composes it (:func:`nmfdnn.config.compose_config`),
    without range validation, so that tests can check :func:`nmfdnn.config.validate` themselves."""
    from nmfdnn.config import compose_config

    return compose_config(overrides, return_hydra_config=return_hydra_config, check=False)
