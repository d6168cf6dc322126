"""Grammar-driven queries built from the semantic model.

Every clause of the language is drawn with its real vocabulary (each table's metrics and
dimensions with their types, time grains, named ranges, comparisons, WITH modifiers, chart
types), mostly well-typed so that queries reach the compiler and the database, and sometimes
deliberately wrong (a mistyped value, a metric in WHERE, an unknown name, a bad time zone) so
that the resolver's refusals are exercised too. All randomness comes from the `random.Random`
passed in, so one seed always yields the same queries for the same model.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence

from commerceql.model.semantic import Dimension, SemanticModel, Table

GRAINS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
CYCLICAL = ("hour_of_day", "day_of_week", "week_of_year", "month_of_year")
FIXED_RANGES = (
    "today", "yesterday", "this_week", "this_month", "this_quarter", "this_year", "last_week",
    "last_month", "last_quarter", "last_year", "this_weekend", "last_weekend",
)  # fmt: skip
BFCM_YEARS = (1999, 2000, 2019, 2022, 2023, 2024, 2025, 2026, 2100, 2101)
OFFSET_UNITS = ("s", "min", "h", "d", "w", "m", "q", "y")
DATE_FUNCTION_GRAINS = ("Minute", "Hour", "Day", "Week", "Month", "Quarter", "Year")
COMPARISONS = (
    "previous_period", "previous_year", "previous_year_match_day_of_week", "previous_quarter",
    "previous_month", "previous_week", "previous_day", "previous_hour", "previous_minute",
    "previous_second",
)  # fmt: skip
MODIFIERS = ("TOTALS", "GROUP_TOTALS", "PERCENT_CHANGE", "CUMULATIVE_VALUES")
TIMEZONES = (
    "UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe",
    "Pacific/Kiritimati", "America/St_Johns", "Etc/GMT+12", "Mars/Olympus", "", "utc",
)  # fmt: skip
CHART_TYPES = (
    "line", "bar", "horizontal_bar", "grouped_bar", "horizontal_grouped_bar", "stacked_bar",
    "stacked_horizontal_bar", "single_stacked_bar", "stacked_area", "area", "histogram", "donut",
    "funnel", "heatmap", "single_metric", "list", "list_with_dimension_values", "table", "rfm_grid",
    "scatter_plot", "bubble_chart", "waterfall", "calendar_heatmap", "retention_curve",
    "treemap", "target_gauge", "pie",
)  # fmt: skip
# Values seen in the sample store plus awkward ones (quotes, wildcards, unicode, empty).
STRINGS = (
    "Wholesale", "Online Store", "Draft Orders", "Point of Sale", "DTC", "B2B", "California",
    "United States", "Canada", "vip", "distributor", "BFCM", "WELCOME10", "Enterprise", "a", "",
    "O''Brien", "%", "_", "ünïcödé ✓", "\\", "line\nbreak", " Wholesale ", "NULL",
)  # fmt: skip
NUMBERS = ("0", "1", "2.5", "100", "0.001", "-1", "-0", "999999999999999999999999", "1000000", ".5")
DATES = ("2025-01-01", "2024-11-29", "2025-12-15T14:00:00", "2023-02-28T23:59:59.999999", "2020-02-29", "2025-13-01")


class GrammarGenerator:
    """Random queries over a model's tables, touching every clause of the language."""

    def __init__(self, model: SemanticModel) -> None:
        self.model = model
        self.tables: list[Table] = [model.tables[name] for name in sorted(model.tables)]
        self.timed = [t for t in self.tables if t.time_column]

    # -- the query -----------------------------------------------------------------------------
    def query(self, rng: random.Random) -> str:
        table = rng.choice(self.tables)
        tables = [table]
        if table.time_column and rng.random() < 0.08:
            # Several tables: the query can only group by what they share (time grains).
            others = [t for t in self.timed if t.name != table.name]
            tables.append(rng.choice(others))
        state = _State(rng=rng, tables=tables)
        clauses: list[str] = ["FROM " + ", ".join(t.name for t in tables)]
        shown = self._metrics(state)
        state.timeseries = bool(table.time_column) and rng.random() < 0.2
        group = self._group(state)
        show_items = list(shown)
        if group.dimensions and rng.random() < 0.3:
            show_items.insert(0, rng.choice(group.dimensions))
        visualize_only = rng.random() < 0.08
        if not visualize_only:
            clauses.append("SHOW " + ", ".join(show_items))
        if rng.random() < 0.5:
            clauses.append("WHERE " + self._condition(state, depth=rng.randint(0, 3)))
        if group.items:
            clauses.append("GROUP BY " + ", ".join(group.items))
        timeseries = state.timeseries
        if timeseries:
            grain = rng.choice(GRAINS[2:] + CYCLICAL) if not _bad(rng) else rng.choice(GRAINS[:2])
            clauses.append("TIMESERIES " + grain)
        if rng.random() < 0.2:
            clauses.append("HAVING " + self._having(state))
        dates = self._dates(state)
        comparisons: list[str] = []
        if rng.random() < 0.35:
            comparisons = [self._compare_target(rng) for _ in range(rng.randint(1, 2))]
            if not dates and not _bad(rng):
                dates = [f"DURING {self._named_range(rng)}"]  # a comparison needs a period
        clauses += dates
        if comparisons:
            clauses.append("COMPARE TO " + ", ".join(comparisons))
        modifiers: list[str] = []
        if rng.random() < 0.4:
            modifiers = self._modifiers(rng, timed=bool(group.items) or timeseries, compared=bool(comparisons))
            clauses.append("WITH " + (f"({', '.join(modifiers)})" if rng.random() < 0.1 else ", ".join(modifiers)))
        if rng.random() < 0.3:
            clauses.append("ORDER BY " + self._order(state, group.dimensions, comparisons, modifiers))
        if rng.random() < 0.4:
            if _bad(rng):
                limit = rng.choice(("0", "99999999999999999999", "-1"))
            else:
                limit = rng.choice(("1", "5", "10", "50", "1000", "5000"))
            offset = ""
            if rng.random() < 0.3:
                offset = f" OFFSET {rng.choice(('99999999999999999999', '100000')) if _bad(rng) else rng.choice(('0', '1', '3', '20'))}"
            clauses.append(f"LIMIT {limit}{offset}")
        if visualize_only or rng.random() < 0.2:
            clauses.append(self._visualize(state))
        # Clauses may come in any order; mostly keep the canonical one, which is what people write.
        if rng.random() < 0.1:
            head, rest = clauses[0], clauses[1:]
            rng.shuffle(rest)
            clauses = [head, *rest]
        text = rng.choice(("\n  ", " ")).join(clauses)
        if rng.random() < 0.05:
            # Keywords are case-insensitive (names are not): vary the case of upper-case words only.
            text = re.sub(r"\b[A-Z][A-Z_]+\b", lambda m: _random_case(rng, m.group(0)), text)
        return text

    # -- SHOW ----------------------------------------------------------------------------------
    def _metrics(self, state: _State) -> list[str]:
        rng = state.rng
        items: list[str] = []
        for position in range(rng.randint(1, 4)):
            expression = self._metric_expression(state)
            if expression in state.metrics and not _bad(rng):
                continue  # the same column twice is refused; keep that rare
            simple = expression.isidentifier()
            alias = ""
            # An expression needs a name (AS); a bare metric may have one.
            if (not simple and not _bad(rng)) or rng.random() < 0.1:
                if _bad(rng):
                    alias = rng.choice((' AS ""', " AS net_sales", " AS month", ' AS "a""b"'))
                else:
                    alias = rng.choice((f" AS alias_{position}", f' AS "Column {position} %"', f" AS x{position}"))
                state.aliases.append(alias.split(" AS ", 1)[1])  # referenced as written, quotes included
            elif simple:
                state.metrics.append(expression)
            items.append(expression + alias)
        if not items:
            name = self._metric_name(state)
            state.metrics.append(name)
            items.append(name)
        return items

    def _metric_name(self, state: _State) -> str:
        rng = state.rng
        table = rng.choice(state.tables)
        names = list(table.metrics)
        name = rng.choice(names)
        roll = rng.random()
        if roll < 0.02:
            return name[:-1] or "x"  # an unknown (typo) name
        if roll < 0.03:
            return rng.choice(list(table.dimensions) or names)  # a dimension where a metric goes
        return name

    def _metric_expression(self, state: _State) -> str:
        rng = state.rng
        name = self._metric_name(state)
        roll = rng.random()
        if roll < 0.75:
            return name
        other = self._metric_name(state)
        operator = rng.choice(("+", "-", "*", "/"))
        forms = (
            f"{name} {operator} {other}",
            f"({name} {operator} {other}) / {self._metric_name(state)}",
            f"{name} * 100",
            f"-{name}",
            f"{name} / 0",
            f"({name})",
            f"{name} {operator} {rng.choice(NUMBERS)}",
        )
        if _bad(rng):
            return f"sum({name})"  # the older aggregate form, refused with a hint
        return rng.choice(forms)

    # -- GROUP BY ------------------------------------------------------------------------------
    def _group(self, state: _State) -> _Group:
        rng = state.rng
        group = _Group()
        shared = _shared_dimensions(state.tables)
        if state.tables[0].time_column and rng.random() < 0.45:
            grain = rng.choice(GRAINS + CYCLICAL)
            group.items.append(grain)
            group.dimensions.append(grain)
        if shared and rng.random() < 0.55:
            fine = bool(group.items) and group.items[0] in ("second", "minute", "hour", "day")
            for _ in range(rng.randint(1, 2)):
                name, dimension = rng.choice(shared)
                if (fine or state.timeseries) and _many_values(name, dimension) and not _bad(rng):
                    # Every period times every value of an id-like dimension is tens of millions of
                    # rows (TIMESERIES fills all of them): a real slow spot, found by this fuzzer
                    # and kept rare so it does not take over every run.
                    continue
                if dimension.type == "array" and rng.random() < 0.7:
                    continue
                if name in group.dimensions:
                    continue
                roll = rng.random()
                if roll < 0.15:
                    n = rng.choice(("0", "100000")) if _bad(rng) else rng.choice(("1", "2", "3", "5", "10"))
                    overall = " OVERALL" if rng.random() < 0.4 else ""
                    group.items.append(f"{rng.choice(('', 'ONLY '))}TOP {n} {name}{overall}")
                elif _bad(rng):
                    group.items.append(f"{name} ALL")  # the older form, refused with a hint
                else:
                    group.items.append(name)
                group.dimensions.append(name)
        if group.items and rng.random() < 0.1:
            rng.shuffle(group.items)
        return group

    # -- WHERE ---------------------------------------------------------------------------------
    def _condition(self, state: _State, depth: int) -> str:
        rng = state.rng
        if depth <= 0 or rng.random() < 0.35:
            return self._predicate(state)
        roll = rng.random()
        if roll < 0.15:
            return f"NOT {self._condition(state, depth - 1)}"
        if roll < 0.3:
            return f"({self._condition(state, depth - 1)})"
        joiner = rng.choice((" AND ", " OR "))
        return joiner.join(self._condition(state, depth - 1) for _ in range(rng.randint(2, 3)))

    def _predicate(self, state: _State) -> str:
        rng = state.rng
        dimensions = _shared_dimensions(state.tables)
        if not dimensions or rng.random() < 0.015:
            return f"{self._metric_name(state)} > 10"  # a metric in WHERE: refused (HAVING)
        name, dimension = rng.choice(dimensions)
        mistyped = rng.random() < 0.06
        value = _value_for(rng, _mistype(rng, dimension.type) if mistyped else dimension.type)
        return _predicate_for(rng, name, dimension.type, value, lambda: _value_for(rng, dimension.type))

    # -- HAVING --------------------------------------------------------------------------------
    def _having(self, state: _State) -> str:
        rng = state.rng
        names = state.metrics + state.aliases or [self._metric_name(state)]
        parts = []
        for _ in range(rng.randint(1, 2)):
            name = rng.choice(names)
            roll = rng.random()
            if roll < 0.75:
                parts.append(f"{name} {rng.choice(('>', '>=', '<', '<=', '=', '!='))} {rng.choice(NUMBERS)}")
            elif roll < 0.87:
                parts.append(f"{name} BETWEEN {rng.choice(NUMBERS)} AND {rng.choice(NUMBERS)}")
            elif roll < 0.97:
                parts.append(f"{name} IS NOT NULL")
            else:
                parts.append(f"{name} = '{rng.choice(STRINGS)}'")  # mistyped
        return rng.choice((" AND ", " OR ")).join(parts)

    # -- SINCE / UNTIL / DURING / COMPARE TO -------------------------------------------------------
    def _dates(self, state: _State) -> list[str]:
        rng = state.rng
        roll = rng.random()
        if roll < 0.4:
            return []
        if roll < 0.7:
            return [f"DURING {self._named_range(rng)}"]
        clauses = [f"SINCE {self._date(rng, 'since')}"]
        if rng.random() < 0.6:
            clauses.append(f"UNTIL {self._date(rng, 'until')}")
        return clauses

    def _named_range(self, rng: random.Random) -> str:
        if rng.random() < 0.15:
            return f"bfcm{rng.choice(BFCM_YEARS)}"
        if _bad(rng):
            return rng.choice(("last_decade", "previous_year", "now", "2025-01-01", "-3m"))
        return rng.choice(FIXED_RANGES)

    def _date(self, rng: random.Random, side: str) -> str:
        roll = rng.random()
        if roll < 0.45:
            n = rng.choice((0, 1, 2, 3, 7, 12, 30, 90, 400, 100000)) if _bad(rng) else rng.choice((0, 1, 2, 3, 7, 12, 30))
            sign = rng.choice(("-", "-", "-", "+", ""))
            return f"{sign}{n}{rng.choice(OFFSET_UNITS)}"
        if roll < 0.65:
            return rng.choice(DATES[:-1]) if not _bad(rng) else DATES[-1]
        if roll < 0.85:
            return rng.choice(("now", "today", "yesterday", *FIXED_RANGES[2:], f"bfcm{rng.choice(BFCM_YEARS)}"))
        grain = rng.choice(DATE_FUNCTION_GRAINS)
        prefix = "startOf" if side == "since" or rng.random() < 0.3 else "endOf"
        argument = rng.choice(("", "0m", "-1m", "-1q", "-1y", "-2w", "-3d", "+1y", "-15min"))
        return f"{prefix}{grain}({argument})"

    def _compare_target(self, rng: random.Random) -> str:
        roll = rng.random()
        if roll < 0.7:
            return rng.choice(COMPARISONS)
        if roll < 0.8:
            return self._named_range(rng)
        if roll < 0.95:
            until = f" UNTIL {rng.choice(DATES)}" if rng.random() < 0.6 else ""
            return rng.choice(DATES[:-1]) + until
        return self._date(rng, "since")

    # -- WITH / ORDER BY / VISUALIZE ---------------------------------------------------------------
    def _modifiers(self, rng: random.Random, *, timed: bool, compared: bool) -> list[str]:
        chosen = rng.sample(MODIFIERS, rng.randint(0, 3))
        if "PERCENT_CHANGE" in chosen and not compared and not _bad(rng):
            chosen.remove("PERCENT_CHANGE")  # it compares with a COMPARE TO period
        if "CUMULATIVE_VALUES" in chosen and not timed and not _bad(rng):
            chosen.remove("CUMULATIVE_VALUES")  # it accumulates along a time dimension
        if rng.random() < 0.25:
            zone = rng.choice(TIMEZONES[-3:]) if _bad(rng) else rng.choice(TIMEZONES[:-3])
            chosen.append(f"TIMEZONE '{zone}'")
        if rng.random() < 0.06:
            chosen.append(f"CURRENCY '{rng.choice(('EUR', 'usd')) if _bad(rng) else 'USD'}'")
        if _bad(rng):
            chosen.append(rng.choice(("TOTAL", "LAST_CLICK", "TIMEZONE", "TIMEZONE UTC")))
        if not chosen:
            chosen.append("TOTALS")
        return chosen

    def _order(self, state: _State, dimensions: Sequence[str], comparisons: Sequence[str], modifiers: Sequence[str]) -> str:
        rng = state.rng
        candidates = state.metrics + state.aliases + list(dimensions)
        for metric in state.metrics[:2]:
            if "TOTALS" in modifiers:
                candidates.append(f"{metric}__totals")
            if "CUMULATIVE_VALUES" in modifiers:
                candidates.append(f"{metric}__cumulative")
            for target in comparisons:
                if target.isidentifier():
                    candidates.append(f"comparison_{metric}__{target}")
                    if "PERCENT_CHANGE" in modifiers:
                        candidates.append(f"percent_change_{metric}__{target}")
        if _bad(rng) or not candidates:
            candidates = ["unknown_column", "month", *candidates]
        keys = [rng.choice(candidates) + rng.choice(("", " ASC", " DESC")) for _ in range(rng.randint(1, 2))]
        return ", ".join(dict.fromkeys(keys))

    def _visualize(self, state: _State) -> str:
        rng = state.rng
        names = state.metrics or [self._metric_name(state)]
        items = []
        for _ in range(rng.randint(1, 2)):
            chart_type = f" TYPE {rng.choice(CHART_TYPES)}" if rng.random() < 0.7 else ""
            items.append(rng.choice(names) + chart_type)
        limit = ""
        if rng.random() < 0.15:
            limit = rng.choice((" MAX 5", " MAX 1", " MAX 0", " LIMIT 3"))
        return "VISUALIZE " + ", ".join(items) + limit


