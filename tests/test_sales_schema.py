"""The `sales` table speaks Shopify's published `sales` schema: the 2026-04 rename map both ways, the
sales-reversal family, duties / additional fees / return fees, the order's referrer, and a clear
refusal (naming the missing data) for every Shopify field no store has data for.

Every expected figure is hand-written DuckDB SQL over the raw tables. The reversal family is checked
against the store's `refunds` / `refund_line_items` / `line_items` tables (not the `sales` rows the
model reads), so a wrong definition cannot agree with itself.
"""

from __future__ import annotations

import decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commerceql as cql
from commerceql.errors import CommerceQLError, CommerceQLNameError

TZ = "America/New_York"
# DURING last_year on the sample store's clock (2025-12-15 New York): the local year 2024.
YEAR = ("2024-01-01", "2025-01-01")


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def sql_rows(con, sql: str) -> dict[tuple, tuple]:
    """Rows of hand-written SQL keyed by their first two columns (month, group)."""
    return {tuple(row[:2]): tuple(row[2:]) for row in con.execute(sql).fetchall()}


def result_rows(frame: pl.DataFrame) -> dict[tuple, tuple]:
    return {tuple(row[:2]): tuple(row[2:]) for row in frame.rows()}


def local(column: str) -> str:
    return f"({column} AT TIME ZONE '{TZ}')"


# ---- the sales-reversal family ------------------------------------------------------------------

REVERSALS = (
    "gross_sales_reversals, discount_reversals, net_sales_reversals, sales_reversals, tax_reversals, "
    "shipping_reversals, total_sales_reversals"
)


def expected_reversals(con) -> dict[tuple, tuple]:
    """Per (local month of the refund, order channel), from the refund tables: goods at list price,
    goods after discounts, taxes, shipping and everything given back, all negative."""
    goods = f"""
        SELECT date_trunc('month', {local('r.created_at')})::DATE AS month, o.sales_channel AS channel,
               -SUM(rl.quantity * li.price) AS gross, -SUM(rl.subtotal) AS net
        FROM refund_line_items rl JOIN refunds r USING (refund_id) JOIN line_items li USING (line_item_id)
        JOIN orders o ON o.order_id = r.order_id
        WHERE {local('r.created_at')} >= '{YEAR[0]}' AND {local('r.created_at')} < '{YEAR[1]}'
        GROUP BY ALL"""
    money = f"""
        SELECT date_trunc('month', {local('r.created_at')})::DATE AS month, o.sales_channel AS channel,
               -SUM(r.refunded_tax) AS tax, -SUM(r.refunded_shipping) AS shipping, -SUM(r.total_refunded) AS total
        FROM refunds r JOIN orders o ON o.order_id = r.order_id
        WHERE {local('r.created_at')} >= '{YEAR[0]}' AND {local('r.created_at')} < '{YEAR[1]}'
        GROUP BY ALL"""
    rows = con.execute(f"""
        SELECT m.month, m.channel, COALESCE(g.gross, 0), COALESCE(g.net, 0) - COALESCE(g.gross, 0),
               COALESCE(g.net, 0), COALESCE(g.net, 0), m.tax, m.shipping, m.total
        FROM ({money}) m LEFT JOIN ({goods}) g USING (month, channel)""").fetchall()
    return {tuple(row[:2]): tuple(row[2:]) for row in rows}


def test_the_reversal_family_matches_the_refund_tables(store, duckdb_connection):
    result = store.query(f"FROM sales SHOW {REVERSALS} GROUP BY month, sales_channel DURING last_year")
    got = {key: value for key, value in result_rows(result.df).items() if any(value)}
    want = expected_reversals(duckdb_connection)
    assert want, "the sample store has refunds in 2024"
    assert got == want


