"""SQL fragments that differ between engines, one small named method each, with its reason.

The compiler writes every engine-specific piece of SQL through a `Dialect`; everything else it
writes is the SQL both engines read the same way (SELECT, CTEs, joins, GROUPING SETS, CASE,
COALESCE, NULLIF, window functions, `FILTER (WHERE ...)`, `IS NOT DISTINCT FROM`, QUALIFY).
`DuckDBDialect` is the reference; `SparkDialect` overrides what Spark SQL spells differently.
Adding an engine means subclassing `Dialect`, passing the fragment tests in
`tests/test_dialect.py` and the engine corpus in `tests/test_engines.py` (see docs/engines.md).

Every instant is a UTC instant: DuckDB's TIMESTAMPTZ, Spark's TIMESTAMP with the session pinned
to UTC. Local wall-clock time is always an explicit conversion (`local_timestamp`), so no
result depends on the session's or the machine's time zone.

Model macros: SQL in the semantic model is engine-neutral except for named macros, which the
compiler expands with the query's time zone:

    local_date(ts)                    the calendar date of the UTC instant `ts` in the store's time zone
    local_timestamp(ts)               the local wall-clock time of the UTC instant `ts`
    seconds_between(earlier, later)   seconds from one instant to another (fractional; negative
                                      when `later` is earlier)
    utc_instant('YYYY-MM-DD[ HH:MM[:SS]]')   a fixed UTC instant, such as a calibration cut-off

(`CAST(ts AS DATE)` would use the session's time zone instead; DuckDB's `epoch()` and
`TIMESTAMPTZ '...'` literal are not Spark's.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

_UNITS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")


def quote_literal(value: str) -> str:
    """A string literal: both engines read '' as one quote inside single quotes."""
    return "'" + value.replace("'", "''") + "'"


class Dialect:
    """DuckDB's SQL: the reference dialect (the golden SQL files pin its exact text)."""

    name = "duckdb"

    def quote_identifier(self, name: str) -> str:
        """Identifiers: double quotes in DuckDB (standard SQL)."""
        return '"' + name.replace('"', '""') + '"'

    def parameter(self, name: str) -> str:
        """A bound parameter's marker: DuckDB's named `$name`."""
        return f"${name}"

    # -- types --------------------------------------------------------------------------------
    text_type = "VARCHAR"  # Spark needs STRING: its VARCHAR requires a length
    instant_type = "TIMESTAMPTZ"  # the type of a UTC instant
    wall_type = "TIMESTAMP"  # a naive local wall-clock time

    # -- time zones -------------------------------------------------------------------------
    def local_timestamp(self, timezone: str, instant: str) -> str:
        """Wall-clock time in `timezone` of a UTC instant: `timezone(zone, TIMESTAMPTZ)`."""
        return f"timezone({quote_literal(timezone)}, {instant})"

    def instant_of_local(self, timezone: str, wall: str) -> str:
        """The UTC instant of a wall-clock time in `timezone`: `timezone(zone, TIMESTAMP)`."""
        return f"timezone({quote_literal(timezone)}, {wall})"

    def local_label(self, timezone: str, instant: str) -> str:
        """A sub-day bucket's output label: its wall-clock time, as a naive timestamp."""
        return self.local_timestamp(timezone, instant)

    def local_date(self, timezone: str, instant: str) -> str:
        return f"CAST({self.local_timestamp(timezone, instant)} AS DATE)"

    def epoch_seconds(self, instant: str) -> str:
        """Seconds since 1970 of an instant, for differences that ignore any session zone."""
        return f"epoch({instant})"

    # -- calendar arithmetic -------------------------------------------------------------------
    def add_days(self, date: str, days: str) -> str:
        return f"{date} + to_days({days})"

    def add_months(self, value: str, months: str) -> str:
        """Calendar months; the day is clamped to the month's end (Feb 29 + 12 months = Feb 28)."""
        return f"{value} + to_months({months})"

    def add_months_to_wall(self, wall: str, months: str) -> str:
        """A wall-clock timestamp moved by calendar months, keeping its time of day."""
        return f"{wall} + to_months({months})"

    def add_instant(self, instant: str, unit: str, amount: str) -> str:
        """An instant moved by a fixed-length unit (second, minute, hour)."""
        return f"({instant} + to_{unit}s({amount}))"

    def diff(self, unit: str, start: str, end: str) -> str:
        """Whole `unit`s (day, month, year) from date `start` to date `end`."""
        return f"CAST(date_diff('{unit}', {start}, {end}) AS INTEGER)"

    def day_of_week(self, wall: str) -> str:
        """Monday = 0 ... Sunday = 6 (ShopifyQL's day_of_week): ISO day of week minus one."""
        return f"(isodow({wall}) - 1)"

    # -- grouping and ranking ---------------------------------------------------------------
    def grouping_level(self, expressions: list[str]) -> str:
        """The GROUPING SETS level bitmask (first expression = most significant bit)."""
        return f"GROUPING({', '.join(expressions)})"

    def materialized(self) -> str:
        """CTE hint: DuckDB would otherwise inline (and re-scan) a CTE read several times."""
        return "MATERIALIZED "

    def raise_error(self, message: str) -> str:
        """Fail the statement with `message` when evaluated (guards inside the SQL)."""
        return f"error({quote_literal(message)})"

    def list_literal(self, items: list[str]) -> str:
        """A list (array) of literals: `[a, b]` in DuckDB."""
        return f"[{', '.join(items)}]"

    def array_rows(self, array: str) -> str:
        """Rows (`__i` from 0, `__value`) of a list value, such as a bound list parameter."""
        return f"SELECT __i, {array}[__i + 1] AS __value FROM range(len({array})) AS __items(__i)"

    def raise_error_of(self, message_sql: str) -> str:
        """Fail the statement with the text `message_sql` computes (a row's value in the message)."""
        return f"error({message_sql})"

    # -- spines ------------------------------------------------------------------------------
    def integer_spine(self, low: int, high: int) -> str:
        """Rows `__spine` = low .. high (both included)."""
        return f"SELECT range AS __spine FROM range({int(low)}, {int(high) + 1})"

    def date_spine(self, start: str, end: str, step: str) -> str:
        """Dates from `start` (a wall-clock timestamp) up to `end` (excluded) every `step`."""
        return (
            f"SELECT CAST(range AS DATE) AS __spine "
            f"FROM range(CAST({start} AS {self.wall_type}), CAST({end} AS {self.wall_type}), {step})"
        )

    def instant_spine(self, start: str, end: str, step: str) -> str:
        """Instants from `start` up to `end` (excluded) every `step` (a DST day has 23 or 25 hours)."""
        return (
            f"SELECT range AS __spine "
            f"FROM range(CAST({start} AS {self.instant_type}), CAST({end} AS {self.instant_type}), {step})"
        )

    # -- text and lists ----------------------------------------------------------------------
    def string_test(self, kind: str, text: str, needle: str) -> str:
        """starts_with / ends_with / contains of two texts."""
        return f"{kind}({text}, {needle})"

    def list_contains_ignoring_case(self, items: str, needle: str) -> str:
        lowered = f"list_transform({items}, lambda item: lower(CAST(item AS {self.text_type})))"
        return f"list_contains({lowered}, lower(CAST({needle} AS {self.text_type})))"

    # -- model macros ------------------------------------------------------------------------
    def expand_macros(self, sql: str, timezone: str) -> str:
        """`sql` with every model macro (`local_date(...)`, `seconds_between(...)` ...) expanded.

        Raises MacroArgumentError when a macro's arguments do not fit it (the model loader turns
        that into a model error naming the file and field)."""
        if QUANTILE_MACRO in sql:
            sql = expand_calls(sql, QUANTILE_MACRO, self._quantile_call)
        lowered = sql.lower()
        if "utc_instant" in lowered:
            sql = expand_calls(sql, "utc_instant", self._utc_instant_call)
        if "seconds_between" in lowered:
            sql = expand_calls(sql, "seconds_between", self._seconds_between_call)
        if "local_" not in lowered:  # the common case: nothing to do, and no scan
            return sql
        for name, render in (("local_date", self.local_date), ("local_timestamp", self.local_timestamp)):
            sql = expand_calls(sql, name, lambda argument, render=render: render(timezone, argument))
        return sql

    def _seconds_between_call(self, arguments: str) -> str:
        parts = split_arguments(arguments)
        if len(parts) != 2 or not all(parts):
            raise MacroArgumentError("seconds_between(earlier, later) takes two instants")
        earlier, later = parts
        return self.seconds_between(earlier, later)

    def seconds_between(self, earlier: str, later: str) -> str:
        """Seconds from `earlier` to `later` (UTC instants): a difference of epoch seconds, which
        no session zone or daylight-saving change can bend."""
        return f"({self.epoch_seconds(later)} - {self.epoch_seconds(earlier)})"

    def _utc_instant_call(self, argument: str) -> str:
        return self.utc_instant(parse_utc_instant_argument(argument))

    def utc_instant(self, instant: dt.datetime) -> str:
        """A fixed UTC instant: DuckDB's TIMESTAMPTZ literal with an explicit +00 offset."""
        return f"TIMESTAMPTZ '{instant:%Y-%m-%d %H:%M:%S}+00'"

    def _quantile_call(self, argument: str) -> str:
        value, _, fraction = argument.rpartition(",")
        return self.quantile(value.strip(), fraction.strip())

    def quantile(self, value: str, fraction: str) -> str:
        """The exact `fraction` quantile of `value`, interpolating between the two nearest values
        (median(), percentile()): DuckDB's quantile_cont; Spark's exact `percentile` is the same
        definition (percentile_approx would be an estimate)."""
        return f"quantile_cont({value}, {fraction})"


