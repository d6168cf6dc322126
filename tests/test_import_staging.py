"""Columnar staging (`shopify._stage_columnar`) against the row-by-row stage (`shopify._stage`).

The columnar stage reads an export twice with DuckDB: once in batches for the statistics (time
zone samples, spreadsheet notes, currencies, whether each order's rows are adjacent, line numbers),
and again as the staged rows themselves, a query over the CSV joined by position to the line
numbers. A plain orders export is read a third way too, by Polars' CSV reader for the order stream
(`_reread_order_rows`): those rows must be the staged rows, value for value. Everything it learns must not depend on where the batches fall, so each test stages the
same file row by row and columnar with several batch sizes (one record per batch, a few, the
default) and requires the same statistics and the same staged rows.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from commerceql.importers import shopify
from commerceql.importers.common import SourceFile, open_csv

SHOPIFY = Path(__file__).resolve().parents[1].parent / "shared" / "realdata" / "shopify"
needs_realdata = pytest.mark.skipif(
    not SHOPIFY.is_dir() and os.environ.get("CI") != "true",
    reason=f"real Shopify exports not found at {SHOPIFY} (they are required when CI=true)",
)
STATISTICS = ("currencies", "countries", "spreadsheet", "money_with_decimals", "money_values", "scientific_ids",
              "financial_statuses", "head_rows", "names_like_ids", "contiguous")


def _classified(path: Path) -> shopify.Classified:
    reader = open_csv(path)
    header = reader.header
    reader.close()
    return shopify.classify(path, header)


def _source(path: Path, kind: str) -> SourceFile:
    return SourceFile(path=str(path), kind=kind, sha256="", bytes=path.stat().st_size)


def _summary(staged: shopify.StagedFile) -> dict[str, Any]:
    styles = {key: {k: v for k, v in vars(style).items() if k != "_seen"} for key, style in staged.styles.items()}
    return {"styles": styles, "style_order": list(staged.styles), "records": staged.source.records,
            "kind": staged.classified.kind, **{name: getattr(staged, name) for name in STATISTICS}}


def _rows(staged: shopify.StagedFile) -> list[tuple[Any, ...]]:
    con = duckdb.connect()
    try:
        con.execute("SET memory_limit = '1GB'")
        return con.execute(f"SELECT * FROM {staged.staged} ORDER BY _line").fetchall()
    finally:
        con.close()


def _compare_stages(path: Path, work: Path, monkeypatch: pytest.MonkeyPatch) -> shopify.StagedFile:
    """Stage `path` row by row and columnar (batch sizes 1, 3 and the default); all must agree."""
    reference = shopify._stage(_classified(path), 0, _source(path, "orders"), work / "rows", False)
    expected, expected_rows = _summary(reference), _rows(reference)
    assert expected_rows, "the export has records"
    for batch in (1, 3, shopify._STATS_BATCH_ROWS):
        monkeypatch.setattr(shopify, "_STATS_BATCH_ROWS", batch)
        classified = _classified(path)
        staged = shopify._stage_columnar(classified, 0, _source(path, classified.kind), work / f"columnar-{batch}", 1,
                                         False)
        assert _summary(staged) == expected, f"batches of {batch}"
        assert _rows(staged) == expected_rows, f"batches of {batch}"
        if staged.record_starts is not None and classified.kind == "orders":
            assert _reread_rows(staged) == expected_rows, f"read again by Polars, batches of {batch}"
    return staged


def _reread_rows(staged: shopify.StagedFile) -> list[tuple[Any, ...]]:
    """The rows the order stream reads again from the export (`_reread_order_rows`), as staged."""
    frames = list(shopify._reread_order_rows(staged))
    assert frames, "the export has records"
    keys = list(staged.classified.columns)
    return [tuple(row) for frame in frames for row in frame.select(*keys, "_file", "_line").iter_rows()]


def _rewrite(source: Path, target: Path, reorder: Any) -> Path:
    with open(source, encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        records = list(reader)
    with open(target, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n")
        writer.writerow(header)
        writer.writerows(reorder(header, records))
    return target


@needs_realdata
@pytest.mark.parametrize("export", ["kidsliving/orders_export.csv", "explorer_analytics/orders_export_1.csv",
                                    "customer_vip/customers_export_1.csv"])
def test_statistics_do_not_depend_on_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, export: str) -> None:
    _compare_stages(SHOPIFY / export, tmp_path, monkeypatch)


@needs_realdata
def test_multi_line_fields_keep_their_line_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Notes written over several lines: each later record's line is where Python's reader starts it."""

    def with_notes(header: list[str], records: list[list[str]]) -> list[list[str]]:
        notes = header.index("Notes")
        for i, record in enumerate(records[:30]):
            if i % 4 == 1:
                record[notes] = "first line\nsecond line\r\nthird"
        return records[:30]

    path = _rewrite(SHOPIFY / "kidsliving" / "orders_export.csv", tmp_path / "orders_export.csv", with_notes)
    assert shopify._record_lines(path).starts is not None  # found from the bytes
    staged = _compare_stages(path, tmp_path, monkeypatch)
    lines = [row[-1] for row in _rows(staged)]
    assert lines[:3] == [2, 3, 6]  # the second record takes three physical lines


