"""The model's JSON Schema (commerceql/model/schema.py): every model document is checked when it
loads, and a violation names the file, the line and column, the field path and a hint; the
built-in model passes it and its descriptions read as whole sentences (issue 14, "Model text")."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from jsonschema.validators import Draft202012Validator
from rawdata import raw

import commerceql as cql
from commerceql.errors import CommerceQLDataError
from commerceql.model import semantic
from commerceql.model.schema import DIMENSION_TYPES, METRIC_TYPES, MODEL_SCHEMA, check_document
from commerceql.model.semantic import BUILTIN_TABLES_DIR, builtin_model, load_yaml_with_nodes

ROOT = Path(__file__).resolve().parents[1]


def _position(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    """1-based line and column of the `occurrence`-th `needle` in `text` (what an editor shows)."""
    index = -1
    for _ in range(occurrence + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def _load_error(tmp_path: Path, text: str, name: str = "custom.yaml") -> CommerceQLDataError:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CommerceQLDataError) as info:
        builtin_model().extended_from_files([path], relative_to=tmp_path)
    return info.value


def _assert_at(error: CommerceQLDataError, text: str, needle: str, field: str, occurrence: int = 0) -> None:
    line, column = _position(text, needle, occurrence)
    assert error.message.startswith(f"custom.yaml:{line}:{column}: {field}: "), error.message
    assert (error.line, error.column) == (line, column)
    # render() points at the offending text of the file, as a query error points into the query.
    rendered = error.render()
    assert f"{line} | {text.splitlines()[line - 1]}" in rendered
    assert "^" * len(needle) in rendered


# -- the schema itself -------------------------------------------------------------------------


def test_the_schema_is_a_valid_json_schema() -> None:
    Draft202012Validator.check_schema(MODEL_SCHEMA)
    json.dumps(MODEL_SCHEMA)  # plain data: it can be published as a .json file


def test_the_schema_knows_exactly_the_keys_the_loader_reads() -> None:
    assert set(MODEL_SCHEMA["properties"]) == semantic._TABLE_KEYS
    assert set(DIMENSION_TYPES) == semantic.DIMENSION_TYPES and set(METRIC_TYPES) == semantic.METRIC_TYPES


def _builtin_documents() -> list[tuple[Path, int, object, yaml.Node]]:
    found = []
    for path in sorted(BUILTIN_TABLES_DIR.glob("*.yaml")):
        for index, (document, node) in enumerate(load_yaml_with_nodes(path.read_text(encoding="utf-8"))):
            found.append((path, index, document, node))
    return found


@pytest.mark.parametrize(("path", "index", "document", "node"), _builtin_documents(),
                         ids=lambda value: value.name if isinstance(value, Path) else "")
def test_every_builtin_document_passes_the_schema(path: Path, index: int, document: object, node: yaml.Node) -> None:
    check_document(document, path.name, node=node)  # raises on the first problem


def test_a_query_on_the_built_in_model_does_not_import_jsonschema() -> None:
    """The built-in files are trusted and validated above, not by every process that starts."""
    code = ("import sys\nfrom commerceql.model.semantic import builtin_model\nbuiltin_model()\n"
            "print('jsonschema' in sys.modules)")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "False"


# -- descriptions read as sentences --------------------------------------------------------------


def sentence_problems(text: str) -> list[str]:
    """Why `text` does not read as a whole sentence (a text YAML cut at a comma fails these)."""
    problems = []
    depth = 0
    for character in text:
        depth += {"(": 1, ")": -1}.get(character, 0)
        if depth < 0:
            break
    if depth != 0:
        problems.append("unbalanced parenthesis")
    if text.count("`") % 2:
        problems.append("unbalanced backtick")
    if not re.search(r"[.!?]\)?$", text.strip()):
        problems.append("does not end a sentence")
    if not re.match(r"[A-Z0-9'\"`]", text):
        problems.append("does not start a sentence")
    return problems


def test_the_sentence_check_catches_a_description_cut_at_a_comma() -> None:
    cut = yaml.safe_load("{sql: x, description: Source that created the order (web, pos, draft order).}")
    assert cut["description"] == "Source that created the order (web"
    assert "unbalanced parenthesis" in sentence_problems(cut["description"])
    assert sentence_problems("Source that created the order (web, pos, draft order).") == []
    assert sentence_problems("Older name of is_reversal") == ["does not end a sentence"]
    assert sentence_problems("fulfilled or unfulfilled.") == ["does not start a sentence"]


def _builtin_descriptions() -> list[tuple[str, str]]:
    described = []
    for path, _, document, _ in _builtin_documents():
        assert isinstance(document, dict)
        table = document["name"]
        described.append((f"{path.name}: {table}", document["description"]))
        for section in ("dimensions", "metrics", "segments"):
            for name, entry in (document.get(section) or {}).items():
                if isinstance(entry, dict) and "description" in entry:
                    described.append((f"{path.name}: {section}.{name}", entry["description"]))
    return described


def test_every_builtin_description_reads_as_a_sentence() -> None:
    described = _builtin_descriptions()
    assert len(described) > 500
    bad = {where: (text, problems) for where, text in described if (problems := sentence_problems(text))}
    assert bad == {}


def test_every_model_field_has_a_description() -> None:
    """Also the fields the loader derives (account fields, older names): completion and the reference show them."""
    for table in builtin_model().tables.values():
        assert table.description, table.name
        for field in [*table.dimensions.values(), *table.metrics.values()]:
            assert field.description.strip(), f"{table.name}.{field.name}"


# -- a user's model file: each kind of problem, with file:line:column and hint -------------------

GOOD = """\
name: sales
metrics:
  discount_rate:
    sql: "-{discounts} / NULLIF({gross_sales}, 0)"
    type: percent
    description: Discounts as a share of gross sales.
