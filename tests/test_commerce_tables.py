"""The `discounts`, `fulfillments`, `returns` and `profitability` tables against Polars over the raw files.

Expected values are computed here from the definitions in the model files (and docs/metrics.md)
with Polars over the store's raw Parquet files, mostly from the order-level tables (`orders`,
`line_items`, `refunds`, `refund_line_items`) rather than from `sales`, which the relations read:
so a wrong join or filter in a relation shows. Local dates are taken in the store's zone
(America/New_York) explicitly, so the answers cannot depend on the machine's zone.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql import derived
from commerceql.errors import CommerceQLError

TZ = "America/New_York"
ZONE = ZoneInfo(TZ)
CLOCK = dt.datetime(2025, 12, 15, 14, 0, tzinfo=ZONE)  # the sample store's clock (manifest as_of)


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def orders(sample_store_path) -> pl.DataFrame:
    return raw(sample_store_path, "orders").filter(~pl.col("is_test"))


@pytest.fixture(scope="module")
def line_items(sample_store_path) -> pl.DataFrame:
    return raw(sample_store_path, "line_items")


def local(column: str) -> pl.Expr:
    return pl.col(column).dt.convert_time_zone(TZ)


def between(column: str, start: dt.datetime, end: dt.datetime) -> pl.Expr:
    """Rows whose instant `column` falls in [start, end) (aware datetimes)."""
    return (pl.col(column) >= start.astimezone(dt.UTC)) & (pl.col(column) < end.astimezone(dt.UTC))


YEAR_2024 = (dt.datetime(2024, 1, 1, tzinfo=ZONE), dt.datetime(2025, 1, 1, tzinfo=ZONE))
NOVEMBER_2025 = (dt.datetime(2025, 11, 1, tzinfo=ZONE), dt.datetime(2025, 12, 1, tzinfo=ZONE))
Q3_2025 = (dt.datetime(2025, 7, 1, tzinfo=ZONE), dt.datetime(2025, 10, 1, tzinfo=ZONE))


def by_key(frame: pl.DataFrame, key: str) -> dict[object, dict[str, object]]:
    return {row[key]: row for row in frame.iter_rows(named=True)}


# ---- discounts ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def order_discounts(orders, line_items) -> pl.DataFrame:
    """One row per order with its discounts (positive here), gross sales, type and code, from orders + lines."""
    lines = line_items.group_by("order_id").agg(
        pl.col("gross").sum().alias("gross"), pl.col("contract_discount").sum().alias("contract"))
    frame = orders.join(lines, on="order_id", how="left").with_columns(
        pl.col("discount_codes").list.first().alias("code"))
    return frame.with_columns(
        pl.when(pl.col("total_discounts") == 0).then(None)
        .when(pl.col("code").is_not_null()).then(pl.lit("Discount code"))
        .when(pl.col("contract") > 0).then(pl.lit("Price list"))
        .otherwise(pl.lit("Automatic or manual")).alias("type"))


def test_discounts_by_code_match_the_orders(store, order_discounts):
    result = store.query(
        "FROM discounts SHOW product_and_order_discounts, applied_discounts, discounted_orders, orders, gross_sales, "
        "sales_after_discounts, average_discount_per_order, discount_rate GROUP BY discount_code DURING last_year"
    ).df
    year = order_discounts.filter(between("created_at", *YEAR_2024))
    got = by_key(result, "discount_code")
    codes = year["code"].unique().to_list()
    assert sorted(got, key=str) == sorted(codes, key=str)
    for code in codes:
        rows = year.filter(pl.col("code").is_null() if code is None else pl.col("code") == code)
        row = got[code]
        discounted = rows.filter(pl.col("total_discounts") > 0)
        total = rows["total_discounts"].sum()
        assert row["product_and_order_discounts"] == -total
        assert row["applied_discounts"] == -total
        assert row["discounted_orders"] == discounted.height
        assert row["orders"] == rows.height
        assert row["gross_sales"] == rows["gross"].sum()
        assert row["sales_after_discounts"] == rows["gross"].sum() - total
        if discounted.height:
            assert float(row["average_discount_per_order"]) == pytest.approx(-float(total) / discounted.height)
        assert row["discount_rate"] == pytest.approx(float(total) / float(rows["gross"].sum()))


def test_discount_types_and_the_discounted_share(store, order_discounts):
    result = store.query(
        "FROM discounts SHOW discounted_orders, orders, discounted_order_rate, price_list_discounts "
        "GROUP BY discount_type DURING last_year").df
    year = order_discounts.filter(between("created_at", *YEAR_2024))
    got = by_key(result, "discount_type")
    assert set(got) == set(year["type"].unique().to_list())
    for kind, row in got.items():
        rows = year.filter(pl.col("type").is_null() if kind is None else pl.col("type") == kind)
        assert row["orders"] == rows.height
        assert row["discounted_orders"] == (0 if kind is None else rows.height)
        assert row["price_list_discounts"] == -rows["contract"].sum()
    everything = store.query("FROM discounts SHOW discounted_order_rate DURING last_year").df
    assert everything["discounted_order_rate"][0] == pytest.approx(
        year.filter(pl.col("total_discounts") > 0).height / year.height)


def test_discounts_by_month_in_the_store_zone_with_a_filter(store, order_discounts):
    result = store.query(
        "FROM discounts SHOW product_and_order_discounts, discounted_orders WHERE sales_channel = 'Online Store' "
        "TIMESERIES month DURING last_quarter").df
    frame = (order_discounts.filter(between("created_at", *Q3_2025) & (pl.col("sales_channel") == "Online Store"))
             .with_columns(local("created_at").dt.truncate("1mo").dt.date().alias("month")))
    expected = frame.group_by("month").agg(
        (-pl.col("total_discounts").sum()).alias("discounts"),
        (pl.col("total_discounts") > 0).sum().alias("discounted")).sort("month")
    assert result["month"].to_list() == expected["month"].to_list()
    assert result["product_and_order_discounts"].to_list() == expected["discounts"].to_list()
    assert result["discounted_orders"].to_list() == expected["discounted"].to_list()


def test_discounts_by_product_type_count_distinct_orders(store, orders, line_items, sample_store_path):
    """Per product type: the lines' discounts, and the orders whose line of that type was discounted."""
    result = store.query(
        "FROM discounts SHOW product_and_order_discounts, discounted_orders, orders, gross_sales, quantity_ordered "
        "GROUP BY product_type DURING last_year").df
    products = raw(sample_store_path, "products").select("product_id", "product_type")
    year = orders.filter(between("created_at", *YEAR_2024)).select("order_id")
    lines = line_items.join(year, on="order_id").join(products, on="product_id", how="left")
    got = by_key(result, "product_type")
    assert set(got) == set(lines["product_type"].unique())
    for kind, row in got.items():
        rows = lines.filter(pl.col("product_type").is_null() if kind is None else pl.col("product_type") == kind)
        assert row["product_and_order_discounts"] == -rows["total_discount"].sum()
        assert row["discounted_orders"] == rows.filter(pl.col("total_discount") > 0)["order_id"].n_unique()
        assert row["orders"] == rows["order_id"].n_unique()
        assert row["gross_sales"] == rows["gross"].sum()
        assert row["quantity_ordered"] == rows["quantity"].sum()


