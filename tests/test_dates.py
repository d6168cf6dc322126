"""Tests for commerceql.dates: reporting windows, comparisons, defaults and errors.

AST nodes are built directly (the parser is developed separately). The main clock is
Monday 2025-12-15 14:00 in New York; others cross DST changes and sit on a leap day.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from commerceql import ast
from commerceql.dates import (
    CYCLICAL_DIMENSIONS,
    DATE_FUNCTIONS,
    DEFAULT_TIMESERIES_RANGES,
    NAMED_DATES,
    NAMED_RANGES,
    RELATIVE_COMPARISONS,
    TIME_GRAINS,
    Comparison,
    DateWindow,
    Shift,
    add_grain,
    bfcm_window,
    comparison_suffix,
    default_window_for_timeseries,
    format_date_expression,
    format_window,
    local_now,
    resolve_comparison,
    resolve_date_expression,
    resolve_reporting_window,
    truncate,
    validate_timezone,
)
from commerceql.errors import CommerceQLError, CommerceQLNameError, CommerceQLSemanticError

NY = "America/New_York"
US = timedelta(microseconds=1)


def aware(*args: int, tz: str = NY, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz), fold=fold)


def L(*args: int) -> datetime:  # noqa: N802 - a naive local datetime, short for readability
    return datetime(*args)


NOW = aware(2025, 12, 15, 14)  # a Monday
NOW_END = L(2025, 12, 15, 14) + US


def span(n: int) -> ast.Span:
    return ast.Span(line=1, column=n, end_line=1, end_column=n + 3, start_pos=n - 1, end_pos=n + 2)


_OFFSET = re.compile(r"^(-?\d+)(s|min|h|d|w|m|q|y)$")


def off(text: str, sp: ast.Span | None = None) -> ast.DateOffset:
    match = _OFFSET.match(text)
    assert match, text
    return ast.DateOffset(int(match.group(1)), match.group(2), span=sp)  # type: ignore[arg-type]


def fn(name: str, arg: str | None = None, sp: ast.Span | None = None) -> ast.DateFunction:
    return ast.DateFunction(name, off(arg) if arg else None, span=sp)


def named(name: str, sp: ast.Span | None = None) -> ast.NamedDate:
    return ast.NamedDate(name, span=sp)


def absolute(value: date | datetime, sp: ast.Span | None = None) -> ast.AbsoluteDate:
    return ast.AbsoluteDate(value, span=sp)


def query(**kwargs: object) -> ast.Query:
    if isinstance(kwargs.get("timeseries"), str):
        kwargs["timeseries"] = ast.Identifier(kwargs["timeseries"])  # type: ignore[arg-type]
    return ast.Query(tables=(ast.Identifier("sales"),), **kwargs)  # type: ignore[arg-type]


def window(now: datetime = NOW, tz: str = NY, week_start: int = 0, **kwargs: object) -> DateWindow:
    return resolve_reporting_window(query(**kwargs), now=now, timezone=tz, week_start=week_start)


def W(start: datetime | None, end: datetime | None) -> DateWindow:  # noqa: N802
    return DateWindow(start, end)


def compare(
    target: ast.CompareTarget,
    base: DateWindow,
    *,
    grain: str | None = None,
    now: datetime = NOW,
    tz: str = NY,
    week_start: int = 0,
) -> Comparison:
    return resolve_comparison(target, base, grain=grain, now=now, timezone=tz, week_start=week_start)


def op(name: str, sp: ast.Span | None = None) -> ast.CompareTarget:
    return ast.CompareTarget(operator=name, span=sp)


# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------


def test_vocabulary_constants():
    assert TIME_GRAINS == ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
    assert CYCLICAL_DIMENSIONS == ("hour_of_day", "day_of_week", "week_of_year", "month_of_year")
    for name in (
        "today",
        "yesterday",
        "this_week",
        "this_month",
        "this_quarter",
        "this_year",
        "last_week",
        "last_month",
        "last_quarter",
        "last_year",
        "this_weekend",
        "last_weekend",
        "bfcm2000",
        "bfcm2025",
        "bfcm2100",
    ):
        assert name in NAMED_RANGES
    assert "now" not in NAMED_RANGES and "now" in NAMED_DATES
    assert "bfcm1999" not in NAMED_RANGES and "bfcm2101" not in NAMED_RANGES
    assert len(set(NAMED_RANGES)) == len(NAMED_RANGES)
    assert RELATIVE_COMPARISONS[:3] == ("previous_period", "previous_year", "previous_year_match_day_of_week")
    assert {"previous_month", "previous_quarter", "previous_week", "previous_day"} <= set(
        RELATIVE_COMPARISONS
    )
    assert len(DATE_FUNCTIONS) == 14 and "startOfMonth" in DATE_FUNCTIONS and "endOfMinute" in DATE_FUNCTIONS
    assert "startOfSecond" not in DATE_FUNCTIONS
    assert set(DEFAULT_TIMESERIES_RANGES) == set(TIME_GRAINS) | set(CYCLICAL_DIMENSIONS)


def test_date_window_helpers():
    w = W(L(2025, 1, 1), L(2025, 1, 2))
    assert w.is_bounded and w.duration == timedelta(days=1)
    assert L(2025, 1, 1) in w and L(2025, 1, 2) not in w
    assert not W(None, None).is_bounded and W(None, None).duration is None
    assert L(1990, 1, 1) in W(None, L(2025, 1, 1))


# ---------------------------------------------------------------------------------------------
# Time zones and local now
# ---------------------------------------------------------------------------------------------


def test_local_now_converts_any_aware_clock():
    assert local_now(NOW, NY) == L(2025, 12, 15, 14)
    assert local_now(datetime(2025, 12, 15, 19, tzinfo=UTC), NY) == L(2025, 12, 15, 14)
    assert local_now(datetime(2025, 12, 15, 19, tzinfo=UTC), "Asia/Tokyo") == L(2025, 12, 16, 4)
    assert local_now(NOW, NY).tzinfo is None


def test_local_now_rejects_naive_clock():
    with pytest.raises(ValueError, match="timezone-aware"):
        local_now(datetime(2025, 1, 1), NY)
    with pytest.raises(ValueError, match="timezone-aware"):
        window(now=datetime(2025, 1, 1), since=off("-1d"))


def test_validate_timezone_accepts_iana_names():
    for name in (NY, "UTC", "Europe/Paris", "Asia/Kolkata", "America/Argentina/Buenos_Aires"):
        assert validate_timezone(name) == name


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("america/new_york", "America/New_York"),
        ("New York", "America/New_York"),
        ("Europe/Pariss", "Europe/Paris"),
        ("tokyo", "Asia/Tokyo"),
    ],
)
def test_validate_timezone_suggests(name, suggestion):
    sp = span(7)
    with pytest.raises(CommerceQLNameError) as info:
        validate_timezone(name, span=sp)
    assert info.value.message == f"unknown time zone `{name}`"
    assert info.value.span is sp
    assert f"`{suggestion}`" in info.value.hint


@pytest.mark.parametrize("name", ["", "../../etc/passwd", "Not/A_Zone_At_All_xyz"])
def test_validate_timezone_rejects_garbage(name):
    with pytest.raises(CommerceQLNameError) as info:
        validate_timezone(name)
    assert info.value.hint


def test_invalid_timezone_points_at_with_timezone():
    sp = span(40)
    q = query(since=off("-1d"), with_modifiers=(ast.WithModifier("TIMEZONE", "Mars/Olympus", span=sp),))
    with pytest.raises(CommerceQLNameError) as info:
        resolve_reporting_window(q, now=NOW, timezone="Mars/Olympus")
    assert info.value.span is sp


def test_timezone_changes_local_dates():
    # 2025-12-15 19:00 UTC is already Dec 16 in Tokyo
    assert window(tz="Asia/Tokyo", during=named("today")) == W(L(2025, 12, 16), L(2025, 12, 16, 4) + US)


# ---------------------------------------------------------------------------------------------
# truncate / add_grain / bfcm
# ---------------------------------------------------------------------------------------------

T = L(2025, 12, 17, 13, 45, 30, 123456)  # a Wednesday


@pytest.mark.parametrize(
    ("grain", "expected"),
    [
        ("second", L(2025, 12, 17, 13, 45, 30)),
        ("minute", L(2025, 12, 17, 13, 45)),
        ("hour", L(2025, 12, 17, 13)),
        ("day", L(2025, 12, 17)),
        ("week", L(2025, 12, 15)),
        ("month", L(2025, 12, 1)),
        ("quarter", L(2025, 10, 1)),
        ("year", L(2025, 1, 1)),
    ],
)
def test_truncate(grain, expected):
    assert truncate(T, grain) == expected


@pytest.mark.parametrize(("week_start", "expected"), [(0, 15), (6, 14), (2, 17), (3, 11), (5, 13)])
def test_truncate_week_start(week_start, expected):
    assert truncate(T, "week", week_start) == L(2025, 12, expected)


def test_truncate_rejects_unknown_grain_and_week_start():
    with pytest.raises(ValueError):
        truncate(T, "fortnight")
    with pytest.raises(ValueError):
        truncate(T, "week", 7)
    with pytest.raises(ValueError):
        add_grain(T, "hour_of_day", 1)


@pytest.mark.parametrize(
    ("ts", "grain", "n", "expected"),
    [
        (T, "second", -30, L(2025, 12, 17, 13, 45, 0, 123456)),
        (T, "minute", 20, L(2025, 12, 17, 14, 5, 30, 123456)),
        (T, "hour", -14, L(2025, 12, 16, 23, 45, 30, 123456)),
        (T, "day", 15, L(2026, 1, 1, 13, 45, 30, 123456)),
        (T, "week", -2, L(2025, 12, 3, 13, 45, 30, 123456)),
        (L(2025, 1, 31), "month", 1, L(2025, 2, 28)),
        (L(2024, 1, 31), "month", 1, L(2024, 2, 29)),
        (L(2025, 3, 31), "month", -1, L(2025, 2, 28)),
        (L(2025, 5, 31), "quarter", -1, L(2025, 2, 28)),
        (L(2024, 2, 29), "year", 1, L(2025, 2, 28)),
        (L(2024, 2, 29), "year", -4, L(2020, 2, 29)),
        (L(2025, 1, 15), "month", -13, L(2023, 12, 15)),
    ],
)
def test_add_grain(ts, grain, n, expected):
    assert add_grain(ts, grain, n) == expected


@pytest.mark.parametrize(
    ("year", "start", "end"),
    [  # G1's documented windows (end = Cyber Monday, inclusive)
        (2016, (11, 25), (11, 28)),
        (2017, (11, 24), (11, 27)),
        (2018, (11, 23), (11, 26)),
        (2019, (11, 29), (12, 2)),
        (2020, (11, 27), (11, 30)),
        (2021, (11, 26), (11, 29)),
        (2022, (11, 25), (11, 28)),
        (2025, (11, 28), (12, 1)),
    ],
)
def test_bfcm_window(year, start, end):
    w = bfcm_window(year)
    assert w.start == L(year, *start)
    assert w.end == L(year, *end) + timedelta(days=1)


# ---------------------------------------------------------------------------------------------
# Named ranges
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "start", "end"),
    [
        ("today", L(2025, 12, 15), NOW_END),
        ("yesterday", L(2025, 12, 14), L(2025, 12, 15)),
        ("this_week", L(2025, 12, 15), NOW_END),
        ("this_month", L(2025, 12, 1), NOW_END),
        ("this_quarter", L(2025, 10, 1), NOW_END),
        ("this_year", L(2025, 1, 1), NOW_END),
        ("last_week", L(2025, 12, 8), L(2025, 12, 15)),
        ("last_month", L(2025, 11, 1), L(2025, 12, 1)),
        ("last_quarter", L(2025, 7, 1), L(2025, 10, 1)),
        ("last_year", L(2024, 1, 1), L(2025, 1, 1)),
        ("this_weekend", L(2025, 12, 20), L(2025, 12, 22)),  # a Monday: the coming weekend
        ("last_weekend", L(2025, 12, 13), L(2025, 12, 15)),
        ("bfcm2023", L(2023, 11, 24), L(2023, 11, 28)),
        ("bfcm2100", L(2100, 11, 26), L(2100, 11, 30)),
        ("LAST_MONTH", L(2025, 11, 1), L(2025, 12, 1)),
    ],
)
def test_during_named_ranges(name, start, end):
    assert window(during=named(name)) == W(start, end)


def test_weekends_on_a_weekend_clock():
    saturday = aware(2025, 12, 20, 10)
    sunday = aware(2025, 12, 21, 23, 30)
    assert window(now=saturday, during=named("this_weekend")) == W(L(2025, 12, 20), L(2025, 12, 20, 10) + US)
    assert window(now=saturday, during=named("last_weekend")) == W(L(2025, 12, 13), L(2025, 12, 15))
    assert window(now=sunday, during=named("this_weekend")) == W(
        L(2025, 12, 20), L(2025, 12, 21, 23, 30) + US
    )
    assert window(now=sunday, during=named("last_weekend")) == W(L(2025, 12, 13), L(2025, 12, 15))
    friday = aware(2025, 12, 19, 23, 59)
    assert window(now=friday, during=named("this_weekend")) == W(L(2025, 12, 20), L(2025, 12, 22))
    assert window(now=friday, during=named("last_weekend")) == W(L(2025, 12, 13), L(2025, 12, 15))


def test_sunday_week_start():
    assert window(week_start=6, during=named("this_week")) == W(L(2025, 12, 14), NOW_END)
    assert window(week_start=6, during=named("last_week")) == W(L(2025, 12, 7), L(2025, 12, 14))
    assert window(week_start=6, since=off("-1w")) == W(L(2025, 12, 7), NOW_END)


# ---------------------------------------------------------------------------------------------
# SINCE / UNTIL
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset", "start"),
    [
        ("-30s", L(2025, 12, 15, 13, 59, 30)),
        ("-5min", L(2025, 12, 15, 13, 55)),
        ("-3h", L(2025, 12, 15, 11)),
        ("-30d", L(2025, 11, 15)),
        ("-2w", L(2025, 12, 1)),
        ("-3m", L(2025, 9, 1)),
        ("-1q", L(2025, 7, 1)),
        ("-1y", L(2024, 1, 1)),
        ("0d", L(2025, 12, 15)),
        ("0m", L(2025, 12, 1)),
        ("-0y", L(2025, 1, 1)),
    ],
)
def test_since_offset_starts_at_the_unit_start(offset, start):
    assert window(since=off(offset)) == W(start, NOW_END)


@pytest.mark.parametrize(
    ("offset", "end"),
    [
        ("-1s", L(2025, 12, 15, 14)),
        ("-10s", L(2025, 12, 15, 13, 59, 51)),
        ("-1min", L(2025, 12, 15, 14)),
        ("-1h", L(2025, 12, 15, 14)),
        ("-2h", L(2025, 12, 15, 13)),
        ("-1d", L(2025, 12, 15)),
        ("-1w", L(2025, 12, 15)),
        ("-2w", L(2025, 12, 8)),
        ("-1m", L(2025, 12, 1)),
        ("-1q", L(2025, 10, 1)),
        ("-1y", L(2025, 1, 1)),
        ("0d", L(2025, 12, 16)),  # the end of today: not clipped to now
        ("0m", L(2026, 1, 1)),
    ],
)
def test_until_offset_ends_at_the_unit_end(offset, end):
    assert window(since=off("-3y"), until=off(offset)) == W(L(2022, 1, 1), end)


def test_since_until_same_unit_is_that_whole_unit():
    assert window(since=off("-1d"), until=off("-1d")) == W(L(2025, 12, 14), L(2025, 12, 15))
    assert window(since=off("-1m"), until=off("0m")) == W(L(2025, 11, 1), L(2026, 1, 1))
    assert window(since=off("-1q"), until=off("-1q")) == W(L(2025, 7, 1), L(2025, 10, 1))


def test_absolute_dates():
    assert window(since=absolute(date(2025, 1, 1))) == W(L(2025, 1, 1), NOW_END)
    assert window(since=absolute(date(2025, 1, 1)), until=absolute(date(2025, 1, 31))) == W(
        L(2025, 1, 1), L(2025, 2, 1)
    )
    assert window(since=absolute(date(2025, 3, 5)), until=absolute(date(2025, 3, 5))) == W(
        L(2025, 3, 5), L(2025, 3, 6)
    )


def test_absolute_datetimes():
    w = window(since=absolute(L(2025, 1, 31, 9, 30)), until=absolute(L(2025, 1, 31, 14)))
    assert w == W(L(2025, 1, 31, 9, 30), L(2025, 1, 31, 14, 0, 1))  # the named second is included
    # an aware literal is converted to the local wall clock
    w = window(since=absolute(datetime(2025, 1, 31, 14, tzinfo=UTC)))
    assert w.start == L(2025, 1, 31, 9)


def test_named_ranges_as_bounds():
    assert window(since=named("last_month")) == W(L(2025, 11, 1), NOW_END)
    assert window(since=named("last_year"), until=named("today")) == W(L(2024, 1, 1), NOW_END)
    assert window(since=named("last_year"), until=named("yesterday")) == W(L(2024, 1, 1), L(2025, 12, 15))
    assert window(since=named("bfcm2024"), until=named("bfcm2024")) == bfcm_window(2024)
    assert window(since=off("-7d"), until=named("now")) == W(L(2025, 12, 8), NOW_END)
    assert window(since=named("now")) == W(L(2025, 12, 15, 14), NOW_END)
    assert window(since=off("-1y"), until=named("last_week")) == W(L(2024, 1, 1), L(2025, 12, 15))


@pytest.mark.parametrize(
    ("function", "arg", "instant"),
    [
        ("startOfMinute", None, L(2025, 12, 15, 14)),
        ("startOfMinute", "-5min", L(2025, 12, 15, 13, 55)),
        ("startOfHour", "-3h", L(2025, 12, 15, 11)),
        ("startOfDay", None, L(2025, 12, 15)),
        ("startOfDay", "-30d", L(2025, 11, 15)),
        ("startOfWeek", None, L(2025, 12, 15)),
        ("startOfWeek", "-1w", L(2025, 12, 8)),
        ("startOfMonth", "-1m", L(2025, 11, 1)),
        ("startOfMonth", "0m", L(2025, 12, 1)),
        ("startOfQuarter", "-3q", L(2025, 1, 1)),
        ("startOfYear", "-1y", L(2024, 1, 1)),
        ("endOfMinute", "-1min", L(2025, 12, 15, 14)),
        ("endOfHour", None, L(2025, 12, 15, 15)),
        ("endOfDay", "-1d", L(2025, 12, 15)),
        ("endOfWeek", "-1w", L(2025, 12, 15)),
        ("endOfMonth", "-1m", L(2025, 12, 1)),
        ("endOfQuarter", "-3q", L(2025, 4, 1)),
        ("endOfYear", None, L(2026, 1, 1)),
        ("startofmonth", "-1m", L(2025, 11, 1)),  # case-insensitive
    ],
)
def test_date_functions_are_boundary_instants(function, arg, instant):
    expr = fn(function, arg)
    assert resolve_date_expression(expr, now=NOW, timezone=NY) == W(instant, instant)
    if instant <= L(2025, 12, 15, 14):
        assert window(since=expr) == W(instant, NOW_END)
    assert window(since=off("-5y"), until=expr) == W(L(2020, 1, 1), instant)


def test_function_pair_selects_whole_units():
    last_quarter_3 = window(since=fn("startOfQuarter", "-3q"), until=fn("endOfQuarter", "-3q"))
    assert last_quarter_3 == W(L(2025, 1, 1), L(2025, 4, 1))
    last_month = window(since=fn("startOfMonth", "-1m"), until=fn("endOfMonth", "-1m"))
    assert last_month == window(during=named("last_month"))
    assert window(week_start=6, since=fn("startOfWeek")) == W(L(2025, 12, 14), NOW_END)


def test_resolve_date_expression_spans():
    assert resolve_date_expression(off("-3m"), now=NOW, timezone=NY) == W(L(2025, 9, 1), L(2025, 10, 1))
    assert resolve_date_expression(named("now"), now=NOW, timezone=NY) == W(L(2025, 12, 15, 14), NOW_END)
    assert resolve_date_expression(absolute(date(2025, 2, 3)), now=NOW, timezone=NY) == W(
        L(2025, 2, 3), L(2025, 2, 4)
    )


def test_format_date_expression():
    assert format_date_expression(off("-30d")) == "-30d"
    assert format_date_expression(off("0m")) == "0m"
    assert format_date_expression(absolute(date(2025, 1, 2))) == "2025-01-02"
    assert format_date_expression(absolute(L(2025, 1, 2, 3, 4, 5))) == "2025-01-02T03:04:05"
    assert format_date_expression(named("last_month")) == "last_month"
    assert format_date_expression(fn("startOfMonth", "-1m")) == "startOfMonth(-1m)"
    assert format_date_expression(fn("endOfDay")) == "endOfDay()"


# ---------------------------------------------------------------------------------------------
# Defaults
# ---------------------------------------------------------------------------------------------


def test_no_dates_and_no_timeseries_is_unbounded():
    assert window() == W(None, None)
    assert window(group_by=(ast.GroupItem(ast.Identifier("day")),)) == W(None, None)


@pytest.mark.parametrize(
    ("grain", "start"),
    [
        ("second", L(2025, 12, 15, 13, 59)),
        ("minute", L(2025, 12, 15, 13)),
        ("hour", L(2025, 12, 14, 14)),
        ("day", L(2025, 11, 15)),
        ("week", L(2025, 11, 17)),
        ("month", L(2025, 9, 1)),
        ("quarter", L(2024, 10, 1)),
        ("year", L(2021, 1, 1)),
        ("hour_of_day", L(2025, 11, 15)),
        ("day_of_week", L(2025, 11, 15)),
        ("week_of_year", L(2025, 1, 1)),
        ("month_of_year", L(2025, 1, 1)),
    ],
)
def test_default_timeseries_ranges(grain, start):
    expected = W(start, NOW_END)
    assert default_window_for_timeseries(grain, now=NOW, timezone=NY) == expected
    assert window(timeseries=grain) == expected
    unit, n = DEFAULT_TIMESERIES_RANGES[grain]
    # documented equivalence: the default is `SINCE -{n}{unit}`
    letter = {"second": "s", "minute": "min", "hour": "h", "day": "d", "week": "w", "month": "m"}
    letter |= {"quarter": "q", "year": "y"}
    assert window(since=off(f"-{n}{letter[unit]}")) == expected


def test_default_week_range_uses_week_start():
    assert default_window_for_timeseries("week", now=NOW, timezone=NY, week_start=6) == W(
        L(2025, 11, 16), NOW_END
    )


def test_until_without_since_uses_default_start_before_until():
    assert window(until=absolute(date(2024, 1, 31)), timeseries="day") == W(L(2024, 1, 1), L(2024, 2, 1))
    assert window(until=off("-1m"), timeseries="month") == W(L(2025, 8, 1), L(2025, 12, 1))
    assert window(until=named("yesterday"), timeseries="week") == W(L(2025, 11, 10), L(2025, 12, 15))
    assert window(until=fn("endOfMonth", "-1m"), timeseries="day") == W(L(2025, 10, 31), L(2025, 12, 1))


def test_explicit_dates_win_over_timeseries_defaults():
    assert window(since=off("-7d"), timeseries="month") == W(L(2025, 12, 8), NOW_END)
    assert window(during=named("last_year"), timeseries="day") == W(L(2024, 1, 1), L(2025, 1, 1))


def test_unknown_timeseries_grain():
    sp = span(20)
    with pytest.raises(CommerceQLNameError) as info:
        window(timeseries=ast.Identifier("dya", span=sp))
    assert info.value.message == "unknown time dimension `dya` for TIMESERIES"
    assert info.value.span is sp and "`day`" in info.value.hint
    with pytest.raises(CommerceQLNameError):
        default_window_for_timeseries("fortnight", now=NOW, timezone=NY)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_unknown_named_range():
    sp = span(12)
    with pytest.raises(CommerceQLNameError) as info:
        window(during=named("last_moth", sp))
    err = info.value
    assert err.message == "unknown date range `last_moth`"
    assert err.span is sp
    assert "`last_month`" in err.hint
    assert "name error: unknown date range `last_moth`" in str(err)


def test_unknown_named_range_in_since_suggests_now():
    with pytest.raises(CommerceQLNameError) as info:
        window(since=named("nwo"))
    assert "`now`" in info.value.hint


@pytest.mark.parametrize("name", ["bfcm1999", "bfcm2101", "bfcm20", "bfcm02025"])
def test_bfcm_out_of_range(name):
    sp = span(3)
    with pytest.raises(CommerceQLNameError) as info:
        window(during=named(name, sp))
    assert info.value.message == f"unknown date range `{name}`"
    assert info.value.span is sp and "2000 to 2100" in info.value.hint


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("last_7_days", "SINCE -7d"), ("last_30_days", "SINCE -30d"), ("last_12_months", "SINCE -12m")],
)
def test_admin_presets_are_not_named_ranges_but_hint_an_offset(name, fragment):
    with pytest.raises(CommerceQLNameError) as info:
        window(during=named(name))
    assert fragment in info.value.hint


def test_during_now_is_rejected():
    sp = span(8)
    with pytest.raises(CommerceQLSemanticError) as info:
        window(during=named("now", sp))
    assert "`now` is a single instant" in info.value.message
    assert info.value.span is sp and "DURING today" in info.value.hint


def test_during_with_since_or_until_is_rejected():
    sp = span(30)
    with pytest.raises(CommerceQLSemanticError) as info:
        window(during=named("last_month"), since=off("-1d", sp))
    assert info.value.message == "DURING can't be combined with SINCE or UNTIL"
    assert info.value.span is sp and info.value.hint
    with pytest.raises(CommerceQLSemanticError):
        window(during=named("last_month"), until=off("-1d"))


def test_until_before_since():
    sp = span(25)
    with pytest.raises(CommerceQLSemanticError) as info:
        window(since=off("-1d"), until=off("-2d", sp))
    err = info.value
    assert err.message == "UNTIL `-2d` is before SINCE `-1d`"
    assert err.span is sp
    assert "swap SINCE and UNTIL" in err.hint and "Dec 14, 2025" in err.hint
    with pytest.raises(CommerceQLSemanticError):
        window(since=absolute(date(2025, 2, 1)), until=absolute(date(2025, 1, 31)))
    with pytest.raises(CommerceQLSemanticError):  # an empty period
        window(since=fn("startOfMonth"), until=fn("startOfMonth"))


def test_since_in_the_future_without_until():
    sp = span(6)
    with pytest.raises(CommerceQLSemanticError) as info:
        window(since=absolute(date(2026, 1, 1), sp))
    assert info.value.message.startswith("SINCE `2026-01-01` starts in the future")
    assert info.value.span is sp and "UNTIL" in info.value.hint
    # with an UNTIL a future period is fine
    assert window(since=absolute(date(2026, 1, 1)), until=absolute(date(2026, 1, 2))) == W(
        L(2026, 1, 1), L(2026, 1, 3)
    )


def test_until_without_since_needs_timeseries():
    sp = span(14)
    with pytest.raises(CommerceQLSemanticError) as info:
        window(until=off("-1d", sp))
    assert info.value.message == "UNTIL without SINCE needs TIMESERIES"
    assert info.value.span is sp
    assert "SINCE -30d" in info.value.hint and "TIMESERIES" in info.value.hint


def test_unknown_date_function():
    sp = span(9)
    with pytest.raises(CommerceQLNameError) as info:
        window(since=fn("startOfMonht", "-1m", sp))
    assert info.value.message == "unknown date function `startOfMonht`"
    assert info.value.span is sp and "`startOfMonth`" in info.value.hint
    with pytest.raises(CommerceQLNameError) as info:
        window(since=fn("startOfSecond"))
    assert info.value.hint


def test_date_function_unit_mismatch():
    arg_span = span(22)
    expr = ast.DateFunction("startOfMonth", off("-30d", arg_span), span=span(9))
    with pytest.raises(CommerceQLSemanticError) as info:
        window(since=expr)
    err = info.value
    assert err.message == "`startOfMonth` takes an offset in months, not `-30d`"
    assert err.span is arg_span
    assert "`startOfMonth(-1m)`" in err.hint
    with pytest.raises(CommerceQLSemanticError) as info:
        window(since=fn("startOfMinute", "-5m"))
    assert "`startOfMinute(-1min)`" in info.value.hint


def test_out_of_range_offset():
    sp = span(5)
    with pytest.raises(CommerceQLSemanticError) as info:
        window(since=off("-10000y", sp))
    assert "out of range" in info.value.message and info.value.span is sp
    with pytest.raises(CommerceQLSemanticError):
        window(since=off("-99999999999d"))


def test_unknown_offset_unit():
    bad = ast.DateOffset(-3, "x", span=span(4))  # type: ignore[arg-type]
    with pytest.raises(CommerceQLSemanticError) as info:
        window(since=bad)
    assert info.value.message == "unknown date unit `x` in `-3x`" and info.value.span is bad.span


def test_week_start_validation():
    with pytest.raises(ValueError):
        window(week_start=7, since=off("-1w"))


# ---------------------------------------------------------------------------------------------
# DST and leap-day clocks
# ---------------------------------------------------------------------------------------------

SPRING = aware(2025, 3, 9, 3, 30)  # 02:00 EST jumped to 03:00 EDT that morning
FALL_SECOND_PASS = datetime(2025, 11, 2, 6, 30, tzinfo=UTC)  # 01:30 EST, the second 01:30 of the day


def test_spring_forward_clock():
    assert local_now(SPRING, NY) == L(2025, 3, 9, 3, 30)
    # -1h is elapsed time: one real hour before 03:30 EDT is 01:30 EST
    assert window(now=SPRING, since=off("-1h")) == W(L(2025, 3, 9, 1), L(2025, 3, 9, 3, 30) + US)
    assert window(now=SPRING, since=off("-90min")) == W(L(2025, 3, 9, 1), L(2025, 3, 9, 3, 30) + US)
    # days stay wall-clock days (23 real hours today)
    assert window(now=SPRING, during=named("today")) == W(L(2025, 3, 9), L(2025, 3, 9, 3, 30) + US)
    assert window(now=SPRING, since=off("-1d"), until=off("-1d")) == W(L(2025, 3, 8), L(2025, 3, 9))
    # 24 real hours before 03:30 EDT is 02:30 EST the day before
    assert window(now=SPRING, timeseries="hour") == W(L(2025, 3, 8, 2), L(2025, 3, 9, 3, 30) + US)


def test_fall_back_clock():
    assert local_now(FALL_SECOND_PASS, NY) == L(2025, 11, 2, 1, 30)
    assert local_now(FALL_SECOND_PASS, NY).fold == 0
    # an hour before 01:30 EST is 01:30 EDT: same wall-clock hour
    assert window(now=FALL_SECOND_PASS, since=off("-1h")).start == L(2025, 11, 2, 1)
    assert window(now=FALL_SECOND_PASS, since=off("-2h")).start == L(2025, 11, 2)
    assert window(now=FALL_SECOND_PASS, during=named("yesterday")) == W(L(2025, 11, 1), L(2025, 11, 2))
    first_pass = aware(2025, 11, 2, 1, 30)  # EDT
    assert local_now(first_pass, NY) == L(2025, 11, 2, 1, 30)
    assert window(now=first_pass, since=off("-1h")).start == L(2025, 11, 2, 0)


LEAP = aware(2024, 2, 29, 12)  # a Thursday


def test_leap_day_clock():
    assert window(now=LEAP, during=named("today")) == W(L(2024, 2, 29), L(2024, 2, 29, 12) + US)
    assert window(now=LEAP, during=named("this_month")) == W(L(2024, 2, 1), L(2024, 2, 29, 12) + US)
    assert window(now=LEAP, during=named("last_year")) == W(L(2023, 1, 1), L(2024, 1, 1))
    assert window(now=LEAP, since=off("-1y")) == W(L(2023, 1, 1), L(2024, 2, 29, 12) + US)
    assert window(now=LEAP, since=off("0d"), until=off("0d")) == W(L(2024, 2, 29), L(2024, 3, 1))
    base = window(now=LEAP, during=named("today"))
    previous_year = compare(op("previous_year"), base, now=LEAP)
    assert previous_year.window == W(L(2023, 2, 28), L(2023, 2, 28, 12) + US)
    dow = compare(op("previous_year_match_day_of_week"), base, now=LEAP)
    assert dow.window.start == L(2023, 3, 2) and dow.window.start.weekday() == 3
    assert compare(op("previous_month"), base, now=LEAP).window.start == L(2024, 1, 29)
    whole_day = window(now=LEAP, since=absolute(date(2024, 2, 29)), until=absolute(date(2024, 2, 29)))
    assert compare(op("previous_year"), whole_day, now=LEAP).window == W(L(2023, 2, 28), L(2023, 3, 1))


# ---------------------------------------------------------------------------------------------
# COMPARE TO
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("base", "grain", "expected"),
    [
        # closed calendar months move by whole months
        (W(L(2025, 11, 1), L(2025, 12, 1)), None, W(L(2025, 10, 1), L(2025, 11, 1))),
        (W(L(2025, 7, 1), L(2025, 10, 1)), None, W(L(2025, 4, 1), L(2025, 7, 1))),
        (W(L(2024, 1, 1), L(2025, 1, 1)), None, W(L(2023, 1, 1), L(2024, 1, 1))),
        (W(L(2025, 3, 1), L(2025, 4, 1)), "day", W(L(2025, 2, 1), L(2025, 3, 1))),
        # other closed windows move by their exact length
        (W(L(2025, 12, 8), L(2025, 12, 15)), None, W(L(2025, 12, 1), L(2025, 12, 8))),
        (W(L(2025, 12, 14), L(2025, 12, 15)), None, W(L(2025, 12, 13), L(2025, 12, 14))),
        (W(L(2025, 11, 15), L(2025, 12, 15)), "day", W(L(2025, 10, 16), L(2025, 11, 15))),
        (W(L(2025, 11, 1), L(2025, 12, 15)), None, W(L(2025, 9, 18), L(2025, 11, 1))),
        (W(L(2025, 12, 1, 10), L(2025, 12, 3, 16)), None, W(L(2025, 11, 29, 4), L(2025, 12, 1, 10))),
        (bfcm_window(2025), None, W(L(2025, 11, 24), L(2025, 11, 28))),
        # windows running up to now move by the units they touch
        (W(L(2025, 12, 1), NOW_END), None, W(L(2025, 11, 1), L(2025, 11, 15, 14) + US)),
        (W(L(2025, 9, 1), NOW_END), "month", W(L(2025, 5, 1), L(2025, 8, 15, 14) + US)),
        (W(L(2025, 1, 1), NOW_END), None, W(L(2024, 1, 1), L(2024, 12, 15, 14) + US)),
        (W(L(2025, 12, 15), NOW_END), "hour", W(L(2025, 12, 14), L(2025, 12, 14, 14) + US)),
        (W(L(2025, 11, 15), NOW_END), "day", W(L(2025, 10, 15), L(2025, 11, 14, 14) + US)),
        (W(L(2025, 11, 17), NOW_END), "week", W(L(2025, 10, 13), L(2025, 11, 10, 14) + US)),
        (W(L(2025, 11, 17), NOW_END), "day", W(L(2025, 10, 19), L(2025, 11, 16, 14) + US)),
        (W(L(2025, 12, 15, 11), NOW_END), "hour", W(L(2025, 12, 15, 7), L(2025, 12, 15, 10) + US)),
    ],
)
def test_previous_period(base, grain, expected):
    result = compare(op("previous_period"), base, grain=grain)
    assert result.window == expected
    assert result.suffix == "previous_period"
    assert result.shift is not None
    assert result.shift.apply(base.start) == expected.start
    assert result.label.startswith("Previous period (")


def test_previous_period_of_reporting_windows():
    base = window(during=named("last_month"))
    assert compare(op("previous_period"), base).window == W(L(2025, 10, 1), L(2025, 11, 1))
    base = window(during=named("this_week"))
    assert compare(op("previous_period"), base, grain="week").window == W(
        L(2025, 12, 8), L(2025, 12, 8, 14) + US
    )
    base = window(timeseries="week")  # SINCE -4w default
    result = compare(op("previous_period"), base, grain="week")
    assert result.window.start.weekday() == 0
    assert result.shift == Shift(delta=timedelta(weeks=-5))


@pytest.mark.parametrize(
    ("operator", "start", "end", "shift"),
    [
        ("previous_year", L(2024, 11, 1), L(2024, 12, 1), Shift(months=-12)),
        (
            "previous_year_match_day_of_week",
            L(2024, 11, 2),
            L(2024, 12, 2),
            Shift(delta=timedelta(days=-364)),
        ),
        ("previous_quarter", L(2025, 8, 1), L(2025, 9, 1), Shift(months=-3)),
        ("previous_month", L(2025, 10, 1), L(2025, 11, 1), Shift(months=-1)),
        ("previous_week", L(2025, 10, 25), L(2025, 11, 24), Shift(delta=timedelta(weeks=-1))),
        ("previous_day", L(2025, 10, 31), L(2025, 11, 30), Shift(delta=timedelta(days=-1))),
        ("previous_hour", L(2025, 10, 31, 23), L(2025, 11, 30, 23), Shift(delta=timedelta(hours=-1))),
        (
            "previous_minute",
            L(2025, 10, 31, 23, 59),
            L(2025, 11, 30, 23, 59),
            Shift(delta=timedelta(minutes=-1)),
        ),
        (
            "previous_second",
            L(2025, 10, 31, 23, 59, 59),
            L(2025, 11, 30, 23, 59, 59),
            Shift(delta=timedelta(seconds=-1)),
        ),
        ("PREVIOUS_YEAR", L(2024, 11, 1), L(2024, 12, 1), Shift(months=-12)),
    ],
)
def test_relative_comparisons(operator, start, end, shift):
    base = W(L(2025, 11, 1), L(2025, 12, 1))
    result = compare(op(operator), base)
    assert result.window == W(start, end)
    assert result.shift == shift
    assert result.suffix == operator.lower()


def test_previous_year_of_to_date_window_and_labels():
    base = window(during=named("this_month"))
    result = compare(op("previous_year"), base)
    assert result.window == W(L(2024, 12, 1), L(2024, 12, 15, 14) + US)
    assert result.label == "Previous year (Dec 1 – Dec 15, 2024)"
    result = compare(op("previous_year_match_day_of_week"), base)
    assert result.window.start == L(2024, 12, 2) and result.window.start.weekday() == base.start.weekday()
    assert result.label == "Previous year, matching day of week (Dec 2 – Dec 16, 2024)"


def test_previous_month_clamps_to_month_end():
    base = W(L(2025, 3, 31), L(2025, 4, 1))
    assert compare(op("previous_month"), base).window == W(L(2025, 2, 28), L(2025, 3, 1))


def test_compare_to_named_ranges():
    base = window(during=named("this_week"))
    result = compare(op("last_week"), base)
    assert result == Comparison(
        window=W(L(2025, 12, 8), L(2025, 12, 15)),
        suffix="last_week",
        label="Last week (Dec 8 – Dec 14, 2025)",
        shift=None,
    )
    bfcm = compare(op("bfcm2023"), window(during=named("bfcm2024")))
    assert bfcm.window == bfcm_window(2023) and bfcm.suffix == "bfcm2023"
    assert bfcm.label == "BFCM 2023 (Nov 24 – Nov 27, 2023)"
    # the parser may also give a named range as a start expression
    as_start = compare(ast.CompareTarget(start=named("bfcm2023")), window(during=named("bfcm2024")))
    assert as_start == bfcm
    # and a relative operator as a NamedDate
    as_named = compare(ast.CompareTarget(start=named("previous_year")), base)
    assert as_named == compare(op("previous_year"), base)


def test_compare_to_absolute_date_alone_keeps_the_base_shape():
    last_month = window(during=named("last_month"))
    result = compare(ast.CompareTarget(start=absolute(date(2023, 1, 1))), last_month)
    assert result.window == W(L(2023, 1, 1), L(2023, 2, 1))
    assert result.suffix == "20230101"
    assert result.label == "Jan 1 – Jan 31, 2023"
    assert result.shift == Shift(months=-34)
    last_30 = window(since=off("-30d"))
    result = compare(ast.CompareTarget(start=absolute(date(2023, 1, 1))), last_30)
    assert result.window == W(L(2023, 1, 1), L(2023, 1, 1) + (NOW_END - L(2025, 11, 15)))
    assert result.window.duration == last_30.duration
    dt_result = compare(ast.CompareTarget(start=absolute(L(2023, 1, 1, 14))), last_30)
    assert dt_result.suffix == "20230101T140000"
    assert dt_result.window.start == L(2023, 1, 1, 14)


def test_compare_to_offsets_and_functions():
    base = window(during=named("last_month"))
    result = compare(ast.CompareTarget(start=off("-1y")), base)
    assert result.suffix == "sub_1y"
    assert result.window == W(L(2024, 1, 1), L(2024, 2, 1))
    result = compare(ast.CompareTarget(start=fn("startOfQuarter", "-3q")), base)
    assert result.suffix == "startOfQuarter_sub_3q"
    assert result.window == W(L(2025, 1, 1), L(2025, 2, 1))


def test_compare_to_start_until():
    base = window(during=named("last_quarter"))
    target = ast.CompareTarget(start=fn("startOfQuarter", "-3q"), until=fn("endOfQuarter", "-3q"))
    result = compare(target, base)
    assert result.window == W(L(2025, 1, 1), L(2025, 4, 1))
    assert result.suffix == "startOfQuarter_sub_3q_until_endOfQuarter_sub_3q"
    assert result.label == "Jan 1 – Mar 31, 2025"
    assert result.shift is None
    target = ast.CompareTarget(start=absolute(date(2023, 1, 1)), until=absolute(date(2023, 3, 31)))
    result = compare(target, base)
    assert result.suffix == "20230101_until_20230331"
    assert result.window == W(L(2023, 1, 1), L(2023, 4, 1))
    target = ast.CompareTarget(start=named("last_year"), until=named("yesterday"))
    assert compare(target, base).window == W(L(2024, 1, 1), L(2025, 12, 15))
    assert compare(target, base).suffix == "last_year_until_yesterday"
    target = ast.CompareTarget(operator="last_year", until=off("-1d"))
    assert compare(target, base).window == W(L(2024, 1, 1), L(2025, 12, 15))


@pytest.mark.parametrize(
    ("expr", "suffix"),
    [
        (off("-1y"), "sub_1y"),
        (off("-30d"), "sub_30d"),
        (off("-5min"), "sub_5min"),
        (off("0m"), "0m"),
        (off("2d"), "add_2d"),
        (absolute(date(2023, 1, 1)), "20230101"),
        (absolute(L(2023, 1, 1, 14)), "20230101T140000"),
        (named("bfcm2023"), "bfcm2023"),
        (named("Last_Week"), "last_week"),
        (fn("startOfQuarter", "-3q"), "startOfQuarter_sub_3q"),
        (fn("startofmonth"), "startOfMonth"),
        (fn("endOfMonth", "0m"), "endOfMonth_0m"),
    ],
)
def test_comparison_suffix(expr, suffix):
    assert comparison_suffix(expr) == suffix
    assert re.fullmatch(r"[A-Za-z0-9_]+", suffix)


def test_targets_and_benchmarks_are_not_supported():
    base = window(during=named("last_month"))
    for word in ("targets", "TARGETS", "benchmarks"):
        sp = span(50)
        with pytest.raises(CommerceQLSemanticError) as info:
            compare(op(word, sp), base)
        assert "not supported in CommerceQL (no targets/benchmarks data)" in info.value.message
        assert info.value.span is sp and info.value.hint
    with pytest.raises(CommerceQLSemanticError):
        compare(ast.CompareTarget(start=named("targets")), base)


def test_unknown_comparison_operator():
    sp = span(11)
    with pytest.raises(CommerceQLNameError) as info:
        compare(op("previous_yaer", sp), window(during=named("last_month")))
    assert info.value.message == "unknown comparison `previous_yaer`"
    assert info.value.span is sp and "`previous_year`" in info.value.hint


def test_comparison_needs_a_bounded_base():
    sp = span(33)
    for target in (
        op("previous_period", sp),
        op("last_week", sp),
        ast.CompareTarget(start=absolute(date(2023, 1, 1)), span=sp),
    ):
        with pytest.raises(CommerceQLSemanticError) as info:
            compare(target, W(None, None))
        assert info.value.message == "COMPARE TO needs a reporting period to compare against"
        assert info.value.span is sp
        assert "add SINCE/UNTIL or DURING" in info.value.hint


def test_comparison_other_errors():
    base = window(during=named("last_month"))
    with pytest.raises(CommerceQLSemanticError) as info:  # relative operator with UNTIL
        compare(ast.CompareTarget(operator="previous_year", until=off("-1d", span(3))), base)
    assert "can't take UNTIL" in info.value.message and info.value.span == span(3)
    with pytest.raises(CommerceQLSemanticError) as info:  # `now` is not a period
        compare(ast.CompareTarget(start=named("now", span(4))), base)
    assert "`now` is a single instant" in info.value.message and info.value.span == span(4)
    with pytest.raises(CommerceQLSemanticError):  # an empty target
        compare(ast.CompareTarget(span=span(1)), base)
    with pytest.raises(CommerceQLSemanticError) as info:  # UNTIL before the start
        target = ast.CompareTarget(
            start=absolute(date(2023, 3, 1)), until=absolute(date(2023, 1, 1), span(9))
        )
        compare(target, base)
    assert info.value.span == span(9) and "swap" in info.value.hint
    with pytest.raises(CommerceQLNameError) as info:  # unknown named range in a comparison
        compare(ast.CompareTarget(start=named("last_moth", span(2))), base)
    assert "`last_month`" in info.value.hint
    with pytest.raises(CommerceQLSemanticError):  # too far back
        compare(op("previous_year"), W(L(1, 3, 1), L(1, 4, 1)))


# ---------------------------------------------------------------------------------------------
# Labels and shifts
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("w", "text"),
    [
        (W(L(2024, 12, 1), L(2024, 12, 15, 14) + US), "Dec 1 – Dec 15, 2024"),
        (W(L(2025, 12, 14), L(2025, 12, 15)), "Dec 14, 2025"),
        (W(L(2024, 12, 30), L(2025, 1, 3)), "Dec 30, 2024 – Jan 2, 2025"),
        (W(L(2025, 12, 15, 9), L(2025, 12, 15, 14)), "Dec 15, 2025 09:00 – 14:00"),
        (W(L(2025, 12, 15, 9), L(2025, 12, 15, 14) + US), "Dec 15, 2025 09:00 – 14:00"),
        (W(L(2025, 12, 14, 22), L(2025, 12, 15, 3)), "Dec 14, 2025 22:00 – Dec 15, 2025 03:00"),
        (W(L(2025, 12, 15, 9, 0, 30), L(2025, 12, 15, 9, 1)), "Dec 15, 2025 09:00:30 – 09:01"),
        (W(None, None), "all time"),
        (W(L(2025, 1, 1), None), "since Jan 1, 2025"),
        (W(None, L(2025, 1, 1)), "until Dec 31, 2024 23:59:59"),
    ],
)
def test_format_window(w, text):
    assert format_window(w) == text


@pytest.mark.parametrize(
    ("shift", "text"),
    [
        (Shift(months=-12), "-1 year"),
        (Shift(months=-24), "-2 years"),
        (Shift(months=-3), "-3 months"),
        (Shift(months=-1), "-1 month"),
        (Shift(delta=timedelta(days=-364)), "-364 days"),
        (Shift(delta=timedelta(weeks=-1)), "-7 days"),
        (Shift(delta=timedelta(hours=-6)), "-6 hours"),
        (Shift(delta=timedelta(minutes=-90)), "-90 minutes"),
        (Shift(delta=timedelta(seconds=-1)), "-1 second"),
        (Shift(delta=timedelta(days=2)), "+2 days"),
        (Shift(delta=-timedelta(days=30, hours=14, microseconds=1)), "-30 days, 14:00:00.000001"),
        (Shift(), "0"),
    ],
)
def test_shift_describe(shift, text):
    assert shift.describe() == text


def test_errors_share_the_commerceql_base():
    with pytest.raises(CommerceQLError):
        window(during=named("nope"))


# ---------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------

naive_times = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2090, 12, 31))
grains = st.sampled_from(TIME_GRAINS)
week_starts = st.integers(min_value=0, max_value=6)


@given(naive_times, grains, st.integers(min_value=-500, max_value=500), week_starts)
def test_truncate_add_grain_properties(ts, grain, n, week_start):
    start = truncate(ts, grain, week_start)
    assert truncate(start, grain, week_start) == start  # idempotent
    assert start <= ts < add_grain(start, grain, 1)
    moved = add_grain(start, grain, n)
    assert truncate(moved, grain, week_start) == moved  # unit starts map to unit starts
    assert truncate(add_grain(ts, grain, n), grain, week_start) == moved


@given(
    naive_times,
    st.sampled_from(["second", "minute", "hour", "day", "week"]),
    st.integers(min_value=1, max_value=400),
)
def test_previous_period_of_closed_windows_is_adjacent_and_equal(ts, grain, n):
    start = truncate(ts, grain)
    base = W(start, add_grain(start, grain, n))
    month_aligned = truncate(base.start, "month") == base.start and truncate(base.end, "month") == base.end
    result = compare(op("previous_period"), base)
    assert result.window.end == base.start  # immediately before
    if not month_aligned:
        assert result.window.duration == base.duration


@given(naive_times, st.integers(min_value=1, max_value=36))
def test_previous_period_of_calendar_months_is_adjacent(ts, n):
    start = truncate(ts, "month")
    base = W(start, add_grain(start, "month", n))
    result = compare(op("previous_period"), base)
    assert result.window == W(add_grain(start, "month", -n), start)


@given(st.integers(min_value=2000, max_value=2100))
def test_bfcm_windows_run_friday_to_monday(year):
    w = window(during=named(f"bfcm{year}"))
    assert w == bfcm_window(year)
    assert w.start.weekday() == 4  # Black Friday
    assert (w.end - timedelta(days=1)).weekday() == 0  # Cyber Monday is the last day
    assert w.duration == timedelta(days=4)
    assert date(year, 11, 23) <= w.start.date() <= date(year, 11, 29)
    assert (w.start - timedelta(days=1)).weekday() == 3  # the day before is Thanksgiving


zones = st.sampled_from([NY, "UTC", "Europe/London", "Asia/Tokyo", "Australia/Lord_Howe", "America/Santiago"])
clocks = st.datetimes(
    min_value=datetime(2001, 1, 1), max_value=datetime(2098, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=60, deadline=None)
@given(clocks, zones, week_starts)
def test_named_ranges_are_well_formed(now, tz, week_start):
    local = local_now(now, tz)
    for name in NAMED_RANGES[:12]:
        w = window(now=now, tz=tz, week_start=week_start, during=named(name))
        assert w.start < w.end
        if name.startswith(("this_", "today")) and name != "this_weekend":
            assert w.start <= local < w.end and w.end == local + US
        if name.startswith(("last_", "yesterday")):
            assert w.end <= local


units = st.sampled_from(["s", "min", "h", "d", "w", "m", "q", "y"])


@settings(max_examples=80, deadline=None)
@given(
    clocks,
    zones,
    st.integers(min_value=-40, max_value=0),
    units,
    st.integers(min_value=-40, max_value=0),
    units,
)
def test_since_until_either_resolves_or_raises_a_query_error(now, tz, a, unit_a, b, unit_b):
    q = query(since=ast.DateOffset(a, unit_a), until=ast.DateOffset(b, unit_b))
    try:
        w = resolve_reporting_window(q, now=now, timezone=tz)
    except CommerceQLSemanticError as err:
        assert err.message.startswith("UNTIL")
    else:
        assert w.start < w.end


@settings(max_examples=60, deadline=None)
@given(clocks, zones, st.sampled_from(RELATIVE_COMPARISONS), st.sampled_from(NAMED_RANGES[:12]))
# Found by this property: both ends of Dec 30–31 clamp to Sep 30 three months back.
@example(datetime(2001, 12, 31, tzinfo=UTC), "UTC", "previous_quarter", "yesterday")
def test_relative_comparisons_keep_order_and_weekday(now, tz, operator, base_name):
    base = window(now=now, tz=tz, during=named(base_name))
    result = compare(op(operator), base, now=now, tz=tz)
    assert result.window.start < result.window.end
    assert result.window.start < base.start
    assert result.shift is not None and result.shift.apply(base.start) == result.window.start
    if operator == "previous_year_match_day_of_week":
        assert result.window.start.weekday() == base.start.weekday()
