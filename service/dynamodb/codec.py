"""The session item format, in one place: how a session is keyed and stored in DynamoDB.

One table. An item is one session: partition key ``userId``, sort key
``sessionKey = "<courseId>#<sessionId>"``, so one user's sessions in one course
are a single ``Query`` on the key. Attributes: ``modules``, ``score`` (hundredths
of a percent point), ``timeMs``, ``version`` (grows by one per change) and
``writtenAtUs``: when the request that wrote it began, in µs since the epoch
(``service.dynamodb.store`` explains why). Items written before that attribute
existed carry ``updatedAt`` (ms) instead. ``completedAtMs`` is when the session
was completed (ms). ``results``, when the session has module results (SPEC §7),
is one binary value: per result, the type id's length and text, the score in
hundredths (2 bytes), the time in ms (4 bytes), and a flag byte followed by the
module id's 16 bytes when it has one. 20 results with module ids take about
600 bytes, so such a session stays one write unit (README "What each route
costs in DynamoDB"); as text they took twice that. A deleted
session is a tombstone: ``deleted = true``, its version and stamp, and no values.

**Course rosters** live in the same table: one row per (course, learner) with
the learner's sums in the course (``service.domain.roster``; ``b`` holds their
sums by module type, ``service.domain.model.type_sums_text``), partition key
``course#<courseId>#<shard>`` (the shard is a hash of the learner's id, one of
``ROSTER_SHARDS``), sort key the learner's id. A course's rows are spread over
that many partitions, so no partition takes every write of a popular course,
and the whole roster is that many paginated Queries. Registered courses and
their teachers are items too (``service.dynamodb.catalog``). Roster and catalog
keys begin with ``course`` or ``teaches#``, session keys with a user id (a UUID,
hexadecimal), so they never meet.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from collections.abc import Sequence
from typing import Any

from service.domain.model import (
    CourseTotals,
    LearnerRow,
    ModuleResult,
    SessionStats,
    StoredSession,
    type_sums_of,
    type_sums_text,
    weeks_of,
    weeks_text,
)

PARTITION_KEY = "userId"
SORT_KEY = "sessionKey"

# Attribute of each stored value, under the placeholder names the expressions use.
MODULES, SCORE, TIME_MS, VERSION, WRITTEN_AT = "modules", "score", "timeMs", "version", "writtenAtUs"
DELETED = "deleted"
# When the session was completed, ms since the epoch. Items stored before it existed are read as
# completed when they were written (``writtenAtUs``, or the older ``updatedAt`` in ms).
COMPLETED_AT, LEGACY_UPDATED_AT = "completedAtMs", "updatedAt"
RESULTS = "results"
# The points the session earned when written (SPEC §8); items stored before points existed earned none.
POINTS = "points"
# What reads project: the key and the values a session is decoded from.
PROJECTION = "#sk, #m, #s, #t, #v, #d, #c, #w, #u, #r, #p"
PROJECTION_NAMES = {
    "#sk": SORT_KEY,
    "#m": MODULES,
    "#s": SCORE,
    "#t": TIME_MS,
    "#v": VERSION,
    "#d": DELETED,
    "#c": COMPLETED_AT,
    "#w": WRITTEN_AT,
    "#u": LEGACY_UPDATED_AT,
    "#r": RESULTS,
    "#p": POINTS,
}

# Partitions per course roster: at 1 000 writes a second to one course, each takes
# about 63, far under a partition's 1 000 WCU. Changing it moves every row.
ROSTER_SHARDS = 16
ROSTER_PREFIX = "course#"
# A roster row's attributes: the learner's sums in the course and their revision.
ROW_SUMS = ("n", "m", "w", "ss", "t", "p")
REVISION = "rev"
ROW_TYPE_SUMS = "b"
# Points by ISO week ("<week>=<points>,…"), for the weekly leaderboards.
ROW_WEEKS = "wk"


def session_key(course_id: str, session_id: str) -> str:
    return f"{course_id}#{session_id}"


def course_prefix(course_id: str) -> str:
    """The sort-key prefix of every session of one course."""
    return f"{course_id}#"


def item_key(user_id: str, course_id: str, session_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": user_id}, SORT_KEY: {"S": session_key(course_id, session_id)}}


def stats_values(stats: SessionStats) -> dict[str, Any]:
    """A session's stored values as DynamoDB attribute values, by attribute name."""
    values: dict[str, Any] = {
        MODULES: {"N": str(stats.modules)},
        SCORE: {"N": str(stats.score_cents)},
        TIME_MS: {"N": str(stats.time_ms)},
        POINTS: {"N": str(stats.points)},
    }
    if stats.results:
        values[RESULTS] = {"B": results_bytes(stats.results)}
    return values


_NUMBERS = struct.Struct(">HI")  # a result's score in hundredths (at most 10 000) and its time in ms (at most a day)
_NO_ID, _WITH_ID = b"\x00", b"\x01"


def results_bytes(results: Sequence[ModuleResult]) -> bytes:
    out = bytearray()
    for result in results:
        kind = result.module_type.encode()
        out += bytes((len(kind),)) + kind + _NUMBERS.pack(result.score_cents, result.time_ms)
        out += _NO_ID if result.module_id is None else _WITH_ID + uuid.UUID(result.module_id).bytes
    return bytes(out)


