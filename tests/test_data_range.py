"""A store's data range, the notes for periods outside it, and pinning a frozen export's clock.

Expected dates and sums are computed here from the raw rows (Polars over the store's Parquet
files or over the real export's CSV), never from the compiler. The real exports are read in place
from ../shared/realdata/shopify; without them those tests skip, except under CI=true.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.errors import CommerceQLDataError
from commerceql.importers.cli import main as import_main

SHOPIFY = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "shopify"
needs_realdata = pytest.mark.skipif(
    not SHOPIFY.is_dir() and os.environ.get("CI") != "true",
    reason=f"real Shopify exports not found at {SHOPIFY} (they are required when CI=true)",
)
# A small real export (60 orders, Aug - Dec 2025, GBP, no taxes): its last full month has orders.
FOLDER = "maison_maria"


# ---------------------------------------------------------------------------------------------
# helpers: raw rows and calendar arithmetic, written independently of commerceql.dates


def local_date(instant: dt.datetime, zone: str) -> dt.date:
    return instant.astimezone(ZoneInfo(zone)).date()


def raw_range(path: Path, table: str, column: str) -> tuple[dt.datetime, dt.datetime]:
    """First and last instant of a raw table's time column (aware UTC)."""
    frame = raw(path, table).select(pl.col(column).dt.convert_time_zone("UTC"))
    first, last = frame[column].min(), frame[column].max()
    assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime)
    return first.replace(tzinfo=dt.UTC), last.replace(tzinfo=dt.UTC)


