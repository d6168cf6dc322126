"""The `commerceql` command line: a thin shell over `commerceql.store`.

    commerceql query "FROM sales SHOW net_sales GROUP BY month DURING last_year"
    commerceql query -f report.cql --format csv   # text cells like =cmd|... get a leading ' (see below)
    commerceql query "..." --sql                # print the compiled SQL
    commerceql query "..." --chart out.png      # render the VISUALIZE chart
    commerceql schema [TABLE]
    commerceql sample --orders 50000 --years 3 --seed 42 --out DIR
    commerceql import shopify FILE_OR_DIR... --out DIR [--timezone Area/City] [--name NAME]
    commerceql import table SOURCE --mapping FILE --out DIR
    commerceql kernel install [--user | --sys-prefix]
    commerceql serve notebooks/dashboard_b2b.ipynb [--port 8866]   # a notebook as a dashboard (Voila)
    commerceql mcp [--http --port 8765]                             # an MCP server for AI assistants
    commerceql lsp                                                  # a language server for .cql files
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from commerceql.errors import CommerceQLError

if TYPE_CHECKING:
    import polars as pl

FORMATS = ("table", "csv", "json", "parquet", "markdown")

# Spreadsheets (Excel, LibreOffice, Google Sheets) read a CSV cell that starts with one of these as
# a formula, so a product title such as `=HYPERLINK(...)` or `-2+3+cmd|...` in the store would run
# when someone opens the export. Such text cells get a leading `'`, as OWASP recommends; numbers
# (numeric columns, and text that is just a number such as -5) are left alone.
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$"


def _engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb",
                        help="where queries run: embedded DuckDB (default) or Spark (see docs/engines.md)")
    parser.add_argument("--spark-remote", help="Spark Connect address, e.g. sc://localhost:15002 (default: a local Spark)")
    parser.add_argument("--spark-data", help="where the Spark cluster reads the store's Parquet files (folder or URL)")
    parser.add_argument("--as-of", metavar="last-order|DATE",
                        help="pin the store's clock, e.g. for a frozen export: last-order or a date "
                        "(see docs/troubleshooting.md)")


def connect_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The store a subcommand's --data / --engine / --spark-* / --as-of options name."""
    from commerceql.store import connect

    options = {"engine": args.engine}
    if args.engine == "spark":
        options.update(spark_remote=args.spark_remote, data=args.spark_data)
    if args.as_of:
        options["as_of"] = args.as_of
    return connect(args.data, **options)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="commerceql", description="Query commerce data with CommerceQL.")
    from commerceql import __version__

    parser.add_argument("--version", action="version", version=f"commerceql {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str, examples: str) -> argparse.ArgumentParser:
        """A subcommand whose --help ends with examples (kept verbatim)."""
        return commands.add_parser(name, help=summary, description=summary[0].upper() + summary[1:] + ".",
                                   epilog="examples:\n" + examples,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)

    query = command("query", "run a query and print its result", """\
  commerceql query "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month"
  commerceql query -f report.cql --format csv --output report.csv
  commerceql query "FROM sales SHOW net_sales TIMESERIES month SINCE -12m VISUALIZE net_sales" --chart out.png
  commerceql query "FROM sales SHOW net_sales GROUP BY month" --sql
  commerceql query --data my-store "FROM companies SHOW company_name WHERE is_overdue"
""")
    query.add_argument("text", nargs="?", help="the query (or use -f)")
    query.add_argument("-f", "--file", help="read the query (or several, separated by ;) from a file ('-' = stdin)")
    query.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    query.add_argument("--output", "-o", help="write the result to this file instead of stdout")
    query.add_argument("--sql", action="store_true", help="print the compiled SQL instead of running the query")
    query.add_argument("--chart", help="save the VISUALIZE chart to this .png, .svg, .html or .json file")
    query.add_argument("--data", help="store folder or .duckdb file (default: the bundled sample store)")
    _engine_arguments(query)
    query.add_argument("--max-rows", type=int, default=1000, help="rows to print in table format")
    query.add_argument(
        "--escape-formulas",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="csv: prefix text cells starting with = + - @ tab or CR with ' so spreadsheets do not run them "
        "as formulas (default); --no-escape-formulas writes the values exactly as stored",
    )

    schema = command("schema", "list tables, or one table's metrics and dimensions", """\
  commerceql schema
  commerceql schema sales
  commerceql schema companies --data my-store
""")
    schema.add_argument("table", nargs="?")
    schema.add_argument("--data", help="store folder or .duckdb file")
    _engine_arguments(schema)

    sample = command("sample", "generate a sample store", """\
  commerceql sample --out /tmp/store
  commerceql sample --orders 1000000 --years 3 --seed 7 --out /tmp/big-store
  commerceql sample --anchor today --out /tmp/live-store
""")
    from commerceql.sample.cli import add_sample_arguments

    add_sample_arguments(sample)

    import_parser = command("import", "import Shopify exports or any CSV / Parquet / DuckDB table into a new store",
                            """\
  commerceql import shopify orders_export_1.csv customers_export.csv --out my-store
  commerceql import shopify exports/ --out my-store --timezone America/Toronto
  commerceql import table "Sample - Superstore.csv" --mapping superstore --out superstore
""")
    from commerceql.importers.cli import add_import_arguments

    add_import_arguments(import_parser)

    organization = command("organization", "combine shops' stores into one organization store", """\
  commerceql organization stores/east stores/west --out stores-org
  commerceql organization stores/* --out org --name "Northwind Group"
""")
    organization.add_argument("shops", nargs="+", help="the shops' store folders (from commerceql import / sample)")
    organization.add_argument("--out", required=True, help="folder to write the organization store to")
    organization.add_argument("--name", help="the organization's name (default: the shops' names)")

    kernel = command("kernel", "manage the Jupyter kernel", """\
  commerceql kernel install --user
  commerceql kernel install --sys-prefix
""")
    kernel_commands = kernel.add_subparsers(dest="kernel_command", required=True)
    install = kernel_commands.add_parser("install", help="install the CommerceQL kernel spec")
    where = install.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true", help="install for the current user")
    where.add_argument("--sys-prefix", action="store_true", help="install into this Python environment")
    where.add_argument("--prefix", help="install under this prefix")

    serve = command("serve", "serve a notebook as a dashboard (code hidden, controls live)", """\
  commerceql serve notebooks/dashboard_b2b.ipynb
  commerceql serve my_dashboard.ipynb --port 8900 --no-browser
""")
    serve.add_argument("notebook", help="the .ipynb file to serve, e.g. notebooks/dashboard_b2b.ipynb")
    serve.add_argument("--port", type=int, default=8866, help="port to listen on (default: 8866)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1, this machine only)")
    serve.add_argument("--no-browser", action="store_true", help="do not open a browser")

    mcp = command("mcp", "run a Model Context Protocol server for AI assistants", """\
  commerceql mcp
  commerceql mcp --data my-store --max-rows 200
  commerceql mcp --http --port 8765
""")
    mcp.add_argument("--data", help="store folder or .duckdb file (default: the bundled sample store)")
    _engine_arguments(mcp)
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="HTTP address (default: 127.0.0.1)")
    mcp.add_argument("--port", type=int, default=8765, help="HTTP port (default: 8765)")
    mcp.add_argument("--max-rows", type=int, default=500, help="rows returned per query (default: 500)")

    lsp = command("lsp", "run a language server for .cql files (stdio)", """\
  commerceql lsp
  commerceql lsp --data my-store
""")
    lsp.add_argument("--data", help="store folder or .duckdb file whose model completes and checks names")
    return parser


