"""A short, seeded slice of the fuzz harness (`python -m benchmarks.fuzz`) in CI.

The same queries run on every run (seed and count are fixed, every query is drawn from
`random.Random(f"{seed}:{index}")`), through the same harness function developers run for
minutes. Each bug category must stay empty: an exception that is not a CommerceQLError, SQL the
database refused, a query stopped by the time limit, a result inconsistent with its metadata.
Bugs the fuzzer found that are not fixed yet are listed in KNOWN_BUGS: their findings are
left out of the slice's counts, and each one's minimal query is an xfail(strict=True) case, so
the list must be updated the day the bug is fixed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLExecutionError, CommerceQLSemanticError

# `benchmarks` is a folder of the repository, not an installed package: `python -m pytest` finds
# it from the working directory, the `pytest` script does not.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.fuzz import BUG_CATEGORIES, Finding, FuzzReport, run_fuzz, run_query  # noqa: E402

SEED = 20251215
COUNT = 600
# Generous on purpose: the slice runs on busy CI machines, and a "hang" here must mean a query
# that never ends (the store's query_timeout stops it), not a slow machine.
BUDGET = 120.0


@dataclass(frozen=True)
class KnownBug:
    """A bug the fuzzer found and nobody has fixed yet."""

    name: str
    category: str
    # A finding is this bug when its error type and message contain these texts.
    error_type: str
    message_contains: str
    # The smallest query that shows it; it must run without a bug once the bug is fixed.
    repro: str

    def matches(self, finding: Finding) -> bool:
        return (
            finding.category == self.category
            and finding.error_type == self.error_type
            and self.message_contains in finding.message
        )


KNOWN_BUGS: tuple[KnownBug, ...] = ()

# Found by the fuzzer and fixed: each stays a regression test.
FIXED_BUGS: tuple[KnownBug, ...] = (
    # A lone UTF-16 surrogate reached DuckDB ("cannot encode str as UTF-8"); the parser now
    # refuses it with its line and column. (mutation generator, seed 1, query #5267)
    KnownBug(
        name="lone-surrogate-in-quoted-alias",
        category="database_error",
        error_type="CommerceQLExecutionError",
        message_contains="cannot encode str as UTF-8",
        repro='FROM sales SHOW net_sales AS "\ud800"',
    ),
    KnownBug(
        name="lone-surrogate-in-where-value",
        category="database_error",
        error_type="CommerceQLExecutionError",
        message_contains="cannot encode str as UTF-8",
        repro="FROM sales SHOW net_sales WHERE sales_channel = '\ud800'",
    ),
)


@pytest.fixture(scope="module")
def store(sample_store_path: Path):
    with cql.connect(sample_store_path, query_timeout=BUDGET) as opened:
        yield opened


@pytest.fixture(scope="module")
def report(store: cql.Store) -> FuzzReport:
    return run_fuzz(seed=SEED, count=COUNT, budget=BUDGET, store=store)


def _describe(findings: list[Finding]) -> str:
    return "\n\n".join(f"{f.error_type}: {f.message}\n  query: {f.query!r}\n{f.detail}" for f in findings[:5])


@pytest.mark.parametrize("category", BUG_CATEGORIES)
def test_the_slice_finds_no_bug(report: FuzzReport, category: str) -> None:
    unknown = [f for f in report.findings[category] if not any(bug.matches(f) for bug in KNOWN_BUGS)]
    assert not unknown, f"{len(unknown)} {category} finding(s), replay with " \
        f"`python -m benchmarks.fuzz --seed {SEED} --count {COUNT}`:\n{_describe(unknown)}"


def test_the_slice_exercises_the_whole_pipeline(report: FuzzReport) -> None:
    # Zero bugs means little if the generators stopped producing answerable queries: check the
    # slice still reaches the database, draws charts, and gets refusals from every generator.
    assert report.queries == COUNT
    assert report.ok >= COUNT // 5, f"only {report.ok} of {COUNT} queries ran"
    assert report.charts > 0
    assert report.refused > 0
    assert set(report.by_generator) == {"grammar", "mutation", "noise"}
    assert report.by_generator["grammar"]["ok"] > report.by_generator["grammar"]["refused"] // 2
    assert report.peak_rss_mb > 0


def test_the_same_seed_draws_the_same_queries(store: cql.Store) -> None:
    from benchmarks.fuzz import QuerySource

    first, second = QuerySource(store), QuerySource(store)
    assert [first.draw(SEED, i) for i in range(50)] == [second.draw(SEED, i) for i in range(50)]
    assert first.draw(SEED, 0) != first.draw(SEED + 1, 0)


@pytest.mark.parametrize(
    "text, kind",
    [
        ("FROM sales SHOW net_sales DURING last_month", "ok"),
        ("FROM sales SHOW net_sale", "refused"),
        ("FROM sales SHOW net_sales GROUP BY month DURING last_year VISUALIZE net_sales TYPE line", "ok"),
    ],
)
def test_the_harness_classifies_outcomes(store: cql.Store, text: str, kind: str) -> None:
    outcome = run_query(store, text, budget=BUDGET)
    assert outcome.kind == kind, outcome
    if kind == "refused":
        assert outcome.positioned


@pytest.mark.parametrize("bug", FIXED_BUGS, ids=[bug.name for bug in FIXED_BUGS])
def test_a_fixed_fuzz_bug_stays_fixed(store: cql.Store, bug: KnownBug) -> None:
    outcome = run_query(store, bug.repro, budget=BUDGET)
    assert outcome.kind == "refused" and outcome.positioned, f"{outcome.error_type}: {outcome.message}"


class _FailingStore:
    """Stands in for a store whose query raises `error`: checks the harness's categories."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def query(self, text: str) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error, kind",
    [
        (KeyError("x"), "exception"),
        (RecursionError("deep"), "exception"),
        (cql.CommerceQLError("internal parser error (ValueError): the query could not be read"), "exception"),
        (CommerceQLExecutionError("the database could not run this query: Binder Error: x"), "database_error"),
        (CommerceQLExecutionError("the query ran longer than this store's limit of 20 seconds and was stopped"), "hang"),
        (CommerceQLExecutionError("the query needs more memory than this store's limit allows and was stopped"),
         "resource_limit"),
        (CommerceQLSemanticError("COMPARE TO needs a reporting period"), "refused"),
    ],
)
def test_the_harness_sorts_failures_into_categories(error: Exception, kind: str) -> None:
    outcome = run_query(_FailingStore(error), "FROM sales SHOW net_sales")  # type: ignore[arg-type]
    assert outcome.kind == kind
    assert outcome.error_type == type(error).__name__
