"""The CommerceQL grammar and parser: every clause and operator, spans, and every error path."""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import os
import subprocess
import sys
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerceql import ast
from commerceql import parser as parser_module
from commerceql.ast import (
    AbsoluteDate,
    BareCondition,
    Between,
    BinaryOperation,
    BooleanLiteral,
    CompareTarget,
    Comparison,
    DateFunction,
    DateLiteral,
    DateOffset,
    FunctionCall,
    GroupItem,
    Identifier,
    InList,
    IsTest,
    Logical,
    NamedDate,
    Negation,
    Not,
    NullLiteral,
    NumberLiteral,
    OrderItem,
    ShowItem,
    StringLiteral,
    StringMatch,
    Visualize,
    VisualizeItem,
    WithModifier,
)
from commerceql.errors import CommerceQLError, CommerceQLSyntaxError
from commerceql.parser import parse, parse_script

I = Identifier  # noqa: E741 - short name for readable expectations


def where(condition: str) -> ast.Condition:
    return parse(f"FROM sales SHOW net_sales WHERE {condition}").where


def show(items: str) -> tuple[ShowItem, ...]:
    return parse(f"FROM sales SHOW {items}").show


def since(value: str) -> ast.DateExpression:
    return parse(f"FROM sales SHOW net_sales SINCE {value}").since


def error_of(text: str) -> CommerceQLSyntaxError:
    with pytest.raises(CommerceQLSyntaxError) as info:
        parse(text)
    return info.value


# ---------------------------------------------------------------------------------------------
# FROM and SHOW
# ---------------------------------------------------------------------------------------------


def test_minimal_query() -> None:
    q = parse("FROM sales SHOW net_sales")
    assert q == ast.Query(tables=(I("sales"),), show=(ShowItem(I("net_sales")),))
    assert q.source == "FROM sales SHOW net_sales"


def test_several_tables() -> None:
    assert parse("FROM sales, sessions SHOW day, total_sales, sessions GROUP BY day").tables == (
        I("sales"),
        I("sessions"),
    )


def test_show_items_aliases_and_quoted_aliases() -> None:
    items = show('net_sales AS "Net Sales", orders AS order_count, product_title')
    assert items == (
        ShowItem(I("net_sales"), I("Net Sales", quoted=True)),
        ShowItem(I("orders"), I("order_count")),
        ShowItem(I("product_title")),
    )


def test_quoted_alias_with_doubled_quote() -> None:
    assert show('net_sales AS "The ""best"" sales"')[0].alias == I('The "best" sales', quoted=True)


def test_identifiers_keep_their_case_and_may_be_dotted() -> None:
    q = parse("FROM sales SHOW Net_Sales, product.metafields.custom.color TIMESERIES DAY")
    assert q.show[0].expression == I("Net_Sales")
    assert q.show[1].expression == I("product.metafields.custom.color")
    assert q.timeseries == I("DAY")


def test_arithmetic_precedence_and_associativity() -> None:
    (item,) = show("a + b * c - d / e")
    assert item.expression == BinaryOperation(
        "-",
        BinaryOperation("+", I("a"), BinaryOperation("*", I("b"), I("c"))),
        BinaryOperation("/", I("d"), I("e")),
    )
    (item,) = show("(a - b) - c")
    assert item.expression == BinaryOperation("-", BinaryOperation("-", I("a"), I("b")), I("c"))
    (item,) = show("a - (b - c)")
    assert item.expression == BinaryOperation("-", I("a"), BinaryOperation("-", I("b"), I("c")))


def test_unary_minus_and_number_literals() -> None:
    items = show("-net_sales, -5, -(2.5), 3.25, .5, 10 * -orders, -(a + b), 0")
    assert [i.expression for i in items] == [
        Negation(I("net_sales")),
        NumberLiteral(-5),
        NumberLiteral(Decimal("-2.5")),
        NumberLiteral(Decimal("3.25")),
        NumberLiteral(Decimal("0.5")),
        BinaryOperation("*", NumberLiteral(10), Negation(I("orders"))),
        Negation(BinaryOperation("+", I("a"), I("b"))),
        NumberLiteral(0),
    ]
    assert isinstance(items[1].expression.value, int)


def test_function_call_syntax_is_kept_for_the_resolver() -> None:
    items = show("sum(net_sales) AS total, count(), max(a, b + 1)")
    assert items[0] == ShowItem(FunctionCall("sum", (I("net_sales"),)), I("total"))
    assert items[1].expression == FunctionCall("count", ())
    assert items[2].expression == FunctionCall(
        "max", (I("a"), BinaryOperation("+", I("b"), NumberLiteral(1)))
    )


def test_show_parenthesised_expression_with_alias() -> None:
    (item, second) = show("(net_sales + sales_reversals) AS order_value, orders")
    assert item == ShowItem(BinaryOperation("+", I("net_sales"), I("sales_reversals")), I("order_value"))
    assert second == ShowItem(I("orders"))


# ---------------------------------------------------------------------------------------------
# VISUALIZE
# ---------------------------------------------------------------------------------------------


def test_visualize_items_types_and_max() -> None:
    q = parse('FROM sales SHOW net_sales AS "Net", orders VISUALIZE "Net" TYPE line, orders TYPE bar MAX 5')
    assert q.visualize == Visualize(
        items=(
            VisualizeItem(I("Net", quoted=True), I("line")),
            VisualizeItem(I("orders"), I("bar")),
        ),
        max_points=5,
    )


