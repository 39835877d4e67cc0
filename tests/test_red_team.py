"""The red team's classes of hostile input, each with several variants: memory a run cannot have, run
and data folders the OS refuses, crafted model and checkpoint files, eval overrides that would read
the weights as another network, keys without a range or without effect, activation values the dtype
cannot hold, interrupts, resumes of incomplete runs and tools under mpiexec. Every refusal is one
line, exit 2 (an interrupt: 130), no traceback, nothing changed on disk."""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from util import cli, compose_train, env_without_full_error, nmfdnn_command, one_line_error

B = ["dataset=synthetic", "hidden=[20]", "epochs=1", "solver.batch_size=300", "solver.ae_samples=300",
     "solver.ae_iters=1", "progress=false"]
BP = ["solver=bp", *(a for a in B if not a.startswith("solver.ae_iters"))]
LONG = "a" * 300  # longer than any file system's NAME_MAX


def tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(Path(root).rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file() and not p.is_symlink():
            h.update(p.read_bytes())
    return h.hexdigest()


def refused(args, *needles, cwd=None, expect=2):
    code, out, err = cli(args, cwd=cwd)
    assert "Traceback" not in out
    return one_line_error(code, err, *needles, expect=expect)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished dense run and a finished conv run (synthetic 1 x 8 x 8 images), trained once."""
    root = tmp_path_factory.mktemp("red_team")
    made = {}
    for name, extra in (("dense", ["epochs=2"]), ("conv", ["dataset.image=[1,8,8]", "conv=[{channels:4,kernel:3,pool:2}]"])):
        code, _, err = cli(["train", *B, *extra, f"hydra.run.dir={root / name}"])
        assert code == 0, err
        made[name] = root / name
    return made


@pytest.fixture
def dense(runs, tmp_path):
    d = tmp_path / "dense"
    shutil.copytree(runs["dense"], d)
    return d


@pytest.fixture
def conv(runs, tmp_path):
    d = tmp_path / "conv"
    shutil.copytree(runs["conv"], d)
    return d


# -- the table: commands refused in one line before any work ----------------------------------------

HOSTILE = [  # (command line, a fragment of the one-line refusal)
    # memory the machine cannot hold, estimated before any work
    (["train", *B, "dataset.image=[1,100000,100000]"], "this run needs about"),
    (["train", *B, "dataset.n_features=10000000000"], "this run needs about"),
    (["train", *BP, "hidden=[100000000]"], "this run needs about"),
    (["train", *BP, "hidden=[40000,40000]", "dataset.n_features=40000"], "this run needs about"),
    (["bench", *B, "dataset.n_features=10000000000"], "this run needs about"),
    # run and data folders the OS refuses
    (["train", *B, "hydra.run.dir=/proc/nmfdnn-x"], "cannot write the run directory /proc/nmfdnn-x"),
    (["train", *B, "hydra.run.dir=/proc/self/x/y"], "cannot write the run directory"),
    (["train", *B, f"hydra.run.dir=/tmp/{LONG}"], "more than the"),
    (["train", *B, f"hydra.run.dir=/tmp/{'b/' * 2100}"], "more than the"),
    (["train", "-m", *B, "seed=0,1", f"hydra.sweep.dir=/tmp/{LONG}"], "more than the"),
    (["fetch", "mnist", f"data_dir=/tmp/{LONG}"], "data directory"),
    (["train", *B[1:], "dataset=mnist", f"dataset.data_dir=/tmp/{LONG}", "hydra.run.dir=/tmp/nmfdnn-never"],
     "data directory"),
    (["train", *B[1:], "dataset=cifar10", f"dataset.folder=/tmp/{LONG}", "hydra.run.dir=/tmp/nmfdnn-never"],
     "File name too long"),
    (["eval", f"/tmp/{LONG}"], "more than the"),
    (["resume", f"/tmp/{LONG}"], "more than the"),
    (["report", f"/tmp/{LONG}"], "File name too long"),
    # iteration counts out of range
    (["train", *B, "solver.cg_iters=-1"], "solver.cg_iters must be an integer in [1, 1000]"),
    (["train", *B, "solver.cg_iters=-5"], "solver.cg_iters must be an integer in [1, 1000]"),
    (["train", *B, "solver.cg_iters=1000000000"], "solver.cg_iters must be an integer in [1, 1000]"),
    (["train", *B, "solver.lsq_iters=1000000000"], "solver.lsq_iters must be an integer in [0, 1000]"),
    (["train", *B, "solver.ae_nmf_iters=-1"], "solver.ae_nmf_iters must be an integer in [0, 1000]"),
    (["train", *BP, "solver.ae_epochs=1000000"], "solver.ae_epochs must be an integer in [0, 1000]"),
    # activation values the dtype cannot hold
    (["train", *B, "activation=softplus", "activation_beta=1e-308"], "activation_beta=1e-308 is out of"),
    (["train", *B, "activation=softplus", "activation_beta=1e39", "dtype=float32"], "in float32"),
    (["train", *B, "activation=softplus", "activation_beta=1e-12", "dtype=float32"], "in float32"),
    (["train", *B, "activation=capped_relu", "activation_cap=1e39", "dtype=float32"], "activation_cap=1e+39"),
    (["train", *B, "activation=capped_relu", "activation_cap=1e-300"], "activation_cap=1e-300"),
    (["train", *B, "activation=leaky_relu", "activation_slope=1e-45", "dtype=float32"], "smallest normal float32"),
    # keys that would be silently ignored
    (["train", *B, "dataset.image=[-1,-2,3]"], "dataset.image[0] must be a positive integer"),
    (["train", *B, "dataset.image=[1,8]"], "dataset.image must be [c, h, w]"),
    (["train", *B, "dataset.image=[1,0,8]"], "dataset.image[1] must be a positive integer"),
    (["train", *B, "solver.freeze_conv=true"], "solver.freeze_conv=true"),
    (["train", *BP, "solver.freeze_conv=true"], "solver.freeze_conv=true"),
]


@pytest.mark.parametrize("args,message", HOSTILE, ids=[str(i) for i in range(len(HOSTILE))])
def test_hostile_commands_are_refused_in_one_line(tmp_path, args, message):
    if args[0] in ("train", "bench") and not any(a.startswith(("hydra.run.dir=", "hydra.sweep.dir=", "--out")) for a in args):
        args = [*args, *(["--out", str(tmp_path / "b")] if args[0] == "bench" else [f"hydra.run.dir={tmp_path / 'r'}"])]
    before = sorted(p.name for p in tmp_path.iterdir())
    refused(args, message, cwd=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no run folder, no log left behind
    assert not Path("/tmp/nmfdnn-never").exists()


# -- memory: the estimate, and allocations that fail anyway ------------------------------------------

def test_the_estimate_is_compared_with_what_this_machine_has(monkeypatch, tmp_path):
    """With 64 MiB available, a run of 20,000 x 2,000 features is refused with both numbers; the
    same run fits once memory is there."""
    from nmfdnn import memory

    args = ["train", *B, "dataset.n_train=20000", "dataset.n_features=2000", f"hydra.run.dir={tmp_path / 'r'}"]
    monkeypatch.setattr(memory, "shared_available_bytes", lambda: 64 << 20)
    line = refused(args, "this run needs about", "but only 64 MiB is available")
    assert re.search(r"needs about [0-9.]+ (MiB|GiB)", line)
    assert not (tmp_path / "r").exists()
    monkeypatch.setattr(memory, "_address_space_left", lambda: 32 << 20)  # ulimit -v: the lesser counts
    refused(args, "but only 32 MiB is available")
    from nmfdnn.config import validate

    monkeypatch.setattr(memory, "shared_available_bytes", lambda: 1 << 40)
    monkeypatch.setattr(memory, "_address_space_left", lambda: None)
    validate(compose_train(args[1:-1]))


def test_the_estimate_counts_data_weights_batches_and_patch_matrices():
    from nmfdnn.memory import estimate_bytes

    small = estimate_bytes(compose_train(B))
    assert 0 < small < 50 << 20
    wide = estimate_bytes(compose_train([*B, "hidden=[2000]"]))
    assert wide - small > 2000 * 2000 * 8  # its Gram matrix
    conv = estimate_bytes(compose_train([*B, "dataset.image=[3,32,32]", "conv=[{channels:64,kernel:5}]"]))
    patches = 300 * 3 * 25 * 28 * 28 * 8  # 300 columns of a 75 x 784 patch matrix each
    assert conv > patches
    assert estimate_bytes(compose_train([*B[1:], "dataset=idx", "dataset.train_images=x", "dataset.train_labels=x",
                                         "dataset.test_images=x", "dataset.test_labels=x"])) is None


def _memory_error(*_a, **_k):
    raise MemoryError("Unable to allocate 80.0 GiB for an array with shape (100000, 100000)")


@pytest.mark.parametrize("where", ["fit", "load"])
def test_an_allocation_that_fails_in_train_is_one_line(monkeypatch, tmp_path, where):
    import nmfdnn.train
    from nmfdnn import data

    if where == "fit":
        monkeypatch.setattr(nmfdnn.train, "fit", _memory_error)
    else:
        monkeypatch.setitem(data.LOADERS, "synthetic", _memory_error)
    refused(["train", *B, f"hydra.run.dir={tmp_path / 'r'}"], "out of memory", "80.0 GiB")
    if where == "load":  # refused before its record: the folder held only its log
        assert not (tmp_path / "r").exists()


def test_an_allocation_that_fails_in_eval_is_one_line(monkeypatch, dense):
    from nmfdnn.tools import eval as eval_tool

    monkeypatch.setattr(eval_tool, "evaluate", _memory_error)
    before = tree_hash(dense)
    refused(["eval", dense], "out of memory")
    assert tree_hash(dense) == before


# -- crafted model.npz and checkpoint.npz ------------------------------------------------------------

def _npy(array=None, header=None, pad=b""):
    from numpy.lib import format as npy

    buf = io.BytesIO()
    if header is None:
        np.save(buf, array)
    else:
        npy.write_array_header_1_0(buf, header)
        buf.write(pad)
    return buf.getvalue()


def _rewrite(path, members: dict, compress=False):
    """``path`` as a zip of the given raw ``.npy`` members (bytes) and the rest of its arrays."""
    z = dict(np.load(path))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as out:
        for key in {**z, **members}:
            out.writestr(f"{key}.npy", members.get(key) or _npy(z[key]))


def _edit(path, **arrays):
    z = dict(np.load(path))
    for k, v in arrays.items():
        if v is None:
            z.pop(k)
        else:
            z[k] = v
    np.savez(path, **z)


CRAFTED_MODELS = [  # (how model.npz is crafted, a fragment of the refusal)
    (lambda p: _rewrite(p, {"W1": _npy(header={"descr": "<f8", "fortran_order": False, "shape": (100000, 100000)},
                                          pad=b"\0" * 64)}), "W1 declares (100000, 100000) float64 (74.5 GiB)"),
    (lambda p: _rewrite(p, {"W2": _npy(header={"descr": "<f4", "fortran_order": False, "shape": (3, 10 ** 12)})},
                        compress=True), "W2 declares (3, 1000000000000)"),
    (lambda p: _edit(p, n_conv=np.asarray([1, 2])), "n_conv is int64 (2,)"),
    (lambda p: _edit(p, n_conv=np.asarray(0.5)), "n_conv is float64 ()"),
    (lambda p: _edit(p, n_conv=np.asarray(7)), "not a layer count below 2"),
    (lambda p: _edit(p, bias=np.asarray([True])), "not the weights and bias flag"),
    (lambda p: _edit(p, bias=None), "not the weights and bias flag"),
    (lambda p: _edit(p, W5=np.ones((3, 3))), "not the weights and bias flag"),
    (lambda p: _edit(p, W1=np.ones((0, 20))), "not the weights and bias flag"),
    (lambda p: _edit(p, W1=np.array([None, 1], dtype=object)), "W1 holds object data"),
    (lambda p: _edit(p, W1=np.zeros(3, dtype=[("a", "<f8")])), "W1 holds"),
    (lambda p: p.write_bytes(b"\0" * 4096), "not an .npz archive (it is all zeros)"),
    (lambda p: p.write_bytes(b""), "not an .npz archive (it is empty)"),
    (lambda p: p.write_bytes(b"\x93NUMPY not a zip"), "not an .npz archive"),
    (lambda p: (p.unlink(), p.symlink_to("/dev/zero")), "not a regular file"),
    (lambda p: (p.unlink(), p.mkdir()), "not a regular file"),
    (lambda p: os.truncate(p, 300), "is damaged"),
]


@pytest.mark.parametrize("craft,message", CRAFTED_MODELS, ids=[str(i) for i in range(len(CRAFTED_MODELS))])
def test_a_crafted_model_is_refused_by_eval_and_load(dense, craft, message):
    import nmfdnn
    from nmfdnn.errors import NmfdnnError

    craft(dense / "model.npz")
    before = tree_hash(dense)
    refused(["eval", dense], message)
    with pytest.raises(NmfdnnError, match=re.escape(message)):
        nmfdnn.load(dense)
    assert tree_hash(dense) == before


def test_arrays_larger_than_this_machine_are_refused_before_loading(monkeypatch, dense):
    """An honest (compressible) array of more bytes than are available: refused by its header."""
    from nmfdnn import memory

    monkeypatch.setattr(memory, "available_bytes", lambda: 1000)
    refused(["eval", dense], "its arrays need", "more than the")


@pytest.mark.parametrize("edit,message", [
    (lambda m: m.update(n_weights="2"), "n_weights '2'"),
    (lambda m: m.update(n_weights=10 ** 9), "n_weights 1000000000"),
    (lambda m: m.update(config=["a"]), "its config is a list"),
    (lambda m: m.pop("history"), "KeyError"),
])
def test_a_checkpoint_with_fields_of_the_wrong_type_is_refused(dense, edit, message):
    path = dense / "checkpoint.npz"
    z = dict(np.load(path))
    meta = json.loads(bytes(z["meta"]).decode())
    edit(meta)
    z["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **z)
    (dense / "metrics.json").unlink()  # as if killed: resume reads the checkpoint
    before = tree_hash(dense)
    refused(["resume", dense], "checkpoint.npz is damaged", message)
    assert tree_hash(dense) == before


def test_a_checkpoint_whose_meta_is_not_a_document_is_refused(dense):
    _edit(dense / "checkpoint.npz", meta=np.arange(5, dtype=np.int64))
    (dense / "metrics.json").unlink()
    refused(["resume", dense], "checkpoint.npz is damaged", "meta is not a byte string")
    _rewrite(dense / "checkpoint.npz", {"W1": _npy(header={"descr": "<f8", "fortran_order": False,
                                                           "shape": (10 ** 5, 10 ** 5)})})
    refused(["resume", dense], "checkpoint.npz is damaged", "W1 declares")


# -- nmfdnn.load checks the weights against the config -----------------------------------------------

@pytest.mark.parametrize("arrays,message", [
    ({"W1": np.ones((4, 10)), "W2": np.ones((3, 4))}, "W_1 has shape (4, 10), the network needs (20, 20)"),
    ({"W3": np.ones((3, 3))}, "3 weight matrices for 2 layers"),
    ({"W2": np.ones((5, 20))}, "W_2 has shape (5, 20), the network needs (3, 20)"),
    ({"W1": np.ones((20, 21)), "W2": np.ones((3, 21)), "bias": np.asarray(True)}, "bias True, the config says False"),
])
def test_load_refuses_weights_that_do_not_fit_the_config(dense, arrays, message):
    import nmfdnn
    from nmfdnn.errors import NmfdnnError

    _edit(dense / "model.npz", **arrays)
    with pytest.raises(NmfdnnError, match=re.escape(message)):
        nmfdnn.load(dense)


def test_load_checks_a_conv_net_too(conv):
    import nmfdnn
    from nmfdnn.errors import NmfdnnError

    est = nmfdnn.load(conv)
    assert est.predict(np.zeros((2, 64))).shape == (2,)
    _edit(conv / "model.npz", W1=np.ones((5, 9)))
    with pytest.raises(NmfdnnError, match=re.escape("W_1 has shape (5, 9), the network needs (4, 9)")):
        nmfdnn.load(conv)


# -- eval keeps the run's network ------------------------------------------------------------------

@pytest.mark.parametrize("which,overrides,message", [
    ("dense", ["conv=[{channels:4,kernel:3,pool:2}]", "dataset.image=[1,4,5]"], "conv: [] ->"),
    ("dense", ["activation=softplus", "activation_beta=0.001"], "activation: 'relu' -> 'softplus'"),
    ("dense", ["activation_beta=2"], "activation_beta: 1.0 -> 2.0"),
    ("dense", ["hidden=[30]"], "hidden: [20] -> [30]"),
    ("dense", ["dtype=float32"], "dtype: 'float64' -> 'float32'"),
    ("dense", ["solver.bias=true"], "solver.bias: False -> True"),
    ("dense", ["solver=bp"], "solver=bp"),
    ("dense", ["experiment=paper"], "would read"),
    ("conv", ["conv=[{channels:4,kernel:3,pool:1}]"], "conv: [{"),
    ("conv", ["activation=leaky_relu"], "activation: 'relu' -> 'leaky_relu'"),
])
def test_eval_refuses_overrides_of_network_keys(runs, tmp_path, which, overrides, message):
    d = tmp_path / which
    shutil.copytree(runs[which], d)
    code, _, err = cli(["eval", d])
    assert code == 0, err
    before = tree_hash(d)
    refused(["eval", d, *overrides], "nmfdnn eval:", message, "would read")
    assert tree_hash(d) == before  # eval.json as it was


def test_eval_may_change_the_data_and_the_run_s_own_values(dense):
    for overrides in (["dataset.n_test=50"], ["hidden=[20]", "activation=relu"], ["backend.threads=1"]):
        code, out, err = cli(["eval", dense, *overrides])
        assert code == 0, err
    assert json.loads((dense / "eval.json").read_text())["overrides"] == ["backend.threads=1"]


@pytest.mark.parametrize("overrides,message", [
    (["dataset.image=[1,10,10]"], "the model takes 1 x 8 x 8 images, data set synthetic has 1 x 10 x 10 ones"),
    (["dataset.image=[2,8,8]"], "the model takes 1 x 8 x 8 images, data set synthetic has 2 x 8 x 8 ones"),
    (["dataset.n_classes=5"], "does not fit data set synthetic"),
    (["dataset=idx", "dataset.train_images=/nonexistent", "dataset.train_labels=/x", "dataset.test_images=/x",
      "dataset.test_labels=/x"], "/nonexistent"),
])
def test_eval_on_other_data_names_the_data_not_a_damaged_model(conv, overrides, message):
    line = refused(["eval", conv, *overrides], message)
    assert "remove it" not in line and "Key '" not in line


def test_eval_of_a_conv_run_on_another_data_set_names_the_shapes(conv, mnist_data_dir):
    if not (Path(mnist_data_dir) / "mnist" / "t10k-labels-idx1-ubyte").exists():
        pytest.skip("MNIST is not in the cache")
    refused(["eval", conv, "dataset=mnist", f"dataset.data_dir={mnist_data_dir}"],
            "the model takes 1 x 8 x 8 images, data set mnist has 1 x 28 x 28 ones")


def test_a_model_that_is_a_link_to_a_device_is_not_called_missing(dense):
    (dense / "model.npz").unlink()
    (dense / "model.npz").symlink_to("/dev/zero")
    line = refused(["eval", dense], "not a regular file")
    assert "missing" not in line
    (dense / "model.npz").unlink()
    refused(["eval", dense], "model.npz missing")


# -- the estimators carry every activation key ----------------------------------------------------------

def test_the_estimators_take_and_keep_the_activation_parameters(tmp_path):
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    import nmfdnn

    est = nmfdnn.NMFNetClassifier(hidden=(8,), epochs=1, activation="softplus", activation_beta=2.5,
                                  activation_slope=0.2, activation_cap=3.0)
    params = clone(est).get_params()
    assert (params["activation_beta"], params["activation_slope"], params["activation_cap"]) == (2.5, 0.2, 3.0)
    rng = np.random.default_rng(0)
    X, y = rng.random((120, 6)), np.arange(120) % 3
    est.fit(X, y)
    assert est.config_.activation_beta == 2.5
    bp = nmfdnn.BPNetClassifier(hidden=(8,), epochs=1, activation="capped_relu", activation_cap=2.0).fit(X, y)
    assert bp.config_.activation_cap == 2.0
    d = tmp_path / "run"
    code, _, err = cli(["train", *B, "activation=leaky_relu", "activation_slope=0.3", f"hydra.run.dir={d}"])
    assert code == 0, err
    loaded = nmfdnn.load(d)
    assert loaded.activation == "leaky_relu" and clone(loaded).get_params()["activation_slope"] == 0.3
    with pytest.raises(ValueError, match="activation_slope must be in"):
        nmfdnn.NMFNetClassifier(hidden=(8,), epochs=1, activation="leaky_relu", activation_slope=3).fit(X, y)


# -- unused keys warn once -------------------------------------------------------------------------

@pytest.mark.parametrize("extra,warning", [
    (["activation_beta=2"], "activation_beta=2 has no effect: activation=relu"),
    (["activation=softplus", "activation_cap=3"], "activation_cap=3 has no effect: activation=softplus"),
    (["solver.cg_iters=20"], "solver.cg_iters=20 has no effect"),
    (["dataset.val_seed=3"], "dataset.val_seed=3 has no effect"),
    (["dataset.image=[1,8,8]", "dataset.n_features=30"], "dataset.n_features=30 has no effect"),
])
def test_keys_without_effect_are_said_once(caplog, extra, warning):
    import logging

    from nmfdnn.config import validate

    cfg = compose_train([*B, *extra])
    with caplog.at_level(logging.WARNING):
        validate(cfg)
        assert warning not in caplog.text  # before the data: nothing yet
        validate(cfg, n_train=600)
    assert caplog.text.count(warning) == 1


def test_activation_values_within_the_dtype_pass():
    from nmfdnn.config import validate

    for extra in (["activation=softplus", "activation_beta=1e-5"], ["activation=softplus", "activation_beta=1e6",
                                                                   "dtype=float32"],
                  ["activation=capped_relu", "activation_cap=1e3"], ["activation=leaky_relu", "activation_slope=1e-300"]):
        validate(compose_train([*B, *extra]))


# -- interrupts: one line, exit 130, no temporary file ---------------------------------------------

def test_an_interrupted_cifar10_install_leaves_no_partial_file(monkeypatch, tmp_path):
    import tarfile

    from nmfdnn.data import cifar10

    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w") as tar:
        for name in cifar10.BIN_FILES:
            info = tarfile.TarInfo(f"{cifar10.BIN_FOLDER}/{name}")
            info.size = 1 << 20
            tar.addfile(info, io.BytesIO(b"\0" * info.size))
    folder = tmp_path / "out"
    folder.mkdir()

    def interrupted(src, dst, *_):
        dst.write(src.read(4096))
        raise KeyboardInterrupt

    monkeypatch.setattr(cifar10.shutil, "copyfileobj", interrupted)
    with tarfile.open(archive) as tar, pytest.raises(KeyboardInterrupt):
        cifar10._install_members(tar, cifar10.BIN_FOLDER, folder, list(cifar10.BIN_FILES))
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("how", ["keyboard", "sigterm"])
def test_an_interrupted_fetch_is_one_line_and_130(monkeypatch, tmp_path, how):
    from nmfdnn.data import cifar10

    def stopped(*_a, **_k):
        if how == "sigterm":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
        raise KeyboardInterrupt

    monkeypatch.setattr(cifar10, "fetch_cifar10", stopped)
    before = signal.getsignal(signal.SIGTERM)
    refused(["fetch", "cifar10", f"data_dir={tmp_path}"], "interrupted", expect=130)
    assert signal.getsignal(signal.SIGTERM) == before and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("delay", [0.15, 0.4])
def test_sigint_while_the_console_script_starts_is_one_line(tmp_path, delay):
    """The console script interrupted while it imports, before any run: one line, exit 130."""
    p = subprocess.Popen([*nmfdnn_command(), "train", *B, f"hydra.run.dir={tmp_path / 'r'}"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env_without_full_error(),
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    if p.returncode == 0:
        pytest.skip("the run finished before the signal")
    if "init_import_site" in err:  # a slow start: the signal came while Python imported site, before our code
        pytest.skip("the signal arrived during the interpreter's own start-up (site import), before nmfdnn's code")
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert p.returncode == 130 and "Traceback" not in err, err
    assert [ln for ln in lines if "error" in ln][-1].startswith("nmfdnn: error: interrupted")


# -- resume says what it does ------------------------------------------------------------------------

def test_resume_restores_a_missing_model_from_the_final_checkpoint(dense):
    with np.load(dense / "model.npz") as z:
        original = {k: z[k] for k in z.files}
    (dense / "model.npz").unlink()
    code, out, err = cli(["resume", dense])
    assert code == 0, err
    assert "model.npz was missing; restored from the final checkpoint (epoch 2)" in err + out
    with np.load(dense / "model.npz") as z:
        assert set(z.files) == set(original) and all(np.array_equal(z[k], original[k]) for k in z.files)
    code, out, err = cli(["eval", dense])
    assert code == 0, err


def test_resume_says_when_the_model_cannot_be_restored(dense):
    (dense / "model.npz").unlink()
    (dense / "checkpoint.npz").unlink()
    code, out, err = cli(["resume", dense])
    assert code == 0, err
    assert "model.npz is missing and there is no checkpoint.npz to restore it from" in err + out
    assert not (dense / "model.npz").exists()


@pytest.mark.parametrize("extra,why", [([], "its checkpoint.npz is missing"), (["checkpoint=false"], "checkpoint=false")])
def test_resume_of_an_interrupted_run_without_checkpoint_says_it_starts_over(dense, extra, why):
    metrics = json.loads((dense / "metrics.json").read_text())
    (dense / "metrics.json").write_text(json.dumps({**metrics, "status": "interrupted"}))
    if not extra:
        (dense / "checkpoint.npz").unlink()
    code, out, err = cli(["resume", dense, *extra])
    assert code == 0, err
    assert f"nothing to resume from ({why}): training from the start, epoch 0" in err + out
    assert json.loads((dense / "metrics.json").read_text())["status"] == "finished"


# -- tools under mpiexec: rank 0 alone --------------------------------------------------------------

def test_a_tool_on_a_rank_other_than_0_does_nothing(monkeypatch, dense):
    (dense / "eval.json").unlink(missing_ok=True)
    monkeypatch.setenv("PMI_SIZE", "2")
    monkeypatch.setenv("PMI_RANK", "1")
    for args in (["eval", dense], ["report", dense], ["fetch", "mnist", "data_dir=/nonexistent/x"]):
        code, out, err = cli(args)
        assert (code, out, err) == (0, "", "")
    assert not (dense / "eval.json").exists()
    monkeypatch.setenv("PMI_RANK", "0")
    code, out, err = cli(["eval", dense])
    assert code == 0 and (dense / "eval.json").exists()


def _mpiexec():
    exe = Path(sys.executable).parent / "mpiexec"
    exe = str(exe) if exe.exists() else shutil.which("mpiexec")
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        exe = None
    if exe is None:
        pytest.skip("no mpiexec and mpi4py")
    return exe


def test_eval_under_mpiexec_prints_once(dense):
    r = subprocess.run([_mpiexec(), "-n", "2", *nmfdnn_command(), "eval", str(dense)], capture_output=True, text=True,
                       timeout=300, env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("train error") == 1


MPI_MEMORY = """
import sys
import nmfdnn.train
from nmfdnn.parallel import world

def fit(*a, **k):
    if world().rank in {ranks}:
        raise MemoryError("Unable to allocate 80.0 GiB")
    world().any(False)  # the other rank waits in a collective
    raise AssertionError("not reached")

nmfdnn.train.fit = fit
from nmfdnn.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("ranks,prefix", [("(0, 1)", "nmfdnn: error: out of memory"),
                                          ("(1,)", "nmfdnn: error: rank 1: out of memory")])
def test_an_allocation_that_fails_under_mpiexec_is_one_line(tmp_path, ranks, prefix):
    script = tmp_path / "run.py"
    script.write_text(MPI_MEMORY.format(ranks=ranks))
    r = subprocess.run([_mpiexec(), "-n", "2", sys.executable, str(script), "train", *B,
                        f"hydra.run.dir={tmp_path / 'r'}"], capture_output=True, text=True, timeout=300,
                       env=env_without_full_error())
    errors = [ln for ln in r.stderr.splitlines() if "error" in ln.lower() or "abort" in ln.lower()]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and errors[0].startswith(prefix), r.stderr  # the log's INFO lines aside


def test_an_interrupt_whose_clean_up_fails_is_still_an_interrupt(monkeypatch):
    """A SIGINT during composition whose context manager then fails on the half-built config (seen under
    load: "'NoneType' object has no attribute '_invalidate_flags_cache'") is an interrupt, not a refusal."""
    import hydra

    from nmfdnn.config import compose_config

    def compose(*args, **kwargs):  # noqa: ARG001
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise AttributeError("'NoneType' object has no attribute '_invalidate_flags_cache'") from None

    monkeypatch.setattr(hydra, "compose", compose)
    with pytest.raises(KeyboardInterrupt):
        compose_config(["dataset=synthetic"], check=False)
