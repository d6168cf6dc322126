"""IPython magics: CommerceQL inside Python notebooks.

    %load_ext commerceql

    %%cql                                   # display the table (and chart); the Result goes in `_cql`
    FROM sales SHOW net_sales GROUP BY month DURING last_year VISUALIZE net_sales

    %%cql by_channel --data path/to/store   # store the Result as `by_channel`, query another store
    FROM sales SHOW net_sales GROUP BY sales_channel

    result = %cql FROM sales SHOW net_sales WHERE billing_region = {region}
    result.df                               # the Polars DataFrame

    %cql_connect path/to/store              # the store later magics use (no PATH: the sample store)

`{python expression}` in the query text (outside 'strings' and comments) is evaluated in the
notebook's namespace and written into the query as a CommerceQL literal with
`commerceql.formatter.format_value`: strings are quoted (a `'` inside doubled), so quotes, `--`,
`;`, newlines or `OR 1=1` in a value stay inside that value; lists, tuples and sets become
`('a', 'b')` for IN; dates become `2025-01-31`; numbers, booleans and None become literals.

Errors are shown as the rendered CommerceQL message (line, caret, hint), never as a Python
traceback; the cell still fails, so "Run all" stops there.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from IPython.core.magic import (
    Magics,
    line_cell_magic,
    line_magic,
    magics_class,
    needs_local_scope,
    no_var_expand,
)

from commerceql.ast import Span
from commerceql.errors import CommerceQLError

if TYPE_CHECKING:
    from commerceql.result import Result
    from commerceql.store import Store
    from commerceql.widgets import LiveWidgets

__all__ = ["CommerceQLMagics", "interpolate", "load_ipython_extension", "notebook_chart_bundle"]

DEFAULT_RESULT_NAME = "_cql"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class CommerceQLMagicError(CommerceQLError):
    """A magic that cannot run as written (bad option, failed interpolation, ...)."""

    kind = "magic error"


def _show_without_traceback(error: CommerceQLError) -> CommerceQLError:
    """Make IPython show only the rendered message when `error` escapes a magic."""
    lines = error.render().splitlines()
    error._render_traceback_ = lambda: lines  # type: ignore[attr-defined]
    return error


def notebook_chart_bundle(chart: Any) -> dict[str, Any]:
    """The chart's display bundle (Vega-Lite v5 for JupyterLab, see `display.chart_mimebundle`).

    `chart` is a Vega-Lite spec (`Result.vegalite_spec`) or an Altair chart.
    """
    from commerceql.display import chart_mimebundle

    return chart_mimebundle(chart)


# ---------------------------------------------------------------------------------------------
# Interpolation
# ---------------------------------------------------------------------------------------------


def _span(text: str, start: int, end: int) -> Span:
    line = text.count("\n", 0, start) + 1
    column = start - (text.rfind("\n", 0, start) + 1) + 1
    end_line = text.count("\n", 0, end) + 1
    end_column = end - (text.rfind("\n", 0, end) + 1) + 1
    return Span(line, column, end_line, end_column, start, end)


class _Refused(TypeError):
    """A value `{...}` cannot insert (the message says why)."""


#: The exact built-in containers a value for IN may be, with the iterator of each: a subclass is
#: read through the built-in iterator, so an overridden `__iter__` cannot change what is inserted.
_CONTAINERS: tuple[tuple[type, Any], ...] = (
    (list, list.__iter__),
    (tuple, tuple.__iter__),
    (frozenset, frozenset.__iter__),
    (set, set.__iter__),
)


def _exact_scalar(value: Any) -> Any:
    """`value` as an exact built-in scalar, read from its built-in data, never from its methods.

    A subclass of str / int / float / Decimal / date / datetime can override `__str__`,
    `__format__`, `replace`, `isoformat`... and so decide what text `format_value` would write
    (for example a str whose `replace` does not double quotes). The unbound built-in methods used
    here (`str.__str__(v)`, `int.__int__(v)`, the C getters of date fields) return a new exact
    built-in object with the value's own data, whatever the subclass overrides.
    """
    # type(value), not isinstance(): isinstance also believes an overridden `__class__`.
    kind = type(value)
    if value is None or kind is bool:  # bool cannot be subclassed
        return value
    if issubclass(kind, str):
        return str.__str__(value)
    if issubclass(kind, int):
        return int.__int__(value)
    if issubclass(kind, float):
        return float.__float__(value)
    if issubclass(kind, Decimal):
        return Decimal(Decimal.__str__(value))
    if issubclass(kind, dt.datetime):
        if dt.datetime.tzinfo.__get__(value) is not None:
            raise _Refused("a date-time with a time zone cannot be written; use a naive one and WITH TIMEZONE")
        day = dt.date.fromordinal(dt.date.toordinal(value))
        return dt.datetime(
            day.year,
            day.month,
            day.day,
            dt.datetime.hour.__get__(value),
            dt.datetime.minute.__get__(value),
            dt.datetime.second.__get__(value),
            dt.datetime.microsecond.__get__(value),
        )
    if issubclass(kind, dt.date):
        return dt.date.fromordinal(dt.date.toordinal(value))
    raise _Refused(f"a {_type_name(value)} cannot be written as a CommerceQL value")


def _type_name(value: Any) -> str:
    # type.__name__ read through `type`, not through the value (which could lie about its class).
    return type.__dict__["__name__"].__get__(type(value))  # type: ignore[no-any-return]


def _array_values(value: Any) -> tuple[bool, Any]:
    """(True, plain values) for a polars / pandas Series, pandas Index, numpy array or scalar.

    Only these known types are asked for their values (`to_list()`, `tolist()`, `item()`), and
    what they return goes through the same strict conversion as any other value. An arbitrary
    object with a `to_list` method is refused: its result could be anything.
    """
    polars = sys.modules.get("polars")
    if polars is not None and isinstance(value, polars.Series):
        return True, value.to_list()
    pandas = sys.modules.get("pandas")
    if pandas is not None and isinstance(value, pandas.Series | pandas.Index):
        return True, value.tolist()
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        if isinstance(value, numpy.ndarray):
            return True, value.tolist()
        if isinstance(value, numpy.generic) and not isinstance(value, str | int | float):
            return True, value.item()  # numpy.int64, numpy.bool_, numpy.datetime64 ...
    return False, None


def _exact_value(value: Any, *, in_list: bool = False) -> Any:
    """`value` built only of exact built-in types `format_value` writes safely, or `_Refused`.

    Scalars go through `_exact_scalar`; lists, tuples and sets (for IN) element by element with
    the same rules; Series and arrays through their plain values (see `_array_values`).
    """
    for container, iterate in _CONTAINERS:
        if issubclass(type(value), container):
            if in_list:
                raise _Refused("lists of lists cannot be written")
            items = [_exact_value(item, in_list=True) for item in iterate(value)]
            return set(items) if container in (set, frozenset) else items
    known, plain = _array_values(value)
    if known:
        if isinstance(plain, list) and in_list:
            raise _Refused("lists of lists cannot be written")
        return _exact_value(plain, in_list=in_list)
    return _exact_scalar(value)


def interpolate(text: str, namespace: Mapping[str, Any], local_namespace: Mapping[str, Any] | None = None) -> str:
    """Replace each `{expression}` outside strings, quoted names and comments by its value as a literal.

    `{{` and `}}` stand for literal braces. Raises CommerceQLMagicError (pointing at the
    placeholder) when an expression fails or its value cannot be written as a CommerceQL literal.
    """
    from commerceql.formatter import format_value

    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            j = i + 1
            while j < n:
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:
                        j += 2
                        continue
                    j += 1
                    break
                j += 1
            else:
                j = n
            out.append(text[i:j])
            i = j
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(text[i:j])
            i = j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(text[i:j])
            i = j
            continue
        if text.startswith("{{", i) or text.startswith("}}", i):
            out.append(ch)
            i += 2
            continue
        if ch == "{":
            end = _closing_brace(text, i)
            if end < 0:
                raise CommerceQLMagicError(
                    "this `{` has no closing `}`",
                    span=_span(text, i, i + 1),
                    source=text,
                    hint="write {name} to insert a Python value, or {{ for a literal brace",
                )
            expression = text[i + 1 : end].strip()
            span = _span(text, i, end + 1)
            if not expression:
                raise CommerceQLMagicError("empty `{}`: write a Python name or expression inside", span=span, source=text)
            try:
                value = eval(expression, dict(namespace), dict(local_namespace or {}))  # noqa: S307 - the user's own notebook
            except Exception as error:
                raise CommerceQLMagicError(
                    f"cannot evaluate `{expression}`: {type(error).__name__}: {error}", span=span, source=text
                ) from None
            try:
                out.append(format_value(_exact_value(value)))
            except Exception as error:  # noqa: BLE001 - a refused value, or a Series method that failed
                raise CommerceQLMagicError(
                    f"cannot insert the value of `{expression}` into the query: {error}",
                    span=span,
                    source=text,
                    hint="insert strings, numbers, booleans, None, dates, or a non-empty list of those (for IN)",
                ) from None
            i = end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """The `}` matching the `{` at `start` (nested braces and Python strings inside are skipped)."""
    depth = 0
    i = start
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        elif ch == "\n" and depth == 1:
            return -1
        i += 1
    return -1


# ---------------------------------------------------------------------------------------------
# Options of the magic line
# ---------------------------------------------------------------------------------------------


@dataclass
class _Options:
    name: str = DEFAULT_RESULT_NAME
    data: str | None = None
    sql: bool = False
    quiet: bool = False
    static: bool = False  # VISUALIZE results without the control bar (plain table and chart)


_LINE_OPTION = re.compile(r"\s*--(data|sql|quiet)\b(?:[ =]\s*)?")


def _parse_cell_options(line: str) -> _Options:
    """`%%cql [NAME] [--data PATH] [--sql] [--quiet]`."""
    try:
        words = shlex.split(line)
    except ValueError as error:
        raise CommerceQLMagicError(f"cannot read the options of %%cql: {error}") from None
    options = _Options()
    index = 0
    named = False
    while index < len(words):
        word = words[index]
        if word in ("--data", "-d"):
            if index + 1 >= len(words):
                raise CommerceQLMagicError("--data needs a store path", hint="%%cql --data path/to/store")
            options.data = words[index + 1]
            index += 2
            continue
        if word.startswith("--data="):
            options.data = word.split("=", 1)[1]
        elif word == "--sql":
            options.sql = True
        elif word == "--quiet":
            options.quiet = True
        elif word == "--static":
            options.static = True
        elif not named and _IDENTIFIER.match(word):
            options.name = word
            named = True
        else:
            raise CommerceQLMagicError(
                f"unexpected `{word}` after %%cql",
                hint="%%cql [result_name] [--data PATH] [--sql] [--quiet] [--static]",
            )
        index += 1
    return options


_PATH_TOKEN = re.compile(r"""\s*('[^']*'|"[^"]*"|\S+)""")


