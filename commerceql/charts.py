"""VISUALIZE → Altair (Vega-Lite) charts.

The engine hands over a result exactly as DuckDB produced it (a Polars DataFrame plus the
`ColumnInfo` of every column) and a `ChartRequest` saying which metric columns to draw and with
which chart type. This module turns that into an Altair chart whose Vega-Lite spec carries its
data inline, so it can be shown in Jupyter, saved as PNG/SVG offline (vl-convert) or written as a
standalone HTML page.

    request = ChartRequest(metrics=("net_sales",), chart_types=("line",))
    chart = build_chart(df, columns, request)
    save_chart(chart, "net_sales.png")

How the data is laid out for Vega-Lite:

* Decimal columns become floats, NaN/inf become null, dates and datetimes become ISO strings
  without a zone (``2024-01-01T00:00:00``, read by Vega as local wall-clock time, so what is
  drawn is the period the engine returned), lists become comma-separated text.
* Cartesian charts (line, bars, areas, ...) are drawn from a "long" table: one record per row and
  series, with the fields ``__series`` (legend label), ``__base`` (the series without its
  comparison), ``__kind`` (``current`` or the comparison suffix), ``__metric`` (column name),
  ``__value`` (the number) and ``__value_text`` (the number formatted for tooltips).
* Time dimensions keep their own field (temporal encoding); a ``__label_<dim>`` field holds the
  period formatted as text for band axes (bars over time), tables and tooltips.

Every chart records what it drew in the top-level ``usermeta`` (``{"commerceql": {...}}``): the
chart type(s) requested and drawn, and any fallback taken.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from commerceql.columns import ColumnInfo
from commerceql.display import ColumnLabels, Currency, column_labels
from commerceql.errors import (
    CommerceQLError,
    CommerceQLNameError,
    CommerceQLSemanticError,
    did_you_mean,
)

if TYPE_CHECKING:
    import altair as alt

# Altair (~1 s to import) is loaded only when an Altair object is asked for (`build_chart`,
# `Result.chart`): the specs are plain dicts, so saving a chart, the kernel's display and the
# explore widget never import it. The Vega-Lite version is the one the installed Altair writes
# (tests/test_startup.py checks it against alt.SCHEMA_URL).
VEGA_LITE_SCHEMA_VERSION = "v6.4.1"
VEGA_LITE_SCHEMA_URL = f"https://vega.github.io/schema/vega-lite/{VEGA_LITE_SCHEMA_VERSION}.json"

__all__ = [
    "SUPPORTED_CHART_TYPES",
    "UNSUPPORTED_CHART_TYPES",
    "ChartRequest",
    "validate_chart_type",
    "propagate_chart_types",
    "default_chart_type",
    "build_chart",
    "build_chart_spec",
    "chart_to_vegalite",
    "save_chart",
]

# ---------------------------------------------------------------------------------------------
# Chart types
# ---------------------------------------------------------------------------------------------

SUPPORTED_CHART_TYPES: tuple[str, ...] = (
    # ShopifyQL 2025 (G2) list, minus target_gauge
    "line",
    "bar",
    "horizontal_bar",
    "grouped_bar",
    "horizontal_grouped_bar",
    "stacked_bar",
    "stacked_horizontal_bar",
    "single_stacked_bar",
    "stacked_area",
    "area",
    "histogram",
    "donut",
    "funnel",
    "heatmap",
    "single_metric",
    "list",
    "list_with_dimension_values",
    "table",
    "rfm_grid",
    # ShopifyQL 2026 (G3) additions that Vega-Lite draws well
    "scatter_plot",
    "bubble_chart",
    "waterfall",
    "calendar_heatmap",
    "retention_curve",
)

#: Chart types ShopifyQL knows that CommerceQL does not draw, with the reason given to the user.
UNSUPPORTED_CHART_TYPES: dict[str, str] = {
    "target_gauge": "it needs analytics targets, which CommerceQL stores do not have",
    "sunburst": "Vega-Lite has no hierarchical layout; use donut or stacked_bar",
    "treemap": "Vega-Lite has no treemap layout; use horizontal_bar or donut",
    "radar": "Vega-Lite has no polar axes; use grouped_bar or heatmap",
    "map": "CommerceQL has no geographic shapes; use horizontal_bar by region",
}

_LINE_TYPES = {"line", "area", "stacked_area", "retention_curve"}
_BAR_TYPES = {
    "bar",
    "horizontal_bar",
    "grouped_bar",
    "horizontal_grouped_bar",
    "stacked_bar",
    "stacked_horizontal_bar",
}
_CARTESIAN_TYPES = _LINE_TYPES | _BAR_TYPES
_LAYERABLE_TYPES = {"line", "area", "bar"}  # metrics with these types can share one set of axes
_TABLE_TYPES = {"list", "list_with_dimension_values", "table"}

_TIME_GRAINS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
_CYCLICAL = ("hour_of_day", "day_of_week", "week_of_year", "month_of_year")
_NUMERIC_TYPES = {"money", "percent", "count", "number", "duration", "integer"}

_WIDTH = 640
_HEIGHT = 320
_NONE_LABEL = "(none)"
_MISSING_TEXT = "–"

_TABLEAU10 = [
    "#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b",
    "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac",
]  # fmt: skip
# Vega's tableau20 is ten dark/light pairs: a metric and its comparison share a hue.
_TABLEAU20 = [
    "#4c78a8", "#9ecae9", "#f58518", "#ffbf79", "#54a24b", "#88d27a", "#b79a20", "#f2cf5b",
    "#439894", "#83bcb6", "#e45756", "#ff9d98", "#79706e", "#bab0ac", "#d67195", "#fcbfd2",
    "#b279a2", "#d6a5c9", "#9e765f", "#d8b5a5",
]  # fmt: skip
_DASHES = [[1, 0], [6, 4], [2, 3], [8, 3, 2, 3]]
_UP_COLOR = "#108043"
_DOWN_COLOR = "#d72c0d"
_FLAT_COLOR = "#6d7175"

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_MONTHS_LONG = [
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
]  # fmt: skip
_WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


@dataclass(frozen=True)
class ChartRequest:
    """What VISUALIZE asked for, after the engine resolved names and TYPE propagation."""

    metrics: tuple[str, ...]  # result column names to draw (metric or generated metric columns)
    chart_types: tuple[str | None, ...]  # one per metric; None = choose automatically
    max_points: int | None = None  # VISUALIZE ... MAX n
    title: str | None = None
    currency: str = "USD"
    # The words of the result's table (`display.result_labels(result)`): a chart's titles, axes and
    # legends say what its table's headers say. None: worked out from the columns alone.
    labels: ColumnLabels | None = None


def validate_chart_type(name: str, span=None) -> str:
    """The canonical chart type for `name` (case-insensitive), or a CommerceQLNameError."""
    key = str(name).strip().lower()
    if key in SUPPORTED_CHART_TYPES:
        return key
    supported = "supported chart types: " + ", ".join(SUPPORTED_CHART_TYPES)
    if key in UNSUPPORTED_CHART_TYPES:
        raise CommerceQLNameError(
            f"chart type `{name}` is not supported by CommerceQL: {UNSUPPORTED_CHART_TYPES[key]}",
            span=span,
            hint=supported,
        )
    suggestion = did_you_mean(key, SUPPORTED_CHART_TYPES)
    hint = f"{suggestion} {supported}" if suggestion else supported
    raise CommerceQLNameError(f"unknown chart type `{name}`", span=span, hint=hint)


def propagate_chart_types(types: Sequence[str | None]) -> tuple[str | None, ...]:
    """ShopifyQL's TYPE rule: a TYPE applies to the metric it follows and to every earlier metric
    that has no TYPE of its own. Metrics after the last TYPE stay None (chosen automatically).

    >>> propagate_chart_types([None, "bar", None, "line", None])
    ('bar', 'bar', 'line', 'line', None)
    """
    result: list[str | None] = list(types)
    pending: list[int] = []
    for index, chart_type in enumerate(result):
        if chart_type is None:
            pending.append(index)
            continue
        for earlier in pending:
            result[earlier] = chart_type
        pending = []
    return tuple(result)


# ---------------------------------------------------------------------------------------------
# Formatting: currency, numbers, periods
# ---------------------------------------------------------------------------------------------

# Money is written by the one currency table tables use too (symbol, placement, minor units:
# `₩1,234`, `¥1,234`, `$1,234.50`, `1,234.00 CHF`), so a chart's labels match its table.
_Currency = Currency


def _to_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None if value is None else float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _format_value(value: Any, value_type: str, currency: _Currency) -> str:
    """A value as a person reads it: $1,234.50, 12.5%, 1,234, 3.14."""
    number = _to_float(value)
    if number is None:
        return _MISSING_TEXT if value is None else str(value)
    if value_type == "money":
        return currency.format(number)
    if value_type == "percent":
        return f"{number * 100:,.1f}%"
    if value_type in {"count", "integer"}:
        return f"{number:,.0f}"
    text = f"{number:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _format_change(value: Any) -> str:
    number = _to_float(value)
    if number is None:
        return _MISSING_TEXT
    arrow = "▲" if number > 0 else "▼" if number < 0 else "■"
    return f"{arrow} {abs(number) * 100:,.1f}%"


def _tooltip_format(value_type: str, currency: _Currency) -> str:
    if value_type == "money":
        return f"$,.{currency.decimals}f"
    if value_type == "percent":
        return ".1%"
    if value_type in {"count", "integer"}:
        return ",.0f"
    return ",.2~f"


def _axis_format(value_type: str, values: Sequence[Any], currency: _Currency) -> dict:
    """Axis properties for a quantitative axis of this value type and data range."""
    numbers = [n for n in (_to_float(v) for v in values) if n is not None]
    biggest = max((abs(n) for n in numbers), default=0.0)
    spread = (max(numbers) - min(numbers)) if numbers else 0.0
    spread = max(spread, biggest)
    if value_type == "money":
        if biggest >= 1_000_000:
            return {"format": "$.3~s"}
        if spread >= 20 or currency.decimals == 0:
            return {"format": "$,.0f"}
        return {"format": f"$,.{currency.decimals}f"}
    if value_type == "percent":
        return {"format": ".1%"}
    if value_type in {"count", "integer"}:
        if biggest >= 1_000_000:
            return {"format": ".3~s"}
        return {"format": ",d", "tickMinStep": 1, "labelExpr": _INTEGER_LABELS}
    if biggest >= 1_000_000:
        return {"format": ".3~s"}
    return {"format": ",.2~f" if spread < 20 else ",.0f"}


# Vega ignores tickMinStep for small domains; hide the labels of fractional ticks instead.
_INTEGER_LABELS = "datum.value % 1 ? '' : datum.label"

# d3 time formats per grain (axis, tooltip); Python mirrors them in _period_text.
_AXIS_TIME_FORMAT = {
    "second": "%H:%M:%S",
    "minute": "%H:%M",
    "hour": "%b %d %H:%M",
    "day": "%b %d",
    "week": "%b %d",
    "month": "%b %Y",
    "quarter": "Q%q %Y",
    "year": "%Y",
}
_TOOLTIP_TIME_FORMAT = {
    "second": "%b %d, %Y %H:%M:%S",
    "minute": "%b %d, %Y %H:%M",
    "hour": "%b %d, %Y %H:%M",
    "day": "%b %d, %Y",
    "week": "Week of %b %d, %Y",
    "month": "%B %Y",
    "quarter": "Q%q %Y",
    "year": "%Y",
}


def _period_text(value: _dt.datetime | None, grain: str, long: bool = False) -> str:
    if value is None:
        return _NONE_LABEL
    mon = _MONTHS[value.month - 1]
    year = value.year
    if grain == "year":
        return f"{year}"
    if grain == "quarter":
        return f"Q{(value.month - 1) // 3 + 1} {year}"
    if grain == "month":
        return f"{_MONTHS_LONG[value.month - 1]} {year}" if long else f"{mon} {year}"
    day = f"{mon} {value.day:02d}"
    if grain in {"day", "week"}:
        if long:
            return f"Week of {day}, {year}" if grain == "week" else f"{day}, {year}"
        return day
    clock = f"{value.hour:02d}:{value.minute:02d}"
    if grain == "second":
        clock += f":{value.second:02d}"
    if long or grain == "hour":
        return f"{day}, {year} {clock}" if long else f"{day} {clock}"
    return clock


def _cyclical_labeler(grain: str, values: Sequence[Any]):
    """A function int → label for a cyclical dimension (day_of_week names, month names...)."""
    if grain == "day_of_week":
        # The engine returns ShopifyQL's numbering: 0 = Monday ... 6 = Sunday.
        def day_name(v):
            i = int(v)
            return _WEEKDAYS[i] if 0 <= i < len(_WEEKDAYS) else str(v)

        return day_name
    if grain == "month_of_year":
        return lambda v: _MONTHS[int(v) - 1] if 1 <= int(v) <= 12 else str(v)
    if grain == "hour_of_day":
        return lambda v: f"{int(v):02d}:00"
    if grain == "week_of_year":
        return lambda v: f"W{int(v)}"
    return str


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def _join_words(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _field(name: str) -> str:
    """A column name as a Vega-Lite field reference (dots and brackets escaped)."""
    return re.sub(r"([.\[\]\\])", r"\\\1", name)


# ---------------------------------------------------------------------------------------------
# Understanding the result: columns, dimensions, metrics and their comparisons
# ---------------------------------------------------------------------------------------------


def _infer_grain(values: Sequence[Any]) -> str:
    stamps = [v for v in values if isinstance(v, _dt.datetime | _dt.date)]
    if not stamps:
        return "day"
    if all(not isinstance(v, _dt.datetime) for v in stamps):
        as_dt = [_dt.datetime(v.year, v.month, v.day) for v in stamps]
    else:
        as_dt = [v if isinstance(v, _dt.datetime) else _dt.datetime(v.year, v.month, v.day) for v in stamps]
    if any(v.second or v.microsecond for v in as_dt):
        return "second"
    if any(v.minute for v in as_dt):
        return "minute"
    if any(v.hour for v in as_dt):
        return "hour"
    if all(v.day == 1 and v.month == 1 for v in as_dt) and len(as_dt) > 1:
        return "year"
    if all(v.day == 1 for v in as_dt) and len(as_dt) > 1:
        return "quarter" if all(v.month in (1, 4, 7, 10) for v in as_dt) and len(as_dt) > 2 else "month"
    return "day"


def _infer_info(name: str, series: pl.Series) -> ColumnInfo:
    """ColumnInfo for a column the engine did not describe (from its name and dtype)."""
    dtype = series.dtype
    match = re.fullmatch(r"comparison_(.+)__(.+)", name)
    if dtype.is_temporal() and dtype != pl.Duration:
        grain = name if name in _TIME_GRAINS else _infer_grain(series.to_list())
        if match:
            return ColumnInfo(name, "comparison_period", grain)
        return ColumnInfo(name, "time", grain)
    if name in _CYCLICAL and dtype.is_integer():
        return ColumnInfo(name, "time", name)
    if dtype.is_numeric() or dtype == pl.Duration:
        value_type = "duration" if dtype == pl.Duration else "number"
        if name.endswith("__totals"):
            return ColumnInfo(name, "totals", value_type)
        if match:
            return ColumnInfo(name, "comparison", value_type, base=match.group(1), comparison=match.group(2))
        pct = re.fullmatch(r"percent_change_(.+)__(.+)", name)
        if pct:
            return ColumnInfo(name, "percent_change", "percent", base=pct.group(1), comparison=pct.group(2))
        if name.endswith("__cumulative"):
            return ColumnInfo(name, "cumulative", value_type, base=name[: -len("__cumulative")])
        return ColumnInfo(name, "metric", value_type)
    return ColumnInfo(name, "dimension", "string")


def _is_time_grain(info: ColumnInfo) -> bool:
    return info.type in _TIME_GRAINS or info.type in {"date", "timestamp"}


def _grain(info: ColumnInfo) -> str:
    if info.type in _TIME_GRAINS:
        return info.type
    return "day"


@dataclass
class _Metric:
    column: str
    info: ColumnInfo
    label: str
    comparisons: list[tuple[str, str, str]]  # (column, suffix, label)
    percent_changes: dict[str, str]  # suffix -> percent_change column

    @property
    def value_type(self) -> str:
        return self.info.type if self.info.type in _NUMERIC_TYPES else "number"


@dataclass
class _Dim:
    info: ColumnInfo
    kind: str  # "time" | "cyclical" | "category"
    grain: str | None  # time grain or cyclical name
    label_field: str  # field holding the display text
    order: list[str]  # display labels in axis order
    labels_by_raw: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def title(self) -> str:
        return self.info.label


@dataclass
class _Ctx:
    raw: pl.DataFrame  # after MAX, original dtypes
    rows: list[dict]  # prepared JSON-ready records (with label fields)
    infos: dict[str, ColumnInfo]
    dims: list[_Dim]
    currency: _Currency
    request: ChartRequest
    labels: ColumnLabels
    notes: list[str] = field(default_factory=list)
    keep_fields: set[str] = field(default_factory=set)  # row fields copied into chart records

    def dim(self, name: str) -> _Dim:
        return next(d for d in self.dims if d.name == name)


def _column_infos(
    df: pl.DataFrame, columns: Sequence[ColumnInfo], labels: ColumnLabels | None = None
) -> tuple[dict[str, ColumnInfo], ColumnLabels]:
    """Every column's ColumnInfo, its `display_name` set to the column's table header, and the labels.

    The header goes into `display_name` because every title, axis and legend reads `info.label`.
    """
    given = {c.name: c for c in columns or () if isinstance(c, ColumnInfo)}
    infos = {name: given.get(name) or _infer_info(name, df.get_column(name)) for name in df.columns}
    if labels is None:
        labels = column_labels(list(infos.values()))
    return {name: replace(info, display_name=labels.header(name)) for name, info in infos.items()}, labels


def _dimension_infos(df: pl.DataFrame, infos: dict[str, ColumnInfo]) -> list[ColumnInfo]:
    return [info for name, info in infos.items() if info.role in ("dimension", "time") and name in df.columns]


def _resolve_metrics(df: pl.DataFrame, infos: dict[str, ColumnInfo], names: Sequence[str]) -> list[_Metric]:
    numeric_columns = [n for n in df.columns if df.schema[n].is_numeric() or df.schema[n] == pl.Duration]
    if not names:
        names = [n for n, i in infos.items() if i.role == "metric" and n in numeric_columns]
        if not names:
            names = [n for n in numeric_columns if infos[n].role not in ("dimension", "time")]
    requested = list(dict.fromkeys(names))
    metrics: list[_Metric] = []
    attached: set[str] = set()
    for name in requested:
        if name not in df.columns:
            raise CommerceQLNameError(
                f"cannot visualize `{name}`: the result has no such column",
                hint=did_you_mean(name, numeric_columns)
                or ("columns you can draw: " + ", ".join(numeric_columns) if numeric_columns else None),
            )
        info = infos[name]
        if name not in numeric_columns:
            raise CommerceQLSemanticError(
                f"cannot visualize `{name}`: it is a {info.role} with {info.type} values, not a number",
                hint="VISUALIZE takes metrics; dimensions go in GROUP BY or TIMESERIES",
            )
    for name in requested:
        info = infos[name]
        if info.role == "comparison" and info.base in requested:
            continue  # drawn with its base metric
        comparisons = []
        percent_changes = {}
        for other in infos.values():
            if other.name not in df.columns or other.name == name:
                continue
            if other.role == "comparison" and other.base == name:
                suffix = other.comparison or other.name.rsplit("__", 1)[-1]
                label = other.label  # its table header: "Net sales (previous year)"
                comparisons.append((other.name, suffix, label))
                attached.add(other.name)
            elif other.role == "percent_change" and other.base == name:
                percent_changes[other.comparison or other.name.rsplit("__", 1)[-1]] = other.name
        metrics.append(_Metric(name, info, info.label, comparisons, percent_changes))
    return metrics


# ---------------------------------------------------------------------------------------------
# Preparing data for Vega-Lite
# ---------------------------------------------------------------------------------------------


def _json_ready(df: pl.DataFrame) -> pl.DataFrame:
    """Decimals → floats, NaN/inf → null, dates → ISO text, everything else JSON-friendly."""
    exprs = []
    for name, dtype in df.schema.items():
        col = pl.col(name)
        if isinstance(dtype, pl.Decimal) or dtype in (pl.Int128, pl.UInt128):
            expr = col.cast(pl.Float64)
        elif dtype.is_float():
            expr = pl.when(col.is_finite()).then(col).otherwise(None)
        elif dtype == pl.Date:
            expr = col.cast(pl.Datetime("us")).dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif isinstance(dtype, pl.Datetime):
            if dtype.time_zone:
                col = col.dt.replace_time_zone(None)
            expr = col.dt.strftime("%Y-%m-%dT%H:%M:%S")
        elif dtype == pl.Time:
            expr = col.cast(pl.String)
        elif dtype == pl.Duration:
            expr = col.dt.total_milliseconds().cast(pl.Float64) / 1000.0
        elif isinstance(dtype, pl.List | pl.Array):
            if isinstance(dtype, pl.Array):
                col = col.arr.to_list()
            expr = col.list.eval(pl.element().cast(pl.String)).list.join(", ")
        elif isinstance(dtype, pl.Categorical | pl.Enum):
            expr = col.cast(pl.String)
        elif dtype.is_numeric() or dtype in (pl.String, pl.Boolean, pl.Null):
            expr = col
        else:
            expr = col.map_elements(lambda v: None if v is None else str(v), return_dtype=pl.String)
        exprs.append(expr.alias(name))
    return df.select(exprs)


def _as_datetime(value: Any) -> _dt.datetime | None:
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None) if value.tzinfo else value
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    return None


def _build_dims(
    raw: pl.DataFrame, infos: dict[str, ColumnInfo], rows: list[dict], currency: _Currency
) -> list[_Dim]:
    dims = []
    for info in _dimension_infos(raw, infos):
        name = info.name
        values = raw.get_column(name)
        raw_values = values.to_list()
        label_field = f"__label_{name}"
        if values.dtype.is_temporal() and values.dtype != pl.Duration and info.type in _CYCLICAL:
            info = ColumnInfo(
                name, "time", _infer_grain(raw_values), info.description, display_name=info.display_name
            )
        if values.dtype.is_temporal() and values.dtype not in (pl.Duration, pl.Time):
            if info.type in _TIME_GRAINS:
                grain = info.type
            elif info.role == "time" and info.type not in _CYCLICAL:
                grain = _infer_grain(raw_values)
            else:
                grain = _infer_grain(raw_values)
            stamps = [_as_datetime(v) for v in raw_values]
            labels = [_period_text(s, grain) for s in stamps]
            distinct = {s for s in stamps if s is not None}
            if len(set(labels)) < len(distinct) or (
                grain in {"day", "week"} and len({s.year for s in distinct}) > 1
            ):
                labels = [_period_text(s, grain, long=True) for s in stamps]
            order = [
                lab
                for _, lab in sorted(
                    {(s, lab) for s, lab in zip(stamps, labels, strict=False) if s is not None}
                )
            ]
            if any(s is None for s in stamps):
                order.append(_NONE_LABEL)
            for row, lab in zip(rows, labels, strict=False):
                row[label_field] = lab
            dims.append(_Dim(info, "time", grain, label_field, list(dict.fromkeys(order))))
            continue
        if info.type in _CYCLICAL and values.dtype.is_numeric():
            labeler = _cyclical_labeler(info.type, raw_values)
            labels = [_NONE_LABEL if v is None else labeler(v) for v in raw_values]
            order = [
                lab
                for _, lab in sorted(
                    {(v, lab) for v, lab in zip(raw_values, labels, strict=False) if v is not None}
                )
            ]
            for row, lab in zip(rows, labels, strict=False):
                row[label_field] = lab
            dims.append(_Dim(info, "cyclical", info.type, label_field, list(dict.fromkeys(order))))
            continue
        if info.type in _CYCLICAL:  # already names (Monday, January, ...)
            labels = [_NONE_LABEL if v is None else str(v) for v in raw_values]
            reference = _WEEKDAYS if info.type == "day_of_week" else _MONTHS
            ranked = sorted(
                set(labels), key=lambda t: next((i for i, r in enumerate(reference) if t.startswith(r)), 99)
            )
            for row, lab in zip(rows, labels, strict=False):
                row[label_field] = lab
            dims.append(_Dim(info, "cyclical", info.type, label_field, ranked))
            continue
        if info.type == "money" and values.dtype.is_numeric():
            labels = [_NONE_LABEL if v is None else _format_value(v, "money", currency) for v in raw_values]
        elif values.dtype == pl.Boolean:
            labels = [_NONE_LABEL if v is None else ("true" if v else "false") for v in raw_values]
        else:
            labels = [
                _NONE_LABEL if v is None or v == "" else str(r[name])
                for v, r in zip(raw_values, rows, strict=False)
            ]
        for row, lab in zip(rows, labels, strict=False):
            row[label_field] = lab
        dims.append(_Dim(info, "category", None, label_field, list(dict.fromkeys(labels))))
    return dims


def _apply_max(
    df: pl.DataFrame, infos: dict[str, ColumnInfo], chart_type: str, max_points: int | None
) -> pl.DataFrame:
    """MAX n: the first n categories in row order, or the last n periods of a time axis."""
    if (
        max_points is None
        or chart_type in {"histogram", "single_metric", "funnel", "waterfall"}
        or df.height == 0
    ):
        return df
    if chart_type in _TABLE_TYPES:
        return df.head(max_points)
    dims = _dimension_infos(df, infos)
    if not dims:
        return df.head(max_points)
    time_dims = [d for d in dims if _is_time_grain(d) and df.schema[d.name].is_temporal()]
    if chart_type == "retention_curve":
        primary = _retention_axes(dims, df)[0]
    elif time_dims and chart_type != "rfm_grid":
        primary = time_dims[0]
    else:
        primary = dims[0]
    column = df.get_column(primary.name)
    distinct = list(dict.fromkeys(column.to_list()))
    if primary in time_dims:
        keep = sorted((v for v in distinct if v is not None), reverse=True)[:max_points]
    else:
        keep = distinct[:max_points]
    selected = pl.col(primary.name).is_in([v for v in keep if v is not None])
    if None in keep:
        selected = selected | pl.col(primary.name).is_null()
    return df.filter(selected)


# ---------------------------------------------------------------------------------------------
# Default chart type and fallbacks
# ---------------------------------------------------------------------------------------------


def default_chart_type(df: pl.DataFrame, columns: Sequence[ColumnInfo], request: ChartRequest) -> str:
    """The chart ShopifyQL would pick for this shape of result.

    * no dimension: one row → ``single_metric``; several rows → ``table``
    * a time grain on x (day/week/month...) → ``line``; a time grain and a cyclical
      dimension (GROUP BY week, day_of_week) → ``heatmap``
    * one category or one cyclical dimension (hour_of_day...) → ``bar``
    * two category dimensions → ``grouped_bar`` when the second has at most 5 values,
      otherwise ``heatmap``
    * three or more dimensions → ``table``
    """
    if not isinstance(df, pl.DataFrame):
        raise CommerceQLSemanticError("cannot draw a chart: the result is not a table")
    infos, _labels = _column_infos(df, columns, request.labels)
    dims = _dimension_infos(df, infos)
    time_dims = [d for d in dims if _is_time_grain(d)]
    cyclical = [d for d in dims if d.type in _CYCLICAL]
    if not dims:
        return "single_metric" if df.height <= 1 else "table"
    if len(dims) >= 3:
        return "table"
    if time_dims:
        if len(dims) == 2 and cyclical:
            return "heatmap"
        return "line"
    if len(dims) == 1:
        return "bar"
    second = dims[1].name
    return "grouped_bar" if df.get_column(second).n_unique() <= 5 else "heatmap"


def _retention_axes(dims: Sequence[ColumnInfo], df: pl.DataFrame) -> tuple[ColumnInfo, list[ColumnInfo]]:
    """(period-number dimension on x, cohort dimensions) for a retention curve."""
    numeric = [
        d
        for d in dims
        if d.type not in _CYCLICAL and not _is_time_grain(d) and df.schema[d.name].is_numeric()
    ]
    x = numeric[0] if numeric else next((d for d in dims if _is_time_grain(d)), dims[0])
    return x, [d for d in dims if d is not x]


def _fallback(chart_type: str, df: pl.DataFrame, infos: dict[str, ColumnInfo], metrics: list[_Metric]) -> str:
    """The type actually drawn: `chart_type`, or the closest type the data can support."""
    dims = _dimension_infos(df, infos)
    n_dims = len(dims)
    time_dims = [d for d in dims if _is_time_grain(d)]
    day_dims = [d for d in time_dims if _grain(d) == "day"]
    no_dim = "single_metric" if len(metrics) == 1 else "bar"
    if df.height == 0:
        return chart_type
    if chart_type in _LINE_TYPES:
        if n_dims == 0:
            return no_dim
        if chart_type == "retention_curve" and n_dims == 1 and not time_dims:
            return "line"
        return chart_type
    if chart_type in _BAR_TYPES:
        if n_dims == 0 and df.height > 1:
            return "table"
        return chart_type
    if chart_type == "heatmap":
        if n_dims >= 2:
            return chart_type
        if n_dims == 1 and day_dims:
            return "calendar_heatmap"
        return "bar" if n_dims == 1 else no_dim
    if chart_type == "calendar_heatmap":
        if day_dims:
            return chart_type
        if n_dims >= 2:
            return "heatmap"
        return "line" if time_dims else ("bar" if n_dims else no_dim)
    if chart_type == "rfm_grid":
        if n_dims >= 2:
            return chart_type
        return "horizontal_bar" if n_dims == 1 else no_dim
    if chart_type == "histogram":
        return chart_type if df.height > 1 else ("bar" if n_dims else no_dim)
    if chart_type == "scatter_plot":
        if len(metrics) < 2:
            raise CommerceQLSemanticError(
                "a scatter_plot needs two metrics, one for each axis",
                hint="for example: VISUALIZE orders, net_sales TYPE scatter_plot",
            )
        return chart_type
    if chart_type == "bubble_chart":
        if len(metrics) < 2:
            raise CommerceQLSemanticError(
                "a bubble_chart needs three metrics: x, y and bubble size",
                hint="for example: VISUALIZE orders, net_sales, customers TYPE bubble_chart",
            )
        return chart_type if len(metrics) >= 3 else "scatter_plot"
    if chart_type == "waterfall":
        if n_dims == 0 and len(metrics) == 1:
            return "single_metric"
        return chart_type
    return chart_type


# ---------------------------------------------------------------------------------------------
# Long-form series data and shared scales
# ---------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    label: str
    base: str
    base_index: int
    comparison_index: int  # 0 = current


@dataclass
class _Long:
    records: list[dict]
    entries: list[_Entry]
    value_type: str
    metrics: list[_Metric]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    @property
    def has_comparisons(self) -> bool:
        return any(e.comparison_index for e in self.entries)

    @property
    def bases(self) -> list[str]:
        return list(dict.fromkeys(e.base for e in self.entries))


def _long_records(
    ctx: _Ctx,
    metrics: list[_Metric],
    group_dims: list[_Dim],
    *,
    comparisons: bool = True,
    layer: int = 0,
    base_offset: int = 0,
) -> _Long:
    records: list[dict] = []
    entries: dict[str, _Entry] = {}
    base_indices: dict[str, int] = {}
    types = {m.value_type for m in metrics}
    value_type = types.pop() if len(types) == 1 else "number"
    for row_index, row in enumerate(ctx.rows):
        group = " · ".join(str(row[d.label_field]) for d in group_dims)
        for metric in metrics:
            if group:
                base = group if len(metrics) == 1 else f"{group} · {metric.label}"
            else:
                base = metric.label
            base_index = base_indices.setdefault(base, base_offset + len(base_indices))
            series = [(metric.column, None, base)]
            if comparisons:
                series += [
                    (col, suffix, label if not group else f"{base} ({ctx.labels.phrase(suffix)})")
                    for col, suffix, label in metric.comparisons
                ]
            for comparison_index, (column, suffix, label) in enumerate(series):
                entries.setdefault(label, _Entry(label, base, base_index, comparison_index))
                value = row.get(column)
                record = {k: v for k, v in row.items() if k in ctx.keep_fields}
                record.update(
                    {
                        "__series": label,
                        "__base": base,
                        "__kind": "current" if suffix is None else suffix,
                        "__metric": metric.column,
                        "__value": value,
                        "__value_text": _format_value(value, metric.value_type, ctx.currency),
                        "__order": base_index * 10 + comparison_index,
                        "__row": row_index,
                        "__layer": layer,
                    }
                )
                records.append(record)
    ordered = sorted(entries.values(), key=lambda e: (e.base_index, e.comparison_index))
    return _Long(records, ordered, value_type, metrics)


def _color_scales(entries: Sequence[_Entry], stroke: bool = False) -> tuple[dict, dict, dict]:
    """(color scale, dark stroke scale, dash scale) over the legend labels, pairing each series
    with its comparisons: same hue, lighter shade, dashed."""
    has_comparisons = any(e.comparison_index for e in entries)
    n_bases = len({e.base_index for e in entries})
    colors, dark, dashes = [], [], []
    for entry in entries:
        if has_comparisons:
            pair = entry.base_index % 10
            colors.append(_TABLEAU20[2 * pair + (1 if entry.comparison_index else 0)])
            dark.append(_TABLEAU20[2 * pair])
        elif n_bases <= 10:
            colors.append(_TABLEAU10[entry.base_index % 10])
            dark.append(colors[-1])
        else:
            colors.append(_TABLEAU20[entry.base_index % 20])
            dark.append(colors[-1])
        dashes.append(_DASHES[min(entry.comparison_index, len(_DASHES) - 1)])
    labels = [e.label for e in entries]
    return (
        {"domain": labels, "range": colors},
        {"domain": labels, "range": dark},
        {"domain": labels, "range": dashes},
    )


def _legend(entries: Sequence[_Entry], symbol: str) -> dict | None:
    if len(entries) <= 1:
        return None
    count = len(entries)
    if count > 12:
        return {"title": None, "orient": "right", "labelLimit": 220, "symbolType": symbol}
    return {
        "title": None,
        "orient": "top",
        "direction": "horizontal",
        "columns": min(count, 4),
        "labelLimit": 260,
        "symbolType": symbol,
    }


# ---------------------------------------------------------------------------------------------
# Axis / encoding helpers
# ---------------------------------------------------------------------------------------------


def _datetime_object(value: _dt.datetime) -> dict:
    result = {"year": value.year, "month": value.month, "date": value.day}
    if value.hour or value.minute or value.second:
        result.update({"hours": value.hour, "minutes": value.minute, "seconds": value.second})
    return result


def _temporal_axis(ctx: _Ctx, dim: _Dim) -> dict:
    grain = dim.grain or "day"
    stamps = sorted({s for s in (_as_datetime(v) for v in ctx.raw.get_column(dim.name).to_list()) if s})
    axis: dict[str, Any] = {
        "title": dim.title,
        "format": _AXIS_TIME_FORMAT.get(grain, "%b %d"),
        "labelOverlap": True,
    }
    if grain in {"day", "week"} and stamps and stamps[0].year != stamps[-1].year:
        axis["format"] = "%b %d, %Y"
    if not stamps:
        return axis
    if grain == "day" and len(stamps) > 62:
        months = (stamps[-1].year - stamps[0].year) * 12 + stamps[-1].month - stamps[0].month + 1
        axis["tickCount"] = {"interval": "month", "step": max(1, math.ceil(months / 12))}
        axis["format"] = "%b %Y"
        return axis
    step = max(1, math.ceil(len(stamps) / 12))
    axis["values"] = [_datetime_object(s) for s in stamps[::step]]
    return axis


def _x_encoding(
    ctx: _Ctx, dim: _Dim | None, *, band: bool, channel_title: str | None = None
) -> tuple[dict, dict]:
    """(encoding, tooltip) for the category/time axis of a cartesian chart."""
    if dim is None:  # several metrics, no dimension: the metrics are the categories
        return (
            {"field": "__base", "type": "nominal", "sort": None, "title": None, "axis": {"labelAngle": 0}},
            {"field": "__base", "type": "nominal", "title": "Metric"},
        )
    if dim.kind == "time" and not band:
        grain = dim.grain or "day"
        encoding = {"field": _field(dim.name), "type": "temporal", "axis": _temporal_axis(ctx, dim)}
        tooltip = {
            "field": _field(dim.name),
            "type": "temporal",
            "format": _TOOLTIP_TIME_FORMAT.get(grain, "%b %d, %Y"),
            "title": dim.title,
        }
        return encoding, tooltip
    many = len(dim.order) > 12
    longest = max((len(x) for x in dim.order), default=0)
    axis = {
        "title": channel_title if channel_title is not None else dim.title,
        "labelOverlap": True,
        "labelLimit": 160,
    }
    axis["labelAngle"] = -40 if (many or longest * len(dim.order) > 90) else 0
    encoding = {
        "field": dim.label_field,
        "type": "ordinal" if dim.kind != "category" else "nominal",
        "sort": dim.order,
        "axis": axis,
    }
    return encoding, {"field": dim.label_field, "type": "nominal", "title": dim.title}


def _y_axis(ctx: _Ctx, long: _Long, values: Sequence[Any], title: str | None) -> dict:
    axis = _axis_format(long.value_type, values, ctx.currency)
    axis["title"] = title
    return axis


def _value_title(metrics: list[_Metric]) -> str | None:
    labels = [m.label for m in metrics]
    if len(labels) == 1:
        return labels[0]
    if len(labels) == 2:
        return f"{labels[0]} / {_lower_first(labels[1])}"
    return None


def _value_tooltips(long: _Long, extra: Sequence[dict] = ()) -> list[dict]:
    tips = list(extra)
    single_series = len(long.entries) == 1
    if not single_series:
        tips.append({"field": "__series", "type": "nominal", "title": "Series"})
    title = long.metrics[0].label if len(long.metrics) == 1 and single_series else "Value"
    tips.append({"field": "__value_text", "type": "nominal", "title": title})
    return tips


# ---------------------------------------------------------------------------------------------
# Cartesian charts: line, area, stacked_area, bar family, retention_curve
# ---------------------------------------------------------------------------------------------


def _cartesian_axes(ctx: _Ctx, chart_type: str) -> tuple[_Dim | None, list[_Dim]]:
    if not ctx.dims:
        return None, []
    if chart_type == "retention_curve":
        x_info, groups = _retention_axes([d.info for d in ctx.dims], ctx.raw)
        x = ctx.dim(x_info.name)
        if x.kind == "category" and ctx.raw.schema[x.name].is_numeric():
            # Periods since the first purchase run 0, 1, 2 ... whatever order the rows came in.
            label_of = dict(zip(ctx.raw[x.name].to_list(), (r[x.label_field] for r in ctx.rows), strict=False))
            numbers = sorted(v for v in label_of if v is not None)
            x = replace(x, order=list(dict.fromkeys([label_of[v] for v in numbers] + x.order)))
        return x, [ctx.dim(g.name) for g in groups]
    time_dims = [d for d in ctx.dims if d.kind == "time"]
    x = time_dims[0] if time_dims else ctx.dims[0]
    return x, [d for d in ctx.dims if d is not x]


def _add_stack_fields(long: _Long, x_field: str) -> None:
    """Explicit stacking (y0/y1) for stacked areas: current series stack together, and each
    comparison stacks with the other comparisons, so the dashed comparison line is the
    comparison's stacked total."""
    tops: dict[tuple, float] = {}
    for record in sorted(long.records, key=lambda r: r["__order"]):
        key = (record.get(x_field), record["__kind"])
        bottom = tops.get(key, 0.0)
        value = _to_float(record["__value"]) or 0.0
        record["__y0"] = bottom
        record["__y1"] = bottom + value
        tops[key] = bottom + value


