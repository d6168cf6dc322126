"""Time semantics against hand-written SQL: local dates, leap days, DST hours, cyclical buckets.

Expected values come from SQL written here over the raw `sales` / `customers` / `orders` tables
with every local-time conversion explicit (`timezone('America/New_York', ts)`), never from the
compiler's output. The subprocess test runs the same queries under several machine time zones.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commerceql as cql
from commerceql.compiler import inline_parameters
from commerceql.errors import CommerceQLError

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def money(value) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def daily_net_sales(store, start: str, end: str) -> dict[dt.date, Decimal]:
    rows = store.sql(
        f"""SELECT CAST(timezone('{TZ}', happened_at) AS DATE) AS d, SUM(net_sales) AS v FROM sales
            WHERE timezone('{TZ}', happened_at) >= TIMESTAMP '{start}'
              AND timezone('{TZ}', happened_at) < TIMESTAMP '{end}'
            GROUP BY 1"""
    )
    return {d: money(v) for d, v in rows.iter_rows()}


# ---------------------------------------------------------------------------------------------
# Date dimensions are store-local dates, whatever the machine's TZ
# ---------------------------------------------------------------------------------------------

_TZ_SCRIPT = """
import json, sys
import commerceql as cql
store = cql.connect(sys.argv[1])
out = {}
for q in json.loads(sys.argv[2]):
    df = store.query(q).df
    out[q] = [[str(v) for v in row] for row in df.rows()]
