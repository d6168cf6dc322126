"""Walks over the syntax tree shared by the resolver and the compiler (so neither imports the other)."""

from __future__ import annotations

from collections.abc import Iterator

from commerceql import ast


def condition_leaves(condition: ast.Condition) -> Iterator[ast.Condition]:
    if isinstance(condition, ast.Logical):
        for operand in condition.operands:
            yield from condition_leaves(operand)
    elif isinstance(condition, ast.Not):
        yield from condition_leaves(condition.operand)
    else:
        yield condition


def identifiers(expression: ast.Expression) -> Iterator[ast.Identifier]:
    """Every name an expression refers to, in order."""
    if isinstance(expression, ast.Identifier):
        yield expression
    elif isinstance(expression, ast.BinaryOperation):
        yield from identifiers(expression.left)
        yield from identifiers(expression.right)
    elif isinstance(expression, ast.Negation):
        yield from identifiers(expression.operand)
    elif isinstance(expression, ast.FunctionCall):
        for argument in expression.arguments:
            yield from identifiers(argument)


def condition_operands(condition: ast.Condition) -> Iterator[ast.Expression]:
    """Every value expression in a condition tree."""
    if isinstance(condition, ast.Comparison):
        yield condition.left
        yield condition.right
    elif isinstance(condition, ast.InList):
        yield condition.operand
        yield from condition.values
    elif isinstance(condition, ast.Between):
        yield condition.operand
        yield condition.low
        yield condition.high
    elif isinstance(condition, ast.StringMatch):
        yield condition.operand
        yield condition.value
    elif isinstance(condition, (ast.IsTest, ast.BareCondition)):
        yield condition.operand
    elif isinstance(condition, ast.Not):
        yield from condition_operands(condition.operand)
    elif isinstance(condition, ast.Logical):
        for operand in condition.operands:
            yield from condition_operands(operand)


def condition_names(condition: ast.Condition) -> list[str]:
    """The field names a condition refers to, each once, in order."""
    names: list[str] = []
    for operand in condition_operands(condition):
        for identifier in identifiers(operand):
            if identifier.name not in names:
                names.append(identifier.name)
    return names
