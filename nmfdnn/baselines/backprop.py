"""The backpropagation + Adam baseline of the paper's Sec. 5, written on the same backend seam.

Weights are stored like the NMF solver's: ``W_i`` is ``n_i x (n_{i-1} + 1)`` with the bias as last
column when ``bias`` is on, so that :mod:`nmfdnn.network` evaluates both solvers alike.
"""

from __future__ import annotations

import math

from ..method.activations import RELU
from ..method.network import affine, forward


def glorot_uniform(bk, rng, n_out: int, n_in: int, bias: bool):
    """Glorot and Bengio's "normalized initialization" (the paper's ref. [4]): ``U(-a, a)``,
    ``a = sqrt(6 / (n_in + n_out))``; biases start at zero."""
    a = math.sqrt(6.0 / (n_in + n_out))
    W = bk.asarray(rng.uniform(-a, a, size=(n_out, n_in + int(bias))))
    if bias:
        W[:, -1] = 0.0
    return W


def loss_and_output_grad(bk, out, Y, loss: str):
    """Loss averaged over the batch's columns and its gradient with respect to ``out``.

    ``squared`` (``mse``): ``1/(2m) ||Y - out||_F^2`` (objective (3) per sample). ``cross_entropy``
    (``xent``): softmax cross-entropy, ``-1/m sum_j log softmax(out_j)[y_j]``.
    """
    xp = bk.xp
    m = out.shape[1]
    if loss in ("mse", "squared"):
        G = out - Y
        value = 0.5 * bk.scalar((G * G).sum()) / m
        G /= m
        return value, G
    if loss in ("xent", "cross_entropy"):
        shifted = out - out.max(axis=0, keepdims=True)
        expd = xp.exp(shifted)
        total = expd.sum(axis=0, keepdims=True)
        logp = shifted - xp.log(total)
        value = -bk.scalar((logp * Y).sum()) / m
        G = expd / total
        G -= Y
        G /= m
        return value, G
    raise ValueError(f"unknown loss {loss!r}; choose squared (mse) or cross_entropy (xent)")


def loss_and_grads(bk, Ws, X, Y, loss: str, bias: bool, layers=None):
    """Loss of the network on the columns of ``X`` and its gradients (backpropagation, [15]).

    With ``layers`` (:mod:`nmfdnn.method.layers`) a convolution's gradients go through its patch
    matrix: for ``U = T(W A)``, ``A = [Pbar(Z); e^T]``, ``dW = (T^-1 G) A^T`` and
    ``dZ = Pbar^T(W_0^T T^-1 G)`` (im2col's adjoint, :func:`nmfdnn.method.conv.linear_map_adjoint`)."""
    xp = bk.xp
    Zs = forward(bk, Ws, X, bias, layers)
    out = affine(Ws[-1], Zs[-1], bias)
    value, G = loss_and_output_grad(bk, out, Y, loss)
    grads = [None] * len(Ws)
    for i in range(len(Ws) - 1, -1, -1):
        Z = Zs[i]
        layer = layers[i] if layers is not None and i < len(layers) else None
        if layer is not None and layer.kind == "conv":
            from ..method.conv import linear_map_adjoint

            Gp = layer.targets(bk, G)
            grads[i] = Gp @ layer.design(bk, Z, bias).T
            if i > 0:
                G = linear_map_adjoint(bk, Ws[i][:, :-1] if bias else Ws[i], G, layer.spec)
                G *= _derivative(bk, layers[i - 1], Z)
            continue
        if bias:
            g = xp.empty_like(Ws[i])
            xp.matmul(G, Z.T, out=g[:, :-1])
            g[:, -1] = G.sum(axis=1)
        else:
            g = G @ Z.T
        grads[i] = g
        if i > 0:
            Wz = Ws[i][:, :-1] if bias else Ws[i]
            G = Wz.T @ G
            G *= _derivative(bk, layers[i - 1] if layers is not None else None, Z)  # f'(U) through Z = f(U)
    return value, grads


