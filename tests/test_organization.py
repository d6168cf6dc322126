"""Several shops as one organization: `FROM ORGANIZATION sales ... GROUP BY shop_name`.

Two small generated shops whose ids overlap (both number their orders, customers and products
from 1) are combined; every figure is checked against DuckDB SQL written by hand over each
shop's own Parquet files, joins included, so a join that paired one shop's sale with another
shop's product or customer would show.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

import commerceql as cql
from commerceql.errors import CommerceQLDataError, CommerceQLNameError
from commerceql.formatter import format_query
from commerceql.organization import ID_OFFSET_STEP, _overlapping, build_organization, shops_in
from commerceql.parser import parse
from commerceql.sample.generator import generate_store

SHOPS = (("east", "East Shop", 900, 11), ("west", "West Shop", 700, 12))
PERIOD = "SINCE 2024-01-01 UNTIL 2025-06-30"


@pytest.fixture(scope="module")
def shops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("organization") / "shops"
    for slug, name, orders, seed in SHOPS:
        generate_store(folder / slug, orders=orders, seed=seed, name=name)
    return folder


@pytest.fixture(scope="module")
def organization(shops: Path, tmp_path_factory: pytest.TempPathFactory):
    out = build_organization([shops / slug for slug, *_ in SHOPS], tmp_path_factory.mktemp("org") / "store")
    with cql.connect(out) as store:
        yield store


def _by_hand(shops: Path, sql_per_shop: str) -> pl.DataFrame:
    """`sql_per_shop` run on each shop's own files ({dir} = the shop's folder), rows tagged with its name."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'; SET memory_limit = '1GB'")
    parts = []
    for slug, name, *_ in SHOPS:
        frame = con.sql(sql_per_shop.format(dir=shops / slug)).pl()
        parts.append(frame.with_columns(pl.lit(name).alias("shop_name")))
    con.close()
    return pl.concat(parts)


def _timezone(shops: Path) -> str:
    return json.loads((shops / SHOPS[0][0] / "manifest.json").read_text())["timezone"]


def test_net_sales_orders_and_customers_by_shop_match_each_shops_own_rows(organization, shops):
    got = organization.query(f"FROM ORGANIZATION sales SHOW net_sales, orders, customers GROUP BY shop_name "
                             f"WITH TOTALS {PERIOD}").df
    zone = _timezone(shops)
    expected = _by_hand(shops, f"""
        SELECT sum(net_sales) AS net_sales,
               count(DISTINCT order_id) FILTER (WHERE event_type = 'order') AS orders,
               count(DISTINCT customer_id) FILTER (WHERE event_type = 'order') AS customers
        FROM read_parquet('{{dir}}/sales.parquet')
        WHERE CAST(timezone('{zone}', happened_at) AS DATE) BETWEEN DATE '2024-01-01' AND DATE '2025-06-30'
    """)
    joined = got.join(expected, on="shop_name", how="full", coalesce=True)
    assert joined.height == 2
    assert (joined["net_sales"] == joined["net_sales_right"]).all()
    assert (joined["orders"] == joined["orders_right"]).all()
    assert (joined["customers"] == joined["customers_right"]).all()
    # ids moved apart: the organization's customers are the shops' customers added up
    assert got["customers__totals"][0] == expected["customers"].sum()
    assert got["net_sales__totals"][0] == expected["net_sales"].sum()


def test_joined_dimensions_stay_within_each_shop(organization, shops):
    """Product titles come from the sale's own shop: by hand, each shop's sales join its products."""
    got = organization.query(f"FROM ORGANIZATION sales SHOW net_sales GROUP BY shop_name, product_title "
                             f"{PERIOD} LIMIT 100000").df
    zone = _timezone(shops)
    expected = _by_hand(shops, f"""
        SELECT p.title AS product_title, sum(s.net_sales) AS net_sales
        FROM read_parquet('{{dir}}/sales.parquet') s
        LEFT JOIN read_parquet('{{dir}}/products.parquet') p USING (product_id)
        WHERE CAST(timezone('{zone}', s.happened_at) AS DATE) BETWEEN DATE '2024-01-01' AND DATE '2025-06-30'
        GROUP BY 1
    """)
    joined = got.join(expected, on=["shop_name", "product_title"], how="full", coalesce=True, nulls_equal=True)
    assert joined.height == expected.height == got.height > 10
    assert (joined["net_sales"] == joined["net_sales_right"]).all()


