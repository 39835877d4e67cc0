"""nmfdnn bench: GEMM rate, FLOP model, bench.json."""

import json
import math
import subprocess

import pytest
from omegaconf import OmegaConf

import numpy as np

from util import compose_train, env_without_full_error, nmfdnn_command
from nmfdnn.backend import get_backend
from nmfdnn.config import NMFSolverConfig, Pinv
from nmfdnn.method.autoencoder import pretrain
from nmfdnn.method.finetune import finetune_epoch
from nmfdnn.method.layers import build
from nmfdnn.method.settings import NMFSettings
from nmfdnn.method.linalg import input_svd
from nmfdnn.tools.machine import gemm_rate
from nmfdnn.tools.flops import PhaseFlops, counting_backend
from nmfdnn.trainers import batches_for_epoch


def test_gemm_rate_is_positive():
    # no speed threshold: a loaded machine may deschedule the product for any time (flaky when it had one)
    rate = gemm_rate("float64", n=300, repeats=2)
    assert math.isfinite(rate) and rate > 0


def _counted_epoch(hidden, pinv, bias, input_pinv="chol", L=2, n_in=40, m=1200, b=300, n_out=5):
    """One pre-training and one epoch of fine-tuning on the counting backend; the FLOPs per phase."""
    rng = np.random.default_rng(0)
    bk = counting_backend(get_backend("numpy", "float64"))
    X = bk.asarray(rng.random((n_in, 9)) @ rng.random((9, m)) + 1e-3 * rng.random((n_in, m)))
    Y = bk.asarray(np.eye(n_out)[:, rng.integers(0, n_out, m)])
    sol = OmegaConf.structured(NMFSolverConfig(pinv=pinv, bias=bias, input_pinv=input_pinv, lsq_iters=L, batch_size=b,
                                               ae_samples=400, input_threshold=1e-2, ae_iters=2))
    counter = PhaseFlops(bk)
    with counter.counting():
        xsvd = input_svd(bk, X, sol.input_threshold, bias)
        J = np.sort(rng.choice(m, sol.ae_samples, replace=False))
        net = build(n_in, n_out, bias=bias, hidden=hidden)
        Ws = pretrain(bk, net, X, Y, J, xsvd, NMFSettings.from_mapping(sol), rng, counter)
        finetune_epoch(bk, net, Ws, X, Y, xsvd, batches_for_epoch(m, b, rng), NMFSettings.from_mapping(sol), counter)
    return counter.flops, xsvd.rank


