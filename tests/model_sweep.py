"""Run every built-in metric and groupable dimension on a store: the importers' "nothing breaks" sweep."""

from __future__ import annotations

from commerceql.derived import missing_data


def run_every_builtin_field(store) -> list[str]:  # type: ignore[no-untyped-def]
    """The queries that failed, with why; a table the store was imported without (no Inventory or
    Transactions export: the manifest's `missing_tables`) is refused by design and left out."""
    failures = []
    for name, table in store.model.tables.items():
        if missing_data(table.relation, name, store.manifest):
            continue
        metrics = [m.name for m in table.metrics.values() if not m.alias_of]
        queries = [f"FROM {name} SHOW {m}" for m in metrics]
        if metrics:
            queries += [f"FROM {name} SHOW {metrics[0]} GROUP BY {d.name}" for d in table.dimensions.values()
                        if d.type != "array"]
        for query in queries:
            try:
                store.query(query)
            except Exception as exc:  # noqa: BLE001 - collected and reported together
                failures.append(f"{query}: {exc}")
    return failures
