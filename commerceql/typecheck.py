"""Type checking of WHERE and HAVING conditions, before any SQL exists.

Every operand gets a value class (number, text, true/false, date, list, null) from the model's
types and the literal's form; every operator checks the classes it is given. A mismatch is a
positioned `CommerceQLSemanticError` saying what each side is and what to write instead, so it
never reaches the database as an engine error without a position.
"""

from __future__ import annotations

from collections.abc import Callable

from commerceql import ast
from commerceql.errors import CommerceQLSemanticError

# Model and result types -> value class.
_CLASS_OF_TYPE = {
    "string": "text",
    "number": "number",
    "integer": "number",
    "money": "number",
    "count": "number",
    "percent": "number",
    "duration": "number",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "date",
    "array": "list",
    # time grains used as fields compare with dates
    "second": "date",
    "minute": "date",
    "hour": "date",
    "day": "date",
    "week": "date",
    "month": "date",
    "quarter": "date",
    "year": "date",
}
_WORDS = {
    "text": "text",
    "number": "a number",
    "boolean": "true or false",
    "date": "a date",
    "list": "a list",
    "null": "NULL",
}

TypeOf = Callable[[ast.Identifier], "str | None"]


def value_class(expression: ast.Expression, type_of: TypeOf, source: str) -> str | None:
    """The value class of an operand, or None when it cannot be known (no check then)."""
    if isinstance(expression, ast.Identifier):
        found = type_of(expression)
        return None if found is None else _CLASS_OF_TYPE.get(found)
    if isinstance(expression, ast.StringLiteral):
        return "text"
    if isinstance(expression, ast.NumberLiteral):
        return "number"
    if isinstance(expression, ast.BooleanLiteral):
        return "boolean"
    if isinstance(expression, ast.NullLiteral):
        return "null"
    if isinstance(expression, ast.DateLiteral):
        return "date"
    if isinstance(expression, ast.Negation):
        inner = value_class(expression.operand, type_of, source)
        _require_number(expression.operand, inner, "`-`", source)
        return "number"
    if isinstance(expression, ast.BinaryOperation):
        for side in (expression.left, expression.right):
            _require_number(side, value_class(side, type_of, source), f"`{expression.operator}`", source)
        return "number"
    return None


def _describe(expression: ast.Expression, klass: str) -> str:
    if isinstance(expression, ast.Identifier):
        return f"`{expression.name}` is {_WORDS[klass]}"
    if isinstance(expression, ast.StringLiteral):
        return f"'{expression.value}' is text"
    if isinstance(expression, ast.DateLiteral):
        if expression.written_as:
            return f"{expression.written_as} is a date ({expression.value})"
        return f"{expression.value} is a date"
    if isinstance(expression, ast.NumberLiteral):
        return f"{expression.value} is a number"
    if isinstance(expression, ast.BooleanLiteral):
        return f"{str(expression.value).lower()} is true or false"
    return f"the value is {_WORDS[klass]}"


def _error(message: str, node: object, source: str, hint: str | None = None) -> CommerceQLSemanticError:
    return CommerceQLSemanticError(message, span=getattr(node, "span", None), source=source, hint=hint)


def _require_number(expression: ast.Expression, klass: str | None, operator: str, source: str) -> None:
    if klass in (None, "number"):
        return
    raise _error(
        f"{operator} works on numbers, but {_describe(expression, klass)}",
        expression,
        source,
        hint="arithmetic applies to numeric fields such as prices and quantities",
    )


def _literal_hint(field: ast.Expression, field_class: str, other: ast.Expression) -> str | None:
    name = field.name if isinstance(field, ast.Identifier) else "the field"
    if isinstance(other, ast.DateLiteral) and other.written_as:
        return f"a relative date such as {other.written_as} compares with date fields, such as first or last order dates"
    if field_class == "text":
        if isinstance(other, ast.DateLiteral):
            return f"quote the value to compare text: '{other.value}'"
        if isinstance(other, ast.NumberLiteral):
            return f"quote the value: '{other.value}'"
        if isinstance(other, ast.BooleanLiteral):
            return f"quote the value: '{str(other.value).lower()}'"
    if field_class == "number" and isinstance(other, ast.StringLiteral):
        return "write the number without quotes"
    if field_class == "boolean":
        return f"write `{name} = true`, `{name} IS FALSE` or just `{name}`"
    if field_class == "date" and isinstance(other, ast.StringLiteral):
        return "write the date without quotes, for example 2025-01-31"
    if field_class == "date" and isinstance(other, (ast.NumberLiteral, ast.BinaryOperation, ast.Negation)):
        # `today - 90`: there is no date arithmetic; an offset is itself a date.
        return (
            f"compare with a date: 2025-01-31, an offset from today such as `{name} < -90d` "
            "(more than 90 days ago), or a date function such as startOfMonth(-1m)"
        )
    if field_class == "list":
        return f"test list members with CONTAINS: `{name} CONTAINS 'value'`"
    return None


