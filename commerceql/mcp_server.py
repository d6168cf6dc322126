"""`commerceql mcp`: a Model Context Protocol server, so an AI assistant can query a store.

A thin shell over `commerceql.store` built on the official `mcp` SDK (`MCPServer`): every tool
calls the same `Store.schema`, `Store.query`, `Store.explain` and `Result` methods as the CLI and
the notebooks, so an assistant gets exactly the answers, errors and notes a person would.

Tools: `list_tables`, `describe_table`, `run_query`, `explain_query`, `render_chart`.
Resources: the language reference (`commerceql://docs/language`), the metric reference
(`commerceql://docs/metrics`) and this store's own schema (`commerceql://store/schema`).
Prompt: `write_query` (a question → instructions for writing one CommerceQL query).

Safety (docs/assistants.md): there is no raw-SQL tool; the store is the normal locked-down
session of `commerceql.connect` (read-only views, no file access beyond the store, no extension
loading, a memory limit); each query runs under the store's time limit; `run_query` returns at
most `max_rows` rows and says when it cut some; streamable HTTP binds 127.0.0.1 unless told
otherwise, with the SDK's DNS-rebinding protection on loopback.

JSON values in `run_query` rows: money and other decimals are JSON numbers (binary floating
point, exact to the cent below 10^13); dates are ISO `YYYY-MM-DD`; date-times are ISO
`YYYY-MM-DDTHH:MM:SS` in the store's local time (time-grain columns such as `hour`), with an
offset only when the value carries one; durations are seconds; NaN and infinities are null;
lists stay lists.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import json
import logging
import math
import sys
import tempfile
from collections.abc import Callable, Sequence
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ContentBlock, ImageContent, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from commerceql.errors import CommerceQLError, CommerceQLSemanticError

if TYPE_CHECKING:
    from commerceql.result import Result
    from commerceql.store import Store

logger = logging.getLogger("commerceql.mcp")

DEFAULT_MAX_ROWS = 500
LANGUAGE_URI = "commerceql://docs/language"
METRICS_URI = "commerceql://docs/metrics"
SCHEMA_URI = "commerceql://store/schema"
# The reference documents ship inside the package as links to docs/*.md (see _reference_text).
_REFERENCE_FILES = {"language": "language.md", "metrics": "metrics.md"}

# Every tool only reads: clients may run them without asking, and repeat them freely.
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                             open_world_hint=False)

QueryText = Annotated[str, Field(description="One CommerceQL query, e.g. `FROM sales SHOW net_sales "
                                             "GROUP BY sales_channel DURING last_month`")]


# -- structured answers -------------------------------------------------------------------------
class TableSummary(BaseModel):
    name: str
    description: str
    metrics: int
    dimensions: int


class StoreInfo(BaseModel):
    name: str
    timezone: str = Field(description="the store's time zone: every period and time grain is in it")
    currency: str
    as_of: str = Field(description="the store's clock (ISO): `today`, `last_month` ... are relative to it")
    engine: str


class TableList(BaseModel):
    store: StoreInfo
    tables: list[TableSummary]


class SchemaField(BaseModel):
    name: str
    type: str
    description: str


class TableDescription(BaseModel):
    table: str
    description: str
    metrics: list[SchemaField] = Field(description="what SHOW can list (aggregates)")
    dimensions: list[SchemaField] = Field(description="what GROUP BY and WHERE can use")


class ColumnMeta(BaseModel):
    name: str
    label: str
    role: str = Field(description="dimension, time, metric, comparison, percent_change, totals, ...")
    type: str = Field(description="money, percent, count, number, string, date, a time grain ...")
    description: str


class Period(BaseModel):
    start: str | None = Field(description="first instant, store-local ISO date-time (null: unbounded)")
    end: str | None = Field(description="end, exclusive, store-local ISO date-time (null: unbounded)")
    timezone: str


class QueryAnswer(BaseModel):
    columns: list[ColumnMeta]
    rows: list[dict[str, Any]] = Field(description="one object per row, keyed by column name")
    row_count: int = Field(description="rows returned here")
    total_rows: int = Field(description="rows the query has before its LIMIT")
    truncated: bool = Field(description="true when rows were left out (the server's row cap or the query's LIMIT)")
    notices: list[str] = Field(description="notes on how the query was answered; tell the user about them")
    period: Period
    currency: str


# -- JSON-safe values -----------------------------------------------------------------------------
def json_value(value: Any) -> Any:
    """`value` (from a Polars row) as plain JSON: see the module docstring for the conventions."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    return str(value)


