"""Importing any table with a mapping file: Superstore and CDNOW reproduce their published figures
through CommerceQL queries; Parquet / DuckDB sources; mapping and data errors; the store schema."""

from __future__ import annotations

import csv
import datetime as dt
import os
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import polars as pl
import pytest
from model_sweep import run_every_builtin_field

import commerceql as cql
from commerceql.errors import CommerceQLDataError
from commerceql.importers import CommerceQLImportError, CommerceQLMappingError, import_table
from commerceql.importers.cli import main as import_main
from commerceql.importers.common import SCHEMAS
from commerceql.importers.table import MAPPINGS_DIR

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
SUPERSTORE = REALDATA / "superstore" / "Sample - Superstore.csv"
CDNOW = REALDATA / "cdnow"
needs_realdata = pytest.mark.skipif(
    not REALDATA.is_dir() and os.environ.get("CI") != "true",
    reason=f"real data sets not found at {REALDATA} (they are required when CI=true)",
)


def _d(value: object) -> Decimal:
    return Decimal(str(value))


def _r2(value: object) -> Decimal:
    """Rounded to the cent, half up (as the published figures are)."""
    return _d(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@pytest.fixture(scope="module")
def superstore(tmp_path_factory):
    out = tmp_path_factory.mktemp("superstore") / "store"
    report = import_table(SUPERSTORE, MAPPINGS_DIR / "superstore.toml", out)
    store = cql.connect(out)
    yield store, report
    store.close()


@pytest.fixture(scope="module")
def cdnow(tmp_path_factory):
    out = tmp_path_factory.mktemp("cdnow") / "store"
    import_table(CDNOW / "CDNOW_master.txt", "cdnow", out)
    store = cql.connect(out)
    yield store
    store.close()


@pytest.fixture(scope="module")
def cdnow_sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("cdnow-sample") / "store"
    import_table(CDNOW / "CDNOW_sample.txt", "cdnow_sample", out)
    store = cql.connect(out)
    yield store
    store.close()


# ---------------------------------------------------------------------------------------------
# the store schema is the sample generator's


def test_schema_matches_the_sample_generator(tmp_path):
    from commerceql.sample.generator import generate_store

    generate_store(tmp_path, orders=200, years=1)
    con = duckdb.connect()
    for table, columns in SCHEMAS.items():
        got = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path / (table + '.parquet')}')").fetchall()
        expected = [(c, t.replace("TIMESTAMPTZ", "TIMESTAMP WITH TIME ZONE")) for c, t in columns]
        assert [(r[0], r[1]) for r in got] == expected, table


# ---------------------------------------------------------------------------------------------
# Superstore: the published figures, through CommerceQL queries


@needs_realdata
def test_superstore_published_totals(superstore):
    store, report = superstore
    row = store.query("FROM sales SHOW gross_sales, orders, customers").df.row(0, named=True)
    assert _r2(row["gross_sales"]) == Decimal("2297200.86")
    assert row["orders"] == 5009
    assert row["customers"] == 793
    profit = store.query("FROM sales SHOW profit").df["profit"][0]
    assert _r2(profit) == Decimal("286397.02")
    quantity = store.query("FROM sales SHOW quantity_ordered").df["quantity_ordered"][0]
    assert quantity == 37873
    assert report.reconciliation["unexplained"] == 0
    assert report.skipped == []


@needs_realdata
def test_superstore_breakdowns(superstore):
    store, _ = superstore
    regions = store.query("FROM sales SHOW gross_sales GROUP BY sales_region").df
    got = {r: _r2(v) for r, v in regions.iter_rows()}
    assert got == {"West": Decimal("725457.82"), "East": Decimal("678781.24"), "Central": Decimal("501239.89"),
                   "South": Decimal("391721.91")}
    years = store.query("FROM sales SHOW gross_sales, profit, orders GROUP BY year ORDER BY year").df
    assert [_r2(v) for v in years["gross_sales"]] == [
        Decimal("484247.50"), Decimal("470532.51"), Decimal("609205.60"), Decimal("733215.26")]
    assert list(years["orders"]) == [969, 1038, 1315, 1687]
    categories = store.query("FROM sales SHOW profit GROUP BY category").df
    assert {c: _r2(v) for c, v in categories.iter_rows()} == {
        "Furniture": Decimal("18451.27"), "Office Supplies": Decimal("122490.80"), "Technology": Decimal("145454.95")}
    products = store.query("FROM sales SHOW net_sales GROUP BY product_id LIMIT 5000").df
    assert products.height == 1862
    # the user-defined fields are part of the model, with their descriptions
    schema = store.schema("sales")
    profit = schema.filter(pl.col("name") == "profit").row(0, named=True)
    assert profit["kind"] == "metric" and profit["type"] == "money" and "Profit" in profit["description"]
    assert "segment" in set(schema["name"])
    assert (Path(store.path) / "model" / "mapping.yaml").is_file()
    assert (Path(store.path) / "mapping.toml").is_file()