def results_of(value: bytes | str) -> tuple[ModuleResult, ...]:
    """What :func:`results_bytes` wrote; a stream record delivered to Lambda carries it as base64 text."""
    data = base64.b64decode(value) if isinstance(value, str) else value
    results, at = [], 0
    while at < len(data):
        end = at + 1 + data[at]
        kind = data[at + 1 : end].decode()
        score, time_ms = _NUMBERS.unpack_from(data, end)
        at = end + _NUMBERS.size + 1
        module_id = None
        if data[at - 1 : at] == _WITH_ID:
            module_id, at = str(uuid.UUID(bytes=data[at : at + 16])), at + 16
        results.append(ModuleResult(kind, score, time_ms, module_id))
    return tuple(results)


def encode(user_id: str, course_id: str, stored: StoredSession, written_at_us: int | None = None) -> dict[str, Any]:
    """A whole item, attribute for attribute as an upsert (or a delete) leaves it (for bulk loads and tests)."""
    now = time.time_ns() // 1000 if written_at_us is None else written_at_us
    values: dict[str, Any] = {DELETED: {"BOOL": True}} if stored.deleted else stats_values(stored.stats)
    if not stored.deleted:
        completed = stored.stats.completed_at_ms
        values[COMPLETED_AT] = {"N": str(now // 1000 if completed is None else completed)}
    return {
        **item_key(user_id, course_id, stored.stats.session_id),
        **values,
        VERSION: {"N": str(stored.version)},
        WRITTEN_AT: {"N": str(now)},
    }


def decode(item: dict[str, Any]) -> StoredSession:
    session_id = item[SORT_KEY]["S"].partition("#")[2]
    version = int(item[VERSION]["N"])
    if DELETED in item:
        return StoredSession(SessionStats(session_id, 0, 0, 0), version, deleted=True)
    stats = SessionStats(
        session_id=session_id,
        modules=int(item[MODULES]["N"]),
        score_cents=int(item[SCORE]["N"]),
        time_ms=int(item[TIME_MS]["N"]),
        completed_at_ms=completed_at(item),
        results=results_of(item[RESULTS]["B"]) if RESULTS in item else (),
        points=int(item[POINTS]["N"]) if POINTS in item else 0,
    )
    return StoredSession(stats, version)


def completed_at(item: dict[str, Any]) -> int | None:
    if COMPLETED_AT in item:
        return int(item[COMPLETED_AT]["N"])
    if WRITTEN_AT in item:
        return int(item[WRITTEN_AT]["N"]) // 1000
    return int(item[LEGACY_UPDATED_AT]["N"]) if LEGACY_UPDATED_AT in item else None


# The partitions of ``service.dynamodb.catalog``: every registered course, and each teacher's.
CATALOG = "courses"
TEACHING_PREFIX = "teaches#"


def teaching_partition(user_id: str) -> str:
    return f"{TEACHING_PREFIX}{user_id}"


def is_session_partition(partition_key: str) -> bool:
    """Whether a partition holds a learner's sessions (its key is their id), not derived or catalog items."""
    return not partition_key.startswith((ROSTER_PREFIX, CATALOG, TEACHING_PREFIX))


def roster_partition(course_id: str, shard: int) -> str:
    return f"{ROSTER_PREFIX}{course_id}#{shard}"


def roster_shard(user_id: str) -> int:
    # crc32, not hash(): the same learner must land on the same shard in every process.
    return zlib.crc32(user_id.encode()) % ROSTER_SHARDS


def row_key(course_id: str, user_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": roster_partition(course_id, roster_shard(user_id))}, SORT_KEY: {"S": user_id}}


def row_values(row: LearnerRow) -> dict[str, Any]:
    """A row's attributes; ``b`` and ``wk`` are always written (empty when there is nothing to say) so that one
    expression stores every row."""
    totals = row.totals
    numbers = (totals.sessions, totals.modules, totals.weighted_score, totals.score_sum, totals.time_ms, totals.points)
    return {
        **{name: {"N": str(value)} for name, value in zip(ROW_SUMS, numbers, strict=True)},
        ROW_TYPE_SUMS: {"S": type_sums_text(totals.by_type)},
        ROW_WEEKS: {"S": weeks_text(row.weeks)},
        REVISION: {"N": str(row.revision)},
    }


def decode_row(item: dict[str, Any]) -> LearnerRow:
    by_type = type_sums_of(item[ROW_TYPE_SUMS]["S"]) if ROW_TYPE_SUMS in item else ()
    # Rows stored before points existed have no "p": their sessions had earned none.
    sessions, modules, weighted, score_sum, time_ms, points = (
        int(item[name]["N"]) if name in item else 0 for name in ROW_SUMS
    )
    totals = CourseTotals(sessions, modules, weighted, score_sum, time_ms, by_type, points)
    # Rows stored before the weekly leaderboards have no "wk": they are stored again at their learner's next change.
    weeks = weeks_of(item[ROW_WEEKS]["S"]) if ROW_WEEKS in item else ()
    return LearnerRow(item[SORT_KEY]["S"], totals, int(item[REVISION]["N"]), weeks)
