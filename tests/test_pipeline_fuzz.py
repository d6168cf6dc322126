"""Random well-formed queries over every table: each runs, or is refused with a CommerceQLError.

A database error (CommerceQLExecutionError) or any other exception means the compiler produced
SQL DuckDB cannot run: a bug. Results are also checked for basic consistency with their plan.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commerceql as cql
from commerceql.errors import CommerceQLError, CommerceQLExecutionError
from commerceql.model import builtin_model

MODEL = builtin_model()
TABLES = sorted(MODEL.tables)
RANGES = ["last_month", "last_quarter", "this_year", "last_week", "yesterday", "bfcm2024"]
GRAINS = ["day", "week", "month", "quarter"]
CYCLICAL = ["hour_of_day", "day_of_week"]
COMPARISONS = ["previous_period", "previous_year", "previous_year_match_day_of_week"]


@st.composite
def conditions(draw: st.DrawFn, table) -> str:
    """A condition on one or two of the table's dimensions, valid whatever values the data holds."""
    parts = []
    for _ in range(draw(st.integers(min_value=1, max_value=2))):
        name, dimension = draw(st.sampled_from(sorted(table.dimensions.items())))
        if dimension.type == "string":
            parts.append(draw(st.sampled_from([f"{name} != 'zz'", f"{name} CONTAINS 'a'", f"{name} IN ('a', 'b')", f"{name} IS NOT NULL"])))
        elif dimension.type == "boolean":
            parts.append(draw(st.sampled_from([f"{name} IS TRUE", f"NOT {name}", f"{name} = false"])))
        elif dimension.type == "array":
            parts.append(f"{name} CONTAINS 'vip'")
        elif dimension.type in ("integer", "number", "money"):
            parts.append(draw(st.sampled_from([f"{name} > 0", f"{name} BETWEEN 1 AND 100", f"{name} IS NULL"])))
        else:
            parts.append(f"{name} IS NOT NULL")
    return draw(st.sampled_from([" AND ", " OR "])).join(parts)


@st.composite
def queries(draw: st.DrawFn) -> str:
    table = MODEL.tables[draw(st.sampled_from(TABLES))]
    metrics = [name for name, m in table.metrics.items() if not m.alias_of]
    dimensions = [name for name, d in table.dimensions.items() if d.type not in ("array",) and not name.endswith("_id")]
    shown = draw(st.lists(st.sampled_from(metrics), min_size=1, max_size=3, unique=True))
    group: list[str] = []
    if dimensions and draw(st.booleans()):
        dimension = draw(st.sampled_from(dimensions))
        top = draw(st.sampled_from(["", "TOP 3 ", "ONLY TOP 2 "]))
        group.append(f"{top}{dimension}")
    time = draw(st.sampled_from(["", "grain", "timeseries", "cyclical"])) if table.time_column else ""
    clauses = [f"FROM {table.name}", "SHOW " + ", ".join(shown)]
    if draw(st.booleans()):
        clauses.append("WHERE " + draw(conditions(table)))
    if time == "grain":
        group.insert(0, draw(st.sampled_from(GRAINS)))
    elif time == "cyclical":
        group.append(draw(st.sampled_from(CYCLICAL)))
    if group:
        clauses.append("GROUP BY " + ", ".join(group))
    if time == "timeseries":
        clauses.append("TIMESERIES " + draw(st.sampled_from(GRAINS)))
    bounded = bool(table.time_column) and draw(st.booleans())
    if bounded:
        clauses.append("DURING " + draw(st.sampled_from(RANGES)))
        if draw(st.booleans()):
            clauses.append("COMPARE TO " + draw(st.sampled_from(COMPARISONS)))
    modifiers = draw(st.lists(st.sampled_from(["TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES"]), unique=True, max_size=2))
    if modifiers:
        clauses.append("WITH " + ", ".join(modifiers))
    if draw(st.booleans()):
        clauses.append(f"ORDER BY {shown[0]} DESC")
    clauses.append(f"LIMIT {draw(st.integers(min_value=1, max_value=50))}")
    if draw(st.booleans()):
        clauses.append(f"VISUALIZE {shown[0]}")
    return "\n  ".join(clauses)


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(text=queries())
def test_random_queries_run_or_are_refused_clearly(store, text):
    try:
        result = store.query(text)
    except CommerceQLExecutionError as error:
        pytest.fail(f"the compiled SQL failed:\n{text}\n{error.render()}\n{store.explain(text)}")
    except CommerceQLError as error:
        rendered = error.render()
        assert "Traceback" not in rendered
        return
    assert result.df.columns == [c.name for c in result.columns]
    assert result.df.height <= result.plan.limit
    if result.chart is not None:
        assert result.chart.to_dict()