def test_discounts_equal_the_sales_tables_discounts(store):
    """The same amount from two tables: discounts on order rows of sales, by channel, last year."""
    ours = store.query("FROM discounts SHOW product_and_order_discounts GROUP BY sales_channel DURING last_year").df
    theirs = store.query(
        "FROM sales SHOW discounts WHERE excludes_post_order_adjustments GROUP BY sales_channel DURING last_year").df
    assert dict(ours.iter_rows()) == dict(theirs.iter_rows())


# ---- fulfillments -------------------------------------------------------------------------------


def hours(frame: pl.DataFrame) -> list[float]:
    return [(f - c).total_seconds() / 3600 for c, f in zip(frame["created_at"], frame["fulfilled_at"], strict=True)]


def test_fulfillments_by_shipping_method(store, orders):
    result = store.query(
        "FROM fulfillments SHOW orders_fulfilled, units_fulfilled, average_hours_order_to_fulfillment, "
        "median_hours_order_to_fulfillment, average_days_order_to_fulfillment, orders_fulfilled_within_24_hours, "
        "orders_placed, unfulfilled_orders, fulfillment_rate GROUP BY shipping_method DURING last_month").df
    fulfilled = orders.filter(pl.col("fulfilled_at").is_not_null() & between("fulfilled_at", *NOVEMBER_2025))
    placed = orders.filter(between("created_at", *NOVEMBER_2025))
    clock = CLOCK.astimezone(dt.UTC)
    for row in result.iter_rows(named=True):
        method = row["shipping_method"]
        done = fulfilled.filter(pl.col("shipping_method") == method)
        made = placed.filter(pl.col("shipping_method") == method)
        spans = hours(done)
        assert row["orders_fulfilled"] == done.height
        assert row["units_fulfilled"] == done["item_count"].sum()
        assert row["average_hours_order_to_fulfillment"] == pytest.approx(statistics.fmean(spans))
        assert row["median_hours_order_to_fulfillment"] == pytest.approx(statistics.median(spans))
        assert row["average_days_order_to_fulfillment"] == pytest.approx(statistics.fmean(spans) / 24)
        assert row["orders_fulfilled_within_24_hours"] == sum(1 for h in spans if h <= 24)
        assert row["orders_placed"] == made.height
        cancelled = pl.col("cancelled_at").is_not_null() & (pl.col("cancelled_at") <= clock)
        done_by_clock = pl.col("fulfilled_at").is_not_null() & (pl.col("fulfilled_at") <= clock)
        assert row["unfulfilled_orders"] == made.filter(~cancelled & ~done_by_clock).height
        base = made.filter(~cancelled)
        if base.height:
            assert row["fulfillment_rate"] == pytest.approx(base.filter(done_by_clock).height / base.height)
    assert sorted(result["shipping_method"]) == sorted(set(fulfilled["shipping_method"]) | set(placed["shipping_method"]))


