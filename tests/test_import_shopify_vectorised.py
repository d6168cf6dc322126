"""The columnar Shopify importer against the row-by-row one it replaces, on every real export.

`commerceql.importers.shopify` stages files with DuckDB's CSV reader and builds the common kind of
order with Polars expressions; anything else (partial refunds, reused names, other currencies, a
value that does not parse ...) goes through the row-by-row `OrderBuilder`, and a file DuckDB cannot
read record for record as Python's csv module does is staged row by row. These tests import each
real folder both ways (`shopify.COLUMNAR` off and on) and require every store table and the import
report to be equal, value for value.

The rows of some tables (orders, customers) come out of DuckDB's window functions in an order that
varies from run to run even on the row-by-row path alone, so tables are compared sorted by all their
columns: equal as sets of rows, every value equal.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from commerceql.importers import shopify

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
SHOPIFY = REALDATA / "shopify"
needs_realdata = pytest.mark.skipif(
    not SHOPIFY.is_dir() and os.environ.get("CI") != "true",
    reason=f"real Shopify exports not found at {SHOPIFY} (they are required when CI=true)",
)
FOLDERS = sorted(p.name for p in SHOPIFY.iterdir() if p.is_dir()) if SHOPIFY.is_dir() else ["kidsliving"]


def _table(store: Path, table: str) -> pl.DataFrame:
    manifest = json.loads((store / "manifest.json").read_text(encoding="utf-8"))
    return pl.read_parquet(store / manifest["tables"][table])


def _comparable(report: shopify.ImportReport) -> dict[str, Any]:
    document = report.to_dict()
    for varying in ("seconds", "out_dir", "store_name"):
        document.pop(varying)
    return document


def _import_both(monkeypatch: pytest.MonkeyPatch, sources: list[Path], root: Path, **options: Any):
    stores, reports = {}, {}
    for columnar in (False, True):
        monkeypatch.setattr(shopify, "COLUMNAR", columnar)
        out = root / ("columnar" if columnar else "rows")
        reports[columnar] = shopify.import_shopify(sources, out, **options)
        stores[columnar] = out
    return stores, reports


def _assert_same_store(stores: dict[bool, Path], reports: dict[bool, Any]) -> None:
    old, new = reports[False], reports[True]
    assert _comparable(new) == _comparable(old)
    # the report lists its counts in the order the row path first counted them
    assert list(new.counts) == list(old.counts)
    assert new.render().splitlines()[1:-1] == old.render().splitlines()[1:-1]
    manifest = json.loads((stores[False] / "manifest.json").read_text(encoding="utf-8"))
    for table in manifest["tables"]:
        before, after = _table(stores[False], table), _table(stores[True], table)
        keys = [name for name, dtype in before.schema.items() if not isinstance(dtype, pl.List)]
        assert_frame_equal(after.sort(keys, nulls_last=True), before.sort(keys, nulls_last=True),
                           check_row_order=True), table


@needs_realdata
@pytest.mark.parametrize("folder", FOLDERS)
def test_columnar_import_equals_row_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    stores, reports = _import_both(monkeypatch, [SHOPIFY / folder], tmp_path)
    _assert_same_store(stores, reports)


@needs_realdata
def test_small_chunks_cut_only_between_orders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of a few hundred rows: many cuts, each between two orders, and the carried rows."""
    monkeypatch.setattr(shopify, "COLUMNAR_CHUNK_ROWS", 300)
    folder = SHOPIFY / "monfrere_tactical_audit"
    sources = [folder / "Shopify_orders_export_2.csv", folder / "Shopify_inventory_export_1.csv"]
    stores, reports = _import_both(monkeypatch, sources, tmp_path)
    _assert_same_store(stores, reports)


