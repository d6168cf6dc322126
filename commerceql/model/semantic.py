"""The semantic model: which tables, metrics and dimensions exist, as declarative data.

Each table is one YAML file (built-ins in `commerceql/model/tables/`). A user extends the model
with files of the same format: a file naming an existing table adds or replaces metrics and
dimensions of that table; a file naming a new table adds it. Format:

    name: sales                      # the name used in FROM
    description: One row per sales event ...
    relation: sales                  # the physical table or view in the store
    time_column: happened_at         # TIMESTAMPTZ that time grains and date ranges use
    joins:                           # optional; joined only when a used field needs them
      products:
        relation: products
        on: sales.product_id = products.product_id
    dimensions:
      product_title:
        sql: products.title          # SQL over the base alias (= name) and join aliases
        type: string                 # string | number | integer | boolean | date | timestamp | array | money
        description: Current title of the product.
    metrics:
      gross_sales:
        sql: SUM(sales.gross_sales)  # an aggregate; `{other_metric}` inlines another metric
        type: money                  # money | percent | count | number | duration
        additive: true               # may be summed across rows (running totals, Other rows)
        description: Selling price times quantity, before discounts and reversals.
      returns:
        alias_of: sales_reversals    # an accepted older name
        deprecated: renamed `sales_reversals` in ShopifyQL 2026-04
      net_sales:
        override: true               # replacing an existing metric must be said out loud
        sql: SUM(sales.net_sales) - SUM(sales.taxes)
        type: money
        description: Net sales less the taxes booked with them.

Only the built-in files are trusted. A store's `model/*.yaml` may come from anyone, so every
`sql:` and join `on:` of a user document must be one expression over the table's own alias and
its joins' aliases, checked by `commerceql.model.sql_guard` (no table functions, subqueries,
statements or comments). Replacing an existing metric, dimension or join, or changing a table's
`relation` / `time_column`, needs `override: true` (on the entry, or at the top of the document
for table settings) and raises a ModelOverrideWarning. User query text never reaches SQL except
as bound parameters, and identifiers in compiled SQL come only from here. See docs/security.md.

Every user document is first checked against the model's JSON Schema (`MODEL_SCHEMA` in
`commerceql.model.schema`): unknown keys, a metric or dimension without `description`, values of the
wrong type are model errors naming the file, line and column. docs/reference.md, generated from
the model, lists every table, dimension, metric and segment.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from commerceql import ast
from commerceql.errors import CommerceQLDataError, CommerceQLError, did_you_mean
from commerceql.model.accounts import ACCOUNT_FIELDS, ACCOUNT_KINDS
from commerceql.model.accounts import field_name as account_field_name
from commerceql.model.accounts import field_sql as account_field_sql
from commerceql.model.accounts import join_on as account_join_on
from commerceql.model.schema import DIMENSION_TYPES as _DIMENSION_TYPE_NAMES
from commerceql.model.schema import METRIC_TYPES as _METRIC_TYPE_NAMES
from commerceql.model.schema import check_document, span_in_yaml


def check_expression(sql: str, **checks: Any) -> None:
    """`sql_guard.check_expression`, imported on first use: only untrusted (user) model SQL is
    checked, so a process that reads the built-in model alone never loads sqlglot."""
    from commerceql.model.sql_guard import check_expression as check

    check(sql, **checks)


BUILTIN_TABLES_DIR = Path(__file__).parent / "tables"

DIMENSION_TYPES = frozenset(_DIMENSION_TYPE_NAMES)
METRIC_TYPES = frozenset(_METRIC_TYPE_NAMES)

_METRIC_REFERENCE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYSTEM_PREFIXES = ("duckdb_", "pragma_", "sqlite_", "pg_", "information_schema")
_TABLE_KEYS = frozenset(
    {"name", "description", "relation", "time_column", "joins", "dimensions", "metrics", "override", "account_keys",
     "segments", "unavailable"}
)


@dataclass(frozen=True)
class Dimension:
    name: str
    sql: str
    type: str
    description: str
    deprecated: str | None = None  # an older name kept working; the resolver says what to write


@dataclass(frozen=True)
class Metric:
    name: str
    sql: str
    type: str
    description: str
    additive: bool = False
    alias_of: str | None = None
    deprecated: str | None = None
    formula: str | None = None  # human-readable definition, shown by inspection and docs
    # Evaluated over every period of the query (the time grain collapsed) and repeated on each row:
    # Shopify's cohort `_totals` metrics, "all cohorts" next to each cohort.
    across_time: bool = False


@dataclass(frozen=True)
class Segment:
    """A saved customer or company condition (docs/segments.md), usable on every table of that account."""

    name: str
    kind: str  # "customer" | "company"
    table: str  # the account's own table (customers, companies), where the condition's names live
    condition_text: str
    condition: ast.Condition
    description: str
    origin: str  # file and field, for messages


SEGMENT_MACRO = "in_segment"


@dataclass(frozen=True)
class Join:
    alias: str
    relation: str
    on: str


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    relation: str
    time_column: str | None
    joins: Mapping[str, Join] = field(default_factory=dict)
    dimensions: Mapping[str, Dimension] = field(default_factory=dict)
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    # Account kind (customer, company) -> SQL of the column naming the row's account.
    account_keys: Mapping[str, str] = field(default_factory=dict)
    # Segments defined on this (account) table, by name.
    segments: Mapping[str, Segment] = field(default_factory=dict)
    # Shopify field names this table knows but has no data for, with the reason (refused clearly).
    unavailable: Mapping[str, str] = field(default_factory=dict)

    def metric(self, name: str) -> Metric | None:
        """The metric called `name`, following `alias_of` to the metric it stands for."""
        metric = self.metrics.get(name)
        seen: set[str] = set()
        while metric is not None and metric.alias_of is not None and metric.name not in seen:
            seen.add(metric.name)
            metric = self.metrics.get(metric.alias_of)
        return metric

    def metric_sql(self, name: str) -> str:
        """The metric's aggregate SQL with every `{other_metric}` reference inlined."""
        return self._expand(name, ())

    def _expand(self, name: str, stack: tuple[str, ...]) -> str:
        if name in stack:
            raise CommerceQLDataError(
                f"metric `{name}` of table `{self.name}` refers to itself through {' -> '.join(stack)}"
            )
        metric = self.metric(name)
        if metric is None:
            raise CommerceQLDataError(f"metric `{name}` is referenced but not defined in table `{self.name}`")

        def substitute(match: re.Match[str]) -> str:
            return f"({self._expand(match.group(1), (*stack, name))})"

        return _METRIC_REFERENCE.sub(substitute, metric.sql)

    def joins_needed(self, sql_fragments: Iterable[str]) -> list[Join]:
        """The joins whose alias the given SQL fragments mention, in declaration order."""
        text = " ".join(sql_fragments)
        needed = []
        for alias, join in self.joins.items():
            if re.search(rf"\b{re.escape(alias)}\.", text):
                needed.append(join)
        # A join's ON clause may itself mention another join (customers -> companies).
        changed = True
        while changed:
            changed = False
            on_text = " ".join(j.on for j in needed)
            for alias, join in self.joins.items():
                if join not in needed and re.search(rf"\b{re.escape(alias)}\.", on_text):
                    needed.append(join)
                    changed = True
        order = list(self.joins)
        return sorted(needed, key=lambda j: order.index(j.alias))


