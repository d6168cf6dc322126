"""`commerceql lsp`: a Language Server Protocol server for `.cql` files, over stdio (pygls).

A thin shell over the core, like the kernel and the magic: the parser and resolver give the
diagnostics (with their exact spans and hints), `commerceql.completion` the completions and the
hover text, `commerceql.formatter` the formatting. Nothing here runs a query or opens a database
session for a folder store: only the semantic model is needed (docs/editors.md).

Everything the editor sees is computed by pure functions of the document text (`diagnose`,
`complete_at`, `hover_at`, `format_edits`) so they are tested without a client; `build_server`
wires them to the protocol.

Positions: the core speaks 0-based code-point offsets into the text; LSP speaks 0-based lines
(ended by \\n, \\r\\n or \\r only) and characters counted in the negotiated encoding's code units
(UTF-16 unless the client offers another). `LineIndex` converts between the two.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime as dt
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.workspace.position_codec import PositionCodec

from commerceql.completion import Token, complete, inspect, scan
from commerceql.currency import ExchangeRates
from commerceql.errors import CommerceQLError
from commerceql.model.semantic import SemanticModel, builtin_model
from commerceql.plan import AccountSettings

__all__ = [
    "LineIndex",
    "ModelContext",
    "Statement",
    "build_server",
    "complete_at",
    "diagnose",
    "format_edits",
    "hover_at",
    "is_notebook",
    "load_context",
    "prepare",
    "run_lsp",
    "split_statements",
]

SERVER_NAME = "commerceql"
DIAGNOSTIC_SOURCE = "commerceql"

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# The model the names are checked against
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelContext:
    """What resolving a query needs besides its text: the model and the store's settings."""

    model: SemanticModel
    timezone: str = "UTC"
    currency: str = "USD"
    accounts: AccountSettings = field(default_factory=AccountSettings)
    # The store's fixed clock (the sample store's `as_of`), else None for real time.
    as_of: dt.datetime | None = None
    # The store's exchange-rate sources, so WITH CURRENCY of a currency only its own rates file
    # has is not flagged; None: the shipped ECB rates only.
    rates: ExchangeRates | None = None

    def now(self) -> dt.datetime:
        return self.as_of if self.as_of is not None else dt.datetime.now(dt.UTC)


def load_context(data: str | Path | None) -> ModelContext:
    """The built-in model without `data`; with a store, its model and settings.

    A store folder's model is read from its files alone (manifest + model/*.yaml, as `connect`
    reads them), without opening a database session; a .duckdb file keeps its manifest inside
    the database, so it is opened read-only just long enough to read it, then closed.
    """
    if data is None:
        return ModelContext(builtin_model())
    # The store module brings DuckDB and Polars; only a server with --data pays for them.
    from commerceql import store as store_module

    path = Path(data).expanduser()
    if path.is_dir() and not (path / "manifest.json").exists():
        from commerceql.organization import organization_cache, shops_in

        # A folder of shops' stores is one organization, as `connect` opens it: its model (shop_name,
        # shop_id) comes from the built organization, cached outside the folder.
        if shops_in(path):
            path = organization_cache(path)
    if path.is_dir():
        manifest = store_module._load_manifest(path)
        model_dir = store_module._model_dir(path, manifest)
        user_models = sorted(model_dir.glob("*.yaml")) if model_dir.is_dir() else []
        model = builtin_model().extended_from_files(user_models, relative_to=path)
        as_of = manifest.get("as_of")
        return ModelContext(
            model,
            timezone=str(manifest.get("timezone") or "UTC"),
            currency=str(manifest.get("currency") or "USD"),
            accounts=store_module.account_settings_from(manifest.get("accounts")),
            as_of=_instant(as_of),
            rates=ExchangeRates(str(manifest.get("currency") or "USD"), folder=path, manifest=manifest),
        )
    with store_module.connect(path) as opened:
        return ModelContext(
            opened.model,
            timezone=opened.timezone,
            currency=opened.currency,
            accounts=opened.account_settings,
            as_of=_instant(opened.manifest.get("as_of")),
            rates=opened.exchange_rates,
        )


