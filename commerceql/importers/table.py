"""Import any CSV, Parquet or DuckDB table into a CommerceQL store, driven by a small TOML mapping.

    commerceql import table "Sample - Superstore.csv" --mapping superstore.toml --out superstore

The mapping says which source column (or SQL expression) fills each field of the `sales` fact and
of the customers / products / variants tables, may keep extra source columns on those tables, and
may declare extra metrics and dimensions in the semantic-model format (written to the store's
`model/` folder). Every other store table is derived (orders, line items, refunds) or written empty
with the right schema. The whole import runs in DuckDB: the source is read once, in a streaming
fashion, and never loaded into Python. See docs/importing.md for the format and the shipped
examples (commerceql/importers/mappings/*.toml).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import yaml

from commerceql.errors import CommerceQLDataError, did_you_mean
from commerceql.importers.common import (
    FORMAT,
    FORMAT_VERSION,
    IMPORTER_VERSION,
    MAX_INTEGER,
    CommerceQLImportError,
    CommerceQLMappingError,
    ImportReport,
    SourceFile,
    atomic_store_dir,
    check_currency,
    check_timezone,
    duplicate_header,
    new_connection,
    now_iso,
    sha256_of,
    sniff_text,
    sql_ident,
    sql_literal,
    sql_path,
    write_manifest,
    write_table,
)
from commerceql.model.sql_guard import ModelSQLError, check_expression, check_source_query

MAPPINGS_DIR = Path(__file__).parent / "mappings"
SOURCE_CATALOG = "source_db"  # the name a DuckDB source is attached under; `[source] query` reads from it

# field -> kind. Kinds: key (identifies a row of a dimension), text, money, integer, timestamp, boolean.
SALES_FIELDS: dict[str, str] = {
    "order": "key", "order_name": "text", "happened_at": "timestamp", "event_type": "text",
    "customer": "key", "product": "key", "variant": "key", "quantity": "integer", "price": "money",
    "gross_sales": "money", "discounts": "money", "discount_amount": "money", "sales_reversals": "money",
    "taxes": "money", "shipping_charges": "money", "cost": "money", "unit_cost": "money",
    "sales_channel": "text", "source_name": "text", "billing_country": "text", "billing_region": "text",
    "billing_city": "text", "shipping_country": "text", "shipping_region": "text", "shipping_city": "text",
    "discount_code": "text", "product_title_at_sale": "text", "variant_sku_at_sale": "text",
}
CUSTOMER_FIELDS = {
    "email": "text", "first_name": "text", "last_name": "text", "name": "text", "country": "text",
    "region": "text", "city": "text", "accepts_marketing": "boolean", "tags": "text", "created_at": "timestamp",
}
PRODUCT_FIELDS = {
    "title": "text", "handle": "text", "product_type": "text", "vendor": "text", "collection": "text",
    "status": "text", "created_at": "timestamp",
}
VARIANT_FIELDS = {"title": "text", "sku": "text", "price": "money", "compare_at_price": "money"}
EXTRA_TYPES = {
    "string": "VARCHAR", "text": "VARCHAR", "integer": "BIGINT", "number": "DOUBLE", "money": "MONEY",
    "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ", "date": "DATE",
}
SECTIONS = {"store", "source", "sales", "customers", "products", "variants", "columns", "model"}
SOURCE_KEYS = {"format", "file", "delimiter", "header", "columns", "encoding", "table", "query", "timestamp_format",
               "skip_rows", "quote"}
STORE_KEYS = {"name", "currency", "timezone", "money_decimals"}
EVENT_TYPES = ("order", "refund", "cancellation")
# A dimension's attributes come from its latest sale; among sales at the same time, the first
# record. The record number breaks the tie: arg_max alone keeps whichever tied row a thread
# aggregated first, and a large source gave different attributes from one import to the next.
LATEST = "(f.happened_at, -f.__row)"
ATTRIBUTES = ("sales_channel", "source_name", "billing_country", "billing_region", "billing_city",
              "shipping_country", "shipping_region", "shipping_city", "discount_code")


@dataclass
class FieldSpec:
    name: str
    kind: str
    sql: str  # an SQL expression over the source view `src`
    raw_column: str | None  # the source column when the field is a plain column (for error messages)
    format: str | None = None
    parts: tuple[str, ...] = ()  # composite key: one expression per column


@dataclass
class Mapping_:
    path: Path | None
    text: str
    store: dict[str, Any]
    source: dict[str, Any]
    sales: dict[str, FieldSpec]
    customers: dict[str, FieldSpec]
    products: dict[str, FieldSpec]
    variants: dict[str, FieldSpec]
    columns: dict[str, dict[str, tuple[FieldSpec, str]]]  # table -> name -> (spec, duckdb type)
    model: dict[str, Any]


def load_mapping(mapping: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping_:
    """Read and check a mapping file (or an already-parsed dict). A bare name picks a shipped mapping."""
    path: Path | None = None
    text = ""
    if isinstance(mapping, Mapping):
        data = dict(mapping)
    else:
        path = Path(mapping)
        if not path.exists() and not path.suffix and (MAPPINGS_DIR / f"{path.name}.toml").exists():
            path = MAPPINGS_DIR / f"{path.name}.toml"
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text)
        except OSError as exc:
            raise CommerceQLMappingError(f"cannot read mapping file {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise CommerceQLMappingError(f"mapping file {path} is not valid TOML: {exc}") from exc
    where = str(path) if path else "mapping"
    _check_keys(data, SECTIONS, where, "section")
    store = dict(data.get("store") or {})
    _check_keys(store, STORE_KEYS, where, "[store] key")
    source = dict(data.get("source") or {})
    _check_keys(source, SOURCE_KEYS, where, "[source] key")
    _whole_number(store, "money_decimals", f"{where}: [store]", 0, 6)
    _whole_number(source, "skip_rows", f"{where}: [source]", 0)
    if source.get("query") is not None:
        _checked(lambda: check_source_query(source["query"], where=f"{where}: [source] query", catalog=SOURCE_CATALOG))
    sales = _fields(data.get("sales") or {}, SALES_FIELDS, where, "sales")
    if "happened_at" not in sales:
        raise CommerceQLMappingError(f"{where}: [sales] needs `happened_at` (the column with the order date)")
    if not ({"gross_sales", "price"} & set(sales)):
        raise CommerceQLMappingError(f"{where}: [sales] needs `gross_sales` or `price` (the amount of each row)")
    if "discounts" in sales and "discount_amount" in sales:
        raise CommerceQLMappingError(f"{where}: [sales] takes `discounts` (negative) or `discount_amount` "
                                     "(positive), not both")
    customers = _fields(data.get("customers") or {}, CUSTOMER_FIELDS, where, "customers")
    products = _fields(data.get("products") or {}, PRODUCT_FIELDS, where, "products")
    variants = _fields(data.get("variants") or {}, VARIANT_FIELDS, where, "variants")
    columns: dict[str, dict[str, tuple[FieldSpec, str]]] = {}
    for table, specs in (data.get("columns") or {}).items():
        if table not in ("sales", "orders", "customers", "products"):
            raise CommerceQLMappingError(f"{where}: [columns.{table}]: extra columns go on sales, orders, "
                                         "customers or products")
        columns[table] = {}
        for name, spec in specs.items():
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                raise CommerceQLMappingError(f"{where}: extra column `{name}` must be lower_snake_case")
            kind = "text"
            if isinstance(spec, dict) and "type" in spec:
                kind = str(spec["type"])
                spec = {k: v for k, v in spec.items() if k != "type"}
            if kind not in EXTRA_TYPES:
                raise CommerceQLMappingError(f"{where}: [columns.{table}] `{name}` has type `{kind}`; "
                                             f"use one of {sorted(EXTRA_TYPES)}")
            field_kind = {"string": "text", "text": "text", "integer": "integer", "number": "number",
                          "money": "money", "boolean": "boolean", "timestamp": "timestamp", "date": "date"}[kind]
            columns[table][name] = (_field(name, field_kind, spec, where, f"columns.{table}"), EXTRA_TYPES[kind])
    model = dict(data.get("model") or {})
    return Mapping_(path, text, store, source, sales, customers, products, variants, columns, model)


def _checked(check: Callable[[], str]) -> str:
    """Run an sql_guard check, reporting a refusal as a mapping error."""
    try:
        return check()
    except ModelSQLError as exc:
        raise CommerceQLMappingError(exc.message, hint=exc.hint) from exc


def _whole_number(section: Mapping[str, Any], key: str, where: str, low: int, high: int | None = None) -> int | None:
    value = section.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"{low} or more"
        raise CommerceQLMappingError(f"{where}: {key} must be a whole number {bounds}, not {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: set[str], where: str, what: str) -> None:
    for key in data:
        if key not in allowed:
            hint = did_you_mean(key, allowed)
            raise CommerceQLMappingError(f"{where}: unknown {what} `{key}`", hint=hint)


def _fields(section: Mapping[str, Any], vocabulary: dict[str, str], where: str, table: str) -> dict[str, FieldSpec]:
    out = {}
    for name, spec in section.items():
        if name not in vocabulary:
            raise CommerceQLMappingError(
                f"{where}: [{table}] has no field `{name}`", hint=did_you_mean(name, vocabulary)
                or f"fields: {', '.join(vocabulary)}",
            )
        out[name] = _field(name, vocabulary[name], spec, where, table)
    return out


def _field(name: str, kind: str, spec: Any, where: str, table: str) -> FieldSpec:
    fmt = None
    if isinstance(spec, str):
        return FieldSpec(name, kind, f"src.{sql_ident(spec)}", spec)
    if isinstance(spec, list):
        if kind != "key" or not spec or not all(isinstance(s, str) for s in spec):
            raise CommerceQLMappingError(f"{where}: [{table}] `{name}`: a list of columns is only allowed for keys")
        parts = tuple(f"src.{sql_ident(s)}" for s in spec)
        return FieldSpec(name, kind, " || '|' || ".join(f"coalesce(CAST({p} AS VARCHAR), '')" for p in parts),
                         ", ".join(spec), parts=parts)
    if isinstance(spec, dict):
        fmt = spec.get("format")
        unknown = set(spec) - {"column", "sql", "value", "format"}
        if unknown:
            raise CommerceQLMappingError(f"{where}: [{table}] `{name}`: unknown option(s) {sorted(unknown)}",
                                         hint="use column = \"...\", sql = \"...\" or value = ...")
        given = [k for k in ("column", "sql", "value") if k in spec]
        if len(given) != 1:
            raise CommerceQLMappingError(f"{where}: [{table}] `{name}` needs exactly one of column, sql or value")
        if "column" in spec:
            return FieldSpec(name, kind, f"src.{sql_ident(str(spec['column']))}", str(spec["column"]), fmt)
        if "sql" in spec:
            # Mapping files are shared like store folders: the expression may use the source's
            # columns and allow-listed functions, nothing that reads files or runs statements.
            sql = _checked(lambda: check_expression(spec["sql"], where=f"{where}: [{table}] `{name}`.sql",
                                                    aliases={"src"}, bare_columns=True, what="mapping SQL"))
            return FieldSpec(name, kind, f"({sql})", None, fmt)
        value = spec["value"]
        if isinstance(value, bool):
            literal = "true" if value else "false"
        elif isinstance(value, (int, float)):
            literal = repr(value)
        else:
            literal = sql_literal(str(value))
        return FieldSpec(name, kind, literal, None, fmt)
    raise CommerceQLMappingError(f"{where}: [{table}] `{name}` must be a column name, a list, or a table "
                                 "like {{ column = \"...\" }} / {{ sql = \"...\" }} / {{ value = ... }}")


# ---------------------------------------------------------------------------------------------
# the source


def _utf8_copy(source: Path, work: Path) -> Path:
    """A UTF-8 copy of a UTF-16 text file, written in the import's work folder."""
    work.mkdir(parents=True, exist_ok=True)
    target = work / "source-utf8.csv"
    with open(source, encoding="utf-16", newline="") as reader, open(target, "w", encoding="utf-8", newline="") as writer:
        try:
            shutil.copyfileobj(reader, writer, 1 << 20)
        except UnicodeDecodeError as exc:
            raise CommerceQLImportError(f"the file is not valid UTF-16 text ({exc.reason})", file=source) from exc
    return target


