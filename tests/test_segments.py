"""Saved segments and MATCHES against Polars over the raw Parquet files (docs/segments.md).

Expected members are computed here from each segment's meaning with Polars over the store's files
(orders, customers, companies, sales, sessions, line_items, products), never from compiled SQL.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.engines import spark_unavailable
from commerceql.errors import CommerceQLDataError, CommerceQLError
from commerceql.frames import frame_difference

TZ = "America/New_York"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        opened.define_segment("big_oem", "company_industry = 'OEM' AND amount_spent > 20000",
                              description="OEM companies that spent over $20k", kind="company")
        opened.define_segment("lapsed_vips", "customer_tags CONTAINS 'vip' AND last_order_date < -90d",
                              description="VIP customers with no order in 90 days")
        yield opened


def real_orders(path: Path, as_of: dt.datetime) -> pl.DataFrame:
    return raw(path, "orders").filter(~pl.col("is_test").fill_null(False) & (pl.col("created_at") <= as_of)).with_columns(
        day=pl.col("created_at").dt.convert_time_zone(TZ).dt.date())


def big_oem_companies(path: Path, as_of: dt.datetime) -> set[int]:
    orders = real_orders(path, as_of).filter(pl.col("company_id").is_not_null())
    spent = orders.group_by("company_id").agg(spent=(pl.col("total") - pl.col("total_refunded").fill_null(0)).sum())
    oem = raw(path, "companies").filter(pl.col("industry") == "OEM").select("company_id")
    return set(spent.join(oem, on="company_id").filter(pl.col("spent") > 20000)["company_id"].to_list())


def lapsed_vip_customers(path: Path, as_of: dt.datetime) -> set[int]:
    today = as_of.astimezone(ZoneInfo(TZ)).date()
    last = real_orders(path, as_of).filter(pl.col("customer_id").is_not_null()).group_by("customer_id").agg(
        last=pl.col("day").max())
    vips = raw(path, "customers").filter(
        pl.col("tags").list.eval(pl.element().str.to_lowercase()).list.contains("vip")).select("customer_id")
    return set(last.join(vips, on="customer_id").filter(pl.col("last") < today - dt.timedelta(days=90))[
        "customer_id"].to_list())


def local_window(start: str, end: str) -> tuple[dt.datetime, dt.datetime]:
    zone = ZoneInfo(TZ)
    return tuple(dt.datetime.fromisoformat(d).replace(tzinfo=zone).astimezone(dt.UTC) for d in (start, end))  # type: ignore[return-value]


def test_a_company_segment_filters_and_groups_sales(store, sample_store_path):
    members = big_oem_companies(sample_store_path, store.now())
    assert 0 < len(members) < raw(sample_store_path, "companies").height
    start, end = local_window("2025-01-01", "2025-07-01")
    sales = raw(sample_store_path, "sales").filter(pl.col("happened_at").is_between(start, end, closed="left"))
    in_segment = sales.filter(pl.col("company_id").is_in(list(members)))["net_sales"].sum()
    outside = sales.filter(pl.col("company_id").is_not_null() & ~pl.col("company_id").is_in(list(members)))[
        "net_sales"].sum()
    guests = sales.filter(pl.col("company_id").is_null())["net_sales"].sum()
    filtered = store.query("FROM sales SHOW net_sales WHERE big_oem SINCE 2025-01-01 UNTIL 2025-06-30").df
    assert filtered["net_sales"][0] == in_segment
    grouped = store.query("FROM sales SHOW net_sales GROUP BY big_oem SINCE 2025-01-01 UNTIL 2025-06-30").df
    by_value = dict(zip(grouped["big_oem"].to_list(), grouped["net_sales"].to_list(), strict=True))
    # Member vs not, and rows with no company at all (DTC orders) apart.
    assert by_value == {True: in_segment, False: outside, None: guests}


def test_the_same_segment_lists_its_companies(store, sample_store_path):
    members = big_oem_companies(sample_store_path, store.now())
    listed = store.query("FROM companies SHOW company_id, companies WHERE big_oem LIMIT 10000").df
    assert set(listed["company_id"].to_list()) == members


def test_a_customer_segment_with_a_relative_date_works_on_sessions_and_customers(store, sample_store_path):
    members = lapsed_vip_customers(sample_store_path, store.now())
    assert members
    got = store.query("FROM customers SHOW customers WHERE lapsed_vips").df["customers"][0]
    assert got == len(members)
    start, end = local_window("2025-01-01", "2026-01-01")
    sessions = raw(sample_store_path, "sessions").filter(
        pl.col("started_at").is_between(start, end, closed="left") & pl.col("customer_id").is_in(list(members)))
    assert store.query("FROM sessions SHOW sessions WHERE lapsed_vips = true SINCE 2025-01-01 UNTIL 2025-12-31").df["sessions"][0] == \
        sessions.height
    # A later clock moves "90 days ago": more VIPs have lapsed, as the oracle says.
    later = store.now() + dt.timedelta(days=60)
    assert store.query("FROM customers SHOW customers WHERE lapsed_vips", now=later).df["customers"][0] == len(
        lapsed_vip_customers(sample_store_path, later))


@pytest.mark.parametrize("segment", ["big_oem", "lapsed_vips"])
def test_members_and_the_rest_add_up_to_the_table(store, segment):
    """Property: member rows + non-member rows + rows without an account = every row."""
    total = store.query("FROM sales SHOW orders SINCE 2025-01-01 UNTIL 2025-12-31").df["orders"][0]
    parts = store.query(f"FROM sales SHOW orders GROUP BY {segment} SINCE 2025-01-01 UNTIL 2025-12-31").df
    assert parts["orders"].sum() == total
    members = store.query(f"FROM sales SHOW orders WHERE {segment} SINCE 2025-01-01 UNTIL 2025-12-31").df["orders"][0]
    assert parts.filter(pl.col(segment))["orders"].sum() == members


def test_segments_in_a_store_model_file(sample_store_path, tmp_path):
    model = tmp_path / "segments.yaml"
    model.write_text(textwrap.dedent("""\
        name: customers
        segments:
          wholesale_buyers:
            condition: customer_tags CONTAINS 'wholesale'
            description: Customers tagged wholesale
        """), encoding="utf-8")
    with cql.connect(sample_store_path, model=[model]) as opened:
        schema = opened.schema("sales")
        assert "wholesale_buyers" in schema["name"].to_list()
        got = opened.query("FROM customers SHOW customers WHERE wholesale_buyers").df["customers"][0]
    tagged = raw(sample_store_path, "customers").filter(
        pl.col("tags").list.eval(pl.element().str.to_lowercase()).list.contains("wholesale"))
    assert got == tagged.height > 0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"name": "customers", "segments": {"x": "customer_tag CONTAINS 'vip'"}}, "unknown field `customer_tag`"),
        ({"name": "customers", "segments": {"x": "customer_tags CONTAINS"}}, "segments.x.condition"),
        ({"name": "customers", "segments": {"net_sales": "is_b2b"}}, "has the name of a field"),
        ({"name": "sales", "segments": {"x": "is_b2b"}}, "is not an account table"),
        ({"name": "customers", "segments": {"x": {"description": "no condition"}}}, "needs `condition`"),
    ],
)
def test_bad_segments_are_model_errors_naming_the_field(document, expected):
    from commerceql.model.semantic import builtin_model

    with pytest.raises(CommerceQLDataError) as info:
        builtin_model().extended([document], origin="store/model/segments.yaml")
    assert expected in info.value.message
    assert "segments.yaml" in info.value.message


def test_a_segment_cannot_be_defined_twice_without_replace(store):
    with pytest.raises(CommerceQLDataError):
        store.define_segment("big_oem", "company_tier = 'Enterprise'", kind="company")


# -- MATCHES ------------------------------------------------------------------------------------
def matching_customers(path: Path, as_of: dt.datetime, *, since_days: int | None = None, at_least: int = 1,
                       amount_over: float | None = None) -> set[int]:
    orders = real_orders(path, as_of).filter(pl.col("customer_id").is_not_null())
    if since_days is not None:
        today = as_of.astimezone(ZoneInfo(TZ)).date()
        orders = orders.filter(pl.col("day") > today - dt.timedelta(days=since_days))
    per = orders.group_by("customer_id").agg(n=pl.col("order_id").n_unique(), amount=pl.col("total").sum())
    per = per.filter(pl.col("n") >= at_least)
    if amount_over is not None:
        per = per.filter(pl.col("amount") > amount_over)
    return set(per["customer_id"].to_list())


def test_orders_placed_matches(store, sample_store_path):
    expected = matching_customers(sample_store_path, store.now(), since_days=365, at_least=2, amount_over=1000)
    got = store.query(
        "FROM customers SHOW customer_id, customers "
        "WHERE orders_placed MATCHES (count_at_least = 2, sum_amount > 1000, date > -365d) LIMIT 100000").df
    assert set(got["customer_id"].to_list()) == expected and expected


def test_not_matches_and_zero_order_customers(store, sample_store_path):
    everyone = raw(sample_store_path, "customers").height
    ordered = matching_customers(sample_store_path, store.now(), since_days=365)
    got = store.query("FROM customers SHOW customers WHERE orders_placed NOT MATCHES (date > -365d)").df
    assert got["customers"][0] == everyone - len(ordered)
    never = store.query("FROM customers SHOW customers WHERE orders_placed MATCHES (count_at_most = 0)").df
    assert never["customers"][0] == everyone - len(matching_customers(sample_store_path, store.now()))


def test_shopifys_documented_matches_query_lists_the_customers(store, sample_store_path):
    got = store.query("FROM customers SHOW customer_email, total_orders "
                      "WHERE orders_placed MATCHES (date > 2025-01-01) LIMIT 100000").df
    orders = real_orders(sample_store_path, store.now()).filter(
        pl.col("customer_id").is_not_null() & (pl.col("day") > dt.date(2025, 1, 1)))
    customers = raw(sample_store_path, "customers").filter(pl.col("customer_id").is_in(orders["customer_id"].unique().to_list()))
    assert set(got["customer_email"].to_list()) == set(customers["email"].to_list())


def test_products_purchased_matches_on_sales(store, sample_store_path):
    product_type = raw(sample_store_path, "products")["product_type"].drop_nulls().mode()[0]
    orders = real_orders(sample_store_path, store.now()).filter(pl.col("customer_id").is_not_null())
    lines = raw(sample_store_path, "line_items").join(raw(sample_store_path, "products"), on="product_id", how="left")
    bought = (lines.filter(pl.col("product_type") == product_type).join(orders, on="order_id")
              .group_by("customer_id").agg(q=pl.col("quantity").sum()).filter(pl.col("q") >= 10))
    members = bought["customer_id"].to_list()
    start, end = local_window("2025-11-01", "2025-12-01")
    sales = raw(sample_store_path, "sales").filter(
        pl.col("happened_at").is_between(start, end, closed="left") & pl.col("customer_id").is_in(members))
    got = store.query(f"FROM sales SHOW net_sales WHERE products_purchased MATCHES (category = '{product_type}', "
                      "sum_quantity >= 10) DURING last_month").df
    assert got["net_sales"][0] == sales["net_sales"].sum()


def test_matches_in_a_segment(store, sample_store_path):
    store.define_segment("frequent_recent", "orders_placed MATCHES (count_at_least = 3, date > -180d)")
    expected = matching_customers(sample_store_path, store.now(), since_days=180, at_least=3)
    assert store.query("FROM customers SHOW customers WHERE frequent_recent").df["customers"][0] == len(expected)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("FROM customers SHOW customers WHERE orders_placed MATCHES (date > -30d, date < -1d)", "appears twice"),
        ("FROM customers SHOW customers WHERE orders_placed MATCHES (cont = 2)", "unknown MATCHES parameter"),
        ("FROM customers SHOW customers WHERE orders_placed MATCHES (count = 'two')", "needs a integer value"),
        ("FROM customers SHOW customers WHERE orders_placed MATCHES (count = 1.5)", "whole number"),
        ("FROM customers SHOW customers WHERE products_purchased MATCHES (tag = 'x')", "no tags"),
        ("FROM products SHOW products WHERE orders_placed MATCHES (date > -30d)", "have no customer"),
        ("FROM customers SHOW customers GROUP BY customer_type HAVING orders_placed MATCHES (date > -3d)", "WHERE"),
        ("FROM customers SHOW customers WHERE sms_subscription_status = 'SUBSCRIBED'", "no data for"),
    ],
)
def test_matches_errors_are_positioned(store, query, expected):
    with pytest.raises(CommerceQLError) as info:
        store.query(query)
    assert expected in info.value.message + (info.value.hint or "")
    assert info.value.span is not None and "^" in info.value.render()


@pytest.mark.spark
@pytest.mark.slow
def test_segments_and_matches_answer_alike_on_spark(store, sample_store_path):
    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    with cql.connect(sample_store_path, engine="spark") as spark:
        spark.model = store.model  # the same saved segments
        for query in (
            "FROM sales SHOW net_sales, orders GROUP BY big_oem, customer_type SINCE 2025-01-01 UNTIL 2025-12-31",
            "FROM customers SHOW customers GROUP BY rfm_group WHERE lapsed_vips OR "
            "orders_placed MATCHES (count_at_least = 2, sum_amount > 1000, date > -365d)",
            "FROM customers SHOW customers WHERE products_purchased NOT MATCHES (sum_quantity >= 5)",
        ):
            difference = frame_difference(store.query(query).df, spark.query(query).df, null_is_zero=True)
            assert difference is None, f"{query}\n{difference}"


@pytest.mark.parametrize("doc", ["accounts.md", "segments.md"])
def test_the_docs_examples_run(store, doc):
    import re

    text = (Path(__file__).resolve().parents[1] / "docs" / doc).read_text(encoding="utf-8")
    store.define_segment("lapsed_vips", "customer_tags CONTAINS 'VIP' AND last_order_date < -90d", replace=True)
    store.define_segment("key_oem_accounts", "company_industry = 'OEM' AND amount_spent > 250000", kind="company",
                         replace=True)
    blocks = re.findall(r"```cql\n(.*?)```", text, re.S)
    assert blocks
    for block in blocks:
        for query in [q for q in re.split(r"\n(?=FROM )", block.strip()) if q.strip()]:
            result = store.query(query)
            assert result.df.width > 0, query


def test_abandoned_checkout_date_is_the_latest_abandoned_checkout(store, sample_store_path):
    checkouts = raw(sample_store_path, "checkouts").filter(
        pl.col("customer_id").is_not_null() & pl.col("is_abandoned") & (pl.col("created_at") <= store.now()))
    latest = checkouts.group_by("customer_id").agg(
        day=pl.col("created_at").max().dt.convert_time_zone(TZ).dt.date())
    today = store.now().astimezone(ZoneInfo(TZ)).date()
    recent = latest.filter(pl.col("day") > today - dt.timedelta(days=30))
    got = store.query("FROM customers SHOW customer_id, customers WHERE abandoned_checkout_date > -30d LIMIT 100000").df
    assert set(got["customer_id"].to_list()) == set(recent["customer_id"].to_list()) and recent.height > 0


def test_segments_are_completed_and_listed_by_schema(store):
    from commerceql.completion import complete

    text = "FROM sessions SHOW sessions WHERE lapsed"
    assert "lapsed_vips" in complete(text, len(text), store.model).matches
    described = store.schema("sales").filter(pl.col("name") == "big_oem")
    assert described["type"].to_list() == ["boolean"]
    assert described["description"][0].startswith("Segment of companies: OEM companies that spent over $20k")