@needs_realdata
def test_several_order_files_sorted_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two order exports (and their customers) at once: the stream is sorted by name, orders overlap."""
    sources = [SHOPIFY / "customer_vip" / "orders_export_1.csv", SHOPIFY / "customer_vip" / "customers_export_1.csv",
               SHOPIFY / "explorer_analytics" / "orders_export_1.csv"]
    stores, reports = _import_both(monkeypatch, sources, tmp_path, currency="USD")
    _assert_same_store(stores, reports)


@needs_realdata
def test_the_columnar_path_is_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case really runs columnar: DuckDB stages the file and most orders skip OrderBuilder."""
    staged: list[str] = []
    built: list[int] = []
    by_rows: list[int] = []
    stage, simple, complex_group = shopify._stage_columnar, shopify.ColumnarOrders.simple_orders, \
        shopify.ColumnarOrders.complex_group

    def stage_spy(classified: Any, *args: Any) -> Any:
        result = stage(classified, *args)
        staged.append(classified.path.name)
        return result

    def simple_spy(self: Any, frame: pl.DataFrame) -> Any:
        result = simple(self, frame)
        built.append(result["orders"].height if result else 0)
        return result

    def complex_spy(self: Any, group: list[dict[str, Any]]) -> None:
        by_rows.append(1)
        complex_group(self, group)

    monkeypatch.setattr(shopify, "_stage_columnar", stage_spy)
    monkeypatch.setattr(shopify.ColumnarOrders, "simple_orders", simple_spy)
    monkeypatch.setattr(shopify.ColumnarOrders, "complex_group", complex_spy)
    report = shopify.import_shopify([SHOPIFY / "monfrere_tactical_audit" / "Shopify_orders_export_2.csv"],
                                    tmp_path / "s")
    assert staged == ["Shopify_orders_export_2.csv"]
    assert sum(built) + len(by_rows) == report.counts["orders"]
    assert sum(built) > 0.8 * report.counts["orders"]


@needs_realdata
def test_the_order_stream_reads_a_plain_export_again_with_polars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One plain export: the order rows come from Polars' CSV reader; two exports: from DuckDB, sorted."""
    reread: list[bool] = []
    run = shopify.ColumnarOrders.run

    def run_spy(self: Any, *args: Any) -> Any:
        result = run(self, *args)
        reread.append(self.reread_csv)
        return result

    monkeypatch.setattr(shopify.ColumnarOrders, "run", run_spy)
    shopify.import_shopify([SHOPIFY / "kidsliving" / "orders_export.csv"], tmp_path / "one")
    shopify.import_shopify([SHOPIFY / "customer_vip" / "orders_export_1.csv",
                            SHOPIFY / "explorer_analytics" / "orders_export_1.csv"], tmp_path / "two", currency="USD")
    assert reread == [True, False]


