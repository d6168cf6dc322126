"""The IPython magics (`%load_ext commerceql`): %%cql, %cql, %cql_connect, safe interpolation."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from commerceql import ast
from commerceql.magic import CommerceQLMagicError, interpolate
from commerceql.parser import parse
from commerceql.result import Result

HOSTILE = [
    "x' OR 1=1 --",
    "Ohio' OR billing_region = 'California",
    "'; FROM sales SHOW orders; --",
    "a\nSHOW orders",
    "O'Brien",
    "/* comment */ ''",
    "{not_a_placeholder}",
    "\\' OR '1'='1",
    "-- just a comment",
    ") OR (1=1",
]


@pytest.fixture(scope="module")
def store_path():
    from commerceql.sample import ensure_default_store

    return str(ensure_default_store())


@pytest.fixture(scope="module")
def ip(store_path):
    shell = InteractiveShell.instance()
    shell.run_line_magic("load_ext", "commerceql")
    shell.run_line_magic("cql_connect", store_path)
    return shell


@pytest.fixture(scope="module")
def store(ip):
    magics = ip.magics_manager.registry["CommerceQLMagics"]
    return magics.store


def run_cell(ip, code: str):
    with capture_output() as captured:
        result = ip.run_cell(code)
    return result, captured


def condition(result: Result) -> ast.Condition:
    assert result.query.where is not None
    return result.query.where


def test_load_ext_registers_magics(ip):
    magics = ip.magics_manager.magics
    assert "cql" in magics["line"] and "cql" in magics["cell"] and "cql_connect" in magics["line"]


def test_cell_magic_shows_the_control_bar_for_visualize(ip):
    result, captured = run_cell(ip, "%%cql\nFROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar")
    assert result.success, captured.stdout
    assert any("application/vnd.jupyter.widget-view+json" in o.data for o in captured.outputs)
    result, captured = run_cell(ip, "%controls")
    assert result.success
    from commerceql.widgets import ExploreWidget

    assert isinstance(result.result, ExploreWidget)


def test_controls_needs_a_result(ip):
    ip.user_ns["not_a_result"] = 42
    result, captured = run_cell(ip, "%controls not_a_result")
    assert not result.success
    assert "is not a CommerceQL result" in str(result.error_in_exec)


def test_cell_magic_displays_table_and_chart_and_stores_cql(ip):
    ip.user_ns.pop("_cql", None)
    result, captured = run_cell(ip, "%%cql --static\nFROM sales SHOW net_sales TIMESERIES month DURING last_year VISUALIZE net_sales TYPE line")
    assert result.success, captured.stdout
    assert isinstance(ip.user_ns["_cql"], Result)
    assert ip.user_ns["_cql"].df.height == 12
    kinds = [set(o.data) for o in captured.outputs]
    assert "text/html" in kinds[0]
    assert any(k.startswith("application/vnd.vegalite.v") for k in kinds[1])


def test_cell_magic_stores_a_named_result(ip):
    result, captured = run_cell(ip, "%%cql by_type --quiet\nFROM sales SHOW net_sales GROUP BY customer_type DURING last_year")
    assert result.success, captured.stdout
    assert captured.outputs == []
    by_type = ip.user_ns["by_type"]
    assert isinstance(by_type, Result)
    assert set(by_type.df["customer_type"]) == {"B2B", "DTC"}


def test_cell_magic_runs_several_queries_and_keeps_the_last(ip):
    result, captured = run_cell(ip, "%%cql both\nFROM sales SHOW orders;\nFROM sales SHOW net_sales GROUP BY customer_type")
    assert result.success
    assert len([o for o in captured.outputs if "text/html" in o.data]) == 2
    assert "customer_type" in ip.user_ns["both"].df.columns


def test_cell_magic_data_option_and_sql_option(ip, store_path):
    result, captured = run_cell(ip, f"%%cql other --data {store_path}\nFROM sales SHOW orders")
    assert result.success
    assert ip.user_ns["other"].df.height == 1
    result, captured = run_cell(ip, "%%cql --sql\nFROM sales SHOW orders")
    assert result.success
    assert "SELECT" in captured.outputs[0].data["text/plain"]


def test_line_magic_returns_the_result(ip, store):
    result, _ = run_cell(ip, "res = %cql FROM sales SHOW net_sales, orders DURING last_month")
    assert result.success
    res = ip.user_ns["res"]
    assert isinstance(res, Result)
    assert isinstance(res.df, pl.DataFrame)
    expected = store.query("FROM sales SHOW net_sales, orders DURING last_month")
    assert res.df.equals(expected.df)
    sql = ip.run_line_magic("cql", "--sql FROM sales SHOW orders")
    assert isinstance(sql, str) and "SELECT" in sql


def test_interpolation_of_plain_values(ip, store):
    ip.user_ns.update(region="California", since=dt.date(2025, 1, 1), regions=["California", "Ohio"], limit=3)
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales WHERE billing_region = {region} SINCE {since}")
    assert condition(res) == ast.Comparison("=", ast.Identifier("billing_region"), ast.StringLiteral("California"))
    plain = store.query("FROM sales SHOW net_sales WHERE billing_region = 'California' SINCE 2025-01-01")
    assert res.df.equals(plain.df)
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales WHERE billing_region IN {regions}")
    assert res.df.equals(store.query("FROM sales SHOW net_sales WHERE billing_region IN ('California', 'Ohio')").df)
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales GROUP BY billing_region LIMIT {limit}")
    assert res.df.height == 3
    # Inside a 'string' or a comment, braces are left alone.
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales WHERE billing_region = '{region}'")
    assert condition(res).right == ast.StringLiteral("{region}")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_interpolation_cannot_change_the_query(ip, store, hostile):
    ip.user_ns["value"] = hostile
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales, orders WHERE billing_region = {value}")
    # The hostile text is one string literal, exactly the Python value...
    assert condition(res) == ast.Comparison("=", ast.Identifier("billing_region"), ast.StringLiteral(hostile))
    assert res.query.show == parse("FROM sales SHOW net_sales, orders").show
    # ...so the query filters on it like on any plain value that matches nothing.
    nothing = store.query("FROM sales SHOW net_sales, orders WHERE billing_region = 'no such region'")
    assert res.df.equals(nothing.df)
    everything = store.query("FROM sales SHOW net_sales, orders")
    assert not res.df.equals(everything.df)


def test_interpolated_lists_cannot_change_the_query(ip, store):
    ip.user_ns["values"] = ["California", *HOSTILE]
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales WHERE billing_region IN {values}")
    where = condition(res)
    assert isinstance(where, ast.InList)
    assert [v.value for v in where.values] == ["California", *HOSTILE]
    assert res.df.equals(store.query("FROM sales SHOW net_sales WHERE billing_region IN ('California')").df)


def test_interpolate_function_directly():
    namespace = {"name": "it's", "n": 5, "flag": True, "nothing": None}
    text = "WHERE a = {name} AND b > {n} AND c = {flag} AND d IS {nothing} -- {name}"
    assert interpolate(text, namespace) == "WHERE a = 'it''s' AND b > 5 AND c = true AND d IS null -- {name}"
    assert interpolate("SHOW {{literal}}", {}) == "SHOW {literal}"
    with pytest.raises(CommerceQLMagicError) as caught:
        interpolate("SHOW {missing}", {})
    assert "missing" in caught.value.render() and "^" in caught.value.render()
    with pytest.raises(CommerceQLMagicError):
        interpolate("WHERE a IN {empty}", {"empty": []})
    with pytest.raises(CommerceQLMagicError):
        interpolate("WHERE a = {obj}", {"obj": object()})
    with pytest.raises(CommerceQLMagicError):
        interpolate("WHERE a = {unclosed", {})


@pytest.mark.parametrize(
    "code",
    [
        "%%cql\nFROM sales SHOW net_sale",
        "%%cql\nFROM sales SHOW net_sales WHERE",
        "x = %cql FROM sales SHOW {undefined_name}",
        "%%cql not-a-name\nFROM sales SHOW orders",
        "%cql_connect /no/such/store",
    ],
)
def test_errors_are_rendered_without_traceback(ip, code):
    result, captured = run_cell(ip, code)
    assert not result.success
    output = captured.stdout + captured.stderr
    assert "error: " in output
    assert "Traceback" not in output and 'File "' not in output


def test_error_message_points_at_the_query(ip):
    result, captured = run_cell(ip, "%%cql\nFROM sales\n  SHOW net_sale")
    assert "2 |   SHOW net_sale" in captured.stdout
    assert "did you mean" in captured.stdout


def test_tab_completion_in_cells_and_lines(ip):
    def complete(code: str, cursor: int | None = None) -> list[str]:
        cursor = len(code) if cursor is None else cursor
        from IPython.core.completer import provisionalcompleter

        with provisionalcompleter():
            return [c.text for c in ip.Completer.completions(code, cursor)]

    assert complete("%%cql\nFROM sales SHOW net_")[0] == "net_sales"
    assert "billing_region" in complete("%%cql name\nFROM sales SHOW net_sales\n  GROUP BY bill")
    assert complete("x = %cql FROM sales SHOW net_sales DURING last_mo") == ["last_month"]
    assert complete("%cql --data somewhere FROM sales VISUALIZE net_sales TYPE li")[:2] == ["line", "list"]
