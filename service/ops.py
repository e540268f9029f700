"""Operations routes: cheap liveness, deep readiness, version, Prometheus metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service import __version__, keys
from service.errors import CacheUnavailable, DependencyUnavailable
from service.middleware import error_response

READY_TIMEOUT_SECONDS = 1.0


async def health(request: web.Request) -> web.Response:
    """Liveness: the process answers. No I/O, so a slow dependency never kills the task."""
    return web.json_response({"status": "ok"})


async def _check(ping: Callable[[], Awaitable[None]]) -> str | None:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await ping()
    except (DependencyUnavailable, CacheUnavailable, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    return None


async def ready(request: web.Request) -> web.Response:
    app = request.app
    dynamodb, redis = await asyncio.gather(_check(app[keys.STORE].ping), _check(app[keys.CACHE].ping))
    failing = {name: reason for name, reason in (("dynamodb", dynamodb), ("redis", redis)) if reason}
    if failing:
        return error_response(503, "not_ready", f"unavailable: {', '.join(failing)}", failing, {"Retry-After": "5"})
    return web.json_response({"status": "ready", "checks": {"dynamodb": "ok", "redis": "ok"}})


async def version(request: web.Request) -> web.Response:
    return web.json_response({"version": __version__, "revision": request.app[keys.SETTINGS].git_revision})


async def metrics(request: web.Request) -> web.Response:
    app = request.app
    registry = app[keys.METRICS]
    cache = app[keys.CACHE]
    registry.circuit_state.set(int(cache.breaker.state))
    registry.stale_aggregates.set(cache.stale_count)
    response = web.Response(body=generate_latest(registry.registry))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/health", health, allow_head=False)
    app.router.add_get("/ready", ready, allow_head=False)
    app.router.add_get("/version", version, allow_head=False)
    app.router.add_get("/metrics", metrics, allow_head=False)
