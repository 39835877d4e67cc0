"""CIFAR-10 (python pickle) and Fashion-MNIST (IDX, MD5-verified .gz), on files the tests write."""

import gzip
import hashlib
import pickle

import numpy as np
import pytest

from util import compose_train
from nmfdnn.data import load_dataset
from nmfdnn.data.cifar10 import BATCHES, load_cifar10, read_batch
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
    (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "out of range"),
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
