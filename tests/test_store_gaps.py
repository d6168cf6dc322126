"""Fields a store has no data for are refused with the reason, not answered empty or zero.

Shopify's order export carries no return reasons nor restocking, so an imported store refuses
`return_line_item_reason`, `is_restocked`, `restocked_quantity`, ... (docs/importing.md); a store's
manifest can declare such fields itself under `unavailable_fields`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import commerceql as cql
from commerceql.errors import CommerceQLDataError, CommerceQLNameError
from commerceql.importers.shopify import import_shopify
from commerceql.organization import build_organization, shops_in
from commerceql.store_gaps import IMPORTER_GAPS

SHOPIFY = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "shopify"
# A real export whose orders include returned lines (refund line items of kind 'return').
WITH_RETURNS = "dna_crm"
EVERYTHING = "SINCE 2000-01-01 UNTIL today"


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (SHOPIFY / WITH_RETURNS).is_dir():
        pytest.skip("the real Shopify exports (../shared/realdata/shopify) are not here")
    out = tmp_path_factory.mktemp("gaps") / "store"
    import_shopify([SHOPIFY / WITH_RETURNS], out)
    return out


def _copy_with(store: Path, target: Path, **changes: object) -> Path:
    shutil.copytree(store, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest.update(changes)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def test_an_imported_store_refuses_return_reasons_at_the_name(imported: Path):
    query = f"FROM returns SHOW returned_quantity GROUP BY return_line_item_reason {EVERYTHING}"
    with cql.connect(imported) as store, pytest.raises(CommerceQLNameError) as caught:
        store.query(query)
    error = caught.value
    assert "`return_line_item_reason`" in error.message
    assert "Shopify's order export carries no return reasons" in error.message
    assert error.span is not None and error.span.column == query.index("return_line_item_reason") + 1
    assert "schema returns" in (error.hint or "")
    assert "^" in error.render()


@pytest.mark.parametrize("field", ["restocked_quantity", "restock_rate"])
def test_restocking_metrics_are_refused_rather_than_zero(imported: Path, field: str):
    with cql.connect(imported) as store, pytest.raises(CommerceQLNameError, match="went back into stock"):
        store.query(f"FROM returns SHOW {field} {EVERYTHING}")


@pytest.mark.parametrize("condition", ["is_restocked", "return_restock_type = 'return'"])
def test_restocking_dimensions_are_refused_in_where(imported: Path, condition: str):
    with cql.connect(imported) as store, pytest.raises(CommerceQLNameError, match="has no data for"):
        store.query(f"FROM returns SHOW returned_quantity WHERE {condition} {EVERYTHING}")


def test_the_fields_it_has_still_answer_and_agree_with_the_raw_tables(imported: Path):
    with cql.connect(imported) as store:
        returned = store.sql(
            "SELECT COALESCE(SUM(rl.quantity), 0) AS q FROM refund_line_items rl "
            "JOIN refunds r USING (refund_id) WHERE r.kind = 'return'"
        )["q"].item()
        frame = store.query(f"FROM returns SHOW returned_quantity {EVERYTHING}").df
        listed = store.model.table("returns")
    assert returned > 0, "the chosen export should have returned lines"
    assert frame["returned_quantity"].to_list() == [returned]
    assert "return_line_item_reason" not in listed.dimensions and "restock_rate" not in listed.metrics
    assert "returned_quantity" in listed.metrics


def test_the_sample_store_keeps_every_field(sample_store_path: Path):
    with cql.connect(sample_store_path) as store:
        returns = store.model.table("returns")
    for field in IMPORTER_GAPS["shopify"]["returns"]:
        assert field in returns.dimensions or field in returns.metrics


def test_a_declared_gap_removes_the_metrics_built_on_it(sample_store_path: Path, tmp_path: Path):
    """restock_rate is computed from {restocked_quantity}: declaring only the latter refuses both."""
    store_path = _copy_with(sample_store_path, tmp_path / "store",
                            unavailable_fields={"returns": {"restocked_quantity": "not recorded here"}})
    with cql.connect(store_path) as store:
        for field in ("restocked_quantity", "restock_rate"):
            with pytest.raises(CommerceQLNameError, match="not recorded here"):
                store.query(f"FROM returns SHOW {field} {EVERYTHING}")
        assert "return_line_item_reason" in store.model.table("returns").dimensions


def test_a_malformed_declaration_is_a_clear_error(sample_store_path: Path, tmp_path: Path):
    store_path = _copy_with(sample_store_path, tmp_path / "store", unavailable_fields={"returns": ["reason"]})
    with pytest.raises(CommerceQLDataError, match="malformed `unavailable_fields`"):
        cql.connect(store_path)


def test_an_organization_refuses_a_field_only_where_no_shop_has_it(imported: Path, tmp_path: Path):
    folder = tmp_path / "shops"
    _copy_with(imported, folder / "imported-a", name="Shop A")
    _copy_with(imported, folder / "imported-b", name="Shop B")
    both = build_organization(shops_in(folder), tmp_path / "org-imports")
    assert json.loads((both / "manifest.json").read_text())["unavailable_fields"] == IMPORTER_GAPS["shopify"]
    with cql.connect(both) as store, pytest.raises(CommerceQLNameError, match="no return reasons"):
        store.query(f"FROM ORGANIZATION returns SHOW returns GROUP BY return_line_item_reason {EVERYTHING}")

    _copy_with(imported, folder / "with-reasons", name="Shop C", unavailable_fields={})  # has every field
    mixed = build_organization(shops_in(folder), tmp_path / "org-mixed")
    assert "unavailable_fields" not in json.loads((mixed / "manifest.json").read_text())


def test_a_money_only_refund_is_not_a_return(tmp_path: Path):
    """A goodwill refund the importer spreads over the lines has no units: a refund, not a return."""
    if not (SHOPIFY / "explorer_analytics").is_dir():
        pytest.skip("the real Shopify exports (../shared/realdata/shopify) are not here")
    out = tmp_path / "store"
    import_shopify([SHOPIFY / "explorer_analytics"], out)
    with cql.connect(out) as store:
        by_units = store.sql(
            "SELECT rl.quantity > 0 AS with_units, COUNT(DISTINCT rl.refund_id) AS refunds, "
            "SUM(rl.subtotal) AS amount FROM refund_line_items rl JOIN refunds r USING (refund_id) "
            "WHERE r.kind = 'return' GROUP BY ALL"
        )
        answer = store.query(f"FROM returns SHOW returns, returned_amount {EVERYTHING}").df
    money_only = by_units.filter(~by_units["with_units"])
    assert money_only.height == 1 and money_only["refunds"].item() > 0, "the export should have one"
    with_units = by_units.filter(by_units["with_units"])
    expected = with_units["refunds"].sum() if with_units.height else 0
    assert answer["returns"].to_list() == [expected]
    amount = with_units["amount"].sum() if with_units.height else 0
    assert float(answer["returned_amount"].item()) == pytest.approx(float(amount), abs=0.005)
