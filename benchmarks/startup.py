"""Start-up benchmarks: what a user waits for before the first answer (part of `make bench`).

Each figure is the median of several cold processes, printed with its target and, where there
is one, as a ratio to a reference (`python -c pass` for process start):

- `commerceql --help`                                     target < 0.3 s
- CLI: first result of a query on the default store       target < 0.7 s
- first chart in a process (VISUALIZE → PNG), on top of the query   target < 1 s extra
- first query in a new CommerceQL-kernel session (table + chart shown)   target < 3 s
- imports of `commerceql` and `commerceql.cli` (what the entry points pay before any work)

    python -m benchmarks.startup [--repeat 5] [--no-kernel]
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


def kernel_first_query(repeat: int) -> float:
    """Median time from starting a CommerceQL kernel to the table and chart of its first cell."""
    from jupyter_client.manager import start_new_kernel

    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        manager, client = start_new_kernel(kernel_name="commerceql", startup_timeout=120)
        try:
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


def run(repeat: int, kernel: bool) -> None:
    print("\n== start-up (cold processes, median of", repeat, "runs) ==")
    from commerceql.sample import ensure_default_store

    ensure_default_store()  # the first-ever run generates the store: not what is measured here
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


def _chart(cli: list[str], repeat: int) -> float:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return _cold([*cli, "query", CHART_QUERY, "--chart", str(Path(folder) / "chart.png")], repeat)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-kernel", action="store_true", help="skip the kernel figure")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    run(args.repeat, kernel=not args.no_kernel)
    return 0


if __name__ == "__main__":
    sys.exit(main())
