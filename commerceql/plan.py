"""The resolved query: every name checked against the semantic model, every date made concrete.

`commerceql.resolver` builds a `QueryPlan` from an `ast.Query`; `commerceql.compiler` turns the
plan into DuckDB SQL. Nothing here refers to text positions any more except for error reporting.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from commerceql import ast
from commerceql.dates import DateWindow, Shift
from commerceql.model.semantic import Table
from commerceql.walk import identifiers

if TYPE_CHECKING:
    from commerceql.currency import Conversion

TIME_GRAINS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
CYCLICAL_DIMENSIONS = ("hour_of_day", "day_of_week", "week_of_year", "month_of_year")
CYCLICAL_RANGES = {
    "hour_of_day": (0, 23),
    "day_of_week": (0, 6),
    "week_of_year": (1, 53),
    "month_of_year": (1, 12),
}


@dataclass(frozen=True)
class AccountSettings:
    """How account-level fields are judged (docs/accounts.md); a store may change them."""

    # An account is overdue when its days since the last order exceed this many of its median
    # intervals between orders (1.5: a monthly buyer is overdue after 45 days).
    overdue_factor: float = 1.5
    # An account lapses when this many days pass without an order (churn, reactivation).
    lapse_days: int = 180
    # RFM scores rank the accounts that ordered in this many days before the clock.
    rfm_window_days: int = 365


@dataclass(frozen=True)
class PlannedDimension:
    """A grouped dimension: a model dimension, a time grain or a cyclical time dimension."""

    name: str  # output column name (alias if the SHOW item renamed it)
    source_name: str  # the model or time name
    kind: str  # "model" | "grain" | "cyclical"
    type: str  # value type (string, integer, ...) or the grain / cyclical name
    description: str = ""
    top: int | None = None
    only_top: bool = False
    top_overall: bool = False
    # A numeric band dimension (bucket(...)): its labels in band order, which is how it sorts.
    bands: tuple[str, ...] = ()
    # Read in its own order by default, as time is (bands, month(date_dimension) ...).
    ordinal: bool = False

    @property
    def is_time(self) -> bool:
        return self.kind in ("grain", "cyclical")


@dataclass(frozen=True)
class WindowCalculation:
    """A SHOW column computed over the result's rows: rolling_avg(net_sales, 7), ytd(...), rank(...).

    kind: rolling_avg | rolling_sum | running_total | period_to_date | rank. See commerceql.calculations.
    """

    kind: str
    function: str  # the function as written (mtd, rolling_avg ...), for messages
    size: int | None = None  # rolling: how many grain buckets the window spans
    period: str | None = None  # period_to_date: month | quarter | year
    span: ast.Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GeneratedReference:
    """A generated column named inside a SHOW expression: `comparison_net_sales__previous_year`.

    Decided by the resolver (its name is written by `commerceql.columns`), read by the compiler,
    so no later module decodes the name again.
    """

    column: str  # the name as written in the expression
    kind: str  # comparison | percent_change | totals | comparison_totals
    metric: str  # the base metric's name (a SHOW column or a model metric)
    expression: ast.Expression  # the base metric's expression; its identifiers are model metric names
    comparison: str | None = None  # the comparison suffix (previous_year ...); None for totals

    @property
    def of_comparison(self) -> bool:
        """True for the columns that exist only because of a COMPARE TO period."""
        return self.kind in ("comparison", "percent_change", "comparison_totals")


@dataclass(frozen=True)
class PlannedMetric:
    """A metric column: a model metric or arithmetic over model metrics and generated columns."""

    name: str  # output column name
    expression: ast.Expression  # identifiers are model metric names or `references` columns
    type: str
    additive: bool
    description: str = ""
    display_name: str | None = None
    # The generated columns (comparison_..., ..__totals) the expression names, by their name.
    references: tuple[GeneratedReference, ...] = ()
    # A window calculation over `expression` (rolling, period-to-date, rank), or None.
    calculation: WindowCalculation | None = None

    def reference(self, name: str) -> GeneratedReference | None:
        return next((r for r in self.references if r.column == name), None)

    def model_metric_names(self) -> list[str]:
        """The model metrics the expression reads, directly or through a generated column, once each."""
        names: list[str] = []
        for identifier in identifiers(self.expression):
            reference = self.reference(identifier.name)
            inner = identifiers(reference.expression) if reference is not None else [identifier]
            names += [i.name for i in inner if i.name not in names]
        return names

    @property
    def compares(self) -> bool:
        """True when the expression reads a comparison column: it has no comparison of its own."""
        return any(r.of_comparison for r in self.references)


@dataclass(frozen=True)
class PlannedComparison:
    suffix: str
    label: str
    window: DateWindow
    # How reporting times map onto comparison times when the comparison is a pure shift
    # (previous_year: 12 calendar months back); None for an explicit comparison period.
    shift: Shift | None = None
    # An attribution model's suffix (last_non_direct_click): the same period as the query, each
    # order credited to the channel the model picks (commerceql.attribution); None for a period.
    attribution: str | None = None


@dataclass(frozen=True)
class PlannedSegment:
    """A saved segment the query uses: its condition checked against the account table, dates concrete."""

    name: str
    kind: str  # customer | company
    table: Table  # the account's own table (customers, companies)
    key_sql: str  # that table's SQL of the account key (customers.customer_id)
    condition: ast.Condition


@dataclass(frozen=True)
class QueryPlan:
    query: ast.Query
    tables: tuple[Table, ...]
    dimensions: tuple[PlannedDimension, ...]
    metrics: tuple[PlannedMetric, ...]
    column_order: tuple[str, ...]  # dimension and metric output names in display order
    where: ast.Condition | None
    having: ast.Condition | None
    window: DateWindow
    timezone: str
    currency: str
    timeseries: str | None  # the TIMESERIES dimension (a grain or cyclical name)
    comparisons: tuple[PlannedComparison, ...] = ()
    totals: bool = False
    group_totals: bool = False
    percent_change: bool = False
    cumulative: bool = False
    order_by: tuple[tuple[str, bool], ...] = ()  # (column, descending)
    limit: int = 1000
    offset: int = 0
    visualize: tuple[tuple[str, str | None], ...] = ()  # (metric column, chart type)
    visualize_max: int | None = None
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> output column
    # Plain-language notes for the user about how the query was answered (shown with the result).
    notices: tuple[str, ...] = ()
    # The store's clock for this query (recency, cadence and cohort fields are as of it).
    as_of: dt.datetime | None = None
    accounts: AccountSettings = field(default_factory=AccountSettings)
    segments: tuple[PlannedSegment, ...] = ()
    # WITH CURRENCY other than the shop currency: the daily rates money is converted at (commerceql.currency).
    conversion: Conversion | None = None

    @property
    def time_dimension(self) -> PlannedDimension | None:
        for dimension in self.dimensions:
            if dimension.kind == "grain":
                return dimension
        return None
