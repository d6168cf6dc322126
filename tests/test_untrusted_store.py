"""Stores, models and mappings from strangers: what they can and cannot make CommerceQL do.

A store folder loads its own `model/*.yaml`, so a downloaded store is untrusted input: its SQL is
checked by `commerceql.model.sql_guard`, and every DuckDB session is locked down once its views
exist (no file access beyond the store's files, no extensions, no settings changes).
"""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from pathlib import Path

import duckdb
import pytest
import yaml

import commerceql as cql
from commerceql.errors import CommerceQLDataError, CommerceQLError
from commerceql.importers.common import CommerceQLMappingError
from commerceql.importers.table import MAPPINGS_DIR, import_table, load_mapping
from commerceql.model.semantic import BUILTIN_TABLES_DIR, ModelOverrideWarning, SemanticModel, builtin_model
from commerceql.model.sql_guard import ModelSQLError, check_expression

TABLES = ("sales", "products", "variants", "customers", "companies")


@pytest.fixture(scope="module")
def small_store(sample_store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store folder with the sample's sales and the tables the sales model joins."""
    folder = tmp_path_factory.mktemp("stores") / "shop"
    folder.mkdir()
    manifest = json.loads((sample_store_path / "manifest.json").read_text())
    for table in TABLES:
        shutil.copyfile(sample_store_path / manifest["tables"][table], folder / f"{table}.parquet")
    manifest["tables"] = {table: f"{table}.parquet" for table in TABLES}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def _store_with_model(small_store: Path, tmp_path: Path, model: str | dict, name: str = "evil.yaml") -> Path:
    folder = tmp_path / "store"
    shutil.copytree(small_store, folder)
    (folder / "model").mkdir()
    text = model if isinstance(model, str) else yaml.safe_dump(model)
    (folder / "model" / name).write_text(text)
    return folder


def _net_sales_by_hand(store_path: Path) -> object:
    return duckdb.sql(f"SELECT SUM(net_sales) FROM read_parquet('{store_path / 'sales.parquet'}')").fetchall()[0][0]


# -- the lockdown ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM glob('/*')",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "RESET enable_external_access",
        "SET allowed_directories = ['/']",
        "SET memory_limit = '100GB'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH '/tmp/commerceql-attach-test.duckdb' AS other",
    ],
)
def test_a_session_cannot_leave_the_store(small_store: Path, statement: str) -> None:
    with cql.connect(small_store) as store, pytest.raises(CommerceQLError):
        store.sql(statement)


def test_copy_to_a_file_fails_and_writes_nothing(small_store: Path, tmp_path: Path) -> None:
    target = tmp_path / "stolen.csv"
    with cql.connect(small_store) as store, pytest.raises(CommerceQLError):
        store.sql(f"COPY (SELECT * FROM sales) TO '{target}'")
    assert not target.exists()


def test_the_store_still_reads_its_own_files_after_the_lockdown(small_store: Path) -> None:
    with cql.connect(small_store) as store:
        settings = store.sql(
            "SELECT current_setting('enable_external_access') AS external, "
            "current_setting('lock_configuration') AS locked, current_setting('TimeZone') AS zone, "
            "current_setting('autoload_known_extensions') AS autoload, "
            "current_setting('autoinstall_known_extensions') AS autoinstall"
        ).row(0, named=True)
        assert settings == {"external": False, "locked": True, "zone": "UTC", "autoload": False, "autoinstall": False}
        total = store.query("FROM sales SHOW net_sales").df["net_sales"][0]
        assert total == _net_sales_by_hand(small_store)


def test_memory_threads_and_temp_directory_are_set_per_connect(small_store: Path) -> None:
    with cql.connect(small_store, memory_limit="512MB", threads=1) as store:
        row = store.sql(
            "SELECT current_setting('memory_limit') AS memory, current_setting('threads') AS threads, "
            "current_setting('temp_directory') AS temp"
        ).row(0, named=True)
        temp = Path(row["temp"])
        assert row["memory"] in ("512.0 MiB", "488.2 MiB")  # DuckDB prints MB as MiB, rounding differs by version
        assert row["threads"] == 1
        assert temp.is_dir() and temp != Path.cwd() / ".tmp" and Path.cwd() not in temp.parents
    assert not temp.exists()  # the private temp directory goes with the store


