"""Resolution: check an `ast.Query` against the semantic model and make every part concrete.

Pure function of (query, model, clock, store settings) → `QueryPlan`. Every unknown name, every
clause that cannot be answered and every misuse of a field raises a `CommerceQLError` pointing at
the offending node, with a suggestion where one exists.

Older forms are answered with today's model and a notice saying the current spelling (the notices
of the parser's own older forms come in `Query.notices`): a metric or dimension the model marks
`deprecated` (`returns`, `refunds`, `order_or_return` ...); the 2022-2024 aggregate wrapper
`sum(metric)` of an additive metric; and the older datasets (`LEGACY_TABLES`): `FROM visits` is
the `sessions` table, and `FROM orders` / `FROM products` with a field only `sales` has (the G1
datasets' sales figures, `sum(net_sales)` by product) read `sales`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from commerceql import ast, attribution, calculations
from commerceql import dates as dates_module
from commerceql.columns import GeneratedName, generated_name, output_columns
from commerceql.errors import (
    CommerceQLError,
    CommerceQLNameError,
    CommerceQLSemanticError,
    did_you_mean,
)
from commerceql.matches import SUBJECTS as MATCHES_SUBJECTS
from commerceql.matches import parameter_problem
from commerceql.model.accounts import ACCOUNT_KINDS
from commerceql.model.semantic import SEGMENT_MACRO, Dimension, Metric, SemanticModel, Table
from commerceql.plan import (
    CYCLICAL_DIMENSIONS,
    TIME_GRAINS,
    AccountSettings,
    GeneratedReference,
    PlannedComparison,
    PlannedDimension,
    PlannedMetric,
    PlannedSegment,
    QueryPlan,
)
from commerceql.typecheck import check_condition
from commerceql.walk import condition_leaves as _condition_leaves
from commerceql.walk import condition_names, condition_operands, identifiers

if TYPE_CHECKING:
    from commerceql.currency import ExchangeRates

DEFAULT_LIMIT = 1000
# Each condition becomes SQL the engine plans; thousands of ANDs take seconds and gigabytes.
MAX_CONDITIONS = 1000
SUPPORTED_MODIFIERS = ("TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES", "CURRENCY", "TIMEZONE")
TIME_NAMES = (*TIME_GRAINS, *CYCLICAL_DIMENSIONS)
# Functions analysts reach for that compute over neighbouring rows, which CommerceQL does not have.
_WINDOW_FUNCTIONS = ("lag", "lead", "first_value", "last_value")
_RANKING_FUNCTIONS = ("rank", "dense_rank", "row_number", "ntile", "percent_rank")
# Named dates that are ranges of SINCE / UNTIL / DURING, not values a condition compares with.
_NAMED_DATES = ("today", "now", "yesterday")


@dataclass(frozen=True)
class LegacyTable:
    """An older generation's dataset name and the table of today's model that answers it."""

    current: str  # the table that answers
    always: bool  # True: the name is only the old one (visits); False: only for fields the table lacks
    notice: str  # {fields}: the fields that sent the query to `current`


LEGACY_TABLES = {
    # The 2014-2021 Analytics API's only traffic schema.
    "visits": LegacyTable(
        "sessions", True, "`visits` is the 2014-2021 Analytics API name of the `sessions` table: write `FROM sessions`"
    ),
    # The 2022-2024 `orders` dataset (one order per row) carried the order's sales figures; today
    # they are in `sales`, where a refund counts on the day it happened (the dataset put it on the
    # order's date).
    "orders": LegacyTable(
        "sales",
        False,
        "`FROM orders` with {fields}: the 2022-2024 `orders` dataset's sales figures are in the `sales` table "
        "today, which answers this query (a refund counts on the day it was made, not on its order's date): "
        "write `FROM sales`",
    ),
    # The 2022-2024 `products` dataset (sales per product and period): `sales` grouped by product.
    "products": LegacyTable(
        "sales",
        False,
        "`FROM products` with {fields}: the 2022-2024 `products` dataset's sales figures are in the `sales` "
        "table today, which answers this query: write `FROM sales`",
    ),
}


@dataclass(frozen=True)
class Field:
    """What a name in the query refers to."""

    kind: str  # "metric" | "dimension" | "grain" | "cyclical"
    name: str
    table: Table | None = None
    metric: Metric | None = None
    dimension: Dimension | None = None

    @property
    def type(self) -> str:
        if self.metric is not None:
            return self.metric.type
        if self.dimension is not None:
            return self.dimension.type
        return self.name

    @property
    def description(self) -> str:
        if self.metric is not None:
            return self.metric.description
        if self.dimension is not None:
            return self.dimension.description
        if self.kind == "grain":
            return f"The {self.name} each event falls in, in the store's time zone."
        return f"The {self.name.replace('_', ' ')} of each event, in the store's time zone."


class _Scope:
    def __init__(self, tables: Sequence[Table], source: str) -> None:
        self.tables = tables
        self.source = source
        # Older names the query used, each with what to write today (see _older_name).
        self.notices: list[str] = []

    def _older_name(self, name: str, current: str, deprecated: str | None) -> None:
        if not deprecated:
            return
        text = deprecated if f"`{current}`" in deprecated else f"`{name}` is an older name of `{current}` ({deprecated})"
        if text not in self.notices:
            self.notices.append(text)

    def names(self, kinds: Sequence[str] = ("metric", "dimension", "time")) -> list[str]:
        names: list[str] = []
        for table in self.tables:
            if "metric" in kinds:
                names += [name for name, metric in table.metrics.items()]
            if "dimension" in kinds:
                names += list(table.dimensions)
        if "time" in kinds:
            names += list(TIME_NAMES)
        return names

    def lookup(self, identifier: ast.Identifier) -> Field | None:
        name = identifier.name
        # Time grains are keyword-like: Shopify's own examples write `TIMESERIES DAY`.
        if name.lower() in TIME_GRAINS:
            return Field("grain", name.lower())
        if name.lower() in CYCLICAL_DIMENSIONS:
            return Field("cyclical", name.lower())
        for table in self.tables:
            metric = table.metric(name)
            if metric is not None:
                written = table.metrics[name]
                if written.alias_of is not None:
                    self._older_name(name, metric.name, written.deprecated)
                return Field("metric", name, table=table, metric=metric)
        dimension_tables = [t for t in self.tables if name in t.dimensions]
        if dimension_tables:
            if len(self.tables) > 1 and len(dimension_tables) < len(self.tables):
                missing = [t.name for t in self.tables if t not in dimension_tables]
                raise CommerceQLSemanticError(
                    f"dimension `{name}` is not shared by every table in FROM (missing from {', '.join(missing)})",
                    span=identifier.span,
                    source=self.source,
                    hint="a multi-table query can only group and filter by dimensions all its tables have, such as day or month",
                )
            table = dimension_tables[0]
            dimension = table.dimensions[name]
            if all(t.dimensions[name].deprecated for t in dimension_tables):
                current = next((n for n in table.dimensions if f"`{n}`" in dimension.deprecated and n != name), name)
                self._older_name(name, current, dimension.deprecated)
            return Field("dimension", name, table=table, dimension=dimension)
        return None

    def require(self, identifier: ast.Identifier, what: str = "field") -> Field:
        found = self.lookup(identifier)
        if found is not None:
            return found
        table_names = ", ".join(f"`{t.name}`" for t in self.tables)
        for table in self.tables:
            reason = table.unavailable.get(identifier.name)
            if reason is not None:
                raise CommerceQLNameError(
                    f"`{identifier.name}` is a Shopify field that table `{table.name}` has no data for: {reason}",
                    span=identifier.span,
                    source=self.source,
                    hint=f"run `schema {table.name}` to list the fields this store has",
                )
        if what == "metric":
            candidates = self.names(("metric",)) + self.names(("dimension", "time"))
        elif what == "dimension":
            candidates = self.names(("dimension", "time"))
        else:
            candidates = self.names()
        raise CommerceQLNameError(
            f"unknown {what} `{identifier.name}` in table {table_names}",
            span=identifier.span,
            source=self.source,
            hint=did_you_mean(identifier.name, candidates)
            or f"run `schema {self.tables[0].name}` to list the available fields",
        )


def _expression_text(expression: ast.Expression) -> str:
    if isinstance(expression, ast.Identifier):
        return expression.name
    if isinstance(expression, ast.NumberLiteral):
        return str(expression.value)
    if isinstance(expression, ast.BinaryOperation):
        return f"{_expression_text(expression.left)} {expression.operator} {_expression_text(expression.right)}"
    if isinstance(expression, ast.Negation):
        return f"-{_expression_text(expression.operand)}"
    return "expression"


def _combine_types(operator: str, left: str, right: str) -> str:
    if operator in "+-":
        if left == right:
            return left
        if "money" in (left, right):
            return "money"
        return "number"
    if operator == "*":
        if "money" in (left, right) and "percent" in (left, right):
            return "money"
        if "money" in (left, right) and {left, right} <= {"money", "count", "number"} and left != right:
            return "money"
        return "number"
    if left == "money" and right in ("count", "number"):
        return "money"
    if left == right and left in ("money", "count"):
        return "percent"
    return "number"


class Resolver:
    def __init__(
        self,
        query: ast.Query,
        model: SemanticModel,
        *,
        now: dt.datetime,
        timezone: str,
        currency: str,
        accounts: AccountSettings | None = None,
        rates: ExchangeRates | None = None,
    ) -> None:
        self.query = query
        self.rates = rates  # the store's exchange-rate sources (WITH CURRENCY), None: the library's only
        self.accounts = accounts or AccountSettings()
        self.model = model
        self.now = now
        self.store_timezone = timezone
        self.store_currency = currency
        self.source = query.source
        self.notices: list[str] = list(query.notices)
        # `sum(x)` wrappers accepted (x, today's name of x, the older column name kept or None), for one notice.
        self._sums: list[tuple[str, str, str | None]] = []
        # The SHOW metrics planned so far (a generated column may derive from one by its alias),
        # and every generated column SHOW names, checked once the query's clauses are known.
        self._shown_metrics: list[PlannedMetric] = []
        self._generated_uses: list[tuple[ast.Identifier, GeneratedName]] = []
        # The GROUP BY functions' dimensions (bucket, month of a date), by the item's position.
        self._computed_dimensions: dict[int, PlannedDimension] = {}

    def error(self, cls: type[CommerceQLError], message: str, node: object, hint: str | None = None) -> CommerceQLError:
        return cls(message, span=getattr(node, "span", None), source=self.source, hint=hint)

    # ---------------------------------------------------------------------------------------
    def resolve(self) -> QueryPlan:
        query = self.query
        tables = self._tables()
        scope = _Scope(tables, self.source)
        # GROUP BY bucket(...) / month(date) add their dimension to the table first, so that SHOW
        # can list it by name (SHOW order_size, orders GROUP BY bucket(order_total, 0, 100) AS order_size).
        self._computed_dimensions = {
            index: calculations.plan_group_function(item, tables, self.source)
            for index, item in enumerate(query.group_by) if item.function is not None
        }

        modifiers = self._modifiers()
        timezone = modifiers.get("TIMEZONE", self.store_timezone)
        currency = modifiers.get("CURRENCY", self.store_currency)
        conversion = None
        if currency.upper() != self.store_currency.upper():
            from commerceql.currency import plan_conversion

            node = next(m for m in query.with_modifiers if m.name == "CURRENCY")
            conversion = plan_conversion(currency, self.store_currency, self.rates, node,
                                         lambda message, at, hint: self.error(CommerceQLSemanticError, message, at, hint))
            self.notices.append(conversion.notice())

        # SHOW: dimensions listed there, metrics and metric expressions.
        shown_dimensions: dict[str, tuple[ast.ShowItem, Field]] = {}
        metrics: list[PlannedMetric] = []
        aliases: dict[str, str] = {}
        column_order: list[str] = []
        self._shown_metrics = metrics
        for item in query.show:
            if item.alias is not None and item.alias.name.startswith("__"):
                raise self.error(
                    CommerceQLSemanticError,
                    f"the name `{item.alias.name}` is reserved: names starting with __ are CommerceQL's own",
                    item.alias,
                    hint="choose a name that does not start with two underscores",
                )
            if calculations.is_window_call(item.expression):
                # rolling_avg(net_sales, 7), ytd(net_sales), rank(net_sales): a column over the rows.
                metric = calculations.plan_window(
                    item,
                    lambda expression, alias: self._plan_metric(
                        calculations.rewrite_aggregates(expression, tables, self.source), alias, scope),
                    self.source,
                )
                if metric.name in column_order:
                    raise self.error(CommerceQLSemanticError, f"column `{metric.name}` appears twice in SHOW", item,
                                     hint="give one of them a different name with AS")
                metrics.append(metric)
                column_order.append(metric.name)
                if item.alias:
                    aliases[item.alias.name] = metric.name
                continue
            # count_distinct(company_id), median(x) ...: metrics of the table, planned as any other.
            item = replace(item, expression=calculations.rewrite_aggregates(item.expression, tables, self.source))
            item = self._legacy_sum(item, scope)
            self._reject_functions(item.expression, scope)
            if (
                isinstance(item.expression, ast.Identifier)
                and item.alias is None
                and (named := self._generated(item.expression, scope)) is not None
            ):
                # `SHOW net_sales, comparison_net_sales__previous_year`: the column comes with its
                # metric; checked to be in the result once the plan is known.
                self._generated_uses.append((item.expression, named))
                continue
            if (
                isinstance(item.expression, ast.Identifier)
                and not item.expression.quoted
                and self._generated(item.expression, scope) is None
            ):
                field = scope.require(item.expression, "metric")
                if field.kind != "metric":
                    output = item.alias.name if item.alias else field.name
                    if item.alias:
                        aliases[item.alias.name] = field.name
                    shown_dimensions[field.name] = (item, field)
                    column_order.append(output)
                    continue
            metric = self._plan_metric(item.expression, item.alias, scope)
            if metric.name in column_order:
                raise self.error(
                    CommerceQLSemanticError,
                    f"column `{metric.name}` appears twice in SHOW",
                    item,
                    hint="give one of them a different name with AS",
                )
            metrics.append(metric)
            column_order.append(metric.name)
            if item.alias:
                aliases[item.alias.name] = metric.name

        # VISUALIZE: refers to SHOW columns, or selects metrics itself when there is no SHOW.
        visualize: list[tuple[str, str | None]] = []
        if query.visualize is not None:
            for item in query.visualize.items:
                item = self._legacy_sum_visualized(item, scope, aliases)
                self._reject_functions(item.expression, scope)
                name = self._visualized_column(item, metrics, aliases, scope, column_order)
                chart_type = item.chart_type.name.lower() if item.chart_type else None
                if chart_type is not None:
                    from commerceql.charts import validate_chart_type

                    chart_type = validate_chart_type(chart_type, span=item.chart_type.span).lower()
                visualize.append((name, chart_type))
        if not metrics and not shown_dimensions and self._generated_uses:
            identifier, named = self._generated_uses[0]
            raise self.error(
                CommerceQLSemanticError,
                f"`{identifier.name}` is a generated column: it comes with the metric `{named.metric}`",
                identifier,
                hint=f"add `{named.metric}` to SHOW",
            )
        if not metrics and not shown_dimensions:
            raise self.error(
                CommerceQLSemanticError,
                "the query selects nothing",
                query,
                hint="add SHOW with at least one metric, e.g. `SHOW net_sales`",
            )

        # GROUP BY and TIMESERIES.
        dimensions: list[PlannedDimension] = []
        for item in query.group_by:
            dimensions.append(self._plan_dimension(item, scope, aliases, shown_dimensions))
        timeseries = None
        if query.timeseries is not None:
            field = scope.require(query.timeseries, "dimension")
            if field.kind not in ("grain", "cyclical"):
                raise self.error(
                    CommerceQLSemanticError,
                    f"TIMESERIES needs a time dimension, not `{field.name}`",
                    query.timeseries,
                    hint=f"use one of {', '.join(TIME_NAMES)}",
                )
            timeseries = field.name
            grouped_grains = [d for d in dimensions if d.kind == "grain"]
            if field.kind == "grain" and grouped_grains and grouped_grains[0].source_name != field.name:
                raise self.error(
                    CommerceQLSemanticError,
                    f"TIMESERIES {field.name} does not match the time grain `{grouped_grains[0].source_name}` in GROUP BY",
                    query.timeseries,
                    hint=f"write `TIMESERIES {grouped_grains[0].source_name}`",
                )
            if not any(d.source_name == field.name for d in dimensions):
                # The gap-filled time column comes first, like Shopify's reports.
                dimensions.insert(0, self._time_dimension(field, field.name))
        names_seen: set[str] = set()
        for dimension in dimensions:
            if dimension.source_name in names_seen:
                raise self.error(
                    CommerceQLSemanticError,
                    f"`{dimension.source_name}` is grouped twice",
                    query,
                    hint="list each dimension once in GROUP BY",
                )
            names_seen.add(dimension.source_name)
        grain_dims = [d for d in dimensions if d.kind == "grain"]
        if len(grain_dims) > 1:
            raise self.error(
                CommerceQLSemanticError,
                f"group by one time grain at a time, not {' and '.join(d.source_name for d in grain_dims)}",
                query,
                hint="keep the finer grain, or use a cyclical dimension such as day_of_week",
            )
        # Every dimension in SHOW must be grouped (the TIMESERIES dimension counts as grouped),
        # except on a table with one row per account (customers, companies): there SHOW
        # customer_email lists the accounts, as ShopifyQL's customers table does.
        grouped = {d.source_name for d in dimensions}
        listing = all(any(ACCOUNT_KINDS[k][0] == t.name for k in t.account_keys) for t in tables)
        for name, (item, _field) in shown_dimensions.items():
            if name not in grouped and listing:
                group_item = ast.GroupItem(dimension=ast.Identifier(name, span=item.span), span=item.span)
                dimensions.append(self._plan_dimension(group_item, scope, aliases, shown_dimensions))
                grouped.add(name)
            if name not in grouped:
                raise self.error(
                    CommerceQLSemanticError,
                    f"dimension `{name}` is in SHOW but not in GROUP BY",
                    item,
                    hint=f"add `GROUP BY {item.alias.name if item.alias else name}`, or remove it from SHOW",
                )
        # Output names: a SHOW alias renames the dimension.
        renamed = {field.name: (item.alias.name if item.alias else field.name) for field_name, (item, field) in shown_dimensions.items()}
        dimensions = [replace(d, name=renamed.get(d.source_name, d.source_name)) for d in dimensions]
        dim_names = [d.name for d in dimensions]
        order = [d for d in dim_names if d not in column_order] + column_order
        # WHERE: dimensions only.
        where = query.where
        if where is not None:
            where = self._concrete_dates(where, timezone)
        if where is not None:
            self._check_condition_size(where)
            self._check_where(where, scope)
            check_condition(where, lambda identifier: self._where_type(identifier, scope), self.source)

        # Dates.
        window = dates_module.resolve_reporting_window(query, now=self.now, timezone=timezone)
        grain = next((d.source_name for d in dimensions if d.kind == "grain"), None)
        comparisons: list[PlannedComparison] = []
        for target in query.compare_to:
            comparison = dates_module.resolve_comparison(
                target, window, grain=grain, now=self.now, timezone=timezone
            )
            if any(c.suffix == comparison.suffix for c in comparisons):
                raise self.error(
                    CommerceQLSemanticError, f"`{comparison.suffix}` is compared twice", target
                )
            comparisons.append(
                PlannedComparison(comparison.suffix, comparison.label, comparison.window, comparison.shift)
            )
        attributions = self._attributions(modifiers, tables, dimensions, window)

        notices: list[str] = self.notices
        if self._sums:
            written = ", ".join(f"`sum({n})`" for n, _, _ in self._sums)
            plain = ", ".join(f"`{current}`" for _, current, _ in self._sums)
            kept = [f"`{column}`" for _, _, column in self._sums if column]
            verb = "is" if len(self._sums) == 1 else "are"
            notices.append(
                f"{written} {verb} the 2014-2024 spelling of {plain}: metrics are already aggregated"
                + (f" (the {'column keeps its' if len(kept) == 1 else 'columns keep their'} older name "
                   f"{', '.join(kept)})" if kept else "")
            )
        # An older name inside sum() was said with the sum.
        inner = tuple(f"`{n}` " for n, _, _ in self._sums)
        notices.extend(n for n in _grouped_renames(scope.notices) if n not in notices and not n.startswith(inner))
        cumulative = "CUMULATIVE_VALUES" in modifiers
        if cumulative:
            if grain is None and timeseries is None:
                node = next(m for m in query.with_modifiers if m.name == "CUMULATIVE_VALUES")
                raise self.error(
                    CommerceQLSemanticError,
                    "CUMULATIVE_VALUES needs a time dimension to accumulate over",
                    node,
                    hint="add `TIMESERIES day` (or week, month ...)",
                )
            # A running total only exists for sums. Ratios (AOV, conversion rate) and distinct
            # counts (customers) are not the sum of their per-period values, so they get no
            # cumulative column, and the user is told so rather than left to wonder.
            skipped = [m.name for m in metrics if not m.additive]
            if skipped:
                names = ", ".join(f"`{n}`" for n in skipped)
                notices.append(
                    f"CUMULATIVE_VALUES: no running total for {names}: "
                    + ("it is" if len(skipped) == 1 else "they are")
                    + " a ratio or a distinct count, not a sum of its periods"
                )
        if "PERCENT_CHANGE" in modifiers and not comparisons:
            node = next(m for m in query.with_modifiers if m.name == "PERCENT_CHANGE")
            raise self.error(
                CommerceQLSemanticError,
                "PERCENT_CHANGE compares against a COMPARE TO period, and this query has none",
                node,
                hint="add e.g. `COMPARE TO previous_period`",
            )

        # Attribution columns are answered like comparisons over the same period (commerceql.attribution).
        comparisons += attributions
        across = [m.name for m in metrics for n in m.model_metric_names()
                  if (base := scope.lookup(ast.Identifier(n))) is not None and base.metric is not None
                  and base.metric.across_time]
        if across and (comparisons or "GROUP_TOTALS" in modifiers):
            raise self.error(
                CommerceQLSemanticError,
                f"`{across[0]}` is already a figure over every period of the query, "
                + ("so it has no comparison period" if comparisons else "so it has no group totals"),
                query,
                hint="remove COMPARE TO / WITH GROUP_TOTALS, or show the metric without `_totals`",
            )
        plan = QueryPlan(
            query=query,
            tables=tuple(tables),
            dimensions=tuple(dimensions),
            metrics=tuple(metrics),
            column_order=tuple(order),
            where=where,
            having=None if query.having is None else self._concrete_dates(query.having, timezone),
            window=window,
            timezone=timezone,
            currency=currency,
            timeseries=timeseries,
            comparisons=tuple(comparisons),
            totals="TOTALS" in modifiers,
            group_totals="GROUP_TOTALS" in modifiers,
            percent_change="PERCENT_CHANGE" in modifiers,
            cumulative=cumulative,
            limit=DEFAULT_LIMIT if query.limit is None else query.limit,
            offset=query.offset or 0,
            visualize=tuple(visualize),
            visualize_max=query.visualize.max_points if query.visualize else None,
            aliases=aliases,
            notices=tuple(notices),
            as_of=self.now,
            accounts=self.accounts,
            segments=self._segments(tables, where, dimensions, timezone),
            conversion=conversion,
        )
        if conversion is not None:
            from commerceql.currency import check_convertible

            check_convertible(plan, lambda message, hint: self.error(
                CommerceQLSemanticError, message, next(m for m in query.with_modifiers if m.name == "CURRENCY"), hint))
        calculations.check_windows(plan, self.source)
        columns = output_columns(plan)
        available = [c.name for c in columns]
        for identifier, named in self._generated_uses:
            self._check_generated(identifier, named, plan)
            if identifier.name not in available and not any(
                m.reference(identifier.name) is not None for m in metrics
            ):  # a bare SHOW item whose metric is not shown
                raise self.error(
                    CommerceQLSemanticError,
                    f"`{identifier.name}` is a generated column of `{named.metric}`, which SHOW does not list",
                    identifier,
                    hint=f"add `{named.metric}` to SHOW",
                )
        order_by = []
        for item in query.order_by:
            name = aliases.get(item.column.name, item.column.name)
            if name not in available and (named := generated_name(name)) is not None:
                self._check_generated(item.column, named, plan)
            if name not in available:
                raise self.error(
                    CommerceQLNameError,
                    f"cannot order by `{item.column.name}`: it is not a column of the result",
                    item.column,
                    hint=(_absent_generated_hint(named, plan) if (named := generated_name(name)) is not None else None)
                    or did_you_mean(item.column.name, available)
                    or f"order by one of: {', '.join(available[:12])}",
                )
            order_by.append((name, item.descending))
        if query.having is not None:
            self._check_having(query.having, available, plan, aliases, scope)
            types = {c.name: c.type for c in columns}
            check_condition(
                query.having, lambda identifier: types.get(aliases.get(identifier.name, identifier.name)), self.source
            )
        return replace(plan, order_by=tuple(order_by))

    # ---------------------------------------------------------------------------------------
    def _tables(self) -> list[Table]:
        tables: list[Table] = []
        for identifier in self.query.tables:
            table = self._legacy_table(identifier)
            if table is None:
                raise self.error(
                    CommerceQLNameError,
                    f"unknown table `{identifier.name}`",
                    identifier,
                    hint=did_you_mean(identifier.name, self.model.tables)
                    or f"available tables: {', '.join(sorted(self.model.tables))}",
                )
            if table in tables:
                raise self.error(CommerceQLSemanticError, f"table `{table.name}` is listed twice in FROM", identifier)
            tables.append(table)
        if len(tables) > 1:
            for table in tables:
                if table.time_column is None:
                    raise self.error(
                        CommerceQLSemanticError,
                        f"table `{table.name}` has no time column, so it cannot be combined with other tables",
                        self.query.tables[tables.index(table)],
                    )
        return tables

    def _legacy_table(self, identifier: ast.Identifier) -> Table | None:
        """The model's table for a FROM name, or today's table for an older dataset (LEGACY_TABLES)."""
        table = self.model.table(identifier.name)
        legacy = LEGACY_TABLES.get(identifier.name)
        current = self.model.table(legacy.current) if legacy is not None else None
        if legacy is None or current is None:
            return table
        if legacy.always:
            if table is not None:
                return table  # a store of its own with a `visits` table
            self.notices.append(legacy.notice)
            return current
        if table is None or len(self.query.tables) != 1:
            return table
        fields = self._field_identifiers()
        missing = [f.name for f in fields if not _has_field(table, f.name)]
        if not missing:
            return table
        lacking = next((f for f in fields if f.name in table.unavailable), None)
        if lacking is not None:  # a field of the older dataset that no store has: say so
            _Scope([table], self.source).require(lacking)
        if all(_has_field(current, f.name) for f in fields):
            self.notices.append(legacy.notice.format(fields=", ".join(f"`{n}`" for n in missing)))
            return current
        return table

    def _field_identifiers(self) -> list[ast.Identifier]:
        """The fields the query refers to (SHOW aliases left out), each name once, in order."""
        query = self.query
        aliases = {item.alias.name for item in query.show if item.alias is not None}
        expressions: list[ast.Expression] = [item.expression for item in query.show]
        if query.visualize is not None:
            expressions += [item.expression for item in query.visualize.items]
        for condition in (query.where, query.having):
            if condition is not None:
                expressions += list(condition_operands(condition))
        expressions += [item.dimension for item in query.group_by]
        if query.timeseries is not None:
            expressions.append(query.timeseries)
        expressions += [item.column for item in query.order_by]
        found: dict[str, ast.Identifier] = {}
        for expression in expressions:
            for identifier in identifiers(expression):
                if not identifier.quoted and identifier.name not in aliases and generated_name(identifier.name) is None:
                    found.setdefault(identifier.name, identifier)
        return list(found.values())

    def _attributions(
        self, modifiers: dict[str, str], tables: list[Table], dimensions: list[PlannedDimension], window: dates_module.DateWindow
    ) -> list[PlannedComparison]:
        """The attribution models of WITH, planned as same-period comparisons; refused where they mean nothing."""
        planned: list[PlannedComparison] = []
        for name in (n for n in modifiers if n in attribution.MODELS):
            model = attribution.MODELS[name]
            node = next(m for m in self.query.with_modifiers if m.name.upper() == name)
            if [t.name for t in tables] != [attribution.ATTRIBUTED_TABLE]:
                raise self.error(
                    CommerceQLSemanticError,
                    f"{name} credits orders to channels, and reads them from `sales` only",
                    node, hint="FROM sales SHOW net_sales, orders GROUP BY referring_channel WITH " + name,
                )
            if self.query.compare_to:
                raise self.error(
                    CommerceQLSemanticError, f"{name} and COMPARE TO cannot be combined yet", node,
                    hint="run the attribution and the comparison as two queries",
                )
            if not any(d.source_name in attribution.CHANNEL_DIMENSIONS for d in dimensions):
                raise self.error(
                    CommerceQLSemanticError,
                    f"{name} credits each order to a channel, and this query groups by none",
                    node, hint="add `GROUP BY referring_channel` (or order_referrer_source)",
                )
            top = next((d for d in dimensions if d.top is not None), None)
            if top is not None:
                raise self.error(
                    CommerceQLSemanticError, f"{name} and TOP cannot be combined yet", node,
                    hint=f"GROUP BY {top.source_name} without TOP, and ORDER BY ... LIMIT",
                )
            planned.append(PlannedComparison(model.suffix, model.label, window, None, attribution=model.suffix))
        return planned

    def _modifiers(self) -> dict[str, str]:
        modifiers: dict[str, str] = {}
        for modifier in self.query.with_modifiers:
            name = modifier.name.upper()
            if name in attribution.REFUSED_MODELS:
                raise self.error(
                    CommerceQLSemanticError,
                    attribution.REFUSED_MODELS[name],
                    modifier,
                    hint="ANY_CLICK_ATTRIBUTION credits every channel in full; LAST_NON_DIRECT_CLICK_ATTRIBUTION "
                         "credits one (docs/language.md, Attribution)",
                )
            if name not in SUPPORTED_MODIFIERS and name not in attribution.MODELS:
                raise self.error(
                    CommerceQLNameError,
                    f"unknown WITH modifier `{modifier.name}`",
                    modifier,
                    hint=did_you_mean(name, (*SUPPORTED_MODIFIERS, *attribution.MODELS))
                    or f"use one of {', '.join(SUPPORTED_MODIFIERS)}",
                )
            if name in modifiers:
                raise self.error(CommerceQLSemanticError, f"WITH {name} is given twice", modifier)
            if name == "TIMEZONE":
                modifiers[name] = dates_module.validate_timezone(modifier.argument or "", span=modifier.span)
            elif name == "CURRENCY":
                code = (modifier.argument or "").strip()
                if len(code) != 3 or not code.isalpha():
                    raise self.error(
                        CommerceQLSemanticError,
                        f"`{code}` is not a three-letter ISO 4217 currency code",
                        modifier,
                        hint="write e.g. `WITH CURRENCY 'USD'`",
                    )
                modifiers[name] = code.upper()
            else:
                modifiers[name] = ""
        return modifiers

    def _legacy_sum(self, item: ast.ShowItem, scope: _Scope) -> ast.ShowItem:
        """The older generation's `sum(metric)`: unambiguous for an additive metric, so accepted.

        `sum(net_sales)` is net_sales itself, returned as `sum_net_sales` (the older generation's
        column name) unless aliased. Other wrappers, and sum() of a distinct count or ratio, get
        an error saying what to write instead.
        """
        call = item.expression
        if not (
            isinstance(call, ast.FunctionCall)
            and call.name.lower() == "sum"
            and len(call.arguments) == 1
            and isinstance(call.arguments[0], ast.Identifier)
        ):
            return item
        argument = call.arguments[0]
        assert isinstance(argument, ast.Identifier)
        field = scope.require(argument, "metric")
        if field.metric is None or not field.metric.additive:
            raise self.error(
                CommerceQLSemanticError,
                f"`sum({argument.name})` is ambiguous: `{argument.name}` is not a sum, so it cannot be summed",
                call,
                hint=f"metrics are already aggregated; write `{argument.name}`",
            )
        alias = item.alias or ast.Identifier(f"sum_{argument.name}", span=call.span)
        self._note_sum(argument.name, field.metric.name, None if item.alias else alias.name)
        return ast.ShowItem(expression=argument, alias=alias, span=item.span)

    def _note_sum(self, name: str, current: str, kept_column: str | None) -> None:
        for index, (seen, _, column) in enumerate(self._sums):
            if seen == name:
                self._sums[index] = (seen, current, column or kept_column)
                return
        self._sums.append((name, current, kept_column))

    def _legacy_sum_visualized(
        self, item: ast.VisualizeItem, scope: _Scope, aliases: dict[str, str]
    ) -> ast.VisualizeItem:
        """`VISUALIZE sum(net_sales)`: the SHOW column `sum(net_sales)` made, or the metric itself."""
        call = item.expression
        if not (isinstance(call, ast.FunctionCall) and call.name.lower() == "sum" and len(call.arguments) == 1):
            return item
        older = f"sum_{call.arguments[0].name}" if isinstance(call.arguments[0], ast.Identifier) else None
        if older is not None and older in aliases:  # SHOW sum(x) made the column sum_x
            return replace(item, expression=ast.Identifier(older, span=call.span))
        shown = self._legacy_sum(ast.ShowItem(expression=call, alias=ast.Identifier("_", span=call.span),
                                              span=call.span), scope)
        return replace(item, expression=shown.expression)

    def _reject_functions(self, expression: ast.Expression, scope: _Scope | None = None) -> None:
        """Refuse a function call, saying what does not exist and what does.

        The hint never proposes a rewrite that changes the question: `avg(net_sales)` is not
        `net_sales`, `count(billing_city)` is not `billing_city`, a moving average is not the metric.
        """
        if isinstance(expression, ast.FunctionCall):
            name = expression.name.lower()
            arguments = expression.arguments
            argument = arguments[0] if len(arguments) == 1 and isinstance(arguments[0], ast.Identifier) else None
            field = scope.lookup(argument) if scope is not None and argument is not None else None
            if name in calculations.WINDOW_FUNCTIONS:
                # rolling_avg(), rank() ... outside a SHOW column (WHERE, VISUALIZE).
                message = f"`{expression.name}()` makes a column of SHOW, over the result's rows"
                hint = f"show `{expression.name}(...) AS name` and filter it with HAVING or chart it by that name"
            elif name in _RANKING_FUNCTIONS:
                message = f"`{expression.name}()` is not a CommerceQL function"
                hint = ("`rank(metric)` in SHOW ranks the rows within each group (1 = highest; ties share a rank "
                        "and the next one skips, as SQL's RANK()); `GROUP BY TOP 10 <dimension>` keeps the best values")
            elif name in _WINDOW_FUNCTIONS or any(word in name for word in ("moving", "rolling", "running", "window")):
                message = f"`{expression.name}()` is not a CommerceQL function"
                window = _number_argument(arguments[1]) if len(arguments) == 2 else None
                if "av" in name and window is not None and isinstance(arguments[0], ast.Identifier):
                    hint = (f"`rolling_avg({arguments[0].name}, {window})` in SHOW averages the {window} periods of the "
                            "TIMESERIES up to each row")
                elif name in _WINDOW_FUNCTIONS:
                    hint = ("there is no lag or lead; compare periods with `COMPARE TO previous_period`, or use "
                            "rolling_avg / rolling_sum(metric, n), running_total(metric), mtd / qtd / ytd(metric)")
                else:
                    hint = ("the window calculations are rolling_avg(metric, n), rolling_sum(metric, n), "
                            "running_total(metric) and mtd / qtd / ytd(metric), in SHOW with a time grain")
            elif field is not None and field.kind == "metric" and name == "sum" and field.metric is not None \
                    and field.metric.additive:
                message = f"`{expression.name}()` is not a CommerceQL function: metrics are already aggregated"
                hint = f"`{field.name}` is already a sum: write `{field.name}`"
            elif field is not None and field.kind == "metric":
                message = f"`{expression.name}()` is not a CommerceQL function: metrics are already aggregated"
                hint = (
                    f"`{field.name}` is computed once per result row; there is no {name}() of it over the rows "
                    f"beneath. Run `schema {scope.tables[0].name}` for the metrics that exist "  # type: ignore[union-attr]
                    "(averages such as average_order_value, counts such as orders and customers)"
                )
            elif field is not None:
                what = "time dimension" if field.kind in ("grain", "cyclical") else "dimension"
                message = (
                    f"`{expression.name}()` is not a CommerceQL function, and no metric {name}s the values of "
                    f"the {what} `{field.name}`"
                )
                hint = (
                    f"metrics are named figures such as `orders` and `customers`; `GROUP BY {field.name}` "
                    f"lists each {field.name} value on its own row"
                )
            else:
                message = f"`{expression.name}()` is not a CommerceQL function: metrics are already aggregated"
                hint = "SHOW takes metrics and dimensions, and arithmetic (+ - * /) over metrics"
            raise self.error(CommerceQLSemanticError, message, expression, hint=hint)
        if isinstance(expression, ast.BinaryOperation):
            self._reject_functions(expression.left, scope)
            self._reject_functions(expression.right, scope)
        elif isinstance(expression, ast.Negation):
            self._reject_functions(expression.operand, scope)

    def _generated(self, identifier: ast.Identifier, scope: _Scope) -> GeneratedName | None:
        """The generated column an identifier names (not a model field of that spelling), or None."""
        if identifier.quoted or scope.lookup(identifier) is not None:
            return None
        return generated_name(identifier.name)

    def _reference(self, identifier: ast.Identifier, named: GeneratedName, scope: _Scope) -> GeneratedReference:
        """A generated column named in a SHOW expression, planned over its base metric."""
        if named.kind not in ("comparison", "percent_change", "totals", "comparison_totals"):
            what = "group totals" if named.kind == "group_totals" else "running total"
            raise self.error(
                CommerceQLSemanticError,
                f"`{identifier.name}` is a {what} column: ORDER BY and HAVING can use it, arithmetic in SHOW cannot",
                identifier,
                hint="comparison, percent-change and totals columns can be used in SHOW arithmetic",
            )
        shown = next((m for m in self._shown_metrics if m.name == named.metric), None)
        if shown is not None:
            if shown.references:
                raise self.error(
                    CommerceQLSemanticError,
                    f"`{named.metric}` already reads generated columns, so `{identifier.name}` is not computed",
                    identifier,
                    hint="write the expression over the base metrics' generated columns instead",
                )
            base: ast.Expression = shown.expression
        else:
            base_identifier = ast.Identifier(named.metric, span=identifier.span)
            field = scope.lookup(base_identifier)
            if field is None or field.kind != "metric":
                raise self.error(
                    CommerceQLNameError,
                    f"`{identifier.name}` names a generated column of `{named.metric}`, "
                    "which is not a metric of the query",
                    identifier,
                    hint=did_you_mean(named.metric, [m.name for m in self._shown_metrics] + scope.names(("metric",)))
                    or "the name is <prefix><metric>__<suffix>, e.g. comparison_net_sales__previous_year",
                )
            base = base_identifier
        return GeneratedReference(identifier.name, named.kind, named.metric, base, named.comparison)

    def _metric_type(self, expression: ast.Expression, scope: _Scope) -> tuple[str, bool]:
        """The value type of a metric expression and whether it is additive."""
        if isinstance(expression, ast.Identifier) and (named := self._generated(expression, scope)) is not None:
            reference = self._reference(expression, named, scope)
            if reference.kind == "percent_change":
                return "percent", False
            base_type, _ = self._metric_type(reference.expression, scope)
            # Not additive: a running total of a column that already reads another period is no sum.
            return base_type, False
        if isinstance(expression, ast.Identifier):
            field = scope.require(expression, "metric")
            if field.kind != "metric":
                raise self.error(
                    CommerceQLSemanticError,
                    f"`{field.name}` is a dimension; arithmetic is only over metrics",
                    expression,
                    hint="group by the dimension instead, or use a metric",
                )
            assert field.metric is not None
            return field.metric.type, field.metric.additive
        if isinstance(expression, ast.NumberLiteral):
            return "number", True
        if isinstance(expression, ast.Negation):
            return self._metric_type(expression.operand, scope)
        if isinstance(expression, ast.BinaryOperation):
            left, left_additive = self._metric_type(expression.left, scope)
            right, right_additive = self._metric_type(expression.right, scope)
            additive = expression.operator in "+-" and left_additive and right_additive
            if expression.operator in "*/" and isinstance(expression.right, ast.NumberLiteral):
                additive = left_additive
            return _combine_types(expression.operator, left, right), additive
        raise self.error(
            CommerceQLSemanticError,
            "only metrics, numbers and + - * / can be combined in SHOW",
            expression,
        )

    def _plan_metric(self, expression: ast.Expression, alias: ast.Identifier | None, scope: _Scope) -> PlannedMetric:
        value_type, additive = self._metric_type(expression, scope)
        references: dict[str, GeneratedReference] = {}
        for identifier in identifiers(expression):
            named = self._generated(identifier, scope)
            if named is not None:
                self._generated_uses.append((identifier, named))
                references.setdefault(identifier.name, self._reference(identifier, named, scope))
        if references:
            if alias is None:
                raise self.error(
                    CommerceQLSemanticError,
                    "an expression over generated columns in SHOW needs a name",
                    expression,
                    hint=f"add an alias: `{_expression_text(expression)} AS my_metric`",
                )
            return PlannedMetric(
                name=alias.name,
                expression=expression,
                type=value_type,
                additive=False,
                description=_expression_text(expression),
                display_name=alias.name,
                references=tuple(references.values()),
            )
        if isinstance(expression, ast.Identifier):
            field = scope.require(expression, "metric")
            assert field.metric is not None
            return PlannedMetric(
                name=alias.name if alias else expression.name,
                expression=expression,
                type=value_type,
                additive=additive,
                description=field.metric.description,
                display_name=alias.name if alias else None,
            )
        if alias is None:
            raise self.error(
                CommerceQLSemanticError,
                "an expression in SHOW needs a name",
                expression,
                hint=f"add an alias: `{_expression_text(expression)} AS my_metric`",
            )
        return PlannedMetric(
            name=alias.name,
            expression=expression,
            type=value_type,
            additive=additive,
            description=_expression_text(expression),
            display_name=alias.name,
        )

    def _visualized_column(
        self,
        item: ast.VisualizeItem,
        metrics: list[PlannedMetric],
        aliases: dict[str, str],
        scope: _Scope,
        column_order: list[str],
    ) -> str:
        expression = item.expression
        if isinstance(expression, ast.Identifier):
            name = aliases.get(expression.name, expression.name)
            if any(m.name == name for m in metrics):
                return name
            # Generated columns (comparison_..., __totals) are checked by the compiler's column list.
            if "__" in name or name.startswith(("comparison_", "percent_change_")):
                return name
            if self.query.show:
                field = scope.lookup(expression)
                if field is None or field.kind != "metric":
                    raise self.error(
                        CommerceQLNameError,
                        f"VISUALIZE `{expression.name}` is not a metric of the result",
                        expression,
                        hint=did_you_mean(expression.name, [m.name for m in metrics])
                        or "visualize a metric listed in SHOW",
                    )
        metric = self._plan_metric(expression, None if isinstance(expression, ast.Identifier) else ast.Identifier(_expression_text(expression)), scope)
        if not any(m.name == metric.name for m in metrics):
            metrics.append(metric)
            column_order.append(metric.name)
        return metric.name

    def _time_dimension(self, field: Field, name: str) -> PlannedDimension:
        return PlannedDimension(
            name=name,
            source_name=field.name,
            kind=field.kind,
            type=field.name,
            description=field.description,
        )

    def _plan_dimension(
        self,
        item: ast.GroupItem,
        scope: _Scope,
        aliases: dict[str, str],
        shown_dimensions: dict[str, tuple[ast.ShowItem, Field]],
    ) -> PlannedDimension:
        if item.function is not None:  # bucket(order_total, 0, 100), month(customer_first_order_date)
            return self._computed_dimensions[self.query.group_by.index(item)]
        identifier = item.dimension
        target = aliases.get(identifier.name)
        if target is not None:
            identifier = ast.Identifier(target, span=identifier.span)
        field = scope.require(identifier, "dimension")
        if field.kind == "metric":
            raise self.error(
                CommerceQLSemanticError,
                f"`{field.name}` is a metric; GROUP BY takes dimensions",
                item.dimension,
                hint=did_you_mean(field.name, scope.names(("dimension", "time"))) or "group by a dimension such as month",
            )
        if item.top is not None:
            if item.top < 1:
                raise self.error(CommerceQLSemanticError, "TOP needs a count of at least 1", item)
            if field.kind != "dimension":
                raise self.error(
                    CommerceQLSemanticError,
                    f"TOP ranks values of a dimension, not the time dimension `{field.name}`",
                    item,
                )
        if field.kind in ("grain", "cyclical"):
            return self._time_dimension(field, field.name)
        assert field.dimension is not None
        if field.dimension.type == "array":
            raise self.error(
                CommerceQLSemanticError,
                f"`{field.name}` holds a list of values and cannot be grouped",
                item.dimension,
                hint=f"filter it instead: `WHERE {field.name} CONTAINS 'value'`",
            )
        return PlannedDimension(
            name=field.name,
            source_name=field.name,
            kind="model",
            type=field.dimension.type,
            description=field.dimension.description,
            top=item.top,
            only_top=item.only,
            top_overall=item.overall,
        )

    def _concrete_dates(self, condition: ast.Condition, timezone: str) -> ast.Condition:
        """The condition with every relative date (`-90d`, `startOfMonth(-1m)`) made a date literal."""

        def value(expression: ast.Expression) -> ast.Expression:
            if isinstance(expression, ast.RelativeDate):
                day = dates_module.relative_date_value(expression.date, now=self.now, timezone=timezone)
                from commerceql.formatter import format_date

                return ast.DateLiteral(day, span=expression.span, written_as=format_date(expression.date))
            return expression

        def walk(node: ast.Condition) -> ast.Condition:
            if isinstance(node, ast.Comparison):
                return replace(node, left=value(node.left), right=value(node.right))
            if isinstance(node, ast.InList):
                return replace(node, values=tuple(value(v) for v in node.values))
            if isinstance(node, ast.Between):
                return replace(node, low=value(node.low), high=value(node.high))
            if isinstance(node, ast.Matches):
                return replace(node, parameters=tuple(replace(p, value=value(p.value)) for p in node.parameters))
            if isinstance(node, ast.Not):
                return replace(node, operand=walk(node.operand))
            if isinstance(node, ast.Logical):
                return replace(node, operands=tuple(walk(o) for o in node.operands))
            return node

        return walk(condition)

    def _segments(
        self, tables: Sequence[Table], where: ast.Condition | None, dimensions: Sequence[PlannedDimension],
        timezone: str,
    ) -> tuple[PlannedSegment, ...]:
        """The saved segments the query's WHERE and GROUP BY use, each checked on its account table."""
        names = [d.source_name for d in dimensions if d.kind == "model"]
        if where is not None:
            names += condition_names(where)
        saved = self.model.segments()
        planned: list[PlannedSegment] = []
        for name in dict.fromkeys(names):
            segment = saved.get(name)
            if segment is None or not any(
                t.dimensions.get(name) is not None and t.dimensions[name].sql.startswith(SEGMENT_MACRO + "(")
                for t in tables
            ):
                continue
            account_table = self.model.tables[segment.table]
            try:
                condition = self._concrete_dates(segment.condition, timezone)
                scope = _Scope([account_table], segment.condition_text)
                self._check_where(condition, scope)
                check_condition(condition, lambda identifier, s=scope: self._where_type(identifier, s),
                                segment.condition_text)
            except CommerceQLError as error:
                raise CommerceQLSemanticError(
                    f"the segment `{name}` ({segment.origin}) no longer fits the model: {error.message}",
                    span=error.span, source=segment.condition_text, hint=error.hint,
                ) from None
            planned.append(PlannedSegment(name, segment.kind, account_table, account_table.account_keys[segment.kind],
                                          condition))
        return tuple(planned)

    def _check_condition_size(self, condition: ast.Condition) -> None:
        leaves = sum(1 for _ in _condition_leaves(condition))
        if leaves > MAX_CONDITIONS:
            raise self.error(
                CommerceQLSemanticError,
                f"WHERE has {leaves:,} conditions; at most {MAX_CONDITIONS:,} are allowed",
                condition,
                hint="list values with IN ('a', 'b', ...) instead of many OR conditions",
            )

    def _where_type(self, identifier: ast.Identifier, scope: _Scope) -> str | None:
        field = scope.lookup(identifier)
        if field is None:
            return None
        if field.kind == "cyclical":
            return "integer"
        if field.kind == "grain":
            return "timestamp" if field.name in ("second", "minute", "hour") else "date"
        return field.type

    def _check_where(self, condition: ast.Condition, scope: _Scope) -> None:
        for leaf in _condition_leaves(condition):
            if isinstance(leaf, ast.Matches):
                self._check_matches(leaf, scope)
        for operand in condition_operands(condition):
            for identifier in identifiers(operand):
                if identifier.quoted:
                    raise self.error(
                        CommerceQLSemanticError,
                        f'"{identifier.name}" in double quotes is a column name, not a value',
                        identifier,
                        hint=f"use single quotes for text values: '{identifier.name}'",
                    )
                if identifier.name.lower() in _NAMED_DATES and scope.lookup(identifier) is None:
                    raise self.error(
                        CommerceQLSemanticError,
                        f"`{identifier.name}` names a date range of SINCE, UNTIL and DURING, not a value of a condition",
                        identifier,
                        hint="compare a date field with a date (2025-01-31) or an offset from today, such as "
                        "`customer_last_order_date < -90d` (more than 90 days ago)",
                    )
                field = scope.require(identifier, "dimension")
                if field.kind == "metric":
                    raise self.error(
                        CommerceQLSemanticError,
                        f"WHERE filters rows before aggregation, so it cannot use the metric `{field.name}`",
                        identifier,
                        hint=f"filter metrics with HAVING, e.g. `HAVING {field.name} > 100`",
                    )
            if isinstance(operand, ast.FunctionCall):
                self._reject_functions(operand, scope)

    def _check_matches(self, condition: ast.Matches, scope: _Scope) -> None:
        name = condition.subject.name
        subject = MATCHES_SUBJECTS.get(name)
        if subject is None:
            for table in scope.tables:
                reason = table.unavailable.get(name.split(".")[0])
                if reason is not None:
                    raise self.error(CommerceQLNameError, f"`{name}` has no data in this store: {reason}",
                                     condition.subject)
            raise self.error(
                CommerceQLNameError, f"unknown MATCHES subject `{name}`", condition.subject,
                hint=did_you_mean(name, MATCHES_SUBJECTS) or f"MATCHES applies to {', '.join(MATCHES_SUBJECTS)}",
            )
        lacking = [t.name for t in scope.tables if "customer" not in t.account_keys]
        if lacking:
            raise self.error(
                CommerceQLSemanticError,
                f"`{name} MATCHES` keeps rows whose customer has such records, and `{lacking[0]}` rows have no customer",
                condition,
                hint="use it FROM customers, or a table whose rows belong to a customer (sales, orders, sessions ...)",
            )
        for parameter in condition.parameters:
            problem = parameter_problem(subject, parameter)
            if problem is not None:
                message, hint = problem
                raise self.error(CommerceQLSemanticError, message, parameter, hint=hint or None)

    def _check_generated(self, identifier: ast.Identifier, named: GeneratedName, plan: QueryPlan) -> None:
        """A generated column the query names exists only with the clause that makes it: say which."""
        suffixes = [c.suffix for c in plan.comparisons]
        if named.comparison in attribution.SUFFIXES and named.comparison not in suffixes:
            raise self.error(
                CommerceQLSemanticError,
                f"`{identifier.name}` is an attribution column, and this query has no {named.clause.removeprefix('WITH ')}",
                identifier,
                hint=f"add `{named.clause}` (and GROUP BY referring_channel or order_referrer_source)"
                + (" and `WITH TOTALS`" if named.kind == "comparison_totals" and not plan.totals else ""),
            )
        if named.comparison is not None:
            if not suffixes:
                if re.fullmatch(r"(previous|last|this)_\w+|bfcm\d{4}", named.comparison):
                    hint = f"add `COMPARE TO {named.comparison}`"
                else:
                    hint = f"add the COMPARE TO period whose column suffix is `{named.comparison}`"
                if named.kind == "percent_change" and not plan.percent_change:
                    hint += " and `WITH PERCENT_CHANGE`"
                elif named.kind == "comparison_totals" and not plan.totals:
                    hint += " and `WITH TOTALS`"
                raise self.error(
                    CommerceQLSemanticError,
                    f"`{identifier.name}` is a comparison column, and this query has no COMPARE TO",
                    identifier,
                    hint=hint,
                )
            if named.comparison not in suffixes:
                raise self.error(
                    CommerceQLNameError,
                    f"`{identifier.name}` names the comparison `{named.comparison}`, and this query compares to "
                    + ", ".join(f"`{s}`" for s in suffixes),
                    identifier,
                    hint=f"write `{identifier.name.replace('__' + named.comparison, '__' + suffixes[0], 1)}`",
                )
        needed = {
            "percent_change": ("PERCENT_CHANGE", plan.percent_change),
            "totals": ("TOTALS", plan.totals),
            "comparison_totals": ("TOTALS", plan.totals),
            "group_totals": ("GROUP_TOTALS", plan.group_totals),
            "cumulative": ("CUMULATIVE_VALUES", plan.cumulative),
        }.get(named.kind)
        if needed is not None and not needed[1]:
            raise self.error(
                CommerceQLSemanticError,
                f"`{identifier.name}` is made by {named.clause}, which this query does not have",
                identifier,
                hint=f"add `WITH {needed[0]}`",
            )

    def _check_having(
        self,
        condition: ast.Condition,
        available: list[str],
        plan: QueryPlan,
        aliases: dict[str, str],
        scope: _Scope,
    ) -> None:
        for leaf in _condition_leaves(condition):
            if isinstance(leaf, ast.Matches):
                raise self.error(CommerceQLSemanticError, "MATCHES filters rows, so it belongs in WHERE, not HAVING",
                                 leaf, hint="move it to WHERE")
        for operand in condition_operands(condition):
            for identifier in identifiers(operand):
                name = aliases.get(identifier.name, identifier.name)
                if name not in available and (named := generated_name(name)) is not None:
                    self._check_generated(identifier, named, plan)
                if name not in available:
                    field = scope.lookup(identifier)
                    named = generated_name(name)
                    if field is not None and field.kind == "metric":
                        hint = f"add `{identifier.name}` to SHOW to filter on it"
                    elif named is not None and field is None:
                        hint = _absent_generated_hint(named, plan)
                    else:
                        hint = did_you_mean(identifier.name, available)
                    raise self.error(
                        CommerceQLNameError,
                        f"HAVING can only use columns of the result, and `{identifier.name}` is not one",
                        identifier,
                        hint=hint,
                    )


