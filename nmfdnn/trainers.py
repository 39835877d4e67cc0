"""Solvers behind one small interface, so that the run loop, evaluation, outputs and timers are
written once: ``pretrain()`` returns the initial weights, ``epoch(Ws)`` trains one epoch in place."""

from __future__ import annotations

import logging
import math

import numpy as np

from .checkpoint import check_adam_state
from .errors import NmfdnnError
from .method.autoencoder import pretrain
from .method.finetune import finetune_epoch
from .method.linalg import input_svd
from .method.network import affine
from .batching import n_batches
from .method.settings import NMFSettings
from .timers import NullTimers

log = logging.getLogger("nmfdnn")


def network_layers(cfg, n_in: int, shape=None) -> list:
    """The hidden layers of the run's network (:func:`nmfdnn.method.layers.build`): the convolutions of
    ``cfg.conv`` on images of ``shape`` ``(c, h, w)``, then the dense ``hidden`` widths; one line if a
    convolution does not fit or the data are not images."""
    from omegaconf import OmegaConf

    from .method.layers import build

    convs = cfg.get("conv") or []
    convs = OmegaConf.to_container(convs) if OmegaConf.is_config(convs) else list(convs)
    if convs and shape is None:
        raise NmfdnnError("conv layers need image data (mnist, fashion_mnist, cifar10, idx images, or "
                          "dataset=synthetic with dataset.image=[c,h,w]); these samples are plain vectors")
    try:
        return build(n_in, list(cfg.hidden), convs, shape, activation_of(cfg))
    except ValueError as e:
        raise NmfdnnError(str(e)) from None


def activation_of(cfg):
    """The run's hidden activation (:class:`nmfdnn.method.activations.Activation`) from ``activation``
    and its parameters; a config without the keys (written before them) has ReLU."""
    from .method.activations import named

    return named(str(cfg.get("activation", "relu")), slope=cfg.get("activation_slope", 0.01),
                 cap=cfg.get("activation_cap", 6.0), beta=cfg.get("activation_beta", 1.0))


def custom_layers(layers):
    """``layers`` where they differ from the paper's dense ReLU net (a conv layer, another activation),
    else None: the method's default path, bit for bit the paper's."""
    from .method.activations import RELU

    plain = all(layer.kind == "dense" and layer.act == RELU for layer in layers)
    return None if plain else layers


def batches_for_epoch(m: int, batch_size: int, rng, shuffle: bool = True):
    """Column index sets of one epoch: ``ceil(m / batch_size)`` near-equal batches (Sec. 3.3)."""
    order = rng.permutation(m) if shuffle else np.arange(m)
    return [np.sort(J) for J in np.array_split(order, n_batches(m, batch_size))]


class Trainer:
    """What every solver shares: data (X, Y: features x samples), config, random generator, timers.

    Subclasses implement ``pretrain(on_layer) -> Ws``, ``epoch(Ws, on_batch, start_batch)`` and the
    arrays a checkpoint must hold beyond the weights (``state_arrays`` / ``load_state_arrays``).
    """

    def __init__(self, bk, cfg, X, Y, rng, timers=None, shape=None):
        self.bk, self.sol, self.hidden = bk, cfg.solver, list(cfg.hidden)
        self.X, self.Y, self.rng = X, Y, rng
        self.timers = timers or NullTimers()
        self.info: dict = {}
        self.layers = network_layers(cfg, X.shape[0], shape)
        self.conv = any(layer.kind == "conv" for layer in self.layers)

    def weight_shapes(self) -> list:
        """The shapes of ``W_1 ... W_d`` of this network (a checkpoint's and a model's are checked against them)."""
        from .method.layers import weight_shapes

        return weight_shapes(self.layers, self.Y.shape[0], bool(self.sol.get("bias", False)))

    @property
    def n_batches(self) -> int:
        return n_batches(self.X.shape[1], self.sol.batch_size)

    def state_arrays(self) -> dict:
        return {}

    def prepare(self) -> None:
        """What pre-training computes that a resumed run needs again (NMF: the input SVD)."""

    def load_state_arrays(self, arrays: dict, Ws) -> None:
        pass


