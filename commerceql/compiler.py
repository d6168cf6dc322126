"""Compilation: `QueryPlan` → one DuckDB SQL statement with bound parameters.

Shape of the statement (CTEs, each present only when the plan needs it):

    top_i        ranking of a `TOP n` dimension (per time bucket unless OVERALL)
    agg_w_t      per date window w (0 = reporting period, 1.. = comparisons) and FROM table t:
                 base metrics aggregated at every level the plan needs, in ONE scan, using
                 GROUPING SETS (rows, grand totals, per-dimension group totals)
    lvl_w_L      the tables' aggregates joined on their shared dimensions at level L
    spine        the dense calendar (TIMESERIES)
    keys         every result row's dimension values (spine × series, or the union of the
                 reporting and comparison rows)
    result       keys joined to every level; metric expressions computed over base metrics, so
                 ratios are ratios of sums at every level (rows, totals, group totals, comparisons)
    cumulated    running sums (WITH CUMULATIVE_VALUES)
    final        HAVING, ORDER BY, LIMIT / OFFSET

User values only ever appear as `$pN` parameters; identifiers come only from the model.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from commerceql import ast, attribution, calculations, currency, derived
from commerceql import dates as dates_module
from commerceql.columns import (
    ColumnInfo,
    comparison_name,
    comparison_totals_name,
    group_totals_name,
    output_columns,
    percent_change_name,
    totals_name,
)
from commerceql.dialect import DUCKDB, Dialect, expand_calls, quoted_end
from commerceql.errors import CommerceQLSemanticError
from commerceql.matches import SUBJECTS as MATCHES_SUBJECTS
from commerceql.model.semantic import SEGMENT_MACRO, Table
from commerceql.plan import CYCLICAL_RANGES, AccountSettings, PlannedDimension, PlannedMetric, QueryPlan
from commerceql.walk import condition_operands, identifiers

_DATE_GRAINS = ("day", "week", "month", "quarter", "year")
_FIXED_SECONDS = {"second": 1, "minute": 60, "hour": 3600}
_GRAIN_ORDER = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
# A calendar spine longer than this is refused before running (TIMESERIES second over years).
MAX_SPINE_PERIODS = 100_000
# A gap-filled result (series × periods) larger than this is refused while the query runs.
MAX_RESULT_KEYS = 2_000_000
RESULT_LIMIT_MARKER = "commerceql result limit:"


@dataclass(frozen=True)
class CompiledQuery:
    sql: str
    parameters: dict[str, object]
    columns: tuple[ColumnInfo, ...]
    plan: QueryPlan


def quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _metric_names(expression: ast.Expression) -> list[str]:
    return [identifier.name for identifier in identifiers(expression)]


# ---------------------------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------------------------


class _Compiler:
    def __init__(self, plan: QueryPlan, dialect: Dialect = DUCKDB) -> None:
        self.plan = plan
        self.dialect = dialect
        self.q = dialect.quote_identifier
        self.parameters: dict[str, object] = {}
        self.ctes: list[tuple[str, str]] = []
        self.tz = plan.timezone
        self.dims = list(plan.dimensions)
        self.grain = next((d for d in self.dims if d.kind == "grain"), None)
        self.base_metrics = self._base_metrics_by_table()
        self.levels = self._levels()
        # Derived relations (commerceql.derived) this query reads, emitted as leading CTEs.
        self.derived_used: list[str] = []

    # -- helpers -------------------------------------------------------------------------
    def param(self, value: object) -> str:
        name = f"p{len(self.parameters)}"
        self.parameters[name] = value
        return self.dialect.parameter(name)

    def relation(self, name: str) -> str:
        """A relation as written in FROM / JOIN, noting the derived ones this query needs."""
        if name in derived.DERIVED_RELATIONS and name not in self.derived_used:
            self.derived_used.append(name)
        return self.q(name)

    def derived_ctes(self) -> list[tuple[str, str]]:
        if not self.derived_used:
            return []
        if self.plan.as_of is None:
            raise self.error("account fields need the store's clock (the plan has no as-of time)", self.plan.query)
        context = derived.DerivedContext(
            dialect=self.dialect, timezone=self.tz, as_of=self.plan.as_of, settings=self.plan.accounts,
            param=self.param, grain=self.grain.source_name if self.grain else None, window=self.plan.window,
            comparison_windows=tuple(c.window for c in self.plan.comparisons),
        )
        return [(name, derived.derived_relation_sql(name, context)) for name in self.derived_used]

    def error(self, message: str, node: object, hint: str | None = None) -> CommerceQLSemanticError:
        return CommerceQLSemanticError(message, span=getattr(node, "span", None), source=self.plan.query.source, hint=hint)

    def _base_metrics_by_table(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {t.name: [] for t in self.plan.tables}
        for metric in self.plan.metrics:
            for name in metric.model_metric_names():
                table = self._metric_table(name)
                if name not in result[table.name]:
                    result[table.name].append(name)
        return result

    def _metric_table(self, name: str) -> Table:
        for table in self.plan.tables:
            if table.metric(name) is not None:
                return table
        raise AssertionError(f"metric {name} was resolved but belongs to no table")

    def _levels(self) -> dict[str, int]:
        """GROUPING() bitmask of each aggregation level the plan needs."""
        k = len(self.dims)
        full = (1 << k) - 1
        levels = {"rows": 0}
        if self.plan.totals:
            levels["totals"] = full
        if self.plan.group_totals:
            for i in range(k):
                levels[f"group_{i}"] = full & ~(1 << (k - 1 - i))
        if self.grain is not None and self.across_time_metrics():
            levels["across_time"] = 1 << (k - 1 - self.dims.index(self.grain))
        return levels

    def undefined_when_empty(self) -> set[str]:
        """Base metrics with no value over no rows: non-additive averages, ratios and medians."""
        return {n for names in self.base_metrics.values() for n in names
                if (m := self._metric_table(n).metric(n)) is not None and not m.additive and m.type != "count"}

    def across_time_metrics(self) -> set[str]:
        """Base metrics evaluated over all the query's periods (Metric.across_time)."""
        return {n for names in self.base_metrics.values() for n in names
                if (m := self._metric_table(n).metric(n)) is not None and m.across_time}

    def grouping(self, group: list[str], companions: dict[int, str] | None = None) -> tuple[str, str]:
        """The GROUP BY clause for every level the plan needs, and the `__level` column naming each.

        `companions` are expressions grouped together with one dimension (kept at exactly the
        levels that keep it), such as the flag of an ONLY TOP dimension's values outside the top.
        """
        companions = companions or {}

        def with_companions(kept: list[int]) -> list[str]:
            return [group[i] for i in kept] + [companions[i] for i in kept if i in companions]

        if group and len(self.levels) > 1:
            sets = []
            for mask in self.levels.values():
                kept = [i for i in range(len(group)) if not mask & (1 << (len(group) - 1 - i))]
                sets.append("(" + ", ".join(with_companions(kept)) + ")")
            if companions:
                # Spark's grouping_id must name every grouped column, companions included; the
                # level counts the dimensions only, so it is summed from one GROUPING per dimension.
                level = " + ".join(f"GROUPING({g}) * {1 << (len(group) - 1 - i)}" for i, g in enumerate(group))
                return "\n  GROUP BY GROUPING SETS (" + ", ".join(sets) + ")", f"({level}) AS __level"
            return "\n  GROUP BY GROUPING SETS (" + ", ".join(sets) + ")", f"{self.dialect.grouping_level(group)} AS __level"
        if group:
            return "\n  GROUP BY " + ", ".join(with_companions(list(range(len(group))))), "0 AS __level"
        return "", "0 AS __level"

    def top_partition(self, index: int) -> list[int]:
        """The dimensions a `TOP n` dimension is ranked within: every other grouped dimension
        without TOP of its own, except the time dimensions when the TOP is OVERALL.

        `GROUP BY company_tier, TOP 3 product_title` lists each tier's own top 3 products.
        """
        dimension = self.dims[index]
        return [
            j for j, other in enumerate(self.dims)
            if j != index and other.top is None and not (dimension.top_overall and other.is_time)
        ]

    def keeps_only_top_outside(self, dimension: PlannedDimension) -> bool:
        """True when an ONLY TOP dimension's other values stay in the aggregation, flagged.

        Totals and group totals are of all the query's rows, as with LIMIT: ONLY TOP drops the
        `Other` row from the rows, not its sales from the totals (docs/language.md).
        """
        return dimension.only_top and (self.plan.totals or self.plan.group_totals)

    def time_column(self, table: Table) -> str:
        if table.time_column is None:
            raise CommerceQLSemanticError(
                f"table `{table.name}` has no time column, so it has no time dimensions or date ranges",
                source=self.plan.query.source,
            )
        return f"{table.name}.{self.q(table.time_column)}"

    def local_time(self, table: Table) -> str:
        return self.dialect.local_timestamp(self.tz, self.time_column(table))

    def bucket(self, grain: str, table: Table) -> str:
        """The bucket of `table`'s time column at `grain`.

        Day and coarser grains are local calendar dates. Finer grains are the *instant*
        (TIMESTAMPTZ) at which the local hour/minute/second starts: on the day clocks fall back
        the two local 01:00 hours are two buckets, and the hour that is skipped in spring is none.
        The final SELECT labels them in local time.
        """
        local = self.local_time(table)
        if grain in _DATE_GRAINS:
            return f"CAST(date_trunc('{grain}', {local}) AS DATE)"
        instant = self.time_column(table)
        return f"({instant} - ({local} - date_trunc('{grain}', {local})))"

    def cyclical(self, name: str, local: str) -> str:
        return {
            "hour_of_day": f"hour({local})",
            "day_of_week": self.dialect.day_of_week(local),
            "week_of_year": f"weekofyear({local})",
            "month_of_year": f"month({local})",
        }[name]

    def local_instant(self, value: dt.datetime) -> dt.datetime:
        """The instant of a naive local wall-clock time in the query's time zone."""
        return value.replace(tzinfo=ZoneInfo(self.tz))

    def align(self, bucket: str, grain: str, window_index: int) -> str:
        """`bucket` (of comparison window `window_index`) moved onto the reporting period's bucket.

        Applied to grouped buckets rather than to every row: the shift depends only on the bucket.
        A comparison that is a whole number of calendar months away (previous_year,
        previous_quarter, previous_month) lines up sub-month buckets by calendar date: Dec 3 with
        Dec 3 of the year before, never with the day a leap day pushed it to. A comparison bucket
        with no calendar twin (Feb 29 against a common year) maps to NULL: it counts in the
        comparison's totals only. Other comparisons line up bucket by bucket (the n-th day of the
        comparison with the n-th day of the reporting period).
        """
        if window_index == 0:
            return bucket
        comparison = self.plan.comparisons[window_index - 1]
        shift = comparison.shift
        if (
            grain in ("day", "hour", "minute", "second")
            and shift is not None
            and shift.months
            and not shift.delta
        ):
            return self._align_by_calendar(bucket, grain, -shift.months)
        base_first = dates_module.truncate(self.plan.window.start, grain)
        comparison_first = dates_module.truncate(comparison.window.start, grain)
        if grain in _DATE_GRAINS:
            base_sql = f"CAST({self.param(base_first.date())} AS DATE)"
            comparison_sql = f"CAST({self.param(comparison_first.date())} AS DATE)"
            d = self.dialect
            if grain in ("day", "week"):
                shifted = d.add_days(base_sql, d.diff("day", comparison_sql, bucket))
            elif grain in ("month", "quarter"):
                shifted = d.add_months(base_sql, d.diff("month", comparison_sql, bucket))
            else:  # year
                shifted = d.add_months(base_sql, f"12 * {d.diff('year', comparison_sql, bucket)}")
            return f"CAST({shifted} AS DATE)"
        # Instants: count elapsed units from the epoch, independent of any session time zone.
        instant = self.dialect.instant_type
        base_sql = f"CAST({self.param(self.local_instant(base_first))} AS {instant})"
        comparison_sql = f"CAST({self.param(self.local_instant(comparison_first))} AS {instant})"
        seconds = _FIXED_SECONDS[grain]
        epoch = self.dialect.epoch_seconds
        steps = f"CAST(round(({epoch(bucket)} - {epoch(comparison_sql)}) / {seconds}) AS BIGINT)"
        return self.dialect.add_instant(base_sql, grain, steps)

    def _align_by_calendar(self, bucket: str, grain: str, months: int) -> str:
        if grain == "day":
            moved = f"CAST({self.dialect.add_months(bucket, str(months))} AS DATE)"
            return f"(CASE WHEN day({moved}) = day({bucket}) THEN {moved} END)"
        local = self.dialect.local_timestamp(self.tz, bucket)
        moved_local = f"({self.dialect.add_months_to_wall(local, str(months))})"
        moved = self.dialect.instant_of_local(self.tz, moved_local)
        return f"(CASE WHEN day({moved_local}) = day({local}) THEN {moved} END)"

    def dimension_sql(self, dimension: PlannedDimension | str, table: Table, window_index: int = 0) -> str:
        name = dimension.source_name if isinstance(dimension, PlannedDimension) else dimension
        kind = dimension.kind if isinstance(dimension, PlannedDimension) else None
        if kind is None and name.lower() in (*dates_module.TIME_GRAINS, *dates_module.CYCLICAL_DIMENSIONS):
            name = name.lower()
        if kind == "grain" or (kind is None and name in dates_module.TIME_GRAINS):
            return self.align(self.bucket(name, table), name, window_index)
        if kind == "cyclical" or (kind is None and name in dates_module.CYCLICAL_DIMENSIONS):
            return self.cyclical(name, self.local_time(table))
        return f"({self.model_sql(table.dimensions[name].sql)})"

    def model_sql(self, sql: str) -> str:
        """Model SQL with its macros (local_date, ..., in_segment) expanded for this query."""
        if SEGMENT_MACRO in sql:
            sql = expand_calls(sql, SEGMENT_MACRO, self.segment_membership)
        return self.dialect.expand_macros(sql, self.tz)

    def segment_membership(self, argument: str) -> str:
        """`in_segment(name, key)`: whether the row's account (`key`) meets the segment's condition."""
        name, _, key_sql = argument.partition(",")
        segment = next((s for s in self.plan.segments if s.name == name.strip()), None)
        if segment is None:  # the resolver plans every segment a query uses
            raise self.error(f"the segment `{name.strip()}` was not planned", self.plan.query)
        table = segment.table

        def resolve_name(identifier: ast.Identifier) -> str:
            return self.dimension_sql(identifier.name, table)

        def type_of(identifier: ast.Identifier) -> str | None:
            dimension = table.dimensions.get(identifier.name)
            return dimension.type if dimension is not None else None

        condition = self.condition_sql(segment.condition, table, resolve_name, type_of)
        joins = self.join_sql(table, [condition])
        return (
            f"(({key_sql.strip()}) IN (SELECT {segment.key_sql} FROM {self.relation(table.relation)} AS {table.name}"
            f"{joins} WHERE {condition}))"
        )

    def window_filter(self, table: Table, window: dates_module.DateWindow) -> list[str]:
        if window.start is None and window.end is None:
            return []
        if table.time_column is None:
            raise CommerceQLSemanticError(
                f"table `{table.name}` has no time column, so SINCE, UNTIL and DURING do not apply to it",
                source=self.plan.query.source,
                hint="remove the date range",
            )
        column = f"{table.name}.{self.q(table.time_column)}"
        zone = ZoneInfo(self.tz)
        clauses = []
        if window.start is not None:
            clauses.append(f"{column} >= {self.param(window.start.replace(tzinfo=zone))}")
        if window.end is not None:
            clauses.append(f"{column} < {self.param(window.end.replace(tzinfo=zone))}")
        return clauses

    # -- conditions ------------------------------------------------------------------------
    def value_sql(self, expression: ast.Expression, table: Table | None, resolve_name) -> str:
        if isinstance(expression, ast.Identifier):
            return resolve_name(expression)
        if isinstance(expression, ast.StringLiteral):
            return self.param(expression.value)
        if isinstance(expression, ast.NumberLiteral):
            value = expression.value
            return self.param(float(value) if isinstance(value, Decimal) else value)
        if isinstance(expression, ast.BooleanLiteral):
            return "TRUE" if expression.value else "FALSE"
        if isinstance(expression, ast.NullLiteral):
            return "NULL"
        if isinstance(expression, ast.DateLiteral):
            return self.param(expression.value)
        if isinstance(expression, ast.Negation):
            return f"(-{self.value_sql(expression.operand, table, resolve_name)})"
        if isinstance(expression, ast.BinaryOperation):
            left = self.value_sql(expression.left, table, resolve_name)
            right = self.value_sql(expression.right, table, resolve_name)
            if expression.operator == "/":
                return f"({left} / NULLIF({right}, 0))"
            return f"({left} {expression.operator} {right})"
        raise self.error("this expression cannot be used in a condition", expression)

    def condition_sql(self, condition: ast.Condition, table: Table | None, resolve_name, type_of) -> str:
        def value(expression: ast.Expression) -> str:
            return self.value_sql(expression, table, resolve_name)

        def is_field(expression: ast.Expression) -> bool:
            return isinstance(expression, ast.Identifier)

        if isinstance(condition, ast.Comparison):
            left, right = value(condition.left), value(condition.right)
            if condition.operator == "!=":
                # ShopifyQL keeps rows whose field is NULL for !=, unlike SQL.
                nulls = [f"{v} IS NULL" for e, v in ((condition.left, left), (condition.right, right)) if is_field(e)]
                return f"(({left} <> {right}){''.join(' OR ' + n for n in nulls)})"
            return f"({left} {condition.operator} {right})"
        if isinstance(condition, ast.InList):
            operand = value(condition.operand)
            values = ", ".join(value(v) for v in condition.values)
            if condition.negated:
                nulls = f" OR {operand} IS NULL" if is_field(condition.operand) else ""
                return f"(({operand} NOT IN ({values})){nulls})"
            return f"({operand} IN ({values}))"
        if isinstance(condition, ast.Between):
            operand, low, high = value(condition.operand), value(condition.low), value(condition.high)
            negation = "NOT " if condition.negated else ""
            return f"({operand} {negation}BETWEEN {low} AND {high})"
        if isinstance(condition, ast.StringMatch):
            operand = value(condition.operand)
            needle = value(condition.value)
            operand_type = type_of(condition.operand) if isinstance(condition.operand, ast.Identifier) else None
            if operand_type == "array":
                if condition.kind != "contains":
                    raise self.error(
                        f"`{condition.operand.name}` is a list; only CONTAINS applies to it",  # type: ignore[union-attr]
                        condition,
                    )
                test = self.dialect.list_contains_ignoring_case(operand, needle)
            else:
                text = self.dialect.text_type
                test = self.dialect.string_test(
                    condition.kind, f"lower(CAST({operand} AS {text}))", f"lower(CAST({needle} AS {text}))"
                )
            if condition.negated:
                nulls = f" OR {operand} IS NULL" if is_field(condition.operand) else ""
                return f"((NOT {test}){nulls})"
            return f"({test})"
        if isinstance(condition, ast.IsTest):
            operand = value(condition.operand)
            negation = "NOT " if condition.negated else ""
            return f"({operand} IS {negation}{condition.test.upper()})"
        if isinstance(condition, ast.BareCondition):
            return f"({value(condition.operand)})"
        if isinstance(condition, ast.Matches):
            if table is None or "customer" not in table.account_keys:  # the resolver refuses these
                raise self.error("MATCHES needs rows that belong to a customer", condition)
            return self.matches_sql(condition, table.account_keys["customer"])
        if isinstance(condition, ast.Not):
            inner = self.condition_sql(condition.operand, table, resolve_name, type_of)
            return f"(NOT COALESCE({inner}, FALSE))"
        if isinstance(condition, ast.Logical):
            joiner = " AND " if condition.operator == "and" else " OR "
            return "(" + joiner.join(self.condition_sql(c, table, resolve_name, type_of) for c in condition.operands) + ")"
        raise self.error("unsupported condition", condition)

    def matches_sql(self, condition: ast.Matches, key_sql: str) -> str:
        """Whether the row's customer (`key_sql`) has records meeting the MATCHES (see commerceql.matches)."""
        subject = MATCHES_SUBJECTS[condition.subject.name]
        rows: list[str] = []
        tests: list[str] = []
        for parameter in condition.parameters:
            spec = subject.parameters[parameter.name]
            operator = spec.fixed_operator or parameter.operator
            operator = "<>" if operator == "!=" else operator
            value = self.value_sql(parameter.value, None, lambda identifier: "NULL")
            if spec.role == "row":
                rows.append(f"{self.model_sql(spec.sql)} {operator} {value}")
            else:
                tests.append(f"COALESCE(m.a{len(tests)}, 0) {operator} {value}")
        aggregates = [subject.parameters[p.name].sql for p in condition.parameters
                      if subject.parameters[p.name].role == "aggregate"]
        if not aggregates:  # at least one such record
            aggregates = ["COUNT(*)"]
            tests = ["COALESCE(m.a0, 0) >= 1"]
        if self.plan.as_of is None:
            raise self.error("MATCHES needs the store's clock (the plan has no as-of time)", condition)
        source = subject.source.format(orders=self.q("orders"), line_items=self.q("line_items"),
                                       products=self.q("products"))
        filters = ["o.customer_id IS NOT NULL", "NOT COALESCE(o.is_test, FALSE)",
                   f"o.created_at <= {self.param(self.plan.as_of)}", *rows]
        per_customer = (
            f"SELECT o.customer_id AS k, {', '.join(f'{a} AS a{i}' for i, a in enumerate(aggregates))} "
            f"FROM {source} WHERE {' AND '.join(filters)} GROUP BY o.customer_id"
        )
        # From every customer, so that one with no such record has a count of 0 (count_at_most = 1).
        members = (
            f"SELECT u.customer_id FROM {self.relation('customers')} AS u LEFT JOIN ({per_customer}) AS m "
            f"ON m.k = u.customer_id WHERE {' AND '.join(tests)}"
        )
        test = f"(({key_sql}) IN ({members}))"
        return f"(NOT COALESCE({test}, FALSE))" if condition.negated else test

    def where_sql(self, table: Table) -> list[str]:
        if self.plan.where is None:
            return []

        def resolve_name(identifier: ast.Identifier) -> str:
            return self.dimension_sql(identifier.name, table)

        def type_of(identifier: ast.Identifier) -> str | None:
            dimension = table.dimensions.get(identifier.name)
            if dimension is not None:
                return dimension.type
            if identifier.name in dates_module.CYCLICAL_DIMENSIONS:
                return "integer"
            return None

        return [self.condition_sql(self.plan.where, table, resolve_name, type_of)]

    # -- metric expressions --------------------------------------------------------------------
    def metric_value(self, expression: ast.Expression, column_of) -> str:
        """SQL of a planned metric expression, with base metrics read through `column_of(name)`."""
        if isinstance(expression, ast.Identifier):
            return column_of(expression.name)
        if isinstance(expression, ast.NumberLiteral):
            return str(expression.value)
        if isinstance(expression, ast.Negation):
            return f"(-{self.metric_value(expression.operand, column_of)})"
        if isinstance(expression, ast.BinaryOperation):
            left = self.metric_value(expression.left, column_of)
            right = self.metric_value(expression.right, column_of)
            if expression.operator == "/":
                return f"(CAST({left} AS DOUBLE) / NULLIF({right}, 0))"
            return f"({left} {expression.operator} {right})"
        raise self.error("unsupported metric expression", expression)

    # -- TOP ------------------------------------------------------------------------------------
    def top_ctes(self) -> dict[int, tuple[str, Table]]:
        """One ranking CTE per `TOP n` dimension, keyed by the dimension's position."""
        result: dict[int, tuple[str, Table]] = {}
        for index, dimension in enumerate(self.dims):
            if dimension.top is None:
                continue
            metric, descending = self._ranking_metric()
            table = self._metric_table(_metric_names(metric.expression)[0])
            if len(set(self._metric_table(n).name for n in _metric_names(metric.expression))) > 1:
                raise self.error(f"TOP cannot rank by `{metric.name}`, which spans several tables", self.plan.query)
            value_sql = self.dimension_sql(dimension, table)
            partition = self.top_partition(index)
            select = [f"{self.dimension_sql(self.dims[j], table)} AS __p{j}" for j in partition]
            select.append(f"{value_sql} AS __value")
            group = [f"__p{j}" for j in partition] + ["__value"]
            rank_sql = self.metric_value(metric.expression, lambda n, t=table: f"({self.metric_sql(t, n)})")
            select.append(f"{rank_sql} AS __rank_value")
            joins = self.join_sql(table, [*select, *self.where_sql_preview(table)])
            filters = self.window_filter(table, self.plan.window) + self.where_sql(table)
            order = "DESC" if descending else "ASC"
            partition_sql = f"PARTITION BY {', '.join(f'__p{j}' for j in partition)} " if partition else ""
            sql = (
                f"SELECT {', '.join(select)}, TRUE AS __in_top\n"
                f"  FROM {self.relation(table.relation)} AS {table.name}{joins}\n"
                + (f"  WHERE {' AND '.join(filters)}\n" if filters else "")
                + f"  GROUP BY {', '.join(group)}\n"
                f"  QUALIFY row_number() OVER ({partition_sql}ORDER BY __rank_value {order} NULLS LAST, __value NULLS LAST) <= {int(dimension.top)}"
            )
            name = f"top_{index}"
            self.ctes.append((name, sql))
            result[index] = (name, table)
        return result

    def _ranking_metric(self) -> tuple[PlannedMetric, bool]:
        # A metric over generated columns (another period, the totals) ranks nothing by itself.
        metrics = {m.name: m for m in self.plan.metrics if not m.references}
        for column, descending in self.plan.order_by:
            if column in metrics:
                return metrics[column], descending
        if not metrics:
            raise self.error("TOP needs a metric to rank by", self.plan.query, hint="add a metric to SHOW")
        return next(iter(metrics.values())), True

    def join_sql(self, table: Table, fragments: list[str]) -> str:
        joins = table.joins_needed(fragments)
        return "".join(
            f"\n  LEFT JOIN {self.relation(j.relation)} AS {j.alias} ON {j.on}" for j in joins
        ) + self.rate_join(table, fragments)

    # -- WITH CURRENCY (commerceql.currency) ---------------------------------------------------
    def metric_sql(self, table: Table, name: str) -> str:
        """A base metric's aggregate SQL; money metrics read each row's money at its day's rate."""
        sql = self.model_sql(table.metric_sql(name))
        conversion = self.plan.conversion
        metric = table.metric(name)
        if conversion is None or metric is None or metric.type != "money":
            return sql
        factor = currency.guarded_factor(conversion, self.row_date(table), self.dialect)
        relations = {table.name: table.relation} | {j.alias: j.relation for j in table.joins.values()}
        return currency.convert_money_sql(sql, relations, factor)

    def row_date(self, table: Table) -> str:
        return self.dialect.local_date(self.tz, self.time_column(table))

    def rate_join(self, table: Table, fragments: list[str]) -> str:
        if self.plan.conversion is None or not any(f"{currency.RATE_ALIAS}." in f for f in fragments):
            return ""
        return currency.rate_join(self.row_date(table))

    def rates_ctes(self) -> list[tuple[str, str]]:
        if self.plan.conversion is None:
            return []
        windows = [self.plan.window, *(c.window for c in self.plan.comparisons)]
        # A rolling or period-to-date column reads days before the period (commerceql.calculations).
        windows += [calculations.calculation_window(self.plan, m.calculation) for m in self.plan.metrics
                    if m.calculation is not None]
        return [(currency.RATES_RELATION, currency.rates_sql(self.plan.conversion, windows, self.dialect, self.param))]

    # -- aggregation per window and table ---------------------------------------------------------
    def aggregate_cte(self, table: Table, window_index: int, tops: dict[int, tuple[str, Table]]) -> str:
        window = self.plan.window if window_index == 0 else self.plan.comparisons[window_index - 1].window
        credited = self.plan.comparisons[window_index - 1].attribution if window_index else None
        select: list[str] = []
        group: list[str] = []
        extra_joins: list[str] = []
        extra_filters: list[str] = []
        companions: dict[int, str] = {}
        if credited is not None:
            # An attribution column: the same rows, each order's channel read from the touchpoint
            # the model credits (commerceql.attribution); ANY_CLICK repeats an order per channel.
            touch = self.attribution_cte(credited)
            extra_joins.append(f"\n  LEFT JOIN {touch} ON {touch}.order_id = {table.name}.order_id")
        for index, dimension in enumerate(self.dims):
            if credited is not None and dimension.kind == "model" and (
                    column := attribution.CHANNEL_DIMENSIONS.get(dimension.source_name)) is not None:
                value_sql = group_sql = f"{self.attribution_cte(credited)}.{column}"
            elif credited is not None:
                value_sql = group_sql = self.dimension_sql(dimension, table)
            elif dimension.kind == "grain" and window_index > 0:
                group_sql = self.dimension_sql(dimension, table)
                value_sql = self.align(group_sql, dimension.source_name, window_index)
            else:
                value_sql = group_sql = self.dimension_sql(dimension, table, window_index)
            if index in tops:
                top_name, _ = tops[index]
                conditions = [f"{top_name}.__value IS NOT DISTINCT FROM {self.dimension_sql(dimension, table)}"]
                conditions += [
                    f"{top_name}.__p{j} IS NOT DISTINCT FROM {self.dimension_sql(self.dims[j], table, window_index)}"
                    for j in self.top_partition(index)
                ]
                extra_joins.append(f"\n  LEFT JOIN {top_name} ON {' AND '.join(conditions)}")
                if self.keeps_only_top_outside(dimension):
                    value_sql = f"(CASE WHEN {top_name}.__in_top THEN {self.dimension_sql(dimension, table)} END)"
                    companions[index] = f"({top_name}.__in_top IS NULL)"
                    select.append(f"{companions[index]} AS __outside_{index}")
                elif dimension.only_top:
                    extra_filters.append(f"{top_name}.__in_top")
                    value_sql = self.dimension_sql(dimension, table)
                else:
                    text = self.dimension_sql(dimension, table)
                    if dimension.type != "string":
                        text = f"CAST({text} AS {self.dialect.text_type})"
                    value_sql = f"(CASE WHEN {top_name}.__in_top THEN {text} ELSE 'Other' END)"
                group_sql = value_sql
            select.append(f"{value_sql} AS {self.q(dimension.name)}")
            group.append(group_sql)
        metric_sql = {name: self.metric_sql(table, name) for name in self.base_metrics[table.name]}
        for name, sql in metric_sql.items():
            select.append(f"{sql} AS {self.q('m__' + name)}")
        if not metric_sql:
            select.append("COUNT(*) AS __rows")
        group_by, level = self.grouping(group, companions)
        select.append(level)
        joins = self.join_sql(table, select + self.where_sql_preview(table))
        filters = self.window_filter(table, window) + self.where_sql(table) + extra_filters
        return (
            "SELECT " + ",\n    ".join(select) + f"\n  FROM {self.relation(table.relation)} AS {table.name}{joins}"
            + "".join(extra_joins)
            + (f"\n  WHERE {' AND '.join(filters)}" if filters else "")
            + group_by
        )

    def attribution_cte(self, suffix: str) -> str:
        """The CTE of one attribution model's credited touchpoints (added on first use)."""
        name = f"touch_{suffix}"
        if all(existing != name for existing, _ in self.ctes):
            model = next(m for m in attribution.MODELS.values() if m.suffix == suffix)
            self.ctes.append((name, attribution.touchpoints_sql(model, self.dialect,
                                                              self.relation(attribution.SESSIONS_RELATION))))
        return name

    def where_sql_preview(self, table: Table) -> list[str]:
        """Dimension SQL the WHERE clause touches (to decide which joins it needs)."""
        if self.plan.where is None:
            return []
        fragments = []
        for operand in condition_operands(self.plan.where):
            # Arithmetic operands (`product_variant_price * 2`) need their fields' joins too.
            for identifier in identifiers(operand):
                if identifier.name in table.dimensions:
                    fragments.append(table.dimensions[identifier.name].sql)
        return fragments

    def level_cte(self, window_index: int, level: str) -> str:
        """The tables' aggregates at one level, joined on the dimensions kept at that level."""
        mask = self.levels[level]
        k = len(self.dims)
        kept = [d for i, d in enumerate(self.dims) if not mask & (1 << (k - 1 - i))]
        parts = []
        # The values an ONLY TOP dimension keeps outside its top count in the totals, not in the rows.
        outside = "".join(
            f" AND NOT __outside_{i}" for i, d in enumerate(self.dims) if d in kept and self.keeps_only_top_outside(d)
        )
        for t_index, table in enumerate(self.plan.tables):
            name = f"agg_{window_index}_{t_index}"
            columns = [self.q(d.name) for d in kept] + [
                self.q("m__" + n) for n in self.base_metrics[table.name]
            ]
            if not columns:
                columns = ["__rows"]
            parts.append((f"(SELECT {', '.join(columns)} FROM {name} WHERE __level = {mask}{outside})", table))
        if len(parts) == 1:
            return parts[0][0].strip("()")
        sql, _ = parts[0]
        select_dims = []
        joined = f"{sql} AS t0"
        for i, (part, _table) in enumerate(parts[1:], start=1):
            on = " AND ".join(
                f"t0.{self.q(d.name)} IS NOT DISTINCT FROM t{i}.{self.q(d.name)}" for d in kept
            ) or "TRUE"
            joined += f"\n  FULL OUTER JOIN {part} AS t{i} ON {on}"
        for d in kept:
            options = ", ".join(f"t{i}.{self.q(d.name)}" for i in range(len(parts)))
            select_dims.append(f"COALESCE({options}) AS {self.q(d.name)}")
        select_metrics = []
        for i, (_part, table) in enumerate(parts):
            for n in self.base_metrics[table.name]:
                select_metrics.append(f"t{i}.{self.q('m__' + n)}")
        return f"SELECT {', '.join(select_dims + select_metrics) or '1 AS __one'}\n  FROM {joined}"

    # -- the whole statement ------------------------------------------------------------------------
    # -- TOP over additive metrics: rank and fold pre-aggregated rows ------------------------
    def can_prefold(self) -> bool:
        """True when TOP's `Other` row can be summed from per-value aggregates.

        That holds when the query reads one table and every base metric is additive (sums), so
        the fact table is scanned once per period instead of twice. Distinct counts and ratios
        are re-aggregated from the raw rows instead.
        """
        if len(self.plan.tables) != 1 or not any(d.top is not None for d in self.dims):
            return False
        table = self.plan.tables[0]
        names = self.base_metrics[table.name]
        if not names or not all((m := table.metric(n)) is not None and m.additive for n in names):
            return False
        ranking, _ = self._ranking_metric()
        return ranking.additive

    def prefolded_ctes(self) -> None:
        table = self.plan.tables[0]
        metrics = self.base_metrics[table.name]
        windows = range(1 + len(self.plan.comparisons))
        for w in windows:
            window = self.plan.window if w == 0 else self.plan.comparisons[w - 1].window
            select = [f"{self.dimension_sql(d, table)} AS __d{i}" for i, d in enumerate(self.dims)]
            select += [f"{self.metric_sql(table, n)} AS {self.q('m__' + n)}" for n in metrics]
            joins = self.join_sql(table, select + self.where_sql_preview(table))
            filters = self.window_filter(table, window) + self.where_sql(table)
            self.ctes.append(
                (
                    f"agg_pre_{w}",
                    "SELECT " + ",\n    ".join(select)
                    + f"\n  FROM {self.relation(table.relation)} AS {table.name}{joins}"
                    + (f"\n  WHERE {' AND '.join(filters)}" if filters else "")
                    + "\n  GROUP BY " + ", ".join(f"__d{i}" for i in range(len(self.dims))),
                )
            )
        ranking, descending = self._ranking_metric()
        rank_sql = self.metric_value(ranking.expression, lambda n: f"SUM({self.q('m__' + n)})")
        for index, dimension in enumerate(self.dims):
            if dimension.top is None:
                continue
            partition = self.top_partition(index)
            select = [f"__d{j} AS __p{j}" for j in partition] + [f"__d{index} AS __value"]
            group = [f"__p{j}" for j in partition] + ["__value"]
            order = "DESC" if descending else "ASC"
            partition_sql = f"PARTITION BY {', '.join(f'__p{j}' for j in partition)} " if partition else ""
            self.ctes.append(
                (
                    f"top_{index}",
                    f"SELECT {', '.join(select)}, {rank_sql} AS __rank_value, TRUE AS __in_top\n  FROM agg_pre_0\n"
                    f"  GROUP BY {', '.join(group)}\n"
                    f"  QUALIFY row_number() OVER ({partition_sql}"
                    f"ORDER BY __rank_value {order} NULLS LAST, __value NULLS LAST) <= {int(dimension.top)}",
                )
            )
        for w in windows:
            select, group, joins, filters = [], [], [], []
            companions: dict[int, str] = {}
            def aligned(i: int, w: int = w) -> str:
                dimension = self.dims[i]
                if dimension.kind == "grain":
                    return self.align(f"pre.__d{i}", dimension.source_name, w)
                return f"pre.__d{i}"

            for index, dimension in enumerate(self.dims):
                value = aligned(index)
                if dimension.top is not None:
                    on = [f"top_{index}.__value IS NOT DISTINCT FROM pre.__d{index}"]
                    on += [f"top_{index}.__p{j} IS NOT DISTINCT FROM {aligned(j)}" for j in self.top_partition(index)]
                    joins.append(f"\n  LEFT JOIN top_{index} ON {' AND '.join(on)}")
                    if self.keeps_only_top_outside(dimension):
                        value = f"(CASE WHEN top_{index}.__in_top THEN {value} END)"
                        companions[index] = f"(top_{index}.__in_top IS NULL)"
                        select.append(f"{companions[index]} AS __outside_{index}")
                    elif dimension.only_top:
                        filters.append(f"top_{index}.__in_top")
                    else:
                        text = value if dimension.type == "string" else f"CAST({value} AS {self.dialect.text_type})"
                        value = f"(CASE WHEN top_{index}.__in_top THEN {text} ELSE 'Other' END)"
                select.append(f"{value} AS {self.q(dimension.name)}")
                group.append(value)
            select += [f"SUM({self.q('m__' + n)}) AS {self.q('m__' + n)}" for n in metrics]
            group_by, level = self.grouping(group, companions)
            select.append(level)
            self.ctes.append(
                (
                    f"agg_{w}_0",
                    "SELECT " + ",\n    ".join(select) + f"\n  FROM agg_pre_{w} AS pre" + "".join(joins)
                    + (f"\n  WHERE {' AND '.join(filters)}" if filters else "")
                    + group_by,
                )
            )

    def compile(self) -> CompiledQuery:
        plan = self.plan
        windows = range(1 + len(plan.comparisons))
        calculations.order_value_ctes(self)
        if self.can_prefold():
            self.prefolded_ctes()
        else:
            tops = self.top_ctes()
            for w in windows:
                for t_index, table in enumerate(plan.tables):
                    self.ctes.append((f"agg_{w}_{t_index}", self.aggregate_cte(table, w, tops)))
        for w in windows:
            for level in self.levels if w == 0 else ["rows"] + (["totals"] if plan.totals else []):
                if level == "totals" and w and plan.comparisons[w - 1].attribution:
                    # Crediting moves orders between channels, not in or out of the period: an
                    # attribution column's total is the metric's own (ANY_CLICK's repeated orders
                    # would otherwise count twice).
                    self.ctes.append((f"lvl_{w}_totals", "SELECT * FROM lvl_0_totals"))
                    continue
                self.ctes.append((f"lvl_{w}_{level}", self.level_cte(w, level)))

        dim_names = [self.q(d.name) for d in self.dims]
        # Without comparisons or a calendar spine the result rows are exactly the aggregated rows,
        # so they serve as the keys themselves (no DISTINCT, no join).
        direct = not plan.comparisons and not self.dense_dimensions()
        if direct:
            rows_alias, source_sql = "keys", "lvl_0_rows AS keys"
        else:
            self.ctes.append(("keys", self.keys_sql(dim_names)))
            rows_alias, source_sql = "r", "keys"

        select = [f"keys.{n}" for n in dim_names]
        joins = []

        def join_on(alias: str, dims: list[PlannedDimension]) -> str:
            return " AND ".join(
                f"{alias}.{self.q(d.name)} IS NOT DISTINCT FROM keys.{self.q(d.name)}" for d in dims
            ) or "TRUE"

        if not direct:
            joins.append(f"LEFT JOIN lvl_0_rows AS r ON {join_on('r', self.dims)}")
        for w in range(1, len(plan.comparisons) + 1):
            joins.append(f"LEFT JOIN lvl_{w}_rows AS c{w} ON {join_on(f'c{w}', self.dims)}")
        if plan.totals:
            joins.append("CROSS JOIN lvl_0_totals AS tot")
            for w in range(1, len(plan.comparisons) + 1):
                joins.append(f"CROSS JOIN lvl_{w}_totals AS ctot{w}")
        if plan.group_totals:
            for i, d in enumerate(self.dims):
                joins.append(f"LEFT JOIN lvl_0_group_{i} AS g{i} ON {join_on(f'g{i}', [d])}")
        across_time = self.across_time_metrics() if "across_time" in self.levels else set()
        if across_time:
            others = [d for d in self.dims if d is not self.grain]
            joins.append(f"LEFT JOIN lvl_0_across_time AS all_periods ON {join_on('all_periods', others)}")

        empty_is_null = self.undefined_when_empty()

        def filled(alias: str):
            def column(n: str) -> str:
                # An across-time metric of a row is read from the level without the time grain.
                source = "all_periods" if n in across_time and alias == rows_alias else alias
                value = f"{source}.{self.q('m__' + n)}"
                # A sum or count over no rows is 0; an average, ratio or median of nothing is
                # undefined and stays NULL (shown empty), rather than a misleading 0.
                return value if n in empty_is_null else f"COALESCE({value}, 0)"

            return column

        def raw(alias: str):
            return lambda n: f"{alias}.{self.q('m__' + n)}"

        columns = output_columns(plan)
        comparison_numbers = {c.suffix: w for w, c in enumerate(plan.comparisons, start=1)}

        def percent_change(base: str, compared: str) -> str:
            return f"(CAST({base} AS DOUBLE) - CAST({compared} AS DOUBLE)) / NULLIF(ABS(CAST({compared} AS DOUBLE)), 0)"

        def value(metric: PlannedMetric, level: str, w: int = 0) -> str:
            """`metric` at one level: rows, comparison w, totals, comparison totals w, or group i.

            A generated column the expression names keeps its own meaning at every level: at the
            totals level `net_sales__totals` is still the total and `comparison_net_sales__x` is
            the comparison's total; in a comparison period `net_sales__totals` is that period's total.
            """
            alias = {"rows": rows_alias, "comparison": f"c{w}", "totals": "tot", "comparison_totals": f"ctot{w}"}
            at_level = raw(f"g{w}") if level == "group" else filled(alias[level])
            totals_level = level in ("totals", "comparison_totals", "group")

            def column_of(name: str) -> str:
                reference = metric.reference(name)
                if reference is None:
                    return at_level(name)
                if reference.kind == "totals":
                    own = w if level in ("comparison", "comparison_totals") else 0
                    return self.metric_value(reference.expression, filled(f"ctot{own}" if own else "tot"))
                compared_w = comparison_numbers[str(reference.comparison)]
                compared = self.metric_value(
                    reference.expression,
                    filled(f"ctot{compared_w}" if totals_level or reference.kind == "comparison_totals" else f"c{compared_w}"),
                )
                if reference.kind == "percent_change":
                    base = self.metric_value(reference.expression, filled("tot" if totals_level else rows_alias))
                    return percent_change(base, compared)
                return compared

            return self.metric_value(metric.expression, column_of)

        expressions: dict[str, str] = {}
        for m in plan.metrics:
            expressions[m.name] = value(m, "rows")
        # Window columns (commerceql.calculations): a rank is taken over the result's rows below;
        # rolling and period-to-date values come from their own CTE, one value per result row.
        ranks: list[tuple[PlannedMetric, str]] = []
        for number, m in enumerate(m for m in plan.metrics if m.calculation is not None):
            assert m.calculation is not None
            if m.calculation.kind == "rank":
                ranks.append((m, f"__rank_input_{number}"))
                select.append(f"{expressions[m.name]} AS __rank_input_{number}")
                continue
            keys_relation = "lvl_0_rows" if direct else "keys"
            calculated = calculations.time_window_ctes(self, m, number, keys_relation)
            joins.append(f"LEFT JOIN {calculated} AS w{number} ON {join_on(f'w{number}', self.dims)}")
            expressions[m.name] = f"w{number}.__value"
        for w, c in enumerate(plan.comparisons, start=1):
            for m in plan.metrics:
                if m.compares:
                    continue
                compared = value(m, "comparison", w)
                expressions[comparison_name(m.name, c.suffix)] = compared
                if plan.percent_change:
                    expressions[percent_change_name(m.name, c.suffix)] = percent_change(expressions[m.name], compared)
        if plan.totals:
            for m in plan.metrics:
                # A window column has no total (a rank or rolling average of all rows means nothing).
                expressions[totals_name(m.name)] = "CAST(NULL AS DOUBLE)" if m.calculation else value(m, "totals")
                for w, c in enumerate(plan.comparisons, start=1):
                    if not m.compares:
                        expressions[comparison_totals_name(m.name, c.suffix)] = value(m, "comparison_totals", w)
        if plan.group_totals:
            for i, d in enumerate(self.dims):
                for m in plan.metrics:
                    if not m.compares:
                        expressions[group_totals_name(m.name, d.name)] = (
                            "CAST(NULL AS DOUBLE)" if m.calculation else value(m, "group", i))
        for column in columns:
            if column.role in ("dimension", "time"):
                continue
            if column.role == "cumulative" or any(column.name == m.name for m, _ in ranks):
                continue
            select.append(f"{expressions[column.name]} AS {self.q(column.name)}")
        self.ctes.append(("result", "SELECT " + ",\n    ".join(select) + f"\n  FROM {source_sql}" + "".join(f"\n  {j}" for j in joins)))

        source = "result"
        if ranks:
            ranked = ", ".join(calculations.rank_sql(self, m, column) for m, column in ranks)
            self.ctes.append(("ranked", f"SELECT *, {ranked} FROM {source}"))
            source = "ranked"
        cumulative = [c for c in columns if c.role == "cumulative"]
        if cumulative:
            time_dim = self.grain or next(d for d in self.dims if d.is_time)
            others = [self.q(d.name) for d in self.dims if d is not time_dim]
            partition = f"PARTITION BY {', '.join(others)} " if others else ""
            window = (
                f"OVER ({partition}ORDER BY {self.q(time_dim.name)} "
                "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
            )
            running = []
            for column in cumulative:
                base_column = (
                    comparison_name(str(column.base), column.comparison) if column.comparison else str(column.base)
                )
                running.append(f"SUM({self.q(base_column)}) {window} AS {self.q(column.name)}")
            self.ctes.append(("cumulated", "SELECT *, " + ", ".join(running) + f" FROM {source}"))
            source = "cumulated"

        where = ""
        if plan.having is not None:
            output_names = {c.name: c for c in columns}

            def resolve_name(identifier: ast.Identifier) -> str:
                name = plan.aliases.get(identifier.name, identifier.name)
                return self.q(name)

            def type_of(identifier: ast.Identifier) -> str | None:
                name = plan.aliases.get(identifier.name, identifier.name)
                column = output_names.get(name)
                return column.type if column else None

            where = "\n  WHERE " + self.condition_sql(plan.having, None, resolve_name, type_of)

        order = self.order_sql(columns)
        final_columns = ", ".join(self.final_column(c) for c in columns)
        limit = f"\n  LIMIT {int(plan.limit)}" + (f" OFFSET {int(plan.offset)}" if plan.offset else "")
        body = (
            f"SELECT {final_columns}, COUNT(*) OVER () AS __total_rows\n  FROM {source}"
            f"{' AS final_rows' if self.has_instants else ''}{where}"
            f"\n  ORDER BY {order}{limit}"
        )
        # Aggregates over the fact tables are read by several later CTEs; materialising them
        # keeps DuckDB from inlining (and so re-scanning) them once per reference.
        ctes = self.derived_ctes() + self.rates_ctes() + self.ctes
        sql = (
            "WITH "
            + ",\n".join(
                f"{name} AS {self.dialect.materialized() if name.startswith(('agg_', 'top_')) or name in derived.DERIVED_RELATIONS else ''}(\n  {cte}\n)"
                for name, cte in ctes
            )
            + "\n"
            + body
        )
        return CompiledQuery(sql=sql, parameters=dict(self.parameters), columns=tuple(columns), plan=plan)

    def dense_dimensions(self) -> list[PlannedDimension]:
        """Dimensions whose every value is listed even where no row has it.

        The TIMESERIES dimension (its calendar spine), and every cyclical dimension in GROUP BY
        (hour_of_day lists all 24 hours once) unless WHERE filters on it, which would then list
        values the filter excludes.
        """
        filtered: set[str] = set()
        if self.plan.where is not None:
            for operand in condition_operands(self.plan.where):
                filtered.update(i.name.lower() for i in identifiers(operand))
        dense = []
        for d in self.dims:
            if d.source_name == self.plan.timeseries:
                dense.append(d)
            elif d.kind == "cyclical" and d.source_name not in filtered:
                dense.append(d)
        return dense

    def keys_sql(self, dim_names: list[str]) -> str:
        plan = self.plan
        sources = ["lvl_0_rows"] + [f"lvl_{w}_rows" for w in range(1, len(plan.comparisons) + 1)]
        if not self.dims:
            return "SELECT 1 AS __one"
        dense = self.dense_dimensions()
        others = [d for d in self.dims if d not in dense]
        window_conditions: list[str] = []
        if self.grain is not None and self.grain in others and plan.comparisons and plan.window.start is not None:
            # Comparison rows are aligned onto the reporting period; keep only its buckets.
            start = dates_module.truncate(plan.window.start, self.grain.source_name)
            window_conditions.append(f"{self.q(self.grain.name)} >= {self._bucket_param(start)}")
            if plan.window.end is not None:
                window_conditions.append(f"{self.q(self.grain.name)} < {self._bucket_param(plan.window.end)}")
        where = ("\n  WHERE " + " AND ".join(window_conditions)) if window_conditions else ""
        if not dense:
            union = "\n    UNION ".join(f"SELECT {', '.join(dim_names)} FROM {s}" for s in sources)
            return f"SELECT DISTINCT * FROM (\n    {union}\n  ) AS all_keys{where}"
        parts = [f"({self.spine_sql(d)}) AS spine{i}" for i, d in enumerate(dense)]
        if others:
            other_names = ", ".join(self.q(d.name) for d in others)
            union_others = "\n    UNION ".join(f"SELECT {other_names} FROM {s}" for s in sources)
            distinct = f"SELECT DISTINCT * FROM (\n    {union_others}\n  ) AS s{where}"
            # Every series gets every period: refuse, while running, a grid too big to be read
            # (GROUP BY session_id TIMESERIES day), before it is built.
            cells = self.dense_size(dense)
            most = max(1, MAX_RESULT_KEYS // cells)
            message = (
                f"{RESULT_LIMIT_MARKER} more than {most:,} grouped values, each listed for all {cells:,} periods"
            )
            guard = f"CASE WHEN __series > {most} THEN {self.dialect.raise_error(message)} ELSE TRUE END"
            parts.append(
                f"(SELECT {other_names} FROM (SELECT *, COUNT(*) OVER () AS __series FROM ({distinct}) AS d) AS counted"
                f"\n  WHERE {guard}) AS series"
            )
        ordered = []
        for d in self.dims:
            if d in dense:
                ordered.append(f"spine{dense.index(d)}.__spine AS {self.q(d.name)}")
            else:
                ordered.append(f"series.{self.q(d.name)}")
        return f"SELECT {', '.join(ordered)}\n  FROM " + "\n  CROSS JOIN ".join(parts)

    def dense_size(self, dense: list[PlannedDimension]) -> int:
        """How many combinations the dense dimensions' spines have (periods × hours ...)."""
        size = 1
        for d in dense:
            if d.kind == "cyclical":
                low, high = CYCLICAL_RANGES[d.source_name]
                size *= high - low + 1
            elif self.plan.window.start is not None and self.plan.window.end is not None:
                first = dates_module.truncate(self.plan.window.start, d.source_name)
                size *= max(1, _period_count(first, self.plan.window.end, d.source_name))
        return size

    def _bucket_param(self, value: dt.datetime) -> str:
        assert self.grain is not None
        if self.grain.source_name in _DATE_GRAINS:
            return f"CAST({self.param(value.date() if value.time() == dt.time() else value)} AS DATE)"
        return f"CAST({self.param(self.local_instant(value))} AS {self.dialect.instant_type})"

    def spine_sql(self, dimension: PlannedDimension) -> str:
        if dimension.kind == "cyclical":
            low, high = CYCLICAL_RANGES[dimension.source_name]
            return self.dialect.integer_spine(low, high)
        window = self.plan.window
        if window.start is None or window.end is None:
            raise self.error(
                "TIMESERIES needs a bounded date range",
                self.plan.query.timeseries,
                hint="add SINCE and UNTIL, or DURING",
            )
        grain = dimension.source_name
        first = dates_module.truncate(window.start, grain)
        periods = _period_count(first, window.end, grain)
        if periods > MAX_SPINE_PERIODS:
            coarser = next(
                (g for g in ("minute", "hour", "day", "week", "month", "year")
                 if _GRAIN_ORDER.index(g) > _GRAIN_ORDER.index(grain)
                 and _period_count(dates_module.truncate(window.start, g), window.end, g) <= MAX_SPINE_PERIODS),
                "year",
            )
            raise self.error(
                f"TIMESERIES {grain} over this period would list {periods:,} {grain}s; "
                f"the limit is {MAX_SPINE_PERIODS:,}",
                self.plan.query.timeseries or self.plan.query,
                hint=f"use a coarser grain such as `TIMESERIES {coarser}`, or a shorter date range",
            )
        step = "INTERVAL 3 MONTH" if grain == "quarter" else f"INTERVAL 1 {grain.upper()}"
        if grain in _DATE_GRAINS:
            return self.dialect.date_spine(self.param(first), self.param(window.end), step)
        # Sub-day grains step through instants, so a DST day has 23 or 25 hours, as it did.
        start, end = self.param(self.local_instant(first)), self.param(self.local_instant(window.end))
        return self.dialect.instant_spine(start, end, step)

    def is_instant(self, name: str) -> bool:
        """True for a sub-day grain column, which is an instant until the final SELECT labels it."""
        return any(d.name == name and d.kind == "grain" and d.source_name not in _DATE_GRAINS for d in self.dims)

    def final_column(self, column: ColumnInfo) -> str:
        name = self.q(column.name)
        if self.is_instant(column.name):
            # Labelled in local wall-clock time; ORDER BY still sorts by the instant.
            return f"{self.dialect.local_label(self.tz, 'final_rows.' + name)} AS {name}"
        return name

    @property
    def has_instants(self) -> bool:
        return any(self.is_instant(d.name) for d in self.dims)

    def sort_key(self, name: str) -> str:
        banded = next((d for d in self.dims if d.name == name and d.bands), None)
        if banded is not None:
            return calculations.band_sort_key(banded, self.q(name))
        return f"final_rows.{self.q(name)}" if self.is_instant(name) else self.q(name)

    def order_sql(self, columns: list[ColumnInfo]) -> str:
        keys: list[str] = []
        used: set[str] = set()
        for name, descending in self.plan.order_by:
            keys.append(f"{self.sort_key(name)} {'DESC' if descending else 'ASC'} NULLS LAST")
            used.add(name)
        if not self.plan.order_by:
            for d in self.dims:
                if d.is_time:
                    keys.append(f"{self.sort_key(d.name)} ASC")
                    used.add(d.name)
            # A TOP ranked within other dimensions reads group by group (each tier, then its Other).
            for index, d in enumerate(self.dims):
                for j in self.top_partition(index) if d.top is not None else []:
                    if self.dims[j].name not in used:
                        keys.append(f"{self.sort_key(self.dims[j].name)} ASC NULLS LAST")
                        used.add(self.dims[j].name)
            for d in self.dims:
                if d.top is not None and not d.only_top:
                    keys.append(f"({self.q(d.name)} = 'Other') ASC")
            # Bands and dates of a dimension read in their order (0–100, 100–250 ...), as time does; a rank
            # reads group by group, best first.
            for d in self.dims:
                if d.ordinal and d.name not in used:
                    keys.append(f"{self.sort_key(d.name)} ASC NULLS LAST")
                    used.add(d.name)
            rank = next((m for m in self.plan.metrics if m.calculation and m.calculation.kind == "rank"), None)
            if rank is not None:
                for d in self.dims[:-1]:
                    if d.name not in used:
                        keys.append(f"{self.sort_key(d.name)} ASC NULLS LAST")
                        used.add(d.name)
                keys.append(f"{self.q(rank.name)} ASC")
            if self.plan.metrics:
                first = self.plan.metrics[0].name
                keys.append(f"{self.q(first)} DESC NULLS LAST")
                used.add(first)
        for d in self.dims:
            if d.name not in used:
                keys.append(f"{self.sort_key(d.name) if d.bands else self.q(d.name)} ASC NULLS LAST")
        if not keys:
            keys.append("1")
        return ", ".join(keys)


def _period_count(first: dt.datetime, end: dt.datetime, grain: str) -> int:
    """How many `grain` buckets start in [first, end) (wall-clock arithmetic; an estimate ±1 at DST)."""
    if grain in ("month", "quarter", "year"):
        months = (end.year - first.year) * 12 + end.month - first.month + (1 if end.day > 1 or end.time() != dt.time() else 0)
        return max(0, -(-months // {"month": 1, "quarter": 3, "year": 12}[grain]))
    size = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}[grain]
    return max(0, -(-int((end - first).total_seconds()) // size))


def compile_plan(plan: QueryPlan, dialect: Dialect = DUCKDB) -> CompiledQuery:
    """The SQL (in `dialect`, DuckDB's by default), its parameters and output columns for a plan."""
    return _Compiler(plan, dialect).compile()


def sql_literal(value: object, dialect: Dialect = DUCKDB) -> str:
    """A literal for a parameter value, typed so that it means what the bound value meant."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return f"CAST('{value}' AS DOUBLE)"
        return repr(float(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            return f"{dialect.instant_type} {quote_literal(value.isoformat())}"
        return f"TIMESTAMP {quote_literal(value.isoformat(sep=' '))}"
    if isinstance(value, dt.date):
        return f"DATE {quote_literal(value.isoformat())}"
    if isinstance(value, (list, tuple)):  # the daily rates of WITH CURRENCY
        return dialect.list_literal([sql_literal(item, dialect) for item in value])
    return quote_literal(str(value))


def inline_parameters(sql: str, parameters: dict[str, object], dialect: Dialect = DUCKDB) -> str:
    """SQL with parameters written in as literals, for display (`explain`, `--sql`) and re-running.

    One pass over the statement's tokens: `$name` is replaced only where it is a parameter
    token, never inside a string literal or quoted identifier (model SQL may contain `'$p1'`),
    and never inside a value already written in (a user's text may contain `$p1`).
    """
    marker = dialect.parameter("")
    quotes = "'\"`"
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in quotes:
            end = quoted_end(sql, i)
            out.append(sql[i:end])
            i = end
            continue
        if char == marker:
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            name = sql[i + 1 : j]
            if name in parameters:
                out.append(sql_literal(parameters[name], dialect))
                i = j
                continue
        out.append(char)
        i += 1
    return "".join(out)


def distinct_values_sql(
    table: Table,
    dimension: str,
    timezone: str,
    limit: int,
    dialect: Dialect = DUCKDB,
    *,
    as_of: dt.datetime | None = None,
    accounts: AccountSettings | None = None,
) -> str:
    """SQL listing up to `limit` distinct values (as text) of one model dimension of `table`.

    Used to explain an empty answer: which values a filter could have matched. A dimension read
    from a derived relation (an account field such as `customer_rfm_group`) needs the store's
    clock `as_of`; its relation is written in as a CTE with the values inlined.
    """
    value = f"CAST(({dialect.expand_macros(table.dimensions[dimension].sql, timezone)}) AS {dialect.text_type})"
    q = dialect.quote_identifier
    joins = table.joins_needed([value])
    join_sql = "".join(f"\n  LEFT JOIN {q(j.relation)} AS {j.alias} ON {j.on}" for j in joins)
    sql = (
        f"SELECT DISTINCT {value} AS value FROM {q(table.relation)} AS {table.name}{join_sql}"
        f"\n  WHERE {value} IS NOT NULL LIMIT {int(limit)}"
    )
    used = [r for r in dict.fromkeys([table.relation, *(j.relation for j in joins)]) if r in derived.DERIVED_RELATIONS]
    if not used:
        return sql
    if as_of is None:
        raise CommerceQLSemanticError(f"`{dimension}` is an account field and needs the store's clock")
    parameters: dict[str, object] = {}

    def param(v: object) -> str:
        name = f"v{len(parameters)}"
        parameters[name] = v
        return dialect.parameter(name)

    context = derived.DerivedContext(dialect=dialect, timezone=timezone, as_of=as_of,
                                     settings=accounts or AccountSettings(), param=param)
    ctes = ",\n".join(f"{n} AS ({derived.derived_relation_sql(n, context)})" for n in used)
    return inline_parameters(f"WITH {ctes}\n{sql}", parameters, dialect)
