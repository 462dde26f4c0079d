"""Writes that run behind the computation: one thread, in order, a bounded queue, no lost errors.

The scene pass hands out finished blocks of maps; writing them (compression, GDAL's block
I/O, which run without the GIL) can go on while the model computes the next ones. The queue
is bounded so that memory stays bounded when the disk is slower than the model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Any

DEPTH = 2
"""Writes queued at most (the one running included); a further submit waits for the oldest."""


class WriteBehind:
    """Run callables in one background thread, in the order submitted.

    Use as a context manager, entered after the files it writes to (so that it exits first):
    on a normal exit it waits for every write and raises the first error of one; on an
    exception it drops the writes not started, waits for the one running and lets the
    exception go on, so the files can be discarded cleanly.

    Args:
        depth: Writes queued at most before :meth:`submit` waits.
    """

    def __init__(self, depth: int = DEPTH) -> None:
        self.depth = max(1, depth)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-behind")
        self.queued: deque[Future] = deque()

    def submit(self, function: Callable[..., Any], *args: Any) -> None:
        """Queue ``function(*args)``; raises the error of an earlier write as soon as it is known."""
        while self.queued and (self.queued[0].done() or len(self.queued) >= self.depth):
            self.queued.popleft().result()
        self.queued.append(self.pool.submit(function, *args))

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if kind is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            return
        try:
            while self.queued:
                self.queued.popleft().result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
