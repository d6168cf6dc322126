"""Completion, inspection and is_complete (commerceql.completion): pure functions, no kernel."""

from __future__ import annotations

import pytest

from commerceql.charts import SUPPORTED_CHART_TYPES
from commerceql.completion import complete, inspect, is_complete, scan
from commerceql.dates import CYCLICAL_DIMENSIONS, NAMED_RANGES, RELATIVE_COMPARISONS, TIME_GRAINS
from commerceql.model.semantic import builtin_model

MODEL = builtin_model()
SALES = MODEL.tables["sales"]
METRICS = {name for name, metric in SALES.metrics.items() if not metric.alias_of}
# Older spellings (deprecated dimensions) still resolve but are not offered.
DIMENSIONS = {name for name, d in SALES.dimensions.items() if not d.deprecated}
DEPRECATED = set(SALES.dimensions) - DIMENSIONS
MODIFIERS = {"TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES", "CURRENCY", "TIMEZONE"}
FIXED_RANGES = {r for r in NAMED_RANGES if not r.startswith("bfcm")}


def matches(text: str, cursor: int | None = None, **kwargs) -> list[str]:
    return complete(text, cursor, MODEL, **kwargs).matches


# ---------------------------------------------------------------------------------------------
# The scanner
# ---------------------------------------------------------------------------------------------


def test_scan_tokens_and_states():
    tokens, state = scan("FROM sales SHOW net_sales -- c\nWHERE a = 'it''s' AND b >= 2025-01-31")
    assert state is None
    assert [t.text for t in tokens] == ["FROM", "sales", "SHOW", "net_sales", "WHERE", "a", "=", "'it''s'", "AND", "b", ">=", "2025-01-31"]
    assert scan("WHERE a = 'open")[1] == "string"
    assert scan("SHOW x /* open")[1] == "block_comment"
    assert scan("SHOW x -- to the end")[1] == "line_comment"
    assert scan('SHOW x AS "Open')[1] == "qident"


# ---------------------------------------------------------------------------------------------
# Contexts
# ---------------------------------------------------------------------------------------------


def test_start_of_text_offers_from_first():
    found = matches("")
    assert found[0] == "FROM"
    assert "SHOW" in found


def test_keywords_partial_and_case():
    assert matches("FR") == ["FROM"]
    assert matches("fr") == ["from"]
    assert matches("from sales sh") == ["show"]
    assert "GROUP BY" in matches("FROM sales SHOW net_sales GR")
    assert "ORDER BY" in matches("FROM sales SHOW net_sales ORD")


def test_tables_after_from():
    assert matches("FROM ") == list(MODEL.tables)
    assert matches("FROM sa") == ["sales"]
    completion = complete("FROM sa", 7, MODEL)
    assert (completion.cursor_start, completion.cursor_end) == (5, 7)


def test_metrics_and_dimensions_after_show():
    found = set(matches("FROM sales SHOW "))
    assert METRICS <= found
    assert "billing_region" in found
    assert "returns" not in found  # deprecated alias names are not offered
    found = matches("FROM sales SHOW net_")
    assert found[0] == "net_sales"
    assert {"net_sales", "net_items_sold"} <= set(found)
    assert all(name.startswith("net_") for name in found)


def test_metrics_after_comma_and_operators():
    assert "orders" in matches("FROM sales SHOW net_sales, ")
    assert "orders" in matches("FROM sales SHOW net_sales / ")
    assert "orders" in matches("FROM sales SHOW (net_sales + ")


def test_after_a_show_item_offers_as_and_other_clauses():
    found = matches("FROM sales SHOW net_sales ")
    assert "AS" in found and "GROUP BY" in found and "WHERE" in found
    assert "SHOW" not in found and "FROM" not in found  # each clause at most once
    assert matches('FROM sales SHOW net_sales AS ') == []


def test_visualize_offers_metrics_only():
    found = set(matches("FROM sales SHOW net_sales VISUALIZE "))
    assert METRICS <= found
    assert not (found & DIMENSIONS)


def test_chart_types_after_type():
    assert set(matches("FROM sales SHOW net_sales VISUALIZE net_sales TYPE ")) == set(SUPPORTED_CHART_TYPES)
    assert matches("FROM sales VISUALIZE net_sales TYPE li") == ["line", "list", "list_with_dimension_values"]
    assert "TYPE" in matches("FROM sales VISUALIZE net_sales ")


def test_group_by_offers_dimensions_time_grains_and_cyclical():
    found = matches("FROM sales SHOW net_sales GROUP BY ")
    assert DIMENSIONS <= set(found)
    assert DEPRECATED and not DEPRECATED & set(found)
    assert set(TIME_GRAINS) <= set(found)
    assert set(CYCLICAL_DIMENSIONS) <= set(found)
    assert not (set(found) & METRICS)
    assert matches("FROM sales SHOW net_sales GROUP BY bill") == ["billing_country", "billing_region", "billing_city"]
    assert matches("FROM sales SHOW net_sales GROUP ") == ["BY"]
    assert "billing_region" in matches("FROM sales SHOW net_sales GROUP BY month, ")
    assert "billing_region" in matches("FROM sales SHOW net_sales GROUP BY TOP 5 ")


