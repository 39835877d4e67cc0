"""Validation of a composed config before any work, each problem a one-line error: every key within the
range its schema declares (:func:`check_ranges`), then the constraints across keys (a batch larger
than the data, not larger than the widest layer, ...)."""

from __future__ import annotations

import logging
import math

from ..batching import smallest_batch
from ..errors import NmfdnnError
from .identity import has_bias
from .ranges import declared, problem

log = logging.getLogger(__name__)


def _schema_of(group: str, name) -> type | None:
    """The schema of section ``group`` (``dataset`` or ``solver``) whose ``name`` is ``name``."""
    from .schema import DATASET_SCHEMAS, SOLVER_SCHEMAS, ArrayConfig, DatasetConfig

    if group == "solver":
        return SOLVER_SCHEMAS.get(name)
    return {**DATASET_SCHEMAS, "array": ArrayConfig}.get(name, DatasetConfig)


def sections(cfg) -> list[tuple[str, object, type]]:
    """``(prefix, node, schema)`` of every part of ``cfg`` that a schema declares: the top level, the
    data set, the solver, the backend, each conv layer (``conv[0].``) and the trackers."""
    from .schema import (BackendConfig, ConvLayerConfig, LoggerConfig, MLflowLoggerConfig, TensorBoardLoggerConfig,
                         TrainConfig)

    out = [("", cfg, TrainConfig)]
    for group in ("dataset", "solver"):
        node = cfg.get(group)
        schema = _schema_of(group, node.get("name")) if node is not None else None
        if schema is not None:
            out.append((f"{group}.", node, schema))
    if cfg.get("backend") is not None:
        out.append(("backend.", cfg.backend, BackendConfig))
    out += [(f"conv[{i}].", layer, ConvLayerConfig) for i, layer in enumerate(cfg.get("conv") or [])]
    logger = cfg.get("logger")
    if logger is not None:
        out.append(("logger.", logger, LoggerConfig))
        for name, schema in (("mlflow", MLflowLoggerConfig), ("tensorboard", TensorBoardLoggerConfig)):
            if logger.get(name) is not None:
                out.append((f"logger.{name}.", logger[name], schema))
    return out


def check_ranges(cfg) -> None:
    """Every key of ``cfg`` within the range its schema declares (:mod:`.ranges`): the first one that
    is not, as a one-line :class:`NmfdnnError`."""
    from omegaconf import OmegaConf

    for prefix, node, schema in sections(cfg):
        for name, (rule, _) in declared(schema).items():
            if rule is None or name not in node or (OmegaConf.is_config(node) and OmegaConf.is_missing(node, name)):
                continue
            why = problem(prefix + name, node[name], rule)
            if why:
                raise NmfdnnError(why)


def _validate_dataset(d) -> None:
    """What the data set's ranges do not say: an empty data_dir, the four files of idx, [c, h, w]."""
    from omegaconf import OmegaConf

    if d.get("data_dir") is not None and not str(d.data_dir).strip():
        raise NmfdnnError("dataset.data_dir is empty; give a folder, or leave it unset (null) for $NMFDNN_DATA or "
                          "~/.cache/nmfdnn")
    if d.name == "idx":
        for key in ("train_images", "train_labels", "test_images", "test_labels"):
            if OmegaConf.is_missing(d, key):
                raise NmfdnnError(f"dataset=idx needs dataset.{key}=PATH (the four IDX files: train_images, "
                                  "train_labels, test_images, test_labels)")
    if d.get("image") is not None and len(d.image) != 3:  # conv net or not: the samples' shape, c x h x w
        raise NmfdnnError(f"dataset.image must be [c, h, w] (three positive integers), got {list(d.image)}")


def widest_rows(cfg) -> int:
    """Rows of the widest hidden layer's ``[Z_i; e^T]`` (the bias row counts): an NMF mini-batch must
    have more samples, or every batch is fitted exactly."""
    return max(cfg.hidden) + int(has_bias(cfg))


