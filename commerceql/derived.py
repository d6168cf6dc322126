"""Account-level relations derived from a store's order tables, written per query and per dialect.

Event tables (sales, orders, sessions ...) hold one row per thing that happened; questions about
*accounts over time* (how often does this company reorder, is it overdue, which cohort did this
customer start in, how good is their recency) need one row per account, computed from its whole
order history as of the store's clock. These relations are that: trusted SQL written here (never
taken from a model file) over the store's own tables (orders, sales, line items, checkouts), emitted by the
compiler as CTEs named like the relation a model table or join refers to (`customer_facts`,
`company_facts`, `customer_cohorts_monthly`, ...). Being compiled per query, they follow the
query's time zone (`WITH TIMEZONE`) and the store's clock, and they run on every engine through
the dialect. Definitions are in docs/accounts.md; `tests/test_accounts.py` checks each column
against hand-written Polars over the raw Parquet files.

Orders counted: every order of the store that is not a test order and was placed at or before the
as-of instant (cancelled orders were still placed, so they count, as in `customers.orders_count`).
Dates are calendar dates in the query's time zone; intervals are whole days between order dates.
"""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from commerceql.dates import DateWindow
from commerceql.dialect import Dialect
from commerceql.plan import AccountSettings

# A relation name a model may refer to -> the account key it is computed per.
ACCOUNT_FACTS = {"customer_facts": "customer_id", "company_facts": "company_id"}
COHORT_GRAINS = {"customer_cohorts_weekly": "week", "customer_cohorts_monthly": "month",
                 "customer_cohorts_quarterly": "quarter"}
# Relations written by the other account modules (module, function); each takes a DerivedContext.
OTHER_RELATIONS: dict[str, tuple[str, str]] = {
    "customer_churn": ("commerceql.churn", "churn_sql"),
    "company_churn": ("commerceql.churn", "company_churn_sql"),
    "session_conversions": ("commerceql.funnels", "conversion_sql"),
    # inventory per variant, location and period from the daily snapshots (commerceql.inventory)
    "inventory_periods": ("commerceql.inventory", "inventory_periods_sql"),
    # the `discounts`, `fulfillments` and `returns` tables (commerceql.commerce_tables)
    "discount_lines": ("commerceql.commerce_tables", "discount_lines_sql"),
    "order_fulfillments": ("commerceql.commerce_tables", "order_fulfillments_sql"),
    "return_lines": ("commerceql.commerce_tables", "return_lines_sql"),
}
ABANDONED_CHECKOUTS = "customer_abandoned_checkouts"
DERIVED_RELATIONS = (*ACCOUNT_FACTS, *COHORT_GRAINS, ABANDONED_CHECKOUTS, *OTHER_RELATIONS)

# Quintile score of a value among the accounts active in the RFM window: ties share the lower
# rank, so equal values always get equal scores (NTILE would split ties arbitrarily).
_SCORE = "CAST(FLOOR(5.0 * (RANK() OVER (ORDER BY {order}) - 1) / COUNT(*) OVER ()) AS INTEGER) + 1"

RFM_GROUPS = (
    ("Champions", "recency_score >= 4 AND frequency_score >= 4"),
    ("Loyal", "recency_score >= 3 AND frequency_score >= 3"),
    ("New", "recency_score >= 4 AND orders_count = 1"),
    ("Promising", "recency_score >= 4"),
    ("Needs attention", "recency_score = 3"),
    ("At risk", "frequency_score >= 3"),
    ("Hibernating", "TRUE"),
)


@dataclass(frozen=True)
class DerivedContext:
    """What a derived relation depends on: engine, time zone, clock, settings, and how to bind values."""

    dialect: Dialect
    timezone: str
    as_of: dt.datetime  # aware instant: the store's clock for this query
    settings: AccountSettings
    param: Callable[[object], str]  # binds a value and returns its marker
    # The query's time grain (GROUP BY / TIMESERIES month ...), None without one, and its
    # reporting window: relations whose rows are account-periods (churn) need them.
    grain: str | None = None
    window: DateWindow | None = None
    # The COMPARE TO windows of the query (they read the same relation).
    comparison_windows: tuple[DateWindow, ...] = ()

    @property
    def as_of_date(self) -> dt.date:
        return self.as_of.astimezone(ZoneInfo(self.timezone)).date()

    def local_date(self, instant: str) -> str:
        return self.dialect.local_date(self.timezone, instant)

    def days(self, start: str, end: str) -> str:
        return self.dialect.diff("day", start, end)


