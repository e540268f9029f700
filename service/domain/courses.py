"""Registered courses, their teachers, and who may read a course's figures.

Admins read every course; a teacher reads only the courses they teach. That
check runs on every ``/admin`` read of a course, so its answer is remembered
in Redis for a minute (one ``GET`` on a hit; a miss reads the assignment from
DynamoDB and remembers it only where nothing is remembered yet). An
assignment or a removal overwrites the remembered answer after changing the
table, so a reader that loaded the old answer meanwhile cannot put it back.
If Redis cannot take the new answer, the old one may live out its minute;
without Redis every check reads DynamoDB.
"""

from __future__ import annotations

import contextlib
import logging

from service.domain.errors import CacheUnavailable
from service.domain.identity import Forbidden, Identity
from service.domain.model import Course
from service.domain.ports import CourseRegistry, FlagCache

log = logging.getLogger(__name__)


def teaching_key(user_id: str, course_id: str) -> str:
    return f"stats:v2:teaches:{user_id}:{course_id}"


class Courses:
    def __init__(self, catalog: CourseRegistry, cache: FlagCache) -> None:
        self._catalog = catalog
        self._cache = cache

    async def register(self, course_id: str, title: str) -> tuple[bool, Course]:
        return await self._catalog.register(course_id, title)

    async def course(self, course_id: str) -> Course | None:
        return await self._catalog.course(course_id)

    async def page(self, identity: Identity, limit: int, after: str | None) -> tuple[list[Course], str | None]:
        """All courses for an admin, a teacher's own for a teacher."""
        teacher = None if "admin" in identity.roles else identity.user_id
        return await self._catalog.page(limit, after, teacher)

    async def assign(self, course_id: str, user_id: str, *, teaches: bool) -> None:
        await self._catalog.assign(course_id, user_id, teaches=teaches)
        try:
            await self._cache.set_flag(teaching_key(user_id, course_id), teaches, replace=True)
        except CacheUnavailable as exc:
            log.warning("teaching check remembered elsewhere may last its minute: %s", exc)

    async def check_reader(self, identity: Identity, course_id: str) -> None:
        """``Forbidden`` unless the caller is an admin or teaches the course."""
        if "admin" in identity.roles or await self._teaches(identity.user_id, course_id):
            return
        raise Forbidden("teachers read only the courses they teach")

    async def _teaches(self, user_id: str, course_id: str) -> bool:
        key = teaching_key(user_id, course_id)
        try:
            remembered = await self._cache.flag(key)
        except CacheUnavailable:
            return await self._catalog.teaches(user_id, course_id)
        if remembered is not None:
            return remembered
        teaches = await self._catalog.teaches(user_id, course_id)
        # Answered from DynamoDB either way; if Redis failed, the next check asks again.
        with contextlib.suppress(CacheUnavailable):
            await self._cache.set_flag(key, teaches, replace=False)
        return teaches