from .shapes import IMAGE_SHAPES, image_shape  # noqa: F401 (the names validation and its callers use)


def _validate_conv(cfg, shape) -> int | None:
    """``conv``: each layer's required fields (their ranges are declared), and (where the image shape
    is known) that it fits its input; returns the features per sample out of the conv layers (the
    first dense layer's input), or None while the image shape is unknown (idx: checked once its files
    are read)."""
    from omegaconf import OmegaConf

    for i, layer in enumerate(cfg.conv):
        for key in ("channels", "kernel"):
            if OmegaConf.is_missing(layer, key):
                raise NmfdnnError(f"conv[{i}].{key} is required, e.g. conv=[{{channels:32,kernel:5,pool:2}}]")
    d = cfg.dataset
    if d.name == "synthetic" and not d.get("image"):
        raise NmfdnnError("conv layers need images: dataset=synthetic has plain vectors unless "
                          "dataset.image=[c,h,w] is set (or use mnist, fashion_mnist, cifar10, idx)")
    shape = shape or image_shape(d)
    if shape is None:
        return None
    from .network import build_network

    net = build_network(cfg, math.prod(shape), tuple(shape), 1)
    return next(layer.n_in for layer in net.layers if not layer.filters)


# The parameter of each activation: its key, and the least and largest value it may take in a dtype
# (``finfo`` of it): softplus's values start at log(2)/beta and capped_relu's reach cap, and squares
# of them summed over a batch must stay finite; a slope below the dtype's smallest normal number is 0.
ACTIVATION_PARAMETERS = {
    "leaky_relu": ("activation_slope", lambda f: float(f.tiny), None),
    "capped_relu": ("activation_cap", lambda f: float(f.tiny) ** 0.5, lambda f: float(f.max) ** 0.25),
    "softplus": ("activation_beta", lambda f: math.log(2) / float(f.max) ** 0.25, lambda f: float(f.max) ** 0.5),
}


def _check_activation_range(cfg) -> None:
    """The chosen activation's parameter within what the run's dtype represents (see
    :data:`ACTIVATION_PARAMETERS`): refused in one line before any work, not after it with warnings."""
    import numpy as np

    from .identity import dtype_name

    name = str(cfg.activation)
    if name not in ACTIVATION_PARAMETERS:
        return
    key, low, high = ACTIVATION_PARAMETERS[name]
    dtype = dtype_name(cfg)
    f = np.finfo(dtype)
    value = float(cfg.get(key))
    lo = low(f)
    if name == "leaky_relu":  # (0, 1) already checked
        if value < lo:
            raise NmfdnnError(f"{key}={value:g} is below the smallest normal {dtype} number ({lo:.3g}): it would act "
                              f"as 0; use {key} in [{lo:.3g}, 1) or activation=relu")
        return
    hi = high(f)
    if not lo <= value <= hi:
        raise NmfdnnError(f"{key}={value:g} is out of what {name} can compute in {dtype}: use {key} in "
                          f"[{lo:.3g}, {hi:.3g}]" + ("" if dtype == "float64" else " (or dtype=float64)"))


def _warn_unused(cfg) -> None:
    """One warning line per key set away from its default that this run does not use."""
    from .schema import NMFSolverConfig, SyntheticConfig, TrainConfig

    name = str(cfg.activation)
    used = ACTIVATION_PARAMETERS.get(name, (None,))[0]
    for key, _, _ in ACTIVATION_PARAMETERS.values():
        if key != used and cfg.get(key) is not None and float(cfg.get(key)) != getattr(TrainConfig, key):
            log.warning("%s=%g has no effect: activation=%s does not use it", key, float(cfg.get(key)), name)
    if not cfg.get("conv") and cfg.solver.get("cg_iters", NMFSolverConfig.cg_iters) != NMFSolverConfig.cg_iters:
        log.warning("solver.cg_iters=%d has no effect: it acts on conv layers, and this net has none",
                    cfg.solver.cg_iters)
    d = cfg.dataset
    if d.name == "synthetic" and d.get("image") and d.n_features != SyntheticConfig.n_features:
        log.warning("dataset.n_features=%d has no effect: the samples are dataset.image=%s images (%d features)",
                    d.n_features, list(d.image), math.prod(d.image))
    if not cfg.dataset.get("val_size") and cfg.dataset.get("val_seed"):
        log.warning("dataset.val_seed=%d has no effect without dataset.val_size", cfg.dataset.val_seed)


