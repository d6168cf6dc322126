"""Bounded inputs: huge texts, values, names and condition lists get a clear, positioned error."""

from __future__ import annotations

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLError, CommerceQLSemanticError, CommerceQLSyntaxError
from commerceql.parser import MAX_SCRIPT_CHARS, MAX_VALUE_CHARS, parse
from commerceql.resolver import MAX_CONDITIONS


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def test_a_ten_megabyte_value_is_refused_by_the_lexer_without_reading_it():
    with pytest.raises(CommerceQLSyntaxError) as caught:
        parse("FROM sales SHOW net_sales WHERE billing_region = '" + "x" * 10_000_000 + "'")
    assert f"{MAX_SCRIPT_CHARS:,}" in caught.value.message
    assert len(caught.value.render()) < 1000  # the error shows a window of the line, not all of it


def test_a_value_longer_than_the_limit_is_refused_at_its_opening_quote():
    text = "FROM sales SHOW net_sales WHERE billing_region = '" + "x" * (MAX_VALUE_CHARS + 1) + "'"
    with pytest.raises(CommerceQLSyntaxError) as caught:
        parse(text)
    assert caught.value.column == text.index("'") + 1
    assert "at most" in caught.value.message


def test_a_value_at_the_limit_is_accepted():
    parse("FROM sales SHOW net_sales WHERE billing_region = '" + "x" * MAX_VALUE_CHARS + "'")


def test_an_enormous_name_is_refused_before_any_suggestion_is_computed():
    with pytest.raises(CommerceQLSyntaxError) as caught:
        parse("FROM sales SHOW " + "y" * 100_000)
    assert caught.value.column == len("FROM sales SHOW ") + 1


def test_too_many_conditions_are_refused_with_a_hint(store):
    where = " AND ".join(f"billing_region != 'r{i}'" for i in range(MAX_CONDITIONS + 1))
    with pytest.raises(CommerceQLSemanticError) as caught:
        store.query(f"FROM sales SHOW net_sales WHERE {where}")
    assert "IN (" in (caught.value.hint or "")


def test_reserved_column_names_are_refused(store):
    with pytest.raises(CommerceQLError) as caught:
        store.query('FROM sales SHOW net_sales AS "__total_rows"')
    assert "reserved" in caught.value.message