# `quantile_of(value, fraction)` in model SQL (the ad-hoc median() and percentile() of a dimension).
QUANTILE_MACRO = "quantile_of"


class DuckDBDialect(Dialect):
    pass


class SparkDialect(Dialect):
    """Spark SQL (3.4+; tested on 4.x) with `spark.sql.session.timeZone` = UTC."""

    name = "spark"
    text_type = "STRING"
    instant_type = "TIMESTAMP"  # Spark's TIMESTAMP is an instant, shown in the session zone (UTC)
    wall_type = "TIMESTAMP"  # a wall-clock time is held as the instant whose UTC reading it is

    def quote_identifier(self, name: str) -> str:
        """Spark reads "x" as a string literal: identifiers take backticks."""
        return "`" + name.replace("`", "``") + "`"

    def parameter(self, name: str) -> str:
        """Spark's named parameter marker (`spark.sql(text, args={...})`)."""
        return f":{name}"

    def local_timestamp(self, timezone: str, instant: str) -> str:
        return f"from_utc_timestamp({instant}, {quote_literal(timezone)})"

    def instant_of_local(self, timezone: str, wall: str) -> str:
        return f"to_utc_timestamp({wall}, {quote_literal(timezone)})"

    def local_label(self, timezone: str, instant: str) -> str:
        """TIMESTAMP_NTZ, so the label reaches Arrow as a naive wall-clock time like DuckDB's."""
        return f"CAST({self.local_timestamp(timezone, instant)} AS TIMESTAMP_NTZ)"

    def epoch_seconds(self, instant: str) -> str:
        return f"(unix_micros({instant}) / 1000000.0)"

    def add_days(self, date: str, days: str) -> str:
        return f"date_add({date}, {days})"

    def add_months(self, value: str, months: str) -> str:
        return f"add_months({value}, {months})"

    def add_months_to_wall(self, wall: str, months: str) -> str:
        """add_months() would return a DATE and drop the time of day."""
        return f"timestampadd(MONTH, {months}, {wall})"

    def add_instant(self, instant: str, unit: str, amount: str) -> str:
        return f"timestampadd({unit.upper()}, {amount}, {instant})"

    def diff(self, unit: str, start: str, end: str) -> str:
        return f"CAST(timestampdiff({unit.upper()}, {start}, {end}) AS INTEGER)"

    def day_of_week(self, wall: str) -> str:
        """Spark's dayofweek is 1 = Sunday ... 7 = Saturday; shift to Monday = 0."""
        return f"((dayofweek({wall}) + 5) % 7)"

    def grouping_level(self, expressions: list[str]) -> str:
        """Spark's GROUPING takes one column; grouping_id has the same bit order as DuckDB's."""
        return f"grouping_id({', '.join(expressions)})"

    def materialized(self) -> str:
        """No CTE materialisation hint in Spark (its optimiser decides)."""
        return ""

    def raise_error(self, message: str) -> str:
        return f"raise_error({quote_literal(message)})"

    def raise_error_of(self, message_sql: str) -> str:
        return f"raise_error({message_sql})"

    def list_literal(self, items: list[str]) -> str:
        """Spark has no `[...]` literal: `array(a, b)`."""
        return f"array({', '.join(items)})"

    def array_rows(self, array: str) -> str:
        return f"SELECT posexplode({array}) AS (__i, __value)"

    def integer_spine(self, low: int, high: int) -> str:
        return f"SELECT explode(sequence({int(low)}, {int(high)})) AS __spine"

    def date_spine(self, start: str, end: str, step: str) -> str:
        """sequence() includes its end, so the last value is filtered out when it is the end."""
        return (
            f"SELECT CAST(s AS DATE) AS __spine FROM (SELECT explode(sequence(CAST({start} AS TIMESTAMP), "
            f"CAST({end} AS TIMESTAMP), {step})) AS s) AS steps WHERE s < CAST({end} AS TIMESTAMP)"
        )

    def instant_spine(self, start: str, end: str, step: str) -> str:
        return (
            f"SELECT s AS __spine FROM (SELECT explode(sequence(CAST({start} AS TIMESTAMP), "
            f"CAST({end} AS TIMESTAMP), {step})) AS s) AS steps WHERE s < CAST({end} AS TIMESTAMP)"
        )

    def quantile(self, value: str, fraction: str) -> str:
        return f"percentile({value}, {fraction})"

    def utc_instant(self, instant: dt.datetime) -> str:
        """Spark's TIMESTAMP literal reads a zone suffix; `Z` makes it UTC whatever the session."""
        return f"TIMESTAMP '{instant:%Y-%m-%d %H:%M:%S}Z'"

    def string_test(self, kind: str, text: str, needle: str) -> str:
        return f"{ {'starts_with': 'startswith', 'ends_with': 'endswith'}.get(kind, kind)}({text}, {needle})"

    def list_contains_ignoring_case(self, items: str, needle: str) -> str:
        lowered = f"transform({items}, item -> lower(CAST(item AS {self.text_type})))"
        return f"array_contains({lowered}, lower(CAST({needle} AS {self.text_type})))"


