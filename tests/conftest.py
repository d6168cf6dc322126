"""Shared fixtures. Keep this file small: add feature-specific fixtures next to their tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import settings

from commerceql.sample import ensure_default_store

# No test may depend on wall-clock speed (CI is a busy 2-core machine): no Hypothesis deadline.
settings.register_profile("commerceql", deadline=None)
settings.load_profile("commerceql")


@pytest.fixture(scope="session")
def sample_store_path() -> Path:
    """The bundled sample store (50k orders, 3 years, seed 42), generated on first use."""
    return ensure_default_store()


def connect_store(path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the store's manifest."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    con = duckdb.connect()
    for name, file in manifest["tables"].items():
        location = str(path / file).replace("'", "''")
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet(\'{location}\')')
    # Pinned to UTC like every engine session: hand-written SQL converts to local time explicitly.
    con.execute("SET TimeZone = 'UTC'")
    return con


@pytest.fixture
def duckdb_connection(sample_store_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """Views over the sample store's Parquet files, named as in its manifest; the session runs in UTC."""
    con = connect_store(sample_store_path)
    try:
        yield con
    finally:
        con.close()

