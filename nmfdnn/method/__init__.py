"""The paper's mathematics and nothing else (Sakurai, Imakura, Inoue and Futamura, ICONIP 2016).

Columns are samples: ``X`` is ``n_0 x m``, ``Y`` is ``n_d x m``, ``W_i`` is ``n_i x n_{i-1}`` and
``Z_i = f(W_i Z_{i-1})`` with ``f`` = ReLU. Every function takes the array backend ``bk``
(:mod:`nmfdnn.backend`), the network or the layer it acts on (:mod:`layers`: each owns its ``f``,
bias and shape) or plain values, and, where it needs settings, ``sol``, a frozen
:class:`settings.NMFSettings` of plain values (never a config node); nothing here
imports from outside ``method/`` except the backend seam, :mod:`nmfdnn.errors` and
:mod:`nmfdnn.timers`.

=========================================================  ==============================================
Paper                                                      Function
=========================================================  ==============================================
eq. (1), the layers of ``W_1, ..., W_d``, built once       :class:`network.Network` of :mod:`layers`
(each its ``f``, bias, shape, initialisation, gradient,    (:class:`layers.Dense`, :class:`layers.Conv`),
design matrix, Algorithm 3 step, ``frozen``)               :func:`layers.build`
eq. (3), the network and its objective                     :func:`network.forward`, :func:`network.output`,
                                                           :func:`network.evaluate` (``1/2 ||Y - out||_F^2``)
eq. (4), semi-NMF ``min ||Y - W_d Z_{d-1}||``, ``Z >= 0``  :func:`semi_nmf.semi_nmf` (``W`` update
                                                           :func:`semi_nmf.update_w`, ``Z`` update
                                                           :func:`semi_nmf.update_z`, Ding et al. eq. 10)
eq. (7) / (10) by Algorithm 2, lines 3-4                   :func:`nonlinear_lsq.alg2_right`
  the same iterates, ``X_s A`` carried (low-rank ``A^+``)  :func:`nonlinear_lsq.alg2_right_carried`,
                                                           chosen by :func:`nonlinear_lsq.alg2`
eq. (8) by Algorithm 3, lines 3-4                          :func:`nonlinear_lsq.alg3_left`
``A^+`` of Algorithms 2 and 3 ("low-rank approximation")   :func:`linalg.right_pinv`, :func:`linalg.left_pinv`
Sec. 3.3, truncated SVD of X and its mini-batch slice      :func:`linalg.input_svd`, :func:`linalg.batch_input_pinv`
eq. (9), NMF of the autoencoder (Lee and Seung)            :func:`nmf.nmf`
Algorithm 5, lines 2-7 (one layer)                         :func:`autoencoder.pretrain_layer`
Algorithm 5, line 1 (all layers) + output ``W_d``          :func:`autoencoder.pretrain`
Algorithm 4, lines 3-8 (one mini-batch)                    :func:`finetune.finetune_batch`
Algorithm 4, line 2 (one epoch over mini-batches)          :func:`finetune.finetune_epoch`
line 3 of Algorithms 2 and 3, line 4 of Algorithm 3        :mod:`kernels` (in-place element-wise work)
=========================================================  ==============================================

Beyond the paper, its named next step (Sec. 6: "we will extend our algorithm to convolutional neural
networks"); the derivations are in :mod:`conv`'s docstring:

=========================================================  ==============================================
a convolution + average pooling, ``f(T(W Pbar(Z)))``       :func:`conv.forward` (:func:`conv.im2col`,
                                                           :func:`conv.pooled_patches`, :func:`conv.to_columns`)
its adjoint (``im2col^T``, pooling's transpose)            :func:`conv.col2im`, :func:`conv.pooled_patches_adjoint`
eq. (7) with shared weights: Algorithm 2 on patch columns  :func:`conv.conv_w_step` (``A = [Pbar(Z); e^T]``:
                                                           :func:`conv.patch_matrix`)
eq. (8) through a convolution: Algorithm 3, ``L^+`` by     :func:`conv.conv_z_step`, :func:`conv.cgls`
CGLS on the normal equations
the layer's explicit Toeplitz matrix (reference tests)     :func:`conv.dense_matrix`
a filter step that fits the layer above's target: damped   :func:`filters.filter_step`
Gauss-Newton through ``W_{i+1}``, ``J`` and ``J^T``         (:func:`filters.gauss_newton_step`,
matrix-free, CG on the normal equations                    :func:`filters.jacobian`, :func:`filters.jacobian_adjoint`)
the share of the residual above a filter step removes      :func:`filters.filter_step_share`
the same on the network's residual ``Y - W_d Z_{d-1}``,     :func:`filters.output_filter_step`
through every layer above (``filter_target=output``)       (:func:`filters.chain_jacobian`, :func:`filters.chain_adjoint`)
Algorithm 5 on whitened patches, split into + and - parts  :func:`filterbank.pretrain_whitened`
(wide filter banks; Coates, Lee and Ng 2011)               (:func:`filterbank.whitening`, :func:`filterbank.sample_patches`)
running Gram matrices across batches (``solver.memory``)   :class:`memory.GramMemory`,
in Algorithm 2 and semi-NMF's W update                     :func:`semi_nmf.update_w_memory`
=========================================================  ==============================================

Beyond the paper, its other named next steps (Sec. 6: "sparse regularizations and other activation
functions"); the derivations are in :mod:`activations`' and :mod:`sparse`'s docstrings:

=========================================================  ==============================================
``f`` in {relu, leaky_relu, capped_relu, softplus}         a subclass of :class:`activations.Activation` each
                                                           (``apply``), by name :func:`activations.named`
line 3 of Algorithms 2 and 3 with ``f``                    :func:`kernels.residual_relu_` (``act=``)
line 4 of Algorithm 3: projection onto ``f``'s range       :func:`kernels.add_relu_` (``act=``)
(4) without ``Z >= 0`` (leaky_relu)                        :func:`semi_nmf.update_z_unconstrained`
Algorithm 5's NMF on the nonnegative part                  :meth:`activations.Activation.nmf_target`
L1 on ``W``: Algorithm 2 + soft threshold (ISTA step)      :func:`sparse.alg2_l1`, :func:`kernels.soft_threshold_`
L1 on ``Z``: semi-NMF's denominator ``+ l1``, Algorithm 3  :func:`semi_nmf.update_z` (``l1=``),
with a soft-thresholded step                               :func:`nonlinear_lsq.alg3_left` (``l1=``), :func:`kernels.add_relu_`
the sparsity reached                                       :func:`sparse.sparsity`
=========================================================  ==============================================

Beyond the paper (options of ``solver=nmf``, off by default; Arai, Imakura and Sakurai 2018):

=========================================================  ==============================================
ridge ``alpha`` on the W updates                           :func:`linalg.ridge_right_pinv`,
                                                           :func:`linalg.ridge_batch_input_pinv`
``lam`` on Algorithm 3's pseudo-inverse                    :func:`linalg.ridge_left_pinv`
``beta`` on semi-NMF's Z update                            :func:`semi_nmf.update_z`
Algorithms 2 and 3 with a step safeguard                   :func:`nonlinear_lsq.alg2_right_safe`,
                                                           :func:`nonlinear_lsq.alg3_left_safe`
one omega per layer                                        :func:`settings.layer_omega`
Alg. 5's NMF factors at unit row scale (``ae_normalize``)   :func:`nmf.normalize_rows`
=========================================================  ==============================================

``tests/test_conv_reference.py`` checks the convolution against its explicit matrix;
``tests/test_activations_reference.py`` the activations and L1 steps against a naive transcription;
``tests/test_reference.py`` checks :func:`finetune.finetune_batch`, one layer of Algorithm 5 and
semi-NMF against a naive transcription of the paper (``numpy.linalg.pinv``, no reuse of products).
"""
