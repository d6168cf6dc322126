"""Conversion within a window: when each visitor first ordered, measured from their first session.

`session_conversions` (a derived relation, see `commerceql.derived`) has one row per visitor of the
online store (`sessions.visitor_id`), keyed by the visitor's first recorded session up to the
store's clock, with:

    visitor_id, first_session_id, first_session_at
    first_order_at                the visitor's first order placed at or after first_session_at
    days_to_first_order           (first_order_at - first_session_at) in days (fractional), NULL without one
    days_observed                 (store clock - first_session_at) in days: how long the visitor could convert
    ordered_before_first_session  a customer the visitor was identified as had ordered before it

A visitor's orders are the store's orders (test orders excluded, cancelled ones counted, placed at
or before the clock) that were placed in one of the visitor's sessions (`sessions.order_id`), or by
a customer one of the visitor's sessions was identified as (`sessions.customer_id`, any channel:
a visitor who later orders by phone or at a B2B portal has converted too). The sessions table
joins the relation on its first session (`session_conversions.first_session_id = session_id`),
so the windowed metrics (`visitors_converted_within_7_days`, `conversion_rate_within_7_days` ...)
are counts over first sessions, and every session dimension describes that first session.
Windows are whole multiples of 24 hours from the first session's start, fixed in each metric's
name. Definitions: docs/funnels.md; `tests/test_funnels.py` checks them against Polars.
"""

from __future__ import annotations

from commerceql.derived import DerivedContext


def conversion_sql(context: DerivedContext) -> str:
    """One row per visitor: first session, first order after it, days between them and days observed."""
    c = context
    q = c.dialect.quote_identifier
    as_of = c.param(c.as_of)

    def days(start: str, end: str) -> str:
        # Fractional days between two UTC instants, through epoch seconds (no session zone involved),
        # in doubles on every engine (Spark's epoch seconds are decimals, which would round).
        def seconds(instant: str) -> str:
            return f"CAST({c.dialect.epoch_seconds(instant)} AS DOUBLE)"

        return f"(({seconds(end)} - {seconds(start)}) / 86400)"

    real_order = f"NOT COALESCE(o.is_test, FALSE) AND o.created_at <= {as_of}"
    return f"""SELECT v.visitor_id, v.first_session_id, v.first_session_at, v.first_order_at,
    CASE WHEN v.first_order_at IS NOT NULL THEN {days('v.first_session_at', 'v.first_order_at')} END
      AS days_to_first_order,
    {days('v.first_session_at', as_of)} AS days_observed,
    v.ordered_before_first_session
  FROM (
    SELECT f.visitor_id, f.first_session_id, f.first_session_at,
        MIN(CASE WHEN x.created_at >= f.first_session_at THEN x.created_at END) AS first_order_at,
        COALESCE(MAX(CASE WHEN x.created_at < f.first_session_at THEN 1 ELSE 0 END), 0) = 1
          AS ordered_before_first_session
      FROM (
        SELECT r.visitor_id, r.session_id AS first_session_id, r.started_at AS first_session_at
          FROM (
            SELECT s.visitor_id, s.session_id, s.started_at,
                ROW_NUMBER() OVER (PARTITION BY s.visitor_id ORDER BY s.started_at, s.session_id) AS session_rank
              FROM {q('sessions')} AS s
              WHERE s.visitor_id IS NOT NULL AND s.started_at <= {as_of}
          ) AS r
          WHERE r.session_rank = 1
      ) AS f
      LEFT JOIN (
        SELECT s.visitor_id, o.created_at
          FROM {q('sessions')} AS s
          JOIN {q('orders')} AS o ON o.order_id = s.order_id
          WHERE s.visitor_id IS NOT NULL AND s.started_at <= {as_of} AND {real_order}
        UNION ALL
        SELECT k.visitor_id, o.created_at
          FROM (
            SELECT DISTINCT s.visitor_id, s.customer_id
              FROM {q('sessions')} AS s
              WHERE s.visitor_id IS NOT NULL AND s.customer_id IS NOT NULL AND s.started_at <= {as_of}
          ) AS k
          JOIN {q('orders')} AS o ON o.customer_id = k.customer_id
          WHERE {real_order}
      ) AS x ON x.visitor_id = f.visitor_id
      GROUP BY f.visitor_id, f.first_session_id, f.first_session_at
  ) AS v"""
