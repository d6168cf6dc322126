"""The one error family every stage raises for bad input.

A `CommerceQLError` knows where in the query it happened (line, column, the offending excerpt)
and renders itself the same way on every surface: the CLI's stderr, the kernel's red error
output, the IPython magic and the Python API's exception message.

    unknown metric `net_sale` in table `sales`
      --> line 2, column 8
       |
     2 |   SHOW net_sale, orders
       |        ^^^^^^^^
      = hint: did you mean `net_sales`?
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from commerceql.ast import Span


class CommerceQLError(Exception):
    """Base class: a problem with the user's query or data, explained in plain words."""

    kind = "error"

    def __init__(
        self,
        message: str,
        *,
        span: Span | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.source = source
        self.hint = hint

    @property
    def line(self) -> int | None:
        return self.span.line if self.span else None

    @property
    def column(self) -> int | None:
        return self.span.column if self.span else None

    def with_source(self, source: str) -> CommerceQLError:
        """Attach the query text if a stage raised the error without it."""
        if self.source is None:
            self.source = source
        return self

    def render(self) -> str:
        """The error as a user reads it: message, position, the line with a caret, and the hint."""
        lines = [f"{self.kind}: {self.message}"]
        if self.span is not None and self.source is not None:
            source_lines = self.source.splitlines() or [""]
            line_number = min(max(self.span.line, 1), len(source_lines))
            text = source_lines[line_number - 1]
            start = max(self.span.column, 1)
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            else:
                width = max(len(text) - start + 1, 1)
            gutter = " " * len(str(line_number))
            column = start
            if len(text) > _MAX_SHOWN_LINE:
                # Show a window of a very long line around the caret, not megabytes of it.
                left = max(0, start - 1 - _MAX_SHOWN_LINE // 2)
                right = min(len(text), left + _MAX_SHOWN_LINE)
                prefix = "…" if left else ""
                text = prefix + text[left:right] + ("…" if right < len(text) else "")
                start = start - left + len(prefix)
                width = max(1, min(width, len(text) - start + 1))
            lines.append(f"{gutter}--> line {line_number}, column {column}")
            lines.append(f"{gutter} |")
            lines.append(f"{line_number} | {text}")
            lines.append(f"{gutter} | {' ' * (start - 1)}{'^' * width}")
        elif self.span is not None:
            lines.append(f"  --> line {self.span.line}, column {self.span.column}")
        if self.hint:
            lines.append(f"  = hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class CommerceQLSyntaxError(CommerceQLError):
    """The text does not follow the grammar (unexpected token, unterminated string, ...)."""

    kind = "syntax error"


class CommerceQLNameError(CommerceQLError):
    """A table, metric, dimension, alias, chart type or named range that does not exist."""

    kind = "name error"


class CommerceQLSemanticError(CommerceQLError):
    """A well-formed query that cannot be answered as written (ungrouped dimension in SHOW, ...)."""

    kind = "query error"


class CommerceQLDataError(CommerceQLError):
    """A problem with the store or imported files rather than with the query text."""

    kind = "data error"


class CommerceQLExecutionError(CommerceQLError):
    """The database failed or was interrupted while running a compiled query."""

    kind = "execution error"


_MAX_SHOWN_LINE = 160
# No model name is this long; comparing a huge name with every candidate would take seconds.
_MAX_SUGGESTED_NAME = 100


def closest_names(name: str, candidates: Iterable[str], limit: int = 3) -> list[str]:
    """Names from `candidates` that look like `name`, best first (for "did you mean" hints).

    Only names nearly as close as the best one are kept, so a clear winner comes alone.
    """
    if len(name) > _MAX_SUGGESTED_NAME:
        return []
    pool = sorted(set(candidates))
    lowered = name.lower()
    scored = sorted(
        ((difflib.SequenceMatcher(None, lowered, c.lower()).ratio(), c) for c in pool),
        key=lambda pair: (-pair[0], pair[1]),
    )
    matches = [c for score, c in scored if score >= 0.6 and score >= scored[0][0] - 0.05][:limit] if scored else []
    if not matches:
        matches = [c for c in pool if lowered in c.lower() or c.lower() in lowered][:limit]
    return matches


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A hint such as "did you mean `net_sales`?", or None when nothing is close."""
    matches = closest_names(name, candidates)
    if not matches:
        return None
    if len(matches) == 1:
        return f"did you mean `{matches[0]}`?"
    quoted = ", ".join(f"`{m}`" for m in matches)
    return f"did you mean one of {quoted}?"
