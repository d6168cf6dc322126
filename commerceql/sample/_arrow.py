"""Fast, exact Arrow column builders and the deterministic Parquet writer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

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


def write_table(path: Path, columns: dict[str, pa.Array], sorted_columns: Sequence[str] = ()) -> int:
    """Write one Parquet file, deterministically.

    Dictionary (categorical) and list columns are dictionary-encoded; other columns are plain (their
    values are mostly unique), with min/max statistics so DuckDB can skip row groups on time and id filters.
    Sorted integer/timestamp columns (ids, the time column) use delta encoding.
    """
    table = pa.table(columns)
    dictionary, stats = [], []
    for f in table.schema:
        if pa.types.is_dictionary(f.type) or pa.types.is_list(f.type):
            dictionary.append(f.name)
        elif not pa.types.is_string(f.type):
            stats.append(f.name)
    encoding = {name: "DELTA_BINARY_PACKED" for name in sorted_columns}
    pq.write_table(
        table,
        path,
        compression="zstd",
        compression_level=1,
        row_group_size=ROW_GROUP,
        use_dictionary=dictionary,
        write_statistics=stats,
        column_encoding=encoding or None,
        store_schema=True,
    )
    return table.num_rows
