"""Shopify importer benchmark (part of `make bench`; never of `make test`).

A synthetic Shopify orders export of N lines is built by replicating a real one (the largest real
orders export in ../shared/realdata/shopify, 79 columns, one row per line item) with every copy's
order `Name` and `Id` made unique, so the copies are distinct orders with the export's exact
columns, quoting, multi-line fields, refunds, discounts and taxes. Each size is imported with
`commerceql import shopify` in a fresh process; printed per size: the median seconds, seconds per
million export lines against the 15 s target, the import process's peak RSS, and the seconds of
its phases (staging the CSV, building orders, assembling and reconciling the store).

    python -m benchmarks.importer [--lines 100000 1000000] [--repeat 1] [--profile]

`--profile` runs the smallest size once under cProfile and prints where the time goes; `--row-path`
measures the row-by-row builder the columnar path replaced (COMMERCEQL_SHOPIFY_ROWWISE=1).
The exports are cached under benchmarks/.data/importer (built once per size).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / ".data" / "importer"
REAL = ROOT.parent / "shared" / "realdata" / "shopify"
SOURCE = REAL / "monfrere_tactical_audit" / "Shopify_orders_export_2.csv"
TARGET_SECONDS_PER_MILLION = 15.0

# Run in the child: the import alone is timed (not the interpreter's start), and the child
# reports its own peak RSS (DuckDB's memory is in the process).
_CHILD = """
import functools, json, resource, sys, time
from commerceql.importers import import_shopify, shopify
export, out = sys.argv[1], sys.argv[2]
phases = {}
def timed(owner, name, phase):
    function = getattr(owner, name)
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - started
    setattr(owner, name, wrapper)
for owner, name, phase in ((shopify, "_stage_columnar", "staging"), (shopify, "_stage", "staging"),
                           (shopify.ColumnarOrders, "run", "orders"), (shopify, "_build_rows", "orders"),
                           (shopify, "_assemble", "assembly"), (shopify, "_reconcile", "assembly")):
    timed(owner, name, phase)
started = time.perf_counter()
report = import_shopify([export], out, overwrite=True)
seconds = time.perf_counter() - started
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": seconds, "cpu": usage.ru_utime + usage.ru_stime, "peak_mb": usage.ru_maxrss / 1024,
                  "rows": report.counts.get("rows_read"), "orders": report.counts.get("orders"), "phases": phases}))
"""

_PROFILE_CHILD = """
import cProfile, pstats, sys
from commerceql.importers import import_shopify
export, out = sys.argv[1], sys.argv[2]
profiler = cProfile.Profile()
profiler.enable()
import_shopify([export], out, overwrite=True)
profiler.disable()
stats = pstats.Stats(profiler)
stats.sort_stats("cumulative").print_stats(35)
# own time too: DuckDB statements and Polars collects show up as the Python function that ran them
stats.sort_stats("tottime").print_stats(20)
"""


def synthetic_export(lines: int, source: Path = SOURCE, folder: Path = DATA) -> Path:
    """A Shopify orders export of exactly `lines` records: copies of `source` with unique Names and Ids.

    Copy k renames order `#1234` to `#1234-k` (k > 0) and offsets the numeric `Id`, so no two
    copies share an order; a last partial copy stops at an order boundary or at `lines`.
    """
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"orders_export_{lines}.csv"
    if target.exists():
        return target
    with open(source, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records = list(reader)
    name_at = header.index("Name")
    id_at = header.index("Id") if "Id" in header else None
    offset = 10 ** len(str(max((int(r[id_at]) for r in records if id_at is not None and r[id_at].isdigit()),
                              default=0)))
    partial = target.with_suffix(".tmp")
    written = 0
    with open(partial, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        copy = 0
        while written < lines:
            for record in records:
                if written >= lines:
                    break
                row = list(record)
                if copy:
                    row[name_at] = f"{row[name_at]}-{copy}"
                    if id_at is not None and row[id_at].isdigit():
                        row[id_at] = str(int(row[id_at]) + copy * offset)
                writer.writerow(row)
                written += 1
            copy += 1
    partial.replace(target)
    return target


def _import_once(export: Path, row_path: bool) -> dict[str, float]:
    environment = {**os.environ, "COMMERCEQL_SHOPIFY_ROWWISE": "1" if row_path else ""}
    with tempfile.TemporaryDirectory(prefix="cql-import-bench-") as work:
        completed = subprocess.run(
            [sys.executable, "-c", _CHILD, str(export), str(Path(work) / "store")],
            check=True, capture_output=True, text=True, cwd=ROOT, timeout=3600, env=environment,
        )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def bench(sizes: list[int], repeat: int, row_path: bool = False) -> None:
    path = "row-by-row path (COMMERCEQL_SHOPIFY_ROWWISE=1)" if row_path else "columnar path"
    print(f"Shopify import (commerceql import shopify, {path}), synthetic orders export replicated from "
          f"{SOURCE.name}; target < {TARGET_SECONDS_PER_MILLION:g} s per million lines. CPU seconds "
          "(user + system, all threads) are printed too: on a shared machine they vary less than wall time")
    for lines in sizes:
        export = synthetic_export(lines)
        runs = [_import_once(export, row_path) for _ in range(repeat)]
        seconds = statistics.median(r["seconds"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        peak = max(r["peak_mb"] for r in runs)
        per_million = seconds / lines * 1_000_000
        verdict = "ok" if per_million <= TARGET_SECONDS_PER_MILLION else "over target"
        print(f"  {lines:>10,} lines ({runs[0]['orders']:,} orders): {seconds:8.2f} s  "
              f"{per_million:7.1f} s per million lines (target < {TARGET_SECONDS_PER_MILLION:g})  "
              f"CPU {cpu / lines * 1_000_000:7.1f} s per million  peak RSS {peak:,.0f} MB  {verdict}", flush=True)
        # where the time goes (median per phase): staging the CSV, building orders, writing the store
        phases = {name: statistics.median(r["phases"].get(name, 0.0) for r in runs)
                  for name in ("staging", "orders", "assembly")}
        rest = seconds - sum(phases.values())
        print("      " + "  ".join(f"{name} {value:.2f} s" for name, value in phases.items())
              + f"  other {rest:.2f} s", flush=True)


def profile(lines: int) -> None:
    export = synthetic_export(lines)
    with tempfile.TemporaryDirectory(prefix="cql-import-profile-") as work:
        subprocess.run([sys.executable, "-c", _PROFILE_CHILD, str(export), str(Path(work) / "store")],
                       check=True, cwd=ROOT, timeout=3600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="imports per size (the median is printed)")
    parser.add_argument("--profile", action="store_true", help="profile the smallest size with cProfile")
    parser.add_argument("--row-path", action="store_true",
                        help="measure the row-by-row path the columnar one replaced (the before figure)")
    args = parser.parse_args(argv)
    if not SOURCE.exists():
        print(f"Shopify import benchmark skipped: {SOURCE} is not there")
        return 0
    if args.profile:
        profile(min(args.lines))
        return 0
    bench(args.lines, args.repeat, args.row_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