@pytest.mark.parametrize("hidden", [[30], [30, 20], [30, 25, 20]], ids=["1 hidden", "2 hidden", "3 hidden"])
@pytest.mark.parametrize("bias", [False, True], ids=["no bias", "bias"])
@pytest.mark.parametrize("pinv", [p.value for p in Pinv])
def test_counted_flops_follow_the_code_path(hidden, bias, pinv):
    """Every route (pseudo-inverse, bias, depth) is counted where its products are known exactly:
    the forward pass ``2 sum n_i n_{i-1} m`` and Algorithm 3's ``4 L n_i n_{i-1} b`` per layer and batch
    (bias columns are added, not multiplied); every phase that multiplies is counted."""
    L, m, b, n = 2, 1200, 300, [40, *hidden, 5]
    flops, rank = _counted_epoch(hidden, pinv, bias, L=L, m=m, b=b)
    d = len(n) - 1
    assert flops["forward"] == sum(2 * n[i] * n[i - 1] * m for i in range(1, d))
    assert flops.get("alg3", 0) == sum(4 * L * n[i] * n[i - 1] * m for i in range(2, d))
    for phase in ("semi_nmf", "alg2", "batch_pinv", "ae_nmf", "ae_alg2", "ae_pinv", "other"):  # other: input SVD
        assert flops[phase] > 0, phase
    assert (flops.get("pinv", 0) > 0) == (d > 2)
    # the batch input pseudo-inverse by Cholesky: Gram r^2 b, factor r^3/3, solve 2 r^2 b, per batch
    r = rank
    assert flops["batch_pinv"] == pytest.approx((m // b) * (r * r * b + r ** 3 / 3 + 2 * r * r * b))


def test_counted_flops_of_one_pseudo_inverse_by_hand():
    """``R A^dagger`` by Cholesky for a p x m matrix A and a q x m residual: the Gram product
    ``p^2 m``, the factorisation ``p^3/3``, then ``R A^T`` (``2 q p m``) and two triangular solves
    (``2 q p^2``); by the Gram route the eigendecomposition counts nothing."""
    from nmfdnn.method.linalg import right_pinv

    p_, m, q = 30, 200, 7
    rng = np.random.default_rng(1)
    bk = counting_backend(get_backend("numpy", "float64"))
    A, R = bk.asarray(rng.random((p_, m))), bk.asarray(rng.random((q, m)))
    for route, expected in (("chol", p_ * p_ * m + p_ ** 3 / 3 + 2 * q * p_ * m + 2 * q * p_ * p_),
                            ("gram", p_ * p_ * m + 2 * q * m * p_ + 2 * q * p_ * p_ + 2 * q * p_ * p_)):
        counter = PhaseFlops(bk)
        with counter.counting(), counter("x"):
            right_pinv(bk, A, 1e-14, route).apply(R)
        assert counter.flops["x"] == pytest.approx(expected), route


def test_literal_slice_costs_no_factorisation():
    flops, _ = _counted_epoch([30, 20], "chol", False, input_pinv="literal")
    assert flops.get("batch_pinv", 0) == 0


@pytest.mark.parametrize("solver", ["nmf", "bp"])
def test_counting_backend_gives_the_same_run(solver):
    """bench's counted run is the real run: the same weights, bit for bit."""
    from nmfdnn.data import load_dataset
    from nmfdnn.tools.bench import counted_fit
    from nmfdnn.train import fit

    cfg = compose_train(["dataset=synthetic", "hidden=[16,8]", "epochs=2", "solver.batch_size=200",
                         "solver.ae_samples=300", "progress=false"] + (["solver=bp", "solver.ae_epochs=1"]
                                                                        if solver == "bp" else []))
    data = load_dataset(cfg.dataset)
    plain = fit(cfg, data)
    counted, flops = counted_fit(cfg, data)
    assert all(np.array_equal(a, b) for a, b in zip(plain.weights, counted.weights))
    assert flops["forward" if solver == "nmf" else "backprop"] > 0


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


def _tta(tmp_path, name, *args, timeout=300):
    r = subprocess.run(nmfdnn_command() + ["bench", "--gemm-size", "300", "--tta", "--out", str(tmp_path / name), *args],
                       capture_output=True, text=True, env=env_without_full_error(), timeout=timeout)
    assert r.returncode == 0, r.stderr
    return json.loads((tmp_path / name / "tta.json").read_text()), r.stdout


TTA_COMMON = ["dataset=synthetic", "hidden=[16]", "solver.batch_size=200", "solver.ae_samples=200", "epochs=40"]


def test_bench_tta_command(tmp_path):
    """Time to accuracy through the console script: one NMF and one backprop run on synthetic data, two
    targets both reach, then a target that cannot be reached."""
    t, _ = _tta(tmp_path, "a", "--target", "70,60", "--runs", "nmf:float64,bp:float32", "--repeats", "2", *TTA_COMMON)
    # two interleaved rounds: nmf, bp, nmf, bp
    assert [(x["solver"], x["dtype"], x["round"]) for x in t["runs"]] == [
        ("nmf", "float64", 0), ("bp", "float32", 0), ("nmf", "float64", 1), ("bp", "float32", 1)]
    for x in t["runs"]:
        hi, lo = x["targets"]["70"], x["targets"]["60"]
        assert x["split"] == "test" and x["error"] < 60 and lo["seconds"] >= hi["seconds"] >= x["pretrain_seconds"] > 0
        secs = [p["seconds"] for p in x["curve"]]
        assert secs == sorted(secs) and x["curve"][-1]["error"] == x["error"]
        assert all(p["error"] >= 60 for p in x["curve"][:-1])  # stops at the first crossing of the lowest
        first70 = next(p for p in x["curve"] if p["error"] < 70)
        assert (hi["seconds"], hi["epochs"]) == (first70["seconds"], first70["epochs"])
    nmf, bp = t["summary"]
    for target in ("70", "60"):
        v, w = nmf["targets"][target], bp["targets"][target]
        assert v["reached"] == 2 and min(v["seconds"]) <= v["median_seconds"] <= max(v["seconds"])
        assert w["ratio_to_bp"] == 1.0 and v["ratio_to_bp"] == pytest.approx(v["median_seconds"] / w["median_seconds"])
        assert v["ratio_to_torch"] is None  # no torch run
    assert set(t["gemm_gflops"]) == {"float32", "float64"}
    md = (tmp_path / "a" / "tta.md").read_text().splitlines()
    assert md[2].startswith("| run | target % | median s") and len(md) == 4 + 4  # 2 runs x 2 targets
    assert md[0].startswith("Training seconds until the test error") and md[2].endswith("| test % at stop |")
    short = (tmp_path / "a" / "summary.md").read_text().splitlines()
    assert short[2] == "| run | to 70 % s (x bp) | to 60 % s (x bp) | pre-training s |" and len(short) == 4 + 2
    assert short[4].startswith(f"| nmf float64 | {nmf['targets']['70']['median_seconds']:.1f} "
                               f"({nmf['targets']['70']['ratio_to_bp']:.2f}x) |")
    assert md[4].startswith(f"| nmf float64 | 70 | {nmf['targets']['70']['median_seconds']:.1f} |")
    t, out = _tta(tmp_path, "b", "--target", "0", "--runs", "nmf:float64", *TTA_COMMON[:-1], "epochs=1")
    (x,) = t["runs"]
    assert x["targets"]["0"] is None and x["curve"][-1]["epochs"] == 1.0
    assert t["summary"][0]["targets"]["0"]["median_seconds"] is None and "reached in 0 of 1" in out
    assert "| nmf float64 | 0 of 1 reached |" in (tmp_path / "b" / "summary.md").read_text()
    # the tables again from tta.json alone; a folder without one is one line, exit 2
    (tmp_path / "a" / "tta.md").unlink()
    (tmp_path / "a" / "summary.md").write_text("stale")
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--table", str(tmp_path / "a")], capture_output=True,
                       text=True, env=env_without_full_error())
    assert r.returncode == 0 and r.stdout == (tmp_path / "a" / "summary.md").read_text() != "stale"
    assert (tmp_path / "a" / "tta.md").read_text().splitlines() == md
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--table", str(tmp_path)], capture_output=True,
                       text=True, env=env_without_full_error())
    assert r.returncode == 2 and "is not a time-to-accuracy result" in r.stderr and "Traceback" not in r.stderr