def _number_argument(expression: ast.Expression) -> str | None:
    return str(expression.value) if isinstance(expression, ast.NumberLiteral) else None


# A plain rename notice (a model `deprecated:` text with nothing more to say than the release).
_RENAMED = re.compile(r"^`(\w+)` was renamed `(\w+)` in (ShopifyQL [\w.-]+)$")


def _grouped_renames(notices: list[str]) -> list[str]:
    """Plain renames of one release said in one notice: "renamed in ShopifyQL 2026-04: `a` is now `b`, ..."."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for notice in notices:
        match = _RENAMED.match(notice)
        if match:
            groups.setdefault(match.group(3), []).append((match.group(1), match.group(2)))
    out: list[str] = []
    for notice in notices:
        match = _RENAMED.match(notice)
        if match is None:
            out.append(notice)
            continue
        pairs = groups.pop(match.group(3), None)
        if pairs is None:
            continue  # said with the first of its release
        if len(pairs) == 1:
            out.append(notice)
        else:
            out.append(f"renamed in {match.group(3)}: " + ", ".join(f"`{old}` is now `{new}`" for old, new in pairs))
    return out


def _absent_generated_hint(named: GeneratedName, plan: QueryPlan) -> str:
    """Why a well-formed generated column is not in the result, and what would put it there."""
    shown = next((m for m in plan.metrics if m.name == named.metric), None)
    if shown is not None and shown.compares and named.kind != "totals":
        return f"`{named.metric}` reads a comparison column, so it has no comparison or group totals columns of its own"
    if shown is not None and not shown.additive and named.kind == "cumulative":
        return f"`{named.metric}` is not a sum, so it has no running total"
    if shown is None:
        return f"add `{named.metric}` to SHOW: its generated columns come with it"
    return f"the result's generated columns are listed by `explain`; `{named.metric}` has no such column here"


def _has_field(table: Table, name: str) -> bool:
    return name.lower() in TIME_NAMES or table.metric(name) is not None or name in table.dimensions


def _metric_names_of(expression: ast.Expression) -> list[str]:
    return [identifier.name for identifier in identifiers(expression)]


def resolve(
    query: ast.Query,
    model: SemanticModel,
    *,
    now: dt.datetime,
    timezone: str,
    currency: str = "USD",
    accounts: AccountSettings | None = None,
    rates: ExchangeRates | None = None,
) -> QueryPlan:
    """Check `query` against `model` and return the concrete plan the compiler turns into SQL."""
    try:
        return Resolver(query, model, now=now, timezone=timezone, currency=currency, accounts=accounts,
                        rates=rates).resolve()
    except CommerceQLError as error:
        error.with_source(query.source)
        raise
