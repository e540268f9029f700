"""The session item format, in one place: how a session is keyed and stored in DynamoDB.

One table. An item is one session: partition key ``userId``, sort key
``sessionKey = "<courseId>#<sessionId>"``, so one user's sessions in one course
are a single ``Query`` on the key. Attributes: ``modules``, ``score`` (hundredths
of a percent point), ``timeMs``, ``version`` (grows by one per change) and
``writtenAtUs``: when the request that wrote it began, in µs since the epoch
(``service.dynamodb.store`` explains why). Items written before that attribute
existed carry ``updatedAt`` (ms) instead, which nothing reads.
"""

from __future__ import annotations

import time
from typing import Any

from service.domain.model import SessionStats, StoredSession

PARTITION_KEY = "userId"
SORT_KEY = "sessionKey"

# Attribute of each stored value, under the placeholder names the expressions use.
MODULES, SCORE, TIME_MS, VERSION, WRITTEN_AT = "modules", "score", "timeMs", "version", "writtenAtUs"
# What reads project: the key and the values a session is decoded from.
PROJECTION = "#sk, #m, #s, #t, #v"
PROJECTION_NAMES = {"#sk": SORT_KEY, "#m": MODULES, "#s": SCORE, "#t": TIME_MS, "#v": VERSION}


def session_key(course_id: str, session_id: str) -> str:
    return f"{course_id}#{session_id}"


def course_prefix(course_id: str) -> str:
    """The sort-key prefix of every session of one course."""
    return f"{course_id}#"


def item_key(user_id: str, course_id: str, session_id: str) -> dict[str, Any]:
    return {PARTITION_KEY: {"S": user_id}, SORT_KEY: {"S": session_key(course_id, session_id)}}


def stats_values(stats: SessionStats) -> dict[str, Any]:
    """A session's stored values as DynamoDB attribute values, by attribute name."""
    return {
        MODULES: {"N": str(stats.modules)},
        SCORE: {"N": str(stats.score_cents)},
        TIME_MS: {"N": str(stats.time_ms)},
    }


def encode(user_id: str, course_id: str, stored: StoredSession, written_at_us: int | None = None) -> dict[str, Any]:
    """A whole item, attribute for attribute as an upsert leaves it (for bulk loads and tests)."""
    now = time.time_ns() // 1000 if written_at_us is None else written_at_us
    return {
        **item_key(user_id, course_id, stored.stats.session_id),
        **stats_values(stored.stats),
        VERSION: {"N": str(stored.version)},
        WRITTEN_AT: {"N": str(now)},
    }


def decode(item: dict[str, Any]) -> StoredSession:
    stats = SessionStats(
        session_id=item[SORT_KEY]["S"].partition("#")[2],
        modules=int(item[MODULES]["N"]),
        score_cents=int(item[SCORE]["N"]),
        time_ms=int(item[TIME_MS]["N"]),
    )
    return StoredSession(stats, int(item[VERSION]["N"]))