def test_bench_tta_on_validation_data(tmp_path, monkeypatch):
    """With ``dataset.val_size`` the clock stops on the validation error (held-out training samples), so
    that settings are chosen without the test set; the table says which error it is."""
    import nmfdnn.method.network as network
    from nmfdnn.config import compose_config
    from nmfdnn.data import load_dataset
    from nmfdnn.tools.tta import time_to_accuracy

    seen = []
    evaluate = network.evaluate

    def spy(bk, net, Ws, X, labels):
        seen.append(X.shape[1])
        return evaluate(bk, net, Ws, X, labels)

    monkeypatch.setattr(network, "evaluate", spy)
    cfg = compose_config([*TTA_COMMON[:-1], "epochs=1", "dataset.val_size=150", "progress=false"])
    r = time_to_accuracy(cfg, load_dataset(cfg.dataset), [0.0])
    assert r["split"] == "validation" and r["targets"]["0"] is None and r["curve"][-1]["epochs"] == 1.0
    assert seen and set(seen) == {150}  # every check on the 150 held-out samples, none on the 200 test ones
    t, _ = _tta(tmp_path, "v", "--target", "0", "--runs", "nmf:float64", *TTA_COMMON[:-1], "epochs=1",
                "dataset.val_size=150")
    assert t["split"] == "validation" and t["runs"][0]["split"] == "validation"
    md = (tmp_path / "v" / "tta.md").read_text().splitlines()
    assert md[0].startswith("Training seconds until the validation error") and md[2].endswith("| validation % at stop |")


