"""What the CommerceQL kernel does with a cell, independent of the Jupyter messaging.

`KernelSession.run_cell(code, emit)` splits a cell into `%magic` lines and CommerceQL text, runs
every query (a cell holds one query or several separated by `;`) and hands each output to
`emit` as an `Output` (a display bundle or a stream text). A problem ends the cell with a
`CellError` whose `traceback` is the rendered CommerceQL message (line, caret, hint), never a
Python traceback.

Queries run in a worker thread while the main thread waits: SIGINT (Jupyter's interrupt) raises
KeyboardInterrupt in the main thread, which cancels the DuckDB query with `Store.interrupt()` and
ends the cell with "query interrupted"; the store stays usable.
"""

from __future__ import annotations

import shlex
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from commerceql.completion import Completion, complete, inspect, scan
from commerceql.errors import CommerceQLError, CommerceQLExecutionError

if TYPE_CHECKING:
    import polars as pl

    from commerceql import ast
    from commerceql.model.semantic import SemanticModel
    from commerceql.result import Result
    from commerceql.store import Store
    from commerceql.widgets import LiveWidgets

T = TypeVar("T")

DEFAULT_MAX_ROWS = 1000
TEXT_MAX_ROWS = 50
# Text output (`%format output text`, the text/plain fallback) wraps long texts to this width:
# a kernel does not know the width of the notebook showing it.
TEXT_WIDTH = 120


class CommerceQLMagicError(CommerceQLError):
    """A `%magic` line that cannot be run (unknown magic, bad argument)."""

    kind = "magic error"


class CellError(Exception):
    """Ends a cell: reported to Jupyter as an `error` output with these fields."""

    def __init__(self, ename: str, evalue: str, traceback: list[str]) -> None:
        super().__init__(evalue)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback

    @classmethod
    def from_error(cls, error: CommerceQLError) -> CellError:
        return cls(type(error).__name__, error.message, error.render().splitlines())

    @classmethod
    def interrupted(cls) -> CellError:
        return cls("QueryInterrupted", "query interrupted", ["query interrupted"])

    @classmethod
    def internal(cls, error: BaseException) -> CellError:
        text = f"internal error: {type(error).__name__}: {error}".rstrip(": ")
        return cls("InternalError", text, [text, "(the kernel is still running; please report this as a CommerceQL bug)"])


@dataclass
class Output:
    """One output of a cell.

    `kind` is "display" (data + metadata), "update" (replaces the earlier display whose
    `display_id` matches: Jupyter's update_display_data) or "stream" (name + text).
    """

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str = "stdout"
    text: str = ""
    display_id: str | None = None


Emit = Callable[[Output], None]


@dataclass
class DisplayOptions:
    """What `%format` controls."""

    rows: int = DEFAULT_MAX_ROWS  # rows shown in the grid (the note says "showing N of M rows")
    charts: bool = True  # show the VISUALIZE chart
    controls: bool = True  # VISUALIZE results come with the widget control bar (when widgets work)
    output: str = "html"  # html (HTML grid + text fallback) | text (text/plain only)
    numbers: str = "formatted"  # formatted ($1,234.50, 12.5%) | raw (the values as stored)

    def describe(self) -> str:
        return "\n".join(
            [
                f"rows     {self.rows}",
                f"charts   {'on' if self.charts else 'off'}",
                f"controls {'on' if self.controls else 'off'}",
                f"output   {self.output}",
                f"numbers  {self.numbers}",
            ]
        )


#: name -> (usage, what it does)
MAGICS: dict[str, tuple[str, str]] = {
    "connect": (
        "%connect [PATH] [--engine spark] [--spark-remote sc://host:port]",
        "open a store folder or .duckdb file (no PATH: the bundled sample store), on DuckDB or Spark",
    ),
    "schema": ("%schema [TABLE]", "list the tables, or one table's metrics and dimensions"),
    "sql": ("%sql [QUERY]", "the compiled DuckDB SQL of the previous query, or of QUERY"),
    "timezone": ("%timezone [Area/City]", "show or set the store's time zone for the next queries"),
    "format": (
        "%format [OPTION VALUE]",
        "show or set display options: rows N | charts on|off | controls on|off | output html|text | numbers formatted|raw | reset",
    ),
    "controls": ("%controls", "the control bar (dimension, dates, comparison, chart type, metrics) for the previous query"),
    "help": ("%help", "this help"),
}
HIDDEN_MAGICS = ("sleep_sql",)  # testing aid: a deliberately slow DuckDB statement
FORMAT_OPTIONS: dict[str, tuple[str, ...]] = {
    "rows": (),
    "charts": ("on", "off"),
    "controls": ("on", "off"),
    "output": ("html", "text"),
    "numbers": ("formatted", "raw"),
    "reset": (),
}

