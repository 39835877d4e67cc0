"""Every key declared once (nmfdnn/config/schema.py): its default, its range and its help; validation,
``nmfdnn train --help`` and the estimators read the declaration."""

import copy
import dataclasses

import pytest
from omegaconf import OmegaConf

from nmfdnn.config import schema, validate
from nmfdnn.config.ranges import Interval, Options, declared, problem
from nmfdnn.errors import NmfdnnError

from util import cli, compose_train

SCHEMAS = [v for v in vars(schema).values() if isinstance(v, type) and dataclasses.is_dataclass(v)
           and v.__module__ == schema.__name__]


def test_every_key_has_a_one_line_help():
    for s in SCHEMAS:
        for name, (_, text) in declared(s).items():
            if name == "name" and s.__bases__ != (object,):  # a data set's name: the option that chose it
                continue
            assert text and "\n" not in text, f"{s.__name__}.{name}"


@pytest.mark.parametrize("rule,inside,outside,says,prints", [
    (Interval(int, 1), [1, 7], [0, -1, 1.5, True, "3"], "a positive integer", "int >= 1"),
    (Interval(int, 0), [0], [-1], "an integer >= 0", "int >= 0"),
    (Interval(int, 1, 10 ** 7), [1, 10 ** 7], [0, 10 ** 7 + 1], "an integer in [1, 10^7]", "int in [1, 10^7]"),
    (Interval(float, 0, 2, "right"), [2, 1e-9], [0, 2.5, float("nan")], "in (0, 2]", "(0, 2]"),
    (Interval(float, 0), [0, 3.5], [-0.1, float("inf")], "a finite number >= 0", ">= 0"),
    (Interval(float, 0, None, "neither"), [1e-300], [0, float("inf")], "a finite positive number", "> 0"),
    (Options(("alg2", "gauss_newton")), ["alg2"], ["newton", 2], "alg2 or gauss_newton", "alg2 | gauss_newton"),
    (Options(("a", "b", "c")), ["c"], ["d"], "one of a, b, c", "a | b | c"),
])
def test_a_range_holds_what_it_says(rule, inside, outside, says, prints):
    assert all(v in rule for v in inside) and not any(v in rule for v in outside)
    assert rule.describe() == says and str(rule) == prints
    assert problem("k", outside[0], rule) == f"k must be {says}, got {outside[0]!r}"
    assert problem("k", [inside[0], outside[0]], rule) == f"k[1] must be {says}, got {outside[0]!r}"


def _outside(rule):
    """A value of the key's type just outside ``rule``."""
    if isinstance(rule, Options):
        return "nope"
    if rule.low is not None:
        return rule.low - 1 if rule.kind is int or rule.closed in ("both", "left") else rule.low
    return rule.high + 1


def _declared_keys(cfg):
    from nmfdnn.config.validate import sections

    for prefix, node, s in sections(cfg):
        for name, (rule, _) in declared(s).items():
            if rule is not None:
                yield prefix, name, rule, name in ("hidden", "image", "layer_omega")  # the lists


BASES = {"nmf": ["dataset=synthetic", "dataset.image=[1,8,8]", "conv=[{channels:2,kernel:3}]", "hidden=[8]"],
         "bp": ["dataset=synthetic", "solver=bp", "hidden=[8]"]}


@pytest.mark.parametrize("solver", ["nmf", "bp"])
def test_validation_refuses_every_declared_range_in_one_line(solver):
    """For every key with a declared range, a value just outside it is refused with the line the
    declaration says (``solver.omega must be in (0, 2], got 0.0``), whichever key it is."""
    base = compose_train(BASES[solver])
    validate(base)
    keys = list(_declared_keys(base))
    assert len(keys) > (30 if solver == "nmf" else 15)
    for prefix, name, rule, is_list in keys:
        cfg = copy.deepcopy(base)
        node = OmegaConf.select(cfg, prefix.rstrip(".")) if prefix else cfg
        bad = _outside(rule)
        node[name] = [bad] if is_list else bad
        full = f"{prefix}{name}" + ("[0]" if is_list else "")
        with pytest.raises(NmfdnnError) as e:
            validate(cfg)
        assert str(e.value) == f"{full} must be {rule.describe()}, got {node[name][0] if is_list else node[name]!r}"


def test_a_bad_value_on_the_command_line_is_one_line_with_exit_2():
    code, _, err = cli(["train", "dataset=synthetic", "solver.omega=3"])
    assert code == 2 and err.strip() == "nmfdnn: error: solver.omega must be in (0, 2], got 3.0"
