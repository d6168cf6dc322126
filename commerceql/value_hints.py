"""Explaining empty answers: a filter value that no row has.

`=` and `IN` compare text exactly, case included (as SQL does, and as ShopifyQL's examples
rely on: `sales_channel = 'Online Store'`); `CONTAINS`, `STARTS WITH` and `ENDS WITH` ignore case.
When a query's answer is empty and an `=` / `IN` value of a text dimension matches no value
that exists, the result carries a notice naming the closest existing values, so
`sales_channel = 'online store'` is not just a silent $0. It works on every table (account
fields and derived relations included) and every engine: the values are listed with the
store's own engine. A dimension with too many values to list (customer names) is searched for
the same text in another case instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl

from commerceql import ast
from commerceql.errors import closest_names
from commerceql.model.semantic import Table
from commerceql.plan import QueryPlan

# A dimension with more distinct values than this is not listed (no notice for it).
MAX_LISTED_VALUES = 5000

DistinctValues = Callable[[Table, str], "list[str] | None"]
# The values of a dimension equal to a text when case is ignored (None: cannot tell), for
# dimensions with too many values to list (customer names, order names).
CaseInsensitiveLookup = Callable[[Table, str, str], "list[str] | None"]


@dataclass(frozen=True)
class EqualityFilter:
    table: Table
    dimension: str
    value: str


def equality_filters(plan: QueryPlan) -> Iterator[EqualityFilter]:
    """Every `text_dimension = 'value'` and `text_dimension IN ('a', ...)` of the plan's WHERE."""

    def walk(condition: ast.Condition) -> Iterator[tuple[ast.Identifier, ast.StringLiteral]]:
        if isinstance(condition, ast.Comparison) and condition.operator == "=":
            for field, value in ((condition.left, condition.right), (condition.right, condition.left)):
                if isinstance(field, ast.Identifier) and isinstance(value, ast.StringLiteral):
                    yield field, value
        elif isinstance(condition, ast.InList) and not condition.negated and isinstance(condition.operand, ast.Identifier):
            for value in condition.values:
                if isinstance(value, ast.StringLiteral):
                    yield condition.operand, value
        elif isinstance(condition, ast.Logical):
            for operand in condition.operands:
                yield from walk(operand)

    if plan.where is None:
        return
    seen: set[tuple[str, str]] = set()
    for field, value in walk(plan.where):
        for table in plan.tables:
            dimension = table.dimensions.get(field.name)
            if dimension is None or dimension.type != "string" or (field.name, value.value) in seen:
                continue
            seen.add((field.name, value.value))
            yield EqualityFilter(table, field.name, value.value)
            break


def is_empty_answer(frame: pl.DataFrame, metric_columns: list[str]) -> bool:
    """No rows, or every metric of every row is 0 or NULL."""
    if frame.height == 0:
        return True
    for name in metric_columns:
        if name not in frame.columns:
            continue
        column = frame[name]
        if column.dtype == pl.String:
            return False
        if column.null_count() < frame.height and bool((column.fill_null(0) != 0).any()):
            return False
    return True


def unmatched_value_notices(
    plan: QueryPlan, distinct_values: DistinctValues, lookup: CaseInsensitiveLookup | None = None
) -> list[str]:
    """Notices for `=` / `IN` values that no row has, with the closest values that exist.

    A dimension with more than MAX_LISTED_VALUES values is not listed: `lookup` finds the values
    equal to the filter's when case is ignored, which names a wrong-case value (`'abigail black'`)
    and says that a misspelt one exists nowhere.
    """
    notices = []
    for found in equality_filters(plan):
        values = distinct_values(found.table, found.dimension)
        if values is None:
            matches = lookup(found.table, found.dimension, found.value) if lookup is not None else None
            if matches is None or found.value in matches:
                continue
            text = f"no row has {found.dimension} = '{found.value}'"
            if matches:
                listed = ", ".join(f"'{v}'" for v in matches)
                text += f"; values that exist: {listed} (= matches text exactly, case included; CONTAINS ignores case)"
            else:
                text += f" ({found.dimension} has too many values to suggest the closest; CONTAINS finds part of one)"
            notices.append(text)
            continue
        if found.value in values:
            continue
        same_but_case = [v for v in values if v.lower() == found.value.lower()]
        suggestions = same_but_case or closest_names(found.value, values)
        text = f"no row has {found.dimension} = '{found.value}'"
        if suggestions:
            listed = ", ".join(f"'{v}'" for v in suggestions)
            text += f"; values that exist: {listed}"
        if same_but_case:
            text += " (= matches text exactly, case included; CONTAINS ignores case)"
        elif not suggestions and len(values) <= 12:
            text += "; its values are " + ", ".join(f"'{v}'" for v in sorted(values))
        notices.append(text)
    return notices
