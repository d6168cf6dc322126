"""Editor support shared by the Jupyter kernel and the IPython magic: completion, inspection and
"is this cell complete?".

Everything here is a pure function of the text, the cursor and the semantic model, and works on
partial or invalid text: it never relies on a successful parse. A small tolerant scanner
(`scan`) splits the text before the cursor into tokens (strings, comments and quoted names
included, unterminated ones too); the context is read from the last clause keyword and the token
just before the word being typed.

    >>> from commerceql.model import builtin_model
    >>> c = complete("FROM sales SHOW net_", 20, builtin_model())
    >>> c.matches[:1], c.cursor_start
    (['net_sales'], 16)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from commerceql.model.semantic import Dimension, Metric, SemanticModel, Table

__all__ = [
    "CLAUSE_KEYWORDS",
    "Completion",
    "Token",
    "complete",
    "inspect",
    "is_complete",
    "scan",
]

# ---------------------------------------------------------------------------------------------
# Vocabulary
# ---------------------------------------------------------------------------------------------

#: Clause keywords in the order they are offered (two-word keywords are offered whole).
CLAUSE_KEYWORDS: tuple[str, ...] = (
    "FROM",
    "SHOW",
    "VISUALIZE",
    "WHERE",
    "GROUP BY",
    "TIMESERIES",
    "HAVING",
    "SINCE",
    "UNTIL",
    "DURING",
    "COMPARE TO",
    "WITH",
    "ORDER BY",
    "LIMIT",
)
_CLAUSE_WORDS = frozenset(
    {"FROM", "SHOW", "VISUALIZE", "WHERE", "GROUP", "TIMESERIES", "HAVING", "SINCE", "UNTIL", "DURING",
     "COMPARE", "WITH", "ORDER", "LIMIT"}
)
_PREDICATE_KEYWORDS = ("IN", "NOT IN", "BETWEEN", "STARTS WITH", "ENDS WITH", "CONTAINS", "NOT CONTAINS", "IS NULL",
                       "IS NOT NULL")
_LOGICAL_KEYWORDS = ("AND", "OR")
_OPERATORS = frozenset({"+", "-", "*", "/"})
_COMPARISON_OPERATORS = frozenset({"=", "==", "!=", "<>", "<", "<=", ">", ">="})
_FALLBACK_MODIFIERS = ("TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES", "CURRENCY", "TIMEZONE")
_CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD", "JPY", "INR", "CNY")

#: Words that, at the end of a cell, mean the query is not finished.
_CONTINUATION_WORDS = frozenset(
    {"FROM", "SHOW", "VISUALIZE", "WHERE", "GROUP", "BY", "TIMESERIES", "HAVING", "SINCE", "UNTIL", "DURING",
     "COMPARE", "TO", "WITH", "ORDER", "LIMIT", "AS", "AND", "OR", "NOT", "IN", "BETWEEN", "IS", "TYPE", "MAX",
     "TOP", "ONLY", "OFFSET", "STARTS", "ENDS", "CONTAINS", "MATCHES", "ANNOTATE", "ORGANIZATION", "OVER"}
)

_KEYWORD_HELP: dict[str, str] = {
    "FROM": "`FROM table` — the table to query (see `%schema`).",
    "SHOW": "`SHOW metric [AS \"Name\"], ...` — the metrics (and grouped dimensions) to return.",
    "VISUALIZE": "`VISUALIZE metric [TYPE chart_type], ... [MAX n]` — draw the result as a chart.",
    "WHERE": "`WHERE condition` — filter rows on dimensions before aggregating.",
    "GROUP": "`GROUP BY dimension, [ONLY] TOP n dimension, time_grain ...` — one row per group.",
    "BY": "`GROUP BY ...` / `ORDER BY ...`.",
    "TIMESERIES": "`TIMESERIES grain` — one row per period, gaps filled with zeros.",
    "HAVING": "`HAVING condition` — filter groups on metric values.",
    "SINCE": "`SINCE date` — start of the reporting period (inclusive): -30d, 2025-01-01, last_month, startOfMonth(-1m).",
    "UNTIL": "`UNTIL date` — end of the reporting period (inclusive).",
    "DURING": "`DURING named_range` — the reporting period: last_month, this_year, bfcm2024, ...",
    "COMPARE": "`COMPARE TO previous_period | previous_year | date [UNTIL date], ...` — comparison columns.",
    "TO": "`COMPARE TO ...`.",
    "WITH": "`WITH TOTALS, GROUP_TOTALS, PERCENT_CHANGE, CUMULATIVE_VALUES, CURRENCY 'EUR', TIMEZONE 'Area/City'`.",
    "ORDER": "`ORDER BY column [ASC|DESC], ...` — sort the result.",
    "LIMIT": "`LIMIT n [OFFSET m]` — at most n rows (1000 by default).",
}


def _named_ranges() -> tuple[str, ...]:
    try:
        from commerceql.dates import NAMED_RANGES

        return tuple(NAMED_RANGES)
    except ImportError:  # pragma: no cover - dates is part of the core package
        return ()


def _relative_comparisons() -> tuple[str, ...]:
    try:
        from commerceql.dates import RELATIVE_COMPARISONS

        return tuple(RELATIVE_COMPARISONS)
    except ImportError:  # pragma: no cover
        return ()


def _time_grains() -> tuple[str, ...]:
    try:
        from commerceql.dates import TIME_GRAINS

        return tuple(TIME_GRAINS)
    except ImportError:  # pragma: no cover
        return ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


def _cyclical_dimensions() -> tuple[str, ...]:
    try:
        from commerceql.dates import CYCLICAL_DIMENSIONS

        return tuple(CYCLICAL_DIMENSIONS)
    except ImportError:  # pragma: no cover
        return ("hour_of_day", "day_of_week", "week_of_year", "month_of_year")


def _date_functions() -> tuple[str, ...]:
    try:
        from commerceql.dates import DATE_FUNCTIONS

        return tuple(DATE_FUNCTIONS)
    except ImportError:  # pragma: no cover
        return ()


def _chart_types() -> tuple[str, ...]:
    try:
        from commerceql.charts import SUPPORTED_CHART_TYPES

        return tuple(SUPPORTED_CHART_TYPES)
    except ImportError:  # pragma: no cover - charts may not be importable in a minimal install
        return ("line", "bar", "horizontal_bar", "stacked_bar", "area", "donut", "table", "single_metric")


def _modifiers() -> tuple[str, ...]:
    try:
        from commerceql.resolver import SUPPORTED_MODIFIERS

        return tuple(SUPPORTED_MODIFIERS)
    except ImportError:  # pragma: no cover
        return _FALLBACK_MODIFIERS


def _timezones() -> tuple[str, ...]:
    from zoneinfo import available_timezones

    return tuple(sorted(available_timezones()))


# ---------------------------------------------------------------------------------------------
# The tolerant scanner
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    """One token of CommerceQL text.

    kind: word | number | string | qident | op | punct | other. `closed` is False for a string or
    quoted name that runs to the end of the text.
    """

    kind: str
    text: str
    start: int
    end: int
    closed: bool = True

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\.?")
_NUMBER = re.compile(r"\d{4}-\d{2}-\d{2}(?:T[\d:.]*)?|\d+(?:\.\d+)?[A-Za-z]*|\.\d+")
_OPERATOR = re.compile(r"==|!=|<>|<=|>=|=|<|>|\+|-|\*|/")


def scan(text: str) -> tuple[list[Token], str | None]:
    """Split `text` into tokens, skipping whitespace and comments.

    Returns the tokens and the state at the end of the text: None, or "string", "qident",
    "line_comment", "block_comment" when the text ends inside one of those.
    """
    tokens: list[Token] = []
    i = 0
    n = len(text)
    state: str | None = None
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            if end < 0:
                return tokens, "line_comment"
            i = end + 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                return tokens, "block_comment"
            i = end + 2
            continue
        if ch in "'\"":
            j = i + 1
            closed = False
            while j < n:
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # doubled quote inside
                        j += 2
                        continue
                    closed = True
                    j += 1
                    break
                if ch == '"' and text[j] == "\n":  # a quoted name cannot span lines
                    break
                j += 1
            kind = "string" if ch == "'" else "qident"
            tokens.append(Token(kind, text[i:j], i, j, closed))
            if not closed:
                if ch == "'" or j >= n:
                    return tokens, kind
            i = j
            continue
        match = _WORD.match(text, i)
        if match:
            tokens.append(Token("word", match.group(0), i, match.end()))
            i = match.end()
            continue
        match = _NUMBER.match(text, i)
        if match:
            tokens.append(Token("number", match.group(0), i, match.end()))
            i = match.end()
            continue
        match = _OPERATOR.match(text, i)
        if match:
            tokens.append(Token("op", match.group(0), i, match.end()))
            i = match.end()
            continue
        if ch in "(),;":
            tokens.append(Token("punct", ch, i, i + 1))
            i += 1
            continue
        tokens.append(Token("other", ch, i, i + 1))
        i += 1
    return tokens, state


def _statements(tokens: Sequence[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    for token in tokens:
        if token.kind == "punct" and token.text == ";":
            out.append([])
        else:
            out[-1].append(token)
    return out


# ---------------------------------------------------------------------------------------------
# Completion
# ---------------------------------------------------------------------------------------------


@dataclass
class Completion:
    """What to offer: replace text[cursor_start:cursor_end] with one of `matches`."""

    matches: list[str]
    cursor_start: int
    cursor_end: int
    metadata: dict[str, Any] = field(default_factory=dict)
    types: list[str] = field(default_factory=list)

    def to_reply(self) -> dict[str, Any]:
        """The content of a Jupyter `complete_reply`."""
        return {
            "status": "ok",
            "matches": list(self.matches),
            "cursor_start": self.cursor_start,
            "cursor_end": self.cursor_end,
            "metadata": self.metadata,
        }


class _Offer:
    """Candidates with their kinds, deduplicated, kept in order."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str, str]] = []  # (text, type, signature)
        self._seen: set[str] = set()

    def add(self, names: Iterable[str], kind: str, signatures: dict[str, str] | None = None) -> None:
        for name in names:
            if name not in self._seen:
                self._seen.add(name)
                self.items.append((name, kind, (signatures or {}).get(name, "")))


