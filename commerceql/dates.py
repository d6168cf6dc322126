"""Date clauses (SINCE, UNTIL, DURING, COMPARE TO, TIMESERIES defaults) as concrete local windows.

This module is pure: it never reads the system clock or the database. The caller passes `now`
(a timezone-aware datetime from an injectable clock) and the IANA `timezone` of the store (or of
`WITH TIMEZONE`), and gets back *naive local wall-clock* datetimes forming half-open windows
``[start, end)``. The compiler compares them with ``timezone(<tz>, happened_at)`` in DuckDB.

Conventions (see docs/dates.md for the full story and examples):

* All calendar arithmetic (days and longer) is done on the local wall clock; offsets in seconds,
  minutes and hours (`-2h`) are elapsed time, converted back to the local wall clock.
* Weeks start on Monday (`week_start=0`, Python's ``weekday()`` numbering; pass 6 for Sunday).
* SINCE is an inclusive start and UNTIL an inclusive end, so an UNTIL of `-1d` (yesterday) ends at
  today's midnight (exclusive). A period that ends "now" uses ``end = now + 1 microsecond`` so the
  current instant is included.
* Every date expression denotes a span; SINCE takes the span's start and UNTIL its end:
  `-3m` is the whole month three months ago, `2025-01-31` the whole day, a named range its window,
  `now` the current instant, and `startOfX(...)` / `endOfX(...)` the boundary instant at the start or
  end of that unit (so `UNTIL endOfMonth(-1m)` stops exactly at the end of last month).
"""

from __future__ import annotations

import math
import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from commerceql import ast
from commerceql.errors import CommerceQLNameError, CommerceQLSemanticError, did_you_mean

__all__ = [
    "CYCLICAL_DIMENSIONS",
    "DATE_FUNCTIONS",
    "DEFAULT_TIMESERIES_RANGES",
    "NAMED_DATES",
    "NAMED_RANGES",
    "OFFSET_UNITS",
    "RELATIVE_COMPARISONS",
    "TIME_GRAINS",
    "Comparison",
    "DateWindow",
    "Shift",
    "add_grain",
    "bfcm_window",
    "comparison_suffix",
    "default_window_for_timeseries",
    "format_date_expression",
    "format_window",
    "local_now",
    "resolve_comparison",
    "resolve_date_expression",
    "resolve_reporting_window",
    "truncate",
    "validate_timezone",
]

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

TIME_GRAINS: tuple[str, ...] = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
CYCLICAL_DIMENSIONS: tuple[str, ...] = ("hour_of_day", "day_of_week", "week_of_year", "month_of_year")

#: Offset unit letter -> grain. `m` is months; minutes are `min`.
OFFSET_UNITS: dict[str, str] = {
    "s": "second",
    "min": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "m": "month",
    "q": "quarter",
    "y": "year",
}
_UNIT_OF_GRAIN = {grain: unit for unit, grain in OFFSET_UNITS.items()}

BFCM_FIRST_YEAR = 2000
BFCM_LAST_YEAR = 2100

_FIXED_RANGES: tuple[str, ...] = (
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
)
#: Every name accepted by DURING (and as a named range in SINCE/UNTIL/COMPARE TO).
NAMED_RANGES: tuple[str, ...] = _FIXED_RANGES + tuple(
    f"bfcm{year}" for year in range(BFCM_FIRST_YEAR, BFCM_LAST_YEAR + 1)
)
#: Every name accepted by SINCE / UNTIL: the ranges plus the instant `now`.
NAMED_DATES: tuple[str, ...] = ("now",) + NAMED_RANGES

#: Relative COMPARE TO operators and the shift each one applies (None = computed from the base).
RELATIVE_COMPARISONS: tuple[str, ...] = (
    "previous_period",
    "previous_year",
    "previous_year_match_day_of_week",
    "previous_quarter",
    "previous_month",
    "previous_week",
    "previous_day",
    "previous_hour",
    "previous_minute",
    "previous_second",
)

_FUNCTION_GRAINS: tuple[str, ...] = ("minute", "hour", "day", "week", "month", "quarter", "year")
#: Date functions, in their camelCase spelling.
DATE_FUNCTIONS: tuple[str, ...] = tuple(
    f"{prefix}{grain.capitalize()}" for prefix in ("startOf", "endOf") for grain in _FUNCTION_GRAINS
)
_FUNCTIONS_BY_LOWER = {name.lower(): name for name in DATE_FUNCTIONS}

