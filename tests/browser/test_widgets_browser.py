"""The explore widget in a real browser: JupyterLab (headless, 127.0.0.1) + Debian's Chromium.

Opens notebooks/widgets_explorer.ipynb (python3 kernel), runs its first code cell, then changes
the widget's controls like a merchandiser would — group by billing_region, last quarter, compare to
previous year — and checks from the page that the table and the chart changed to the values that a
hand-written DuckDB query over the store's Parquet files gives. Screenshots go to artifacts/browser/.

Each control change is also measured from inside the page (`PROBE_JS`): when the status line, the
table and the new chart appeared after the change event, how long the main thread was busy in long
tasks, the kernel's own time (from the status line) and the bytes the page received. The figures
and their p50 (target < 300 ms) are printed and written to artifacts/browser/latency.txt; they are
figures, never assertions (CI is a busy machine).

Skips when /usr/bin/chromium or the playwright package is missing, unless CI=true (then it fails).
Offline: no CDN; JupyterLab's own Vega renderer and widget manager draw everything.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from jupyterlab_harness import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    REPO,
    WAIT_MS,
    eventually,
    install_kernel_spec,
    require_browser,
    run_first_code_cell,
    start_lab,
    wait_for_idle_kernel,
)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NOTEBOOK = REPO / "notebooks" / "widgets_explorer.ipynb"
NULL_TEXT = "—"


# ---------------------------------------------------------------------------------------------
# Expected values: hand-written SQL over the Parquet files (not the compiler, not the model)
# ---------------------------------------------------------------------------------------------


def _last_quarter(as_of: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    this_quarter = dt.datetime(as_of.year, 3 * ((as_of.month - 1) // 3) + 1, 1)
    year, month = (this_quarter.year, this_quarter.month - 3) if this_quarter.month > 3 else (this_quarter.year - 1, 10)
    return dt.datetime(year, month, 1), this_quarter


def _money(value) -> str:
    return f"-${abs(value):,.2f}" if value < 0 else f"${value:,.2f}"


def expected_by_region(store_path: Path, start: dt.datetime, end: dt.datetime, timezone: str) -> list[tuple[str, str]]:
    sales = (store_path / "sales.parquet").as_posix()
    rows = duckdb.sql(
        f"""
        SELECT billing_region, SUM(net_sales) AS net_sales
        FROM read_parquet('{sales}')
        WHERE timezone('{timezone}', happened_at) >= TIMESTAMP '{start:%Y-%m-%d %H:%M:%S}'
          AND timezone('{timezone}', happened_at) <  TIMESTAMP '{end:%Y-%m-%d %H:%M:%S}'
        GROUP BY billing_region
        ORDER BY net_sales DESC, billing_region
        """
    ).fetchall()
    return [(NULL_TEXT if region is None else region, _money(total)) for region, total in rows]


# ---------------------------------------------------------------------------------------------
# Page helpers
# ---------------------------------------------------------------------------------------------


def table_rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        ".cql-explore .cql-explore-table tbody tr",
        "rows => rows.map(r => Array.from(r.querySelectorAll('td')).map(td => td.textContent.trim()))",
    )


def table_headers(page) -> list[str]:
    return page.eval_on_selector_all(
        ".cql-explore .cql-explore-table thead th", "ths => ths.map(th => th.textContent.trim())"
    )


def revision(page) -> int:
    """The revision of the widget's last update (the status line carries it; -1 before the first)."""
    value = page.evaluate(
        "() => { const d = document.querySelector('.cql-explore .cql-status [data-revision]'); return d ? Number(d.dataset.revision) : -1; }"
    )
    return int(value)


def chart_text(page) -> str:
    """Every text label and aria-label of the Vega SVG in the widget's chart output."""
    return page.evaluate(
        """() => {
            const svg = document.querySelector('.cql-explore .cql-chart svg');
            if (!svg) return '';
            const parts = Array.from(svg.querySelectorAll('text')).map(t => t.textContent);
            svg.querySelectorAll('[aria-label]').forEach(e => parts.push(e.getAttribute('aria-label')));
            return parts.join('\\n');
        }"""
    )


def status_text(page) -> str:
    return page.locator(".cql-explore .cql-status").inner_text()


