"""The explore widget without a browser: state <-> query, control changes, errors, export, speed.

The pure layer (`state_from_query`, `apply_state`) is tested on ASTs only; the widget is driven by
setting its controls' values, exactly what the browser does through the widget comm, and its table
is compared with a direct `store.query` of the expected text.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re

import pytest

import commerceql as cql
from commerceql.display import format_value
from commerceql.formatter import format_query
from commerceql.parser import parse
from commerceql.widget_export import VEGA_MIME
from commerceql.widgets import (
    ALL_TIME,
    AS_WRITTEN,
    AUTO,
    CUSTOM,
    ExploreState,
    ExploreStateError,
    ExploreWidget,
    apply_state,
    measure_latency,
    state_from_query,
)

NOTEBOOK_QUERY = "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def text(query: str) -> str:
    """Canonical text of a query written on one line."""
    return format_query(parse(query))


# ---------------------------------------------------------------------------------------------
# The pure state layer
# ---------------------------------------------------------------------------------------------

ROUND_TRIP = [
    NOTEBOOK_QUERY,
    "FROM sales SHOW net_sales, orders GROUP BY billing_region TIMESERIES month DURING last_quarter COMPARE TO previous_year VISUALIZE net_sales TYPE line",
    "FROM sales SHOW sales_channel, net_sales AS ns GROUP BY sales_channel DURING this_year ORDER BY ns DESC VISUALIZE ns",
    "FROM sales SHOW net_sales GROUP BY TOP 5 product_title DURING bfcm2024",
    "FROM sales SHOW net_sales TIMESERIES day SINCE 2025-01-01 UNTIL 2025-01-31",
    "FROM sales SHOW net_sales TIMESERIES week SINCE -30d UNTIL today",
    "FROM sales SHOW net_sales, gross_sales / orders AS aov WHERE sales_channel = 'Online Store' GROUP BY month DURING this_year",
    "FROM sales SHOW net_sales GROUP BY sales_channel, billing_region DURING this_year COMPARE TO previous_period, previous_year WITH PERCENT_CHANGE, TOTALS LIMIT 20 VISUALIZE net_sales TYPE bar, net_sales TYPE line",
    "FROM sales SHOW net_sales",
]


@pytest.mark.parametrize("source", ROUND_TRIP)
def test_state_round_trip_keeps_the_query(store, source):
    query = parse(source)
    state = state_from_query(query, store.model)
    assert apply_state(query, state) is query
    # and a state rebuilt from the field values (not the same object) gives the same query back
    assert apply_state(query, ExploreState(**dataclasses.asdict(state))) == query


def test_state_from_query_reads_every_control(store):
    state = state_from_query(parse(ROUND_TRIP[1]), store.model)
    assert state == ExploreState(
        dimension="billing_region",
        date_range="last_quarter",
        grain="month",
        comparison="previous_year",
        chart_type="line",
        metrics=("net_sales", "orders"),
    )
    assert state_from_query(parse(ROUND_TRIP[2])).metrics == ("net_sales",)
    assert state_from_query(parse(ROUND_TRIP[2])).chart_type == AUTO
    assert state_from_query(parse(ROUND_TRIP[4])) == ExploreState(
        date_range=CUSTOM, custom_from=dt.date(2025, 1, 1), custom_to=dt.date(2025, 1, 31), grain="day", metrics=("net_sales",)
    )
    written = state_from_query(parse(ROUND_TRIP[5]))
    assert (written.date_range, written.grain) == (AS_WRITTEN, "week")
    grouped_month = state_from_query(parse(ROUND_TRIP[6]))
    assert (grouped_month.dimension, grouped_month.grain, grouped_month.metrics) == (None, "month", ("net_sales",))
    mixed = state_from_query(parse(ROUND_TRIP[7]))
    assert (mixed.comparison, mixed.chart_type, mixed.dimension) == (AS_WRITTEN, AS_WRITTEN, "sales_channel")
    bare = state_from_query(parse("FROM sales SHOW net_sales"))
    assert (bare.date_range, bare.chart_type, bare.dimension) == (ALL_TIME, None, None)


def test_state_from_query_rejects_an_unknown_table(store):
    with pytest.raises(cql.CommerceQLError, match="unknown table `sale`"):
        state_from_query(parse("FROM sale SHOW net_sales"), store.model)


CHANGES = [
    # (query, control changes, expected query)
    (NOTEBOOK_QUERY, {"dimension": "billing_region"},
     "FROM sales SHOW net_sales GROUP BY billing_region DURING last_month VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"dimension": None},
     "FROM sales SHOW net_sales DURING last_month VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"date_range": "last_quarter"},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_quarter VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"date_range": ALL_TIME},
     "FROM sales SHOW net_sales GROUP BY sales_channel VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"date_range": CUSTOM, "custom_from": dt.date(2025, 3, 1), "custom_to": dt.date(2025, 3, 31)},
     "FROM sales SHOW net_sales GROUP BY sales_channel SINCE 2025-03-01 UNTIL 2025-03-31 VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"date_range": CUSTOM, "custom_from": dt.date(2025, 3, 1)},
     "FROM sales SHOW net_sales GROUP BY sales_channel SINCE 2025-03-01 VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"grain": "week"},
     "FROM sales SHOW net_sales GROUP BY sales_channel TIMESERIES week DURING last_month VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"comparison": "previous_year"},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month COMPARE TO previous_year VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"comparison": "previous_year_match_day_of_week"},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month COMPARE TO previous_year_match_day_of_week VISUALIZE net_sales TYPE bar"),
    (NOTEBOOK_QUERY, {"chart_type": "donut"},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE donut"),
    (NOTEBOOK_QUERY, {"chart_type": AUTO},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales"),
    (NOTEBOOK_QUERY, {"chart_type": None},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month"),
    (NOTEBOOK_QUERY, {"metrics": ("net_sales", "orders")},
     "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month VISUALIZE net_sales, orders TYPE bar"),
    (NOTEBOOK_QUERY, {"metrics": ("gross_sales",)},
     "FROM sales SHOW gross_sales GROUP BY sales_channel DURING last_month VISUALIZE gross_sales TYPE bar"),
    # the merchandiser's request, all at once
    (NOTEBOOK_QUERY, {"dimension": "billing_region", "date_range": "last_quarter", "comparison": "previous_year"},
     "FROM sales SHOW net_sales GROUP BY billing_region DURING last_quarter COMPARE TO previous_year VISUALIZE net_sales TYPE bar"),
    # what the controls do not cover stays as written: TOP n, WHERE, ORDER BY, LIMIT, aliases
    ("FROM sales SHOW net_sales WHERE is_b2b GROUP BY TOP 5 product_title DURING this_year ORDER BY net_sales DESC LIMIT 10",
     {"dimension": "product_vendor", "date_range": "last_year"},
     "FROM sales SHOW net_sales WHERE is_b2b GROUP BY TOP 5 product_vendor DURING last_year ORDER BY net_sales DESC LIMIT 10"),
    ("FROM sales SHOW sales_channel, net_sales AS ns GROUP BY sales_channel DURING this_year ORDER BY sales_channel VISUALIZE ns",
     {"dimension": "customer_type"},
     "FROM sales SHOW customer_type, net_sales AS ns GROUP BY customer_type DURING this_year ORDER BY customer_type VISUALIZE ns"),
    ("FROM sales SHOW sales_channel, net_sales GROUP BY sales_channel DURING this_year ORDER BY sales_channel",
     {"dimension": None},
     "FROM sales SHOW net_sales DURING this_year"),
    # grain: rename everywhere, or drop
    ("FROM sales SHOW month, net_sales GROUP BY month DURING this_year ORDER BY month", {"grain": "quarter"},
     "FROM sales SHOW quarter, net_sales GROUP BY quarter DURING this_year ORDER BY quarter"),
    (ROUND_TRIP[1], {"grain": None},
     "FROM sales SHOW net_sales, orders GROUP BY billing_region DURING last_quarter COMPARE TO previous_year VISUALIZE net_sales TYPE line"),
    # no comparison: PERCENT_CHANGE and ordering by comparison columns go too
    ("FROM sales SHOW net_sales GROUP BY sales_channel DURING this_year COMPARE TO previous_year WITH PERCENT_CHANGE, TOTALS ORDER BY percent_change_net_sales__previous_year DESC",
     {"comparison": None},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING this_year WITH TOTALS"),
    # removing a metric removes it from VISUALIZE and ORDER BY
    ("FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING this_year ORDER BY orders DESC VISUALIZE net_sales, orders TYPE bar",
     {"metrics": ("net_sales",)},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING this_year VISUALIZE net_sales TYPE bar"),
    # arithmetic in SHOW is kept; a new chart charts the plain metrics
    (ROUND_TRIP[6], {"chart_type": "line", "grain": "week"},
     "FROM sales SHOW net_sales, gross_sales / orders AS aov WHERE sales_channel = 'Online Store' GROUP BY week DURING this_year VISUALIZE net_sales TYPE line"),
    # a query without a date range gets one; SINCE -30d is replaced by a named range
    ("FROM sales SHOW net_sales", {"dimension": "sales_channel", "date_range": "this_month", "chart_type": "bar"},
     "FROM sales SHOW net_sales GROUP BY sales_channel DURING this_month VISUALIZE net_sales TYPE bar"),
    (ROUND_TRIP[5], {"date_range": "last_month"}, "FROM sales SHOW net_sales TIMESERIES week DURING last_month"),
    # a mixed-type chart is rewritten only when a single type is picked
    (ROUND_TRIP[7], {"chart_type": "line"},
     "FROM sales SHOW net_sales GROUP BY sales_channel, billing_region DURING this_year COMPARE TO previous_period, previous_year WITH PERCENT_CHANGE, TOTALS LIMIT 20 VISUALIZE net_sales, net_sales TYPE line"),
]


@pytest.mark.parametrize(("source", "changes", "expected"), CHANGES)
def test_each_change_gives_the_expected_query(store, source, changes, expected):
    query = parse(source)
    state = dataclasses.replace(state_from_query(query, store.model), **changes)
    rewritten = apply_state(query, state)
    assert format_query(rewritten) == text(expected)
    assert rewritten == parse(expected)  # the AST itself, not only its text
    assert state_from_query(rewritten) == state  # the controls read back what was set
    store.compile(rewritten)  # and the new query resolves


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metrics": ()}, "pick at least one metric"),
        ({"date_range": CUSTOM}, "needs a start date"),
        ({"date_range": CUSTOM, "custom_from": dt.date(2025, 5, 1), "custom_to": dt.date(2025, 4, 1)}, "ends (2025-04-01) before it starts"),
        ({"date_range": ALL_TIME, "comparison": "previous_year"}, "needs a period to compare"),
        ({"dimension": "month"}, "is a time grain"),
        ({"chart_type": "pie"}, "unknown chart type"),
        ({"chart_type": "treemap"}, "not supported"),
    ],
)
def test_impossible_states_raise_a_commerceql_error(changes, message):
    query = parse(NOTEBOOK_QUERY)
    with pytest.raises(cql.CommerceQLError, match=re.escape(message)):
        apply_state(query, dataclasses.replace(state_from_query(query), **changes))


def test_comparison_without_dates_is_fine_with_a_time_grain():
    query = parse("FROM sales SHOW net_sales TIMESERIES month")
    state = dataclasses.replace(state_from_query(query), comparison="previous_year")
    assert format_query(apply_state(query, state)) == text("FROM sales SHOW net_sales TIMESERIES month COMPARE TO previous_year")


def test_rewritten_queries_have_no_stale_positions():
    query = parse(NOTEBOOK_QUERY)
    rewritten = apply_state(query, dataclasses.replace(state_from_query(query), dimension="billing_region"))
    assert rewritten.source == ""
    assert rewritten.span is None and rewritten.group_by[0].span is None and rewritten.show[0].expression.span is None


# ---------------------------------------------------------------------------------------------
# The widget
# ---------------------------------------------------------------------------------------------


def table_cells(widget: ExploreWidget) -> list[list[str]]:
    rows = re.findall(r"<tr(?: [^>]*)?>(.*?)</tr>", widget.w_table.value.split("<tbody>", 1)[1].split("</tbody>", 1)[0])
    return [[re.sub(r"<[^>]+>", "", cell).replace("&amp;", "&") for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)] for row in rows]


def expected_cells(store, query_text: str) -> list[list[str]]:
    result = store.query(query_text)
    names = [c.name for c in result.columns]
    return [
        [format_value(value, column, result.currency) for value, column in zip(row, result.columns, strict=True)]
        for row in result.df.select(names).iter_rows()
    ]


@pytest.fixture
def widget(store):
    return store.explore(NOTEBOOK_QUERY)


def test_explore_and_result_widget_return_the_widget(store):
    result = store.query(NOTEBOOK_QUERY)
    widget = result.widget()
    assert isinstance(widget, ExploreWidget)
    assert widget.result is result and widget.revision == 1 and widget.timings == []  # not run again
    assert widget.query_text == text(NOTEBOOK_QUERY) == widget.w_query.value
    assert "cql-explore" in widget._dom_classes
    assert isinstance(store.explore(NOTEBOOK_QUERY), ExploreWidget)
    from_text = ExploreWidget(store, NOTEBOOK_QUERY)
    assert from_text.state == widget.state and from_text.error is None


def test_controls_show_the_query(widget, store):
    assert widget.w_dimension.value == "sales_channel"
    assert widget.w_date_range.value == "last_month"
    assert widget.w_grain.value == "" and widget.w_comparison.value == ""
    assert widget.w_chart_type.value == "bar"
    assert widget.w_metrics.value == ("net_sales",)
    dimensions = [value for _, value in widget.w_dimension.options]
    assert dimensions[0] == "" and set(store.model.table("sales").dimensions) <= set(dimensions)
    assert "day_of_week" in dimensions
    labels = dict((value, label) for label, value in widget.w_date_range.options)
    assert labels["last_quarter"] == "Last quarter (Jul 1 – Sep 30, 2025)"
    assert labels[ALL_TIME] == "All time" and CUSTOM in labels
    assert [value for _, value in widget.w_comparison.options] == [
        "", "previous_period", "previous_year", "previous_year_match_day_of_week"
    ]
    from commerceql.charts import SUPPORTED_CHART_TYPES

    assert set(SUPPORTED_CHART_TYPES) <= {value for _, value in widget.w_chart_type.options}
    assert not widget.w_comparison.disabled


def test_metric_and_dimension_lists_show_the_table_headers(store):
    """The lists read like the table ("Net sales"), their values stay the raw names the query uses."""
    from commerceql.display import column_headers, humanize

    widget = store.explore(
        "FROM sales SHOW net_sales, average_order_value GROUP BY billing_region DURING last_month "
        "COMPARE TO previous_year VISUALIZE net_sales"
    )
    headers = column_headers(widget.result)
    metric_labels = {value: label for label, value in widget.w_metrics.options}
    assert metric_labels["net_sales"] == headers["net_sales"] == "Net sales"
    assert metric_labels["average_order_value"] == headers["average_order_value"]
    assert widget.w_metrics.value == ("net_sales", "average_order_value")  # values: raw names
    dimension_labels = {value: label for label, value in widget.w_dimension.options}
    assert dimension_labels["billing_region"] == headers["billing_region"] == "Billing region"
    assert dimension_labels[""] == "none"
    for name in store.model.table("sales").dimensions:
        assert dimension_labels[name] == humanize(name)
    # the chart's titles and legend say what the table's headers say
    spec_text = json.dumps(widget.vegalite_spec)
    assert f'"{headers["billing_region"]}"' in spec_text
    assert f'"{headers["comparison_net_sales__previous_year"]}"' in spec_text
    # searching matches the label too ("Billing" finds billing_region)
    widget.controls["dimension_filter"].value = "Billing reg"
    assert "billing_region" in [value for _, value in widget.w_dimension.options]
    widget.close()


def test_control_changes_rewrite_rerun_and_redraw(widget, store):
    widget.controls["dimension"].value = "billing_region"
    expected = "FROM sales SHOW net_sales GROUP BY billing_region DURING last_month VISUALIZE net_sales TYPE bar"
    assert widget.query_text == text(expected) == widget.w_query.value
    assert widget.error is None and widget.revision == 2

    widget.controls["date_range"].value = "last_quarter"
    widget.controls["comparison"].value = "previous_year"
    expected = (
        "FROM sales SHOW net_sales GROUP BY billing_region DURING last_quarter COMPARE TO previous_year "
        "VISUALIZE net_sales TYPE bar"
    )
    assert widget.query_text == text(expected)
    assert widget.query == parse(expected)
    # the numbers in the widget's table are those of a direct query of the expected text
    assert table_cells(widget) == expected_cells(store, expected)
    assert "comparison_net_sales__previous_year" in widget.w_table.value
    # the chart output is a Vega spec JupyterLab draws offline, with this data
    (output,) = widget.w_chart.outputs
    assert output["output_type"] == "display_data" and VEGA_MIME in output["data"]
    assert output["metadata"][VEGA_MIME]["embed_options"]["renderer"] == "svg"
    assert "California" in json.dumps(output["data"][VEGA_MIME])
    assert "Online Store" not in json.dumps(output["data"][VEGA_MIME])
    assert "✓ 65 rows" in widget.w_status.value
    assert len(widget.timings) == 3


def test_grain_metrics_and_chart_type_controls(widget, store):
    widget.controls["grain"].value = "month"
    widget.controls["metrics"].value = ("net_sales", "orders")
    widget.controls["chart_type"].value = "line"
    expected = (
        "FROM sales SHOW net_sales, orders GROUP BY sales_channel TIMESERIES month DURING last_month "
        "VISUALIZE net_sales, orders TYPE line"
    )
    assert widget.query_text == text(expected)
    assert table_cells(widget) == expected_cells(store, expected)
    assert widget.vegalite_spec["usermeta"]["commerceql"]["chart_types"] == ["line"]
    widget.controls["chart_type"].value = ""
    assert widget.w_chart.outputs == () and widget.vegalite_spec is None
    assert "VISUALIZE" not in widget.query_text


def test_metric_order_follows_the_query_not_the_list(store):
    widget = store.explore("FROM sales SHOW orders, net_sales GROUP BY sales_channel DURING last_month")
    widget.controls["metrics"].value = ("gross_sales", "net_sales", "orders")  # list order, as the browser sends it
    assert widget.state.metrics == ("orders", "net_sales", "gross_sales")
    assert "SHOW orders, net_sales, gross_sales" in widget.query_text


def test_all_time_turns_the_comparison_off_and_says_so(widget):
    widget.update(comparison="previous_year")
    assert not widget.w_comparison.disabled
    widget.controls["date_range"].value = ALL_TIME
    assert widget.error is None
    assert widget.state.comparison is None and widget.w_comparison.value == ""
    assert widget.w_comparison.disabled
    assert "turned off" in widget.w_status.value
    assert "COMPARE TO" not in widget.query_text and "DURING" not in widget.query_text
    widget.controls["grain"].value = "month"  # a time grain has a default period: comparison possible again
    assert not widget.w_comparison.disabled


def test_invalid_choices_show_a_status_message_not_an_exception(widget):
    before = (widget.revision, widget.w_table.value)
    widget.controls["metrics"].value = ()
    assert isinstance(widget.error, ExploreStateError)
    assert '<pre class="cql-error">' in widget.w_status.value and "pick at least one metric" in widget.w_status.value
    assert "still show the previous choice" in widget.w_status.value
    assert (widget.revision, widget.w_table.value) == before

    widget.controls["metrics"].value = ("net_sales",)
    assert widget.error is None and widget.revision == before[0] + 1

    widget.controls["date_range"].value = CUSTOM  # prefilled with the dates of the current result
    assert (widget.w_from.value, widget.w_to.value) == (dt.date(2025, 11, 1), dt.date(2025, 11, 30))
    assert widget.w_custom.layout.display == "flex"
    assert "SINCE 2025-11-01 UNTIL 2025-11-30" in widget.query_text
    widget.controls["custom_to"].value = dt.date(2025, 10, 1)
    assert isinstance(widget.error, ExploreStateError) and "before it starts" in widget.w_status.value


def test_query_errors_are_rendered_with_their_position(store):
    widget = store.explore("FROM sales SHOW net_sales, orders GROUP BY sales_channel HAVING orders > 5 DURING last_month")
    widget.controls["metrics"].value = ("net_sales",)  # HAVING still names orders
    assert widget.error is not None and widget.error.line == 4
    status = widget.w_status.value
    assert '<pre class="cql-error">' in status and "HAVING can only use columns of the result" in status
    assert "4 |   HAVING orders &gt; 5" in status  # the caret points into the text shown in the widget


def test_dimension_search_filters_without_running(widget):
    revision = widget.revision
    widget.controls["dimension_filter"].value = "region"
    values = [value for _, value in widget.w_dimension.options]
    assert "billing_region" in values and "shipping_region" in values and "product_title" not in values
    assert widget.w_dimension.value == "sales_channel" and "sales_channel" in values  # current kept
    assert widget.revision == revision
    widget.controls["dimension"].value = "shipping_region"
    assert "GROUP BY shipping_region" in widget.query_text
    widget.controls["dimension_filter"].value = "state or province"  # descriptions match too
    assert "billing_region" in [value for _, value in widget.w_dimension.options]


def test_query_text_is_read_only(widget):
    widget.w_query.value = "FROM sales SHOW orders"
    assert widget.w_query.value == widget.query_text == text(NOTEBOOK_QUERY)


def test_update_and_reset(widget):
    widget.update(dimension="billing_region", date_range="last_quarter", comparison="previous_year", chart_type="none")
    assert widget.query_text == text(
        "FROM sales SHOW net_sales GROUP BY billing_region DURING last_quarter COMPARE TO previous_year"
    )
    assert widget.w_dimension.value == "billing_region" and widget.w_chart_type.value == ""
    with pytest.raises(TypeError, match="unknown control"):
        widget.update(colour="red")
    widget.reset()
    assert widget.query == widget.original and widget.query_text == text(NOTEBOOK_QUERY)
    assert widget.w_dimension.value == "sales_channel"


def test_a_chart_that_cannot_be_drawn_keeps_the_table(store):
    widget = store.explore(NOTEBOOK_QUERY)
    widget.update(chart_type="scatter_plot")  # needs two metrics
    assert widget.error is None
    assert "Online Store" in widget.w_table.value
    (output,) = widget.w_chart.outputs
    if VEGA_MIME not in output["data"]:  # the chart module may fall back or explain
        assert "cql-error" in output["data"]["text/html"]
        assert "could not be drawn" in widget.w_status.value


def test_export_html_is_standalone(widget, tmp_path):
    widget.update(dimension="billing_region", date_range="last_quarter", comparison="previous_year")
    path = widget.export_html(tmp_path / "view.html")
    page = path.read_text(encoding="utf-8")
    assert path.is_absolute() and path.exists()
    assert not re.search(r"<script[^>]*\bsrc\s*=", page, flags=re.IGNORECASE)
    assert not re.search(r"<link[^>]*\bhref\s*=\s*[\"']?https?:", page, flags=re.IGNORECASE)
    assert "window.vegaEmbed" in page or "vegaEmbed=" in page  # the library is inline
    assert widget.w_table.value.split('">', 1)[1].rsplit("</div>", 1)[0] in page  # the table
    assert "GROUP BY billing_region" in page and "COMPARE TO previous_year" in page  # the query
    spec_json = re.search(r'<script type="application/json" id="cql-vegalite-spec">(.*?)</script>', page, re.S).group(1)
    spec = json.loads(spec_json.replace("<\\/", "</"))
    assert spec == widget.vegalite_spec
    assert "California" in json.dumps(spec["layer"] if "layer" in spec else spec)


def test_export_button_writes_to_the_path_in_the_bar(widget, tmp_path):
    widget.controls["export_path"].value = str(tmp_path / "out" / "report")
    widget.controls["export"].click()
    written = tmp_path / "out" / "report.html"
    assert written.exists()
    assert str(written) in widget.w_status.value and "Exported to" in widget.w_status.value
    widget.controls["export_path"].value = "/proc/definitely/not/writable.html"
    widget.controls["export"].click()  # an error is shown, not raised
    assert '<pre class="cql-error">' in widget.w_status.value and "export failed" in widget.w_status.value


def test_export_target_puts_bare_names_in_the_exports_folder(tmp_path):
    from commerceql.widget_export import EXPORTS_FOLDER, export_target

    assert export_target("report.html", base=tmp_path) == tmp_path / EXPORTS_FOLDER / "report.html"
    assert export_target("report", base=tmp_path) == tmp_path / EXPORTS_FOLDER / "report.html"
    assert export_target("./report.html", base=tmp_path) == tmp_path / "report.html"  # a folder: as written
    assert export_target("out/q3.htm", base=tmp_path) == tmp_path / "out" / "q3.htm"
    assert export_target(tmp_path / "abs" / "x.html", base="/elsewhere") == tmp_path / "abs" / "x.html"
    with pytest.raises(ValueError):
        export_target("  ", base=tmp_path)


def test_exports_leave_no_untracked_file_outside_the_exports_folder(store, tmp_path, monkeypatch):
    """What an analyst's exports leave in a checkout: files under exports/, which .gitignore ignores."""
    import shutil
    import subprocess
    from pathlib import Path

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    checkout = tmp_path / "checkout"
    notebooks = checkout / "notebooks"
    notebooks.mkdir(parents=True)
    shutil.copy(Path(__file__).resolve().parents[1] / ".gitignore", checkout / ".gitignore")
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    subprocess.run(["git", "-C", str(checkout), "add", ".gitignore"], check=True)
    monkeypatch.chdir(notebooks)  # a notebook's kernel runs in the notebook's folder

    widget = store.explore(NOTEBOOK_QUERY)
    assert widget.controls["export_path"].value == "exports/sales_explore.html"
    default_file = notebooks / "exports" / "sales_explore.html"
    assert str(default_file) in widget.w_export_target.value  # the bar says where the button writes
    widget.controls["export"].click()
    assert default_file.exists() and str(default_file) in widget.w_status.value
    named = widget.export_html("net_sales_by_region.html")  # what notebooks/widgets_explorer.ipynb does
    assert named == notebooks / "exports" / "net_sales_by_region.html" and named.exists()
    widget.controls["export_path"].value = "by_region"
    assert str(notebooks / "exports" / "by_region.html") in widget.w_export_target.value

    status = subprocess.run(
        ["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=all"],
        check=True, capture_output=True, text=True,
    ).stdout.splitlines()
    assert status == ["A  .gitignore"], status


