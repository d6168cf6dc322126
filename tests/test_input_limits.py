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


def test_a_gap_filled_grid_too_big_to_read_is_refused_while_running(store):
    # 116+ first-order dates x 17,150 hours: the guard stops it before the grid exists.
    with pytest.raises(CommerceQLError) as caught:
        store.query("FROM customers SHOW customers GROUP BY customer_first_order_date TIMESERIES hour SINCE -7q")
    error = caught.value
    assert "2,000,000 rows" in error.message and "TOP" in (error.hint or "")
    assert error.line == 1  # points at TIMESERIES


def test_a_large_but_readable_grid_still_runs(store):
    result = store.query("FROM sales SHOW net_sales GROUP BY product_title TIMESERIES month DURING last_year")
    titles = store.sql(
        # every title sold, plus the NULL title of shipping rows
        "SELECT COUNT(DISTINCT p.title) + MAX(CASE WHEN p.title IS NULL THEN 1 ELSE 0 END) "
        "FROM sales s LEFT JOIN products p USING (product_id) "
        "WHERE timezone('America/New_York', s.happened_at) >= TIMESTAMP '2024-01-01' "
        "AND timezone('America/New_York', s.happened_at) < TIMESTAMP '2025-01-01'"
    ).item()
    assert result.total_rows == titles * 12


def test_a_lone_surrogate_is_refused_where_it_stands():
    with pytest.raises(CommerceQLSyntaxError) as caught:
        parse("FROM sales SHOW net_sales WHERE sales_channel = '\ud800'")
    assert caught.value.column == len("FROM sales SHOW net_sales WHERE sales_channel = '") + 1
