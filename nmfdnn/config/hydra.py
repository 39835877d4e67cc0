"""Hydra registration and composition: the configuration directory, the schemas in the ConfigStore,
the resolvers the YAML files use, and :func:`compose_config` (what the CLI composes, for tests and
tools); composition errors as one line."""

from __future__ import annotations

from pathlib import Path

from omegaconf.errors import OmegaConfBaseException

from ..errors import NmfdnnError
from .identity import NON_RESULT_KEYS
from .schema import (DATASET_SCHEMAS, SOLVER_SCHEMAS, BackendConfig, MLflowLoggerConfig, TensorBoardLoggerConfig,
                     TrainConfig)
from .validate import validate


def conf_dir() -> str:
    """Where the configs are: ``nmfdnn/conf`` in an installed wheel, else the repository's ``conf/``."""
    here = Path(__file__).resolve().parent.parent  # the nmfdnn package
    for cand in (here / "conf", here.parent / "conf"):
        if (cand / "train.yaml").is_file():
            return str(cand)
    raise NmfdnnError(f"cannot find the configuration directory (looked in {here / 'conf'} and {here.parent / 'conf'})")


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore at the root (not in the groups, so that
    ``--help`` lists only real options); each YAML of a group extends its schema with
    ``defaults: [/schema_GROUP_NAME@_here_]``."""
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    # conf/train.yaml names the sweep subdirectories (hydra.job.override_dirname) without these keys
    OmegaConf.register_new_resolver("nmfdnn_non_result_keys", lambda: list(NON_RESULT_KEYS), replace=True)
    # conf/hydra/launcher/slurm.yaml: CPUs per task from backend.threads, a GPU for backend=cupy
    OmegaConf.register_new_resolver("nmfdnn_cpus", lambda threads: int(threads) if threads else 2, replace=True)
    OmegaConf.register_new_resolver("nmfdnn_gpus", lambda backend: 1 if str(backend) == "cupy" else None,
                                    replace=True)
    # conf/hydra/help/nmfdnn.yaml: the composed config with each key's range and help (its $ doubled:
    # Hydra's help is a string.Template)
    OmegaConf.register_new_resolver("nmfdnn_config_help", _config_help, replace=True)
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)
    for name, node in DATASET_SCHEMAS.items():
        cs.store(name=f"schema_dataset_{name}", node=node)
    for name, node in SOLVER_SCHEMAS.items():
        cs.store(name=f"schema_solver_{name}", node=node)
    cs.store(name="schema_backend", node=BackendConfig)
    cs.store(name="schema_logger_mlflow", node=MLflowLoggerConfig)
    cs.store(name="schema_logger_tensorboard", node=TensorBoardLoggerConfig)


def _config_help(*, _root_) -> str:
    from .help import annotated_yaml

    return annotated_yaml(_root_).replace("$", "$$")


def one_line(exc: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line composition errors as one line."""
    parts, options = [], []
    for e in (exc, exc.__cause__):
        if e is None:
            continue
        in_options = False
        for line in str(e).splitlines():
            line = line.strip()
            if not line or line.startswith(("provider=", "Config search path", "full_key:", "object_type=",
                                            "reference_type=", "To append to your config", "Set the environment")):
                continue
            if line.startswith("Available options in"):
                in_options = True
                parts.append(line.rstrip(":"))
            elif in_options:
                options.append(line)
            else:
                parts.append(line)
    text = "; ".join(parts) + (": " + ", ".join(options) if options else "")
    return text or type(exc).__name__


