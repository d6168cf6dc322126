"""Customer cohort tables (customer_cohorts_weekly / monthly / quarterly) against Polars over the raw files.

Every expected value is computed here from the definitions in docs/cohorts.md with Polars over the
store's Parquet files (orders, sales, customers): a customer's cohort is the local week (Monday),
month or quarter of their first counted order; the matrix has one row per customer and period k
from 0 to the clock's period; retention is customers who ordered in period k over the cohort's size.
Periods are computed from local calendar dates here (not with SQL date_trunc), so the test does not
share the relation's arithmetic.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
import yaml
from rawdata import raw

import commerceql as cql
from commerceql.errors import CommerceQLError
from commerceql.model.semantic import BUILTIN_TABLES_DIR, builtin_model

ROOT = Path(__file__).resolve().parents[1]
TABLES = {"weekly": "week", "monthly": "month", "quarterly": "quarter"}

SHOPIFY_QUERY = """FROM customer_cohorts_monthly
  SHOW customer_cohorts_monthly_customers, customer_cohorts_monthly_customers_in_cohort,
       customer_cohorts_monthly_customer_retention_rate
  WHERE customer_cohorts_monthly_periods_since_first_purchase BETWEEN -1 AND 11
  GROUP BY month, customer_cohorts_monthly_periods_since_first_purchase
  HAVING customer_cohorts_monthly_periods_since_first_purchase >= 0
  SINCE -12m UNTIL today
