"""The network of eq. (1)/(3): its layers, forward pass, prediction, error, objective.

Shapes follow the paper: columns are samples. ``X`` is ``n_0 x m``, ``Y`` is ``n_d x m`` and the
weights are ``W_i`` of shape ``n_i x n_{i-1}`` (``n_i x (n_{i-1} + 1)`` with a bias column, which
acts on the input augmented by a row of ones, ``[Z_{i-1}; e^T]``). A :class:`Network` is the list
of the layers of ``W_1, ..., W_d`` (:mod:`nmfdnn.method.layers`): the hidden ones, each with its
activation, then the linear output layer; the weights themselves are a list beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import NumericalError


def affine(W, Z, bias: bool):
    """``W_i [Z_{i-1}; e^T]`` with a bias column, else ``W_i Z_{i-1}``, without copying ``Z``."""
    if bias:
        U = W[:, :-1] @ Z
        U += W[:, -1:]
        return U
    return W @ Z


def augment(bk, Z, bias: bool):
    """``[Z; e^T]`` with a bias, else ``Z`` itself."""
    if not bias:
        return Z
    xp = bk.xp
    out = xp.empty((Z.shape[0] + 1, Z.shape[1]), dtype=Z.dtype)
    out[:-1] = Z
    out[-1] = 1.0
    return out


@dataclass(frozen=True)
class Network:
    """The layers of ``W_1, ..., W_d``: ``hidden`` (``Z_i = f(lin_i(W_i, Z_{i-1}))``, convolutions
    first), then ``output_layer`` (``W_d [Z_{d-1}; e^T]``, linear). Built once per run
    (:func:`nmfdnn.method.layers.build`); every solver step, the evaluation and the outputs read it."""

    layers: tuple

    @property
    def hidden(self) -> tuple:
        return self.layers[:-1]

    @property
    def output_layer(self):
        return self.layers[-1]

    @property
    def bias(self) -> bool:
        """Whether every ``W_i`` has a bias column."""
        return self.output_layer.bias

    @property
    def shapes(self) -> list[tuple[int, int]]:
        """The shapes of ``W_1, ..., W_d``."""
        return [layer.shape for layer in self.layers]

    def __len__(self) -> int:
        return len(self.layers)


def forward(bk, net: Network, Ws, X):
    """Hidden activations ``[Z_0 = X, Z_1, ..., Z_{d-1}]`` (Sec. 3, definition of Z_i), each hidden
    layer's own ``forward``."""
    Zs = [X]
    for W, layer in zip(Ws[:-1], net.hidden):
        Zs.append(layer.forward(bk, W, Zs[-1]))
    return Zs


def output(bk, net: Network, Ws, X):
    """The network's output ``W_d f(W_{d-1} ... f(W_1 X))`` (eq. 3; linear output layer)."""
    return net.output_layer.forward(bk, Ws[-1], forward(bk, net, Ws, X)[-1])


def evaluate(bk, net: Network, Ws, X, labels, chunk: int = 10000):
    """Error rate in percent and objective (3), ``1/2 ||Y - output||_F^2``, over all columns of X.

    ``labels`` are integer class labels (host array); Y is their one-hot encoding. Works in
    chunks of columns so memory stays bounded on large sets. With several processes each evaluates
    its share of the columns (``bk.share``) and the counts are summed.
    """
    import numpy as np

    xp = bk.xp
    m = X.shape[1]
    X, labels = bk.share(X), bk.share(labels)
    wrong = 0
    obj = 0.0
    for start in range(0, X.shape[1], chunk):
        out = output(bk, net, Ws, X[:, start:start + chunk])
        lab = labels[start:start + chunk]
        pred = bk.to_numpy(xp.argmax(out, axis=0))
        wrong += int(np.count_nonzero(pred != lab))
        # ||Y - out||^2 = ||out||^2 - 2 sum_j out[y_j, j] + m_chunk
        idx = xp.asarray(lab)
        picked = out[idx, xp.arange(out.shape[1])]
        obj += bk.scalar((out * out).sum()) - 2.0 * bk.scalar(picked.sum()) + out.shape[1]
    wrong, obj = bk.total(wrong), bk.total(obj)
    return 100.0 * wrong / m, 0.5 * obj


def predict_scores(bk, net: Network, Ws, X, chunk: int = 10000):
    """Network outputs for all columns of X, as a host array (n_out x m)."""
    import numpy as np

    parts = [bk.to_numpy(output(bk, net, Ws, X[:, s:s + chunk])) for s in range(0, X.shape[1], chunk)]
    return np.concatenate(parts, axis=1)


def check_finite(bk, A, what: str, remedy: str = "") -> None:
    """Raise :class:`NumericalError` naming ``what`` if ``A`` holds NaN or infinity."""
    if not bk.check_finite(A):
        msg = f"non-finite values in {what}"
        if remedy:
            msg += f"; {remedy}"
        raise NumericalError(msg)
