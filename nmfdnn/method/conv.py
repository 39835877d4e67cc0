"""Convolutional layers for the alternating optimisation: the paper's "we will extend our algorithm to
convolutional neural networks" (Sec. 6), with Algorithms 2 and 3 acting on a convolution.

Layout. Columns are samples, as everywhere: an image of ``c`` channels of ``h x w`` pixels is one
column of length ``c h w`` in C order (channel, row, column), the order of the CIFAR-10 binary files
and of MNIST's pixels. A layer ``(channels, kernel k, stride s, padding p, pool q)`` maps it to
``channels x ph x pw`` with ``oh = (h + 2p - k) // s + 1`` and ``ph = oh // q`` (likewise ``ow, pw``).

The layer. With ``P(Z)`` the **patch matrix** of ``Z`` (:func:`im2col`: one column per sample and
output position, ``c k k`` rows in the order (channel, ky, kx), PyTorch's ``weight.reshape(out, -1)``)
and ``Q`` the average over each ``q x q`` window of output positions, the layer is

    Z_i = f(T(W_i Pbar(Z_{i-1})))        Pbar = P Q  (the pooled patch matrix, :func:`pooled_patches`)

where ``W_i`` is ``channels x c k k`` (``+ 1`` column for a bias, acting on a row of ones) and ``T``
re-orders the ``channels x (m ph pw)`` product into columns of samples (:func:`to_columns`). Average
pooling is linear and comes *before* ``f``: ``Q`` averages patch columns, and ``W (P Q) = (W P) Q``, so
the pooled convolution is again one product ``W Pbar`` and the layer is ``f`` of something linear in
``W_i`` and linear in ``Z_{i-1}`` -- the form (6) that Algorithms 2 and 3 need.

Algorithm 2 for ``W_i`` (eq. 7 with shared weights). ``f(T(W Pbar)) ~ B`` is, row for row, the matrix
problem ``min_W ||B~ - f(W A)||_F`` with ``B~ = T^-1 B`` (:func:`to_patches`, ``channels x m ph pw``)
and ``A = Pbar`` (``c k k x m ph pw``): every pooled patch of every sample is a column, and the same
``W`` multiplies them all. Lines 3-4 are the dense ones with that ``A``; ``A^dagger`` comes from the
small ``c k k`` Gram matrix ``A A^T`` (:func:`nmfdnn.method.linalg.right_pinv`) -- :func:`conv_w_step`.

Algorithm 3 for ``Z_{i-1}`` (eq. 8 through the convolution). Per sample the layer is ``f(L z + b)``
with the linear map ``L z = vec(T(W_0 Pbar(z)))`` (``W_0``: ``W`` without its bias column, ``b``:
the bias per channel, repeated over positions). Line 4 needs ``L^dagger R_s``: the minimum-norm
solution ``D`` of ``min ||L D - R_s||_F``, column by column. It satisfies the normal equations
``L^T L D = L^T R_s`` with ``D`` in the range of ``L^T``. The adjoint is ``L^T r = Pbar^T(W_0^T
T^-1 r)`` with ``Pbar^T = Q^T P^T``: spread each pooled column back over its window (divided by
``q^2``), then scatter-add every patch into the padded image and crop the padding (:func:`col2im`,
the adjoint of :func:`im2col`). Conjugate gradients on the normal equations (CGLS) started from
``D = 0`` stays in the range of ``L^T`` and reaches ``L^dagger R_s`` in at most ``rank(L)`` steps in
exact arithmetic; :func:`cgls` runs it for all columns at once (each column its own step lengths)
to a relative tolerance. Then ``Z_{s+1} = f(Z_s + omega D)`` keeps ``Z >= 0`` -- :func:`conv_z_step`.
No ``c h w x c h w`` matrix is ever formed; :func:`dense_matrix` builds ``L`` explicitly (the layer's
Toeplitz matrix) for the reference tests only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .activations import RELU
from .kernels import add_relu_, residual_relu_


# The most numbers one image's patch matrix, a filter bank or one image's output may hold (2^28: 2 GiB
# in float64): larger layers are refused before any work, as no batch of them fits in memory.
MAX_ENTRIES = 2 ** 28


@dataclass(frozen=True)
class ConvSpec:
    """One convolutional layer on ``c x h x w`` images: ``channels`` filters of ``kernel x kernel``,
    ``stride``, zero ``padding``, then ``pool x pool`` average pooling (1: none)."""

    c: int
    h: int
    w: int
    channels: int
    kernel: int
    stride: int = 1
    padding: int = 0
    pool: int = 1

    @property
    def oh(self) -> int:
        return (self.h + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def ow(self) -> int:
        return (self.w + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def ph(self) -> int:
        return self.oh // self.pool

    @property
    def pw(self) -> int:
        return self.ow // self.pool

    @property
    def n_in(self) -> int:
        return self.c * self.h * self.w

    @property
    def n_out(self) -> int:
        return self.channels * self.ph * self.pw

    @property
    def patch(self) -> int:
        """Rows of the patch matrix, ``c k k``: the columns of ``W`` (without a bias)."""
        return self.c * self.kernel * self.kernel

    @property
    def positions(self) -> int:
        """Pooled output positions per sample, ``ph pw``."""
        return self.ph * self.pw

    def problem(self) -> str | None:
        """Why this layer does not fit its input, or None."""
        for name in ("channels", "kernel", "stride", "pool"):
            if getattr(self, name) < 1:
                return f"{name} must be a positive integer, got {getattr(self, name)}"
        if self.padding < 0:
            return f"padding must be >= 0, got {self.padding}"
        if self.padding >= self.kernel:
            return (f"padding {self.padding} must be at most kernel - 1 = {self.kernel - 1} (a wider border "
                    "adds only all-zero patches)")
        if self.kernel > min(self.h, self.w) + 2 * self.padding:
            return (f"kernel {self.kernel} is larger than the padded input ({self.h + 2 * self.padding} x "
                    f"{self.w + 2 * self.padding})")
        if self.ph < 1 or self.pw < 1:
            return f"pool {self.pool} is larger than the {self.oh} x {self.ow} output"
        sizes = {"the patch matrix of one image": self.c * self.kernel ** 2 * self.oh * self.ow,
                 "the filter bank": self.channels * (self.c * self.kernel ** 2 + 1),
                 "the output of one image": self.n_out}
        for what, entries in sizes.items():
            if entries > MAX_ENTRIES:
                return f"{what} would hold {entries:.3g} numbers (at most {MAX_ENTRIES:.3g})"
        return None


def im2col(bk, Z, spec: ConvSpec):
    """The patch matrix ``P(Z)``: ``c k k x (m oh ow)``, column ``j oh ow + y ow + x`` the
    (zero-padded) patch of sample ``j`` whose output lands at ``(y, x)``."""
    xp = bk.xp
    m = Z.shape[1]
    k, s, p = spec.kernel, spec.stride, spec.padding
    img = Z.T.reshape(m, spec.c, spec.h, spec.w)
    if p:
        img = xp.pad(img, ((0, 0), (0, 0), (p, p), (p, p)))
    win = xp.lib.stride_tricks.sliding_window_view(img, (k, k), axis=(2, 3))  # m, c, H', W', k, k
    win = win[:, :, ::s, ::s][:, :, :spec.oh, :spec.ow]
    return xp.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(spec.patch, m * spec.oh * spec.ow)


def col2im(bk, P, spec: ConvSpec, m: int):
    """The adjoint of :func:`im2col`: every patch column added back into its place of the padded
    image, the padding cropped; ``c h w x m``. ``<im2col(Z), P> = <Z, col2im(P)>``."""
    xp = bk.xp
    k, s, p = spec.kernel, spec.stride, spec.padding
    cols = P.reshape(spec.c, k, k, m, spec.oh, spec.ow)
    img = xp.zeros((m, spec.c, spec.h + 2 * p, spec.w + 2 * p), dtype=P.dtype)
    for ky in range(k):
        for kx in range(k):
            img[:, :, ky:ky + s * spec.oh:s, kx:kx + s * spec.ow:s] += cols[:, ky, kx].transpose(1, 0, 2, 3)
    img = img[:, :, p:p + spec.h, p:p + spec.w]
    return xp.ascontiguousarray(img.reshape(m, spec.n_in).T)


def pool_columns(bk, P, spec: ConvSpec, m: int):
    """``P Q``: the average of the columns of each ``q x q`` window of output positions (rows and
    columns beyond the last whole window are dropped, as PyTorch's ``avg_pool2d`` does)."""
    q = spec.pool
    if q == 1:
        return P
    r = P.shape[0]
    grid = P.reshape(r, m, spec.oh, spec.ow)[:, :, :spec.ph * q, :spec.pw * q]
    out = grid.reshape(r, m, spec.ph, q, spec.pw, q).mean(axis=(3, 5))
    return bk.xp.ascontiguousarray(out).reshape(r, m * spec.positions)


def unpool_columns(bk, G, spec: ConvSpec, m: int):
    """``G Q^T``, the adjoint of :func:`pool_columns`: each pooled column spread over its window,
    divided by ``q^2``; zeros where a row or column was dropped."""
    q = spec.pool
    if q == 1:
        return G
    xp = bk.xp
    r = G.shape[0]
    out = xp.zeros((r, m, spec.oh, spec.ow), dtype=G.dtype)
    g = G.reshape(r, m, spec.ph, 1, spec.pw, 1) / (q * q)
    out[:, :, :spec.ph * q, :spec.pw * q] = xp.broadcast_to(g, (r, m, spec.ph, q, spec.pw, q)).reshape(
        r, m, spec.ph * q, spec.pw * q)
    return out.reshape(r, m * spec.oh * spec.ow)


# Samples per piece when the unpooled patch matrix would be large: im2col before pooling holds
# ``c k k x (m oh ow)`` entries, q^2 times the pooled result (4 GB in float32 for a 32 -> 64 channel
# 5 x 5 layer on 5,000 CIFAR-10 samples); pieces of samples are exact (columns are independent).
CHUNK_ENTRIES = 1 << 26


def _samples_per_chunk(spec: ConvSpec, m: int) -> int:
    return max(1, min(m, CHUNK_ENTRIES // max(1, spec.patch * spec.oh * spec.ow)))


def pooled_patches(bk, Z, spec: ConvSpec):
    """``Pbar(Z) = P(Z) Q``: ``c k k x (m ph pw)``, the matrix ``A`` of Algorithm 2 for this layer
    (computed in pieces of samples when the unpooled patch matrix would be large)."""
    m = Z.shape[1]
    step = _samples_per_chunk(spec, m)
    if step >= m:
        return pool_columns(bk, im2col(bk, Z, spec), spec, m)
    parts = [pool_columns(bk, im2col(bk, Z[:, s:s + step], spec), spec, min(step, m - s)) for s in range(0, m, step)]
    return bk.xp.concatenate(parts, axis=1)


def pooled_patches_adjoint(bk, G, spec: ConvSpec, m: int):
    """``Pbar^T(G) = col2im(G Q^T)``: ``c h w x m`` (in pieces of samples, as :func:`pooled_patches`)."""
    step = _samples_per_chunk(spec, m)
    if step >= m:
        return col2im(bk, unpool_columns(bk, G, spec, m), spec, m)
    P = spec.positions
    parts = [col2im(bk, unpool_columns(bk, G[:, s * P:(s + n) * P], spec, n), spec, n)
             for s, n in ((s, min(step, m - s)) for s in range(0, m, step))]
    return bk.xp.concatenate(parts, axis=1)


def to_columns(bk, U, spec: ConvSpec, m: int):
    """``T``: a ``channels x (m ph pw)`` matrix as ``channels ph pw x m`` columns of samples."""
    return bk.xp.ascontiguousarray(U.reshape(spec.channels, m, spec.positions).transpose(0, 2, 1)).reshape(
        spec.n_out, m)


def to_patches(bk, B, spec: ConvSpec):
    """``T^-1``: ``channels ph pw x m`` columns as the ``channels x (m ph pw)`` matrix of Algorithm 2."""
    m = B.shape[1]
    return bk.xp.ascontiguousarray(B.reshape(spec.channels, spec.positions, m).transpose(0, 2, 1)).reshape(
        spec.channels, m * spec.positions)


def _split(W, bias: bool):
    return (W[:, :-1], W[:, -1:]) if bias else (W, None)


def preactivation(bk, W, Z, spec: ConvSpec, bias: bool):
    """``T(W [Pbar(Z); e^T])``: the layer before ``f``, ``channels ph pw x m``."""
    W0, c = _split(W, bias)
    U = W0 @ pooled_patches(bk, Z, spec)
    if c is not None:
        U += c
    return to_columns(bk, U, spec, Z.shape[1])


def forward(bk, W, Z, spec: ConvSpec, bias: bool, act=RELU):
    """``Z_i = f(T(W_i Pbar(Z_{i-1})))``: the layer's output, ``channels ph pw x m`` (``act``: ``f``)."""
    U = preactivation(bk, W, Z, spec, bias)
    return act.apply(bk, U, out=U)


def linear_map(bk, W0, D, spec: ConvSpec):
    """``L D = T(W_0 Pbar(D))`` (no bias): the layer's linear part, applied to the columns of ``D``."""
    return to_columns(bk, W0 @ pooled_patches(bk, D, spec), spec, D.shape[1])


def linear_map_adjoint(bk, W0, R, spec: ConvSpec):
    """``L^T R = Pbar^T(W_0^T T^-1 R)``."""
    return pooled_patches_adjoint(bk, W0.T @ to_patches(bk, R, spec), spec, R.shape[1])


def cgls(bk, W0, R, spec: ConvSpec, iters: int = 50, tol: float = 1e-12):
    """``D = L^dagger R``, column by column: conjugate gradients on ``L^T L D = L^T R`` from ``D = 0``
    (CGLS, Hestenes-Stiefel), which stays in the range of ``L^T`` and so converges to the minimum-norm
    least-squares solution. Each column has its own step lengths; the iteration stops after ``iters``
    steps or when every column's ``||L^T (R - L D)||`` has fallen below ``tol`` times its start."""
    xp = bk.xp
    D = xp.zeros((spec.n_in, R.shape[1]), dtype=R.dtype)
    res = R.copy()
    s = linear_map_adjoint(bk, W0, res, spec)
    p = s.copy()
    gamma = (s * s).sum(axis=0)
    stop = tol * tol * gamma
    tiny = xp.finfo(R.dtype).tiny
    for _ in range(iters):
        if bool((gamma <= stop).all()):
            break
        q = linear_map(bk, W0, p, spec)
        qq = (q * q).sum(axis=0)
        alpha = xp.where(qq > tiny, gamma / xp.maximum(qq, tiny), 0.0)
        D += alpha * p
        res -= alpha * q
        s = linear_map_adjoint(bk, W0, res, spec)
        gamma_new = (s * s).sum(axis=0)
        beta = xp.where(gamma > tiny, gamma_new / xp.maximum(gamma, tiny), 0.0)
        p = s + beta * p
        gamma = gamma_new
    return D


def conv_w_step(bk, B, W0_init, Z_prev, spec: ConvSpec, A_pinv, iters: int, omega: float, bias: bool):
    """Algorithm 2 for a convolutional ``W_i`` (eq. 7 with shared weights): ``min_W ||T^-1 B - f(W A)||``
    with ``A = [Pbar(Z_{i-1}); e^T]``, every pooled patch of every sample a column; ``A_pinv`` is
    ``A^dagger`` (:func:`nmfdnn.method.linalg.right_pinv` of :func:`patch_matrix`)."""
    from .nonlinear_lsq import alg2

    return alg2(bk, to_patches(bk, B, spec), patch_matrix(bk, Z_prev, spec, bias), A_pinv, W0_init, iters, omega)


def patch_matrix(bk, Z, spec: ConvSpec, bias: bool):
    """``A = [Pbar(Z); e^T]`` (the row of ones only with a bias)."""
    from .network import augment

    return augment(bk, pooled_patches(bk, Z, spec), bias)


def conv_z_step(bk, B, W, Z0, spec: ConvSpec, iters: int, omega: float, bias: bool, cg_iters: int = 50,
                cg_tol: float = 1e-10, act=RELU, l1: float = 0.0):
    """Algorithm 3 through a convolution (eq. 8): ``min_{Z >= 0} ||B - f(L Z + b)||_F`` by
    ``Z_{s+1} = f(Z_s + omega L^dagger R_s)``, ``L^dagger R_s`` by :func:`cgls`. Every iterate is
    nonnegative. ``Z0`` (the forward pass's ``Z_{i-1}``) is not modified. ``act``: ``f`` (line 3) and
    its range's projection (line 4); ``l1``: the soft threshold of :mod:`nmfdnn.method.sparse`."""
    W0, _ = _split(W, bias)
    Z = Z0
    for _ in range(iters):
        R = residual_relu_(bk, B, preactivation(bk, W, Z, spec, bias), act=act)  # line 3
        step = cgls(bk, W0, R, spec, cg_iters, cg_tol)  # line 4: L^dagger R_s
        if omega != 1.0:
            step *= omega
        Z = add_relu_(bk, Z, step, act, omega * l1)  # f(Z_s + omega D) into the step's buffer (Z0 untouched)
    return Z if iters > 0 else Z0.copy()


def dense_matrix(bk, W0, spec: ConvSpec):
    """The layer's linear map ``L`` as an explicit ``n_out x n_in`` (Toeplitz-structured) matrix, built
    by looping over every weight and every output position with the plain definition of a strided,
    padded convolution followed by average pooling. For the reference tests on tiny images only."""
    import numpy as np

    W0 = bk.to_numpy(W0).reshape(spec.channels, spec.c, spec.kernel, spec.kernel)
    k, s, p, q = spec.kernel, spec.stride, spec.padding, spec.pool
    L = np.zeros((spec.n_out, spec.n_in))
    for o in range(spec.channels):
        for py in range(spec.ph):
            for px in range(spec.pw):
                row = (o * spec.ph + py) * spec.pw + px
                for dy in range(q):
                    for dx in range(q):
                        y, x = py * q + dy, px * q + dx  # an output position inside the pooling window
                        for ci in range(spec.c):
                            for ky in range(k):
                                for kx in range(k):
                                    iy, ix = y * s + ky - p, x * s + kx - p
                                    if 0 <= iy < spec.h and 0 <= ix < spec.w:
                                        col = (ci * spec.h + iy) * spec.w + ix
                                        L[row, col] += W0[o, ci, ky, kx] / (q * q)
    return L
