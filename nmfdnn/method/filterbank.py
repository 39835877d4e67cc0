"""Wide filter banks from Algorithm 5: the NMF of whitened patches (beyond the paper; ``solver.ae_whiten``).

Coates, Lee and Ng (AISTATS 2011) found two things decisive for single-layer filter banks learnt from
patches: many filters, and patches normalised and whitened before the dictionary is learnt. Algorithm
5 learns a convolution's filters as an NMF (9) of its patches followed by Algorithm 2 (10) for the
filter that reproduces the NMF's codes. Here its NMF target is the whitened patch set:

1. ``P``: ``n`` patches drawn at random from the autoencoder's images (every position of every image is
   a candidate; raw, not pooled: the filters see single patches), ``c k k x n``;
2. centred, each patch minus its own mean (``C = I - e e^T / p``, linear in the patch);
3. ZCA-whitened, ``P_w = Q (L + eps I)^{-1/2} Q^T C P`` with ``C P P^T C / n = Q L Q^T`` and
   ``eps = ae_whiten * mean(L)`` (the regulariser of Coates et al.'s ZCA; directions with no energy,
   the centring's ``e`` among them, stay zero: a pseudo-inverse square root);
4. split into its positive and negative parts, ``T = [max(P_w, 0); max(-P_w, 0)]`` (``2 c k k x n``):
   Algorithm 5's NMF (Lee and Seung) needs a nonnegative target, and the split keeps every whitened
   direction (a patch is ``T_+ - T_-``).

Then Algorithm 5 as for any layer: NMF (9) ``T ~ W~ Z_hat`` with ``channels`` codes, and Algorithm 2
for ``min_W ||Z_hat - f(W [P; e^T])||`` on the raw patches ``P``: the linear maps of steps 2 and 3 are
absorbed into the filters ``W`` (it is fitted from raw patches to the codes of whitened ones), so the
network itself needs no whitening layer. The filters act on pooled patches in the network, ``f(W P Q)``
(:mod:`conv`); pooling into a few large regions (``pool`` of half the output) bounds the features of a
wide bank (``channels x 4`` for quadrants).
"""

from __future__ import annotations

import numpy as np

from . import conv as _conv
from .linalg import right_pinv
from .network import augment, check_finite
from .nmf import nmf
from .nonlinear_lsq import alg2


def sample_patches(bk, Z, spec: _conv.ConvSpec, n: int, rng):
    """``n`` raw patches (columns, ``c k k x n``) drawn without replacement from every position of every
    sample of ``Z`` (all of them when there are fewer), in pieces of samples as :func:`conv.pooled_patches`."""
    m = Z.shape[1]
    per = spec.oh * spec.ow
    total = m * per
    pick = np.sort(rng.choice(total, size=min(n, total), replace=False))
    step = _conv._samples_per_chunk(spec, m)
    parts = []
    for s in range(0, m, step):
        lo, hi = s * per, min(m, s + step) * per
        sel = pick[(pick >= lo) & (pick < hi)] - lo
        if sel.size:
            parts.append(_conv.im2col(bk, Z[:, s:s + step], spec)[:, bk.index(sel)])
    return bk.xp.concatenate(parts, axis=1)


def whitening(bk, P, eps_rel: float):
    """``(M, T)``: the centring-and-ZCA map ``M = Q (L + eps I)^{-1/2} Q^T C`` of the patches ``P`` and
    the split nonnegative target ``T = [max(M P, 0); max(-M P, 0)]`` (module docstring, steps 2-4)."""
    xp = bk.xp
    p, n = P.shape
    C = np.eye(p) - np.full((p, p), 1.0 / p)
    Pc = bk.to_numpy(P).astype(np.float64)
    Pc = C @ Pc
    lam, Q = np.linalg.eigh(Pc @ Pc.T / n)
    lam = np.maximum(lam, 0.0)
    shifted = lam + eps_rel * lam.mean()
    keep = shifted > p * np.finfo(np.float64).eps * shifted.max()  # the centring's null direction stays null
    scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, shifted, 1.0)), 0.0)
    M = (Q * scale) @ Q.T @ C
    Pw = bk.asarray(M @ bk.to_numpy(P).astype(np.float64))
    T = xp.concatenate([xp.maximum(Pw, 0), xp.maximum(-Pw, 0)])
    return M, bk.asarray(T)


def pretrain_whitened(bk, Z, layer, sol, rng, timers):
    """Algorithm 5, lines 2-7, for a convolution ``layer`` on whitened patches (module docstring): returns
    ``W_i``."""
    spec, bias = layer.spec, layer.bias
    P = sample_patches(bk, Z, spec, sol.ae_patches, rng)
    with timers("ae_whiten"):
        _, T = whitening(bk, P, sol.ae_whiten)
    A = augment(bk, P, bias)
    with timers("ae_pinv"):
        A_pinv = right_pinv(bk, A, sol.hidden_rcond, sol.pinv)
    channels = spec.channels
    Wt = bk.asarray(rng.random((T.shape[0], channels)))
    Zc = bk.asarray(rng.random((channels, P.shape[1])))
    W = bk.xp.zeros((channels, spec.patch + int(bias)), dtype=bk.dtype)
    act = layer.act
    for _ in range(sol.ae_iters):
        with timers("ae_nmf"):
            Wt, Z_hat = nmf(bk, T, Wt, act.nmf_target(bk, Zc), sol.ae_nmf_iters)
        with timers("ae_alg2"):
            W = alg2(bk, Z_hat, A, A_pinv, W, sol.ae_lsq_iters, sol.omega, act=act)
        check_finite(bk, W, f"autoencoder filters of conv layer ({channels} channels)",
                     "try a larger solver.ae_whiten or solver.hidden_rcond")
        Zc = W[:, :-1] @ P + W[:, -1:] if bias else W @ P
        act.apply(bk, Zc, out=Zc)
    return W
