"""Registered courses, their teachers, and who may read a course's figures.

Admins read every course; a teacher reads only the courses they teach. That
check runs on every ``/admin`` read of a course, and the course's title is part
of its figures, so both answers are remembered in Redis for a minute (one
``GET`` on a hit; a miss reads DynamoDB and remembers the answer only where
nothing is remembered yet). An assignment, a removal or a registration
overwrites the remembered answer after changing the table, so a reader that
loaded the old answer meanwhile cannot put it back. If Redis cannot take the
new answer, the old one may live out its minute; without Redis every check
reads DynamoDB.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from service.domain.errors import CacheUnavailable
from service.domain.identity import Forbidden, Identity
from service.domain.model import Course
from service.domain.ports import AnswerCache, CourseRegistry

log = logging.getLogger(__name__)


def teaching_key(user_id: str, course_id: str) -> str:
    return f"stats:v2:teaches:{user_id}:{course_id}"


def title_key(course_id: str) -> str:
    return f"stats:v2:title:{course_id}"


# Remembered for a course that is not registered: no title.
_UNREGISTERED = ""
_YES, _NO = "1", "0"


class Courses:
    def __init__(self, catalog: CourseRegistry, cache: AnswerCache) -> None:
        self._catalog = catalog
        self._cache = cache

    async def register(self, course_id: str, title: str) -> tuple[bool, Course]:
        registered = await self._catalog.register(course_id, title)
        await self._tell(title_key(course_id), title)
        return registered

    async def title(self, course_id: str) -> str | None:
        """A registered course's title, None if it is not registered."""

        async def load() -> str:
            course = await self._catalog.course(course_id)
            return _UNREGISTERED if course is None else course.title

        title = await self._recall(title_key(course_id), load)
        return title if title != _UNREGISTERED else None

    async def page(self, identity: Identity, limit: int, after: str | None) -> tuple[list[Course], str | None]:
        """All courses for an admin, a teacher's own for a teacher."""
        teacher = None if "admin" in identity.roles else identity.user_id
        return await self._catalog.page(limit, after, teacher)

    async def assign(self, course_id: str, user_id: str, *, teaches: bool) -> None:
        await self._catalog.assign(course_id, user_id, teaches=teaches)
        await self._tell(teaching_key(user_id, course_id), _YES if teaches else _NO)

    async def _tell(self, key: str, answer: str) -> None:
        """After a change of the table: the new answer, over whatever was remembered."""
        try:
            await self._cache.remember(key, answer, replace=True)
        except CacheUnavailable as exc:
            log.warning("an answer remembered before a change may last its minute (%s): %s", key, exc)

    async def _recall(self, key: str, load: Callable[[], Awaitable[str]]) -> str:
        try:
            remembered = await self._cache.recall(key)
        except CacheUnavailable:
            return await load()
        if remembered is not None:
            return remembered
        answer = await load()
        # Answered from DynamoDB either way; if Redis failed, the next read asks again.
        with contextlib.suppress(CacheUnavailable):
            await self._cache.remember(key, answer, replace=False)
        return answer

    async def check_reader(self, identity: Identity, course_id: str) -> None:
        """``Forbidden`` unless the caller is an admin or teaches the course."""
        if "admin" in identity.roles or await self._teaches(identity.user_id, course_id):
            return
        raise Forbidden("teachers read only the courses they teach")

    async def _teaches(self, user_id: str, course_id: str) -> bool:
        async def load() -> str:
            return _YES if await self._catalog.teaches(user_id, course_id) else _NO

        return await self._recall(teaching_key(user_id, course_id), load) == _YES
