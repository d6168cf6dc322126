"""Start-up benchmarks: what a user waits for before the first answer (part of `make bench`).

Each figure is the median of several cold processes, printed with its target and, where there
is one, as a ratio to a reference (`python -c pass` for process start):

- `commerceql --help`                                     target < 0.3 s
- CLI: first result of a query on the default store       target < 0.7 s
- first chart in a process (VISUALIZE → PNG), on top of the query   target < 1 s extra
- first query in a new CommerceQL-kernel session (table + chart shown)   target < 3 s
- imports of `commerceql` and `commerceql.cli` (what the entry points pay before any work)
- explore widget, kernel side: from setting a control's value to the table and chart updated, in
  process, for any change, a chart type change and a change back to a view shown before; and the
  size of what an update sends to the page
- explore widget in the browser (`--browser`: runs tests/browser/test_widgets_browser.py, which
  prints the round trip p50 in the page, target < 0.3 s; without it, its last printed figure)

The package's bytecode is compiled first, as an installed package has it: under
PYTHONDONTWRITEBYTECODE=1 a source checkout would otherwise recompile every edited module in
every measured process.

    python -m benchmarks.startup [--repeat 5] [--no-kernel] [--no-widget] [--browser]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
QUERY = "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month"
WARM_UP_WIDGET_QUERY = "FROM sales SHOW orders GROUP BY product_type DURING last_year VISUALIZE orders TYPE bar"
CHART_QUERY = "FROM sales SHOW net_sales TIMESERIES month DURING last_year VISUALIZE net_sales TYPE line"


def _cold(command: Sequence[str], repeat: int) -> float:
    """Median wall time of `command` run `repeat` times as a fresh process (after one warm-up run
    that fills the OS file cache, as a user's second run would find it)."""
    times = []
    for index in range(repeat + 1):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=600)
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _line(what: str, seconds: float, target: float | None, reference: float | None = None) -> None:
    verdict = "" if target is None else ("  ok" if seconds <= target else "  over target")
    ratio = "" if reference is None else f"  ({seconds / reference:.1f}x python -c pass)"
    aim = "" if target is None else f"  target < {target:g} s"
    print(f"  {what:<58} {seconds:7.3f} s{aim}{ratio}{verdict}")


def kernel_first_query(repeat: int, pause: float = 0.0) -> float:
    """Median time from starting a CommerceQL kernel to the table and chart of its first cell.

    With `pause`, the cell is sent that many seconds after the kernel is ready (a user opening a
    notebook and running its first cell) and the time counts from sending it.
    """
    from jupyter_client.manager import start_new_kernel

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        manager, client = start_new_kernel(kernel_name="commerceql", startup_timeout=120)
        try:
            if pause:
                time.sleep(pause)  # the user opening the notebook; the kernel warms up meanwhile
                start = time.perf_counter()
            reply_id = client.execute(CHART_QUERY)
            shown: set[str] = set()
            while True:
                message = client.get_iopub_msg(timeout=120)
                if message["msg_type"] in ("display_data", "execute_result"):
                    shown |= set(message["content"]["data"])
                if message["msg_type"] == "error":
                    raise RuntimeError(message["content"]["evalue"])
                if (message["msg_type"] == "status" and message["parent_header"].get("msg_id") == reply_id
                        and message["content"]["execution_state"] == "idle"):
                    break
            if not shown:
                raise RuntimeError("the kernel showed nothing for the first cell")
            times.append(time.perf_counter() - start)
        finally:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
    return statistics.median(times)


#: Back and forth between two views: after the first two changes, each is answered by a kept view.
TOGGLE_CHANGES = (("dimension", "billing_region"), ("dimension", "sales_channel"))


def widget_round_trip(rounds: int) -> dict[str, float]:
    """Kernel-side control change -> table and chart updated (seconds): p50/p90 of every change
    after the first, the p50 of the chart type changes alone (no query), of toggling back to a
    view shown before (a kept view: no query, no drawing), and the p50 size of what is sent."""
    from commerceql.store import connect
    from commerceql.widgets import MEASURED_CHANGES, measure_latency

    with connect() as store:
        # Warm-up on another query (the first widget of a process imports ipywidgets and starts
        # vl-convert), so the measured changes find none of their charts already compiled.
        measure_latency(store, query=WARM_UP_WIDGET_QUERY, changes=(("dimension", "billing_region"), ("chart_type", "line")))
        report = measure_latency(store, changes=tuple(MEASURED_CHANGES) * max(1, rounds))
        toggles = measure_latency(store, changes=TOGGLE_CHANGES * max(3, rounds + 2))
    chart_types = [seconds for control, _, seconds, _ in report["samples"] if control == "chart_type"]
    kept = [sample[2] for sample, update in zip(toggles["samples"], toggles["updates"], strict=True) if update["reused"]]
    return {"p50": report["p50"], "p90": report["p90"], "max": report["max"],
            "chart_type_p50": statistics.median(chart_types) if chart_types else float("nan"),
            "kept_view_p50": statistics.median(kept) if kept else float("nan"),
            "size_p50": report["size_p50"]}


