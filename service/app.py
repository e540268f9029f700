"""The application factory, shared by ``python -m service``, gunicorn and the tests.

Each backend client is opened by its own ``cleanup_ctx`` generator, so teardown
runs even when a later start-up step fails. A request runs one way through the
layers: ``http`` (contract, envelope) -> ``domain`` (use cases) -> ``dynamodb``
and ``redis`` (storage).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import secrets
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from service import keys, module_types
from service.accounts.cognito import open_accounts
from service.auth.tokens import TokenVerifier
from service.changes.applier import ChangeApplier
from service.changes.poller import StreamPoller
from service.domain.courses import Courses
from service.domain.erasures import Erasures
from service.domain.errors import CacheUnavailable
from service.domain.points import PointsTable
from service.domain.roster import Roster
from service.domain.stats import StatsService
from service.dynamodb.catalog import CourseCatalog
from service.dynamodb.client import count_retries, dynamodb, streams_client
from service.dynamodb.store import SessionStore
from service.dynamodb.table import ensure_table
from service.http import accounts, admin, courses, leaderboards, ops
from service.http.contract import MAX_BATCH_BODY_BYTES
from service.http.cursors import Cursors
from service.http.deadlines import Deadlines
from service.http.middleware import request_envelope
from service.http.openapi import add_docs
from service.redis.client import open_cache
from service.redis.maintenance import maintain
from service.settings import Settings, mask_url
from service.telemetry import tracing
from service.telemetry.metrics import Metrics

log = logging.getLogger(__name__)


async def _dynamodb_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    async with dynamodb(settings) as clients:
        if settings.is_local:
            await ensure_table(clients.client, settings.dynamodb_table)
        count_retries(clients, app[keys.METRICS].dependency_retries.labels("dynamodb"))
        app[keys.TRACING].trace_dynamodb(clients)
        store = SessionStore(clients, settings.dynamodb_table)
        # Fail fast: a wrong table name or endpoint stops the start-up, not the first request.
        await store.ping()
        log.info(
            "dynamodb ready",
            extra={"endpoint": settings.dynamodb_endpoint or "aws", "table": settings.dynamodb_table},
        )
        app[keys.STORE] = store
        yield


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    assert settings.redis_url is not None
    metrics = app[keys.METRICS]
    redis, cache = open_cache(settings, metrics.slow_path_reads, metrics.redis_redirections)
    app[keys.TRACING].trace_redis(redis, cache, settings.redis_url)
    try:
        await cache.ping()
        log.info("redis ready", extra={"url": mask_url(settings.redis_url)})
    except CacheUnavailable as exc:
        # Redis down means slower, not down: start and serve from DynamoDB.
        log.warning("redis unreachable at start-up", extra={"url": mask_url(settings.redis_url), "error": str(exc)})
    app[keys.CACHE] = cache
    maintenance = asyncio.create_task(maintain(cache))
    try:
        yield
    finally:
        maintenance.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await maintenance
        await cache.aclose()
        await redis.aclose()


def points_table(settings: Settings) -> PointsTable:
    """What sessions earn under these settings: the module types' points and the session default."""
    return PointsTable({kind.id: kind.points for kind in settings.module_types.types}, settings.session_points)


async def _stats_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    app[keys.STATS] = StatsService(
        app[keys.STORE],
        app[keys.CACHE],
        app[keys.METRICS],
        # Waiting on another task's rebuild must leave time to rebuild here within the deadline.
        busy_wait_seconds=min(settings.rebuild_lock_seconds, settings.request_deadline_seconds / 2),
        points=points_table(settings),
    )
    app[keys.ERASURES] = Erasures(app[keys.STATS])
    app[keys.COURSES] = Courses(CourseCatalog(app[keys.STORE].client, settings.dynamodb_table), app[keys.CACHE])
    yield
    await app[keys.ERASURES].aclose()
    await app[keys.STATS].aclose()


