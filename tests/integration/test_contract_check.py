"""The check every integration test's replies go through (``Api.call``) can fail: a checker
that accepts anything would make every suite that relies on it vacuous."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from multidict import CIMultiDict

from service import keys
from tests.integration.support import Api, Contract, ContractViolation, Reply, new_id

JSON = "application/json; charset=utf-8"


def reply(status: int, body: Any, content_type: str = JSON) -> Reply:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return Reply(status, CIMultiDict({"Content-Type": content_type}), raw)


def envelope(code: str = "not_found") -> dict[str, Any]:
    return {"error": {"code": code, "message": "No such route."}}


def session_body() -> dict[str, Any]:
    return {
        "sessionId": new_id(),
        "totalModulesStudied": 3,
        "averageScore": 87.5,
        "timeStudied": 1000,
        "completedAt": "2026-12-01T10:00:00.000Z",
        "points": 26,
    }


@pytest.fixture
async def contract(app_client: TestClient[Any, Any]) -> Contract:
    return await Api(app_client).contract()


def test_documented_replies_pass(contract: Contract) -> None:
    course = new_id()
    contract.check("POST", f"/courses/{course}", reply(201, session_body()))
    contract.check("GET", f"/courses/{course}/sessions/{new_id()}", reply(200, session_body()))
    contract.check("GET", f"/courses/{course}", reply(404, envelope()))
    contract.check("GET", "/health?verbose=1", reply(200, {"status": "ok"}))
    contract.check("DELETE", f"/courses/{course}", reply(405, envelope("method_not_allowed")))
    contract.check("GET", "/nope", reply(404, envelope()))
    contract.check("GET", "/metrics", reply(200, b"stats_up 1\n", "text/plain"))


@pytest.mark.parametrize(
    ("method", "path", "wrong", "complaint"),
    [
        pytest.param(
            "GET",
            "/courses/{id}",
            reply(200, {"totalModulesStudied": 1, "averageScore": 1.0, "timeStudied": 1, "points": 0}),
            "'sessionsCount' is a required property",
            id="missing-required-field",
        ),
        pytest.param(
            "GET",
            "/courses/{id}/sessions/{id}",
            reply(200, {**session_body(), "userId": new_id()}),
            "Additional properties are not allowed",
            id="undocumented-field",
        ),
        pytest.param(
            "POST",
            "/courses/{id}",
            reply(201, {**session_body(), "sessionId": "not-a-uuid"}),
            "at sessionId: 'not-a-uuid' is not a 'uuid'",
            id="format",
        ),
        pytest.param(
            "POST",
            "/courses/{id}",
            reply(201, {**session_body(), "totalModulesStudied": "3"}),
            "at totalModulesStudied: '3' is not of type 'integer'",
            id="type",
        ),
        pytest.param(
            "GET", "/courses/{id}", reply(201, session_body()), "status 201 is not documented", id="undocumented-status"
        ),
        pytest.param("GET", "/courses/{id}", reply(500, envelope("internal_error")), "status 500", id="bare-500"),
        pytest.param("GET", "/version", reply(200, b"1.0.0", "text/plain"), "Content-Type 'text/plain'", id="media"),
        pytest.param("GET", "/health", reply(200, b"{", JSON), "the body is not JSON", id="not-json"),
        pytest.param("GET", "/courses/{id}", reply(404, {"detail": "nope"}), "'error' is a required", id="envelope"),
        pytest.param("GET", "/nope", reply(200, {"status": "ok"}), "must be 404", id="unknown-route-served"),
        pytest.param("DELETE", "/courses/{id}", reply(404, envelope()), "must be 405", id="unknown-method-not-405"),
        pytest.param(
            "GET",
            "/nope",
            reply(404, {"error": {"code": 404, "message": "x"}}),
            "at error/code",
            id="unknown-route-envelope",
        ),
    ],
)
def test_a_reply_the_document_does_not_allow_fails(
    contract: Contract, method: str, path: str, wrong: Reply, complaint: str
) -> None:
    path = path.replace("{id}", new_id())
    with pytest.raises(ContractViolation, match="does not allow") as raised:
        contract.check(method, path, wrong)
    assert complaint in str(raised.value)
    assert f"{method} {path} answered {wrong.status}" in str(raised.value)


def test_an_expected_undocumented_status_must_still_be_the_envelope(contract: Contract) -> None:
    path = f"/courses/{new_id()}"
    contract.check("GET", path, reply(500, envelope("internal_error")), undocumented=(500,))
    with pytest.raises(ContractViolation, match="the error envelope"):
        contract.check("GET", path, reply(500, b"Internal Server Error", "text/plain"), undocumented=(500,))


def test_nullable_is_understood() -> None:
    spec = {
        "openapi": "3.0.3",
        "paths": {
            "/things/{id}": {
                "get": {
                    "responses": {
                        "200": {"$ref": "#/components/responses/Thing"},
                        "204": {"description": "Nothing."},
                    }
                }
            }
        },
        "components": {
            "responses": {
                "Thing": {
                    "description": "A thing.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Thing"}}},
                }
            },
            "schemas": {
                "Thing": {
                    "type": "object",
                    "properties": {"name": {"type": "string", "nullable": True}},
                    "required": ["name"],
                },
                "ErrorResponse": {"type": "object", "required": ["error"]},
            },
        },
    }
    contract = Contract(spec)
    contract.check("GET", "/things/1", reply(200, {"name": None}))
    contract.check("GET", "/things/1", Reply(204, CIMultiDict(), b""))
    with pytest.raises(ContractViolation, match="is not of type 'string', 'null'"):
        contract.check("GET", "/things/1", reply(200, {"name": 1}))
    with pytest.raises(ContractViolation, match="documents no body"):
        contract.check("GET", "/things/1", reply(204, {"name": None}))


async def test_api_call_fails_on_a_server_that_breaks_the_contract(
    app_client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def without_sessions_count(user: str, course: str) -> SimpleNamespace:
        # The response schema dumps what it finds, so a value lacking a field serves a body lacking it.
        return SimpleNamespace(modules=1, average_score_cents=100, time_ms=5, points=0)

    monkeypatch.setattr(app_client.app[keys.STATS], "course", without_sessions_count)
    with pytest.raises(ContractViolation, match="'sessionsCount' is a required property"):
        await Api(app_client).course(new_id(), new_id())
