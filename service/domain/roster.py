"""Course rosters: every learner's sums in a course, kept exactly for the course-wide views.

Design
------
A roster row holds one learner's sums in one course and a *revision* that
grows with every change of the learner's items there: the latest write stamp
among them, then the sum of their versions (``max stamp * 10**9 + sum``).
Every change of a session adds one to its version and deletes are tombstones
(``service.dynamodb.store``), so the sum grows with every change; an item's
stamp only grows, so the latest stamp never falls while the items stay. Erasure
removes the items and with them the sum, but a learner who writes again after
it writes with later stamps, so a row computed before the erasure can never
replace one computed after. Hence a row computed from a later state of the
table always has a higher revision.

**Who writes rows.** Change capture (``service.changes``), never the request
path: for each (learner, course) a batch of the table's stream touches, the row
is computed again from a strongly consistent Query of the learner's items in
the course, and stored under the condition that the stored revision is lower.
A recomputation is idempotent (it reads the truth, it does not add a
difference), so redelivered or retried batches cannot double count, and the
condition keeps a recomputation from an earlier state from replacing a later
one, whatever order concurrent consumers finish in. A learner with no item left
(erased, or removed behind the service) has their row deleted.

**The course-wide aggregate** is a Redis hash with one entry per row, versioned
by its revision and kept by the same scripts as a learner's aggregate
(``service.redis.cache``): after storing a row the consumer applies it there
(whether or not the store refused it as older: the version rule decides), and
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
190 bytes a learner: 3 200 to 4 500 RRU and a few dozen round trips for 100 000
learners), never one call per learner.
"""

from __future__ import annotations

from service.domain.model import CourseTotals, LearnerRow, StoredSession
from service.domain.ports import AggregateStore, SessionRepository

# Above any sum of versions a learner's items in a course reach.
_VERSION_SUMS = 10**9


def row_of(user_id: str, sessions: list[StoredSession]) -> LearnerRow:
    totals = sum((stored.totals for stored in sessions), CourseTotals())
    latest = max(stored.written_at_us for stored in sessions)
    return LearnerRow(user_id, totals, latest * _VERSION_SUMS + sum(stored.version for stored in sessions))


class Roster:
    def __init__(self, store: SessionRepository, cache: AggregateStore) -> None:
        self._store = store
        self._cache = cache

    async def refresh(self, user_id: str, course_id: str) -> None:
        """Recompute one learner's row of a course from the table, and apply it to the course's aggregate."""
        sessions: list[StoredSession] = []
        async for page in self._store.course_pages(user_id, course_id):
            sessions.extend(page)
        if not sessions:
            await self.drop(user_id, course_id)
            return
        row = row_of(user_id, sessions)
        await self._store.put_row(course_id, row)
        await self._cache.apply_change(self._cache.course_key(course_id), row)

    async def drop(self, user_id: str, course_id: str) -> None:
        """Take a learner with no item left out of a course's roster and its aggregate."""
        await self._store.delete_row(course_id, user_id)
        await self._cache.remove_entries(self._cache.course_key(course_id), [user_id])
