"""The language server (`commerceql lsp`, docs/editors.md).

The pure functions behind each feature are tested directly (positions, statements, diagnostics,
completion, hover, formatting, loading a store's model); the `slow` tests drive the real server
over stdio with pygls's own client, the way an editor does.

Expected positions are computed here from the text (the index of the offending word, its length
in UTF-16 code units), never taken from the server's own helpers.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.lsp.client import LanguageClient

from commerceql import lsp
from commerceql.errors import CommerceQLError
from commerceql.formatter import format_query
from commerceql.lsp import LineIndex, ModelContext, load_context, split_statements
from commerceql.model import builtin_model
from commerceql.parser import parse, parse_script

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def position_of(text: str, offset: int) -> tuple[int, int]:
    """(line, UTF-16 character) of `offset`, counted by hand: lines end at \\n only here."""
    before = text[:offset]
    line = before.count("\n")
    return line, utf16_units(before[before.rfind("\n") + 1 :])


def as_pair(position: types.Position) -> tuple[int, int]:
    return position.line, position.character


@pytest.fixture(scope="module")
def context() -> ModelContext:
    return load_context(None)


# ---------------------------------------------------------------------------------------------
# Positions
# ---------------------------------------------------------------------------------------------


def test_positions_count_utf16_code_units() -> None:
    # é is one UTF-16 unit, the emoji two (it lies beyond the Basic Multilingual Plane).
    text = "-- café\nFROM 😀x"
    index = LineIndex(text)
    x = text.index("x")
    assert as_pair(index.position(x)) == (1, len("FROM ") + 2)
    assert as_pair(index.position(text.index("é") + 1)) == (0, len("-- café"))
    assert index.offset(types.Position(line=1, character=len("FROM ") + 2)) == x
    for offset in range(len(text) + 1):
        assert index.offset(index.position(offset)) == offset
        assert as_pair(index.position(offset)) == position_of(text, offset)


def test_positions_in_other_negotiated_encodings() -> None:
    text = "é😀x"
    x = text.index("x")
    assert LineIndex(text, types.PositionEncodingKind.Utf8).position(x).character == len("é😀".encode())
    assert LineIndex(text, types.PositionEncodingKind.Utf32).position(x).character == 2
    assert LineIndex(text, types.PositionEncodingKind.Utf8).offset(types.Position(line=0, character=6)) == x


def test_line_ends_are_the_ones_lsp_knows() -> None:
    text = "a\r\nb\rc\nd 'x\u2028y' e"
    index = LineIndex(text)
    assert as_pair(index.position(text.index("b"))) == (1, 0)
    assert as_pair(index.position(text.index("c"))) == (2, 0)
    # U+2028 inside a string is not a line break for the editor.
    assert as_pair(index.position(text.index("e"))) == (3, text.index("e") - text.index("d"))
    # An offset between \r and \n is the end of the line; a position past a line's end, its end.
    assert as_pair(index.position(2)) == (0, 1)
    assert index.offset(types.Position(line=0, character=99)) == 1
    assert index.offset(types.Position(line=99, character=0)) == len(text)
    assert as_pair(index.position(len(text) + 10)) == as_pair(index.position(len(text)))


# ---------------------------------------------------------------------------------------------
# Statements and diagnostics
# ---------------------------------------------------------------------------------------------


def test_statements_split_at_semicolons_outside_strings_and_comments() -> None:
    text = "FROM sales SHOW net_sales WHERE product_title = 'a;b' -- c;d\n;\n;  FROM orders SHOW orders"
    statements = split_statements(text)
    assert [s.text(text).strip() for s in statements] == [
        "FROM sales SHOW net_sales WHERE product_title = 'a;b' -- c;d",
        "FROM orders SHOW orders",
    ]
    # The split is the parser's: each piece parses to the query the whole script gives.
    assert [parse(s.text(text)) for s in statements] == parse_script(text)


def test_unknown_metric_has_its_exact_range_and_the_hint(context: ModelContext) -> None:
    text = "-- revenue 😀 é\nFROM sales SHOW /* 😀 */ net_sale, orders"
    (diagnostic,) = lsp.diagnose(text, context)
    start = text.index("net_sale,")
    assert as_pair(diagnostic.range.start) == position_of(text, start)
    assert as_pair(diagnostic.range.end) == position_of(text, start + len("net_sale"))
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert "net_sale" in diagnostic.message and "did you mean `net_sales`?" in diagnostic.message


def test_every_statement_is_checked_on_its_own(context: ModelContext) -> None:
    text = "FROM salez SHOW net_sales;\nFROM sales SHOW net_sales WHERE = 3;\nFROM sales SHOW net_sales"
    diagnostics = lsp.diagnose(text, context)
    assert len(diagnostics) == 2
    table, syntax = diagnostics
    assert as_pair(table.range.start) == position_of(text, text.index("salez"))
    assert as_pair(syntax.range.start) == position_of(text, text.index("= 3"))
    assert as_pair(syntax.range.end) == position_of(text, text.index("= 3") + 1)
    assert "did you mean `sales`?" in table.message


def test_messages_are_the_core_errors(context: ModelContext) -> None:
    text = "FROM sales SHOW net_sales GROUP BY month month"
    with pytest.raises(CommerceQLError) as info:
        parse(text)
    (diagnostic,) = lsp.diagnose(text, context)
    assert diagnostic.message.startswith(info.value.message)
    assert info.value.hint and info.value.hint in diagnostic.message
    assert diagnostic.code == info.value.kind


def test_older_forms_are_information_at_the_older_word(context: ModelContext) -> None:
    text = "FROM sales SHOW net_sales BY month"
    (diagnostic,) = lsp.diagnose(text, context)
    assert diagnostic.severity == types.DiagnosticSeverity.Information
    assert diagnostic.message in parse(text).notices
    assert diagnostic.tags == [types.DiagnosticTag.Deprecated]
    assert as_pair(diagnostic.range.start) == position_of(text, text.index("BY"))


def test_a_valid_script_has_no_diagnostics(context: ModelContext) -> None:
    assert lsp.diagnose("FROM sales SHOW net_sales GROUP BY month DURING last_year;\n\n-- done\n", context) == []
    assert lsp.diagnose("", context) == []


@pytest.mark.parametrize(
    "text",
    ["\x00\x01", "FROM", "'", '"', "/*", "(((((((((", "FROM sales SHOW " + "(" * 5000, "é😀" * 100, ";;;", "FROM sales SHOW net_sales WHERE x MATCHES"],
)
def test_bad_text_gives_diagnostics_not_exceptions(text: str, context: ModelContext) -> None:
    diagnostics = lsp.diagnose(text, context)
    assert diagnostics or not text.strip(";")
    assert all(d.severity == types.DiagnosticSeverity.Error for d in diagnostics)


_FRAGMENTS = st.sampled_from(
    ["FROM", " sales", " SHOW", " net_sales", ",", " GROUP BY", " month", " WHERE", " = ", "'é😀'", '"Net"', ";",
     "\n", "\r\n", "\u2028", " -- c\n", "/* x */", "(", ")", " BY", " OVER day", " 3", "%magic\n", "\n\n\n", "'"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=st.lists(_FRAGMENTS, max_size=14), where=st.integers(min_value=0, max_value=400),
       notebook=st.booleans())
def test_no_text_makes_a_feature_fail(pieces: list[str], where: int, notebook: bool, context: ModelContext) -> None:
    text = "".join(pieces)
    index = LineIndex(text)
    lines = len(re.split(r"\r\n|\r|\n", text))
    position = index.position(min(where, len(text)))
    for diagnostic in lsp.diagnose(text, context, notebook=notebook):
        start, end = diagnostic.range.start, diagnostic.range.end
        assert (start.line, start.character) <= (end.line, end.character)
        assert end.line < lines
    lsp.complete_at(text, position, context.model, notebook=notebook)
    lsp.hover_at(text, position, context.model, notebook=notebook)
    edits = lsp.format_edits(text)
    if edits:  # what formatting writes parses to the same queries
        assert parse_script(apply_edits(text, edits)) == parse_script(text)


def test_a_bug_in_a_stage_is_a_diagnostic(context: ModelContext, monkeypatch: pytest.MonkeyPatch) -> None:
    import commerceql.resolver

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(commerceql.resolver, "resolve", broken)
    (diagnostic,) = lsp.diagnose("FROM sales SHOW net_sales", context)
    assert "internal error" in diagnostic.message


# ---------------------------------------------------------------------------------------------
# Completion, hover, formatting
# ---------------------------------------------------------------------------------------------


def test_completion_items_carry_kinds_documentation_and_the_replaced_range(context: ModelContext) -> None:
    text = "-- é😀\nFROM sales SHOW net_"
    end = LineIndex(text).position(len(text))
    result = lsp.complete_at(text, end, context.model)
    items = {item.label: item for item in result.items}
    net_sales = items["net_sales"]
    assert result.items[0].label == "net_sales"
    assert net_sales.kind == types.CompletionItemKind.Function and net_sales.detail == "metric"
    assert builtin_model().tables["sales"].metrics["net_sales"].description in str(net_sales.documentation)
    assert net_sales.text_edit is not None
    assert as_pair(net_sales.text_edit.range.start) == position_of(text, text.index("net_"))
    assert as_pair(net_sales.text_edit.range.end) == position_of(text, len(text))
    keywords = lsp.complete_at("FROM sales SHOW net_sales GR", types.Position(line=0, character=28), context.model)
    assert [(i.label, i.kind) for i in keywords.items] == [("GROUP BY", types.CompletionItemKind.Keyword)]


def test_hover_shows_the_definition_as_markdown(context: ModelContext) -> None:
    text = "FROM sales SHOW net_sales GROUP BY product_title"
    metric = lsp.hover_at(text, types.Position(line=0, character=text.index("net_sales") + 3), context.model)
    assert metric is not None and isinstance(metric.contents, types.MarkupContent)
    assert metric.contents.kind == types.MarkupKind.Markdown
    assert builtin_model().tables["sales"].metrics["net_sales"].description in metric.contents.value
    assert metric.range is not None and metric.range.start.character == text.index("net_sales")
    dimension = lsp.hover_at(text, types.Position(line=0, character=len(text) - 1), context.model)
    assert dimension is not None and isinstance(dimension.contents, types.MarkupContent)
    assert builtin_model().tables["sales"].dimensions["product_title"].description in dimension.contents.value
    assert lsp.hover_at("FROM sales SHOW    net_sales", types.Position(line=0, character=17), context.model) is None


def apply_edits(text: str, edits: list[types.TextEdit]) -> str:
    index = LineIndex(text)
    spans = sorted(((index.offset(e.range.start), index.offset(e.range.end), e.new_text) for e in edits), reverse=True)
    for start, end, new_text in spans:
        text = text[:start] + new_text + text[end:]
    return text


def test_formatting_is_the_formatters_output() -> None:
    text = "from sales show net_sales,orders group by month since -3m"
    assert apply_edits(text, lsp.format_edits(text)) == format_query(parse(text))
    formatted = format_query(parse(text))
    assert lsp.format_edits(formatted) == []


def test_formatting_keeps_what_lies_between_statements_and_statements_with_comments() -> None:
    first, second = "from sales show net_sales", "from orders show orders -- keep me\n since -3m"
    text = f"-- report\n{first};\n\n{second};\n"
    result = apply_edits(text, lsp.format_edits(text))
    assert result == f"-- report\n{format_query(parse(first))};\n\n{second};\n"


def test_a_document_that_does_not_parse_gets_no_edits() -> None:
    assert lsp.format_edits("from sales show net_sales;\nfrom sales show (") == []


# ---------------------------------------------------------------------------------------------
# Notebooks through jupyterlab-lsp
# ---------------------------------------------------------------------------------------------


def virtual_notebook(cells: list[str]) -> str:
    """A notebook's text as jupyterlab-lsp sends it: each cell and a line end, two blank lines between."""
    return "\n\n".join(cell + "\n" for cell in cells)


