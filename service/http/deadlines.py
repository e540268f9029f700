"""Per-request deadlines for one application, without a timer per request."""

from __future__ import annotations

import asyncio
from typing import Any

# A route that runs work of unknown length answers after this share of its deadline,
# so the rest is left to send the answer.
ANSWER_SHARE = 0.8


class Deadlines:
    """Cancels the requests of one application that overrun their deadline.

    A sweep every tenth of the deadline stands in for a timer per request: arming
    and cancelling a timer on every request cost more than the rest of this
    envelope, and a deadline of seconds needs no millisecond precision. Like
    ``asyncio.timeout``, an overrun cancels the request's task, and only that
    cancellation (not one from elsewhere) is reported by :meth:`overran`.
    """

    def __init__(self) -> None:
        # Each running request: its deadline, and how many cancellations it had already.
        self._running: dict[asyncio.Task[Any], tuple[float, int]] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._period = 1.0
        self._sweep_handle: asyncio.TimerHandle | None = None

    def enter(self, seconds: float) -> asyncio.Task[Any]:
        task = asyncio.current_task()
        assert task is not None, "aiohttp runs every request in a task"
        loop = asyncio.get_running_loop()
        self._running[task] = (loop.time() + seconds, task.cancelling())
        period = max(seconds / 10, 0.01)
        if self._sweep_handle is None or period < self._period:
            if self._sweep_handle is not None:
                self._sweep_handle.cancel()
            self._period = period
            self._sweep_handle = loop.call_later(period, self._sweep)
        return task

    def overran(self, task: asyncio.Task[Any]) -> bool:
        """Whether the CancelledError being handled in ``task`` came from its deadline."""
        return task in self._expired and task.uncancel() <= self._running[task][1]

    def leave(self, task: asyncio.Task[Any]) -> None:
        del self._running[task]
        self._expired.discard(task)

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for task, (deadline, _) in self._running.items():
            if deadline <= now and task not in self._expired:
                self._expired.add(task)
                task.cancel()
        self._sweep_handle = loop.call_later(self._period, self._sweep) if self._running else None
