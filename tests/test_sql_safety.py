"""User values never reach SQL text: they are bound as parameters; identifiers come from the model."""

from __future__ import annotations

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLError

HOSTILE = [
    "x'); DROP TABLE sales; --",
    "' OR 1=1 --",
    "Wholesale' OR sales_channel != '",
    "a\"b\\c;--/*",
    "line\nbreak",
]


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.mark.parametrize("value", HOSTILE)
def test_string_values_are_parameters(store, value):
    literal = "'" + value.replace("'", "''") + "'"
    query = f"FROM sales SHOW orders WHERE sales_channel = {literal} DURING last_month"
    compiled = store.compile(query)
    assert value not in compiled.sql
    assert value in compiled.parameters.values()
    result = store.query(query)
    assert result.df["orders"][0] == 0
    # The table is still there and unchanged.
    assert store.sql("SELECT COUNT(*) AS n FROM sales")["n"][0] > 0


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_in_every_operator(store, value):
    literal = "'" + value.replace("'", "''") + "'"
    for condition in (
        f"billing_region IN ({literal}, 'Ohio')",
        f"product_title STARTS WITH {literal}",
        f"product_title NOT CONTAINS {literal}",
        f"customer_tags CONTAINS {literal}",
        f"billing_city BETWEEN {literal} AND {literal}",
    ):
        compiled = store.compile(f"FROM sales SHOW orders WHERE {condition} DURING last_month")
        assert value not in compiled.sql


def test_identifiers_must_come_from_the_model(store):
    with pytest.raises(CommerceQLError):
        store.query('FROM sales SHOW orders WHERE "1=1; DROP TABLE sales" = \'x\'')
    with pytest.raises(CommerceQLError):
        store.query("FROM sales SHOW orders GROUP BY sales_channel ORDER BY sales_channel; DROP")
