"""Scale benchmark: `make bench-scale` — CommerceQL on a store of 100M sales rows, from Parquet.

The store is the bundled sample store with its `sales` and `line_items` tables replicated
(`copy` × the sample, order / line / sale ids offset per copy, every other column unchanged) until
`sales` has at least `--rows` rows, written once under `benchmarks/.data/sales-<rows>/`. Queries
read the Parquet files in place: nothing is loaded into memory first. Each benchmark query of
`benchmarks/run.py` runs in a fresh process per side (CommerceQL, or the hand-written DuckDB SQL
on the same store connection, so the same memory limit and threads), `--rounds` times with the
sides alternating (ours, hand, then hand, ours, ...) so that a change in the machine's load during
the run falls on both sides alike, which prints

- the median time over every round's `--repeat` runs (each process warms up first), and the ratio
  CommerceQL / hand SQL (target ≤ 1.1×),
- the process's peak RSS (target < 4 GB), and
- whether DuckDB spilled to disk (the largest size its temp folder reached while the query ran).

Both sides' answers are compared (money to the cent) before any figure is printed.

    python -m benchmarks.scale                     # 100M sales rows (about 3 GB of Parquet)
    python -m benchmarks.scale --rows 1000000 --repeat 1 --check   # the small version CI runs
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
RSS_TARGET_GB = 4.0
RATIO_TARGET = 1.1
# id columns offset per copy, so replicated orders and lines stay distinct (counts of orders scale too)
REPLICATED = {"sales": ("sale_id", "order_id", "line_item_id"), "line_items": ("line_item_id", "order_id")}


def replicate(base: Path, folder: Path, copies: int) -> None:
    """Write `folder`: the store `base` with its sales and line items repeated `copies` times (ids
    offset per copy, every other column unchanged), atomically (built beside it, then renamed)."""
    import duckdb

    # Bounded, streaming copy: without a limit DuckDB may take 80 % of the machine's memory for a
    # 100M-row COPY, and the row order of a benchmark store does not matter.
    spill = folder.parent / ".spill"
    con = duckdb.connect(config={"memory_limit": "2GB", "preserve_insertion_order": False, "threads": 2,
                                 "temp_directory": str(spill)})
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp)
    try:
        for table, id_columns in REPLICATED.items():
            source = base / f"{table}.parquet"
            offset = con.execute(f"SELECT max({id_columns[0]}) + 1 FROM read_parquet('{source}')").fetchone()[0]
            shifted = ", ".join(f"{c} + copy * {offset} AS {c}" for c in id_columns)
            con.execute(
                f"COPY (SELECT * EXCLUDE (copy) REPLACE ({shifted}) FROM range({copies}) AS r(copy), "
                f"read_parquet('{source}')) TO '{tmp / (table + '.parquet')}' (FORMAT parquet, ROW_GROUP_SIZE 122880)"
            )
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    manifest = json.loads((tmp / "manifest.json").read_text())
    manifest["name"] = f"{manifest['name']} (sales replicated x{copies} for benchmarks)"
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    tmp.rename(folder)


def scale_store(rows: int) -> Path:
    """A cached store whose `sales` table has at least `rows` rows (the sample store replicated)."""
    import duckdb

    from commerceql.sample import ensure_default_store

    folder = DATA / f"sales-{rows}"
    if (folder / "manifest.json").exists():
        return folder
    base = Path(ensure_default_store())
    base_rows = duckdb.sql(f"SELECT count(*) FROM read_parquet('{base / 'sales.parquet'}')").fetchall()[0][0]
    copies = -(-rows // base_rows)
    start = time.perf_counter()
    replicate(base, folder, copies)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 1e9
    print(f"  built {folder.name}: {copies} copies of the sample store's sales ({base_rows:,} rows), "
          f"{size:.1f} GB, in {time.perf_counter() - start:.0f} s")
    return folder


class _SpillWatch:
    """The largest total size DuckDB's spill folder(s) reached while watching."""

    def __init__(self, folders: list[Path]) -> None:
        self.folders = folders
        self.largest = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.05):
            size = 0
            for folder in self.folders:
                for path in folder.rglob("*"):
                    try:
                        size += path.stat().st_size
                    except OSError:  # DuckDB removes its spill files as it goes
                        pass
            self.largest = max(self.largest, size)

    def __enter__(self) -> _SpillWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _child(path: Path, index: int, side: str, repeat: int, out: Path) -> int:
    """Run one query on one side; print a JSON line with its figures; write its answer to `out`."""
    import commerceql as cql
    from benchmarks.run import QUERIES, timed_runs

    name, text, sql = QUERIES[index]
    before = set(Path(tempfile.gettempdir()).glob("commerceql-duckdb-*"))
    with cql.connect(path) as store:
        spill_folders = sorted(set(Path(tempfile.gettempdir()).glob("commerceql-duckdb-*")) - before)
        run = (lambda: store.query(text).df) if side == "ours" else (lambda: store.sql(sql))
        with _SpillWatch(spill_folders) as spill:
            times = timed_runs(run, repeat)
        run().write_parquet(out)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kilobytes on Linux
    print(json.dumps({"times": times, "rss_gb": peak_kb / 1e6, "spilled_gb": spill.largest / 1e9}))
    return 0


