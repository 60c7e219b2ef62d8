"""The ODCS comparison keys (``mustBe``, ``mustBeLessThan``, ...) as one value.

A quality rule's measured number passes or fails against exactly one comparison; the
lint (:mod:`dativo.quality.rules`) makes sure a contract states one, with numbers, so
:meth:`Threshold.passes` never has to guess.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Comparison = Literal["mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo",
                     "mustBeLessThan", "mustBeLessOrEqualTo", "mustBeBetween",
                     "mustNotBeBetween"]
COMPARISONS: tuple[Comparison, ...] = (
    "mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan",
    "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween")
"""Every ODCS v3 comparison key, in the order the standard lists them."""
RANGES = ("mustBeBetween", "mustNotBeBetween")


@dataclass(frozen=True, slots=True)
class Threshold:
    """One comparison: ``key`` and its bound (``low``; ``high`` too for the ranges)."""

    key: Comparison
    low: float
    high: float | None = None

    def passes(self, value: float | None) -> bool:
        """Whether ``value`` meets the comparison; no value (an empty SQL result) fails."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return False
        low, high = self.low, self.high if self.high is not None else self.low
        match self.key:
            case "mustBe":
                return value == low
            case "mustNotBe":
                return value != low
            case "mustBeGreaterThan":
                return value > low
            case "mustBeGreaterOrEqualTo":
                return value >= low
            case "mustBeLessThan":
                return value < low
            case "mustBeLessOrEqualTo":
                return value <= low
            case "mustBeBetween":
                return low <= value <= high
            case "mustNotBeBetween":
                return not low <= value <= high
        raise AssertionError(self.key)

    def text(self, unit: str = "rows") -> str:
        """As written in the contract, e.g. ``mustBeLessThan 5 percent``."""
        bound = (f"[{_num(self.low)}, {_num(self.high or 0)}]" if self.key in RANGES
                 else _num(self.low))
        return f"{self.key} {bound}" + (" percent" if unit == "percent" else "")


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