def previous_month(day: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of the month before `day`'s month."""
    last = day.replace(day=1) - dt.timedelta(days=1)
    return last.replace(day=1), last


def data_notices(notices: tuple[str, ...]) -> list[str]:
    return [n for n in notices if "this store's" in n]


@pytest.fixture
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def sales_range(sample_store_path) -> tuple[dt.datetime, dt.datetime]:
    return raw_range(sample_store_path, "sales", "happened_at")


# ---------------------------------------------------------------------------------------------
# the sample store with an injected clock


def test_a_period_after_the_data_is_named_with_the_data_end_and_the_period(store, sales_range):
    _, last = sales_range
    clock = last + dt.timedelta(days=400)
    store.set_clock(clock)
    result = store.query("FROM sales SHOW net_sales DURING last_month")
    assert result.df["net_sales"].cast(pl.Float64).fill_null(0).sum() == 0
    start, end = previous_month(local_date(clock, store.timezone))
    ends = local_date(last, store.timezone).isoformat()
    assert data_notices(result.notices) == [
        f"no data in this period: this store's sales data ends {ends}; "
        f"`last_month` is {start.isoformat()} – {end.isoformat()}"
    ]


def test_a_period_inside_the_data_has_no_note(store, sales_range):
    first, last = sales_range
    store.set_clock(first + (last - first) / 2)
    for query in ("FROM sales SHOW net_sales DURING last_month",
                  "FROM sales SHOW net_sales, orders TIMESERIES week DURING last_quarter",
                  "FROM orders SHOW orders DURING this_month",  # the rest of the month is the future
                  "FROM sales SHOW net_sales GROUP BY sales_channel"):  # all time
        result = store.query(query)
        assert data_notices(result.notices) == [], query


def test_the_stores_own_clock_needs_no_note_for_this_month(store):
    # The sample store's clock is its fixed as_of, when its data ends: this month is partly the future.
    result = store.query("FROM sales SHOW net_sales DURING this_month")
    assert data_notices(result.notices) == []


def test_a_period_partly_after_the_data_gets_the_softer_note(store, sales_range):
    _, last = sales_range
    store.set_clock(last + dt.timedelta(days=10))
    result = store.query("FROM sales SHOW net_sales SINCE -30d UNTIL today")
    ends = local_date(last, store.timezone).isoformat()
    assert data_notices(result.notices) == [f"this store's sales data ends {ends}, so the period is partly empty"]
    # The part inside the data is answered: the sum of the raw rows from 30 days before the clock on.
    zone = ZoneInfo(store.timezone)
    today = local_date(last + dt.timedelta(days=10), store.timezone)
    since = dt.datetime.combine(today - dt.timedelta(days=30), dt.time(0), zone).astimezone(dt.UTC)
    frame = raw(store.path, "sales")
    expected = frame.filter(pl.col("happened_at") >= since)["net_sales"].sum()
    assert Decimal(str(result.df["net_sales"][0])) == Decimal(str(expected)).quantize(Decimal("0.01"))
    assert expected != 0


def test_a_period_partly_before_the_data_names_where_it_starts(store, sales_range):
    first, _ = sales_range
    starts = local_date(first, store.timezone)
    query = f"FROM sales SHOW net_sales SINCE {(starts - dt.timedelta(days=40)).isoformat()} " \
            f"UNTIL {(starts + dt.timedelta(days=20)).isoformat()}"
    result = store.query(query)
    assert data_notices(result.notices) == [
        f"this store's sales data starts {starts.isoformat()}, so the period is partly empty"
    ]


def test_a_period_before_the_data_is_wholly_outside(store, sales_range):
    first, _ = sales_range
    starts = local_date(first, store.timezone)
    result = store.query("FROM sales SHOW net_sales SINCE 2015-01-01 UNTIL 2015-01-31")
    assert data_notices(result.notices) == [
        f"no data in this period: this store's sales data starts {starts.isoformat()}; "
        "`SINCE 2015-01-01 UNTIL 2015-01-31` is 2015-01-01 – 2015-01-31"
    ]


def test_a_comparison_period_before_the_data_gets_its_own_note(store, sales_range):
    first, _ = sales_range
    starts = local_date(first, store.timezone)
    # Last year is the data's first calendar year; the year before it has no data.
    store.set_clock(dt.datetime(starts.year + 1, 6, 15, 12, tzinfo=ZoneInfo(store.timezone)))
    result = store.query("FROM sales SHOW net_sales DURING last_year COMPARE TO previous_year")
    before = starts.year - 1
    notes = data_notices(result.notices)
    assert len(notes) == 1
    assert notes[0].startswith("no data in the comparison period (")
    assert notes[0].endswith(f"{before}-01-01 – {before}-12-31): this store's sales data starts {starts.isoformat()}")


def test_each_table_is_judged_by_its_own_time_column(store):
    sessions_first, sessions_last = raw_range(store.path, "sessions", "started_at")
    store.set_clock(sessions_last + dt.timedelta(days=100))
    result = store.query("FROM sessions SHOW sessions DURING last_month")
    ends = local_date(sessions_last, store.timezone).isoformat()
    notes = data_notices(result.notices)
    assert len(notes) == 1 and notes[0].startswith(f"no data in this period: this store's sessions data ends {ends};")
    found = store.data_range("sessions")
    assert found is not None and (found.first, found.last) == (sessions_first, sessions_last)
    customers = store.data_range("customers")
    assert customers is not None
    assert (customers.first, customers.last) == raw_range(store.path, "customers", "created_at")
    # Cohorts are computed from orders: they take the orders' range.
    cohorts = store.data_range("customer_cohorts_monthly")
    assert cohorts is not None and cohorts.table == "orders"
    assert (cohorts.first, cohorts.last) == raw_range(store.path, "orders", "created_at")


def test_a_table_of_things_created_gets_no_soft_note_while_orders_go_on(store):
    # Products are created now and then; weeks without one are not the end of the data.
    _, products_last = raw_range(store.path, "products", "created_at")
    _, orders_last = raw_range(store.path, "orders", "created_at")
    assert orders_last - products_last > dt.timedelta(days=2)
    until = local_date(orders_last, store.timezone).isoformat()
    since = (local_date(products_last, store.timezone) - dt.timedelta(days=5)).isoformat()
    result = store.query(f"FROM products SHOW products SINCE {since} UNTIL {until}")
    assert data_notices(result.notices) == []


def test_dates_are_in_the_stores_time_zone(sample_store_path, sales_range):
    _, last = sales_range
    # A zone far east or far west of New York puts the last event on another date than New York does
    # (+14 h when it happened after 05:00 there, -6 h when before 06:00): the note follows the zone.
    other = "Pacific/Kiritimati" if last.astimezone(ZoneInfo("America/New_York")).hour >= 5 else "Pacific/Pago_Pago"
    assert local_date(last, other) != local_date(last, "America/New_York")
    for zone in ("America/New_York", other):
        with cql.connect(sample_store_path, timezone=zone, clock=last + dt.timedelta(days=400)) as opened:
            notes = data_notices(opened.query("FROM sales SHOW net_sales DURING last_month").notices)
            assert len(notes) == 1 and f"data ends {local_date(last, zone).isoformat()};" in notes[0], (zone, notes)
            # WITH TIMEZONE changes the query's zone, and the note's dates with it.
            notes = data_notices(opened.query(
                "FROM sales SHOW net_sales DURING last_month WITH TIMEZONE 'America/New_York'").notices)
            assert f"data ends {local_date(last, 'America/New_York').isoformat()};" in notes[0], (zone, notes)


def test_the_notes_do_not_depend_on_the_machine_time_zone(sample_store_path, sales_range):
    _, last = sales_range
    clock = (last + dt.timedelta(days=45)).isoformat()
    code = (
        "import datetime as dt, json, sys, commerceql as cql\n"
        f"s = cql.connect({str(sample_store_path)!r}, clock=dt.datetime.fromisoformat({clock!r}))\n"
        "queries = ['FROM sales SHOW net_sales DURING last_month', 'FROM sales SHOW net_sales SINCE -60d UNTIL today',\n"
        "           'FROM orders SHOW orders TIMESERIES day WITH TIMEZONE \\'Asia/Tokyo\\'']\n"
        "print(json.dumps([list(s.query(q).notices) for q in queries]))\n"
    )
    outputs = set()
    for machine_zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                                 env={**os.environ, "TZ": machine_zone})
        assert process.returncode == 0, process.stderr
        outputs.add(process.stdout)
    assert len(outputs) == 1
    notes = json.loads(outputs.pop())
    assert all(notes), notes  # every query was outside or partly outside the data


