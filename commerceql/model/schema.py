"""The JSON Schema of a model document, and the check that turns a violation into a model error.

A model document is one table of `commerceql/model/tables/*.yaml`, of a user's model file or of a
store's `model/*.yaml` (an import mapping's `[model]` section becomes one too). `MODEL_SCHEMA`
says which keys each part may have, of which type, and which are required; unknown keys are
refused (`additionalProperties: false`), so a misspelt key or the tail of a description YAML cut
at a comma is an error instead of being dropped without a word.

`check_document` validates one document with `jsonschema` and raises a `CommerceQLDataError` for
the first problem in reading order, which names the file, the line and column of the offending
key or value (from the YAML node marks, when the document came from a file), the field path
(`metrics.net_sales.type`) and a hint: the closest valid key for a misspelt one, the allowed values
for an enum. What a schema cannot say (a metric's SQL is safe, an `alias_of` target exists, a
segment's condition parses) is checked afterwards by `commerceql.model.semantic`.

Only untrusted (user) documents are checked when they load. The built-in files are validated by
the test suite (tests/test_model_schema.py) instead: checking them (~0.2 s) and importing jsonschema
(~0.1 s) is time a query on the built-in model should not pay (as with sqlglot, see
semantic.check_expression).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from commerceql.ast import Span
from commerceql.errors import CommerceQLDataError, did_you_mean
from commerceql.model.accounts import ACCOUNT_KINDS

if TYPE_CHECKING:
    import jsonschema
    import yaml

NAME_PATTERN = r"^[a-z_][a-z0-9_]*$"
RELATION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
DIMENSION_TYPES = ("string", "number", "integer", "boolean", "date", "timestamp", "array", "money")
METRIC_TYPES = ("money", "percent", "count", "number", "duration")

# `x-says` (an annotation jsonschema ignores) is how a message words a failed `pattern`.
_NAME: dict[str, Any] = {"type": "string", "pattern": NAME_PATTERN,
                         "x-says": "lower_snake_case (a-z, 0-9 and _, not starting with a digit)"}
_SENTENCE: dict[str, Any] = {"type": "string", "pattern": r"\S", "x-says": "a sentence, not blank"}
_TEXT: dict[str, Any] = {"type": ["string", "null"]}
_FLAG: dict[str, Any] = {"type": "boolean"}
_SQL: dict[str, Any] = {"type": "string", "pattern": r"\S", "x-says": "an SQL expression, not blank"}
_OVERRIDE: dict[str, Any] = {"type": "boolean", "description": "replace an existing entry on purpose"}


def _section(entry: Mapping[str, Any], names: Mapping[str, Any] = _NAME) -> dict[str, Any]:
    """A mapping of name -> entry (`metrics:`, `dimensions:` ...); empty (`metrics:` alone) is allowed."""
    return {"type": ["object", "null"], "propertyNames": dict(names), "additionalProperties": dict(entry)}


_DIMENSION: dict[str, Any] = {
    "title": "dimension",
    "type": "object",
    "properties": {
        "sql": _SQL | {"description": "SQL over the table's alias and its joins' aliases (sales.discount_code)"},
        "type": {"enum": list(DIMENSION_TYPES), "default": "string"},
        "description": _SENTENCE | {"description": "one sentence saying what the dimension is"},
        "deprecated": _TEXT | {"description": "an older name: what to write instead"},
        "override": _OVERRIDE,
    },
    "required": ["sql", "description"],
    "additionalProperties": False,
}

_METRIC_ALIAS: dict[str, Any] = {
    "title": "metric alias",
    "properties": {
        "alias_of": _NAME | {"description": "the metric this older name stands for"},
        "description": _SENTENCE,
        "deprecated": _TEXT | {"description": "what to write instead"},
        "override": _OVERRIDE,
    },
    "additionalProperties": False,
}

_METRIC_DEFINITION: dict[str, Any] = {
    "title": "metric",
    "properties": {
        "sql": _SQL | {"description": "an aggregate over the table's rows; {other_metric} inlines another metric"},
        "type": {"enum": list(METRIC_TYPES), "default": "number"},
        "description": _SENTENCE | {"description": "one sentence saying what the metric measures"},
        "formula": _TEXT | {"description": "the definition in words or symbols, shown by docs and inspection"},
        "additive": _FLAG | {"description": "may be summed across rows (totals, running totals, Other rows)"},
        "across_time": _FLAG | {"description": "evaluated over every period of the query, repeated on each row"},
        "deprecated": _TEXT | {"description": "an older name: what to write instead"},
        "override": _OVERRIDE,
    },
    "required": ["sql", "description"],
    "additionalProperties": False,
}

_METRIC: dict[str, Any] = {
    "title": "metric",
    "type": "object",
    # An older name (`alias_of:`) has none of a definition's keys, and needs none of them.
    "if": {"required": ["alias_of"]},
    "then": _METRIC_ALIAS,
    "else": _METRIC_DEFINITION,
}

_JOIN: dict[str, Any] = {
    "title": "join",
    "type": "object",
    "properties": {
        "relation": {"type": "string", "pattern": RELATION_PATTERN, "x-says": "a table of the store (letters, digits, _)"},
        "on": _SQL | {"description": "the join condition (sales.product_id = products.product_id)"},
        "override": _OVERRIDE,
    },
    "required": ["relation", "on"],
    "additionalProperties": False,
}

_SEGMENT: dict[str, Any] = {
    "title": "segment",
    # `name: "condition"` is short for `name: {condition: "condition"}`.
    "type": ["string", "object"],
    "properties": {"condition": _SQL | {"x-says": "a condition, not blank"}, "description": _TEXT,
                   "override": _OVERRIDE},
    "required": ["condition"],
    "additionalProperties": False,
}

MODEL_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "table",
    "description": "One table of the CommerceQL semantic model (docs/data-model.md, docs/reference.md).",
    "type": "object",
    "properties": {
        "name": _NAME | {"description": "the name used in FROM; an existing table's name extends it"},
        "description": _SENTENCE | {"description": "what one row of the table is"},
        "relation": _JOIN["properties"]["relation"] | {"description": "the store table or view the rows come from"},
        "time_column": {"type": ["string", "null"],
                        "description": "the timestamp column time grains and date ranges use"},
        "override": _OVERRIDE,
        "joins": _section(_JOIN),
        "account_keys": _section({"type": "string", "pattern": r"\S", "x-says": "the SQL of the account's id column"},
                                 names={"enum": list(ACCOUNT_KINDS)}),
        "dimensions": _section(_DIMENSION),
        "metrics": _section(_METRIC),
        "segments": _section(_SEGMENT),
        "unavailable": _section({"type": "string"}, names={"type": "string"}),
    },
    "required": ["name"],
    "additionalProperties": False,
}

# What the entries of each section are called in messages.
_ENTRY_KIND = {"metrics": "metric", "dimensions": "dimension", "joins": "join", "segments": "segment",
               "account_keys": "account key", "unavailable": "unavailable field"}
_SECTION_NAME_KIND = {"metrics": "metric name", "dimensions": "dimension name", "joins": "join alias",
                      "segments": "segment name", "account_keys": "account kind", "unavailable": "field name"}
_TYPE_WORDS = {"string": "text", "boolean": "true or false", "object": "a mapping", "array": "a list",
               "null": "empty", "integer": "a whole number", "number": "a number"}
_REQUIRED_HINTS = {
    "name": "start the document with `name: TABLE` (an existing table to extend it, a new name to add one)",
    "description": "add `description:`, one sentence saying what it is (completion, %schema and docs show it)",
    "sql": "add `sql:`, the SQL over the table's alias and its joins' aliases",
    "relation": "add `relation:`, the store table the join reads",
    "on": "add `on:`, the join condition (for example: sales.product_id = products.product_id)",
    "condition": "for example: condition: company_industry = 'OEM' AND amount_spent > 250000",
}
# Among problems of one mapping: a bad name first, then a misspelt key (which often explains a
# missing one), then wrong values, then what is missing.
_RANK = {"name": 0, "unknown": 1, "type": 2, "value": 3, "required": 4}


# The optional modules jsonschema's format checkers import when it loads (jsonschema/_format.py).
_FORMAT_CHECKER_MODULES = ("fqdn", "idna", "rfc3987", "rfc3986_validator", "rfc3987_syntax", "rfc3339_validator",
                           "webcolors", "jsonpointer", "uri_template", "isoduration")


@cache
def _validator() -> jsonschema.protocols.Validator:
    """The schema's validator, built on first use (only a user model needs it)."""
    # Importing jsonschema imports every format checker that is installed, and with Jupyter's
    # dependencies that is slow: rfc3987_syntax compiles an Earley grammar (~1.4 s), isoduration
    # imports arrow (~0.1 s). The model schema uses no `format`, so when this is the first import of
    # jsonschema those modules are kept out while it loads (jsonschema skips a checker whose module
    # fails to import); the entries are removed again, so a later `import idna` works as usual. Only
    # jsonschema's FormatChecker in this process lacks those formats.
    blocked = [] if "jsonschema" in sys.modules else [m for m in _FORMAT_CHECKER_MODULES if m not in sys.modules]
    for module in blocked:
        sys.modules[module] = None  # type: ignore[assignment]  # makes `import module` fail
    try:
        from jsonschema.validators import Draft202012Validator
    finally:
        for module in blocked:
            if sys.modules.get(module, False) is None:
                del sys.modules[module]
    return Draft202012Validator(MODEL_SCHEMA)