def _parse_line_options(line: str) -> tuple[_Options, str]:
    """Leading `--data PATH`, `--sql`, `--quiet` of the line magic; the rest is the query."""
    options = _Options()
    rest = line
    while True:
        match = _LINE_OPTION.match(rest)
        if not match:
            break
        option = match.group(1)
        rest = rest[match.end() :]
        if option == "data":
            path = _PATH_TOKEN.match(rest)
            if not path:
                raise CommerceQLMagicError("--data needs a store path", hint="%cql --data path/to/store FROM sales SHOW orders")
            token = path.group(1)
            options.data = token[1:-1] if token[0] in "'\"" and len(token) > 1 else token
            rest = rest[path.end() :]
        elif option == "sql":
            options.sql = True
        else:
            options.quiet = True
    return options, rest


def _interruptible(store: Store, work: Any) -> Any:
    """Run `work()` so that Ctrl-C / the notebook's interrupt cancels the DuckDB query."""
    from commerceql.store import CommerceQLInterrupted, run_interruptibly

    try:
        return run_interruptibly(work, store.interrupt)
    except CommerceQLInterrupted:
        raise CommerceQLMagicError("query interrupted") from None


# ---------------------------------------------------------------------------------------------
# The magics
# ---------------------------------------------------------------------------------------------


