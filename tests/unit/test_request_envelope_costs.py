"""The envelope's cheaper parts: the deadline sweep and request metrics kept in plain numbers.
Both must behave exactly as what they replaced (asyncio.timeout, prometheus_client's
labelled Counter and Histogram)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from pytest_aiohttp import AiohttpClient

from service import keys
from service.domain.errors import DependencyUnavailable
from service.http.deadlines import Deadlines
from service.http.middleware import request_envelope
from service.settings import Settings
from service.telemetry.metrics import _LATENCY_BUCKETS, Metrics

DEADLINE = 0.3


async def envelope_client(aiohttp_client: AiohttpClient, handler: Any) -> TestClient[Any, Any]:
    app = web.Application(middlewares=[request_envelope])
    app[keys.SETTINGS] = Settings(env="test", request_deadline_seconds=DEADLINE, access_log=False)
    app[keys.METRICS] = Metrics()
    app[keys.DEADLINES] = Deadlines()
    app.router.add_get("/work", handler)
    return await aiohttp_client(app)


async def test_a_request_past_its_deadline_answers_503_near_the_deadline(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(10)
        return web.Response()

    client = await envelope_client(aiohttp_client, slow)
    started = time.monotonic()
    response = await client.get("/work")
    elapsed = time.monotonic() - started
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await response.json())["error"]["code"] == "service_unavailable"
    assert "request deadline exceeded" in caplog.text
    # The sweep runs every tenth of the deadline.
    assert DEADLINE <= elapsed < DEADLINE * 1.5


async def test_requests_within_the_deadline_are_untouched(aiohttp_client: AiohttpClient) -> None:
    async def quick(request: web.Request) -> web.Response:
        await asyncio.sleep(DEADLINE / 3)
        return web.json_response({"ok": True})

    client = await envelope_client(aiohttp_client, quick)
    responses = await asyncio.gather(*(client.get("/work") for _ in range(20)))
    assert {response.status for response in responses} == {200}
    # Later requests get their own deadline, not what is left of an earlier one.
    for _ in range(3):
        assert (await client.get("/work")).status == 200


async def test_a_cancellation_from_elsewhere_is_not_turned_into_a_timeout(aiohttp_client: AiohttpClient) -> None:
    entered = asyncio.Event()
    outcome: list[BaseException] = []

    async def waits(request: web.Request) -> web.Response:
        entered.set()
        try:
            await asyncio.sleep(10)
        except BaseException as exc:
            outcome.append(exc)
            raise
        return web.Response()

    client = await envelope_client(aiohttp_client, waits)
    request = asyncio.ensure_future(client.get("/work"))
    await entered.wait()
    request.cancel()  # the client goes away: aiohttp cancels the handler
    with pytest.raises(asyncio.CancelledError):
        await request
    await asyncio.sleep(0.05)
    assert outcome
    assert isinstance(outcome[0], asyncio.CancelledError)


OBSERVATIONS = [
    ("GET", "/courses/{courseId}", 200, 0.0004),
    ("GET", "/courses/{courseId}", 200, 0.001),  # exactly on a bound: that bucket, as le= says
    ("GET", "/courses/{courseId}", 404, 0.0025),
    ("POST", "/courses/{courseId}", 201, 0.07),
    ("POST", "/courses/{courseId}", 503, 9.5),  # past the last bound: only +Inf
]


def prometheus_reference(registry: CollectorRegistry | None) -> Callable[[str, str, int, float], None]:
    """What prometheus_client's own counter and histogram would make of each request."""
    counter = Counter("stats_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=registry)
    histogram = Histogram(
        "stats_http_request_duration_seconds",
        "Time to answer an HTTP request",
        ["method", "route"],
        buckets=_LATENCY_BUCKETS,
        registry=registry,
    )

    def observe(method: str, route: str, status: int, seconds: float) -> None:
        counter.labels(method, route, str(status)).inc()
        histogram.labels(method, route).observe(seconds)

    return observe


def test_request_metrics_expose_what_prometheus_client_would() -> None:
    metrics = Metrics()
    reference = CollectorRegistry()
    observe = prometheus_reference(reference)
    for method, route, status, seconds in OBSERVATIONS:
        metrics.observe_request(method, route, status, seconds)
        observe(method, route, status, seconds)

    def http_samples(registry: CollectorRegistry) -> set[str]:
        lines = generate_latest(registry).decode().splitlines()
        return {line for line in lines if line.startswith("stats_http_") and "_created" not in line}

    assert http_samples(metrics.registry) == http_samples(reference)


async def test_a_dependency_failure_names_its_cause_in_the_log_and_the_metric_never_to_the_client(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def throttled(request: web.Request) -> web.Response:
        raise DependencyUnavailable("dynamodb", "UpdateItem/ThrottlingException")

    client = await envelope_client(aiohttp_client, throttled)
    response = await client.get("/work", headers={"X-Request-Id": "req-1"})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    body = await response.text()
    assert "Throttling" not in body
    assert "UpdateItem" not in body
    [record] = [record for record in caplog.records if record.getMessage() == "dependency unavailable"]
    assert (record.dependency, record.reason, record.request_id) == (  # type: ignore[attr-defined]
        "dynamodb",
        "UpdateItem/ThrottlingException",
        "req-1",
    )
    metrics = client.app[keys.METRICS]
    sample = metrics.registry.get_sample_value(
        "stats_dependency_errors_total", {"dependency": "dynamodb", "reason": "UpdateItem/ThrottlingException"}
    )
    assert sample == 1