def _compatible(left: str | None, right: str | None) -> bool:
    return left is None or right is None or left == right or "null" in (left, right)


def _check_pair(left: ast.Expression, right: ast.Expression, type_of: TypeOf, source: str, what: str) -> tuple[str | None, str | None]:
    left_class = value_class(left, type_of, source)
    right_class = value_class(right, type_of, source)
    if "list" in (left_class, right_class):
        field = left if left_class == "list" else right
        raise _error(
            f"`{getattr(field, 'name', 'this field')}` is a list, so it cannot be compared with {what}",
            field,
            source,
            hint=_literal_hint(field, "list", right if field is left else left),
        )
    if not _compatible(left_class, right_class):
        assert left_class is not None and right_class is not None
        field, other = (left, right) if isinstance(left, ast.Identifier) else (right, left)
        field_class = left_class if field is left else right_class
        raise _error(
            f"{_describe(left, left_class)}, but {_describe(right, right_class)}: they cannot be compared",
            other,
            source,
            hint=_literal_hint(field, field_class, other),
        )
    return left_class, right_class


def check_condition(condition: ast.Condition, type_of: TypeOf, source: str) -> None:
    """Raise a positioned error for the first operand or operator whose types do not fit."""
    if isinstance(condition, ast.Comparison):
        left_class, right_class = _check_pair(condition.left, condition.right, type_of, source, condition.operator)
        if condition.operator in ("<", ">", "<=", ">=") and "boolean" in (left_class, right_class):
            raise _error(
                f"`{condition.operator}` orders values, and true/false has no order",
                condition,
                source,
                hint="use = or !=",
            )
        return
    if isinstance(condition, ast.InList):
        for item in condition.values:
            _check_pair(condition.operand, item, type_of, source, "a list of values")
        return
    if isinstance(condition, ast.Between):
        _check_pair(condition.operand, condition.low, type_of, source, "BETWEEN")
        operand_class, _ = _check_pair(condition.operand, condition.high, type_of, source, "BETWEEN")
        if operand_class == "boolean":
            raise _error("BETWEEN needs values with an order, and true/false has none", condition, source)
        return
    if isinstance(condition, ast.StringMatch):
        words = {"starts_with": "STARTS WITH", "ends_with": "ENDS WITH", "contains": "CONTAINS"}[condition.kind]
        operand_class = value_class(condition.operand, type_of, source)
        needle_class = value_class(condition.value, type_of, source)
        if operand_class == "list" and condition.kind != "contains":
            raise _error(
                f"`{getattr(condition.operand, 'name', 'this field')}` is a list; only CONTAINS applies to it",
                condition.operand,
                source,
                hint=f"write `{getattr(condition.operand, 'name', 'field')} CONTAINS 'value'`",
            )
        if operand_class not in (None, "text", "list"):
            raise _error(
                f"{words} matches text, but {_describe(condition.operand, operand_class or 'null')}",
                condition.operand,
                source,
                hint="compare it with = or IN instead",
            )
        if needle_class not in (None, "text") and operand_class != "list":
            raise _error(
                f"{words} needs text to look for, but {_describe(condition.value, needle_class)}",
                condition.value,
                source,
                hint="quote the value",
            )
        return
    if isinstance(condition, ast.IsTest):
        operand_class = value_class(condition.operand, type_of, source)
        if condition.test in ("true", "false") and operand_class not in (None, "boolean"):
            raise _error(
                f"IS {condition.test.upper()} tests true/false fields, but {_describe(condition.operand, operand_class)}",
                condition,
                source,
                hint="use IS NULL, or compare with = ",
            )
        return
    if isinstance(condition, ast.BareCondition):
        operand_class = value_class(condition.operand, type_of, source)
        if operand_class not in (None, "boolean"):
            name = getattr(condition.operand, "name", None)
            raise _error(
                f"a condition must be true or false, but {_describe(condition.operand, operand_class)}",
                condition.operand,
                source,
                hint=f"compare it with a value, for example `{name} = '...'`" if name and operand_class == "text"
                else "compare it with a value",
            )
        return
    if isinstance(condition, ast.Not):
        check_condition(condition.operand, type_of, source)
        return
    if isinstance(condition, ast.Logical):
        for operand in condition.operands:
            check_condition(operand, type_of, source)
