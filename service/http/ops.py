"""Operations routes: cheap liveness, deep readiness, version, Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import __version__, keys
from service.domain.errors import CacheUnavailable, DependencyUnavailable, NotReady
from service.http.contract import Inputs, Reply, endpoint
from service.http.schemas import HealthResponse, ReadyResponse, VersionResponse

READY_TIMEOUT_SECONDS = 1.0


@endpoint(
    operation_id="health",
    summary="Liveness: the process answers",
    responses={200: (HealthResponse(), "Alive.")},
    errors=(),
    tag="operations",
)
async def health(request: web.Request, inputs: Inputs) -> Reply:
    """No I/O, so a slow dependency never kills the task."""
    return Reply(200, {"status": "ok"})


async def _check(ping: Callable[[], Awaitable[None]]) -> str | None:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await ping()
    except (DependencyUnavailable, CacheUnavailable, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    return None


@endpoint(
    operation_id="ready",
    summary="Readiness: DynamoDB and Redis answer",
    responses={200: (ReadyResponse(), "Both dependencies answer.")},
    errors=(503,),
    tag="operations",
)
async def ready(request: web.Request, inputs: Inputs) -> Reply:
    app = request.app
    dynamodb, redis = await asyncio.gather(_check(app[keys.STORE].ping), _check(app[keys.CACHE].ping))
    failing = {name: reason for name, reason in (("dynamodb", dynamodb), ("redis", redis)) if reason}
    if failing:
        raise NotReady(f"unavailable: {', '.join(failing)}", failing)
    return Reply(200, {"status": "ready", "checks": {"dynamodb": "ok", "redis": "ok"}})


@endpoint(
    operation_id="version",
    summary="The running version and the commit it was built from",
    responses={200: (VersionResponse(), "The version.")},
    errors=(),
    tag="operations",
)
async def version(request: web.Request, inputs: Inputs) -> Reply:
    return Reply(200, {"version": __version__, "revision": request.app[keys.SETTINGS].git_revision})


def sample_gauges(app: web.Application) -> None:
    """The gauges read from the cache's state, at a scrape (and, with several workers, every second)."""
    registry, cache = app[keys.METRICS], app[keys.CACHE]
    registry.circuit_state.set(int(cache.circuit_state))
    registry.stale_aggregates.set(cache.stale_count)


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text format; not JSON, so not part of the OpenAPI document. With several workers,
    the task's view: every worker's numbers, this one's brought up to date first."""
    app = request.app
    registry = app[keys.METRICS]
    sample_gauges(app)
    registry.publish()
    response = web.Response(body=generate_latest(registry.registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health, allow_head=False)
    app.router.add_get("/ready", ready, allow_head=False)
    app.router.add_get("/version", version, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
