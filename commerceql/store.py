"""A store: a DuckDB connection over one shop's data, its settings and its semantic model.

`connect()` opens the bundled sample store (generating it on first use); `connect(path)` opens a
store folder (Parquet files + manifest.json, queried in place) or a DuckDB database file.
`Store.query(text)` runs the whole pipeline: parse → resolve → compile → DuckDB → Polars.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import polars as pl

from commerceql import ast
from commerceql.compiler import (
    CompiledQuery,
    compile_plan,
    inline_parameters,
    quote_identifier,
    quote_literal,
)
from commerceql.errors import CommerceQLDataError, CommerceQLError, CommerceQLExecutionError
from commerceql.model.semantic import SemanticModel, builtin_model
from commerceql.parser import parse, parse_script
from commerceql.resolver import resolve
from commerceql.result import Result

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
            cancel()
    if interrupted:
        # An interrupt that arrived while the query finished anyway is still honoured.
        raise CommerceQLInterrupted("query interrupted")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _arrow(connection: duckdb.DuckDBPyConnection, sql: str, parameters: Any) -> Any:
    """Run `sql` and return an Arrow table without the extra copy a DB-API cursor makes."""
    relation = connection.sql(sql, params=parameters or None)
    if relation is None:  # a statement without a result
        return pl.DataFrame().to_arrow()
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    return fetch()


def _system_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Store:
    """An open store. Not thread-safe for concurrent queries: one query at a time per store."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        *,
        name: str,
        timezone: str,
        currency: str,
        model: SemanticModel,
        clock: Clock | None = None,
        path: Path | None = None,
        manifest: dict[str, Any] | None = None,
    ) -> None:
        self.connection = connection
        self.name = name
        self.timezone = timezone
        self.currency = currency
        self.model = model
        self.path = path
        self.manifest = manifest or {}
        self._clock = clock
        self._lock = threading.Lock()

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
        )
        return compile_plan(plan)

    def query(self, query: str | ast.Query, *, now: dt.datetime | None = None) -> Result:
        """Run one query and return its result (a Polars DataFrame with column metadata)."""
        compiled = self.compile(query, now=now)
        return self.execute(compiled)

    def query_script(self, text: str, *, now: dt.datetime | None = None) -> list[Result]:
        """Run every `;`-separated query of a script, in order."""
        return [self.query(q, now=now) for q in parse_script(text)]

    def execute(self, compiled: CompiledQuery) -> Result:
        with self._lock:
            try:
                table = _arrow(self.connection, compiled.sql, compiled.parameters)
            except duckdb.InterruptException as exc:
                raise CommerceQLExecutionError("the query was interrupted") from exc
            except duckdb.Error as exc:
                raise CommerceQLExecutionError(
                    f"the database could not run this query: {str(exc).splitlines()[0]}",
                    source=compiled.plan.query.source,
                    hint="this is probably a bug in CommerceQL or the store's model; `explain` shows the SQL",
                ) from exc
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        total_rows = int(frame["__total_rows"][0]) if frame.height else 0
        frame = frame.drop("__total_rows")
        return Result(
            query=compiled.plan.query,
            df=frame,
            sql=compiled.sql,
            parameters=compiled.parameters,
            columns=compiled.columns,
            total_rows=total_rows,
            plan=compiled.plan,
            store=self,
        )

    def explain(self, query: str | ast.Query, *, now: dt.datetime | None = None) -> str:
        """The compiled SQL with its parameters written in, for reading."""
        compiled = self.compile(query, now=now)
        return inline_parameters(compiled.sql, compiled.parameters)

    def interrupt(self) -> None:
        """Cancel the running query (safe to call from another thread)."""
        self.connection.interrupt()

    def sql(self, text: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> pl.DataFrame:
        """Run raw SQL against the store (for tests and power users)."""
        frame = pl.from_arrow(_arrow(self.connection, text, parameters))
        assert isinstance(frame, pl.DataFrame)
        return frame

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

    def extend_model(self, paths: Iterable[str | Path]) -> None:
        """Add user-defined metrics and dimensions from YAML files in the model format."""
        self.model = self.model.extended_from_files(paths)

    # -- widgets -------------------------------------------------------------------------------
    def explore(self, query: str | ast.Query) -> Any:
        """An interactive widget (dimension, date range, comparison, chart type) over `query`."""
        return self.query(query).widget()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"<commerceql.Store {self.name!r}{where} ({self.timezone}, {self.currency})>"


def _open_folder(path: Path) -> tuple[duckdb.DuckDBPyConnection, dict[str, Any]]:
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise CommerceQLDataError(
            f"{path} is not a CommerceQL store: it has no manifest.json",
            hint="create one with `commerceql sample --out DIR` or `commerceql import ...`",
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise CommerceQLDataError(f"cannot read {manifest_path}: {exc}") from exc
    connection = duckdb.connect()
    for name, file_name in manifest.get("tables", {}).items():
        file_path = path / file_name
        if not file_path.exists():
            raise CommerceQLDataError(f"store {path} lists table `{name}` but {file_path.name} is missing")
        connection.execute(
            f"CREATE VIEW {quote_identifier(name)} AS SELECT * FROM read_parquet({quote_literal(str(file_path))})"
        )
    return connection, manifest


def connect(
    path: str | Path | None = None,
    *,
    clock: Clock | dt.datetime | None = None,
    model: Iterable[str | Path] = (),
    timezone: str | None = None,
) -> Store:
    """Open a store: the bundled sample store by default, or a store folder / DuckDB file."""
    if path is None:
        from commerceql.sample import ensure_default_store

        path = ensure_default_store()
    path = Path(path).expanduser()
    if path.is_dir():
        connection, manifest = _open_folder(path)
        user_models = sorted((path / "model").glob("*.yaml")) if (path / "model").is_dir() else []
    elif path.suffix in (".duckdb", ".db") and path.exists():
        connection = duckdb.connect(str(path), read_only=True)
        manifest = {}
        try:
            rows = connection.sql("SELECT manifest FROM commerceql_manifest LIMIT 1").fetchall()
            if rows:
                manifest = json.loads(rows[0][0])
        except duckdb.Error:
            manifest = {}
        user_models = []
    else:
        raise CommerceQLDataError(
            f"cannot open {path}: expected a store folder (with manifest.json) or a .duckdb file",
            hint="create a store with `commerceql sample --out DIR` or `commerceql import ...`",
        )
    semantic = builtin_model().extended_from_files([*user_models, *model])
    store = Store(
        connection,
        name=str(manifest.get("name", path.stem)),
        timezone=timezone or str(manifest.get("timezone", "UTC")),
        currency=str(manifest.get("currency", "USD")),
        model=semantic,
        path=path,
        manifest=manifest,
    )
    if clock is not None:
        store.set_clock(clock)
    return store


__all__ = ["CommerceQLError", "CommerceQLInterrupted", "Store", "connect", "run_interruptibly"]
