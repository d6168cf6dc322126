"""`%connect` / `%cql_connect` arguments: one parser for every notebook surface."""

from __future__ import annotations

import pytest

from commerceql.errors import CommerceQLDataError
from commerceql.store import connect_arguments


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ([], (None, {})),
        (["shop"], ("shop", {})),
        (["shop", "--engine", "spark"], ("shop", {"engine": "spark"})),
        (["--engine=spark", "--spark-remote", "sc://h:15002", "s"], ("s", {"engine": "spark", "spark_remote": "sc://h:15002"})),
        (["s", "--spark-data", "s3://bucket/shop"], ("s", {"data": "s3://bucket/shop"})),
        (["shop", "--as-of", "last-order"], ("shop", {"as_of": "last-order"})),
        (["shop", "--as-of=2023-06-30"], ("shop", {"as_of": "2023-06-30"})),
        (["shop", "as_of=last-order"], ("shop", {"as_of": "last-order"})),
        (["as_of=2023-06-30T18:00:00-04:00", "shop", "engine=spark"],
         ("shop", {"as_of": "2023-06-30T18:00:00-04:00", "engine": "spark"})),
    ],
)
def test_connect_arguments(words, expected):
    assert connect_arguments(words) == expected


@pytest.mark.parametrize(
    ("words", "fragment"),
    [
        (["a", "b"], "one store path"),
        (["--engine"], "needs a value"),
        (["--engine", "postgres"], "unknown engine"),
        (["--fast"], "unknown option"),
        (["shop", "--as-of"], "needs a value"),
        (["shop", "as_of="], "needs a value"),
        (["shop", "--as-of", "soon"], "is not 'last-order', a date"),
        (["shop", "as_of=2023-02-30"], "is not 'last-order', a date"),
    ],
)
def test_bad_connect_arguments_are_clear_errors(words, fragment):
    with pytest.raises(CommerceQLDataError) as caught:
        connect_arguments(words)
    assert fragment in caught.value.message


def test_connect_refuses_an_unknown_engine(sample_store_path):
    import commerceql as cql

    with pytest.raises(CommerceQLDataError):
        cql.connect(sample_store_path, engine="postgres")


def test_connect_arguments_open_a_pinned_store(sample_store_path):
    import datetime as dt
    from zoneinfo import ZoneInfo

    import commerceql as cql

    path, options = connect_arguments([str(sample_store_path), "as_of=2024-03-31"])
    with cql.connect(path, **options) as store:
        assert store.now() == dt.datetime(2024, 3, 31, 23, 59, 59, tzinfo=ZoneInfo(store.timezone))
