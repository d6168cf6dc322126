"""VISUALIZE → Altair: every chart type over hand-made frames shaped like engine output."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from decimal import Decimal
from functools import cache
from pathlib import Path

import altair as alt
import polars as pl
import pytest

from commerceql.charts import (
    SUPPORTED_CHART_TYPES,
    UNSUPPORTED_CHART_TYPES,
    ChartRequest,
    build_chart,
    chart_to_vegalite,
    default_chart_type,
    propagate_chart_types,
    save_chart,
    validate_chart_type,
)
from commerceql.columns import ColumnInfo as C
from commerceql.errors import CommerceQLError, CommerceQLNameError, CommerceQLSemanticError

# ---------------------------------------------------------------------------------------------
# Frames that look like engine output
# ---------------------------------------------------------------------------------------------

MONEY = pl.Decimal(18, 2)


def monthly():
    """TIMESERIES month, net_sales (Decimal money) COMPARE TO previous_year, orders."""
    months = [dt.datetime(2024, m, 1) for m in range(1, 13)]
    df = pl.DataFrame(
        {
            "month": months,
            "net_sales": [Decimal(10000 + 850 * i) + Decimal("0.25") for i in range(12)],
            "comparison_net_sales__previous_year": [
                Decimal(9000 + 700 * i) + Decimal("0.50") for i in range(12)
            ],
            "orders": [120 + 7 * i for i in range(12)],
        },
        schema_overrides={"net_sales": MONEY, "comparison_net_sales__previous_year": MONEY},
    )
    cols = [
        C("month", "time", "month"),
        C("net_sales", "metric", "money"),
        C(
            "comparison_net_sales__previous_year",
            "comparison",
            "money",
            base="net_sales",
            comparison="previous_year",
        ),
        C("orders", "metric", "count"),
    ]
    return df, cols


def by_region():
    df = pl.DataFrame(
        {
            "billing_region": ["California", "New York", "Texas", "Florida", "Washington", "Ontario"],
            "net_sales": [
                Decimal(v) for v in ("52341.10", "40122.00", "33110.45", "21000.00", "15000.99", "9000.00")
            ],
            "orders": [410, 300, 280, 190, 120, 75],
        },
        schema_overrides={"net_sales": MONEY},
    )
    return df, [
        C("billing_region", "dimension", "string"),
        C("net_sales", "metric", "money"),
        C("orders", "metric", "count"),
    ]


def two_dims():
    rows = [
        (t, ch, float(len(t) * 1000 + len(ch) * 137))
        for t in ["Shirts", "Pants", "Hats", "Shoes"]
        for ch in ["Online Store", "Point of Sale", "Wholesale"]
    ]
    df = pl.DataFrame(rows, schema=["product_type", "sales_channel", "net_sales"], orient="row")
    return df, [
        C("product_type", "dimension", "string"),
        C("sales_channel", "dimension", "string"),
        C("net_sales", "metric", "money"),
    ]


def one_number():
    df = pl.DataFrame(
        {
            "net_sales": [Decimal("123456.78")],
            "comparison_net_sales__previous_period": [Decimal("100000.00")],
            "percent_change_net_sales__previous_period": [0.2345678],
        },
        schema_overrides={"net_sales": MONEY, "comparison_net_sales__previous_period": MONEY},
    )
    return df, [
        C("net_sales", "metric", "money"),
        C(
            "comparison_net_sales__previous_period",
            "comparison",
            "money",
            base="net_sales",
            comparison="previous_period",
        ),
        C(
            "percent_change_net_sales__previous_period",
            "percent_change",
            "percent",
            base="net_sales",
            comparison="previous_period",
        ),
    ]


FUNNEL_METRICS = (
    "sessions",
    "sessions_with_cart_additions",
    "sessions_that_reached_checkout",
    "sessions_that_completed_checkout",
)


def funnel():
    df = pl.DataFrame(
        {
            # deliberately not in funnel order: the chart orders steps by value
            "sessions_that_reached_checkout": [900],
            "sessions": [10000],
            "sessions_that_completed_checkout": [420],
            "sessions_with_cart_additions": [1800],
        }
    )
    names = {
        "sessions": "Sessions",
        "sessions_with_cart_additions": "Added to cart",
        "sessions_that_reached_checkout": "Reached checkout",
        "sessions_that_completed_checkout": "Completed checkout",
    }
    return df, [C(n, "metric", "count", display_name=d) for n, d in names.items()]


def week_by_weekday():
    rows = [
        (dt.date(2024, 1, 1) + dt.timedelta(weeks=w), d, (d * 37 + w * 11) % 50 + 10)
        for w in range(6)
        for d in range(0, 7)
    ]
    df = pl.DataFrame(rows, schema=["week", "day_of_week", "orders"], orient="row")
    return df, [
        C("week", "time", "week"),
        C("day_of_week", "time", "day_of_week"),
        C("orders", "metric", "count"),
    ]


def daily():
    days = [dt.date(2024, 1, 1) + dt.timedelta(days=i) for i in range(120)]
    df = pl.DataFrame({"day": days, "orders": [(i * 7919) % 23 + 5 for i in range(120)]})
    return df, [C("day", "time", "day"), C("orders", "metric", "count")]


def rfm():
    rows = [(r, f, (r * 13 + f * 7) % 40 + 2) for r in range(1, 6) for f in range(1, 6)]
    df = pl.DataFrame(rows, schema=["recency_score", "frequency_score", "customers"], orient="row")
    return df, [
        C("recency_score", "dimension", "integer"),
        C("frequency_score", "dimension", "integer"),
        C("customers", "metric", "count"),
    ]


def products():
    df = pl.DataFrame(
        {
            "product_title": [
                "Alpine Jacket",
                "Trail Runner Shoes",
                "Merino Beanie",
                "Canvas Tote",
                "Wool Socks",
                "Rain Shell",
            ],
            "orders": [40, 88, 120, 65, 210, 30],
            "net_sales": [12000.0, 9800.5, 3600.0, 1950.0, 4200.0, 6600.0],
            "customers": [38, 80, 100, 60, 150, 29],
        }
    )
    return df, [
        C("product_title", "dimension", "string"),
        C("orders", "metric", "count"),
        C("net_sales", "metric", "money"),
        C("customers", "metric", "count"),
    ]


def cohorts():
    rows = [
        (dt.date(2024, 1 + c, 1), k, 1.0 if k == 0 else max(0.0, 1.0 - 0.35 * k**0.6 - 0.03 * c))
        for c in range(4)
        for k in range(6)
    ]
    df = pl.DataFrame(
        rows, schema=["cohort_month", "months_since_first_order", "retention_rate"], orient="row"
    )
    return df, [
        C("cohort_month", "time", "month", display_name="Cohort"),
        C("months_since_first_order", "dimension", "integer"),
        C("retention_rate", "metric", "percent"),
    ]


def bridge():
    df = pl.DataFrame(
        {
            "gross_sales": [Decimal("50000")],
            "discounts": [Decimal("-4000")],
            "sales_reversals": [Decimal("-2500")],
            "net_sales": [Decimal("43500")],
        }
    )
    return df, [C(n, "metric", "money") for n in df.columns]


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@cache
def _validator():
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = Path(alt.__file__).parent / "vegalite" / "v6" / "schema" / "vega-lite-schema.json"
    schema = json.loads(schema_path.read_text())
    return jsonschema.Draft7Validator(schema)


def draw(fixture, metrics, types, **kwargs):
    df, cols = fixture()
    if isinstance(types, str) or types is None:
        types = (types,) * len(metrics)
    chart = build_chart(df, cols, ChartRequest(tuple(metrics), tuple(types), **kwargs))
    chart.to_dict(validate=True)  # Altair's own validation
    spec = chart_to_vegalite(chart)
    errors = sorted(_validator().iter_errors(spec), key=lambda e: e.path)
    assert not errors, errors[0].message[:500]
    json.dumps(spec, allow_nan=False)  # JSON-serializable, no NaN
    return chart, spec


def units(spec):
    """Every unit spec (one with a mark) in a possibly layered/concatenated spec."""
    if "mark" in spec:
        yield spec
    for key in ("layer", "hconcat", "vconcat", "concat"):
        for child in spec.get(key, []):
            yield from units(child)


def mark_type(unit):
    mark = unit["mark"]
    return mark if isinstance(mark, str) else mark["type"]


def unit_with(spec, mark):
    return next(u for u in units(spec) if mark_type(u) == mark)


def values(spec):
    """The inline records of the first dataset found."""
    if "data" in spec and "values" in spec["data"]:
        return spec["data"]["values"]
    for key in ("layer", "hconcat", "vconcat"):
        for child in spec.get(key, []):
            found = values(child)
            if found:
                return found
    return []


def meta(spec):
    return spec["usermeta"]["commerceql"]


# ---------------------------------------------------------------------------------------------
# Chart types, TYPE propagation, validation
# ---------------------------------------------------------------------------------------------


def test_supported_types_cover_the_shopifyql_list():
    g2 = {
        "bar", "horizontal_bar", "grouped_bar", "horizontal_grouped_bar", "stacked_bar",
        "stacked_horizontal_bar", "single_stacked_bar", "line", "stacked_area", "histogram", "donut",
        "funnel", "heatmap", "single_metric", "list", "list_with_dimension_values", "table", "rfm_grid",
    }  # fmt: skip
    assert g2 <= set(SUPPORTED_CHART_TYPES)
    assert {
        "scatter_plot",
        "area",
        "bubble_chart",
        "waterfall",
        "calendar_heatmap",
        "retention_curve",
    } <= set(SUPPORTED_CHART_TYPES)
    assert "target_gauge" not in SUPPORTED_CHART_TYPES and "target_gauge" in UNSUPPORTED_CHART_TYPES
    assert len(set(SUPPORTED_CHART_TYPES)) == len(SUPPORTED_CHART_TYPES)


def test_validate_chart_type_accepts_any_case():
    assert validate_chart_type("bar") == "bar"
    assert validate_chart_type("Horizontal_Bar") == "horizontal_bar"


def test_unknown_chart_type_lists_supported_types_and_suggests():
    with pytest.raises(CommerceQLNameError) as info:
        validate_chart_type("barr")
    error = info.value
    assert error.message == "unknown chart type `barr`"
    assert "did you mean `bar`?" in error.hint
    assert "supported chart types: line, bar," in error.hint
    assert "scatter_plot" in error.hint


def test_unsupported_known_type_says_why():
    with pytest.raises(CommerceQLNameError) as info:
        validate_chart_type("target_gauge")
    assert "not supported" in info.value.message and "targets" in info.value.message


def test_propagate_chart_types():
    assert propagate_chart_types([None, "bar", None, "line", None]) == ("bar", "bar", "line", "line", None)
    assert propagate_chart_types([None, None]) == (None, None)
    assert propagate_chart_types(["line", None, "bar"]) == ("line", "bar", "bar")
    assert propagate_chart_types([]) == ()


# ---------------------------------------------------------------------------------------------
# Default chart type and fallbacks
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "metrics", "expected"),
    [
        (monthly, ("net_sales",), "line"),
        (by_region, ("net_sales",), "bar"),
        (one_number, ("net_sales",), "single_metric"),
        (two_dims, ("net_sales",), "grouped_bar"),  # 3 sales channels
        (week_by_weekday, ("orders",), "heatmap"),  # time x cyclical
        (daily, ("orders",), "line"),
    ],
)
def test_default_chart_type(fixture, metrics, expected):
    df, cols = fixture()
    assert default_chart_type(df, cols, ChartRequest(metrics, (None,) * len(metrics))) == expected


def test_default_two_categories_with_many_values_is_heatmap():
    df = pl.DataFrame(
        {
            "a": [f"a{i}" for i in range(8) for _ in range(8)],
            "b": [f"b{j}" for _ in range(8) for j in range(8)],
            "m": [1.0] * 64,
        }
    )
    cols = [C("a", "dimension", "string"), C("b", "dimension", "string"), C("m", "metric", "number")]
    assert default_chart_type(df, cols, ChartRequest(("m",), (None,))) == "heatmap"


def test_automatic_type_is_drawn_and_recorded():
    _, spec = draw(monthly, ["net_sales"], None)
    assert meta(spec)["chart_types"] == ["line"]
    assert meta(spec)["requested_types"] == [None]


def test_heatmap_with_one_category_falls_back_to_bar():
    _, spec = draw(by_region, ["net_sales"], "heatmap")
    assert meta(spec)["chart_types"] == ["bar"]
    assert mark_type(next(units(spec))) == "bar"


def test_heatmap_of_days_becomes_calendar():
    _, spec = draw(daily, ["orders"], "heatmap")
    assert meta(spec)["chart_types"] == ["calendar_heatmap"]


def test_line_without_any_dimension_falls_back_to_single_metric():
    _, spec = draw(one_number, ["net_sales"], "line")
    assert meta(spec)["chart_types"] == ["single_metric"]


def test_scatter_with_one_metric_is_a_plain_error():
    df, cols = by_region()
    with pytest.raises(CommerceQLSemanticError) as info:
        build_chart(df, cols, ChartRequest(("net_sales",), ("scatter_plot",)))
    assert "two metrics" in info.value.message


def test_unknown_metric_is_a_name_error():
    df, cols = by_region()
    with pytest.raises(CommerceQLNameError) as info:
        build_chart(df, cols, ChartRequest(("net_sale",), (None,)))
    assert "did you mean `net_sales`?" in info.value.hint


def test_dimension_is_not_a_metric():
    df, cols = by_region()
    with pytest.raises(CommerceQLSemanticError):
        build_chart(df, cols, ChartRequest(("billing_region",), (None,)))


def test_unknown_type_in_request_raises_name_error():
    df, cols = by_region()
    with pytest.raises(CommerceQLNameError):
        build_chart(df, cols, ChartRequest(("net_sales",), ("pie_chart",)))


def test_empty_result_draws_a_no_data_message():
    df, cols = by_region()
    _, spec = draw(lambda: (df.head(0), cols), ["net_sales"], "bar")
    assert values(spec) == [{"__text": "No data for this query"}]


def test_bad_max_is_a_semantic_error():
    df, cols = by_region()
    with pytest.raises(CommerceQLSemanticError):
        build_chart(df, cols, ChartRequest(("net_sales",), ("bar",), max_points=0))


# ---------------------------------------------------------------------------------------------
# Each chart type: marks and encodings
# ---------------------------------------------------------------------------------------------


def test_line_with_comparison():
    _, spec = draw(monthly, ["net_sales"], "line")
    unit = unit_with(spec, "line")
    enc = unit["encoding"]
    assert enc["x"]["field"] == "month" and enc["x"]["type"] == "temporal"
    assert enc["x"]["axis"]["format"] == "%b %Y"
    assert enc["y"]["field"] == "__value" and enc["y"]["type"] == "quantitative"
    assert enc["y"]["axis"]["format"] == "$,.0f"
    assert enc["color"]["field"] == "__series"
    assert enc["color"]["scale"]["domain"] == ["Net sales", "Net sales (previous year)"]
    assert enc["strokeDash"]["field"] == "__series"
    assert enc["strokeDash"]["scale"]["range"] == [[1, 0], [6, 4]]
    assert {t["title"] for t in enc["tooltip"]} >= {"Month", "Series", "Value"}
    month_tip = next(t for t in enc["tooltip"] if t["title"] == "Month")
    assert month_tip["format"] == "%B %Y"
    records = values(spec)
    assert len(records) == 24  # 12 months x (current + comparison)
    first = records[0]
    assert first["month"] == "2024-01-01T00:00:00"
    assert isinstance(first["__value"], float) and first["__value"] == 10000.25
    assert first["__value_text"] == "$10,000.25"
    comparison = next(r for r in records if r["__kind"] == "previous_year")
    assert comparison["month"] == "2024-01-01T00:00:00" and comparison["__value"] == 9000.5
    assert spec["title"]["text"] == "Net sales by month"
    assert spec["title"]["subtitle"] == "Compared with previous year"
    assert spec["config"]["locale"]["number"]["currency"] == ["$", ""]


def test_line_with_two_value_types_gets_a_second_axis():
    _, spec = draw(monthly, ["net_sales", "orders"], "line")
    assert spec["resolve"]["scale"]["y"] == "independent"
    formats = [u["encoding"]["y"]["axis"]["format"] for u in units(spec)]
    assert "$,.0f" in formats and ",d" in formats


def test_line_by_time_and_category_colours_each_category():
    df = pl.DataFrame(
        {
            "month": [dt.datetime(2024, m, 1, tzinfo=dt.UTC) for m in (1, 1, 2, 2)],
            "sales_channel": ["Online", "POS", "Online", "POS"],
            "orders": [10, 4, 12, 5],
        }
    )
    cols = [
        C("month", "time", "month"),
        C("sales_channel", "dimension", "string"),
        C("orders", "metric", "count"),
    ]
    _, spec = draw(lambda: (df, cols), ["orders"], None)
    enc = unit_with(spec, "line")["encoding"]
    assert enc["color"]["scale"]["domain"] == ["Online", "POS"]
    assert values(spec)[0]["month"] == "2024-01-01T00:00:00"  # tz-aware → wall clock, no zone


def test_area():
    _, spec = draw(monthly, ["net_sales"], "area")
    area = unit_with(spec, "area")
    line = unit_with(spec, "line")
    assert area["encoding"]["y"]["stack"] is None
    assert {"filter": "datum.__kind == 'current'"} in area["transform"]
    assert line["encoding"]["strokeDash"]["scale"]["range"][1] == [6, 4]


def test_stacked_area_stacks_explicitly():
    df, cols = two_dims()
    months = pl.DataFrame(
        {
            "month": [dt.date(2024, m, 1) for m in (1, 2, 3) for _ in range(2)],
            "ch": ["A", "B"] * 3,
            "orders": [1, 2, 3, 4, 5, 6],
        }
    )
    mcols = [C("month", "time", "month"), C("ch", "dimension", "string"), C("orders", "metric", "count")]
    _, spec = draw(lambda: (months, mcols), ["orders"], "stacked_area")
    area = unit_with(spec, "area")
    assert area["encoding"]["y"]["field"] == "__y1" and area["encoding"]["y2"]["field"] == "__y0"
    march_b = next(r for r in values(spec) if r["__label_month"] == "Mar 2024" and r["__series"] == "B")
    assert (march_b["__y0"], march_b["__y1"]) == (5.0, 11.0)


def test_bar_by_region():
    _, spec = draw(by_region, ["net_sales"], "bar")
    unit = unit_with(spec, "bar")
    enc = unit["encoding"]
    assert enc["x"]["field"] == "__label_billing_region" and enc["x"]["type"] == "nominal"
    assert enc["x"]["sort"] == ["California", "New York", "Texas", "Florida", "Washington", "Ontario"]
    assert enc["y"]["field"] == "__value" and enc["y"]["axis"]["format"] == "$,.0f"
    assert enc["color"]["legend"] is None
    assert spec["title"]["text"] == "Net sales by billing region"


def test_bar_over_time_with_comparison_is_grouped_and_distinct():
    _, spec = draw(monthly, ["net_sales"], "bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["x"]["field"] == "__label_month" and enc["x"]["sort"][0] == "Jan 2024"
    assert enc["xOffset"]["field"] == "__series"
    colours = dict(zip(enc["color"]["scale"]["domain"], enc["color"]["scale"]["range"], strict=True))
    assert colours["Net sales"] != colours["Net sales (previous year)"]  # lighter shade
    assert enc["strokeDash"]["scale"]["range"] == [[1, 0], [6, 4]]
    assert enc["color"]["legend"]["title"] is None


def test_horizontal_bar():
    _, spec = draw(by_region, ["net_sales"], "horizontal_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["y"]["field"] == "__label_billing_region"
    assert enc["x"]["field"] == "__value" and enc["x"]["type"] == "quantitative"


def test_grouped_bar_two_dims():
    _, spec = draw(two_dims, ["net_sales"], "grouped_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["x"]["field"] == "__label_product_type"
    assert enc["xOffset"]["field"] == "__series"
    assert enc["color"]["scale"]["domain"] == ["Online Store", "Point of Sale", "Wholesale"]


def test_horizontal_grouped_bar_several_metrics_same_type():
    df = pl.DataFrame({"billing_region": ["A", "B"], "gross_sales": [10.0, 20.0], "net_sales": [8.0, 15.0]})
    cols = [
        C("billing_region", "dimension", "string"),
        C("gross_sales", "metric", "money"),
        C("net_sales", "metric", "money"),
    ]
    _, spec = draw(lambda: (df, cols), ["gross_sales", "net_sales"], "horizontal_grouped_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["y"]["field"] == "__label_billing_region"
    assert enc["yOffset"]["field"] == "__series"
    assert enc["color"]["scale"]["domain"] == ["Gross sales", "Net sales"]


def test_grouped_bars_of_money_and_counts_become_small_multiples():
    _, spec = draw(by_region, ["net_sales", "orders"], "horizontal_grouped_bar")
    assert len(spec["hconcat"]) == 2
    formats = [u["encoding"]["x"]["axis"]["format"] for u in units(spec)]
    assert formats == ["$,.0f", ",d"]


def test_stacked_bar():
    _, spec = draw(two_dims, ["net_sales"], "stacked_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["y"]["stack"] == "zero"
    assert enc["color"]["field"] == "__series"
    assert "xOffset" not in enc


def test_stacked_horizontal_bar():
    _, spec = draw(two_dims, ["net_sales"], "stacked_horizontal_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["x"]["stack"] == "zero" and enc["y"]["field"] == "__label_product_type"


def test_stacked_bar_with_comparison_offsets_the_periods():
    _, spec = draw(monthly, ["net_sales"], "stacked_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["xOffset"]["field"] == "__kind"


def test_single_stacked_bar():
    _, spec = draw(by_region, ["net_sales"], "single_stacked_bar")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["x"]["stack"] == "zero" and enc["color"]["field"] == "__part"
    assert "y" not in enc
    shares = [r["__share_text"] for r in values(spec)]
    assert shares[0] == "30.7%"


def test_histogram():
    _, spec = draw(products, ["orders"], "histogram")
    enc = unit_with(spec, "bar")["encoding"]
    assert enc["x"]["bin"]["maxbins"] >= 5
    assert enc["y"]["aggregate"] == "count"
    assert enc["y"]["axis"]["title"] == "Number of product titles"


def test_histogram_max_sets_bins():
    _, spec = draw(products, ["orders"], "histogram", max_points=3)
    assert unit_with(spec, "bar")["encoding"]["x"]["bin"]["maxbins"] == 3


def test_donut():
    _, spec = draw(by_region, ["net_sales"], "donut")
    arc = unit_with(spec, "arc")
    assert arc["mark"]["innerRadius"] > 0
    assert arc["encoding"]["theta"]["field"] == "__value"
    assert arc["encoding"]["color"]["field"] == "__part"
    assert arc["encoding"]["color"]["sort"][0] == "California"


def test_donut_of_metrics_without_dimension():
    df = pl.DataFrame({"online": [70.0], "pos": [30.0]})
    cols = [C("online", "metric", "money"), C("pos", "metric", "money")]
    _, spec = draw(lambda: (df, cols), ["online", "pos"], "donut")
    assert [r["__part"] for r in values(spec)] == ["Online", "POS"]  # the table's headers (display.humanize)


def test_funnel_orders_steps_by_value():
    _, spec = draw(funnel, list(FUNNEL_METRICS), "funnel")
    bar = unit_with(spec, "bar")
    assert bar["encoding"]["y"]["sort"] == [
        "Sessions",
        "Added to cart",
        "Reached checkout",
        "Completed checkout",
    ]
    assert bar["encoding"]["x"]["field"] == "__x0" and bar["encoding"]["x2"]["field"] == "__x1"
    last = values(spec)[-1]
    assert last["__of_first"] == "4.2%" and last["__of_previous"] == "46.7%"


def test_funnel_by_dimension_rows():
    _, spec = draw(by_region, ["orders"], "funnel", max_points=3)
    assert [r["__step"] for r in values(spec)] == ["California", "New York", "Texas"]


def test_heatmap_time_by_cyclical():
    _, spec = draw(week_by_weekday, ["orders"], "heatmap")
    rect = unit_with(spec, "rect")
    enc = rect["encoding"]
    assert enc["x"]["field"] == "__label_week"
    assert enc["y"]["field"] == "__label_day_of_week"
    assert enc["y"]["sort"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]  # ShopifyQL: 0 = Monday
    assert enc["color"]["field"] == "__value" and enc["color"]["type"] == "quantitative"
    assert mark_type(list(units(spec))[1]) == "text"


def test_heatmap_two_categories():
    _, spec = draw(two_dims, ["net_sales"], "heatmap")
    enc = unit_with(spec, "rect")["encoding"]
    assert enc["y"]["field"] == "__label_product_type" and enc["x"]["field"] == "__label_sales_channel"
    assert enc["color"]["legend"]["format"] == "$,.0f"


def test_calendar_heatmap():
    _, spec = draw(daily, ["orders"], "calendar_heatmap")
    enc = unit_with(spec, "rect")["encoding"]
    assert enc["y"]["field"] == "__weekday" and enc["x"]["field"] == "__week"


def test_rfm_grid():
    _, spec = draw(rfm, ["customers"], "rfm_grid")
    enc = unit_with(spec, "rect")["encoding"]
    assert enc["x"]["field"] == "__label_recency_score" and enc["x"]["sort"] == ["1", "2", "3", "4", "5"]
    assert enc["y"]["field"] == "__label_frequency_score" and enc["y"]["sort"] == ["5", "4", "3", "2", "1"]


def test_single_metric_with_comparison_and_change():
    _, spec = draw(one_number, ["net_sales"], "single_metric")
    record = values(spec)[0]
    assert record["__big"] == "$123,456.78"
    assert record["__change0"] == "▲ 23.5%"
    assert record["__vs0"] == "vs $100,000.00 previous period"
    texts = [u for u in units(spec) if mark_type(u) == "text"]
    assert max(u["mark"]["fontSize"] for u in texts) >= 30


def test_single_metric_over_rows_uses_totals_or_sum():
    _, spec = draw(monthly, ["orders"], "single_metric")
    assert values(spec)[0]["__big"] == f"{sum(120 + 7 * i for i in range(12)):,}"


def test_list():
    _, spec = draw(by_region, ["net_sales"], "list")
    assert [u["title"]["text"] for u in spec["hconcat"]] == ["#", "Billing region", "Net sales"]
    assert all(mark_type(u) == "text" for u in units(spec))
    assert values(spec)[0]["__c2"] == "$52,341.10"


def test_list_with_dimension_values():
    _, spec = draw(two_dims, ["net_sales"], "list_with_dimension_values")
    assert [u["title"]["text"] for u in spec["hconcat"]] == ["Product type", "Sales channel", "Net sales"]


def test_table_shows_comparisons_and_totals():
    df, cols = monthly()
    df = df.with_columns(pl.lit(Decimal("180000.00")).cast(MONEY).alias("net_sales__totals"))
    cols = [*cols, C("net_sales__totals", "totals", "money", base="net_sales")]
    _, spec = draw(lambda: (df, cols), ["net_sales"], "table")
    headers = [u["title"]["text"] for u in spec["hconcat"]]
    assert headers == ["Month", "Net sales", "Net sales (previous year)"]
    records = values(spec)
    assert records[0]["__c0"] == "Jan 2024"
    assert records[-1]["__c0"] == "Total" and records[-1]["__c1"] == "$180,000.00"


def test_scatter_plot():
    _, spec = draw(products, ["orders", "net_sales"], "scatter_plot")
    point = unit_with(spec, "circle")
    enc = point["encoding"]
    assert enc["x"]["field"] == "orders" and enc["y"]["field"] == "net_sales"
    assert enc["y"]["axis"]["format"] == "$,.0f"
    assert any(t.get("format") == "$,.2f" for t in enc["tooltip"])


def test_bubble_chart():
    _, spec = draw(products, ["orders", "net_sales", "customers"], "bubble_chart")
    assert unit_with(spec, "circle")["encoding"]["size"]["field"] == "customers"


def test_waterfall_uses_last_metric_as_total():
    _, spec = draw(bridge, ["gross_sales", "discounts", "sales_reversals", "net_sales"], "waterfall")
    records = values(spec)
    assert [r["__kind"] for r in records] == ["Increase", "Decrease", "Decrease", "Total"]
    assert records[2]["__y1"] == 43500.0 and records[-1]["__y1"] == 43500.0


def test_retention_curve():
    _, spec = draw(cohorts, ["retention_rate"], "retention_curve")
    enc = unit_with(spec, "line")["encoding"]
    assert enc["x"]["field"] == "__label_months_since_first_order"
    assert enc["color"]["scale"]["domain"][0] == "Jan 2024"
    assert enc["y"]["axis"]["format"] == ".1%"


def test_combo_of_bar_and_line_shares_axes():
    _, spec = draw(monthly, ["net_sales", "orders"], ["bar", "line"])
    assert meta(spec)["chart_types"] == ["bar", "line"]
    assert [mark_type(u) for u in units(spec)] == ["bar", "line"]
    assert spec["resolve"]["scale"]["y"] == "independent"
    line = unit_with(spec, "line")
    assert line["encoding"]["x"]["field"] == "__label_month"  # band axis shared with the bars


def test_non_layerable_types_are_stacked_vertically():
    _, spec = draw(by_region, ["net_sales", "orders"], ["donut", "bar"])
    assert len(spec["vconcat"]) == 2


@pytest.mark.parametrize("chart_type", SUPPORTED_CHART_TYPES)
def test_every_type_builds_a_valid_spec(chart_type):
    fixtures = {
        "funnel": (funnel, list(FUNNEL_METRICS)),
        "single_metric": (one_number, ["net_sales"]),
        "scatter_plot": (products, ["orders", "net_sales"]),
        "bubble_chart": (products, ["orders", "net_sales", "customers"]),
        "waterfall": (bridge, ["gross_sales", "discounts", "sales_reversals", "net_sales"]),
        "calendar_heatmap": (daily, ["orders"]),
        "rfm_grid": (rfm, ["customers"]),
        "retention_curve": (cohorts, ["retention_rate"]),
        "heatmap": (week_by_weekday, ["orders"]),
    }
    fixture, metrics = fixtures.get(chart_type, (monthly, ["net_sales"]))
    chart, spec = draw(fixture, metrics, chart_type)
    assert isinstance(chart, alt.TopLevelMixin)
    assert meta(spec)["chart_types"] == [chart_type]
    assert "datasets" not in spec
    for unit in units(spec):
        assert (
            "tooltip" in unit["encoding"]
            or mark_type(unit) in {"text", "area", "rect"}
            or chart_type in {"single_stacked_bar"}
        )


# ---------------------------------------------------------------------------------------------
# Formats, MAX, data conversion
# ---------------------------------------------------------------------------------------------


def test_currency_formats():
    df, cols = by_region()
    chart = build_chart(df, cols, ChartRequest(("net_sales",), ("bar",), currency="EUR"))
    spec = chart_to_vegalite(chart)
    assert spec["config"]["locale"]["number"]["currency"] == ["€", ""]
    assert values(spec)[0]["__value_text"] == "€52,341.10"
    chart = build_chart(df, cols, ChartRequest(("net_sales",), ("bar",), currency="CHF"))
    spec = chart_to_vegalite(chart)
    assert spec["config"]["locale"]["number"]["currency"] == ["", " CHF"]
    assert values(spec)[0]["__value_text"] == "52,341.10 CHF"


def test_percent_and_count_axis_formats():
    df = pl.DataFrame(
        {"billing_region": ["A", "B"], "conversion_rate": [0.021, 0.034], "orders": [1200, 3400]}
    )
    cols = [
        C("billing_region", "dimension", "string"),
        C("conversion_rate", "metric", "percent"),
        C("orders", "metric", "count"),
    ]
    _, spec = draw(lambda: (df, cols), ["conversion_rate"], "bar")
    assert unit_with(spec, "bar")["encoding"]["y"]["axis"]["format"] == ".1%"
    assert values(spec)[0]["__value_text"] == "2.1%"
    _, spec = draw(lambda: (df, cols), ["orders"], "bar")
    axis = unit_with(spec, "bar")["encoding"]["y"]["axis"]
    assert axis["format"] == ",d"
    assert values(spec)[0]["__value_text"] == "1,200"


def test_day_axis_format():
    _, spec = draw(lambda: (daily()[0].head(20), daily()[1]), ["orders"], "line")
    assert unit_with(spec, "line")["encoding"]["x"]["axis"]["format"] == "%b %d"


def test_max_keeps_first_categories():
    _, spec = draw(by_region, ["net_sales"], "bar", max_points=3)
    assert unit_with(spec, "bar")["encoding"]["x"]["sort"] == ["California", "New York", "Texas"]
    assert len(values(spec)) == 3


def test_max_keeps_last_periods_of_time():
    _, spec = draw(monthly, ["net_sales"], "line", max_points=3)
    months = sorted({r["month"] for r in values(spec)})
    assert months == ["2024-10-01T00:00:00", "2024-11-01T00:00:00", "2024-12-01T00:00:00"]


def test_max_on_two_dims_counts_categories_of_the_first():
    _, spec = draw(two_dims, ["net_sales"], "grouped_bar", max_points=2)
    assert {r["__label_product_type"] for r in values(spec)} == {"Shirts", "Pants"}


def test_decimals_nans_and_nulls_become_json():
    df = pl.DataFrame(
        {
            "billing_region": ["A", None, "C"],
            "net_sales": [Decimal("1.50"), None, Decimal("2.25")],
            "ratio": [float("nan"), 0.5, float("inf")],
        },
        schema_overrides={"net_sales": pl.Decimal(38, 2)},
    )
    cols = [
        C("billing_region", "dimension", "string"),
        C("net_sales", "metric", "money"),
        C("ratio", "metric", "number"),
    ]
    _, spec = draw(lambda: (df, cols), ["net_sales", "ratio"], "table")
    text = json.dumps(spec, allow_nan=False)
    assert "Decimal" not in text
    _, spec = draw(lambda: (df, cols), ["net_sales"], "bar")
    records = values(spec)
    assert [r["__value"] for r in records] == [1.5, None, 2.25]
    assert records[1]["__label_billing_region"] == "(none)"
    assert records[1]["__value_text"] == "–"


def test_columns_without_metadata_are_inferred():
    df = pl.DataFrame({"day": [dt.date(2024, 1, d) for d in (1, 2, 3)], "orders": [3, 4, 5]})
    chart = build_chart(df, [], ChartRequest((), ()))
    spec = chart_to_vegalite(chart)
    assert meta(spec)["chart_types"] == ["line"]
    assert meta(spec)["metrics"] == ["orders"]


def test_chart_to_vegalite_inlines_datasets_from_altair_charts():
    df = pl.DataFrame({"a": ["x", "y"], "b": [Decimal("1.5"), Decimal("2.5")]})
    chart = alt.Chart(df.with_columns(pl.col("b").cast(pl.Float64))).mark_bar().encode(x="a:N", y="b:Q")
    spec = chart_to_vegalite(chart)
    assert "datasets" not in spec
    assert spec["data"]["values"] == [{"a": "x", "b": 1.5}, {"a": "y", "b": 2.5}]


def test_raw_exceptions_never_escape(monkeypatch):
    import commerceql.charts as charts

    def boom(*args, **kwargs):
        raise KeyError("internal")

    monkeypatch.setattr(charts, "_draw", boom)
    df, cols = by_region()
    with pytest.raises(CommerceQLError) as info:
        build_chart(df, cols, ChartRequest(("net_sales",), ("bar",)))
    assert isinstance(info.value, CommerceQLSemanticError)


# ---------------------------------------------------------------------------------------------
# Saving: PNG, SVG, HTML, JSON
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def line_chart():
    df, cols = monthly()
    return build_chart(df, cols, ChartRequest(("net_sales",), ("line",)))


def test_save_png(tmp_path, line_chart):
    path = save_chart(line_chart, tmp_path / "chart.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 5000


def test_save_svg(tmp_path, line_chart):
    path = save_chart(line_chart, str(tmp_path / "chart.svg"))
    text = path.read_text()
    assert text.lstrip().startswith("<svg")
    assert "Net sales by month" in text
    assert "$20,000" in text  # currency-formatted axis


def test_save_html_is_standalone(tmp_path, line_chart):
    import re

    text = save_chart(line_chart, tmp_path / "chart.html").read_text()
    assert "<script" in text
    assert not re.search(r"<script[^>]+src=", text)
    assert "cdn.jsdelivr" not in text
    assert "vegaEmbed" in text and "vega-lite" in text.lower()
    assert len(text) > 500_000  # the libraries are inlined


def test_save_json(tmp_path, line_chart):
    spec = json.loads(save_chart(line_chart, tmp_path / "out" / "chart.json").read_text())
    assert spec["data"]["values"]


def test_save_unknown_suffix(tmp_path, line_chart):
    with pytest.raises(CommerceQLSemanticError):
        save_chart(line_chart, tmp_path / "chart.bmp")


@pytest.mark.parametrize(
    ("fixture", "metrics", "chart_type"),
    [
        (by_region, ["net_sales"], "donut"),
        (funnel, list(FUNNEL_METRICS), "funnel"),
        (one_number, ["net_sales"], "single_metric"),
        (two_dims, ["net_sales"], "table"),
        (week_by_weekday, ["orders"], "heatmap"),
    ],
)
def test_other_types_render_to_png(tmp_path, fixture, metrics, chart_type):
    chart, _ = draw(fixture, metrics, chart_type)
    data = save_chart(chart, tmp_path / f"{chart_type}.png").read_bytes()
    assert data[:4] == b"\x89PNG" and len(data) > 2000


# ---------------------------------------------------------------------------------------------
# One source of labels: a chart says what its table's headers say
# ---------------------------------------------------------------------------------------------


def _titles(node) -> set[str]:
    """Every title text in a spec (chart title and subtitle, axis, legend and tooltip titles)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("title", "subtitle") and isinstance(value, str):
                found.add(value)
            found |= _titles(value)
    elif isinstance(node, list):
        for item in node:
            found |= _titles(item)
    return found