def _read_query(args: argparse.Namespace) -> str:
    if args.file:
        if args.file == "-":
            return sys.stdin.read()
        return Path(args.file).read_text(encoding="utf-8")
    if args.text:
        return args.text
    raise CommerceQLError("no query given", hint='pass the query text, e.g. commerceql query "FROM sales SHOW net_sales"')


def _markdown(result) -> str:  # type: ignore[no-untyped-def]
    """Every row as a markdown table (human headers, Total and subtotal rows in bold)."""
    return result.to_markdown()


def escape_formulas(frame: pl.DataFrame) -> pl.DataFrame:
    """`frame` with every text cell a spreadsheet would run as a formula prefixed with `'`."""
    import polars as pl

    text_types = (pl.String, pl.Categorical, pl.Enum)
    columns = []
    for name, dtype in frame.schema.items():
        if not isinstance(dtype, text_types) and dtype not in text_types:
            continue
        value = pl.col(name).cast(pl.String)
        risky = value.str.contains(_FORMULA_START) & ~value.str.contains(_PLAIN_NUMBER)
        columns.append(pl.when(risky).then(pl.lit("'") + value).otherwise(value).alias(name))
    return frame.with_columns(columns) if columns else frame


def _write_result(result, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    fmt = args.format
    if fmt == "parquet":
        if not args.output:
            raise CommerceQLError("parquet output needs a file", hint="add --output result.parquet")
        result.df.write_parquet(args.output)
        for notice in result.notices:
            print(f"note: {notice}", file=sys.stderr)
        return
    if fmt == "table":
        from commerceql.display import terminal_width

        text = result.to_text(max_rows=args.max_rows, width=None if args.output else terminal_width())
    elif fmt == "csv":
        buffer = io.StringIO()
        frame = escape_formulas(result.df) if args.escape_formulas else result.df
        frame.write_csv(buffer)
        text = buffer.getvalue().rstrip("\n")
    elif fmt == "json":
        text = json.dumps(result.df.to_dicts(), default=str, indent=2)
    else:
        text = _markdown(result)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    if fmt != "table" or args.output:
        # Data formats stay data: the notes go to stderr (the table shows them itself).
        sys.stdout.flush()
        for notice in result.notices:
            print(f"note: {notice}", file=sys.stderr)


def _run_query(args: argparse.Namespace) -> int:
    from commerceql.parser import parse_script

    text = _read_query(args)
    queries = parse_script(text)
    if not queries:
        raise CommerceQLError("the query text is empty", hint="write a query such as FROM sales SHOW net_sales")
    store = connect_from(args)
    for index, query in enumerate(queries):
        if index:
            print()
        if args.sql:
            print(store.explain(query).rstrip() + ";")
            continue
        result = store.query(query)
        _write_result(result, args)
        if args.chart:
            if result.vegalite_spec is None:  # the spec, not result.chart: saving never imports Altair
                raise CommerceQLError("this query has no VISUALIZE clause, so there is no chart to save")
            target = Path(args.chart)
            if len(queries) > 1:
                target = target.with_name(f"{target.stem}-{index + 1}{target.suffix}")
            result.save_chart(str(target))
            print(f"chart written to {target}", file=sys.stderr)
    return 0


def _run_schema(args: argparse.Namespace) -> int:
    import polars as pl

    from commerceql.display import frame_text, terminal_width

    store = connect_from(args)
    frame = store.schema(args.table)
    width = terminal_width()
    if args.table is None:
        # The first sentence of each table's description: `schema TABLE` has the rest.
        summary = pl.col("description").map_elements(lambda text: text.split(". ")[0].rstrip(".") + ".", return_dtype=pl.String)
        print(frame_text(frame.with_columns(summary), max_rows=frame.height, width=width))
        print("\n`commerceql schema TABLE` lists a table's metrics and dimensions.")
        return 0
    for index, kind in enumerate(("metric", "dimension")):
        rows = frame.filter(frame["kind"] == kind).drop("kind")
        print(("\n" if index else "") + f"{kind}s:")
        print(frame_text(rows, max_rows=rows.height, width=width))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "query":
            return _run_query(args)
        if args.command == "schema":
            return _run_schema(args)
        if args.command == "sample":
            from commerceql.sample.cli import run_sample

            return run_sample(args)
        if args.command == "import":
            from commerceql.importers.cli import run_import

            return run_import(args)
        if args.command == "organization":
            from commerceql.organization import build_organization

            out = build_organization(args.shops, args.out, name=args.name)
            print(f"wrote the organization store {out} ({len(args.shops)} shops); "
                  f"query it with FROM ORGANIZATION ... GROUP BY shop_name")
            return 0
        if args.command == "kernel":
            from commerceql_kernel.install import install_kernel_spec

            path = install_kernel_spec(user=args.user, sys_prefix=args.sys_prefix, prefix=args.prefix)
            print(f"installed the CommerceQL kernel spec in {path}")
            return 0
        if args.command == "serve":
            from commerceql.dashboard import run_serve

            return run_serve(args)
        if args.command == "mcp":
            from commerceql.mcp_server import run_mcp

            return run_mcp(args)
        if args.command == "lsp":
            from commerceql.lsp import run_lsp

            return run_lsp(args)
    except CommerceQLError as error:
        print(error.render(), file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except Exception as error:  # a bug, not the user's mistake: say so without a wall of traceback
        if os.environ.get("COMMERCEQL_DEBUG"):
            raise
        print(
            f"internal error: {type(error).__name__}: {error}\n"
            "  = this is a bug in CommerceQL; set COMMERCEQL_DEBUG=1 to see the traceback and please report it",
            file=sys.stderr,
        )
        return 3
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 1


if __name__ == "__main__":
    sys.exit(main())
