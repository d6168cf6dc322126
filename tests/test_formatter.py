"""The formatter: canonical layout, round trips, minimal parentheses, and safe value literals."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commerceql import ast
from commerceql.ast import (
    BareCondition,
    BinaryOperation,
    BooleanLiteral,
    Comparison,
    DateLiteral,
    Identifier,
    InList,
    Logical,
    Negation,
    Not,
    NullLiteral,
    NumberLiteral,
    ShowItem,
    StringLiteral,
)
from commerceql.formatter import format_condition, format_expression, format_query, format_value
from commerceql.parser import RESERVED_WORDS, parse

I = Identifier  # noqa: E741


def round_trip(text: str) -> str:
    query = parse(text)
    formatted = format_query(query)
    assert parse(formatted) == query, formatted
    assert format_query(parse(formatted)) == formatted  # idempotent
    return formatted


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------


def test_canonical_layout_and_clause_order() -> None:
    text = (
        "visualize net_sales type line, orders max 12 limit 100 offset 5 order by net_sales desc "
        "with totals, currency 'EUR' compare to previous_year until today since -12m "
        "having net_sales > 10 timeseries month group by top 5 product_title overall "
        "where billing_country = 'Canada' show net_sales as \"Net Sales\", orders from sales"
    )
    assert round_trip(text) == (
        "FROM sales\n"
        '  SHOW net_sales AS "Net Sales", orders\n'
        "  WHERE billing_country = 'Canada'\n"
        "  GROUP BY TOP 5 product_title OVERALL\n"
        "  TIMESERIES month\n"
        "  HAVING net_sales > 10\n"
        "  SINCE -12m UNTIL today\n"
        "  COMPARE TO previous_year\n"
        "  WITH TOTALS, CURRENCY 'EUR'\n"
        "  ORDER BY net_sales DESC\n"
        "  LIMIT 100 OFFSET 5\n"
        "VISUALIZE net_sales TYPE line, orders MAX 12"
    )


def test_layout_of_minimal_and_visualize_only_queries() -> None:
    assert round_trip("from sales show x") == "FROM sales\n  SHOW x"
    assert (
        round_trip("FROM sales VISUALIZE orders TIMESERIES day")
        == "FROM sales\n  TIMESERIES day\nVISUALIZE orders"
    )
    assert (
        round_trip("FROM sales, sessions SHOW x DURING bfcm2024")
        == "FROM sales, sessions\n  SHOW x\n  DURING bfcm2024"
    )


def test_dates_and_comparisons() -> None:
    assert round_trip(
        "FROM sales SHOW x SINCE startOfMonth(-1m) UNTIL endOfMonth(-1m) "
        "COMPARE TO 2023-01-01 UNTIL 2023-01-31T23:59:59, last_week, +1d, startOfDay(), TARGETS"
    ).splitlines()[2:] == [
        "  SINCE startOfMonth(-1m) UNTIL endOfMonth(-1m)",
        "  COMPARE TO 2023-01-01 UNTIL 2023-01-31T23:59:59, last_week, +1d, startOfDay(), targets",
    ]
    assert round_trip("FROM sales SHOW x SINCE 0m UNTIL -15min").endswith("SINCE 0m UNTIL -15min")


def test_conditions_and_keywords_are_canonical() -> None:
    formatted = round_trip(
        "from sales show x where a <> 1 and b not in ('x', 'y') or not c is not null "
        "and d not between 1 and 2 and e not contains 'z' and f starts with 'g' and h ends with 'i' and j"
    )
    assert formatted.splitlines()[2] == (
        "  WHERE a != 1 AND b NOT IN ('x', 'y') OR NOT c IS NOT NULL AND d NOT BETWEEN 1 AND 2 "
        "AND e NOT CONTAINS 'z' AND f STARTS WITH 'g' AND h ENDS WITH 'i' AND j"
    )


# ---------------------------------------------------------------------------------------------
# Minimal parentheses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a + b * c", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a - b) - c", "a - b - c"),
        ("a / (b * c)", "a / (b * c)"),
        ("(a / b) * c", "a / b * c"),
        ("a + (b + c)", "a + (b + c)"),
        ("-(a + b)", "-(a + b)"),
        ("-a * b", "-a * b"),
        ("-(-a)", "-(-a)"),
        ("a - -1", "a - -1"),
        ("-1 * a", "-1 * a"),
        ("((a))", "a"),
        ("sum(a + b) / count()", "sum(a + b) / count()"),
        ("2.50 * x", "2.50 * x"),
    ],
)
def test_expression_parentheses(text: str, expected: str) -> None:
    (item,) = parse(f"FROM sales SHOW {text}").show
    assert format_expression(item.expression) == expected
    round_trip(f"FROM sales SHOW {text}")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a OR b AND c", "a OR b AND c"),
        ("(a OR b) AND c", "(a OR b) AND c"),
        ("a AND (b OR c) AND d", "a AND (b OR c) AND d"),
        ("NOT (a AND b)", "NOT (a AND b)"),
        ("NOT a AND b", "NOT a AND b"),
        ("(a AND b) OR (c AND d)", "a AND b OR c AND d"),
        ("((a = 1))", "a = 1"),
        ("(a + 1) * 2 > b", "(a + 1) * 2 > b"),
    ],
)
def test_condition_parentheses(text: str, expected: str) -> None:
    where = parse(f"FROM sales SHOW x WHERE {text}").where
    assert format_condition(where) == expected


def test_hand_built_trees_keep_their_shape() -> None:
    # Shapes the parser never produces still format to text that means the same thing.
    nested_and = Logical(
        "and", (BareCondition(I("a")), Logical("and", (BareCondition(I("b")), BareCondition(I("c")))))
    )
    assert format_condition(nested_and) == "a AND (b AND c)"
    assert format_expression(Negation(NumberLiteral(5))) == "-(5)"
    assert format_expression(Negation(Negation(I("x")))) == "-(-x)"


# ---------------------------------------------------------------------------------------------
# Round trips of a variety of queries
# ---------------------------------------------------------------------------------------------

QUERIES = [
    "FROM sales SHOW net_sales",
    'FROM sales SHOW net_sales AS "Net ""quoted"" sales" ORDER BY "Net ""quoted"" sales" DESC',
    "FROM sales SHOW sum(net_sales) AS total, count() WHERE a = 'it''s' AND b = 'line\nbreak'",
    "FROM sales SHOW x WHERE a IN (1, -2, 2.5, 'x', true, null, 2025-01-01) AND b IS TRUE",
    "FROM sales SHOW x WHERE d >= 2025-01-31T14:05:06.123 AND e = 2025-01-31T14:05",
    "FROM sales SHOW x GROUP BY ONLY TOP 3 a, TOP 2 b OVERALL, c WITH GROUP_TOTALS",
    "FROM sales SHOW x TIMESERIES day WITH CUMULATIVE_VALUES, TIMEZONE 'Europe/Paris' DURING last_month",
    "FROM sales VISUALIZE a TYPE bar, b MAX 3",
    "FROM sales SHOW x SINCE -30d COMPARE TO previous_period UNTIL today",
    'FROM sales SHOW x WHERE is_b2b AND NOT (a OR b) HAVING "x y" > 1 AND x < 2',
    "FROM sales SHOW product.metafields.custom.color GROUP BY product.metafields.custom.color",
    "FROM sales SHOW Net_Sales TIMESERIES DAY LIMIT 0",
    "FROM sales SHOW x WHERE a = '' AND b = '--' AND c = ';' AND d = '/* x */'",
]


@pytest.mark.parametrize("text", QUERIES)
def test_round_trip(text: str) -> None:
    round_trip(text)


# ---------------------------------------------------------------------------------------------
# Property: random trees format to text that parses back to the same tree
# ---------------------------------------------------------------------------------------------

names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda n: n not in RESERVED_WORDS)
aliases = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=10).filter(str.strip)
numbers = st.one_of(
    st.integers(-(10**12), 10**12),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6),
)
leaves = st.one_of(
    names.map(Identifier),
    aliases.map(lambda a: Identifier(a, quoted=True)),
    numbers.map(NumberLiteral),
    st.text(max_size=8).map(StringLiteral),
    st.booleans().map(BooleanLiteral),
    st.just(NullLiteral()),
    st.dates(min_value=dt.date(1000, 1, 1)).map(DateLiteral),
)


def _negate(expression: ast.Expression) -> ast.Expression:
    # The parser reads `-5` as the number minus five, never as Negation(5).
    if isinstance(expression, NumberLiteral):
        return NumberLiteral(-expression.value)
    return Negation(expression)


expressions = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(BinaryOperation, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
        inner.map(_negate),
        st.builds(lambda n, args: ast.FunctionCall(n, tuple(args)), names, st.lists(inner, max_size=2)),
    ),
    max_leaves=12,
)


def _flatten(operator: str, operands: list[ast.Condition]) -> ast.Condition:
    flat: list[ast.Condition] = []
    for operand in operands:
        if isinstance(operand, Logical) and operand.operator == operator:
            flat.extend(operand.operands)
        else:
            flat.append(operand)
    return Logical(operator, tuple(flat))  # type: ignore[arg-type]


predicates = st.one_of(
    st.builds(Comparison, st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), expressions, expressions),
    st.builds(
        lambda o, v, n: InList(o, tuple(v), n),
        expressions,
        st.lists(expressions, min_size=1, max_size=3),
        st.booleans(),
    ),
    st.builds(ast.Between, expressions, expressions, expressions, st.booleans()),
    st.builds(
        ast.StringMatch,
        expressions,
        st.sampled_from(["starts_with", "ends_with", "contains"]),
        expressions,
        st.booleans(),
    ),
    st.builds(ast.IsTest, expressions, st.sampled_from(["null", "true", "false"]), st.booleans()),
    expressions.map(BareCondition),
)
conditions = st.recursive(
    predicates,
    lambda inner: st.one_of(
        inner.map(Not),
        st.builds(_flatten, st.sampled_from(["and", "or"]), st.lists(inner, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expressions, conditions)
def test_random_trees_round_trip(expression: ast.Expression, condition: ast.Condition) -> None:
    query = ast.Query(tables=(Identifier("sales"),), show=(ShowItem(expression),), having=condition)
    formatted = format_query(query)
    assert parse(formatted) == query, formatted


# ---------------------------------------------------------------------------------------------
# format_value: safe literals for {var} interpolation
# ---------------------------------------------------------------------------------------------


def _value_in_where(literal: str) -> ast.Expression:
    query = parse(f"FROM sales SHOW net_sales WHERE billing_region = {literal}")
    assert isinstance(query.where, Comparison)
    return query.where.right


@pytest.mark.parametrize(
    "value",
    [
        "Wholesale",
        "Levi's",
        "'; DROP TABLE sales; --",
        "a -- comment\nSINCE -1d",
        "x' OR '1'='1",
        "/* not a comment */",
        'double "quotes"',
        "back\\slash\\",
        "new\nline\r\nand\ttab",
        "",
        "''",
        "é ü 中文 🙂",
        "'",
    ],
)
def test_hostile_strings_stay_one_literal(value: str) -> None:
    assert _value_in_where(format_value(value)) == StringLiteral(value)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_any_string_stays_one_literal(value: str) -> None:
    assert _value_in_where(format_value(value)) == StringLiteral(value)


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**30), 10**30))
def test_any_integer_round_trips(value: int) -> None:
    assert _value_in_where(format_value(value)) == NumberLiteral(value)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, width=64))
def test_any_float_round_trips_exactly(value: float) -> None:
    literal = format_value(value)
    parsed = _value_in_where(literal)
    assert isinstance(parsed, NumberLiteral)
    assert float(parsed.value) == value


def test_scalar_values() -> None:
    assert format_value(None) == "null"
    assert format_value(True) == "true" and format_value(False) == "false"
    assert _value_in_where(format_value(True)) == BooleanLiteral(True)
    assert _value_in_where(format_value(None)) == NullLiteral()
    assert format_value(42) == "42" and format_value(-7) == "-7"
    assert _value_in_where(format_value(-7)) == NumberLiteral(-7)
    assert format_value(Decimal("1.50")) == "1.50"
    assert format_value(Decimal("1E+3")) == "1000"
    assert format_value(1e-7) == "0.0000001"
    assert _value_in_where(format_value(Decimal("-0.25"))) == NumberLiteral(Decimal("-0.25"))


def test_dates_and_datetimes() -> None:
    assert format_value(dt.date(2025, 1, 31)) == "2025-01-31"
    assert format_value(dt.datetime(2025, 1, 31, 14, 5)) == "2025-01-31T14:05:00"
    micro = dt.datetime(2025, 1, 31, 14, 5, 6, 789)
    assert _value_in_where(format_value(micro)) == DateLiteral(micro)
    assert _value_in_where(format_value(dt.date(2025, 1, 31))) == DateLiteral(dt.date(2025, 1, 31))


def test_lists_for_in() -> None:
    values = ["a'b", 1, Decimal("2.5"), None, True, dt.date(2025, 1, 1)]
    query = parse(f"FROM sales SHOW x WHERE billing_region IN {format_value(values)}")
    assert query.where == InList(
        Identifier("billing_region"),
        (
            StringLiteral("a'b"),
            NumberLiteral(1),
            NumberLiteral(Decimal("2.5")),
            NullLiteral(),
            BooleanLiteral(True),
            DateLiteral(dt.date(2025, 1, 1)),
        ),
    )
    assert format_value(("x",)) == "('x')"
    assert format_value({"b", "a"}) == "('a', 'b')"


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        (Decimal("NaN"), ValueError),
        ([], ValueError),
        ([[1]], ValueError),
        (dt.datetime(2025, 1, 1, tzinfo=dt.UTC), ValueError),
        (object(), TypeError),
        ({"a": 1}, TypeError),
        (b"bytes", TypeError),
    ],
)
def test_values_that_cannot_be_written(value: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        format_value(value)


def test_formatter_rejects_unrepresentable_trees() -> None:
    with pytest.raises(ValueError):
        format_query(ast.Query(tables=(Identifier("sales"),), show=(ShowItem(Identifier("x")),), offset=3))
    with pytest.raises(ValueError):
        format_query(ast.Query(tables=(Identifier("not a name"),)))
    with pytest.raises(ValueError):
        format_query(ast.Query(tables=()))
