"""The declarative semantic model (tables, metrics, dimensions)."""

from commerceql.model.semantic import Dimension, Join, Metric, SemanticModel, Table, builtin_model

__all__ = ["Dimension", "Join", "Metric", "SemanticModel", "Table", "builtin_model"]