def plain_overrides(args: list[str]) -> list[str]:
    """The overrides of a command line without sweeps and ``hydra.*`` keys (what a single compose
    can take); raises :class:`NmfdnnError` with one line for an override that does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception as e:
        raise NmfdnnError(one_line(e)) from None
    return [o.input_line for o in parsed
            if not o.is_sweep_override() and not o.get_key_element().startswith(("hydra", "+hydra", "~hydra"))]


def sweep_jobs(args: list[str], limit: int = 2000) -> list[list[str]] | None:
    """The overrides of every job of a ``-m`` command line (the cartesian product of its choice and
    range sweeps, ``hydra.*`` left out), so that each can be checked before the first one runs; None
    when a sweep is not a list of values (an optimiser's intervals) or there are more than ``limit``."""
    import itertools

    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([a for a in args if not a.startswith("-")])
    except Exception as e:
        raise NmfdnnError(one_line(e)) from None
    parsed = [o for o in parsed if not o.get_key_element().startswith(("hydra", "+hydra", "~hydra"))]
    choices = []
    for o in parsed:
        if not o.is_sweep_override():
            choices.append([o.input_line])
        elif o.is_choice_sweep() or o.is_range_sweep():
            choices.append([f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()])
        else:
            return None
    n = 1
    for c in choices:
        n *= len(c)
    if n > limit:
        return None
    return [list(job) for job in itertools.product(*choices)]


def _interrupted(e: BaseException) -> bool:
    """Whether ``e`` was raised while handling a KeyboardInterrupt (anywhere in its chain)."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__context__ or e.__cause__
    return False


def compose_config(overrides: list[str], return_hydra_config: bool = False, check: bool = True):
    """The ``train`` config composed through Hydra's compose API with ``overrides``, as ``nmfdnn
    train`` composes it: the one helper every command and test uses. Composition errors (unknown
    key, wrong type, unknown option) become a one-line :class:`NmfdnnError`; with ``check`` the
    result is also :func:`validate`-d."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=conf_dir(), version_base="1.3"):
            cfg = compose(config_name="train", overrides=list(overrides), return_hydra_config=return_hydra_config)
    except Exception as e:
        if _interrupted(e):  # a SIGINT mid-composition, whose clean-up then failed on the half-built config
            raise KeyboardInterrupt from None
        raise NmfdnnError(one_line(e)) from None
    finally:
        GlobalHydra.instance().clear()
    check_composed(cfg)
    if check:
        try:
            validate(cfg)
        except OmegaConfBaseException as e:  # pragma: no cover - check_composed catches these first
            raise NmfdnnError(one_line(e)) from None
    return cfg


def _schema_keys(node) -> list[str]:
    from dataclasses import fields

    return [f.name for f in fields(node)]


def check_composed(cfg) -> None:
    """What Hydra lets through a composition but a run cannot take, as one line each: a key no schema
    has (a ``+`` override with a misspelt key: ``+solver.alpah=1``), named with the nearest valid key;
    a required key deleted (``~seed``); an interpolation that does not resolve (``seed=${seed}``,
    an unset ``${oc.env:...}``)."""
    import difflib

    from omegaconf import OmegaConf

    from .schema import DATASET_SCHEMAS, SOLVER_SCHEMAS, BackendConfig, TrainConfig

    sections = {"": TrainConfig, "backend": BackendConfig}
    for group, schemas in (("dataset", DATASET_SCHEMAS), ("solver", SOLVER_SCHEMAS)):
        node = cfg.get(group) if OmegaConf.is_dict(cfg) else None
        name = node.get("name") if OmegaConf.is_dict(node) else None
        if name in schemas:
            sections[group] = schemas[name]
    valid = [f"{g + '.' if g else ''}{k}" for g, schema in sections.items() for k in _schema_keys(schema)]
    for group, schema in sections.items():
        node = cfg if not group else cfg.get(group)
        if node is None:
            raise NmfdnnError(f"{group}: missing; the run needs it (was it deleted with ~{group}?)")
        present = [k for k in node.keys() if not (not group and k == "hydra")]
        for key in present:
            full = f"{group + '.' if group else ''}{key}"
            if key not in _schema_keys(schema):
                near = difflib.get_close_matches(full, valid, n=1, cutoff=0.6)
                hint = f"; did you mean {near[0]}?" if near else ""
                raise NmfdnnError(f"unknown key {full} (not in the {group or 'train'} schema){hint} "
                                  "(`nmfdnn train --help` lists every key)")
        for key in _schema_keys(schema):
            if key not in present:
                full = f"{group + '.' if group else ''}{key}"
                raise NmfdnnError(f"{full} is required and cannot be deleted (~{full}); set it to a value instead")
    try:
        for k in cfg.keys():  # the hydra node (return_hydra_config) resolves only inside a running app
            if k != "hydra":
                OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
    except OmegaConfBaseException as e:
        raise NmfdnnError(f"cannot resolve an interpolation: {one_line(e)}") from None
