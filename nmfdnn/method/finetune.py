"""Algorithm 4: the alternating fine-tuning over mini-batches (Sec. 3.3)."""

from __future__ import annotations

from .filters import filter_step, filter_step_share, output_filter_step
from .linalg import batch_input_pinv, right_pinv
from .network import check_finite, forward
from .nonlinear_lsq import alg2, alg2_right_safe, alg3_left, alg3_left_safe
from .semi_nmf import semi_nmf
from .settings import NMFSettings, layer_omega
from .sparse import alg2_l1
from ..timers import NullTimers

_REMEDY = "try a smaller solver.omega, a larger solver.hidden_rcond or dtype=float64"


def finetune_batch(bk, net, Ws, XJ, YJ, X_pinv, sol: NMFSettings, timers=None, memory=None, trace=None):
    """One iteration ``k`` of Algorithm 4 on one mini-batch; updates ``Ws`` in place.

    Line 9 of the previous iteration (``Z_i^{(k-1)}``) is the forward pass with the current weights.
    Line 3: semi-NMF (4) for ``W_d`` and the target ``Z_hat_{d-1}``. Lines 4-7: for
    ``i = d-1, ..., 2``, Algorithm 2 for ``W_i`` (7) then Algorithm 3 for ``Z_hat_{i-1}`` (8), started
    from the forward-pass ``Z_{i-1}``. Line 8: Algorithm 2 for ``W_1`` with the batch
    pseudo-inverse ``X_pinv`` of the truncated input (Sec. 3.3). Algorithm 2's first residual
    reuses the forward pass: ``W_i`` has not changed since, so ``f(W_i Z_{i-1}) = Z_i``.

    Options beyond the paper (all off by default, and then the code path is the paper's): ridge
    ``sol.alpha`` on every W update (semi-NMF's least squares and Algorithm 2), ``sol.beta`` on
    semi-NMF's Z update, ``sol.lam`` on Algorithm 3's pseudo-inverse, per-layer omega
    (``sol.layer_omega``) and the step safeguard (``sol.safeguard``). ``sol`` is an
    :class:`~nmfdnn.method.settings.NMFSettings`.

    ``net`` (:class:`~nmfdnn.method.network.Network`) says how each step acts on a layer: Algorithm 2
    on its ``design`` matrix ``A`` and its ``targets``, Algorithm 3 by its ``z_step``; a ``frozen``
    layer and every one below it keep their weights. A convolutional first layer has no truncated
    input SVD: ``X_pinv`` is None and line 8 uses the pseudo-inverse of its patch matrix
    (``solver.pinv``). With ``sol.filter_step == "gauss_newton"`` a convolution ``W_{i-1}`` is instead
    fitted to the target ``Z_hat_i`` through ``W_i`` (:func:`nmfdnn.method.filters.filter_step`), right
    after the step of ``W_i`` (``sol.filter_order == "after"``) or before it, on the residual ``W_i`` has
    not absorbed yet, ``W_i`` then stepping on the new filters' output (``"before"``); with
    ``sol.filter_target == "output"`` every convolution is first fitted to the network's own residual
    ``Y - W_d Z_{d-1}`` through all the layers above it (:func:`nmfdnn.method.filters.output_filter_step`)
    and Algorithm 4 then runs on the new filters' features. The convolution's own Algorithm 2 is
    skipped, and so is Algorithm 3 when nothing below needs a target.

    ``memory``: a :class:`~nmfdnn.method.memory.GramMemory` (``sol.memory > 0``): every Algorithm 2
    and semi-NMF weight step uses its running Gram matrices. ``trace``: a list that gets one
    ``(i, share, ratio)`` per convolution ``W_i`` stepped (share of the residual above removed,
    ``||dW|| / ||W||``).
    """
    timers = timers or NullTimers()
    d = len(Ws)
    alpha, beta = sol.alpha, sol.beta
    solve2 = alg2_right_safe if sol.safeguard else alg2
    solve3 = alg3_left_safe if sol.safeguard else alg3_left
    layers = net.hidden
    gauss_newton = sol.filter_step == "gauss_newton"
    frozen = [layer.frozen for layer in layers]  # the ablation: never updated
    stepped = set()  # Python indices of the convolutions the Gauss-Newton step has updated
    with timers("forward"):
        Zs = forward(bk, net, Ws, XJ)
    if gauss_newton and sol.filter_target == "output":  # the filters first, on the network's own residual
        for j, conv_layer in enumerate(layers):
            if not conv_layer.filters or frozen[j]:
                continue
            with timers("filters"):
                step = output_filter_step(bk, net, Ws, j, Zs, YJ, sol.filter_rho, sol.filter_cg_iters,
                                          layer_omega(sol, j + 1))
            _keep(bk, step, j, Ws, stepped, trace)
            Zs[j + 1:] = step.outputs  # Algorithm 4 goes on with the new filters' features
    with timers("semi_nmf"):  # Z_{d-1} in the range of the hidden layers' f (ReLU: the paper's Z >= 0)
        Ws[-1], Z_hat = semi_nmf(bk, YJ, Ws[-1], Zs[-1], sol.semi_nmf_iters, sol.hidden_rcond,
                                 sol.pinv, net.output_layer.bias, alpha, beta, layers[-1].act, sol.l1_activations,
                                 memory)
    check_finite(bk, Ws[-1], f"output weights W_{d} after semi-NMF", _REMEDY)
    check_finite(bk, Z_hat, f"target Z_hat_{d - 1} after semi-NMF", _REMEDY)
    above = {}  # Python index of a convolution -> (target, output) of the layer above, for the trace
    for i in range(d - 1, 1, -1):  # paper's layer index i; Python index i - 1
        layer = layers[i - 1]
        if frozen[i - 1]:
            return  # this layer and every one below keep their weights: nothing more to solve
        omega = layer_omega(sol, i)
        if gauss_newton and sol.filter_order == "before" and layers[i - 2].filters and not frozen[i - 2] \
                and i - 2 not in stepped:
            # the filters first, on the residual that W_i has not absorbed yet; W_i then sees their output
            Zs[i - 1], Zs[i] = _gauss_newton(bk, layers, Ws, Zs, i, Zs[i], Z_hat, sol, stepped, trace, timers)
        if i - 1 not in stepped:
            A = layer.design(bk, Zs[i - 1])
            with timers("pinv"):
                A_pinv = _pinv(bk, A, layer, sol, memory, f"w{i}")
            W_old = Ws[i - 1]
            with timers("alg2"):
                Ws[i - 1] = _solve2(solve2, bk, layer, layer.targets(bk, Z_hat), A, A_pinv, Ws[i - 1], sol, omega,
                                    layer.targets(bk, Zs[i]))
            check_finite(bk, Ws[i - 1], f"weights W_{i} after Algorithm 2", _REMEDY)
            _trace_alg2(bk, trace, above, layers, i - 1, W_old, Ws, Zs, timers)
        if frozen[i - 2]:
            return  # the target below would feed only frozen layers
        below = layers[i - 2]
        if i - 2 in stepped:
            if i == 2:
                return  # W_1 is done and nothing below needs a target
        elif below.filters and (gauss_newton or trace is not None):
            with timers("forward"):
                Z_up = layer.forward(bk, Ws[i - 1], Zs[i - 1])  # Z_i with the new W_i
            if gauss_newton:
                _gauss_newton(bk, layers, Ws, Zs, i, Z_up, Z_hat, sol, stepped, trace, timers)
                if i == 2:
                    return  # W_1 is done and nothing below needs a target
            else:
                above[i - 2] = (Z_hat, Z_up)
        Z_hat = layer.z_step(bk, Z_hat, Ws[i - 1], Zs[i - 1], sol.lsq_iters, omega, sol, solve3, timers)
        check_finite(bk, Z_hat, f"target Z_hat_{i - 1} after Algorithm 3", _REMEDY)
    first = layers[0]
    if frozen[0] or 0 in stepped:
        return
    A = first.design(bk, XJ)
    if X_pinv is None:  # a convolutional first layer: the pseudo-inverse of its patch matrix
        with timers("pinv"):
            X_pinv = _pinv(bk, A, first, sol, memory, "w1")
    W_old = Ws[0]
    with timers("alg2"):
        Ws[0] = _solve2(solve2, bk, first, first.targets(bk, Z_hat), A, X_pinv, Ws[0], sol, layer_omega(sol, 1),
                        first.targets(bk, Zs[1]))
    check_finite(bk, Ws[0], "weights W_1 after Algorithm 2", _REMEDY)
    _trace_alg2(bk, trace, above, layers, 0, W_old, Ws, Zs, timers)


