"""CommerceQL on a real Spark Connect server: `connect(path, engine="spark", spark_remote="sc://...")`.

One server for the module: a local Spark with the Spark Connect plugin, started in a subprocess
on a free port of 127.0.0.1 (pyspark ships the server jar). The tests then reach it the way a user
reaches a cluster, through the pure-Python Connect client: a few corpus queries compared with
DuckDB, separate sessions per store, and the session properties docs/engines.md and
docs/security.md describe. Interrupting a Connect operation is not tested here: on this 2-core
machine an interrupted operation did not always stop within minutes, and a test that can hang CI
is worse than none (local-Spark interrupts are tested in tests/test_interrupts.py). Marked `spark`: the server starts in about 20-30 s.

Run by hand: `python tests/test_spark_connect.py PORT` serves until its standard input closes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import commerceql as cql
from commerceql.engines import spark_connect_unavailable, spark_unavailable
from commerceql.errors import CommerceQLExecutionError
from commerceql.frames import frame_difference
from commerceql.model.sql_guard import ModelSQLError

pytestmark = [pytest.mark.spark, pytest.mark.slow]

GENEROUS = 300.0  # seconds: bounds that fail a regression instead of hanging, never speed checks
READY = "commerceql-connect-server-ready"

QUERIES = [
    "FROM sales SHOW net_sales, orders, average_order_value GROUP BY sales_channel WITH TOTALS DURING last_year",
    "FROM sales SHOW net_sales TIMESERIES day DURING last_month COMPARE TO previous_year_match_day_of_week",
    "FROM sales SHOW net_sales, orders GROUP BY day_of_week, hour_of_day DURING last_week",
    "FROM sales SHOW net_sales GROUP BY month, TOP 3 product_title DURING last_quarter COMPARE TO previous_year",
    "FROM sales SHOW net_sales WHERE customer_tags CONTAINS 'vip' DURING last_year",
    "FROM customers SHOW customers GROUP BY customer_first_order_date WHERE customer_first_order_date >= 2025-11-25",
]


def serve(port: int) -> None:
    """A local Spark with the Spark Connect server on 127.0.0.1:`port`, until stdin closes."""
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("commerceql-connect-test")
        .config("spark.plugins", "org.apache.spark.sql.connect.SparkConnectPlugin")
        .config("spark.connect.grpc.binding.address", "127.0.0.1")
        .config("spark.connect.grpc.binding.port", str(port))
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "4")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    # The plugin starts the gRPC server while the session starts: it listens from here on.
    print(READY, flush=True)
    sys.stdin.read()
    session.stop()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_server() -> tuple[subprocess.Popen[str], int]:
    """Start the server on a free port; another port is tried if one was taken meanwhile."""
    failures = []
    for _attempt in range(3):
        port = _free_port()
        process = subprocess.Popen(
            [sys.executable, __file__, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        lines: list[str] = []
        ready = threading.Event()

        def read(process: subprocess.Popen[str] = process, lines: list[str] = lines,
                 ready: threading.Event = ready) -> None:
            assert process.stdout is not None
            for line in process.stdout:  # drained to the end, so the server never blocks on output
                lines.append(line)
                if READY in line:
                    ready.set()
            ready.set()  # the process ended

        threading.Thread(target=read, daemon=True).start()
        ready.wait(GENEROUS)
        if process.poll() is None and any(READY in line for line in lines):
            return process, port
        _stop_server(process)
        failures.append("".join(lines[-15:]))
    pytest.fail("the Spark Connect test server did not start:\n" + "\n---\n".join(failures))


def _stop_server(process: subprocess.Popen[str]) -> None:
    try:
        if process.stdin is not None:
            process.stdin.close()  # the server's cue to stop its Spark
        process.wait(timeout=60)
    except (subprocess.TimeoutExpired, OSError):
        process.kill()
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def remote() -> Iterator[str]:
    reason = spark_unavailable() or spark_connect_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Spark Connect tests must run in CI: {reason}")
        pytest.skip(reason)
    process, port = _start_server()
    try:
        yield f"sc://127.0.0.1:{port}"
    finally:
        _stop_server(process)


@pytest.fixture(scope="module")
def stores(remote: str, sample_store_path: Path) -> Iterator[tuple[cql.Store, cql.Store]]:
    duck = cql.connect(sample_store_path)
    spark = cql.connect(sample_store_path, engine="spark", spark_remote=remote)
    yield duck, spark
    spark.close()
    duck.close()


@pytest.mark.parametrize("query", QUERIES)
def test_spark_connect_answers_like_duckdb(stores, query):
    duck, spark = stores
    expected, got = duck.query(query), spark.query(query)
    assert [c.name for c in got.columns] == [c.name for c in expected.columns]
    assert got.total_rows == expected.total_rows
    difference = frame_difference(expected.df, got.df, null_is_zero=True)
    assert difference is None, f"{query}\n{difference}"


def test_the_store_is_a_connect_session_pinned_to_utc(stores, remote):
    _duck, spark = stores
    session = spark.engine.session
    assert type(session).__module__.startswith("pyspark.sql.connect")
    assert spark.engine.describe().endswith(f"(Spark Connect at {remote})")
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.sql.ansi.enabled") == "false"


def test_the_stores_tables_are_views_of_its_parquet_files(stores, sample_store_path):
    _duck, spark = stores
    session = spark.engine.session
    views = {t.name: t for t in session.catalog.listTables()}
    tables = spark.manifest["tables"]
    assert set(views) == set(tables)
    assert all(view.isTemporary for view in views.values())
    for name, file_name in tables.items():
        read = [Path(f.removeprefix("file://").removeprefix("file:")) for f in session.table(name).inputFiles()]
        assert read == [(sample_store_path / file_name).resolve()], name


def test_two_stores_on_one_server_keep_their_own_sessions(stores, remote, sample_store_path):
    duck, spark = stores
    query = "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month"
    other = cql.connect(sample_store_path, engine="spark", spark_remote=remote)
    assert other.engine.session.session_id != spark.engine.session.session_id
    assert frame_difference(duck.query(query).df, other.query(query).df, null_is_zero=True) is None
    other.close()  # releases its session on the server, views and all ...
    # ... and leaves this store's session and views alone.
    assert frame_difference(duck.query(query).df, spark.query(query).df, null_is_zero=True) is None


def test_a_store_model_is_checked_before_any_server_is_contacted(sample_store_path, tmp_path):
    """An evil model fails at connect() with the model error, even when the address is dead: the
    model is read (and refused) before a Spark session exists."""
    import json

    store = tmp_path / "evil"
    store.mkdir()
    (store / "manifest.json").write_text((sample_store_path / "manifest.json").read_text(encoding="utf-8"),
                                         encoding="utf-8")
    for file_name in json.loads((store / "manifest.json").read_text(encoding="utf-8"))["tables"].values():
        (store / file_name).symlink_to(sample_store_path / file_name)
    (store / "model").mkdir()
    (store / "model" / "evil.yaml").write_text(
        "name: sales\nmetrics:\n  leak:\n    sql: SUM(LENGTH(read_text('/etc/passwd')))\n    description: Leak.\n", encoding="utf-8"
    )
    with pytest.raises(ModelSQLError, match="read_text"):
        cql.connect(store, engine="spark", spark_remote=f"sc://127.0.0.1:{_free_port()}")


def test_raw_sql_on_a_connect_session_is_not_confined_to_the_store(stores, tmp_path):
    """What docs/security.md says a Spark session can still do: `store.sql()` reads any file the
    server can read (unlike a DuckDB store's locked-down session)."""
    import polars as pl

    duck, spark = stores
    outside = tmp_path / "outside.parquet"
    pl.DataFrame({"secret": [1, 2, 3]}).write_parquet(outside)
    assert spark.sql(f"SELECT sum(secret) AS s FROM parquet.`{outside}`")["s"].to_list() == [6]
    with pytest.raises(CommerceQLExecutionError):
        duck.sql(f"SELECT sum(secret) AS s FROM read_parquet('{outside}')")


def test_an_unreachable_server_is_one_clear_error(sample_store_path):
    reason = spark_connect_unavailable()
    if reason:
        pytest.skip(reason)
    from commerceql.errors import CommerceQLDataError

    port = _free_port()  # nothing listens there
    with pytest.raises(CommerceQLDataError) as caught:
        cql.connect(sample_store_path, engine="spark", spark_remote=f"sc://127.0.0.1:{port}")
    message = caught.value.render()
    assert f"sc://127.0.0.1:{port}" in message and "Traceback" not in message


if __name__ == "__main__":
    serve(int(sys.argv[1]))
