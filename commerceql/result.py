"""The result of a query: a Polars DataFrame plus what each column means, the SQL, and the chart."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from commerceql import ast
from commerceql.columns import ColumnInfo

if TYPE_CHECKING:
    import pyarrow

    from commerceql.plan import QueryPlan
    from commerceql.store import Store


@dataclass
class Result:
    query: ast.Query
    df: pl.DataFrame
    sql: str
    parameters: dict[str, object]
    columns: tuple[ColumnInfo, ...]
    total_rows: int
    plan: QueryPlan
    store: Store | None = field(default=None, repr=False)
    _chart: Any = field(default=None, repr=False)
    _vegalite_spec: dict[str, Any] | None = field(default=None, repr=False)
    # Notes on how the query was answered: the plan's, plus those found when it ran (a filter
    # value that matches nothing). Surfaces show them next to the result.
    notices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.notices:
            self.notices = tuple(self.plan.notices)

    # -- data ----------------------------------------------------------------------------------
    def to_arrow(self) -> pyarrow.Table:
        return self.df.to_arrow()

    def to_pandas(self) -> Any:
        return self.df.to_pandas()

    def column(self, name: str) -> ColumnInfo:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    @property
    def truncated(self) -> bool:
        """True when LIMIT (1000 by default) cut rows off the result."""
        return self.total_rows > self.df.height + self.plan.offset

    @property
    def currency(self) -> str:
        return self.plan.currency

    # -- chart ---------------------------------------------------------------------------------
    @property
    def has_chart(self) -> bool:
        return bool(self.plan.visualize)

    @property
    def chart(self) -> Any:
        """The Altair chart of the query's VISUALIZE clause (None when there is none)."""
        if not self.plan.visualize:
            return None
        if self._chart is None:
            from commerceql.charts import altair_chart

            spec = self.vegalite_spec
            assert spec is not None
            self._chart = altair_chart(spec)
        return self._chart

    @property
    def vegalite_spec(self) -> dict[str, Any] | None:
        """The Vega-Lite spec of the VISUALIZE chart (data inline; None without VISUALIZE).

        What every surface draws or saves: built without Altair (`charts.build_chart_spec`), the
        same dict as `chart_to_vegalite(result.chart)`. Shared and cached: do not change it.
        """
        if not self.plan.visualize:
            return None
        if self._vegalite_spec is None:
            from commerceql import charts

            self._vegalite_spec = charts.build_chart_spec(self.df, self.columns, self._chart_request())
        return self._vegalite_spec

    def _chart_request(self, chart_types: tuple[str | None, ...] | None = None) -> Any:
        from commerceql import charts
        from commerceql.display import result_labels

        metrics = tuple(name for name, _ in self.plan.visualize) or tuple(m.name for m in self.plan.metrics)
        types = chart_types or charts.propagate_chart_types([t for _, t in self.plan.visualize])
        return charts.ChartRequest(
            metrics=metrics,
            chart_types=tuple(types) if types else tuple(None for _ in metrics),
            max_points=self.plan.visualize_max,
            title=None,
            currency=self.currency,
            # the table's own words (explicit comparison dates, aliases) on the chart too
            labels=result_labels(self),
        )

    def build_chart(self, chart_types: tuple[str | None, ...] | None = None) -> Any:
        """An Altair chart of the result, with other chart types if given."""
        from commerceql import charts

        return charts.build_chart(self.df, self.columns, self._chart_request(chart_types))

    def save_chart(self, path: str) -> Any:
        from commerceql import charts

        spec = self.vegalite_spec
        if spec is None:
            from commerceql.errors import CommerceQLSemanticError

            raise CommerceQLSemanticError("this query has no VISUALIZE clause, so there is no chart to save")
        return charts.save_chart(spec, path)

    # -- display -------------------------------------------------------------------------------
    # Tables show human headers, a Total row for WITH TOTALS and subtotal rows for GROUP_TOTALS
    # (commerceql.display); `df`, CSV, JSON and Parquet keep the raw columns.
    def to_html(self, max_rows: int = 1000) -> str:
        from commerceql.display import result_html

        return result_html(self, max_rows=max_rows)

    def to_text(self, max_rows: int = 1000, width: int | None = None) -> str:
        """The table as aligned text (long texts wrapped to `width` when given)."""
        from commerceql.display import result_text

        return result_text(self, max_rows=max_rows, width=width)

    def to_markdown(self, max_rows: int | None = None) -> str:
        """The table as GitHub-flavoured markdown (every row unless `max_rows`)."""
        from commerceql.display import result_markdown

        return result_markdown(self, max_rows=max_rows)

    @property
    def headers(self) -> dict[str, str]:
        """The header a table shows for each column ("Net sales (previous year)"), by raw name."""
        from commerceql.display import column_headers

        return column_headers(self)

    def _repr_html_(self) -> str:
        return self.to_html()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        from commerceql.display import result_mimebundle

        return result_mimebundle(self)

    def __repr__(self) -> str:
        return self.to_text(max_rows=20)

    # -- widgets -------------------------------------------------------------------------------
    def widget(self) -> Any:
        """Controls to switch dimension, date range, comparison and chart type (ipywidgets)."""
        from commerceql.widgets import ExploreWidget

        if self.store is None:
            raise RuntimeError("this result is not attached to a store")
        return ExploreWidget(self.store, self.query, result=self)