VISUALIZE customer_cohorts_monthly_customer_retention_rate TYPE retention_curve"""


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


# ---- the definitions, in Polars -------------------------------------------------------------------


def period_index(day: pl.Expr, grain: str) -> pl.Expr:
    """A running number of the week (Monday-based), month or quarter holding local date `day`."""
    if grain == "week":
        return (day.cast(pl.Int32) + 3) // 7  # 1970-01-01 was a Thursday: +3 puts Mondays on a multiple of 7
    months = day.dt.year().cast(pl.Int32) * 12 + day.dt.month().cast(pl.Int32) - 1
    return months if grain == "month" else months // 3


def period_start(day: pl.Expr, grain: str) -> pl.Expr:
    if grain == "week":
        return day - pl.duration(days=day.dt.weekday() - 1)  # Polars: Monday = 1
    if grain == "month":
        return day.dt.month_start()
    return pl.date(day.dt.year(), (day.dt.month() - 1) // 3 * 3 + 1, 1)


def python_index(day: dt.date, grain: str) -> int:
    return pl.select(period_index(pl.lit(day), grain)).item()


def counted_orders(path: Path, as_of: dt.datetime, tz: str) -> pl.DataFrame:
    """Orders as customer_facts counts them, with their local date."""
    return raw(path, "orders").filter(
        pl.col("customer_id").is_not_null() & ~pl.col("is_test").fill_null(False) & (pl.col("created_at") <= as_of)
    ).with_columns(day=pl.col("created_at").dt.convert_time_zone(tz).dt.date())


def first_periods(path: Path, grain: str, as_of: dt.datetime, tz: str) -> pl.DataFrame:
    """customer_id -> cohort (start date) and its period index."""
    orders = counted_orders(path, as_of, tz)
    return orders.group_by("customer_id").agg(first_day=pl.col("day").min()).with_columns(
        cohort=period_start(pl.col("first_day"), grain), cohort_index=period_index(pl.col("first_day"), grain)
    ).drop("first_day")


def expected_matrix(path: Path, grain: str, as_of: dt.datetime, tz: str) -> pl.DataFrame:
    """One row per cohort and period k: size, customers who ordered in k, net sales booked in k, LTV."""
    first = first_periods(path, grain, as_of, tz)
    current = python_index(as_of.astimezone(ZoneInfo(tz)).date(), grain)
    grid = (first.group_by("cohort", "cohort_index").agg(size=pl.len())
            .with_columns(k=pl.int_ranges(0, current - pl.col("cohort_index") + 1)).explode("k"))
    orders = counted_orders(path, as_of, tz).join(first, on="customer_id")
    active = (orders.with_columns(k=period_index(pl.col("day"), grain) - pl.col("cohort_index"))
              .group_by("cohort", "k").agg(active=pl.col("customer_id").n_unique()))
    sales = (raw(path, "sales").filter(pl.col("customer_id").is_not_null() & (pl.col("happened_at") <= as_of))
             .with_columns(day=pl.col("happened_at").dt.convert_time_zone(tz).dt.date())
             .join(first, on="customer_id")
             .with_columns(k=period_index(pl.col("day"), grain) - pl.col("cohort_index"))
             .group_by("cohort", "k").agg(net=pl.col("net_sales").cast(pl.Float64).sum()))
    matrix = (grid.join(active, on=["cohort", "k"], how="left").join(sales, on=["cohort", "k"], how="left")
              .with_columns(pl.col("active").fill_null(0), pl.col("net").fill_null(0.0))
              .sort("cohort", "k"))
    return matrix.with_columns(
        rate=pl.col("active") / pl.col("size"),
        ltv=pl.col("net").cum_sum().over("cohort", order_by="k") / pl.col("size"),
        k=pl.col("k").cast(pl.Int64),
    )


def cohort_query(table: str, extra: str = "", tz: str | None = None) -> str:
    t = f"customer_cohorts_{table}"
    modifier = f" WITH TIMEZONE '{tz}'" if tz else ""
    return (
        f"FROM {t} SHOW {t}_customers, {t}_customers_in_cohort, {t}_customer_retention_rate, {t}_net_sales, "
        f"{t}_net_sales_per_customer, {t}_cumulative_net_sales_per_customer, {t}_orders "
        f"GROUP BY {TABLES[table]}, {t}_periods_since_first_purchase {extra}{modifier} LIMIT 100000"
    )


def as_matrix(frame: pl.DataFrame, table: str) -> pl.DataFrame:
    t = f"customer_cohorts_{table}"
    return frame.select(
        cohort=pl.col(TABLES[table]), k=pl.col(f"{t}_periods_since_first_purchase").cast(pl.Int64),
        customers=f"{t}_customers", in_cohort=f"{t}_customers_in_cohort", rate=f"{t}_customer_retention_rate",
        net=pl.col(f"{t}_net_sales").cast(pl.Float64), net_per=f"{t}_net_sales_per_customer",
        ltv=f"{t}_cumulative_net_sales_per_customer", orders=pl.col(f"{t}_orders").cast(pl.Int64),
    )


def assert_close(got: pl.Series, want: pl.Series, what: str, tolerance: float = 1e-9) -> None:
    bad = [(a, b) for a, b in zip(got.to_list(), want.to_list(), strict=True)
           if not math.isclose(a, b, rel_tol=tolerance, abs_tol=0.005)]
    assert not bad, f"{what}: {bad[:5]}"


# ---- the matrix ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "tz", "clock"),
    [
        ("monthly", None, None),
        ("monthly", "Asia/Tokyo", None),
        ("weekly", "Asia/Tokyo", None),
        ("weekly", None, dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)),
        ("quarterly", "Asia/Tokyo", dt.datetime(2025, 3, 31, 16, tzinfo=dt.UTC)),
    ],
)
def test_retention_matrix_matches_the_order_history(store, sample_store_path, table, tz, clock):
    as_of = clock or store.now()
    zone = tz or store.timezone
    grain = TABLES[table]
    expected = expected_matrix(sample_store_path, grain, as_of, zone)
    got = as_matrix(store.query(cohort_query(table, tz=tz), now=clock).df, table)
    assert got.height == expected.height
    joined = expected.join(got, on=["cohort", "k"], how="full", coalesce=True, suffix="_got").sort("cohort", "k")
    assert joined.height == expected.height, "the same (cohort, period) cells"
    assert (joined["in_cohort"] == joined["size"]).all()
    assert (joined["customers"] == joined["active"]).all()
    assert_close(joined["rate_got"], joined["rate"], "retention")
    assert_close(joined["net_got"], joined["net"], "net sales")
    assert_close(joined["net_per"], joined["net"] / joined["size"], "net sales per customer")
    assert_close(joined["ltv_got"], joined["ltv"], "cumulative net sales per customer")
    # Orders in period k, from the raw orders.
    first = first_periods(sample_store_path, grain, as_of, zone)
    orders = (counted_orders(sample_store_path, as_of, zone).join(first, on="customer_id")
              .with_columns(k=(period_index(pl.col("day"), grain) - pl.col("cohort_index")).cast(pl.Int64))
              .group_by("cohort", "k").agg(n=pl.len()))
    with_orders = joined.join(orders, on=["cohort", "k"], how="left").with_columns(pl.col("n").fill_null(0))
    assert (with_orders["orders"] == with_orders["n"]).all()
    # No cohort starts after the clock's period, and the newest one has only period 0.
    current = period_start(pl.lit(as_of.astimezone(ZoneInfo(zone)).date()), grain)
    assert joined["cohort"].max() <= pl.select(current).item()


def test_every_sale_of_a_customer_lands_in_one_cell(store):
    got = store.query(cohort_query("monthly")).df["customer_cohorts_monthly_net_sales"]
    total = store.sql("SELECT SUM(net_sales) FROM sales WHERE customer_id IS NOT NULL AND happened_at <= $t",
                      {"t": store.now()})[0, 0]
    assert total and abs(float(total) - float(got.cast(pl.Float64).sum())) < 0.01


# ---- properties ---------------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(TABLES))
def test_cohort_sizes_are_the_first_time_customers_of_the_period(store, sample_store_path, table):
    """GROUP BY the grain alone: a cohort's customers (any period) are the customers who first ordered then."""
    t, grain = f"customer_cohorts_{table}", TABLES[table]
    got = store.query(f"FROM {t} SHOW {t}_customers, {t}_customers_in_cohort GROUP BY {grain} LIMIT 10000").df
    first = first_periods(sample_store_path, grain, store.now(), store.timezone)
    want = first.group_by("cohort").agg(n=pl.len()).sort("cohort")
    got = got.sort(grain)
    assert got[grain].to_list() == want["cohort"].to_list()
    assert got[f"{t}_customers_in_cohort"].to_list() == want["n"].to_list()
    assert got[f"{t}_customers"].to_list() == want["n"].to_list()  # everyone ordered in period 0
    assert want["n"].sum() == counted_orders(sample_store_path, store.now(), store.timezone)["customer_id"].n_unique()