@dataclass(frozen=True)
class SemanticModel:
    tables: Mapping[str, Table]

    def table(self, name: str) -> Table | None:
        return self.tables.get(name)

    def extended(
        self,
        documents: Iterable[Mapping[str, Any]],
        origin: str = "<user model>",
        *,
        trusted: bool = False,
        nodes: Sequence[yaml.Node] | None = None,
        source: str | None = None,
    ) -> SemanticModel:
        """A new model with user documents merged in (new tables, or fields added to existing ones).

        Untrusted documents (the default) are checked against the model schema, have every SQL
        expression checked by `sql_guard`, and may replace an existing metric, dimension, join,
        relation or time column only with `override: true` (a ModelOverrideWarning says so).
        `trusted` is for the built-in files (validated by the test suite, not at every start-up).
        `nodes` (the documents' YAML nodes) and `source` (the file's text) let errors name the line.
        """
        tables = dict(self.tables)
        for index, document in enumerate(documents):
            if not isinstance(document, Mapping):
                raise CommerceQLDataError(
                    f"{origin}: document {index + 1} must be a mapping (name:, metrics:, dimensions: ...), "
                    f"not {_type_name(document)}"
                )
            node = nodes[index] if nodes is not None and index < len(nodes) else None
            if not trusted:
                check_document(document, origin, node=node, source=source)
            name = document.get("name")
            base = tables.get(name) if isinstance(name, str) else None
            try:
                table = _parse_table(document, origin, base=base, trusted=trusted)
                _check_aliases(table, origin)
            except CommerceQLDataError as error:
                if node is not None:
                    _point_into_file(error, origin, node, source)
                raise
            tables[table.name] = table
        return SemanticModel(_with_segment_dimensions(tables))

    def without_fields(self, gaps: Mapping[str, Mapping[str, str]]) -> SemanticModel:
        """The model with the fields a store has no data for taken out and refused with the reason.

        `gaps` maps table -> field -> reason (docs/importing.md: an import of Shopify's order export
        has no return reasons). A metric computed from a removed one (`{name}` or `alias_of`) goes
        too, with the same reason: it would otherwise answer a number built on empty data.
        Names the model does not know are ignored (an older or newer model than the store's).
        """
        if not gaps:
            return self
        tables = dict(self.tables)
        for table_name, fields in gaps.items():
            table = tables.get(table_name)
            if table is None:
                continue
            reasons = {name: reason for name, reason in fields.items()
                       if name in table.dimensions or name in table.metrics}
            if not reasons:
                continue
            changed = True
            while changed:  # metrics built on a removed metric, to any depth
                changed = False
                for metric in table.metrics.values():
                    if metric.name in reasons:
                        continue
                    uses = [*_METRIC_REFERENCE.findall(metric.sql), *([metric.alias_of] if metric.alias_of else [])]
                    source = next((used for used in uses if used in reasons), None)
                    if source is not None:
                        reasons[metric.name] = reasons[source]
                        changed = True
            tables[table_name] = replace(
                table,
                dimensions={n: d for n, d in table.dimensions.items() if n not in reasons},
                metrics={n: m for n, m in table.metrics.items() if n not in reasons},
                unavailable={**table.unavailable, **reasons},
            )
        return SemanticModel(tables)

    def segments(self) -> dict[str, Segment]:
        """Every saved segment of the model, by name."""
        return {name: segment for table in self.tables.values() for name, segment in table.segments.items()}

    def extended_from_files(self, paths: Iterable[str | Path], *, relative_to: Path | None = None) -> SemanticModel:
        """The model extended with YAML files; messages name each file relative to `relative_to`."""
        model = self
        for path in paths:
            path = Path(path)
            text, loaded = _read_yaml_with_nodes(path)
            model = model.extended([document for document, _ in loaded], origin=_display(path, relative_to),
                                   nodes=[node for _, node in loaded], source=text)
        return model