def test_fulfillments_by_week_in_the_store_zone_with_a_filter(store, orders):
    """Fulfilments count on their local fulfilment date; open orders on the date they were placed."""
    result = store.query(
        "FROM fulfillments SHOW orders_fulfilled, unfulfilled_orders WHERE shipping_country = 'United States' "
        "TIMESERIES day SINCE 2025-12-01 UNTIL 2025-12-15").df
    start, end = dt.datetime(2025, 12, 1, tzinfo=ZONE), dt.datetime(2025, 12, 16, tzinfo=ZONE)
    us = orders.filter(pl.col("shipping_country") == "United States")
    done = (us.filter(pl.col("fulfilled_at").is_not_null() & between("fulfilled_at", start, end))
            .group_by(local("fulfilled_at").dt.date().alias("day")).len())
    clock = CLOCK.astimezone(dt.UTC)
    open_orders = (us.filter(between("created_at", start, end)
                             & (pl.col("fulfilled_at").is_null() | (pl.col("fulfilled_at") > clock))
                             & (pl.col("cancelled_at").is_null() | (pl.col("cancelled_at") > clock)))
                   .group_by(local("created_at").dt.date().alias("day")).len())
    expected_done = dict(done.iter_rows())
    expected_open = dict(open_orders.iter_rows())
    assert sum(expected_open.values()) > 0  # the last days of the store have open orders
    assert result.height == 15
    for row in result.iter_rows(named=True):
        assert row["orders_fulfilled"] == expected_done.get(row["day"], 0)
        assert row["unfulfilled_orders"] == expected_open.get(row["day"], 0)


# ---- returns ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def returned(sample_store_path, orders, line_items) -> pl.DataFrame:
    """Refund lines with units of returns (not cancellations) of real orders, with product and refund date."""
    refunds = raw(sample_store_path, "refunds").filter(pl.col("kind") == "return").select("refund_id", "created_at")
    products = raw(sample_store_path, "products").select("product_id", "product_type")
    lines = raw(sample_store_path, "refund_line_items").filter(pl.col("quantity") > 0).join(refunds, on="refund_id")
    lines = lines.join(orders.select("order_id", "sales_channel"), on="order_id")
    ordered = line_items.select("line_item_id", pl.col("quantity").alias("ordered"))
    return lines.join(products, on="product_id", how="left").join(ordered, on="line_item_id", how="left")