def test_monthly_cohorts_are_the_customers_first_order_month(store):
    """The cohort table and customer_facts agree on which orders count."""
    facts = store.query(
        "FROM customers SHOW customers GROUP BY first_order_month WHERE number_of_orders > 0 LIMIT 1000").df
    cohorts = store.query(
        "FROM customer_cohorts_monthly SHOW customer_cohorts_monthly_customers_in_cohort GROUP BY cohort_start_date "
        "LIMIT 1000").df
    assert dict(facts.iter_rows()) == dict(cohorts.iter_rows())


@pytest.mark.parametrize("table", list(TABLES))
def test_period_zero_is_full_and_the_cohort_size_never_changes(store, table):
    t, grain = f"customer_cohorts_{table}", TABLES[table]
    df = store.query(cohort_query(table)).df
    k = f"{t}_periods_since_first_purchase"
    zero = df.filter(pl.col(k) == 0)
    assert zero.height == df[grain].n_unique()
    assert (zero[f"{t}_customer_retention_rate"] == 1.0).all()
    assert (zero[f"{t}_customers"] == zero[f"{t}_customers_in_cohort"]).all()
    per_cohort = df.group_by(grain).agg(
        sizes=pl.col(f"{t}_customers_in_cohort").n_unique(), periods=pl.len(), low=pl.col(k).min(),
        high=pl.col(k).max(), rate=pl.col(f"{t}_customer_retention_rate").max())
    assert (per_cohort["sizes"] == 1).all()  # the same denominator at every period reached
    assert (per_cohort["low"] == 0).all() and (per_cohort["periods"] == per_cohort["high"] + 1).all()  # dense
    assert (per_cohort["rate"] <= 1.0).all()
    # The youngest cohort has one period, the oldest the most.
    ordered = per_cohort.sort(grain)
    assert ordered["periods"][-1] == 1 and ordered["periods"][0] == ordered["periods"].max()


@pytest.mark.parametrize("table", list(TABLES))
def test_only_the_clocks_period_is_incomplete(store, sample_store_path, table):
    t, grain = f"customer_cohorts_{table}", TABLES[table]
    df = store.query(f"FROM {t} SHOW {t}_customers_in_cohort GROUP BY {grain}, {t}_periods_since_first_purchase, "
                     f"period_start_date WHERE NOT period_is_complete LIMIT 10000").df
    today = store.now().astimezone(ZoneInfo(store.timezone)).date()
    first = first_periods(sample_store_path, grain, store.now(), store.timezone)
    current = python_index(today, grain)
    want = (first.group_by("cohort", "cohort_index").agg(n=pl.len())
            .select("cohort", k=current - pl.col("cohort_index"), n="n").sort("cohort"))
    got = df.sort(grain)
    assert got.select(grain, pl.col(f"{t}_periods_since_first_purchase").cast(pl.Int64), f"{t}_customers_in_cohort"
                      ).rows() == want.with_columns(pl.col("k").cast(pl.Int64)).rows()
    assert got["period_start_date"].unique().to_list() == [pl.select(period_start(pl.lit(today), grain)).item()]


