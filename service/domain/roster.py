"""Course rosters: every learner's sums in a course, kept exactly for the course-wide views.

Design
------
A roster row holds one learner's sums in one course and a *revision*, a
counter that every store of the row moves on by one.

**Who writes rows.** Change capture (``service.changes``), never the request
path: for each (learner, course) a batch of the table's stream touches, the row
is computed again from the table, optimistically: read the row's revision,
Query the learner's items (strongly consistent), then store the new row (or
delete it, if no item is left) only if the revision is still the one read,
and start again if it is not. A recomputation is idempotent (it reads the
truth, it does not add a difference), so redelivered or retried batches
cannot double count; and the stored row always comes from a Query that began
after the row's previous store, so of two concurrent consumers the later
Query wins, whatever order they finish in. Every change of an item has a
stream record, whose refresh begins after the change: once the consumers are
quiet, each row equals the table. This holds for removals too (erasure, items
removed behind the service), which lower no counter.

**The course-wide aggregate** is a Redis hash with one entry per row, versioned
by its revision and kept by the same scripts as a learner's aggregate
(``service.redis.cache``): after storing a row the consumer applies it there,
and after deleting one (a learner with no item left: erased, or removed behind
the service) it drops the hash; and
a missing or expired hash is rebuilt from the roster's partitions with the
same claim, incarnation and completion protocol. Every argument of the
learner's aggregate carries over with rows in place of sessions: a completed
course hash equals the roster, and the roster equals the table once the
consumer has caught up (in production, within the stream consumer's lag,
alarmed at 30 s).

**Scale.** A course's rows are spread over ``ROSTER_SHARDS`` partitions by a
hash of the learner's id, so a course written 1 000 times a second puts about
63 writes a second on each; nothing Scans; a cached course read is one Redis
round trip, and a rebuild reads the roster's partitions a page at a time (130 to
200 bytes a learner, about 330 with six module types studied: 3 200 to 8 000 RRU
and a few dozen round trips for 100 000 learners), never one call per learner.
"""

from __future__ import annotations

import time

from service.domain.errors import DependencyUnavailable
from service.domain.model import PAST_WEEKS, CourseFigures, LearnerRow, StoredSession, week_of, weekly_points
from service.domain.ports import AggregateStore, SessionRepository

# Recomputations of one row that another consumer may overtake before one is stored.
_ATTEMPTS = 5


def row_of(user_id: str, sessions: list[StoredSession], revision: int, now_ms: int | None = None) -> LearnerRow:
    """A learner's row from their sessions in the course; its weekly points from the oldest week
    a weekly leaderboard may name at ``now_ms`` (default: now) on."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    weeks = weekly_points(sessions, week_of(now_ms) - PAST_WEEKS)
    return LearnerRow(user_id, CourseFigures.of(sessions).totals, revision, weeks)


class Roster:
    def __init__(self, store: SessionRepository, cache: AggregateStore) -> None:
        self._store = store
        self._cache = cache

    async def refresh(self, user_id: str, course_id: str) -> None:
        """Recompute one learner's row of a course from the table, and apply it to the course's aggregate."""
        for _ in range(_ATTEMPTS):
            current = await self._store.row_revision(course_id, user_id)
            sessions: list[StoredSession] = []
            async for page in self._store.course_pages(user_id, course_id):
                sessions.extend(page)
            if not sessions:
                if current is None:
                    # No row to delete; the course's hash is dropped only if it still counts them
                    # (a store that landed as their row was deleted), not once per record of an erasure.
                    if await self._cache.holds_entry(self._cache.course_key(course_id), user_id):
                        await self.forget_course(course_id)
                    return
                if await self._store.delete_row(course_id, user_id, current):
                    await self.forget_course(course_id)
                    return
                continue
            row = row_of(user_id, sessions, (current or 0) + 1)
            if await self._store.put_row(course_id, row, current):
                await self._cache.apply_change(self._cache.course_key(course_id), row)
                return
        # Overtaken every time: the batch is retried.
        raise DependencyUnavailable("dynamodb", "roster/contended")

    async def forget_course(self, course_id: str) -> None:
        """Drop a course's aggregate after a learner left its roster, for a rebuild from the rows.

        Dropping, not taking the one entry out: a rebuild under way may have read the row
        before it was deleted, and only a new incarnation stops it completing with it."""
        await self._cache.forget(self._cache.course_key(course_id))
