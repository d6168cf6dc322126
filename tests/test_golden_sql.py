"""Golden SQL snapshots: the compiled SQL of representative queries, reviewed and kept in git.

A change to the compiler that changes any of these shows up as a diff to review. To accept new
output, run `COMMERCEQL_UPDATE_GOLDEN=1 pytest tests/test_golden_sql.py` and review the diff.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from commerceql.compiler import compile_plan, inline_parameters
from commerceql.dialect import DIALECTS
from commerceql.model import builtin_model
from commerceql.parser import parse
from commerceql.resolver import resolve

GOLDEN = Path(__file__).parent / "golden"
NOW = dt.datetime(2025, 12, 15, 14, 0, tzinfo=ZoneInfo("America/New_York"))

QUERIES = {
    "simple_total": "FROM sales SHOW net_sales",
    "group_by_channel": "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month",
    "join_dimension": "FROM sales SHOW net_sales GROUP BY product_type, company_tier DURING last_year",
    "where_operators": (
        "FROM sales SHOW net_sales WHERE sales_channel != 'Wholesale' AND discount_code NOT IN ('A', 'B') "
        "AND customer_tags CONTAINS 'VIP' AND NOT (billing_region STARTS WITH 'New' OR is_b2b)"
    ),
    "timeseries_compare": "FROM sales SHOW net_sales TIMESERIES day DURING last_month COMPARE TO previous_year WITH PERCENT_CHANGE",
    "totals_and_group_totals": "FROM sales SHOW net_sales, average_order_value GROUP BY sales_channel, month WITH TOTALS, GROUP_TOTALS DURING last_quarter",
    "top_with_other": "FROM sales SHOW net_sales GROUP BY month, TOP 5 product_title DURING last_quarter",
    "cumulative": "FROM sales SHOW net_sales TIMESERIES month DURING last_year WITH CUMULATIVE_VALUES",
    "having_order_limit": "FROM sales SHOW net_sales, orders GROUP BY billing_region HAVING orders > 10 ORDER BY orders DESC LIMIT 5 OFFSET 5 SINCE -3m",
    "cyclical": "FROM sales SHOW orders GROUP BY day_of_week, hour_of_day DURING last_year WITH TIMEZONE 'Europe/Paris'",
    "arithmetic": 'FROM sales SHOW (net_sales + shipping_charges) / orders AS "Revenue per order" GROUP BY month DURING last_year',
}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("name", sorted(QUERIES))
def test_golden_sql(name: str, dialect: str) -> None:
    """DuckDB's files are tests/golden/*.sql (unchanged since before dialects); others in a subfolder."""
    plan = resolve(parse(QUERIES[name]), builtin_model(), now=NOW, timezone="America/New_York", currency="USD")
    compiled = compile_plan(plan, DIALECTS[dialect])
    sql = inline_parameters(compiled.sql, compiled.parameters, DIALECTS[dialect])
    text = f"-- {QUERIES[name]}\n" + sql.rstrip() + ";\n"
    path = GOLDEN / f"{name}.sql" if dialect == "duckdb" else GOLDEN / dialect / f"{name}.sql"
    path.parent.mkdir(exist_ok=True)
    if os.environ.get("COMMERCEQL_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") == "true" and not path.exists():
            pytest.fail(f"golden file {path.name} is missing; generate it locally and commit it")
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"compiled SQL of {name} changed; review and update the golden file"
