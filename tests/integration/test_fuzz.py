"""Property-based run of schemathesis over the served OpenAPI document.

The application runs in this process on a real port (real redis-server and moto, the
``settings`` fixture); schemathesis's CLI runs in a child process against it. The CLI
rather than ``schema.parametrize()``: only a CLI run computes schemathesis's warnings
(a "validation mismatch" says most requests the document calls valid were refused) and
the per-operation valid rates, and its JSON report gives the counts quoted below. Being
a separate process it also keeps hypothesis's settings and warnings out of this one.

Deterministic generation: the same document always yields the same cases, so a failure
reproduces and the run takes the same few seconds every time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from localmode import idp
from service.accounts.cognito import open_accounts
from service.app import create_app
from service.settings import Settings
from tests.faults.support import until
from tests.integration.support import SPEC_PATH, new_id

# Every check that applies to a document without security schemes; the first four are the
# contract's core (no 5xx, only documented statuses, bodies and content types as documented).
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
)
MAX_EXAMPLES = 20
RUN_TIMEOUT_SECONDS = 180
# Whether a schema-valid body of an account route is accepted depends on state outside the
# document (whether the account exists, the code sent by email, the pool's password policy),
# so those routes are held to every check but the acceptance of valid data and its warnings.
ACCOUNT_ROUTES = "^/auth/"
TEACHER_ROUTES = "^/admin/courses/[^/]+/teachers/"
# With module results, a session's summary must agree with them (their number, mean score and total
# time, SPEC §7), which JSON Schema cannot say; tests/integration/test_modules holds it.
DERIVED_SUMMARY = "POST /courses/{courseId}"
SEALED_CURSOR_ROUTES = "^((/admin/users/[^/]+)?/courses/[^/]+/sessions|/admin/courses(/[^/]+/learners)?)$"
# A week is named only with period=week, and only the current one or the 12 before it (SPEC §8): a
# rule between two parameters and the clock, which JSON Schema cannot say; test_leaderboard holds it.
LEADERBOARD_ROUTES = "^(/admin)?/courses/[^/]+/leaderboard$"


def config(user_id: str) -> str:
    """The run's checks, the account routes' exception, and a real user for the roles route."""
    return "\n".join(
        [
            "[checks]",
            "enabled = false",
            *(f"{check}.enabled = true" for check in CHECKS),
            "[[operations]]",
            f'include-path-regex = "{ACCOUNT_ROUTES}"',
            "warnings = false",
            "checks.positive_data_acceptance.enabled = false",
            # A cursor is valid only as the service sealed it; schemathesis can only make up others.
            "[[operations]]",
            f'include-path-regex = "{SEALED_CURSOR_ROUTES}"',
            "checks.positive_data_acceptance.enabled = false",
            "[[operations]]",
            f'include-path-regex = "{LEADERBOARD_ROUTES}"',
            "warnings = false",
            "checks.positive_data_acceptance.enabled = false",
            # DERIVED_SUMMARY's bodies: valid by the document, refused when the summary disagrees.
            "[[operations]]",
            'include-operation-id = "postSession"',
            "warnings = false",
            "checks.positive_data_acceptance.enabled = false",
            # A bad item of a batch is refused in its own result, not by the request's status.
            "[[operations]]",
            'include-path-regex = "/sessions/batch$"',
            "checks.negative_data_rejection.enabled = false",
            # Real ids where an answer needs data: a registered user, and a course the fuzzed learner studies.
            "[[operations]]",
            'include-path-regex = "^/admin/users/[^/]+(/roles)?$"',
            f'parameters = {{ "path.userId" = "{user_id}" }}',
            "[[operations]]",
            'include-path-regex = "^/admin/users/[^/]+/courses/[^/]+(/sessions)?$"',
            f'parameters = {{ "path.userId" = "{FUZZ_LEARNER}", "path.courseId" = "{FUZZ_COURSE}" }}',
            "[[operations]]",
            'include-path-regex = "^/admin/users/[^/]+/courses/[^/]+/sessions/[^/]+$"',
            f'parameters = {{ "path.userId" = "{FUZZ_LEARNER}", "path.courseId" = "{FUZZ_COURSE}",'
            f' "path.sessionId" = "{FUZZ_SESSION}" }}',
            # Whether the user may teach depends on their roles at that moment, which the roles
            # route (fuzzed on the same user) keeps changing: held to every check but acceptance.
            "[[operations]]",
            f'include-path-regex = "{TEACHER_ROUTES}"',
            f'parameters = {{ "path.courseId" = "{FUZZ_COURSE}", "path.userId" = "{user_id}" }}',
            "warnings = false",
            "checks.positive_data_acceptance.enabled = false",
            "[[operations]]",
            'include-path-regex = "^/admin/courses/[^/]+(/learners)?$"',
            f'parameters = {{ "path.courseId" = "{FUZZ_COURSE}" }}',
        ]
    )


@pytest.fixture
async def live_server(settings: Settings) -> AsyncIterator[str]:
    """The application on a free port of 127.0.0.1, as a base URL."""
    # Change capture on: the course-wide routes answer from the rosters it keeps.
    runner = web.AppRunner(create_app(dataclasses.replace(settings, change_capture=True)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


FUZZ_LEARNER = "0b2c6f1e-8a4d-4c3b-9e5f-7a1d2c3b4e5f"
FUZZ_COURSE = "5d0e7c2a-1b3f-4e6d-8a9c-0f1e2d3c4b5a"
FUZZ_SESSION = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


async def seed_fuzzed_course(base_url: str, token: str) -> None:
    """The fuzzed learner's session in FUZZ_COURSE, and the course's figures once change capture has them."""
    admin = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(base_url=base_url) as http:
        body = {"sessionId": FUZZ_SESSION, "totalModulesStudied": 2, "averageScore": 75, "timeStudied": 60_000}
        async with http.post(f"/courses/{FUZZ_COURSE}", json=body, headers={"X-User-Id": FUZZ_LEARNER}) as reply:
            assert reply.status in (200, 201), await reply.text()

        course = {"title": "Fuzzed"}
        async with http.put(f"/admin/courses/{FUZZ_COURSE}", json=course, headers=admin) as reply:
            assert reply.status in (200, 201), await reply.text()

        async def figures_served() -> bool:
            async with http.get(f"/admin/courses/{FUZZ_COURSE}", headers=admin) as got:
                return got.status == 200

        await until(figures_served, within=10)


async def run_schemathesis(base_url: str, workdir: Path, token: str, user_id: str) -> tuple[int, str, dict[str, Any]]:
    """Exit code, console output and JSON report of one ``schemathesis run``."""
    report_path = workdir / "schemathesis.json"
    config_path = workdir / "schemathesis.toml"
    config_path.write_text(config(user_id))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config_path),
        "run",
        base_url + SPEC_PATH,
        # The learner's token, as an admin (the roles route); the X-User-Id a trusted gateway would
        # add names the same learner, as the document allows.
        "--header",
        f"Authorization: Bearer {token}",
        "--header",
        f"X-User-Id: {FUZZ_LEARNER}",
        # The stateful phase chains POST -> GET links; with every request accepted it now runs
        # hundreds of scenarios (26 s) and trips an internal error of schemathesis 4.32.5
        # ("No progress can be made from state ..."). The single-request phases cover the contract.
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--generation-deterministic",
        "--request-timeout",
        "10",
        "--no-color",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
    ]
    # In a scratch directory: nothing (a .hypothesis folder, a stray schemathesis.toml) in the repo applies.
    process = await asyncio.create_subprocess_exec(
        *command, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    text = output.decode(errors="replace")
    assert report_path.exists(), f"schemathesis wrote no report (exit {process.returncode}):\n{text}"
    report: dict[str, Any] = json.loads(report_path.read_text())
    assert process.returncode is not None
    return process.returncode, text, report


def rejected_valid_requests(report: dict[str, Any]) -> dict[str, int]:
    """Per operation, the requests the document calls valid that the service answered with a 400-class refusal."""
    rejected = {
        operation: sum(phase["rejected"] for phase in phases.values())
        for operation, phases in report["valid_rates"].items()
        if operation != DERIVED_SUMMARY
        and not re.match(
            f"{ACCOUNT_ROUTES}|{SEALED_CURSOR_ROUTES}|{TEACHER_ROUTES}|{LEADERBOARD_ROUTES}",
            operation.partition(" ")[2],
        )
    }
    return {operation: count for operation, count in rejected.items() if count}


def summary(report: dict[str, Any], seconds: float) -> str:
    cases, operations = report["test_cases"], report["operations"]
    warnings = {name: labels for name, labels in report["warnings"].items() if labels}
    return (
        f"schemathesis {report['schemathesis_version']}: {operations['tested']}/{operations['total']} operations, "
        f"{cases['generated']} test cases, {cases['with_failures']} with failures, "
        f"{len(report['failures'])} failures, {len(report['errors'])} errors, "
        f"warnings: {warnings or 'none'}, in {seconds:.1f}s"
    )


async def test_served_document_holds_under_fuzzing(
    live_server: str, settings: Settings, tmp_path: Path, record_property: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert settings.cognito_user_pool_id
    assert settings.auth_client_id
    admin: dict[str, Any] = {"cognito:groups": ["admin"]}
    token = idp.access_token(settings.cognito_user_pool_id, settings.auth_client_id, FUZZ_LEARNER, **admin)
    async with open_accounts(settings) as accounts:
        assert accounts is not None
        user_id = await accounts.register(f"{new_id()}@example.com", "Fuzzed-Passw0rd!")
        await accounts.set_roles(user_id, frozenset({"teacher"}))  # so that it can be assigned to a course
    await seed_fuzzed_course(live_server, token)
    started = time.monotonic()
    exit_code, output, report = await run_schemathesis(live_server, tmp_path, token, user_id)
    line = summary(report, time.monotonic() - started)
    record_property("schemathesis", line)
    with capsys.disabled():
        print(f"\n{line}")

    assert report["complete"], output
    assert report["failures"] == [], output
    assert report["errors"] == [], output
    assert report["operations"]["tested"] == report["operations"]["total"] >= 6, output
    assert report["test_cases"]["generated"] > 0, output
    # A warning means the run did not test what it claims, e.g. "validation mismatch":
    # most requests generated as valid were refused, so the document and the service disagree.
    warnings = {name: labels for name, labels in report["warnings"].items() if labels}
    assert warnings == {}, output
    assert rejected_valid_requests(report) == {}, output
    assert exit_code == 0, output