@pytest.mark.parametrize("bad", [{"memory_limit": "lots"}, {"memory_limit": "1GB; SET x=1"}, {"threads": 0}])
def test_bad_session_sizes_are_clear_errors(small_store: Path, bad: dict) -> None:
    with pytest.raises(CommerceQLDataError):
        cql.connect(small_store, **bad)


def test_a_duckdb_file_store_is_locked_down_too(small_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE sales AS SELECT * FROM read_parquet('{small_store / 'sales.parquet'}')")
    with cql.connect(path) as store:
        assert store.query("FROM sales SHOW net_sales").df["net_sales"][0] == _net_sales_by_hand(small_store)
        for statement in ("SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true",
                          f"COPY sales TO '{tmp_path / 'out.csv'}'", "INSTALL httpfs"):
            with pytest.raises(CommerceQLError):
                store.sql(statement)
    assert not (tmp_path / "out.csv").exists()


# -- glob characters in store paths ------------------------------------------------------------


@pytest.mark.parametrize(("name", "neighbour"), [("shop[2024]", "shop2"), ("a*", "ab"), ("a?c", "abc")])
def test_glob_characters_in_a_store_path_read_only_that_store(
    small_store: Path, tmp_path: Path, name: str, neighbour: str
) -> None:
    for folder, rows in ((name, 3), (neighbour, 5)):
        shutil.copytree(small_store, tmp_path / folder)
        duckdb.sql(
            f"COPY (SELECT * FROM read_parquet('{small_store / 'sales.parquet'}') ORDER BY sale_id LIMIT {rows}) "
            f"TO '{tmp_path / folder / 'sales.parquet'}'"
        )
    for folder, rows in ((name, 3), (neighbour, 5)):
        with cql.connect(tmp_path / folder) as store:
            assert store.sql("SELECT count(*) AS n FROM sales")["n"][0] == rows


# -- model SQL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("(SELECT count(*) FROM read_csv('/etc/passwd'))", "function read_csv"),
        ("SUM(sales.net_sales); COPY sales TO '/tmp/x.csv'", "more than one statement"),
        ("COUNT(*) FILTER (WHERE sales.order_id IN (SELECT 1))", "subquery"),
        ("SUM(sales.net_sales) -- hidden", "comment"),
        ("SUM(other_db.sales.net_sales)", "alias.column"),
        ("getenv('HOME')", "function getenv"),
        ("SUM(secrets.amount)", "neither this table nor one of its joins"),
    ],
)
def test_an_evil_model_is_refused_at_connect_naming_file_and_field(
    small_store: Path, tmp_path: Path, sql: str, problem: str
) -> None:
    model = {"name": "sales", "metrics": {"stolen": {"sql": sql, "type": "number", "description": "Stolen."}}}
    folder = _store_with_model(small_store, tmp_path, model)
    with pytest.raises(ModelSQLError) as info:
        cql.connect(folder)
    assert info.value.message.startswith("model/evil.yaml: metrics.stolen.sql: ")
    assert problem in info.value.message
    assert isinstance(info.value, CommerceQLDataError)


def test_the_example_message_for_read_csv(small_store: Path, tmp_path: Path) -> None:
    model = {"name": "sales", "metrics": {"net_sales": {"override": True, "sql": "SUM(read_csv('/etc/passwd'))",
                                          "description": "Stolen."}}}
    with pytest.raises(ModelSQLError) as info:
        cql.connect(_store_with_model(small_store, tmp_path, model))
    assert info.value.message == "model/evil.yaml: metrics.net_sales.sql: function read_csv is not allowed in model SQL"


@pytest.mark.parametrize(
    "document",
    [
        {"name": "sales", "dimensions": {"leak": {"sql": "read_text('/etc/passwd')", "description": "Leak."}}},
        {"name": "sales", "joins": {"evil": {"relation": "products", "on": "true OR (SELECT 1) = 1"}}},
        {"name": "sales", "joins": {"x; DROP": {"relation": "products", "on": "sales.product_id = x.product_id"}}},
        {"name": "stolen", "relation": "read_csv('/etc/passwd')", "metrics": {"n": {"sql": "COUNT(*)", "description": "N."}}},
        {"name": "stolen", "relation": "duckdb_settings", "metrics": {"n": {"sql": "COUNT(*)", "description": "N."}}},
        {"name": "sales", "metrics": {"a": {"sql": "'{net_sales}'", "description": "A."}}},
    ],
)
def test_joins_dimensions_relations_and_references_are_checked(
    small_store: Path, tmp_path: Path, document: dict
) -> None:
    with pytest.raises(CommerceQLDataError) as info:
        cql.connect(_store_with_model(small_store, tmp_path, document))
    assert info.value.message.startswith("model/evil.yaml")


