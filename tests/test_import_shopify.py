"""Importing Shopify admin exports: every real export in ../shared/realdata/shopify, and bad inputs.

The real files are read in place (never copied into the repository). Without the folder the tests
that need it skip, except under CI=true, where they must run.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from model_sweep import run_every_builtin_field

import commerceql as cql
from commerceql import derived
from commerceql.errors import CommerceQLDataError, CommerceQLError
from commerceql.importers import CommerceQLImportError, import_shopify
from commerceql.importers.cli import main as import_main
from commerceql.importers.common import OPTIONAL_SCHEMAS, SCHEMAS, detect_timezone

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
SHOPIFY = REALDATA / "shopify"
needs_realdata = pytest.mark.skipif(
    not SHOPIFY.is_dir() and os.environ.get("CI") != "true",
    reason=f"real Shopify exports not found at {SHOPIFY} (they are required when CI=true)",
)

FOLDERS = sorted(p.name for p in SHOPIFY.iterdir() if p.is_dir()) if SHOPIFY.is_dir() else [
    "bibiwatson_files", "customer_data_visuals", "customer_vip", "d3js_test", "dna_crm", "eda_on_sales_data",
    "explorer_analytics", "kidsliving", "las_lira", "maison_maria", "monfrere_tactical_audit",
    "shopify_data_ingestion", "shopify_parsing", "signal_analytics", "skrishnanunni_shopify",
]
ORDER_FOLDERS = [f for f in FOLDERS if f not in ("customer_data_visuals", "las_lira", "skrishnanunni_shopify")]

# Detected from the timestamps' UTC offsets (bibiwatson's spreadsheet copy has none).
TIMEZONES = {
    "bibiwatson_files": "UTC", "customer_vip": "America/New_York", "d3js_test": "Australia/Sydney",
    "dna_crm": "Europe/London", "eda_on_sales_data": "America/Los_Angeles", "explorer_analytics": "America/New_York",
    "kidsliving": "Africa/Johannesburg", "maison_maria": "Europe/London",
    "monfrere_tactical_audit": "America/Los_Angeles", "shopify_data_ingestion": "America/New_York",
    "shopify_parsing": "Asia/Karachi", "signal_analytics": "Asia/Karachi",
    "skrishnanunni_shopify": "America/New_York",
}
CURRENCIES = {
    "bibiwatson_files": "CAD", "customer_vip": "USD", "d3js_test": "AUD", "dna_crm": "EUR",
    "eda_on_sales_data": "USD", "explorer_analytics": "USD", "kidsliving": "ZAR", "maison_maria": "GBP",
    "monfrere_tactical_audit": "USD", "shopify_data_ingestion": "INR", "shopify_parsing": "BDT",
    "signal_analytics": "PKR",
}
# The README's per-order identity table: orders, Subtotal = Σ(qty×price) − Discount Amount,
# Total = Subtotal + Shipping + Taxes, Total = Subtotal + Shipping.
README_IDENTITIES = {
    "monfrere_tactical_audit": (4936, 4936, 4935, 4022),
    "eda_on_sales_data": (3885, 3679, 3679, 365),
    "customer_vip": (409, 407, 362, 407),
    "kidsliving": (50, 50, 1, 50),
    "dna_crm": (137, 136, 11, 136),
    "maison_maria": (60, 60, 60, 60),
}
QUERIES = [
    "FROM sales SHOW net_sales, orders GROUP BY month ORDER BY month",
    "FROM sales SHOW net_sales, quantity_ordered GROUP BY product_title ORDER BY net_sales DESC LIMIT 10",
    "FROM sales SHOW net_sales, orders GROUP BY billing_region ORDER BY net_sales DESC",
    "FROM sales SHOW customers, orders, net_sales GROUP BY new_or_returning_customer",
    "FROM sales SHOW gross_sales, discounts, sales_reversals, net_sales, taxes, shipping_charges, total_sales",
]


@pytest.fixture(scope="session")
def imported(tmp_path_factory):
    """Each real folder imported once: folder name -> (report, store path)."""
    root = tmp_path_factory.mktemp("shopify-stores")
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            out = root / name
            cache[name] = (import_shopify([SHOPIFY / name], out), out)
        return cache[name]

    return get


def _raw_orders(folder: Path) -> tuple[int, int, int]:
    """(orders, line rows, tip and gift-card rows) counted straight from the folder's order export files."""
    names: set[str] = set()
    lines = tips = 0
    for path in folder.glob("*.csv"):
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = set(reader.fieldnames or ())
            if not {"Name", "Created at"} <= fields or "checkout" in path.name.lower():
                continue
            for row in reader:
                if row.get("Financial Status") or row.get("Total"):
                    names.add(row["Name"])
                if row.get("Lineitem name"):
                    lines += 1
                    if row["Lineitem name"].strip().lower() == "tip" and not row.get("Lineitem sku"):
                        tips += 1
                    elif ("gift card" in row["Lineitem name"].lower()
                          and row.get("Lineitem requires shipping", "").lower() != "true"):
                        tips += 1  # gift cards sold are not sales lines either
    return len(names), lines, tips


