"""What a key may hold, declared beside its default in :mod:`.schema` (as scikit-learn's
``_parameter_constraints`` do): an :class:`Interval` of integers or finite numbers, or :class:`Options`
of words. Each schema field made with :func:`key` carries its range and a one-line help in its
metadata; validation (:func:`problem`), ``nmfdnn train --help`` and the estimators read them there."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

CLOSED = ("both", "left", "right", "neither")


def _number(value: float) -> str:
    """``value`` as a range prints it: ``1000``, ``0.5``, ``10^7`` for a power of ten from 10^6 on."""
    if value >= 10 ** 6 and math.log10(value).is_integer():
        return f"10^{int(math.log10(value))}"
    return f"{value:g}"


@dataclass(frozen=True)
class Interval:
    """The integers (``kind=int``) or finite numbers (``kind=float``) from ``low`` to ``high`` (None:
    unbounded), each end included where ``closed`` says: ``both``, ``left``, ``right`` or ``neither``."""

    kind: type
    low: Optional[float] = None
    high: Optional[float] = None
    closed: str = "both"

    def __post_init__(self):
        if self.kind not in (int, float) or self.closed not in CLOSED:
            raise ValueError(f"Interval({self.kind!r}, closed={self.closed!r}): kind int or float, closed one of "
                             f"{', '.join(CLOSED)}")

    def __contains__(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.kind is int else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        left, right = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and not (value >= self.low if left else value > self.low):
            return False
        return self.high is None or (value <= self.high if right else value < self.high)

    def _brackets(self) -> str:
        left = "[" if self.closed in ("both", "left") else "("
        right = "]" if self.closed in ("both", "right") else ")"
        return f"{left}{_number(self.low)}, {_number(self.high)}{right}"

    def _bound(self) -> str:
        """The one bound of a half-bounded interval: ``>= 0``, ``> 0``, ``<= 1``."""
        if self.high is None:
            return f"{'>=' if self.closed in ('both', 'left') else '>'} {_number(self.low)}"
        return f"{'<=' if self.closed in ('both', 'right') else '<'} {_number(self.high)}"

    def describe(self) -> str:
        """What a value must be, as the one-line refusal says it: ``a positive integer``, ``an integer
        in [0, 1000]``, ``in (0, 2]``, ``a finite number >= 0``, ``a finite positive number``."""
        if self.low is None and self.high is None:
            return "an integer" if self.kind is int else "a finite number"
        if self.kind is int:
            if self.low is not None and self.high is not None:
                return f"an integer in {self._brackets()}"
            return "a positive integer" if self._bound() in (">= 1", "> 0") else f"an integer {self._bound()}"
        if self.low is not None and self.high is not None:
            return f"in {self._brackets()}"
        return "a finite positive number" if self._bound() == "> 0" else f"a finite number {self._bound()}"

    def __str__(self) -> str:
        """The range as ``train --help`` prints it: ``int >= 1``, ``int in [0, 1000]``, ``(0, 2]``, ``>= 0``."""
        if self.low is None and self.high is None:
            return "int" if self.kind is int else "finite"
        text = self._brackets() if self.low is not None and self.high is not None else self._bound()
        return f"int {'in ' if text[0] in '[(' else ''}{text}" if self.kind is int else text


@dataclass(frozen=True)
class Options:
    """One of the words ``values``."""

    values: tuple

    def __contains__(self, value) -> bool:
        return isinstance(value, str) and value in self.values

    def describe(self) -> str:
        if len(self.values) == 2:
            return f"{self.values[0]} or {self.values[1]}"
        return f"one of {', '.join(self.values)}"

    def __str__(self) -> str:
        return " | ".join(self.values)


Range = Union[Interval, Options]


def key(default: Any = dataclasses.MISSING, help: str = "", range: Range | None = None,  # noqa: A002
        factory=None) -> Any:
    """A schema field: its ``default`` (or a ``factory`` of it, for a list), its ``range`` (None: any
    value of its type) and its one-line ``help``."""
    metadata = {"help": help, "range": range}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def declared(schema) -> dict:
    """``{name: (range, help)}`` of every field of the dataclass ``schema``."""
    return {f.name: (f.metadata.get("range"), f.metadata.get("help", "")) for f in dataclasses.fields(schema)}


def problem(name: str, value, range: Range | None) -> str | None:  # noqa: A002
    """Why ``value`` of key ``name`` is out of ``range`` (one line), or None; None is left to the type
    (an Optional key takes it) and a list's entries are checked one by one (``hidden[1]``)."""
    if range is None or value is None:
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):  # a list, or OmegaConf's ListConfig
        for i, v in enumerate(value):
            p = problem(f"{name}[{i}]", v, range)
            if p:
                return p
        return None
    value = getattr(value, "value", value)  # an Enum option of a structured config: its word
    if value in range:
        return None
    return f"{name} must be {range.describe()}, got {value!r}"
