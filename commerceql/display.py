"""Showing results to people: one renderer for every surface.

Every table CommerceQL shows — the kernel's HTML and text, the IPython magic, the explore widget,
the CLI's `table` and `markdown` formats, exported HTML pages, `%schema` listings — is built here,
in two steps:

1. `result_table(result)` (or `frame_table(frame)` for a plain Polars frame such as a schema
   listing) turns the data into a `Table`: human headers, formatted cells, and the rows a reader
   expects. `WITH TOTALS` becomes a **Total** row under the table (read from the `…__totals`
   columns, so the total of an average is the average over all rows, never a sum of the rows
   shown); `WITH GROUP_TOTALS` over two or more dimensions becomes subtotal rows. The generated
   total columns themselves stay in `Result.df` and in CSV/JSON/Parquet: that is the data's shape.
2. `table_html`, `table_text` and `table_markdown` draw a `Table` in one style: text left, numbers
   right, money in the store currency, long texts wrapped (to a width in text, to a maximum
   width in HTML).

Headers are written in one place (`column_labels`; `column_headers(result)` for a result):
"Net sales", "Net sales (previous year)", "% change vs previous year", alias text as written. The
charts' titles, axes and legends and the explore widget's metric and dimension lists use the same
words. The raw column name stays in `Result.columns` and is shown on hover (HTML `title=`).

Money is formatted by `Currency` (symbol, placement, minor units from Babel's CLDR data), which the
charts use too, so a table and a chart of the same result write the same amounts.
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import re
import textwrap
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Literal

from commerceql.columns import ColumnInfo, comparison_totals_name, totals_name

if TYPE_CHECKING:
    import polars as pl

    from commerceql.result import Result

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")
NULL_TEXT = "—"
TOTAL_LABEL = "Total"
ALL_LABEL = "All"  # a subtotal row's cell for the dimensions it adds up over
NUMERIC_TYPES = frozenset({"money", "percent", "count", "number", "duration", "integer"})

# -------------------------------------------------------------------------------------------------
# Currency: one table for tables and charts
# -------------------------------------------------------------------------------------------------

# Used only when Babel is missing (it comes with JupyterLab, a dependency): symbol and ISO 4217
# minor units of the common store currencies. Babel knows every ISO currency.
_FALLBACK_SYMBOLS = {
    "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "CN¥", "INR": "₹", "KRW": "₩",
    "CAD": "CA$", "AUD": "A$", "NZD": "NZ$", "HKD": "HK$", "MXN": "MX$", "BRL": "R$",
    "TWD": "NT$", "ILS": "₪", "VND": "₫", "PHP": "₱",
}  # fmt: skip
_FALLBACK_MINOR_UNITS = {"JPY": 0, "KRW": 0, "VND": 0, "CLP": 0, "ISK": 0, "UGX": 0, "PYG": 0, "XOF": 0, "XAF": 0,
                         "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3}  # fmt: skip


@dataclass(frozen=True)
class Currency:
    """How amounts of one currency are written: `$1,234.50`, `₩1,234`, `¥1,234`, `1,234.00 CHF`.

    The symbol is CLDR's English (en_US) symbol, written before the number; a currency without a
    symbol of its own in English is written as the number followed by its ISO code. `decimals` is
    the currency's minor unit (0 for KRW and JPY, 3 for KWD).
    """

    code: str
    symbol: str | None
    decimals: int

    @classmethod
    def of(cls, code: str | None) -> Currency:
        return _currency((code or "USD").strip().upper() or "USD")

    @property
    def prefix(self) -> str:
        return self.symbol or ""

    @property
    def suffix(self) -> str:
        return "" if self.symbol else f" {self.code}"

    def format(self, value: float | Decimal, decimals: int | None = None) -> str:
        places = self.decimals if decimals is None else decimals
        # Round the exact decimal half away from zero, as accountants do (1,161,401.345 -> .35).
        exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
        rounded = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        sign = "-" if rounded < 0 else ""
        return f"{sign}{self.prefix}{abs(rounded):,.{places}f}{self.suffix}"

    def d3_locale(self) -> dict[str, Any]:
        """A d3-format locale whose `$` is this currency (Vega-Lite `config.locale.number`)."""
        return {"decimal": ".", "thousands": ",", "grouping": [3], "currency": [self.prefix, self.suffix]}


@functools.lru_cache(maxsize=64)
def _currency(code: str) -> Currency:
    try:
        from babel.numbers import get_currency_precision, get_currency_symbol
    except ImportError:  # pragma: no cover - Babel comes with JupyterLab
        return Currency(code, _FALLBACK_SYMBOLS.get(code), _FALLBACK_MINOR_UNITS.get(code, 2))
    symbol = get_currency_symbol(code, locale="en_US")
    return Currency(code, symbol if symbol != code else None, int(get_currency_precision(code)))


def format_money(value: float | Decimal, currency: str) -> str:
    return Currency.of(currency).format(value)


# -------------------------------------------------------------------------------------------------
# Cells
# -------------------------------------------------------------------------------------------------


def format_value(value: Any, column: ColumnInfo, currency: str = "USD") -> str:
    """One cell as text."""
    if value is None:
        return NULL_TEXT
    kind = column.type
    if isinstance(value, float) and value != value:  # NaN
        return NULL_TEXT
    if kind == "money" and isinstance(value, (int, float, Decimal)):
        return format_money(value, currency)
    if kind == "percent" and isinstance(value, (int, float, Decimal)):
        return f"{float(value) * 100:,.1f}%"
    if kind in ("count", "integer") and isinstance(value, (int, float, Decimal)):
        if float(value).is_integer():
            return f"{int(value):,}"
        return f"{float(value):,.2f}"
    if kind == "number" and isinstance(value, (int, float, Decimal)):
        return f"{float(value):,.2f}"
    if kind == "duration" and isinstance(value, (int, float, Decimal)):
        seconds = int(round(float(value)))
        return f"{seconds // 60}m {seconds % 60:02d}s"
    if kind == "day_of_week" and isinstance(value, int):
        return WEEKDAYS[value] if 0 <= value < 7 else str(value)
    if kind == "month_of_year" and isinstance(value, int):
        return MONTHS[value - 1] if 1 <= value <= 12 else str(value)
    if kind == "hour_of_day" and isinstance(value, int):
        return f"{value:02d}:00"
    if isinstance(value, dt.datetime):
        if kind == "hour":
            return value.strftime("%Y-%m-%d %H:00")
        if kind == "minute":
            return value.strftime("%Y-%m-%d %H:%M")
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        if kind == "month":
            return value.strftime("%b %Y")
        if kind == "quarter":
            return f"{value.year} Q{(value.month - 1) // 3 + 1}"
        if kind == "year":
            return str(value.year)
        if kind == "week":
            return f"Week of {value.isoformat()}"
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


# -------------------------------------------------------------------------------------------------
# Headers
# -------------------------------------------------------------------------------------------------

# Words a header writes in capitals (humanize("utm_source") -> "UTM source").
_ACRONYMS = {"aov": "AOV", "sku": "SKU", "utm": "UTM", "rfm": "RFM", "ltv": "LTV", "id": "ID", "url": "URL",
             "b2b": "B2B", "dtc": "DTC", "pos": "POS", "bfcm": "BFCM", "cogs": "COGS", "ip": "IP"}  # fmt: skip


def humanize(name: str) -> str:
    """A field name as a header: net_sales -> "Net sales", utm_source -> "UTM source"."""
    words = [w for w in name.split("_") if w]
    if not words:
        return name
    out = [_ACRONYMS.get(w.lower(), w) for w in words]
    if out[0] == words[0]:
        out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


_MONTH_ABBREVIATIONS = frozenset(m[:3] for m in MONTHS)


def comparison_phrase(suffix: str | None, title: str | None = None) -> str:
    """The words for a comparison in a header or a chart: "previous year", "Jan 1 – Mar 31, 2024".

    `title` is the plan's title of the comparison (`ComparisonPlan.label`); without one (a chart
    drawn from a bare frame) the title of a named comparison is looked up, and a date suffix
    (`20240101`) is written as a date.
    """
    if suffix is None:
        return ""
    label = title
    if not label:
        # The plan's own words for named comparisons ("Previous year, matching day of week"):
        # dates.py keeps them; one table, so a chart of a bare frame says what its table says.
        from commerceql.dates import RELATIVE_TITLES

        label = RELATIVE_TITLES.get(suffix)
    if not label:
        if re.fullmatch(r"\d{8}", suffix):
            return f"{suffix[:4]}-{suffix[4:6]}-{suffix[6:]}"
        label = humanize(suffix)
    # "Previous year (Nov 29 – Dec 2, 2023)" -> "previous year"; the dates stay on hover.
    short = re.sub(r"\s*\([^()]*\)$", "", label) or label
    first_word = re.split(r"[\s,]", short, maxsplit=1)[0]
    # Lower-case a leading word ("Previous year") so it reads inside a sentence, but never a
    # month ("Jan 1 – Mar 31, 2024") or an acronym.
    if len(short) > 1 and short[0].isupper() and short[1].islower() and first_word not in _MONTH_ABBREVIATIONS:
        short = short[0].lower() + short[1:]
    return short


@dataclass(frozen=True)
class ColumnLabels:
    """The words a reader sees for a result's columns: every table header and chart title uses them.

    * headers: raw column name -> header ("Net sales", "Net sales (previous year)", "revenue").
    * phrases: comparison suffix -> its words ("previous year"), for legends and subtitles.
    """

    headers: dict[str, str]
    phrases: dict[str, str]

    def header(self, name: str) -> str:
        return self.headers.get(name) or humanize(name)

    def phrase(self, suffix: str) -> str:
        return self.phrases.get(suffix) or comparison_phrase(suffix)


def column_labels(
    columns: Sequence[ColumnInfo],
    *,
    aliases: Collection[str] | None = None,
    comparison_titles: Mapping[str, str] | None = None,
) -> ColumnLabels:
    """Headers and comparison phrases of `columns`.

    `aliases` are the names the query wrote with AS (shown as written, never humanized); without
    them, a metric's or dimension's `display_name` is taken for one (the resolver sets it only from
    an alias). `comparison_titles` are the plan's comparison titles by suffix.
    """
    columns = list(columns)
    if aliases is None:
        aliases = {c.display_name for c in columns if c.display_name and c.role in ("metric", "dimension", "time")}
    titles = dict(comparison_titles or {})
    phrases = {c.comparison: comparison_phrase(c.comparison, titles.get(c.comparison)) for c in columns if c.comparison}
    for suffix, title in titles.items():
        phrases.setdefault(suffix, comparison_phrase(suffix, title))
    # Aliases the query wrote (`net_sales AS revenue`) are shown as written; a name the resolver
    # made up (`sum(net_sales)` -> sum_net_sales) is humanized like a model name.
    base_labels: dict[str, str] = {}
    for column in columns:
        if column.role in ("metric", "dimension", "time"):
            alias = column.display_name if column.display_name in aliases else None
            base_labels[column.name] = alias or humanize(column.name)
    metric_count = sum(1 for c in columns if c.role == "metric")

    def base(column: ColumnInfo) -> str:
        name = column.base or column.name
        return base_labels.get(name) or humanize(name)

    headers: dict[str, str] = {}
    for column in columns:
        phrase = phrases.get(column.comparison, "") if column.comparison else ""
        if column.name in base_labels:
            label = base_labels[column.name]
        elif column.display_name in aliases:
            label = column.display_name
        elif column.role == "comparison":
            label = f"{base(column)} ({phrase})"
        elif column.role == "percent_change":
            label = f"% change vs {phrase}" if metric_count <= 1 else f"{base(column)} % change vs {phrase}"
        elif column.role == "cumulative":
            label = f"{base(column)} (running total{', ' + phrase if phrase else ''})"
        elif column.role == "totals":
            label = f"{base(column)} ({'total, ' + phrase if phrase else 'total'})"
        elif column.role == "group_totals":
            dimension = column.name.rsplit("__", 1)[-1].removesuffix("_totals")
            label = f"{base(column)} (total by {humanize(dimension).lower()})"
        elif column.role == "comparison_period":
            label = f"{humanize(column.base or column.name)} ({phrase})" if phrase else humanize(column.name)
        else:
            label = humanize(column.name)
        headers[column.name] = label
    return ColumnLabels(headers=headers, phrases=phrases)


def result_labels(result: Result) -> ColumnLabels:
    """`column_labels` of a result, with the aliases its query wrote and its plan's comparison titles."""
    return column_labels(
        result.columns,
        aliases={item.alias.name for item in result.query.show if item.alias is not None},
        comparison_titles={c.suffix: c.label for c in result.plan.comparisons if c.label},
    )


