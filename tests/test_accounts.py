"""Account fields (cadence, recency, overdue, RFM, first-order attributes) against Polars over the raw files.

Every expected value is computed here from the definitions in docs/accounts.md with Polars over the
store's Parquet files (orders, sales, line_items, products), never from the compiler's SQL.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.plan import AccountSettings


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


def expected_facts(path: Path, key: str, as_of: dt.datetime, tz: str, settings: AccountSettings) -> pl.DataFrame:
    """Per-account facts, written from the definitions."""
    orders = raw(path, "orders").filter(
        pl.col(key).is_not_null() & ~pl.col("is_test").fill_null(False) & (pl.col("created_at") <= as_of)
    )
    lines = raw(path, "line_items").join(raw(path, "products").select("product_id", "product_type"), on="product_id",
                                         how="left")
    largest = (lines.sort(["order_id", "gross", "line_item_id"], descending=[False, True, False])
               .group_by("order_id", maintain_order=True).first().select("order_id", "product_type"))
    orders = (
        orders.with_columns(day=pl.col("created_at").dt.convert_time_zone(tz).dt.date())
        .sort([key, "created_at", "order_id"])
        .with_columns(gap=(pl.col("day") - pl.col("day").shift(1)).over(key).dt.total_days())
        .join(largest, on="order_id", how="left")
    )
    as_of_date = as_of.astimezone(__import__("zoneinfo").ZoneInfo(tz)).date()
    facts = orders.group_by(key).agg(
        n=pl.len(),
        first=pl.col("day").min(),
        last=pl.col("day").max(),
        median=pl.col("gap").median(),
        spent=(pl.col("total") - pl.col("total_refunded").fill_null(0)).sum(),
        first_channel=pl.col("sales_channel").first(),
        first_type=pl.col("product_type").first(),
    )
    facts = facts.with_columns(
        days_since=(pl.lit(as_of_date) - pl.col("last")).dt.total_days(),
        average=pl.when(pl.col("n") > 1).then(
            (pl.col("last") - pl.col("first")).dt.total_days() / (pl.col("n") - 1)),
    ).with_columns(
        overdue=pl.when(pl.col("median") > 0).then(pl.col("days_since") > settings.overdue_factor * pl.col("median"))
        .when(pl.col("n") >= 2).then(False),
    )
    start = as_of - dt.timedelta(days=settings.rfm_window_days)
    window = orders.filter(pl.col("created_at") >= start)
    sales = raw(path, "sales").filter(pl.col(key).is_not_null() & pl.col("happened_at").is_between(start, as_of))
    money = sales.group_by(key).agg(m=pl.col("net_sales").sum())
    active = (window.group_by(key).agg(r=(pl.lit(as_of_date) - pl.col("day").max()).dt.total_days(), f=pl.len())
              .join(money, on=key, how="left").with_columns(pl.col("m").fill_null(0)))
    n = active.height

    def score(rank: pl.Expr) -> pl.Expr:
        return ((5 * (rank - 1)) // n + 1).cast(pl.Int64)

    active = active.with_columns(
        recency=score(pl.col("r").rank("min", descending=True)),
        frequency=score(pl.col("f").rank("min")),
        monetary=score(pl.col("m").rank("min")),
    )
    return facts.join(active.select(key, "recency", "frequency", "monetary"), on=key, how="left")


def rfm_group(row: dict) -> str:
    r, f = row["recency"], row["frequency"]
    if r is None:
        return "Lost"
    if r >= 4 and f >= 4:
        return "Champions"
    if r >= 3 and f >= 3:
        return "Loyal"
    if r >= 4:
        return "New" if row["n"] == 1 else "Promising"
    if r == 3:
        return "Needs attention"
    return "At risk" if f >= 3 else "Hibernating"


def close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("tz", [None, "Asia/Tokyo"])
def test_company_facts_match_the_order_history(store, sample_store_path, tz):
    zone = tz or store.timezone
    expected = {r["company_id"]: r for r in expected_facts(
        sample_store_path, "company_id", store.now(), zone, store.account_settings).iter_rows(named=True)}
    modifier = f" WITH TIMEZONE '{tz}'" if tz else ""
    result = store.query(
        "FROM companies SHOW companies GROUP BY company_id, number_of_orders, first_order_date, last_order_date, "
        "median_days_between_orders, average_days_between_orders, days_since_last_order, is_overdue, "
        "expected_next_order_date, amount_spent, first_sales_channel, first_product_type, recency_score, "
        f"frequency_score, monetary_score, rfm_group{modifier} LIMIT 10000"
    ).df
    assert result.height == raw(sample_store_path, "companies").height
    checked = 0
    for row in result.iter_rows(named=True):
        want = expected.get(row["company_id"])
        if want is None:  # a company that never ordered
            assert row["number_of_orders"] == 0 and row["rfm_group"] == "Prospects" and row["is_overdue"] is None
            continue
        checked += 1
        assert row["number_of_orders"] == want["n"]
        assert (row["first_order_date"], row["last_order_date"]) == (want["first"], want["last"])
        assert close(row["median_days_between_orders"], want["median"])
        assert close(row["average_days_between_orders"], want["average"])
        assert row["days_since_last_order"] == want["days_since"]
        assert row["is_overdue"] == want["overdue"]
        if want["median"] is not None:
            assert row["expected_next_order_date"] == want["last"] + dt.timedelta(days=math.floor(want["median"] + 0.5))  # half up
        assert row["amount_spent"] == want["spent"]
        assert row["first_sales_channel"] == want["first_channel"]
        assert row["first_product_type"] == want["first_type"]
        assert (row["recency_score"], row["frequency_score"], row["monetary_score"]) == (
            want["recency"], want["frequency"], want["monetary"])
        assert row["rfm_group"] == rfm_group(want)
    assert checked > 50


def test_customer_facts_match_the_order_history(store, sample_store_path):
    expected = expected_facts(sample_store_path, "customer_id", store.now(), store.timezone, store.account_settings)
    result = store.query(
        "FROM customers SHOW customers GROUP BY customer_id, number_of_orders, median_days_between_orders, "
        "days_since_last_order, is_overdue, recency_score, frequency_score, monetary_score, rfm_group, "
        "first_order_month WHERE number_of_orders > 0 LIMIT 100000"
    ).df
    joined = result.join(expected, on="customer_id", how="full", coalesce=True)
    assert joined.height == expected.height == result.height
    assert (joined["number_of_orders"] == joined["n"]).all()
    assert (joined["days_since_last_order"] == joined["days_since"]).all()
    both_null = joined["median_days_between_orders"].is_null() & joined["median"].is_null()
    assert (both_null | ((joined["median_days_between_orders"] - joined["median"]).abs() < 1e-9)).all()
    assert joined["is_overdue"].eq_missing(joined["overdue"]).all()
    for column, want in (("recency_score", "recency"), ("frequency_score", "frequency"), ("monetary_score", "monetary")):
        assert joined[column].cast(pl.Int64).eq_missing(joined[want]).all(), column
    assert (joined["first_order_month"] == joined["first"].dt.month_start()).all()
    groups = [rfm_group(row) for row in joined.iter_rows(named=True)]
    assert joined["rfm_group"].to_list() == groups
    # Quintiles: the active customers' recency scores split into five bands of about a fifth each.
    active = joined.filter(pl.col("recency").is_not_null())
    assert set(active["recency_score"].unique().to_list()) <= {1, 2, 3, 4, 5}


def test_sales_grouped_by_the_buyers_rfm_group_add_up_to_the_customers(store, sample_store_path):
    """Net sales by customer_rfm_group = Σ net_sales of each customer's rows, grouped by their group."""
    groups = store.query(
        "FROM customers SHOW customers GROUP BY customer_id, rfm_group WHERE number_of_orders > 0 LIMIT 100000"
    ).df
    sales = raw(sample_store_path, "sales").filter(
        pl.col("customer_id").is_not_null() & pl.col("happened_at").is_between(
            dt.datetime(2025, 1, 1, 5, tzinfo=dt.UTC), dt.datetime(2025, 7, 1, 4, tzinfo=dt.UTC), closed="left"))
    expected = (sales.join(groups, on="customer_id", how="left").group_by("rfm_group")
                .agg(pl.col("net_sales").sum()).sort("rfm_group"))
    got = store.query(
        "FROM sales SHOW net_sales GROUP BY customer_rfm_group WHERE customer_id IS NOT NULL "
        "SINCE 2025-01-01 UNTIL 2025-06-30"
    ).df.sort("customer_rfm_group")
    assert got["customer_rfm_group"].to_list() == expected["rfm_group"].to_list()
    assert got["net_sales"].to_list() == expected["net_sales"].to_list()


