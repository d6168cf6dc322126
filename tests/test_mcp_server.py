"""The MCP server (`commerceql mcp`) driven by the official SDK's own client.

Most tests talk to the server in-process over the SDK's memory transport (the initialize handshake
and JSON-RPC framing included); one slow test spawns `python -m commerceql.cli mcp` and talks to it
over stdio. Numbers are checked against Polars computations over the raw Parquet files.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import anyio
import polars as pl
import pytest
from mcp import Client, StdioServerParameters
from mcp_types import CallToolResult, ImageContent, TextContent
from rawdata import raw

import commerceql as cql
from commerceql import mcp_server
from commerceql.errors import CommerceQLError
from commerceql.mcp_server import build_server, json_value
from commerceql.store import Store

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TOOLS = {"list_tables", "describe_table", "run_query", "explain_query", "render_chart"}
# A fixed period, so the oracle does not depend on the store's clock: [2025-01-01, 2025-04-01) local.
FIRST_QUARTER = "SINCE 2025-01-01 UNTIL 2025-03-31"
BY_CHANNEL = f"FROM sales SHOW net_sales, orders GROUP BY sales_channel {FIRST_QUARTER}"

T = TypeVar("T")


@pytest.fixture(scope="module")
def store(sample_store_path: Path) -> Iterator[Store]:
    with cql.connect(sample_store_path) as opened:
        yield opened


def with_client(server: Any, work: Callable[[Client], Awaitable[T]]) -> T:
    """Run `work` with an SDK client connected in-process (initialize handshake, JSON-RPC messages)."""

    async def main() -> T:
        async with Client(server, mode="legacy", read_timeout_seconds=300) as client:
            return await work(client)

    return anyio.run(main)


def call(server: Any, tool: str, arguments: dict[str, Any]) -> CallToolResult:
    async def work(client: Client) -> CallToolResult:
        return await client.call_tool(tool, arguments)

    return with_client(server, work)


def text_of(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def net_sales_by_channel(path: Path, start: str, end: str) -> dict[str, tuple[float, int]]:
    """Net sales and orders per sales channel over [start, end) in the store's local time, by hand.

    Net sales is the sum of every sales row's net_sales on its own date; orders counts the
    distinct orders of `order` events (tests/test_results.py writes the same definitions in SQL).
    """
    zone = json.loads((path / "manifest.json").read_text(encoding="utf-8"))["timezone"]
    sales = raw(path, "sales").with_columns(
        local=pl.col("happened_at").dt.convert_time_zone(zone).dt.replace_time_zone(None)
    )
    window = sales.filter(
        (pl.col("local") >= dt.datetime.fromisoformat(start)) & (pl.col("local") < dt.datetime.fromisoformat(end))
    )
    totals = window.group_by(pl.col("sales_channel").cast(pl.String)).agg(
        pl.col("net_sales").sum().alias("net_sales"),
        pl.col("order_id").filter(pl.col("event_type").cast(pl.String) == "order").n_unique().alias("orders"),
    )
    return {row["sales_channel"]: (float(row["net_sales"]), row["orders"]) for row in totals.iter_rows(named=True)}


# -- the handshake and the tool list ------------------------------------------------------------
def test_initialize_lists_the_read_only_tools_resources_and_prompt(store: Store) -> None:
    async def work(client: Client) -> tuple[Any, ...]:
        return (client.server_info, client.server_capabilities, await client.list_tools(),
                await client.list_resources(), await client.list_prompts())

    info, capabilities, tools, listed_resources, prompts = with_client(build_server(store), work)
    assert info is not None and info.name == "commerceql"
    assert capabilities.tools is not None and capabilities.resources is not None and capabilities.prompts is not None
    # No tool runs raw SQL: these five are all there is, and each says it only reads.
    assert {tool.name for tool in tools.tools} == TOOLS
    for tool in tools.tools:
        assert tool.annotations is not None and tool.annotations.read_only_hint is True, tool.name
        assert tool.annotations.destructive_hint is False, tool.name
        assert tool.description, tool.name
    run_query = next(tool for tool in tools.tools if tool.name == "run_query")
    assert run_query.input_schema["required"] == ["query"]
    assert {"rows", "columns", "truncated", "notices"} <= set(run_query.output_schema["properties"])
    assert {str(resource.uri) for resource in listed_resources.resources} == {
        "commerceql://docs/language", "commerceql://docs/metrics", "commerceql://store/schema"}
    assert [prompt.name for prompt in prompts.prompts] == ["write_query"]


# -- run_query -----------------------------------------------------------------------------------
def test_run_query_rows_match_a_hand_computation(store: Store, sample_store_path: Path) -> None:
    result = call(build_server(store), "run_query", {"query": BY_CHANNEL})
    assert result.is_error is not True, text_of(result)
    answer = result.structured_content
    assert answer is not None
    # The text block carries the same answer, as JSON, for clients that read only text.
    assert json.loads(text_of(result)) == answer

    expected = net_sales_by_channel(sample_store_path, "2025-01-01", "2025-04-01")
    rows = answer["rows"]
    assert {row["sales_channel"] for row in rows} == set(expected)
    for row in rows:
        net_sales, orders = expected[row["sales_channel"]]
        assert isinstance(row["net_sales"], float)  # money is a JSON number, not a string
        assert abs(row["net_sales"] - net_sales) < 0.005, row
        assert row["orders"] == orders, row
    assert [row["net_sales"] for row in rows] == sorted((row["net_sales"] for row in rows), reverse=True)

    assert [(c["name"], c["role"], c["type"]) for c in answer["columns"]] == [
        ("sales_channel", "dimension", "string"), ("net_sales", "metric", "money"), ("orders", "metric", "count")]
    assert answer["columns"][1]["label"] == "Net sales"
    assert answer["row_count"] == len(expected) and answer["total_rows"] == len(expected)
    assert answer["truncated"] is False
    assert answer["period"]["start"] == "2025-01-01T00:00:00" and answer["period"]["end"] == "2025-04-01T00:00:00"
    assert answer["period"]["timezone"] == store.timezone and answer["currency"] == store.currency


def test_the_row_cap_keeps_the_first_rows_and_says_so(store: Store, sample_store_path: Path) -> None:
    expected = net_sales_by_channel(sample_store_path, "2025-01-01", "2025-04-01")
    assert len(expected) > 2
    answer = call(build_server(store, max_rows=2), "run_query", {"query": BY_CHANNEL}).structured_content
    assert answer is not None
    largest = sorted(expected, key=lambda channel: expected[channel][0], reverse=True)[:2]
    assert [row["sales_channel"] for row in answer["rows"]] == largest
    assert answer["row_count"] == 2 and answer["total_rows"] == len(expected)
    assert answer["truncated"] is True
    assert any(f"first 2 of {len(expected)} rows" in notice for notice in answer["notices"])


def test_dates_and_time_grains_come_back_as_iso_text(store: Store, sample_store_path: Path) -> None:
    query = f"FROM sales SHOW net_sales GROUP BY month {FIRST_QUARTER}"
    answer = call(build_server(store), "run_query", {"query": query}).structured_content
    assert answer is not None
    assert [row["month"] for row in answer["rows"]] == ["2025-01-01", "2025-02-01", "2025-03-01"]
    assert answer["columns"][0]["role"] == "time" and answer["columns"][0]["type"] == "month"
    by_channel = net_sales_by_channel(sample_store_path, "2025-01-01", "2025-04-01")
    assert abs(sum(row["net_sales"] for row in answer["rows"]) - sum(v[0] for v in by_channel.values())) < 0.01
    json.dumps(answer, allow_nan=False)  # strict JSON: no NaN, no Decimal, no datetime objects


def test_json_values_follow_the_documented_conventions() -> None:
    local = dt.datetime(2025, 12, 14, 9, 30)
    aware = dt.datetime(2025, 12, 14, 9, 30, tzinfo=ZoneInfo("America/New_York"))
    assert json_value(Decimal("419708.65")) == 419708.65
    assert json_value(Decimal("NaN")) is None
    assert json_value(float("inf")) is None and json_value(math.nan) is None
    assert json_value(dt.date(2025, 11, 1)) == "2025-11-01"
    assert json_value(local) == "2025-12-14T09:30:00"
    assert json_value(aware) == "2025-12-14T09:30:00-05:00"
    assert json_value(dt.timedelta(days=1, seconds=30)) == 86430.0
    assert json_value([Decimal("1.50"), None, "VIP"]) == [1.5, None, "VIP"]
    assert json_value({"a": dt.date(2024, 2, 29)}) == {"a": "2024-02-29"}
    assert json_value(True) is True and json_value(7) == 7


@pytest.mark.parametrize(
    ("query", "position", "hint"),
    [
        ("FROM sales SHOW net_sale", "line 1, column 17", "hint: did you mean `net_sales`?"),
        ("FROM sales\n  SHOW net_sales\n  GROUP BY sales_chanel DURING last_month", "line 3, column 12",
         "hint: did you mean `sales_channel`?"),
        ("FROM sales SHOW net_sales; DROP TABLE sales", "line 1, column 28", "hint:"),
    ],
)
def test_a_bad_query_is_a_tool_error_with_the_message_users_see(store: Store, query: str, position: str,
                                                                 hint: str) -> None:
    result = call(build_server(store), "run_query", {"query": query})
    assert result.is_error is True
    with pytest.raises(CommerceQLError) as raised:
        store.query(query)
    assert text_of(result) == raised.value.render()
    assert position in text_of(result) and hint in text_of(result) and "^" in text_of(result)
    assert "Traceback" not in text_of(result)


def test_an_unexpected_failure_is_a_short_internal_error(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret detail /home/someone/store")

    server = build_server(store)
    monkeypatch.setattr(store, "query", broken)
    result = call(server, "run_query", {"query": BY_CHANNEL})
    assert result.is_error is True
    assert text_of(result).startswith("internal error: RuntimeError in run_query")
    assert "secret" not in text_of(result) and "Traceback" not in text_of(result)


def test_the_row_cap_must_be_positive(store: Store) -> None:
    for bad in (0, -5):
        with pytest.raises(CommerceQLError, match="row cap"):
            build_server(store, max_rows=bad)


# -- the other tools -------------------------------------------------------------------------------
def test_list_tables_names_every_table_and_the_store_clock(store: Store) -> None:
    answer = call(build_server(store), "list_tables", {}).structured_content
    assert answer is not None
    assert [table["name"] for table in answer["tables"]] == list(store.model.tables)
    sales = next(table for table in answer["tables"] if table["name"] == "sales")
    assert sales["description"] == " ".join(store.model.tables["sales"].description.split())
    assert answer["store"]["timezone"] == store.timezone and answer["store"]["currency"] == store.currency
    assert dt.datetime.fromisoformat(answer["store"]["as_of"]) == store.now()


def test_describe_table_lists_metrics_and_dimensions_with_their_definitions(store: Store) -> None:
    answer = call(build_server(store), "describe_table", {"table": "sales"}).structured_content
    assert answer is not None
    model = store.model.tables["sales"]
    current = {name for name, metric in model.metrics.items() if not metric.alias_of}
    assert {metric["name"] for metric in answer["metrics"]} == current  # older spellings are not offered
    assert {dimension["name"] for dimension in answer["dimensions"]} >= set(model.dimensions)
    net_sales = next(metric for metric in answer["metrics"] if metric["name"] == "net_sales")
    assert net_sales["type"] == "money"
    assert net_sales["description"] == " ".join(model.metrics["net_sales"].description.split())
    channel = next(d for d in answer["dimensions"] if d["name"] == "sales_channel")
    assert channel["type"] == "string" and channel["description"]


def test_describe_table_of_an_unknown_table_suggests_one(store: Store) -> None:
    result = call(build_server(store), "describe_table", {"table": "salez"})
    assert result.is_error is True
    assert "unknown table `salez`" in text_of(result) and "did you mean `sales`?" in text_of(result)


def test_explain_query_returns_the_sql_without_running_it(store: Store) -> None:
    result = call(build_server(store), "explain_query", {"query": BY_CHANNEL})
    assert result.is_error is not True
    sql = text_of(result)
    assert sql == store.explain(BY_CHANNEL).rstrip() + ";"
    assert "net_sales" in sql and "sales_channel" in sql
    bad = call(build_server(store), "explain_query", {"query": "FROM sales SHOW net_sale"})
    assert bad.is_error is True and "line 1, column 17" in text_of(bad)


CHART = f"FROM sales SHOW net_sales GROUP BY month {FIRST_QUARTER} VISUALIZE net_sales TYPE line"


def test_render_chart_as_png(store: Store) -> None:
    result = call(build_server(store), "render_chart", {"query": CHART})
    assert result.is_error is not True, text_of(result)
    images = [block for block in result.content if isinstance(block, ImageContent)]
    assert len(images) == 1 and images[0].mime_type == "image/png"
    assert base64.b64decode(images[0].data).startswith(PNG_SIGNATURE)


def test_render_chart_as_vega_lite(store: Store) -> None:
    result = call(build_server(store), "render_chart", {"query": CHART, "format": "vega-lite"})
    assert result.is_error is not True, text_of(result)
    spec = json.loads(text_of(result))
    assert "vega-lite" in spec["$schema"]
    assert spec["mark"]["type"] == "line"
    # The data travels inline: one point per month of the query's answer.
    months = sorted({point["month"][:10] for point in spec["data"]["values"]})
    assert months == ["2025-01-01", "2025-02-01", "2025-03-01"]


def test_render_chart_without_visualize_is_a_clear_error(store: Store) -> None:
    result = call(build_server(store), "render_chart", {"query": BY_CHANNEL})
    assert result.is_error is True
    assert "no VISUALIZE clause" in text_of(result) and "hint:" in text_of(result)
    unknown = call(build_server(store), "render_chart", {"query": CHART, "format": "gif"})
    assert unknown.is_error is True


# -- resources and the prompt ------------------------------------------------------------------------
def test_the_references_are_the_docs_and_the_schema_is_this_store(store: Store) -> None:
    async def work(client: Client) -> dict[str, str]:
        texts = {}
        for uri in ("commerceql://docs/language", "commerceql://docs/metrics", "commerceql://store/schema"):
            contents = (await client.read_resource(uri)).contents
            assert contents[0].mime_type == "text/markdown"
            texts[uri] = contents[0].text  # type: ignore[union-attr]
        return texts

    texts = with_client(build_server(store), work)
    assert texts["commerceql://docs/language"] == (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    assert texts["commerceql://docs/metrics"] == (ROOT / "docs" / "metrics.md").read_text(encoding="utf-8")
    schema = texts["commerceql://store/schema"]
    for table in store.model.tables:
        assert f"## `{table}`" in schema
    assert "- `net_sales` (money):" in schema


def test_the_packaged_references_point_at_the_docs() -> None:
    # Package data (pyproject: resources/*) links to docs/, so a built wheel carries the current text.
    for name in ("language.md", "metrics.md"):
        packaged = ROOT / "commerceql" / "resources" / name
        assert packaged.is_symlink() and packaged.resolve() == (ROOT / "docs" / name).resolve()


def test_the_write_query_prompt_carries_the_question_and_the_tables(store: Store) -> None:
    async def work(client: Client) -> Any:
        return await client.get_prompt("write_query", {"question": "Which channel sold most last month?"})

    prompt = with_client(build_server(store), work)
    text = prompt.messages[0].content.text
    assert prompt.messages[0].role == "user"
    assert "Which channel sold most last month?" in text
    assert all(f"`{table}`" in text for table in store.model.tables)
    assert "run_query" in text and "commerceql://docs/language" in text


# -- the command, over stdio ----------------------------------------------------------------------------
@pytest.mark.slow
def test_the_command_serves_over_stdio(store: Store, sample_store_path: Path) -> None:
    parameters = StdioServerParameters(
        command=sys.executable,
        args=["-m", "commerceql.cli", "mcp", "--data", str(sample_store_path), "--max-rows", "2"],
        env=dict(os.environ),
        cwd=str(ROOT),
    )

    async def main() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        # A generous bound, so a hung server fails the test instead of stalling CI.
        with anyio.fail_after(600):
            await talk(seen)
        return seen

    async def talk(seen: dict[str, Any]) -> None:
        async with Client(parameters, mode="legacy", read_timeout_seconds=300) as client:
            seen["info"] = client.server_info
            seen["tools"] = {tool.name for tool in (await client.list_tools()).tools}
            seen["rows"] = await client.call_tool("run_query", {"query": BY_CHANNEL})
            seen["bad"] = await client.call_tool("run_query", {"query": "FROM sales\n  SHOW net_sale"})
            seen["sql"] = await client.call_tool("explain_query", {"query": BY_CHANNEL})
            seen["png"] = await client.call_tool("render_chart", {"query": CHART})
            seen["spec"] = await client.call_tool("render_chart", {"query": CHART, "format": "vega-lite"})
            seen["table"] = await client.call_tool("describe_table", {"table": "sales"})

    seen = anyio.run(main)
    assert seen["info"].name == "commerceql"
    assert seen["tools"] == TOOLS

    answer = seen["rows"].structured_content
    expected = net_sales_by_channel(sample_store_path, "2025-01-01", "2025-04-01")
    largest = sorted(expected, key=lambda channel: expected[channel][0], reverse=True)[:2]
    assert [row["sales_channel"] for row in answer["rows"]] == largest  # --max-rows 2
    for row in answer["rows"]:
        assert abs(row["net_sales"] - expected[row["sales_channel"]][0]) < 0.005
        assert row["orders"] == expected[row["sales_channel"]][1]
    assert answer["truncated"] is True and answer["total_rows"] == len(expected)

    bad = text_of(seen["bad"])
    assert seen["bad"].is_error is True
    assert "line 2, column 8" in bad and "hint: did you mean `net_sales`?" in bad

    assert text_of(seen["sql"]) == store.explain(BY_CHANNEL).rstrip() + ";"
    image = next(block for block in seen["png"].content if isinstance(block, ImageContent))
    assert base64.b64decode(image.data).startswith(PNG_SIGNATURE)
    assert "$schema" in json.loads(seen["spec"].content[0].text)
    assert "net_sales" in {metric["name"] for metric in seen["table"].structured_content["metrics"]}


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until the server accepts connections (or fails: then say why)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the server exited: {process.stderr.read().decode() if process.stderr else ''}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as attempt:
            attempt.settimeout(1)
            if attempt.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)  # polling interval, not synchronisation: the loop checks the port again
    raise AssertionError(f"the server did not listen on port {port} within {timeout:g} s")


@pytest.mark.slow
def test_the_command_serves_streamable_http_on_loopback(sample_store_path: Path) -> None:
    port = _free_loopback_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "commerceql.cli", "mcp", "--http", "--port", str(port),
         "--data", str(sample_store_path)],
        cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        _wait_for_port(port, process, timeout=300)

        async def main() -> CallToolResult:
            with anyio.fail_after(300):
                async with Client(f"http://127.0.0.1:{port}/mcp", read_timeout_seconds=300) as client:
                    return await client.call_tool("run_query", {"query": BY_CHANNEL})

        answer = anyio.run(main).structured_content
        expected = net_sales_by_channel(sample_store_path, "2025-01-01", "2025-04-01")
        assert answer is not None
        assert {row["sales_channel"]: row["orders"] for row in answer["rows"]} == {
            channel: orders for channel, (_, orders) in expected.items()}
        # The SDK's DNS-rebinding protection is on for a loopback address: a page served from another
        # name that resolves here cannot talk to the server.
        import httpx

        refused = httpx.post(f"http://127.0.0.1:{port}/mcp", headers={"Host": "attacker.example"},
                             json={"jsonrpc": "2.0", "id": 1, "method": "ping"}, timeout=60)
        assert refused.status_code == 421
    finally:
        process.terminate()
        process.wait(timeout=60)
        if process.stderr is not None:
            process.stderr.close()


def test_the_command_reports_a_bad_store_or_row_cap_like_every_command(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from commerceql.cli import main

    assert main(["mcp", "--data", str(tmp_path / "missing")]) == 2
    assert "data error: cannot open" in capsys.readouterr().err
    assert main(["mcp", "--max-rows", "0"]) == 2
    assert "--max-rows must be at least 1" in capsys.readouterr().err


def test_a_checkout_without_symbolic_links_still_serves_the_docs(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # Git writes a link as a small file holding its target when the file system has no links.
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "language.md").write_text("../../docs/language.md", encoding="utf-8")
    monkeypatch.setattr(mcp_server.resources, "files", lambda package: tmp_path)
    assert mcp_server._reference_text("language") == (ROOT / "docs" / "language.md").read_text(encoding="utf-8")


def test_the_example_in_the_server_instructions_runs(store: Store) -> None:
    async def work(client: Client) -> tuple[str | None, CallToolResult | None]:
        instructions = client.instructions
        example = next(line.strip() for line in (instructions or "").splitlines() if line.startswith("    FROM "))
        return instructions, await client.call_tool("run_query", {"query": example})

    instructions, result = with_client(build_server(store), work)
    assert instructions is not None and "describe_table" in instructions
    assert result is not None and result.is_error is not True, text_of(result)
