"""Start-up stays light (issue 15): what each entry point imports before it needs it, checked by
module names in fresh processes (never by time: CI is a busy machine), and that the fast paths
give the same answers as the slow ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "polars", "duckdb", "altair", "pyarrow", "pandas")


def loaded_after(code: str, modules: tuple[str, ...] = HEAVY, env: dict[str, str] | None = None) -> list[str]:
    """Which of `modules` a fresh interpreter has in sys.modules after running `code`."""
    script = f"import sys\n{code}\nimport json\nprint(json.dumps([m for m in {list(modules)!r} if m in sys.modules]))"
    process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT,
                             env={**os.environ, **(env or {})})
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1])


def test_building_the_cli_parser_imports_nothing_heavy() -> None:
    assert loaded_after("import commerceql.cli; commerceql.cli._build_parser()") == []


def test_help_prints_without_heavy_imports() -> None:
    code = ("import contextlib, io, commerceql.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    try:\n        commerceql.cli.main(['--help'])\n    except SystemExit:\n        pass\n"
            "assert 'usage: commerceql' in out.getvalue()")
    assert loaded_after(code) == []


@pytest.mark.parametrize("command", ["sample", "import", "query"])
def test_subcommand_help_without_heavy_imports(command: str) -> None:
    code = ("import contextlib, io, commerceql.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            f"    try:\n        commerceql.cli.main([{command!r}, '--help'])\n    except SystemExit:\n        pass\n"
            "assert 'examples:' in out.getvalue()")
    assert loaded_after(code) == []


def test_package_imports_are_light() -> None:
    assert loaded_after("import commerceql, commerceql.sample, commerceql.importers") == []


def test_a_query_on_the_current_sample_store_imports_no_generator(sample_store_path: Path) -> None:
    """ensure_default_store() only reads the manifest when the store is current (the generator
    and the importers' helpers load only to build it)."""
    modules = ("commerceql.sample.generator", "commerceql.importers.common", "commerceql.staging")
    code = ("import contextlib, io, commerceql.cli\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert commerceql.cli.main(['query', 'FROM sales SHOW net_sales DURING last_month']) == 0")
    assert loaded_after(code, modules, env={"COMMERCEQL_SAMPLE_STORE": str(sample_store_path)}) == []


def test_the_sample_defaults_agree_with_the_generator() -> None:
    from commerceql.sample import defaults, generator

    assert (defaults.GENERATOR_VERSION, defaults.FORMAT) == (generator.GENERATOR_VERSION, generator.FORMAT)


def test_lazy_package_exports_are_the_real_objects() -> None:
    import commerceql.importers as importers
    import commerceql.sample as sample
    from commerceql.importers import common
    from commerceql.sample import generator, store

    assert sample.generate_store is generator.generate_store
    assert sample.GENERATOR_VERSION == generator.GENERATOR_VERSION
    assert sample.TABLES is generator.TABLES
    assert sample.ensure_default_store is store.ensure_default_store
    assert sample.default_store_path is store.default_store_path
    assert sample.read_manifest is store.read_manifest
    assert importers.CommerceQLImportError is common.CommerceQLImportError
    assert importers.CommerceQLMappingError is common.CommerceQLMappingError
    assert importers.ImportReport is common.ImportReport
    for package in (sample, importers):
        assert set(package.__all__) <= set(dir(package))
        with pytest.raises(AttributeError):
            package.no_such_name  # noqa: B018


def test_the_sample_store_location_follows_its_environment_variable(tmp_path: Path, monkeypatch) -> None:
    """The light module the parser reads (commerceql.sample.defaults) decides where the store lives."""
    from commerceql.sample import defaults, store

    monkeypatch.setenv(defaults.ENV_VAR, str(tmp_path / "elsewhere"))
    assert store.default_store_path() == tmp_path / "elsewhere"


def yaml_files() -> list[Path]:
    """Every YAML file of the package and the repository's examples (built-in model, notebooks' models)."""
    found = {path for folder in ("commerceql", "examples", "notebooks", "tests") if (ROOT / folder).is_dir()
             for path in (ROOT / folder).rglob("*.yaml")}
    return sorted(found)


@pytest.mark.parametrize("path", yaml_files(), ids=lambda path: str(path.relative_to(ROOT)))
def test_the_fast_yaml_loader_reads_what_the_pure_loader_reads(path: Path) -> None:
    import yaml

    from commerceql.model.semantic import load_yaml_documents

    text = path.read_text(encoding="utf-8")
    try:
        expected = list(yaml.load_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        pytest.skip("deliberately broken YAML (covered by the error test)")
    assert load_yaml_documents(text) == expected
    # Same values and the same types (a date stays a date, 1.0 stays a float).
    assert repr(load_yaml_documents(text)) == repr(expected)


def test_the_builtin_model_is_the_same_with_either_loader(monkeypatch) -> None:
    import yaml

    from commerceql.model import semantic

    assert semantic._FAST_SAFE_LOADER is getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    fast = semantic.builtin_model()
    monkeypatch.setattr(semantic, "_FAST_SAFE_LOADER", yaml.SafeLoader)
    monkeypatch.setattr(semantic, "_BUILTIN", None)
    pure = semantic.builtin_model()
    assert pure is not fast
    assert pure == fast
    assert sorted(pure.tables) == sorted(fast.tables)
    for name, table in pure.tables.items():
        assert table == fast.tables[name], name


def test_a_broken_model_file_gets_the_pure_loaders_message(tmp_path: Path) -> None:
    import yaml

    from commerceql.errors import CommerceQLError
    from commerceql.model.semantic import _read_yaml

    text = "name: sales\nmetrics:\n  net_sales: {sql: 'sum(x)'\n  orders: 1\n"
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(yaml.YAMLError) as pure:
        list(yaml.load_all(text, Loader=yaml.SafeLoader))
    with pytest.raises(CommerceQLError) as raised:
        _read_yaml(path)
    assert str(pure.value) in raised.value.message
    assert "line 3" in raised.value.message


def test_the_first_query_does_not_import_pandas(sample_store_path: Path) -> None:
    """pyarrow's `to_pylist()` of a timezone-aware timestamp imports pandas: the data-range check
    (run on every store's first query) reads its row through Polars instead."""
    code = (f"import commerceql\nstore = commerceql.connect({str(sample_store_path)!r})\n"
            "result = store.query('FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month')\n"
            "assert result.df.height > 0 and store.data_range('sales') is not None")
    assert "pandas" not in loaded_after(code, ("pandas", "altair"))


def test_the_data_range_of_every_table_is_its_raw_first_and_last_instant(sample_store_path: Path) -> None:
    import datetime as dt

    import polars as pl
    from rawdata import raw

    import commerceql
    from commerceql.derived import DERIVED_RELATIONS

    checked = 0
    with commerceql.connect(sample_store_path) as store:
        for table in store.model.tables.values():
            if table.time_column is None or table.relation in DERIVED_RELATIONS:
                continue
            column = raw(sample_store_path, table.relation)[table.time_column]
            if isinstance(column.dtype, pl.Datetime) and column.dtype.time_zone is not None:
                column = column.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            first, last = column.min(), column.max()
            assert isinstance(first, dt.datetime) and isinstance(last, dt.datetime), table.name
            found = store.data_range(table)
            assert found is not None, table.name
            assert (found.first, found.last) == (first.replace(tzinfo=dt.UTC), last.replace(tzinfo=dt.UTC)), table.name
            assert found.rows == len(column), table.name
            checked += 1
    assert checked >= 5


def test_first_row_reads_timestamps_dates_and_counts_as_python_values() -> None:
    import datetime as dt

    import duckdb

    from commerceql.data_range import as_utc, first_row

    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'Asia/Tokyo'")
    relation = connection.sql("SELECT TIMESTAMPTZ '2024-03-01 08:30:00.123456+00' AS aware, "
                              "TIMESTAMP '2024-03-01 08:30:00' AS naive, DATE '2024-02-29' AS day, "
                              "NULL::TIMESTAMPTZ AS missing, 7::BIGINT AS row_count")
    fetch = getattr(relation, "to_arrow_table", None) or relation.arrow
    row = first_row(fetch())
    assert as_utc(row["aware"]) == dt.datetime(2024, 3, 1, 8, 30, 0, 123456, tzinfo=dt.UTC)
    assert row["naive"] == dt.datetime(2024, 3, 1, 8, 30)
    assert row["day"] == dt.date(2024, 2, 29)
    assert row["missing"] is None
    assert row["row_count"] == 7
    empty = connection.sql("SELECT 1 AS one WHERE false")
    with pytest.raises(IndexError):
        first_row((getattr(empty, "to_arrow_table", None) or empty.arrow)())


def test_the_schema_url_is_the_installed_altairs() -> None:
    import altair as alt

    from commerceql.charts import VEGA_LITE_SCHEMA_URL, VEGA_LITE_SCHEMA_VERSION

    assert VEGA_LITE_SCHEMA_URL == alt.SCHEMA_URL
    assert VEGA_LITE_SCHEMA_VERSION == alt.SCHEMA_VERSION


def test_a_charts_spec_is_built_and_saved_without_altair(sample_store_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "chart.json"
    code = (f"import commerceql\nstore = commerceql.connect({str(sample_store_path)!r})\n"
            "result = store.query('FROM sales SHOW net_sales TIMESERIES month DURING last_year VISUALIZE net_sales TYPE line')\n"
            f"assert result.vegalite_spec['mark'] or True\nresult.save_chart({str(target)!r})")
    assert loaded_after(code, ("altair",)) == []
    assert json.loads(target.read_text(encoding="utf-8"))["$schema"].startswith("https://vega.github.io/schema/vega-lite/")


CHART_QUERIES = [
    *(f"FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE {t}"
      for t in ("bar", "line", "horizontal_bar", "stacked_bar", "donut", "single_metric", "table", "area")),
    "FROM sales SHOW net_sales, orders TIMESERIES month DURING last_year COMPARE TO previous_year VISUALIZE net_sales TYPE line",
    "FROM sales SHOW net_sales, orders TIMESERIES month DURING last_year VISUALIZE net_sales TYPE bar, orders TYPE line",
    "FROM sales SHOW net_sales GROUP BY sales_channel TIMESERIES month DURING last_year VISUALIZE net_sales TYPE heatmap",
    "FROM sales SHOW net_sales TIMESERIES day DURING last_month VISUALIZE net_sales",
]


@pytest.mark.parametrize("query", CHART_QUERIES)
def test_the_spec_is_what_altair_wrote(sample_store_path: Path, query: str) -> None:
    """Building the spec without Altair changes nothing: it equals the Altair chart's own spec."""
    import commerceql
    from commerceql.charts import chart_to_vegalite

    with commerceql.connect(sample_store_path) as store:
        result = store.query(query)
        spec = result.vegalite_spec
        assert spec is not None
        chart = result.build_chart()  # an Altair object, built by Altair's from_dict
        assert chart_to_vegalite(chart) == spec
        assert chart_to_vegalite(result.chart) == spec


def test_the_kernels_warm_up_loads_the_charting_stack_but_opens_no_store() -> None:
    code = ("from commerceql_kernel.kernel import warm_up\nwarm_up()\n"
            "from commerceql.widget_export import _svg_text\nassert _svg_text.cache_info().currsize == 1\n"
            "assert 'commerceql.store' in sys.modules and 'ipywidgets' in sys.modules\n"
            "import gc\nfrom commerceql.store import Store\n"
            "assert not [o for o in gc.get_objects() if isinstance(o, Store)]")
    assert loaded_after(code, ("vl_convert", "duckdb", "altair")) == ["vl_convert", "duckdb"]


def test_a_kernel_chart_cell_does_not_import_altair(sample_store_path: Path) -> None:
    code = ("from commerceql_kernel.session import KernelSession\n"
            f"session = KernelSession(store_path={str(sample_store_path)!r})\nshown = []\n"
            "session.run_cell('FROM sales SHOW net_sales TIMESERIES month DURING last_year VISUALIZE net_sales TYPE line', "
            "shown.append)\n"
            "assert any('application/vnd.vegalite.v5+json' in output.data for output in shown)")
    assert loaded_after(code, ("altair",)) == []


def test_the_cli_saves_a_chart_without_altair(sample_store_path: Path, tmp_path: Path) -> None:
    target = tmp_path / "chart.json"
    code = ("import contextlib, io, commerceql.cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            "    status = commerceql.cli.main(['query', 'FROM sales SHOW net_sales TIMESERIES month DURING last_year "
            f"VISUALIZE net_sales TYPE line', '--data', {str(sample_store_path)!r}, '--chart', {str(target)!r}])\n"
            "assert status == 0, status")
    assert loaded_after(code, ("altair",)) == []
    assert json.loads(target.read_text(encoding="utf-8"))["mark"]


def test_a_query_on_the_built_in_model_does_not_import_sqlglot(sample_store_path: Path) -> None:
    """sqlglot checks untrusted (user) model SQL only; the built-in model is trusted, so a store
    without model files of its own never loads it."""
    code = (f"import commerceql\nstore = commerceql.connect({str(sample_store_path)!r})\n"
            "assert store.query('FROM sales SHOW net_sales DURING last_month').df.height == 1")
    assert "sqlglot" not in loaded_after(code, ("sqlglot",))
