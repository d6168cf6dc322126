"""Attribution models (`WITH LAST_NON_DIRECT_CLICK_ATTRIBUTION` ...) against Polars over the raw files.

The oracle is written here from the definition in docs/language.md (touchpoints = the buyer's
visits in the 30 days up to the visit that placed the order), with Polars joins and sorts, not
with the compiler's SQL: each model's credited channel per order, then the period's sales rows
grouped by it.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.errors import CommerceQLSemanticError

PERIOD = "SINCE 2025-01-01 UNTIL 2025-06-30"
START, END = dt.date(2025, 1, 1), dt.date(2025, 6, 30)
MODELS = ("first_click", "last_click", "last_non_direct_click", "any_click")

SPARK_QUERIES = [
    f"FROM sales SHOW net_sales, orders GROUP BY referring_channel WITH {m.upper()}_ATTRIBUTION, TOTALS {PERIOD}"
    for m in MODELS
] + [
    f"FROM sales SHOW net_sales GROUP BY order_referrer_source TIMESERIES month WITH LAST_NON_DIRECT_CLICK_ATTRIBUTION "
    f"{PERIOD} ORDER BY net_sales__last_non_direct_click DESC",
]


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def credited(sample_store_path) -> dict[str, pl.DataFrame]:
    """Per model: order_id -> (referrer_source, referring_channel) of each credited touchpoint."""
    sessions = raw(sample_store_path, "sessions").select(
        "session_id", "visitor_id", "started_at", "order_id",
        pl.col("referrer_source").cast(pl.String), pl.col("referring_channel").cast(pl.String))
    placed = (sessions.filter(pl.col("order_id").is_not_null())
              .sort(["started_at", "session_id"], descending=True)
              .unique("order_id", keep="first")
              .select("order_id", pl.col("visitor_id"), pl.col("started_at").alias("placed_at"),
                      pl.col("session_id").alias("placed_session")))
    touches = (placed.join(sessions.drop("order_id"), on="visitor_id")
               .filter((pl.col("started_at") <= pl.col("placed_at"))
                       & (pl.col("started_at") > pl.col("placed_at") - pl.duration(days=30)))
               .with_columns(direct=(pl.col("referring_channel") == "Direct") | (pl.col("referrer_source") == "direct")))
    keep = ["order_id", "referrer_source", "referring_channel"]
    first = touches.sort(["started_at", "session_id"]).unique("order_id", keep="first").select(keep)
    last = touches.filter(pl.col("session_id") == pl.col("placed_session")).select(keep)
    non_direct = (touches.sort(["direct", "started_at", "session_id"], descending=[False, True, True])
                  .unique("order_id", keep="first").select(keep))
    any_click = touches.select(keep).unique()
    return {"first_click": first, "last_click": last, "last_non_direct_click": non_direct, "any_click": any_click}


def _period_sales(sample_store_path: Path, timezone: str) -> pl.DataFrame:
    sales = raw(sample_store_path, "sales")
    local_day = pl.col("happened_at").dt.convert_time_zone(timezone).dt.date()
    return sales.filter(local_day.is_between(START, END))


def _expected(sales: pl.DataFrame, credit: pl.DataFrame, channel: str) -> pl.DataFrame:
    joined = sales.join(credit, on="order_id", how="left")
    return joined.group_by(channel).agg(
        pl.col("net_sales").sum().alias("net_sales"),
        pl.col("order_id").filter(pl.col("event_type") == "order").n_unique().alias("orders"),
    )


@pytest.mark.parametrize("model", MODELS)
def test_each_model_credits_the_channel_its_definition_picks(store, sample_store_path, credited, model):
    got = store.query(f"FROM sales SHOW net_sales, orders GROUP BY referring_channel "
                      f"WITH {model.upper()}_ATTRIBUTION, TOTALS {PERIOD}").df
    sales = _period_sales(sample_store_path, store.timezone)
    expected = _expected(sales, credited[model], "referring_channel").rename(
        {"net_sales": f"net_sales__{model}", "orders": f"orders__{model}"})
    own = _expected(sales, raw(sample_store_path, "orders").select("order_id", pl.col("referring_channel").cast(pl.String)),
                    "referring_channel")
    joined = (got.join(expected, on="referring_channel", how="full", coalesce=True, nulls_equal=True, suffix="_hand")
              .join(own, on="referring_channel", how="full", coalesce=True, nulls_equal=True, suffix="_own"))
    assert joined.height >= 6
    for column in (f"net_sales__{model}", f"orders__{model}"):
        assert (joined[column].fill_null(0) == joined[f"{column}_hand"].fill_null(0)).all(), column
    # the plain columns stay the order's own referrer
    assert (joined["net_sales"].fill_null(0) == joined["net_sales_own"].fill_null(0)).all()
    # crediting moves orders between channels, never in or out of the period: totals are the metric's
    assert got[f"net_sales__{model}__totals"][0] == got["net_sales__totals"][0] == sales["net_sales"].sum()
    if model != "any_click":
        assert got[f"net_sales__{model}"].sum() == got["net_sales__totals"][0]
    else:  # full credit to every channel touched: the channels add up to more than the total
        assert got[f"net_sales__{model}"].sum() > got["net_sales__totals"][0]


def test_last_click_is_the_orders_own_referrer(store):
    got = store.query(f"FROM sales SHOW net_sales GROUP BY order_referrer_source WITH LAST_CLICK_ATTRIBUTION {PERIOD}").df
    assert got.height > 5
    assert (got["net_sales"] == got["net_sales__last_click"]).all()


def test_last_non_direct_moves_credit_away_from_direct(store):
    got = store.query(f"FROM sales SHOW orders GROUP BY referring_channel WITH LAST_NON_DIRECT_CLICK_ATTRIBUTION "
                      f"{PERIOD}").df
    direct = got.filter(pl.col("referring_channel") == "Direct")
    assert direct["orders__last_non_direct_click"][0] < direct["orders"][0]


def test_attribution_columns_sort_filter_and_read_as_headers(store):
    result = store.query(f"FROM sales SHOW net_sales GROUP BY referring_channel WITH ANY_CLICK_ATTRIBUTION {PERIOD} "
                         "HAVING net_sales__any_click > 100000 ORDER BY net_sales__any_click DESC")
    values = result.df["net_sales__any_click"].to_list()
    assert values == sorted(values, reverse=True) and min(values) > 100000
    from commerceql.display import column_headers

    assert column_headers(result)["net_sales__any_click"] == "Net sales (any click)"


@pytest.mark.parametrize(
    ("query", "message", "hint"),
    [
        ("FROM sales SHOW net_sales WITH LAST_CLICK_ATTRIBUTION", "groups by none", "GROUP BY referring_channel"),
        ("FROM sales SHOW net_sales GROUP BY referring_channel WITH LINEAR_ATTRIBUTION",
         "does not split metrics", "ANY_CLICK_ATTRIBUTION"),
        ("FROM sessions SHOW sessions GROUP BY referring_channel WITH FIRST_CLICK_ATTRIBUTION",
         "reads them from `sales` only", "FROM sales"),
        ("FROM sales SHOW net_sales GROUP BY TOP 3 referring_channel WITH LAST_CLICK_ATTRIBUTION",
         "and TOP cannot be combined yet", "ORDER BY"),
        ("FROM sales SHOW net_sales GROUP BY referring_channel HAVING net_sales__last_click > 0",
         "is an attribution column, and this query has no LAST_CLICK_ATTRIBUTION", "WITH LAST_CLICK_ATTRIBUTION"),
        ("FROM sales SHOW net_sales GROUP BY referring_channel WITH LAST_CLIK_ATTRIBUTION",
         "unknown WITH modifier", "LAST_CLICK_ATTRIBUTION"),
    ],
)
def test_attribution_that_cannot_be_answered_is_refused_at_its_words(store, query, message, hint):
    from commerceql.errors import CommerceQLError

    with pytest.raises(CommerceQLError) as caught:
        store.query(query)
    error = caught.value
    assert message in error.message and hint in (error.hint or ""), error.render()
    assert error.span is not None and "^" in error.render()


def test_a_store_without_visits_refuses_attribution_with_the_reason(sample_store_path, tmp_path):
    copy = tmp_path / "no-sessions"
    shutil.copytree(sample_store_path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["empty_tables"] = {"sessions": "Shopify admin exports hold no online-store sessions"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with cql.connect(copy) as store:
        with pytest.raises(CommerceQLSemanticError) as caught:
            store.query("FROM sales SHOW net_sales GROUP BY referring_channel WITH LAST_NON_DIRECT_CLICK_ATTRIBUTION")
        assert "Shopify admin exports hold no online-store sessions" in caught.value.message
        assert caught.value.span is not None and caught.value.span.column == 59
        # the order's own referrer still answers
        assert store.query("FROM sales SHOW net_sales GROUP BY referring_channel").df.height > 1
