"""Account fields: per-customer and per-company history, added to every table whose rows belong to one.

A table declares which of its columns name an account:

    account_keys:
      customer: sales.customer_id
      company: sales.company_id

and the model loader gives it a join to the derived relation of that account kind
(`customer_facts` / `company_facts`, written by `commerceql.derived`) and one dimension per field
below. On the account's own table (`customers` for customer, `companies` for company) the fields
keep their plain names (`days_since_last_order`); elsewhere they are prefixed with the kind
(`customer_days_since_last_order`, `company_is_overdue`), so a sales row can be grouped by both
its buyer's and its company's state. A dimension the table already defines is never replaced.
Definitions: docs/accounts.md.
"""

from __future__ import annotations

from dataclasses import dataclass

ACCOUNT_KINDS = {"customer": ("customers", "customer_facts", "customer_id"),
                 "company": ("companies", "company_facts", "company_id")}


@dataclass(frozen=True)
class AccountField:
    name: str
    column: str  # column of the derived facts relation
    type: str
    description: str  # "{account}" is replaced by "customer" / "company"


ACCOUNT_FIELDS: tuple[AccountField, ...] = (
    AccountField("first_order_date", "first_order_date", "date",
                 "Date of the {account}'s first order (store time zone), from the orders in the store."),
    AccountField("first_order_month", "first_order_month", "date",
                 "First day of the month of the {account}'s first order: the {account}'s cohort."),
    AccountField("last_order_date", "last_order_date", "date",
                 "Date of the {account}'s most recent order at or before the store's clock."),
    AccountField("number_of_orders", "orders_count", "integer",
                 "Orders the {account} placed up to the store's clock (test orders excluded, cancelled ones counted)."),
    AccountField("amount_spent", "amount_spent", "money",
                 "What the {account} spent up to the store's clock: order totals less refunds."),
    AccountField("first_sales_channel", "first_sales_channel", "string",
                 "Sales channel of the {account}'s first order."),
    AccountField("acquisition_source", "first_referrer_source", "string",
                 "Referrer source of the {account}'s first order (google, email, direct ...; NULL off the online store)."),
    AccountField("first_product_type", "first_product_type", "string",
                 "Product type of the largest line of the {account}'s first order."),
    AccountField("days_since_last_order", "days_since_last_order", "integer",
                 "Days from the {account}'s last order date to the store's clock date."),
    AccountField("median_days_between_orders", "median_days_between_orders", "number",
                 "Median of the days between the {account}'s consecutive orders (NULL with fewer than two orders)."),
    AccountField("average_days_between_orders", "average_days_between_orders", "number",
                 "Days from the {account}'s first to last order divided by the intervals between them."),
    AccountField("expected_next_order_date", "expected_next_order_date", "date",
                 "Last order date plus the median interval: when the {account} would usually reorder."),
    AccountField("is_overdue", "is_overdue", "boolean",
                 "True when the days since the {account}'s last order exceed the store's overdue factor "
                 "(1.5 by default) times its median interval; NULL with fewer than two orders."),
    AccountField("orders_per_year", "orders_per_year", "number",
                 "365.25 divided by the {account}'s average days between orders."),
    AccountField("recency_score", "recency_score", "integer",
                 "1-5 quintile of the {account}'s days since last order among accounts active in the RFM window "
                 "(5 = most recent; NULL when not active)."),
    AccountField("frequency_score", "frequency_score", "integer",
                 "1-5 quintile of the {account}'s orders in the RFM window (5 = most orders)."),
    AccountField("monetary_score", "monetary_score", "integer",
                 "1-5 quintile of the {account}'s net sales in the RFM window (5 = most)."),
    AccountField("rfm_score", "rfm_score", "string", "Recency, frequency and monetary scores as text ('545')."),
    AccountField("rfm_group", "rfm_group", "string",
                 "RFM segment: Champions, Loyal, New, Promising, Needs attention, At risk, Hibernating, "
                 "Lost (no order in the RFM window) or Prospects (no order at all)."),
)


def field_name(field: AccountField, kind: str, table_name: str) -> str:
    """The dimension name of `field` on table `table_name` for account `kind`."""
    own_table = ACCOUNT_KINDS[kind][0]
    return field.name if table_name == own_table else f"{kind}_{field.name}"


def field_sql(field: AccountField, kind: str, key_sql: str) -> str:
    """The dimension's SQL: the facts column; an account with no order is a Prospect with 0 orders."""
    alias = ACCOUNT_KINDS[kind][1]
    fallback = {"rfm_group": "'Prospects'", "orders_count": "0", "amount_spent": "0"}.get(field.column)
    if fallback is None:
        return f"{alias}.{field.column}"
    # Rows without an account (a guest order) have none of these: NULL, not 'Prospects'.
    return f"CASE WHEN ({key_sql}) IS NOT NULL THEN COALESCE({alias}.{field.column}, {fallback}) END"


def join_on(kind: str, key_sql: str) -> str:
    _, alias, key = ACCOUNT_KINDS[kind]
    return f"{alias}.{key} = {key_sql}"
