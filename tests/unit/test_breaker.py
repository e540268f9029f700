"""Circuit breaker transitions, driven by a fake clock."""

from __future__ import annotations

import pytest

from service.redis.breaker import CircuitBreaker, CircuitState

THRESHOLD = 3
RESET = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def breaker(clock: FakeClock) -> CircuitBreaker:
    return CircuitBreaker(failure_threshold=THRESHOLD, reset_seconds=RESET, clock=clock)


def state(breaker: CircuitBreaker) -> CircuitState:
    # A call, not the property, so the type checker does not pin the value between transitions.
    return breaker.state


def fail(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        breaker.record_failure()


def open_and_start_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, THRESHOLD)
    clock.now += RESET
    assert breaker.allows()


def test_state_values_are_what_the_metrics_gauge_publishes() -> None:
    assert [int(state) for state in (CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN)] == [0, 1, 2]


def test_closed_until_threshold_consecutive_failures(breaker: CircuitBreaker) -> None:
    fail(breaker, THRESHOLD - 1)
    assert state(breaker) is CircuitState.CLOSED
    assert breaker.allows()
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    assert not breaker.allows()


def test_a_success_resets_the_failure_count(breaker: CircuitBreaker) -> None:
    fail(breaker, THRESHOLD - 1)
    breaker.record_success()
    fail(breaker, THRESHOLD - 1)
    assert state(breaker) is CircuitState.CLOSED
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN


def test_open_refuses_until_reset_then_allows_exactly_one_probe(breaker: CircuitBreaker, clock: FakeClock) -> None:
    fail(breaker, THRESHOLD)
    clock.now += RESET - 0.001
    assert not breaker.allows()
    assert state(breaker) is CircuitState.OPEN
    clock.now += 0.001
    assert breaker.allows()
    assert state(breaker) is CircuitState.HALF_OPEN
    assert not breaker.allows()
    clock.now += RESET / 2
    assert not breaker.allows()


def test_probe_success_closes(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_and_start_probe(breaker, clock)
    breaker.record_success()
    assert state(breaker) is CircuitState.CLOSED
    assert all(breaker.allows() for _ in range(5))
    # The count starts over: one failure does not re-open it.
    breaker.record_failure()
    assert state(breaker) is CircuitState.CLOSED


def test_probe_failure_reopens_for_a_full_reset_period(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_and_start_probe(breaker, clock)
    clock.now += 1.0
    breaker.record_failure()
    assert state(breaker) is CircuitState.OPEN
    clock.now += RESET - 0.001
    assert not breaker.allows()
    clock.now += 0.001
    assert breaker.allows()
    assert state(breaker) is CircuitState.HALF_OPEN


def test_an_abandoned_probe_lets_a_new_probe_through_after_reset(breaker: CircuitBreaker, clock: FakeClock) -> None:
    open_and_start_probe(breaker, clock)
    clock.now += RESET - 0.001
    assert not breaker.allows()
    clock.now += 0.001
    assert breaker.allows()
    assert not breaker.allows()
    assert state(breaker) is CircuitState.HALF_OPEN


def test_default_clock_is_usable() -> None:
    breaker = CircuitBreaker(failure_threshold=1, reset_seconds=3600)
    breaker.record_failure()
    assert not breaker.allows()
