"""Accounts as a thin layer over Amazon Cognito's user pool API: the service
stores no passwords, and every answer of Cognito's maps to one of the service's.

Users sign in with their email (the pool's username attribute), so a user's
Cognito username is their ``sub``: the ``userId`` of every stats route.
Roles are the pool's ``teacher`` and ``admin`` groups, which Cognito puts in
the ``cognito:groups`` claim of the tokens it issues after they change.

Wrong credentials are one answer whichever part was wrong: a pool with
``PreventUserExistenceErrors`` says ``NotAuthorizedException`` for an unknown
email as for a wrong password, and a pool without it says
``UserNotFoundException``; both become the same 401 here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from service.aws import aws_client
from service.domain.errors import Conflict, DependencyUnavailable, NotFound, RateLimited, ServiceError, ValidationFailed
from service.domain.identity import ROLES, Forbidden, Tokens, Unauthenticated
from service.settings import Settings

if TYPE_CHECKING:
    from types_aiobotocore_cognito_idp import CognitoIdentityProviderClient
    from types_aiobotocore_cognito_idp.type_defs import PasswordPolicyTypeTypeDef

log = logging.getLogger(__name__)

WRONG_CREDENTIALS = "incorrect email or password"
_THROTTLED = frozenset({"TooManyRequestsException", "LimitExceededException", "TooManyFailedAttemptsException"})
_BAD_CODE = "the code is wrong or has expired"

Refusals = Mapping[str, Callable[[], ServiceError]]

_LOGIN: Refusals = {
    "NotAuthorizedException": lambda: Unauthenticated(WRONG_CREDENTIALS),
    "UserNotFoundException": lambda: Unauthenticated(WRONG_CREDENTIALS),
    # Cognito says this only once the password was right.
    "UserNotConfirmedException": lambda: Forbidden("confirm the email address first (POST /auth/confirm)"),
    "PasswordResetRequiredException": lambda: Forbidden("this account's password must be reset first"),
}
_REFRESH: Refusals = {
    "NotAuthorizedException": lambda: Unauthenticated("the refresh token is invalid, expired or revoked"),
}
_CONFIRM: Refusals = {
    "CodeMismatchException": lambda: ValidationFailed(_BAD_CODE, {"code": _BAD_CODE}),
    "ExpiredCodeException": lambda: ValidationFailed(_BAD_CODE, {"code": _BAD_CODE}),
    # An unknown email answers as a wrong code: confirming tells nobody who has an account.
    "UserNotFoundException": lambda: ValidationFailed(_BAD_CODE, {"code": _BAD_CODE}),
    "NotAuthorizedException": lambda: Conflict("this account is confirmed already"),
}
_REGISTER: Refusals = {
    "UsernameExistsException": lambda: Conflict("an account with this email exists; log in instead"),
}
_USER: Refusals = {"UserNotFoundException": lambda: NotFound("no such user")}


def describe_policy(policy: PasswordPolicyTypeTypeDef) -> str:
    """The pool's password policy in words, for the 400 of a password it refuses."""
    needs = [f"at least {policy.get('MinimumLength', 8)} characters"]
    needs += [
        text
        for flag, text in (
            ("RequireUppercase", "an upper-case letter"),
            ("RequireLowercase", "a lower-case letter"),
            ("RequireNumbers", "a digit"),
            ("RequireSymbols", "a symbol"),
        )
        if policy.get(flag)
    ]
    return "the password must have " + ", ".join(needs)


