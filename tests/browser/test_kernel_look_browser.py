"""What a user sees in a CommerceQL-kernel notebook, checked in a real browser (JupyterLab + Chromium).

One JupyterLab, one notebook (written to a temporary folder by the fixture, kernel "commerceql"),
two cells:

1. `FROM sales SHOW net_sales, orders, average_order_value GROUP BY sales_channel WITH TOTALS
   DURING last_month COMPARE TO previous_year VISUALIZE net_sales TYPE bar` — the control bar with
   its chart and table. The tests read the rendered DOM: human headers (raw names on hover), a
   Total row whose amounts equal hand-written DuckDB sums over the raw Parquet file (parsed back
   from the displayed text, compared to the cent), text left / numbers right (computed style), a
   drawn Vega chart, the control bar.
2. `%schema sales` — its long description column wraps instead of widening the output.

Screenshots for a reviewer: artifacts/browser/kernel_table_and_chart.png (the page with the
first cell's output), kernel_widget_bar.png (the control bar), kernel_schema.png.

Skips when /usr/bin/chromium or the playwright package is missing, unless CI=true (then it fails).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import tempfile
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from jupyterlab_harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    KEYPRESS_RETRY_MS,
    WAIT_MS,
    dismiss_kernel_dialog,
    eventually,
    install_kernel_spec,
    require_browser,
    run_first_code_cell,
    start_lab,
    wait_for_idle_kernel,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

KERNEL_LABEL = "CommerceQL"
QUERY = (
    "FROM sales SHOW net_sales, orders, average_order_value GROUP BY sales_channel WITH TOTALS "
    "DURING last_month COMPARE TO previous_year VISUALIZE net_sales TYPE bar"
)
SCHEMA_CELL = "%schema sales"
NOTEBOOK_NAME = "kernel_look.ipynb"

TABLE = ".cql-explore .cql-explore-table table"
CHART = ".cql-explore .cql-chart"
BAR = ".cql-explore .cql-bar"
SECOND_OUTPUT = ".jp-NotebookPanel .jp-CodeCell:nth-child(2) .jp-OutputArea-output"


# ---------------------------------------------------------------------------------------------
# Expected values: hand-written SQL over the Parquet file (not the compiler, not the model)
# ---------------------------------------------------------------------------------------------


def _month_before(local_now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """[first day of the previous calendar month, first day of this month) in local wall time."""
    this_month = dt.datetime(local_now.year, local_now.month, 1)
    previous = dt.datetime(this_month.year - 1, 12, 1) if this_month.month == 1 else this_month.replace(month=this_month.month - 1)
    return previous, this_month


def _year_before(moment: dt.datetime) -> dt.datetime:
    return moment.replace(year=moment.year - 1)  # always the 1st of a month: no Feb 29 trouble


def net_sales_between(store_path: Path, timezone: str, start: dt.datetime, end: dt.datetime) -> Decimal:
    """SUM(net_sales) of sales whose local (store time zone) time is in [start, end)."""
    sales = (store_path / "sales.parquet").as_posix().replace("'", "''")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")  # the hand-written query converts to local time itself
        (total,) = con.execute(
            f"""
            SELECT SUM(net_sales) FROM read_parquet('{sales}')
            WHERE timezone('{timezone}', happened_at) >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'
              AND timezone('{timezone}', happened_at) <  TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'
            """
        ).fetchone()
    finally:
        con.close()
    return Decimal(str(total or 0))


@dataclass(frozen=True)
class Expected:
    currency: str
    net_sales: Decimal
    net_sales_previous_year: Decimal


def expected_totals(store_path: Path) -> Expected:
    manifest = json.loads((store_path / "manifest.json").read_text(encoding="utf-8"))
    timezone = manifest["timezone"]
    local_now = dt.datetime.fromisoformat(manifest["as_of"]).astimezone(zoneinfo.ZoneInfo(timezone))
    start, end = _month_before(local_now.replace(tzinfo=None))
    return Expected(
        currency=manifest.get("currency") or "USD",
        net_sales=net_sales_between(store_path, timezone, start, end),
        net_sales_previous_year=net_sales_between(store_path, timezone, _year_before(start), _year_before(end)),
    )


def currency_symbol(code: str) -> str:
    """The English (en_US) CLDR symbol display.py writes before amounts; '' when the code is written after."""
    from babel.numbers import get_currency_symbol

    symbol = get_currency_symbol(code, locale="en_US")
    return "" if symbol == code else symbol


def parse_money(text: str, code: str) -> Decimal:
    """`$573,273.19`, `-$12.50`, `1,234.00 CHF` back to a Decimal, checking the currency's marks."""
    symbol = currency_symbol(code)
    suffix = "" if symbol else f" {code}"
    match = re.fullmatch(rf"(-?){re.escape(symbol)}([\d,]+(?:\.\d+)?){re.escape(suffix)}", text.strip())
    assert match, f"{text!r} is not an amount written as {symbol or code}"
    sign, digits = match.groups()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*(\.\d+)?", digits), f"{text!r}: thousands not grouped by 3"
    return Decimal(sign + digits.replace(",", ""))


