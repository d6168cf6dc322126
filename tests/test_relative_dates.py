"""Relative dates as values: `customer_last_order_date < -90d`, `>= startOfMonth(-1m)`.

The sample store's clock is 2025-12-15 14:00 New York, so -90d is 2025-09-16 and
startOfMonth(-1m) is 2025-11-01; expected counts are hand-written SQL over `customers`.
"""

from __future__ import annotations

import datetime as dt

import pytest

import commerceql as cql
from commerceql import ast
from commerceql.dates import relative_date_value
from commerceql.errors import CommerceQLError
from commerceql.formatter import format_query
from commerceql.parser import parse

TZ = "America/New_York"
NOW = dt.datetime(2025, 12, 15, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
LAST_ORDER = f"CAST(timezone('{TZ}', last_order_at) AS DATE)"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        (ast.DateOffset(-90, "d"), dt.date(2025, 9, 16)),
        (ast.DateOffset(-2, "w"), dt.date(2025, 12, 1)),
        (ast.DateOffset(-3, "m"), dt.date(2025, 9, 15)),
        (ast.DateOffset(-1, "q"), dt.date(2025, 9, 15)),
        (ast.DateOffset(-1, "y"), dt.date(2024, 12, 15)),
        (ast.DateOffset(-20, "h"), dt.date(2025, 12, 14)),
        (ast.DateFunction("startOfMonth", ast.DateOffset(-1, "m")), dt.date(2025, 11, 1)),
        (ast.DateFunction("startOfYear"), dt.date(2025, 1, 1)),
    ],
)
def test_what_a_relative_date_value_means(written, expected):
    assert relative_date_value(written, now=NOW, timezone=TZ) == expected


def test_month_offsets_clamp_to_the_months_end():
    march_31 = dt.datetime(2025, 3, 31, 12, tzinfo=dt.UTC)
    assert relative_date_value(ast.DateOffset(-1, "m"), now=march_31, timezone="UTC") == dt.date(2025, 2, 28)


def test_lapsed_customers_before_90_days_ago(store):
    got = store.query("FROM customers SHOW customers WHERE customer_last_order_date < -90d").df["customers"][0]
    expected = store.sql(f"SELECT COUNT(*) FROM customers WHERE {LAST_ORDER} < DATE '2025-09-16'").item()
    assert got == expected and expected > 0


def test_relative_dates_in_between_in_and_with_date_functions(store):
    got = store.query(
        "FROM customers SHOW customers WHERE customer_last_order_date >= startOfMonth(-1m) "
        "AND customer_first_order_date BETWEEN -1y AND -6m"
    ).df["customers"][0]
    first = f"CAST(timezone('{TZ}', first_order_at) AS DATE)"
    expected = store.sql(
        f"SELECT COUNT(*) FROM customers WHERE {LAST_ORDER} >= DATE '2025-11-01' "
        f"AND {first} BETWEEN DATE '2024-12-15' AND DATE '2025-06-15'"
    ).item()
    assert got == expected and expected > 0


def test_a_relative_date_round_trips_through_the_formatter():
    text = "FROM customers SHOW customers WHERE customer_last_order_date < -90d OR customer_last_order_date >= startOfMonth(-1m)"
    assert format_query(parse(format_query(parse(text)))) == format_query(parse(text))
    assert "-90d" in format_query(parse(text)) and "startOfMonth(-1m)" in format_query(parse(text))


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("FROM sales SHOW net_sales WHERE sales_channel = -3d", "compares with date fields"),
        ("FROM sales SHOW startOfMonth(-1m)", "only in a comparison"),
        ("FROM sales SHOW net_sales WHERE sales_channel CONTAINS -3d", "only when a date field is compared"),
    ],
)
def test_relative_dates_where_they_mean_nothing_are_clear_errors(store, query, fragment):
    with pytest.raises(CommerceQLError) as caught:
        store.query(query)
    assert fragment in caught.value.render()
    assert caught.value.column is not None
