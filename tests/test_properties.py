"""Property tests (hypothesis) of the language's arithmetic over the sample store."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import commerceql as cql
from commerceql import dates

ADDITIVE = ["net_sales", "gross_sales", "discounts", "sales_reversals", "taxes", "shipping_charges", "total_sales", "quantity_ordered"]
DIMENSIONS = ["sales_channel", "billing_region", "product_type", "customer_type", "new_or_returning_customer", "discount_code", "company_tier"]
RANGES = ["last_month", "last_quarter", "last_year", "this_year", "last_week", "bfcm2024", "this_month"]
GRAINS = ["day", "week", "month", "quarter"]

PROPERTY_SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def number(value) -> float:
    return 0.0 if value is None else float(value)


@PROPERTY_SETTINGS
@given(metric=st.sampled_from(ADDITIVE), dimension=st.sampled_from(DIMENSIONS), period=st.sampled_from(RANGES))
def test_totals_equal_the_sum_of_rows_for_additive_metrics(store, metric, dimension, period):
    result = store.query(f"FROM sales SHOW {metric} GROUP BY {dimension} WITH TOTALS DURING {period}")
    rows = sum(number(v) for v in result.df[metric].to_list())
    if result.df.height:
        assert number(result.df[f"{metric}__totals"][0]) == pytest.approx(rows, abs=0.01)
    ungrouped = store.query(f"FROM sales SHOW {metric} DURING {period}")
    assert number(ungrouped.df[metric][0]) == pytest.approx(rows, abs=0.01)


@PROPERTY_SETTINGS
@given(grain=st.sampled_from(GRAINS), period=st.sampled_from(RANGES))
def test_timeseries_has_exactly_one_row_per_period(store, grain, period):
    result = store.query(f"FROM sales SHOW net_sales TIMESERIES {grain} DURING {period}")
    window = dates.resolve_reporting_window(
        __import__("commerceql.parser", fromlist=["parse"]).parse(f"FROM sales SHOW net_sales DURING {period}"),
        now=store.now(),
        timezone=store.timezone,
    )
    expected = []
    bucket = dates.truncate(window.start, grain)
    while bucket < window.end:
        expected.append(bucket.date())
        bucket = dates.add_grain(bucket, grain, 1)
    assert result.df[grain].to_list() == expected


@PROPERTY_SETTINGS
@given(
    metric=st.sampled_from(["net_sales", "orders", "average_order_value", "customers"]),
    year=st.sampled_from([2024, 2025]),
    month=st.integers(min_value=1, max_value=11),
)
def test_compare_to_previous_year_equals_the_same_query_a_year_earlier(store, metric, year, month):
    # The period is shifted as a half-open window [start, end): February 2025 compares with the
    # whole of February 2024, leap day included.
    start = dt.date(year, month, 1)
    end = dt.date(year, month + 1, 1) - dt.timedelta(days=1)
    result = store.query(f"FROM sales SHOW {metric} SINCE {start} UNTIL {end} COMPARE TO previous_year")
    earlier_end = dt.date(year - 1, month + 1, 1) - dt.timedelta(days=1)
    earlier = store.query(f"FROM sales SHOW {metric} SINCE {start.replace(year=year - 1)} UNTIL {earlier_end}")
    assert number(result.df[f"comparison_{metric}__previous_year"][0]) == pytest.approx(number(earlier.df[metric][0]))


@PROPERTY_SETTINGS
@given(metric=st.sampled_from(ADDITIVE), grain=st.sampled_from(["day", "week", "month"]), period=st.sampled_from(["last_month", "last_quarter", "this_year"]))
def test_cumulative_is_the_running_sum(store, metric, grain, period):
    result = store.query(f"FROM sales SHOW {metric} TIMESERIES {grain} DURING {period} WITH CUMULATIVE_VALUES")
    running = 0.0
    for value, cumulative in zip(result.df[metric].to_list(), result.df[f"{metric}__cumulative"].to_list(), strict=True):
        running += number(value)
        assert number(cumulative) == pytest.approx(running, abs=0.01)


@PROPERTY_SETTINGS
@given(
    metric=st.sampled_from(["net_sales", "orders", "quantity_ordered", "customers"]),
    dimension=st.sampled_from(["product_title", "billing_region", "product_vendor", "customer_name"]),
    n=st.integers(min_value=1, max_value=8),
    period=st.sampled_from(["last_month", "last_year"]),
)
def test_top_n_plus_other_adds_up_to_the_ungrouped_total(store, metric, dimension, n, period):
    result = store.query(f"FROM sales SHOW {metric} GROUP BY TOP {n} {dimension} DURING {period}")
    values = result.df[dimension].to_list()
    assert len([v for v in values if v != "Other"]) <= n
    total = store.query(f"FROM sales SHOW {metric} DURING {period}")
    if metric in ("customers", "orders"):
        # Distinct counts are not additive across groups: an order or customer can fall in several.
        assert sum(number(v) for v in result.df[metric].to_list()) >= number(total.df[metric][0])
    else:
        assert sum(number(v) for v in result.df[metric].to_list()) == pytest.approx(number(total.df[metric][0]), abs=0.01)
