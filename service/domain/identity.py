"""Who a request acts for, and the errors of not knowing or not being allowed."""

from __future__ import annotations

import dataclasses

from service.domain.errors import ServiceError

# Roles are Cognito groups; any other group is ignored.
ROLES = frozenset({"teacher", "admin"})


@dataclasses.dataclass(frozen=True, slots=True)
class Identity:
    user_id: str
    roles: frozenset[str] = frozenset()


class Unauthenticated(ServiceError):
    """No credentials, or credentials that do not prove who the caller is."""


class Forbidden(ServiceError):
    """The caller is known and may not do this."""


@dataclasses.dataclass(frozen=True, slots=True)
class Tokens:
    """What a login or refresh gives: an access token, its lifetime, and on login a refresh token."""

    access_token: str
    expires_in: int
    refresh_token: str | None = None