def test_where_offers_dimensions_then_operators_then_nothing_for_values():
    found = set(matches("FROM sales SHOW net_sales WHERE "))
    assert DIMENSIONS <= found and set(TIME_GRAINS) <= found and set(CYCLICAL_DIMENSIONS) <= found
    assert not (found & METRICS)
    after_operand = matches("FROM sales SHOW net_sales WHERE billing_region ")
    assert {"IN", "STARTS WITH", "CONTAINS", "IS NULL", "AND", "OR"} <= set(after_operand)
    assert "billing_region" not in matches("FROM sales SHOW net_sales WHERE billing_region = ")
    assert "sales_channel" in matches("FROM sales SHOW net_sales WHERE billing_region = 'Ohio' AND ")
    assert "sales_channel" in matches("FROM sales SHOW net_sales WHERE billing_region = 'Ohio' AND sal")
    assert "billing_region" not in matches("FROM sales SHOW net_sales WHERE x BETWEEN 1 AND ")
    assert "NULL" in matches("FROM sales SHOW net_sales WHERE discount_code IS ")


def test_having_offers_metrics():
    found = set(matches("FROM sales SHOW net_sales GROUP BY month HAVING "))
    assert METRICS <= found
    assert not (found & DIMENSIONS)


def test_time_grains_after_timeseries():
    assert matches("FROM sales SHOW net_sales TIMESERIES ") == [*TIME_GRAINS, *CYCLICAL_DIMENSIONS]
    assert matches("FROM sales SHOW net_sales TIMESERIES mo") == ["month", "month_of_year"]


@pytest.mark.parametrize("keyword", ["DURING", "SINCE", "UNTIL"])
def test_named_ranges_after_date_clauses(keyword):
    found = set(matches(f"FROM sales SHOW net_sales {keyword} "))
    assert FIXED_RANGES <= found
    assert ("now" in found) == (keyword != "DURING")
    assert not (found & set(RELATIVE_COMPARISONS))


def test_bfcm_ranges_only_once_typed():
    assert not [m for m in matches("FROM sales SHOW net_sales DURING ") if m.startswith("bfcm")]
    assert "bfcm2024" in matches("FROM sales SHOW net_sales DURING bfcm20")


def test_compare_to_offers_relative_comparisons_and_ranges():
    assert matches("FROM sales SHOW net_sales DURING last_month COMPARE ") == ["TO"]
    found = matches("FROM sales SHOW net_sales DURING last_month COMPARE TO ")
    assert found[: len(RELATIVE_COMPARISONS)] == list(RELATIVE_COMPARISONS)
    assert FIXED_RANGES <= set(found)
    assert matches("FROM sales SHOW net_sales COMPARE TO previous_period, previous_y") == [
        "previous_year",
        "previous_year_match_day_of_week",
    ]
    assert "now" in matches("FROM sales SHOW net_sales COMPARE TO 2024-01-01 UNTIL ")


def test_with_modifiers():
    assert set(matches("FROM sales SHOW net_sales WITH ")) == MODIFIERS
    assert set(matches("FROM sales SHOW net_sales WITH TOTALS, ")) == MODIFIERS
    assert matches("FROM sales SHOW net_sales with per") == ["PERCENT_CHANGE"]
    assert matches("FROM sales SHOW net_sales WITH TIMEZONE 'Europe/Par") == ["Europe/Paris'"]


def test_order_by_and_limit():
    assert "net_sales" in matches("FROM sales SHOW net_sales GROUP BY month ORDER BY ")
    assert {"ASC", "DESC"} <= set(matches("FROM sales SHOW net_sales ORDER BY net_sales "))
    assert matches("FROM sales SHOW net_sales LIMIT ") == []
    assert "OFFSET" in matches("FROM sales SHOW net_sales LIMIT 10 ")


# ---------------------------------------------------------------------------------------------
# Robustness: partial words, multi-line text, several statements, invalid text
# ---------------------------------------------------------------------------------------------


def test_multiline_text_and_cursor_in_the_middle():
    text = "FROM sales\n  SHOW net_sales,\n    ord\n  GROUP BY month"
    cursor = text.index("ord") + 3
    completion = complete(text, cursor, MODEL)
    assert completion.matches[0] == "orders"
    assert completion.cursor_start == text.index("ord")
    # replacing inside a word replaces the whole word
    completion = complete("FROM sales SHOW net_sa DURING last_month", 20, MODEL)
    assert completion.matches[0] == "net_sales"
    assert (completion.cursor_start, completion.cursor_end) == (16, 22)


