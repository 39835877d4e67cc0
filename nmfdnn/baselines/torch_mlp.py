"""PyTorch comparator for ``nmfdnn bench --tta`` (never a runtime dependency: ``pip install 'nmfdnn[bench]'``).

The network a PyTorch user would write for the paper's task: ``torch.nn.Sequential`` of ``Linear`` and
``ReLU`` (784-...-10, biases), Glorot-uniform weights and zero biases, ``torch.optim.Adam`` with the
``solver=bp`` settings (``lr``, ``beta1``, ``beta2``, ``eps``, ``batch_size``, ``loss``: squared error
``1/(2b) ||Y - out||_F^2`` as :func:`nmfdnn.baselines.backprop.loss_and_grads`, or softmax cross-entropy),
new random mini-batches every epoch, float32 (or the run's dtype), ``torch.set_num_threads`` =
``backend.threads`` (default: all cores). No autoencoder pre-training: the framework baseline is the plain
network. It has the :class:`nmfdnn.trainers.Trainer` methods that :func:`nmfdnn.tools.tta.time_to_accuracy`
calls, plus :meth:`TorchTrainer.test_error`.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import NmfdnnError


def import_torch():
    try:
        import torch
    except ImportError:
        raise NmfdnnError("bench: the torch comparator needs PyTorch: pip install 'nmfdnn[bench]'") from None
    return torch


class TorchTrainer:
    """Adam on a ``torch.nn.Sequential`` MLP; ``X``, ``Y`` are NumPy arrays with samples as columns
    (as everywhere in nmfdnn); they are copied once, as row-major samples, outside any clock."""

    def __init__(self, cfg, X: np.ndarray, Y: np.ndarray, rng: np.random.Generator):
        torch = self.torch = import_torch()
        sol = cfg.solver
        self.dtype = {"float32": torch.float32, "float64": torch.float64}[str(cfg.dtype)]
        torch.set_num_threads(int(cfg.backend.get("threads") or os.cpu_count() or 1))
        torch.manual_seed(int(cfg.seed))
        self.rng = rng
        self.X, self.Y = self.samples(X), self.samples(Y)
        self.labels = self.Y.argmax(1)
        self.batch_size, self.loss = int(sol.batch_size), str(sol.loss)
        self.shuffle = bool(sol.shuffle)
        self.widths = [X.shape[0], *map(int, cfg.hidden), Y.shape[0]]
        self.adam = dict(lr=float(sol.lr), betas=(float(sol.beta1), float(sol.beta2)), eps=float(sol.eps))

    def samples(self, A: np.ndarray):
        """``A`` (features x samples, NumPy) as a row-per-sample tensor of the run's dtype (one copy)."""
        return self.torch.from_numpy(np.ascontiguousarray(A.T)).to(self.dtype)

    @property
    def n_batches(self) -> int:
        from ..batching import n_batches

        return n_batches(self.X.shape[0], self.batch_size)

    def pretrain(self, on_layer=None):
        """No pre-training: the Glorot-initialised network (``on_layer`` is never called)."""
        del on_layer
        torch = self.torch
        layers = []
        for n_in, n_out in zip(self.widths[:-1], self.widths[1:]):
            lin = torch.nn.Linear(n_in, n_out, dtype=self.dtype)
            torch.nn.init.xavier_uniform_(lin.weight)
            torch.nn.init.zeros_(lin.bias)
            layers += [lin, torch.nn.ReLU()]
        self.net = torch.nn.Sequential(*layers[:-1])
        self.opt = torch.optim.Adam(self.net.parameters(), **self.adam)
        return self.net

    def epoch(self, net, on_batch=None, start_batch: int = 0):
        """One epoch of Adam steps; ``start_batch`` skips the first batches of the epoch's order."""
        torch = self.torch
        m = self.X.shape[0]
        order = torch.from_numpy(self.rng.permutation(m) if self.shuffle else np.arange(m))
        for b, s in enumerate(range(0, m, self.batch_size)):
            if b < start_batch:
                continue
            J = order[s:s + self.batch_size]
            out = net(self.X[J])
            if self.loss in ("mse", "squared"):
                loss = 0.5 * ((out - self.Y[J]) ** 2).sum() / J.numel()
            else:
                loss = torch.nn.functional.cross_entropy(out, self.labels[J])
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            if on_batch is not None:
                on_batch(b)

    def test_error(self, net, X_test, labels: np.ndarray) -> float:
        """Test error in percent of ``net`` on ``X_test``, a tensor from :meth:`samples`."""
        with self.torch.no_grad():
            pred = net(X_test).argmax(1).numpy()
        return float(np.mean(pred != np.asarray(labels)) * 100.0)
