"""Real ShopifyQL queries from Shopify's documentation parse (and round-trip through the formatter).

See tests/conformance/README.md for where the queries come from.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from commerceql import ast
from commerceql.errors import CommerceQLError
from commerceql.formatter import format_query
from commerceql.model.semantic import builtin_model
from commerceql.parser import parse, parse_script
from commerceql.resolver import resolve

HERE = Path(__file__).parent / "conformance"
SOURCE_RE = re.compile(r"^-- source: (\S+)\s*$", re.MULTILINE)
EXPECT_RE = re.compile(r"^-- expect: (.+?)\s*$", re.MULTILINE)


def _entries(name: str) -> list[tuple[str, str]]:
    """(source URL, entry text) for every `-- source:` entry of a conformance file."""
    text = (HERE / name).read_text(encoding="utf-8")
    starts = [m.start() for m in SOURCE_RE.finditer(text)] + [len(text)]
    entries = []
    for start, end in zip(starts, starts[1:], strict=False):
        chunk = text[start:end]
        # Drop the section banners that follow an entry's `;`.
        chunk = chunk[: chunk.rindex(";") + 1]
        entries.append((SOURCE_RE.match(chunk).group(1), chunk))
    return entries


DOCS = _entries("shopify_docs.cql")
UNSUPPORTED = _entries("unsupported.cql")


def test_there_are_at_least_40_documented_queries() -> None:
    assert len(DOCS) >= 40
    assert all(url.startswith("https://") for url, _ in DOCS)


@pytest.mark.parametrize(("url", "text"), DOCS, ids=[f"doc{i:02d}" for i in range(len(DOCS))])
def test_documented_query_parses_and_round_trips(url: str, text: str) -> None:
    query = parse(text)
    assert isinstance(query, ast.Query)
    assert query.tables
    assert query.show or query.visualize is not None
    formatted = format_query(query)
    assert parse(formatted) == query, formatted
    # Formatting is idempotent.
    assert format_query(parse(formatted)) == formatted


def test_the_whole_file_parses_as_one_script() -> None:
    text = (HERE / "shopify_docs.cql").read_text(encoding="utf-8")
    queries = parse_script(text)
    assert len(queries) == len(DOCS)
    # Spans are relative to the whole file: every query starts after its own `-- source:` line.
    starts = [m.end() for m in SOURCE_RE.finditer(text)]
    for query, source_end in zip(queries, starts, strict=True):
        assert query.span is not None
        assert query.span.start_pos > source_end
        assert query.source == text


@pytest.mark.parametrize(
    ("url", "text"), UNSUPPORTED, ids=[f"unsupported{i}" for i in range(len(UNSUPPORTED))]
)
def test_unsupported_query_fails_clearly(url: str, text: str) -> None:
    expected = EXPECT_RE.search(text).group(1)
    with pytest.raises(CommerceQLError) as info:
        # Refused by the parser, or (names with no data in any store) by the resolver.
        resolve(parse(text), builtin_model(), now=dt.datetime(2025, 12, 15, tzinfo=dt.UTC), timezone="UTC")
    error = info.value
    assert expected in f"{error.message} {error.hint or ''}"
    assert "internal" not in error.message
    assert error.span is not None
    rendered = error.render()
    assert "^" in rendered and f"line {error.span.line}" in rendered