@magics_class
class CommerceQLMagics(Magics):
    """`%cql`, `%%cql` and `%cql_connect`."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self._store: Store | None = None
        self._stores: dict[str, Store] = {}
        # Control bars this magic displayed and has not closed (see `commerceql.widgets.LiveWidgets`):
        # a re-run cell closes those of its previous run, and at most `live.limit` stay open.
        self._live: LiveWidgets | None = None
        self.current_cell: str | None = None

    @property
    def live(self) -> LiveWidgets:
        if self._live is None:
            from commerceql.widgets import LiveWidgets

            self._live = LiveWidgets()
        return self._live

    def before_cell(self, info: Any = None) -> None:
        """IPython's pre_run_cell event: note the cell's id and close its previous run's bars.

        JupyterLab and Notebook 7 send a cellId with every execution; ipykernel hands it to
        IPython as `info.cell_id`. Without one (terminal IPython, older frontends), only the
        limit on open bars applies.
        """
        try:
            cell = getattr(info, "cell_id", None)
            self.current_cell = cell if isinstance(cell, str) and cell else None
            if self._live is not None and self.current_cell:
                self._live.close_cell(self.current_cell)
        except Exception:  # noqa: BLE001 - an event callback must never print a traceback
            self.current_cell = None

    # -- stores ----------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The store `%cql` uses: the one given to `%cql_connect`, else the bundled sample store."""
        if self._store is None:
            from commerceql.store import connect

            self._store = connect()
        return self._store

    def _store_for(self, path: str | None) -> Store:
        if not path:
            return self.store
        key = str(Path(path).expanduser().resolve())
        if key not in self._stores:
            from commerceql.store import connect

            self._stores[key] = connect(path)
        return self._stores[key]

    @line_magic
    def controls(self, line: str) -> Any:
        """`%controls [result_name]`: the control bar (explore widget) for a stored result (default `_cql`)."""
        from commerceql.result import Result

        name = line.strip() or DEFAULT_RESULT_NAME
        result = self.shell.user_ns.get(name) if self.shell is not None else None
        if not isinstance(result, Result):
            raise _show_without_traceback(
                CommerceQLMagicError(
                    f"`{name}` is not a CommerceQL result",
                    hint="run a %%cql cell first, or name a result: %controls my_result",
                )
            )
        widget = result.widget()
        self.live.add(widget, cell=self.current_cell)  # returned, so IPython displays it (no display id)
        return widget

    @line_magic
    def cql_connect(self, line: str) -> Store:
        """%cql_connect [PATH] [--engine spark] [--spark-remote sc://...] — open a store for the next %cql.

        Without PATH, the bundled sample store. Returns the Store.
        """
        from commerceql.store import connect, connect_arguments

        try:
            path, options = connect_arguments(shlex.split(line))
            store = connect(path, **options)
        except ValueError as error:
            raise _show_without_traceback(CommerceQLMagicError(f"cannot read the path: {error}")) from None
        except CommerceQLError as error:
            raise _show_without_traceback(error) from None
        self._store = store
        return store

    # -- queries -----------------------------------------------------------------------------
    @no_var_expand
    @needs_local_scope
    @line_cell_magic
    def cql(self, line: str, cell: str | None = None, local_ns: Mapping[str, Any] | None = None) -> Any:
        """Run CommerceQL.

        Line magic: `result = %cql [--data PATH] [--sql] QUERY` returns the Result of the query
        (its `.df` is the Polars DataFrame; shown as a formatted table when it is the last line).
        With `--sql` it returns the compiled SQL text instead.

        Cell magic: `%%cql [NAME] [--data PATH] [--sql] [--quiet]` runs every query of the cell
        (separated by `;`), displays each table and chart, and stores the last Result in the
        variable NAME (default `_cql`). `--sql` shows the compiled SQL instead of running;
        `--quiet` stores the Result without displaying it.

        `{python_expression}` inserts a Python value as a safely quoted CommerceQL literal.
        """
        namespace = self.shell.user_ns if self.shell is not None else {}
        try:
            if cell is None:
                options, text = _parse_line_options(line)
                return self._run_line(text, options, namespace, local_ns)
            options = _parse_cell_options(line)
            self._run_cell(cell, options, namespace, local_ns)
            return None
        except CommerceQLError as error:
            raise _show_without_traceback(error) from None
        except Exception as error:  # a bug in CommerceQL: still no wall of traceback
            failure = CommerceQLMagicError(
                f"internal error: {type(error).__name__}: {error}",
                hint="this is a bug in CommerceQL; please report it with the query",
            )
            raise _show_without_traceback(failure) from error

    def _run_line(self, text: str, options: _Options, namespace: Mapping[str, Any], local_ns: Any) -> Any:
        from commerceql.parser import parse

        query_text = interpolate(text, namespace, local_ns)
        if not query_text.strip():
            raise CommerceQLMagicError("%cql needs a query", hint="result = %cql FROM sales SHOW net_sales")
        store = self._store_for(options.data)
        query = parse(query_text)
        if options.sql:
            return store.explain(query)
        return _interruptible(store, lambda: store.query(query))

    def _run_cell(self, cell: str, options: _Options, namespace: Mapping[str, Any], local_ns: Any) -> None:
        from IPython.display import Markdown, display

        from commerceql.parser import parse_script

        query_text = interpolate(cell, namespace, local_ns)
        store = self._store_for(options.data)
        queries = parse_script(query_text)
        if not queries:
            raise CommerceQLMagicError("the cell has no query", hint="%%cql\nFROM sales SHOW net_sales")
        if options.sql:
            for query in queries:
                sql = store.explain(query).rstrip().rstrip(";") + ";"
                display({"text/plain": sql, "text/markdown": Markdown(f"```sql\n{sql}\n```").data}, raw=True)
            return
        result: Result | None = None
        for query in queries:
            result = _interruptible(store, lambda query=query: store.query(query))
            if self.shell is not None:
                self.shell.user_ns[options.name] = result
            if options.quiet:
                continue
            if result.has_chart and not options.static:
                # The control bar shows the chart and the table and lets readers switch views.
                widget = result.widget()
                handle = display(widget, display_id=True)
                self.live.add(widget, cell=self.current_cell, retire=self._retirer(handle))
                continue
            display(result)
            spec = result.vegalite_spec  # a plain dict: Altair is never imported to show a chart
            if spec is not None:
                display(notebook_chart_bundle(spec), raw=True)


    def _retirer(self, handle: Any) -> Any:
        """What replaces a retired control bar in its cell: its last view, without controls."""

        def retire(widget: Any) -> None:
            from commerceql.widgets import RETIRED_NOTE

            if handle is not None:
                handle.update(widget.static_bundle(RETIRED_NOTE.format(limit=self.live.limit)), raw=True)

        return retire