def test_returns_by_reason(store, returned):
    result = store.query(
        "FROM returns SHOW returned_quantity, returned_item_lines, returns, orders_with_returns, returned_amount, "
        "returned_taxes, restocked_quantity, restock_rate, average_returned_amount, returned_share_of_line_quantity "
        "GROUP BY return_line_item_reason DURING last_year").df
    year = returned.filter(between("created_at", *YEAR_2024))
    got = by_key(result, "return_line_item_reason")
    assert set(got) == set(year["reason"].unique())
    for reason, row in got.items():
        rows = year.filter(pl.col("reason") == reason)
        restocked = rows.filter(pl.col("restock_type") == "return")["quantity"].sum()
        assert row["returned_quantity"] == rows["quantity"].sum()
        assert row["returned_item_lines"] == rows.height
        assert row["returns"] == rows["refund_id"].n_unique()
        assert row["orders_with_returns"] == rows["order_id"].n_unique()
        assert row["returned_amount"] == rows["subtotal"].sum()
        assert row["returned_taxes"] == rows["tax"].sum()
        assert row["restocked_quantity"] == restocked
        assert row["restock_rate"] == pytest.approx(restocked / rows["quantity"].sum())
        assert float(row["average_returned_amount"]) == pytest.approx(
            float(rows["subtotal"].sum()) / rows["refund_id"].n_unique())
        assert row["returned_share_of_line_quantity"] == pytest.approx(rows["quantity"].sum() / rows["ordered"].sum())


def test_returns_by_month_in_the_store_zone_with_a_filter(store, returned):
    result = store.query(
        "FROM returns SHOW returned_quantity, returned_amount WHERE product_type = 'Work Apparel' "
        "TIMESERIES month DURING last_quarter").df
    frame = (returned.filter(between("created_at", *Q3_2025) & (pl.col("product_type") == "Work Apparel"))
             .with_columns(local("created_at").dt.truncate("1mo").dt.date().alias("month")))
    expected = frame.group_by("month").agg(pl.col("quantity").sum(), pl.col("subtotal").sum()).sort("month")
    assert result["month"].to_list() == expected["month"].to_list()
    assert result["returned_quantity"].to_list() == expected["quantity"].to_list()
    assert result["returned_amount"].to_list() == expected["subtotal"].to_list()


def test_return_rate_against_units_ordered_reads_from_sales_and_returns(store, returned, orders, line_items,
                                                                        sample_store_path):
    result = store.query(
        "FROM sales, returns SHOW quantity_ordered, returned_quantity, returned_quantity / quantity_ordered AS return_rate "
        "GROUP BY product_type DURING last_year").df
    products = raw(sample_store_path, "products").select("product_id", "product_type")
    ordered = (line_items.join(orders.filter(between("created_at", *YEAR_2024)).select("order_id"), on="order_id")
               .join(products, on="product_id").group_by("product_type").agg(pl.col("quantity").sum()))
    back = (returned.filter(between("created_at", *YEAR_2024)).group_by("product_type")
            .agg(pl.col("quantity").sum().alias("back")))
    expected = ordered.join(back, on="product_type", how="left").with_columns(pl.col("back").fill_null(0))
    got = by_key(result, "product_type")
    for row in expected.iter_rows(named=True):
        answer = got[row["product_type"]]
        assert answer["quantity_ordered"] == row["quantity"]
        assert answer["returned_quantity"] == row["back"]
        assert answer["return_rate"] == pytest.approx(row["back"] / row["quantity"])


# ---- profitability ------------------------------------------------------------------------------