def _point_into_file(error: CommerceQLDataError, origin: str, node: yaml.Node, source: str | None) -> None:
    """Give a check's error (unsafe SQL, a replaced metric, a bad alias) the span of its field in the
    file, so `render()` shows the line; the message, which names the field path, stays as it is."""
    match = re.match(rf"{re.escape(origin)}: ([a-z_][A-Za-z0-9_.]*):", error.message)
    if error.span is not None or match is None or source is None:
        return
    span = span_in_yaml(node, match.group(1).split("."), at_key=False)
    if span is not None:
        error.span, error.source = span, source


def _with_segment_dimensions(tables: dict[str, Table]) -> dict[str, Table]:
    """Every table with an account key gets one boolean dimension per segment of that account kind."""
    segments = [segment for table in tables.values() for segment in table.segments.values()]
    result: dict[str, Table] = {}
    for name, table in tables.items():
        dimensions = {n: d for n, d in table.dimensions.items() if not d.sql.startswith(SEGMENT_MACRO + "(")}
        for segment in segments:
            key_sql = table.account_keys.get(segment.kind)
            if key_sql is None:
                continue
            if segment.name in dimensions or segment.name in table.metrics:
                raise CommerceQLDataError(
                    f"{segment.origin}: segment `{segment.name}` has the name of a field of table `{name}`",
                    hint="give the segment a name no table uses",
                )
            dimensions[segment.name] = Dimension(
                name=segment.name,
                sql=f"{SEGMENT_MACRO}({segment.name}, {key_sql})",
                type="boolean",
                description=f"Segment of {ACCOUNT_KINDS[segment.kind][0]}: {segment.description or segment.condition_text}. "
                f"True for rows whose {segment.kind} is in it.",
            )
        result[name] = replace(table, dimensions=dimensions) if dimensions != dict(table.dimensions) else table
    return result


