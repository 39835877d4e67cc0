"""Hostile and mistaken inputs, through the real console script: a run directory is data, never a
command line; a refused command exits 2 with one line, no traceback, nothing executed and nothing
changed on disk (the run directory hashed before and after)."""

import hashlib
import re
import subprocess
from pathlib import Path

import pytest

from nmfdnn.fileio import run_lock

from util import env_without_full_error, nmfdnn_command

TINY = ["dataset=synthetic", "hidden=[8]", "epochs=1", "solver.batch_size=300", "solver.ae_samples=300",
        "solver.ae_iters=1", "progress=false"]


def nmfdnn(args, cwd, timeout=120):
    return subprocess.run(nmfdnn_command() + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env_without_full_error())


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def refused(r, *needles):
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    errors = [ln for ln in lines if re.match(r"nmfdnn( \w+)?: error:", ln)]
    assert len(errors) == 1, r.stderr
    for n in needles:
        assert n in errors[0], errors[0]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile") / "run"
    r = nmfdnn(["train", *TINY, f"hydra.run.dir={d}"], d.parent)
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture
def run_copy(finished_run, tmp_path):
    import shutil

    d = tmp_path / "run"
    shutil.copytree(finished_run, d)
    return d


def write_record(run_dir: Path, text: str):
    (run_dir / ".hydra" / "overrides.yaml").write_text(text)
    return tree_hash(run_dir)


PAYLOAD = "pwned"
HOSTILE_RECORDS = [  # (overrides.yaml, a fragment of the one-line refusal)
    ("- --experimental-rerun={evil}\n", "is not a plain KEY=VALUE override"),
    ("- -c\n- job\n", "is not a plain KEY=VALUE override"),
    ("- hydra.output_subdir={other}\n", "not a key of the train config"),
    ("- hydra.job.env_set.PATH={tmp}\n", "not a key of the train config"),
    ("- hydra.job_logging.handlers.file.filename={other}/x.log\n", "not a key of the train config"),
    ("- hydra/launcher=slurm\n", "is not a plain KEY=VALUE override"),
    ("- +hydra.run.dir={other}\n", "is not a plain KEY=VALUE override"),
    ("- ++seed=3\n", "is not a plain KEY=VALUE override"),
    ("- ~seed\n", "is not a plain KEY=VALUE override"),
    ("- seed=${{oc.env:HOME}}\n", "holds an interpolation"),
    ("- solver.alpha=${{nmfdnn_sqlite:{other}/db}}\n", "holds an interpolation"),
    ("- seed=0,1\n", "is a sweep"),
    ("- seed=range(0,3)\n", "is a sweep"),
    ("- os.system=1\n", "not a key of the train config"),
    ("- 42\n", "is not an override"),
    ("- [a, b]\n", "is not an override"),
    ("seed: 1\n", "not a list of overrides"),
    ("!!python/object/apply:os.system ['touch {tmp}/" + PAYLOAD + "']\n", "unreadable (ConstructorError)"),
    ("- !!python/object/apply:os.system ['touch {tmp}/" + PAYLOAD + "']\n", "unreadable (ConstructorError)"),
    ("- [seed=1\n", "unreadable"),
    ("- \"seed=1\\nhydra.run.dir=/\"\n", "holds a control character"),
    ("- \"seed=1 hydra.run.dir=/\"\n", "is not a valid override"),
]


@pytest.mark.parametrize("command", ["resume", "eval"])
@pytest.mark.parametrize("text,message", HOSTILE_RECORDS, ids=[str(i) for i in range(len(HOSTILE_RECORDS))])
def test_a_crafted_record_is_refused_before_anything_runs(run_copy, tmp_path, command, text, message):
    other = tmp_path / "other"
    other.mkdir()
    evil = tmp_path / "evil.pickle"
    evil.write_bytes(b"not even a pickle")
    before = write_record(run_copy, text.format(evil=evil, other=other, tmp=tmp_path))
    outside = tree_hash(other)
    r = nmfdnn([command, run_copy], tmp_path)
    refused(r, message)
    assert tree_hash(run_copy) == before and tree_hash(other) == outside
    assert not (tmp_path / PAYLOAD).exists()