def test_table_found_after_the_cursor_and_per_statement():
    assert "net_sales" in matches("SHOW ne FROM sales", 7)
    text = "FROM sales SHOW orders;\nFROM sales SHOW gross_"
    assert matches(text)[0] == "gross_sales"
    assert all(m.startswith("gross_") for m in matches(text))
    assert matches("FROM sales SHOW x; FROM sales SHOW net_sales GROUP ") == ["BY"]


def test_tables_hint_when_no_from_yet():
    assert "net_sales" in matches("SHOW ", tables_hint="sales")
    assert "net_sales" in matches("SHOW ", tables_hint=["sales"])


def test_no_completion_inside_strings_comments_and_numbers():
    assert matches("FROM sales SHOW net_sales WHERE billing_region = 'Oh") == []
    assert matches("FROM sales SHOW net_sales -- net_") == []
    assert matches("FROM sales SHOW net_sales /* net_") == []
    assert matches("FROM sales SHOW net_sales SINCE -3") == []


def test_garbage_never_raises():
    for text in ["))) ((", "FROM FROM FROM ", "@@@ SHOW ", "'", '"', "/*", ";;;", "FROM sales SHOW ,,, WHERE ("]:
        for cursor in range(len(text) + 1):
            complete(text, cursor, MODEL)
            inspect(text, cursor, MODEL)
            is_complete(text[:cursor])


def test_metadata_types_for_jupyterlab():
    completion = complete("FROM sales SHOW net_", None, MODEL)
    items = completion.metadata["_jupyter_types_experimental"]
    assert [i["text"] for i in items] == completion.matches
    assert items[0]["type"] == "metric"
    assert completion.to_reply()["status"] == "ok"


# ---------------------------------------------------------------------------------------------
# Inspection
# ---------------------------------------------------------------------------------------------


def test_inspect_metric_has_description_type_formula_and_sql():
    bundle = inspect("FROM sales SHOW net_sales", 20, MODEL)
    assert bundle is not None
    plain = bundle["text/plain"]
    assert "net_sales" in plain and "money" in plain
    assert SALES.metrics["net_sales"].description in plain
    assert "gross_sales + discounts + sales_reversals" in plain  # formula
    assert "SUM(sales.net_sales)" in plain  # SQL
    assert "```sql" in bundle["text/markdown"]


def test_inspect_dimension_alias_table_and_vocabulary():
    bundle = inspect("FROM sales SHOW net_sales GROUP BY billing_region", None, MODEL)
    assert bundle and "dimension" in bundle["text/plain"] and "sales.billing_region" in bundle["text/plain"]
    alias = inspect("FROM sales SHOW returns", None, MODEL)
    assert alias and "sales_reversals" in alias["text/plain"]
    table = inspect("FROM sales", 7, MODEL)
    assert table and "table" in table["text/plain"]
    assert "time grain" in inspect("FROM sales SHOW net_sales TIMESERIES month", None, MODEL)["text/plain"]
    assert "date range" in inspect("FROM sales SHOW net_sales DURING last_month", None, MODEL)["text/plain"]
    assert "chart type" in inspect("FROM sales VISUALIZE net_sales TYPE line", None, MODEL)["text/plain"]
    assert inspect("FROM sales SHOW nothing_like_this", None, MODEL) is None
    assert inspect("", 0, MODEL) is None


# ---------------------------------------------------------------------------------------------
# is_complete
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "FROM sales SHOW net_sales",
        "FROM sales SHOW net_sales\n  GROUP BY month\n  DURING last_year",
        "FROM sales SHOW net_sales;",
        "FROM sales SHOW orders; FROM sales SHOW net_sales",
        "FROM FROM;",  # ends with `;`: run it and show the error
        "%timezone UTC",
        "%schema\nFROM sales SHOW orders",
    ],
)
def test_complete(text):
    assert is_complete(text) == ("complete", "")


@pytest.mark.parametrize(
    "text",
    [
        "FROM sales",
        "FROM sales SHOW",
        "FROM sales SHOW net_sales WHERE",
        "FROM sales SHOW net_sales WHERE billing_region =",
        "FROM sales SHOW net_sales,",
        "FROM sales SHOW net_sales GROUP BY",
        "FROM sales SHOW (net_sales",
        "FROM sales SHOW net_sales WHERE billing_region = 'Ohio",
        "FROM sales SHOW net_sales /* a comment",
        "FROM sales SHOW net_sales COMPARE TO",
    ],
)
def test_incomplete(text):
    assert is_complete(text) == ("incomplete", "  ")


@pytest.mark.parametrize(
    "text",
    [
        "FROM sales SHOW net_sales )",
        "FROM FROM sales",
        "FROM sales SHOW net_sales @",
        "FROM sales SHOW net_sales GROUP BY month GROUP BY day",
        "SHOW SHOW",
    ],
)
def test_invalid(text):
    assert is_complete(text) == ("invalid", "")
