"""Metadata of a result's columns: what each column is, so tables and charts format it right."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

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
