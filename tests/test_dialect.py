"""One line per dialect fragment: the input, and each engine's expected SQL (sqlglot's
`validate_all` style). A new engine adds its column here, and its answers in test_engines.py."""

from __future__ import annotations

import pytest

from commerceql.dialect import DUCKDB, SPARK, Dialect

D, S = DUCKDB, SPARK
NY = "America/New_York"

FRAGMENTS: list[tuple[str, object, str, str]] = [
    # name, call(dialect) -> sql, DuckDB, Spark
    ("quote_identifier", lambda d: d.quote_identifier('a"b`c'), '"a""b`c"', "`a\"b``c`"),
    ("parameter", lambda d: d.parameter("p0"), "$p0", ":p0"),
    ("local_timestamp", lambda d: d.local_timestamp(NY, "t.ts"),
     "timezone('America/New_York', t.ts)", "from_utc_timestamp(t.ts, 'America/New_York')"),
    ("instant_of_local", lambda d: d.instant_of_local(NY, "w"),
     "timezone('America/New_York', w)", "to_utc_timestamp(w, 'America/New_York')"),
    ("local_label", lambda d: d.local_label(NY, "i"),
     "timezone('America/New_York', i)", "CAST(from_utc_timestamp(i, 'America/New_York') AS TIMESTAMP_NTZ)"),
    ("local_date", lambda d: d.local_date("UTC", "ts"),
     "CAST(timezone('UTC', ts) AS DATE)", "CAST(from_utc_timestamp(ts, 'UTC') AS DATE)"),
    ("epoch_seconds", lambda d: d.epoch_seconds("i"), "epoch(i)", "(unix_micros(i) / 1000000.0)"),
    ("add_days", lambda d: d.add_days("d", "3"), "d + to_days(3)", "date_add(d, 3)"),
    ("add_months", lambda d: d.add_months("d", "12"), "d + to_months(12)", "add_months(d, 12)"),
    ("add_months_to_wall", lambda d: d.add_months_to_wall("w", "-3"), "w + to_months(-3)", "timestampadd(MONTH, -3, w)"),
    ("add_instant", lambda d: d.add_instant("i", "hour", "n"), "(i + to_hours(n))", "timestampadd(HOUR, n, i)"),
    ("diff", lambda d: d.diff("month", "a", "b"),
     "CAST(date_diff('month', a, b) AS INTEGER)", "CAST(timestampdiff(MONTH, a, b) AS INTEGER)"),
    ("day_of_week", lambda d: d.day_of_week("w"), "(isodow(w) - 1)", "((dayofweek(w) + 5) % 7)"),
    ("grouping_level", lambda d: d.grouping_level(["a", "b"]), "GROUPING(a, b)", "grouping_id(a, b)"),
    ("materialized", lambda d: d.materialized(), "MATERIALIZED ", ""),
    ("integer_spine", lambda d: d.integer_spine(0, 6),
     "SELECT range AS __spine FROM range(0, 7)", "SELECT explode(sequence(0, 6)) AS __spine"),
    ("date_spine", lambda d: d.date_spine("$a", "$b", "INTERVAL 1 DAY"),
     "SELECT CAST(range AS DATE) AS __spine FROM range(CAST($a AS TIMESTAMP), CAST($b AS TIMESTAMP), INTERVAL 1 DAY)",
     "SELECT CAST(s AS DATE) AS __spine FROM (SELECT explode(sequence(CAST($a AS TIMESTAMP), CAST($b AS TIMESTAMP), "
     "INTERVAL 1 DAY)) AS s) AS steps WHERE s < CAST($b AS TIMESTAMP)"),
    ("instant_spine", lambda d: d.instant_spine("a", "b", "INTERVAL 1 HOUR"),
     "SELECT range AS __spine FROM range(CAST(a AS TIMESTAMPTZ), CAST(b AS TIMESTAMPTZ), INTERVAL 1 HOUR)",
     "SELECT s AS __spine FROM (SELECT explode(sequence(CAST(a AS TIMESTAMP), CAST(b AS TIMESTAMP), INTERVAL 1 HOUR)) "
     "AS s) AS steps WHERE s < CAST(b AS TIMESTAMP)"),
    ("string_test", lambda d: d.string_test("starts_with", "x", "y"), "starts_with(x, y)", "startswith(x, y)"),
    ("string_test contains", lambda d: d.string_test("contains", "x", "y"), "contains(x, y)", "contains(x, y)"),
    ("list_contains_ignoring_case", lambda d: d.list_contains_ignoring_case("tags", "$p0"),
     "list_contains(list_transform(tags, lambda item: lower(CAST(item AS VARCHAR))), lower(CAST($p0 AS VARCHAR)))",
     "array_contains(transform(tags, item -> lower(CAST(item AS STRING))), lower(CAST($p0 AS STRING)))"),
    ("expand_macros", lambda d: d.expand_macros("COALESCE(local_date(c.first_at), 'local_date(x)')", NY),
     "COALESCE(CAST(timezone('America/New_York', c.first_at) AS DATE), 'local_date(x)')",
     "COALESCE(CAST(from_utc_timestamp(c.first_at, 'America/New_York') AS DATE), 'local_date(x)')"),
    ("seconds_between", lambda d: d.expand_macros("seconds_between(MIN(a.t), max(a.t, 'x,y'))", NY),
     "(epoch(max(a.t, 'x,y')) - epoch(MIN(a.t)))",
     "((unix_micros(max(a.t, 'x,y')) / 1000000.0) - (unix_micros(MIN(a.t)) / 1000000.0))"),
    ("utc_instant", lambda d: d.expand_macros("utc_instant('1997-09-30')", NY),
     "TIMESTAMPTZ '1997-09-30 00:00:00+00'", "TIMESTAMP '1997-09-30 00:00:00Z'"),
    ("text_type", lambda d: d.text_type, "VARCHAR", "STRING"),
    ("instant_type", lambda d: d.instant_type, "TIMESTAMPTZ", "TIMESTAMP"),
]


@pytest.mark.parametrize(("name", "call", "duckdb", "spark"), FRAGMENTS, ids=[f[0] for f in FRAGMENTS])
def test_fragment(name: str, call, duckdb: str, spark: str) -> None:
    expected: dict[str, str] = {"duckdb": duckdb, "spark": spark}
    dialect: Dialect
    for dialect in (D, S):
        assert call(dialect) == expected[dialect.name], (name, dialect.name)


def test_the_duckdb_fragments_mean_what_their_docstrings_say_whatever_the_session_zone() -> None:
    """(The Spark fragments' meaning is checked by the engine corpus in tests/test_engines.py.)"""
    import datetime as dt

    dialect = DUCKDB
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'Asia/Tokyo'")  # a session zone that must not matter
    instant = "TIMESTAMPTZ '2025-11-02 05:30:00+00'"
    assert con.execute(f"SELECT {dialect.local_timestamp(NY, instant)}").fetchone()[0] == dt.datetime(2025, 11, 2, 1, 30)
    monday, leap_day = "DATE '2025-12-01'", "DATE '2024-02-29'"
    assert con.execute(f"SELECT {dialect.day_of_week(monday)}").fetchone()[0] == 0
    assert con.execute(f"SELECT {dialect.add_months(leap_day, '12')}").fetchone()[0] in (dt.date(2025, 2, 28), dt.datetime(2025, 2, 28))
    assert con.execute(f"SELECT count(*) FROM ({dialect.integer_spine(0, 6)})").fetchone()[0] == 7
