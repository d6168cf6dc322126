"""The relations behind the `discounts`, `fulfillments` and `returns` tables (ShopifyQL's schemas).

Each is trusted SQL written here over store tables every CommerceQL store has (`sales`, `orders`,
`refunds`, `refund_line_items`, `line_items`), so stores made by the importers get these tables
too. They are emitted per query as CTEs (commerceql.derived), through the dialect, so they run on
DuckDB and Spark alike. The `profitability` table needs no relation of its own: its rows are the
`sales` rows (commerceql/model/tables/profitability.yaml). Definitions: the model files and
docs/metrics.md (Notes per table); `tests/test_commerce_tables.py` checks the metrics against
Polars over the raw files.

discount_lines (the `discounts` table): one row per order line (the order-date rows of `sales`
other than shipping; test orders are not in `sales`) with what it was discounted and its order's
discount code and type. Discounts are negative amounts, as in `sales`, and cover line discounts,
the order discount allocated to the lines, and B2B price-list discounts. An order's discount
type is 'Discount code' when a code was applied, else 'Price list' when its lines carry
price-list (contract) discounts, else 'Automatic or manual' when it still has a discount; empty
without one. Orders are counted as distinct order ids, so the table groups by product as well.

    sale_id, order_id, order_name, ordered_at (the model's time column), customer_id,
    sales_channel, billing_country, billing_region, shipping_country, shipping_region,
    is_first_order, product_id, variant_id, discount_code, discount_type, is_discounted_order,
    is_discounted_line, quantity, gross_sales, discounts, contract_discounts

order_fulfillments (the `fulfillments` table): two kinds of row per order (test orders excluded),
`fulfillment_event` 'order' at the order's creation and 'fulfillment' at its fulfilment (only when
fulfilled at or before the store clock), so that orders fulfilled in a period are counted by the
fulfilment date while open orders are counted by the date they were placed.

    order_id, order_name, fulfillment_event, happened_at (time column), ordered_at, fulfilled_at,
    hours_to_fulfillment (fulfilment rows), is_fulfilled (by the clock), is_cancelled (by the
    clock), is_open (neither), units (the order's item count), shipping_method, shipping_country,
    shipping_region, shipping_city, sales_channel, customer_id, fulfillment_status (current)

return_lines (the `returns` table): one row per returned order line, i.e. per line item of a refund
whose kind is 'return' (cancellations put goods back but are not returns) with units coming back,
on the refund's date. A line refunded for money only (quantity 0: a goodwill refund an importer
spread over the order's lines) is a refund, not a return; it stays in sales' `returns` money.

    refund_line_item_id, refund_id, order_id, line_item_id, product_id, variant_id, returned_at
    (time column), quantity, subtotal (value of the goods, before tax), tax, reason (the line's
    return reason, empty when the store has none), restock_type, is_restocked (empty when the
    store does not say), ordered_quantity
    (of the line), line_price, order_name, sales_channel, customer_id
"""

from __future__ import annotations

from commerceql.derived import DerivedContext


def discount_lines_sql(c: DerivedContext) -> str:
    """One row per order line with its discounts and its order's discount type (the `discount_lines` relation)."""
    q = c.dialect.quote_identifier
    lines = f"(SELECT * FROM {q('sales')} WHERE event_type = 'order' AND line_type <> 'shipping')"
    per_order = (
        "SELECT s.order_id, MAX(s.discount_code) AS order_discount_code, "
        "SUM(COALESCE(s.discounts, 0)) AS order_discounts, "
        "SUM(COALESCE(s.contract_discounts, 0)) AS order_contract_discounts "
        f"FROM {lines} AS s GROUP BY s.order_id"
    )
    order_type = (
        "CASE WHEN o.order_discounts = 0 THEN NULL "
        "WHEN o.order_discount_code IS NOT NULL THEN 'Discount code' "
        "WHEN o.order_contract_discounts <> 0 THEN 'Price list' "
        "ELSE 'Automatic or manual' END"
    )
    return (
        "SELECT s.sale_id, s.order_id, s.order_name, s.happened_at AS ordered_at, s.customer_id, s.sales_channel, "
        "s.billing_country, s.billing_region, s.shipping_country, s.shipping_region, s.is_first_order, "
        "s.product_id, s.variant_id, o.order_discount_code AS discount_code, "
        f"{order_type} AS discount_type, o.order_discounts <> 0 AS is_discounted_order, "
        "COALESCE(s.discounts, 0) <> 0 AS is_discounted_line, "
        "COALESCE(s.quantity, 0) AS quantity, COALESCE(s.gross_sales, 0) AS gross_sales, "
        "COALESCE(s.discounts, 0) AS discounts, COALESCE(s.contract_discounts, 0) AS contract_discounts "
        f"FROM {lines} AS s JOIN ({per_order}) AS o ON o.order_id = s.order_id"
    )


