"""The sample store: a realistic, deterministic commerce data set to query and test against.

The names are loaded on first use (module `__getattr__`): `commerceql --help` and the parser of
`commerceql sample` must not pay for the generator's NumPy and Polars, nor the store helpers' DuckDB.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from commerceql.sample.generator import GENERATOR_VERSION, TABLES, generate_store
    from commerceql.sample.store import default_store_path, ensure_default_store, read_manifest

# Each exported name and the submodule that defines it.
_EXPORTS = {
    "GENERATOR_VERSION": "commerceql.sample.generator",
    "TABLES": "commerceql.sample.generator",
    "generate_store": "commerceql.sample.generator",
    "default_store_path": "commerceql.sample.store",
    "ensure_default_store": "commerceql.sample.store",
    "read_manifest": "commerceql.sample.store",
}

__all__ = [
    "GENERATOR_VERSION",
    "TABLES",
    "default_store_path",
    "ensure_default_store",
    "generate_store",
    "read_manifest",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
