"""The HTTP contract of SPEC section 1, against the running service."""

from __future__ import annotations

import re
from typing import Any

from service.http.schemas import ErrorResponse
from tests.integration.support import Api, Backends, Reply, new_id

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def body(modules: int = 3, score: float = 80.0, time_ms: int = 60_000, **extra: Any) -> dict[str, Any]:
    return {"totalModulesStudied": modules, "averageScore": score, "timeStudied": time_ms, **extra}


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    assert ErrorResponse().validate(reply.json) == {}, reply.json
    error: dict[str, Any] = reply.json["error"]
    assert error["code"] == code
    assert error["message"]
    return error


async def test_create_then_read_session(api: Api) -> None:
    user, course, session = new_id(), new_id(), new_id()
    created = await api.post(user, course, body(5, 72.5, 900_000, sessionId=session))
    assert created.status == 201
    # Points: 10 (STATS_SESSION_POINTS) x 5 modules x 72.5 / 100 = 36.25.
    expected = {
        "sessionId": session,
        "totalModulesStudied": 5,
        "averageScore": 72.5,
        "timeStudied": 900_000,
        "points": 36,
    }
    stored = created.json
    completed = stored.pop("completedAt")  # when it was stored: tests/integration/test_completed_at.py
    assert stored == expected
    assert created.headers["Location"] == f"/courses/{course}/sessions/{session}"
    fetched = await api.session(user, course, session)
    assert fetched.status == 200
    assert fetched.json == {**expected, "completedAt": completed}


async def test_session_id_is_generated_when_absent(api: Api) -> None:
    user, course = new_id(), new_id()
    created = await api.post(user, course, body())
    assert created.status == 201
    session = created.json["sessionId"]
    assert UUID4.match(session)
    assert created.headers["Location"] == f"/courses/{course}/sessions/{session}"
    assert (await api.session(user, course, session)).status == 200


async def test_ids_in_any_case_are_stored_lowercase(api: Api, backends: Backends) -> None:
    user, course, session = new_id(), new_id(), new_id()
    created = await api.post(user.upper(), course.upper(), body(sessionId=session.upper()))
    assert created.status == 201
    assert created.json["sessionId"] == session
    assert created.headers["Location"] == f"/courses/{course}/sessions/{session}"
    items = await backends.items(user)
    assert [item["sessionKey"]["S"] for item in items] == [f"{course}#{session}"]
    assert (await api.session(user.upper(), course.upper(), session.upper())).json["sessionId"] == session
    assert (await api.course(user, course.upper())).json["sessionsCount"] == 1


async def test_repost_replaces_and_is_counted_once(api: Api) -> None:
    user, course, session = new_id(), new_id(), new_id()
    assert (await api.post(user, course, body(2, 50, 1000, sessionId=session))).status == 201
    replaced = await api.post(user, course, body(4, 90, 3000, sessionId=session))
    assert replaced.status == 200
    assert replaced.json["totalModulesStudied"] == 4
    aggregate = await api.course(user, course)
    # Points: 10 (STATS_SESSION_POINTS) x 4 modules x 90 / 100, the replaced session's none.
    expected = {"totalModulesStudied": 4, "averageScore": 90.0, "timeStudied": 3000, "sessionsCount": 1, "points": 36}
    assert aggregate.json == expected


async def test_identical_repost_changes_nothing(api: Api, backends: Backends) -> None:
    user, course, session = new_id(), new_id(), new_id()
    first = await api.post(user, course, body(2, 50, 1000, sessionId=session))
    again = await api.post(user, course, body(2, 50.0, 1000, sessionId=session))
    assert (first.status, again.status) == (201, 200)
    assert again.json == first.json
    [item] = await backends.items(user)
    assert item["version"]["N"] == "1"
    assert (await api.course(user, course)).json["timeStudied"] == 1000


async def test_course_aggregate_weights_scores_by_modules(api: Api) -> None:
    user, course = new_id(), new_id()
    for modules, score, time_ms in [(1, 33.33, 100), (2, 66.67, 200), (0, 10, 300)]:
        assert (await api.post(user, course, body(modules, score, time_ms))).status == 201
    aggregate = await api.course(user, course)
    assert aggregate.status == 200
    # (33.33*1 + 66.67*2) / 3 = 55.5566..., rounded to 2 places; the 0-module session weighs nothing.
    # Points: 10 x 1 x 33.33 / 100 = 3.333 -> 3, 10 x 2 x 66.67 / 100 = 13.334 -> 13, and 0.
    expected = {"totalModulesStudied": 3, "averageScore": 55.56, "timeStudied": 600, "sessionsCount": 3, "points": 16}
    assert aggregate.json == expected


async def test_course_aggregate_without_modules_is_plain_mean(api: Api) -> None:
    user, course = new_id(), new_id()
    for score in (40, 45.55):
        await api.post(user, course, body(0, score, 10))
    # (40 + 45.55) / 2 = 42.775, halves round up.
    assert (await api.course(user, course)).json["averageScore"] == 42.78


async def test_score_is_kept_to_two_decimals(api: Api) -> None:
    user, course = new_id(), new_id()
    created = await api.post(user, course, body(score=12.345))
    assert created.json["averageScore"] == 12.35
    assert (await api.session(user, course, created.json["sessionId"])).json["averageScore"] == 12.35