def column_headers(result: Result) -> dict[str, str]:
    """The header of every column of `result`, by raw column name."""
    return result_labels(result).headers


# -------------------------------------------------------------------------------------------------
# The table model
# -------------------------------------------------------------------------------------------------

RowKind = Literal["row", "other", "subtotal", "total"]


@dataclass(frozen=True)
class Header:
    label: str
    name: str  # the raw column name (hover text, Result.columns)
    numeric: bool
    description: str = ""
    wrap: bool = False  # a long text column: wrapped rather than widened


@dataclass(frozen=True)
class TableRow:
    cells: tuple[str, ...]
    kind: RowKind = "row"


@dataclass
class Table:
    """What a reader sees: headers, rows (with subtotal and total rows), notes under the table."""

    headers: list[Header]
    rows: list[TableRow]
    notes: list[str] = field(default_factory=list)  # "showing 20 of 1,204 rows"
    notices: list[str] = field(default_factory=list)  # how the query was answered
    empty_text: str = "no rows"

    @property
    def body(self) -> list[TableRow]:
        return [r for r in self.rows if r.kind != "total"]

    @property
    def total(self) -> TableRow | None:
        return next((r for r in self.rows if r.kind == "total"), None)


def _is_hidden(column: ColumnInfo) -> bool:
    # Totals are shown as rows, not as columns repeating one number on every row.
    return column.role in ("totals", "group_totals")


