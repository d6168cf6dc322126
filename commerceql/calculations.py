"""Calculations ShopifyQL lacks: window columns, ad-hoc aggregates and computed dimensions.

Three families (docs/language.md, "Beyond ShopifyQL"):

* Window columns in SHOW, each over one metric (or arithmetic of metrics) of the query:
  `rolling_avg(net_sales, 7)`, `rolling_sum(net_sales, 3)` (the window counts buckets of the time
  grain, on the gap-filled calendar, reading the buckets before the reporting period so the first
  rows are complete), `running_total(net_sales)`, `mtd(...)` / `qtd(...)` / `ytd(...)` (the
  running total within each month / quarter / year, from the period's start even when the
  reporting period starts later), and `rank(net_sales)` (standard competition rank, 1 = highest,
  within each value of the grouped dimensions but the last).
* Ad-hoc aggregates over a dimension: `count_distinct(company_id)`, `median(x)`,
  `percentile(x, 0.9)`, `min(x)`, `max(x)`, `avg(x)`. Each becomes a metric of the query's table
  (not additive), so totals, group totals, comparisons and TOP treat it like a model metric.
* Computed GROUP BY dimensions: `bucket(x, 0, 100, 250, 1000)` (numeric bands, sorted by band) of
  a numeric dimension or of an additive metric's value per order, and `day/week/month/quarter/year`
  of a date dimension.

The resolver plans these with the functions here; the compiler writes their SQL with
`time_window_ctes` and `rank_sql`. Nothing here imports the resolver or the compiler.
"""

from __future__ import annotations

from collections.abc import Callable, MutableSequence
from dataclasses import replace
from decimal import Decimal
from typing import Any, Protocol

from commerceql import ast
from commerceql import dates as dates_module
from commerceql.errors import CommerceQLNameError, CommerceQLSemanticError, did_you_mean
from commerceql.model.semantic import Dimension, Join, Metric, Table
from commerceql.plan import PlannedDimension, PlannedMetric, QueryPlan, WindowCalculation

ROLLING_FUNCTIONS = ("rolling_avg", "rolling_sum")
PERIOD_TO_DATE = {"mtd": "month", "qtd": "quarter", "ytd": "year"}
WINDOW_FUNCTIONS = (*ROLLING_FUNCTIONS, "running_total", *PERIOD_TO_DATE, "rank")
AGGREGATE_FUNCTIONS = ("count_distinct", "median", "percentile", "min", "max", "avg")
DATE_PART_FUNCTIONS = ("day", "week", "month", "quarter", "year")
GROUP_FUNCTIONS = ("bucket", *DATE_PART_FUNCTIONS)
# The functions SHOW accepts (completion offers them).
SHOW_FUNCTIONS = (*WINDOW_FUNCTIONS, *AGGREGATE_FUNCTIONS)
# What completion shows next to each function.
FUNCTION_SIGNATURES = {
    "rolling_avg": "rolling_avg(metric, n): average over the n periods up to each row (TIMESERIES)",
    "rolling_sum": "rolling_sum(metric, n): sum over the n periods up to each row (TIMESERIES)",
    "running_total": "running_total(metric): running total over the reporting period",
    "mtd": "mtd(metric): month to date, the running total within each month",
    "qtd": "qtd(metric): quarter to date, the running total within each quarter",
    "ytd": "ytd(metric): year to date, the running total within each year",
    "rank": "rank(metric): 1 = highest, within each value of the other grouped dimensions",
    "count_distinct": "count_distinct(dimension): how many distinct values",
    "median": "median(numeric dimension)",
    "percentile": "percentile(numeric dimension, 0.9)",
    "min": "min(numeric dimension)",
    "max": "max(numeric dimension)",
    "avg": "avg(numeric dimension)",
    "bucket": "bucket(field, 0, 100, 250): numeric bands 0–100, 100–250, 250+",
}
MAX_ROLLING_BUCKETS = 1000
NUMERIC_TYPES = ("integer", "number", "money")
# Rows a table's own metrics leave out, which an ad-hoc aggregate leaves out too (test orders).
ROW_FILTERS = {"orders": "NOT orders.is_test", "draft_orders": "NOT draft_orders.is_test"}
# Tables whose rows are orders: an aggregate of a metric there is over the orders' own values
# (median(order_total): the median order). Elsewhere an order has many rows, which would weigh it.
ORDER_TABLES = ("orders",)
# The relation of a metric's value per order (joined as `order_value__<metric>`, a CTE).
ORDER_VALUE_PREFIX = "order_value__"
# The time grains, finest first (a period-to-date needs a grain finer than its period).
_GRAIN_ORDER = dates_module.TIME_GRAINS
_DATE_GRAINS = ("day", "week", "month", "quarter", "year")