def _instant(as_of: Any) -> dt.datetime | None:
    """The manifest's `as_of` clock, or None (real time) when it is not an ISO instant: the clock
    only moves relative dates, and names are checked the same under any clock."""
    try:
        parsed = dt.datetime.fromisoformat(as_of) if isinstance(as_of, str) else None
    except ValueError:
        return None
    return parsed if parsed is not None and parsed.tzinfo is not None else None


# ---------------------------------------------------------------------------------------------
# Positions: code-point offsets <-> LSP line / code-unit character
# ---------------------------------------------------------------------------------------------

# The only line ends LSP knows (Python's str.splitlines also splits on \x0b, \x85, \u2028 ...,
# which a string literal may hold: the editor would disagree about line numbers).
_LINE_END = re.compile(r"\r\n|\r|\n")


class LineIndex:
    """Converts between offsets into `text` and LSP positions in the client's encoding."""

    def __init__(self, text: str, encoding: str | types.PositionEncodingKind = types.PositionEncodingKind.Utf16) -> None:
        self.text = text
        self._codec = PositionCodec(encoding)
        self._line_starts = [0] + [match.end() for match in _LINE_END.finditer(text)]

    def _line_end(self, line: int) -> int:
        """The offset where `line`'s content ends (before its line break)."""
        if line + 1 < len(self._line_starts):
            end = self._line_starts[line + 1]
            return end - 2 if self.text.startswith("\r\n", end - 2) else end - 1
        return len(self.text)

    def position(self, offset: int) -> types.Position:
        """The LSP position of `offset` (clamped to the text)."""
        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self._line_starts, offset) - 1
        start = self._line_starts[line]
        # An offset inside a \r\n pair belongs to the end of the line.
        offset = min(offset, self._line_end(line))
        return types.Position(line=line, character=self._codec.client_num_units(self.text[start:offset]))

    def offset(self, position: types.Position) -> int:
        """The offset of an LSP position; a character past the line's end means its end."""
        if position.line >= len(self._line_starts):
            return len(self.text)
        start = self._line_starts[max(position.line, 0)]
        end = self._line_end(max(position.line, 0))
        units = 0
        offset = start
        while offset < end and units < position.character:
            units += self._codec.client_num_units(self.text[offset])
            offset += 1
        return offset

    def range(self, start: int, end: int) -> types.Range:
        return types.Range(start=self.position(start), end=self.position(max(start, end)))


# ---------------------------------------------------------------------------------------------
# Statements of a document
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One `;`-separated statement: text[start:end] (without the `;`) and its tokens."""

    start: int
    end: int
    tokens: tuple[Token, ...]

    def text(self, document: str) -> str:
        return document[self.start : self.end]


def split_statements(text: str, start: int = 0, end: int | None = None) -> list[Statement]:
    """The statements of text[start:end], split where the grammar splits them: at `;` outside
    strings, quoted names and comments (the completion scanner knows those). Empty statements are
    dropped; offsets are into the whole `text`.

    Each statement is checked on its own, so an error in one does not hide the others.
    """
    end = len(text) if end is None else end
    scanned, end_state = scan(text[start:end])
    tokens = [dataclasses.replace(t, start=t.start + start, end=t.end + start) for t in scanned]
    statements: list[Statement] = []
    current: list[Token] = []
    for token in tokens:
        if token.kind == "punct" and token.text == ";":
            if current:
                statements.append(Statement(start, token.start, tuple(current)))
            start = token.end
            current = []
        else:
            current.append(token)
    if current or end_state is not None:
        # An unterminated string or comment runs to the end of the region: so does its statement
        # (an unterminated comment alone is a statement without tokens, and an error).
        statements.append(Statement(start, end, tuple(current)))
    return statements


# ---------------------------------------------------------------------------------------------
# Notebooks (JupyterLab with jupyterlab-lsp)
# ---------------------------------------------------------------------------------------------

# jupyterlab-lsp shows a notebook to a server as one virtual document named after the notebook
# (`.../.virtual_documents/report.ipynb`): the code cells joined with two blank lines between
# them. CommerceQL kernel cells need no `;` and may hold `%magic` lines, so such a document is
# read cell by cell with its magic lines blanked (spaces keep every offset where it was).
_CELL_BREAK = re.compile(r"\n(?:[ \t]*\n){2,}")
_MAGIC_LINE = re.compile(r"^[ \t]*%.*$", re.MULTILINE)


def is_notebook(uri: str) -> bool:
    """True for jupyterlab-lsp's virtual document of a notebook."""
    return urlparse(uri).path.lower().endswith(".ipynb")