def _tables_of_statement(statement: Sequence[Token], model: SemanticModel) -> list[str]:
    tables: list[str] = []
    for index, token in enumerate(statement):
        if token.kind == "word" and token.upper == "FROM":
            j = index + 1
            if j < len(statement) and statement[j].kind == "word" and statement[j].upper == "ORGANIZATION":
                j += 1
            while j < len(statement) and statement[j].kind == "word":
                tables.append(statement[j].text.lower())
                if j + 1 < len(statement) and statement[j + 1].text == ",":
                    j += 2
                    continue
                break
    return [t for t in tables if t in model.tables]


def _candidate_tables(
    text: str, cursor: int, model: SemanticModel, tables_hint: str | Iterable[str] | None
) -> list[Table]:
    """The tables the query at the cursor is about: its FROM, else the hint, else all tables."""
    tokens, _ = scan(text)
    # The statement holding the cursor, whole (FROM may come after the cursor).
    start_index = 0
    end_index = len(tokens)
    for index, token in enumerate(tokens):
        if token.kind == "punct" and token.text == ";":
            if token.end <= cursor:
                start_index = index + 1
            elif token.start >= cursor:
                end_index = index
                break
    names = _tables_of_statement(tokens[start_index:end_index], model)
    if not names and tables_hint:
        hinted = [tables_hint] if isinstance(tables_hint, str) else list(tables_hint)
        names = [t for t in hinted if t in model.tables]
    if not names:
        names = list(model.tables)
    return [model.tables[n] for n in names]