#: Installed in the page once: timestamps (ms after the last control change event) of what the
#: page shows of the update: the status line's first change ("Running…" or the result) and the
#: one carrying a newer revision, a new table element, a new chart SVG with its text drawn.
#: What the page showed before the change is tagged, so only new elements count.
PROBE_JS = """() => {
    if (window.__cqlProbe) return;
    const root = document.querySelector('.cql-explore');
    const probe = window.__cqlProbe = {changedAt: null, marks: {}, revision: -1};
    const revisionNow = () => {
        const d = root.querySelector('.cql-status [data-revision]');
        return d ? Number(d.dataset.revision) : -1;
    };
    document.addEventListener('change', (event) => {
        if (!(event.target.closest && event.target.closest('.cql-explore'))) return;
        probe.changedAt = performance.now();
        probe.marks = {};
        probe.revision = revisionNow();
        root.querySelectorAll('.cql-chart svg, .cql-explore-table').forEach((e) => { e.__cqlSeen = true; });
    }, true);
    // Long tasks (> 50 ms of main thread) after the change: drawing the Vega view, and the PNG
    // snapshot JupyterLab's Vega renderer takes of it afterwards, show up here.
    new PerformanceObserver((list) => {
        if (probe.changedAt === null) return;
        for (const entry of list.getEntries()) {
            if (entry.startTime + entry.duration < probe.changedAt) continue;
            probe.marks.busy = (probe.marks.busy || 0) + entry.duration;
            probe.marks.busyUntil = Math.max(probe.marks.busyUntil || 0, entry.startTime + entry.duration - probe.changedAt);
        }
    }).observe({type: 'longtask'});
    new MutationObserver((records) => {
        if (probe.changedAt === null) return;
        const at = performance.now() - probe.changedAt;
        const marks = probe.marks;
        if (marks.status === undefined && records.some((r) => {
            const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
            return node && node.closest && node.closest('.cql-status');
        })) marks.status = at;
        if (marks.revision === undefined && revisionNow() > probe.revision) marks.revision = at;
        const table = root.querySelector('.cql-explore-table');
        if (marks.table === undefined && table && !table.__cqlSeen) marks.table = at;
        const svg = root.querySelector('.cql-chart svg');
        if (marks.chart === undefined && svg && !svg.__cqlSeen && svg.querySelector('text')) marks.chart = at;
    }).observe(root, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


class Frames:
    """Bytes and count of the websocket frames the page received (kernel -> browser messages)."""

    def __init__(self, page) -> None:
        self.received = 0
        self.count = 0
        page.on("websocket", lambda socket: socket.on("framereceived", self._add))

    def _add(self, payload) -> None:
        self.received += len(payload)
        self.count += 1

    def mark(self) -> tuple[int, int]:
        return self.received, self.count


@dataclass
class RoundTrip:
    """One control change as the page saw it (ms after the change event; bytes received).

    `page_ms` is the round trip inside the page: from the change event to the last of the new
    status revision, the new table (when one came) and the new chart drawn. `total_ms` is the same
    seen from the test (Playwright's select and polling included).
    """

    control: str
    total_ms: float
    page_ms: float | None
    kernel_ms: float | None
    status_ms: float | None
    revision_ms: float | None
    table_ms: float | None
    chart_ms: float | None
    busy_ms: float | None
    busy_until_ms: float | None
    received_bytes: int
    frames: int

    def line(self) -> str:
        def ms(value: float | None) -> str:
            return "   -" if value is None else f"{value:4.0f}"

        return (
            f"  {self.control:<18} page {ms(self.page_ms)} ms (test {ms(self.total_ms)}) | kernel {ms(self.kernel_ms)}"
            f" | first status {ms(self.status_ms)} | new revision {ms(self.revision_ms)} | table {ms(self.table_ms)}"
            f" | chart drawn {ms(self.chart_ms)} | long tasks {ms(self.busy_ms)} until {ms(self.busy_until_ms)}"
            f" | {self.received_bytes / 1024:6.1f} KB in {self.frames} frames"
        )


def wait_for_update(page, before: int, timeout_ms: int = WAIT_MS) -> float:
    """Wait until the widget shows a newer update and a drawn chart; returns the seconds waited.

    The update's revision is in the status line, which the kernel sets last; the table is only
    re-sent when its rows change. The chart may still be redrawing when the status changes:
    assertions on the chart go through `eventually`, never through a fixed pause.
    """
    started = time.perf_counter()
    page.wait_for_function(
        """(before) => {
            const d = document.querySelector('.cql-explore .cql-status [data-revision]');
            const svg = document.querySelector('.cql-explore .cql-chart svg');
            return d && Number(d.dataset.revision) > before && svg && svg.querySelector('text');
        }""",
        arg=before,
        timeout=timeout_ms,
    )
    return time.perf_counter() - started


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def round_trip_summary(trips: list[RoundTrip]) -> str:
    """The p50s over every measured change, against the 0.3 s target (a figure, not an assertion)."""
    page_p50 = _median([trip.page_ms for trip in trips])
    parts = {
        "as the test sees it": _median([trip.total_ms for trip in trips]),
        "kernel": _median([trip.kernel_ms for trip in trips]),
        "new revision shown": _median([trip.revision_ms for trip in trips]),
        "chart drawn": _median([trip.chart_ms for trip in trips]),
        "main thread in long tasks": _median([trip.busy_ms or 0.0 for trip in trips]),
    }
    kilobytes = _median([trip.received_bytes / 1024 for trip in trips])
    verdict = "ok" if page_p50 is not None and page_p50 <= 300 else "over target"
    details = ", ".join(f"{name} {value:.0f} ms" for name, value in parts.items() if value is not None)
    return (
        f"browser round trip p50 {page_p50:.0f} ms over {len(trips)} changes (target < 300 ms: {verdict}); "
        f"p50 {details}; {kilobytes:.0f} KB received"
    )


def measured_change(page, frames: Frames, control: str, change, timeout_ms: int = WAIT_MS) -> RoundTrip:
    """Make a control change (`change()`), wait for the update and its redrawn chart, and say where
    the time went: the kernel (its own figure in the status line), what the page showed when (see
    PROBE_JS) and the bytes the page received meanwhile."""
    page.evaluate(PROBE_JS)
    before = revision(page)
    bytes_before, frames_before = frames.mark()
    started = time.perf_counter()
    change()
    page.wait_for_function(
        "() => { const m = window.__cqlProbe.marks; return m.revision !== undefined && m.chart !== undefined; }",
        timeout=timeout_ms,
    )
    total_ms = (time.perf_counter() - started) * 1000
    assert revision(page) > before
    marks = page.evaluate("() => window.__cqlProbe.marks")
    kernel = re.search(r"([\d,]+) ms", status_text(page))
    received, count = frames.mark()
    shown = [marks.get(name) for name in ("revision", "table", "chart") if marks.get(name) is not None]
    return RoundTrip(
        control=control,
        total_ms=total_ms,
        page_ms=max(shown) if shown else None,
        kernel_ms=float(kernel.group(1).replace(",", "")) if kernel else None,
        status_ms=marks.get("status"),
        revision_ms=marks.get("revision"),
        table_ms=marks.get("table"),
        chart_ms=marks.get("chart"),
        busy_ms=marks.get("busy"),
        busy_until_ms=marks.get("busyUntil"),
        received_bytes=received - bytes_before,
        frames=count - frames_before,
    )


def _assert_in(needle: str, haystack: str) -> None:
    assert needle in haystack, haystack[:2000]


def shot(page, name: str) -> None:
    """Screenshot of the whole widget (the notebook scrolls inside the page, so not the page)."""
    widget = page.locator(".cql-explore").first
    widget.scroll_into_view_if_needed()
    widget.screenshot(path=str(ARTIFACTS / name))


def select(page, css: str, label: str) -> None:
    """Pick an option by the text the reader sees (ipywidgets' <option value> is that label too)."""
    page.locator(f".cql-explore {css} select").select_option(value=label)


def option_values(page, css: str) -> list[str]:
    return page.eval_on_selector_all(f".cql-explore {css} select option", "os => os.map(o => o.value)")


def option_labels(page, css: str) -> list[str]:
    return page.eval_on_selector_all(f".cql-explore {css} select option", "os => os.map(o => o.textContent.replace(/\\u00a0/g, ' ').trim())")


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------


def test_explore_widget_in_jupyterlab(sample_store_path):
    require_browser()
    from playwright.sync_api import sync_playwright

    test_started = time.perf_counter()
    print(install_kernel_spec())
    manifest = json.loads((Path(sample_store_path) / "manifest.json").read_text(encoding="utf-8"))
    timezone = manifest["timezone"]
    as_of = dt.datetime.fromisoformat(manifest["as_of"]).astimezone(__import__("zoneinfo").ZoneInfo(timezone))
    start, end = _last_quarter(as_of.replace(tzinfo=None))
    expected = expected_by_region(Path(sample_store_path), start, end, timezone)
    assert len(expected) > 5, expected
    top_region, top_money = expected[0]

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    console: list[str] = []
    trips: list[RoundTrip] = []
    with tempfile.TemporaryDirectory(prefix="cql-browser-") as workdir:
        server = start_lab(Path(workdir), [NOTEBOOK])
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport={"width": 1400, "height": 1700})
                    context.set_default_timeout(WAIT_MS)
                    page = context.new_page()
                    frames = Frames(page)
                    page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
                    page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
                    # Everything must come from the local server: fail loudly on any other request.
                    outside: list[str] = []
                    page.on(
                        "request",
                        lambda request: outside.append(request.url)
                        if not request.url.startswith((server.base_url, "data:", "blob:", "about:"))
                        else None,
                    )

                    page.goto(server.url(f"/lab/tree/{NOTEBOOK.name}"), wait_until="domcontentloaded")
                    wait_for_idle_kernel(page)
                    # select the analyst's cell (command mode) and run it, as a user would
                    run_first_code_cell(page)

                    # -- the analyst's view: net sales by sales channel, last month, bar chart
                    page.wait_for_selector(".cql-explore .cql-explore-table table", timeout=WAIT_MS)
                    page.wait_for_selector(".cql-explore .cql-chart svg text", timeout=WAIT_MS)
                    assert table_headers(page) == ["Sales channel", "Net sales"]
                    channels = {row[0] for row in table_rows(page)}
                    assert "Online Store" in channels, channels
                    eventually(lambda: _assert_in("Online Store", chart_text(page)))
                    page.screenshot(path=str(ARTIFACTS / "00_notebook.png"))
                    shot(page, "01_initial_by_channel.png")

                    # -- group by billing_region instead
                    trips.append(measured_change(page, frames, "dimension", lambda: select(page, ".cql-dimension", "Billing region")))
                    assert table_headers(page) == ["Billing region", "Net sales"]
                    assert "GROUP BY billing_region" in page.locator(".cql-explore .cql-query textarea").input_value()
                    def chart_by_region() -> None:
                        text = chart_text(page)
                        assert "Online Store" not in text
                        assert "billing region" in text.lower() or "billing_region" in text

                    eventually(chart_by_region)
                    shot(page, "02_by_billing_region.png")

                    # -- for last quarter
                    last_quarter = [v for v in option_values(page, ".cql-date-range") if v.startswith("Last quarter")]
                    assert last_quarter, option_values(page, ".cql-date-range")
                    trips.append(measured_change(page, frames, "date_range", lambda: select(page, ".cql-date-range", last_quarter[0])))
                    rows = table_rows(page)
                    shown = {row[0] for row in rows}
                    assert shown == {region for region, _ in expected}, (shown ^ {r for r, _ in expected})
                    assert rows[0] == [top_region, top_money], (rows[:3], expected[:3])
                    assert dict((r[0], r[1]) for r in rows) == dict(expected)
                    query_text = page.locator(".cql-explore .cql-query textarea").input_value()
                    assert "DURING last_quarter" in query_text, query_text
                    eventually(lambda: _assert_in(top_region, chart_text(page)))
                    shot(page, "03_last_quarter.png")

                    # -- against last year
                    comparison_labels = option_labels(page, ".cql-comparison")
                    assert "Previous year" in comparison_labels and "previous_year" not in comparison_labels, comparison_labels
                    trips.append(measured_change(page, frames, "comparison", lambda: select(page, ".cql-comparison", "Previous year")))
                    headers = table_headers(page)
                    assert "Net sales (previous year)" in headers, headers
                    assert "COMPARE TO previous_year" in page.locator(".cql-explore .cql-query textarea").input_value()
                    assert table_rows(page)[0][:2] == [top_region, top_money]
                    eventually(lambda: _assert_in("previous year", chart_text(page).lower()))
                    shot(page, "04_compare_previous_year.png")

                    # -- another chart type: the same rows (no new query), the chart redrawn
                    rows_before = table_rows(page)
                    chart_labels = option_labels(page, ".cql-chart-type")
                    assert "Horizontal bar" in chart_labels and "horizontal_bar" not in chart_labels, chart_labels
                    table_before = page.locator(".cql-explore .cql-explore-table").get_attribute("data-revision")
                    trip = measured_change(page, frames, "chart_type", lambda: select(page, ".cql-chart-type", "Horizontal bar"))
                    trips.append(trip)
                    assert table_rows(page) == rows_before
                    # the rows did not change, so the table was not sent again (only the chart and the status)
                    assert page.locator(".cql-explore .cql-explore-table").get_attribute("data-revision") == table_before
                    assert trip.table_ms is None, trip
                    assert "TYPE horizontal_bar" in page.locator(".cql-explore .cql-query textarea").input_value()
                    eventually(lambda: _assert_in(top_region, chart_text(page)))
                    shot(page, "04b_horizontal_bar.png")

                    # -- "All time" disables the comparison and says why, no traceback
                    trips.append(measured_change(page, frames, "date_range", lambda: select(page, ".cql-date-range", "All time")))
                    assert page.locator(".cql-explore .cql-comparison select").is_disabled()
                    assert "turned off" in status_text(page)
                    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']").count() == 0
                    shot(page, "05_all_time_comparison_disabled.png")

                    # -- back to views seen before (the widget keeps the last few: nothing is re-run),
                    # and a few more changes, so the round trip below is a median of several
                    trips.append(measured_change(page, frames, "date_range (back)", lambda: select(page, ".cql-date-range", last_quarter[0])))
                    trips.append(measured_change(page, frames, "comparison (back)", lambda: select(page, ".cql-comparison", "Previous year")))
                    assert table_rows(page)[0][:2] == [top_region, top_money]
                    assert dict((r[0], r[1]) for r in table_rows(page)) == dict(expected)
                    trips.append(measured_change(page, frames, "chart_type (back)", lambda: select(page, ".cql-chart-type", "Bar")))
                    trips.append(measured_change(page, frames, "chart_type", lambda: select(page, ".cql-chart-type", "Line")))
                    trips.append(measured_change(page, frames, "grain", lambda: select(page, ".cql-grain", "month")))
                    trips.append(measured_change(page, frames, "grain (back)", lambda: select(page, ".cql-grain", "none")))
                    assert dict((r[0], r[1]) for r in table_rows(page)) == dict(expected)
                    assert "TYPE line" in page.locator(".cql-explore .cql-query textarea").input_value()

                    # -- export the view as a standalone HTML page
                    page.locator(".cql-explore .cql-export-path input").fill("exported_view.html")
                    page.locator(".cql-explore .cql-export-path input").press("Enter")
                    page.locator(".cql-explore .cql-export button, .cql-explore button.cql-export").first.click()
                    page.wait_for_selector(".cql-explore .cql-status .cql-export-result", timeout=WAIT_MS)
                    exported = server.root / "exports" / "exported_view.html"
                    assert exported.exists(), status_text(page)
                    page_html = exported.read_text(encoding="utf-8")
                    assert "<script src=" not in page_html and "GROUP BY billing_region" in page_html

                    assert not outside, f"requests left 127.0.0.1: {outside[:5]}"
                    assert not [line for line in console if line.startswith("pageerror")], console
                except Exception:
                    page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
                    raise
                finally:
                    browser.close()
        finally:
            server.stop()
            (ARTIFACTS / "console.log").write_text("\n".join(console), encoding="utf-8")

    total = time.perf_counter() - test_started
    report = "\n".join([
        "browser: control change -> table and chart redrawn in the page (ms from the change event):",
        *(trip.line() for trip in trips),
        round_trip_summary(trips),
        f"whole test {total:.1f} s",
    ])
    print(report)
    print(f"screenshots: {ARTIFACTS}")
    (ARTIFACTS / "latency.txt").write_text(report + "\n", encoding="utf-8")


def test_control_bar_in_the_commerceql_kernel(sample_store_path, tmp_path):
    """A VISUALIZE cell in the CommerceQL kernel shows the control bar; switching the dimension works."""
    require_browser()
    import nbformat
    from playwright.sync_api import sync_playwright

    install_kernel_spec()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {"kernelspec": {"name": "commerceql", "display_name": "CommerceQL", "language": "commerceql"}}
    notebook.cells.append(
        nbformat.v4.new_code_cell("FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar")
    )
    path = tmp_path / "controls_in_kernel.ipynb"
    nbformat.write(notebook, path)
    with tempfile.TemporaryDirectory(prefix="cql-browser-") as workdir:
        server = start_lab(Path(workdir), [path])
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    context = browser.new_context(viewport={"width": 1400, "height": 1600})
                    context.set_default_timeout(WAIT_MS)
                    page = context.new_page()
                    page.goto(server.url(f"/lab/tree/{path.name}"), wait_until="domcontentloaded")
                    wait_for_idle_kernel(page, kernel_label="CommerceQL")
                    run_first_code_cell(page, kernel_label="CommerceQL")
                    page.wait_for_selector(".cql-explore .cql-explore-table table", timeout=WAIT_MS)
                    page.wait_for_selector(".cql-explore .cql-chart svg text", timeout=WAIT_MS)
                    assert table_headers(page) == ["Sales channel", "Net sales"]
                    before = revision(page)
                    select(page, ".cql-dimension", "Billing region")
                    wait_for_update(page, before)
                    assert table_headers(page) == ["Billing region", "Net sales"]
                    assert "GROUP BY billing_region" in page.locator(".cql-explore .cql-query textarea").input_value()
                    shot(page, "10_commerceql_kernel_controls.png")
                finally:
                    browser.close()
        finally:
            server.stop()
