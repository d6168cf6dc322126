"""Shared machinery of the importers: the store schema, errors, the import report, atomic output,
progress, CSV reading with line numbers, value parsers, time-zone detection and country names.

Every importer writes a store folder with the same tables as the sample generator
(`commerceql/sample/generator.py`), column for column and type for type, so that every built-in
query runs unchanged on an imported store. Tables a source cannot fill are written empty with the
right schema and listed under `empty_tables` in the manifest; the optional tables only an export of
their own fills (inventory levels, payment transactions) are also named under `missing_tables` with
the export they need.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from commerceql.errors import CommerceQLDataError

FORMAT = "commerceql-store"
FORMAT_VERSION = 1
IMPORTER_VERSION = 1

MONEY = "DECIMAL(18,2)"
TS = "TIMESTAMPTZ"

# The physical schema of a store, as the sample generator writes it (see commerceql/sample/generator.py).
# tests/test_import_table.py checks this against a freshly generated sample store.
SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "products": [
        ("product_id", "BIGINT"), ("title", "VARCHAR"), ("handle", "VARCHAR"), ("product_type", "VARCHAR"),
        ("vendor", "VARCHAR"), ("collection", "VARCHAR"), ("status", "VARCHAR"), ("created_at", TS),
        ("discontinued_at", TS), ("variant_count", "INTEGER"), ("min_price", MONEY), ("max_price", MONEY),
        ("title_before_rename", "VARCHAR"), ("renamed_at", TS),
    ],
    "variants": [
        ("variant_id", "BIGINT"), ("product_id", "BIGINT"), ("title", "VARCHAR"), ("sku", "VARCHAR"),
        ("position", "INTEGER"), ("price", MONEY), ("compare_at_price", MONEY), ("unit_cost", MONEY),
        ("created_at", TS), ("sku_before_change", "VARCHAR"), ("sku_changed_at", TS),
    ],
    "companies": [
        ("company_id", "BIGINT"), ("name", "VARCHAR"), ("industry", "VARCHAR"), ("tier", "VARCHAR"),
        ("region", "VARCHAR"), ("country", "VARCHAR"), ("state", "VARCHAR"), ("city", "VARCHAR"),
        ("payment_terms", "VARCHAR"), ("sales_rep", "VARCHAR"), ("price_list", "VARCHAR"),
        ("price_list_discount_pct", "INTEGER"), ("tax_exempt", "BOOLEAN"), ("main_contact_customer_id", "BIGINT"),
        ("created_at", TS),
    ],
    "customers": [
        ("customer_id", "BIGINT"), ("email", "VARCHAR"), ("first_name", "VARCHAR"), ("last_name", "VARCHAR"),
        ("name", "VARCHAR"), ("tags", "VARCHAR[]"), ("country", "VARCHAR"), ("region", "VARCHAR"),
        ("city", "VARCHAR"), ("accepts_marketing", "BOOLEAN"), ("created_at", TS), ("company_id", "BIGINT"),
        ("role", "VARCHAR"), ("tax_exempt", "BOOLEAN"), ("orders_count", "INTEGER"), ("amount_spent", MONEY),
        ("first_order_at", TS), ("last_order_at", TS), ("rfm_group", "VARCHAR"),
    ],
    "orders": [
        ("order_id", "BIGINT"), ("name", "VARCHAR"), ("created_at", TS), ("customer_id", "BIGINT"),
        ("company_id", "BIGINT"), ("buyer_role", "VARCHAR"), ("sales_channel", "VARCHAR"), ("source_name", "VARCHAR"),
        ("referrer_source", "VARCHAR"), ("referring_channel", "VARCHAR"), ("presentment_currency", "VARCHAR"),
        ("shop_currency", "VARCHAR"), ("financial_status", "VARCHAR"), ("fulfillment_status", "VARCHAR"),
        ("fulfilled_at", TS), ("discount_codes", "VARCHAR[]"), ("line_count", "INTEGER"), ("item_count", "INTEGER"),
        ("line_items_total", MONEY), ("total_discounts", MONEY), ("subtotal", MONEY), ("shipping", MONEY),
        ("taxes", MONEY), ("total", MONEY), ("total_refunded", MONEY), ("current_total", MONEY),
        ("shipping_method", "VARCHAR"), ("tax_exempt", "BOOLEAN"), ("cancelled_at", TS), ("cancel_reason", "VARCHAR"),
        ("is_test", "BOOLEAN"), ("customer_order_number", "INTEGER"), ("is_first_order", "BOOLEAN"),
        ("billing_country", "VARCHAR"), ("billing_region", "VARCHAR"), ("billing_city", "VARCHAR"),
        ("shipping_country", "VARCHAR"), ("shipping_region", "VARCHAR"), ("shipping_city", "VARCHAR"),
        ("payment_terms", "VARCHAR"), ("payment_due_at", TS), ("paid_at", TS), ("invoice_status", "VARCHAR"),
        ("days_past_due", "INTEGER"),
    ],
    "line_items": [
        ("line_item_id", "BIGINT"), ("order_id", "BIGINT"), ("product_id", "BIGINT"), ("variant_id", "BIGINT"),
        ("title", "VARCHAR"), ("variant_title", "VARCHAR"), ("sku", "VARCHAR"), ("quantity", "INTEGER"),
        ("price", MONEY), ("gross", MONEY), ("line_discount", MONEY), ("allocated_order_discount", MONEY),
        ("total_discount", MONEY), ("net", MONEY), ("tax", MONEY), ("unit_cost", MONEY), ("cost", MONEY),
        ("price_list", "VARCHAR"), ("contract_price", MONEY), ("volume_break", "VARCHAR"), ("contract_discount", MONEY),
        ("volume_break_discount", MONEY),
    ],
    "refunds": [
        ("refund_id", "BIGINT"), ("order_id", "BIGINT"), ("created_at", TS), ("kind", "VARCHAR"), ("reason", "VARCHAR"),
        ("restock", "BOOLEAN"), ("line_count", "INTEGER"), ("item_count", "INTEGER"), ("refunded_subtotal", MONEY),
        ("refunded_tax", MONEY), ("refunded_shipping", MONEY), ("total_refunded", MONEY),
    ],
    "refund_line_items": [
        ("refund_line_item_id", "BIGINT"), ("refund_id", "BIGINT"), ("order_id", "BIGINT"), ("line_item_id", "BIGINT"),
        ("product_id", "BIGINT"), ("variant_id", "BIGINT"), ("quantity", "INTEGER"), ("subtotal", MONEY),
        ("tax", MONEY), ("restock_type", "VARCHAR"), ("reason", "VARCHAR"),
    ],
    "checkouts": [
        ("checkout_id", "BIGINT"), ("created_at", TS), ("completed_at", TS), ("session_id", "BIGINT"),
        ("customer_id", "BIGINT"), ("order_id", "BIGINT"), ("sales_channel", "VARCHAR"), ("stage_reached", "VARCHAR"),
        ("is_abandoned", "BOOLEAN"), ("email_captured", "BOOLEAN"), ("recovery_email_sent", "BOOLEAN"),
        ("recovered", "BOOLEAN"), ("value", MONEY), ("item_count", "INTEGER"), ("device_type", "VARCHAR"),
        ("country", "VARCHAR"), ("region", "VARCHAR"),
    ],
    "sessions": [
        ("session_id", "BIGINT"), ("started_at", TS), ("duration_seconds", "INTEGER"), ("pageviews", "INTEGER"),
        ("bounced", "BOOLEAN"), ("visitor_id", "BIGINT"), ("customer_id", "BIGINT"), ("referrer_source", "VARCHAR"),
        ("referring_channel", "VARCHAR"), ("device_type", "VARCHAR"), ("country", "VARCHAR"), ("region", "VARCHAR"),
        ("landing_page_path", "VARCHAR"), ("landing_page_type", "VARCHAR"),
        ("human_or_bot", "VARCHAR"), ("added_to_cart", "BOOLEAN"), ("reached_checkout", "BOOLEAN"),
        ("completed_checkout", "BOOLEAN"), ("order_id", "BIGINT"),
        ("sales_channel", "VARCHAR"),
    ],
    "draft_orders": [
        ("draft_order_id", "BIGINT"), ("name", "VARCHAR"), ("status", "VARCHAR"), ("created_at", TS),
        ("invoice_sent_at", TS), ("completed_at", TS), ("expires_at", TS), ("order_id", "BIGINT"),
        ("customer_id", "BIGINT"), ("company_id", "BIGINT"), ("sales_rep", "VARCHAR"), ("line_count", "INTEGER"),
        ("item_count", "INTEGER"), ("subtotal", MONEY), ("taxes", MONEY), ("shipping", MONEY), ("total", MONEY),
        ("tax_exempt", "BOOLEAN"),
        ("payment_terms", "VARCHAR"), ("payment_due_at", TS),
    ],
    "sales": [
        ("sale_id", "BIGINT"), ("order_id", "BIGINT"), ("order_name", "VARCHAR"), ("line_item_id", "BIGINT"),
        ("happened_at", TS), ("event_type", "VARCHAR"), ("line_type", "VARCHAR"), ("product_id", "BIGINT"),
        ("variant_id", "BIGINT"), ("customer_id", "BIGINT"), ("company_id", "BIGINT"), ("sales_channel", "VARCHAR"),
        ("source_name", "VARCHAR"), ("billing_country", "VARCHAR"), ("billing_region", "VARCHAR"),
        ("billing_city", "VARCHAR"), ("shipping_country", "VARCHAR"), ("shipping_region", "VARCHAR"),
        ("shipping_city", "VARCHAR"), ("discount_code", "VARCHAR"), ("is_first_order", "BOOLEAN"),
        ("quantity", "INTEGER"), ("gross_sales", MONEY), ("discounts", MONEY), ("sales_reversals", MONEY),
        ("net_sales", MONEY), ("taxes", MONEY), ("shipping_charges", MONEY), ("total_sales", MONEY), ("cost", MONEY),
        ("product_title_at_sale", "VARCHAR"), ("variant_sku_at_sale", "VARCHAR"),
        ("price_list", "VARCHAR"), ("volume_break", "VARCHAR"), ("contract_discounts", MONEY),
        ("volume_break_discounts", MONEY),
    ],
}
TABLES = tuple(SCHEMAS)

# Tables only an export of their own can fill (the sample store has them). A store imported
# without that export gets the table empty, with the exact schema, and names it under
# `missing_tables` with the export it needs, so a query on it can be refused with that reason
# (rather than answered with zeros that look like data).
OPTIONAL_SCHEMAS: dict[str, list[tuple[str, str]]] = {
    "inventory_levels": [
        ("day", "DATE"), ("variant_id", "BIGINT"), ("product_id", "BIGINT"), ("location", "VARCHAR"),
        ("is_tracked", "BOOLEAN"), ("starting_units", "INTEGER"), ("units_received", "INTEGER"),
        ("units_sold", "INTEGER"), ("units_returned", "INTEGER"), ("ending_units", "INTEGER"),
        ("incoming_units", "INTEGER"), ("units_sold_trailing_30_days", "INTEGER"),
    ],
    "transactions": [
        ("transaction_id", "BIGINT"), ("order_id", "BIGINT"), ("order_name", "VARCHAR"), ("customer_id", "BIGINT"),
        ("created_at", TS), ("kind", "VARCHAR"), ("status", "VARCHAR"), ("gateway", "VARCHAR"),
        ("payment_method", "VARCHAR"), ("card_brand", "VARCHAR"), ("is_shop_pay", "BOOLEAN"),
        ("sales_channel", "VARCHAR"), ("location", "VARCHAR"), ("amount", MONEY), ("fee", MONEY),
        ("currency", "VARCHAR"),
    ],
}
# What each optional table needs, said when a store has no data for it.
OPTIONAL_SOURCES = {
    "inventory_levels": "no Inventory export was imported (Shopify admin: Products > Inventory > Export)",
    "transactions": "no Transactions export was imported (Shopify admin: Orders > Export > Transactions)",
}

# Where a sales-channel name comes from Shopify's `Source` (source_name) column.
CHANNEL_OF_SOURCE = {
    "web": "Online Store",
    "pos": "Point of Sale",
    "shopify_draft_order": "Draft Orders",
    "draft_order": "Draft Orders",
    "iphone": "Shopify Mobile",
    "android": "Shopify Mobile",
    "b2b": "Wholesale",
    "b2b_portal": "Wholesale",
    "subscription_contract": "Subscriptions",
    "tiktok": "TikTok",
    "facebook": "Facebook & Instagram",
    "instagram": "Facebook & Instagram",
    "google": "Google & YouTube",
    "amazon": "Amazon",
    "ebay": "eBay",
}


def sales_channel_of(source: str | None) -> str | None:
    """The sales channel name for a Shopify `Source` value (apps appear as a numeric app id)."""
    if source is None or source == "":
        return None
    known = CHANNEL_OF_SOURCE.get(source.strip().lower())
    if known:
        return known
    if source.isdigit():
        return f"App {source}"
    return source


# ---------------------------------------------------------------------------------------------
# errors


class CommerceQLImportError(CommerceQLDataError):
    """A source file cannot be imported: names the file and, when known, the line and the column."""

    kind = "import error"

    def __init__(
        self,
        message: str,
        *,
        file: str | os.PathLike[str] | None = None,
        line: int | None = None,
        column: str | None = None,
        value: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = []
        if file is not None:
            where.append(str(file))
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column `{column}`")
        text = message
        if value is not None:
            shown = value if len(value) <= 60 else value[:57] + "..."
            text = f"{message}: {shown!r}"
        full = f"{', '.join(where)}: {text}" if where else text
        super().__init__(full, hint=hint)
        self.file = None if file is None else str(file)
        self.line_number = line
        self.column_name = column
        self.value = value


class CommerceQLMappingError(CommerceQLDataError):
    """A mapping file (TOML) is malformed or refers to something that does not exist."""

    kind = "mapping error"


# ---------------------------------------------------------------------------------------------
# the report


@dataclass
class SourceFile:
    path: str
    kind: str
    sha256: str
    bytes: int
    records: int = 0
    note: str | None = None


@dataclass
class SkippedRow:
    file: str
    line: int
    reason: str


@dataclass
class ImportReport:
    """What an import read, wrote, skipped and how the money reconciles. Printed after every import."""

    source_kind: str
    out_dir: str = ""
    store_name: str = ""
    currency: str = ""
    timezone: str = ""
    timezone_reason: str = ""
    files: list[SourceFile] = field(default_factory=list)
    ignored: list[SourceFile] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)
    skipped: list[SkippedRow] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    reconciliation: dict[str, Any] = field(default_factory=dict)
    empty_tables: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def skip(self, file: str | os.PathLike[str], line: int, reason: str) -> None:
        self.skipped.append(SkippedRow(str(file), int(line), reason))

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source_kind": self.source_kind,
            "out_dir": self.out_dir,
            "store_name": self.store_name,
            "currency": self.currency,
            "timezone": self.timezone,
            "timezone_reason": self.timezone_reason,
            "files": [vars(f) for f in self.files],
            "ignored": [vars(f) for f in self.ignored],
            "counts": self.counts,
            "row_counts": self.row_counts,
            "skipped": [vars(s) for s in self.skipped],
            "warnings": self.warnings,
            "notes": self.notes,
            "reconciliation": _jsonable(self.reconciliation),
            "empty_tables": self.empty_tables,
            "seconds": round(self.seconds, 3),
        }

    def render(self, *, max_skipped: int = 50) -> str:
        """The reconciliation as printed after an import."""
        out: list[str] = []
        out.append(f"Imported {self.store_name!r} into {self.out_dir}")
        out.append(f"  currency {self.currency}, time zone {self.timezone} ({self.timezone_reason})")
        out.append("")
        out.append("Files read:")
        for f in self.files:
            extra = f" - {f.note}" if f.note else ""
            out.append(f"  {f.kind:<20} {f.records:>9,} rows  {f.path}{extra}")
        for f in self.ignored:
            out.append(f"  {'(not imported)':<20} {'':>14}  {f.path} - {f.note}")
        out.append("")
        if self.counts:
            out.append("Read:")
            for key, value in self.counts.items():
                out.append(f"  {key.replace('_', ' '):<34} {value:>10,}")
            out.append("")
        out.append("Store tables written (rows):")
        for key, value in self.row_counts.items():
            why = f"  (empty: {self.empty_tables[key]})" if key in self.empty_tables else ""
            out.append(f"  {key:<20} {value:>12,}{why}")
        out.append("")
        out.append(f"Rows skipped: {len(self.skipped)}")
        for row in self.skipped[:max_skipped]:
            out.append(f"  {row.file}, line {row.line}: {row.reason}")
        if len(self.skipped) > max_skipped:
            out.append(f"  ... and {len(self.skipped) - max_skipped} more (all listed in import_report.json)")
        rec = self.reconciliation
        if rec:
            out.append("")
            out.append("Reconciliation:")
            for line in rec.get("lines", []):
                out.append(f"  {line}")
        if self.warnings:
            out.append("")
            out.append("Warnings:")
            for w in self.warnings:
                out.append(f"  - {w}")
        if self.notes:
            out.append("")
            out.append("Notes:")
            for n in self.notes:
                out.append(f"  - {n}")
        out.append("")
        out.append(f"Done in {self.seconds:.1f}s.")
        return "\n".join(out)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------------------------------
# output: the store folder, written so that readers and other imports never see it half-done
#
# An imported store folder holds one *version folder* per import and a manifest naming its files:
#
#     STORE/manifest.json            tables -> "v-<stamp>-<random>/sales.parquet", written last
#     STORE/v-<stamp>-<random>/      the import's tables, import_report.json, mapping.toml, model/
#     STORE/model -> v-.../model     (a relative symbolic link, when the import wrote a model)
#     STORE/import_report.json       a copy of the version's report, for people
#
# An import writes a hidden staging folder inside STORE, renames it to its version name and then
# replaces manifest.json in one os.replace: a reader opens either the old manifest (and the old,
# untouched files) or the new one. Open stores re-read their Parquet files at every query, so
# the version a manifest replaced stays on disk until the next import ("previous_files" in the
# manifest); older versions, staging folders of killed imports and the files of the flat layout
# older stores used are removed by the next import into the folder. One import at a time holds
# the lock file `.STORE.lock` next to the folder; a second one fails at once with the holder's pid.

LOCK_SUFFIX = ".lock"
STAGING_PREFIX = ".importing-"
VERSION_PREFIX = "v-"
READERS_FILE = ".readers"
# Test hook: a name from _CRASH_POINTS makes the writing process die there (os._exit(137), as if
# SIGKILLed), so tests can check what a killed import leaves behind without racing a kill signal.
CRASH_ENV = "COMMERCEQL_TEST_CRASH_AT"
_CRASH_POINTS = ("staging", "before-swap", "after-swap")


def _crash_point(name: str) -> None:
    if os.environ.get(CRASH_ENV) == name:
        os._exit(137)


def _os_error(action: str, path: Path, exc: OSError) -> CommerceQLDataError:
    """An OSError as one clear line: what was being done, to which path, and why it failed."""
    reason = exc.strerror or str(exc)
    hint = None
    if isinstance(exc, PermissionError):
        hint = "choose a folder you can write to with --out"
    elif isinstance(exc, (NotADirectoryError, FileExistsError)):
        hint = "a part of the --out path is a file, not a folder"
    return CommerceQLDataError(f"cannot {action} {path}: {reason.lower()}", hint=hint)


def lock_path_for(target: Path) -> Path:
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _flock(handle: Any, *, wait: bool, shared: bool = False) -> bool:
    """Take an advisory lock on an open file; False when `wait` is off and someone else holds it."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no locking, as before
        return True
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        fcntl.flock(handle.fileno(), mode if wait else mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def target_lock(target: Path, *, wait: bool = False, what: str = "import") -> Iterator[None]:
    """Hold the lock file `.NAME.lock` next to `target` for the block.

    With `wait` off, a held lock raises at once, naming the holder's pid. The file is removed
    when the block ends; whoever waited on the removed file notices (its inode is no longer the
    path's) and locks the new one, so two holders never coexist.
    """
    lock_path = lock_path_for(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _os_error("create the folder", target.parent, exc) from exc
    while True:
        try:
            handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise _os_error("write the lock file", lock_path, exc) from exc
        if not _flock(handle, wait=wait):
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise CommerceQLDataError(
                f"another {what} into {target} is running (pid {holder})",
                hint=f"wait for it to finish; if no such process exists, delete {lock_path}",
            )
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # the holder we waited for removed this file: lock the current one
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        try:
            os.unlink(lock_path)  # while still locked: nobody can take a lock on a file being removed
        except OSError:
            pass
        handle.close()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink()
        except OSError:
            pass


def clean_stale_siblings(target: Path) -> None:
    """Remove what killed writers of the older code left next to `target` (call under its lock).

    Those wrote `.NAME-importing-*` / `.NAME-generating-*` staging folders and `.NAME-old-PID`
    folders beside the store; under the lock no live writer of this code owns one.
    """
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        if entry.name.startswith(f".{target.name}-") and entry.is_dir() and any(
            entry.name.startswith(f".{target.name}-{label}-") for label in ("importing", "generating", "old")
        ):
            shutil.rmtree(entry, ignore_errors=True)


def _table_files(manifest: dict[str, Any] | None) -> set[str]:
    tables = (manifest or {}).get("tables")
    if not isinstance(tables, dict):
        return set()
    return {str(v) for v in tables.values() if isinstance(v, str)}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _version_in_use(folder: Path) -> bool:
    """Whether an open store holds a shared lock on the version's `.readers` file.

    (Stores that take that lock keep their version from removal however many imports follow.)
    """
    readers = folder / READERS_FILE
    if not readers.is_file():
        return False
    try:
        with open(readers, "a+", encoding="utf-8") as handle:
            return not _flock(handle, wait=False)
    except OSError:
        return False


def clean_store_folder(out: Path) -> None:
    """Remove, under the lock, everything in `out` the manifest no longer needs.

    Kept: the files the manifest names and those of the version it replaced (`previous_files`),
    for stores opened before that import. Removed: staging folders, other version folders (unless
    a reader holds their lock), and top-level Parquet files of the older flat layout.
    """
    if not out.is_dir():
        return
    manifest = _read_json(out / "manifest.json")
    keep = _table_files(manifest)
    previous = (manifest or {}).get("previous_files")
    if isinstance(previous, list):
        keep |= {str(p) for p in previous if isinstance(p, str)}
    keep_tops = {Path(p).parts[0] for p in keep if Path(p).parts}
    for entry in out.iterdir():
        name = entry.name
        if name.startswith(STAGING_PREFIX) or name.startswith(".legacy-"):
            _remove(entry)
        elif name.startswith(VERSION_PREFIX) and entry.is_dir() and not entry.is_symlink():
            if name not in keep_tops and not _version_in_use(entry):
                shutil.rmtree(entry, ignore_errors=True)
        elif name.endswith(".parquet") and entry.is_file() and name not in keep_tops:
            _remove(entry)


def _is_own_litter(entry: Path) -> bool:
    """What a killed import leaves in a folder that has no manifest yet: staging, temporary files,
    and a version folder renamed into place just before the kill (recognised by its `.readers`)."""
    name = entry.name
    if name.startswith((STAGING_PREFIX, ".legacy-")):
        return entry.is_dir()
    if name.startswith(".manifest-"):
        return name.endswith(".tmp") or entry.is_symlink()
    return name.startswith(VERSION_PREFIX) and entry.is_dir() and (entry / READERS_FILE).is_file()


def _fsync_tree(folder: Path) -> None:
    """Flush the version's files to disk before the manifest names them (survives a power cut)."""
    for root, _dirs, names in os.walk(folder):
        for file_name in names:
            try:
                fd = os.open(os.path.join(root, file_name), os.O_RDONLY)
            except OSError:
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    _fsync_dir(folder)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _replace_file(path: Path, data: bytes) -> None:
    """Write `path` whole or not at all: a temporary file in the same folder, then os.replace."""
    tmp = path.parent / f".manifest-{os.getpid()}-{os.urandom(4).hex()}.tmp"
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _new_version_name() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return f"{VERSION_PREFIX}{stamp}-{os.urandom(4).hex()}"


def _publish(out: Path, staging: Path) -> None:
    """Turn a finished staging folder (a flat store) into the store's current version."""
    inner = _read_json(staging / "manifest.json")
    if inner is None:  # the importers always write one; refuse to publish a store without it
        raise CommerceQLDataError(f"internal: the import wrote no manifest into {staging}")
    version = _new_version_name()
    (staging / READERS_FILE).touch()
    staging.chmod(0o755)  # mkdtemp makes it private
    _fsync_tree(staging)
    _crash_point("staging")
    os.replace(staging, out / version)
    _fsync_dir(out)
    old = _read_json(out / "manifest.json")
    manifest = dict(inner)
    manifest["tables"] = {t: f"{version}/{f}" for t, f in (inner.get("tables") or {}).items()}
    manifest["version"] = version
    manifest["previous_files"] = sorted(_table_files(old))
    if (out / version / "model").is_dir():
        manifest["model"] = f"{version}/model"
    _crash_point("before-swap")
    _replace_file(out / "manifest.json", (json.dumps(_jsonable(manifest), indent=2) + "\n").encode("utf-8"))
    _fsync_dir(out)
    _crash_point("after-swap")
    # `connect()` reads STORE/model/*.yaml: point it at the new version's model (one rename of a link).
    model = out / "model"
    if model.is_dir() and not model.is_symlink():  # the flat layout's real folder
        os.replace(model, out / f".legacy-model-{os.urandom(4).hex()}")
    if "model" in manifest:
        link = out / f".manifest-model-{os.urandom(4).hex()}"
        os.symlink(f"{version}/model", link)
        os.replace(link, model)
    elif model.is_symlink():
        model.unlink()
    # Copies for people reading the folder; nothing reads them back.
    for extra in ("import_report.json", "mapping.toml"):
        source = out / version / extra
        if source.is_file():
            _replace_file(out / extra, source.read_bytes())
        elif (out / extra).is_file():
            (out / extra).unlink()


@contextmanager
def atomic_store_dir(out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """A staging folder for one import into `out_dir`, published only if the block succeeds.

    The block writes a complete flat store (tables, manifest.json, ...) into the folder it gets.
    Under the lock next to `out_dir`, that folder becomes a new version of the store and the
    manifest is replaced in one rename (see the comment above). A failed import changes nothing:
    the old store (if any) stays as it was, and a folder this import created is removed again.
    """
    out = Path(out_dir).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise CommerceQLDataError(f"{out} exists and is not a folder", hint="choose another path for --out")
    for ancestor in out.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise CommerceQLDataError(f"cannot create {out}: {ancestor} is a file, not a folder",
                                          hint="choose another path for --out")
            break
    with target_lock(out):
        clean_stale_siblings(out)
        # A folder that holds nothing but a killed import's leftovers counts as created by us:
        # a failure removes it again instead of leaving an empty folder that is not a store.
        created = True
        if out.exists():
            is_store = (out / "manifest.json").is_file()
            try:
                entries = list(out.iterdir())
            except OSError as exc:
                raise _os_error("read the folder", out, exc) from exc
            litter = [e for e in entries if _is_own_litter(e)]
            entries = [e for e in entries if e not in litter]
            if is_store:
                clean_store_folder(out)
            elif not entries:
                for entry in litter:  # nothing else here: a killed first import's, safe to remove
                    _remove(entry)
            # (A folder with other files is refused below and left exactly as it was.)
            created = not entries
            if entries and not (overwrite and is_store):
                if is_store:
                    raise CommerceQLDataError(
                        f"{out} already holds a store", hint="pass --force (overwrite=True) to replace it"
                    )
                raise CommerceQLDataError(
                    f"{out} exists and is not empty", hint="choose a new folder: the importer creates it"
                )
        try:
            out.mkdir(exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
        except OSError as exc:
            raise _os_error("create the store folder", out, exc) from exc
        published = False
        try:
            yield staging
            shutil.rmtree(staging / "_work", ignore_errors=True)
            try:
                _publish(out, staging)
            except OSError as exc:
                raise _os_error("write the store into", out, exc) from exc
            published = True
            clean_store_folder(out)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
            if created and not published:
                shutil.rmtree(out, ignore_errors=True)


# An import's DuckDB sorts and joins spill to disk past this cap. At 1M export lines the sales sort
# needs ~600 MB: under 512 MB it spills and the assembly takes 10 s, under 1 GB 7.9 s (peak resident
# memory 0.9 GB -> 1.5 GB; `python -m benchmarks.importer`). Machines with less than 8 GB get an
# eighth of their memory, never under 512 MB.
_IMPORT_MEMORY_DEFAULT = 1 << 30
_IMPORT_MEMORY_FLOOR = 512 << 20
_MEMORY_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*", re.IGNORECASE)


@functools.cache
def _malloc_trim() -> Any:
    """glibc's malloc_trim, or None where the C library has none (macOS, musl, Windows)."""
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> None:
    """Hand the C heap's free pages back to the system, between the phases of a large import.

    DuckDB's threads allocate through malloc, and glibc keeps what they free in its arenas: after
    staging a 3M-line export ~500 MB stayed resident, unused, and added to the next phase's peak.
    A no-op where there is no malloc_trim.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def import_memory_limit() -> str:
    """DuckDB's memory_limit for imports: COMMERCEQL_IMPORT_MEMORY (e.g. 512MB, 2GB), else the default."""
    text = os.environ.get("COMMERCEQL_IMPORT_MEMORY")
    if text is not None:
        match = _MEMORY_SIZE.fullmatch(text)
        if match is None:
            raise CommerceQLImportError(f"COMMERCEQL_IMPORT_MEMORY={text!r} is not a memory size",
                                        hint="write a number and a unit, like 512MB or 2GB")
        return f"{match.group(1)}{match.group(2).upper().replace('I', 'i')}"
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): the floor is safe everywhere
        physical = 8 * _IMPORT_MEMORY_FLOOR
    return f"{max(_IMPORT_MEMORY_FLOOR, min(_IMPORT_MEMORY_DEFAULT, physical // 8)) >> 20}MB"


def new_connection(work_dir: Path) -> duckdb.DuckDBPyConnection:
    work_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"SET temp_directory = '{_sql_text(str(work_dir / 'duckdb_tmp'))}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET memory_limit = {sql_literal(import_memory_limit())}")
    for setting in ("enable_progress_bar = false", "enable_progress_bar_print = false"):
        try:
            con.execute(f"SET {setting}")
        except duckdb.Error:
            pass
    return con


def arrow_batches(con: duckdb.DuckDBPyConnection, sql: str, batch_size: int = 20_000) -> Iterator[pa.RecordBatch]:
    """Stream the result of `sql` as Arrow record batches (works across DuckDB versions)."""
    relation = con.sql(sql)
    reader = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    yield from reader(batch_size)


def arrow_table(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    relation = con.sql(sql)
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


def arrow_rows(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[dict[str, Any]]:
    """The rows of `sql` as dicts, streamed."""
    for batch in arrow_batches(con, sql):
        data = batch.to_pydict()
        names = list(data)
        for i in range(batch.num_rows):
            yield {c: data[c][i] for c in names}


def _sql_text(text: str) -> str:
    return text.replace("'", "''")


def sql_literal(text: str) -> str:
    return "'" + _sql_text(text) + "'"


def glob_path(path: str | os.PathLike[str]) -> str:
    """A path as a DuckDB read_* pattern matching only itself.

    read_parquet / read_csv read `*`, `?` and `[` as glob syntax, so an --out folder such as
    `shop[2024]` found no files; a one-character class (`[[]`) matches exactly that character.
    """
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in str(path))


def sql_path(path: str | os.PathLike[str]) -> str:
    """`path` as the SQL literal of a read_* pattern that matches only that file."""
    return sql_literal(glob_path(path))


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Rows per row group of a store table the importers write. DuckDB holds a whole row group in memory
# before writing it (in insertion order): with 1,000,000 rows, a 1.3M-row sales table under the 512 MB
# cap spilled and took 8 s to write instead of 2.5 s (benchmarks/importer.py, 1M export lines). With
# DuckDB's own row group size, the sorted sales table is written in 2.0 s instead of 2.5 s with 262,144
# (smaller groups are prepared on both threads while the sort goes on), and queries scan it as well.
STORE_ROW_GROUP_ROWS = 122_880


def write_table(
    con: duckdb.DuckDBPyConnection,
    out_dir: Path,
    table: str,
    source_sql: str | None,
    *,
    schema: Sequence[tuple[str, str]] | None = None,
    money_type: str = MONEY,
    extra: Sequence[tuple[str, str]] = (),
) -> int:
    """Write `table`.parquet into `out_dir` with exactly the store schema (missing columns are NULL).

    `source_sql` is a SELECT whose columns are a subset of the schema (by name); None writes an empty
    table. `extra` lists additional (name, type) columns the SELECT provides (user-declared columns).
    """
    columns = list(schema if schema is not None else {**SCHEMAS, **OPTIONAL_SCHEMAS}[table])
    available: set[str] = set()
    if source_sql is not None:
        described = con.execute(f"DESCRIBE SELECT * FROM ({source_sql}) AS source").fetchall()
        available = {row[0] for row in described}
    selects = []
    for name, typ in [*columns, *extra]:
        typ = money_type if typ == MONEY else typ
        expr = sql_ident(name) if name in available else "NULL"
        selects.append(f"CAST({expr} AS {typ}) AS {sql_ident(name)}")
    body = "(SELECT 1 AS none) AS source WHERE false" if source_sql is None else f"({source_sql}) AS source"
    target = out_dir / f"{table}.parquet"
    # COPY answers with the number of rows it wrote: no second read of the file to count them
    written = con.execute(
        f"COPY (SELECT {', '.join(selects)} FROM {body}) "
        f"TO {sql_literal(str(target))} (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {STORE_ROW_GROUP_ROWS})"
    ).fetchone()
    return int(written[0])


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    """Write manifest.json, first completing the optional tables the import did not fill (empty files
    with the exact schema, named under `missing_tables` with the export each needs)."""
    tables = manifest.setdefault("tables", {})
    for table, columns in OPTIONAL_SCHEMAS.items():
        if table in tables:
            continue
        con = duckdb.connect()
        try:
            write_table(con, out_dir, table, None, schema=columns)
        finally:
            con.close()
        tables[table] = f"{table}.parquet"
        manifest.setdefault("row_counts", {})[table] = 0
        manifest.setdefault("missing_tables", {})[table] = OPTIONAL_SOURCES[table]
    (out_dir / "manifest.json").write_text(json.dumps(_jsonable(manifest), indent=2) + "\n", encoding="utf-8")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------------------------------------
# progress


class Progress:
    """A one-line progress bar on stderr (only when enabled; redrawn at most 5 times a second)."""

    def __init__(self, label: str, total: int, enabled: bool, unit: str = "bytes") -> None:
        self.label = label
        self.unit = unit
        self.total = max(int(total), 1)
        self.enabled = enabled
        self._last = 0.0
        self._shown = False

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < 0.2 and done < self.total:
            return
        self._last = now
        fraction = min(max(done / self.total, 0.0), 1.0)
        width = 30
        bar = "#" * int(fraction * width) + "-" * (width - int(fraction * width))
        label = self.label if len(self.label) <= 40 else "..." + self.label[-37:]
        if self.unit == "bytes":
            amount = f"{_megabytes(done)}/{_megabytes(self.total)}"
        else:
            amount = f"{done:,}/{self.total:,} {self.unit}"
        sys.stderr.write(f"\r{label:<40} [{bar}] {fraction * 100:5.1f}% {amount}")
        sys.stderr.flush()
        self._shown = True

    def close(self) -> None:
        if self.enabled and self._shown:
            self.update(self.total)
            sys.stderr.write("\n")
            sys.stderr.flush()


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------------
# reading CSV files record by record, with line numbers


@dataclass
class CsvRecords:
    """An open CSV file: its header and an iterator of (first line number, fields)."""

    path: Path
    header: list[str]
    encoding: str
    records: Iterator[tuple[int, list[str]]]
    size: int
    raw: Any = None

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()


# Byte-order marks of the UTF-16 text some spreadsheets (Excel's "Unicode Text") save.
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Python's csv module refuses fields over 128 KiB by default; a long order note or product
# description is legitimate data, so fields may be as large as this (a whole record is read anyway).
CSV_FIELD_LIMIT = 1 << 30


def sniff_text(path: Path) -> tuple[str, str]:
    """(encoding, first line) of a text file. Refuses empty and binary files with a clear reason.

    UTF-8 (with or without a BOM), Windows-1252 and UTF-16 with a byte-order mark are read.
    """
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if head.startswith(_UTF16_BOMS):
        # "utf-16" reads the BOM, picks little or big endian from it and drops it.
        text = head[: len(head) // 2 * 2].decode("utf-16", errors="replace")
        if not text.strip("\r\n\t "):
            raise CommerceQLImportError("the file is empty", file=path, hint="export it again from Shopify admin")
        return "utf-16", text.splitlines()[0] if text.strip() else ""
    if not head.strip(b"\r\n\t \xef\xbb\xbf"):
        raise CommerceQLImportError("the file is empty", file=path, hint="export it again from Shopify admin")
    if b"\x00" in head:
        raise CommerceQLImportError(
            "this is not a text (CSV) file", file=path,
            hint="if it is UTF-16 text without a byte-order mark, save it again as UTF-8 CSV",
        )
    encoding = "utf-8-sig"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a cut multi-byte character at the end of the block
            encoding = "cp1252"
    text = head.decode(encoding, errors="replace")
    first = text.lstrip("\ufeff").splitlines()[0] if text.strip() else ""
    return encoding, first


def duplicate_header(header: Sequence[str], path: Path) -> None:
    """Refuse a header that names one column twice (compared as the importers match names).

    Taking either copy silently could read the wrong one; blank names (trailing commas) are exempt.
    """
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        key = normalize_header(name)
        if not key:
            continue
        if key in seen:
            raise CommerceQLImportError(
                f"the header names column `{name}` twice (columns {seen[key]} and {position})",
                file=path, line=1, hint="rename or remove one of the two columns",
            )
        seen[key] = position


def open_csv(path: Path, *, progress: Progress | None = None, delimiter: str = ",") -> CsvRecords:
    """Open a comma-separated file with a header. Checks every record has the header's field count."""
    encoding, first = sniff_text(path)
    if delimiter == "," and "," not in first:
        for other, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if other in first:
                raise CommerceQLImportError(
                    f"wrong delimiter: the header is {name}-separated, but Shopify exports are comma-separated",
                    file=path,
                    line=1,
                    hint="this copy was probably re-saved by a spreadsheet with another list separator; "
                    "export it again from Shopify admin, or save it as comma-separated CSV",
                )
    size = path.stat().st_size
    raw = open(path, "rb")  # noqa: SIM115 - closed by the generator below
    text = io.TextIOWrapper(raw, encoding=encoding, newline="", errors="strict")
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(text, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raw.close()
        raise CommerceQLImportError("the file is empty", file=path) from None
    except (csv.Error, UnicodeDecodeError) as exc:
        raw.close()
        raise CommerceQLImportError(f"cannot read the header: {exc}", file=path, line=1) from exc
    header = [h.strip().lstrip("\ufeff").strip() for h in header]
    try:
        duplicate_header(header, path)
    except CommerceQLImportError:
        raw.close()
        raise
    n_fields = len(header)

    def records() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num
        count = 0
        try:
            while True:
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise CommerceQLImportError(
                        f"malformed CSV ({exc}); the file may be truncated or a quote is not closed",
                        file=path,
                        line=line + 1,
                    ) from exc
                except UnicodeDecodeError as exc:
                    raise CommerceQLImportError(
                        f"the file is not valid {encoding} text ({exc.reason})", file=path, line=line + 1
                    ) from exc
                start = line + 1
                line = reader.line_num
                if not fields or (len(fields) == 1 and fields[0].strip() == ""):
                    continue  # blank line
                if len(fields) != n_fields:
                    truncated = len(fields) < n_fields and line >= _count_lines_cached(path)
                    raise CommerceQLImportError(
                        f"{len(fields)} fields where the header has {n_fields}"
                        + ("; the file looks truncated" if truncated else ""),
                        file=path,
                        line=start,
                        hint="the file may be cut short, use another delimiter, or have an unbalanced quote",
                    )
                count += 1
                if progress is not None and count % 5000 == 0:
                    progress.update(raw.tell())
                yield start, fields
        finally:
            raw.close()

    return CsvRecords(path=path, header=header, encoding=encoding, records=records(), size=size, raw=raw)


_LINE_COUNTS: dict[str, int] = {}


def _count_lines_cached(path: Path) -> int:
    key = str(path)
    if key not in _LINE_COUNTS:
        with open(path, "rb") as handle:
            data = handle.read()
        _LINE_COUNTS[key] = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return _LINE_COUNTS[key]


def normalize_header(name: str) -> str:
    """Header names compared case- and space-insensitively."""
    return re.sub(r"\s+", " ", name.strip().lstrip("'").strip()).lower()


# ---------------------------------------------------------------------------------------------
# staging: batches of string columns written to Parquet parts


class Stager:
    """Collects rows of strings and writes them to numbered Parquet parts (bounded memory)."""

    def __init__(self, folder: Path, columns: Sequence[str], types: dict[str, pa.DataType] | None = None,
                 batch: int = 50_000) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns)
        self.types = types or {}
        self.batch = batch
        self.rows: list[Sequence[Any]] = []
        self.parts = 0
        self.count = 0
        self._width = len(self.columns)

    def add(self, values: Sequence[Any]) -> None:
        self.rows.append(values)
        self.count += 1
        if len(self.rows) >= self.batch:
            self.flush()

    def add_dict(self, values: dict[str, Any]) -> None:
        get = values.get
        self.add([get(c) for c in self.columns])

    def flush(self) -> None:
        n = len(self.rows)
        if n == 0 and self.parts > 0:
            return
        columns = list(zip(*self.rows, strict=True)) if n else [() for _ in self.columns]
        arrays = []
        for column, data in zip(self.columns, columns, strict=True):
            typ = self.types.get(column, pa.string())
            if typ == MONEY_CENTS:
                arrays.append(cents_to_decimal(data))
            else:
                arrays.append(pa.array(data, type=typ))
        table = pa.Table.from_arrays(arrays, names=self.columns)
        pq.write_table(table, self.folder / f"part-{self.parts:05d}.parquet", compression="zstd",
                       compression_level=1)
        self.parts += 1
        self.rows = []

    def close(self) -> str:
        """Flush and return a read_parquet(...) expression over the parts."""
        if self.parts == 0 or self.rows:
            self.flush()
        return f"read_parquet({sql_literal(glob_path(self.folder) + '/*.parquet')})"


# the largest |cents| + 1 of a DECIMAL(18,2) amount, and the largest INTEGER
MAX_CENTS = 10**18
# how errors say what the store holds (DECIMAL(18,2): below MAX_CENTS cents)
STORE_AMOUNTS = f"amounts below {MAX_CENTS // 100:,}"
MAX_INTEGER = 2**31 - 1
MONEY_CENTS = pa.decimal128(18, 2)  # marker type: a staged column of integer cents written as DECIMAL(18,2)
TIMESTAMP_US = pa.timestamp("us", tz="UTC")


def cents_to_decimal(values: Sequence[int | None]) -> pa.Array:
    """DECIMAL(18,2) from integer cents, exactly (no float round trip)."""
    mask = np.array([v is None for v in values], dtype=bool)
    cents = np.array([0 if v is None else v for v in values], dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63
    validity = None
    null_count = 0
    if mask.any():
        validity = pa.py_buffer(np.packbits(~mask, bitorder="little").tobytes())
        null_count = int(mask.sum())
    return pa.Array.from_buffers(MONEY_CENTS, len(cents), [validity, pa.py_buffer(words.tobytes())], null_count)


# ---------------------------------------------------------------------------------------------
# value parsers (strings as they appear in exports)

_MONEY = re.compile(r"^[-+]?(\d+)(?:\.(\d*))?$")
_MONEY_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d*)?$")
_INT = re.compile(r"^[-+]?\d+(?:\.0*)?$")
_SCIENTIFIC = re.compile(r"^[-+]?\d+(\.\d+)?[eE][-+]?\d+$")


class ValueError_(Exception):
    """Internal: a value cannot be parsed (the caller adds file, line and column)."""


def parse_cents(text: str | None, *, scale: int = 2) -> int | None:
    """Money text -> integer cents. '' -> None. Accepts 12, 12.5, 12.50, -3.00, 1,234.56 and a leading '."""
    if text is None:
        return None
    s = text.strip()
    if s == "":
        return None
    if scale == 2 and len(s) < 16:  # fast paths: 12, 12.50, -3.00 (ASCII digits: '²' is a digit int() refuses)
        dot = s.find(".")
        if dot == -1:
            if s.isascii() and s.isdigit():
                return int(s) * 100
        elif len(s) - dot == 3 and s.isascii():
            whole, frac = s[:dot], s[dot + 1:]
            if frac.isdigit() and (whole.isdigit() or (whole[:1] == "-" and whole[1:].isdigit())):
                cents = int(whole or "0") * 100
                return cents - int(frac) if whole.startswith("-") else cents + int(frac)
    if s.startswith("'"):
        s = s[1:]
    negative = False
    if s.startswith("(") and s.endswith(")"):
        s, negative = s[1:-1], True
    m = _MONEY.match(s)
    if m is None and _MONEY_THOUSANDS.match(s):
        s = s.replace(",", "")
        m = _MONEY.match(s)
    if m is None:
        raise ValueError_("not an amount")
    whole, frac = m.group(1), m.group(2) or ""
    if len(frac) > scale:
        value = Decimal(s).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
        cents = int(value.scaleb(scale))
    else:
        cents = int(whole) * 10**scale + (int(frac.ljust(scale, "0")) if frac else 0)
        if s.startswith("-"):
            cents = -cents
    if abs(cents) >= MAX_CENTS:  # would not fit the store's DECIMAL(18,2) (nor 64-bit cents)
        raise ValueError_(f"too large an amount (the store holds {STORE_AMOUNTS})")
    return -cents if negative else cents


def parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    s = text.strip()
    if s == "":
        return None
    if not _INT.match(s):
        raise ValueError_("not a whole number")
    value = int(s.split(".")[0])
    if abs(value) > MAX_INTEGER:  # the store's counts and quantities are INTEGER
        raise ValueError_(f"too large a number (at most {MAX_INTEGER:,})")
    return value


def parse_bool(text: str | None) -> bool | None:
    if text is None:
        return None
    s = text.strip().lower()
    if s in ("true", "yes", "y", "1", "t"):
        return True
    if s in ("false", "no", "n", "0", "f"):
        return False
    return None


def is_scientific(text: str | None) -> bool:
    return bool(text) and bool(_SCIENTIFIC.match(text.strip()))


def clean_text(text: str | None) -> str | None:
    """'' -> None; strips the apostrophe spreadsheets-proofing adds in front of zips, phones and ids."""
    if text is None:
        return None
    s = text.strip()
    if s.startswith("'") and len(s) > 1 and (s[1:2].isdigit() or s[1:2] == "+"):
        s = s[1:]
    return s or None


# ---------------------------------------------------------------------------------------------
# timestamps

_TS_OFFSET = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?\s*(Z|UTC|[+-]\d{2}:?\d{2})$"
)
_TS_NAIVE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$")
_TS_SLASH = re.compile(
    r"^(\d{1,2})[/.](\d{1,2})[/.](\d{2}|\d{4})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]\.?)?)?$"
)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_CACHE: dict[tuple[int, int, int], int] = {}


def _days(y: int, m: int, d: int) -> int:
    key = (y, m, d)
    found = _DAY_CACHE.get(key)
    if found is None:
        try:
            found = dt.date(y, m, d).toordinal() - _EPOCH_ORDINAL
        except ValueError as exc:  # 2023-02-30, year 0: a clear error naming the value, not a crash
            raise ValueError_(f"not a valid date ({exc})") from None
        if len(_DAY_CACHE) < 200_000:
            _DAY_CACHE[key] = found
    return found


@dataclass
class TimestampStyle:
    """How a file writes its timestamps, learnt by scanning every value (see `observe`)."""

    offset: int = 0  # values with a UTC offset (Shopify's own format)
    naive_iso: int = 0  # YYYY-MM-DD [HH:MM[:SS]] without offset
    slash: int = 0  # dd/mm/yyyy or mm/dd/yyyy (spreadsheet re-save)
    first_over_12: int = 0
    second_over_12: int = 0
    no_seconds: int = 0
    samples: dict[tuple[int, int], int] = field(default_factory=dict)  # (hour bucket, offset min) -> instant
    _seen: set[str] = field(default_factory=set)

    def observe(self, text: str) -> bool:
        """Record one value; False if it is not a timestamp in any known style."""
        if len(text) == 25 and text[19] == " " and text[20] in "+-" and text[10] == " " and text[4] == "-":
            key = text[:13] + text[19:]  # the local hour and the offset
            self.offset += 1
            if key in self._seen:
                return True
        m = _TS_OFFSET.match(text)
        if m:
            if len(text) != 25:
                self.offset += 1
            if m.group(6) is None:
                self.no_seconds += 1
            if len(self.samples) < 20_000:
                self._seen.add(text[:13] + text[19:])
                instant, offset = _offset_instant(m)
                self.samples.setdefault((instant // 3600, offset), instant)
            return True
        m = _TS_NAIVE.match(text)
        if m:
            self.naive_iso += 1
            return True
        m = _TS_SLASH.match(text)
        if m:
            self.slash += 1
            a, b = int(m.group(1)), int(m.group(2))
            if a > 12:
                self.first_over_12 += 1
            if b > 12:
                self.second_over_12 += 1
            if m.group(4) is not None and m.group(6) is None:
                self.no_seconds += 1
            return True
        return False

    @property
    def has_naive(self) -> bool:
        return bool(self.naive_iso or self.slash)

    def day_first(self, forced: str | None = None) -> bool | None:
        """True for dd/mm, False for mm/dd, None when no slash dates. Raises when it cannot tell."""
        if not self.slash:
            return None
        if forced in ("dmy", "day-first", "dayfirst"):
            return True
        if forced in ("mdy", "month-first", "monthfirst"):
            return False
        if self.first_over_12 and self.second_over_12:
            raise ValueError_("dates are written both as day/month and month/day")
        if self.first_over_12:
            return True
        if self.second_over_12:
            return False
        raise ValueError_("cannot tell whether dates are day/month/year or month/day/year")


def _offset_instant(m: re.Match[str]) -> tuple[int, int]:
    y, mo, d, hh, mi = (int(m.group(i)) for i in range(1, 6))
    ss = int(m.group(6) or 0)
    zone = m.group(7)
    if zone in ("Z", "UTC"):
        offset = 0
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 60 + int(digits[2:4]))
    local = _days(y, mo, d) * 86400 + hh * 3600 + mi * 60 + ss
    return local - offset * 60, offset


class TimestampParser:
    """Parses export timestamps to UTC microseconds. Naive values are local times in `timezone`."""

    def __init__(self, timezone: str, day_first: bool | None) -> None:
        self.zone = ZoneInfo(timezone)
        self.day_first = day_first
        self._naive_cache: dict[tuple[int, ...], int] = {}

    def __call__(self, text: str | None) -> int | None:
        if text is None:
            return None
        s = text.strip()
        if s == "":
            return None
        if len(s) == 25 and s[19] == " " and s[20] in "+-" and s[10] == " ":
            try:  # Shopify's own format, 2024-03-01 14:05:09 -0500
                return int(dt.datetime.fromisoformat(s[:19] + s[20:]).timestamp()) * 1_000_000
            except ValueError:
                pass
        m = _TS_OFFSET.match(s)
        if m:
            return _offset_instant(m)[0] * 1_000_000
        m = _TS_NAIVE.match(s)
        if m:
            y, mo, d = int(m.group(1)), int(m.group(2)), int(m.group(3))
            hh, mi, ss = int(m.group(4) or 0), int(m.group(5) or 0), int(m.group(6) or 0)
            return self._local(y, mo, d, hh, mi, ss)
        m = _TS_SLASH.match(s)
        if m:
            a, b, y = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if y < 100:
                y += 2000 if y < 70 else 1900
            d, mo = (a, b) if self.day_first else (b, a)
            hh, mi, ss = int(m.group(4) or 0), int(m.group(5) or 0), int(m.group(6) or 0)
            ampm = m.group(7)
            if ampm:
                if hh == 12:
                    hh = 0
                if ampm in "Pp":
                    hh += 12
            return self._local(y, mo, d, hh, mi, ss)
        raise ValueError_("not a date and time")

    def _local(self, y: int, mo: int, d: int, hh: int, mi: int, ss: int) -> int:
        key = (y, mo, d, hh, mi, ss)
        found = self._naive_cache.get(key)
        if found is None:
            try:
                value = dt.datetime(y, mo, d, hh, mi, ss, tzinfo=self.zone)
            except ValueError as exc:
                raise ValueError_(f"not a valid date ({exc})") from exc
            found = int(value.timestamp()) * 1_000_000
            if len(self._naive_cache) < 500_000:
                self._naive_cache[key] = found
        return found


# ---------------------------------------------------------------------------------------------
# time-zone detection

# Common store time zones, most common first within each UTC offset pattern, with their country.
PREFERRED_ZONES: tuple[tuple[str, str | None], ...] = (
    ("America/New_York", "US"), ("America/Chicago", "US"), ("America/Denver", "US"),
    ("America/Los_Angeles", "US"), ("America/Phoenix", "US"), ("America/Anchorage", "US"),
    ("Pacific/Honolulu", "US"), ("America/Toronto", "CA"), ("America/Vancouver", "CA"),
    ("America/Edmonton", "CA"), ("America/Winnipeg", "CA"), ("America/Halifax", "CA"),
    ("America/St_Johns", "CA"), ("America/Regina", "CA"), ("America/Mexico_City", "MX"),
    ("America/Sao_Paulo", "BR"), ("America/Argentina/Buenos_Aires", "AR"), ("America/Santiago", "CL"),
    ("America/Bogota", "CO"), ("America/Lima", "PE"), ("Europe/London", "GB"), ("Europe/Dublin", "IE"),
    ("Europe/Lisbon", "PT"), ("Europe/Paris", "FR"), ("Europe/Berlin", "DE"), ("Europe/Madrid", "ES"),
    ("Europe/Rome", "IT"), ("Europe/Amsterdam", "NL"), ("Europe/Brussels", "BE"), ("Europe/Zurich", "CH"),
    ("Europe/Vienna", "AT"), ("Europe/Stockholm", "SE"), ("Europe/Oslo", "NO"), ("Europe/Copenhagen", "DK"),
    ("Europe/Helsinki", "FI"), ("Europe/Warsaw", "PL"), ("Europe/Prague", "CZ"), ("Europe/Athens", "GR"),
    ("Europe/Bucharest", "RO"), ("Europe/Istanbul", "TR"), ("Europe/Kyiv", "UA"), ("Europe/Moscow", "RU"),
    ("Africa/Johannesburg", "ZA"), ("Africa/Lagos", "NG"), ("Africa/Nairobi", "KE"), ("Africa/Cairo", "EG"),
    ("Africa/Casablanca", "MA"), ("Asia/Jerusalem", "IL"), ("Asia/Dubai", "AE"), ("Asia/Riyadh", "SA"),
    ("Asia/Karachi", "PK"), ("Asia/Kolkata", "IN"), ("Asia/Kathmandu", "NP"), ("Asia/Dhaka", "BD"),
    ("Asia/Bangkok", "TH"), ("Asia/Ho_Chi_Minh", "VN"), ("Asia/Jakarta", "ID"), ("Asia/Singapore", "SG"),
    ("Asia/Kuala_Lumpur", "MY"), ("Asia/Manila", "PH"), ("Asia/Hong_Kong", "HK"), ("Asia/Shanghai", "CN"),
    ("Asia/Taipei", "TW"), ("Asia/Seoul", "KR"), ("Asia/Tokyo", "JP"), ("Australia/Perth", "AU"),
    ("Australia/Darwin", "AU"), ("Australia/Adelaide", "AU"), ("Australia/Brisbane", "AU"),
    ("Australia/Sydney", "AU"), ("Australia/Melbourne", "AU"), ("Australia/Hobart", "AU"),
    ("Pacific/Auckland", "NZ"), ("UTC", None),
)


def _zone_matches(zone: ZoneInfo, samples: Sequence[tuple[int, int]]) -> bool:
    for instant, offset in samples:
        moment = dt.datetime.fromtimestamp(instant, dt.UTC)
        delta = zone.utcoffset(moment.astimezone(zone))
        if delta is None or int(delta.total_seconds()) // 60 != offset:
            return False
    return True


def detect_timezone(
    samples: dict[tuple[int, int], int], countries: Iterable[str | None] = ()
) -> tuple[str | None, str]:
    """The IANA zone whose UTC offsets match every observed timestamp, and why it was chosen.

    `samples` maps (hour bucket, offset in minutes) to an instant; `countries` (billing countries of
    the orders) break ties between zones with the same offsets (Europe/London vs Europe/Lisbon).
    """
    if not samples:
        return None, "no timestamp carries a UTC offset"
    pairs = sorted((instant, offset) for (_, offset), instant in samples.items())
    # check the rarest offsets first: most candidate zones fail fast
    from collections import Counter

    frequency = Counter(offset for _, offset in pairs)
    pairs.sort(key=lambda p: frequency[p[1]])
    majority = Counter(c for c in countries if c).most_common(1)
    country = majority[0][0] if majority else None
    offsets = sorted(frequency)
    described = ", ".join(_format_offset(o) for o in offsets)
    matches = [(name, cc) for name, cc in PREFERRED_ZONES if _zone_matches(ZoneInfo(name), pairs)]
    if matches:
        same_country = [name for name, cc in matches if cc == country]
        chosen = same_country[0] if same_country else matches[0][0]
        others = [name for name, _ in matches if name != chosen]
        why = f"detected from UTC offsets {described}"
        if same_country and len(matches) > 1:
            why += f"; {country} is the most common billing country"
        if others:
            why += f"; also consistent: {', '.join(others[:4])}"
        return chosen, why
    for name in sorted(available_timezones()):
        if "/" not in name or name.startswith(("Etc/", "SystemV/", "US/", "posix", "right")):
            continue
        try:
            zone = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
        if _zone_matches(zone, pairs):
            return name, f"detected from UTC offsets {described} (no common zone matches)"
    if len(offsets) == 1 and offsets[0] % 60 == 0:
        hours = offsets[0] // 60
        name = "UTC" if hours == 0 else f"Etc/GMT{'-' if hours > 0 else '+'}{abs(hours)}"
        return name, f"fixed UTC offset {described}: no named zone matches every timestamp"
    return None, f"no time zone matches every UTC offset seen ({described})"


def _format_offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}{minutes % 60:02d}"


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CommerceQLDataError(
            f"unknown time zone {name!r}", hint="use an IANA name such as America/New_York or Europe/London"
        ) from exc
    return name


# ---------------------------------------------------------------------------------------------
# countries and currencies

_COUNTRIES = """AD Andorra|AE United Arab Emirates|AF Afghanistan|AG Antigua and Barbuda|AI Anguilla|AL Albania|
AM Armenia|AO Angola|AR Argentina|AS American Samoa|AT Austria|AU Australia|AW Aruba|AX Åland Islands|AZ Azerbaijan|
BA Bosnia and Herzegovina|BB Barbados|BD Bangladesh|BE Belgium|BF Burkina Faso|BG Bulgaria|BH Bahrain|BI Burundi|
BJ Benin|BL Saint Barthélemy|BM Bermuda|BN Brunei|BO Bolivia|BQ Caribbean Netherlands|BR Brazil|BS Bahamas|
BT Bhutan|BW Botswana|BY Belarus|BZ Belize|CA Canada|CD Congo - Kinshasa|CF Central African Republic|
CG Congo - Brazzaville|CH Switzerland|CI Côte d’Ivoire|CK Cook Islands|CL Chile|CM Cameroon|CN China|CO Colombia|
CR Costa Rica|CU Cuba|CV Cape Verde|CW Curaçao|CY Cyprus|CZ Czechia|DE Germany|DJ Djibouti|DK Denmark|
DM Dominica|DO Dominican Republic|DZ Algeria|EC Ecuador|EE Estonia|EG Egypt|ER Eritrea|ES Spain|ET Ethiopia|
FI Finland|FJ Fiji|FK Falkland Islands|FM Micronesia|FO Faroe Islands|FR France|GA Gabon|GB United Kingdom|
GD Grenada|GE Georgia|GF French Guiana|GG Guernsey|GH Ghana|GI Gibraltar|GL Greenland|GM Gambia|GN Guinea|
GP Guadeloupe|GQ Equatorial Guinea|GR Greece|GT Guatemala|GU Guam|GW Guinea-Bissau|GY Guyana|HK Hong Kong SAR|
HN Honduras|HR Croatia|HT Haiti|HU Hungary|ID Indonesia|IE Ireland|IL Israel|IM Isle of Man|IN India|IQ Iraq|
IR Iran|IS Iceland|IT Italy|JE Jersey|JM Jamaica|JO Jordan|JP Japan|KE Kenya|KG Kyrgyzstan|KH Cambodia|
KI Kiribati|KM Comoros|KN St. Kitts and Nevis|KR South Korea|KW Kuwait|KY Cayman Islands|KZ Kazakhstan|LA Laos|
LB Lebanon|LC St. Lucia|LI Liechtenstein|LK Sri Lanka|LR Liberia|LS Lesotho|LT Lithuania|LU Luxembourg|LV Latvia|
LY Libya|MA Morocco|MC Monaco|MD Moldova|ME Montenegro|MF Saint Martin|MG Madagascar|MH Marshall Islands|
MK North Macedonia|ML Mali|MM Myanmar|MN Mongolia|MO Macao SAR|MP Northern Mariana Islands|MQ Martinique|
MR Mauritania|MS Montserrat|MT Malta|MU Mauritius|MV Maldives|MW Malawi|MX Mexico|MY Malaysia|MZ Mozambique|
NA Namibia|NC New Caledonia|NE Niger|NF Norfolk Island|NG Nigeria|NI Nicaragua|NL Netherlands|NO Norway|NP Nepal|
NR Nauru|NU Niue|NZ New Zealand|OM Oman|PA Panama|PE Peru|PF French Polynesia|PG Papua New Guinea|PH Philippines|
PK Pakistan|PL Poland|PM St. Pierre and Miquelon|PR Puerto Rico|PS Palestinian Territories|PT Portugal|PW Palau|
PY Paraguay|QA Qatar|RE Réunion|RO Romania|RS Serbia|RU Russia|RW Rwanda|SA Saudi Arabia|SB Solomon Islands|
SC Seychelles|SD Sudan|SE Sweden|SG Singapore|SH St. Helena|SI Slovenia|SK Slovakia|SL Sierra Leone|SM San Marino|
SN Senegal|SO Somalia|SR Suriname|SS South Sudan|ST São Tomé and Príncipe|SV El Salvador|SX Sint Maarten|SY Syria|
SZ Eswatini|TC Turks and Caicos Islands|TD Chad|TG Togo|TH Thailand|TJ Tajikistan|TL Timor-Leste|TM Turkmenistan|
TN Tunisia|TO Tonga|TR Türkiye|TT Trinidad and Tobago|TV Tuvalu|TW Taiwan|TZ Tanzania|UA Ukraine|UG Uganda|
US United States|UY Uruguay|UZ Uzbekistan|VA Vatican City|VC St. Vincent and Grenadines|VE Venezuela|
VG British Virgin Islands|VI U.S. Virgin Islands|VN Vietnam|VU Vanuatu|WF Wallis and Futuna|WS Samoa|XK Kosovo|
YE Yemen|YT Mayotte|ZA South Africa|ZM Zambia|ZW Zimbabwe"""
COUNTRY_NAMES: dict[str, str] = {
    item.strip()[:2]: item.strip()[3:] for item in _COUNTRIES.replace("\n", "").split("|") if item.strip()
}

CURRENCY_OF_COUNTRY = {
    "US": "USD", "CA": "CAD", "GB": "GBP", "AU": "AUD", "NZ": "NZD", "IE": "EUR", "FR": "EUR", "DE": "EUR",
    "ES": "EUR", "IT": "EUR", "PT": "EUR", "NL": "EUR", "BE": "EUR", "AT": "EUR", "FI": "EUR", "GR": "EUR",
    "CH": "CHF", "SE": "SEK", "NO": "NOK", "DK": "DKK", "PL": "PLN", "CZ": "CZK", "IN": "INR", "PK": "PKR",
    "BD": "BDT", "ZA": "ZAR", "JP": "JPY", "CN": "CNY", "HK": "HKD", "SG": "SGD", "MY": "MYR", "AE": "AED",
    "SA": "SAR", "MX": "MXN", "BR": "BRL", "CL": "CLP", "CO": "COP", "AR": "ARS", "PE": "PEN", "NG": "NGN",
    "KE": "KES", "PH": "PHP", "ID": "IDR", "TH": "THB", "KR": "KRW", "TW": "TWD", "IL": "ILS", "TR": "TRY",
}


def country_name(code_or_name: str | None) -> str | None:
    """'US' -> 'United States'; a name that is not a two-letter code is kept as written."""
    if code_or_name is None:
        return None
    s = code_or_name.strip()
    if not s:
        return None
    if len(s) == 2 and s.isalpha():
        return COUNTRY_NAMES.get(s.upper(), s.upper())
    return s


def country_code(code_or_name: str | None) -> str | None:
    if not code_or_name:
        return None
    s = code_or_name.strip()
    if len(s) == 2 and s.isalpha():
        return s.upper()
    lowered = s.lower()
    for code, name in COUNTRY_NAMES.items():
        if name.lower() == lowered:
            return code
    return None


def check_currency(code: str) -> str:
    code = code.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise CommerceQLDataError(f"{code!r} is not a currency code", hint="use an ISO 4217 code such as USD or EUR")
    return code


def decimal_or_none(text: str | None) -> Decimal | None:
    if text is None or text.strip() == "":
        return None
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def detect_text_encoding(path: Path) -> str:
    return sniff_text(path)[0]


__all__ = [
    "SCHEMAS",
    "TABLES",
    "CommerceQLImportError",
    "CommerceQLMappingError",
    "ImportReport",
    "Progress",
    "atomic_store_dir",
]