def _metrics(tables: Sequence[Table]) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    signatures: dict[str, str] = {}
    for table in tables:
        for metric in table.metrics.values():
            if metric.alias_of or metric.name in signatures:
                continue
            names.append(metric.name)
            signatures[metric.name] = f"{metric.type} metric: {metric.description}".strip()
    return names, signatures


def _dimensions(tables: Sequence[Table]) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    signatures: dict[str, str] = {}
    for table in tables:
        for dimension in table.dimensions.values():
            # Older spellings still resolve (with a notice) but are not offered, like alias metrics.
            if dimension.name in signatures or dimension.deprecated:
                continue
            names.append(dimension.name)
            signatures[dimension.name] = f"{dimension.type} dimension: {dimension.description}".strip()
    return names, signatures


def _keyword_case(tokens: Sequence[Token], partial: str) -> str:
    """'lower' when the user writes keywords in lower case, else 'upper'."""
    if partial:
        if partial.islower():
            return "lower"
        if partial.isupper():
            return "upper"
    for token in reversed(tokens):
        if token.kind == "word" and token.upper in _CLAUSE_WORDS:
            return "lower" if token.text.islower() else "upper"
    return "upper"


def _last_clause(tokens: Sequence[Token]) -> tuple[str | None, int]:
    """The clause the end of `tokens` is in, and the index of its keyword (-1 when none)."""
    for index in range(len(tokens) - 1, -1, -1):
        token = tokens[index]
        if token.kind != "word":
            continue
        word = token.upper
        if word == "WITH" and index > 0 and tokens[index - 1].upper in ("STARTS", "ENDS"):
            continue
        if word == "UNTIL" and _compare_before(tokens, index):
            return "COMPARE", _clause_index(tokens, "COMPARE", index)
        if word == "BY" and index > 0 and tokens[index - 1].upper in ("GROUP", "ORDER"):
            return tokens[index - 1].upper, index - 1
        if word == "BY":  # the older `BY dimension`
            return "GROUP", index
        if word in _CLAUSE_WORDS:
            return word, index
    return None, -1


