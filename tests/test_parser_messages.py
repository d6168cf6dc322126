"""Parser messages that used to mislead, each with the text a user actually typed.

Every case checks the message says what is wrong, the caret covers what the user wrote, and the
fix the hint suggests is a query CommerceQL reads with the meaning the user had in mind.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from commerceql import ast
from commerceql.errors import CommerceQLSyntaxError
from commerceql.parser import parse


def error_of(text: str) -> CommerceQLSyntaxError:
    with pytest.raises(CommerceQLSyntaxError) as caught:
        parse(text)
    return caught.value


# A date range written with an operator other tools use; CommerceQL writes SINCE a UNTIL b.
RANGE_JOINTS = ["..", " .. ", "...", " – ", " — ", "/", " - ", " to ", " TO "]


@pytest.mark.parametrize("joint", RANGE_JOINTS, ids=repr)
def test_during_with_a_date_range_says_what_during_takes(joint: str) -> None:
    written = f"2025-01-01{joint}2025-03-31"
    text = f"FROM sales SHOW net_sales DURING {written}"
    error = error_of(text)
    assert "DURING takes a named period, not a date range" in error.message
    assert "unit" not in (error.hint or "") and "offset" not in (error.hint or "")  # the old, wrong hint
    assert error.span is not None and text[error.span.start_pos : error.span.end_pos] == written.strip()
    assert (error.line, error.column) == (1, text.index("2025") + 1)
    for named in ("last_month", "this_quarter", "last_year", "last_weekend", "bfcm"):
        assert named in error.hint
    # The fix the hint gives reads as the period the user meant, both days included.
    suggested = re.search(r"SINCE \S+ UNTIL \S+", error.hint).group(0)
    fixed = parse(text.replace(f"DURING {written}", suggested))
    assert isinstance(fixed.since, ast.AbsoluteDate) and fixed.since.value == dt.date(2025, 1, 1)
    assert isinstance(fixed.until, ast.AbsoluteDate) and fixed.until.value == dt.date(2025, 3, 31)
    assert fixed.during is None


def test_since_with_a_date_range() -> None:
    text = "FROM sales SHOW net_sales SINCE 2025-01-01..2025-03-31 GROUP BY month"
    error = error_of(text)
    assert error.message == "a date range is written SINCE 2025-01-01 UNTIL 2025-03-31, not `2025-01-01..2025-03-31`"
    assert "both included" in error.hint


def test_compare_to_with_a_date_range() -> None:
    text = "FROM sales SHOW net_sales DURING last_quarter COMPARE TO 2024-07-01..2024-09-30"
    error = error_of(text)
    assert "COMPARE TO 2024-07-01 UNTIL 2024-09-30" in error.message
    fixed = parse(text.replace("2024-07-01..2024-09-30", "2024-07-01 UNTIL 2024-09-30"))
    (target,) = fixed.compare_to
    assert target.start.value == dt.date(2024, 7, 1) and target.until.value == dt.date(2024, 9, 30)


def test_a_date_range_on_a_later_line_is_pointed_at() -> None:
    text = "FROM sales\n  SHOW net_sales\n  DURING 2025-01-01..2025-03-31\n  GROUP BY month"
    error = error_of(text)
    assert (error.line, error.column) == (3, 10)
    assert "^" * len("2025-01-01..2025-03-31") in error.render()


def test_during_with_one_date_suggests_since_until() -> None:
    error = error_of("FROM sales SHOW net_sales DURING 2025-01-01")
    assert "DURING takes a named period" in error.message
    assert "SINCE 2025-01-01 UNTIL" in error.hint and "last_month" in error.hint


def test_an_offset_without_a_unit_still_gets_the_unit_hint() -> None:
    """The hint that misled for date ranges is right for a bare number where a date goes."""
    error = error_of("FROM sales SHOW net_sales SINCE 30")
    assert "needs a unit" in error.hint and "-30d" in error.hint


def test_a_subtraction_of_dates_elsewhere_is_not_taken_for_a_range() -> None:
    """Only where the parser stopped inside the two dates: a later mistake keeps its own message."""
    error = error_of("FROM sales SHOW net_sales SINCE 2025-01-01 UNTIL 2025-03-31 WHERE")
    assert "range" not in error.message
