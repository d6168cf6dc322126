"""Older ShopifyQL spellings are answered with today's model and a notice naming today's spelling.

`SHOW x BY dim` (Notebooks), `OVER month` / `OVER month(happened_at) AS month` (the 2014-2021
Analytics API), `GROUP BY month ALL` (2022-2024 gap filling), `sum(metric)`, `FROM visits`, and
`FROM orders` / `FROM products` asking for sales figures (the G1 datasets). Each older query reads
as the current one (same tree, same result) and the result says once what to write today; the
figures are checked against hand-written DuckDB SQL over the raw tables.
"""

from __future__ import annotations

import datetime as dt

import pytest

import commerceql as cql
from commerceql.cli import main
from commerceql.errors import CommerceQLError, CommerceQLSyntaxError
from commerceql.formatter import format_query
from commerceql.parser import parse

TZ = "America/New_York"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def local(column: str) -> str:
    return f"({column} AT TIME ZONE '{TZ}')"


# ---- the parser: older form = today's tree, plus a notice ------------------------------------------

SAME_TREE = [
    ("FROM sales SHOW net_sales BY product_title", "FROM sales SHOW net_sales GROUP BY product_title",
     "`BY` is the Notebooks spelling of `GROUP BY`: write `GROUP BY product_title`"),
    ("FROM sales SHOW net_sales BY day, TOP 3 product_title DURING last_month",
     "FROM sales SHOW net_sales GROUP BY day, TOP 3 product_title DURING last_month",
     "write `GROUP BY day, TOP 3 product_title`"),
    ("FROM sales SHOW net_sales OVER month", "FROM sales SHOW net_sales TIMESERIES month",
     "`OVER month` is the 2014-2021 Analytics API spelling of `TIMESERIES month`"),
    ("SHOW orders OVER month(happened_at) AS month FROM sales SINCE -11m UNTIL today ORDER BY month ASC",
     "FROM sales SHOW orders TIMESERIES month SINCE -11m UNTIL today ORDER BY month",
     "`OVER month(happened_at) AS month` is the 2014-2021 Analytics API spelling of `TIMESERIES month`"),
    # A different alias keeps naming the time column.
    ("SHOW orders OVER day(happened_at) AS date FROM sales ORDER BY date",
     "FROM sales SHOW day AS date, orders TIMESERIES day ORDER BY date", "`TIMESERIES day`"),
    ("FROM sales SHOW net_sales GROUP BY month ALL SINCE -1y",
     "FROM sales SHOW net_sales GROUP BY month TIMESERIES month SINCE -1y",
     "`GROUP BY month ALL` is the 2022-2024 spelling of `TIMESERIES month`"),
    ("FROM sales SHOW net_sales GROUP BY hour_of_day ALL", "FROM sales SHOW net_sales GROUP BY hour_of_day "
     "TIMESERIES hour_of_day", "`TIMESERIES hour_of_day`"),
    ("FROM sales SHOW net_sales GROUP BY month ALL TIMESERIES month",
     "FROM sales SHOW net_sales GROUP BY month TIMESERIES month", "`TIMESERIES month`"),
    ("FROM sales SHOW net_sales BY month ALL", "FROM sales SHOW net_sales GROUP BY month TIMESERIES month",
     "`GROUP BY month`"),
]


@pytest.mark.parametrize(("older", "current", "notice"), SAME_TREE, ids=[s[0][:40] for s in SAME_TREE])
def test_an_older_form_reads_as_todays_form(older, current, notice):
    query = parse(older)
    assert query == parse(current)
    assert any(notice in n for n in query.notices), query.notices
    assert not parse(current).notices
    # The formatter writes today's spelling, and that reads back to the same query without notices.
    formatted = format_query(query)
    assert " BY " not in formatted.replace("GROUP BY", "").replace("ORDER BY", "")
    assert "OVER" not in formatted and " ALL" not in formatted
    assert parse(formatted) == query and not parse(formatted).notices


