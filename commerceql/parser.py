"""Text to syntax tree: `parse(text) -> ast.Query` and `parse_script(text) -> list[ast.Query]`.

The grammar lives in `grammars/commerceql.lark` (LALR(1), contextual lexer). The Lark parser is
built once per process (a lazily built, thread-safe singleton) and, across processes, loaded from
Lark's own cache (`cache=`) keyed by a hash of the grammar text, the Lark version and the Python
version. The cache file is a pickle, so it is kept only in a directory private to the user (0700,
owned by the user, nothing on the way to it writable by others) and only loaded when the user owns
it and nobody else can write it; without such a directory the parser is built without cache. Set
`COMMERCEQL_CACHE_DIR` to choose the directory, or `COMMERCEQL_NO_PARSER_CACHE=1` to switch the
file cache off.

Spans and sources
-----------------
Every node has a `Span` (1-based lines and columns, 0-based offsets, end exclusive). In a script the
spans of every query are relative to the WHOLE script text, and each `Query.source` is the whole
script text, so an error's caret lands on the right line of what the user wrote.

Errors
------
Whatever the input string, `parse` and `parse_script` raise only `CommerceQLSyntaxError` (a
`CommerceQLError`): Lark's exceptions are translated into plain words (expected tokens are named
the way a user writes them, misspelled keywords get a "did you mean"), and the parser's own checks
(clause used twice, missing FROM, DURING with SINCE, misused older forms ...) point at the offending text.

Older forms
-----------
Spellings of earlier ShopifyQL generations that mean one thing today are read as that thing, and
`Query.notices` says what the current spelling is (the result shows the notice once):
`SHOW x BY dim` (Notebooks) is `GROUP BY dim`; `OVER month` and `OVER month(happened_at) AS month`
(the 2014-2021 Analytics API) are `TIMESERIES month`; `GROUP BY month ALL` (2022-2024) is
`GROUP BY month` with `TIMESERIES month`. The tree holds only the current form, so the formatter
writes today's spelling.

Value syntax (see the grammar's header): values are 'single quoted' with '' for a quote inside
(backslash is an ordinary character), names/aliases are "double quoted", dates and date offsets are
unquoted. In offsets `m` is MONTHS and `min` is minutes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import hashlib
import os
import re
import stat
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import lark
import lark.lark as lark_module
import lark.utils as lark_utils
from lark import Lark, Token, Tree
from lark.exceptions import (
    LarkError,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

import commerceql
from commerceql import ast
from commerceql.dates import CYCLICAL_DIMENSIONS as _CYCLICAL_DIMENSIONS
from commerceql.dates import DATE_FUNCTIONS as _DATE_FUNCTIONS
from commerceql.dates import TIME_GRAINS as _TIME_GRAINS
from commerceql.errors import CommerceQLError, CommerceQLSyntaxError, did_you_mean

__all__ = [
    "GRAMMAR_PATH",
    "KEYWORDS",
    "RESERVED_WORDS",
    "WITH_MODIFIERS",
    "get_parser",
    "is_bare_identifier",
    "parse",
    "parse_script",
]

# The grammar's home is the repository's `grammars/`; `commerceql/commerceql.lark` links to it so
# that wheels (which copy the link's target) carry it too.
_PACKAGED_GRAMMAR = Path(commerceql.__file__).parent / "commerceql.lark"
GRAMMAR_PATH = (
    _PACKAGED_GRAMMAR
    if _PACKAGED_GRAMMAR.is_file()
    else Path(commerceql.__file__).parent.parent / "grammars" / "commerceql.lark"
)

_LARK_OPTIONS: dict[str, Any] = {
    "start": ["start", "segment_condition"],
    "parser": "lalr",
    "lexer": "contextual",
    "propagate_positions": True,
    "maybe_placeholders": True,
}

#: Words that can never be bare names (they always start a clause or an operator).
RESERVED_WORDS = frozenset(
    """from show visualize where group by timeseries having since until during compare with order
    limit as and or not in between is null true false""".split()
)

#: Every keyword, as a user writes it (used for "did you mean" hints).
KEYWORDS = (
    "FROM", "SHOW", "VISUALIZE", "WHERE", "GROUP", "BY", "TIMESERIES", "HAVING", "SINCE", "UNTIL",
    "DURING", "COMPARE", "TO", "WITH", "ORDER", "LIMIT", "OFFSET", "AS", "AND", "OR", "NOT", "IN",
    "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "TYPE", "MAX", "TOP", "ONLY", "OVERALL", "ASC", "DESC",
    "STARTS", "ENDS", "CONTAINS",
)  # fmt: skip

#: Modifiers of the WITH clause (the resolver refuses LINEAR_ATTRIBUTION with its reason: commerceql.attribution).
WITH_MODIFIERS = (
    "TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES", "CURRENCY", "TIMEZONE",
    "FIRST_CLICK_ATTRIBUTION", "LAST_CLICK_ATTRIBUTION", "LAST_NON_DIRECT_CLICK_ATTRIBUTION",
    "ANY_CLICK_ATTRIBUTION", "LINEAR_ATTRIBUTION",
)  # fmt: skip
_MODIFIERS_WITH_ARGUMENT = {
    "CURRENCY": "a currency code such as 'EUR'",
    "TIMEZONE": "a time zone such as 'Europe/Paris'",
}

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_OFFSET_RE = re.compile(r"([+-]?)(\d+)(min|[smhdwqy])\Z", re.IGNORECASE)
_OFFSET_UNITS_HINT = (
    "a date offset is a number and a unit: s, min (minutes), h, d, w, m (MONTHS), q, y — "
    "for example -30d, -3m, -15min, 0m"
)
_DATE_FORMS_HINT = (
    "a date is an offset such as -30d, a date such as 2025-01-31, a name such as last_month, "
    "or a function such as startOfMonth(-1m)"
)


def is_bare_identifier(name: str) -> bool:
    """True if `name` can be written without double quotes (a name and not a reserved word)."""
    return bool(_IDENT_RE.match(name)) and name.lower() not in RESERVED_WORDS


# ---------------------------------------------------------------------------------------------
# Building and caching the Lark parser
# ---------------------------------------------------------------------------------------------

_parser: Lark | None = None
_parser_lock = threading.Lock()

# Lark's cache file is a pickle, and Lark unpickles part of it before it compares the grammar hash:
# whoever can write the file can run code in every process that parses. So the cache is only used
# from a directory that nobody else can write to (and that nobody else can swap for another one),
# and a file is only loaded when it belongs to this user and nobody else can write it. When no such
# directory exists the parser is built without a cache (a few hundred milliseconds per process).
_GROUP_OR_WORLD_WRITABLE = stat.S_IWGRP | stat.S_IWOTH


def _current_uid() -> int | None:
    """This process's user id (None where the OS has no POSIX owners, i.e. Windows)."""
    return os.getuid() if hasattr(os, "getuid") else None


def _is_private(info: os.stat_result, uid: int) -> bool:
    """Owned by `uid` and writable by nobody else."""
    return info.st_uid == uid and not info.st_mode & _GROUP_OR_WORLD_WRITABLE


def _ancestors_are_safe(directory: Path, uid: int) -> bool:
    """Nobody but `uid` or root can rename or replace anything on the way to `directory`.

    An ancestor writable by others is only fine with the sticky bit (like /tmp): then others
    cannot rename or delete the entries they do not own.
    """
    for ancestor in directory.parents:
        try:
            info = ancestor.stat()
        except OSError:
            return False
        if info.st_uid not in (uid, 0):
            return False
        if info.st_mode & _GROUP_OR_WORLD_WRITABLE and not info.st_mode & stat.S_ISVTX:
            return False
    return True