def test_visualize_without_show_and_without_type() -> None:
    q = parse("FROM sales VISUALIZE orders, net_sales / orders TIMESERIES day")
    assert q.show == ()
    assert q.visualize.items == (
        VisualizeItem(I("orders")),
        VisualizeItem(BinaryOperation("/", I("net_sales"), I("orders"))),
    )
    assert q.timeseries == I("day")


def test_visualize_deprecated_limit_is_max() -> None:
    q = parse("FROM sales SHOW net_sales GROUP BY product_title VISUALIZE net_sales TYPE bar LIMIT 7")
    assert q.visualize.max_points == 7
    assert q.limit is None


def test_visualize_limit_with_offset_is_the_query_limit() -> None:
    q = parse("FROM sales SHOW net_sales VISUALIZE net_sales LIMIT 10 OFFSET 20")
    assert q.visualize.max_points is None
    assert (q.limit, q.offset) == (10, 20)


def test_visualize_max_then_query_limit() -> None:
    q = parse("FROM sales SHOW net_sales VISUALIZE net_sales MAX 3 LIMIT 50")
    assert (q.visualize.max_points, q.limit) == (3, 50)


def test_chart_type_is_any_name() -> None:
    q = parse("FROM sales SHOW net_sales VISUALIZE net_sales TYPE no_such_chart")
    assert q.visualize.items[0].chart_type == I("no_such_chart")


def test_type_is_a_soft_keyword() -> None:
    assert show("type, max, top, only")[0].expression == I("type")


# ---------------------------------------------------------------------------------------------
# WHERE / HAVING conditions
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operator", "expected"),
    [("=", "="), ("!=", "!="), ("<>", "!="), ("<", "<"), ("<=", "<="), (">", ">"), (">=", ">=")],
)
def test_comparison_operators(operator: str, expected: str) -> None:
    assert where(f"quantity {operator} 3") == Comparison(expected, I("quantity"), NumberLiteral(3))


def test_values() -> None:
    assert where("a = 'it''s'").right == StringLiteral("it's")
    assert where(r"a = 'C:\path\'").right == StringLiteral("C:\\path\\")
    assert where("a = true").right == BooleanLiteral(True)
    assert where("a = FALSE").right == BooleanLiteral(False)
    assert where("a = null").right == NullLiteral()
    assert where("a = 2025-01-31").right == DateLiteral(dt.date(2025, 1, 31))
    assert where("a >= 2025-01-31T14:05:00").right == DateLiteral(dt.datetime(2025, 1, 31, 14, 5))
    assert where("a >= 2025-01-31T14:05").right == DateLiteral(dt.datetime(2025, 1, 31, 14, 5))
    assert where("a = b").right == I("b")
    assert where("a = -1.5").right == NumberLiteral(Decimal("-1.5"))
    assert where("a = 'multi\nline'").right == StringLiteral("multi\nline")
    assert where("a = ''").right == StringLiteral("")
    assert where("a = '--not a comment; /* nor this */'").right == StringLiteral(
        "--not a comment; /* nor this */"
    )


def test_in_and_not_in() -> None:
    assert where("shop_id IN (12301, 12302)") == InList(
        I("shop_id"), (NumberLiteral(12301), NumberLiteral(12302))
    )
    assert where("country NOT IN ('CA')") == InList(I("country"), (StringLiteral("CA"),), negated=True)


def test_between_and_not_between() -> None:
    assert where("period BETWEEN -1 AND 11") == Between(I("period"), NumberLiteral(-1), NumberLiteral(11))
    assert where("day NOT BETWEEN 2025-01-01 AND 2025-01-31") == Between(
        I("day"), DateLiteral(dt.date(2025, 1, 1)), DateLiteral(dt.date(2025, 1, 31)), negated=True
    )


def test_between_inside_and_chain() -> None:
    assert where("a = 1 AND b BETWEEN 1 AND 2 AND c = 3") == Logical(
        "and",
        (
            Comparison("=", I("a"), NumberLiteral(1)),
            Between(I("b"), NumberLiteral(1), NumberLiteral(2)),
            Comparison("=", I("c"), NumberLiteral(3)),
        ),
    )


def test_string_matching() -> None:
    assert where("title STARTS WITH 'Sh'") == StringMatch(I("title"), "starts_with", StringLiteral("Sh"))
    assert where("title ENDS WITH 'rt'") == StringMatch(I("title"), "ends_with", StringLiteral("rt"))
    assert where("tags CONTAINS 'sale'") == StringMatch(I("tags"), "contains", StringLiteral("sale"))
    assert where("tags NOT CONTAINS 'sale'") == StringMatch(
        I("tags"), "contains", StringLiteral("sale"), True
    )
    assert where("title NOT STARTS WITH 'x'").negated


@pytest.mark.parametrize(
    ("text", "test", "negated"),
    [("IS NULL", "null", False), ("IS NOT NULL", "null", True), ("is true", "true", False),
     ("IS NOT TRUE", "true", True), ("IS FALSE", "false", False), ("IS NOT FALSE", "false", True)],
)  # fmt: skip
def test_is_tests(text: str, test: str, negated: bool) -> None:
    assert where(f"product_title {text}") == IsTest(I("product_title"), test, negated)  # type: ignore[arg-type]


def test_bare_boolean_and_not() -> None:
    assert where("is_b2b") == BareCondition(I("is_b2b"))
    assert where("NOT is_b2b") == Not(BareCondition(I("is_b2b")))
    assert where("NOT NOT is_b2b") == Not(Not(BareCondition(I("is_b2b"))))
    assert where("NOT a = 1") == Not(Comparison("=", I("a"), NumberLiteral(1)))


