"""The CommerceQL Jupyter kernel: the messaging protocol (jupyter_kernel_test), end-to-end cells
through a real kernel process (jupyter_client), and the cell logic in-process (KernelSession).

The kernel spec is installed into this environment (`install_kernel_spec(sys_prefix=True)`) and
the sample store generated before any kernel starts, so no kernel request waits on either.
"""

from __future__ import annotations

import functools
import time
from typing import Any

import jupyter_kernel_test
import pytest

from commerceql.charts import SUPPORTED_CHART_TYPES
from commerceql.dates import CYCLICAL_DIMENSIONS, TIME_GRAINS

MODIFIERS = {"TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES", "CURRENCY", "TIMEZONE"}
VEGALITE = ("application/vnd.vegalite.v5+json", "application/vnd.vegalite.v6+json")


@functools.cache
def prepare() -> str:
    """Generate the sample store and install the kernel spec (once per test session)."""
    from commerceql_kernel.install import install_kernel_spec

    from commerceql.sample import ensure_default_store

    path = ensure_default_store()
    install_kernel_spec(sys_prefix=True)
    return str(path)


def _no_python_traceback(lines: list[str]) -> None:
    text = "\n".join(lines)
    assert "Traceback (most recent call last)" not in text
    assert 'File "' not in text


