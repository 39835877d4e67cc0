"""The method's one notion of a layer: what Algorithms 2, 3 and 5, the forward pass and the backprop
baseline need to know about a layer ``Z_i = f(lin_i(W_i, Z_{i-1}))`` whose map is linear in ``W_i``
and in ``Z_{i-1}``. A layer owns its activation ``act`` (``f``), its ``bias`` (a last column of
``W_i`` acting on a row of ones) and whether it is ``frozen`` (its weights keep their initialisation).
It says

* ``shape``: the shape of ``W_i``; ``n_in``, ``n_out``: the features of ``Z_{i-1}``, ``Z_i`` per sample;
* ``forward(bk, W, Z)``: ``Z_i`` from ``Z_{i-1}`` (columns are samples, eq. 1);
* ``split(W)``: ``(W_0, c)``, the weights without their bias column and the bias column (or None);
  ``linear(bk, W_0, Z)``: ``L Z``, the layer's linear part without the bias, ``adjoint(bk, W_0, S)``:
  ``L^T S``;
* ``design(bk, Z)``: the matrix ``A = [inputs(Z); e^T]`` with ``lin(W, Z) = T(W A)`` -- Algorithm 2's
  fixed factor of (7) and (10), and Algorithm 5's NMF target (9) ``inputs(Z)``;
  ``targets(bk, B)`` (``T^-1``): a target ``Z_hat_i`` in the layout of ``W A``, ``outputs`` (``T``) back;
* ``z_step(bk, B, W, Z0, iters, omega, sol, solve3, timers)``: Algorithm 3 for (8), ``Z_{i-1}`` through
  the layer;
* ``glorot(bk, rng)``: the backprop baseline's initial ``W_i`` (Glorot and Bengio's uniform);
  ``gradient(bk, W, G, Z)``: ``dW_i`` of the loss from ``G`` (its gradient with respect to the layer's
  pre-activation) and the input ``Z_{i-1}``;
* ``filters``: whether ``W_i`` is a bank of filters shared across positions (the filter steps of
  :mod:`.filters`, the filter banks of :mod:`.filterbank`, the filter trace and ``solver.freeze_conv``
  act on such layers; Algorithm 2 for such a first layer uses its patch matrix's pseudo-inverse, not
  the truncated input SVD; the backprop baseline's stacked autoencoder pre-trains only the others).

:class:`Dense` is the paper's layer (``A = [Z; e^T]``, ``T`` the identity), its steps the same calls,
in the paper's order; with the identity ``f`` (:data:`~.activations.LINEAR`) it is the output layer
``W_d``. :class:`Conv` is a convolution with average pooling (:mod:`nmfdnn.method.conv`).

:func:`build` makes the :class:`~.network.Network` of a run from its input and output sizes and the
entries of each layer type's config key (:data:`LAYER_TYPES`, in that order: ``conv``, then
``hidden``). A further layer type is one more class here, listed in :data:`LAYER_TYPES`, whose ``key``
names its entries in the config (a field of ``TrainConfig`` in :mod:`nmfdnn.config.schema`);
:func:`nmfdnn.config.network.build_network` reads every type's entries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from . import conv as _conv
from .activations import LINEAR, RELU, Activation
from .linalg import left_pinv
from .network import Network, affine, augment


class _BiasColumn:
    """What every layer shares: its weights ``W_i = [W_0, c]``, the bias column last when it has one."""

    def split(self, W):
        """``(W_0, c)``: the weights without their bias column, and the bias column (None without a bias)."""
        return (W[:, :-1], W[:, -1:]) if self.bias else (W, None)


@dataclass(frozen=True)
class Dense(_BiasColumn):
    """A fully connected layer, ``Z_i = f(W_i [Z_{i-1}; e^T])`` (eq. 1; ``act``: ``f``, ReLU by default)."""

    n_in: int
    n_out: int
    act: Activation = RELU
    bias: bool = False
    frozen: bool = False

    key = "hidden"  # the config key listing these layers: their widths
    filters = False
    images = False  # whether its input must be an image

    @classmethod
    def make(cls, entry, shape, act: Activation, bias: bool, frozen: bool) -> "Dense":
        """The layer of ``hidden``'s entry (its width) on inputs of ``shape``."""
        return cls(math.prod(shape), int(entry), act, bias, frozen)

    @property
    def out_shape(self) -> tuple:
        return (self.n_out,)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n_out, self.n_in + int(self.bias))

    def forward(self, bk, W, Z):
        U = affine(W, Z, self.bias)
        return self.act.apply(bk, U, out=U)

    def linear(self, bk, W0, Z):  # noqa: ARG002 (the layer protocol)
        return W0 @ Z

    def adjoint(self, bk, W0, S):  # noqa: ARG002 (the layer protocol)
        return W0.T @ S

    def design(self, bk, Z):
        return augment(bk, Z, self.bias)

    def inputs(self, bk, Z):  # noqa: ARG002 (the layer protocol)
        return Z

    def targets(self, bk, B):  # noqa: ARG002 (the layer protocol)
        return B

    def outputs(self, bk, Zp, m: int):  # noqa: ARG002 (the layer protocol)
        return Zp

    def z_step(self, bk, B, W, Z0, iters: int, omega: float, sol, solve3, timers):
        """Algorithm 3 for (8): ``min_{Z >= 0} ||B - f(W Z + c e^T)||`` with the dense ``W^dagger``."""
        W0, c = self.split(W)
        with timers("pinv"):
            W_pinv = left_pinv(bk, W0, sol.hidden_rcond, sol.pinv, sol.lam)
        with timers("alg3"):
            l1 = sol.l1_activations  # (validate refuses it with the safeguard's solve3)
            return solve3(bk, B, W0, W_pinv, Z0, iters, omega, offset=c, act=self.act, **({"l1": l1} if l1 else {}))

    def glorot(self, bk, rng):
        """Glorot and Bengio's "normalized initialization" (the paper's ref. [4]): ``U(-a, a)``,
        ``a = sqrt(6 / (n_in + n_out))``; the bias column starts at zero."""
        a = math.sqrt(6.0 / (self.n_in + self.n_out))
        W = bk.asarray(rng.uniform(-a, a, size=self.shape))
        if self.bias:
            W[:, -1] = 0.0
        return W

    def gradient(self, bk, W, G, Z):
        """``dW = G [Z; e^T]^T`` (the bias column: ``G``'s row sums)."""
        if not self.bias:
            return G @ Z.T
        g = bk.xp.empty_like(W)
        bk.xp.matmul(G, Z.T, out=g[:, :-1])
        g[:, -1] = G.sum(axis=1)
        return g