def _error(cls: type, message: str, node: object, source: str, hint: str | None = None) -> Exception:
    return cls(message, span=getattr(node, "span", None), source=source, hint=hint)


def _text(expression: ast.Expression) -> str:
    from commerceql.formatter import format_expression

    return format_expression(expression)


def _number(expression: ast.Expression) -> int | Decimal | None:
    """The value of a number literal, written plainly or negated (`-5`)."""
    if isinstance(expression, ast.NumberLiteral):
        return expression.value
    if isinstance(expression, ast.Negation) and isinstance(expression.operand, ast.NumberLiteral):
        return -expression.operand.value
    return None


def _plain(value: int | Decimal) -> str:
    text = format(value, "f") if isinstance(value, Decimal) else str(value)
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


# ---------------------------------------------------------------------------------------------
# Window columns (SHOW)
# ---------------------------------------------------------------------------------------------


def is_window_call(expression: ast.Expression) -> bool:
    return isinstance(expression, ast.FunctionCall) and expression.name.lower() in WINDOW_FUNCTIONS


def plan_window(
    item: ast.ShowItem,
    plan_inner: Callable[[ast.Expression, ast.Identifier], PlannedMetric],
    source: str,
) -> PlannedMetric:
    """The SHOW column of `rolling_avg(net_sales, 7)` and its kin, over the planned inner metric."""
    call = item.expression
    assert isinstance(call, ast.FunctionCall)
    function = call.name.lower()
    rolling = function in ROLLING_FUNCTIONS
    wanted = 2 if rolling else 1
    usage = f"{function}(net_sales, 7)" if rolling else f"{function}(net_sales)"
    if len(call.arguments) != wanted:
        raise _error(
            CommerceQLSemanticError,
            f"`{function}()` takes {'a metric and a number of periods' if rolling else 'one metric'}, "
            f"not {len(call.arguments)} argument{'s' if len(call.arguments) != 1 else ''}",
            call, source, hint=f"write e.g. `{usage}`",
        )
    size: int | None = None
    if rolling:
        count = _number(call.arguments[1])
        if not isinstance(count, int) or not 1 <= count <= MAX_ROLLING_BUCKETS:
            raise _error(
                CommerceQLSemanticError,
                f"the window of `{function}()` is a whole number of periods from 1 to {MAX_ROLLING_BUCKETS}",
                call.arguments[1], source,
                hint=f"write e.g. `{function}({_text(call.arguments[0])}, 7)`: the 7 periods of the "
                "TIMESERIES grain up to each row",
            )
        size = count
    inner_expression = call.arguments[0]
    for nested in _calls(inner_expression):
        if nested.name.lower() in WINDOW_FUNCTIONS:
            raise _error(CommerceQLSemanticError, f"`{nested.name}()` cannot be nested in `{function}()`",
                         nested, source, hint="show each window calculation as a column of its own")
    default = _default_name(function, inner_expression, size)
    inner = plan_inner(inner_expression, ast.Identifier(default, span=call.span))
    if inner.references:
        raise _error(
            CommerceQLSemanticError,
            f"`{function}()` reads the query's own metrics, not generated columns such as "
            f"`{inner.references[0].column}`",
            call, source, hint=f"apply `{function}()` to a metric: `{usage}`",
        )
    if function != "rank" and not inner.additive:
        what = "a rolling sum or average" if rolling else "a running total"
        raise _error(
            CommerceQLSemanticError,
            f"`{_text(inner_expression)}` is a "
            f"ratio or a distinct count, not a sum of its periods, so {what} of it would add up ratios",
            call.arguments[0], source,
            hint=f"apply `{function}()` to a metric that is a sum of its periods, such as net_sales",
        )
    kind = "period_to_date" if function in PERIOD_TO_DATE else function
    if function == "rank":
        value_type = "integer"
    elif function == "rolling_avg" and inner.type == "count":
        value_type = "number"
    else:
        value_type = inner.type
    name = item.alias.name if item.alias is not None else default
    return replace(
        inner,
        name=name,
        type=value_type,
        additive=False,
        description=_description(function, inner.name if isinstance(inner_expression, ast.Identifier)
                                  else _text(inner_expression), size),
        display_name=item.alias.name if item.alias is not None else None,
        calculation=WindowCalculation(kind, function, size=size, period=PERIOD_TO_DATE.get(function),
                                      span=call.span),
    )


