"""Import Shopify admin CSV exports (Orders, Customers, Products, Abandoned checkouts, Inventory,
Transactions) into a CommerceQL store folder.

    from commerceql.importers import import_shopify
    report = import_shopify(["exports/"], "my-store")
    print(report.render())

How it works (see docs/importing.md for the rules and assumptions):

1. Every file is classified by its header (columns are matched by name, so every header generation
   works) and streamed record by record into Parquet "staging" parts of raw strings, with the
   line number where each record starts. Timestamps are scanned on the way to learn their style
   (UTC offsets, or day-first/month-first dates of a spreadsheet copy) and the store's time zone.
2. Orders (and abandoned checkouts) are read back grouped by order `Name` (DuckDB sorts out of core),
   and each order is turned into sales-fact rows in integer cents: product lines and shipping on the
   order date, reversals on the refund or cancellation date.
3. DuckDB assembles the store tables (ids, customers, products, first orders) and writes Parquet
   files with the exact schema of the sample store; the reconciliation runs a CommerceQL query on the
   new store before it is moved into place.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
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
    MONEY_CENTS,
    TIMESTAMP_US,
    CommerceQLImportError,
    ImportReport,
    Progress,
    SourceFile,
    Stager,
    TimestampParser,
    TimestampStyle,
    ValueError_,
    arrow_rows,
    atomic_store_dir,
    check_currency,
    check_timezone,
    clean_text,
    country_code,
    country_name,
    detect_timezone,
    is_scientific,
    new_connection,
    normalize_header,
    now_iso,
    open_csv,
    parse_bool,
    parse_cents,
    parse_int,
    sales_channel_of,
    sha256_of,
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
            if value and not style[key].observe(value):
                raise CommerceQLImportError(
                    "cannot read this date and time", file=path, line=line,
                    column=classified.names[key], value=value,
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
            raise self.fail(row, key, f"{exc} in a money column",
                            "amounts are written like 1234.50 (a dot for decimals, no currency sign)") from None

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


class OrderBuilder:
    """Turns the rows of one order into staged order, line, sales and refund records."""

    def __init__(self, ctx: _Context, out: dict[str, Stager]) -> None:
        self.ctx = ctx
        self.out = out

    # -- one order ---------------------------------------------------------------------------
    def build(self, rows: list[dict[str, Any]]) -> None:
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

        ctx.order_seq += 1
        order_seq = ctx.order_seq
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
            ctx.line_seq += 1
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
    if s is None or not s.isdigit():
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
    # ---- phase 1: classify and stage every file
    staged: dict[int, StagedFile] = {}
    for index, path in enumerate(files):
        csv_head = open_csv(path)
        header = csv_head.header
        csv_head.close()
        classified = classify(path, header)
        source = SourceFile(path=str(path), kind=classified.kind, sha256=sha256_of(path), bytes=path.stat().st_size)
        if classified.kind == "unknown":
            source.note = classified.reason
            report.ignored.append(source)
            continue
        st = _stage(classified, index, source, work, progress)
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
    out = {
        "orders": Stager(work / "orders", list(ORDER_STAGE_COLUMNS), ORDER_STAGE_COLUMNS),
        "lines": Stager(work / "lines", list(LINE_STAGE_COLUMNS), LINE_STAGE_COLUMNS),
        "sales": Stager(work / "sales", list(SALE_STAGE_COLUMNS), SALE_STAGE_COLUMNS),
        "refunds": Stager(work / "refunds", list(REFUND_STAGE_COLUMNS), REFUND_STAGE_COLUMNS),
        "refund_lines": Stager(work / "refund_lines", list(REFUND_LINE_STAGE_COLUMNS), REFUND_LINE_STAGE_COLUMNS),
    }
    builder = OrderBuilder(ctx, out)
    order_files = by_kind.get("orders", [])
    if order_files:
        union = _union(con, order_files, list(ORDER_COLUMNS))
        if len(order_files) == 1 and order_files[0].contiguous:
            # the usual case: rows of one order are adjacent; stream in file order without sorting
            grouped_sql = union
        else:
            grouped_sql = f"SELECT * FROM ({union}) ORDER BY name, _file, _line"
        total_rows = sum(st.source.records for st in order_files)
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
    staged_sql = {key: stager.close() for key, stager in out.items()}
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
    distinct = arrow_rows(
        con, f"SELECT name, sku, any_value(vendor) AS vendor, arg_max(price, line_seq) AS price, "
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
    con.execute(f"""
        CREATE TEMP TABLE lines AS
        SELECT l.*, v.product_id, v.variant_id, p.title AS product_title, v.title AS variant_title,
               v.unit_cost
        FROM {st['lines']} l
        JOIN {line_map} m ON m.name = l.name AND m.sku IS NOT DISTINCT FROM l.sku
        JOIN catalog_variants v ON v.product_key = m.product_key AND v.title = m.variant_title
             AND v.sku IS NOT DISTINCT FROM m.variant_sku
        JOIN catalog_products p ON p.product_id = v.product_id
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
    con.execute(f"""
        CREATE TEMP TABLE orders_final AS
        WITH o AS (
            SELECT o.*, k.customer_id,
                   row_number() OVER (ORDER BY o.created_at, o.name, o.order_seq) AS order_id
            FROM {st['orders']} o LEFT JOIN customer_keys k ON k.key = o.email
        )
        -- test orders are not orders: they take no place in the customer's order history, so a
        -- customer whose only earlier orders were tests is still new on the first real order
        SELECT o.*,
               CASE WHEN customer_id IS NULL OR is_test THEN NULL ELSE
                    row_number() OVER (PARTITION BY customer_id, is_test ORDER BY created_at, name, order_seq) END
                   AS customer_order_number
        FROM o
    """)
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
    counts["line_items"] = write_table(con, tmp, "line_items", """
        SELECT l.line_seq AS _seq, o.order_id, row_number() OVER (ORDER BY o.order_id, l.line_seq) AS line_item_id,
               l.product_id, l.variant_id, l.product_title AS title, l.variant_title, l.sku, l.quantity, l.price,
               l.gross, l.line_discount, l.allocated_order_discount, l.total_discount, l.net, l.tax,
               l.unit_cost, l.unit_cost * l.quantity AS cost
        FROM lines l JOIN orders_final o USING (order_seq)
    """)
    con.execute("""
        CREATE TEMP TABLE line_ids AS
        SELECT l.line_seq, row_number() OVER (ORDER BY o.order_id, l.line_seq) AS line_item_id
        FROM lines l JOIN orders_final o USING (order_seq)
    """)
    con.execute(f"""
        CREATE TEMP TABLE sales_final AS
        SELECT row_number() OVER (ORDER BY s.happened_at, o.order_id,
                                  CASE s.event_type WHEN 'order' THEN 0 ELSE 1 END, s.refund_seq,
                                  CASE s.line_type WHEN 'product' THEN 0 ELSE 1 END, s.line_seq) AS sale_id,
               o.order_id, o.name AS order_name, li.line_item_id, s.happened_at, s.event_type, s.line_type,
               l.product_id, l.variant_id, o.customer_id, NULL::BIGINT AS company_id, o.sales_channel, o.source_name,
               o.billing_country, o.billing_region, o.billing_city, o.shipping_country, o.shipping_region,
               o.shipping_city, o.discount_code,
               CASE WHEN o.customer_id IS NULL THEN NULL ELSE o.customer_order_number = 1 END AS is_first_order,
               s.quantity, s.gross_sales, s.discounts, s.sales_reversals, s.net_sales, s.taxes, s.shipping_charges,
               s.total_sales, CASE WHEN s.line_type = 'product' THEN l.unit_cost * s.quantity END AS cost,
               l.product_title AS product_title_at_sale, l.sku AS variant_sku_at_sale
        FROM {st['sales']} s
        JOIN orders_final o USING (order_seq)
        LEFT JOIN lines l ON l.line_seq = s.line_seq
        LEFT JOIN line_ids li ON li.line_seq = s.line_seq
    """)
    counts["sales"] = write_table(con, tmp, "sales", "SELECT * FROM sales_final")
    con.execute(f"""
        CREATE TEMP TABLE refund_ids AS
        SELECT r.refund_seq, row_number() OVER (ORDER BY r.created_at, o.order_id, r.refund_seq) AS refund_id,
               o.order_id
        FROM {st['refunds']} r JOIN orders_final o USING (order_seq)
    """)
    counts["refunds"] = write_table(con, tmp, "refunds", f"""
        SELECT i.refund_id, i.order_id, r.created_at, r.kind, NULL AS reason, NULL AS restock, r.line_count,
               r.item_count, r.refunded_subtotal, r.refunded_tax, r.refunded_shipping, r.total_refunded
        FROM {st['refunds']} r JOIN refund_ids i USING (refund_seq) ORDER BY i.refund_id
    """)
    counts["refund_line_items"] = write_table(con, tmp, "refund_line_items", f"""
        SELECT row_number() OVER (ORDER BY i.refund_id, li.line_item_id) AS refund_line_item_id, i.refund_id,
               i.order_id, li.line_item_id, l.product_id, l.variant_id, r.quantity, r.subtotal, r.tax,
               CASE WHEN i2.kind = 'cancellation' THEN 'cancel' END AS restock_type, NULL AS reason
        FROM {st['refund_lines']} r JOIN refund_ids i USING (refund_seq)
        JOIN {st['refunds']} i2 USING (refund_seq)
        JOIN lines l ON l.line_seq = r.line_seq JOIN line_ids li ON li.line_seq = r.line_seq
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
    counts["customers"] = write_table(con, tmp, "customers", rf"""
        WITH export AS (
            SELECT coalesce(email, 'row:' || file || ':' || line) AS key, *
            FROM {customers_sql or export_cols}
            QUALIFY row_number() OVER (PARTITION BY coalesce(email, 'row:' || file || ':' || line) ORDER BY file, line) = 1
        ),
        ords AS (
            -- order statistics count real orders only (test orders are not orders)
            SELECT customer_id, count(*) FILTER (WHERE NOT is_test) AS n,
                   min(created_at) FILTER (WHERE NOT is_test) AS first_at,
                   max(created_at) FILTER (WHERE NOT is_test) AS last_at,
                   -- amount spent is what the customer paid: the export's Total (tips and gift cards
                   -- included) less refunds
                   sum(coalesce(export_total, total) - coalesce(total_refunded, 0)) FILTER (WHERE NOT is_test)
                       AS spent,
                   arg_max(billing_name, created_at) AS billing_name,
                   arg_max(billing_country, created_at) AS country, arg_max(billing_region, created_at) AS region,
                   arg_max(billing_city, created_at) AS city, bool_or(accepts_marketing) AS accepts
            FROM orders_final WHERE customer_id IS NOT NULL GROUP BY customer_id
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
        FROM orders_final f LEFT JOIN file_names n ON n.file = f.file ORDER BY order_id
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
            SELECT row_number() OVER (ORDER BY t.created_at, t.file, t.line) AS transaction_id, o.order_id,
                   t.order_name, o.customer_id, t.created_at, t.kind, coalesce(t.status, 'success') AS status,
                   t.gateway, {PAYMENT_METHOD_OF_GATEWAY} AS payment_method, t.card_type AS card_brand,
                   NULL AS is_shop_pay, o.sales_channel, NULL AS location, abs(t.amount) AS amount, NULL AS fee,
                   coalesce(t.currency, {sql_literal(currency)}) AS currency
            FROM {transactions_sql} t LEFT JOIN orders_final o ON o.name = t.order_name ORDER BY 1
        """)
    report.row_counts = counts


def _write_extra(con: duckdb.DuckDBPyConnection, tmp: Path, table: str, sql: str) -> int:
    target = tmp / f"{table}.parquet"
    con.execute(f"COPY ({sql}) TO {sql_literal(str(target))} (FORMAT parquet, COMPRESSION zstd)")
    return int(con.execute(f"SELECT count(*) FROM read_parquet({sql_path(target)})").fetchone()[0])


# The payment method a Transactions export's gateway stands for (the export has no method column).
PAYMENT_METHOD_OF_GATEWAY = """CASE lower(coalesce(t.gateway, ''))
    WHEN 'shopify_payments' THEN 'Credit card' WHEN 'paypal' THEN 'PayPal' WHEN 'cash' THEN 'Cash'
    WHEN 'gift_card' THEN 'Gift card' WHEN 'manual' THEN 'Manual' WHEN 'shop_cash' THEN 'Shop Cash'
    WHEN '' THEN NULL ELSE t.gateway END"""


def _snapshot_day(con: duckdb.DuckDBPyConnection, transactions_sql: str | None, timezone: str) -> dt.date:
    """The local day an Inventory export is dated: the latest order or transaction, else today."""
    zone = sql_literal(timezone)
    sources = ["SELECT max(created_at) AS t FROM orders_final"]
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