def test_a_notebook_is_read_cell_by_cell_with_magics_blanked(context: ModelContext) -> None:
    cells = ["%schema sales", "FROM sales SHOW net_sales\n  GROUP BY month", "FROM orders SHOW orderz", "FROM sales SHOW net_"]
    text = virtual_notebook(cells)
    assert lsp.is_notebook("file:///home/a/.virtual_documents/reports/weekly.ipynb")
    assert not lsp.is_notebook("file:///home/a/reports/weekly.cql")
    diagnostics = lsp.diagnose(text, context, notebook=True)
    assert [as_pair(d.range.start) for d in diagnostics] == [
        position_of(text, text.index("orderz")),
        position_of(text, text.index("net_\n")),
    ]
    # As a .cql file the same text is one statement (no `;`) that starts with a stray `%`.
    assert as_pair(lsp.diagnose(text, context)[0].range.start) == (0, 0)
    end = LineIndex(text).position(text.index("net_\n") + len("net_"))
    labels = [item.label for item in lsp.complete_at(text, end, context.model, notebook=True).items]
    assert labels[0] == "net_sales"
    in_orders = LineIndex(text).position(text.index("orderz"))
    assert "orders" in [i.label for i in lsp.complete_at(text, in_orders, context.model, notebook=True).items]
    hover = lsp.hover_at(text, LineIndex(text).position(text.index("net_sales") + 1), context.model, notebook=True)
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert "metric of `sales`" in hover.contents.value


