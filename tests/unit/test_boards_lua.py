"""A course's leaderboards in Redis (``service.redis.cache``): the scripts keep them exactly with the
course's hash, answer ranks as SPEC §8 says, and a board missing a member is never served."""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from service.domain.model import PAST_WEEKS, Board, CourseTotals, LearnerRow, Standing, week_of
from service.domain.ports import Busy, Claimed
from service.redis.cache import AggregateCache, board_key, course_key
from tests.unit.test_cache_lua import make_cache

COURSE = "course-1"
KEY = course_key(COURSE)
NOW = week_of(time.time_ns() // 1_000_000)


def row(user: str, revision: int, points: int, weeks: dict[int, int] | None = None, *, sessions: int = 1) -> LearnerRow:
    totals = CourseTotals(sessions=sessions, points=points) if sessions else CourseTotals()
    return LearnerRow(user, totals, revision, tuple(sorted((weeks or {}).items())) if sessions else ())


async def rebuilt(cache: AggregateCache, rows: list[LearnerRow]) -> None:
    claim = await cache.read(KEY)
    assert isinstance(claim, Claimed)
    assert await cache.complete(KEY, claim.incarnation, rows) is not None


async def board(
    cache: AggregateCache, week: int | None = None, window: tuple[int, int] = (0, 100), me: str | None = None
) -> Board:
    answer = await cache.read_board(COURSE, week, window, me, claim=False)
    assert isinstance(answer, Board), answer
    return answer


async def members(redis: Any, key: str) -> dict[str, int]:
    return {member.decode(): -int(score) for member, score in await redis.zrange(key, 0, -1, withscores=True)}


@pytest.mark.parametrize("seed", range(6))
async def test_boards_hold_the_latest_revision_of_every_row_in_any_order(redis: Any, seed: int) -> None:
    rng = random.Random(seed)
    cache = make_cache(redis)
    await rebuilt(cache, [])
    versions: dict[str, list[LearnerRow]] = {}
    for user in "abcdefgh":
        versions[user] = []
        for revision in range(1, rng.randint(2, 6)):
            weeks = {
                week: rng.randint(0, 50) for week in rng.sample(range(NOW - PAST_WEEKS, NOW + 1), rng.randint(0, 3))
            }
            live = rng.random() > 0.2
            versions[user].append(row(user, revision, rng.randint(0, 100), weeks, sessions=1 if live else 0))
    applies = [entry for entries in versions.values() for entry in entries for _ in range(rng.randint(1, 2))]
    rng.shuffle(applies)
    for entry in applies:
        await cache.apply_change(KEY, entry)
    latest = [entries[-1] for entries in versions.values()]
    assert await members(redis, board_key(COURSE)) == {r.user_id: r.totals.points for r in latest if r.totals.sessions}
    for week in range(NOW - PAST_WEEKS, NOW + 1):
        expected = {r.user_id: dict(r.weeks)[week] for r in latest if week in dict(r.weeks)}
        assert await members(redis, board_key(COURSE, week)) == expected, week
        assert await board(cache, week) == Board.of(latest, week, 0, 100, None)
    assert await board(cache) == Board.of(latest, None, 0, 100, None)


async def test_ranks_are_competition_ranks_and_the_caller_finds_their_own(redis: Any) -> None:
    cache = make_cache(redis)
    points = {"u1": 50, "u2": 40, "u3": 40, "u4": 10, "u5": 0}
    await rebuilt(cache, [row(user, 1, value) for user, value in points.items()])
    top = await board(cache, window=(0, 3), me="u5")
    assert top == Board(5, (Standing(1, 50, "u1"), Standing(2, 40, "u2"), Standing(2, 40, "u3")), Standing(5, 0, "u5"))
    # A window that starts inside a tie still ranks its first row by everyone above it.
    assert (await board(cache, window=(2, 2))).standings == (Standing(2, 40, "u3"), Standing(4, 10, "u4"))
    assert (await board(cache, window=(5, 2), me="nobody")) == Board(5, (), None)


@pytest.mark.parametrize("lost", [None, NOW], ids=["all-time", "weekly"])
async def test_a_board_missing_a_member_is_never_served_and_its_claim_drops_every_board(
    redis: Any, lost: int | None
) -> None:
    cache = make_cache(redis)
    await rebuilt(cache, [row("a", 1, 5, {NOW: 5, NOW - 1: 2}), row("b", 1, 7, {NOW: 7})])
    assert (await board(cache, lost)).learners == 2
    # Evicted, and one member written back: the set is smaller than the hash says.
    await redis.delete(board_key(COURSE, lost))
    await cache.apply_change(KEY, row("a", 2, 6, {NOW: 6, NOW - 1: 2}))
    assert await cache.read_board(COURSE, lost, (0, 10), None, claim=False) is None
    assert isinstance(await cache.read_board(COURSE, lost, (0, 10), None, claim=True), Claimed)
    assert not await redis.exists(board_key(COURSE), board_key(COURSE, NOW), board_key(COURSE, NOW - 1))
    # Started again from nothing, locked for the rebuild, with the node it was claimed on.
    assert set(await redis.hkeys(KEY)) == {b"i", b"l", b"r"}
    assert isinstance(await cache.read_board(COURSE, None, (0, 10), None, claim=True), Busy)


async def test_a_forgotten_course_drops_its_boards(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuilt(cache, [row("a", 1, 5, {NOW: 5, NOW - PAST_WEEKS: 1})])
    await cache.forget(KEY)
    assert not await redis.exists(KEY, board_key(COURSE), board_key(COURSE, NOW), board_key(COURSE, NOW - PAST_WEEKS))


async def test_a_weekly_board_expires_by_the_end_of_its_thirteenth_week(redis: Any) -> None:
    cache = make_cache(redis)
    oldest = NOW - PAST_WEEKS
    await rebuilt(cache, [row("a", 1, 5, {oldest: 5})])
    ends_ms = (7 * (oldest + PAST_WEEKS + 1) - 3) * 86_400_000
    assert 0 < await redis.pexpiretime(board_key(COURSE, oldest)) <= ends_ms
    await board(cache, oldest)
    assert 0 < await redis.pexpiretime(board_key(COURSE, oldest)) <= ends_ms
    # A row stored long ago still names a week whose board is gone: applying it keeps nothing.
    await cache.apply_change(KEY, row("b", 1, 3, {oldest - 2: 3}))
    assert not await redis.exists(board_key(COURSE, oldest - 2))


async def test_a_read_of_the_course_keeps_its_boards_as_long_as_its_hash(redis: Any) -> None:
    cache = make_cache(redis)
    await rebuilt(cache, [row("a", 1, 5, {NOW: 5})])
    for key in (board_key(COURSE), board_key(COURSE, NOW)):
        await redis.pexpire(key, 1_000)
    assert not isinstance(await cache.read(KEY), Claimed)
    # Renewed to the hash's idle TTL (60 s here), the weekly board no later than its week's end allows.
    assert await redis.pttl(board_key(COURSE)) > 50_000
    assert await redis.pttl(board_key(COURSE, NOW)) > 50_000
