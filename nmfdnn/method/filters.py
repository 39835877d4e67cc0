"""A filter step that fits the layer above's target directly: Gauss-Newton on a convolution's weights
through the layer above it (beyond the paper; its Sec. 6 names convolutional networks as future work).

Why. Algorithm 4 hands a convolution ``Z_j = f(T(W_j A_j))`` (:mod:`conv`: ``A_j = [Pbar(Z_{j-1});
e^T]``) the target ``Z_hat_j`` of Algorithm 3, the minimum-norm ``L_{j+1}^+ R`` through the layer above.
That target lies almost wholly outside what a few shared filters can represent, and Algorithm 2 on
it does not lower the loss above. The step here asks the question the layer above asks: which change
of the filters moves ``Z_{j+1} = f(L_{j+1} Z_j + c_{j+1})`` towards its own target ``Z_hat_{j+1}``?

The linearisation. With ``U_j = T(W_j A_j)``, ``Z_j = f(U_j)`` and ``U_{j+1} = L_{j+1} Z_j + c_{j+1}``
(``L_{j+1}``: the layer above's linear part, ``W_{j+1}`` without its bias column for a dense layer,
the convolution's Toeplitz map for a convolutional one), a change ``dW`` of the filters changes

    Z_{j+1}(W_j + dW) = Z_{j+1} + D_{j+1} o L_{j+1}(D_j o T(dW A_j)) + O(||dW||^2)

where ``o`` is the element-wise product and ``D_j = f'(U_j)``, ``D_{j+1} = f'(U_{j+1})`` (written
through the outputs, :meth:`activations.Activation.derivative`; ReLU: the masks of positive entries).
Call the linear map ``dW -> D_{j+1} o L_{j+1}(D_j o T(dW A_j))`` the Jacobian ``J`` (its unknowns:
``channels x (c k k + 1)``, a few hundred to a few thousand). The step is the damped Gauss-Newton
(Levenberg-Marquardt) solution

    dW = argmin ||R - J dW||_F^2 + rho ||dW||_F^2,     R = Z_hat_{j+1} - Z_{j+1},

then ``W_j <- W_j + omega dW`` -- in the spirit of Algorithm 3, which solves for ``Z_{j-1}`` through
``W_j``, but for the weights below. ``rho = filter_rho * ||J W_j||^2 / ||W_j||^2`` (the curvature of
the fit along the current filters), so that the damping does not depend on the scale of the data.

The solve. ``J`` is never formed. Its adjoint is ``J^T S = T^-1(D_j o L_{j+1}^T(D_{j+1} o S)) A_j^T``
(:func:`conv.to_patches` is ``T``'s inverse and adjoint; ``L`` and ``L^T`` are the layer's ``linear``
and ``adjoint``: ``W_0`` and ``W_0^T`` for a dense layer, :func:`conv.linear_map` and
:func:`conv.linear_map_adjoint` for a convolution). Conjugate gradients on the normal equations
``(J^T J + rho I) dW = J^T R`` from ``dW = 0`` (CGLS with damping) run ``filter_cg_iters`` steps; each
costs one ``J`` and one ``J^T``: two products with ``A_j`` (``2 channels p m ph pw``) and two with
``L_{j+1}``. The products that contract over samples (``J^T S`` and the squared norms) are summed over
the processes (``bk.allreduce``), so every process takes the same step.

What it reports. The share of ``||R||^2`` the step removes, ``1 - ||Z_hat - Z_{j+1}(W_j + omega
dW)||^2 / ||R||^2`` (the exact, not the linearised, residual: one more forward pass of both layers),
and ``||omega dW|| / ||W_j||``: the numbers that say whether the filters learn
(:func:`filter_step_share` measures the same share for any step, Algorithm 2's included).

``tests/test_filters_reference.py`` checks ``J`` and ``J^T`` against the explicit Toeplitz matrix
(:func:`conv.dense_matrix`) and Jacobian on tiny images, and the step against a dense least-squares
solve.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FilterStepResult:
    """The new filters, the two numbers of the step (``share``: of ``||R||^2`` removed; ``ratio``:
    ``||omega dW|| / ||W||``) and the outputs of the layers it recomputed with the new filters (from the
    convolution's up: the forward pass that measured the share, for the caller to go on with)."""

    W: object
    share: float
    ratio: float
    outputs: list


def jacobian(bk, layer, above, V0, A, D_j, D_up, dW):
    """``J dW = D_{j+1} o L_{j+1}(D_j o T(dW A_j))`` (columns are samples)."""
    return chain_jacobian(bk, layer, [(above, V0, D_up)], A, D_j, dW)


def jacobian_adjoint(bk, layer, above, V0, A, D_j, D_up, S):
    """``J^T S = T^-1(D_j o L_{j+1}^T(D_{j+1} o S)) A_j^T`` (summed over the processes)."""
    return chain_adjoint(bk, layer, [(above, V0, D_up)], A, D_j, S)


def chain_jacobian(bk, layer, chain, A, D_j, dW):
    """The Jacobian through several layers above: ``chain`` lists ``(layer, W_0, D)`` from the one just
    above upwards (``D`` None: the linear output layer ``W_d``), and
    ``J dW = D_top o L_top(... D_{j+1} o L_{j+1}(D_j o T(dW A_j)))``."""
    m = D_j.shape[1]
    U = layer.outputs(bk, dW @ A, m)
    U *= D_j
    for above, V0, D in chain:
        U = above.linear(bk, V0, U)
        if D is not None:
            U *= D
    return U


def chain_adjoint(bk, layer, chain, A, D_j, S):
    """The adjoint of :func:`chain_jacobian` (summed over the processes)."""
    G = S
    for above, V0, D in reversed(chain):
        if D is not None:
            G = D * G
        G = above.adjoint(bk, V0, G)
    G = G * D_j
    return bk.allreduce(layer.targets(bk, G) @ A.T)


def _dot(bk, P, Q) -> float:
    return bk.scalar((P * Q).sum())


def _sq_norm_samples(bk, P) -> float:
    """``||P||_F^2`` of a matrix whose columns are this process's samples, summed over the processes."""
    xp = bk.xp
    return bk.scalar(bk.allreduce(xp.asarray([(P * P).sum()], dtype=xp.float64))[0])


def gauss_newton_step(bk, layer, above, W, V, A, Z_j, Z_up, B_up, rho: float, iters: int):
    """``dW = argmin ||R - J dW||^2 + rho_abs ||dW||^2`` by damped CGLS from ``dW = 0`` (module docstring),
    ``rho_abs = rho ||J W||^2 / ||W||^2``. ``Z_j``, ``Z_up``: the layers' outputs with ``W``, ``V``;
    ``B_up``: the layer above's target ``Z_hat_{j+1}``. Returns ``(dW, ||R||^2)``."""
    V0, _ = above.split(V)
    return chain_step(bk, layer, [(above, V0, above.act.derivative(bk, Z_up))], W, A, Z_j, B_up - Z_up, rho, iters)


def chain_step(bk, layer, chain, W, A, Z_j, R, rho: float, iters: int):
    """:func:`gauss_newton_step` through the layers of ``chain`` (:func:`chain_jacobian`) on the residual
    ``R`` (overwritten): damped CGLS from ``dW = 0``. Returns ``(dW, ||R||^2)``."""
    D_j = layer.act.derivative(bk, Z_j)

    def J(P):
        return chain_jacobian(bk, layer, chain, A, D_j, P)

    def Jt(S):
        return chain_adjoint(bk, layer, chain, A, D_j, S)

    r0 = _sq_norm_samples(bk, R)
    ww = _dot(bk, W, W)
    rho_abs = rho * _sq_norm_samples(bk, J(W)) / ww if ww > 0 else rho
    dW = bk.xp.zeros_like(W)
    s = Jt(R)  # J^T (R - J dW) - rho dW at dW = 0
    p = s.copy()
    gamma = _dot(bk, s, s)
    stop = 1e-24 * gamma
    for _ in range(iters):
        if not gamma > stop:
            break
        q = J(p)
        denom = _sq_norm_samples(bk, q) + rho_abs * _dot(bk, p, p)
        if not denom > 0:
            break
        alpha = gamma / denom
        dW += alpha * p
        R -= alpha * q
        s = Jt(R) - rho_abs * dW
        gamma_new = _dot(bk, s, s)
        p = s + (gamma_new / gamma) * p
        gamma = gamma_new
    return dW, r0


def residual_above(bk, layer, above, W, V, Z_prev, B_up):
    """``(||Z_hat_{j+1} - Z_{j+1}||^2, [Z_j, Z_{j+1}])`` with ``Z_{j+1} = f(L_{j+1} f(T(W A_j)) + c)``
    (the norm summed over the processes)."""
    Z_j = layer.forward(bk, W, Z_prev)
    Z_up = above.forward(bk, V, Z_j)
    return _sq_norm_samples(bk, B_up - Z_up), [Z_j, Z_up]


def filter_step(bk, layer, above, W, V, Z_prev, Z_j, Z_up, B_up, rho: float, iters: int,
                omega: float) -> FilterStepResult:
    """One Gauss-Newton filter step for the convolution ``layer`` (weights ``W``, input ``Z_prev``,
    output ``Z_j``) through ``above`` (weights ``V``, output ``Z_up``, target ``B_up``), then the exact
    share of the residual it removed."""
    A = layer.design(bk, Z_prev)
    dW, r0 = gauss_newton_step(bk, layer, above, W, V, A, Z_j, Z_up, B_up, rho, iters)
    del A
    if omega != 1.0:
        dW *= omega
    W_new = W + dW
    r1, outputs = residual_above(bk, layer, above, W_new, V, Z_prev, B_up)
    return _result(bk, W, dW, r0, r1, outputs)


def _result(bk, W, dW, r0: float, r1: float, outputs) -> FilterStepResult:
    wn = _dot(bk, W, W) ** 0.5
    return FilterStepResult(W + dW, 1.0 - r1 / r0 if r0 > 0 else 0.0,
                            (_dot(bk, dW, dW) ** 0.5) / wn if wn else 0.0, outputs)


def filter_step_share(bk, layer, above, W_old, W_new, V, Z_prev, Z_up, B_up) -> tuple[float, float]:
    """For any filter update ``W_old -> W_new`` (Algorithm 2's included): the share of the layer above's
    residual ``||Z_hat_{j+1} - Z_{j+1}||^2`` it removed, with ``Z_up`` the output above with ``W_old``,
    and ``||W_new - W_old|| / ||W_old||``."""
    r0 = _sq_norm_samples(bk, B_up - Z_up)
    r1, _ = residual_above(bk, layer, above, W_new, V, Z_prev, B_up)
    wn = _dot(bk, W_old, W_old) ** 0.5
    d = W_new - W_old
    return (1.0 - r1 / r0 if r0 > 0 else 0.0), ((_dot(bk, d, d) ** 0.5) / wn if wn else 0.0)


def output_filter_step(bk, net, Ws, j: int, Zs, Y, rho: float, iters: int, omega: float) -> FilterStepResult:
    """The Gauss-Newton filter step of the convolution ``net.hidden[j]`` on the network's own residual
    ``Y - W_d Z_{d-1}``, linearised through every layer above it and the output layer (the target
    ``filter_target=output``); ``Zs`` is the forward pass (``Zs[0] = X``)."""
    layers = net.hidden
    chain = []
    for k in range(j + 1, len(layers)):
        chain.append((layers[k], layers[k].split(Ws[k])[0], layers[k].act.derivative(bk, Zs[k + 1])))
    top, Wd = net.output_layer, Ws[-1]
    chain.append((top, top.split(Wd)[0], None))
    layer = layers[j]
    A = layer.design(bk, Zs[j])
    out = top.forward(bk, Wd, Zs[-1])
    dW, r0 = chain_step(bk, layer, chain, Ws[j], A, Zs[j + 1], Y - out, rho, iters)
    del A
    if omega != 1.0:
        dW *= omega
    outputs = [layer.forward(bk, Ws[j] + dW, Zs[j])]
    for k in range(j + 1, len(layers)):
        outputs.append(layers[k].forward(bk, Ws[k], outputs[-1]))
    r1 = _sq_norm_samples(bk, Y - top.forward(bk, Wd, outputs[-1]))
    return _result(bk, Ws[j], dW, r0, r1, outputs)
