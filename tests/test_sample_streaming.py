"""The sample generator's bounded-memory machinery: the merge of sorted session runs, the scratch
columns the sessions wait in before they are written, and the scratch folder's clean-up.

The merge is checked against NumPy's own stable argsort of the concatenated runs, and the scratch
columns against plain in-memory indexing (independent references, not the generator's output).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from commerceql.sample import _spill, generate_store
from commerceql.sample import generator as generator_module
from commerceql.sample._spill import ScratchColumns, merge_positions


def _stable_sort_rows(runs: list[np.ndarray]) -> list[np.ndarray]:
    """The reference: each element's row in np.argsort(concatenation, kind="stable"), split by run."""
    order = np.argsort(np.concatenate(runs), kind="stable")
    rows = np.empty(len(order), dtype=np.int64)
    rows[order] = np.arange(len(order))
    bounds = np.cumsum([0] + [len(run) for run in runs])
    return [rows[start:stop] for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_positions_equal_a_stable_sort_with_many_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    # small value ranges: many ties inside runs and across them; an empty run and a one-element run
    runs = [np.sort(rng.integers(0, 50, size)) for size in (400, 0, 1, 1_000, 37, 250)]
    expected = _stable_sort_rows(runs)
    got = merge_positions(runs)
    assert len(got) == len(expected)
    for run_rows, reference in zip(got, expected, strict=True):
        assert run_rows.dtype == np.int32  # fewer than 2**31 rows
        np.testing.assert_array_equal(run_rows, reference)
    # together the rows are a permutation of 0..N-1
    assert np.array_equal(np.sort(np.concatenate(got)), np.arange(sum(len(run) for run in runs)))


def test_merge_positions_refuse_an_unsorted_run() -> None:
    with pytest.raises(ValueError, match="sorted"):
        merge_positions([np.array([1, 2, 3]), np.array([5, 4])])


def test_scratch_columns_read_back_ranges_and_scattered_rows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_spill, "_GATHER_CHUNK", 1_000)  # several chunks for 10,000 rows
    rng = np.random.default_rng(5)
    values = {"wide": rng.integers(-(10**12), 10**12, 10_000), "narrow": rng.integers(-100, 100, 10_000).astype(np.int8),
              "flag": rng.random(10_000) < 0.3}
    columns = ScratchColumns(tmp_path)
    for name, column in values.items():
        columns.put(name, column)
    rows = np.sort(rng.choice(10_000, 2_345, replace=False))
    rows[-1] = 9_999  # the last row too
    for name, column in values.items():
        np.testing.assert_array_equal(columns.read(name, 1_234, 5_678), column[1_234:5_678])
        np.testing.assert_array_equal(columns.read(name, 9_990, 20_000), column[9_990:])
        taken = columns.take(name, rows)
        assert taken.dtype == column.dtype
        np.testing.assert_array_equal(taken, column[rows])
    columns.clear()
    assert list(tmp_path.iterdir()) == []


def test_the_scratch_folder_is_removed_after_a_store_is_written(tmp_path: Path) -> None:
    out = generate_store(tmp_path / "store", orders=500, years=1, seed=3)
    leftovers = [path.name for path in out.iterdir() if path.name.startswith(".")]
    assert leftovers == []
    assert (out / "sessions.parquet").stat().st_size > 0


@pytest.mark.parametrize("step", ["_keep_checkout_sessions", "_lines"])
def test_the_scratch_folder_is_removed_when_generation_fails(tmp_path: Path, monkeypatch, step: str) -> None:
    # before the sessions file is written, and while it is written in the background
    def fail(self, *args) -> None:
        assert any(self.scratch.iterdir())  # the session columns are in the scratch folder by now
        raise RuntimeError("boom")

    monkeypatch.setattr(generator_module._Builder, step, fail)
    out = tmp_path / "store"
    with pytest.raises(RuntimeError, match="boom"):
        generate_store(out, orders=500, years=1, seed=3)
    assert [path.name for path in out.iterdir() if path.name.startswith(".")] == []

def test_builder_columns_are_held_narrow_and_read_back_as_int64() -> None:
    builder = object.__new__(generator_module._Builder)  # the attribute machinery only
    n = generator_module.NARROW_FROM
    values = {"small": np.arange(n, dtype=np.int64) % 100 - 50, "medium": np.arange(n, dtype=np.int64) * 3,
              "cents": np.arange(n, dtype=np.int64) * 20_000, "wide": np.arange(n, dtype=np.int64) << 33}
    held = {"small": np.int8, "medium": np.int32, "cents": np.int32, "wide": np.int64}
    for name, column in values.items():
        setattr(builder, name, column.copy())
    builder.short = np.arange(10, dtype=np.int64)  # below NARROW_FROM: kept as it is
    for name, column in values.items():
        got = getattr(builder, name)
        assert got.dtype == np.int64, name
        np.testing.assert_array_equal(got, column)
        stored = builder._narrow.get(name, builder.__dict__.get(name))
        assert stored.dtype == held[name], name
        rows = np.array([0, 7, n - 1])
        part = builder._rows_of(name, rows)
        assert part.dtype == np.int64
        np.testing.assert_array_equal(part, column[rows])
    assert builder.short.dtype == np.int64 and "short" in vars(builder)
    with pytest.raises(ValueError, match="read-only"):  # a write would only change a widened copy
        builder.medium[0] = 1
    builder.small = np.arange(n, dtype=np.int64) * 2  # reassigning replaces the held column
    assert builder.small.max() == 2 * (n - 1)
    del builder.small
    with pytest.raises(AttributeError):
        _ = builder.small


def test_a_killed_builds_scratch_folder_is_cleared_by_the_next_build(tmp_path: Path) -> None:
    """SIGKILL skips the clean-up: the next `commerceql sample --out` there still writes the store."""
    import argparse

    from commerceql.sample.cli import add_sample_arguments, run_sample

    out = tmp_path / "store"
    leftover = out / f"{generator_module.SCRATCH_PREFIX}killed"
    leftover.mkdir(parents=True)
    (leftover / "s_started.npy").write_bytes(b"half written")
    parser = argparse.ArgumentParser()
    add_sample_arguments(parser)
    assert run_sample(parser.parse_args(["--orders", "300", "--years", "1", "--out", str(out)])) == 0
    assert (out / "manifest.json").is_file()
    assert not list(out.glob(f"{generator_module.SCRATCH_PREFIX}*"))