def _cartesian_layer(
    ctx: _Ctx,
    chart_type: str,
    long: _Long,
    x_dim: _Dim | None,
    *,
    band: bool,
    scales: tuple[dict, dict, dict],
    layer: int | None = None,
) -> dict:
    """The spec (without data) of one cartesian chart over `long` records."""
    color_scale, stroke_scale, dash_scale = scales
    horizontal = chart_type in {"horizontal_bar", "horizontal_grouped_bar", "stacked_horizontal_bar"}
    is_bar = chart_type in _BAR_TYPES
    x_enc, x_tip = _x_encoding(ctx, x_dim, band=band or is_bar)
    group_tips = [
        {"field": d.label_field, "type": "nominal", "title": d.title}
        for d in ctx.dims
        if d is not x_dim and d.label_field in (long.records[0] if long.records else {})
    ]
    tooltips = _value_tooltips(long, [x_tip, *group_tips])
    values = [r["__value"] for r in long.records]
    entries = long.entries
    show_legend = len(entries) > 1 and not (x_dim is None and not long.has_comparisons)
    filters = [{"filter": f"datum.__layer == {layer}"}] if layer is not None else []

    if chart_type in {"line", "retention_curve"}:
        n_points = len(long.records) / max(len(entries), 1)
        y = {
            "field": "__value",
            "type": "quantitative",
            "axis": _y_axis(ctx, long, values, _value_title(long.metrics)),
        }
        encoding = {
            "x": x_enc,
            "y": y,
            "color": {
                "field": "__series",
                "type": "nominal",
                "scale": color_scale,
                "legend": _legend(entries, "stroke") if show_legend else None,
            },
            "tooltip": tooltips,
        }
        if long.has_comparisons:
            encoding["strokeDash"] = {
                "field": "__series",
                "type": "nominal",
                "scale": dash_scale,
                "legend": _legend(entries, "stroke") if show_legend else None,
            }
        point = {"filled": True, "size": 36} if n_points <= 60 else {"filled": True, "size": 40, "opacity": 0}
        mark = {"type": "line", "strokeWidth": 2, "point": point, "interpolate": "linear"}
        return (
            {"transform": filters, "mark": mark, "encoding": encoding}
            if filters
            else {"mark": mark, "encoding": encoding}
        )

    if chart_type == "area":
        y = {
            "field": "__value",
            "type": "quantitative",
            "stack": None,
            "axis": _y_axis(ctx, long, values, _value_title(long.metrics)),
        }
        legend = _legend(entries, "stroke") if show_legend else None
        if legend:
            legend.update({"symbolOpacity": 1, "symbolStrokeWidth": 2.5})
        color = {"field": "__series", "type": "nominal", "scale": color_scale, "legend": legend}
        area = {
            "transform": [*filters, {"filter": "datum.__kind == 'current'"}],
            "mark": {"type": "area", "opacity": 0.25, "line": False},
            "encoding": {"x": x_enc, "y": y, "color": color},
        }
        line_encoding = {"x": x_enc, "y": y, "color": color, "tooltip": tooltips}
        if long.has_comparisons:
            line_encoding["strokeDash"] = {
                "field": "__series",
                "type": "nominal",
                "scale": dash_scale,
                "legend": color["legend"],
            }
        line = {
            "mark": {"type": "line", "strokeWidth": 2, "point": {"filled": True, "size": 30, "opacity": 0}},
            "encoding": line_encoding,
        }
        if filters:
            line["transform"] = filters
        return {"layer": [area, line]}

    if chart_type == "stacked_area":
        y_values = [r.get("__y1") for r in long.records] + [r.get("__y0") for r in long.records]
        y = {
            "field": "__y1",
            "type": "quantitative",
            "axis": _y_axis(ctx, long, y_values, _value_title(long.metrics)),
        }
        color = {
            "field": "__series",
            "type": "nominal",
            "scale": color_scale,
            "legend": _legend(entries, "square") if show_legend else None,
        }
        area = {
            "transform": [*filters, {"filter": "datum.__kind == 'current'"}],
            "mark": {"type": "area", "opacity": 0.85, "line": {"strokeWidth": 1}},
            "encoding": {
                "x": x_enc,
                "y": y,
                "y2": {"field": "__y0"},
                "color": color,
                "order": {"field": "__order", "type": "quantitative"},
                "tooltip": tooltips,
            },
        }
        layers = [area]
        if long.has_comparisons:
            layers.append(
                {
                    "transform": [*filters, {"filter": "datum.__kind != 'current'"}],
                    "mark": {
                        "type": "line",
                        "strokeWidth": 2,
                        "point": {"filled": True, "size": 30, "opacity": 0},
                    },
                    "encoding": {
                        "x": x_enc,
                        "y": y,
                        "color": {**color, "scale": stroke_scale, "legend": None},
                        "strokeDash": {
                            "field": "__series",
                            "type": "nominal",
                            "scale": dash_scale,
                            "legend": None,
                        },
                        "tooltip": tooltips,
                    },
                }
            )
        return {"layer": layers}

    # ---- bar family --------------------------------------------------------------------------
    stacked = chart_type in {"stacked_bar", "stacked_horizontal_bar"}
    cat, val, offset = ("y", "x", "yOffset") if horizontal else ("x", "y", "xOffset")
    value_axis = _y_axis(ctx, long, values, _value_title(long.metrics))
    if horizontal:
        x_enc = {**x_enc, "axis": {**x_enc.get("axis", {}), "labelAngle": 0, "labelLimit": 220}}
        if x_enc.get("type") == "temporal":  # horizontal bars over time use the period labels
            x_enc, _ = _x_encoding(ctx, x_dim, band=True)
            x_enc["axis"]["labelAngle"] = 0
    value_enc: dict[str, Any] = {"field": "__value", "type": "quantitative", "axis": value_axis}
    encoding: dict[str, Any] = {cat: x_enc, val: value_enc, "tooltip": tooltips}
    legend = _legend(entries, "square") if show_legend else None
    encoding["color"] = {"field": "__series", "type": "nominal", "scale": color_scale, "legend": legend}
    if long.has_comparisons:
        encoding["stroke"] = {"field": "__series", "type": "nominal", "scale": stroke_scale, "legend": legend}
        encoding["strokeDash"] = {
            "field": "__series",
            "type": "nominal",
            "scale": dash_scale,
            "legend": legend,
        }
    if stacked:
        value_enc["stack"] = "zero"
        encoding["order"] = {"field": "__order", "type": "quantitative"}
        if long.has_comparisons:
            encoding[offset] = {
                "field": "__kind",
                "type": "nominal",
                "sort": list(dict.fromkeys(r["__kind"] for r in long.records)),
                "title": None,
            }
    elif len(entries) > 1 and x_dim is not None:
        encoding[offset] = {
            "field": "__series",
            "type": "nominal",
            "sort": [e.label for e in entries],
            "title": None,
        }
    elif x_dim is None and long.has_comparisons:
        encoding[offset] = {
            "field": "__series",
            "type": "nominal",
            "sort": [e.label for e in entries],
            "title": None,
        }
    mark: dict[str, Any] = {"type": "bar"}
    if long.has_comparisons:
        mark.update({"strokeWidth": 1.2})
    if horizontal:
        mark["cornerRadiusEnd"] = 2
    else:
        mark["cornerRadiusEnd"] = 2
    spec = {"mark": mark, "encoding": encoding}
    if filters:
        spec["transform"] = filters
    return spec