def test_overdue_factor_is_a_store_setting(store):
    query = "FROM companies SHOW overdue_companies"
    default = store.query(query).df["overdue_companies"][0]
    store.account_settings = AccountSettings(overdue_factor=3.0)
    try:
        relaxed = store.query(query).df["overdue_companies"][0]
    finally:
        store.account_settings = AccountSettings()
    assert 0 < relaxed < default


def test_store_clock_moves_recency(store):
    """As of an earlier clock, orders after it do not exist yet."""
    earlier = dt.datetime(2025, 6, 30, 12, tzinfo=dt.UTC)
    got = store.query("FROM companies SHOW total_number_of_orders", now=earlier).df["total_number_of_orders"][0]
    orders = store.sql(
        "SELECT COUNT(*) FROM orders WHERE company_id IS NOT NULL AND NOT is_test AND created_at <= $t",
        {"t": earlier},
    )[0, 0]
    assert got == orders


def test_bad_account_settings_in_a_manifest_are_refused():
    from commerceql.errors import CommerceQLDataError
    from commerceql.store import account_settings_from

    assert account_settings_from({"lapse_days": 90}).lapse_days == 90
    for bad in ({"lapse": 90}, {"lapse_days": -1}, {"lapse_days": 1.5}, {"overdue_factor": True}, [1]):
        with pytest.raises(CommerceQLDataError):
            account_settings_from(bad)