DUCKDB: Dialect = DuckDBDialect()
SPARK: Dialect = SparkDialect()
DIALECTS: dict[str, Dialect] = {"duckdb": DUCKDB, "spark": SPARK}


def quoted_end(sql: str, start: int) -> int:
    """The index just past the quoted string or identifier opening at `start` (doubled quotes escape)."""
    quote, j, n = sql[start], start + 1, len(sql)
    while j < n:
        if sql[j] == quote:
            if j + 1 < n and sql[j + 1] == quote:
                j += 2
                continue
            return j + 1
        j += 1
    return n


class MacroArgumentError(ValueError):
    """A model macro called with arguments it cannot take (the message says what it takes)."""


def split_arguments(arguments: str) -> list[str]:
    """A call's argument text split at its top-level commas (not inside parentheses or quotes)."""
    parts: list[str] = []
    depth, start, i, n = 0, 0, 0, len(arguments)
    while i < n:
        char = arguments[i]
        if char in "'\"":
            i = quoted_end(arguments, i)
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(arguments[start:i].strip())
            start = i + 1
        i += 1
    parts.append(arguments[start:].strip())
    return parts


_UTC_INSTANT_FORMATS = ("%Y-%m-%d", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")


def parse_utc_instant_argument(argument: str) -> dt.datetime:
    """The instant of `utc_instant('1997-09-30 00:00:00')`: one quoted date or date and time."""
    text = argument.strip()
    if len(text) >= 2 and text[0] == text[-1] == "'" and "'" not in text[1:-1]:
        for form in _UTC_INSTANT_FORMATS:
            try:
                return dt.datetime.strptime(text[1:-1].strip(), form)
            except ValueError:
                continue
    raise MacroArgumentError(
        f"utc_instant({text}) takes one quoted date or date and time in UTC, "
        "such as utc_instant('1997-09-30') or utc_instant('1997-09-30 18:00:00')"
    )


def expand_calls(sql: str, name: str, render: Callable[[str], str]) -> str:
    """Replace every `name(arg)` call outside string literals by `render(arg)` (model macros)."""
    out: list[str] = []
    i, n = 0, len(sql)
    lowered = sql.lower()
    while i < n:
        char = sql[i]
        if char in "'\"":  # copy a quoted string or identifier verbatim
            end = quoted_end(sql, i)
            out.append(sql[i:end])
            i = end
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
            argument = expand_calls(sql[start : j - 1], name, render)
            out.append(render(argument.strip()))
            i = j
            continue
        out.append(char)
        i += 1
    return "".join(out)
