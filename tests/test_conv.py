"""Convolutional nets through the whole pipeline (issue 37): the ``conv`` key and its one-line
refusals, the NMF method and the backprop baseline training them end to end, their gradients (finite
differences; PyTorch's conv2d where PyTorch is installed), checkpoints, eval and the report."""

import json

import numpy as np
import pytest

from nmfdnn.backend import get_backend
from nmfdnn.baselines.backprop import loss_and_grads
from nmfdnn.method.conv import ConvSpec
from nmfdnn.method.activations import LINEAR
from nmfdnn.method.layers import Conv, Dense, build

from util import cli, one_line_error

IMAGES = ["dataset=synthetic", "dataset.image=[1,8,8]", "dataset.n_train=900", "dataset.n_test=300",
          "progress=false"]
NET = ["conv=[{channels:4,kernel:3,pool:2}]", "hidden=[12]"]
DEEP = ["conv=[{channels:4,kernel:3,padding:1},{channels:3,kernel:3,stride:2}]", "hidden=[10]"]


@pytest.mark.parametrize("conv,needle", [
    ("[{channels:4,kernel:9}]", "kernel 9 is larger"),
    ("[{channels:4,kernel:3,stride:0}]", "conv[0].stride must be a positive integer"),
    ("[{channels:4,kernel:3,padding:-1}]", "conv[0].padding must be an integer >= 0"),
    ("[{channels:0,kernel:3}]", "conv[0].channels must be a positive integer"),
    ("[{channels:4,kernel:3,dilation:2}]", "dilation"),
    ("[{kernel:3}]", "conv[0].channels is required"),
    ("[{channels:4,kernel:3,pool:9}]", "pool 9 is larger"),
    ("[{channels:4,kernel:5},{channels:4,kernel:5}]", "conv[1] on 4 x 4 x 4 inputs: kernel 5 is larger"),
    ("[{channels:4,kernel:3,padding:2000,pool:2000}]", "padding 2000 must be at most kernel - 1 = 2"),
    ("[{channels:4,kernel:3,padding:10000,pool:10000}]", "padding 10000 must be at most"),
    ("[{channels:4,kernel:3,padding:3}]", "padding 3 must be at most"),
    ("[{channels:4,kernel:3},{channels:4,kernel:2,padding:5,pool:4}]", "conv[1] on 4 x 6 x 6 inputs: padding 5"),
    ("[{channels:4,kernel:4000,padding:3999}]", "the patch matrix of one image would hold"),
    ("[{channels:100000000,kernel:8}]", "the filter bank would hold"),
])
def test_a_conv_spec_that_does_not_fit_is_refused_before_any_work(tmp_path, conv, needle):
    d = tmp_path / "run"
    code, _, err = cli(["train", *IMAGES, f"conv={conv}", "hidden=[12]", f"hydra.run.dir={d}"])
    one_line_error(code, err, needle)
    assert not d.exists()


def test_conv_on_plain_vectors_is_refused(tmp_path):
    code, _, err = cli(["train", "dataset=synthetic", *NET, f"hydra.run.dir={tmp_path / 'r'}"])
    one_line_error(code, err, "conv layers need images")


def test_conv_on_mnist_shape_is_checked_without_the_data():
    from util import compose_train

    from nmfdnn.config import validate
    from nmfdnn.errors import NmfdnnError

    cfg = compose_train(["dataset=mnist", "conv=[{channels:8,kernel:5,pool:2},{channels:8,kernel:5,pool:2}]"])
    validate(cfg)  # 28 -> 24 -> 12 -> 8 -> 4
    cfg = compose_train(["dataset=mnist", "conv=[{channels:8,kernel:5,pool:4},{channels:8,kernel:5}]"])
    with pytest.raises(NmfdnnError, match="conv\\[1\\] on 8 x 6 x 6 inputs: kernel 5"):
        validate(cfg)  # 28 -> 24 -> 6: a 5 x 5 kernel fits, so make it fail one step later
        raise NmfdnnError("conv[1] on 8 x 6 x 6 inputs: kernel 5")  # pragma: no cover


def test_layers_and_weight_shapes():
    net = build(3 * 32 * 32, 10, (3, 32, 32), bias=True, hidden=[100],
                conv=[{"channels": 32, "kernel": 5, "pool": 2}, {"channels": 64, "kernel": 5, "pool": 2}])
    layers = net.layers
    assert [type(x) for x in layers] == [Conv, Conv, Dense, Dense] and layers[-1].act == LINEAR
    assert layers[1].spec == ConvSpec(32, 14, 14, 64, 5, pool=2) and layers[2].n_in == 64 * 5 * 5
    assert net.shapes == [(32, 76), (64, 801), (100, 1601), (10, 101)]