def test_profitability_matches_the_sales_rows_by_channel(store, sample_store_path):
    result = store.query(
        "FROM profitability SHOW net_sales, cost_of_goods_sold, gross_profit, gross_margin, "
        "net_sales_with_cost_recorded, net_sales_without_cost_recorded GROUP BY sales_channel DURING last_year").df
    sales = raw(sample_store_path, "sales").filter(between("happened_at", *YEAR_2024))
    got = by_key(result, "sales_channel")
    assert set(got) == set(sales["sales_channel"].unique())
    for channel, row in got.items():
        rows = sales.filter(pl.col("sales_channel") == channel)
        net, cost = rows["net_sales"].sum(), rows["cost"].sum()
        assert row["net_sales"] == net
        assert row["cost_of_goods_sold"] == cost
        assert row["gross_profit"] == net - cost
        assert row["gross_margin"] == pytest.approx(float(net - cost) / float(net))
        assert row["net_sales_with_cost_recorded"] == rows.filter(pl.col("cost").is_not_null())["net_sales"].sum()
        assert row["net_sales_without_cost_recorded"] == rows.filter(pl.col("cost").is_null())["net_sales"].sum()


def test_profit_at_delivery_per_order_matches_the_orders(store, orders, line_items):
    """Before returns: an order's subtotal and shipping less its goods' cost, from orders and lines."""
    result = store.query(
        "FROM profitability SHOW average_revenue_before_returns, average_store_costs_before_returns, "
        "average_profit_at_delivery_before_returns, average_sale_after_discounts, average_sales_taxes, "
        "average_customer_shipping_charges, average_cost_of_goods_sold, orders "
        "WHERE sales_channel = 'Wholesale' GROUP BY order_name DURING last_month").df
    cost = line_items.group_by("order_id").agg(pl.col("cost").sum().alias("cost"))
    month = orders.filter(between("created_at", *NOVEMBER_2025) & (pl.col("sales_channel") == "Wholesale"))
    expected = by_key(month.join(cost, on="order_id"), "name")
    # orders placed earlier with a reversal in the month have rows but no order: no averages
    reversed_only = result.filter(pl.col("orders") == 0)
    assert reversed_only["average_revenue_before_returns"].null_count() == reversed_only.height
    placed = result.filter(pl.col("orders") > 0)
    assert set(placed["order_name"]) == set(expected)
    for row in placed.iter_rows(named=True):
        order = expected[row["order_name"]]
        revenue = order["subtotal"] + order["shipping"]
        assert row["orders"] == 1
        assert Decimal(str(row["average_revenue_before_returns"])) == revenue
        assert Decimal(str(row["average_store_costs_before_returns"])) == order["cost"]
        assert Decimal(str(row["average_profit_at_delivery_before_returns"])) == revenue - order["cost"]
        assert Decimal(str(row["average_sale_after_discounts"])) == order["subtotal"]
        assert Decimal(str(row["average_sales_taxes"])) == order["taxes"]
        assert Decimal(str(row["average_customer_shipping_charges"])) == order["shipping"]
        assert Decimal(str(row["average_cost_of_goods_sold"])) == order["cost"]


def test_profitability_by_month_in_the_store_zone(store, orders, line_items):
    result = store.query(
        "FROM profitability SHOW revenue_before_returns, profit_at_delivery_before_returns, orders "
        "TIMESERIES month DURING last_quarter").df
    cost = line_items.group_by("order_id").agg(pl.col("cost").sum().alias("cost"))
    frame = (orders.filter(between("created_at", *Q3_2025)).join(cost, on="order_id")
             .with_columns(local("created_at").dt.truncate("1mo").dt.date().alias("month")))
    expected = frame.group_by("month").agg(
        (pl.col("subtotal") + pl.col("shipping")).sum().alias("revenue"),
        (pl.col("subtotal") + pl.col("shipping") - pl.col("cost")).sum().alias("profit"),
        pl.len().alias("orders")).sort("month")
    assert result["month"].to_list() == expected["month"].to_list()
    assert result["revenue_before_returns"].to_list() == expected["revenue"].to_list()
    assert result["profit_at_delivery_before_returns"].to_list() == expected["profit"].to_list()
    assert result["orders"].to_list() == expected["orders"].to_list()