def _compare_before(tokens: Sequence[Token], index: int) -> bool:
    """True when the UNTIL at `index` ends a COMPARE TO target (no other clause in between)."""
    for j in range(index - 1, -1, -1):
        word = tokens[j].upper if tokens[j].kind == "word" else ""
        if word == "COMPARE":
            return True
        if word in _CLAUSE_WORDS:
            return False
    return False


def _clause_index(tokens: Sequence[Token], keyword: str, before: int) -> int:
    for j in range(before - 1, -1, -1):
        if tokens[j].kind == "word" and tokens[j].upper == keyword:
            return j
    return -1


def _used_clauses(statement: Sequence[Token]) -> set[str]:
    used: set[str] = set()
    for index, token in enumerate(statement):
        if token.kind != "word":
            continue
        word = token.upper
        if word == "WITH" and index > 0 and statement[index - 1].upper in ("STARTS", "ENDS"):
            continue
        if word == "UNTIL" and _compare_before(statement, index):
            continue
        if word == "GROUP":
            used.add("GROUP BY")
        elif word == "ORDER":
            used.add("ORDER BY")
        elif word == "COMPARE":
            used.add("COMPARE TO")
        elif word in _CLAUSE_WORDS:
            used.add(word)
    return used


def _in_between(clause_tokens: Sequence[Token]) -> bool:
    """True when the last AND of a condition is the AND of `x BETWEEN a AND b`."""
    depth = 0
    for token in reversed(clause_tokens[:-1]):
        if token.kind == "word" and token.upper == "BETWEEN":
            return depth == 0
        if token.kind == "word" and token.upper == "AND":
            depth += 1
        if token.kind == "word" and token.upper in ("OR", "WHERE", "HAVING"):
            return False
    return False


def _in_list(clause_tokens: Sequence[Token]) -> bool:
    """True when the end of the clause is inside `IN ( ... `."""
    depth = 0
    for index in range(len(clause_tokens) - 1, -1, -1):
        token = clause_tokens[index]
        if token.text == ")":
            depth += 1
        elif token.text == "(":
            if depth == 0:
                return index > 0 and clause_tokens[index - 1].upper == "IN"
            depth -= 1
    return False


def complete(
    text: str,
    cursor: int | None = None,
    model: SemanticModel | None = None,
    tables_hint: str | Iterable[str] | None = None,
) -> Completion:
    """Completions for the word at `cursor` (default: the end of `text`).

    `tables_hint` names the table(s) to assume when the query at the cursor has no FROM yet (the
    kernel passes the table of the previous query). Matching is case-insensitive; names that start
    with the typed text come first, then names that merely contain it.
    """
    if model is None:
        from commerceql.model.semantic import builtin_model

        model = builtin_model()
    if cursor is None:
        cursor = len(text)
    cursor = max(0, min(cursor, len(text)))
    before = text[:cursor]
    tokens, state = scan(before)
    empty = Completion([], cursor, cursor, {"_jupyter_types_experimental": []})

    if state in ("line_comment", "block_comment", "qident"):
        return empty
    if state == "string":
        return _complete_in_string(tokens, cursor, empty)

    partial = ""
    start = cursor
    if tokens and tokens[-1].end == cursor and tokens[-1].kind in ("word", "number", "string", "qident", "other"):
        last = tokens[-1]
        if last.kind != "word":
            return empty  # in the middle of a number, a date, a value or a quoted name
        partial = last.text
        start = last.start
        tokens = tokens[:-1]
    end = cursor
    word_after = _WORD.match(text, cursor)
    if partial and word_after:
        end = word_after.end()

    statement = _statements(tokens)[-1]
    tables = _candidate_tables(text, cursor, model, tables_hint)
    offer = _candidates(statement, tables, model, partial, text, cursor)
    case = _keyword_case(statement, partial)

    matches: list[str] = []
    types: list[str] = []
    signatures: list[str] = []
    lowered = partial.lower()
    prefix: list[tuple[str, str, str]] = []
    contains: list[tuple[str, str, str]] = []
    for name, kind, signature in offer.items:
        shown = name
        if kind == "keyword":
            shown = name.lower() if case == "lower" else name
        candidate = shown.lower()
        if candidate.startswith(lowered):
            prefix.append((shown, kind, signature))
        elif lowered and len(lowered) >= 2 and lowered in candidate and kind != "keyword":
            contains.append((shown, kind, signature))
    for shown, kind, signature in prefix + contains:
        matches.append(shown)
        types.append(kind)
        signatures.append(signature)
    # bfcm2000 ... bfcm2100: offer them only once the user starts typing `bf`.
    if not lowered.startswith("bf"):
        kept = [i for i, m in enumerate(matches) if not re.fullmatch(r"bfcm\d{4}", m)]
        matches = [matches[i] for i in kept]
        types = [types[i] for i in kept]
        signatures = [signatures[i] for i in kept]
    experimental = [
        {"start": start, "end": end, "text": m, "type": t, "signature": s}
        for m, t, s in zip(matches, types, signatures, strict=True)
    ]
    return Completion(matches, start, end, {"_jupyter_types_experimental": experimental}, types)


