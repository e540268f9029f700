"""The raw cost of the dependency calls each route makes, without HTTP.

Each kind calls the use case its route calls (``StatsService``, or the
accounts over the user pool), with the store, cache and Cognito client that the
service's own start-up builds from the same ``STATS_*`` settings, in a closed
loop with the given concurrency. ``bench.run`` measures each right after its
route, from its own process moved onto the server's core, so that a route's rate
divided by its dependency calls' rate is the share that the HTTP server,
validation and middleware leave. By hand: ``taskset -c 0 python -m bench.rawdeps
--data DIR --run-id ID KIND...`` with the service's environment; it prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop
from aiohttp import web
from prometheus_client import Counter

from bench.datagen import token_claims
from bench.measure import LoadResult, closed_loop
from bench.traffic import (
    BATCH_SESSIONS,
    MOST_RESULTS,
    PAGE_LIMIT,
    TYPICAL_RESULTS,
    batch_counter,
    new_session_id,
    post_values,
    repost_counter,
    result_values,
)
from service import keys
from service.app import create_app, points_table
from service.domain.identity import Identity
from service.domain.model import CourseSession, ModuleResult, SessionStats, StoredSession
from service.http.batch import CONCURRENCY as BATCH_CONCURRENCY
from service.settings import load_settings

# What each route calls, keyed by the baseline's name.
KINDS = {
    "redis_read": "GET /courses/{id}: the aggregate read script",
    "dynamodb_get": "GET /courses/{id}/sessions/{id}: GetItem",
    "post_new": "POST, new session: UpdateItem + the apply script",
    "post_repost": "POST, re-post: UpdateItem + the apply script",
    "cognito_refresh": "POST /auth/refresh: InitiateAuth with REFRESH_TOKEN_AUTH",
    "session_query": f"GET /courses/{{id}}/sessions: a strongly consistent Query of {PAGE_LIMIT + 1} items",
    "post_batch": f"POST .../sessions/batch: {BATCH_SESSIONS} post_new calls, {BATCH_CONCURRENCY} at a time",
    "figures_read": "GET /admin/courses/{id}: the read script on the course's hash, and its remembered title beside it",
    "redis_course_read": "the read script on the course's hash alone",
    "teacher_figures_read": "figures_read after the check that the caller teaches the course (a remembered answer)",
    "roster_query": f"GET /admin/courses/{{id}}/learners: Queries of the roster partitions until {PAGE_LIMIT + 1} rows",
    "post_results": f"POST, new session of {TYPICAL_RESULTS} module results: UpdateItem + the apply script",
    "post_results_200": f"POST, new session of {MOST_RESULTS} module results: UpdateItem + the apply script",
    "breakdown_read": "GET /courses/{id}/modules: the read script with every type's by-type fields",
    "points_read": "GET /points: the read script on the learner's points over every course",
    "course_breakdown_read": "GET /admin/courses/{id}/modules: the same on the course's hash",
    "catalog_page": f"GET /admin/courses: a Query of {PAGE_LIMIT + 1} registered courses",
    "board_read": "GET /courses/{id}/leaderboard: the board script, top 10 and the learner's place",
    "staff_board_read": f"GET /admin/courses/{{id}}/leaderboard: the board script, {PAGE_LIMIT} places with ids",
    "big_board_read": "the board script on the large course's board, top 10 and the learner's place",
    "points_apply": "what points add to a POST: the score, and the apply script on the learner's points",
}
# An admin, as the course list's baseline reads it.
_ADMIN = Identity("00000000-0000-4000-8000-000000000000", frozenset({"admin"}))


def _rows(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def _total(counter: Counter) -> float:
    return sum(
        sample.value for family in counter.collect() for sample in family.samples if sample.name.endswith("_total")
    )


class DependencyCalls:
    """The routes' use cases, over the store and cache that the service's own start-up
    builds from the same settings; ``async with`` starts and stops them."""

    def __init__(self, data: Path, run_id: str) -> None:
        self._data = data
        self._pairs = _rows(data / "pairs.txt")
        self._sessions = _rows(data / "sessions.txt")
        self._refresh_tokens = _rows(data / "refresh.txt")
        self._courses = [course for course, _ in _rows(data / "courses.txt")]
        self._teacher = Identity(token_claims(_rows(data / "teaching.txt")[0][1])["sub"], frozenset({"teacher"}))
        self._run_id = run_id
        settings = load_settings()
        self._app = create_app(settings)
        self._points_table = points_table(settings)
        self._runner = web.AppRunner(self._app)
        self._operations: dict[str, Callable[[int], Awaitable[None]]] = {
            "redis_read": self._read,
            "dynamodb_get": self._get,
            "post_new": self._post_new,
            "post_repost": self._post_repost,
            "cognito_refresh": self._refresh,
            "session_query": self._list_sessions,
            "post_batch": self._post_batch,
            "figures_read": self._figures_and_course,
            "redis_course_read": self._course_figures,
            "teacher_figures_read": self._teacher_figures,
            "roster_query": self._list_learners,
            "post_results": self._post_results(TYPICAL_RESULTS),
            "post_results_200": self._post_results(MOST_RESULTS),
            "breakdown_read": self._breakdown,
            "points_read": self._points,
            "course_breakdown_read": self._course_breakdown,
            "catalog_page": self._catalog_page,
            "board_read": self._board_read(large=False),
            "big_board_read": self._board_read(large=True),
            "staff_board_read": self._staff_board_read,
            "points_apply": self._points_apply,
        }

    async def __aenter__(self) -> DependencyCalls:
        await self._runner.setup()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._runner.cleanup()

    @property
    def app(self) -> web.Application:
        """The application whose store, cache and use cases the calls go through (started by ``async with``)."""
        return self._app

    async def measure(self, kind: str, *, seconds: float, concurrency: int) -> LoadResult:
        before = self._hidden_failures()
        result = await closed_loop(self._operations[kind], seconds=seconds, concurrency=concurrency, tool="raw")
        return dataclasses.replace(result, errors=result.errors + self._hidden_failures() - before)

    def _hidden_failures(self) -> int:
        """Calls the use cases completed without the dependency calls their kind stands for:
        a course read that missed Redis (answered from DynamoDB) and a write whose Redis
        update was deferred. The route answers both with a 2xx; this loop counts them as errors."""
        metrics = self._app[keys.METRICS]
        return round(_total(metrics.cache_misses) + _total(metrics.dependency_errors))

    async def _read(self, n: int) -> None:
        user, course = self._pairs[n % len(self._pairs)]
        await self._app[keys.STATS].course(user, course)

    async def _get(self, n: int) -> None:
        user, course, session = self._sessions[n % len(self._sessions)]
        await self._app[keys.STATS].session(user, course, session)

    async def _post(self, user: str, course: str, stats: SessionStats) -> None:
        await self._app[keys.STATS].record(user, course, stats)

    async def _post_new(self, n: int) -> None:
        user, course = self._pairs[n % len(self._pairs)]
        await self._post(user, course, SessionStats(new_session_id(self._run_id, 0xFFFE, n), *post_values(n)))

    def _post_results(self, count: int) -> Callable[[int], Awaitable[None]]:
        async def post(n: int) -> None:
            user, course = self._pairs[n % len(self._pairs)]
            results = tuple(ModuleResult(*values) for values in result_values(n, count))
            session = new_session_id(self._run_id, 0xFFFC, n)
            await self._post(user, course, SessionStats.of_results(session, results))

        return post

    async def _breakdown(self, n: int) -> None:
        user, course = self._pairs[n % len(self._pairs)]
        await self._app[keys.STATS].course(user, course, by_type=True)

    async def _points(self, n: int) -> None:
        await self._app[keys.STATS].points(self._pairs[n % len(self._pairs)][0])

    async def _course_breakdown(self, n: int) -> None:
        await self._app[keys.STATS].course_figures(self._courses[n % len(self._courses)], by_type=True)

    @functools.cached_property
    def _board(self) -> list[list[str]]:
        # Written after these calls start: the large course is seeded last.
        return _rows(self._data / "board.txt")

    def _board_read(self, *, large: bool) -> Callable[[int], Awaitable[None]]:
        async def read(n: int) -> None:
            rows = self._board if large else self._pairs
            user, course = rows[n % len(rows)]
            await self._app[keys.STATS].leaderboard(course, None, (0, 10), user)

        return read

    async def _staff_board_read(self, n: int) -> None:
        await self._app[keys.STATS].leaderboard(self._courses[n % len(self._courses)], None, (0, PAGE_LIMIT))

    async def _points_apply(self, n: int) -> None:
        """The points a POST's session earns, and its entry in the learner's points over every course:
        the work points add to a POST (its other Redis call runs beside this one)."""
        user, course = self._pairs[n % len(self._pairs)]
        stats = self._points_table.scored(SessionStats(new_session_id(self._run_id, 0xFFFC, n), *post_values(n)))
        cache = self._app[keys.CACHE]
        await cache.apply_write(cache.points_key(user), CourseSession(course, StoredSession(stats, 1)))

    async def _catalog_page(self, n: int) -> None:
        await self._app[keys.COURSES].page(_ADMIN, PAGE_LIMIT, None)

    async def _post_repost(self, n: int) -> None:
        user, course, session = self._sessions[n % len(self._sessions)]
        values = post_values(repost_counter(n, len(self._sessions)))
        await self._post(user, course, SessionStats(session, *values))

    async def _list_sessions(self, n: int) -> None:
        user, course = self._pairs[n % len(self._pairs)]
        await self._app[keys.STATS].sessions(user, course, PAGE_LIMIT)

    async def _post_batch(self, n: int) -> None:
        """As the batch route records its items: the same use case per item, a bounded number at a time."""
        user, course = self._pairs[n % len(self._pairs)]
        gate = asyncio.Semaphore(BATCH_CONCURRENCY)

        async def one(counter: int) -> None:
            async with gate:
                await self._post(
                    user, course, SessionStats(new_session_id(self._run_id, 0xFFFD, counter), *post_values(counter))
                )

        async with asyncio.TaskGroup() as group:
            for item in range(BATCH_SESSIONS):
                group.create_task(one(batch_counter(n, item)))

    async def _course_figures(self, n: int) -> None:
        await self._app[keys.STATS].course_figures(self._courses[n % len(self._courses)])

    async def _figures_and_course(self, n: int) -> None:
        """As the route reads them: the figures, and the course's remembered title at the same time."""
        course = self._courses[n % len(self._courses)]
        await asyncio.gather(self._app[keys.STATS].course_figures(course), self._app[keys.COURSES].title(course))

    async def _teacher_figures(self, n: int) -> None:
        """As the route runs for a teacher: the check that they teach the course, then the figures and title."""
        await self._app[keys.COURSES].check_reader(self._teacher, self._courses[n % len(self._courses)])
        await self._figures_and_course(n)

    async def _list_learners(self, n: int) -> None:
        await self._app[keys.STATS].learners(self._courses[n % len(self._courses)], PAGE_LIMIT, (0, None))

    async def _refresh(self, n: int) -> None:
        accounts = self._app[keys.ACCOUNTS]
        if accounts is None:
            raise RuntimeError("no user pool: STATS_COGNITO_USER_POOL_ID and STATS_AUTH_CLIENT_ID are unset")
        (token,) = self._refresh_tokens[n % len(self._refresh_tokens)]
        await accounts.refresh(token)


async def _measure_all(kinds: list[str], data: Path, run_id: str, seconds: float, concurrency: int) -> dict[str, Any]:
    async with DependencyCalls(data, run_id) as calls:
        return {kind: (await calls.measure(kind, seconds=seconds, concurrency=concurrency)).to_json() for kind in kinds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help="directory with pairs.txt, sessions.txt, refresh.txt, courses.txt and teaching.txt",
    )
    parser.add_argument("--run-id", required=True, help="8 hex digits that make new session ids unique")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("kinds", nargs="+", choices=sorted(KINDS))
    args = parser.parse_args(argv)
    results = uvloop.run(_measure_all(args.kinds, args.data, args.run_id, args.seconds, args.concurrency))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