MISUSES = [  # (text, message, column, hint)
    ("FROM sales SHOW x BY a GROUP BY b", "and GROUP BY both group this query", 19, "one GROUP BY"),
    ("FROM sales SHOW x GROUP BY product_title ALL", "`product_title` is not a time grain", 42, "remove ALL"),
    ("FROM sales SHOW x GROUP BY month ALL, day ALL", "only one time grain can fill", 39, "remove the other ALL"),
    ("FROM sales SHOW x GROUP BY month ALL TIMESERIES day", "both fill gaps", 28, "remove ALL"),
    ("FROM sales SHOW x OVER product_title", "older spelling of TIMESERIES", 24, "GROUP BY product_title"),
    ("FROM sales SHOW x OVER 3", "older spelling of TIMESERIES", 24, "TIMESERIES month"),
    ("FROM sales SHOW x OVER month(a, b)", "older spelling of TIMESERIES", 24, None),
    ("FROM sales SHOW x OVER month TIMESERIES day", "both set the time series", 19, "TIMESERIES month"),
    ("FROM sales VISUALIZE x OVER day(happened_at) AS date", "no SHOW to name it in", 49, "TIMESERIES day"),
]


@pytest.mark.parametrize(("text", "message", "column", "hint"), MISUSES, ids=[m[1][:30] for m in MISUSES])
def test_misused_older_forms_are_positioned_errors(text, message, column, hint):
    with pytest.raises(CommerceQLSyntaxError) as info:
        parse(text)
    error = info.value
    assert message in error.message
    assert (error.line, error.column) == (1, column), error.render()
    if hint is not None:
        assert hint in (error.hint or "")
    assert "^" in error.render()


# ---- results: the older query answers like today's, and like the raw data ---------------------------


def test_by_answers_like_group_by(store, duckdb_connection):
    older = store.query("FROM sales SHOW orders BY shipping_city SINCE -150d ORDER BY orders DESC LIMIT 5")
    current = store.query("FROM sales SHOW orders GROUP BY shipping_city SINCE -150d ORDER BY orders DESC LIMIT 5")
    assert older.df.equals(current.df)
    assert older.notices == ("`BY` is the Notebooks spelling of `GROUP BY`: write `GROUP BY shipping_city`",)
    # SINCE -150d: from the start of the day 150 days before the clock (2025-12-15) to now.
    want = duckdb_connection.execute(f"""
        SELECT shipping_city, COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order') AS orders FROM sales
        WHERE {local('happened_at')} >= DATE '2025-12-15' - INTERVAL 150 DAY GROUP BY 1 ORDER BY 2 DESC""").fetchall()
    got = older.df.rows()
    assert [count for _, count in got] == [count for _, count in want[:5]]
    assert {city for city, _ in got} <= {city for city, count in want if count >= got[-1][1]}


def test_group_by_all_fills_every_period(store, duckdb_connection):
    # A product sold on some days of November 2025 but not on all of them.
    title, days = duckdb_connection.execute(f"""
        SELECT p.title, COUNT(DISTINCT {local('s.happened_at')}::DATE) AS days
        FROM sales s JOIN products p USING (product_id)
        WHERE {local('s.happened_at')} >= '2025-11-01' AND {local('s.happened_at')} < '2025-12-01'
        GROUP BY 1 HAVING days BETWEEN 3 AND 20 ORDER BY days, 1 LIMIT 1""").fetchone()
    quoted = title.replace("'", "''")
    result = store.query(f"FROM orders SHOW sum(net_sales) WHERE product_title = '{quoted}' "
                         "GROUP BY day ALL DURING last_month")
    assert result.df.height == 30  # every day of November, zeros where nothing was sold
    want = dict(duckdb_connection.execute(f"""
        SELECT {local('s.happened_at')}::DATE, SUM(s.net_sales) FROM sales s JOIN products p USING (product_id)
        WHERE p.title = ? AND {local('s.happened_at')} >= '2025-11-01' AND {local('s.happened_at')} < '2025-12-01'
        GROUP BY 1""", [title]).fetchall())
    got = dict(result.df.rows())
    assert sum(1 for v in got.values() if v) == days
    for day, value in got.items():
        assert value == want.get(day, 0)
    text = " | ".join(result.notices)
    assert "`GROUP BY day ALL` is the 2022-2024 spelling of `TIMESERIES day`" in text
    assert "`FROM orders` with `net_sales`" in text and "write `FROM sales`" in text
    assert "`sum(net_sales)` is the 2014-2024 spelling of `net_sales`" in text