def _window_bound(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def query_answer(result: Result, max_rows: int) -> QueryAnswer:
    """A result as JSON rows with column metadata, at most `max_rows` rows."""
    infos = {column.name: column for column in result.columns}
    columns = []
    for name in result.df.columns:
        info = infos.get(name)
        columns.append(ColumnMeta(
            name=name,
            label=info.label if info else name,
            role=info.role if info else "dimension",
            type=info.type if info else "string",
            description=info.description if info else "",
        ))
    shown = result.df.head(max_rows)
    rows = [{key: json_value(value) for key, value in row.items()} for row in shown.iter_rows(named=True)]
    notices = list(result.notices)
    capped = result.df.height > max_rows
    if capped:
        notices.append(
            f"showing the first {max_rows:,} of {result.df.height:,} rows (this server returns at most "
            f"{max_rows:,}); add TOP n, LIMIT or a WHERE, or group by fewer values, to see the rest"
        )
    elif result.truncated:
        notices.append(f"the query's LIMIT {result.plan.limit} left out rows: it has {result.total_rows:,} in all")
    window = result.plan.window
    return QueryAnswer(
        columns=columns,
        rows=rows,
        row_count=len(rows),
        total_rows=result.total_rows,
        truncated=capped or result.truncated,
        notices=notices,
        period=Period(start=_window_bound(window.start), end=_window_bound(window.end), timezone=result.plan.timezone),
        currency=result.currency,
    )


# -- tool results -------------------------------------------------------------------------------
def _tool_error(text: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], is_error=True)


def _structured(answer: BaseModel) -> CallToolResult:
    data = answer.model_dump(mode="json")
    return CallToolResult(content=[TextContent(type="text", text=json.dumps(data, ensure_ascii=False))],
                          structured_content=data)


def _guarded(tool: str, work: Callable[[], CallToolResult]) -> CallToolResult:
    """Run a tool's work; bad input comes back as the positioned message users see, never a traceback."""
    try:
        return work()
    except CommerceQLError as error:
        return _tool_error(error.render())
    except Exception as error:  # a bug, not the caller's mistake: details stay in the server's log
        logger.exception("tool %s failed unexpectedly", tool)
        return _tool_error(
            f"internal error: {type(error).__name__} in {tool}\n"
            "  = this is a bug in CommerceQL, not a problem with the query; the server's log has the details"
        )


def _notice_blocks(notices: Sequence[str]) -> list[ContentBlock]:
    return [TextContent(type="text", text="\n".join(f"note: {notice}" for notice in notices))] if notices else []


# -- the reference documents ----------------------------------------------------------------------
def _reference_text(name: str) -> str:
    """A reference document: `commerceql/resources/<name>.md`, a link to `docs/<name>.md`.

    The package ships the documents as symbolic links into docs/, so a checkout always serves the
    current text and a built wheel (setuptools copies what a link points to) carries a copy; the
    docs stay the one source. A checkout made without symbolic links (a plain file holding the
    link's target) falls back to reading docs/ next to the package.
    """
    packaged = resources.files("commerceql") / "resources" / _REFERENCE_FILES[name]
    text = packaged.read_text(encoding="utf-8")
    if text.startswith("../") and "\n" not in text.strip():
        beside = Path(__file__).resolve().parent.parent / "docs" / _REFERENCE_FILES[name]
        text = beside.read_text(encoding="utf-8")
    return text


def _schema_markdown(store: Store) -> str:
    """Every table of this store with its metrics and dimensions (the store's own model included)."""
    tables = store.schema()
    out = [f"# Tables of the store {store.name!r}\n",
           f"Time zone {store.timezone}, currency {store.currency}, clock {store.now().isoformat()}.\n"]
    for table in tables.iter_rows(named=True):
        out.append(f"\n## `{table['table']}`\n\n{table['description']}\n")
        fields = store.schema(table["table"])
        for kind in ("metric", "dimension"):
            out.append(f"\n{kind.capitalize()}s:\n")
            for row in fields.filter(fields["kind"] == kind).iter_rows(named=True):
                if row["type"] == "alias":
                    continue
                out.append(f"- `{row['name']}` ({row['type']}): {' '.join(row['description'].split())}\n")
    return "".join(out)


_RUN_QUERY_DESCRIPTION = """\
Run one CommerceQL query and return its rows as JSON with each column's meaning (name, label,
role, type), the period it covered and notes on how it was answered. At most {max_rows} rows come
back (`truncated` says when some were left out). Money is a JSON number in the result's
`currency` (the store's, or the one WITH CURRENCY converted to); dates are ISO; date-times are store-local. A mistake comes back as an error with the line, column
and a hint."""

