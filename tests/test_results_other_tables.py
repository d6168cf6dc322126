"""Metrics of the sessions, checkouts, draft_orders, customers and orders tables against hand-written SQL.

Each expected value is written from the metric's definition in docs/metrics.md over the physical
columns, never from the model's SQL.
"""

from __future__ import annotations

import pytest

import commerceql as cql

TZ = "America/New_York"


def local_between(column: str, start: str, end: str) -> str:
    return f"timezone('{TZ}', {column}) >= TIMESTAMP '{start}' AND timezone('{TZ}', {column}) < TIMESTAMP '{end}'"


LAST_MONTH = ("2025-11-01", "2025-12-01")
LAST_YEAR = ("2024-01-01", "2025-01-01")


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def values(store, query: str) -> dict:
    return store.query(query).df.row(0, named=True)


def test_sessions_funnel_by_device(store):
    result = store.query(
        "FROM sessions SHOW sessions, added_to_cart_rate, conversion_rate, checkout_conversion_rate, bounce_rate "
        "WHERE human_or_bot_session = 'human' GROUP BY session_device_type DURING last_month"
    )
    expected = store.sql(
        f"""SELECT device_type, COUNT(*) n,
                   AVG(CASE WHEN added_to_cart THEN 1 ELSE 0 END) cart,
                   AVG(CASE WHEN completed_checkout THEN 1 ELSE 0 END) conv,
                   SUM(CASE WHEN completed_checkout THEN 1 ELSE 0 END) / SUM(CASE WHEN reached_checkout THEN 1 ELSE 0 END) co,
                   AVG(CASE WHEN bounced THEN 1 ELSE 0 END) bounce
            FROM sessions WHERE human_or_bot = 'human' AND {local_between('started_at', *LAST_MONTH)} GROUP BY 1"""
    )
    got = {r["session_device_type"]: r for r in result.df.iter_rows(named=True)}
    assert set(got) == set(expected["device_type"])
    for device, n, cart, conv, co, bounce in expected.iter_rows():
        row = got[device]
        assert row["sessions"] == n
        assert row["added_to_cart_rate"] == pytest.approx(cart)
        assert row["conversion_rate"] == pytest.approx(conv)
        assert row["checkout_conversion_rate"] == pytest.approx(co)
        assert row["bounce_rate"] == pytest.approx(bounce)


def test_checkouts_abandonment_and_recovery(store):
    row = values(
        store,
        "FROM checkouts SHOW checkouts, abandoned_checkouts, cart_abandonment_rate, recovery_rate, abandoned_checkout_value DURING last_year",
    )
    expected = store.sql(
        f"""SELECT COUNT(*) n, COUNT(*) FILTER (WHERE is_abandoned) a,
                   COUNT(*) FILTER (WHERE is_abandoned AND recovered) r, SUM(value) FILTER (WHERE is_abandoned) v
            FROM checkouts WHERE {local_between('created_at', *LAST_YEAR)}"""
    ).row(0, named=True)
    assert row["checkouts"] == expected["n"]
    assert row["abandoned_checkouts"] == expected["a"]
    assert row["cart_abandonment_rate"] == pytest.approx(expected["a"] / expected["n"])
    assert row["recovery_rate"] == pytest.approx(expected["r"] / expected["a"])
    assert row["abandoned_checkout_value"] == expected["v"]


def test_open_quotes_of_distributors(store):
    result = store.query(
        "FROM draft_orders SHOW open_quotes, open_quote_value, quote_acceptance_rate GROUP BY company_industry"
    )
    expected = store.sql(
        # A quote is a draft order for a company buyer; DTC drafts (phone orders) are not quotes.
        """SELECT c.industry,
                  COUNT(*) FILTER (WHERE d.company_id IS NOT NULL AND d.status IN ('open', 'invoice_sent')) open_n,
                  SUM(d.total) FILTER (WHERE d.company_id IS NOT NULL AND d.status IN ('open', 'invoice_sent')) open_v,
                  COUNT(*) FILTER (WHERE d.company_id IS NOT NULL AND d.status = 'completed') accepted,
                  COUNT(*) FILTER (WHERE d.company_id IS NOT NULL AND d.status = 'expired') expired
           FROM draft_orders d LEFT JOIN companies c USING (company_id) GROUP BY 1"""
    )
    got = {r["company_industry"]: r for r in result.df.iter_rows(named=True)}
    for industry, open_n, open_v, accepted, expired in expected.iter_rows():
        row = got[industry]
        assert row["open_quotes"] == open_n
        assert float(row["open_quote_value"] or 0) == pytest.approx(float(open_v or 0))
        if accepted + expired:
            assert row["quote_acceptance_rate"] == pytest.approx(accepted / (accepted + expired))
        else:  # no decided quote (the DTC drafts' group): no rate, shown as 0 like other empty ratios
            assert row["quote_acceptance_rate"] in (0, None)


def test_customers_repeat_rate_and_spend(store):
    row = values(store, "FROM customers SHOW customers, repeat_customer_rate, total_amount_spent")
    expected = store.sql(
        """SELECT COUNT(*) n, COUNT(*) FILTER (WHERE orders_count >= 2) * 1.0 / COUNT(*) FILTER (WHERE orders_count >= 1) r,
                  SUM(amount_spent) s FROM customers"""
    ).row(0, named=True)
    assert row["customers"] == expected["n"]
    assert row["repeat_customer_rate"] == pytest.approx(float(expected["r"]))
    assert row["total_amount_spent"] == expected["s"]


def test_orders_table_counts_and_rates(store):
    row = values(store, "FROM orders SHOW orders, average_order_value, cancellation_rate, refund_rate DURING last_year")
    expected = store.sql(
        f"""SELECT COUNT(*) n, SUM(line_items_total - total_discounts) / COUNT(*) aov,
                   AVG(CASE WHEN cancelled_at IS NOT NULL THEN 1 ELSE 0 END) cancelled,
                   AVG(CASE WHEN total_refunded > 0 AND cancelled_at IS NULL THEN 1 ELSE 0 END) refunded
            FROM orders WHERE NOT is_test AND {local_between('created_at', *LAST_YEAR)}"""
    ).row(0, named=True)
    assert row["orders"] == expected["n"]
    assert float(row["average_order_value"]) == pytest.approx(float(expected["aov"]))
    assert row["cancellation_rate"] == pytest.approx(expected["cancelled"])
    assert row["refund_rate"] == pytest.approx(expected["refunded"])
    # The same orders and AOV as the sales table (both follow Shopify's definition).
    sales = values(store, "FROM sales SHOW orders, average_order_value DURING last_year")
    assert sales["orders"] == row["orders"]
    assert float(sales["average_order_value"]) == pytest.approx(float(row["average_order_value"]))