def _complete_in_string(tokens: Sequence[Token], cursor: int, empty: Completion) -> Completion:
    """Inside an unterminated 'string': time zones after TIMEZONE, currencies after CURRENCY."""
    last = tokens[-1]
    previous = tokens[-2].upper if len(tokens) >= 2 and tokens[-2].kind == "word" else ""
    typed = last.text[1:]
    start = last.start + 1
    if previous == "TIMEZONE":
        names = [z for z in _timezones() if z.lower().startswith(typed.lower())]
        if not typed:
            names = [z for z in names if "/" in z and z.split("/")[0] in {"America", "Europe", "Asia", "Australia"}] + [
                "UTC"
            ]
        kind = "time zone"
    elif previous == "CURRENCY":
        names = [c for c in _CURRENCIES if c.lower().startswith(typed.lower())]
        kind = "currency"
    else:
        return empty
    matches = [f"{n}'" for n in names]
    experimental = [{"start": start, "end": cursor, "text": m, "type": kind, "signature": ""} for m in matches]
    return Completion(matches, start, cursor, {"_jupyter_types_experimental": experimental}, [kind] * len(matches))


def _candidates(
    statement: Sequence[Token],
    tables: Sequence[Table],
    model: SemanticModel,
    partial: str,
    text: str,
    cursor: int,
) -> _Offer:
    offer = _Offer()
    clause, clause_at = _last_clause(statement)
    last = statement[-1] if statement else None
    last_word = last.upper if last is not None and last.kind == "word" else None
    last_text = last.text if last is not None else None
    clause_tokens = list(statement[clause_at + 1 :]) if clause_at >= 0 else []

    full_statement = _full_statement(text, cursor)
    used = _used_clauses(full_statement)

    def clauses(*extra: str) -> None:
        offer.add(extra, "keyword")
        offer.add([k for k in CLAUSE_KEYWORDS if k not in used or k == "UNTIL"], "keyword")

    metric_names, metric_sigs = _metrics(tables)
    dimension_names, dimension_sigs = _dimensions(tables)
    grains = _time_grains()
    cyclical = _cyclical_dimensions()

    def dimensions_and_time() -> None:
        offer.add(dimension_names, "dimension", dimension_sigs)
        offer.add(grains, "time grain")
        offer.add(cyclical, "time dimension")

    starts_operand = last is None or last_text in ("(", ",") or (last.kind == "op" and last_text in _OPERATORS)

    if clause is None:
        if last is None:
            offer.add(["FROM"], "keyword")
        clauses()
        return offer

    if clause == "FROM":
        if last_word in ("FROM", "ORGANIZATION") or last_text == ",":
            offer.add(model.tables, "table", {n: t.description for n, t in model.tables.items()})
        else:
            clauses()
        return offer

    if clause == "SHOW":
        if last_word == "SHOW" or starts_operand:
            offer.add(metric_names, "metric", metric_sigs)
            dimensions_and_time()
            from commerceql.calculations import FUNCTION_SIGNATURES, SHOW_FUNCTIONS

            offer.add(SHOW_FUNCTIONS, "function", FUNCTION_SIGNATURES)
        elif last_word == "AS":
            pass
        else:
            clauses("AS")
        return offer

    if clause == "VISUALIZE":
        if last_word == "TYPE":
            offer.add(_chart_types(), "chart type")
        elif last_word in ("MAX", "LIMIT", "OFFSET", "ANNOTATE"):
            pass
        elif last_word == "VISUALIZE" or starts_operand:
            offer.add(metric_names, "metric", metric_sigs)
        else:
            after_type = len(clause_tokens) >= 2 and clause_tokens[-2].upper == "TYPE"
            clauses(*(() if after_type else ("TYPE",)), "MAX")
        return offer

    if clause in ("GROUP", "ORDER"):
        has_by = any(t.upper == "BY" for t in clause_tokens) or statement[clause_at].upper == "BY"
        if not has_by:
            offer.add(["BY"], "keyword")
            return offer
        if clause == "GROUP":
            if last_word == "TOP":
                return offer  # a number comes next
            if last_word == "ONLY":
                offer.add(["TOP"], "keyword")
                return offer
            after_top = len(statement) >= 2 and last is not None and last.kind == "number" and statement[-2].upper == "TOP"
            if last_word == "BY" or last_text == "," or after_top:
                dimensions_and_time()
                if not after_top:
                    offer.add(["TOP", "ONLY TOP"], "keyword")
                    from commerceql.calculations import FUNCTION_SIGNATURES

                    offer.add(["bucket"], "function", FUNCTION_SIGNATURES)
                return offer
            in_top = any(t.upper == "TOP" for t in clause_tokens[-4:])
            clauses(*(("OVERALL",) if in_top else ("ALL",)))
            return offer
        # ORDER BY
        if last_word == "BY" or last_text == ",":
            offer.add(metric_names, "metric", metric_sigs)
            dimensions_and_time()
        else:
            clauses("ASC", "DESC")
        return offer

    if clause in ("WHERE", "HAVING"):
        return _condition_candidates(offer, clause, clause_tokens, last, clauses, metric_names, metric_sigs,
                                     dimensions_and_time)

    if clause == "TIMESERIES":
        if last_word == "TIMESERIES":
            offer.add(grains, "time grain")
            offer.add(cyclical, "time dimension")
        else:
            clauses()
        return offer

    if clause in ("SINCE", "UNTIL", "DURING"):
        if last_word == clause:
            if clause != "DURING":
                offer.add(["now"], "date")
            offer.add(_named_ranges(), "date range")
            if clause != "DURING":
                offer.add(_date_functions(), "date function")
        else:
            clauses()
        return offer

    if clause == "COMPARE":
        has_to = any(t.upper == "TO" for t in clause_tokens)
        if not has_to:
            offer.add(["TO"], "keyword")
            return offer
        if last_word == "TO" or last_text == ",":
            offer.add(_relative_comparisons(), "comparison")
            offer.add(_named_ranges(), "date range")
            offer.add(_date_functions(), "date function")
        elif last_word == "UNTIL":
            offer.add(["now"], "date")
            offer.add(_named_ranges(), "date range")
            offer.add(_date_functions(), "date function")
        else:
            clauses()
        return offer

    if clause == "WITH":
        if last_word == "WITH" or last_text in (",", "("):
            offer.add(_modifiers(), "modifier")
        elif last_word == "CURRENCY":
            offer.add([f"'{c}'" for c in _CURRENCIES], "currency")
        elif last_word == "TIMEZONE":
            offer.add(["'UTC'", "'America/New_York'", "'Europe/London'"], "time zone")
        else:
            clauses()
        return offer

    if clause == "LIMIT":
        if last is not None and last.kind == "number":
            clauses("OFFSET")
        return offer

    clauses()
    return offer


