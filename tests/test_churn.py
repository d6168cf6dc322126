"""Churn, lapse and reactivation per period (`customer_churn`, `company_churn`) against Polars.

Every expected value is computed here from the definitions in docs/churn.md, with Polars over the
store's raw `orders` (and `companies`) Parquet files, never from the compiler's SQL. The oracle
works from order days and lapse events directly (who had an order in the lapse window up to a day;
which order days are followed by no order within L days), not from the spells the SQL builds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql import derived
from commerceql.errors import CommerceQLError
from commerceql.plan import AccountSettings

DAY = dt.timedelta(days=1)
CUSTOMER_METRICS = ("active_customers_at_start", "active_customers_at_end", "new_customers",
                    "reactivated_customers", "reactivations", "lapsed_customers", "lapses",
                    "churned_customers", "retained_customers", "churn_rate", "retention_rate")
# Oracle column of each metric (company_churn's metrics say "companies" for "customers").
ORACLE = {"active_customers_at_start": "active_start", "active_customers_at_end": "active_end",
          "new_customers": "new", "reactivated_customers": "reactivated", "reactivations": "reactivations",
          "lapsed_customers": "lapsed", "lapses": "lapses", "churned_customers": "churned",
          "retained_customers": "retained", "churn_rate": "churn_rate", "retention_rate": "retention_rate"}
COMPANY = {name: name.replace("customers", "companies") for name in CUSTOMER_METRICS}


@pytest.fixture(scope="module")
def store(sample_store_path):
    with cql.connect(sample_store_path) as opened:
        yield opened


# ---- the oracle --------------------------------------------------------------------------------


@dataclasses.dataclass
class History:
    """Per account: distinct local order days, and the lapse and reactivation events they imply."""

    days: pl.DataFrame  # key, day
    lapses: pl.DataFrame  # key, day (lapse day, at or before the clock), final (no order after it)
    reactivations: pl.DataFrame  # key, day
    first: pl.DataFrame  # key, day (first order day)
    clock: dt.date


def history(path: Path, key: str, as_of: dt.datetime, tz: str, lapse_days: int) -> History:
    clock = as_of.astimezone(ZoneInfo(tz)).date()
    orders = raw(path, "orders").filter(
        pl.col(key).is_not_null() & ~pl.col("is_test").fill_null(False) & (pl.col("created_at") <= as_of))
    days = (orders.select(key, day=pl.col("created_at").dt.convert_time_zone(tz).dt.date())
            .unique().sort(key, "day"))
    days = days.with_columns(prev=pl.col("day").shift(1).over(key), next=pl.col("day").shift(-1).over(key))
    lapse = pl.duration(days=lapse_days)
    # Lapse: L days after an order not followed by another order within L days.
    lapses = (days.filter(pl.col("next").is_null() | ((pl.col("next") - pl.col("day")).dt.total_days() > lapse_days))
              .select(key, day=pl.col("day") + lapse, final=pl.col("next").is_null())
              .filter(pl.col("day") <= clock))
    reactivations = days.filter((pl.col("day") - pl.col("prev")).dt.total_days() > lapse_days).select(key, "day")
    first = days.group_by(key).agg(day=pl.col("day").min())
    return History(days.select(key, "day"), lapses, reactivations, first, clock)


def active_on(h: History, key: str, day: dt.date, lapse_days: int) -> pl.Series:
    """Accounts with an order in (day − L, day]."""
    return (h.days.filter((pl.col("day") <= day) & (pl.col("day") > day - dt.timedelta(days=lapse_days)))
            [key].unique())


def expected_periods(h: History, key: str, periods: list[tuple[dt.date, dt.date]], lapse_days: int,
                     accounts: pl.Series | None = None) -> pl.DataFrame:
    """One row per period [start, end): every metric, from the definitions (optionally for some accounts)."""

    def keep(frame: pl.DataFrame) -> pl.DataFrame:
        return frame if accounts is None else frame.filter(pl.col(key).is_in(accounts.implode()))

    days, lapses, reactivations, first = (keep(h.days), keep(h.lapses), keep(h.reactivations), keep(h.first))
    scoped = dataclasses.replace(h, days=days)
    rows = []
    for start, end in periods:
        def within(frame: pl.DataFrame, start=start, end=end) -> pl.DataFrame:
            return frame.filter((pl.col("day") >= start) & (pl.col("day") < end))

        at_start = active_on(scoped, key, start - DAY, lapse_days)
        lapsed_here = within(lapses)
        retained = at_start.filter(~at_start.is_in(lapsed_here[key].implode()))
        active_start = at_start.len()
        rows.append({
            "start": start,
            "active_start": active_start,
            "active_end": active_on(scoped, key, end - DAY, lapse_days).len(),
            "new": within(first).height,
            "reactivated": within(reactivations)[key].n_unique(),
            "reactivations": within(reactivations).height,
            "lapsed": lapsed_here[key].n_unique(),
            "lapses": lapsed_here.height,
            "churned": lapsed_here.filter(pl.col("final"))[key].n_unique(),
            "retained": retained.len(),
            "churn_rate": (active_start - retained.len()) / active_start if active_start else None,
            "retention_rate": retained.len() / active_start if active_start else None,
        })
    return pl.DataFrame(rows)


def bucket(day: dt.date, grain: str) -> dt.date:
    if grain == "week":
        return day - dt.timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    if grain == "quarter":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def next_bucket(day: dt.date, grain: str) -> dt.date:
    if grain == "week":
        return day + dt.timedelta(days=7)
    months = {"month": 1, "quarter": 3, "year": 12}[grain]
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def grain_periods(h: History, grain: str, start: dt.date | None = None,
                  end: dt.date | None = None) -> list[tuple[dt.date, dt.date]]:
    """Buckets of `grain` from the first order's (or `start`) to the clock's, clipped to [start, end)."""
    first = bucket(h.days["day"].min() if start is None else start, grain)
    stop = min(end or h.clock + DAY, h.clock + DAY)
    periods = []
    while first < stop:
        following = next_bucket(first, grain)
        periods.append((max(first, start or first), min(following, stop)))
        first = following
    return periods


def rows_by_start(result: pl.DataFrame, time_column: str) -> dict[dt.date, dict]:
    return {row[time_column]: row for row in result.iter_rows(named=True)}


def close(a, b) -> bool:
    if a is None or b is None:
        return (a in (None, 0)) and (b in (None, 0))  # the compiler shows an empty ratio as 0
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def assert_matches(got: dict[dt.date, dict], expected: pl.DataFrame, grain: str | None,
                   names: dict[str, str] | None = None, suffix: str = "") -> int:
    """Every period's metrics equal the oracle's; a period with no row must be all zero there."""
    names = names or {m: m for m in CUSTOMER_METRICS}
    checked = 0
    for want in expected.iter_rows(named=True):
        label = bucket(want["start"], grain) if grain else None
        row = got.get(label)
        for metric, column in names.items():
            value = row[column + suffix] if row is not None else None
            assert close(value, want[ORACLE[metric]]), (want["start"], metric, value, want[ORACLE[metric]])
        checked += row is not None
    return checked


SHOW = ", ".join(CUSTOMER_METRICS)


# ---- per month and per quarter -------------------------------------------------------------------


@pytest.mark.parametrize("grain", ["month", "quarter"])
def test_every_metric_per_period_matches_the_order_history(store, sample_store_path, grain):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    expected = expected_periods(h, "customer_id", grain_periods(h, grain), settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW} GROUP BY {grain}").df
    assert result.height == expected.height
    assert assert_matches(rows_by_start(result, grain), expected, grain) == expected.height
    assert expected["lapses"].sum() > 1000 and expected["reactivations"].sum() > 100  # the test has teeth


def test_company_churn_per_quarter_matches(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "company_id", store.now(), store.timezone, settings.lapse_days)
    expected = expected_periods(h, "company_id", grain_periods(h, "quarter"), settings.lapse_days)
    result = store.query(f"FROM company_churn SHOW {', '.join(COMPANY.values())} GROUP BY quarter").df
    assert assert_matches(rows_by_start(result, "quarter"), expected, "quarter", COMPANY) == expected.height
    assert expected["lapses"].sum() > 0


def test_a_date_range_inside_periods_keeps_only_its_part(store, sample_store_path):
    """SINCE mid-March UNTIL June 10: March 15-31, April, May, June 1-10 (never whole March or June)."""
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    periods = grain_periods(h, "month", dt.date(2025, 3, 15), dt.date(2025, 6, 11))
    assert periods[0] == (dt.date(2025, 3, 15), dt.date(2025, 4, 1)) and periods[-1][1] == dt.date(2025, 6, 11)
    expected = expected_periods(h, "customer_id", periods, settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW} GROUP BY month SINCE 2025-03-15 UNTIL 2025-06-10").df
    assert result.height == 4
    assert assert_matches(rows_by_start(result, "month"), expected, "month") == 4
    weeks = grain_periods(h, "week", dt.date(2025, 11, 5), dt.date(2025, 11, 21))
    expected = expected_periods(h, "customer_id", weeks, settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW} TIMESERIES week SINCE 2025-11-05 UNTIL 2025-11-20").df
    assert assert_matches(rows_by_start(result, "week"), expected, "week") == len(weeks) == 3


def test_the_current_period_ends_at_the_clock(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    expected = expected_periods(h, "customer_id", [(dt.date(2025, 12, 1), h.clock + DAY)], settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW} GROUP BY month DURING this_month").df
    assert assert_matches(rows_by_start(result, "month"), expected, "month") == 1


# ---- no time grain: the date range is one period --------------------------------------------------


def test_b2b_companies_churned_this_year_by_sales_rep_and_tier(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "company_id", store.now(), store.timezone, settings.lapse_days)
    companies = raw(sample_store_path, "companies")
    period = [(dt.date(2025, 1, 1), h.clock + DAY)]
    result = store.query(
        f"FROM company_churn SHOW {', '.join(COMPANY.values())} GROUP BY company_sales_rep, company_tier "
        "DURING this_year").df
    got = {(r["company_sales_rep"], r["company_tier"]): r for r in result.iter_rows(named=True)}
    groups = companies.group_by("sales_rep", "tier").agg("company_id")
    checked = 0
    for rep, tier, ids in groups.iter_rows():
        want = expected_periods(h, "company_id", period, settings.lapse_days, pl.Series(ids))
        row = got.get((rep, tier))
        assert assert_matches({None: row} if row else {}, want, None, COMPANY) == (row is not None)
        checked += row is not None
    assert checked == result.height > 5
    total = expected_periods(h, "company_id", period, settings.lapse_days)
    assert result["lapsed_companies"].sum() == total["lapsed"][0] > 0


def test_b2b_buyers_churned_this_year_by_sales_rep(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    customers = raw(sample_store_path, "customers").join(
        raw(sample_store_path, "companies").select("company_id", "sales_rep"), on="company_id")
    result = store.query(
        f"FROM customer_churn SHOW {SHOW} GROUP BY company_sales_rep WHERE customer_type = 'B2B' DURING this_year").df
    got = {r["company_sales_rep"]: r for r in result.iter_rows(named=True)}
    for rep, ids in customers.group_by("sales_rep").agg("customer_id").iter_rows():
        want = expected_periods(h, "customer_id", [(dt.date(2025, 1, 1), h.clock + DAY)], settings.lapse_days,
                                pl.Series(ids))
        assert_matches({None: got[rep]} if rep in got else {}, want, None)
    assert len(got) > 3


def test_without_a_grain_or_a_date_range_the_whole_history_is_one_period(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    expected = expected_periods(h, "customer_id", [(h.days["day"].min(), h.clock + DAY)], settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW}").df
    assert assert_matches({None: result.row(0, named=True)}, expected, None) == 1
    assert expected["active_start"][0] == 0  # nobody is active before the first order: no churn rate


# ---- settings, time zones, comparisons -------------------------------------------------------------


def test_the_lapse_window_is_the_stores_setting(store, sample_store_path):
    query = f"FROM customer_churn SHOW {SHOW} GROUP BY quarter"
    default = store.query(query).df
    store.account_settings = AccountSettings(lapse_days=60)
    try:
        short = store.query(query).df
    finally:
        store.account_settings = AccountSettings()
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, 60)
    expected = expected_periods(h, "customer_id", grain_periods(h, "quarter"), 60)
    assert assert_matches(rows_by_start(short, "quarter"), expected, "quarter") == expected.height
    assert short["lapses"].sum() > default["lapses"].sum()


def test_a_manifest_lapse_days_changes_the_answers(tmp_path, sample_store_path):
    """A store whose manifest says `accounts: {lapse_days: 90}` (same data, linked) answers with 90 days."""
    manifest = json.loads((sample_store_path / "manifest.json").read_text(encoding="utf-8"))
    for file in manifest["tables"].values():
        (tmp_path / file).symlink_to(sample_store_path / file)
    manifest["accounts"] = {"lapse_days": 90}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    with cql.connect(tmp_path) as ninety:
        assert ninety.account_settings.lapse_days == 90
        result = ninety.query(f"FROM customer_churn SHOW {SHOW} GROUP BY month DURING last_year").df
        h = history(sample_store_path, "customer_id", ninety.now(), ninety.timezone, 90)
    expected = expected_periods(h, "customer_id", grain_periods(h, "month", dt.date(2024, 1, 1),
                                                                 dt.date(2025, 1, 1)), 90)
    assert assert_matches(rows_by_start(result, "month"), expected, "month") == 12
    h180 = history(sample_store_path, "customer_id", ninety.now(), ninety.timezone, 180)
    default = expected_periods(h180, "customer_id", grain_periods(h180, "month", dt.date(2024, 1, 1),
                                                                   dt.date(2025, 1, 1)), 180)
    assert expected["lapses"].to_list() != default["lapses"].to_list()


def test_with_timezone_moves_days_and_periods(store, sample_store_path):
    tz = "Asia/Tokyo"
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), tz, settings.lapse_days)
    assert h.clock == dt.date(2025, 12, 16)  # 14:00 in New York is 04:00 the next day in Tokyo
    expected = expected_periods(h, "customer_id", grain_periods(h, "month"), settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW} GROUP BY month WITH TIMEZONE '{tz}'").df
    assert assert_matches(rows_by_start(result, "month"), expected, "month") == expected.height
    local = store.query(f"FROM customer_churn SHOW {SHOW} GROUP BY month").df
    assert result["lapses"].to_list() != local["lapses"].to_list()


def comparison_renamed(result: pl.DataFrame) -> pl.DataFrame:
    """The comparison's columns (comparison_lapses__previous_year ...) renamed to lapses__cmp ..."""
    label = next(c for c in result.columns if c.startswith("comparison_lapses")).removeprefix("comparison_lapses")
    return result.rename({f"comparison_{m}{label}": f"{m}__cmp" for m in CUSTOMER_METRICS})