def test_older_names_give_the_same_figures_and_say_the_new_names(store):
    old = ("gross_returns, discounts_returned, net_returns, returns, taxes_returned, shipping_returned, "
           "total_returns, quantity_returned, returned_quantity_rate")
    new = ("gross_sales_reversals, discount_reversals, net_sales_reversals, sales_reversals, tax_reversals, "
           "shipping_reversals, total_sales_reversals, reversed_quantity, reversed_quantity_rate")
    before = store.query(f"FROM sales SHOW {old} GROUP BY billing_region DURING last_year ORDER BY billing_region")
    after = store.query(f"FROM sales SHOW {new} GROUP BY billing_region DURING last_year ORDER BY billing_region")
    assert before.df.columns == ["billing_region", *[n.strip() for n in old.split(",")]]
    assert before.df.rows() == after.df.rows()
    assert not after.notices
    [notice] = [n for n in before.notices if n.startswith("renamed in ShopifyQL 2026-04")]
    for old_name, new_name in zip(old.split(", "), new.split(", "), strict=True):
        if old_name != new_name:
            assert f"`{old_name}` is now `{new_name}`" in notice


def test_the_reversal_identities_hold_in_every_group(store):
    frame = store.query(f"FROM sales SHOW {REVERSALS} GROUP BY product_type, customer_type DURING last_year").df
    assert frame.height > 5
    for row in frame.iter_rows(named=True):
        assert row["gross_sales_reversals"] + row["discount_reversals"] == row["sales_reversals"]
        assert row["net_sales_reversals"] == row["sales_reversals"]
        assert row["sales_reversals"] + row["tax_reversals"] + row["shipping_reversals"] == row["total_sales_reversals"]
        assert row["gross_sales_reversals"] <= row["net_sales_reversals"] <= 0  # discounts given back are >= 0
        assert row["total_sales_reversals"] <= 0


GROUPINGS = st.sampled_from(["sales_channel", "billing_country", "product_vendor", "new_or_returning_customer",
                             "order_referrer_source", "is_pos_sale", "line_type", "company_tier"])


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dimension=GROUPINGS, grain=st.sampled_from(["month", "quarter", "week"]))
def test_reversal_figures_add_up_to_the_period_total(store, dimension, grain):
    """Property: whatever the grouping, the groups' reversals add up to the ungrouped figure."""
    total = store.query(f"FROM sales SHOW {REVERSALS} DURING last_year").df.row(0)
    grouped = store.query(f"FROM sales SHOW {REVERSALS} GROUP BY {grain}, {dimension} DURING last_year").df
    sums = tuple(grouped[c].sum() for c in grouped.columns[2:])
    assert sums == total


# ---- duties, fees, cost coverage ------------------------------------------------------------------


def test_duties_additional_and_return_fees_are_zero_as_described(store):
    frame = store.query("FROM sales SHOW duties, additional_fees, return_fees, total_sales, net_sales, taxes, "
                        "shipping_charges GROUP BY month DURING last_year").df
    assert frame.height == 12
    assert set(frame["duties"]) == set(frame["additional_fees"]) == set(frame["return_fees"]) == {decimal.Decimal(0)}
    for row in frame.iter_rows(named=True):  # Shopify's total adds them: it still adds up
        assert row["total_sales"] == (row["net_sales"] + row["taxes"] + row["shipping_charges"] + row["duties"]
                                      + row["additional_fees"] + row["return_fees"])
    table = store.model.table("sales")
    for name in ("duties", "additional_fees", "return_fees"):
        assert "Always 0 in CommerceQL stores" in table.metrics[name].description


def test_net_sales_with_and_without_cost_recorded(store, duckdb_connection):
    result = store.query("FROM sales SHOW net_sales_with_cost_recorded, net_sales_without_cost_recorded "
                         "GROUP BY month, product_type DURING last_year")
    want = sql_rows(duckdb_connection, f"""
        SELECT date_trunc('month', {local('s.happened_at')})::DATE, p.product_type,
               COALESCE(SUM(s.net_sales) FILTER (WHERE s.cost IS NOT NULL), 0),
               COALESCE(SUM(s.net_sales) FILTER (WHERE s.cost IS NULL), 0)
        FROM sales s LEFT JOIN products p USING (product_id)
        WHERE {local('s.happened_at')} >= '{YEAR[0]}' AND {local('s.happened_at')} < '{YEAR[1]}'
        GROUP BY ALL""")
    assert result_rows(result.df) == want


# ---- dimensions from the order, old dimension names -----------------------------------------------


