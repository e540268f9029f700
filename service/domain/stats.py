"""The use cases: record or delete a session, read a session or a page of them, read a
learner's course aggregate, the course-wide figures and roster, and erase a learner.

DynamoDB decides what is true; Redis only ever speeds up the aggregate read.
When Redis fails the answer comes from DynamoDB instead (slower, never wrong),
and when DynamoDB fails the caller gets :class:`DependencyUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from service.domain.errors import CacheUnavailable, NotFound
from service.domain.model import (
    Board,
    Contribution,
    CourseFigures,
    CourseSession,
    CourseTotals,
    LearnerPoints,
    LearnerRow,
    SessionStats,
    StoredSession,
    WriteOutcome,
)
from service.domain.points import PointsTable
from service.domain.ports import AggregateStore, Busy, Claimed, Hit, ReadResult, SessionRepository
from service.domain.roster import Roster
from service.telemetry.metrics import Metrics

T = TypeVar("T")
H = TypeVar("H")

# What a rebuild read from DynamoDB: the entries to cache and the figures they make.
Loaded = tuple[Sequence[Contribution], CourseFigures]


@dataclasses.dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a miss's flight ends with: the figures, and the entries it read (None if it found the
    aggregate cached after all, another process having rebuilt it)."""

    figures: CourseFigures
    entries: Sequence[Contribution] | None = None


log = logging.getLogger(__name__)

# How often a reader looks again while another process rebuilds the aggregate.
_BUSY_POLL_SECONDS = 0.02


