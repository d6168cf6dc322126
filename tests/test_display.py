"""Tables people can read: Total and subtotal rows, human headers, alignment, one currency table.

Totals are checked against hand-written Polars over the store's raw Parquet files (an additive
metric) or against the result's own `…__totals` column (a non-additive one: the total of an
average is the average over all rows, never a sum of the rows shown).
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Any

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql import charts
from commerceql.columns import ColumnInfo
from commerceql.display import (
    Currency,
    Table,
    column_headers,
    format_money,
    format_value,
    frame_html,
    frame_text,
    result_table,
)

FIRST_QUARTER = ("2025-01-01", "2025-04-01")  # store-local, end exclusive
PERIOD = "SINCE 2025-01-01 UNTIL 2025-03-31"
PREVIOUS_YEAR = ("2024-01-01", "2024-04-01")


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def sales(store) -> pl.DataFrame:
    """The raw sales rows with their store-local time and customer type."""
    frame = raw(store.path, "sales")
    return frame.with_columns(
        local=pl.col("happened_at").dt.convert_time_zone(store.timezone).dt.replace_time_zone(None),
        customer_type=pl.when(pl.col("company_id").is_not_null()).then(pl.lit("B2B")).otherwise(pl.lit("DTC")),
        sales_channel=pl.col("sales_channel").cast(pl.String),
    )


def between(frame: pl.DataFrame, bounds: tuple[str, str]) -> pl.DataFrame:
    start, end = (dt.datetime.fromisoformat(b) for b in bounds)
    return frame.filter((pl.col("local") >= start) & (pl.col("local") < end))


def money(store, value: Any) -> str:
    return format_money(Decimal(str(value)), store.currency)


def row_by_kind(table: Table, kind: str) -> list[tuple[str, ...]]:
    return [r.cells for r in table.rows if r.kind == kind]


def cell(table: Table, cells: tuple[str, ...], label: str) -> str:
    return cells[[h.label for h in table.headers].index(label)]


# -------------------------------------------------------------------------------------------------
# Total rows
# -------------------------------------------------------------------------------------------------


def test_total_row_sums_an_additive_metric_and_takes_an_average_from_its_totals_column(store, sales):
    result = store.query(f"FROM sales SHOW net_sales, average_order_value GROUP BY sales_channel WITH TOTALS {PERIOD}")
    table = result_table(result)
    [total] = row_by_kind(table, "total")
    assert total[0] == "Total"
    expected = between(sales, FIRST_QUARTER)["net_sales"].sum()
    assert cell(table, total, "Net sales") == money(store, expected)
    # Not a sum, nor an average, of the rows: the engine's value over all rows.
    aov_total = result.df["average_order_value__totals"][0]
    assert cell(table, total, "Average order value") == format_value(aov_total, result.column("average_order_value"), store.currency)
    rows_sum = sum(float(v) for v in result.df["average_order_value"])
    assert cell(table, total, "Average order value") != format_money(rows_sum, store.currency)
    # ... which is the hand-computed average order value of the whole period.
    orders = between(sales, FIRST_QUARTER).filter(pl.col("event_type") == "order")
    hand_aov = float(orders["gross_sales"].sum() + orders["discounts"].sum()) / orders["order_id"].n_unique()
    assert float(aov_total) == pytest.approx(hand_aov)
    # The generated total columns are not shown as columns, but stay in the data.
    assert "net_sales__totals" in result.df.columns
    assert all("totals" not in h.label.lower() for h in table.headers)


def test_a_cut_table_says_its_total_is_over_all_rows(store, sales):
    result = store.query(f"FROM sales SHOW net_sales GROUP BY product_title WITH TOTALS {PERIOD} ORDER BY net_sales DESC LIMIT 3")
    period = between(sales, FIRST_QUARTER)
    products = raw(store.path, "products")
    titles = period.join(products.select("product_id", "title"), on="product_id", how="left")["title"].n_unique()
    text = result.to_text()
    table = result_table(result)
    [total] = row_by_kind(table, "total")
    assert total[0] == f"Total (all {titles:,} rows)"
    assert cell(table, total, "Net sales") == money(store, period["net_sales"].sum())
    assert f"showing 3 of {titles:,} rows" in text
    # The display limit cuts too: the same wording when fewer rows are shown than the query has.
    shown = result_table(store.query(f"FROM sales SHOW net_sales GROUP BY sales_channel WITH TOTALS {PERIOD}"), max_rows=2)
    channels = period["sales_channel"].n_unique()
    assert row_by_kind(shown, "total")[0][0] == f"Total (all {channels} rows)"


def test_only_top_says_its_total_covers_every_value(store, sales):
    """ONLY TOP drops the other values from the rows, not from the totals: the label says so."""
    result = store.query(f"FROM sales SHOW net_sales GROUP BY ONLY TOP 2 sales_channel WITH TOTALS {PERIOD}")
    table = result_table(result)
    [total] = row_by_kind(table, "total")
    assert result.df.height == 2 and total[0] == "Total (all values)"
    assert cell(table, total, "Net sales") == money(store, between(sales, FIRST_QUARTER)["net_sales"].sum())


def test_timeseries_total_row(store, sales):
    result = store.query(f"FROM sales SHOW net_sales, orders TIMESERIES month WITH TOTALS {PERIOD}")
    table = result_table(result)
    [total] = row_by_kind(table, "total")
    period = between(sales, FIRST_QUARTER)
    assert total[0] == "Total"
    assert cell(table, total, "Net sales") == money(store, period["net_sales"].sum())
    orders = period.filter(pl.col("event_type") == "order")["order_id"].n_unique()
    assert cell(table, total, "Orders") == f"{orders:,}"
    assert [r.cells[0] for r in table.rows if r.kind == "row"] == ["Jan 2025", "Feb 2025", "Mar 2025"]


def test_comparison_and_percent_change_totals(store, sales):
    result = store.query(
        f"FROM sales SHOW net_sales GROUP BY customer_type WITH TOTALS, PERCENT_CHANGE {PERIOD} COMPARE TO previous_year"
    )
    table = result_table(result)
    [total] = row_by_kind(table, "total")
    current = between(sales, FIRST_QUARTER)["net_sales"].sum()
    previous = between(sales, PREVIOUS_YEAR)["net_sales"].sum()
    assert cell(table, total, "Net sales") == money(store, current)
    assert cell(table, total, "Net sales (previous year)") == money(store, previous)
    change = (float(current) - float(previous)) / abs(float(previous))
    assert cell(table, total, "% change vs previous year") == f"{change * 100:,.1f}%"


def test_group_totals_are_subtotal_rows(store, sales):
    result = store.query(f"FROM sales SHOW net_sales GROUP BY sales_channel, customer_type WITH GROUP_TOTALS {PERIOD}")
    table = result_table(result)
    period = between(sales, FIRST_QUARTER)
    by_channel = {r["sales_channel"]: r["net_sales"] for r in period.group_by("sales_channel").agg(pl.col("net_sales").sum()).to_dicts()}
    by_type = {r["customer_type"]: r["net_sales"] for r in period.group_by("customer_type").agg(pl.col("net_sales").sum()).to_dicts()}
    subtotals = row_by_kind(table, "subtotal")
    channel_rows = {c[0]: c[2] for c in subtotals if c[1] == "All"}
    type_rows = {c[1]: c[2] for c in subtotals if c[0] == "All"}
    assert channel_rows == {k: money(store, v) for k, v in by_channel.items()}
    assert type_rows == {k: money(store, v) for k, v in by_type.items()}
    # Each channel's rows come together, followed by the channel's subtotal.
    kinds = [(r.kind, r.cells[0]) for r in table.rows]
    for channel in by_channel:
        positions = [i for i, (kind, first) in enumerate(kinds) if first == channel]
        assert positions == list(range(positions[0], positions[-1] + 1))
        assert kinds[positions[-1]][0] == "subtotal"
    # And the columns holding them stay in the data, not on screen.
    assert "net_sales__sales_channel_totals" in result.df.columns
    assert [h.name for h in table.headers] == ["sales_channel", "customer_type", "net_sales"]


def test_total_rows_in_every_format(store):
    result = store.query(f"FROM sales SHOW net_sales GROUP BY sales_channel WITH TOTALS {PERIOD}")
    total = money(store, result.df["net_sales__totals"][0])
    text = result.to_text().splitlines()
    assert text[-1].startswith("Total") and text[-1].endswith(total)
    assert set(text[-2]) <= {"-", " "}  # a rule above the total
    assert f"| **Total** | **{total}** |" in result.to_markdown()
    html = result.to_html()
    assert re.search(r"<tfoot><tr class=\"cql-total\"[^>]*>.*Total.*" + re.escape(total), html)


# -------------------------------------------------------------------------------------------------
# Headers
# -------------------------------------------------------------------------------------------------


def test_headers_from_the_model_and_the_plan(store):
    result = store.query(
        f"FROM sales SHOW net_sales AS revenue, orders GROUP BY billing_region WITH PERCENT_CHANGE {PERIOD} COMPARE TO previous_year"
    )
    headers = column_headers(result)
    assert headers["billing_region"] == "Billing region"
    assert headers["revenue"] == "revenue"  # alias text as written
    assert headers["orders"] == "Orders"
    assert headers["comparison_revenue__previous_year"] == "revenue (previous year)"
    assert headers["percent_change_orders__previous_year"] == "Orders % change vs previous year"
    single = store.query(f"FROM sales SHOW net_sales WITH PERCENT_CHANGE {PERIOD} COMPARE TO previous_year_match_day_of_week")
    labels = column_headers(single)
    assert labels["comparison_net_sales__previous_year_match_day_of_week"] == "Net sales (previous year, matching day of week)"
    assert labels["percent_change_net_sales__previous_year_match_day_of_week"] == "% change vs previous year, matching day of week"
    # The raw name stays in Result.columns and on hover; CSV keeps it.
    assert [c.name for c in result.columns][:3] == ["billing_region", "revenue", "orders"]
    assert 'title="comparison_revenue__previous_year' in result.to_html()
    assert result.df.write_csv().splitlines()[0].startswith("billing_region,revenue,orders")


# -------------------------------------------------------------------------------------------------
# Style: alignment and wrapping
# -------------------------------------------------------------------------------------------------


def test_text_left_numbers_right_in_html_and_text(store):
    result = store.query(f"FROM sales SHOW net_sales, orders GROUP BY sales_channel WITH TOTALS {PERIOD}")
    html = result.to_html()
    for tag, kind, align in (("th", "text", "left"), ("td", "text", "left"), ("th", "num", "right"), ("td", "num", "right")):
        cells = re.findall(rf'<{tag} class="{kind}" style="([^"]*)"', html)
        assert cells and all(f"text-align:{align}" in style for style in cells), (tag, kind)
    lines = result.to_text().splitlines()
    rule = lines[1]
    widths = [len(part) for part in rule.split("  ")]
    channel_width = widths[0]
    for line in lines[2:]:
        if set(line) <= {"-", " "}:
            continue
        channel, rest = line[:channel_width], line[channel_width:]
        assert channel == channel.rstrip() + " " * (channel_width - len(channel.rstrip()))  # left
        assert not channel.startswith(" ")
        assert len(line) == sum(widths) + 2 * (len(widths) - 1)  # the last (numeric) column ends flush right
        assert rest.rstrip() == rest


def test_long_descriptions_wrap(store):
    frame = store.schema("sales")
    text = frame_text(frame, max_rows=frame.height, width=90)
    assert max(len(line) for line in text.splitlines()) <= 90
    longest = max(len(d) for d in frame["description"])
    assert longest > 60  # the check means something
    # In HTML a long description wraps within a maximum width; a short text cell does not wrap.
    html = frame_html(frame)
    cells = re.findall(r'<td class="text" style="([^"]*)">([^<]*)</td>', html)
    long_cells = [style for style, text in cells if len(text) > 60]
    short_cells = [style for style, text in cells if len(text) < 20]
    assert long_cells and all("white-space:normal" in s and "max-width:36em" in s for s in long_cells)
    assert short_cells and all("white-space:nowrap" in s for s in short_cells)


def test_plain_text_of_a_table_without_a_width_is_not_wrapped(store):
    frame = store.schema("sales")
    text = frame_text(frame, max_rows=frame.height)
    assert len(text.splitlines()) == frame.height + 2


# -------------------------------------------------------------------------------------------------
# Currency: one table for tables and charts
# -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "amount", "expected"),
    [
        ("KRW", Decimal("1234.4"), "₩1,234"),
        ("JPY", Decimal("1234.5"), "¥1,235"),
        ("USD", Decimal("1234.5"), "$1,234.50"),
        ("EUR", Decimal("-1234.505"), "-€1,234.51"),
        ("XYZ", Decimal("1234"), "1,234.00 XYZ"),
    ],
)
def test_money_in_tables_and_charts_is_written_the_same(code, amount, expected):
    column = ColumnInfo("net_sales", "metric", "money")
    assert format_value(amount, column, code) == expected
    currency = Currency.of(code)
    assert charts._format_value(float(amount), "money", currency) == expected
    # Chart axes (d3-format's `$`) put the same symbol on the same side.
    symbol = expected.lstrip("-")[0] if currency.symbol else ""
    assert currency.d3_locale()["currency"] == ([symbol, ""] if symbol else ["", f" {code}"])


@pytest.mark.parametrize("code", ["KRW", "JPY", "USD", "EUR"])
def test_a_chart_labels_amounts_like_its_table(store, code):
    result = store.query(f"FROM sales SHOW net_sales GROUP BY sales_channel {PERIOD}")
    request = charts.ChartRequest(metrics=("net_sales",), chart_types=("bar",), currency=code)
    spec = charts.chart_to_vegalite(charts.build_chart(result.df, result.columns, request))
    drawn = {r["sales_channel"]: r["__value_text"] for r in spec["data"]["values"]}
    column = result.column("net_sales")
    assert drawn == {r["sales_channel"]: format_value(r["net_sales"], column, code) for r in result.df.iter_rows(named=True)}
    decimals = Currency.of(code).decimals
    assert decimals == (0 if code in ("KRW", "JPY") else 2)
    assert spec["config"]["locale"]["number"]["currency"][0] == Currency.of(code).prefix


# -------------------------------------------------------------------------------------------------
# Widgets keep their chart and table in saved notebooks
# -------------------------------------------------------------------------------------------------


def test_widget_bundle_carries_the_static_chart_and_table(store):
    widget = store.explore(f"FROM sales SHOW net_sales GROUP BY sales_channel WITH TOTALS {PERIOD} VISUALIZE net_sales TYPE bar")
    try:
        bundle = widget._repr_mimebundle_()
        assert "application/vnd.jupyter.widget-view+json" in bundle
        spec = bundle["application/vnd.vegalite.v5+json"]
        assert spec["$schema"].endswith("/v5.json") and spec["data"]["values"]
        html = bundle["text/html"]
        assert "<table" in html and "Total" in html
        assert '<img alt="' in html and "data:image/svg+xml;base64," in html
        assert "Sales channel" in bundle["text/plain"]
        # A retired bar leaves the same static view.
        static = widget.static_bundle("closed")
        assert "application/vnd.jupyter.widget-view+json" not in static and "application/vnd.vegalite.v5+json" in static
        assert "data:image/svg+xml;base64," in static["text/html"] and "closed" in static["text/html"]
    finally:
        widget.close()


# -------------------------------------------------------------------------------------------------
# The kernel draws through the same renderer
# -------------------------------------------------------------------------------------------------


def test_kernel_tables_and_schema_use_the_one_style(sample_store_path):
    from commerceql_kernel.session import TEXT_WIDTH, KernelSession

    session = KernelSession(store_path=str(sample_store_path))
    outputs: list = []
    session.run_cell(f"FROM sales SHOW net_sales GROUP BY sales_channel WITH TOTALS {PERIOD}\n", outputs.append)
    session.run_cell("%schema sales", outputs.append)
    table, schema = (o.data for o in outputs if o.kind == "display")
    # Text columns left (JupyterLab's stylesheet would right-align them), numbers right.
    assert re.search(r'<td class="text" style="text-align:left[^"]*">Online Store</td>', table["text/html"])
    assert re.search(r'<td class="num" style="text-align:right[^"]*">\$', table["text/html"])
    assert "<tfoot>" in table["text/html"] and table["text/plain"].splitlines()[-1].startswith("Total")
    assert re.search(r'<td class="text" style="text-align:left[^"]*">gross_sales</td>', schema["text/html"])
    assert max(len(line) for line in schema["text/plain"].splitlines()) <= TEXT_WIDTH


def test_a_saved_widget_output_exports_its_chart_and_table_with_nbconvert(store):
    """nbconvert (and GitHub) skip a widget view with no saved widget state: the fallback shows."""
    import nbformat
    from nbconvert import HTMLExporter

    widget = store.explore(f"FROM sales SHOW net_sales GROUP BY sales_channel WITH TOTALS {PERIOD} VISUALIZE net_sales TYPE bar")
    try:
        bundle = widget._repr_mimebundle_()
    finally:
        widget.close()
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("FROM sales ...")
    cell.outputs = [nbformat.v4.new_output("display_data", data=bundle)]
    notebook.cells = [cell]
    page, _ = HTMLExporter().from_notebook_node(nbformat.from_dict(notebook))
    assert "data:image/svg+xml;base64," in page
    assert "Total" in page and "Online Store" in page