@needs_realdata
def test_superstore_cli(tmp_path, capsys):
    rc = import_main(["table", str(SUPERSTORE), "--mapping", "superstore", "--out", str(tmp_path / "s"),
                      "--name", "Super"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "CommerceQL gross_sales 2,297,200.86 USD" in out
    assert cql.connect(tmp_path / "s").name == "Super"


# ---------------------------------------------------------------------------------------------
# CDNOW: README and published figures, through CommerceQL queries


CDNOW_MONTHS = {  # README: month -> (records, CDs, dollars)
    "1997-01": (8928, 19416, "299060.17"), "1997-02": (11272, 24921, "379590.03"),
    "1997-03": (11598, 26159, "393155.27"), "1997-04": (3781, 9729, "142824.49"),
    "1997-05": (2895, 7275, "107933.30"), "1997-06": (3054, 7301, "108395.87"),
    "1997-07": (2942, 8131, "122078.88"), "1997-08": (2320, 5851, "88367.69"),
    "1997-09": (2296, 5729, "81948.80"), "1997-10": (2562, 6203, "89780.77"),
    "1997-11": (2750, 7812, "115448.64"), "1997-12": (2504, 6418, "95577.35"),
    "1998-01": (2032, 5278, "76756.78"), "1998-02": (2026, 5340, "77096.96"),
    "1998-03": (2793, 7431, "108970.15"), "1998-04": (1878, 4697, "66231.52"),
    "1998-05": (1985, 4903, "70989.66"), "1998-06": (2043, 5287, "76109.30"),
}


@needs_realdata
def test_cdnow_master_figures(cdnow):
    row = cdnow.query("FROM sales SHOW customers, purchase_records, quantity_ordered, gross_sales").df.row(0, named=True)
    assert row["customers"] == 23570
    assert row["purchase_records"] == 69659
    assert row["quantity_ordered"] == 167881
    assert _d(row["gross_sales"]) == Decimal("2500315.63")
    monthly = cdnow.query("FROM sales SHOW purchase_records, quantity_ordered, gross_sales GROUP BY month "
                          "ORDER BY month").df
    got = {m.strftime("%Y-%m"): (r, q, str(_d(g))) for m, r, q, g in monthly.iter_rows()}
    assert got == CDNOW_MONTHS
    # every customer's first purchase is in Q1 1997 (the cohort)
    new = cdnow.query("FROM sales SHOW new_customers SINCE 1997-01-01 UNTIL 1997-03-31").df["new_customers"][0]
    assert new == 23570
    assert cdnow.query("FROM sales SHOW new_customers SINCE 1997-04-01").df["new_customers"][0] == 0


@needs_realdata
def test_cdnow_sample_published_figures(cdnow_sample):
    store = cdnow_sample
    row = store.query("FROM sales SHOW customers, purchase_records, quantity_ordered, gross_sales").df.row(0, named=True)
    assert (row["customers"], row["purchase_records"], row["quantity_ordered"]) == (2357, 6919, 16479)
    assert _d(row["gross_sales"]) == Decimal("244091.94")
    calibration = store.query(
        "FROM sales SHOW repeat_purchases, repeat_customers SINCE 1997-01-01 UNTIL 1997-09-30").df.row(0)
    assert calibration == (2457, 946)
    holdout = store.query("FROM sales SHOW repeat_purchases SINCE 1997-10-01 UNTIL 1998-06-30").df
    assert holdout["repeat_purchases"][0] == 1882
    # Hardie's per-customer summary (x, t_x, T, zbar), all 2,357 customers exactly
    ours = store.query("FROM sales SHOW x, t_x, calibration_t, zbar GROUP BY customer_id "
                       "SINCE 1997-01-01 UNTIL 1997-09-30 LIMIT 5000").df
    published = pl.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")
    joined = published.join(ours, left_on="ID", right_on="customer_id", how="inner")
    assert joined.height == 2357
    assert (joined["x"] == joined["x_right"]).all()
    assert ((joined["t_x"] - joined["t_x_right"].cast(pl.Float64)).abs() < 1e-9).all()
    assert ((joined["T"] - joined["calibration_t"].cast(pl.Float64)).abs() < 1e-9).all()
    assert ((joined["zbar"] - joined["zbar_right"].cast(pl.Float64)).abs() < 1e-9).all()


# ---------------------------------------------------------------------------------------------
# Parquet and DuckDB sources, reversals, extra columns


def _events(tmp_path: Path) -> Path:
    """A small event table: two orders, one refunded in part later."""
    path = tmp_path / "events.parquet"
    duckdb.sql("""
        SELECT * FROM (VALUES
            ('A-1', TIMESTAMPTZ '2024-03-01 10:00:00+00', 'order', 'c1', 'p1', 2, 10.00, 1.00, 'DE', 'Hats'),
            ('A-1', TIMESTAMPTZ '2024-03-01 10:00:00+00', 'order', 'c1', 'p2', 1, 5.50, 0.00, 'DE', 'Socks'),
            ('A-2', TIMESTAMPTZ '2024-04-02 09:00:00+00', 'order', 'c1', 'p1', 1, 10.00, 0.00, 'FR', 'Hats'),
            ('A-1', TIMESTAMPTZ '2024-03-20 12:00:00+00', 'refund', 'c1', 'p2', -1, 0.00, 0.00, 'DE', 'Socks'),
            ('B-1', TIMESTAMPTZ '2024-04-03 09:00:00+00', 'order', 'c2', 'p2', 3, 5.50, 0.50, 'US', 'Socks')
        ) t(order_ref, event_at, kind, cust, sku, qty, unit_price, disc, country, title)
    """).write_parquet(str(path))
    return path


EVENTS_MAPPING = {
    "store": {"name": "Events", "currency": "EUR", "timezone": "Europe/Berlin"},
    "sales": {
        "order": "order_ref", "happened_at": "event_at", "event_type": "kind", "customer": "cust", "product": "sku",
        "quantity": "qty", "price": {"sql": "CASE WHEN kind = 'order' THEN unit_price ELSE 0 END"},
        "discount_amount": "disc",
        "sales_reversals": {"sql": "CASE WHEN kind = 'refund' THEN qty * 5.50 ELSE 0 END"},
        "billing_country": "country",
    },
    "products": {"title": "title"},
    "columns": {"sales": {"unit_price": {"column": "unit_price", "type": "money"}}},
    "model": {"sales": {"metrics": {"average_unit_price": {
        "sql": "AVG(sales.unit_price)", "type": "money", "description": "Mean unit price of the rows."}}}},
}


def test_parquet_source_with_reversals(tmp_path):
    report = import_table(_events(tmp_path), EVENTS_MAPPING, tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    row = store.query("FROM sales SHOW gross_sales, discounts, sales_reversals, net_sales, orders, customers").df.row(0)
    assert [_d(v) for v in row[:4]] == [Decimal("52.00"), Decimal("-1.50"), Decimal("-5.50"), Decimal("45.00")]
    assert row[4:] == (3, 2)
    assert store.sql("SELECT count(*) AS n FROM refunds")["n"][0] == 1
    assert store.sql("SELECT item_count FROM refunds")["item_count"][0] == 1
    first = store.query("FROM sales SHOW new_customers, returning_customers").df.row(0)
    assert first == (2, 1)
    products = store.query("FROM sales SHOW net_sales GROUP BY product_title ORDER BY product_title").df
    assert list(products["product_title"]) == ["Hats", "Socks"]
    assert store.query("FROM sales SHOW average_unit_price").df.height == 1
    assert store.timezone == "Europe/Berlin" and store.currency == "EUR"
    assert report.row_counts["orders"] == 3
    for table, columns in SCHEMAS.items():
        names = list(store.sql(f"DESCRIBE SELECT * FROM {table}")["column_name"])
        assert names[: len(columns)] == [c for c, _ in columns]
    store.close()


def test_duckdb_source(tmp_path):
    db = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{_events(tmp_path)}')")
    con.close()
    mapping = dict(EVENTS_MAPPING, source={"format": "duckdb", "table": "events"})
    import_table(db, mapping, tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    assert store.query("FROM sales SHOW orders").df["orders"][0] == 3
    store.close()


# ---------------------------------------------------------------------------------------------
# mapping and data errors


def _csv(tmp_path: Path, rows: list[list[str]], name: str = "data.csv", delimiter: str = ",") -> Path:
    path = tmp_path / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


SIMPLE = {"sales": {"order": "order", "happened_at": "date", "gross_sales": "amount"}}
ROWS = [["order", "date", "amount"], ["1", "2024-01-02", "10.00"], ["2", "2024-01-03", "12.50"]]


def test_simple_csv(tmp_path):
    import_table(_csv(tmp_path, ROWS), SIMPLE, tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    assert _d(store.query("FROM sales SHOW gross_sales").df["gross_sales"][0]) == Decimal("22.50")
    assert store.sql("SELECT min(happened_at) AS t FROM sales")["t"][0] == dt.datetime(2024, 1, 2, tzinfo=dt.UTC)
    store.close()


@pytest.mark.parametrize("case", ["unknown_field", "missing_column", "garbage_money", "wrong_delimiter",
                                  "no_date_field", "positive_discounts", "bad_toml", "empty", "bad_model",
                                  "infinite_date", "epoch_date"])
def test_mapping_and_data_errors(tmp_path, case):
    mapping: object = SIMPLE
    rows = [r[:] for r in ROWS]
    delimiter = ","
    error_type: type = CommerceQLImportError
    match = ""
    if case == "unknown_field":
        mapping = {"sales": {**SIMPLE["sales"], "gross_sale": "amount"}}
        error_type, match = CommerceQLMappingError, "has no field `gross_sale`"
    elif case == "missing_column":
        mapping = {"sales": {**SIMPLE["sales"], "gross_sales": "Amount"}}
        match = "names column `Amount`"
    elif case == "garbage_money":
        rows[2][2] = "12,5O"
        match = "not an amount"
    elif case == "infinite_date":  # DuckDB reads it as a timestamp; a query on it used to panic in Polars
        rows[2][1] = "-infinity"
        match = "not a date"
    elif case == "epoch_date":  # DuckDB reads it as 1970-01-01
        rows[2][1] = "Epoch"
        match = "not a date"
    elif case == "wrong_delimiter":
        delimiter = ";"
        match = "wrong delimiter"
    elif case == "no_date_field":
        mapping = {"sales": {"order": "order", "gross_sales": "amount"}}
        error_type, match = CommerceQLMappingError, "needs `happened_at`"
    elif case == "positive_discounts":
        mapping = {"sales": {**SIMPLE["sales"], "discounts": "amount"}}
        match = "discounts must be zero or negative"
    elif case == "bad_toml":
        bad = tmp_path / "m.toml"
        bad.write_text("[sales\norder = 'x'\n")
        mapping = bad
        error_type, match = CommerceQLMappingError, "not valid TOML"
    elif case == "empty":
        rows = [ROWS[0]]
        match = "no rows"
    elif case == "bad_model":
        mapping = {**SIMPLE, "model": {"sales": {"metrics": {"Profit": {"sql": "SUM(1)", "type": "money"}}}}}
        error_type, match = CommerceQLMappingError, "lower_snake_case"
    source = _csv(tmp_path, rows, delimiter=delimiter)
    out = tmp_path / "store"
    with pytest.raises(error_type, match=match) as info:
        import_table(source, mapping, out)
    assert isinstance(info.value, CommerceQLDataError)
    if case == "garbage_money":
        assert info.value.line_number == 3 and info.value.column_name == "amount"
    if case in ("infinite_date", "epoch_date"):
        assert info.value.line_number == 3 and info.value.column_name == "date"
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".store-")]


LARGE = {"sales": {"order": "order", "happened_at": "date", "gross_sales": "amount", "quantity": "qty",
                   "customer": "customer"}}
BIG = "6000000000000000.00"  # 6 * 10**15: fits DECIMAL(18,2) (below 10**16), two of them do not


def _large_source(tmp_path: Path, rows: list[list[str]]) -> Path:
    """A CSV for LARGE: order, amount, quantity and customer per row, all on one day."""
    return _csv(tmp_path, [["order", "amount", "qty", "customer", "date"], *(r + ["2024-01-02"] for r in rows)])


@pytest.mark.parametrize(("case", "rows", "line", "column", "says"), [
    # one value beyond the store (these were DuckDB's conversion errors, naming no row)
    ("amount", [["1", "99999999999999999999.00", "1", "a"]], 2, "amount", "too large an amount"),
    ("quantity", [["1", "6.00", "99999999999", "a"]], 2, "qty", "too large a number (at most 2,147,483,647)"),
    # each value fits, their sums do not: the first row of the order or customer is named
    ("order", [["1", "1.00", "1", "a"], ["2", BIG, "1", "b"], ["2", BIG, "1", "b"]], 3, "order",
     "this order's amounts add up to 12,000,000,000,000,000.00 USD"),
    ("customer", [["1", BIG, "1", "a"], ["2", BIG, "1", "a"]], 2, "customer",
     "this customer's orders add up to 12,000,000,000,000,000.00 USD"),
    ("units", [["1", "1.00", "2000000000", "a"], ["1", "1.00", "2000000000", "a"]], 2, "order",
     "this order's quantities add up to 4,000,000,000"),
])
def test_amounts_beyond_the_store_are_positioned_errors(tmp_path, case, rows, line, column, says):
    """Amounts beyond DECIMAL(18,2) and counts beyond INTEGER, read or added up: an import error with
    the file, line and column (was DuckDB's conversion error from the store's cast)."""
    source = _large_source(tmp_path, rows)
    with pytest.raises(CommerceQLImportError) as info:
        import_table(source, LARGE, tmp_path / "s")
    assert (info.value.line_number, info.value.column_name) == (line, column)
    assert says in info.value.render()
    assert not (tmp_path / "s").exists()


def test_large_amounts_within_the_store_import_exactly(tmp_path):
    """Two amounts of 4 * 10**15 in one order and customer: 8 * 10**15 fits, to the cent."""
    rows = [["1", "4000000000000000.01", "1", "a"], ["1", "3999999999999999.99", "2", "a"]]
    source = _large_source(tmp_path, rows)
    import_table(source, LARGE, tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    try:
        expected = sum(Decimal(r[1]) for r in rows)
        assert _d(store.query("FROM sales SHOW gross_sales").df["gross_sales"][0]) == expected
        assert _d(store.sql("SELECT amount_spent FROM customers")["amount_spent"][0]) == expected
        assert store.sql("SELECT item_count FROM orders")["item_count"][0] == 3
    finally:
        store.close()


def test_every_builtin_metric_and_dimension_runs_on_a_table_import(tmp_path):
    import_table(_events(tmp_path), EVENTS_MAPPING, tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    try:
        assert run_every_builtin_field(store) == []
    finally:
        store.close()


def test_attributes_of_sales_at_the_same_time_come_from_the_first_record(tmp_path):
    """A product whose sales all happened at one time, under two titles, takes the first record's:
    arg_max over the time alone kept whichever tied row a thread aggregated first, so a source
    large enough to be read on several threads could give another title on the next import."""
    rows = [["order", "date", "amount", "sku", "title"]]
    rows += [[str(i), "2024-01-02 10:00:00", "1.00", "p1", "First title" if i == 1 else "Other title"]
             for i in range(1, 300_001)]
    mapping = {"sales": {"order": "order", "happened_at": "date", "gross_sales": "amount", "product": "sku"},
               "products": {"title": "title"}}
    import_table(_csv(tmp_path, rows), mapping, tmp_path / "s")
    store = cql.connect(tmp_path / "s")
    try:
        assert store.sql("SELECT title FROM products")["title"].to_list() == ["First title"]
    finally:
        store.close()
