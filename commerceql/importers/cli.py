"""`commerceql import shopify|table ...`: the command-line face of the importers.

    commerceql import shopify orders_export_1.csv customers_export.csv --out my-store
    commerceql import shopify exports/ --out my-store --timezone America/Toronto
    commerceql import shopify old-exports/ --out frozen-store --as-of last-order
    commerceql import table "Sample - Superstore.csv" --mapping superstore --out superstore

`add_import_arguments(parser)` fills the `import` sub-command's parser; `run_import(args)` runs it
and prints the reconciliation. Also runnable alone: `python -m commerceql.importers.cli shopify ...`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from zoneinfo import ZoneInfo

from commerceql.errors import CommerceQLError


def add_import_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `shopify` and `table` sub-commands to the `import` parser."""
    kinds = parser.add_subparsers(dest="import_kind", required=True, metavar="{shopify,table}")

    shopify = kinds.add_parser(
        "shopify",
        help="import Shopify admin CSV exports (orders, customers, products, checkouts, inventory, transactions)",
        description="Import Shopify admin exports into a new store folder. The kind of each file is detected "
        "from its header; folders are searched for .csv files.",
    )
    shopify.add_argument("paths", nargs="+", metavar="FILE_OR_DIR", help="export files, or folders holding them")
    shopify.add_argument("--out", required=True, metavar="STORE_DIR", help="the store folder to create")
    shopify.add_argument("--timezone", metavar="Area/City",
                         help="the store's time zone (default: detected from the timestamps' UTC offsets)")
    shopify.add_argument("--name", help="the store's name (default: the folder name)")
    shopify.add_argument("--currency", metavar="CODE",
                         help="the store currency (default: the exports' Currency column)")
    shopify.add_argument("--date-order", choices=("dmy", "mdy"),
                         help="how to read dd/mm vs mm/dd dates of a spreadsheet-saved copy when the file cannot tell")
    _common(shopify)

    table = kinds.add_parser(
        "table",
        help="import any CSV / Parquet / DuckDB table with a mapping file",
        description="Import a table with a TOML mapping onto the sales fact (see docs/importing.md). Shipped "
        "mappings: superstore, cdnow, cdnow_sample.",
    )
    table.add_argument("source", metavar="SOURCE", help="a .csv/.txt, .parquet or .duckdb file")
    table.add_argument("--mapping", required=True, metavar="FILE",
                       help="the TOML mapping file (or the name of a shipped mapping, e.g. superstore)")
    table.add_argument("--out", required=True, metavar="STORE_DIR", help="the store folder to create")
    table.add_argument("--name", help="the store's name (default: from the mapping)")
    table.add_argument("--timezone", metavar="Area/City", help="override the mapping's time zone")
    table.add_argument("--currency", metavar="CODE", help="override the mapping's currency")
    _common(table)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="replace STORE_DIR if it already holds a store")
    parser.add_argument("--as-of", dest="as_of", metavar="last-order|DATE",
                        help="pin the store's clock for a frozen export, so DURING last_month is the month before "
                        "the data ends: 'last-order' (the last order's time), a date (the end of that day in the "
                        "store's time zone) or an ISO timestamp (default: the real clock)")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None,
                          help="show a progress bar (default: when stderr is a terminal)")
    progress.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--json", action="store_true", help="print the import report as JSON")


def run_import(args: argparse.Namespace) -> int:
    """Run `commerceql import ...`; prints the reconciliation. Errors propagate as CommerceQLError."""
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    as_of = getattr(args, "as_of", None)
    if as_of is not None:
        from commerceql.store import check_as_of_text

        check_as_of_text(as_of)  # refused before a long import, not after it
    if args.import_kind == "shopify":
        from commerceql.importers.shopify import import_shopify

        report = import_shopify(
            args.paths, args.out, timezone=args.timezone, name=args.name, currency=args.currency,
            date_order=args.date_order, overwrite=args.force, progress=progress,
        )
    elif args.import_kind == "table":
        from commerceql.importers.table import import_table

        report = import_table(
            args.source, args.mapping, args.out, name=args.name, timezone=args.timezone, currency=args.currency,
            overwrite=args.force, progress=progress,
        )
    else:  # pragma: no cover - argparse enforces the choice
        raise CommerceQLError(f"unknown import kind {args.import_kind!r}")
    pinned = pin_store_clock(Path(args.out), as_of) if as_of is not None else None
    if args.json:
        document = report.to_dict()
        if pinned is not None:
            document["as_of"] = pinned
        print(json.dumps(document, indent=2, default=str))
    else:
        print(report.render())
        if pinned is not None:
            print(f"The store's clock is pinned to {pinned} (manifest as_of).")
    return 0


def pin_store_clock(out: Path, as_of: str) -> str:
    """Write `as_of` (last-order, a date or a timestamp) into the imported store's manifest as an instant.

    The store works it out (the last order's time needs the data), so the manifest records the
    instant itself, in the store's time zone: `connect()` then uses it as the store's clock.
    """
    from commerceql.store import connect

    with connect(out) as store:
        instant = store.pin_clock(as_of).astimezone(ZoneInfo(store.timezone))
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["as_of"] = instant.isoformat()
    # Replaced in one step: a reader never sees half a manifest.
    temporary = manifest_path.with_name(manifest_path.name + ".as-of.tmp")
    temporary.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, manifest_path)
    return manifest["as_of"]


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m commerceql.importers.cli shopify|table ...` (the same as `commerceql import ...`)."""
    parser = argparse.ArgumentParser(prog="commerceql import", description="Import data into a CommerceQL store.")
    add_import_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_import(args)
    except CommerceQLError as error:
        print(error.render(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