@needs_realdata
def test_an_export_read_again_differently_is_built_from_the_staged_rows(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Should Polars read the export otherwise than staging did (here: one column's text bytes are
    off by one), the orders are built again from DuckDB's reading, and the store is still right."""
    stage = shopify._stage_columnar
    attempts: list[bool] = []

    def stage_off_by_one(*args: Any) -> Any:
        staged = stage(*args)
        if staged.text_bytes:
            staged.text_bytes["total"] += 1
        return staged

    init = shopify.ColumnarOrders.__init__

    def init_spy(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        attempts.append(self.reread_csv)

    monkeypatch.setattr(shopify, "_stage_columnar", stage_off_by_one)
    monkeypatch.setattr(shopify.ColumnarOrders, "__init__", init_spy)
    stores, reports = _import_both(monkeypatch, [SHOPIFY / "kidsliving" / "orders_export.csv"], tmp_path)
    assert attempts == [True, False]  # read again, found different, built from the staged rows
    _assert_same_store(stores, reports)


def _kidsliving_rows() -> tuple[list[str], list[list[str]]]:
    """The header and the records of kidsliving's orders export, to change and write again."""
    with open(SHOPIFY / "kidsliving" / "orders_export.csv", newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        return header, list(reader)


def _write_export(folder: Path, header: list[str], rows: list[list[str]]) -> Path:
    export = folder / "orders_export.csv"
    with open(export, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return export


def _error_on_both_paths(monkeypatch: pytest.MonkeyPatch, export: Path, root: Path) -> Any:
    """The import error of `export` on the row path, which the columnar path must give word for word;
    neither leaves a store behind."""
    errors = {}
    for columnar in (False, True):
        monkeypatch.setattr(shopify, "COLUMNAR", columnar)
        with pytest.raises(shopify.CommerceQLImportError) as info:
            shopify.import_shopify([export], root / f"s-{columnar}")
        errors[columnar] = info.value
        assert not (root / f"s-{columnar}").exists()
    assert errors[True].render() == errors[False].render()
    return errors[True]


@needs_realdata
@pytest.mark.parametrize(("column", "value"), [
    ("Lineitem price", "12,5O"), ("Total", "12,5O"), ("Created at", "yesterday"), ("Lineitem quantity", "12,5O"),
    # written as Shopify writes a date and time, but no such day (these were internal errors)
    ("Created at", "2023-02-30 10:00:00 -0700"), ("Paid at", "0000-01-01 00:00:00 +0000"),
    # beyond the store's DECIMAL(18,2) and INTEGER, and a digit int() refuses (these were internal errors)
    ("Total", "99999999999999999999.00"), ("Lineitem quantity", "99999999999"), ("Lineitem price", "²"),
    ("Lineitem quantity|Lineitem price", "2000000000|9999999999999.00"),
])
def test_bad_value_gives_the_row_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, column: str,
                                       value: str) -> None:
    """A value the columnar path cannot take: the same error as the row path, with file, line and column."""
    header, rows = _kidsliving_rows()
    columns, values = column.split("|"), value.split("|")  # several columns of one row: "a|b", "1|2"
    positions = [header.index(name) for name in columns]
    target = next(i for i, row in enumerate(rows) if i > 3 and all(row[p] for p in positions))
    for position, written in zip(positions, values, strict=True):
        rows[target][position] = written
    column = columns[0]  # the error names the first
    bad = _write_export(tmp_path, header, rows)
    error = _error_on_both_paths(monkeypatch, bad, tmp_path)
    assert error.column_name == column
    assert error.line_number == target + 2
    says = {"2023-02-30 10:00:00 -0700": "not a valid date", "0000-01-01 00:00:00 +0000": "not a valid date",
            "99999999999999999999.00": "too large an amount", "99999999999": "too large a number",
            "2000000000|9999999999999.00": "too large an amount", "²": "not an amount"}
    if value in says:
        assert says[value] in error.render()
    # the hint on how amounts are written is for amounts written otherwise, not for too large ones
    assert ("amounts are written like" in error.render()) == (
        "not an amount" in error.render())


def _kidsliving_with_large_lines(tmp_path: Path, price: str, lines: int) -> tuple[Path, str, int]:
    """kidsliving's export with the first `lines` line items of one many-line order priced at `price`
    (quantity 1): the file, the order's name, and the line of its order-level row."""
    header, rows = _kidsliving_rows()
    name_at, qty_at, price_at = (header.index(c) for c in ("Name", "Lineitem quantity", "Lineitem price"))
    first = next(i for i, row in enumerate(rows)
                 if i > 3 and sum(r[name_at] == row[name_at] for r in rows[i:i + 6]) == 6)
    for row in rows[first:first + lines]:
        row[qty_at], row[price_at] = "1", price
    bad = _write_export(tmp_path, header, rows)
    return bad, rows[first][name_at], first + 2


@needs_realdata
def test_an_order_beyond_64_bit_arithmetic_is_built_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each amount fits the store, but the tax split multiplies them (21,887 cents of included tax
    times 3 * 10**17 cents of weight): the columnar path used to wrap past 64 bits silently and
    store other numbers than the row path. Such an order is OrderBuilder's now."""
    export, name, _ = _kidsliving_with_large_lines(tmp_path, "3000000000000000.00", 2)
    by_rows: list[str] = []
    complex_group = shopify.ColumnarOrders.complex_group

    def complex_spy(self: Any, group: list[dict[str, Any]]) -> None:
        by_rows.append(group[0]["name"])
        complex_group(self, group)

    monkeypatch.setattr(shopify.ColumnarOrders, "complex_group", complex_spy)
    stores, reports = _import_both(monkeypatch, [export], tmp_path)
    _assert_same_store(stores, reports)
    assert name in by_rows
    # the export's own figures, read from the file: what the order's sales add up to
    with open(export, newline="", encoding="utf-8") as handle:
        head = next(r for r in csv.DictReader(handle) if r["Name"] == name)
    orders, sales = _table(stores[True], "orders"), _table(stores[True], "sales")
    order_id = orders.filter(pl.col("name") == name).get_column("order_id").item()
    booked = sales.filter((pl.col("order_id") == order_id) & (pl.col("event_type") == "order"))
    assert str(booked.get_column("total_sales").sum()) == head["Total"]
    assert str(booked.get_column("taxes").sum()) == head["Taxes"]


@needs_realdata
def test_an_order_adding_up_beyond_the_store_is_a_clear_error(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Three lines each within DECIMAL(18,2) but adding up beyond it: a positioned error naming the
    order (the sums used to fail the store's cast, or wrap in 64 bits), the same on both paths."""
    export, name, line = _kidsliving_with_large_lines(tmp_path, "6000000000000000.00", 3)
    error = _error_on_both_paths(monkeypatch, export, tmp_path)
    assert (error.line_number, error.column_name) == (line, "Name")
    assert name in error.render() and "beyond what the store holds" in error.render()


@needs_realdata
def test_a_customer_spending_beyond_the_store_is_a_clear_error(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Two orders of one customer, each of 6 * 10**15 (within DECIMAL(18,2)), together beyond it:
    the customer's amount spent is a positioned error naming the first order's e-mail (it was
    DuckDB's conversion error from the store's cast), the same on both paths."""
    header, rows = _kidsliving_rows()
    at = {name: i for i, name in enumerate(header)}
    names_of: dict[str, set[str]] = {}
    for row in rows:
        names_of.setdefault(row[at["Email"]], set()).add(row[at["Name"]])
    email = next(e for e, names in names_of.items() if e and len(names) >= 2)
    changed = sorted(names_of[email])[:2]
    seen: set[str] = set()
    first_line = None
    for index, row in enumerate(rows):
        name = row[at["Name"]]
        if name not in changed:
            continue
        row[at["Lineitem quantity"]], row[at["Lineitem discount"]] = "1", "0.00"
        row[at["Lineitem price"]] = "0.00" if name in seen else "6000000000000000.00"
        if name not in seen:  # the order-level row: its figures agree with its one priced line
            for column, value in (("Subtotal", "6000000000000000.00"), ("Total", "6000000000000000.00"),
                                  ("Taxes", "0.00"), ("Shipping", "0.00"), ("Discount Amount", "0.00"),
                                  ("Tax 1 Name", ""), ("Tax 1 Value", "")):
                row[at[column]] = value
            first_line = first_line or index + 2
        seen.add(name)
    export = _write_export(tmp_path, header, rows)
    error = _error_on_both_paths(monkeypatch, export, tmp_path)
    assert (error.line_number, error.column_name) == (first_line, "Email")
    assert "this customer's orders add up to 12,000,000,000,000,000.00 ZAR spent" in error.render()


@needs_realdata
def test_a_tax_rate_too_fine_for_64_bits_is_built_exactly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tax line named with a rate of 25 decimals (its exact fraction beyond 64 bits) on orders with
    tax-inclusive prices and shipping: the columnar path used to fail with an internal error."""
    header, rows = _kidsliving_rows()
    tax_name = header.index("Tax 1 Name")
    renamed = [row for row in rows if row[tax_name] == "VAT 15%"]
    assert renamed
    for row in renamed:
        row[tax_name] = "VAT 15.0000000000000000000000001%"
    export = _write_export(tmp_path, header, rows)
    stores, reports = _import_both(monkeypatch, [export], tmp_path)
    _assert_same_store(stores, reports)


def test_allocate_columns_splits_as_allocate_does() -> None:
    """The columnar largest-remainder split against the row path's `_allocate`, group by group:
    zero amounts, one item, no weight, negative amounts, ties, and items given out of order."""
    import random

    chooser = random.Random(20261203)
    groups = []
    for grp in range(400):
        n = chooser.choice([1, 1, 2, 3, 5, 8])
        amount = chooser.choice([0, 1, -1, 7, 100, -250, 9999, chooser.randint(-10**6, 10**6)])
        weights = [chooser.choice([0, 0, 1, 3, 3, 50, chooser.randint(0, 10**5)]) for _ in range(n)]
        groups.append((grp, amount, weights))
    rows = [(grp, 10 * grp + position, amount, weight)
            for grp, amount, weights in groups for position, weight in enumerate(weights)]
    chooser.shuffle(rows)
    items = pl.DataFrame(rows, schema={"_grp": pl.Int64, "_idx": pl.Int64, "_amt": pl.Int64, "_w": pl.Int64},
                         orient="row")
    result = shopify._allocate_columns(items, "_amt", "_w", "_share")
    assert result.select("_grp", "_idx").equals(items.select("_grp", "_idx").sort("_grp", "_idx"))
    by_group = result.group_by("_grp", maintain_order=True).agg(pl.col("_share"))
    expected = {grp: shopify._allocate(amount, weights) for grp, amount, weights in groups}
    assert {grp: shares for grp, shares in by_group.iter_rows()} == expected


def test_timestamps_read_as_the_row_parser_does() -> None:
    """The columnar timestamps (Shopify's format in Polars, the rest by the parser) against the row
    path's TimestampParser on values in and out of range: invalid days, year 0, hour 24, second 60,
    offsets of a day or more. Each is the same instant, or refused by both."""
    import random

    from commerceql.importers.common import TimestampParser

    chooser = random.Random(20261203)
    values = []
    for _ in range(3000):
        year = chooser.choice([chooser.randint(1990, 2030), 1000, 999, 1, 0, 9999])
        month, day = chooser.choice([chooser.randint(1, 12), 0, 13, 2]), chooser.choice([chooser.randint(1, 28), 29,
                                                                                         30, 31, 0, 32])
        hour, minute, second = chooser.choice([chooser.randint(0, 23), 24]), chooser.choice([chooser.randint(0, 59),
                                                                                              60]), chooser.randint(0, 60)
        sign, offset_hours, offset_minutes = chooser.choice("+-"), chooser.choice([chooser.randint(0, 14), 23, 24,
                                                                                    25]), chooser.choice([0, 30, 59, 60])
        values.append(f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d} "
                      f"{sign}{offset_hours:02d}{offset_minutes:02d}")
    parse = TimestampParser("America/Los_Angeles", None)
    builder = shopify.ColumnarOrders.__new__(shopify.ColumnarOrders)
    builder.pl = pl
    expected: dict[str, int] = {}
    refused = []
    for value in values:
        try:
            expected[value] = parse(value)
        except shopify.ValueError_:
            refused.append(value)
    read = list(expected)
    assert builder.timestamps(pl.Series(read), parse).to_list() == [expected[v] for v in read]
    assert 100 < len(refused) < len(values)
    for value in refused[:150]:  # one at a time: a value the parser refuses stops the whole column
        with pytest.raises(shopify._Unsupported):
            builder.timestamps(pl.Series(["2024-03-01 14:05:09 -0500", value]), parse)


@pytest.mark.parametrize("function", ["clean_text", "_strip", "_email", "_int_or_none", "is_scientific", "_cents_of"])
def test_mapped_equals_the_row_function(function: str) -> None:
    """`_mapped` (exact Polars expressions for plain values, the Python function for the others,
    values hashed first or not) gives what the row path's function gives, value for value: unicode
    spaces and digits, the spreadsheet apostrophe, empty text, None, repeated values."""
    import random

    apply = getattr(shopify, function)
    chooser = random.Random(20261203)
    atoms = ["", " ", "a", "Z", "'", "'1", "'+", "+", "1", "0", "12.50", "-3.00", "1e5", "É", "\u00a0", "\u2003",
             "\x1c", "\t", "\n", "x@Y.COM", "ß", "İ", ".", "-", "  ", "²", "٣"]
    values: list[str | None] = [None] + ["".join(chooser.choice(atoms) for _ in range(chooser.randint(0, 4)))
                                         for _ in range(3000)]
    values += values[:2000]  # past the length from which values are hashed first
    accepted, expected = [], []
    for value in values:
        try:
            expected.append(apply(value))
        except shopify.ValueError_:
            continue
        accepted.append(value)
    dtype = {"_int_or_none": pl.Int64, "_cents_of": pl.Int64, "is_scientific": pl.Boolean}.get(function, pl.String)
    assert len(accepted) > 1000
    assert shopify._mapped(pl.Series(accepted, dtype=pl.String), apply, dtype).to_list() == expected


@pytest.mark.parametrize(("function", "dtype"), [
    (lambda v: (v or "").strip().upper() or "ZAR", "String"),  # None gives a value: a currency's default
    (lambda v: "bogus" in (v or "").lower(), "Boolean"),
    (lambda v: None if v is None else len(v), "Int64"),
])
def test_mapped_broadcasts_each_distinct_value(function: Any, dtype: str) -> None:
    """Columns that repeat a few values (None among them) are mapped value by value and put back in
    every place: what the function gives for None too, the rows' order kept."""
    import random

    chooser = random.Random(7)
    pool = [None, "", " zar ", "USD", "Bogus Gateway", "shopify_payments", "É", "x" * 40]
    values = [chooser.choice(pool) for _ in range(6000)]
    expected = [function(v) for v in values]
    got = shopify._mapped(pl.Series(values, dtype=pl.String), function, getattr(pl, dtype))
    assert got.to_list() == expected
    assert got.dtype == getattr(pl, dtype)
    numbers = pl.Series([chooser.choice([None, 1, 2, 30]) for _ in range(3000)], dtype=pl.Int64)
    assert shopify._mapped(numbers, lambda v: -1 if v is None else v * 2, pl.Int64).to_list() == [
        -1 if v is None else v * 2 for v in numbers.to_list()]


@needs_realdata
def test_a_products_vendor_is_the_first_line_that_names_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A product sold under two vendors (the export's Vendor changed between orders) takes the vendor
    of its first line that names one, on both paths: any_value took whichever line a thread read
    first, so at 1M export lines the same export gave different vendors from one import to the next."""
    header, rows = _kidsliving_rows()
    name, vendor = header.index("Lineitem name"), header.index("Vendor")
    product = "Mattress Bamboopaedic 120 cm x 60 cm"
    at = [i for i, row in enumerate(rows) if row[name] == product]
    assert len(at) == 3
    for i, value in zip(at, ("", "First Vendor", "Later Vendor"), strict=True):
        rows[i][vendor] = value
    export = _write_export(tmp_path, header, rows)
    stores, reports = _import_both(monkeypatch, [export], tmp_path)
    _assert_same_store(stores, reports)
    products = _table(stores[False], "products")
    assert products.filter(pl.col("title") == product).get_column("vendor").to_list() == ["First Vendor"]


@needs_realdata
def test_a_customers_place_is_the_latest_orders_even_at_the_same_second(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two orders of one customer placed at the same second: the customer's city is the one of the
    order numbered last (by time, then name), on both paths, not whichever a thread read first."""
    header, rows = _kidsliving_rows()
    col = {k: header.index(k) for k in ("Name", "Email", "Created at", "Billing City", "Financial Status")}
    names = list(dict.fromkeys(row[col["Name"]] for row in rows))[:2]
    for row in rows:
        if row[col["Name"]] in names:
            row[col["Email"]] = "same.second@example.com"
            row[col["Created at"]] = "2024-05-01 10:00:00 +0200"
            if row[col["Financial Status"]]:  # the order-level row
                row[col["Billing City"]] = f"City of {row[col['Name']]}"
    export = _write_export(tmp_path, header, rows)
    stores, reports = _import_both(monkeypatch, [export], tmp_path)
    _assert_same_store(stores, reports)
    customers = _table(stores[False], "customers").filter(pl.col("email") == "same.second@example.com")
    assert customers.get_column("city").to_list() == [f"City of {max(names)}"]


def test_allocate_columns_splits_several_amounts_by_one_weight() -> None:
    """Two amounts split by the same weight in one call (the taxes and the duties of an order's
    lines) give each what `_allocate` gives it alone, group by group."""
    import random

    chooser = random.Random(20261204)
    groups = []
    for grp in range(300):
        n = chooser.choice([1, 2, 3, 4, 7])
        taxes = chooser.choice([0, 1, -3, 1250, chooser.randint(-10**5, 10**5)])
        duties = chooser.choice([0, 0, 2, 999, chooser.randint(0, 10**4)])
        weights = [chooser.choice([0, 1, 4, 4, 60, chooser.randint(0, 10**4)]) for _ in range(n)]
        groups.append((grp, taxes, duties, weights))
    rows = [(grp, 100 * grp + position, taxes, duties, weight)
            for grp, taxes, duties, weights in groups for position, weight in enumerate(weights)]
    chooser.shuffle(rows)
    items = pl.DataFrame(rows, orient="row", schema={"_grp": pl.Int64, "_idx": pl.Int64, "_taxes": pl.Int64,
                                                     "_duties": pl.Int64, "_w": pl.Int64})
    result = shopify._allocate_columns(items, ("_taxes", "_duties"), "_w", ("_tshare", "_dshare"))
    by_group = result.group_by("_grp", maintain_order=True).agg(pl.col("_tshare"), pl.col("_dshare"))
    expected = {grp: (shopify._allocate(taxes, weights), shopify._allocate(duties, weights))
                for grp, taxes, duties, weights in groups}
    assert {grp: (t, d) for grp, t, d in by_group.iter_rows()} == expected
