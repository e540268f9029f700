"""Values that the Dockerfile, docker-compose.yml, the template and the service must agree on."""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

Resource = dict[str, Any]


@pytest.fixture(scope="module")
def health_url(dockerfile_healthcheck: list[str]) -> tuple[str, int]:
    """(path, port) probed by the image's health check."""
    (url,) = re.findall(r"'(http://[^']+)'", dockerfile_healthcheck[-1])
    parts = urlsplit(url)
    assert parts.port is not None
    return parts.path, parts.port


def test_container_health_check_is_the_image_health_check(
    dockerfile_healthcheck: list[str], container: Resource
) -> None:
    assert container["HealthCheck"]["Command"] == ["CMD", *dockerfile_healthcheck]


def test_health_check_path_is_the_same_everywhere(
    health_url: tuple[str, int], only_resource: Callable[[str], Resource]
) -> None:
    target_group = only_resource("AWS::ElasticLoadBalancingV2::TargetGroup")
    assert health_url[0] == target_group["HealthCheckPath"] == "/health"


def test_service_serves_the_health_path(health_url: tuple[str, int], repo_root: Path) -> None:
    sources = [path.read_text() for path in (repo_root / "service").rglob("*.py")]
    if not any("app_factory" in source for source in sources):
        pytest.skip("the service's routes are not in this tree yet")
    assert any(f'"{health_url[0]}"' in source for source in sources)


def test_port_is_the_same_everywhere(
    health_url: tuple[str, int],
    dockerfile_args: Callable[[str], list[str]],
    container: Resource,
    only_resource: Callable[[str], Resource],
    gunicorn_settings: dict[str, Any],
) -> None:
    (mapping,) = container["PortMappings"]
    target_group = only_resource("AWS::ElasticLoadBalancingV2::TargetGroup")
    ports = {
        health_url[1],
        int(dockerfile_args("EXPOSE")[0]),
        mapping["ContainerPort"],
        target_group["Port"],
        int(gunicorn_settings["bind"].rpartition(":")[2]),
    }
    assert ports == {8080}


def test_container_user_is_the_image_user(dockerfile_args: Callable[[str], list[str]], container: Resource) -> None:
    assert container["User"] == dockerfile_args("USER")[-1]
    assert not container["User"].startswith("0")


def test_shutdown_grace_period_matches_load_balancer_drain(
    gunicorn_settings: dict[str, Any],
    target_group_attributes: dict[str, str],
    container_env: dict[str, Any],
    dockerfile_env: dict[str, str],
    compose: dict[str, Any],
) -> None:
    # ECS deregisters the task, waits out the drain, then sends SIGTERM: in-flight requests get
    # the same time at the load balancer and in gunicorn.
    grace = gunicorn_settings["graceful_timeout"]
    assert grace == 25
    assert int(target_group_attributes["deregistration_delay.timeout_seconds"]) == grace
    assert int(container_env["STATS_SHUTDOWN_GRACE_SECONDS"]) == grace
    assert int(dockerfile_env["STATS_SHUTDOWN_GRACE_SECONDS"]) == grace
    assert int(compose["services"]["app"]["environment"]["STATS_SHUTDOWN_GRACE_SECONDS"]) == grace


def test_kill_comes_only_after_the_grace_period(
    gunicorn_settings: dict[str, Any], container: Resource, compose: dict[str, Any]
) -> None:
    assert container["StopTimeout"] == 30 > gunicorn_settings["graceful_timeout"]
    assert compose["services"]["app"]["stop_grace_period"] == f"{container['StopTimeout']}s"


def test_one_worker_per_task_everywhere(
    template: dict[str, Any], container_env: dict[str, Any], compose: dict[str, Any], gunicorn_settings: dict[str, Any]
) -> None:
    # A task has one vCPU and the service scales out with tasks.
    assert template["Parameters"]["Workers"]["Default"] == 1
    assert container_env["STATS_WORKERS"] == {"Ref": "Workers"}
    assert compose["services"]["app"]["environment"]["STATS_WORKERS"] == "1"
    assert gunicorn_settings["workers"] == 1
