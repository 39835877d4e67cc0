"""The backpropagation + Adam baseline of the paper's Sec. 5, written on the same backend seam.

Weights are stored like the NMF solver's: ``W_i`` is ``n_i x (n_{i-1} + 1)`` with the bias as last
column when the layers have a bias, so that :mod:`nmfdnn.method.network` evaluates both solvers alike.
Each layer's initialisation and gradient are its own (:mod:`nmfdnn.method.layers`: ``glorot``,
``gradient``, ``adjoint``).
"""

from __future__ import annotations

from ..method.network import forward


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


def loss_and_grads(bk, net, Ws, X, Y, loss: str):
    """Loss of the network ``net`` (:class:`~nmfdnn.method.network.Network`) on the columns of ``X``
    and its gradients (backpropagation, [15]): from the output layer down, each layer's
    ``gradient`` of its weights and ``adjoint`` for the gradient below, times ``f'`` of the layer
    below written through its output. For a convolution, ``U = T(W A)`` with ``A = [Pbar(Z); e^T]``:
    ``dW = (T^-1 G) A^T`` and ``dZ = Pbar^T(W_0^T T^-1 G)`` (im2col's adjoint,
    :func:`nmfdnn.method.conv.linear_map_adjoint`)."""
    Zs = forward(bk, net, Ws, X)
    out = net.output_layer.forward(bk, Ws[-1], Zs[-1])
    value, G = loss_and_output_grad(bk, out, Y, loss)
    grads = [None] * len(Ws)
    for i in range(len(Ws) - 1, -1, -1):
        layer, Z = net.layers[i], Zs[i]
        grads[i] = layer.gradient(bk, Ws[i], G, Z)
        if i > 0:
            G = layer.adjoint(bk, layer.split(Ws[i])[0], G)
            G *= net.layers[i - 1].act.derivative(bk, Z)  # f'(U) through Z = f(U)
    return value, grads


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


def pretrain_autoencoder(bk, Z, layer, sol, rng):
    """One layer of the stacked autoencoder trained by backprop + Adam (Sec. 5, ref. [1]).

    Encoder ``layer`` (``f(W Z)``, dense), linear decoder ``W' f(W Z)``, squared reconstruction error,
    Adam with ``solver.ae_lr`` on mini-batches of ``solver.batch_size`` for ``solver.ae_epochs`` epochs.
    Returns the encoder weights.
    """
    from ..method.activations import LINEAR
    from ..method.layers import Dense
    from ..method.network import Network

    m = Z.shape[1]
    net = Network((layer, Dense(layer.n_out, layer.n_in, LINEAR, layer.bias)))
    Ws = [lay.glorot(bk, rng) for lay in net.layers]
    opt = Adam(bk, Ws, sol.ae_lr, sol.beta1, sol.beta2, sol.eps)
    for _ in range(sol.ae_epochs):
        order = rng.permutation(m)
        for s in range(0, m, sol.batch_size):
            J = bk.index(order[s:s + sol.batch_size])
            ZJ = Z[:, J]
            _, grads = loss_and_grads(bk, net, Ws, ZJ, ZJ, "mse")
            opt.step(Ws, grads)
    return Ws[0]