def _series(spec) -> set[str]:
    return {r["__series"] for r in values(spec) if "__series" in r}


def test_chart_titles_and_legends_use_the_table_headers():
    from commerceql.display import column_labels

    df, cols = monthly()
    headers = column_labels(cols).headers
    _, spec = draw(lambda: (df, cols), ["net_sales"], "line")
    assert headers["month"] in _titles(spec)  # x axis: "Month"
    assert headers["net_sales"] in _titles(spec)  # y axis: "Net sales"
    assert headers["comparison_net_sales__previous_year"] == "Net sales (previous year)"
    assert _series(spec) == {headers["net_sales"], headers["comparison_net_sales__previous_year"]}
    assert spec["title"]["subtitle"] == "Compared with previous year"


def test_chart_labels_keep_acronyms_and_aliases_like_the_table():
    from commerceql.display import column_labels

    df = pl.DataFrame({"utm_source": ["google", "email"], "revenue": [10.0, 5.0], "aov": [2.0, 1.0]})
    cols = [
        C("utm_source", "dimension", "string"),
        C("revenue", "metric", "money", display_name="revenue"),  # `net_sales AS revenue`
        C("aov", "metric", "money"),
    ]
    headers = column_labels(cols).headers
    assert (headers["utm_source"], headers["revenue"], headers["aov"]) == ("UTM source", "revenue", "AOV")
    _, spec = draw(lambda: (df, cols), ["revenue", "aov"], "bar")
    assert {"UTM source", "revenue", "AOV"} <= _titles(spec) | _series(spec)
    assert spec["title"]["text"] == "revenue and AOV by UTM source"


