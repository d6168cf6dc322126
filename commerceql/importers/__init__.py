"""Bring your own store: import Shopify admin exports or any CSV / Parquet / DuckDB table.

    from commerceql.importers import import_shopify, import_table
    report = import_shopify(["orders_export_1.csv", "customers_export.csv"], "my-store")
    print(report.render())
    store = commerceql.connect("my-store")

See docs/importing.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commerceql.importers.common import CommerceQLImportError, CommerceQLMappingError, ImportReport

if TYPE_CHECKING:
    from pathlib import Path


def import_shopify(paths: Any, out_dir: str | Path, **options: Any) -> ImportReport:
    """Import Shopify admin exports (files or folders) into a new store folder. See `shopify.import_shopify`."""
    from commerceql.importers.shopify import import_shopify as _import

    return _import(paths, out_dir, **options)


def import_table(source: Any, mapping: Any, out_dir: str | Path, **options: Any) -> ImportReport:
    """Import a CSV / Parquet / DuckDB table with a mapping file. See `table.import_table`."""
    from commerceql.importers.table import import_table as _import

    return _import(source, mapping, out_dir, **options)


__all__ = ["CommerceQLImportError", "CommerceQLMappingError", "ImportReport", "import_shopify", "import_table"]