def _parse_segments(
    document: Mapping[str, Any], origin: str, table_name: str, base: Table | None, dimensions: Mapping[str, Dimension]
) -> dict[str, Segment]:
    segments: dict[str, Segment] = dict(base.segments) if base else {}
    section = _section(document, "segments", origin)
    if not section:
        return segments
    kind = next((k for k, (own, _, _) in ACCOUNT_KINDS.items() if own == table_name), None)
    if kind is None:
        raise CommerceQLDataError(
            f"{origin}: segments: table `{table_name}` is not an account table",
            hint="define customer segments on `customers` and company segments on `companies`",
        )
    for seg_name, spec in section.items():
        field = f"{origin}: segments.{seg_name}"
        if not isinstance(seg_name, str) or not _NAME.match(seg_name):
            raise CommerceQLDataError(f"{field}: a segment name must be lower_snake_case")
        spec = {"condition": spec} if isinstance(spec, str) else _entry(spec, field)
        unknown = set(spec) - {"condition", "description", "override"}
        if unknown:
            raise CommerceQLDataError(f"{field}: unknown key `{sorted(unknown)[0]}`", hint="a segment has condition and description")
        text = _text(spec, "condition", field)
        if not text:
            raise CommerceQLDataError(f"{field}: needs `condition`",
                                      hint="for example: condition: company_industry = 'OEM' AND amount_spent > 250000")
        if seg_name in segments and not _flag(spec, "override", field):
            raise CommerceQLDataError(f"{field}: replaces the existing segment `{seg_name}`",
                                      hint="add `override: true` to replace it on purpose")
        segments[seg_name] = Segment(
            name=seg_name, kind=kind, table=table_name, condition_text=text,
            condition=_segment_condition(text, field, dimensions),
            description=_text(spec, "description", field, "") or "", origin=field,
        )
    return segments


def _segment_condition(text: str, field: str, dimensions: Mapping[str, Dimension]) -> ast.Condition:
    """The parsed condition; every name must be a dimension of the account table (not a segment)."""
    from commerceql.parser import parse_condition
    from commerceql.walk import condition_names

    try:
        condition = parse_condition(text)
    except CommerceQLError as error:
        raise CommerceQLDataError(f"{field}.condition: {error.message}\n{error.render()}", hint=error.hint) from None
    for name in condition_names(condition):
        dimension = dimensions.get(name)
        if dimension is None:
            raise CommerceQLDataError(f"{field}.condition: unknown field `{name}`",
                                      hint=did_you_mean(name, list(dimensions)))
        if dimension.sql.startswith(SEGMENT_MACRO + "("):
            raise CommerceQLDataError(f"{field}.condition: `{name}` is a segment; a segment cannot use another one",
                                      hint="repeat that segment's condition instead")
    return condition


def _check_aliases(table: Table, origin: str) -> None:
    """Every `alias_of` chain must end at a real metric: a cycle or a dangling name is a model error."""
    for name, metric in table.metrics.items():
        chain = [name]
        while metric.alias_of is not None:
            target = table.metrics.get(metric.alias_of)
            if target is None:
                raise CommerceQLDataError(
                    f"{origin}: metrics.{chain[-1]}.alias_of: table `{table.name}` has no metric `{metric.alias_of}`"
                )
            if target.name in chain:
                raise CommerceQLDataError(
                    f"{origin}: metrics.{name}.alias_of: the aliases go round in a circle "
                    f"({' -> '.join([*chain, target.name])})"
                )
            chain.append(target.name)
            metric = target


class ModelOverrideWarning(UserWarning):
    """A user model replaced an existing metric, dimension or table setting (with `override: true`)."""


def _display(path: Path, relative_to: Path | None) -> str:
    if relative_to is not None:
        try:
            return path.relative_to(relative_to).as_posix()
        except ValueError:
            pass
    return str(path)


def _type_name(value: object) -> str:
    return {list: "a list", str: "text", int: "a number", float: "a number", bool: "a boolean"}.get(
        type(value), type(value).__name__
    )


