"""The engine-comparison rule (commerceql.frames) used by tests/test_engines.py and make bench."""

from __future__ import annotations

from decimal import Decimal

import polars as pl

from commerceql.frames import frame_difference


def frame(rows: list[tuple], columns=("k", "v")) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=list(columns), orient="row")


def test_money_to_the_cent_and_floats_to_1e_9():
    assert frame_difference(frame([("a", Decimal("1.00"))]), frame([("a", Decimal("1.004"))])) is None
    assert frame_difference(frame([("a", Decimal("1.00"))]), frame([("a", Decimal("1.01"))])) is not None
    assert frame_difference(frame([("a", 1.0)]), frame([("a", 1.0 + 1e-12)])) is None
    assert frame_difference(frame([("a", 1.0)]), frame([("a", 1.0001)])) is not None


def test_tied_rows_may_come_in_either_order_but_not_other_rows():
    assert frame_difference(frame([("a", 1), ("b", 1)]), frame([("b", 1), ("a", 1)])) is None
    assert frame_difference(frame([("a", 1), ("b", 1)]), frame([("a", 1), ("c", 1)])) is not None


def test_columns_shape_and_null_versus_zero():
    assert frame_difference(frame([("a", 1)]), frame([("a", 1)], columns=("k", "w"))) is not None
    assert frame_difference(frame([("a", 1)]), frame([("a", 1), ("b", 2)])) is not None
    assert frame_difference(frame([("a", None)]), frame([("a", 0)])) is not None
    assert frame_difference(frame([("a", None)]), frame([("a", 0)]), null_is_zero=True) is None
