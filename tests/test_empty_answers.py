"""Empty answers explain themselves; queries stop at the store's time limit."""

from __future__ import annotations

import dataclasses

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLDataError, CommerceQLExecutionError


@pytest.fixture
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def channels(store) -> list[str]:
    return [v for (v,) in store.sql("SELECT DISTINCT sales_channel FROM sales").rows()]


def test_equality_is_exact_and_a_value_in_the_wrong_case_is_named(store):
    assert "Online Store" in channels(store)
    result = store.query("FROM sales SHOW net_sales WHERE sales_channel = 'online store' DURING last_month")
    assert float(result.df["net_sales"][0]) == 0  # = compares text exactly, as documented
    assert len(result.notices) == 1
    assert "'Online Store'" in result.notices[0] and "case" in result.notices[0]


def test_a_misspelt_value_is_answered_with_the_closest_existing_values(store):
    result = store.query(
        "FROM sales SHOW net_sales GROUP BY billing_region WHERE sales_channel IN ('Wholesal') DURING last_month"
    )
    assert result.df.height == 0
    assert any("'Wholesale'" in n for n in result.notices)


def test_no_notice_when_the_answer_is_not_empty(store):
    result = store.query(
        "FROM sales SHOW net_sales WHERE sales_channel IN ('Wholesal', 'Online Store') DURING last_month"
    )
    assert float(result.df["net_sales"][0]) > 0
    assert result.notices == ()


def test_no_value_notice_when_the_value_exists_but_the_period_is_empty(store):
    result = store.query("FROM sales SHOW net_sales WHERE sales_channel = 'Online Store' SINCE 2020-01-01 UNTIL 2020-01-31")
    # The period lies before the data: that is the note, not the (existing) value.
    assert len(result.notices) == 1
    assert result.notices[0].startswith("no data in this period") and "sales_channel" not in result.notices[0]


def test_a_query_that_runs_past_the_time_limit_is_stopped_with_a_clear_error(sample_store_path):
    with cql.connect(sample_store_path, query_timeout=1) as store:
        compiled = store.compile("FROM sales SHOW net_sales")
        # A statement that no machine finishes in a second (a trillion-row sum).
        endless = dataclasses.replace(compiled, sql="SELECT SUM(range) AS s, 1 AS __total_rows FROM range(1000000000000)")
        with pytest.raises(CommerceQLExecutionError) as caught:
            store.execute(endless)
        assert "limit of 1 seconds" in caught.value.message
        assert store.query("FROM sales SHOW orders DURING last_month").df.height == 1  # the store still works


def test_query_timeout_must_be_positive(sample_store_path):
    with pytest.raises(CommerceQLDataError):
        cql.connect(sample_store_path, query_timeout=0)


def test_notices_are_shown_by_every_renderer_and_kept_out_of_data_formats(store, capsys):
    from commerceql.cli import main

    query = "FROM sales SHOW net_sales WHERE sales_channel = 'online store' DURING last_month"
    result = store.query(query)
    assert "note: no row has sales_channel = 'online store'" in result.to_text()
    assert 'class="cql-notice"' in result.to_html() and "Online Store" in result.to_html()
    assert main(["query", query, "--format", "csv", "--data", str(store.path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().splitlines() == ["net_sales", "0.00"]  # the CSV stays pure data
    assert "note: no row has sales_channel" in captured.err