def _open_source(con: duckdb.DuckDBPyConnection, source: Path, mapping: Mapping_, report: ImportReport,
                 work: Path) -> list[str]:
    """Create the view `src` (all source columns plus __row, the 1-based record number)."""
    opts = mapping.source
    fmt = str(opts.get("format") or _format_of(source))
    if fmt in ("csv", "whitespace") and not source.is_file():
        raise CommerceQLImportError("the source file does not exist", file=source)
    if fmt == "csv":
        encoding, first = sniff_text(source)
        delimiter = str(opts.get("delimiter", ","))
        if delimiter not in first and opts.get("header", True) and len(first) > 0:
            for other, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe"), (",", "comma")):
                if other != delimiter and other in first:
                    raise CommerceQLImportError(
                        f"wrong delimiter: the header is {name}-separated, the mapping says {delimiter!r}",
                        file=source, line=1, hint=f"set delimiter = {other!r} in [source]",
                    )
        args = [f"delim={sql_literal(delimiter)}", "all_varchar=true", f"quote={sql_literal(str(opts.get('quote', chr(34))))}",
                "strict_mode=true", "null_padding=false"]
        if encoding == "cp1252":
            args.append("encoding='latin-1'")
        if opts.get("header", True) is not False and not opts.get("skip_rows"):
            # DuckDB renames a repeated column (`Sales_1`) without a word; refuse it instead.
            duplicate_header(next(csv.reader([first], delimiter=delimiter), []), source)
        if opts.get("header", True) is False:
            names = opts.get("columns")
            if not names:
                raise CommerceQLMappingError("[source] header = false needs `columns = [...]` (the column names)")
            args.append("header=false")
            args.append("columns={" + ", ".join(f"{sql_literal(n)}: 'VARCHAR'" for n in names) + "}")
            args.append("auto_detect=false")
        else:
            args.append("header=true")
        if opts.get("skip_rows"):
            args.append(f"skip={int(opts['skip_rows'])}")
        readable = source
        if encoding == "utf-16":
            # DuckDB's CSV reader has no big-endian UTF-16: read a UTF-8 copy (line numbers stay the same).
            readable = _utf8_copy(source, work)
        relation = f"read_csv({sql_path(readable)}, {', '.join(args)})"
    elif fmt == "whitespace":
        sniff_text(source)
        names = opts.get("columns")
        header = opts.get("header", True)
        raw = (f"read_csv({sql_path(source)}, delim='\\x1f', quote='', escape='', header=false, "
               f"auto_detect=false, columns={{'line': 'VARCHAR'}})")
        con.execute(f"CREATE TEMP VIEW ws_lines AS SELECT row_number() OVER () AS n, "
                    f"regexp_split_to_array(trim(line), '\\s+') AS f FROM {raw} WHERE trim(line) <> ''")
        if header:
            row = con.execute("SELECT f FROM ws_lines WHERE n = (SELECT min(n) FROM ws_lines)").fetchone()
            found = list(row[0]) if row else []
            names = names or found
        if not names:
            raise CommerceQLMappingError("[source] format = \"whitespace\" without a header needs `columns = [...]`")
        width = len(names)
        skip = "WHERE n > (SELECT min(n) FROM ws_lines)" if header else ""
        bad = con.execute(f"SELECT n, len(f) FROM ws_lines {skip} {'AND' if skip else 'WHERE'} len(f) <> {width} "
                          "ORDER BY n LIMIT 1").fetchone()
        if bad:
            raise CommerceQLImportError(f"{bad[1]} fields where {width} are expected", file=source, line=int(bad[0]))
        cols = ", ".join(f"f[{i + 1}] AS {sql_ident(n)}" for i, n in enumerate(names))
        relation = f"(SELECT {cols} FROM ws_lines {skip} ORDER BY n)"
    elif fmt == "parquet":
        # A file that exists is read as itself even if its name has `[`; otherwise the name is a glob.
        relation = f"read_parquet({sql_path(source) if source.is_file() else sql_literal(str(source))})"
    elif fmt == "duckdb":
        con.execute(f"ATTACH {sql_literal(str(source))} AS {SOURCE_CATALOG} (READ_ONLY)")
        if opts.get("query"):
            # Checked again here for mappings given as dicts that skipped load_mapping's check.
            query = _checked(lambda: check_source_query(opts["query"], where="[source] query", catalog=SOURCE_CATALOG))
            relation = f"({query})"
        elif opts.get("table"):
            relation = f"{SOURCE_CATALOG}." + ".".join(sql_ident(p) for p in str(opts["table"]).split("."))
        else:
            raise CommerceQLMappingError("[source] format = \"duckdb\" needs `table = \"...\"` or `query = \"...\"`")
    else:
        raise CommerceQLMappingError(f"[source] format {fmt!r} is not one of csv, whitespace, parquet, duckdb")
    try:
        con.execute(f"CREATE TEMP TABLE src AS SELECT *, row_number() OVER () AS __row FROM {relation}")
    except duckdb.Error as exc:
        message = str(exc).splitlines()[0]
        line = None
        m = re.search(r"line (\d+)", str(exc), re.IGNORECASE)
        if m:
            line = int(m.group(1))
        raise CommerceQLImportError(f"cannot read the source: {message}", file=source, line=line) from exc
    columns = [r[0] for r in con.execute("DESCRIBE src").fetchall() if r[0] != "__row"]
    rows = int(con.execute("SELECT count(*) FROM src").fetchone()[0])
    if rows == 0:
        raise CommerceQLImportError("the source has no rows", file=source)
    return columns