def test_and_binds_tighter_than_or_and_chains_are_flat() -> None:
    a, b, c, d = (BareCondition(I(n)) for n in "abcd")
    assert where("a OR b AND c OR d") == Logical("or", (a, Logical("and", (b, c)), d))
    assert where("a AND b AND c AND d") == Logical("and", (a, b, c, d))
    assert where("(a OR b) AND c") == Logical("and", (Logical("or", (a, b)), c))
    assert where("a AND (b AND c)") == Logical("and", (a, b, c))
    assert where("NOT (a OR b)") == Not(Logical("or", (a, b)))


def test_parenthesised_values_and_conditions() -> None:
    assert where("(a) = 1") == Comparison("=", I("a"), NumberLiteral(1))
    assert where("(a + b) > 2 * c") == Comparison(
        ">", BinaryOperation("+", I("a"), I("b")), BinaryOperation("*", NumberLiteral(2), I("c"))
    )
    assert where("((a = 1))") == Comparison("=", I("a"), NumberLiteral(1))
    assert where("(is_b2b)") == BareCondition(I("is_b2b"))


def test_having_uses_aliases_and_metrics() -> None:
    q = parse('FROM sales SHOW net_sales AS "Net", orders GROUP BY day HAVING "Net" > 1000 AND orders < 5000')
    assert q.having == Logical(
        "and",
        (
            Comparison(">", I("Net", quoted=True), NumberLiteral(1000)),
            Comparison("<", I("orders"), NumberLiteral(5000)),
        ),
    )


# ---------------------------------------------------------------------------------------------
# GROUP BY, TIMESERIES, WITH
# ---------------------------------------------------------------------------------------------


def test_group_by_items() -> None:
    q = parse(
        'FROM sales SHOW net_sales GROUP BY day, TOP 5 product_title, ONLY TOP 3 vendor OVERALL, "Title"'
    )
    assert q.group_by == (
        GroupItem(I("day")),
        GroupItem(I("product_title"), top=5),
        GroupItem(I("vendor"), top=3, only=True, overall=True),
        GroupItem(I("Title", quoted=True)),
    )


def test_with_right_after_group_by_or_timeseries() -> None:
    q = parse("FROM sales SHOW total_sales GROUP BY billing_region WITH TOTALS")
    assert q.with_modifiers == (WithModifier("TOTALS"),)
    q = parse("FROM sales SHOW net_sales TIMESERIES day WITH CUMULATIVE_VALUES DURING last_month")
    assert q.timeseries == I("day")
    assert q.with_modifiers == (WithModifier("CUMULATIVE_VALUES"),)
    assert q.during == NamedDate("last_month")


def test_with_modifiers() -> None:
    q = parse(
        "FROM sales SHOW net_sales WITH totals, GROUP_TOTALS, Percent_Change, CUMULATIVE_VALUES, "
        "CURRENCY 'EUR', TIMEZONE 'America/New_York', LAST_CLICK_ATTRIBUTION"
    )
    assert q.with_modifiers == (
        WithModifier("TOTALS"),
        WithModifier("GROUP_TOTALS"),
        WithModifier("PERCENT_CHANGE"),
        WithModifier("CUMULATIVE_VALUES"),
        WithModifier("CURRENCY", "EUR"),
        WithModifier("TIMEZONE", "America/New_York"),
        WithModifier("LAST_CLICK_ATTRIBUTION"),
    )


def test_with_in_parentheses() -> None:
    assert parse("FROM sales SHOW x WITH (TOTALS, PERCENT_CHANGE)").with_modifiers == (
        WithModifier("TOTALS"),
        WithModifier("PERCENT_CHANGE"),
    )


def test_timeseries() -> None:
    assert parse("FROM sales SHOW net_sales TIMESERIES hour_of_day").timeseries == I("hour_of_day")


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [("-30d", -30, "d"), ("-3m", -3, "m"), ("-1q", -1, "q"), ("-1y", -1, "y"), ("-2h", -2, "h"),
     ("-15min", -15, "min"), ("-10s", -10, "s"), ("-2w", -2, "w"), ("0m", 0, "m"), ("0d", 0, "d"),
     ("+1d", 1, "d"), ("3w", 3, "w")],
)  # fmt: skip
def test_date_offsets(text: str, amount: int, unit: str) -> None:
    assert since(text) == DateOffset(amount, unit)  # type: ignore[arg-type]


def test_absolute_dates_and_datetimes() -> None:
    assert since("2025-01-01") == AbsoluteDate(dt.date(2025, 1, 1))
    assert since("2026-01-31T14:00:00") == AbsoluteDate(dt.datetime(2026, 1, 31, 14))
    assert since("2026-01-31T14:00:00.250") == AbsoluteDate(dt.datetime(2026, 1, 31, 14, 0, 0, 250000))


@pytest.mark.parametrize(
    "name", ["now", "today", "yesterday", "this_week", "last_month", "bfcm2024", "no_such_range"]
)
def test_named_dates(name: str) -> None:
    assert since(name) == NamedDate(name)


def test_named_dates_are_lower_cased() -> None:
    assert since("Last_Month") == NamedDate("last_month")