def test_every_builtin_expression_passes_the_guard() -> None:
    checked = 0
    for path in sorted(BUILTIN_TABLES_DIR.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            table = builtin_model().tables[document["name"]]
            aliases = {table.name, *table.joins}
            for alias, join in table.joins.items():
                check_expression(join.on, where=f"{path.name}: joins.{alias}.on", aliases=aliases)
                checked += 1
            for dimension in table.dimensions.values():
                check_expression(dimension.sql, where=f"{path.name}: {dimension.name}", aliases=aliases)
                checked += 1
            for metric in table.metrics.values():
                if metric.alias_of is None:
                    check_expression(metric.sql, where=f"{path.name}: {metric.name}", aliases=aliases,
                                     metric_references=True)
                    # The inlined form the compiler uses is one allowed expression too.
                    check_expression(table.metric_sql(metric.name), where=metric.name, aliases=aliases)
                    checked += 1
    assert checked > 100


def test_the_builtin_model_read_as_untrusted_is_the_same_model() -> None:
    untrusted = SemanticModel({})
    for path in sorted(BUILTIN_TABLES_DIR.glob("*.yaml")):
        untrusted = untrusted.extended(yaml.safe_load_all(path.read_text()), origin=path.name)
    assert untrusted == builtin_model()


# -- overrides ---------------------------------------------------------------------------------


def test_overriding_a_builtin_metric_needs_override_true(small_store: Path, tmp_path: Path) -> None:
    model = {"name": "sales", "metrics": {"net_sales": {"sql": "SUM(sales.gross_sales)", "type": "money",
                                                        "description": "Gross sales."}}}
    with pytest.raises(CommerceQLDataError) as info:
        cql.connect(_store_with_model(small_store, tmp_path, model))
    assert "replaces the existing metric `net_sales`" in info.value.message
    assert "override: true" in (info.value.hint or "")


def test_an_explicit_override_works_and_warns(small_store: Path, tmp_path: Path) -> None:
    model = {"name": "sales", "metrics": {"net_sales": {"override": True, "sql": "SUM(sales.gross_sales)",
                                                        "type": "money", "description": "Gross sales."}}}
    folder = _store_with_model(small_store, tmp_path, model)
    with pytest.warns(ModelOverrideWarning, match="net_sales"), cql.connect(folder) as store:
        result = store.query("FROM sales SHOW net_sales").df["net_sales"][0]
    expected = duckdb.sql(f"SELECT SUM(gross_sales) FROM read_parquet('{folder / 'sales.parquet'}')").fetchall()[0][0]
    assert result == expected


def test_changing_a_builtin_relation_needs_override(small_store: Path, tmp_path: Path) -> None:
    with pytest.raises(CommerceQLDataError, match="relation"):
        cql.connect(_store_with_model(small_store, tmp_path, {"name": "sales", "relation": "products"}))


def test_new_metrics_need_no_override_and_do_not_warn(small_store: Path, tmp_path: Path) -> None:
    model = {"name": "sales", "metrics": {"units": {"sql": "SUM(sales.quantity)", "type": "count",
                                                    "description": "Units sold."}}}
    with warnings.catch_warnings():
        warnings.simplefilter("error", ModelOverrideWarning)
        with cql.connect(_store_with_model(small_store, tmp_path, model)) as store:
            units = store.query("FROM sales SHOW units").df["units"][0]
    assert units == duckdb.sql(f"SELECT SUM(quantity) FROM read_parquet('{small_store / 'sales.parquet'}')").fetchall()[0][0]


# -- damaged stores ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "manifest",
    [
        "{not json",
        "[1, 2, 3]",
        '{"tables": ["sales.parquet"]}',
        '{"tables": {"sales": 5}}',
        '{"tables": {"sales": "/etc/passwd"}}',
        '{"tables": {"sales": "../shop/sales.parquet"}}',
        '{"tables": {"sales": "sales.parquet"}, "as_of": "yesterday"}',
        '{"tables": {"sales": "sales.parquet"}, "timezone": 5}',
    ],
)
def test_a_malformed_manifest_is_a_data_error(small_store: Path, tmp_path: Path, manifest: str) -> None:
    folder = tmp_path / "store"
    shutil.copytree(small_store, folder)
    (folder / "manifest.json").write_text(manifest)
    with pytest.raises(CommerceQLDataError):
        cql.connect(folder)


