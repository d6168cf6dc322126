"""The scale benchmark (`make bench-scale`, 100M sales rows) at 1M rows, so it cannot rot.

Only its correctness is checked here — every benchmark query agrees with its hand-written SQL on the
replicated store, and every figure is printed — never its speed (CI is a busy 2-core machine).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# `benchmarks` is a folder of the repository, not an installed package (see test_fuzz_slice.py).
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.run import QUERIES  # noqa: E402


@pytest.mark.slow
def test_the_scale_benchmark_runs_and_agrees_with_hand_written_sql(sample_store_path):
    process = subprocess.run(
        [sys.executable, "-m", "benchmarks.scale", "--rows", "1000000", "--repeat", "1", "--check"],
        capture_output=True, text=True, cwd=ROOT, timeout=1800,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    assert "MISMATCH" not in process.stdout
    lines = process.stdout.splitlines()
    for name, _text, _sql in QUERIES:
        row = next((line for line in lines if line.strip().startswith(name)), None)
        assert row is not None, f"no figures for {name!r}:\n{process.stdout}"
        assert row.rstrip().endswith(("no", "GB")) and "x" in row, row
    assert any("geometric mean ratio" in line for line in lines)