@dataclass(frozen=True)
class _Problem:
    owner: tuple[Any, ...]  # the mapping the problem is about (for reading order)
    path: tuple[Any, ...]  # the offending key or value
    at_key: bool  # point at the key of `path` (a name, an unknown key, a missing entry) or at its value
    rank: int
    message: str
    hint: str | None


def check_document(
    document: Mapping[Any, Any], origin: str, *, node: yaml.Node | None = None, source: str | None = None
) -> None:
    """Raise a CommerceQLDataError for the first way `document` breaks MODEL_SCHEMA, if any.

    `node` is the document's YAML node (its marks give line and column) and `source` the file's text
    (for the caret in `render()`); without them the message names the field path only.
    """
    instance = _normalized(document)
    errors = list(_validator().iter_errors(instance))
    if not errors:
        return
    order = _reading_order(instance)

    def reading_position(problem: _Problem) -> tuple[float, int, float]:
        return (order.get(problem.owner, math.inf), problem.rank, order.get(problem.path, math.inf))

    problem = min((p for error in errors for p in _problems(error)), key=reading_position)
    raise _model_error(problem, instance, origin, node, source)


def _normalized(document: Mapping[Any, Any]) -> dict[Any, Any]:
    """The document as the schema reads it: YAML 1.1 reads a bare `on:` key as true (joins)."""
    instance = dict(document)
    joins = instance.get("joins")
    if isinstance(joins, Mapping):
        instance["joins"] = {
            alias: ({("on" if key is True else key): value for key, value in spec.items()}
                    if isinstance(spec, Mapping) else spec)
            for alias, spec in joins.items()
        }
    return instance


