"""Start-up configuration: profiles, STATS_* overrides, one-line errors."""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.settings import CONFIG_DIR, ConfigError, Settings, load_settings, mask_url

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {
    "STATS_ENV": "production",
    "STATS_REDIS_URL": "rediss://cache.internal:6379/0",
    "STATS_DYNAMODB_TABLE": "learning-stats-prod",
    "AWS_REGION": "eu-west-1",
    "STATS_AUTH_ISSUER": "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_Pool1",
    "STATS_AUTH_CLIENT_ID": "app-client-1",
    "STATS_CURSOR_SECRET": "0123456789abcdef0123456789abcdef",
}


def config_error(environ: dict[str, str], config_dir: Path = CONFIG_DIR) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ=environ, config_dir=config_dir)
    return str(caught.value)


def without(environ: dict[str, str], name: str) -> dict[str, str]:
    return {key: value for key, value in environ.items() if key != name}


def test_local_is_the_default_profile() -> None:
    settings = load_settings(environ={})
    assert settings.env == "local"
    assert settings.is_local
    assert (settings.host, settings.port) == ("127.0.0.1", 8080)
    assert settings.redis_url is None
    assert settings.dynamodb_endpoint is None
    assert settings.access_log is True


def test_test_profile() -> None:
    settings = load_settings(environ={"STATS_ENV": "test"})
    assert settings.env == "test"
    assert not settings.is_local
    assert settings.port == 0
    assert settings.dynamodb_table == "learning-stats-test"
    assert settings.log_level == "WARNING"
    assert settings.access_log is False
    assert settings.redis_timeout_seconds == 0.5


def test_production_with_its_endpoints_loads() -> None:
    settings = load_settings(environ=PRODUCTION)
    assert settings.env == "production"
    assert not settings.is_local
    # Inside the container it must listen on every interface for the load balancer.
    assert ipaddress.ip_address(settings.host).is_unspecified
    assert settings.redis_url == PRODUCTION["STATS_REDIS_URL"]
    assert settings.dynamodb_table == "learning-stats-prod"
    assert settings.aws_region == "eu-west-1"
    assert settings.dynamodb_endpoint is None


def test_production_verifies_tokens_at_the_issuers_jwks_and_trusts_no_header() -> None:
    settings = load_settings(environ=PRODUCTION)
    assert settings.trust_user_header is False
    assert settings.jwks_url == f"{PRODUCTION['STATS_AUTH_ISSUER']}/.well-known/jwks.json"


@pytest.mark.parametrize("missing", ["STATS_AUTH_ISSUER", "STATS_AUTH_CLIENT_ID"])
def test_production_refuses_to_start_unable_to_authenticate_anyone(missing: str) -> None:
    message = config_error(without(PRODUCTION, missing))
    assert message.startswith(f"{missing}: required in production unless STATS_TRUST_USER_HEADER is true")
    trusting = {**without(PRODUCTION, missing), "STATS_TRUST_USER_HEADER": "true"}
    assert load_settings(environ=trusting).trust_user_header is True


def test_a_user_pool_names_the_issuer_of_its_tokens() -> None:
    environ = {
        **without(PRODUCTION, "STATS_AUTH_ISSUER"),
        "STATS_COGNITO_USER_POOL_ID": "eu-west-1_Pool1",
    }
    settings = load_settings(environ=environ)
    assert settings.auth_issuer == PRODUCTION["STATS_AUTH_ISSUER"]
    assert settings.jwks_url == f"{PRODUCTION['STATS_AUTH_ISSUER']}/.well-known/jwks.json"
    explicit = {**environ, "STATS_AUTH_ISSUER": "https://idp.example.com/pool"}
    assert load_settings(environ=explicit).auth_issuer == "https://idp.example.com/pool"


def test_a_user_pool_needs_its_app_client() -> None:
    message = config_error({"STATS_COGNITO_USER_POOL_ID": "eu-west-1_Pool1"})
    assert message.startswith("STATS_AUTH_CLIENT_ID: required with STATS_COGNITO_USER_POOL_ID")


