"""Finished columns parked on disk while the generator builds the rest of the store.

The sessions table (~10 rows per order, ~50 bytes a row) is built column by column; each finished
column goes to a file in a scratch folder instead of staying in memory, and the Parquet writer
reads it back a row group at a time. Only the rows the checkouts need are read back whole.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# rows read at a time when gathering scattered rows (bounded memory, few reads)
_GATHER_CHUNK = 4_000_000


def merge_positions(runs: list[np.ndarray]) -> list[np.ndarray]:
    """The row of each element of each sorted run in the stable sort of the runs concatenated.

    Equal to the inverse of `np.argsort(np.concatenate(runs), kind="stable")`, split by run (ties
    go to the earlier run, and keep their order within a run), without the full-length
    concatenation, argsort and inverse permutation: each element's row is its index in its run
    plus, for every other run, how many of its elements sort before it. The rows are int32 when
    there are fewer than 2**31 elements in all (half the memory of int64), else int64.
    """
    for run in runs:
        if len(run) > 1 and not bool(np.all(run[1:] >= run[:-1])):
            raise ValueError("merge_positions needs sorted runs")  # a generator bug, not bad input
    row_type = np.int32 if sum(len(run) for run in runs) < 2**31 else np.int64
    positions = []
    for index, run in enumerate(runs):
        position = np.arange(len(run), dtype=np.int64)
        for other_index, other in enumerate(runs):
            if other_index != index:
                # an earlier run's equal elements come first, a later run's come after
                position += np.searchsorted(other, run, side="right" if other_index < index else "left")
        positions.append(position.astype(row_type))
    return positions


class ScratchColumns:
    """Whole columns kept as raw files in `folder` (the caller creates and removes the folder)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._columns: dict[str, tuple[Path, np.dtype, int]] = {}

    def put(self, name: str, values: np.ndarray) -> None:
        path = self.folder / f"{name}.bin"
        values = np.ascontiguousarray(values)
        values.tofile(path)
        self._columns[name] = (path, values.dtype, len(values))

    def __len__(self) -> int:
        return next(iter(self._columns.values()))[2] if self._columns else 0

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of a column, as a new in-memory array."""
        path, dtype, length = self._columns[name]
        start, stop = max(start, 0), min(stop, length)
        with path.open("rb") as file:
            file.seek(start * dtype.itemsize)
            return np.fromfile(file, dtype=dtype, count=max(stop - start, 0))

    def take(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The column's values at `rows` (sorted ascending), read a chunk at a time."""
        _, dtype, length = self._columns[name]
        out = np.empty(len(rows), dtype=dtype)
        for start in range(0, length, _GATHER_CHUNK):
            lo, hi = np.searchsorted(rows, [start, start + _GATHER_CHUNK])
            if hi > lo:
                chunk = self.read(name, start, int(rows[hi - 1]) + 1)
                out[lo:hi] = chunk[rows[lo:hi] - start]
        return out

    def clear(self) -> None:
        for name in list(self._columns):
            self.drop(name)

    def drop(self, name: str) -> None:
        path, _, _ = self._columns.pop(name)
        path.unlink(missing_ok=True)