def _format_of(source: Path) -> str:
    suffix = source.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix in (".duckdb", ".db"):
        return "duckdb"
    return "csv"


# ---------------------------------------------------------------------------------------------
# typed expressions with validation


class _Typer:
    def __init__(self, con: duckdb.DuckDBPyConnection, source: Path, columns: list[str], timezone: str,
                 scale: int, timestamp_format: str | None) -> None:
        self.con = con
        self.source = source
        self.columns = columns
        self.types = {r[0]: r[1] for r in con.execute("DESCRIBE src").fetchall()}
        self.timezone = timezone
        self.scale = scale
        self.timestamp_format = timestamp_format

    def check_columns(self, spec: FieldSpec, where: str) -> None:
        names = [spec.raw_column] if spec.raw_column and not spec.parts else []
        if spec.parts:
            names = [p[len("src."):].strip('"').replace('""', '"') for p in spec.parts]
        for name in names:
            if name not in self.types:
                raise CommerceQLImportError(
                    f"the mapping's [{where}] `{spec.name}` names column `{name}`, which the source does not have",
                    file=self.source, line=1, column=name,
                    hint=did_you_mean(name, self.columns) or f"columns: {', '.join(self.columns)}",
                )

    def _first_bad(self, raw: str, typed: str, spec: FieldSpec, what: str, hint: str | None = None) -> None:
        try:
            bad = self.con.execute(
                f"SELECT __row, CAST({raw} AS VARCHAR) FROM src WHERE {raw} IS NOT NULL "
                f"AND trim(CAST({raw} AS VARCHAR)) <> '' AND ({typed}) IS NULL ORDER BY __row LIMIT 1"
            ).fetchone()
        except duckdb.Error as exc:
            raise CommerceQLMappingError(f"the mapping's `{spec.name}` expression fails: {str(exc).splitlines()[0]}") \
                from exc
        if bad:
            row, value = bad
            raise CommerceQLImportError(
                f"{what} (record {row})", file=self.source, line=int(row) + 1,
                column=spec.raw_column or spec.name, value=value, hint=hint,
            )

    def expr(self, spec: FieldSpec, where: str) -> str:
        """A typed SQL expression for the field; validates every row (first bad value -> error)."""
        self.check_columns(spec, where)
        kind, raw = spec.kind, spec.sql
        if kind in ("key", "text"):
            return f"nullif(trim(CAST({raw} AS VARCHAR)), '')"
        if kind == "money":
            typed = (f"TRY_CAST(replace(trim(CAST({raw} AS VARCHAR)), ',', '') AS DECIMAL(38,{max(self.scale, 6)}))"
                     if self._is_text(spec) else f"TRY_CAST({raw} AS DECIMAL(38,{max(self.scale, 6)}))")
            self._first_bad(raw, typed, spec, "not an amount",
                            "amounts are written like 1234.56 (a dot for decimals, no currency sign)")
            limit = 10 ** (18 - self.scale)  # the store's DECIMAL(18, scale) holds amounts below it
            self._first_bad(raw, f"CASE WHEN abs({typed}) < {limit} THEN {typed} END", spec,
                            f"too large an amount (the store holds amounts below {limit:,})")
            return f"round({typed}, {self.scale})"
        if kind in ("integer", "number"):
            target = "DOUBLE" if kind == "number" else "DOUBLE"
            typed = f"TRY_CAST(trim(CAST({raw} AS VARCHAR)) AS {target})" if self._is_text(spec) else \
                f"TRY_CAST({raw} AS {target})"
            self._first_bad(raw, typed, spec, "not a number")
            if kind == "integer":
                # quantities are the store's INTEGER, other whole numbers (user columns) BIGINT
                limit = MAX_INTEGER if spec.name == "quantity" else 2**63 - 1024  # below 2**63 as a DOUBLE
                self._first_bad(raw, f"CASE WHEN abs({typed}) <= {limit} THEN {typed} END", spec,
                                f"too large a number (at most {limit:,})")
                bad = self.con.execute(f"SELECT __row, CAST({raw} AS VARCHAR) FROM src WHERE {typed} <> round({typed}) "
                                       "ORDER BY __row LIMIT 1").fetchone()
                if bad:
                    raise CommerceQLImportError(f"not a whole number (record {bad[0]})", file=self.source,
                                                line=int(bad[0]) + 1, column=spec.raw_column or spec.name, value=bad[1])
                return f"CAST(round({typed}) AS BIGINT)"
            return typed
        if kind == "boolean":
            text = f"lower(trim(CAST({raw} AS VARCHAR)))"
            return (f"CASE WHEN {text} IN ('true','yes','y','1','t') THEN true "
                    f"WHEN {text} IN ('false','no','n','0','f') THEN false END")
        if kind in ("timestamp", "date"):
            # DuckDB reads 'infinity', '-inf' and 'epoch' as timestamps: they are not dates of anything
            parsed = self._timestamp(spec)
            typed = (f"(CASE WHEN isfinite({parsed}) AND lower(trim(CAST({raw} AS VARCHAR))) <> 'epoch' "
                     f"THEN {parsed} END)")
            self._first_bad(raw, typed, spec, "not a date",
                            "set format = \"%m/%d/%Y\" (strptime) on the field, or timestamp_format in [source]")
            return typed if kind == "timestamp" else f"CAST(timezone({sql_literal(self.timezone)}, {typed}) AS DATE)"
        raise AssertionError(kind)

    def _is_text(self, spec: FieldSpec) -> bool:
        if spec.raw_column is None:
            try:
                typ = self.con.execute(f"SELECT typeof({spec.sql}) FROM src LIMIT 1").fetchone()
            except duckdb.Error as exc:
                raise CommerceQLMappingError(f"the mapping's `{spec.name}` expression fails: "
                                             f"{str(exc).splitlines()[0]}") from exc
            return bool(typ) and typ[0] == "VARCHAR"
        return self.types.get(spec.raw_column, "VARCHAR") == "VARCHAR"

    def _timestamp(self, spec: FieldSpec) -> str:
        raw = spec.sql
        tz = sql_literal(self.timezone)
        col_type = self.types.get(spec.raw_column or "", None)
        if col_type and col_type.startswith("TIMESTAMP WITH TIME ZONE"):
            return raw
        if col_type and (col_type.startswith("TIMESTAMP") or col_type == "DATE"):
            return f"timezone({tz}, CAST({raw} AS TIMESTAMP))"
        text = f"nullif(trim(CAST({raw} AS VARCHAR)), '')"
        fmt = spec.format or self.timestamp_format
        if fmt:
            return f"timezone({tz}, try_strptime({text}, {sql_literal(fmt)}))"
        # auto: ISO with offset, ISO local, then common formats (the first that reads every value)
        candidates = [
            ("offset", f"TRY_CAST({text} AS TIMESTAMPTZ)",
             f"regexp_matches({text}, '([+-]\\d\\d:?\\d\\d|Z|UTC)$')"),
            ("iso", f"timezone({tz}, TRY_CAST({text} AS TIMESTAMP))", None),
        ]
        for f in ("%Y%m%d", "%m/%d/%Y", "%d/%m/%Y", "%m/%d/%Y %H:%M", "%d/%m/%Y %H:%M", "%m/%d/%Y %H:%M:%S",
                  "%d/%m/%Y %H:%M:%S", "%d.%m.%Y", "%Y/%m/%d"):
            candidates.append((f, f"timezone({tz}, try_strptime({text}, {sql_literal(f)}))", None))
        for _name, expr, condition in candidates:
            where = f"{text} IS NOT NULL AND ({expr}) IS NULL"
            if condition:
                where = f"{text} IS NOT NULL AND (NOT {condition} OR ({expr}) IS NULL)"
            bad = self.con.execute(f"SELECT count(*) FROM src WHERE {where}").fetchone()[0]
            if bad == 0:
                return expr
        return f"TRY_CAST({text} AS TIMESTAMPTZ)"


