"""Import output that survives kills, concurrent imports and readers, and bad --out paths / inputs
that end as one clear error line instead of an internal error.

Kills are simulated deterministically with the test hook COMMERCEQL_TEST_CRASH_AT (the import
process calls os._exit(137) at the named step); concurrency is tested by holding the import lock
in the test process. Nothing waits on a clock.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import commerceql as cql
from commerceql.cli import main as cli_main
from commerceql.errors import CommerceQLDataError
from commerceql.importers import CommerceQLImportError, import_shopify, import_table
from commerceql.importers.common import CRASH_ENV, import_memory_limit, lock_path_for, target_lock

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
SHOPIFY = REALDATA / "shopify"
needs_realdata = pytest.mark.skipif(
    not SHOPIFY.is_dir() and os.environ.get("CI") != "true",
    reason=f"real Shopify exports not found at {SHOPIFY} (they are required when CI=true)",
)
KIDSLIVING = SHOPIFY / "kidsliving" / "orders_export.csv"  # 50 orders, net sales 115,951.33 ZAR
KIDSLIVING_NET = Decimal("115951.33")

MAPPING = """\
[sales]
order = "order"
happened_at = "date"
gross_sales = "amount"
"""


def _source(folder: Path, amounts: list[str], name: str = "data.csv") -> Path:
    """A tiny sales CSV: one order per amount."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order", "date", "amount"])
        for number, amount in enumerate(amounts, start=1):
            writer.writerow([str(number), f"2024-01-{number:02d}", amount])
    return path


def _mapping(folder: Path) -> Path:
    path = folder / "mapping.toml"
    path.write_text(MAPPING, encoding="utf-8")
    return path


def _gross(store_path: Path) -> Decimal:
    with cql.connect(store_path) as store:
        return Decimal(str(store.query("FROM sales SHOW gross_sales").df["gross_sales"][0]))


