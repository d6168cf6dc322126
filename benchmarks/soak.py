"""Soak: does the CommerceQL kernel's memory stay flat over many VISUALIZE cells?

    make soak                                   # 2,000 cells
    python -m benchmarks.soak --cells 500       # fewer
    python -m benchmarks.soak --same-cell       # every execution re-runs one cell (same cellId)

Starts the CommerceQL kernel with jupyter_client, runs `--warmup` cells first (imports, DuckDB
caches, the first control bars), then measures the kernel process's resident memory (RSS, from
/proc) before and after `--cells` VISUALIZE cells. Each cell carries a new `cellId`, as if the
user kept adding cells (the worst case: only the limit on open control bars closes old ones);
`--same-cell` sends one cellId, as when a cell is re-run. Exits 1 when the growth is above
`--max-growth-mb` (default 50).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

QUERIES = (
    "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar",
    "FROM sales SHOW net_sales, orders TIMESERIES month DURING last_year VISUALIZE net_sales TYPE line",
    "FROM sales SHOW net_sales GROUP BY billing_region DURING last_quarter COMPARE TO previous_year VISUALIZE net_sales",
    "FROM sales SHOW orders GROUP BY customer_type DURING this_year VISUALIZE orders TYPE donut",
)


def rss_mb(pid: int) -> float:
    """Resident set size of process `pid` in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def execute(client: Any, code: str, cell_id: str, timeout: float) -> str:
    """Run one cell (with JupyterLab's cellId metadata); returns the reply status."""
    message = client.session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
        metadata={"cellId": cell_id},
    )
    client.shell_channel.send(message)
    msg_id = message["header"]["msg_id"]
    while True:
        reply = client.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    # Drain this cell's iopub messages (widget comms, displays) so nothing piles up client-side.
    while True:
        iopub = client.get_iopub_msg(timeout=timeout)
        if (
            iopub["parent_header"].get("msg_id") == msg_id
            and iopub["msg_type"] == "status"
            and iopub["content"]["execution_state"] == "idle"
        ):
            break
    return str(reply["content"]["status"])


def run_cells(client: Any, count: int, *, same_cell: bool, timeout: float, label: str) -> None:
    cell = uuid.uuid4().hex
    started = time.monotonic()
    for index in range(count):
        if not same_cell:
            cell = uuid.uuid4().hex
        status = execute(client, QUERIES[index % len(QUERIES)], cell, timeout)
        if status != "ok":
            raise RuntimeError(f"{label} cell {index + 1} failed: {status}")
        if (index + 1) % 250 == 0:
            print(f"  {label}: {index + 1}/{count} cells, {time.monotonic() - started:.0f} s", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000, help="VISUALIZE cells to run and measure (default 2000)")
    parser.add_argument("--warmup", type=int, default=60, help="cells run before the first measurement (default 60)")
    parser.add_argument("--same-cell", action="store_true", help="every execution re-runs one cell (same cellId)")
    parser.add_argument("--max-growth-mb", type=float, default=50.0, help="fail above this RSS growth (default 50)")
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for one cell (default 240)")
    args = parser.parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("the soak reads memory from /proc: Linux only", file=sys.stderr)
        return 2

    from commerceql_kernel.install import install_kernel_spec
    from jupyter_client.manager import start_new_kernel

    from commerceql.sample import ensure_default_store

    ensure_default_store()
    install_kernel_spec(sys_prefix=True)
    manager, client = start_new_kernel(kernel_name="commerceql", startup_timeout=240)
    try:
        pid = manager.provisioner.pid if manager.provisioner is not None else None
        if pid is None:
            raise RuntimeError("cannot find the kernel's process id")
        mode = "one cell re-run" if args.same_cell else "a new cell each time"
        print(f"kernel pid {pid}; {args.warmup} warm-up cells, then {args.cells} VISUALIZE cells ({mode})", flush=True)
        print(f"RSS after start:   {rss_mb(pid):8.1f} MB", flush=True)
        run_cells(client, args.warmup, same_cell=args.same_cell, timeout=args.timeout, label="warm-up")
        start = rss_mb(pid)
        print(f"RSS after warm-up: {start:8.1f} MB", flush=True)
        started = time.monotonic()
        run_cells(client, args.cells, same_cell=args.same_cell, timeout=args.timeout, label="soak")
        end = rss_mb(pid)
        elapsed = time.monotonic() - started
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    growth = end - start
    print(f"RSS at the end:    {end:8.1f} MB")
    print(
        f"growth over {args.cells} cells: {growth:+.1f} MB ({growth * 1024 / max(args.cells, 1):+.1f} KB per cell), "
        f"{elapsed:.0f} s ({elapsed * 1000 / max(args.cells, 1):.0f} ms per cell); limit {args.max_growth_mb:.0f} MB"
    )
    return 0 if growth <= args.max_growth_mb else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
