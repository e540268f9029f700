"""Request body validation: strict JSON types, inclusive bounds, canonical ids."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import ValidationError

from service.domain.model import SessionStats, score_to_cents
from service.http.schemas import SESSION_BODY, canonical_uuid, field_messages

UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
VALID = {"totalModulesStudied": 3, "averageScore": 87.5, "timeStudied": 60_000}
MISSING = object()
NUMERIC_FIELDS = ("totalModulesStudied", "averageScore", "timeStudied")
INTEGER_FIELDS = ("totalModulesStudied", "timeStudied")


def body(**changes: Any) -> dict[str, Any]:
    """The valid body with some fields replaced, or removed when given MISSING."""
    merged = {**VALID, **changes}
    return {name: value for name, value in merged.items() if value is not MISSING}


def rejected_fields(data: Any) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        SESSION_BODY.load(data)
    return field_messages(caught.value)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, VALID),
        ({"totalModulesStudied": 0}, {"totalModulesStudied": 0}),
        ({"totalModulesStudied": 10_000}, {"totalModulesStudied": 10_000}),
        ({"totalModulesStudied": 3.0}, {"totalModulesStudied": 3}),
        ({"averageScore": 0}, {"averageScore": 0.0}),
        ({"averageScore": 100}, {"averageScore": 100.0}),
        ({"averageScore": 100.0}, {"averageScore": 100.0}),
        ({"averageScore": 99.995}, {"averageScore": 99.995}),
        ({"timeStudied": 0}, {"timeStudied": 0}),
        ({"timeStudied": 86_400_000}, {"timeStudied": 86_400_000}),
        ({"timeStudied": 60_000.0}, {"timeStudied": 60_000}),
        ({"sessionId": UUID}, {"sessionId": UUID}),
        ({"sessionId": UUID.upper()}, {"sessionId": UUID}),
        ({"sessionId": "3FA85f64-5717-4562-B3fc-2C963F66afa6"}, {"sessionId": UUID}),
    ],
)
def test_good_bodies_load(changes: dict[str, Any], expected: dict[str, Any]) -> None:
    loaded = SESSION_BODY.load(body(**changes))
    want = {**VALID, **expected}
    assert loaded == SessionStats(
        session_id=want.get("sessionId", loaded.session_id),
        modules=want["totalModulesStudied"],
        score_cents=score_to_cents(want["averageScore"]),
        time_ms=want["timeStudied"],
    )
    for value in (loaded.modules, loaded.score_cents, loaded.time_ms):
        assert type(value) is int


def test_session_id_is_optional_and_generated_when_absent() -> None:
    first, second = SESSION_BODY.load(body()), SESSION_BODY.load(body())
    assert canonical_uuid(first.session_id) == first.session_id
    assert first.session_id != second.session_id


_WRONG_TYPES: list[object] = [True, False, "3", "", None, [], {}, float("nan"), float("inf"), float("-inf")]
_OUT_OF_BOUNDS = [
    ("totalModulesStudied", -1),
    ("totalModulesStudied", 10_001),
    ("averageScore", -0.01),
    ("averageScore", 100.01),
    ("averageScore", -1),
    ("averageScore", 101),
    ("timeStudied", -1),
    ("timeStudied", 86_400_001),
    ("timeStudied", 10**30),
]
_BAD_SESSION_IDS: list[object] = [
    None,
    "",
    123,
    UUID.replace("-", ""),
    "{" + UUID + "}",
    UUID[:-1],
    UUID + "0",
    "g" + UUID[1:],
    " " + UUID,
    "urn:uuid:" + UUID,
]


@pytest.mark.parametrize(
    ("field", "value"),
    [(field, value) for field in NUMERIC_FIELDS for value in _WRONG_TYPES]
    + [(field, 1.5) for field in INTEGER_FIELDS]
    + _OUT_OF_BOUNDS
    + [("sessionId", value) for value in _BAD_SESSION_IDS]
    + [
        pytest.param("sessionId", UUID + "\n", id="sessionId-trailing-newline"),
        pytest.param("averageScore", 10**400, id="averageScore-10**400"),
    ],
)
def test_bad_field_values_are_rejected(field: str, value: object) -> None:
    assert set(rejected_fields(body(**{field: value}))) == {field}


@pytest.mark.parametrize("field", NUMERIC_FIELDS)
def test_missing_required_field_is_rejected(field: str) -> None:
    assert rejected_fields(body(**{field: MISSING})) == {field: "Missing data for required field."}


def test_unknown_fields_are_rejected() -> None:
    assert rejected_fields(body(bogus=1)) == {"bogus": "Unknown field."}


def test_misspelt_field_is_reported_both_as_unknown_and_missing() -> None:
    data = body(totalModulesStudied=MISSING, totalModuleStudied=3)
    assert set(rejected_fields(data)) == {"totalModuleStudied", "totalModulesStudied"}


@pytest.mark.parametrize("data", [[], "text", 3, None])
def test_a_body_that_is_not_an_object_is_rejected(data: object) -> None:
    assert set(rejected_fields(data)) == {"_schema"}


def test_field_messages_are_one_sentence_per_field() -> None:
    messages = rejected_fields(
        {"sessionId": "nope", "totalModulesStudied": 1.5, "averageScore": 101, "timeStudied": -1, "extra": 0}
    )
    assert messages == {
        "sessionId": "Must be a UUID such as 3fa85f64-5717-4562-b3fc-2c963f66afa6.",
        "totalModulesStudied": "Must be a whole number.",
        "averageScore": "Must be between 0 and 100.",
        "timeStudied": "Must be between 0 and 86400000 milliseconds.",
        "extra": "Unknown field.",
    }


def test_field_messages_flattens_nested_messages() -> None:
    error = ValidationError({"a": ["one.", "two."], "b": {"0": ["three."], "1": {"x": ["four."]}}})
    assert field_messages(error) == {"a": "one. two.", "b": "three. four."}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (UUID, UUID),
        (UUID.upper(), UUID),
        ("00000000-0000-0000-0000-000000000000", "00000000-0000-0000-0000-000000000000"),
        (UUID.replace("-", ""), None),
        ("{" + UUID + "}", None),
        (UUID[:-1], None),
        ("z" + UUID[1:], None),
        (UUID + " ", None),
        ("", None),
        (None, None),
        (42, None),
        (UUID.encode(), None),
        pytest.param(UUID + "\n", None, id="trailing-newline"),
    ],
)
def test_canonical_uuid(value: object, expected: str | None) -> None:
    assert canonical_uuid(value) == expected