def _gauss_newton(bk, layers, Ws, Zs, i, Z_up, Z_hat, sol: NMFSettings, stepped, trace, timers):
    """The Gauss-Newton filter step of the convolution ``W_{i-1}`` through ``W_i`` (output ``Z_up``,
    target ``Z_hat``), kept by :func:`_keep`; returns ``[Z_{i-1}, Z_i]`` with the new filters."""
    with timers("filters"):
        step = filter_step(bk, layers[i - 2], layers[i - 1], Ws[i - 2], Ws[i - 1], Zs[i - 2], Zs[i - 1], Z_up, Z_hat,
                           sol.filter_rho, sol.filter_cg_iters, layer_omega(sol, i - 1))
    _keep(bk, step, i - 2, Ws, stepped, trace)
    return step.outputs


def _keep(bk, step, j: int, Ws, stepped, trace):
    """A filter step's new weights for the convolution at Python index ``j``: checked, kept, marked as
    stepped and traced."""
    check_finite(bk, step.W, f"weights W_{j + 1} after the Gauss-Newton filter step", _REMEDY)
    Ws[j] = step.W
    stepped.add(j)
    if trace is not None:
        trace.append((j + 1, step.share, step.ratio))


def _pinv(bk, A, layer, sol: NMFSettings, memory, key: str):
    """``A^+`` of Algorithm 2's line 4 for ``layer``'s design matrix ``A``: the batch's own
    (:func:`linalg.right_pinv`) or, with memory across batches, the running Gram matrix's
    (:meth:`memory.GramMemory.right_pinv`)."""
    if memory is None:
        return right_pinv(bk, A, sol.hidden_rcond, sol.pinv, sol.alpha, layer.bias)
    return memory.right_pinv(bk, A, key, sol.hidden_rcond)