def _run_cli(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`commerceql import ...` in a child process (the way a user runs it, and killable)."""
    return subprocess.run(
        [sys.executable, "-m", "commerceql.cli", "import", *args, "--no-progress"],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300, check=False,
    )


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def first_store(tmp_path: Path) -> Path:
    """A store imported once: gross sales 22.50."""
    out = tmp_path / "store"
    import_table(_source(tmp_path / "v1", ["10.00", "12.50"]), _mapping(tmp_path), out)
    return out


# ---------------------------------------------------------------------------------------------
# the layout


def test_a_store_is_a_versioned_folder_with_the_manifest_written_last(first_store: Path, tmp_path: Path) -> None:
    manifest = json.loads((first_store / "manifest.json").read_text())
    version = manifest["version"]
    assert version.startswith("v-")
    assert set(manifest["tables"].values()) == {f"{version}/{t}.parquet" for t in manifest["tables"]}
    assert manifest["previous_files"] == []
    assert _entries(first_store) == ["import_report.json", "manifest.json", "mapping.toml", version]
    assert not lock_path_for(first_store).exists()  # the lock file goes away with the import
    assert _entries(tmp_path) == ["mapping.toml", "store", "v1"]  # nothing else beside the store
    assert _gross(first_store) == Decimal("22.50")


def test_a_model_written_by_the_import_is_found_through_the_model_link(tmp_path: Path) -> None:
    mapping = _mapping(tmp_path)
    mapping.write_text(MAPPING + '\n[model.sales.metrics.doubled]\nsql = "SUM(sales.gross_sales) * 2"\n'
                       'type = "money"\ndescription = "Twice the gross sales."\n', encoding="utf-8")
    out = tmp_path / "store"
    import_table(_source(tmp_path / "v1", ["10.00"]), mapping, out)
    import_table(_source(tmp_path / "v2", ["4.00"]), mapping, out, overwrite=True)
    version = json.loads((out / "manifest.json").read_text())["version"]
    assert (out / "model").is_symlink() and os.readlink(out / "model") == f"{version}/model"
    with cql.connect(out) as store:
        assert Decimal(str(store.query("FROM sales SHOW doubled").df["doubled"][0])) == Decimal("8.00")


# ---------------------------------------------------------------------------------------------
# kills


@pytest.mark.parametrize(("point", "expected"), [
    ("staging", Decimal("22.50")),       # the new version was written but not yet renamed into place
    ("before-swap", Decimal("22.50")),   # the new version is in place, the manifest still names the old
    ("after-swap", Decimal("300.00")),   # the manifest was replaced: the new store is complete
])
def test_a_killed_reimport_leaves_a_store_that_opens_and_the_next_import_cleans_up(
    first_store: Path, tmp_path: Path, point: str, expected: Decimal
) -> None:
    source = _source(tmp_path / "v2", ["100.00", "200.00"])
    done = _run_cli(["table", str(source), "--mapping", str(_mapping(tmp_path)), "--out", str(first_store),
                     "--force"], env={CRASH_ENV: point})
    assert done.returncode == 137, done.stderr
    assert _gross(first_store) == expected
    # The next import finds the leftovers (a stale lock file, a staging or version folder) and
    # removes them: only the new version and the one its manifest replaced remain.
    import_table(_source(tmp_path / "v3", ["1.00"]), _mapping(tmp_path), first_store, overwrite=True)
    assert _gross(first_store) == Decimal("1.00")
    manifest = json.loads((first_store / "manifest.json").read_text())
    versions = {Path(p).parts[0] for p in [*manifest["tables"].values(), *manifest["previous_files"]]}
    assert len(versions) == 2
    assert _entries(first_store) == sorted(["import_report.json", "manifest.json", "mapping.toml", *versions])
    assert not lock_path_for(first_store).exists()


def test_a_first_import_killed_before_the_swap_leaves_no_store_and_the_next_one_works(tmp_path: Path) -> None:
    out = tmp_path / "store"
    source = _source(tmp_path / "v1", ["5.00"])
    done = _run_cli(["table", str(source), "--mapping", str(_mapping(tmp_path)), "--out", str(out)],
                    env={CRASH_ENV: "before-swap"})
    assert done.returncode == 137, done.stderr
    with pytest.raises(CommerceQLDataError, match="has no manifest.json"):
        cql.connect(out)
    # No --force needed: what is in the folder is only the killed import's own leftovers.
    import_table(source, _mapping(tmp_path), out)
    assert _gross(out) == Decimal("5.00")
    assert len([p for p in out.iterdir() if p.name.startswith("v-")]) == 1


def test_staging_folders_of_the_older_layout_are_removed_by_the_next_import(tmp_path: Path) -> None:
    out = tmp_path / "store"
    for leftover in (".store-importing-k1ll3d", ".store-old-4242", ".store-generating-x"):
        (tmp_path / leftover / "_work").mkdir(parents=True)
    unrelated = tmp_path / ".storefront-importing-keep"  # another folder's name: not ours to remove
    unrelated.mkdir()
    import_table(_source(tmp_path / "v1", ["5.00"]), _mapping(tmp_path), out)
    assert _entries(tmp_path) == [".storefront-importing-keep", "mapping.toml", "store", "v1"]


# ---------------------------------------------------------------------------------------------
# two imports into one folder


def test_a_second_import_while_one_runs_fails_clearly_and_changes_nothing(first_store: Path, tmp_path: Path) -> None:
    source = _source(tmp_path / "v2", ["100.00"])
    before = (first_store / "manifest.json").read_bytes()
    with target_lock(first_store.resolve()):  # this process is "the import that runs"
        done = _run_cli(["table", str(source), "--mapping", str(_mapping(tmp_path)), "--out", str(first_store),
                         "--force"])
        assert done.returncode == 2
        assert done.stderr.splitlines()[0] == (
            f"data error: another import into {first_store.resolve()} is running (pid {os.getpid()})"
        )
        with pytest.raises(CommerceQLDataError, match="another import into .* is running"):
            import_table(source, _mapping(tmp_path), first_store, overwrite=True)
    assert (first_store / "manifest.json").read_bytes() == before
    assert _gross(first_store) == Decimal("22.50")


def test_a_second_import_into_a_new_folder_fails_instead_of_replacing_the_first(tmp_path: Path) -> None:
    out = tmp_path / "new-store"
    with target_lock(out.resolve()):
        with pytest.raises(CommerceQLDataError, match=rf"another import into .*new-store is running \(pid {os.getpid()}\)"):
            import_table(_source(tmp_path / "v1", ["1.00"]), _mapping(tmp_path), out)
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# readers during a re-import


def test_an_open_store_keeps_its_data_through_a_reimport_and_a_new_one_sees_the_new_data(
    first_store: Path, tmp_path: Path
) -> None:
    with cql.connect(first_store) as old:
        assert Decimal(str(old.query("FROM sales SHOW gross_sales").df["gross_sales"][0])) == Decimal("22.50")
        import_table(_source(tmp_path / "v2", ["100.00", "200.00"]), _mapping(tmp_path), first_store, overwrite=True)
        # the views re-read their Parquet files at each query: the old version is still there
        result = old.query("FROM sales SHOW gross_sales, orders").df.row(0)
        assert (Decimal(str(result[0])), result[1]) == (Decimal("22.50"), 2)
        assert _gross(first_store) == Decimal("300.00")


def test_a_flat_store_of_the_older_layout_is_replaced_and_its_files_removed_one_import_later(tmp_path: Path) -> None:
    from commerceql.sample import generate_store

    out = tmp_path / "store"
    generate_store(out, orders=300, years=1, seed=3)
    assert (out / "sales.parquet").is_file()
    with cql.connect(out) as old:
        before = old.query("FROM sales SHOW orders").df["orders"][0]
        import_table(_source(tmp_path / "v2", ["7.00"]), _mapping(tmp_path), out, overwrite=True)
        assert old.query("FROM sales SHOW orders").df["orders"][0] == before  # the flat files are kept
    assert _gross(out) == Decimal("7.00")
    assert (out / "sales.parquet").is_file()
    import_table(_source(tmp_path / "v3", ["8.00"]), _mapping(tmp_path), out, overwrite=True)
    assert not list(out.glob("*.parquet"))
    assert _gross(out) == Decimal("8.00")


# ---------------------------------------------------------------------------------------------
# --out paths and inputs that used to end as "internal error"


def _cli_error(capsys: pytest.CaptureFixture[str], args: list[str]) -> str:
    """Run `commerceql import ...` through the CLI entry point; return its one-line error."""
    assert cli_main(["import", *args, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "internal error" not in err and "Traceback" not in err
    lines = err.splitlines()
    assert lines and all(line.startswith("  = hint:") for line in lines[1:]), err
    return lines[0]


def test_out_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "afile").write_text("x")
    source = _source(tmp_path / "v1", ["1.00"])
    line = _cli_error(capsys, ["table", str(source), "--mapping", str(_mapping(tmp_path)),
                               "--out", str(tmp_path / "afile" / "store")])
    assert line == f"data error: cannot create {tmp_path / 'afile' / 'store'}: {tmp_path / 'afile'} is a file, not a folder"
    line = _cli_error(capsys, ["table", str(source), "--mapping", str(_mapping(tmp_path)),
                               "--out", str(tmp_path / "afile")])
    assert line == f"data error: {tmp_path / 'afile'} exists and is not a folder"


@pytest.mark.parametrize(("setting", "duckdb_text"), [("512MB", "512MB"), ("2gb", "2GB"), (" 1.5 GiB ", "1.5GiB"),
                                                     ("300kb", "300KB")])
def test_import_memory_setting(monkeypatch: pytest.MonkeyPatch, setting: str, duckdb_text: str) -> None:
    monkeypatch.setenv("COMMERCEQL_IMPORT_MEMORY", setting)
    assert import_memory_limit() == duckdb_text


def test_import_memory_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """1 GB, or an eighth of a small machine's memory, never under 512 MB."""
    monkeypatch.delenv("COMMERCEQL_IMPORT_MEMORY", raising=False)
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    expected = max(512, min(1024, (physical // 8) >> 20))
    assert import_memory_limit() == f"{expected}MB"


@pytest.mark.parametrize("setting", ["lots", "1GB'; SELECT 1; --", "-1GB", "12"])
def test_bad_import_memory_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv("COMMERCEQL_IMPORT_MEMORY", setting)
    line = _cli_error(capsys, ["table", str(_source(tmp_path / "v1", ["1.00"])), "--mapping",
                               str(_mapping(tmp_path)), "--out", str(tmp_path / "store")])
    assert line == f"import error: COMMERCEQL_IMPORT_MEMORY={setting!r} is not a memory size"
    assert not (tmp_path / "store").exists()
    with pytest.raises(CommerceQLImportError) as caught:
        import_memory_limit()
    assert caught.value.hint == "write a number and a unit, like 512MB or 2GB"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        line = _cli_error(capsys, ["table", str(_source(tmp_path / "v1", ["1.00"])), "--mapping",
                                   str(_mapping(tmp_path)), "--out", str(parent / "store")])
    finally:
        parent.chmod(0o755)
    assert line.startswith(f"data error: cannot write the lock file {parent}") and "permission denied" in line


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs Linux sysfs, where nobody may create files")
def test_out_where_nothing_may_be_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # sysfs refuses new files even to root, so this runs in containers too (unlike chmod 555).
    source = str(_source(tmp_path / "v1", ["1.00"]))
    line = _cli_error(capsys, ["table", source, "--mapping", str(_mapping(tmp_path)), "--out", "/sys/cql-test"])
    assert line.startswith("data error: cannot write the lock file /sys/.cql-test.lock:")
    line = _cli_error(capsys, ["table", source, "--mapping", str(_mapping(tmp_path)), "--out", "/sys/cql-test/s"])
    assert line.startswith("data error: cannot create the folder /sys/cql-test:")


def test_glob_characters_in_out_and_in_the_source_name(tmp_path: Path) -> None:
    source = _source(tmp_path / "in[1]", ["10.00", "2.25"], name="sales[*].csv")
    out = tmp_path / "shop[2024]*?"
    (tmp_path / "shop2").mkdir()  # what `shop[2024]` would match as a glob
    import_table(source, _mapping(tmp_path), out)
    assert _gross(out) == Decimal("12.25")


@pytest.mark.parametrize(("section", "line", "message"), [
    ("source", 'skip_rows = "1; DROP"', "skip_rows"),
    ("store", 'money_decimals = "2); DROP"', "money_decimals"),
])
def test_mapping_numbers_with_sql_in_them(tmp_path: Path, capsys: pytest.CaptureFixture[str], section: str,
                                          line: str, message: str) -> None:
    mapping = tmp_path / "m.toml"
    mapping.write_text(f"[{section}]\n{line}\n\n{MAPPING}", encoding="utf-8")
    error = _cli_error(capsys, ["table", str(_source(tmp_path / "v1", ["1.00"])), "--mapping", str(mapping),
                                "--out", str(tmp_path / "store")])
    assert error.startswith("mapping error:") and message in error
    assert not (tmp_path / "store").exists()


def test_duplicate_headers_are_refused_naming_both_columns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "dup.csv"
    source.write_text("order,date,amount,Amount\n1,2024-01-02,10.00,99.00\n", encoding="utf-8")
    error = _cli_error(capsys, ["table", str(source), "--mapping", str(_mapping(tmp_path)),
                                "--out", str(tmp_path / "store")])
    assert error == f"import error: {source}, line 1: the header names column `Amount` twice (columns 3 and 4)"


def test_a_utf16_table_source(tmp_path: Path) -> None:
    plain = _source(tmp_path / "v1", ["10.00", "2.25"])
    for codec, bom in (("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff")):
        source = tmp_path / f"{codec}.csv"
        source.write_bytes(bom + plain.read_text(encoding="utf-8").encode(codec))
        import_table(source, _mapping(tmp_path), tmp_path / codec)
        assert _gross(tmp_path / codec) == Decimal("12.25")


# Shopify exports: the real kidsliving export, converted or changed in tmp_path.


def _net_sales(store_path: Path) -> tuple[Decimal, int]:
    with cql.connect(store_path) as store:
        row = store.query("FROM sales SHOW net_sales, orders").df.row(0)
    return Decimal(str(row[0])), row[1]


@needs_realdata
@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_a_utf16_shopify_export(tmp_path: Path, codec: str) -> None:
    bom = b"\xff\xfe" if codec.endswith("le") else b"\xfe\xff"
    source = tmp_path / "orders_export.csv"
    source.write_bytes(bom + KIDSLIVING.read_text(encoding="utf-8-sig").encode(codec))
    import_shopify([source], tmp_path / "store")
    assert _net_sales(tmp_path / "store") == (KIDSLIVING_NET, 50)


@needs_realdata
def test_a_200_kib_notes_field(tmp_path: Path) -> None:
    with open(KIDSLIVING, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    notes = rows[0].index("Notes")
    rows[1][notes] = "a long note " * (200 * 1024 // 12)
    source = tmp_path / "orders_export.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    assert source.stat().st_size > KIDSLIVING.stat().st_size + 200_000
    import_shopify([source], tmp_path / "store")
    assert _net_sales(tmp_path / "store") == (KIDSLIVING_NET, 50)


@needs_realdata
def test_a_shopify_export_with_a_duplicate_header(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with open(KIDSLIVING, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    first, second = header.index("Total") + 1, header.index("Tags") + 1
    header[second - 1] = "total"  # names compare case-insensitively
    source = tmp_path / "orders_export.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(CommerceQLImportError, match=rf"column `total` twice \(columns {first} and {second}\)"):
        import_shopify([source], tmp_path / "store")
    error = _cli_error(capsys, ["shopify", str(source), "--out", str(tmp_path / "store")])
    assert error.startswith(f"import error: {source}, line 1: the header names column `total` twice")
    assert not (tmp_path / "store").exists()


@needs_realdata
def test_glob_characters_in_a_shopify_out(tmp_path: Path) -> None:
    out = tmp_path / "shop[1]"
    import_shopify([KIDSLIVING], out)
    assert _net_sales(out) == (KIDSLIVING_NET, 50)


def test_a_folder_that_is_not_a_store_is_refused_and_left_exactly_as_it_was(tmp_path: Path) -> None:
    out = tmp_path / "downloads"
    (out / "v-photos").mkdir(parents=True)  # looks like a version name, but is not one of ours
    (out / "data.parquet").write_bytes(b"PAR1 not ours")
    (out / ".importing-notes.txt").write_text("a user's file")
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    with pytest.raises(CommerceQLDataError, match="exists and is not empty"):
        import_table(_source(tmp_path / "v1", ["1.00"]), _mapping(tmp_path), out, overwrite=True)
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_an_open_store_keeps_its_files_through_two_reimports(first_store: Path, tmp_path: Path) -> None:
    """The open store holds a shared lock on its version's `.readers`, so imports keep that version."""
    with cql.connect(first_store) as old:
        for round_, amounts in enumerate((["100.00"], ["1.00", "2.00"]), start=2):
            import_table(_source(tmp_path / f"v{round_}", amounts), _mapping(tmp_path), first_store, overwrite=True)
        result = old.query("FROM sales SHOW gross_sales, orders").df.row(0)
        assert (Decimal(str(result[0])), result[1]) == (Decimal("22.50"), 2)
    assert _gross(first_store) == Decimal("3.00")
    # Closed, the old version is no longer protected: the next import removes it.
    import_table(_source(tmp_path / "v4", ["5.00"]), _mapping(tmp_path), first_store, overwrite=True)
    versions = [p for p in first_store.iterdir() if p.name.startswith("v-")]
    assert len(versions) <= 2