def test_behind_commerceql_serve_a_bar_has_no_export(store, monkeypatch):
    """A served dashboard's page must not write files: every bar drops its export widgets, closed."""
    import ipywidgets

    from commerceql.widgets import DASHBOARD_ENV, ExploreWidget

    monkeypatch.setenv(DASHBOARD_ENV, "1")
    served = ExploreWidget(store, "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales")
    found, pending = [], [served]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(getattr(current, "children", ()) if isinstance(current, ipywidgets.Box) else ())
    assert served.export_removed
    assert served.w_export not in found and served.w_export_path not in found and served.w_export_target not in found
    assert served.w_export.comm is None and served.w_export_path.comm is None  # closed: no widget message reaches them
    assert served.w_reset in found and served.result is not None


def test_export_without_a_chart(widget, tmp_path):
    widget.update(chart_type=None)
    page = widget.export_html(tmp_path / "table_only.html").read_text(encoding="utf-8")
    assert "cql-vegalite-spec" not in page and "Online Store" in page and "<script" not in page


def test_latency_is_measured_and_live(store, capsys):
    report = measure_latency(store)
    with capsys.disabled():
        print(
            f"\nexplore widget: control change -> table+chart updated: p50 {report['p50'] * 1000:.0f} ms, "
            f"p90 {report['p90'] * 1000:.0f} ms, max {report['max'] * 1000:.0f} ms over {report['n']} changes"
        )
    assert report["n"] >= 10
    assert all(rows >= 0 for _, _, _, rows in report["samples"])  # every change updated (no time limit: CI is busy)