def test_order_referrer_and_channel_come_from_the_order(store, duckdb_connection):
    result = store.query("FROM sales SHOW orders, net_sales GROUP BY order_referrer_source, referring_channel "
                         "DURING last_year")
    want = sql_rows(duckdb_connection, f"""
        SELECT o.referrer_source, o.referring_channel,
               COUNT(DISTINCT s.order_id) FILTER (WHERE s.event_type = 'order'), SUM(s.net_sales)
        FROM sales s JOIN orders o USING (order_id)
        WHERE {local('s.happened_at')} >= '{YEAR[0]}' AND {local('s.happened_at')} < '{YEAR[1]}'
        GROUP BY ALL""")
    assert len(want) > 5
    assert result_rows(result.df) == want
    # The same values under the referrer's name, and under the 2022 dataset's name (with a notice).
    named = store.query("FROM sales SHOW net_sales GROUP BY order_referrer_name, referrer_source DURING last_year")
    assert all(a == b for a, b, _ in named.df.rows())
    assert any("`referrer_source` on `sales` is the 2022 `sales` dataset name of `order_referrer_source`" in n
               for n in named.notices)


def test_row_kind_dimensions(store, duckdb_connection):
    query = ("FROM sales SHOW gross_sales, sales_reversals GROUP BY order_or_return, order_or_sales_reversal, "
             "is_return_related, is_reversal, is_sales_reversal, is_sale_adjustment, is_pos_sale, channel_name "
             "DURING last_year")
    result = store.query(query)
    want = {
        tuple(row[:8]): tuple(row[8:])
        for row in duckdb_connection.execute(f"""
            SELECT CASE WHEN event_type = 'order' THEN 'Order' ELSE 'Return' END,
                   CASE WHEN event_type = 'order' THEN 'Order' ELSE 'Sales reversal' END,
                   event_type <> 'order', event_type <> 'order', event_type <> 'order',
                   line_type = 'adjustment', sales_channel = 'Point of Sale', sales_channel,
                   SUM(gross_sales), SUM(sales_reversals)
            FROM sales
            WHERE {local('happened_at')} >= '{YEAR[0]}' AND {local('happened_at')} < '{YEAR[1]}'
            GROUP BY ALL""").fetchall()
    }
    assert {tuple(row[:8]): tuple(row[8:]) for row in result.df.rows()} == want
    text = " | ".join(result.notices)
    assert "`order_or_return` was renamed `order_or_sales_reversal`" in text and "'Return'" in text
    assert "`is_return_related` was renamed `is_reversal`" in text
    assert "`channel_name` is the 2022 `sales` dataset name of `sales_channel`" in text


def test_notebooks_and_g0_metric_names(store):
    old = store.query("FROM sales SHOW refunds, shipping, ordered_item_quantity, returned_item_quantity, net_quantity, "
                      "ordered_product_quantity, returned_product_quantity, net_product_quantity, total_cost "
                      "GROUP BY sales_channel DURING last_month ORDER BY sales_channel")
    new = store.query("FROM sales SHOW sales_reversals, shipping_charges, quantity_ordered, reversed_quantity, "
                      "net_items_sold, quantity_ordered AS q, reversed_quantity AS r, net_items_sold AS n, "
                      "cost_of_goods_sold GROUP BY sales_channel DURING last_month ORDER BY sales_channel")
    assert old.df.rows() == new.df.rows()
    text = " | ".join(old.notices)
    for name, current in [("refunds", "sales_reversals"), ("shipping", "shipping_charges"),
                          ("ordered_item_quantity", "quantity_ordered"), ("total_cost", "cost_of_goods_sold"),
                          ("ordered_product_quantity", "quantity_ordered")]:
        assert f"`{name}`" in text and f"`{current}`" in text, name


# ---- Shopify's published field list: every name resolves or is refused with the missing data ------

# From /work/shared/reference/shopifyql.md §8.2-8.3 (metrics and dimensions observed in Shopify's docs and
# Shopify-generated queries), the 2026-04 rename map both ways, and the fields issue 13 names.
SHOPIFY_METRICS = """total_sales gross_sales discounts returns sales_reversals net_sales taxes shipping_charges duties
    additional_fees orders average_order_value customers new_customers returning_customers quantity_ordered
    quantity_returned reversed_quantity returned_quantity_rate reversed_quantity_rate quantity_ordered_per_order
    net_items_sold total_returns total_sales_reversals net_returns net_sales_reversals gross_returns
    gross_sales_reversals discounts_returned discount_reversals shipping_returned shipping_reversals taxes_returned
    tax_reversals cost_of_goods_sold net_sales_with_cost_recorded gross_profit gross_margin""".split()
