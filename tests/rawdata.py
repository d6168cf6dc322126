"""Reading a store's raw Parquet files in tests, for oracles written independently of the compiler."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl


def raw(path: Path, table: str) -> pl.DataFrame:
    """The store's `table` as written on disk (the file its manifest names)."""
    manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
    return pl.read_parquet(path / manifest["tables"][table])
