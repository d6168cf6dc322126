"""ShopifyQL's MATCHES: keep rows whose customer has related records meeting conditions.

    FROM customers SHOW customer_email WHERE orders_placed MATCHES (count_at_least = 2, date > -365d)

A MATCHES names a subject (the related records: `orders_placed`, `products_purchased`) and a list
of parameters. Row parameters (`date`, `amount`, `id`, `category`) choose which records count;
aggregate parameters (`count`, `count_at_least`, `count_at_most`, `sum_amount`, `sum_quantity`)
test what those records add up to per customer. Without an aggregate parameter a customer matches
with at least one such record. A customer with no record at all has a count and sums of 0, so
`count_at_most = 1` includes customers who never ordered. `NOT MATCHES` is the complement. Orders
are the customer's non-test orders placed at or before the store's clock, as everywhere in the
account fields (docs/segments.md).

`SUBJECTS` is the data the resolver checks a MATCHES against and the compiler writes SQL from; the
SQL templates here are trusted code, and every value is a bound parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from commerceql import ast


@dataclass(frozen=True)
class MatchesParameterSpec:
    role: str  # "row" (which records count) or "aggregate" (what they add up to)
    value_type: str  # date | number | integer | string
    sql: str  # over the subject's aliases; `local_date(...)` is the model macro
    fixed_operator: str | None = None  # count_at_least = 2 means COUNT >= 2
    description: str = ""


@dataclass(frozen=True)
class MatchesSubject:
    description: str
    source: str  # FROM ... of the records, aliases o (orders), li (line items), p (products)
    parameters: dict[str, MatchesParameterSpec]
    unavailable: dict[str, str] = field(default_factory=dict)


_ORDER_DATE = MatchesParameterSpec("row", "date", "local_date(o.created_at)",
                                   description="the order date (store time zone)")
_COUNT = MatchesParameterSpec("aggregate", "integer", "COUNT(DISTINCT o.order_id)", description="number of orders")
_AT_LEAST = MatchesParameterSpec("aggregate", "integer", "COUNT(DISTINCT o.order_id)", ">=",
                                 "at least this many orders")
_AT_MOST = MatchesParameterSpec("aggregate", "integer", "COUNT(DISTINCT o.order_id)", "<=",
                                "at most this many orders")

SUBJECTS: dict[str, MatchesSubject] = {
    "orders_placed": MatchesSubject(
        description="the customer's orders",
        source="{orders} AS o",
        parameters={
            "date": _ORDER_DATE,
            "amount": MatchesParameterSpec("row", "number", "o.total", description="an order's total"),
            "count": _COUNT,
            "count_at_least": _AT_LEAST,
            "count_at_most": _AT_MOST,
            "sum_amount": MatchesParameterSpec("aggregate", "number", "COALESCE(SUM(o.total), 0)",
                                               description="the orders' totals added up"),
        },
        unavailable={"location_id": "orders carry no location in CommerceQL stores",
                     "app_id": "orders carry no app id in CommerceQL stores"},
    ),
    "products_purchased": MatchesSubject(
        description="the order lines of the customer's orders",
        source="{orders} AS o JOIN {line_items} AS li ON li.order_id = o.order_id "
        "LEFT JOIN {products} AS p ON p.product_id = li.product_id",
        parameters={
            "id": MatchesParameterSpec("row", "integer", "li.product_id", description="the product's id"),
            "category": MatchesParameterSpec("row", "string", "p.product_type",
                                             description="the product type"),
            "date": _ORDER_DATE,
            "count": _COUNT,
            "count_at_least": _AT_LEAST,
            "count_at_most": _AT_MOST,
            "sum_quantity": MatchesParameterSpec("aggregate", "integer", "COALESCE(SUM(li.quantity), 0)",
                                                 description="units bought"),
        },
        unavailable={"tag": "products carry no tags in CommerceQL stores; use category (the product type) or id"},
    ),
}

_VALUE_CLASSES = {"date": (ast.DateLiteral,), "number": (ast.NumberLiteral,), "integer": (ast.NumberLiteral,),
                  "string": (ast.StringLiteral,)}


def parameter_problem(subject: MatchesSubject, parameter: ast.MatchesParameter) -> tuple[str, str] | None:
    """(message, hint) when a parameter does not fit its subject, else None."""
    spec = subject.parameters.get(parameter.name)
    if spec is None:
        reason = subject.unavailable.get(parameter.name)
        if reason is not None:
            return f"MATCHES parameter `{parameter.name}` has no data here: {reason}", ""
        return (f"unknown MATCHES parameter `{parameter.name}`",
                f"parameters: {', '.join(subject.parameters)}")
    if spec.fixed_operator is not None and parameter.operator != "=":
        return (f"`{parameter.name}` takes `=` (it already means {spec.fixed_operator})",
                f"write `{parameter.name} = {_shown(parameter.value)}`")
    if spec.value_type == "string" and parameter.operator not in ("=", "!="):
        return f"`{parameter.name}` is text: compare it with = or !=", ""
    value = parameter.value
    if isinstance(value, ast.Negation) and isinstance(value.operand, ast.NumberLiteral):
        return f"`{parameter.name}` cannot be negative", ""
    if not isinstance(value, _VALUE_CLASSES[spec.value_type]):
        example = {"date": "2025-01-01 or -90d", "number": "1000", "integer": "2", "string": "'Cable'"}[spec.value_type]
        return f"`{parameter.name}` ({spec.description}) needs a {spec.value_type} value", f"for example {example}"
    if spec.value_type == "integer" and value.value != int(value.value):  # type: ignore[union-attr]
        return f"`{parameter.name}` needs a whole number", ""
    return None


def _shown(value: ast.Expression) -> str:
    return str(getattr(value, "value", "…"))