def _private_directory(directory: Path, uid: int | None) -> bool:
    """Create `directory` (0700) if needed; True if it is safe to keep the parser cache in it."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if uid is None:  # no POSIX owners: rely on the per-user profile folder's permissions
            return os.access(directory, os.W_OK | os.X_OK)
        # lstat: a symbolic link in place of the directory is refused, whoever it points to.
        info = directory.lstat()
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and _is_private(info, uid)
        and _ancestors_are_safe(directory, uid)
        and os.access(directory, os.W_OK | os.X_OK)
    )


def _cache_dir() -> Path | None:
    """A directory only this user can write to for the parser cache, or None (then no cache).

    Candidates in order: $COMMERCEQL_CACHE_DIR, $XDG_CACHE_HOME/commerceql (default
    ~/.cache/commerceql), then <tmp>/commerceql-cache-<uid> (POSIX only). A candidate is skipped
    when it is not a real directory owned by the user, when group or others can write to it, or
    when an ancestor could let someone else swap it (see `_ancestors_are_safe`).
    """
    if os.environ.get("COMMERCEQL_NO_PARSER_CACHE"):
        return None
    uid = _current_uid()
    candidates: list[Path] = []
    if os.environ.get("COMMERCEQL_CACHE_DIR"):
        candidates.append(Path(os.environ["COMMERCEQL_CACHE_DIR"]))
    xdg = os.environ.get("XDG_CACHE_HOME")
    try:
        candidates.append((Path(xdg) if xdg else Path.home() / ".cache") / "commerceql")
    except RuntimeError:  # no home directory at all
        pass
    if uid is not None:
        # Someone else may have created this name first; then it is not ours and is refused.
        candidates.append(Path(tempfile.gettempdir()) / f"commerceql-cache-{uid}")
    for directory in candidates:
        if directory.is_absolute() and _private_directory(directory, uid):
            return directory
    return None


def cache_path(grammar: str | None = None) -> Path | None:
    """Where the compiled parser is cached for this grammar, Lark and Python version (or None)."""
    directory = _cache_dir()
    if directory is None:
        return None
    if grammar is None:
        grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    key = "\0".join(
        [
            grammar,
            lark.__version__,
            f"{sys.version_info[0]}.{sys.version_info[1]}",
            repr(sorted(_LARK_OPTIONS.items())),
        ]
    )
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]
    return directory / f"grammar-{digest}.lark-cache"


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def _open_trusted_cache(name: str) -> Any:
    """The cache file opened for reading, if this user owns it and nobody else can write it.

    The checks are made on the opened file itself (fstat), so the file cannot be swapped between
    the check and the read. An untrusted file counts as missing: Lark then rebuilds the parser and
    replaces the file with its own.
    """
    descriptor = os.open(name, os.O_RDONLY | _NOFOLLOW | _BINARY)
    try:
        info = os.fstat(descriptor)
        uid = _current_uid()
        if not stat.S_ISREG(info.st_mode) or (uid is not None and not _is_private(info, uid)):
            raise FileNotFoundError(name)  # Lark treats this as "no cache yet"
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


class _PrivateFS(lark_utils.FS):
    """Lark's file access for the cache: private reads (see `_open_trusted_cache`), atomic writes.

    The cache file is written to a new private file (0600, never through a link) and renamed, so
    another process starting at the same moment sees either no cache file or a complete one.
    """

    @staticmethod
    @contextlib.contextmanager
    def _atomic(name: str) -> Iterator[Any]:
        target = Path(name)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY
        try:
            with os.fdopen(os.open(temporary, flags, 0o600), "wb") as handle:
                yield handle
            os.replace(temporary, target)
        finally:
            with contextlib.suppress(OSError):
                temporary.unlink()

    @staticmethod
    def open(name: str, mode: str = "r", **kwargs: Any) -> Any:
        if "w" in mode:
            return _PrivateFS._atomic(name)
        return _open_trusted_cache(name)


def _build_parser() -> Lark:
    grammar = GRAMMAR_PATH.read_text(encoding="utf-8")
    path = cache_path(grammar)
    if path is None:
        return Lark(grammar, **_LARK_OPTIONS)
    # Lark's own cache: it stores a hash of the grammar and options in the file, loads the file when
    # the hash matches and otherwise rebuilds and rewrites it (through _PrivateFS).
    original_fs = lark_module.FS
    lark_module.FS = _PrivateFS
    try:
        return Lark(grammar, cache=str(path), **_LARK_OPTIONS)
    finally:
        lark_module.FS = original_fs


def get_parser() -> Lark:
    """The process-wide Lark parser (built or loaded on first use)."""
    global _parser
    if _parser is None:
        with _parser_lock:
            if _parser is None:
                _parser = _build_parser()
    return _parser


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def parse(text: str) -> ast.Query:
    """Parse exactly one query (a trailing `;` is fine)."""
    queries = parse_script(text)
    if not queries:
        raise CommerceQLSyntaxError(
            "empty query: a query starts with FROM <table>",
            span=_point_span(text, len(text)),
            source=text,
            hint="for example: FROM sales SHOW net_sales",
        )
    if len(queries) > 1:
        raise CommerceQLSyntaxError(
            "only one query is expected here, but a second query starts here",
            span=_first_line_span(queries[1].span, text),
            source=text,
            hint="remove the second query or run it separately",
        )
    return queries[0]


def parse_script(text: str) -> list[ast.Query]:
    """Parse queries separated by `;` (empty statements are ignored).

    Spans are relative to the whole `text` and every `Query.source` is the whole `text`.
    """
    if not isinstance(text, str):
        raise TypeError(f"a query is text (str), not {type(text).__name__}")
    return _parse(text, "start")


def parse_condition(text: str) -> ast.Condition:
    """Parse a condition on its own (a saved segment's `condition:`), spans relative to `text`."""
    if not isinstance(text, str):
        raise TypeError(f"a condition is text (str), not {type(text).__name__}")
    if not text.strip():
        raise CommerceQLSyntaxError("empty condition", span=_point_span(text, 0), source=text,
                                    hint="for example: company_industry = 'OEM' AND amount_spent > 250000")
    return _parse(text, "segment_condition")


def _parse(text: str, start: str) -> Any:
    """The grammar's `start` rule over `text`, built into the AST; every failure a positioned error."""
    try:
        _prescan(text)
        tree = get_parser().parse(text, start=start)
        return _Builder(text).transform(tree)
    except CommerceQLError as error:
        raise error.with_source(text) from None
    except UnexpectedInput as error:
        try:
            translated = _translate_lark_error(error, text)
        except Exception as bug:  # pragma: no cover - a bug in the error messages themselves
            translated = _internal_error(text, bug)
        raise translated from None
    except RecursionError:
        raise _too_deep(text) from None
    except LarkError as error:
        raise _internal_error(text, error) from None
    except Exception as error:  # never let a traceback reach the user
        raise _internal_error(text, error) from None


def _too_deep(text: str) -> CommerceQLSyntaxError:
    return CommerceQLSyntaxError(
        "the query is nested too deeply to read",
        span=_point_span(text, 0),
        source=text,
        hint="use fewer nested parentheses",
    )


def _internal_error(text: str, error: BaseException) -> CommerceQLSyntaxError:
    internal = CommerceQLSyntaxError(
        f"internal parser error ({type(error).__name__}): the query could not be read",
        span=_point_span(text, 0),
        source=text,
        hint="this is a bug in CommerceQL; please report it with the query",
    )
    internal.original = error  # type: ignore[attr-defined] - for debugging, never shown
    return internal


# ---------------------------------------------------------------------------------------------
# Spans
# ---------------------------------------------------------------------------------------------


def _token_span(token: Token) -> ast.Span:
    return ast.Span(
        token.line, token.column, token.end_line, token.end_column, token.start_pos, token.end_pos
    )


def _meta_span(meta: Any) -> ast.Span | None:
    if getattr(meta, "empty", True):
        return None
    return ast.Span(meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)


def _line_col(text: str, pos: int) -> tuple[int, int]:
    pos = max(0, min(pos, len(text)))
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, column


def _pos_span(text: str, start: int, end: int) -> ast.Span:
    line, column = _line_col(text, start)
    end_line, end_column = _line_col(text, end)
    return ast.Span(line, column, end_line, end_column, start, end)


def _point_span(text: str, pos: int) -> ast.Span:
    line, column = _line_col(text, pos)
    return ast.Span(line, column, line, column + 1, pos, pos + 1)


def _first_line_span(span: ast.Span | None, text: str) -> ast.Span | None:
    """`span` cut to its first line (a multi-line caret would underline the rest of the line)."""
    if span is None or span.end_line == span.line:
        return span
    line_end = text.find("\n", span.start_pos)
    line_end = len(text) if line_end < 0 else line_end
    return _pos_span(text, span.start_pos, max(line_end, span.start_pos + 1))


# ---------------------------------------------------------------------------------------------
# Pre-scan: unterminated strings, quoted names and comments get a precise error
# ---------------------------------------------------------------------------------------------

_SCAN_RE = re.compile(
    r"""'(?:[^']|'')*'|"(?:[^"\n]|"")*"|--[^\n]*|/\*[\s\S]*?\*/|(?P<bad>'|"|/\*)|[^'"/-]+|[/-]"""
)


_DATE_FUNCTION_NAMES = {name.lower(): name for name in _DATE_FUNCTIONS}

# Input limits: far above any real query, low enough that no input can exhaust the lexer.
MAX_SCRIPT_CHARS = 1_000_000
MAX_VALUE_CHARS = 10_000
MAX_NAME_CHARS = 256
_LONG_NAME_RE = re.compile(rf"(?<!\w)[A-Za-z_]\w{{{MAX_NAME_CHARS},}}")


def _prescan(text: str) -> None:
    if len(text) > MAX_SCRIPT_CHARS:
        raise CommerceQLSyntaxError(
            f"this text is {len(text):,} characters long; a query or script may have at most {MAX_SCRIPT_CHARS:,}",
            span=_pos_span(text, MAX_SCRIPT_CHARS, MAX_SCRIPT_CHARS + 1),
            source=text,
            hint="split the script into several, or filter on a dimension instead of listing every value",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        # A lone surrogate (from a broken copy-paste or decoding) is no character at all.
        raise CommerceQLSyntaxError(
            f"this text holds an invalid character (U+{ord(text[error.start]):04X}, half of a UTF-16 pair)",
            span=_pos_span(text, error.start, error.start + 1),
            source=text,
            hint="retype the text around it, or paste it again from the original",
        ) from None
    for match in _SCAN_RE.finditer(text):
        bad = match.group("bad")
        if bad is None:
            if match.group(0)[:1] == "'" and len(match.group(0)) > MAX_VALUE_CHARS + 2:
                raise CommerceQLSyntaxError(
                    f"this value is {len(match.group(0)) - 2:,} characters long; a value may have at most "
                    f"{MAX_VALUE_CHARS:,}",
                    span=_pos_span(text, match.start(), match.start() + 1),
                    source=text,
                    hint="use CONTAINS or STARTS WITH with a shorter part of the text",
                )
            if match.group(0)[:1] not in ("'", '"', "-", "/"):
                long_name = _LONG_NAME_RE.search(match.group(0))
                if long_name is not None:
                    start = match.start() + long_name.start()
                    raise CommerceQLSyntaxError(
                        f"this name is {len(long_name.group(0)):,} characters long; names have at most {MAX_NAME_CHARS}",
                        span=_pos_span(text, start, start + 1),
                        source=text,
                        hint="check for a missing space or quote",
                    )
            continue
        start = match.start()
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        span = _pos_span(text, start, max(line_end, start + 1))
        if bad == "'":
            hint = "add the closing ' (values are written in single quotes)"
            if "\\'" in text:
                hint = "a quote inside a value is written twice, not with a backslash: 'Levi''s'"
            raise CommerceQLSyntaxError(
                "unterminated string: this value has no closing '", span=span, source=text, hint=hint
            )
        if bad == '"':
            raise CommerceQLSyntaxError(
                'unterminated name: this "double quoted" name has no closing " on its line',
                span=span,
                source=text,
                hint="double quotes are for aliases such as \"Net Sales\"; values take single quotes: 'Wholesale'",
            )
        raise CommerceQLSyntaxError(
            "unterminated comment: this /* comment has no closing */",
            span=_pos_span(text, start, start + 2),
            source=text,
            hint="add */ where the comment ends",
        )


# ---------------------------------------------------------------------------------------------
# Lark errors in plain words
# ---------------------------------------------------------------------------------------------

_CLAUSE_TERMINALS = {
    "_SHOW": "SHOW", "_WHERE": "WHERE", "_GROUP": "GROUP BY", "_SINCE": "SINCE", "_VISUALIZE": "VISUALIZE",
    "_TIMESERIES": "TIMESERIES", "_HAVING": "HAVING", "_UNTIL": "UNTIL", "_DURING": "DURING",
    "_COMPARE": "COMPARE TO", "_WITH": "WITH", "_ORDER": "ORDER BY", "_LIMIT": "LIMIT", "_FROM": "FROM",
}  # fmt: skip
_TERMINAL_WORDS = {
    "IDENT": "a name",
    "QIDENT": 'a "quoted alias"',
    "NUMBER": "a number",
    "STRING": "a 'quoted value'",
    "DATE": "a date such as 2025-01-31",
    "DATE_OFFSET": "a date offset such as -30d",
    "COMP_OP": "a comparison (=, !=, <, <=, >, >=)",
    "TRUE": "true", "FALSE": "false", "NULL": "null",
    "NOT": "NOT", "ONLY": "ONLY", "OVERALL": "OVERALL", "ALL": "ALL", "DIRECTION": "ASC or DESC",
    "ORGANIZATION": "ORGANIZATION", "OVER": "OVER",
    "_BY": "BY", "_TO": "TO", "_OFFSET": "OFFSET", "_TYPE": "TYPE", "_MAX": "MAX", "_TOP": "TOP",
    "_AS": "AS", "_AND": "AND", "_OR": "OR", "_IN": "IN", "_BETWEEN": "BETWEEN", "_IS": "IS",
    "_STARTS": "STARTS WITH", "_ENDS": "ENDS WITH", "_CONTAINS": "CONTAINS", "_MATCHES": "MATCHES",
    "_ANNOTATE": "ANNOTATE",
    "_PLUS": "`+`", "_MINUS": "`-`", "_STAR": "`*`", "_SLASH": "`/`",
    "_LPAR": "`(`", "_RPAR": "`)`", "_COMMA": "`,`", "_SEMI": "`;`",
    "$END": "the end of the query",
}  # fmt: skip
_WORD_ORDER = [
    "DATE_OFFSET", "DATE", "IDENT", "QIDENT", "NUMBER", "STRING", "TRUE", "FALSE", "NULL", "COMP_OP",
    "_LPAR", "_RPAR", "_COMMA", "_AS", "_TYPE", "_MAX", "_TO", "_BY", "_TOP", "ONLY", "OVERALL", "DIRECTION",
    "NOT", "_IN", "_BETWEEN", "_IS", "_STARTS", "_ENDS", "_CONTAINS", "_AND", "_OR", "_OFFSET",
]  # fmt: skip
_ARITHMETIC = {"_PLUS", "_MINUS", "_STAR", "_SLASH"}
_QUIET = {"ALL", "OVER", "ORGANIZATION", "_MATCHES", "_ANNOTATE", "_SEMI", "$END"}


def _describe_expected(expected: set[str]) -> str:
    expected = set(expected)
    clauses = [word for name, word in _CLAUSE_TERMINALS.items() if name in expected]
    if clauses:
        # In clause position, `BY` (legacy grouping) and `(` (a function call) are only noise.
        expected -= {"_BY", "_LPAR", "OVER"}
    if "DATE_OFFSET" in expected and "IDENT" in expected and "NUMBER" not in expected:
        words = ["a date (-30d, 2025-01-31, last_month or startOfMonth(-1m))"]
        expected -= {"DATE_OFFSET", "DATE", "IDENT"}
    elif "IDENT" in expected and "NUMBER" in expected:
        words = ["a name or a value"]
        expected -= {
            "IDENT",
            "QIDENT",
            "NUMBER",
            "STRING",
            "DATE",
            "DATE_OFFSET",
            "TRUE",
            "FALSE",
            "NULL",
            "_LPAR",
            "_MINUS",
        }
    else:
        words = []
        if "IDENT" in expected:
            expected.discard("QIDENT")
    for name in _WORD_ORDER:
        if name in expected:
            words.append(_TERMINAL_WORDS[name])
    if expected & _ARITHMETIC and len(words) <= 2:
        words.append("an operator (+ - * /)")
    if clauses:
        if len(clauses) > 5:
            words.append("another clause (" + ", ".join(clauses[:4]) + ", ...)")
        else:
            words.append(" or ".join(clauses) if not words else "; ".join(clauses))
    if not words:
        extra = sorted(_TERMINAL_WORDS.get(n, n) for n in expected if n not in _QUIET)
        words = extra or ["the end of the query"]
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


_KEYWORD_TERMINALS = {f"_{k}" for k in KEYWORDS} | set(_CLAUSE_TERMINALS) | {
    "DIRECTION", "ONLY", "OVERALL", "ALL", "OVER", "ORGANIZATION", "NOT", "TRUE", "FALSE", "NULL",
    "_MATCHES", "_ANNOTATE",
}  # fmt: skip


def _describe_token(token: Token) -> str:
    kind = token.type
    value = str(token.value)
    if kind == "$END":
        return "end of the query"
    if kind == "STRING":
        return f"value {_shorten(value)}"
    if kind in _KEYWORD_TERMINALS:
        return f"keyword {value.upper()}"
    return f"`{_shorten(value)}`"


def _shorten(value: str, limit: int = 40) -> str:
    value = value.replace("\n", " ")
    return value if len(value) <= limit else value[: limit - 3] + "..."


def _text_before(text: str, pos: int) -> str:
    return text[:pos].rstrip()


# What DURING takes (dates.NAMED_RANGES, BFCM of every year written as one pattern).
_DURING_FORMS = (
    "today, yesterday, this_week, last_week, this_month, last_month, this_quarter, last_quarter, "
    "this_year, last_year, this_weekend, last_weekend or bfcmYYYY (Black Friday to Cyber Monday, e.g. bfcm2024)"
)
_DATE_TEXT = r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?)?"
# Two dates joined the way other tools write a range: 2025-01-01..2025-03-31, 2025-01-01 – 2025-03-31,
# 2025-01-01/2025-03-31, 2025-01-01 to 2025-03-31. CommerceQL has no such operator.
_DATE_RANGE_RE = re.compile(
    rf"(?P<start>{_DATE_TEXT})\s*(?P<joint>\.{{2,3}}|[–—/-]|\bto\b)\s*(?P<end>{_DATE_TEXT})", re.IGNORECASE
)


def _date_range_error(text: str, pos: int) -> CommerceQLSyntaxError | None:
    """The error for a date range written with an operator (`DURING 2025-01-01..2025-03-31`), when
    the parser stopped inside one; None otherwise."""
    found = next((m for m in _DATE_RANGE_RE.finditer(text) if m.start() <= pos < m.end()), None)
    if found is None:
        return None
    start, end, written = found.group("start"), found.group("end"), found.group(0)
    span = _first_line_span(_pos_span(text, found.start(), found.end()), text)
    clause = re.search(r"\b(during|since|until|compare\s+to)\s*$", text[: found.start()], re.IGNORECASE)
    keyword = " ".join(clause.group(1).upper().split()) if clause else ""
    if keyword == "COMPARE TO":
        return CommerceQLSyntaxError(
            f"a comparison period is written COMPARE TO {start} UNTIL {end}, not `{written}`",
            span=span,
            source=text,
            hint="the first and the last day are both included; CommerceQL has no date range operator",
        )
    if keyword == "DURING":
        return CommerceQLSyntaxError(
            f"DURING takes a named period, not a date range (`{written}`)",
            span=span,
            source=text,
            hint=f"for dates, write SINCE {start} UNTIL {end} (both days included); DURING takes {_DURING_FORMS}",
        )
    return CommerceQLSyntaxError(
        f"a date range is written SINCE {start} UNTIL {end}, not `{written}`",
        span=span,
        source=text,
        hint="SINCE is the first day and UNTIL the last, both included; CommerceQL has no date range operator",
    )


def _translate_lark_error(error: UnexpectedInput, text: str) -> CommerceQLSyntaxError:
    token = getattr(error, "token", None)
    pos = token.start_pos if isinstance(error, UnexpectedToken) and token is not None else getattr(error, "pos_in_stream", None)
    if pos is not None:
        date_range = _date_range_error(text, pos)
        if date_range is not None:
            return date_range
    if isinstance(error, UnexpectedCharacters):
        return _unexpected_characters(error, text)
    if isinstance(error, UnexpectedToken):
        return _unexpected_token(error, text)
    if isinstance(error, UnexpectedEOF):
        expected = set(getattr(error, "expected", []) or [])
        return CommerceQLSyntaxError(
            f"the query ends too early; expected {_describe_expected(expected)}",
            span=_point_span(text, len(text)),
            source=text,
        )
    pos = getattr(error, "pos_in_stream", None) or 0
    return CommerceQLSyntaxError("the query could not be read here", span=_point_span(text, pos), source=text)


_BAD_WORD_RE = re.compile(r"[+-]?\d[\w.]*|[^\s]")


def _unexpected_characters(error: UnexpectedCharacters, text: str) -> CommerceQLSyntaxError:
    pos = error.pos_in_stream
    char = text[pos] if pos < len(text) else ""
    allowed = _acceptable(error)
    match = _BAD_WORD_RE.match(text, pos)
    word = match.group(0) if match else char
    span = _pos_span(text, pos, pos + max(len(word), 1))
    if re.match(r"[+-]?\d", word) and re.search(r"[A-Za-z_]", word):
        if "DATE_OFFSET" in allowed and not {"NUMBER"} <= allowed:
            return CommerceQLSyntaxError(
                f"`{word}` is not a date offset", span=span, source=text, hint=_OFFSET_UNITS_HINT
            )
        return CommerceQLSyntaxError(
            f"`{word}` is not a number",
            span=span,
            source=text,
            hint=f"numbers are plain digits such as 5 or 2.5; {_OFFSET_UNITS_HINT}",
        )
    if re.match(r"\d{4}-\d", word) or re.match(r"\d{4}-\d", text[pos : pos + 6]):
        date_match = re.match(r"[\dT:.\-]+", text[pos:])
        shown = date_match.group(0) if date_match else word
        return CommerceQLSyntaxError(
            f"`{shown}` is not a date",
            span=_pos_span(text, pos, pos + len(shown)),
            source=text,
            hint="write dates as 2025-01-31 or 2025-01-31T14:00:00",
        )
    if char == "'":
        return CommerceQLSyntaxError(
            "unterminated string: this value has no closing '", span=span, source=text
        )
    if char == '"':
        return CommerceQLSyntaxError(
            'unterminated name: this "quoted" name has no closing "', span=span, source=text
        )
    if char == "!" and "COMP_OP" not in allowed:
        return CommerceQLSyntaxError(
            "unexpected `!`",
            span=span,
            source=text,
            hint="`!=` compares values; use NOT to negate a condition",
        )
    if char and not char.isascii() and (char.isalpha() or char.isdigit()):
        return CommerceQLSyntaxError(
            f"unexpected character `{char}`: names use only the letters a-z, digits and _",
            span=_point_span(text, pos),
            source=text,
            hint='put an alias with other characters in double quotes: AS "Ventes nettes"',
        )
    shown = repr(char)[1:-1] if char and not char.isprintable() else char
    message = f"unexpected character `{shown}`"
    hint = None
    if allowed:
        message += f"; expected {_describe_expected(allowed)}"
    if char in "[]{}":
        hint = "lists are written in parentheses: IN ('a', 'b')"
    return CommerceQLSyntaxError(message, span=_point_span(text, pos), source=text, hint=hint)


def _acceptable(error: UnexpectedInput) -> set[str]:
    """The terminals that really can come next (Lark's own list over-approximates in LALR)."""
    expected = set(getattr(error, "expected", None) or getattr(error, "allowed", None) or ())
    interactive = getattr(error, "interactive_parser", None)
    if interactive is not None:
        try:
            accepted = set(interactive.accepts())
        except Exception:  # pragma: no cover - fall back to Lark's list
            accepted = set()
        if accepted:
            return accepted
    return expected


def _unexpected_token(error: UnexpectedToken, text: str) -> CommerceQLSyntaxError:
    token = error.token
    expected = _acceptable(error)
    kind = token.type
    value = str(token.value)
    start = token.start_pos or 0
    bad_word = _BAD_WORD_RE.match(text, start) if kind != "$END" else None
    if bad_word and re.match(r"[+-]?\d+[A-Za-z_]", bad_word.group(0)):
        word = bad_word.group(0)
        span = _pos_span(text, start, start + len(word))
        if "DATE_OFFSET" in expected:
            return CommerceQLSyntaxError(
                f"`{word}` is not a date offset", span=span, source=text, hint=_OFFSET_UNITS_HINT
            )
        return CommerceQLSyntaxError(
            f"`{word}` is not a number",
            span=span,
            source=text,
            hint=f"numbers are plain digits such as 5 or 2.5; {_OFFSET_UNITS_HINT}",
        )
    if kind == "$END":
        before = _text_before(text, len(text))
        pos = len(before)
        message = f"the query ends too early; expected {_describe_expected(expected)}"
        hint = None
        if before.endswith(","):
            hint = "remove the trailing comma"
        elif "DATE_OFFSET" in expected and "NUMBER" not in expected:
            hint = _DATE_FORMS_HINT
        # Point at the end of the (last) statement.
        span = _point_span(text, pos)
        return CommerceQLSyntaxError(message, span=span, source=text, hint=hint)

    span = _token_span(token) if token.line is not None else _point_span(text, token.start_pos or 0)
    span = _first_line_span(span, text)
    shown = _describe_token(token)
    message = f"unexpected {shown}; expected {_describe_expected(expected)}"
    hint: str | None = None
    before = _text_before(text, token.start_pos or 0)
    date_context = "DATE_OFFSET" in expected and "NUMBER" not in expected

    if kind == "IDENT":
        upper = value.upper()
        keyword_candidates = [w for w in KEYWORDS if _keyword_expected(w, expected)]
        close = (
            difflib.get_close_matches(upper, keyword_candidates, n=3, cutoff=0.6) if len(value) >= 2 else []
        )
        if upper in ("LIKE", "ILIKE"):
            message = f"unexpected `{value}`: CommerceQL has no LIKE"
            hint = "use STARTS WITH, ENDS WITH or CONTAINS: product_title CONTAINS 'shirt'"
        elif upper == "SELECT":
            message = "unexpected `SELECT`: CommerceQL uses SHOW"
            hint = "a query starts with FROM and lists columns with SHOW: FROM sales SHOW net_sales"
        elif close and (value.isupper() or "_COMMA" not in expected):
            message = f"unknown keyword `{value}`; expected {_describe_expected(expected)}"
            hint = did_you_mean(upper, close)
        elif "_COMMA" in expected:
            hint = "separate items with commas"
            if close:
                hint += f", or {did_you_mean(upper, close)}"
        elif close:
            hint = did_you_mean(upper, close)
    elif kind == "QIDENT" and date_context:
        hint = "dates are written without quotes: SINCE 2025-01-31"
    elif kind == "STRING" and date_context:
        hint = "dates are written without quotes: SINCE 2025-01-31 or SINCE -30d"
    elif kind == "NUMBER" and re.search(r"\btop\s*$", before, re.IGNORECASE):
        hint = _MISPLACED_HINTS["_TOP"]
    elif kind == "NUMBER" and date_context:
        hint = f"a date offset needs a unit: -{value}d for days, -{value}m for months; {_OFFSET_UNITS_HINT}"
    elif kind in _CLAUSE_TERMINALS and before.endswith(","):
        hint = "remove the trailing comma"
    elif kind in _CLAUSE_TERMINALS and "IDENT" in expected:
        word = value.lower()
        hint = f"`{word}` is a keyword; it cannot be used as a name here"
    elif kind in _MISPLACED_HINTS and kind not in expected:
        hint = _MISPLACED_HINTS[kind]
    elif date_context:
        hint = _DATE_FORMS_HINT
    if hint is None and kind in _CLAUSE_TERMINALS and before.endswith(","):
        hint = "remove the trailing comma"
    return CommerceQLSyntaxError(message, span=span, source=text, hint=hint)


_MISPLACED_HINTS = {
    "_OFFSET": "OFFSET goes right after LIMIT: LIMIT 100 OFFSET 20",
    "_TYPE": "TYPE follows an item of VISUALIZE: VISUALIZE net_sales TYPE line",
    "_MAX": "MAX ends VISUALIZE: VISUALIZE net_sales TYPE bar MAX 5",
    "_TOP": "TOP n goes in GROUP BY: GROUP BY TOP 5 product_title",
    "ONLY": "ONLY TOP n goes in GROUP BY: GROUP BY ONLY TOP 5 product_title",
    "OVERALL": "OVERALL follows a TOP item of GROUP BY: GROUP BY TOP 5 product_title OVERALL",
    "DIRECTION": "ASC and DESC follow a column of ORDER BY: ORDER BY net_sales DESC",
}


def _keyword_expected(word: str, expected: set[str]) -> bool:
    if word == "BY":
        return "_BY" in expected
    if word in ("GROUP", "ORDER", "COMPARE"):
        return f"_{word}" in expected
    if word in ("ASC", "DESC"):
        return "DIRECTION" in expected
    return f"_{word}" in expected or word in expected


# ---------------------------------------------------------------------------------------------
# Parse tree to AST
# ---------------------------------------------------------------------------------------------


class _Clause:
    __slots__ = ("kind", "value", "span", "organization")

    def __init__(self, kind: str, value: Any, span: ast.Span | None, *, organization: bool = False) -> None:
        self.kind = kind
        self.value = value
        self.span = span
        self.organization = organization  # FROM ORGANIZATION (every shop of the store)


class _AllItem:
    """A `GROUP BY month ALL` item: the grouped grain, and where the item was written."""

    __slots__ = ("item", "span")

    def __init__(self, item: ast.GroupItem, span: ast.Span | None) -> None:
        self.item = item
        self.span = span


def _group_item_text(item: ast.GroupItem) -> str:
    name = f'"{item.dimension.name}"' if item.dimension.quoted else item.dimension.name
    if item.top is None:
        return name
    return f"{'ONLY ' if item.only else ''}TOP {item.top} {name}{' OVERALL' if item.overall else ''}"


_DUPLICATE_HINTS = {
    "FROM": "a query has one FROM (list several tables with commas); separate queries with ;",
    "SHOW": "list every column in one SHOW, separated by commas",
    "VISUALIZE": "list every chart series in one VISUALIZE, separated by commas",
    "WHERE": "combine the conditions of one WHERE with AND / OR",
    "HAVING": "combine the conditions of one HAVING with AND / OR",
    "GROUP BY": "list every dimension in one GROUP BY, separated by commas",
    "COMPARE TO": "list every comparison in one COMPARE TO, separated by commas",
    "WITH": "list every modifier in one WITH, separated by commas: WITH TOTALS, PERCENT_CHANGE",
    "ORDER BY": "list every sort column in one ORDER BY, separated by commas",
}


def _err(message: str, span: ast.Span | None, hint: str | None = None) -> CommerceQLSyntaxError:
    return CommerceQLSyntaxError(message, span=span, hint=hint)


def _walk(node: Any) -> Iterator[Any]:
    yield node
    if isinstance(node, tuple):
        for item in node:
            yield from _walk(item)
    elif is_dataclass(node) and not isinstance(node, type):
        for f in fields(node):
            if f.name != "span":
                yield from _walk(getattr(node, f.name))


def _comparable(node: Any) -> Any:
    """A value compared with a field: here a date offset or date function is a relative date."""
    if isinstance(node, ast.DateOffset):
        return ast.RelativeDate(node, span=node.span)
    if isinstance(node, ast.RelativeDate):
        return node
    return _value(node)


def _arithmetic_operand(node: Any) -> Any:
    """An operand of + - * /: a date offset there is date arithmetic, which does not exist."""
    if isinstance(node, (ast.DateOffset, ast.RelativeDate)):
        raise _err(
            "there is no date arithmetic: a date offset such as -90d is already a date (90 days before today)",
            node.span,
            "compare a date field with the offset itself, e.g. `customer_last_order_date < -90d` "
            "(last order more than 90 days ago), or with a date function such as startOfMonth(-1m)",
        )
    return _value(node)


def _value(node: Any) -> Any:
    """Check that an expression operand is a value (a date offset is not, outside comparisons)."""
    if isinstance(node, ast.RelativeDate):
        raise _err(
            "a relative date such as startOfMonth(-1m) is a value only in a comparison",
            node.span,
            "compare a date field with it: `customer_last_order_date < startOfMonth(-1m)`",
        )
    if isinstance(node, ast.DateOffset):
        raise _err(
            "a date offset such as -30d is a value only when a date field is compared with it",
            node.span,
            "compare a date field with it: `customer_last_order_date < -90d`. (`SINCE -30d` is another "
            "question: it sets the reporting period on the table's own date, e.g. account creation on customers)",
        )
    return node


def _integer(token: Token, what: str, minimum: int = 0) -> int:
    text = str(token.value)
    if not text.isdigit():
        raise _err(f"{what} takes a whole number, not {text}", _token_span(token))
    if len(text.lstrip("0")) > 15:
        raise _err(f"{what} {_shorten(text, 20)} is too large", _token_span(token))
    number = int(text)
    if number < minimum:
        raise _err(f"{what} must be at least {minimum}", _token_span(token))
    return number


def _number(token: Token) -> int | Decimal:
    text = str(token.value)
    if len(text) > 400:
        raise _err("this number has too many digits (at most 400)", _token_span(token))
    if text.isdigit():
        return int(text)
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the lexer only produces valid numbers
        raise _err(f"`{text}` is not a number", _token_span(token)) from None


def _date(token: Token) -> dt.date | dt.datetime:
    text = str(token.value)
    try:
        if "T" in text:
            return dt.datetime.fromisoformat(text)
        return dt.date.fromisoformat(text)
    except ValueError:
        raise _err(
            f"`{text}` is not a valid date",
            _token_span(token),
            "write dates as 2025-01-31 or 2025-01-31T14:00:00 (month 01-12, a day that exists)",
        ) from None


def _offset(token: Token) -> ast.DateOffset:
    text = str(token.value)
    match = _OFFSET_RE.match(text)
    if match is None:  # pragma: no cover - guaranteed by the lexer
        raise _err(f"`{text}` is not a date offset", _token_span(token), _OFFSET_UNITS_HINT)
    sign, digits, unit = match.groups()
    if unit != unit.lower():
        raise _err(
            f"write the unit of `{text}` in lower case",
            _token_span(token),
            "m is months and min is minutes: -3m is three months, -3min three minutes",
        )
    if len(digits.lstrip("0")) > 6:
        raise _err(
            f"the date offset `{_shorten(text, 20)}` is too large", _token_span(token), "use at most 6 digits"
        )
    amount = int(digits)
    return ast.DateOffset(amount=-amount if sign == "-" else amount, unit=unit, span=_token_span(token))  # type: ignore[arg-type]


def _identifier(token: Token) -> ast.Identifier:
    text = str(token.value)
    if token.type == "QIDENT":
        name = text[1:-1].replace('""', '"')
        if not name.strip():
            raise _err(
                "an empty quoted name", _token_span(token), 'write a name between the quotes: AS "Net Sales"'
            )
        return ast.Identifier(name=name, quoted=True, span=_token_span(token))
    return ast.Identifier(name=text, quoted=False, span=_token_span(token))


class _Builder:
    """Turns the Lark tree into `commerceql.ast` nodes, checking what the grammar cannot.

    Bottom-up like a Lark `Transformer` (each rule's method gets the rule's `meta` and its already
    built children), but with a plain dispatch table: about twice as fast, and errors propagate
    as they are instead of wrapped in `VisitError`.
    """

    _dispatch: dict[str, Any] = {}

    def __init__(self, text: str) -> None:
        self.text = text

    def transform(self, tree: Tree) -> Any:
        children = [self.transform(c) if isinstance(c, Tree) else c for c in tree.children]
        method = self._dispatch.get(tree.data)
        if method is None:  # pragma: no cover - every rule of the grammar has a method
            raise LookupError(f"no builder for rule {tree.data!r}")
        return method(self, tree.meta, children)

    # -- script and query ---------------------------------------------------------------------

    def segment_condition(self, meta: Any, children: list[Any]) -> ast.Condition:
        return children[0]

    def start(self, meta: Any, children: list[Any]) -> list[ast.Query]:
        return [child for child in children if isinstance(child, ast.Query)]

    def query(self, meta: Any, children: list[Any]) -> ast.Query:
        clauses: dict[str, _Clause] = {}
        flat: list[_Clause] = []
        for child in children:
            flat.extend(child if isinstance(child, list) else [child])
        flat, notices = self._older_forms(flat)
        for clause in flat:
            if clause.kind in clauses:
                raise _err(
                    f"the {clause.kind} clause appears twice; a query has at most one {clause.kind}",
                    _first_line_span(clause.span, self.text),
                    _DUPLICATE_HINTS.get(clause.kind, f"remove one of the {clause.kind} clauses"),
                )
            clauses[clause.kind] = clause
        first = flat[0]
        if "FROM" not in clauses:
            raise _err(
                "missing FROM: a query starts with FROM <table>",
                _first_line_span(first.span, self.text),
                "for example: FROM sales SHOW net_sales",
            )
        if "SHOW" not in clauses and "VISUALIZE" not in clauses:
            raise _err(
                "the query has nothing to show: add SHOW or VISUALIZE",
                clauses["FROM"].span,
                "for example: FROM sales SHOW net_sales",
            )
        if "DURING" in clauses and ("SINCE" in clauses or "UNTIL" in clauses):
            raise _err(
                "DURING sets the whole period; use either DURING or SINCE/UNTIL",
                _first_line_span(clauses["DURING"].span, self.text),
                "remove DURING, or remove SINCE and UNTIL",
            )

        def value(kind: str, default: Any = None) -> Any:
            clause = clauses.get(kind)
            return default if clause is None else clause.value

        until = value("UNTIL")
        compare: tuple[ast.CompareTarget, ...] = value("COMPARE TO", ())
        if compare:
            fixed = []
            for index, target in enumerate(compare):
                if target.operator is not None and target.until is not None:
                    if index == len(compare) - 1 and "UNTIL" not in clauses and "DURING" not in clauses:
                        # `COMPARE TO previous_year UNTIL today`: the UNTIL is the query's own.
                        until = target.until
                        target = ast.CompareTarget(operator=target.operator, span=target.span)
                    else:
                        raise _err(
                            f"{target.operator} has no end date of its own",
                            target.until.span,
                            "remove this UNTIL; the comparison period follows the query's SINCE/UNTIL",
                        )
                fixed.append(target)
            compare = tuple(fixed)

        limit = value("LIMIT")
        return ast.Query(
            tables=value("FROM"),
            show=value("SHOW", ()),
            visualize=value("VISUALIZE"),
            where=value("WHERE"),
            group_by=value("GROUP BY", ()),
            timeseries=value("TIMESERIES"),
            having=value("HAVING"),
            since=value("SINCE"),
            until=until,
            during=value("DURING"),
            compare_to=compare,
            with_modifiers=value("WITH", ()),
            order_by=value("ORDER BY", ()),
            limit=limit[0] if limit else None,
            offset=limit[1] if limit else None,
            span=_meta_span(meta),
            source=self.text,
            notices=notices,
            organization=any(c.kind == "FROM" and c.organization for c in flat),
        )

    def _older_forms(self, flat: list[_Clause]) -> tuple[list[_Clause], tuple[str, ...]]:
        """Older spellings (`BY`, `OVER`, `GROUP BY month ALL`) turned into today's clauses, with notices."""
        kinds = {clause.kind for clause in flat}
        notices: list[str] = []
        out: list[_Clause] = []
        renamed: ast.ShowItem | None = None
        for clause in flat:
            if clause.kind == "BY":
                if "GROUP BY" in kinds:
                    raise _err(
                        "`BY` (the Notebooks spelling of GROUP BY) and GROUP BY both group this query",
                        _first_line_span(clause.span, self.text),
                        "list every dimension in one GROUP BY, separated by commas",
                    )
                dims = ", ".join(_group_item_text(item) for item in clause.value)
                notices.append(f"`BY` is the Notebooks spelling of `GROUP BY`: write `GROUP BY {dims}`")
                out.append(_Clause("GROUP BY", clause.value, clause.span))
            elif clause.kind == "OVER":
                grain, alias, written = clause.value
                if "TIMESERIES" in kinds:
                    raise _err(
                        "`OVER` (the older spelling of TIMESERIES) and TIMESERIES both set the time series",
                        _first_line_span(clause.span, self.text),
                        f"keep one: TIMESERIES {grain.name}",
                    )
                if alias is not None and alias.name != grain.name:
                    if "SHOW" not in kinds:
                        raise _err(
                            f"`OVER ... AS {alias.name}` names the time column, and this query has no SHOW to name it in",
                            alias.span,
                            f"write TIMESERIES {grain.name} (the column is called {grain.name})",
                        )
                    # The column keeps the name the query gave it: `SHOW day AS date ... TIMESERIES day`.
                    renamed = ast.ShowItem(expression=grain, alias=alias, span=clause.span)
                detail = " (periods of the table's own time column)" if "(" in written else ""
                notices.append(
                    f"`OVER {written}` is the 2014-2021 Analytics API spelling of `TIMESERIES {grain.name}`{detail}"
                )
                out.append(_Clause("TIMESERIES", grain, clause.span))
            elif clause.kind == "ALL":
                item = clause.value
                name = item.dimension.name
                series = next((c.value for c in (*flat, *out) if c.kind == "TIMESERIES"), None)
                if series is not None and series.name.lower() == name.lower() and "OVER" not in kinds:
                    notices.append(f"`GROUP BY {name} ALL` is the 2022-2024 spelling of `TIMESERIES {name}`")
                    continue
                if "TIMESERIES" in kinds or "OVER" in kinds:
                    raise _err(
                        f"`{name} ALL` (the older spelling of TIMESERIES {name}) and a time series clause both fill gaps",
                        clause.span,
                        f"remove ALL; TIMESERIES {name} fills the gaps",
                    )
                notices.append(
                    f"`GROUP BY {name} ALL` is the 2022-2024 spelling of `TIMESERIES {name}` "
                    f"(every {name} of the period, zeros where nothing happened)"
                )
                out.append(_Clause("TIMESERIES", item.dimension, clause.span))
                kinds.add("TIMESERIES")
            else:
                out.append(clause)
        if renamed is not None:
            out = [_Clause("SHOW", (renamed, *c.value), c.span) if c.kind == "SHOW" else c for c in out]
        return out, tuple(notices)

    # -- clauses --------------------------------------------------------------------------------

    def from_clause(self, meta: Any, children: list[Any]) -> _Clause:
        # FROM ORGANIZATION reads every shop of an organization store (commerceql/organization.py);
        # on a one-shop store it is that shop, and the result says so.
        organization, *tables = children
        return _Clause("FROM", tuple(_identifier(t) for t in tables), _meta_span(meta),
                       organization=organization is not None)

    def show_clause(self, meta: Any, items: list[ast.ShowItem]) -> _Clause:
        return _Clause("SHOW", tuple(items), _meta_span(meta))

    def show_item(self, meta: Any, children: list[Any]) -> ast.ShowItem:
        expression, alias = children
        return ast.ShowItem(expression=_value(expression), alias=alias, span=_meta_span(meta))

    def visualize_clause(self, meta: Any, children: list[Any]) -> _Clause | list[_Clause]:
        *items, maximum, annotate = children
        span = _meta_span(meta)
        max_points = None
        extra: list[_Clause] = []
        if maximum is not None:
            kind, number, offset, max_span = maximum
            if kind == "limit" and offset is not None:
                # `VISUALIZE x LIMIT 10 OFFSET 5` can only be the query's LIMIT.
                extra.append(_Clause("LIMIT", (number, offset), max_span))
            else:
                max_points = number
        visualize = ast.Visualize(items=tuple(items), max_points=max_points, span=span)
        return [_Clause("VISUALIZE", visualize, span), *extra]

    def vis_item(self, meta: Any, children: list[Any]) -> ast.VisualizeItem:
        expression, chart_type = children
        return ast.VisualizeItem(
            expression=_value(expression),
            chart_type=None if chart_type is None else _identifier(chart_type),
            span=_meta_span(meta),
        )

    def vis_max(self, meta: Any, children: list[Any]) -> tuple[Any, ...]:
        (number,) = children
        return ("max", _integer(number, "MAX", 1), None, _meta_span(meta))

    def vis_limit(self, meta: Any, children: list[Any]) -> tuple[Any, ...]:
        number, offset = children
        offset_value = None if offset is None else _integer(offset, "OFFSET")
        minimum = 0 if offset is not None else 1
        return ("limit", _integer(number, "LIMIT", minimum), offset_value, _meta_span(meta))

    def vis_annotate(self, meta: Any, children: list[Any]) -> None:
        raise _err(
            "ANNOTATE is not supported by CommerceQL",
            _meta_span(meta),
            "remove ANNOTATE; charts are drawn without annotations",
        )

    def where_clause(self, meta: Any, children: list[Any]) -> _Clause:
        (condition,) = children
        for node in _walk(condition):
            if isinstance(node, ast.Identifier) and node.quoted:
                value = node.name.replace("'", "''")
                raise _err(
                    f'"{node.name}" is in double quotes, which are for names (aliases), not values',
                    node.span,
                    f"use single quotes for values: '{value}'",
                )
        return _Clause("WHERE", condition, _meta_span(meta))

    def having_clause(self, meta: Any, children: list[Any]) -> _Clause:
        (condition,) = children
        return _Clause("HAVING", condition, _meta_span(meta))

    def group_clause(self, meta: Any, items: list[Any]) -> list[_Clause]:
        return self._grouping("GROUP BY", meta, items)

    def _grouping(self, kind: str, meta: Any, items: list[Any]) -> list[_Clause]:
        """GROUP BY (or the Notebooks `BY`) items; a `month ALL` item also asks for TIMESERIES month."""
        plain = [item.item if isinstance(item, _AllItem) else item for item in items]
        filled = [item for item in items if isinstance(item, _AllItem)]
        if len(filled) > 1:
            raise _err(
                "only one time grain can fill the gaps of a time series",
                filled[1].span,
                f"keep `{filled[0].item.dimension.name} ALL` and remove the other ALL",
            )
        clauses = [_Clause(kind, tuple(plain), _meta_span(meta))]
        if filled:
            clauses.append(_Clause("ALL", filled[0].item, filled[0].span))
        return clauses

    def group_plain(self, meta: Any, children: list[Any]) -> ast.GroupItem | _AllItem:
        dimension, all_token = children
        item = ast.GroupItem(dimension=dimension, span=_meta_span(meta))
        if all_token is not None:
            if dimension.quoted or dimension.name.lower() not in (*_TIME_GRAINS, *_CYCLICAL_DIMENSIONS):
                raise _err(
                    f"ALL fills the gaps of a time grain, and `{dimension.name}` is not a time grain",
                    _token_span(all_token),
                    f"remove ALL to group by {dimension.name}; ALL follows a time grain: GROUP BY month ALL",
                )
            return _AllItem(item, _meta_span(meta))
        return item

    def group_top(self, meta: Any, children: list[Any]) -> ast.GroupItem:
        only, count, dimension, overall = children
        return ast.GroupItem(
            dimension=dimension,
            top=_integer(count, "TOP", 1),
            only=only is not None,
            overall=overall is not None,
            span=_meta_span(meta),
        )

    def group_function(self, meta: Any, children: list[Any]) -> ast.GroupItem:
        """`bucket(order_total, 0, 100, 250) [AS name]`, `month(customer_first_order_date)`."""
        name, arguments, alias = children
        call = ast.FunctionCall(
            name=str(name.value), arguments=tuple(_value(a) for a in arguments or ()),
            span=_meta_span(meta),
        )
        first = call.arguments[0] if call.arguments else None
        field = first if isinstance(first, ast.Identifier) else ast.Identifier(call.name, span=call.span)
        return ast.GroupItem(dimension=field, function=call, alias=alias, span=_meta_span(meta))

    def timeseries_clause(self, meta: Any, children: list[Any]) -> _Clause:
        (grain,) = children
        return _Clause("TIMESERIES", _identifier(grain), _meta_span(meta))

    def since_clause(self, meta: Any, children: list[Any]) -> _Clause:
        return _Clause("SINCE", children[0], _meta_span(meta))

    def until_clause(self, meta: Any, children: list[Any]) -> _Clause:
        return _Clause("UNTIL", children[0], _meta_span(meta))

    def during_clause(self, meta: Any, children: list[Any]) -> _Clause:
        (period,) = children
        if not isinstance(period, ast.NamedDate):
            if isinstance(period, ast.AbsoluteDate):
                day = period.value.isoformat()
                hint = f"for dates, write SINCE {day} UNTIL <last day>, both days included (SINCE {day} UNTIL {day} is that one day)"
            else:
                hint = "for a start date or an offset, use SINCE (and UNTIL) instead: SINCE -30d UNTIL today"
            raise _err(
                "DURING takes a named period such as last_month, this_year or bfcm2024",
                period.span,
                f"{hint}; DURING takes {_DURING_FORMS}",
            )
        return _Clause("DURING", period, _meta_span(meta))

    def compare_clause(self, meta: Any, targets: list[ast.CompareTarget]) -> _Clause:
        return _Clause("COMPARE TO", tuple(targets), _meta_span(meta))

    def compare_target(self, meta: Any, children: list[Any]) -> ast.CompareTarget:
        start, until = children
        span = _meta_span(meta)
        if isinstance(start, ast.NamedDate):
            name = start.name
            if name.startswith("previous_") or name in ("targets", "benchmarks"):
                return ast.CompareTarget(operator=name, until=until, span=span)
        return ast.CompareTarget(start=start, until=until, span=span)

    def with_clause(self, meta: Any, modifiers: list[ast.WithModifier]) -> _Clause:
        seen: set[str] = set()
        for modifier in modifiers:
            if modifier.name in seen:
                raise _err(f"WITH lists {modifier.name} twice", modifier.span, "list each modifier once")
            seen.add(modifier.name)
        return _Clause("WITH", tuple(modifiers), _meta_span(meta))

    def with_modifier(self, meta: Any, children: list[Any]) -> ast.WithModifier:
        name_token, argument = children
        name = str(name_token.value).upper()
        span = _meta_span(meta)
        if name not in WITH_MODIFIERS:
            close = difflib.get_close_matches(name, WITH_MODIFIERS, n=3, cutoff=0.6)
            raise _err(
                f"unknown WITH modifier `{name_token.value}`",
                _token_span(name_token),
                did_you_mean(name, close) if close else "modifiers are " + ", ".join(WITH_MODIFIERS[:6]),
            )
        needs = _MODIFIERS_WITH_ARGUMENT.get(name)
        if needs is None:
            if argument is not None:
                raise _err(f"{name} takes no value", _token_span(argument), f"write WITH {name}")
            return ast.WithModifier(name=name, span=span)
        example = "'EUR'" if name == "CURRENCY" else "'Europe/Paris'"
        if argument is None:
            raise _err(f"{name} needs {needs}", span, f"write WITH {name} {example}")
        if argument.type != "STRING":
            raw = str(argument.value).strip('"').replace("'", "''")
            raise _err(
                f"the value of {name} goes in single quotes",
                _token_span(argument),
                f"write WITH {name} '{raw}'",
            )
        return ast.WithModifier(name=name, argument=str(argument.value)[1:-1].replace("''", "'"), span=span)

    def order_clause(self, meta: Any, items: list[ast.OrderItem]) -> _Clause:
        return _Clause("ORDER BY", tuple(items), _meta_span(meta))

    def order_item(self, meta: Any, children: list[Any]) -> ast.OrderItem:
        column, direction = children
        descending = direction is not None and str(direction.value).lower() == "desc"
        return ast.OrderItem(column=column, descending=descending, span=_meta_span(meta))

    def limit_clause(self, meta: Any, children: list[Any]) -> _Clause:
        number, offset = children
        value = (_integer(number, "LIMIT"), None if offset is None else _integer(offset, "OFFSET"))
        return _Clause("LIMIT", value, _meta_span(meta))

    def legacy_by_clause(self, meta: Any, items: list[Any]) -> list[_Clause]:
        # The Notebooks `SHOW x BY dim`: GROUP BY (see _older_forms).
        return self._grouping("BY", meta, items)

    def legacy_over_clause(self, meta: Any, children: list[Any]) -> _Clause:
        # The Analytics API's `OVER month` / `OVER month(happened_at) AS month`: TIMESERIES month.
        _over, expression, alias = children
        grain = None
        if isinstance(expression, ast.Identifier) and not expression.quoted:
            grain = expression
        elif (
            isinstance(expression, ast.FunctionCall)
            and len(expression.arguments) == 1
            and isinstance(expression.arguments[0], ast.Identifier)
            and not expression.arguments[0].quoted
        ):
            grain = ast.Identifier(expression.name, span=expression.span)
        if grain is None or grain.name.lower() not in (*_TIME_GRAINS, *_CYCLICAL_DIMENSIONS):
            span = expression.span if grain is None else grain.span
            dimension = grain.name if grain is not None else "<dimension>"
            raise _err(
                "`OVER` is the older spelling of TIMESERIES, which takes a time grain",
                span,
                "write TIMESERIES month (or second, minute, hour, day, week, quarter, year); "
                f"to group by {dimension}, write GROUP BY {dimension}",
            )
        written = self.text[expression.span.start_pos : expression.span.end_pos] if expression.span else grain.name
        if alias is not None:
            written += f" AS {alias.name}"
        return _Clause("OVER", (grain, alias, written), _meta_span(meta))

    # -- dates ----------------------------------------------------------------------------------

    def date_offset(self, meta: Any, children: list[Any]) -> ast.DateOffset:
        return _offset(children[0])

    def date_absolute(self, meta: Any, children: list[Any]) -> ast.AbsoluteDate:
        return ast.AbsoluteDate(value=_date(children[0]), span=_meta_span(meta))

    def date_named(self, meta: Any, children: list[Any]) -> ast.NamedDate:
        return ast.NamedDate(name=str(children[0].value).lower(), span=_meta_span(meta))

    def date_function(self, meta: Any, children: list[Any]) -> ast.DateFunction:
        name, argument = children
        return ast.DateFunction(
            name=str(name.value),
            argument=None if argument is None else _offset(argument),
            span=_meta_span(meta),
        )

    # -- conditions -----------------------------------------------------------------------------

    def _logical(self, operator: str, meta: Any, children: list[Any]) -> ast.Logical:
        operands: list[Any] = []
        for child in children:
            if isinstance(child, ast.Logical) and child.operator == operator:
                operands.extend(child.operands)
            else:
                operands.append(child)
        return ast.Logical(operator=operator, operands=tuple(operands), span=_meta_span(meta))  # type: ignore[arg-type]

    def or_condition(self, meta: Any, children: list[Any]) -> ast.Logical:
        return self._logical("or", meta, children)

    def and_condition(self, meta: Any, children: list[Any]) -> ast.Logical:
        return self._logical("and", meta, children)

    def not_(self, meta: Any, children: list[Any]) -> ast.Not:
        return ast.Not(operand=children[-1], span=_meta_span(meta))

    def comparison(self, meta: Any, children: list[Any]) -> ast.Comparison:
        left, operator, right = children
        op = str(operator.value)
        if op == "==":
            raise _err(
                "`==` is not a CommerceQL operator", _token_span(operator), "write = (a single equals sign)"
            )
        if op == "<>":
            op = "!="
        return ast.Comparison(operator=op, left=_comparable(left), right=_comparable(right), span=_meta_span(meta))  # type: ignore[arg-type]

    def in_list(self, meta: Any, children: list[Any]) -> ast.InList:
        operand, negated, *values = children
        return ast.InList(
            operand=_value(operand),
            values=tuple(_comparable(v) for v in values),
            negated=negated is not None,
            span=_meta_span(meta),
        )

    def between(self, meta: Any, children: list[Any]) -> ast.Between:
        operand, negated, low, high = children
        return ast.Between(
            operand=_value(operand),
            low=_comparable(low),
            high=_comparable(high),
            negated=negated is not None,
            span=_meta_span(meta),
        )

    def _string_match(self, kind: str, meta: Any, children: list[Any]) -> ast.StringMatch:
        operand, negated, value = children
        return ast.StringMatch(
            operand=_value(operand),
            kind=kind,
            value=_value(value),
            negated=negated is not None,
            span=_meta_span(meta),  # type: ignore[arg-type]
        )

    def starts_with(self, meta: Any, children: list[Any]) -> ast.StringMatch:
        return self._string_match("starts_with", meta, children)

    def ends_with(self, meta: Any, children: list[Any]) -> ast.StringMatch:
        return self._string_match("ends_with", meta, children)

    def contains(self, meta: Any, children: list[Any]) -> ast.StringMatch:
        return self._string_match("contains", meta, children)

    def is_test(self, meta: Any, children: list[Any]) -> ast.IsTest:
        operand, negated, test = children
        return ast.IsTest(
            operand=_value(operand),
            test=str(test.type).lower(),
            negated=negated is not None,
            span=_meta_span(meta),  # type: ignore[arg-type]
        )

    def matches(self, meta: Any, children: list[Any]) -> ast.Matches:
        subject, negated, *parameters = children
        if not isinstance(subject, ast.Identifier):
            raise _err(
                "MATCHES applies to related records such as orders_placed or products_purchased",
                _first_line_span(_meta_span(meta), self.text),
                "for example: orders_placed MATCHES (count_at_least = 2, date > -365d)",
            )
        given = [p for p in parameters if p is not None]
        seen: set[str] = set()
        for parameter in given:
            if parameter.name in seen:
                raise _err(
                    f"`{parameter.name}` appears twice in one MATCHES; each parameter may appear once",
                    parameter.span,
                    "for a date range use `date BETWEEN`-style bounds on two MATCHES joined with AND",
                )
            seen.add(parameter.name)
        return ast.Matches(subject=subject, parameters=tuple(given), negated=negated is not None,
                           span=_meta_span(meta))

    def matches_param(self, meta: Any, children: list[Any]) -> ast.MatchesParameter:
        name, operator, value = children
        op = str(operator.value)
        op = "!=" if op == "<>" else op
        if op == "==":
            raise _err("`==` is not a CommerceQL operator", _token_span(operator), "write = (a single equals sign)")
        return ast.MatchesParameter(name=str(name.value).lower(), operator=op,  # type: ignore[arg-type]
                                    value=_comparable(value), span=_meta_span(meta))

    def bare(self, meta: Any, children: list[Any]) -> ast.BareCondition:
        return ast.BareCondition(operand=_value(children[0]), span=_meta_span(meta))

    # -- expressions ----------------------------------------------------------------------------

    def _binary(self, operator: str, meta: Any, children: list[Any]) -> ast.BinaryOperation:
        left, right = children
        return ast.BinaryOperation(
            operator=operator, left=_arithmetic_operand(left), right=_arithmetic_operand(right), span=_meta_span(meta)
        )  # type: ignore[arg-type]

    def add(self, meta: Any, children: list[Any]) -> ast.BinaryOperation:
        return self._binary("+", meta, children)

    def sub(self, meta: Any, children: list[Any]) -> ast.BinaryOperation:
        return self._binary("-", meta, children)

    def mul(self, meta: Any, children: list[Any]) -> ast.BinaryOperation:
        return self._binary("*", meta, children)

    def div(self, meta: Any, children: list[Any]) -> ast.BinaryOperation:
        return self._binary("/", meta, children)

    def neg(self, meta: Any, children: list[Any]) -> ast.Expression:
        (operand,) = children
        if isinstance(operand, ast.NumberLiteral):
            # `-5` is the number minus five, not the negation of five.
            return ast.NumberLiteral(value=-operand.value, span=_meta_span(meta))
        return ast.Negation(operand=_arithmetic_operand(operand), span=_meta_span(meta))

    def name(self, meta: Any, children: list[Any]) -> ast.Identifier:
        return _identifier(children[0])

    def number(self, meta: Any, children: list[Any]) -> ast.NumberLiteral:
        return ast.NumberLiteral(value=_number(children[0]), span=_meta_span(meta))

    def string(self, meta: Any, children: list[Any]) -> ast.StringLiteral:
        raw = str(children[0].value)
        return ast.StringLiteral(value=raw[1:-1].replace("''", "'"), span=_meta_span(meta))

    def date_literal(self, meta: Any, children: list[Any]) -> ast.DateLiteral:
        return ast.DateLiteral(value=_date(children[0]), span=_meta_span(meta))

    def offset_value(self, meta: Any, children: list[Any]) -> ast.DateOffset:
        return _offset(children[0])

    def true(self, meta: Any, children: list[Any]) -> ast.BooleanLiteral:
        return ast.BooleanLiteral(value=True, span=_meta_span(meta))

    def false(self, meta: Any, children: list[Any]) -> ast.BooleanLiteral:
        return ast.BooleanLiteral(value=False, span=_meta_span(meta))

    def null(self, meta: Any, children: list[Any]) -> ast.NullLiteral:
        return ast.NullLiteral(span=_meta_span(meta))

    def function_call(self, meta: Any, children: list[Any]) -> ast.FunctionCall | ast.RelativeDate:
        name, arguments = children
        arguments = arguments or ()
        canonical = _DATE_FUNCTION_NAMES.get(str(name.value).lower())
        if canonical is not None and (
            not arguments or (len(arguments) == 1 and isinstance(arguments[0], ast.DateOffset))
        ):
            # `startOfMonth(-1m)` as a value: a relative date (conditions accept it; see _value).
            function = ast.DateFunction(canonical, arguments[0] if arguments else None, span=_meta_span(meta))
            return ast.RelativeDate(function, span=_meta_span(meta))
        return ast.FunctionCall(
            name=str(name.value), arguments=tuple(_value(a) for a in arguments), span=_meta_span(meta)
        )

    def arguments(self, meta: Any, children: list[Any]) -> tuple[ast.Expression, ...]:
        return tuple(children)  # checked by function_call: a date function takes an offset


_Builder._dispatch = {
    name: function
    for name, function in vars(_Builder).items()
    if callable(function) and not name.startswith("_") and name != "transform"
}