def _calls(expression: ast.Expression) -> list[ast.FunctionCall]:
    if isinstance(expression, ast.FunctionCall):
        return [expression, *(c for a in expression.arguments for c in _calls(a))]
    if isinstance(expression, ast.BinaryOperation):
        return _calls(expression.left) + _calls(expression.right)
    if isinstance(expression, ast.Negation):
        return _calls(expression.operand)
    return []


def _default_name(function: str, inner: ast.Expression, size: int | None) -> str:
    base = inner.name if isinstance(inner, ast.Identifier) else "value"
    return f"{function}_{base}" + (f"_{size}" if size is not None else "")


def _description(function: str, inner: str, size: int | None) -> str:
    if function == "rolling_avg":
        return f"Average of {inner} over the {size} periods up to this one (periods without data count as 0)"
    if function == "rolling_sum":
        return f"Sum of {inner} over the {size} periods up to this one"
    if function == "running_total":
        return f"Running total of {inner} from the start of the reporting period"
    if function in PERIOD_TO_DATE:
        return f"{inner} from the start of this row's {PERIOD_TO_DATE[function]} up to this period"
    return f"Rank of {inner} (1 = highest) among the rows with the same other dimensions"


def check_windows(plan: QueryPlan, source: str) -> None:
    """Refuse window columns the query cannot answer, each at its function call."""
    if plan.conversion is not None:
        # Order values and aggregates of a money dimension are read in the shop's currency.
        adhoc_money = [m for t in plan.tables for m in t.metrics.values()
                       if m.type == "money" and m.formula is not None and m.formula.endswith(" over the rows")]
        per_order = any(j.relation.startswith(ORDER_VALUE_PREFIX) for t in plan.tables for j in t.joins.values())
        if adhoc_money or per_order:
            raise _error(
                CommerceQLSemanticError,
                "bands and aggregates of money per order or of a money dimension are in the shop's currency, "
                "and WITH CURRENCY converts each row at its day's rate",
                next(m for m in plan.query.with_modifiers if m.name == "CURRENCY"), source,
                hint="remove WITH CURRENCY for this query",
            )
    grain = plan.time_dimension
    for metric in plan.metrics:
        calculation = metric.calculation
        if calculation is None:
            continue
        function = calculation.function
        node = calculation
        if plan.comparisons:
            raise _error(
                CommerceQLSemanticError,
                f"`{function}()` is computed over the reporting period's rows and has no comparison period",
                node, source,
                hint=f"remove COMPARE TO, or compare the plain metric in a query without `{function}()`",
            )
        if calculation.kind == "rank":
            continue
        if grain is None or (calculation.kind in ROLLING_FUNCTIONS and plan.timeseries != grain.source_name):
            rolling = calculation.kind in ROLLING_FUNCTIONS
            raise _error(
                CommerceQLSemanticError,
                f"`{function}()` runs over the periods of a "
                + ("TIMESERIES, and this query has none" if rolling else "time grain, and this query groups by none"),
                node, source,
                hint="add `TIMESERIES day` (or week, month ...)" if rolling
                else "add `TIMESERIES day` (or GROUP BY month ...)",
            )
        if calculation.period is not None and _GRAIN_ORDER.index(grain.source_name) >= _GRAIN_ORDER.index(
            calculation.period
        ):
            finer = [g for g in ("day", "week", "month", "quarter") if _GRAIN_ORDER.index(g) < _GRAIN_ORDER.index(
                calculation.period)]
            raise _error(
                CommerceQLSemanticError,
                f"`{function}()` accumulates within each {calculation.period}, and this query's periods are "
                f"{grain.source_name}s",
                node, source, hint=f"use a finer grain: `TIMESERIES {finer[0]}` (or {', '.join(finer[1:])})",
            )
        if any(d.top is not None for d in plan.dimensions):
            raise _error(
                CommerceQLSemanticError,
                f"`{function}()` follows each grouped value over time, and TOP folds values into `Other`",
                node, source, hint="remove TOP, or filter the values with WHERE",
            )
        if len(plan.tables) > 1:
            raise _error(CommerceQLSemanticError, f"`{function}()` reads one table; this query has several",
                         node, source, hint="query one table at a time")


# ---------------------------------------------------------------------------------------------
# Ad-hoc aggregates (SHOW)
# ---------------------------------------------------------------------------------------------


