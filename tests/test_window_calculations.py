"""Beyond ShopifyQL: window columns, ad-hoc aggregates and computed dimensions (commerceql.calculations).

Every figure is checked against Polars over the store's raw Parquet files (tests/rawdata.py),
written without the compiler: rolling sums and averages over a zero-filled calendar that starts
before the reporting period, running and period-to-date totals, ranks within a group, distinct
counts, medians and percentiles, order-size bands and months of a date dimension. Misuse gets a
positioned error with a hint; the new forms round-trip through the formatter; golden SQL for one
query per feature on each engine; SPARK_QUERIES run on both engines (tests/engine_corpus.py).
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.compiler import compile_plan, inline_parameters
from commerceql.completion import complete
from commerceql.dialect import DIALECTS
from commerceql.errors import CommerceQLError
from commerceql.formatter import format_query
from commerceql.model import builtin_model
from commerceql.parser import parse
from commerceql.resolver import resolve

TZ = "America/New_York"

SPARK_QUERIES = [
    "FROM sales SHOW net_sales, rolling_avg(net_sales, 7), rolling_sum(quantity_ordered, 3) TIMESERIES day "
    "SINCE 2025-03-01 UNTIL 2025-03-31",
    "FROM sales SHOW net_sales, rolling_sum(net_sales, 4) AS four_weeks GROUP BY sales_channel TIMESERIES week "
    "SINCE 2025-01-06 UNTIL 2025-03-30",
    "FROM sales SHOW net_sales, mtd(net_sales), ytd(net_sales), running_total(net_sales) TIMESERIES day "
    "SINCE 2025-02-20 UNTIL 2025-03-10",
    "FROM sales SHOW net_sales, qtd(net_sales) GROUP BY month SINCE 2025-02-01 UNTIL 2025-07-31",
    "FROM sales SHOW net_sales, rank(net_sales) GROUP BY sales_channel, billing_region DURING last_year",
    "FROM orders SHOW orders, count_distinct(company_id), median(days_past_due), percentile(days_past_due, 0.9), "
    "min(customer_order_number), max(customer_order_number), avg(customer_order_number) "
    "GROUP BY sales_channel DURING last_year WITH TOTALS",
    "FROM orders SHOW orders, median(order_total), percentile(order_total, 0.25) AS p25 DURING last_quarter",
    "FROM orders SHOW orders, net_order_total GROUP BY bucket(order_total, 0, 100, 250, 1000) AS order_size "
    "DURING last_year",
    "FROM customers SHOW customers GROUP BY month(customer_first_order_date) SINCE 2024-01-01 UNTIL 2024-12-31",
]


@pytest.fixture(scope="module")
def store(sample_store_path: Path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def local_day(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone(TZ).dt.date()


def days(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]


def daily(path: Path, column: str, start: dt.date, end: dt.date, by: list[str] | None = None) -> pl.DataFrame:
    """Raw sales summed per local day (and `by`) between two dates, every calendar day present."""
    sales = raw(path, "sales").with_columns(local_day("happened_at").alias("day"))
    sales = sales.filter(pl.col("day").is_between(start, end))
    keys = ["day", *(by or [])]
    summed = sales.group_by(keys).agg(pl.col(column).sum().cast(pl.Float64).alias("value"))
    calendar = pl.DataFrame({"day": days(start, end)})
    if by:
        calendar = calendar.join(sales.select(by).unique(), how="cross")
    return calendar.join(summed, on=keys, how="left").with_columns(pl.col("value").fill_null(0.0)).sort(keys)


def as_float(value: object) -> float:
    return float(value) if isinstance(value, (Decimal, int, float)) else float("nan")


# ---- rolling windows ---------------------------------------------------------------------------------


def test_rolling_average_and_sum_read_the_days_before_the_period(store, sample_store_path):
    result = store.query(
        "FROM sales SHOW net_sales, rolling_avg(net_sales, 7), rolling_sum(quantity_ordered, 3) TIMESERIES day "
        "SINCE 2025-03-01 UNTIL 2025-03-31"
    )
    start, end = dt.date(2025, 3, 1), dt.date(2025, 3, 31)
    sales = daily(sample_store_path, "net_sales", start - dt.timedelta(days=6), end)
    sales = sales.with_columns((pl.col("value").rolling_sum(7) / 7).alias("avg7"))
    orders = raw(sample_store_path, "sales").filter(pl.col("event_type") == "order")
    orders = orders.with_columns(local_day("happened_at").alias("day")).group_by("day").agg(
        pl.col("quantity").sum().alias("orders"))
    calendar = pl.DataFrame({"day": days(start - dt.timedelta(days=2), end)})
    orders = calendar.join(orders, on="day", how="left").with_columns(pl.col("orders").fill_null(0)).sort("day")
    orders = orders.with_columns(pl.col("orders").rolling_sum(3).alias("sum3"))
    want_avg = dict(sales.filter(pl.col("day") >= start).select("day", "avg7").iter_rows())
    want_sum = dict(orders.filter(pl.col("day") >= start).select("day", "sum3").iter_rows())
    got = result.df
    assert got["day"].to_list() == days(start, end)
    assert got.columns == ["day", "net_sales", "rolling_avg_net_sales_7", "rolling_sum_quantity_ordered_3"]
    for day, _, average, total in got.iter_rows():
        assert average == pytest.approx(want_avg[day], abs=0.005)
        assert as_float(total) == want_sum[day]


def test_rolling_sum_per_group_counts_weeks_without_sales_as_zero(store, sample_store_path):
    result = store.query(
        "FROM sales SHOW net_sales, rolling_sum(net_sales, 4) AS four_weeks GROUP BY sales_channel TIMESERIES week "
        "SINCE 2025-01-06 UNTIL 2025-03-30"
    )
    sales = raw(sample_store_path, "sales").with_columns(local_day("happened_at").alias("day"))
    sales = sales.with_columns(pl.col("day").dt.truncate("1w").alias("week"))
    first = dt.date(2025, 1, 6) - dt.timedelta(weeks=3)
    sales = sales.filter(pl.col("day").is_between(first, dt.date(2025, 3, 30)))
    weekly = sales.group_by("week", "sales_channel").agg(pl.col("net_sales").sum().cast(pl.Float64).alias("v"))
    weeks = [first + dt.timedelta(weeks=i) for i in range(15)]
    grid = pl.DataFrame({"week": weeks}).join(weekly.select("sales_channel").unique(), how="cross")
    grid = grid.join(weekly, on=["week", "sales_channel"], how="left").with_columns(pl.col("v").fill_null(0.0))
    grid = grid.sort("sales_channel", "week").with_columns(
        pl.col("v").rolling_sum(4).over("sales_channel").alias("four"))
    want = {(w, c): f for w, c, f in grid.select("week", "sales_channel", "four").iter_rows()}
    assert result.df.height == 12 * weekly["sales_channel"].n_unique()
    for week, channel, _, four in result.df.iter_rows():
        assert as_float(four) == pytest.approx(want[(week, channel)], abs=0.005)


# ---- running and period-to-date totals -------------------------------------------------------------


def test_running_month_to_date_and_year_to_date_totals(store, sample_store_path):
    result = store.query(
        "FROM sales SHOW net_sales, mtd(net_sales), ytd(net_sales), running_total(net_sales) TIMESERIES day "
        "SINCE 2025-02-20 UNTIL 2025-03-10"
    )
    start, end = dt.date(2025, 2, 20), dt.date(2025, 3, 10)
    sales = daily(sample_store_path, "net_sales", dt.date(2025, 1, 1), end)
    rows = {d: v for d, v in sales.iter_rows()}
    for day, _, mtd, ytd, running in result.df.iter_rows():
        assert as_float(mtd) == pytest.approx(sum(v for d, v in rows.items() if d.replace(day=1) <= d <= day
                                                  and d.month == day.month), abs=0.005)
        assert as_float(ytd) == pytest.approx(sum(v for d, v in rows.items() if d <= day), abs=0.005)
        assert as_float(running) == pytest.approx(sum(v for d, v in rows.items() if start <= d <= day), abs=0.005)
    assert result.df["day"].to_list() == days(start, end)


def test_quarter_to_date_by_month_resets_each_quarter(store, sample_store_path):
    result = store.query("FROM sales SHOW net_sales, qtd(net_sales) GROUP BY month SINCE 2025-02-01 UNTIL 2025-07-31")
    sales = daily(sample_store_path, "net_sales", dt.date(2025, 1, 1), dt.date(2025, 7, 31))
    monthly = sales.group_by(pl.col("day").dt.truncate("1mo").alias("month")).agg(pl.col("value").sum()).sort("month")
    totals = dict(monthly.iter_rows())
    for month, _, qtd in result.df.iter_rows():
        quarter_start = month.replace(month=(month.month - 1) // 3 * 3 + 1)
        assert as_float(qtd) == pytest.approx(sum(v for m, v in totals.items() if quarter_start <= m <= month), abs=0.005)
    assert [m.month for m in result.df["month"]] == [2, 3, 4, 5, 6, 7]


# ---- rank ------------------------------------------------------------------------------------------------


def test_rank_within_each_value_of_the_outer_dimension(store, sample_store_path):
    result = store.query(
        "FROM sales SHOW net_sales, rank(net_sales) GROUP BY sales_channel, billing_region "
        "SINCE 2025-01-01 UNTIL 2025-06-30"
    )
    sales = raw(sample_store_path, "sales").with_columns(local_day("happened_at").alias("day"))
    sales = sales.filter(pl.col("day").is_between(dt.date(2025, 1, 1), dt.date(2025, 6, 30)))
    summed = sales.group_by("sales_channel", "billing_region").agg(pl.col("net_sales").sum().alias("v"))
    summed = summed.with_columns(pl.col("v").rank(method="min", descending=True).over("sales_channel").alias("r"))
    want = {(c, r): rank for c, r, _, rank in summed.iter_rows()}
    got = result.df
    assert got.height == summed.height
    for channel, region, _, rank in got.iter_rows():
        assert rank == want[(channel, region)]
    # Read group by group, best first.
    for _, group in got.group_by("sales_channel", maintain_order=True):
        assert group["rank_net_sales"].to_list() == sorted(group["rank_net_sales"].to_list())
    assert got["rank_net_sales"].min() == 1


def test_rank_over_one_dimension_ranks_all_rows_and_having_keeps_the_top(store, sample_store_path):
    result = store.query("FROM sales SHOW net_sales, rank(net_sales) AS position GROUP BY billing_region "
                         "HAVING position <= 3 DURING last_year")
    sales = raw(sample_store_path, "sales").with_columns(local_day("happened_at").alias("day"))
    sales = sales.filter(pl.col("day").dt.year() == 2024)
    top = sales.group_by("billing_region").agg(pl.col("net_sales").sum()).sort("net_sales", descending=True).head(3)
    assert result.df["billing_region"].to_list() == top["billing_region"].to_list()
    assert result.df["position"].to_list() == [1, 2, 3]


# ---- ad-hoc aggregates --------------------------------------------------------------------------------


def orders_of(path: Path, start: dt.date, end: dt.date) -> pl.DataFrame:
    orders = raw(path, "orders").with_columns(local_day("created_at").alias("day"))
    return orders.filter(pl.col("day").is_between(start, end) & ~pl.col("is_test"))


def test_distinct_counts_medians_percentiles_and_extremes_of_a_dimension(store, sample_store_path):
    result = store.query(
        "FROM orders SHOW orders, count_distinct(company_id), median(days_past_due), percentile(days_past_due, 0.9), "
        "min(customer_order_number), max(customer_order_number), avg(customer_order_number) "
        "GROUP BY sales_channel DURING last_year WITH TOTALS"
    )
    orders = orders_of(sample_store_path, dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    want = orders.group_by("sales_channel").agg(
        pl.len().alias("orders"),
        pl.col("company_id").drop_nulls().n_unique().alias("companies"),
        pl.col("days_past_due").cast(pl.Float64).median().alias("median"),
        pl.col("days_past_due").cast(pl.Float64).quantile(0.9, interpolation="linear").alias("p90"),
        pl.col("customer_order_number").min().alias("min"),
        pl.col("customer_order_number").max().alias("max"),
        pl.col("customer_order_number").cast(pl.Float64).mean().alias("avg"),
    )
    expected = {row[0]: row[1:] for row in want.iter_rows()}
    got = result.df
    assert got.columns[:8] == ["sales_channel", "orders", "count_distinct_company_id", "median_days_past_due",
                               "p90_days_past_due", "min_customer_order_number", "max_customer_order_number",
                               "avg_customer_order_number"]
    for row in got.select(got.columns[:8]).iter_rows():
        channel, *values = row
        for value, wanted in zip(values, expected[channel], strict=True):
            if wanted is None:
                assert value is None
            else:
                assert as_float(value) == pytest.approx(float(wanted), rel=1e-9)
    # The totals row is over all the orders, not a sum of the channels' medians.
    assert got["count_distinct_company_id__totals"][0] == orders["company_id"].drop_nulls().n_unique()
    assert got["median_days_past_due__totals"][0] == pytest.approx(
        orders["days_past_due"].cast(pl.Float64).median())


def order_totals(path: Path, start: dt.date, end: dt.date) -> pl.DataFrame:
    orders = orders_of(path, start, end)
    return orders.with_columns((pl.col("subtotal") + pl.col("shipping") + pl.col("taxes")).cast(pl.Float64)
                               .alias("total"))


def test_median_and_percentile_of_the_order_total_are_over_orders(store, sample_store_path):
    result = store.query("FROM orders SHOW orders, median(order_total), percentile(order_total, 0.25) AS p25 "
                         "DURING last_quarter")
    orders = order_totals(sample_store_path, dt.date(2025, 7, 1), dt.date(2025, 9, 30))
    row = result.df.row(0, named=True)
    assert row["orders"] == orders.height
    assert row["median_order_total"] == pytest.approx(orders["total"].median(), abs=1e-6)
    assert row["p25"] == pytest.approx(orders["total"].quantile(0.25, interpolation="linear"), abs=1e-6)


# ---- computed dimensions ------------------------------------------------------------------------------


def test_order_size_bands_are_ordered_by_band(store, sample_store_path):
    result = store.query("FROM orders SHOW orders, net_order_total GROUP BY bucket(order_total, 0, 100, 250, 1000) "
                         "AS order_size DURING last_year")
    orders = order_totals(sample_store_path, dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    labels = ["0–100", "100–250", "250–1000", "1000+"]
    band = (pl.when(pl.col("total") < 0).then(pl.lit("under 0"))
            .when(pl.col("total") < 100).then(pl.lit(labels[0]))
            .when(pl.col("total") < 250).then(pl.lit(labels[1]))
            .when(pl.col("total") < 1000).then(pl.lit(labels[2]))
            .otherwise(pl.lit(labels[3])))
    counts = dict(orders.group_by(band.alias("band")).agg(pl.len()).iter_rows())
    assert result.df["order_size"].to_list() == [b for b in labels if b in counts]
    assert dict(zip(result.df["order_size"], result.df["orders"], strict=True)) == counts


def test_month_of_a_date_dimension(store, sample_store_path):
    result = store.query("FROM customers SHOW customers GROUP BY month(customer_first_order_date) "
                         "SINCE 2024-01-01 UNTIL 2024-12-31")
    customers = raw(sample_store_path, "customers").with_columns(local_day("created_at").alias("created"))
    customers = customers.filter(pl.col("created").dt.year() == 2024)
    months = customers.group_by(local_day("first_order_at").dt.truncate("1mo").alias("month")).agg(pl.len())
    want = dict(months.iter_rows())
    got = dict(zip(result.df["customer_first_order_date_month"], result.df["customers"], strict=True))
    assert got == want


# ---- misuse ---------------------------------------------------------------------------------------------

ERRORS = [
    ("FROM sales SHOW rolling_avg(net_sales, 7) GROUP BY month", "runs over the periods of a TIMESERIES",
     "add `TIMESERIES day`", 17),
    ("FROM sales SHOW ytd(net_sales) TIMESERIES year", "accumulates within each year", "`TIMESERIES day`", 17),
    ("FROM sales SHOW rolling_sum(net_sales, 0) TIMESERIES day", "a whole number of periods", "7 periods", 40),
    ("FROM sales SHOW rolling_avg(average_order_value, 7) TIMESERIES day", "not a sum of its periods",
     "a sum of its periods, such as net_sales", 29),
    ("FROM sales SHOW net_sales, rolling_sum(net_sales, 3) TIMESERIES day COMPARE TO previous_year",
     "has no comparison period", "remove COMPARE TO", 28),
    ("FROM sales SHOW net_sales + rank(net_sales) AS x", "a column of its own", "as a separate column", 29),
    ("FROM sales SHOW mtd(net_sales) GROUP BY month, TOP 3 product_title TIMESERIES day",
     None, None, None),
    ("FROM orders SHOW percentile(days_past_due, 1.5)", "a fraction from 0 to 1", "0.9", 44),
    ("FROM orders SHOW avg(billing_city)", "needs a numeric dimension, and `billing_city` is a string dimension",
     "count_distinct(billing_city)", 22),
    ("FROM orders SHOW median(customer_id)", "is an identifier", "count_distinct(customer_id)", 25),
    ("FROM orders SHOW orders GROUP BY bucket(days_past_due, 0, 30, 10)", "bounds must increase: 10 comes after 30",
     "lowest to the highest", 63),
    ("FROM orders SHOW orders GROUP BY bucket(billing_city, 0, 10)", "bands numbers", "group by the dimension", 41),
    ("FROM orders SHOW orders GROUP BY month(billing_city)", "takes a date dimension", None, 40),
    ("FROM orders SHOW orders GROUP BY bukcet(order_total, 0, 10)", "not a GROUP BY function", "`bucket`", 34),
    ("FROM orders SHOW count_distinct(order_totl)", "unknown dimension `order_totl`", None, 33),
]


@pytest.mark.parametrize(("query", "message", "hint", "column"), ERRORS, ids=[e[0][:60] for e in ERRORS])
def test_misuse_is_a_positioned_error_with_a_hint(store, query, message, hint, column):
    with pytest.raises(CommerceQLError) as raised:
        store.query(query)
    error = raised.value
    assert error.hint, error.render()
    if message is not None:
        assert message in error.message, error.render()
    if hint is not None:
        assert hint in error.hint, error.render()
    if column is not None:
        assert (error.line, error.column) == (1, column), error.render()
    assert "^" in error.render()


def test_top_with_a_running_total_is_refused_at_the_function(store):
    with pytest.raises(CommerceQLError) as raised:
        store.query("FROM sales SHOW mtd(net_sales) GROUP BY TOP 3 product_title TIMESERIES day")
    assert "TOP folds values into `Other`" in raised.value.message
    assert raised.value.column == 17


# ---- the text forms ---------------------------------------------------------------------------------------

FORMS = [
    "FROM sales SHOW rolling_avg(net_sales, 7) AS weekly, ytd(net_sales) TIMESERIES day",
    "FROM orders SHOW median(order_total), percentile(days_past_due, 0.9) AS p90 GROUP BY bucket(order_total, 0, "
    "100, 250) AS order_size, month(paid_date)",
    "FROM sales SHOW net_sales, rank(net_sales) GROUP BY sales_channel, bucket(product_variant_price, -5, 0.5, 10)",
]


@pytest.mark.parametrize("query", FORMS)
def test_the_formatter_round_trips_the_new_forms(query):
    tree = parse(query)
    text = format_query(tree)
    assert parse(text) == tree
    assert format_query(parse(text)) == text


def test_completion_offers_the_functions_in_show_and_bucket_in_group_by():
    model = builtin_model()
    show = complete("FROM sales SHOW net_sales, ", 27, model)
    assert {"rolling_avg", "ytd", "rank", "count_distinct", "percentile"} <= set(show.matches)
    group = complete("FROM sales SHOW net_sales GROUP BY ", 35, model)
    assert "bucket" in group.matches


# ---- golden SQL: one query per feature, each engine -----------------------------------------------------

GOLDEN = Path(__file__).parent / "golden"
NOW = dt.datetime(2025, 12, 15, 14, 0, tzinfo=ZoneInfo("America/New_York"))
GOLDEN_QUERIES = {
    "window_rolling": "FROM sales SHOW net_sales, rolling_avg(net_sales, 7) GROUP BY sales_channel TIMESERIES day "
    "DURING last_month",
    "window_period_to_date": "FROM sales SHOW net_sales, ytd(net_sales) TIMESERIES month DURING last_quarter",
    "window_rank": "FROM sales SHOW net_sales, rank(net_sales) GROUP BY sales_channel, billing_region "
    "DURING last_year",
    "window_aggregates": "FROM orders SHOW count_distinct(company_id), median(order_total), "
    "percentile(days_past_due, 0.9) GROUP BY sales_channel DURING last_year",
    "window_buckets": "FROM orders SHOW orders GROUP BY bucket(order_total, 0, 100, 250, 1000), month(paid_date) "
    "DURING last_quarter",
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("name", sorted(GOLDEN_QUERIES))
def test_golden_sql(name: str, dialect: str) -> None:
    """As tests/test_golden_sql.py: COMMERCEQL_UPDATE_GOLDEN=1 rewrites the files, to review."""
    query = GOLDEN_QUERIES[name]
    plan = resolve(parse(query), builtin_model(), now=NOW, timezone="America/New_York", currency="USD")
    compiled = compile_plan(plan, DIALECTS[dialect])
    sql = inline_parameters(compiled.sql, compiled.parameters, DIALECTS[dialect])
    text = f"-- {query}\n" + sql.rstrip() + ";\n"
    path = GOLDEN / f"{name}.sql" if dialect == "duckdb" else GOLDEN / dialect / f"{name}.sql"
    if os.environ.get("COMMERCEQL_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") == "true" and not path.exists():
            pytest.fail(f"golden file {path.name} is missing; generate it locally and commit it")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"compiled SQL of {name} changed; review the golden file"


@pytest.mark.parametrize("query", SPARK_QUERIES)
def test_the_spark_queries_run_on_duckdb(store, query):
    result = store.query(query)
    assert result.df.height > 0


def test_show_lists_a_computed_dimension_by_its_name(store):
    listed = store.query("FROM orders SHOW order_size, orders GROUP BY bucket(order_total, 0, 100, 250) AS order_size "
                         "DURING last_month")
    plain = store.query("FROM orders SHOW orders GROUP BY bucket(order_total, 0, 100, 250) AS order_size "
                        "DURING last_month")
    assert listed.df.equals(plain.df)
    assert listed.df["order_size"].to_list() == ["0–100", "100–250", "250+"]


def test_the_rows_before_the_period_are_filtered_like_the_period(store, sample_store_path):
    result = store.query("FROM sales SHOW rolling_sum(net_sales, 5) AS five_days WHERE sales_channel = 'Wholesale' "
                         "TIMESERIES day SINCE 2025-06-01 UNTIL 2025-06-07")
    sales = raw(sample_store_path, "sales").filter(pl.col("sales_channel") == "Wholesale")
    sales = sales.with_columns(local_day("happened_at").alias("day"))
    per_day = dict(sales.group_by("day").agg(pl.col("net_sales").sum().cast(pl.Float64)).iter_rows())
    for day, five in result.df.iter_rows():
        window = [day - dt.timedelta(days=i) for i in range(5)]
        assert as_float(five) == pytest.approx(sum(per_day.get(d, 0.0) for d in window), abs=0.005)


def test_with_currency_converts_the_days_before_the_period_too(store):
    # The rolling window's earlier days are converted at their own day's rate: a 3-day rolling sum
    # is the sum of the converted daily values (the period starts 2 days early to have them).
    result = store.query("FROM sales SHOW net_sales, rolling_sum(net_sales, 3) TIMESERIES day "
                         "SINCE 2025-03-01 UNTIL 2025-03-10 WITH CURRENCY 'EUR'")
    daily_eur = result.df["net_sales"].to_list()
    rolled = result.df["rolling_sum_net_sales_3"].to_list()
    for i in range(2, len(daily_eur)):
        assert rolled[i] == pytest.approx(sum(daily_eur[i - 2:i + 1]), abs=0.01)


def test_money_per_order_with_a_currency_is_refused(store):
    with pytest.raises(CommerceQLError) as raised:
        store.query("FROM orders SHOW median(order_total) WITH CURRENCY 'EUR'")
    assert "in the shop's currency" in raised.value.message
    assert raised.value.hint == "remove WITH CURRENCY for this query"
