"""The sample store: integrity, money identities, determinism and realistic shape.

Every assertion is checked with hand-written SQL over the Parquet files (never through the
CommerceQL compiler), on the bundled store (50k orders, 3 years, seed 42) unless noted.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from commerceql.dialect import DUCKDB
from commerceql.model import builtin_model
from commerceql.sample import GENERATOR_VERSION, TABLES, generate_store
from commerceql.sample._calendar import black_friday

STORE_TZ = "America/New_York"  # the sample store's zone; the oracle session itself runs in UTC

AS_OF = "TIMESTAMPTZ '2025-12-15 14:00:00-05:00'"


def one(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


# ---- manifest and schema -------------------------------------------------------------------------


def test_manifest_describes_the_store(sample_store_path: Path) -> None:
    manifest = json.loads((sample_store_path / "manifest.json").read_text())
    assert manifest["format"] == "commerceql-store"
    assert manifest["format_version"] == 1
    assert manifest["currency"] == "USD"
    assert manifest["timezone"] == "America/New_York"
    assert dt.datetime.fromisoformat(manifest["as_of"]) == dt.datetime.fromisoformat("2025-12-15T14:00:00-05:00")
    assert manifest["generator"] == {"version": GENERATOR_VERSION, "seed": 42, "orders": 50_000, "years": 3}
    assert set(manifest["tables"]) == set(TABLES)
    for file in manifest["tables"].values():
        assert (sample_store_path / file).is_file()


SALES_COLUMNS = {
    "sale_id": "BIGINT", "order_id": "BIGINT", "order_name": "VARCHAR", "line_item_id": "BIGINT",
    "happened_at": "TIMESTAMP WITH TIME ZONE", "event_type": "VARCHAR", "line_type": "VARCHAR",
    "product_id": "BIGINT", "variant_id": "BIGINT", "customer_id": "BIGINT", "company_id": "BIGINT",
    "sales_channel": "VARCHAR", "source_name": "VARCHAR", "billing_country": "VARCHAR",
    "billing_region": "VARCHAR", "billing_city": "VARCHAR", "shipping_country": "VARCHAR",
    "shipping_region": "VARCHAR", "shipping_city": "VARCHAR", "discount_code": "VARCHAR",
    "is_first_order": "BOOLEAN", "quantity": "INTEGER", "gross_sales": "DECIMAL(18,2)",
    "discounts": "DECIMAL(18,2)", "sales_reversals": "DECIMAL(18,2)", "net_sales": "DECIMAL(18,2)",
    "taxes": "DECIMAL(18,2)", "shipping_charges": "DECIMAL(18,2)", "total_sales": "DECIMAL(18,2)",
    "cost": "DECIMAL(18,2)", "product_title_at_sale": "VARCHAR", "variant_sku_at_sale": "VARCHAR",
    "price_list": "VARCHAR", "volume_break": "VARCHAR", "contract_discounts": "DECIMAL(18,2)",
    "volume_break_discounts": "DECIMAL(18,2)",
}


def test_sales_table_has_the_contract_columns(duckdb_connection) -> None:
    got = {name: type_ for name, type_, *_ in rows(duckdb_connection, "DESCRIBE sales")}
    assert got == SALES_COLUMNS


def test_timestamps_money_and_tags_have_the_store_types(duckdb_connection) -> None:
    con = duckdb_connection
    types = {(t, c): ty for t, c, ty in rows(con, """
        SELECT table_name, column_name, data_type FROM information_schema.columns""")}
    for (table, column), type_ in types.items():
        if column.endswith("_at"):
            assert type_ == "TIMESTAMP WITH TIME ZONE", (table, column)
    assert types[("customers", "tags")] == "VARCHAR[]"
    assert types[("orders", "discount_codes")] == "VARCHAR[]"
    for column in ("line_items_total", "total_discounts", "subtotal", "shipping", "taxes", "total"):
        assert types[("orders", column)] == "DECIMAL(18,2)"


# ---- keys and referential integrity --------------------------------------------------------------

PRIMARY_KEYS = {
    "products": "product_id", "variants": "variant_id", "companies": "company_id", "customers": "customer_id",
    "orders": "order_id", "line_items": "line_item_id", "refunds": "refund_id",
    "refund_line_items": "refund_line_item_id", "checkouts": "checkout_id", "sessions": "session_id",
    "draft_orders": "draft_order_id", "sales": "sale_id",
}

FOREIGN_KEYS = [
    ("variants", "product_id", "products", "product_id"),
    ("customers", "company_id", "companies", "company_id"),
    ("companies", "main_contact_customer_id", "customers", "customer_id"),
    ("orders", "customer_id", "customers", "customer_id"),
    ("orders", "company_id", "companies", "company_id"),
    ("line_items", "order_id", "orders", "order_id"),
    ("line_items", "product_id", "products", "product_id"),
    ("line_items", "variant_id", "variants", "variant_id"),
    ("refunds", "order_id", "orders", "order_id"),
    ("refund_line_items", "refund_id", "refunds", "refund_id"),
    ("refund_line_items", "line_item_id", "line_items", "line_item_id"),
    ("refund_line_items", "order_id", "orders", "order_id"),
    ("checkouts", "session_id", "sessions", "session_id"),
    ("checkouts", "order_id", "orders", "order_id"),
    ("checkouts", "customer_id", "customers", "customer_id"),
    ("sessions", "order_id", "orders", "order_id"),
    ("sessions", "customer_id", "customers", "customer_id"),
    ("draft_orders", "order_id", "orders", "order_id"),
    ("draft_orders", "customer_id", "customers", "customer_id"),
    ("draft_orders", "company_id", "companies", "company_id"),
    ("sales", "order_id", "orders", "order_id"),
    ("sales", "line_item_id", "line_items", "line_item_id"),
    ("sales", "product_id", "products", "product_id"),
    ("sales", "variant_id", "variants", "variant_id"),
    ("sales", "customer_id", "customers", "customer_id"),
    ("sales", "company_id", "companies", "company_id"),
]


def test_primary_keys_are_unique_and_not_null(duckdb_connection) -> None:
    for table, key in PRIMARY_KEYS.items():
        n, distinct, nulls = duckdb_connection.execute(
            f"SELECT COUNT(*), COUNT(DISTINCT {key}), COUNT(*) - COUNT({key}) FROM {table}").fetchone()
        assert n > 0 and n == distinct and nulls == 0, table


def test_every_foreign_key_resolves(duckdb_connection) -> None:
    for child, column, parent, key in FOREIGN_KEYS:
        dangling = one(duckdb_connection, f"""
            SELECT COUNT(*) FROM {child} c WHERE c.{column} IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = c.{column})""")
        assert dangling == 0, f"{child}.{column} -> {parent}.{key}"


def test_denormalised_keys_agree(duckdb_connection) -> None:
    con = duckdb_connection
    assert one(con, """SELECT COUNT(*) FROM line_items l JOIN variants v USING (variant_id)
                       WHERE v.product_id <> l.product_id""") == 0
    assert one(con, """SELECT COUNT(*) FROM refund_line_items r JOIN line_items l USING (line_item_id)
                       WHERE r.order_id <> l.order_id OR r.variant_id <> l.variant_id OR r.quantity > l.quantity
                          OR r.quantity <= 0""") == 0
    assert one(con, """SELECT COUNT(*) FROM refund_line_items r JOIN refunds f USING (refund_id)
                       WHERE r.order_id <> f.order_id""") == 0
    # a line is never refunded more than it was bought
    assert one(con, """SELECT COUNT(*) FROM (SELECT line_item_id, SUM(quantity) q FROM refund_line_items GROUP BY 1)
                       JOIN line_items l USING (line_item_id) WHERE q > l.quantity""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN line_items l USING (line_item_id)
                       WHERE s.order_id <> l.order_id OR s.variant_id <> l.variant_id""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN orders o USING (order_id)
                       WHERE s.customer_id <> o.customer_id OR s.order_name <> o.name
                          OR s.company_id IS DISTINCT FROM o.company_id""") == 0
    assert one(con, """SELECT COUNT(*) FROM customers c JOIN companies k ON c.company_id = k.company_id
                       WHERE c.role IS NULL""") == 0
    assert one(con, """SELECT COUNT(*) FROM sessions s JOIN orders o USING (order_id)
                       WHERE s.customer_id <> o.customer_id OR s.started_at > o.created_at
                          OR NOT s.completed_checkout""") == 0
    assert one(con, """SELECT COUNT(*) FROM checkouts k JOIN orders o USING (order_id)
                       WHERE k.completed_at <> o.created_at OR k.created_at > o.created_at""") == 0
    # online-store and B2B-portal (Wholesale) orders each come from exactly one converting session
    # and one checkout of their channel
    online = one(con, "SELECT COUNT(*) FROM orders WHERE sales_channel IN ('Online Store', 'Wholesale') AND NOT is_test")
    assert one(con, "SELECT COUNT(DISTINCT order_id) FROM sessions WHERE completed_checkout") == online
    assert one(con, "SELECT COUNT(*) FROM sessions WHERE completed_checkout") == online
    assert one(con, "SELECT COUNT(DISTINCT order_id) FROM checkouts") == online
    assert one(con, "SELECT COUNT(*) FROM checkouts WHERE order_id IS NOT NULL") == online
    assert one(con, """SELECT COUNT(*) FROM checkouts k JOIN orders o USING (order_id)
                       WHERE k.sales_channel <> o.sales_channel OR k.customer_id <> o.customer_id""") == 0
    assert one(con, """SELECT COUNT(*) FROM sessions s JOIN orders o USING (order_id)
                       WHERE s.sales_channel <> o.sales_channel""") == 0
    # every session that reached checkout started exactly one checkout (completing sessions: theirs)
    assert one(con, "SELECT COUNT(*) FROM sessions WHERE reached_checkout") == one(con, "SELECT COUNT(*) FROM checkouts")
    assert one(con, "SELECT COUNT(*) FROM checkouts k JOIN sessions s USING (session_id) WHERE NOT s.reached_checkout "
                    "OR k.sales_channel <> s.sales_channel") == 0


# ---- money identities -----------------------------------------------------------------------------


def test_order_amounts_add_up(duckdb_connection) -> None:
    con = duckdb_connection
    assert one(con, "SELECT COUNT(*) FROM orders WHERE subtotal <> line_items_total - total_discounts") == 0
    assert one(con, "SELECT COUNT(*) FROM orders WHERE total <> subtotal + shipping + taxes") == 0
    assert one(con, "SELECT COUNT(*) FROM orders WHERE current_total <> total - total_refunded") == 0
    mismatched = one(con, """
        WITH l AS (SELECT order_id, SUM(gross) gross, SUM(total_discount) disc, SUM(net) net, SUM(tax) tax,
                          SUM(quantity) qty, COUNT(*) n
                   FROM line_items GROUP BY 1)
        SELECT COUNT(*) FROM orders o LEFT JOIN l USING (order_id)
        WHERE l.gross IS DISTINCT FROM o.line_items_total OR l.disc IS DISTINCT FROM o.total_discounts
           OR l.net IS DISTINCT FROM o.subtotal OR l.tax IS DISTINCT FROM o.taxes
           OR l.qty IS DISTINCT FROM o.item_count OR l.n IS DISTINCT FROM o.line_count""")
    assert mismatched == 0
    assert one(con, """SELECT COUNT(*) FROM line_items
                       WHERE gross <> price * quantity OR net <> gross - total_discount
                          OR total_discount <> line_discount + allocated_order_discount
                          OR cost <> unit_cost * quantity OR net < 0 OR tax < 0""") == 0
    assert one(con, """SELECT COUNT(*) FROM refunds
                       WHERE total_refunded <> refunded_subtotal + refunded_tax + refunded_shipping""") == 0
    assert one(con, """WITH r AS (SELECT refund_id, SUM(subtotal) s, SUM(tax) t, SUM(quantity) q
                                  FROM refund_line_items GROUP BY 1)
                       SELECT COUNT(*) FROM refunds f JOIN r USING (refund_id)
                       WHERE r.s <> f.refunded_subtotal OR r.t <> f.refunded_tax OR r.q <> f.item_count""") == 0
    assert one(con, """WITH r AS (SELECT order_id, SUM(total_refunded) t FROM refunds GROUP BY 1)
                       SELECT COUNT(*) FROM orders o LEFT JOIN r USING (order_id)
                       WHERE COALESCE(r.t, 0) <> o.total_refunded OR o.total_refunded > o.total""") == 0


def test_every_sales_row_satisfies_the_identities(duckdb_connection) -> None:
    con = duckdb_connection
    assert one(con, "SELECT COUNT(*) FROM sales WHERE net_sales <> gross_sales + discounts + sales_reversals") == 0
    assert one(con, "SELECT COUNT(*) FROM sales WHERE total_sales <> net_sales + taxes + shipping_charges") == 0
    assert one(con, "SELECT COUNT(*) FROM sales WHERE discounts > 0 OR sales_reversals > 0") == 0
    assert one(con, """SELECT COUNT(*) FROM sales WHERE event_type = 'order'
                       AND (sales_reversals <> 0 OR quantity < 0 OR gross_sales < 0 OR taxes < 0 OR cost < 0)""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales WHERE event_type <> 'order'
                       AND (gross_sales <> 0 OR discounts <> 0 OR quantity > 0 OR taxes > 0
                            OR shipping_charges > 0 OR cost > 0)""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales WHERE line_type = 'shipping'
                       AND (quantity <> 0 OR line_item_id IS NOT NULL OR variant_id IS NOT NULL
                            OR product_id IS NOT NULL OR gross_sales <> 0 OR net_sales <> 0 OR taxes <> 0)""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales WHERE line_type = 'product'
                       AND (line_item_id IS NULL OR variant_id IS NULL OR shipping_charges <> 0
                            OR quantity = 0 OR product_title_at_sale IS NULL OR variant_sku_at_sale IS NULL)""") == 0
    # order rows carry the line exactly (price x quantity, discounts, tax, cost)
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN line_items l USING (line_item_id)
                       WHERE s.event_type = 'order' AND (s.gross_sales <> l.price * l.quantity
                          OR s.gross_sales <> l.gross OR s.discounts <> -l.total_discount OR s.taxes <> l.tax
                          OR s.quantity <> l.quantity OR s.cost <> l.cost OR s.happened_at <> (
                             SELECT created_at FROM orders o WHERE o.order_id = s.order_id))""") == 0