# ---------------------------------------------------------------------------------------------
# pinning the clock at connect


def test_as_of_a_date_is_the_end_of_that_day_in_the_store_zone(sample_store_path):
    with cql.connect(sample_store_path, as_of="2024-06-30") as opened:
        assert opened.now() == dt.datetime(2024, 6, 30, 23, 59, 59, tzinfo=ZoneInfo(opened.timezone))
        assert opened.clock_pinned
    with cql.connect(sample_store_path, as_of="2024-06-30T08:00:00+00:00") as opened:
        assert opened.now() == dt.datetime(2024, 6, 30, 8, tzinfo=dt.UTC)


def test_as_of_last_order_is_the_last_orders_time(sample_store_path):
    _, last = raw_range(sample_store_path, "orders", "created_at")
    with cql.connect(sample_store_path, as_of="last-order") as opened:
        assert opened.now() == last


@pytest.mark.parametrize(("value", "fragment"), [
    ("yesterday", "is not 'last-order', a date"),
    ("2024-02-30", "is not 'last-order', a date"),
    ("", "as_of must be"),
    (42, "as_of must be"),
])
def test_a_bad_as_of_is_a_clear_error(sample_store_path, value, fragment):
    with pytest.raises(CommerceQLDataError) as caught:
        cql.connect(sample_store_path, as_of=value)
    assert fragment in caught.value.message and caught.value.hint


def test_as_of_and_clock_cannot_both_be_given(sample_store_path):
    with pytest.raises(CommerceQLDataError, match="either clock or as_of"):
        cql.connect(sample_store_path, as_of="last-order", clock=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))


# ---------------------------------------------------------------------------------------------
# a real export: the real clock, then pinned


def raw_orders(folder: Path) -> pl.DataFrame:
    """Order-level rows of the export: Name and Created at (an aware instant)."""
    frame = pl.read_csv(next(folder.glob("orders_export*.csv")), infer_schema=False)
    return frame.with_columns(pl.col("Created at").str.to_datetime("%Y-%m-%d %H:%M:%S %z", time_zone="UTC"))