def _reading_order(value: Any, path: tuple[Any, ...] = (), order: dict[tuple[Any, ...], int] | None = None
                   ) -> dict[tuple[Any, ...], int]:
    """Each key path of the document, numbered in the order a reader meets it."""
    order = {} if order is None else order
    order[path] = len(order)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _reading_order(item, (*path, key), order)
    return order


def _problems(error: jsonschema.ValidationError) -> Iterator[_Problem]:
    path = tuple(error.absolute_path)
    keyword = error.validator
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if "propertyNames" in error.relative_schema_path:
        # A name in a section (error.instance is the name itself; the path is the section's).
        name = error.instance
        kind = _SECTION_NAME_KIND.get(str(path[-1]) if path else "", "name")
        if keyword == "enum":
            allowed = list(error.validator_value)
            hint = did_you_mean(str(name), allowed) or f"use {' or '.join(allowed)}"
            message = f"unknown {kind} `{name}`; use {' or '.join(allowed)}"
        elif keyword == "type":
            message, hint = f"{kind} {name!r} must be text, not {_type_name(name)}", "quote it"
        else:
            message, hint = f"{kind} `{name}` must be {schema.get('x-says', 'valid')}", None
        yield _Problem(path, (*path, name), True, _RANK["name"], message, hint)
    elif keyword == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        what = schema.get("title") or "entry"
        for key in error.instance:
            if key in allowed:
                continue
            hint = did_you_mean(str(key), allowed)
            if hint is None and error.instance[key] is None:
                # `{description: Code (a, b).}`: in a flow mapping a comma ends the text, and the
                # rest becomes keys without values.
                hint = "a comma ends unquoted text inside { }: put the text before it in quotes"
            elif hint is None:
                hint = (f"an older name (alias_of:) has only {', '.join(allowed)}" if what == "metric alias"
                        else f"a {what} has {', '.join(allowed)}")
            yield _Problem(path, (*path, key), True, _RANK["unknown"], f"unknown key `{key}` in a {what}", hint)
    elif keyword == "required":
        what = schema.get("title") or "entry"
        for key in error.validator_value:
            if isinstance(error.instance, Mapping) and key not in error.instance:
                yield _Problem(path, path, True, _RANK["required"], f"a {what} needs `{key}`", _REQUIRED_HINTS.get(key))
    elif keyword == "type":
        expected = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        words = " or ".join(_TYPE_WORDS.get(t, t) for t in expected if t != "null")
        hint = None
        if "object" in expected and len(path) == 2 and path[0] in _ENTRY_KIND:
            hint = f"a {_ENTRY_KIND[path[0]]} is a mapping (sql:, type:, description: ...)"
        yield _Problem(path[:-1], path, False, _RANK["type"], f"must be {words}, not {_type_name(error.instance)}",
                       hint)
    elif keyword == "enum":
        allowed = [str(value) for value in error.validator_value]
        kind = f"{_ENTRY_KIND.get(str(path[0]), 'table')} {path[-1]}" if path else "value"
        hint = did_you_mean(str(error.instance), allowed) or f"use one of {', '.join(allowed)}"
        yield _Problem(path[:-1], path, False, _RANK["value"],
                       f"`{error.instance}` is not a {kind}: use one of {', '.join(allowed)}", hint)
    elif keyword == "pattern":
        says = schema.get("x-says", f"text matching {error.validator_value}")
        message = "is blank" if not str(error.instance).strip() else f"`{error.instance}` must be {says}"
        yield _Problem(path[:-1], path, False, _RANK["value"], message, f"write {says}")
    else:  # a keyword this module does not word yet: jsonschema's own message
        yield _Problem(path[:-1], path, False, _RANK["value"], error.message, None)


