"""The examples in docs/language.md run, and their recorded outputs are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_language_examples_are_current(sample_store_path):
    process = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "build_docs.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stderr


def test_every_example_has_output_and_only_the_errors_section_shows_errors():
    text = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    body, errors = text.split("## Errors", 1)
    assert body.count("```cql") >= 25
    assert body.count("```cql") == body.count("```text")
    for marker in ("syntax error:", "name error:", "query error:", "execution error:"):
        assert marker not in body, f"an example outside the Errors section fails ({marker})"
    assert errors.count("error:") >= 3


def test_the_metric_reference_is_written_from_the_model():
    """docs/metrics.md lists every metric of every table with the model's own formula and definition."""
    process = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "metric_reference.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