def test_the_rfm_grid_example_of_the_chart_docs_runs_on_the_bundled_store(store):
    text = (Path(__file__).resolve().parents[1] / "docs" / "charts.md").read_text(encoding="utf-8")
    start = text.index("FROM customers SHOW customers GROUP BY recency_score")
    query = text[start: text.index("TYPE rfm_grid", start) + len("TYPE rfm_grid")]
    result = store.query(query)
    assert set(result.df["recency_score"].to_list()) == {1, 2, 3, 4, 5}
    spec = result.chart.to_dict()
    assert "layer" in spec or "mark" in spec
    # Every active customer is in exactly one cell.
    active = store.query("FROM customers SHOW customers WHERE recency_score IS NOT NULL").df["customers"][0]
    assert result.df["customers"].sum() == active


def test_an_empty_answer_on_an_account_field_names_the_values_that_exist(store):
    result = store.query("FROM sales SHOW net_sales WHERE customer_rfm_group = 'champions' DURING last_month")
    assert result.df["net_sales"][0] == 0
    assert any("'Champions'" in notice for notice in result.notices)


def test_account_table_metrics_add_up_the_facts(store, sample_store_path):
    """companies / customers metrics over the account facts, against the Polars facts."""
    settings = store.account_settings
    companies = expected_facts(sample_store_path, "company_id", store.now(), store.timezone, settings)
    got = store.query("FROM companies SHOW companies, companies_with_orders, overdue_companies, total_amount_spent, "
                      "total_number_of_orders, average_days_since_last_order").df.row(0, named=True)
    assert got["companies"] == raw(sample_store_path, "companies").height
    assert got["companies_with_orders"] == companies.height
    assert got["overdue_companies"] == companies["overdue"].sum()
    assert got["total_amount_spent"] == companies["spent"].sum()
    assert got["total_number_of_orders"] == companies["n"].sum()
    assert math.isclose(got["average_days_since_last_order"], companies["days_since"].mean(), rel_tol=1e-12)
    customers = expected_facts(sample_store_path, "customer_id", store.now(), store.timezone, settings)
    got = store.query("FROM customers SHOW overdue_customers, average_days_since_last_order").df.row(0, named=True)
    assert got["overdue_customers"] == customers["overdue"].sum()
    assert math.isclose(got["average_days_since_last_order"], customers["days_since"].mean(), rel_tol=1e-12)
