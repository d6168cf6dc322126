"""Syntax tree to canonical text, and Python values to CommerceQL literals.

`format_query(q)` writes a query in Shopify's layout: `FROM` at column 0, every other clause on its
own line indented by two spaces, `VISUALIZE` last at column 0, in the canonical order

    FROM, SHOW, WHERE, GROUP BY, TIMESERIES, HAVING, SINCE/UNTIL/DURING, COMPARE TO, WITH,
    ORDER BY, LIMIT, VISUALIZE

with keywords in upper case, the minimal parentheses that keep the tree, and safe quoting. For any
parsed query `parse(format_query(q)) == q` (spans and source do not take part in equality).

`format_value(v)` renders a Python value as a literal that parses back to exactly that value,
whatever it contains (quotes, `--`, `;`, newlines): it is what `{var}` interpolation uses.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from commerceql import ast
from commerceql.parser import is_bare_identifier

__all__ = ["format_condition", "format_date", "format_expression", "format_query", "format_value"]

INDENT = "  "


# ---------------------------------------------------------------------------------------------
# Literals
# ---------------------------------------------------------------------------------------------


def quote_string(value: str) -> str:
    """A single-quoted value; a quote inside is doubled."""
    return "'" + value.replace("'", "''") + "'"


def format_identifier(identifier: ast.Identifier) -> str:
    """A name as written: bare when it can be, else double-quoted (`""` for a quote inside)."""
    name = identifier.name
    if not identifier.quoted and is_bare_identifier(name):
        return name
    if "\n" in name or "\r" in name:
        raise ValueError(f"a name cannot contain a line break: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def _format_name(name: str) -> str:
    if not is_bare_identifier(name):
        raise ValueError(f"{name!r} is not a valid CommerceQL name")
    return name


def _format_number(value: int | float | Decimal) -> str:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{value} cannot be written as a CommerceQL number")
        value = Decimal(repr(value))
    if not value.is_finite():
        raise ValueError(f"{value} cannot be written as a CommerceQL number")
    return format(value, "f")


def _format_datetime(value: dt.date | dt.datetime) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ValueError(
                "a date-time with a time zone cannot be written; use a naive one and WITH TIMEZONE"
            )
        if value.year < 1000:
            raise ValueError(f"{value} cannot be written as a CommerceQL date")
        timespec = "microseconds" if value.microsecond else "seconds"
        return value.isoformat(timespec=timespec)
    if value.year < 1000:
        raise ValueError(f"{value} cannot be written as a CommerceQL date")
    return value.isoformat()


def format_value(value: Any) -> str:
    """A Python value as a CommerceQL literal that parses back to exactly that value.

    str -> 'text' (quotes doubled; newlines, `--` and `;` stay inside the literal),
    int / float / Decimal -> number, bool -> true / false, None -> null,
    date / datetime -> 2025-01-31 / 2025-01-31T14:00:00 (naive only),
    list / tuple / set / frozenset -> ('a', 'b') for IN (not empty, not nested).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | Decimal):
        return _format_number(value)
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, dt.date):
        return _format_datetime(value)
    if isinstance(value, list | tuple | set | frozenset):
        items = list(value)
        if isinstance(value, set | frozenset):
            try:
                items = sorted(items)
            except TypeError:
                pass
        if not items:
            raise ValueError("an empty list cannot be written (IN needs at least one value)")
        if any(isinstance(item, list | tuple | set | frozenset | dict) for item in items):
            raise ValueError("lists of lists cannot be written")
        return "(" + ", ".join(format_value(item) for item in items) + ")"
    raise TypeError(f"cannot write a {type(value).__name__} as a CommerceQL value")


# ---------------------------------------------------------------------------------------------
# Expressions and conditions
# ---------------------------------------------------------------------------------------------

_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_UNARY = 3
_ATOM = 4


def _expression_precedence(node: ast.Expression) -> int:
    if isinstance(node, ast.BinaryOperation):
        return _PRECEDENCE[node.operator]
    if isinstance(node, ast.Negation):
        return _UNARY
    if isinstance(node, ast.NumberLiteral) and node.value < 0:
        return _UNARY
    return _ATOM