def test_bench_tta_torch(tmp_path):
    """The PyTorch comparator (only where torch is installed: ``pip install 'nmfdnn[bench]'``): the same
    network trained by torch.optim.Adam learns the synthetic task, with both losses, beside our bp."""
    pytest.importorskip("torch")
    t, out = _tta(tmp_path, "t", "--target", "60", "--runs", "bp:float32,torch:float32:mse,torch:float32:xent",
                  *TTA_COMMON)
    assert [x["label"] for x in t["summary"]] == ["bp float32", "torch float32 mse", "torch float32 xent"]
    assert [x["loss"] for x in t["runs"]] == ["mse", "mse", "xent"]
    for s in t["summary"][1:]:
        assert s["solver"] == "torch" and s["targets"]["60"]["reached"] == 1 and s["targets"]["60"]["ratio_to_torch"]
    assert t["summary"][1]["targets"]["60"]["ratio_to_torch"] == 1.0 and "torch float32 xent" in out


def test_bench_tta_torch_missing_is_one_line():
    """Without torch, asking for the comparator is one clear line, exit 2."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here")
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--runs", "torch:float32", "dataset=synthetic"],
                       capture_output=True, text=True, env=env_without_full_error())
    assert r.returncode == 2 and "pip install 'nmfdnn[bench]'" in r.stderr and "Traceback" not in r.stderr


def test_bench_tta_bad_options():
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--target", "abc"], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "--target: invalid list of percentages: 'abc'" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run(nmfdnn_command() + ["bench", "--frobnicate"], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "unrecognized arguments: --frobnicate" in r.stderr
    r = subprocess.run(nmfdnn_command() + ["bench", "--tta", "--repeats", "0"], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "--repeats take positive integers" in r.stderr


def test_shape_rates_lists_the_products_of_each_layer():
    from nmfdnn.tools.machine import shape_rates

    r = shape_rates([20, 10], 30, 200, "float32", gemm_n=100, repeats=1)
    assert r["gemm_gflops"] > 0 and len(r["products"]) == 8
    assert r["products"][0]["product"].startswith("W_1 Z_0  (20x30 by 30x200)")
    assert all(p["gflops"] > 0 and p["ratio_to_gemm"] > 0 for p in r["products"])


def test_bench_ops_profiles_a_batch_operation_by_operation(tmp_path):
    """bench --ops: every operation of one defaults batch timed, with the counted FLOPs of its products;
    the table has one row per operation and a sum, per dtype; a network of another depth is one line."""
    args = ["bench", "--ops", "--gemm-size", "200", "--out", str(tmp_path), "dataset=synthetic", "hidden=[16,8]",
            "solver.batch_size=200", "solver.ae_samples=200"]
    r = subprocess.run(nmfdnn_command() + args, capture_output=True, text=True, env=env_without_full_error())
    assert r.returncode == 0, r.stderr
    prof = json.loads((tmp_path / "ops.json").read_text())["profiles"]
    assert [p["dtype"] for p in prof] == ["float64", "float32"]
    for p in prof:
        assert p["batch"] == 200 and p["input_rank"] >= 1 and len(p["ops"]) == 17
        assert all(o["seconds"] > 0 for o in p["ops"]) and p["seconds"] == pytest.approx(sum(o["seconds"] for o in p["ops"]))
        fwd = next(o for o in p["ops"] if o["phase"] == "forward")
        assert fwd["gflop"] == pytest.approx(2 * 200 * (16 * 20 + 8 * 16 + 3 * 8) / 1e9)
        assert all((o["gflop"] == 0) == (o["ratio_to_gemm"] is None) for o in p["ops"])
    md = (tmp_path / "ops.md").read_text().splitlines()
    assert md[2] == "| phase | operation | float64 ms (of GEMM) | float32 ms (of GEMM) |" and len(md) == 4 + 17 + 1
    assert all(line.count("|") == 5 for line in md[2:])  # no stray bar in an operation's name
    r = subprocess.run(nmfdnn_command() + [*args[:-3], "hidden=[16]", *args[-2:]], capture_output=True, text=True,
                       env=env_without_full_error())
    assert r.returncode == 2 and "two hidden layers" in r.stderr and "Traceback" not in r.stderr


def test_tta_runs_take_presets_and_losses():
    from nmfdnn.errors import NmfdnnError
    from nmfdnn.tools.tta import tta_specs

    specs = tta_specs("nmf_best:float32,bp:float32:xent,nmf:float64", ["dataset=synthetic"])
    best, bp, nmf = (s["cfg"] for s in specs)
    assert [s["label"] for s in specs] == ["nmf_best float32", "bp float32 xent", "nmf float64"]
    assert best.solver.alpha > 0 and str(best.dtype) == "float32" and best.epochs == 10
    assert str(bp.solver.loss) == "xent" and nmf.solver.alpha == 0 and best.dataset.name == "synthetic"
    specs = tta_specs("nmf_best:float32 solver.ae_iters=2 hidden=[8,4],nmf:float64", ["dataset=synthetic"])
    assert [s["label"] for s in specs] == ["nmf_best float32 solver.ae_iters=2 hidden=[8,4]", "nmf float64"]
    assert specs[0]["cfg"].solver.ae_iters == 2 and list(specs[0]["cfg"].hidden) == [8, 4]
    assert specs[1]["cfg"].solver.ae_iters == 5  # a run's own overrides stay its own
    for bad in ("nmf:float64:xent", "frob:float32", "nmf", "", "nmf:float64 ae_iters", "nmf:float64,"):
        with pytest.raises(NmfdnnError, match="--runs takes items|LOSS is for bp"):
            tta_specs(bad, ["dataset=synthetic"])


def test_a_conv_nets_products_are_counted_exactly():
    """Conv nets on the counting backend: the forward pass of one epoch is ``2 channels (c k k)
    (ph pw) m`` for the convolution (its im2col GEMM) plus the dense layer's ``2 n_1 n_0 m``; Algorithm
    3 through the convolution (CGLS) and Algorithm 2 on its patch matrix are counted too."""
    from nmfdnn.data import load_dataset
    from nmfdnn.tools.bench import counted_fit

    cfg = compose_train(["dataset=synthetic", "dataset.image=[1,8,8]", "dataset.n_train=900", "epochs=1",
                         "conv=[{channels:4,kernel:3,pool:2}]", "hidden=[12]", "solver.batch_size=300",
                         "solver.ae_samples=300", "progress=false", "eval_train=false"])
    _, flops = counted_fit(cfg, load_dataset(cfg.dataset))
    m, conv_out = 900, 4 * 3 * 3  # 8 x 8 -> 6 x 6 -> pooled 3 x 3, 4 channels
    assert flops["forward"] == 2 * 4 * 9 * 9 * m + 2 * 12 * conv_out * m
    for phase in ("alg2", "alg3", "semi_nmf"):
        assert flops[phase] > 0, phase
