"""What the use cases need from storage, as small Protocols.

``service.dynamodb.store.SessionStore`` and ``service.redis.cache.AggregateCache``
implement them; the unit tests use in-memory ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Literal, Protocol

from service.domain.model import (
    Board,
    Contribution,
    Course,
    CourseFigures,
    LearnerRow,
    SessionStats,
    StoredSession,
    WriteOutcome,
)


class SessionRepository(Protocol):
    """The source of truth for sessions (DynamoDB)."""

    async def upsert(self, user_id: str, course_id: str, stats: SessionStats) -> tuple[WriteOutcome, StoredSession]: ...

    async def get(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None: ...

    def course_pages(self, user_id: str, course_id: str) -> AsyncIterator[list[StoredSession]]: ...

    def learner_pages(self, user_id: str) -> AsyncIterator[list[tuple[str, StoredSession]]]: ...

    async def session_page(
        self, user_id: str, course_id: str, limit: int, after: str | None
    ) -> tuple[list[StoredSession], str | None]: ...

    async def delete(self, user_id: str, course_id: str, session_id: str) -> StoredSession | None: ...

    async def row_revision(self, course_id: str, user_id: str) -> int | None: ...

    async def put_row(self, course_id: str, row: LearnerRow, read: int | None) -> bool: ...

    async def delete_row(self, course_id: str, user_id: str, read: int | Literal["any"] | None = "any") -> bool: ...

    async def roster(self, course_id: str) -> list[LearnerRow]: ...

    async def roster_page(
        self, course_id: str, limit: int, after: tuple[int, str | None]
    ) -> tuple[list[LearnerRow], tuple[int, str | None] | None]: ...

    async def erase(self, user_id: str) -> set[str]: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Hit:
    """The aggregate is cached and complete."""

    figures: CourseFigures


@dataclasses.dataclass(frozen=True, slots=True)
class Claimed:
    """A miss, and this caller now holds the rebuild lock of this incarnation of the aggregate."""

    incarnation: str


@dataclasses.dataclass(frozen=True, slots=True)
class Busy:
    """A miss while another caller rebuilds the aggregate."""


ReadResult = Hit | Claimed | Busy


class AggregateStore(Protocol):
    """Course aggregates kept exactly in a cache (Redis); every failure raises ``CacheUnavailable``."""

    def key(self, user_id: str, course_id: str) -> str: ...

    def course_key(self, course_id: str) -> str: ...

    def points_key(self, user_id: str) -> str: ...

    async def read(self, key: str, *, by_type: bool = False) -> ReadResult: ...

    async def read_board(
        self, course_id: str, week: int | None, window: tuple[int, int], me: str | None, *, claim: bool
    ) -> Board | Claimed | Busy | None: ...

    def mark_stale(self, key: str) -> None: ...

    async def apply_write(self, key: str, entry: Contribution) -> None: ...

    async def apply_change(self, key: str, entry: Contribution) -> None: ...

    async def holds_entry(self, key: str, entry_id: str) -> bool: ...

    async def forget(self, key: str) -> None: ...

    async def complete(self, key: str, incarnation: str, entries: Sequence[Contribution]) -> CourseFigures | None: ...

    async def release(self, key: str) -> None: ...


class CourseRegistry(Protocol):
    """Registered courses and their teachers (DynamoDB)."""

    async def register(self, course_id: str, title: str) -> tuple[bool, Course]: ...

    async def course(self, course_id: str) -> Course | None: ...

    async def assign(self, course_id: str, user_id: str, *, teaches: bool) -> None: ...

    async def teaches(self, user_id: str, course_id: str) -> bool: ...

    async def page(
        self, limit: int, after: str | None, teacher: str | None = None
    ) -> tuple[list[Course], str | None]: ...


class AnswerCache(Protocol):
    """Short answers remembered for a while (Redis); every failure raises ``CacheUnavailable``."""

    async def recall(self, key: str) -> str | None: ...

    async def remember(self, key: str, value: str, *, replace: bool) -> None: ...
