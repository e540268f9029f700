"""docker-compose.yml: validated by the real compose binary, then checked on the model it resolves."""

import subprocess
from pathlib import Path
from typing import Any

import pytest


def test_compose_validates_the_file(compose_binary: Path, compose_env: dict[str, str], repo_root: Path) -> None:
    result = subprocess.run(
        [str(compose_binary), "config", "--quiet"],
        check=False,
        cwd=repo_root,
        env=compose_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == "", "compose warnings are treated as errors"


def test_runs_the_four_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "dynamodb", "bootstrap", "app"}


@pytest.mark.parametrize("name", ["redis", "dynamodb"])
def test_backing_services_have_health_checks(compose: dict[str, Any], name: str) -> None:
    healthcheck = compose["services"][name]["healthcheck"]
    assert healthcheck["test"][0] == "CMD"
    assert not healthcheck.get("disable", False)


def test_redis_7(compose: dict[str, Any]) -> None:
    assert compose["services"]["redis"]["image"].startswith("redis:7.")


def test_dynamodb_local_keeps_its_data_on_a_named_volume(compose: dict[str, Any]) -> None:
    dynamodb = compose["services"]["dynamodb"]
    assert dynamodb["image"].startswith("amazon/dynamodb-local:")
    command = dynamodb["command"]
    assert "-sharedDb" in command
    assert command[command.index("-dbPath") + 1] == "/data"
    (volume,) = dynamodb["volumes"]
    assert (volume["type"], volume["target"]) == ("volume", "/data")
    assert volume["source"] in compose["volumes"]


def test_bootstrap_creates_the_table_with_the_app_image(compose: dict[str, Any]) -> None:
    bootstrap, app = compose["services"]["bootstrap"], compose["services"]["app"]
    assert bootstrap["command"] == ["python", "-m", "service.dynamodb.table", "create"]
    assert bootstrap["image"] == app["image"]
    assert bootstrap["build"] == app["build"]
    assert bootstrap["environment"] == app["environment"]
    assert bootstrap["depends_on"] == {"dynamodb": {"condition": "service_healthy", "required": True}}


def test_app_waits_for_healthy_stores_and_the_table(compose: dict[str, Any]) -> None:
    conditions = {name: dep["condition"] for name, dep in compose["services"]["app"]["depends_on"].items()}
    assert conditions == {
        "redis": "service_healthy",
        "dynamodb": "service_healthy",
        "bootstrap": "service_completed_successfully",
    }


def test_app_is_built_here_and_published_on_8080(compose: dict[str, Any], repo_root: Path) -> None:
    app = compose["services"]["app"]
    assert Path(app["build"]["context"]) == repo_root
    assert app["build"]["dockerfile"] == "Dockerfile"
    assert [(port["published"], port["target"]) for port in app["ports"]] == [("8080", 8080)]
    assert app["read_only"] is True


def test_app_runs_the_production_profile_against_the_local_stores(compose: dict[str, Any]) -> None:
    environment = compose["services"]["app"]["environment"]
    assert environment["STATS_ENV"] == "production"
    assert environment["STATS_REDIS_URL"] == "redis://redis:6379/0"
    assert environment["STATS_DYNAMODB_ENDPOINT"] == "http://dynamodb:8000"
    assert environment["STATS_DYNAMODB_TABLE"]
    assert environment["AWS_ACCESS_KEY_ID"]
    assert environment["AWS_SECRET_ACCESS_KEY"]
