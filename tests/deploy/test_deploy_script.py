"""scripts/deploy: shellcheck, argument handling and a dry run that shows every step and runs none."""

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

STACK_ARGS = ["--stack-name", "stats", "--region", "eu-west-1"]
NETWORK_ARGS = [
    "--vpc-id",
    "vpc-0a1b",
    "--public-subnets",
    "subnet-pub1,subnet-pub2",
    "--private-subnets",
    "subnet-prv1,subnet-prv2",
]
BASH = shutil.which("bash") or "/bin/bash"


def _script(repo: Path, *args: str, path: str) -> subprocess.CompletedProcess[str]:
    # An explicit PATH decides which tools the script can find; nothing else leaks in.
    env = {"PATH": path, "LANG": "C.UTF-8"}
    return subprocess.run(
        [BASH, str(repo / "scripts" / "deploy"), *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _commands(stdout: str) -> list[str]:
    return [line.removeprefix("+ ") for line in stdout.splitlines() if line.startswith("+ ")]


def _command(stdout: str, prefix: str) -> str:
    (found,) = [command for command in _commands(stdout) if command.startswith(prefix)]
    return found


# Stand-ins for the AWS CLI and Docker: they log every call and answer like the real ones would
# for one stack, keeping whether the stack and the image exist as files in a state directory.
FAKE_AWS = """#!/bin/sh
echo "aws $*" >> "{calls}"
case "$*" in
  "sts get-caller-identity "*) echo 123456789012 ;;
  *describe-stacks*RepositoryUri*) echo 123456789012.dkr.ecr.eu-west-1.amazonaws.com/stats-repo ;;
  *describe-stacks*ServiceUrl*) echo http://stats.elb.example ;;
  "cloudformation describe-stacks "*) test -e "{state}/stack" || exit 255 ;;
  "cloudformation deploy "*) touch "{state}/stack" ;;
  "ecr describe-images "*) test -e "{state}/image" || exit 254 ;;
  "ecr get-login-password "*) echo secret ;;
  *) exit 99 ;;
esac
"""
# login logs only once it has read the password, so the pipe's two calls log in a fixed order.
FAKE_DOCKER = """#!/bin/sh
case "$1" in
  login) read -r password && test "$password" = secret || exit 1 ;;
  push) touch "{state}/image" ;;
esac
echo "docker $*" >> "{calls}"
"""


@pytest.fixture
def fake_clis(tmp_path: Path) -> tuple[str, Path]:
    """(PATH with the fakes ahead of the real tools, file that logs their calls)."""
    bin_dir, state, calls = tmp_path / "bin", tmp_path / "state", tmp_path / "calls"
    bin_dir.mkdir()
    state.mkdir()
    for tool, text in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        (bin_dir / tool).write_text(text.format(calls=calls, state=state))
        (bin_dir / tool).chmod(0o755)
    return f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", calls


def _calls(log: Path) -> list[str]:
    """Each logged call cut to its subcommand, plus the ImageTag a stack deploy was given."""
    calls: list[str] = []
    for line in log.read_text().splitlines():
        words = line.split()
        call = " ".join(words[: 3 if words[0] == "aws" else 2])
        if call == "aws cloudformation deploy":
            call += " " + re.findall(r"ImageTag=\S*", line)[0]
        calls.append(call)
    log.unlink()
    return calls


def test_shellcheck_passes(run_tool: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    result = run_tool("shellcheck", "scripts/deploy")
    assert result.returncode == 0, result.stdout


def test_script_is_executable(repo_root: Path) -> None:
    assert os.access(repo_root / "scripts" / "deploy", os.X_OK)


def test_dry_run_shows_every_step_and_runs_nothing(repo_root: Path, fake_clis: tuple[str, Path]) -> None:
    path, calls = fake_clis
    result = _script(repo_root, "--dry-run", *STACK_ARGS, "--image-tag", "v1.2.3", *NETWORK_ARGS, path=path)
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), calls.read_text()
    registry = "'<account>.dkr.ecr.eu-west-1.amazonaws.com'"
    image = "'<account>.dkr.ecr.eu-west-1.amazonaws.com/<repository>:v1.2.3'"
    region_stack = "--region eu-west-1 --stack-name stats"
    deploy = (
        f"aws cloudformation deploy {region_stack} --template-file deploy/stack.yaml "
        "--capabilities CAPABILITY_IAM --no-fail-on-empty-changeset --tags service=learning-stats "
        "--parameter-overrides ImageTag={tag} "
        "VpcId=vpc-0a1b PublicSubnetIds=subnet-pub1,subnet-pub2 PrivateSubnetIds=subnet-prv1,subnet-prv2"
    )
    outputs = (
        f"aws cloudformation describe-stacks {region_stack} "
        "--query 'Stacks[0].Outputs[?OutputKey=='\\''{key}'\\''].OutputValue' --output text"
    )
    # A dry run takes the longest path: new stack (phase 1 without the service), image not in ECR.
    # The revision depends on this checkout; the tests on a throwaway repository below check it.
    commands = [re.sub(r"GIT_REVISION=\S+", "GIT_REVISION=<revision>", line) for line in _commands(result.stdout)]
    assert commands == [
        "aws sts get-caller-identity --region eu-west-1 --query Account --output text",
        f"aws cloudformation describe-stacks {region_stack}",
        deploy.format(tag=""),
        outputs.format(key="RepositoryUri"),
        "aws ecr describe-images --region eu-west-1 --repository-name '<repository>' --image-ids imageTag=v1.2.3",
        f"aws ecr get-login-password --region eu-west-1 | docker login --username AWS --password-stdin {registry}",
        f"docker build --platform linux/amd64 --build-arg GIT_REVISION=<revision> --tag {image} .",
        f"docker push {image}",
        deploy.format(tag="v1.2.3"),
        outputs.format(key="ServiceUrl"),
    ]
    assert result.stdout.rstrip().endswith("Service URL: <ServiceUrl>")


def test_dry_run_needs_neither_aws_nor_docker(repo_root: Path, tmp_path: Path) -> None:
    result = _script(repo_root, "--dry-run", *STACK_ARGS, "--image-tag", "abc", path=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert _command(result.stdout, "docker push ")


def test_deploys_then_redeploys_an_existing_image(repo_root: Path, fake_clis: tuple[str, Path]) -> None:
    path, log = fake_clis
    first = _script(repo_root, *STACK_ARGS, "--image-tag", "v1", *NETWORK_ARGS, path=path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.rstrip().endswith("Service URL: http://stats.elb.example")
    assert _calls(log) == [
        "aws sts get-caller-identity",
        "aws cloudformation describe-stacks",
        "aws cloudformation deploy ImageTag=",
        "aws cloudformation describe-stacks",
        "aws ecr describe-images",
        "aws ecr get-login-password",
        "docker login",
        "docker build",
        "docker push",
        "aws cloudformation deploy ImageTag=v1",
        "aws cloudformation describe-stacks",
    ]
    # Deploying the same tag again (a rollback) neither recreates the stack nor rebuilds.
    again = _script(repo_root, *STACK_ARGS, "--image-tag", "v1", path=path)
    assert again.returncode == 0, again.stderr
    assert _calls(log) == [
        "aws sts get-caller-identity",
        "aws cloudformation describe-stacks",
        "aws cloudformation describe-stacks",
        "aws ecr describe-images",
        "aws cloudformation deploy ImageTag=v1",
        "aws cloudformation describe-stacks",
    ]


def test_real_run_stops_when_tools_are_missing(repo_root: Path, tmp_path: Path) -> None:
    result = _script(repo_root, *STACK_ARGS, "--image-tag", "abc", path=str(tmp_path))
    assert result.returncode == 1
    assert "'aws' is not installed" in result.stderr
    assert result.stdout == ""


def test_parameters_file_is_passed_through(repo_root: Path, tmp_path: Path) -> None:
    parameters = tmp_path / "production.params"
    parameters.write_text("# network\nVpcId=vpc-9\n\n  PrivateSubnetIds=subnet-1,subnet-2  \nTaskCpu=2048")
    result = _script(
        repo_root,
        "--dry-run",
        *STACK_ARGS,
        "--image-tag",
        "abc",
        "--parameters-file",
        str(parameters),
        path=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    deploys = [command for command in _commands(result.stdout) if command.startswith("aws cloudformation deploy")]
    assert [command.rpartition(" --parameter-overrides ")[2] for command in deploys] == [
        "ImageTag= VpcId=vpc-9 PrivateSubnetIds=subnet-1,subnet-2 TaskCpu=2048",
        "ImageTag=abc VpcId=vpc-9 PrivateSubnetIds=subnet-1,subnet-2 TaskCpu=2048",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dry-run", "--region", "eu-west-1"], "--stack-name is required"),
        (["--dry-run", "--stack-name", "stats"], "--region is required"),
        ([*STACK_ARGS, "--frobnicate"], "unknown argument '--frobnicate'"),
        ([*STACK_ARGS, "--image-tag"], "--image-tag needs a value"),
        ([*STACK_ARGS, "--image-tag", "no spaces"], "invalid image tag"),
        ([*STACK_ARGS, "--parameter", "ImageTag=x"], "give the image tag with --image-tag"),
        ([*STACK_ARGS, "--parameter", "novalue"], "is not KEY=VALUE"),
    ],
)
def test_rejects_bad_arguments(repo_root: Path, tmp_path: Path, args: list[str], message: str) -> None:
    result = _script(repo_root, *args, path=str(tmp_path))
    assert result.returncode == 2
    assert message in result.stderr


@pytest.fixture
def committed_copy(tmp_path: Path, repo_root: Path) -> tuple[Path, str]:
    """A throwaway git repository holding the script, with one commit: (root, full revision)."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy2(repo_root / "scripts" / "deploy", root / "scripts" / "deploy")
    identity = ["-c", "user.name=Deploy Test", "-c", "user.email=deploy@example.invalid", "-c", "commit.gpgsign=false"]
    for command in (["init", "-q"], ["add", "scripts/deploy"], [*identity, "commit", "-q", "-m", "init"]):
        subprocess.run([git, *command], cwd=root, check=True, capture_output=True, timeout=30)
    revision = subprocess.run(
        [git, "rev-parse", "HEAD"], cwd=root, check=True, capture_output=True, text=True, timeout=30
    ).stdout.strip()
    return root, revision


def test_image_tag_defaults_to_the_commit(committed_copy: tuple[Path, str]) -> None:
    root, revision = committed_copy
    result = _script(root, "--dry-run", *STACK_ARGS, path=os.environ.get("PATH", ""))
    assert result.returncode == 0, result.stderr
    build = _command(result.stdout, "docker build ")
    assert f"--build-arg GIT_REVISION={revision} " in build
    tag = build.split("--tag ")[1].split()[0].strip("'").rpartition(":")[2]
    assert revision.startswith(tag)
    assert len(tag) >= 7


def test_uncommitted_changes_need_an_explicit_tag(committed_copy: tuple[Path, str]) -> None:
    root, revision = committed_copy
    with (root / "scripts" / "deploy").open("a") as script:
        script.write("\n")
    path = os.environ.get("PATH", "")
    refused = _script(root, "--dry-run", *STACK_ARGS, path=path)
    assert refused.returncode == 1
    assert "uncommitted changes" in refused.stderr
    tagged = _script(root, "--dry-run", *STACK_ARGS, "--image-tag", "hotfix", path=path)
    assert f"--build-arg GIT_REVISION={revision}-dirty " in tagged.stdout
