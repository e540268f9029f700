"""The capacity units README's "What each route costs in DynamoDB" states, from DynamoDB's
published rules: writes in 1 KB units of the larger of the old and new item, strongly
consistent reads in 4 KB units (a Query sums its items before rounding)."""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any

from bench.seed import item_bytes
from service import module_types
from service.domain.model import CourseTotals, LearnerRow, ModuleResult, SessionStats, StoredSession, TypeTotals
from service.dynamodb import codec
from service.http.schemas import MAX_MODULES, MAX_SCORE, MAX_TIME_MS
from service.settings import Settings

ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
# The most a session earns by the default points table: STATS_SESSION_POINTS x every module at 100.
MAX_POINTS = Settings().session_points * MAX_MODULES


def largest_item() -> dict[str, Any]:
    """The largest session item: every number at its bound, a long version and stamp, a completion
    time, and the ``updatedAt`` attribute of items written before ``writtenAtUs`` existed."""
    stats = SessionStats(ID, MAX_MODULES, MAX_SCORE * 100, MAX_TIME_MS, completed_at_ms=10**13, points=MAX_POINTS)
    item = codec.encode(ID, ID, StoredSession(stats, version=10**12), written_at_us=10**16)
    return {**item, "updatedAt": {"N": str(10**13)}}


def test_a_session_item_is_under_one_kilobyte_so_a_post_costs_one_write_unit() -> None:
    # item_bytes counts a number by its digits, more than DynamoDB's encoding takes.
    size = item_bytes(largest_item())
    assert size <= 275
    assert math.ceil(size / 1024) == 1  # UpdateItem, refused conditions included
    assert math.ceil(size / 4096) == 1  # GetItem, strongly consistent


def test_a_rebuild_query_reads_at_most_one_unit_per_fourteen_sessions() -> None:
    size = item_bytes(largest_item())
    for sessions, units in ((1, 1), (14, 1), (100, 7), (10_000, 672)):
        assert math.ceil(sessions * size / 4096) <= units


def largest_row() -> dict[str, Any]:
    """The largest roster row: 10 000 sessions each at every bound, and a revision of a late stamp."""
    per_session = CourseTotals.of([SessionStats(ID, MAX_MODULES, MAX_SCORE * 100, MAX_TIME_MS, points=MAX_POINTS)])
    totals = CourseTotals(*(10_000 * value for value in dataclasses.astuple(per_session)))
    return {**codec.row_key(ID, ID), **codec.row_values(LearnerRow(ID, totals, revision=10**16 * 10**9 + 10**9))}


def test_a_roster_row_is_at_most_200_bytes_so_its_write_is_one_unit() -> None:
    size = item_bytes(largest_row())
    assert size <= 200
    assert math.ceil(size / 1024) == 1


def test_a_course_rebuild_reads_a_unit_per_partition_of_twenty_learners_and_4800_for_100_000() -> None:
    size = item_bytes(largest_row())
    assert 20 * size <= 4096  # each of the 16 partitions rounds up on its own
    # Learners spread over the partitions by crc32 of their id, as codec.row_key puts them.
    ids = [f"{index:08x}-0000-4000-8000-000000000000" for index in range(100_000)]
    per_shard = collections.Counter(codec.roster_shard(user_id) for user_id in ids)
    assert sum(math.ceil(count * size / 4096) for count in per_shard.values()) <= 4_800


def session_with_results(count: int, *, module_ids: bool = True) -> dict[str, Any]:
    """The largest session of ``count`` results: the shipped file's longest type id, top scores, the day's
    time shared among them, and a module id each."""
    longest = max(module_types.load().ids, key=len)
    result = ModuleResult(longest, MAX_SCORE * 100, MAX_TIME_MS // count, ID if module_ids else None)
    most = max(kind.points for kind in module_types.load().types) * count
    stats = SessionStats(
        ID, count, MAX_SCORE * 100, MAX_TIME_MS, completed_at_ms=10**13, results=(result,) * count, points=most
    )
    item = codec.encode(ID, ID, StoredSession(stats, version=10**12), written_at_us=10**16)
    return {**item, "updatedAt": {"N": str(10**13)}}


def write_units(item: dict[str, Any]) -> int:
    return math.ceil(item_bytes(item) / 1024)


def test_module_results_keep_a_session_small() -> None:
    # README's cost table: 1 WRU up to 20 results with module ids; 200 at most 8 WRU with ids, 4 without.
    assert item_bytes(session_with_results(1)) <= 310
    assert write_units(session_with_results(20)) == 1
    assert write_units(session_with_results(200)) == 8
    assert write_units(session_with_results(200, module_ids=False)) == 4


def test_a_roster_row_with_every_shipped_type_at_its_bound_is_one_write_unit() -> None:
    sessions = 10_000
    by_type = tuple(
        TypeTotals(kind, sessions * 200, sessions * MAX_TIME_MS, sessions * 200 * MAX_SCORE * 100)
        for kind in module_types.load().ids
    )
    row = largest_row()
    totals = dataclasses.replace(codec.decode_row(row).totals, by_type=by_type)
    item = {**codec.row_key(ID, ID), **codec.row_values(LearnerRow(ID, totals, revision=10**16 * 10**9 + 10**9))}
    assert item_bytes(item) <= 1024
