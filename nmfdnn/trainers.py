"""Solvers behind one small interface, so that the run loop, evaluation, outputs and timers are
written once: ``pretrain()`` returns the initial weights, ``epoch(Ws)`` trains one epoch in place.
Each holds the run's network (:func:`nmfdnn.config.network.build_network`, built once per run)."""

from __future__ import annotations

import logging

import numpy as np

from .checkpoint import check_adam_state
from .method.autoencoder import pretrain
from .method.finetune import finetune_epoch
from .method.linalg import input_svd
from .batching import n_batches
from .method.settings import NMFSettings
from .timers import NullTimers

log = logging.getLogger("nmfdnn")


def batches_for_epoch(m: int, batch_size: int, rng, shuffle: bool = True):
    """Column index sets of one epoch: ``ceil(m / batch_size)`` near-equal batches (Sec. 3.3)."""
    order = rng.permutation(m) if shuffle else np.arange(m)
    return [np.sort(J) for J in np.array_split(order, n_batches(m, batch_size))]


class Trainer:
    """What every solver shares: the network ``net`` (:class:`nmfdnn.method.network.Network`), data (X,
    Y: features x samples), config, random generator, timers.

    Subclasses implement ``pretrain(on_layer) -> Ws``, ``epoch(Ws, on_batch, start_batch)`` and the
    arrays a checkpoint must hold beyond the weights (``state_arrays`` / ``load_state_arrays``).
    """

    def __init__(self, bk, cfg, net, X, Y, rng, timers=None):
        self.bk, self.sol, self.net = bk, cfg.solver, net
        self.X, self.Y, self.rng = X, Y, rng
        self.timers = timers or NullTimers()
        self.info: dict = {}

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

    def __init__(self, bk, cfg, net, X, Y, rng, timers=None):
        from .method.memory import GramMemory

        super().__init__(bk, cfg, net, X, Y, rng, timers)
        self.settings = NMFSettings.from_mapping(cfg.solver)  # what the math reads: plain values
        s = self.settings
        self.memory = GramMemory(s.memory) if s.memory > 0 else None
        # every convolution's filter step, one (layer, share of the residual above removed, ||dW||/||W||) a batch
        filters = any(layer.filters for layer in net.hidden)
        self.trace = [] if filters and (s.filter_trace or s.filter_step == "gauss_newton") else None

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
        """The truncated SVD of the input (Sec. 3.3) for a dense first layer; None for a filter layer (a
        convolution), whose Algorithm 2 uses its patch matrix's pseudo-inverse instead."""
        if self.net.layers[0].filters:
            return None
        if self.xsvd is None:
            with self.timers("input_svd"):
                self.xsvd = input_svd(self.bk, self.X, self.sol.input_threshold, self.net.bias,
                                      self.sol.get("input_energy"))
            self.info["input_rank"] = self.xsvd.rank
            log.info("input SVD: rank %d at threshold %g", self.xsvd.rank, self.sol.input_threshold)
        return self.xsvd

    def pretrain(self, on_layer=None):
        xsvd = self._input_svd()
        J = np.sort(self.rng.choice(self.X.shape[1], size=min(self.sol.ae_samples, self.X.shape[1]), replace=False))
        J = self.bk.index(self.bk.share(J))  # with several processes, this rank's share of the samples
        return pretrain(self.bk, self.net, self.X, self.Y, J, xsvd, self.settings, self.rng, self.timers, on_layer)

    def epoch(self, Ws, on_batch=None, start_batch: int = 0):
        """One epoch of Algorithm 4; ``start_batch`` skips the batches a resumed epoch already did."""
        batches = [self.bk.index(self.bk.share(J)) for J in  # each rank: its share of every batch
                   batches_for_epoch(self.X.shape[1], self.sol.batch_size, self.rng, self.sol.shuffle)]
        finetune_epoch(self.bk, self.net, Ws, self.X, self.Y, self._input_svd(), batches, self.settings,
                       self.timers, on_batch, start_batch, self.memory, self.trace)
        self._summarise_trace()


class BPTrainer(Trainer):
    """Backpropagation with Adam (Sec. 5's baseline): autoencoder pre-training, then fine-tuning."""

    opt = None

    def pretrain(self, on_layer=None):
        """Filter layers start from Glorot's initialisation, the dense hidden layers from the stacked
        autoencoder (``solver.ae_epochs > 0``) or Glorot's too, the output layer from Glorot's."""
        from .baselines.backprop import pretrain_autoencoder

        bk, sol, rng, layers = self.bk, self.sol, self.rng, self.net.hidden
        Ws, Z = [], None
        autoencoded = sol.ae_epochs > 0
        if autoencoded or any(layer.filters for layer in layers):  # the samples the forward passes see
            J = np.sort(rng.choice(self.X.shape[1], size=min(sol.ae_samples, self.X.shape[1]), replace=False))
            Z = self.X[:, bk.index(J)]
        for i, layer in enumerate(layers):
            if layer.filters:
                W = layer.glorot(bk, rng)
                Z = layer.forward(bk, W, Z)
            else:
                with self.timers("ae_backprop"):
                    if autoencoded:
                        W = pretrain_autoencoder(bk, Z, layer, sol, rng)
                        Z = layer.forward(bk, W, Z)
                    else:
                        W = layer.glorot(bk, rng)
            Ws.append(W)
            if on_layer is not None:
                on_layer(i)
        Ws.append(self.net.output_layer.glorot(bk, rng))
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
                _, grads = loss_and_grads(self.bk, self.net, Ws, XJ, YJ, sol.loss)
            for i, layer in enumerate(self.net.layers):  # the ablation: frozen filters keep their initialisation
                if layer.frozen:
                    grads[i] = grads[i] * 0
            with self.timers("adam"):
                opt.step(Ws, grads)
            if on_batch is not None:
                on_batch(b)


TRAINERS = {"nmf": NMFTrainer, "bp": BPTrainer}