def test_sales_order_rows_add_up_to_each_order_total(duckdb_connection) -> None:
    con = duckdb_connection
    mismatched = one(con, """
        WITH s AS (SELECT order_id, SUM(total_sales) total, SUM(gross_sales) gross, SUM(discounts) disc,
                          SUM(shipping_charges) ship, SUM(taxes) tax
                   FROM sales WHERE event_type = 'order' GROUP BY 1)
        SELECT COUNT(*) FROM orders o FULL JOIN s USING (order_id)
        WHERE NOT COALESCE(o.is_test, false)
          AND (s.total IS DISTINCT FROM o.total OR s.gross IS DISTINCT FROM o.line_items_total
               OR s.disc IS DISTINCT FROM -o.total_discounts OR s.ship IS DISTINCT FROM o.shipping
               OR s.tax IS DISTINCT FROM o.taxes)""")
    assert mismatched == 0


def test_reversal_rows_mirror_the_refunds(duckdb_connection) -> None:
    con = duckdb_connection
    mismatched = one(con, """
        WITH s AS (SELECT order_id, SUM(total_sales) t, SUM(shipping_charges) sh, SUM(taxes) tx,
                          SUM(sales_reversals) r, MIN(happened_at) first_at
                   FROM sales WHERE event_type <> 'order' GROUP BY 1),
             f AS (SELECT order_id, SUM(total_refunded) t, SUM(refunded_shipping) sh, SUM(refunded_tax) tx,
                          SUM(refunded_subtotal) r, MIN(created_at) first_at
                   FROM refunds GROUP BY 1)
        SELECT COUNT(*) FROM s FULL JOIN f USING (order_id)
        WHERE s.t IS DISTINCT FROM -f.t OR s.sh IS DISTINCT FROM -f.sh OR s.tx IS DISTINCT FROM -f.tx
           OR s.r IS DISTINCT FROM -f.r OR s.first_at IS DISTINCT FROM f.first_at""")
    assert mismatched == 0
    # refunds are booked on their own date, after the order
    assert one(con, """SELECT COUNT(*) FROM refunds f JOIN orders o USING (order_id)
                       WHERE f.created_at <= o.created_at""") == 0
    assert one(con, "SELECT COUNT(*) FROM sales WHERE event_type = 'refund'") > 1000
    # restocked goods give their cost back; others do not
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN refund_line_items r
                         ON r.line_item_id = s.line_item_id AND s.event_type <> 'order'
                       JOIN line_items l ON l.line_item_id = r.line_item_id
                       WHERE (r.restock_type = 'no_restock' AND s.cost <> 0)
                          OR (r.restock_type <> 'no_restock' AND s.cost <> -l.unit_cost * r.quantity)""") == 0


def test_test_orders_are_excluded_and_cancelled_orders_reversed(duckdb_connection) -> None:
    con = duckdb_connection
    assert one(con, "SELECT COUNT(*) FROM orders WHERE is_test") > 0
    assert one(con, "SELECT COUNT(*) FROM sales JOIN orders USING (order_id) WHERE is_test") == 0
    assert one(con, """SELECT COUNT(*) FROM orders o WHERE NOT is_test
                       AND NOT EXISTS (SELECT 1 FROM sales s WHERE s.order_id = o.order_id)""") == 0
    cancelled = one(con, "SELECT COUNT(*) FROM orders WHERE cancelled_at IS NOT NULL AND NOT is_test")
    assert cancelled > 100
    # each cancelled order: gross on the order date, everything reversed on the cancellation date
    bad = one(con, """
        WITH s AS (SELECT order_id,
                          SUM(total_sales) total, SUM(net_sales) net,
                          SUM(gross_sales) FILTER (WHERE event_type = 'order') gross,
                          MIN(happened_at) FILTER (WHERE event_type = 'cancellation') reversed_at
                   FROM sales GROUP BY 1)
        SELECT COUNT(*) FROM orders o JOIN s USING (order_id)
        WHERE o.cancelled_at IS NOT NULL
          AND (s.total <> 0 OR s.net <> 0 OR s.gross <> o.line_items_total OR s.reversed_at <> o.cancelled_at)""")
    assert bad == 0
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN orders o USING (order_id)
                       WHERE s.event_type = 'cancellation' AND o.cancelled_at IS NULL""") == 0
    assert one(con, """SELECT COUNT(*) FROM orders WHERE cancelled_at IS NOT NULL
                       AND (cancel_reason IS NULL OR fulfilled_at IS NOT NULL OR cancelled_at <= created_at)""") == 0