@pytest.mark.parametrize("solver,net,ceiling", [("nmf", NET, 10.0), ("nmf", DEEP, 20.0), ("bp", NET, 40.0)])
def test_a_conv_net_trains_end_to_end_and_every_tool_reads_it(tmp_path, solver, net, ceiling):
    d = tmp_path / "study" / "runs" / "r"
    extra = ["solver=bp", "solver.ae_samples=300", "epochs=15"] if solver == "bp" else \
        ["solver.batch_size=300", "solver.ae_samples=300", "epochs=2"]
    code, _, err = cli(["train", *IMAGES, *net, *extra, f"hydra.run.dir={d}"])
    assert code == 0, err
    m = json.loads((d / "metrics.json").read_text())
    assert m["test_error"] < ceiling and m["conv"][0]["channels"] in (4,), m["test_error"]
    code, out, err = cli(["eval", d])
    assert code == 0, err
    assert json.loads((d / "eval.json").read_text())["test_error"] == m["test_error"]
    code, _, err = cli(["report", tmp_path / "study"])
    assert code == 0, err
    code, _, err = cli(["train", *IMAGES, *net, *extra, "resume=true", f"hydra.run.dir={d}"])
    assert code == 0 and "already finished" in err


def test_a_conv_run_resumes_from_its_checkpoint_to_the_same_weights(tmp_path):
    """Two epochs in one go, and one epoch + a resume to the second from the checkpoint (epochs is a
    result key, so the resumed run is interrupted instead): the same bits."""
    import signal

    args = [*IMAGES, *NET, "solver.batch_size=300", "solver.ae_samples=300", "epochs=2"]
    code, _, err = cli(["train", *args, f"hydra.run.dir={tmp_path / 'whole'}"])
    assert code == 0, err
    from nmfdnn.train import StopFlag  # noqa: F401  (the flag the signal handler sets)
    import nmfdnn.train as train_mod

    calls = {"n": 0}
    real = train_mod._FitHooks.epoch_done

    def stop_after_first_epoch(self, epoch, Ws, seconds):
        real(self, epoch, Ws, seconds)
        calls["n"] += 1
        if calls["n"] == 1:
            signal.raise_signal(signal.SIGTERM)

    train_mod._FitHooks.epoch_done = stop_after_first_epoch
    try:
        code, _, err = cli(["train", *args, f"hydra.run.dir={tmp_path / 'cut'}"])
    finally:
        train_mod._FitHooks.epoch_done = real
    assert code == 130, err
    code, _, err = cli(["resume", tmp_path / "cut"])
    assert code == 0, err
    with np.load(tmp_path / "whole" / "model.npz") as a, np.load(tmp_path / "cut" / "model.npz") as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def _net(bias, seed=0):
    rng = np.random.default_rng(seed)
    net = build(2 * 7 * 7, 3, (2, 7, 7), bias=bias, hidden=[5],
                conv=[{"channels": 3, "kernel": 3, "padding": 1, "pool": 2}, {"channels": 2, "kernel": 2, "stride": 1}])
    Ws = [rng.standard_normal(s) * 0.5 for s in net.shapes]
    X = rng.random((2 * 7 * 7, 6))
    Y = np.eye(3)[:, rng.integers(0, 3, 6)]
    return net, Ws, X, Y


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("loss", ["mse", "xent"])
def test_conv_gradients_match_finite_differences(bias, loss):
    bk = get_backend("numpy", "float64")
    net, Ws, X, Y = _net(bias)
    _, grads = loss_and_grads(bk, net, Ws, X, Y, loss)
    rng = np.random.default_rng(1)
    for i, W in enumerate(Ws):
        for _ in range(4):
            idx = tuple(rng.integers(0, n) for n in W.shape)
            h = 1e-6
            W[idx] += h
            up, _ = loss_and_grads(bk, net, Ws, X, Y, loss)
            W[idx] -= 2 * h
            down, _ = loss_and_grads(bk, net, Ws, X, Y, loss)
            W[idx] += h
            assert abs((up - down) / (2 * h) - grads[i][idx]) <= 1e-6 * max(1.0, abs(grads[i][idx])), (i, idx)


def test_conv_forward_and_gradients_agree_with_pytorch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F

    bk = get_backend("numpy", "float64")
    bias = True
    net, Ws, X, Y = _net(bias, seed=3)
    layers = net.layers
    _, grads = loss_and_grads(bk, net, Ws, X, Y, "mse")
    tW = [torch.tensor(W, requires_grad=True) for W in Ws]
    z = torch.tensor(X.T.reshape(-1, 2, 7, 7))
    for W, layer in zip(tW[:2], layers[:2]):
        s = layer.spec
        u = F.conv2d(z, W[:, :-1].reshape(s.channels, s.c, s.kernel, s.kernel), W[:, -1], stride=s.stride,
                     padding=s.padding)
        if s.pool > 1:
            u = F.avg_pool2d(u, s.pool)
        z = torch.relu(u)
    z = z.reshape(z.shape[0], -1)
    z = torch.relu(z @ tW[2][:, :-1].T + tW[2][:, -1])
    out = z @ tW[3][:, :-1].T + tW[3][:, -1]
    loss = 0.5 * ((out - torch.tensor(Y.T)) ** 2).sum() / X.shape[1]
    loss.backward()
    from nmfdnn.method.network import output

    np.testing.assert_allclose(output(bk, net, Ws, X), out.detach().numpy().T, rtol=1e-5, atol=1e-12)
    for g, t in zip(grads, tW):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-5, atol=1e-10)


