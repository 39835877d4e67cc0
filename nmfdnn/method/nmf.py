"""NMF (eq. 9) for the stacked autoencoder: ``min_{W~, Z >= 0} ||Z_hat_{i-1} - W~ Z||_F``."""

from __future__ import annotations


def nmf_objective(bk, A, W, H):
    R = A - W @ H
    return 0.5 * bk.total(bk.scalar((R * R).sum()))


def nmf(bk, A, W0, H0, iters: int):
    """Lee and Seung's multiplicative updates (the paper's ref. [11]) for ``A ~ W H``, ``W, H >= 0``.

    ``H <- H * (W^T A) / (W^T W H)``, then ``W <- W * (A H^T) / (W H H^T)``; each update never
    increases ``||A - W H||_F`` and keeps both factors nonnegative when ``A >= 0``. Denominators are
    floored at the smallest normal number. Returns ``(W, H)`` (Alg. 5, line 4: ``W~_i, Z_hat_i``).
    The ``H`` update is local to the columns; the ``W`` update's products ``A H^T`` and ``H H^T`` sum
    over them (``bk.allreduce``: the ranks' shares added, the identity in one process).
    """
    xp = bk.xp
    W, H = W0.copy(), H0.copy()
    tiny = xp.finfo(A.dtype).tiny
    # Work buffers reused by every iteration (the products are large: k x m and n x k).
    num_h, den_h = xp.empty_like(H), xp.empty_like(H)
    num_w, den_w = xp.empty_like(W), xp.empty_like(W)
    for _ in range(iters):
        xp.matmul(W.T @ W, H, out=den_h)
        xp.maximum(den_h, tiny, out=den_h)
        xp.matmul(W.T, A, out=num_h)
        H *= num_h
        H /= den_h
        xp.matmul(W, bk.allreduce(H @ H.T), out=den_w)
        xp.maximum(den_w, tiny, out=den_w)
        bk.allreduce(xp.matmul(A, H.T, out=num_w))
        W *= num_w
        W /= den_w
    return W, H


def normalize_rows(bk, W, H):
    """Rescale an NMF pair so that every row of ``H`` has maximum 1, ``W``'s columns compensating:
    ``W H``, hence the objective of (9), is unchanged; a zero row is left as it is. Returns ``(W, H)``.

    Beyond the paper (``solver.ae_normalize``): NMF leaves the split of scale between its factors free,
    and Lee and Seung's updates from uniform starts shrink ``Z_hat_i`` by about 1e3 per layer on MNIST, so
    a bias row of ones under ``Z_{i-1}`` outweighs it by up to 1e10 and the Gram matrix's truncation
    removes ``Z`` (a deep network with ``solver.bias=true`` sat at 89 % error after pre-training).
    """
    s = bk.allreduce(H.max(axis=1, keepdims=True), "max")
    s = bk.xp.where(s > 0, s, 1.0).astype(H.dtype)
    return W * s.T, H / s
