"""Inventory per period: the `inventory_periods` relation behind the `inventory` table.

The store holds daily snapshots (`inventory_levels`: one row per variant, location and store-local
day with the units at the start and end of the day and the units received, sold and put back by
returns that day). A question about inventory is about periods: how many units were there when
the month started and ended, how many sold in it. So the relation has one row per variant,
location and period (the query's time grain; without one, the whole date range is one period),
with:

    variant_id, product_id, location, is_tracked
    period_start              UTC instant of the local start of the period (the model's time column)
    period_start_date         first day of the period
    period_end_date           last day of the period
    period_days               days in the period
    starting_units            units at the start of the variant's first snapshot day in the period
    ending_units              units at the end of its last snapshot day in the period
    incoming_units            units on open purchase orders at the end of that day
    units_sold / units_received / units_returned   summed over the period's days
    days_out_of_stock         snapshot days of the period that ended with no units
    units_sold_trailing_30_days  units sold in the 30 days up to the period's last day (stored per snapshot)
    abc_grade                 the variant's ABC grade over the query's date range (below)

Periods are built as the churn relation builds them (commerceql.churn: the grain's buckets from
the first snapshot day, cut where the reporting and comparison windows start and end, the last
one ending with the clock's date), so a date range starting inside a month keeps exactly its
part. Snapshot days are the store's days; days after the store clock's date are left out.

ABC grade (Shopify's ABC analysis: A = the top sellers making up about 80% of revenue, B = the
next 15%, C = the last 5%): variants are ranked by gross sales (price x quantity ordered, the
`sales` table) in the query's reporting window up to the clock (all history when the query has
no window), highest first, ties by variant id. A variant is A when the variants ranked before it
make up less than 80% of the total, B when less than 95%, C otherwise (and C without sales).
Definitions: docs/data-model.md (Inventory).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from commerceql.churn import _STEP, periods_sql
from commerceql.dates import DateWindow
from commerceql.derived import DerivedContext
from commerceql.errors import CommerceQLSemanticError

LEVELS = "inventory_levels"
ABC_THRESHOLDS = (0.80, 0.95)


def _window_instants(c: DerivedContext) -> list[str]:
    """Tests on `s.happened_at` keeping the query's reporting window (local bounds made instants)."""
    window = c.window or DateWindow(None, None)
    zone = ZoneInfo(c.timezone)
    tests = []
    if window.start is not None:
        tests.append(f"s.happened_at >= {c.param(window.start.replace(tzinfo=zone))}")
    if window.end is not None:
        tests.append(f"s.happened_at < {c.param(window.end.replace(tzinfo=zone))}")
    return tests


def abc_grades_sql(c: DerivedContext) -> str:
    """One row per stocked variant with its ABC grade over the query's window (see the module doc)."""
    q = c.dialect.quote_identifier
    tests = ["s.variant_id IS NOT NULL", f"s.happened_at <= {c.param(c.as_of)}", *_window_instants(c)]
    revenue = (f"SELECT s.variant_id, SUM(s.gross_sales) AS revenue FROM {q('sales')} AS s "
               f"WHERE {' AND '.join(tests)} GROUP BY s.variant_id")
    ranked = (
        "SELECT i.variant_id, COALESCE(r.revenue, 0) AS revenue, "
        "SUM(COALESCE(r.revenue, 0)) OVER (ORDER BY COALESCE(r.revenue, 0) DESC, i.variant_id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running, "
        "SUM(COALESCE(r.revenue, 0)) OVER () AS total "
        f"FROM (SELECT DISTINCT variant_id FROM {q(LEVELS)} WHERE variant_id IS NOT NULL) AS i "
        f"LEFT JOIN ({revenue}) AS r ON r.variant_id = i.variant_id"
    )
    a, b = ABC_THRESHOLDS
    return (
        "SELECT g.variant_id, CASE "
        f"WHEN g.total > 0 AND g.running - g.revenue < {a} * g.total THEN 'A' "
        f"WHEN g.total > 0 AND g.running - g.revenue < {b} * g.total THEN 'B' "
        f"ELSE 'C' END AS abc_grade FROM ({ranked}) AS g"
    )


def inventory_periods_sql(c: DerivedContext) -> str:
    """Variant x location x period rows of inventory (the `inventory_periods` relation)."""
    grain = c.grain
    if grain is not None and grain not in _STEP:
        raise CommerceQLSemanticError(
            f"inventory is snapshotted once a day, so it has no periods by {grain}",
            hint="group by day, week, month, quarter or year (or by no time grain: one period for the whole date range)",
        )
    d = c.dialect
    q = d.quote_identifier
    clock = c.param(c.as_of_date)
    end = c.param(c.as_of_date + dt.timedelta(days=1))
    levels = f"(SELECT * FROM {q(LEVELS)} WHERE day <= CAST({clock} AS DATE))"
    first_day = f"(SELECT MIN(f.day) FROM {q(LEVELS)} AS f WHERE f.day <= CAST({clock} AS DATE))"
    if grain is None:
        starts_sql = [f"SELECT {first_day} AS __spine"]
    else:
        starts_sql = [d.date_spine(f"date_trunc('{grain}', CAST({first_day} AS {d.wall_type}))", end, _STEP[grain])]
    periods = periods_sql(c, starts_sql, end)
    # Each snapshot day to its period: the range join runs over the distinct days (about a
    # thousand), and the daily rows (millions) join that on the day alone. The units at the start
    # and end of a period are those of its first and last snapshot day (min_by / max_by, which
    # DuckDB and Spark both have: one pass, no window over millions of tiny partitions, and no
    # self-join that Spark would try to broadcast).
    days = (
        f"SELECT dd.day, p.ps, p.pe FROM (SELECT DISTINCT day FROM {levels} AS x) AS dd "
        f"JOIN ({periods}) AS p ON dd.day >= p.ps AND dd.day < p.pe"
    )
    totals = (
        "SELECT l.variant_id, l.location, p.ps, MAX(p.pe) AS pe, MAX(l.product_id) AS product_id, "
        "MAX(CASE WHEN l.is_tracked THEN 1 ELSE 0 END) = 1 AS is_tracked, "
        "min_by(l.starting_units, l.day) AS starting_units, max_by(l.ending_units, l.day) AS ending_units, "
        "max_by(l.incoming_units, l.day) AS incoming_units, "
        "max_by(l.units_sold_trailing_30_days, l.day) AS units_sold_trailing_30_days, "
        "SUM(l.units_sold) AS units_sold, SUM(l.units_received) AS units_received, "
        "SUM(l.units_returned) AS units_returned, "
        "SUM(CASE WHEN l.ending_units = 0 THEN 1 ELSE 0 END) AS days_out_of_stock "
        f"FROM {levels} AS l JOIN ({days}) AS p ON p.day = l.day "
        "GROUP BY l.variant_id, l.location, p.ps"
    )
    period_start = d.instant_of_local(c.timezone, f"CAST(t.ps AS {d.wall_type})")
    return f"""SELECT t.variant_id, t.product_id, t.location, t.is_tracked,
    {period_start} AS period_start,
    t.ps AS period_start_date,
    CAST({d.add_days('t.pe', '-1')} AS DATE) AS period_end_date,
    {c.days('t.ps', 't.pe')} AS period_days,
    t.starting_units, t.ending_units, t.incoming_units, t.units_sold_trailing_30_days,
    t.units_sold, t.units_received, t.units_returned, t.days_out_of_stock,
    g.abc_grade
  FROM ({totals}) AS t
  LEFT JOIN ({abc_grades_sql(c)}) AS g ON g.variant_id = t.variant_id"""