def test_a_table_file_that_is_not_parquet_is_a_data_error(small_store: Path, tmp_path: Path) -> None:
    folder = tmp_path / "store"
    shutil.copytree(small_store, folder)
    (folder / "products.parquet").write_text("id,title\n1,hat\n")
    with pytest.raises(CommerceQLDataError, match="products"):
        cql.connect(folder)


def test_a_file_that_is_not_a_duckdb_database_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    path.write_text("not a database")
    with pytest.raises(CommerceQLDataError):
        cql.connect(path)


@pytest.mark.parametrize(
    "text",
    [
        "- just\n- a list\n",
        "name: sales\nmetrics: [a, b]\n",
        "name: sales\nmetrics:\n  m: just text\n",
        "name: sales\ndimensions:\n  d: {sql: sales.order_id, type: [string]}\n",
        "name: sales\nmetrics:\n  m: {sql: [SUM(sales.net_sales)]}\n",
        "name: sales\nmetrics:\n  m: {sql: SUM(sales.net_sales), additive: maybe}\n",
        "name: [sales]\n",
        "name: sales\njoins:\n  p: [products]\n",
        "name: sales\nmetrics: {m: {sql: 'SUM(sales.net_sales)'}}\nunknown_key: 1\n",
        "name: sales\n\tbad: yaml\n",
    ],
)
def test_a_malformed_model_is_a_data_error(small_store: Path, tmp_path: Path, text: str) -> None:
    with pytest.raises(CommerceQLDataError):
        cql.connect(_store_with_model(small_store, tmp_path, text, name="broken.yaml"))


# -- threads -----------------------------------------------------------------------------------


def test_threads_mixing_query_and_sql_all_succeed(small_store: Path) -> None:
    query = "FROM sales SHOW net_sales, orders GROUP BY sales_channel ORDER BY sales_channel"
    raw = "SELECT sales_channel, count(*) AS n FROM sales GROUP BY 1 ORDER BY 1"
    with cql.connect(small_store) as store:
        expected_query = store.query(query).df.rows()
        expected_sql = store.sql(raw).rows()
        failures: list[str] = []
        mismatches: list[str] = []

        def work(index: int) -> None:
            for call in range(12):
                try:
                    if (index + call) % 2:
                        if store.query(query).df.rows() != expected_query:
                            mismatches.append(f"query in thread {index}")
                    elif store.sql(raw).rows() != expected_sql:
                        mismatches.append(f"sql in thread {index}")
                except Exception as exc:  # noqa: BLE001 - collected and asserted below
                    failures.append(f"thread {index}: {exc!r}")

        threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    assert mismatches == []


# -- import mappings ---------------------------------------------------------------------------

EVENTS = {
    "source": {"format": "duckdb", "table": "events"},
    "sales": {"order": "order_id", "happened_at": "ts", "gross_sales": "amount"},
}


@pytest.fixture
def events_db(tmp_path: Path) -> Path:
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE events AS SELECT * FROM (VALUES (1, TIMESTAMPTZ '2024-01-02 10:00:00+00', 10.0), "
                    "(2, TIMESTAMPTZ '2024-01-03 10:00:00+00', 5.5)) t(order_id, ts, amount)")
    return path


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM events; COPY source_db.events TO '/tmp/x.csv'",
        "COPY source_db.events TO '/tmp/x.csv'",
        "SELECT * FROM '/etc/passwd'",
        "SELECT * FROM events",
    ],
)
def test_a_source_query_must_be_one_select_over_the_source(events_db: Path, tmp_path: Path, query: str) -> None:
    mapping = {**EVENTS, "source": {"format": "duckdb", "query": query}}
    with pytest.raises(CommerceQLMappingError, match=r"\[source\] query"):
        import_table(events_db, mapping, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_source_query_over_source_db_imports(events_db: Path, tmp_path: Path) -> None:
    query = "SELECT order_id, ts, amount * 2 AS amount FROM source_db.events WHERE amount > 6"
    import_table(events_db, {**EVENTS, "source": {"format": "duckdb", "query": query}}, tmp_path / "out")
    with cql.connect(tmp_path / "out") as store:
        assert float(store.query("FROM sales SHOW gross_sales").df["gross_sales"][0]) == 20.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sales": {**EVENTS["sales"], "taxes": {"sql": "(SELECT 1)"}}}, "subquery"),
        ({"sales": {**EVENTS["sales"], "taxes": {"sql": "length(read_text('/etc/passwd'))"}}}, "read_text"),
        ({"sales": {**EVENTS["sales"], "taxes": {"sql": "amount; DROP TABLE src"}}}, "more than one statement"),
        ({"store": {"money_decimals": "two"}}, "money_decimals"),
        ({"store": {"money_decimals": 9}}, "money_decimals"),
        ({"source": {"format": "duckdb", "table": "events", "skip_rows": -1}}, "skip_rows"),
        ({"source": {"format": "duckdb", "table": "events", "skip_rows": "1; DROP"}}, "skip_rows"),
    ],
)
def test_mapping_sql_and_numbers_are_checked(change: dict, message: str) -> None:
    with pytest.raises(CommerceQLMappingError, match=message):
        load_mapping({**EVENTS, **change})


