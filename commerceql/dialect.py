"""SQL fragments that depend on the engine, and the model's named macros.

The compiler writes engine-specific SQL only through a `Dialect`: a small table of named
fragments, each with the reason it exists. Today only DuckDB is implemented; the fragments here
are the ones the time-zone handling needs, so that no SQL depends on the session's time zone.

Model macros: SQL in the semantic model is engine-neutral except for a few named macros, which
the compiler expands with the query's time zone:

    local_date(ts)        the calendar date of the UTC instant `ts` in the store's time zone
    local_timestamp(ts)   the local wall-clock time of the UTC instant `ts` (a naive timestamp)

`CAST(ts AS DATE)` on a TIMESTAMPTZ would use the engine session's time zone, which follows the
machine's `TZ` unless pinned: the model uses `local_date(ts)` instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass(frozen=True)
class Dialect:
    name: str
    # Local wall-clock time (naive) of a UTC instant: every local bucket starts from this.
    local_timestamp: Callable[[str, str], str]
    # The instant (TIMESTAMPTZ) of a naive local wall-clock time; inverse of local_timestamp.
    instant_of_local: Callable[[str, str], str]
    # Seconds since the epoch of an instant: differences of instants that ignore the session zone.
    epoch_seconds: Callable[[str], str]

    def local_date(self, timezone: str, timestamp_sql: str) -> str:
        return f"CAST({self.local_timestamp(timezone, timestamp_sql)} AS DATE)"

    def expand_macros(self, sql: str, timezone: str) -> str:
        """`sql` with every model macro (`local_date(...)`, `local_timestamp(...)`) expanded."""
        if "local_" not in sql:  # the common case: nothing to do, and no scan
            return sql
        for name, render in (
            ("local_date", self.local_date),
            ("local_timestamp", self.local_timestamp),
        ):
            sql = _expand_calls(sql, name, lambda argument, render=render: render(timezone, argument))
        return sql


def _expand_calls(sql: str, name: str, render: Callable[[str], str]) -> str:
    """Replace every `name(arg)` call outside string literals by `render(arg)`."""
    out: list[str] = []
    i, n = 0, len(sql)
    lowered = sql.lower()
    while i < n:
        char = sql[i]
        if char in "'\"":  # copy a quoted string or identifier verbatim
            j = i + 1
            while j < n:
                if sql[j] == char:
                    if j + 1 < n and sql[j + 1] == char:
                        j += 2
                        continue
                    break
                j += 1
            out.append(sql[i : j + 1])
            i = j + 1
            continue
        if (
            lowered.startswith(name, i)
            and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] == "_"))
            and lowered[i + len(name) :].lstrip().startswith("(")
        ):
            start = lowered.index("(", i + len(name)) + 1
            depth, j, quote = 1, start, None
            while j < n and depth:
                c = sql[j]
                if quote:
                    if c == quote:
                        quote = None
                elif c in "'\"":
                    quote = c
                elif c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                j += 1
            argument = _expand_calls(sql[start : j - 1], name, render)
            out.append(render(argument.strip()))
            i = j
            continue
        out.append(char)
        i += 1
    return "".join(out)


DUCKDB = Dialect(
    name="duckdb",
    # timezone(zone, TIMESTAMPTZ) gives the wall-clock time there, whatever the session zone.
    local_timestamp=lambda tz, ts: f"timezone({quote_literal(tz)}, {ts})",
    # timezone(zone, TIMESTAMP) reads the naive time as wall-clock time in that zone.
    instant_of_local=lambda tz, ts: f"timezone({quote_literal(tz)}, {ts})",
    epoch_seconds=lambda ts: f"epoch({ts})",
)
