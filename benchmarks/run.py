"""CommerceQL benchmarks: `make bench` (or `python -m benchmarks.run`).

1. Compile latency (text → SQL: parse, resolve, compile) over the conformance queries that
   resolve against the built-in model: p50 / p99 per query, for the DuckDB and the Spark
   dialect. Target p50 < 1 ms for both.
2. End-to-end query time against hand-written DuckDB SQL computing the same numbers, on stores of
   about 1M and 10M order lines (generated once and cached under benchmarks/.data). The ratio
   CommerceQL / hand-written is printed per query. Target ≤ 1.1×.
0. Start-up: `commerceql --help`, the CLI's first result and first chart, the kernel's first
   query, each a median over cold processes with its target (benchmarks/startup.py).
3. The same CommerceQL queries on a local Spark (`engine="spark"`) on the same stores, with the
   ratio Spark / DuckDB per query and Spark's start-up time on its own (benchmarks/spark.py).
   `--no-spark` skips this part; without pyspark or Java it is skipped with one line.

Both sides of (2) run on the same DuckDB connection over the same Parquet files; each timing is
the median of several runs after a warm-up run. Results are checked to agree before they are
timed: with the hand-written SQL in (2), with DuckDB's frames in (3).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

import commerceql as cql
from benchmarks.spark import Baseline, SparkBench
from commerceql.compiler import compile_plan
from commerceql.dialect import DUCKDB, SPARK, Dialect
from commerceql.engines import spark_unavailable as unavailable
from commerceql.errors import CommerceQLError
from commerceql.parser import parse, parse_script
from commerceql.resolver import resolve

ROOT = Path(__file__).resolve().parent
DATA = ROOT / ".data"
CONFORMANCE = ROOT.parent / "tests" / "conformance"
TZ = "America/New_York"
LOCAL = f"timezone('{TZ}', s.happened_at)"
LAST_YEAR = (
    "s.happened_at >= TIMESTAMPTZ '2024-01-01 00:00:00-05:00' AND s.happened_at < TIMESTAMPTZ '2025-01-01 00:00:00-05:00'"
)
PREVIOUS_YEAR = (
    "s.happened_at >= TIMESTAMPTZ '2023-01-01 00:00:00-05:00' AND s.happened_at < TIMESTAMPTZ '2024-01-01 00:00:00-05:00'"
)

# (name, CommerceQL, hand-written SQL producing the same rows and values)
QUERIES: list[tuple[str, str, str]] = [
    (
        "monthly net sales",
        "FROM sales SHOW net_sales, orders GROUP BY month DURING last_year",
        f"""SELECT CAST(date_trunc('month', {LOCAL}) AS DATE) AS month, SUM(s.net_sales) AS net_sales,
                   COUNT(DISTINCT s.order_id) FILTER (WHERE s.event_type = 'order') AS orders
            FROM sales s WHERE {LAST_YEAR} GROUP BY 1 ORDER BY 1""",
    ),
    (
        "net sales by product type (join)",
        "FROM sales SHOW net_sales GROUP BY product_type DURING last_year",
        f"""SELECT p.product_type, SUM(s.net_sales) AS net_sales
            FROM sales s LEFT JOIN products p ON s.product_id = p.product_id
            WHERE {LAST_YEAR} GROUP BY 1 ORDER BY 2 DESC NULLS LAST, 1""",
    ),
    (
        "channel mix with AOV and totals",
        "FROM sales SHOW net_sales, orders, average_order_value GROUP BY sales_channel WITH TOTALS DURING last_year",
        f"""WITH g AS (
              SELECT s.sales_channel, SUM(s.net_sales) AS net_sales,
                     COUNT(DISTINCT s.order_id) FILTER (WHERE s.event_type = 'order') AS orders,
                     SUM(s.gross_sales + s.discounts) FILTER (WHERE s.event_type = 'order')
                       / COUNT(DISTINCT s.order_id) FILTER (WHERE s.event_type = 'order') AS average_order_value,
                     GROUPING(s.sales_channel) AS level
              FROM sales s WHERE {LAST_YEAR} GROUP BY GROUPING SETS ((s.sales_channel), ()))
            SELECT r.sales_channel, r.net_sales, r.orders, r.average_order_value,
                   t.net_sales AS net_sales__totals, t.orders AS orders__totals,
                   t.average_order_value AS average_order_value__totals
            FROM g r, g t WHERE r.level = 0 AND t.level = 1 ORDER BY r.net_sales DESC""",
    ),
    (
        # Days line up by calendar date (Dec 3 with Dec 3 of the year before), as CommerceQL does:
        # 2024's Feb 29 has no twin in 2023 (comparison 0), and a previous-year Feb 29 would clamp
        # onto Feb 28 under + INTERVAL 1 YEAR, so it is kept out of every row.
        "daily series vs previous year",
        "FROM sales SHOW net_sales TIMESERIES day DURING last_year COMPARE TO previous_year",
        f"""WITH cur AS (SELECT CAST(date_trunc('day', {LOCAL}) AS DATE) AS day, SUM(s.net_sales) AS v
                         FROM sales s WHERE {LAST_YEAR} GROUP BY 1),
                 prev AS (SELECT CAST(date_trunc('day', {LOCAL}) AS DATE) AS day, SUM(s.net_sales) AS v
                          FROM sales s WHERE {PREVIOUS_YEAR} GROUP BY 1),
                 spine AS (SELECT CAST(range AS DATE) AS day FROM range(TIMESTAMP '2024-01-01', TIMESTAMP '2025-01-01', INTERVAL 1 DAY))
            SELECT spine.day, COALESCE(cur.v, 0) AS net_sales, COALESCE(prev.v, 0) AS comparison_net_sales__previous_year
            FROM spine LEFT JOIN cur USING (day)
            LEFT JOIN prev ON CAST(prev.day + INTERVAL 1 YEAR AS DATE) = spine.day
              AND NOT (month(prev.day) = 2 AND day(prev.day) = 29)
            ORDER BY 1""",
    ),
    (
        "top 10 products with Other",
        "FROM sales SHOW net_sales GROUP BY TOP 10 product_title DURING last_year",
        f"""WITH by_product AS (
              SELECT p.title, SUM(s.net_sales) AS v FROM sales s LEFT JOIN products p ON s.product_id = p.product_id
              WHERE {LAST_YEAR} GROUP BY 1),
            ranked AS (SELECT *, row_number() OVER (ORDER BY v DESC NULLS LAST, title NULLS LAST) AS rn FROM by_product)
            SELECT CASE WHEN rn <= 10 THEN title ELSE 'Other' END AS product_title, SUM(v) AS net_sales
            FROM ranked GROUP BY 1 ORDER BY (product_title = 'Other'), 2 DESC""",
    ),
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def compiler_for(store: cql.Store, dialect: Dialect) -> Callable[[str], object]:
    """Text → SQL in `dialect`: what `Store.compile` does, with the dialect chosen here.

    The Spark dialect is compiled against the DuckDB store's model and clock, so its latency is
    measured without a JVM (compiling never touches the engine).
    """

    def compile_text(text: str) -> object:
        # store.now() per call, as Store.compile does: reading the clock is part of its cost.
        plan = resolve(parse(text), store.model, now=store.now(), timezone=store.timezone, currency=store.currency)
        return compile_plan(plan, dialect)

    return compile_text


def bench_compile(store: cql.Store, iterations: int) -> None:
    sources: list[str] = []
    for path in sorted(CONFORMANCE.glob("*.cql")):
        try:
            queries = parse_script(path.read_text(encoding="utf-8"))
        except CommerceQLError:
            continue
        sources += [query.source[query.span.start_pos : query.span.end_pos] if query.span else query.source
                    for query in queries]
    for label, dialect in (("DuckDB", DUCKDB), ("Spark", SPARK)):
        compile_text = compiler_for(store, dialect)
        texts: list[str] = []
        for text in sources:
            try:
                compile_text(text)
            except CommerceQLError:
                continue  # conformance queries of other tables or refused ones: not a latency sample
            texts.append(text)
        if not texts:
            print(f"compile latency ({label}): no conformance queries resolve against the model")
            continue
        samples: list[float] = []
        for _ in range(iterations):
            for text in texts:
                start = time.perf_counter()
                compile_text(text)
                samples.append((time.perf_counter() - start) * 1000)
        print(f"compile latency ({label + ' dialect'}) over {len(texts)} conformance queries x {iterations}: "
              f"p50 {percentile(samples, 0.5):.3f} ms, p99 {percentile(samples, 0.99):.3f} ms (target p50 < 1 ms)")


def compare(ours: pl.DataFrame, theirs: pl.DataFrame) -> str | None:
    """None when both frames hold the same rows and values (money to the cent), else why not."""
    if ours.shape != theirs.shape:
        return f"shape {ours.shape} vs {theirs.shape}"
    for left, right in zip(ours.rows(), theirs.rows(), strict=True):
        for a, b in zip(left, right, strict=True):
            if isinstance(a, (int, float)) or hasattr(a, "as_tuple"):
                if b is None or abs(float(a) - float(b)) > 0.005 + 1e-9 * abs(float(b)):
                    return f"{left} vs {right}"
            elif a != b:
                return f"{left} vs {right}"
    return None


def timed_runs(function: Callable[[], object], repeat: int) -> list[float]:
    """Seconds of each of `repeat` runs of `function`, after one warm-up run (Parquet metadata cache)."""
    function()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return runs


def timed(function: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` runs of `function`, after one warm-up run."""
    return statistics.median(timed_runs(function, repeat))


