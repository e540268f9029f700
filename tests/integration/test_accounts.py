"""Accounts over the embedded Cognito-compatible IdP (moto's cognito-idp, over HTTP): register,
confirm, log in, refresh and admin-set roles, each attack refused in the envelope."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from typing import Any

import jwt
import pytest
from pytest_aiohttp import AiohttpClient

from localmode import idp
from localmode.servers import free_port
from service.app import create_app
from service.settings import Settings
from tests.faults.throttle import COGNITO_THROTTLED_BODY, Throttle, ThrottlingEndpoint
from tests.integration.conftest import ROOT
from tests.integration.support import Api, Reply, new_id

PASSWORD = "Learner-Passw0rd!"
BODY = {"totalModulesStudied": 3, "averageScore": 80, "timeStudied": 1000}


def new_email() -> str:
    return f"{new_id()}@example.com"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return claims


def assert_error(reply: Reply, status: int, code: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    error: dict[str, Any] = reply.json["error"]
    assert error["code"] == code
    return error


async def register(api: Api, email: str, password: str = PASSWORD) -> str:
    """A confirmed account (the test profile confirms by code, local mode at once); its user id."""
    reply = await api.call("POST", "/auth/register", json={"email": email, "password": password})
    assert reply.status == 201, reply.body
    confirmed = await api.call("POST", "/auth/confirm", json={"email": email, "code": "123456"})
    assert confirmed.status in (204, 409), confirmed.body
    user_id: str = reply.json["userId"]
    return user_id


async def log_in(api: Api, email: str, password: str = PASSWORD) -> dict[str, Any]:
    reply = await api.call("POST", "/auth/login", json={"email": email, "password": password})
    assert reply.status == 200, reply.body
    tokens: dict[str, Any] = reply.json
    return tokens


async def refreshed_claims(api: Api, refresh_token: str) -> dict[str, Any]:
    reply = await api.call("POST", "/auth/refresh", json={"refreshToken": refresh_token})
    assert reply.status == 200, reply.body
    return claims_of(reply.json["accessToken"])


async def admin_token(api: Api) -> str:
    email, password = idp.admin_credentials()
    token: str = (await log_in(api, email, password))["accessToken"]
    return token


async def test_a_learner_registers_logs_in_and_calls_every_stats_route_with_the_token(api: Api) -> None:
    email = new_email()
    user_id = await register(api, email)
    tokens = await log_in(api, email)
    assert tokens["expiresIn"] > 0
    assert claims_of(tokens["accessToken"])["sub"] == user_id
    assert "cognito:groups" not in claims_of(tokens["accessToken"])  # nobody starts with a role
    course, headers = new_id(), bearer(tokens["accessToken"])
    posted = await api.call("POST", f"/courses/{course}", json=BODY, headers=headers)
    assert posted.status == 201
    session = posted.json["sessionId"]
    assert (await api.call("GET", f"/courses/{course}/sessions/{session}", headers=headers)).json == posted.json
    fresh = await api.call("POST", "/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert fresh.status == 200
    assert fresh.json["expiresIn"] > 0
    assert set(fresh.json) == {"accessToken", "expiresIn"}
    course_stats = await api.call("GET", f"/courses/{course}", headers=bearer(fresh.json["accessToken"]))
    assert course_stats.json["sessionsCount"] == 1
    # The learner reached is the token's: the same stats under their id through the trusted header.
    assert (await api.course(user_id, course)).json == course_stats.json


async def test_an_email_in_another_case_is_the_same_account(api: Api) -> None:
    email = new_email()
    await register(api, email.upper())
    again = await api.call("POST", "/auth/register", json={"email": email, "password": PASSWORD})
    assert_error(again, 409, "conflict")
    assert (await log_in(api, email))["accessToken"]


async def test_a_wrong_password_and_an_unknown_email_get_the_same_401(api: Api) -> None:
    email = new_email()
    await register(api, email)
    wrong = await api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD + "x"})
    unknown = await api.call("POST", "/auth/login", json={"email": new_email(), "password": PASSWORD})
    assert_error(wrong, 401, "unauthenticated")
    assert (wrong.status, wrong.body) == (unknown.status, unknown.body)
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"]


@pytest.mark.parametrize("password", ["Sh0rt!", "alllower-case1", "ALLUPPER-CASE1", "No-Digits-Here", "NoSymbols123"])
async def test_a_password_the_policy_refuses_is_a_400_stating_it_and_creates_nothing(api: Api, password: str) -> None:
    email = new_email()
    error = assert_error(
        await api.call("POST", "/auth/register", json={"email": email, "password": password}), 400, "validation_error"
    )
    assert "at least 8 characters" in error["fields"]["password"]
    assert (await api.call("POST", "/auth/login", json={"email": email, "password": password})).status == 401
    await register(api, email)  # the address is still free


async def test_registering_with_a_role_is_refused_and_creates_nothing(api: Api) -> None:
    email = new_email()
    body = {"email": email, "password": PASSWORD, "roles": ["admin"]}
    error = assert_error(await api.call("POST", "/auth/register", json=body), 400, "validation_error")
    assert "roles" in error["fields"]
    await register(api, email)
    assert "cognito:groups" not in claims_of((await log_in(api, email))["accessToken"])


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/auth/register", {}),
        ("/auth/register", {"email": "not-an-email", "password": PASSWORD}),
        ("/auth/register", {"email": "a@example.com", "password": ""}),
        ("/auth/register", {"email": "a@example.com", "password": 12345678}),
        ("/auth/register", ["a@example.com", PASSWORD]),
        ("/auth/login", {"email": "a@example.com"}),
        ("/auth/login", {"email": "a@example.com", "password": PASSWORD, "groups": ["admin"]}),
        ("/auth/confirm", {"email": "a@example.com"}),
        ("/auth/confirm", {"email": "a@example.com", "code": ""}),
        ("/auth/refresh", {}),
        ("/auth/refresh", {"refreshToken": None}),
    ],
)
async def test_a_bad_account_body_is_a_400(api: Api, route: str, body: Any) -> None:
    assert_error(await api.call("POST", route, json=body), 400, "validation_error")


async def test_a_body_that_is_not_json_is_refused(api: Api) -> None:
    not_json = await api.call("POST", "/auth/login", data="{", headers={"Content-Type": "application/json"})
    assert_error(not_json, 400, "validation_error")
    as_text = await api.call("POST", "/auth/login", data="email=a", headers={"Content-Type": "text/plain"})
    assert_error(as_text, 415, "unsupported_media_type")


async def test_a_refresh_token_that_is_not_one_is_a_401(api: Api) -> None:
    reply = await api.call("POST", "/auth/refresh", json={"refreshToken": new_id()})
    assert_error(reply, 401, "unauthenticated")


async def test_an_admin_sets_roles_and_the_users_next_token_carries_them(api: Api) -> None:
    email = new_email()
    user_id = await register(api, email)
    tokens = await log_in(api, email)
    admin = bearer(await admin_token(api))
    path = f"/admin/users/{user_id}/roles"
    given = await api.call("PUT", path, json={"roles": ["teacher", "admin", "teacher"]}, headers=admin)
    assert given.status == 200, given.body
    assert given.json == {"userId": user_id, "roles": ["admin", "teacher"]}
    assert sorted((await refreshed_claims(api, tokens["refreshToken"]))["cognito:groups"]) == ["admin", "teacher"]
    taken = await api.call("PUT", path, json={"roles": ["teacher"]}, headers=admin)
    assert taken.json == {"userId": user_id, "roles": ["teacher"]}
    assert (await refreshed_claims(api, tokens["refreshToken"]))["cognito:groups"] == ["teacher"]
    cleared = await api.call("PUT", path, json={"roles": []}, headers=admin)
    assert cleared.json["roles"] == []
    assert "cognito:groups" not in await refreshed_claims(api, tokens["refreshToken"])


async def test_nobody_but_an_admin_sets_roles(api: Api) -> None:
    learner_email, teacher_email = new_email(), new_email()
    learner = await register(api, learner_email)
    teacher = await register(api, teacher_email)
    admin = bearer(await admin_token(api))
    assert (
        await api.call("PUT", f"/admin/users/{teacher}/roles", json={"roles": ["teacher"]}, headers=admin)
    ).status == 200
    learner_tokens = await log_in(api, learner_email)
    teacher_token = (await log_in(api, teacher_email))["accessToken"]
    admin_id = claims_of(admin["Authorization"].split()[1])["sub"]
    admin_claims: dict[str, Any] = {"cognito:groups": ["admin"]}
    forged_admin = idp.access_token(f"{idp.REGION}_Other", "client", learner, **admin_claims)
    escalate = {"roles": ["admin"]}
    attempts: list[tuple[dict[str, str], int, str]] = [
        (bearer(learner_tokens["accessToken"]), 403, "forbidden"),
        (bearer(teacher_token), 403, "forbidden"),
        ({"X-User-Id": admin_id}, 401, "unauthenticated"),  # a trusted header never reaches /admin
        ({}, 401, "unauthenticated"),
        (bearer(forged_admin), 401, "unauthenticated"),
    ]
    for headers, status, code in attempts:
        reply = await api.call("PUT", f"/admin/users/{learner}/roles", json=escalate, headers=headers)
        assert_error(reply, status, code)
    assert "cognito:groups" not in await refreshed_claims(api, learner_tokens["refreshToken"])


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        (None, {"roles": ["superuser"]}, 400),
        (None, {"roles": "admin"}, 400),
        (None, {}, 400),
        (None, {"roles": ["teacher"], "email": "x@example.com"}, 400),
        ("not-a-uuid", {"roles": ["teacher"]}, 400),
        ("3fa85f64-5717-4562-b3fc-2c963f66afa6", {"roles": ["teacher"]}, 404),
    ],
)
async def test_a_bad_roles_request_is_refused(api: Api, user: str | None, body: Any, status: int) -> None:
    target = user or await register(api, new_email())
    reply = await api.call("PUT", f"/admin/users/{target}/roles", json=body, headers=bearer(await admin_token(api)))
    assert_error(reply, status, {400: "validation_error", 404: "not_found"}[status])


async def test_in_the_test_profile_a_sign_up_is_confirmed_by_code_before_login(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    api = Api(await aiohttp_client(create_app(settings)))
    email = new_email()
    assert (await api.call("POST", "/auth/register", json={"email": email, "password": PASSWORD})).status == 201
    early = await api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD})
    assert "confirm" in assert_error(early, 403, "forbidden")["message"]
    assert (await api.call("POST", "/auth/confirm", json={"email": email, "code": "123456"})).status == 204
    assert (await log_in(api, email))["accessToken"]


async def test_a_deployment_without_a_user_pool_answers_404_on_the_account_routes(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    api = Api(await aiohttp_client(create_app(dataclasses.replace(settings, cognito_user_pool_id=None))))
    reply = await api.call("POST", "/auth/login", json={"email": new_email(), "password": PASSWORD})
    assert "STATS_COGNITO_USER_POOL_ID" in assert_error(reply, 404, "not_found")["message"]


async def test_cognito_throttling_is_absorbed_by_retries_or_a_429_with_retry_after(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    assert settings.cognito_endpoint is not None
    async with ThrottlingEndpoint(settings.cognito_endpoint, COGNITO_THROTTLED_BODY) as throttling:
        api = Api(await aiohttp_client(create_app(dataclasses.replace(settings, cognito_endpoint=throttling.url))))
        await api.contract()
        email = new_email()
        throttling.throttle = Throttle.FIRST_ATTEMPT
        await register(api, email)
        assert throttling.throttled >= 2
        throttling.throttle = Throttle.ALWAYS
        refused = await api.call("POST", "/auth/login", json={"email": email, "password": PASSWORD})
        assert_error(refused, 429, "rate_limited")
        assert refused.headers["Retry-After"] == str(settings.retry_after_seconds)
        throttling.throttle = Throttle.OFF
        assert (await log_in(api, email))["accessToken"]


async def test_an_unreachable_user_pool_is_a_503_and_the_stats_routes_still_serve(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    nowhere = dataclasses.replace(settings, cognito_endpoint=f"http://127.0.0.1:{free_port()}")
    api = Api(await aiohttp_client(create_app(nowhere)))
    reply = await api.call("POST", "/auth/login", json={"email": new_email(), "password": PASSWORD})
    assert_error(reply, 503, "service_unavailable")
    assert "Retry-After" in reply.headers
    assert (await api.post(new_id(), new_id(), BODY)).status == 201


def run_accounts_cli(settings: Settings, *args: str, password: str) -> subprocess.CompletedProcess[str]:
    assert settings.cognito_user_pool_id
    assert settings.auth_client_id
    assert settings.cognito_endpoint
    env = {
        **os.environ,
        "STATS_ENV": "test",
        "STATS_COGNITO_USER_POOL_ID": settings.cognito_user_pool_id,
        "STATS_AUTH_CLIENT_ID": settings.auth_client_id,
        "STATS_COGNITO_ENDPOINT": settings.cognito_endpoint,
        "STATS_ADMIN_PASSWORD": password,
    }
    command = [sys.executable, "-m", "service.accounts", *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


async def test_create_admin_makes_an_admin_who_can_set_roles_and_can_run_again(
    aiohttp_client: AiohttpClient, settings: Settings
) -> None:
    email, password = new_email(), "First-Adm1n!"
    for _ in range(2):
        made = run_accounts_cli(settings, "create-admin", "--email", email, password=password)
        assert made.returncode == 0, made.stderr
    api = Api(await aiohttp_client(create_app(settings)))
    tokens = await log_in(api, email, password)
    assert claims_of(tokens["accessToken"])["cognito:groups"] == ["admin"]
    assert claims_of(tokens["accessToken"])["sub"] in made.stdout
    learner = await register(api, new_email())
    headers = bearer(tokens["accessToken"])
    assert (
        await api.call("PUT", f"/admin/users/{learner}/roles", json={"roles": ["teacher"]}, headers=headers)
    ).status == 200


def test_create_admin_says_what_is_wrong_in_one_line(settings: Settings) -> None:
    weak = run_accounts_cli(settings, "create-admin", "--email", new_email(), password="weak")
    assert weak.returncode == 1
    assert weak.stderr.startswith("create-admin failed: invalid password (password: the password must have")
    unconfigured = run_accounts_cli(
        dataclasses.replace(settings, cognito_user_pool_id="us-east-1_Missing"),
        "create-admin", "--email", new_email(), password=PASSWORD,
    )  # fmt: skip
    assert unconfigured.returncode == 1
    last_line = unconfigured.stderr.splitlines()[-1]
    assert last_line.startswith("create-admin failed:")
    assert "ResourceNotFoundException" in last_line  # the operator learns the pool is not there