class EngineSpy:
    """Counts the statements a store's engine runs (wraps `engine.run`)."""

    def __init__(self, store, monkeypatch) -> None:
        self.statements: list[str] = []
        original = store.engine.run

        def run(sql, parameters=None):
            self.statements.append(sql)
            return original(sql, parameters)

        monkeypatch.setattr(store.engine, "run", run)


@pytest.mark.parametrize("chart_type", ["line", "horizontal_bar", "donut", AUTO])
def test_a_chart_type_change_redraws_without_querying(store, monkeypatch, chart_type):
    widget = store.explore(NOTEBOOK_QUERY)
    widget.controls["dimension"].value = "billing_region"
    rows_before = widget.result.df
    spy = EngineSpy(store, monkeypatch)
    widget.controls["chart_type"].value = chart_type
    assert spy.statements == [] and widget.error is None
    assert widget.result.df is rows_before  # the rows already shown, not fetched again
    # ... and what is shown equals a fresh run of the query the controls now stand for
    fresh = store.query(widget.query_text)
    assert widget.result.query == fresh.query and widget.result.notices == fresh.notices
    assert widget.result.df.equals(fresh.df) and widget.result.total_rows == fresh.total_rows
    assert widget.vegalite_spec == fresh.vegalite_spec
    assert table_cells(widget) == expected_cells(store, widget.query_text)
    assert widget.w_table.value.endswith(f"{fresh.to_html(max_rows=widget.max_rows)}</div>")
    (output,) = widget.w_chart.outputs
    from commerceql.widget_export import chart_display_bundle

    assert output["data"] == chart_display_bundle(None, fresh.vegalite_spec)[0]