def _derivative(bk, layer, Z):
    """``f'(U)`` of the layer that output ``Z = f(U)`` (:meth:`nmfdnn.method.activations.Activation.derivative`;
    ``layer`` None: ReLU's)."""
    return (RELU if layer is None else layer.act).derivative(bk, Z)


class Adam:
    """Adam (Kingma and Ba 2015, Algorithm 1), in place on a list of parameter arrays.

    ``m <- b1 m + (1 - b1) g``; ``v <- b2 v + (1 - b2) g^2``;
    ``theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)`` with ``m_hat = m / (1 - b1^t)``,
    ``v_hat = v / (1 - b2^t)``. Defaults are TensorFlow's (0.9, 0.999, 1e-8).
    """

    def __init__(self, bk, params, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        xp = bk.xp
        self.bk, self.lr, self.b1, self.b2, self.eps = bk, lr, beta1, beta2, eps
        self.m = [xp.zeros_like(p) for p in params]
        self.v = [xp.zeros_like(p) for p in params]
        self.tmp = [xp.empty_like(p) for p in params]
        self.t = 0

    FLUSH_EVERY = 16

    def step(self, params, grads):
        xp = self.bk.xp
        self.t += 1
        if self.t % self.FLUSH_EVERY == 0:
            self._flush_subnormals()
        c1 = 1.0 - self.b1 ** self.t
        c2 = 1.0 - self.b2 ** self.t
        for p, g, m, v, tmp in zip(params, grads, self.m, self.v, self.tmp):
            m *= self.b1
            xp.multiply(g, 1.0 - self.b1, out=tmp)
            m += tmp
            v *= self.b2
            xp.multiply(g, g, out=tmp)
            tmp *= 1.0 - self.b2
            v += tmp
            # theta -= lr * (m / c1) / (sqrt(v / c2) + eps)
            xp.multiply(v, 1.0 / c2, out=tmp)
            xp.sqrt(tmp, out=tmp)
            tmp += self.eps
            xp.divide(m, tmp, out=tmp)
            tmp *= self.lr / c1
            p -= tmp

    def _flush_subnormals(self):
        """Set subnormal moments to zero. Where a weight's gradient is (almost) always zero (MNIST's
        border pixels), m decays by beta1 every step and reaches the subnormal range within a few
        hundred steps; arithmetic on subnormals is tens of times slower on x86 CPUs, and a whole
        epoch slowed down 2x before this flush. The update changes by less than lr * tiny / eps."""
        xp = self.bk.xp
        for arr in (*self.m, *self.v):
            arr[xp.abs(arr) < xp.finfo(arr.dtype).tiny] = 0


def pretrain_autoencoder(bk, Z, n_out, sol, rng, bias, act=RELU):
    """One layer of the stacked autoencoder trained by backprop + Adam (Sec. 5, ref. [1]).

    Encoder ``f(W Z)``, linear decoder ``W' f(W Z)``, squared reconstruction error, Adam with
    ``solver.ae_lr`` on mini-batches of ``solver.batch_size`` for ``solver.ae_epochs`` epochs.
    Returns the encoder weights. ``act``: the encoder's ``f``.
    """
    n_in, m = Z.shape
    Ws = [glorot_uniform(bk, rng, n_out, n_in, bias), glorot_uniform(bk, rng, n_in, n_out, bias)]
    opt = Adam(bk, Ws, sol.ae_lr, sol.beta1, sol.beta2, sol.eps)
    from ..method.layers import Dense

    layers = [Dense(n_in, n_out, act)]
    for _ in range(sol.ae_epochs):
        order = rng.permutation(m)
        for s in range(0, m, sol.batch_size):
            J = bk.index(order[s:s + sol.batch_size])
            ZJ = Z[:, J]
            _, grads = loss_and_grads(bk, Ws, ZJ, ZJ, "mse", bias, layers)
            opt.step(Ws, grads)
    return Ws[0]