# The store tables a model relation reads, when it is not a store table itself: a store whose
# manifest names one of them under `missing_tables` (an import without that export) cannot answer.
RELATION_TABLES: dict[str, tuple[str, ...]] = {
    "inventory_periods": ("inventory_levels",),
    "discount_lines": ("sales",),
    "order_fulfillments": ("orders",),
    "return_lines": ("refunds", "refund_line_items"),
}


def missing_data(relation: str, table_name: str, manifest: Mapping[str, object]) -> str | None:
    """Why a store cannot answer `FROM table_name` (whose relation is `relation`), or None when it can.

    Importers list the tables only an export of their own fills (inventory_levels, transactions)
    under the manifest's `missing_tables`, with the export needed, when the import had none.
    """
    missing = manifest.get("missing_tables")
    if not isinstance(missing, Mapping):
        return None
    for store_table in RELATION_TABLES.get(relation, (relation,)):
        reason = missing.get(store_table)
        if isinstance(reason, str):
            return f"table `{table_name}` has no data in this store: {reason}"
    return None


def derived_relation_sql(name: str, context: DerivedContext) -> str:
    """The SELECT defining the derived relation `name` (one of DERIVED_RELATIONS)."""
    if name in ACCOUNT_FACTS:
        return account_facts_sql(ACCOUNT_FACTS[name], context)
    if name in COHORT_GRAINS:
        from commerceql.cohorts import cohort_sql

        return cohort_sql(COHORT_GRAINS[name], context)
    if name == ABANDONED_CHECKOUTS:
        return abandoned_checkouts_sql(context)
    module_name, function_name = OTHER_RELATIONS[name]
    module = importlib.import_module(module_name)
    return str(getattr(module, function_name)(context))