def rewrite_aggregates(expression: ast.Expression, tables: MutableSequence[Table], source: str) -> ast.Expression:
    """`expression` with every ad-hoc aggregate call made a metric name, its metric added to its table.

    `tables` (the query's FROM tables) is updated in place: the table gets the metric
    `count_distinct_company_id` (or `median_order_total` ...), which every later stage reads as
    any model metric.
    """
    if isinstance(expression, ast.BinaryOperation):
        return replace(expression, left=rewrite_aggregates(expression.left, tables, source),
                       right=rewrite_aggregates(expression.right, tables, source))
    if isinstance(expression, ast.Negation):
        return replace(expression, operand=rewrite_aggregates(expression.operand, tables, source))
    if not isinstance(expression, ast.FunctionCall):
        return expression
    function = expression.name.lower()
    if function in WINDOW_FUNCTIONS:
        raise _error(
            CommerceQLSemanticError,
            f"`{expression.name}()` is a column of its own in SHOW, not part of an expression",
            expression, source,
            hint=f"show `{_text(expression)} AS name` as a separate column",
        )
    if function not in AGGREGATE_FUNCTIONS:
        return expression  # the resolver says what it is not
    return _adhoc_metric(expression, function, tables, source)


def _adhoc_metric(
    call: ast.FunctionCall, function: str, tables: MutableSequence[Table], source: str
) -> ast.Expression:
    wanted = 2 if function == "percentile" else 1
    usage = "percentile(order_total_value, 0.9)" if function == "percentile" else f"{function}(dimension)"
    if len(call.arguments) != wanted or not isinstance(call.arguments[0], ast.Identifier):
        raise _error(
            CommerceQLSemanticError,
            f"`{function}()` takes {'a dimension and a fraction' if wanted == 2 else 'one dimension'}",
            call, source, hint=f"write e.g. `{usage.replace('order_total_value', 'days_past_due')}`",
        )
    argument = call.arguments[0]
    assert isinstance(argument, ast.Identifier)
    field = argument.name
    holders = [t for t in tables if field in t.dimensions]
    if not holders:
        metric_table = next((t for t in tables if t.metric(field) is not None), None)
        metric = metric_table.metric(field) if metric_table is not None else None
        if metric_table is not None and metric is not None and function != "count_distinct" and (
            metric_table.name in ORDER_TABLES and metric.additive and "order_id" in metric_table.dimensions
        ):
            # median(order_total) on orders: over each order's own value.
            home, value_sql = _order_value(metric_table, metric.name)
            tables[tables.index(metric_table)] = home
            dimension = Dimension(field, value_sql, metric.type if metric.type == "money" else "number",
                                  f"{field} of each order")
            return _aggregate(call, function, field, dimension, home, tables, source, per_order=True)
        if metric_table is not None:
            # avg(net_sales) elsewhere: the resolver's answer for aggregate wrappers of a metric.
            return call
        names = [n for t in tables for n in t.dimensions]
        raise _error(
            CommerceQLNameError, f"unknown dimension `{field}` in table {', '.join(f'`{t.name}`' for t in tables)}",
            argument, source,
            hint=did_you_mean(field, names) or f"run `schema {tables[0].name}` to list the dimensions",
        )
    table = holders[0]
    return _aggregate(call, function, field, table.dimensions[field], table, tables, source, per_order=False)


