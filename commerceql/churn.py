"""Churn, lapse and reactivation per period: `customer_churn` and `company_churn`.

An account (customer or company) is *active* on day d when it placed an order in the L days
(d − L, d], L = the store's `lapse_days` (180 unless the manifest's `accounts` says otherwise). So
an order on day o keeps the account active from o to o + L − 1. The account *lapses* on day o + L
after an order o that is not followed by another order within L days (next order more than L days
later, or none), when that day is at or before the store clock's date. An order placed more than L
days after the account's previous order is a *reactivation*; the first order ever is *new*.
Between a new or reactivating order and the following lapse the account is continuously active: a
*spell*. Spells never touch (a reactivation comes at least one inactive day after the lapse), so
active on the last day of a period = active the day before it − lapses + new + reactivations in it.

The relation has one row per account and per period in which the account has anything to report
(active on the day before the period starts, active at some point in it, or an event in it), with:

    customer_id / company_id  the account
    period_start              UTC instant of the local start of the period (the model's time column)
    period_start_date         first day of the period (query time zone)
    period_end_date           last day of the period
    active_at_start           active on the day before the period's first day
    active_at_end             active on the period's last day
    is_new                    first order ever in the period
    reactivations             reactivating orders (days) in the period
    lapses                    lapses in the period
    churned                   lapsed in the period and no order since, up to the clock
    lapsed_from_start         active at start and that spell lapsed in the period
    retained                  active at start and that spell did not lapse in the period

Periods are the query's time grain (day, week, month, quarter, year; buckets as the compiler's
GROUP BY computes them), from the one holding the first order to the one holding the clock's date,
the last one ending with the clock's date. A query without a time grain has one period: its whole
reporting window. Every period is cut where the reporting window (and a comparison window, when
the compiler passes them) starts and ends, so a date range starting or ending mid-month selects
exactly its part of that month, never the whole month and never half of it twice: the compiler's
window filter keeps the rows whose period *starts* inside the window. When the compiler says which
windows the query reads (`comparison_windows`), only their periods are computed; otherwise all of
them, since a comparison may read any. Definitions: docs/churn.md.

Orders counted are those of `customer_facts` (commerceql.derived): not test orders, placed at or
before the clock, with an account; days are calendar dates in the query's time zone.
"""

from __future__ import annotations

import datetime as dt

from commerceql.dates import DateWindow
from commerceql.derived import DerivedContext
from commerceql.errors import CommerceQLSemanticError

# Grains a churn period may have, and the spine's step for each (the compiler's TIMESERIES spine
# spells quarters the same way). Lapses are whole days: sub-day periods mean nothing.
_STEP = {"day": "INTERVAL 1 DAY", "week": "INTERVAL 7 DAY", "month": "INTERVAL 1 MONTH",
         "quarter": "INTERVAL 3 MONTH", "year": "INTERVAL 1 YEAR"}


def churn_sql(context: DerivedContext) -> str:
    """Customer × period rows of activity, lapses and reactivations (the `customer_churn` relation)."""
    return account_churn_sql("customer_id", context)


def company_churn_sql(context: DerivedContext) -> str:
    """Company × period rows (the `company_churn` relation): a company orders when any of its buyers does."""
    return account_churn_sql("company_id", context)


def _first_whole_day(value: dt.datetime) -> dt.date:
    """The first local date whose midnight is at or after `value` (a naive local time)."""
    day = value.date()
    return day if value.time() == dt.time(0) else day + dt.timedelta(days=1)


def period_cuts(context: DerivedContext) -> list[dt.date]:
    """Dates where a period must start besides the grain's buckets: the windows' ends, up to the clock.

    The reporting window cuts periods at its start and end. A comparison window (when the compiler
    passes them as `comparison_windows`) cuts them too, except inside the reporting window: two
    rows for one reporting period would count its accounts active at start twice.
    """
    clock = context.as_of_date
    reporting = context.window or DateWindow(None, None)
    cuts: set[dt.date] = set()
    for bound in (reporting.start, reporting.end):
        if bound is not None:
            cuts.add(_first_whole_day(bound))
    inside_start = _first_whole_day(reporting.start) if reporting.start is not None else dt.date.min
    inside_end = _first_whole_day(reporting.end) if reporting.end is not None else dt.date.max
    for window in getattr(context, "comparison_windows", ()) or ():
        for bound in (window.start, window.end):
            if bound is not None:
                day = _first_whole_day(bound)
                if not inside_start < day < inside_end:
                    cuts.add(day)
    return sorted(day for day in cuts if day <= clock)


def periods_sql(c: DerivedContext, starts_sql: list[str], end: str) -> str:
    """The periods (ps, pe), end exclusive: each spine start (SELECTs of one `__spine` date column)
    and each cut of the reporting window starts one, the next start or `end` closes it; only the
    periods the window selects are kept. Shared by the churn and inventory relations."""
    starts = [*starts_sql, *(f"SELECT CAST({c.param(day)} AS DATE) AS __spine" for day in period_cuts(c))]
    union = " UNION ".join(f"SELECT __spine FROM ({s}) AS c{i}" for i, s in enumerate(starts))
    periods = (
        f"SELECT ps.__spine AS ps, COALESCE(LEAD(ps.__spine) OVER (ORDER BY ps.__spine), CAST({end} AS DATE)) AS pe "
        f"FROM ({union}) AS ps WHERE ps.__spine IS NOT NULL AND ps.__spine < CAST({end} AS DATE)"
    )
    selected = _selected_periods(c)
    if selected:
        periods = f"SELECT w.ps, w.pe FROM ({periods}) AS w WHERE {' OR '.join(selected)}"
    return periods


