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


def compose_train(overrides):
    """The ``train`` config composed through Hydra's compose API, as the CLI would."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from nmfdnn.cli import conf_dir
    from nmfdnn.config import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
        return compose(config_name="train", overrides=overrides)
