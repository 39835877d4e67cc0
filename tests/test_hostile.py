"""Hostile and mistaken inputs, through the real console script: a run directory is data, never a
command line; a refused command exits 2 with one line, no traceback, nothing executed and nothing
changed on disk (the run directory hashed before and after)."""

import hashlib
import re
from pathlib import Path

import pytest

from nmfdnn.fileio import run_lock

from util import run_nmfdnn

TINY = ["dataset=synthetic", "hidden=[8]", "epochs=1", "solver.batch_size=300", "solver.ae_samples=300",
        "solver.ae_iters=1", "progress=false"]


def nmfdnn(args, cwd, timeout=120):
    """The command run in this process (util.run_nmfdnn); test_cli.py runs the real console script."""
    return run_nmfdnn([str(a) for a in args], cwd=cwd, timeout=timeout)


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
    # a recorded +key / ++key is read as key (a run's own ++solver.alpha=0.1 resumes: test_counted_once);
    # a key outside the train config stays refused
    ("- +hydra.run.dir={other}\n", "not a key of the train config"),
    ("- ++hydra.run.dir={other}\n", "not a key of the train config"),
    ("- +++seed=3\n", "is not a plain KEY=VALUE override"),
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


@pytest.mark.parametrize("flags", [["-cd", "{tmp}"], ["-cn", "train"], ["--config-dir={tmp}"], ["-cp", "conf"],
                                   ["--config-name", "x"], ["-cdx"], ["--experimental-rerun", "x"], ["-q"]])
@pytest.mark.parametrize("state", ["interrupted", "finished"])
def test_a_hydra_flag_never_rewrites_a_run(run_copy, tmp_path, flags, state):
    if state == "interrupted":
        (run_copy / "metrics.json").unlink()
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    before = tree_hash(run_copy)
    refused(nmfdnn(["train", *flags, *TINY, "hidden=[-5]", f"hydra.run.dir={run_copy}"], tmp_path), flags[0].split("=")[0])
    assert tree_hash(run_copy) == before
    new = tmp_path / "new"
    refused(nmfdnn(["train", *flags, *TINY, f"hydra.run.dir={new}"], tmp_path))
    assert not new.exists()
    if state == "interrupted":  # the record still says what the run was
        assert nmfdnn(["resume", run_copy], tmp_path).returncode == 0


@pytest.mark.parametrize("flags,needle", [(["--cfg", "job"], "hidden:"), (["-cjob"], "hidden:"), (["-c", "job"], "hidden:"),
                                          (["--cfg", "job", "--resolve"], "hidden:"), (["--hydra-help"], "Hydra")])
