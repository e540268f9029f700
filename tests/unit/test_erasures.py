"""Erasures that outlive their request: joined, resumed, failed, stopped."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from service.domain.erasures import Erasures
from service.domain.errors import DependencyUnavailable
from service.domain.stats import StatsService


class SlowStats:
    """Erasures that last until let go, or fail."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.started = 0
        self.fail = False

    async def erase(self, user_id: str) -> None:
        self.started += 1
        await self.go.wait()
        if self.fail:
            raise DependencyUnavailable("dynamodb", "BatchWriteItem/ThrottlingException")


def erasures_of(stats: SlowStats) -> Erasures:
    return Erasures(cast(StatsService, stats))


async def test_an_erasure_past_its_wait_goes_on_and_a_second_request_joins_it() -> None:
    stats = SlowStats()
    erasures = erasures_of(stats)
    assert not await erasures.erase("u1", within=0.01)
    assert not await erasures.erase("u1", within=0.01)
    assert stats.started == 1
    stats.go.set()
    assert await erasures.erase("u1", within=1.0)
    # Finished: asking again erases again (whatever was written since).
    assert await erasures.erase("u1", within=1.0)
    assert stats.started == 2


async def test_a_failure_within_the_wait_reaches_the_caller_and_one_after_it_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = SlowStats()
    stats.fail = True
    stats.go.set()
    erasures = erasures_of(stats)
    with pytest.raises(DependencyUnavailable):
        await erasures.erase("u1", within=1.0)
    stats.go.clear()
    assert not await erasures.erase("u2", within=0.01)
    stats.go.set()
    await asyncio.sleep(0.05)
    assert "erasure stopped before it finished" in caplog.text


async def test_shutdown_stops_erasures_under_way() -> None:
    stats = SlowStats()
    erasures = erasures_of(stats)
    assert not await erasures.erase("u1", within=0.01)
    await erasures.aclose()
    stats.go.set()
    assert await erasures.erase("u1", within=1.0)  # resumed: a new erasure
    assert stats.started == 2