async def _auth_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    jwks_url = settings.jwks_url
    if settings.auth_issuer is None or settings.auth_client_id is None or jwks_url is None:
        app[keys.VERIFIER] = None
        yield
        return
    timeout = aiohttp.ClientTimeout(total=settings.dynamodb_timeout_seconds)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        verifier = TokenVerifier(
            http, jwks_url=jwks_url, issuer=settings.auth_issuer, client_id=settings.auth_client_id
        )
        try:
            await verifier.refresh_keys()
            log.info("identity provider keys loaded", extra={"jwks": jwks_url})
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # Tokens are refused until the keys load (retried on use, at most once a minute).
            log.warning("identity provider keys unavailable", extra={"jwks": jwks_url, "error": repr(exc)})
        app[keys.VERIFIER] = verifier
        yield


async def _accounts_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    async with open_accounts(settings) as accounts:
        if accounts is not None:
            log.info("accounts over the user pool", extra={"pool": settings.cognito_user_pool_id})
        app[keys.ACCOUNTS] = accounts
        yield


async def _changes_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[keys.SETTINGS]
    if not settings.change_capture:
        yield
        return
    async with streams_client(settings) as streams:
        stream_arn = await app[keys.STORE].stream_arn()
        if stream_arn is None:
            log.warning("change capture is on but the table has no stream", extra={"table": settings.dynamodb_table})
            yield
            return
        applier = ChangeApplier(app[keys.CACHE], Roster(app[keys.STORE], app[keys.CACHE]))
        polling = StreamPoller(streams, stream_arn, applier)
        # Before serving: a write answered before the stream's position was taken would never be read.
        await polling.start()
        poller = asyncio.create_task(polling.run())
        log.info("change capture polling the table's stream", extra={"stream": stream_arn})
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller


async def _shared_metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    """With several workers, this one's numbers in the shared files stay fresh for the scrapes others answer."""
    metrics = app[keys.METRICS]
    if not metrics.multiprocess:
        yield
        return
    publishing = asyncio.create_task(metrics.keep_published(lambda: ops.sample_gauges(app)))
    try:
        yield
    finally:
        publishing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await publishing
        # A worker that stops leaves its final request numbers behind for the task's counters.
        metrics.publish()


async def _freeze_heap(_: web.Application) -> None:
    gc.collect()
    gc.freeze()


def freeze_heap_after_startup(app: web.Application) -> web.Application:
    """``app``, whose start-up ends by moving every object alive then out of the garbage collector's sight.

    That heap (botocore's service models, the routes, schemas and clients: hundreds of thousands of
    objects) lives as long as the process, but every collection of the oldest generation traversed
    it, and a large read's objects (a 10 000-session rebuild's items) set off several: frozen, such a
    rebuild's server CPU per session fell from 29 to 17 µs (a median of three cold reads against the
    bench's DynamoDB stand-in), and it no longer grew with the rebuild's size. For serving processes,
    which start one app; tests start many, whose objects must stay collectable."""
    # After the cleanup contexts' start (the clients), which aiohttp runs first.
    app.on_startup.append(_freeze_heap)
    return app


def create_app(settings: Settings) -> web.Application:
    module_types.install(settings.module_types)
    app = web.Application(middlewares=[request_envelope], client_max_size=MAX_BATCH_BODY_BYTES)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = Metrics()
    app[keys.DEADLINES] = Deadlines()
    # Every profile that serves traffic names a secret; a bare Settings() (unit tests) gets its own.
    app[keys.CURSORS] = Cursors(settings.cursor_secret or secrets.token_hex(32))
    app.cleanup_ctx.extend([_dynamodb_ctx, _redis_ctx, _stats_ctx, _auth_ctx, _accounts_ctx, _changes_ctx])
    app.cleanup_ctx.append(_shared_metrics_ctx)
    courses.add_routes(app)
    accounts.add_routes(app)
    admin.add_routes(app)
    leaderboards.add_routes(app)
    ops.add_routes(app)
    add_docs(app)
    # Last: its middleware and its provider's cleanup context go before all others.
    app[keys.TRACING] = tracing.install(app)
    return app