def _band_size(categories: int, per_category: int, default: int) -> int:
    return max(default, categories * per_category)


def _cartesian(ctx: _Ctx, chart_type: str, metrics: list[_Metric]) -> dict:
    """A cartesian chart; metrics of different value types (money and counts, say) get their own
    axes: a second y axis for two kinds of lines, small multiples for grouped bars."""
    by_type: dict[str, list[_Metric]] = {}
    for metric in metrics:
        by_type.setdefault(metric.value_type, []).append(metric)
    if len(by_type) > 1 and ctx.dims:
        if chart_type in {"line", "area", "retention_curve"}:
            if len(by_type) == 2:
                return _combo_chart(ctx, [(chart_type, group) for group in by_type.values()])
            return {
                "vconcat": [_cartesian_chart(ctx, chart_type, group) for group in by_type.values()],
                "spacing": 24,
            }
        if chart_type in {"bar", "grouped_bar", "horizontal_bar", "horizontal_grouped_bar"}:
            horizontal = chart_type.startswith("horizontal")
            single = "horizontal_bar" if horizontal else "bar"
            panels = [_cartesian_chart(ctx, single, [metric]) for metric in metrics]
            if horizontal:
                for panel in panels:
                    panel["width"] = max(180, (_WIDTH - 120) // len(panels))
                for panel in panels[1:]:
                    panel["encoding"]["y"]["axis"] = {
                        **panel["encoding"]["y"]["axis"],
                        "labels": False,
                        "title": None,
                    }
                return {"hconcat": panels, "spacing": 16}
            for panel in panels:
                panel["height"] = max(160, _HEIGHT // len(panels) + 60)
            return {"vconcat": panels, "spacing": 16}
    return _cartesian_chart(ctx, chart_type, metrics)


def _cartesian_chart(ctx: _Ctx, chart_type: str, metrics: list[_Metric]) -> dict:
    x_dim, group_dims = _cartesian_axes(ctx, chart_type)
    long = _long_records(ctx, metrics, group_dims)
    if chart_type == "stacked_area":
        _add_stack_fields(long, x_dim.label_field if x_dim else "__base")
    scales = _color_scales(long.entries)
    spec = _cartesian_layer(ctx, chart_type, long, x_dim, band=False, scales=scales)
    spec["data"] = {"values": long.records}
    _size_cartesian(spec, chart_type, long, x_dim)
    return spec


def _size_cartesian(spec: dict, chart_type: str, long: _Long, x_dim: _Dim | None) -> None:
    categories = len(x_dim.order) if x_dim is not None else len(long.bases)
    horizontal = chart_type in {"horizontal_bar", "horizontal_grouped_bar", "stacked_horizontal_bar"}
    grouped = chart_type in _BAR_TYPES and chart_type not in {"stacked_bar", "stacked_horizontal_bar"}
    per_group = len(long.entries) if grouped and len(long.entries) > 1 else (2 if long.has_comparisons else 1)
    if horizontal:
        spec["width"] = _WIDTH - 120
        spec["height"] = _band_size(categories, 8 + 14 * per_group, 120)
    elif chart_type in _BAR_TYPES:
        spec["width"] = _band_size(categories, 6 + 12 * per_group, _WIDTH)
        spec["height"] = _HEIGHT
    else:
        spec["width"] = _WIDTH
        spec["height"] = _HEIGHT


def _combo_chart(ctx: _Ctx, groups: list[tuple[str, list[_Metric]]]) -> dict:
    """Metrics with different layerable types (line/area/bar) drawn on one set of axes."""
    x_dim, group_dims = _cartesian_axes(ctx, groups[0][0])
    band = any(t in _BAR_TYPES for t, _ in groups)
    longs = []
    offset = 0
    for index, (_, metrics) in enumerate(groups):
        long = _long_records(ctx, metrics, group_dims, layer=index, base_offset=offset)
        offset += len(long.bases)
        longs.append(long)
    entries = [e for long in longs for e in long.entries]
    scales = _color_scales(entries)
    layers = []
    for index, ((chart_type, _), long) in enumerate(zip(groups, longs, strict=False)):
        long_view = _Long(long.records, entries, long.value_type, long.metrics)
        layer = _cartesian_layer(ctx, chart_type, long_view, x_dim, band=band, scales=scales, layer=index)
        layers.append(layer)
    spec: dict[str, Any] = {"layer": layers, "data": {"values": [r for long in longs for r in long.records]}}
    if len({long.value_type for long in longs}) > 1 or len(longs) == 2:
        spec["resolve"] = {"scale": {"y": "independent"}}
    categories = len(x_dim.order) if x_dim else len(entries)
    spec["width"] = _band_size(categories, 20, _WIDTH) if band else _WIDTH
    spec["height"] = _HEIGHT
    return spec


# ---------------------------------------------------------------------------------------------
# Part-of-whole charts: single_stacked_bar, donut
# ---------------------------------------------------------------------------------------------


def _parts(ctx: _Ctx, metrics: list[_Metric]) -> tuple[list[dict], list[str], str, str]:
    """Records of (part label, kind, value) for part-of-whole charts; returns
    (records, part order, value type, part title)."""
    records = []
    if ctx.dims:
        metric = metrics[0]
        series = [(metric.column, "current", "Current")] + [
            (c, s, _upper_first(ctx.labels.phrase(s))) for c, s, _ in metric.comparisons
        ]
        for row in ctx.rows:
            part = " · ".join(str(row[d.label_field]) for d in ctx.dims)
            for column, _kind, kind_label in series:
                value = row.get(column)
                records.append(
                    {
                        "__part": part,
                        "__kind": kind_label,
                        "__value": value,
                        "__metric": metric.column,
                        "__value_text": _format_value(value, metric.value_type, ctx.currency),
                    }
                )
        title = " · ".join(d.title for d in ctx.dims)
        return records, list(dict.fromkeys(r["__part"] for r in records)), metric.value_type, title
    row = ctx.rows[0] if ctx.rows else {}
    types = {m.value_type for m in metrics}
    for metric in metrics:
        series = [(metric.column, "Current")] + [
            (c, _upper_first(ctx.labels.phrase(s))) for c, s, _ in metric.comparisons
        ]
        for column, kind_label in series:
            value = row.get(column)
            records.append(
                {
                    "__part": metric.label,
                    "__kind": kind_label,
                    "__value": value,
                    "__metric": metric.column,
                    "__value_text": _format_value(value, metric.value_type, ctx.currency),
                }
            )
    return records, [m.label for m in metrics], types.pop() if len(types) == 1 else "number", "Metric"


def _part_colors(order: Sequence[str]) -> dict:
    palette = _TABLEAU10 if len(order) <= 10 else _TABLEAU20
    return {"domain": list(order), "range": [palette[i % len(palette)] for i in range(len(order))]}


def _single_stacked_bar(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    records, order, value_type, part_title = _parts(ctx, metrics)
    kinds = list(dict.fromkeys(r["__kind"] for r in records))
    for record in records:
        record["__order"] = order.index(record["__part"])
    values = [r["__value"] for r in records]
    totals: dict[str, float] = {}
    for record in records:
        totals[record["__kind"]] = totals.get(record["__kind"], 0.0) + (_to_float(record["__value"]) or 0.0)
    for record in records:
        total = totals[record["__kind"]]
        value = _to_float(record["__value"]) or 0.0
        record["__share"] = value / total if total else None
        record["__share_text"] = f"{value / total * 100:.1f}%" if total else _MISSING_TEXT
    total_values = list(totals.values())
    axis = _axis_format(value_type, total_values + values, ctx.currency)
    axis.update({"title": _value_title(metrics) if ctx.dims else None, "labelOverlap": True, "tickCount": 5})
    encoding = {
        "x": {"field": "__value", "type": "quantitative", "stack": "zero", "axis": axis},
        "color": {
            "field": "__part",
            "type": "nominal",
            "scale": _part_colors(order),
            "sort": order,
            "legend": {
                "title": None,
                "orient": "top",
                "direction": "horizontal",
                "columns": min(len(order), 4),
                "labelLimit": 220,
            },
        },
        "order": {"field": "__order", "type": "quantitative"},
        "tooltip": [
            {"field": "__part", "type": "nominal", "title": part_title},
            *([{"field": "__kind", "type": "nominal", "title": "Period"}] if len(kinds) > 1 else []),
            {"field": "__value_text", "type": "nominal", "title": metrics[0].label if ctx.dims else "Value"},
            {"field": "__share_text", "type": "nominal", "title": "Share"},
        ],
    }
    if len(kinds) > 1:
        encoding["y"] = {
            "field": "__kind",
            "type": "nominal",
            "sort": kinds,
            "title": None,
            "axis": {"labelAngle": 0},
        }
        encoding["opacity"] = {
            "field": "__kind",
            "type": "nominal",
            "sort": kinds,
            "scale": {"domain": kinds, "range": [1.0] + [0.55] * (len(kinds) - 1)},
            "legend": None,
        }
    bars = {"mark": {"type": "bar", "stroke": "white", "strokeWidth": 1}, "encoding": encoding}
    # centre the share labels on their segments: stack in a transform and place at the middle
    labels = {
        "transform": [
            {
                "stack": "__value",
                "groupby": ["__kind"],
                "as": ["__s0", "__s1"],
                "sort": [{"field": "__order"}],
            },
            {"calculate": "(datum.__s0 + datum.__s1) / 2", "as": "__mid"},
            {"filter": "datum.__share >= 0.05"},
        ],
        "mark": {"type": "text", "color": "#1a1a1a", "fontSize": 11},
        "encoding": {
            "x": {"field": "__mid", "type": "quantitative", "axis": axis},
            "text": {"field": "__share_text", "type": "nominal"},
            **({"y": encoding["y"]} if "y" in encoding else {}),
        },
    }
    return {
        "layer": [bars, labels],
        "data": {"values": records},
        "width": _WIDTH,
        "height": 48 * len(kinds) if len(kinds) > 1 else 48,
    }


def _donut(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    if ctx.dims and len(metrics) > 1:
        return {"hconcat": [_donut(ctx, [m]) for m in metrics], "spacing": 30}
    records, order, value_type, part_title = _parts(ctx, metrics)
    records = [r for r in records if r["__kind"] == "Current" and (_to_float(r["__value"]) or 0) > 0]
    total = sum(_to_float(r["__value"]) or 0.0 for r in records)
    for record in records:
        share = (_to_float(record["__value"]) or 0.0) / total if total else 0.0
        record["__share"] = share
        record["__share_text"] = f"{share * 100:.1f}%"
        record["__order"] = order.index(record["__part"])
    order = [p for p in order if any(r["__part"] == p for r in records)]
    theta = {"field": "__value", "type": "quantitative", "stack": True}
    color = {
        "field": "__part",
        "type": "nominal",
        "scale": _part_colors(order),
        "sort": order,
        "legend": {"title": part_title if ctx.dims else None, "orient": "right", "labelLimit": 200},
    }
    arcs = {
        "mark": {"type": "arc", "innerRadius": 70, "outerRadius": 120, "stroke": "white", "strokeWidth": 1.5},
        "encoding": {
            "theta": theta,
            "color": color,
            "order": {"field": "__order", "type": "quantitative"},
            "tooltip": [
                {"field": "__part", "type": "nominal", "title": part_title},
                {
                    "field": "__value_text",
                    "type": "nominal",
                    "title": metrics[0].label if ctx.dims else "Value",
                },
                {"field": "__share_text", "type": "nominal", "title": "Share"},
            ],
        },
    }
    labels = {
        "transform": [{"filter": "datum.__share >= 0.04"}],
        "mark": {"type": "text", "radius": 138, "fontSize": 11, "color": "#333"},
        "encoding": {
            "theta": theta,
            "order": {"field": "__order", "type": "quantitative"},
            "text": {"field": "__share_text", "type": "nominal"},
        },
    }
    centre_text = _format_value(total, value_type, ctx.currency)
    centre = {
        "data": {
            "values": [{"__total": centre_text, "__caption": metrics[0].label if ctx.dims else "Total"}]
        },
        "layer": [
            {
                "mark": {"type": "text", "fontSize": 18, "fontWeight": "bold", "dy": -6},
                "encoding": {"text": {"field": "__total", "type": "nominal"}},
            },
            {
                "mark": {"type": "text", "fontSize": 11, "color": "#666", "dy": 14},
                "encoding": {"text": {"field": "__caption", "type": "nominal"}},
            },
        ],
    }
    spec = {"layer": [arcs, labels, centre], "data": {"values": records}, "width": 300, "height": 300}
    if ctx.dims and len(ctx.request.metrics) > 1:
        spec["title"] = {"text": metrics[0].label, "fontSize": 13}
    return spec


# ---------------------------------------------------------------------------------------------
# funnel, waterfall
# ---------------------------------------------------------------------------------------------


# Dimensions whose values are the steps of a funnel, in funnel order (a model dimension name, as
# the result's ColumnInfo.base carries it). A funnel (or waterfall) of one metric by such a
# dimension draws its steps in this order, whatever the rows' order (ORDER BY, or the default
# order by value); values not listed follow in row order. The model has no way yet to declare a
# dimension's value order (docs/funnels.md).
_STEP_ORDERS: dict[str, tuple[str, ...]] = {
    "checkout_stage": ("cart", "information", "shipping", "payment", "completed"),
}


def _step_order(dim: _Dim) -> tuple[str, ...] | None:
    for name in (dim.info.base, dim.info.name):
        if name in _STEP_ORDERS:
            return _STEP_ORDERS[name]
    return None


def _steps(
    ctx: _Ctx, metrics: list[_Metric], chart_type: str
) -> tuple[list[tuple[str, float | None]], str, str]:
    """(label, value) steps, in funnel order: the rows of one dimension for one metric (in row
    order, or the dimension's step order), or each metric in turn (in the order VISUALIZE names
    them, which is SHOW's order when it names none)."""
    max_points = ctx.request.max_points
    if len(metrics) == 1 and ctx.dims:
        metric = metrics[0]
        rows = ctx.rows
        order = _step_order(ctx.dims[0]) if len(ctx.dims) == 1 else None
        if order is not None:
            dim = ctx.dims[0]
            rank = {value: index for index, value in enumerate(order)}
            rows = sorted(rows, key=lambda r: rank.get(r.get(dim.name), len(rank)))  # stable: rest in row order
        steps = [
            (" · ".join(str(r[d.label_field]) for d in ctx.dims), _to_float(r.get(metric.column)))
            for r in rows
        ]
        title = " · ".join(d.title for d in ctx.dims)
        value_type = metric.value_type
    else:
        if len(ctx.rows) == 1:
            row = ctx.rows[0]
            steps = [(m.label, _to_float(row.get(m.column))) for m in metrics]
        else:
            if any(m.value_type == "percent" for m in metrics):
                raise CommerceQLSemanticError(
                    f"a {chart_type} over several rows adds each metric up, which does not work for percentages",
                    hint="remove the GROUP BY, or draw one metric by a dimension",
                )
            steps = [(m.label, sum(_to_float(r.get(m.column)) or 0.0 for r in ctx.rows)) for m in metrics]
        types = {m.value_type for m in metrics}
        value_type = types.pop() if len(types) == 1 else "number"
        title = "Step"
    if max_points:
        steps = steps[:max_points]
    return steps, value_type, title


def _percent_text(share: float | None) -> str:
    return _MISSING_TEXT if share is None else f"{share * 100:.1f}%"


def _funnel(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    """Steps top to bottom in funnel order (see _steps), never re-sorted by value; each step shows
    its value, its overall conversion (÷ the first step) and its step conversion (÷ the step before)."""
    steps, value_type, title = _steps(ctx, metrics, "funnel")
    first = (steps[0][1] or 0.0) if steps else 0.0
    records = []
    previous: float | None = None
    for index, (label, value) in enumerate(steps):
        value = value or 0.0
        overall = value / first if first else None
        step = None if index == 0 else (value / previous if previous else None)
        value_text = _format_value(value, value_type, ctx.currency)
        records.append(
            {
                "__step": label,
                "__order": index,
                "__value": value,
                "__x0": -value / 2,
                "__x1": value / 2,
                "__value_text": value_text,
                "__overall_conversion": 1.0 if index == 0 and first else overall,
                "__step_conversion": step,
                "__of_first": "100%" if index == 0 else _percent_text(overall),
                "__of_previous": _MISSING_TEXT if index == 0 else _percent_text(step),
                "__label": value_text
                if index == 0
                else f"{value_text}  ({_percent_text(step)} of previous, {_percent_text(overall)} of first)",
            }
        )
        previous = value
    biggest = max((r["__value"] for r in records), default=1.0) or 1.0
    order = [r["__step"] for r in records]
    y = {
        "field": "__step",
        "type": "nominal",
        "sort": order,
        "title": None,
        "axis": {"labelLimit": 200, "labelFontSize": 12, "labelPadding": 10, "ticks": False, "domain": False},
    }
    bars = {
        "mark": {"type": "bar", "color": "#4c78a8", "cornerRadius": 2, "height": {"band": 0.8}},
        "encoding": {
            "y": y,
            "x": {
                "field": "__x0",
                "type": "quantitative",
                "axis": None,
                "scale": {"domain": [-biggest / 2, biggest / 2 * 2.2]},
            },
            "x2": {"field": "__x1"},
            "opacity": {
                "field": "__order",
                "type": "quantitative",
                "scale": {"range": [1.0, 0.6]},
                "legend": None,
            },
            "tooltip": [
                {"field": "__step", "type": "nominal", "title": title},
                {"field": "__value_text", "type": "nominal", "title": "Value"},
                {"field": "__of_first", "type": "nominal", "title": "Of first step"},
                {"field": "__of_previous", "type": "nominal", "title": "Of previous step"},
            ],
        },
    }
    text = {
        "mark": {"type": "text", "align": "left", "dx": 6, "fontSize": 12, "color": "#333"},
        "encoding": {
            "y": y,
            "x": {"field": "__x1", "type": "quantitative"},
            "text": {"field": "__label", "type": "nominal"},
        },
    }
    return {
        "layer": [bars, text],
        "data": {"values": records},
        "width": _WIDTH - 140,
        "height": max(120, 44 * len(records)),
    }


def _waterfall(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    steps, value_type, title = _steps(ctx, metrics, "waterfall")
    last_is_total = False
    if len(steps) >= 3 and not (len(metrics) == 1 and ctx.dims):
        before = sum(v or 0.0 for _, v in steps[:-1])
        last = steps[-1][1] or 0.0
        last_is_total = abs(before - last) <= max(0.005 * abs(last), 0.01)
    records = []
    running = 0.0
    body = steps[:-1] if last_is_total else steps
    for index, (label, value) in enumerate(body):
        value = value or 0.0
        kind = "Increase" if value >= 0 else "Decrease"
        records.append(
            {
                "__step": label,
                "__order": index,
                "__y0": running,
                "__y1": running + value,
                "__kind": kind,
                "__value": value,
            }
        )
        running += value
    total_label = steps[-1][0] if last_is_total else "Total"
    records.append(
        {
            "__step": total_label,
            "__order": len(records),
            "__y0": 0.0,
            "__y1": running if not last_is_total else (steps[-1][1] or 0.0),
            "__kind": "Total",
            "__value": running if not last_is_total else steps[-1][1],
        }
    )
    for record in records:
        record["__value_text"] = _format_value(record["__value"], value_type, ctx.currency)
        record["__top"] = max(record["__y0"], record["__y1"])
    order = [r["__step"] for r in records]
    axis = _axis_format(value_type, [r["__y0"] for r in records] + [r["__y1"] for r in records], ctx.currency)
    axis["title"] = _value_title(metrics)
    x = {
        "field": "__step",
        "type": "nominal",
        "sort": order,
        "title": None if title == "Step" else title,
        "axis": {"labelAngle": 0 if len(order) <= 6 else -40, "labelLimit": 140},
    }
    bars = {
        "mark": {"type": "bar", "cornerRadius": 1},
        "encoding": {
            "x": x,
            "y": {"field": "__y0", "type": "quantitative", "axis": axis},
            "y2": {"field": "__y1"},
            "color": {
                "field": "__kind",
                "type": "nominal",
                "scale": {
                    "domain": ["Increase", "Decrease", "Total"],
                    "range": ["#54a24b", "#e45756", "#4c78a8"],
                },
                "legend": {"title": None, "orient": "top", "direction": "horizontal"},
            },
            "tooltip": [
                {"field": "__step", "type": "nominal", "title": "Step" if title == "Step" else title},
                {"field": "__value_text", "type": "nominal", "title": "Value"},
            ],
        },
    }
    text = {
        "mark": {"type": "text", "dy": -7, "fontSize": 11, "color": "#333"},
        "encoding": {
            "x": x,
            "y": {"field": "__top", "type": "quantitative"},
            "text": {"field": "__value_text", "type": "nominal"},
        },
    }
    return {
        "layer": [bars, text],
        "data": {"values": records},
        "width": _band_size(len(order), 60, _WIDTH),
        "height": _HEIGHT,
    }


# ---------------------------------------------------------------------------------------------
# histogram, scatter_plot, bubble_chart
# ---------------------------------------------------------------------------------------------


def _histogram(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    long = _long_records(ctx, metrics, [])
    long.records = [r for r in long.records if _to_float(r["__value"]) is not None]
    entries = long.entries
    values = [r["__value"] for r in long.records]
    axis = _axis_format(long.value_type, values, ctx.currency)
    axis["title"] = _value_title(metrics)
    if ctx.dims:
        noun = _lower_first(" · ".join(d.title for d in ctx.dims))
        rows_title = f"Number of {noun}" + ("" if noun.endswith("s") else "s")
    else:
        rows_title = "Number of rows"
    color_scale, _, _ = _color_scales(entries)
    n_values = max(1, len(long.records) // max(len(entries), 1))
    maxbins = ctx.request.max_points or max(5, min(30, math.ceil(2 * n_values ** (1 / 3))))
    encoding = {
        "x": {"field": "__value", "type": "quantitative", "bin": {"maxbins": maxbins}, "axis": axis},
        "y": {
            "aggregate": "count",
            "type": "quantitative",
            "stack": None,
            "axis": {"title": rows_title, "format": ",d", "tickMinStep": 1, "labelExpr": _INTEGER_LABELS},
        },
        "tooltip": [
            {
                "field": "__value",
                "type": "quantitative",
                "bin": {"maxbins": maxbins},
                "title": "Range",
                "format": _tooltip_format(long.value_type, ctx.currency),
            },
            {"aggregate": "count", "type": "quantitative", "title": "Count"},
        ],
    }
    mark: dict[str, Any] = {"type": "bar", "binSpacing": 1}
    if len(entries) > 1:
        encoding["color"] = {
            "field": "__series",
            "type": "nominal",
            "scale": color_scale,
            "legend": _legend(entries, "square"),
        }
        encoding["tooltip"].insert(0, {"field": "__series", "type": "nominal", "title": "Series"})
        mark["opacity"] = 0.6
    else:
        mark["color"] = _TABLEAU10[0]
    return {
        "mark": mark,
        "encoding": encoding,
        "data": {"values": long.records},
        "width": _WIDTH,
        "height": _HEIGHT,
    }


def _scatter(ctx: _Ctx, metrics: list[_Metric], bubble: bool) -> dict:
    x_metric, y_metric = metrics[0], metrics[1]
    size_metric = metrics[2] if bubble and len(metrics) > 2 else None
    used = [x_metric, y_metric] + ([size_metric] if size_metric else [])
    records = []
    for row in ctx.rows:
        record = {k: v for k, v in row.items() if k in ctx.keep_fields}
        for m in used:
            record[m.column] = row.get(m.column)
        if any(_to_float(row.get(m.column)) is None for m in (x_metric, y_metric)):
            continue
        record["__label"] = " · ".join(str(row[d.label_field]) for d in ctx.dims)
        records.append(record)

    def axis_for(m: _Metric) -> dict:
        axis = _axis_format(m.value_type, [r[m.column] for r in records], ctx.currency)
        axis["title"] = m.label
        return axis

    tips = [{"field": d.label_field, "type": "nominal", "title": d.title} for d in ctx.dims]
    tips += [
        {
            "field": _field(m.column),
            "type": "quantitative",
            "title": m.label,
            "format": _tooltip_format(m.value_type, ctx.currency),
        }
        for m in used
    ]
    encoding: dict[str, Any] = {
        "x": {
            "field": _field(x_metric.column),
            "type": "quantitative",
            "axis": axis_for(x_metric),
            "scale": {"zero": False, "nice": True},
        },
        "y": {
            "field": _field(y_metric.column),
            "type": "quantitative",
            "axis": axis_for(y_metric),
            "scale": {"zero": False, "nice": True},
        },
        "tooltip": tips,
    }
    colour_dim = (
        next((d for d in ctx.dims if d.kind != "time" and 1 < len(d.order) <= 10), None)
        if len(ctx.dims) >= 2
        else None
    )
    if colour_dim is not None:
        encoding["color"] = {
            "field": colour_dim.label_field,
            "type": "nominal",
            "scale": _part_colors(colour_dim.order),
            "title": colour_dim.title,
            "legend": {"orient": "right"},
        }
    if size_metric is not None:
        encoding["size"] = {
            "field": _field(size_metric.column),
            "type": "quantitative",
            "title": size_metric.label,
            "scale": {"range": [30, 900]},
            "legend": {
                "format": _axis_format(
                    size_metric.value_type, [r[size_metric.column] for r in records], ctx.currency
                )["format"]
            },
        }
    mark = {"type": "circle", "opacity": 0.7 if bubble else 0.85, "stroke": "white", "strokeWidth": 0.5}
    if not bubble:
        mark["size"] = 70
    if colour_dim is None:
        mark["color"] = _TABLEAU10[0]
    points = {"mark": mark, "encoding": encoding}
    layers = [points]
    if ctx.dims and len(records) <= 15:
        layers.append(
            {
                "mark": {
                    "type": "text",
                    "align": "left",
                    "dx": 8 if not bubble else 0,
                    "dy": 0 if not bubble else -14,
                    "fontSize": 10,
                    "color": "#444",
                },
                "encoding": {
                    "x": {"field": _field(x_metric.column), "type": "quantitative"},
                    "y": {"field": _field(y_metric.column), "type": "quantitative"},
                    "text": {"field": "__label", "type": "nominal"},
                },
            }
        )
    spec = {"layer": layers, "data": {"values": records}, "width": _WIDTH - 80, "height": _HEIGHT + 40}
    return spec


# ---------------------------------------------------------------------------------------------
# Grids: heatmap, rfm_grid, calendar_heatmap
# ---------------------------------------------------------------------------------------------


def _grid_records(ctx: _Ctx, metric: _Metric, extra_fields: Sequence[str] = ()) -> list[dict]:
    records = []
    for row in ctx.rows:
        record = {k: v for k, v in row.items() if k in ctx.keep_fields or k in extra_fields}
        value = row.get(metric.column)
        record["__value"] = value
        record["__value_text"] = _format_value(value, metric.value_type, ctx.currency)
        records.append(record)
    return records


def _grid_color(metric: _Metric, values: Sequence[Any], ctx: _Ctx, scheme: str = "blues") -> dict:
    numbers = [n for n in (_to_float(v) for v in values) if n is not None]
    scale: dict[str, Any] = {"scheme": scheme}
    if numbers and min(numbers) < 0 < max(numbers):
        scale = {"scheme": "redblue", "domainMid": 0}
    legend = {
        "title": metric.label,
        "format": _axis_format(metric.value_type, values, ctx.currency)["format"],
        "orient": "right",
        "gradientLength": 160,
    }
    return {"field": "__value", "type": "quantitative", "scale": scale, "legend": legend}


def _cell_text_layer(
    records: list[dict], x: dict, y: dict, text_field: str = "__value_text", dy: int = 0, size: int = 11
) -> dict:
    numbers = [n for n in (_to_float(r["__value"]) for r in records) if n is not None]
    low, high = (min(numbers), max(numbers)) if numbers else (0.0, 0.0)
    threshold = low + (high - low) * 0.55
    test = (
        f"datum.__value != null && datum.__value > {threshold!r}"
        if not (low < 0 < high)
        else f"datum.__value != null && abs(datum.__value) > {max(abs(low), abs(high)) * 0.55!r}"
    )
    return {
        "mark": {"type": "text", "fontSize": size, "dy": dy, "limit": 110},
        "encoding": {
            "x": x,
            "y": y,
            "text": {"field": text_field, "type": "nominal"},
            "color": {"condition": {"test": test, "value": "white"}, "value": "#222"},
        },
    }


def _grid_axis(ctx: _Ctx, dim: _Dim, orient_x: bool, reverse: bool = False) -> dict:
    order = list(reversed(dim.order)) if reverse else dim.order
    axis: dict[str, Any] = {
        "title": dim.title,
        "labelLimit": 160,
        "ticks": False,
        "domain": False,
        "labelOverlap": True,
    }
    if orient_x:
        axis["labelAngle"] = -40 if (len(order) > 8 or max((len(s) for s in order), default=0) > 10) else 0
    return {
        "field": dim.label_field,
        "type": "ordinal" if dim.kind != "category" else "nominal",
        "sort": order,
        "axis": axis,
    }


def _heatmap(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    metric = metrics[0]
    time_dims = [d for d in ctx.dims if d.kind == "time"]
    if time_dims:
        x_dim = time_dims[0]
        y_dim = next(d for d in ctx.dims if d is not x_dim)
    else:
        y_dim, x_dim = ctx.dims[0], ctx.dims[1]
    records = _grid_records(ctx, metric)
    return _grid_spec(ctx, metric, records, x_dim, y_dim, metrics)


def _grid_spec(
    ctx,
    metric,
    records,
    x_dim,
    y_dim,
    metrics,
    *,
    y_reverse=False,
    scheme="blues",
    cell_label: str | None = None,
) -> dict:
    x = _grid_axis(ctx, x_dim, True)
    y = _grid_axis(ctx, y_dim, False, reverse=y_reverse)
    tooltip = [
        {"field": x_dim.label_field, "type": "nominal", "title": x_dim.title},
        {"field": y_dim.label_field, "type": "nominal", "title": y_dim.title},
    ]
    if cell_label:
        tooltip.append(
            {"field": cell_label, "type": "nominal", "title": ctx.dim(cell_label[len("__label_") :]).title}
        )
    tooltip.append({"field": "__value_text", "type": "nominal", "title": metric.label})
    for other in metrics[1:]:
        for record, row in zip(records, ctx.rows, strict=False):
            record[f"__text_{other.column}"] = _format_value(
                row.get(other.column), other.value_type, ctx.currency
            )
        tooltip.append({"field": f"__text_{other.column}", "type": "nominal", "title": other.label})
    rect = {
        "mark": {"type": "rect", "stroke": "white", "strokeWidth": 1.5},
        "encoding": {
            "x": x,
            "y": y,
            "color": _grid_color(metric, [r["__value"] for r in records], ctx, scheme),
            "tooltip": tooltip,
        },
    }
    layers = [rect]
    nx, ny = max(len(x_dim.order), 1), max(len(y_dim.order), 1)
    cell_w = max(16, min(70, (_WIDTH - 40) // nx))
    cell_h = max(16, min(40, 400 // ny))
    longest_text = max((len(r["__value_text"]) for r in records), default=0)
    if nx * ny <= 150 and cell_w >= longest_text * 6.5 and cell_h >= 16:
        layers.append(_cell_text_layer(records, x, y, dy=-7 if cell_label else 0))
    if cell_label:
        layers.append(_cell_text_layer(records, x, y, text_field=cell_label, dy=8, size=10))
    return {"layer": layers, "data": {"values": records}, "width": cell_w * nx, "height": cell_h * ny}


def _rfm_grid(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    """Recency on x (low → high), frequency (or F+M) on y (high at the top), colour = metric.
    A third dimension (e.g. the RFM group name) is written in each cell."""

    def find(*words):
        return next((d for d in ctx.dims if any(w in d.name.lower() for w in words)), None)

    x_dim = find("recency", "_r_", "r_score") or ctx.dims[0]
    y_dim = find("frequency", "fm", "f_score", "monetary")
    if y_dim is None or y_dim is x_dim:
        y_dim = next(d for d in ctx.dims if d is not x_dim)
    label_dim = next((d for d in ctx.dims if d is not x_dim and d is not y_dim), None)
    for dim in (x_dim, y_dim):
        raw = ctx.raw.get_column(dim.name)
        if raw.dtype.is_numeric():
            dim.order = [
                lab
                for _, lab in sorted(
                    {
                        (v, r[dim.label_field])
                        for v, r in zip(raw.to_list(), ctx.rows, strict=False)
                        if v is not None
                    }
                )
            ]
    metric = metrics[0]
    records = _grid_records(ctx, metric, extra_fields=[label_dim.label_field] if label_dim else [])
    spec = _grid_spec(
        ctx,
        metric,
        records,
        x_dim,
        y_dim,
        metrics,
        y_reverse=True,
        scheme="tealblues",
        cell_label=label_dim.label_field if label_dim else None,
    )
    nx, ny = max(len(x_dim.order), 1), max(len(y_dim.order), 1)
    spec["width"], spec["height"] = max(80, min(110, 560 // nx)) * nx, max(50, min(80, 400 // ny)) * ny
    return spec


def _calendar_heatmap(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    metric = metrics[0]
    day_dim = next(d for d in ctx.dims if d.kind == "time" and d.grain == "day")
    records = _grid_records(ctx, metric)
    stamps = [_as_datetime(v) for v in ctx.raw.get_column(day_dim.name).to_list()]
    weeks = []
    for record, stamp in zip(records, stamps, strict=False):
        if stamp is None:
            continue
        monday = stamp - _dt.timedelta(days=stamp.weekday())
        record["__week"] = f"{_MONTHS[monday.month - 1]} {monday.day:02d}, {monday.year}"
        record["__weekday"] = _WEEKDAYS[stamp.weekday()]
        record["__date_text"] = _period_text(stamp, "day", long=True)
        weeks.append((monday, record["__week"]))
    records = [r for r in records if "__week" in r]
    week_order = [label for _, label in sorted(set(weeks))]
    first_of_month = []
    seen_months = set()
    for monday, label in sorted(set(weeks)):
        key = (monday.year, monday.month)
        if key not in seen_months:
            seen_months.add(key)
            first_of_month.append(label)
    month_names = {label: f"{_MONTHS[m.month - 1]} {m.year}" for m, label in set(weeks)}
    x = {
        "field": "__week",
        "type": "ordinal",
        "sort": week_order,
        "title": None,
        "axis": {
            "values": first_of_month,
            "labelAngle": 0,
            "ticks": False,
            "domain": False,
            "labelAlign": "left",
            "labelExpr": "{"
            + ", ".join(
                json.dumps(k) + ": " + json.dumps(v) for k, v in month_names.items() if k in first_of_month
            )
            + "}[datum.value]",
        },
    }
    y = {
        "field": "__weekday",
        "type": "ordinal",
        "sort": _WEEKDAYS,
        "title": None,
        "axis": {"ticks": False, "domain": False},
    }
    rect = {
        "mark": {"type": "rect", "stroke": "white", "strokeWidth": 1.5, "cornerRadius": 2},
        "encoding": {
            "x": x,
            "y": y,
            "color": _grid_color(metric, [r["__value"] for r in records], ctx, "greens"),
            "tooltip": [
                {"field": "__date_text", "type": "nominal", "title": "Day"},
                {"field": "__value_text", "type": "nominal", "title": metric.label},
            ],
        },
    }
    cell = 15 if len(week_order) > 30 else 22
    return {
        "layer": [rect],
        "data": {"values": records},
        "width": cell * max(len(week_order), 1),
        "height": cell * 7,
    }


# ---------------------------------------------------------------------------------------------
# single_metric cards
# ---------------------------------------------------------------------------------------------


def _metric_total(ctx: _Ctx, column: str, value_type: str, totals_name: str | None = None) -> float | None:
    if len(ctx.rows) == 1:
        return _to_float(ctx.rows[0].get(column))
    if not ctx.rows:
        return None
    for candidate in (totals_name, f"{column}__totals"):
        if candidate and candidate in ctx.raw.columns:
            return _to_float(ctx.rows[0].get(candidate))
    if value_type in {"percent"}:
        raise CommerceQLSemanticError(
            f"a single_metric shows one number, but `{column}` has {len(ctx.rows)} rows and percentages cannot be added up",
            hint="remove GROUP BY / TIMESERIES, or add WITH TOTALS",
        )
    return sum(_to_float(r.get(column)) or 0.0 for r in ctx.rows)


def _single_metric(ctx: _Ctx, metrics: list[_Metric]) -> dict:
    cards = []
    for metric in metrics:
        value = _metric_total(ctx, metric.column, metric.value_type)
        big = _format_value(value, metric.value_type, ctx.currency)
        record: dict[str, Any] = {"__label": metric.label, "__big": big, "__metric": metric.column}
        lines = []
        for index, (column, suffix, _label) in enumerate(metric.comparisons):
            comparison = _metric_total(ctx, column, metric.value_type, totals_name=f"{column}__totals")
            change = None
            if value is not None and comparison not in (None, 0):
                change = (value - comparison) / abs(comparison)
            elif suffix in metric.percent_changes and len(ctx.rows) == 1:
                change = _to_float(ctx.rows[0].get(metric.percent_changes[suffix]))
            colour = _FLAT_COLOR if not change else (_UP_COLOR if change > 0 else _DOWN_COLOR)
            record[f"__change{index}"] = _format_change(change)
            record[f"__change_color{index}"] = colour
            record[f"__vs{index}"] = (
                f"vs {_format_value(comparison, metric.value_type, ctx.currency)} {ctx.labels.phrase(suffix)}"
            )
            lines.append(index)
        width = max(
            220,
            int(len(big) * 21) + 20,
            max((len(record.get(f"__vs{i}", "")) * 7 + 90 for i in lines), default=0),
        )
        layers = [
            {
                "mark": {
                    "type": "text",
                    "align": "left",
                    "baseline": "top",
                    "fontSize": 13,
                    "color": "#555",
                    "x": 0,
                    "y": 4,
                },
                "encoding": {"text": {"field": "__label", "type": "nominal"}},
            },
            {
                "mark": {
                    "type": "text",
                    "align": "left",
                    "baseline": "top",
                    "fontSize": 34,
                    "fontWeight": "bold",
                    "color": "#202223",
                    "x": 0,
                    "y": 28,
                },
                "encoding": {
                    "text": {"field": "__big", "type": "nominal"},
                    "tooltip": [
                        {"field": "__label", "type": "nominal", "title": "Metric"},
                        {"field": "__big", "type": "nominal", "title": "Value"},
                    ],
                },
            },
        ]
        for line, index in enumerate(lines):
            y = 78 + 22 * line
            layers.append(
                {
                    "mark": {
                        "type": "text",
                        "align": "left",
                        "baseline": "top",
                        "fontSize": 13,
                        "fontWeight": "bold",
                        "x": 0,
                        "y": y,
                    },
                    "encoding": {
                        "text": {"field": f"__change{index}", "type": "nominal"},
                        "color": {"field": f"__change_color{index}", "type": "nominal", "scale": None},
                    },
                }
            )
            layers.append(
                {
                    "mark": {
                        "type": "text",
                        "align": "left",
                        "baseline": "top",
                        "fontSize": 12,
                        "color": "#6d7175",
                        "x": 78,
                        "y": y + 1,
                    },
                    "encoding": {"text": {"field": f"__vs{index}", "type": "nominal"}},
                }
            )
        height = 80 + 22 * len(lines)
        cards.append({"layer": layers, "data": {"values": [record]}, "width": width, "height": height})
    if len(cards) == 1:
        return cards[0]
    return {"hconcat": cards, "spacing": 40}


# ---------------------------------------------------------------------------------------------
# Text tables: list, list_with_dimension_values, table
# ---------------------------------------------------------------------------------------------


def _text_table(ctx: _Ctx, columns: list[tuple[str, list[str], bool]], title_rows: int | None = None) -> dict:
    """A table drawn with text marks: columns = [(header, cell texts, right aligned)]."""
    n_rows = max((len(cells) for _, cells, _ in columns), default=0)
    row_height = 22
    records = [{"__row": i} for i in range(n_rows)]
    charts = []
    for index, (header, cells, right) in enumerate(columns):
        key = f"__c{index}"
        for record, text in zip(records, cells, strict=False):
            record[key] = text
        longest = max([len(header)] + [len(c) for c in cells])
        width = int(min(320, max(48, longest * 7 + 12)))
        mark = {
            "type": "text",
            "align": "right" if right else "left",
            "baseline": "middle",
            "fontSize": 12,
            "limit": width,
            "color": "#202223",
            "x": width if right else 0,
        }
        column: dict[str, Any] = {
            "width": width,
            "height": row_height * max(n_rows, 1),
            "title": {
                "text": header,
                "anchor": "end" if right else "start",
                "fontSize": 12,
                "fontWeight": "bold",
                "color": "#202223",
                "offset": 6,
            },
            "encoding": {
                "y": {"field": "__row", "type": "ordinal", "axis": None},
                "text": {"field": key, "type": "nominal"},
            },
        }
        if title_rows is None:
            column["mark"] = mark
        else:  # the totals row is bold
            column["layer"] = [
                {"transform": [{"filter": f"datum.__row < {title_rows}"}], "mark": mark},
                {
                    "transform": [{"filter": f"datum.__row >= {title_rows}"}],
                    "mark": {**mark, "fontWeight": "bold"},
                },
            ]
        charts.append(column)
    return {"hconcat": charts, "spacing": 24, "data": {"values": records}}


def _metric_columns(
    ctx: _Ctx, metrics: list[_Metric], *, with_comparisons: bool
) -> list[tuple[str, list[str], bool]]:
    columns = []
    for metric in metrics:
        columns.append(
            (
                metric.label,
                [_format_value(r.get(metric.column), metric.value_type, ctx.currency) for r in ctx.rows],
                True,
            )
        )
        if not with_comparisons:
            continue
        for column, suffix, label in metric.comparisons:
            columns.append(
                (
                    label,
                    [_format_value(r.get(column), metric.value_type, ctx.currency) for r in ctx.rows],
                    True,
                )
            )
            pc = metric.percent_changes.get(suffix)
            if pc:
                columns.append(
                    (
                        ctx.infos[pc].label if pc in ctx.infos else f"% change vs {ctx.labels.phrase(suffix)}",
                        [_format_change(r.get(pc)) for r in ctx.rows],
                        True,
                    )
                )
    return columns


def _totals_row(
    ctx: _Ctx,
    metrics: list[_Metric],
    columns: list[tuple[str, list[str], bool]],
    n_dims: int,
    with_comparisons: bool,
) -> bool:
    """Append a "Total" row when the result carries WITH TOTALS columns; True if added."""
    totals = []
    for metric in metrics:
        totals.append(f"{metric.column}__totals")
        if with_comparisons:
            for column, suffix, _ in metric.comparisons:
                totals.append(f"{column}__totals")
                if metric.percent_changes.get(suffix):
                    totals.append(None)
    if not ctx.rows or not any(t in ctx.raw.columns for t in totals if t):
        return False
    first = ctx.rows[0]
    texts = ["Total"] + [""] * (n_dims - 1) if n_dims else []
    value_types = []
    for metric in metrics:
        value_types.append(metric.value_type)
        if with_comparisons:
            for _column, suffix, _ in metric.comparisons:
                value_types.append(metric.value_type)
                if metric.percent_changes.get(suffix):
                    value_types.append("percent_change")
    for name, value_type in zip(totals, value_types, strict=False):
        if name and name in ctx.raw.columns:
            texts.append(_format_value(first.get(name), value_type, ctx.currency))
        else:
            texts.append("")
    for (_, cells, _), text in zip(columns, texts, strict=False):
        cells.append(text)
    return True


def _table(ctx: _Ctx, metrics: list[_Metric], chart_type: str) -> dict:
    if chart_type == "list":
        if not ctx.dims:
            row = ctx.rows[0] if ctx.rows else {}
            labels = [m.label for m in metrics]
            values = [_format_value(row.get(m.column), m.value_type, ctx.currency) for m in metrics]
            return _text_table(ctx, [("Metric", labels, False), ("Value", values, True)])
        label = " · ".join(d.title for d in ctx.dims)
        names = [" · ".join(str(r[d.label_field]) for d in ctx.dims) for r in ctx.rows]
        columns = [("#", [f"{i + 1}." for i in range(len(names))], True), (label, names, False)]
        columns += _metric_columns(ctx, metrics, with_comparisons=False)
        return _text_table(ctx, columns)
    with_comparisons = chart_type == "table"
    columns = [(d.title, [str(r[d.label_field]) for r in ctx.rows], False) for d in ctx.dims]
    columns += _metric_columns(ctx, metrics, with_comparisons=with_comparisons)
    added = (
        _totals_row(ctx, metrics, columns, len(ctx.dims), with_comparisons)
        if chart_type == "table"
        else False
    )
    return _text_table(ctx, columns, title_rows=len(ctx.rows) if added else None)


# ---------------------------------------------------------------------------------------------
# build_chart
# ---------------------------------------------------------------------------------------------


def _derived_title(metrics: list[_Metric], dims: list[_Dim]) -> str:
    names = [m.label for m in metrics]
    text = _join_words([names[0]] + [_lower_first(n) for n in names[1:]]) if names else "Chart"
    if dims:
        text += " by " + _join_words([_lower_first(d.title) for d in dims])
    return text


def _subtitle(metrics: list[_Metric], labels: ColumnLabels) -> str | None:
    suffixes = list(dict.fromkeys(s for m in metrics for _, s, _ in m.comparisons))
    if not suffixes:
        return None
    return "Compared with " + _join_words([labels.phrase(s) for s in suffixes])


def _no_data_spec(message: str = "No data for this query") -> dict:
    return {
        "data": {"values": [{"__text": message}]},
        "mark": {"type": "text", "fontSize": 14, "color": "#6d7175"},
        "encoding": {"text": {"field": "__text", "type": "nominal"}},
        "width": 400,
        "height": 120,
    }


def _draw(ctx: _Ctx, chart_type: str, metrics: list[_Metric]) -> dict:
    if not ctx.rows:
        return _no_data_spec()
    if chart_type in _CARTESIAN_TYPES:
        return _cartesian(ctx, chart_type, metrics)
    if chart_type == "single_stacked_bar":
        return _single_stacked_bar(ctx, metrics)
    if chart_type == "donut":
        return _donut(ctx, metrics)
    if chart_type == "funnel":
        return _funnel(ctx, metrics)
    if chart_type == "waterfall":
        return _waterfall(ctx, metrics)
    if chart_type == "histogram":
        return _histogram(ctx, metrics)
    if chart_type in {"scatter_plot", "bubble_chart"}:
        return _scatter(ctx, metrics, bubble=chart_type == "bubble_chart")
    if chart_type == "heatmap":
        return _heatmap(ctx, metrics)
    if chart_type == "rfm_grid":
        return _rfm_grid(ctx, metrics)
    if chart_type == "calendar_heatmap":
        return _calendar_heatmap(ctx, metrics)
    if chart_type == "single_metric":
        return _single_metric(ctx, metrics)
    if chart_type in _TABLE_TYPES:
        return _table(ctx, metrics, chart_type)
    raise CommerceQLSemanticError(f"cannot draw a `{chart_type}` chart")  # pragma: no cover


def _config(currency: _Currency) -> dict:
    return {
        "locale": {"number": currency.d3_locale()},
        "view": {"stroke": None},
        "font": "Helvetica, Arial, sans-serif",
        "axis": {
            "labelFontSize": 11,
            "titleFontSize": 12,
            "titleFontWeight": "normal",
            "labelColor": "#444",
            "titleColor": "#333",
            "gridColor": "#e7e7e7",
            "domainColor": "#999",
            "tickColor": "#999",
        },
        "axisX": {"grid": False},
        "legend": {"labelFontSize": 11, "symbolStrokeWidth": 2},
        "title": {
            "anchor": "start",
            "fontSize": 15,
            "subtitleFontSize": 12,
            "subtitleColor": "#6d7175",
            "offset": 12,
        },
    }


# The Altair class of a spec by its top-level key (names: altair is imported on first use).
_TOP_LEVEL_CLASSES = {
    "layer": "LayerChart",
    "hconcat": "HConcatChart",
    "vconcat": "VConcatChart",
    "concat": "ConcatChart",
}


def _to_altair(spec: dict) -> alt.TopLevelMixin:
    """The Altair object for a finished spec.

    Inline data is moved to top-level named `datasets` first: Altair's from_dict inspects every
    value it converts, which costs seconds for a few thousand records, while `datasets` is kept
    as plain data. `chart_to_vegalite` puts the records back inline."""
    datasets: dict[str, list] = {}

    def extract(node: Any) -> Any:
        if isinstance(node, dict):
            out = {}
            for key, value in node.items():
                if key == "data" and isinstance(value, dict) and set(value) == {"values"}:
                    name = f"commerceql_data_{len(datasets)}"
                    datasets[name] = value["values"]
                    out[key] = {"name": name}
                else:
                    out[key] = extract(value)
            return out
        if isinstance(node, list):
            return [extract(item) for item in node]
        return node

    import altair as alt

    stripped = extract(spec)
    cls = getattr(alt, next((c for key, c in _TOP_LEVEL_CLASSES.items() if key in stripped), "Chart"))
    chart = cls.from_dict(stripped, validate=False)
    if datasets:
        chart.datasets = datasets
    return chart


def build_chart(df: pl.DataFrame, columns: Sequence[ColumnInfo], request: ChartRequest) -> alt.TopLevelMixin:
    """The Altair chart for VISUALIZE over an engine result (`build_chart_spec` as an Altair object).

    Raises CommerceQLNameError for unknown chart types or columns and CommerceQLSemanticError for
    data a chart type cannot show; anything else that goes wrong is reported as a
    CommerceQLSemanticError too, never as a raw Altair/Python exception.
    """
    return altair_chart(build_chart_spec(df, columns, request))


def altair_chart(spec: dict) -> alt.TopLevelMixin:
    """The Altair object of a spec made by `build_chart_spec` (errors as in `build_chart`)."""
    try:
        return _to_altair(spec)
    except Exception as exc:  # noqa: BLE001 - surface as a query error, never a raw traceback
        raise CommerceQLSemanticError(
            f"could not draw the chart: {exc}",
            hint="try another TYPE, or report this query as a bug",
        ) from exc


def build_chart_spec(df: pl.DataFrame, columns: Sequence[ColumnInfo], request: ChartRequest) -> dict[str, Any]:
    """The Vega-Lite spec (data inline, JSON-safe) for VISUALIZE over an engine result.

    The same spec `chart_to_vegalite(build_chart(...))` gives, without Altair's round trip (its
    from_dict validates every node: most of a control change's time in the explore widget).
    Errors as in `build_chart`.
    """
    try:
        return _build_chart(df, columns, request)
    except CommerceQLError:
        raise
    except Exception as exc:  # noqa: BLE001 - surface as a query error, never a raw traceback
        raise CommerceQLSemanticError(
            f"could not draw the chart: {exc}",
            hint="try another TYPE, or report this query as a bug",
        ) from exc


def _build_chart(df: pl.DataFrame, columns: Sequence[ColumnInfo], request: ChartRequest) -> dict[str, Any]:
    if not isinstance(df, pl.DataFrame):
        raise CommerceQLSemanticError("cannot draw a chart: the result is not a table")
    if request.max_points is not None and request.max_points < 1:
        raise CommerceQLSemanticError(f"MAX must be a positive number, not {request.max_points}")
    currency = _Currency.of(request.currency)
    infos, labels = _column_infos(df, columns, request.labels)
    metrics = _resolve_metrics(df, infos, request.metrics)
    if not metrics:
        raise CommerceQLSemanticError(
            "there is no metric to visualize", hint="VISUALIZE needs at least one metric"
        )

    requested_types = list(request.chart_types or ())
    if len(metrics) != len(requested_types):
        by_name = dict(zip(request.metrics, requested_types, strict=False))
        requested_types = [by_name.get(m.column) for m in metrics]
    requested_types = list(
        propagate_chart_types([validate_chart_type(t) if t else None for t in requested_types])
    )
    auto = default_chart_type(df, columns, request)
    resolved = [t or auto for t in requested_types]

    groups: list[tuple[str, list[_Metric]]] = []
    for chart_type, metric in zip(resolved, metrics, strict=False):
        chart_type = _fallback(
            chart_type, df, infos, [m for m, t in zip(metrics, resolved, strict=False) if t == chart_type]
        )
        for existing_type, members in groups:
            if existing_type == chart_type:
                members.append(metric)
                break
        else:
            groups.append((chart_type, [metric]))

    raw = _apply_max(df, infos, groups[0][0], request.max_points)
    prepared = _json_ready(raw)
    rows = prepared.to_dicts()
    dims = _build_dims(raw, infos, rows, currency)
    ctx = _Ctx(raw=raw, rows=rows, infos=infos, dims=dims, currency=currency, request=request, labels=labels)
    ctx.keep_fields = {d.name for d in dims} | {d.label_field for d in dims}

    drawn_types = [t for t, _ in groups]
    if len(groups) == 1:
        spec = _draw(ctx, groups[0][0], groups[0][1])
    elif all(t in _LAYERABLE_TYPES for t in drawn_types) and dims and rows:
        spec = _combo_chart(ctx, groups)
    else:
        spec = {"vconcat": [_draw(ctx, t, ms) for t, ms in groups], "spacing": 30}

    title_text = request.title or _derived_title(metrics, dims)
    title: dict[str, Any] = {"text": title_text}
    subtitle = _subtitle(metrics, labels)
    if subtitle and not request.title:
        title["subtitle"] = subtitle
    full = {
        "$schema": VEGA_LITE_SCHEMA_URL,
        "title": title,
        **spec,
        "config": _config(currency),
        "usermeta": {
            "commerceql": {
                "requested_types": [t for t in requested_types],
                "chart_types": drawn_types,
                "metrics": [m.column for m in metrics],
                "max_points": request.max_points,
                "currency": currency.code,
            }
        },
    }
    # What Altair's default theme adds when it writes a spec (to_dict): the specs stay exactly
    # what they were when every chart went through Altair.
    view = full["config"].setdefault("view", {})
    for key, size in _ALTAIR_DEFAULT_VIEW.items():
        view.setdefault(key, size)
    return _json_safe(full)


_ALTAIR_DEFAULT_VIEW = {"continuousWidth": 300, "continuousHeight": 300}


# ---------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Decimal):
        return _to_float(value)
    if isinstance(value, _dt.datetime):
        return (value.replace(tzinfo=None) if value.tzinfo else value).isoformat(timespec="seconds")
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day).isoformat(timespec="seconds")
    if isinstance(value, _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if hasattr(value, "item"):  # numpy scalars
        return _json_safe(value.item())
    return str(value)


def _inline_datasets(spec: Any, datasets: dict) -> Any:
    if isinstance(spec, dict):
        out = {}
        for key, value in spec.items():
            if (
                key == "data"
                and isinstance(value, dict)
                and set(value) == {"name"}
                and value["name"] in datasets
            ):
                out[key] = {"values": datasets[value["name"]]}
            else:
                out[key] = _inline_datasets(value, datasets)
        return out
    if isinstance(spec, list):
        return [_inline_datasets(v, datasets) for v in spec]
    return spec


def chart_to_vegalite(chart) -> dict:
    """The chart's Vega-Lite spec with every dataset inline (`data.values`), JSON-serializable."""
    if isinstance(chart, dict):
        spec = chart
    else:
        try:
            spec = chart.to_dict(validate=False)
        except Exception as exc:  # noqa: BLE001
            raise CommerceQLSemanticError(f"could not convert the chart to Vega-Lite: {exc}") from exc
    datasets = spec.get("datasets") or {}
    if datasets:
        spec = {k: v for k, v in spec.items() if k != "datasets"}
        spec = _inline_datasets(spec, datasets)
    return _json_safe(spec)


def _vl_version() -> str | None:
    import vl_convert

    match = re.match(r"v?(\d+)\.(\d+)", VEGA_LITE_SCHEMA_VERSION)
    if match:
        wanted = f"{match.group(1)}.{match.group(2)}"
        if wanted in vl_convert.get_vegalite_versions():
            return wanted
    return None


def save_chart(chart, path: str | Path) -> Path:
    """Write the chart by the file's suffix: .png / .svg (rendered offline with vl-convert),
    .html (standalone page with Vega, Vega-Lite and Vega-Embed inlined, no CDN) or .json (the
    Vega-Lite spec). Returns the path written."""
    import vl_convert

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in {".png", ".svg", ".html", ".htm", ".json", ".pdf"}:
        raise CommerceQLSemanticError(
            f"cannot save a chart as `{path.suffix or path.name}`",
            hint="use a file name ending in .png, .svg, .html or .json",
        )
    spec = chart_to_vegalite(chart)
    version = _vl_version()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        if suffix == ".png":
            path.write_bytes(vl_convert.vegalite_to_png(spec, vl_version=version, scale=2))
        elif suffix == ".pdf":
            path.write_bytes(vl_convert.vegalite_to_pdf(spec, vl_version=version))
        elif suffix == ".svg":
            path.write_text(vl_convert.vegalite_to_svg(spec, vl_version=version), encoding="utf-8")
        elif suffix in {".html", ".htm"}:
            html = vl_convert.vegalite_to_html(spec, vl_version=version, bundle=True)
            path.write_text(html, encoding="utf-8")
        else:
            path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
    except CommerceQLError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CommerceQLSemanticError(f"could not render the chart to {path.name}: {exc}") from exc
    return path
