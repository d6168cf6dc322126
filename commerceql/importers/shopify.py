"""Import Shopify admin CSV exports (Orders, Customers, Products, Abandoned checkouts, Inventory,
Transactions) into a CommerceQL store folder.

    from commerceql.importers import import_shopify
    report = import_shopify(["exports/"], "my-store")
    print(report.render())

How it works (see docs/importing.md for the rules and assumptions):

1. Every file is classified by its header (columns are matched by name, so every header generation
   works) and staged as Parquet of raw strings, with the line number where each record starts:
   DuckDB's CSV reader (strict) writes the fields and the count of line breaks inside each record,
   and the line numbers are their running sum, checked against the file's line count as Python's
   csv module counts it (`_stage_columnar`). A file that is not plain UTF-8, or that DuckDB cannot
   read record for record as Python does, is read by Python's csv module instead (`_stage`), with
   its exact errors. Timestamps are scanned to learn their style (UTC offsets, or day-first or
   month-first dates of a spreadsheet copy) and the store's time zone.
2. Orders (and abandoned checkouts) are read back grouped by order `Name` (DuckDB sorts out of core),
   and each order is turned into sales-fact rows in integer cents: product lines and shipping on the
   order date, reversals on the refund or cancellation date. `ColumnarOrders` does it with Polars
   expressions, in chunks of whole orders, for the orders of the common kind (including refunds
   split into whole units or spread in proportion); the others, and any import with a value the
   columnar path cannot parse, go through `OrderBuilder` row by row (its errors name file, line and
   column). Both give the same numbers (tests/test_import_shopify_vectorised.py);
   COMMERCEQL_SHOPIFY_ROWWISE=1 runs only the row-by-row code.
3. DuckDB assembles the store tables (ids, customers, products, first orders) and writes Parquet
   files with the exact schema of the sample store; the reconciliation runs a CommerceQL query on the
   new store before it is moved into place.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import pyarrow as pa

from commerceql.errors import CommerceQLDataError
from commerceql.importers.common import (
    CURRENCY_OF_COUNTRY,
    FORMAT,
    FORMAT_VERSION,
    IMPORTER_VERSION,
    MAX_CENTS,
    MAX_INTEGER,
    MONEY_CENTS,
    STORE_AMOUNTS,
    TIMESTAMP_US,
    CommerceQLImportError,
    ImportReport,
    Progress,
    SourceFile,
    Stager,
    TimestampParser,
    TimestampStyle,
    ValueError_,
    arrow_batches,
    arrow_rows,
    atomic_store_dir,
    check_currency,
    check_timezone,
    clean_text,
    country_code,
    country_name,
    detect_timezone,
    glob_path,
    import_memory_limit,
    is_scientific,
    new_connection,
    normalize_header,
    now_iso,
    open_csv,
    parse_bool,
    parse_cents,
    parse_int,
    release_free_memory,
    sales_channel_of,
    sha256_of,
    sniff_text,
    sql_ident,
    sql_literal,
    sql_path,
    write_manifest,
    write_table,
)

# ---------------------------------------------------------------------------------------------
# header vocabularies: canonical key -> accepted header names (normalized: lower case, single spaces)

ORDER_COLUMNS: dict[str, tuple[str, ...]] = {
    "name": ("name", "order name", "order"),
    "email": ("email", "customer email"),
    "financial_status": ("financial status", "payment status"),
    "paid_at": ("paid at",),
    "fulfillment_status": ("fulfillment status",),
    "fulfilled_at": ("fulfilled at",),
    "accepts_marketing": ("accepts marketing", "accepts email marketing"),
    "currency": ("currency",),
    "subtotal": ("subtotal",),
    "shipping": ("shipping",),
    "taxes": ("taxes",),
    "total": ("total",),
    "discount_code": ("discount code", "discount codes"),
    "discount_amount": ("discount amount",),
    "shipping_method": ("shipping method",),
    "created_at": ("created at",),
    "li_qty": ("lineitem quantity", "line item quantity"),
    "li_name": ("lineitem name", "line item name"),
    "li_price": ("lineitem price", "line item price"),
    "li_compare_at": ("lineitem compare at price", "line item compare at price"),
    "li_sku": ("lineitem sku", "line item sku"),
    "li_requires_shipping": ("lineitem requires shipping",),
    "li_taxable": ("lineitem taxable",),
    "li_fulfillment_status": ("lineitem fulfillment status",),
    "li_discount": ("lineitem discount", "line item discount"),
    "billing_name": ("billing name",),
    "billing_city": ("billing city",),
    "billing_province": ("billing province",),
    "billing_province_name": ("billing province name",),
    "billing_country": ("billing country",),
    "shipping_name": ("shipping name",),
    "shipping_city": ("shipping city",),
    "shipping_province": ("shipping province",),
    "shipping_province_name": ("shipping province name",),
    "shipping_country": ("shipping country",),
    "cancelled_at": ("cancelled at",),
    "payment_method": ("payment method", "gateway"),
    "refunded_amount": ("refunded amount",),
    "vendor": ("vendor", "lineitem vendor"),
    "id": ("id", "order id"),
    "tags": ("tags",),
    "source": ("source",),
    "duties": ("duties",),
    "location": ("location",),
    # the tax lines: their names carry the rate ("DE MwSt 19%"), which splits included tax between
    # goods and shipping
    **{f"tax{i}_name": (f"tax {i} name",) for i in range(1, 6)},
    **{f"tax{i}_value": (f"tax {i} value",) for i in range(1, 6)},
}
ORDER_SIGNATURE = {
    "lineitem quantity", "lineitem name", "financial status", "fulfillment status", "billing name",
    "billing city", "subtotal", "total", "discount code", "paid at", "shipping method", "refunded amount",
}
HEAD_KEYS = ("financial_status", "total", "subtotal", "currency", "paid_at", "fulfillment_status", "source")
ORDER_TIMESTAMPS = ("created_at", "paid_at", "fulfilled_at", "cancelled_at")
ORDER_MONEY = ("subtotal", "shipping", "taxes", "total", "discount_amount", "refunded_amount", "duties")

CUSTOMER_COLUMNS: dict[str, tuple[str, ...]] = {
    "customer_id": ("customer id", "id"),
    "first_name": ("first name",),
    "last_name": ("last name",),
    "email": ("email",),
    "accepts_marketing": ("accepts email marketing", "accepts marketing"),
    "company": ("company", "default address company"),
    "city": ("city", "default address city"),
    "province": ("province", "default address province"),
    "province_code": ("province code", "default address province code"),
    "country": ("country", "default address country"),
    "country_code": ("country code", "default address country code"),
    "total_spent": ("total spent",),
    "total_orders": ("total orders",),
    "tags": ("tags",),
    "tax_exempt": ("tax exempt",),
}
PRODUCT_COLUMNS: dict[str, tuple[str, ...]] = {
    "handle": ("handle",),
    "title": ("title",),
    "vendor": ("vendor",),
    "category": ("product category", "standardized product type"),
    "type": ("type", "custom product type"),
    "tags": ("tags",),
    "published": ("published",),
    "option1": ("option1 value",),
    "option2": ("option2 value",),
    "option3": ("option3 value",),
    "sku": ("variant sku",),
    "price": ("variant price",),
    "compare_at": ("variant compare at price",),
    "cost": ("cost per item",),
    "status": ("status",),
}
INVENTORY_COLUMNS: dict[str, tuple[str, ...]] = {
    "handle": ("handle",),
    "title": ("title",),
    "option1": ("option1 value",),
    "option2": ("option2 value",),
    "option3": ("option3 value",),
    "sku": ("sku",),
    "location": ("location",),
    "incoming": ("incoming (not editable)", "incoming"),
    "unavailable": ("unavailable (not editable)", "unavailable"),
    "committed": ("committed (not editable)", "committed"),
    "available": ("available (not editable)", "available"),
    "on_hand": ("on hand (current)", "on hand"),
}
TRANSACTION_COLUMNS: dict[str, tuple[str, ...]] = {
    "order_id": ("order",),
    "name": ("name",),
    "kind": ("kind",),
    "gateway": ("gateway",),
    "created_at": ("created at",),
    "status": ("status",),
    "amount": ("amount",),
    "currency": ("currency",),
    "card_type": ("card type",),
}

IMPORTABLE = ("orders", "checkouts", "customers", "products", "inventory", "transactions")


# ---------------------------------------------------------------------------------------------
# classification


@dataclass
class Classified:
    path: Path
    kind: str  # one of IMPORTABLE, or "unknown"
    header: list[str]
    columns: dict[str, int] = field(default_factory=dict)  # canonical key -> field index
    names: dict[str, str] = field(default_factory=dict)  # canonical key -> header as written
    reason: str = ""


def _map_columns(header: Sequence[str], vocabulary: dict[str, tuple[str, ...]]) -> tuple[dict[str, int], dict[str, str]]:
    index: dict[str, int] = {}
    for i, name in enumerate(header):
        index.setdefault(normalize_header(name), i)
    columns: dict[str, int] = {}
    names: dict[str, str] = {}
    for key, aliases in vocabulary.items():
        for alias in aliases:
            if alias in index:
                columns[key] = index[alias]
                names[key] = header[index[alias]]
                break
    return columns, names


def classify(path: Path, header: Sequence[str]) -> Classified:
    """The kind of Shopify export a header belongs to. Raises for an export missing a required column."""
    normalized = {normalize_header(h) for h in header}
    hint = "export the file again from Shopify admin without removing columns"

    def require(kind: str, vocabulary: dict[str, tuple[str, ...]], required: Sequence[str]) -> Classified:
        columns, names = _map_columns(header, vocabulary)
        for key in required:
            if key not in columns:
                wanted = vocabulary[key][0]
                raise CommerceQLImportError(
                    f"this looks like a Shopify {kind} export but it has no `{_title(wanted)}` column",
                    file=path, line=1, column=_title(wanted), hint=hint,
                )
        return Classified(path, kind, list(header), columns, names)

    if {"order", "kind", "amount"} <= normalized and ("created at" in normalized):
        return require("transactions", TRANSACTION_COLUMNS, ("name", "kind", "created_at", "amount"))
    if "handle" in normalized and any(h.startswith(("on hand", "available")) for h in normalized):
        return require("inventory", INVENTORY_COLUMNS, ("handle",))
    if "handle" in normalized and ({"variant price", "variant sku", "option1 value", "body (html)"} & normalized):
        return require("products", PRODUCT_COLUMNS, ("handle",))
    if len(ORDER_SIGNATURE & normalized) >= 3 or (
        {"name", "created at"} <= normalized and ({"total", "subtotal", "lineitem quantity"} & normalized)
    ):
        kind = "checkouts" if "checkout" in path.name.lower() else "orders"
        return require(kind, ORDER_COLUMNS, ("name", "created_at"))
    if "email" in normalized and ({"total spent", "total orders", "accepts email marketing"} & normalized):
        return require("customers", CUSTOMER_COLUMNS, ("email",))
    shown = ", ".join(header[:6]) + (", ..." if len(header) > 6 else "")
    analytics = {"week", "month", "day", "sessions", "customers", "online store visitors"} & normalized
    if analytics:
        reason = f"a Shopify Analytics report, not an admin export (columns: {shown})"
    else:
        reason = f"not a recognised Shopify admin export (columns: {shown})"
    return Classified(path, "unknown", list(header), reason=reason)


def _title(normalized: str) -> str:
    special = {"lineitem": "Lineitem", "sku": "sku"}
    words = normalized.split(" ")
    out = [special.get(w, w) for w in words]
    out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


# ---------------------------------------------------------------------------------------------
# phase 1: staging


@dataclass
class StagedFile:
    index: int
    classified: Classified
    source: SourceFile
    staged: str = ""  # read_parquet(...) expression
    styles: dict[str, TimestampStyle] = field(default_factory=dict)
    currencies: Counter = field(default_factory=Counter)
    countries: Counter = field(default_factory=Counter)
    spreadsheet: list[str] = field(default_factory=list)
    money_with_decimals: int = 0
    money_values: int = 0
    scientific_ids: int = 0
    financial_statuses: int = 0
    head_rows: int = 0
    names_like_ids: int = 0
    contiguous: bool = True  # every order's rows are adjacent (as Shopify writes them)
    # the line each record starts on, when the bytes told (plain RFC 4180 CSV: see _record_lines)
    record_starts: Any = None
    # bytes of text in each column the columnar staging pass read (_reread_order_rows checks them)
    text_bytes: dict[str, int] = field(default_factory=dict)


def _stage(classified: Classified, index: int, source: SourceFile, work: Path, progress_enabled: bool) -> StagedFile:
    path = classified.path
    keys = list(classified.columns)
    positions = [classified.columns[k] for k in keys]
    progress = Progress(path.name, path.stat().st_size, progress_enabled)
    csv_file = open_csv(path, progress=progress)
    stager = Stager(work / f"staged-{index:03d}", [*keys, "_file", "_line"],
                    types={"_file": pa.int32(), "_line": pa.int64()})
    staged = StagedFile(index=index, classified=classified, source=source)
    ts_keys = [k for k in keys if k in ("created_at", "paid_at", "fulfilled_at", "cancelled_at")]
    ts_pos = [classified.columns[k] for k in ts_keys]
    style = {k: TimestampStyle() for k in ts_keys}
    bool_pos = [classified.columns[k] for k in ("li_requires_shipping", "li_taxable", "published", "tax_exempt")
                if k in classified.columns]
    money_keys = [k for k in ("total", "subtotal", "li_price", "price", "amount", "total_spent") if k in classified.columns]
    money_pos = [classified.columns[k] for k in money_keys]
    id_pos = [classified.columns[k] for k in ("customer_id", "order_id", "id") if k in classified.columns]
    cur_pos = classified.columns.get("currency")
    country_pos = classified.columns.get("billing_country")
    if classified.kind == "customers":
        country_pos = classified.columns.get("country_code", classified.columns.get("country"))
    head_pos = [classified.columns[k] for k in HEAD_KEYS if k in classified.columns]
    fin_pos = classified.columns.get("financial_status")
    name_pos = classified.columns.get("name")
    id_col = classified.columns.get("id")
    upper_bools = 0
    count = 0
    seen_names: set[str] = set()
    last_name: str | None = None
    contiguous = True
    for line, fields in csv_file.records:
        count += 1
        if name_pos is not None and contiguous:
            current = fields[name_pos]
            if current != last_name:
                if current in seen_names:
                    contiguous = False
                    seen_names = set()
                else:
                    seen_names.add(current)
                    last_name = current
        for key, pos in zip(ts_keys, ts_pos, strict=True):
            value = fields[pos].strip()
            if not value:
                continue
            try:
                known = style[key].observe(value)
                reason = "cannot read this date and time"
            except ValueError_ as exc:  # written as a date and time, but no such day
                known, reason = False, f"cannot read this date and time: {exc}"
            if not known:
                raise CommerceQLImportError(
                    reason, file=path, line=line, column=classified.names[key], value=value,
                    hint="Shopify writes timestamps as 2024-03-01 14:05:09 -0500",
                )
        for pos in bool_pos:
            if fields[pos] in ("TRUE", "FALSE"):
                upper_bools += 1
        for pos in money_pos:
            value = fields[pos]
            if value:
                staged.money_values += 1
                if "." in value:
                    staged.money_with_decimals += 1
        for pos in id_pos:
            if is_scientific(fields[pos]):
                staged.scientific_ids += 1
        if head_pos and any(fields[p] for p in head_pos):
            staged.head_rows += 1
            if cur_pos is not None and fields[cur_pos]:
                staged.currencies[fields[cur_pos].strip().upper()] += 1
            if country_pos is not None and fields[country_pos]:
                staged.countries[fields[country_pos].strip()] += 1
            if fin_pos is not None and fields[fin_pos]:
                staged.financial_statuses += 1
            if name_pos is not None and id_col is not None and fields[name_pos].lstrip("#") == fields[id_col].strip():
                staged.names_like_ids += 1
        if classified.kind == "transactions" and cur_pos is not None and fields[cur_pos]:
            staged.currencies[fields[cur_pos].strip().upper()] += 1
        elif classified.kind == "customers" and country_pos is not None and fields[country_pos]:
            staged.countries[fields[country_pos].strip()] += 1
        stager.add([*(fields[p] for p in positions), index, line])
    progress.close()
    staged.contiguous = contiguous
    staged.staged = stager.close()
    return _finish_stage(staged, style, upper_bools, count)


def _finish_stage(staged: StagedFile, style: dict[str, TimestampStyle], upper_bools: int, count: int) -> StagedFile:
    """The notes and kind a staged file's statistics imply (both staging paths)."""
    classified, source, path = staged.classified, staged.source, staged.classified.path
    staged.styles = style
    source.records = count
    if upper_bools:
        staged.spreadsheet.append("TRUE/FALSE instead of true/false")
    if staged.scientific_ids:
        staged.spreadsheet.append(f"{staged.scientific_ids} ids shown in scientific notation (precision lost)")
    for key, st in style.items():
        if st.slash:
            staged.spreadsheet.append(f"`{classified.names[key]}` written as a dd/mm or mm/dd date without time zone")
            break
        if st.naive_iso:
            staged.spreadsheet.append(f"`{classified.names[key]}` written without a UTC offset")
            break
    if staged.spreadsheet and staged.money_values and not staged.money_with_decimals:
        staged.spreadsheet.append("amounts without decimals")
    if classified.kind == "orders" and "checkout" not in path.name.lower():
        if (staged.head_rows and "financial_status" in classified.columns and staged.financial_statuses == 0
                and staged.names_like_ids >= 0.9 * staged.head_rows):
            classified.kind = "checkouts"
            source.kind = "checkouts"
    return staged


class _NotColumnar(Exception):
    """The file needs the row-by-row reader (its exact errors, or a layout DuckDB reads differently)."""


# Timestamp styles as TimestampStyle.observe tells them apart, in ASCII-only patterns: a value they
# do not match is judged by observe itself (the row-by-row stage runs).
_TS_OFFSET_RE = (r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]+)?)?"
                 r"[ \t\n\r\f\v]*(Z|UTC|[+-][0-9]{2}:?[0-9]{2})$")
_TS_NAIVE_RE = r"^([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})(?:[ T]([0-9]{1,2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]+)?)?)?$"
_TS_SLASH_RE = (r"^([0-9]{1,2})[/.]([0-9]{1,2})[/.]([0-9]{2}|[0-9]{4})(?:[ T,]+([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?"
                r"(?:[ \t\n\r\f\v]*([AaPp])\.?[Mm]\.?)?)?$")
_SAMPLES_CAP = 20_000  # TimestampStyle keeps the first this many (hour, offset) samples


@dataclass
class _RecordLines:
    """Where an export's records start, found from its bytes (see `_record_lines`)."""

    physical: int  # lines as Python's csv reader counts them (\n, \r\n and a lone \r each end one)
    lone_returns: int
    starts: Any = None  # numpy int64: the line each data record starts on; None when not found this way
    empty_record: bool = False  # a record with nothing in it (a blank line)


_QUOTE, _COMMA, _CR, _LF = 34, 44, 13, 10
_RECORD_BLOCK_BYTES = 1 << 24  # read at a time by _record_lines


def _record_lines(path: Path, header_records: int = 1) -> _RecordLines:
    """The physical line count and, for plain comma-separated UTF-8, the line each record starts on.

    A line break ends a record unless it is inside a quoted field, and it is inside one exactly when
    an odd number of quotes comes before it — provided every quote read outside a quoted field
    opens one (follows a comma, a line break or the start of the file; or is the second of an
    escaped pair). A quote anywhere else is a literal quote in an unquoted field, which that count
    would misread: then `starts` is None and the caller counts line breaks inside the fields. With a
    lone carriage return (an old Mac line end) too. Block by block with numpy, in bounded memory:
    this replaced asking DuckDB for every field of every record (~2.3 CPU s at 1M export lines).
    """
    import numpy as np

    newlines = returns = pairs = 0
    quote_parity = 0
    previous = _LF  # the byte before the block: the start of the file reads like a line start
    previous_cr = False
    last = b""
    stray = False
    record_ends: list[Any] = []  # global indices (0-based) of the line feeds that end records
    lengths_ok = True
    last_end_offset = -1  # byte offset of the last record-ending line feed
    offset = 0
    with open(path, "rb") as handle:
        first = True
        for block in iter(lambda: handle.read(_RECORD_BLOCK_BYTES), b""):
            a = np.frombuffer(block, dtype=np.uint8)
            start = 3 if first and block.startswith(b"\xef\xbb\xbf") else 0
            first = False
            newline_at = np.flatnonzero(a == _LF)
            cr_count = int(np.count_nonzero(a == _CR))
            pairs_here = int(np.count_nonzero((a[:-1] == _CR) & (a[1:] == _LF))) if len(a) > 1 else 0
            pairs += pairs_here + (1 if previous_cr and block[:1] == b"\n" else 0)
            returns += cr_count
            previous_cr = block.endswith(b"\r")
            last = block[-1:]
            if not stray:
                quote_at = np.flatnonzero(a == _QUOTE)
                quote_at = quote_at[quote_at >= start]
                outside = quote_at[((quote_parity + np.arange(len(quote_at))) & 1) == 0]
                before = np.where(outside > start, a[np.maximum(outside - 1, 0)], previous if start == 0 else _LF)
                if not bool(np.isin(before, (_COMMA, _LF, _CR, _QUOTE)).all()):
                    stray = True
                else:
                    inside = (quote_parity + np.searchsorted(quote_at, newline_at)) & 1
                    ends = np.flatnonzero(inside == 0)
                    end_offsets = newline_at[ends] + offset
                    # a record with nothing in it: a line feed right after the last one (or after its \r)
                    gaps = np.diff(np.concatenate(([last_end_offset], end_offsets)))
                    if len(gaps):
                        at = newline_at[ends]
                        before_feed = np.where(at > 0, a[np.maximum(at - 1, 0)], previous)
                        if bool(((gaps == 1) | ((gaps == 2) & (before_feed == _CR))).any()):
                            lengths_ok = False
                        last_end_offset = int(end_offsets[-1])
                    record_ends.append(ends + newlines)
                    quote_parity = (quote_parity + len(quote_at)) & 1
            newlines += len(newline_at)
            previous = int(a[-1]) if len(a) else previous
            offset += len(block)
    lines = newlines + returns - pairs
    physical = lines + (0 if last in (b"\n", b"\r") else 1)
    lone = returns - pairs
    if stray or lone or quote_parity:
        return _RecordLines(physical, lone)
    ends_all = np.concatenate(record_ends) if record_ends else np.zeros(0, dtype=np.int64)
    # record k starts on the line after the line feed ending record k-1 (lines are 1-based)
    starts = np.concatenate(([1], ends_all + 2)).astype(np.int64)
    if last in (b"\n", b"\r", b""):
        starts = starts[:-1]  # the file ends with a line end: no record starts after it
    return _RecordLines(physical, lone, starts[header_records:], empty_record=not lengths_ok)


# Records per batch of the statistics pass over a columnar-staged export (memory stays bounded)
_STATS_BATCH_ROWS = 100_000


def _compacted(text: Any) -> Any:
    """A Polars text Series in buffers of its own.

    A filter, gather or group_by of Polars text keeps the whole text buffers of its input alive (its
    values are views into them). What staging keeps of each batch (the order names where they
    change, the distinct timestamps) thus held every batch's text: ~230 MB more peak RSS per million
    export lines. Copying the kept values through Arrow's contiguous text releases the rest.
    """
    import polars as pl
    import pyarrow as pa

    return pl.from_arrow(text.to_arrow().cast(pa.large_string())).cast(pl.String).rename(text.name)


def _csv_source(path: Path, width: int) -> str:
    """The read_csv call every read of a columnar-staged export uses (the same options each time, so
    every read sees the same records in the same order: the line numbers are joined by position)."""
    columns = "{" + ", ".join(f"'c{i}': 'VARCHAR'" for i in range(width)) + "}"
    return (f"read_csv({sql_path(path)}, header = true, columns = {columns}, delim = ',', quote = '\"', "
            "escape = '\"', strict_mode = true, null_padding = false, auto_detect = false, encoding = 'utf-8')")


