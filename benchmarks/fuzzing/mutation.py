"""Mutated queries: valid queries from the corpus, broken in small and large ways.

The corpus is every real query the repository already holds (the ShopifyQL conformance files and
the ```cql blocks of docs/*.md). A mutation works on tokens (so it deletes, duplicates or swaps
whole words and operators, the mistakes people make) or on characters (stray punctuation,
unicode, control characters), and a few target the input limits: huge numbers, deep
parentheses, long names and values.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_TOKEN = re.compile(
    r"""
      '(?:[^']|'')*'                         # value
    | "(?:[^"\n]|"")*"                       # quoted name
    | --[^\n]*                               # line comment
    | /\*[\s\S]*?\*/                         # block comment
    | \d{4}-\d{2}-\d{2}(?:T[\d:.]+)?         # date
    | [+-]?\d+(?:min|[smhdwqy])\b            # offset
    | \d+(?:\.\d+)?                          # number
    | [A-Za-z_][A-Za-z0-9_.]*                # word
    | !=|<>|<=|>=|==                         # two-character operators
    | \s+                                    # whitespace (kept, so line comments stay on their line)
    | .                                      # anything else
    """,
    re.VERBOSE,
)

KEYWORDS = (
    "FROM", "SHOW", "WHERE", "GROUP BY", "TOP", "ONLY", "OVERALL", "TIMESERIES", "HAVING", "SINCE",
    "UNTIL", "DURING", "COMPARE TO", "WITH", "ORDER BY", "LIMIT", "OFFSET", "VISUALIZE", "TYPE", "MAX",
    "AS", "AND", "OR", "NOT", "IN", "BETWEEN", "IS", "NULL", "TRUE", "FALSE", "STARTS WITH", "ENDS WITH",
    "CONTAINS", "MATCHES", "ANNOTATE", "ORGANIZATION", "BY", "OVER", "ALL", "ASC", "DESC", "TOTALS",
    "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES", "TIMEZONE", "CURRENCY", "previous_year",
    "previous_period", "today", "now", "bfcm2024", "month", "hour_of_day", "second",
)  # fmt: skip
PUNCTUATION = tuple("()[]{},;.:=<>!+-*/%'\"`\\@#$^&|~?")
UNICODE = (
    "é", "ß", "İ", "ﬁ", "Ω", "😀", "\u200b", "\u00a0", "\u2028", "\ufeff", "\x00", "\x07", "\t",
    "\r", "\n", "\U0010ffff", "\ud800", "Ⅻ", "٣", "𝟘", "ｆｒｏｍ",
)  # fmt: skip
HUGE_NUMBERS = (
    "99999999999999999999999999999999", "1" + "0" * 400, "0.0000000000000000000000001", "18446744073709551616",
    "9223372036854775808", "-9223372036854775809", "0" * 50 + "1", "1.7976931348623157e308",
)  # fmt: skip


def load_corpus(root: Path = ROOT) -> list[str]:
    """Every valid query the repository documents: conformance entries and docs code blocks."""
    queries: list[str] = []
    for path in sorted((root / "tests" / "conformance").glob("*.cql")):
        text = path.read_text(encoding="utf-8")
        for entry in re.split(r"^-- source:.*$", text, flags=re.MULTILINE)[1:]:
            body = "\n".join(line for line in entry.splitlines() if not line.startswith("-- expect:"))
            body = body.strip().rstrip(";").strip()
            if body:
                queries.append(body)
    for path in sorted((root / "docs").glob("*.md")):
        for block in re.findall(r"```cql\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.DOTALL):
            if block.strip():
                queries.append(block.strip())
    return queries


def tokenize(text: str) -> list[str]:
    return _TOKEN.findall(text)


class MutationGenerator:
    """Queries derived from `corpus` (plus any extra seeds given per call) by random mutations."""

    def __init__(self, corpus: Sequence[str]) -> None:
        if not corpus:
            raise ValueError("the mutation corpus is empty")
        self.corpus = list(corpus)

    def query(self, rng: random.Random, seeds: Sequence[str] = ()) -> str:
        pool = self.corpus if not seeds or rng.random() < 0.6 else list(seeds)
        text = rng.choice(pool)
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 5))):
            text = rng.choice(_MUTATIONS)(rng, text)
        return text


def _words(tokens: list[str]) -> list[int]:
    """Indexes of the tokens that are not whitespace."""
    return [i for i, t in enumerate(tokens) if not t.isspace()]


def _delete_token(rng: random.Random, text: str) -> str:
    tokens = tokenize(text)
    words = _words(tokens)
    if words:
        del tokens[rng.choice(words)]
    return "".join(tokens)


def _duplicate_token(rng: random.Random, text: str) -> str:
    tokens = tokenize(text)
    words = _words(tokens)
    if words:
        i = rng.choice(words)
        tokens.insert(i, tokens[i] + " ")
    return "".join(tokens)


def _swap_tokens(rng: random.Random, text: str) -> str:
    tokens = tokenize(text)
    words = _words(tokens)
    if len(words) >= 2:
        a, b = rng.sample(words, 2) if rng.random() < 0.3 else _adjacent(rng, words)
        tokens[a], tokens[b] = tokens[b], tokens[a]
    return "".join(tokens)


def _adjacent(rng: random.Random, words: list[int]) -> tuple[int, int]:
    k = rng.randrange(len(words) - 1)
    return words[k], words[k + 1]


def _insert_keyword(rng: random.Random, text: str) -> str:
    tokens = tokenize(text)
    tokens.insert(rng.randint(0, len(tokens)), f" {rng.choice(KEYWORDS)} ")
    return "".join(tokens)


def _insert_character(rng: random.Random, text: str) -> str:
    position = rng.randint(0, len(text))
    character = rng.choice(PUNCTUATION) if rng.random() < 0.6 else rng.choice(UNICODE)
    return text[:position] + character * rng.choice((1, 1, 2, 3)) + text[position:]


def _replace_character(rng: random.Random, text: str) -> str:
    if not text:
        return text
    position = rng.randrange(len(text))
    return text[:position] + chr(rng.choice((rng.randint(32, 126), rng.randint(0x80, 0x2FFF)))) + text[position + 1 :]


def _huge_number(rng: random.Random, text: str) -> str:
    tokens = tokenize(text)
    numbers = [i for i, t in enumerate(tokens) if re.fullmatch(r"[+-]?\d+(?:\.\d+)?(?:min|[smhdwqy])?", t)]
    huge = rng.choice(HUGE_NUMBERS)
    if numbers:
        i = rng.choice(numbers)
        unit = re.sub(r"^[+-]?[\d.]+", "", tokens[i])
        tokens[i] = ("-" if tokens[i].startswith("-") else "") + huge.lstrip("-") + unit
        return "".join(tokens)
    return text + rng.choice((f" LIMIT {huge}", f" SINCE -{huge}d", f" WHERE x > {huge}"))


def _deep_parentheses(rng: random.Random, text: str) -> str:
    """Wrap one word in many parentheses (balanced or not)."""
    tokens = tokenize(text)
    words = [i for i in _words(tokens) if re.fullmatch(r"[A-Za-z_][\w.]*|\d+", tokens[i])]
    if not words:
        return text
    i = rng.choice(words)
    depth = rng.choice((5, 50, 200, 1000, 5000))
    close = depth if rng.random() < 0.8 else rng.randint(0, depth)
    tokens[i] = "(" * depth + tokens[i] + ")" * close
    return "".join(tokens)


def _long_value(rng: random.Random, text: str) -> str:
    tokens = tokenize(text)
    size = rng.choice((300, 5000, 20000))
    kinds = [i for i, t in enumerate(tokens) if t.startswith("'") or re.fullmatch(r"[a-z_]\w*", t)]
    if not kinds:
        return text
    i = rng.choice(kinds)
    if tokens[i].startswith("'"):
        tokens[i] = "'" + rng.choice(("x", "é", "''", "%")) * size + "'"
    else:
        tokens[i] = tokens[i] + "_x" * (size // 2)
    return "".join(tokens)


def _truncate(rng: random.Random, text: str) -> str:
    return text[: rng.randint(0, len(text))]


def _splice(rng: random.Random, text: str) -> str:
    """Cut a piece of the query and put it elsewhere (clauses in odd places, repeated clauses)."""
    if len(text) < 4:
        return text
    a, b = sorted(rng.sample(range(len(text)), 2))
    piece = text[a:b]
    position = rng.randint(0, len(text))
    return text[:position] + " " + piece + " " + text[position:]


def _case(rng: random.Random, text: str) -> str:
    return "".join(c.swapcase() if rng.random() < 0.3 else c for c in text)


def _unterminated(rng: random.Random, text: str) -> str:
    return text + rng.choice(("'", '"', "/*", "(", " --", " WHERE", " AND", ",", ";", " ;; FROM"))


_MUTATIONS = (
    _delete_token, _delete_token, _duplicate_token, _swap_tokens, _swap_tokens, _insert_keyword,
    _insert_keyword, _insert_character, _replace_character, _huge_number, _deep_parentheses,
    _long_value, _truncate, _splice, _case, _unterminated,
)  # fmt: skip


def noise_query(rng: random.Random) -> str:
    """Token soup and raw text: the lexer and the parser's error messages see the least likely input."""
    if rng.random() < 0.5:
        pieces = [rng.choice(KEYWORDS + PUNCTUATION + ("sales", "net_sales", "'v'", "-30d", "2025-01-01", "5"))
                  for _ in range(rng.randint(0, 30))]
        return " ".join(pieces)
    alphabet = "abcdefghijklmnopqrstuvwxyz_ 0123456789'\"()-,;*/\n" + "".join(UNICODE)
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 120)))