@dataclass(frozen=True)
class Conv(_BiasColumn):
    """A convolution with average pooling, ``Z_i = f(T(W_i [Pbar(Z_{i-1}); e^T]))`` (:mod:`.conv`)."""

    spec: _conv.ConvSpec
    act: Activation = RELU
    bias: bool = False
    frozen: bool = False

    key = "conv"  # the config key listing these layers: channels, kernel, stride, padding, pool
    filters = True
    images = True

    @classmethod
    def make(cls, entry, shape, act: Activation, bias: bool, frozen: bool) -> "Conv":
        """The layer of a ``conv`` entry (a mapping) on ``(c, h, w)`` images; ``ValueError`` saying why
        it does not fit them."""
        c, h, w = shape
        spec = _conv.ConvSpec(c, h, w, int(entry["channels"]), int(entry["kernel"]), int(entry.get("stride", 1)),
                              int(entry.get("padding", 0)), int(entry.get("pool", 1)))
        problem = spec.problem()
        if problem:
            raise ValueError(problem)
        return cls(spec, act, bias, frozen)

    @property
    def n_in(self) -> int:
        return self.spec.n_in

    @property
    def n_out(self) -> int:
        return self.spec.n_out

    @property
    def out_shape(self) -> tuple:
        return (self.spec.channels, self.spec.ph, self.spec.pw)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.spec.channels, self.spec.patch + int(self.bias))

    def forward(self, bk, W, Z):
        return _conv.forward(bk, W, Z, self.spec, self.bias, self.act)

    def linear(self, bk, W0, Z):
        return _conv.linear_map(bk, W0, Z, self.spec)

    def adjoint(self, bk, W0, S):
        return _conv.linear_map_adjoint(bk, W0, S, self.spec)

    def design(self, bk, Z):
        return _conv.patch_matrix(bk, Z, self.spec, self.bias)

    def inputs(self, bk, Z):
        return _conv.pooled_patches(bk, Z, self.spec)

    def targets(self, bk, B):
        return _conv.to_patches(bk, B, self.spec)

    def outputs(self, bk, Zp, m: int):
        return _conv.to_columns(bk, Zp, self.spec, m)

    def z_step(self, bk, B, W, Z0, iters: int, omega: float, sol, solve3, timers):  # noqa: ARG002 (protocol)
        """Algorithm 3 through the convolution, ``L^dagger`` by CGLS (``sol.cg_iters`` steps; the step
        safeguard does not apply here)."""
        with timers("alg3"):
            return _conv.conv_z_step(bk, B, W, Z0, self.spec, iters, omega, self.bias, sol.cg_iters, act=self.act,
                                     l1=sol.l1_activations)

    def glorot(self, bk, rng):
        """Glorot filters: ``U(-a, a)``, ``a = sqrt(6 / (c k k + channels k k))`` (fan-in and fan-out of
        the convolution); the bias column starts at zero."""
        s = self.spec
        a = math.sqrt(6.0 / (s.patch + s.channels * s.kernel * s.kernel))
        W = bk.xp.zeros(self.shape, dtype=bk.dtype)
        W[:, :s.patch] = bk.asarray(rng.uniform(-a, a, size=(s.channels, s.patch)))
        return W

    def gradient(self, bk, W, G, Z):  # noqa: ARG002 (the layer protocol)
        """``dW = (T^-1 G) A^T`` with ``A = [Pbar(Z); e^T]``."""
        return self.targets(bk, G) @ self.design(bk, Z).T