def _condition_candidates(offer, clause, clause_tokens, last, clauses, metric_names, metric_sigs, dimensions_and_time):  # type: ignore[no-untyped-def]
    last_word = last.upper if last is not None and last.kind == "word" else None
    last_text = last.text if last is not None else None

    def operands() -> None:
        if clause == "HAVING":
            offer.add(metric_names, "metric", metric_sigs)
        else:
            dimensions_and_time()

    if last_word in ("WHERE", "HAVING", "OR", "NOT") or (last_word == "AND" and not _in_between(clause_tokens)):
        operands()
        if last_word != "NOT":
            offer.add(["NOT"], "keyword")
        return offer
    if last_text == "(" and not _in_list(clause_tokens):
        operands()
        return offer
    if last_word == "IS":
        offer.add(["NULL", "NOT NULL", "TRUE", "FALSE"], "keyword")
        return offer
    if last_word == "STARTS" or last_word == "ENDS":
        offer.add(["WITH"], "keyword")
        return offer
    value_position = (
        (last is not None and last.kind == "op")
        or last_word in ("IN", "BETWEEN", "CONTAINS", "WITH", "AND")
        or (last_text in ("(", ",") and _in_list(clause_tokens))
    )
    if value_position:
        offer.add(["TRUE", "FALSE", "NULL"], "keyword")
        return offer
    if last is not None and last.kind == "word" and last_word not in ("TRUE", "FALSE", "NULL"):
        offer.add(_PREDICATE_KEYWORDS, "keyword")
    offer.add(_LOGICAL_KEYWORDS, "keyword")
    clauses()
    return offer