def test_date_functions_keep_camel_case() -> None:
    assert since("startOfMonth(-1m)") == DateFunction("startOfMonth", DateOffset(-1, "m"))
    assert since("endOfQuarter(-3q)") == DateFunction("endOfQuarter", DateOffset(-3, "q"))
    assert since("startOfDay()") == DateFunction("startOfDay")
    assert since("startOfMonth(0m)") == DateFunction("startOfMonth", DateOffset(0, "m"))


def test_since_until_during() -> None:
    q = parse("FROM sales SHOW x SINCE -7d UNTIL yesterday")
    assert (q.since, q.until, q.during) == (DateOffset(-7, "d"), NamedDate("yesterday"), None)
    q = parse("FROM sales SHOW x UNTIL today TIMESERIES day")
    assert q.until == NamedDate("today") and q.since is None
    q = parse("FROM sales SHOW x DURING bfcm2024")
    assert q.during == NamedDate("bfcm2024")


def test_compare_to_targets() -> None:
    q = parse(
        "FROM sales SHOW x SINCE -30d COMPARE TO previous_year, previous_year_match_day_of_week, last_week, "
        "bfcm2023, 2023-01-01, startOfQuarter(-3q) UNTIL endOfQuarter(-3q), -1y UNTIL -11m, TARGETS, benchmarks"
    )
    assert q.compare_to == (
        CompareTarget(operator="previous_year"),
        CompareTarget(operator="previous_year_match_day_of_week"),
        CompareTarget(start=NamedDate("last_week")),
        CompareTarget(start=NamedDate("bfcm2023")),
        CompareTarget(start=AbsoluteDate(dt.date(2023, 1, 1))),
        CompareTarget(
            start=DateFunction("startOfQuarter", DateOffset(-3, "q")),
            until=DateFunction("endOfQuarter", DateOffset(-3, "q")),
        ),
        CompareTarget(start=DateOffset(-1, "y"), until=DateOffset(-11, "m")),
        CompareTarget(operator="targets"),
        CompareTarget(operator="benchmarks"),
    )


def test_until_after_a_relative_comparison_is_the_query_until() -> None:
    q = parse("FROM sales SHOW x SINCE -30d COMPARE TO previous_period UNTIL today")
    assert q.compare_to == (CompareTarget(operator="previous_period"),)
    assert q.until == NamedDate("today")


def test_until_before_compare_to_is_the_query_until() -> None:
    q = parse("FROM sales SHOW x SINCE 2024-01-01 UNTIL 2024-01-31 COMPARE TO 2023-01-01")
    assert q.until == AbsoluteDate(dt.date(2024, 1, 31))
    assert q.compare_to == (CompareTarget(start=AbsoluteDate(dt.date(2023, 1, 1))),)


# ---------------------------------------------------------------------------------------------
# ORDER BY, LIMIT
# ---------------------------------------------------------------------------------------------


def test_order_by() -> None:
    q = parse(
        'FROM sales SHOW net_sales AS "Net" GROUP BY a, b '
        'ORDER BY a, b DESC, "Net" asc, comparison_net_sales__previous_year Desc'
    )
    assert q.order_by == (
        OrderItem(I("a")),
        OrderItem(I("b"), descending=True),
        OrderItem(I("Net", quoted=True)),
        OrderItem(I("comparison_net_sales__previous_year"), descending=True),
    )


def test_limit_and_offset() -> None:
    q = parse("FROM sales SHOW x LIMIT 10 OFFSET 20")
    assert (q.limit, q.offset) == (10, 20)
    q = parse("FROM sales SHOW x LIMIT 0")
    assert (q.limit, q.offset) == (0, None)


# ---------------------------------------------------------------------------------------------
# Clause order, case, comments, scripts
# ---------------------------------------------------------------------------------------------

CLAUSES = [
    "SHOW net_sales, orders",
    "WHERE billing_country = 'Canada'",
    "GROUP BY product_title",
    "TIMESERIES month",
    "HAVING net_sales > 10",
    "SINCE -3m",
    "UNTIL today",
    "COMPARE TO previous_year",
    "WITH TOTALS",
    "ORDER BY net_sales DESC",
    "LIMIT 10",
    "VISUALIZE net_sales TYPE line",
]


def _unambiguous(order: tuple[str, ...]) -> bool:
    # `VISUALIZE x LIMIT n` is VISUALIZE's deprecated MAX (see test_visualize_deprecated_limit_is_max).
    return all(
        not (a.startswith("VISUALIZE") and b.startswith("LIMIT")) for a, b in itertools.pairwise(order)
    )


def test_clauses_in_any_order() -> None:
    reference = parse("FROM sales " + " ".join(CLAUSES))
    checked = 0
    for permutation in itertools.islice(itertools.permutations(CLAUSES), 0, 40000, 397):
        if _unambiguous(permutation):
            assert parse("FROM sales " + " ".join(permutation)) == reference
            checked += 1
    assert checked > 50
    backwards = [c for c in reversed(CLAUSES) if not c.startswith("LIMIT")] + ["LIMIT 10"]
    assert parse(" ".join(backwards) + " FROM sales") == reference


def test_g0_show_before_from() -> None:
    assert parse("SHOW net_sales FROM sales SINCE -7d UNTIL -1d") == parse(
        "FROM sales SHOW net_sales SINCE -7d UNTIL -1d"
    )


