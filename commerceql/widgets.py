"""Explore a query without editing it: controls for dimension, dates, grain, comparison, chart, metrics.

Two layers:

* A pure **state → query** layer, usable and testable without any widget:

      state = state_from_query(query, store.model)           # what the controls would show
      state = dataclasses.replace(state, dimension="billing_region", date_range="last_quarter")
      new_query = apply_state(query, state)                   # an ast.Query (dataclasses.replace)
      format_query(new_query)                                 # the equivalent text

  `apply_state` only rewrites the clauses whose control differs from the query, so
  `apply_state(q, state_from_query(q)) == q` and everything the controls do not cover (WHERE,
  HAVING, TOP n, WITH, LIMIT, aliases, arithmetic in SHOW) is kept as the analyst wrote it.

* `ExploreWidget(store, query)`, an ipywidgets VBox with a control bar, a status line, the
  equivalent query text, the chart and the table. Every change rewrites the analyst's query
  through `apply_state`, runs it and updates the chart and the table in place. Impossible choices
  are prevented (comparison is disabled for "All time") or explained in the status line; errors
  are shown there, never raised into the notebook.

  Updates are compact: a chart type change runs no statement (the rows shown are reused); the
  table HTML is sent to the page only when its rows changed and the chart output only when its
  spec changed, table first and chart last (see `_show_view`); the last `VIEW_CACHE_SIZE` views
  are kept, so going back to a combination shown before runs and draws nothing.

`store.explore(query)` and `result.widget()` return an `ExploreWidget`.
`python -m commerceql.widgets --measure` prints how long a control change takes on the sample store.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import os
import statistics
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets

from commerceql import ast
from commerceql.dates import CYCLICAL_DIMENSIONS, NAMED_RANGES, TIME_GRAINS
from commerceql.errors import CommerceQLError, CommerceQLNameError, CommerceQLSemanticError
from commerceql.resolver import LEGACY_TABLES

if TYPE_CHECKING:
    from commerceql.model.semantic import SemanticModel, Table
    from commerceql.result import Result
    from commerceql.store import Store

__all__ = [
    "ALL_TIME",
    "AS_WRITTEN",
    "AUTO",
    "COMPARISONS",
    "CUSTOM",
    "DATE_RANGES",
    "GRAINS",
    "ExploreState",
    "ExploreStateError",
    "ExploreWidget",
    "LiveWidgets",
    "apply_state",
    "close_widget_tree",
    "measure_latency",
    "state_from_query",
]

# ---------------------------------------------------------------------------------------------
# Vocabulary of the controls
# ---------------------------------------------------------------------------------------------

#: Date range value: no SINCE / UNTIL / DURING (a TIMESERIES query then uses its default period).
ALL_TIME = "all_time"
#: Date range value: SINCE <custom_from> [UNTIL <custom_to>], both inclusive calendar dates.
CUSTOM = "custom"
#: Value of the date range, comparison or chart type control meaning "keep the query's own clause"
#: (offered when the query uses something the control cannot express, e.g. `SINCE -30d`).
AS_WRITTEN = "as_written"
#: Chart type value: VISUALIZE without TYPE (CommerceQL picks the type from the result's shape).
AUTO = "auto"
#: Set to "1" in the environment of every kernel `commerceql serve` starts: its bars cannot export.
DASHBOARD_ENV = "COMMERCEQL_DASHBOARD"

#: Named ranges offered by the date range control (plus BFCM of recent years, "All time", "Custom").
DATE_RANGES: tuple[str, ...] = tuple(name for name in NAMED_RANGES if not name.startswith("bfcm"))
#: Time grains offered by the grain control (TIMESERIES); None means no time grain.
GRAINS: tuple[str, ...] = ("day", "week", "month", "quarter", "year")
#: Comparisons offered by the comparison control (COMPARE TO); None means no comparison.
COMPARISONS: tuple[str, ...] = ("previous_period", "previous_year", "previous_year_match_day_of_week")

NOTEBOOK_QUERY = (
    "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar"
)


class ExploreStateError(CommerceQLSemanticError):
    """A combination of control values that cannot become a query (no metric, reversed dates...)."""

    kind = "not possible"


@dataclass(frozen=True)
class ExploreState:
    """What the controls show. `None` means "none" for dimension, grain, comparison and chart type.

    * dimension: the grouping dimension (the first non-time GROUP BY entry), or None.
    * date_range: a named range (`last_quarter`, `bfcm2024`, ...), `ALL_TIME`, `CUSTOM` or `AS_WRITTEN`.
    * custom_from / custom_to: the inclusive dates of a `CUSTOM` range (custom_to None = until now).
    * grain: the TIMESERIES grain (or a time grain in GROUP BY), or None.
    * comparison: a COMPARE TO operator, None, or `AS_WRITTEN`.
    * chart_type: a chart type, `AUTO` (VISUALIZE without TYPE), `AS_WRITTEN`, or None (no chart).
    * metrics: the model metrics in SHOW, in order.
    """

    dimension: str | None = None
    date_range: str = ALL_TIME
    custom_from: dt.date | None = None
    custom_to: dt.date | None = None
    grain: str | None = None
    comparison: str | None = None
    chart_type: str | None = None
    metrics: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Reading a query
# ---------------------------------------------------------------------------------------------


def _is_name(expression: Any, name: str | None = None) -> bool:
    return (
        isinstance(expression, ast.Identifier)
        and not expression.quoted
        and (name is None or expression.name == name)
    )


def _grouped_names(query: ast.Query) -> set[str]:
    names = {item.dimension.name for item in query.group_by}
    if query.timeseries is not None:
        names.add(query.timeseries.name)
    return names


def _metric_positions(query: ast.Query) -> list[int]:
    """Indexes of the SHOW items that are plain metric names (not a grouped or time dimension)."""
    grouped = _grouped_names(query)
    positions = []
    for index, item in enumerate(query.show):
        expression = item.expression
        if not _is_name(expression):
            continue
        name = expression.name
        if name in grouped or name in TIME_GRAINS or name in CYCLICAL_DIMENSIONS:
            continue
        positions.append(index)
    return positions


def _query_metrics(query: ast.Query) -> tuple[str, ...]:
    names: list[str] = []
    for index in _metric_positions(query):
        name = query.show[index].expression.name  # type: ignore[union-attr]
        if name not in names:
            names.append(name)
    return tuple(names)


def _metric_outputs(query: ast.Query) -> dict[str, str]:
    """Metric name -> its output column name (the alias when SHOW renames it)."""
    outputs: dict[str, str] = {}
    for index in _metric_positions(query):
        item = query.show[index]
        name = item.expression.name  # type: ignore[union-attr]
        outputs.setdefault(name, item.alias.name if item.alias is not None else name)
    return outputs


def _query_dimension(query: ast.Query) -> str | None:
    for item in query.group_by:
        if item.dimension.name not in TIME_GRAINS:
            return item.dimension.name
    return None


def _query_grain(query: ast.Query) -> str | None:
    if query.timeseries is not None:
        return query.timeseries.name
    for item in query.group_by:
        if item.dimension.name in TIME_GRAINS:
            return item.dimension.name
    return None


def _is_calendar_date(node: Any) -> bool:
    return isinstance(node, ast.AbsoluteDate) and not isinstance(node.value, dt.datetime)


def _query_dates(query: ast.Query) -> tuple[str, dt.date | None, dt.date | None]:
    if query.since is None and query.until is None:
        if query.during is None:
            return ALL_TIME, None, None
        return query.during.name, None, None
    if query.during is None and _is_calendar_date(query.since) and (
        query.until is None or _is_calendar_date(query.until)
    ):
        until = query.until.value if query.until is not None else None  # type: ignore[union-attr]
        return CUSTOM, query.since.value, until  # type: ignore[union-attr]
    return AS_WRITTEN, None, None


def _query_comparison(query: ast.Query) -> str | None:
    if not query.compare_to:
        return None
    if len(query.compare_to) == 1:
        target = query.compare_to[0]
        if target.operator is not None and target.start is None and target.until is None:
            return target.operator
    return AS_WRITTEN


def _query_chart_type(query: ast.Query) -> str | None:
    from commerceql.charts import propagate_chart_types

    if query.visualize is None:
        return None
    types = propagate_chart_types(
        [item.chart_type.name.lower() if item.chart_type is not None else None for item in query.visualize.items]
    )
    if all(t is None for t in types):
        return AUTO
    if None not in types and len(set(types)) == 1:
        return types[0]
    return AS_WRITTEN


def state_from_query(query: ast.Query, model: SemanticModel | None = None) -> ExploreState:
    """The control values that describe `query` (checked against `model` when one is given)."""
    if model is not None:
        _query_table(query, model)
    date_range, custom_from, custom_to = _query_dates(query)
    return ExploreState(
        dimension=_query_dimension(query),
        date_range=date_range,
        custom_from=custom_from,
        custom_to=custom_to,
        grain=_query_grain(query),
        comparison=_query_comparison(query),
        chart_type=_query_chart_type(query),
        metrics=_query_metrics(query),
    )


def _query_table(query: ast.Query, model: SemanticModel) -> Table:
    from commerceql.errors import did_you_mean

    if not query.tables:
        raise CommerceQLSemanticError("the query has no FROM table to explore")
    name = query.tables[0].name
    table = model.table(name)
    if table is None and name in LEGACY_TABLES and LEGACY_TABLES[name].always:
        table = model.table(LEGACY_TABLES[name].current)  # FROM visits explores sessions
    if table is None:
        raise CommerceQLNameError(f"unknown table `{name}`", span=query.tables[0].span, hint=did_you_mean(name, model.tables))
    return table


# ---------------------------------------------------------------------------------------------
# Rewriting a query (AST only: dataclasses.replace, never text)
# ---------------------------------------------------------------------------------------------


def _rename_items(items: Iterable[Any], attribute: str, old: str, new: str | None) -> tuple[Any, ...]:
    """Items whose `attribute` is the plain name `old` renamed to `new` (dropped when new is None)."""
    out = []
    for item in items:
        value = getattr(item, attribute)
        if _is_name(value, old):
            if new is None:
                continue
            item = replace(item, **{attribute: ast.Identifier(new)})
        out.append(item)
    return tuple(out)


def _without_duplicate_groups(items: Iterable[ast.GroupItem]) -> tuple[ast.GroupItem, ...]:
    seen: set[str] = set()
    out = []
    for item in items:
        if item.dimension.name in seen:
            continue
        seen.add(item.dimension.name)
        out.append(item)
    return tuple(out)


def _set_dimension(query: ast.Query, old: str | None, new: str | None) -> ast.Query:
    group = list(query.group_by)
    if old is None:
        assert new is not None
        group.append(ast.GroupItem(ast.Identifier(new)))
    else:
        index = next(i for i, item in enumerate(group) if item.dimension.name == old)
        if new is None:
            del group[index]
        else:  # keeps TOP n / ONLY / OVERALL
            group[index] = replace(group[index], dimension=ast.Identifier(new))
    show, order_by = query.show, query.order_by
    if old is not None:
        show = _rename_items(show, "expression", old, new)
        order_by = _rename_items(order_by, "column", old, new)
    return replace(query, group_by=_without_duplicate_groups(group), show=show, order_by=order_by)


def _set_grain(query: ast.Query, old: str | None, new: str | None) -> ast.Query:
    if old is None:
        assert new is not None
        return replace(query, timeseries=ast.Identifier(new))
    timeseries = query.timeseries
    if timeseries is not None and timeseries.name == old:
        timeseries = ast.Identifier(new) if new is not None else None
    return replace(
        query,
        timeseries=timeseries,
        group_by=_without_duplicate_groups(
            replace(item, dimension=ast.Identifier(new)) if item.dimension.name == old and new else item
            for item in query.group_by
            if not (item.dimension.name == old and new is None)
        ),
        show=_rename_items(query.show, "expression", old, new),
        order_by=_rename_items(query.order_by, "column", old, new),
    )


def _set_dates(query: ast.Query, state: ExploreState) -> ast.Query:
    if state.date_range == ALL_TIME:
        return replace(query, since=None, until=None, during=None)
    if state.date_range == CUSTOM:
        assert state.custom_from is not None
        until = ast.AbsoluteDate(state.custom_to) if state.custom_to is not None else None
        return replace(query, since=ast.AbsoluteDate(state.custom_from), until=until, during=None)
    return replace(query, during=ast.NamedDate(state.date_range), since=None, until=None)


def _is_comparison_column(name: str) -> bool:
    return name.startswith("comparison_") or name.startswith("percent_change_")


def _set_comparison(query: ast.Query, comparison: str | None) -> ast.Query:
    targets = () if comparison is None else (ast.CompareTarget(operator=comparison),)
    modifiers = query.with_modifiers
    if comparison is None:  # PERCENT_CHANGE needs a comparison
        modifiers = tuple(m for m in modifiers if m.name.upper() != "PERCENT_CHANGE")
    # Ordering by a comparison column of the old comparison would name a column that is gone.
    order_by = tuple(item for item in query.order_by if not _is_comparison_column(item.column.name))
    return replace(query, compare_to=targets, with_modifiers=modifiers, order_by=order_by)


def _typed_items(items: Sequence[ast.VisualizeItem], chart_type: str | None) -> tuple[ast.VisualizeItem, ...]:
    """One chart type for every item: TYPE after the last item only (TYPE applies to earlier ones)."""
    if chart_type in (None, AS_WRITTEN):
        return tuple(items)
    out = [replace(item, chart_type=None) for item in items]
    if chart_type != AUTO and out:
        out[-1] = replace(out[-1], chart_type=ast.Identifier(chart_type))
    return tuple(out)


def _set_metrics(query: ast.Query, old: tuple[str, ...], new: tuple[str, ...], chart_type: str | None) -> ast.Query:
    positions = set(_metric_positions(query))
    existing = {query.show[i].expression.name: query.show[i] for i in sorted(positions, reverse=True)}  # type: ignore[union-attr]
    new_items = [existing.get(name) or ast.ShowItem(ast.Identifier(name)) for name in new]
    show: list[ast.ShowItem] = []
    inserted = False
    for index, item in enumerate(query.show):
        if index in positions:
            if not inserted:
                show.extend(new_items)
                inserted = True
            continue
        show.append(item)
    if not inserted:
        show.extend(new_items)

    old_outputs = _metric_outputs(query)
    removed = {old_outputs.get(name, name) for name in old if name not in new}
    added = [name for name in new if name not in old]

    visualize = query.visualize
    if visualize is not None:
        items = [item for item in visualize.items if not (isinstance(item.expression, ast.Identifier) and item.expression.name in removed)]
        added_items = [ast.VisualizeItem(ast.Identifier(name)) for name in added]
        if not items:
            items = [ast.VisualizeItem(ast.Identifier(existing[n].alias.name if n in existing and existing[n].alias else n)) for n in new]
        else:
            items += added_items
        visualize = replace(visualize, items=_typed_items(items, chart_type))

    def keeps(item: ast.OrderItem) -> bool:
        column = item.column.name
        if column in removed:
            return False
        return not any(column.startswith((f"comparison_{r}__", f"percent_change_{r}__")) for r in removed)

    order_by = tuple(item for item in query.order_by if keeps(item))
    return replace(query, show=tuple(show), visualize=visualize, order_by=order_by)


def _set_chart_type(query: ast.Query, chart_type: str | None) -> ast.Query:
    if chart_type is None:
        return replace(query, visualize=None)
    if query.visualize is not None:
        return replace(query, visualize=replace(query.visualize, items=_typed_items(query.visualize.items, chart_type)))
    outputs = list(dict.fromkeys(_metric_outputs(query).values()))
    targets = [ast.Identifier(name) for name in outputs]
    if not targets:  # only arithmetic in SHOW: chart what has an alias
        targets = [item.alias for item in query.show if item.alias is not None]
    if not targets:
        raise ExploreStateError(
            "there is no metric to chart", hint="add a metric, or give the SHOW expression an alias with AS"
        )
    items = [ast.VisualizeItem(target) for target in targets]
    return replace(query, visualize=ast.Visualize(items=_typed_items(items, chart_type)))


def _without_spans(node: Any) -> Any:
    """A copy of the tree with every span cleared (positions from the old text would mislead)."""
    if isinstance(node, tuple):
        items = tuple(_without_spans(item) for item in node)
        return node if all(a is b for a, b in zip(items, node, strict=True)) else items
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.name == "span":
                if value is not None:
                    changes["span"] = None
                continue
            cleaned = _without_spans(value)
            if cleaned is not value:
                changes[f.name] = cleaned
        return replace(node, **changes) if changes else node
    return node


def validate_state(state: ExploreState) -> None:
    """Raise ExploreStateError when the controls describe something that cannot be a query."""
    from commerceql.charts import validate_chart_type

    if not state.metrics:
        raise ExploreStateError("pick at least one metric", hint="select one or more metrics in the Metrics list")
    if state.dimension is not None and state.dimension in TIME_GRAINS:
        raise ExploreStateError(
            f"`{state.dimension}` is a time grain, not a dimension", hint="use the Grain control for time grains"
        )
    if state.date_range == CUSTOM:
        if state.custom_from is None:
            raise ExploreStateError("the custom date range needs a start date", hint="pick a From date")
        if state.custom_to is not None and state.custom_to < state.custom_from:
            raise ExploreStateError(
                f"the custom range ends ({state.custom_to.isoformat()}) before it starts ({state.custom_from.isoformat()})",
                hint="pick a To date on or after the From date",
            )
    if state.comparison not in (None, AS_WRITTEN):
        if state.comparison not in COMPARISONS and not state.comparison.startswith("previous_"):
            raise ExploreStateError(f"unknown comparison `{state.comparison}`", hint="use one of " + ", ".join(COMPARISONS))
        if state.date_range == ALL_TIME and state.grain is None:
            raise ExploreStateError(
                "a comparison needs a period to compare, and “All time” has none",
                hint="pick a date range (or a time grain), or set Compare to “none”",
            )
    if state.chart_type not in (None, AUTO, AS_WRITTEN):
        validate_chart_type(state.chart_type)


def apply_state(query: ast.Query, state: ExploreState) -> ast.Query:
    """`query` rewritten so that `state_from_query(result) == state`, changing only what differs.

    Raises ExploreStateError for impossible states (see `validate_state`). Returns `query` itself
    when nothing differs; otherwise a new tree (spans cleared, `source` empty).
    """
    validate_state(state)
    base = state_from_query(query)
    result = query
    if state.metrics != base.metrics:
        result = _set_metrics(result, base.metrics, state.metrics, state.chart_type)
    if state.dimension != base.dimension:
        result = _set_dimension(result, base.dimension, state.dimension)
    if state.grain != base.grain:
        result = _set_grain(result, base.grain, state.grain)
    if state.date_range != AS_WRITTEN and (state.date_range, state.custom_from, state.custom_to) != (
        base.date_range,
        base.custom_from,
        base.custom_to,
    ):
        result = _set_dates(result, state)
    if state.comparison != AS_WRITTEN and state.comparison != base.comparison:
        result = _set_comparison(result, state.comparison)
    if state.chart_type != AS_WRITTEN and state.chart_type != base.chart_type:
        result = _set_chart_type(result, state.chart_type)
    if result is query:
        return query
    return replace(_without_spans(result), source="")


# ---------------------------------------------------------------------------------------------
# The widget
# ---------------------------------------------------------------------------------------------

_NONE = ""  # the "none" entry of a Dropdown (widgets need a real value)

_CSS = """<style>
.cql-explore .cql-query textarea{font-family:SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
.cql-explore .cql-help{color:#6d7175;font-size:11px;line-height:1.3;max-width:260px;white-space:normal}
.cql-explore .cql-export-note{color:#6d7175;font-size:11px;overflow-wrap:anywhere}
.cql-explore .cql-status-ok{color:#4a4a4a;font-size:12px}
.cql-explore .cql-status-note{color:#8a6100;font-size:12px}
.cql-explore pre.cql-error{color:#b00020;background:#fff4f4;border:1px solid #f3c2c2;border-radius:4px;
  padding:6px 8px;margin:2px 0;white-space:pre-wrap;font-size:12px}
.cql-explore .cql-table-box{max-height:420px;overflow:auto}
.cql-explore .cql-chart{max-width:100%;overflow-x:auto}
</style>"""


def field_label(name: str) -> str:
    """What the controls show for a metric or dimension: the header its column gets in the table."""
    from commerceql.display import humanize

    return humanize(name)


def comparison_label(operator: str) -> str:
    """What the Compare to control shows for a COMPARE TO operator: "Previous year".

    The words the table headers and chart legends use ("Net sales (previous year)",
    `display.comparison_phrase`), capitalized as the first word of an option.
    """
    from commerceql.display import comparison_phrase

    phrase = comparison_phrase(operator)
    return phrase[:1].upper() + phrase[1:]


def chart_type_label(chart_type: str) -> str:
    """What the Chart control shows for a chart type: horizontal_bar -> "Horizontal bar"."""
    from commerceql.display import humanize

    return humanize(chart_type)


def _label(name: str) -> str:
    if name.startswith("bfcm") and name[4:].isdigit():
        return f"BFCM {name[4:]}"
    return name.replace("_", " ").capitalize()


def _error_html(text: str) -> str:
    return f'<pre class="cql-error">{html.escape(text)}</pre>'


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = max(0, min(len(ordered) - 1, round(q * (len(ordered) - 1))))
    return ordered[index]


#: Views an explore widget keeps (result, chart output, table HTML), most recent last: toggling a
#: control back to a state shown before re-shows its view without running or drawing anything.
#: Small: each view holds its rows and its chart's data (a bar of 500 rows is a few hundred KB).
VIEW_CACHE_SIZE = 8


@dataclass(frozen=True)
class _View:
    """What one query shows: its result, its chart output (or why it could not be drawn), its table."""

    result: Result
    vegalite_spec: dict[str, Any] | None
    chart_outputs: tuple[dict[str, Any], ...]
    chart_error: str | None
    table_html: str


def _view_key(compiled: Any) -> tuple[Any, ...]:
    """What decides a view: the statement and its parameters (the rows; named dates are resolved
    into the parameters, so "last month" a month later is another key) and the query (the chart,
    the headers). An open store reads one import version of its tables, so the rows cannot change
    under the same statement."""
    parameters = compiled.parameters
    items = tuple(sorted(parameters.items())) if isinstance(parameters, dict) else tuple(parameters or ())
    key = (compiled.sql, repr(items), tuple(compiled.columns), compiled.plan.query)
    try:
        hash(key)
    except TypeError:  # a tree holding a list somewhere: its text stands for it
        key = (*key[:3], repr(compiled.plan.query))
    return key


class ExploreWidget(ipywidgets.VBox):  # type: ignore[misc]
    """Controls over a query; changing one rewrites the query (AST), re-runs it and redraws.

        w = store.explore("FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month")
        w                          # last expression of a cell: shows it (so does display(w))
        w.update(dimension="billing_region", date_range="last_quarter", comparison="previous_year")
        w.query, w.query_text      # the current ast.Query and its canonical text
        w.result                   # the current Result (Polars DataFrame in .df)
        w.export_html("report.html")

    Attributes: `state` (ExploreState), `original` (the query the widget started from),
    `error` (the last CommerceQLError or None), `timings` (seconds per update), `controls`.
    """

    max_rows = 500

    def __init__(self, store: Store, query: str | ast.Query, result: Result | None = None, *, export_path: str | Path | None = None):
        super().__init__()
        from commerceql.parser import parse

        original = parse(query) if isinstance(query, str) else query
        self.store = store
        self.original: ast.Query = original
        self.table = _query_table(original, store.model)
        self.initial_state = state_from_query(original, store.model)
        self.state = self.initial_state
        self.query: ast.Query = original
        self.query_text = self._format(original)
        self.result: Result | None = None
        self.error: CommerceQLError | None = None
        self.notes: list[str] = []
        self.revision = 0
        self.timings: list[float] = []
        self.queries_run = 0  # statements sent to the store (a chart type change sends none)
        self.views_reused = 0  # updates answered from the views kept (`VIEW_CACHE_SIZE`)
        self.chart_updates = 0  # times a new chart output was sent to the browser
        self.table_updates = 0  # times a new table was sent to the browser
        self.table_revision = 0  # revision of the table's rows (the table's data-revision)
        self._views: OrderedDict[tuple[Any, ...], _View] = OrderedDict()
        self._shown_outputs: tuple[dict[str, Any], ...] | None = None
        self._shown_table_html: str | None = None
        self.vegalite_spec: dict[str, Any] | None = None
        self._syncing = False
        self._build(export_path)
        self.export_removed = False
        if os.environ.get(DASHBOARD_ENV) == "1":
            self.remove_export()  # a served dashboard's page must not write files on the server
        self._sync_controls(self.state)
        self._set_query_text(self.query_text)
        if result is not None and result.query == original:
            self._show_result(result, started=None)
        else:
            self._run(original, started=time.perf_counter(), notes=[])

    def remove_export(self) -> None:
        """Take the *Export to* box and *Export HTML* button out of the bar and close them, so
        their comms are gone in the kernel: a page cannot set the path or click the button through
        a widget message either. `export_html()` from Python still works."""
        export = (self.w_export_path, self.w_export, self.w_export_target)
        pending: list[Any] = [self]
        while pending:
            current = pending.pop()
            if isinstance(current, ipywidgets.Box):
                children = tuple(current.children)
                if any(child in export for child in children):
                    current.children = tuple(child for child in children if child not in export)
                pending.extend(current.children)
        for part in export:
            part.close()
        self.export_removed = True

    # -- building ------------------------------------------------------------------------------
    def _build(self, export_path: str | Path | None) -> None:
        w = ipywidgets
        label = {"description_width": "initial"}
        aligned = {"description_width": "80px"}

        metric_names = [m.name for m in self.table.metrics.values() if not m.alias_of]
        for name in self.initial_state.metrics:
            if name not in metric_names:
                metric_names.append(name)
        self._metric_names = metric_names
        # Options are (label, value): the reader sees the table's header ("Net sales"), the state
        # and the query keep the raw name.
        self.w_metrics = w.SelectMultiple(
            options=[(field_label(name), name) for name in metric_names],
            rows=7,
            description="Metrics",
            style=label,
            layout=w.Layout(width="250px"),
        )

        self._dimension_names = list(self.table.dimensions) + [d for d in CYCLICAL_DIMENSIONS]
        if self.initial_state.dimension and self.initial_state.dimension not in self._dimension_names:
            self._dimension_names.append(self.initial_state.dimension)
        self.w_dimension_filter = w.Text(
            placeholder="search dimensions…",
            description="Group by",
            style=label,
            layout=w.Layout(width="250px"),
        )
        self.w_dimension = w.Dropdown(
            options=self._dimension_options(""), layout=w.Layout(width="250px"), style=label
        )
        self.w_dimension_help = w.HTML()

        self.w_date_range = w.Dropdown(
            options=self._date_range_options(), description="Date range", style=aligned, layout=w.Layout(width="330px")
        )
        self.w_from = w.DatePicker(description="From", style=aligned, layout=w.Layout(width="250px"))
        self.w_to = w.DatePicker(description="To", style=aligned, layout=w.Layout(width="250px"))
        self.w_custom = w.VBox([self.w_from, self.w_to])

        grains = list(GRAINS)
        if self.initial_state.grain and self.initial_state.grain not in grains:
            grains.append(self.initial_state.grain)
        self.w_grain = w.Dropdown(
            options=[("none", _NONE)] + [(g, g) for g in grains], description="Grain", style=aligned, layout=w.Layout(width="330px")
        )
        comparisons: list[tuple[str, str]] = [("none", _NONE)] + [(comparison_label(c), c) for c in COMPARISONS]
        if self.initial_state.comparison == AS_WRITTEN:
            from commerceql.formatter import format_date

            written = ", ".join(t.operator or format_date(t.start) for t in self.original.compare_to if t.operator or t.start)
            comparisons.append((f"as written ({written})", AS_WRITTEN))
        elif self.initial_state.comparison and self.initial_state.comparison not in COMPARISONS:
            comparisons.append((comparison_label(self.initial_state.comparison), self.initial_state.comparison))
        self.w_comparison = w.Dropdown(options=comparisons, description="Compare to", style=aligned, layout=w.Layout(width="330px"))

        from commerceql.charts import SUPPORTED_CHART_TYPES

        charts: list[tuple[str, str]] = [("no chart", _NONE), ("auto", AUTO)] + [
            (chart_type_label(c), c) for c in SUPPORTED_CHART_TYPES
        ]
        if self.initial_state.chart_type == AS_WRITTEN:
            charts.append(("as written (mixed types)", AS_WRITTEN))
        self.w_chart_type = w.Dropdown(options=charts, description="Chart", style=aligned, layout=w.Layout(width="330px"))

        from commerceql.widget_export import EXPORTS_FOLDER

        self.default_export = f"{EXPORTS_FOLDER}/{self.table.name}_explore.html"
        default_export = export_path or self.default_export
        self.w_export_path = w.Text(
            value=str(default_export),
            description="Export to",
            style=label,
            layout=w.Layout(width="360px"),
            tooltip=f"a bare file name goes into {EXPORTS_FOLDER}/ beside the notebook; a path with a folder is used as written",
        )
        self.w_export = w.Button(description="Export HTML", icon="download", tooltip="write chart + table + query as one offline HTML file")
        self.w_export_target = w.HTML()  # the absolute file the button writes
        self.w_reset = w.Button(description="Reset", icon="undo", tooltip="back to the notebook's query")
        self.w_status = w.HTML()
        self.w_query = w.Textarea(
            description="Query",
            style=label,
            layout=w.Layout(width="98%"),
            continuous_update=False,
            tooltip="the query equivalent to the controls; copy it into a cell",
        )
        self.w_chart = w.Output()
        self.w_table = w.HTML()

        for widget, css in (
            (self.w_metrics, "cql-metrics"),
            (self.w_dimension_filter, "cql-dimension-filter"),
            (self.w_dimension, "cql-dimension"),
            (self.w_dimension_help, "cql-help"),
            (self.w_date_range, "cql-date-range"),
            (self.w_from, "cql-from"),
            (self.w_to, "cql-to"),
            (self.w_grain, "cql-grain"),
            (self.w_comparison, "cql-comparison"),
            (self.w_chart_type, "cql-chart-type"),
            (self.w_export_path, "cql-export-path"),
            (self.w_export, "cql-export"),
            (self.w_export_target, "cql-export-target"),
            (self.w_reset, "cql-reset"),
            (self.w_status, "cql-status"),
            (self.w_query, "cql-query"),
            (self.w_chart, "cql-chart"),
            (self.w_table, "cql-table"),
        ):
            widget.add_class(css)

        for control in self._state_controls():
            control.observe(self._on_control, names="value")
        self.w_dimension_filter.observe(self._on_filter, names="value")
        self.w_query.observe(self._on_query_edit, names="value")
        self.w_export.on_click(self._on_export)
        self.w_export_path.observe(lambda _change: self._show_export_target(), names="value")
        self._show_export_target()
        self.w_reset.on_click(lambda _button: self.reset())

        wrap = w.Layout(flex_flow="row wrap", align_items="flex-start")
        column = w.Layout(margin="0 12px 4px 0")
        bar = w.VBox(
            [
                w.HBox(
                    [
                        w.VBox([self.w_metrics], layout=column),
                        w.VBox([self.w_dimension_filter, self.w_dimension, self.w_dimension_help], layout=column),
                        w.VBox(
                            [self.w_date_range, self.w_custom, self.w_grain, self.w_comparison, self.w_chart_type],
                            layout=column,
                        ),
                    ],
                    layout=wrap,
                ),
                w.HBox([self.w_export_path, self.w_export, self.w_reset], layout=wrap),
                self.w_export_target,
                self.w_status,
            ],
            layout=w.Layout(border="1px solid #e1e3e5", padding="6px 8px", margin="0 0 6px 0"),
        )
        bar.add_class("cql-bar")
        table_box = w.Box([self.w_table])
        table_box.add_class("cql-table-box")
        self.children = [w.HTML(_CSS), bar, self.w_query, self.w_chart, table_box]
        self.add_class("cql-explore")

    def _state_controls(self) -> list[Any]:
        return [
            self.w_metrics,
            self.w_dimension,
            self.w_date_range,
            self.w_from,
            self.w_to,
            self.w_grain,
            self.w_comparison,
            self.w_chart_type,
        ]

    @property
    def controls(self) -> dict[str, Any]:
        """The control widgets by ExploreState field name (set `.value` to drive the widget)."""
        return {
            "metrics": self.w_metrics,
            "dimension": self.w_dimension,
            "dimension_filter": self.w_dimension_filter,
            "date_range": self.w_date_range,
            "custom_from": self.w_from,
            "custom_to": self.w_to,
            "grain": self.w_grain,
            "comparison": self.w_comparison,
            "chart_type": self.w_chart_type,
            "export_path": self.w_export_path,
            "export": self.w_export,
            "reset": self.w_reset,
        }

    def _dimension_options(self, text: str) -> list[tuple[str, str]]:
        needle = text.strip().lower()
        options = [("none", _NONE)]
        for name in self._dimension_names:
            dimension = self.table.dimensions.get(name)
            description = dimension.description.lower() if dimension is not None else ""
            label = field_label(name)
            if not needle or needle in name.lower() or needle in label.lower() or needle in description:
                options.append((label, name))
        return options

    def _window_text(self, name: str) -> str | None:
        from commerceql.dates import format_window, resolve_reporting_window

        probe = ast.Query(tables=self.original.tables, during=ast.NamedDate(name))
        try:
            window = resolve_reporting_window(probe, now=self.store.now(), timezone=self._timezone())
        except CommerceQLError:
            return None
        return format_window(window)

    def _timezone(self) -> str:
        for modifier in self.original.with_modifiers:
            if modifier.name.upper() == "TIMEZONE" and modifier.argument:
                return modifier.argument
        return self.store.timezone

    def _date_range_options(self) -> list[tuple[str, str]]:
        names = list(DATE_RANGES)
        try:
            year = self.store.now().year
        except CommerceQLError:
            year = dt.date.today().year
        names += [f"bfcm{y}" for y in (year, year - 1, year - 2)]
        if self.initial_state.date_range not in (ALL_TIME, CUSTOM, AS_WRITTEN) and self.initial_state.date_range not in names:
            names.append(self.initial_state.date_range)
        options = [("All time", ALL_TIME)]
        for name in names:
            window = self._window_text(name)
            options.append((f"{_label(name)} ({window})" if window else _label(name), name))
        options.append(("Custom…", CUSTOM))
        if self.initial_state.date_range == AS_WRITTEN:
            from commerceql.formatter import format_date

            parts = []
            if self.original.since is not None:
                parts.append(f"SINCE {format_date(self.original.since)}")
            if self.original.until is not None:
                parts.append(f"UNTIL {format_date(self.original.until)}")
            options.append((f"as written ({' '.join(parts)})", AS_WRITTEN))
        return options

    # -- state <-> controls --------------------------------------------------------------------
    def _state_from_controls(self) -> ExploreState:
        selected = tuple(self.w_metrics.value)
        if set(selected) == set(self.state.metrics):
            metrics = self.state.metrics
        else:  # keep the query's order, new picks at the end
            metrics = tuple(m for m in self.state.metrics if m in selected) + tuple(
                m for m in selected if m not in self.state.metrics
            )
        date_range = self.w_date_range.value
        custom = date_range == CUSTOM
        return ExploreState(
            dimension=self.w_dimension.value or None,
            date_range=date_range,
            custom_from=self.w_from.value if custom else None,
            custom_to=self.w_to.value if custom else None,
            grain=self.w_grain.value or None,
            comparison=self.w_comparison.value or None,
            chart_type=self.w_chart_type.value or None,
            metrics=metrics,
        )

    def _sync_controls(self, state: ExploreState) -> None:
        self._syncing = True
        try:
            self.w_metrics.value = tuple(m for m in state.metrics if m in self._metric_names)
            dimension = state.dimension or _NONE
            options = list(self.w_dimension.options)
            if dimension not in [value for _, value in options]:
                options = self._dimension_options("")
                self.w_dimension_filter.value = ""
                self.w_dimension.options = options
            self.w_dimension.value = dimension
            found = self.table.dimensions.get(state.dimension or "")
            self.w_dimension_help.value = html.escape(found.description) if found is not None else ""
            self.w_grain.value = state.grain or _NONE
            self.w_date_range.value = state.date_range
            self.w_from.value = state.custom_from
            self.w_to.value = state.custom_to
            self.w_custom.layout.display = "flex" if state.date_range == CUSTOM else "none"
            self.w_comparison.value = state.comparison or _NONE
            no_period = state.date_range == ALL_TIME and state.grain is None
            self.w_comparison.disabled = no_period and state.comparison is None
            self.w_comparison.tooltip = (
                "“All time” has no period to compare: pick a date range or a time grain first" if no_period else None
            )
            self.w_chart_type.value = state.chart_type or _NONE
        finally:
            self._syncing = False

    def _normalize(self, state: ExploreState) -> tuple[ExploreState, list[str]]:
        """Make the combination possible where there is an obvious fix; say what was changed."""
        notes: list[str] = []
        if state.date_range == CUSTOM and state.custom_from is None and state.custom_to is None:
            start, end = self._current_dates()
            state = replace(state, custom_from=start, custom_to=end)
        if state.comparison not in (None, AS_WRITTEN) and state.date_range == ALL_TIME and state.grain is None:
            state = replace(state, comparison=None)
            notes.append(
                "Compare to was turned off: “All time” has no period to compare against "
                "(pick a date range or a time grain to compare)."
            )
        return state, notes

    def _current_dates(self) -> tuple[dt.date, dt.date]:
        """The dates the current result covers, to prefill a custom range (last 30 days if unbounded)."""
        window = self.result.plan.window if self.result is not None else None
        if window is not None and window.start is not None and window.end is not None:
            return window.start.date(), (window.end - dt.timedelta(microseconds=1)).date()
        try:
            from commerceql.dates import local_now

            today = local_now(self.store.now(), self._timezone()).date()
        except Exception:  # noqa: BLE001 - a prefill only
            today = dt.date.today()
        return today - dt.timedelta(days=29), today

    # -- events --------------------------------------------------------------------------------
    def _on_control(self, change: dict[str, Any]) -> None:
        if self._syncing:
            return
        self._apply(self._state_from_controls())

    def _on_filter(self, change: dict[str, Any]) -> None:
        current = self.w_dimension.value
        options = self._dimension_options(change["new"] or "")
        if current not in [value for _, value in options]:
            options.insert(1, (field_label(current), current))
        self._syncing = True
        try:
            self.w_dimension.options = options
            self.w_dimension.value = current
        finally:
            self._syncing = False

    def _on_query_edit(self, change: dict[str, Any]) -> None:
        if self._syncing or change["new"] == self.query_text:
            return
        self._set_query_text(self.query_text)  # read-only: the controls are the way to change it

    def _show_export_target(self) -> None:
        """Say under the *Export to* box which file the button writes (it depends on the name typed)."""
        from commerceql.widget_export import export_target

        try:  # an empty box exports to the default file, as the button does
            target = export_target(self.w_export_path.value)
        except ValueError:
            target = export_target(self.default_export)
        self.w_export_target.value = f'<span class="cql-export-note">writes <code>{html.escape(str(target))}</code></span>'

    def _on_export(self, _button: Any) -> None:
        try:
            path = self.export_html(self.w_export_path.value or None)
        except CommerceQLError as exc:
            self._set_status(_error_html(exc.render()))
        except Exception as exc:  # noqa: BLE001 - show it in the bar, never a traceback
            self._set_status(_error_html(f"export failed: {type(exc).__name__}: {exc}"))
        else:
            self._set_status(
                f'<span class="cql-status-ok">Exported to <code class="cql-export-result">{html.escape(str(path))}</code></span>'
            )

    # -- running -------------------------------------------------------------------------------
    def update(self, **changes: Any) -> ExploreWidget:
        """Change some control values (ExploreState field names) at once, re-run, redraw."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(ExploreState)}
        if unknown:
            raise TypeError(f"unknown control(s): {', '.join(sorted(unknown))}")
        if "metrics" in changes:
            metrics = changes["metrics"]
            changes["metrics"] = (metrics,) if isinstance(metrics, str) else tuple(metrics)
        for key in ("dimension", "grain", "comparison", "chart_type"):
            if changes.get(key) in ("", "none"):
                changes[key] = None
        self._apply(replace(self.state, **changes))
        return self

    def reset(self) -> ExploreWidget:
        """Back to the query the widget was opened with."""
        self._apply(self.initial_state)
        return self

    def _apply(self, state: ExploreState) -> None:
        started = time.perf_counter()
        state, notes = self._normalize(state)
        self.state = state
        self._sync_controls(state)
        try:
            query = apply_state(self.original, state)
        except CommerceQLError as exc:
            self._show_error(exc, notes, stale=True)
            return
        self.query = query
        self._set_query_text(self._format(query))
        self._run(query, started=started, notes=notes)

    def _run(self, query: ast.Query, *, started: float, notes: list[str]) -> None:
        """Show what `query` gives, doing only what has not been done for it already.

        A view shown before (the last `VIEW_CACHE_SIZE` of them, e.g. toggling a control back)
        is re-shown as it was: no statement, no chart, no table rendering. A chart type change
        reuses the rows shown (`_same_rows`) and only draws the chart. Anything else runs.
        """
        try:
            compiled = self.store.compile(query)
            key = _view_key(compiled)
            view = self._views.get(key)
            if view is not None:
                self._views.move_to_end(key)
                self.views_reused += 1
            else:
                result = self._same_rows(compiled)
                # the same rows under the same statement make the same table: only the chart is new
                table_html = self._shown_table_html if result is not None else None
                if result is None:
                    self._set_status('<span class="cql-status-ok">Running…</span>')
                    self.queries_run += 1
                    result = self.store.execute(compiled)
                view = self._render(result, table_html=table_html)
                self._remember(key, view)
        except CommerceQLError as exc:
            self._show_error(self._positioned(exc), notes, stale=self.result is not None)
            return
        self._show_view(view, started=started, notes=notes)

    def _remember(self, key: tuple[Any, ...], view: _View) -> None:
        self._views[key] = view
        while len(self._views) > VIEW_CACHE_SIZE:
            self._views.popitem(last=False)

    def _same_rows(self, compiled: Any) -> Result | None:
        """The current rows under the new query when it runs the very same SQL (else None).

        A change of chart type (VISUALIZE) leaves the statement as it was: its answer is the
        rows already shown, so only the chart is redrawn. Same SQL and parameters mean the same
        rows, and the same periods and filters, hence the same notes from running it.
        """
        from commerceql.result import Result

        current = self.result
        if (
            current is None
            or compiled.sql != current.sql
            or compiled.parameters != current.parameters
            or tuple(compiled.columns) != tuple(current.columns)
            or tuple(compiled.plan.notices) != tuple(current.plan.notices)
        ):
            return None
        return Result(
            query=compiled.plan.query,
            df=current.df,
            sql=compiled.sql,
            parameters=compiled.parameters,
            columns=compiled.columns,
            total_rows=current.total_rows,
            plan=compiled.plan,
            store=self.store,
            notices=current.notices,
        )

    def _positioned(self, error: CommerceQLError) -> CommerceQLError:
        """The same error located in the query text shown in the widget (re-checked from that text)."""
        if error.span is not None and error.source:
            return error
        try:
            self.store.compile(self.query_text)
        except CommerceQLError as located:
            if located.message == error.message or error.span is None:
                return located
        except Exception:  # noqa: BLE001 - keep the original error
            pass
        return error

    def _show_result(self, result: Result, *, started: float | None, notes: list[str] | None = None) -> None:
        """Show a result computed elsewhere (the cell's own run of the query)."""
        view = self._render(result)
        self._remember(_view_key(result), view)
        self._show_view(view, started=started, notes=notes)

    def _render(self, result: Result, *, table_html: str | None = None) -> _View:
        """The chart output (or the error drawing it) and the table HTML of `result` (unless given)."""
        from commerceql.widget_export import chart_display_bundle

        chart_error: str | None = None
        vl_spec = None
        outputs: tuple[dict[str, Any], ...] = ()
        if result.has_chart:
            try:
                vl_spec = result.vegalite_spec
                data, metadata = chart_display_bundle(None, vl_spec)
                outputs = ({"output_type": "display_data", "data": data, "metadata": metadata},)
            except CommerceQLError as exc:
                chart_error = exc.render()
            except Exception as exc:  # noqa: BLE001 - a chart problem must not hide the table
                chart_error = f"the chart could not be drawn: {type(exc).__name__}: {exc}"
        if chart_error is not None:
            vl_spec = None
            outputs = (
                {
                    "output_type": "display_data",
                    "data": {"text/html": _CSS + f'<div class="cql-explore">{_error_html(chart_error)}</div>', "text/plain": chart_error},
                    "metadata": {},
                },
            )
        return _View(
            result=result,
            vegalite_spec=vl_spec,
            chart_outputs=outputs,
            chart_error=chart_error,
            table_html=table_html if table_html is not None else result.to_html(max_rows=self.max_rows),
        )

    def _show_view(self, view: _View, *, started: float | None, notes: list[str] | None = None) -> None:
        """Send the browser only the pieces that differ from what it shows.

        The table HTML goes out only when its rows changed, the chart output only when its spec
        changed; the status line (with the update's revision) always. The chart goes last: the
        page draws a new Vega view and then snapshots it as a PNG (JupyterLab's Vega renderer
        does, for the saved notebook), which holds its main thread for a few hundred ms on a busy
        machine; messages queued behind the chart would wait for that, so the table and the
        status go first and show while the chart is drawn.
        """
        notes = list(notes or [])
        result = view.result
        self.result = result
        self.vegalite_spec = view.vegalite_spec
        self.error = None
        self.notes = notes
        self.revision += 1
        if view.table_html != self._shown_table_html:
            self.table_revision += 1
            self.w_table.value = (
                f'<div class="cql-explore-table" data-revision="{self.table_revision}">{view.table_html}</div>'
            )
            self.table_updates += 1
        self._shown_table_html = view.table_html
        elapsed = None
        if started is not None:
            elapsed = time.perf_counter() - started
            self.timings.append(elapsed)
        rows = f"{result.total_rows:,} row{'s' if result.total_rows != 1 else ''}"
        when = f" · {elapsed * 1000:,.0f} ms" if elapsed is not None else ""
        parts = [f'<span class="cql-status-ok" data-revision="{self.revision}">✓ {rows}{when}</span>']
        for note in notes:
            parts.append(f'<div class="cql-status-note">{html.escape(note)}</div>')
        if view.chart_error is not None:
            parts.append(f'<div class="cql-status-note">The table is up to date; the chart could not be drawn with chart type “{html.escape(str(self.state.chart_type))}” — see below.</div>')
        self._set_status("".join(parts))
        if view.chart_outputs is not self._shown_outputs and view.chart_outputs != self._shown_outputs:
            self.w_chart.outputs = view.chart_outputs
            self.chart_updates += 1
        self._shown_outputs = view.chart_outputs

    def _show_error(self, error: CommerceQLError, notes: list[str], *, stale: bool) -> None:
        self.error = error
        self.notes = notes
        parts = [_error_html(error.render())]
        for note in notes:
            parts.append(f'<div class="cql-status-note">{html.escape(note)}</div>')
        if stale:
            parts.append('<div class="cql-status-note">The chart and table below still show the previous choice.</div>')
        self._set_status("".join(parts))

    def _set_status(self, value: str) -> None:
        self.w_status.value = value

    def _set_query_text(self, text: str) -> None:
        self.query_text = text
        self._syncing = True
        try:
            self.w_query.value = text
            self.w_query.rows = max(3, text.count("\n") + 1)
        finally:
            self._syncing = False

    @staticmethod
    def _format(query: ast.Query) -> str:
        from commerceql.formatter import format_query

        return format_query(query)

    # -- outputs -------------------------------------------------------------------------------
    @property
    def chart(self) -> Any:
        """The current Altair chart (None without VISUALIZE)."""
        return self.result.chart if self.result is not None else None

    def export_html(self, path: str | Path | None = None) -> Path:
        """Write the current view (query text, chart, table) as one HTML file that opens offline.

        Returns the absolute path written. A bare file name (`"report.html"`) goes into `exports/`
        in the working directory (the notebook's folder); a path with a folder in it is used as
        written (`widget_export.export_target`). Without a path, the one in the *Export to* box.
        """
        from commerceql.dates import format_window
        from commerceql.widget_export import write_standalone_html

        if self.result is None:
            raise CommerceQLSemanticError("there is no result to export yet", hint="fix the query shown in the status line first")
        from commerceql.widget_export import export_target

        target = export_target(path or self.w_export_path.value or self.default_export)
        window = self.result.plan.window
        subtitle = f"{self.store.name} · {self.table.name} · {format_window(window)}"
        written = write_standalone_html(
            target,
            title=f"{self.store.name}: {self.table.name}",
            subtitle=subtitle,
            query_text=self._format(self.result.query),
            table_html=self.result.to_html(),
            vl_spec=self.vegalite_spec,
        )
        return written

    def static_bundle(self, note: str = "") -> dict[str, Any]:
        """The current view without controls: query text, chart and table.

        What a closed control bar leaves in the notebook (see `LiveWidgets`): the frontend swaps
        the widget for this bundle, so the reader still sees what the bar last showed. The same
        bundle rides along with the live widget (`_repr_mimebundle_`) as its fallback.

        The chart is there twice: as Vega-Lite (`application/vnd.vegalite.v5+json`, drawn by
        JupyterLab, VS Code and nteract without a kernel) and as an SVG image inside the HTML,
        for readers that draw only HTML (nbconvert, GitHub).
        """
        from commerceql.display import vegalite_mimebundle

        note_html = f'<div class="cql-note">{html.escape(note)}</div>' if note else ""
        query_html = f'<pre class="cql-query-text">{html.escape(self.query_text)}</pre>'
        chart_html = ""
        bundle: dict[str, Any] = {}
        if self.result is None:
            table_html, table_text = "", ""
        else:
            table_html = self.result.to_html(max_rows=self.max_rows)
            table_text = self.result.to_text(max_rows=50)
        if self.vegalite_spec is not None:
            from commerceql.widget_export import chart_image_html

            try:
                chart_html = chart_image_html(self.vegalite_spec)
            except Exception:  # noqa: BLE001 - a fallback image must never stop the table showing
                chart_html = ""
            bundle.update({k: v for k, v in vegalite_mimebundle(self.vegalite_spec).items() if k != "text/plain"})
        bundle["text/html"] = f'<div class="cql-static">{note_html}{query_html}{chart_html}{table_html}</div>'
        bundle["text/plain"] = "\n".join(part for part in (note, self.query_text, table_text) if part)
        return bundle

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        """The live widget plus its static view (chart and table) for readers without a kernel."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if not bundle or "application/vnd.jupyter.widget-view+json" not in bundle:
            return bundle
        fallback = self.static_bundle()
        fallback["application/vnd.jupyter.widget-view+json"] = bundle["application/vnd.jupyter.widget-view+json"]
        return fallback

    def close(self) -> None:
        """Close the widget and every widget inside it (their comms and front-end models).

        ipywidgets' own `close()` closes one widget; the control bar is ~70 of them (controls,
        boxes, layouts, styles), each registered with the kernel until closed.
        """
        self._views.clear()
        close_widget_tree(self)

    def __repr__(self) -> str:
        return f"<ExploreWidget {self.table.name}: {self.query_text.splitlines()[0] if self.query_text else ''}…>"


# ---------------------------------------------------------------------------------------------
# Closing what is no longer shown
# ---------------------------------------------------------------------------------------------

#: Control bars a kernel (or the IPython magic) keeps open at most; see `LiveWidgets`.
DEFAULT_MAX_LIVE_CONTROL_BARS = 50
MAX_LIVE_CONTROL_BARS_VARIABLE = "COMMERCEQL_MAX_CONTROL_BARS"


def max_live_control_bars() -> int:
    """`$COMMERCEQL_MAX_CONTROL_BARS` when it is a whole number >= 1, else the default (50)."""
    import os

    text = os.environ.get(MAX_LIVE_CONTROL_BARS_VARIABLE, "").strip()
    try:
        value = int(text)
    except ValueError:
        return DEFAULT_MAX_LIVE_CONTROL_BARS
    return value if value >= 1 else DEFAULT_MAX_LIVE_CONTROL_BARS


def close_widget_tree(root: Any) -> int:
    """Close `root` and every widget reachable through its synced traits; returns how many were open.

    A widget with an open comm is registered in ipywidgets' instance table (and the kernel's comm
    manager) until it is closed, so closing only the outer box would keep every control, layout
    and style of it alive.
    """
    seen: set[int] = set()
    stack = [root]
    closed = 0
    while stack:
        widget = stack.pop()
        if id(widget) in seen or not isinstance(widget, ipywidgets.Widget):
            continue
        seen.add(id(widget))
        for name in list(widget.keys):
            value = getattr(widget, name, None)
            items = value if isinstance(value, list | tuple) else (value,)
            stack.extend(item for item in items if isinstance(item, ipywidgets.Widget))
        if widget.comm is not None:
            closed += 1
            ipywidgets.Widget.close(widget)
    return closed


@dataclass
class _LiveBar:
    widget: Any
    cell: str | None
    retire: Any  # Callable[[Any], None] | None: shows the static view in place of the widget


class LiveWidgets:
    """The control bars a kernel or the IPython magic displayed and has not closed yet, oldest first.

    Two rules keep them bounded (each bar is ~70 widgets and ~400 KB in the kernel):

    * when a cell runs again, the bars of its previous run are closed (`close_cell`): the
      frontend has already cleared that output. Cells are known by the `cellId` JupyterLab and
      Notebook 7 send with every execution.
    * at most `limit` bars stay open (default 50, `$COMMERCEQL_MAX_CONTROL_BARS`): adding one more
      retires the oldest. Its `retire` callback first replaces the widget in the notebook by the
      bar's last view without controls (`ExploreWidget.static_bundle`), then the bar is closed.

    Closing never raises: a failing close must not fail the cell that triggered it.
    """

    def __init__(self, limit: int | None = None) -> None:
        self.limit = max_live_control_bars() if limit is None else max(1, limit)
        self._bars: list[_LiveBar] = []

    def __len__(self) -> int:
        return len(self._bars)

    @property
    def widgets(self) -> list[Any]:
        return [bar.widget for bar in self._bars]

    def add(self, widget: Any, *, cell: str | None = None, retire: Any = None) -> None:
        self._bars.append(_LiveBar(widget, cell, retire))
        while len(self._bars) > self.limit:
            self._close(self._bars.pop(0), retire=True)

    def close_cell(self, cell: str | None) -> int:
        """Close the bars shown by earlier runs of `cell`; returns how many were closed."""
        if not cell:
            return 0
        gone = [bar for bar in self._bars if bar.cell == cell]
        self._bars = [bar for bar in self._bars if bar.cell != cell]
        for bar in gone:
            self._close(bar, retire=False)
        return len(gone)

    def close_all(self) -> None:
        bars, self._bars = self._bars, []
        for bar in bars:
            self._close(bar, retire=False)

    def _close(self, bar: _LiveBar, *, retire: bool) -> None:
        if retire and bar.retire is not None:
            try:
                bar.retire(bar.widget)
            except Exception:  # noqa: BLE001 - the static view is a courtesy; closing matters
                pass
        try:
            bar.widget.close()
        except Exception:  # noqa: BLE001
            pass


RETIRED_NOTE = (
    "The controls of this chart were closed to free memory (more than {limit} control bars were open); "
    "this is their last view. Run the cell again to get them back."
)


# ---------------------------------------------------------------------------------------------
# Measuring how live it feels
# ---------------------------------------------------------------------------------------------

#: Control changes measured by `measure_latency` (control name, new value), applied in order.
MEASURED_CHANGES: tuple[tuple[str, Any], ...] = (
    ("dimension", "billing_region"),
    ("date_range", "last_quarter"),
    ("comparison", "previous_year"),
    ("grain", "month"),
    ("chart_type", "line"),
    ("dimension", "product_type"),
    ("metrics", ("net_sales", "orders")),
    ("grain", _NONE),
    ("chart_type", "horizontal_bar"),
    ("comparison", "previous_period"),
    ("date_range", "this_year"),
    ("dimension", "customer_type"),
    ("chart_type", "donut"),
    ("metrics", ("net_sales",)),
    ("comparison", _NONE),
    ("date_range", "last_month"),
    ("dimension", "sales_channel"),
    ("chart_type", "bar"),  # back to the notebook's query, so the sequence can repeat
)


def measure_latency(
    store: Store | None = None, query: str = NOTEBOOK_QUERY, changes: Sequence[tuple[str, Any]] = MEASURED_CHANGES
) -> dict[str, Any]:
    """Time from setting a control's value to the widget's table and chart being updated.

    Updates run synchronously inside the value observer, so the time of the assignment is the
    time to rewrite the AST, run the query, build the chart and its Vega spec and render the table.
    The first change (warming DuckDB and Altair) is reported separately from the p50/p90.

    Also per change (`updates`, parallel to `samples`): which pieces went to the page ("table",
    "chart"; the status line and query text always do), their size in characters, and whether a
    kept view answered it (no statement run, nothing drawn).
    """
    import json

    if store is None:
        from commerceql.store import connect

        store = connect()
    widget = ExploreWidget(store, query)
    samples: list[tuple[str, Any, float, int]] = []
    updates: list[dict[str, Any]] = []
    try:
        for control, value in changes:
            before = widget.revision
            counts = (widget.table_updates, widget.chart_updates, widget.views_reused, widget.queries_run)
            query_text = widget.query_text
            started = time.perf_counter()
            widget.controls[control].value = value
            elapsed = time.perf_counter() - started
            if widget.error is not None or widget.revision == before:
                message = widget.error.render() if widget.error is not None else "no update"
                raise RuntimeError(f"changing {control} to {value!r} did not update the widget: {message}")
            samples.append((control, value, elapsed, widget.result.total_rows if widget.result else 0))
            pieces = []
            size = len(widget.w_status.value) + (len(widget.query_text) if widget.query_text != query_text else 0)
            if widget.table_updates > counts[0]:
                pieces.append("table")
                size += len(widget.w_table.value)
            if widget.chart_updates > counts[1]:
                pieces.append("chart")
                size += len(json.dumps(widget.w_chart.outputs, default=str))
            updates.append({
                "pieces": tuple(pieces),
                "size": size,
                "reused": widget.views_reused > counts[2],
                "queried": widget.queries_run > counts[3],
            })
    finally:
        widget.close()
    times = [s[2] for s in samples[1:]] or [s[2] for s in samples]
    sizes = [u["size"] for u in updates[1:]] or [u["size"] for u in updates]
    return {
        "samples": samples,
        "updates": updates,
        "first": samples[0][2] if samples else float("nan"),
        "p50": statistics.median(times),
        "p90": _percentile(times, 0.9),
        "max": max(times),
        "n": len(times),
        "size_p50": statistics.median(sizes) if sizes else 0,
        "reused": sum(1 for u in updates if u["reused"]),
        "queried": sum(1 for u in updates if u["queried"]),
    }


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m commerceql.widgets", description=__doc__.splitlines()[0])
    parser.add_argument("--measure", action="store_true", help="time control changes on the bundled sample store")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the sequence of changes this many times")
    args = parser.parse_args(argv)
    if not args.measure:
        parser.print_help()
        return 0
    changes = tuple(MEASURED_CHANGES) * max(1, args.rounds)
    report = measure_latency(changes=changes)
    print(f"{'control':<12} {'value':<34} {'rows':>6} {'ms':>8}  sent to the page")
    for (control, value, elapsed, rows), update in zip(report["samples"], report["updates"], strict=True):
        shown = ",".join(value) if isinstance(value, tuple) else (value or "none")
        sent = "+".join(("status", *update["pieces"]))
        how = "kept view" if update["reused"] else ("query run" if update["queried"] else "same rows")
        print(f"{control:<12} {shown:<34} {rows:>6} {elapsed * 1000:>8.1f}  {sent} ({update['size'] / 1024:.1f} K chars, {how})")
    print(
        f"control change -> table+chart updated: p50 {report['p50'] * 1000:.0f} ms, "
        f"p90 {report['p90'] * 1000:.0f} ms, max {report['max'] * 1000:.0f} ms over {report['n']} changes "
        f"(first change, warming up: {report['first'] * 1000:.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