# ---------------------------------------------------------------------------------------------
# The page: one JupyterLab, one notebook, both cells run once for the whole module
# ---------------------------------------------------------------------------------------------


def write_notebook(folder: Path) -> Path:
    import nbformat

    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": {"name": "commerceql", "display_name": KERNEL_LABEL, "language": "commerceql"}}
    notebook.cells.append(nbformat.v4.new_code_cell(QUERY))
    notebook.cells.append(nbformat.v4.new_code_cell(SCHEMA_CELL))
    path = folder / NOTEBOOK_NAME
    nbformat.write(notebook, path)
    return path


_RUN_CELL = """async (index) => {
    const app = window.jupyterapp;
    const notebook = app.shell.currentWidget.content;
    notebook.activeCellIndex = index;
    notebook.mode = 'command';
    await app.commands.execute('notebook:run-cell');
}"""

_CELL_STARTED = """(index) => {
    const cells = document.querySelectorAll('.jp-NotebookPanel .jp-CodeCell');
    const prompt = cells[index] && cells[index].querySelector('.jp-InputPrompt');
    return !!prompt && /\\[(\\*|\\d+)\\]/.test(prompt.textContent);
}"""


def run_code_cell(page: Any, index: int, attempts: int = 4) -> None:
    """Run the code cell at `index` with JupyterLab's own command; wait until it shows [*] or [n]."""
    for _ in range(attempts):
        if page.locator(".jp-Dialog").count():
            dismiss_kernel_dialog(page, KERNEL_LABEL)
        page.evaluate(_RUN_CELL, index)
        try:
            page.wait_for_function(_CELL_STARTED, arg=index, timeout=KEYPRESS_RETRY_MS)
            return
        except Exception:  # noqa: BLE001 - a Playwright timeout: try again
            continue
    raise AssertionError(f"code cell {index} did not start after {attempts} attempts")


@dataclass
class Page:
    page: Any
    expected: Expected
    console: list[str]


