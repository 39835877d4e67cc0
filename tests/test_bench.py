"""nmfdnn bench: GEMM rate, FLOP model, bench.json."""

import json
import subprocess

import pytest
from omegaconf import OmegaConf

from util import env_without_full_error, nmfdnn_command
from nmfdnn.tools.bench import gemm_rate, nmf_phase_flops
from nmfdnn.config import NMFSolverConfig


def test_gemm_rate_is_positive():
    assert gemm_rate("float64", n=300, repeats=2) > 0.1


def test_flop_model_scales_with_its_inputs():
    sol = OmegaConf.structured(NMFSolverConfig())
    base = nmf_phase_flops([784, 1000, 500, 10], 60000, 5000, 91, sol, 5000)
    twice = nmf_phase_flops([784, 1000, 500, 10], 120000, 5000, 91, sol, 5000)
    for k in ("forward", "semi_nmf", "pinv", "alg2", "alg3", "batch_pinv"):
        assert twice[k] == pytest.approx(2 * base[k])
    sol.lsq_iters = 3
    more = nmf_phase_flops([784, 1000, 500, 10], 60000, 5000, 91, sol, 5000)
    assert more["alg3"] == pytest.approx(3 * base["alg3"])
    # Algorithm 2, hand-counted per batch for [784,1000,500,10], b = 5000, r = 91, Cholesky route:
    # layer 2 per iteration R Z_1^T (2*500*1000*b) + two triangular solves (2*500*1000^2), plus
    # X A for the iterations after the first (whose residual is the forward pass's);
    # layer 1 carries X_s A: U^T A (2*91*784*b) + X_0 A (2*1000*784*b) + per iteration R P
    # (2*1000*b*91) and T U^T (2*1000*91*784), + T (U^T A) (2*1000*91*b) for all but the last.
    b, r = 5000, 91
    layer2 = 3 * (2 * 500 * 1000 * b + 2 * 500 * 1000 ** 2) + 2 * (2 * 500 * 1000 * b)
    layer1 = 2 * r * 784 * b + 2 * 1000 * 784 * b + 3 * (2 * 1000 * b * r + 2 * 1000 * r * 784) + 2 * (2 * 1000 * r * b)
    assert more["alg2"] == pytest.approx(12 * (layer2 + layer1))
    assert base["alg2"] == pytest.approx(12 * (2 * 500 * 1000 * b + 2 * 500 * 1000 ** 2
                                               + 2 * 1000 * b * r + 2 * 1000 * r * 784))
    # forward of one epoch: 2 * (1000*784 + 500*1000) * 60000
    assert base["forward"] == pytest.approx(2 * (1000 * 784 + 500 * 1000) * 60000)
    shallow = nmf_phase_flops([784, 500, 10], 60000, 5000, 91, sol, 5000)
    assert shallow["alg3"] == 0 and shallow["pinv"] == 0


def test_bench_command_writes_json(tmp_path):
    r = subprocess.run(nmfdnn_command() + ["bench", "--gemm-size", "300", "dataset=synthetic", "hidden=[32,16]", "solver.batch_size=300",
                                           "solver.ae_samples=300", "solver.ae_iters=1"],
                       cwd=tmp_path, capture_output=True, text=True, env=env_without_full_error(), timeout=300)
    assert r.returncode == 0, r.stderr
    (f,) = list((tmp_path / "outputs" / "bench").glob("*/bench.json"))
    b = json.loads(f.read_text())
    assert b["gemm_gflops"] > 0 and b["epochs"] == 1 and b["peak_rss_gib"] > 0
    assert b["phases"]["alg2"]["gflop"] > 0 and b["phases"]["alg2"]["seconds"] > 0
    assert 0 < b["finetune_ratio_to_gemm"]


