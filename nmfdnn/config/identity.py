"""Run identity: which keys say what a run computes, and a config in the form two runs are compared
in (resume, the report's groups, the archive's records)."""

from __future__ import annotations

from enum import Enum

from .schema import TrainConfig


# Keys that never change what a run computes: resume compares configs without them, the report
# groups runs without them (and without the seed, the replicate index), and a sweep's directory
# names (hydra.job.override_dirname) leave them out. ``backend.threads`` may change the last bits
# of a BLAS reduction, not the method: runs that differ only in it are replicates.
NON_RESULT_KEYS = ("resume", "progress", "checkpoint", "save_model", "eval_train", "dataset.data_dir",
                   "backend.threads", "logger")


def dtype_name(cfg) -> str:
    """``cfg.dtype`` as "float32" / "float64" (an Enum in structured configs, a string in plain ones)."""
    return cfg.dtype.value if isinstance(cfg.dtype, Enum) else str(cfg.dtype)


# Keys the schema gained after runs were archived, with the value that means "the key was off" (a dense net:
# ``conv: []``; plain vectors: ``dataset.image: null``; ``solver.cg_iters`` and ``freeze_conv`` act on
# conv nets only); ``activation`` relu with its parameters at their defaults (relu uses none), no L1 penalty
ADDED_KEYS = {("logger",): None, ("conv",): [], ("dataset", "image"): None, ("solver", "cg_iters"): 10, ("solver", "freeze_conv"): False,
              ("activation",): "relu", **{(k,): getattr(TrainConfig, k) for k in
                                          ("activation_slope", "activation_cap", "activation_beta")},
              ("solver", "l1_weights"): 0.0, ("solver", "l1_activations"): 0.0, ("solver", "input_energy"): None,
              ("solver", "filter_step"): "alg2", ("solver", "filter_rho"): 1e-3, ("solver", "filter_cg_iters"): 10,
              ("solver", "filter_order"): "after", ("solver", "filter_target"): "above",
              ("solver", "filter_trace"): False, ("solver", "memory"): 0.0,
              ("solver", "ae_whiten"): None, ("solver", "ae_patches"): 100000}


# The BP losses' names, and the shorter names archived runs carry
LOSS_NAMES = {"squared": "mse", "cross_entropy": "xent"}


def loss_name(loss) -> str:
    """A BP loss as the report names it: ``squared`` or ``cross_entropy`` (``mse``/``xent`` too)."""
    loss = getattr(loss, "value", loss)
    return {"mse": "squared", "xent": "cross_entropy"}.get(loss, loss)


def _without(config: dict, path: tuple, before) -> dict:
    """``config`` without the key at ``path`` if it holds ``before`` (a new dict; ``config`` unchanged)."""
    head, rest = path[0], path[1:]
    if head not in config:
        return config
    if not rest:
        return {k: v for k, v in config.items() if k != head} if config[head] == before else config
    inner = config[head]
    if not isinstance(inner, dict):
        return config
    new = _without(inner, rest, before)
    return config if new is inner else {**config, head: new}


def effective(config: dict) -> dict:
    """A plain config dict with the values that ``null`` stands for filled in (``solver.factor_dtype``
    null = ``dtype``) and the keys added after runs were archived left out while they hold the value that
    means "off" (:data:`ADDED_KEYS`), so that two configs that run the same computation compare
    equal and every earlier run keeps its identity."""
    if not isinstance(config, dict):
        return config
    for path, before in ADDED_KEYS.items():
        config = _without(config, path, before)
    solver = config.get("solver")
    if isinstance(solver, dict) and solver.get("loss") in LOSS_NAMES:  # one run, whichever name chose it
        solver = {**solver, "loss": LOSS_NAMES[solver["loss"]]}
        config = {**config, "solver": solver}
    if not isinstance(solver, dict) or solver.get("factor_dtype", "") is not None:
        return config
    return {**config, "solver": {**solver, "factor_dtype": config.get("dtype")}}


def net_name(flat: dict) -> str:
    """The network of a flattened config as the report names it: the dense widths joined by ``-``
    (``1000-500``, the paper's notation), after the convolutions if any, each ``c<channels>k<kernel>``
    with ``s<stride>``, ``p<padding>``, ``q<pool>`` where not 1, 0, 1 (``c16k5q2-500``)."""
    parts = []
    for layer in flat.get("conv") or []:
        if isinstance(layer, dict):
            name = f"c{layer.get('channels')}k{layer.get('kernel')}"
            for key, letter, plain in (("stride", "s", 1), ("padding", "p", 0), ("pool", "q", 1)):
                if layer.get(key, plain) != plain:
                    name += f"{letter}{layer[key]}"
            parts.append(name)
    return "-".join([*parts, *(str(h) for h in flat.get("hidden", []))])


def has_bias(cfg) -> bool:
    """Whether the network of ``cfg`` has bias vectors (``solver.bias``; a solver without the key has none)."""
    return bool(cfg.solver.get("bias", False))