@pytest.mark.parametrize("missing", ["STATS_REDIS_URL", "STATS_DYNAMODB_TABLE", "AWS_REGION", "STATS_CURSOR_SECRET"])
def test_production_refuses_to_start_without_an_endpoint(missing: str) -> None:
    message = config_error(without(PRODUCTION, missing))
    assert message.startswith(f"{missing}:")
    assert "\n" not in message


def test_aws_default_region_is_the_fallback() -> None:
    environ = {**without(PRODUCTION, "AWS_REGION"), "AWS_DEFAULT_REGION": "ap-south-1"}
    assert load_settings(environ=environ).aws_region == "ap-south-1"
    assert load_settings(environ={**PRODUCTION, "AWS_DEFAULT_REGION": "ap-south-1"}).aws_region == "eu-west-1"


def test_environment_variables_override_the_profile() -> None:
    settings = load_settings(
        environ={
            "STATS_HOST": "10.1.2.3",
            "STATS_PORT": "9090",
            "STATS_REDIS_URL": "redis://localhost:6380/1",
            "STATS_DYNAMODB_ENDPOINT": "http://localhost:8000/",
            "STATS_DYNAMODB_TABLE": "other.table_1",
            "AWS_REGION": "eu-central-1",
            "STATS_CACHE_TTL_SECONDS": "5",
            "STATS_REBUILD_LOCK_SECONDS": "2.5",
            "STATS_LOG_LEVEL": "debug",
            "STATS_ACCESS_LOG": "off",
        }
    )
    assert settings == Settings(
        env="local",
        host="10.1.2.3",
        port=9090,
        redis_url="redis://localhost:6380/1",
        dynamodb_endpoint="http://localhost:8000",
        dynamodb_table="other.table_1",
        aws_region="eu-central-1",
        cache_ttl_seconds=5,
        rebuild_lock_seconds=2.5,
        log_level="DEBUG",
        access_log=False,
        change_capture=True,  # the local profile's, not overridden
        trust_user_header=True,  # likewise
        cursor_secret="local-only-cursor-secret-not-for-production",  # likewise
    )


def test_a_short_cursor_secret_is_refused_without_echoing_it() -> None:
    message = config_error({"STATS_CURSOR_SECRET": "hunter2-hunter2"})
    assert message.startswith("STATS_CURSOR_SECRET: must be at least 32 characters")
    assert "hunter2" not in message


def test_empty_variable_means_unset() -> None:
    assert load_settings(environ={"STATS_PORT": "", "STATS_REDIS_URL": ""}) == load_settings(environ={})