def account_facts_sql(key: str, c: DerivedContext) -> str:
    """One row per account (`key` = customer_id or company_id) with its order history as of the clock."""
    q = c.dialect.quote_identifier
    as_of = c.param(c.as_of)
    as_of_date = c.param(c.as_of_date)
    window_start = c.param(c.as_of - dt.timedelta(days=c.settings.rfm_window_days))
    order_date = c.local_date("o.created_at")
    factor = float(c.settings.overdue_factor)
    scored = ", ".join(
        [
            _SCORE.format(order="days_since_last_order DESC") + " AS recency_score",
            _SCORE.format(order="orders_in_window") + " AS frequency_score",
            _SCORE.format(order="net_sales_in_window") + " AS monetary_score",
        ]
    )
    groups = " ".join(f"WHEN {test} THEN '{label}'" for label, test in RFM_GROUPS)
    first_type = (
        "(SELECT li.order_id, p.product_type, ROW_NUMBER() OVER (PARTITION BY li.order_id "
        f"ORDER BY li.gross DESC, li.line_item_id) AS line_rank FROM {q('line_items')} AS li "
        f"LEFT JOIN {q('products')} AS p ON p.product_id = li.product_id)"
    )
    return f"""SELECT f.*,
    {c.days('f.last_order_date', as_of_date)} AS days_since_last_order,
    CASE WHEN f.median_days_between_orders IS NOT NULL
      THEN CAST({c.dialect.add_days('f.last_order_date', 'CAST(ROUND(f.median_days_between_orders) AS INTEGER)')} AS DATE) END
      AS expected_next_order_date,
    CASE WHEN f.median_days_between_orders > 0
      THEN {c.days('f.last_order_date', as_of_date)} > {factor!r} * f.median_days_between_orders
      WHEN f.orders_count >= 2 THEN FALSE END AS is_overdue,
    CASE WHEN f.average_days_between_orders > 0 THEN 365.25 / f.average_days_between_orders END AS orders_per_year,
    r.recency_score, r.frequency_score, r.monetary_score,
    CASE WHEN r.recency_score IS NOT NULL THEN CAST(r.recency_score AS {c.dialect.text_type})
      || CAST(r.frequency_score AS {c.dialect.text_type}) || CAST(r.monetary_score AS {c.dialect.text_type}) END
      AS rfm_score,
    CASE WHEN r.recency_score IS NULL THEN 'Lost' {groups} END AS rfm_group
  FROM (
    SELECT h.{key},
        COUNT(*) AS orders_count,
        MIN(h.created_at) AS first_order_at,
        MAX(h.created_at) AS last_order_at,
        MIN(h.order_date) AS first_order_date,
        MAX(h.order_date) AS last_order_date,
        CAST({c.dialect.add_days('MIN(h.order_date)', '1 - day(MIN(h.order_date))')} AS DATE) AS first_order_month,
        SUM(h.current_total) AS amount_spent,
        median(h.gap_days) AS median_days_between_orders,
        CASE WHEN COUNT(*) > 1 THEN CAST({c.days('MIN(h.order_date)', 'MAX(h.order_date)')} AS DOUBLE) / (COUNT(*) - 1)
          END AS average_days_between_orders,
        COUNT(*) FILTER (WHERE h.created_at >= {window_start}) AS orders_in_window,
        MAX(CASE WHEN h.order_rank = 1 THEN h.sales_channel END) AS first_sales_channel,
        MAX(CASE WHEN h.order_rank = 1 THEN h.referrer_source END) AS first_referrer_source,
        MAX(CASE WHEN h.order_rank = 1 THEN h.first_product_type END) AS first_product_type
      FROM (
        SELECT o.{key}, o.created_at, {order_date} AS order_date, o.sales_channel, o.referrer_source,
            o.total - COALESCE(o.total_refunded, 0) AS current_total,
            t.product_type AS first_product_type,
            ROW_NUMBER() OVER (PARTITION BY o.{key} ORDER BY o.created_at, o.order_id) AS order_rank,
            {c.days(f'LAG({order_date}) OVER (PARTITION BY o.{key} ORDER BY o.created_at, o.order_id)', order_date)}
              AS gap_days
          FROM {q('orders')} AS o
          LEFT JOIN {first_type} AS t ON t.order_id = o.order_id AND t.line_rank = 1
          WHERE o.{key} IS NOT NULL AND NOT COALESCE(o.is_test, FALSE) AND o.created_at <= {as_of}
      ) AS h
      GROUP BY h.{key}
  ) AS f
  LEFT JOIN (
    SELECT a.{key}, {scored}
      FROM (
        SELECT w.{key}, {c.days(f'MAX({c.local_date("w.created_at")})', as_of_date)} AS days_since_last_order,
            COUNT(*) AS orders_in_window,
            COALESCE(MAX(s.net_sales), 0) AS net_sales_in_window
          FROM {q('orders')} AS w
          LEFT JOIN (
            SELECT {key}, SUM(net_sales) AS net_sales FROM {q('sales')}
              WHERE {key} IS NOT NULL AND happened_at >= {window_start} AND happened_at <= {as_of}
              GROUP BY {key}
          ) AS s ON s.{key} = w.{key}
          WHERE w.{key} IS NOT NULL AND NOT COALESCE(w.is_test, FALSE)
            AND w.created_at >= {window_start} AND w.created_at <= {as_of}
          GROUP BY w.{key}
      ) AS a
  ) AS r ON r.{key} = f.{key}"""


def abandoned_checkouts_sql(c: DerivedContext) -> str:
    """One row per customer with an abandoned checkout up to the clock: the latest one (recovered or not)."""
    q = c.dialect.quote_identifier
    return (
        f"SELECT k.customer_id, MAX(k.created_at) AS last_abandoned_at, COUNT(*) AS abandoned_checkouts "
        f"FROM {q('checkouts')} AS k WHERE k.customer_id IS NOT NULL AND k.is_abandoned "
        f"AND k.created_at <= {c.param(c.as_of)} GROUP BY k.customer_id"
    )