def test_a_change_of_what_is_asked_runs_the_query(store, monkeypatch):
    widget = store.explore(NOTEBOOK_QUERY)
    spy = EngineSpy(store, monkeypatch)
    before = widget.queries_run
    widget.controls["date_range"].value = "last_quarter"
    assert widget.queries_run == before + 1 and spy.statements
    widget.controls["metrics"].value = ("net_sales", "orders")
    assert widget.queries_run == before + 2
    assert table_cells(widget) == expected_cells(store, widget.query_text)
    assert widget.vegalite_spec == store.query(widget.query_text).vegalite_spec


# ---------------------------------------------------------------------------------------------
# Closing control bars: counts of live widgets stay bounded
# ---------------------------------------------------------------------------------------------


def _open_widgets() -> int:
    from ipywidgets.widgets.widget import _instances

    return len(_instances)


def _open_explore_widgets() -> int:
    from ipywidgets.widgets.widget import _instances

    return sum(isinstance(w, ExploreWidget) for w in _instances.values())


def test_closing_a_control_bar_closes_every_widget_inside_it(store):
    before = _open_widgets()
    widget = store.explore(NOTEBOOK_QUERY)
    inside = _open_widgets() - before
    assert inside > 20  # controls, boxes, layouts, styles: all registered until closed
    widget.close()
    assert _open_widgets() == before
    assert widget.comm is None and widget.w_dimension.comm is None and widget.w_dimension.layout.comm is None
    widget.close()  # closing twice is harmless
    assert _open_widgets() == before


