"""The NMF stacked autoencoder of Algorithm 5 (Sec. 4), which sets the initial guesses W_i^{(0)}."""

from __future__ import annotations

import numpy as np

from .activations import RELU
from .linalg import batch_input_pinv, right_pinv
from .network import affine, augment, check_finite
from .nmf import nmf, normalize_rows
from .nonlinear_lsq import alg2
from .settings import NMFSettings
from ..timers import NullTimers


def pretrain_layer(bk, Z_prev, A_pinv, n_out, sol: NMFSettings, rng, timers=None, bias=False, group: int = 1,
                   act=RELU):
    """Algorithm 5, lines 2-7, for one layer ``i``: returns ``(W_i, Z_i)``.

    ``Z_prev`` is ``Z_{i-1}`` (the input X for i = 1), both the autoencoder's input and the NMF
    target ``Z_hat_{i-1}`` of (9). Line 2 draws ``W~_i^{(0)}, Z_i^{(0)}`` uniformly in [0, 1) and
    starts ``W_i`` from zero; each of ``sol.ae_iters`` outer iterations runs ``sol.ae_nmf_iters``
    NMF updates of (9) (line 4), then ``sol.ae_lsq_iters`` iterations of Algorithm 2 for (10)
    (line 5), then sets ``Z_i = f(W_i Z_{i-1})`` (line 6). ``group``: the columns come in runs of
    ``group`` per sample (a convolution's patch columns, one per position), so that with several
    processes each keeps the columns of its own samples. ``act``: the layer's ``f``; NMF
    factors its nonnegative target (:meth:`nmfdnn.method.activations.Activation.nmf_target`), started from
    the nonnegative part of line 6's ``Z_i``.
    """
    timers = timers or NullTimers()
    xp = bk.xp
    n_in, m = Z_prev.shape
    Wt = bk.asarray(rng.random((n_in, n_out)))
    # Z_i^{(0)} is drawn over all samples; a rank of several keeps its share of the columns
    Z = rng.random((n_out, bk.total(m) // group, group))  # per sample, its group of columns
    Z = bk.asarray(Z[:, bk.share(np.arange(Z.shape[1]))].reshape(n_out, m))
    W = xp.zeros((n_out, n_in + int(bias)), dtype=bk.dtype)
    A = augment(bk, Z_prev, bias)
    target = act.nmf_target(bk, Z_prev)
    for _ in range(sol.ae_iters):
        with timers("ae_nmf"):
            Wt, Z_hat = nmf(bk, target, Wt, act.nmf_target(bk, Z), sol.ae_nmf_iters)
            if sol.ae_normalize:  # beyond the paper: the same product, Z_hat at unit scale
                Wt, Z_hat = normalize_rows(bk, Wt, Z_hat)
        with timers("ae_alg2"):
            W = alg2(bk, Z_hat, A, A_pinv, W, sol.ae_lsq_iters, sol.omega, act=act)
        check_finite(bk, W, f"autoencoder weights of hidden layer (n={n_out})",
                     "try a smaller solver.omega or a larger solver.hidden_rcond")
        Z = affine(W, Z_prev, bias)
        act.apply(bk, Z, out=Z)
    return W, Z


def pretrain(bk, net, X, Y, J, xsvd, sol: NMFSettings, rng, timers=None, on_layer=None):
    """Algorithm 5 over all hidden layers of ``net`` (:class:`~nmfdnn.method.network.Network`) on the
    samples ``J``, then the output layer.

    Returns the initial guesses ``[W_1^{(0)}, ..., W_d^{(0)}]`` of Algorithm 4. The first layer
    uses the batch pseudo-inverse of the truncated input SVD (Sec. 3.3); deeper layers the
    pseudo-inverse of their input ``Z_{i-1}`` (``solver.pinv``, ``solver.hidden_rcond``). The output
    weights are ``W_d = Y Z_{d-1}^dagger`` (least squares), or zero with ``solver.output_init=zeros``.

    A layer's autoencoder works on its ``inputs``: for a convolution the pooled patch matrix (every
    patch of every sample a column), so that (9) is an NMF of the patches, ``W~_i`` a dictionary of
    ``channels`` nonnegative patches, and (10) Algorithm 2 for the shared filter ``W_i``; its ``Z_i``
    goes back to columns of samples (``outputs``). A first layer without an input SVD (``xsvd`` None:
    a convolution) uses its patch matrix's pseudo-inverse; with ``solver.ae_whiten`` a filter layer is
    learnt from whitened patches (:func:`nmfdnn.method.filterbank.pretrain_whitened`).
    """
    timers = timers or NullTimers()
    Ws = []
    Z = X[:, J]
    for i, layer in enumerate(net.hidden):
        m = Z.shape[1]
        if layer.filters and sol.ae_whiten is not None:  # a filter bank from whitened patches
            from .filterbank import pretrain_whitened

            W = pretrain_whitened(bk, Z, layer, sol, rng, timers)
            Z = layer.forward(bk, W, Z)
            Ws.append(W)
            if on_layer is not None:
                on_layer(i)
            continue
        inputs = layer.inputs(bk, Z)
        with timers("ae_pinv"):
            if i == 0 and xsvd is not None:
                P = batch_input_pinv(bk, xsvd, J, sol.input_pinv)
            else:
                P = right_pinv(bk, augment(bk, inputs, layer.bias), sol.hidden_rcond, sol.pinv)
        W, Z = pretrain_layer(bk, inputs, P, layer.shape[0], sol, rng, timers, layer.bias, inputs.shape[1] // m,
                              layer.act)
        Z = layer.outputs(bk, Z, m)
        Ws.append(W)
        if on_layer is not None:
            on_layer(i)
    YJ = Y[:, J]
    top = net.output_layer
    with timers("ae_output"):
        if sol.output_init == "lstsq":  # with solver.alpha: ridge, as every W update of Algorithm 4
            Wd = right_pinv(bk, top.design(bk, Z), sol.hidden_rcond, sol.pinv, sol.alpha, top.bias).apply(YJ)
        else:
            Wd = bk.xp.zeros(top.shape, dtype=bk.dtype)
    check_finite(bk, Wd, "initial output weights W_d", "try a larger solver.hidden_rcond")
    Ws.append(Wd)
    return Ws
