"""Hidden-layer activation functions beyond ReLU (the paper's Sec. 6: "other activation functions").

The method needs three things of ``f`` (columns are samples, ``U = W_i Z_{i-1}``):

1. ``f`` itself, element-wise: the forward pass (eq. 1) and line 3 of Algorithms 2 and 3,
   ``R_s = B - f(U_s)`` (:meth:`Activation.apply`).
2. The set the hidden matrix ``Z_{i-1} = f(U_{i-1})`` lives in -- the closure of ``f``'s range -- and
   the projection onto it (:meth:`Activation.project`). For ReLU it is ``Z >= 0``, the constraint of
   the paper's (4) and (8): line 4 of Algorithm 3, ``Z_{s+1} = f(Z_s + omega A^dagger R_s)``, *is* that
   projection for ReLU (``f = max(., 0)`` projects onto ``[0, inf)``). For another ``f`` the line
   becomes ``Z_{s+1} = proj(Z_s + omega A^dagger R_s)``: the step of (8) kept inside the set of
   outputs the layer below can produce.
3. ``f'``, for the backprop baseline, written through the output ``Z = f(U)``
   (:meth:`Activation.derivative`), so that the backward pass needs no stored pre-activations.

Algorithm 2 (``min_W ||B - f(W A)||``, line 4 ``W_{s+1} = W_s + omega R_s A^dagger``) is a fixed-point
iteration whose fixed points satisfy ``(B - f(W A)) A^dagger = 0``. For ``f`` the identity it is the
least-squares solution in one step. For a nondecreasing ``f`` with ``0 <= f' <= 1`` (every function
here) the residual map has the same Lipschitz bound as ReLU's: a step changes ``f(W A)`` by at most
the linear change ``omega R_s A^dagger A`` per entry, which is what the paper's choice ``omega in (0, 2)``
relies on. So lines 3-4 stay as written with ``f`` in line 3; nothing else changes.

The four functions, their ranges, projections and derivatives through ``Z = f(U)``:

=============  ==================================  ================  =================  ===================
name           f(u)                                range (closure)   proj(z)            f' through z
=============  ==================================  ================  =================  ===================
relu           max(u, 0)                           [0, inf)          max(z, 0)          [z > 0]
leaky_relu     max(u, a u), 0 < a < 1 (``slope``)  R                 z                  1 if z > 0 else a
capped_relu    min(max(u, 0), c) (``cap``)         [0, c]            min(max(z, 0), c)  [0 < z < c]
softplus       log(1 + exp(b u)) / b (``beta``)    [0, inf)          max(z, 0)          1 - exp(-b z)
=============  ==================================  ================  =================  ===================

Each function is one subclass of :class:`Activation` (``apply``, ``project``, ``derivative``; its
parameter a field), registered under its name for the config's ``activation`` by :func:`named`: a new
activation is one more class here. The output layer's identity (:data:`LINEAR`) is one too, not a
choice of the config.

Where the method needs ``Z >= 0``:

- semi-NMF's Z update (4), Ding, Li and Jordan's multiplicative rule: it keeps ``Z >= 0``, which is the
  range of relu and softplus; for capped_relu the result is then clipped at ``c`` (the projection);
  for leaky_relu (range R) semi-NMF's constraint does not hold and the Z update is the unconstrained
  least-squares step that moves ``Z`` least, ``Z + W^dagger (Y - W Z)`` (Algorithm 3 with ``f`` the
  identity), see :func:`nmfdnn.method.semi_nmf.update_z_unconstrained`.
- Algorithm 5's NMF (9), ``Z_{i-1} ~ W~ Z_i`` with both factors nonnegative: the input ``X >= 0`` always
  qualifies; a hidden ``Z_{i-1}`` of leaky_relu has negative entries (``a u`` for ``u < 0``), and its NMF
  target is its nonnegative part ``max(Z_{i-1}, 0)`` (:meth:`Activation.nmf_target`), the part NMF can
  represent. Algorithm 2 for (10) then fits ``f(W_i Z_{i-1})`` with the layer's own ``f``.
"""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS: dict = {}  # name -> class, every hidden-layer activation (filled as each class is defined)
NAMES = ACTIVATIONS.keys()  # the names the config's ``activation`` takes