def test_keywords_are_case_insensitive() -> None:
    upper = parse(
        "FROM sales SHOW net_sales AS x WHERE a IS NOT NULL AND b IN (1) GROUP BY TOP 5 c ORDER BY x DESC LIMIT 3"
    )
    lower = parse(
        "from sales show net_sales as x where a is not null and b in (1) group by top 5 c order by x desc limit 3"
    )
    mixed = parse(
        "From sales Show net_sales As x Where a Is Not Null And b In (1) Group By Top 5 c Order By x Desc Limit 3"
    )
    assert upper == lower == mixed


def test_comments_everywhere() -> None:
    text = """-- leading comment
    FROM sales -- trailing comment
      /* block
         comment */ SHOW net_sales, /* inline */ orders
      WHERE a = '-- in a string' -- real comment
    """
    q = parse(text)
    assert q.show == (ShowItem(I("net_sales")), ShowItem(I("orders")))
    assert q.where.right == StringLiteral("-- in a string")
    assert parse("/* c */FROM sales SHOW x") == parse("FROM sales SHOW x")


def test_non_breaking_space_is_whitespace() -> None:
    assert parse("FROM\u00a0sales SHOW\tx") == parse("FROM sales SHOW x")


def test_script_of_several_queries() -> None:
    text = "FROM sales SHOW a;\n;\nFROM sessions SHOW sessions;  ;"
    queries = parse_script(text)
    assert [q.tables[0].name for q in queries] == ["sales", "sessions"]
    second = queries[1]
    assert second.span.line == 3 and second.span.column == 1
    assert text[second.span.start_pos : second.span.end_pos] == "FROM sessions SHOW sessions"
    assert second.source == text
    assert parse_script("") == [] and parse_script(" ; -- nothing\n;") == []


def test_parse_takes_one_query_and_allows_a_trailing_semicolon() -> None:
    assert parse("FROM sales SHOW a;") == parse("FROM sales SHOW a")
    error = error_of("FROM sales SHOW a;\nFROM sessions SHOW b")
    assert "second query" in error.message
    assert (error.line, error.column) == (2, 1)


def test_script_error_spans_are_relative_to_the_whole_text() -> None:
    with pytest.raises(CommerceQLSyntaxError) as info:
        parse_script('FROM sales SHOW a;\nFROM sales SHOW b\n  WHERE c = "x"')
    error = info.value
    assert (error.line, error.column) == (3, 13)
    assert '3 |   WHERE c = "x"' in error.render()


# ---------------------------------------------------------------------------------------------
# Spans
# ---------------------------------------------------------------------------------------------


def test_spans_in_a_multi_line_query() -> None:
    text = (
        "FROM sales\n"
        '  SHOW net_sales AS "Net Sales", orders\n'
        "  WHERE billing_country = 'Canada'\n"
        "  GROUP BY TOP 5 product_title\n"
        "  SINCE -3m UNTIL startOfMonth(0m)\n"
        "VISUALIZE net_sales TYPE line"
    )
    q = parse(text)

    def at(node: object) -> tuple[int, int, int, int, str]:
        span = node.span  # type: ignore[attr-defined]
        return span.line, span.column, span.end_line, span.end_column, text[span.start_pos : span.end_pos]

    assert at(q) == (1, 1, 6, 30, text)
    assert at(q.tables[0]) == (1, 6, 1, 11, "sales")
    assert at(q.show[0]) == (2, 8, 2, 32, 'net_sales AS "Net Sales"')
    assert at(q.show[0].alias) == (2, 21, 2, 32, '"Net Sales"')
    assert at(q.show[1].expression) == (2, 34, 2, 40, "orders")
    assert at(q.where) == (3, 9, 3, 35, "billing_country = 'Canada'")
    assert at(q.where.right) == (3, 27, 3, 35, "'Canada'")
    assert at(q.group_by[0]) == (4, 12, 4, 31, "TOP 5 product_title")
    assert at(q.group_by[0].dimension) == (4, 18, 4, 31, "product_title")
    assert at(q.since) == (5, 9, 5, 12, "-3m")
    assert at(q.until) == (5, 19, 5, 35, "startOfMonth(0m)")
    assert at(q.until.argument) == (5, 32, 5, 34, "0m")
    assert at(q.visualize) == (6, 1, 6, 30, "VISUALIZE net_sales TYPE line")
    assert at(q.visualize.items[0].chart_type) == (6, 26, 6, 30, "line")


def test_every_node_has_a_span() -> None:
    q = parse(
        "FROM sales SHOW -a + b * 2 AS c, f(x) WHERE a IN (1, 2) AND NOT b BETWEEN 1 AND 2 OR c IS NULL "
        "OR d CONTAINS 'x' OR e GROUP BY TOP 3 g TIMESERIES day HAVING c > 1 SINCE startOfDay(-1d) UNTIL now "
        "COMPARE TO previous_year, 2024-01-01 UNTIL 2024-02-01 WITH TOTALS, CURRENCY 'EUR' ORDER BY c DESC "
        "LIMIT 5 VISUALIZE c TYPE bar"
    )
    missing = [node for node in parser_module._walk(q) if hasattr(node, "span") and node.span is None]
    assert missing == []


def test_spans_do_not_take_part_in_equality() -> None:
    assert parse("FROM sales SHOW x") == parse("FROM   sales\n\n  SHOW   x  ")


# ---------------------------------------------------------------------------------------------
# Errors: message, position, caret, hint
# ---------------------------------------------------------------------------------------------