def test_live_widgets_keep_at_most_their_limit_open(store):
    from commerceql.widgets import LiveWidgets

    live = LiveWidgets(limit=3)
    retired: list[dict] = []
    before, explore_before = _open_widgets(), _open_explore_widgets()
    first = store.explore(NOTEBOOK_QUERY)
    per_bar = _open_widgets() - before
    live.add(first, retire=lambda w: retired.append(w.static_bundle("closed")))
    for _ in range(11):
        live.add(store.explore(NOTEBOOK_QUERY), retire=lambda w: retired.append(w.static_bundle("closed")))
    assert len(live) == 3
    assert _open_explore_widgets() - explore_before == 3
    assert _open_widgets() - before == 3 * per_bar
    assert first.comm is None
    # each retired bar left its last view behind: the note, the query and the table
    assert len(retired) == 9
    assert all("closed" in b["text/plain"] and "sales_channel" in b["text/html"] and "<table" in b["text/html"] for b in retired)
    live.close_all()
    assert len(live) == 0 and _open_widgets() == before


def test_a_rerun_cell_closes_the_bars_of_its_previous_run(store):
    from commerceql.widgets import LiveWidgets

    live = LiveWidgets(limit=50)
    explore_before = _open_explore_widgets()
    retired: list[object] = []
    for _ in range(8):
        assert live.close_cell("cell-a") <= 1
        live.add(store.explore(NOTEBOOK_QUERY), cell="cell-a", retire=retired.append)
        live.add(store.explore(NOTEBOOK_QUERY), cell="cell-b", retire=retired.append)
        live.close_cell("cell-b")
    assert len(live) == 1 and _open_explore_widgets() - explore_before == 1
    assert retired == []  # the frontend cleared those outputs itself; nothing to replace
    assert live.close_cell(None) == 0
    live.close_all()


