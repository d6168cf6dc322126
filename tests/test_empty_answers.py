"""Empty answers explain themselves; queries stop at the store's time limit."""

from __future__ import annotations

import dataclasses
import os

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLDataError, CommerceQLError, CommerceQLExecutionError
from commerceql.value_hints import MAX_LISTED_VALUES


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


def _case_probe(store, table_name: str) -> tuple[str, str, str]:
    """(metric, text dimension, an existing value with letters) of a table, found by grouping it."""
    table = store.model.table(table_name)
    metric = next(name for name, m in table.metrics.items() if not m.alias_of)
    for dimension, spec in table.dimensions.items():
        if spec.type != "string":
            continue
        try:
            grouped = store.query(f"FROM {table_name} SHOW {metric} GROUP BY {dimension} DURING last_year "
                                  f"ORDER BY {metric} DESC LIMIT 3")
        except CommerceQLError:
            continue  # a dimension this table cannot group by over a period: try the next
        values = [v for v in grouped.df[dimension].to_list() if isinstance(v, str) and v.swapcase() != v]
        if values:
            return metric, dimension, values[0]
    raise AssertionError(f"no text dimension of `{table_name}` has a value to probe")


def _tables_with_text_dimensions(store) -> list[str]:
    return [name for name, t in store.model.tables.items() if any(d.type == "string" for d in t.dimensions.values())]


def test_a_value_in_the_wrong_case_is_named_on_every_table(store):
    tables = _tables_with_text_dimensions(store)
    assert {"sales", "orders", "sessions", "checkouts", "customers", "companies", "products", "draft_orders",
            "customer_churn", "customer_cohorts_monthly"} <= set(tables)
    for name in tables:
        metric, dimension, value = _case_probe(store, name)
        wrong = value.swapcase()
        result = store.query(f"FROM {name} SHOW {metric} WHERE {dimension} = '{wrong}' DURING last_year")
        assert any(n.startswith(f"no row has {dimension} = '{wrong}'; values that exist: ") and f"'{value}'" in n
                   for n in result.notices), (name, dimension, result.notices)


def test_a_dimension_with_too_many_values_to_list_is_searched_for_the_same_text(store, duckdb_connection):
    (names,) = duckdb_connection.execute("SELECT count(DISTINCT name) FROM customers").fetchone()
    assert names > MAX_LISTED_VALUES  # so the listing is not what answers
    (name,) = duckdb_connection.execute(
        "SELECT name FROM customers WHERE name IS NOT NULL AND name NOT LIKE '%''%' AND lower(name) <> name "
        "ORDER BY customer_id LIMIT 1").fetchone()
    result = store.query(f"FROM customers SHOW customers WHERE customer_name = '{name.lower()}'")
    assert result.notices == (f"no row has customer_name = '{name.lower()}'; values that exist: '{name}' "
                              "(= matches text exactly, case included; CONTAINS ignores case)",)
    result = store.query("FROM customers SHOW customers WHERE customer_name = 'Zzyzx Qwerty'")
    assert result.notices == ("no row has customer_name = 'Zzyzx Qwerty' (customer_name has too many values to "
                              "suggest the closest; CONTAINS finds part of one)",)
    assert store.query(f"FROM customers SHOW customers WHERE customer_name = '{name}'").notices == ()


@pytest.mark.spark
@pytest.mark.slow
def test_value_notes_are_the_same_on_spark(store, sample_store_path):
    from commerceql.engines import spark_unavailable

    reason = spark_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Spark tests must run in CI: {reason}")
        pytest.skip(reason)
    queries = []
    for name in ("orders", "sessions", "customers", "draft_orders", "customer_cohorts_monthly", "customer_churn"):
        metric, dimension, value = _case_probe(store, name)
        queries.append(f"FROM {name} SHOW {metric} WHERE {dimension} = '{value.swapcase()}' DURING last_year")
    queries.append("FROM customers SHOW customers WHERE customer_name = 'Zzyzx Qwerty'")
    queries.append("FROM sales SHOW net_sales WHERE customer_rfm_group = 'champions' DURING last_month")
    with cql.connect(sample_store_path, engine="spark") as spark:
        for query in queries:
            expected = store.query(query).notices
            assert any(n.startswith("no row has") for n in expected), query
            assert spark.query(query).notices == expected, query