HELP_MARKDOWN = """**CommerceQL kernel**

Write a query (several separated by `;`) and run the cell:

```
FROM sales SHOW net_sales, orders GROUP BY month DURING last_year VISUALIZE net_sales TYPE line
```

Tab completes keywords, tables, metrics, dimensions, date ranges and chart types; Shift-Tab on a
metric or dimension shows its definition.

| magic | what it does |
|---|---|
""" + "\n".join(f"| `{usage}` | {what.replace('|', '&#124;')} |" for usage, what in MAGICS.values())


def _plain_help() -> str:
    return "CommerceQL kernel magics:\n" + "\n".join(f"  {usage:<24}{what}" for usage, what in MAGICS.values())


# ---------------------------------------------------------------------------------------------
# Splitting a cell
# ---------------------------------------------------------------------------------------------


@dataclass
class Segment:
    """A piece of a cell: a `%magic` line (name, argument) or CommerceQL text."""

    kind: str  # "magic" | "cell_magic" | "query"
    text: str
    line: int  # 0-based line of the cell where it starts
    name: str = ""
    argument: str = ""


def split_cell(code: str) -> list[Segment]:
    """The cell as magic lines and CommerceQL chunks, in order.

    A line whose first non-blank character is `%` is a magic, unless it is inside a multi-line
    'string' or /* comment */ of the query text around it. `%%sql` on the first line makes the
    rest of the cell the argument of `%sql`.
    """
    lines = code.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        head = lines[0].lstrip()[2:]
        name, _, argument = head.partition(" ")
        body = "\n".join([argument, *lines[1:]])
        return [Segment("cell_magic", lines[0], 0, name=name.strip(), argument=body.strip("\n"))]
    segments: list[Segment] = []
    chunk: list[str] = []
    chunk_start = 0

    def flush(next_line: int) -> None:
        nonlocal chunk, chunk_start
        if chunk:
            segments.append(Segment("query", "\n".join(chunk), chunk_start))
        chunk = []
        chunk_start = next_line

    for index, line in enumerate(lines):
        stripped = line.lstrip()
        if stripped.startswith("%"):
            _, state = scan("\n".join(chunk)) if chunk else ([], None)
            if state not in ("string", "block_comment"):
                flush(index + 1)
                name, _, argument = stripped[1:].partition(" ")
                segments.append(Segment("magic", line, index, name=name.strip(), argument=argument.strip()))
                continue
        if not chunk:
            chunk_start = index
        chunk.append(line)
    flush(len(lines))
    return segments


def _has_query_text(text: str) -> bool:
    tokens, state = scan(text)
    return bool(tokens) or state in ("string", "qident")


# ---------------------------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------------------------


def frame_bundle(frame: pl.DataFrame, *, max_rows: int = DEFAULT_MAX_ROWS, text_only: bool = False) -> dict[str, Any]:
    """A plain Polars frame (schema listings, raw results) as an HTML table + aligned text.

    Drawn by `commerceql.display` like every table: text left, numbers right, descriptions wrapped.
    """
    from commerceql.display import frame_mimebundle

    return frame_mimebundle(frame, max_rows, text_only=text_only, width=TEXT_WIDTH)


def result_bundle(result: Result, max_rows: int) -> dict[str, Any]:
    """A result's table as HTML + text (commerceql.display, the one renderer)."""
    from commerceql.display import result_mimebundle

    return result_mimebundle(result, max_rows, text_max_rows=TEXT_MAX_ROWS, width=TEXT_WIDTH)


def _sql_bundle(sql: str) -> dict[str, Any]:
    sql = sql.rstrip().rstrip(";") + ";"
    return {"text/plain": sql, "text/markdown": f"```sql\n{sql}\n```"}


# ---------------------------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------------------------