# ---------------------------------------------------------------------------------------------
# The protocol, with jupyter_kernel_test
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
class CommerceQLKernelTests(jupyter_kernel_test.KernelTests):
    kernel_name = "commerceql"
    language_name = "commerceql"
    file_extension = ".cql"

    code_display_data = [
        {"code": "FROM sales SHOW net_sales, orders GROUP BY customer_type DURING last_year", "mime": "text/html"},
        {"code": "FROM sales SHOW net_sales, orders GROUP BY customer_type DURING last_year", "mime": "text/plain"},
        {"code": "%schema sales", "mime": "text/plain"},
    ]
    completion_samples = [
        {"text": "FROM sales SHOW net_sales VISUALIZE net_sales TYPE ", "matches": set(SUPPORTED_CHART_TYPES)},
        {"text": "FROM sales SHOW net_sales WITH ", "matches": MODIFIERS},
        {"text": "FROM sales SHOW net_sales TIMESERIES ", "matches": {*TIME_GRAINS, *CYCLICAL_DIMENSIONS}},
        {"text": "FROM sales SHOW net_sales DURING last_mo", "matches": {"last_month"}},
        {"text": "FROM sales SHOW net_sales COMPARE ", "matches": {"TO"}},
        {"text": "%sch", "matches": {"%schema"}},
    ]
    complete_code_samples = [
        "FROM sales SHOW net_sales",
        "FROM sales SHOW net_sales GROUP BY month DURING last_year;",
        "%timezone",
    ]
    incomplete_code_samples = [
        "FROM sales SHOW net_sales WHERE",
        "FROM sales SHOW (net_sales",
        "FROM sales SHOW net_sales WHERE billing_region = 'Ohio",
    ]
    invalid_code_samples = ["FROM sales SHOW net_sales )", "FROM FROM sales"]
    code_inspect_sample = "FROM sales SHOW net_sales"
    code_generate_error = "FROM sales SHOW net_sale"

    @classmethod
    def setUpClass(cls) -> None:
        prepare()
        super().setUpClass()

    def execute_helper(
        self,
        code: str,
        timeout: int = 60,
        silent: bool = False,
        store_history: bool = True,
        stop_on_error: bool = True,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """jupyter_kernel_test's helper, without its two timing assumptions.

        Its version reads IOPub expecting `busy` first and gives up when two messages are more
        than 0.1 s apart. ipykernel 7 sends IOPub messages through one pipe per sending thread,
        so on a loaded machine the `idle` of a request was once seen before its `busy` (CI, 2-core
        machine at load 6), and outputs can be slower than 0.1 s apart. This one checks the same
        things: the execute_reply, exactly one `busy` and one `idle` for the request, the echoed
        `execute_input`, every message valid and parented to the request; it waits up to `timeout`.
        """
        from jupyter_kernel_test.msgspec_v5 import validate_message

        msg_id = self.kc.execute(code=code, silent=silent, store_history=store_history, stop_on_error=stop_on_error)
        reply = self.get_non_kernel_info_reply(timeout=timeout)
        assert reply is not None
        validate_message(reply, "execute_reply", msg_id)
        states: list[str] = []
        outputs: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not {"busy", "idle"} <= set(states):
            message = self.kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
            validate_message(message, message["msg_type"], msg_id)
            if message["msg_type"] == "status":
                states.append(message["content"]["execution_state"])
            elif message["msg_type"] == "execute_input":
                self.assertEqual(message["content"]["code"], code)
            else:
                outputs.append(message)
        self.assertEqual(sorted(states), ["busy", "idle"])
        return reply, outputs

    def test_error_is_rendered_not_a_python_traceback(self) -> None:
        self.flush_channels()
        reply, outputs = self.execute_helper("FROM sales\n  SHOW net_sale")
        content = reply["content"]
        assert content["status"] == "error"
        assert content["ename"] == "CommerceQLNameError"
        assert "net_sale" in content["evalue"]
        [error] = [m for m in outputs if m["msg_type"] == "error"]
        lines = error["content"]["traceback"]
        assert lines == content["traceback"]
        assert lines[0].startswith("name error: unknown")
        assert "2 |   SHOW net_sale" in lines
        assert any(line.strip().endswith("^^^^^^^^") for line in lines)
        assert any("hint: did you mean" in line for line in lines)
        _no_python_traceback(lines)

    def test_inspect_shows_the_metric_definition(self) -> None:
        self.flush_channels()
        msg_id = self.kc.inspect("FROM sales SHOW net_sales", 20)
        reply = self.get_non_kernel_info_reply(timeout=15)
        assert reply is not None and reply["parent_header"]["msg_id"] == msg_id
        data = reply["content"]["data"]
        assert "SUM(sales.net_sales)" in data["text/plain"]
        assert "text/markdown" in data

    def test_kernel_info_language(self) -> None:
        self.flush_channels()
        self.kc.kernel_info()
        reply = self.kc.get_shell_msg(timeout=15)
        info = reply["content"]["language_info"]
        assert info["mimetype"] == "text/x-commerceql"
        assert info["codemirror_mode"] == "sql"
        assert reply["content"]["implementation"] == "commerceql"


# ---------------------------------------------------------------------------------------------
# Cells end to end through a kernel process
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.manager import start_new_kernel

    prepare()
    km, kc = start_new_kernel(kernel_name="commerceql")
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kernel: Any, code: str, *, interrupt_after: float | None = None, timeout: float = 240) -> tuple[dict, list[dict]]:
    """Execute `code`; returns the reply content and the cell's outputs (display_data, stream, error)."""
    km, kc = kernel
    msg_id = kc.execute(code)
    if interrupt_after is not None:
        time.sleep(interrupt_after)
        km.interrupt_kernel()
    while True:
        reply = kc.get_shell_msg(timeout=timeout)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    outputs = []
    while True:
        message = kc.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
        if message["msg_type"] in ("display_data", "execute_result", "stream", "error"):
            outputs.append({"type": message["msg_type"], **message["content"]})
    return reply["content"], outputs


def displays(outputs: list[dict]) -> list[dict]:
    return [o["data"] for o in outputs if o["type"] == "display_data"]


@pytest.mark.slow
def test_multi_query_cell_shows_two_tables(kernel):
    reply, outputs = run(kernel, "FROM sales SHOW net_sales GROUP BY customer_type DURING last_year;\nFROM sales SHOW orders DURING last_month")
    assert reply["status"] == "ok"
    tables = displays(outputs)
    assert len(tables) == 2
    assert all("text/html" in t and "text/plain" in t for t in tables)
    # Human headers in the text; the raw names on hover in the HTML.
    assert "Customer type" in tables[0]["text/plain"] and 'title="customer_type' in tables[0]["text/html"]
    assert "Orders" in tables[1]["text/plain"]
    assert "<table" in tables[0]["text/html"]


