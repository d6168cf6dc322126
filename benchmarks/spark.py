"""The Spark part of `make bench`: the benchmark queries on a local Spark against CommerceQL on DuckDB.

Each query runs on `cql.connect(store, engine="spark")` and its frame is checked equal to
DuckDB's (same columns and rows, money to the cent, ratios within 1e-9 relative) before it is
timed. The DuckDB side is the CommerceQL-on-DuckDB median that `benchmarks.run` measured on the
same store, so both sides run the same CommerceQL text. Spark's start-up (JVM, session, table
registration) is timed once on its own: it is a one-off per process, not a cost of any query.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

import commerceql as cql
from commerceql.errors import CommerceQLError
from commerceql.frames import frame_difference

# DuckDB's default memory limit on this kind of machine, so neither engine gets more room:
# Spark's own default (a 1 GB driver heap) spills and collects garbage at 10M lines.
SPARK_MEMORY = "4GB"


@dataclass
class Baseline:
    """One query as CommerceQL on DuckDB answered and timed it (seconds None: it was not timed)."""

    name: str
    text: str
    frame: pl.DataFrame
    seconds: float | None


# -- timing ----------------------------------------------------------------------------------

def median_seconds(function: Callable[[], object], repeat: int) -> float:
    function()  # warm-up: JIT and whole-stage code generation, Parquet footers in the OS cache
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


class SparkBench:
    """One local Spark for the whole run: the first `run()` pays (and reports) the JVM start-up."""

    def __init__(self, repeat: int) -> None:
        self.repeat = repeat
        self.startup: float | None = None

    def open(self, path: Path) -> tuple[cql.Store, float]:
        start = time.perf_counter()
        with warnings.catch_warnings():
            # PySpark warns at start-up that it does not support pandas 3; the engine reads
            # results through Arrow, never pandas, so the warning is only noise in the table.
            warnings.filterwarnings("ignore", category=FutureWarning, module="pyspark")
            store = cql.connect(path, engine="spark", memory_limit=SPARK_MEMORY)
        return store, time.perf_counter() - start

    def run(self, path: Path, lines: int, baselines: Sequence[Baseline]) -> bool:
        """Print the Spark/DuckDB table for one store; False when Spark could not start."""
        try:
            store, seconds = self.open(path)
        except CommerceQLError as error:
            print(f"\nSpark: skipped, a local Spark could not start ({error.message})")
            return False
        if self.startup is None:
            self.startup = seconds
            print(f"\nSpark start-up (JVM, local session, table registration): {seconds:.1f} s "
                  "(not in any query time below)")
        else:
            print(f"\nSpark: store {path.name} opened in {seconds:.2f} s (JVM already running)")
        with store:
            print(f"Spark vs DuckDB (CommerceQL on both) on {lines:,} order lines ({path.name}); "
                  f"median of {self.repeat} runs after a warm-up")
            print(f"  {'query':<36} {'DuckDB':>10} {'Spark':>10} {'Spark/DuckDB':>13}")
            ratios = []
            for baseline in baselines:
                if baseline.seconds is None:
                    print(f"  {baseline.name:<36} no DuckDB time (its result disagreed with the hand-written SQL)")
                    continue
                try:
                    problem = frame_difference(baseline.frame, store.query(baseline.text).df)
                except CommerceQLError as error:
                    print(f"  {baseline.name:<36} FAILED on Spark: {error.message}")
                    continue
                if problem:
                    print(f"  {baseline.name:<36} MISMATCH with DuckDB: {problem}")
                    continue
                seconds = median_seconds(lambda t=baseline.text: store.query(t), self.repeat)
                ratio = seconds / baseline.seconds
                ratios.append(ratio)
                print(f"  {baseline.name:<36} {baseline.seconds * 1000:>8.1f}ms {seconds * 1000:>8.1f}ms {ratio:>12.1f}x")
            if ratios:
                print(f"  geometric mean Spark/DuckDB {statistics.geometric_mean(ratios):.1f}x")
        return True