class KernelSession:
    """The state of one kernel: the open store, display options and the previous query."""

    def __init__(self, store: Store | None = None, *, store_path: str | None = None) -> None:
        self._store = store
        self._store_path = store_path
        self.options = DisplayOptions()
        self.last_query: ast.Query | None = None
        self.last_result: Result | None = None
        self.last_display_id: str | None = None
        self.widgets_available = False  # set by the kernel once it handles widget comms
        self.last_tables: list[str] = []
        # The control bars still open, and the cell being run (JupyterLab's cellId), so a re-run
        # cell closes the bars of its previous run; at most `live.limit` stay open (oldest go).
        self._live: LiveWidgets | None = None
        self.current_cell: str | None = None
        self._emit: Emit | None = None

    # -- the store -------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            from commerceql.store import connect

            self._store = connect(self._store_path)
            _quiet(self._store)
        return self._store

    @property
    def model(self) -> SemanticModel:
        """The model of the open store, or the built-in one before any store is opened."""
        if self._store is not None:
            return self._store.model
        from commerceql.model.semantic import builtin_model

        return builtin_model()

    def interrupt(self) -> None:
        if self._store is not None:
            self._store.interrupt()

    @property
    def live(self) -> LiveWidgets:
        """The open control bars (created on first use: ipywidgets is imported only then)."""
        if self._live is None:
            from commerceql.widgets import LiveWidgets

            self._live = LiveWidgets()
        return self._live

    # -- running a cell ----------------------------------------------------------------------
    def run_cell(self, code: str, emit: Emit, *, cell_id: str | None = None) -> None:
        """Run a cell, emitting outputs; raises CellError for an error (never anything else).

        `cell_id` (the frontend's cellId, if it sends one) identifies the cell across runs.
        """
        self.current_cell = cell_id or None
        self._emit = emit
        if self._live is not None and cell_id:
            self._live.close_cell(cell_id)  # the frontend cleared that output when the cell started
        try:
            for segment in split_cell(code):
                if segment.kind == "cell_magic" and segment.name != "sql":
                    raise CommerceQLMagicError(
                        f"unknown cell magic `%%{segment.name}`",
                        hint="%%sql (first line of a cell) shows the SQL of the queries below it",
                    )
                if segment.kind in ("magic", "cell_magic"):
                    self.run_magic(segment.name, segment.argument, emit)
                elif _has_query_text(segment.text):
                    self.run_queries("\n" * segment.line + segment.text, emit)
        except CellError:
            raise
        except CommerceQLError as error:
            raise CellError.from_error(error) from None
        except KeyboardInterrupt:
            raise CellError.interrupted() from None
        except Exception as error:  # a bug: report it briefly, keep the kernel alive
            raise CellError.internal(error) from None

    def run_queries(self, text: str, emit: Emit) -> None:
        from commerceql.parser import parse_script

        queries = parse_script(text)
        for query in queries:
            result = self.run_query(query)
            self.display_result(result, emit)

    def run_query(self, query: ast.Query) -> Result:
        store = self.store
        compiled = store.compile(query)
        self.last_query = query
        self.last_tables = [t.name for t in query.tables]
        try:
            return self._interruptible(lambda: store.execute(compiled))
        except CommerceQLExecutionError as error:
            if "interrupted" in error.message:
                raise CellError.interrupted() from None
            raise

    def _interruptible(self, work: Callable[[], T]) -> T:
        """Run `work` in a worker thread; a KeyboardInterrupt meanwhile cancels the DuckDB query."""
        from commerceql.store import CommerceQLInterrupted, run_interruptibly

        try:
            return run_interruptibly(work, self.interrupt)
        except CommerceQLInterrupted:
            raise CellError.interrupted() from None

    def widget_bundle(self, result: Result) -> dict[str, Any] | None:
        """The explore widget's display bundle; None without widget support.

        The bundle carries the widget's static view too (chart as Vega-Lite and as an image, the
        table as HTML and text), so the saved notebook shows them where the widget cannot run.
        """
        if not self.widgets_available:
            return None
        widget = result.widget()
        bundle = dict(widget._repr_mimebundle_() or {})
        if "application/vnd.jupyter.widget-view+json" not in bundle:
            widget.close()
            return None
        display_id = uuid.uuid4().hex
        self.live.add(widget, cell=self.current_cell, retire=lambda bar: self._retire(bar, display_id))
        self.last_display_id = display_id
        return bundle

    def _retire(self, widget: Any, display_id: str) -> None:
        """Show a retired bar's last view (no controls) in place of the widget, in its cell."""
        from commerceql.widgets import RETIRED_NOTE

        if self._emit is None:
            return
        bundle = widget.static_bundle(RETIRED_NOTE.format(limit=self.live.limit))
        self._emit(Output("update", bundle, {"commerceql": {"controls": False}}, display_id=display_id))

    def display_result(self, result: Result, emit: Emit) -> None:
        options = self.options
        self.last_result = result
        if options.controls and options.charts and result.has_chart and options.output == "html":
            # The control bar carries the chart and the table; the bundle falls back to the table.
            bundle = self.widget_bundle(result)
            if bundle is not None:
                metadata = {"commerceql": {"rows": result.total_rows, "controls": True}}
                emit(Output("display", bundle, metadata, display_id=self.last_display_id))
                return
        if options.numbers == "raw":
            bundle = frame_bundle(result.df, max_rows=options.rows, text_only=options.output == "text")
        elif options.output == "text":
            bundle = {"text/plain": result.to_text(max_rows=options.rows, width=TEXT_WIDTH)}
        else:
            bundle = result_bundle(result, options.rows)
        metadata = {"commerceql": {"rows": result.total_rows, "columns": [c.name for c in result.columns]}}
        emit(Output("display", bundle, metadata))
        if options.charts and result.has_chart:
            from commerceql.magic import notebook_chart_bundle

            spec = result.vegalite_spec  # a plain dict: Altair is never imported to show a chart
            if spec is not None:
                emit(Output("display", notebook_chart_bundle(spec)))

    # -- magics ------------------------------------------------------------------------------
    def run_magic(self, name: str, argument: str, emit: Emit) -> None:
        handler = getattr(self, f"_magic_{name}", None) if (name in MAGICS or name in HIDDEN_MAGICS) else None
        if handler is None:
            listing = ", ".join(f"%{m}" for m in MAGICS)
            raise CommerceQLMagicError(
                f"unknown magic `%{name}`" if name else "a `%` line needs a magic name",
                hint=f"the magics are {listing} (see %help)",
            )
        handler(argument, emit)

    def _magic_help(self, argument: str, emit: Emit) -> None:
        emit(Output("display", {"text/plain": _plain_help(), "text/markdown": HELP_MARKDOWN}))

    def _magic_connect(self, argument: str, emit: Emit) -> None:
        from commerceql.store import connect, connect_arguments

        path, options = connect_arguments(_split(argument, "connect"))
        store = connect(path or None, **options)
        _quiet(store)
        old = self._store
        self._store = store
        self._store_path = path or None
        self.last_query = None
        if old is not None and old is not store:
            try:
                old.close()
            except Exception:  # closing an old store must never fail the cell
                pass
        where = f" ({store.path})" if store.path else ""
        # A pinned clock moves every relative date (last_month ...): say where it stands.
        clock = f", clock {store.now():%Y-%m-%d %H:%M %Z}" if store.clock_pinned else ""
        emit(Output("stream", text=f"connected to {store.name}{where}: time zone {store.timezone}, "
                    f"currency {store.currency}{clock}\n"))

    def _magic_schema(self, argument: str, emit: Emit) -> None:
        table = _single_argument(argument, "schema")
        frame = self.store.schema(table or None)
        emit(Output("display", frame_bundle(frame, max_rows=10_000, text_only=self.options.output == "text")))

    def _magic_sql(self, argument: str, emit: Emit) -> None:
        from commerceql.parser import parse_script

        store = self.store
        if argument.strip():
            queries = parse_script(argument)
            if not queries:
                raise CommerceQLMagicError("%sql needs a query", hint="%sql FROM sales SHOW net_sales")
        elif self.last_query is not None:
            queries = [self.last_query]
        else:
            raise CommerceQLMagicError(
                "no previous query to show the SQL of",
                hint="run a query first, or pass one: %sql FROM sales SHOW net_sales",
            )
        for query in queries:
            emit(Output("display", _sql_bundle(store.explain(query))))

    def _magic_timezone(self, argument: str, emit: Emit) -> None:
        from commerceql.dates import validate_timezone

        name = _single_argument(argument, "timezone")
        store = self.store
        if not name:
            emit(Output("stream", text=f"time zone: {store.timezone}\n"))
            return
        name = validate_timezone(name)
        previous = store.timezone
        store.timezone = name
        emit(Output("stream", text=f"time zone: {name} (was {previous}); dates in the next queries use it\n"))

    def _magic_format(self, argument: str, emit: Emit) -> None:
        words = _split(argument, "format")
        options = self.options
        if not words:
            emit(Output("stream", text=options.describe() + "\n"))
            return
        option, values = words[0].lower(), words[1:]
        if option == "reset" and not values:
            self.options = DisplayOptions()
        elif option == "rows" and len(values) == 1:
            try:
                rows = int(values[0].replace(",", "").replace("_", ""))
            except ValueError:
                rows = -1
            if rows < 1:
                raise CommerceQLMagicError(f"`{values[0]}` is not a number of rows", hint="e.g. %format rows 50")
            options.rows = rows
        elif option in FORMAT_OPTIONS and FORMAT_OPTIONS[option] and len(values) == 1:
            value = values[0].lower()
            allowed = FORMAT_OPTIONS[option]
            if value not in allowed:
                raise CommerceQLMagicError(
                    f"`{values[0]}` is not a value of `{option}`", hint=f"use one of {', '.join(allowed)}"
                )
            if option in ("charts", "controls"):
                setattr(options, option, value == "on")
            else:
                setattr(options, option, value)
        else:
            raise CommerceQLMagicError(f"cannot read `%format {argument.strip()}`", hint=MAGICS["format"][1])
        emit(Output("stream", text=self.options.describe() + "\n"))

    def _magic_controls(self, argument: str, emit: Emit) -> None:
        if argument.strip():
            raise CommerceQLMagicError("%controls takes no argument", hint="run a query, then %controls on its own line")
        if self.last_result is None:
            raise CommerceQLMagicError("there is no previous query to add controls to", hint="run a query first")
        bundle = self.widget_bundle(self.last_result)
        if bundle is None:
            raise CommerceQLMagicError("this kernel cannot show widgets here (no widget comm support)")
        metadata = {"commerceql": {"rows": self.last_result.total_rows, "controls": True}}
        emit(Output("display", bundle, metadata, display_id=self.last_display_id))

    def _magic_sleep_sql(self, argument: str, emit: Emit) -> None:
        """Testing aid: a DuckDB statement taking about SECONDS seconds on 2 cores (interruptible)."""
        text = _single_argument(argument, "sleep_sql") or "10"
        try:
            seconds = float(text)
        except ValueError:
            raise CommerceQLMagicError(f"`{text}` is not a number of seconds") from None
        rows = max(int(seconds * 200_000_000), 1)
        import duckdb

        store = self.store
        # Said before the statement starts, so a test can interrupt at the right moment.
        emit(Output("stream", text=f"sleeping {seconds:g} s in DuckDB\n"))
        started = time.monotonic()

        def work() -> Any:
            # Store.sql runs SQL the same way as Store.execute runs a compiled query.
            try:
                return store.sql("SELECT count(*) AS n FROM range(?) t(i) WHERE hash(i) % 1000 = 7", [rows])
            except duckdb.InterruptException:
                raise CommerceQLExecutionError("the query was interrupted") from None

        try:
            self._interruptible(work)
        except CommerceQLExecutionError:
            raise CellError.interrupted() from None
        emit(Output("stream", text=f"slept {time.monotonic() - started:.1f} s in DuckDB\n"))

    # -- editor support ----------------------------------------------------------------------
    def complete(self, code: str, cursor: int) -> Completion:
        line_start = code.rfind("\n", 0, cursor) + 1
        line_end = code.find("\n", cursor)
        line_end = len(code) if line_end < 0 else line_end
        line = code[line_start:line_end]
        if line.lstrip().startswith("%") and not _inside_text(code, line_start):
            return self._complete_magic(line, line_start, cursor)
        return complete(_blank_magic_lines(code), cursor, self.model, tables_hint=self.last_tables or None)

    def _complete_magic(self, line: str, line_start: int, cursor: int) -> Completion:
        indent = len(line) - len(line.lstrip())
        before = line[: cursor - line_start]
        head = before[indent:]
        if " " not in head:
            prefix = head.lstrip("%")
            names = [f"%{m}" for m in MAGICS if m.startswith(prefix.lower())]
            start = line_start + indent
            return _simple_completion(names, start, cursor, "magic")
        name, _, rest = head.lstrip("%").partition(" ")
        rest_start = cursor - len(rest)
        if name == "sql":
            inner = complete(rest, len(rest), self.model, tables_hint=self.last_tables or None)
            shift = rest_start
            meta = inner.metadata.get("_jupyter_types_experimental", [])
            for item in meta:
                item["start"] += shift
                item["end"] += shift
            return Completion(inner.matches, inner.cursor_start + shift, min(inner.cursor_end + shift, cursor),
                              inner.metadata, inner.types)
        words = rest.split(" ")
        partial = words[-1]
        start = cursor - len(partial)
        if name == "schema" and len(words) == 1:
            return _simple_completion([t for t in self.model.tables if t.startswith(partial)], start, cursor, "table")
        if name == "timezone" and len(words) == 1:
            from zoneinfo import available_timezones

            zones = sorted(z for z in available_timezones() if z.lower().startswith(partial.lower()))
            return _simple_completion(zones, start, cursor, "time zone")
        if name == "format":
            if len(words) == 1:
                return _simple_completion([o for o in FORMAT_OPTIONS if o.startswith(partial)], start, cursor, "option")
            if len(words) == 2:
                values = FORMAT_OPTIONS.get(words[0], ())
                return _simple_completion([v for v in values if v.startswith(partial)], start, cursor, "value")
        if name == "connect" and len(words) == 1:
            return _simple_completion(_paths(partial), start, cursor, "path")
        return _simple_completion([], cursor, cursor, "")

    def inspect(self, code: str, cursor: int) -> dict[str, str] | None:
        line_start = code.rfind("\n", 0, cursor) + 1
        line_end = code.find("\n", cursor)
        line = code[line_start : len(code) if line_end < 0 else line_end]
        stripped = line.lstrip()
        if stripped.startswith("%") and not _inside_text(code, line_start):
            name = stripped.lstrip("%").split(" ")[0]
            if name == "sql" and " " in stripped:
                offset = line_start + (len(line) - len(stripped)) + len("%sql ")
                if cursor >= offset:
                    return inspect(code[offset : line_start + len(line)], cursor - offset, self.model,
                                   tables_hint=self.last_tables or None)
            if name in MAGICS:
                usage, what = MAGICS[name]
                return {"text/plain": f"{usage}: {what}", "text/markdown": f"`{usage}` — {what}"}
            return {"text/plain": _plain_help(), "text/markdown": HELP_MARKDOWN}
        return inspect(_blank_magic_lines(code), cursor, self.model, tables_hint=self.last_tables or None)


# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------


def _quiet(store: Store) -> None:
    """No DuckDB progress bar: `connect()` already switches it off before locking the session."""
    del store


def _split(argument: str, magic: str) -> list[str]:
    try:
        return shlex.split(argument)
    except ValueError as error:
        raise CommerceQLMagicError(f"cannot read the argument of %{magic}: {error}") from None


def _single_argument(argument: str, magic: str) -> str:
    words = _split(argument, magic)
    if len(words) > 1:
        raise CommerceQLMagicError(
            f"%{magic} takes one argument, got {len(words)}",
            hint="quote a path with spaces: %connect 'my store'" if magic == "connect" else (MAGICS[magic][0] if magic in MAGICS else None),
        )
    return words[0] if words else ""


def _inside_text(code: str, position: int) -> bool:
    """True when `position` is inside a multi-line string or block comment of the query text."""
    _, state = scan(_blank_magic_lines(code[:position]))
    return state in ("string", "block_comment")


def _blank_magic_lines(code: str) -> str:
    """The code with `%magic` lines replaced by spaces (same length, so positions stay valid)."""
    out: list[str] = []
    for line in code.split("\n"):
        if line.lstrip().startswith("%") and not _inside_text_fast(out):
            out.append(" " * len(line))
        else:
            out.append(line)
    return "\n".join(out)


def _inside_text_fast(lines_so_far: list[str]) -> bool:
    if not lines_so_far:
        return False
    _, state = scan("\n".join(lines_so_far))
    return state in ("string", "block_comment")


def _simple_completion(matches: Iterable[str], start: int, end: int, kind: str) -> Completion:
    names = list(matches)
    meta = [{"start": start, "end": end, "text": m, "type": kind, "signature": ""} for m in names]
    return Completion(names, start, end, {"_jupyter_types_experimental": meta}, [kind] * len(names))


def _paths(partial: str) -> list[str]:
    base = Path(partial).expanduser()
    if partial.endswith("/") or partial == "":
        folder, stem = (base if partial else Path(".")), ""
    else:
        folder, stem = base.parent, base.name
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return []
    out = []
    prefix = partial[: len(partial) - len(stem)]
    for entry in entries:
        if not entry.name.startswith(stem) or entry.name.startswith(".") and not stem.startswith("."):
            continue
        if entry.is_dir():
            out.append(f"{prefix}{entry.name}/")
        elif entry.suffix in (".duckdb", ".db"):
            out.append(f"{prefix}{entry.name}")
    return out[:200]