def _aggregate(
    call: ast.FunctionCall, function: str, field: str, dimension: Dimension, table: Table,
    tables: MutableSequence[Table], source: str, *, per_order: bool,
) -> ast.Identifier:
    argument = call.arguments[0]
    fraction: int | Decimal | None = None
    if function == "percentile":
        fraction = _number(call.arguments[1])
        if fraction is None or not 0 <= fraction <= 1:
            raise _error(
                CommerceQLSemanticError,
                "the percentile is a fraction from 0 to 1",
                call.arguments[1], source,
                hint=f"write `percentile({field}, 0.9)` for the 90th percentile",
            )
    if function == "count_distinct":
        if dimension.type == "array":
            raise _error(CommerceQLSemanticError, f"`{field}` holds a list of values, which cannot be counted "
                         "distinctly", argument, source, hint="count a dimension with one value per row")
        value_type = "count"
    else:
        if dimension.type not in NUMERIC_TYPES or field.endswith("_id"):
            what = "an identifier" if field.endswith("_id") else f"a {dimension.type} dimension"
            raise _error(
                CommerceQLSemanticError,
                f"`{function}()` needs a numeric dimension, and `{field}` is {what}",
                argument, source,
                hint=f"count its values with `count_distinct({field})`",
            )
        # The smallest or largest of whole numbers is a whole number (shown without decimals).
        whole = function in ("min", "max") and dimension.type == "integer"
        value_type = "money" if dimension.type == "money" else "count" if whole else "number"
    value = f"({dimension.sql})"
    row_filter = ROW_FILTERS.get(table.name)
    if row_filter is not None and _column_exists(table, row_filter):
        value = f"CASE WHEN {row_filter} THEN {value} END"
    if function == "count_distinct":
        sql = f"COUNT(DISTINCT {value})"
    elif function == "median":
        sql = f"quantile_of(CAST({value} AS DOUBLE), 0.5)"
    elif function == "percentile":
        sql = f"quantile_of(CAST({value} AS DOUBLE), {_plain(fraction)})"  # type: ignore[arg-type]
    elif function == "avg":
        sql = f"AVG(CAST({value} AS DOUBLE))"
    else:
        sql = f"{function.upper()}({value})"
    name = (
        f"p{_plain(fraction * 100).replace('.', '_')}_{field}"  # type: ignore[operator]
        if function == "percentile" else f"{function}_{field}"
    )
    described = {
        "count_distinct": f"Number of distinct values of {field}",
        "median": f"Median of {field}",
        "percentile": f"{_plain(fraction * 100)}th percentile of {field}" if fraction is not None else "",
        "min": f"Smallest {field}",
        "max": f"Largest {field}",
        "avg": f"Average of {field}",
    }[function] + (" per order" if per_order else "")
    existing = table.metrics.get(name)
    if existing is None or existing.sql != sql:
        if existing is not None:  # a model metric of that name: keep it, name ours apart
            name = f"{name}_of_rows"
        metric = Metric(name=name, sql=sql, type=value_type, description=described + (
            " (test orders excluded)" if row_filter else ""), formula=f"{_text(call)} over the rows")
        tables[tables.index(table)] = replace(table, metrics={**table.metrics, name: metric})
    return ast.Identifier(name, span=call.span)


def _column_exists(table: Table, row_filter: str) -> bool:
    """True when the filter's column is one of the table's (a store's own model may lack it)."""
    column = row_filter.removeprefix("NOT ").split(".", 1)[1]
    return any(column in d.sql for d in table.dimensions.values())


# ---------------------------------------------------------------------------------------------
# Computed dimensions (GROUP BY)
# ---------------------------------------------------------------------------------------------


def plan_group_function(item: ast.GroupItem, tables: MutableSequence[Table], source: str) -> PlannedDimension:
    """`bucket(x, 0, 100, 250)` or `month(date_dimension)`: a dimension added to x's table."""
    call = item.function
    assert call is not None
    function = call.name.lower()
    if function not in GROUP_FUNCTIONS:
        raise _error(
            CommerceQLNameError, f"`{call.name}()` is not a GROUP BY function",
            call, source,
            hint=did_you_mean(function, GROUP_FUNCTIONS)
            or "GROUP BY takes bucket(field, bounds ...) and day / week / month / quarter / year(date field)",
        )
    if not call.arguments or not isinstance(call.arguments[0], ast.Identifier):
        raise _error(CommerceQLSemanticError, f"`{function}()` takes a field first", call, source,
                     hint="write e.g. `bucket(order_total, 0, 100, 250, 1000)`" if function == "bucket"
                     else f"write e.g. `{function}(customer_first_order_date)`")
    argument = call.arguments[0]
    assert isinstance(argument, ast.Identifier)
    field = argument.name
    table = next((t for t in tables if field in t.dimensions), None)
    metric_table = next((t for t in tables if t.metric(field) is not None), None) if table is None else None
    if table is None and metric_table is None:
        names = [n for t in tables for n in (*t.dimensions, *t.metrics)]
        raise _error(CommerceQLNameError, f"unknown field `{field}` in table {', '.join(f'`{t.name}`' for t in tables)}",
                     argument, source, hint=did_you_mean(field, names) or f"run `schema {tables[0].name}`")
    if function == "bucket":
        return _plan_bucket(item, call, field, table, metric_table, tables, source)
    if table is None:
        raise _error(CommerceQLSemanticError, f"`{function}()` groups a date dimension, and `{field}` is a metric",
                     argument, source, hint=f"group the query's own dates with `GROUP BY {function}`")
    if len(call.arguments) != 1:
        raise _error(CommerceQLSemanticError, f"`{function}()` takes one date dimension", call, source)
    dimension = table.dimensions[field]
    if dimension.type == "date":
        value = f"({dimension.sql})"
    elif dimension.type == "timestamp":
        value = f"local_timestamp({dimension.sql})"
    else:
        raise _error(
            CommerceQLSemanticError,
            f"`{function}()` takes a date dimension, and `{field}` is a {dimension.type} dimension",
            argument, source,
            hint="bucket numbers with `bucket(field, bounds ...)`" if dimension.type in NUMERIC_TYPES
            else f"group by `{field}` itself, or by the {function} of a date dimension"
            f"{' such as ' + dates[0] if (dates := [n for n, d in table.dimensions.items() if d.type == 'date']) else ''}",
        )
    sql = f"CAST(({value}) AS DATE)" if function == "day" else f"CAST(date_trunc('{function}', {value}) AS DATE)"
    name = item.alias.name if item.alias is not None else f"{field}_{function}"
    description = f"The {function} of {field}" + (" (weeks start on Monday)" if function == "week" else "")
    _add_dimension(tables, table, Dimension(name=name, sql=sql, type="date", description=description), item, source)
    return PlannedDimension(name=name, source_name=name, kind="model", type="date", description=description,
                            ordinal=True)