def test_compare_to_previous_year_lines_up_whole_months(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    result = store.query(
        f"FROM customer_churn SHOW {SHOW} GROUP BY month DURING last_year COMPARE TO previous_year").df
    renamed = comparison_renamed(result)
    current = expected_periods(h, "customer_id", grain_periods(h, "month", dt.date(2024, 1, 1),
                                                               dt.date(2025, 1, 1)), settings.lapse_days)
    previous = expected_periods(h, "customer_id", grain_periods(h, "month", dt.date(2023, 1, 1),
                                                                dt.date(2024, 1, 1)), settings.lapse_days)
    got = rows_by_start(renamed, "month")
    assert assert_matches(got, current, "month") == 12
    shifted = {key.replace(year=key.year - 1): row for key, row in got.items()}
    assert assert_matches(shifted, previous, "month", suffix="__cmp") == 12


@pytest.mark.skipif(not any(f.name == "comparison_windows" for f in dataclasses.fields(derived.DerivedContext)),
                    reason="the compiler does not pass comparison windows to derived relations yet")
def test_compare_to_without_a_grain_compares_whole_windows(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    result = store.query(f"FROM customer_churn SHOW {SHOW} DURING this_year COMPARE TO previous_year").df
    this_year = expected_periods(h, "customer_id", [(dt.date(2025, 1, 1), h.clock + DAY)], settings.lapse_days)
    previous = expected_periods(h, "customer_id", [(dt.date(2024, 1, 1), h.clock + DAY - dt.timedelta(days=365))],
                                settings.lapse_days)
    row = comparison_renamed(result).row(0, named=True)
    assert assert_matches({None: row}, this_year, None) == 1
    assert assert_matches({None: row}, previous, None, suffix="__cmp") == 1


def test_sub_day_grains_are_refused_with_a_hint(store):
    with pytest.raises(CommerceQLError) as caught:
        store.query("FROM customer_churn SHOW lapsed_customers GROUP BY hour")
    assert "whole days" in caught.value.message and caught.value.hint


# ---- properties -----------------------------------------------------------------------------------


@pytest.mark.parametrize("grain", ["week", "month", "quarter"])
def test_active_customers_flow_from_period_to_period(store, grain):
    """active at end = active at start − lapses + new + reactivations; and it is the next period's start."""
    df = store.query(f"FROM customer_churn SHOW {SHOW} GROUP BY {grain} ORDER BY {grain} LIMIT 1000").df
    flows = df["active_customers_at_start"] - df["lapses"] + df["new_customers"] + df["reactivations"]
    assert (df["active_customers_at_end"] == flows).all()
    assert df["active_customers_at_start"][1:].to_list() == df["active_customers_at_end"][:-1].to_list()
    assert df["active_customers_at_start"][0] == 0
    # Periods no longer than the lapse window: one lapse and one return per customer at most, and
    # everyone who lapses was active when the period started.
    assert (df["lapses"] == df["lapsed_customers"]).all() and (df["reactivations"] == df["reactivated_customers"]).all()
    assert (df["active_customers_at_start"] - df["retained_customers"] == df["lapsed_customers"]).all()
    assert ((df["churn_rate"] + df["retention_rate"] - 1).abs() < 1e-12).filter(df["active_customers_at_start"] > 0).all()


def test_churned_customers_over_all_periods_are_the_customers_lapsed_today(store, sample_store_path):
    settings = store.account_settings
    h = history(sample_store_path, "customer_id", store.now(), store.timezone, settings.lapse_days)
    lapsed_today = h.days.group_by("customer_id").agg(last=pl.col("day").max()).filter(
        pl.col("last") + pl.duration(days=settings.lapse_days) <= h.clock).height
    monthly = store.query("FROM customer_churn SHOW churned_customers GROUP BY month").df
    overall = store.query("FROM customer_churn SHOW churned_customers, active_customers_at_end").df
    assert monthly["churned_customers"].sum() == overall["churned_customers"][0] == lapsed_today
    assert overall["active_customers_at_end"][0] == h.days["customer_id"].n_unique() - lapsed_today


def test_events_over_a_window_add_up_across_its_periods(store):
    """Lapses, returns and new customers of the year = the sum of its months; stocks are not sums."""
    metrics = "lapses, reactivations, new_customers, active_customers_at_start, active_customers_at_end"
    year = store.query(f"FROM customer_churn SHOW {metrics} DURING last_year").df.row(0, named=True)
    months = store.query(f"FROM customer_churn SHOW {metrics} GROUP BY month DURING last_year "
                         "ORDER BY month").df
    for metric in ("lapses", "reactivations", "new_customers"):
        assert year[metric] == months[metric].sum()
    assert year["active_customers_at_start"] == months["active_customers_at_start"][0]
    assert year["active_customers_at_end"] == months["active_customers_at_end"][-1]
    totals = store.query("FROM customer_churn SHOW lapsed_customers, active_customers_at_start, churn_rate "
                         "GROUP BY month DURING last_year WITH TOTALS").df
    assert close(totals["churn_rate__totals"][0],
                 totals["lapsed_customers"].sum() / totals["active_customers_at_start"].sum())


def test_customer_and_company_fields_group_the_rows(store):
    by_type = store.query("FROM customer_churn SHOW lapses, active_customers_at_start GROUP BY customer_type "
                          "DURING last_year").df
    overall = store.query("FROM customer_churn SHOW lapses, active_customers_at_start DURING last_year").df
    assert by_type["lapses"].sum() == overall["lapses"][0]
    assert set(by_type["customer_type"].to_list()) == {"B2B", "DTC"}
    by_rfm = store.query("FROM customer_churn SHOW churned_customers GROUP BY customer_rfm_group DURING last_year").df
    assert by_rfm["churned_customers"].sum() == store.query(
        "FROM customer_churn SHOW churned_customers DURING last_year").df["churned_customers"][0]


# ---- Spark -----------------------------------------------------------------------------------------


# Run on every engine by tests/test_engines.py (tests/engine_corpus.py).
SPARK_QUERIES = [
    f"FROM customer_churn SHOW {SHOW} GROUP BY month",
    f"FROM customer_churn SHOW {SHOW} TIMESERIES week SINCE 2025-09-10 UNTIL 2025-11-20 WITH TIMEZONE 'Asia/Tokyo'",
    f"FROM company_churn SHOW {', '.join(COMPANY.values())} GROUP BY company_sales_rep, company_tier DURING this_year",
    "FROM customer_churn SHOW lapsed_customers, churn_rate GROUP BY quarter, customer_type DURING last_year "
    "COMPARE TO previous_year WITH TOTALS",
]

