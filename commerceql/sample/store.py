"""Where the bundled sample store lives, and generating it on first use (safely across processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from commerceql.sample.defaults import (
    DEFAULT_ORDERS,
    DEFAULT_SEED,
    DEFAULT_YEARS,
    FORMAT,
    GENERATOR_VERSION,
    default_store_path,
)


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    try:
        manifest = json.loads((Path(path) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT else None


def _is_current(path: Path) -> bool:
    manifest = read_manifest(path)
    if manifest is None:
        return False
    expected = {"version": GENERATOR_VERSION, "seed": DEFAULT_SEED, "orders": DEFAULT_ORDERS, "years": DEFAULT_YEARS}
    if manifest.get("generator") != expected or manifest.get("as_of") is None:
        return False
    return all((path / name).is_file() for name in manifest.get("tables", {}).values())


def ensure_default_store() -> Path:
    """The default sample store, generated first if missing or made by another generator version.

    Generation writes into a temporary sibling folder and renames it into place, holding the same
    lock file as the importers (`.store.lock` next to the folder): a second process waits for the
    first and then finds the store current. The store keeps the flat layout (`store/sales.parquet`)
    that tests, benchmarks and notebooks read directly; a process killed between the two renames of
    the swap leaves no store, and the next call simply generates it again. Staging folders of killed
    generations are removed under the lock.
    """
    path = default_store_path()
    if _is_current(path):  # the common case: no generator (NumPy, PyArrow) imported at all
        return path
    from commerceql.importers.common import clean_stale_siblings, target_lock
    from commerceql.sample.generator import generate_store
    from commerceql.staging import staged_folder

    with target_lock(path, wait=True, what="sample store generation"):
        clean_stale_siblings(path)
        if _is_current(path):
            return path
        with staged_folder(path, "generating") as tmp:
            generate_store(tmp, orders=DEFAULT_ORDERS, years=DEFAULT_YEARS, seed=DEFAULT_SEED)
    return path