LAYER_TYPES = (Conv, Dense)  # the hidden layers' types, in the order a network stacks them


def build(n_in: int, n_out: int, image=None, act: Activation = RELU, bias: bool = False, freeze_filters: bool = False,
          **entries) -> Network:
    """The network on ``n_in`` input features (``image``: their shape ``(c, h, w)``, for the layer types
    that need images) with ``n_out`` outputs: for each type of :data:`LAYER_TYPES` in turn, a layer per
    entry of ``entries[type.key]`` (``conv=[{"channels": 16, "kernel": 5}]``, ``hidden=[500]``), every
    one with the activation ``act`` and ``bias``, the filter layers ``frozen`` with ``freeze_filters``;
    then the linear output layer. A layer that does not fit its input raises ``ValueError`` naming it."""
    unknown = set(entries) - {t.key for t in LAYER_TYPES}
    if unknown:
        raise ValueError(f"no layer type takes {', '.join(sorted(unknown))}")
    shape = tuple(image) if image is not None else (n_in,)
    layers: list = []
    for kind in LAYER_TYPES:
        for i, entry in enumerate(entries.get(kind.key) or ()):
            if kind.images and len(shape) != 3:
                raise ValueError(f"{kind.key} layers need images; these inputs are vectors of {math.prod(shape)}")
            try:
                layer = kind.make(entry, shape, act, bias, freeze_filters and kind.filters)
            except ValueError as e:
                raise ValueError(f"{kind.key}[{i}] on {' x '.join(map(str, shape))} inputs: {e}") from None
            layers.append(layer)
            shape = layer.out_shape
    layers.append(Dense(math.prod(shape), int(n_out), LINEAR, bias))
    return Network(tuple(layers))


def dense(Ws, bias: bool, act: Activation = RELU) -> Network:
    """The fully connected network with weights ``Ws`` (the paper's, and every net without ``conv``)."""
    return build(Ws[0].shape[1] - int(bias), Ws[-1].shape[0], act=act, bias=bias,
                 hidden=[W.shape[0] for W in Ws[:-1]])