def test_the_limit_comes_from_the_environment(monkeypatch):
    from commerceql.widgets import DEFAULT_MAX_LIVE_CONTROL_BARS, LiveWidgets

    monkeypatch.setenv("COMMERCEQL_MAX_CONTROL_BARS", "7")
    assert LiveWidgets().limit == 7
    for bad in ("0", "-3", "many", ""):
        monkeypatch.setenv("COMMERCEQL_MAX_CONTROL_BARS", bad)
        assert LiveWidgets().limit == DEFAULT_MAX_LIVE_CONTROL_BARS


# ---------------------------------------------------------------------------------------------
# Saved notebooks keep their widgets (JupyterLab settings written by the kernel install)
# ---------------------------------------------------------------------------------------------

WIDGETS_PLUGIN = "@jupyter-widgets/jupyterlab-manager:plugin"


def test_kernel_install_into_an_environment_makes_jupyterlab_save_widget_state(tmp_path):
    """`commerceql kernel install --sys-prefix` (what `make setup` and `make lab` run) writes the
    setting, and JupyterLab's own settings reader takes it as the widget manager's default."""
    import sys
    from pathlib import Path

    from commerceql_kernel.install import LAB_OVERRIDES_FILE, install_kernel_spec, lab_settings_dir
    from jupyterlab_server.settings_utils import get_settings

    labextensions = Path(sys.prefix) / "share" / "jupyter" / "labextensions"
    if not (labextensions / "@jupyter-widgets" / "jupyterlab-manager").exists():
        pytest.skip("the ipywidgets JupyterLab extension is not installed in this environment")
    prefix = tmp_path / "env"
    settings_dir = lab_settings_dir(prefix)

    def save_state_default() -> bool:
        """The widget manager's `saveState` default as JupyterLab serves it from this environment."""
        served, _warnings = get_settings(
            str(settings_dir),
            str(tmp_path / "no-schemas"),
            str(tmp_path / "user-settings"),
            schema_name=WIDGETS_PLUGIN,
            labextensions_path=[str(labextensions)],
        )
        return served["schema"]["properties"]["saveState"]["default"]

    assert save_state_default() is False  # JupyterLab's own default
    kernel_dir = install_kernel_spec(prefix=str(prefix))
    assert (Path(kernel_dir) / "kernel.json").exists()
    written = settings_dir / "overrides.d" / LAB_OVERRIDES_FILE
    assert json.loads(written.read_text(encoding="utf-8"))[WIDGETS_PLUGIN] == {"saveState": True}
    assert save_state_default() is True

    # A user's own overrides.json is left alone by a second install.
    (settings_dir / "overrides.json").write_text('{"x:y": {"z": 1}}', encoding="utf-8")
    install_kernel_spec(prefix=str(prefix))
    assert json.loads((settings_dir / "overrides.json").read_text(encoding="utf-8")) == {"x:y": {"z": 1}}
    assert save_state_default() is True


