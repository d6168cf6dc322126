"""The sample store: a realistic, deterministic commerce data set to query and test against."""

from commerceql.sample.generator import GENERATOR_VERSION, TABLES, generate_store
from commerceql.sample.store import default_store_path, ensure_default_store, read_manifest

__all__ = [
    "GENERATOR_VERSION",
    "TABLES",
    "default_store_path",
    "ensure_default_store",
    "generate_store",
    "read_manifest",
]
