"""A study's archive (``outputs/<study>/runs.jsonl``): packing finished run directories, reporting
from the archive alone, and a resumed sweep that skips every archived run."""

import json
import re
import shutil

from nmfdnn.archive import RUNS_FILE, pack, read_runs
from nmfdnn.tools.report import report

from util import run_nmfdnn

SWEEP = ["dataset=synthetic", "hidden=[8]", "epochs=1", "solver.batch_size=300", "solver.ae_samples=300",
         "solver.ae_iters=1", "progress=false", "resume=true", "seed=0,1", "hydra.sweep.subdir=${hydra.job.override_dirname}"]


def sweep(study, extra=(), rc=0):
    r = run_nmfdnn(["train", "-m", *SWEEP, *extra, f"hydra.sweep.dir={study / 'runs'}"])
    assert r.returncode == rc, r.stderr
    return r


def test_pack_report_and_skip_from_the_archive_alone(tmp_path):
    study = tmp_path / "study"
    sweep(study)
    assert pack(study) == 2 and pack(study) == 0  # a second pack changes nothing
    records = read_runs(study / RUNS_FILE)
    assert [r["name"].rsplit(",", 3)[0].endswith(("seed=0", "seed=1")) for r in records] == [True, True]
    assert [r["metrics"]["seed"] for r in records] == [0, 1]
    assert records[0]["overrides"][-1] == "seed=0" and records[0]["config"]["solver"]["factor_dtype"] == "float64"
    assert records[0]["metrics"]["history"]  # the per-epoch history travels in the record
    first = report([study])
    md = (study / "report.md").read_bytes()
    shutil.rmtree(study / "runs")  # a fresh checkout: the archive, no run directories
    again = report([study])
    assert (study / "report.md").read_bytes() == md and again == first
    before = (study / RUNS_FILE).read_bytes()
    r = sweep(study)  # every run is archived: skipped, nothing trained, the archive unchanged
    assert r.stderr.count("already finished (in its study's runs.jsonl)") == 2
    assert not re.search(r"epoch +\d+ +train", r.stdout + r.stderr)  # no epoch was trained
    report([study])
    assert (study / RUNS_FILE).read_bytes() == before and (study / "report.md").read_bytes() == md


def test_an_archived_run_with_another_config_is_refused(tmp_path):
    study = tmp_path / "study"
    sweep(study, ["solver.omega=0.9"])
    pack(study)
    shutil.rmtree(study / "runs")
    text = (study / RUNS_FILE).read_text().replace('"omega": 0.9', '"omega": 0.5')  # not what the name says
    (study / RUNS_FILE).write_text(text)
    r = sweep(study, ["solver.omega=0.9"], rc=1)  # both jobs refused: the sweep says so in its exit status
    assert "holds a finished run of that name with another config (solver.omega: 0.5 -> 0.9)" in r.stderr
    assert "2 job(s) of the sweep failed" in r.stderr


def test_a_malformed_record_is_skipped_with_a_warning(tmp_path):
    study = tmp_path / "study"
    sweep(study)
    pack(study)
    shutil.rmtree(study / "runs")
    with open(study / RUNS_FILE, "a") as f:
        f.write("{not json\n" + json.dumps({"name": "x"}) + "\n")
    warnings = []
    assert len(read_runs(study / RUNS_FILE, warnings)) == 2
    assert len(warnings) == 2 and f"{RUNS_FILE}:3: malformed run record" in warnings[0]
    assert report([study])[0]["n"] == 2


def test_every_study_has_a_readme_and_the_index_is_current():
    """Each committed study states its question, answer and command; outputs/README.md is what
    `make index` generates from them (regenerate it when a study README changes)."""
    from pathlib import Path

    from nmfdnn.maint.index import build_index, study_summary

    outputs = Path(__file__).resolve().parent.parent / "outputs"
    studies = sorted({p.relative_to(outputs).parts[0] for p in outputs.rglob(RUNS_FILE)})
    assert {"table1", "table1-paper", "tune", "defaults"} <= set(studies)
    for s in studies:
        summary = study_summary(outputs / s / "README.md")
        assert all(summary[f] for f in ("question", "answer", "command")), s
    assert (outputs / "README.md").read_text() == build_index(outputs)


def test_index_reads_the_three_fields(tmp_path):
    from nmfdnn.maint.index import build_index

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "README.md").write_text("# A study\n\n**Question.** Why\nnot?\n\n**Answer.** See "
                                              "[r](report.md) and [t](../t/README.md).\n\n**Command.** `make s`\n")
    assert "| [s](s/README.md) | Why not? | See [r](s/report.md) and [t](t/README.md). | `make s` |" in build_index(tmp_path)