def _first(frame: pl.DataFrame, name: str) -> Any:
    return frame[name][0] if name in frame.columns and frame.height else None


def _percent_change(value: Any, comparison: Any) -> float | None:
    if value is None or comparison is None:
        return None
    current, previous = float(value), float(comparison)
    if previous == 0 or current != current or previous != previous:
        return None
    return (current - previous) / abs(previous)


def _total_cells(result: Result, shown: list[ColumnInfo], cut: bool) -> tuple[str, ...] | None:
    """The Total row from the `…__totals` columns (the engine's total over all rows)."""
    if not result.plan.totals or result.df.height == 0:
        return None
    if not any(c.role in ("dimension", "time") for c in shown):
        return None  # one row with no grouping: it is the total already
    frame = result.df
    if any(d.only_top for d in result.plan.dimensions):
        # ONLY TOP keeps the other values out of the rows, not out of the totals (docs/language.md).
        label = f"{TOTAL_LABEL} (all values)"
    else:
        label = f"{TOTAL_LABEL} (all {result.total_rows:,} rows)" if cut else TOTAL_LABEL
    cells: list[str] = []
    labelled = False
    for column in shown:
        value: Any = None
        known = False
        if column.role == "metric":
            value, known = _first(frame, f"{column.name}__totals"), f"{column.name}__totals" in frame.columns
        elif column.role == "comparison" and column.base:
            name = comparison_totals_name(column.base, str(column.comparison))
            value, known = _first(frame, name), name in frame.columns
        elif column.role == "percent_change" and column.base:
            current = totals_name(column.base)
            previous = comparison_totals_name(column.base, str(column.comparison))
            if current in frame.columns and previous in frame.columns:
                value, known = _percent_change(_first(frame, current), _first(frame, previous)), True
        if column.role in ("dimension", "time") and not labelled:
            cells.append(label)
            labelled = True
        elif known:
            cells.append(format_value(value, column, result.currency))
        else:
            cells.append("")
    return tuple(cells)