def test_mapping_sql_over_source_columns_still_works(events_db: Path, tmp_path: Path) -> None:
    mapping = {**EVENTS, "sales": {**EVENTS["sales"], "taxes": {"sql": "round(amount * 0.1, 2)"}}}
    import_table(events_db, mapping, tmp_path / "out")
    with cql.connect(tmp_path / "out") as store:
        assert float(store.query("FROM sales SHOW taxes").df["taxes"][0]) == pytest.approx(1.55, abs=0.011)


def test_shipped_mappings_pass_the_checks() -> None:
    for path in sorted(MAPPINGS_DIR.glob("*.toml")):
        load_mapping(path)


def test_an_evil_model_given_with_a_duckdb_file_store_is_refused(small_store: Path, tmp_path: Path) -> None:
    path = tmp_path / "store.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE sales AS SELECT * FROM read_parquet('{small_store / 'sales.parquet'}')")
    evil = tmp_path / "evil.yaml"
    evil.write_text(yaml.safe_dump({"name": "sales", "metrics": {"m": {"sql": "SUM(glob('/*'))", "description": "M."}}}))
    with pytest.raises(ModelSQLError, match="function glob is not allowed"):
        cql.connect(path, model=[evil])


def test_alias_cycles_and_dangling_aliases_are_model_errors(tmp_path):
    import commerceql as cql
    from commerceql.errors import CommerceQLDataError

    cycle = tmp_path / "cycle.yaml"
    cycle.write_text(
        "name: sales\nmetrics:\n  loop_a: {alias_of: loop_b, description: a}\n  loop_b: {alias_of: loop_a, description: b}\n",
        encoding="utf-8",
    )
    with pytest.raises(CommerceQLDataError) as caught:
        cql.connect(model=[cycle])
    assert "circle" in caught.value.message and "loop_a -> loop_b -> loop_a" in caught.value.message
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text("name: sales\nmetrics:\n  old_name: {alias_of: no_such_metric, description: x}\n", encoding="utf-8")
    with pytest.raises(CommerceQLDataError) as caught:
        cql.connect(model=[dangling])
    assert "no metric `no_such_metric`" in caught.value.message


# -- damaged data ------------------------------------------------------------------------------


def test_an_infinite_timestamp_is_a_data_error_not_a_panic(small_store: Path, tmp_path: Path) -> None:
    """A store whose sales hold DuckDB's 'infinity' as a time: Polars panics converting it (no
    Exception catches a panic; it ended the cell). A query showing it is a data error; one that
    does not show it still answers, to the cent."""
    folder = tmp_path / "store"
    shutil.copytree(small_store, folder)
    sales = folder / "sales.parquet"
    first = duckdb.sql(f"SELECT min(sale_id) FROM read_parquet('{sales}')").fetchall()[0][0]
    damaged = tmp_path / "damaged.parquet"
    duckdb.sql(f"COPY (SELECT * REPLACE (CASE WHEN sale_id = {first} THEN 'infinity'::TIMESTAMPTZ "
               f"ELSE happened_at END AS happened_at) FROM read_parquet('{sales}')) TO '{damaged}' (FORMAT parquet)")
    shutil.move(damaged, sales)
    store = cql.connect(folder)
    try:
        with pytest.raises(CommerceQLDataError, match="holds a time outside the years"):
            store.query("FROM sales SHOW net_sales GROUP BY month")
        with pytest.raises(CommerceQLDataError, match="holds a time outside the years"):
            store.sql("SELECT max(happened_at) AS last FROM sales")
        total = store.query("FROM sales SHOW net_sales").df["net_sales"][0]
        assert total == _net_sales_by_hand(folder)
    finally:
        store.close()