_LINE_MAGIC = re.compile(r"%cql(?=\s)\s*((?:--(?:data(?:[ =]\s*(?:'[^']*'|\"[^\"]*\"|\S+))?|sql|quiet)\s+)*)")


def _query_at_cursor(full_text: str, cursor: int) -> tuple[str, int] | None:
    """The CommerceQL text of a `%%cql` cell or a `%cql` line around `cursor`, and the cursor in it."""
    first_line_end = full_text.find("\n")
    if full_text.lstrip().startswith("%%cql") and first_line_end >= 0:
        if cursor <= first_line_end:
            return None
        return full_text[first_line_end + 1 :], cursor - first_line_end - 1
    line_start = full_text.rfind("\n", 0, cursor) + 1
    line_end = full_text.find("\n", cursor)
    line = full_text[line_start : len(full_text) if line_end < 0 else line_end]
    match = _LINE_MAGIC.search(line)
    if match is None or line_start + match.end() > cursor:
        return None
    return line[match.end() :], cursor - line_start - match.end()


def _make_matcher(magics: CommerceQLMagics) -> Any:
    """An IPython (API v2) completion matcher: CommerceQL completion inside %%cql cells and %cql lines."""
    from IPython.core.completer import SimpleCompletion, context_matcher

    from commerceql.completion import complete

    @context_matcher()
    def commerceql_matcher(context: Any) -> dict[str, Any]:
        nothing: dict[str, Any] = {"completions": [], "suppress": False}
        try:
            lines = context.full_text.split("\n")
            cursor = sum(len(line) + 1 for line in lines[: context.cursor_line]) + context.cursor_position
            found = _query_at_cursor(context.full_text, cursor)
            if found is None:
                return nothing
            text, position = found
            store = magics._store
            if store is not None:
                model = store.model
            else:
                from commerceql.model.semantic import builtin_model

                model = builtin_model()
            completion = complete(text, position, model)
        except Exception:  # completion must never break the notebook
            return nothing
        fragment = text[completion.cursor_start : position]
        return {
            "completions": [
                SimpleCompletion(text=m, type=t) for m, t in zip(completion.matches, completion.types, strict=False)
            ],
            "matched_fragment": fragment,
            "suppress": True,
            "ordered": True,
        }

    return commerceql_matcher


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext commerceql`: register `%cql`, `%%cql` and `%cql_connect`, and CommerceQL tab completion."""
    magics = CommerceQLMagics(ipython)
    ipython.register_magics(magics)
    events = getattr(ipython, "events", None)
    if events is not None:
        events.register("pre_run_cell", magics.before_cell)
    completer = getattr(ipython, "Completer", None)
    if completer is not None and hasattr(completer, "custom_matchers"):
        try:
            matcher = _make_matcher(magics)
        except ImportError:  # an IPython without the v2 matcher API: no completion, magics still work
            return
        completer.custom_matchers[:] = [
            m for m in completer.custom_matchers if getattr(m, "__name__", "") != "commerceql_matcher"
        ]
        completer.custom_matchers.append(matcher)


def unload_ipython_extension(ipython: Any) -> None:  # pragma: no cover - IPython keeps magics registered
    pass