def validate(cfg, n_train: int | None = None, batch_guard: bool = True, shape=None) -> None:
    """Check ranges and cross-field constraints; raise :class:`NmfdnnError` with one line.

    ``n_train`` (known once the data are loaded) enables the checks against the data size.
    ``batch_guard=False`` skips the check that NMF mini-batches exceed the widest layer (the
    estimators' automatic batch size on tiny data sets: they warn instead).
    """
    check_ranges(cfg)
    hidden = list(cfg.hidden)
    if not hidden:
        raise NmfdnnError("hidden must list at least one hidden layer width, e.g. hidden=[500]")
    _validate_dataset(cfg.dataset)
    _check_activation_range(cfg)
    flat = _validate_conv(cfg, shape) if cfg.get("conv") else None
    if cfg.solver.get("freeze_conv") and not cfg.get("conv"):
        raise NmfdnnError("solver.freeze_conv=true keeps conv layers' weights, but this net has none (conv=[]); "
                          "add conv=[...] or leave solver.freeze_conv=false")
    if n_train is not None:  # once per run (with the data-size checks): keys that this run does not use
        _warn_unused(cfg)
    s = cfg.solver
    if s.name == "nmf":
        if s.filter_step == "gauss_newton" and not cfg.get("conv"):
            raise NmfdnnError("solver.filter_step=gauss_newton acts on conv layers only; add conv=[...] or leave "
                              "it at alg2")
        if s.ae_whiten is not None and not cfg.get("conv"):
            raise NmfdnnError("solver.ae_whiten acts on conv layers only (Algorithm 5 on whitened patches); "
                              "add conv=[...] or leave it null")
        if s.safeguard and (s.l1_weights or s.l1_activations):
            raise NmfdnnError("solver.safeguard does not combine with solver.l1_weights or solver.l1_activations "
                              "(the safeguard compares residuals without the penalty); set one of them")
        if n_train is not None and s.l1_activations and len(cfg.get("conv") or []) + len(hidden) > 1:
            # Once per run (with the data-size checks). Measured (outputs/tune, activations_screen): MNIST
            # [1000,500] at 1e-4 and 0.3 ends near 80 %.
            log.warning("solver.l1_activations=%g with more than one hidden layer: Algorithm 3's soft threshold is "
                        "absolute while W_{i+1} Z_i allows Z_i/c with c W_{i+1}, so Z_i can shrink epoch after "
                        "epoch (MNIST [1000,500]: 1e-4 ends at 79 %% validation error); watch the error",
                        s.l1_activations)
        if s.layer_omega is not None:
            layers = len(cfg.get("conv") or []) + len(hidden)  # conv layers first, then the dense ones
            if len(s.layer_omega) != layers:
                raise NmfdnnError(f"solver.layer_omega must list one omega in (0, 2] per hidden layer, conv "
                                  f"layers first ({layers}), got {list(s.layer_omega)}")
        # A quick run on dataset.train_subset keeps its preset's sizes: a batch larger than the subset
        # is the whole subset, said in a warning. On the full data set a batch larger than the data
        # stays a refusal (there it is a mistake, not a quick run). The autoencoder's sample set is
        # at most the training set wherever (a small data set with the default 5,000: a warning).
        quick = n_train is not None and cfg.dataset.get("train_subset") is not None
        if n_train is not None:
            for key in ("batch_size", "ae_samples"):
                if s[key] <= n_train:
                    continue
                if not quick and key == "batch_size":
                    raise NmfdnnError(f"solver.{key}={s[key]} is larger than the training set ({n_train} samples); "
                                      f"set solver.{key}={n_train} or less")
                what = "dataset.train_subset" if quick else "the training set"
                log.warning("solver.%s=%d is larger than %s (%d samples): the whole set is used", key, s[key],
                            what, n_train)
        widest = widest_rows(cfg)
        rows = f"{max(hidden)} units + the bias row" if s.bias else f"{widest} units"
        if flat is not None and flat + int(s.bias) > widest:  # the first dense layer's input: the conv output
            widest = flat + int(s.bias)
            rows = f"the conv layers' {flat} output features" + (" + the bias row" if s.bias else "")
        smallest = s.batch_size if n_train is None else smallest_batch(n_train, s.batch_size)
        if s.get("memory"):  # the running Gram matrices span more columns than one batch has
            batch_guard = False
        if smallest <= widest and batch_guard and quick and smallest == n_train:
            log.warning("the training subset (%d samples) has no more samples than the widest layer (%s): every "
                        "batch is fitted exactly, so the errors of this quick run measure nothing", n_train, rows)
        elif smallest <= widest and batch_guard:
            what = f"solver.batch_size={s.batch_size}" if smallest == s.batch_size else \
                f"the smallest mini-batch ({smallest} samples of {n_train} at solver.batch_size={s.batch_size})"
            raise NmfdnnError(f"{what} must exceed the widest hidden layer ({rows}): "
                              "with no more samples than rows every batch is fitted exactly and the network "
                              f"fails; use solver.batch_size={max(5000, 2 * widest)} or narrower layers")
    elif s.name == "bp":
        if n_train is not None and s.batch_size > n_train:
            raise NmfdnnError(f"solver.batch_size={s.batch_size} is larger than the training set ({n_train} samples); "
                              f"set solver.batch_size={n_train} or less")
    else:
        raise NmfdnnError(f"unknown solver {s.name!r}")
    if n_train is None:  # before the data are loaded: would the run fit into this machine's memory at all?
        from ..memory import memory_problem

        problem = memory_problem(cfg, shape=shape)
        if problem:
            raise NmfdnnError(problem)