# libyaml's parser with PyYAML's safe constructor and resolver: the same values as yaml.safe_load,
# ~10x faster (the built-in model's files took ~1 s to parse in pure Python on every start-up).
_FAST_SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML text, read as `yaml.safe_load_all` would, with libyaml when present.

    A text libyaml refuses is read again by the pure-Python loader, whose error names the line
    with an excerpt (libyaml's does not).
    """
    try:
        return list(yaml.load_all(text, Loader=_FAST_SAFE_LOADER))
    except yaml.YAMLError:
        if _FAST_SAFE_LOADER is yaml.SafeLoader:
            raise
        return list(yaml.load_all(text, Loader=yaml.SafeLoader))


def load_yaml_with_nodes(text: str) -> list[tuple[Any, yaml.Node]]:
    """Every document of a YAML text with its node, whose marks give each key's line and column.

    The values are those of `load_yaml_documents`: `load_all` composes each document's node and
    constructs the value from it, so keeping the node costs nothing more (libyaml when present).
    """

    def read(loader_class: Any) -> list[tuple[Any, yaml.Node]]:
        loader = loader_class(text)
        try:
            documents = []
            while loader.check_node():
                node = loader.get_node()
                documents.append((loader.construct_document(node), node))
            return documents
        finally:
            loader.dispose()

    try:
        return read(_FAST_SAFE_LOADER)
    except yaml.YAMLError:
        if _FAST_SAFE_LOADER is yaml.SafeLoader:
            raise
        return read(yaml.SafeLoader)  # for its error message, which names the line with an excerpt


def _read_yaml_with_nodes(path: Path) -> tuple[str, list[tuple[Mapping[str, Any], yaml.Node]]]:
    """A model file's text and its (non-empty) documents with their nodes."""
    try:
        text = path.read_text(encoding="utf-8")
        loaded = [(document, node) for document, node in load_yaml_with_nodes(text) if document is not None]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CommerceQLDataError(f"cannot read model file {path}: {exc}") from exc
    for document, _ in loaded:
        if not isinstance(document, Mapping):
            raise CommerceQLDataError(
                f"model file {path} must hold a mapping per table (name:, metrics:, dimensions: ...), "
                f"not {_type_name(document)}"
            )
    return text, loaded


def _read_yaml(path: Path) -> list[Mapping[str, Any]]:
    """A model file's (non-empty) documents."""
    return [document for document, _ in _read_yaml_with_nodes(path)[1]]


def _require(document: Mapping[str, Any], key: str, origin: str, what: str) -> Any:
    if key not in document or document[key] in (None, ""):
        raise CommerceQLDataError(f"{origin}: {what} needs `{key}`")
    return document[key]


def _section(document: Mapping[str, Any], key: str, where: str) -> Mapping[Any, Any]:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CommerceQLDataError(f"{where}: `{key}` must be a mapping of name -> definition, not {_type_name(value)}")
    return value


def _entry(spec: Any, where: str) -> Mapping[str, Any]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise CommerceQLDataError(f"{where}: must be a mapping (sql:, type:, description: ...), not {_type_name(spec)}")
    return spec


def _text(spec: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = spec.get(key, default)
    if value is None or isinstance(value, str):
        return value
    raise CommerceQLDataError(f"{where}.{key}: must be text, not {_type_name(value)}")


def _flag(spec: Mapping[str, Any], key: str, where: str) -> bool:
    value = spec.get(key, False)
    if not isinstance(value, bool):
        raise CommerceQLDataError(f"{where}.{key}: must be true or false, not {_type_name(value)}")
    return value


def _relation_name(value: Any, where: str) -> str:
    # Relations are written as quoted identifiers by the compiler; the pattern also keeps models
    # away from DuckDB's catalog views (duckdb_settings, pg_catalog, ...).
    if not isinstance(value, str) or not _RELATION.match(value) or value.lower().startswith(_SYSTEM_PREFIXES):
        raise CommerceQLDataError(f"{where}: must name a table of the store (letters, digits, _), not {value!r}")
    return value


def _check_replace(
    kind: str, name: str, existing: Mapping[str, Any], spec: Mapping[str, Any], where: str, table: str, trusted: bool
) -> None:
    """A field that already exists may be replaced only with `override: true`, and it is announced."""
    override = _flag(spec, "override", where)
    if trusted or name not in existing:
        return
    if not override:
        raise CommerceQLDataError(
            f"{where}: replaces the existing {kind} `{name}` of table `{table}`",
            hint=f"add `override: true` to the entry to replace `{name}` on purpose, or pick another name",
        )
    warnings.warn(f"{where}: replaces the {kind} `{name}` of table `{table}` (override: true)",
                  ModelOverrideWarning, stacklevel=5)


def _parse_table(document: Mapping[str, Any], origin: str, base: Table | None = None, trusted: bool = False) -> Table:
    name = _require(document, "name", origin, "a table")
    if not isinstance(name, str) or not _NAME.match(name):
        raise CommerceQLDataError(f"{origin}: table name `{name}` must be lower_snake_case text")
    where = f"{origin} (table `{name}`)"
    for key in document:
        if key not in _TABLE_KEYS:
            raise CommerceQLDataError(f"{origin}: unknown key `{key}` in table `{name}`",
                                      hint=f"a table has {', '.join(sorted(_TABLE_KEYS))}")
    table_override = _flag(document, "override", origin)
    if base is not None and not trusted:
        for key in ("relation", "time_column"):
            if key in document and document[key] != getattr(base, key):
                if not table_override:
                    raise CommerceQLDataError(
                        f"{origin}: {key}: changes the {key} of the existing table `{name}`",
                        hint="add `override: true` at the top of the document to do it on purpose",
                    )
                warnings.warn(f"{origin}: changes the {key} of table `{name}` (override: true)",
                              ModelOverrideWarning, stacklevel=4)
    relation = _relation_name(
        document.get("relation", base.relation if base else _require(document, "relation", where, "a table")),
        f"{origin}: relation",
    )
    time_column = document.get("time_column", base.time_column if base else None)
    if time_column is not None and not isinstance(time_column, str):
        raise CommerceQLDataError(f"{origin}: time_column: must be a column name, not {_type_name(time_column)}")
    joins: dict[str, Join] = dict(base.joins) if base else {}
    for alias, spec in _section(document, "joins", origin).items():
        field = f"{origin}: joins.{alias}"
        if not isinstance(alias, str) or not _NAME.match(alias) or alias == name:
            raise CommerceQLDataError(f"{field}: a join alias must be lower_snake_case and differ from the table name")
        # YAML 1.1 reads a bare `on:` key as the boolean True.
        spec = {("on" if key is True else key): value for key, value in _entry(spec, field).items()}
        _check_replace("join", alias, joins if base else {}, spec, field, name, trusted)
        joins[alias] = Join(
            alias=alias,
            relation=_relation_name(_require(spec, "relation", where, f"join `{alias}`"), f"{field}.relation"),
            on=str(_require(spec, "on", where, f"join `{alias}`")),
        )
    account_keys: dict[str, str] = dict(base.account_keys) if base else {}
    for kind, key_sql in _section(document, "account_keys", origin).items():
        field = f"{origin}: account_keys.{kind}"
        if kind not in ACCOUNT_KINDS:
            raise CommerceQLDataError(f"{field}: unknown account kind", hint=f"use {' or '.join(ACCOUNT_KINDS)}")
        if not isinstance(key_sql, str) or not key_sql.strip():
            raise CommerceQLDataError(f"{field}: must be the SQL of the column naming the row's {kind}")
        if not trusted:
            check_expression(key_sql, where=field, aliases={name, *joins}, portable=True)
        account_keys[kind] = key_sql
        facts = ACCOUNT_KINDS[kind][1]
        joins[facts] = Join(alias=facts, relation=facts, on=account_join_on(kind, key_sql))
    aliases = {name, *joins}
    if not trusted:
        # Only the joins this document defines: the base table's were checked when it was read.
        for alias in _section(document, "joins", origin):
            check_expression(joins[alias].on, where=f"{origin}: joins.{alias}.on", aliases=aliases, portable=True)
    dimensions: dict[str, Dimension] = dict(base.dimensions) if base else {}
    for dim_name, spec in _section(document, "dimensions", origin).items():
        field = f"{origin}: dimensions.{dim_name}"
        spec = _entry(spec, field)
        dim_type = _text(spec, "type", field, "string")
        if dim_type not in DIMENSION_TYPES:
            raise CommerceQLDataError(
                f"{where}: dimension `{dim_name}` has type `{dim_type}`; use one of {sorted(DIMENSION_TYPES)}"
            )
        sql = _require(spec, "sql", where, f"dimension `{dim_name}`")
        if not trusted:
            check_expression(sql, where=f"{field}.sql", aliases=aliases, portable=True)
        _check_replace("dimension", str(dim_name), dimensions, spec, field, name, trusted)
        dimensions[dim_name] = Dimension(
            name=dim_name,
            sql=str(sql),
            type=dim_type,
            description=_text(spec, "description", field, "") or "",
            deprecated=_text(spec, "deprecated", field),
        )
    metrics: dict[str, Metric] = dict(base.metrics) if base else {}
    for metric_name, spec in _section(document, "metrics", origin).items():
        field = f"{origin}: metrics.{metric_name}"
        spec = _entry(spec, field)
        if spec.get("alias_of"):
            _check_replace("metric", str(metric_name), metrics, spec, field, name, trusted)
            alias_of = _text(spec, "alias_of", field)
            metrics[metric_name] = Metric(
                name=metric_name,
                sql="",
                type="number",
                description=_text(spec, "description", field, f"Older name of `{alias_of}`.") or "",
                alias_of=alias_of,
                deprecated=_text(spec, "deprecated", field),
            )
            continue
        metric_type = _text(spec, "type", field, "number")
        if metric_type not in METRIC_TYPES:
            raise CommerceQLDataError(
                f"{where}: metric `{metric_name}` has type `{metric_type}`; use one of {sorted(METRIC_TYPES)}"
            )
        sql = _require(spec, "sql", where, f"metric `{metric_name}`")
        if not trusted:
            check_expression(sql, where=f"{field}.sql", aliases=aliases, metric_references=True, portable=True)
        _check_replace("metric", str(metric_name), metrics, spec, field, name, trusted)
        metrics[metric_name] = Metric(
            name=metric_name,
            sql=str(sql),
            type=metric_type,
            description=_text(spec, "description", field, "") or "",
            additive=_flag(spec, "additive", field),
            deprecated=_text(spec, "deprecated", field),
            formula=_text(spec, "formula", field),
            across_time=_flag(spec, "across_time", field),
        )
    for kind, key_sql in account_keys.items():
        for account_field in ACCOUNT_FIELDS:
            dim_name = account_field_name(account_field, kind, name)
            if dim_name in dimensions or dim_name in metrics:
                continue  # the table's own definition wins
            dimensions[dim_name] = Dimension(
                name=dim_name,
                sql=account_field_sql(account_field, kind, key_sql),
                type=account_field.type,
                description=account_field.description.format(account=kind),
            )
    for field_name in [*dimensions, *metrics]:
        if not isinstance(field_name, str) or not _NAME.match(field_name):
            raise CommerceQLDataError(f"{where}: field name `{field_name}` must be lower_snake_case")
    both = set(dimensions) & set(metrics)
    if both:
        raise CommerceQLDataError(f"{where}: {sorted(both)} defined both as metric and dimension")
    description = _text(document, "description", origin, base.description if base else "") or ""
    segments = _parse_segments(document, origin, name, base, dimensions)
    unavailable: dict[str, str] = dict(base.unavailable) if base else {}
    for field_name, reason in _section(document, "unavailable", origin).items():
        if not isinstance(reason, str):
            raise CommerceQLDataError(f"{origin}: unavailable.{field_name}: give the reason as text")
        unavailable[str(field_name)] = reason
    if base is not None:
        return replace(
            base,
            description=description,
            relation=relation,
            time_column=time_column,
            joins=joins,
            dimensions=dimensions,
            metrics=metrics,
            account_keys=account_keys,
            segments=segments,
            unavailable=unavailable,
        )
    return Table(
        name=name,
        description=description,
        relation=relation,
        time_column=time_column,
        joins=joins,
        dimensions=dimensions,
        metrics=metrics,
        account_keys=account_keys,
        segments=segments,
        unavailable=unavailable,
    )


_BUILTIN: SemanticModel | None = None


def builtin_model() -> SemanticModel:
    """The model of the built-in store schema (cached: the files never change while running)."""
    global _BUILTIN
    if _BUILTIN is None:
        model = SemanticModel({})
        for path in sorted(BUILTIN_TABLES_DIR.glob("*.yaml")):
            model = model.extended(_read_yaml(path), origin=str(path), trusted=True)
        _BUILTIN = model
    return _BUILTIN