def test_the_documented_jupyterlab_lsp_spec_is_valid() -> None:
    schema = pytest.importorskip("jupyter_lsp.schema")
    text = (ROOT / "docs" / "editors.md").read_text(encoding="utf-8")
    block = text.split("## JupyterLab", 1)[1].split("```json\n", 1)[1].split("```", 1)[0]
    servers = json.loads(block)["LanguageServerManager"]["language_servers"]
    schema.LANGUAGE_SERVER_SPEC_MAP.validate(servers)
    spec = servers["commerceql"]
    assert spec["argv"][1] == "lsp" and spec["languages"] == ["commerceql"]
    # The kernel's own language name and MIME type, which jupyterlab-lsp matches servers on.
    from commerceql_kernel.kernel import CommerceQLKernel

    assert spec["mime_types"] == [CommerceQLKernel.language_info["mimetype"]]
    assert spec["languages"] == [CommerceQLKernel.language_info["name"]]


# ---------------------------------------------------------------------------------------------
# A store's model
# ---------------------------------------------------------------------------------------------

USER_MODEL = """
name: sales
metrics:
  discount_rate:
    sql: "-{discounts} / NULLIF({gross_sales}, 0)"
    type: percent
    description: Discounts as a share of gross sales.
"""


@pytest.fixture
def store_folder(tmp_path: Path) -> Path:
    """A store folder with a model of its own (no tables: only the model is read)."""
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "shop", "timezone": "Europe/Paris", "tables": {}}))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "extra.yaml").write_text(USER_MODEL)
    return tmp_path