def order_fulfillments_sql(c: DerivedContext) -> str:
    """Order rows at creation and fulfilment rows at fulfilment (the `order_fulfillments` relation)."""
    d = c.dialect
    q = d.quote_identifier
    clock = c.param(c.as_of)
    hours = f"CAST({d.epoch_seconds('o.fulfilled_at')} - {d.epoch_seconds('o.created_at')} AS DOUBLE) / 3600.0"
    fulfilled = f"(o.fulfilled_at IS NOT NULL AND o.fulfilled_at <= {clock})"
    cancelled = f"(o.cancelled_at IS NOT NULL AND o.cancelled_at <= {clock})"
    columns = (
        "o.order_id, o.name AS order_name, o.created_at AS ordered_at, o.fulfilled_at, "
        f"{fulfilled} AS is_fulfilled, {cancelled} AS is_cancelled, "
        f"NOT {fulfilled} AND NOT {cancelled} AS is_open, "
        "o.item_count AS units, o.shipping_method, o.shipping_country, o.shipping_region, o.shipping_city, "
        "o.sales_channel, o.customer_id, o.fulfillment_status"
    )
    base = f"FROM {q('orders')} AS o WHERE NOT COALESCE(o.is_test, FALSE) AND o.created_at <= {clock}"
    return (
        f"SELECT 'order' AS fulfillment_event, o.created_at AS happened_at, "
        f"CAST(NULL AS DOUBLE) AS hours_to_fulfillment, {columns} {base} "
        "UNION ALL "
        f"SELECT 'fulfillment' AS fulfillment_event, o.fulfilled_at AS happened_at, {hours} AS hours_to_fulfillment, "
        f"{columns} {base} AND {fulfilled}"
    )


def return_lines_sql(c: DerivedContext) -> str:
    """One row per returned order line, on the refund's date (the `return_lines` relation)."""
    q = c.dialect.quote_identifier
    return (
        "SELECT rl.refund_line_item_id, rl.refund_id, rl.order_id, rl.line_item_id, "
        "COALESCE(rl.product_id, li.product_id) AS product_id, COALESCE(rl.variant_id, li.variant_id) AS variant_id, "
        "r.created_at AS returned_at, rl.quantity, rl.subtotal, rl.tax, rl.reason, rl.restock_type, "
        "CASE WHEN rl.restock_type IS NOT NULL THEN rl.restock_type = 'return' END AS is_restocked, "
        "li.quantity AS ordered_quantity, li.price AS line_price, "
        "o.name AS order_name, o.sales_channel, o.customer_id "
        f"FROM {q('refund_line_items')} AS rl "
        f"JOIN {q('refunds')} AS r ON r.refund_id = rl.refund_id "
        f"LEFT JOIN {q('line_items')} AS li ON li.line_item_id = rl.line_item_id "
        f"LEFT JOIN {q('orders')} AS o ON o.order_id = rl.order_id "
        f"WHERE r.kind = 'return' AND rl.quantity > 0 AND r.created_at <= {c.param(c.as_of)} "
        "AND NOT COALESCE(o.is_test, FALSE)"
    )
