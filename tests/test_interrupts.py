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
