"""TOP semantics, checked against hand-written DuckDB SQL over the raw tables.

* `GROUP BY company_tier, TOP 3 product_title` ranks within each tier: every tier lists its own
  three best products and folds the rest of that tier into its `Other` row.
* `ONLY TOP n ... WITH TOTALS`: the totals are of all the query's rows, as with LIMIT (Shopify:
  the table shows at most 1,000 rows "while totals still cover all data"; ONLY TOP "drops the
  Other row"), so the share of the top values reads their real share (docs/language.md).

The sample store's clock is 2025-12-15 14:00 America/New_York: `last_year` is 2024.
"""

from __future__ import annotations

import duckdb
import pytest
from rawdata import raw

import commerceql as cql

TZ = "America/New_York"
LAST_YEAR = ("2024-01-01", "2025-01-01")
YEAR_BEFORE = ("2023-01-01", "2024-01-01")

SPARK_QUERIES = [
    "FROM sales SHOW net_sales GROUP BY company_tier, TOP 3 product_title DURING last_year",
    "FROM sales SHOW net_sales, orders GROUP BY company_tier, TOP 2 product_type DURING last_year",
    "FROM sales SHOW net_sales, net_sales / net_sales__totals AS share GROUP BY ONLY TOP 5 billing_region "
    "WITH TOTALS DURING last_year",
    "FROM sales SHOW net_sales, orders GROUP BY sales_channel, ONLY TOP 2 billing_region WITH TOTALS, GROUP_TOTALS "
    "DURING last_year COMPARE TO previous_year",
]


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def con(sample_store_path) -> duckdb.DuckDBPyConnection:
    """The raw sales, products and companies rows in a DuckDB session of their own (UTC)."""
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    for table in ("sales", "products", "companies"):
        connection.register(f"{table}_frame", raw(sample_store_path, table))
        connection.execute(f"CREATE TABLE {table} AS SELECT * FROM {table}_frame")
    yield connection
    connection.close()


def within(period: tuple[str, str]) -> str:
    start, end = period
    local = f"timezone('{TZ}', s.happened_at)"
    return f"{local} >= TIMESTAMP '{start}' AND {local} < TIMESTAMP '{end}'"


FACTS = """
    SELECT c.tier AS company_tier, p.title AS product_title, p.product_type, s.billing_region, s.sales_channel,
           s.net_sales, s.order_id, s.event_type
    FROM sales s LEFT JOIN products p USING (product_id) LEFT JOIN companies c USING (company_id)
    WHERE {period}
"""


def top_within(con, group: str, ranked: str, count: int, period=LAST_YEAR) -> dict[tuple, float]:
    """Net sales by (group, ranked value), the ranked value's top `count` kept within each group."""
    rows = con.execute(
        f"""WITH facts AS ({FACTS.format(period=within(period))}),
            ranked AS (
              SELECT {group} AS g, {ranked} AS v, SUM(net_sales) AS value,
                     row_number() OVER (PARTITION BY {group} ORDER BY SUM(net_sales) DESC NULLS LAST,
                                        {ranked} NULLS LAST) AS place
              FROM facts GROUP BY 1, 2)
            SELECT g, CASE WHEN place <= {count} THEN v ELSE 'Other' END, SUM(value) FROM ranked GROUP BY 1, 2"""
    ).fetchall()
    return {(g, v): float(value) for g, v, value in rows}


def test_top_ranks_within_each_tier(store, con):
    result = store.query("FROM sales SHOW net_sales GROUP BY company_tier, TOP 3 product_title DURING last_year")
    expected = top_within(con, "company_tier", "product_title", 3)
    got = {(r["company_tier"], r["product_title"]): float(r["net_sales"]) for r in result.df.iter_rows(named=True)}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == pytest.approx(value, abs=0.01), key
    # Each tier (and the rows without a company) lists its own three, then its Other row.
    tiers = {tier for tier, _ in expected}
    for tier in tiers:
        assert sum(1 for t, v in got if t == tier and v != "Other") == 3
    # Read tier by tier: each tier's three, then its Other row; the rows without a tier last.
    order = [(r["company_tier"], r["product_title"] == "Other") for r in result.df.iter_rows(named=True)]
    assert order == sorted(order, key=lambda k: (k[0] is None, k[0] or "", k[1]))