"""


def test_a_misspelt_key_names_its_line_and_the_closest_key(tmp_path: Path) -> None:
    text = GOOD.replace("    description:", "    descripton:")
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "descripton", "metrics.discount_rate.descripton")
    assert "unknown key `descripton` in a metric" in error.message
    assert error.hint == "did you mean `description`?"


def test_a_misspelt_table_key_names_the_closest_table_key(tmp_path: Path) -> None:
    text = GOOD + "dimension:\n  code: {sql: sales.discount_code, description: Discount code.}\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "dimension", "dimension")
    assert error.hint == "did you mean `dimensions`?"


def test_a_value_of_the_wrong_type(tmp_path: Path) -> None:
    text = GOOD + "    additive: maybe\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "maybe", "metrics.discount_rate.additive")
    assert error.message.endswith("must be true or false, not text")


def test_an_entry_that_is_not_a_mapping(tmp_path: Path) -> None:
    text = GOOD + "  orders_placed: COUNT(*)\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "COUNT(*)", "metrics.orders_placed")
    assert "must be a mapping, not text" in error.message
    assert "sql:, type:, description:" in (error.hint or "")


def test_a_missing_description_points_at_the_entry(tmp_path: Path) -> None:
    text = GOOD + "dimensions:\n  is_discounted:\n    sql: sales.discount_code IS NOT NULL\n    type: boolean\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "is_discounted", "dimensions.is_discounted")
    assert error.message.endswith("a dimension needs `description`")
    assert "description:" in (error.hint or "")


def test_a_blank_description_is_missing_too(tmp_path: Path) -> None:
    text = GOOD.replace("description: Discounts as a share of gross sales.", 'description: "  "')
    error = _load_error(tmp_path, text)
    _assert_at(error, text, '"  "', "metrics.discount_rate.description")
    assert error.message.endswith("is blank")


@pytest.mark.parametrize(("written", "hint"), [("dollars", "use one of " + ", ".join(METRIC_TYPES)),
                                               ("percnt", "did you mean `percent`?")])
def test_a_bad_enum_value_lists_the_allowed_values(tmp_path: Path, written: str, hint: str) -> None:
    text = GOOD.replace("type: percent", f"type: {written}")
    error = _load_error(tmp_path, text)
    _assert_at(error, text, written, "metrics.discount_rate.type")
    assert f"`{written}` is not a metric type: use one of {', '.join(METRIC_TYPES)}" in error.message
    assert error.hint == hint


def test_a_dimension_type_lists_the_dimension_types(tmp_path: Path) -> None:
    text = GOOD + "dimensions:\n  code: {sql: sales.discount_code, type: text, description: Discount code.}\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "text", "dimensions.code.type", occurrence=0)
    assert f"use one of {', '.join(DIMENSION_TYPES)}" in error.message


def test_a_description_cut_at_a_comma_is_caught_with_the_reason(tmp_path: Path) -> None:
    """The issue's bug: in `{...}` an unquoted comma ends the text and the rest becomes keys."""
    text = GOOD + "dimensions:\n  code: {sql: sales.discount_code, description: Code of the order (a, b).}\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "b).", "dimensions.code.b).")
    assert "quotes" in (error.hint or "")


def test_a_bad_name_comes_before_what_its_entry_lacks(tmp_path: Path) -> None:
    text = "name: sales\nmetrics:\n  Profit:\n    sql: SUM(sales.profit)\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "Profit", "metrics.Profit")
    assert "metric name `Profit` must be lower_snake_case" in error.message


