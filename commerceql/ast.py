"""Typed syntax tree of a CommerceQL query.

The parser (`commerceql.parser`) turns text into these frozen dataclasses; the resolver
(`commerceql.resolver`) checks them against the semantic model; the formatter
(`commerceql.formatter`) turns them back into canonical text, which is how the widgets rewrite a
query without string editing.

Every node carries a `span` pointing into the source text so that later stages can report errors
with a line, a column and a caret. Spans never take part in equality, so two queries that differ
only in layout compare equal.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal, TypeAlias


@dataclass(frozen=True)
class Span:
    """A region of the source text. Lines and columns are 1-based; positions are 0-based offsets."""

    line: int
    column: int
    end_line: int
    end_column: int
    start_pos: int
    end_pos: int


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# Value expressions (SHOW items, operands of WHERE / HAVING conditions)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Identifier:
    """A name from the semantic model or an alias: `net_sales`, `product_title`, `"Net Sales"`.

    `quoted` is true for a double-quoted name, which is only legal as an alias or a reference to one.
    """

    name: str
    quoted: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class NumberLiteral:
    value: int | Decimal
    span: Span | None = _span()


@dataclass(frozen=True)
class StringLiteral:
    value: str
    span: Span | None = _span()


@dataclass(frozen=True)
class BooleanLiteral:
    value: bool
    span: Span | None = _span()


@dataclass(frozen=True)
class NullLiteral:
    span: Span | None = _span()


@dataclass(frozen=True)
class DateLiteral:
    """An unquoted `2025-01-31` or `2025-01-31T14:00:00` used as a value (e.g. in WHERE)."""

    value: dt.date | dt.datetime
    span: Span | None = _span()
    # The relative date it was written as (`-90d`), when the resolver computed it from one.
    written_as: str | None = None


@dataclass(frozen=True)
class BinaryOperation:
    """Arithmetic over metrics: `net_sales + shipping_charges`, `(a - b) / orders`."""

    operator: Literal["+", "-", "*", "/"]
    left: Expression
    right: Expression
    span: Span | None = _span()


@dataclass(frozen=True)
class Negation:
    operand: Expression
    span: Span | None = _span()


@dataclass(frozen=True)
class FunctionCall:
    """A call such as `sum(net_sales)` (the older generation's aggregate wrappers).

    Kept in the tree so that the resolver can answer with a helpful error instead of the parser
    failing on an unexpected `(`.
    """

    name: str
    arguments: tuple[Expression, ...]
    span: Span | None = _span()


Literal_: TypeAlias = NumberLiteral | StringLiteral | BooleanLiteral | NullLiteral | DateLiteral
Expression: TypeAlias = Identifier | Literal_ | BinaryOperation | Negation | FunctionCall


# ---------------------------------------------------------------------------------------------
# Conditions (WHERE, HAVING)
# ---------------------------------------------------------------------------------------------

ComparisonOperator: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True)
class Comparison:
    operator: ComparisonOperator
    left: Expression
    right: Expression
    span: Span | None = _span()


@dataclass(frozen=True)
class InList:
    operand: Expression
    values: tuple[Expression, ...]
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class Between:
    operand: Expression
    low: Expression
    high: Expression
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class StringMatch:
    """`STARTS WITH`, `ENDS WITH`, `[NOT] CONTAINS` (CONTAINS also tests array membership)."""

    operand: Expression
    kind: Literal["starts_with", "ends_with", "contains"]
    value: Expression
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class IsTest:
    """`IS [NOT] NULL | TRUE | FALSE`."""

    operand: Expression
    test: Literal["null", "true", "false"]
    negated: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class Not:
    operand: Condition
    span: Span | None = _span()


@dataclass(frozen=True)
class Logical:
    """`a AND b AND c` or `a OR b`; nested for mixed operators, AND binding tighter than OR."""

    operator: Literal["and", "or"]
    operands: tuple[Condition, ...]
    span: Span | None = _span()


@dataclass(frozen=True)
class BareCondition:
    """A boolean dimension used on its own as a condition: `WHERE is_b2b`."""

    operand: Expression
    span: Span | None = _span()


@dataclass(frozen=True)
class MatchesParameter:
    """One `name <op> value` of a MATCHES list: `date > -90d`, `count_at_least = 2`."""

    name: str
    operator: ComparisonOperator
    value: Expression
    span: Span | None = _span()


@dataclass(frozen=True)
class Matches:
    """ShopifyQL's semi-join on related records: `orders_placed MATCHES (sum_amount > 1000, date > -365d)`."""

    subject: Identifier  # orders_placed | products_purchased
    parameters: tuple[MatchesParameter, ...]
    negated: bool = False
    span: Span | None = _span()


Condition: TypeAlias = Comparison | InList | Between | StringMatch | IsTest | Not | Logical | BareCondition | Matches


# ---------------------------------------------------------------------------------------------
# Dates (SINCE, UNTIL, DURING, COMPARE TO)
# ---------------------------------------------------------------------------------------------

OffsetUnit: TypeAlias = Literal["s", "min", "h", "d", "w", "m", "q", "y"]


@dataclass(frozen=True)
class DateOffset:
    """A relative offset such as `-30d` or `-3m` (`m` is months; minutes are `min`). `0m` is allowed."""

    amount: int
    unit: OffsetUnit
    span: Span | None = _span()


@dataclass(frozen=True)
class AbsoluteDate:
    """`2025-01-01` (a date) or `2025-01-01T14:00:00` (a datetime), unquoted."""

    value: dt.date | dt.datetime
    span: Span | None = _span()


@dataclass(frozen=True)
class NamedDate:
    """`now`, `today`, `yesterday`, `this_month`, `last_quarter`, `bfcm2024`, ... (lower case)."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class DateFunction:
    """`startOfMonth(-1m)`, `endOfQuarter(-3q)`, `startOfDay()`; `name` keeps its camelCase spelling."""

    name: str
    argument: DateOffset | None = None
    span: Span | None = _span()


DateExpression: TypeAlias = DateOffset | AbsoluteDate | NamedDate | DateFunction


@dataclass(frozen=True)
class RelativeDate:
    """A date relative to today used as a value in a condition: `-90d`, `startOfMonth(-1m)`.

    The resolver turns it into a `DateLiteral` (see `dates.relative_date_value`).
    """

    date: DateOffset | DateFunction
    span: Span | None = _span()


@dataclass(frozen=True)
class CompareTarget:
    """One comparison of `COMPARE TO`.

    Either a relative operator (`previous_period`, `previous_year`, `previous_year_match_day_of_week`,
    `previous_month`, ...) held in `operator`, or an explicit `start` date expression with an
    optional `until` end.
    """

    operator: str | None = None
    start: DateExpression | None = None
    until: DateExpression | None = None
    span: Span | None = _span()


# ---------------------------------------------------------------------------------------------
# Clauses
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShowItem:
    expression: Expression
    alias: Identifier | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class VisualizeItem:
    expression: Expression
    chart_type: Identifier | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Visualize:
    items: tuple[VisualizeItem, ...]
    max_points: int | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class GroupItem:
    """A `GROUP BY` entry: a dimension, `[ONLY] TOP n dimension [OVERALL]`, or a computed one.

    A computed dimension is a `function` call over a field, `bucket(order_total, 0, 100, 250)` or
    `month(customer_first_order_date)` (commerceql.calculations), with an optional `alias`;
    `dimension` is then the call's first argument, the field it reads.
    """

    dimension: Identifier
    top: int | None = None
    only: bool = False
    overall: bool = False
    span: Span | None = _span()
    function: FunctionCall | None = None
    alias: Identifier | None = None


@dataclass(frozen=True)
class OrderItem:
    column: Identifier
    descending: bool = False
    span: Span | None = _span()


@dataclass(frozen=True)
class WithModifier:
    """`TOTALS`, `GROUP_TOTALS`, `PERCENT_CHANGE`, `CUMULATIVE_VALUES`, `CURRENCY 'EUR'`, `TIMEZONE 'Europe/Paris'`.

    `name` is upper case; `argument` is the quoted value for CURRENCY and TIMEZONE.
    """

    name: str
    argument: str | None = None
    span: Span | None = _span()


@dataclass(frozen=True)
class Query:
    tables: tuple[Identifier, ...]
    show: tuple[ShowItem, ...] = ()
    visualize: Visualize | None = None
    where: Condition | None = None
    group_by: tuple[GroupItem, ...] = ()
    timeseries: Identifier | None = None
    having: Condition | None = None
    since: DateExpression | None = None
    until: DateExpression | None = None
    during: NamedDate | None = None
    compare_to: tuple[CompareTarget, ...] = ()
    with_modifiers: tuple[WithModifier, ...] = ()
    order_by: tuple[OrderItem, ...] = ()
    limit: int | None = None
    offset: int | None = None
    span: Span | None = _span()
    source: str = field(default="", compare=False, repr=False)
    # What the parser says about older spellings it accepted (`BY`, `OVER`, `GROUP BY month ALL`).
    notices: tuple[str, ...] = field(default=(), compare=False, repr=False)
    # Written `FROM ORGANIZATION ...`: every shop of the store (an organization store has several).
    organization: bool = False
