"""Fuzz the whole pipeline through the public API and count what breaks.

    python -m benchmarks.fuzz --minutes 5 --seed 1     # as many queries as fit in 5 minutes
    python -m benchmarks.fuzz --count 500 --seed 1     # a fixed number (the same queries every run)
    python -m benchmarks.fuzz --count 500 --json       # machine-readable report on stdout
    python -m benchmarks.fuzz --minutes 5 --shrink     # also shrink every distinct bug to a minimal query
    make fuzz FUZZ_ARGS="--minutes 10 --seed 7"

Queries come from three generators (see benchmarks/fuzzing/): grammar-driven ones built from
the semantic model (every clause, mostly well-typed, sometimes deliberately wrong), mutations of
the repository's valid queries (conformance corpus, docs code blocks, fresh grammar queries) and
plain noise. Each runs through `commerceql.connect(query_timeout=...)` / `store.query(text)`,
and for VISUALIZE queries `result.chart` is built and serialised. Outcomes:

* ok, or refused: a CommerceQLError (the user's mistake, explained; most carry a line/column).
  Database resource limits (memory) are refusals too: the query was too big, not wrong.
* bugs, which make the exit code 1:
  - exception: any exception that is not a CommerceQLError (also "internal parser error",
    which is the parser wrapping one, and a failure to render an error);
  - database_error: "the database could not run this query" - the compiler produced SQL that
    DuckDB refused;
  - hang: the store's time limit stopped the query ("ran longer than"), or the whole call took
    longer than the per-query budget outside the database;
  - inconsistent: a result whose DataFrame disagrees with its own column metadata or limit.

Every query is drawn from `random.Random(f"{seed}:{index}")`, so a seed and a count replay the
same queries, and every reported query is printed in full (`--json` keeps exact text). Peak
memory is the process's ru_maxrss and DuckDB's own accounting (`duckdb_memory()`, sampled from
a second cursor while queries run).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import random
import re
import resource
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import commerceql as cql
from benchmarks.fuzzing import GrammarGenerator, MutationGenerator, load_corpus, noise_query
from benchmarks.fuzzing.mutation import tokenize
from commerceql.errors import CommerceQLError, CommerceQLExecutionError

BUG_CATEGORIES = ("exception", "database_error", "hang", "inconsistent")
DEFAULT_BUDGET = 20.0
# Share of queries each generator produces (grammar-driven queries reach the database most).
GENERATOR_WEIGHTS = {"grammar": 0.55, "mutation": 0.35, "noise": 0.10}
_DATABASE_ERROR = "the database could not run this query"
_TIME_LIMIT = "ran longer than"
_MEMORY_LIMIT = "needs more memory"


@dataclass
class Outcome:
    """What one query did: `kind` is ok, refused, resource_limit or one of BUG_CATEGORIES."""

    kind: str
    error_type: str = ""
    message: str = ""
    positioned: bool = False
    seconds: float = 0.0
    detail: str = ""  # the traceback's last frames, for exceptions

    @property
    def signature(self) -> str:
        """Type and the stable head of the message: findings with one signature are one bug."""
        head = re.sub(r"\d+", "N", self.message.splitlines()[0] if self.message else "")[:120]
        return f"{self.error_type}: {head}"


@dataclass
class Finding:
    category: str
    generator: str
    index: int
    query: str
    error_type: str
    message: str
    detail: str = ""
    minimal: str | None = None  # a shrunk query with the same signature, when --shrink ran


@dataclass
class FuzzReport:
    seed: int
    budget: float
    queries: int = 0
    ok: int = 0
    refused: int = 0
    refused_without_position: int = 0
    resource_limits: int = 0
    charts: int = 0
    seconds: float = 0.0
    by_generator: dict[str, Counter[str]] = field(default_factory=dict)
    findings: dict[str, list[Finding]] = field(default_factory=lambda: {c: [] for c in BUG_CATEGORIES})
    unpositioned_signatures: Counter[str] = field(default_factory=Counter)
    slowest: list[tuple[float, str]] = field(default_factory=list)
    rss_start_mb: float = 0.0
    peak_rss_mb: float = 0.0
    duckdb_peak_mb: float | None = None
    duckdb_memory_note: str = ""

    @property
    def bugs(self) -> int:
        return sum(len(found) for found in self.findings.values())

    @property
    def queries_per_second(self) -> float:
        return self.queries / self.seconds if self.seconds else 0.0

    def to_json(self, examples: int = 5) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "budget_seconds": self.budget,
            "queries": self.queries,
            "ok": self.ok,
            "refused": self.refused,
            "refused_without_position": self.refused_without_position,
            "resource_limits": self.resource_limits,
            "charts": self.charts,
            "seconds": round(self.seconds, 2),
            "queries_per_second": round(self.queries_per_second, 2),
            "by_generator": {name: dict(counts) for name, counts in self.by_generator.items()},
            "bugs": {
                category: {
                    "count": len(found),
                    "signatures": dict(Counter(_signature(f) for f in found).most_common()),
                    "examples": [asdict(f) for f in _distinct(found)[:examples]],
                }
                for category, found in self.findings.items()
            },
            "unpositioned_refusals": dict(self.unpositioned_signatures.most_common(20)),
            "slowest": [{"seconds": round(s, 3), "query": q} for s, q in self.slowest],
            "rss_start_mb": round(self.rss_start_mb, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "duckdb_peak_mb": None if self.duckdb_peak_mb is None else round(self.duckdb_peak_mb, 1),
            "duckdb_memory_note": self.duckdb_memory_note,
        }


# ---------------------------------------------------------------------------------------------
# One query
# ---------------------------------------------------------------------------------------------


def run_query(store: cql.Store, text: str, *, budget: float = DEFAULT_BUDGET) -> Outcome:
    """Run `text` through the public API (and its chart, if any) and say what happened."""
    started = time.perf_counter()
    outcome = _run_query(store, text)
    outcome.seconds = time.perf_counter() - started
    if outcome.kind not in BUG_CATEGORIES and outcome.seconds > budget:
        # The database's time limit cannot stop Python code (parser, resolver, chart building).
        outcome = Outcome(
            "hang", "WallClock", f"the call took {outcome.seconds:.1f} s (budget {budget:g} s); it ended as {outcome.kind}",
            seconds=outcome.seconds,
        )
    return outcome


def _run_query(store: cql.Store, text: str) -> Outcome:
    try:
        result = store.query(text)
        problem = _inconsistency(result)
        if problem:
            return Outcome("inconsistent", "Result", problem)
        chart = result.chart
        if chart is not None:
            chart.to_dict()  # validates the Vega-Lite spec: a broken chart raises here
            return Outcome("ok", detail="chart")
        return Outcome("ok")
    except CommerceQLExecutionError as error:
        message = error.message
        if message.startswith(_DATABASE_ERROR):
            return Outcome("database_error", type(error).__name__, message, error.line is not None)
        if _TIME_LIMIT in message:
            return Outcome("hang", type(error).__name__, message, error.line is not None)
        if _MEMORY_LIMIT in message:
            return Outcome("resource_limit", type(error).__name__, message, error.line is not None)
        return _refusal(error)
    except CommerceQLError as error:
        if message_is_internal(error.message):
            original = getattr(error, "original", None)
            return Outcome("exception", type(error).__name__, error.message, detail=_trace(original) if original else "")
        return _refusal(error)
    except Exception as error:  # any other exception is exactly what we count
        return Outcome("exception", type(error).__name__, str(error)[:2000], detail=_trace(error))


def message_is_internal(message: str) -> bool:
    """The parser wraps unexpected exceptions as a CommerceQLError; they are still bugs."""
    return message.startswith("internal ")


def _refusal(error: CommerceQLError) -> Outcome:
    try:
        error.render()
    except Exception as bug:  # rendering an error must never fail
        return Outcome("exception", type(bug).__name__, f"rendering {type(error).__name__} failed: {bug}", detail=_trace(bug))
    return Outcome("refused", type(error).__name__, error.message, positioned=error.line is not None)


def _inconsistency(result: Any) -> str:
    names = [c.name for c in result.columns]
    if result.df.columns != names:
        return f"DataFrame columns {result.df.columns} differ from the column metadata {names}"
    if result.df.height > result.plan.limit:
        return f"{result.df.height} rows returned with LIMIT {result.plan.limit}"
    return ""


def _trace(error: BaseException) -> str:
    frames = traceback.format_exception(type(error), error, error.__traceback__)
    return "".join(frames[-4:])[-3000:]


def _signature(finding: Finding) -> str:
    return Outcome(finding.category, finding.error_type, finding.message).signature


def _distinct(findings: Sequence[Finding]) -> list[Finding]:
    """One finding per signature, in the order they were found (shortest query of each first)."""
    best: dict[str, Finding] = {}
    for finding in findings:
        key = _signature(finding)
        if key not in best or len(finding.query) < len(best[key].query):
            best[key] = finding
    order = list(dict.fromkeys(_signature(f) for f in findings))
    return [best[key] for key in order]


# ---------------------------------------------------------------------------------------------
# Shrinking: drop tokens while the query keeps failing the same way
# ---------------------------------------------------------------------------------------------


def shrink(
    store: cql.Store, text: str, *, budget: float = DEFAULT_BUDGET, max_attempts: int = 400, max_seconds: float = 60.0
) -> str:
    """A shorter query with the same bug signature (greedy delta debugging over tokens).

    Stops after `max_attempts` queries or `max_seconds`, whichever comes first: a hang costs a
    whole budget per attempt, so shrinking one could otherwise take hours.
    """
    target = run_query(store, text, budget=budget)
    if target.kind not in BUG_CATEGORIES:
        return text
    tokens = tokenize(text)
    attempts = 0
    stop_at = time.monotonic() + max_seconds
    chunk = max(1, len(tokens) // 2)
    while chunk >= 1 and attempts < max_attempts and time.monotonic() < stop_at:
        i = 0
        changed = False
        while i < len(tokens) and attempts < max_attempts and time.monotonic() < stop_at:
            candidate = tokens[:i] + tokens[i + chunk :]
            attempts += 1
            outcome = run_query(store, "".join(candidate), budget=budget)
            if outcome.kind == target.kind and outcome.signature == target.signature:
                tokens = candidate
                changed = True
            else:
                i += chunk
        if not changed:
            chunk //= 2
    return re.sub(r"[ \t]+", " ", "".join(tokens)).strip()


# ---------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc; falls back to the peak)."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KB on Linux


class DuckDBMemorySampler:
    """Samples `duckdb_memory()` from a second cursor of the store's database while queries run.

    The store's session is locked down, but `duckdb_memory()` is a plain table function and a
    cursor is a separate connection to the same database, so sampling neither takes the store's
    lock nor disturbs the query on the main connection. If either is refused, the peak is
    unavailable and `note` says why.
    """

    _SQL = "SELECT coalesce(sum(memory_usage_bytes), 0)::BIGINT FROM duckdb_memory()"

    def __init__(self, store: cql.Store, interval: float = 0.05) -> None:
        self.peak_bytes: int | None = None
        self.note = ""
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._cursor = store.connection.cursor()
            self._sample()
        except Exception as error:  # any refusal means "not available here"
            self.note = f"duckdb_memory() unavailable: {type(error).__name__}: {str(error).splitlines()[0]}"
            self._cursor = None

    def _sample(self) -> None:
        value = int(self._cursor.sql(self._SQL).fetchall()[0][0])
        self.peak_bytes = max(self.peak_bytes or 0, value)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._sample()
            except Exception as error:  # stop sampling, keep fuzzing
                self.note = f"sampling stopped: {type(error).__name__}: {str(error).splitlines()[0]}"
                return

    def __enter__(self) -> DuckDBMemorySampler:
        if self._cursor is not None:
            self._thread = threading.Thread(target=self._loop, name="duckdb-memory-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._cursor is not None:
            try:
                self._cursor.close()
            except Exception:  # closing a sampler cursor cannot matter
                pass


class Watchdog:
    """Reports a query that runs far beyond the budget (a real hang no time limit can stop).

    The store's time limit only interrupts DuckDB; a loop in Python would hang the harness, so
    after `after` seconds this prints the query and every thread's stack to stderr (faulthandler
    works even when the stuck code holds the GIL). The run itself is left alone.
    """

    def __init__(self, after: float) -> None:
        self.after = after
        self._timer: threading.Timer | None = None

    def start(self, text: str) -> None:
        self._timer = threading.Timer(self.after, self._report, args=(text,))
        self._timer.daemon = True
        self._timer.start()
        faulthandler.dump_traceback_later(self.after + 1, repeat=False, file=sys.stderr)

    def _report(self, text: str) -> None:
        print(f"watchdog: a query has run for more than {self.after:g} s:\n{shown(text)}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        faulthandler.cancel_dump_traceback_later()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


# ---------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------


class QuerySource:
    """Query number `index` of `seed`, from one of the generators, the same on every run."""

    def __init__(self, store: cql.Store, *, weights: dict[str, float] | None = None) -> None:
        self.grammar = GrammarGenerator(store.model)
        self.mutation = MutationGenerator(load_corpus())
        self.weights = weights or GENERATOR_WEIGHTS

    def draw(self, seed: int, index: int) -> tuple[str, str]:
        rng = random.Random(f"{seed}:{index}")
        names = list(self.weights)
        generator = rng.choices(names, weights=[self.weights[n] for n in names])[0]
        if generator == "grammar":
            return generator, self.grammar.query(rng)
        if generator == "mutation":
            seeds = [self.grammar.query(rng)] if rng.random() < 0.4 else []
            return generator, self.mutation.query(rng, seeds)
        return generator, noise_query(rng)


def run_fuzz(
    *,
    seed: int = 1,
    count: int | None = None,
    minutes: float | None = None,
    budget: float = DEFAULT_BUDGET,
    store: cql.Store | None = None,
    weights: dict[str, float] | None = None,
    shrink_findings: bool = False,
    progress: Callable[[FuzzReport], None] | None = None,
    on_finding: Callable[[Finding], None] | None = None,
    watchdog: bool = False,
) -> FuzzReport:
    """Run `count` queries (or as many as fit in `minutes`) and return the report.

    `store` defaults to the sample store opened with `query_timeout=budget`; a given store keeps
    its own time limit. Findings of every bug category are kept in full for the caller to filter.
    """
    if count is None and minutes is None:
        raise ValueError("give a count of queries or a number of minutes")
    owned = store is None
    if store is None:
        store = cql.connect(query_timeout=budget)
    report = FuzzReport(seed=seed, budget=budget, rss_start_mb=rss_mb())
    source = QuerySource(store, weights=weights)
    deadline = time.monotonic() + minutes * 60 if minutes is not None else None
    guard = Watchdog(after=budget * 3) if watchdog else None
    started = time.perf_counter()
    last_progress = started
    index = 0
    try:
        with DuckDBMemorySampler(store) as sampler:
            while (count is None or index < count) and (deadline is None or time.monotonic() < deadline):
                generator, text = source.draw(seed, index)
                if guard is not None:
                    guard.start(text)
                outcome = run_query(store, text, budget=budget)
                if guard is not None:
                    guard.stop()
                finding = _record(report, generator, index, text, outcome)
                if finding is not None and on_finding is not None:
                    on_finding(finding)
                index += 1
                if progress is not None and time.perf_counter() - last_progress > 30:
                    last_progress = time.perf_counter()
                    report.seconds = last_progress - started
                    progress(report)
            report.seconds = time.perf_counter() - started
        report.duckdb_peak_mb = None if sampler.peak_bytes is None else sampler.peak_bytes / 1e6
        report.duckdb_memory_note = sampler.note
        # The run's peak, before shrinking re-runs the heaviest queries (often without their date range).
        report.peak_rss_mb = peak_rss_mb()
        if shrink_findings:
            for found in report.findings.values():
                for finding in _distinct(found):
                    finding.minimal = shrink(store, finding.query, budget=budget)
    finally:
        if owned:
            store.close()
    return report


def _record(report: FuzzReport, generator: str, index: int, text: str, outcome: Outcome) -> Finding | None:
    report.queries += 1
    report.by_generator.setdefault(generator, Counter())[outcome.kind] += 1
    if outcome.kind == "ok":
        report.ok += 1
        report.charts += outcome.detail == "chart"
    elif outcome.kind == "refused":
        report.refused += 1
        if not outcome.positioned:
            report.refused_without_position += 1
            report.unpositioned_signatures[outcome.signature] += 1
    elif outcome.kind == "resource_limit":
        report.resource_limits += 1
    report.slowest = sorted([*report.slowest, (outcome.seconds, text)], key=lambda pair: -pair[0])[:5]
    if outcome.kind in BUG_CATEGORIES:
        finding = Finding(outcome.kind, generator, index, text, outcome.error_type, outcome.message, outcome.detail)
        report.findings[outcome.kind].append(finding)
        return finding
    return None


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def shown(text: str, limit: int = 1500) -> str:
    """The query as it can be pasted back: raw when printable, else a Python literal."""
    printable = all(c.isprintable() or c in "\n\t" for c in text)
    body = text if printable else repr(text)
    if len(body) > limit:
        body = body[:limit] + f"... ({len(text):,} characters; --json has the full text)"
    return body


def summary(report: FuzzReport, examples: int = 3) -> str:
    lines = [
        f"fuzz: seed {report.seed}, {report.queries:,} queries in {report.seconds:.1f} s "
        f"({report.queries_per_second:.1f} queries/s), per-query budget {report.budget:g} s",
        f"  ok                         {report.ok:>7,}   ({report.charts:,} with a chart)",
        f"  refused (CommerceQLError)  {report.refused:>7,}   ({report.refused - report.refused_without_position:,} "
        f"with line/column, {report.refused_without_position:,} without)",
        f"  resource limits            {report.resource_limits:>7,}   (memory limit: not a bug)",
    ]
    for generator, counts in sorted(report.by_generator.items()):
        lines.append(f"  {generator:<10} " + ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())))
    lines.append(f"bugs: {report.bugs:,}")
    for category, found in report.findings.items():
        signatures = Counter(_signature(f) for f in found)
        lines.append(f"  {category:<15} {len(found):>6,}   ({len(signatures)} distinct)")
        for finding in _distinct(found)[:examples]:
            lines.append(f"    - [{finding.generator} #{finding.index}, {signatures[_signature(finding)]}x] "
                         f"{finding.error_type}: {finding.message.splitlines()[0][:300]}")
            lines.append("      query: " + shown(finding.query).replace("\n", "\n             "))
            if finding.minimal is not None:
                lines.append("      minimal: " + shown(finding.minimal).replace("\n", "\n               "))
            if finding.detail:
                lines.append("      " + finding.detail.strip().splitlines()[-1][:300])
    if report.unpositioned_signatures:
        lines.append("refusals without a line/column (not counted as bugs), most common:")
        for signature, n in report.unpositioned_signatures.most_common(5):
            lines.append(f"  {n:>6,}  {signature}")
    lines.append("slowest: " + "; ".join(f"{s:.2f} s" for s, _ in report.slowest))
    duckdb = f"{report.duckdb_peak_mb:.1f} MB" if report.duckdb_peak_mb is not None else "n/a"
    lines.append(f"memory: peak RSS {report.peak_rss_mb:.0f} MB (start {report.rss_start_mb:.0f} MB), "
                 f"DuckDB peak {duckdb}" + (f" ({report.duckdb_memory_note})" if report.duckdb_memory_note else ""))
    lines.append(f"replay: python -m benchmarks.fuzz --seed {report.seed} --count {report.queries}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__.split("\n\n")[0])
    amount = parser.add_mutually_exclusive_group()
    amount.add_argument("--minutes", type=float, help="run for this long (default: 5 when --count is not given)")
    amount.add_argument("--count", type=int, help="run exactly this many queries (deterministic)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: a random one, printed)")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET,
                        help=f"per-query time limit in seconds, passed as query_timeout (default {DEFAULT_BUDGET:g})")
    parser.add_argument("--store", type=Path, default=None, help="a store folder or .duckdb file (default: the sample store)")
    parser.add_argument("--generators", default=",".join(GENERATOR_WEIGHTS),
                        help="comma-separated subset of: " + ", ".join(GENERATOR_WEIGHTS))
    parser.add_argument("--examples", type=int, default=3, help="examples shown per bug category")
    parser.add_argument("--shrink", action="store_true", help="shrink each distinct finding to a minimal query")
    parser.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    parser.add_argument("--report", type=Path, default=None, help="also write the JSON report (every finding) to this file")
    args = parser.parse_args(argv)
    # Queries and messages may hold lone surrogates or control characters: never crash printing them.
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 2**31)
    minutes = args.minutes if args.minutes is not None or args.count is not None else 5.0
    chosen = [g.strip() for g in args.generators.split(",") if g.strip()]
    unknown = [g for g in chosen if g not in GENERATOR_WEIGHTS]
    if unknown or not chosen:
        parser.error(f"unknown generators {unknown}; choose from {', '.join(GENERATOR_WEIGHTS)}")
    weights = {g: GENERATOR_WEIGHTS[g] for g in chosen}
    print(f"fuzz: seed {seed} ({'count ' + str(args.count) if args.count is not None else f'{minutes:g} minutes'})",
          file=sys.stderr, flush=True)
    store = cql.connect(args.store, query_timeout=args.budget) if args.store else None

    def progress(report: FuzzReport) -> None:
        print(f"  {report.queries:,} queries, {report.bugs} bugs, {report.queries_per_second:.1f}/s, "
              f"RSS {rss_mb():.0f} MB", file=sys.stderr, flush=True)

    seen: set[str] = set()

    def found(finding: Finding) -> None:
        # Say so at once (the summary comes at the end): the first of each kind, with its query.
        key = _signature(finding)
        if key not in seen:
            seen.add(key)
            print(f"  new {finding.category} at #{finding.index}: {finding.error_type}: "
                  f"{finding.message.splitlines()[0][:200]}\n    {shown(finding.query, 400)}", file=sys.stderr, flush=True)

    try:
        report = run_fuzz(seed=seed, count=args.count, minutes=None if args.count is not None else minutes,
                          budget=args.budget, store=store, weights=weights, shrink_findings=args.shrink,
                          progress=progress, on_finding=found, watchdog=True)
    finally:
        if store is not None:
            store.close()
    if args.report is not None:
        args.report.write_text(json.dumps(report.to_json(examples=10**6), indent=2, ensure_ascii=True), encoding="utf-8")
    if args.json:
        print(json.dumps(report.to_json(examples=args.examples), indent=2, ensure_ascii=True))
    else:
        print(summary(report, examples=args.examples))
    return 1 if report.bugs else 0


if __name__ == "__main__":
    sys.exit(main())