def _stage_columnar(classified: Classified, index: int, source: SourceFile, work: Path, header_lines: int,
                    progress_enabled: bool) -> StagedFile:
    """`_stage` with DuckDB's CSV reader and Polars: the same staged rows and statistics.

    The export is read twice rather than copied: this pass streams the columns the statistics need,
    and the staged rows are a query over the CSV itself joined by position to the records' line
    numbers (copying the 79 text columns of a 1M-line export to Parquet cost ~6 s; reading the CSV
    again costs ~2). The line numbers come from the file's bytes (`_record_lines`); only when the
    bytes cannot tell are each record's line breaks counted by DuckDB, over every field. Raises _NotColumnar when the file is
    not plain UTF-8 CSV that DuckDB reads record for record as Python's csv module does (checked by
    the line count), or holds a value the statistics would have to judge one by one; the row-by-row
    stage then reads it and gives its exact errors.
    """
    import polars as pl

    path = classified.path
    encoding, _first = sniff_text(path)
    if encoding != "utf-8-sig":
        raise _NotColumnar("not UTF-8")
    width = len(classified.header)
    keys = list(classified.columns)
    progress = Progress(path.name, path.stat().st_size, progress_enabled)
    progress.update(0)
    csv_source = _csv_source(path, width)
    every = "concat(" + ", ".join(f"c{i}" for i in range(width)) + ")"
    folder = work / f"staged-{index:03d}"
    folder.mkdir(parents=True, exist_ok=True)
    head_keys = [k for k in HEAD_KEYS if k in classified.columns]
    cur = "currency" if "currency" in classified.columns else None
    country = "billing_country" if "billing_country" in classified.columns else None
    if classified.kind == "customers":
        country = next((k for k in ("country_code", "country") if k in classified.columns), None)
    needed = list(dict.fromkeys(k for k in (
        "li_requires_shipping", "li_taxable", "published", "tax_exempt", "total", "subtotal", "li_price", "price",
        "amount", "total_spent", "customer_id", "order_id", "id", *head_keys, cur, country, "name",
        "financial_status", *ORDER_TIMESTAMPS) if k is not None and k in classified.columns))
    selected = "".join(f"coalesce(c{classified.columns[k]}, '') AS {sql_ident(k)}, " for k in needed)
    # the order-level rows' statistics filter only the columns they read (not the whole batch)
    head_columns = list(dict.fromkeys(k for k in (*head_keys, cur, country, "financial_status", "name", "id")
                                      if k is not None and k in classified.columns))
    staged = StagedFile(index=index, classified=classified, source=source)
    # what the order rows read again must match (see _reread_order_rows)
    staged.text_bytes = dict.fromkeys(
        [k for k in needed if k in ORDER_COLUMNS] if classified.kind == "orders" else [], 0)

    def tally(counter: Counter, values: Any, clean: Any) -> None:
        # each value as written once, with its count, then cleaned: the counter adds up the values
        # that clean alike, in the order each cleaned value first appears (as cleaning every row did)
        written = values.filter(values != "").to_frame("v").group_by("v", maintain_order=True).len(name="_n")
        if not written.height:
            return
        cleaned = _mapped(written.get_column("v"), clean, pl.String)
        for value, n in zip(cleaned.to_list(), written.get_column("_n").to_list(), strict=True):
            counter[value] += n

    def upper(value: str) -> str:  # the row stage's own expressions
        return value.strip().upper()

    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = {sql_literal(import_memory_limit())}")
        con.execute("SET threads TO 2")
        con.execute("SET preserve_insertion_order = true")
        con.execute(f"SET temp_directory = {sql_literal(str(work / 'duckdb_tmp'))}")
        records = _record_lines(path, header_lines)
        physical, lone_returns = records.physical, records.lone_returns
        if records.starts is not None:
            query = f"SELECT {selected.rstrip(', ') or '1 AS _none'} FROM {csv_source}"
        else:
            # line breaks inside the record's fields, counted in bytes (\\r\\n is one, as in Python's
            # reader): this needs every field of every record, so only when the bytes cannot tell
            breaks = "strlen(a) - strlen(replace(a, chr(10), ''))"
            if lone_returns:
                breaks += (" + strlen(a) - strlen(replace(a, chr(13), ''))"
                           " - (strlen(a) - strlen(replace(a, chr(13) || chr(10), ''))) // 2")
            query = (f"SELECT {selected}CAST({breaks} AS INTEGER) AS _breaks, a = '' AS _blank "
                     f"FROM (SELECT *, {every} AS a FROM {csv_source})")
        spans: list[Any] = []
        run_heads: list[Any] = []  # each batch's order names where they change (contiguity)
        last_name: str | None = None
        # in the columns' order, as the notes and time zone samples are taken from them in that order
        stamps: dict[str, list[Any]] = {k: [] for k in keys if k in ORDER_TIMESTAMPS}
        upper_bools = 0
        count = 0
        blank = False
        try:
            for batch in con.sql(query).to_arrow_reader(_STATS_BATCH_ROWS):
                frame = pl.DataFrame(pl.from_arrow(batch))
                count += frame.height
                _add_text_bytes(staged.text_bytes, frame)
                if records.starts is None:
                    spans.append(frame.get_column("_breaks"))
                    blank = blank or bool(frame.get_column("_blank").any())
                if "name" in classified.columns and frame.height:
                    names = frame.get_column("name")
                    changed = names.ne_missing(names.shift(1, fill_value=last_name)) if last_name is not None \
                        else names.ne_missing(names.shift(1)).fill_null(True)
                    run_heads.append(_compacted(names.filter(changed)))
                    last_name = names[-1]
                for k, parts in stamps.items():
                    # the distinct values in order of first appearance with their counts: all the
                    # timestamp styles need, and far smaller than the column (counted as written,
                    # then stripped: fewer values to strip, the same first appearances)
                    written = frame.select(pl.col(k).alias("t")).group_by("t", maintain_order=True).len(name="_n")
                    stripped = _mapped(written.get_column("t"), _strip, pl.String)
                    merged = written.with_columns(t=stripped).filter(pl.col("t") != "")
                    if not stripped.equals(written.get_column("t")):  # values that strip alike count together
                        merged = merged.group_by("t", maintain_order=True).agg(pl.col("_n").sum())
                    parts.append(merged.with_columns(_compacted(merged.get_column("t"))))
                for k in ("li_requires_shipping", "li_taxable", "published", "tax_exempt"):
                    if k in classified.columns:
                        upper_bools += int(frame.get_column(k).is_in(["TRUE", "FALSE"]).sum())
                for k in ("total", "subtotal", "li_price", "price", "amount", "total_spent"):
                    if k in classified.columns:
                        values = frame.get_column(k)
                        staged.money_values += int((values != "").sum())
                        staged.money_with_decimals += int(values.str.contains(".", literal=True).sum())
                for k in ("customer_id", "order_id", "id"):
                    if k in classified.columns:
                        staged.scientific_ids += int(_mapped(frame.get_column(k), is_scientific, pl.Boolean).sum())
                if head_keys:
                    heads = frame.select(head_columns).filter(
                        pl.any_horizontal(pl.col(k) != "" for k in head_keys))
                    staged.head_rows += heads.height
                    if cur is not None:
                        tally(staged.currencies, heads.get_column(cur), upper)
                    if country is not None:
                        tally(staged.countries, heads.get_column(country), _strip)
                    if "financial_status" in classified.columns:
                        staged.financial_statuses += int((heads.get_column("financial_status") != "").sum())
                    if "name" in classified.columns and "id" in classified.columns and heads.height:
                        ids = _mapped(heads.get_column("id"), _strip, pl.String)
                        staged.names_like_ids += int((heads.get_column("name").str.strip_chars_start("#") == ids).sum())
                if classified.kind == "transactions" and cur is not None:
                    tally(staged.currencies, frame.get_column(cur), upper)
                elif classified.kind == "customers" and country is not None:
                    tally(staged.countries, frame.get_column(country), _strip)
        except duckdb.Error as exc:
            raise _NotColumnar(str(exc)) from None
    finally:
        con.close()
    if records.starts is not None:
        if len(records.starts) != count or records.empty_record:
            raise _NotColumnar("blank lines, or records DuckDB splits differently")
        lines = pl.Series("_line", records.starts, dtype=pl.Int64)
        staged.record_starts = records.starts
    else:
        record_spans = (pl.concat(spans) if spans else pl.Series("_breaks", [], dtype=pl.Int32)).cast(pl.Int64) + 1
        if header_lines + int(record_spans.sum() or 0) != physical:
            raise _NotColumnar("blank lines, or records DuckDB splits differently")
        if count and blank:
            raise _NotColumnar("a record with every field empty (a blank line to Python's reader?)")
        lines = record_spans.cum_sum() - record_spans + header_lines + 1
    lines_file = folder / "lines.parquet"
    lines.to_frame("_line").write_parquet(lines_file, compression="lz4")
    if run_heads:
        heads_of_runs = pl.concat(run_heads)
        staged.contiguous = heads_of_runs.n_unique() == heads_of_runs.len()
    style = {}
    for k, parts in stamps.items():
        counted = pl.concat(parts).group_by("t", maintain_order=True).agg(pl.col("_n").sum()) if parts else None
        style[k] = _columnar_style(counted, k)
    fields = ", ".join(f"coalesce(f.c{classified.columns[k]}, '') AS {sql_ident(k)}" for k in keys)
    staged.staged = (f"(SELECT {fields}{', ' if keys else ''}CAST({index} AS INTEGER) AS _file, l._line "
                     f"FROM {csv_source} f POSITIONAL JOIN read_parquet({sql_path(lines_file)}) l)")
    progress.update(path.stat().st_size)
    progress.close()
    return _finish_stage(staged, style, upper_bools, count)


def _columnar_style(counted: Any, key: str) -> TimestampStyle:
    """TimestampStyle.observe over a whole column at once (same counts and samples).

    `counted` holds every distinct stripped non-empty value once (`t`), in the order it first
    appears, with how many rows hold it (`_n`); None when the column has no values.
    """
    import polars as pl

    style = TimestampStyle()
    if counted is None or not counted.height:
        return style
    # the counts are sums of _n, and the samples (first of their hour and offset) come out the same
    df = counted
    t = pl.col("t")
    n = pl.col("_n")
    fast_format = (t.str.len_chars() == 25) & (t.str.slice(19, 1) == " ") & t.str.slice(20, 1).is_in(["+", "-"]) \
        & (t.str.slice(10, 1) == " ") & (t.str.slice(4, 1) == "-")
    df = df.with_columns(
        _fast=fast_format, _offset=t.str.contains(_TS_OFFSET_RE), _naive=t.str.contains(_TS_NAIVE_RE),
        _slash=t.str.contains(_TS_SLASH_RE),
    )
    if not df.select((pl.col("_offset") | pl.col("_naive") | pl.col("_slash")).all()).item():
        raise _NotColumnar(f"a value of {key} that observe() must judge")
    offsets = df.filter(pl.col("_offset"))
    naive = df.filter(~pl.col("_offset") & pl.col("_naive"))
    slash = df.filter(~pl.col("_offset") & ~pl.col("_naive") & pl.col("_slash"))
    style.offset = int(offsets.get_column("_n").sum())
    style.naive_iso = int(naive.get_column("_n").sum())
    style.slash = int(slash.get_column("_n").sum())
    if slash.height:
        parts = slash.select(
            a=t.str.extract(_TS_SLASH_RE, 1).cast(pl.Int64), b=t.str.extract(_TS_SLASH_RE, 2).cast(pl.Int64),
            hour=t.str.extract(_TS_SLASH_RE, 4), second=t.str.extract(_TS_SLASH_RE, 6), _n=n,
        )
        style.first_over_12 = int(parts.select(n.filter(pl.col("a") > 12).sum()).item())
        style.second_over_12 = int(parts.select(n.filter(pl.col("b") > 12).sum()).item())
        style.no_seconds += int(parts.select(
            n.filter(pl.col("hour").is_not_null() & pl.col("second").is_null()).sum()).item())
    if offsets.height:
        o = offsets.with_columns(
            y=t.str.extract(_TS_OFFSET_RE, 1).cast(pl.Int32), mo=t.str.extract(_TS_OFFSET_RE, 2).cast(pl.Int8),
            d=t.str.extract(_TS_OFFSET_RE, 3).cast(pl.Int8), hh=t.str.extract(_TS_OFFSET_RE, 4).cast(pl.Int64),
            mi=t.str.extract(_TS_OFFSET_RE, 5).cast(pl.Int64), ss=t.str.extract(_TS_OFFSET_RE, 6),
            zone=t.str.extract(_TS_OFFSET_RE, 7),
        )
        style.no_seconds += int(o.select(n.filter(pl.col("ss").is_null()).sum()).item())
        digits = pl.col("zone").str.replace(":", "", literal=True)
        o = o.with_columns(
            # null for no such day (2023-02-30; year 0, which Python's dates refuse): the row stage
            # then names the value (pl.date would raise instead)
            day=pl.when(pl.col("y") >= 1).then(
                pl.format("{}-{}-{}", pl.col("y"), pl.col("mo"), pl.col("d")).str.strptime(
                    pl.Date, "%Y-%m-%d", strict=False)),
            minutes=pl.when(pl.col("zone").is_in(["Z", "UTC"])).then(0).otherwise(
                pl.when(pl.col("zone").str.starts_with("-")).then(-1).otherwise(1)
                * (digits.str.slice(1, 2).cast(pl.Int64) * 60 + digits.str.slice(3, 2).cast(pl.Int64))),
        )
        if o.get_column("day").null_count():
            raise _NotColumnar("an impossible date")
        o = o.with_columns(
            instant=pl.col("day").cast(pl.Int64) * 86400 + pl.col("hh") * 3600 + pl.col("mi") * 60
            + pl.col("ss").cast(pl.Int64).fill_null(0) - pl.col("minutes") * 60,
            seen_key=pl.when(pl.col("_fast")).then(t.str.slice(0, 13) + t.str.slice(19)),
        )
        # observe() samples a Shopify-format value only the first time its local hour and offset
        # appear; any other offset value every time (setdefault keeps the first per bucket)
        o = o.filter(~pl.col("_fast") | pl.col("seen_key").is_first_distinct())
        o = o.with_columns(bucket=pl.col("instant") // 3600).filter(
            pl.struct("bucket", "minutes").is_first_distinct()).head(_SAMPLES_CAP)
        style.samples = {(b, m): i for b, m, i in o.select("bucket", "minutes", "instant").iter_rows()}
    return style


# ---------------------------------------------------------------------------------------------
# phase 2: orders -> sales rows


@dataclass
class Line:
    seq: int
    file: int
    line: int
    name: str
    sku: str | None
    vendor: str | None
    qty: int
    price: int | None
    compare_at: int | None
    line_discount: int
    requires_shipping: bool | None
    gross: int = 0
    discount: int = 0
    net: int = 0
    tax: int = 0
    # what is left to reverse
    units_left: int = 0
    net_left: int = 0
    tax_left: int = 0


# Refunds of the order with seq n take the seqs n * REFUND_SEQ_STRIDE + 1, + 2, ... (only their
# order within one order matters: refund and sale ids are numbered by order id first).
REFUND_SEQ_STRIDE = 1 << 20


class _Context:
    def __init__(self, report: ImportReport, files: dict[int, StagedFile], parse_ts: TimestampParser,
                 currency: str, refund_events: dict[str, list[tuple[int, int, int, int]]]) -> None:
        self.report = report
        self.files = files
        self.parse_ts = parse_ts
        self.currency = currency
        self.refund_events = refund_events
        self.used_refund_events: set[str] = set()
        self.order_seq = 0
        self.line_seq = 0
        self.refund_seq = 0
        self.counts: Counter = Counter()
        self.totals: Counter = Counter()  # reconciliation sums (cents)
        # the stream position of the order OrderBuilder builds for the columnar path (_FirstSeenCounter)
        self.position = 0

    def path(self, file_index: int) -> str:
        return self.files[file_index].source.path

    def column(self, file_index: int, key: str) -> str:
        return self.files[file_index].classified.names.get(key, key)

    def has(self, file_index: int, key: str) -> bool:
        return key in self.files[file_index].classified.columns

    def fail(self, row: dict[str, Any], key: str, message: str, hint: str | None = None) -> CommerceQLImportError:
        return CommerceQLImportError(
            message, file=self.path(row["_file"]), line=row["_line"], column=self.column(row["_file"], key),
            value=row.get(key), hint=hint,
        )

    def money(self, row: dict[str, Any], key: str) -> int | None:
        try:
            return parse_cents(row.get(key))
        except ValueError_ as exc:
            # how amounts are written helps with "12,5O", not with an amount too large for the store
            hint = "amounts are written like 1234.50 (a dot for decimals, no currency sign)" \
                if str(exc).startswith("not an amount") else None
            raise self.fail(row, key, f"{exc} in a money column", hint) from None

    def integer(self, row: dict[str, Any], key: str) -> int | None:
        try:
            return parse_int(row.get(key))
        except ValueError_ as exc:
            raise self.fail(row, key, str(exc)) from None

    def timestamp(self, row: dict[str, Any], key: str) -> int | None:
        try:
            return self.parse_ts(row.get(key))
        except ValueError_ as exc:
            raise self.fail(row, key, str(exc)) from None


ORDER_STAGE_COLUMNS = {
    "order_seq": pa.int64(), "name": pa.string(), "file": pa.int32(), "line": pa.int64(),
    "shopify_id": pa.int64(), "created_at": TIMESTAMP_US, "paid_at": TIMESTAMP_US, "fulfilled_at": TIMESTAMP_US,
    "cancelled_at": TIMESTAMP_US, "email": pa.string(), "billing_name": pa.string(),
    "financial_status": pa.string(), "fulfillment_status": pa.string(), "currency": pa.string(),
    "source_name": pa.string(), "sales_channel": pa.string(), "discount_code": pa.string(),
    "shipping_method": pa.string(), "billing_country": pa.string(), "billing_region": pa.string(),
    "billing_city": pa.string(), "shipping_country": pa.string(), "shipping_region": pa.string(),
    "shipping_city": pa.string(), "accepts_marketing": pa.bool_(), "is_test": pa.bool_(),
    "line_count": pa.int32(), "item_count": pa.int32(), "line_items_total": MONEY_CENTS,
    "total_discounts": MONEY_CENTS, "subtotal": MONEY_CENTS, "shipping": MONEY_CENTS, "taxes": MONEY_CENTS,
    "total": MONEY_CENTS, "total_refunded": MONEY_CENTS, "taxes_included": pa.bool_(),
    # reconciliation (cents): export figures and how the booked total differs from the export's Total
    "export_total": MONEY_CENTS, "export_subtotal": MONEY_CENTS, "export_shipping": MONEY_CENTS,
    "export_taxes": MONEY_CENTS, "export_discount": MONEY_CENTS, "export_lines_gross": MONEY_CENTS,
    "export_refunded": MONEY_CENTS, "tips": MONEY_CENTS, "gift_cards": MONEY_CENTS, "duties": MONEY_CENTS,
    "lines_vs_subtotal": MONEY_CENTS, "adjustment": MONEY_CENTS, "shipping_tax_included": MONEY_CENTS,
    "total_residual": MONEY_CENTS,
    "booked_total": MONEY_CENTS, "reversed_total": MONEY_CENTS, "refund_excess": MONEY_CENTS,
    "expected_total_sales": MONEY_CENTS, "refund_date_rule": pa.string(),
}
LINE_STAGE_COLUMNS = {
    "line_seq": pa.int64(), "order_seq": pa.int64(), "file": pa.int32(), "line": pa.int64(),
    "name": pa.string(), "sku": pa.string(), "vendor": pa.string(), "quantity": pa.int32(),
    "price": MONEY_CENTS, "compare_at": MONEY_CENTS, "gross": MONEY_CENTS, "line_discount": MONEY_CENTS,
    "allocated_order_discount": MONEY_CENTS, "total_discount": MONEY_CENTS, "net": MONEY_CENTS, "tax": MONEY_CENTS,
}
SALE_STAGE_COLUMNS = {
    "order_seq": pa.int64(), "line_seq": pa.int64(), "refund_seq": pa.int64(), "happened_at": TIMESTAMP_US,
    "event_type": pa.string(), "line_type": pa.string(), "quantity": pa.int32(), "gross_sales": MONEY_CENTS,
    "discounts": MONEY_CENTS, "sales_reversals": MONEY_CENTS, "net_sales": MONEY_CENTS, "taxes": MONEY_CENTS,
    "shipping_charges": MONEY_CENTS, "total_sales": MONEY_CENTS,
}
REFUND_STAGE_COLUMNS = {
    "refund_seq": pa.int64(), "order_seq": pa.int64(), "created_at": TIMESTAMP_US, "kind": pa.string(),
    "line_count": pa.int32(), "item_count": pa.int32(), "refunded_subtotal": MONEY_CENTS,
    "refunded_tax": MONEY_CENTS, "refunded_shipping": MONEY_CENTS, "total_refunded": MONEY_CENTS,
}
REFUND_LINE_STAGE_COLUMNS = {
    "refund_seq": pa.int64(), "order_seq": pa.int64(), "line_seq": pa.int64(), "quantity": pa.int32(),
    "subtotal": MONEY_CENTS, "tax": MONEY_CENTS,
}
CHECKOUT_STAGE_COLUMNS = {
    "checkout_seq": pa.int64(), "shopify_id": pa.int64(), "name": pa.string(), "created_at": TIMESTAMP_US,
    "email": pa.string(), "currency": pa.string(), "value": MONEY_CENTS, "item_count": pa.int32(),
    "country": pa.string(), "region": pa.string(), "stage_reached": pa.string(), "source_name": pa.string(),
    "sales_channel": pa.string(),
}