def _model_error(
    problem: _Problem, instance: Mapping[Any, Any], origin: str, node: yaml.Node | None, source: str | None
) -> CommerceQLDataError:
    field_path = ".".join(str(part) for part in problem.path)
    span = span_in_yaml(node, problem.path, problem.at_key) if node is not None else None
    if span is not None:
        where = f"{origin}:{span.line}:{span.column}"
    else:
        name = instance.get("name")
        where = f"{origin} (table `{name}`)" if isinstance(name, str) else origin
    text = f"{where}: {field_path}: {problem.message}" if field_path else f"{where}: {problem.message}"
    # The error carries the span only with the file's text: a surface attaches the query's text to
    # an error that has none (with_source), and the caret would then point into the query.
    located = span is not None and source is not None
    return CommerceQLDataError(text, hint=problem.hint, span=span if located else None,
                               source=source if located else None)


def span_in_yaml(node: yaml.Node, path: Sequence[Any], at_key: bool) -> Span | None:
    """Where `path` is in the YAML: its key (or the document start for the root), or its value."""
    import yaml

    current: yaml.Node = node
    key_node: yaml.Node | None = None
    for part in path:
        if not isinstance(current, yaml.MappingNode):
            break
        for candidate_key, candidate_value in current.value:
            if _same_key(candidate_key, part):
                key_node, current = candidate_key, candidate_value
                break
        else:
            break
    target = key_node if at_key and key_node is not None else current
    start, end = target.start_mark, target.end_mark
    if start is None:
        return None
    if end is None or end.line != start.line:
        end = start
    return Span(line=start.line + 1, column=start.column + 1, end_line=end.line + 1, end_column=end.column + 1,
                start_pos=start.index, end_pos=end.index)


def _same_key(key_node: yaml.Node, key: Any) -> bool:
    text = getattr(key_node, "value", None)
    if not isinstance(text, str):
        return False
    if key == "on" or key is True:  # `on:` read as a boolean (see _normalized)
        return text.lower() in ("on", "true", "yes", "y")
    return text == str(key)


def _type_name(value: object) -> str:
    if value is None:
        return "empty"
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean",
            dict: "a mapping"}.get(type(value), type(value).__name__)