def _trace_alg2(bk, trace, above, layers, j, W_old, Ws, Zs, timers):
    """The trace of Algorithm 2's step of the convolution at Python index ``j``: the share of the
    layer above's residual it removed (:func:`nmfdnn.method.filters.filter_step_share`)."""
    if trace is None or j not in above:
        return
    target, Z_up = above[j]
    with timers("trace"):
        share, ratio = filter_step_share(bk, layers[j], layers[j + 1], W_old, Ws[j], Ws[j + 1], Zs[j], Z_up,
                                         target)
    trace.append((j + 1, share, ratio))


def _solve2(solve2, bk, layer, B, A, A_pinv, W, sol: NMFSettings, omega: float, fx0):
    """Algorithm 2 for one ``W_i`` with the layer's ``f`` in line 3; with ``sol.l1_weights`` its
    proximal variant (:func:`nmfdnn.method.sparse.alg2_l1`)."""
    if sol.l1_weights:
        return alg2_l1(bk, B, A, A_pinv, W, sol.lsq_iters, omega, sol.l1_weights, fx0, layer.act, layer.bias)
    return solve2(bk, B, A, A_pinv, W, sol.lsq_iters, omega, fx0=fx0, act=layer.act)


def finetune_epoch(bk, net, Ws, X, Y, xsvd, batches, sol: NMFSettings, timers=None, on_batch=None,
                   start_batch: int = 0, memory=None, trace=None):
    """One epoch of Algorithm 4 on ``net``: :func:`finetune_batch` over the column index sets ``batches``
    (from ``batches[start_batch]`` on, when a resumed epoch already did the first ones). ``xsvd`` is
    None for a convolutional first layer (no input SVD). ``memory``, ``trace``: as there."""
    timers = timers or NullTimers()
    for b, J in enumerate(batches):
        if b < start_batch:
            continue
        X_pinv = None
        if xsvd is not None:
            with timers("batch_pinv"):
                X_pinv = (batch_input_pinv(bk, xsvd, J, sol.input_pinv, sol.alpha, net.bias) if memory is None
                          else memory.input_pinv(bk, xsvd, J))
        with timers("gather"):
            XJ, YJ = X[:, J], Y[:, J]
        finetune_batch(bk, net, Ws, XJ, YJ, X_pinv, sol, timers, memory, trace)
        if on_batch is not None:
            on_batch(b)
