"""A store: a DuckDB connection over one shop's data, its settings and its semantic model.

`connect()` opens the bundled sample store (generating it on first use); `connect(path)` opens a
store folder (Parquet files + manifest.json, queried in place) or a DuckDB database file.
`Store.query(text)` runs the whole pipeline: parse → resolve → compile → DuckDB → Polars.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from commerceql import ast
from commerceql.compiler import (
    MAX_RESULT_KEYS,
    RESULT_LIMIT_MARKER,
    CompiledQuery,
    compile_plan,
    distinct_values_sql,
    inline_parameters,
    quote_identifier,
    quote_literal,
)
from commerceql.currency import MISSING_RATE_MARKER, ExchangeRates, missing_rate_error
from commerceql.data_range import (
    LAST_ORDER,
    DataRange,
    as_of_instant,
    as_utc,
    data_range_sql,
    first_row,
    period_notices,
    refuse_unreadable_times,
)
from commerceql.derived import DERIVED_RELATIONS, missing_data
from commerceql.engines import DuckDBEngine, Engine, EngineFailure, SparkEngine
from commerceql.errors import (
    CommerceQLDataError,
    CommerceQLError,
    CommerceQLExecutionError,
    CommerceQLNameError,
    CommerceQLSemanticError,
)
from commerceql.model.semantic import SemanticModel, Table, builtin_model
from commerceql.parser import parse, parse_script
from commerceql.plan import AccountSettings
from commerceql.resolver import resolve
from commerceql.result import Result
from commerceql.store_gaps import unavailable_fields
from commerceql.value_hints import MAX_LISTED_VALUES, is_empty_answer, unmatched_value_notices

Clock = Callable[[], dt.datetime]
T = TypeVar("T")


class CommerceQLInterrupted(CommerceQLExecutionError):
    """The user interrupted a running query (Ctrl-C, the notebook's stop button)."""


def run_interruptibly(work: Callable[[], T], cancel: Callable[[], None]) -> T:
    """Run `work()` in a worker thread so that a KeyboardInterrupt in this thread calls `cancel()`.

    DuckDB checks for interruption only from another thread, so the caller's thread waits and
    forwards Ctrl-C (or a kernel's SIGINT) to `cancel`, typically `Store.interrupt`. Raises
    `CommerceQLInterrupted` when interrupted; otherwise returns the result or re-raises the error.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed back to the calling thread
            outcome["error"] = error
        finally:
            done.set()

    threading.Thread(target=target, name="commerceql-query", daemon=True).start()
    interrupted = False
    while not done.is_set():
        try:
            done.wait(0.05)
        except KeyboardInterrupt:
            interrupted = True
        if interrupted:
            # Again and again until the work ends: an interrupt that arrives before the engine
            # has started the statement would otherwise be lost.
            cancel()
    if interrupted:
        # An interrupt that arrived while the query finished anyway is still honoured.
        raise CommerceQLInterrupted("query interrupted")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """An open store: a locked-down DuckDB session over one shop's data and its semantic model.

    Thread safety: a Store may be shared between threads. Every method that touches the
    database (`query`, `query_script`, `execute`, `sql`, `close`) takes the store's lock, so
    queries from several threads run one at a time and never interleave on the connection;
    `compile` and `explain` do not touch the database and run concurrently. `interrupt()` does
    not take the lock (it cancels the query that holds it). Code that uses `store.connection`
    directly bypasses the lock and must not run while other threads use the store; for parallel
    queries, open one store per thread with `connect()`.

    The session is locked down when the store opens (see docs/security.md): no file access
    beyond the store's own files, no extension loading, TimeZone pinned to UTC, a memory limit,
    spilling into a private temporary directory, and `lock_configuration` so SQL cannot undo it.
    """

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection | None,
        *,
        name: str,
        timezone: str,
        currency: str,
        model: SemanticModel,
        clock: Clock | None = None,
        path: Path | None = None,
        manifest: dict[str, Any] | None = None,
        engine: Engine | None = None,
    ) -> None:
        if engine is None:
            if connection is None:
                raise CommerceQLDataError("a store needs a DuckDB connection or an engine")
            engine = DuckDBEngine(connection)
        self.engine = engine
        # The DuckDB connection of a DuckDB store (None on other engines), for DuckDB-only tools.
        self.connection = connection
        self.name = name
        self.timezone = timezone
        self.currency = currency
        self.manifest = manifest or {}
        # Fields the store's data cannot fill are refused with the reason, not answered empty.
        self.model = model.without_fields(unavailable_fields(self.manifest))
        self.path = path
        self._clock = clock
        self._lock = threading.Lock()
        self._cleanup: Callable[[], None] | None = None
        # Seconds a query may run before it is stopped (None or 0: no limit).
        self.query_timeout: float | None = DEFAULT_QUERY_TIMEOUT
        self._value_cache: dict[tuple[str, str, str], list[str] | None] = {}
        # (relation, time column) -> its first and last instant; None when it cannot be read.
        self._range_cache: dict[tuple[str, str], DataRange | None] = {}
        # How overdue, lapse and RFM are judged here (manifest `accounts`, else the defaults).
        self.account_settings = account_settings_from(self.manifest.get("accounts"))
        self._exchange_rates: ExchangeRates | None = None

    # -- time --------------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        """The store's clock: the injected clock, else the sample store's fixed `as_of`, else real time."""
        if self._clock is not None:
            value = self._clock()
        elif self.manifest.get("as_of"):
            value = dt.datetime.fromisoformat(self.manifest["as_of"])
        else:
            value = _system_clock()
        if value.tzinfo is None:
            raise CommerceQLDataError("the store clock must return a timezone-aware datetime")
        return value

    def set_clock(self, clock: Clock | dt.datetime | None) -> None:
        if isinstance(clock, dt.datetime):
            fixed = clock
            self._clock = lambda: fixed
        else:
            self._clock = clock

    @property
    def clock_pinned(self) -> bool:
        """True when the clock is not real time: injected, pinned with `as_of`, or the manifest's `as_of`."""
        return self._clock is not None or bool(self.manifest.get("as_of"))

    def pin_clock(self, as_of: str | dt.date | dt.datetime) -> dt.datetime:
        """Pin the clock for a frozen export: `'last-order'`, a date (its end, store time) or an instant.

        Returns the instant now() gives from here on. See docs/troubleshooting.md.
        """
        instant = as_of_instant(as_of, self.timezone, self._last_order_time)
        self.set_clock(instant)
        return instant

    def _last_order_time(self) -> dt.datetime | None:
        orders = self.model.table("orders")
        if orders is None or orders.time_column is None:
            raise CommerceQLDataError("as_of last-order needs an `orders` table with a time column",
                                      hint="give the date the export was taken instead, e.g. 2023-06-30")
        found = self.data_range(orders)
        if found is None:
            raise CommerceQLDataError("the time of this store's last order could not be read",
                                      hint="give the date the export was taken instead, e.g. 2023-06-30")
        return found.last

    # -- the data range --------------------------------------------------------------------------
    def data_range(self, table: str | Table) -> DataRange | None:
        """The first and last instant of a table's time column (None if it has none or cannot be read).

        Tables over a derived relation (cohorts, churn) take the range of `orders`. Read with one
        min/max query per table (row-group statistics on DuckDB over Parquet) and cached.
        """
        found = self.model.table(table) if isinstance(table, str) else table
        if found is None:
            from commerceql.errors import CommerceQLNameError, did_you_mean

            raise CommerceQLNameError(f"unknown table `{table}`", hint=did_you_mean(str(table), self.model.tables))
        if found.relation in DERIVED_RELATIONS:
            orders = self.model.table("orders")
            if orders is None or orders.relation in DERIVED_RELATIONS:
                return None
            found = orders
        if found.time_column is None:
            return None
        key = (found.relation, found.time_column)
        if key not in self._range_cache:
            try:
                with self._lock:
                    row = first_row(self.engine.run(data_range_sql(found, self.engine.dialect)))
                self._range_cache[key] = DataRange(found.name, as_utc(row["first_event"]), as_utc(row["last_event"]),
                                                   int(row["row_count"]))
            except EngineFailure as failure:
                if failure.kind == "interrupted":
                    return None  # asked again next time: an interrupt says nothing about the table
                self._range_cache[key] = None  # cannot read it: no notes rather than a failed query
            except (CommerceQLDataError, IndexError, KeyError):
                self._range_cache[key] = None
        return self._range_cache[key]

    # -- the pipeline --------------------------------------------------------------------------
    def compile(self, query: str | ast.Query, *, now: dt.datetime | None = None) -> CompiledQuery:
        """Parse (if text), resolve and compile one query without running it."""
        parsed = parse(query) if isinstance(query, str) else query
        plan = resolve(
            parsed,
            self.model,
            now=now or self.now(),
            timezone=self.timezone,
            currency=self.currency,
            accounts=self.account_settings,
            rates=self.exchange_rates,
        )
        # A table only one export fills (inventory, payments) answers zeros when the import had
        # no such export: refuse it, naming the export, rather than give an empty answer.
        for identifier, table in zip(parsed.tables, plan.tables, strict=False):
            reason = missing_data(table.relation, table.name, self.manifest)
            if reason:
                raise CommerceQLNameError(reason, span=identifier.span, source=parsed.source,
                                          hint="import that export with the others (commerceql import shopify ...) "
                                          "or query another table")
        credited = next((c for c in plan.comparisons if c.attribution), None)
        if credited is not None:
            self._check_attribution_data(parsed, credited.attribution)
        return compile_plan(plan, self.engine.dialect)

    def _check_attribution_data(self, parsed: ast.Query, suffix: str | None) -> None:
        """Attribution reads the buyers' visits: a store without sessions is refused at the modifier."""
        empty = self.manifest.get("empty_tables")
        missing = self.manifest.get("missing_tables")
        reason = next((r.get("sessions") for r in (empty, missing) if isinstance(r, dict) and r.get("sessions")), None)
        if reason is None and self.manifest.get("row_counts", {}).get("sessions") == 0:
            reason = "the store has no sessions"
        if reason is None:
            return
        modifier = next(m for m in parsed.with_modifiers if m.name.upper() == f"{str(suffix).upper()}_ATTRIBUTION")
        raise CommerceQLSemanticError(
            f"{modifier.name.upper()} credits orders to the visits that led to them, and this store has no "
            f"visits: {reason}",
            span=modifier.span, source=parsed.source,
            hint="group by order_referrer_source or referring_channel: the referrer the order itself records",
        )

    @property
    def exchange_rates(self) -> ExchangeRates:
        """The rates WITH CURRENCY converts at: the store's exchange_rates file, then the ECB's (read when used)."""
        if self._exchange_rates is None or self._exchange_rates.base != self.currency.upper():
            self._exchange_rates = ExchangeRates(self.currency, folder=self.path if self.path and self.path.is_dir()
                                                 else None, manifest=self.manifest)
        return self._exchange_rates

    def query(self, query: str | ast.Query, *, now: dt.datetime | None = None) -> Result:
        """Run one query and return its result (a Polars DataFrame with column metadata)."""
        compiled = self.compile(query, now=now)
        return self.execute(compiled)

    def query_script(self, text: str, *, now: dt.datetime | None = None) -> list[Result]:
        """Run every `;`-separated query of a script, in order."""
        return [self.query(q, now=now) for q in parse_script(text)]

    def execute(self, compiled: CompiledQuery) -> Result:
        with self._lock:
            table = self._run_bounded(compiled)
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frame = refuse_unreadable_times(frame)
        total_rows = int(frame["__total_rows"][0]) if frame.height else 0
        frame = frame.drop("__total_rows")
        notices = list(compiled.plan.notices)
        if compiled.plan.query.organization and not self.manifest.get("organization"):
            notices.append(f"FROM ORGANIZATION: this store is one shop ({self.name}), so the organization is "
                           "that shop; open a folder of shop stores to query several (docs/organizations.md)")
        empty_reasons = self.manifest.get("empty_tables")
        orders = self.model.table("orders")
        notices += period_notices(compiled.plan, self.data_range, clock_pinned=self.clock_pinned,
                                  orders=self.data_range(orders) if orders is not None else None,
                                  empty_reasons=empty_reasons if isinstance(empty_reasons, dict) else None)
        metric_columns = [c.name for c in compiled.columns if c.role == "metric"]
        if is_empty_answer(frame, metric_columns):
            notices += unmatched_value_notices(compiled.plan, self._distinct_values, self._same_values_but_case)
        return Result(
            query=compiled.plan.query,
            df=frame,
            sql=compiled.sql,
            parameters=compiled.parameters,
            columns=compiled.columns,
            total_rows=total_rows,
            plan=compiled.plan,
            store=self,
            notices=tuple(notices),
        )

    def _run_bounded(self, compiled: CompiledQuery) -> Any:
        """Run a compiled statement under the store's time limit (memory is the engine's limit)."""
        timed_out = threading.Event()

        def stop() -> None:
            timed_out.set()
            self.engine.interrupt()

        timer = threading.Timer(self.query_timeout, stop) if self.query_timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            return self.engine.run(compiled.sql, compiled.parameters)
        except EngineFailure as exc:
            if exc.kind == "interrupted" and timed_out.is_set():
                raise CommerceQLExecutionError(
                    f"the query ran longer than this store's limit of {self.query_timeout:g} seconds and was stopped",
                    source=compiled.plan.query.source,
                    hint="narrow the date range or group by fewer values, or raise the limit with "
                    "`connect(..., query_timeout=SECONDS)`",
                ) from exc
            if exc.kind == "interrupted":
                raise CommerceQLInterrupted("the query was interrupted") from exc
            if exc.kind == "out_of_memory":
                raise CommerceQLExecutionError(
                    "the query needs more memory than this store's limit allows and was stopped",
                    source=compiled.plan.query.source,
                    hint="narrow the date range, use a coarser grain, or raise the limit with "
                    "`connect(..., memory_limit='8GB')`",
                ) from exc
            if MISSING_RATE_MARKER in exc.message:
                raise missing_rate_error(exc.message, compiled.plan.conversion, compiled.plan.query.source) from exc
            if RESULT_LIMIT_MARKER in exc.message:
                detail = exc.message.split(RESULT_LIMIT_MARKER, 1)[1].strip().rstrip("'\"")
                raise CommerceQLExecutionError(
                    f"this query would list more than {MAX_RESULT_KEYS:,} rows: {detail}",
                    span=getattr(compiled.plan.query.timeseries, "span", None),
                    source=compiled.plan.query.source,
                    hint="group by fewer values (TOP n), use a coarser grain or a shorter date range, "
                    "or drop TIMESERIES to list only the periods that have data",
                ) from exc
            if self.path is not None and ("No files found" in exc.message or "IO Error" in exc.message):
                raise CommerceQLExecutionError(
                    f"this store's files changed on disk after it was opened ({exc.message})",
                    source=compiled.plan.query.source,
                    hint="the store was probably re-imported; open it again with connect()",
                ) from exc
            raise CommerceQLExecutionError(
                f"the database could not run this query: {exc.message}",
                source=compiled.plan.query.source,
                hint="this is probably a bug in CommerceQL or the store's model; `explain` shows the SQL",
            ) from exc
        finally:
            if timer is not None:
                timer.cancel()

    def _distinct_values(self, table: Table, dimension: str) -> list[str] | None:
        """Up to MAX_LISTED_VALUES values of a text dimension (None when it has more), cached."""
        key = (table.name, dimension, self.timezone)
        if key not in self._value_cache:
            sql = distinct_values_sql(table, dimension, self.timezone, MAX_LISTED_VALUES + 1, self.engine.dialect,
                                      as_of=self.now(), accounts=self.account_settings)
            try:
                with self._lock:
                    values = self.engine.run(sql).column(0).to_pylist()
            except EngineFailure:
                values = [None] * (MAX_LISTED_VALUES + 1)  # cannot list: say nothing rather than fail
            self._value_cache[key] = None if len(values) > MAX_LISTED_VALUES else values
        return self._value_cache[key]

    def _same_values_but_case(self, table: Table, dimension: str, value: str) -> list[str] | None:
        """Up to five values of a dimension equal to `value` when case is ignored (None: cannot tell).

        For dimensions with too many values to list; the text is a bound parameter.
        """
        listing = distinct_values_sql(table, dimension, self.timezone, 1_000_000_000, self.engine.dialect,
                                      as_of=self.now(), accounts=self.account_settings)
        needle = self.engine.dialect.parameter("needle")
        sql = f"SELECT value FROM ({listing}) AS listed WHERE lower(value) = lower({needle}) LIMIT 5"
        try:
            with self._lock:
                return [str(v) for v in self.engine.run(sql, {"needle": value}).column(0).to_pylist()]
        except EngineFailure:
            return None  # cannot look: say nothing rather than fail

    def explain(self, query: str | ast.Query, *, now: dt.datetime | None = None) -> str:
        """The compiled SQL with its parameters written in, for reading."""
        compiled = self.compile(query, now=now)
        return inline_parameters(compiled.sql, compiled.parameters, self.engine.dialect)

    def interrupt(self) -> None:
        """Cancel the running query (safe to call from another thread)."""
        self.engine.interrupt()

    def sql(self, text: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run raw SQL against the store (for tests and power users), under the store's lock.

        The session is locked down, so SQL here reads the store's tables but no other files and
        cannot change settings; a failure is a CommerceQLExecutionError.
        """
        with self._lock:
            try:
                table = self.engine.run(text, parameters)  # type: ignore[arg-type]
            except EngineFailure as exc:
                if exc.kind == "interrupted":
                    raise CommerceQLInterrupted("the query was interrupted") from exc
                raise CommerceQLExecutionError(f"the database refused this SQL: {exc.message}") from exc
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        return refuse_unreadable_times(frame)

    # -- the model -----------------------------------------------------------------------------
    def schema(self, table: str | None = None) -> pl.DataFrame:
        """Tables, or one table's metrics and dimensions, with types and descriptions."""
        if table is None:
            return pl.DataFrame(
                {
                    "table": list(self.model.tables),
                    "metrics": [len([m for m in t.metrics.values() if not m.alias_of]) for t in self.model.tables.values()],
                    "dimensions": [len(t.dimensions) for t in self.model.tables.values()],
                    "description": [t.description for t in self.model.tables.values()],
                }
            )
        found = self.model.table(table)
        if found is None:
            from commerceql.errors import CommerceQLNameError, did_you_mean

            raise CommerceQLNameError(f"unknown table `{table}`", hint=did_you_mean(table, self.model.tables))
        rows: list[dict[str, str]] = []
        for metric in found.metrics.values():
            if metric.alias_of:
                description = f"Older name of `{metric.alias_of}`."
                rows.append({"kind": "metric", "name": metric.name, "type": "alias", "description": description})
                continue
            rows.append({"kind": "metric", "name": metric.name, "type": metric.type, "description": metric.description})
        for dimension in found.dimensions.values():
            rows.append(
                {"kind": "dimension", "name": dimension.name, "type": dimension.type, "description": dimension.description}
            )
        return pl.DataFrame(rows, schema={"kind": pl.String, "name": pl.String, "type": pl.String, "description": pl.String})

    def define_segment(self, name: str, condition: str, *, description: str = "", kind: str = "customer",
                       replace: bool = False) -> None:
        """Save a segment: a named customer (or company) condition, usable on every table of that account.

        `condition` is written like a WHERE over the `customers` (or `companies`) table's dimensions,
        e.g. `store.define_segment("key_oem", "company_industry = 'OEM' AND amount_spent > 250000",
        kind="company")`; then `FROM sales SHOW net_sales WHERE key_oem` or `GROUP BY key_oem`.
        It lasts for this Store object; a store's `model/*.yaml` keeps segments for everyone (docs/segments.md).
        """
        from commerceql.model.accounts import ACCOUNT_KINDS

        if kind not in ACCOUNT_KINDS:
            raise CommerceQLDataError(f"unknown segment kind {kind!r}", hint="use kind='customer' or kind='company'")
        spec: dict[str, Any] = {"condition": condition, "description": description}
        if replace:
            spec["override"] = True
        document = {"name": ACCOUNT_KINDS[kind][0], "segments": {name: spec}}
        self.model = self.model.extended([document], origin=f"define_segment({name!r})")

    def extend_model(self, paths: Iterable[str | Path]) -> None:
        """Add user-defined metrics and dimensions from YAML files in the model format."""
        self.model = self.model.extended_from_files(paths)

    # -- widgets -------------------------------------------------------------------------------
    def explore(self, query: str | ast.Query) -> Any:
        """An interactive widget (dimension, date range, comparison, chart type) over `query`."""
        return self.query(query).widget()

    def close(self) -> None:
        """Close the connection (after any running query) and remove the private temp directory."""
        with self._lock:
            self.engine.close()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"<commerceql.Store {self.name!r}{where} ({self.timezone}, {self.currency})>"


def account_settings_from(spec: Any, where: str = "manifest `accounts`") -> AccountSettings:
    """Account settings from a mapping such as `{"overdue_factor": 2, "lapse_days": 90}`, checked."""
    if spec is None:
        return AccountSettings()
    if not isinstance(spec, dict):
        raise CommerceQLDataError(f"{where} must be an object such as {{\"lapse_days\": 90}}")
    known = {f.name: f.type for f in dataclasses.fields(AccountSettings)}
    values: dict[str, Any] = {}
    for key, value in spec.items():
        if key not in known:
            raise CommerceQLDataError(f"{where}: unknown setting `{key}`", hint=f"settings: {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise CommerceQLDataError(f"{where}: `{key}` must be a positive number, not {value!r}")
        if key != "overdue_factor" and value != int(value):
            raise CommerceQLDataError(f"{where}: `{key}` is a whole number of days, not {value!r}")
        values[key] = float(value) if key == "overdue_factor" else int(value)
    return AccountSettings(**values)


DEFAULT_MEMORY_LIMIT = "4GB"
_MEMORY = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KIB|MIB|GIB|TIB)\s*$", re.IGNORECASE)


# Long enough for any real report on one machine; short enough that a runaway cell ends.
DEFAULT_QUERY_TIMEOUT = 300.0


def _default_memory_limit() -> str:
    """4 GB, or half the machine's memory when it has less than 8 GB."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return DEFAULT_MEMORY_LIMIT
    if total < 8 * 1024**3:
        return f"{max(total // 2 // 1024**2, 256)}MB"
    return DEFAULT_MEMORY_LIMIT


def glob_literal(path: str) -> str:
    """`path` as a DuckDB glob that matches only itself.

    DuckDB treats `*`, `?` and `[` in every file name given to read_parquet as glob syntax (also
    inside a list), so a store folder called `a*` or `shop[2024]` would read its neighbours'
    files. A one-character class (`[*]`, `[?]`, `[[]`) matches exactly that character.
    """
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in path)


def _fail_open(connection: duckdb.DuckDBPyConnection, error: CommerceQLError) -> CommerceQLError:
    connection.close()
    return error


def _load_manifest(path: Path) -> dict[str, Any]:
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise CommerceQLDataError(
            f"{path} is not a CommerceQL store: it has no manifest.json",
            hint="create one with `commerceql sample --out DIR` or `commerceql import ...`",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CommerceQLDataError(f"cannot read {manifest_path}: {exc}") from exc
    return _check_manifest(manifest, str(manifest_path))


def _check_manifest(manifest: Any, where: str) -> dict[str, Any]:
    """The manifest's shape, checked once so later code can trust its types."""
    if not isinstance(manifest, dict):
        raise CommerceQLDataError(f"{where} must hold a JSON object, not {type(manifest).__name__}")
    tables = manifest.get("tables", {})
    if not isinstance(tables, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tables.items()):
        raise CommerceQLDataError(f"{where}: `tables` must map table names to file names")
    for key in ("name", "timezone", "currency"):
        if manifest.get(key) is not None and not isinstance(manifest[key], str):
            raise CommerceQLDataError(f"{where}: `{key}` must be text")
    account_settings_from(manifest.get("accounts"), f"{where}: accounts")
    as_of = manifest.get("as_of")
    if as_of is not None:
        try:
            parsed = dt.datetime.fromisoformat(as_of) if isinstance(as_of, str) else None
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            raise CommerceQLDataError(f"{where}: `as_of` must be an ISO timestamp with a UTC offset, or null")
    return manifest


def _model_dir(path: Path, manifest: dict[str, Any]) -> Path:
    """The store's model folder: the one its manifest names (imports), else `model/`."""
    named = manifest.get("model")
    if named is None:
        return path / "model"
    if not isinstance(named, str) or Path(named).is_absolute() or ".." in Path(named).parts:
        raise CommerceQLDataError(f"store {path}: manifest `model` must be a folder inside the store, not {named!r}")
    return path / named


def _hold_readers_lock(path: Path, manifest: dict[str, Any]) -> Any:
    """A shared lock on the current version's `.readers` file, held while the store is open.

    An import keeps a version whose readers lock is held, so a store opened before two
    re-imports keeps reading its own files (see docs/importing.md).
    """
    tables = list(manifest.get("tables", {}).values())
    if not tables:
        return None
    readers = (path / tables[0]).parent / ".readers"
    if not readers.is_file():
        return None
    try:
        import fcntl

        handle = open(readers, encoding="utf-8")  # noqa: SIM115 - held for the store's lifetime
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return handle
    except (OSError, ImportError):
        return None


def _open_folder(
    path: Path, manifest: dict[str, Any] | None = None
) -> tuple[duckdb.DuckDBPyConnection, dict[str, Any], list[str]]:
    """A connection with one view per manifest table, and the files those views may read."""
    if manifest is None:
        manifest = _load_manifest(path)
    files: list[str] = []
    connection = duckdb.connect()
    for name, file_name in manifest.get("tables", {}).items():
        file_path = path / file_name
        # A manifest names files inside its own folder, never /etc/... or ../other-store/...
        # (a symbolic link placed in the folder by its owner is followed).
        if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
            raise _fail_open(connection, CommerceQLDataError(
                f"store {path} lists table `{name}` as {file_name!r}, which is outside the store folder"
            ))
        if not file_path.is_file():
            raise _fail_open(connection, CommerceQLDataError(
                f"store {path} lists table `{name}` but {file_path.name} is missing"
            ))
        location = str(file_path)
        try:
            connection.execute(
                f"CREATE VIEW {quote_identifier(name)} AS "
                f"SELECT * FROM read_parquet({quote_literal(glob_literal(location))})"
            )
        except duckdb.Error as exc:
            raise _fail_open(connection, CommerceQLDataError(
                f"store {path}: table `{name}` ({file_path.name}) is not a readable Parquet file: "
                f"{str(exc).splitlines()[0]}"
            )) from exc
        # DuckDB checks the pattern as written and then the file it resolves to.
        files.extend({location, glob_literal(location)})
    return connection, manifest, files


def _open_database(path: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise CommerceQLDataError(f"cannot open {path} as a DuckDB database: {str(exc).splitlines()[0]}") from exc
    try:
        rows = connection.sql("SELECT manifest FROM commerceql_manifest LIMIT 1").fetchall()
    except duckdb.Error:
        rows = []  # a plain database without a manifest table: defaults for name, zone, currency
    if not rows:
        return connection, {}
    try:
        manifest = json.loads(rows[0][0])
        return connection, _check_manifest(manifest, f"{path}: commerceql_manifest")
    except (TypeError, json.JSONDecodeError) as exc:
        raise _fail_open(connection, CommerceQLDataError(f"{path}: commerceql_manifest is not JSON: {exc}")) from exc
    except CommerceQLError as exc:
        raise _fail_open(connection, exc) from None


def _lock_down(
    connection: duckdb.DuckDBPyConnection,
    *,
    allowed_paths: Sequence[str],
    temp_directory: str,
    memory_limit: str,
    threads: int | None,
) -> None:
    """Settings every store session runs with; `lock_configuration` makes them final.

    Runs after the views exist: the views re-read their Parquet files at every query, which
    `allowed_paths` keeps possible while every other file (read_csv('/etc/passwd'), COPY ... TO,
    ATTACH, INSTALL) is refused. Spilling goes to `temp_directory`, which DuckDB still writes.
    """
    settings = [
        "SET TimeZone = 'UTC'",
        f"SET memory_limit = {quote_literal(memory_limit)}",
        f"SET temp_directory = {quote_literal(temp_directory)}",
        "SET enable_progress_bar = false",
        f"SET allowed_paths = [{', '.join(quote_literal(p) for p in allowed_paths)}]",
        "SET enable_external_access = false",
        "SET autoinstall_known_extensions = false",
        "SET autoload_known_extensions = false",
    ]
    if threads is not None:
        settings.insert(2, f"SET threads = {int(threads)}")
    if not allowed_paths:
        settings.remove("SET allowed_paths = []")
    for statement in [*settings, "SET lock_configuration = true"]:
        connection.execute(statement)


def connect(
    path: str | Path | None = None,
    *,
    clock: Clock | dt.datetime | None = None,
    model: Iterable[str | Path] = (),
    timezone: str | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    query_timeout: float | None = DEFAULT_QUERY_TIMEOUT,
    engine: str = "duckdb",
    spark_remote: str | None = None,
    data: str | None = None,
    as_of: str | dt.date | dt.datetime | None = None,
) -> Store:
    """Open a store: the bundled sample store by default, or a store folder / DuckDB file.

    `engine` is "duckdb" (embedded, the default) or "spark": a local Spark session, or Spark
    Connect at `spark_remote` ("sc://host:15002"). On Spark the store folder's manifest names the
    tables; `data` (a folder or URL such as s3://bucket/shop) says where the Spark cluster reads
    their Parquet files when it is not the store folder itself. See docs/engines.md.

    `memory_limit` (e.g. "2GB"; default 4GB, or half the memory of a smaller machine) and
    `threads` (default: DuckDB's, one per core) size the session, and `query_timeout` (seconds,
    default 300; None for none) stops a query that runs longer; see docs/security.md for
    everything else the session is locked to. Damaged stores and models raise CommerceQLDataError.

    `as_of` pins the store's clock for a frozen export, so `DURING last_month` means the month
    before the data ends: `'last-order'` (the last order's time), a date such as `'2023-06-30'`
    (the end of that day in the store's time zone) or an ISO timestamp. It overrides the
    manifest's `as_of`; `clock` (a function or datetime, for tests) cannot be combined with it.
    """
    if as_of is not None and clock is not None:
        raise CommerceQLDataError("give either clock or as_of, not both",
                                  hint="as_of='last-order' or a date pins the clock; clock is for tests")
    limit = memory_limit if memory_limit is not None else _default_memory_limit()
    if not isinstance(limit, str) or not _MEMORY.match(limit):
        raise CommerceQLDataError(f"memory_limit must be a size such as '4GB' or '512MB', not {limit!r}")
    if query_timeout is not None and (isinstance(query_timeout, bool) or not isinstance(query_timeout, (int, float))
                                      or not query_timeout > 0):
        raise CommerceQLDataError(f"query_timeout must be a positive number of seconds, not {query_timeout!r}")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise CommerceQLDataError(f"threads must be a positive whole number, not {threads!r}")
    if path is None:
        from commerceql.sample import ensure_default_store

        path = ensure_default_store()
    path = Path(path).expanduser()
    if path.is_dir() and not (path / "manifest.json").exists():
        from commerceql.organization import organization_cache, shops_in

        if shops_in(path):  # a folder of shops' stores: one organization (FROM ORGANIZATION ...)
            path = organization_cache(path)
    if engine not in ("duckdb", "spark"):
        raise CommerceQLDataError(f"unknown engine {engine!r}", hint="use engine='duckdb' or engine='spark'")
    if engine == "spark":
        store = _connect_spark(path, clock=clock, model=model, timezone=timezone, memory_limit=memory_limit,
                               query_timeout=query_timeout, remote=spark_remote, data=data)
        return _pinned(store, as_of)
    if spark_remote is not None or data is not None:
        raise CommerceQLDataError("spark_remote and data apply to engine='spark' only")
    allowed: list[str] = []
    readers_lock = None
    if path.is_dir():
        # Manifest first: it names the model folder and the table files of one import version.
        manifest = _load_manifest(path)
        model_dir = _model_dir(path, manifest)
        user_models = sorted(model_dir.glob("*.yaml")) if model_dir.is_dir() else []
        # The model is read before any connection exists: a bad one leaves nothing open.
        semantic = builtin_model().extended_from_files(user_models, relative_to=path)
        semantic = semantic.extended_from_files(model)
        readers_lock = _hold_readers_lock(path, manifest)
        connection, manifest, allowed = _open_folder(path, manifest)
    elif path.suffix in (".duckdb", ".db") and path.is_file():
        semantic = builtin_model().extended_from_files(model)
        connection, manifest = _open_database(path)
    else:
        raise CommerceQLDataError(
            f"cannot open {path}: expected a store folder (with manifest.json) or a .duckdb file",
            hint="create a store with `commerceql sample --out DIR` or `commerceql import ...`",
        )
    temp_directory = tempfile.mkdtemp(prefix="commerceql-duckdb-")
    try:
        _lock_down(connection, allowed_paths=allowed, temp_directory=temp_directory, memory_limit=limit,
                   threads=threads)
    except duckdb.Error as exc:
        connection.close()
        shutil.rmtree(temp_directory, ignore_errors=True)
        raise CommerceQLDataError(f"cannot configure the database session: {str(exc).splitlines()[0]}") from exc
    store = Store(
        connection,
        name=str(manifest.get("name") or path.stem),
        timezone=timezone or str(manifest.get("timezone") or "UTC"),
        currency=str(manifest.get("currency") or "USD"),
        model=semantic,
        path=path,
        manifest=manifest,
    )
    # Removed on close(), or when the store is garbage-collected / the interpreter exits.
    store._cleanup = weakref.finalize(store, _release, temp_directory, readers_lock)
    store.query_timeout = query_timeout
    if clock is not None:
        store.set_clock(clock)
    return _pinned(store, as_of)


def _pinned(store: Store, as_of: str | dt.date | dt.datetime | None) -> Store:
    """The store with its clock pinned to `as_of` (closed again if `as_of` is refused)."""
    if as_of is None:
        return store
    try:
        store.pin_clock(as_of)
    except BaseException:
        store.close()
        raise
    return store


def connect_arguments(words: Sequence[str]) -> tuple[str | None, dict[str, Any]]:
    """`PATH [--engine duckdb|spark] [--spark-remote sc://...] [--spark-data URL] [--as-of last-order|DATE]`.

    The connect() arguments of the kernel's `%connect` and the magic's `%cql_connect` (the CLI has
    argparse). Each option may also be written `name=value` (`as_of=last-order`, `engine=spark`).
    `--as-of` is checked here for its form; the store checks it against its data when it opens.
    """
    path: str | None = None
    options: dict[str, Any] = {}
    flags = {"--engine": "engine", "--spark-remote": "spark_remote", "--spark-data": "data", "--as-of": "as_of"}
    # `as_of=last-order` as well as `--as-of last-order`: notebook users write keyword style.
    keywords = {flag[2:].replace("-", "_"): name for flag, name in flags.items()}
    listing = "options: --engine duckdb|spark, --spark-remote sc://host:port, --spark-data URL, --as-of last-order|DATE"
    items = list(words)
    while items:
        word = items.pop(0)
        name, equals, inline = word.partition("=")
        if name in flags:
            if not inline and not items:
                raise CommerceQLDataError(f"{name} needs a value", hint="for example --engine spark or --as-of last-order")
            options[flags[name]] = inline or items.pop(0)
        elif equals and not name.startswith("-") and name.replace("-", "_") in keywords:
            if not inline:
                raise CommerceQLDataError(f"{name}= needs a value", hint="for example as_of=last-order")
            options[keywords[name.replace("-", "_")]] = inline
        elif word.startswith("--"):
            raise CommerceQLDataError(f"unknown option {word}", hint=listing)
        elif path is None:
            path = word
        else:
            raise CommerceQLDataError("give one store path", hint="quote a path with spaces: 'my store'")
    if options.get("engine", "duckdb") not in ("duckdb", "spark"):
        raise CommerceQLDataError(f"unknown engine {options['engine']!r}", hint="use --engine duckdb or --engine spark")
    if "as_of" in options:
        check_as_of_text(options["as_of"])
    return path, options


def check_as_of_text(value: str) -> None:
    """Refuse an `as_of` that is not `last-order`, a date or an ISO timestamp (before any store opens)."""
    if value.strip().lower() in (LAST_ORDER, "last_order"):
        return
    as_of_instant(value, "UTC", lambda: None)  # a date or timestamp: its form alone decides


def _release(temp_directory: str, readers_lock: Any) -> None:
    shutil.rmtree(temp_directory, ignore_errors=True)
    if readers_lock is not None:
        readers_lock.close()  # closing the file drops its shared lock


def _connect_spark(
    path: Path,
    *,
    clock: Clock | dt.datetime | None,
    model: Iterable[str | Path],
    timezone: str | None,
    memory_limit: str | None,
    query_timeout: float | None,
    remote: str | None,
    data: str | None,
) -> Store:
    """A store whose queries run on Spark: the same folder format, tables registered as views."""
    if not path.is_dir():
        raise CommerceQLDataError(
            f"cannot open {path} on Spark: expected a store folder (with manifest.json)",
            hint="the Spark engine reads store folders; a .duckdb file needs engine='duckdb'",
        )
    manifest = _load_manifest(path)
    model_dir = _model_dir(path, manifest)
    user_models = sorted(model_dir.glob("*.yaml")) if model_dir.is_dir() else []
    semantic = builtin_model().extended_from_files(user_models, relative_to=path)
    semantic = semantic.extended_from_files(model)
    locations: dict[str, str] = {}
    for name, file_name in manifest.get("tables", {}).items():
        if Path(file_name).is_absolute() or ".." in Path(file_name).parts:
            raise CommerceQLDataError(f"store {path} lists table `{name}` as {file_name!r}, which is outside the store folder")
        if data is not None:
            locations[name] = data.rstrip("/") + "/" + file_name
        else:
            file_path = path / file_name
            if not file_path.is_file():
                raise CommerceQLDataError(f"store {path} lists table `{name}` but {file_path.name} is missing")
            locations[name] = str(file_path.resolve())
    spark = SparkEngine(remote=remote, memory_limit=memory_limit)
    spark.register_parquet(locations)
    store = Store(
        None,
        name=str(manifest.get("name") or path.stem),
        timezone=timezone or str(manifest.get("timezone") or "UTC"),
        currency=str(manifest.get("currency") or "USD"),
        model=semantic,
        path=path,
        manifest=manifest,
        engine=spark,
    )
    store.query_timeout = query_timeout
    if clock is not None:
        store.set_clock(clock)
    return store


__all__ = ["CommerceQLError", "CommerceQLInterrupted", "Store", "connect", "glob_literal", "run_interruptibly"]