def prepare(text: str, notebook: bool = False) -> tuple[str, list[tuple[int, int]]]:
    """The text the features read and its regions checked on their own: the whole text of a
    `.cql` file; for a notebook, the text with magic lines blanked and one region per cell."""
    if not notebook:
        return text, [(0, len(text))]
    blanked = _MAGIC_LINE.sub(lambda match: " " * len(match.group(0)), text)
    cells: list[tuple[int, int]] = []
    start = 0
    for separator in _CELL_BREAK.finditer(blanked):
        cells.append((start, separator.start()))
        start = separator.end()
    cells.append((start, len(blanked)))
    return blanked, cells


def _region_at(cells: Sequence[tuple[int, int]], offset: int) -> tuple[int, int]:
    return next((cell for cell in cells if offset <= cell[1]), cells[-1])


# ---------------------------------------------------------------------------------------------
# Diagnostics
# ---------------------------------------------------------------------------------------------


def _error_message(error: CommerceQLError) -> str:
    # The hint goes in the message itself: every editor shows it next to the error, while
    # relatedInformation needs a location and is hidden behind a click in most of them.
    return f"{error.message}\nhint: {error.hint}" if error.hint else error.message


def _first_token_range(statement: Statement, text: str) -> tuple[int, int]:
    """Where a problem of the whole statement is shown: its first token (or first character)."""
    if statement.tokens:
        first = statement.tokens[0]
        return first.start, first.end
    content = statement.text(text)
    start = statement.start + len(content) - len(content.lstrip())
    return start, min(start + 1, statement.end)


def _error_diagnostic(error: CommerceQLError, statement: Statement, text: str, index: LineIndex) -> types.Diagnostic:
    statement_text = statement.text(text)
    span = error.span
    # A span belongs to this statement unless the error names another source (a saved segment's
    # condition in the model): that one is shown on the statement, its rendering in the message.
    foreign = error.source is not None and error.source != statement_text
    message = _error_message(error)
    if span is None or foreign:
        start, end = _first_token_range(statement, text)
        if foreign and span is not None:
            message = f"{message}\n{error.render()}"
    else:
        start = statement.start + span.start_pos
        end = statement.start + span.end_pos
        if end <= start and start < len(text):
            end = start + 1  # a point error still gets a visible squiggle
    return types.Diagnostic(
        range=index.range(start, end),
        message=message,
        severity=types.DiagnosticSeverity.Error,
        source=DIAGNOSTIC_SOURCE,
        code=error.kind,
        data={"hint": error.hint} if error.hint else None,
    )


_QUOTED_TERM = re.compile(r"`([^`]+)`")
_FIRST_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _notice_range(notice: str, statement: Statement, text: str) -> tuple[int, int]:
    """Where a notice (which has no span) points: the first word of the first name it quotes
    (`BY`, `OVER day`, `sum(net_sales)`, an older field name), else the statement's start."""
    quoted = _QUOTED_TERM.search(notice)
    word = _FIRST_WORD.search(quoted.group(1)) if quoted else None
    if word is not None:
        wanted = word.group(0).lower()
        for token in statement.tokens:
            if token.kind == "word" and token.text.lower() == wanted:
                return token.start, token.end
    return _first_token_range(statement, text)