def format_expression(node: ast.Expression) -> str:
    """A value expression with the fewest parentheses that keep its tree."""
    if isinstance(node, ast.Identifier):
        return format_identifier(node)
    if isinstance(node, ast.NumberLiteral):
        return _format_number(node.value)
    if isinstance(node, ast.StringLiteral):
        return quote_string(node.value)
    if isinstance(node, ast.BooleanLiteral):
        return "true" if node.value else "false"
    if isinstance(node, ast.NullLiteral):
        return "null"
    if isinstance(node, ast.DateLiteral):
        return _format_datetime(node.value)
    if isinstance(node, ast.FunctionCall):
        return _format_name(node.name) + "(" + ", ".join(format_expression(a) for a in node.arguments) + ")"
    if isinstance(node, ast.Negation):
        operand = format_expression(node.operand)
        # A negated number is written -(5): `-5` would read back as the number minus five, and
        # `--` would start a comment.
        if _expression_precedence(node.operand) < _ATOM or isinstance(node.operand, ast.NumberLiteral):
            operand = f"({operand})"
        return "-" + operand
    if isinstance(node, ast.BinaryOperation):
        level = _PRECEDENCE[node.operator]
        left = format_expression(node.left)
        if _expression_precedence(node.left) < level:
            left = f"({left})"
        right = format_expression(node.right)
        # Left-associative: an equal-precedence right operand needs parentheses (a - (b - c)).
        if _expression_precedence(node.right) <= level:
            right = f"({right})"
        return f"{left} {node.operator} {right}"
    if isinstance(node, ast.DateOffset):  # not an Expression, but tolerate it
        return format_date(node)
    if isinstance(node, ast.RelativeDate):  # `-90d`, `startOfMonth(-1m)` compared with a date field
        return format_date(node.date)
    raise TypeError(f"not an expression: {type(node).__name__}")


_CONDITION_PRECEDENCE = {"or": 1, "and": 2}


def _condition_precedence(node: ast.Condition) -> int:
    if isinstance(node, ast.Logical):
        return _CONDITION_PRECEDENCE[node.operator]
    if isinstance(node, ast.Not):
        return 3
    return 4


def format_condition(node: ast.Condition) -> str:
    """A WHERE / HAVING condition (AND binds tighter than OR; NOT tighter than both)."""
    if isinstance(node, ast.Logical):
        level = _CONDITION_PRECEDENCE[node.operator]
        parts = []
        for operand in node.operands:
            text = format_condition(operand)
            # A nested chain of the same operator keeps its parentheses, so the tree is kept.
            if _condition_precedence(operand) <= level:
                text = f"({text})"
            parts.append(text)
        return f" {node.operator.upper()} ".join(parts)
    if isinstance(node, ast.Not):
        operand = format_condition(node.operand)
        if _condition_precedence(node.operand) < 3:
            operand = f"({operand})"
        return f"NOT {operand}"
    if isinstance(node, ast.Comparison):
        return f"{format_expression(node.left)} {node.operator} {format_expression(node.right)}"
    if isinstance(node, ast.InList):
        values = ", ".join(format_expression(v) for v in node.values)
        return f"{format_expression(node.operand)} {'NOT ' if node.negated else ''}IN ({values})"
    if isinstance(node, ast.Between):
        return (
            f"{format_expression(node.operand)} {'NOT ' if node.negated else ''}BETWEEN "
            f"{format_expression(node.low)} AND {format_expression(node.high)}"
        )
    if isinstance(node, ast.StringMatch):
        keyword = {"starts_with": "STARTS WITH", "ends_with": "ENDS WITH", "contains": "CONTAINS"}[node.kind]
        return f"{format_expression(node.operand)} {'NOT ' if node.negated else ''}{keyword} {format_expression(node.value)}"
    if isinstance(node, ast.IsTest):
        return f"{format_expression(node.operand)} IS {'NOT ' if node.negated else ''}{node.test.upper()}"
    if isinstance(node, ast.BareCondition):
        return format_expression(node.operand)
    if isinstance(node, ast.Matches):
        parameters = ", ".join(f"{p.name} {p.operator} {format_expression(p.value)}" for p in node.parameters)
        return f"{format_expression(node.subject)} {'NOT ' if node.negated else ''}MATCHES ({parameters})"
    raise TypeError(f"not a condition: {type(node).__name__}")


# ---------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------