def test_g0_over_query_runs_with_every_old_name(store, duckdb_connection):
    result = store.query("SHOW orders, gross_sales, discounts, refunds, net_sales, shipping, taxes, total_sales\n"
                         "OVER month(happened_at) AS month\nFROM sales\nSINCE -11m\nUNTIL today ORDER\nBY month ASC")
    assert result.df.columns[0] == "month" and result.df.height == 12  # Jan .. Dec 2025, one row each
    want = {row[0]: row[1:] for row in duckdb_connection.execute(f"""
        SELECT date_trunc('month', {local('happened_at')})::DATE,
               COUNT(DISTINCT order_id) FILTER (WHERE event_type = 'order'), SUM(gross_sales), SUM(discounts),
               SUM(sales_reversals), SUM(net_sales), SUM(shipping_charges), SUM(taxes), SUM(total_sales)
        FROM sales WHERE {local('happened_at')} >= '2025-01-01' GROUP BY 1""").fetchall()}
    assert {row[0]: row[1:] for row in result.df.rows()} == want
    assert result.df["month"].to_list() == sorted(want)
    text = " | ".join(result.notices)
    assert "`TIMESERIES month`" in text and "`sales_reversals`" in text and "`shipping_charges`" in text


def test_from_visits_is_the_sessions_table(store, duckdb_connection):
    result = store.query("SHOW sum(pageview_count) FROM visits SINCE -7d UNTIL -1d")
    assert result.df.columns == ["sum_pageview_count"]
    (want,) = duckdb_connection.execute(f"""
        SELECT SUM(pageviews) FROM sessions
        WHERE {local('started_at')} >= DATE '2025-12-08' AND {local('started_at')} < DATE '2025-12-15'""").fetchone()
    assert result.df.item() == want
    assert result.notices[0] == "`visits` is the 2014-2021 Analytics API name of the `sessions` table: write `FROM sessions`"
    assert "`sum(pageview_count)` is the 2014-2024 spelling of `pageviews`" in result.notices[1]
    assert len(result.notices) == 2  # the inner older name is said with the sum, not twice
    names = store.query("FROM visits SHOW total_sessions, total_visitors, total_pageviews, avg_duration, "
                        "total_purchases DURING last_month")
    current = store.query("FROM sessions SHOW sessions, online_store_visitors, pageviews, average_session_duration, "
                          "sessions_that_completed_checkout DURING last_month")
    assert names.df.row(0) == current.df.row(0)
    assert len(names.notices) == 6


def test_from_products_with_sales_figures_reads_sales(store, duckdb_connection):
    result = store.query("FROM products SHOW sum(gross_sales) as total_gross_sales GROUP BY product_title "
                         "SINCE -3m UNTIL today ORDER BY total_gross_sales DESC LIMIT 10")
    want = duckdb_connection.execute(f"""
        SELECT p.title, SUM(s.gross_sales) AS g FROM sales s LEFT JOIN products p USING (product_id)
        WHERE {local('s.happened_at')} >= '2025-09-01' GROUP BY 1 ORDER BY 2 DESC LIMIT 10""").fetchall()
    assert result.df.rows() == want
    assert any(n.startswith("`FROM products` with `gross_sales`") and "write `FROM sales`" in n for n in result.notices)
    # A products query the products table answers stays there, without a notice.
    own = store.query("FROM products SHOW products, active_products GROUP BY product_type")
    assert not own.notices and own.plan.tables[0].name == "products"


def test_from_orders_stays_on_orders_when_orders_has_the_fields(store, duckdb_connection):
    result = store.query("FROM orders SHOW sum(gross_sales) WHERE shipping_country = 'United States' DURING last_year")
    assert result.plan.tables[0].name == "orders"
    (want,) = duckdb_connection.execute(f"""
        SELECT SUM(line_items_total) FROM orders WHERE NOT is_test AND shipping_country = 'United States'
          AND {local('created_at')} >= '2024-01-01' AND {local('created_at')} < '2025-01-01'""").fetchone()
    assert result.df.item() == want
    assert result.notices == ("`sum(gross_sales)` is the 2014-2024 spelling of `gross_sales`: metrics are already "
                              "aggregated (the column keeps its older name `sum_gross_sales`)",)


