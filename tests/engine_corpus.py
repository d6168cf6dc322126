"""One query corpus for every engine: Shopify's documented queries, every docs example, and
the queries of the result tests (time semantics, comparisons, TOP, totals, every table)."""

from __future__ import annotations

import re
from pathlib import Path

from test_conformance_parse import DOCS

ROOT = Path(__file__).resolve().parents[1]
_BLOCK = re.compile(r"```cql\n(?P<query>.*?)```", re.DOTALL)

RESULT_QUERIES = [
    "FROM sales SHOW net_sales, orders, average_order_value GROUP BY sales_channel WITH TOTALS DURING last_year",
    "FROM sales SHOW gross_sales, discounts, sales_reversals, net_sales, taxes, shipping_charges, total_sales TIMESERIES month DURING last_year",
    "FROM sales SHOW net_sales TIMESERIES day DURING this_year COMPARE TO previous_year WITH TOTALS, PERCENT_CHANGE",
    "FROM sales SHOW net_sales TIMESERIES day DURING last_month COMPARE TO previous_year_match_day_of_week",
    "FROM sales SHOW net_sales, orders TIMESERIES week DURING last_quarter COMPARE TO previous_period",
    "FROM sales SHOW net_sales TIMESERIES quarter SINCE -2y COMPARE TO previous_year",
    "FROM sales SHOW net_sales TIMESERIES year SINCE 2023-01-01 UNTIL 2025-12-31",
    "FROM sales SHOW net_sales, orders TIMESERIES hour SINCE 2025-03-09 UNTIL 2025-03-09",
    "FROM sales SHOW net_sales TIMESERIES hour SINCE 2024-11-03 UNTIL 2024-11-03 COMPARE TO previous_day",
    "FROM sales SHOW net_sales TIMESERIES hour SINCE 2025-06-02 UNTIL 2025-06-02 COMPARE TO previous_year",
    "FROM sales SHOW net_sales TIMESERIES hour SINCE 2025-06-01 UNTIL 2025-06-01 WITH TIMEZONE 'Asia/Kolkata'",
    "FROM sales SHOW net_sales TIMESERIES minute SINCE 2025-12-14T10:00:00 UNTIL 2025-12-14T11:00:00",
    "FROM sales SHOW net_sales, orders GROUP BY day_of_week, hour_of_day DURING last_week",
    "FROM sales SHOW net_sales GROUP BY week_of_year, month_of_year DURING last_year",
    "FROM sales SHOW net_sales GROUP BY hour_of_day WHERE hour_of_day IN (9, 10) DURING last_month",
    "FROM sales SHOW net_sales GROUP BY month, TOP 3 product_title DURING last_quarter COMPARE TO previous_year",
    "FROM sales SHOW net_sales, customers GROUP BY TOP 5 billing_region WITH TOTALS DURING last_year",
    "FROM sales SHOW net_sales GROUP BY ONLY TOP 5 product_type DURING last_year",
    "FROM sales SHOW net_sales, orders GROUP BY TOP 3 OVERALL product_title TIMESERIES month DURING last_quarter",
    "FROM sales SHOW net_sales GROUP BY customer_type, sales_channel WITH TOTALS, GROUP_TOTALS DURING last_quarter",
    "FROM sales SHOW net_sales, average_order_value TIMESERIES month DURING last_year WITH CUMULATIVE_VALUES COMPARE TO previous_year",
    "FROM sales SHOW net_sales GROUP BY billing_region HAVING net_sales > 10000 ORDER BY net_sales DESC LIMIT 5 OFFSET 1 DURING last_year",
    "FROM sales SHOW net_sales - discounts AS net_less, net_sales / orders AS per_order GROUP BY sales_channel DURING last_month",
    "FROM sales SHOW orders WHERE product_variant_price * 2 > 10 DURING last_month",
    "FROM sales SHOW net_sales WHERE sales_channel != 'Online Store' AND NOT (billing_region IN ('Ontario', 'Texas')) DURING last_year",
    "FROM sales SHOW net_sales WHERE product_title STARTS WITH 'a' OR product_title ENDS WITH 'e' OR product_title CONTAINS 'wool' DURING last_year",
    "FROM sales SHOW net_sales WHERE customer_tags CONTAINS 'vip' DURING last_year",
    "FROM sales SHOW net_sales WHERE discount_code IS NULL DURING last_month",
    "FROM sales SHOW net_sales WHERE product_variant_price BETWEEN 10 AND 50 GROUP BY product_type DURING last_month",
    "FROM sales SHOW net_sales GROUP BY new_or_returning_customer, company_tier DURING last_year",
    "FROM sales SHOW net_sales WHERE sales_channel = 'online store' DURING last_month",
    "FROM sales, sessions SHOW net_sales, sessions TIMESERIES month DURING last_quarter",
    "FROM sessions SHOW sessions, conversion_rate GROUP BY referrer_source DURING last_month",
    "FROM checkouts SHOW checkouts, abandoned_checkouts, checkout_recovery_rate TIMESERIES month DURING last_quarter",
    "FROM draft_orders SHOW open_quotes, open_quote_value, quote_acceptance_rate GROUP BY company_industry",
    "FROM orders SHOW orders, order_total GROUP BY financial_status DURING last_year",
    "FROM customers SHOW customers GROUP BY customer_first_order_date WHERE customer_first_order_date >= 2025-11-25",
    "FROM customers SHOW customers GROUP BY customer_last_order_date ORDER BY customer_last_order_date DESC LIMIT 20",
    "FROM products SHOW products GROUP BY product_discontinued_date ORDER BY product_discontinued_date LIMIT 20",
    "FROM customers SHOW customers GROUP BY customer_first_order_date TIMESERIES hour SINCE -7q",
    "FROM sales SHOW net_sales GROUP BY product_type TIMESERIES month DURING last_year COMPARE TO previous_year",
]


def docs_examples() -> list[str]:
    queries = []
    for path in sorted((ROOT / "docs").glob("*.md")):
        queries += [m.group("query") for m in _BLOCK.finditer(path.read_text(encoding="utf-8"))]
    return queries


# The test modules whose `SPARK_QUERIES` join the corpus (each feature names its own queries).
FEATURE_MODULES = (
    "test_cohorts", "test_churn", "test_funnels", "test_older_forms", "test_sales_schema", "test_inventory",
    "test_payments", "test_currency", "test_generated_columns", "test_top_within_groups",
    "test_window_calculations", "test_attribution", "test_commerce_tables",
)


def account_queries() -> list[tuple[str, str]]:
    """The queries each feature's test module names for every engine (`SPARK_QUERIES`)."""
    import importlib

    items = []
    for module_name in FEATURE_MODULES:
        module = importlib.import_module(module_name)
        name = module_name.removeprefix("test_")
        items += [(f"{name}{i:02d}", q) for i, q in enumerate(module.SPARK_QUERIES)]
    return items


def corpus() -> list[tuple[str, str]]:
    """(id, query text) for every query of the corpus."""
    items = [(f"result{i:02d}", q) for i, q in enumerate(RESULT_QUERIES)]
    items += account_queries()
    items += [(f"shopify{i:02d}", text) for i, (_url, text) in enumerate(DOCS)]
    items += [(f"docs{i:02d}", q) for i, q in enumerate(docs_examples())]
    return items
