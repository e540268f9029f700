"""A small circuit breaker so a dead Redis costs microseconds, not a timeout per request."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class CircuitState(enum.IntEnum):
    CLOSED = 0
    OPEN = 1
    HALF_OPEN = 2


class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``reset_seconds``
    one call at a time is let through to probe, and its outcome closes or re-opens it."""

    def __init__(
        self,
        failure_threshold: int = 3,
        reset_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failure_threshold
        self._reset = reset_seconds
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_started: float | None = None

    @property
    def state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        return CircuitState.HALF_OPEN if self._probe_started is not None else CircuitState.OPEN

    def allows(self) -> bool:
        if self._opened_at is None:
            return True
        now = self._clock()
        if now - self._opened_at < self._reset:
            return False
        # A probe that never reported back (its request was cancelled) must not
        # keep the circuit open forever, so a new probe may start after a while.
        if self._probe_started is not None and now - self._probe_started < self._reset:
            return False
        self._probe_started = now
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_started = None

    def record_failure(self) -> None:
        self._failures += 1
        if self._probe_started is not None or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._probe_started = None