def _subtotal_rows(
    result: Result, shown: list[ColumnInfo], records: list[tuple[Any, ...]], names: list[str]
) -> list[tuple[int, int, TableRow]] | None:
    """Subtotal rows of `WITH GROUP_TOTALS` over two or more dimensions, and where they go.

    Returns (dimension index, group key index, row); None when there are none to show.
    """
    dimensions = [c for c in result.columns if c.role in ("dimension", "time")]
    if not result.plan.group_totals or len(dimensions) < 2:
        return None
    rows: list[tuple[int, int, TableRow]] = []
    for d_index, dimension in enumerate(dimensions):
        seen: dict[Any, tuple[Any, ...]] = {}
        position = names.index(dimension.name)
        for record in records:
            seen.setdefault(record[position], record)
        for g_index, (key, record) in enumerate(seen.items()):
            cells: list[str] = []
            for column in shown:
                if column.name == dimension.name:
                    cells.append(format_value(key, column, result.currency))
                elif column.role in ("dimension", "time"):
                    cells.append(ALL_LABEL)
                elif column.role == "metric" and f"{column.name}__{dimension.name}_totals" in names:
                    value = record[names.index(f"{column.name}__{dimension.name}_totals")]
                    cells.append(format_value(value, column, result.currency))
                else:
                    cells.append("")
            rows.append((d_index, g_index, TableRow(tuple(cells), "subtotal")))
    return rows


