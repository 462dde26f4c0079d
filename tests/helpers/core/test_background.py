"""Writes behind the computation: order, a bounded queue, errors never lost, nothing run after an exception."""

from __future__ import annotations

import threading
import time

import pytest

from helpers.core.background import WriteBehind


def test_writes_run_in_order_in_another_thread() -> None:
    done: list[tuple[int, str]] = []
    with WriteBehind() as behind:
        for index in range(20):
            behind.submit(lambda i: done.append((i, threading.current_thread().name)), index)
    assert [i for i, _ in done] == list(range(20))
    assert all(name.startswith("write-behind") for _, name in done)


def test_the_queue_is_bounded() -> None:
    release = threading.Event()
    started: list[int] = []

    def slow(index: int) -> None:
        started.append(index)
        release.wait(5)

    with WriteBehind(depth=2) as behind:
        behind.submit(slow, 0)
        behind.submit(slow, 1)
        timer = threading.Timer(0.3, release.set)
        timer.start()
        before = time.perf_counter()
        behind.submit(slow, 2)  # waits until the first write has finished
        assert time.perf_counter() - before >= 0.25
    assert started == [0, 1, 2]


def test_an_error_in_a_write_reaches_the_caller() -> None:
    def failing() -> None:
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), WriteBehind() as behind:
        behind.submit(failing)
    with pytest.raises(OSError, match="disk full"), WriteBehind(depth=1) as behind:
        behind.submit(failing)
        time.sleep(0.1)
        behind.submit(lambda: None)  # the earlier error is raised here, not lost


def test_an_exception_drops_the_writes_not_started() -> None:
    release, running = threading.Event(), threading.Event()
    done: list[int] = []

    def write(index: int) -> None:
        running.set()
        release.wait(5)
        done.append(index)

    with pytest.raises(KeyboardInterrupt), WriteBehind(depth=3) as behind:
        behind.submit(write, 0)
        behind.submit(write, 1)
        assert running.wait(5)
        threading.Timer(0.2, release.set).start()
        raise KeyboardInterrupt
    assert done == [0]  # the running write finished (its file closes cleanly), the queued one never ran