print(json.dumps(out))
"""

DATE_DIMENSION_QUERIES = [
    "FROM customers SHOW customers GROUP BY customer_first_order_date ORDER BY customer_first_order_date DESC LIMIT 40",
    "FROM customers SHOW customers GROUP BY customer_last_order_date ORDER BY customer_last_order_date DESC LIMIT 40",
    "FROM products SHOW products GROUP BY product_discontinued_date ORDER BY product_discontinued_date LIMIT 40",
    "FROM sales SHOW net_sales TIMESERIES hour SINCE 2025-11-02 UNTIL 2025-11-02",
    "FROM sales SHOW net_sales GROUP BY day_of_week, hour_of_day DURING last_week",
    "FROM sales SHOW net_sales TIMESERIES day DURING last_month COMPARE TO previous_year",
]


def test_date_dimensions_do_not_depend_on_the_machine_time_zone(sample_store_path):
    outputs = {}
    for zone in ("UTC", "America/Los_Angeles", "Asia/Tokyo"):
        env = {**os.environ, "TZ": zone}
        process = subprocess.run(
            [sys.executable, "-c", _TZ_SCRIPT, str(sample_store_path), json.dumps(DATE_DIMENSION_QUERIES)],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        assert process.returncode == 0, process.stderr
        outputs[zone] = json.loads(process.stdout)
    assert outputs["UTC"] == outputs["America/Los_Angeles"] == outputs["Asia/Tokyo"]
    for rows in outputs["UTC"].values():
        assert rows  # every query answered something to compare


def test_first_order_date_counts_customers_by_their_local_first_order_day(store):
    result = store.query(
        "FROM customers SHOW customers GROUP BY customer_first_order_date "
        "WHERE customer_first_order_date >= 2025-11-25"
    )
    got = {r["customer_first_order_date"]: r["customers"] for r in result.df.iter_rows(named=True)}
    expected = store.sql(
        f"""SELECT CAST(timezone('{TZ}', first_order_at) AS DATE) AS d, COUNT(*) AS n FROM customers
            WHERE CAST(timezone('{TZ}', first_order_at) AS DATE) >= DATE '2025-11-25' GROUP BY 1"""
    )
    assert got == {d: n for d, n in expected.iter_rows()}
    assert len(got) >= 10


# ---------------------------------------------------------------------------------------------
# COMPARE TO previous_year lines days up by calendar date; Feb 29 counts in totals only
# ---------------------------------------------------------------------------------------------


def test_daily_previous_year_compares_each_day_with_the_same_date(store):
    result = store.query(
        "FROM sales SHOW net_sales TIMESERIES day DURING this_year COMPARE TO previous_year WITH TOTALS"
    )
    previous = daily_net_sales(store, "2024-01-01", "2024-12-15 14:00:00")
    assert result.df.height == 349  # Jan 1 .. Dec 15, 2025
    for row in result.df.iter_rows(named=True):
        day: dt.date = row["day"]
        assert money(row["comparison_net_sales__previous_year"]) == previous.get(day.replace(year=2024), 0), day
    # Feb 29, 2024 has no day in 2025: it is in the comparison's total, in no row.
    total = money(result.df["comparison_net_sales__previous_year__totals"][0])
    assert total == sum(previous.values())
    rows_sum = sum(money(v) for v in result.df["comparison_net_sales__previous_year"].to_list())
    assert total - rows_sum == previous[dt.date(2024, 2, 29)]
    assert previous[dt.date(2024, 2, 29)] != 0


def test_cyber_monday_is_compared_with_the_same_date_not_the_day_before(store):
    result = store.query("FROM sales SHOW net_sales TIMESERIES day SINCE 2025-12-03 UNTIL 2025-12-03 COMPARE TO previous_year")
    previous = daily_net_sales(store, "2024-12-03", "2024-12-04")
    assert money(result.df["comparison_net_sales__previous_year"][0]) == previous[dt.date(2024, 12, 3)]


def test_a_leap_day_in_the_reporting_period_has_no_comparison_day(store):
    result = store.query("FROM sales SHOW net_sales TIMESERIES day SINCE 2024-02-01 UNTIL 2024-02-29 COMPARE TO previous_year")
    rows = {r["day"]: r for r in result.df.iter_rows(named=True)}
    assert len(rows) == 29
    assert money(rows[dt.date(2024, 2, 29)]["comparison_net_sales__previous_year"]) == 0
    previous = daily_net_sales(store, "2023-02-01", "2023-03-01")
    assert money(rows[dt.date(2024, 2, 28)]["comparison_net_sales__previous_year"]) == previous[dt.date(2023, 2, 28)]


def test_daily_comparisons_sum_to_the_monthly_comparison(store):
    daily = store.query("FROM sales SHOW net_sales TIMESERIES day DURING last_year COMPARE TO previous_year").df
    monthly = store.query("FROM sales SHOW net_sales TIMESERIES month DURING last_year COMPARE TO previous_year").df
    for row in monthly.iter_rows(named=True):
        month: dt.date = row["month"]
        days = [money(r["comparison_net_sales__previous_year"]) for r in daily.iter_rows(named=True)
                if (r["day"].year, r["day"].month) == (month.year, month.month)]
        # 2024 vs 2023: no leap day in the comparison year, so every month adds up exactly.
        assert sum(days) == money(row["comparison_net_sales__previous_year"]), month


# ---------------------------------------------------------------------------------------------
# Hourly spines follow the clock: 23 hours in spring, 25 in autumn
# ---------------------------------------------------------------------------------------------


def hours_in_local_day(day: dt.date) -> int:
    start = dt.datetime.combine(day, dt.time(), ZONE)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), ZONE)
    return int((end.astimezone(dt.UTC) - start.astimezone(dt.UTC)).total_seconds() // 3600)


@pytest.mark.parametrize("day, hours", [(dt.date(2025, 3, 9), 23), (dt.date(2024, 11, 3), 25), (dt.date(2025, 6, 1), 24)])
def test_hourly_timeseries_has_the_hours_the_day_had(store, day, hours):
    result = store.query(f"FROM sales SHOW net_sales, orders TIMESERIES hour SINCE {day} UNTIL {day}")
    assert result.df.height == hours == hours_in_local_day(day)
    labels = result.df["hour"].to_list()
    if hours == 23:
        assert dt.datetime.combine(day, dt.time(2)) not in labels  # 02:00 did not exist
    if hours == 25:
        assert labels.count(dt.datetime.combine(day, dt.time(1))) == 2  # 01:00 happened twice
    # Values per real hour (an instant bucket), hand-written: New York offsets are whole hours.
    expected = store.sql(
        f"""SELECT date_trunc('hour', happened_at AT TIME ZONE 'UTC') AS h, SUM(net_sales) AS v,
                   COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order') AS o
            FROM sales
            WHERE timezone('{TZ}', happened_at) >= TIMESTAMP '{day}'
              AND timezone('{TZ}', happened_at) < TIMESTAMP '{day + dt.timedelta(days=1)}'
            GROUP BY 1 ORDER BY 1"""
    )
    by_hour = {h: (money(v), o) for h, v, o in expected.iter_rows()}
    start = dt.datetime.combine(day, dt.time(), ZONE).astimezone(dt.UTC).replace(tzinfo=None)
    for index, row in enumerate(result.df.iter_rows(named=True)):
        instant = start + dt.timedelta(hours=index)
        assert row["hour"] == instant.replace(tzinfo=dt.UTC).astimezone(ZONE).replace(tzinfo=None)
        value, orders = by_hour.get(instant, (Decimal(0), 0))
        assert money(row["net_sales"]) == value, row
        assert row["orders"] == orders, row


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(day=st.dates(min_value=dt.date(2023, 1, 1), max_value=dt.date(2025, 12, 14)))
def test_every_hourly_day_has_as_many_rows_as_local_hours(store, day):
    result = store.query(f"FROM sales SHOW net_sales TIMESERIES hour SINCE {day} UNTIL {day}")
    assert result.df.height == hours_in_local_day(day)


def test_hourly_buckets_in_a_half_hour_zone_start_on_its_local_hours(store):
    result = store.query(
        "FROM sales SHOW net_sales TIMESERIES hour SINCE 2025-06-01 UNTIL 2025-06-01 WITH TIMEZONE 'Asia/Kolkata'"
    )
    expected = store.sql(
        """SELECT date_trunc('hour', timezone('Asia/Kolkata', happened_at)) AS h, SUM(net_sales) FROM sales
           WHERE timezone('Asia/Kolkata', happened_at) >= TIMESTAMP '2025-06-01'
             AND timezone('Asia/Kolkata', happened_at) < TIMESTAMP '2025-06-02' GROUP BY 1"""
    )
    by_hour = {h: money(v) for h, v in expected.iter_rows()}
    assert result.df.height == 24
    for row in result.df.iter_rows(named=True):
        assert money(row["net_sales"]) == by_hour.get(row["hour"], 0)


def test_hourly_previous_year_lines_up_by_local_clock_time(store):
    result = store.query(
        "FROM sales SHOW net_sales TIMESERIES hour SINCE 2025-06-02 UNTIL 2025-06-02 COMPARE TO previous_year"
    )
    expected = store.sql(
        f"""SELECT hour(timezone('{TZ}', happened_at)) AS h, SUM(net_sales) FROM sales
            WHERE timezone('{TZ}', happened_at) >= TIMESTAMP '2024-06-02'
              AND timezone('{TZ}', happened_at) < TIMESTAMP '2024-06-03' GROUP BY 1"""
    )
    by_hour = {h: money(v) for h, v in expected.iter_rows()}
    assert result.df.height == 24
    for row in result.df.iter_rows(named=True):
        assert money(row["comparison_net_sales__previous_year"]) == by_hour.get(row["hour"].hour, 0)


# ---------------------------------------------------------------------------------------------
# Cyclical dimensions list every bucket once
# ---------------------------------------------------------------------------------------------


def test_day_of_week_over_a_full_week_has_seven_rows(store):
    result = store.query("FROM sales SHOW net_sales, orders GROUP BY day_of_week DURING last_week")
    assert sorted(result.df["day_of_week"].to_list()) == list(range(7))


def test_hour_of_day_over_one_day_lists_all_24_hours_with_hand_written_values(store):
    result = store.query("FROM sales SHOW net_sales, orders GROUP BY hour_of_day SINCE 2025-12-14 UNTIL 2025-12-14")
    expected = store.sql(
        f"""SELECT hour(timezone('{TZ}', happened_at)) AS h, SUM(net_sales),
                   COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order')
            FROM sales WHERE timezone('{TZ}', happened_at) >= TIMESTAMP '2025-12-14'
              AND timezone('{TZ}', happened_at) < TIMESTAMP '2025-12-15' GROUP BY 1"""
    )
    by_hour = {h: (money(v), o) for h, v, o in expected.iter_rows()}
    assert len(by_hour) < 24  # the day has quiet hours, which must still be listed
    assert sorted(result.df["hour_of_day"].to_list()) == list(range(24))
    for row in result.df.iter_rows(named=True):
        value, orders = by_hour.get(row["hour_of_day"], (Decimal(0), 0))
        assert (money(row["net_sales"]), row["orders"]) == (value, orders)


def test_a_filtered_cyclical_dimension_lists_only_what_the_filter_keeps(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY hour_of_day WHERE hour_of_day IN (9, 10) DURING last_month")
    assert sorted(result.df["hour_of_day"].to_list()) == [9, 10]


# ---------------------------------------------------------------------------------------------
# Joins, parameters written into SQL, limits, notices
# ---------------------------------------------------------------------------------------------


def test_arithmetic_on_a_joined_dimension_joins_its_table(store):
    result = store.query("FROM sales SHOW orders WHERE product_variant_price * 2 > 10 DURING last_month")
    expected = store.sql(
        f"""SELECT COUNT(DISTINCT s.order_id) FILTER (WHERE s.event_type = 'order') FROM sales s
            JOIN variants v ON v.variant_id = s.variant_id
            WHERE v.price * 2 > 10 AND timezone('{TZ}', s.happened_at) >= TIMESTAMP '2025-11-01'
              AND timezone('{TZ}', s.happened_at) < TIMESTAMP '2025-12-01'"""
    ).item()
    assert result.df["orders"][0] == expected


EXPLAINED_QUERIES = [
    "FROM sales SHOW net_sales GROUP BY sales_channel WHERE billing_region = '$p1' OR billing_region = 'it''s $p0' DURING last_month",
    "FROM sales SHOW net_sales, orders GROUP BY billing_region WHERE sales_channel IN ('Online Store', '$p10', '$p2$p3') DURING last_year",
    "FROM sales SHOW net_sales TIMESERIES hour SINCE 2024-11-03 UNTIL 2024-11-03 COMPARE TO previous_year",
    "FROM sales SHOW net_sales, average_order_value GROUP BY product_type WHERE product_variant_price > 10.5 WITH TOTALS DURING last_year",
    "FROM sales SHOW net_sales GROUP BY month, TOP 3 product_title DURING last_quarter COMPARE TO previous_year",
    "FROM customers SHOW customers GROUP BY customer_first_order_date WHERE customer_first_order_date >= 2025-12-01",
]


@pytest.mark.parametrize("query", EXPLAINED_QUERIES)
def test_explained_sql_runs_as_printed_and_returns_the_same_rows(store, query):
    result = store.query(query)
    printed = store.explain(query)
    outside_strings = re.sub(r"'(?:[^']|'')*'", "''", printed)
    assert not re.search(r"\$p\d", outside_strings)  # every parameter token was written in
    rerun = store.sql(printed).drop("__total_rows")
    assert rerun.equals(result.df)


def test_inline_parameters_never_substitutes_inside_values_or_literals():
    sql = "SELECT $p0 AS a, '$p1' AS literal, $p1 AS b, $p10 AS c"
    printed = inline_parameters(sql, {"p0": "$p1 and $p10", "p1": "x'y", "p10": 3})
    assert printed == "SELECT '$p1 and $p10' AS a, '$p1' AS literal, 'x''y' AS b, 3 AS c"


def test_an_enormous_calendar_spine_is_refused_before_running(store):
    with pytest.raises(CommerceQLError) as caught:
        store.query("FROM sales SHOW net_sales TIMESERIES second SINCE -3y")
    message = caught.value.render()
    assert "limit" in message and "coarser grain" in message
    assert caught.value.line == 1 and caught.value.column is not None


def test_cumulative_values_say_which_metrics_have_no_running_total(store):
    result = store.query(
        "FROM sales SHOW net_sales, average_order_value TIMESERIES month DURING last_year WITH CUMULATIVE_VALUES"
    )
    assert "net_sales__cumulative" in result.df.columns
    assert "average_order_value__cumulative" not in result.df.columns
    assert any("average_order_value" in n and "running total" in n for n in result.notices)
    running = result.df["net_sales__cumulative"].to_list()
    monthly = result.df["net_sales"].to_list()
    assert money(running[-1]) == sum(money(v) for v in monthly)