def test_the_shopify_documented_query_runs_on_an_organization(organization, shops):
    """The FROM ORGANIZATION example of Shopify's reference (tests/conformance/unsupported.cql
    refuses it on a one-shop store), with this organization's shop ids."""
    got = organization.query("FROM ORGANIZATION sales SHOW total_sales WHERE shop_id IN (1, 2, 3) "
                             "GROUP BY shop_name").df
    expected = _by_hand(shops, "SELECT sum(total_sales) AS total_sales FROM read_parquet('{dir}/sales.parquet')")
    joined = got.join(expected, on="shop_name", how="full", coalesce=True)
    assert joined.height == 2
    assert (joined["total_sales"] == joined["total_sales_right"]).all()
    only_west = organization.query("FROM ORGANIZATION sales SHOW total_sales WHERE shop_id = 2").df
    assert only_west["total_sales"][0] == expected.filter(pl.col("shop_name") == "West Shop")["total_sales"][0]


def test_account_tables_and_derived_tables_work_per_organization(organization, shops):
    companies = organization.query("FROM companies SHOW companies GROUP BY shop_name").df
    expected = _by_hand(shops, "SELECT count(*) AS companies FROM read_parquet('{dir}/companies.parquet')")
    joined = companies.join(expected, on="shop_name", how="full", coalesce=True)
    assert (joined["companies"] == joined["companies_right"]).all()
    # a cohort table (built per query from sales) counts each shop's customers apart: month 0 of
    # each cohort is the customers whose first order fell in that local month, shop by shop
    cohorts = organization.query(
        "FROM customer_cohorts_monthly SHOW customer_cohorts_monthly_customers_in_cohort "
        "WHERE periods_since_first_purchase = 0 GROUP BY cohort_start_date SINCE 2024-01-01 UNTIL 2024-12-31").df
    zone = _timezone(shops)
    first_buyers = _by_hand(shops, f"""
        SELECT CAST(date_trunc('month', timezone('{zone}', first_at)) AS DATE) AS cohort_start_date,
               count(*) AS buyers
        FROM (SELECT customer_id, min(happened_at) AS first_at FROM read_parquet('{{dir}}/sales.parquet')
              WHERE event_type = 'order' AND customer_id IS NOT NULL GROUP BY 1)
        GROUP BY 1
    """).group_by("cohort_start_date").agg(pl.col("buyers").sum())
    joined = cohorts.join(first_buyers, on="cohort_start_date", how="left")
    assert cohorts.height == 12
    assert (joined["customer_cohorts_monthly_customers_in_cohort"] == joined["buyers"]).all()


def test_overlapping_ids_are_moved_apart_and_recorded(organization, shops):
    shops_record = organization.manifest["organization"]["shops"]
    assert [s["name"] for s in shops_record] == ["East Shop", "West Shop"]
    assert [s["id_offset"] for s in shops_record] == [0, ID_OFFSET_STEP]
    assert {"order_id", "customer_id", "product_id"} <= set(organization.manifest["organization"]["moved_ids"])
    west_orders = duckdb.connect().execute(f"SELECT min(order_id) FROM read_parquet('{shops / 'west' / 'orders.parquet'}')").fetchone()[0]
    got = organization.sql("SELECT min(order_id) FROM orders WHERE shop_name = 'West Shop'")
    assert got.item() == west_orders + ID_OFFSET_STEP


def test_ids_that_do_not_overlap_are_kept() -> None:
    assert not _overlapping([(1, 10), (11, 20), None])
    assert _overlapping([(1, 10), (10, 20)])
    assert _overlapping([(50, 60), (1, 100)])


def test_a_folder_of_shops_opens_as_one_organization(shops, tmp_path, monkeypatch):
    monkeypatch.setenv("COMMERCEQL_CACHE", str(tmp_path / "cache"))
    assert [p.name for p in shops_in(shops)] == ["east", "west"]
    with cql.connect(shops) as store:
        first = store.path
        frame = store.query(f"FROM ORGANIZATION sales SHOW orders GROUP BY shop_name {PERIOD}").df
    assert frame.height == 2
    assert tmp_path / "cache" in first.parents  # built outside the shops' folder
    assert not any((shops / name).exists() for name in ("manifest.json", "model"))
    with cql.connect(shops) as again:
        assert again.path == first  # reused while no shop changed