def _plan_bucket(
    item: ast.GroupItem, call: ast.FunctionCall, field: str, table: Table | None, metric_table: Table | None,
    tables: MutableSequence[Table], source: str,
) -> PlannedDimension:
    bounds: list[int | Decimal] = []
    for bound in call.arguments[1:]:
        value = _number(bound)
        if value is None:
            raise _error(CommerceQLSemanticError, "bucket bounds are numbers", bound, source,
                         hint="write e.g. `bucket(order_total, 0, 100, 250, 1000)`")
        if bounds and value <= bounds[-1]:
            raise _error(
                CommerceQLSemanticError,
                f"bucket bounds must increase: {_plain(value)} comes after {_plain(bounds[-1])}",
                bound, source, hint="list the bounds from the lowest to the highest",
            )
        bounds.append(value)
    if not bounds:
        raise _error(CommerceQLSemanticError, "`bucket()` needs at least one bound after the field", call, source,
                     hint=f"write e.g. `bucket({field}, 0, 100, 250, 1000)`")
    per_order = False
    if table is not None:
        dimension = table.dimensions[field]
        if dimension.type not in NUMERIC_TYPES or field.endswith("_id"):
            what = "an identifier" if field.endswith("_id") else f"a {dimension.type} dimension"
            raise _error(CommerceQLSemanticError, f"`bucket()` bands numbers, and `{field}` is {what}",
                         call.arguments[0], source, hint="group by the dimension itself")
        value = f"({dimension.sql})"
        home = table
    else:
        assert metric_table is not None
        metric = metric_table.metric(field)
        assert metric is not None
        key = metric_table.dimensions.get("order_id")
        if not metric.additive or key is None:
            reason = ("is not a sum over the order's rows" if not metric.additive
                      else f"is a metric, and `{metric_table.name}` rows have no order to band")
            raise _error(
                CommerceQLSemanticError, f"`bucket()` bands a value per order, and `{field}` {reason}",
                call.arguments[0], source,
                hint="band an additive metric (order_total, net_sales ...) on a table with orders, "
                "or a numeric dimension",
            )
        home, value = _order_value(metric_table, metric.name)
        tables[tables.index(metric_table)] = home
        per_order = True
    labels = [f"under {_plain(bounds[0])}"]
    cases = [f"WHEN {value} < {_plain(bounds[0])} THEN '{labels[0]}'"]
    for low, high in zip(bounds, bounds[1:], strict=False):
        label = f"{_plain(low)}–{_plain(high)}"
        labels.append(label)
        cases.append(f"WHEN {value} < {_plain(high)} THEN '{label}'")
    labels.append(f"{_plain(bounds[-1])}+")
    sql = f"CASE WHEN {value} IS NULL THEN NULL {' '.join(cases)} ELSE '{labels[-1]}' END"
    name = item.alias.name if item.alias is not None else f"{field}_bucket"
    description = f"Band of {field}" + (" per order" if per_order else "") + ": " + ", ".join(labels)
    _add_dimension(tables, home, Dimension(name=name, sql=sql, type="string", description=description), item, source)
    return PlannedDimension(name=name, source_name=name, kind="model", type="string", description=description,
                            bands=tuple(labels), ordinal=True)


