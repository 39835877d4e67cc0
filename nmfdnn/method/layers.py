"""The method's one notion of a layer: what Algorithms 2, 3 and 5 need to know about a hidden layer
``Z_i = f(lin_i(W_i, Z_{i-1}))`` whose map is linear in ``W_i`` and in ``Z_{i-1}``.

A layer says

* ``forward(bk, W, Z, bias)``: ``Z_i`` from ``Z_{i-1}`` (columns are samples);
* ``design(bk, Z, bias)``: the matrix ``A = [inputs(Z); e^T]`` with ``lin(W, Z) = T(W A)`` --
  Algorithm 2's fixed factor of (7) and (10), and Algorithm 5's NMF target (9) ``inputs(Z)``;
  ``targets(bk, B)`` (``T^-1``): a target ``Z_hat_i`` in the layout of ``W A``, ``outputs`` (``T``) back;
* ``z_step(bk, B, W, Z0, iters, omega, sol, safeguard)``: Algorithm 3 for (8), ``Z_{i-1}`` through the
  layer;
* ``shape(bias)``: the shape of ``W_i``; ``n_out``: the features of ``Z_i`` per sample.

:class:`Dense` is the paper's layer (``A = [Z; e^T]``, ``T`` the identity), its steps the same calls,
in the paper's order; :class:`Conv` is a convolution with average pooling
(:mod:`nmfdnn.method.conv`). A further layer type is one more class here. :func:`build` makes the
layers of a network from its input shape, the ``conv`` specs and the ``hidden`` widths.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import conv as _conv
from .activations import RELU, Activation
from .linalg import left_pinv
from .network import affine, augment


@dataclass(frozen=True)
class Dense:
    """A fully connected layer, ``Z_i = f(W_i [Z_{i-1}; e^T])`` (eq. 1; ``act``: ``f``, ReLU by default)."""

    n_in: int
    n_out: int
    act: Activation = RELU

    kind = "dense"

    def shape(self, bias: bool) -> tuple[int, int]:
        return (self.n_out, self.n_in + int(bias))

    def preactivation(self, bk, W, Z, bias: bool):  # noqa: ARG002 (the layer protocol)
        return affine(W, Z, bias)

    def forward(self, bk, W, Z, bias: bool):
        U = affine(W, Z, bias)
        return self.act.apply(bk, U, out=U)

    def design(self, bk, Z, bias: bool):
        return augment(bk, Z, bias)

    def inputs(self, bk, Z):  # noqa: ARG002 (the layer protocol)
        return Z

    def targets(self, bk, B):  # noqa: ARG002 (the layer protocol)
        return B

    def outputs(self, bk, Zp, m: int):  # noqa: ARG002 (the layer protocol)
        return Zp

    def z_step(self, bk, B, W, Z0, iters: int, omega: float, sol, solve3, timers):
        """Algorithm 3 for (8): ``min_{Z >= 0} ||B - f(W Z + c e^T)||`` with the dense ``W^dagger``."""
        bias = sol.bias
        W0 = W[:, :-1] if bias else W
        c = W[:, -1:] if bias else None
        with timers("pinv"):
            W_pinv = left_pinv(bk, W0, sol.hidden_rcond, sol.pinv, sol.lam)
        with timers("alg3"):
            l1 = getattr(sol, "l1_activations", 0.0)  # (validate refuses it with the safeguard's solve3)
            return solve3(bk, B, W0, W_pinv, Z0, iters, omega, offset=c, act=self.act, **({"l1": l1} if l1 else {}))


@dataclass(frozen=True)
class Conv:
    """A convolution with average pooling, ``Z_i = f(T(W_i [Pbar(Z_{i-1}); e^T]))`` (:mod:`.conv`)."""

    spec: _conv.ConvSpec
    act: Activation = RELU

    kind = "conv"

    @property
    def n_in(self) -> int:
        return self.spec.n_in

    @property
    def n_out(self) -> int:
        return self.spec.n_out

    def shape(self, bias: bool) -> tuple[int, int]:
        return (self.spec.channels, self.spec.patch + int(bias))

    def preactivation(self, bk, W, Z, bias: bool):
        return _conv.preactivation(bk, W, Z, self.spec, bias)

    def forward(self, bk, W, Z, bias: bool):
        return _conv.forward(bk, W, Z, self.spec, bias, self.act)

    def design(self, bk, Z, bias: bool):
        return _conv.patch_matrix(bk, Z, self.spec, bias)

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
            return _conv.conv_z_step(bk, B, W, Z0, self.spec, iters, omega, sol.bias, sol.cg_iters, act=self.act,
                                     l1=getattr(sol, "l1_activations", 0.0))


def build(n_in: int, hidden, conv_specs=(), image=None, act: Activation = RELU) -> list:
    """The hidden layers of a network: the convolutions of ``conv_specs`` (each a mapping with
    ``channels, kernel, stride, padding, pool``) on ``image`` ``(c, h, w)``, then the dense widths of
    ``hidden``, every one with the activation ``act``. A convolution that does not fit its input raises
    ``ValueError`` naming it."""
    layers: list = []
    if conv_specs:
        c, h, w = image
        for i, s in enumerate(conv_specs):
            spec = _conv.ConvSpec(c, h, w, int(s["channels"]), int(s["kernel"]), int(s.get("stride", 1)),
                                  int(s.get("padding", 0)), int(s.get("pool", 1)))
            problem = spec.problem()
            if problem:
                raise ValueError(f"conv[{i}] on {c} x {h} x {w} inputs: {problem}")
            layers.append(Conv(spec, act))
            c, h, w = spec.channels, spec.ph, spec.pw
        n_in = c * h * w
    for n in hidden:
        layers.append(Dense(n_in, int(n), act))
        n_in = int(n)
    return layers


def weight_shapes(layers, n_out: int, bias: bool) -> list[tuple[int, int]]:
    """The shapes of ``W_1, ..., W_d``: each hidden layer's, then the dense output layer's."""
    return [layer.shape(bias) for layer in layers] + [(n_out, layers[-1].n_out + int(bias))]


def dense(Ws, bias: bool, act: Activation = RELU) -> list:
    """The layers of a fully connected network with weights ``Ws`` (the paper's, and every net
    without ``conv``)."""
    return [Dense(W.shape[1] - int(bias), W.shape[0], act) for W in Ws[:-1]]