def test_keyword_overrides_win_over_the_environment() -> None:
    assert load_settings(environ={"STATS_PORT": "9090"}, port=1234).port == 1234


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATS_PORT", "abc"),
        ("STATS_PORT", "70000"),
        ("STATS_PORT", "-1"),
        ("STATS_REDIS_URL", "http://x"),
        ("STATS_REDIS_URL", "localhost:6379"),
        ("STATS_DYNAMODB_ENDPOINT", "localhost:8000"),
        ("STATS_CACHE_TTL_SECONDS", "0"),
        ("STATS_CACHE_TTL_SECONDS", "1.5"),
        ("STATS_ENV", "staging"),
        ("STATS_ACCESS_LOG", "maybe"),
        ("STATS_DYNAMODB_TABLE", "a b"),
        ("STATS_DYNAMODB_TABLE", "ab"),
        ("STATS_LOG_LEVEL", "verbose"),
        ("STATS_REBUILD_LOCK_SECONDS", "0"),
        ("STATS_REDIS_TIMEOUT_SECONDS", "nan"),
        ("STATS_HOST", "   "),
        ("STATS_COGNITO_USER_POOL_ID", "pool"),
        ("STATS_COGNITO_USER_POOL_ID", "eu-west-1_ab/../c"),
        ("STATS_COGNITO_ENDPOINT", "cognito.local"),
        ("STATS_CURSOR_SECRET", "too-short"),
        ("STATS_SESSION_POINTS", "-1"),
        ("STATS_SESSION_POINTS", "2.5"),
        ("STATS_SESSION_POINTS", "ten"),
        ("STATS_SESSION_POINTS", "1000001"),
        pytest.param(
            "STATS_REDIS_TIMEOUT_SECONDS",
            "9999\n",
            id="seconds-with-trailing-newline",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(name: str, value: str) -> None:
    message = config_error({name: value})
    assert message.startswith(f"{name}: ")
    assert "\n" not in message


def test_a_bad_redis_url_does_not_leak_its_password() -> None:
    message = config_error({"STATS_REDIS_URL": "http://admin:hunter2@cache:6379"})
    assert "hunter2" not in message
    assert "admin:***@cache:6379" in message


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("unix:///var/run/redis.sock", "STATS_REDIS_CLUSTER: a Redis Cluster is reached over TCP"),
        ("rediss://cache:6379?ssl_cert_reqs=none", "STATS_REDIS_URL: a Redis Cluster's URL may not set URL options"),
        ("rediss://cache:6379/2", "STATS_REDIS_URL: a Redis Cluster has database 0 only"),
    ],
)
def test_a_cluster_url_the_script_channel_cannot_serve_stops_start_up(url: str, problem: str) -> None:
    # Every script on a cluster runs on the lean channel: there is no slower path to fall back to.
    assert config_error({"STATS_REDIS_URL": url, "STATS_REDIS_CLUSTER": "true"}).startswith(problem)


def test_a_cluster_without_its_url_stops_start_up() -> None:
    assert config_error({"STATS_REDIS_CLUSTER": "true"}).startswith("STATS_REDIS_CLUSTER: names a cluster")


def test_a_cluster_url_with_credentials_and_tls_is_accepted() -> None:
    settings = load_settings(environ={"STATS_REDIS_URL": "rediss://user:pw@cfg.cache:6379", "STATS_REDIS_CLUSTER": "1"})
    assert settings.redis_cluster
    assert not load_settings(environ={}).redis_cluster


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://user:secret@host:6379/0", "redis://user:***@host:6379/0"),
        ("rediss://:secret@host:6380", "rediss://:***@host:6380"),
        ("redis://user:p@ss@host", "redis://user:***@host"),
        ("unix://user:secret@/var/run/redis.sock", "unix://user:***@/var/run/redis.sock"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://user@host", "redis://user@host"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_profile_files_come_from_config_dir(tmp_path: Path) -> None:
    (tmp_path / "local.toml").write_text('port = 1234\nlog_level = "error"\naccess_log = false\n')
    settings = load_settings(environ={}, config_dir=tmp_path)
    assert (settings.port, settings.log_level, settings.access_log) == (1234, "ERROR", False)


def test_an_unknown_profile_setting_is_refused(tmp_path: Path) -> None:
    (tmp_path / "local.toml").write_text("port = 1234\nredis_uri = 'redis://x'\n")
    message = config_error({}, config_dir=tmp_path)
    assert "redis_uri" in message
    assert "\n" not in message


def test_a_bad_profile_value_names_the_file_and_setting(tmp_path: Path) -> None:
    (tmp_path / "test.toml").write_text("port = 123456\n")
    message = config_error({"STATS_ENV": "test"}, config_dir=tmp_path)
    assert message.startswith(f"{tmp_path / 'test.toml'}: port: ")


def refused_start(**variables: str) -> str:
    """``python -m service`` with these ``STATS_*`` variables (and no others) exits 2 saying one line: it."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith("STATS_")}
    environ.update(variables)
    completed = subprocess.run(
        [sys.executable, "-m", "service"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    return lines[0]


def test_the_process_exits_with_one_line_on_a_bad_variable() -> None:
    assert "STATS_PORT" in refused_start(STATS_PORT="abc")