ERRORS = [
    # (query, message fragment, line, column, hint fragment or None)
    ("FROM sales SHWO net_sales", "unknown keyword `SHWO`", 1, 12, "did you mean `SHOW`?"),
    ("FROM sales SHOW net_sales\n  WHRE a = 1", "unknown keyword `WHRE`", 2, 3, "`WHERE`"),
    (
        'FROM sales SHOW x WHERE a = "Wholesale"',
        "double quotes",
        1,
        29,
        "use single quotes for values: 'Wholesale'",
    ),
    ("SHOW net_sales", "missing FROM: a query starts with FROM <table>", 1, 1, "FROM sales"),
    ("FROM sales", "nothing to show: add SHOW or VISUALIZE", 1, 1, "SHOW net_sales"),
    ("FROM sales WHERE a = 1", "nothing to show", 1, 1, None),
    ("FROM sales SHOW x WHERE a = 'open", "unterminated string", 1, 29, "closing '"),
    ("FROM sales SHOW x WHERE a = 'Levi\\'s'", "unterminated string", 1, 37, "written twice"),
    ('FROM sales SHOW x AS "Net', "unterminated name", 1, 22, "double quotes are for aliases"),
    ("FROM sales SHOW x /* never closed", "unterminated comment", 1, 19, "*/"),
    ("FROM sales SHOW x WHERE a = 1 WHERE b = 2", "the WHERE clause appears twice", 1, 31, "AND"),
    ("FROM sales SHOW x SHOW y", "the SHOW clause appears twice", 1, 19, "commas"),
    (
        "FROM sales SHOW x WITH TOTALS GROUP BY a WITH PERCENT_CHANGE",
        "the WITH clause appears twice",
        1,
        42,
        None,
    ),
    ("FROM sales SHOW x FROM sessions", "the FROM clause appears twice", 1, 19, "separate queries with ;"),
    (
        "FROM sales SHOW x DURING last_month SINCE -1d",
        "DURING sets the whole period; use either DURING or SINCE/UNTIL",
        1,
        19,
        None,
    ),
    ("FROM sales SHOW x UNTIL today DURING last_month", "DURING sets the whole period", 1, 31, None),
    # The older forms `BY`, `OVER month` and `GROUP BY month ALL` are accepted (tests/test_older_forms.py);
    # these misuses of them are not.
    ("FROM sales SHOW x BY a GROUP BY b", "and GROUP BY both group this query", 1, 19, "one GROUP BY"),
    ("FROM sales SHOW x GROUP BY product_title ALL", "not a time grain", 1, 42, "GROUP BY month ALL"),
    ("FROM sales SHOW x OVER product_title", "OVER` is the older spelling of TIMESERIES", 1, 24, "GROUP BY product_title"),
    ("SHOW sum(x) OVER month(happened_at) AS month FROM sales TIMESERIES day", "both set the time series", 1, 13,
     "TIMESERIES month"),
    ("FROM sales SHOW x SINCE -30days", "`-30days` is not a date offset", 1, 25, "m (MONTHS)"),
    ("FROM sales SHOW x SINCE 30", "expected a date", 1, 25, "-30d"),
    ("FROM sales SHOW x SINCE '2025-01-01'", "expected a date", 1, 25, "without quotes"),
    ("FROM sales SHOW x SINCE -3M", "lower case", 1, 25, "-3min three minutes"),
    ("FROM sales SHOW x SINCE 2025-13-01", "`2025-13-01` is not a valid date", 1, 25, None),
    ("FROM sales SHOW x SINCE", "ends too early; expected a date", 1, 24, None),
    # A date offset is a value only compared with a field (`day > -30d` is valid: a relative date).
    ("FROM sales SHOW x WHERE a CONTAINS -30d", "a value only when a date field is compared", 1, 36, "SINCE -30d"),
    ("FROM sales SHOW -30d", "a value only when a date field is compared", 1, 17, None),
    ("FROM sales SHOW x WHERE a = 5e3", "`5e3` is not a number", 1, 29, None),
    ("FROM sales SHOW x WHERE a == 1", "`==`", 1, 27, "single equals"),
    ("FROM sales SHOW x WHERE a LIKE 'x%'", "no LIKE", 1, 27, "CONTAINS"),
    ("FROM sales SHOW net_sales orders", "unexpected `orders`", 1, 27, "separate items with commas"),
    ("FROM sales SHOW x,", "ends too early", 1, 19, "trailing comma"),
    ("FROM sales SHOW x, WHERE a = 1", "unexpected keyword WHERE", 1, 20, "trailing comma"),
    ("FROM sales SHOW x GROUP month", "expected BY", 1, 25, None),
    ("FROM sales SHOW x ORDER BY", "ends too early; expected a name", 1, 27, None),
    ("FROM sales SHOW (x", "ends too early", 1, 19, None),
    ("FROM sales SHOW x @", "unexpected character `@`", 1, 19, None),
    ("FROM sales SHOW x WHERE a IN [1, 2]", "unexpected character `[`", 1, 30, "parentheses"),
    ("FROM sales SHOW café", "unexpected character `é`", 1, 20, "double quotes"),
    ("FROM order SHOW x", "unexpected keyword ORDER", 1, 6, "keyword"),
    ("FROM sales SHOW x WITH TOTAL", "unknown WITH modifier `TOTAL`", 1, 24, "did you mean `TOTALS`?"),
    ("FROM sales SHOW x WITH CURRENCY", "CURRENCY needs a currency code", 1, 24, "CURRENCY 'EUR'"),
    ("FROM sales SHOW x WITH CURRENCY EUR", "single quotes", 1, 33, "WITH CURRENCY 'EUR'"),
    ("FROM sales SHOW x WITH TOTALS 'x'", "TOTALS takes no value", 1, 31, None),
    ("FROM sales SHOW x WITH TOTALS, TOTALS", "lists TOTALS twice", 1, 32, None),
    ("FROM sales SHOW x LIMIT 2.5", "LIMIT takes a whole number", 1, 25, None),
    ("FROM sales SHOW x LIMIT 99999999999999999999", "too large", 1, 25, None),
    ("FROM sales SHOW x GROUP BY TOP 0 a", "TOP must be at least 1", 1, 32, None),
    ("FROM sales SHOW x VISUALIZE x MAX 0", "MAX must be at least 1", 1, 35, None),
    ("FROM sales SHOW x DURING -30d", "DURING takes a named period", 1, 26, "SINCE"),
    (
        "FROM sales SHOW x COMPARE TO previous_year UNTIL today, previous_period",
        "has no end date",
        1,
        50,
        None,
    ),
    (
        "FROM sales SHOW x SINCE -1d UNTIL now COMPARE TO previous_year UNTIL today",
        "has no end date",
        1,
        70,
        None,
    ),
    ("FROM sales SHOW x SINCE startOfMonth(today)", "unexpected `today`", 1, 38, None),
    ('FROM sales SHOW x AS ""', "empty quoted name", 1, 22, None),
    ("FROM customers SHOW x WHERE orders_placed MATCHES (date > -30d, date < -1d)", "`date` appears twice in one MATCHES", 1, 65, None),
    ("FROM sales SHOW x VISUALIZE x ANNOTATE events", "ANNOTATE is not supported", 1, 31, None),
    ("", "empty query", 1, 1, None),
    ("FROM sales SHOW x OFFSET 5", "unexpected keyword OFFSET", 1, 19, "LIMIT 100 OFFSET 20"),
    ("FROM sales SHOW x TYPE line", "unexpected keyword TYPE", 1, 19, "VISUALIZE net_sales TYPE line"),
    ("FROM sales SHOW TOP 5 x", "unexpected `5`", 1, 21, "GROUP BY TOP 5"),
    ("FROM sales SHOW x DESC", "unexpected keyword DESC", 1, 19, "ORDER BY net_sales DESC"),
    ("SELECT net_sales FROM sales", "CommerceQL uses SHOW", 1, 1, "FROM sales SHOW net_sales"),
    ("   -- only a comment", "empty query", 1, 21, None),
    ("FROM sales SHOW x WHERE NOT", "ends too early", 1, 28, None),
    ("FROM sales SHOW x WHERE a BETWEEN 1", "ends too early", 1, 36, None),
    ("FROM sales SHOW x SINCE -9999999d", "too large", 1, 25, None),
    ("FROM sales SHOW " + "1" * 500, "too many digits", 1, 17, None),
]