def test_hydra_print_flags_print_and_write_nothing(tmp_path, flags, needle):
    r = nmfdnn(["train", *TINY, *flags, f"hydra.run.dir={tmp_path / 'new'}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert needle in r.stdout
    assert not (tmp_path / "new").exists()


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


# -- config values: every key validated before any work --------------------------------------------

@pytest.mark.parametrize("override,message", [
    ("seed=-1", "seed must be an integer >= 0"),
    ("solver.alpha=inf", "solver.alpha must be a finite number >= 0"),
    ("solver.beta=nan", "solver.beta must be a finite number >= 0"),
    ("dataset.train_subset=-5", "dataset.train_subset must be a positive integer"),
    ("dataset.test_subset=0", "dataset.test_subset must be a positive integer"),
    ("dataset.val_seed=-1", "dataset.val_seed must be an integer >= 0"),
    ("dataset.n_features=0", "dataset.n_features must be a positive integer"),
    ("dataset.n_test=0", "dataset.n_test must be a positive integer"),
    ("dataset.n_classes=1", "dataset.n_classes must be an integer >= 2"),
    ("dataset.seed=-3", "dataset.seed must be an integer >= 0"),
])
def test_bad_values_are_refused_before_any_work(override, message):
    from nmfdnn.config import validate
    from nmfdnn.errors import NmfdnnError

    from util import compose_train

    with pytest.raises(NmfdnnError, match=re.escape(message)):
        validate(compose_train(TINY + [override]))


def test_bp_rates_must_be_finite():
    from nmfdnn.config import validate
    from nmfdnn.errors import NmfdnnError

    from util import compose_train

    with pytest.raises(NmfdnnError, match="solver.lr must be a finite positive number"):
        validate(compose_train(TINY[:1] + ["solver=bp", "solver.lr=inf"]))


def test_idx_without_its_paths_is_one_line(tmp_path):
    refused(nmfdnn(["train", "dataset=idx", "progress=false", f"hydra.run.dir={tmp_path / 'r'}"], tmp_path),
            "dataset=idx needs dataset.train_images=PATH")


def test_a_sweep_with_a_bad_job_stops_before_the_first_job(tmp_path):
    r = nmfdnn(["train", "-m", *TINY, "seed=0,-1", f"hydra.sweep.dir={tmp_path / 's'}"], tmp_path)
    refused(r, "sweep job seed=-1: seed must be an integer >= 0")
    assert not (tmp_path / "s").exists()


def test_a_sweep_whose_job_fails_exits_non_zero(tmp_path):
    """A job that fails at run time (here: its batch exceeds the data) lets the sweep go on, and the
    sweep's exit status says that a job failed."""
    r = nmfdnn(["train", "-m", *TINY, "dataset.n_train=600,200", f"hydra.sweep.dir={tmp_path / 's'}"], tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "1 job(s) of the sweep failed" in r.stderr and "larger than the training set" in r.stderr
    assert len(list((tmp_path / "s").glob("*/metrics.json"))) == 1  # the other job ran


# -- data files: regular files only, the header first, values checked ------------------------------

def idx_file(path, code, dims, payload):
    import struct

    Path(path).write_bytes(bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload)
    return path


@pytest.mark.parametrize("make,message", [
    (lambda p: idx_file(p, 0x08, [2 ** 31, 2 ** 31, 2 ** 31], b""), "announces"),
    (lambda p: idx_file(p, 0x0D, [20, 2, 2], __import__("numpy").full(80, float("nan"), ">f4").tobytes()),
     "non-finite values"),
    (lambda p: idx_file(p, 0x0D, [20, 2, 2], __import__("numpy").full(80, 3.0, ">f4").tobytes()),
     "must lie in [0, 1]"),
    (lambda p: idx_file(p, 0x08, [0, 2, 2], b""), "no samples"),
    (lambda p: idx_file(p, 0x08, [20, 2, 2], bytes(10)), "truncated"),
    (lambda p: p.mkdir(), "not a regular file"),
    (lambda p: __import__("os").mkfifo(p), "not a regular file"),  # would block a reader forever
])
def test_hostile_idx_images(tmp_path, make, message):
    from nmfdnn.data.mnist import load_idx_pair
    from nmfdnn.errors import DataFormatError

    good_img = idx_file(tmp_path / "gi", 0x08, [20, 2, 2], bytes(range(80)))
    good_lab = idx_file(tmp_path / "gl", 0x08, [20], bytes([i % 3 for i in range(20)]))
    bad = tmp_path / "bad"
    make(bad)
    with pytest.raises(DataFormatError, match=re.escape(message)) as e:
        load_idx_pair(bad, good_lab, good_img, good_lab, n_classes=3)
    assert str(bad) in str(e.value)


def test_idx_label_errors_name_the_labels_file(tmp_path):
    import numpy as np

    from nmfdnn.data.mnist import load_idx_pair
    from nmfdnn.errors import DataFormatError

    img = idx_file(tmp_path / "gi", 0x08, [20, 2, 2], bytes(range(80)))
    lab = idx_file(tmp_path / "gl", 0x08, [20], bytes([i % 3 for i in range(20)]))
    flab = idx_file(tmp_path / "flab", 0x0D, [20], np.full(20, 1.0, ">f4").tobytes())
    with pytest.raises(DataFormatError, match=f"{re.escape(str(flab))}: labels must be integers"):
        load_idx_pair(img, flab, img, lab, n_classes=3)
    big = idx_file(tmp_path / "big", 0x08, [20], bytes([9] * 20))
    with pytest.raises(DataFormatError, match=f"{re.escape(str(big))}: labels out of range"):
        load_idx_pair(img, big, img, lab, n_classes=3)


# -- checkpoints and models whose structure is intact but whose content is not ----------------------

def _edit_npz(path, edit):
    import json

    import numpy as np

    z = dict(np.load(path))
    meta = json.loads(bytes(z["meta"]).decode()) if "meta" in z else None
    edit(z, meta)
    if meta is not None:
        z["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **z)


@pytest.mark.parametrize("edit,message", [
    (lambda z, _m: z.update(W1=z["W1"][:, :3]), "does not match this run: W_1 has shape"),
    (lambda z, _m: z.update(W1=z["W1"] * float("nan")), "is damaged: W_1 holds non-finite values"),
    (lambda _z, m: m.update(epoch=-7), "is damaged: epoch -7"),
    (lambda _z, m: m.update(next_batch="a"), "is damaged: next batch 'a'"),
    (lambda _z, m: m.update(history="x"), "is damaged: its history"),
    (lambda _z, m: m.update(rng_state={"bit_generator": "nope"}), "is damaged: its random state"),
])
def test_a_damaged_checkpoint_is_refused_in_one_line(run_copy, tmp_path, edit, message):
    _edit_npz(run_copy / "checkpoint.npz", edit)
    (run_copy / "metrics.json").unlink()  # as if killed: the resume reads the checkpoint
    before = tree_hash(run_copy)
    refused(nmfdnn(["resume", run_copy], tmp_path), message)
    assert tree_hash(run_copy) == before


@pytest.mark.parametrize("edit,message", [
    (lambda z, _m: z.update(W2=z["W2"] * float("inf")), "is damaged: W_2 holds non-finite values"),
    (lambda z, _m: z.update(W2=z["W2"][:, :2]), "W_2 has shape"),
    (lambda z, _m: z.update(W1=z["W1"].astype("U8")), "is damaged: W_1 is not a float matrix"),
    (lambda z, _m: z.update(bias=__import__("numpy").asarray([1, 2])), "not the weights and bias flag"),
])
def test_a_damaged_model_is_refused_by_eval(run_copy, tmp_path, edit, message):
    _edit_npz(run_copy / "model.npz", edit)
    before = tree_hash(run_copy)
    refused(nmfdnn(["eval", run_copy], tmp_path), message)
    assert tree_hash(run_copy) == before


# -- tools that read many files keep going; an --out that is a file is one line ------------------------

def test_report_and_plot_skip_a_bad_run_and_refuse_a_file_as_out(finished_run, tmp_path):
    import shutil

    for name in ("a", "b", "c"):
        shutil.copytree(finished_run, tmp_path / "runs" / name)
    (tmp_path / "runs" / "b" / "metrics.json").write_text("{bad")
    (tmp_path / "runs" / "c" / "metrics.json").write_text('{"status": "finished", "test_error": "x"}')
    r = nmfdnn(["report", tmp_path / "runs"], tmp_path)
    assert r.returncode == 0 and "Traceback" not in r.stderr
    assert "runs/b/metrics.json: unreadable" in r.stderr + r.stdout and "no numeric test_error" in r.stderr + r.stdout
    (tmp_path / "afile").write_text("x")
    for cmd in ("report", "plot"):
        refused(nmfdnn([cmd, tmp_path / "runs" / "a", "--out", tmp_path / "afile"], tmp_path), "is a file")
    assert (tmp_path / "afile").read_text() == "x"


def test_bench_checks_the_data_size_like_train(tmp_path):
    refused(nmfdnn(["bench", *TINY, "solver.batch_size=100000", "--out", tmp_path / "b"], tmp_path),
            "larger than the training set")


def test_a_resumed_nmf_run_books_the_input_svd_to_pretraining(run_copy, tmp_path):
    """The resume recomputes the input SVD (Sec. 3.3) where an uninterrupted run computes it."""
    import json

    (run_copy / "metrics.json").unlink()
    r = nmfdnn(["resume", run_copy], tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads((run_copy / "metrics.json").read_text())
    assert m["phase_seconds"]["input_svd"] > 0
    assert m["finetune_seconds"] == pytest.approx(sum(h["epoch_seconds"] for h in m["history"][1:]))


def test_eval_of_a_run_without_its_record_uses_its_own_data_set(run_copy, tmp_path):
    """A run folder without .hydra (copied without it) is evaluated on the data set its config.yaml
    names, not on MNIST."""
    import shutil

    shutil.rmtree(run_copy / ".hydra")
    r = nmfdnn(["eval", run_copy], tmp_path)
    assert r.returncode == 0, r.stderr
    assert "synthetic:" in r.stdout


def test_a_damaged_adam_state_is_refused_before_anything_is_written(tmp_path):
    d = tmp_path / "bp"
    r = nmfdnn(["train", "dataset=synthetic", "hidden=[8]", "solver=bp", "solver.batch_size=100",
                "solver.ae_samples=300", "solver.ae_epochs=1", "epochs=2", "progress=false", f"hydra.run.dir={d}"],
               tmp_path)
    assert r.returncode == 0, r.stderr
    _edit_npz(d / "checkpoint.npz", lambda z, _m: z.update(solver__adam_m0=z["solver__adam_m0"][:, :2]))
    (d / "metrics.json").unlink()
    before = tree_hash(d)
    refused(nmfdnn(["resume", d], tmp_path), "its Adam state is damaged or does not match this network")
    assert tree_hash(d) == before
