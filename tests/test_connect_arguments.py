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
