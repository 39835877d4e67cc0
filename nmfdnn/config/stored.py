"""Stored configs read back: a run folder's ``config.yaml`` or an archive record's ``config``, checked
against the schema field by field before a tool (report, plot, resume) relies on it.

A run folder may be hand-edited, damaged or written by another version: a config that does not fit
is refused with one line naming the field (``hidden: ... is not a list``), never a traceback deep in
the grouping. Missing keys are allowed (a schema that gained a key since the run was made: the
default stands for it); keys the schema does not know, values of another type and a data set or
solver the schema does not know are not.
"""

from __future__ import annotations

from .schema import DATASET_SCHEMAS, SOLVER_SCHEMAS, ArrayConfig, BackendConfig, TrainConfig

# the data sets a stored run may name: the CLI's, and the estimators' in-memory arrays
_DATASETS = {**DATASET_SCHEMAS, "array": ArrayConfig}


def stored_config_problem(config) -> str | None:
    """Why ``config`` (a plain dict) is not the config of a run of this schema, as ``FIELD: problem``;
    None if it fits."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    if not isinstance(config, dict):
        return f"not a mapping of keys but a {type(config).__name__}"
    if not config:
        return "empty: no config recorded"
    parts = {}
    for key, schemas in (("dataset", _DATASETS), ("solver", SOLVER_SCHEMAS)):
        node = config.get(key)
        if not isinstance(node, dict):
            return f"{key}: {'missing' if node is None else f'a {type(node).__name__}, not a mapping'}"
        name = node.get("name")
        if name not in schemas:
            return f"{key}.name: {name!r} is not one of {', '.join(sorted(schemas))}"
        parts[key] = schemas[name]
    if "hidden" not in config:
        return "hidden: missing"
    base = OmegaConf.structured(TrainConfig)
    base.dataset = OmegaConf.structured(parts["dataset"])
    base.solver = OmegaConf.structured(parts["solver"])
    base.backend = OmegaConf.structured(BackendConfig)
    try:
        OmegaConf.merge(base, config)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "config"
        return f"{key}: {str(e).splitlines()[0]}"
    except (ValueError, TypeError) as e:  # pragma: no cover - OmegaConf wraps nearly everything
        return f"config: {e}"
    return None
