"""Opaque, tamper-evident list cursors.

A cursor is the position to resume after, bound to the listing it came from
(the caller and the course), sealed with an HMAC under ``STATS_CURSOR_SECRET``:
every task of a deployment shares the secret, so the next page may be served by
any of them. A cursor that was altered, truncated, made up, or taken from
another listing fails the check and is a 400; nothing about the position is
readable from outside beyond its base64 form.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence

from service.domain.errors import ValidationFailed

_VERSION = b"1"
_TAG_BYTES = 16
_INVALID = "invalid cursor: pass nextCursor from the previous page of this same list unchanged"


class Cursors:
    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(secret.encode()).digest()

    def _tag(self, scope: str, position: bytes) -> bytes:
        return hmac.new(self._key, _VERSION + b"\0" + scope.encode() + b"\0" + position, hashlib.sha256).digest()[
            :_TAG_BYTES
        ]

    def seal(self, scope: str, position: str) -> str:
        """The cursor for resuming the ``scope`` listing after ``position``."""
        raw = position.encode()
        return base64.urlsafe_b64encode(_VERSION + self._tag(scope, raw) + raw).rstrip(b"=").decode()

    def position(self, scope: str, cursor: str | None) -> str | None:
        """Where a page of the ``scope`` listing starts after: what ``cursor`` names, None for the first."""
        return None if cursor is None else self.open(scope, cursor)

    def page(self, scope: str, items: Sequence[object], following: str | None) -> dict[str, object]:
        """A page of every list: its items, and a cursor only where another page follows."""
        page: dict[str, object] = {"items": items}
        if following is not None:
            page["next_cursor"] = self.seal(scope, following)
        return page

    def open(self, scope: str, cursor: str) -> str:
        """The position ``cursor`` names in the ``scope`` listing, or ``ValidationFailed``."""
        try:
            sealed = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        except (binascii.Error, ValueError):
            raise ValidationFailed(_INVALID, {"cursor": _INVALID}) from None
        tag, raw = sealed[1 : 1 + _TAG_BYTES], sealed[1 + _TAG_BYTES :]
        if sealed[:1] != _VERSION or not hmac.compare_digest(tag, self._tag(scope, raw)):
            raise ValidationFailed(_INVALID, {"cursor": _INVALID})
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise ValidationFailed(_INVALID, {"cursor": _INVALID}) from None