class CognitoAccounts:
    def __init__(
        self,
        client: CognitoIdentityProviderClient,
        *,
        pool_id: str,
        client_id: str,
        confirm_sign_ups: bool = False,
    ) -> None:
        self._client = client
        self._pool_id = pool_id
        self._client_id = client_id
        # Local mode confirms each sign-up at once: no email is ever sent there.
        self._confirm_sign_ups = confirm_sign_ups
        self._policy_text = "the password does not meet the user pool's policy"

    async def load_policy(self) -> None:
        """Read the pool's password policy, to state it when a password is refused; fails if the pool does not exist."""
        with self._calls("DescribeUserPool"):
            pool = (await self._client.describe_user_pool(UserPoolId=self._pool_id))["UserPool"]
        policy = pool.get("Policies", {}).get("PasswordPolicy")
        if policy is not None:
            self._policy_text = describe_policy(policy)

    @contextlib.contextmanager
    def _calls(self, operation: str, refusals: Refusals = {}) -> Iterator[None]:  # noqa: B006 - never mutated
        """Translate Cognito's errors: a refusal of the caller, throttling, a bad password, or unavailable."""
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code in refusals:
                raise refusals[code]() from None
            if code in _THROTTLED:
                raise RateLimited("too many requests or attempts; retry later") from None
            if code == "InvalidPasswordException":
                raise ValidationFailed("invalid password", {"password": self._policy_text}) from None
            if code == "InvalidParameterException":
                raise ValidationFailed(error.get("Message") or "invalid request") from None
            raise DependencyUnavailable("cognito", f"{operation}/{code}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable("cognito", f"{operation}/{type(exc).__name__}") from exc

    async def register(self, email: str, password: str) -> str:
        """A new, unconfirmed account (confirmed at once in local mode); its user id."""
        with self._calls("SignUp", _REGISTER):
            answer = await self._client.sign_up(
                ClientId=self._client_id,
                Username=email,
                Password=password,
                UserAttributes=[{"Name": "email", "Value": email}],
            )
        if self._confirm_sign_ups:
            with self._calls("AdminConfirmSignUp"):
                await self._client.admin_confirm_sign_up(UserPoolId=self._pool_id, Username=email)
        return answer["UserSub"]

    async def confirm(self, email: str, code: str) -> None:
        with self._calls("ConfirmSignUp", _CONFIRM):
            await self._client.confirm_sign_up(ClientId=self._client_id, Username=email, ConfirmationCode=code)

    async def login(self, email: str, password: str) -> Tokens:
        with self._calls("InitiateAuth", _LOGIN):
            answer = await self._client.initiate_auth(
                ClientId=self._client_id,
                AuthFlow="USER_PASSWORD_AUTH",
                AuthParameters={"USERNAME": email, "PASSWORD": password},
            )
        return self._tokens(answer)

    async def refresh(self, refresh_token: str) -> Tokens:
        with self._calls("InitiateAuth", _REFRESH):
            answer = await self._client.initiate_auth(
                ClientId=self._client_id,
                AuthFlow="REFRESH_TOKEN_AUTH",
                AuthParameters={"REFRESH_TOKEN": refresh_token},
            )
        tokens = self._tokens(answer)
        return Tokens(tokens.access_token, tokens.expires_in)

    def _tokens(self, answer: Any) -> Tokens:
        result = answer.get("AuthenticationResult")
        if result is None:
            # A challenge (MFA, a new password) this API does not offer: the pool asks for more than it is set up for.
            raise Forbidden(f"this account needs the {answer.get('ChallengeName', 'unknown')} challenge to log in")
        return Tokens(result["AccessToken"], int(result["ExpiresIn"]), result.get("RefreshToken"))

    async def roles(self, user_id: str) -> frozenset[str]:
        """The user's roles: their groups that are roles."""
        groups: set[str] = set()
        with self._calls("AdminListGroupsForUser", _USER):
            paginator = self._client.get_paginator("admin_list_groups_for_user")
            async for page in paginator.paginate(UserPoolId=self._pool_id, Username=user_id):
                groups.update(group.get("GroupName", "") for group in page.get("Groups", []))
        return frozenset(groups & ROLES)

    async def set_roles(self, user_id: str, roles: frozenset[str]) -> frozenset[str]:
        """Make the user's roles exactly ``roles`` (their other groups stay); effective from their next token."""
        current = await self.roles(user_id)
        with self._calls("AdminAddUserToGroup", _USER):
            for role in sorted(roles - current):
                await self._client.admin_add_user_to_group(UserPoolId=self._pool_id, Username=user_id, GroupName=role)
        with self._calls("AdminRemoveUserFromGroup", _USER):
            for role in sorted(current - roles):
                await self._client.admin_remove_user_from_group(
                    UserPoolId=self._pool_id, Username=user_id, GroupName=role
                )
        return roles

    async def create_admin(self, email: str, password: str) -> str:
        """An admin account with this email and password, confirmed, made or completed; its user id."""
        # An existing account is completed: running this again repairs a half-made admin.
        with contextlib.suppress(Conflict), self._calls("AdminCreateUser", _REGISTER):
            await self._client.admin_create_user(
                UserPoolId=self._pool_id,
                Username=email,
                UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}],
                MessageAction="SUPPRESS",
            )
        with self._calls("AdminSetUserPassword"):
            await self._client.admin_set_user_password(
                UserPoolId=self._pool_id, Username=email, Password=password, Permanent=True
            )
        with self._calls("AdminGetUser"):
            user = await self._client.admin_get_user(UserPoolId=self._pool_id, Username=email)
        user_id = next(item["Value"] for item in user.get("UserAttributes", []) if item["Name"] == "sub")
        await self.set_roles(user_id, (await self.roles(user_id)) | {"admin"})
        return user_id


@contextlib.asynccontextmanager
async def open_accounts(settings: Settings) -> AsyncIterator[CognitoAccounts | None]:
    """The accounts of the configured user pool, or None where none is configured."""
    pool_id, client_id = settings.cognito_user_pool_id, settings.auth_client_id
    if pool_id is None or client_id is None:
        yield None
        return
    async with aws_client(settings, "cognito-idp", settings.cognito_endpoint) as client:
        accounts = CognitoAccounts(client, pool_id=pool_id, client_id=client_id, confirm_sign_ups=settings.is_local)
        try:
            await accounts.load_policy()
        except DependencyUnavailable as exc:
            # The stats routes do not need the pool's API: start, and let the account routes answer 503.
            log.warning("user pool unreadable at start-up", extra={"pool": pool_id, "reason": exc.reason})
        yield accounts


async def create_admin(settings: Settings, email: str, password: str) -> str:
    """An admin account in the configured user pool (see ``CognitoAccounts.create_admin``); its user id."""
    async with open_accounts(settings) as accounts:
        if accounts is None:
            raise ServiceError("STATS_COGNITO_USER_POOL_ID and STATS_AUTH_CLIENT_ID must name the user pool")
        return await accounts.create_admin(email, password)
