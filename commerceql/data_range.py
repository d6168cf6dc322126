"""A store's data range, and the notes that explain periods lying outside it (docs/troubleshooting.md).

An imported store is a snapshot: its events end on the day of the export, while `DURING
last_month` follows the store's clock (real time unless pinned). A query whose reporting period
lies after (or before) the data would answer $0.00 without a word; these notes say why.

Each model table's range is the first and last instant of its own time column (`sales.happened_at`,
`orders.created_at`, `customers.created_at`, `sessions.started_at`, ...), read with one
`SELECT min(col), max(col)` per table (on DuckDB over Parquet this reads only the row-group
statistics; on Spark it is one small query) and cached on the Store. Tables over a derived
relation (cohorts, churn) take the range of the orders they are computed from.

The rules (all in the query's time zone):

- wholly outside: the period ends at or before the first event, or starts after the last one.
  No row can match, so the answer is empty: "no data in this period: this store's sales data
  ends 2023-06-30; `last_month` is 2026-11-01 – 2026-11-30".
- partly outside: part of the period, *up to the store's clock*, lies on local days before the
  first event's day or after the last event's day: "this store's sales data ends 2023-06-30, so
  the period is partly empty". Days after the clock are the future, empty in every store, so
  `DURING this_month` on a live store (or on a store pinned to its last order) gets no note. A
  table of things created (products, customers) often has none for weeks while orders go on, so
  its soft note also needs the orders to be missing there (the orders' range widens its own).
  A query without a date range (all time) gets no soft note.
- a comparison period (COMPARE TO) wholly outside the data gets its own note; a partly covered
  one does not (a year-over-year comparison on a store with 13 months of data would otherwise
  always carry one).
- a table with no rows at all: "this store's checkouts table has no rows (no Abandoned checkouts
  export)", with the importer's reason from the manifest's `empty_tables` when it gave one.

`as_of_instant()` turns an `as_of` setting (`last-order`, a date, an ISO timestamp) into the
instant that pins a store's clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from commerceql.dates import DateWindow, format_date_expression
from commerceql.dialect import Dialect
from commerceql.errors import CommerceQLDataError
from commerceql.model.semantic import Table
from commerceql.plan import QueryPlan

# The as_of word that pins a store's clock to its last order.
LAST_ORDER = "last-order"
_MICROSECOND = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class DataRange:
    """The first and last instant (aware, UTC) of one table's time column; None for a table with no rows."""

    table: str  # the model table whose time column this spans (`orders` for derived tables)
    first: dt.datetime | None
    last: dt.datetime | None
    rows: int  # rows in the table (some may have no time: an imported customer with no created_at)

    @property
    def is_empty(self) -> bool:
        return self.first is None or self.last is None


def data_range_sql(table: Table, dialect: Dialect) -> str:
    """`SELECT min(time), max(time)` of one table's time column (the table must have one)."""
    assert table.time_column is not None
    q = dialect.quote_identifier
    column = q(table.time_column)
    return (f"SELECT min({column}) AS first_event, max({column}) AS last_event, count(*) AS row_count "
            f"FROM {q(table.relation)}")


def first_row(table: Any) -> dict[str, object]:
    """The first row of an engine's answer (a pyarrow Table) as a dict of Python values.

    Through Polars, not `Table.to_pylist()`: pyarrow turns a timezone-aware timestamp into a
    datetime by importing pandas (~0.3 s, and ~1 s of pyarrow.compute, on a store's first query).
    Raises IndexError when the answer has no rows.
    """
    import polars as pl

    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.height == 0:
        raise IndexError("the answer has no rows")
    frame = refuse_unreadable_times(frame.head(1))
    return frame.row(0, named=True)


