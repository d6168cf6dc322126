"""The `inventory` table (daily snapshots per variant and location, read per period) against Polars.

Expected values are computed here from the definitions in docs/data-model.md (Inventory) with
Polars over the store's raw Parquet files (`inventory_levels`, `sales`, `refund_line_items`,
`variants`), never from the compiler's SQL. The invariants of the generated snapshots are checked
too: each day's ending units = starting + received + returned - sold, a day starts where the day
before ended, stock never goes negative, and the units the snapshots say were sold (and put back)
are exactly the units of the sales (and restocked refund lines) of the store.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.errors import CommerceQLError

TZ = "America/New_York"


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def levels(sample_store_path) -> pl.DataFrame:
    return raw(sample_store_path, "inventory_levels")


# ---- invariants of the snapshots ------------------------------------------------------------------


def test_each_day_adds_up_and_follows_the_day_before(levels):
    identity = levels.filter(
        pl.col("ending_units") != pl.col("starting_units") + pl.col("units_received") + pl.col("units_returned")
        - pl.col("units_sold")
    )
    assert identity.height == 0
    assert levels["ending_units"].min() >= 0
    ordered = levels.sort("variant_id", "location", "day").with_columns(
        pl.col("ending_units").shift(1).over("variant_id", "location").alias("previous_end"),
        pl.col("day").shift(1).over("variant_id", "location").alias("previous_day"),
    )
    followed = ordered.filter(pl.col("previous_day").is_not_null())
    assert followed.filter(pl.col("starting_units") != pl.col("previous_end")).height == 0
    # one snapshot a day, without gaps, from the first day each item is stocked
    assert followed.filter(pl.col("day") - pl.col("previous_day") != dt.timedelta(days=1)).height == 0


def test_units_sold_are_the_units_ordered_each_store_day(sample_store_path, levels):
    sales = raw(sample_store_path, "sales").filter(
        (pl.col("event_type") == "order") & (pl.col("line_type") == "product")
    )
    ordered = (
        sales.with_columns(pl.col("happened_at").dt.convert_time_zone(TZ).dt.date().alias("day"))
        .group_by("variant_id", "day").agg(pl.col("quantity").sum().cast(pl.Int64).alias("ordered"))
    )
    sold = levels.group_by("variant_id", "day").agg(pl.col("units_sold").sum().cast(pl.Int64).alias("sold"))
    both = ordered.join(sold, on=["variant_id", "day"], how="full", coalesce=True).fill_null(0)
    assert both.filter(pl.col("ordered") != pl.col("sold")).height == 0
    assert both["sold"].sum() > 0


def test_restocked_refund_lines_come_back_to_stock(sample_store_path, levels):
    lines = raw(sample_store_path, "refund_line_items").filter(pl.col("restock_type") != "no_restock")
    expected = lines.group_by("variant_id").agg(pl.col("quantity").sum().cast(pl.Int64).alias("expected"))
    got = levels.group_by("variant_id").agg(pl.col("units_returned").sum().cast(pl.Int64).alias("got"))
    both = expected.join(got, on="variant_id", how="full", coalesce=True).fill_null(0)
    assert both.filter(pl.col("expected") != pl.col("got")).height == 0


def test_trailing_units_are_the_last_thirty_days(levels):
    ordered = levels.sort("variant_id", "location", "day").with_columns(
        pl.col("units_sold").rolling_sum(30, min_samples=1).over("variant_id", "location").alias("rolled")
    )
    assert ordered.filter(pl.col("rolled") != pl.col("units_sold_trailing_30_days")).height == 0


# ---- the oracle per period ----------------------------------------------------------------------


def periods_oracle(levels: pl.DataFrame, start: dt.date, end: dt.date, keys: list[str]) -> pl.DataFrame:
    """Per month (cut at start / end) and `keys`: the inventory metrics by their definitions."""
    window = levels.filter((pl.col("day") >= start) & (pl.col("day") < end)).with_columns(
        pl.max_horizontal(pl.col("day").dt.truncate("1mo"), pl.lit(start)).alias("month")
    )
    per_item = window.sort("day").group_by("variant_id", "location", "month").agg(
        pl.col("starting_units").first().alias("start"),
        pl.col("ending_units").last().alias("end"),
        pl.col("units_sold").sum().alias("sold"),
        pl.col("units_sold_trailing_30_days").last().alias("trailing"),
        pl.col("day").max().alias("last"),
    )
    # the trailing 30 days recomputed from units sold (not the stored column)
    daily = levels.select("variant_id", "location", "day", "units_sold")
    trailing = (
        per_item.select("variant_id", "location", "month", "last")
        .join(daily, on=["variant_id", "location"])
        .filter((pl.col("day") <= pl.col("last")) & (pl.col("day") > pl.col("last") - dt.timedelta(days=30)))
        .group_by("variant_id", "location", "month").agg(pl.col("units_sold").sum().alias("trailing_recomputed"))
    )
    per_item = per_item.join(trailing, on=["variant_id", "location", "month"], how="left")
    assert per_item.filter(pl.col("trailing") != pl.col("trailing_recomputed")).height == 0
    grouped = per_item.group_by(["month", *keys]).agg(
        pl.col("start").sum(), pl.col("end").sum(), pl.col("sold").sum(), pl.col("trailing").sum()
    )
    return grouped.with_columns(
        (pl.col("sold") / (pl.col("sold") + pl.col("end"))).alias("sell_through_rate"),
        (pl.col("end") / (pl.col("trailing") / 30.0)).alias("days_remaining"),
    ).sort(["month", *keys])


def test_monthly_units_sell_through_and_days_remaining(store, levels):
    start, end = dt.date(2025, 6, 15), dt.date(2025, 9, 1)
    result = store.query(
        "FROM inventory SHOW starting_inventory_units, inventory_units_sold, ending_inventory_units, "
        "sell_through_rate, days_of_inventory_remaining, inventory_units_sold_per_day "
        "GROUP BY month SINCE 2025-06-15 UNTIL 2025-08-31 ORDER BY month"
    ).df
    expected = periods_oracle(levels, start, end, [])
    assert result.height == expected.height == 3
    assert result["month"].to_list() == [dt.date(2025, 6, 1), dt.date(2025, 7, 1), dt.date(2025, 8, 1)]
    days = [16, 31, 31]  # the June period starts on the 15th: the range's part of the month
    for row, want, n_days in zip(result.iter_rows(named=True), expected.iter_rows(named=True), days, strict=True):
        assert int(row["starting_inventory_units"]) == want["start"]
        assert int(row["ending_inventory_units"]) == want["end"]
        assert int(row["inventory_units_sold"]) == want["sold"]
        assert row["sell_through_rate"] == pytest.approx(want["sell_through_rate"])
        assert row["days_of_inventory_remaining"] == pytest.approx(want["days_remaining"])
        assert row["inventory_units_sold_per_day"] == pytest.approx(want["sold"] / n_days)


def test_by_location_with_values(store, levels, sample_store_path):
    variants = raw(sample_store_path, "variants").select("variant_id", "unit_cost", "price")
    result = store.query(
        "FROM inventory SHOW ending_inventory_units, ending_inventory_value, ending_inventory_retail_value, "
        "inventory_units_received, inventory_units_returned, days_out_of_stock, inventory_units_net_change "
        "GROUP BY location_name DURING last_month ORDER BY location_name"
    ).df
    month = levels.filter((pl.col("day") >= dt.date(2025, 11, 1)) & (pl.col("day") < dt.date(2025, 12, 1)))
    last = month.filter(pl.col("day") == pl.col("day").max().over("variant_id", "location"))
    first = month.filter(pl.col("day") == pl.col("day").min().over("variant_id", "location"))
    valued = last.join(variants, on="variant_id").group_by("location").agg(
        pl.col("ending_units").sum().alias("end"),
        (pl.col("ending_units").cast(pl.Float64) * pl.col("unit_cost").cast(pl.Float64)).sum().alias("value"),
        (pl.col("ending_units").cast(pl.Float64) * pl.col("price").cast(pl.Float64)).sum().alias("retail"),
    )
    flows = month.group_by("location").agg(
        pl.col("units_received").sum().alias("received"), pl.col("units_returned").sum().alias("returned"),
        (pl.col("ending_units") == 0).sum().alias("out"),
    )
    starts = first.group_by("location").agg(pl.col("starting_units").sum().alias("start"))
    expected = valued.join(flows, on="location").join(starts, on="location").sort("location")
    assert result["location_name"].to_list() == expected["location"].to_list() == ["Flagship Store", "Main Warehouse"]
    for row, want in zip(result.iter_rows(named=True), expected.iter_rows(named=True), strict=True):
        assert int(row["ending_inventory_units"]) == want["end"]
        assert float(row["ending_inventory_value"]) == pytest.approx(want["value"], abs=0.01)
        assert float(row["ending_inventory_retail_value"]) == pytest.approx(want["retail"], abs=0.01)
        assert int(row["inventory_units_received"]) == want["received"]
        assert int(row["inventory_units_returned"]) == want["returned"]
        assert int(row["days_out_of_stock"]) == want["out"]
        assert int(row["inventory_units_net_change"]) == want["end"] - want["start"]


def abc_oracle(sample_store_path, levels: pl.DataFrame, start: dt.datetime, end: dt.datetime) -> dict[int, str]:
    sales = raw(sample_store_path, "sales").filter(
        pl.col("variant_id").is_not_null() & (pl.col("happened_at") >= start.astimezone(dt.UTC))
        & (pl.col("happened_at") < end.astimezone(dt.UTC))
    )
    revenue = sales.group_by("variant_id").agg(pl.col("gross_sales").cast(pl.Float64).sum().alias("revenue"))
    stocked = levels.select("variant_id").unique()
    ranked = (stocked.join(revenue, on="variant_id", how="left").fill_null(0.0)
              .sort(["revenue", "variant_id"], descending=[True, False]))
    total = ranked["revenue"].sum()
    before = ranked["revenue"].cum_sum() - ranked["revenue"]
    grades = {}
    for variant, share_before in zip(ranked["variant_id"], before / total, strict=True):
        grades[variant] = "A" if share_before < 0.8 else "B" if share_before < 0.95 else "C"
    return grades


def test_abc_grades_rank_gross_sales_of_the_range(store, levels, sample_store_path):
    zone = ZoneInfo(TZ)
    expected = abc_oracle(sample_store_path, levels, dt.datetime(2025, 11, 1, tzinfo=zone),
                          dt.datetime(2025, 12, 1, tzinfo=zone))
    result = store.query(
        "FROM inventory SHOW ending_inventory_units GROUP BY product_variant_id, product_variant_abc_grade "
        "DURING last_month LIMIT 5000"
    ).df
    got = dict(zip(result["product_variant_id"], result["product_variant_abc_grade"], strict=True))
    assert got == expected
    counts = {g: list(got.values()).count(g) for g in "ABC"}
    assert counts["A"] < counts["B"] + counts["C"]  # a few variants make most of the sales


def test_totals_across_locations_match_the_per_location_rows(store):
    total = store.query("FROM inventory SHOW ending_inventory_units, inventory_units_sold DURING last_quarter").df
    split = store.query("FROM inventory SHOW ending_inventory_units, inventory_units_sold GROUP BY location_name "
                        "DURING last_quarter").df
    assert int(total["ending_inventory_units"][0]) == int(split["ending_inventory_units"].sum())
    assert int(total["inventory_units_sold"][0]) == int(split["inventory_units_sold"].sum())


def test_sub_day_grains_are_refused(store):
    with pytest.raises(CommerceQLError, match="once a day"):
        store.query("FROM inventory SHOW inventory_units_sold TIMESERIES hour SINCE -1d")


SPARK_QUERIES = [
    "FROM inventory SHOW starting_inventory_units, inventory_units_sold, ending_inventory_units, sell_through_rate, "
    "days_of_inventory_remaining GROUP BY month SINCE 2025-06-15 UNTIL 2025-08-31",
    "FROM inventory SHOW ending_inventory_units, ending_inventory_value, days_out_of_stock GROUP BY location_name, "
    "product_variant_abc_grade DURING last_month",
    "FROM inventory SHOW inventory_units_sold, ending_inventory_units TIMESERIES week DURING last_quarter "
    "COMPARE TO previous_year",
]