def _order_value(table: Table, metric: str) -> tuple[Table, str]:
    """`table` joined to its metric's value per order (over all the order's rows, at any date),
    and the SQL of that value."""
    relation = ORDER_VALUE_PREFIX + metric
    key = table.dimensions["order_id"].sql
    joined = replace(table, joins={**table.joins, relation: Join(relation, relation, f"{relation}.__key = {key}")})
    return joined, f"{relation}.__value"


def _add_dimension(tables: MutableSequence[Table], table: Table, dimension: Dimension, item: ast.GroupItem,
                   source: str) -> None:
    current = next(t for t in tables if t.name == table.name)
    if dimension.name in current.dimensions or current.metric(dimension.name) is not None:
        raise _error(CommerceQLSemanticError, f"`{dimension.name}` is already a field of `{table.name}`",
                     item, source, hint="name the computed dimension with AS")
    tables[tables.index(current)] = replace(current, dimensions={**current.dimensions, dimension.name: dimension})


# ---------------------------------------------------------------------------------------------
# SQL (called by the compiler)
# ---------------------------------------------------------------------------------------------


class CompilerLike(Protocol):
    """What the SQL writers here use of `commerceql.compiler._Compiler`."""

    dialect: Any
    plan: QueryPlan
    dims: list[PlannedDimension]
    ctes: list[tuple[str, str]]

    def q(self, name: str) -> str: ...
    def dimension_sql(self, dimension: PlannedDimension | str, table: Table, window_index: int = 0) -> str: ...
    def model_sql(self, sql: str) -> str: ...
    def metric_sql(self, table: Table, name: str) -> str: ...
    def join_sql(self, table: Table, fragments: list[str]) -> str: ...
    def where_sql(self, table: Table) -> list[str]: ...
    def where_sql_preview(self, table: Table) -> list[str]: ...
    def window_filter(self, table: Table, window: dates_module.DateWindow) -> list[str]: ...
    def relation(self, name: str) -> str: ...
    def metric_value(self, expression: ast.Expression, column_of: Callable[[str], str]) -> str: ...


def order_value_ctes(compiler: CompilerLike) -> None:
    """The per-order metric values that bands and aggregates of a metric read (bucket(order_total, ...),
    median(order_total)): each order's value over all its rows, whatever the reporting period."""
    for table in compiler.plan.tables:
        for join in table.joins.values():
            if not join.relation.startswith(ORDER_VALUE_PREFIX):
                continue
            metric = join.relation.removeprefix(ORDER_VALUE_PREFIX)
            key = table.dimensions["order_id"].sql
            metric_sql = compiler.model_sql(table.metric_sql(metric))
            joins = compiler.join_sql(table, [metric_sql])
            compiler.ctes.append((
                join.relation,
                f"SELECT {key} AS __key, {metric_sql} AS __value\n"
                f"  FROM {compiler.relation(table.relation)} AS {table.name}{joins}\n  GROUP BY {key}",
            ))


def _bucket_index(compiler: CompilerLike, grain: str, value: str) -> str:
    """An integer that counts `grain` buckets, so that a window of n buckets is a range of n numbers."""
    d = compiler.dialect
    if grain == "day":
        return d.diff("day", "CAST('1970-01-01' AS DATE)", value)
    if grain == "week":
        monday = "CAST('1970-01-05' AS DATE)"  # a Monday: weeks start on Monday
        return f"CAST(floor({d.diff('day', monday, value)} / 7) AS BIGINT)"
    if grain == "month":
        return f"(year({value}) * 12 + month({value}))"
    if grain == "quarter":
        return f"(year({value}) * 4 + quarter({value}))"
    if grain == "year":
        return f"year({value})"
    seconds = {"second": 1, "minute": 60, "hour": 3600}[grain]
    return f"CAST(floor({d.epoch_seconds(value)} / {seconds}) AS BIGINT)"


def _period_key(compiler: CompilerLike, period: str, value: str, grain: str) -> str:
    """The month / quarter / year a bucket belongs to (a week: the one its Monday is in)."""
    if grain not in _DATE_GRAINS:
        value = compiler.dialect.local_timestamp(compiler.plan.timezone, value)
    return _bucket_index(compiler, period, value)


