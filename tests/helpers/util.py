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


def cli(args, cwd=None):
    """``nmfdnn ARGS`` run in this process (:func:`nmfdnn.cli.main`), as the console script runs it but
    without the second of a new interpreter: ``(exit code, stdout, stderr)``."""
    import contextlib
    import io

    from nmfdnn.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd = list(sys.argv), os.getcwd()
    before = {id(h) for h in _file_handlers()}
    env = os.environ.pop("HYDRA_FULL_ERROR", None)
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        if env is not None:
            os.environ["HYDRA_FULL_ERROR"] = env
        for logger, h in _file_handlers(with_logger=True):  # the run's train.log, as a process exit would
            if id(h) not in before:
                logger.removeHandler(h)
                h.close()
    return code, out.getvalue(), err.getvalue()


def _file_handlers(with_logger=False):
    """Every logging FileHandler attached to the root or a named logger (Hydra adds one per run)."""
    import logging

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    return [(lg, h) if with_logger else h for lg in loggers for h in list(lg.handlers)
            if isinstance(h, logging.FileHandler)]


def one_line_error(code, err, *needles, expect=2):
    """A refusal: exit code ``expect``, exactly one ``nmfdnn ...: error:`` line holding every needle, no traceback."""
    import re

    assert code == expect, err
    assert "Traceback" not in err, err
    errors = [ln for ln in err.splitlines() if re.match(r"nmfdnn( \w+)?: error:", ln)]
    assert len(errors) == 1, err
    for n in needles:
        assert n in errors[0], errors[0]
    return errors[0]


def run_nmfdnn(args, cwd=None, env=None, timeout=None, **_):  # noqa: ARG001 (subprocess.run's signature)
    """``subprocess.run(nmfdnn ARGS)``'s result, computed in this process (:func:`cli`): for the tests
    whose point is what a command does, not that it is a process. ``env`` replaces the environment for
    the call. The console script itself is tested by tests/test_cli.py (one real process per command)."""
    import subprocess

    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        code, out, err = cli(args, cwd=cwd)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["nmfdnn", *map(str, args)], code, out, err)
