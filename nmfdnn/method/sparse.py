"""Sparse regularisation (the paper's Sec. 6: "sparse regularizations"): an L1 penalty on the weights
(``solver.l1_weights``) and on the hidden activations (``solver.l1_activations``), both off (0) by default.

Weights, in Algorithm 2. Problem (7) becomes ``min_W 1/2 ||B - f(W A)||_F^2 + l ||W||_1``. Line 4's step
``omega R_s A^dagger`` is the (Gauss-Newton, ``f`` linearised with unit slope) minimiser of the smooth
part's model around ``W_s``; the proximal-gradient (ISTA) way of adding a nonsmooth term is to follow a
step on the smooth part by the proximal map of the penalty, here the soft threshold

    W_{s+1} = S_{omega l}(W_s + omega R_s A^dagger),   S_t(v) = sign(v) max(|v| - t, 0)

(:func:`alg2_l1`). The metric of the step is ``A A^T`` where ISTA's is the identity, so this is the exact
proximal step only for ``A A^T = I``; ``l`` is in the units of ``W``'s entries (a threshold per step),
which is what makes it easy to read off: weights smaller than ``omega l`` after a step become exactly 0.

Activations, in Algorithm 3 and in semi-NMF. ``l ||Z_{i-1}||_1`` added to (8): line 4 is a projected step,
and the proximal map of ``t |z|`` plus the constraint ``z in range(f)`` is the projection of ``S_t(v)``
(for ``z >= 0``: ``max(v - t, 0)``), with ``t = omega l`` (:func:`nmfdnn.method.nonlinear_lsq.alg3_left`).
In semi-NMF's multiplicative Z update (Ding, Li and Jordan, eq. 10) the gradient of ``l sum Z`` is the
constant ``l``, a positive part, so it joins the denominator: ``Z * sqrt(([W^T Y]^+ + [W^T W]^- Z) /
([W^T Y]^- + [W^T W]^+ Z + l))`` -- the usual sparse-NMF rule (e.g. Hoyer 2002), still ``Z >= 0`` and
monotone for ``l >= 0`` (:func:`nmfdnn.method.semi_nmf.update_z`).

A caveat, measured (outputs/tune/README.md, activations_screen): ``W_{i+1} Z_i`` is unchanged by ``Z_i -> Z_i
/ c``, ``W_{i+1} -> c W_{i+1}``, so a penalty on ``Z_i`` alone is lowered by shrinking ``Z_i``'s scale, and
Algorithm 3's threshold ``omega l`` is absolute: each epoch's shrunk targets are fitted by ``W_i`` and thresholded
again. On MNIST [1000,500] (Algorithm 3 updates ``Z_1``) ``l = 1e-4`` takes the validation error from 5.97 %
after pre-training to 79 % after 10 epochs; on [500] (semi-NMF only) ``l = 3`` costs nothing measurable. The
run warns when the penalty meets a net with more than one hidden layer.
"""

from __future__ import annotations

from .activations import RELU
from .kernels import residual_relu_, soft_threshold_


def alg2_l1(bk, B, A, A_pinv, X0, iters: int, omega: float, l1: float, fx0=None, act=RELU, bias: bool = False):
    """Algorithm 2 with an L1 penalty on ``X``: ``X_{s+1} = S_{omega l1}(X_s + omega R_s A^dagger)``;
    with ``bias`` the last column (the bias) is not penalised. With ``l1 = 0`` the iterates of
    :func:`nmfdnn.method.nonlinear_lsq.alg2_right`."""
    xp = bk.xp
    X = X0.copy()
    R = xp.empty(B.shape, dtype=B.dtype)
    for s in range(iters):
        if s == 0 and fx0 is not None:
            xp.subtract(B, fx0, out=R)
        else:
            residual_relu_(bk, B, xp.matmul(X, A, out=R), act=act)  # line 3
        X += omega * A_pinv.apply(R)  # line 4
        soft_threshold_(bk, X[:, :-1] if bias else X, omega * l1)  # the proximal step of l1 ||X||_1
    return X


def sparsity(bk, net, Ws, X, chunk: int = 10000) -> dict:
    """The sparsity the network ``net`` reached: the share of exact zeros in its hidden layers' weights
    (``W_1 ... W_{d-1}``, bias columns excluded) and in its hidden activations ``Z_1 ... Z_{d-1}`` on the
    samples ``X`` (columns; in pieces of ``chunk``)."""
    from .network import forward

    hidden = [layer.split(W)[0] for layer, W in zip(net.hidden, Ws)]
    zeros = sum(float(bk.scalar((W == 0).sum())) for W in hidden)
    weights = zeros / max(1, sum(W.size for W in hidden))
    zero_z, size_z = 0.0, 0
    for s in range(0, X.shape[1], chunk):
        for Z in forward(bk, net, Ws, X[:, s:s + chunk])[1:]:
            zero_z += float(bk.scalar((Z == 0).sum()))
            size_z += Z.size
    return {"weights": weights, "activations": zero_z / max(1, size_z)}