# -- helpers -----------------------------------------------------------------------------------


class _State:
    """What the clauses drawn so far made available to later ones (shown metrics, aliases)."""

    def __init__(self, *, rng: random.Random, tables: list[Table]) -> None:
        self.rng = rng
        self.tables = tables
        self.metrics: list[str] = []
        self.aliases: list[str] = []
        self.timeseries = False


class _Group:
    def __init__(self) -> None:
        self.items: list[str] = []
        self.dimensions: list[str] = []


def _shared_dimensions(tables: Sequence[Table]) -> list[tuple[str, Dimension]]:
    """Dimensions every table has (all of one table's when there is one), in a stable order."""
    first = tables[0]
    names = [n for n in first.dimensions if all(n in t.dimensions for t in tables[1:])]
    return [(n, first.dimensions[n]) for n in sorted(names)]


def _random_case(rng: random.Random, word: str) -> str:
    return "".join(c.lower() if rng.random() < 0.5 else c for c in word)


def _bad(rng: random.Random) -> bool:
    """A deliberate mistake at one decision point: rare, so most queries stay answerable."""
    return rng.random() < 0.04


_MANY_VALUES = ("_id", "_name", "_email", "_title", "_sku", "_city", "_handle", "_path", "_date", "_time_of_sale")


def _many_values(name: str, dimension: Dimension) -> bool:
    """Dimensions with thousands of values (ids, names, dates, prices)."""
    return name.endswith(_MANY_VALUES) or dimension.type in ("date", "timestamp", "money", "number", "integer")


