"""Every bad body is a 400 in the error envelope, names the field, and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.support import Api, Backends, new_id
from tests.integration.test_api import assert_error

GOOD: dict[str, Any] = {"totalModulesStudied": 3, "averageScore": 80.5, "timeStudied": 1000}


def good(**changes: Any) -> dict[str, Any]:
    return {**GOOD, **changes}


def without(field: str) -> dict[str, Any]:
    return {name: value for name, value in GOOD.items() if name != field}


# (case, JSON text, field the error must name or None for a body-level error)
BAD_FIELDS: list[tuple[str, dict[str, Any], str]] = [
    ("missing modules", without("totalModulesStudied"), "totalModulesStudied"),
    ("missing score", without("averageScore"), "averageScore"),
    ("missing time", without("timeStudied"), "timeStudied"),
    ("modules as string", good(totalModulesStudied="3"), "totalModulesStudied"),
    ("modules as boolean", good(totalModulesStudied=True), "totalModulesStudied"),
    ("modules fractional", good(totalModulesStudied=2.5), "totalModulesStudied"),
    ("modules negative", good(totalModulesStudied=-1), "totalModulesStudied"),
    ("modules over limit", good(totalModulesStudied=10_001), "totalModulesStudied"),
    ("modules huge", good(totalModulesStudied=10**30), "totalModulesStudied"),
    ("modules null", good(totalModulesStudied=None), "totalModulesStudied"),
    ("score as string", good(averageScore="80"), "averageScore"),
    ("score as boolean", good(averageScore=False), "averageScore"),
    ("score negative", good(averageScore=-0.01), "averageScore"),
    ("score over 100", good(averageScore=100.01), "averageScore"),
    ("score as list", good(averageScore=[80]), "averageScore"),
    ("time fractional", good(timeStudied=1.5), "timeStudied"),
    ("time negative", good(timeStudied=-1), "timeStudied"),
    ("time over a day", good(timeStudied=86_400_001), "timeStudied"),
    ("time as object", good(timeStudied={"ms": 1}), "timeStudied"),
    ("session id malformed", good(sessionId="abc"), "sessionId"),
    ("session id without hyphens", good(sessionId=new_id().replace("-", "")), "sessionId"),
    ("session id as number", good(sessionId=12345), "sessionId"),
    ("session id null", good(sessionId=None), "sessionId"),
    ("unknown field", good(totalModulesStudeid=3), "totalModulesStudeid"),
    ("user id in body", good(userId=new_id()), "userId"),
]

BAD_DOCUMENTS: list[tuple[str, str]] = [
    ("empty body", ""),
    ("not JSON", "totalModulesStudied=3"),
    ("truncated JSON", '{"totalModulesStudied": 3'),
    ("JSON array", "[1, 2, 3]"),
    ("JSON string", '"hello"'),
    ("JSON null", "null"),
    ("NaN", '{"totalModulesStudied": 3, "averageScore": NaN, "timeStudied": 1}'),
    ("Infinity", '{"totalModulesStudied": 3, "averageScore": Infinity, "timeStudied": 1}'),
    ("overflowing number", '{"totalModulesStudied": 3, "averageScore": 1e400, "timeStudied": 1}'),
    ("invalid UTF-8", '{"totalModulesStudied": 3, "averageScore": "\udcff", "timeStudied": 1}'),
]


@pytest.mark.parametrize(("case", "payload", "field"), BAD_FIELDS, ids=[case for case, _, _ in BAD_FIELDS])
async def test_invalid_field_is_rejected(
    api: Api, backends: Backends, case: str, payload: dict[str, Any], field: str
) -> None:
    user = new_id()
    error = assert_error(await api.post(user, new_id(), payload), 400, "validation_error")
    assert field in error["fields"], error
    await backends.assert_nothing_stored(user)


@pytest.mark.parametrize(("case", "text"), BAD_DOCUMENTS, ids=[case for case, _ in BAD_DOCUMENTS])
async def test_invalid_document_is_rejected(api: Api, backends: Backends, case: str, text: str) -> None:
    user = new_id()
    reply = await api.call(
        "POST",
        f"/courses/{new_id()}",
        user=user,
        data=text.encode("utf-8", "surrogateescape"),
        headers={"Content-Type": "application/json"},
    )
    assert_error(reply, 400, "validation_error")
    await backends.assert_nothing_stored(user)


@pytest.mark.parametrize(
    "payload",
    [
        good(totalModulesStudied=0, averageScore=0, timeStudied=0),
        good(totalModulesStudied=10_000, averageScore=100, timeStudied=86_400_000),
        good(totalModulesStudied=7.0),
    ],
    ids=["lower bounds", "upper bounds", "integral float"],
)
async def test_boundary_values_are_accepted(api: Api, payload: dict[str, Any]) -> None:
    reply = await api.post(new_id(), new_id(), payload)
    assert reply.status == 201, reply.json
    assert reply.json["totalModulesStudied"] == int(payload["totalModulesStudied"])