class NMFTrainer(Trainer):
    """The paper's method: Algorithm 5 (NMF autoencoder) then Algorithm 4 per epoch.

    Nothing beyond the weights needs checkpointing: the input SVD is recomputed (deterministically)
    on resume.
    """

    xsvd = None

    def __init__(self, bk, cfg, X, Y, rng, timers=None, shape=None):
        from .method.memory import GramMemory

        super().__init__(bk, cfg, X, Y, rng, timers, shape)
        self.settings = NMFSettings.from_mapping(cfg.solver)  # what the math reads: plain values
        s = self.settings
        self.memory = GramMemory(s.memory) if s.memory > 0 else None
        # every convolution's filter step, one (layer, share of the residual above removed, ||dW||/||W||) a batch
        self.trace = [] if self.conv and (s.filter_trace or s.filter_step == "gauss_newton") else None

    def state_arrays(self) -> dict:
        """The running Gram matrices (``solver.memory``) and the filter trace: a resumed run goes on with them."""
        arrays = self.memory.state(self.bk) if self.memory is not None else {}
        if self.trace is not None:
            arrays["filter_trace"] = np.asarray(self.trace, dtype=np.float64).reshape(-1, 3)
        return arrays

    def load_state_arrays(self, arrays: dict, Ws) -> None:  # noqa: ARG002 (the trainer protocol)
        if self.memory is not None:
            self.memory.load(self.bk, arrays)
        if self.trace is not None and "filter_trace" in arrays:
            self.trace = [tuple(row) for row in np.asarray(arrays["filter_trace"], dtype=np.float64).reshape(-1, 3)]
        self._summarise_trace()

    def _summarise_trace(self) -> None:
        """``info["filters"]``: per convolution, every batch's share of the residual above that its filter
        step removed, the median, how many batches it was positive on, and the median ``||dW|| / ||W||``."""
        if not self.trace:
            return
        out = {}
        for layer in sorted({int(t[0]) for t in self.trace}):
            share = [float(t[1]) for t in self.trace if int(t[0]) == layer]
            ratio = [float(t[2]) for t in self.trace if int(t[0]) == layer]
            out[f"W_{layer}"] = {"step": self.settings.filter_step, "batches": len(share),
                                 "median_share_removed": float(np.median(share)),
                                 "positive_batches": int(sum(v > 0 for v in share)),
                                 "median_step_ratio": float(np.median(ratio)),
                                 "share_removed": share, "step_ratio": ratio}
        self.info["filters"] = out

    def prepare(self) -> None:
        self._input_svd()

    def _input_svd(self):
        """The truncated SVD of the input (Sec. 3.3) for a dense first layer; None for a convolution,
        whose Algorithm 2 uses its patch matrix's pseudo-inverse instead."""
        if self.layers[0].kind != "dense":
            return None
        if self.xsvd is None:
            with self.timers("input_svd"):
                self.xsvd = input_svd(self.bk, self.X, self.sol.input_threshold, self.sol.bias,
                                      self.sol.get("input_energy"))
            self.info["input_rank"] = self.xsvd.rank
            log.info("input SVD: rank %d at threshold %g", self.xsvd.rank, self.sol.input_threshold)
        return self.xsvd

    def pretrain(self, on_layer=None):
        xsvd = self._input_svd()
        J = np.sort(self.rng.choice(self.X.shape[1], size=min(self.sol.ae_samples, self.X.shape[1]), replace=False))
        J = self.bk.index(self.bk.share(J))  # with several processes, this rank's share of the samples
        return pretrain(self.bk, self.X, self.Y, J, xsvd, self.hidden, self.settings, self.rng, self.timers,
                        on_layer, custom_layers(self.layers))

    def epoch(self, Ws, on_batch=None, start_batch: int = 0):
        """One epoch of Algorithm 4; ``start_batch`` skips the batches a resumed epoch already did."""
        batches = [self.bk.index(self.bk.share(J)) for J in  # each rank: its share of every batch
                   batches_for_epoch(self.X.shape[1], self.sol.batch_size, self.rng, self.sol.shuffle)]
        finetune_epoch(self.bk, Ws, self.X, self.Y, self._input_svd(), batches, self.settings, self.timers,
                       on_batch, start_batch, custom_layers(self.layers), self.memory, self.trace)
        self._summarise_trace()