@pytest.mark.slow
def test_visualize_comes_with_the_control_bar_by_default(kernel):
    reply, outputs = run(kernel, "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar")
    assert reply["status"] == "ok"
    (bundle,) = displays(outputs)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    # Without a widget manager the frontend falls back to the table.
    assert "<table" in bundle["text/html"] and "sales_channel" in bundle["text/plain"]
    reply, outputs = run(kernel, "%controls")
    assert reply["status"] == "ok"
    assert "application/vnd.jupyter.widget-view+json" in displays(outputs)[0]


@pytest.mark.slow
def test_visualize_sends_a_vegalite_chart(kernel):
    reply, _ = run(kernel, "%format controls off")
    assert reply["status"] == "ok"
    reply, outputs = run(kernel, "FROM sales SHOW net_sales TIMESERIES month DURING last_year VISUALIZE net_sales TYPE line")
    run(kernel, "%format controls on")
    assert reply["status"] == "ok"
    table, chart = displays(outputs)
    assert "text/html" in table
    kinds = [k for k in chart if k in VEGALITE]
    assert kinds, chart.keys()
    spec = chart[kinds[0]]
    assert spec["data"]["values"] or spec.get("datasets")
    # JupyterLab 4 renders Vega-Lite v5 offline: a v5 copy is always there.
    assert "application/vnd.vegalite.v5+json" in chart


@pytest.mark.slow
def test_syntax_error_then_a_good_query(kernel):
    reply, outputs = run(kernel, "FROM sales SHOW net_sales WHERE")
    assert reply["status"] == "error"
    assert reply["ename"] == "CommerceQLSyntaxError"
    assert [o["type"] for o in outputs] == ["error"]
    _no_python_traceback(reply["traceback"])
    assert any("^" in line for line in reply["traceback"])
    reply, outputs = run(kernel, "FROM sales SHOW orders")
    assert reply["status"] == "ok"
    assert len(displays(outputs)) == 1


@pytest.mark.slow
def test_interrupt_cancels_a_long_query_and_the_kernel_stays_usable(kernel):
    # The statement takes about a minute: the cell ends with "interrupted" only if the interrupt
    # worked (no check on how long it took: CI machines are busy).
    reply, outputs = run(kernel, "%sleep_sql 60", interrupt_after=1.5)
    assert reply["status"] == "error"
    assert reply["ename"] == "QueryInterrupted"
    assert reply["traceback"] == ["query interrupted"]
    reply, outputs = run(kernel, "FROM sales SHOW orders, net_sales DURING last_month")
    assert reply["status"] == "ok"
    assert "Orders" in displays(outputs)[0]["text/plain"]


@pytest.mark.slow
def test_magics_in_the_kernel(kernel):
    reply, outputs = run(kernel, "FROM sales SHOW net_sales GROUP BY month DURING last_year\n%sql")
    assert reply["status"] == "ok"
    table, sql = displays(outputs)
    assert "SELECT" in sql["text/plain"] and "```sql" in sql["text/markdown"]

    reply, outputs = run(kernel, "%sql FROM sales SHOW orders")
    assert "SELECT" in displays(outputs)[0]["text/plain"]

    reply, outputs = run(kernel, "%timezone Europe/Paris\n%timezone")
    assert reply["status"] == "ok"
    assert outputs[-1]["text"].strip() == "time zone: Europe/Paris"
    run(kernel, "%timezone America/New_York")

    reply, outputs = run(kernel, "%format rows 1\nFROM sales SHOW net_sales GROUP BY sales_channel\n%format reset")
    assert reply["status"] == "ok"
    assert "showing 1 of" in displays(outputs)[0]["text/html"]

    reply, outputs = run(kernel, "%nope")
    assert reply["status"] == "error" and reply["ename"] == "CommerceQLMagicError"
    assert "%connect" in "\n".join(reply["traceback"]) and "%schema" in "\n".join(reply["traceback"])

    reply, outputs = run(kernel, "%help")
    assert "%timezone" in displays(outputs)[0]["text/plain"]


# ---------------------------------------------------------------------------------------------
# The cell logic in-process (fast)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def session():
    from commerceql_kernel.session import KernelSession

    return KernelSession(store_path=prepare())


def run_in(session, code: str) -> list:
    outputs: list = []
    session.run_cell(code, outputs.append)
    return outputs