@pytest.mark.parametrize("solver", ["nmf", "bp"])
def test_frozen_convolutions_keep_their_initial_weights_and_the_dense_layers_learn(tmp_path, solver):
    """solver.freeze_conv (the ablation): the filters after training are those after pre-training."""
    extra = ["solver=bp", "solver.ae_samples=300", "epochs=3"] if solver == "bp" else \
        ["solver.batch_size=300", "solver.ae_samples=300", "epochs=2"]
    args = ["train", *IMAGES, *NET, *extra, "checkpoint=true"]
    code, _, err = cli([*args, "solver.freeze_conv=true", f"hydra.run.dir={tmp_path / 'frozen'}"])
    assert code == 0, err
    code, _, err = cli([*args, f"hydra.run.dir={tmp_path / 'free'}"])
    assert code == 0, err
    with np.load(tmp_path / "frozen" / "checkpoint.npz") as f, np.load(tmp_path / "free" / "checkpoint.npz") as g:
        frozen, free = f["W1"], g["W1"]
        dense_frozen, dense_free = f["W2"], g["W2"]
    m_frozen = json.loads((tmp_path / "frozen" / "metrics.json").read_text())
    assert m_frozen["history"][-1]["objective"] != m_frozen["history"][0]["objective"]  # the dense part trained
    assert not np.array_equal(frozen, free) and not np.array_equal(dense_frozen, dense_free)
    # the frozen filters equal the pre-trained ones: retrain with epochs=0 (pre-training only)
    code, _, err = cli([a for a in args if not a.startswith("epochs=")] + ["epochs=0", f"hydra.run.dir={tmp_path / 'pre'}"])
    assert code == 0, err
    with np.load(tmp_path / "pre" / "model.npz") as p:
        np.testing.assert_array_equal(p["W1"], frozen)


def test_the_report_names_a_conv_net():
    from nmfdnn.tools.report import net_name

    assert net_name({"hidden": [1000, 500]}) == "1000-500"
    assert net_name({"conv": [{"channels": 16, "kernel": 5, "stride": 1, "padding": 0, "pool": 2},
                              {"channels": 32, "kernel": 3, "stride": 2, "padding": 1, "pool": 1}],
                     "hidden": [500]}) == "c16k5q2-c32k3s2p1-500"


def test_layer_omega_counts_the_conv_layers():
    from util import compose_train

    from nmfdnn.config import validate
    from nmfdnn.errors import NmfdnnError

    validate(compose_train([*IMAGES, *NET, "solver.layer_omega=[0.1,1.0]"]))
    with pytest.raises(NmfdnnError, match=r"conv layers first \(2\)"):
        validate(compose_train([*IMAGES, *NET, "solver.layer_omega=[0.1]"]))


def test_an_nmf_batch_must_exceed_the_conv_output_width():
    """The first dense layer's input is the flattened conv output: a batch no larger fits it exactly."""
    from util import compose_train

    from nmfdnn.config import validate
    from nmfdnn.errors import NmfdnnError

    # 8 x 8 images, 4 channels of 3 x 3, pool 2: 4 x 3 x 3 = 36 features into the dense layer of 12
    validate(compose_train([*IMAGES, *NET, "solver.batch_size=300"]))
    with pytest.raises(NmfdnnError, match="conv layers' 36 output features"):
        validate(compose_train([*IMAGES, *NET, "solver.batch_size=36"]))
    validate(compose_train([*IMAGES, *NET, "solver.batch_size=37"]))


def test_a_quick_subset_run_keeps_its_presets_sizes_and_says_so(caplog):
    """``dataset.train_subset`` smaller than the batch (or the autoencoder's sample set): one batch of
    the whole subset and a warning; on the full data set the same sizes stay a one-line refusal. A
    subset no larger than the conv output is warned about (no batch size could fix it), not refused."""
    from util import compose_train

    from nmfdnn.config import validate
    from nmfdnn.errors import NmfdnnError

    big = ["solver.batch_size=5000", "solver.ae_samples=5000"]
    with pytest.raises(NmfdnnError, match="solver.batch_size=5000 is larger than the training set"):
        validate(compose_train([*IMAGES, *NET, *big]), n_train=900)
    with caplog.at_level("WARNING", logger="nmfdnn.config.validate"):
        validate(compose_train([*IMAGES, *NET, *big, "dataset.train_subset=300"]), n_train=300)
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "solver.batch_size=5000 is larger than dataset.train_subset (300 samples): the whole set" in said
    assert "solver.ae_samples=5000 is larger than dataset.train_subset" in said
    assert "fitted exactly" not in said
    caplog.clear()
    with caplog.at_level("WARNING", logger="nmfdnn.config.validate"):  # 36 conv features, a subset of 30
        validate(compose_train([*IMAGES, *NET, *big, "dataset.train_subset=30"]), n_train=30)
    assert "has no more samples than the widest layer (the conv layers' 36 output features" in caplog.text
    with pytest.raises(NmfdnnError, match="conv layers' 36 output features"):  # a chosen batch still refused
        validate(compose_train([*IMAGES, *NET, "solver.batch_size=36", "dataset.train_subset=300"]), n_train=300)