def test_the_first_problem_in_reading_order_is_reported(tmp_path: Path) -> None:
    text = GOOD.replace("type: percent", "type: ratio") + "dimensions:\n  code: {sql: x.y, typo: 1}\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "ratio", "metrics.discount_rate.type")


def test_join_keys_including_a_bare_on(tmp_path: Path) -> None:
    """YAML 1.1 reads `on:` as true; the schema still knows it as the join condition."""
    text = ("name: sales\njoins:\n  twin:\n    relation: products\n    on: sales.product_id = twin.product_id\n"
            "    relaton: products\n")
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "relaton", "joins.twin.relaton")
    assert error.hint == "did you mean `relation`?"
    text = "name: sales\njoins:\n  twin:\n    relation: products\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "twin", "joins.twin")
    assert error.message.endswith("a join needs `on`")


def test_account_kinds_and_segments(tmp_path: Path) -> None:
    text = "name: sales\naccount_keys:\n  custommer: sales.customer_id\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "custommer", "account_keys.custommer")
    assert error.hint == "did you mean `customer`?"
    text = "name: customers\nsegments:\n  big: {condition: amount_spent > 100, descripton: Big spenders.}\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "descripton", "segments.big.descripton")


def test_a_document_without_a_name(tmp_path: Path) -> None:
    text = "metrics:\n  x: {sql: COUNT(*), description: Rows.}\n"
    error = _load_error(tmp_path, text)
    assert error.message == "custom.yaml:1:1: a table needs `name`"
    assert "name: TABLE" in (error.hint or "")


def test_the_second_document_of_a_file_is_located_in_the_file(tmp_path: Path) -> None:
    text = GOOD + "---\nname: orders\nmetrics:\n  big_orders: {sql: COUNT(*), type: count, description: Big., extra: 1}\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "extra", "metrics.big_orders.extra")


def test_a_valid_user_file_loads_with_its_descriptions(tmp_path: Path) -> None:
    path = tmp_path / "custom.yaml"
    path.write_text(GOOD + "  older_rate:\n    alias_of: discount_rate\n    deprecated: use discount_rate\n",
                    encoding="utf-8")
    model = builtin_model().extended_from_files([path])
    assert model.tables["sales"].metrics["discount_rate"].description == "Discounts as a share of gross sales."
    assert model.tables["sales"].metric("older_rate").name == "discount_rate"


def test_an_older_name_has_no_definition_keys(tmp_path: Path) -> None:
    text = GOOD + "  older_rate:\n    alias_of: discount_rate\n    type: percent\n"
    error = _load_error(tmp_path, text)
    _assert_at(error, text, "type", "metrics.older_rate.type", occurrence=1)
    assert "alias_of" in (error.hint or "")


# -- every way a model arrives is checked alike -------------------------------------------------


def _store(sample_store_path: Path, tmp_path: Path, model_text: str | None) -> Path:
    """A store folder over the sample's files (linked, not copied), with `model/custom.yaml`."""
    folder = tmp_path / "store"
    folder.mkdir()
    manifest = json.loads((sample_store_path / "manifest.json").read_text(encoding="utf-8"))
    for file_name in manifest["tables"].values():
        (folder / file_name).parent.mkdir(parents=True, exist_ok=True)
        (folder / file_name).symlink_to(sample_store_path / file_name)
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if model_text is not None:
        (folder / "model").mkdir()
        (folder / "model" / "custom.yaml").write_text(model_text, encoding="utf-8")
    return folder


def test_a_store_model_file_is_validated_with_its_path_in_the_store(sample_store_path: Path, tmp_path: Path) -> None:
    text = GOOD.replace("    description:", "    descripton:")
    with pytest.raises(CommerceQLDataError) as info:
        cql.connect(_store(sample_store_path, tmp_path, text))
    line, column = _position(text, "descripton")
    assert info.value.message.startswith(f"model/custom.yaml:{line}:{column}: metrics.discount_rate.descripton: ")
    assert info.value.hint == "did you mean `description`?"


def test_a_model_extension_file_is_validated_the_same_way(sample_store_path: Path, tmp_path: Path) -> None:
    text = GOOD.replace("type: percent", "type: dollars")
    extension = tmp_path / "extension.yaml"
    extension.write_text(text, encoding="utf-8")
    line, column = _position(text, "dollars")
    with pytest.raises(CommerceQLDataError) as info:
        cql.connect(sample_store_path, model=[extension])
    assert info.value.message.startswith(f"{extension}:{line}:{column}: metrics.discount_rate.type: ")
    with cql.connect(sample_store_path) as store, pytest.raises(CommerceQLDataError) as info:
        store.extend_model([extension])
    assert info.value.message.startswith(f"{extension}:{line}:{column}: metrics.discount_rate.type: ")