@pytest.mark.parametrize(
    ("text", "message", "line", "column", "hint"), ERRORS, ids=[e[1][:40] for e in ERRORS]
)
def test_error(text: str, message: str, line: int, column: int, hint: str | None) -> None:
    error = error_of(text)
    assert message in error.message
    assert (error.line, error.column) == (line, column), error.render()
    if hint is not None:
        assert error.hint is not None and hint in error.hint
    assert error.source == text
    # No Lark internals in what the user reads.
    rendered = error.render()
    for internal in ("__ANON", "_FROM", "IDENT", "DATE_OFFSET", "$END", "Token(", "Traceback"):
        assert internal not in rendered
    assert "internal parser error" not in rendered


def test_error_render_has_a_caret_under_the_offending_text() -> None:
    error = error_of('FROM sales\n  SHOW net_sales\n  WHERE channel = "Wholesale"')
    assert error.render() == (
        'syntax error: "Wholesale" is in double quotes, which are for names (aliases), not values\n'
        " --> line 3, column 19\n"
        "  |\n"
        '3 |   WHERE channel = "Wholesale"\n'
        "  |                   ^^^^^^^^^^^\n"
        "  = hint: use single quotes for values: 'Wholesale'"
    )


def test_misspelled_keyword_render() -> None:
    rendered = error_of("FROM sales SHWO net_sales").render()
    assert rendered.splitlines()[3:5] == ["1 | FROM sales SHWO net_sales", "  |            ^^^^"]
    assert rendered.endswith("= hint: did you mean `SHOW`?")


def test_expected_tokens_are_in_words() -> None:
    error = error_of("FROM sales SHOW x WHERE a IS 3")
    assert "expected" in error.message
    assert "NOT" in error.message and "null" in error.message


def test_deep_nesting_is_a_clean_error_or_parses() -> None:
    text = "FROM sales SHOW " + "(" * 3000 + "x" + ")" * 3000
    try:
        parse(text)
    except CommerceQLSyntaxError as error:
        assert "nested too deeply" in error.message


def test_non_string_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# The Lark parser: LALR, cached, only the documented conflicts
# ---------------------------------------------------------------------------------------------


def test_parser_is_lalr_with_contextual_lexer_and_is_a_singleton() -> None:
    lark_parser = parser_module.get_parser()
    assert lark_parser is parser_module.get_parser()
    assert lark_parser.options.parser == "lalr"
    assert lark_parser.options.lexer == "contextual"


