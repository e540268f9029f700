"""How each answer of Cognito's becomes the service's: a refusal of the caller, throttling,
a refused password, or an unavailable dependency (the integration tests drive the real IdP)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from service.accounts.cognito import WRONG_CREDENTIALS, CognitoAccounts, describe_policy
from service.domain.errors import Conflict, DependencyUnavailable, NotFound, RateLimited, ValidationFailed
from service.domain.identity import Forbidden, Unauthenticated


class FailingCognito:
    """A client whose every call fails with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_paginator(self, name: str) -> FailingCognito:
        return self

    def paginate(self, **_: Any) -> FailingCognito:
        return self

    def __aiter__(self) -> FailingCognito:
        return self

    async def __anext__(self) -> Any:
        raise self.error

    def __getattr__(self, name: str) -> Callable[..., Any]:
        async def call(**_: Any) -> Any:
            raise self.error

        return call


def cognito_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "Operation")


def accounts(error: Exception) -> CognitoAccounts:
    return CognitoAccounts(FailingCognito(error), pool_id="eu-west-1_Pool", client_id="client")  # type: ignore[arg-type]


LOGIN = ("login", ("a@example.com", "Passw0rd!"))
REFRESH = ("refresh", ("token",))
REGISTER = ("register", ("a@example.com", "Passw0rd!"))
CONFIRM = ("confirm", ("a@example.com", "123456"))
ROLES = ("set_roles", ("3fa85f64-5717-4562-b3fc-2c963f66afa6", frozenset({"teacher"})))


@pytest.mark.parametrize(
    ("call", "code", "expected"),
    [
        (LOGIN, "NotAuthorizedException", Unauthenticated),
        (LOGIN, "UserNotFoundException", Unauthenticated),
        (LOGIN, "UserNotConfirmedException", Forbidden),
        (LOGIN, "PasswordResetRequiredException", Forbidden),
        (REFRESH, "NotAuthorizedException", Unauthenticated),
        (REGISTER, "UsernameExistsException", Conflict),
        (REGISTER, "InvalidPasswordException", ValidationFailed),
        (REGISTER, "InvalidParameterException", ValidationFailed),
        (CONFIRM, "CodeMismatchException", ValidationFailed),
        (CONFIRM, "ExpiredCodeException", ValidationFailed),
        (CONFIRM, "UserNotFoundException", ValidationFailed),
        (CONFIRM, "NotAuthorizedException", Conflict),
        (ROLES, "UserNotFoundException", NotFound),
        (LOGIN, "TooManyRequestsException", RateLimited),
        (LOGIN, "TooManyFailedAttemptsException", RateLimited),
        (REGISTER, "LimitExceededException", RateLimited),
        (LOGIN, "InternalErrorException", DependencyUnavailable),
        (LOGIN, "ResourceNotFoundException", DependencyUnavailable),
        # A code that means a refusal on one route is the dependency's failure on another.
        (REGISTER, "NotAuthorizedException", DependencyUnavailable),
    ],
)
async def test_each_cognito_error_is_one_answer(call: tuple[str, tuple[Any, ...]], code: str, expected: type) -> None:
    method, args = call
    with pytest.raises(expected) as caught:
        await getattr(accounts(cognito_error(code)), method)(*args)
    assert type(caught.value) is expected
    if expected is DependencyUnavailable:
        assert caught.value.reason.endswith(f"/{code}")  # type: ignore[attr-defined]


async def test_wrong_credentials_say_nothing_of_which_part_was_wrong() -> None:
    messages = set()
    for code in ("NotAuthorizedException", "UserNotFoundException"):
        with pytest.raises(Unauthenticated) as caught:
            await accounts(cognito_error(code, f"detail of {code}")).login("a@example.com", "x")
        messages.add(caught.value.message)
    assert messages == {WRONG_CREDENTIALS}


@pytest.mark.parametrize(
    "error", [EndpointConnectionError(endpoint_url="https://cognito"), ReadTimeoutError(endpoint_url="x")]
)
async def test_an_unreachable_or_slow_cognito_is_unavailable(error: Exception) -> None:
    with pytest.raises(DependencyUnavailable) as caught:
        await accounts(error).login("a@example.com", "x")
    assert caught.value.dependency == "cognito"
    assert caught.value.reason == f"InitiateAuth/{type(error).__name__}"


def test_the_password_policy_in_words() -> None:
    policy = {"MinimumLength": 12, "RequireUppercase": True, "RequireNumbers": True, "RequireSymbols": False}
    assert describe_policy(policy) == "the password must have at least 12 characters, an upper-case letter, a digit"  # type: ignore[arg-type]