def _full_statement(text: str, cursor: int) -> list[Token]:
    tokens, _ = scan(text)
    current: list[Token] = []
    for token in tokens:
        if token.kind == "punct" and token.text == ";":
            if token.start >= cursor:
                return current
            current = []
            continue
        current.append(token)
    return current


# ---------------------------------------------------------------------------------------------
# Inspection
# ---------------------------------------------------------------------------------------------


def _word_at(text: str, cursor: int) -> tuple[str, int, int] | None:
    cursor = max(0, min(cursor, len(text)))
    tokens, _ = scan(text)
    for token in tokens:
        if token.kind == "word" and token.start <= cursor <= token.end:
            return token.text.rstrip("."), token.start, token.end
    # the word just before the cursor (after a space or an opening parenthesis)
    for token in reversed(tokens):
        if token.end <= cursor and token.kind == "word":
            if text[token.end : cursor].strip() in ("", "("):
                return token.text.rstrip("."), token.start, token.end
            break
    return None


def _metric_doc(table: Table, metric: Metric) -> tuple[str, str]:
    plain: list[str] = []
    markdown: list[str] = []
    target = metric
    if metric.alias_of:
        resolved = table.metric(metric.name)
        note = f"older name of `{metric.alias_of}`"
        if metric.deprecated:
            note += f" ({metric.deprecated})"
        plain.append(f"{metric.name}: {note}")
        markdown.append(f"**{metric.name}** — {note}\n")
        if resolved is None:
            return "\n".join(plain), "\n".join(markdown)
        target = resolved
    flags = [target.type] + (["additive"] if target.additive else [])
    plain.append(f"{target.name} — metric of table {table.name} ({', '.join(flags)})")
    markdown.append(f"**{target.name}** · metric of `{table.name}` · {' · '.join(flags)}\n")
    if target.description:
        plain.append(target.description)
        markdown.append(target.description + "\n")
    if target.formula:
        plain.append(f"Formula: {target.formula}")
        markdown.append(f"**Formula:** {target.formula}\n")
    if target.deprecated and not metric.alias_of:
        plain.append(f"Deprecated: {target.deprecated}")
        markdown.append(f"**Deprecated:** {target.deprecated}\n")
    try:
        sql = table.metric_sql(target.name)
    except Exception:  # a broken user model must not break inspection
        sql = target.sql
    plain.append(f"SQL: {sql}")
    markdown.append(f"**SQL:**\n\n```sql\n{sql}\n```")
    return "\n".join(plain), "\n".join(markdown)


def _dimension_doc(table: Table, dimension: Dimension) -> tuple[str, str]:
    plain = [f"{dimension.name} — dimension of table {table.name} ({dimension.type})"]
    markdown = [f"**{dimension.name}** · dimension of `{table.name}` · {dimension.type}\n"]
    if dimension.description:
        plain.append(dimension.description)
        markdown.append(dimension.description + "\n")
    plain.append(f"SQL: {dimension.sql}")
    markdown.append(f"**SQL:**\n\n```sql\n{dimension.sql}\n```")
    return "\n".join(plain), "\n".join(markdown)


def inspect(
    text: str,
    cursor: int | None = None,
    model: SemanticModel | None = None,
    tables_hint: str | Iterable[str] | None = None,
) -> dict[str, str] | None:
    """Documentation of the name at `cursor`: a {mime: text} bundle (text/plain, text/markdown), or None.

    Metrics show their type, description, formula and SQL; dimensions their type, description and
    SQL; tables their description and fields; keywords, time grains, date ranges, comparisons,
    chart types and WITH modifiers a short explanation.
    """
    if model is None:
        from commerceql.model.semantic import builtin_model

        model = builtin_model()
    if cursor is None:
        cursor = len(text)
    found = _word_at(text, cursor)
    if found is None:
        return None
    word = found[0]
    lowered = word.lower()
    tables = _candidate_tables(text, cursor, model, tables_hint)
    for table in tables:
        metric = table.metrics.get(lowered)
        if metric is not None:
            plain, markdown = _metric_doc(table, metric)
            return {"text/plain": plain, "text/markdown": markdown}
    for table in tables:
        dimension = table.dimensions.get(lowered)
        if dimension is not None:
            plain, markdown = _dimension_doc(table, dimension)
            return {"text/plain": plain, "text/markdown": markdown}
    table = model.tables.get(lowered)
    if table is not None:
        metrics = ", ".join(m for m, v in table.metrics.items() if not v.alias_of)
        dimensions = ", ".join(table.dimensions)
        plain = f"{table.name} — table\n{table.description}\nMetrics: {metrics}\nDimensions: {dimensions}"
        markdown = (
            f"**{table.name}** · table\n\n{table.description}\n\n**Metrics:** {metrics}\n\n**Dimensions:** {dimensions}"
        )
        return {"text/plain": plain, "text/markdown": markdown}
    explanation = _vocabulary_doc(word)
    if explanation is not None:
        return {"text/plain": explanation.replace("`", ""), "text/markdown": explanation}
    return None