BROWSER_TEST = "tests/browser/test_widgets_browser.py"
LAST_BROWSER_FIGURES = ROOT / "artifacts" / "browser" / "latency.txt"


def browser_round_trip() -> str | None:
    """Run the browser test (JupyterLab + Chromium, ~30 s) and return its round trip line.

    None when it could not run (no Chromium or Playwright: the test skips) or printed no figure.
    """
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "kernel")])}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", BROWSER_TEST, "-k", "jupyterlab"],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1200,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("browser round trip")]
    return lines[-1] if lines else None


def _last_browser_figure() -> str | None:
    """The round trip line of the last browser test run, with when it ran (None if never)."""
    if not LAST_BROWSER_FIGURES.exists():
        return None
    lines = [line for line in LAST_BROWSER_FIGURES.read_text(encoding="utf-8").splitlines() if line.startswith("browser round trip")]
    if not lines:
        return None
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(LAST_BROWSER_FIGURES.stat().st_mtime))
    return f"{lines[-1]} [last browser test run, {when}; --browser runs it now]"


def _compile_bytecode() -> None:
    import compileall

    for package in (ROOT / "commerceql", ROOT / "kernel" / "commerceql_kernel"):
        compileall.compile_dir(str(package), quiet=1)


def run(repeat: int, kernel: bool, widget: bool = True, browser: bool = False) -> None:
    print("\n== start-up (cold processes, median of", repeat, "runs) ==")
    from commerceql.sample import ensure_default_store

    ensure_default_store()  # the first-ever run generates the store: not what is measured here
    _compile_bytecode()
    python = [sys.executable]
    cli = [str(BIN / "commerceql")]
    reference = _cold([*python, "-c", "pass"], repeat)
    _line("python -c pass (reference)", reference, None)
    _line("import commerceql", _cold([*python, "-c", "import commerceql"], repeat), None, reference)
    _line("import commerceql.cli", _cold([*python, "-c", "import commerceql.cli"], repeat), None, reference)
    _line("commerceql --help", _cold([*cli, "--help"], repeat), 0.3, reference)
    first = _cold([*cli, "query", QUERY], repeat)
    _line("CLI: first result of a query (default store)", first, 0.7, reference)
    with_chart = _chart(cli, repeat)
    _line("CLI: first chart, extra over the query", max(with_chart - first, 0.0), 1.0)
    if kernel:
        _line("kernel: first query in a new session (table + chart)", kernel_first_query(max(1, repeat // 2)), 3.0)
        _line("kernel: first cell sent 5 s after start-up (from sending it)",
              kernel_first_query(max(1, repeat // 2), pause=5.0), None)
    if widget:
        figures = widget_round_trip(max(1, repeat // 2))
        _line("widget control change, kernel side (p50)", figures["p50"], None)
        _line("widget control change, kernel side (p90)", figures["p90"], None)
        _line("widget chart type change, kernel side (p50, no query)", figures["chart_type_p50"], None)
        _line("widget back to a view shown before, kernel side (p50, kept)", figures["kept_view_p50"], None)
        print(f"  {'widget update sent to the page (p50: status, query, changed pieces)':<58} {figures['size_p50'] / 1024:7.1f} K chars")
        print("  (the browser target is < 0.3 s for the whole round trip; the kernel side is part of it)")
    if browser:
        line = browser_round_trip()
        print(f"  {line}" if line else f"  browser round trip: {BROWSER_TEST} did not run (Chromium or Playwright missing?)")
    elif widget:
        last = _last_browser_figure()
        if last:
            print(f"  {last}")


def _chart(cli: list[str], repeat: int) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return _cold([*cli, "query", CHART_QUERY, "--chart", str(Path(folder) / "chart.png")], repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-kernel", action="store_true", help="skip the kernel figure")
    parser.add_argument("--no-widget", action="store_true", help="skip the explore widget figures")
    parser.add_argument("--browser", action="store_true",
                        help=f"also run {BROWSER_TEST} (JupyterLab + Chromium, ~30 s) for the widget's browser round trip")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    run(args.repeat, kernel=not args.no_kernel, widget=not args.no_widget, browser=args.browser)
    print(f"load average {os.getloadavg()[0]:.2f} (1 min) at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