class StatsService:
    def __init__(
        self,
        store: SessionRepository,
        cache: AggregateStore,
        metrics: Metrics,
        *,
        busy_wait_seconds: float,
        points: PointsTable | None = None,
    ) -> None:
        self._store = store
        self._points = points or PointsTable({}, 0)
        self._cache = cache
        self._metrics = metrics
        self._busy_wait = busy_wait_seconds
        # One rebuild per aggregate in this process, however many readers miss at once.
        self._flights: dict[str, asyncio.Future[Rebuilt]] = {}
        self._roster = Roster(store, cache)

    async def aclose(self) -> None:
        """Stop the rebuilds still in flight, whose readers have all gone (the application is stopping),
        so that none goes on with the Redis and DynamoDB clients closed under it."""
        pending = set(self._flights.values())
        while pending:
            # Again until they end: a cancellation landing inside a client call can be lost in it.
            for flight in pending:
                flight.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)

    async def record(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, SessionStats]:
        stats = self._points.scored(stats)
        written = self._store.upsert(user_id, course_id, stats)
        outcome, stored = await self._write(user_id, course_id, written, lambda done: done[1])
        if stored.deleted:
            # Refused by a delete stamped after it began: this write came first and the delete removed it.
            completed = stats.completed_at_ms or time.time_ns() // 1_000_000
            return outcome, dataclasses.replace(stats, completed_at_ms=completed)
        return outcome, stored.stats

    async def delete(self, user_id: str, course_id: str, session_id: str) -> None:
        deleted = self._store.delete(user_id, course_id, session_id)
        if await self._write(user_id, course_id, deleted, lambda done: done) is None:
            raise NotFound("no such session for this user and course")

    async def _write(
        self, user_id: str, course_id: str, write: Awaitable[T], stored_of: Callable[[T], StoredSession | None]
    ) -> T:
        """Run a write to DynamoDB, then apply the session it stored to the learner's course aggregate
        and to their points over every course (both at once)."""
        keys = (self._cache.key(user_id, course_id), self._cache.points_key(user_id))
        try:
            done = await write
        except BaseException:
            # A timeout or a cut connection says nothing about whether DynamoDB applied
            # the write (it may yet): the aggregates must be rebuilt, not served as they are.
            for key in keys:
                self._cache.mark_stale(key)
            raise
        stored = stored_of(done)
        if stored is None:
            return done
        # Unchanged writes apply too: the version rule makes it free, and it repairs
        # an aggregate whose update was lost when an earlier attempt died midway.
        applied = await asyncio.gather(
            self._cache.apply_write(keys[0], stored),
            self._cache.apply_write(keys[1], CourseSession(course_id, stored)),
            return_exceptions=True,
        )
        for outcome in applied:
            if isinstance(outcome, CacheUnavailable):
                self._redis_failed(outcome)
                log.warning("aggregate update deferred: redis unavailable (%s)", outcome)
            elif isinstance(outcome, BaseException):
                raise outcome
        return done

    def _redis_failed(self, exc: CacheUnavailable) -> None:
        self._metrics.dependency_errors.labels("redis", str(exc)).inc()

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

    async def course(self, user_id: str, course_id: str, *, by_type: bool = False) -> CourseTotals:
        """The learner's aggregate in the course; with ``by_type``, its sums by module type too."""

        async def load() -> Loaded:
            sessions = await self._load_course(user_id, course_id)
            return sessions, CourseFigures.of(sessions)

        figures = await self._aggregate(self._cache.key(user_id, course_id), load, by_type=by_type)
        if figures.totals.sessions == 0:
            raise NotFound("no sessions for this user in this course")
        return figures.totals

    async def points(self, user_id: str) -> LearnerPoints:
        """The learner's points over every course, from their own items only (one partition's Query)."""

        async def load() -> Loaded:
            entries = [
                CourseSession(course_id, stored)
                async for page in self._store.learner_pages(user_id)
                for course_id, stored in page
            ]
            self._metrics.rebuilds.inc()
            return entries, CourseFigures.of(entries)

        figures = await self._aggregate(self._cache.points_key(user_id), load)
        if figures.totals.sessions == 0:
            raise NotFound("no sessions for this user")
        return LearnerPoints(figures.totals.points, figures.groups)

    async def course_figures(self, course_id: str, *, by_type: bool = False) -> CourseFigures:
        """The course-wide figures over every learner's row of the course's roster; with ``by_type``,
        the sums by module type and how many learners studied each too."""
        key = self._cache.course_key(course_id)
        figures = await self._aggregate(key, self._roster_load(course_id), by_type=by_type)
        if figures.learners == 0:
            raise NotFound("no learner has a session in this course")
        return figures

    def _roster_load(self, course_id: str) -> Callable[[], Awaitable[Loaded]]:
        async def load() -> Loaded:
            rows = await self._store.roster(course_id)
            self._metrics.rebuilds.inc()
            return rows, CourseFigures.of(rows)

        return load

    async def leaderboard(
        self, course_id: str, week: int | None, window: tuple[int, int], me: str | None = None
    ) -> Board:
        """A window (offset, limit) of a course's leaderboard, all time (``week`` None) or of one ISO week,
        and ``me``'s place on it: one Redis call on a hit. A lost board comes back with the course's
        aggregate, in the one rebuild of the course's hash that every reader of either shares."""
        key = self._cache.course_key(course_id)
        rebuilt = await self._served(
            key, lambda: self._read_board(course_id, week, window, me, claim=True), self._roster_load(course_id)
        )
        if isinstance(rebuilt, Board):
            return rebuilt
        again = await self._read_board(course_id, week, window, me, claim=False)
        if isinstance(again, Board):
            return again
        if rebuilt.entries is None:
            # Another process rebuilt it and Redis did not serve it after all: the roster read once here for
            # every such reader, in a flight of its own that always reads.
            rebuilt = await asyncio.shield(await self._join(f"{key} rows", self._roster_load(course_id), None))
        # Redis did not keep it (failing, or lost again): ranked here from the rows, slower and as exact.
        return Board.of(rebuilt.entries or (), week, *window, me)

    async def _read_board(
        self, course_id: str, week: int | None, window: tuple[int, int], me: str | None, *, claim: bool
    ) -> Board | Claimed | Busy | None:
        try:
            return await self._cache.read_board(course_id, week, window, me, claim=claim)
        except CacheUnavailable as exc:
            self._redis_failed(exc)
            return None

    async def learners(
        self, course_id: str, limit: int, after: tuple[int, str | None]
    ) -> tuple[list[LearnerRow], tuple[int, str | None] | None]:
        """A page of the course's learners (those with a session), and where the next page starts."""
        return await self._store.roster_page(course_id, limit, after)

    async def erase(self, user_id: str) -> None:
        """Remove every session of a learner, and them from every course's roster and aggregate.

        DynamoDB first: once its items are gone, nothing can rebuild their figures. A
        Redis failure afterwards is left to change capture, whose records of the
        removals make the same repairs (``service.changes.applier``)."""
        for course_id in sorted(await self._store.erase(user_id)):
            await self._store.delete_row(course_id, user_id)
            try:
                await self._cache.forget(self._cache.key(user_id, course_id))
                await self._roster.forget_course(course_id)
            except CacheUnavailable as exc:
                # Never served from here again until deleted; elsewhere, change capture repairs them.
                self._cache.mark_stale(self._cache.key(user_id, course_id))
                self._cache.mark_stale(self._cache.course_key(course_id))
                self._redis_failed(exc)
                log.warning("erasure left to change capture: redis unavailable (%s)", exc)
        try:
            await self._cache.forget(self._cache.points_key(user_id))
        except CacheUnavailable as exc:
            self._cache.mark_stale(self._cache.points_key(user_id))
            self._redis_failed(exc)

    async def _aggregate(
        self, key: str, load: Callable[[], Awaitable[Loaded]], *, by_type: bool = False
    ) -> CourseFigures:
        """A cached aggregate, or one rebuild of it from DynamoDB however many readers miss at once.
        A rebuild's figures always hold the by-type sums; a hit's only when ``by_type`` asks for them."""
        # A hit and a rebuild both hold the figures.
        return (await self._served(key, lambda: self._read_cache(key, by_type=by_type), load)).figures

    async def _served(
        self,
        key: str,
        read: Callable[[], Awaitable[H | Claimed | Busy | None]],
        load: Callable[[], Awaitable[Loaded]],
    ) -> H | Rebuilt:
        """What ``read`` of the cached aggregate serves on a hit, else the end of this process's one
        flight that resolves the miss (joined, or started with the miss ``read`` met)."""
        flight = self._flights.get(key)
        if flight is None:
            result = await read()
            if result is not None and not isinstance(result, Claimed | Busy):
                self._metrics.cache_hits.inc()
                return result
            flight = await self._join(key, load, result)
        self._metrics.cache_misses.inc()
        return await asyncio.shield(flight)

    async def _join(
        self, key: str, load: Callable[[], Awaitable[Loaded]], result: ReadResult | None
    ) -> asyncio.Future[Rebuilt]:
        """The flight that resolves a miss: this process's one in progress, or a new one."""
        flight = self._flights.get(key)
        if flight is None:
            return self._start_flight(key, load, result)
        if isinstance(result, Claimed):
            # Another reader here got Busy first and is already rebuilding: free the lock for it.
            await self._release(key)
        return flight

    async def _read_cache(self, key: str, *, by_type: bool = False) -> ReadResult | None:
        try:
            return await self._cache.read(key, by_type=by_type)
        except CacheUnavailable as exc:
            self._redis_failed(exc)
            return None

    def _start_flight(
        self, key: str, load: Callable[[], Awaitable[Loaded]], result: ReadResult | None
    ) -> asyncio.Future[Rebuilt]:
        flight = asyncio.ensure_future(self._resolve_miss(key, load, result))
        self._flights[key] = flight
        flight.add_done_callback(lambda done: self._finish_flight(key, done))
        return flight

    def _finish_flight(self, key: str, flight: asyncio.Future[Rebuilt]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
        # Every waiter may have gone (client disconnects): the error is still consumed.
        if not flight.cancelled():
            flight.exception()

    async def _resolve_miss(
        self, key: str, load: Callable[[], Awaitable[Loaded]], result: ReadResult | None
    ) -> Rebuilt:
        deadline = time.monotonic() + self._busy_wait
        while isinstance(result, Busy) and time.monotonic() < deadline:
            await asyncio.sleep(_BUSY_POLL_SECONDS)
            result = await self._read_cache(key, by_type=True)
        if isinstance(result, Hit):
            return Rebuilt(result.figures)
        claim = result if isinstance(result, Claimed) else None
        try:
            entries, figures = await load()
        except BaseException:
            if claim is not None:
                await self._release(key)
            raise
        if claim is None:
            self._metrics.fallback_reads.inc()
            return Rebuilt(figures, entries)
        try:
            completed = await self._cache.complete(key, claim.incarnation, entries)
        except CacheUnavailable as exc:
            self._redis_failed(exc)
            return Rebuilt(figures, entries)
        # The completed hash also holds writes that landed during the rebuild.
        return Rebuilt(completed if completed is not None else figures, entries)

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