@pytest.fixture(scope="module")
def real_store(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data-range") / FOLDER
    assert import_main(["shopify", str(SHOPIFY / FOLDER), "--out", str(out), "--no-progress"]) == 0
    return out


@needs_realdata
def test_a_real_export_on_the_real_clock_names_its_last_order(real_store):
    orders = raw_orders(SHOPIFY / FOLDER)
    last = orders["Created at"].max()
    assert isinstance(last, dt.datetime)
    with cql.connect(real_store) as opened:
        assert not opened.clock_pinned and opened.manifest["as_of"] is None
        result = opened.query("FROM orders SHOW orders DURING last_month")
        assert result.df["orders"].to_list() == [0]
        ends = local_date(last.replace(tzinfo=dt.UTC), opened.timezone).isoformat()
        notes = data_notices(result.notices)
        assert len(notes) == 1
        assert notes[0].startswith(f"no data in this period: this store's orders data ends {ends}; `last_month` is ")
        assert "as_of=last-order" in notes[0]  # the way out is named
        # A table the export did not fill says so, with the importer's reason.
        empty = opened.query("FROM checkouts SHOW abandoned_checkouts DURING last_month")
        assert "this store's checkouts table has no rows (no Abandoned checkouts export)" in empty.notices


def _expected_last_month(folder: Path, zone: str) -> tuple[dt.datetime, int, Decimal, int]:
    """(last order, orders, gross sales, quantity) of the month before the last order's month, from the CSV."""
    rows = raw_orders(folder)
    last = rows["Created at"].max()
    assert isinstance(last, dt.datetime)
    last = last.replace(tzinfo=dt.UTC)
    start, end = previous_month(local_date(last, zone))
    local = rows.with_columns(pl.col("Created at").dt.convert_time_zone(zone).dt.date().alias("day"))
    month = local.filter((pl.col("day") >= start) & (pl.col("day") <= end))
    orders = month.filter(pl.col("Financial Status").is_not_null())["Name"].n_unique()
    lines = month.filter(pl.col("Lineitem name").is_not_null())
    gross = sum((Decimal(q) * Decimal(p) for q, p in zip(lines["Lineitem quantity"], lines["Lineitem price"],
                                                          strict=True)), Decimal(0))
    quantity = int(lines["Lineitem quantity"].cast(pl.Int64).sum())
    return last, orders, gross, quantity


@needs_realdata
def test_importing_with_as_of_last_order_makes_last_month_the_month_before_the_data_ends(tmp_path, capsys):
    out = tmp_path / "pinned"
    assert import_main(["shopify", str(SHOPIFY / FOLDER), "--out", str(out), "--no-progress",
                        "--as-of", "last-order"]) == 0
    assert "clock is pinned to" in capsys.readouterr().out
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    with cql.connect(out) as opened:
        last, orders, gross, quantity = _expected_last_month(SHOPIFY / FOLDER, opened.timezone)
        assert dt.datetime.fromisoformat(manifest["as_of"]) == last
        assert opened.now() == last
        result = opened.query("FROM sales SHOW orders, gross_sales, quantity_ordered DURING last_month")
        assert orders > 0 and gross > 0
        got_orders, got_gross, got_quantity = result.df.row(0)
        assert (got_orders, Decimal(str(got_gross)), int(got_quantity)) == (orders, gross, quantity)
        assert data_notices(result.notices) == []


@needs_realdata
def test_connecting_with_as_of_last_order_pins_an_unpinned_import(real_store):
    with cql.connect(real_store, as_of="last-order") as opened:
        last, orders, _, _ = _expected_last_month(SHOPIFY / FOLDER, opened.timezone)
        assert opened.now() == last
        result = opened.query("FROM orders SHOW orders DURING last_month")
        assert result.df["orders"].to_list() == [orders] and data_notices(result.notices) == []


@needs_realdata
def test_importing_with_as_of_a_date_and_a_bad_value(tmp_path, capsys):
    out = tmp_path / "dated"
    assert import_main(["shopify", str(SHOPIFY / FOLDER), "--out", str(out), "--no-progress",
                        "--as-of", "2025-11-30", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    with cql.connect(out) as opened:
        expected = dt.datetime(2025, 11, 30, 23, 59, 59, tzinfo=ZoneInfo(opened.timezone))
        assert opened.now() == expected == dt.datetime.fromisoformat(report["as_of"])
    # A bad value is refused before the import starts: no store is written.
    refused = tmp_path / "refused"
    assert import_main(["shopify", str(SHOPIFY / FOLDER), "--out", str(refused), "--as-of", "soon"]) == 2
    assert "is not 'last-order'" in capsys.readouterr().err
    assert not refused.exists()


# ---------------------------------------------------------------------------------------------
# Spark


@pytest.mark.spark
@pytest.mark.slow
def test_the_notes_are_the_same_on_spark(sample_store_path, sales_range):
    from commerceql.engines import spark_unavailable

    reason = spark_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Spark tests must run in CI: {reason}")
        pytest.skip(reason)
    _, last = sales_range
    clock = last + dt.timedelta(days=20)
    queries = ("FROM sales SHOW net_sales DURING last_month",
               "FROM sales SHOW net_sales SINCE -40d UNTIL today",
               "FROM sessions SHOW sessions SINCE 2015-01-01 UNTIL 2015-01-31")
    with cql.connect(sample_store_path, clock=clock) as duck, \
            cql.connect(sample_store_path, engine="spark", clock=clock) as spark:
        assert spark.data_range("sales") == duck.data_range("sales")
        for query in queries:
            expected = duck.query(query).notices
            assert data_notices(expected), query
            assert spark.query(query).notices == expected, query
