"""Checkpoint/resume, interrupts, numerical guards, and fuzzing of the IDX reader."""

import json
import signal
import struct
import subprocess
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmfdnn.maint import kill_resume  # an operator tool (make kill-resume)
from util import compose_train, env_without_full_error, nmfdnn_command
from nmfdnn.data.idx import parse_idx
from nmfdnn.errors import DataFormatError, NumericalError
from nmfdnn.events import Listener
from nmfdnn.train import Interrupted, StopFlag, fit, run



class StopAt(Listener):
    """Requests a stop after batch ``batch`` of epoch ``epoch`` (as a signal handler would)."""

    def __init__(self, flag, epoch, batch):
        self.flag, self.epoch, self.batch = flag, epoch, batch

    def batch_done(self, epoch, b, Ws):  # noqa: ARG002
        if epoch == self.epoch and b == self.batch:
            self.flag.requested, self.flag.signal = True, "SIGTERM"


def history_key(hist):
    return [(r["epoch"], r["train_error"], r["test_error"], r["objective"]) for r in hist]


@pytest.mark.parametrize("solver", ["nmf", "bp"])
@pytest.mark.parametrize("where", [(2, 2), (1, 5), (3, 5)])
def test_interrupt_mid_epoch_then_resume_is_identical(tmp_path, solver, where, small_bp, small_nmf):
    from nmfdnn.data import load_dataset

    cfg = compose_train(small_bp if solver == "bp" else small_nmf)
    data = load_dataset(cfg.dataset)
    ref = fit(cfg, data, run_dir=tmp_path / "ref")
    stop = StopFlag()
    with pytest.raises(Interrupted, match=f"epoch {where[0]} after batch {where[1] + 1}"):
        fit(cfg, data, listeners=[StopAt(stop, *where)], run_dir=tmp_path / "cut", stop=stop)
    cfg.resume = True
    resumed = fit(cfg, data, run_dir=tmp_path / "cut")
    assert history_key(resumed.history) == history_key(ref.history)
    assert all(np.array_equal(a, b) for a, b in zip(resumed.weights, ref.weights))


def test_resume_rejects_another_config(tmp_path, small_nmf):
    from nmfdnn.data import load_dataset
    from nmfdnn.errors import NmfdnnError

    cfg = compose_train(small_nmf)
    fit(cfg, load_dataset(cfg.dataset), run_dir=tmp_path)
    other = compose_train(small_nmf + ["seed=5", "resume=true"])
    with pytest.raises(NmfdnnError, match="another config.*seed"):
        fit(other, load_dataset(other.dataset), run_dir=tmp_path)


def test_resume_of_finished_run_is_a_noop(tmp_path, small_nmf):
    cfg = compose_train(small_nmf)
    first = run(cfg, tmp_path)
    stamp = (tmp_path / "metrics.json").stat().st_mtime_ns
    cfg.resume = True
    again = run(cfg, tmp_path)
    assert again["test_error"] == first["test_error"]
    assert (tmp_path / "metrics.json").stat().st_mtime_ns == stamp


def test_numerical_guard_names_layer_and_writes_no_weights(tmp_path, monkeypatch, small_nmf):
    import nmfdnn.method.finetune as ft

    real = ft.alg3_left

    def poisoned(bk, B, A, *args, **kw):
        out = real(bk, B, A, *args, **kw)
        out[0, 0] = np.nan
        return out

    monkeypatch.setattr(ft, "alg3_left", poisoned)
    cfg = compose_train(small_nmf)
    with pytest.raises(NumericalError, match=r"Z_hat_1 after Algorithm 3.*solver.omega"):
        run(cfg, tmp_path)
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["status"] == "failed" and "Algorithm 3" in m["error"]
    assert not (tmp_path / "model.npz").exists()
    with np.load(tmp_path / "checkpoint.npz") as z:  # only the finite pre-training state was saved
        assert all(np.isfinite(z[k]).all() for k in z.files if k.startswith("W"))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_checkpoints_and_exits_nonzero(tmp_path, sig):
    run_dir = tmp_path / "run"
    args = kill_resume.train_args("nmf", run_dir)
    p = subprocess.Popen(nmfdnn_command() + args, env=env_without_full_error(), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run_dir / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("nmfdnn: error:")]
    assert len(lines) == 1 and "interrupted" in lines[0] and "nmfdnn resume" in lines[0]
    m = json.loads((run_dir / "metrics.json").read_text())
    assert m["status"] == "interrupted" and not (run_dir / "model.npz").exists()
    r = subprocess.run(nmfdnn_command() + ["resume", str(run_dir)], env=env_without_full_error(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.slow
@pytest.mark.parametrize("solver,trials", [("nmf", 4), ("bp", 2)])
def test_sigkill_at_random_points_then_resume_is_identical(solver, trials):
    results = kill_resume.run_trials(solver, trials)
    assert all(r["identical"] for r in results), results
    assert any(r["had_checkpoint"] for r in results), results  # at least one resume continued a run


# -- fuzzing the IDX reader ----------------------------------------------------------------------

def _valid(code, shape, body_len=None):
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}[code]
    n = int(np.prod(shape)) * itemsize
    return bytes([0, 0, code, len(shape)]) + struct.pack(f">{len(shape)}I", *shape) + b"\x07" * (
        n if body_len is None else body_len)


def _check(buf):
    try:
        arr = parse_idx(buf)
    except DataFormatError:
        return
    ndim = buf[3]
    shape = struct.unpack(f">{ndim}I", buf[4:4 + 4 * ndim])
    assert arr.shape == shape


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=64))
def test_fuzz_random_bytes(buf):
    _check(buf)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]),
       shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
       pos=st.integers(0, 200), byte=st.integers(0, 255), cut=st.integers(-3, 3))
def test_fuzz_mutated_headers_and_bodies(code, shape, pos, byte, cut):
    good = _valid(code, tuple(shape))
    _check(good)
    mutated = bytearray(good)
    if pos < len(mutated):
        mutated[pos] = byte
    mutated = bytes(mutated[:len(mutated) + cut]) if cut < 0 else bytes(mutated) + b"\x00" * cut
    _check(mutated)
