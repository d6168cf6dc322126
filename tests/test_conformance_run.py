"""Real ShopifyQL queries from Shopify's documentation, run on the sample store.

Each runs on the sample store, or fails with a CommerceQLError whose message is one of the
documented, deliberate refusals below (never a Python exception or a database error).
"""

from __future__ import annotations

import pytest
from test_conformance_parse import DOCS

import commerceql as cql
from commerceql.errors import CommerceQLError, CommerceQLExecutionError
from commerceql.parser import parse

# Why a documented query may be refused: the construct or the field is not in CommerceQL's model.
ACCEPTED_REFUSALS = (
    "is not supported in CommerceQL",  # COMPARE TO benchmarks / targets
    "unknown metric",  # G1 dataset fields the model does not have (e.g. ordered_product_quantity)
    "is not a CommerceQL function",  # G1 count()/avg() wrappers
    "unknown table",  # schemas CommerceQL has no data for (payments)
)


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def test_most_documented_queries_run(store):
    ran = 0
    for _url, text in DOCS:
        query = parse(text)
        if not all(store.model.table(t.name) for t in query.tables):
            continue
        try:
            store.query(query)
            ran += 1
        except CommerceQLError:
            pass
    assert ran >= 35


@pytest.mark.parametrize(("url", "text"), DOCS, ids=[f"doc{i:02d}" for i in range(len(DOCS))])
def test_documented_query_runs_or_is_refused_clearly(store, url, text):
    query = parse(text)
    try:
        result = store.query(query)
    except CommerceQLExecutionError as error:  # a database error would be our bug
        pytest.fail(f"{url}: {error.render()}")
    except CommerceQLError as error:
        assert any(reason in error.message for reason in ACCEPTED_REFUSALS), error.render()
        assert error.span is not None
        return
    assert result.df.width == len(result.columns)
