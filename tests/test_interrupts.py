"""Interrupting a query: an interrupt that arrives before the engine starts is not lost."""

from __future__ import annotations

import _thread
import linecache
import sys
import threading

import pytest

from commerceql.store import CommerceQLInterrupted, run_interruptibly


def _main_thread_waits_in_run_interruptibly() -> bool:
    frame = sys._current_frames().get(threading.main_thread().ident)
    while frame is not None:
        if frame.f_code.co_name == "run_interruptibly":
            # ... and inside its wait loop, where Ctrl-C is caught (not still starting the thread).
            return "done.wait" in linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        frame = frame.f_back
    return False


def test_an_interrupt_before_the_statement_starts_is_repeated_until_it_takes():
    running = threading.Event()
    cancels: list[int] = []

    def work() -> str:
        # Press Ctrl-C only once the caller waits in run_interruptibly (no timing involved).
        while not _main_thread_waits_in_run_interruptibly():
            threading.Event().wait(0.001)
        _thread.interrupt_main()
        # Like an engine statement: it ends only when a cancel arrives *while it runs*; the
        # first cancel comes before it started, as a real early Ctrl-C does, and is lost.
        for _ in range(20_000):  # bounded, so a regression fails instead of hanging
            running.set()
            if len(cancels) >= 2:
                break
            threading.Event().wait(0.001)
        return "finished"

    def cancel() -> None:
        if running.is_set():
            cancels.append(1)

    with pytest.raises(CommerceQLInterrupted):
        run_interruptibly(work, cancel)
    assert len(cancels) >= 2


# -- Spark: an interrupt stops this store's statement, and only it ---------------------------------

# About 10^12 rows hashed and summed: hours of work unless an interrupt stops it.
LONG_SPARK_SQL = "SELECT sum(hash(id)) AS total FROM range(0, 1000000000000)"
GENEROUS = 300.0  # seconds: a bound that fails a regression instead of hanging, never a speed check


def _spark_available_or_skip() -> None:
    import os

    from commerceql.engines import spark_unavailable

    reason = spark_unavailable()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Spark tests must run in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def spark_stores(sample_store_path):
    """Two stores on the process's one local Spark (each with a session of its own)."""
    _spark_available_or_skip()
    import commerceql as cql

    first = cql.connect(sample_store_path, engine="spark")
    second = cql.connect(sample_store_path, engine="spark")
    yield first, second
    for store in (first, second):
        store.interrupt()  # nothing may keep running into the next tests, whatever happened here
        store.close()


def _poll(condition, what: str) -> None:
    deadline = threading.Event()
    timer = threading.Timer(GENEROUS, deadline.set)
    timer.start()
    try:
        while not condition():
            assert not deadline.is_set(), f"gave up waiting for {what}"
            threading.Event().wait(0.05)
    finally:
        timer.cancel()


def _active_jobs(store) -> int:
    return len(store.engine.session.sparkContext.statusTracker().getActiveJobsIds())


def _in_thread(store, outcome: dict) -> threading.Thread:
    def run() -> None:
        try:
            outcome["value"] = store.sql(LONG_SPARK_SQL)
        except BaseException as error:  # handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.spark
@pytest.mark.slow
def test_ctrl_c_stops_a_long_local_spark_query_and_the_store_keeps_working(spark_stores, sample_store_path):
    from commerceql.errors import CommerceQLExecutionError

    store, _other = spark_stores
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["value"] = store.sql(LONG_SPARK_SQL)
        except BaseException as error:
            outcome["error"] = error

    def press_ctrl_c_once_spark_runs_the_job() -> None:
        _poll(lambda: _active_jobs(store) > 0 and _main_thread_waits_in_run_interruptibly(), "the Spark job")
        _thread.interrupt_main()

    threading.Thread(target=press_ctrl_c_once_spark_runs_the_job, daemon=True).start()
    with pytest.raises(CommerceQLInterrupted):
        run_interruptibly(work, store.interrupt)
    # The statement itself ended because it was interrupted (it would run for hours otherwise).
    assert "value" not in outcome
    assert isinstance(outcome.get("error"), CommerceQLExecutionError)
    assert "interrupted" in outcome["error"].message
    _poll(lambda: _active_jobs(store) == 0, "the cancelled job to end")

    # The session is usable afterwards and answers like DuckDB.
    import commerceql as cql
    from commerceql.frames import frame_difference

    query = "FROM sales SHOW net_sales, orders GROUP BY sales_channel DURING last_month"
    with cql.connect(sample_store_path) as duck:
        assert frame_difference(duck.query(query).df, store.query(query).df, null_is_zero=True) is None


@pytest.mark.spark
@pytest.mark.slow
def test_interrupting_one_local_spark_store_leaves_another_stores_query_running(spark_stores):
    from commerceql.errors import CommerceQLExecutionError

    first, second = spark_stores
    first_outcome: dict = {}
    second_outcome: dict = {}
    first_thread = _in_thread(first, first_outcome)
    second_thread = _in_thread(second, second_outcome)
    try:
        _poll(lambda: _active_jobs(first) >= 2, "both Spark jobs")
        first.interrupt()
        first_thread.join(GENEROUS)
        assert not first_thread.is_alive(), "the interrupted query did not stop"
        assert isinstance(first_outcome.get("error"), CommerceQLExecutionError)
        assert "interrupted" in first_outcome["error"].message
        # The other store's query (hours of work) is untouched: still running, its job still active.
        assert second_thread.is_alive() and not second_outcome
        assert _active_jobs(second) == 1
    finally:
        second.interrupt()
        second_thread.join(GENEROUS)
        first.interrupt()
        first_thread.join(GENEROUS)
    assert isinstance(second_outcome.get("error"), CommerceQLExecutionError)
    assert "interrupted" in second_outcome["error"].message


def test_a_direct_interrupt_raises_the_same_error_class_as_ctrl_c(sample_store_path):
    """`store.interrupt()` from another thread ends the running statement with CommerceQLInterrupted
    (raw SQL here, so the statement is reliably slow; queries share the same engine failure kind)."""
    import threading

    import commerceql as cql
    from commerceql.store import CommerceQLInterrupted

    with cql.connect(sample_store_path) as store:
        # A query long enough to be interrupted: every sales row against every session row's day.
        slow = "SELECT count(*) AS n FROM sales s, sessions t WHERE s.sale_id % 7 = t.session_id % 11"
        failure: list[BaseException] = []

        def work() -> None:
            try:
                store.sql(slow)
            except BaseException as error:  # noqa: BLE001 - recorded for the assertion below
                failure.append(error)

        worker = threading.Thread(target=work)
        worker.start()
        while worker.is_alive() and not failure:
            store.interrupt()
            worker.join(0.05)
        worker.join(60)
        assert failure and isinstance(failure[0], CommerceQLInterrupted), failure
        assert store.query("FROM sales SHOW orders DURING last_month").df.height == 1