class BPTrainer(Trainer):
    """Backpropagation with Adam (Sec. 5's baseline): autoencoder pre-training, then fine-tuning."""

    opt = None

    def pretrain(self, on_layer=None):
        from .baselines.backprop import glorot_uniform, pretrain_autoencoder

        bk, sol, bias = self.bk, self.sol, self.sol.bias
        n_prev = self.X.shape[0]
        Ws = []
        if sol.ae_epochs > 0 or self.conv:
            J = np.sort(self.rng.choice(self.X.shape[1], size=min(sol.ae_samples, self.X.shape[1]), replace=False))
            Z = self.X[:, self.bk.index(J)]
        convs = [layer for layer in self.layers if layer.kind == "conv"]
        for i, layer in enumerate(convs):  # Glorot filters (fan-in c k k, fan-out channels k k); no autoencoder
            s = layer.spec
            a = math.sqrt(6.0 / (s.patch + s.channels * s.kernel * s.kernel))
            W = bk.xp.zeros((s.channels, s.patch + int(bias)), dtype=bk.dtype)
            W[:, :s.patch] = bk.asarray(self.rng.uniform(-a, a, size=(s.channels, s.patch)))
            Ws.append(W)
            Z = layer.forward(bk, W, Z, bias)
            n_prev = layer.n_out
            if on_layer is not None:
                on_layer(i)
        for i, n in enumerate(self.hidden, start=len(convs)):
            with self.timers("ae_backprop"):
                if sol.ae_epochs > 0:
                    act = self.layers[i].act
                    W = pretrain_autoencoder(bk, Z, n, sol, self.rng, bias, act)
                    Z = affine(W, Z, bias)
                    act.apply(bk, Z, out=Z)
                else:
                    W = glorot_uniform(bk, self.rng, n, n_prev, bias)
            Ws.append(W)
            n_prev = n
            if on_layer is not None:
                on_layer(i)
        Ws.append(glorot_uniform(bk, self.rng, self.Y.shape[0], n_prev, bias))
        return Ws

    def _optimizer(self, Ws):
        from .baselines.backprop import Adam

        if self.opt is None:
            sol = self.sol
            self.opt = Adam(self.bk, Ws, sol.lr, sol.beta1, sol.beta2, sol.eps)
        return self.opt

    def state_arrays(self) -> dict:
        if self.opt is None:
            return {}
        out = {"adam_t": np.asarray(self.opt.t)}
        for i, (m, v) in enumerate(zip(self.opt.m, self.opt.v)):
            out[f"adam_m{i}"] = self.bk.to_numpy(m)
            out[f"adam_v{i}"] = self.bk.to_numpy(v)
        return out

    def load_state_arrays(self, arrays: dict, Ws) -> None:
        if "adam_t" not in arrays:
            return
        t, ms, vs = check_adam_state(arrays, Ws, "checkpoint.npz")
        opt = self._optimizer(Ws)
        opt.t = t
        opt.m = [self.bk.asarray(m) for m in ms]
        opt.v = [self.bk.asarray(v) for v in vs]

    def epoch(self, Ws, on_batch=None, start_batch: int = 0):
        from .baselines.backprop import loss_and_grads

        sol = self.sol
        opt = self._optimizer(Ws)
        # Epoch e (0-based) steps with lr * lr_decay**e. The epoch is read off Adam's step counter,
        # which the checkpoint keeps, so a run resumed mid-epoch continues with the same rate.
        opt.lr = sol.lr * sol.lr_decay ** (opt.t // self.n_batches)
        m = self.X.shape[1]
        order = self.rng.permutation(m) if sol.shuffle else np.arange(m)
        for b, s in enumerate(range(0, m, sol.batch_size)):
            if b < start_batch:
                continue
            J = self.bk.index(order[s:s + sol.batch_size])
            with self.timers("gather"):
                XJ, YJ = self.X[:, J], self.Y[:, J]
            with self.timers("backprop"):
                _, grads = loss_and_grads(self.bk, Ws, XJ, YJ, sol.loss, sol.bias, custom_layers(self.layers))
            if sol.get("freeze_conv", False):  # the ablation: conv filters keep their initialisation
                for i, layer in enumerate(self.layers):
                    if layer.kind == "conv":
                        grads[i] = grads[i] * 0
            with self.timers("adam"):
                opt.step(Ws, grads)
            if on_batch is not None:
                on_batch(b)


TRAINERS = {"nmf": NMFTrainer, "bp": BPTrainer}