def validate_ranks(cfg, size: int, n_train: int | None = None) -> None:
    """What a run split over ``size`` processes (``mpiexec -n size``) needs, one line each: the NMF
    solver, pseudo-inverses built from Gram matrices (the SVD of a column block needs all its rows in
    one process) and at least one column of every mini-batch and autoencoder sample set per process."""
    if size <= 1:
        return
    s = cfg.solver
    if s.name != "nmf":
        raise NmfdnnError(f"solver={s.name} runs in one process (only the NMF method is split over processes); "
                          "start it without mpiexec")
    if s.get("ae_whiten") is not None:
        raise NmfdnnError("solver.ae_whiten draws its patches from all of Algorithm 5's images in one process; "
                          "start it without mpiexec")
    if s.pinv == "svd":
        raise NmfdnnError("solver.pinv=svd needs all columns of a matrix in one process; with mpiexec use "
                          "solver.pinv=chol or solver.pinv=gram")
    if s.input_pinv == "qr":
        raise NmfdnnError("solver.input_pinv=qr needs a whole batch in one process; with mpiexec use "
                          "solver.input_pinv=chol or literal")
    smallest = s.batch_size if n_train is None else smallest_batch(n_train, s.batch_size)
    for what, n in (("the smallest mini-batch", smallest), ("solver.ae_samples", s.ae_samples)):
        if n < size:
            raise NmfdnnError(f"{size} processes but {what} has {n} samples: each process needs at least one; "
                              f"start at most {n} processes")