def test_a_store_folder_lends_its_model_and_settings(store_folder: Path, context: ModelContext) -> None:
    store = load_context(store_folder)
    assert store.timezone == "Europe/Paris"
    assert "discount_rate" in store.model.tables["sales"].metrics
    text = "FROM sales SHOW discount_rate"
    assert lsp.diagnose(text, store) == []
    assert [d.range.start.character for d in lsp.diagnose(text, context)] == [text.index("discount_rate")]
    typed = types.Position(line=0, character=len("FROM sales SHOW discount_r"))
    assert "discount_rate" in [i.label for i in lsp.complete_at("FROM sales SHOW discount_r", typed, store.model).items]
    assert "discount_rate" not in [i.label for i in lsp.complete_at("FROM sales SHOW discount_r", typed, context.model).items]


def test_a_duckdb_store_lends_its_settings(tmp_path: Path) -> None:
    import duckdb

    path = tmp_path / "shop.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("CREATE TABLE commerceql_manifest (manifest VARCHAR)")
        manifest = {"name": "shop", "timezone": "Asia/Tokyo", "as_of": "2025-03-01T00:00:00+00:00"}
        connection.execute("INSERT INTO commerceql_manifest VALUES (?)", [json.dumps(manifest)])
    store = load_context(path)
    assert store.timezone == "Asia/Tokyo"
    assert store.now().isoformat() == manifest["as_of"]
    assert lsp.diagnose("FROM sales SHOW net_sales SINCE -7d", store) == []


