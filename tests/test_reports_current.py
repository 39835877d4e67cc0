"""Every committed report is what the code makes of its study's archive today, byte for byte.

For each ``nmfdnn report`` and ``nmfdnn plot`` line of the Makefile, and for each archived study
that no Makefile target reports (:data:`ARCHIVED`, the same syntax), the ``runs.jsonl`` of every
study the line reads is copied to a scratch folder, the line is run there in-process (no training;
run folders are never read), and every file it writes that git tracks is compared with the
committed one. Only tracked files are compared: a study may leave its ``report.json`` untracked to
keep ``outputs/`` within its file budget (tests/test_layout.py).

Figures are compared too: with the Agg backend, no date in the SVG and a fixed ``svg.hashsalt``
(:func:`nmfdnn.tools.plot.plot`), matplotlib writes the same PNG and SVG bytes for the same runs.
A figure drawn by another matplotlib version than the installed one is skipped (its font
rendering may differ); both formats name the version that drew them.

A failure names the command that regenerates the file from its ``runs.jsonl`` alone: run that line,
not the make target (which trains first). ``claims.md``, ``outputs/README.md`` and the README's
generated blocks have their own checks (tests/test_claims.py, test_archive.py, test_embed.py).
"""

import difflib
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from nmfdnn.archive import RUNS_FILE

REPO = Path(__file__).resolve().parent.parent

# Archived studies that no Makefile target reports (sweeps run by hand: outputs/defaults/README.md,
# outputs/tune/README.md): the report line that made each one.
ARCHIVED = [
    "report outputs/defaults/nmf_best --compare paper-table1",
    "report outputs/tune/baseline",
    "report outputs/tune/bp500",
    "report outputs/tune/bp_ae_epochs",
    "report outputs/tune/bp_deep",
    "report outputs/tune/bp_loss",
    "report outputs/tune/bp_lr_decay",
    "report outputs/tune/bp_table1_constant_deep --compare paper-table1",
    "report outputs/tune/bp_table1_constant_lr",
    "report outputs/tune/cifar10_bp",
    "report outputs/tune/deep_confirm",
    "report outputs/tune/deep_screen",
    "report outputs/tune/deep_screen2",
    "report outputs/tune/deep_search",
    "report outputs/tune/deep_table1_nmf",
    "report outputs/tune/nmf_optuna_sweeper",
    "report outputs/tune/table1_nmf_deep --compare paper-table1",
    "report outputs/tune/table1_nmf_deep_times --compare paper-table1",
]


def makefile_commands() -> list[list[str]]:
    """The ``$(NMFDNN) report ...`` and ``$(NMFDNN) plot ...`` recipe lines of the Makefile, as argv."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    return [shlex.split(m.group(1)) for m in re.finditer(r"^\t\$\(NMFDNN\) ((?:report|plot) .*)$", text, re.M)]


COMMANDS = makefile_commands() + [shlex.split(line) for line in ARCHIVED]


def tracked() -> set[str]:
    if not (REPO / ".git").exists() or not shutil.which("git"):
        pytest.skip("not a git checkout: no committed reports to compare")
    out = subprocess.run(["git", "ls-files", "outputs"], cwd=REPO, capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def parsed(argv: list[str]):
    """``(studies it reads, folder it writes)`` of a report or plot command, read by the tool's own parser."""
    if argv[0] == "report":
        from nmfdnn.tools.report import build_parser
    else:
        from nmfdnn.tools.plot import build_parser
    a = build_parser().parse_args(argv[1:])
    reads = [*a.paths, *(getattr(a, "seconds_from", None) or [])]
    return reads, a.out or a.paths[0]


def test_every_committed_study_is_reported_by_one_command():
    """The Makefile's lines and :data:`ARCHIVED` together read every study with a tracked runs.jsonl,
    each command's study exists, and no study is reported by both."""
    studies = {str(Path(f).parent) for f in tracked() if Path(f).name == RUNS_FILE}
    for argv in COMMANDS:
        assert not [a for a in argv if "$(" in a], f"a Makefile variable in {' '.join(argv)}"
    make_outs = {parsed(argv)[1] for argv in makefile_commands() if argv[0] == "report"}
    archived_outs = {parsed(shlex.split(line))[1] for line in ARCHIVED}
    assert not make_outs & archived_outs, f"in the Makefile and in ARCHIVED: {make_outs & archived_outs}"
    read = {p.rstrip("/") for argv in COMMANDS for p in parsed(argv)[0]}
    assert read - studies == set(), f"commands read studies without a tracked {RUNS_FILE}: {read - studies}"
    assert studies - read == set(), f"studies no command reports (add the Makefile line or ARCHIVED): {studies - read}"


def _drawn_by(data: bytes) -> str | None:
    m = re.search(rb"Matplotlib v(?:ersion)?(\d[\w.]*)", data)
    return m.group(1).decode() if m else None


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(argv[:2]) for argv in COMMANDS])
def test_the_committed_report_is_what_the_command_writes(argv, tmp_path, monkeypatch, capsys):
    from nmfdnn.cli import main

    files = tracked()
    reads, out = parsed(argv)
    matplotlib = pytest.importorskip("matplotlib") if argv[0] == "plot" else None
    for study in reads:
        (tmp_path / study).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REPO / study / RUNS_FILE, tmp_path / study / RUNS_FILE)
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()  # the table the tool prints: not part of a failure's message
    written = sorted(f"{out}/{p.name}" for p in (tmp_path / out).iterdir() if p.is_file() and p.name != RUNS_FILE)
    compared = [f for f in written if f in files]
    assert compared, f"`nmfdnn {' '.join(argv)}` writes no tracked file ({written})"
    stale = []
    for f in compared:
        new, old = (tmp_path / f).read_bytes(), (REPO / f).read_bytes()
        if f.endswith((".png", ".svg")) and _drawn_by(old) != matplotlib.__version__:
            pytest.skip(f"{f} was drawn by matplotlib {_drawn_by(old)}, this is {matplotlib.__version__}")
        if new != old:
            diff = "" if f.endswith(".png") else "\n".join(list(difflib.unified_diff(
                old.decode().splitlines(), new.decode().splitlines(), "committed", "regenerated", lineterm=""))[:12])
            stale.append(f"{f}\n{diff}")
    assert not stale, (f"not what `nmfdnn {' '.join(argv)}` writes from the committed {RUNS_FILE} (run that line "
                       "to regenerate, no training needed):\n" + "\n".join(stale))
