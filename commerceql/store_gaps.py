"""Fields a store has no data for: refused with the reason instead of answered empty or zero.

A store's manifest may say, under `unavailable_fields`, which model fields its data cannot fill
(`{"returns": {"return_line_item_reason": "why"}}`); an importer whose exports never carry a
field declares it there. Stores written before importers declared them are read by their
importer's name (`source.importer`), so an older import is refused alike. `Store` takes the
fields out of its model (`SemanticModel.without_fields`), so `schema`, completions and the
resolver's "has no data for" message all agree.
"""

from __future__ import annotations

from collections.abc import Mapping

from commerceql.errors import CommerceQLDataError

_NO_RESTOCK = ("Shopify's order export does not say whether returned goods went back into stock "
               "(restocked units would read 0)")

#: What each importer's exports never carry, by importer name (`source.importer` of its manifest).
IMPORTER_GAPS: dict[str, dict[str, dict[str, str]]] = {
    "shopify": {
        "returns": {
            "return_line_item_reason": "Shopify's order export carries no return reasons",
            "return_restock_type": _NO_RESTOCK,
            "is_restocked": _NO_RESTOCK,
            "restocked_quantity": _NO_RESTOCK,
            "restock_rate": _NO_RESTOCK,
        },
    },
}


def unavailable_fields(manifest: Mapping[str, object]) -> dict[str, dict[str, str]]:
    """Table -> field -> reason: the fields this store's data cannot fill (empty when it has them all)."""
    declared = manifest.get("unavailable_fields")
    if declared is None:
        source = manifest.get("source")
        importer = source.get("importer") if isinstance(source, Mapping) else None
        return {table: dict(fields) for table, fields in IMPORTER_GAPS.get(str(importer), {}).items()}
    if not isinstance(declared, Mapping) or not all(
        isinstance(table, str) and isinstance(fields, Mapping)
        and all(isinstance(name, str) and isinstance(reason, str) for name, reason in fields.items())
        for table, fields in declared.items()
    ):
        raise CommerceQLDataError(
            "the store's manifest.json has a malformed `unavailable_fields`",
            hint='write it as {"table": {"field": "why the store has no data for it"}}',
        )
    return {table: dict(fields) for table, fields in declared.items()}


def common_gaps(per_shop: list[dict[str, dict[str, str]]]) -> dict[str, dict[str, str]]:
    """The fields no shop of an organization has data for (a field one shop has stays answerable)."""
    if not per_shop:
        return {}
    common: dict[str, dict[str, str]] = {}
    for table, fields in per_shop[0].items():
        shared = {name: reason for name, reason in fields.items()
                  if all(name in other.get(table, {}) for other in per_shop[1:])}
        if shared:
            common[table] = shared
    return common
