"""The use cases: record a session, read a session or a page of them, read a course aggregate.

DynamoDB decides what is true; Redis only ever speeds up the aggregate read.
When Redis fails the answer comes from DynamoDB instead (slower, never wrong),
and when DynamoDB fails the caller gets :class:`DependencyUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from service.domain.errors import CacheUnavailable, NotFound
from service.domain.model import CourseTotals, SessionStats, StoredSession, WriteOutcome
from service.domain.ports import AggregateStore, Busy, Claimed, Hit, ReadResult, SessionRepository
from service.telemetry.metrics import Metrics

log = logging.getLogger(__name__)

# How often a reader looks again while another process rebuilds the aggregate.
_BUSY_POLL_SECONDS = 0.02


class StatsService:
    def __init__(
        self, store: SessionRepository, cache: AggregateStore, metrics: Metrics, *, busy_wait_seconds: float
    ) -> None:
        self._store = store
        self._cache = cache
        self._metrics = metrics
        self._busy_wait = busy_wait_seconds
        # One rebuild per aggregate in this process, however many readers miss at once.
        self._flights: dict[str, asyncio.Future[CourseTotals]] = {}

    async def record(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, SessionStats]:
        key = self._cache.key(user_id, course_id)
        try:
            outcome, stored = await self._store.upsert(user_id, course_id, stats)
        except BaseException:
            # A timeout or a cut connection says nothing about whether DynamoDB applied
            # the write (it may yet): the aggregate must be rebuilt, not served as it is.
            self._cache.mark_stale(key)
            raise
        # Unchanged writes apply too: the version rule makes it free, and it repairs
        # an aggregate whose update was lost when an earlier attempt died midway.
        try:
            await self._cache.apply_write(key, stored)
        except CacheUnavailable as exc:
            self._metrics.dependency_errors.labels("redis", str(exc)).inc()
            log.warning("aggregate update deferred: redis unavailable (%s)", exc)
        return outcome, stored.stats

    async def session(self, user_id: str, course_id: str, session_id: str) -> SessionStats:
        stored = await self._store.get(user_id, course_id, session_id)
        if stored is None:
            raise NotFound("no such session for this user and course")
        return stored.stats

    async def sessions(
        self, user_id: str, course_id: str, limit: int, after: str | None = None
    ) -> tuple[list[SessionStats], str | None]:
        """A page of the user's sessions in the course, and the session id the next page starts after."""
        page, next_after = await self._store.session_page(user_id, course_id, limit, after)
        return [stored.stats for stored in page], next_after

    async def course(self, user_id: str, course_id: str) -> CourseTotals:
        key = self._cache.key(user_id, course_id)
        flight = self._flights.get(key)
        if flight is None:
            result = await self._read_cache(key)
            if isinstance(result, Hit):
                self._metrics.cache_hits.inc()
                return _found(result.totals)
            flight = self._flights.get(key)
            if flight is None:
                flight = self._start_flight(key, user_id, course_id, result)
            elif isinstance(result, Claimed):
                # Another reader here got Busy first and is already rebuilding: free the lock for it.
                await self._release(key)
        self._metrics.cache_misses.inc()
        return _found(await asyncio.shield(flight))

    async def _read_cache(self, key: str) -> ReadResult | None:
        try:
            return await self._cache.read(key)
        except CacheUnavailable as exc:
            self._metrics.dependency_errors.labels("redis", str(exc)).inc()
            return None

    def _start_flight(
        self, key: str, user_id: str, course_id: str, result: ReadResult | None
    ) -> asyncio.Future[CourseTotals]:
        flight = asyncio.ensure_future(self._resolve_miss(key, user_id, course_id, result))
        self._flights[key] = flight
        flight.add_done_callback(lambda done: self._finish_flight(key, done))
        return flight

    def _finish_flight(self, key: str, flight: asyncio.Future[CourseTotals]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        # Every waiter may have gone (client disconnects): the error is still consumed.
        if not flight.cancelled():
            flight.exception()

    async def _resolve_miss(self, key: str, user_id: str, course_id: str, result: ReadResult | None) -> CourseTotals:
        deadline = time.monotonic() + self._busy_wait
        while isinstance(result, Busy) and time.monotonic() < deadline:
            await asyncio.sleep(_BUSY_POLL_SECONDS)
            result = await self._read_cache(key)
        if isinstance(result, Hit):
            return result.totals
        claim = result if isinstance(result, Claimed) else None
        try:
            sessions = await self._load_course(user_id, course_id)
        except BaseException:
            if claim is not None:
                await self._release(key)
            raise
        totals = CourseTotals.of(stored.stats for stored in sessions)
        if claim is None:
            self._metrics.fallback_reads.inc()
            return totals
        try:
            completed = await self._cache.complete(key, claim.incarnation, sessions)
        except CacheUnavailable as exc:
            self._metrics.dependency_errors.labels("redis", str(exc)).inc()
            return totals
        # The completed hash also holds writes that landed during the rebuild.
        return completed if completed is not None else totals

    async def _load_course(self, user_id: str, course_id: str) -> list[StoredSession]:
        started = time.perf_counter()
        sessions: list[StoredSession] = []
        async for page in self._store.course_pages(user_id, course_id):
            sessions.extend(page)
        self._metrics.rebuilds.inc()
        self._metrics.rebuild_seconds.observe(time.perf_counter() - started)
        return sessions

    async def _release(self, key: str) -> None:
        # If Redis is failing the lock simply expires.
        with contextlib.suppress(CacheUnavailable):
            await self._cache.release(key)


def _found(totals: CourseTotals) -> CourseTotals:
    if totals.sessions == 0:
        raise NotFound("no sessions for this user in this course")
    return totals