def test_split_cell_keeps_magics_in_order_and_strings_intact():
    from commerceql_kernel.session import split_cell

    segments = split_cell("%timezone UTC\nFROM sales\n  SHOW orders\n%sql\nFROM sales SHOW net_sales WHERE a = 'x\n%not a magic'")
    assert [(s.kind, s.name, s.line) for s in segments] == [
        ("magic", "timezone", 0),
        ("query", "", 1),
        ("magic", "sql", 3),
        ("query", "", 4),
    ]
    assert segments[3].text.endswith("%not a magic'")
    [cell_magic] = split_cell("%%sql\nFROM sales SHOW orders;\nFROM sales SHOW net_sales")
    assert (cell_magic.kind, cell_magic.name) == ("cell_magic", "sql") and "net_sales" in cell_magic.argument


def test_error_lines_count_from_the_top_of_the_cell(session):
    from commerceql_kernel.session import CellError

    with pytest.raises(CellError) as caught:
        run_in(session, "%format\n\nFROM sales\n  SHOW net_sale")
    assert "4 |   SHOW net_sale" in caught.value.traceback


def test_internal_errors_are_short_and_the_session_survives(session, monkeypatch):
    from commerceql_kernel.session import CellError

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(type(session.store), "compile", broken)
    with pytest.raises(CellError) as caught:
        run_in(session, "FROM sales SHOW orders")
    assert caught.value.ename == "InternalError"
    assert caught.value.evalue == "internal error: RuntimeError: boom"
    _no_python_traceback(caught.value.traceback)
    monkeypatch.undo()
    assert run_in(session, "FROM sales SHOW orders")[0].kind == "display"


def test_format_options(session):
    from commerceql_kernel.session import CellError

    try:
        outputs = run_in(session, "%format output text\nFROM sales SHOW orders GROUP BY customer_type")
        assert list(outputs[-1].data) == ["text/plain"]
        outputs = run_in(session, "%format numbers raw\nFROM sales SHOW net_sales GROUP BY customer_type")
        assert "$" not in outputs[-1].data["text/plain"]
        outputs = run_in(session, "%format reset\n%format charts off\nFROM sales SHOW net_sales TIMESERIES month VISUALIZE net_sales")
        assert len([o for o in outputs if o.kind == "display"]) == 1
        with pytest.raises(CellError) as caught:
            run_in(session, "%format rows many")
        assert caught.value.ename == "CommerceQLMagicError"
        with pytest.raises(CellError):
            run_in(session, "%format colour blue")
    finally:
        run_in(session, "%format reset")


def test_schema_timezone_and_connect_magics(session):
    from commerceql_kernel.session import CellError

    tables = run_in(session, "%schema")[0].data
    assert "sales" in tables["text/plain"] and "<table" in tables["text/html"]
    assert "net_sales" in run_in(session, "%schema sales")[0].data["text/plain"]
    with pytest.raises(CellError) as caught:
        run_in(session, "%timezone Europe/Pariss")
    assert "Europe/Paris" in "\n".join(caught.value.traceback)
    with pytest.raises(CellError) as caught:
        run_in(session, "%connect /no/such/store")
    assert caught.value.ename == "CommerceQLDataError"
    sql = run_in(session, "%%sql\nFROM sales SHOW orders;\nFROM sales SHOW net_sales")
    assert len(sql) == 2 and all("SELECT" in o.data["text/plain"] for o in sql)
    with pytest.raises(CellError) as caught:
        run_in(session, "%%timezone\nUTC")
    assert caught.value.ename == "CommerceQLMagicError"
    out = run_in(session, f"%connect {prepare()}")
    assert out[0].kind == "stream" and "connected to" in out[0].text
    # A pinned clock is named where it stands (relative dates follow it).
    out = run_in(session, f"%connect {prepare()} as_of=2024-06-30")
    assert "clock 2024-06-30 23:59" in out[0].text
    assert session.store.now().date().isoformat() == "2024-06-30"


def test_magic_line_completion_and_inspection(session):
    assert session.complete("%ti", 3).matches == ["%timezone"]
    assert session.complete("%schema sa", 10).matches == ["sales"]
    assert "Europe/Paris" in session.complete("%timezone Europe/Pa", 19).matches
    assert session.complete("%format ch", 10).matches == ["charts"]
    assert session.complete("%format charts o", 16).matches == ["on", "off"]
    completion = session.complete("%sql FROM sales SHOW net_", 25)
    assert completion.matches[0] == "net_sales" and completion.cursor_start == 21
    # a query after a magic line completes as usual
    assert session.complete("%timezone UTC\nFROM sales SHOW net_", 34).matches[0] == "net_sales"
    assert "%timezone" in session.inspect("%timezone UTC", 3)["text/plain"]