def _check_statement(
    statement: Statement, text: str, context: ModelContext
) -> tuple[list[CommerceQLError], list[tuple[str, bool]]]:
    """The errors of one statement, and its notices (text, whether it names an older spelling)."""
    from commerceql.compiler import compile_plan
    from commerceql.parser import parse_script
    from commerceql.resolver import resolve

    try:
        queries = parse_script(statement.text(text))
    except CommerceQLError as error:
        return [error], []
    errors: list[CommerceQLError] = []
    notices: list[tuple[str, bool]] = []
    for query in queries:
        older = set(query.notices)
        try:
            plan = resolve(
                query,
                context.model,
                now=context.now(),
                timezone=context.timezone,
                currency=context.currency,
                accounts=context.accounts,
                rates=context.rates,
            )
            # The compiler has checks of its own (TOP over several tables, ...); it is pure and
            # quick, and no SQL runs.
            compile_plan(plan)
        except CommerceQLError as error:
            errors.append(error)
            notices.extend((notice, True) for notice in query.notices)
            continue
        notices.extend((notice, notice in older) for notice in plan.notices)
    return errors, notices


def diagnose(
    text: str,
    context: ModelContext,
    encoding: str | types.PositionEncodingKind = types.PositionEncodingKind.Utf16,
    notebook: bool = False,
) -> list[types.Diagnostic]:
    """Errors (parse, names, types, values) and notices of older forms for every statement."""
    text, cells = prepare(text, notebook)
    index = LineIndex(text, encoding)
    diagnostics: list[types.Diagnostic] = []
    statements = [statement for start, end in cells for statement in split_statements(text, start, end)]
    for statement in statements:
        try:
            errors, notices = _check_statement(statement, text, context)
        except Exception as bug:  # a bug in a stage must not take the editor's server down
            logger.exception("checking a statement failed")
            start, end = _first_token_range(statement, text)
            diagnostics.append(
                types.Diagnostic(
                    range=index.range(start, end),
                    message=f"internal error while checking this query ({type(bug).__name__}); "
                    "this is a bug in CommerceQL",
                    severity=types.DiagnosticSeverity.Warning,
                    source=DIAGNOSTIC_SOURCE,
                )
            )
            continue
        diagnostics.extend(_error_diagnostic(error, statement, text, index) for error in errors)
        for notice, older_spelling in notices:
            start, end = _notice_range(notice, statement, text)
            diagnostics.append(
                types.Diagnostic(
                    range=index.range(start, end),
                    message=notice,
                    severity=types.DiagnosticSeverity.Information,
                    source=DIAGNOSTIC_SOURCE,
                    # Editors strike an older spelling through, as they do deprecated APIs.
                    tags=[types.DiagnosticTag.Deprecated] if older_spelling else None,
                )
            )
    return diagnostics


# ---------------------------------------------------------------------------------------------
# Completion and hover
# ---------------------------------------------------------------------------------------------

# The completion module's candidate types, as the editor's icons.
_COMPLETION_KINDS: dict[str, types.CompletionItemKind] = {
    "metric": types.CompletionItemKind.Function,
    "dimension": types.CompletionItemKind.Field,
    "time dimension": types.CompletionItemKind.Field,
    "time grain": types.CompletionItemKind.Unit,
    "table": types.CompletionItemKind.Class,
    "keyword": types.CompletionItemKind.Keyword,
    "chart type": types.CompletionItemKind.EnumMember,
    "comparison": types.CompletionItemKind.EnumMember,
    "modifier": types.CompletionItemKind.Property,
    "date": types.CompletionItemKind.Constant,
    "date range": types.CompletionItemKind.Constant,
    "date function": types.CompletionItemKind.Function,
    "currency": types.CompletionItemKind.Constant,
    "time zone": types.CompletionItemKind.Constant,
}


