"""Bring your own store: import Shopify admin exports or any CSV / Parquet / DuckDB table.

    from commerceql.importers import import_shopify, import_table
    report = import_shopify(["orders_export_1.csv", "customers_export.csv"], "my-store")
    print(report.render())
    store = commerceql.connect("my-store")

See docs/importing.md.

The error and report classes load on first use (module `__getattr__`): the parser of `commerceql
import` (in every `commerceql --help`) imports this package, and `importers.common` needs DuckDB and Polars.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from commerceql.importers.common import CommerceQLImportError, CommerceQLMappingError, ImportReport

_FROM_COMMON = ("CommerceQLImportError", "CommerceQLMappingError", "ImportReport")


def import_shopify(paths: Any, out_dir: str | Path, **options: Any) -> ImportReport:
    """Import Shopify admin exports (files or folders) into a new store folder. See `shopify.import_shopify`."""
    from commerceql.importers.shopify import import_shopify as _import

    return _import(paths, out_dir, **options)


def import_table(source: Any, mapping: Any, out_dir: str | Path, **options: Any) -> ImportReport:
    """Import a CSV / Parquet / DuckDB table with a mapping file. See `table.import_table`."""
    from commerceql.importers.table import import_table as _import

    return _import(source, mapping, out_dir, **options)


def __getattr__(name: str) -> Any:
    if name not in _FROM_COMMON:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from commerceql.importers import common

    value = getattr(common, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = ["CommerceQLImportError", "CommerceQLMappingError", "ImportReport", "import_shopify", "import_table"]
