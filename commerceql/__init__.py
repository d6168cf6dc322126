"""CommerceQL: a ShopifyQL-like query language for commerce data, compiled to DuckDB.

    import commerceql as cql
    store = cql.connect()                      # the bundled sample store
    result = store.query("FROM sales SHOW net_sales GROUP BY month DURING last_year")
    result.df                                  # a Polars DataFrame
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from commerceql.errors import CommerceQLError

if TYPE_CHECKING:
    from commerceql.store import Store

__all__ = ["CommerceQLError", "connect", "load_ipython_extension"]
__version__ = "0.1.0"


def connect(path: Any = None, **options: Any) -> Store:
    """Open a store: the bundled sample store by default, or a store folder / DuckDB file."""
    from commerceql.store import connect as _connect

    return _connect(path, **options)


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext commerceql`: registers the `%cql` / `%%cql` magics."""
    from commerceql.magic import load_ipython_extension as _load

    _load(ipython)