def test_a_store_folder_that_lost_its_manifest_is_not_an_organization(shops, tmp_path):
    """A killed first import leaves only its version folder (`v-...`, with its own manifest)."""
    broken = tmp_path / "store"
    shutil.copytree(shops / "east", broken / "v-20260101-abcd")
    assert shops_in(broken) == []
    with pytest.raises(CommerceQLDataError, match="has no manifest.json"):
        cql.connect(broken)


def test_a_one_shop_store_answers_from_organization_with_a_notice(shops):
    with cql.connect(shops / "east") as store:
        result = store.query(f"FROM ORGANIZATION sales SHOW net_sales {PERIOD}")
        plain = store.query(f"FROM sales SHOW net_sales {PERIOD}")
        assert result.df.equals(plain.df)
        assert any("this store is one shop (East Shop)" in n for n in result.notices)
        with pytest.raises(CommerceQLNameError) as caught:
            store.query("FROM sales SHOW net_sales GROUP BY shop_name")
    assert "an organization store has shop_name and shop_id" in caught.value.message
    assert caught.value.span is not None and caught.value.span.column == 36


def test_from_organization_parses_and_formats_back():
    query = parse("FROM ORGANIZATION sales SHOW net_sales GROUP BY shop_name")
    assert query.organization and not parse("FROM sales SHOW net_sales").organization
    assert format_query(query).startswith("FROM ORGANIZATION sales\n")


def _copy(shops: Path, tmp_path: Path, slug: str, **manifest_changes: object) -> Path:
    target = tmp_path / f"{slug}-copy"
    shutil.copytree(shops / slug, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(manifest_changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"currency": "EUR", "name": "Euro Shop"}, "the shops do not share one currency (East Shop: USD, Euro Shop: EUR)"),
        ({"timezone": "Asia/Tokyo", "name": "Tokyo Shop"}, "the shops do not share one time zone"),
        ({}, "two shops have the same name (East Shop, East Shop)"),
    ],
)
def test_shops_that_cannot_be_added_up_are_refused_by_name(shops, tmp_path, changes, message):
    other = _copy(shops, tmp_path, "east", **changes)
    with pytest.raises(CommerceQLDataError) as caught:
        build_organization([shops / "east", other], tmp_path / "org")
    assert message in caught.value.message
    assert caught.value.hint
    assert not (tmp_path / "org").exists()


def test_a_folder_that_is_not_a_store_is_refused(shops, tmp_path):
    with pytest.raises(CommerceQLDataError, match="is not a CommerceQL store"):
        build_organization([shops / "east", tmp_path], tmp_path / "org")


@pytest.mark.spark
@pytest.mark.slow
def test_an_organization_answers_alike_on_spark(organization):
    from commerceql.engines import spark_unavailable
    from commerceql.frames import frame_difference

    reason = spark_unavailable()
    if reason:
        pytest.skip(reason)
    queries = (
        f"FROM ORGANIZATION sales SHOW net_sales, orders, customers GROUP BY shop_name WITH TOTALS {PERIOD}",
        f"FROM ORGANIZATION sales SHOW net_sales GROUP BY shop_name, product_type {PERIOD}",
        "FROM ORGANIZATION customers SHOW customers GROUP BY shop_name",
    )
    with cql.connect(organization.path, engine="spark") as spark:
        for query in queries:
            expected, got = organization.query(query), spark.query(query)
            assert frame_difference(expected.df, got.df, null_is_zero=True) is None, query


def test_the_language_server_reads_a_folder_of_shops_as_the_organization(shops, tmp_path, monkeypatch):
    """`commerceql lsp --data FOLDER` on a folder of shops checks against the organization's model,
    where shop_name is a dimension, as `connect(FOLDER)` answers; one shop's store says it is unavailable."""
    from commerceql.lsp import diagnose, load_context

    monkeypatch.setenv("COMMERCEQL_CACHE", str(tmp_path / "cache"))
    text = "FROM ORGANIZATION sales SHOW net_sales GROUP BY shop_name"
    assert diagnose(text, load_context(shops)) == []
    one_shop = diagnose(text, load_context(shops / SHOPS[0][0]))
    assert [d.range.start.character for d in one_shop] == [text.index("shop_name")]
