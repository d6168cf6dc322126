"""Browser tests: register the `browser` marker (also listed in pyproject's pytest markers)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in a real browser (Chromium + Playwright)")