def _allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """Split `amount` cents in proportion to `weights` (largest remainder), exactly."""
    n = len(weights)
    if n == 0:
        return []
    if amount == 0:
        return [0] * n
    if n == 1:
        return [amount]
    total = sum(weights)
    if total == 0:
        out = [0] * n
        out[0] = amount
        return out
    sign = -1 if amount < 0 else 1
    a = abs(amount)
    shares = [a * w // total for w in weights]
    remainders = sorted(range(n), key=lambda i: (-(a * weights[i] % total), i))
    left = a - sum(shares)
    for i in remainders[:left]:
        shares[i] += 1
    return [sign * s for s in shares]


def _scaled(value: int, k: int, units: int) -> int:
    """value * k / units, rounded half away from zero (integer cents)."""
    if units == 0:
        return 0
    num = value * k
    q, r = divmod(abs(num), units)
    if 2 * r >= units:
        q += 1
    return q if num >= 0 else -q


def _is_tip(name: str, sku: str | None) -> bool:
    return name.strip().lower() in ("tip", "tips") and not sku


def _is_gift_card(name: str, requires_shipping: bool | None) -> bool:
    """A gift card sold: Shopify names the line after the gift card product ("DIGITAL GIFT CARD - $100")
    and it needs no shipping. The orders export has no gift-card flag, so a physical gift card that
    requires shipping is not recognised (and is booked as a product)."""
    return "gift card" in name.lower() and requires_shipping is not True


_RATE = __import__("re").compile(r"(\d+(?:\.\d+)?)\s*%")


def _tax_rate(head: dict[str, Any]) -> Decimal | None:
    """The order's combined tax rate from its tax line names ("FR TVA 20%", "GST 10%"), or None when a
    tax line with an amount has no rate in its name."""
    total = Decimal(0)
    found = False
    for i in range(1, 6):
        name = clean_text(head.get(f"tax{i}_name"))
        if not name:
            continue
        value = clean_text(head.get(f"tax{i}_value"))
        match = _RATE.search(name)
        if match is None:
            if value and value.strip("0.") != "":
                return None
            continue
        total += Decimal(match.group(1)) / 100
        found = True
    return total if found and total > 0 else None


def _included_tax(amount: int, rate: Decimal) -> int:
    """The tax included in a tax-inclusive `amount` of cents at `rate`, rounded half up."""
    from decimal import ROUND_HALF_UP

    return int((Decimal(amount) * rate / (1 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _head_row(rows: list[dict[str, Any]]) -> int | None:
    for i, row in enumerate(rows):
        if any(row.get(k) for k in HEAD_KEYS):
            return i
    return None


def _split_groups(rows: list[dict[str, Any]], ctx: _Context) -> list[list[dict[str, Any]]]:
    """The orders among the rows sharing one Name (normally exactly one). Skips orphans and duplicates."""
    heads = [i for i, r in enumerate(rows) if any(r.get(k) for k in HEAD_KEYS)]
    name = rows[0].get("name") or ""
    if not heads:
        for r in rows:
            ctx.report.skip(ctx.path(r["_file"]), r["_line"],
                            f"line item of order {name} whose order-level row is not in the import "
                            "(for a multi-part export, import all parts together)")
        return []
    first_file = rows[heads[0]]["_file"]
    files_with_heads = {rows[i]["_file"] for i in heads}
    # rows from files without an order-level row for this name continue the order (a multi-part
    # export split it); another file with its own order-level row is an overlapping export
    keep = [r for r in rows if r["_file"] == first_file or r["_file"] not in files_with_heads]
    for r in rows:
        if r["_file"] != first_file and r["_file"] in files_with_heads:
            head = rows[heads[0]]
            ctx.report.skip(ctx.path(r["_file"]), r["_line"],
                            f"duplicate of order {name} already read from {ctx.path(first_file)} line {head['_line']} "
                            "(overlapping exports)")
    file_heads = [i for i, r in enumerate(keep) if any(r.get(k) for k in HEAD_KEYS)]
    if len(file_heads) == 1:
        return [keep]
    ctx.report.warn(f"order name {name} is used by {len(file_heads)} different orders in {ctx.path(first_file)}; "
                    "they are imported as separate orders with the same name")
    groups: list[list[dict[str, Any]]] = []
    for j, start in enumerate(file_heads):
        end = file_heads[j + 1] if j + 1 < len(file_heads) else len(keep)
        groups.append(keep[(0 if j == 0 else start):end])
    return groups


STAGE_COLUMNS = {"orders": ORDER_STAGE_COLUMNS, "lines": LINE_STAGE_COLUMNS, "sales": SALE_STAGE_COLUMNS,
                 "refunds": REFUND_STAGE_COLUMNS, "refund_lines": REFUND_LINE_STAGE_COLUMNS}


class _BeyondTheStore(Exception):
    """A built amount or count the store's columns cannot hold (see _FitsTheStore)."""

    def __init__(self, column: str, value: int, limit: int) -> None:
        super().__init__(column)
        self.column, self.value, self.limit = column, value, limit


class _FitsTheStore:
    """One of OrderBuilder's outputs, refusing amounts beyond the store's DECIMAL(18,2) and counts
    beyond INTEGER. Each export value is checked as it is read, but an order's sums (many lines, each
    within bounds) can still go beyond: they would fail the store's cast (or overflow 64 bits) later,
    with no line to name."""

    def __init__(self, out: Any, types: dict[str, pa.DataType]) -> None:
        self.out = out
        self.limits = tuple((key, MAX_CENTS - 1 if t == MONEY_CENTS else MAX_INTEGER) for key, t in types.items()
                            if t == MONEY_CENTS or t == pa.int32())

    def add_dict(self, values: dict[str, Any]) -> None:
        for key, limit in self.limits:
            value = values.get(key)
            if value is not None and not -limit <= value <= limit:
                raise _BeyondTheStore(key, value, limit)
        self.out.add_dict(values)


# how an error names the order figures whose column names say little out of context
_FIGURE_NAMES = {"export_lines_gross": "line items total (price x quantity)", "booked_total": "booked total",
                 "expected_total_sales": "expected total sales"}


class OrderBuilder:
    """Turns the rows of one order into staged order, line, sales and refund records."""

    def __init__(self, ctx: _Context, out: dict[str, Stager]) -> None:
        self.ctx = ctx
        self.out = {key: _FitsTheStore(stager, STAGE_COLUMNS[key]) for key, stager in out.items()}

    # -- one order ---------------------------------------------------------------------------
    def build(self, rows: list[dict[str, Any]]) -> None:
        try:
            self._build(rows)
        except _BeyondTheStore as exc:
            head = rows[_head_row(rows) or 0]
            money = exc.limit != MAX_INTEGER
            what = (_money_text(Decimal(exc.value) / 100, self.ctx.currency) if money else f"{exc.value:,}")
            bound = STORE_AMOUNTS if money else f"counts up to {MAX_INTEGER:,}"
            figure = _FIGURE_NAMES.get(exc.column, exc.column.replace("_", " "))
            raise self.ctx.fail(
                head, "name", f"this order's {figure} comes to {what}, beyond what the store holds ({bound})",
            ) from None

    def _build(self, rows: list[dict[str, Any]]) -> None:
        ctx = self.ctx
        hi = _head_row(rows)
        assert hi is not None
        head = rows[hi]
        f = head["_file"]
        name = (head.get("name") or "").strip()
        currency = (head.get("currency") or "").strip().upper() or ctx.currency
        if currency != ctx.currency:
            for r in rows:
                ctx.report.skip(ctx.path(r["_file"]), r["_line"],
                                f"order {name} is in {currency}, not the store currency {ctx.currency} "
                                "(amounts in different currencies cannot be added)")
            ctx.counts["orders_skipped_currency"] += 1
            return
        created = ctx.timestamp(head, "created_at")
        if created is None:
            raise ctx.fail(head, "created_at", "the order has no creation date")
        paid = ctx.timestamp(head, "paid_at")
        fulfilled = ctx.timestamp(head, "fulfilled_at")
        cancelled = ctx.timestamp(head, "cancelled_at")
        has_lines = ctx.has(f, "li_name") or ctx.has(f, "li_qty")
        has_prices = ctx.has(f, "li_price") or not has_lines
        has_money = has_prices and (ctx.has(f, "li_price") or ctx.has(f, "subtotal") or ctx.has(f, "total"))

        # The columnar path gives every staged row its stream position (`_row`): its orders and lines
        # take their seqs from it, so orders built here interleave with its own in stream order.
        ctx.order_seq = rows[0]["_row"] if "_row" in rows[0] else ctx.order_seq + 1
        order_seq = ctx.order_seq
        if "_row" in rows[0]:
            ctx.refund_seq = order_seq * REFUND_SEQ_STRIDE
        lines: list[Line] = []
        tips = 0
        gift_cards = 0
        lines_gross_export = 0
        for r in rows:
            if not has_lines or not ((r.get("li_name") or "").strip() or (r.get("li_qty") or "").strip()):
                continue
            qty = ctx.integer(r, "li_qty")
            if qty is None:
                raise ctx.fail(r, "li_qty", "a line item without a quantity")
            price = ctx.money(r, "li_price") if has_prices else None
            if has_prices and price is None:
                price = 0
            if price is not None and abs(qty * price) >= MAX_CENTS:
                raise ctx.fail(r, "li_qty", f"this quantity at the line's price ({_money_text(Decimal(price) / 100, ctx.currency)}) "
                               f"is too large an amount for the store (it holds {STORE_AMOUNTS})")
            title = (r.get("li_name") or "").strip()
            sku = clean_text(r.get("li_sku"))
            if price is not None:
                lines_gross_export += qty * price
            if price is not None and _is_tip(title, sku):
                tips += qty * price
                ctx.counts["tip_lines"] += 1
                continue
            requires_shipping = parse_bool(r.get("li_requires_shipping"))
            if price is not None and _is_gift_card(title, requires_shipping):
                # selling a gift card is not a sale (Shopify books it as a liability until redeemed)
                gift_cards += qty * price
                ctx.counts["gift_card_lines"] += 1
                continue
            ctx.line_seq = r["_row"] if "_row" in r else ctx.line_seq + 1
            lines.append(Line(
                seq=ctx.line_seq, file=r["_file"], line=r["_line"], name=title or "(no title)", sku=sku,
                vendor=clean_text(r.get("vendor")), qty=qty, price=price,
                compare_at=ctx.money(r, "li_compare_at"), line_discount=ctx.money(r, "li_discount") or 0,
                requires_shipping=requires_shipping,
            ))
        m = {k: ctx.money(head, k) for k in ORDER_MONEY}
        if has_money and ctx.has(f, "total") and m["total"] is None:
            m["total"] = 0
        payment = (head.get("payment_method") or "").lower()
        is_test = "bogus" in payment
        event_rows: list[dict[str, Any]] = []
        rec: dict[str, Any] = {"tips": tips if has_money else None, "gift_cards": gift_cards if has_money else None,
                               "duties": m["duties"]}
        ctx.counts["orders"] += 1
        ctx.counts["line_items"] += len(lines)

        if has_money:
            self._money(lines, m, tips, gift_cards, has_lines, rec, _tax_rate(head))
        else:
            for ln in lines:
                ln.units_left = ln.qty
        booked_lines = [ln for ln in lines]
        # order-date sales rows
        ship_charge = rec.get("ship_charge", 0) if has_money else None
        ship_tax = rec.get("ship_tax", 0) if has_money else None
        if not is_test:
            for ln in booked_lines:
                event_rows.append(self._sale(order_seq, ln.seq, None, created, "order", "product", ln.qty,
                                             gross=ln.gross if has_money else None,
                                             discounts=-ln.discount if has_money else None,
                                             reversals=0 if has_money else None,
                                             taxes=ln.tax if has_money else None, shipping=0 if has_money else None))
            if has_money and not has_lines:
                event_rows.append(self._sale(order_seq, None, None, created, "order", "product", None,
                                             gross=rec["unitemized_gross"], discounts=0, reversals=0,
                                             taxes=rec["unitemized_tax"], shipping=0))
            if has_money and rec.get("adjustment"):
                # the export's Subtotal has goods that its line rows do not (rows lost in a spreadsheet
                # re-save, or the order edited): booked as one labelled row so totals still match the
                # export, and `line_type = 'adjustment'` finds or excludes it
                event_rows.append(self._sale(order_seq, None, None, created, "order", "adjustment", None,
                                             gross=rec["adjustment_gross"], discounts=0, reversals=0,
                                             taxes=rec["adjustment_tax"], shipping=0))
            if has_money and gift_cards:
                # a zero row keeps an order that sold a gift card an order in `sales` (counted, with its
                # customer), as it is in `orders`; the gift card's amount is not sales
                event_rows.append(self._sale(order_seq, None, None, created, "order", "gift_card", None,
                                             gross=0, discounts=0, reversals=0, taxes=0, shipping=0))
            if has_money and (ship_charge or ship_tax):
                event_rows.append(self._sale(order_seq, None, None, created, "order", "shipping", 0,
                                             gross=0, discounts=0, reversals=0, taxes=ship_tax, shipping=ship_charge))
        booked_total = sum(r["total_sales"] or 0 for r in event_rows)
        # reversals
        reversed_total = 0
        refund_excess = 0
        rule = None
        refunded_export = m["refunded_amount"]
        if not is_test:
            state = _ReversalState(booked_lines, ship_charge or 0, ship_tax or 0, rec.get("unitemized"), has_money)
            if rec.get("unitemized"):
                state.set_unitemized(rec["unitemized_gross"], rec["unitemized_tax"])
            elif rec.get("adjustment"):
                state.set_unitemized(rec["adjustment_gross"], rec["adjustment_tax"], line_type="adjustment")
            events: list[tuple[int, str, int | None]] = []
            if name in ctx.refund_events:
                ctx.used_refund_events.add(name)
            if cancelled is not None:
                events.append((cancelled, "cancellation", None))
                rule = "cancellation date"
            elif name in ctx.refund_events:
                ctx.used_refund_events.add(name)
                for when, amount, _tf, _tl in sorted(ctx.refund_events[name]):
                    events.append((when, "refund", amount))
                rule = "refund transactions"
            elif refunded_export:
                when = max(t for t in (created, paid, fulfilled) if t is not None)
                status = (head.get("financial_status") or "").strip().lower()
                events.append((when, "refund", None if (status == "refunded" and refunded_export >= booked_total)
                               else refunded_export))
                rule = "last known date (no refund date in the export)"
            elif (head.get("financial_status") or "").strip().lower() == "refunded" and not has_money:
                when = max(t for t in (created, paid, fulfilled) if t is not None)
                events.append((when, "refund", None))
                rule = "last known date (no refund date in the export)"
            for when, kind, amount in events:
                when = max(when, created)
                rows_out, excess = self._reverse(order_seq, state, when, kind, amount)
                event_rows.extend(rows_out)
                refund_excess += excess
            reversed_total = sum(r["total_sales"] or 0 for r in event_rows) - booked_total
        total_export = m["total"]
        expected = None
        if has_money:
            if is_test:
                expected = 0
            elif total_export is None:
                expected = booked_total + reversed_total
            else:
                expected = total_export - tips - gift_cards - rec.get("total_residual", 0) + reversed_total
        billing_country = clean_text(head.get("billing_country"))
        shipping_country = clean_text(head.get("shipping_country"))
        source = clean_text(head.get("source"))
        self.out["orders"].add_dict({
            "order_seq": order_seq, "name": name, "file": f, "line": head["_line"],
            "shopify_id": _int_or_none(head.get("id")), "created_at": created, "paid_at": paid,
            "fulfilled_at": fulfilled, "cancelled_at": cancelled,
            "email": _email(head.get("email")) or next((_email(r.get("email")) for r in rows if _email(r.get("email"))), None),
            "billing_name": clean_text(head.get("billing_name")) or clean_text(head.get("shipping_name")),
            "financial_status": clean_text(head.get("financial_status")),
            "fulfillment_status": clean_text(head.get("fulfillment_status")),
            "currency": currency, "source_name": source, "sales_channel": sales_channel_of(source),
            "discount_code": clean_text(head.get("discount_code")),
            "shipping_method": clean_text(head.get("shipping_method")),
            "billing_country": country_name(billing_country),
            "billing_region": clean_text(head.get("billing_province_name")) or clean_text(head.get("billing_province")),
            "billing_city": clean_text(head.get("billing_city")),
            "shipping_country": country_name(shipping_country),
            "shipping_region": clean_text(head.get("shipping_province_name")) or clean_text(head.get("shipping_province")),
            "shipping_city": clean_text(head.get("shipping_city")),
            "accepts_marketing": parse_bool(head.get("accepts_marketing")), "is_test": is_test,
            "line_count": len(booked_lines), "item_count": sum(ln.qty for ln in booked_lines),
            # the order's amounts as booked in `sales` on the order date (tax-inclusive prices without
            # their taxes, shipping after shipping discounts, no tips or gift cards, adjustments
            # included), so every `orders` metric agrees with its `sales` namesake; the export's own
            # figures are in the reconciliation table
            **(self._order_amounts(booked_lines, rec, has_lines) if has_money else {
                "line_items_total": None, "total_discounts": m["discount_amount"], "subtotal": m["subtotal"],
                "shipping": m["shipping"], "taxes": m["taxes"], "total": total_export}),
            "total_refunded": refunded_export, "taxes_included": rec.get("taxes_included"),
            "export_total": total_export, "export_subtotal": m["subtotal"], "export_shipping": m["shipping"],
            "export_taxes": m["taxes"], "export_discount": m["discount_amount"],
            "export_lines_gross": lines_gross_export if has_lines and has_prices else None,
            "export_refunded": refunded_export, "tips": rec["tips"], "gift_cards": rec["gift_cards"],
            "duties": m["duties"],
            "lines_vs_subtotal": rec.get("lines_vs_subtotal") if has_money else None,
            "adjustment": rec.get("adjustment", 0) if has_money else None,
            "shipping_tax_included": rec.get("ship_tax_included", 0) if has_money else None,
            "total_residual": rec.get("total_residual") if has_money else None,
            "booked_total": booked_total if has_money else None,
            "reversed_total": reversed_total if has_money else None,
            "refund_excess": refund_excess if has_money else None,
            "expected_total_sales": expected, "refund_date_rule": rule,
        })
        # after the order's own record: an amount beyond the store is first named by its order figure
        for r in event_rows:
            self.out["sales"].add_dict(r)
        for ln in booked_lines:
            self.out["lines"].add_dict({
                "line_seq": ln.seq, "order_seq": order_seq, "file": ln.file, "line": ln.line, "name": ln.name,
                "sku": ln.sku, "vendor": ln.vendor, "quantity": ln.qty, "price": ln.price, "compare_at": ln.compare_at,
                "gross": ln.gross if has_money else None,
                "line_discount": ln.line_discount if has_money else None,
                "allocated_order_discount": (ln.discount - ln.line_discount) if has_money else None,
                "total_discount": ln.discount if has_money else None,
                "net": ln.net if has_money else None, "tax": ln.tax if has_money else None,
            })

    # -- money of one order ------------------------------------------------------------------
    def _money(self, lines: list[Line], m: dict[str, int | None], tips: int, gift_cards: int, has_lines: bool,
               rec: dict[str, Any], rate: Decimal | None) -> None:
        ctx = self.ctx
        subtotal, shipping, taxes = m["subtotal"], m["shipping"] or 0, m["taxes"] or 0
        duties, discount_amount, total = m["duties"] or 0, m["discount_amount"], m["total"]
        if not has_lines:
            # an export without line items (one row per order): one unitemized product row
            sub = subtotal if subtotal is not None else (total or 0) - shipping - taxes - duties
            included, shipping_discount, residual = self._tax_mode(
                total, sub, shipping, taxes, duties, 0, infer_shipping_discount=discount_amount is None)
            rec["taxes_included"] = included
            rec["unitemized"] = True
            rec["unitemized_gross"] = sub - taxes if included else sub
            rec["unitemized_tax"] = taxes + duties
            rec["ship_charge"] = shipping - shipping_discount
            rec["ship_tax"] = 0
            rec["lines_vs_subtotal"] = 0
            rec["total_residual"] = residual
            return
        gross = 0
        for ln in lines:
            ln.gross = ln.qty * (ln.price or 0)
            gross += ln.gross
        line_discounts = sum(ln.line_discount for ln in lines)
        # the export's Subtotal and Total include gift cards sold (never discounted, never taxed);
        # they are not sales, so the goods are the Subtotal without them
        if subtotal is None:
            subtotal_used = gross - (discount_amount or 0)
        else:
            subtotal_used = subtotal - gift_cards
        total_goods = total - gift_cards if total is not None else None
        product_discount = gross - subtotal_used
        shipping_discount = 0
        if product_discount < 0 or (discount_amount is not None and product_discount > discount_amount):
            # the line items do not add up to the Subtotal (order edited, rows lost in a spreadsheet
            # re-save, ...): book the line items as they are, with the export's discount amount, and the
            # difference as an adjustment row below
            product_discount = min(max(discount_amount or 0, 0), gross)
            ctx.counts["orders_lines_vs_subtotal"] += 1
        elif discount_amount is not None and discount_amount > product_discount:
            # the rest of the discount is a shipping discount (free-shipping codes)
            shipping_discount = min(discount_amount - product_discount, shipping)
        adjustment = subtotal_used - (gross - product_discount)
        rec["lines_vs_subtotal"] = -adjustment
        rec["adjustment"] = adjustment
        # discounts per line: the line's own discount plus a share of the order-level discount
        order_discount = product_discount - line_discounts
        if order_discount >= 0:
            shares = _allocate(order_discount, [max(ln.gross - ln.line_discount, 0) for ln in lines])
            for ln, share in zip(lines, shares, strict=True):
                ln.discount = ln.line_discount + share
        else:
            shares = _allocate(product_discount, [max(ln.line_discount, 0) for ln in lines])
            for ln, share in zip(lines, shares, strict=True):
                ln.discount = share
        for ln in lines:
            ln.net = ln.gross - ln.discount
        included, inferred, residual = self._tax_mode(
            total_goods, subtotal_used, shipping - shipping_discount, taxes, duties, tips,
            infer_shipping_discount=discount_amount is None)
        ship_charge = shipping - shipping_discount - inferred
        rec["taxes_included"] = included
        rec["total_residual"] = residual
        # tax-inclusive prices: one tax line may cover goods and shipping; the tax on shipping comes
        # out of shipping, the rest out of the goods (see _shipping_tax_included)
        ship_tax_included = self._shipping_tax_included(subtotal_used, ship_charge, taxes, rate) if included else 0
        rec["ship_tax_included"] = ship_tax_included
        goods_taxes = taxes - ship_tax_included
        # taxes (and duties, booked as taxes) go to the product lines (and the adjustment) in proportion
        # to their net sales; tax-inclusive prices: the included taxes come out of gross sales
        weights = [max(ln.net, 0) for ln in lines] + [max(adjustment, 0)]
        if sum(weights) > 0:
            tax_shares = _allocate(goods_taxes, weights)
            duty_shares = _allocate(duties, weights)
            for ln, tax_share, duty_share in zip(lines, tax_shares, duty_shares, strict=False):
                ln.tax = tax_share + duty_share
                if included:
                    ln.gross -= tax_share
                    ln.net -= tax_share
            rec["adjustment_tax"] = tax_shares[-1] + duty_shares[-1]
            rec["adjustment_gross"] = adjustment - (tax_shares[-1] if included else 0)
            rec["ship_tax"] = ship_tax_included
            ship_charge -= ship_tax_included
        else:
            rec["adjustment_tax"] = 0
            rec["adjustment_gross"] = adjustment
            rec["ship_tax"] = taxes + duties
            if included:
                ship_charge -= taxes
        rec["ship_charge"] = ship_charge
        for ln in lines:
            ln.units_left = ln.qty
            ln.net_left = ln.net
            ln.tax_left = ln.tax

    def _shipping_tax_included(self, goods: int, shipping: int, taxes: int, rate: Decimal | None) -> int:
        """The part of an order's included taxes that is tax on its shipping.

        The export gives one Taxes figure for the order; its tax lines name their rate. When the
        taxes are what that rate gives on goods plus shipping, the shipping was taxed and its tax is
        shipping × rate / (1 + rate); when they are what it gives on the goods alone (a store that
        does not tax shipping, such as kidsliving), the shipping carries no tax. Without a rate the
        split cannot be known: all the taxes stay with the goods, and the reconciliation counts it.
        """
        if shipping <= 0 or taxes <= 0:
            return 0
        if rate is None:
            self.ctx.counts["orders_shipping_tax_unknown"] += 1
            return 0
        on_goods = _included_tax(goods, rate)
        on_both = _included_tax(goods + shipping, rate)
        if abs(on_both - taxes) >= abs(on_goods - taxes):
            return 0
        self.ctx.counts["orders_shipping_tax_split"] += 1
        return min(_included_tax(shipping, rate), taxes)

    @staticmethod
    def _order_amounts(lines: list[Line], rec: dict[str, Any], has_lines: bool) -> dict[str, int]:
        """The orders-table amounts of one order, as booked in `sales` on the order date."""
        if has_lines:
            gross = sum(ln.gross for ln in lines) + rec.get("adjustment_gross", 0)
            discounts = sum(ln.discount for ln in lines)
            taxes = sum(ln.tax for ln in lines) + rec.get("adjustment_tax", 0) + rec.get("ship_tax", 0)
        else:
            # without line items the export cannot split gross sales and discounts: the unitemized row
            # books the Subtotal (after discounts) as gross sales, with no discount
            gross = rec["unitemized_gross"]
            discounts = 0
            taxes = rec["unitemized_tax"] + rec.get("ship_tax", 0)
        shipping = rec.get("ship_charge", 0)
        subtotal = gross - discounts
        return {"line_items_total": gross, "total_discounts": discounts, "subtotal": subtotal,
                "shipping": shipping, "taxes": taxes, "total": subtotal + shipping + taxes}

    def _tax_mode(self, total: int | None, subtotal: int, shipping: int, taxes: int, duties: int, tips: int, *,
                  infer_shipping_discount: bool) -> tuple[bool, int, int]:
        """(taxes included in prices?, inferred shipping discount, unexplained residual) of one order.

        Total = Subtotal + Shipping + Taxes + Duties + tips for tax-exclusive prices, and without the
        Taxes for tax-inclusive prices. Exports without a Discount Amount column cannot show a
        free-shipping discount; a Total that leaves out exactly the Shipping is read as one.
        """
        if total is None:
            return False, 0, 0
        options = [(False, 0), (True, 0)]
        if infer_shipping_discount and shipping:
            options += [(False, shipping), (True, shipping)]
        for included, discount in options:
            if included and taxes == 0:
                continue
            if total == subtotal + shipping - discount + duties + tips + (0 if included else taxes):
                if discount:
                    self.ctx.counts["orders_shipping_discount_inferred"] += 1
                return included, discount, 0
        self.ctx.counts["orders_total_residual"] += 1
        return False, 0, total - (subtotal + shipping + taxes + duties + tips)

    # -- rows --------------------------------------------------------------------------------
    @staticmethod
    def _sale(order_seq: int, line_seq: int | None, refund_seq: int | None, when: int, event: str, line_type: str,
              quantity: int | None, *, gross: int | None, discounts: int | None, reversals: int | None,
              taxes: int | None, shipping: int | None) -> dict[str, Any]:
        if gross is None:
            net = total = None
        else:
            net = gross + (discounts or 0) + (reversals or 0)
            total = net + (taxes or 0) + (shipping or 0)
        return {
            "order_seq": order_seq, "line_seq": line_seq, "refund_seq": refund_seq, "happened_at": when,
            "event_type": event, "line_type": line_type, "quantity": quantity, "gross_sales": gross,
            "discounts": discounts, "sales_reversals": reversals, "net_sales": net, "taxes": taxes,
            "shipping_charges": shipping, "total_sales": total,
        }

    def _reverse(self, order_seq: int, state: _ReversalState, when: int, kind: str,
                 amount: int | None) -> tuple[list[dict[str, Any]], int]:
        """Reversal rows for one refund or cancellation of `amount` cents (None: everything left)."""
        ctx = self.ctx
        parts = state.plan(amount)
        if parts is None:
            return [], 0
        line_parts, ship_part, ship_tax_part, unitemized_part, excess, proportional = parts
        if not line_parts and not ship_part and not ship_tax_part and not unitemized_part:
            return [], excess
        if proportional:
            ctx.counts["refunds_allocated_proportionally"] += 1
        ctx.refund_seq += 1
        refund_seq = ctx.refund_seq
        rows = []
        sub_total = tax_total = items = 0
        for ln, k, net_part, tax_part in line_parts:
            rows.append(self._sale(order_seq, ln.seq, refund_seq, when, kind, "product", -k,
                                   gross=0 if state.has_money else None,
                                   discounts=0 if state.has_money else None,
                                   reversals=-net_part if state.has_money else None,
                                   taxes=-tax_part if state.has_money else None,
                                   shipping=0 if state.has_money else None))
            self.out["refund_lines"].add_dict({
                "refund_seq": refund_seq, "order_seq": order_seq, "line_seq": ln.seq, "quantity": k,
                "subtotal": net_part if state.has_money else None, "tax": tax_part if state.has_money else None,
            })
            sub_total += net_part
            tax_total += tax_part
            items += k
        if unitemized_part:
            net_part, tax_part = unitemized_part
            rows.append(self._sale(order_seq, None, refund_seq, when, kind, state.unitemized_type, None, gross=0,
                                   discounts=0, reversals=-net_part, taxes=-tax_part, shipping=0))
            sub_total += net_part
            tax_total += tax_part
        if ship_part or ship_tax_part:
            rows.append(self._sale(order_seq, None, refund_seq, when, kind, "shipping", 0, gross=0, discounts=0,
                                   reversals=0, taxes=-ship_tax_part, shipping=-ship_part))
            tax_total += ship_tax_part
        money = state.has_money
        self.out["refunds"].add_dict({
            "refund_seq": refund_seq, "order_seq": order_seq, "created_at": when,
            "kind": "cancellation" if kind == "cancellation" else "return",
            "line_count": len(line_parts), "item_count": items,
            "refunded_subtotal": sub_total if money else None, "refunded_tax": tax_total if money else None,
            "refunded_shipping": ship_part if money else None,
            "total_refunded": (sub_total + tax_total + ship_part) if money else None,
        })
        ctx.counts["reversal_events"] += 1
        return rows, excess


class _ReversalState:
    """What is left to reverse of one order, and how a refund amount maps onto it."""

    MAX_STATES = 50_000

    def __init__(self, lines: list[Line], ship: int, ship_tax: int, unitemized: bool | None, has_money: bool) -> None:
        self.lines = lines
        self.ship_left = ship
        self.ship_tax_left = ship_tax
        self.has_money = has_money
        self.unitemized_left: tuple[int, int] | None = None
        self.unitemized_type = "product"
        if unitemized:
            self.unitemized_left = (0, 0)

    def set_unitemized(self, net: int, tax: int, line_type: str = "product") -> None:
        """A row without a line item (the order of an export without lines, or an adjustment) to reverse."""
        self.unitemized_left = (net, tax)
        self.unitemized_type = line_type

    def remaining(self) -> int:
        total = sum(ln.net_left + ln.tax_left for ln in self.lines) + self.ship_left + self.ship_tax_left
        if self.unitemized_left:
            total += sum(self.unitemized_left)
        return total

    def plan(self, amount: int | None):  # type: ignore[no-untyped-def]
        """(line parts, shipping, shipping tax, unitemized part, excess, proportional?) or None."""
        if not self.has_money:
            if amount is not None:
                return None
            parts = [(ln, ln.units_left, 0, 0) for ln in self.lines if ln.units_left]
            for ln in self.lines:
                ln.units_left = 0
            return (parts, 0, 0, None, 0, False) if parts else None
        left = self.remaining()
        if amount is None or amount >= left:
            excess = 0 if amount is None else amount - left
            return self._take_all() + (excess, False)
        if amount <= 0:
            return None
        exact = self._subset(amount)
        if exact is not None:
            return exact + (0, False)
        return self._proportional(amount) + (0, True)

    def _take_all(self):  # type: ignore[no-untyped-def]
        parts = []
        for ln in self.lines:
            if ln.units_left or ln.net_left or ln.tax_left:
                parts.append((ln, ln.units_left, ln.net_left, ln.tax_left))
                ln.units_left, ln.net_left, ln.tax_left = 0, 0, 0
        ship, ship_tax = self.ship_left, self.ship_tax_left
        self.ship_left = self.ship_tax_left = 0
        unitemized = None
        if self.unitemized_left and any(self.unitemized_left):
            unitemized = self.unitemized_left
            self.unitemized_left = (0, 0)
        return parts, ship, ship_tax, unitemized

    def _subset(self, amount: int):  # type: ignore[no-untyped-def]
        """Whole units of lines (and optionally all of the shipping) adding up to `amount` exactly."""
        candidates = [ln for ln in self.lines if ln.units_left > 0]
        reach: dict[int, tuple[int, ...]] = {0: ()}
        for ln in candidates:
            value_left = ln.net_left + ln.tax_left
            nxt: dict[int, tuple[int, ...]] = {}
            for total, choice in reach.items():
                for k in range(ln.units_left + 1):
                    s = total + _scaled(value_left, k, ln.units_left)
                    if s <= amount and s not in nxt:
                        nxt[s] = (*choice, k)
                if len(nxt) > self.MAX_STATES:
                    return None
            reach = nxt
        ship_value = self.ship_left + self.ship_tax_left
        found = None
        with_ship = False
        if amount in reach:
            found = reach[amount]
        elif ship_value and amount - ship_value in reach:
            found = reach[amount - ship_value]
            with_ship = True
        if found is None or (not any(found) and not with_ship):
            return None
        parts = []
        for ln, k in zip(candidates, found, strict=True):
            if k == 0:
                continue
            total_part = _scaled(ln.net_left + ln.tax_left, k, ln.units_left)
            tax_part = ln.tax_left if k == ln.units_left else _scaled(ln.tax_left, k, ln.units_left)
            net_part = total_part - tax_part
            parts.append((ln, k, net_part, tax_part))
            ln.units_left -= k
            ln.net_left -= net_part
            ln.tax_left -= tax_part
        ship = ship_tax = 0
        if with_ship:
            ship, ship_tax = self.ship_left, self.ship_tax_left
            self.ship_left = self.ship_tax_left = 0
        return parts, ship, ship_tax, None

    def _proportional(self, amount: int):  # type: ignore[no-untyped-def]
        """The refund spread over everything left in proportion (units unknown: quantity 0)."""
        pieces: list[int] = []
        for ln in self.lines:
            pieces += [ln.net_left, ln.tax_left]
        pieces += [self.ship_left, self.ship_tax_left]
        if self.unitemized_left:
            pieces += list(self.unitemized_left)
        shares = _allocate(amount, [max(p, 0) for p in pieces])
        parts = []
        i = 0
        for ln in self.lines:
            net_part, tax_part = shares[i], shares[i + 1]
            i += 2
            if net_part or tax_part:
                parts.append((ln, 0, net_part, tax_part))
                ln.net_left -= net_part
                ln.tax_left -= tax_part
        ship, ship_tax = shares[i], shares[i + 1]
        i += 2
        self.ship_left -= ship
        self.ship_tax_left -= ship_tax
        unitemized = None
        if self.unitemized_left:
            unitemized = (shares[i], shares[i + 1])
            self.unitemized_left = (self.unitemized_left[0] - shares[i], self.unitemized_left[1] - shares[i + 1])
        return parts, ship, ship_tax, unitemized


def _email(text: str | None) -> str | None:
    if not text:
        return None
    s = text.strip().lower()
    return s or None


def _int_or_none(text: str | None) -> int | None:
    s = clean_text(text)
    if s is None or not (s.isascii() and s.isdigit()):  # '²' is a digit int() refuses
        return None
    value = int(s)
    return value if value < 2**63 else None


def _grouped(con: duckdb.DuckDBPyConnection, sql: str, key: str) -> Iterator[list[dict[str, Any]]]:
    """Rows of `sql` (sorted by `key`) grouped by equal `key`, streamed in record batches."""
    current: list[dict[str, Any]] = []
    current_key: Any = object()
    for row in arrow_rows(con, sql):
        k = row[key]
        if k != current_key and current:
            yield current
            current = []
        current_key = k
        current.append(row)
    if current:
        yield current


# ---------------------------------------------------------------------------------------------
# phase 2, columnar: the orders of the common kind built with Polars expressions, chunk by chunk


class _ReadAgainDiffers(Exception):
    """The export read again with Polars is not what staging read (_reread_order_rows)."""


class _Unsupported(Exception):
    """The columnar builder cannot take this import (a value it would have to parse is not clean):
    the row-by-row builder runs instead, with its exact errors and messages."""


# Every order's rows in one chunk: chunks end at an order boundary once they hold this many rows.
# Each chunk costs ~150 Polars steps whatever its size: at 50,000 rows the orders phase took ~18.8
# CPU s per million export lines, at 100,000 ~15.2 (peak RSS 1.49 -> 1.62 GB); 200,000 saved no more
# CPU and took 2.1 GB (alternating runs, 3 rounds each, 2026-12-03).
COLUMNAR_CHUNK_ROWS = 100_000
# The columnar path works in 64-bit integers, which wrap silently: an order whose amounts (lines,
# line discounts, export figures) add up to this many cents or more, or whose quantities add up
# beyond INTEGER, or whose tax rate is a finer fraction than COLUMNAR_RATE_TERMS, is built by
# OrderBuilder in Python's exact integers. Below it every product the allocations form (an amount
# times a weight, a line value times its units, an amount times a rate's numerator) stays under
# 10**18. (1,000,000 in the store currency: few orders are larger, and they are still built, one
# at a time.)
COLUMNAR_SAFE_CENTS = 10**8
COLUMNAR_RATE_TERMS = 10**9
# Off: every order goes through the row-by-row OrderBuilder (tests compare both paths).
COLUMNAR = os.environ.get("COMMERCEQL_SHOPIFY_ROWWISE", "") != "1"

def _polars_schema(types: dict[str, pa.DataType]) -> dict[str, Any]:
    import polars as pl

    out: dict[str, Any] = {}
    for name, typ in types.items():
        if typ == MONEY_CENTS or typ == TIMESTAMP_US or typ == pa.int64():
            out[name] = pl.Int64
        elif typ == pa.int32():
            out[name] = pl.Int32
        elif typ == pa.bool_():
            out[name] = pl.Boolean
        else:
            out[name] = pl.String
    return out


class _Collector:
    """What OrderBuilder writes for the orders the columnar path hands it (a Stager's add_dict)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add_dict(self, values: dict[str, Any]) -> None:
        self.rows.append(values)


class _FirstSeenCounter(Counter):
    """ctx.counts that remembers where each key was first counted, so the report lists the counts
    in the order the row-by-row builder counts them, whichever path built the order."""

    def __init__(self, ctx: _Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.first: dict[str, tuple[int, int, int]] = {}
        self._order = -1
        self._touched: dict[str, int] = {}

    def __setitem__(self, key: str, value: int) -> None:
        # counted by OrderBuilder for the order at ctx.position: where in it, by first touch
        if self._order != self.ctx.position:
            self._order, self._touched = self.ctx.position, {}
        step = self._touched.setdefault(key, len(self._touched))
        where = (self.ctx.position, step, 0)
        if key not in self.first or where < self.first[key]:
            self.first[key] = where
        super().__setitem__(key, value)

    def note(self, key: str, amount: int, where: tuple[int, int, int], *, always: bool = False) -> None:
        """Count `amount` found by the columnar path; `where` is (order seq, step, row) of its first."""
        if amount <= 0 and not always:
            return
        if key not in self.first or where < self.first[key]:
            self.first[key] = where
        super().__setitem__(key, self.get(key, 0) + amount)

    def ordered(self) -> Counter:
        out: Counter = Counter()
        for key in sorted(self, key=lambda k: self.first.get(k, (0, 0, 0))):
            out[key] = self[key]
        return out


def _write_part(folder: Path, part: int, frame: Any, types: dict[str, pa.DataType]) -> None:
    """One staged Parquet part with exactly a Stager's column types (cents as DECIMAL(18,2))."""
    import pyarrow.parquet as pq

    arrays = []
    for name, typ in types.items():
        column = frame.get_column(name).to_arrow()
        if typ == MONEY_CENTS:
            arrays.append(_cents_array(column))
        elif typ == TIMESTAMP_US:
            arrays.append(column.cast(pa.int64()).cast(TIMESTAMP_US))
        else:
            arrays.append(column.cast(typ))
    table = pa.Table.from_arrays(arrays, names=list(types))
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / f"part-{part:05d}.parquet", compression="lz4")


def _cents_array(column: pa.Array) -> pa.Array:
    """Integer cents as DECIMAL(18,2): the same 128-bit integers, read with two decimals."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    whole = column.cast(pa.int64()).cast(pa.decimal128(19, 0))  # same 16-byte layout
    return pa.Array.from_buffers(MONEY_CENTS, len(whole), whole.buffers(), whole.null_count, whole.offset)


# Printable ASCII that starts and ends with a visible character: str.strip() leaves it as it is.
_PLAIN = r"^[!-~]([ -~]*[!-~])?$"
# ... and does not start with the apostrophe clean_text takes off
_PLAIN_TEXT = r"^[!-&(-~]([ -~]*[!-~])?$"
# Amounts parse_cents reads on its fast path: 12, 12.50, -3.00
_PLAIN_CENTS = r"^-?[0-9]{1,15}\.[0-9]{2}$|^[0-9]{1,15}$"


def _fast_values(series: Any, function: Any) -> tuple[Any, Any] | None:
    """(mask, values) of the values of `series` Polars can compute exactly as `function` does, or None."""
    import polars as pl

    value = pl.col("v")
    empty = value == ""
    if function is clean_text:  # '' is None
        mask, result = value.str.contains(_PLAIN_TEXT) | empty, pl.when(~empty).then(value)
    elif function is _strip:
        mask, result = value.str.contains(_PLAIN) | empty, value
    elif function is _email:  # '' is None
        mask, result = value.str.contains(_PLAIN) | empty, pl.when(~empty).then(value.str.to_lowercase())
    elif function is _cents_of:
        mask = value.str.contains(_PLAIN_CENTS)
        whole = value.str.extract(r"^-?([0-9]+)", 1).cast(pl.Int64)
        fraction = value.str.extract(r"\.([0-9]{2})$", 1).cast(pl.Int64).fill_null(0)
        sign = pl.when(value.str.starts_with("-")).then(-1).otherwise(1)
        result = sign * (whole * 100 + fraction)
    elif function is _int_or_none:
        # up to 18 ASCII digits: below 2**63, and exactly what clean_text + int() read; '' is None
        digits = value.str.contains(r"^[0-9]{1,18}$")
        mask, result = digits | (value == ""), pl.when(digits).then(value.cast(pl.Int64, strict=False))
    elif function is is_scientific:
        # ASCII digits only (or nothing) cannot be a number in scientific notation
        mask, result = value.str.contains(r"^[0-9]*$"), pl.lit(False)
    else:
        return None
    frame = series.rename("v").to_frame().select(
        m=mask.fill_null(False), r=pl.when(mask.fill_null(False)).then(result))
    return frame.get_column("m"), frame.get_column("r")


def _strip(value: str | None) -> str:
    return (value or "").strip()


# Series at least this long are mapped over their distinct values first (see _mapped).
_DISTINCT_FIRST_ROWS = 1_000
# ... except by these, whose exact Polars expressions (_fast_values) cost less than hashing the values
_FAST_FIRST = frozenset({clean_text, _strip, _email, _int_or_none, is_scientific})


def _mapped(series: Any, function: Any, dtype: Any, *, fast: bool = True) -> Any:
    """`function` applied to every distinct value of `series` in Python (the row path's own parsers and
    cleaners, so results agree exactly), put back in every place (_broadcast). Raises _Unsupported on a bad value.

    Values whose result Polars computes exactly (plain ASCII text, amounts like 12.50) skip Python.
    """
    import polars as pl

    if fast and series.len() >= _DISTINCT_FIRST_ROWS and function not in _FAST_FIRST:
        # most columns repeat their values (prices, SKUs, statuses, the order fields on every line
        # row): hashing them is far cheaper than the fast path's regular expressions on every row,
        # so the distinct values are mapped (fast path, then Python) and the results put back
        distinct = series.unique(maintain_order=False)
        if distinct.len() * 2 <= series.len():
            return _broadcast(series, distinct, _mapped(distinct, function, dtype))
    computed = _fast_values(series, function) if fast and series.dtype == pl.String else None
    if computed is not None:
        mask, values = computed
        values = values.cast(dtype).rename(series.name)
        if bool(mask.all()):
            return values
        # the other values (None among them) through `function`, put in their places
        at = (~mask).arg_true()
        return values.scatter(at, _mapped(series.gather(at), function, dtype, fast=False))
    unique = series.unique(maintain_order=False)
    values = unique.to_list()
    try:
        results = [function(v) for v in values]
    except Exception as exc:  # a value the row path would refuse (or fail on): it runs instead
        raise _Unsupported(str(exc)) from None
    return _broadcast(series, pl.Series(values, dtype=series.dtype), pl.Series(results, dtype=dtype))


def _broadcast(series: Any, distinct: Any, results: Any) -> Any:
    """`results[i]` in every place of `series` that holds `distinct[i]` (`distinct`: each value of
    `series` once, None among them if `series` has None).

    Text is looked up by its position among the distinct values (its code as an Enum of them: one
    hash lookup per row, then a gather), which costs about half of a left join that keeps the
    rows' order; other types are joined.
    """
    import polars as pl

    if series.dtype != pl.String:
        table = pl.DataFrame({"k": distinct, "v": results})
        joined = series.rename("k").to_frame().join(table, on="k", how="left", nulls_equal=True,
                                                    maintain_order="left")
        return joined.get_column("v").rename(series.name)
    present = distinct.is_not_null()
    codes = series.cast(pl.Enum(distinct.filter(present))).to_physical()
    values = results.filter(present).gather(codes)  # a None code (a None value) gathers None
    if series.null_count():
        for_none = results.filter(~present)
        if for_none.len() and for_none[0] is not None:
            values = values.scatter(series.is_null().arg_true(), for_none[0])
    return values.rename(series.name)


def _cents_of(text: str | None) -> int | None:
    return parse_cents(text)


def _allocate_columns(items: Any, amount: str | Sequence[str], weight: str, out: str | Sequence[str]) -> Any:
    """`_allocate` over every group (`_grp`) of `items` at once: `amount` (per item, equal within a
    group) split in proportion to `weight`, largest remainder first, ties by `_idx`. Returns `items`
    sorted by (`_grp`, `_idx`) with `out` added. Several amounts split by the same weight (a
    sequence of `amount` and of `out`) share the sort and the group statistics.

    Only the groups that really split an amount (amount not 0, several items, some weight) are
    sorted by remainder; the others (most of them: no discount, no duties, one line) take their
    value straight from the rules. The group statistics are windows over a narrow frame and the
    split values are scattered back by position: no join or second sort of the wide `items`.
    """
    import polars as pl

    amounts = [amount] if isinstance(amount, str) else list(amount)
    outs = [out] if isinstance(out, str) else list(out)
    c = pl.col
    frame = items.sort(["_grp", "_idx"])
    stats = frame.select(
        "_grp", "_idx", _w=c(weight),
        _a_total=c(weight).sum().over("_grp"), _a_n=pl.len().over("_grp"), _a_min=c("_idx").min().over("_grp"),
        _at=pl.int_range(pl.len(), dtype=pl.Int64),
    )
    hard = ((c("_a") != 0) & (c("_a_n") > 1) & (c("_a_total") > 0)).fill_null(False)
    direct = (
        pl.when(c("_a") == 0).then(0)
        .when(c("_a_n") == 1).then(c("_a"))
        .when(c("_a_total") == 0).then(pl.when(c("_idx") == c("_a_min")).then(c("_a")).otherwise(0))
        .otherwise(None)
    )
    shares = []
    for amount_column, out_column in zip(amounts, outs, strict=True):
        x = stats.with_columns(frame.get_column(amount_column).alias("_a"))
        x = x.with_columns(_value=direct.cast(pl.Int64), _hard=hard)
        values = x.get_column("_value")
        split = x.filter(c("_hard"))
        if split.height:
            a = c("_a").abs()
            split = split.with_columns(
                _a_share=a * c("_w") // c("_a_total"), _a_rem=a * c("_w") % c("_a_total"),
            ).with_columns(_a_left=a - c("_a_share").sum().over("_grp"))
            split = split.sort(["_grp", "_a_rem", "_idx"], descending=[False, True, False]).with_columns(
                _a_pos=pl.int_range(pl.len()).over("_grp"))
            sign = pl.when(c("_a") < 0).then(-1).otherwise(1)
            split = split.select(
                "_at", _split=(sign * (c("_a_share") + (c("_a_pos") < c("_a_left")).cast(pl.Int64))).cast(pl.Int64))
            values = values.scatter(split.get_column("_at"), split.get_column("_split"))
        shares.append(values.alias(out_column))
    return frame.with_columns(shares)


def _tax_rate_of(key: tuple[Any, ...]) -> tuple[int, int] | None:
    """The order's combined tax rate (see _tax_rate) as an exact fraction, from its tax line names and
    whether each line has an amount; None without a rate."""
    names, amounts = key[:5], key[5:]
    total = Decimal(0)
    found = False
    for name, has_amount in zip(names, amounts, strict=True):
        if not name:
            continue
        match = _RATE.search(name)
        if match is None:
            if has_amount:
                return None
            continue
        total += Decimal(match.group(1)) / 100
        found = True
    if not (found and total > 0):
        return None
    numerator, denominator = total.as_integer_ratio()
    return numerator, denominator


def _has_amount(value: str | None) -> bool:
    text = clean_text(value)
    return bool(text) and text.strip("0.") != ""


def _add_text_bytes(totals: dict[str, int], frame: Any) -> None:
    """Adds the UTF-8 bytes of each of `totals`' columns in `frame` (how staging and the re-read
    check that they read the same text)."""
    import polars as pl

    if totals:
        sums = frame.select(pl.col(k).str.len_bytes().sum() for k in totals).row(0)
        for k, bytes_read in zip(list(totals), sums, strict=True):
            totals[k] += int(bytes_read or 0)


def _reread_order_rows(st: StagedFile) -> Iterator[Any]:
    """The rows of one plain export read again with Polars' CSV reader, as `_union` selects them.

    Reading the export a second time through DuckDB (the staged view) cost ~4.5 CPU s per million
    lines, on one thread (its POSITIONAL JOIN with the line numbers), most of it converting the
    text columns to Arrow; Polars reads them straight into its own frames in half of that. Only
    for an export the staging pass found plain (record starts known from its bytes, every record
    read by DuckDB's strict reader): there both readers split the records alike, and the text
    bytes of every column staging read are compared at the end. A difference (which should not
    happen) raises _ReadAgainDiffers and the orders are built again from DuckDB's reading.
    """
    import polars as pl

    columns = st.classified.columns
    width = len(st.classified.header)
    frame = pl.scan_csv(st.classified.path, has_header=True, new_columns=[f"c{i}" for i in range(width)],
                        empty_string_is_null=False, quote_char='"', infer_schema=False, glob=False,
                        encoding="utf8", raise_if_empty=False)
    select = [pl.col(f"c{columns[k]}").alias(k) if k in columns else pl.lit(None, dtype=pl.String).alias(k)
              for k in ORDER_COLUMNS]
    frame = frame.select(*select, pl.lit(st.index, dtype=pl.Int32).alias("_file"))
    starts = st.record_starts
    text_bytes = dict.fromkeys(st.text_bytes, 0)
    at = 0
    try:
        for batch in frame.collect_batches(chunk_size=50_000):
            n = batch.height
            if at + n > len(starts):
                raise _ReadAgainDiffers("more records than staging read")
            _add_text_bytes(text_bytes, batch)
            yield batch.with_columns(pl.Series("_line", starts[at:at + n], dtype=pl.Int64))
            at += n
    except pl.exceptions.PolarsError as exc:
        raise _ReadAgainDiffers(str(exc)) from None
    if at != len(starts) or text_bytes != st.text_bytes:
        raise _ReadAgainDiffers("the export read again differs from the staged reading")


class ColumnarOrders:
    """Builds the orders of the common kind with Polars expressions, the same numbers as OrderBuilder.

    An order is built here when its rows are one order of one file with its order-level row, in the
    store currency, not a test order, and reversed at most once and wholly (a cancellation, or a
    refund of the whole booked total). Every other order (name reused, orphan rows, overlapping
    exports, another currency, test orders, refund transactions, partial refunds) is handed to
    OrderBuilder in stream order, so the report's skipped rows and warnings come in the same order.
    """

    def __init__(self, ctx: _Context, work: Path, order_files: list[StagedFile], *, reread_csv: bool = False) -> None:
        import polars as pl

        self.pl = pl
        self.ctx = ctx
        self.work = work
        self.part = 0
        self.collectors = {key: _Collector() for key in ("orders", "lines", "sales", "refunds", "refund_lines")}
        self.builder = OrderBuilder(ctx, self.collectors)  # type: ignore[arg-type]
        self.types = STAGE_COLUMNS
        columns = {st.index: set(st.classified.columns) for st in order_files}
        self.file_paths = {st.index: st.source.path for st in order_files}
        self.order_files = order_files
        self.reread_csv = reread_csv and self.can_reread_csv(order_files)

        def files_with(*keys: str) -> list[int]:
            return [i for i, present in columns.items() if any(k in present for k in keys)]

        # the columnar path needs line items with prices (has_lines and has_prices in OrderBuilder)
        self.supported_files = [i for i in files_with("li_price") if i in files_with("li_name", "li_qty")]
        self.files_with_total = files_with("total")
        self.refund_names = set(ctx.refund_events)
        self.pending: Any = None  # the Future of the chunk whose parts the writer thread is writing

    @staticmethod
    def can_reread_csv(order_files: list[StagedFile]) -> bool:
        """Whether the order rows can be read again from the export itself (see _reread_order_rows)."""
        return (len(order_files) == 1 and order_files[0].contiguous and order_files[0].record_starts is not None)

    # -- the stream --------------------------------------------------------------------------
    def run(self, con: duckdb.DuckDBPyConnection, grouped_sql: str, bar: Progress) -> dict[str, str]:
        # one writer thread: a chunk's parts are written while the next chunk is built
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="commerceql-parts")
        try:
            self.stream(con, grouped_sql, bar)
        finally:
            # also when a chunk raises (_Unsupported): the caller deletes the parts next, so no write
            # may still be under way
            try:
                self.wait_written()
            finally:
                self.writer.shutdown()
        pl = self.pl
        staged = {}
        for key, types in self.types.items():
            folder = self.work / key
            if not folder.exists() or not any(folder.glob("*.parquet")):
                _write_part(folder, 0, pl.DataFrame(schema=_polars_schema(types)), types)
            staged[key] = f"read_parquet({sql_literal(glob_path(folder) + '/*.parquet')})"
        return staged

    def write_parts(self, frames: dict[str, Any]) -> None:
        """Hand this chunk's parts to the writer thread (pyarrow's Parquet writer releases the GIL).
        Waits for the previous chunk's first, so at most one chunk's frames wait: memory stays bounded."""
        self.wait_written()
        jobs = [(self.work / key, self.part, frame, self.types[key]) for key, frame in frames.items() if frame.height]

        def write() -> None:
            for job in jobs:
                _write_part(*job)

        self.pending = self.writer.submit(write)

    def wait_written(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()  # a failed write raises here, in the building thread

    def stream(self, con: duckdb.DuckDBPyConnection, grouped_sql: str, bar: Progress) -> None:
        pl = self.pl
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        row = 1
        done = 0
        carry = None
        for batch in self.batches(con, grouped_sql):
            pending.append(batch)
            pending_rows += batch.height
            if pending_rows < COLUMNAR_CHUNK_ROWS:
                continue
            frame = pl.concat(pending) if len(pending) > 1 else pending[0]
            pending, pending_rows = [], 0
            if carry is not None:
                frame = pl.concat([carry, frame])
            names = frame.get_column("name")
            changes = (names.ne_missing(names.shift(1))).arg_true()
            cut = int(changes[-1]) if len(changes) else 0
            if cut == 0:
                carry = frame
                continue
            chunk, carry = frame.slice(0, cut), frame.slice(cut)
            # one contiguous buffer per column: filters and gathers over a frame made of Arrow batches
            # (and the carried rows) are several times slower than the copy
            chunk = chunk.rechunk().with_columns(pl.int_range(row, row + chunk.height, dtype=pl.Int64).alias("_row"))
            row += chunk.height
            self.chunk(chunk)
            done += chunk.height
            bar.update(done)
        if pending:
            frame = pl.concat(pending)
            carry = frame if carry is None else pl.concat([carry, frame])
        if carry is not None and carry.height:
            chunk = carry.rechunk().with_columns(pl.int_range(row, row + carry.height, dtype=pl.Int64).alias("_row"))
            self.chunk(chunk)

    def batches(self, con: duckdb.DuckDBPyConnection, grouped_sql: str) -> Iterator[Any]:
        """The order rows as Polars frames, in stream order (the columns of `grouped_sql`)."""
        pl = self.pl
        if self.reread_csv:
            yield from _reread_order_rows(self.order_files[0])
            return
        for batch in arrow_batches(con, grouped_sql, batch_size=50_000):
            yield pl.from_arrow(batch)

    # -- one chunk of whole orders -----------------------------------------------------------
    def chunk(self, df: Any) -> None:
        pl = self.pl
        ctx = self.ctx

        def truthy(key: str) -> Any:
            return pl.col(key).is_not_null() & (pl.col(key) != "")

        df = df.with_columns(
            _grp=pl.col("name").ne_missing(pl.col("name").shift(1)).cum_sum().cast(pl.Int64),
            _head=pl.any_horizontal([truthy(k) for k in HEAD_KEYS]),
            _name=_mapped(df.get_column("name"), _strip, pl.String),
        )
        currency = _mapped(df.get_column("currency"), lambda v: (v or "").strip().upper() or ctx.currency, pl.String)
        payment = _mapped(df.get_column("payment_method"), lambda v: "bogus" in (v or "").lower(), pl.Boolean)
        df = df.with_columns(_currency=currency, _test=payment)
        groups = df.group_by("_grp").agg(
            _heads=pl.col("_head").sum(), _files=pl.col("_file").n_unique(), _name0=pl.col("_name").first(),
        )
        heads = df.select("_grp", "_currency", "_test", "_file", "_name", "_head").filter(pl.col("_head"))
        candidate = groups.join(heads.unique("_grp", keep="first"), on="_grp", how="left").filter(
            (pl.col("_heads") == 1) & (pl.col("_files") == 1) & (pl.col("_name0") != "")
            & (pl.col("_currency") == ctx.currency) & ~pl.col("_test")
            & pl.col("_file").is_in(pl.Series(self.supported_files, dtype=pl.Int32).implode())
            & ~pl.col("_name").is_in(pl.Series(sorted(self.refund_names), dtype=pl.String).implode())
        ).get_column("_grp")
        simple = df.select(*self.SIMPLE_INPUT).filter(pl.col("_grp").is_in(candidate.implode()))
        built = self.simple_orders(simple) if simple.height else None
        simple_groups = built["orders"].get_column("_grp") if built is not None else pl.Series([], dtype=pl.Int64)
        rows_view = df.filter(~pl.col("_grp").is_in(simple_groups.implode()))
        self.complex_orders(rows_view)
        frames = {key: self.collected(key) for key in self.collectors}
        if built is not None:
            for key in frames:
                frames[key] = pl.concat([frames[key], built[key].select(frames[key].columns)], how="vertical")
        sort_keys = {"orders": ["order_seq"], "lines": ["line_seq"], "sales": ["order_seq", "_k"],
                     "refunds": ["refund_seq"], "refund_lines": ["refund_seq", "_k"]}
        self.write_parts({key: frame.sort(sort_keys[key]) for key, frame in frames.items()})
        self.part += 1

    def collected(self, key: str) -> Any:
        pl = self.pl
        schema = _polars_schema(self.types[key])
        names = list(schema)
        rows = [tuple(r.get(n) for n in names) for r in self.collectors[key].rows]
        self.collectors[key].rows = []
        frame = pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
        if key in ("sales", "refund_lines"):
            frame = frame.with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("_k"))
        return frame

    def complex_orders(self, rows_view: Any) -> None:
        if not rows_view.height:
            return
        keep = [c for c in rows_view.columns if not c.startswith("_") or c in ("_file", "_line", "_row")]
        group: list[dict[str, Any]] = []
        current = None
        for row, grp in zip(rows_view.select(keep).iter_rows(named=True),
                            rows_view.get_column("_grp").to_list(), strict=True):
            if grp != current and group:
                self.complex_group(group)
                group = []
            current = grp
            group.append(row)
        if group:
            self.complex_group(group)

    def complex_group(self, group: list[dict[str, Any]]) -> None:
        ctx = self.ctx
        ctx.position = group[0]["_row"]
        if not (group[0].get("name") or "").strip():
            for r in group:
                ctx.report.skip(ctx.path(r["_file"]), r["_line"], "row without an order Name")
            return
        for rows in _split_groups(group, ctx):
            ctx.position = rows[0]["_row"]
            self.builder.build(rows)

    # -- the orders of the common kind -------------------------------------------------------
    # the export columns each part of simple_orders reads (a missing one is a KeyError, not a wrong number)
    LINE_INPUT = ("_grp", "_row", "_file", "_line", "li_name", "li_qty", "li_price", "li_sku",
                  "li_requires_shipping", "vendor", "li_compare_at", "li_discount")
    HEAD_TAXES = tuple(f"tax{i}_name" for i in range(1, 6)) + tuple(f"tax{i}_value" for i in range(1, 6))
    HEAD_TEXT = ("id", "billing_name", "shipping_name", "financial_status", "fulfillment_status", "source",
                 "discount_code", "shipping_method", "billing_country", "billing_province_name", "billing_province",
                 "billing_city", "shipping_country", "shipping_province_name", "shipping_province", "shipping_city",
                 "accepts_marketing")
    HEAD_INPUT = ("_grp", "_file", "_line", "_name", "_currency", "_head", "email", *ORDER_MONEY, *ORDER_TIMESTAMPS,
                  *dict.fromkeys(HEAD_TEXT + HEAD_TAXES))

    SIMPLE_INPUT = tuple(dict.fromkeys(("_row", *LINE_INPUT, *HEAD_INPUT)))

    def simple_orders(self, df: Any) -> dict[str, Any] | None:
        pl = self.pl
        ctx = self.ctx
        counts: _FirstSeenCounter = ctx.counts  # type: ignore[assignment]

        parse_ts = ctx.parse_ts
        stripped = _strip
        # Narrow frames: `df` has every export column (~150), and each filter, join or sort copies
        # every column it carries, so each step takes only the columns it reads.
        line_rows = df.select(*self.LINE_INPUT).with_columns(
            _li_name=_mapped(df.get_column("li_name"), stripped, pl.String),
            _li_qty_text=_mapped(df.get_column("li_qty"), stripped, pl.String),
        )
        line_rows = line_rows.filter((pl.col("_li_name") != "") | (pl.col("_li_qty_text") != ""))
        # ---- line rows
        lf = line_rows
        qty = _mapped(lf.get_column("li_qty"), parse_int, pl.Int64)
        if qty.null_count():
            raise _Unsupported("a line item without a quantity")
        lf = lf.with_columns(
            _qty=qty,
            _price=_mapped(lf.get_column("li_price"), _cents_of, pl.Int64).fill_null(0),
            _sku=_mapped(lf.get_column("li_sku"), clean_text, pl.String),
            _requires=_mapped(lf.get_column("li_requires_shipping"), parse_bool, pl.Boolean),
        )
        too_large = (pl.col("_price") != 0) & (pl.col("_qty").abs() > (MAX_CENTS - 1) // pl.col("_price").abs())
        if lf.select(too_large.any()).item():  # beyond the store's amounts (and 64-bit cents): the row path says where
            raise _Unsupported("a line amount too large")
        lf = lf.with_columns(_amount=pl.col("_qty") * pl.col("_price"))
        lower = _mapped(lf.get_column("_li_name"), lambda v: v.lower(), pl.String)
        lf = lf.with_columns(_lower=lower).with_columns(
            _tip=pl.col("_lower").is_in(["tip", "tips"]) & pl.col("_sku").is_null(),
        ).with_columns(
            _gift=~pl.col("_tip") & pl.col("_lower").str.contains("gift card", literal=True)
            & pl.col("_requires").ne_missing(True),
        )
        tip_rows = lf.filter(pl.col("_tip")).select("_grp", "_row")
        gift_rows = lf.filter(pl.col("_gift")).select("_grp", "_row")
        booked = lf.filter(~pl.col("_tip") & ~pl.col("_gift"))
        booked = booked.select(
            "_grp", "_row", "_file", "_line", "_qty", "_price", "_sku",
            _title=pl.when(pl.col("_li_name") == "").then(pl.lit("(no title)")).otherwise(pl.col("_li_name")),
            _vendor=_mapped(booked.get_column("vendor"), clean_text, pl.String),
            _compare_at=_mapped(booked.get_column("li_compare_at"), _cents_of, pl.Int64),
            _ld=_mapped(booked.get_column("li_discount"), _cents_of, pl.Int64).fill_null(0),
        ).with_columns(_gross=pl.col("_qty") * pl.col("_price"))
        per_line = lf.group_by("_grp").agg(
            _lines_gross_export=pl.col("_amount").sum(),
            _tips=pl.col("_amount").filter(pl.col("_tip")).sum(),
            _gift_cards=pl.col("_amount").filter(pl.col("_gift")).sum(),
            _size=pl.col("_amount").abs().cast(pl.Float64).sum(), _units=pl.col("_qty").abs().sum(),
        )
        per_booked = booked.group_by("_grp").agg(
            _G=pl.col("_gross").sum(), _LD=pl.col("_ld").sum(), _nB=pl.len(), _items=pl.col("_qty").sum(),
            _ld_size=pl.col("_ld").abs().cast(pl.Float64).sum(),
        )
        # ---- order-level rows
        heads = df.select(*self.HEAD_INPUT).filter(pl.col("_head"))
        emails = _mapped(df.get_column("email"), _email, pl.String)
        first_email = df.select("_grp", _em=emails).filter(pl.col("_em").is_not_null()).group_by("_grp").agg(
            _first_email=pl.col("_em").first())
        # the order fields only order_records and shipping_tax_included read wait aside (keyed by
        # _grp) instead of riding through every join of `o`
        self.head_text = heads.select("_grp", *self.HEAD_TEXT)
        self.head_taxes = heads.select("_grp", *self.HEAD_TAXES)
        o = heads.select(
            "_grp", "_file", "_line", "_name", "_currency",
            **{f"_m_{k}": _mapped(heads.get_column(k), _cents_of, pl.Int64) for k in ORDER_MONEY},
            _created=self.timestamps(heads.get_column("created_at"), parse_ts),
            _paid=self.timestamps(heads.get_column("paid_at"), parse_ts),
            _fulfilled=self.timestamps(heads.get_column("fulfilled_at"), parse_ts),
            _cancelled=self.timestamps(heads.get_column("cancelled_at"), parse_ts),
            _status=_mapped(heads.get_column("financial_status"), lambda v: (v or "").strip().lower(), pl.String),
            _head_email=_mapped(heads.get_column("email"), _email, pl.String),
        )
        if o.get_column("_created").null_count():
            raise _Unsupported("an order without a creation date")
        o = o.join(per_line, on="_grp", how="left").join(per_booked, on="_grp", how="left").join(
            first_email, on="_grp", how="left")
        o = o.with_columns(
            pl.col("_lines_gross_export", "_tips", "_gift_cards", "_G", "_LD", "_nB", "_items", "_units",
                   "_size", "_ld_size").fill_null(0),
        ).with_columns(
            _total=pl.when(pl.col("_m_total").is_null() & pl.col("_file").is_in(self.files_with_total))
            .then(0).otherwise(pl.col("_m_total")),
        )
        c = pl.col
        da = c("_m_discount_amount")
        shipping0 = c("_m_shipping").fill_null(0)
        taxes0 = c("_m_taxes").fill_null(0)
        duties0 = c("_m_duties").fill_null(0)
        o = o.with_columns(
            _sub_used=pl.when(c("_m_subtotal").is_null()).then(c("_G") - da.fill_null(0))
            .otherwise(c("_m_subtotal") - c("_gift_cards")),
            _total_goods=c("_total") - c("_gift_cards"),
            _ship0=shipping0, _taxes0=taxes0, _duties0=duties0,
        ).with_columns(_pd0=c("_G") - c("_sub_used")).with_columns(
            _lvs=(c("_pd0") < 0) | (da.is_not_null() & (c("_pd0") > da)),
        ).with_columns(
            _pdisc=pl.when(c("_lvs")).then(pl.min_horizontal(pl.max_horizontal(da.fill_null(0), 0), c("_G")))
            .otherwise(c("_pd0")),
            _sdisc=pl.when(~c("_lvs") & da.is_not_null() & (da > c("_pd0")))
            .then(pl.min_horizontal(da - c("_pd0"), c("_ship0"))).otherwise(0),
        ).with_columns(
            _adjustment=c("_sub_used") - (c("_G") - c("_pdisc")),
            _odisc=c("_pdisc") - c("_LD"),
        )
        # ---- _tax_mode
        ship_arg = c("_ship0") - c("_sdisc")
        base = c("_sub_used") + ship_arg + c("_duties0") + c("_tips")
        infer = da.is_null() & (ship_arg != 0)
        opt1 = c("_total_goods") == base + c("_taxes0")
        opt2 = (c("_taxes0") != 0) & (c("_total_goods") == base)
        opt3 = infer & (c("_total_goods") == base - ship_arg + c("_taxes0"))
        opt4 = infer & (c("_taxes0") != 0) & (c("_total_goods") == base - ship_arg)
        o = o.with_columns(
            _has_total=c("_total_goods").is_not_null(),
            _o1=opt1.fill_null(False), _o2=opt2.fill_null(False), _o3=opt3.fill_null(False),
            _o4=opt4.fill_null(False), _ship_arg=ship_arg, _base=base,
        ).with_columns(
            _matched=c("_o1") | c("_o2") | c("_o3") | c("_o4"),
        ).with_columns(
            _included=c("_has_total") & ~c("_o1") & (c("_o2") | (~c("_o3") & c("_o4"))),
            _inferred=pl.when(c("_has_total") & ~c("_o1") & ~c("_o2") & (c("_o3") | c("_o4")))
            .then(c("_ship_arg")).otherwise(0),
            _residual=pl.when(c("_has_total") & ~c("_matched"))
            .then(c("_total_goods") - (c("_base") + c("_taxes0"))).otherwise(0),
            _count_inferred=c("_has_total") & ~c("_o1") & ~c("_o2") & (c("_o3") | c("_o4")),
            _count_residual=c("_has_total") & ~c("_matched"),
        ).with_columns(_ship_charge0=c("_ship0") - c("_sdisc") - c("_inferred"))
        # ---- the tax on shipping included in tax-inclusive prices
        o = self.shipping_tax_included(o)
        # orders too large for exact 64-bit arithmetic (see COLUMNAR_SAFE_CENTS) are OrderBuilder's:
        # every frame below is joined to `o`, so they leave all of them here
        size = pl.sum_horizontal(c("_size"), c("_ld_size"),
                                 *(c(f"_m_{k}").abs().cast(pl.Float64).fill_null(0) for k in ORDER_MONEY))
        o = o.filter((size < COLUMNAR_SAFE_CENTS) & (c("_units") <= MAX_INTEGER) & ~c("_too_fine"))
        o = o.with_columns(_goods_taxes=c("_taxes0") - c("_sti"))
        # ---- discounts per line
        b = booked.join(o.select("_grp", "_odisc", "_pdisc"), on="_grp", how="inner").with_columns(
            _idx=c("_row"),
            _amt=pl.when(c("_odisc") >= 0).then(c("_odisc")).otherwise(c("_pdisc")),
            _w=pl.when(c("_odisc") >= 0).then(pl.max_horizontal(c("_gross") - c("_ld"), 0))
            .otherwise(pl.max_horizontal(c("_ld"), 0)),
        )
        b = _allocate_columns(b, "_amt", "_w", "_share")
        b = b.with_columns(
            _disc=pl.when(c("_odisc") >= 0).then(c("_ld") + c("_share")).otherwise(c("_share")),
        ).with_columns(_net=c("_gross") - c("_disc"))
        # ---- taxes and duties per line (and the adjustment), in proportion to net sales
        adj_items = o.select("_grp", "_adjustment").with_columns(
            _idx=pl.lit(1 << 62, dtype=pl.Int64), _net=c("_adjustment"), _is_adj=pl.lit(True))
        items = pl.concat([
            b.select("_grp", "_idx", "_net").with_columns(_is_adj=pl.lit(False)),
            adj_items.select("_grp", "_idx", "_net", "_is_adj"),
        ]).join(o.select("_grp", "_goods_taxes", "_duties0"), on="_grp", how="inner").with_columns(
            _w=pl.max_horizontal(c("_net"), 0))
        items = items.with_columns(_W=c("_w").sum().over("_grp"))
        items = _allocate_columns(items, ("_goods_taxes", "_duties0"), "_w", ("_tshare", "_dshare"))
        line_taxes = items.filter(~c("_is_adj")).select("_grp", "_idx", "_tshare", "_dshare", "_W")
        adj_taxes = items.filter(c("_is_adj")).select("_grp", _adj_t=c("_tshare"), _adj_d=c("_dshare"),
                                                      _W=c("_W"))
        o = o.join(adj_taxes, on="_grp", how="left")
        b = b.join(line_taxes, on=["_grp", "_idx"], how="left").join(
            o.select("_grp", "_included"), on="_grp", how="left")
        positive = c("_W") > 0
        b = b.with_columns(
            _tax=pl.when(positive).then(c("_tshare") + c("_dshare")).otherwise(0),
            _gross=pl.when(positive & c("_included")).then(c("_gross") - c("_tshare")).otherwise(c("_gross")),
            _net=pl.when(positive & c("_included")).then(c("_net") - c("_tshare")).otherwise(c("_net")),
        )
        o = o.with_columns(
            _adj_tax=pl.when(positive).then(c("_adj_t") + c("_adj_d")).otherwise(0),
            _adj_gross=pl.when(positive).then(c("_adjustment") - pl.when(c("_included")).then(c("_adj_t"))
                                              .otherwise(0)).otherwise(c("_adjustment")),
            _ship_tax=pl.when(positive).then(c("_sti")).otherwise(c("_taxes0") + c("_duties0")),
            _ship_charge=pl.when(positive).then(c("_ship_charge0") - c("_sti"))
            .otherwise(pl.when(c("_included")).then(c("_ship_charge0") - c("_taxes0"))
                       .otherwise(c("_ship_charge0"))),
        )
        sums = b.group_by("_grp").agg(_sum_gross=c("_gross").sum(), _sum_disc=c("_disc").sum(),
                                      _sum_tax=c("_tax").sum(), _sum_total=(c("_net") + c("_tax")).sum())
        o = o.join(sums, on="_grp", how="left").with_columns(
            pl.col("_sum_gross", "_sum_disc", "_sum_tax", "_sum_total").fill_null(0))
        o = o.with_columns(
            _booked=c("_sum_total")
            + pl.when(c("_adjustment") != 0).then(c("_adj_gross") + c("_adj_tax")).otherwise(0)
            + c("_ship_tax") + c("_ship_charge"),
        )
        # ---- reversals: a cancellation, or a refund of everything (partial refunds: OrderBuilder)
        refunded = c("_m_refunded_amount")
        last_known = pl.max_horizontal(c("_created"), c("_paid"), c("_fulfilled"))
        amount_none = (c("_status") == "refunded") & (refunded >= c("_booked"))
        o = o.with_columns(
            _cancel=c("_cancelled").is_not_null(),
            _refund=c("_cancelled").is_null() & refunded.is_not_null() & (refunded != 0),
        ).with_columns(
            _amount=pl.when(c("_refund") & ~amount_none).then(refunded).otherwise(None),
            _when=pl.max_horizontal(pl.when(c("_cancel")).then(c("_cancelled")).otherwise(last_known),
                                    c("_created")),
        ).with_columns(
            _take_all=c("_cancel") | (c("_refund") & (c("_amount").is_null() | (c("_amount") >= c("_booked")))),
            _partial=c("_refund") & c("_amount").is_not_null() & (c("_amount") < c("_booked"))
            & (c("_amount") > 0),
        )
        first_rows = df.group_by("_grp").agg(_first_row=c("_row").min())
        o = o.join(first_rows, on="_grp", how="left").with_columns(_order_seq=c("_first_row"))
        # partial refunds: the plan _ReversalState makes (whole units, else in proportion), where the
        # plan can be computed here; the others go to OrderBuilder
        plans = self.partial_plans(o.filter(c("_partial")), b)
        planned = plans[0].get_column("_grp")
        unplanned = o.filter(c("_partial") & ~c("_grp").is_in(planned.implode())).get_column("_grp")
        if unplanned.len():
            keep = ~c("_grp").is_in(unplanned.implode())
            o, b, tip_rows, gift_rows = o.filter(keep), b.filter(keep), tip_rows.filter(keep), gift_rows.filter(keep)
        o = o.join(plans[0], on="_grp", how="left").with_columns(
            _planned=c("_partial"),
            _excess=pl.when(c("_take_all") & c("_amount").is_not_null()).then(c("_amount") - c("_booked"))
            .otherwise(0),
            _rule=pl.when(c("_cancel")).then(pl.lit("cancellation date"))
            .when(c("_refund")).then(pl.lit("last known date (no refund date in the export)"))
            .otherwise(pl.lit(None, dtype=pl.String)),
        )
        b = b.join(o.select("_grp", "_order_seq", "_created", "_take_all", "_when", "_cancel"), on="_grp",
                   how="inner")
        # a reversal of everything takes every line with something left, the adjustment and the shipping
        taken = b.filter(c("_take_all") & ((c("_qty") != 0) | (c("_net") != 0) | (c("_tax") != 0))).select(
            "_grp", "_row", _kq=c("_qty"), _np=c("_net"), _tp=c("_tax"))
        parts = pl.concat([taken, plans[1]], how="vertical").join(
            o.select("_grp", "_order_seq", "_when", "_cancel"), on="_grp", how="inner").sort("_row")
        part_sums = parts.group_by("_grp").agg(
            _p_lines=pl.len(), _p_items=c("_kq").sum(), _p_net=c("_np").sum(), _p_tax=c("_tp").sum())
        o = o.join(part_sums, on="_grp", how="left").with_columns(
            pl.col("_p_lines", "_p_items", "_p_net", "_p_tax").fill_null(0),
        ).with_columns(
            _unitemized=pl.when(c("_planned")).then(c("_ru"))
            .otherwise(c("_take_all") & (c("_adjustment") != 0) & ((c("_adj_gross") != 0) | (c("_adj_tax") != 0))),
            _rs=pl.when(c("_planned")).then(c("_rs")).when(c("_take_all")).then(c("_ship_charge")).otherwise(0),
            _rst=pl.when(c("_planned")).then(c("_rst")).when(c("_take_all")).then(c("_ship_tax")).otherwise(0),
        ).with_columns(
            _ru_net=pl.when(c("_planned")).then(c("_ru_net")).otherwise(c("_adj_gross")),
            _ru_tax=pl.when(c("_planned")).then(c("_ru_tax")).otherwise(c("_adj_tax")),
            _ship_part=(c("_take_all") | c("_planned")) & ((c("_rs") != 0) | (c("_rst") != 0)),
        ).with_columns(
            _reversal=(c("_take_all") | c("_planned")) & ((c("_p_lines") > 0) | c("_unitemized") | c("_ship_part")),
        ).with_columns(
            _refund_seq=c("_order_seq") * REFUND_SEQ_STRIDE + 1,
            _ref_sub=c("_p_net") + pl.when(c("_unitemized")).then(c("_ru_net")).otherwise(0),
            _ref_tax=c("_p_tax") + pl.when(c("_unitemized")).then(c("_ru_tax")).otherwise(0)
            + pl.when(c("_ship_part")).then(c("_rst")).otherwise(0),
            _ref_ship=pl.when(c("_ship_part")).then(c("_rs")).otherwise(0),
        ).with_columns(
            _reversed=pl.when(c("_reversal")).then(-(c("_ref_sub") + c("_ref_tax") + c("_ref_ship"))).otherwise(0),
        ).with_columns(
            _expected=pl.when(c("_total").is_null()).then(c("_booked") + c("_reversed"))
            .otherwise(c("_total") - c("_tips") - c("_gift_cards") - c("_residual") + c("_reversed")),
        )
        return self.simple_frames(o, b, parts, tip_rows, gift_rows, counts)

    # most units of the lines of one partially refunded order whose combinations are searched here
    MAX_COMBINATIONS = 4096

    def partial_plans(self, p: Any, b: Any) -> tuple[Any, Any]:
        """What _ReversalState.plan gives for one partial refund of each order in `p`.

        (orders: _grp, _rs, _rst shipping and its tax taken, _ru / _ru_net / _ru_tax the adjustment row,
        _prop spread in proportion; parts: _grp, _row, _kq units, _np net, _tp tax per line taken).
        `_subset` keeps, for every partial sum, the first choice of units in lexicographic order (line
        by line, fewest units first), so the same search runs here level by level, keeping the
        smallest mixed-radix rank per sum. Orders with more combinations than MAX_COMBINATIONS, or
        negative line values (where the search's pruning would matter), are left out (OrderBuilder).
        """
        pl = self.pl
        c = pl.col
        order_cols = {"_grp": pl.Int64, "_rs": pl.Int64, "_rst": pl.Int64, "_ru": pl.Boolean, "_ru_net": pl.Int64,
                      "_ru_tax": pl.Int64, "_prop": pl.Boolean}
        part_cols = {"_grp": pl.Int64, "_row": pl.Int64, "_kq": pl.Int64, "_np": pl.Int64, "_tp": pl.Int64}
        if not p.height:
            return pl.DataFrame(schema=order_cols), pl.DataFrame(schema=part_cols)

        def scaled(value: Any, k: Any, units: Any) -> Any:
            num = value * k
            q = num.abs() // units + (2 * (num.abs() % units) >= units).cast(pl.Int64)
            return pl.when(units == 0).then(0).when(num < 0).then(-q).otherwise(q)

        p = p.select("_grp", "_amount", "_ship_charge", "_ship_tax", "_adjustment", "_adj_gross", "_adj_tax")
        lines = b.join(p.select("_grp"), on="_grp", how="inner").select("_grp", "_row", "_qty", "_net", "_tax").sort(
            "_row")
        cand = lines.filter(c("_qty") > 0).with_columns(
            _v=c("_net") + c("_tax"), _pos=pl.int_range(pl.len()).over("_grp"), _radix=c("_qty") + 1)
        sizes = cand.group_by("_grp").agg(
            _combos=c("_radix").cast(pl.Float64).log(2).sum(), _negative=(c("_v") < 0).any(), _n=pl.len())
        p = p.join(sizes, on="_grp", how="left").with_columns(
            pl.col("_combos").fill_null(0.0), pl.col("_negative").fill_null(False), pl.col("_n").fill_null(0))
        p = p.filter((c("_combos") <= math.log2(self.MAX_COMBINATIONS) + 1e-9) & ~c("_negative"))
        if not p.height:
            return pl.DataFrame(schema=order_cols), pl.DataFrame(schema=part_cols)
        cand = cand.join(p.select("_grp", "_amount"), on="_grp", how="inner")
        states = p.select("_grp", _s=pl.lit(0, dtype=pl.Int64), _rank=pl.lit(0, dtype=pl.Int64))
        for position in range(int(p.get_column("_n").max() or 0)):
            level = cand.filter(c("_pos") == position).select("_grp", "_qty", "_v", "_radix", "_amount")
            moving = states.join(level, on="_grp", how="inner")
            resting = states.join(level.select("_grp"), on="_grp", how="anti")
            moving = moving.with_columns(_k=pl.int_ranges(0, c("_radix"))).explode("_k").with_columns(
                _s=c("_s") + scaled(c("_v"), c("_k"), c("_qty")), _rank=c("_rank") * c("_radix") + c("_k"))
            moving = moving.filter(c("_s") <= c("_amount")).group_by("_grp", "_s").agg(_rank=c("_rank").min())
            states = pl.concat([resting, moving.select("_grp", "_s", "_rank")], how="vertical")
        p = p.with_columns(_ship_value=c("_ship_charge") + c("_ship_tax"))
        direct = states.join(p.select("_grp", "_amount"), on="_grp").filter(c("_s") == c("_amount")).select(
            "_grp", _direct=c("_rank"))
        via_ship = states.join(p.select("_grp", "_amount", "_ship_value"), on="_grp").filter(
            (c("_ship_value") != 0) & (c("_s") == c("_amount") - c("_ship_value"))).select("_grp", _via=c("_rank"))
        p = p.join(direct, on="_grp", how="left").join(via_ship, on="_grp", how="left").with_columns(
            _with_ship=c("_direct").is_null() & c("_via").is_not_null(),
        ).with_columns(
            _found=pl.when(c("_direct").is_not_null()).then(c("_direct")).otherwise(c("_via")),
        ).with_columns(
            _prop=c("_found").is_null() | ((c("_found") == 0) & ~c("_with_ship")),
        )
        # ---- whole units: decode each line's units from the rank (mixed radix, first line most significant)
        chosen = p.filter(~c("_prop"))
        units = cand.join(chosen.select("_grp", "_found"), on="_grp", how="inner").sort("_grp", "_pos").with_columns(
            _stride=(c("_radix").reverse().cum_prod().reverse() // c("_radix")).over("_grp"),
        ).with_columns(_kq=(c("_found") // c("_stride")) % c("_radix")).filter(c("_kq") > 0).with_columns(
            _total_part=scaled(c("_v"), c("_kq"), c("_qty")),
            _tp=pl.when(c("_kq") == c("_qty")).then(c("_tax")).otherwise(scaled(c("_tax"), c("_kq"), c("_qty"))),
        ).with_columns(_np=c("_total_part") - c("_tp"))
        subset_orders = chosen.select(
            "_grp", _rs=pl.when(c("_with_ship")).then(c("_ship_charge")).otherwise(0),
            _rst=pl.when(c("_with_ship")).then(c("_ship_tax")).otherwise(0), _ru=pl.lit(False),
            _ru_net=pl.lit(0, dtype=pl.Int64), _ru_tax=pl.lit(0, dtype=pl.Int64), _prop=pl.lit(False))
        # ---- in proportion: every line's net and tax, the shipping and its tax, the adjustment row
        spread = p.filter(c("_prop"))
        big = 1 << 62
        pieces = pl.concat([
            lines.join(spread.select("_grp"), on="_grp", how="inner").select(
                "_grp", "_row", _idx=c("_row") * 2, _piece=pl.lit("net"), _p=c("_net")),
            lines.join(spread.select("_grp"), on="_grp", how="inner").select(
                "_grp", "_row", _idx=c("_row") * 2 + 1, _piece=pl.lit("tax"), _p=c("_tax")),
            spread.select("_grp", _row=pl.lit(None, dtype=pl.Int64), _idx=pl.lit(big, dtype=pl.Int64),
                          _piece=pl.lit("ship"), _p=c("_ship_charge")),
            spread.select("_grp", _row=pl.lit(None, dtype=pl.Int64), _idx=pl.lit(big + 1, dtype=pl.Int64),
                          _piece=pl.lit("ship_tax"), _p=c("_ship_tax")),
            spread.filter(c("_adjustment") != 0).select(
                "_grp", _row=pl.lit(None, dtype=pl.Int64), _idx=pl.lit(big + 2, dtype=pl.Int64),
                _piece=pl.lit("unit_net"), _p=c("_adj_gross")),
            spread.filter(c("_adjustment") != 0).select(
                "_grp", _row=pl.lit(None, dtype=pl.Int64), _idx=pl.lit(big + 3, dtype=pl.Int64),
                _piece=pl.lit("unit_tax"), _p=c("_adj_tax")),
        ], how="vertical").join(spread.select("_grp", "_amount"), on="_grp", how="inner").with_columns(
            _w=pl.max_horizontal(c("_p"), 0))
        pieces = _allocate_columns(pieces, "_amount", "_w", "_share") if pieces.height else pieces.with_columns(
            _share=pl.lit(0, dtype=pl.Int64))
        line_shares = pieces.filter(c("_row").is_not_null()).group_by("_grp", "_row").agg(
            _np=c("_share").filter(c("_piece") == "net").sum(), _tp=c("_share").filter(c("_piece") == "tax").sum(),
        ).filter((c("_np") != 0) | (c("_tp") != 0)).with_columns(_kq=pl.lit(0, dtype=pl.Int64))
        order_shares = pieces.filter(c("_row").is_null()).group_by("_grp").agg(
            _rs=c("_share").filter(c("_piece") == "ship").sum(),
            _rst=c("_share").filter(c("_piece") == "ship_tax").sum(),
            _ru_net=c("_share").filter(c("_piece") == "unit_net").sum(),
            _ru_tax=c("_share").filter(c("_piece") == "unit_tax").sum(),
        )
        spread_orders = spread.select("_grp", "_adjustment").join(order_shares, on="_grp", how="left").select(
            "_grp", c("_rs").fill_null(0), c("_rst").fill_null(0), _ru=c("_adjustment") != 0,
            _ru_net=c("_ru_net").fill_null(0), _ru_tax=c("_ru_tax").fill_null(0), _prop=pl.lit(True))
        orders = pl.concat([subset_orders.cast(order_cols), spread_orders.cast(order_cols)], how="vertical")
        parts = pl.concat([units.select(list(part_cols)).cast(part_cols),
                           line_shares.select(list(part_cols)).cast(part_cols)], how="vertical")
        return orders, parts

    def timestamps(self, series: Any, parse_ts: TimestampParser) -> Any:
        """Export timestamps -> UTC microseconds: Shopify's own format in Polars, others by the parser."""
        pl = self.pl
        value = pl.col("s")
        # Shopify's format with fields in range (years from 1000, no leap second, offsets under a
        # day), as datetime.fromisoformat reads it in the row path; the rest go to the parser. The
        # local time and the offset are read apart: a format with %z takes Polars 4x as long.
        shopify = value.str.contains(
            r"^[1-9][0-9]{3}-[0-9]{2}-[0-9]{2} ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9] [+-]([01][0-9]|2[0-3])[0-5][0-9]$")
        local = value.str.slice(0, 19).str.strptime(pl.Datetime("us"), "%Y-%m-%d %H:%M:%S", strict=False).dt.epoch("us")
        offset = (value.str.slice(21, 2).cast(pl.Int64, strict=False) * 3600
                  + value.str.slice(23, 2).cast(pl.Int64, strict=False) * 60) * 1_000_000
        east = value.str.slice(20, 1) == "+"
        parsed = local - pl.when(east).then(offset).otherwise(-offset)
        fast_us = pl.DataFrame({"s": series}).select(
            pl.when(shopify.fill_null(False)).then(parsed).otherwise(None).cast(pl.Int64)).to_series()
        if not (fast_us.is_null() & series.is_not_null()).any():
            return fast_us

        def parse(value: str | None) -> int | None:
            try:
                return parse_ts(value)
            except ValueError_ as exc:
                raise _Unsupported(str(exc)) from None

        rest = pl.DataFrame({"s": series, "f": fast_us}).select(
            pl.when(pl.col("f").is_null()).then(pl.col("s"))).to_series()
        slow = _mapped(rest, parse, pl.Int64)
        return pl.DataFrame({"f": fast_us, "p": slow}).select(pl.coalesce("f", "p")).to_series()

    def shipping_tax_included(self, o: Any) -> Any:
        pl = self.pl
        c = pl.col
        needs = c("_included") & (c("_ship_charge0") > 0) & (c("_taxes0") > 0)
        o = o.with_columns(_needs_rate=needs)
        names = [f"tax{i}_name" for i in range(1, 6)]
        values = [f"tax{i}_value" for i in range(1, 6)]
        rated = o.filter(c("_needs_rate")).select("_grp").join(self.head_taxes, on="_grp", how="left",
                                                             maintain_order="left")
        if rated.height:
            cleaned = {n: _mapped(rated.get_column(n), clean_text, pl.String) for n in names}
            flags = {v: _mapped(rated.get_column(v), _has_amount, pl.Boolean) for v in values}
            keys = pl.DataFrame({**cleaned, **flags})
            unique = keys.unique(maintain_order=True)
            rates = [_tax_rate_of(tuple(r)) for r in unique.iter_rows()]
            # a finer fraction than COLUMNAR_RATE_TERMS ("VAT 7.123456789%") is left to OrderBuilder
            fine = [r is not None and max(r) > COLUMNAR_RATE_TERMS for r in rates]
            unique = unique.with_columns(
                _num=pl.Series([r[0] if r and not f else None for r, f in zip(rates, fine, strict=True)],
                               dtype=pl.Int64),
                _den=pl.Series([r[1] if r and not f else None for r, f in zip(rates, fine, strict=True)],
                               dtype=pl.Int64),
                _too_fine=pl.Series(fine, dtype=pl.Boolean),
            )
            rate_cols = keys.join(unique, on=names + values, how="left", nulls_equal=True, maintain_order="left")
            rated = rated.select("_grp").with_columns(rate_cols.select("_num", "_den", "_too_fine"))
            o = o.join(rated, on="_grp", how="left").with_columns(c("_too_fine").fill_null(False))
        else:
            o = o.with_columns(_num=pl.lit(None, dtype=pl.Int64), _den=pl.lit(None, dtype=pl.Int64),
                               _too_fine=pl.lit(False))

        def included(amount: Any) -> Any:
            # round half up (away from zero) of amount × num / (den + num), exactly in integers
            x = amount * c("_num")
            d = c("_den") + c("_num")
            q = (2 * x.abs() + d) // (2 * d)
            return pl.when(x < 0).then(-q).otherwise(q)

        goods = c("_sub_used")
        ship = c("_ship_charge0")
        on_goods = included(goods)
        on_both = included(goods + ship)
        split = needs & c("_num").is_not_null() & ((on_both - c("_taxes0")).abs() < (on_goods - c("_taxes0")).abs())
        o = o.with_columns(
            _sti=pl.when(split).then(pl.min_horizontal(included(ship), c("_taxes0"))).otherwise(0),
            _count_unknown=needs & c("_num").is_null(),
            _count_split=split.fill_null(False),
        )
        return o

    def simple_frames(self, o: Any, b: Any, parts: Any, tip_rows: Any, gift_rows: Any,
                      counts: _FirstSeenCounter) -> dict[str, Any]:
        pl = self.pl
        c = pl.col
        null_i64 = pl.lit(None, dtype=pl.Int64)
        # ---- counts, each with where the row path would count it first
        seq_of = o.select("_grp", "_order_seq")

        def note(key: str, frame: Any, step: int, row: str | None = None) -> None:
            if not frame.height:
                return
            keys = ["_order_seq"] + ([row] if row else [])
            first = frame.select(keys).sort(keys).row(0, named=True)  # only the keys: `o` is wide
            counts.note(key, frame.height, (first["_order_seq"], step, first[row] if row else 0))

        for key, rows in (("tip_lines", tip_rows), ("gift_card_lines", gift_rows)):
            note(key, rows.join(seq_of, on="_grp", how="inner"), 0, "_row")
        note("orders", o, 1)
        if o.height:  # the row path counts line items (perhaps 0) for every order it builds
            first = o.select("_order_seq").sort("_order_seq").row(0, named=True)
            counts.note("line_items", int(o.get_column("_nB").sum()), (first["_order_seq"], 2, 0), always=True)
        note("orders_lines_vs_subtotal", o.filter(c("_lvs")), 3)
        note("orders_shipping_discount_inferred", o.filter(c("_count_inferred")), 4)
        note("orders_total_residual", o.filter(c("_count_residual")), 4)
        note("orders_shipping_tax_unknown", o.filter(c("_count_unknown").fill_null(False)), 5)
        note("orders_shipping_tax_split", o.filter(c("_count_split")), 5)
        note("refunds_allocated_proportionally", o.filter(c("_reversal") & c("_prop").fill_null(False)), 6)
        note("reversal_events", o.filter(c("_reversal")), 7)
        # ---- sales rows on the order date
        line_sales = b.select(
            order_seq=c("_order_seq"), line_seq=c("_row"), refund_seq=null_i64, happened_at=c("_created"),
            event_type=pl.lit("order"), line_type=pl.lit("product"), quantity=c("_qty").cast(pl.Int32),
            gross_sales=c("_gross"), discounts=-c("_disc"), sales_reversals=pl.lit(0, dtype=pl.Int64),
            net_sales=c("_gross") - c("_disc"), taxes=c("_tax"), shipping_charges=pl.lit(0, dtype=pl.Int64),
            total_sales=c("_gross") - c("_disc") + c("_tax"), _k=c("_row"),
        )
        big = 1 << 40

        def order_row(frame: Any, line_type: str, quantity: Any, gross: Any, taxes: Any, shipping: Any,
                      k: int, event: Any = None, when: str = "_created", reversals: Any = None,
                      refund_seq: Any = None) -> Any:
            zero = pl.lit(0, dtype=pl.Int64)
            reversals = zero if reversals is None else reversals
            return frame.select(
                order_seq=c("_order_seq"), line_seq=null_i64,
                refund_seq=null_i64 if refund_seq is None else refund_seq, happened_at=c(when),
                event_type=pl.lit("order") if event is None else event, line_type=pl.lit(line_type),
                quantity=quantity, gross_sales=gross, discounts=zero, sales_reversals=reversals,
                net_sales=gross + reversals, taxes=taxes, shipping_charges=shipping,
                total_sales=gross + reversals + taxes + shipping, _k=pl.lit(k, dtype=pl.Int64),
            )

        zero = pl.lit(0, dtype=pl.Int64)
        null_i32 = pl.lit(None, dtype=pl.Int32)
        adjustment_sales = order_row(o.filter(c("_adjustment") != 0), "adjustment", null_i32, c("_adj_gross"),
                                     c("_adj_tax"), zero, big)
        gift_sales = order_row(o.filter(c("_gift_cards") != 0), "gift_card", null_i32, zero, zero, zero, big + 1)
        ship_sales = order_row(o.filter((c("_ship_charge") != 0) | (c("_ship_tax") != 0)), "shipping",
                               pl.lit(0, dtype=pl.Int32), zero, c("_ship_tax"), c("_ship_charge"), big + 2)
        # ---- reversal rows
        kind = pl.when(c("_cancel")).then(pl.lit("cancellation")).otherwise(pl.lit("refund"))
        rev_lines = parts.with_columns(_refund_seq=c("_order_seq") * REFUND_SEQ_STRIDE + 1)
        rev_line_sales = rev_lines.select(
            order_seq=c("_order_seq"), line_seq=c("_row"), refund_seq=c("_refund_seq"), happened_at=c("_when"),
            event_type=kind, line_type=pl.lit("product"), quantity=(-c("_kq")).cast(pl.Int32), gross_sales=zero,
            discounts=zero, sales_reversals=-c("_np"), net_sales=-c("_np"), taxes=-c("_tp"),
            shipping_charges=zero, total_sales=-c("_np") - c("_tp"), _k=c("_row") + 2 * big,
        )
        rev = o.filter(c("_reversal"))
        rev_adj_sales = order_row(rev.filter(c("_unitemized")), "adjustment", null_i32, zero, -c("_ru_tax"), zero,
                                  3 * big, kind, "_when", -c("_ru_net"), c("_refund_seq"))
        rev_ship_sales = order_row(rev.filter(c("_ship_part")), "shipping", pl.lit(0, dtype=pl.Int32), zero,
                                   -c("_rst"), -c("_rs"), 3 * big + 1, kind, "_when", None, c("_refund_seq"))
        sales = pl.concat([line_sales, adjustment_sales, gift_sales, ship_sales, rev_line_sales, rev_adj_sales,
                           rev_ship_sales], how="vertical")
        refund_lines = rev_lines.select(
            refund_seq=c("_refund_seq"), order_seq=c("_order_seq"), line_seq=c("_row"),
            quantity=c("_kq").cast(pl.Int32), subtotal=c("_np"), tax=c("_tp"), _k=c("_row"),
        )
        refunds = rev.select(
            refund_seq=c("_refund_seq"), order_seq=c("_order_seq"), created_at=c("_when"),
            kind=pl.when(c("_cancel")).then(pl.lit("cancellation")).otherwise(pl.lit("return")),
            line_count=c("_p_lines").cast(pl.Int32), item_count=c("_p_items").cast(pl.Int32),
            refunded_subtotal=c("_ref_sub"), refunded_tax=c("_ref_tax"), refunded_shipping=c("_ref_ship"),
            total_refunded=c("_ref_sub") + c("_ref_tax") + c("_ref_ship"),
        )
        lines = b.select(
            line_seq=c("_row"), order_seq=c("_order_seq"), file=c("_file").cast(pl.Int32),
            line=c("_line").cast(pl.Int64), name=c("_title"), sku=c("_sku"), vendor=c("_vendor"),
            quantity=c("_qty").cast(pl.Int32), price=c("_price"), compare_at=c("_compare_at"), gross=c("_gross"),
            line_discount=c("_ld"), allocated_order_discount=c("_disc") - c("_ld"), total_discount=c("_disc"),
            net=c("_net"), tax=c("_tax"),
        )
        orders = self.order_records(o)
        return {"orders": orders, "lines": lines, "sales": sales, "refunds": refunds,
                "refund_lines": refund_lines}

    def order_records(self, o: Any) -> Any:
        pl = self.pl
        c = pl.col
        o = o.join(self.head_text, on="_grp", how="left", maintain_order="left")

        def text(key: str) -> Any:
            return _mapped(o.get_column(key), clean_text, pl.String)

        billing_country = _mapped(text("billing_country"), country_name, pl.String)
        shipping_country = _mapped(text("shipping_country"), country_name, pl.String)
        source = text("source")
        o = o.with_columns(
            _shopify_id=_mapped(o.get_column("id"), _int_or_none, pl.Int64),
            _billing_name=pl.coalesce(text("billing_name"), text("shipping_name")),
            _financial_status=text("financial_status"), _fulfillment_status=text("fulfillment_status"),
            _source=source, _channel=_mapped(source, sales_channel_of, pl.String),
            _discount_code=text("discount_code"), _shipping_method=text("shipping_method"),
            _billing_country=billing_country,
            _billing_region=pl.coalesce(text("billing_province_name"), text("billing_province")),
            _billing_city=text("billing_city"), _shipping_country=shipping_country,
            _shipping_region=pl.coalesce(text("shipping_province_name"), text("shipping_province")),
            _shipping_city=text("shipping_city"),
            _accepts=_mapped(o.get_column("accepts_marketing"), parse_bool, pl.Boolean),
        )
        gross = c("_sum_gross") + c("_adj_gross")
        discounts = c("_sum_disc")
        taxes = c("_sum_tax") + c("_adj_tax") + c("_ship_tax")
        return o.select(
            order_seq=c("_order_seq"), name=c("_name"), file=c("_file").cast(pl.Int32), line=c("_line"),
            shopify_id=c("_shopify_id"), created_at=c("_created"), paid_at=c("_paid"), fulfilled_at=c("_fulfilled"),
            cancelled_at=c("_cancelled"), email=pl.coalesce(c("_head_email"), c("_first_email")),
            billing_name=c("_billing_name"), financial_status=c("_financial_status"),
            fulfillment_status=c("_fulfillment_status"), currency=c("_currency"), source_name=c("_source"),
            sales_channel=c("_channel"), discount_code=c("_discount_code"), shipping_method=c("_shipping_method"),
            billing_country=c("_billing_country"), billing_region=c("_billing_region"),
            billing_city=c("_billing_city"), shipping_country=c("_shipping_country"),
            shipping_region=c("_shipping_region"), shipping_city=c("_shipping_city"), accepts_marketing=c("_accepts"),
            is_test=pl.lit(False), line_count=c("_nB").cast(pl.Int32), item_count=c("_items").cast(pl.Int32),
            line_items_total=gross, total_discounts=discounts, subtotal=gross - discounts, shipping=c("_ship_charge"),
            taxes=taxes, total=gross - discounts + c("_ship_charge") + taxes,
            total_refunded=c("_m_refunded_amount"), taxes_included=c("_included"),
            export_total=c("_total"), export_subtotal=c("_m_subtotal"), export_shipping=c("_m_shipping"),
            export_taxes=c("_m_taxes"), export_discount=c("_m_discount_amount"),
            export_lines_gross=c("_lines_gross_export"), export_refunded=c("_m_refunded_amount"), tips=c("_tips"),
            gift_cards=c("_gift_cards"), duties=c("_m_duties"), lines_vs_subtotal=-c("_adjustment"),
            adjustment=c("_adjustment"), shipping_tax_included=c("_sti"), total_residual=c("_residual"),
            booked_total=c("_booked"), reversed_total=c("_reversed"), refund_excess=c("_excess"),
            expected_total_sales=c("_expected"), refund_date_rule=c("_rule"), _grp=c("_grp"),
        )


# ---------------------------------------------------------------------------------------------
# the import


def _expand(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        path = Path(p).expanduser()
        if path.is_dir():
            files.extend(sorted(q for q in path.rglob("*") if q.is_file() and q.suffix.lower() == ".csv"))
        elif path.is_file():
            files.append(path)
        else:
            raise CommerceQLDataError(f"{path} does not exist")
    seen: set[Path] = set()
    unique = []
    for f in files:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    if not unique:
        raise CommerceQLDataError("no CSV files to import", hint="pass Shopify export files or a folder holding them")
    return unique


def import_shopify(
    paths: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    timezone: str | None = None,
    name: str | None = None,
    currency: str | None = None,
    date_order: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ImportReport:
    """Import Shopify admin exports (files or folders) into a new store folder `out_dir`.

    `timezone` overrides the detected store time zone; `date_order` ('dmy' or 'mdy') says how to
    read slash dates of a spreadsheet-saved copy when the file itself cannot tell. Returns the
    import report (also written to `out_dir/import_report.json`); raises a
    `CommerceQLImportError` naming the file, line and column for a malformed file, leaving nothing
    behind.
    """
    started = time.monotonic()
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    files = _expand(paths)
    if timezone:
        check_timezone(timezone)
    if currency:
        currency = check_currency(currency)
    if date_order and date_order not in ("dmy", "mdy"):
        raise CommerceQLDataError("date_order must be 'dmy' or 'mdy'")
    report = ImportReport(source_kind="shopify")
    with atomic_store_dir(out_dir, overwrite=overwrite) as tmp:
        work = tmp / "_work"
        con = new_connection(work)
        try:
            _run(con, files, tmp, work, report, timezone=timezone, name=name, currency=currency,
                 date_order=date_order, progress=progress, out_dir=Path(out_dir))
        finally:
            con.close()
        report.seconds = time.monotonic() - started
        (tmp / "import_report.json").write_text(
            __import__("json").dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8"
        )
    report.out_dir = str(Path(out_dir))
    return report


def _run(con: duckdb.DuckDBPyConnection, files: list[Path], tmp: Path, work: Path, report: ImportReport, *,
         timezone: str | None, name: str | None, currency: str | None, date_order: str | None,
         progress: bool, out_dir: Path) -> None:
    # the files' checksums (for the manifest) in the background: hashing releases the GIL, and a
    # 500 MB export takes ~0.4 s that the staging's single-threaded stretches leave free
    hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cql-sha256")
    try:
        checksums = {str(path): hashing.submit(sha256_of, path) for path in files}
        _run_files(con, files, tmp, work, report, checksums, timezone=timezone, name=name, currency=currency,
                   date_order=date_order, progress=progress, out_dir=out_dir)
    finally:
        hashing.shutdown(wait=True, cancel_futures=True)


def _run_files(con: duckdb.DuckDBPyConnection, files: list[Path], tmp: Path, work: Path, report: ImportReport,
               checksums: dict[str, Future[str]], *, timezone: str | None, name: str | None, currency: str | None,
               date_order: str | None, progress: bool, out_dir: Path) -> None:
    # ---- phase 1: classify and stage every file
    staged: dict[int, StagedFile] = {}
    for index, path in enumerate(files):
        csv_head = open_csv(path)
        header = csv_head.header
        csv_head.close()
        classified = classify(path, header)
        source = SourceFile(path=str(path), kind=classified.kind, sha256="", bytes=path.stat().st_size)
        if classified.kind == "unknown":
            source.note = classified.reason
            report.ignored.append(source)
            continue
        st = None
        if COLUMNAR and not any("\n" in h or "\r" in h for h in header):
            try:
                st = _stage_columnar(classified, index, source, work, 1, progress)
            except _NotColumnar:
                shutil.rmtree(work / f"staged-{index:03d}", ignore_errors=True)
                classified = classify(path, header)  # as it was (staging may have made it a checkout)
                source = SourceFile(path=str(path), kind=classified.kind, sha256=source.sha256, bytes=source.bytes)
        if st is None:
            st = _stage(classified, index, source, work, progress)
        release_free_memory()  # what staging's DuckDB threads freed (see release_free_memory)
        staged[index] = st
        report.files.append(source)
        if st.spreadsheet:
            source.note = "re-saved by a spreadsheet: " + "; ".join(st.spreadsheet)
            report.warn(f"{path.name} was re-saved by a spreadsheet ({'; '.join(st.spreadsheet)}); "
                        "it was read with the rules in docs/importing.md")
    if not staged:
        reasons = "; ".join(f"{Path(f.path).name}: {f.note}" for f in report.ignored)
        raise CommerceQLImportError(
            f"nothing to import: no Shopify admin export among the files ({reasons})",
            hint="export Orders, Customers, Products, Abandoned checkouts, Inventory or Transactions from Shopify admin",
        )
    by_kind: dict[str, list[StagedFile]] = defaultdict(list)
    for st in staged.values():
        by_kind[st.classified.kind].append(st)

    # ---- settings: time zone, date order, currency
    samples: dict[tuple[int, int], int] = {}
    countries: list[str] = []
    naive = False
    for st in staged.values():
        for style in st.styles.values():
            samples.update(style.samples)
            naive = naive or style.has_naive
        for c, n in st.countries.items():
            countries.extend([country_code(c) or c] * min(n, 1000))
    if timezone:
        report.timezone, report.timezone_reason = timezone, "given with --timezone"
        if samples:
            detected, _why = detect_timezone(samples, countries)
            if detected and detected != timezone:
                report.warn(f"the export's UTC offsets suggest {detected}, but --timezone {timezone} was given")
    else:
        detected, why = detect_timezone(samples, countries)
        if detected is None:
            report.timezone = "UTC"
            report.timezone_reason = f"{why}; using UTC - pass --timezone to set the store's zone"
            if naive or samples:
                report.warn(f"could not determine the store time zone ({why}); timestamps without an offset "
                            "were read as UTC; pass --timezone Area/City")
        else:
            report.timezone, report.timezone_reason = detected, why
            if naive:
                report.warn(f"some timestamps carry no UTC offset; they were read as local time in {detected}")
    day_first: bool | None = None
    for st in staged.values():
        for key, style in st.styles.items():
            try:
                value = style.day_first(date_order)
            except ValueError_ as exc:
                raise CommerceQLImportError(
                    f"{exc}", file=st.source.path, column=st.classified.names[key],
                    hint="pass --date-order dmy or --date-order mdy",
                ) from None
            if value is not None:
                if day_first is not None and value != day_first and not date_order:
                    raise CommerceQLImportError(
                        "the files disagree on day/month order", file=st.source.path,
                        hint="import them separately, or pass --date-order dmy|mdy",
                    )
                day_first = value
    if day_first is not None:
        report.notes.append(f"slash dates read as {'day/month/year' if day_first else 'month/day/year'}")
    currencies: Counter = Counter()
    for kind in ("orders", "checkouts", "transactions"):
        for st in by_kind.get(kind, []):
            currencies.update(st.currencies)
    if currency:
        store_currency = currency
    elif currencies:
        store_currency = currencies.most_common(1)[0][0]
        if len(currencies) > 1:
            report.warn(f"several currencies in the exports ({dict(currencies)}); the store uses {store_currency} "
                        "and orders in other currencies are skipped (pass --currency to choose)")
    else:
        majority = Counter(c for c in countries if c).most_common(1)
        guess = CURRENCY_OF_COUNTRY.get(majority[0][0]) if majority else None
        store_currency = guess or "USD"
        if by_kind.get("orders") or by_kind.get("customers") or by_kind.get("products"):
            report.warn(f"the exports have no Currency column; assumed {store_currency}"
                        + (f" from the most common country, {majority[0][0]}" if guess else "")
                        + " (pass --currency to set it)")
    report.currency = store_currency
    parse_ts = TimestampParser(report.timezone, day_first)

    # ---- phase 2: transactions first (refund dates), then orders and checkouts
    refund_events: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    tx_stage = Stager(work / "tx", ["order_name", "kind", "gateway", "created_at", "status", "amount", "currency",
                                   "card_type", "file", "line"],
                      types={"created_at": TIMESTAMP_US, "amount": MONEY_CENTS, "file": pa.int32(), "line": pa.int64()})
    for st in by_kind.get("transactions", []):
        ctx0 = _Context(report, staged, parse_ts, store_currency, {})
        for row in arrow_rows(con, f"SELECT * FROM {st.staged} ORDER BY _line"):
            when = ctx0.timestamp(row, "created_at")
            amount = ctx0.money(row, "amount")
            kind = (row.get("kind") or "").strip().lower()
            status = (row.get("status") or "").strip().lower()
            order_name = (row.get("name") or "").strip()
            tx_stage.add([order_name, kind, clean_text(row.get("gateway")), when, status, amount,
                          clean_text(row.get("currency")), clean_text(row.get("card_type")), row["_file"], row["_line"]])
            if kind == "refund" and status in ("success", "") and amount and when is not None:
                refund_events[order_name].append((when, amount, row["_file"], row["_line"]))
        if st.scientific_ids:
            report.notes.append(f"{Path(st.source.path).name}: order ids are in scientific notation; "
                                "transactions are matched to orders by order name instead")
    ctx = _Context(report, staged, parse_ts, store_currency, refund_events)
    order_files = by_kind.get("orders", [])
    staged_sql: dict[str, str] | None = None
    if order_files:
        union = _union(con, order_files, list(ORDER_COLUMNS))
        if len(order_files) == 1 and order_files[0].contiguous:
            # the usual case: rows of one order are adjacent; stream in file order without sorting
            grouped_sql = union
        else:
            grouped_sql = f"SELECT * FROM ({union}) ORDER BY name, _file, _line"
        total_rows = sum(st.source.records for st in order_files)
        if COLUMNAR:
            skipped, warnings = len(report.skipped), list(report.warnings)
            bar = Progress("building orders", total_rows, progress, unit="rows")
            # the export read again by Polars where it can be; should that reading differ from
            # staging's, the orders are built again from the staged (DuckDB) reading
            for reread_csv in dict.fromkeys((ColumnarOrders.can_reread_csv(order_files), False)):
                columnar_ctx = _Context(report, staged, parse_ts, store_currency, refund_events)
                counts = _FirstSeenCounter(columnar_ctx)
                columnar_ctx.counts = counts
                try:
                    staged_sql = ColumnarOrders(columnar_ctx, work, order_files, reread_csv=reread_csv).run(
                        con, grouped_sql, bar)
                except (_Unsupported, _ReadAgainDiffers) as exc:
                    # a value the row builder must judge (and perhaps refuse, naming its line): it starts over
                    del report.skipped[skipped:]
                    report.warnings[:] = warnings
                    for key in ("orders", "lines", "sales", "refunds", "refund_lines"):
                        shutil.rmtree(work / key, ignore_errors=True)
                    if isinstance(exc, _Unsupported):
                        break
                else:
                    columnar_ctx.counts = counts.ordered()
                    ctx = columnar_ctx
                    break
            bar.close()
    if staged_sql is None:
        staged_sql = _build_rows(con, grouped_sql if order_files else None, ctx, work, total_rows if order_files else 0,
                                 progress)
    release_free_memory()
    unused = sorted(set(refund_events) - ctx.used_refund_events)
    if unused and order_files:
        report.notes.append(f"{len(unused)} orders with refund transactions are not in the orders export "
                            f"(for example {unused[0]})")
    checkout_sql = None
    if by_kind.get("checkouts"):
        checkout_sql = _checkouts(con, by_kind["checkouts"], ctx, work)

    # ---- phase 3: catalog, customers and the store tables
    customers_sql = _customers_stage(con, by_kind.get("customers", []), ctx, work)
    products_sql = _products_stage(con, by_kind.get("products", []), ctx, work)
    inventory_sql = _inventory_stage(con, by_kind.get("inventory", []), ctx, work)
    _assemble(con, tmp, work, report, ctx, staged_sql, checkout_sql, customers_sql, products_sql, inventory_sql,
              tx_stage.close() if tx_stage.count else None, store_currency)

    # ---- manifest and reconciliation
    data_start = con.execute(f"SELECT min(created_at) FROM {staged_sql['orders']}").fetchone()[0]
    store_name = name or _default_name(files, out_dir)
    report.store_name = store_name
    for source in (*report.files, *report.ignored):
        source.sha256 = checksums[source.path].result()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": store_name,
        "currency": store_currency,
        "timezone": report.timezone,
        "as_of": None,
        "data_start": data_start.astimezone(__import__("zoneinfo").ZoneInfo(report.timezone)).date().isoformat()
        if data_start else None,
        "tables": {t: f"{t}.parquet" for t in report.row_counts},
        "row_counts": report.row_counts,
        "empty_tables": report.empty_tables,
        "source": {
            "importer": "shopify",
            "importer_version": IMPORTER_VERSION,
            "imported_at": now_iso(),
            "timezone_reason": report.timezone_reason,
            "files": [{"path": f.path, "kind": f.kind, "sha256": f.sha256, "bytes": f.bytes, "records": f.records}
                      for f in report.files],
            "not_imported": [{"path": f.path, "sha256": f.sha256, "reason": f.note} for f in report.ignored],
        },
    }
    write_manifest(tmp, manifest)
    _reconcile(con, tmp, report, staged_sql["orders"], ctx)
    report.counts = {
        "files": len(report.files),
        "rows_read": sum(f.records for f in report.files),
        **{k: v for k, v in ctx.counts.items()},
        "customers_in_store": report.row_counts.get("customers", 0),
        "products_in_store": report.row_counts.get("products", 0),
        "variants_in_store": report.row_counts.get("variants", 0),
        "rows_skipped": len(report.skipped),
    }


def _build_rows(con: duckdb.DuckDBPyConnection, grouped_sql: str | None, ctx: _Context, work: Path, total_rows: int,
                progress: bool) -> dict[str, str]:
    """Phase 2 row by row: every order through OrderBuilder (the reference the columnar path matches)."""
    report = ctx.report
    out = {key: Stager(work / key, list(columns), columns) for key, columns in STAGE_COLUMNS.items()}
    builder = OrderBuilder(ctx, out)
    if grouped_sql is not None:
        bar = Progress("building orders", total_rows, progress, unit="rows")
        done = 0
        for group in _grouped(con, grouped_sql, "name"):
            done += len(group)
            if done % 2000 < len(group):
                bar.update(done)
            if not (group[0].get("name") or "").strip():
                for r in group:
                    report.skip(ctx.path(r["_file"]), r["_line"], "row without an order Name")
                continue
            for rows in _split_groups(group, ctx):
                builder.build(rows)
        bar.close()
    return {key: stager.close() for key, stager in out.items()}


def _default_name(files: list[Path], out_dir: Path) -> str:
    return Path(out_dir).name or files[0].parent.name


def _union(con: duckdb.DuckDBPyConnection, files: list[StagedFile], keys: Sequence[str]) -> str:
    parts = []
    for st in files:
        present = set(st.classified.columns)
        cols = [f'"{k}"' if k in present else f"NULL::VARCHAR AS \"{k}\"" for k in keys]
        parts.append(f"SELECT {', '.join(cols)}, _file, _line FROM {st.staged}")
    return " UNION ALL ".join(parts)


# ---------------------------------------------------------------------------------------------
# checkouts, customers, products, inventory


def _checkouts(con: duckdb.DuckDBPyConnection, files: list[StagedFile], ctx: _Context, work: Path) -> str:
    stager = Stager(work / "checkouts", list(CHECKOUT_STAGE_COLUMNS), CHECKOUT_STAGE_COLUMNS)
    union = _union(con, files, list(ORDER_COLUMNS))
    seq = 0
    for group in _grouped(con, f"SELECT * FROM ({union}) ORDER BY name, _file, _line", "name"):
        hi = _head_row(group)
        if hi is None:
            for r in group:
                ctx.report.skip(ctx.path(r["_file"]), r["_line"],
                                f"line item of checkout {group[0].get('name')} without its checkout-level row")
            continue
        head = group[hi]
        currency = (head.get("currency") or "").strip().upper() or ctx.currency
        if currency != ctx.currency:
            for r in group:
                ctx.report.skip(ctx.path(r["_file"]), r["_line"],
                                f"checkout in {currency}, not the store currency {ctx.currency}")
            continue
        seq += 1
        items = 0
        for r in group:
            if (r.get("li_qty") or "").strip():
                items += ctx.integer(r, "li_qty") or 0
        email = _email(head.get("email")) or next((_email(r.get("email")) for r in group if _email(r.get("email"))), None)
        stage = "cart"
        if email:
            stage = "information"
        if clean_text(head.get("shipping_method")):
            stage = "shipping"
        if clean_text(head.get("payment_method")):
            stage = "payment"
        source = clean_text(head.get("source"))
        stager.add_dict({
            "checkout_seq": seq, "shopify_id": _int_or_none(head.get("id")), "name": head.get("name"),
            "created_at": ctx.timestamp(head, "created_at"), "email": email, "currency": currency,
            "value": ctx.money(head, "total"), "item_count": items,
            "country": country_name(clean_text(head.get("shipping_country")) or clean_text(head.get("billing_country"))),
            "region": clean_text(head.get("shipping_province_name")) or clean_text(head.get("shipping_province"))
            or clean_text(head.get("billing_province_name")) or clean_text(head.get("billing_province")),
            "stage_reached": stage, "source_name": source, "sales_channel": sales_channel_of(source) or "Online Store",
        })
        ctx.counts["abandoned_checkouts"] += 1
    return stager.close()


def _customers_stage(con: duckdb.DuckDBPyConnection, files: list[StagedFile], ctx: _Context, work: Path) -> str | None:
    if not files:
        return None
    columns = {
        "email": pa.string(), "shopify_id": pa.int64(), "first_name": pa.string(), "last_name": pa.string(),
        "accepts_marketing": pa.bool_(), "city": pa.string(), "region": pa.string(), "country": pa.string(),
        "amount_spent": MONEY_CENTS, "orders_count": pa.int32(), "tags": pa.string(), "tax_exempt": pa.bool_(),
        "file": pa.int32(), "line": pa.int64(),
    }
    stager = Stager(work / "customers", list(columns), columns)
    for st in files:
        keys = list(CUSTOMER_COLUMNS)
        union = _union(con, [st], keys)
        for row in arrow_rows(con, f"SELECT * FROM ({union}) ORDER BY _line"):
            raw_id = clean_text(row.get("customer_id"))
            shopify_id = None
            if raw_id and not is_scientific(raw_id):
                shopify_id = _int_or_none(raw_id)
            stager.add_dict({
                "email": _email(row.get("email")), "shopify_id": shopify_id,
                "first_name": clean_text(row.get("first_name")), "last_name": clean_text(row.get("last_name")),
                "accepts_marketing": parse_bool(row.get("accepts_marketing")),
                "city": clean_text(row.get("city")),
                "region": clean_text(row.get("province")) or clean_text(row.get("province_code")),
                "country": country_name(clean_text(row.get("country")) or clean_text(row.get("country_code"))),
                "amount_spent": ctx.money(row, "total_spent"), "orders_count": ctx.integer(row, "total_orders"),
                "tags": clean_text(row.get("tags")), "tax_exempt": parse_bool(row.get("tax_exempt")),
                "file": row["_file"], "line": row["_line"],
            })
            ctx.counts["customers_read"] += 1
        if st.scientific_ids:
            ctx.report.warn(f"{Path(st.source.path).name}: customer ids were mangled into scientific notation by a "
                            "spreadsheet; customers are identified by email instead")
    return stager.close()


def _products_stage(con: duckdb.DuckDBPyConnection, files: list[StagedFile], ctx: _Context, work: Path) -> str | None:
    if not files:
        return None
    columns = {
        "handle": pa.string(), "title": pa.string(), "vendor": pa.string(), "product_type": pa.string(),
        "category": pa.string(), "status": pa.string(), "variant_title": pa.string(), "sku": pa.string(),
        "price": MONEY_CENTS, "compare_at": MONEY_CENTS, "cost": MONEY_CENTS, "position": pa.int32(),
        "file": pa.int32(), "line": pa.int64(),
    }
    stager = Stager(work / "products", list(columns), columns)
    for st in files:
        union = _union(con, [st], list(PRODUCT_COLUMNS))
        current: str | None = None
        product: dict[str, Any] = {}
        position = 0
        for row in arrow_rows(con, f"SELECT * FROM ({union}) ORDER BY _line"):
            handle = clean_text(row.get("handle"))
            if handle is None:
                ctx.report.skip(ctx.path(row["_file"]), row["_line"], "product row without a Handle")
                continue
            if handle != current or clean_text(row.get("title")):
                if handle != current:
                    position = 0
                    ctx.counts["products_read"] += 1
                current = handle
                if clean_text(row.get("title")) or handle not in product:
                    product = {
                        "handle": handle, "title": clean_text(row.get("title")) or product.get("title") or handle,
                        "vendor": clean_text(row.get("vendor")), "product_type": clean_text(row.get("type")),
                        "category": clean_text(row.get("category")),
                        "status": (clean_text(row.get("status")) or ("active" if parse_bool(row.get("published"))
                                                                     else None)),
                    }
            options = [clean_text(row.get(k)) for k in ("option1", "option2", "option3")]
            is_variant = any(options) or clean_text(row.get("sku")) or clean_text(row.get("price"))
            if not is_variant:
                continue  # an image row
            position += 1
            values = [o for o in options if o]
            variant_title = " / ".join(values) if values else "Default Title"
            stager.add_dict({
                **product, "variant_title": variant_title, "sku": clean_text(row.get("sku")),
                "price": ctx.money(row, "price"), "compare_at": ctx.money(row, "compare_at"),
                "cost": ctx.money(row, "cost"), "position": position, "file": row["_file"], "line": row["_line"],
            })
            ctx.counts["variants_read"] += 1
    return stager.close()


def _inventory_stage(con: duckdb.DuckDBPyConnection, files: list[StagedFile], ctx: _Context, work: Path) -> str | None:
    if not files:
        return None
    columns = {
        "seq": pa.int64(), "handle": pa.string(), "title": pa.string(), "variant_title": pa.string(),
        "sku": pa.string(), "location": pa.string(), "incoming": pa.int64(), "unavailable": pa.int64(),
        "committed": pa.int64(), "available": pa.int64(), "on_hand": pa.int64(),
    }
    stager = Stager(work / "inventory", list(columns), columns)
    for st in files:
        union = _union(con, [st], list(INVENTORY_COLUMNS))
        for row in arrow_rows(con, f"SELECT * FROM ({union}) ORDER BY _line"):
            options = [clean_text(row.get(k)) for k in ("option1", "option2", "option3")]
            values = [o for o in options if o]
            stager.add_dict({
                "seq": ctx.counts["inventory_rows"],
                "handle": clean_text(row.get("handle")), "title": clean_text(row.get("title")),
                "variant_title": " / ".join(values) if values else "Default Title", "sku": clean_text(row.get("sku")),
                "location": clean_text(row.get("location")),
                **{k: _inventory_int(ctx, row, k) for k in ("incoming", "unavailable", "committed", "available", "on_hand")},
            })
            ctx.counts["inventory_rows"] += 1
    return stager.close()


def _inventory_int(ctx: _Context, row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    if value is None or str(value).strip() in ("", "not stocked"):
        return None
    return ctx.integer(row, key)


# ---------------------------------------------------------------------------------------------
# catalog matching: order lines -> products and variants


def _split_line_name(name: str) -> tuple[str, str]:
    """'Velour Pant - Brown / L' -> ('Velour Pant', 'Brown / L'); without ' - ': (name, 'Default Title')."""
    if " - " in name:
        product, variant = name.rsplit(" - ", 1)
        if product.strip() and variant.strip():
            return product.strip(), variant.strip()
    return name, "Default Title"


def _catalog(con: duckdb.DuckDBPyConnection, lines_sql: str, products_sql: str | None, work: Path,
             inventory_sql: str | None = None) -> tuple[str, str, str, str | None]:
    """Products, variants, the line -> (product_id, variant_id) map and the inventory row -> variant map.

    An Inventory export's rows are variants of the catalog too (by SKU when it names one variant,
    else by handle and option values), so stocked variants that never sold exist, and order lines
    match them by SKU.
    """
    products: dict[str, dict[str, Any]] = {}  # key -> product
    variants: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    by_sku: dict[str, list[tuple[str, str, str | None]]] = defaultdict(list)
    by_full_name: dict[str, tuple[str, str, str | None]] = {}
    by_title: dict[str, str] = {}
    if products_sql is not None:
        for row in arrow_rows(con, f"SELECT * FROM {products_sql} ORDER BY file, line"):
            key = "handle:" + row["handle"]
            if key not in products:
                products[key] = {"key": key, "title": row["title"], "handle": row["handle"], "vendor": row["vendor"],
                                 "product_type": row["product_type"], "collection": row["category"],
                                 "status": row["status"], "from_catalog": True}
                by_title.setdefault(row["title"], key)
            vkey = (key, row["variant_title"], row["sku"])
            if vkey in variants:
                continue
            variants[vkey] = {"key": vkey, "product": key, "title": row["variant_title"], "sku": row["sku"],
                              "price": row["price"], "compare_at": row["compare_at"], "unit_cost": row["cost"],
                              "position": row["position"]}
            if row["sku"]:
                by_sku[row["sku"]].append(vkey)
            full = row["title"] if row["variant_title"] == "Default Title" else f"{row['title']} - {row['variant_title']}"
            by_full_name.setdefault(full, vkey)
    inventory_map = None
    if inventory_sql is not None:
        map_columns = {"seq": pa.int64(), "product_key": pa.string(), "variant_title": pa.string(),
                       "variant_sku": pa.string()}
        stock = Stager(work / "inventory_map", list(map_columns), map_columns)
        for row in arrow_rows(con, f"SELECT * FROM {inventory_sql} ORDER BY seq"):
            sku = row["sku"]
            if sku and len(by_sku.get(sku, ())) == 1:
                vkey = by_sku[sku][0]
            else:
                key = "handle:" + row["handle"] if row["handle"] else "title:" + (row["title"] or "")
                if key not in products:
                    products[key] = {"key": key, "title": row["title"], "handle": row["handle"], "vendor": None,
                                     "product_type": None, "collection": None, "status": None, "from_catalog": True}
                    if row["title"]:
                        by_title.setdefault(row["title"], key)
                vkey = (key, row["variant_title"], sku)
                if vkey not in variants:
                    variants[vkey] = {"key": vkey, "product": key, "title": row["variant_title"], "sku": sku,
                                      "price": None, "compare_at": None, "unit_cost": None, "position": None}
                    if sku:
                        by_sku[sku].append(vkey)
                    title = products[key]["title"] or ""
                    full = title if row["variant_title"] == "Default Title" else f"{title} - {row['variant_title']}"
                    by_full_name.setdefault(full, vkey)
            stock.add_dict({"seq": row["seq"], "product_key": vkey[0], "variant_title": vkey[1], "variant_sku": vkey[2]})
        inventory_map = stock.close()
    titles_by_length = sorted(by_title, key=len, reverse=True)
    mapping_columns = {"name": pa.string(), "sku": pa.string(), "product_key": pa.string(), "variant_title": pa.string(),
                       "variant_sku": pa.string()}
    mapping = Stager(work / "line_map", list(mapping_columns), mapping_columns)
    # a product's vendor is the first line's that names one (any_value took whichever line a
    # thread read first: at 1M export lines, products whose lines name two vendors changed from one
    # import of the same export to the next)
    distinct = arrow_rows(
        con, f"SELECT name, sku, arg_min(vendor, line_seq) FILTER (WHERE vendor IS NOT NULL) AS vendor, "
        f"arg_max(price, line_seq) AS price, "
        f"arg_max(compare_at, line_seq) AS compare_at, min(line_seq) AS first "
        f"FROM {lines_sql} GROUP BY name, sku ORDER BY first"
    )
    for row in distinct:
        name, sku = row["name"], row["sku"]
        vkey = None
        if sku and len(by_sku.get(sku, ())) == 1:
            vkey = by_sku[sku][0]
        elif name in by_full_name:
            vkey = by_full_name[name]
        if vkey is None:
            product_key = None
            variant_title = None
            for title in titles_by_length:
                if name == title:
                    product_key, variant_title = by_title[title], "Default Title"
                    break
                if name.startswith(title + " - "):
                    product_key, variant_title = by_title[title], name[len(title) + 3:]
                    break
            if product_key is None:
                title, variant_title = _split_line_name(name)
                product_key = "title:" + title
                if product_key not in products:
                    products[product_key] = {"key": product_key, "title": title, "handle": None,
                                             "vendor": row["vendor"], "product_type": None, "collection": None,
                                             "status": None, "from_catalog": False}
            vkey = (product_key, variant_title, sku)
            if vkey not in variants:
                variants[vkey] = {"key": vkey, "product": product_key, "title": variant_title, "sku": sku,
                                  "price": row["price"], "compare_at": row["compare_at"], "unit_cost": None,
                                  "position": None}
        mapping.add_dict({"name": name, "sku": sku, "product_key": vkey[0], "variant_title": vkey[1],
                          "variant_sku": vkey[2]})
    product_ids = {key: i + 1 for i, key in enumerate(products)}
    pcols = {"product_id": pa.int64(), "product_key": pa.string(), "title": pa.string(), "handle": pa.string(),
             "vendor": pa.string(), "product_type": pa.string(), "collection": pa.string(), "status": pa.string()}
    pstage = Stager(work / "catalog_products", list(pcols), pcols)
    for key, p in products.items():
        pstage.add_dict({"product_id": product_ids[key], "product_key": key, **p})
    vcols = {"variant_id": pa.int64(), "product_id": pa.int64(), "product_key": pa.string(), "title": pa.string(),
             "sku": pa.string(), "position": pa.int32(), "price": MONEY_CENTS, "compare_at_price": MONEY_CENTS,
             "unit_cost": MONEY_CENTS}
    vstage = Stager(work / "catalog_variants", list(vcols), vcols)
    positions: Counter = Counter()
    for i, v in enumerate(variants.values()):
        positions[v["product"]] += 1
        vstage.add_dict({"variant_id": i + 1, "product_id": product_ids[v["product"]], "product_key": v["product"],
                         "title": v["title"], "sku": v["sku"], "position": v["position"] or positions[v["product"]],
                         "price": v["price"], "compare_at_price": v["compare_at"], "unit_cost": v["unit_cost"]})
    return pstage.close(), vstage.close(), mapping.close(), inventory_map


# ---------------------------------------------------------------------------------------------
# assembly


def _assemble(con: duckdb.DuckDBPyConnection, tmp: Path, work: Path, report: ImportReport, ctx: _Context,
              st: dict[str, str], checkout_sql: str | None, customers_sql: str | None, products_sql: str | None,
              inventory_sql: str | None, transactions_sql: str | None, currency: str) -> None:
    products_sql_out, variants_sql, line_map, inventory_map = _catalog(con, st["lines"], products_sql, work,
                                                                       inventory_sql)
    con.execute(f"CREATE TEMP VIEW catalog_products AS SELECT * FROM {products_sql_out}")
    con.execute(f"CREATE TEMP VIEW catalog_variants AS SELECT * FROM {variants_sql}")
    # Only narrow numbering tables are materialised (their memory is the DuckDB buffer pool the
    # sorts and joins below need: with the whole order and line rows in temp tables, 440 MB of the
    # 512 MB cap, every later sort spilled, and the sales table alone cost 8 CPU s at 1M export
    # lines). The wide columns are read again from the staged Parquet parts where they are needed.
    con.execute(f"""
        CREATE TEMP TABLE line_variants AS
        SELECT l.line_seq, l.order_seq, v.variant_id, l.sku
        FROM {st['lines']} l
        JOIN {line_map} m ON m.name = l.name AND m.sku IS NOT DISTINCT FROM l.sku
        JOIN catalog_variants v ON v.product_key = m.product_key AND v.title = m.variant_title
             AND v.sku IS NOT DISTINCT FROM m.variant_sku
    """)
    # customers: one per e-mail (orders, customers export, checkouts); the export's rows without e-mail too
    cust_export = customers_sql or "(SELECT NULL::VARCHAR AS email, NULL::BIGINT AS line, NULL::INT AS file WHERE false)"
    con.execute(f"""
        CREATE TEMP TABLE customer_keys AS
        WITH keys AS (
            SELECT email AS key, min(created_at) AS first_seen, NULL::BIGINT AS export_rank
            FROM {st['orders']} WHERE email IS NOT NULL GROUP BY email
            UNION ALL
            SELECT coalesce(email, 'row:' || file || ':' || line) AS key, NULL, min(file * 10000000000 + line)
            FROM {cust_export} GROUP BY 1
        )
        SELECT key, row_number() OVER (ORDER BY min(first_seen) NULLS LAST, min(export_rank) NULLS LAST, key)
               AS customer_id
        FROM keys GROUP BY key
    """)
    # The order numbers are stored in the staged rows' own order (file, row), so the order rows are
    # put back beside them by position (a POSITIONAL JOIN: no hash table, no sort of 70 columns)
    # and the orders table keeps the staged order it has always had.
    con.execute(f"""
        CREATE TEMP TABLE order_numbers AS
        WITH ids AS (
            SELECT o.file_index AS _file, o.file_row_number AS _row, o.order_seq, o.created_at, o.name, o.is_test,
                   k.customer_id, row_number() OVER (ORDER BY o.created_at, o.name, o.order_seq) AS order_id
            FROM {st['orders']} o LEFT JOIN customer_keys k ON k.key = o.email
        )
        -- test orders are not orders: they take no place in the customer's order history, so a
        -- customer whose only earlier orders were tests is still new on the first real order
        SELECT order_seq, customer_id, order_id,
               CASE WHEN customer_id IS NULL OR is_test THEN NULL ELSE
                    row_number() OVER (PARTITION BY customer_id, is_test ORDER BY created_at, name, order_seq) END
                   AS customer_order_number
        FROM ids ORDER BY _file, _row
    """)
    con.execute(f"""
        CREATE TEMP VIEW orders_final AS
        SELECT o.*, n.customer_id, n.order_id, n.customer_order_number
        FROM {st['orders']} o POSITIONAL JOIN order_numbers n
    """)
    # Every other reader of the orders puts its rows in its own order (or aggregates them), so it
    # joins the numbers by order_seq: a hash join reads the staged parts on every thread, a
    # POSITIONAL JOIN on one (the reconciliation's write took 0.97 s, now 0.44 s, at 1M export lines)
    con.execute(f"""
        CREATE TEMP VIEW orders_numbered AS
        SELECT o.*, n.customer_id, n.order_id, n.customer_order_number
        FROM {st['orders']} o JOIN order_numbers n USING (order_seq)
    """)
    misplaced = con.execute(f"""
        SELECT count(*) FROM (SELECT order_seq FROM {st['orders']}) o
        POSITIONAL JOIN (SELECT order_seq AS numbered_seq FROM order_numbers) n
        WHERE o.order_seq IS DISTINCT FROM n.numbered_seq
    """).fetchone()[0]
    if misplaced:  # cannot happen while a scan of the staged parts keeps their order; never write wrong rows
        raise RuntimeError(f"internal error: {misplaced} order numbers are not beside their staged orders")
    # the line rows' numbers and catalog ids, narrow; their titles come from the (small) catalog
    con.execute("""
        CREATE TEMP TABLE lines AS
        SELECT l.line_seq, l.order_seq, o.order_id,
               row_number() OVER (ORDER BY o.order_id, l.line_seq) AS line_item_id,
               l.variant_id, v.product_id, v.unit_cost, l.sku
        FROM line_variants l JOIN order_numbers o USING (order_seq)
        JOIN catalog_variants v USING (variant_id)
    """)
    con.execute("DROP TABLE line_variants")
    con.execute(r"""
        CREATE TEMP VIEW orders_out AS
        SELECT order_id, name, created_at, customer_id, NULL::BIGINT AS company_id, sales_channel, source_name,
               currency AS presentment_currency, financial_status, fulfillment_status, fulfilled_at,
               CASE WHEN discount_code IS NULL THEN NULL
                    ELSE regexp_split_to_array(trim(discount_code, ' ,'), '\s*,\s*') END
                   AS discount_codes,
               line_count, item_count, line_items_total, total_discounts, subtotal, shipping, taxes, total,
               coalesce(total_refunded, 0) AS total_refunded,
               total - coalesce(total_refunded, 0) AS current_total, shipping_method, cancelled_at, is_test,
               customer_order_number::INTEGER AS customer_order_number,
               CASE WHEN customer_id IS NULL OR is_test THEN NULL ELSE customer_order_number = 1 END AS is_first_order,
               billing_country, billing_region, billing_city, shipping_country, shipping_region, shipping_city
        FROM orders_final
    """)
    con.execute(f"CREATE TEMP VIEW orders_shop AS SELECT *, {sql_literal(currency)} AS shop_currency FROM orders_out")
    counts: dict[str, int] = {}
    counts["orders"] = write_table(con, tmp, "orders", "SELECT * FROM orders_shop")
    counts["line_items"] = write_table(con, tmp, "line_items", f"""
        SELECT n.order_id, n.line_item_id, n.product_id, n.variant_id, p.title, v.title AS variant_title, l.sku,
               l.quantity, l.price, l.gross, l.line_discount, l.allocated_order_discount, l.total_discount, l.net,
               l.tax, n.unit_cost, n.unit_cost * l.quantity AS cost
        FROM {st['lines']} l JOIN lines n USING (line_seq)
        JOIN catalog_variants v ON v.variant_id = n.variant_id JOIN catalog_products p ON p.product_id = n.product_id
        ORDER BY n.line_item_id
    """)
    # The sale ids are numbered over the sort keys and the staged row's position alone (a window
    # without partitions runs on one thread, and its sort carries every column it is given), then
    # the wide rows are joined to them and put in that order by one parallel sort, written straight
    # from the query (materialising every sale first cost more than the sort under the memory cap).
    con.execute(f"""
        CREATE TEMP TABLE sale_ids AS
        SELECT s.file_index::BIGINT << 32 | s.file_row_number AS _position,
               row_number() OVER (ORDER BY s.happened_at, o.order_id, CASE s.event_type WHEN 'order' THEN 0 ELSE 1 END,
                                  s.refund_seq, CASE s.line_type WHEN 'product' THEN 0 ELSE 1 END, s.line_seq)
                   AS sale_id
        FROM {st['sales']} s JOIN (SELECT order_seq, order_id FROM order_numbers) o USING (order_seq)
    """)
    counts["sales"] = write_table(con, tmp, "sales", f"""
        SELECT i.sale_id,
               o.order_id, o.name AS order_name, l.line_item_id, s.happened_at, s.event_type, s.line_type,
               l.product_id, l.variant_id, o.customer_id, NULL::BIGINT AS company_id, o.sales_channel, o.source_name,
               o.billing_country, o.billing_region, o.billing_city, o.shipping_country, o.shipping_region,
               o.shipping_city, o.discount_code,
               CASE WHEN o.customer_id IS NULL THEN NULL ELSE o.customer_order_number = 1 END AS is_first_order,
               s.quantity, s.gross_sales, s.discounts, s.sales_reversals, s.net_sales, s.taxes, s.shipping_charges,
               s.total_sales, CASE WHEN s.line_type = 'product' THEN l.unit_cost * s.quantity END AS cost,
               p.title AS product_title_at_sale, l.sku AS variant_sku_at_sale
        FROM {st['sales']} s JOIN sale_ids i ON i._position = (s.file_index::BIGINT << 32 | s.file_row_number)
        JOIN orders_numbered o USING (order_seq)
        LEFT JOIN lines l ON l.line_seq = s.line_seq
        LEFT JOIN catalog_products p ON p.product_id = l.product_id
        ORDER BY i.sale_id
    """)
    con.execute("DROP TABLE sale_ids")
    con.execute(f"""
        CREATE TEMP TABLE refund_ids AS
        SELECT r.refund_seq, row_number() OVER (ORDER BY r.created_at, o.order_id, r.refund_seq) AS refund_id,
               o.order_id
        FROM {st['refunds']} r JOIN order_numbers o USING (order_seq)
    """)
    counts["refunds"] = write_table(con, tmp, "refunds", f"""
        SELECT i.refund_id, i.order_id, r.created_at, r.kind, NULL AS reason, NULL AS restock, r.line_count,
               r.item_count, r.refunded_subtotal, r.refunded_tax, r.refunded_shipping, r.total_refunded
        FROM {st['refunds']} r JOIN refund_ids i USING (refund_seq) ORDER BY i.refund_id
    """)
    counts["refund_line_items"] = write_table(con, tmp, "refund_line_items", f"""
        SELECT row_number() OVER (ORDER BY i.refund_id, l.line_item_id) AS refund_line_item_id, i.refund_id,
               i.order_id, l.line_item_id, l.product_id, l.variant_id, r.quantity, r.subtotal, r.tax,
               CASE WHEN i2.kind = 'cancellation' THEN 'cancel' END AS restock_type, NULL AS reason
        FROM {st['refund_lines']} r JOIN refund_ids i USING (refund_seq)
        JOIN {st['refunds']} i2 USING (refund_seq)
        JOIN lines l ON l.line_seq = r.line_seq
        ORDER BY 1
    """)
    # products and variants
    counts["products"] = write_table(con, tmp, "products", """
        SELECT p.product_id, p.title, p.handle, p.product_type, p.vendor, p.collection, p.status,
               count(v.variant_id) AS variant_count, min(v.price) AS min_price, max(v.price) AS max_price
        FROM catalog_products p LEFT JOIN catalog_variants v USING (product_id)
        GROUP BY ALL ORDER BY p.product_id
    """)
    counts["variants"] = write_table(con, tmp, "variants", """
        SELECT variant_id, product_id, title, sku, position, price, compare_at_price, unit_cost
        FROM catalog_variants ORDER BY variant_id
    """)
    # customers
    export_cols = ("(SELECT NULL::VARCHAR AS email, NULL::VARCHAR AS first_name, NULL::VARCHAR AS last_name, "
                   "NULL::BOOLEAN AS accepts_marketing, NULL::VARCHAR AS city, NULL::VARCHAR AS region, "
                   "NULL::VARCHAR AS country, NULL::DECIMAL(18,2) AS amount_spent, NULL::INTEGER AS orders_count, "
                   "NULL::VARCHAR AS tags, NULL::BOOLEAN AS tax_exempt, NULL::INTEGER AS file, NULL::BIGINT AS line "
                   "WHERE false)")
    export_cte = f"""export AS (
            SELECT coalesce(email, 'row:' || file || ':' || line) AS key, *
            FROM {customers_sql or export_cols}
            QUALIFY row_number() OVER (PARTITION BY coalesce(email, 'row:' || file || ':' || line) ORDER BY file, line) = 1
        )"""
    _check_amount_spent(con, ctx, export_cte)
    counts["customers"] = write_table(con, tmp, "customers", rf"""
        WITH {export_cte},
        ords AS (
            -- order statistics count real orders only (test orders are not orders)
            SELECT customer_id, count(*) FILTER (WHERE NOT is_test) AS n,
                   min(created_at) FILTER (WHERE NOT is_test) AS first_at,
                   max(created_at) FILTER (WHERE NOT is_test) AS last_at,
                   -- amount spent is what the customer paid: the export's Total (tips and gift cards
                   -- included) less refunds
                   sum(coalesce(export_total, total) - coalesce(total_refunded, 0)) FILTER (WHERE NOT is_test)
                       AS spent,
                   -- the latest order's: order_id numbers the orders by time, then name (two orders
                   -- at the same second left arg_max over created_at to whichever a thread read first)
                   arg_max(billing_name, order_id) AS billing_name,
                   arg_max(billing_country, order_id) AS country, arg_max(billing_region, order_id) AS region,
                   arg_max(billing_city, order_id) AS city, bool_or(accepts_marketing) AS accepts
            FROM orders_numbered WHERE customer_id IS NOT NULL GROUP BY customer_id
        )
        SELECT k.customer_id, e.email AS e_email,
               CASE WHEN k.key LIKE 'row:%' THEN NULL ELSE k.key END AS email,
               coalesce(e.first_name, CASE WHEN o.billing_name IS NOT NULL THEN
                   CASE WHEN strpos(o.billing_name, ' ') > 0 THEN split_part(o.billing_name, ' ', 1) ELSE o.billing_name END
               END) AS first_name,
               coalesce(e.last_name, CASE WHEN strpos(o.billing_name, ' ') > 0
                   THEN substr(o.billing_name, strpos(o.billing_name, ' ') + 1) END) AS last_name,
               nullif(trim(concat_ws(' ', coalesce(e.first_name, CASE WHEN strpos(o.billing_name, ' ') > 0 THEN
                   split_part(o.billing_name, ' ', 1) ELSE o.billing_name END),
                   coalesce(e.last_name, CASE WHEN strpos(o.billing_name, ' ') > 0
                   THEN substr(o.billing_name, strpos(o.billing_name, ' ') + 1) END))), '') AS name,
               CASE WHEN e.tags IS NULL THEN []::VARCHAR[]
                    ELSE regexp_split_to_array(trim(e.tags, ' ,'), '\s*,\s*') END AS tags,
               coalesce(e.country, o.country) AS country, coalesce(e.region, o.region) AS region,
               coalesce(e.city, o.city) AS city, coalesce(e.accepts_marketing, o.accepts) AS accepts_marketing,
               e.tax_exempt, coalesce(e.orders_count, o.n, 0) AS orders_count,
               coalesce(e.amount_spent, o.spent, 0) AS amount_spent, o.first_at AS first_order_at,
               o.last_at AS last_order_at
        FROM customer_keys k LEFT JOIN export e ON e.key = k.key LEFT JOIN ords o ON o.customer_id = k.customer_id
        ORDER BY k.customer_id
    """)
    # checkouts
    if checkout_sql:
        counts["checkouts"] = write_table(con, tmp, "checkouts", f"""
            SELECT coalesce(c.shopify_id, c.checkout_seq) AS checkout_id, c.created_at, NULL AS completed_at,
                   NULL AS session_id, k.customer_id, NULL AS order_id, c.sales_channel, c.stage_reached,
                   true AS is_abandoned, c.email IS NOT NULL AS email_captured, NULL AS recovery_email_sent,
                   false AS recovered, c.value, c.item_count, NULL AS device_type, c.country, c.region
            FROM {checkout_sql} c LEFT JOIN customer_keys k ON k.key = c.email
            ORDER BY c.created_at, checkout_id
        """)
        report.notes.append("checkouts holds the abandoned checkouts export only: completed checkouts are not in it, "
                            "so checkout conversion metrics cannot be computed from it")
    else:
        counts["checkouts"] = write_table(con, tmp, "checkouts", None)
        report.empty_tables["checkouts"] = "no Abandoned checkouts export"
    for table, why in (("sessions", "Shopify admin exports hold no online-store sessions"),
                       ("companies", "admin exports do not identify B2B companies"),
                       ("draft_orders", "admin exports hold no draft orders")):
        counts[table] = write_table(con, tmp, table, None)
        report.empty_tables[table] = why
    if not ctx.counts["orders"]:
        for table in ("orders", "line_items", "sales", "refunds", "refund_line_items"):
            report.empty_tables[table] = "no Orders export"
    # import-specific extra tables
    con.execute("CREATE TEMP TABLE file_names (file INTEGER, path VARCHAR)")
    for idx, sf in ctx.files.items():
        con.execute("INSERT INTO file_names VALUES (?, ?)", [idx, Path(sf.source.path).name])
    counts["reconciliation"] = _write_extra(con, tmp, "reconciliation", """
        SELECT order_id, name AS order_name, n.path AS file, f.line, f.export_total, f.export_subtotal,
               f.export_shipping, f.export_taxes, total_discounts AS booked_discounts,
               f.export_discount, f.export_lines_gross, f.export_refunded, tips, gift_cards, duties, taxes_included,
               shipping_tax_included, lines_vs_subtotal, adjustment, total_residual, booked_total, reversed_total,
               refund_excess, expected_total_sales, refund_date_rule, is_test, currency
        FROM orders_numbered f LEFT JOIN file_names n ON n.file = f.file ORDER BY order_id
    """)
    if inventory_sql and inventory_map:
        # One snapshot: the export is the inventory at one moment, dated the last day the import has
        # orders or transactions for (else the day of the import). On hand is the ending units;
        # starting units, units sold, received and returned need a daily history it does not have.
        day = _snapshot_day(con, transactions_sql, ctx.report.timezone)
        counts["inventory_levels"] = write_table(con, tmp, "inventory_levels", f"""
            SELECT CAST({sql_literal(day.isoformat())} AS DATE) AS day, v.variant_id, v.product_id,
                   coalesce(i.location, 'Default location') AS location, true AS is_tracked,
                   i.on_hand AS ending_units, i.incoming AS incoming_units
            FROM {inventory_sql} i JOIN {inventory_map} m ON m.seq = i.seq
            JOIN catalog_variants v ON v.product_key = m.product_key AND v.title = m.variant_title
                 AND v.sku IS NOT DISTINCT FROM m.variant_sku
            ORDER BY i.seq
        """)
        report.notes.append(f"inventory_levels holds the Inventory export as one snapshot dated {day.isoformat()} "
                            "(on hand as ending units); units sold, received and starting units need daily "
                            "history the export does not have, so they are empty")
    if transactions_sql:
        counts["transactions"] = write_table(con, tmp, "transactions", f"""
            SELECT row_number() OVER (ORDER BY t.created_at, t.file, t.line, o.order_id) AS transaction_id, o.order_id,
                   t.order_name, o.customer_id, t.created_at, t.kind, coalesce(t.status, 'success') AS status,
                   t.gateway, {PAYMENT_METHOD_OF_GATEWAY} AS payment_method, t.card_type AS card_brand,
                   NULL AS is_shop_pay, o.sales_channel, NULL AS location, abs(t.amount) AS amount, NULL AS fee,
                   coalesce(t.currency, {sql_literal(currency)}) AS currency
            FROM {transactions_sql} t LEFT JOIN orders_numbered o ON o.name = t.order_name ORDER BY 1
        """)
    report.row_counts = counts


def _check_amount_spent(con: duckdb.DuckDBPyConnection, ctx: _Context, export_cte: str) -> None:
    """A customer's amount spent (their orders' totals less refunds, where the customers export has
    none) fits the store's DECIMAL(18,2): each order does, but their sum could go beyond it and fail
    the store's cast with no line to name. The error names the customer's first order."""
    bad = con.execute(f"""
        WITH {export_cte},
        spent AS (
            SELECT o.customer_id, k.key,
                   sum(coalesce(o.export_total, o.total) - coalesce(o.total_refunded, 0)) FILTER (WHERE NOT o.is_test)
                       AS spent,
                   min([o.file, o.line]) AS first
            FROM orders_numbered o JOIN customer_keys k USING (customer_id) GROUP BY ALL
        )
        SELECT s.first[1], s.first[2], s.spent FROM spent s LEFT JOIN export e ON e.key = s.key
        WHERE e.amount_spent IS NULL AND abs(s.spent) >= {MAX_CENTS // 100} ORDER BY s.first LIMIT 1
    """).fetchone()
    if bad is None:
        return
    file, line, spent = bad
    email = con.execute("SELECT email FROM orders_numbered WHERE file = ? AND line = ?", [file, line]).fetchone()
    raise CommerceQLImportError(
        f"this customer's orders add up to {_money_text(spent, ctx.currency)} spent, beyond what the store "
        f"holds ({STORE_AMOUNTS})", file=ctx.path(int(file)), line=int(line),
        column=ctx.column(int(file), "email"), value=email[0] if email else None)


def _write_extra(con: duckdb.DuckDBPyConnection, tmp: Path, table: str, sql: str) -> int:
    target = tmp / f"{table}.parquet"
    # COPY answers with the number of rows it wrote
    return int(con.execute(f"COPY ({sql}) TO {sql_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)").fetchone()[0])


# The payment method a Transactions export's gateway stands for (the export has no method column).
PAYMENT_METHOD_OF_GATEWAY = """CASE lower(coalesce(t.gateway, ''))
    WHEN 'shopify_payments' THEN 'Credit card' WHEN 'paypal' THEN 'PayPal' WHEN 'cash' THEN 'Cash'
    WHEN 'gift_card' THEN 'Gift card' WHEN 'manual' THEN 'Manual' WHEN 'shop_cash' THEN 'Shop Cash'
    WHEN '' THEN NULL ELSE t.gateway END"""


def _snapshot_day(con: duckdb.DuckDBPyConnection, transactions_sql: str | None, timezone: str) -> dt.date:
    """The local day an Inventory export is dated: the latest order or transaction, else today."""
    zone = sql_literal(timezone)
    sources = ["SELECT max(created_at) AS t FROM orders_numbered"]
    if transactions_sql:
        sources.append(f"SELECT max(created_at) AS t FROM {transactions_sql}")
    latest = con.execute(
        f"SELECT CAST(timezone({zone}, max(t)) AS DATE) FROM ({' UNION ALL '.join(sources)}) AS s"
    ).fetchone()[0]
    return latest or dt.datetime.now(ZoneInfo(timezone)).date()


# ---------------------------------------------------------------------------------------------
# reconciliation


def _money_text(cents: int | Decimal | None, currency: str) -> str:
    if cents is None:
        return "n/a"
    value = Decimal(cents) if not isinstance(cents, Decimal) else cents
    return f"{value:,.2f} {currency}"


def _reconcile(con: duckdb.DuckDBPyConnection, tmp: Path, report: ImportReport, orders_sql: str, ctx: _Context) -> None:
    """Sum of the export's Total against CommerceQL's total_sales, by a query on the new store."""
    from commerceql.store import connect

    cur = report.currency
    row = con.execute(f"""
        SELECT count(*) AS orders,
               count(*) FILTER (WHERE export_total IS NOT NULL) AS with_total,
               sum(export_total) AS export_total,
               sum(tips) AS tips,
               sum(gift_cards) FILTER (WHERE NOT is_test) AS gift_cards,
               count(*) FILTER (WHERE gift_cards <> 0 AND NOT is_test) AS gift_card_orders,
               sum(shipping_tax_included) FILTER (WHERE NOT is_test) AS ship_tax_incl,
               count(*) FILTER (WHERE shipping_tax_included <> 0 AND NOT is_test) AS ship_tax_orders,
               sum(total_residual) FILTER (WHERE NOT is_test) AS residual,
               count(*) FILTER (WHERE total_residual <> 0 AND NOT is_test) AS residual_orders,
               sum(adjustment) FILTER (WHERE NOT is_test) AS lines_diff,
               count(*) FILTER (WHERE adjustment <> 0 AND NOT is_test) AS lines_orders,
               sum(reversed_total) AS reversed,
               count(*) FILTER (WHERE reversed_total <> 0) AS reversed_orders,
               sum(export_total) FILTER (WHERE is_test) AS test_total,
               count(*) FILTER (WHERE is_test) AS test_orders,
               sum(expected_total_sales) AS expected,
               sum(refund_excess) AS excess,
               count(*) FILTER (WHERE refund_excess <> 0) AS excess_orders,
               count(*) FILTER (WHERE taxes_included) AS incl_orders,
               count(*) FILTER (WHERE refund_date_rule LIKE 'last known%') AS last_known_orders,
               count(*) FILTER (WHERE refund_date_rule = 'refund transactions') AS tx_orders,
               count(*) FILTER (WHERE refund_date_rule = 'cancellation date') AS cancel_orders
        FROM read_parquet({sql_path(tmp / "reconciliation.parquet")})
    """).fetchone()
    names = ["orders", "with_total", "export_total", "tips", "gift_cards", "gift_card_orders", "ship_tax_incl",
             "ship_tax_orders", "residual", "residual_orders", "lines_diff",
             "lines_orders", "reversed", "reversed_orders", "test_total", "test_orders", "expected", "excess",
             "excess_orders", "incl_orders", "last_known_orders", "tx_orders", "cancel_orders"]
    r = dict(zip(names, row, strict=True))
    lines: list[str] = []
    rec: dict[str, Any] = {"orders": r["orders"]}
    if not r["orders"]:
        lines.append("no orders imported: nothing to reconcile")
        report.reconciliation = {"lines": lines, **rec}
        return
    store = connect(tmp)
    try:
        result = store.query("FROM sales SHOW total_sales")
        value = result.df["total_sales"][0] if result.df.height else None
        store_orders = store.query("FROM sales SHOW orders").df["orders"][0]
    finally:
        store.close()
    total_sales = Decimal(str(value)) if value is not None else None
    rec.update({k: r[k] for k in names})
    rec["commerceql_total_sales"] = total_sales
    rec["commerceql_orders"] = store_orders
    if r["with_total"] == 0 or r["export_total"] is None:
        lines.append("the export has no Total column (or no prices): money cannot be reconciled")
        lines.append(f"CommerceQL `FROM sales SHOW orders`: {store_orders:,} (orders imported: {r['orders']:,}, "
                     f"test orders excluded from sales: {r['test_orders']:,})")
        report.reconciliation = {"lines": lines, **rec, "unexplained": None}
        report.warn("the orders export has no prices or totals: money metrics are empty (NULL) in this store")
        return
    expected = r["expected"] or Decimal(0)
    unexplained = (total_sales - expected) if total_sales is not None else None
    rec["unexplained"] = unexplained
    w = 30
    lines.append(f"{'export Σ Total (' + str(r['with_total']) + ' orders)':<{w}} {_money_text(r['export_total'], cur):>24}")
    if r["tips"]:
        lines.append(f"{'- tips (not sales)':<{w}} {_money_text(-(r['tips']), cur):>24}")
    if r["gift_card_orders"]:
        lines.append(f"{'- gift cards sold (' + str(r['gift_card_orders']) + ')':<{w}} "
                     f"{_money_text(-(r['gift_cards']), cur):>24}")
    if r["test_orders"]:
        lines.append(f"{'- test orders (' + str(r['test_orders']) + ')':<{w}} {_money_text(-(r['test_total'] or 0), cur):>24}")
    if r["residual_orders"]:
        lines.append(f"{'- Total not = parts (' + str(r['residual_orders']) + ')':<{w}} "
                     f"{_money_text(-(r['residual']), cur):>24}")
    if r["reversed_orders"]:
        lines.append(f"{'+ reversals (' + str(r['reversed_orders']) + ' orders)':<{w}} {_money_text(r['reversed'], cur):>24}")
    lines.append(f"{'= expected total_sales':<{w}} {_money_text(expected, cur):>24}")
    if r["lines_orders"]:
        # booked, so not a difference: shown because a query may want to leave it out
        lines.append(f"{'  of which adjustments (' + str(r['lines_orders']) + ')':<{w}} "
                     f"{_money_text(r['lines_diff'], cur):>24}   (line_type = 'adjustment')")
    lines.append(f"{'CommerceQL total_sales':<{w}} {_money_text(total_sales, cur):>24}   (FROM sales SHOW total_sales)")
    lines.append(f"{'unexplained difference':<{w}} {_money_text(unexplained, cur):>24}")
    lines.append(f"CommerceQL orders: {store_orders:,} (orders imported: {r['orders']:,})")
    explain = []
    if r["tips"]:
        explain.append("tips are order lines named 'Tip' with no SKU; Shopify does not count them as sales")
    if r["test_orders"]:
        explain.append(f"{r['test_orders']} test orders (paid with Shopify's Bogus Gateway) are not sales")
    if r["residual_orders"]:
        explain.append(f"{r['residual_orders']} orders have a Total that is not Subtotal + Shipping (+ Taxes) + Duties "
                       "+ tips in the export itself; CommerceQL books the parts")
    if r["gift_card_orders"]:
        explain.append(f"{r['gift_card_orders']} orders sold gift cards ({_money_text(r['gift_cards'], cur)}); "
                       "as in Shopify's sales reports they are not sales (a liability until redeemed)")
    if r["lines_orders"]:
        explain.append(f"{r['lines_orders']} orders have line items that do not add up to their Subtotal "
                       "(rows lost in a spreadsheet re-save, or the order edited): the line items are booked as "
                       f"they are and the difference, {_money_text(r['lines_diff'], cur)}, as one adjustment row "
                       "per order (line_type = 'adjustment'; exclude it with WHERE line_type <> 'adjustment')")
    if r["reversed_orders"]:
        explain.append(f"reversals: {r['cancel_orders']} cancelled orders on their cancellation date, "
                       f"{r['tx_orders']} refunds on their refund transaction dates, {r['last_known_orders']} refunds "
                       "on the order's last known date (the orders export has no refund dates)")
    if r["excess_orders"]:
        explain.append(f"{r['excess_orders']} orders were refunded more than their booked total "
                       f"({_money_text(r['excess'], cur)}, e.g. refunded tips); the excess is not booked")
    if ctx.counts["orders_shipping_discount_inferred"]:
        explain.append(f"{ctx.counts['orders_shipping_discount_inferred']} orders have a Total without their Shipping "
                       "and the export has no Discount Amount column: read as free-shipping discounts")
    if r["incl_orders"]:
        explain.append(f"{r['incl_orders']} orders have tax-inclusive prices: their taxes are taken out of gross sales"
                       + (f", except {_money_text(r['ship_tax_incl'], cur)} of tax on shipping in "
                          f"{r['ship_tax_orders']} orders, taken out of shipping" if r["ship_tax_orders"] else ""))
    if ctx.counts["orders_shipping_tax_unknown"]:
        explain.append(f"{ctx.counts['orders_shipping_tax_unknown']} tax-inclusive orders with shipping name no tax "
                       "rate: all their taxes are taken out of gross sales (tax on shipping cannot be split)")
    if ctx.counts["refunds_allocated_proportionally"]:
        explain.append(f"{ctx.counts['refunds_allocated_proportionally']} partial refunds matched no set of whole "
                       "units: they are spread over the order in proportion, with quantity 0")
    lines.extend(f"note: {e}" for e in explain)
    if unexplained:
        report.warn(f"the reconciliation has an unexplained difference of {_money_text(unexplained, cur)}")
    report.reconciliation = {"lines": lines, **rec}


__all__ = ["classify", "import_shopify"]