def result_table(result: Result, max_rows: int = 1000) -> Table:
    """The table a reader sees for `result` (at most `max_rows` data rows)."""
    headers_by_name = column_headers(result)
    shown = [c for c in result.columns if not _is_hidden(c)]
    names = list(result.df.columns)
    records = list(result.df.head(max_rows).iter_rows())
    positions = [names.index(c.name) for c in shown]

    def data_row(record: tuple[Any, ...]) -> TableRow:
        cells = tuple(format_value(record[p], c, result.currency) for p, c in zip(positions, shown, strict=True))
        is_other = any(cell == "Other" and c.role == "dimension" for cell, c in zip(cells, shown, strict=True))
        return TableRow(cells, "other" if is_other else "row")

    rows: list[TableRow] = []
    subtotals = _subtotal_rows(result, shown, records, names)
    if subtotals:
        # Rows of the first dimension's value together (in the order the query sorted them,
        # each group where its first row was), each group followed by its subtotal; then the
        # subtotals of the other dimensions, which cut across those groups.
        first = next(c for c in result.columns if c.role in ("dimension", "time"))
        position = names.index(first.name)
        groups: dict[Any, list[tuple[Any, ...]]] = {}
        for record in records:
            groups.setdefault(record[position], []).append(record)
        first_subtotals = [row for d, _, row in subtotals if d == 0]
        for (_, members), subtotal in zip(groups.items(), first_subtotals, strict=True):
            rows += [data_row(r) for r in members]
            rows.append(subtotal)
        rows += [row for d, _, row in subtotals if d > 0]
    else:
        rows = [data_row(r) for r in records]

    shown_rows = len(records)
    cut = result.total_rows > shown_rows
    total = _total_cells(result, shown, cut)
    if total is not None:
        rows.append(TableRow(total, "total"))
    headers = [
        Header(
            label=headers_by_name[c.name],
            name=c.name,
            numeric=c.is_numeric,
            description=c.description,
            wrap=not c.is_numeric and c.role == "dimension",
        )
        for c in shown
    ]
    notes = []
    if result.total_rows > shown_rows:
        note = f"showing {shown_rows:,} of {result.total_rows:,} rows"
        if result.truncated and shown_rows >= result.df.height:
            note += f"; LIMIT {result.plan.limit}"
        notes.append(note)
    return Table(headers=headers, rows=rows, notes=notes, notices=list(result.notices))


def frame_table(frame: pl.DataFrame, max_rows: int = 1000, *, wrap: Sequence[str] = ("description",)) -> Table:
    """A plain Polars frame (a schema listing, raw values) as a `Table`: numbers right, raw names."""
    import polars as pl

    headers = [
        Header(label=name, name=name, numeric=dtype.is_numeric() and dtype != pl.Boolean, wrap=name in wrap)
        for name, dtype in frame.schema.items()
    ]
    rows = [
        TableRow(tuple(NULL_TEXT if v is None else str(v) for v in record)) for record in frame.head(max_rows).iter_rows()
    ]
    notes = [f"showing {len(rows):,} of {frame.height:,} rows"] if frame.height > len(rows) else []
    return Table(headers=headers, rows=rows, notes=notes)


# -------------------------------------------------------------------------------------------------
# Drawing a table: text, markdown, HTML
# -------------------------------------------------------------------------------------------------

MIN_WRAP_WIDTH = 24


def terminal_width() -> int:
    """The terminal's width (COLUMNS, else the tty's, else 100): the CLI wraps long texts to it."""
    import shutil

    return shutil.get_terminal_size((100, 24)).columns

COLUMN_GAP = "  "


def _wrapped_widths(table: Table, width: int | None) -> list[int]:
    """Each column's width; wrapping columns narrowed (not below MIN_WRAP_WIDTH) to fit `width`."""
    widths = [
        max([len(h.label)] + [len(r.cells[i]) for r in table.rows]) for i, h in enumerate(table.headers)
    ]
    if width is None:
        return widths
    excess = sum(widths) + len(COLUMN_GAP) * (len(widths) - 1) - width
    wrapping = sorted((i for i, h in enumerate(table.headers) if h.wrap), key=lambda i: -widths[i])
    for i in wrapping:
        if excess <= 0:
            break
        floor = max(MIN_WRAP_WIDTH, max((len(w) for w in table.headers[i].label.split()), default=1))
        narrower = max(floor, widths[i] - excess)
        excess -= widths[i] - narrower
        widths[i] = min(widths[i], narrower)
    return widths


