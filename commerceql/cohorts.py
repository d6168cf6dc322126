"""Customer cohort matrices: `customer_cohorts_weekly`, `customer_cohorts_monthly`, `customer_cohorts_quarterly`.

A customer's cohort is the week (Monday to Sunday), month or quarter of their first order, in the
query's time zone. The relation is dense: one row per customer and per period k = 0, 1, 2 ...
since their cohort's period, up to the period holding the store's clock, whether or not the
customer ordered in period k. So a cohort's row count at k is its size (the retention
denominator), customers who came back are the rows with `active`, and a cohort too young to have
reached period k has no row there at all: right-censoring is handled by construction, and
averages across cohorts at period k (WITH GROUP_TOTALS) only count the cohorts that reached it.

Columns:

    customer_id                   the customer
    cohort_start                  UTC instant of the local start of the first-order period (the
                                  model's time column: SINCE/UNTIL/DURING and GROUP BY month
                                  select and group cohorts)
    cohort_start_date             that local date
    period_start_date             local date the customer's period k starts
    periods_since_first_purchase  k
    complete                      period k ended before the clock's period (the clock's own
                                  period is still running: its retention is not final)
    active                        the customer placed an order in period k
    orders                        orders the customer placed in period k
    net_sales                     Σ sales.net_sales of the customer's rows booked in period k
    cumulative_net_sales          Σ net_sales over periods 0..k

Orders counted are those of `customer_facts` (commerceql.derived): not test orders, placed at or
before the clock, with a customer. Sales rows are the `sales` table's, booked at or before the
clock, so a cohort's net sales reconcile with `FROM sales SHOW net_sales` for its customers.
Periods are bucketed as the compiler buckets GROUP BY week/month/quarter: `date_trunc` of the
local wall-clock time, weeks starting on Monday. Definitions: docs/cohorts.md.
"""

from __future__ import annotations

import datetime as dt

from commerceql.dates import truncate
from commerceql.derived import DerivedContext

COHORT_GRAINS = ("week", "month", "quarter")
# The period spine's step per grain.
_STEP = {"week": "INTERVAL 7 DAY", "month": "INTERVAL 1 MONTH", "quarter": "INTERVAL 3 MONTH"}


def period_start(grain: str, c: DerivedContext, instant: str) -> str:
    """Local date the `grain` period holding the UTC instant `instant` starts (as compiler.bucket)."""
    local = c.dialect.local_timestamp(c.timezone, instant)
    return f"CAST(date_trunc('{grain}', {local}) AS DATE)"


def periods_between(grain: str, c: DerivedContext, start: str, end: str) -> str:
    """Whole `grain` periods from period-start date `start` to period-start date `end`."""
    if grain == "week":
        return f"CAST({c.dialect.diff('day', start, end)} / 7 AS INTEGER)"
    months = c.dialect.diff("month", start, end)
    return months if grain == "month" else f"CAST({months} / 3 AS INTEGER)"


def cohort_sql(grain: str, context: DerivedContext) -> str:
    """The dense customer × period matrix for cohorts of `grain` (week, month or quarter)."""
    if grain not in COHORT_GRAINS:
        raise ValueError(f"cohort grain must be one of {COHORT_GRAINS}, not {grain!r}")
    c = context
    d = c.dialect
    q = d.quote_identifier
    as_of = c.param(c.as_of)
    # Orders as customer_facts counts them (commerceql.derived.account_facts_sql).
    counted = f"o.customer_id IS NOT NULL AND NOT COALESCE(o.is_test, FALSE) AND o.created_at <= {as_of}"
    orders = (
        f"SELECT o.customer_id, {period_start(grain, c, 'o.created_at')} AS period_date, COUNT(*) AS orders"
        f"\n        FROM {q('orders')} AS o WHERE {counted} GROUP BY 1, 2"
    )
    sales = (
        f"SELECT s.customer_id, {period_start(grain, c, 's.happened_at')} AS period_date, "
        "SUM(s.net_sales) AS net_sales"
        f"\n        FROM {q('sales')} AS s WHERE s.customer_id IS NOT NULL AND s.happened_at <= {as_of} GROUP BY 1, 2"
    )
    # Every period start from the store's first cohort to the clock's period (end excluded).
    first = f"(SELECT {period_start(grain, c, 'MIN(o.created_at)')} FROM {q('orders')} AS o WHERE {counted})"
    end = c.param(c.as_of_date + dt.timedelta(days=1))
    # The clock's own period (still running): the only period that is not complete.
    current = c.param(truncate(dt.datetime.combine(c.as_of_date, dt.time()), grain).date())
    spine = d.date_spine(first, end, _STEP[grain])
    k = periods_between(grain, c, "m.cohort_date", "m.period_date")
    cohort_start = d.instant_of_local(c.timezone, f"CAST(m.cohort_date AS {d.wall_type})")
    return f"""SELECT m.customer_id,
    {cohort_start} AS cohort_start,
    m.cohort_date AS cohort_start_date,
    m.period_date AS period_start_date,
    {k} AS periods_since_first_purchase,
    m.period_date < CAST({current} AS DATE) AS complete,
    COALESCE(a.orders, 0) > 0 AS active,
    COALESCE(a.orders, 0) AS orders,
    COALESCE(s.net_sales, 0) AS net_sales,
    SUM(COALESCE(s.net_sales, 0)) OVER (PARTITION BY m.customer_id ORDER BY m.period_date
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS cumulative_net_sales
  FROM (
    SELECT f.customer_id, f.cohort_date, p.__spine AS period_date
      FROM (SELECT customer_id, MIN(period_date) AS cohort_date FROM ({orders}) AS fo GROUP BY customer_id) AS f
      JOIN ({spine}) AS p ON p.__spine >= f.cohort_date
  ) AS m
  LEFT JOIN ({orders}) AS a ON a.customer_id = m.customer_id AND a.period_date = m.period_date
  LEFT JOIN ({sales}) AS s ON s.customer_id = m.customer_id AND s.period_date = m.period_date"""
