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

SQL in the model is trusted (it is written by whoever owns the store); user query text never
reaches SQL except as bound parameters, and identifiers in compiled SQL come only from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from commerceql.errors import CommerceQLDataError

BUILTIN_TABLES_DIR = Path(__file__).parent / "tables"

DIMENSION_TYPES = frozenset(
    {"string", "number", "integer", "boolean", "date", "timestamp", "array", "money"}
)
METRIC_TYPES = frozenset({"money", "percent", "count", "number", "duration"})

_METRIC_REFERENCE = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class Dimension:
    name: str
    sql: str
    type: str
    description: str


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

    def extended(self, documents: Iterable[Mapping[str, Any]], origin: str = "<user model>") -> SemanticModel:
        """A new model with user documents merged in (new tables, or fields added to existing ones)."""
        tables = dict(self.tables)
        for document in documents:
            table = _parse_table(document, origin, base=tables.get(str(document.get("name", ""))))
            tables[table.name] = table
        return SemanticModel(tables)

    def extended_from_files(self, paths: Iterable[str | Path]) -> SemanticModel:
        model = self
        for path in paths:
            model = model.extended(_read_yaml(Path(path)), origin=str(path))
        return model


def _read_yaml(path: Path) -> list[Mapping[str, Any]]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise CommerceQLDataError(f"cannot read model file {path}: {exc}") from exc
    for document in documents:
        if not isinstance(document, Mapping):
            raise CommerceQLDataError(f"model file {path} must hold a mapping per table")
    return documents


def _require(document: Mapping[str, Any], key: str, origin: str, what: str) -> Any:
    if key not in document or document[key] in (None, ""):
        raise CommerceQLDataError(f"{origin}: {what} needs `{key}`")
    return document[key]


def _parse_table(document: Mapping[str, Any], origin: str, base: Table | None = None) -> Table:
    name = str(_require(document, "name", origin, "a table"))
    if not _NAME.match(name):
        raise CommerceQLDataError(f"{origin}: table name `{name}` must be lower_snake_case")
    where = f"{origin} (table `{name}`)"
    joins: dict[str, Join] = dict(base.joins) if base else {}
    for alias, spec in (document.get("joins") or {}).items():
        # YAML 1.1 reads a bare `on:` key as the boolean True.
        spec = {("on" if key is True else key): value for key, value in (spec or {}).items()}
        joins[alias] = Join(
            alias=alias,
            relation=str(_require(spec, "relation", where, f"join `{alias}`")),
            on=str(_require(spec, "on", where, f"join `{alias}`")),
        )
    dimensions: dict[str, Dimension] = dict(base.dimensions) if base else {}
    for dim_name, spec in (document.get("dimensions") or {}).items():
        spec = spec or {}
        dim_type = str(spec.get("type", "string"))
        if dim_type not in DIMENSION_TYPES:
            raise CommerceQLDataError(
                f"{where}: dimension `{dim_name}` has type `{dim_type}`; use one of {sorted(DIMENSION_TYPES)}"
            )
        dimensions[dim_name] = Dimension(
            name=dim_name,
            sql=str(_require(spec, "sql", where, f"dimension `{dim_name}`")),
            type=dim_type,
            description=str(spec.get("description", "")),
        )
    metrics: dict[str, Metric] = dict(base.metrics) if base else {}
    for metric_name, spec in (document.get("metrics") or {}).items():
        spec = spec or {}
        if spec.get("alias_of"):
            metrics[metric_name] = Metric(
                name=metric_name,
                sql="",
                type="number",
                description=str(spec.get("description", f"Older name of `{spec['alias_of']}`.")),
                alias_of=str(spec["alias_of"]),
                deprecated=spec.get("deprecated"),
            )
            continue
        metric_type = str(spec.get("type", "number"))
        if metric_type not in METRIC_TYPES:
            raise CommerceQLDataError(
                f"{where}: metric `{metric_name}` has type `{metric_type}`; use one of {sorted(METRIC_TYPES)}"
            )
        metrics[metric_name] = Metric(
            name=metric_name,
            sql=str(_require(spec, "sql", where, f"metric `{metric_name}`")),
            type=metric_type,
            description=str(spec.get("description", "")),
            additive=bool(spec.get("additive", False)),
            deprecated=spec.get("deprecated"),
            formula=spec.get("formula"),
        )
    for field_name in [*dimensions, *metrics]:
        if not _NAME.match(field_name):
            raise CommerceQLDataError(f"{where}: field name `{field_name}` must be lower_snake_case")
    both = set(dimensions) & set(metrics)
    if both:
        raise CommerceQLDataError(f"{where}: {sorted(both)} defined both as metric and dimension")
    if base is not None:
        return replace(
            base,
            description=str(document.get("description", base.description)),
            relation=str(document.get("relation", base.relation)),
            time_column=document.get("time_column", base.time_column),
            joins=joins,
            dimensions=dimensions,
            metrics=metrics,
        )
    return Table(
        name=name,
        description=str(document.get("description", "")),
        relation=str(_require(document, "relation", where, "a table")),
        time_column=document.get("time_column"),
        joins=joins,
        dimensions=dimensions,
        metrics=metrics,
    )


_BUILTIN: SemanticModel | None = None


def builtin_model() -> SemanticModel:
    """The model of the built-in store schema (cached: the files never change while running)."""
    global _BUILTIN
    if _BUILTIN is None:
        model = SemanticModel({})
        for path in sorted(BUILTIN_TABLES_DIR.glob("*.yaml")):
            model = model.extended(_read_yaml(path), origin=str(path))
        _BUILTIN = model
    return _BUILTIN