_INSTRUCTIONS = """\
CommerceQL answers questions about a shop's sales, orders, customers, products, sessions,
checkouts, quotes and B2B accounts, in a ShopifyQL-like language:

    FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month ORDER BY net_sales DESC

Work this way: `list_tables`, then `describe_table` for the table you need (use only the metric
and dimension names it lists), write one query, run it with `run_query`, and tell the user any
`notices` that come back. A query with a mistake returns an error that points at the line and
column, with a hint: fix the query and try again. `render_chart` draws the VISUALIZE clause of a
query (PNG or Vega-Lite). The resource commerceql://docs/language is the full language
reference, commerceql://docs/metrics defines every metric. Periods (`today`, `last_month`,
`last_year` ...) are relative to the store's clock, which `list_tables` reports."""

_QUERY_GUIDE = """\
Write one CommerceQL query that answers the question below, run it with the `run_query` tool and
answer from its rows (mention any `notices` it returns).

Shape of a query (clauses in any order after FROM):
  FROM <table> SHOW <metric>, ... [WHERE <dimension> = 'value' AND ...] [GROUP BY <dimension>|<grain>, ...]
  [TIMESERIES day|week|month|quarter|year] [DURING last_month | SINCE -30d UNTIL today]
  [COMPARE TO previous_period | previous_year] [WITH TOTALS] [HAVING <metric> > n]
  [ORDER BY <column> DESC] [LIMIT n] [VISUALIZE <metric> TYPE bar|line|...]
Text values use single quotes; names are lower_snake_case; use only names that `describe_table`
lists for the table. If `run_query` returns an error, it says where and why: fix the query and
run it again. The resource {language} is the full language reference.

Tables of this store: {tables}.

Question: {question}"""


