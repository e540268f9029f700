"""Redis failures under load: killed, frozen, black-holed, slow, flushed.

Redis down must mean slower, not broken: no request fails, reads fall back to
DynamoDB, the breaker keeps the p99 low, and once Redis is back every aggregate
touched meanwhile is exact again, served from Redis.
"""

from __future__ import annotations

import asyncio

import pytest

from bench.measure import percentile
from localmode.servers import MotoServer
from tests.faults.conftest import Rig
from tests.faults.support import (
    Action,
    Repeat,
    Sample,
    Traffic,
    assert_settles_exact,
    fault_under_load,
    metric_value,
    new_pairs,
    scrape,
    summarize,
    until,
)
from tests.integration.support import Api

pytestmark = pytest.mark.slow

# The test profile's Redis timeout is 0.5 s: without the breaker, every request
# during an outage would wait for it at least once, some several times.
P99_LIMIT_SECONDS = 1.5
# Above the Redis timeout, so a slow Redis is indistinguishable from a dead one.
SLOW_REDIS_DELAY_SECONDS = 1.0
DEADLINE_SECONDS = 5.0


def assert_invisible(samples: list[Sample], traffic: Traffic) -> None:
    """Clients must not notice a Redis fault beyond some latency."""
    assert samples, "no traffic during the fault"
    assert {s.status for s in samples} <= {200, 201}, summarize(samples)
    assert traffic.problems() == []
    assert percentile(sorted(s.seconds for s in samples), 99) < P99_LIMIT_SECONDS, summarize(samples)


@pytest.fixture
def moto_server(shared_moto_server: MotoServer) -> MotoServer:
    """Redis faults leave DynamoDB alone: these tests share one moto server (fresh users each)."""
    return shared_moto_server


REDIS_FAULTS = ["kill", "pause", "blackhole", "slow"]


def redis_fault(fault: str, rig: Rig) -> tuple[str, Action, Action]:
    """The Redis URL the service should use, and how to cause and clear the fault."""
    server, proxy = rig.redis, rig.redis_proxy
    if fault == "kill":
        # Off the event loop: the restart waits for the server to answer.
        return server.url, server.kill, lambda: asyncio.to_thread(server.start)
    if fault == "pause":
        return server.url, server.pause, server.resume
    if fault == "blackhole":
        return rig.redis_via_proxy, proxy.blackhole, proxy.passthrough
    return rig.redis_via_proxy, lambda: proxy.delay(SLOW_REDIS_DELAY_SECONDS), proxy.passthrough


@pytest.mark.parametrize("fault", REDIS_FAULTS)
async def test_redis_outage_is_invisible_and_repaired(fault: str, rig: Rig) -> None:
    redis_url, cause, clear = redis_fault(fault, rig)
    client = await rig.start_app(redis_url, rig.moto.url)
    api = Api(client)
    traffic = Traffic(api, new_pairs(3, 2), seed=REDIS_FAULTS.index(fault), deadline=DEADLINE_SECONDS)
    await traffic.warm_up()

    async def during_outage() -> None:
        metrics = await scrape(api)
        # 1 open or 2 half-open: requests are not waiting on Redis any more.
        assert metrics["stats_redis_circuit_state"] in (1, 2)
        # Writes that could not reach Redis are remembered for repair.
        assert metrics["stats_cache_stale_aggregates"] > 0

    samples = await fault_under_load(traffic, cause, clear, midway=during_outage)

    print(f"redis {fault}: {summarize(samples)}")
    assert_invisible(samples, traffic)
    assert metric_value(client, "fallback_reads") > 0

    async def repaired() -> bool:
        return (await scrape(api))["stats_cache_stale_aggregates"] == 0

    await until(repaired, within=5.0)
    # Served from Redis: an aggregate left stale by the outage would show here.
    await assert_settles_exact(api, rig.backends, traffic.pairs, client=client)


async def test_redis_flushed_repeatedly_under_load(rig: Rig) -> None:
    client = await rig.start_app(rig.redis.url, rig.moto.url)
    api = Api(client)
    traffic = Traffic(api, new_pairs(3, 2), seed=7, deadline=DEADLINE_SECONDS)
    await traffic.warm_up()
    flusher = Repeat(rig.backends.redis.flushall, interval=0.15)

    async def flushed_ten_times() -> bool:
        return flusher.count >= 10

    # The flushes go on until there have been ten, however slowly a busy machine runs them.
    samples = await fault_under_load(
        traffic, flusher.start, flusher.stop, midway=lambda: until(flushed_ten_times, within=30.0)
    )

    print(f"redis flushall x{flusher.count}: {summarize(samples)}")
    assert_invisible(samples, traffic)
    assert metric_value(client, "rebuilds") > len(traffic.pairs)
    await assert_settles_exact(api, rig.backends, traffic.pairs, client=client)