def complete_at(
    text: str,
    position: types.Position,
    model: SemanticModel,
    encoding: str | types.PositionEncodingKind = types.PositionEncodingKind.Utf16,
    notebook: bool = False,
) -> types.CompletionList:
    """The completion module's candidates at `position`, in its order, as LSP items."""
    text, cells = prepare(text, notebook)
    index = LineIndex(text, encoding)
    offset = index.offset(position)
    start, end = _region_at(cells, offset)
    found = complete(text[start:end], offset - start, model)
    replaced = index.range(start + found.cursor_start, start + found.cursor_end)
    signatures = [entry.get("signature", "") for entry in found.metadata.get("_jupyter_types_experimental", [])]
    items: list[types.CompletionItem] = []
    for order, match in enumerate(found.matches):
        kind = found.types[order] if order < len(found.types) else ""
        signature = signatures[order] if order < len(signatures) else ""
        items.append(
            types.CompletionItem(
                label=match,
                kind=_COMPLETION_KINDS.get(kind, types.CompletionItemKind.Text),
                detail=kind or None,
                documentation=signature or None,
                # The module ranks names that start with the typed text before those that only
                # contain it; the editor keeps that order.
                sort_text=f"{order:05d}",
                filter_text=match,
                text_edit=types.TextEdit(range=replaced, new_text=match),
            )
        )
    return types.CompletionList(is_incomplete=False, items=items)


def hover_at(
    text: str,
    position: types.Position,
    model: SemanticModel,
    encoding: str | types.PositionEncodingKind = types.PositionEncodingKind.Utf16,
    notebook: bool = False,
) -> types.Hover | None:
    """The inspection of the word under `position` (a metric's definition, ...) as Markdown."""
    text, cells = prepare(text, notebook)
    index = LineIndex(text, encoding)
    offset = index.offset(position)
    start, end = _region_at(cells, offset)
    region = text[start:end]
    # The word under the mouse only: `inspect` also explains the word just before the cursor
    # (the kernel's Shift-Tab), which for a pointer over blank space would be the wrong word.
    tokens, _ = scan(region)
    word = next((t for t in tokens if t.kind == "word" and t.start <= offset - start < t.end), None)
    if word is None:
        return None
    bundle = inspect(region, offset - start, model)
    if not bundle or not bundle.get("text/markdown"):
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=bundle["text/markdown"]),
        range=index.range(start + word.start, start + word.end),
    )


# ---------------------------------------------------------------------------------------------
# Formatting
# ---------------------------------------------------------------------------------------------


def _has_comment(statement: Statement, text: str) -> bool:
    """True when a comment sits between the statement's first and last token (the scanner skips
    comments, so anything but whitespace between two tokens is one)."""
    tokens = statement.tokens
    return any(text[a.end : b.start].strip() for a, b in zip(tokens, tokens[1:], strict=False))


def format_edits(
    text: str, encoding: str | types.PositionEncodingKind = types.PositionEncodingKind.Utf16
) -> list[types.TextEdit]:
    """Each statement rewritten by the formatter; text between statements (separators, blank
    lines, comments) is kept. A document that does not parse gets no edits. A statement with a
    comment inside is left as written: the syntax tree has no comments, so formatting would
    delete them."""
    from commerceql.formatter import format_query
    from commerceql.parser import parse_script

    index = LineIndex(text, encoding)
    edits: list[types.TextEdit] = []
    for statement in split_statements(text):
        try:
            queries = parse_script(statement.text(text))
        except CommerceQLError:
            return []
        if len(queries) != 1 or not statement.tokens or _has_comment(statement, text):
            continue
        start, end = statement.tokens[0].start, statement.tokens[-1].end
        formatted = format_query(queries[0])
        if text[start:end] != formatted:
            edits.append(types.TextEdit(range=index.range(start, end), new_text=formatted))
    return edits


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------