def refuse_unreadable_times(frame: Any) -> Any:
    """`frame` (Polars), unless a date or time in it has no Python value: an infinite timestamp
    (DuckDB's 'infinity', in a store someone sent) or one so near year 1 or 9999 that a time zone
    takes it out of range. Polars panics converting those (for a table, a chart, a row), and a panic
    is no Exception: it would end the cell or the kernel. A CommerceQLDataError says what it is."""
    import polars as pl

    temporal = [name for name, dtype in frame.schema.items() if isinstance(dtype, (pl.Datetime, pl.Date))]
    if not temporal or not frame.height:
        return frame
    readable = frame.select(
        # Polars gives no year (null) for the ones it cannot place at all
        (pl.col(name).is_null() | pl.col(name).dt.year().fill_null(0).is_between(dt.MINYEAR + 1, dt.MAXYEAR - 1)).all()
        for name in temporal).row(0)
    for name, ok in zip(temporal, readable, strict=True):
        if not ok:
            raise CommerceQLDataError(
                f"the answer's `{name}` holds a time outside the years {dt.MINYEAR + 1}–{dt.MAXYEAR - 1}: "
                "the store holds an infinite or damaged timestamp")
    return frame


def as_utc(value: object) -> dt.datetime | None:
    """An engine's timestamp as an aware UTC datetime (Spark's are naive UTC readings)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    if isinstance(value, dt.date):  # a DATE time column: its midnight, read as UTC like the compiler does
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    raise CommerceQLDataError(f"a time column holds {type(value).__name__} values, not timestamps")


def _local(instant: dt.datetime, timezone: str) -> dt.datetime:
    return instant.astimezone(ZoneInfo(timezone)).replace(tzinfo=None, fold=0)


def _format_window(window: DateWindow) -> str:
    """ISO text of a half-open local window: `2026-11-01 – 2026-11-30` (inclusive days) or with times."""
    assert window.start is not None and window.end is not None
    midnight = dt.time(0)
    if window.start.time() == midnight and window.end.time() == midnight:
        last = (window.end - _MICROSECOND).date()
        if last == window.start.date():
            return window.start.date().isoformat()
        return f"{window.start.date().isoformat()} – {last.isoformat()}"
    return f"{window.start.isoformat(sep=' ', timespec='minutes')} – {window.end.isoformat(sep=' ', timespec='minutes')}"


def period_name(plan: QueryPlan) -> str:
    """How the query wrote its reporting period: `last_month`, `SINCE -30d UNTIL today`, ..."""
    query = plan.query
    if query.during is not None:
        return f"`{query.during.name}`"
    parts = []
    if query.since is not None:
        parts.append(f"SINCE {format_date_expression(query.since)}")
    if query.until is not None:
        parts.append(f"UNTIL {format_date_expression(query.until)}")
    if parts:
        return "`" + " ".join(parts) + "`"
    if query.timeseries is not None:
        return f"the default period of `TIMESERIES {query.timeseries.name}`"
    return "the period"


def _outside(window: DateWindow, first: dt.datetime, last: dt.datetime) -> str | None:
    """'after' / 'before' when the local window holds no instant of [first, last] (both local)."""
    if window.start is not None and window.start > last:
        return "after"
    if window.end is not None and window.end <= first:
        return "before"
    return None


def period_notices(
    plan: QueryPlan,
    range_of: Callable[[Table], DataRange | None],
    *,
    clock_pinned: bool,
    orders: DataRange | None = None,
    empty_reasons: Mapping[str, str] | None = None,
) -> list[str]:
    """Notes for the plan's tables whose data range the reporting (or a comparison) period misses.

    `orders` is the range of the store's orders: a partly covered period is noted only where
    the orders are missing too (see the module's rules).
    """
    notices: list[str] = []
    zone = plan.timezone
    now = _local(plan.as_of, zone) if plan.as_of is not None else None
    for table in plan.tables:
        if table.time_column is None:
            continue
        found = range_of(table)
        if found is None:
            continue  # the range could not be read: say nothing rather than guess
        if found.is_empty:
            if found.rows == 0:
                reason = (empty_reasons or {}).get(table.relation)
                notices.append(f"this store's {table.name} table has no rows" + (f" ({reason})" if reason else ""))
            elif plan.window.start is not None or plan.window.end is not None:
                notices.append(f"no {table.name} row of this store has a {table.time_column}, so no date range "
                               "matches any of them (the export did not include it)")
            continue
        assert found.first is not None and found.last is not None
        first, last = _local(found.first, zone), _local(found.last, zone)
        whose = f"this store's {found.table} data"
        window = plan.window
        side = _outside(window, first, last)
        if side is not None:
            edge = f"ends {last.date().isoformat()}" if side == "after" else f"starts {first.date().isoformat()}"
            text = f"no data in this period: {whose} {edge}"
            if window.is_bounded:
                text += f"; {period_name(plan)} is {_format_window(window)}"
            if side == "after" and not clock_pinned:
                text += (f" (the store's clock follows the real date; pin it to the data with "
                         f"as_of={LAST_ORDER}, see docs/troubleshooting.md)")
            notices.append(text)
        elif window.start is not None or window.end is not None:
            # A table whose rows are things created (products, customers) may have none for weeks
            # while orders go on: its data has not ended, nothing was created. So the soft note
            # needs the store's orders to end (or start) there too.
            extent_first, extent_last = first, last
            if orders is not None and not orders.is_empty:
                assert orders.first is not None and orders.last is not None
                extent_first = min(first, _local(orders.first, zone))
                extent_last = max(last, _local(orders.last, zone))
            if (extent_first.date(), extent_last.date()) != (first.date(), last.date()):
                whose = "this store's data"  # the orders' range decided it
            starts_late = window.start is not None and window.start.date() < extent_first.date()
            # Only up to the clock: later days are the future, empty in any store.
            end = window.end if now is None or (window.end is not None and window.end <= now) else now
            ends_early = end is not None and (end - _MICROSECOND).date() > extent_last.date()
            if starts_late and ends_early:
                notices.append(f"{whose} covers {extent_first.date().isoformat()} – {extent_last.date().isoformat()}, "
                               "so the period is partly empty")
            elif starts_late:
                notices.append(f"{whose} starts {extent_first.date().isoformat()}, so the period is partly empty")
            elif ends_early:
                notices.append(f"{whose} ends {extent_last.date().isoformat()}, so the period is partly empty")
            whose = f"this store's {found.table} data"
        for comparison in plan.comparisons:
            side = _outside(comparison.window, first, last)
            if side is None or not comparison.window.is_bounded:
                continue
            edge = f"ends {last.date().isoformat()}" if side == "after" else f"starts {first.date().isoformat()}"
            notices.append(f"no data in the comparison period ({comparison.label}, "
                           f"{_format_window(comparison.window)}): {whose} {edge}")
    return notices


def as_of_instant(value: object, timezone: str, last_order: Callable[[], dt.datetime | None]) -> dt.datetime:
    """The instant an `as_of` setting pins the clock to (aware).

    `last-order`: the last order's time. A date (`2023-06-30`): the end of that day in the store's
    time zone (23:59:59), so the whole day is "today". An ISO timestamp: that instant (without a
    UTC offset it is read in the store's time zone). A timezone-aware datetime is taken as is.
    """
    zone = ZoneInfo(timezone)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=zone)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, 23, 59, 59, tzinfo=zone)
    if not isinstance(value, str) or not value.strip():
        raise CommerceQLDataError(f"as_of must be '{LAST_ORDER}', a date or an ISO timestamp, not {value!r}",
                                  hint=f"for example {LAST_ORDER} or 2023-06-30")
    text = value.strip()
    if text.lower() in (LAST_ORDER, "last_order"):
        instant = last_order()
        if instant is None:
            raise CommerceQLDataError(f"as_of {LAST_ORDER} needs orders, and this store has none",
                                      hint="give the date the export was taken instead, e.g. 2023-06-30")
        return instant
    try:
        if len(text) == 10:
            return as_of_instant(dt.date.fromisoformat(text), timezone, last_order)
        return as_of_instant(dt.datetime.fromisoformat(text), timezone, last_order)
    except ValueError:
        raise CommerceQLDataError(
            f"as_of {value!r} is not '{LAST_ORDER}', a date (YYYY-MM-DD) or an ISO timestamp",
            hint=f"for example {LAST_ORDER}, 2023-06-30 or 2023-06-30T18:00:00-04:00",
        ) from None
