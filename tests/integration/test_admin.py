"""SPEC §6 beyond one learner: deleting a session, the teacher's and admin's views of a
learner and of a whole course, and erasure; every refusal in the envelope."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pytest_aiohttp import AiohttpClient

from localmode import idp
from localmode.servers import MotoServer
from service.app import create_app
from service.domain.model import CourseTotals, SessionStats, StoredSession
from service.dynamodb import codec
from service.dynamodb.client import dynamodb
from service.dynamodb.store import SessionStore
from service.dynamodb.table import ensure_table
from service.http.schemas import COURSE_STATS
from service.settings import Settings
from tests.faults.support import until
from tests.integration.support import TABLE, Api, Backends, new_id
from tests.integration.test_accounts import admin_token, assert_error, bearer, log_in, new_email, register
from tests.integration.test_session_list import every_page

ADMIN: dict[str, Any] = {"cognito:groups": ["admin"]}


def body(session: str, modules: int, score: float = 50, time_ms: int = 1000) -> dict[str, Any]:
    return {"sessionId": session, "totalModulesStudied": modules, "averageScore": score, "timeStudied": time_ms}


@dataclasses.dataclass
class Staff:
    admin: dict[str, str]
    teacher: dict[str, str]
    learner: dict[str, str]
    learner_id: str
    teacher_id: str

    async def teach(self, api: Api, course: str) -> None:
        """Register the course and make the teacher teach it."""
        registered = await api.call("PUT", f"/admin/courses/{course}", json={"title": "A course"}, headers=self.admin)
        assert registered.status in (200, 201), registered.body
        assigned = await api.call("PUT", f"/admin/courses/{course}/teachers/{self.teacher_id}", headers=self.admin)
        assert assigned.status == 204, assigned.body


async def staff_of(api: Api) -> Staff:
    admin = bearer(await admin_token(api))
    teacher_email, learner_email = new_email(), new_email()
    teacher_id = await register(api, teacher_email)
    learner_id = await register(api, learner_email)
    reply = await api.call("PUT", f"/admin/users/{teacher_id}/roles", json={"roles": ["teacher"]}, headers=admin)
    assert reply.status == 200, reply.body
    teacher = bearer((await log_in(api, teacher_email))["accessToken"])
    learner = bearer((await log_in(api, learner_email))["accessToken"])
    return Staff(admin, teacher, learner, learner_id, teacher_id)


@pytest.fixture
async def staff(api: Api) -> Staff:
    return await staff_of(api)


async def test_a_deleted_session_is_gone_from_every_route_and_can_be_posted_again(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    kept, doomed = sorted([new_id(), new_id()])
    for session, modules in ((kept, 2), (doomed, 5)):
        assert (await api.post(user, course, body(session, modules))).status == 201
    assert (await api.course(user, course)).json["sessionsCount"] == 2  # cached before the delete
    path = f"/courses/{course}/sessions/{doomed}"
    reply = await api.call("DELETE", path, user=user)
    assert reply.status == 204
    assert reply.body == b""
    assert_error(await api.session(user, course, doomed), 404, "not_found")
    assert await every_page(api, user, course, 10) == [[kept]]
    assert (await api.course(user, course)).json == COURSE_STATS.dump(await backends.truth(user, course))
    assert (await api.course(user, course)).json["sessionsCount"] == 1
    assert_error(await api.call("DELETE", path, user=user), 404, "not_found")
    # Posting it again creates it anew, at a version above the tombstone's.
    assert (await api.post(user, course, body(doomed, 7))).status == 201
    assert (await api.course(user, course)).json["totalModulesStudied"] == 9
    await backends.redis.flushdb()
    assert (await api.course(user, course)).json["totalModulesStudied"] == 9


async def test_deleting_the_last_session_makes_the_course_a_404(api: Api) -> None:
    user, course, session = new_id(), new_id(), new_id()
    await api.post(user, course, body(session, 1))
    assert (await api.call("DELETE", f"/courses/{course}/sessions/{session}", user=user)).status == 204
    assert_error(await api.course(user, course), 404, "not_found")


async def test_a_learner_cannot_delete_another_learners_session(api: Api, backends: Backends) -> None:
    owner, intruder, course, session = new_id(), new_id(), new_id(), new_id()
    await api.post(owner, course, body(session, 3))
    before = await backends.items(owner)
    assert_error(await api.call("DELETE", f"/courses/{course}/sessions/{session}", user=intruder), 404, "not_found")
    assert await backends.items(owner) == before
    assert await backends.items(intruder) == []


@pytest.mark.parametrize("path", ["/courses/not-a-uuid/sessions/{id}", "/courses/{id}/sessions/not-a-uuid"])
async def test_a_delete_with_a_malformed_id_is_a_400(api: Api, path: str) -> None:
    assert_error(await api.call("DELETE", path.format(id=new_id()), user=new_id()), 400, "validation_error")


async def test_teachers_and_admins_see_a_learner_as_the_learner_does(api: Api, staff: Staff) -> None:
    user, course, session = staff.learner_id, new_id(), new_id()
    await staff.teach(api, course)
    assert (await api.call("POST", f"/courses/{course}", json=body(session, 4), headers=staff.learner)).status == 201
    own = [
        await api.call("GET", f"/courses/{course}{suffix}", headers=staff.learner)
        for suffix in ("", "/sessions", f"/sessions/{session}")
    ]
    for caller in (staff.teacher, staff.admin):
        for suffix, mine in zip(("", "/sessions", f"/sessions/{session}"), own, strict=True):
            reply = await api.call("GET", f"/admin/users/{user}/courses/{course}{suffix}", headers=caller)
            assert (reply.status, reply.json) == (200, mine.json)
    missing = await api.call("GET", f"/admin/users/{user}/courses/{course}/sessions/{new_id()}", headers=staff.teacher)
    assert_error(missing, 404, "not_found")


@pytest.mark.parametrize(
    "route",
    [
        "GET /admin/courses/{course}",
        "GET /admin/courses/{course}/learners",
        "GET /admin/users/{user}/courses/{course}",
        "GET /admin/users/{user}/courses/{course}/sessions",
        "GET /admin/users/{user}/courses/{course}/sessions/{session}",
        "DELETE /admin/users/{user}",
        "GET /admin/users/{user}/erasure",
    ],
)
async def test_a_learner_or_a_trusted_header_never_reaches_an_admin_route(
    api: Api, staff: Staff, backends: Backends, route: str
) -> None:
    course, session = new_id(), new_id()
    await api.call("POST", f"/courses/{course}", json=body(session, 4), headers=staff.learner)
    method, path = route.split(" ")
    path = path.format(course=course, user=staff.learner_id, session=session)
    assert_error(await api.call(method, path, headers=staff.learner), 403, "forbidden")
    # A trusted X-User-Id (header trust is on in this profile) is no token.
    assert_error(await api.call(method, path, user=staff.learner_id), 401, "unauthenticated")
    assert len(await backends.items(staff.learner_id)) == 1


async def test_a_teacher_cannot_erase(api: Api, staff: Staff, backends: Backends) -> None:
    course = new_id()
    await api.call("POST", f"/courses/{course}", json=body(new_id(), 4), headers=staff.learner)
    assert_error(await api.call("DELETE", f"/admin/users/{staff.learner_id}", headers=staff.teacher), 403, "forbidden")
    assert len(await backends.items(staff.learner_id)) == 1


async def course_figures(api: Api, staff: Staff, course: str) -> tuple[int, Any]:
    """The teacher's answer, without the registered course's title."""
    reply = await api.call("GET", f"/admin/courses/{course}", headers=staff.teacher)
    if reply.status != 200:
        return reply.status, None
    figures = dict(reply.json)
    assert figures.pop("title") == "A course"
    return 200, figures


async def learner_pages(api: Api, headers: dict[str, str], course: str, limit: int) -> list[list[dict[str, Any]]]:
    pages: list[list[dict[str, Any]]] = []
    query = f"limit={limit}"
    while True:
        reply = await api.call("GET", f"/admin/courses/{course}/learners?{query}", headers=headers)
        assert reply.status == 200, reply.body
        pages.append(reply.json["items"])
        if "nextCursor" not in reply.json:
            return pages
        query = f"limit={limit}&cursor={reply.json['nextCursor']}"


def expected_figures(truths: dict[str, CourseTotals]) -> dict[str, Any]:
    total = sum((truth for truth in truths.values() if truth.sessions), CourseTotals())
    return {**COURSE_STATS.dump(total), "learnersCount": sum(1 for truth in truths.values() if truth.sessions)}


async def truths_of(backends: Backends, users: list[str], course: str) -> dict[str, CourseTotals]:
    return {user: await backends.truth(user, course) for user in users}


async def test_course_figures_and_learners_follow_writes_deletes_and_erasure(
    capturing: Api, backends: Backends
) -> None:
    api = capturing
    staff = await staff_of(api)
    course, users = new_id(), [new_id() for _ in range(5)]
    await staff.teach(api, course)
    assert await course_figures(api, staff, course) == (404, None)
    sessions: dict[str, list[str]] = {user: [] for user in users}
    for index, user in enumerate(users):
        for round_ in range(index + 1):
            session = new_id()
            sessions[user].append(session)
            assert (await api.post(user, course, body(session, round_ + 1, 40 + index * 10, 100 * index))).status == 201

    async def settled() -> bool:
        truths = await truths_of(backends, users, course)
        return await course_figures(api, staff, course) == (200, expected_figures(truths))

    await until(settled, within=10)
    pages = await learner_pages(api, staff.admin, course, 2)
    assert [len(page) for page in pages] == [2, 2, 1]
    truths = await truths_of(backends, users, course)
    listed = {item.pop("userId"): item for page in pages for item in page}
    assert listed == {user: COURSE_STATS.dump(truth) for user, truth in truths.items()}

    # A delete, a re-post with new values, a learner's last session gone; Redis flushed meanwhile.
    await api.call("DELETE", f"/courses/{course}/sessions/{sessions[users[4]][0]}", user=users[4])
    await api.post(users[3], course, body(sessions[users[3]][0], 9, 99, 5))
    await api.call("DELETE", f"/courses/{course}/sessions/{sessions[users[0]][0]}", user=users[0])
    await backends.redis.flushdb()
    await until(settled, within=10)
    listed_users = {item["userId"] for page in await learner_pages(api, staff.teacher, course, 100) for item in page}
    assert listed_users == set(users[1:])

    erased = await api.call("DELETE", f"/admin/users/{users[2]}", headers=staff.admin)
    assert erased.status == 204
    # Nothing of theirs is served, at once and once change capture has seen the removals.
    for _ in range(2):
        assert_error(await api.course(users[2], course), 404, "not_found")
        assert await every_page(api, users[2], course, 10) == [[]]
        assert (await course_figures(api, staff, course))[1]["learnersCount"] == 3
        listed_users = {
            item["userId"] for page in await learner_pages(api, staff.teacher, course, 100) for item in page
        }
        assert listed_users == {users[1], users[3], users[4]}
        await asyncio.sleep(0.5)
    assert await backends.items(users[2]) == []
    await until(settled, within=10)
    assert (await api.call("DELETE", f"/admin/users/{users[2]}", headers=staff.admin)).status == 204


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "cursor=bm90LWEtY3Vyc29y", "cursor="])
async def test_a_bad_learners_page_is_a_400(api: Api, staff: Staff, query: str) -> None:
    reply = await api.call("GET", f"/admin/courses/{new_id()}/learners?{query}", headers=staff.admin)
    assert_error(reply, 400, "validation_error")


async def test_a_learners_cursor_of_another_course_or_list_is_refused(api: Api, staff: Staff) -> None:
    user, course = new_id(), new_id()
    for _ in range(3):
        await api.post(user, course, body(new_id(), 1))
    sessions = await api.call("GET", f"/courses/{course}/sessions?limit=1", user=user)
    cursor = sessions.json["nextCursor"]
    reply = await api.call("GET", f"/admin/courses/{course}/learners?cursor={cursor}", headers=staff.admin)
    assert_error(reply, 400, "validation_error")


async def test_an_unknown_course_has_no_learners(api: Api, staff: Staff) -> None:
    reply = await api.call("GET", f"/admin/courses/{new_id()}/learners", headers=staff.admin)
    assert (reply.status, reply.json) == (200, {"items": []})


ERASURE_SESSIONS = 10_000


@pytest.mark.slow
async def test_an_erasure_of_ten_thousand_sessions_answers_within_the_deadline_and_says_when_it_is_done(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    backends: Backends,
    record_property: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A DynamoDB of its own: the shared one's stream readers would compete for moto's one thread.
    # moto answers a Query page of 6 600 keys in about 5 s: calls get the time they need here.
    with MotoServer() as moto:
        patient = dataclasses.replace(settings, dynamodb_endpoint=moto.url, dynamodb_timeout_seconds=30.0)
        async with dynamodb(patient) as clients:
            await ensure_table(clients.client, TABLE)
            own = Backends(SessionStore(clients, TABLE), clients.client, backends.redis)
            await erase_ten_thousand(
                Api(await aiohttp_client(create_app(patient))), settings, own, record_property, capsys
            )


async def erase_ten_thousand(
    api: Api, settings: Settings, backends: Backends, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    user, courses = new_id(), [new_id() for _ in range(4)]
    await load_items(
        backends,
        [
            codec.encode(user, courses[index % 4], StoredSession(SessionStats(new_id(), 1, 5000, 10), 1))
            for index in range(ERASURE_SESSIONS)
        ],
    )
    assert await backends.store.holds_items(user)
    token = idp.access_token(settings.cognito_user_pool_id or "", settings.auth_client_id or "", new_id(), **ADMIN)
    admin = bearer(token)
    started = time.monotonic()
    reply = await api.call("DELETE", f"/admin/users/{user}", headers=admin)
    answered = time.monotonic() - started
    assert reply.status in (202, 204), reply.body
    assert answered < settings.request_deadline_seconds
    if reply.status == 202:
        assert reply.json == {"status": "in_progress"}
        location = reply.headers["Location"]
        assert location == f"/admin/users/{user}/erasure"

        async def done() -> bool:
            status = await api.call("GET", location, headers=admin)
            return bool(status.json == {"status": "done"})

        await until(done, within=120, interval=0.5)
    finished = time.monotonic() - started
    line = (
        f"erasure of {ERASURE_SESSIONS} sessions in {len(courses)} courses (moto): "
        f"answered {reply.status} in {answered:.2f}s, done in {finished:.2f}s"
    )
    record_property("erasure", line)
    with capsys.disabled():
        print(f"\n{line}")
    assert await backends.items(user) == []
    for course in courses:
        assert_error(await api.course(user, course), 404, "not_found")
    assert (await api.call("DELETE", f"/admin/users/{user}", headers=admin)).status == 204


async def load_items(backends: Backends, items: list[dict[str, Any]]) -> None:
    """Straight into the table, 25 at a time, as a bulk load would."""

    gate = asyncio.Semaphore(4)  # moto's server takes few connections at once

    async def put(chunk: list[dict[str, Any]]) -> None:
        requests: list[Any] = [{"PutRequest": {"Item": item}} for item in chunk]
        async with gate:
            while requests:
                response = await backends.dynamodb.batch_write_item(RequestItems={TABLE: requests})
                requests = response.get("UnprocessedItems", {}).get(TABLE, [])

    await asyncio.gather(*(put(items[start : start + 25]) for start in range(0, len(items), 25)))


async def test_an_erasure_that_finished_says_so(api: Api, staff: Staff) -> None:
    user = new_id()
    await api.post(user, new_id(), body(new_id(), 1))
    status = await api.call("GET", f"/admin/users/{user}/erasure", headers=staff.admin)
    assert status.json == {"status": "in_progress"}  # their sessions are stored
    assert (await api.call("DELETE", f"/admin/users/{user}", headers=staff.admin)).status == 204
    status = await api.call("GET", f"/admin/users/{user}/erasure", headers=staff.admin)
    assert status.json == {"status": "done"}


async def test_admins_register_and_rename_courses_and_assign_teachers(api: Api, staff: Staff) -> None:
    course = new_id()
    path = f"/admin/courses/{course}"
    created = await api.call("PUT", path, json={"title": "Algebra"}, headers=staff.admin)
    assert (created.status, created.json) == (201, {"courseId": course, "title": "Algebra", "teachers": []})
    teacher = f"{path}/teachers/{staff.teacher_id}"
    assert (await api.call("PUT", teacher, headers=staff.admin)).status == 204
    assert (await api.call("PUT", teacher, headers=staff.admin)).status == 204  # already: the same
    renamed = await api.call("PUT", path, json={"title": "Algebra I"}, headers=staff.admin)
    assert (renamed.status, renamed.json) == (
        200,
        {"courseId": course, "title": "Algebra I", "teachers": [staff.teacher_id]},
    )
    listed = await api.call("GET", "/admin/courses?limit=100", headers=staff.teacher)
    assert listed.json["items"] == [renamed.json]
    everything = [item async for item in every_course(api, staff.admin)]
    assert renamed.json in everything
    assert (await api.call("DELETE", teacher, headers=staff.admin)).status == 204
    assert (await api.call("GET", "/admin/courses", headers=staff.teacher)).json == {"items": []}
    assert (await api.call("PUT", path, json={"title": "Algebra I"}, headers=staff.admin)).json["teachers"] == []


async def every_course(api: Api, headers: dict[str, str]) -> AsyncIterator[dict[str, Any]]:
    query = "limit=2"
    while True:
        reply = await api.call("GET", f"/admin/courses?{query}", headers=headers)
        assert reply.status == 200, reply.body
        for item in reply.json["items"]:
            yield item
        if "nextCursor" not in reply.json:
            return
        query = f"limit=2&cursor={reply.json['nextCursor']}"


async def test_a_teacher_reads_only_the_courses_they_teach(api: Api, staff: Staff) -> None:
    taught, other = new_id(), new_id()
    await staff.teach(api, taught)
    await api.call("PUT", f"/admin/courses/{other}", json={"title": "Not theirs"}, headers=staff.admin)
    for course in (taught, other):
        await api.post(staff.learner_id, course, body(new_id(), 2))
    session = new_id()
    await api.post(staff.learner_id, other, body(session, 1))
    for suffix in ("", "/learners"):
        assert (await api.call("GET", f"/admin/courses/{taught}{suffix}", headers=staff.teacher)).status in (200, 404)
        assert_error(await api.call("GET", f"/admin/courses/{other}{suffix}", headers=staff.teacher), 403, "forbidden")
        assert (await api.call("GET", f"/admin/courses/{other}{suffix}", headers=staff.admin)).status in (200, 404)
    learner = f"/admin/users/{staff.learner_id}/courses/{other}"
    for suffix in ("", "/sessions", f"/sessions/{session}"):
        assert_error(await api.call("GET", f"{learner}{suffix}", headers=staff.teacher), 403, "forbidden")
        assert (await api.call("GET", f"{learner}{suffix}", headers=staff.admin)).status == 200
    # Removed from the course: refused at once, though the answer was remembered.
    remove = f"/admin/courses/{taught}/teachers/{staff.teacher_id}"
    assert (await api.call("DELETE", remove, headers=staff.admin)).status == 204
    assert_error(await api.call("GET", f"/admin/courses/{taught}", headers=staff.teacher), 403, "forbidden")


async def test_the_course_figures_carry_the_title_of_a_registered_course(capturing: Api, backends: Backends) -> None:
    api = capturing
    staff = await staff_of(api)
    course = new_id()
    await api.post(new_id(), course, body(new_id(), 3))

    async def served() -> bool:
        return (await api.call("GET", f"/admin/courses/{course}", headers=staff.admin)).status == 200

    await until(served, within=10)
    assert "title" not in (await api.call("GET", f"/admin/courses/{course}", headers=staff.admin)).json
    await api.call("PUT", f"/admin/courses/{course}", json={"title": "Geometry"}, headers=staff.admin)
    figures = await api.call("GET", f"/admin/courses/{course}", headers=staff.admin)
    assert figures.json["title"] == "Geometry"
    assert figures.json["learnersCount"] == 1
    # Registered but studied by nobody: still a 404.
    empty = new_id()
    await api.call("PUT", f"/admin/courses/{empty}", json={"title": "Empty"}, headers=staff.admin)
    assert_error(await api.call("GET", f"/admin/courses/{empty}", headers=staff.admin), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "suffix", "payload"),
    [("PUT", "", {"title": "Mine now"}), ("PUT", "/teachers/{user}", None), ("DELETE", "/teachers/{user}", None)],
)
async def test_only_admins_change_courses_and_teachers(
    api: Api, staff: Staff, method: str, suffix: str, payload: dict[str, str] | None
) -> None:
    course = new_id()
    await staff.teach(api, course)
    path = f"/admin/courses/{course}{suffix.format(user=staff.teacher_id)}"
    for caller in (staff.teacher, staff.learner):
        assert_error(await api.call(method, path, json=payload, headers=caller), 403, "forbidden")
    listed = await api.call("GET", "/admin/courses?limit=100", headers=staff.teacher)
    assert listed.json["items"] == [{"courseId": course, "title": "A course", "teachers": [staff.teacher_id]}]
    assert_error(await api.call("GET", "/admin/courses", headers=staff.learner), 403, "forbidden")


async def test_a_teacher_needs_the_role_and_the_course_must_be_registered(api: Api, staff: Staff) -> None:
    course = new_id()
    unregistered = await api.call("PUT", f"/admin/courses/{course}/teachers/{staff.teacher_id}", headers=staff.admin)
    assert_error(unregistered, 404, "not_found")
    await api.call("PUT", f"/admin/courses/{course}", json={"title": "Chemistry"}, headers=staff.admin)
    role_less = await api.call("PUT", f"/admin/courses/{course}/teachers/{staff.learner_id}", headers=staff.admin)
    assert "teacher role" in assert_error(role_less, 400, "validation_error")["message"]
    listed = await api.call("PUT", f"/admin/courses/{course}", json={"title": "Chemistry"}, headers=staff.admin)
    assert listed.json["teachers"] == []


@pytest.mark.parametrize("payload", [{}, {"title": ""}, {"title": "x" * 201}, {"title": 5}, {"title": "A", "extra": 1}])
async def test_a_bad_course_body_is_a_400_and_registers_nothing(
    api: Api, staff: Staff, payload: dict[str, Any]
) -> None:
    course = new_id()
    reply = await api.call("PUT", f"/admin/courses/{course}", json=payload, headers=staff.admin)
    assert_error(reply, 400, "validation_error")
    listed = [item["courseId"] async for item in every_course(api, staff.admin)]
    assert course not in listed


async def test_pages_skip_runs_of_deleted_sessions(api: Api) -> None:
    user, course = new_id(), new_id()
    sessions = sorted(new_id() for _ in range(8))
    for session in sessions:
        await api.post(user, course, body(session, 1))
    kept = [sessions[0], sessions[7]]
    for session in sessions[1:7]:
        assert (await api.call("DELETE", f"/courses/{course}/sessions/{session}", user=user)).status == 204
    assert await every_page(api, user, course, 1) == [[kept[0]], [kept[1]]]
    assert await every_page(api, user, course, 50) == [kept]