SHOPIFY_DIMENSIONS = """product_title product_type product_vendor product_id product_variant_id product_variant_title
    product_variant_sku product_title_at_time_of_sale product_variant_sku_at_time_of_sale product_variant_price
    product_variant_compare_at_price customer_id customer_name customer_email new_or_returning_customer
    sales_channel referring_channel order_referrer_source billing_country billing_region shipping_city
    discount_code line_type order_name sale_id excludes_post_order_adjustments is_return_related is_reversal
    order_or_return order_or_sales_reversal""".split()
REFUSED = {  # field: words the refusal must contain (the missing data)
    "utm_campaign": "UTM", "utm_source": "UTM", "utm_medium": "UTM", "utm_content": "UTM", "utm_term": "UTM",
    "utm_campaign_source": "UTM", "utm_campaign_medium": "UTM",
    "sale_sales_channel_id": "sales-channel id", "pos_location_name": "locations",
}


def test_every_published_sales_field_resolves(store):
    table = store.model.table("sales")
    missing = [m for m in SHOPIFY_METRICS if table.metric(m) is None]
    missing += [d for d in SHOPIFY_DIMENSIONS if d not in table.dimensions]
    assert not missing
    frame = store.query(f"FROM sales SHOW {', '.join(SHOPIFY_METRICS)} DURING last_month").df
    assert frame.width == len(SHOPIFY_METRICS)
    grouped = store.query("FROM sales SHOW net_sales GROUP BY "
                          + ", ".join(d for d in SHOPIFY_DIMENSIONS if not d.startswith(("sale_id", "customer_",
                                                                                         "order_name")))
                          + " DURING yesterday")
    assert grouped.df.width == len(SHOPIFY_DIMENSIONS) - 5 + 1


@pytest.mark.parametrize("field", sorted(REFUSED))
def test_fields_without_data_are_refused_with_the_reason(store, field):
    with pytest.raises(CommerceQLNameError) as info:
        store.query(f"FROM sales SHOW net_sales GROUP BY {field}")
    error = info.value
    assert REFUSED[field] in error.message and "has no data for" in error.message
    assert error.span is not None and error.span.column == len("FROM sales SHOW net_sales GROUP BY ") + 1


def test_the_sessions_table_refuses_utm_fields_too(store):
    with pytest.raises(CommerceQLError, match="no UTM parameters"):
        store.query("FROM sessions SHOW sessions GROUP BY utm_campaign")


# ---- Spark --------------------------------------------------------------------------------------


# Run on every engine by tests/test_engines.py (tests/engine_corpus.py).
SPARK_QUERIES = [
    f"FROM sales SHOW {REVERSALS}, duties, additional_fees, return_fees GROUP BY month, sales_channel DURING last_year",
    "FROM sales SHOW net_sales_with_cost_recorded, net_sales_without_cost_recorded, returns, net_returns "
    "GROUP BY order_referrer_source, order_or_return, is_pos_sale DURING last_quarter",
]



def test_contract_pricing_by_price_list_and_volume_break(store, duckdb_connection):
    """List-price sales, contract savings and volume-break savings against the raw line items."""
    expected = sql_rows(duckdb_connection, f"""
        SELECT li.price_list, li.volume_break,
               SUM(li.gross) AS list_sales,
               SUM(li.contract_discount) AS savings,
               SUM(li.volume_break_discount) AS volume
          FROM line_items li JOIN orders o ON o.order_id = li.order_id
         WHERE li.price_list IS NOT NULL AND NOT o.is_test
           AND {local('o.created_at')} >= TIMESTAMP '2025-01-01' AND {local('o.created_at')} < TIMESTAMP '2025-07-01'
         GROUP BY 1, 2""")
    got = result_rows(store.query(
        "FROM sales SHOW list_price_sales, contract_price_savings, volume_break_savings "
        "WHERE price_list IS NOT NULL AND line_type = 'product' AND NOT is_reversal "
        "GROUP BY price_list, volume_break SINCE 2025-01-01 UNTIL 2025-06-30 LIMIT 1000").df)
    assert got.keys() == expected.keys() and len(got) >= 4
    for key, (list_sales, savings, volume) in expected.items():
        assert got[key] == (list_sales, savings, volume), key
