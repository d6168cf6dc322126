"""Figures of imported real Shopify exports against numbers computed straight from the raw CSV.

Each expected value is computed here with pandas over the export's own columns (never from the
store's `sales` table or the compiler), then compared with a CommerceQL query on the imported store,
to the cent. The real files are read in place from ../shared/realdata/shopify; without them these
tests skip, except under CI=true, where they must run.
"""

from __future__ import annotations

import os
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import commerceql as cql
from commerceql.importers import import_shopify

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
SHOPIFY = REALDATA / "shopify"
needs_realdata = pytest.mark.skipif(
    not SHOPIFY.is_dir() and os.environ.get("CI") != "true",
    reason=f"real Shopify exports not found at {SHOPIFY} (they are required when CI=true)",
)
CENT = Decimal("0.01")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("import-numbers")
    cache: dict[str, Path] = {}

    def get(folder: str) -> Path:
        if folder not in cache:
            import_shopify([SHOPIFY / folder], root / folder)
            cache[folder] = root / folder
        return cache[folder]

    return get


def _raw(path: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(order-level rows, line rows) of an orders export, amounts as Decimal."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("Subtotal", "Shipping", "Taxes", "Total", "Discount Amount", "Lineitem price"):
        if col in df:
            df[col] = [Decimal(v or "0") for v in df[col]]
    df["Lineitem quantity"] = [int(v or 0) for v in df["Lineitem quantity"]]
    heads = df[df["Financial Status"] != ""].copy()
    lines = df[df["Lineitem name"] != ""].copy()
    lines["amount"] = [q * p for q, p in zip(lines["Lineitem quantity"], lines["Lineitem price"], strict=True)]
    return heads, lines


def _one(store: Any, query: str) -> tuple[Any, ...]:
    return store.query(query).df.row(0)


def _dec(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


# ---------------------------------------------------------------------------------------------
# item 4: test orders are not orders


@needs_realdata
def test_test_orders_take_no_place_in_customer_history(imported: Any) -> None:
    """Monfrère: customer02146 placed four Bogus Gateway test orders (#1002-#1005); none counts."""
    heads, _ = _raw(SHOPIFY / "monfrere_tactical_audit" / "Shopify_orders_export_2.csv")
    heads["email"] = heads["Email"].str.strip().str.lower()
    heads["test"] = heads["Payment Method"].str.contains("bogus", case=False)
    heads["created"] = pd.to_datetime(heads["Created at"], utc=True)
    real = heads[~heads["test"] & (heads["email"] != "")]
    per_customer = real.groupby("email").agg(n=("Name", "size"), first=("created", "min"), last=("created", "max"))
    test_customers = set(heads.loc[heads["test"], "email"])
    assert "customer02146@example.com" in test_customers
    out = imported("monfrere_tactical_audit")
    store = cql.connect(out)
    try:
        # every customer with a real order is new exactly once; returning = two or more real orders
        expected = (len(per_customer), len(per_customer), int((per_customer["n"] >= 2).sum()))
        assert _one(store, "FROM sales SHOW customers, new_customers, returning_customers") == expected
        assert _one(store, "FROM orders SHOW customers, new_customers, returning_customers") == expected
        # the customers table's statistics count real orders only
        got = store.sql("""
            SELECT email, orders_count, first_order_at, last_order_at FROM customers
            WHERE email IN (SELECT DISTINCT o.email FROM (SELECT c.email FROM orders o JOIN customers c
                            USING (customer_id) WHERE o.is_test) o)
        """)
        assert set(got["email"]) == test_customers
        for email, count, first, last in got.iter_rows():
            if email in per_customer.index:
                row = per_customer.loc[email]
                assert (count, first, last) == (row["n"], row["first"].to_pydatetime(), row["last"].to_pydatetime())
            else:
                assert (count, first, last) == (0, None, None)
        # test orders have no position in the history
        assert store.sql("SELECT count(*) AS n FROM orders WHERE is_test AND (customer_order_number IS NOT NULL "
                         "OR is_first_order IS NOT NULL)")["n"][0] == 0
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# item 5: tips and gift cards are not sales; orders agrees with sales


@needs_realdata
def test_tips_are_not_in_order_total(imported: Any) -> None:
    """eda_on_sales_data: 208 tip lines. Total = Subtotal + Shipping + Taxes + tips."""
    heads, lines = _raw(SHOPIFY / "eda_on_sales_data" / "orders_export_1.csv")
    tips = sum(lines.loc[(lines["Lineitem name"].str.strip().str.lower() == "tip") & (lines["Lineitem sku"] == ""),
                         "amount"])
    assert tips == Decimal("977.88")
    parts = sum(heads["Subtotal"]) + sum(heads["Shipping"]) + sum(heads["Taxes"])
    assert parts == sum(heads["Total"]) - tips  # the export's own identity
    store = cql.connect(imported("eda_on_sales_data"))
    try:
        (order_time,) = _one(store, "FROM sales SHOW total_sales WHERE excludes_post_order_adjustments = true")
        (order_total,) = _one(store, "FROM orders SHOW order_total")
        assert _dec(order_time) == _dec(order_total) == parts
    finally:
        store.close()


def _rate(row: pd.Series) -> Decimal | None:
    for i in range(1, 6):
        match = re.search(r"(\d+(?:\.\d+)?)\s*%", row.get(f"Tax {i} Name", "") or "")
        if match:
            return Decimal(match.group(1)) / 100
    return None


def _incl(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount * rate / (1 + rate)).quantize(CENT, rounding=ROUND_HALF_UP)


@needs_realdata
def test_gift_cards_and_tax_on_shipping_customer_vip(imported: Any) -> None:
    """customer_vip sells one DIGITAL GIFT CARD - $100 (#1065), and charges EU VAT / GST inclusive of
    prices, with the same rate on shipping: Taxes = (Subtotal + Shipping) x r / (1 + r)."""
    heads, lines = _raw(SHOPIFY / "customer_vip" / "orders_export_1.csv")
    gift = lines["Lineitem name"].str.lower().str.contains("gift card")
    assert list(lines.loc[gift, "Name"]) == ["#1065"] and sum(lines.loc[gift, "amount"]) == 100
    goods = lines[~gift].groupby("Name")["amount"].sum()
    gross = Decimal(0)
    shipping = Decimal(0)
    for _, h in heads.iterrows():
        line_total = goods.get(h["Name"], Decimal(0))
        gift_total = sum(lines.loc[gift & (lines["Name"] == h["Name"]), "amount"])
        # a discount larger than lines - Subtotal is a free-shipping code
        ship = h["Shipping"] - max(Decimal(0), min(h["Discount Amount"] - (line_total + gift_total - h["Subtotal"]),
                                                   h["Shipping"]))
        included = h["Taxes"] > 0 and h["Total"] == h["Subtotal"] + ship
        ship_tax = Decimal(0)
        if included and ship > 0:
            rate = _rate(h)
            assert rate is not None
            # this store taxes shipping: the taxes match goods + shipping at the named rate
            assert abs(_incl(h["Subtotal"] + ship, rate) - h["Taxes"]) <= CENT
            ship_tax = _incl(ship, rate)
        gross += line_total - ((h["Taxes"] - ship_tax) if included else 0)
        shipping += ship - ship_tax
    assert (gross, shipping) == (Decimal("83390.29"), Decimal("1750.50"))
    store = cql.connect(imported("customer_vip"))
    try:
        got = _one(store, "FROM sales SHOW gross_sales, shipping_charges WHERE excludes_post_order_adjustments = true")
        assert tuple(_dec(v) for v in got) == (gross, shipping)
        got = _one(store, "FROM orders SHOW gross_sales, shipping_charged")
        assert tuple(_dec(v) for v in got) == (gross, shipping)
        # the gift card order is still an order, with nothing sold
        assert _one(store, "FROM sales SHOW orders, gross_sales, quantity_ordered WHERE order_name = '#1065'") == (
            1, Decimal("0.00"), 0)
        assert store.sql("SELECT gift_cards FROM reconciliation WHERE order_name = '#1065'")["gift_cards"][0] == 100
    finally:
        store.close()


@needs_realdata
def test_untaxed_shipping_keeps_its_amount_kidsliving(imported: Any) -> None:
    """kidsliving (ZAR, 15% VAT included) taxes goods only: Taxes = Subtotal x 15/115 on every order."""
    heads, _ = _raw(SHOPIFY / "kidsliving" / "orders_export.csv")
    included = heads[(heads["Taxes"] > 0) & (heads["Total"] == heads["Subtotal"] + heads["Shipping"])]
    assert all(abs(_incl(s, Decimal("0.15")) - t) <= CENT for s, t in zip(included["Subtotal"], included["Taxes"],
                                                                          strict=True))
    gross = sum(heads["Subtotal"]) - sum(included["Taxes"])
    shipping = sum(heads["Shipping"])
    store = cql.connect(imported("kidsliving"))
    try:
        got = _one(store, "FROM sales SHOW gross_sales, shipping_charges WHERE excludes_post_order_adjustments = true")
        assert tuple(_dec(v) for v in got) == (gross, shipping) == (Decimal("126060.03"), Decimal("2805.00"))
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# item 7: line rows lost by a spreadsheet re-save


@needs_realdata
def test_lost_line_rows_are_an_explicit_adjustment(imported: Any) -> None:
    """signal_analytics: 6 orders whose Subtotal exceeds their line rows by 133,845 PKR in all."""
    heads, lines = _raw(SHOPIFY / "signal_analytics" / "orders_export_1.csv")
    by_order = lines.groupby("Name")["amount"].sum()
    diff = {n: s - (by_order.get(n, Decimal(0)) - d)
            for n, s, d in zip(heads["Name"], heads["Subtotal"], heads["Discount Amount"], strict=True)}
    missing = {n: d for n, d in diff.items() if d}
    assert len(missing) == 6 and sum(missing.values()) == Decimal("133845")
    store = cql.connect(imported("signal_analytics"))
    try:
        # totals reconcile with the export's own Total
        (order_time,) = _one(store, "FROM sales SHOW total_sales WHERE excludes_post_order_adjustments = true")
        assert _dec(order_time) == sum(heads["Total"])
        (order_total,) = _one(store, "FROM orders SHOW order_total")
        assert _dec(order_total) == sum(heads["Total"])
        # the difference is one labelled row per order, which a query can leave out
        rows = store.query("FROM sales SHOW gross_sales WHERE line_type = 'adjustment' AND "
                           "excludes_post_order_adjustments = true GROUP BY order_name").df
        assert {n: _dec(v) for n, v in rows.iter_rows()} == missing
        (lines_only,) = _one(store, "FROM sales SHOW gross_sales WHERE line_type <> 'adjustment' AND "
                                    "excludes_post_order_adjustments = true")
        assert _dec(lines_only) == sum(lines["amount"])
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# orders and sales agree at order time on every real store with money


@needs_realdata
@pytest.mark.parametrize("folder", ["customer_vip", "dna_crm", "eda_on_sales_data", "explorer_analytics",
                                    "kidsliving", "maison_maria", "monfrere_tactical_audit", "signal_analytics",
                                    "d3js_test", "shopify_parsing", "shopify_data_ingestion"])
def test_orders_agree_with_sales_at_order_time(imported: Any, folder: str) -> None:
    store = cql.connect(imported(folder))
    try:
        sales = _one(store, "FROM sales SHOW gross_sales, discounts, shipping_charges, taxes, total_sales, orders, "
                            "customers, new_customers WHERE excludes_post_order_adjustments = true")
        orders = _one(store, "FROM orders SHOW gross_sales, discounts, shipping_charged, taxes_charged, order_total, "
                             "orders, customers, new_customers")
        assert sales == orders
    finally:
        store.close()