def test_customer_statistics_match_their_orders(duckdb_connection) -> None:
    con = duckdb_connection
    bad = one(con, """
        WITH o AS (SELECT customer_id, COUNT(*) n, SUM(total - total_refunded) spent,
                          MIN(created_at) first_at, MAX(created_at) last_at
                   FROM orders WHERE NOT is_test GROUP BY 1)
        SELECT COUNT(*) FROM customers c LEFT JOIN o USING (customer_id)
        WHERE c.orders_count <> COALESCE(o.n, 0) OR c.amount_spent <> COALESCE(o.spent, 0)
           OR (o.n IS NOT NULL AND (c.first_order_at <> o.first_at OR c.last_order_at <> o.last_at))""")
    assert bad == 0
    # one first order per ordering customer, and it is the earliest
    assert one(con, """SELECT COUNT(*) FROM (SELECT customer_id, COUNT(*) FILTER (WHERE is_first_order) f,
                                                   MIN(customer_order_number) m
                                            FROM orders WHERE NOT is_test GROUP BY 1) WHERE f <> 1 OR m <> 1""") == 0
    assert one(con, """SELECT COUNT(*) FROM orders o JOIN customers c USING (customer_id)
                       WHERE o.is_first_order AND o.created_at <> c.first_order_at AND NOT o.is_test""") == 0
    assert one(con, "SELECT COUNT(*) FROM customers c WHERE c.created_at > c.first_order_at") == 0


def test_test_orders_are_not_in_customer_history(duckdb_connection) -> None:
    """Staff accounts place only test orders: they have no order count, no first or last order date,
    and their test orders have no place in an order history (no number, not new or returning)."""
    con = duckdb_connection
    staff = rows(con, """
        SELECT c.customer_id, c.orders_count, c.first_order_at, c.last_order_at, COUNT(o.order_id) AS tests
        FROM customers c JOIN orders o USING (customer_id)
        WHERE o.is_test GROUP BY ALL""")
    assert staff and all(tests > 0 and (count, first, last) == (0, None, None)
                         for _, count, first, last, tests in staff)
    assert one(con, """SELECT COUNT(*) FROM orders WHERE is_test
                       AND (customer_order_number IS NOT NULL OR is_first_order IS NOT NULL)""") == 0
    # every customer's statistics are those of their real orders, and customers without one have none
    assert one(con, """
        WITH o AS (SELECT customer_id, COUNT(*) n, MIN(created_at) f, MAX(created_at) l, MAX(customer_order_number) m
                   FROM orders WHERE NOT is_test GROUP BY 1)
        SELECT COUNT(*) FROM customers c LEFT JOIN o USING (customer_id)
        WHERE c.orders_count <> COALESCE(o.n, 0) OR c.first_order_at IS DISTINCT FROM o.f
           OR c.last_order_at IS DISTINCT FROM o.l OR COALESCE(o.m, 0) <> c.orders_count""") == 0


def test_nothing_happens_after_as_of(duckdb_connection) -> None:
    con = duckdb_connection
    checks = {
        "sales": ["happened_at"], "orders": ["created_at", "fulfilled_at", "cancelled_at", "paid_at"],
        "refunds": ["created_at"], "sessions": ["started_at"], "checkouts": ["created_at", "completed_at"],
        "draft_orders": ["created_at", "completed_at", "invoice_sent_at"], "customers": ["created_at"],
        "companies": ["created_at"], "products": ["created_at", "discontinued_at"],
    }
    for table, columns in checks.items():
        for column in columns:
            assert one(con, f"SELECT COUNT(*) FROM {table} WHERE {column} > {AS_OF}") == 0, (table, column)
    latest = one(con, "SELECT MAX(happened_at) FROM sales")
    assert latest > dt.datetime.fromisoformat("2025-12-14T00:00:00-05:00")
    first = one(con, "SELECT MIN(happened_at) FROM sales")
    assert first >= dt.datetime.fromisoformat("2023-01-01T00:00:00-05:00")
    assert first < dt.datetime.fromisoformat("2023-01-02T00:00:00-05:00")


# ---- determinism ------------------------------------------------------------------------------------


def test_same_seed_and_size_give_byte_identical_files(tmp_path: Path) -> None:
    a = generate_store(tmp_path / "a", orders=2_000, years=2, seed=7)
    b = generate_store(tmp_path / "b", orders=2_000, years=2, seed=7)
    c = generate_store(tmp_path / "c", orders=2_000, years=2, seed=8)
    for table in TABLES:
        assert (a / f"{table}.parquet").read_bytes() == (b / f"{table}.parquet").read_bytes(), table
    assert (a / "manifest.json").read_bytes() == (b / "manifest.json").read_bytes()
    assert (a / "orders.parquet").read_bytes() != (c / "orders.parquet").read_bytes()
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["generator"]["orders"] == 2_000
    con = duckdb.connect()
    assert con.execute(f"SELECT COUNT(*) FROM '{a / 'orders.parquet'}'").fetchone()[0] == 2_000
    assert con.execute(f"SELECT MIN(created_at) >= TIMESTAMPTZ '2024-01-01 00:00:00-05' "
                       f"FROM '{a / 'orders.parquet'}'").fetchone()[0]


def _file_hashes(store: Path) -> dict[str, str]:
    return {file.name: hashlib.sha256(file.read_bytes()).hexdigest() for file in sorted(store.iterdir())}