def test_top_within_groups_with_a_distinct_count_reaggregates_other(store, con):
    # orders is a distinct count: the Other row is recounted from the raw rows (no pre-folding).
    result = store.query("FROM sales SHOW net_sales, orders GROUP BY company_tier, TOP 2 product_type DURING last_year")
    assert "agg_pre_0" not in result.sql
    expected = top_within(con, "company_tier", "product_type", 2)
    orders = con.execute(
        f"""WITH facts AS ({FACTS.format(period=within(LAST_YEAR))}),
            ranked AS (
              SELECT company_tier AS g, product_type AS v,
                     row_number() OVER (PARTITION BY company_tier ORDER BY SUM(net_sales) DESC NULLS LAST,
                                        product_type NULLS LAST) AS place
              FROM facts GROUP BY 1, 2)
            SELECT f.company_tier, CASE WHEN r.place <= 2 THEN f.product_type ELSE 'Other' END,
                   COUNT(DISTINCT f.order_id) FILTER (WHERE f.event_type = 'order')
            FROM facts f JOIN ranked r ON r.g IS NOT DISTINCT FROM f.company_tier
                                      AND r.v IS NOT DISTINCT FROM f.product_type
            GROUP BY 1, 2"""
    ).fetchall()
    expected_orders = {(g, v): n for g, v, n in orders}
    rows = {(r["company_tier"], r["product_type"]): r for r in result.df.iter_rows(named=True)}
    assert rows.keys() == expected.keys()
    for key, row in rows.items():
        assert float(row["net_sales"]) == pytest.approx(expected[key], abs=0.01), key
        assert row["orders"] == expected_orders[key], key


def test_only_top_with_totals_totals_every_row(store, con):
    result = store.query(
        "FROM sales SHOW net_sales, net_sales / net_sales__totals AS share GROUP BY ONLY TOP 5 billing_region "
        "WITH TOTALS DURING last_year"
    )
    by_region = dict(
        con.execute(
            f"SELECT billing_region, SUM(net_sales) FROM sales s WHERE {within(LAST_YEAR)} GROUP BY 1"
        ).fetchall()
    )
    total = float(sum(by_region.values()))
    top = sorted(by_region, key=lambda r: (-by_region[r], r))[:5]
    assert result.df["billing_region"].to_list() == top
    assert result.df["net_sales__totals"].cast(float).to_list() == pytest.approx([total] * 5, abs=0.01)
    for row in result.df.iter_rows(named=True):
        assert row["share"] == pytest.approx(float(by_region[row["billing_region"]]) / total)
    assert sum(result.df["share"].to_list()) < 0.99  # the top five are not the whole store


def test_only_top_within_groups_with_totals_group_totals_and_a_comparison(store, con):
    # Non-additive orders: the raw-rows path. Totals and comparison totals cover every row;
    # a channel's group total covers all of that channel (its regions outside the top included).
    result = store.query(
        "FROM sales SHOW net_sales, orders GROUP BY sales_channel, ONLY TOP 2 billing_region WITH TOTALS, GROUP_TOTALS "
        "DURING last_year COMPARE TO previous_year"
    )
    assert "agg_pre_0" not in result.sql
    kept = top_within(con, "sales_channel", "billing_region", 2)
    expected_rows = {key for key in kept if key[1] != "Other"}
    got = {(r["sales_channel"], r["billing_region"]) for r in result.df.iter_rows(named=True)}
    assert got == expected_rows

    def total(period, by: str | None = None) -> dict:
        select = f"{by}, " if by else ""
        rows = con.execute(
            f"""SELECT {select}SUM(net_sales), COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order')
                FROM ({FACTS.format(period=within(period))}) {'GROUP BY 1' if by else ''}"""
        ).fetchall()
        return {(r[0] if by else None): r[-2:] for r in rows}

    everything, before = total(LAST_YEAR)[None], total(YEAR_BEFORE)[None]
    by_channel = total(LAST_YEAR, "sales_channel")
    for row in result.df.iter_rows(named=True):
        assert float(row["net_sales__totals"]) == pytest.approx(float(everything[0]), abs=0.01)
        assert row["orders__totals"] == everything[1]
        assert float(row["comparison_net_sales__previous_year__totals"]) == pytest.approx(float(before[0]), abs=0.01)
        assert row["comparison_orders__previous_year__totals"] == before[1]
        channel = by_channel[row["sales_channel"]]
        assert float(row["net_sales__sales_channel_totals"]) == pytest.approx(float(channel[0]), abs=0.01)
        assert row["orders__sales_channel_totals"] == channel[1]


def test_only_top_with_totals_on_the_pre_folded_path_agrees(store):
    # Only additive metrics: ranked and folded from pre-aggregated rows; same answer.
    query = "GROUP BY sales_channel, ONLY TOP 2 billing_region WITH TOTALS, GROUP_TOTALS DURING last_year"
    single = store.query(f"FROM sales SHOW net_sales {query}")
    assert "agg_pre_0" in single.sql
    mixed = store.query(f"FROM sales SHOW net_sales, orders {query}")
    columns = ["sales_channel", "billing_region", "net_sales", "net_sales__totals", "net_sales__sales_channel_totals",
               "net_sales__billing_region_totals"]
    assert sorted(single.df.select(columns).rows()) == sorted(mixed.df.select(columns).rows())