def test_lab_settings_dir_of_the_running_environment_is_jupyterlabs(monkeypatch, tmp_path):
    from commerceql_kernel.install import lab_settings_dir

    monkeypatch.setenv("JUPYTERLAB_DIR", str(tmp_path / "lab"))
    assert lab_settings_dir() == (tmp_path / "lab").resolve() / "settings"


def test_the_python_examples_of_docs_widgets_run_and_print_what_the_doc_shows(store, capsys):
    """docs/widgets.md, *From Python*: the blocks run in order, and the output written in the
    comments under a line (the state's repr, the printed query) is what that line gives."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "widgets.md").read_text(encoding="utf-8")
    section = doc.split("## From Python", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    lines = blocks[0].splitlines()

    def comments_after(prefix: str) -> tuple[int, list[str]]:
        at = next(i for i, line in enumerate(lines) if line.startswith(prefix))
        shown = []
        for line in lines[at + 1 :]:
            if not line.startswith("#"):
                break
            shown.append(line[2:])
        return at, shown

    state_at, shown_state = comments_after("state = ")
    printed_at, shown_query = comments_after("print(format_query(new))")
    namespace: dict[str, object] = {"store": store}
    exec("\n".join(lines[: state_at + 1]), namespace)  # noqa: S102 - the documentation's own example
    assert repr(namespace["state"]) == re.sub(r"\s+", " ", " ".join(shown_state).strip())
    exec("\n".join(lines[state_at + 1 : printed_at + 1]), namespace)  # noqa: S102
    assert capsys.readouterr().out.rstrip("\n") == "\n".join(shown_query)
    exec("\n".join(lines[printed_at + 1 :]), namespace)  # noqa: S102
    exec(blocks[1], namespace)  # noqa: S102 - the "On a widget" block
    widget = namespace["w"]
    assert widget.query == widget.original and widget.error is None
    widget.close()
