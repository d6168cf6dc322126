"""Write (or --check) docs/reference.md: every table, dimension, metric and segment of the built-in model.

Also docs/model.schema.json, the JSON Schema every model file is checked against
(`commerceql.model.schema.MODEL_SCHEMA`), for editors that complete and check YAML with a schema.

Generated from the model itself (`builtin_model()`, which reads commerceql/model/tables/*.yaml), so
the reference lists exactly the names a query can use, with their type and description, and a
test (tests/test_model_schema.py) fails when the committed file differs from what this writes.

    python docs/model_reference.py          # rewrite docs/reference.md and docs/model.schema.json
    python docs/model_reference.py --check  # exit 1 when either is out of date
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from metric_reference import FIRST, _cell

from commerceql.model.accounts import ACCOUNT_FIELDS, ACCOUNT_KINDS
from commerceql.model.accounts import field_name as account_field_name
from commerceql.model.accounts import field_sql as account_field_sql
from commerceql.model.schema import MODEL_SCHEMA
from commerceql.model.semantic import Dimension, SemanticModel, Table, builtin_model

DOC = Path(__file__).resolve().parent / "reference.md"
SCHEMA = Path(__file__).resolve().parent / "model.schema.json"

INTRODUCTION = """\
# Model reference

Every table of the built-in model with its dimensions, metrics and segments: the names `FROM`,
`SHOW`, `GROUP BY` and `WHERE` accept, with their type and what they mean. This file is written
by `python docs/model_reference.py` from the model (`commerceql/model/tables/*.yaml`); a test fails
when it differs from the model, so it cannot go stale. Do not edit it by hand.

Conventions and the reasoning behind each metric: [metrics.md](metrics.md). The per-customer and
per-company fields every table with an account gets: [accounts.md](accounts.md). Saved segments:
[segments.md](segments.md). A store's own metrics and dimensions (`STORE/model/*.yaml`, same format)
add to these; `commerceql schema` and `%schema` list a store's full model. Such files are checked
against the JSON Schema [model.schema.json](model.schema.json) when they load; an editor with a YAML
language server checks and completes them as you type with the first line
`# yaml-language-server: $schema=PATH/TO/docs/model.schema.json`.

Every table with a time column also groups by time grains (`GROUP BY day`, `week`, `month`, ...)
and takes date ranges (`SINCE`, `UNTIL`, `DURING`) on that column, in the store's time zone
([language.md](language.md)). Dimension types: `string`, `number`, `integer`, `boolean`, `date`,
`timestamp`, `money`, and `array` (test it with `CONTAINS`). Older names (from earlier ShopifyQL
versions) still work and are marked *older name*.
"""


def _account_dimension_names(table: Table) -> set[str]:
    """The dimensions the loader adds from `account_keys` (docs/accounts.md), not the table's own."""
    names = set()
    for kind, key_sql in table.account_keys.items():
        for account_field in ACCOUNT_FIELDS:
            name = account_field_name(account_field, kind, table.name)
            dimension = table.dimensions.get(name)
            if dimension is not None and dimension.sql == account_field_sql(account_field, kind, key_sql):
                names.add(name)
    return names


def _dimension_rows(dimensions: list[Dimension]) -> list[str]:
    rows = ["| dimension | type | description |\n", "|---|---|---|\n"]
    for dimension in dimensions:
        description = _cell(dimension.description)
        if dimension.deprecated:
            description += f" *Older name:* {_cell(dimension.deprecated)}."
        rows.append(f"| `{dimension.name}` | {dimension.type} | {description} |\n")
    return rows


def _table_section(table: Table) -> list[str]:
    out = [f"\n## `{table.name}`\n\n{_cell(table.description)}\n\n"]
    facts = [f"Relation `{table.relation}`"]
    facts.append(f"time column `{table.time_column}`" if table.time_column else "no time column")
    # The joins to the account facts come with `account_keys` and are listed with them.
    facts_joins = {facts for _, facts, _ in ACCOUNT_KINDS.values()}
    own_joins = [alias for alias in table.joins if alias not in facts_joins]
    if own_joins:
        facts.append("joins " + ", ".join(f"`{alias}`" for alias in own_joins))
    if table.account_keys:
        facts.append("accounts " + ", ".join(f"{kind} (`{sql}`)" for kind, sql in table.account_keys.items()))
    out.append("; ".join(facts) + ".\n")

    account_names = _account_dimension_names(table)
    own = [d for d in table.dimensions.values() if d.name not in account_names]
    out.append(f"\n### `{table.name}` dimensions ({len(own)})\n\n")
    out += _dimension_rows(own)
    if account_names:
        derived = [d for d in table.dimensions.values() if d.name in account_names]
        out.append(f"\n### `{table.name}` account dimensions ({len(derived)})\n\n"
                   "The state of the row's customer or company, as of the store's clock ([accounts.md](accounts.md)).\n\n")
        out += _dimension_rows(derived)

    out.append(f"\n### `{table.name}` metrics ({len(table.metrics)})\n\n"
               "| metric | type | additive | formula | description |\n|---|---|---|---|---|\n")
    for metric in table.metrics.values():
        if metric.alias_of:
            note = metric.deprecated or metric.description
            out.append(f"| `{metric.name}` | *older name* | | `{metric.alias_of}` | {_cell(note)} |\n")
            continue
        formula = _cell(metric.formula or "")
        if metric.across_time:
            formula += " (over every period of the query)"
        description = _cell(metric.description)
        if metric.deprecated:
            description += f" *Older name:* {_cell(metric.deprecated)}."
        out.append(f"| `{metric.name}` | {metric.type} | {'yes' if metric.additive else 'no'} | {formula} | "
                   f"{description} |\n")

    if table.segments:
        out.append(f"\n### `{table.name}` segments ({len(table.segments)})\n\n"
                   "| segment | condition | description |\n|---|---|---|\n")
        for segment in table.segments.values():
            out.append(f"| `{segment.name}` | `{_cell(segment.condition_text)}` | {_cell(segment.description)} |\n")

    if table.unavailable:
        out.append(f"\n### Shopify `{table.name}` fields without data ({len(table.unavailable)})\n\n"
                   "Refused with this reason.\n\n| field | why |\n|---|---|\n")
        for name, reason in table.unavailable.items():
            out.append(f"| `{name}` | {_cell(reason)} |\n")
    return out


def render(model: SemanticModel | None = None) -> str:
    model = model or builtin_model()
    names = [n for n in FIRST if n in model.tables] + sorted(n for n in model.tables if n not in FIRST)
    out = [INTRODUCTION, "\nTables: " + " · ".join(f"[`{name}`](#{name})" for name in names) + "\n"]
    for name in names:
        out += _table_section(model.tables[name])
    return "".join(out)


def render_schema() -> str:
    return json.dumps(MODEL_SCHEMA, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    outputs = {DOC: render(), SCHEMA: render_schema()}
    if "--check" in argv:
        stale = [path.name for path, new in outputs.items()
                 if not path.exists() or path.read_text(encoding="utf-8") != new]
        if stale:
            print(f"docs/{' and docs/'.join(stale)} out of date with the model; run python docs/model_reference.py",
                  file=sys.stderr)
            return 1
        return 0
    for path, new in outputs.items():
        path.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