@needs_realdata
def test_an_order_seen_again_later_is_not_contiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first order's rows come back at the end (past every batch boundary): not contiguous."""

    def first_order_again(header: list[str], records: list[list[str]]) -> list[list[str]]:
        name = header.index("Name")
        first = [r for r in records if r[name] == records[0][name]]
        return records[:40] + [list(r) for r in first]

    path = _rewrite(SHOPIFY / "kidsliving" / "orders_export.csv", tmp_path / "orders_export.csv", first_order_again)
    staged = _compare_stages(path, tmp_path, monkeypatch)
    assert staged.contiguous is False


@needs_realdata
def test_an_order_across_a_batch_boundary_stays_contiguous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Orders of several rows cut by one-record batches: still adjacent, so still contiguous."""

    def multi_row_orders(header: list[str], records: list[list[str]]) -> list[list[str]]:
        name = header.index("Name")
        counts: dict[str, int] = {}
        for r in records:
            counts[r[name]] = counts.get(r[name], 0) + 1
        assert any(n > 1 for n in counts.values()), "the export has orders of several rows"
        return records[:60]

    path = _rewrite(SHOPIFY / "kidsliving" / "orders_export.csv", tmp_path / "orders_export.csv", multi_row_orders)
    staged = _compare_stages(path, tmp_path, monkeypatch)
    assert staged.contiguous is True


def _staged_both_ways(path: Path, work: Path, monkeypatch: pytest.MonkeyPatch, *, by_bytes: bool) -> None:
    """`_compare_stages`, and whether the line numbers came from the bytes (`_record_lines`)."""
    assert (shopify._record_lines(path).starts is not None) is by_bytes
    _compare_stages(path, work, monkeypatch)


@needs_realdata
@pytest.mark.parametrize("block", [1, 2, 3, 7, 64])
def test_record_lines_do_not_depend_on_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Quotes, \\r\\n pairs and line feeds cut across blocks of a few bytes: the same record lines."""

    def awkward(header: list[str], records: list[list[str]]) -> list[list[str]]:
        notes = header.index("Notes")
        for i, record in enumerate(records[:12]):
            record[notes] = ['say "hi"\r\nthen\nbye', '""', ",\n,", ""][i % 4]
        return records[:12]

    path = _rewrite(SHOPIFY / "kidsliving" / "orders_export.csv", tmp_path / "orders_export.csv", awkward)
    expected = shopify._record_lines(path)
    monkeypatch.setattr(shopify, "_RECORD_BLOCK_BYTES", block)
    found = shopify._record_lines(path)
    assert found.starts is not None and expected.starts is not None
    assert found.starts.tolist() == expected.starts.tolist()
    assert (found.physical, found.lone_returns, found.empty_record) == (expected.physical, 0, False)
    _staged_both_ways(path, tmp_path, monkeypatch, by_bytes=True)


@needs_realdata
def test_a_literal_quote_in_an_unquoted_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`5" screen` unquoted: counting quotes would misread it, so the breaks are counted per field."""
    source = SHOPIFY / "kidsliving" / "orders_export.csv"
    text = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    header = text[0].split(",")
    notes = header.index("Notes")
    fields = text[1].split(",")
    assert len(fields) == len(header), "the first record has no commas inside its fields"
    fields[notes] = '5" screen'
    path = tmp_path / "orders_export.csv"
    path.write_text("".join([text[0], ",".join(fields), *text[2:40]]), encoding="utf-8")
    _staged_both_ways(path, tmp_path, monkeypatch, by_bytes=False)


@needs_realdata
@pytest.mark.parametrize("ending", ["", "\r\n"])
def test_quoted_header_and_last_line_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ending: str) -> None:
    """A header with quoted names after a byte-order mark; the file ends with or without a line end."""
    source = SHOPIFY / "kidsliving" / "orders_export.csv"
    with open(source, encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle))[:25]
    path = tmp_path / "orders_export.csv"
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
        writer.writerow(rows[0])
        csv.writer(handle, lineterminator="\r\n").writerows(rows[1:])
    body = path.read_bytes().rstrip(b"\r\n") + ending.encode()
    path.write_bytes(body)
    _staged_both_ways(path, tmp_path, monkeypatch, by_bytes=True)


@needs_realdata
def test_a_blank_line_is_left_to_the_row_stage(tmp_path: Path) -> None:
    source = SHOPIFY / "kidsliving" / "orders_export.csv"
    text = source.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    path = tmp_path / "orders_export.csv"
    path.write_text("".join([*text[:10], "\r\n", *text[10:20]]), encoding="utf-8")
    assert shopify._record_lines(path).empty_record
    classified = _classified(path)
    with pytest.raises(shopify._NotColumnar):
        shopify._stage_columnar(classified, 0, _source(path, classified.kind), tmp_path / "columnar", 1, False)


def test_compacted_text_keeps_every_value_and_its_place() -> None:
    """What staging keeps of each batch is copied out of the batch's buffers (_compacted): the same
    values, None and empty text among them, in the same places, under the same name."""
    import polars as pl

    from commerceql.importers.shopify import _compacted

    batch = pl.Series("created_at", [f"2024-03-{d:02d} 10:00:00 -0500" for d in range(1, 29)] + ["", None, "é ü"])
    kept = batch.gather([27, 0, 28, 29, 30, 0])
    compact = _compacted(kept)
    assert compact.dtype == pl.String and compact.name == "created_at"
    assert compact.to_list() == ["2024-03-28 10:00:00 -0500", "2024-03-01 10:00:00 -0500", "", None, "é ü",
                                 "2024-03-01 10:00:00 -0500"]
    assert _compacted(batch.clear()).to_list() == []