async def test_sessions_are_scoped_to_user_and_course(api: Api) -> None:
    user, other_user, course, other_course = new_id(), new_id(), new_id(), new_id()
    session = (await api.post(user, course, body())).json["sessionId"]
    assert_error(await api.session(other_user, course, session), 404, "not_found")
    assert_error(await api.session(user, other_course, session), 404, "not_found")
    assert_error(await api.session(user, course, new_id()), 404, "not_found")
    assert_error(await api.course(other_user, course), 404, "not_found")
    assert_error(await api.course(user, other_course), 404, "not_found")
    assert (await api.course(user, course)).json["sessionsCount"] == 1


async def test_same_session_id_in_two_courses_is_two_sessions(api: Api) -> None:
    user, course_a, course_b, session = new_id(), new_id(), new_id(), new_id()
    assert (await api.post(user, course_a, body(1, 10, 10, sessionId=session))).status == 201
    assert (await api.post(user, course_b, body(2, 20, 20, sessionId=session))).status == 201
    assert (await api.course(user, course_a)).json["totalModulesStudied"] == 1
    assert (await api.course(user, course_b)).json["totalModulesStudied"] == 2


async def test_user_header_is_required_and_validated(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    for headers in ({}, {"X-User-Id": "not-a-uuid"}, {"X-User-Id": ""}, {"X-User-Id": user + "0"}):
        for method, path in [("POST", f"/courses/{course}"), ("GET", f"/courses/{course}")]:
            reply = await api.call(method, path, headers=headers, json=body())
            error = assert_error(reply, 400, "validation_error")
            assert "X-User-Id" in error["fields"]
    # Header names are case-insensitive.
    assert (await api.call("POST", f"/courses/{course}", headers={"x-user-id": user}, json=body())).status == 201
    assert len(await backends.items(user)) == 1


async def test_malformed_path_ids_are_400(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    for method, path in [
        ("POST", "/courses/not-a-uuid"),
        ("GET", "/courses/123"),
        ("GET", f"/courses/{course}/sessions/nope"),
        ("GET", "/courses/nope/sessions/" + new_id()),
    ]:
        assert_error(await api.call(method, path, user=user, json=body()), 400, "validation_error")
    await backends.assert_nothing_stored(user)


async def test_unknown_routes_and_methods(api: Api) -> None:
    user, course = new_id(), new_id()
    assert_error(await api.call("GET", "/nope", user=user), 404, "not_found")
    assert_error(await api.call("GET", f"/courses/{course}/sessions/{new_id()}/more", user=user), 404, "not_found")
    batch_by_get = await api.call("GET", f"/courses/{course}/sessions/batch", user=user)
    assert_error(batch_by_get, 405, "method_not_allowed")
    assert batch_by_get.headers["Allow"] == "POST"
    not_allowed = await api.call("DELETE", f"/courses/{course}", user=user)
    assert_error(not_allowed, 405, "method_not_allowed")
    assert "POST" in not_allowed.headers["Allow"]


async def test_non_json_content_type_is_415(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    payload = '{"totalModulesStudied": 1, "averageScore": 1, "timeStudied": 1}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
        reply = await api.call(
            "POST", f"/courses/{course}", user=user, data=payload, headers={"Content-Type": content_type}
        )
        assert_error(reply, 415, "unsupported_media_type")
    await backends.assert_nothing_stored(user)


async def test_json_with_charset_and_vendor_types_is_accepted(api: Api) -> None:
    course = new_id()
    payload = '{"totalModulesStudied": 1, "averageScore": 1, "timeStudied": 1}'
    for content_type in ("application/json; charset=utf-8", "application/vnd.learning+json"):
        reply = await api.call(
            "POST", f"/courses/{course}", user=new_id(), data=payload, headers={"Content-Type": content_type}
        )
        assert reply.status == 201


async def test_body_over_64_kib_is_413(api: Api, backends: Backends) -> None:
    user, course = new_id(), new_id()
    padding = "x" * (64 * 1024)
    reply = await api.call(
        "POST",
        f"/courses/{course}",
        user=user,
        data=f'{{"totalModulesStudied": 1, "averageScore": 1, "timeStudied": 1, "pad": "{padding}"}}',
        headers={"Content-Type": "application/json"},
    )
    assert_error(reply, 413, "payload_too_large")
    await backends.assert_nothing_stored(user)


async def test_request_id_is_echoed_or_generated(api: Api) -> None:
    echoed = await api.call("GET", "/health", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["X-Request-Id"] == "abc-123"
    generated = await api.call("GET", "/health", headers={"X-Request-Id": "bad id\twith spaces"})
    assert re.fullmatch(r"[0-9a-f]{32}", generated.headers["X-Request-Id"])


async def test_operations_routes(api: Api) -> None:
    health = await api.call("GET", "/health")
    assert (health.status, health.json) == (200, {"status": "ok"})
    ready = await api.call("GET", "/ready")
    assert ready.status == 200
    assert ready.json["checks"] == {"dynamodb": "ok", "redis": "ok"}
    version = await api.call("GET", "/version")
    assert set(version.json) == {"version", "revision"}
    await api.post(new_id(), new_id(), body())
    metrics = await api.call("GET", "/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    text = metrics.body.decode()
    assert 'stats_http_requests_total{method="POST",route="/courses/{courseId}",status="201"}' in text
    assert "stats_http_request_duration_seconds_bucket" in text
    assert "stats_redis_circuit_state 0.0" in text
