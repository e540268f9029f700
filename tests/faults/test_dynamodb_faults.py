"""DynamoDB failures under load: frozen, black-holed, stopped, throttling, resetting.

DynamoDB down means 503 with Retry-After in the JSON envelope, within the
request deadline, for writes and for reads that need it; a cached aggregate is
still served from Redis. A client that retries its failed POSTs afterwards
ends with exact aggregates: a retry never double counts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.faults.conftest import Rig, create_table
from tests.faults.proxy import Mode
from tests.faults.support import (
    Action,
    Repeat,
    Sample,
    Traffic,
    assert_settles_exact,
    envelope_problem,
    fault_under_load,
    new_pairs,
    scrape,
    summarize,
    until,
)
from tests.faults.throttle import Throttle, ThrottlingEndpoint
from tests.integration.support import Api, Backends, Reply, new_id

pytestmark = pytest.mark.slow

DEADLINE_SECONDS = 2.0
# Short DynamoDB timeouts so an outage turns into a 503 well within the deadline.
FAST_FAIL: dict[str, Any] = {
    "dynamodb_timeout_seconds": 0.3,
    "dynamodb_max_attempts": 1,  # two attempts in fact: see test_dynamodb_max_attempts_is_attempts_per_call
    "request_deadline_seconds": DEADLINE_SECONDS,
    "retry_after_seconds": 2,
}
RETRIES = 'stats_dependency_retries_total{dependency="dynamodb"}'


def assert_unavailable_answers(samples: list[Sample], traffic: Traffic, *, writes_fail: bool = True) -> None:
    """During a DynamoDB outage: 503s that keep the contract; never a 500."""
    assert samples, "no traffic during the fault"
    assert {s.status for s in samples} <= {200, 201, 503}, summarize(samples)
    assert traffic.problems() == []
    if writes_fail:
        writes = [s for s in samples if s.kind in ("post", "repost")]
        assert writes
        assert {s.status for s in writes} == {503}, summarize(writes)


async def assert_cold_reads_unavailable(api: Api, deadline: float = DEADLINE_SECONDS) -> None:
    """Reads that need DynamoDB (an uncached aggregate, a session, a list) and deletes get a 503 in time."""
    user, course = new_id(), new_id()

    async def check(call: Awaitable[Reply]) -> None:
        started = time.monotonic()
        reply = await call
        seconds = time.monotonic() - started
        assert reply.status == 503, reply.body
        assert envelope_problem(reply, deadline=deadline, seconds=seconds) is None
        assert reply.json["error"]["code"] == "service_unavailable"
        assert reply.headers["Retry-After"] == "2"

    await asyncio.gather(
        check(api.course(user, course)),
        check(api.session(user, course, new_id())),
        check(api.call("GET", f"/courses/{course}/sessions", user=user)),
        check(api.call("DELETE", f"/courses/{course}/sessions/{new_id()}", user=user)),
    )


async def assert_retries_settle(traffic: Traffic, backends: Backends, client: TestClient[Any, Any]) -> None:
    """What a well-behaved client does after the outage: retry its 503s, then check."""
    statuses = await traffic.retry_unanswered()
    assert set(statuses) <= {200, 201}, statuses
    assert traffic.problems() == []
    await assert_settles_exact(traffic.api, backends, traffic.pairs, client=client)


def dynamodb_fault(fault: str, rig: Rig) -> tuple[Action, Action]:
    """How to cause and clear each kind of DynamoDB outage; the service always goes through the proxy."""
    proxy = rig.dynamodb_proxy
    if fault == "pause":
        return rig.moto.pause, rig.moto.resume
    if fault == "blackhole":
        return proxy.blackhole, proxy.passthrough
    # Flapping resets hit requests at every stage, including ones DynamoDB already applied.
    flapper = Repeat(lambda: proxy.passthrough() if proxy.mode is Mode.RESET else proxy.reset(), interval=0.15)

    async def clear() -> None:
        await flapper.stop()
        proxy.passthrough()

    return flapper.start, clear


@pytest.mark.parametrize("fault", ["pause", "blackhole", "reset"])
async def test_dynamodb_outage_gives_503_and_retries_do_not_double_count(fault: str, rig: Rig) -> None:
    client = await rig.start_app(rig.redis.url, rig.dynamodb_via_proxy, **FAST_FAIL)
    api = Api(client)
    traffic = Traffic(api, new_pairs(3, 2), seed=len(fault), deadline=DEADLINE_SECONDS)
    await traffic.warm_up()
    # An aggregate no write touches during the outage: Redis alone can keep serving it.
    spare = Traffic(api, new_pairs(1, 1), seed=0, deadline=DEADLINE_SECONDS)
    await spare.warm_up()
    cause, clear = dynamodb_fault(fault, rig)

    async def midway() -> None:
        if fault != "reset":
            await assert_cold_reads_unavailable(api)
            assert (await spare.read_course(spare.pairs[0])).status == 200

    samples = await fault_under_load(traffic, cause, clear, seconds=3.0, midway=midway)

    print(f"dynamodb {fault}: {summarize(samples)}")
    assert_unavailable_answers(samples, traffic, writes_fail=fault != "reset")
    # An aggregate whose write failed may have missed it (the write can still land), so it
    # is not served from Redis again until DynamoDB can rebuild it.
    course_reads = [s for s in samples if s.kind == "course"]
    assert {s.status for s in course_reads} <= {200, 503}, summarize(course_reads)
    await assert_retries_settle(traffic, rig.backends, client)


async def test_write_answered_503_but_applied_later_is_not_missed_by_the_aggregate(rig: Rig) -> None:
    """A frozen DynamoDB still holds the request in its socket and applies it when it
    thaws, after the client got its 503. Even if that client never retries, the
    aggregate must come to agree with DynamoDB once things are quiet."""
    client = await rig.start_app(rig.redis.url, rig.moto.url, **FAST_FAIL)
    api = Api(client)
    traffic = Traffic(api, new_pairs(1, 1), seed=5, deadline=DEADLINE_SECONDS)
    await traffic.warm_up()
    pair = traffic.pairs[0]
    lost = new_id()
    rig.moto.pause()
    try:
        reply = await traffic.post(
            pair, {"sessionId": lost, "totalModulesStudied": 7, "averageScore": 50, "timeStudied": 9}
        )
        assert reply.status == 503
    finally:
        rig.moto.resume()

    async def applied() -> bool:
        return any(item["sessionKey"]["S"].endswith(lost) for item in await rig.backends.items(pair.user))

    await until(applied, within=5.0)
    await assert_settles_exact(api, rig.backends, [pair], within=2.0, client=client)


async def test_dynamodb_stopped_then_restarted(rig: Rig) -> None:
    client = await rig.start_app(rig.redis.url, rig.moto.url, **FAST_FAIL)
    api = Api(client)
    traffic = Traffic(api, new_pairs(3, 2), seed=17, deadline=DEADLINE_SECONDS)
    await traffic.warm_up()

    async def restart() -> None:
        # moto keeps its data in memory: the restarted server starts empty.
        await asyncio.to_thread(rig.moto.start)
        await create_table(rig.moto.url)

    samples = await fault_under_load(traffic, rig.moto.kill, restart, midway=lambda: assert_cold_reads_unavailable(api))

    print(f"dynamodb stopped: {summarize(samples)}")
    assert_unavailable_answers(samples, traffic)
    # The old sessions are gone with the old server, so recovery is judged on new ones.
    fresh = Traffic(api, new_pairs(2, 2), seed=18, deadline=DEADLINE_SECONDS)
    await fresh.warm_up()
    async with fresh.running():
        await asyncio.sleep(0.5)
    print(f"dynamodb restarted: {summarize(fresh.samples)}")
    assert {s.status for s in fresh.samples} <= {200, 201}, summarize(fresh.samples)
    assert fresh.problems() == []
    await assert_settles_exact(api, rig.backends, fresh.pairs, client=client)


async def test_dynamodb_throttling_is_retried_then_answered_503(rig: Rig) -> None:
    async with ThrottlingEndpoint(rig.moto.url) as endpoint:
        # Few enough attempts that the backoff (up to 1 s, then 2 s) ends within the 5 s deadline.
        client = await rig.start_app(rig.redis.url, endpoint.url, dynamodb_max_attempts=2, retry_after_seconds=2)
        api = Api(client)
        traffic = Traffic(api, new_pairs(2, 2), seed=23, deadline=5.0)
        await traffic.warm_up()

        # Occasional throttling: every call's first attempt is refused, its retry passes.
        endpoint.throttle = Throttle.FIRST_ATTEMPT
        async with traffic.running():
            await asyncio.sleep(1.5)
        print(f"dynamodb throttled once per call: {summarize(traffic.samples)}")
        assert {s.status for s in traffic.samples} <= {200, 201}, summarize(traffic.samples)
        assert traffic.problems() == []
        retries = (await scrape(api))[RETRIES]
        assert retries == endpoint.throttled > 0

        # Persistent throttling: retries run out and the client is told to come back.
        endpoint.throttle = Throttle.ALWAYS
        pair = traffic.pairs[0]
        new_session = {"sessionId": new_id(), "totalModulesStudied": 1, "averageScore": 1, "timeStudied": 1}
        write, _ = await asyncio.gather(traffic.post(pair, new_session), assert_cold_reads_unavailable(api, 5.0))
        assert write.status == 503
        # Redis alone answers for a cached aggregate; the one whose write failed is not served
        # from Redis again until DynamoDB can rebuild it, since an earlier attempt may have landed.
        assert (await traffic.read_course(traffic.pairs[1])).status == 200
        assert (await traffic.read_course(pair)).status == 503
        assert traffic.problems() == []
        assert (await scrape(api))[RETRIES] > retries

        endpoint.throttle = Throttle.OFF
        await assert_retries_settle(traffic, rig.backends, client)


async def test_dynamodb_max_attempts_is_attempts_per_call(rig: Rig) -> None:
    async with ThrottlingEndpoint(rig.moto.url) as endpoint:
        # The README: "STATS_DYNAMODB_MAX_ATTEMPTS: attempts per DynamoDB call"; 1 means no retry.
        client = await rig.start_app(rig.redis.url, endpoint.url, dynamodb_max_attempts=1)
        endpoint.throttle = Throttle.ALWAYS
        assert (await Api(client).session(new_id(), new_id(), new_id())).status == 503
        assert endpoint.throttled == 1