def test_an_oversized_record_is_refused(run_copy, tmp_path):
    before = write_record(run_copy, "- seed=0\n" + "#" * (1 << 21) + "\n")
    refused(nmfdnn(["resume", run_copy], tmp_path), "not a run record")
    assert tree_hash(run_copy) == before


@pytest.mark.parametrize("extra,message", [
    (["hydra.output_subdir=x"], "not a key of the train config"),
    (["--experimental-rerun=x"], "unrecognized arguments: --experimental-rerun=x"),
    (["+foo=1"], "is not a plain KEY=VALUE override"),
])
def test_hostile_overrides_on_the_resume_command_line(run_copy, tmp_path, extra, message):
    before = tree_hash(run_copy)
    refused(nmfdnn(["resume", run_copy, *extra], tmp_path), message)
    assert tree_hash(run_copy) == before


def test_a_refused_resume_changes_nothing_and_the_next_resume_works(run_copy, tmp_path):
    before = tree_hash(run_copy)
    refused(nmfdnn(["resume", run_copy, "epochs=5"], tmp_path), "holds a finished run with another config")
    assert tree_hash(run_copy) == before
    r = nmfdnn(["resume", run_copy], tmp_path)  # the record still says what the run was
    assert r.returncode == 0, r.stderr
    refused(nmfdnn(["train", *TINY, f"hydra.run.dir={run_copy}"], tmp_path), "already holds a run")
    assert (run_copy / ".hydra" / "overrides.yaml").read_text() == (tmp_path / "run" / ".hydra" /
                                                                    "overrides.yaml").read_text()


def test_a_second_writer_is_refused_without_touching_the_record(run_copy, tmp_path):
    before = tree_hash(run_copy)
    with run_lock(run_copy):  # a run of this directory is training
        during = tree_hash(run_copy)
        refused(nmfdnn(["resume", run_copy], tmp_path), "is being written by process")
        refused(nmfdnn(["train", *TINY, "seed=4", f"hydra.run.dir={run_copy}"], tmp_path))
        assert tree_hash(run_copy) == during
    assert tree_hash(run_copy) == before


def test_eval_after_a_refused_resume_scores_the_run_as_it_was(run_copy, tmp_path):
    r = nmfdnn(["eval", run_copy], tmp_path)
    assert r.returncode == 0, r.stderr
    first = (run_copy / "eval.json").read_text()
    refused(nmfdnn(["resume", run_copy, "dataset.test_subset=100"], tmp_path), "another config")
    assert nmfdnn(["eval", run_copy], tmp_path).returncode == 0
    assert (run_copy / "eval.json").read_text() == first


@pytest.mark.parametrize("name", ["with space", "it's", "a,b=c", "brackets[1]", "dollar$x", "ünïcode",
                                  "back\\slash", "trailing\\"])
def test_run_directories_with_any_characters_resume(tmp_path, name):
    d = tmp_path / name / "run"
    from nmfdnn.record import quote

    r = nmfdnn(["train", *TINY, "epochs=2", f"hydra.run.dir={quote(d)}"], tmp_path)
    assert r.returncode == 0, r.stderr
    (d / "metrics.json").unlink()  # as if killed after its last checkpoint
    r = nmfdnn(["resume", d], tmp_path)
    assert r.returncode == 0, r.stderr
    assert '"status": "finished"' in (d / "metrics.json").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no stray folder from a mangled path


def test_a_run_directory_named_like_an_interpolation_is_refused_in_one_line(run_copy, tmp_path):
    d = tmp_path / "${interp}"
    run_copy.rename(d)
    before = tree_hash(d)
    refused(nmfdnn(["resume", d], tmp_path), "cannot be resumed", "rename or move it")
    assert tree_hash(d) == before