def test_a_valid_store_model_answers(sample_store_path: Path, tmp_path: Path) -> None:
    with cql.connect(_store(sample_store_path, tmp_path, GOOD)) as store:
        got = store.query("FROM sales SHOW discount_rate").df["discount_rate"][0]
    sales = raw(sample_store_path, "sales")
    totals = sales.select(pl.col("discounts", "gross_sales").cast(pl.Float64).sum())
    expected = -totals["discounts"][0] / totals["gross_sales"][0]
    assert float(got) == pytest.approx(float(expected), rel=1e-9)


def test_documents_without_a_file_name_the_field_and_table() -> None:
    """An import mapping's `[model]` section (TOML: no line marks) and Python-built documents."""
    document = {"name": "sales", "metrics": {"profit": {"sql": "SUM(sales.profit)", "type": "money"}}}
    with pytest.raises(CommerceQLDataError) as info:
        builtin_model().extended([document], origin="mapping [model]")
    assert info.value.message == "mapping [model] (table `sales`): metrics.profit: a metric needs `description`"
    assert info.value.span is None


# -- the generated reference (docs/reference.md) -------------------------------------------------


def test_the_model_reference_is_current() -> None:
    process = subprocess.run([sys.executable, str(ROOT / "docs" / "model_reference.py"), "--check"],
                             capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert process.returncode == 0, process.stderr


def test_the_model_reference_lists_every_table_dimension_metric_and_segment() -> None:
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        from model_reference import render
    finally:
        sys.path.remove(str(ROOT / "docs"))
    document = {"name": "customers", "segments": {"big_spenders": {"condition": "amount_spent > 1000",
                                                                   "description": "Customers who spent over 1,000."}}}
    model = builtin_model().extended([document], origin="test")
    text = render(model)
    for table in model.tables.values():
        assert f"\n## `{table.name}`\n" in text
        for name in [*table.dimensions, *table.metrics, *table.unavailable]:
            assert f"| `{name}` |" in text, f"{table.name}.{name}"
    assert "| `big_spenders` | `amount_spent > 1000` | Customers who spent over 1,000. |" in text


def test_the_checks_after_the_schema_point_into_the_file_too(sample_store_path: Path, tmp_path: Path) -> None:
    """Unsafe SQL keeps its message (docs/security.md quotes it) and render() shows the file's line."""
    from commerceql.model.sql_guard import ModelSQLError

    text = GOOD.replace('"-{discounts} / NULLIF({gross_sales}, 0)"', "SUM(LENGTH(read_text('/etc/passwd')))")
    with pytest.raises(ModelSQLError) as info:
        cql.connect(_store(sample_store_path, tmp_path, text))
    assert info.value.message.startswith("model/custom.yaml: metrics.discount_rate.sql: function read_text")
    line, column = _position(text, "SUM(LENGTH")
    assert (info.value.line, info.value.column) == (line, column)
    assert f"{line} | {text.splitlines()[line - 1]}" in info.value.render()


def test_a_document_node_without_its_text_names_the_line_in_the_message_only() -> None:
    text = GOOD.replace("type: percent", "type: ratio")
    (document, node), = load_yaml_with_nodes(text)
    with pytest.raises(CommerceQLDataError) as info:
        builtin_model().extended([document], origin="custom.yaml", nodes=[node])
    line, column = _position(text, "ratio")
    assert info.value.message.startswith(f"custom.yaml:{line}:{column}: metrics.discount_rate.type: ")
    assert info.value.span is None and info.value.source is None


def test_the_format_checker_modules_kept_out_of_jsonschemas_import_still_import() -> None:
    """schema._validator keeps slow optional modules away while jsonschema loads; afterwards they import normally."""
    code = ("import importlib, importlib.util, sys\n"
            "from commerceql.model.schema import _FORMAT_CHECKER_MODULES, _validator\n"
            "_validator()\n"
            "assert all(sys.modules.get(m, True) is not None for m in _FORMAT_CHECKER_MODULES)\n"
            "present = [m for m in _FORMAT_CHECKER_MODULES if importlib.util.find_spec(m) is not None]\n"
            "for m in present:\n    importlib.import_module(m)\n"
            "from jsonschema import validate\n"
            "validate({'a': 1}, {'properties': {'a': {'type': 'integer'}}})\n"
            "print(len(present))")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip().isdigit()


@pytest.mark.parametrize("path", sorted(BUILTIN_TABLES_DIR.glob("*.yaml")), ids=lambda path: path.name)
def test_reading_with_nodes_gives_the_values_safe_load_gives(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    loaded = load_yaml_with_nodes(text)
    assert [document for document, _ in loaded] == list(yaml.safe_load_all(text))
    assert all(isinstance(node, yaml.MappingNode) for _, node in loaded)