def test_bench_out_dir_and_table(tmp_path):
    for h in ("[8]", "[16,8]"):
        r = subprocess.run(nmfdnn_command() + ["bench", "--gemm-size", "300", "--out", str(tmp_path / h), "dataset=synthetic", f"hidden={h}",
                                               "solver.batch_size=300", "solver.ae_samples=300", "solver.ae_iters=1"],
                           capture_output=True, text=True, env=env_without_full_error(), timeout=300)
        assert r.returncode == 0, r.stderr
    r = subprocess.run(nmfdnn_command() + ["bench", "--table", str(tmp_path)], capture_output=True, text=True,
                       env=env_without_full_error())
    lines = r.stdout.strip().splitlines()
    assert r.returncode == 0 and len(lines) == 4
    assert lines[2].startswith("| 8 | 300 | float64 |") and lines[3].startswith("| 16-8 | 300 | float64 |")


def test_bench_tta_command(tmp_path):
    """Time to accuracy through the console script: one NMF and one backprop run on synthetic data, a
    target both reach, then a target that cannot be reached."""
    common = ["dataset=synthetic", "hidden=[16]", "solver.batch_size=200", "solver.ae_samples=200", "epochs=40"]
    r = subprocess.run(nmfdnn_command() + ["bench", "--gemm-size", "300", "--tta", "--target", "60", "--runs",
                                           "nmf:float64,bp:float32", "--repeats", "2", "--out", str(tmp_path / "a"),
                                           *common],
                       capture_output=True, text=True, env=env_without_full_error(), timeout=300)
    assert r.returncode == 0, r.stderr
    t = json.loads((tmp_path / "a" / "tta.json").read_text())
    # two interleaved rounds: nmf, bp, nmf, bp
    assert [(x["solver"], x["dtype"], x["round"]) for x in t["runs"]] == [
        ("nmf", "float64", 0), ("bp", "float32", 0), ("nmf", "float64", 1), ("bp", "float32", 1)]
    for x in t["runs"]:
        assert x["reached"] and x["test_error"] < 60 and x["seconds"] >= x["pretrain_seconds"] > 0
        secs = [p["seconds"] for p in x["curve"]]
        assert secs == sorted(secs) and x["curve"][-1]["test_error"] == x["test_error"]
        assert all(p["test_error"] >= 60 for p in x["curve"][:-1])  # stops at the first crossing
    nmf, bp = t["summary"]
    assert nmf["rounds"] == nmf["reached"] == 2 and len(nmf["seconds"]) == 2
    assert min(nmf["seconds"]) <= nmf["median_seconds"] <= max(nmf["seconds"])
    assert bp["ratio_to_bp"] == 1.0 and nmf["ratio_to_bp"] == pytest.approx(nmf["median_seconds"] / bp["median_seconds"])
    assert set(t["gemm_gflops"]) == {"float32", "float64"}
    r = subprocess.run(nmfdnn_command() + ["bench", "--gemm-size", "300", "--tta", "--target", "0", "--runs", "nmf:float64",
                                           "--out", str(tmp_path / "b"), *common[:-1], "epochs=1"],
                       capture_output=True, text=True, env=env_without_full_error(), timeout=300)
    assert r.returncode == 0, r.stderr
    t = json.loads((tmp_path / "b" / "tta.json").read_text())
    (x,) = t["runs"]
    assert not x["reached"] and x["seconds"] is None and x["curve"][-1]["epochs"] == 1.0
    assert t["summary"][0]["median_seconds"] is None and "reached in 0 of 1" in r.stdout


def test_bench_tta_bad_options():
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--target", "abc"], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "--target: invalid float value: 'abc'" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(nmfdnn_command() + ["bench", "--frobnicate"], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "unrecognized arguments: --frobnicate" in r.stderr
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--repeats", "0"], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "--repeats take positive integers" in r.stderr


def test_shape_rates_lists_the_products_of_each_layer():
    from nmfdnn.tools.bench import shape_rates

    r = shape_rates([20, 10], 30, 200, "float32", gemm_n=100, repeats=1)
    assert r["gemm_gflops"] > 0 and len(r["products"]) == 8
    assert r["products"][0]["product"].startswith("W_1 Z_0  (20x30 by 30x200)")
    assert all(p["gflops"] > 0 and p["ratio_to_gemm"] > 0 for p in r["products"])