@dataclass(frozen=True)
class Activation:
    """An element-wise activation ``f``: a subclass per function, registered under its ``name`` (a
    class with ``hidden=False`` is not a choice of the config: :data:`LINEAR`). Its parameters are
    its dataclass fields (``leaky_relu``'s ``slope``, ...), built by :func:`named`."""

    name = ""
    nonnegative = True  # f's range lies in [0, inf): semi-NMF's and NMF's Z >= 0 hold

    def __init_subclass__(cls, hidden: bool = True, **kw):
        super().__init_subclass__(**kw)
        if hidden:
            ACTIVATIONS[cls.name] = cls

    def apply(self, bk, U, out=None):
        """``f(U)``; ``out=U`` works in place."""
        raise NotImplementedError

    def project(self, bk, Z, out=None):
        """The projection onto the closure of ``f``'s range (line 4 of Algorithm 3's constraint)."""
        raise NotImplementedError

    def derivative(self, bk, Z):
        """``f'(U)`` written through the output ``Z = f(U)`` (the backprop baseline's backward pass)."""
        raise NotImplementedError

    def nmf_target(self, bk, Z):
        """The nonnegative matrix Algorithm 5's NMF (9) factors: ``Z`` itself where ``f >= 0``."""
        return Z if self.nonnegative else bk.relu(Z)

    def bound(self, bk, Z):  # noqa: ARG002 (the activation protocol)
        """Semi-NMF's multiplicatively updated ``Z >= 0`` (4) kept in ``f``'s range, in place: ``Z``
        itself where the range is ``[0, inf)``."""
        return Z


@dataclass(frozen=True)
class ReLU(Activation):
    """``max(u, 0)``, the paper's."""

    name = "relu"

    def apply(self, bk, U, out=None):
        return bk.relu(U, out=out)

    def project(self, bk, Z, out=None):
        return bk.relu(Z, out=out)

    def derivative(self, bk, Z):  # noqa: ARG002 (the activation protocol)
        return Z > 0


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """``max(u, a u)``, ``0 < a < 1`` (``slope``); its range is all of R."""

    slope: float
    name = "leaky_relu"
    nonnegative = False

    def apply(self, bk, U, out=None):
        return bk.xp.maximum(U, self.slope * U, out=out)

    def project(self, bk, Z, out=None):  # noqa: ARG002 (the activation protocol)
        if out is None:  # every real number is an output
            return Z.copy()
        if out is not Z:
            out[...] = Z
        return out

    def derivative(self, bk, Z):
        return bk.xp.where(Z > 0, 1.0, self.slope).astype(Z.dtype)


@dataclass(frozen=True)
class CappedReLU(Activation):
    """``min(max(u, 0), c)`` (``cap``); its range is ``[0, c]``."""

    cap: float
    name = "capped_relu"

    def apply(self, bk, U, out=None):
        return bk.xp.clip(U, 0, self.cap, out=out)

    def project(self, bk, Z, out=None):
        return bk.xp.clip(Z, 0, self.cap, out=out)

    def derivative(self, bk, Z):  # noqa: ARG002 (the activation protocol)
        return (Z > 0) & (Z < self.cap)

    def bound(self, bk, Z):
        return self.project(bk, Z, out=Z)


@dataclass(frozen=True)
class Softplus(Activation):
    """``log(1 + exp(b u)) / b`` (``beta``); its range is ``(0, inf)``, closure ``[0, inf)``."""

    beta: float
    name = "softplus"

    def apply(self, bk, U, out=None):
        xp = bk.xp  # overflow-free: log(1 + e^{bu}) / b = max(u, 0) + log1p(e^{-b|u|}) / b
        t = xp.exp(-self.beta * xp.abs(U))
        xp.log1p(t, out=t)
        t /= self.beta
        return xp.add(xp.maximum(U, 0, out=out), t, out=out)

    def project(self, bk, Z, out=None):
        return bk.relu(Z, out=out)

    def derivative(self, bk, Z):
        return -bk.xp.expm1(-self.beta * Z)  # sigmoid(b u) = 1 - e^{-b f(u)}


@dataclass(frozen=True)
class Linear(Activation, hidden=False):
    """The identity: the output layer's (eq. 3, ``W_d Z_{d-1}``), not a hidden layer's choice."""

    name = "linear"
    nonnegative = False

    def apply(self, bk, U, out=None):  # noqa: ARG002 (the activation protocol)
        if out is None:
            return U.copy()
        if out is not U:
            out[...] = U
        return out

    project = apply

    def derivative(self, bk, Z):
        return bk.xp.ones_like(Z)


RELU = ReLU()
LINEAR = Linear()


def named(name: str, **parameters) -> Activation:
    """The activation ``name`` with those of ``parameters`` its class takes (``slope``, ``cap``, ``beta``:
    the config's ``activation_slope``, ...); ``ValueError`` for an unknown name."""
    from dataclasses import fields

    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(NAMES)}")
    cls = ACTIVATIONS[name]
    return cls(**{f.name: float(parameters[f.name]) for f in fields(cls)})

