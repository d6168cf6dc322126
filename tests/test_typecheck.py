"""Type checking of WHERE / HAVING: every typed misuse is a positioned error, never a database error."""

from __future__ import annotations

import itertools
import random

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLError, CommerceQLExecutionError, CommerceQLSemanticError


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


LITERALS = ["'Online Store'", "42", "-3.5", "true", "false", "NULL", "2025-01-31", "2025-01-31T10:00:00"]
OPERATORS = ["=", "!=", "<", ">=", "IN ({v}, {v})", "NOT IN ({v})", "BETWEEN {v} AND {v}", "CONTAINS {v}",
             "STARTS WITH {v}", "IS NULL", "IS TRUE", "IS NOT FALSE", ""]


def conditions_for(field: str) -> list[str]:
    out = []
    for operator, literal in itertools.product(OPERATORS, LITERALS):
        if "{v}" in operator:
            out.append(f"{field} {operator.format(v=literal)}")
        elif operator.startswith("IS") or operator == "":
            out.append(f"{field} {operator}".strip())
        else:
            out.append(f"{field} {operator} {literal}")
            out.append(f"{field} * 2 {operator} {literal}")
    return sorted(set(out))


def test_every_typed_condition_runs_or_is_refused_with_a_position(store):
    rng = random.Random(20261201)
    checked = refused = 0
    for table in ("sales", "orders", "customers", "sessions"):
        fields = store.model.table(table).dimensions
        sample = rng.sample(sorted(fields), min(8, len(fields))) + ["hour_of_day"]
        for field in sample:
            for condition in rng.sample(conditions_for(field), 12):
                query = f"FROM {table} SHOW {next(iter(store.model.table(table).metrics))} WHERE {condition}"
                checked += 1
                try:
                    store.query(query)
                except CommerceQLExecutionError as error:  # a database error: the checker missed it
                    pytest.fail(f"{query}: {error}")
                except CommerceQLError as error:
                    refused += 1
                    assert error.line is not None and error.column is not None, query
    assert checked > 300 and 0 < refused < checked


@pytest.mark.parametrize(
    "query, pointed_at, hint",
    [
        ("FROM sales SHOW net_sales WHERE sales_channel = 9999-12-31", "9999-12-31", "quote"),
        ("FROM sales SHOW net_sales WHERE product_title", "product_title", "compare it"),
        ("FROM sales SHOW net_sales WHERE product_title * 2 > 3", "product_title", "numeric"),
        ("FROM sales SHOW net_sales WHERE discount_code = 5", "5", "quote"),
        ("FROM sales SHOW net_sales GROUP BY sales_channel HAVING net_sales = 'x'", "'x'", "without quotes"),
        ("FROM sales SHOW net_sales WHERE product_variant_price BETWEEN 1 AND 'a'", "'a'", "without quotes"),
    ],
)
def test_type_errors_point_at_the_value_and_say_what_to_write(store, query, pointed_at, hint):
    with pytest.raises(CommerceQLSemanticError) as caught:
        store.query(query)
    error = caught.value
    assert query[error.column - 1 :].startswith(pointed_at)
    assert hint in (error.hint or "")
