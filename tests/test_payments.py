"""The `payments` table (payment transactions) against Polars over the raw Parquet files.

Expected values are computed here from the definitions in docs/data-model.md (Payments) with
Polars over `transactions` and `orders`, never from the compiler's SQL. Invariants the sample
generator makes hold, checked against the orders: every paid order's successful sales less its
refunds equal its total less what was refunded (to the cent); unpaid orders (open invoices,
voided orders) moved no money; fees are charged on successful sales only.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql import derived

TZ = "America/New_York"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def transactions(sample_store_path) -> pl.DataFrame:
    return raw(sample_store_path, "transactions")


def signed(frame: pl.DataFrame) -> pl.DataFrame:
    """Successful money movements with their sign: + charged, - paid back."""
    return frame.filter(pl.col("status") == "success").with_columns(
        pl.when(pl.col("kind").is_in(["sale", "capture"])).then(pl.col("amount"))
        .when(pl.col("kind") == "refund").then(-pl.col("amount")).otherwise(Decimal(0)).alias("net")
    )


def test_paid_orders_net_payments_equal_total_less_refunds(sample_store_path, transactions):
    orders = raw(sample_store_path, "orders").filter(~pl.col("is_test"))
    per_order = signed(transactions).group_by("order_id").agg(pl.col("net").sum())
    paid = orders.filter(pl.col("paid_at").is_not_null()).select(
        "order_id", (pl.col("total") - pl.col("total_refunded")).alias("expected"))
    both = paid.join(per_order, on="order_id", how="left").with_columns(pl.col("net").fill_null(Decimal(0)))
    # an order whose whole total was refunded before its invoice was paid has no transaction at all
    assert both.filter(pl.col("net") != pl.col("expected")).height == 0
    unpaid = orders.filter(pl.col("paid_at").is_null()).select("order_id")
    assert per_order.join(unpaid, on="order_id").filter(pl.col("net") != 0).height == 0
    assert transactions.filter(pl.col("order_id").is_in(orders.filter(pl.col("is_test"))["order_id"].implode())).height == 0


def test_fees_only_on_successful_sales(transactions):
    charged = transactions.filter(pl.col("fee") > 0)
    assert charged.height > 0
    assert set(charged["kind"].unique()) == {"sale"} and set(charged["status"].unique()) == {"success"}
    free = transactions.filter(pl.col("payment_method").is_in(["Cash", "Bank deposit"]))
    assert free["fee"].sum() == 0


def month_of(frame: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> pl.DataFrame:
    utc = dt.UTC
    return frame.filter((pl.col("created_at") >= start.astimezone(utc)) & (pl.col("created_at") < end.astimezone(utc)))


def test_payments_by_method_with_totals(store, transactions):
    zone = ZoneInfo(TZ)
    window = month_of(transactions, dt.datetime(2024, 1, 1, tzinfo=zone), dt.datetime(2025, 1, 1, tzinfo=zone))
    result = store.query(
        "FROM payments SHOW gross_payments, refunded_payments, net_payments, transaction_fees, net_payments_after_fees, "
        "transactions, successful_transactions, failed_transactions, payment_success_rate, orders_with_transactions "
        "GROUP BY payment_method DURING last_year ORDER BY payment_method"
    ).df
    ok = window.filter(pl.col("status") == "success")
    for row in result.iter_rows(named=True):
        rows = window.filter(pl.col("payment_method") == row["payment_method"])
        good = ok.filter(pl.col("payment_method") == row["payment_method"])
        gross = good.filter(pl.col("kind").is_in(["sale", "capture"]))["amount"].sum()
        refunded = -good.filter(pl.col("kind") == "refund")["amount"].sum()
        fees = rows["fee"].sum()
        assert row["gross_payments"] == gross
        assert row["refunded_payments"] == refunded
        assert row["net_payments"] == gross + refunded
        assert row["transaction_fees"] == fees
        assert row["net_payments_after_fees"] == gross + refunded - fees
        assert row["transactions"] == rows.height
        assert row["successful_transactions"] == good.height
        assert row["failed_transactions"] == rows.filter(pl.col("status") == "failure").height
        attempts = rows.filter(pl.col("kind").is_in(["sale", "capture"]))
        if attempts.height:
            assert row["payment_success_rate"] == pytest.approx(
                attempts.filter(pl.col("status") == "success").height / attempts.height)
        assert row["orders_with_transactions"] == rows["order_id"].n_unique()
    assert sorted(result["payment_method"]) == sorted(window["payment_method"].unique())


def test_monthly_net_payments_match_the_signed_sum(store, transactions):
    result = store.query("FROM payments SHOW net_payments TIMESERIES month SINCE 2025-01-01 UNTIL 2025-06-30").df
    zone = ZoneInfo(TZ)
    frame = signed(transactions).with_columns(
        pl.col("created_at").dt.convert_time_zone(TZ).dt.truncate("1mo").dt.date().alias("month"))
    frame = month_of(frame.with_columns(pl.col("created_at").dt.convert_time_zone("UTC")),
                     dt.datetime(2025, 1, 1, tzinfo=zone), dt.datetime(2025, 7, 1, tzinfo=zone))
    expected = frame.group_by("month").agg(pl.col("net").sum()).sort("month")
    assert result["month"].to_list() == expected["month"].to_list()
    assert result["net_payments"].to_list() == expected["net"].to_list()


def test_net_payments_of_paid_orders_reconcile_with_sales(store, sample_store_path):
    """Over all history, payments of paid orders = their total sales (sales rows of paid orders)."""
    result = store.query(
        "FROM payments SHOW net_payments GROUP BY financial_status SINCE 2020-01-01 UNTIL today").df
    sales = raw(sample_store_path, "sales")
    orders = raw(sample_store_path, "orders").filter(~pl.col("is_test") & pl.col("paid_at").is_not_null())
    by_status = (sales.join(orders.select("order_id", "financial_status"), on="order_id")
                 .group_by("financial_status").agg(pl.col("total_sales").sum()))
    expected = dict(zip(by_status["financial_status"], by_status["total_sales"], strict=True))
    got = dict(zip(result["financial_status"], result["net_payments"], strict=True))
    for status, amount in expected.items():
        assert got.get(status, Decimal(0)) == amount


def test_the_refusal_reason_names_the_missing_export():
    manifest = {"missing_tables": {"transactions": "no Transactions export was imported"}}
    assert derived.missing_data("transactions", "payments", manifest) == (
        "table `payments` has no data in this store: no Transactions export was imported")
    assert derived.missing_data("inventory_periods", "inventory", manifest) is None
    assert derived.missing_data("transactions", "payments", {}) is None  # the sample store has every table


SPARK_QUERIES = [
    "FROM payments SHOW gross_payments, refunded_payments, net_payments, transaction_fees, transactions "
    "GROUP BY payment_method WITH TOTALS DURING last_year",
    "FROM payments SHOW net_payments, payment_success_rate, orders_with_transactions TIMESERIES month "
    "DURING last_quarter COMPARE TO previous_year",
    "FROM payments SHOW net_payments GROUP BY card_brand, is_shop_pay_transaction DURING last_month",
]