# ---------------------------------------------------------------------------------------------
# Control bars are closed, not leaked (counts of live widgets and comms, never memory or time)
# ---------------------------------------------------------------------------------------------

BAR_QUERY = "FROM sales SHOW net_sales GROUP BY sales_channel DURING last_month VISUALIZE net_sales TYPE bar"


def _open_explore_widgets() -> int:
    from ipywidgets.widgets.widget import _instances

    from commerceql.widgets import ExploreWidget

    return sum(isinstance(w, ExploreWidget) for w in _instances.values())


@pytest.fixture
def widget_session():
    from commerceql_kernel.session import KernelSession

    opened = KernelSession(store_path=prepare())
    opened.widgets_available = True  # in-process widgets talk to ipywidgets' dummy comm
    opened.live.limit = 5
    yield opened
    opened.live.close_all()


def test_a_rerun_cell_replaces_its_control_bar(widget_session):
    before = _open_explore_widgets()
    for _ in range(20):
        outputs: list = []
        widget_session.run_cell(BAR_QUERY, outputs.append, cell_id="cell-1")
        assert [o.kind for o in outputs] == ["display"] and outputs[0].display_id
    assert _open_explore_widgets() - before == 1 and len(widget_session.live) == 1


def test_new_cells_keep_at_most_the_limit_of_control_bars(widget_session):
    before = _open_explore_widgets()
    outputs: list = []
    for index in range(16):
        widget_session.run_cell(BAR_QUERY if index % 2 else f"{BAR_QUERY}\n%controls", outputs.append, cell_id=f"c{index}")
    shown = [o for o in outputs if o.kind == "display"]
    updates = [o for o in outputs if o.kind == "update"]
    assert len(shown) == 24  # 16 cells, every other one with %controls too
    assert _open_explore_widgets() - before == 5 and len(widget_session.live) == 5
    # the 19 retired bars were replaced in place: each update names an earlier display
    assert [u.display_id for u in updates] == [s.display_id for s in shown[:19]]
    assert all("closed to free memory" in u.data["text/plain"] and "<table" in u.data["text/html"] for u in updates)
    # without a cell id (older frontends) only the limit applies
    for _ in range(8):
        widget_session.run_cell(BAR_QUERY, outputs.append)
    assert _open_explore_widgets() - before == 5


@pytest.mark.slow
def test_the_kernel_process_closes_the_comms_of_replaced_bars(kernel):
    """Through the real kernel: re-running a cell (same cellId) leaves one bar's comms open."""
    km, kc = kernel

    def execute(cell_id: str) -> list[str]:
        message = kc.session.msg(
            "execute_request",
            {"code": BAR_QUERY, "silent": False, "store_history": True, "user_expressions": {}, "allow_stdin": False},
            metadata={"cellId": cell_id},
        )
        kc.shell_channel.send(message)
        msg_id = message["header"]["msg_id"]
        while kc.get_shell_msg(timeout=120)["parent_header"].get("msg_id") != msg_id:
            pass
        kinds = []
        while True:
            iopub = kc.get_iopub_msg(timeout=120)
            if iopub["parent_header"].get("msg_id") != msg_id:
                continue
            if iopub["msg_type"] == "status" and iopub["content"]["execution_state"] == "idle":
                return kinds
            kinds.append(iopub["msg_type"])

    def open_comms() -> int:
        msg_id = kc.comm_info()
        while True:
            reply = kc.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                return len(reply["content"]["comms"])

    execute("warm-up")
    baseline = open_comms()
    first = execute("soak-cell")
    per_bar = open_comms() - baseline
    assert per_bar == first.count("comm_open") > 20
    for _ in range(4):
        kinds = execute("soak-cell")
        assert kinds.count("comm_close") == per_bar  # the previous run's bar, all of it
    assert open_comms() - baseline == per_bar
