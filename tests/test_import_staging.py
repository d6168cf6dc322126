"""Columnar staging (`shopify._stage_columnar`) against the row-by-row stage (`shopify._stage`).

The columnar stage reads an export twice with DuckDB: once in batches for the statistics (time
zone samples, spreadsheet notes, currencies, whether each order's rows are adjacent, line numbers),
and again as the staged rows themselves, a query over the CSV joined by position to the line
numbers. Everything it learns must not depend on where the batches fall, so each test stages the
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
    return staged


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