def format_date(node: ast.DateExpression) -> str:
    if isinstance(node, ast.DateOffset):
        if node.amount < 0:
            return f"{node.amount}{node.unit}"
        if node.amount == 0:
            return f"0{node.unit}"
        return f"+{node.amount}{node.unit}"
    if isinstance(node, ast.AbsoluteDate):
        return _format_datetime(node.value)
    if isinstance(node, ast.NamedDate):
        return _format_name(node.name)
    if isinstance(node, ast.DateFunction):
        argument = "" if node.argument is None else format_date(node.argument)
        return f"{_format_name(node.name)}({argument})"
    raise TypeError(f"not a date expression: {type(node).__name__}")


def _format_compare_target(target: ast.CompareTarget) -> str:
    if target.operator is not None:
        text = _format_name(target.operator)
    elif target.start is not None:
        text = format_date(target.start)
    else:
        raise ValueError("a COMPARE TO target needs an operator or a start date")
    if target.until is not None:
        text += f" UNTIL {format_date(target.until)}"
    return text


# ---------------------------------------------------------------------------------------------
# Clauses and queries
# ---------------------------------------------------------------------------------------------


def _format_show_item(item: ast.ShowItem) -> str:
    text = format_expression(item.expression)
    if item.alias is not None:
        text += f" AS {format_identifier(item.alias)}"
    return text


def _format_group_item(item: ast.GroupItem) -> str:
    if item.function is not None:  # bucket(order_total, 0, 100), month(customer_first_order_date)
        text = format_expression(item.function)
        return text + (f" AS {format_identifier(item.alias)}" if item.alias is not None else "")
    dimension = format_identifier(item.dimension)
    if item.top is None:
        if item.only or item.overall:
            raise ValueError("ONLY and OVERALL need TOP n")
        return dimension
    text = f"{'ONLY ' if item.only else ''}TOP {item.top} {dimension}"
    return text + (" OVERALL" if item.overall else "")


def _format_modifier(modifier: ast.WithModifier) -> str:
    name = modifier.name.upper()
    if modifier.argument is None:
        return name
    return f"{name} {quote_string(modifier.argument)}"


def _format_visualize(visualize: ast.Visualize) -> str:
    items = []
    for item in visualize.items:
        text = format_expression(item.expression)
        if item.chart_type is not None:
            text += f" TYPE {_format_name(item.chart_type.name)}"
        items.append(text)
    text = "VISUALIZE " + ", ".join(items)
    if visualize.max_points is not None:
        text += f" MAX {visualize.max_points}"
    return text


def _join(items: Iterable[str]) -> str:
    return ", ".join(items)


def format_query(q: ast.Query) -> str:
    """The canonical multi-line text of a query (no trailing newline or `;`)."""
    if not q.tables:
        raise ValueError("a query needs at least one table")
    lines = [("FROM ORGANIZATION " if q.organization else "FROM ") + _join(_format_name(t.name) for t in q.tables)]
    clauses: list[str] = []
    if q.show:
        clauses.append("SHOW " + _join(_format_show_item(i) for i in q.show))
    if q.where is not None:
        clauses.append("WHERE " + format_condition(q.where))
    if q.group_by:
        clauses.append("GROUP BY " + _join(_format_group_item(i) for i in q.group_by))
    if q.timeseries is not None:
        clauses.append("TIMESERIES " + _format_name(q.timeseries.name))
    if q.having is not None:
        clauses.append("HAVING " + format_condition(q.having))
    if q.during is not None:
        clauses.append("DURING " + format_date(q.during))
    period = []
    if q.since is not None:
        period.append("SINCE " + format_date(q.since))
    if q.until is not None:
        period.append("UNTIL " + format_date(q.until))
    if period:
        clauses.append(" ".join(period))
    if q.compare_to:
        clauses.append("COMPARE TO " + _join(_format_compare_target(t) for t in q.compare_to))
    if q.with_modifiers:
        clauses.append("WITH " + _join(_format_modifier(m) for m in q.with_modifiers))
    if q.order_by:
        clauses.append(
            "ORDER BY "
            + _join(format_identifier(i.column) + (" DESC" if i.descending else "") for i in q.order_by)
        )
    if q.limit is not None:
        clauses.append(f"LIMIT {q.limit}" + (f" OFFSET {q.offset}" if q.offset is not None else ""))
    elif q.offset is not None:
        raise ValueError("OFFSET needs LIMIT")
    lines.extend(INDENT + clause for clause in clauses)
    if q.visualize is not None:
        lines.append(_format_visualize(q.visualize))
    return "\n".join(lines)