def _run_side(path: Path, index: int, side: str, repeat: int, out: Path) -> dict[str, float]:
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--child", str(path), str(index), side, str(repeat), str(out)],
        capture_output=True, text=True, cwd=ROOT.parent, timeout=3600,
    )
    if process.returncode:
        raise RuntimeError(f"{side} side of query {index} failed:\n{process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def _rounds(path: Path, index: int, repeat: int, rounds: int, folder: Path) -> dict[str, dict[str, Any]]:
    """Both sides of query `index`, `rounds` times, the side going first alternating per round;
    per side: the median over all rounds' runs, the largest RSS and spill, its answer's file."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "hand": []}
    for round_number in range(rounds):
        sides = ("ours", "hand") if round_number % 2 == 0 else ("hand", "ours")
        for side in sides:
            out = folder / f"{index}-{side}-{round_number}.parquet"
            runs[side].append({**_run_side(path, index, side, repeat, out), "out": out})
    return {
        side: {
            "seconds": statistics.median(t for figures in per_round for t in figures["times"]),
            "rss_gb": max(figures["rss_gb"] for figures in per_round),
            "spilled_gb": max(figures["spilled_gb"] for figures in per_round),
            "out": per_round[0]["out"],
        }
        for side, per_round in runs.items()
    }


def run(rows: int, repeat: int, check: bool, rounds: int = 2) -> int:
    """Print the figures; return the number of queries whose answers disagree (0 = all agree)."""
    import polars as pl

    from benchmarks.run import QUERIES, compare

    path = scale_store(rows)
    print(f"\n== scale: {rows:,}+ sales rows from Parquet ({path.name}); median of {rounds} x {repeat} runs, "
          f"one process per side and round, sides alternating ==")
    print(f"  {'query':<36} {'CommerceQL':>11} {'hand SQL':>10} {'ratio':>7} {'peak RSS':>9} {'spilled':>8}")
    mismatches = 0
    ratios = []
    with tempfile.TemporaryDirectory() as folder:
        for index, (name, _text, _sql) in enumerate(QUERIES):
            sides = _rounds(path, index, repeat, rounds, Path(folder))
            ours, theirs = sides["ours"], sides["hand"]
            problem = compare(pl.read_parquet(ours["out"]), pl.read_parquet(theirs["out"]))
            if problem:
                mismatches += 1
                print(f"  {name:<36} MISMATCH: {problem}")
                continue
            ratio = ours["seconds"] / theirs["seconds"]
            ratios.append(ratio)
            rss = max(ours["rss_gb"], theirs["rss_gb"])
            spilled = max(ours["spilled_gb"], theirs["spilled_gb"])
            spill_text = f"{spilled:.2f}GB" if spilled else "no"
            print(f"  {name:<36} {ours['seconds'] * 1000:>9.0f}ms {theirs['seconds'] * 1000:>8.0f}ms {ratio:>6.2f}x "
                  f"{rss:>7.2f}GB {spill_text:>8}")
    if ratios:
        print(f"  geometric mean ratio {statistics.geometric_mean(ratios):.2f}x (target <= {RATIO_TARGET}x); "
              f"peak RSS target < {RSS_TARGET_GB:g} GB per process")
    if check and mismatches:
        print(f"{mismatches} queries disagree with the hand-written SQL", file=sys.stderr)
    return mismatches


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        path, index, side, repeat, out = argv[1:6]
        return _child(Path(path), int(index), side, int(repeat), Path(out))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000, help="sales rows at least (default 100M)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per process (after a warm-up run)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="processes per side, the sides alternating (default 2: ours, hand, hand, ours)")
    parser.add_argument("--check", action="store_true", help="exit 1 when an answer disagrees (for CI)")
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    mismatches = run(args.rows, args.repeat, args.check, args.rounds)
    return 1 if args.check and mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