def test_group_totals_give_the_all_cohorts_row(store, sample_store_path):
    """WITH GROUP_TOTALS: per period k, Σ retained ÷ Σ cohort size over the cohorts shown that reached k."""
    t = "customer_cohorts_monthly"
    df = store.query(
        f"FROM {t} SHOW {t}_customers, {t}_customers_in_cohort, {t}_customer_retention_rate "
        f"GROUP BY month, {t}_periods_since_first_purchase WITH GROUP_TOTALS, TOTALS "
        f"SINCE 2025-01-01 UNTIL 2025-06-30 LIMIT 10000").df
    expected = expected_matrix(sample_store_path, "month", store.now(), store.timezone).filter(
        pl.col("cohort").is_between(dt.date(2025, 1, 1), dt.date(2025, 6, 1)))
    assert sorted(df["month"].unique().to_list()) == [dt.date(2025, m, 1) for m in range(1, 7)]
    by_k = expected.group_by("k").agg(active=pl.col("active").sum(), size=pl.col("size").sum())
    suffix = f"__{t}_periods_since_first_purchase_totals"
    got = (df.group_by(pl.col(f"{t}_periods_since_first_purchase").cast(pl.Int64).alias("k"))
           .agg(pl.col(f"{t}_customers{suffix}").unique(), pl.col(f"{t}_customers_in_cohort{suffix}").unique(),
                pl.col(f"{t}_customer_retention_rate{suffix}").unique())
           .join(by_k, on="k").sort("k"))
    assert got.height == by_k.height
    for row in got.iter_rows(named=True):
        assert row[f"{t}_customers{suffix}"] == [row["active"]]
        assert row[f"{t}_customers_in_cohort{suffix}"] == [row["size"]]
        (rate,) = row[f"{t}_customer_retention_rate{suffix}"]
        assert math.isclose(rate, row["active"] / row["size"], rel_tol=1e-12)
    # Later periods have fewer cohorts behind them (right-censoring): sizes shrink with k.
    sizes = got[f"{t}_customers_in_cohort{suffix}"].list.first().to_list()
    assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]
    # WITH TOTALS: every customer of the six cohorts, all of them active in period 0.
    size = expected.filter(pl.col("k") == 0)["size"].sum()
    assert df[f"{t}_customers_in_cohort__totals"].unique().to_list() == [size]
    assert df[f"{t}_customer_retention_rate__totals"].unique().to_list() == [1.0]


def test_totals_over_later_periods_are_repeat_customers(store, sample_store_path):
    """WITH TOTALS over periods 1-3: distinct customers who came back within three months ÷ cohort customers."""
    t = "customer_cohorts_monthly"
    df = store.query(
        f"FROM {t} SHOW {t}_customers, {t}_customers_in_cohort, {t}_customer_retention_rate "
        f"WHERE {t}_periods_since_first_purchase BETWEEN 1 AND 3 GROUP BY month WITH TOTALS "
        f"SINCE 2024-01-01 UNTIL 2024-12-31 LIMIT 100").df
    first = first_periods(sample_store_path, "month", store.now(), store.timezone).filter(
        pl.col("cohort").dt.year() == 2024)
    back = (counted_orders(sample_store_path, store.now(), store.timezone).join(first, on="customer_id")
            .filter((period_index(pl.col("day"), "month") - pl.col("cohort_index")).is_between(1, 3)))
    assert df[f"{t}_customers__totals"][0] == back["customer_id"].n_unique()
    assert df[f"{t}_customers_in_cohort__totals"][0] == first.height
    assert math.isclose(df[f"{t}_customer_retention_rate__totals"][0], back["customer_id"].n_unique() / first.height)