def store_for_lines(target_lines: int) -> Path:
    """A cached store with about `target_lines` order lines.

    Up to 2M lines the generator writes the store directly. Larger stores replicate a generated
    2M-line store's sales and line items (order and line ids offset per copy, everything else
    unchanged), because the generator's sessions table grows 30x faster than the order lines and
    the queries benchmarked here read only `sales` and `products`.
    """
    from commerceql.sample import generate_store

    folder = DATA / f"lines-{target_lines}"
    if (folder / "manifest.json").exists():
        return folder
    lines_per_order = 1.78  # measured on the default sample store (89,238 lines / 50,000 orders)
    if target_lines <= 2_000_000:
        start = time.perf_counter()
        generate_store(folder, orders=int(target_lines / lines_per_order))
        print(f"  generated {folder.name} in {time.perf_counter() - start:.1f} s")
        return folder
    from benchmarks.scale import replicate

    base = store_for_lines(1_000_000)
    copies = max(1, round(target_lines / 1_000_000))
    start = time.perf_counter()
    replicate(base, folder, copies)
    print(f"  built {folder.name} ({copies} copies of {base.name}) in {time.perf_counter() - start:.1f} s")
    return folder


def bench_queries(path: Path, repeat: int) -> tuple[int, list[Baseline]]:
    """Print CommerceQL vs hand SQL on DuckDB; return the store's line count and each query's
    DuckDB answer and time, which the Spark part checks against and divides by."""
    baselines: list[Baseline] = []
    with cql.connect(path) as store:
        lines = int(store.sql("SELECT COUNT(*) AS n FROM line_items")["n"][0])
        print(f"\nend-to-end on {lines:,} order lines ({path.name}); median of {repeat} runs")
        print(f"  {'query':<36} {'CommerceQL':>11} {'hand SQL':>10} {'ratio':>7}")
        ratios = []
        for name, text, sql in QUERIES:
            result = store.query(text)
            hand = store.sql(sql)
            problem = compare(result.df, hand)
            if problem:
                print(f"  {name:<36} MISMATCH: {problem}")
                baselines.append(Baseline(name, text, result.df, None))
                continue
            ours = timed(lambda t=text: store.query(t), repeat)
            theirs = timed(lambda s=sql: store.sql(s), repeat)
            ratios.append(ours / theirs)
            baselines.append(Baseline(name, text, result.df, ours))
            print(f"  {name:<36} {ours * 1000:>9.1f}ms {theirs * 1000:>8.1f}ms {ours / theirs:>6.2f}x")
        if ratios:
            print(f"  geometric mean ratio {statistics.geometric_mean(ratios):.2f}x (target <= 1.1x)")
    return lines, baselines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="*", default=[1_000_000, 10_000_000],
                        help="order-line counts of the stores to benchmark (default: 1M and 10M)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--compile-iterations", type=int, default=50)
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark part")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up part (benchmarks/startup.py)")
    parser.add_argument("--spark-repeat", type=int, default=3,
                        help="timed runs per query on Spark (fewer than DuckDB: each takes seconds)")
    args = parser.parse_args(argv)
    DATA.mkdir(parents=True, exist_ok=True)
    # Timings are only comparable on an otherwise idle machine: say how busy it was.
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} (1 min) at start")
    if not args.no_startup:
        from benchmarks import startup

        startup.run(args.repeat, kernel=True)
    with cql.connect() as store:
        bench_compile(store, args.compile_iterations)
    runs: list[tuple[Path, int, list[Baseline]]] = []
    for target in args.lines:
        path = store_for_lines(target)
        runs.append((path, *bench_queries(path, args.repeat)))
    if args.no_spark:
        return 0
    reason = unavailable()
    if reason:
        print(f"\nSpark: skipped, {reason}")
        return 0
    # After every DuckDB timing, so no JVM shares the machine with them.
    spark = SparkBench(args.spark_repeat)
    for path, lines, baselines in runs:
        if not spark.run(path, lines, baselines):
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
