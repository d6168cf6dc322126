"""Fast, exact Arrow column builders and the deterministic Parquet writer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MONEY = pa.decimal128(18, 2)
TIMESTAMP = pa.timestamp("us", tz="UTC")
ROW_GROUP = 1_000_000


def money(cents: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """DECIMAL(18,2) from integer cents, exactly (no float round trip)."""
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    words = np.empty((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63  # sign extension into the high 64 bits
    validity = None
    null_count = 0
    if null is not None and null.any():
        validity = pa.py_buffer(np.packbits(~null, bitorder="little").tobytes())
        null_count = int(null.sum())
    return pa.Array.from_buffers(MONEY, len(cents), [validity, pa.py_buffer(words.tobytes())], null_count)


def timestamp(us: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """TIMESTAMPTZ from UTC microseconds, truncated to whole seconds as in Shopify's data."""
    us = np.asarray(us, dtype=np.int64) // 1_000_000
    us *= 1_000_000
    if null is not None and null.any():
        return pa.array(us, type=pa.int64(), mask=null).cast(TIMESTAMP)
    return pa.array(us, type=pa.int64()).cast(TIMESTAMP)


INT64 = pa.int64()


def ints(values: np.ndarray, null: np.ndarray | None = None, type: pa.DataType = INT64) -> pa.Array:
    values = np.asarray(values)
    if null is not None and null.any():
        return pa.array(values, mask=null).cast(type)
    return pa.array(values).cast(type)


def bools(values: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    values = np.asarray(values, dtype=bool)
    if null is not None and null.any():
        return pa.array(values, mask=np.asarray(null, dtype=bool), type=pa.bool_())
    return pa.array(values, type=pa.bool_())


def categorical(codes: np.ndarray, labels: Sequence[str], null: np.ndarray | None = None) -> pa.Array:
    """A dictionary-encoded string column (read as VARCHAR): codes index into `labels`.

    Negative codes are NULL. `labels` must be unique; unused labels are harmless.
    """
    codes = np.asarray(codes)
    if codes.dtype not in (np.int8, np.int16, np.int32):
        codes = codes.astype(np.int16 if len(labels) < 32_000 else np.int32)
    negative = codes < 0
    null = negative if null is None else (null | negative)
    if null.any():
        index_array = pa.array(np.where(null, 0, codes).astype(codes.dtype), mask=null)
    else:
        index_array = pa.array(codes)
    return pa.DictionaryArray.from_arrays(index_array, pa.array(list(labels), type=pa.string()))


def strings(values: Sequence[str | None]) -> pa.Array:
    return pa.array(values, type=pa.string())


def string_lists(offsets: np.ndarray, values: Sequence[str]) -> pa.Array:
    """list<string> (DuckDB VARCHAR[]) from offsets (len n+1) and flat values."""
    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, dtype=np.int32)), pa.array(values, type=pa.string()))


# Builds the Arrow columns of rows [start, stop) of a table (numpy slices turned into Arrow arrays):
# how a large table is written a row group at a time instead of as one whole in-memory copy.
RowSlicer = Callable[[int, int], "dict[str, pa.Array] | pa.Table"]


@dataclass(frozen=True)
class ChunkedTable:
    """A table of `num_rows` rows handed to the writer slice by slice (see `RowSlicer`).

    `from_files`: the rows are read from files as they are written, so writing them holds no more
    than a row group in memory and the generator can build on meanwhile.
    """

    num_rows: int
    rows: RowSlicer
    from_files: bool = False


def _writer_options(schema: pa.Schema, sorted_columns: Sequence[str]) -> dict[str, Any]:
    dictionary, stats = [], []
    for f in schema:
        if pa.types.is_dictionary(f.type) or pa.types.is_list(f.type):
            dictionary.append(f.name)
        elif not pa.types.is_string(f.type):
            stats.append(f.name)
    encoding = {name: "DELTA_BINARY_PACKED" for name in sorted_columns}
    return {
        "compression": "zstd",
        "compression_level": 1,
        "use_dictionary": dictionary,
        "write_statistics": stats,
        "column_encoding": encoding or None,
        "store_schema": True,
    }


def write_table(path: Path, columns: dict[str, pa.Array] | ChunkedTable, sorted_columns: Sequence[str] = (),
                row_group: int = ROW_GROUP) -> int:
    """Write one Parquet file, deterministically.

    Dictionary (categorical) and list columns are dictionary-encoded; other columns are plain (their
    values are mostly unique), with min/max statistics so DuckDB can skip row groups on time and id filters.
    Sorted integer/timestamp columns (ids, the time column) use delta encoding.

    A `ChunkedTable` is converted and written one row group at a time, so only one row group's
    Arrow copy is alive at once. The row groups are the same as those of the whole table written in
    one go, and so are the bytes (the sample store's files do not depend on how they were written).
    """
    if isinstance(columns, ChunkedTable):
        chunked = columns
    else:
        whole = pa.table(columns)
        chunked = ChunkedTable(whole.num_rows, lambda start, stop: whole.slice(start, stop - start))
    first = chunked.rows(0, min(row_group, chunked.num_rows))
    first_table = first if isinstance(first, pa.Table) else pa.table(first)
    with pq.ParquetWriter(path, first_table.schema, **_writer_options(first_table.schema, sorted_columns)) as writer:
        writer.write_table(first_table, row_group_size=row_group)
        del first, first_table
        for start in range(row_group, chunked.num_rows, row_group):
            part = chunked.rows(start, min(start + row_group, chunked.num_rows))
            writer.write_table(part if isinstance(part, pa.Table) else pa.table(part), row_group_size=row_group)
    return chunked.num_rows
