"""Model SQL is checked for every engine when the model loads, not by a database at query time.

A store's `model/*.yaml` runs on DuckDB and on Spark as written (only the macros are expanded),
so an expression one engine lacks or reads differently is a model error at `connect()`, naming
the file, the field and the construct, with the macro or portable spelling to use instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
import yaml

import commerceql as cql
from commerceql.dialect import DIALECTS
from commerceql.model.semantic import BUILTIN_TABLES_DIR, SemanticModel
from commerceql.model.sql_guard import PORTABLE_FUNCTION_NAMES, ModelSQLError, check_portable

TABLES = ("sales", "products", "variants", "customers", "companies")


@pytest.fixture(scope="module")
def small_store(sample_store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("dialect-stores") / "shop"
    folder.mkdir()
    manifest = json.loads((sample_store_path / "manifest.json").read_text(encoding="utf-8"))
    for table in TABLES:
        shutil.copyfile(sample_store_path / manifest["tables"][table], folder / f"{table}.parquet")
    manifest["tables"] = {table: f"{table}.parquet" for table in TABLES}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def _with_model(small_store: Path, tmp_path: Path, document: dict) -> Path:
    folder = tmp_path / "store"
    shutil.copytree(small_store, folder)
    (folder / "model").mkdir()
    (folder / "model" / "custom.yaml").write_text(yaml.safe_dump(document), encoding="utf-8")
    return folder


@pytest.mark.parametrize(
    ("field", "sql", "construct", "hint"),
    [
        # DuckDB-only functions
        ("dimensions.has_vip.sql", "list_contains(customers.tags, 'vip')", "function list_contains", "array_contains"),
        ("metrics.order_hours.sql", "SUM(epoch(sales.happened_at))", "function epoch", "extract(day FROM"),
        ("dimensions.local_day.sql", "strftime(sales.happened_at, '%Y-%m-%d')", "function strftime", "local_date"),
        ("dimensions.shop_time.sql", "timezone('Europe/Paris', sales.happened_at)", "function timezone",
         "local_timestamp"),
        ("dimensions.title_start.sql", "starts_with(products.title, 'A')", "function starts_with", "LIKE 'prefix%'"),
        # Spark-only functions
        ("dimensions.day_text.sql", "date_format(sales.happened_at, 'yyyy-MM-dd')", "function date_format",
         "local_date"),
        ("dimensions.tag_count.sql", "size(customers.tags)", "function size", "no list length"),
        ("dimensions.region.sql", "nvl(sales.billing_region, 'none')", "function nvl", "coalesce"),
        # Read differently by the two engines
        ("dimensions.weekday.sql", "dayofweek(sales.happened_at)", "function dayofweek", "day_of_week"),
        ("dimensions.label.sql", "CAST(sales.quantity AS VARCHAR)", "the type VARCHAR", "STRING"),
        ("dimensions.label.sql", "sales.quantity::DOUBLE", "the cast `::`", "CAST(x AS type)"),
        ("dimensions.path.sql", "CASE WHEN products.title LIKE 'a\\b%' THEN 1 ELSE 0 END", "a backslash", "escape"),
        ("metrics.pairs.sql", "SUM(sales.quantity) // 2", "integer division `//`", "FLOOR(a / b)"),
        ("dimensions.since_launch.sql", "sales.happened_at - TIMESTAMPTZ '2024-01-01 00:00:00+00'",
         "the literal TIMESTAMPTZ", "utc_instant('1997-09-30')"),
        ("dimensions.before_launch.sql", "sales.happened_at < TIMESTAMP '2024-01-01'", "the literal TIMESTAMP",
         "utc_instant"),
        # the macros' own arguments
        ("dimensions.late.sql", "sales.happened_at > utc_instant('next tuesday')",
         "utc_instant('next tuesday') takes one quoted date or date and time in UTC", "docs/engines.md"),
        ("metrics.span.sql", "MAX(seconds_between(sales.happened_at))", "seconds_between(earlier, later) takes two",
         "docs/engines.md"),
    ],
)
def test_an_engine_specific_expression_is_a_model_error_naming_file_field_and_function(
    small_store: Path, tmp_path: Path, field: str, sql: str, construct: str, hint: str
) -> None:
    section, name, _ = field.split(".")
    entry = {"sql": sql, "description": "A test field."} | ({"type": "number"} if section == "metrics" else {})
    folder = _with_model(small_store, tmp_path, {"name": "sales", section: {name: entry}})
    with pytest.raises(ModelSQLError) as caught:
        cql.connect(folder)
    error = caught.value
    assert error.message.startswith(f"model/custom.yaml: {field}: "), error.message
    assert construct in error.message
    assert hint in (error.hint or ""), error.hint
    assert error.render().startswith("model error: ")


def test_a_join_condition_is_checked_for_every_engine(small_store: Path, tmp_path: Path) -> None:
    document = {"name": "sales", "joins": {"twin": {"relation": "products",
                                                     "on": "sales.product_id = twin.product_id AND isodow(sales.happened_at) = 1"}}}
    with pytest.raises(ModelSQLError) as caught:
        cql.connect(_with_model(small_store, tmp_path, document))
    assert caught.value.message.startswith("model/custom.yaml: joins.twin.on: function isodow")


def test_the_portable_spellings_load_and_answer_like_hand_written_sql(small_store: Path, tmp_path: Path) -> None:
    document = {
        "name": "sales",
        "dimensions": {
            "quantity_label": {"sql": "CAST(sales.quantity AS STRING)", "description": "Quantity as text."},
            "sale_local_day": {"sql": "local_date(sales.happened_at)", "type": "date",
                               "description": "Store-local day of the sale."},
        },
        "metrics": {"units_over_two": {"sql": "count_if(sales.quantity > 2)", "type": "count", "additive": True,
                                       "description": "Sales rows of more than two units."}},
    }
    with cql.connect(_with_model(small_store, tmp_path, document)) as store:
        got = store.query("FROM sales SHOW units_over_two GROUP BY quantity_label SINCE 2023-01-01 UNTIL 2025-12-31")
        timezone = store.timezone
    expected = duckdb.sql(
        f"""
        SET TimeZone = 'UTC';
        SELECT CAST(quantity AS VARCHAR) AS quantity_label, count(*) FILTER (WHERE quantity > 2) AS units_over_two
        FROM read_parquet('{small_store / "sales.parquet"}')
        WHERE CAST(timezone('{timezone}', happened_at) AS DATE) BETWEEN DATE '2023-01-01' AND DATE '2025-12-31'
        GROUP BY 1
        """
    ).pl()
    joined = got.df.join(expected, on="quantity_label", how="full", coalesce=True)
    assert joined.height == expected.height > 1
    assert (joined["units_over_two"] == joined["units_over_two_right"]).all()


def test_every_builtin_expression_reads_alike_on_every_engine() -> None:
    """The built-in model (trusted, not re-checked at load) passes the same check; a new table
    file that does not is caught here."""
    checked = 0
    model = SemanticModel({})
    for path in sorted(BUILTIN_TABLES_DIR.glob("*.yaml")):
        model = model.extended(yaml.safe_load_all(path.read_text(encoding="utf-8")), origin=path.name, trusted=True)
    for table in model.tables.values():
        expressions = [(f"joins.{a}.on", j.on) for a, j in table.joins.items()]
        expressions += [(f"dimensions.{d}.sql", x.sql) for d, x in table.dimensions.items()]
        expressions += [(f"metrics.{m}.sql", x.sql) for m, x in table.metrics.items() if x.alias_of is None]
        for field, sql in expressions:
            check_portable(sql, where=f"{table.name}: {field}")
            checked += 1
    assert checked > 500


def test_durations_and_fixed_instants_load_and_answer_like_hand_written_sql(
    small_store: Path, tmp_path: Path
) -> None:
    """seconds_between / utc_instant: the portable spelling of DuckDB's epoch() differences and
    TIMESTAMPTZ literals (what the cdnow_sample mapping's metrics use)."""
    document = {
        "name": "sales",
        "metrics": {
            "days_after_cutoff": {
                "sql": "AVG(seconds_between(utc_instant('2024-06-30 12:00'), sales.happened_at)) / 86400.0",
                "type": "number", "description": "Mean days from 2024-06-30 12:00 UTC to each sale.",
            },
            "sales_after_cutoff": {
                "sql": "COUNT(*) FILTER (WHERE sales.happened_at >= utc_instant('2024-06-30 12:00:00'))",
                "type": "count", "description": "Sale rows at or after the cut-off.",
            },
        },
    }
    with cql.connect(_with_model(small_store, tmp_path, document)) as store:
        got = store.query("FROM sales SHOW days_after_cutoff, sales_after_cutoff GROUP BY sales_channel "
                          "SINCE 2023-01-01 UNTIL 2025-12-31").df
        timezone = store.timezone
    expected = duckdb.sql(
        f"""
        SET TimeZone = 'UTC';
        SELECT sales_channel,
               avg(epoch(happened_at) - epoch(TIMESTAMPTZ '2024-06-30 12:00:00+00')) / 86400.0 AS days_after_cutoff,
               count(*) FILTER (WHERE happened_at >= TIMESTAMPTZ '2024-06-30 12:00:00+00') AS sales_after_cutoff
        FROM read_parquet('{small_store / "sales.parquet"}')
        WHERE CAST(timezone('{timezone}', happened_at) AS DATE) BETWEEN DATE '2023-01-01' AND DATE '2025-12-31'
        GROUP BY 1
        """
    ).pl()
    joined = got.join(expected, on="sales_channel", how="full", coalesce=True)
    assert joined.height == expected.height > 1
    assert ((joined["days_after_cutoff"] - joined["days_after_cutoff_right"]).abs() < 1e-9).all()
    assert (joined["sales_after_cutoff"] == joined["sales_after_cutoff_right"]).all()
    assert (joined["sales_after_cutoff"] > 0).any()


def test_the_macros_expand_into_sql_each_engine_parses() -> None:
    import sqlglot

    for dialect in DIALECTS.values():
        expanded = dialect.expand_macros(
            "local_date(sales.happened_at) < local_timestamp(sales.happened_at) "
            "AND seconds_between(utc_instant('1997-09-30'), sales.happened_at) > 0", "UTC")
        assert not any(name in expanded for name in ("local_", "seconds_between", "utc_instant"))
        sqlglot.parse_one(expanded, read=dialect.name)
    assert {"local_date", "local_timestamp", "seconds_between", "utc_instant"} <= PORTABLE_FUNCTION_NAMES
