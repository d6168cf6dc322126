"""Opening stores (folder, DuckDB file, clock) and extending the semantic model with YAML."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import duckdb
import pytest

import commerceql as cql
from commerceql.errors import CommerceQLDataError, CommerceQLError

USER_MODEL = """
name: sales
metrics:
  discount_rate:
    sql: "-{discounts} / NULLIF({gross_sales}, 0)"
    type: percent
    description: Discounts as a share of gross sales.
  units_per_customer:
    sql: "{quantity_ordered} / NULLIF({customers}, 0)"
    type: number
    description: Units ordered per ordering customer.
dimensions:
  is_discounted:
    sql: "sales.discount_code IS NOT NULL"
    type: boolean
    description: True when the order used a discount code.
"""


@pytest.fixture(scope="module")
def duckdb_file(sample_store_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("db") / "store.duckdb"
    manifest = json.loads((sample_store_path / "manifest.json").read_text())
    with duckdb.connect(str(path)) as con:
        for name, file in manifest["tables"].items():
            con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM read_parquet(\'{sample_store_path / file}\')')
        con.execute("CREATE TABLE commerceql_manifest (manifest VARCHAR)")
        con.execute("INSERT INTO commerceql_manifest VALUES (?)", [json.dumps(manifest)])
    return path


def test_a_duckdb_file_answers_like_the_folder(sample_store_path, duckdb_file):
    query = "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month"
    with cql.connect(sample_store_path) as folder, cql.connect(duckdb_file) as database:
        assert database.timezone == "America/New_York"
        assert database.now() == folder.now()
        assert database.query(query).df.rows() == folder.query(query).df.rows()


def test_injected_clock_moves_named_ranges(sample_store_path):
    with cql.connect(sample_store_path, clock=dt.datetime(2024, 3, 10, 9, 0, tzinfo=ZoneInfo("UTC"))) as store:
        result = store.query("FROM sales SHOW orders TIMESERIES day DURING last_month")
        assert result.df["day"][0] == dt.date(2024, 2, 1)
        assert result.df.height == 29  # 2024 is a leap year
        store.set_clock(dt.datetime(2025, 1, 15, 12, 0, tzinfo=ZoneInfo("UTC")))
        assert store.query("FROM sales SHOW orders TIMESERIES month DURING last_year").df.height == 12


def test_user_metrics_and_dimensions_from_yaml(sample_store_path, tmp_path):
    model_file = tmp_path / "my_metrics.yaml"
    model_file.write_text(USER_MODEL)
    with cql.connect(sample_store_path, model=[model_file]) as store:
        result = store.query(
            "FROM sales SHOW discount_rate, units_per_customer GROUP BY is_discounted WITH TOTALS DURING last_year"
        )
        expected = store.sql(
            """SELECT discount_code IS NOT NULL AS is_discounted,
                      -SUM(discounts) / SUM(gross_sales) AS rate,
                      SUM(quantity) FILTER (WHERE event_type = 'order') / COUNT(DISTINCT customer_id) FILTER (WHERE event_type = 'order') AS upc
               FROM sales WHERE timezone('America/New_York', happened_at) >= TIMESTAMP '2024-01-01'
                 AND timezone('America/New_York', happened_at) < TIMESTAMP '2025-01-01' GROUP BY 1"""
        )
        got = {r["is_discounted"]: r for r in result.df.iter_rows(named=True)}
        for flag, rate, upc in expected.iter_rows():
            assert got[flag]["discount_rate"] == pytest.approx(float(rate))
            assert got[flag]["units_per_customer"] == pytest.approx(float(upc))
        assert store.schema("sales").filter(store.schema("sales")["name"] == "discount_rate")["type"][0] == "percent"


def test_store_folder_model_directory_is_loaded(sample_store_path, tmp_path):
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(sample_store_path, copy)
    (copy / "model").mkdir()
    (copy / "model" / "extra.yaml").write_text(USER_MODEL)
    with cql.connect(copy) as store:
        assert store.query("FROM sales SHOW discount_rate DURING last_month").df.height == 1


def test_bad_user_model_is_a_clear_error(sample_store_path, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: sales\nmetrics:\n  broken:\n    sql: SUM(sales.net_sales)\n    type: dollars\n")
    with pytest.raises(CommerceQLDataError) as info:
        cql.connect(sample_store_path, model=[bad])
    assert "dollars" in info.value.message and "money" in info.value.message


def test_not_a_store(tmp_path):
    with pytest.raises(CommerceQLError) as info:
        cql.connect(tmp_path)
    assert "manifest.json" in info.value.message
