"""Several shops as one organization store (`FROM ORGANIZATION sales`, `GROUP BY shop_name`).

An importer writes one store per shop. `build_organization` combines stores into one store folder
whose every table is the shops' rows, one after another, with a `shop_name` column, so every
query, metric, derived table (cohorts, churn, inventory) and engine works on the organization as
on a shop. `cql.connect(folder)` on a folder whose sub-folders are stores builds it on demand into
a cache (rebuilt when a shop's manifest changes).

What must agree: the shops' currency and time zone (a day or a sum across them would otherwise
mean nothing; the error names the shops), their account settings and model files. Ids: Shopify's
ids are unique across shops, and are kept as they are; where two shops' ids of one kind overlap
(generated or re-numbered stores), the later shops' ids of that kind are moved up by
`shop position x 10^15`, so joins never pair one shop's order with another's customer. The
manifest's `organization.shops` records each shop and the ids that moved.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from commerceql.dialect import quote_literal
from commerceql.errors import CommerceQLDataError
from commerceql.store_gaps import common_gaps, unavailable_fields

#: Where ids of one kind overlap between shops, shop k's ids move up by k x ID_OFFSET_STEP.
ID_OFFSET_STEP = 10**15
#: Columns that hold another kind's id (the rest are named after their kind: order_id ...).
_ID_KIND_OF_COLUMN = {"main_contact_customer_id": "customer_id"}
#: The columns every organization table gains, and the dimensions the organization's model adds.
SHOP_NAME, SHOP_ID = "shop_name", "shop_id"
#: The model file an organization store carries (its shops' own model files sit beside it).
ORGANIZATION_MODEL = "organization.yaml"


@dataclass(frozen=True)
class Shop:
    """One shop of an organization: its store folder and manifest."""

    name: str
    path: Path
    manifest: dict[str, Any]
    shop_id: int

    def table_file(self, table: str) -> Path | None:
        file_name = self.manifest.get("tables", {}).get(table)
        if not isinstance(file_name, str) or Path(file_name).is_absolute() or ".." in Path(file_name).parts:
            return None
        path = self.path / file_name
        return path if path.is_file() else None


def is_store(path: Path) -> bool:
    return (path / "manifest.json").is_file()


#: Folders inside a store that are its own parts, never shops: an import's versions (`v-<stamp>-...`,
#: commerceql.importers.common.VERSION_PREFIX) and hidden staging folders. A store folder whose
#: manifest is missing (a killed first import) must not open as an organization of its versions.
_VERSION_PREFIX = "v-"
#: Part of the cache key: changed whenever build_organization writes something new (2: the shops'
#: common `unavailable_fields`), so an organization cached by an older CommerceQL is rebuilt.
ORGANIZATION_LAYOUT = "organization-2"
_STORE_PARTS = (_VERSION_PREFIX, ".")


def shops_in(folder: Path) -> list[Path]:
    """The store folders directly inside `folder` (sorted by name: the shops' order), or none when
    `folder` is itself a store or holds a store's own parts."""
    if not folder.is_dir() or is_store(folder):
        return []
    children = [child for child in folder.iterdir() if child.is_dir()]
    if any(child.name.startswith(_VERSION_PREFIX) for child in children):
        return []
    return sorted(child for child in children if not child.name.startswith(_STORE_PARTS) and is_store(child))


def _read_shop(path: Path, position: int) -> Shop:
    where = path / "manifest.json"
    try:
        manifest = json.loads(where.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommerceQLDataError(f"cannot read {where}: {exc}") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("tables", {}), dict):
        raise CommerceQLDataError(f"{where}: not a store manifest (it needs a `tables` object)")
    if manifest.get("organization"):
        raise CommerceQLDataError(f"{path} is itself an organization; combine the shops' own stores",
                                  hint="list the shop folders, not an organization built from them")
    name = manifest.get("name")
    # Shopify's shop id where an import recorded it, else the shop's position (1, 2, ...).
    shop_id = manifest.get("shop_id")
    return Shop(name=str(name) if isinstance(name, str) and name.strip() else path.name, path=path,
                manifest=manifest,
                shop_id=shop_id if isinstance(shop_id, int) and not isinstance(shop_id, bool) else position)


def _agreed(shops: Sequence[Shop], key: str, what: str, default: Any) -> Any:
    values = {shop.name: shop.manifest.get(key, default) for shop in shops}
    distinct = {json.dumps(v, sort_keys=True) for v in values.values()}
    if len(distinct) > 1:
        listed = ", ".join(f"{name}: {value}" for name, value in values.items())
        raise CommerceQLDataError(
            f"the shops do not share one {what} ({listed})",
            hint=f"an organization adds the shops' figures, so they need one {what}; "
                 "combine the shops that share it",
        )
    return next(iter(values.values()))


def _model_files(shop: Shop) -> dict[str, bytes]:
    named = shop.manifest.get("model")
    folder = shop.path / (named if isinstance(named, str) and not Path(named).is_absolute()
                          and ".." not in Path(named).parts else "model")
    if not folder.is_dir():
        return {}
    return {path.name: path.read_bytes() for path in sorted(folder.glob("*.yaml"))}


def _connection() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    # Bounded like a store session; UTC so no timestamp is read in the machine's zone.
    for statement in ("SET TimeZone = 'UTC'", "SET memory_limit = '2GB'", "SET enable_progress_bar = false"):
        connection.execute(statement)
    return connection


def _id_columns(connection: duckdb.DuckDBPyConnection, files: Sequence[Path]) -> dict[str, str]:
    """BIGINT columns named `..._id` of one table (column -> id kind), from the first file."""
    described = connection.execute(
        f"DESCRIBE SELECT * FROM read_parquet({quote_literal(str(files[0]))})").fetchall()
    return {name: _ID_KIND_OF_COLUMN.get(name, name) for name, kind, *_ in described
            if name.endswith("_id") and kind in ("BIGINT", "INTEGER", "UBIGINT", "HUGEINT")}


def _id_ranges(
    connection: duckdb.DuckDBPyConnection, shops: Sequence[Shop], tables: Sequence[str]
) -> dict[str, list[tuple[int, int] | None]]:
    """Per id kind, each shop's (min, max) over every column holding that kind."""
    ranges: dict[str, list[tuple[int, int] | None]] = {}
    for table in tables:
        files = [f for shop in shops if (f := shop.table_file(table)) is not None]
        if not files:
            continue
        for column, kind in _id_columns(connection, files).items():
            per_shop = ranges.setdefault(kind, [None] * len(shops))
            for index, shop in enumerate(shops):
                file = shop.table_file(table)
                if file is None:
                    continue
                low, high = connection.execute(
                    f'SELECT min("{column}"), max("{column}") FROM read_parquet({quote_literal(str(file))})'
                ).fetchone() or (None, None)
                if low is None:
                    continue
                seen = per_shop[index]
                per_shop[index] = (int(low), int(high)) if seen is None else (min(seen[0], low), max(seen[1], high))
    return ranges


def _overlapping(ranges: Sequence[tuple[int, int] | None]) -> bool:
    known = sorted(r for r in ranges if r is not None)
    return any(later[0] <= earlier[1] for earlier, later in zip(known, known[1:], strict=False))


def build_organization(shop_paths: Sequence[str | Path], out: str | Path, *, name: str | None = None) -> Path:
    """Write the organization store of `shop_paths` (store folders) to `out`; return `out`.

    Raises CommerceQLDataError when the shops cannot be added up (different currencies, time
    zones, account settings or model files) or a folder is not a store."""
    paths = [Path(p).expanduser() for p in shop_paths]
    if len(paths) < 1:
        raise CommerceQLDataError("an organization needs at least one shop's store folder")
    for path in paths:
        if not is_store(path):
            raise CommerceQLDataError(f"{path} is not a CommerceQL store: it has no manifest.json",
                                      hint="give the store folders `commerceql import` or `commerceql sample` wrote")
    shops = [_read_shop(path, position) for position, path in enumerate(paths, start=1)]
    names = [shop.name for shop in shops]
    if len(set(names)) != len(names):
        raise CommerceQLDataError(f"two shops have the same name ({', '.join(names)})",
                                  hint="shop_name tells the shops apart: rename one in its manifest.json")
    currency = _agreed(shops, "currency", "currency", "USD")
    timezone = _agreed(shops, "timezone", "time zone", "UTC")
    accounts = _agreed(shops, "accounts", "account settings (manifest `accounts`)", None)
    models = [_model_files(shop) for shop in shops]
    if any(model != models[0] for model in models):
        listed = ", ".join(f"{shop.name}: {', '.join(m) or 'none'}" for shop, m in zip(shops, models, strict=True))
        raise CommerceQLDataError(f"the shops' model files differ ({listed})",
                                  hint="an organization reads one model: give the shops the same model files")
    out = Path(out).expanduser()
    if out.exists() and any(out.iterdir()):
        if not is_store(out):
            raise CommerceQLDataError(f"{out} exists and is not a store: choose an empty or new folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = list(dict.fromkeys(t for shop in shops for t in shop.manifest.get("tables", {})))
    connection = _connection()
    try:
        ranges = _id_ranges(connection, shops, tables)
        moved = sorted(kind for kind, per_shop in ranges.items() if _overlapping(per_shop))
        for kind in moved:
            highest = max(r[1] for r in ranges[kind] if r is not None)
            if highest >= ID_OFFSET_STEP:
                raise CommerceQLDataError(
                    f"the shops' {kind} values overlap and reach {highest}, too large to move apart",
                    hint="give the shops ids that do not overlap (Shopify's own ids never do)")
        written: dict[str, str] = {}
        row_counts: dict[str, int] = {}
        for table in tables:
            parts = []
            for index, shop in enumerate(shops):
                file = shop.table_file(table)
                if file is None:
                    continue
                columns = _id_columns(connection, [file])
                shifted = [f'"{c}" + {index * ID_OFFSET_STEP} AS "{c}"' for c, kind in columns.items()
                           if kind in moved and index]
                replace = f" REPLACE ({', '.join(shifted)})" if shifted else ""
                parts.append(f"SELECT *{replace}, {quote_literal(shop.name)} AS {SHOP_NAME}, "
                             f"CAST({int(shop.shop_id)} AS BIGINT) AS {SHOP_ID} "
                             f"FROM read_parquet({quote_literal(str(file))})")
            if not parts:
                continue
            target = out / f"{table}.parquet"
            connection.execute(f"COPY ({' UNION ALL BY NAME '.join(parts)}) TO {quote_literal(str(target))} "
                               "(FORMAT PARQUET, COMPRESSION ZSTD)")
            written[table] = target.name
            row_counts[table] = int(connection.execute(
                f"SELECT count(*) FROM read_parquet({quote_literal(str(target))})").fetchone()[0])  # type: ignore[index]
    finally:
        connection.close()
    (out / "model").mkdir()
    for file_name, content in models[0].items():
        (out / "model" / file_name).write_bytes(content)
    (out / "model" / ORGANIZATION_MODEL).write_text(_organization_model(written), encoding="utf-8")
    manifest: dict[str, Any] = {
        "format": "commerceql-store",
        "format_version": 1,
        "name": name or "Organization (" + ", ".join(names) + ")",
        "currency": currency,
        "timezone": timezone,
        "tables": written,
        "row_counts": row_counts,
        "organization": {
            "shops": [{"name": shop.name, "shop_id": shop.shop_id, "path": str(shop.path.resolve()),
                       "id_offset": index * ID_OFFSET_STEP if moved else 0} for index, shop in enumerate(shops)],
            "moved_ids": moved,
        },
    }
    if accounts is not None:
        manifest["accounts"] = accounts
    _merge_clock(manifest, shops)
    _merge_missing(manifest, shops, written)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out


def _organization_model(written: dict[str, str]) -> str:
    """`shop_name` and `shop_id` on every built-in table read straight from a combined table."""
    import yaml

    from commerceql.model.semantic import builtin_model

    documents = []
    for table in builtin_model().tables.values():
        if table.relation not in written:  # derived tables (cohorts, churn ...) are built per query
            continue
        documents.append({
            "name": table.name,
            "dimensions": {
                SHOP_NAME: {"sql": f"{table.name}.{SHOP_NAME}", "type": "string",
                            "description": "The shop of the organization the row belongs to (its store's name)."},
                SHOP_ID: {"sql": f"{table.name}.{SHOP_ID}", "type": "integer",
                          "description": "The shop's id: Shopify's where the import recorded it, else its "
                                         "position in the organization (1, 2, ...)."},
            },
        })
    header = "# Written by commerceql.organization: the shop of every row, on every table of the shops.\n"
    return header + yaml.safe_dump_all(documents, sort_keys=False)


def _merge_clock(manifest: dict[str, Any], shops: Sequence[Shop]) -> None:
    """A pinned clock (frozen exports) is the latest shop's; the data starts with the earliest."""
    pinned = [dt.datetime.fromisoformat(s.manifest["as_of"]) for s in shops if isinstance(s.manifest.get("as_of"), str)]
    if pinned:
        manifest["as_of"] = max(pinned).isoformat()
    starts = [s.manifest["data_start"] for s in shops if isinstance(s.manifest.get("data_start"), str)]
    if starts:
        manifest["data_start"] = min(starts)


def _merge_missing(manifest: dict[str, Any], shops: Sequence[Shop], written: dict[str, str]) -> None:
    """A table is missing (refused with its reason) only where no shop has its data."""
    for key in ("missing_tables", "empty_tables"):
        per_shop = [s.manifest.get(key) if isinstance(s.manifest.get(key), dict) else {} for s in shops]
        common = {table: reason for table, reason in per_shop[0].items()
                  if all(table in other for other in per_shop[1:])}
        if common:
            manifest[key] = common
    gaps = common_gaps([unavailable_fields(shop.manifest) for shop in shops])
    if gaps:
        manifest["unavailable_fields"] = gaps


def organization_cache(folder: Path) -> Path:
    """The organization store of the shops inside `folder`, built once per set of manifests.

    The cache lives outside the folder (a store someone sends you is opened, not written to):
    `$COMMERCEQL_CACHE` or ~/.cache/commerceql, keyed by the shops' paths and manifests."""
    shops = shops_in(folder)
    if not shops:
        raise CommerceQLDataError(f"{folder} holds no store folders")
    digest = hashlib.sha256(ORGANIZATION_LAYOUT.encode())
    for path in shops:
        digest.update(str(path.resolve()).encode())
        digest.update((path / "manifest.json").read_bytes())
    root = Path(os.environ.get("COMMERCEQL_CACHE") or Path.home() / ".cache" / "commerceql") / "organizations"
    target = root / digest.hexdigest()[:24]
    if is_store(target):
        return target
    root.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a reader never sees half a store.
    staging = Path(tempfile.mkdtemp(prefix="building-", dir=root))
    try:
        build_organization(shops, staging / "store", name=folder.resolve().name)
        try:
            (staging / "store").rename(target)
        except OSError:  # another process built it meanwhile
            if not is_store(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
