"""Formatting results for people: money with the currency, percents, dates by grain, separators.

One formatter serves every surface (kernel grid, IPython magic, CLI table, exported HTML).
"""

from __future__ import annotations

import datetime as dt
import html
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from commerceql.columns import ColumnInfo

if TYPE_CHECKING:
    from commerceql.result import Result

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "INR": "₹", "CNY": "CN¥"}
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December")
NULL_TEXT = "—"


def format_money(value: float | Decimal, currency: str) -> str:
    decimals = 0 if currency.upper() == "JPY" else 2
    # Round the exact decimal half away from zero, as accountants do (1,161,401.345 -> .35).
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    rounded = exact.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    number = f"{abs(rounded):,.{decimals}f}"
    sign = "-" if rounded < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency.upper())
    if symbol:
        return f"{sign}{symbol}{number}"
    return f"{sign}{number} {currency.upper()}"


def format_value(value: Any, column: ColumnInfo, currency: str = "USD") -> str:
    """One cell as text."""
    if value is None:
        return NULL_TEXT
    kind = column.type
    if isinstance(value, float) and value != value:  # NaN
        return NULL_TEXT
    if kind == "money":
        return format_money(value, currency)
    if kind == "percent":
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


def _rows(result: Result, max_rows: int) -> list[list[str]]:
    columns = list(result.columns)
    names = [c.name for c in columns]
    rows = []
    for record in result.df.head(max_rows).select(names).iter_rows():
        rows.append([format_value(v, c, result.currency) for v, c in zip(record, columns, strict=True)])
    return rows


def _note(result: Result, shown: int) -> str | None:
    if result.total_rows > shown:
        return f"showing {shown:,} of {result.total_rows:,} rows"
    if result.truncated:
        return f"showing {shown:,} of {result.total_rows:,} rows (LIMIT {result.plan.limit})"
    return None


def result_text(result: Result, max_rows: int = 1000) -> str:
    """A plain-text table with aligned columns (numbers right-aligned)."""
    columns = list(result.columns)
    header = [c.name for c in columns]
    rows = _rows(result, max_rows)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(header)]
    numeric = [c.is_numeric for c in columns]

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if numeric[i] else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    if not rows:
        out.append("(no rows)")
    note = _note(result, len(rows))
    if note:
        out.append(f"({note})")
    out += [f"note: {notice}" for notice in result.notices]
    return "\n".join(out)


_STYLE = """<style>
.cql-result{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,sans-serif;font-size:13px}
.cql-result table{border-collapse:collapse;margin:4px 0}
.cql-result th{text-align:left;border-bottom:2px solid #888;padding:4px 10px;white-space:nowrap}
.cql-result td{padding:3px 10px;border-bottom:1px solid #e3e3e3;white-space:nowrap}
.cql-result td.num,.cql-result th.num{text-align:right;font-variant-numeric:tabular-nums}
.cql-result tr.cql-other td{font-style:italic;color:#555}
.cql-result .cql-note{color:#666;font-size:12px;margin-top:2px}
.cql-result .cql-notice{color:#7a4b00;background:#fff6e0;font-size:12px;margin-top:4px;padding:3px 8px;border-left:3px solid #e0a000}
</style>"""


def result_html(result: Result, max_rows: int = 1000) -> str:
    """An HTML table for notebooks and exported pages (self-contained, no scripts)."""
    columns = list(result.columns)
    rows = _rows(result, max_rows)
    head = "".join(
        f'<th class="{"num" if c.is_numeric else "text"}" title="{html.escape(c.description)}">{html.escape(c.name)}</th>'
        for c in columns
    )
    body = []
    for row in rows:
        is_other = any(cell == "Other" and c.role == "dimension" for cell, c in zip(row, columns, strict=True))
        cells = "".join(
            f'<td class="{"num" if c.is_numeric else "text"}">{html.escape(cell)}</td>'
            for cell, c in zip(row, columns, strict=True)
        )
        body.append(f'<tr{" class=cql-other" if is_other else ""}>{cells}</tr>')
    if not rows:
        body.append(f'<tr><td colspan="{len(columns)}"><em>no rows</em></td></tr>')
    note = _note(result, len(rows))
    note_html = f'<div class="cql-note">{html.escape(note)}</div>' if note else ""
    # How the query was answered (an empty answer's explanation, a skipped running total).
    note_html += "".join(f'<div class="cql-notice">{html.escape(n)}</div>' for n in result.notices)
    return (
        f'{_STYLE}<div class="cql-result"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table>{note_html}</div>"
    )


def result_mimebundle(result: Result, max_rows: int = 1000) -> dict[str, Any]:
    """The display bundle: HTML table + text fallback, and the chart as Vega-Lite when present."""
    bundle: dict[str, Any] = {
        "text/html": result_html(result, max_rows=max_rows),
        "text/plain": result_text(result, max_rows=min(max_rows, 50)),
    }
    return bundle


def chart_mimebundle(chart: Any) -> dict[str, Any]:
    """The chart as Vega-Lite mime types JupyterLab renders offline, with a text fallback.

    Altair 6 writes Vega-Lite v6 specs, but JupyterLab 4 renders only v3-v5; CommerceQL's specs
    use nothing v6-only, so the bundle carries the spec under v5 as well (with a v5 `$schema`).
    """
    from commerceql.charts import chart_to_vegalite

    spec = chart_to_vegalite(chart)
    schema = str(spec.get("$schema", ""))
    version = next((v for v in ("v6", "v5", "v4") if f"/{v}" in schema), "v5")
    bundle: dict[str, Any] = {f"application/vnd.vegalite.{version}+json": spec, "text/plain": "<CommerceQL chart>"}
    if version > "v5":
        bundle["application/vnd.vegalite.v5+json"] = {
            **spec,
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        }
    return bundle
