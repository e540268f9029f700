"""Accounts (``/auth/*``) and roles (``/admin/users/{userId}/roles``): a thin layer over the user pool."""

from __future__ import annotations

from aiohttp import web

from service import keys
from service.accounts.cognito import CognitoAccounts
from service.domain.errors import NotFound
from service.http.contract import Inputs, Reply, endpoint
from service.http.schemas import (
    ConfirmBody,
    CredentialsBody,
    RefreshBody,
    RefreshedResponse,
    RegisteredResponse,
    RolesBody,
    RolesResponse,
    TokensResponse,
    UserPath,
)

_CREDENTIALS = CredentialsBody()
_BOTH = (400, 413, 415, 429, 503)


def accounts_of(request: web.Request) -> CognitoAccounts:
    accounts = request.app[keys.ACCOUNTS]
    if accounts is None:
        raise NotFound("accounts are not enabled in this deployment (STATS_COGNITO_USER_POOL_ID is not set)")
    return accounts


@endpoint(
    operation_id="register",
    summary="Registers a learner with an email and password",
    tag="accounts",
    body=_CREDENTIALS,
    responses={201: (RegisteredResponse(), "Registered; confirm with the code sent by email (local mode: done).")},
    errors=(*_BOTH, 404, 409),
)
async def register(request: web.Request, inputs: Inputs) -> Reply:
    user_id = await accounts_of(request).register(inputs.body["email"], inputs.body["password"])
    return Reply(201, {"user_id": user_id})


@endpoint(
    operation_id="confirm",
    summary="Confirms a registration with the code sent by email",
    tag="accounts",
    body=ConfirmBody(),
    responses={204: (None, "Confirmed; log in.")},
    errors=(*_BOTH, 404, 409),
)
async def confirm(request: web.Request, inputs: Inputs) -> Reply:
    await accounts_of(request).confirm(inputs.body["email"], inputs.body["code"])
    return Reply(204)


@endpoint(
    operation_id="login",
    summary="Logs in: an access token for every other route, and a refresh token",
    tag="accounts",
    body=_CREDENTIALS,
    responses={200: (TokensResponse(), "Logged in.")},
    errors=(*_BOTH, 401, 403, 404),
)
async def login(request: web.Request, inputs: Inputs) -> Reply:
    return Reply(200, await accounts_of(request).login(inputs.body["email"], inputs.body["password"]))


@endpoint(
    operation_id="refresh",
    summary="Exchanges a refresh token for a new access token",
    tag="accounts",
    body=RefreshBody(),
    responses={200: (RefreshedResponse(), "A new access token, with the user's roles as they are now.")},
    errors=(*_BOTH, 401, 404),
)
async def refresh(request: web.Request, inputs: Inputs) -> Reply:
    return Reply(200, await accounts_of(request).refresh(inputs.body["refresh_token"]))


@endpoint(
    operation_id="setRoles",
    summary="Sets a user's roles",
    tag="admin",
    roles=frozenset({"admin"}),
    path=UserPath(),
    body=RolesBody(),
    responses={200: (RolesResponse(), "The user's roles now; their next token (login or refresh) carries them.")},
    errors=(*_BOTH, 401, 403, 404),
)
async def set_roles(request: web.Request, inputs: Inputs) -> Reply:
    user_id = inputs.params["user_id"]
    roles = await accounts_of(request).set_roles(user_id, frozenset(inputs.body["roles"]))
    return Reply(200, {"user_id": user_id, "roles": sorted(roles)})


def add_routes(app: web.Application) -> None:
    app.router.add_post("/auth/register", register)
    app.router.add_post("/auth/confirm", confirm)
    app.router.add_post("/auth/login", login)
    app.router.add_post("/auth/refresh", refresh)
    app.router.add_put("/admin/users/{userId}/roles", set_roles)