def _mistype(rng: random.Random, kind: str) -> str:
    return rng.choice([k for k in ("string", "integer", "boolean", "date", "array", "null") if k != kind])


def _quote(text: str) -> str:
    return "'" + text + "'"  # STRINGS already double their quotes


def _value_for(rng: random.Random, kind: str) -> str:
    """A literal of the given dimension type (`null` gives NULL)."""
    if kind in ("string", "array"):
        return _quote(rng.choice(STRINGS))
    if kind in ("integer", "number", "money"):
        return rng.choice(NUMBERS)
    if kind == "boolean":
        return rng.choice(("true", "false", "TRUE"))
    if kind in ("date", "timestamp"):
        return rng.choice(DATES) if rng.random() < 0.8 else _quote(rng.choice(DATES))
    return "NULL"


def _predicate_for(rng: random.Random, name: str, kind: str, value: str, another: Callable[[], str]) -> str:
    """One predicate on `name`, with an operator that suits its type most of the time."""
    roll = rng.random()
    if kind == "boolean" and roll < 0.6:
        return rng.choice((name, f"NOT {name}", f"{name} IS TRUE", f"{name} IS NOT TRUE",
                           f"{name} IS FALSE", f"{name} IS NOT FALSE", f"{name} = {value}"))
    if kind == "array" and roll < 0.6:
        return f"{name} {rng.choice(('CONTAINS', 'NOT CONTAINS'))} {value}"
    operators = (
        lambda: f"{name} {rng.choice(('=', '!=', '<>', '<', '<=', '>', '>='))} {value}",
        lambda: f"{name} {rng.choice(('IN', 'NOT IN'))} ({', '.join([value] + [another() for _ in range(rng.randint(0, 3))])})",
        lambda: f"{name} {rng.choice(('BETWEEN', 'NOT BETWEEN'))} {value} AND {another()}",
        lambda: f"{name} {rng.choice(('CONTAINS', 'NOT CONTAINS'))} {value}",
        lambda: f"{name} {rng.choice(('STARTS WITH', 'ENDS WITH', 'NOT STARTS WITH', 'NOT ENDS WITH'))} {value}",
        lambda: f"{name} IS {rng.choice(('NULL', 'NOT NULL', 'TRUE', 'NOT TRUE', 'FALSE'))}",
    )
    if kind == "string":
        weights = (4, 2, 1, 2, 2, 1)
    elif kind in ("integer", "number", "money", "date", "timestamp"):
        weights = (5, 2, 3, 1, 1, 1)
    else:
        weights = (2, 1, 1, 1, 1, 1)
    return rng.choices(operators, weights=weights)[0]()