def test_grammar_has_only_the_documented_conflicts(caplog: pytest.LogCaptureFixture) -> None:
    from lark import Lark
    from lark import logger as lark_logger

    grammar = parser_module.GRAMMAR_PATH.read_text(encoding="utf-8")
    old_level = lark_logger.level
    lark_logger.setLevel(logging.DEBUG)
    lark_logger.addHandler(caplog.handler)
    try:
        Lark(grammar, parser="lalr", lexer="contextual", debug=True)
    finally:
        lark_logger.setLevel(old_level)
        lark_logger.removeHandler(caplog.handler)
    conflicts = {
        r.getMessage().split("terminal ")[1].split(":")[0]
        for r in caplog.records
        if "conflict" in r.getMessage()
    }
    assert conflicts == {"_RPAR", "_UNTIL", "_LIMIT"}


def test_cache_file_is_keyed_by_the_grammar(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMMERCEQL_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("COMMERCEQL_NO_PARSER_CACHE", raising=False)
    first = parser_module.cache_path('start: A\nA: "a"')
    second = parser_module.cache_path('start: B\nB: "b"')
    assert first != second and first.parent == second.parent == tmp_path
    built = parser_module._build_parser()
    path = parser_module.cache_path()
    assert path.exists() and path.stat().st_size > 0
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    loaded = parser_module._build_parser()  # now from the cache file
    text = "FROM sales SHOW x WHERE a = 1 SINCE -1d"
    assert parser_module._Builder(text).transform(loaded.parse(text, start="start")) == parser_module._Builder(
        text
    ).transform(built.parse(text, start="start"))


def test_cache_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMMERCEQL_NO_PARSER_CACHE", "1")
    assert parser_module.cache_path() is None


def test_a_new_process_parses_with_the_cache(tmp_path: pytest.TempPathFactory) -> None:
    code = (
        "import time; t = time.perf_counter(); from commerceql.parser import parse, get_parser; get_parser(); "
        "print(parse('FROM sales SHOW x').tables[0].name)"
    )
    env = {**os.environ, "COMMERCEQL_CACHE_DIR": str(tmp_path)}
    for _ in range(2):  # the first run writes the cache, the second loads it
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "sales"
        assert result.stderr == ""


# ---------------------------------------------------------------------------------------------
# Fuzzing: whatever the input, only CommerceQLError comes out
# ---------------------------------------------------------------------------------------------

VALID = [
    "FROM sales SHOW net_sales, orders AS \"Orders\" WHERE billing_country = 'Canada' AND a IN (1, 2) "
    "GROUP BY TOP 5 product_title TIMESERIES month HAVING net_sales > 10 SINCE -3m UNTIL startOfMonth(0m) "
    "COMPARE TO previous_year WITH TOTALS, CURRENCY 'EUR' ORDER BY net_sales DESC LIMIT 10 OFFSET 2 "
    "VISUALIZE net_sales TYPE line MAX 5",
    "FROM sales SHOW (net_sales - -1) / orders AS aov WHERE NOT (a STARTS WITH 'x' OR b IS NOT NULL) "
    "DURING bfcm2024 COMPARE TO bfcm2023",
    "from sales visualize orders timeseries day since 2025-01-01T00:00:00 until -1d",
    "FROM sales SHOW x WHERE d BETWEEN 2025-01-01 AND 2025-02-01 /* c */ -- d\n; FROM s SHOW y;",
]
TOKENS = [
    "FROM", "SHOW", "WHERE", "GROUP BY", "TOP", "ONLY", "OVERALL", "TIMESERIES", "HAVING", "SINCE", "UNTIL",
    "DURING", "COMPARE TO", "WITH", "ORDER BY", "LIMIT", "OFFSET", "VISUALIZE", "TYPE", "MAX", "AS", "AND",
    "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "STARTS WITH", "CONTAINS", "MATCHES", "ANNOTATE",
    "ORGANIZATION", "BY", "OVER", "ALL", "ASC", "DESC", "TOTALS", "CURRENCY", "sales", "net_sales", "x",
    "'v'", "'", '"A"', '"', "-30d", "-3m", "0m", "-15min", "2025-01-01", "2025-13-01", "5", "2.5", "-",
    "+", "*", "/", "(", ")", ",", ";", "=", "!=", "<>", "<", ">=", "==", "--", "/*", "*/", "\n", " ", "é",
    "startOfMonth(", "previous_year", "today", "sum(", "\\", "@", "[", "{",
]  # fmt: skip


def _check_only_commerceql_errors(text: str) -> None:
    try:
        result = parse_script(text)
    except CommerceQLError as error:
        assert "internal parser error" not in error.message, (text, error.render())
        error.render()  # rendering never fails either
    else:
        assert isinstance(result, list)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=120))
def test_fuzz_random_text(text: str) -> None:
    _check_only_commerceql_errors(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(TOKENS), max_size=25).map(" ".join))
def test_fuzz_random_token_soup(text: str) -> None:
    _check_only_commerceql_errors(text)


@st.composite
def mutated_queries(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(VALID))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "delete", "replace", "token"]))
        if action == "insert":
            text = text[:position] + draw(st.text(min_size=1, max_size=3)) + text[position:]
        elif action == "delete":
            end = draw(st.integers(position, min(len(text), position + 12)))
            text = text[:position] + text[end:]
        elif action == "replace":
            text = text[:position] + draw(st.characters()) + text[position + 1 :]
        else:
            text = text[:position] + " " + draw(st.sampled_from(TOKENS)) + " " + text[position:]
    return text


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_queries())
def test_fuzz_mutated_valid_queries(text: str) -> None:
    _check_only_commerceql_errors(text)
