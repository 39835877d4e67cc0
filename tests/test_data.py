"""IDX reading, validation and the fetch order (cache, mirror, error), on files the tests write."""

import gzip
import hashlib
import struct

import numpy as np
import pytest

from nmfdnn.data.fetch import fetch_files
from nmfdnn.data.idx import idx_pair, parse_idx, read_idx
from nmfdnn.data.mnist import load_idx_pair
from nmfdnn.errors import DataFormatError, NmfdnnError


def idx_bytes(arr: np.ndarray) -> bytes:
    code = {np.dtype(np.uint8): 0x08}[arr.dtype]
    return bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def write_pair(tmp_path, n=20, prefix="train", gz=False, labels=None):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(n, 4, 5), dtype=np.uint8)
    labs = rng.integers(0, 10, size=n).astype(np.uint8) if labels is None else labels
    paths = []
    for name, arr in (("images", imgs), ("labels", labs)):
        p = tmp_path / (f"{prefix}-{name}" + (".gz" if gz else ""))
        data = idx_bytes(arr)
        p.write_bytes(gzip.compress(data) if gz else data)
        paths.append(p)
    return paths, imgs, labs


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    (pi, pl), imgs, labs = write_pair(tmp_path, gz=gz)
    np.testing.assert_array_equal(read_idx(pi), imgs)
    np.testing.assert_array_equal(read_idx(pl), labs)


def test_idx_pair_gives_features_by_samples_in_unit_interval(tmp_path):
    (pi, pl), imgs, labs = write_pair(tmp_path)
    X, y, scale = idx_pair(read_idx(pi), read_idx(pl), "t")
    assert X.shape == (20, 20) and scale == 255.0
    np.testing.assert_array_equal(X[:, 3], imgs[3].ravel())
    ds = load_idx_pair(pi, pl, pi, pl)
    assert ds.train.X.shape == (20, 20) and ds.train.X.max() <= 1.0 and ds.train.X.min() >= 0.0


@pytest.mark.parametrize("mutate,message", [
    (lambda b: b"\x01" + b[1:], "bad magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX data type"),
    (lambda b: b[:-1], "truncated"),
    (lambda b: b + b"\x00", "trailing bytes"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2], "truncated IDX header"),
])
def test_malformed_idx_is_a_data_format_error(mutate, message):
    good = idx_bytes(np.zeros((3, 2, 2), np.uint8))
    with pytest.raises(DataFormatError, match=message):
        parse_idx(mutate(good))


def test_label_count_mismatch_and_range(tmp_path):
    (pi, _), _, _ = write_pair(tmp_path, n=20)
    with pytest.raises(DataFormatError, match="20 images but t holds 19 labels"):
        idx_pair(read_idx(pi), np.zeros(19, np.uint8), "t")
    with pytest.raises(DataFormatError, match="labels out of range"):
        idx_pair(read_idx(pi), np.full(20, 12, np.uint8), "t")


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_idx(tmp_path / "nope")


def _digest(b):
    return hashlib.sha256(b).hexdigest()


def test_fetch_from_mirror_verifies_and_caches(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    payload = b"hello idx"
    (mirror / "f.gz").write_bytes(gzip.compress(payload))
    cache = tmp_path / "cache"
    got = fetch_files({"f": _digest(payload)}, cache, [mirror.as_uri() + "/"], npm_package=None)
    assert got["f"].read_bytes() == payload
    (mirror / "f.gz").unlink()  # second call: served from the cache alone
    assert fetch_files({"f": _digest(payload)}, cache, [mirror.as_uri() + "/"], npm_package=None)["f"] == cache / "f"


def test_fetch_checksum_mismatch_deletes_and_errors(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.gz").write_bytes(gzip.compress(b"corrupt"))
    cache = tmp_path / "cache"
    with pytest.raises(NmfdnnError, match=r"cannot obtain .* files f .*put them .* in") as exc:
        fetch_files({"f": _digest(b"good")}, cache, [mirror.as_uri() + "/"], npm_package=None)
    assert "wrong checksum and were deleted" in str(exc.value)
    assert not list(cache.iterdir())  # neither the bad file nor a temporary one is left


def test_fetch_replaces_a_corrupt_cached_file(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "f.gz").write_bytes(gzip.compress(b"good"))
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "f").write_bytes(b"bitrot")
    assert fetch_files({"f": _digest(b"good")}, cache, [mirror.as_uri() + "/"], npm_package=None)["f"].read_bytes() \
        == b"good"


def test_failed_mirrors_are_one_log_line_per_file_set(tmp_path, caplog):
    """Three files, two unreachable mirrors, one working one: one summary line, not six; the sources
    tried are DEBUG lines (``nmfdnn fetch --verbose``), the line a user sees says what came from where."""
    import logging

    good = tmp_path / "good"
    good.mkdir()
    files = {}
    for name in ("a", "b", "c"):
        (good / f"{name}.gz").write_bytes(gzip.compress(name.encode()))
        files[name] = _digest(name.encode())
    dead = [(tmp_path / "nowhere1").as_uri() + "/", (tmp_path / "nowhere2").as_uri() + "/"]
    with caplog.at_level(logging.DEBUG, logger="nmfdnn"):
        with pytest.raises(NmfdnnError, match=r"cannot obtain TEST files a, b, c \(mirrors unreachable\)"):
            fetch_files(files, tmp_path / "cache", dead, npm_package=None, what="TEST")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and lines[0].startswith("TEST: 3 file(s) not obtained from") and "nowhere2" in lines[0]
    assert caplog.records[0].levelno == logging.DEBUG  # shown with --verbose only
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nmfdnn"):
        got = fetch_files(files, tmp_path / "cache", dead + [good.as_uri() + "/"], npm_package=None, what="TEST")
    assert sorted(got) == ["a", "b", "c"]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"TEST: fetched 3 file(s) from {good.as_uri()}/ into ") and "nowhere" not in line
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nmfdnn"):  # all cached: nothing to say
        fetch_files(files, tmp_path / "cache", dead, npm_package=None, what="TEST")
    assert not caplog.records


def test_fetch_uses_a_gz_the_user_put_in_the_cache(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "f.gz").write_bytes(gzip.compress(b"payload"))
    assert fetch_files({"f": _digest(b"payload")}, cache, [], None)["f"].read_bytes() == b"payload"


def test_data_dir_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(NmfdnnError, match="cannot create data directory"):
        fetch_files({"f": "0"}, blocker / "sub", [], None)


def test_fetch_says_one_short_line(mnist_data_dir, tmp_path):
    """``nmfdnn fetch``: one line (the data set verified in its folder) when everything is cached; the
    sources tried appear only with --verbose."""
    from nmfdnn.data.mnist import fetch_mnist

    from util import cli

    (tmp_path / "d" / "mnist").mkdir(parents=True)
    for name, path in fetch_mnist(mnist_data_dir).items():
        (tmp_path / "d" / "mnist" / name).symlink_to(path)
    code, out, err = cli(["fetch", "mnist", f"data_dir={tmp_path / 'd'}"])
    assert code == 0 and out.strip() == f"mnist verified in {tmp_path / 'd' / 'mnist'} (cached)" and not err.strip()
    code, out, err = cli(["fetch", "--verbose", "mnist", f"data_dir={tmp_path / 'd'}"])
    assert code == 0 and "every file verified in the cache" in err