# -- the server --------------------------------------------------------------------------------
def build_server(store: Store, *, max_rows: int = DEFAULT_MAX_ROWS) -> MCPServer:
    """An MCP server whose tools answer from `store`, returning at most `max_rows` rows per query."""
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise CommerceQLError(f"the row cap must be a positive whole number, not {max_rows!r}")
    from commerceql import __version__

    server: MCPServer = MCPServer(
        "commerceql",
        title="CommerceQL",
        description=f"Query the commerce store {store.name!r} with CommerceQL",
        instructions=_INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )

    def store_info() -> StoreInfo:
        return StoreInfo(name=store.name, timezone=store.timezone, currency=store.currency,
                         as_of=store.now().isoformat(), engine=store.engine.name)

    @server.tool(annotations=_READ_ONLY)
    def list_tables() -> Annotated[CallToolResult, TableList]:
        """The store's tables (what FROM can name) with a description each, and the store's time zone,
        currency and clock (periods such as `last_month` are relative to it)."""

        def work() -> CallToolResult:
            frame = store.schema()
            tables = [TableSummary(name=row["table"], description=" ".join(row["description"].split()),
                                   metrics=row["metrics"], dimensions=row["dimensions"])
                      for row in frame.iter_rows(named=True)]
            return _structured(TableList(store=store_info(), tables=tables))

        return _guarded("list_tables", work)

    @server.tool(annotations=_READ_ONLY)
    def describe_table(
        table: Annotated[str, Field(description="a table name from list_tables, e.g. `sales`")],
    ) -> Annotated[CallToolResult, TableDescription]:
        """A table's metrics (what SHOW can list) and dimensions (what GROUP BY and WHERE can use),
        each with its type and definition. Time grains (day, week, month, quarter, year, hour_of_day
        ...) work on every table with a time column and are not listed."""

        def work() -> CallToolResult:
            fields = store.schema(table)
            tables = store.schema()
            summary = tables.filter(tables["table"] == table)
            description = " ".join(summary["description"][0].split()) if summary.height else ""

            def listed(kind: str) -> list[SchemaField]:
                # Older spellings (type `alias`) still resolve with a notice; an assistant should
                # write today's names, so they are not offered.
                return [SchemaField(name=row["name"], type=row["type"], description=" ".join(row["description"].split()))
                        for row in fields.filter(fields["kind"] == kind).iter_rows(named=True)
                        if row["type"] != "alias"]

            return _structured(TableDescription(table=table, description=description,
                                                metrics=listed("metric"), dimensions=listed("dimension")))

        return _guarded("describe_table", work)

    @server.tool(annotations=_READ_ONLY, description=_RUN_QUERY_DESCRIPTION.format(max_rows=f"{max_rows:,}"))
    def run_query(query: QueryText) -> Annotated[CallToolResult, QueryAnswer]:
        def work() -> CallToolResult:
            return _structured(query_answer(store.query(query), max_rows))

        return _guarded("run_query", work)

    @server.tool(annotations=_READ_ONLY)
    def explain_query(query: QueryText) -> CallToolResult:
        """The SQL a CommerceQL query compiles to (parameters written in), without running it. Useful
        to check how a metric is computed; there is no tool that runs SQL."""

        def work() -> CallToolResult:
            return CallToolResult(content=[TextContent(type="text", text=store.explain(query).rstrip() + ";")])

        return _guarded("explain_query", work)

    @server.tool(annotations=_READ_ONLY)
    def render_chart(
        query: Annotated[str, Field(description="a CommerceQL query with a VISUALIZE clause, e.g. `FROM sales "
                                                "SHOW net_sales GROUP BY month DURING last_year VISUALIZE "
                                                "net_sales TYPE line`")],
        format: Annotated[Literal["png", "vega-lite"],
                          Field(description="`png` (an image) or `vega-lite` (the chart's JSON spec)")] = "png",
    ) -> CallToolResult:
        """Run a query with a VISUALIZE clause and return its chart: a PNG image, or the Vega-Lite JSON
        specification (data inline) for clients that draw charts themselves."""

        def work() -> CallToolResult:
            compiled = store.compile(query)
            if not compiled.plan.visualize:
                raise CommerceQLSemanticError(
                    "this query has no VISUALIZE clause, so there is no chart to render",
                    hint="add one such as `VISUALIZE net_sales TYPE bar`, or use run_query for the rows",
                )
            result = store.execute(compiled)
            if format == "vega-lite":
                spec = result.vegalite_spec  # the Vega-Lite dict, without building an Altair chart
                text = TextContent(type="text", text=json.dumps(spec, ensure_ascii=False))
                return CallToolResult(content=[text, *_notice_blocks(result.notices)])
            with tempfile.TemporaryDirectory(prefix="commerceql-mcp-") as folder:
                path = Path(folder) / "chart.png"
                result.save_chart(str(path))
                png = path.read_bytes()
            image = ImageContent(type="image", data=base64.b64encode(png).decode("ascii"), mime_type="image/png")
            return CallToolResult(content=[image, *_notice_blocks(result.notices)])

        return _guarded("render_chart", work)

    @server.resource(LANGUAGE_URI, name="language", title="CommerceQL language reference",
                     description="Every clause and modifier of CommerceQL with examples and their output",
                     mime_type="text/markdown")
    def language_reference() -> str:
        return _reference_text("language")

    @server.resource(METRICS_URI, name="metrics", title="CommerceQL metric reference",
                     description="How every built-in metric is defined, with its formula",
                     mime_type="text/markdown")
    def metric_reference() -> str:
        return _reference_text("metrics")

    @server.resource(SCHEMA_URI, name="schema", title="This store's tables",
                     description="Every table of this store with its metrics and dimensions (including the "
                                 "store's own definitions)",
                     mime_type="text/markdown")
    def store_schema() -> str:
        return _schema_markdown(store)

    @server.prompt(title="Write a CommerceQL query")
    def write_query(question: str) -> str:
        """Answer a question about the store's data with one CommerceQL query."""
        names = ", ".join(f"`{name}`" for name in store.schema()["table"])
        return _QUERY_GUIDE.format(language=LANGUAGE_URI, tables=names, question=question)

    return server


def _open_store(args: argparse.Namespace) -> Store:
    from commerceql.cli import connect_from

    return connect_from(args)


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def run_mcp(args: argparse.Namespace) -> int:
    """`commerceql mcp`: serve the store over stdio (default) or streamable HTTP; returns the exit code."""
    max_rows = getattr(args, "max_rows", DEFAULT_MAX_ROWS)
    if max_rows < 1:
        raise CommerceQLError(f"--max-rows must be at least 1, not {max_rows}")
    # On stdio the protocol owns stdout: anything printed while the store opens (a first run writes
    # the sample store) goes to stderr instead. While serving, the SDK itself diverts stray output.
    with contextlib.redirect_stdout(sys.stderr):
        store = _open_store(args)
        server = build_server(store, max_rows=max_rows)
    try:
        if getattr(args, "http", False):
            host, port = args.host, args.port
            if host not in _LOOPBACK:
                print(f"warning: serving on {host}, reachable from other machines; the MCP server has no "
                      "authentication, so anyone who reaches it can query this store", file=sys.stderr)
            print(f"CommerceQL MCP server on http://{host}:{port}/mcp (store {store.name!r})", file=sys.stderr)
            server.run("streamable-http", host=host, port=port)
        else:
            server.run("stdio")
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


__all__ = ["DEFAULT_MAX_ROWS", "build_server", "json_value", "query_answer", "run_mcp"]
