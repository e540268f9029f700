"""The application factory, shared by ``python -m service``, gunicorn and the tests."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import warnings
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp_apigami import setup_aiohttp_apispec
from aiohttp_apigami.constants import SWAGGER_DICT
from redis.asyncio import Redis

from service import __version__, handlers, keys, ops
from service.breaker import CircuitBreaker, CircuitState
from service.cache import AggregateCache
from service.clients import dynamodb_client, redis_client
from service.deadlines import Deadlines
from service.errors import CacheUnavailable
from service.metrics import Metrics
from service.middleware import request_envelope
from service.settings import Settings, mask_url
from service.stats import StatsService
from service.store import SessionStore
from service.table import ensure_table

log = logging.getLogger(__name__)

_ATTEMPT = re.compile(r"\battempt=(\d+)")

# How often the background task probes an open Redis circuit and repairs stale aggregates.
MAINTENANCE_INTERVAL_SECONDS = 0.5


async def _dynamodb_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    async with dynamodb_client(settings) as client:
        if settings.is_local:
            await ensure_table(client, settings.dynamodb_table)
        metrics = app[keys.METRICS]

        def count_retries(request: Any, **_: Any) -> None:
            # botocore numbers every attempt in this header; seen before each send,
            # so retries of calls that end in an error are counted too.
            header = request.headers.get("amz-sdk-request", "")
            attempt = _ATTEMPT.search(header.decode() if isinstance(header, bytes) else header)
            if attempt and attempt[1] != "1":
                metrics.dependency_retries.labels("dynamodb").inc()

        client.meta.events.register("before-send.dynamodb", count_retries)
        store = SessionStore(client, settings.dynamodb_table)
        # Fail fast: a wrong table name or endpoint stops the start-up, not the first request.
        await store.ping()
        log.info(
            "dynamodb ready",
            extra={"endpoint": settings.dynamodb_endpoint or "aws", "table": settings.dynamodb_table},
        )
        app[keys.DYNAMODB] = client
        app[keys.STORE] = store
        yield


async def _maintain(cache: AggregateCache, redis: Redis) -> None:
    while True:
        await asyncio.sleep(MAINTENANCE_INTERVAL_SECONDS)
        try:
            if cache.breaker.state is not CircuitState.CLOSED:
                await cache.ping()
            if cache.stale_count:
                repaired = await cache.repair()
                log.info("repaired stale aggregates", extra={"count": repaired})
        except CacheUnavailable:
            continue


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    assert settings.redis_url is not None, "local_dependencies() provides a Redis URL"
    redis = redis_client(settings.redis_url, settings.redis_timeout_seconds)
    cache = AggregateCache(
        redis,
        ttl_seconds=settings.cache_ttl_seconds,
        max_age_seconds=settings.cache_max_age_seconds,
        lock_seconds=settings.rebuild_lock_seconds,
        breaker=CircuitBreaker(reset_seconds=1.0),
    )
    try:
        await cache.ping()
        log.info("redis ready", extra={"url": mask_url(settings.redis_url)})
    except CacheUnavailable as exc:
        # Redis down means slower, not down: start and serve from DynamoDB.
        log.warning("redis unreachable at start-up", extra={"url": mask_url(settings.redis_url), "error": str(exc)})
    app[keys.REDIS] = redis
    app[keys.CACHE] = cache
    maintenance = asyncio.create_task(_maintain(cache, redis))
    try:
        yield
    finally:
        maintenance.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintenance
        await cache.aclose()
        await redis.aclose()


async def _stats_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.STATS] = StatsService(
        app[keys.STORE],
        app[keys.CACHE],
        app[keys.METRICS],
        # Waiting on another task's rebuild must leave time to rebuild here within the deadline.
        busy_wait_seconds=min(settings.rebuild_lock_seconds, settings.request_deadline_seconds / 2),
    )
    yield


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[request_envelope], client_max_size=handlers.MAX_BODY_BYTES)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.DEADLINES] = Deadlines()
    app.cleanup_ctx.extend([_dynamodb_ctx, _redis_ctx, _stats_ctx])
    handlers.add_routes(app)
    ops.add_routes(app)
    # aiohttp-apigami keeps its state under plain string keys; that is its business.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        setup_aiohttp_apispec(
            app,
            title="Learning stats service",
            version=__version__,
            url="/api/docs/swagger.json",
            swagger_path="/api/docs",
            openapi_version="3.0.3",
            in_place=True,
        )
        _drop_swagger2_fields(app[SWAGGER_DICT])
    return app


def _drop_swagger2_fields(spec: dict[str, Any]) -> None:
    # aiohttp-apigami's @docs always adds Swagger 2's "produces", which OpenAPI 3 forbids.
    for operations in spec["paths"].values():
        for operation in operations.values():
            operation.pop("produces", None)