def _selected_periods(c: DerivedContext) -> list[str]:
    """Tests on a period start `w.ps` keeping the periods some window of the query selects.

    Only when the compiler says which windows the query reads (`comparison_windows`, even empty):
    without that, a comparison may read any period, so every period is kept.
    """
    comparisons = getattr(c, "comparison_windows", None)
    if comparisons is None:
        return []
    tests = []
    for window in (c.window or DateWindow(None, None), *comparisons):
        bounds = [f"w.ps {op} CAST({c.param(_first_whole_day(bound))} AS DATE)"
                  for op, bound in ((">=", window.start), ("<", window.end)) if bound is not None]
        if not bounds:
            return []  # an unbounded window reads every period
        tests.append("(" + " AND ".join(bounds) + ")")
    return tests


def account_churn_sql(key: str, c: DerivedContext) -> str:
    """The churn relation per account `key` (customer_id or company_id)."""
    grain = c.grain
    if grain is not None and grain not in _STEP:
        raise CommerceQLSemanticError(
            f"churn is counted in whole days, so it has no periods by {grain}",
            hint="group by day, week, month, quarter or year (or by no time grain: one period for the whole date range)",
        )
    d = c.dialect
    q = d.quote_identifier
    lapse = int(c.settings.lapse_days)
    as_of = c.param(c.as_of)
    end = c.param(c.as_of_date + dt.timedelta(days=1))  # the day after the clock's date
    order_date = c.local_date("o.created_at")
    # Order days per account, counted as customer_facts counts orders.
    days = (
        f"SELECT o.{key} AS k, {order_date} AS d FROM {q('orders')} AS o "
        f"WHERE o.{key} IS NOT NULL AND NOT COALESCE(o.is_test, FALSE) AND o.created_at <= {as_of} GROUP BY 1, 2"
    )
    by_day = "PARTITION BY k ORDER BY d"
    gaps = f"SELECT k, d, LAG(d) OVER ({by_day}) AS prev_d, LEAD(d) OVER ({by_day}) AS next_d FROM ({days}) AS od"
    starts = f"CASE WHEN g.prev_d IS NULL OR {c.days('g.prev_d', 'g.d')} > {lapse} THEN 1 ELSE 0 END"
    numbered = (
        f"SELECT g.k, g.d, g.next_d, SUM({starts}) OVER (PARTITION BY g.k ORDER BY g.d "
        f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS spell FROM ({gaps}) AS g"
    )
    # One row per spell: [s, e) with s its first order day and e = its last order day + L, the lapse day.
    spells = (
        f"SELECT n.k, MIN(n.d) AS s, CAST({d.add_days('MAX(n.d)', str(lapse))} AS DATE) AS e, "
        "n.spell = 1 AS is_first, MAX(CASE WHEN n.next_d IS NULL THEN 1 ELSE 0 END) = 1 AS is_last "
        f"FROM ({numbered}) AS n GROUP BY n.k, n.spell"
    )
    # Period starts: the grain's buckets from the first order's, and the windows' cuts.
    counted = f"o.{key} IS NOT NULL AND NOT COALESCE(o.is_test, FALSE) AND o.created_at <= {as_of}"
    local_first = d.local_timestamp(c.timezone, "MIN(o.created_at)")
    if grain is None:
        first = f"SELECT CAST({local_first} AS DATE) AS __spine FROM {q('orders')} AS o WHERE {counted}"
        starts_sql = [first]
    else:
        first = f"(SELECT date_trunc('{grain}', {local_first}) FROM {q('orders')} AS o WHERE {counted})"
        starts_sql = [d.date_spine(first, end, _STEP[grain])]
    periods = periods_sql(c, starts_sql, end)

    def flag(test: str) -> str:
        return f"MAX(CASE WHEN {test} THEN 1 ELSE 0 END) = 1"

    def count(test: str) -> str:
        return f"SUM(CASE WHEN {test} THEN 1 ELSE 0 END)"

    period_start = d.instant_of_local(c.timezone, f"CAST(p.ps AS {d.wall_type})")
    return f"""SELECT sp.k AS {key},
    {period_start} AS period_start,
    p.ps AS period_start_date,
    CAST({d.add_days('p.pe', '-1')} AS DATE) AS period_end_date,
    {flag('sp.s < p.ps')} AS active_at_start,
    {flag('sp.e >= p.pe')} AS active_at_end,
    {flag('sp.is_first AND sp.s >= p.ps')} AS is_new,
    {count('NOT sp.is_first AND sp.s >= p.ps')} AS reactivations,
    {count('sp.e < p.pe')} AS lapses,
    {flag('sp.is_last AND sp.e < p.pe')} AS churned,
    {flag('sp.s < p.ps AND sp.e < p.pe')} AS lapsed_from_start,
    {flag('sp.s < p.ps AND sp.e >= p.pe')} AS retained
  FROM ({spells}) AS sp
  JOIN ({periods}) AS p ON sp.s < p.pe AND sp.e >= p.ps
  GROUP BY sp.k, p.ps, p.pe"""
