"""Metadata of a result's columns: what each column is, so tables and charts format it right."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from commerceql.plan import QueryPlan

ColumnRole = Literal[
    "dimension",  # a grouped dimension (product_title, billing_region)
    "time",  # a time grain or cyclical time dimension (day, month, hour_of_day)
    "metric",  # a metric or an arithmetic expression of metrics
    "comparison",  # comparison_<metric>__<suffix>
    "percent_change",  # percent_change_<metric>__<suffix>
    "totals",  # <metric>__totals, comparison_<metric>__<suffix>__totals
    "group_totals",  # <metric>__<dimension>_totals
    "cumulative",  # <metric>__cumulative
    "comparison_period",  # the comparison row's own period label (comparison_day__previous_year)
]

# Value types: money | percent | count | number | duration | string | integer | boolean | date |
# timestamp | array, or a time grain (second ... year) / cyclical dimension (hour_of_day ...).


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    role: ColumnRole
    type: str
    description: str = ""
    base: str | None = None  # the metric (or dimension) a generated column derives from
    comparison: str | None = None  # the comparison suffix (previous_year, 20230101, ...)
    display_name: str | None = None  # alias text or a humanised name for headers and axes

    @property
    def label(self) -> str:
        return self.display_name or self.name.replace("_", " ").capitalize()

    @property
    def is_numeric(self) -> bool:
        return self.type in {"money", "percent", "count", "number", "duration", "integer"}


def output_columns(plan: QueryPlan) -> list[ColumnInfo]:
    """Every column of the result, in order, with its role and value type.

    The names of generated columns (comparison_<m>__<suffix>, <m>__totals ...) are decided here
    once, from the plan; the resolver checks ORDER BY / HAVING against them, the compiler writes them.
    """
    columns: list[ColumnInfo] = []
    by_name = {d.name: d for d in plan.dimensions}
    metrics = {m.name: m for m in plan.metrics}
    for name in plan.column_order:
        if name in by_name:
            d = by_name[name]
            columns.append(
                ColumnInfo(
                    name=d.name,
                    role="time" if d.is_time else "dimension",
                    type=d.type,
                    description=d.description,
                    base=d.source_name,
                    display_name=d.name if d.name != d.source_name else None,
                )
            )
        else:
            m = metrics[name]
            columns.append(
                ColumnInfo(name=m.name, role="metric", type=m.type, description=m.description, display_name=m.display_name)
            )
    for m in plan.metrics:
        for c in plan.comparisons:
            columns.append(
                ColumnInfo(
                    name=f"comparison_{m.name}__{c.suffix}",
                    role="comparison",
                    type=m.type,
                    description=f"{m.name} over {c.label}",
                    base=m.name,
                    comparison=c.suffix,
                )
            )
            if plan.percent_change:
                columns.append(
                    ColumnInfo(
                        name=f"percent_change_{m.name}__{c.suffix}",
                        role="percent_change",
                        type="percent",
                        description=f"Change of {m.name} against {c.label}, as a fraction of the comparison value",
                        base=m.name,
                        comparison=c.suffix,
                    )
                )
    if plan.totals:
        for m in plan.metrics:
            columns.append(ColumnInfo(f"{m.name}__totals", "totals", m.type, f"{m.name} over all rows", base=m.name))
            for c in plan.comparisons:
                columns.append(
                    ColumnInfo(
                        f"comparison_{m.name}__{c.suffix}__totals",
                        "totals",
                        m.type,
                        f"{m.name} over all rows of {c.label}",
                        base=m.name,
                        comparison=c.suffix,
                    )
                )
    if plan.group_totals:
        for d in plan.dimensions:
            for m in plan.metrics:
                columns.append(
                    ColumnInfo(
                        f"{m.name}__{d.name}_totals",
                        "group_totals",
                        m.type,
                        f"{m.name} over all rows with this row's {d.name}",
                        base=m.name,
                    )
                )
    if plan.cumulative:
        for m in plan.metrics:
            if not m.additive:
                continue
            columns.append(ColumnInfo(f"{m.name}__cumulative", "cumulative", m.type, f"running total of {m.name}", base=m.name))
            for c in plan.comparisons:
                columns.append(
                    ColumnInfo(
                        f"comparison_{m.name}__{c.suffix}__cumulative",
                        "cumulative",
                        m.type,
                        f"running total of {m.name} over {c.label}",
                        base=m.name,
                        comparison=c.suffix,
                    )
                )
    return columns