def test_customer_fields_select_part_of_each_cohort(store, sample_store_path):
    customers = raw(sample_store_path, "customers").filter(pl.col("company_id").is_not_null()).select("customer_id")
    first = first_periods(sample_store_path, "quarter", store.now(), store.timezone).join(customers, on="customer_id")
    want = first.group_by("cohort").agg(n=pl.len()).sort("cohort")
    t = "customer_cohorts_quarterly"
    got = store.query(f"FROM {t} SHOW {t}_customers_in_cohort GROUP BY quarter WHERE customer_type = 'B2B' "
                      "LIMIT 100").df.sort("quarter")
    assert got.rows() == want.rows()


def test_periods_since_first_purchase_has_short_names(store):
    t = "customer_cohorts_weekly"
    long = store.query(f"FROM {t} SHOW {t}_customers GROUP BY {t}_periods_since_first_purchase "
                       "SINCE 2025-01-01 UNTIL 2025-03-31 LIMIT 1000").df
    for short in ("periods_since_first_purchase", "weeks_since_first_purchase"):
        other = store.query(f"FROM {t} SHOW {t}_customers GROUP BY {short} SINCE 2025-01-01 UNTIL 2025-03-31 "
                            "LIMIT 1000").df
        assert other.rows() == long.rows()


@pytest.mark.parametrize(("table", "tz"), [("monthly", None), ("weekly", "Asia/Tokyo")])
def test_shopifys_totals_metrics_are_the_all_cohorts_figures_on_every_row(store, sample_store_path, table, tz):
    """`<t>_..._totals`: per period k, over every cohort of the query, repeated on each cohort's row."""
    t = f"customer_cohorts_{table}"
    grain = TABLES[table]
    modifier = f" WITH TIMEZONE '{tz}'" if tz else ""
    df = store.query(
        f"FROM {t} SHOW {t}_customers, {t}_customers_totals, {t}_customers_in_cohort_totals, "
        f"{t}_customer_retention_rate_totals WHERE {t}_periods_since_first_purchase BETWEEN 0 AND 8 "
        f"GROUP BY {grain}, {t}_periods_since_first_purchase SINCE 2025-01-01 UNTIL 2025-06-30{modifier} LIMIT 10000"
    ).df
    expected = expected_matrix(sample_store_path, grain, store.now(), tz or store.timezone).filter(
        pl.col("cohort").is_between(dt.date(2025, 1, 1), dt.date(2025, 6, 30)) & (pl.col("k") <= 8))
    by_k = {row["k"]: row for row in expected.group_by("k").agg(
        active=pl.col("active").sum(), size=pl.col("size").sum()).iter_rows(named=True)}
    assert df.height == expected.height
    for row in df.iter_rows(named=True):
        want = by_k[row[f"{t}_periods_since_first_purchase"]]
        assert row[f"{t}_customers_totals"] == want["active"]
        assert row[f"{t}_customers_in_cohort_totals"] == want["size"]
        assert math.isclose(row[f"{t}_customer_retention_rate_totals"], want["active"] / want["size"], rel_tol=1e-12)


def test_totals_metrics_refuse_comparisons(store):
    with pytest.raises(CommerceQLError, match="every period of the query"):
        store.query("FROM customer_cohorts_monthly SHOW customer_cohorts_monthly_customers_totals "
                    "GROUP BY month SINCE -6m UNTIL today COMPARE TO previous_year")


# ---- the Shopify query, the chart and the docs -----------------------------------------------------


def test_shopify_cohort_query_runs_unchanged(store, sample_store_path):
    result = store.query(SHOPIFY_QUERY)
    t = "customer_cohorts_monthly"
    k = f"{t}_periods_since_first_purchase"
    assert result.df.columns == ["month", k, f"{t}_customers", f"{t}_customers_in_cohort",
                                 f"{t}_customer_retention_rate"]
    window = store.compile(SHOPIFY_QUERY).plan.window
    expected = expected_matrix(sample_store_path, "month", store.now(), store.timezone).filter(
        (pl.col("cohort") >= window.start.date()) & (pl.col("cohort") < window.end.date()) & (pl.col("k") <= 11))
    got = result.df.select(cohort="month", k=pl.col(k).cast(pl.Int64), customers=f"{t}_customers",
                           in_cohort=f"{t}_customers_in_cohort", retention=f"{t}_customer_retention_rate")
    joined = expected.join(got, on=["cohort", "k"], how="full", coalesce=True)
    assert joined.height == expected.height == got.height >= 12
    assert (joined["customers"] == joined["active"]).all() and (joined["in_cohort"] == joined["size"]).all()
    assert_close(joined["retention"], joined["rate"], "retention")
    spec = result.chart.to_dict()
    meta = spec["usermeta"]["commerceql"]
    assert meta["chart_types"] == ["retention_curve"]
    assert meta["metrics"] == [f"{t}_customer_retention_rate"]
    encodings = [unit["encoding"] for unit in _units(spec) if "encoding" in unit]
    assert any(e["x"]["field"] == f"__label_{k}" for e in encodings)


