"""The IPython magics (`%load_ext commerceql`): %%cql, %cql, %cql_connect, safe interpolation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

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


# ---------------------------------------------------------------------------------------------
# Hostile Python objects: subclasses that lie about their text, and array-likes that are not
# ---------------------------------------------------------------------------------------------

INJECTION = "x' OR 1=1 --"


class LyingStr(str):
    def __str__(self) -> str:
        return INJECTION

    def __repr__(self) -> str:
        return INJECTION

    def __format__(self, spec: str) -> str:
        return INJECTION


class NoDoublingStr(str):
    """`replace` is how quotes get doubled; this one does not double them."""

    def replace(self, *args: object, **kwargs: object) -> str:  # type: ignore[override]
        return str.__str__(self)

    def __add__(self, other: object) -> str:
        return INJECTION

    def __radd__(self, other: object) -> str:
        return INJECTION


class ShapeShiftingStr(str):
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(INJECTION)

    def __getitem__(self, index: object) -> str:
        return INJECTION

    def __len__(self) -> int:
        return 0

    def encode(self, *args: object, **kwargs: object) -> bytes:  # type: ignore[override]
        return INJECTION.encode()


class LyingInt(int):
    def __str__(self) -> str:
        return "1 OR 1 = 1"

    def __repr__(self) -> str:
        return "1 OR 1 = 1"

    def __format__(self, spec: str) -> str:
        return "1 OR 1 = 1"

    def __int__(self) -> int:
        return 999

    def __index__(self) -> int:
        return 999


class LyingFloat(float):
    def __repr__(self) -> str:
        return "1) OR (1 = 1"

    def __str__(self) -> str:
        return "1) OR (1 = 1"

    def __float__(self) -> float:
        return 999.0


class LyingDecimal(Decimal):
    def __str__(self) -> str:
        return "1 OR 1 = 1"

    def __format__(self, spec: str, *args: object) -> str:
        return "1 OR 1 = 1"

    def is_finite(self) -> bool:
        return True

    def as_tuple(self):  # type: ignore[no-untyped-def]
        return Decimal("999").as_tuple()


class LyingDate(dt.date):
    def isoformat(self) -> str:
        return "2025-01-01 OR true"

    def __str__(self) -> str:
        return "2025-01-01 OR true"

    def strftime(self, fmt: str) -> str:
        return "2025-01-01 OR true"

    @property
    def year(self) -> int:  # type: ignore[override]
        return 1999


class LyingDateTime(dt.datetime):
    def isoformat(self, *args: object, **kwargs: object) -> str:
        return "2025-01-01 OR true"

    @property
    def tzinfo(self):  # type: ignore[no-untyped-def, override]
        return None  # lies: it has one


class LyingList(list):
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter([INJECTION, LyingStr("y")])


class LyingTuple(tuple):
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter([INJECTION])


class LyingSet(set):
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter([INJECTION])


class HasToList:
    def to_list(self) -> str:
        return "'x') OR (1 = 1"


class HasToListReturningAList:
    def to_list(self) -> list[str]:
        return ["x"]

    def tolist(self) -> list[str]:
        return ["x"]


class PretendsToBeStr:
    @property
    def __class__(self):  # type: ignore[no-untyped-def, override]
        return str

    def replace(self, *args: object) -> str:
        return INJECTION


def _where(value: object, operator: str = "=") -> ast.Condition:
    text = interpolate(f"FROM sales SHOW net_sales WHERE billing_region {operator} {{v}}", {"v": value})
    where = parse(text).where
    assert where is not None
    return where


def _equals(literal: ast.Expression) -> ast.Comparison:
    return ast.Comparison("=", ast.Identifier("billing_region"), literal)


@pytest.mark.parametrize(
    "value, literal",
    [
        (LyingStr("Ohio"), ast.StringLiteral("Ohio")),
        (NoDoublingStr("O'Brien' OR 'a' = 'a"), ast.StringLiteral("O'Brien' OR 'a' = 'a")),
        (ShapeShiftingStr("Ohio"), ast.StringLiteral("Ohio")),
        (LyingInt(7), ast.NumberLiteral(7)),
        (LyingFloat(2.5), ast.NumberLiteral(Decimal("2.5"))),
        (LyingDecimal("12.34"), ast.NumberLiteral(Decimal("12.34"))),
        (LyingDate(2024, 2, 29), ast.DateLiteral(dt.date(2024, 2, 29))),
        (LyingDateTime(2024, 3, 1, 9, 30), ast.DateLiteral(dt.datetime(2024, 3, 1, 9, 30))),
    ],
    ids=lambda v: type(v).__name__,
)
def test_hostile_subclasses_insert_their_real_value(value, literal):
    assert _where(value) == _equals(literal)


def test_hostile_containers_insert_their_real_items():
    where = _where(LyingList(["Ohio", NoDoublingStr("it's")]), "IN")
    assert where == ast.InList(ast.Identifier("billing_region"), (ast.StringLiteral("Ohio"), ast.StringLiteral("it's")))
    where = _where(LyingTuple(("Ohio",)), "IN")
    assert where == ast.InList(ast.Identifier("billing_region"), (ast.StringLiteral("Ohio"),))
    where = _where(LyingSet({"Ohio"}), "IN")
    assert where == ast.InList(ast.Identifier("billing_region"), (ast.StringLiteral("Ohio"),))


@pytest.mark.parametrize(
    "value, message",
    [
        (HasToList(), "HasToList cannot be written"),
        (HasToListReturningAList(), "HasToListReturningAList cannot be written"),
        (PretendsToBeStr(), "PretendsToBeStr cannot be written"),
        (LyingDateTime(2024, 3, 1, tzinfo=dt.UTC), "time zone"),
        ({"a": 1}, "dict cannot be written"),
        (b"Ohio", "bytes cannot be written"),
        ([["Ohio"]], "lists of lists"),
        ([pl.Series(["Ohio"])], "lists of lists"),
        (object(), "object cannot be written"),
    ],
    ids=["to_list", "to_list_list", "fake_class", "tz_aware", "dict", "bytes", "nested_list", "list_of_series", "object"],
)
def test_other_objects_are_refused_with_a_clear_error(value, message):
    with pytest.raises(CommerceQLMagicError) as caught:
        interpolate("FROM sales SHOW net_sales WHERE billing_region = {v}", {"v": value})
    rendered = caught.value.render()
    assert message in rendered and "{v}" in rendered and "^" in rendered
    assert INJECTION not in rendered


def test_series_and_arrays_insert_their_values_element_by_element():
    import numpy as np
    import pandas as pd

    strings = ast.InList(ast.Identifier("billing_region"), (ast.StringLiteral("Ohio"), ast.StringLiteral("it's")))
    assert _where(pl.Series(["Ohio", "it's"]), "IN") == strings
    assert _where(pd.Series(["Ohio", "it's"]), "IN") == strings
    assert _where(np.array(["Ohio", "it's"]), "IN") == strings
    assert _where(np.int64(5)) == _equals(ast.NumberLiteral(5))
    assert _where(np.float64(0.25)) == _equals(ast.NumberLiteral(Decimal("0.25")))
    assert _where(pd.Timestamp("2024-05-06 07:08:09")) == _equals(ast.DateLiteral(dt.datetime(2024, 5, 6, 7, 8, 9)))
    dates = pl.Series([dt.date(2024, 1, 1), dt.date(2024, 1, 2)])
    assert _where(dates, "IN") == ast.InList(
        ast.Identifier("billing_region"), (ast.DateLiteral(dt.date(2024, 1, 1)), ast.DateLiteral(dt.date(2024, 1, 2)))
    )

    class LyingSeries(pl.Series):
        def to_list(self, *args: object, **kwargs: object) -> list[object]:  # type: ignore[override]
            return [LyingStr("Ohio"), NoDoublingStr("it's")]

    assert _where(LyingSeries(["ignored"]), "IN") == strings


def test_a_hostile_value_through_the_magic_filters_like_its_real_value(ip, store):
    ip.user_ns["region"] = NoDoublingStr("California' OR billing_region = 'Ohio")
    res = ip.run_line_magic("cql", "FROM sales SHOW net_sales, orders WHERE billing_region = {region}")
    assert condition(res) == _equals(ast.StringLiteral("California' OR billing_region = 'Ohio"))
    nothing = store.query("FROM sales SHOW net_sales, orders WHERE billing_region = 'no such region'")
    assert res.df.equals(nothing.df)


# ---------------------------------------------------------------------------------------------
# Control bars are closed: re-run cells replace theirs, and only so many stay open
# ---------------------------------------------------------------------------------------------

BAR_CELL = "%%cql\nFROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar"


def _open_explore_widgets() -> int:
    from ipywidgets.widgets.widget import _instances

    from commerceql.widgets import ExploreWidget

    return sum(isinstance(w, ExploreWidget) for w in _instances.values())


def _magics(ip):
    return ip.magics_manager.registry["CommerceQLMagics"]


def test_rerunning_a_cell_closes_its_previous_control_bar(ip):
    _magics(ip).live.close_all()
    before = _open_explore_widgets()
    for _ in range(12):
        with capture_output():
            result = ip.run_cell(BAR_CELL, cell_id="the-same-cell")
        assert result.success
    assert _open_explore_widgets() - before == 1
    assert len(_magics(ip).live) == 1
    _magics(ip).live.close_all()
    assert _open_explore_widgets() == before


def test_many_cells_keep_at_most_the_limit_of_bars_open(ip):
    live = _magics(ip).live
    live.close_all()
    previous_limit, live.limit = live.limit, 4
    try:
        before = _open_explore_widgets()
        outputs = []
        for index in range(10):
            with capture_output() as captured:
                result = ip.run_cell(BAR_CELL, cell_id=f"cell-{index}")
            assert result.success
            outputs.extend(captured.outputs)
        assert _open_explore_widgets() - before == 4 and len(live) == 4
        # every bar was displayed with a display id; six retired ones were replaced by their last view
        shown = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.data]
        assert len(shown) == 10
        replaced = [o for o in outputs if o.data.get("text/plain", "").startswith("The controls of this chart were closed")]
        assert len(replaced) == 6
        assert all("sales_channel" in o.data["text/html"] and "<table" in o.data["text/html"] for o in replaced)
    finally:
        live.close_all()
        live.limit = previous_limit


def test_controls_bars_count_too(ip):
    live = _magics(ip).live
    live.close_all()
    with capture_output():
        ip.run_cell("%%cql --static\nFROM sales SHOW net_sales GROUP BY sales_channel VISUALIZE net_sales", cell_id="c1")
        for _ in range(5):
            ip.run_cell("%controls", cell_id="c2")
    assert len(live) == 1
    live.close_all()