# ---------------------------------------------------------------------------------------------
# every real export


@needs_realdata
@pytest.mark.parametrize("folder", FOLDERS)
def test_every_real_export_imports(imported, folder):
    report, out = imported(folder)
    assert (out / "manifest.json").is_file()
    store = cql.connect(out)
    try:
        manifest = store.manifest
        assert manifest["format"] == "commerceql-store" and manifest["as_of"] is None
        assert {Path(f["path"]).name for f in manifest["source"]["files"]} == {Path(f.path).name for f in report.files}
        # each file's own checksum (worked out in the background while the import runs)
        assert all(f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
                   for f in manifest["source"]["files"])
        assert manifest["timezone"] == TIMEZONES.get(folder, manifest["timezone"])
        if folder in CURRENCIES:
            assert manifest["currency"] == CURRENCIES[folder]
        # every store table exists with the sample store's exact schema
        for table, columns in {**SCHEMAS, **OPTIONAL_SCHEMAS}.items():
            described = store.sql(f"DESCRIBE SELECT * FROM {table}")
            got = list(zip(described["column_name"], described["column_type"], strict=True))
            assert got == [(c, t.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for c, t in columns], table
        for table in report.empty_tables:
            assert store.sql(f"SELECT count(*) AS n FROM {table}")["n"][0] == 0
        # files that are not admin exports are reported, with a reason
        for ignored in report.ignored:
            assert "Analytics report" in ignored.note or "not a recognised" in ignored.note
        for query in QUERIES:
            store.query(query)  # runs on every store, also when it has no orders
    finally:
        store.close()
    assert report.skipped == []
    assert "Reconciliation" in report.render() or report.reconciliation == {}


@needs_realdata
def test_analytics_reports_are_reported_not_imported(imported):
    report, _ = imported("monfrere_tactical_audit")
    assert len(report.ignored) == 11
    assert all("Analytics report" in f.note for f in report.ignored)
    assert {f.kind for f in report.files} == {"orders", "checkouts", "inventory"}


@needs_realdata
@pytest.mark.parametrize("folder", ORDER_FOLDERS)
def test_counts_match_the_file(imported, folder):
    report, out = imported(folder)
    orders, line_rows, tips = _raw_orders(SHOPIFY / folder)
    store = cql.connect(out)
    try:
        assert store.sql("SELECT count(*) AS n FROM orders")["n"][0] == orders
        assert store.sql("SELECT count(DISTINCT name) AS n FROM orders")["n"][0] == orders
        assert store.sql("SELECT count(*) AS n FROM line_items")["n"][0] == line_rows - tips
        assert report.counts["orders"] == orders
        tests = store.sql("SELECT count(*) AS n FROM orders WHERE is_test")["n"][0]
        assert store.query("FROM sales SHOW orders").df["orders"][0] == orders - tests
    finally:
        store.close()


@needs_realdata
@pytest.mark.parametrize("folder", sorted(README_IDENTITIES))
def test_readme_identities_are_read_exactly(imported, folder):
    """The README's per-order identity counts, recomputed from the imported store's figures."""
    _, out = imported(folder)
    store = cql.connect(out)
    try:
        row = store.sql("""
            SELECT count(*) AS orders,
                   count(*) FILTER (WHERE export_subtotal = export_lines_gross - export_discount) AS subtotal_ok,
                   count(*) FILTER (WHERE export_total = export_subtotal + export_shipping + export_taxes) AS excl,
                   count(*) FILTER (WHERE export_total = export_subtotal + export_shipping) AS incl
            FROM reconciliation
        """).row(0)
    finally:
        store.close()
    assert row == README_IDENTITIES[folder]


@needs_realdata
@pytest.mark.parametrize("folder", ORDER_FOLDERS)
def test_money_identities_and_reconciliation(imported, folder):
    report, out = imported(folder)
    store = cql.connect(out)
    try:
        bad = store.sql("""
            SELECT count(*) AS n FROM sales
            WHERE net_sales <> gross_sales + discounts + sales_reversals
               OR total_sales <> net_sales + taxes + shipping_charges
               OR discounts > 0 OR sales_reversals > 0
        """)["n"][0]
        assert bad == 0
        money = store.sql("SELECT count(*) FILTER (WHERE export_total IS NOT NULL) AS n FROM reconciliation")["n"][0]
        if folder == "bibiwatson_files":  # the spreadsheet copy has no price or total columns
            assert money == 0 and report.reconciliation["unexplained"] is None
            return
        # the export's Total against CommerceQL's total_sales, order by order
        per_order = store.sql("""
            WITH s AS (SELECT order_id, sum(total_sales) AS t FROM sales GROUP BY 1)
            SELECT count(*) AS n FROM reconciliation r LEFT JOIN s USING (order_id)
            WHERE coalesce(s.t, 0) <> r.expected_total_sales
        """)["n"][0]
        assert per_order == 0
        # ... where every difference has a documented reason
        rules = store.sql("""
            SELECT count(*) AS n FROM reconciliation
            WHERE NOT is_test AND expected_total_sales <>
                  export_total - tips - gift_cards - total_residual + reversed_total
        """)["n"][0]
        assert rules == 0
        residual = store.sql("SELECT count(*) AS n FROM reconciliation WHERE total_residual <> 0")["n"][0]
        assert residual == 0  # every real Total is explained by Subtotal, Shipping, Taxes, Duties and tips
        total = store.query("FROM sales SHOW total_sales").df["total_sales"][0]
        expected = store.sql("SELECT sum(expected_total_sales) AS e FROM reconciliation")["e"][0]
        assert Decimal(str(total)) == Decimal(str(expected))
        assert report.reconciliation["unexplained"] == 0
        # monthly net sales add up to the total
        monthly = store.query("FROM sales SHOW net_sales GROUP BY month").df["net_sales"].sum()
        overall = store.query("FROM sales SHOW net_sales").df["net_sales"][0]
        assert Decimal(str(monthly)) == Decimal(str(overall))
    finally:
        store.close()


@needs_realdata
def test_tips_tax_inclusive_edits_and_test_orders(imported):
    report, out = imported("eda_on_sales_data")
    assert report.counts["tip_lines"] == 208
    store = cql.connect(out)
    assert store.sql("SELECT count(*) AS n FROM line_items WHERE title = 'Tip'")["n"][0] == 0
    assert store.sql("SELECT sum(tips) AS t FROM reconciliation")["t"][0] == Decimal("977.88")
    store.close()
    # kidsliving: 15% VAT included in prices: gross excludes the VAT, Total = Subtotal + Shipping
    report, out = imported("kidsliving")
    store = cql.connect(out)
    row = store.sql("SELECT count(*) FILTER (WHERE taxes_included) AS n FROM reconciliation").row(0)
    assert row == (49,)
    taxes = store.sql("SELECT sum(taxes) AS t FROM sales WHERE event_type = 'order'")["t"][0]
    assert taxes == store.sql("SELECT sum(taxes) AS t FROM orders")["t"][0]
    gross = store.sql("SELECT sum(gross_sales) AS g FROM sales WHERE event_type = 'order'")["g"][0]
    assert gross == store.sql("SELECT sum(export_subtotal - CASE WHEN taxes_included THEN export_taxes ELSE 0 END) "
                              "AS g FROM reconciliation")["g"][0]
    store.close()
    # customer_vip: a FREESHIP code is a shipping discount, not a product discount
    _, out = imported("customer_vip")
    store = cql.connect(out)
    free = store.sql("SELECT export_shipping, export_discount, export_total FROM reconciliation "
                     "WHERE order_name = '#1323'").row(0)
    assert free == (Decimal("15.00"), Decimal("15.00"), Decimal("93.00"))
    # the orders table holds the amounts as booked: no shipping charged, no product discount
    assert store.sql("SELECT shipping, total_discounts, total FROM orders WHERE name = '#1323'").row(0) == (
        Decimal("0.00"), Decimal("0.00"), Decimal("93.00"))
    ship = store.sql("SELECT sum(shipping_charges) AS s FROM sales WHERE order_name = '#1323'")["s"][0]
    assert ship == 0
    store.close()
    # signal_analytics: 6 orders whose line items do not add up to their Subtotal
    report, out = imported("signal_analytics")
    assert report.counts["orders_lines_vs_subtotal"] == 6
    # monfrère: the bogus-gateway test orders are not sales; Duties are booked as taxes
    report, out = imported("monfrere_tactical_audit")
    store = cql.connect(out)
    assert store.sql("SELECT count(*) AS n FROM orders WHERE is_test")["n"][0] == 5
    assert store.sql("SELECT count(*) AS n FROM sales s JOIN orders o USING (order_id) WHERE o.is_test")["n"][0] == 0
    assert store.sql("SELECT sum(duties) AS d FROM reconciliation")["d"][0] == Decimal("3.98")
    assert store.sql("SELECT count(*) AS n FROM checkouts")["n"][0] == 252
    assert store.sql("SELECT count(*) AS n FROM inventory_levels")["n"][0] == 1856
    store.close()


@needs_realdata
def test_refund_dates_follow_the_documented_rules(imported):
    _, out = imported("maison_maria")
    store = cql.connect(out)
    try:
        # 8 cancelled + refunded orders: reversed in full on their cancellation date
        rows = store.sql("""
            SELECT o.name, o.cancelled_at, r.created_at, r.kind
            FROM orders o JOIN refunds r USING (order_id) ORDER BY o.name
        """)
        assert rows.height == 8
        assert (rows["cancelled_at"] == rows["created_at"]).all() and set(rows["kind"]) == {"cancellation"}
        reversed_total = store.query("FROM sales SHOW total_sales WHERE order_or_sales_reversal = 'Sales reversal'"
                                     ).df["total_sales"][0]
        assert Decimal(str(reversed_total)) == -store.sql(
            "SELECT sum(total) AS t FROM orders WHERE cancelled_at IS NOT NULL")["t"][0]
    finally:
        store.close()
    _, out = imported("customer_vip")
    store = cql.connect(out)
    try:
        # refunds without a cancellation: booked on the order's last known date (paid, fulfilled or created)
        rows = store.sql("""
            SELECT r.created_at AS refunded, o.created_at, o.fulfilled_at FROM refunds r JOIN orders o USING (order_id)
            WHERE r.kind = 'return'
        """)
        assert rows.height == store.sql(
            "SELECT count(*) AS n FROM reconciliation WHERE refund_date_rule LIKE 'last known%'")["n"][0] > 0
        for refunded, created, fulfilled in rows.iter_rows():
            assert refunded >= created and (fulfilled is None or refunded >= fulfilled)
        # full refunds reverse the units too
        units = store.query("FROM sales SHOW reversed_quantity").df["reversed_quantity"][0]
        assert units > 0
    finally:
        store.close()


@needs_realdata
def test_spreadsheet_copy_with_day_first_dates(tmp_path):
    """bibiwatson: dd/mm/yyyy HH:MM without zone, no prices; read as local time in --timezone."""
    report = import_shopify([SHOPIFY / "bibiwatson_files"], tmp_path / "s", timezone="America/Toronto")
    assert report.timezone == "America/Toronto"
    assert any("re-saved by a spreadsheet" in w for w in report.warnings)
    assert any("day/month/year" in n for n in report.notes)
    store = cql.connect(tmp_path / "s")
    created = store.sql("SELECT created_at FROM orders WHERE name = '#4087'")["created_at"][0]
    assert created == dt.datetime(2024, 1, 1, 3, 36, tzinfo=dt.UTC)  # 31/12/2023 22:36 in Toronto
    assert store.query("FROM sales SHOW orders").df["orders"][0] == 3087
    store.close()


@needs_realdata
def test_excel_mangled_ids_are_not_trusted(imported):
    report, out = imported("skrishnanunni_shopify")
    assert any("scientific notation" in w for w in report.warnings)
    store = cql.connect(out)
    assert store.sql("SELECT count(DISTINCT customer_id) AS n FROM customers")["n"][0] == 8
    assert store.sql("SELECT count(*) AS n FROM transactions WHERE kind = 'refund'")["n"][0] == 8
    store.close()


# ---------------------------------------------------------------------------------------------
# transactions, multi-part exports, currencies


def _write(path: Path, header: list[str], rows: list[list[str]], encoding: str = "utf-8") -> Path:
    with open(path, "w", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    return rows[0], rows[1:]


@needs_realdata
def test_transactions_give_refund_dates(tmp_path):
    source = SHOPIFY / "customer_vip" / "orders_export_1.csv"
    header, rows = _rows(source)
    col = {h: i for i, h in enumerate(header)}
    refunded = [r for r in rows if r[col["Financial Status"]] == "partially_refunded" and not r[col["Cancelled at"]]][:2]
    tx = []
    for k, r in enumerate(refunded):
        amount = r[col["Refunded Amount"]]
        tx.append(["4.1E+12", r[col["Name"]], "sale", "stripe", r[col["Created at"]], "success", r[col["Total"]], "USD", ""])
        tx.append(["4.1E+12", r[col["Name"]], "refund", "stripe", f"2022-02-0{k + 1} 10:00:00 -0500", "success", amount,
                   "USD", ""])
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(source, folder / "orders_export_1.csv")
    _write(folder / "transactions_export_1.csv",
           ["Order", "Name", "Kind", "Gateway", "Created At", "Status", "Amount", "Currency", "Card Type"], tx)
    report = import_shopify([folder], tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    got = store.sql("""
        SELECT o.name, r.created_at, r.total_refunded FROM refunds r JOIN orders o USING (order_id)
        JOIN reconciliation c USING (order_id) WHERE c.refund_date_rule = 'refund transactions' ORDER BY r.created_at
    """)
    assert list(got["name"]) == [r[col["Name"]] for r in refunded]
    assert got["created_at"][0] == dt.datetime(2022, 2, 1, 15, 0, tzinfo=dt.UTC)
    assert [str(v) for v in got["total_refunded"]] == [r[col["Refunded Amount"]] for r in refunded]
    assert report.reconciliation["unexplained"] == 0
    assert store.sql("SELECT count(*) AS n FROM transactions")["n"][0] == 4
    store.close()


@needs_realdata
def test_a_transaction_of_a_name_on_two_orders_is_numbered_by_order(tmp_path):
    """One order name on two orders of one export: its transaction joins both, and the two rows are
    numbered in order of their order_id (the tie on time and line is not left to the join's order)."""
    header, rows = _rows(SHOPIFY / "kidsliving" / "orders_export.csv")
    col = {h: i for i, h in enumerate(header)}
    head = next(r for r in rows if r[col["Created at"]])
    name = head[col["Name"]]
    again = list(head)
    again[col["Created at"]] = "2019-01-02 09:00:00 -0500"  # an earlier order under the same name
    folder = tmp_path / "in"
    folder.mkdir()
    _write(folder / "orders_export.csv", header, [*rows[:40], again])
    _write(folder / "transactions_export_1.csv",
           ["Order", "Name", "Kind", "Gateway", "Created At", "Status", "Amount", "Currency", "Card Type"],
           [["1", name, "sale", "stripe", head[col["Created at"]], "success", head[col["Total"]], "USD", ""]])
    import_shopify([folder], tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    orders = store.sql(f"SELECT order_id FROM orders WHERE name = '{name}' ORDER BY order_id")
    numbered = store.sql("SELECT transaction_id, order_id FROM transactions ORDER BY transaction_id")
    store.close()
    assert len(orders) == 2
    assert list(numbered["transaction_id"]) == [1, 2]
    assert list(numbered["order_id"]) == list(orders["order_id"])


@needs_realdata
def test_multi_part_export_and_orphan_rows(tmp_path):
    source = SHOPIFY / "explorer_analytics" / "orders_export_1.csv"
    header, rows = _rows(source)
    name = header.index("Name")
    # split inside an order that has several rows
    cut = next(i for i in range(1, len(rows)) if rows[i][name] == rows[i - 1][name])
    part1 = _write(tmp_path / "orders_export_1.csv", header, rows[:cut])
    part2 = _write(tmp_path / "orders_export_2.csv", header, rows[cut:])
    whole = import_shopify([source], tmp_path / "whole")
    both = import_shopify([part1, part2], tmp_path / "both")
    assert both.skipped == []
    assert both.reconciliation["commerceql_total_sales"] == whole.reconciliation["commerceql_total_sales"]
    assert both.row_counts["line_items"] == whole.row_counts["line_items"]
    # part 2 alone: the continuation rows of the split order have no order-level row
    alone = import_shopify([part2], tmp_path / "alone")
    assert len(alone.skipped) >= 1
    first = alone.skipped[0]
    assert first.file.endswith("orders_export_2.csv") and first.line == 2
    assert "order-level row is not in the import" in first.reason
    assert "line 2" in alone.render()
    # the same export twice: duplicates are skipped, with the reason and line of each
    dup = tmp_path / "copy"
    dup.mkdir()
    shutil.copy(source, dup / "orders_export_copy.csv")
    twice = import_shopify([source, dup / "orders_export_copy.csv"], tmp_path / "twice")
    assert len(twice.skipped) == len(rows)
    assert all("duplicate of order" in s.reason for s in twice.skipped)
    assert twice.reconciliation["commerceql_total_sales"] == whole.reconciliation["commerceql_total_sales"]


@needs_realdata
def test_orders_in_another_currency_are_skipped_with_a_reason(tmp_path):
    header, rows = _rows(SHOPIFY / "maison_maria" / "orders_export_1.csv")
    cur = header.index("Currency")
    rows[0][cur] = "EUR"
    path = _write(tmp_path / "orders_export.csv", header, rows)
    report = import_shopify([path], tmp_path / "s")
    assert report.currency == "GBP"
    assert len(report.skipped) == 1 and report.skipped[0].line == 2
    assert "EUR" in report.skipped[0].reason
    assert any("several currencies" in w for w in report.warnings)


@needs_realdata
def test_ambiguous_slash_dates_need_a_date_order(tmp_path):
    header, rows = _rows(SHOPIFY / "maison_maria" / "orders_export_1.csv")
    for row in rows:
        for i, h in enumerate(header):
            if h in ("Created at", "Paid at", "Fulfilled at", "Cancelled at") and row[i]:
                row[i] = "02/03/2025 10:15"  # could be 2 March or 3 February
    path = _write(tmp_path / "orders_export.csv", header, rows)
    with pytest.raises(CommerceQLImportError, match="day/month/year or month/day/year") as info:
        import_shopify([path], tmp_path / "s")
    assert "--date-order" in info.value.render()
    assert not (tmp_path / "s").exists()
    report = import_shopify([path], tmp_path / "s", date_order="dmy", timezone="Europe/London")
    store = cql.connect(tmp_path / "s")
    assert store.sql("SELECT min(created_at) AS c FROM orders")["c"][0] == dt.datetime(2025, 3, 2, 10, 15, tzinfo=dt.UTC)
    store.close()
    assert report.timezone == "Europe/London"


@needs_realdata
def test_windows_1252_file(tmp_path):
    header, rows = _rows(SHOPIFY / "customer_vip" / "orders_export_1.csv")
    path = _write(tmp_path / "orders_export.csv", header, rows[:40], encoding="cp1252")
    import_shopify([path], tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    assert "Münster" in set(store.sql("SELECT shipping_city FROM orders")["shipping_city"])
    store.close()


# ---------------------------------------------------------------------------------------------
# bad inputs: a clear error naming the file, line and column, and nothing left behind


def _assert_nothing_left(out: Path) -> None:
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}-")]


@needs_realdata
@pytest.mark.parametrize("case", ["truncated_record", "truncated_quote", "semicolons", "missing_column",
                                  "garbage_money", "empty", "header_only_analytics"])
def test_bad_inputs(tmp_path, case):
    source = SHOPIFY / "explorer_analytics" / "orders_export_1.csv"
    header, rows = _rows(source)
    bad = tmp_path / "orders_export_1.csv"
    expect: dict[str, object] = {}
    if case == "truncated_record":
        _write(bad, header, rows)
        text = bad.read_text(encoding="utf-8")
        bad.write_text(text[: text.index("\n", len(text) // 2) + 200].rsplit(",", 3)[0], encoding="utf-8")
        expect = {"match": "fields where the header has 78"}
    elif case == "truncated_quote":
        notes = header.index("Note Attributes")
        rows[-1][notes] = "line one\nline two"
        _write(bad, header, rows)
        text = bad.read_text(encoding="utf-8")
        bad.write_text(text[: text.rindex("line one") + 4], encoding="utf-8")
        expect = {"match": "malformed CSV|truncated"}
    elif case == "semicolons":
        bad.write_text(source.read_text(encoding="utf-8-sig").replace(",", ";"), encoding="utf-8")
        expect = {"match": "wrong delimiter", "line": 1}
    elif case == "missing_column":
        i = header.index("Created at")
        _write(bad, header[:i] + header[i + 1:], [r[:i] + r[i + 1:] for r in rows])
        expect = {"match": "no `Created at` column", "column": "Created at"}
    elif case == "garbage_money":
        t = header.index("Total")
        first = next(k for k, r in enumerate(rows) if r[t])
        rows[first][t] = "12,5O"
        _write(bad, header, rows)
        expect = {"match": "not an amount", "column": "Total", "line": first + 2}
    elif case == "empty":
        bad.write_bytes(b"")
        expect = {"match": "empty"}
    elif case == "header_only_analytics":
        bad.write_text('"Week","Sessions"\n"2024-01-01","12"\n', encoding="utf-8")
        expect = {"match": "nothing to import"}
    out = tmp_path / "store"
    with pytest.raises(CommerceQLImportError, match=expect["match"]) as info:
        import_shopify([bad], out)
    error = info.value
    assert isinstance(error, CommerceQLDataError)
    assert str(bad.name) in str(error)
    if "line" in expect:
        assert error.line_number == expect["line"]
    if "column" in expect:
        assert error.column_name == expect["column"]
    _assert_nothing_left(out)


@needs_realdata
def test_existing_store_needs_force(tmp_path):
    source = SHOPIFY / "kidsliving"
    import_shopify([source], tmp_path / "s")
    with pytest.raises(CommerceQLDataError, match="already holds a store"):
        import_shopify([source], tmp_path / "s")
    report = import_shopify([source], tmp_path / "s", overwrite=True, name="Kids Living")
    assert cql.connect(tmp_path / "s").name == "Kids Living" == report.store_name
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(CommerceQLDataError, match="not empty"):
        import_shopify([source], tmp_path / "other", overwrite=True)
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"


@needs_realdata
def test_cli(tmp_path, capsys):
    rc = import_main(["shopify", str(SHOPIFY / "maison_maria"), "--out", str(tmp_path / "s"), "--name", "Maison"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Reconciliation:" in out and "CommerceQL total_sales" in out and "unexplained difference" in out
    assert "Rows skipped: 0" in out
    rc = import_main(["shopify", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "t")])
    assert rc == 2
    assert "does not exist" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# time-zone detection


def _samples(*stamps: str) -> dict[tuple[int, int], int]:
    out = {}
    for s in stamps:
        value = dt.datetime.strptime(s, "%Y-%m-%d %H:%M:%S %z")
        instant = int(value.timestamp())
        offset = int(value.utcoffset().total_seconds() // 60)
        out[(instant // 3600, offset)] = instant
    return out


def test_timezone_detection():
    zone, why = detect_timezone(_samples("2022-01-11 04:32:30 -0500", "2021-07-01 10:00:00 -0400"))
    assert zone == "America/New_York" and "-0500" in why
    zone, _ = detect_timezone(_samples("2025-08-03 23:31:15 +0100", "2025-12-07 19:08:24 +0000"), ["PT", "PT", "GB"])
    assert zone == "Europe/Lisbon"
    zone, _ = detect_timezone(_samples("2025-08-03 23:31:15 +0100", "2025-12-07 19:08:24 +0000"), ["GB"])
    assert zone == "Europe/London"
    zone, _ = detect_timezone(_samples("2023-05-01 10:00:00 -0700", "2023-05-31 10:00:00 -0700"), ["US"])
    assert zone == "America/Los_Angeles"
    zone, _ = detect_timezone(_samples("2023-01-01 10:00:00 -0700", "2023-07-01 10:00:00 -0700"), ["US"])
    assert zone == "America/Phoenix"  # no daylight saving
    zone, why = detect_timezone(_samples("2023-01-01 10:00:00 +0545"))
    assert zone == "Asia/Kathmandu"
    zone, why = detect_timezone({})
    assert zone is None and "no timestamp" in why


@needs_realdata
@pytest.mark.parametrize("folder", ["monfrere_tactical_audit", "bibiwatson_files", "skrishnanunni_shopify"])
def test_every_builtin_metric_and_dimension_runs(imported, folder):
    _, out = imported(folder)
    store = cql.connect(out)
    try:
        assert run_every_builtin_field(store) == []
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------
# inventory and payments from their own exports


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@needs_realdata
def test_inventory_export_is_one_snapshot_of_every_variant(imported):
    report, out = imported("monfrere_tactical_audit")
    rows = _csv_rows(SHOPIFY / "monfrere_tactical_audit" / "Shopify_inventory_export_1.csv")
    on_hand: dict[str, int] = {}
    for row in rows:
        on_hand[row["SKU"]] = on_hand.get(row["SKU"], 0) + int(row["On hand (current)"])
    store = cql.connect(out)
    try:
        assert "missing_tables" not in store.manifest or "inventory_levels" not in store.manifest["missing_tables"]
        levels = store.sql("SELECT count(*) AS n, count(variant_id) AS mapped, count(DISTINCT day) AS days "
                           "FROM inventory_levels").row(0, named=True)
        assert levels == {"n": len(rows), "mapped": len(rows), "days": 1}
        total = store.query("FROM inventory SHOW ending_inventory_units GROUP BY location_name").df
        assert total["location_name"].to_list() == ["MONFRÈRE"]
        assert int(total["ending_inventory_units"][0]) == sum(on_hand.values())
        by_sku = store.query("FROM inventory SHOW ending_inventory_units GROUP BY product_variant_sku LIMIT 5000").df
        got = {sku: int(units) for sku, units in by_sku.iter_rows()}
        assert got == on_hand
        # the snapshot is dated the last day of the orders: a range ending earlier has no inventory
        day = store.sql("SELECT max(day) AS d FROM inventory_levels")["d"][0]
        last_order = store.sql("SELECT max(created_at) AS t FROM orders")["t"][0]
        assert day == last_order.astimezone(__import__("zoneinfo").ZoneInfo(store.timezone)).date()
        assert any("one snapshot" in note for note in report.notes)
    finally:
        store.close()


@needs_realdata
def test_transactions_export_gives_the_payments_table(imported):
    _, out = imported("skrishnanunni_shopify")
    rows = _csv_rows(SHOPIFY / "skrishnanunni_shopify" / "transactions_export_1.csv")
    ok = [r for r in rows if r["Status"] == "success"]
    gross = sum(Decimal(r["Amount"]) for r in ok if r["Kind"] in ("sale", "capture"))
    refunded = -sum(Decimal(r["Amount"]) for r in ok if r["Kind"] == "refund")
    store = cql.connect(out)
    try:
        result = store.query(
            "FROM payments SHOW gross_payments, refunded_payments, net_payments, transactions, failed_transactions, "
            "orders_with_transactions SINCE 2023-01-01 UNTIL 2023-12-31").df.row(0, named=True)
        assert result["gross_payments"] == gross and result["refunded_payments"] == refunded
        assert result["net_payments"] == gross + refunded
        assert result["transactions"] == len(rows)
        assert result["failed_transactions"] == sum(r["Status"] == "failure" for r in rows)
        assert result["orders_with_transactions"] == len({r["Name"] for r in rows})
        methods = store.query("FROM payments SHOW gross_payments GROUP BY payment_method, payment_gateway "
                              "SINCE 2023-01-01 UNTIL 2023-12-31").df
        assert set(zip(methods["payment_method"], methods["payment_gateway"], strict=True)) == {
            ("Credit card", "shopify_payments"), ("Manual", "manual")}
    finally:
        store.close()


@needs_realdata
def test_a_store_without_those_exports_names_what_is_missing(imported):
    _, out = imported("bibiwatson_files")
    store = cql.connect(out)
    try:
        missing = store.manifest["missing_tables"]
        assert "Inventory export" in missing["inventory_levels"]
        assert "Transactions export" in missing["transactions"]
        # what a refusal of FROM inventory / FROM payments says on this store
        for name, export in (("inventory", "Inventory export"), ("payments", "Transactions export")):
            reason = derived.missing_data(store.model.tables[name].relation, name, store.manifest)
            assert reason is not None and export in reason and f"`{name}`" in reason
        for table in ("inventory_levels", "transactions"):
            assert store.sql(f"SELECT count(*) AS n FROM {table}")["n"][0] == 0
        # and the query is refused with that reason, at the table's name, not answered with zeros
        for name, export in (("inventory", "Inventory export"), ("payments", "Transactions export")):
            text = f"FROM {name} SHOW {'ending_inventory_units' if name == 'inventory' else 'net_payments'} DURING last_month"
            with pytest.raises(CommerceQLError) as refused:
                store.query(text)
            assert export in refused.value.message and refused.value.span.start_pos == text.index(name)
        assert store.query("FROM sales SHOW orders").df.height == 1  # other tables still answer
    finally:
        store.close()
