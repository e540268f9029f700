"""The OpenAPI document is generated from the schemas that validate requests."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from service import module_types
from service.http.schemas import SESSION_BODY
from tests.integration.support import Api


async def fetch_spec(api: Api) -> dict[str, Any]:
    reply = await api.call("GET", "/api/docs/swagger.json")
    assert reply.status == 200
    spec: dict[str, Any] = reply.json
    return spec


def resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    resolved: dict[str, Any] = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return resolved


async def test_document_is_valid_openapi_3(api: Api) -> None:
    spec = await fetch_spec(api)
    assert spec["openapi"].startswith("3.")
    validate(spec)
    assert set(spec["paths"]) >= {
        "/courses/{courseId}",
        "/courses/{courseId}/sessions/{sessionId}",
    }


async def test_request_body_is_the_validating_schema(api: Api) -> None:
    spec = await fetch_spec(api)
    post = spec["paths"]["/courses/{courseId}"]["post"]
    body = resolve(spec, post["requestBody"]["content"]["application/json"]["schema"])
    assert set(body["properties"]) == set(SESSION_BODY.fields)
    # Nothing is required on its own: the summary fields are, unless module results stand for them.
    assert set(body.get("required", [])) == {name for name, field in SESSION_BODY.fields.items() if field.required}
    assert "Required without modules" in body["properties"]["totalModulesStudied"]["description"]
    result = resolve(spec, body["properties"]["modules"]["items"])
    assert set(result["required"]) == {"moduleType", "score", "timeStudied"}
    # The enum is config/module_types.yaml's types that take results.
    assert result["properties"]["moduleType"]["enum"] == list(module_types.current().active_ids)
    assert (body["properties"]["modules"]["minItems"], body["properties"]["modules"]["maxItems"]) == (1, 200)
    assert body["properties"]["totalModulesStudied"]["maximum"] == 10_000
    assert body["properties"]["averageScore"]["maximum"] == 100
    assert body["properties"]["timeStudied"]["maximum"] == 86_400_000
    assert body["additionalProperties"] is False
    assert set(post["responses"]) >= {"200", "201", "400", "413", "415", "503"}


async def test_every_stats_route_documents_the_bearer_token_or_the_user_header(api: Api) -> None:
    spec = await fetch_spec(api)
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A Cognito access token.",
    }
    operations = [
        spec["paths"]["/courses/{courseId}"]["post"],
        spec["paths"]["/courses/{courseId}"]["get"],
        spec["paths"]["/courses/{courseId}/sessions/{sessionId}"]["get"],
    ]
    for operation in operations:
        # A token, or no requirement where a trusted gateway sets X-User-Id.
        assert operation["security"] == [{"bearerAuth": []}, {}]
        headers = [param for param in operation["parameters"] if param["in"] == "header"]
        assert [(param["name"], param.get("required", False)) for param in headers] == [("X-User-Id", False)]
        assert headers[0]["schema"]["format"] == "uuid"
        assert {"401", "403"} <= set(operation["responses"])


async def test_the_admin_route_needs_a_token_with_its_role_and_the_account_routes_none(api: Api) -> None:
    spec = await fetch_spec(api)
    roles = spec["paths"]["/admin/users/{userId}/roles"]["put"]
    assert roles["security"] == [{"bearerAuth": []}]  # never a trusted header
    assert "admin role" in roles["description"]
    assert [param["in"] for param in roles["parameters"]] == ["path"]
    assert roles["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/RolesBody")
    for route in ("register", "confirm", "login", "refresh"):
        operation = spec["paths"][f"/auth/{route}"]["post"]
        assert "security" not in operation, route
        assert operation["tags"] == ["accounts"]
        assert {"400", "429", "503"} <= set(operation["responses"])
    register = spec["components"]["schemas"]["CredentialsBody"]
    assert set(register["properties"]) == {"email", "password"}  # nobody chooses a role
    assert register["additionalProperties"] is False
    assert register["properties"]["password"]["format"] == "password"


async def test_swagger_ui_is_served(api: Api) -> None:
    reply = await api.call("GET", "/api/docs")
    assert reply.status == 200
    assert b"swagger" in reply.body.lower()


async def test_every_admin_route_documents_its_roles_and_needs_a_token(api: Api) -> None:
    spec = await fetch_spec(api)
    staff = "admin or teacher role. A teacher only for a course they teach."
    expected = {
        ("/admin/courses/{courseId}", "get"): staff,
        ("/admin/courses/{courseId}/learners", "get"): staff,
        ("/admin/users/{userId}/courses/{courseId}", "get"): staff,
        ("/admin/users/{userId}/courses/{courseId}/sessions", "get"): staff,
        ("/admin/users/{userId}/courses/{courseId}/sessions/{sessionId}", "get"): staff,
        ("/admin/users/{userId}", "delete"): "admin role",
        ("/admin/users/{userId}/erasure", "get"): "admin role",
        ("/admin/courses", "get"): "admin or teacher role.",
        ("/admin/courses/{courseId}", "put"): "admin role",
        ("/admin/courses/{courseId}/teachers/{userId}", "put"): "admin role",
        ("/admin/courses/{courseId}/teachers/{userId}", "delete"): "admin role",
    }
    for (path, method), roles in expected.items():
        operation = spec["paths"][path][method]
        assert operation["security"] == [{"bearerAuth": []}], path
        assert roles in operation["description"], path
        assert operation["tags"] == ["admin"]
        assert not [param for param in operation["parameters"] if param["in"] == "header"], path
        assert {"401", "403"} <= set(operation["responses"]), path
    erase = spec["paths"]["/admin/users/{userId}"]["delete"]["responses"]
    assert {"202", "204"} <= set(erase)
    deleting = spec["paths"]["/courses/{courseId}/sessions/{sessionId}"]["delete"]
    assert deleting["security"] == [{"bearerAuth": []}, {}]
    assert {"204", "404"} <= set(deleting["responses"])