@pytest.fixture(scope="module")
def kernel_page(sample_store_path: Path) -> Iterator[Page]:
    require_browser()
    from playwright.sync_api import sync_playwright

    print(install_kernel_spec())
    expected = expected_totals(Path(sample_store_path))
    console: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="cql-browser-look-") as workdir, pytest.MonkeyPatch.context() as patch:
        # The kernel opens the store named by COMMERCEQL_STORE: the one the expected values come from.
        patch.setenv("COMMERCEQL_STORE", str(sample_store_path))
        notebook = write_notebook(Path(workdir))
        server = start_lab(Path(workdir) / "lab", [notebook])
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport={"width": 1400, "height": 1800})
                    context.set_default_timeout(WAIT_MS)
                    page = context.new_page()
                    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
                    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
                    try:
                        page.goto(server.url(f"/lab/tree/{notebook.name}"), wait_until="domcontentloaded")
                        wait_for_idle_kernel(page, kernel_label=KERNEL_LABEL)
                        run_first_code_cell(page, kernel_label=KERNEL_LABEL)
                        page.wait_for_selector(f"{TABLE} tfoot tr.cql-total td", timeout=WAIT_MS)
                        # drawn, not just created: axis labels (SVG) or a canvas, before the screenshot is taken
                        page.wait_for_selector(f"{CHART} svg text, {CHART} canvas", timeout=WAIT_MS)
                        page.wait_for_selector(f"{BAR} select", timeout=WAIT_MS)
                        page.locator(".cql-explore").first.scroll_into_view_if_needed()
                        page.screenshot(path=str(ARTIFACTS / "kernel_table_and_chart.png"), full_page=True)
                        page.locator(BAR).first.screenshot(path=str(ARTIFACTS / "kernel_widget_bar.png"))

                        run_code_cell(page, 1)
                        page.wait_for_selector(f"{SECOND_OUTPUT} table th", timeout=WAIT_MS)
                        schema_output = page.locator(SECOND_OUTPUT).first
                        schema_output.scroll_into_view_if_needed()
                        page.screenshot(path=str(ARTIFACTS / "kernel_schema.png"), full_page=True)
                        yield Page(page=page, expected=expected, console=console)
                    except Exception:
                        page.screenshot(path=str(ARTIFACTS / "kernel_look_failure.png"), full_page=True)
                        raise
                finally:
                    browser.close()
        finally:
            server.stop()
            (ARTIFACTS / "kernel_look_console.log").write_text("\n".join(console), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# DOM readers
# ---------------------------------------------------------------------------------------------


def headers(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        f"{TABLE} thead th",
        "ths => ths.map(th => ({text: th.textContent.trim(), title: th.getAttribute('title') || ''}))",
    )


def header_index(page: Any, label: str) -> int:
    texts = [h["text"] for h in headers(page)]
    assert label in texts, texts
    return texts.index(label)


def total_row(page: Any) -> list[str]:
    return page.eval_on_selector_all(f"{TABLE} tfoot tr.cql-total td", "tds => tds.map(td => td.textContent.trim())")


def body_rows(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(
        f"{TABLE} tbody tr", "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()))"
    )


def column_alignments(page: Any, index: int) -> list[str]:
    """The computed text-align of every body and total cell of column `index` (0-based)."""
    return page.evaluate(
        """([selector, index]) => Array.from(document.querySelectorAll(selector + ' tbody tr, ' + selector + ' tfoot tr'))
            .map(row => row.querySelectorAll('td')[index])
            .filter(cell => !!cell)
            .map(cell => getComputedStyle(cell).textAlign)""",
        [TABLE, index],
    )


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------


def test_headers_are_human_with_the_raw_name_on_hover(kernel_page: Page) -> None:
    shown = {h["text"]: h["title"] for h in headers(kernel_page.page)}
    raw_names = {
        "Sales channel": "sales_channel",
        "Net sales": "net_sales",
        "Orders": "orders",
        "Average order value": "average_order_value",
        "Net sales (previous year)": "comparison_net_sales__previous_year",
    }
    for label, raw_name in raw_names.items():
        assert label in shown, list(shown)
        # title is "raw_name" or "raw_name: description"
        assert shown[label].split(":", 1)[0] == raw_name, (label, shown[label])
    assert not [text for text in shown if "__" in text or re.fullmatch(r"[a-z_]+", text)], list(shown)


def test_total_row_equals_hand_written_sums(kernel_page: Page) -> None:
    page, expected = kernel_page.page, kernel_page.expected
    total = total_row(page)
    assert total and total[0] == "Total", total
    net_sales = parse_money(total[header_index(page, "Net sales")], expected.currency)
    assert net_sales == expected.net_sales.quantize(Decimal("0.01")), (total, expected)
    previous = parse_money(total[header_index(page, "Net sales (previous year)")], expected.currency)
    assert previous == expected.net_sales_previous_year.quantize(Decimal("0.01")), (total, expected)
    # The Total is the whole month: the channels' rows add up to it (to the cent per row).
    channels = [parse_money(row[header_index(page, "Net sales")], expected.currency) for row in body_rows(page)]
    assert len(channels) > 1 and abs(sum(channels) - net_sales) <= Decimal("0.01") * len(channels), channels


def test_text_cells_left_and_number_cells_right(kernel_page: Page) -> None:
    page = kernel_page.page
    text_alignment = column_alignments(page, header_index(page, "Sales channel"))
    assert text_alignment and set(text_alignment) <= {"left", "start"}, text_alignment
    for label in ("Net sales", "Orders", "Average order value", "Net sales (previous year)"):
        alignment = column_alignments(page, header_index(page, label))
        assert alignment and set(alignment) == {"right"}, (label, alignment)


def test_chart_is_drawn(kernel_page: Page) -> None:
    page = kernel_page.page

    def drawn() -> dict[str, Any]:
        state = page.evaluate(
            """(chart) => {
                const element = document.querySelector(chart + ' svg, ' + chart + ' canvas');
                if (!element) return null;
                const box = element.getBoundingClientRect();
                const labels = element.tagName.toLowerCase() === 'svg'
                    ? Array.from(element.querySelectorAll('text, [aria-label]'))
                        .map(e => e.getAttribute('aria-label') || e.textContent).join('\\n')
                    : (element.getAttribute('aria-label') || '');
                return {tag: element.tagName.toLowerCase(), width: box.width, height: box.height, labels};
            }""",
            CHART,
        )
        assert state and state["width"] > 100 and state["height"] > 100, state
        return state

    state = eventually(drawn)
    if state["tag"] == "svg":
        # the bars are named by channel: the chart shows this query's data
        channel = body_rows(page)[0][header_index(page, "Sales channel")]
        eventually(lambda: _assert_in(channel, drawn()["labels"]))


def test_control_bar_is_there(kernel_page: Page) -> None:
    page = kernel_page.page
    bar = page.locator(BAR).first
    assert bar.is_visible()
    assert page.locator(f"{BAR} select").count() >= 3  # dimension, date range, comparison, chart type...
    dimension = page.locator(".cql-explore .cql-dimension select")
    assert dimension.count() == 1 and dimension.input_value() == "Sales channel"
    # the bar starts from the cell's query: its metrics, comparison and chart type are selected
    metrics = page.eval_on_selector_all(
        ".cql-explore .cql-metrics select option", "options => options.filter(o => o.selected).map(o => o.value)"
    )
    assert set(metrics) == {"Net sales", "Orders", "Average order value"}, metrics
    assert page.locator(".cql-explore .cql-comparison select").input_value() == "Previous year"
    assert page.locator(".cql-explore .cql-chart-type select").input_value() == "Bar"
    date_range = page.locator(".cql-explore .cql-date-range select").input_value()
    assert date_range.startswith("Last month"), date_range
    assert (ARTIFACTS / "kernel_widget_bar.png").stat().st_size > 0
    assert (ARTIFACTS / "kernel_table_and_chart.png").stat().st_size > 0


def test_no_error_output_and_no_page_error(kernel_page: Page) -> None:
    page = kernel_page.page
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
    assert page.locator(".jp-OutputArea-output .cql-error").count() == 0
    assert not [line for line in kernel_page.console if line.startswith("pageerror")], kernel_page.console


def test_schema_description_wraps_inside_the_output(kernel_page: Page) -> None:
    page = kernel_page.page
    texts = page.eval_on_selector_all(f"{SECOND_OUTPUT} table thead th", "ths => ths.map(th => th.textContent.trim())")
    assert "description" in texts, texts
    index = texts.index("description")
    measures = page.evaluate(
        """([selector, index]) => {
            const output = document.querySelector(selector);
            const cells = Array.from(output.querySelectorAll('table tbody tr'))
                .map(row => row.querySelectorAll('td')[index]).filter(cell => !!cell);
            const lineHeight = cell => parseFloat(getComputedStyle(cell).lineHeight) || 16;
            return {
                scrollWidth: output.scrollWidth,
                clientWidth: output.clientWidth,
                cells: cells.length,
                // a description on two lines or more: taller than one line of text
                wrapped: cells.filter(cell => cell.getBoundingClientRect().height > 1.5 * lineHeight(cell)).length,
            };
        }""",
        [SECOND_OUTPUT, index],
    )
    assert measures["cells"] > 10, measures
    assert measures["wrapped"] > 0, measures
    # generous: a scrollbar's width or a border more is fine, a description on one line is not
    assert measures["scrollWidth"] <= measures["clientWidth"] + 24, measures


def _assert_in(needle: str, haystack: str) -> None:
    assert needle in haystack, haystack[:2000]