def test_from_orders_with_sales_fields_reads_sales(store, duckdb_connection):
    result = store.query("FROM orders SHOW sum(net_sales) AS monthly_net_sales GROUP BY month SINCE -3m "
                         "ORDER BY month")
    assert result.plan.tables[0].name == "sales"
    want = duckdb_connection.execute(f"""
        SELECT date_trunc('month', {local('happened_at')})::DATE, SUM(net_sales) FROM sales
        WHERE {local('happened_at')} >= '2025-09-01' GROUP BY 1 ORDER BY 1""").fetchall()
    assert result.df.rows() == want
    # The G1 orders dataset put refunds on the order's date; the notice says sales does not.
    assert "a refund counts on the day it was made" in result.notices[0]


def test_unknown_fields_on_an_older_dataset_are_still_errors(store):
    with pytest.raises(CommerceQLError, match="unknown metric `net_sale`"):
        store.query("FROM orders SHOW sum(net_sale)")
    with pytest.raises(CommerceQLError, match="record no product page views"):
        store.query("FROM products SHOW sum(gross_sales), sum(view_sessions) WHERE view_sessions > 0 SINCE -7d")
    with pytest.raises(CommerceQLError, match="`sum\\(average_order_value\\)` is ambiguous"):
        store.query("FROM sales SHOW sum(average_order_value)")


def test_the_notice_reaches_the_cli_once(capsys):
    assert main(["query", "FROM sales SHOW net_sales BY sales_channel DURING last_month"]) == 0
    out = capsys.readouterr().out
    assert out.count("note: `BY` is the Notebooks spelling of `GROUP BY`") == 1
    assert main(["query", "FROM sales SHOW returns BY sales_channel DURING last_month", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert "note:" not in captured.out
    assert captured.err.count("note: `returns` was renamed `sales_reversals`") == 1


def test_a_query_in_todays_spelling_has_no_notice(store):
    result = store.query("FROM sales SHOW sales_reversals, net_sales GROUP BY sales_channel TIMESERIES month "
                         "DURING last_quarter")
    assert result.notices == ()


def test_script_spans_stay_right_with_older_forms(store):
    text = "FROM sales SHOW net_sales BY sales_channel;\nFROM sales SHOW net_sales OVER month"
    first, second = store.query_script(text, now=dt.datetime(2025, 12, 15, 19, tzinfo=dt.UTC))
    assert first.notices[0].startswith("`BY`") and second.notices[0].startswith("`OVER month`")


# ---- Spark --------------------------------------------------------------------------------------


# Run on every engine by tests/test_engines.py (tests/engine_corpus.py).
SPARK_QUERIES = [
    "FROM orders VISUALIZE sum(net_sales) TYPE line GROUP BY month ALL SINCE -1y UNTIL today",
    "SHOW orders, refunds, shipping OVER month(happened_at) AS month FROM sales SINCE -11m UNTIL today",
    "SHOW sum(pageview_count), total_visitors BY referring_channel FROM visits DURING last_month",
]



def test_older_dimension_names_are_not_offered_by_completion(sample_store_path):
    from commerceql.completion import complete

    with cql.connect(sample_store_path) as opened:
        text = "FROM sales SHOW net_sales GROUP BY order_or"
        matches = complete(text, len(text), opened.model).matches
    assert "order_or_sales_reversal" in matches
    assert "order_or_return" not in matches  # still accepted, with a notice, but not suggested


def test_the_explore_widget_opens_a_visits_query_on_sessions(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        widget = opened.explore("FROM visits SHOW sessions TIMESERIES day SINCE -7d")
        assert widget.result.df["sessions"].sum() == opened.query(
            "FROM sessions SHOW sessions TIMESERIES day SINCE -7d").df["sessions"].sum()
