"""The pipeline's stages depend one way: the compiler never imports the resolver, nor the reverse."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("module", "must_not_load"),
    [
        ("commerceql.compiler", "commerceql.resolver"),
        ("commerceql.resolver", "commerceql.compiler"),
        ("commerceql.dialect", "commerceql.compiler"),
        ("commerceql.parser", "commerceql.resolver"),
    ],
)
def test_stage_imports_stay_one_way(module: str, must_not_load: str) -> None:
    code = f"import sys, {module}; print({must_not_load!r} in sys.modules)"
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "False"
