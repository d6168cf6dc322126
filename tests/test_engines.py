"""Every engine gives the same answers: the corpus run on DuckDB and on a local Spark.

Frames are compared value by value: the same columns and rows (rows matched in order, or as
a multiset where ties in ORDER BY leave the order open), money exact to the cent, ratios within
1e-9 relative. Marked `spark`: the session starts once (about 20-30 s) for the whole module.
"""

from __future__ import annotations

import polars as pl
import pytest
from engine_corpus import corpus

import commerceql as cql
from commerceql.engines import spark_unavailable
from commerceql.errors import CommerceQLError
from commerceql.frames import frame_difference

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def engines(sample_store_path):
    reason = spark_unavailable()
    if reason:
        import os

        if os.environ.get("CI") == "true":
            pytest.fail(f"the Spark tests must run in CI: {reason}")
        pytest.skip(reason)
    duck = cql.connect(sample_store_path)
    spark = cql.connect(sample_store_path, engine="spark")
    yield duck, spark
    spark.close()
    duck.close()


def assert_same_frames(duck: pl.DataFrame, spark: pl.DataFrame, query: str) -> None:
    difference = frame_difference(duck, spark, null_is_zero=True)
    assert difference is None, f"{query}\n{difference}\nDuckDB:\n{duck.head(8)}\nSpark:\n{spark.head(8)}"


CORPUS = corpus()


@pytest.mark.parametrize(("ident", "query"), CORPUS, ids=[i for i, _ in CORPUS])
def test_spark_answers_like_duckdb(engines, ident, query):
    duck, spark = engines
    try:
        expected = duck.query(query)
    except CommerceQLError as error:
        # Refused before any SQL exists: the same refusal on Spark, not an engine matter.
        with pytest.raises(type(error)):
            spark.query(query)
        return
    got = spark.query(query)
    assert [c.name for c in got.columns] == [c.name for c in expected.columns]
    assert got.total_rows == expected.total_rows, query
    assert_same_frames(expected.df, got.df, query)
    assert got.notices == expected.notices


def test_the_cli_runs_a_query_on_spark_and_prints_what_duckdb_prints(engines, sample_store_path):
    import subprocess
    import sys

    query = "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month"
    outputs = {}
    for engine in ("duckdb", "spark"):
        process = subprocess.run(
            [sys.executable, "-m", "commerceql.cli", "query", query, "--data", str(sample_store_path),
             "--engine", engine, "--format", "csv"],
            capture_output=True, text=True, timeout=600,
        )
        assert process.returncode == 0, process.stderr
        outputs[engine] = process.stdout
    assert outputs["spark"] == outputs["duckdb"]
    assert "Wholesale" in outputs["duckdb"]


def test_spark_errors_are_one_clean_line(engines):
    _duck, spark = engines
    with pytest.raises(CommerceQLError) as caught:
        spark.sql("SELECT no_such_column FROM sales")
    message = caught.value.render()
    assert "no_such_column" in message and "\n\tat " not in message and "Traceback" not in message


@pytest.mark.parametrize(
    "query",
    [
        "FROM sales SHOW net_sales GROUP BY sales_channel WHERE billing_region != 'it''s :p0' DURING last_month",
        "FROM sales SHOW net_sales TIMESERIES hour SINCE 2024-11-03 UNTIL 2024-11-03 COMPARE TO previous_year",
    ],
)
def test_spark_sql_as_explained_runs_and_returns_the_same_rows(engines, query):
    _duck, spark = engines
    result = spark.query(query)
    printed = spark.explain(query)
    assert ":p" not in printed.replace("':p0'", "").replace(":p0'", "")  # every marker written in
    rerun = spark.sql(printed).drop("__total_rows")
    assert_same_frames(result.df, rerun, query)


def test_every_model_field_is_valid_spark_sql(engines):
    """Each metric and dimension of the built-in model, compiled for Spark and analysed by Spark
    (parsed, names and types checked, nothing executed): the model's SQL suits both engines."""
    _duck, spark = engines
    session = spark.engine.session
    failures = []
    for table in spark.model.tables.values():
        metrics = [n for n, m in table.metrics.items() if not m.alias_of]
        queries = [f"FROM {table.name} SHOW {m}" for m in metrics]
        queries += [
            f"FROM {table.name} SHOW {metrics[0]} GROUP BY {d}"
            for d, dim in table.dimensions.items() if dim.type != "array"
        ]
        queries += [
            f"FROM {table.name} SHOW {metrics[0]} WHERE {d} CONTAINS 'x'"
            for d, dim in table.dimensions.items() if dim.type == "array"
        ]
        for query in queries:
            compiled = spark.compile(query)
            try:
                schema = session.sql(compiled.sql, args=dict(compiled.parameters)).schema
                if len(schema.fields) != len(compiled.columns) + 1:  # + __total_rows
                    failures.append(f"{query}: {len(schema.fields)} columns, expected {len(compiled.columns) + 1}")
            except Exception as error:  # noqa: BLE001 - collect every failure, then report them all
                failures.append(f"{query}: {str(error).splitlines()[0][:200]}")
    assert not failures, "\n".join(failures)


def test_an_import_mappings_model_runs_on_spark_with_the_published_figures(engines, tmp_path):
    """The cdnow_sample mapping's own metrics (durations via seconds_between, a fixed cut-off via
    utc_instant, half-up cents without `//`) give Hardie's published per-customer summary on Spark."""
    from pathlib import Path

    from commerceql.importers import import_table

    cdnow = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "cdnow"
    if not (cdnow / "CDNOW_sample.txt").exists():
        pytest.skip(f"the CDNOW sample is not in {cdnow}")
    out = tmp_path / "cdnow-sample"
    import_table(cdnow / "CDNOW_sample.txt", "cdnow_sample", out)
    spark = cql.connect(out, engine="spark")
    try:
        ours = spark.query("FROM sales SHOW x, t_x, calibration_t, zbar GROUP BY customer_id "
                           "SINCE 1997-01-01 UNTIL 1997-09-30 LIMIT 5000").df
    finally:
        spark.close()
    published = pl.read_csv(cdnow / "cdnow_customers_summary_with_transactions.csv")
    joined = published.join(ours, left_on="ID", right_on="customer_id", how="inner")
    assert joined.height == published.height == 2357
    assert (joined["x"] == joined["x_right"]).all()
    for theirs, mine in (("t_x", "t_x_right"), ("T", "calibration_t"), ("zbar", "zbar_right")):
        assert ((joined[theirs] - joined[mine].cast(pl.Float64)).abs() < 1e-9).all(), theirs