def table_text(table: Table, width: int | None = None) -> str:
    """An aligned plain-text table: text left, numbers right; long texts wrapped to fit `width`."""
    widths = _wrapped_widths(table, width)

    def lines(cells: Sequence[str]) -> list[str]:
        parts = [
            textwrap.wrap(cell, widths[i], break_long_words=True) or [""] if table.headers[i].wrap else [cell]
            for i, cell in enumerate(cells)
        ]
        height = max(len(p) for p in parts)
        out = []
        for n in range(height):
            texts = []
            for i, part in enumerate(parts):
                text = part[n] if n < len(part) else ""
                texts.append(text.rjust(widths[i]) if table.headers[i].numeric else text.ljust(widths[i]))
            out.append(COLUMN_GAP.join(texts).rstrip())
        return out

    rule = COLUMN_GAP.join("-" * w for w in widths)
    out = lines([h.label for h in table.headers]) + [rule]
    for row in table.rows:
        if row.kind == "total":
            out.append(rule)
        out += lines(row.cells)
    if not table.rows:
        out.append(f"({table.empty_text})")
    out += [f"({note})" for note in table.notes]
    out += [f"note: {notice}" for notice in table.notices]
    return "\n".join(out)


def table_markdown(table: Table) -> str:
    """A GitHub-flavoured markdown table; subtotal and total rows in bold."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(escape(h.label) for h in table.headers) + " |"]
    lines.append("| " + " | ".join("---:" if h.numeric else "---" for h in table.headers) + " |")
    for row in table.rows:
        cells = [escape(c) for c in row.cells]
        if row.kind in ("subtotal", "total"):
            cells = [f"**{c}**" if c else c for c in cells]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [f"\n_{escape(note)}_" for note in table.notes]
    return "\n".join(lines)


# Inline styles as well as classes: JupyterLab's own stylesheet right-aligns every table cell, a
# saved notebook's untrusted output loses its <style> element, and GitHub drops it; an inline
# style on the cell wins over all of them.
_CELL_STYLE = {
    "text": "text-align:left;vertical-align:top;padding:3px 10px;white-space:nowrap",
    # A long text (a description, a long product title) wraps between words, within a maximum width.
    "long": "text-align:left;vertical-align:top;padding:3px 10px;white-space:normal;min-width:16em;max-width:36em",
    "num": "text-align:right;vertical-align:top;padding:3px 10px;white-space:nowrap;font-variant-numeric:tabular-nums",
}
# Headers wrap between words (never inside one), so long comparison headers do not widen the table.
_HEADER_STYLE = "vertical-align:bottom;padding:4px 10px;white-space:normal;font-weight:600"
LONG_TEXT = 40  # characters from which a text cell of a wrapping column wraps in HTML
_ROW_STYLE = {
    "row": "",
    "other": "font-style:italic;color:#555",
    "subtotal": "font-weight:600;background:#f6f6f7",
    "total": "font-weight:700;border-top:2px solid #888",
}
_STYLE = """<style>
.cql-result{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;font-size:13px}
.cql-result table{border-collapse:collapse;margin:4px 0}
.cql-result th{border-bottom:2px solid #888}
.cql-result td{border-bottom:1px solid #e3e3e3}
.cql-result tr.cql-total td{border-top:2px solid #888;border-bottom:none}
.cql-result .cql-note{color:#666;font-size:12px;margin-top:2px}
.cql-result .cql-notice{color:#7a4b00;background:#fff6e0;font-size:12px;margin-top:4px;padding:3px 8px;border-left:3px solid #e0a000}
</style>"""


def _cell(tag: str, text: str, header: Header, extra: str = "") -> str:
    kind = "num" if header.numeric else "text"
    if tag == "th":
        style = f"text-align:{'right' if header.numeric else 'left'};{_HEADER_STYLE}"
    else:
        style = _CELL_STYLE["long" if kind == "text" and header.wrap and len(text) > LONG_TEXT else kind]
    return f'<{tag} class="{kind}" style="{style}"{extra}>{html.escape(text)}</{tag}>'


def table_html(table: Table) -> str:
    """An HTML table for notebooks and exported pages (self-contained, no scripts)."""
    head = "".join(
        _cell("th", h.label, h, f' title="{html.escape(h.name + (": " + h.description if h.description else ""))}"')
        for h in table.headers
    )
    body: list[str] = []
    foot = ""
    for row in table.rows:
        cells = "".join(_cell("td", text, h) for text, h in zip(row.cells, table.headers, strict=True))
        style = _ROW_STYLE[row.kind]
        attributes = f' class="cql-{row.kind}"' + (f' style="{style}"' if style else "")
        if row.kind == "total":
            foot = f"<tfoot><tr{attributes}>{cells}</tr></tfoot>"
        else:
            body.append(f"<tr{attributes}>{cells}</tr>")
    if not table.rows:
        body.append(f'<tr><td colspan="{max(1, len(table.headers))}"><em>{html.escape(table.empty_text)}</em></td></tr>')
    notes = "".join(f'<div class="cql-note">{html.escape(n)}</div>' for n in table.notes)
    # How the query was answered (an empty answer's explanation, a skipped running total).
    notes += "".join(f'<div class="cql-notice">{html.escape(n)}</div>' for n in table.notices)
    return (
        f'{_STYLE}<div class="cql-result"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody>{foot}</table>{notes}</div>"
    )


# -------------------------------------------------------------------------------------------------
# Entry points used by the surfaces
# -------------------------------------------------------------------------------------------------


def result_text(result: Result, max_rows: int = 1000, width: int | None = None) -> str:
    """A plain-text table (numbers right-aligned, a Total row for WITH TOTALS)."""
    return table_text(result_table(result, max_rows), width=width)


def result_html(result: Result, max_rows: int = 1000) -> str:
    return table_html(result_table(result, max_rows))


def result_markdown(result: Result, max_rows: int | None = None) -> str:
    return table_markdown(result_table(result, max_rows if max_rows is not None else max(result.df.height, 1)))


def frame_text(frame: pl.DataFrame, max_rows: int = 1000, width: int | None = None) -> str:
    return table_text(frame_table(frame, max_rows), width=width)


def frame_html(frame: pl.DataFrame, max_rows: int = 1000) -> str:
    return table_html(frame_table(frame, max_rows))


def frame_mimebundle(
    frame: pl.DataFrame, max_rows: int = 1000, *, text_only: bool = False, width: int | None = None
) -> dict[str, Any]:
    """A plain frame (schema listing, raw values) as an HTML table + aligned, wrapped text."""
    table = frame_table(frame, max_rows)
    bundle: dict[str, Any] = {"text/plain": table_text(table, width=width)}
    if not text_only:
        bundle["text/html"] = table_html(table)
    return bundle


def result_mimebundle(result: Result, max_rows: int = 1000, *, text_max_rows: int = 50, width: int | None = None) -> dict[str, Any]:
    """The display bundle: HTML table + text fallback."""
    return {
        "text/html": result_html(result, max_rows=max_rows),
        "text/plain": result_text(result, max_rows=min(max_rows, text_max_rows), width=width),
    }


def chart_mimebundle(chart: Any) -> dict[str, Any]:
    """The chart as Vega-Lite mime types JupyterLab renders offline, with a text fallback.

    Altair 6 writes Vega-Lite v6 specs, but JupyterLab 4 renders only v3-v5; CommerceQL's specs
    use nothing v6-only, so the bundle carries the spec under v5 as well (with a v5 `$schema`).
    """
    from commerceql.charts import chart_to_vegalite

    return vegalite_mimebundle(chart_to_vegalite(chart))


def vegalite_mimebundle(spec: dict[str, Any]) -> dict[str, Any]:
    """A Vega-Lite spec under its own version's mime type and under v5 (what JupyterLab 4 draws)."""
    schema = str(spec.get("$schema", ""))
    version = next((v for v in ("v6", "v5", "v4") if f"/{v}" in schema), "v5")
    bundle: dict[str, Any] = {f"application/vnd.vegalite.{version}+json": spec, "text/plain": "<CommerceQL chart>"}
    if version > "v5":
        bundle["application/vnd.vegalite.v5+json"] = {
            **spec,
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        }
    return bundle