T = TypeVar("T")


def _guarded(fallback: T, what: str, work: Callable[[], T]) -> T:
    """`work()`, or `fallback` if it fails: no exception reaches the client."""
    try:
        return work()
    except Exception:
        logger.exception("%s failed", what)
        return fallback


class CommerceQLLanguageServer(LanguageServer):
    """The pygls server with the model the documents are checked against."""

    def __init__(self, context: ModelContext) -> None:
        from commerceql import __version__

        # Full sync: the client sends the whole text on each change. `.cql` files are small, and
        # no edit is ever applied at a position the client and pygls count differently (pygls
        # splits lines the way str.splitlines does, LSP at \n, \r\n and \r only).
        super().__init__(SERVER_NAME, __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.context = context

    @property
    def encoding(self) -> str:
        return str(self.workspace.position_encoding or types.PositionEncodingKind.Utf16)

    def opened_text(self, uri: str) -> str | None:
        """The text of an open document (never a file read from disk on a client's say-so)."""
        # pygls keeps documents under their percent-decoded URI (`my%20report.cql` as `my report.cql`).
        if unquote(uri) not in self.workspace.text_documents:
            return None
        return self.workspace.get_text_document(uri).source

    def publish(self, uri: str, version: int | None = None) -> None:
        text = self.opened_text(uri)
        diagnostics: Sequence[types.Diagnostic] = []
        if text is not None:
            diagnostics = _guarded(
                [], "diagnostics", lambda: diagnose(text, self.context, self.encoding, is_notebook(uri))
            )
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=list(diagnostics), version=version)
        )


def build_server(context: ModelContext) -> CommerceQLLanguageServer:
    """A server for `context`'s model with every feature registered (not started)."""
    server = CommerceQLLanguageServer(context)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: CommerceQLLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: CommerceQLLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.publish(params.text_document.uri, params.text_document.version)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: CommerceQLLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        # A closed file's problems leave the editor's problem list with it.
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[])
        )

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        # After a quote: time zones in `TIMEZONE '`, currencies in `CURRENCY '`.
        types.CompletionOptions(trigger_characters=["'"]),
    )
    def completion(ls: CommerceQLLanguageServer, params: types.CompletionParams) -> types.CompletionList | None:
        text = ls.opened_text(params.text_document.uri)
        if text is None:
            return None
        notebook = is_notebook(params.text_document.uri)
        return _guarded(
            None, "completion", lambda: complete_at(text, params.position, ls.context.model, ls.encoding, notebook)
        )

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: CommerceQLLanguageServer, params: types.HoverParams) -> types.Hover | None:
        text = ls.opened_text(params.text_document.uri)
        if text is None:
            return None
        notebook = is_notebook(params.text_document.uri)
        return _guarded(
            None, "hover", lambda: hover_at(text, params.position, ls.context.model, ls.encoding, notebook)
        )

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: CommerceQLLanguageServer, params: types.DocumentFormattingParams) -> list[types.TextEdit]:
        text = ls.opened_text(params.text_document.uri)
        # A notebook's cells are formatted by the notebook's own tools, not through the joined
        # virtual document (an edit there would have to be split back into cells).
        if text is None or is_notebook(params.text_document.uri):
            return []
        return _guarded([], "formatting", lambda: format_edits(text, ls.encoding))

    return server


def run_lsp(args: Any) -> int:
    """`commerceql lsp [--data DIR]`: serve the protocol on stdin/stdout until the client exits."""
    # Logs go to stderr: stdout carries the protocol.
    logging.basicConfig(level=logging.WARNING, format="commerceql lsp: %(levelname)s %(message)s")
    context = load_context(getattr(args, "data", None))
    build_server(context).start_io()
    return 0