def test_without_a_store_the_server_loads_no_database() -> None:
    """The built-in model is all a server without --data needs: it starts without DuckDB or Polars."""
    code = (
        "import sys\n"
        "from commerceql.lsp import build_server, diagnose, load_context\n"
        "context = load_context(None)\n"
        "build_server(context)\n"
        "diagnose('FROM sales SHOW net_sales', context)\n"
        "print(sorted(m for m in ('duckdb', 'polars', 'commerceql.store') if m in sys.modules))\n"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip() == "[]"


def test_a_store_that_is_not_one_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CommerceQLError) as info:
        load_context(tmp_path)
    assert "manifest.json" in info.value.message


# ---------------------------------------------------------------------------------------------
# The real server over stdio
# ---------------------------------------------------------------------------------------------

TIMEOUT = 120.0  # generous: the machine is busy; nothing waits this long unless something is wrong


class Session:
    """A `commerceql lsp` process driven by pygls's client on an event loop in its own thread."""

    def __init__(self, *arguments: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="lsp-client", daemon=True)
        self.thread.start()
        self.client = LanguageClient("commerceql-tests", "1")
        self.published: dict[str, types.PublishDiagnosticsParams] = {}
        self.changed = threading.Condition()

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def on_diagnostics(params: types.PublishDiagnosticsParams) -> None:
            with self.changed:
                self.published[params.uri] = params
                self.changed.notify_all()

        self.run(self.client.start_io(sys.executable, "-m", "commerceql.cli", "lsp", *arguments, cwd=str(ROOT)))
        self.initialized = self.run(
            self.client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
        )
        self.notify(lambda: self.client.initialized(types.InitializedParams()))
        self.versions: dict[str, int] = {}

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(TIMEOUT)

    def notify(self, send: Any) -> None:
        # The client writes to the server's stdin from the loop's thread only.
        async def on_loop() -> None:
            send()

        self.run(on_loop())

    def open(self, uri: str, text: str) -> types.PublishDiagnosticsParams:
        self.versions[uri] = 1
        item = types.TextDocumentItem(uri=uri, language_id="commerceql", version=1, text=text)
        self.notify(lambda: self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item)))
        return self.diagnostics(uri, 1)

    def change(self, uri: str, text: str) -> types.PublishDiagnosticsParams:
        version = self.versions[uri] = self.versions[uri] + 1
        params = types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
        self.notify(lambda: self.client.text_document_did_change(params))
        return self.diagnostics(uri, version)

    def diagnostics(self, uri: str, version: int) -> types.PublishDiagnosticsParams:
        """The diagnostics published for `version` of `uri` (waits for that notification)."""
        with self.changed:
            arrived = self.changed.wait_for(
                lambda: uri in self.published and self.published[uri].version == version, timeout=TIMEOUT
            )
        assert arrived, f"no diagnostics for {uri} version {version}"
        return self.published[uri]

    def close(self) -> None:
        try:
            self.run(self.client.shutdown_async(None))
            self.notify(lambda: self.client.exit(None))
            self.run(self.client.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(TIMEOUT)


@pytest.fixture(scope="module")
def server() -> Iterator[Session]:
    session = Session()
    try:
        yield session
    finally:
        session.close()


@pytest.mark.slow
def test_server_announces_its_features(server: Session) -> None:
    capabilities = server.initialized.capabilities
    assert capabilities.completion_provider is not None
    assert capabilities.hover_provider and capabilities.document_formatting_provider
    assert server.initialized.server_info is not None and server.initialized.server_info.name == "commerceql"
    sync = capabilities.text_document_sync
    assert isinstance(sync, types.TextDocumentSyncOptions) and sync.change == types.TextDocumentSyncKind.Full


@pytest.mark.slow
def test_server_reports_an_unknown_metric_at_its_range(server: Session) -> None:
    text = "-- ventes 😀\nFROM sales SHOW /* é */ net_sale GROUP BY month"
    (diagnostic,) = server.open("file:///work/unknown.cql", text).diagnostics
    start = text.index("net_sale ")
    assert as_pair(diagnostic.range.start) == position_of(text, start)
    assert as_pair(diagnostic.range.end) == position_of(text, start + len("net_sale"))
    assert "did you mean `net_sales`?" in diagnostic.message
    assert diagnostic.severity == types.DiagnosticSeverity.Error


@pytest.mark.slow
def test_server_reports_a_syntax_error_and_a_fix_clears_it(server: Session) -> None:
    uri = "file:///work/syntax.cql"
    text = "FROM sales\n  SHOW net_sales\n  GROUP BY month month"
    (diagnostic,) = server.open(uri, text).diagnostics
    second = text.rindex("month")
    assert as_pair(diagnostic.range.start) == position_of(text, second)
    assert as_pair(diagnostic.range.end) == position_of(text, second + len("month"))
    assert list(server.change(uri, "FROM sales\n  SHOW net_sales\n  GROUP BY month").diagnostics) == []
    (again,) = server.change(uri, "FROM sales SHOW net_salez").diagnostics
    assert "net_salez" in again.message


@pytest.mark.slow
def test_server_completes_after_show(server: Session) -> None:
    uri = "file:///work/weekly%20report%C3%A9.cql"  # encoded as editors send it
    text = "FROM sales SHOW net_"
    server.open(uri, text)
    result = server.run(
        server.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line=0, character=len(text))
            )
        )
    )
    items = result.items if isinstance(result, types.CompletionList) else result
    assert items is not None
    labels = [item.label for item in items]
    assert "net_sales" in labels
    assert next(i for i in items if i.label == "net_sales").kind == types.CompletionItemKind.Function