def test_row_group_at_a_time_output_is_deterministic_and_holds_the_same_rows(tmp_path: Path) -> None:
    # 1,000 rows a row group: sessions, sales, line_items and inventory_levels span several, so the
    # chunked conversion is exercised; twice the same bytes, and the same rows as one row group a table
    a = generate_store(tmp_path / "a", orders=2_000, years=2, seed=7, row_group_size=1_000)
    b = generate_store(tmp_path / "b", orders=2_000, years=2, seed=7, row_group_size=1_000)
    whole = generate_store(tmp_path / "whole", orders=2_000, years=2, seed=7)
    assert _file_hashes(a) == _file_hashes(b)
    con = duckdb.connect(config={"memory_limit": "1GB"})
    for table in ("sessions", "sales", "line_items", "inventory_levels"):
        groups = pq.ParquetFile(a / f"{table}.parquet").metadata.num_row_groups
        total = one(con, f"SELECT COUNT(*) FROM '{whole / f'{table}.parquet'}'")
        assert groups == -(-total // 1_000) and groups >= 2, table
        for left, right in ((a, whole), (whole, a)):
            assert one(con, f"""SELECT COUNT(*) FROM (SELECT * FROM '{left / f'{table}.parquet'}'
                                EXCEPT ALL SELECT * FROM '{right / f'{table}.parquet'}')""") == 0, table


def test_chunked_writer_writes_the_bytes_of_the_whole_table(tmp_path: Path) -> None:
    from commerceql.sample._arrow import ChunkedTable, _writer_options, categorical, ints, money, write_table

    n = 10_500
    values = np.arange(n, dtype=np.int64) * 7 % 1_003

    def columns(first: int, stop: int) -> dict[str, pa.Array]:
        part = values[first:stop]
        return {"id": ints(np.arange(first + 1, stop + 1)), "cents": money(part - 500),
                "kind": categorical(part % 3, ["a", "b", "c"], null=part % 11 == 0)}

    whole = pa.table(columns(0, n))
    # the reference: pyarrow's own one-call write of the whole table, with the writer's options
    pq.write_table(whole, tmp_path / "reference.parquet", row_group_size=4_000,
                   **_writer_options(whole.schema, ("id",)))
    assert write_table(tmp_path / "whole.parquet", columns(0, n), ("id",), row_group=4_000) == n
    assert write_table(tmp_path / "chunked.parquet", ChunkedTable(n, columns), ("id",), row_group=4_000) == n
    reference = (tmp_path / "reference.parquet").read_bytes()
    assert (tmp_path / "whole.parquet").read_bytes() == reference
    assert (tmp_path / "chunked.parquet").read_bytes() == reference
    assert pq.ParquetFile(tmp_path / "chunked.parquet").metadata.num_row_groups == 3


def test_sessions_per_order_sets_the_online_stores_session_count(tmp_path: Path) -> None:
    default = generate_store(tmp_path / "default", orders=2_000, years=2, seed=7)
    fewer = generate_store(tmp_path / "fewer", orders=2_000, years=2, seed=7, sessions_per_order=5.0)
    con = duckdb.connect(config={"memory_limit": "1GB"})
    human_online = """SELECT COUNT(*) FROM '{}' WHERE human_or_bot = 'human' AND sales_channel = 'Online Store'"""
    online_orders = f"""SELECT COUNT(*) FROM '{fewer / 'orders.parquet'}'
                        WHERE sales_channel = 'Online Store' AND NOT is_test"""
    n_orders = one(con, online_orders)
    assert one(con, human_online.format(fewer / "sessions.parquet")) == round(n_orders * 5.0)
    # the default: 3.3% of human online-store sessions convert
    assert one(con, human_online.format(default / "sessions.parquet")) == round(n_orders / 0.033)
    # every online order still has its converting session, and abandoned checkouts their sessions
    assert one(con, f"""SELECT COUNT(*) FROM '{fewer / 'sessions.parquet'}'
                        WHERE sales_channel = 'Online Store' AND order_id IS NOT NULL""") == n_orders
    assert one(con, f"""SELECT COUNT(*) FROM '{fewer / 'checkouts.parquet'}' c
                        ANTI JOIN '{fewer / 'sessions.parquet'}' s USING (session_id)""") == 0
    assert json.loads((fewer / "manifest.json").read_text())["generator"]["sessions_per_order"] == 5.0
    assert "sessions_per_order" not in json.loads((default / "manifest.json").read_text())["generator"]
    # the orders themselves do not depend on how many sessions did not convert
    assert one(con, f"""SELECT COUNT(*) FROM (SELECT order_id, total FROM '{default / 'orders.parquet'}'
                        EXCEPT ALL SELECT order_id, total FROM '{fewer / 'orders.parquet'}')""") == 0
    with pytest.raises(ValueError, match="sessions per order"):
        generate_store(tmp_path / "bad", orders=300, years=1, sessions_per_order=0.5)


def test_large_stores_default_to_fewer_sessions_per_order() -> None:
    from commerceql.sample.generator import LARGE_STORE_ORDERS, default_sessions_per_order

    assert default_sessions_per_order(50_000) is None  # the bundled store keeps its files
    assert default_sessions_per_order(LARGE_STORE_ORDERS) is None
    assert default_sessions_per_order(LARGE_STORE_ORDERS + 1) == 10.0


def test_anchor_today_leaves_as_of_open(tmp_path: Path) -> None:
    path = generate_store(tmp_path / "today", orders=300, years=1, seed=3, anchor="today")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["as_of"] is None
    latest = duckdb.connect().execute(f"SELECT MAX(created_at) FROM '{path / 'orders.parquet'}'").fetchone()[0]
    now = dt.datetime.now(dt.UTC)
    assert now - dt.timedelta(days=20) < latest <= now


# ---- shape --------------------------------------------------------------------------------------------


def test_bfcm_week_is_the_top_sales_week_of_each_year(duckdb_connection) -> None:
    con = duckdb_connection
    for year in (2023, 2024, 2025):
        bf = black_friday(year)
        monday = bf - dt.timedelta(days=bf.weekday())
        sunday = monday - dt.timedelta(days=1)
        for week_start in ("date_trunc('week', timezone('America/New_York', happened_at))",  # ISO weeks (Monday)
                           "date_trunc('week', timezone('America/New_York', happened_at) + INTERVAL 1 DAY) - INTERVAL 1 DAY"):  # Sunday
            top = one(con, f"""SELECT CAST({week_start} AS DATE) w FROM sales
                               WHERE year(timezone('America/New_York', happened_at)) = {year} GROUP BY 1 ORDER BY SUM(net_sales) DESC LIMIT 1""")
            assert top in (monday, sunday), (year, top)


def test_sales_grow_year_over_year(duckdb_connection) -> None:
    con = duckdb_connection
    by_year = dict(rows(con, "SELECT year(timezone('America/New_York', happened_at)), SUM(net_sales)::DOUBLE FROM sales GROUP BY 1"))
    assert by_year[2024] > by_year[2023] * 1.2
    same_period = dict(rows(con, """SELECT year(timezone('America/New_York', happened_at)), SUM(net_sales)::DOUBLE FROM sales
                                    WHERE strftime(timezone('America/New_York', happened_at), '%m-%d %H:%M') < '12-15 14:00' GROUP BY 1"""))
    assert same_period[2025] > same_period[2024] * 1.15


def test_b2b_orders_are_several_times_larger(duckdb_connection) -> None:
    con = duckdb_connection
    b2b, dtc = con.execute("""
        SELECT AVG(subtotal) FILTER (WHERE company_id IS NOT NULL), AVG(subtotal) FILTER (WHERE company_id IS NULL)
        FROM orders WHERE NOT is_test""").fetchone()
    assert b2b >= 3 * dtc
    # the same through the sales table: (gross + discounts) / orders on order rows
    aov = dict(rows(con, """SELECT company_id IS NOT NULL, SUM(gross_sales + discounts) / COUNT(DISTINCT order_id)
                            FROM sales WHERE event_type = 'order' GROUP BY 1"""))
    assert aov[True] >= 3 * aov[False]
    share = one(con, "SELECT AVG((company_id IS NOT NULL)::INT) FROM orders WHERE NOT is_test")
    assert 0.02 < share < 0.12


def test_some_skus_fall_quarter_over_quarter(duckdb_connection) -> None:
    falling = rows(duckdb_connection, """
        WITH q AS (SELECT variant_sku_at_sale sku, date_trunc('quarter', timezone('America/New_York', happened_at)) qtr, SUM(net_sales) ns
                   FROM sales s JOIN products p USING (product_id)
                   WHERE line_type = 'product' AND p.product_type <> 'Outerwear'
                     AND timezone('America/New_York', happened_at) >= '2024-10-01' AND timezone('America/New_York', happened_at) < '2025-10-01'
                   GROUP BY 1, 2),
             l AS (SELECT sku, list(ns ORDER BY qtr) v FROM q GROUP BY 1 HAVING COUNT(*) = 4)
        SELECT sku FROM l WHERE v[1] > v[2] AND v[2] > v[3] AND v[3] > v[4] AND v[1] > 1000""")
    assert len(falling) >= 3


def test_returns_concentrate_in_apparel(duckdb_connection) -> None:
    by_type = dict(rows(duckdb_connection, """
        SELECT p.product_type, -SUM(quantity) FILTER (WHERE event_type = 'refund')
                               / SUM(quantity) FILTER (WHERE event_type = 'order')
        FROM sales s JOIN products p USING (product_id) GROUP BY 1"""))
    overall = one(duckdb_connection, """SELECT -SUM(quantity) FILTER (WHERE event_type = 'refund')
                                               / SUM(quantity) FILTER (WHERE event_type = 'order') FROM sales""")
    assert max(by_type.values()) >= 2 * overall
    assert max(by_type, key=by_type.get) in ("Work Apparel", "Footwear", "Outerwear")


def test_some_b2b_accounts_lapse(duckdb_connection) -> None:
    lapsed = one(duckdb_connection, f"""
        SELECT COUNT(*) FROM (SELECT company_id, COUNT(*) n, MAX(created_at) last_at
                              FROM orders WHERE company_id IS NOT NULL AND NOT is_test GROUP BY 1)
        WHERE n >= 5 AND last_at < {AS_OF} - INTERVAL 180 DAY""")
    active = one(duckdb_connection, f"""
        SELECT COUNT(DISTINCT company_id) FROM orders
        WHERE company_id IS NOT NULL AND created_at >= {AS_OF} - INTERVAL 90 DAY""")
    assert lapsed >= 3 and active > lapsed


def test_vip_customers_reorder_more_often(duckdb_connection) -> None:
    gaps = dict(rows(duckdb_connection, """
        WITH o AS (SELECT customer_id, created_at - LAG(created_at) OVER (PARTITION BY customer_id
                                                                          ORDER BY created_at) gap
                   FROM orders WHERE NOT is_test AND company_id IS NULL)
        SELECT list_contains(c.tags, 'VIP'), AVG(epoch(gap)) / 86400
        FROM o JOIN customers c USING (customer_id) WHERE gap IS NOT NULL GROUP BY 1"""))
    assert gaps[True] < 0.6 * gaps[False]


def test_b2b_accounts_reorder_on_a_cadence(duckdb_connection) -> None:
    # Enterprise accounts order more often than small businesses, mostly on business days
    per_tier = dict(rows(duckdb_connection, """
        WITH o AS (SELECT company_id, created_at - LAG(created_at) OVER (PARTITION BY company_id
                                                                         ORDER BY created_at) gap
                   FROM orders WHERE company_id IS NOT NULL)
        SELECT k.tier, median(epoch(gap)) / 86400 FROM o JOIN companies k USING (company_id)
        WHERE gap IS NOT NULL GROUP BY 1"""))
    assert per_tier["Enterprise"] < per_tier["Mid-market"] < per_tier["Small business"]
    weekend = one(duckdb_connection, """SELECT AVG((isodow(timezone('America/New_York', created_at)) >= 6)::INT) FROM orders
                                        WHERE company_id IS NOT NULL""")
    assert weekend < 0.02


def test_seasonality_and_time_of_day(duckdb_connection) -> None:
    con = duckdb_connection
    night = one(con, """SELECT AVG((hour(timezone('America/New_York', created_at)) BETWEEN 2 AND 5)::INT) FROM orders
                        WHERE sales_channel = 'Online Store'""")
    evening = one(con, """SELECT AVG((hour(timezone('America/New_York', created_at)) BETWEEN 19 AND 21)::INT) FROM orders
                          WHERE sales_channel = 'Online Store'""")
    assert night < 0.05 < 0.12 < evening
    december, february = con.execute("""SELECT SUM(net_sales::DOUBLE) FILTER (WHERE month(timezone('America/New_York', happened_at)) = 12),
                                               SUM(net_sales::DOUBLE) FILTER (WHERE month(timezone('America/New_York', happened_at)) = 2)
                                        FROM sales WHERE year(timezone('America/New_York', happened_at)) = 2024""").fetchone()
    assert december > 1.5 * february
    outer_winter, outer_summer = con.execute("""
        SELECT SUM(quantity) FILTER (WHERE month(timezone('America/New_York', happened_at)) IN (12, 1)),
               SUM(quantity) FILTER (WHERE month(timezone('America/New_York', happened_at)) IN (6, 7))
        FROM sales JOIN products USING (product_id)
        WHERE product_type = 'Outerwear' AND event_type = 'order' AND year(timezone('America/New_York', happened_at)) = 2024""").fetchone()
    assert outer_winter > 3 * outer_summer


def test_regional_differences(duckdb_connection) -> None:
    con = duckdb_connection
    cold, warm = con.execute("""
        SELECT SUM(quantity) FILTER (WHERE p.product_type = 'Outerwear' AND s.shipping_region IN
                   ('New York', 'Massachusetts', 'Illinois', 'Minnesota', 'Michigan', 'Wisconsin'))
                 / SUM(quantity) FILTER (WHERE s.shipping_region IN
                   ('New York', 'Massachusetts', 'Illinois', 'Minnesota', 'Michigan', 'Wisconsin')),
               SUM(quantity) FILTER (WHERE p.product_type = 'Outerwear' AND s.shipping_region IN
                   ('Florida', 'Texas', 'Arizona', 'Georgia', 'Louisiana', 'Hawaii'))
                 / SUM(quantity) FILTER (WHERE s.shipping_region IN
                   ('Florida', 'Texas', 'Arizona', 'Georgia', 'Louisiana', 'Hawaii'))
        FROM sales s JOIN products p USING (product_id)
        WHERE s.event_type = 'order' AND s.company_id IS NULL""").fetchone()
    assert cold > 2 * warm
    assert one(con, """SELECT COUNT(*) FROM orders WHERE shipping_country <> 'United States' AND taxes <> 0""") == 0
    assert one(con, "SELECT COUNT(*) FROM orders WHERE shipping_country <> 'United States'") > 500
    pos_states = dict(rows(con, """SELECT billing_region IN ('New York', 'New Jersey', 'Connecticut'), COUNT(*)
                                   FROM orders WHERE sales_channel = 'Point of Sale' GROUP BY 1"""))
    assert pos_states[True] > 0 and pos_states.get(False, 0) == 0
    by_state = dict(rows(con, """SELECT billing_region, COUNT(*) FROM orders WHERE billing_country = 'United States'
                                 GROUP BY 1"""))
    assert by_state["California"] > by_state["Texas"] > by_state["Ohio"] > by_state["Vermont"]


def test_product_popularity_has_a_long_tail_and_a_lifecycle(duckdb_connection) -> None:
    con = duckdb_connection
    shares = [r[0] for r in rows(con, """SELECT SUM(gross_sales) / (SELECT SUM(gross_sales) FROM sales) s
                                         FROM sales WHERE line_type = 'product' GROUP BY product_id ORDER BY s DESC""")]
    top_decile = sum(shares[: len(shares) // 10])
    assert top_decile > 0.3 and shares[-1] < 0.0005
    assert 300 <= one(con, "SELECT COUNT(*) FROM products") <= 600
    launched = one(con, "SELECT COUNT(*) FROM products WHERE created_at > '2023-02-01'")
    archived = one(con, "SELECT COUNT(*) FROM products WHERE status = 'archived' AND discontinued_at IS NOT NULL")
    assert launched >= 20 and archived >= 10
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN products p USING (product_id)
                       WHERE s.event_type = 'order' AND (s.happened_at < p.created_at
                          OR s.happened_at >= p.discontinued_at)""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales s JOIN products p USING (product_id)
                       WHERE p.renamed_at IS NOT NULL AND s.happened_at < p.renamed_at
                         AND s.product_title_at_sale = p.title""") == 0
    assert one(con, "SELECT COUNT(*) FROM sales s JOIN products p USING (product_id) "
                    "WHERE s.product_title_at_sale <> p.title") > 0


def test_discount_campaigns(duckdb_connection) -> None:
    con = duckdb_connection
    codes = dict(rows(con, "SELECT discount_code, COUNT(DISTINCT order_id) FROM sales GROUP BY 1"))
    for code in ("BFCM25", "SPRING10", "SUMMER15", "WELCOME10", "VIP20", "SAVE20"):
        assert codes.get(code, 0) > 50, code
    outside = one(con, """SELECT COUNT(*) FROM orders WHERE list_contains(discount_codes, 'BFCM25')
                          AND NOT (month(timezone('America/New_York', created_at)) = 11 AND day(timezone('America/New_York', created_at)) >= 21
                                   OR month(timezone('America/New_York', created_at)) = 12 AND day(timezone('America/New_York', created_at)) <= 3)""")
    assert outside == 0
    assert one(con, "SELECT COUNT(*) FROM orders WHERE company_id IS NOT NULL AND len(discount_codes) > 0") == 0
    assert one(con, """SELECT COUNT(*) FROM orders WHERE list_contains(discount_codes, 'WELCOME10')
                       AND NOT is_first_order""") == 0


def test_online_store_funnel(duckdb_connection) -> None:
    con = duckdb_connection
    sessions, completed, reached, cart, bounced, bots = con.execute("""
        SELECT COUNT(*), COUNT(*) FILTER (WHERE completed_checkout), COUNT(*) FILTER (WHERE reached_checkout),
               COUNT(*) FILTER (WHERE added_to_cart), COUNT(*) FILTER (WHERE bounced),
               COUNT(*) FILTER (WHERE human_or_bot = 'bot')
        FROM sessions""").fetchone()
    assert 0.02 <= completed / sessions <= 0.04
    assert 0.4 <= completed / reached <= 0.8
    assert completed < reached < cart < sessions
    assert 0.3 < bounced / sessions < 0.7 and 0.03 < bots / sessions < 0.15
    assert one(con, "SELECT COUNT(*) FROM sessions WHERE human_or_bot = 'bot' AND (added_to_cart OR NOT bounced)") == 0
    assert one(con, "SELECT COUNT(*) FROM sessions WHERE completed_checkout AND NOT reached_checkout") == 0
    assert one(con, "SELECT COUNT(*) FROM sessions WHERE reached_checkout AND NOT added_to_cart") == 0
    abandoned, recovered = con.execute("""SELECT COUNT(*) FILTER (WHERE is_abandoned), COUNT(*) FILTER (WHERE recovered)
                                          FROM checkouts""").fetchone()
    assert abandoned > recovered > 0
    assert one(con, "SELECT COUNT(*) FROM checkouts WHERE completed_at IS NULL AND NOT is_abandoned") == 0


def test_open_quotes_for_distributors(duckdb_connection) -> None:
    con = duckdb_connection
    statuses = dict(rows(con, "SELECT status, COUNT(*) FROM draft_orders GROUP BY 1"))
    assert set(statuses) == {"open", "invoice_sent", "completed", "expired"}
    assert one(con, """SELECT COUNT(*) FROM draft_orders d JOIN companies k USING (company_id)
                       WHERE k.industry = 'Distributor' AND d.status IN ('open', 'invoice_sent')""") > 0
    assert one(con, """SELECT COUNT(*) FROM draft_orders d JOIN orders o USING (order_id)
                       WHERE d.status <> 'completed' OR o.sales_channel <> 'Draft Orders'
                          OR d.total <> o.total OR d.created_at > o.created_at""") == 0
    assert one(con, "SELECT COUNT(*) FROM draft_orders WHERE total <> subtotal + taxes + shipping") == 0
    assert one(con, f"""SELECT COUNT(*) FROM draft_orders WHERE status IN ('open', 'invoice_sent')
                        AND created_at < {AS_OF} - INTERVAL 30 DAY""") == 0


# ---- the B2B side: key accounts, portal, price lists, invoices ------------------------------------


def test_a_few_large_oem_accounts(duckdb_connection) -> None:
    """3-6 OEM companies above $250k lifetime net sales (all their buyers together); most accounts
    stay far smaller."""
    per_company = rows(duckdb_connection, """
        SELECT k.company_id, k.industry, COALESCE(SUM(s.net_sales), 0)::DOUBLE, COUNT(DISTINCT s.customer_id)
        FROM companies k LEFT JOIN sales s USING (company_id) GROUP BY ALL""")
    large_oem = [r for r in per_company if r[1] == "OEM" and r[2] > 250_000]
    assert 3 <= len(large_oem) <= 6
    assert all(buyers > 1 for *_, buyers in large_oem)  # several buyers order for each of them
    values = sorted(r[2] for r in per_company)
    assert values[len(values) // 2] < 30_000
    assert sum(v > 250_000 for v in values) <= 8


def test_some_b2b_buyers_are_vip(duckdb_connection) -> None:
    con = duckdb_connection
    vip_b2b, vip_dtc = con.execute("""SELECT COUNT(*) FILTER (WHERE company_id IS NOT NULL),
                                             COUNT(*) FILTER (WHERE company_id IS NULL)
                                      FROM customers WHERE list_contains(tags, 'VIP')""").fetchone()
    assert vip_b2b >= 5 and vip_dtc > vip_b2b
    # the tag vocabulary (and its case) is the same for consumers and buyers
    tags = {t for (t,) in rows(con, "SELECT DISTINCT unnest(tags) FROM customers")}
    assert tags == {"VIP", "loyalty-member", "newsletter", "local", "wholesale", "distributor", "contractor",
                    "oem", "tax-exempt", "staff"}
    assert one(con, """SELECT COUNT(DISTINCT o.company_id) FROM orders o JOIN customers c USING (customer_id)
                       WHERE list_contains(c.tags, 'VIP') AND o.company_id IS NOT NULL""") >= 3


def test_b2b_buyers_use_the_portal_and_abandon_checkouts(duckdb_connection) -> None:
    con = duckdb_connection
    # B2B buyers' sessions: Wholesale channel, direct or from email, human, logged in
    n, bad = con.execute("""
        SELECT COUNT(*), COUNT(*) FILTER (WHERE s.sales_channel <> 'Wholesale' OR s.human_or_bot <> 'human'
                                              OR s.referring_channel NOT IN ('Direct', 'Email'))
        FROM sessions s JOIN customers c USING (customer_id) WHERE c.company_id IS NOT NULL""").fetchone()
    assert n > 1000 and bad == 0
    assert one(con, """SELECT COUNT(*) FROM sessions s LEFT JOIN customers c USING (customer_id)
                       WHERE s.sales_channel = 'Wholesale' AND c.company_id IS NULL""") == 0
    page_types = dict(rows(con, "SELECT landing_page_type, COUNT(*) FROM sessions WHERE sales_channel = 'Wholesale' GROUP BY 1"))
    assert max(page_types, key=page_types.get) == "Other"  # account and quick-order pages
    # Wholesale checkouts: one completed per Wholesale order, many abandoned, some recovered
    total, completed, linked, abandoned, lost, recovered = con.execute("""
        SELECT COUNT(*), COUNT(*) FILTER (WHERE k.completed_at IS NOT NULL),
               COUNT(*) FILTER (WHERE o.sales_channel = 'Wholesale' AND o.company_id IS NOT NULL
                                  AND k.completed_at = o.created_at),
               COUNT(*) FILTER (WHERE k.is_abandoned), COUNT(*) FILTER (WHERE k.is_abandoned AND k.order_id IS NULL),
               COUNT(*) FILTER (WHERE k.recovered)
        FROM checkouts k LEFT JOIN orders o USING (order_id) WHERE k.sales_channel = 'Wholesale'""").fetchone()
    assert completed == linked == one(con, "SELECT COUNT(*) FROM orders WHERE sales_channel = 'Wholesale' AND NOT is_test")
    assert 0.2 < abandoned / total < 0.7 and lost > recovered > 0
    assert one(con, """SELECT COUNT(*) FROM checkouts k LEFT JOIN customers c USING (customer_id)
                       WHERE k.sales_channel = 'Wholesale' AND (c.company_id IS NULL OR NOT k.email_captured)""") == 0
    assert set(r[0] for r in rows(con, "SELECT DISTINCT sales_channel FROM checkouts")) == {"Online Store", "Wholesale"}


def _company_gaps(store: Path):
    """Per company: orders, median / quartiles of the days between consecutive orders, longest gap
    and days from the last order to as_of (Polars over the raw files)."""
    import polars as pl

    as_of = dt.datetime.fromisoformat("2025-12-15T14:00:00-05:00")
    orders = pl.read_parquet(store / "orders.parquet", columns=["company_id", "created_at", "is_test"])
    companies = pl.read_parquet(store / "companies.parquet", columns=["company_id", "tier"])
    gaps = (
        orders.filter(pl.col("company_id").is_not_null() & ~pl.col("is_test"))
        .sort("company_id", "created_at")
        .with_columns(gap=pl.col("created_at").diff().over("company_id").dt.total_seconds() / 86400)
    )
    return (
        gaps.group_by("company_id")
        .agg(orders=pl.len(), median=pl.col("gap").median(), q1=pl.col("gap").quantile(0.25),
             q3=pl.col("gap").quantile(0.75), longest=pl.col("gap").max(), last=pl.col("created_at").max())
        .with_columns(spread=(pl.col("q3") - pl.col("q1")) / pl.col("median"),
                      since=(pl.lit(as_of) - pl.col("last")).dt.total_seconds() / 86400)
        .join(companies, on="company_id")
    )


def test_key_accounts_reorder_on_a_regular_rhythm(sample_store_path: Path) -> None:
    """Enterprise and Mid-market accounts each reorder on an interval of their own (2-9 weeks) with
    modest jitter, so their median days between orders means something; small businesses are erratic."""
    import polars as pl

    per = _company_gaps(sample_store_path).filter(pl.col("orders") >= 8)
    for tier in ("Enterprise", "Mid-market"):
        regular = per.filter(pl.col("tier") == tier)
        assert regular.height >= 10, tier
        assert regular["median"].is_between(10, 70).mean() >= 0.9, tier
        assert regular["spread"].median() < 0.5, tier
        assert regular["median"].max() > 1.5 * regular["median"].min(), tier  # intervals differ by account
    enterprise = per.filter(pl.col("tier") == "Enterprise")
    small = per.filter(pl.col("tier") == "Small business")
    assert small["spread"].median() > 1.5 * enterprise["spread"].median()
    assert enterprise["median"].median() < per.filter(pl.col("tier") == "Mid-market")["median"].median()


def test_some_regular_accounts_drift_overdue_churn_or_come_back(sample_store_path: Path) -> None:
    """As of as_of: most regular accounts ordered within 1.5x their usual interval; a handful are
    well overdue (their orders stopped weeks or months ago), a few churned (nothing for > 180 days)
    and a few came back after a long gap."""
    import polars as pl

    per = _company_gaps(sample_store_path).filter(pl.col("tier").is_in(["Enterprise", "Mid-market"])
                                                  & (pl.col("orders") >= 6))
    active = per.filter(pl.col("since") <= 1.5 * pl.col("median"))
    overdue = per.filter((pl.col("since") > 1.5 * pl.col("median")) & (pl.col("since") <= 180))
    churned = per.filter(pl.col("since") > 180)
    back = active.filter(pl.col("longest") >= pl.max_horizontal(pl.lit(90.0), 3 * pl.col("median")))
    assert overdue.height >= 3 and churned.height >= 3 and back.height >= 2
    assert (overdue["since"] > 2.5 * overdue["median"]).sum() >= 3  # well over 1.5x
    assert active.height > overdue.height + churned.height


def test_invoices_on_payment_terms(duckdb_connection) -> None:
    con = duckdb_connection
    local = f"timezone('{STORE_TZ}', {{}})::DATE"
    # the company's terms; only Net 30 / Net 60 orders are invoiced, due the terms' days after the order
    assert one(con, """SELECT COUNT(*) FROM orders o LEFT JOIN companies k USING (company_id)
                       WHERE o.payment_terms IS DISTINCT FROM k.payment_terms""") == 0
    assert one(con, """SELECT COUNT(*) FROM orders WHERE payment_due_at IS DISTINCT FROM CASE payment_terms
                         WHEN 'Net 30' THEN created_at + INTERVAL 30 DAY WHEN 'Net 60' THEN created_at + INTERVAL 60 DAY END""") == 0
    assert one(con, "SELECT COUNT(*) FROM orders WHERE payment_due_at IS NOT NULL") > 1000
    # status as of as_of: voided (cancelled), paid, overdue (past its due date, store time) or open
    assert one(con, f"""
        SELECT COUNT(*) FROM orders WHERE invoice_status IS DISTINCT FROM CASE
            WHEN payment_due_at IS NULL THEN NULL WHEN cancelled_at IS NOT NULL THEN 'voided'
            WHEN paid_at IS NOT NULL THEN 'paid'
            WHEN {local.format('payment_due_at')} < {local.format(AS_OF)} THEN 'overdue' ELSE 'open' END""") == 0
    assert one(con, f"""
        SELECT COUNT(*) FROM orders WHERE days_past_due IS DISTINCT FROM CASE WHEN invoice_status IN ('open', 'overdue')
            THEN greatest(0, date_diff('day', {local.format('payment_due_at')}, {local.format(AS_OF)})) END""") == 0
    # payments: after the order and not after as_of; orders not invoiced are paid when placed (unless voided)
    assert one(con, f"""SELECT COUNT(*) FROM orders WHERE paid_at > {AS_OF}
                          OR (payment_due_at IS NOT NULL AND paid_at <= created_at)""") == 0
    assert one(con, """SELECT COUNT(*) FROM orders WHERE payment_due_at IS NULL AND paid_at IS DISTINCT FROM
                         CASE WHEN financial_status = 'voided' THEN NULL ELSE created_at END""") == 0
    # unpaid invoices are the pending orders (unless refunded since)
    assert one(con, """SELECT COUNT(*) FROM orders WHERE (financial_status = 'pending')
                         <> (invoice_status IN ('open', 'overdue') AND total_refunded = 0) IS TRUE""") == 0
    # receivables: open and overdue invoices (some by months), payments late and on time
    counts = dict(rows(con, "SELECT invoice_status, COUNT(*) FROM orders WHERE payment_due_at IS NOT NULL GROUP BY 1"))
    assert counts["paid"] > counts["overdue"] > 0 and counts["open"] > 0 and counts["voided"] > 0
    assert one(con, "SELECT COUNT(*) FROM orders WHERE days_past_due > 90") > 0
    late, on_time = con.execute("""SELECT COUNT(*) FILTER (WHERE paid_at > payment_due_at),
                                          COUNT(*) FILTER (WHERE paid_at <= payment_due_at) FROM orders""").fetchone()
    assert late > 0.2 * (late + on_time) and on_time > 0.3 * (late + on_time)
    # quotes carry the company's terms; accepted ones the due date of the order they became
    assert one(con, """SELECT COUNT(*) FROM draft_orders d LEFT JOIN companies k USING (company_id)
                       WHERE d.payment_terms IS DISTINCT FROM k.payment_terms""") == 0
    assert one(con, """SELECT COUNT(*) FROM draft_orders d LEFT JOIN orders o USING (order_id)
                       WHERE d.payment_due_at IS DISTINCT FROM o.payment_due_at""") == 0


def test_contract_prices_are_discounts_from_list_price(duckdb_connection) -> None:
    """B2B lines are priced at list, less the company's price list and a volume break, booked as a
    line discount: gross sales are at list price and the contract savings are part of discounts."""
    con = duckdb_connection
    assert one(con, "SELECT COUNT(*) FROM line_items l JOIN variants v USING (variant_id) WHERE l.price <> v.price") == 0
    assert one(con, """SELECT COUNT(*) FROM line_items l JOIN orders o USING (order_id) LEFT JOIN companies k USING (company_id)
                       WHERE l.price_list IS DISTINCT FROM k.price_list OR (k.company_id IS NULL) <> (l.contract_price IS NULL)
                          OR (k.company_id IS NULL AND (l.contract_discount <> 0 OR l.volume_break IS NOT NULL
                                                        OR l.volume_break_discount <> 0))""") == 0
    assert one(con, """
        SELECT COUNT(*) FROM line_items l JOIN orders o USING (order_id) JOIN companies k USING (company_id)
        WHERE l.contract_discount <> (l.price - l.contract_price) * l.quantity
           OR l.line_discount <> l.contract_discount OR l.allocated_order_discount <> 0
           OR l.volume_break IS DISTINCT FROM CASE WHEN l.quantity >= 100 THEN '100+' WHEN l.quantity >= 50 THEN '50+'
                                                   WHEN l.quantity >= 10 THEN '10+' END
           OR (l.volume_break IS NULL) <> (l.volume_break_discount = 0) OR l.volume_break_discount > l.contract_discount
           OR abs(l.price * (100 - k.price_list_discount_pct) / 100 - l.contract_price) * l.quantity
              > l.volume_break_discount + 0.005 * l.quantity""") == 0
    breaks = dict(rows(con, "SELECT volume_break, COUNT(*) FROM line_items WHERE volume_break IS NOT NULL GROUP BY 1"))
    assert breaks["10+"] > breaks["50+"] > breaks["100+"] > 0
    # sales rows: contract discounts are part of discounts, on order rows; every row of a B2B order
    # names its price list
    assert one(con, """
        SELECT COUNT(*) FROM sales s LEFT JOIN line_items l USING (line_item_id)
        WHERE s.contract_discounts <> CASE WHEN s.event_type = 'order' THEN COALESCE(-l.contract_discount, 0) ELSE 0 END
           OR s.volume_break_discounts <> CASE WHEN s.event_type = 'order' THEN COALESCE(-l.volume_break_discount, 0) ELSE 0 END
           OR s.volume_break IS DISTINCT FROM l.volume_break
           OR s.contract_discounts < s.discounts OR s.volume_break_discounts < s.contract_discounts""") == 0
    assert one(con, """SELECT COUNT(*) FROM sales s LEFT JOIN companies k USING (company_id)
                       WHERE s.price_list IS DISTINCT FROM k.price_list""") == 0
    gross, discounts, contract, net = con.execute("""
        SELECT SUM(gross_sales), SUM(discounts), SUM(contract_discounts), SUM(net_sales) FROM sales
        WHERE company_id IS NOT NULL AND event_type = 'order'""").fetchone()
    assert contract == discounts and net == gross + discounts and 0.15 < -contract / gross < 0.45
    assert one(con, "SELECT COUNT(*) FROM sales WHERE company_id IS NULL AND (contract_discounts <> 0 OR price_list IS NOT NULL)") == 0


# ---- the semantic model runs on the store ---------------------------------------------------------


def _from_clause(table, fragments) -> str:
    sql = f"{table.relation} AS {table.name}"
    for join in table.joins_needed(fragments):
        sql += f" LEFT JOIN {join.relation} AS {join.alias} ON {join.on}"
    return sql


def _create_derived_relations(con: duckdb.DuckDBPyConnection) -> None:
    """The account relations the model's joins read (customer_facts, cohorts, churn ...), as the
    compiler writes them for the store's clock, created as temporary tables."""
    from commerceql import derived
    from commerceql.plan import AccountSettings

    values: dict[str, object] = {}

    def param(value: object) -> str:
        name = f"p{len(values)}"
        values[name] = value
        return DUCKDB.parameter(name)

    context = derived.DerivedContext(dialect=DUCKDB, timezone=STORE_TZ, as_of=dt.datetime.fromisoformat(
        "2025-12-15T14:00:00-05:00"), settings=AccountSettings(), param=param)
    done: set[str] = set()

    def create(name: str) -> None:
        if name in done:
            return
        values.clear()
        sql = derived.derived_relation_sql(name, context)
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}", dict(values))
        done.add(name)

    for name in derived.DERIVED_RELATIONS:
        create(name)


def test_every_model_field_runs_on_the_store(duckdb_connection) -> None:
    con = duckdb_connection
    _create_derived_relations(con)
    model = builtin_model()
    assert set(model.tables) >= {"sales", "orders", "customers", "products", "sessions", "checkouts", "draft_orders"}
    for table in model.tables.values():
        if table.relation in ("customer_churn", "company_churn"):
            continue  # account-periods of the query's grain and window: tests/test_churn.py runs them
        if table.time_column:
            type_ = one(con, f"SELECT typeof({table.time_column}) FROM {table.relation} LIMIT 1")
            assert type_ == "TIMESTAMP WITH TIME ZONE", table.name
        # The model's macros (local_date ...) expanded as the compiler does, in the store's zone.
        metric_sql = [
            DUCKDB.expand_macros(table.metric_sql(name), STORE_TZ) for name, m in table.metrics.items() if not m.alias_of
        ]
        for name, metric in table.metrics.items():
            if metric.alias_of:
                continue
            assert metric.formula and metric.description, (table.name, name)
            assert "{" not in table.metric_sql(name), (table.name, name)
        # all metrics at once, then each dimension grouped with the first metric
        names = [n for n, m in table.metrics.items() if not m.alias_of]
        select = ", ".join(f"{sql} AS {name}" for sql, name in zip(metric_sql, names, strict=True))
        values = con.execute(f"SELECT {select} FROM {_from_clause(table, metric_sql)}").fetchone()
        assert all(v is not None for v in values), table.name
        for name, dimension in table.dimensions.items():
            first = metric_sql[0]
            dimension_sql = DUCKDB.expand_macros(dimension.sql, STORE_TZ)
            got = con.execute(f"""SELECT {dimension_sql} AS d, {first} AS m
                                  FROM {_from_clause(table, [dimension_sql, first])}
                                  GROUP BY 1 ORDER BY 2 DESC LIMIT 3""").fetchall()
            assert got, (table.name, name)


def test_shared_metric_names_agree_across_tables(duckdb_connection) -> None:
    """Metrics with the same name in two tables mean the same thing (so multi-fact queries line up)."""
    con = duckdb_connection
    model = builtin_model()

    def total(table_name: str, metric: str) -> object:
        table = model.table(table_name)
        sql = table.metric_sql(metric)
        return one(con, f"SELECT {sql} FROM {_from_clause(table, [sql])}")

    for metric in ("orders", "gross_sales", "discounts", "average_order_value", "customers", "new_customers",
                   "returning_customers", "quantity_ordered"):
        assert total("sales", metric) == total("orders", metric), metric
    assert total("sessions", "sessions_that_completed_checkout") == total("checkouts", "completed_checkouts")
    assert total("customers", "total_number_of_orders") == total("orders", "orders")


# ---- docs, CLI and the default store location -------------------------------------------------------


def test_docs_cover_every_metric_and_column(duckdb_connection) -> None:
    root = Path(__file__).resolve().parent.parent
    metrics_doc = (root / "docs" / "metrics.md").read_text(encoding="utf-8")
    for table in builtin_model().tables.values():
        for name in table.metrics:
            assert f"`{name}`" in metrics_doc, (table.name, name)
    model_doc = (root / "docs" / "data-model.md").read_text(encoding="utf-8")
    for table, column in rows(duckdb_connection, "SELECT table_name, column_name FROM information_schema.columns"):
        assert f"### `{table}`" in model_doc, table
        assert f"| `{column}` |" in model_doc, (table, column)


def test_cli_writes_a_store_and_prints_a_summary(tmp_path: Path, capsys) -> None:
    import argparse

    from commerceql.sample.cli import add_sample_arguments, run_sample

    parser = argparse.ArgumentParser()
    add_sample_arguments(parser)
    args = parser.parse_args(["--orders", "300", "--years", "1", "--seed", "5", "--out", str(tmp_path / "s")])
    assert run_sample(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"^wrote .+ in \d+\.\ds: products \d+, .*orders 300, .*sales [\d,]+, inventory_levels [\d,]+, "
                     r"transactions [\d,]+$", out.strip())
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["generator"]["seed"] == 5
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("keep me")
    args = parser.parse_args(["--orders", "300", "--out", str(tmp_path / "other")])
    assert run_sample(args) == 2
    args = parser.parse_args(["--orders", "300", "--years", "1", "--sessions-per-order", "4",
                              "--out", str(tmp_path / "few")])
    assert run_sample(args) == 0
    manifest = json.loads((tmp_path / "few" / "manifest.json").read_text())
    assert manifest["generator"]["sessions_per_order"] == 4.0
    args = parser.parse_args(["--orders", "300", "--sessions-per-order", "0", "--out", str(tmp_path / "none")])
    assert run_sample(args) == 2
    assert "sessions per order must be between 1 and 1000" in capsys.readouterr().err


def test_cli_shows_progress_table_by_table_when_asked(tmp_path: Path, capsys) -> None:
    import argparse

    from commerceql.sample.cli import add_sample_arguments, run_sample
    from commerceql.sample.generator import TABLES

    parser = argparse.ArgumentParser()
    add_sample_arguments(parser)
    args = parser.parse_args(["--orders", "300", "--years", "1", "--out", str(tmp_path / "s"), "--progress"])
    assert run_sample(args) == 0
    err = capsys.readouterr().err
    assert f"{len(TABLES)}/{len(TABLES)} tables" in err and err.endswith("\n")
    args = parser.parse_args(["--orders", "300", "--years", "1", "--out", str(tmp_path / "t"), "--no-progress"])
    assert run_sample(args) == 0
    assert capsys.readouterr().err == ""


def test_ensure_default_store_replaces_a_stale_store(tmp_path: Path, monkeypatch) -> None:
    from commerceql.sample import default_store_path, ensure_default_store, read_manifest

    target = tmp_path / "store"
    monkeypatch.setenv("COMMERCEQL_SAMPLE_STORE", str(target))
    assert default_store_path() == target
    target.mkdir()
    (target / "manifest.json").write_text(json.dumps({"format": "commerceql-store", "generator": {"version": 0}}))
    assert ensure_default_store() == target
    manifest = read_manifest(target)
    assert manifest["generator"] == {"version": GENERATOR_VERSION, "seed": 42, "orders": 50_000, "years": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]  # no temporary folders left behind
    before = (target / "sales.parquet").stat().st_mtime_ns
    assert ensure_default_store() == target  # current: not regenerated
    assert (target / "sales.parquet").stat().st_mtime_ns == before


def test_quotes_are_draft_orders_for_company_buyers(duckdb_connection, sample_store_path: Path) -> None:
    """quote_acceptance_rate counts quotes to company buyers only; DTC drafts are phone orders, all
    completed by staff on the spot (counting them gave a higher rate: 62.2 % instead of 52.3 % in the
    version-5 sample store)."""
    import commerceql as cql

    con = duckdb_connection
    assert one(con, "SELECT COUNT(*) FROM draft_orders WHERE company_id IS NULL AND status <> 'completed'") == 0
    accepted, expired, completed_all, expired_all = con.execute("""
        SELECT COUNT(*) FILTER (WHERE company_id IS NOT NULL AND status = 'completed'),
               COUNT(*) FILTER (WHERE company_id IS NOT NULL AND status = 'expired'),
               COUNT(*) FILTER (WHERE status = 'completed'), COUNT(*) FILTER (WHERE status = 'expired')
        FROM draft_orders""").fetchone()
    store = cql.connect(sample_store_path)
    try:
        row = store.query("FROM draft_orders SHOW accepted_quotes, expired_quotes, quote_acceptance_rate, "
                          "completed_draft_orders, draft_order_completion_rate").df.row(0)
    finally:
        store.close()
    assert row[:2] == (accepted, expired) and row[3] == completed_all
    assert abs(row[2] - accepted / (accepted + expired)) < 1e-12
    assert abs(row[4] - completed_all / (completed_all + expired_all)) < 1e-12
    assert completed_all > accepted and round(row[4], 3) > round(row[2], 3)  # the phone orders do change it