def test_retention_curve_periods_are_in_numeric_order(store):
    spec = store.query(SHOPIFY_QUERY).chart.to_dict()
    k = "customer_cohorts_monthly_periods_since_first_purchase"
    x = next(u["encoding"]["x"] for u in _units(spec) if u.get("encoding", {}).get("x", {}).get("field") == f"__label_{k}")
    assert x["sort"] == sorted(x["sort"], key=int)


def _units(spec: dict) -> list[dict]:
    found = [spec]
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            found.extend(_units(child))
    return found


def test_the_retention_curve_example_in_the_chart_docs_runs(store):
    text = (ROOT / "docs" / "charts.md").read_text(encoding="utf-8")
    match = re.search(r"^(FROM customer_cohorts_\w+ .*?TYPE retention_curve)$", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/charts.md has a retention_curve example over a cohort table"
    result = store.query(match.group(1))
    assert result.df.height > 0
    assert result.chart.to_dict()["usermeta"]["commerceql"]["chart_types"] == ["retention_curve"]


def test_the_queries_in_the_cohort_docs_run(store):
    text = (ROOT / "docs" / "cohorts.md").read_text(encoding="utf-8")
    queries = re.findall(r"```\n(FROM .*?)```", text, re.DOTALL)
    assert len(queries) >= 4
    assert SHOPIFY_QUERY in [q.strip() for q in queries]
    for query in queries:
        assert store.query(query).df.height > 0, query


def test_the_three_tables_are_one_definition():
    """The weekly, monthly and quarterly files differ only in their names and time unit words."""
    def normalised(table: str) -> dict:
        grain = TABLES[table]
        text = (BUILTIN_TABLES_DIR / f"customer_cohorts_{table}.yaml").read_text(encoding="utf-8")
        text = text.replace(f"customer_cohorts_{table}", "<table>")
        text = re.sub(rf"(?<![A-Za-z]){grain}(s?)(?![A-Za-z])", r"<unit>\1", text)
        text = re.sub(rf"(?<![A-Za-z]){grain.capitalize()}(s?)(?![A-Za-z])", r"<Unit>\1", text)
        document = yaml.safe_load(text)
        document.pop("description")
        return document

    monthly = normalised("monthly")
    assert normalised("weekly") == monthly
    assert normalised("quarterly") == monthly
    model = builtin_model()
    for table, grain in TABLES.items():
        t = model.table(f"customer_cohorts_{table}")
        assert t.relation == t.name and t.time_column == "cohort_start"
        assert grain in t.description
        for name, metric in t.metrics.items():
            assert metric.formula and metric.description, name
        for name in ("customers", "customers_in_cohort", "customer_retention_rate", "net_sales",
                     "net_sales_per_customer", "cumulative_net_sales_per_customer", "orders"):
            assert f"{t.name}_{name}" in t.metrics
        assert t.dimensions[f"{t.name}_periods_since_first_purchase"].type == "integer"


def test_every_cohort_metric_is_documented():
    text = (ROOT / "docs" / "cohorts.md").read_text(encoding="utf-8")
    for table in TABLES:
        t = builtin_model().table(f"customer_cohorts_{table}")
        for name in (*t.metrics, f"{t.name}_periods_since_first_purchase"):
            generic = name.replace(t.name, "<t>")
            assert f"`{generic}`" in text, name


# ---- Spark ------------------------------------------------------------------------------------------


# Run on every engine by tests/test_engines.py (tests/engine_corpus.py).
SPARK_QUERIES = [
    cohort_query("weekly", tz="Asia/Tokyo"),
    cohort_query("monthly", "WITH GROUP_TOTALS, TOTALS SINCE 2024-07-01 UNTIL 2025-06-30"),
    cohort_query("quarterly", "WHERE customer_type = 'DTC'"),
    SHOPIFY_QUERY,
]
