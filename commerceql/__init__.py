"""CommerceQL: a ShopifyQL-like query language for commerce data, compiled to DuckDB."""

from commerceql.errors import CommerceQLError

__all__ = ["CommerceQLError"]
__version__ = "0.1.0"
