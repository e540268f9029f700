"""Who a request acts for: a verified bearer token, or, where a gateway is trusted
(``STATS_TRUST_USER_HEADER``), the ``X-User-Id`` it sets. A request carrying both
must name the same user."""

from __future__ import annotations

from aiohttp import web
from marshmallow import ValidationError

from service import keys
from service.domain.errors import ValidationFailed
from service.domain.identity import Forbidden, Identity, Unauthenticated
from service.http.schemas import UserHeader, canonical_uuid, field_messages

USER_HEADER = "X-User-Id"
_USER_FIELD = UserHeader.user_field()
_REQUIRED = "Required without a bearer token; must be the learner's UUID."


async def identify(request: web.Request, *, token_required: bool = False) -> Identity:
    """The caller; ``token_required``: only a bearer token will do (the ``/admin`` routes)."""
    authorization = request.headers.get("Authorization")
    claimed = request.headers.get(USER_HEADER)
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("Authorization must be 'Bearer <access token>'")
        verifier = request.app[keys.VERIFIER]
        if verifier is None:
            raise Unauthenticated("this deployment verifies no tokens (STATS_AUTH_ISSUER is not set)")
        identity = await verifier.verify(token.strip())
        if claimed is not None and canonical_uuid(claimed) != identity.user_id:
            raise Forbidden(f"{USER_HEADER} names another user than the token")
        return identity
    if token_required or not request.app[keys.SETTINGS].trust_user_header:
        raise Unauthenticated("a bearer access token is required")
    if claimed is None:
        raise ValidationFailed(f"{USER_HEADER} or a bearer token is required", {USER_HEADER: _REQUIRED})
    try:
        return Identity(_USER_FIELD.parse(claimed))
    except ValidationError as exc:
        message = " ".join(field_messages(exc).values())
        raise ValidationFailed(f"invalid {USER_HEADER}", {USER_HEADER: message}) from None
