"""The sample store's default size and location, without importing the generator.

`commerceql sample`'s argument parser (built for every `commerceql --help`) shows these, so they
live apart from `commerceql.sample.store`, which imports the generator (NumPy, PyArrow) and the
importers' DuckDB helpers. `commerceql.sample.store` must agree (tests/test_startup.py checks it).
"""

from __future__ import annotations

import os
from pathlib import Path

#: The generator version whose stores are current (commerceql.sample.generator.GENERATOR_VERSION,
#: repeated here so checking the bundled store imports no NumPy; tests/test_startup.py checks they agree).
GENERATOR_VERSION = 7
FORMAT = "commerceql-store"
DEFAULT_ORDERS = 50_000
DEFAULT_YEARS = 3
DEFAULT_SEED = 42
ENV_VAR = "COMMERCEQL_SAMPLE_STORE"


def _repo_dir() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def default_store_path() -> Path:
    """`<repo>/sample_data/store` in a source checkout when writable, else `~/.cache/commerceql/sample-store`.

    The environment variable COMMERCEQL_SAMPLE_STORE overrides both.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    repo = _repo_dir()
    sample_dir = repo / "sample_data"
    if (repo / "pyproject.toml").is_file() or sample_dir.is_dir():
        target = sample_dir if sample_dir.is_dir() else repo
        if os.access(target, os.W_OK):
            return sample_dir / "store"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "commerceql" / "sample-store"
