"""Metadata of a result's columns: what each column is, so tables and charts format it right."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from commerceql.attribution import SUFFIXES

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


# -- generated column names -------------------------------------------------------------------
# Shopify's spellings (docs: COMPARE TO prefixes, WITH suffixes). Written here and only here;
# `generated_name` reads one back for the resolver, which plans it as a typed reference.


# Attribution models' columns are named `{metric}__{model}` (Shopify's), not `comparison_...`; no
# period comparison's suffix is one of the models' suffixes.
ATTRIBUTION_SUFFIXES = SUFFIXES


def comparison_name(metric: str, suffix: str) -> str:
    if suffix in ATTRIBUTION_SUFFIXES:
        return f"{metric}__{suffix}"
    return f"comparison_{metric}__{suffix}"


def percent_change_name(metric: str, suffix: str) -> str:
    return f"percent_change_{metric}__{suffix}"


def totals_name(metric: str) -> str:
    return f"{metric}__totals"


def comparison_totals_name(metric: str, suffix: str) -> str:
    return f"{comparison_name(metric, suffix)}__totals"


def group_totals_name(metric: str, dimension: str) -> str:
    return f"{metric}__{dimension}_totals"


def cumulative_name(metric: str, suffix: str | None = None) -> str:
    return f"{comparison_name(metric, suffix) if suffix else metric}__cumulative"


@dataclass(frozen=True)
class GeneratedName:
    """What a generated column's name says: its kind, base metric and comparison suffix."""

    kind: str  # comparison | percent_change | totals | comparison_totals | group_totals | cumulative
    metric: str
    comparison: str | None = None
    dimension: str | None = None  # group totals: the dimension written in the name

    @property
    def clause(self) -> str:
        """The clause that produces such a column, as the user would write it."""
        if self.comparison in ATTRIBUTION_SUFFIXES and self.kind in ("comparison", "comparison_totals"):
            return f"WITH {self.comparison.upper()}_ATTRIBUTION"
        return {
            "comparison": "COMPARE TO",
            "percent_change": "WITH PERCENT_CHANGE",
            "totals": "WITH TOTALS",
            "comparison_totals": "WITH TOTALS",
            "group_totals": "WITH GROUP_TOTALS",
            "cumulative": "WITH CUMULATIVE_VALUES",
        }[self.kind]


def generated_name(name: str) -> GeneratedName | None:
    """The generated column a name spells, or None for any other name.

    Suffixes (previous_year, 20230101, startOfQuarter_sub_3q) never contain `__`, so the last
    `__` separates a comparison's metric from its suffix.
    """
    if "__" not in name or name.startswith("__"):
        return None
    cumulative = name.endswith("__cumulative")
    totals = name.endswith("__totals")
    stem = name[: -len("__cumulative")] if cumulative else name[: -len("__totals")] if totals else name
    for prefix, kind in (("comparison_", "comparison"), ("percent_change_", "percent_change")):
        if stem.startswith(prefix) and "__" in stem[len(prefix):]:
            metric, _, suffix = stem[len(prefix):].rpartition("__")
            if not metric or not suffix or (kind == "percent_change" and (totals or cumulative)):
                return None
            if totals:
                kind = "comparison_totals"
            elif cumulative:
                kind = "cumulative"
            return GeneratedName(kind, metric, suffix)
    metric, _, suffix = stem.rpartition("__")
    if suffix in ATTRIBUTION_SUFFIXES and metric and "__" not in metric:  # net_sales__last_click
        return GeneratedName("comparison_totals" if totals else "cumulative" if cumulative else "comparison",
                             metric, suffix)
    if totals or cumulative:  # `a__b__totals` is no name of ours
        return None if "__" in stem or not stem else GeneratedName("totals" if totals else "cumulative", stem)
    metric, _, rest = name.rpartition("__")
    if metric and "__" not in metric and rest.endswith("_totals") and rest != "_totals":
        return GeneratedName("group_totals", metric, dimension=rest[: -len("_totals")])
    return None


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
    # A metric that reads a comparison column (net_sales - comparison_net_sales__previous_year)
    # is itself a comparison: it has no comparison, percent change or group totals of its own.
    for m in plan.metrics:
        for c in () if m.compares else plan.comparisons:
            columns.append(
                ColumnInfo(
                    name=comparison_name(m.name, c.suffix),
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
                        name=percent_change_name(m.name, c.suffix),
                        role="percent_change",
                        type="percent",
                        description=f"Change of {m.name} against {c.label}, as a fraction of the comparison value",
                        base=m.name,
                        comparison=c.suffix,
                    )
                )
    if plan.totals:
        for m in plan.metrics:
            columns.append(ColumnInfo(totals_name(m.name), "totals", m.type, f"{m.name} over all rows", base=m.name))
            for c in () if m.compares else plan.comparisons:
                columns.append(
                    ColumnInfo(
                        comparison_totals_name(m.name, c.suffix),
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
                if m.compares:
                    continue
                columns.append(
                    ColumnInfo(
                        group_totals_name(m.name, d.name),
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
            columns.append(ColumnInfo(cumulative_name(m.name), "cumulative", m.type, f"running total of {m.name}", base=m.name))
            for c in plan.comparisons:
                columns.append(
                    ColumnInfo(
                        cumulative_name(m.name, c.suffix),
                        "cumulative",
                        m.type,
                        f"running total of {m.name} over {c.label}",
                        base=m.name,
                        comparison=c.suffix,
                    )
                )
    return columns
