"""Shared fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def sample_store_path():
    from commerceql.sample import ensure_default_store

    return ensure_default_store()
