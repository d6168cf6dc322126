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


def test_sample_defaults_agree_with_the_sample_store_module(tmp_path: Path, monkeypatch) -> None:
    """The parser's light copy of the defaults (commerceql.sample.defaults) is what the store uses."""
    from commerceql.sample import defaults, store

    for name in ("DEFAULT_ORDERS", "DEFAULT_YEARS", "DEFAULT_SEED", "ENV_VAR"):
        assert getattr(defaults, name) == getattr(store, name), name
    assert defaults.default_store_path() == store.default_store_path()
    monkeypatch.setenv(defaults.ENV_VAR, str(tmp_path / "elsewhere"))
    assert defaults.default_store_path() == store.default_store_path() == tmp_path / "elsewhere"


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