#: The reporting period used when a query has TIMESERIES but no SINCE/UNTIL/DURING:
#: (unit, n) means "the unit containing the anchor plus the n units before it", i.e. `SINCE -{n}{unit}`.
DEFAULT_TIMESERIES_RANGES: dict[str, tuple[str, int]] = {
    "second": ("second", 60),
    "minute": ("minute", 60),
    "hour": ("hour", 24),
    "day": ("day", 30),
    "week": ("week", 4),
    "month": ("month", 3),
    "quarter": ("quarter", 4),
    "year": ("year", 4),
    "hour_of_day": ("day", 30),
    "day_of_week": ("day", 30),
    "week_of_year": ("month", 11),
    "month_of_year": ("month", 11),
}

_MICROSECOND = timedelta(microseconds=1)
_SUBDAY_GRAINS = ("second", "minute", "hour")
_FIXED_LENGTH = {
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
_MONTHS_IN = {"month": 1, "quarter": 3, "year": 12}
_MONTH_ABBREVIATIONS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_BFCM_PATTERN = re.compile(r"^bfcm(\d+)$")
_PRESET_PATTERN = re.compile(r"^(?:last|past)_(\d+)_(second|minute|hour|day|week|month|quarter|year)s?$")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateWindow:
    """A half-open window of naive local wall-clock datetimes; None means unbounded on that side."""

    start: datetime | None
    end: datetime | None

    @property
    def is_bounded(self) -> bool:
        return self.start is not None and self.end is not None

    @property
    def duration(self) -> timedelta | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start

    def __contains__(self, ts: datetime) -> bool:
        return (self.start is None or ts >= self.start) and (self.end is None or ts < self.end)


@dataclass(frozen=True)
class Shift:
    """How base times map to comparison times: add `months` calendar months (day clamped to the end
    of the month, so Feb 29 -> Feb 28), then add `delta`."""

    months: int = 0
    delta: timedelta = timedelta(0)

    def apply(self, ts: datetime) -> datetime:
        return _add_months(ts, self.months) + self.delta

    def describe(self) -> str:
        """Human text such as "-1 year", "-3 months", "-364 days", "-6 hours" or "0"."""
        parts: list[str] = []
        if self.months:
            if self.months % 12 == 0:
                parts.append(_plural(self.months // 12, "year"))
            else:
                parts.append(_plural(self.months, "month"))
        if self.delta:
            micros = self.delta // _MICROSECOND
            for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
                if micros % (size * 1_000_000) == 0:
                    parts.append(_plural(micros // (size * 1_000_000), unit))
                    break
            else:
                sign = "-" if self.delta < timedelta(0) else "+"
                parts.append(f"{sign}{abs(self.delta)}")
        return " ".join(parts) if parts else "0"


@dataclass(frozen=True)
class Comparison:
    """One resolved COMPARE TO target."""

    window: DateWindow
    suffix: str  # used in generated column names: comparison_<metric>__<suffix>
    label: str  # legend text: "Previous year (Dec 1 – Dec 15, 2024)"
    shift: Shift | None  # base -> comparison mapping when the comparison is a pure shift


def _plural(n: int, unit: str) -> str:
    return f"{n:+d} {unit}{'' if abs(n) == 1 else 's'}"


# ---------------------------------------------------------------------------------------------
# Calendar helpers (naive datetimes)
# ---------------------------------------------------------------------------------------------


def _check_week_start(week_start: int) -> int:
    if not isinstance(week_start, int) or isinstance(week_start, bool) or not 0 <= week_start <= 6:
        raise ValueError(f"week_start must be 0 (Monday) to 6 (Sunday), got {week_start!r}")
    return week_start


def _add_months(ts: datetime, months: int) -> datetime:
    if not months:
        return ts
    index = ts.year * 12 + (ts.month - 1) + months
    year, month0 = divmod(index, 12)
    month = month0 + 1
    if not 1 <= year <= 9999:
        raise OverflowError("date out of range")
    day = min(ts.day, monthrange(year, month)[1])
    return ts.replace(year=year, month=month, day=day)


def truncate(ts: datetime, grain: str, week_start: int = 0) -> datetime:
    """The start of the `grain` unit containing `ts` (weeks start on `week_start`, 0 = Monday)."""
    if grain == "second":
        return ts.replace(microsecond=0)
    if grain == "minute":
        return ts.replace(second=0, microsecond=0)
    if grain == "hour":
        return ts.replace(minute=0, second=0, microsecond=0)
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if grain == "day":
        return day
    if grain == "week":
        return day - timedelta(days=(ts.weekday() - _check_week_start(week_start)) % 7)
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return day.replace(month=3 * ((ts.month - 1) // 3) + 1, day=1)
    if grain == "year":
        return day.replace(month=1, day=1)
    raise ValueError(f"unknown time grain {grain!r}; expected one of {', '.join(TIME_GRAINS)}")


def add_grain(ts: datetime, grain: str, n: int) -> datetime:
    """`ts` moved by `n` units of `grain` on the wall clock (months clamp the day: Jan 31 + 1 month = Feb 28)."""
    if grain in _FIXED_LENGTH:
        return ts + _FIXED_LENGTH[grain] * n
    if grain in _MONTHS_IN:
        return _add_months(ts, _MONTHS_IN[grain] * n)
    raise ValueError(f"unknown time grain {grain!r}; expected one of {', '.join(TIME_GRAINS)}")


def _is_aligned(ts: datetime, grain: str, week_start: int = 0) -> bool:
    return truncate(ts, grain, week_start) == ts


def _ceil(ts: datetime, grain: str, week_start: int = 0) -> datetime:
    start = truncate(ts, grain, week_start)
    return start if start == ts else add_grain(start, grain, 1)


def _months_between(start: datetime, end: datetime) -> int:
    return (end.year - start.year) * 12 + (end.month - start.month)


def bfcm_window(year: int) -> DateWindow:
    """Black Friday (the day after the 4th Thursday of November) 00:00 to the end of Cyber Monday."""
    weekday_nov_1 = date(year, 11, 1).weekday()
    first_thursday = 1 + (3 - weekday_nov_1) % 7
    black_friday = datetime(year, 11, first_thursday + 21 + 1)
    return DateWindow(black_friday, black_friday + timedelta(days=4))


# ---------------------------------------------------------------------------------------------
# Time zones and the clock
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _timezone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def validate_timezone(name: str, span: ast.Span | None = None) -> str:
    """Return `name` if it is an IANA time zone, else raise a CommerceQLNameError with a suggestion."""
    if isinstance(name, str) and name:
        if name in _timezone_names():
            return name
        if "/" not in name or not any(part in ("", ".", "..") for part in name.split("/")):
            try:
                ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                pass
            else:
                return name
    text = name if isinstance(name, str) else repr(name)
    raise CommerceQLNameError(f"unknown time zone `{text}`", span=span, hint=_timezone_hint(text))


def _timezone_hint(name: str) -> str:
    names = _timezone_names()
    wanted = name.strip().replace(" ", "_").lower()
    exact = sorted(n for n in names if n.lower() == wanted)
    if not exact:
        exact = sorted(n for n in names if "/" in n and n.rsplit("/", 1)[1].lower() == wanted)
    if exact:
        return did_you_mean(exact[0], exact[:3]) or ""
    return did_you_mean(name, names) or "use an IANA time zone name such as `America/New_York` or `UTC`"


def local_now(now: datetime, timezone: str) -> datetime:
    """The naive local wall-clock time of the aware instant `now` in `timezone`."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.astimezone(ZoneInfo(validate_timezone(timezone))).replace(tzinfo=None, fold=0)


def relative_date_value(expr: ast.DateExpression, *, now: datetime, timezone: str) -> date:
    """The calendar date a relative date *value* denotes in a condition (`last_order_date < -90d`).

    An offset moves today (on the store's clock) by whole units, without truncating to the unit:
    `-90d` is the date 90 days ago, `-3m` the same day three months ago (clamped to the month's
    end), `-1y` this date last year, `-2w` 14 days ago. A date function gives the date of its
    boundary: `startOfMonth(-1m)` is the first day of last month. (SINCE and UNTIL, by contrast,
    take whole units: `SINCE -3m` starts on the first of that month.)
    """
    today = local_now(now, timezone)
    if isinstance(expr, ast.DateOffset):
        unit = OFFSET_UNITS[expr.unit]
        if unit in _MONTHS_IN:
            return _add_months(today, expr.amount * _MONTHS_IN[unit]).date()
        return (today + _FIXED_LENGTH[unit] * expr.amount).date()
    window = resolve_date_expression(expr, now=now, timezone=timezone)
    assert window.start is not None
    return window.start.date()


class _Clock:
    """`now` seen from one time zone, plus the week convention."""

    def __init__(
        self, now: datetime, timezone: str, week_start: int, tz_span: ast.Span | None = None
    ) -> None:
        if now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        self.zone = ZoneInfo(validate_timezone(timezone, tz_span))
        self.aware = now
        self.week_start = _check_week_start(week_start)
        self.now = now.astimezone(self.zone).replace(tzinfo=None, fold=0)
        # a period that ends "now" includes the current instant
        self.now_end = self.now + _MICROSECOND

    def shifted(self, amount: int, grain: str) -> datetime:
        """Local time `amount` grains from now: elapsed time for s/min/h, wall clock for longer grains."""
        if grain in _SUBDAY_GRAINS:
            instant = self.aware.astimezone(UTC) + _FIXED_LENGTH[grain] * amount
            return instant.astimezone(self.zone).replace(tzinfo=None, fold=0)
        return add_grain(self.now, grain, amount)

    def unit(self, amount: int, grain: str) -> DateWindow:
        """The whole `grain` unit `amount` units from now (`-3m` = the month three months ago)."""
        start = truncate(self.shifted(amount, grain), grain, self.week_start)
        return DateWindow(start, add_grain(start, grain, 1))

    def to_local(self, value: datetime) -> datetime:
        if value.tzinfo is not None and value.utcoffset() is not None:
            return value.astimezone(self.zone).replace(tzinfo=None, fold=0)
        return value.replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# Date expressions
# ---------------------------------------------------------------------------------------------


def format_date_expression(expr: ast.DateExpression) -> str:
    """Canonical text of a date expression: `-30d`, `2025-01-31`, `last_month`, `startOfMonth(-1m)`."""
    if isinstance(expr, ast.DateOffset):
        return f"{expr.amount}{expr.unit}"
    if isinstance(expr, ast.AbsoluteDate):
        if isinstance(expr.value, datetime):
            return expr.value.replace(tzinfo=None).isoformat(timespec="seconds")
        return expr.value.isoformat()
    if isinstance(expr, ast.NamedDate):
        return expr.name
    if isinstance(expr, ast.DateFunction):
        argument = format_date_expression(expr.argument) if expr.argument is not None else ""
        return f"{expr.name}({argument})"
    raise TypeError(f"not a date expression: {expr!r}")


def _grain_of_unit(offset: ast.DateOffset) -> str:
    grain = OFFSET_UNITS.get(offset.unit)
    if grain is None:
        raise CommerceQLSemanticError(
            f"unknown date unit `{offset.unit}` in `{offset.amount}{offset.unit}`",
            span=offset.span,
            hint="units are s, min, h, d, w, m (months), q and y, for example `-30d` or `-3m`",
        )
    return grain


def _canonical_function(node: ast.DateFunction) -> tuple[str, str, str]:
    """(canonical name, "start"/"end", grain) of a date function, or a name error."""
    canonical = _FUNCTIONS_BY_LOWER.get(node.name.lower())
    if canonical is None:
        hint = did_you_mean(node.name, DATE_FUNCTIONS)
        if hint is None:
            hint = "date functions are startOfX() and endOfX() for X in Minute, Hour, Day, Week, Month, Quarter, Year"
        raise CommerceQLNameError(f"unknown date function `{node.name}`", span=node.span, hint=hint)
    if canonical.startswith("startOf"):
        return canonical, "start", canonical[len("startOf") :].lower()
    return canonical, "end", canonical[len("endOf") :].lower()


def _named_window(name: str, clock: _Clock, span: ast.Span | None, *, allow_now: bool) -> DateWindow:
    key = name.lower()
    now = clock.now
    today = truncate(now, "day")
    if key == "now":
        if not allow_now:  # pragma: no cover - callers check first for a better message
            raise CommerceQLSemanticError("`now` is an instant, not a date range", span=span)
        return DateWindow(now, clock.now_end)
    if key == "today":
        return DateWindow(today, clock.now_end)
    if key == "yesterday":
        return DateWindow(today - timedelta(days=1), today)
    if key.startswith("this_") and key[5:] in ("week", "month", "quarter", "year"):
        return DateWindow(truncate(now, key[5:], clock.week_start), clock.now_end)
    if key.startswith("last_") and key[5:] in ("week", "month", "quarter", "year"):
        grain = key[5:]
        current = truncate(now, grain, clock.week_start)
        return DateWindow(add_grain(current, grain, -1), current)
    if key in ("this_weekend", "last_weekend"):
        weekday = now.weekday()
        if weekday >= 5:  # inside a weekend: it is "this" weekend
            saturday = today - timedelta(days=weekday - 5)
        else:  # a weekday: this weekend is the coming one
            saturday = today + timedelta(days=5 - weekday)
        if key == "last_weekend":
            saturday -= timedelta(days=7)
            return DateWindow(saturday, saturday + timedelta(days=2))
        end = saturday + timedelta(days=2)
        return DateWindow(saturday, clock.now_end if saturday <= now < end else end)
    match = _BFCM_PATTERN.match(key)
    if match:
        year = int(match.group(1))
        if len(match.group(1)) == 4 and BFCM_FIRST_YEAR <= year <= BFCM_LAST_YEAR:
            return bfcm_window(year)
        raise CommerceQLNameError(
            f"unknown date range `{name}`",
            span=span,
            hint=f"bfcm ranges exist for the years {BFCM_FIRST_YEAR} to {BFCM_LAST_YEAR}, for example `bfcm2024`",
        )
    raise CommerceQLNameError(
        f"unknown date range `{name}`", span=span, hint=_unknown_range_hint(name, allow_now=allow_now)
    )


def _unknown_range_hint(name: str, *, allow_now: bool) -> str | None:
    preset = _PRESET_PATTERN.match(name.lower())
    if preset:
        n, grain = int(preset.group(1)), preset.group(2)
        unit = _UNIT_OF_GRAIN[grain]
        return (
            f"`{name}` is not a named range; write `SINCE -{n}{unit}` (which includes the current {grain}) "
            f"or `SINCE -{n}{unit} UNTIL -1{unit}` for the {n} whole {grain}s before it"
        )
    return did_you_mean(name, NAMED_DATES if allow_now else NAMED_RANGES)


def _resolve(expr: ast.DateExpression, clock: _Clock) -> DateWindow:
    """The span a date expression denotes; SINCE uses its start and UNTIL its (exclusive) end."""
    try:
        return _resolve_unchecked(expr, clock)
    except (OverflowError, ValueError) as exc:
        raise CommerceQLSemanticError(
            f"date `{format_date_expression(expr)}` is out of range",
            span=getattr(expr, "span", None),
            hint="dates must fall between the years 1 and 9999",
        ) from exc


def _resolve_unchecked(expr: ast.DateExpression, clock: _Clock) -> DateWindow:
    if isinstance(expr, ast.DateOffset):
        return clock.unit(expr.amount, _grain_of_unit(expr))
    if isinstance(expr, ast.AbsoluteDate):
        value = expr.value
        if isinstance(value, datetime):
            start = clock.to_local(value)
            # a literal names a whole second; an inclusive UNTIL covers all of it
            return DateWindow(start, start + (_MICROSECOND if start.microsecond else timedelta(seconds=1)))
        start = datetime(value.year, value.month, value.day)
        return DateWindow(start, start + timedelta(days=1))
    if isinstance(expr, ast.NamedDate):
        return _named_window(expr.name, clock, expr.span, allow_now=True)
    if isinstance(expr, ast.DateFunction):
        canonical, edge, grain = _canonical_function(expr)
        amount = 0
        if expr.argument is not None:
            argument_grain = _grain_of_unit(expr.argument)
            if argument_grain != grain:
                unit = _UNIT_OF_GRAIN[grain]
                raise CommerceQLSemanticError(
                    f"`{canonical}` takes an offset in {grain}s, not `{format_date_expression(expr.argument)}`",
                    span=expr.argument.span or expr.span,
                    hint=f"write the offset in `{unit}` ({grain}s), for example `{canonical}(-1{unit})`",
                )
            amount = expr.argument.amount
        unit_window = clock.unit(amount, grain)
        boundary = unit_window.start if edge == "start" else unit_window.end
        return DateWindow(boundary, boundary)
    raise TypeError(f"not a date expression: {expr!r}")


def resolve_date_expression(
    expr: ast.DateExpression, *, now: datetime, timezone: str, week_start: int = 0
) -> DateWindow:
    """The span a date expression denotes (SINCE takes `.start`, UNTIL takes `.end`).

    `-3m` is the whole month three months ago, `2025-01-31` the whole day, a named range its
    window, `now` the instant ``[now, now + 1µs)``, and date functions the empty window at their
    boundary instant.
    """
    return _resolve(expr, _Clock(now, timezone, week_start))


# ---------------------------------------------------------------------------------------------
# Reporting period
# ---------------------------------------------------------------------------------------------


def _check_grain(grain: str, span: ast.Span | None = None) -> str:
    if grain in DEFAULT_TIMESERIES_RANGES:
        return grain
    raise CommerceQLNameError(
        f"unknown time dimension `{grain}` for TIMESERIES",
        span=span,
        hint=did_you_mean(grain, TIME_GRAINS + CYCLICAL_DIMENSIONS)
        or f"use one of {', '.join(TIME_GRAINS + CYCLICAL_DIMENSIONS)}",
    )


def _default_window(grain: str, clock: _Clock, anchor_end: datetime | None = None) -> DateWindow:
    unit, n = DEFAULT_TIMESERIES_RANGES[grain]
    if anchor_end is None:  # ends now: exactly `SINCE -{n}{unit}`
        return DateWindow(clock.unit(-n, unit).start, clock.now_end)
    last_instant = anchor_end - _MICROSECOND
    start = add_grain(truncate(last_instant, unit, clock.week_start), unit, -n)
    return DateWindow(start, anchor_end)


def default_window_for_timeseries(
    grain: str, *, now: datetime, timezone: str, week_start: int = 0
) -> DateWindow:
    """The reporting period of a TIMESERIES query without SINCE/UNTIL/DURING (see DEFAULT_TIMESERIES_RANGES)."""
    return _default_window(_check_grain(grain), _Clock(now, timezone, week_start))


def _timezone_span(query: ast.Query, timezone: str) -> ast.Span | None:
    for modifier in query.with_modifiers:
        if modifier.name.upper() == "TIMEZONE" and modifier.argument == timezone:
            return modifier.span
    return None


def resolve_reporting_window(
    query: ast.Query, *, now: datetime, timezone: str, week_start: int = 0
) -> DateWindow:
    """The reporting period of `query` as a local half-open window (unbounded when it has none)."""
    clock = _Clock(now, timezone, week_start, _timezone_span(query, timezone))

    if query.during is not None:
        during = query.during
        if query.since is not None or query.until is not None:
            other = query.since if query.since is not None else query.until
            raise CommerceQLSemanticError(
                "DURING can't be combined with SINCE or UNTIL",
                span=getattr(other, "span", None) or during.span,
                hint=f"DURING `{during.name}` already sets the whole reporting period; keep either DURING or SINCE/UNTIL",
            )
        if during.name.lower() == "now":
            raise CommerceQLSemanticError(
                "DURING needs a date range, and `now` is a single instant",
                span=during.span,
                hint="use `DURING today`, or `SINCE -1h` for the last hour",
            )
        return _named_window(during.name, clock, during.span, allow_now=False)

    if query.since is None and query.until is None:
        if query.timeseries is None:
            return DateWindow(None, None)
        grain = _check_grain(query.timeseries.name, query.timeseries.span)
        return _default_window(grain, clock)

    end = _resolve(query.until, clock).end if query.until is not None else clock.now_end
    assert end is not None
    if query.since is None:
        assert query.until is not None
        if query.timeseries is None:
            raise CommerceQLSemanticError(
                "UNTIL without SINCE needs TIMESERIES",
                span=query.until.span,
                hint="add a start such as `SINCE -30d`, or a `TIMESERIES day` clause to use its default start",
            )
        grain = _check_grain(query.timeseries.name, query.timeseries.span)
        return _default_window(grain, clock, anchor_end=end)

    start = _resolve(query.since, clock).start
    assert start is not None
    if end <= start:
        since_text = format_date_expression(query.since)
        if query.until is None:
            raise CommerceQLSemanticError(
                f"SINCE `{since_text}` starts in the future ({_format_instant(start)}), after now",
                span=query.since.span,
                hint="pick a start before now, or add an UNTIL after it",
            )
        until_text = format_date_expression(query.until)
        raise CommerceQLSemanticError(
            f"UNTIL `{until_text}` is before SINCE `{since_text}`",
            span=query.until.span,
            hint=f"the period would start {_format_instant(start)} and end {_format_instant(end)}; "
            "swap SINCE and UNTIL, or move UNTIL later",
        )
    return DateWindow(start, end)


# ---------------------------------------------------------------------------------------------
# COMPARE TO
# ---------------------------------------------------------------------------------------------

_RELATIVE_SHIFTS: dict[str, Shift] = {
    "previous_year": Shift(months=-12),
    "previous_year_match_day_of_week": Shift(delta=timedelta(days=-364)),
    "previous_quarter": Shift(months=-3),
    "previous_month": Shift(months=-1),
    "previous_week": Shift(delta=timedelta(weeks=-1)),
    "previous_day": Shift(delta=timedelta(days=-1)),
    "previous_hour": Shift(delta=timedelta(hours=-1)),
    "previous_minute": Shift(delta=timedelta(minutes=-1)),
    "previous_second": Shift(delta=timedelta(seconds=-1)),
}
RELATIVE_TITLES = {
    "previous_period": "Previous period",
    "previous_year": "Previous year",
    "previous_year_match_day_of_week": "Previous year, matching day of week",
    "previous_quarter": "Previous quarter",
    "previous_month": "Previous month",
    "previous_week": "Previous week",
    "previous_day": "Previous day",
    "previous_hour": "Previous hour",
    "previous_minute": "Previous minute",
    "previous_second": "Previous second",
}
_UNSUPPORTED_COMPARISONS = ("targets", "benchmarks")


def _is_named_range(name: str) -> bool:
    key = name.lower()
    return key in _FIXED_RANGES or bool(_BFCM_PATTERN.match(key))


def _previous_period_shift(base: DateWindow, grain: str | None, clock: _Clock) -> Shift:
    """The shift for `previous_period` (see docs/dates.md, "previous_period").

    * A closed window whose ends both fall on month starts moves back by its number of calendar
      months (last_month -> the month before; last_quarter -> the quarter before).
    * Any other closed window moves back by its exact length, so it ends where the base starts.
    * A window that runs up to now (this_month, SINCE -30d, ...) moves back by the number of whole
      units it touches, measured in the coarsest unit its start is aligned to (the TIMESERIES week
      when the grain is week; else month, day, hour, minute, second): month-to-date compares with
      the same days of the previous month, "today" with yesterday up to the same time.
    """
    start, end = base.start, base.end
    assert start is not None and end is not None
    week_start = clock.week_start
    if end != clock.now_end:
        if _is_aligned(start, "month") and _is_aligned(end, "month"):
            return Shift(months=-_months_between(start, end))
        return Shift(delta=-(end - start))
    if grain == "week" and _is_aligned(start, "week", week_start):
        weeks = math.ceil((end - start) / timedelta(weeks=1))
        return Shift(delta=timedelta(weeks=-weeks))
    if _is_aligned(start, "month"):
        return Shift(months=-_months_between(start, _ceil(end, "month")))
    for unit in ("day", "hour", "minute", "second"):
        if _is_aligned(start, unit):
            size = _FIXED_LENGTH[unit]
            return Shift(delta=-size * math.ceil((end - start) / size))
    return Shift(delta=-(end - start))


def _shift_between(base_start: datetime, new_start: datetime) -> Shift:
    """The shift that moves `base_start` to `new_start`, in calendar months when both start a month."""
    if _is_aligned(base_start, "month") and _is_aligned(new_start, "month"):
        return Shift(months=_months_between(base_start, new_start))
    return Shift(delta=new_start - base_start)


def comparison_suffix(expr: ast.DateExpression) -> str:
    """Column-name suffix of a COMPARE TO date expression (`20230101`, `startOfQuarter_sub_3q`, ...)."""
    if isinstance(expr, ast.DateOffset):
        if expr.amount < 0:
            return f"sub_{-expr.amount}{expr.unit}"
        if expr.amount > 0:
            return f"add_{expr.amount}{expr.unit}"
        return f"0{expr.unit}"
    if isinstance(expr, ast.AbsoluteDate):
        if isinstance(expr.value, datetime):
            return expr.value.strftime("%Y%m%dT%H%M%S")
        return expr.value.strftime("%Y%m%d")
    if isinstance(expr, ast.NamedDate):
        return expr.name.lower()
    if isinstance(expr, ast.DateFunction):
        name = _FUNCTIONS_BY_LOWER.get(expr.name.lower(), expr.name)
        if expr.argument is None:
            return name
        return f"{name}_{comparison_suffix(expr.argument)}"
    raise TypeError(f"not a date expression: {expr!r}")


def _range_title(name: str) -> str:
    key = name.lower()
    match = _BFCM_PATTERN.match(key)
    if match:
        return f"BFCM {match.group(1)}"
    return key.replace("_", " ").capitalize()


def resolve_comparison(
    target: ast.CompareTarget,
    base: DateWindow,
    *,
    grain: str | None,
    now: datetime,
    timezone: str,
    week_start: int = 0,
) -> Comparison:
    """Resolve one COMPARE TO target against the base reporting window.

    `grain` is the TIMESERIES grain, if any; with `week` a to-date `previous_period` moves back by
    whole weeks so that the comparison's weekly buckets line up with the base's.
    """
    clock = _Clock(now, timezone, week_start)
    operator = target.operator
    operator_span = target.span
    start_expr = target.start
    # A parser may hand a bare word over either as `operator` or as a NamedDate start: accept both.
    if operator is None and isinstance(start_expr, ast.NamedDate) and target.until is None:
        word = start_expr.name.lower()
        if word in RELATIVE_COMPARISONS or word in _UNSUPPORTED_COMPARISONS:
            operator, operator_span, start_expr = start_expr.name, start_expr.span or target.span, None

    relative: str | None = None
    if operator is not None:
        key = operator.lower()
        if key in _UNSUPPORTED_COMPARISONS:
            raise CommerceQLSemanticError(
                f"COMPARE TO {key} is not supported in CommerceQL (no targets/benchmarks data)",
                span=operator_span,
                hint="compare to another period instead, for example `COMPARE TO previous_year`",
            )
        if key in RELATIVE_COMPARISONS:
            if target.until is not None:
                raise CommerceQLSemanticError(
                    f"`{key}` already defines the whole comparison period, so it can't take UNTIL",
                    span=target.until.span or operator_span,
                    hint="write an explicit period instead, for example `COMPARE TO 2024-01-01 UNTIL 2024-01-31`",
                )
            relative = key
        elif _is_named_range(key) or key == "now":
            start_expr = ast.NamedDate(operator, span=operator_span)
        else:
            raise CommerceQLNameError(
                f"unknown comparison `{operator}`",
                span=operator_span,
                hint=did_you_mean(key, RELATIVE_COMPARISONS + NAMED_RANGES)
                or "use previous_period, previous_year, a named range such as last_week, or a date",
            )
    elif start_expr is None:
        raise CommerceQLSemanticError(
            "COMPARE TO needs a period to compare with",
            span=target.span,
            hint="for example `COMPARE TO previous_period` or `COMPARE TO 2024-01-01 UNTIL 2024-01-31`",
        )

    if base.start is None or base.end is None:
        raise CommerceQLSemanticError(
            "COMPARE TO needs a reporting period to compare against",
            span=target.span or operator_span,
            hint="add SINCE/UNTIL or DURING, for example `SINCE -30d` or `DURING last_month`",
        )
    base_start, base_end = base.start, base.end

    if relative is not None:
        shift = _RELATIVE_SHIFTS.get(relative) or _previous_period_shift(base, grain, clock)
        try:
            window = DateWindow(shift.apply(base_start), shift.apply(base_end))
            if window.end <= window.start:  # type: ignore[operator]
                # Both ends clamped to one month end (Dec 30–31 three months back): keep the
                # base's length from the shifted start, Sep 30 – Oct 1, rather than an empty window.
                window = DateWindow(window.start, window.start + (base_end - base_start))  # type: ignore[operator]
        except (OverflowError, ValueError) as exc:
            raise CommerceQLSemanticError(
                f"`{relative}` falls outside the supported date range",
                span=operator_span,
                hint="dates must fall between the years 1 and 9999",
            ) from exc
        label = f"{RELATIVE_TITLES[relative]} ({format_window(window)})"
        return Comparison(window=window, suffix=relative, label=label, shift=shift)

    assert start_expr is not None
    until_expr = target.until
    if until_expr is None and isinstance(start_expr, ast.NamedDate):
        name = start_expr.name
        if name.lower() == "now":
            raise CommerceQLSemanticError(
                "COMPARE TO needs a period, and `now` is a single instant",
                span=start_expr.span or target.span,
                hint="use a named range such as `last_week`, or `previous_period`",
            )
        window = _named_window(name, clock, start_expr.span, allow_now=False)
        label = f"{_range_title(name)} ({format_window(window)})"
        return Comparison(window=window, suffix=name.lower(), label=label, shift=None)

    start = _resolve(start_expr, clock).start
    assert start is not None
    if until_expr is not None:
        end = _resolve(until_expr, clock).end
        assert end is not None
        if end <= start:
            raise CommerceQLSemanticError(
                f"the comparison ends before it starts: UNTIL `{format_date_expression(until_expr)}` "
                f"is before `{format_date_expression(start_expr)}`",
                span=until_expr.span or target.span,
                hint=f"the comparison would start {_format_instant(start)} and end {_format_instant(end)}; "
                "swap the two dates, or move UNTIL later",
            )
        window = DateWindow(start, end)
        suffix = f"{comparison_suffix(start_expr)}_until_{comparison_suffix(until_expr)}"
        return Comparison(window=window, suffix=suffix, label=format_window(window), shift=None)

    # A start alone: a window shaped like the base, starting there.
    shift = _shift_between(base_start, start)
    try:
        window = DateWindow(start, shift.apply(base_end))
    except (OverflowError, ValueError) as exc:
        raise CommerceQLSemanticError(
            f"date `{format_date_expression(start_expr)}` is out of range",
            span=start_expr.span or target.span,
            hint="dates must fall between the years 1 and 9999",
        ) from exc
    return Comparison(
        window=window, suffix=comparison_suffix(start_expr), label=format_window(window), shift=shift
    )


# ---------------------------------------------------------------------------------------------
# Human text
# ---------------------------------------------------------------------------------------------


def _format_day(value: datetime, *, with_year: bool) -> str:
    text = f"{_MONTH_ABBREVIATIONS[value.month - 1]} {value.day}"
    return f"{text}, {value.year}" if with_year else text


def _format_clock(value: datetime) -> str:
    return value.strftime("%H:%M:%S" if value.second else "%H:%M")


def _format_instant(value: datetime) -> str:
    if value.hour == value.minute == value.second == value.microsecond == 0:
        return _format_day(value, with_year=True)
    return f"{_format_day(value, with_year=True)} {_format_clock(value)}"


def format_window(window: DateWindow) -> str:
    """Legend text for a window: "Dec 1 – Dec 15, 2025", "Dec 15, 2025", "Dec 15, 2025 09:00 – 14:00".

    Windows starting at midnight are shown as inclusive dates; others with times (end exclusive).
    """
    start, end = window.start, window.end
    if start is None and end is None:
        return "all time"
    if start is None:
        assert end is not None
        return f"until {_format_instant(end - _MICROSECOND)}"
    if end is None:
        return f"since {_format_instant(start)}"
    if start.time() == datetime.min.time():
        last = end - _MICROSECOND
        if last.date() == start.date():
            return _format_day(start, with_year=True)
        if last.year == start.year:
            return f"{_format_day(start, with_year=False)} – {_format_day(last, with_year=True)}"
        return f"{_format_day(start, with_year=True)} – {_format_day(last, with_year=True)}"
    shown_end = end.replace(microsecond=0)
    if shown_end.date() == start.date():
        return f"{_format_day(start, with_year=True)} {_format_clock(start)} – {_format_clock(shown_end)}"
    return f"{_format_instant(start)} – {_format_instant(shown_end)}"