def calculation_window(plan: QueryPlan, calculation: WindowCalculation) -> dates_module.DateWindow:
    """The rows a window column reads: the reporting period, and before it the buckets its first
    rows need (the n-1 buckets of a rolling window, the start of the period of a period-to-date)."""
    window = plan.window
    grain = plan.time_dimension
    if window.start is None or grain is None or calculation.kind in ("running_total", "rank"):
        return window
    first = dates_module.truncate(window.start, grain.source_name)
    if calculation.kind in ROLLING_FUNCTIONS:
        start = dates_module.add_grain(first, grain.source_name, -((calculation.size or 1) - 1))
    else:
        assert calculation.period is not None
        start = dates_module.truncate(dates_module.truncate(first, calculation.period), grain.source_name)
    return dates_module.DateWindow(start, window.end)


def time_window_ctes(compiler: CompilerLike, metric: PlannedMetric, number: int, keys: str) -> str:
    """CTEs computing a rolling / running / period-to-date column for every result row (`keys`).

    calc_base_N aggregates the metric's base metrics per row of the query over the calculation's
    window (which starts before the reporting period when the first rows need earlier buckets);
    calc_N sums, for each result row, the base rows of its series in its window. A bucket with no
    data has no base row and adds 0, as on the gap-filled calendar. Returns calc_N's name.
    """
    calculation = metric.calculation
    assert calculation is not None
    plan = compiler.plan
    table = plan.tables[0]
    q = compiler.q
    grain = plan.time_dimension
    assert grain is not None
    names = metric.model_metric_names()
    select = [f"{compiler.dimension_sql(d, table)} AS {q(d.name)}" for d in compiler.dims]
    select += [f"{compiler.metric_sql(table, n)} AS {q('m__' + n)}" for n in names]
    joins = compiler.join_sql(table, select + compiler.where_sql_preview(table))
    filters = compiler.window_filter(table, calculation_window(plan, calculation)) + compiler.where_sql(table)
    base = f"calc_base_{number}"
    compiler.ctes.append((
        base,
        "SELECT " + ",\n    ".join(select) + f"\n  FROM {compiler.relation(table.relation)} AS {table.name}{joins}"
        + (f"\n  WHERE {' AND '.join(filters)}" if filters else "")
        + "\n  GROUP BY " + ", ".join(compiler.dimension_sql(d, table) for d in compiler.dims),
    ))
    time = q(grain.name)
    on = [f"b.{q(d.name)} IS NOT DISTINCT FROM k.{q(d.name)}" for d in compiler.dims if d is not grain]
    if calculation.kind in ROLLING_FUNCTIONS:
        k_index = _bucket_index(compiler, grain.source_name, f"k.{time}")
        b_index = _bucket_index(compiler, grain.source_name, f"b.{time}")
        on.append(f"{b_index} BETWEEN {k_index} - {int(calculation.size or 1) - 1} AND {k_index}")
    else:
        on.append(f"b.{time} <= k.{time}")
        if calculation.period is not None:
            on.append(f"{_period_key(compiler, calculation.period, f'b.{time}', grain.source_name)} = "
                      f"{_period_key(compiler, calculation.period, f'k.{time}', grain.source_name)}")
    total = compiler.metric_value(metric.expression, lambda n: f"COALESCE(SUM(b.{q('m__' + n)}), 0)")
    if calculation.kind == "rolling_avg":
        total = f"CAST({total} AS DOUBLE) / {int(calculation.size or 1)}"
    dims = ", ".join(f"k.{q(d.name)}" for d in compiler.dims)
    name = f"calc_{number}"
    compiler.ctes.append((
        name,
        f"SELECT {dims}, {total} AS __value\n  FROM {keys} AS k\n  LEFT JOIN {base} AS b ON {' AND '.join(on)}"
        f"\n  GROUP BY {dims}",
    ))
    return name


def rank_sql(compiler: CompilerLike, metric: PlannedMetric, input_column: str) -> str:
    """RANK() of a result column within each value of the grouped dimensions but the last."""
    partition = compiler.dims[:-1]
    over = (f"PARTITION BY {', '.join(compiler.q(d.name) for d in partition)} " if partition else "")
    return f"RANK() OVER ({over}ORDER BY {input_column} DESC NULLS LAST) AS {compiler.q(metric.name)}"


def band_sort_key(dimension: PlannedDimension, column: str) -> str:
    """A band dimension sorts by band (under 0, 0–100, 100–250, ..., 1000+), not alphabetically."""
    cases = " ".join(f"WHEN '{label}' THEN {i}" for i, label in enumerate(dimension.bands))
    return f"(CASE {column} {cases} END)"
