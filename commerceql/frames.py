"""Comparing two engines' results: one rule for the engine tests and the benchmark.

Same columns and rows; money (Decimal) equal to the cent, floats within 1e-9 relative; rows
compared in order, or as a multiset when ties under ORDER BY leave the order open.
"""

from __future__ import annotations

import math
from decimal import Decimal

import polars as pl


def same_value(a: object, b: object, *, null_is_zero: bool = False) -> bool:
    if a is None or b is None:
        return (a is None and b is None) or (null_is_zero and a in (0, None) and b in (0, None))
    if isinstance(a, float) or isinstance(b, float):
        x, y = float(a), float(b)  # type: ignore[arg-type]
        return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(x) and math.isnan(y))
    if isinstance(a, Decimal) or isinstance(b, Decimal):
        return abs(Decimal(str(a)) - Decimal(str(b))) < Decimal("0.005")
    return a == b


def _sort_key(row: tuple) -> tuple:
    return tuple((v is None, str(round(v, 6)) if isinstance(v, float) else str(v)) for v in row)


def _first_difference(left: list[tuple], right: list[tuple], null_is_zero: bool) -> str | None:
    for x, y in zip(left, right, strict=True):
        if not all(same_value(a, b, null_is_zero=null_is_zero) for a, b in zip(x, y, strict=True)):
            return f"{x} vs {y}"
    return None


def frame_difference(left: pl.DataFrame, right: pl.DataFrame, *, null_is_zero: bool = False) -> str | None:
    """None when the frames agree, else the first difference found.

    `null_is_zero` counts NULL and 0 as equal (an empty group's sum may be either).
    """
    if left.columns != right.columns:
        return f"columns {left.columns} vs {right.columns}"
    if left.shape != right.shape:
        return f"shape {left.shape} vs {right.shape}"
    rows_left, rows_right = left.rows(), right.rows()
    if _first_difference(rows_left, rows_right, null_is_zero) is None:
        return None
    # Rows tied under ORDER BY may come out in either order on either engine: compare as multisets.
    return _first_difference(sorted(rows_left, key=_sort_key), sorted(rows_right, key=_sort_key), null_is_zero)
