"""The config as ``nmfdnn train --help`` prints it: the composed config's YAML, each key's line with
its range and one-line help from the schema (:mod:`.ranges`) as a trailing comment."""

from __future__ import annotations

import re
import typing
from enum import Enum

from .ranges import declared
from .validate import sections

_KEY = re.compile(r"^( *)(- )?([A-Za-z_]\w*):( |$)")


def _choices(hint) -> str:
    """The words of an Enum-typed key (``chol | gram | svd``), or "" for any other type."""
    for t in (hint, *typing.get_args(hint)):
        if isinstance(t, type) and issubclass(t, Enum):
            return " | ".join(str(m.value) for m in t)
    return ""


def notes(cfg) -> dict[str, str]:
    """``{key: "range; help"}`` of every declared key of ``cfg`` (``solver.omega``, ``conv[0].kernel``)."""
    out = {}
    for prefix, _, schema in sections(cfg):
        hints = typing.get_type_hints(schema)
        for name, (rule, text) in declared(schema).items():
            what = str(rule) if rule is not None else _choices(hints[name])
            out[prefix + name] = f"{what}; {text}" if what and text else what or text
    return out


def annotated_yaml(cfg) -> str:
    """``OmegaConf.to_yaml(cfg)`` (``cfg`` without its ``hydra`` node) with ``  # range; help`` after
    each key: a key's path follows the indentation, and the items of a list of mappings count
    (``conv[1].kernel``)."""
    from omegaconf import OmegaConf

    job = OmegaConf.masked_copy(cfg, [k for k in cfg.keys() if k != "hydra"])
    text, where = notes(cfg), {}
    out, stack = [], []  # stack: (indent, path) of the mappings the line is in
    for line in OmegaConf.to_yaml(job).splitlines():
        m = _KEY.match(line)
        if m is None:
            out.append(line)
            continue
        item = m.group(2) is not None  # "- key: ...": the first key of a new list item
        indent = len(m.group(1)) + 2 * item
        while stack and stack[-1][0] >= indent - item:
            stack.pop()
        parent = stack[-1][1] if stack else ""
        if item:
            where[parent] = where.get(parent, -1) + 1
            parent = f"{parent}[{where[parent]}]"
            stack.append((indent - 1, parent))
        path = f"{parent}.{m.group(3)}" if parent else m.group(3)
        stack.append((indent, path))
        out.append(f"{line}  # {text[path]}" if text.get(path) else line)
    return "\n".join(out) + "\n"
