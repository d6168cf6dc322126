"""The command line: formats, --sql, --chart, schema, errors on stderr with a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from commerceql.cli import main

QUERY = "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month"


@pytest.fixture(autouse=True)
def _store(sample_store_path):
    return sample_store_path


def test_table_output(capsys):
    assert main(["query", QUERY]) == 0
    out = capsys.readouterr().out.splitlines()
    # Human headers in the table (the raw names stay in CSV/JSON/Parquet, checked below).
    assert out[0].split("  ")[0] == "Sales channel" and out[0].split()[-1] == "Orders" and "Net sales" in out[0]
    assert any(line.startswith("Wholesale") and "$" in line for line in out)


def test_csv_and_json_agree(capsys, sample_store_path):
    import commerceql as cql

    expected = cql.connect(sample_store_path).query(QUERY).df
    assert main(["query", QUERY, "--format", "csv"]) == 0
    csv_text = capsys.readouterr().out
    assert csv_text.splitlines()[0] == "sales_channel,net_sales,orders"
    assert len(csv_text.splitlines()) == expected.height + 1
    assert main(["query", QUERY, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["sales_channel"] for r in rows] == expected["sales_channel"].to_list()
    assert [r["orders"] for r in rows] == expected["orders"].to_list()


def test_markdown_output(capsys):
    assert main(["query", QUERY, "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| Sales channel | Net sales | Orders |"
    assert lines[1] == "| --- | ---: | ---: |"


def test_parquet_output(tmp_path, capsys):
    target = tmp_path / "out.parquet"
    assert main(["query", QUERY, "--format", "parquet", "--output", str(target)]) == 0
    assert pl.read_parquet(target).columns == ["sales_channel", "net_sales", "orders"]


def test_query_from_file_with_several_queries(tmp_path, capsys):
    script = tmp_path / "report.cql"
    script.write_text("FROM sales SHOW orders DURING last_month;\n-- second\nFROM sales SHOW net_sales DURING yesterday;\n")
    assert main(["query", "-f", str(script)]) == 0
    out = capsys.readouterr().out
    assert "Orders" in out and "Net sales" in out


def test_sql_flag_prints_compiled_sql(capsys):
    assert main(["query", QUERY, "--sql"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("WITH ") and "GROUP BY" in out and "TIMESTAMPTZ '2025-11-01" in out


def test_chart_files(tmp_path, capsys):
    for suffix in ("png", "svg", "html"):
        target = tmp_path / f"chart.{suffix}"
        assert main(["query", QUERY + " VISUALIZE net_sales TYPE bar", "--chart", str(target)]) == 0
        assert target.stat().st_size > 500
    assert (tmp_path / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<svg" in (tmp_path / "chart.svg").read_text()
    html = (tmp_path / "chart.html").read_text()
    assert "vega" in html and 'src="http' not in html


def test_errors_go_to_stderr_with_a_caret_and_nonzero_exit(capsys):
    assert main(["query", "FROM sales SHOW net_sale"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "did you mean `net_sales`?" in captured.err
    assert "^^^^^^^^" in captured.err
    assert "Traceback" not in captured.err


def test_chart_without_visualize_is_an_error(tmp_path, capsys):
    assert main(["query", QUERY, "--chart", str(tmp_path / "x.png")]) == 2
    assert "no VISUALIZE" in capsys.readouterr().err


def test_schema_lists_tables_and_fields(capsys):
    assert main(["schema"]) == 0
    assert "sales" in capsys.readouterr().out
    assert main(["schema", "sales"]) == 0
    out = capsys.readouterr().out
    assert "net_sales" in out and "product_title" in out and "money" in out


def test_schema_descriptions_wrap_to_the_terminal_width(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["schema", "sales"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 80
    # A wrapped description goes on under its own column, not under the name.
    assert any(line.startswith(" " * 20) and line.strip() for line in lines)


def test_bad_data_path(capsys, tmp_path):
    assert main(["query", QUERY, "--data", str(tmp_path / "missing")]) == 2
    assert "cannot open" in capsys.readouterr().err


def test_console_script_runs_as_a_process():
    process = subprocess.run(
        [sys.executable, "-m", "commerceql.cli", "query", "FROM sales SHOW orders DURING yesterday"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert "Orders" in process.stdout


def test_an_internal_error_is_reported_without_a_traceback(capsys, monkeypatch):
    import commerceql.store

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(commerceql.store.Store, "query", broken)
    monkeypatch.delenv("COMMERCEQL_DEBUG", raising=False)
    assert main(["query", QUERY]) == 3
    err = capsys.readouterr().err
    assert err.startswith("internal error: RuntimeError: simulated bug")
    assert "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# CSV and spreadsheet formulas
# ---------------------------------------------------------------------------------------------

# Product titles a spreadsheet would run as formulas, and harmless ones; amounts include a refund.
TITLES = {
    "=HYPERLINK(\"http://evil.example\",\"open\")": "10.00",
    "-2+3+cmd|' /C calc'!A0": "-12.50",
    "@SUM(A1:A9)": "5.00",
    "+1 555 0100": "7.00",
    "\tTabbed": "3.00",
    "\rCarriage": "4.00",
    "-5": "6.00",
    "Plain = fine": "8.00",
}
TITLE_QUERY = "FROM sales SHOW gross_sales GROUP BY product_title_at_time_of_sale"


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    import csv

    from commerceql.importers import import_table

    folder = tmp_path_factory.mktemp("hostile-csv")
    source = folder / "orders.csv"
    with open(source, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["order", "date", "amount", "product"])
        for number, (title, amount) in enumerate(TITLES.items(), start=1):
            writer.writerow([str(number), "2024-01-02", amount, title])
    mapping = {"sales": {"order": "order", "happened_at": "date", "gross_sales": "amount", "product_title_at_sale": "product"}}
    import_table(source, mapping, folder / "store")
    return str(folder / "store")


def _csv_rows(text: str) -> dict[str, str]:
    import csv
    import io

    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == ["product_title_at_time_of_sale", "gross_sales"]
    return {title: amount for title, amount in reader}


def test_csv_escapes_cells_a_spreadsheet_would_run_as_formulas(capsys, hostile_store):
    assert main(["query", TITLE_QUERY, "--data", hostile_store, "--format", "csv"]) == 0
    rows = _csv_rows(capsys.readouterr().out)
    expected = {}
    for title, amount in TITLES.items():
        risky = title[0] in "=+-@\t\r" and title != "-5"  # "-5" is a number, not a formula
        expected["'" + title if risky else title] = amount
    assert rows == expected
    # no cell starts a formula; the negative amount is still a plain number
    assert not [cell for row in rows.items() for cell in row if cell[0] in "=+@\t\r"]
    assert rows["'-2+3+cmd|' /C calc'!A0"] == "-12.50"


def test_csv_escaping_can_be_turned_off(capsys, hostile_store, tmp_path):
    target = tmp_path / "raw.csv"
    arguments = ["query", TITLE_QUERY, "--data", hostile_store, "--format", "csv", "--no-escape-formulas"]
    assert main([*arguments, "--output", str(target)]) == 0
    assert _csv_rows(target.read_bytes().decode("utf-8")) == TITLES  # bytes: keep the \r


def test_csv_escaping_leaves_numbers_and_other_formats_alone(capsys, hostile_store):
    assert main(["query", TITLE_QUERY, "--data", hostile_store, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {row["product_title_at_time_of_sale"] for row in rows} == set(TITLES)
    from commerceql.cli import escape_formulas

    frame = pl.DataFrame({"n": [-1, 2], "x": [-1.5, 0.0], "s": ["-1.5", "-x"]})
    escaped = escape_formulas(frame)
    assert escaped["n"].to_list() == [-1, 2] and escaped["x"].to_list() == [-1.5, 0.0]
    assert escaped["s"].to_list() == ["-1.5", "'-x"]


def test_version_flag_prints_the_package_version(capsys):
    import commerceql
    from commerceql.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"commerceql {commerceql.__version__}"


def test_as_of_pins_the_clock_of_the_store_a_query_reads(capsys, sample_store_path):
    """`--as-of 2024-06-30`: `last_month` is May 2024 in the store's time zone (raw rows summed here)."""
    import datetime as dt
    from decimal import Decimal
    from zoneinfo import ZoneInfo

    from rawdata import raw

    assert main(["query", "--as-of", "2024-06-30", "--format", "json",
                 "FROM sales SHOW net_sales DURING last_month"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    zone = ZoneInfo(json.loads((sample_store_path / "manifest.json").read_text())["timezone"])
    start, end = (dt.datetime(2024, m, 1, tzinfo=zone).astimezone(dt.UTC) for m in (5, 6))
    sales = raw(sample_store_path, "sales").filter((pl.col("happened_at") >= start) & (pl.col("happened_at") < end))
    assert Decimal(str(row["net_sales"])) == Decimal(str(sales["net_sales"].sum()))
    assert main(["query", "--as-of", "yesterday-ish", "FROM sales SHOW net_sales"]) == 2
    assert "as_of" in capsys.readouterr().err