@pytest.mark.slow
def test_server_hover_shows_the_metric_description(server: Session) -> None:
    uri = "file:///work/hover.cql"
    text = "FROM sales SHOW net_sales"
    server.open(uri, text)
    hover = server.run(
        server.client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=0, character=text.index("net_sales") + 2),
            )
        )
    )
    assert hover is not None and isinstance(hover.contents, types.MarkupContent)
    assert builtin_model().tables["sales"].metrics["net_sales"].description in hover.contents.value


@pytest.mark.slow
def test_server_formats_with_the_formatter(server: Session) -> None:
    uri = "file:///work/format.cql"
    text = "from sales show net_sales group by month since -3m"
    server.open(uri, text)
    edits = server.run(
        server.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
    )
    assert edits is not None
    assert apply_edits(text, list(edits)) == format_query(parse(text))
    server.change(uri, "from sales show (")
    broken = server.run(
        server.client.text_document_formatting_async(
            types.DocumentFormattingParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                options=types.FormattingOptions(tab_size=2, insert_spaces=True),
            )
        )
    )
    assert not broken


@pytest.mark.slow
def test_server_with_a_store_uses_its_model(store_folder: Path) -> None:
    session = Session("--data", str(store_folder))
    try:
        assert list(session.open("file:///work/store.cql", "FROM sales SHOW discount_rate").diagnostics) == []
    finally:
        session.close()


def test_a_currency_only_the_stores_rates_file_has_is_not_flagged(store_folder: Path, context: ModelContext) -> None:
    """WITH CURRENCY is checked against the store's own rates (exchange_rates.csv), as queries are."""
    (store_folder / "exchange_rates.csv").write_text("date,currency,rate\n2025-01-01,ZZZ,0.5\n")
    query = "FROM sales SHOW net_sales WITH CURRENCY 'ZZZ' SINCE 2025-01-01 UNTIL 2025-01-02"
    assert lsp.diagnose(query, context), "the built-in ECB rates have no ZZZ: the editor must say so"
    errors = [d for d in lsp.diagnose(query, load_context(store_folder)) if d.severity == types.DiagnosticSeverity.Error]
    assert errors == []