def test_a_named_comparison_reads_as_in_the_plan_without_a_plan():
    df, cols = monthly()
    df = df.rename({"comparison_net_sales__previous_year": "comparison_net_sales__previous_year_match_day_of_week"})
    cols = [
        replace(c, name="comparison_net_sales__previous_year_match_day_of_week", comparison="previous_year_match_day_of_week")
        if c.role == "comparison" else c
        for c in cols
    ]
    _, spec = draw(lambda: (df, cols), ["net_sales"], "line")
    assert "Net sales (previous year, matching day of week)" in _series(spec)
    assert spec["title"]["subtitle"] == "Compared with previous year, matching day of week"


def test_labels_given_with_the_request_are_the_charts_words(sample_store_path):
    """A result's own labels (its plan's comparison titles) reach the chart through the request."""
    import commerceql as cql
    from commerceql.charts import build_chart_spec
    from commerceql.display import column_headers, result_labels

    with cql.connect(sample_store_path) as store:
        result = store.query(
            "FROM sales SHOW net_sales AS revenue GROUP BY billing_region DURING last_quarter "
            "COMPARE TO 2024-01-01 UNTIL 2024-03-31 VISUALIZE revenue"
        )
        headers = column_headers(result)
        request = ChartRequest(metrics=("revenue",), chart_types=("bar",), labels=result_labels(result))
        spec = build_chart_spec(result.df, result.columns, request)
    comparison = next(name for name in headers if name.startswith("comparison_revenue__"))
    assert headers[comparison] == "revenue (Jan 1 – Mar 31, 2024)"  # a month keeps its capital
    assert {headers["revenue"], headers[comparison]} == _series(spec)
    assert headers["billing_region"] in _titles(spec)
    assert spec["title"]["subtitle"] == "Compared with Jan 1 – Mar 31, 2024"