# ---------------------------------------------------------------------------------------------
# the import


def import_table(
    source: str | os.PathLike[str],
    mapping: str | os.PathLike[str] | Mapping[str, Any],
    out_dir: str | os.PathLike[str],
    *,
    name: str | None = None,
    timezone: str | None = None,
    currency: str | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> ImportReport:
    """Import a CSV / whitespace / Parquet file or a DuckDB table into a new store folder.

    `mapping` is a TOML file (or a dict of the same shape, or the name of a shipped mapping such
    as "superstore"). Returns the import report; raises CommerceQLImportError / CommerceQLMappingError
    and leaves nothing behind when the source or the mapping is wrong.
    """
    started = time.monotonic()
    spec = load_mapping(mapping)
    source_path = Path(source).expanduser()
    if not source_path.exists() and not any(ch in str(source_path) for ch in "*?["):
        raise CommerceQLImportError("the source does not exist", file=source_path)
    settings = spec.store
    tz = check_timezone(timezone or str(settings.get("timezone", "UTC")))
    cur = check_currency(currency or str(settings.get("currency", "USD")))
    scale = _whole_number(settings, "money_decimals", "[store]", 0, 6)
    scale = 2 if scale is None else scale
    report = ImportReport(source_kind="table", currency=cur, timezone=tz, timezone_reason="from the mapping"
                          if not timezone else "given with --timezone")
    report.store_name = name or str(settings.get("name") or Path(out_dir).name)
    with atomic_store_dir(out_dir, overwrite=overwrite) as tmp:
        con = new_connection(tmp / "_work")
        if progress:
            con.execute("SET enable_progress_bar = true")
        try:
            _run(con, source_path, spec, tmp, report, scale)
        finally:
            con.close()
        if spec.path is not None:
            shutil.copyfile(spec.path, tmp / "mapping.toml")
        report.seconds = time.monotonic() - started
        (tmp / "import_report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    report.out_dir = str(Path(out_dir))
    return report


def _run(con: duckdb.DuckDBPyConnection, source: Path, spec: Mapping_, tmp: Path, report: ImportReport,
         scale: int) -> None:
    money = f"DECIMAL(18,{scale})"
    columns = _open_source(con, source, spec, report, tmp / "_work")
    n_rows = int(con.execute("SELECT count(*) FROM src").fetchone()[0])
    sf = SourceFile(path=str(source), kind=f"table ({spec.source.get('format') or _format_of(source)})",
                    sha256=sha256_of(source) if source.is_file() else "", bytes=source.stat().st_size
                    if source.is_file() else 0, records=n_rows)
    report.files.append(sf)
    typer = _Typer(con, source, columns, report.timezone, scale, spec.source.get("timestamp_format"))
    s = spec.sales
    e: dict[str, str] = {}
    for name, field_spec in s.items():
        e[name] = typer.expr(field_spec, "sales")
    quantity = e.get("quantity", "1")
    if "gross_sales" in e:
        gross = e["gross_sales"]
    else:
        gross = f"round({e['price']} * {quantity}, {scale})"
    if "discounts" in e:
        discounts = e["discounts"]
    elif "discount_amount" in e:
        discounts = f"-({e['discount_amount']})"
    else:
        discounts = "0"
    cost = e.get("cost") or (f"{e['unit_cost']} * {quantity}" if "unit_cost" in e else "NULL")
    event = e.get("event_type", "'order'")
    order_key = e.get("order", "CAST(src.__row AS VARCHAR)")
    select = {
        "__row": "src.__row",
        "order_key": order_key,
        "order_name": e.get("order_name", order_key),
        "happened_at": e["happened_at"],
        "event_type": f"lower({event})",
        "customer_key": e.get("customer", "NULL"),
        "product_key": e.get("product", "NULL"),
        "variant_key": e.get("variant", e.get("product", "NULL")),
        "quantity": quantity,
        "gross_sales": gross,
        "discounts": discounts,
        "sales_reversals": e.get("sales_reversals", "0"),
        "taxes": e.get("taxes", "0"),
        "shipping_charges": e.get("shipping_charges", "0"),
        "cost": cost,
        **{k: e.get(k, "CAST(NULL AS VARCHAR)") for k in ATTRIBUTES},
        "product_title_at_sale": e.get("product_title_at_sale", "CAST(NULL AS VARCHAR)"),
        "variant_sku_at_sale": e.get("variant_sku_at_sale", "CAST(NULL AS VARCHAR)"),
    }
    for table, fields in (("customers", spec.customers), ("products", spec.products), ("variants", spec.variants)):
        for name, field_spec in fields.items():
            select[f"{table}__{name}"] = typer.expr(field_spec, table)
    for table, extras in spec.columns.items():
        for name, (field_spec, _typ) in extras.items():
            select[f"x_{table}__{name}"] = typer.expr(field_spec, f"columns.{table}")
    body = ", ".join(f"{expr} AS {sql_ident(alias)}" for alias, expr in select.items())
    con.execute(f"CREATE TEMP TABLE facts_all AS SELECT {body} FROM src")
    # checks on the rows
    bad = con.execute("SELECT __row, event_type FROM facts_all WHERE event_type NOT IN ('order','refund','cancellation') "
                      "ORDER BY __row LIMIT 1").fetchone()
    if bad:
        raise CommerceQLImportError(f"event type must be one of {', '.join(EVENT_TYPES)} (record {bad[0]})",
                                    file=source, line=int(bad[0]) + 1, column=s["event_type"].raw_column, value=bad[1])
    bad = con.execute("SELECT __row, discounts FROM facts_all WHERE discounts > 0 ORDER BY __row LIMIT 1").fetchone()
    if bad:
        raise CommerceQLImportError(
            f"discounts must be zero or negative (record {bad[0]})", file=source, line=int(bad[0]) + 1,
            column=(s.get("discounts") or s.get("discount_amount")).raw_column, value=str(bad[1]),
            hint="map a positive discount amount with `discount_amount` instead of `discounts`",
        )
    for column, reason in (("happened_at", "no date"), ("order_key", "no order key")):
        for row in con.execute(f"SELECT __row FROM facts_all WHERE {column} IS NULL ORDER BY __row").fetchall():
            report.skip(source, int(row[0]) + 1, f"{reason}: the row is not imported")
    con.execute("CREATE TEMP TABLE facts AS SELECT * FROM facts_all WHERE happened_at IS NOT NULL "
                "AND order_key IS NOT NULL")
    kept = int(con.execute("SELECT count(*) FROM facts").fetchone()[0])
    if kept == 0:
        raise CommerceQLImportError("no row of the source has both a date and an order key", file=source)
    _check_the_store_holds(con, source, s, scale, report.currency)
    # ids: integer keys are kept, other keys are numbered by first appearance
    for key in ("order", "customer", "product", "variant"):
        con.execute(f"""
            CREATE TEMP TABLE {key}_ids AS
            WITH k AS (SELECT {key}_key AS key, min(happened_at) AS first_at, min(__row) AS first_row
                       FROM facts WHERE {key}_key IS NOT NULL GROUP BY 1),
                 numeric AS (SELECT bool_and(regexp_full_match(key, '\\d{{1,18}}')) AS ok,
                                    count(DISTINCT TRY_CAST(key AS BIGINT)) = count(*) AS distinct_ok FROM k)
            SELECT key, CASE WHEN (SELECT ok AND distinct_ok FROM numeric) THEN CAST(key AS BIGINT)
                        ELSE row_number() OVER (ORDER BY first_at, first_row, key) END AS id
            FROM k
        """)
    con.execute(f"""
        CREATE TEMP TABLE orders_base AS
        SELECT f.order_key, i.id AS order_id, any_value(f.order_name ORDER BY f.__row) AS name,
               min(f.happened_at) FILTER (WHERE f.event_type = 'order') AS created_at,
               min(f.happened_at) AS first_at,
               any_value(c.id ORDER BY f.__row) AS customer_id,
               {", ".join(f"any_value(f.{k} ORDER BY f.__row) AS {k}" for k in ATTRIBUTES)},
               count(*) FILTER (WHERE f.event_type = 'order') AS line_count,
               sum(f.quantity) FILTER (WHERE f.event_type = 'order') AS item_count,
               sum(f.gross_sales) FILTER (WHERE f.event_type = 'order') AS line_items_total,
               -sum(f.discounts) FILTER (WHERE f.event_type = 'order') AS total_discounts,
               sum(f.gross_sales + f.discounts) FILTER (WHERE f.event_type = 'order') AS subtotal,
               sum(f.shipping_charges) FILTER (WHERE f.event_type = 'order') AS shipping,
               sum(f.taxes) FILTER (WHERE f.event_type = 'order') AS taxes,
               sum(f.gross_sales + f.discounts + f.sales_reversals + f.taxes + f.shipping_charges)
                   FILTER (WHERE f.event_type = 'order') AS total,
               -coalesce(sum(f.gross_sales + f.discounts + f.sales_reversals + f.taxes + f.shipping_charges)
                   FILTER (WHERE f.event_type <> 'order'), 0) AS total_refunded,
               min(f.happened_at) FILTER (WHERE f.event_type = 'cancellation') AS cancelled_at
               {''.join(f", any_value(f.x_orders__{n} ORDER BY f.__row) AS {sql_ident(n)}"
                        for n in spec.columns.get('orders', {}))}
        FROM facts f JOIN order_ids i ON i.key = f.order_key LEFT JOIN customer_ids c ON c.key = f.customer_key
        GROUP BY f.order_key, i.id
    """)
    con.execute("""
        CREATE TEMP TABLE orders_ranked AS
        SELECT *, CASE WHEN customer_id IS NULL THEN NULL ELSE
                  row_number() OVER (PARTITION BY customer_id ORDER BY coalesce(created_at, first_at), order_id) END
                  AS customer_order_number
        FROM orders_base
    """)
    counts: dict[str, int] = {}
    extra_orders = [(n, t) for n, (_f, t) in spec.columns.get("orders", {}).items()]
    counts["orders"] = write_table(con, tmp, "orders", f"""
        SELECT order_id, name, coalesce(created_at, first_at) AS created_at, customer_id, sales_channel, source_name,
               {sql_literal(report.currency)} AS presentment_currency, {sql_literal(report.currency)} AS shop_currency,
               CASE WHEN discount_code IS NULL THEN NULL ELSE [discount_code] END AS discount_codes,
               line_count, item_count, line_items_total, total_discounts, subtotal, shipping, taxes, total,
               total_refunded, total - total_refunded AS current_total, cancelled_at, false AS is_test,
               customer_order_number, customer_order_number = 1 AS is_first_order,
               billing_country, billing_region, billing_city, shipping_country, shipping_region, shipping_city
               {''.join(f", {sql_ident(n)}" for n, _t in extra_orders)}
        FROM orders_ranked ORDER BY order_id
    """, money_type=money, extra=[(n, _money_type(t, money)) for n, t in extra_orders])
    # sales fact
    order_attr = ", ".join(f"coalesce(f.{k}, o.{k}) AS {k}" for k in ATTRIBUTES)
    extra_sales = [(n, t) for n, (_f, t) in spec.columns.get("sales", {}).items()]
    title_expr = "coalesce(f.product_title_at_sale" + (", f.products__title" if "products__title" in select else "") + ")"
    sku_expr = "coalesce(f.variant_sku_at_sale" + (", f.variants__sku" if "variants__sku" in select else "") + ")"
    con.execute(f"""
        CREATE TEMP TABLE sales_out AS
        SELECT row_number() OVER (ORDER BY f.happened_at, o.order_id, f.event_type <> 'order', f.__row) AS sale_id,
               o.order_id, o.name AS order_name, f.__row AS __row, f.happened_at, f.event_type,
               'product' AS line_type, p.id AS product_id, v.id AS variant_id, o.customer_id, {order_attr},
               CASE WHEN o.customer_id IS NULL THEN NULL ELSE o.customer_order_number = 1 END AS is_first_order,
               f.quantity, f.gross_sales, f.discounts, f.sales_reversals,
               f.gross_sales + f.discounts + f.sales_reversals AS net_sales, f.taxes, f.shipping_charges,
               f.gross_sales + f.discounts + f.sales_reversals + f.taxes + f.shipping_charges AS total_sales,
               f.cost, {title_expr} AS product_title_at_sale, {sku_expr} AS variant_sku_at_sale
               {''.join(f", f.x_sales__{n} AS {sql_ident(n)}" for n, _t in extra_sales)}
        FROM facts f JOIN order_ids oi ON oi.key = f.order_key JOIN orders_ranked o ON o.order_id = oi.id
        LEFT JOIN product_ids p ON p.key = f.product_key LEFT JOIN variant_ids v ON v.key = f.variant_key
    """)
    con.execute("""
        CREATE TEMP TABLE line_ids AS
        SELECT __row, row_number() OVER (ORDER BY order_id, __row) AS line_item_id
        FROM sales_out WHERE event_type = 'order'
    """)
    counts["sales"] = write_table(con, tmp, "sales", """
        SELECT s.*, l.line_item_id FROM sales_out s LEFT JOIN line_ids l USING (__row) ORDER BY sale_id
    """, money_type=money, extra=[(n, _money_type(t, money)) for n, t in extra_sales])
    counts["line_items"] = write_table(con, tmp, "line_items", """
        SELECT l.line_item_id, s.order_id, s.product_id, s.variant_id, s.product_title_at_sale AS title,
               NULL AS variant_title, s.variant_sku_at_sale AS sku, s.quantity,
               CASE WHEN s.quantity <> 0 THEN s.gross_sales / s.quantity END AS price, s.gross_sales AS gross,
               -s.discounts AS line_discount, 0 AS allocated_order_discount, -s.discounts AS total_discount,
               s.gross_sales + s.discounts AS net, s.taxes AS tax,
               CASE WHEN s.quantity <> 0 THEN s.cost / s.quantity END AS unit_cost, s.cost
        FROM sales_out s JOIN line_ids l USING (__row) ORDER BY l.line_item_id
    """, money_type=money)
    con.execute("""
        CREATE TEMP TABLE refund_groups AS
        SELECT order_id, happened_at, event_type,
               row_number() OVER (ORDER BY happened_at, order_id, event_type) AS refund_id
        FROM (SELECT DISTINCT order_id, happened_at, event_type FROM sales_out WHERE event_type <> 'order')
    """)
    counts["refunds"] = write_table(con, tmp, "refunds", """
        SELECT g.refund_id, g.order_id, g.happened_at AS created_at,
               CASE WHEN g.event_type = 'cancellation' THEN 'cancellation' ELSE 'return' END AS kind,
               count(*) AS line_count, -sum(s.quantity) AS item_count, -sum(s.net_sales) AS refunded_subtotal,
               -sum(s.taxes) AS refunded_tax, -sum(s.shipping_charges) AS refunded_shipping,
               -sum(s.total_sales) AS total_refunded
        FROM refund_groups g JOIN sales_out s USING (order_id, happened_at, event_type)
        GROUP BY ALL ORDER BY g.refund_id
    """, money_type=money)
    counts["refund_line_items"] = write_table(con, tmp, "refund_line_items", """
        SELECT row_number() OVER (ORDER BY g.refund_id, s.__row) AS refund_line_item_id, g.refund_id, s.order_id,
               NULL AS line_item_id, s.product_id, s.variant_id, -s.quantity AS quantity, -s.net_sales AS subtotal,
               -s.taxes AS tax
        FROM refund_groups g JOIN sales_out s USING (order_id, happened_at, event_type) ORDER BY 1
    """, money_type=money)
    # dimensions
    def attrs(table: str, fields: dict[str, FieldSpec], extras: Sequence[str]) -> str:
        parts = [f"arg_max(f.{table}__{n}, {LATEST}) AS {sql_ident(n)}" for n in fields if n != "created_at"]
        if "created_at" in fields:
            parts.append(f"min(f.{table}__created_at) AS created_at")
        parts += [f"arg_max(f.x_{table}__{n}, {LATEST}) AS {sql_ident(n)}" for n in extras]
        return ("," + ", ".join(parts)) if parts else ""

    extra_customers = [(n, t) for n, (_f, t) in spec.columns.get("customers", {}).items()]
    c_fields = spec.customers
    tags_expr = "[]::VARCHAR[]"
    if "tags" in c_fields:
        tags_expr = ("CASE WHEN a.tags IS NULL THEN []::VARCHAR[] "
                     "ELSE regexp_split_to_array(trim(a.tags, ' ,'), '\\s*,\\s*') END")
    if "name" in c_fields:
        name_expr = "a.name"
    elif {"first_name", "last_name"} <= set(c_fields):
        name_expr = "nullif(trim(concat_ws(' ', a.first_name, a.last_name)), '')"
    elif "first_name" in c_fields:
        name_expr = "a.first_name"
    else:
        name_expr = "NULL"
    excluded = ", ".join(["customer_id", *(k for k in ("tags", "name") if k in c_fields)])
    counts["customers"] = write_table(con, tmp, "customers", f"""
        WITH a AS (
            SELECT c.id AS customer_id {attrs('customers', c_fields, [n for n, _t in extra_customers])}
            FROM facts f JOIN customer_ids c ON c.key = f.customer_key GROUP BY c.id
        ), o AS (
            SELECT customer_id, count(*) FILTER (WHERE created_at IS NOT NULL) AS orders_count,
                   sum(total - total_refunded) AS amount_spent, min(created_at) AS first_order_at,
                   max(created_at) AS last_order_at
            FROM orders_ranked WHERE customer_id IS NOT NULL GROUP BY 1
        )
        SELECT a.* EXCLUDE ({excluded}), a.customer_id, {tags_expr} AS tags, {name_expr} AS name,
               o.orders_count, o.amount_spent, o.first_order_at, o.last_order_at
        FROM a LEFT JOIN o USING (customer_id) ORDER BY a.customer_id
    """, money_type=money, extra=[(n, _money_type(t, money)) for n, t in extra_customers])
    extra_products = [(n, t) for n, (_f, t) in spec.columns.get("products", {}).items()]
    counts["products"] = write_table(con, tmp, "products", f"""
        WITH a AS (
            SELECT p.id AS product_id {attrs('products', spec.products, [n for n, _t in extra_products])},
                   count(DISTINCT f.variant_key) AS variant_count,
                   min(CASE WHEN f.quantity <> 0 THEN f.gross_sales / f.quantity END) AS min_price,
                   max(CASE WHEN f.quantity <> 0 THEN f.gross_sales / f.quantity END) AS max_price
            FROM facts f JOIN product_ids p ON p.key = f.product_key GROUP BY p.id
        )
        SELECT * FROM a ORDER BY product_id
    """, money_type=money, extra=[(n, _money_type(t, money)) for n, t in extra_products])
    v_price = (f"arg_max(f.variants__price, {LATEST})" if "price" in spec.variants else
               f"arg_max(CASE WHEN f.quantity <> 0 THEN f.gross_sales / f.quantity END, {LATEST})")
    counts["variants"] = write_table(con, tmp, "variants", f"""
        SELECT v.id AS variant_id, any_value(p.id) AS product_id,
               {f"arg_max(f.variants__title, {LATEST})" if "title" in spec.variants else "'Default Title'"} AS title,
               {f"arg_max(f.variants__sku, {LATEST})" if "sku" in spec.variants else "NULL"} AS sku,
               {v_price} AS price,
               {f"arg_max(f.variants__compare_at_price, {LATEST})" if "compare_at_price" in spec.variants
                else "NULL"} AS compare_at_price,
               arg_max(CASE WHEN f.quantity <> 0 THEN f.cost / f.quantity END, {LATEST}) AS unit_cost
        FROM facts f JOIN variant_ids v ON v.key = f.variant_key LEFT JOIN product_ids p ON p.key = f.product_key
        GROUP BY v.id ORDER BY v.id
    """, money_type=money)
    for table in ("companies", "checkouts", "sessions", "draft_orders"):
        counts[table] = write_table(con, tmp, table, None, money_type=money)
        report.empty_tables[table] = "the source has no such data"
    if not counts["refunds"]:
        report.empty_tables["refunds"] = "the source has no reversal rows"
        report.empty_tables["refund_line_items"] = "the source has no reversal rows"
    report.row_counts = counts
    # the user's model
    documents = _model_documents(spec)
    if documents:
        folder = tmp / "model"
        folder.mkdir(exist_ok=True)
        text = "# Written by `commerceql import table` from the mapping's [model] section.\n"
        text += yaml.safe_dump_all(documents, sort_keys=False, allow_unicode=True)
        (folder / "mapping.yaml").write_text(text, encoding="utf-8")
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": report.store_name,
        "currency": report.currency,
        "timezone": report.timezone,
        "as_of": None,
        "money_decimals": scale,
        "tables": {t: f"{t}.parquet" for t in counts},
        "row_counts": counts,
        "empty_tables": report.empty_tables,
        "source": {
            "importer": "table",
            "importer_version": IMPORTER_VERSION,
            "imported_at": now_iso(),
            "files": [{"path": f.path, "kind": f.kind, "sha256": f.sha256, "bytes": f.bytes, "records": f.records}
                      for f in report.files],
            "mapping": str(spec.path) if spec.path else None,
            "mapping_sha256": sha256_of(spec.path) if spec.path else None,
        },
    }
    write_manifest(tmp, manifest)
    _reconcile(con, tmp, report, n_rows, kept)


def _check_the_store_holds(con: duckdb.DuckDBPyConnection, source: Path, fields: dict[str, FieldSpec], scale: int,
                           currency: str) -> None:
    """Every amount the store will hold fits its DECIMAL(18, scale), and every count its INTEGER.

    Each value was checked as it was read; here the sums: a row's computed gross (price x quantity)
    and total, and each order's and customer's figures (as absolute sums, which bound every total
    and refund made of their rows). Beyond them the store's cast would fail with no row to name.
    """
    limit = 10 ** (18 - scale)
    row_abs = " + ".join(f"abs(coalesce({k}, 0))" for k in ("gross_sales", "discounts", "sales_reversals", "taxes",
                                                           "shipping_charges"))
    checks = [  # (what, the field to name, the scope, the SQL of the size, the bound, a money size)
        ("this row's amounts add up to", "gross_sales" if "gross_sales" in fields else "price", "__row",
         f"max(greatest({row_abs}, abs(coalesce(cost, 0))))", limit, True),
        ("this order's amounts add up to", "order", "order_key", f"sum({row_abs})", limit, True),
        ("this order's cost adds up to", "order", "order_key", "sum(abs(coalesce(cost, 0)))", limit, True),
        ("this order's quantities add up to", "order", "order_key", "sum(abs(quantity))", MAX_INTEGER + 1, False),
        ("this customer's orders add up to", "customer", "customer_key", f"sum({row_abs})", limit, True),
    ]
    for what, field, scope, size, bound, money in checks:
        bad = con.execute(f"""
            SELECT min(__row) AS first_row, {size} AS size FROM facts WHERE {scope} IS NOT NULL
            GROUP BY {scope} HAVING {size} >= {bound} ORDER BY first_row LIMIT 1
        """).fetchone()
        if bad is None:
            continue
        row, value = bad
        spec = fields.get(field)
        shown = f"{value:,} {currency}" if money else f"{value:,}"
        bound_text = f"amounts below {limit:,}" if money else f"counts up to {MAX_INTEGER:,}"
        raw = con.execute(f"SELECT CAST({spec.sql} AS VARCHAR) FROM src WHERE __row = {int(row)}").fetchone() \
            if spec is not None else None
        raise CommerceQLImportError(
            f"{what} {shown}, beyond what the store holds ({bound_text}) (record {row})", file=source,
            line=int(row) + 1, column=(spec.raw_column or spec.name) if spec is not None else None,
            value=raw[0] if raw else None)


def _money_type(typ: str, money: str) -> str:
    return money if typ == "MONEY" else typ


def _model_documents(spec: Mapping_) -> list[dict[str, Any]]:
    documents = []
    for table, body in spec.model.items():
        if not isinstance(body, dict):
            raise CommerceQLMappingError(f"[model.{table}] must be a table of metrics / dimensions")
        document = {"name": table, **body}
        documents.append(document)
    if documents:
        from commerceql.model.semantic import builtin_model

        try:
            builtin_model().extended(documents, origin="mapping [model]")
        except CommerceQLDataError as exc:
            raise CommerceQLMappingError(exc.message, hint=exc.hint) from exc
    return documents


def _reconcile(con: duckdb.DuckDBPyConnection, tmp: Path, report: ImportReport, n_rows: int, kept: int) -> None:
    from commerceql.store import connect

    src = con.execute("""
        SELECT sum(gross_sales), sum(gross_sales + discounts + sales_reversals + taxes + shipping_charges),
               count(DISTINCT order_key), count(DISTINCT customer_key), sum(quantity)
        FROM facts
    """).fetchone()
    store = connect(tmp)
    try:
        q = store.query("FROM sales SHOW gross_sales, total_sales, orders, customers")
        row = q.df.row(0, named=True) if q.df.height else {}
    except Exception as exc:  # noqa: BLE001 - reported, the store itself is written
        report.warn(f"the reconciliation query failed: {exc}")
        row = {}
    finally:
        store.close()
    cur = report.currency
    gross, total = row.get("gross_sales"), row.get("total_sales")

    def fmt(v: Any) -> str:
        return "n/a" if v is None else f"{Decimal(str(v)):,.2f} {cur}"

    lines = [
        f"source rows read: {n_rows:,}; imported: {kept:,}; skipped: {n_rows - kept:,}",
        f"source Σ gross (mapped)        {fmt(src[0]):>22}   CommerceQL gross_sales {fmt(gross)}",
        f"source Σ total (mapped)        {fmt(src[1]):>22}   CommerceQL total_sales {fmt(total)}",
        f"source distinct orders         {src[2]:>22,}   CommerceQL orders {row.get('orders', 'n/a')}",
        f"source distinct customers      {src[3]:>22,}   CommerceQL customers {row.get('customers', 'n/a')}",
    ]
    unexplained = None
    if gross is not None and src[0] is not None:
        unexplained = Decimal(str(total)) - Decimal(str(src[1]))
        lines.append(f"unexplained difference         {fmt(unexplained):>22}")
    report.counts = {"files": 1, "rows_read": n_rows, "rows_imported": kept, "orders": int(src[2]),
                     "customers": int(src[3])}
    report.reconciliation = {"lines": lines, "source_gross": src[0], "source_total": src[1],
                             "commerceql_gross_sales": gross, "commerceql_total_sales": total,
                             "unexplained": unexplained}


__all__ = ["import_table", "load_mapping"]