def _vocabulary_doc(word: str) -> str | None:
    lowered = word.lower()
    if lowered in _time_grains():
        return f"`{lowered}` — time grain: one row per {lowered} (GROUP BY {lowered} or TIMESERIES {lowered})."
    if lowered in _cyclical_dimensions():
        return f"`{lowered}` — cyclical time dimension: rows for each {lowered.replace('_', ' ')}, across the whole period."
    if lowered in _relative_comparisons():
        return f"`{lowered}` — COMPARE TO target: the same metrics over the {lowered.replace('_', ' ')}."
    if lowered == "now":
        return "`now` — the current instant in the store's clock and time zone."
    if lowered in _named_ranges():
        if lowered.startswith("bfcm"):
            return f"`{lowered}` — named date range: Black Friday to Cyber Monday {lowered[4:]}."
        return f"`{lowered}` — named date range: {lowered.replace('_', ' ')} in the store's time zone."
    if word in _date_functions() or word.lower() in {f.lower() for f in _date_functions()}:
        return f"`{word}(offset)` — date function: the {word[:5] == 'start' and 'start' or 'end'} of a period, e.g. `{word}(-1m)`."
    if lowered in _chart_types():
        return f"`{lowered}` — chart type for `VISUALIZE metric TYPE {lowered}`."
    if word.upper() in _modifiers():
        return f"`{word.upper()}` — WITH modifier (`WITH {word.upper()}`)."
    if word.upper() in _KEYWORD_HELP:
        return _KEYWORD_HELP[word.upper()]
    return None


# ---------------------------------------------------------------------------------------------
# is_complete
# ---------------------------------------------------------------------------------------------

INDENT = "  "


def _strip_magic_lines(text: str) -> str:
    """The text with `%magic` lines blanked out (kept as empty lines, so positions stay meaningful)."""
    lines = text.split("\n")
    return "\n".join("" if line.lstrip().startswith("%") else line for line in lines)


def is_complete(text: str) -> tuple[str, str]:
    """('complete' | 'incomplete' | 'invalid', indent) for a Jupyter `is_complete_request`.

    'complete' when the text parses or ends with `;`; 'incomplete' when it ends mid-clause (a
    trailing keyword, comma or operator, an open parenthesis, an unterminated string, quoted name
    or block comment, a query that has no SHOW yet); 'invalid' for text that cannot become valid
    by adding more. The indent for 'incomplete' is two spaces.
    """
    query_text = _strip_magic_lines(text)
    if not query_text.strip():
        return "complete", ""
    tokens, state = scan(query_text)
    if state in ("string", "qident", "block_comment"):
        return "incomplete", INDENT
    depth = 0
    for token in tokens:
        if token.text == "(" and token.kind == "punct":
            depth += 1
        elif token.text == ")" and token.kind == "punct":
            depth -= 1
            if depth < 0:
                return "invalid", ""
        elif token.text == ";" and token.kind == "punct":
            if depth > 0:
                return "invalid", ""
            depth = 0
    if any(t.kind == "other" for t in tokens):
        return "invalid", ""
    if depth > 0:
        return "incomplete", INDENT
    if not tokens:
        return "complete", ""
    last = tokens[-1]
    if last.kind == "punct" and last.text == ";":
        return "complete", ""
    try:
        from commerceql.parser import parse_script
    except ImportError:  # pragma: no cover - the parser is part of the core package
        if (last.kind == "word" and last.upper in _CONTINUATION_WORDS) or last.text == "," or last.kind == "op":
            return "incomplete", INDENT
        return "complete", ""
    from commerceql.errors import CommerceQLError

    try:
        parse_script(query_text)
    except CommerceQLError as error:
        message = error.message
        if message.startswith(("the query ends too early", "unterminated", "the query has nothing to show")):
            return "incomplete", INDENT
        return "invalid", ""
    except Exception:  # never let a parser bug reach the frontend
        return "invalid", ""
    return "complete", ""
