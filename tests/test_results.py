"""Result tests: CommerceQL's answers against independently hand-written DuckDB SQL.

Each test writes the SQL an analyst would write by hand over the physical tables (never the
compiler's output, never the model's SQL) and compares values. The sample store's clock is fixed
at 2025-12-15 14:00 America/New_York, so `last_month` is November 2025 and so on.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import polars as pl
import pytest

import commerceql as cql

TZ = "America/New_York"
LOCAL = f"timezone('{TZ}', happened_at)"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def hand(store, sql: str, params=None) -> pl.DataFrame:
    return store.sql(sql, params)


def as_float(value) -> float | None:
    return None if value is None else float(value)


def assert_frames_match(actual: pl.DataFrame, expected: pl.DataFrame, *, keys: list[str], tolerance: float = 1e-6):
    """Same rows (matched on keys) and same values; money compared exactly to the cent."""
    assert actual.height == expected.height, f"{actual.height} rows, expected {expected.height}"
    actual_rows = {tuple(r[k] for k in keys): r for r in actual.iter_rows(named=True)}
    for row in expected.iter_rows(named=True):
        key = tuple(row[k] for k in keys)
        assert key in actual_rows, f"missing row {key}"
        got = actual_rows[key]
        for column, value in row.items():
            if column in keys:
                continue
            if value is None or got[column] is None:
                assert value == got[column] or (value in (0, None) and got[column] in (0, None)), (key, column, got[column], value)
            elif isinstance(value, Decimal) or isinstance(got[column], Decimal):
                assert abs(float(got[column]) - float(value)) < 0.005, (key, column, got[column], value)
            else:
                assert got[column] == pytest.approx(value, rel=tolerance, abs=1e-9), (key, column, got[column], value)


# Bounds of common periods, in store-local wall-clock time.
LAST_MONTH = ("2025-11-01", "2025-12-01")
LAST_YEAR = ("2024-01-01", "2025-01-01")
YEAR_BEFORE_LAST = ("2023-01-01", "2024-01-01")
LAST_QUARTER = ("2025-07-01", "2025-10-01")


def local_between(start: str, end: str, column: str = "happened_at") -> str:
    return f"timezone('{TZ}', {column}) >= TIMESTAMP '{start}' AND timezone('{TZ}', {column}) < TIMESTAMP '{end}'"


# ---------------------------------------------------------------------------------------------
# SHOW and metric definitions
# ---------------------------------------------------------------------------------------------


def test_all_time_money_metrics(store):
    result = store.query(
        "FROM sales SHOW gross_sales, discounts, sales_reversals, net_sales, taxes, shipping_charges, total_sales"
    )
    expected = hand(
        store,
        "SELECT SUM(gross_sales) gross_sales, SUM(discounts) discounts, SUM(sales_reversals) sales_reversals, "
        "SUM(net_sales) net_sales, SUM(taxes) taxes, SUM(shipping_charges) shipping_charges, SUM(total_sales) total_sales FROM sales",
    )
    assert result.df.height == 1
    for column in expected.columns:
        assert result.df[column][0] == expected[column][0], column


def test_orders_and_average_order_value_last_month(store):
    result = store.query("FROM sales SHOW orders, average_order_value DURING last_month")
    expected = hand(
        store,
        f"""SELECT COUNT(*) AS orders, SUM(subtotal) / COUNT(*) AS aov FROM (
              SELECT order_id, SUM(gross_sales + discounts) AS subtotal FROM sales
              WHERE event_type = 'order' AND {local_between(*LAST_MONTH)} GROUP BY order_id)""",
    )
    assert result.df["orders"][0] == expected["orders"][0]
    assert float(result.df["average_order_value"][0]) == pytest.approx(float(expected["aov"][0]), rel=1e-9)


def test_group_by_sales_channel(store):
    result = store.query("FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_year")
    expected = hand(
        store,
        f"""SELECT sales_channel, SUM(net_sales) net_sales,
                   COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) orders
            FROM sales WHERE {local_between(*LAST_YEAR)} GROUP BY sales_channel""",
    )
    assert_frames_match(result.df, expected, keys=["sales_channel"])
    # Default order: first metric descending.
    assert result.df["net_sales"].to_list() == sorted(result.df["net_sales"].to_list(), reverse=True)


def test_group_by_month_last_year(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY month DURING last_year")
    expected = hand(
        store,
        f"""SELECT CAST(date_trunc('month', {LOCAL}) AS DATE) AS month, SUM(net_sales) net_sales
            FROM sales WHERE {local_between(*LAST_YEAR)} GROUP BY 1""",
    )
    assert result.df.height == 12
    assert_frames_match(result.df, expected, keys=["month"])
    assert result.df["month"].to_list() == sorted(result.df["month"].to_list())


def test_arithmetic_with_alias(store):
    result = store.query(
        'FROM sales SHOW net_sales + shipping_charges AS "Sales and shipping", net_sales / orders AS per_order DURING last_month'
    )
    expected = hand(
        store,
        f"""SELECT SUM(net_sales) + SUM(shipping_charges) AS a,
                   SUM(net_sales) / COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) AS b
            FROM sales WHERE {local_between(*LAST_MONTH)}""",
    )
    assert result.df.columns == ["Sales and shipping", "per_order"]
    assert float(result.df["Sales and shipping"][0]) == pytest.approx(float(expected["a"][0]))
    assert float(result.df["per_order"][0]) == pytest.approx(float(expected["b"][0]))


def test_deprecated_returns_name_still_answers(store):
    result = store.query("FROM sales SHOW returns, sales_reversals DURING last_year")
    assert result.df["returns"][0] == result.df["sales_reversals"][0]
    expected = hand(store, f"SELECT SUM(sales_reversals) v FROM sales WHERE {local_between(*LAST_YEAR)}")
    assert result.df["returns"][0] == expected["v"][0]


def test_customers_new_and_returning(store):
    result = store.query(
        "FROM sales SHOW customers, new_customers, returning_customers, returning_customer_rate DURING last_year"
    )
    expected = hand(
        store,
        f"""SELECT COUNT(DISTINCT customer_id) c,
                   COUNT(DISTINCT CASE WHEN is_first_order THEN customer_id END) n,
                   COUNT(DISTINCT CASE WHEN NOT is_first_order THEN customer_id END) r
            FROM sales WHERE event_type = 'order' AND {local_between(*LAST_YEAR)}""",
    )
    row = result.df.row(0, named=True)
    assert row["customers"] == expected["c"][0]
    assert row["new_customers"] == expected["n"][0]
    assert row["returning_customers"] == expected["r"][0]
    assert row["returning_customer_rate"] == pytest.approx(expected["r"][0] / expected["c"][0])


def test_new_or_returning_dimension(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY new_or_returning_customer DURING last_quarter")
    expected = hand(
        store,
        f"""SELECT CASE WHEN is_first_order THEN 'New' ELSE 'Returning' END AS new_or_returning_customer,
                   SUM(net_sales) net_sales
            FROM sales WHERE {local_between(*LAST_QUARTER)} GROUP BY 1""",
    )
    assert_frames_match(result.df, expected, keys=["new_or_returning_customer"])


def test_gross_margin_is_a_ratio_of_sums(store):
    result = store.query("FROM sales SHOW gross_margin, net_sales, cost_of_goods_sold GROUP BY product_type DURING last_year WITH TOTALS")
    expected = hand(
        store,
        f"""SELECT (SUM(net_sales) - SUM(cost)) / SUM(net_sales) AS margin FROM sales WHERE {local_between(*LAST_YEAR)}""",
    )
    assert result.df["gross_margin__totals"][0] == pytest.approx(float(expected["margin"][0]))
    # Not the average of the per-row margins.
    rows_average = result.df["gross_margin"].drop_nulls().mean()
    assert result.df["gross_margin__totals"][0] != pytest.approx(rows_average, rel=1e-6)


def test_company_tier_through_joins(store):
    result = store.query("FROM sales SHOW net_sales, orders GROUP BY company_tier WHERE is_b2b DURING last_year")
    expected = hand(
        store,
        f"""SELECT c.tier AS company_tier, SUM(s.net_sales) net_sales,
                   COUNT(DISTINCT CASE WHEN s.event_type = 'order' THEN s.order_id END) orders
            FROM sales s JOIN companies c ON c.company_id = s.company_id
            WHERE {local_between(*LAST_YEAR, column='s.happened_at')} GROUP BY 1""",
    )
    assert_frames_match(result.df, expected, keys=["company_tier"])


def test_show_dimension_alias_and_group_by_alias(store):
    result = store.query('FROM sales SHOW sales_channel AS channel, net_sales GROUP BY channel DURING last_month')
    expected = hand(
        store,
        f"SELECT sales_channel AS channel, SUM(net_sales) net_sales FROM sales WHERE {local_between(*LAST_MONTH)} GROUP BY 1",
    )
    assert result.df.columns == ["channel", "net_sales"]
    assert_frames_match(result.df, expected, keys=["channel"])


def test_visualize_without_show_selects_metrics(store):
    result = store.query("FROM sales VISUALIZE net_sales TYPE line GROUP BY month DURING last_year")
    assert "net_sales" in result.df.columns
    expected = hand(store, f"SELECT SUM(net_sales) v FROM sales WHERE {local_between(*LAST_YEAR)}")
    assert float(result.df["net_sales"].sum()) == pytest.approx(float(expected["v"][0]))


# ---------------------------------------------------------------------------------------------
# WHERE
# ---------------------------------------------------------------------------------------------


def where_check(store, condition: str, sql_condition: str, period=LAST_YEAR, joins: str = ""):
    result = store.query(f"FROM sales SHOW net_sales, orders WHERE {condition} DURING last_year")
    expected = hand(
        store,
        f"""SELECT SUM(s.net_sales) net_sales,
                   COUNT(DISTINCT CASE WHEN s.event_type = 'order' THEN s.order_id END) orders
            FROM sales s {joins} WHERE {local_between(*period, column='s.happened_at')} AND ({sql_condition})""",
    )
    assert result.df["orders"][0] == expected["orders"][0], condition
    assert as_float(result.df["net_sales"][0]) == pytest.approx(as_float(expected["net_sales"][0])), condition
    return result


def test_where_equals(store):
    where_check(store, "sales_channel = 'Wholesale'", "s.sales_channel = 'Wholesale'")


def test_where_not_equals_keeps_nulls(store):
    # ShopifyQL documents that != keeps rows whose field is NULL (unlike SQL).
    result = where_check(store, "discount_code != 'BFCM25'", "s.discount_code IS DISTINCT FROM 'BFCM25'")
    with_nulls_dropped = hand(
        store,
        f"SELECT COUNT(DISTINCT order_id) o FROM sales WHERE event_type='order' AND discount_code <> 'BFCM25' AND {local_between(*LAST_YEAR)}",
    )
    assert result.df["orders"][0] > with_nulls_dropped["o"][0]


def test_where_in_and_not_in(store):
    where_check(store, "sales_channel IN ('Online Store', 'Point of Sale')", "s.sales_channel IN ('Online Store', 'Point of Sale')")
    where_check(store, "discount_code NOT IN ('BFCM25', 'BFCM24')", "s.discount_code IS NULL OR s.discount_code NOT IN ('BFCM25', 'BFCM24')")


def test_where_between_on_a_number(store):
    where_check(
        store,
        "product_variant_price BETWEEN 10 AND 50",
        "v.price BETWEEN 10 AND 50",
        joins="LEFT JOIN variants v ON v.variant_id = s.variant_id",
    )
    where_check(
        store,
        "product_variant_price NOT BETWEEN 10 AND 50",
        "v.price NOT BETWEEN 10 AND 50",
        joins="LEFT JOIN variants v ON v.variant_id = s.variant_id",
    )


def test_where_string_operators_are_case_insensitive(store):
    joins = "LEFT JOIN products p ON p.product_id = s.product_id"
    title = store.sql("SELECT title FROM products ORDER BY product_id LIMIT 1")["title"][0]
    first_word = title.split()[0]
    last_word = title.split()[-1]
    where_check(store, f"product_title STARTS WITH '{first_word.upper()}'", f"lower(p.title) LIKE lower('{first_word}') || '%'", joins=joins)
    where_check(store, f"product_title ENDS WITH '{last_word.lower()}'", f"lower(p.title) LIKE '%' || lower('{last_word}')", joins=joins)
    where_check(store, f"product_title CONTAINS '{first_word.lower()}'", f"contains(lower(p.title), lower('{first_word}'))", joins=joins)
    where_check(
        store,
        f"product_title NOT CONTAINS '{first_word.lower()}'",
        f"p.title IS NULL OR NOT contains(lower(p.title), lower('{first_word}'))",
        joins=joins,
    )


def test_where_array_contains_customer_tags(store):
    where_check(
        store,
        "customer_tags CONTAINS 'vip'",
        "list_contains(c.tags, 'VIP')",
        joins="LEFT JOIN customers c ON c.customer_id = s.customer_id",
    )


def test_where_is_null_and_is_not_null(store):
    where_check(store, "discount_code IS NULL", "s.discount_code IS NULL")
    where_check(store, "discount_code IS NOT NULL", "s.discount_code IS NOT NULL")


def test_where_is_true_is_false_and_bare_boolean(store):
    where_check(store, "is_b2b IS TRUE", "s.company_id IS NOT NULL")
    where_check(store, "is_b2b IS FALSE", "s.company_id IS NULL")
    where_check(store, "is_b2b", "s.company_id IS NOT NULL")
    where_check(store, "is_b2b = false", "s.company_id IS NULL")


def test_where_and_or_not_with_parentheses(store):
    where_check(
        store,
        "sales_channel = 'Wholesale' OR sales_channel = 'Draft Orders' AND billing_country = 'US'",
        "s.sales_channel = 'Wholesale' OR (s.sales_channel = 'Draft Orders' AND s.billing_country = 'US')",
    )
    where_check(
        store,
        "(sales_channel = 'Wholesale' OR sales_channel = 'Draft Orders') AND NOT billing_country = 'US'",
        "(s.sales_channel = 'Wholesale' OR s.sales_channel = 'Draft Orders') AND (s.billing_country IS NULL OR s.billing_country <> 'US')",
    )


def test_where_on_cyclical_time_dimension(store):
    where_check(store, "day_of_week IN (5, 6)", f"isodow(timezone('{TZ}', s.happened_at)) IN (6, 7)")


# ---------------------------------------------------------------------------------------------
# GROUP BY, TOP, TIMESERIES
# ---------------------------------------------------------------------------------------------


def test_top_n_with_other_row_adds_up(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY TOP 5 product_type DURING last_year")
    expected = hand(
        store,
        f"""WITH by_type AS (
              SELECT p.product_type, SUM(s.net_sales) net_sales FROM sales s LEFT JOIN products p USING (product_id)
              WHERE {local_between(*LAST_YEAR, column='s.happened_at')} GROUP BY 1),
            ranked AS (SELECT *, row_number() OVER (ORDER BY net_sales DESC NULLS LAST, product_type NULLS LAST) rn FROM by_type)
            SELECT CASE WHEN rn <= 5 THEN product_type ELSE 'Other' END AS product_type, SUM(net_sales) net_sales
            FROM ranked GROUP BY 1""",
    )
    assert result.df.height == 6
    assert result.df["product_type"][-1] == "Other"
    assert_frames_match(result.df, expected, keys=["product_type"])


def test_only_top_drops_other(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY ONLY TOP 3 product_title DURING last_year")
    expected = hand(
        store,
        f"""SELECT p.title AS product_title, SUM(s.net_sales) net_sales FROM sales s LEFT JOIN products p USING (product_id)
            WHERE {local_between(*LAST_YEAR, column='s.happened_at')} GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1 LIMIT 3""",
    )
    assert "Other" not in result.df["product_title"].to_list()
    assert_frames_match(result.df, expected, keys=["product_title"])


def test_top_per_month_and_overall(store):
    per_month = store.query("FROM sales SHOW net_sales GROUP BY month, ONLY TOP 2 sales_channel DURING last_quarter")
    overall = store.query("FROM sales SHOW net_sales GROUP BY month, ONLY TOP 1 sales_channel OVERALL DURING last_quarter")
    assert per_month.df.height == 6
    expected = hand(
        store,
        f"""SELECT CAST(date_trunc('month', {LOCAL}) AS DATE) AS "month", sales_channel, SUM(net_sales) net_sales FROM sales
            WHERE {local_between(*LAST_QUARTER)} GROUP BY 1, 2
            QUALIFY row_number() OVER (PARTITION BY "month" ORDER BY SUM(net_sales) DESC) <= 2""",
    )
    assert_frames_match(per_month.df, expected, keys=["month", "sales_channel"])
    best = hand(
        store,
        f"SELECT sales_channel FROM sales WHERE {local_between(*LAST_QUARTER)} GROUP BY 1 ORDER BY SUM(net_sales) DESC LIMIT 1",
    )["sales_channel"][0]
    assert set(overall.df["sales_channel"].to_list()) == {best}
    assert overall.df.height == 3


def test_timeseries_day_is_dense(store):
    result = store.query("FROM sales SHOW net_sales, orders WHERE sales_channel = 'Draft Orders' TIMESERIES day DURING last_month")
    assert result.df.height == 30
    assert result.df["day"][0] == dt.date(2025, 11, 1)
    assert result.df["day"][-1] == dt.date(2025, 11, 30)
    expected = hand(
        store,
        f"""SELECT CAST(date_trunc('day', {LOCAL}) AS DATE) AS day, SUM(net_sales) net_sales,
                   COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) orders
            FROM sales WHERE sales_channel = 'Draft Orders' AND {local_between(*LAST_MONTH)} GROUP BY 1""",
    )
    present = result.df.join(expected.select("day"), on="day", how="inner")
    assert present.height == expected.height
    missing = result.df.join(expected.select("day"), on="day", how="anti")
    assert (missing["orders"] == 0).all()
    assert_frames_match(result.df.join(expected.select("day"), on="day", how="semi"), expected, keys=["day"])


def test_group_by_hour_of_day_and_day_of_week(store):
    result = store.query("FROM sales SHOW orders GROUP BY day_of_week, hour_of_day DURING last_year")
    expected = hand(
        store,
        f"""SELECT isodow({LOCAL}) - 1 AS day_of_week, hour({LOCAL}) AS hour_of_day,
                   COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) orders
            FROM sales WHERE {local_between(*LAST_YEAR)} GROUP BY 1, 2""",
    )
    assert_frames_match(result.df, expected, keys=["day_of_week", "hour_of_day"])


def test_timeseries_cyclical_fills_every_value(store):
    result = store.query("FROM sales SHOW orders WHERE sales_channel = 'Draft Orders' TIMESERIES hour_of_day DURING yesterday")
    assert result.df["hour_of_day"].to_list() == list(range(24))


# ---------------------------------------------------------------------------------------------
# HAVING, ORDER BY, LIMIT
# ---------------------------------------------------------------------------------------------


def test_having_filters_after_aggregation(store):
    result = store.query("FROM sales SHOW net_sales, orders GROUP BY billing_region HAVING orders >= 100 DURING last_year")
    expected = hand(
        store,
        f"""SELECT billing_region, SUM(net_sales) net_sales,
                   COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) orders
            FROM sales WHERE {local_between(*LAST_YEAR)} GROUP BY 1 HAVING orders >= 100""",
    )
    assert_frames_match(result.df, expected, keys=["billing_region"])


def test_order_by_several_keys_and_limit_offset(store):
    result = store.query(
        "FROM sales SHOW orders GROUP BY sales_channel, billing_country ORDER BY sales_channel ASC, orders DESC LIMIT 5 OFFSET 2 DURING last_year"
    )
    expected = hand(
        store,
        f"""SELECT sales_channel, billing_country,
                   COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) orders
            FROM sales WHERE {local_between(*LAST_YEAR)} GROUP BY 1, 2
            ORDER BY sales_channel ASC, orders DESC, billing_country ASC LIMIT 5 OFFSET 2""",
    )
    assert result.df.select("sales_channel", "billing_country", "orders").rows() == expected.rows()
    assert result.total_rows > 5


def test_default_limit_is_1000(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY order_name DURING last_year")
    assert result.df.height == 1000
    expected = hand(store, f"SELECT COUNT(DISTINCT order_name) n FROM sales WHERE {local_between(*LAST_YEAR)}")
    assert result.total_rows == expected["n"][0]
    assert result.truncated


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


def period_total(store, start: str, end: str) -> float:
    return float(hand(store, f"SELECT SUM(net_sales) v FROM sales WHERE {local_between(start, end)}")["v"][0])


def test_since_until_absolute_dates(store):
    result = store.query("FROM sales SHOW net_sales SINCE 2024-03-01 UNTIL 2024-03-31")
    assert float(result.df["net_sales"][0]) == pytest.approx(period_total(store, "2024-03-01", "2024-04-01"))


def test_since_offset_months(store):
    # SINCE -3m starts on the first day of the month three months ago and runs to now.
    result = store.query("FROM sales SHOW net_sales SINCE -3m")
    assert float(result.df["net_sales"][0]) == pytest.approx(period_total(store, "2025-09-01", "2025-12-15 14:00:00.000001"))


def test_since_until_offsets_days(store):
    result = store.query("FROM sales SHOW net_sales SINCE -7d UNTIL -1d")
    assert float(result.df["net_sales"][0]) == pytest.approx(period_total(store, "2025-12-08", "2025-12-15"))


def test_during_named_ranges(store):
    cases = {
        "last_month": LAST_MONTH,
        "last_quarter": LAST_QUARTER,
        "last_year": LAST_YEAR,
        "yesterday": ("2025-12-14", "2025-12-15"),
        "last_week": ("2025-12-08", "2025-12-15"),
        "bfcm2024": ("2024-11-29", "2024-12-03"),
    }
    for name, (start, end) in cases.items():
        result = store.query(f"FROM sales SHOW net_sales DURING {name}")
        assert float(result.df["net_sales"][0]) == pytest.approx(period_total(store, start, end)), name


def test_date_functions(store):
    result = store.query("FROM sales SHOW net_sales SINCE startOfMonth(-2m) UNTIL endOfMonth(-1m)")
    assert float(result.df["net_sales"][0]) == pytest.approx(period_total(store, "2025-10-01", "2025-12-01"))


def test_with_timezone_changes_bucketing(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY day DURING last_month WITH TIMEZONE 'UTC'")
    expected = hand(
        store,
        """SELECT CAST(date_trunc('day', timezone('UTC', happened_at)) AS DATE) AS day, SUM(net_sales) net_sales
           FROM sales WHERE timezone('UTC', happened_at) >= TIMESTAMP '2025-11-01'
             AND timezone('UTC', happened_at) < TIMESTAMP '2025-12-01' GROUP BY 1""",
    )
    assert_frames_match(result.df, expected, keys=["day"])


# ---------------------------------------------------------------------------------------------
# COMPARE TO and WITH modifiers
# ---------------------------------------------------------------------------------------------


def test_compare_to_previous_year_by_month(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY month DURING last_year COMPARE TO previous_year")
    expected = hand(
        store,
        f"""SELECT CAST(date_trunc('month', {LOCAL}) + INTERVAL 1 YEAR AS DATE) AS month,
                   SUM(net_sales) AS comparison_net_sales__previous_year
            FROM sales WHERE {local_between(*YEAR_BEFORE_LAST)} GROUP BY 1""",
    )
    assert result.df.height == 12
    assert_frames_match(result.df.select("month", "comparison_net_sales__previous_year"), expected, keys=["month"])


def test_compare_to_previous_period_with_percent_change(store):
    result = store.query(
        "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month COMPARE TO previous_period WITH PERCENT_CHANGE"
    )
    previous = hand(
        store,
        f"""SELECT sales_channel, SUM(net_sales) p FROM sales
            WHERE {local_between('2025-10-01', '2025-11-01')} GROUP BY 1""",
    )
    previous_by_channel = dict(previous.iter_rows())
    for row in result.df.iter_rows(named=True):
        compared = float(previous_by_channel[row["sales_channel"]])
        assert float(row["comparison_net_sales__previous_period"]) == pytest.approx(compared)
        assert row["percent_change_net_sales__previous_period"] == pytest.approx(
            (float(row["net_sales"]) - compared) / abs(compared)
        )


def test_compare_to_several_targets_with_explicit_dates(store):
    result = store.query(
        "FROM sales SHOW net_sales DURING last_month COMPARE TO previous_year, 2024-01-01 UNTIL 2024-01-31"
    )
    row = result.df.row(0, named=True)
    assert float(row["comparison_net_sales__previous_year"]) == pytest.approx(period_total(store, "2024-11-01", "2024-12-01"))
    january = [c for c in result.df.columns if c.startswith("comparison_net_sales__20240101")]
    assert len(january) == 1
    assert float(row[january[0]]) == pytest.approx(period_total(store, "2024-01-01", "2024-02-01"))


def test_with_totals_repeats_grand_totals(store):
    result = store.query(
        "FROM sales SHOW net_sales, orders, average_order_value GROUP BY billing_region WITH TOTALS DURING last_year"
    )
    expected = hand(
        store,
        f"""SELECT SUM(net_sales) n, COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) o,
                   SUM(gross_sales + discounts) FILTER (WHERE event_type = 'order') /
                   COUNT(DISTINCT CASE WHEN event_type = 'order' THEN order_id END) aov
            FROM sales WHERE {local_between(*LAST_YEAR)}""",
    )
    assert result.df["net_sales__totals"].n_unique() == 1
    assert result.df["net_sales__totals"][0] == expected["n"][0]
    assert result.df["orders__totals"][0] == expected["o"][0]
    assert float(result.df["average_order_value__totals"][0]) == pytest.approx(float(expected["aov"][0]))


def test_with_group_totals(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY sales_channel, month WITH GROUP_TOTALS DURING last_quarter")
    expected = hand(
        store,
        f"SELECT sales_channel, SUM(net_sales) t FROM sales WHERE {local_between(*LAST_QUARTER)} GROUP BY 1",
    )
    totals = dict(expected.iter_rows())
    for row in result.df.iter_rows(named=True):
        assert row["net_sales__sales_channel_totals"] == totals[row["sales_channel"]]


def test_with_cumulative_values(store):
    result = store.query("FROM sales SHOW net_sales TIMESERIES month DURING last_year WITH CUMULATIVE_VALUES")
    expected = hand(
        store,
        f"""SELECT "month", SUM(v) OVER (ORDER BY "month") AS running FROM (
              SELECT CAST(date_trunc('month', {LOCAL}) AS DATE) AS "month", SUM(net_sales) v
              FROM sales WHERE {local_between(*LAST_YEAR)} GROUP BY 1)""",
    )
    assert_frames_match(
        result.df.select("month", pl.col("net_sales__cumulative").alias("running")), expected, keys=["month"]
    )


def test_with_currency_of_the_store_is_accepted(store):
    result = store.query("FROM sales SHOW net_sales DURING last_month WITH CURRENCY 'USD'")
    assert float(result.df["net_sales"][0]) == pytest.approx(period_total(store, *LAST_MONTH))


def test_top_with_comparison_folds_the_same_values_in_both_periods(store):
    result = store.query(
        "FROM sales SHOW net_sales, orders GROUP BY TOP 3 product_type DURING last_month COMPARE TO previous_period"
    )
    october = hand(
        store,
        f"""SELECT p.product_type, SUM(s.net_sales) v FROM sales s LEFT JOIN products p USING (product_id)
            WHERE {local_between('2025-10-01', '2025-11-01', column='s.happened_at')} GROUP BY 1""",
    )
    by_type = {t: float(v) for t, v in october.iter_rows()}
    top = [t for t in result.df["product_type"].to_list() if t != "Other"]
    assert len(top) == 3
    for row in result.df.iter_rows(named=True):
        expected = (
            sum(v for t, v in by_type.items() if t not in top)
            if row["product_type"] == "Other"
            else by_type.get(row["product_type"], 0.0)
        )
        assert float(row["comparison_net_sales__previous_period"]) == pytest.approx(expected, abs=0.01)
    # orders is a distinct count, so its Other row is recounted from raw rows, not summed.
    other_orders = hand(
        store,
        f"""SELECT COUNT(DISTINCT s.order_id) o FROM sales s LEFT JOIN products p USING (product_id)
            WHERE s.event_type = 'order' AND {local_between(*LAST_MONTH, column='s.happened_at')}
              AND p.product_type IS DISTINCT FROM '{top[0]}' AND p.product_type IS DISTINCT FROM '{top[1]}'
              AND p.product_type IS DISTINCT FROM '{top[2]}'""",
    )
    other = result.df.filter(pl.col("product_type") == "Other")
    assert other["orders"][0] == other_orders["o"][0]


def test_top_of_additive_metrics_takes_the_single_scan_path_and_agrees(store):
    # Only additive metrics: the compiler ranks and folds pre-aggregated rows (one scan per period).
    single = store.query("FROM sales SHOW net_sales GROUP BY TOP 3 product_type DURING last_month COMPARE TO previous_period")
    assert "agg_pre_0" in single.sql
    mixed = store.query("FROM sales SHOW net_sales, orders GROUP BY TOP 3 product_type DURING last_month COMPARE TO previous_period")
    assert "agg_pre_0" not in mixed.sql
    columns = ["product_type", "net_sales", "comparison_net_sales__previous_period"]
    assert single.df.select(columns).rows() == mixed.df.select(columns).rows()


def test_top_per_month_with_comparison_aligns_months(store):
    result = store.query(
        "FROM sales SHOW net_sales GROUP BY month, ONLY TOP 2 sales_channel DURING last_quarter COMPARE TO previous_year"
    )
    last_year = hand(
        store,
        f"""SELECT CAST(date_trunc('month', {LOCAL}) + INTERVAL 1 YEAR AS DATE) AS "month", sales_channel, SUM(net_sales) v
            FROM sales WHERE {local_between('2024-07-01', '2024-10-01')} GROUP BY 1, 2""",
    )
    expected = {(m, c): float(v) for m, c, v in last_year.iter_rows()}
    assert result.df.height == 6
    for row in result.df.iter_rows(named=True):
        assert float(row["comparison_net_sales__previous_year"]) == pytest.approx(
            expected.get((row["month"], row["sales_channel"]), 0.0), abs=0.01
        )


def test_top_with_a_where_on_a_joined_dimension(store):
    # Regression: the ranking CTE must join what the WHERE clause needs (companies here).
    result = store.query(
        "FROM sales SHOW orders GROUP BY ONLY TOP 3 product_type WHERE company_tier = 'Enterprise' DURING last_year"
    )
    expected = hand(
        store,
        f"""SELECT p.product_type, COUNT(DISTINCT s.order_id) FILTER (WHERE s.event_type = 'order') AS orders
            FROM sales s LEFT JOIN products p USING (product_id) LEFT JOIN companies c USING (company_id)
            WHERE c.tier = 'Enterprise' AND {local_between(*LAST_YEAR, column='s.happened_at')}
            GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3""",
    )
    assert result.df.rows() == expected.rows()