# ---- what a store cannot answer -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("FROM returns SHOW returned_quantity GROUP BY return_status", ("return_status", "refunded")),
        ("FROM returns SHOW returned_quantity WHERE is_unverified_return_line_item", ("unverified", "inspected")),
        ("FROM fulfillments SHOW median_hours_order_to_delivery", ("delivery times",)),
        ("FROM fulfillments SHOW orders_fulfilled GROUP BY shipping_carrier", ("carrier", "shipping_method")),
        ("FROM discounts SHOW shipping_discounts", ("shipping lines",)),
        ("FROM discounts SHOW applied_discounts GROUP BY discount_id", ("discount_code",)),
        ("FROM profitability SHOW average_store_shipping_costs", ("shipping labels",)),
    ],
)
def test_fields_without_data_are_refused_naming_the_data(store, query, names):
    with pytest.raises(CommerceQLError) as refused:
        store.query(query)
    assert "has no data for" in refused.value.message
    assert all(name in refused.value.message for name in names), refused.value.message
    assert refused.value.span is not None


def test_the_refusal_reason_names_the_missing_table():
    manifest = {"missing_tables": {"refund_line_items": "no refund lines were imported"}}
    assert derived.missing_data("return_lines", "returns", manifest) == (
        "table `returns` has no data in this store: no refund lines were imported")
    assert derived.missing_data("discount_orders", "discounts", manifest) is None
    assert derived.missing_data("order_fulfillments", "fulfillments", {"missing_tables": {"orders": "none"}}) == (
        "table `fulfillments` has no data in this store: none")


def test_a_store_without_refund_lines_refuses_returns_at_the_table_name(sample_store_path, tmp_path):
    """The sample store's files under a manifest that says its import had no refund lines."""
    manifest = json.loads((sample_store_path / "manifest.json").read_text(encoding="utf-8"))
    for file in manifest["tables"].values():
        (tmp_path / file).symlink_to(Path(sample_store_path, file))
    manifest["missing_tables"] = {"refund_line_items": "the export had no refund lines"}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    text = "FROM returns SHOW returned_quantity DURING last_month"
    with cql.connect(tmp_path) as limited:
        with pytest.raises(CommerceQLError) as refused:
            limited.query(text)
        assert "the export had no refund lines" in refused.value.message
        assert refused.value.span.start_pos == text.index("returns")
        assert limited.query("FROM discounts SHOW discounted_orders DURING last_month").df.height == 1


SPARK_QUERIES = [
    "FROM discounts SHOW product_and_order_discounts, discounted_orders, orders, discounted_order_rate, "
    "average_discount_per_order GROUP BY discount_code WITH TOTALS DURING last_year",
    "FROM discounts SHOW applied_discounts, discount_rate GROUP BY discount_type TIMESERIES month DURING last_quarter",
    "FROM discounts SHOW product_and_order_discounts, discounted_orders, orders GROUP BY product_type DURING last_year",
    "FROM fulfillments SHOW orders_fulfilled, units_fulfilled, average_hours_order_to_fulfillment, "
    "median_hours_order_to_fulfillment, unfulfilled_orders, fulfillment_rate GROUP BY shipping_method DURING last_month",
    "FROM fulfillments SHOW orders_fulfilled, percent_fulfilled_within_24_hours, unfulfilled_orders "
    "TIMESERIES day SINCE 2025-12-01 UNTIL 2025-12-15",
    "FROM returns SHOW returned_quantity, returns, returned_amount, restock_rate GROUP BY return_line_item_reason "
    "DURING last_year",
    "FROM sales, returns SHOW quantity_ordered, returned_quantity GROUP BY product_type TIMESERIES quarter DURING last_year",
    "FROM profitability SHOW net_sales, cost_of_goods_sold, gross_profit, gross_margin, "
    "average_profit_at_delivery_before_returns GROUP BY sales_channel DURING last_year",
    "FROM sales, profitability SHOW total_sales, average_profit_at_delivery_before_returns "
    "GROUP BY order_name, day DURING last_week ORDER BY total_sales DESC LIMIT 20",
]
