"""Generated columns inside expressions: comparison, percent-change and totals columns in SHOW
arithmetic and in HAVING (ShopifyQL 2026-07), checked against hand-written DuckDB SQL over the
raw `sales` table; and the errors for a generated column named without the clause that makes it.

The sample store's clock is 2025-12-15 14:00 America/New_York: `last_quarter` is 2025 Q3 and
its `previous_quarter` is 2025 Q2; `last_month` is November 2025.
"""

from __future__ import annotations

import duckdb
import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.errors import CommerceQLError

TZ = "America/New_York"
Q3 = ("2025-07-01", "2025-10-01")
Q2 = ("2025-04-01", "2025-07-01")
NOVEMBER = ("2025-11-01", "2025-12-01")
OCTOBER = ("2025-10-01", "2025-11-01")
NOVEMBER_2024 = ("2024-11-01", "2024-12-01")

# Queries of this module that every engine must answer alike (tests/engine_corpus.py).
SPARK_QUERIES = [
    "FROM sales SHOW net_sales, net_sales - comparison_net_sales__previous_quarter AS lost_sales "
    "GROUP BY sales_channel DURING last_quarter COMPARE TO previous_quarter",
    "FROM sales SHOW net_sales GROUP BY billing_region DURING last_quarter COMPARE TO previous_quarter "
    "WITH PERCENT_CHANGE HAVING percent_change_net_sales__previous_quarter < -0.3",
    "FROM sales SHOW net_sales, net_sales / net_sales__totals AS share GROUP BY sales_channel WITH TOTALS "
    "DURING last_month COMPARE TO previous_year",
    "FROM sales SHOW orders, percent_change_orders__previous_period * 100 AS orders_growth_points "
    "GROUP BY sales_channel DURING last_month COMPARE TO previous_period WITH PERCENT_CHANGE, TOTALS",
]


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def sales(sample_store_path) -> duckdb.DuckDBPyConnection:
    """The raw sales rows in a DuckDB session of their own (UTC), for the hand-written oracles."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("sales_frame", raw(sample_store_path, "sales"))
    con.execute("CREATE TABLE sales AS SELECT * FROM sales_frame")
    yield con
    con.close()


def within(period: tuple[str, str]) -> str:
    start, end = period
    local = f"timezone('{TZ}', happened_at)"
    return f"{local} >= TIMESTAMP '{start}' AND {local} < TIMESTAMP '{end}'"


def net_sales_by(sales: duckdb.DuckDBPyConnection, dimension: str, period: tuple[str, str]) -> dict[object, float]:
    rows = sales.execute(
        f"SELECT {dimension}, SUM(net_sales) FROM sales WHERE {within(period)} GROUP BY 1"
    ).fetchall()
    return {key: float(value) for key, value in rows}


def money(value: object) -> float:
    return 0.0 if value is None else float(value)  # type: ignore[arg-type]


def error_for(store, text: str) -> CommerceQLError:
    with pytest.raises(CommerceQLError) as info:
        store.query(text)
    return info.value


# -- comparison columns in SHOW arithmetic ---------------------------------------------------------


def test_lost_sales_against_the_previous_quarter(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales, net_sales - comparison_net_sales__previous_quarter AS lost_sales "
        "GROUP BY sales_channel DURING last_quarter COMPARE TO previous_quarter"
    )
    now, before = net_sales_by(sales, "sales_channel", Q3), net_sales_by(sales, "sales_channel", Q2)
    assert sorted(result.df["sales_channel"].to_list()) == sorted(set(now) | set(before))
    for row in result.df.iter_rows(named=True):
        channel = row["sales_channel"]
        assert money(row["lost_sales"]) == pytest.approx(now.get(channel, 0.0) - before.get(channel, 0.0), abs=0.01)
        assert money(row["comparison_net_sales__previous_quarter"]) == pytest.approx(before.get(channel, 0.0), abs=0.01)


def test_a_metric_over_a_comparison_column_has_no_comparison_of_its_own(store):
    result = store.query(
        "FROM sales SHOW net_sales, net_sales - comparison_net_sales__previous_quarter AS lost_sales "
        "DURING last_quarter COMPARE TO previous_quarter WITH PERCENT_CHANGE, TOTALS"
    )
    names = [c.name for c in result.columns]
    assert "comparison_lost_sales__previous_quarter" not in names
    assert "percent_change_lost_sales__previous_quarter" not in names
    assert "lost_sales__totals" in names
    row = result.df.row(0, named=True)
    # One row: the totals are the row itself.
    assert money(row["lost_sales__totals"]) == pytest.approx(money(row["lost_sales"]), abs=0.01)


def test_the_comparison_column_of_a_metric_not_in_show(store, sales):
    result = store.query(
        "FROM sales SHOW comparison_net_sales__previous_year AS november_2024 DURING last_month COMPARE TO previous_year"
    )
    expected = sales.execute(f"SELECT SUM(net_sales) FROM sales WHERE {within(NOVEMBER_2024)}").fetchone()[0]
    assert money(result.df["november_2024"][0]) == pytest.approx(float(expected), abs=0.01)


def test_a_percent_change_column_in_arithmetic(store, sales):
    result = store.query(
        "FROM sales SHOW orders, percent_change_orders__previous_period * 100 AS orders_growth_points "
        "GROUP BY sales_channel DURING last_month COMPARE TO previous_period WITH PERCENT_CHANGE, TOTALS"
    )
    counts = """SELECT sales_channel, COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order')
                FROM sales WHERE {} GROUP BY 1"""
    now = dict(sales.execute(counts.format(within(NOVEMBER))).fetchall())
    before = dict(sales.execute(counts.format(within(OCTOBER))).fetchall())
    for row in result.df.iter_rows(named=True):
        current, previous = now.get(row["sales_channel"], 0), before.get(row["sales_channel"], 0)
        assert row["orders_growth_points"] == pytest.approx((current - previous) / abs(previous) * 100)
    # At the totals level the percent change is of the totals, not a sum of the rows' changes.
    total_now = sales.execute(
        f"SELECT COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order') FROM sales WHERE {within(NOVEMBER)}"
    ).fetchone()[0]
    total_before = sales.execute(
        f"SELECT COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order') FROM sales WHERE {within(OCTOBER)}"
    ).fetchone()[0]
    assert result.df["orders_growth_points__totals"][0] == pytest.approx(
        (total_now - total_before) / abs(total_before) * 100
    )


# -- generated columns in HAVING ----------------------------------------------------------------------


def test_having_on_a_percent_change_column(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales GROUP BY billing_region DURING last_quarter COMPARE TO previous_quarter "
        "WITH PERCENT_CHANGE HAVING percent_change_net_sales__previous_quarter < -0.3"
    )
    now, before = net_sales_by(sales, "billing_region", Q3), net_sales_by(sales, "billing_region", Q2)
    expected = {
        region
        for region in set(now) | set(before)
        if before.get(region) and (now.get(region, 0.0) - before[region]) / abs(before[region]) < -0.3
    }
    assert expected, "the sample store should have regions whose sales fell by more than 30%"
    assert set(result.df["billing_region"].to_list()) == expected


def test_having_on_a_comparison_column(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_quarter COMPARE TO previous_quarter "
        "HAVING comparison_net_sales__previous_quarter > 50000"
    )
    before = net_sales_by(sales, "sales_channel", Q2)
    assert set(result.df["sales_channel"].to_list()) == {c for c, v in before.items() if v > 50000}


def test_having_on_a_metric_over_a_comparison_column(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales - comparison_net_sales__previous_quarter AS change GROUP BY billing_region "
        "DURING last_quarter COMPARE TO previous_quarter HAVING change < 0"
    )
    now, before = net_sales_by(sales, "billing_region", Q3), net_sales_by(sales, "billing_region", Q2)
    expected = {r for r in set(now) | set(before) if now.get(r, 0.0) - before.get(r, 0.0) < -0.005}
    assert set(result.df["billing_region"].to_list()) == expected


# -- totals columns in arithmetic (share of total) ----------------------------------------------------


def test_share_of_total(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales, net_sales / net_sales__totals AS share GROUP BY sales_channel WITH TOTALS "
        "DURING last_month"
    )
    by_channel = net_sales_by(sales, "sales_channel", NOVEMBER)
    total = sum(by_channel.values())
    assert result.df.height == len(by_channel)
    for row in result.df.iter_rows(named=True):
        assert row["share"] == pytest.approx(by_channel[row["sales_channel"]] / total)
    assert result.df["share__totals"].to_list() == pytest.approx([1.0] * result.df.height)
    assert {c.name: c.type for c in result.columns}["share"] == "percent"


def test_share_of_total_in_the_comparison_period_is_that_periods_share(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales, net_sales / net_sales__totals AS share GROUP BY sales_channel WITH TOTALS "
        "DURING last_month COMPARE TO previous_year"
    )
    year_before = net_sales_by(sales, "sales_channel", NOVEMBER_2024)
    total = sum(year_before.values())
    for row in result.df.iter_rows(named=True):
        assert row["comparison_share__previous_year"] == pytest.approx(year_before.get(row["sales_channel"], 0.0) / total)


def test_share_of_the_comparison_total(store, sales):
    result = store.query(
        "FROM sales SHOW net_sales, comparison_net_sales__previous_year / comparison_net_sales__previous_year__totals "
        "AS share_last_year GROUP BY sales_channel WITH TOTALS DURING last_month COMPARE TO previous_year"
    )
    year_before = net_sales_by(sales, "sales_channel", NOVEMBER_2024)
    total = sum(year_before.values())
    frame = result.df.select("sales_channel", "share_last_year")
    expected = pl.DataFrame(
        {"sales_channel": list(year_before), "expected": [v / total for v in year_before.values()]}
    )
    joined = frame.join(expected, on="sales_channel", how="inner")
    assert joined.height == len(year_before)
    assert joined["share_last_year"].to_list() == pytest.approx(joined["expected"].to_list())


def test_show_lists_a_generated_column_that_comes_with_its_metric(store):
    result = store.query(
        "FROM sales SHOW net_sales, comparison_net_sales__previous_year DURING last_month COMPARE TO previous_year"
    )
    assert [c.name for c in result.columns] == ["net_sales", "comparison_net_sales__previous_year"]


# -- errors: the clause a generated column needs --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message", "column", "hint"),
    [
        (
            "FROM sales SHOW net_sales - comparison_net_sales__previous_quarter AS lost_sales DURING last_quarter",
            "is a comparison column, and this query has no COMPARE TO",
            29,
            "add `COMPARE TO previous_quarter`",
        ),
        (
            "FROM sales SHOW net_sales GROUP BY billing_region HAVING percent_change_net_sales__previous_quarter < -0.3",
            "is a comparison column, and this query has no COMPARE TO",
            58,
            "add `COMPARE TO previous_quarter` and `WITH PERCENT_CHANGE`",
        ),
        (
            "FROM sales SHOW net_sales GROUP BY billing_region COMPARE TO previous_quarter "
            "HAVING percent_change_net_sales__previous_quarter < -0.3 DURING last_month",
            "is made by WITH PERCENT_CHANGE, which this query does not have",
            86,
            "add `WITH PERCENT_CHANGE`",
        ),
        (
            "FROM sales SHOW net_sales, net_sales / net_sales__totals AS share GROUP BY sales_channel",
            "`net_sales__totals` is made by WITH TOTALS, which this query does not have",
            40,
            "add `WITH TOTALS`",
        ),
        (
            "FROM sales SHOW net_sales - comparison_net_sales__previous_year AS x COMPARE TO previous_period DURING last_month",
            "names the comparison `previous_year`, and this query compares to `previous_period`",
            29,
            "write `comparison_net_sales__previous_period`",
        ),
        (
            "FROM sales SHOW net_sales ORDER BY comparison_net_sales__previous_year DESC",
            "is a comparison column, and this query has no COMPARE TO",
            36,
            "add `COMPARE TO previous_year`",
        ),
        (
            "FROM sales SHOW net_sale - comparison_net_sale__previous_year AS x COMPARE TO previous_year DURING last_month",
            "unknown metric `net_sale`",
            17,
            "did you mean `net_sales`?",
        ),
        (
            "FROM sales SHOW comparison_net_sale__previous_year AS x COMPARE TO previous_year DURING last_month",
            "names a generated column of `net_sale`, which is not a metric of the query",
            17,
            "did you mean `net_sales`?",
        ),
        (
            "FROM sales SHOW net_sales, net_sales / net_sales__sales_channel_totals AS share "
            "GROUP BY sales_channel WITH GROUP_TOTALS",
            "is a group totals column: ORDER BY and HAVING can use it, arithmetic in SHOW cannot",
            40,
            None,
        ),
        (
            "FROM sales SHOW comparison_net_sales__previous_year COMPARE TO previous_year DURING last_month",
            "comes with the metric `net_sales`",
            17,
            "add `net_sales` to SHOW",
        ),
        (
            "FROM sales SHOW orders, comparison_net_sales__previous_year COMPARE TO previous_year DURING last_month",
            "a generated column of `net_sales`, which SHOW does not list",
            25,
            "add `net_sales` to SHOW",
        ),
        (
            "FROM sales SHOW net_sales - comparison_net_sales__previous_quarter AS change DURING last_quarter "
            "COMPARE TO previous_quarter HAVING comparison_change__previous_quarter > 0",
            "HAVING can only use columns of the result",
            133,
            "`change` reads a comparison column, so it has no comparison",
        ),
        (
            "FROM sales SHOW net_sales DURING last_quarter COMPARE TO previous_quarter "
            "ORDER BY comparison_orders__previous_quarter",
            "cannot order by `comparison_orders__previous_quarter`",
            84,
            "add `orders` to SHOW",
        ),
        (
            "FROM sales SHOW net_sales - comparison_net_sales__previous_year COMPARE TO previous_year DURING last_month",
            "needs a name",
            17,
            "AS my_metric",
        ),
    ],
)
def test_a_generated_column_without_its_clause_is_refused_at_its_position(store, text, message, column, hint):
    error = error_for(store, text)
    assert message in error.message, error.render()
    assert (error.line, error.column) == (1, column), error.render()
    if hint is not None:
        assert error.hint is not None and hint in error.hint, error.render()


def test_a_top_ranking_skips_metrics_over_generated_columns(store, sales):
    # TOP ranks by the first plain metric: a share of the total ranks the same values, and a
    # change against another period is not what "top" means.
    result = store.query(
        "FROM sales SHOW net_sales / net_sales__totals AS share, net_sales GROUP BY ONLY TOP 2 billing_region "
        "WITH TOTALS DURING last_month"
    )
    by_region = net_sales_by(sales, "billing_region", NOVEMBER)
    top = sorted(by_region, key=lambda r: -by_region[r])[:2]
    assert sorted(result.df["billing_region"].to_list()) == sorted(top)
