"""Who may read a course's figures: the teacher check and its remembered answer (fakeredis)."""

from __future__ import annotations

from typing import Any

import pytest

from service.domain.courses import Courses, teaching_key
from service.domain.errors import CacheUnavailable
from service.domain.identity import Forbidden, Identity
from service.domain.model import Course
from tests.unit.test_cache_lua import make_cache

TEACHER = Identity("teacher-1", frozenset({"teacher"}))
ADMIN = Identity("admin-1", frozenset({"admin"}))


class MemoryCatalog:
    def __init__(self) -> None:
        self.courses: dict[str, Course] = {}
        self.assigned: set[tuple[str, str]] = set()
        self.lookups = 0

    async def register(self, course_id: str, title: str) -> tuple[bool, Course]:
        old = self.courses.get(course_id)
        self.courses[course_id] = Course(course_id, title, old.teachers if old else ())
        return old is None, self.courses[course_id]

    async def course(self, course_id: str) -> Course | None:
        return self.courses.get(course_id)

    async def assign(self, course_id: str, user_id: str, *, teaches: bool) -> None:
        (self.assigned.add if teaches else self.assigned.discard)((user_id, course_id))

    async def teaches(self, user_id: str, course_id: str) -> bool:
        self.lookups += 1
        return (user_id, course_id) in self.assigned

    async def page(self, limit: int, after: str | None, teacher: str | None = None) -> tuple[list[Course], str | None]:
        ids = sorted(c for c in self.courses if teacher is None or (teacher, c) in self.assigned)
        return [self.courses[c] for c in ids if after is None or c > after][:limit], None


class DownCache:
    """Redis unreachable."""

    async def recall(self, key: str) -> str | None:
        raise CacheUnavailable("down")

    async def remember(self, key: str, value: str, *, replace: bool) -> None:
        raise CacheUnavailable("down")


async def test_a_teacher_reads_a_taught_course_from_one_remembered_answer(redis: Any) -> None:
    catalog = MemoryCatalog()
    courses = Courses(catalog, make_cache(redis))
    await courses.register("c1", "Algebra")
    await courses.assign("c1", TEACHER.user_id, teaches=True)
    for _ in range(3):
        await courses.check_reader(TEACHER, "c1")
    assert catalog.lookups == 0  # the assignment left its answer in Redis
    await redis.delete(teaching_key(TEACHER.user_id, "c1"))
    for _ in range(3):
        await courses.check_reader(TEACHER, "c1")
    assert catalog.lookups == 1
    with pytest.raises(Forbidden):
        await courses.check_reader(TEACHER, "c2")
    await courses.check_reader(ADMIN, "c2")


async def test_a_removal_overrules_an_answer_a_reader_remembers_late(redis: Any) -> None:
    catalog = MemoryCatalog()
    cache = make_cache(redis)
    courses = Courses(catalog, cache)
    await courses.assign("c1", TEACHER.user_id, teaches=True)
    await courses.assign("c1", TEACHER.user_id, teaches=False)
    # A reader that loaded "teaches" before the removal remembers it only where nothing is.
    await cache.remember(teaching_key(TEACHER.user_id, "c1"), "1", replace=False)
    with pytest.raises(Forbidden):
        await courses.check_reader(TEACHER, "c1")


async def test_without_redis_every_check_reads_the_assignment() -> None:
    catalog = MemoryCatalog()
    courses = Courses(catalog, DownCache())
    await courses.assign("c1", TEACHER.user_id, teaches=True)  # the table changes; Redis is told nothing
    await courses.check_reader(TEACHER, "c1")
    await courses.check_reader(TEACHER, "c1")
    assert catalog.lookups == 2
    with pytest.raises(Forbidden):
        await courses.check_reader(TEACHER, "c2")


async def test_a_teacher_pages_their_courses_and_an_admin_all(redis: Any) -> None:
    catalog = MemoryCatalog()
    courses = Courses(catalog, make_cache(redis))
    for course_id in ("c1", "c2", "c3"):
        await courses.register(course_id, course_id.upper())
    await courses.assign("c2", TEACHER.user_id, teaches=True)
    assert [c.course_id for c in (await courses.page(TEACHER, 10, None))[0]] == ["c2"]
    assert [c.course_id for c in (await courses.page(ADMIN, 10, None))[0]] == ["c1", "c2", "c3"]
    assert [c.title for c in (await courses.page(ADMIN, 10, None))[0]] == ["C1", "C2", "C3"]


async def test_a_title_is_remembered_and_a_registration_or_rename_tells_it(redis: Any) -> None:
    catalog = MemoryCatalog()
    courses = Courses(catalog, make_cache(redis))
    assert await courses.title("c1") is None  # not registered: remembered as such
    await courses.register("c1", "Algebra")
    assert await courses.title("c1") == "Algebra"
    catalog.courses["c1"] = Course("c1", "Changed behind the service")
    assert await courses.title("c1") == "Algebra"  # remembered for its minute
    await courses.register("c1", "Algebra II")
    assert await courses.title("c1") == "Algebra II"
    assert await Courses(catalog, DownCache()).title("c1") == "Algebra II"
