"""Configuration: a profile file per environment in ``config/``, overridden by
``STATS_*`` environment variables, validated once at start-up.

A bad value raises :class:`ConfigError` whose message is one line naming the
variable, so an operator sees exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

from service import module_types
from service.module_types import ModuleTypes

ENVIRONMENTS = ("local", "test", "production")
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Environment = Literal["local", "test", "production"]


class ConfigError(ValueError):
    """A configuration value is missing or invalid."""


@dataclasses.dataclass(frozen=True, slots=True)
class Settings:
    env: Environment = "local"
    host: str = "127.0.0.1"
    port: int = 8080
    redis_url: str | None = None
    # STATS_REDIS_URL names a Redis Cluster (ElastiCache cluster mode or Serverless): any node of it.
    redis_cluster: bool = False
    dynamodb_endpoint: str | None = None
    dynamodb_table: str = "learning-stats"
    aws_region: str = "us-east-1"
    cache_ttl_seconds: int = 3600
    # A cached aggregate is rebuilt this long after its last rebuild, however often it is read.
    cache_max_age_seconds: int = 3600
    # A rebuild holds its lock this long at most; other readers wait for it.
    rebuild_lock_seconds: float = 10.0
    redis_timeout_seconds: float = 0.25
    dynamodb_timeout_seconds: float = 2.0
    dynamodb_max_attempts: int = 3
    request_deadline_seconds: float = 5.0
    retry_after_seconds: int = 1
    shutdown_grace_seconds: float = 25.0
    # Gunicorn worker processes (the container runs gunicorn; `python -m service` is one process).
    workers: int = 1
    log_level: str = "INFO"
    # The original contract: a request without a token acts for the learner X-User-Id names.
    trust_user_header: bool = False
    # Access tokens: the identity provider's issuer, its JWKS (default: the issuer's), the app client.
    auth_issuer: str | None = None
    auth_jwks_url: str | None = None
    auth_client_id: str | None = None
    # Accounts (/auth/*, roles): the Cognito user pool, and its API's endpoint where it is not AWS's own.
    cognito_user_pool_id: str | None = None
    cognito_endpoint: str | None = None
    # Seals list cursors; every task of a deployment must share it (required in production).
    cursor_secret: str | None = None
    # Poll the table's stream in this process (local mode; production reads it with Lambda).
    change_capture: bool = False
    access_log: bool = True
    git_revision: str = "unknown"
    # The platform's module types (SPEC §7): the file, and what load_settings read from it.
    module_types_file: str = str(module_types.DEFAULT_FILE)
    module_types: ModuleTypes = dataclasses.field(default_factory=module_types.load_default)
    # Points of a session without module results, per module studied at a score of 100 (SPEC §8).
    session_points: int = 10

    @property
    def is_local(self) -> bool:
        return self.env == "local"

    @property
    def jwks_url(self) -> str | None:
        if self.auth_jwks_url is not None or self.auth_issuer is None:
            return self.auth_jwks_url
        return f"{self.auth_issuer}/.well-known/jwks.json"


def _env_name(field: str) -> str:
    return "AWS_REGION" if field == "aws_region" else f"STATS_{field.upper()}"


def _parse_int(raw: str, low: int, high: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"must be between {low} and {high}, got {value}")
    return value


def _parse_seconds(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number of seconds, got {raw!r}") from None
    if not 0 < value <= 3600:
        raise ValueError(f"must be more than 0 and at most 3600 seconds, got {raw!r}")
    return value


def _parse_bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip()
        if value.upper() in choices:
            return value.upper()
        if value in choices:
            return value
        raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")

    return parse


def _parse_redis_url(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"must start with redis://, rediss:// or unix://, got {mask_url(raw)!r}")
    return raw


def _parse_http_url(raw: str) -> str:
    if not raw.startswith(("http://", "https://")):
        raise ValueError(f"must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _parse_text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _parse_pool_id(raw: str) -> str:
    # Cognito's own format, <region>_<id>: the issuer URL is built from it.
    region, underscore, suffix = raw.strip().partition("_")
    if not underscore or not region or not suffix.isalnum():
        raise ValueError(f"must be a user pool id such as us-east-1_AbC123, got {raw!r}")
    return raw.strip()


def _parse_secret(raw: str) -> str:
    # Never echo the value: it is a secret.
    if len(raw.strip()) < 32:
        raise ValueError("must be at least 32 characters (e.g. openssl rand -hex 32)")
    return raw.strip()


def _parse_table(raw: str) -> str:
    # DynamoDB's own naming rule, checked here so a typo fails at start-up.
    name = raw.strip()
    if not 3 <= len(name) <= 255 or not all(ch.isalnum() or ch in "_-." for ch in name):
        raise ValueError(f"must be 3-255 characters of letters, digits, '_', '-' or '.', got {raw!r}")
    return name


_PARSERS: dict[str, Callable[[str], Any]] = {
    "env": _parse_choice(ENVIRONMENTS),
    "host": _parse_text,
    "port": lambda raw: _parse_int(raw, 0, 65535),
    "redis_url": _parse_redis_url,
    "redis_cluster": _parse_bool,
    "dynamodb_endpoint": _parse_http_url,
    "dynamodb_table": _parse_table,
    "aws_region": _parse_text,
    "cache_ttl_seconds": lambda raw: _parse_int(raw, 1, 30 * 86400),
    "cache_max_age_seconds": lambda raw: _parse_int(raw, 1, 30 * 86400),
    "rebuild_lock_seconds": _parse_seconds,
    "redis_timeout_seconds": _parse_seconds,
    "dynamodb_timeout_seconds": _parse_seconds,
    "dynamodb_max_attempts": lambda raw: _parse_int(raw, 1, 10),
    "request_deadline_seconds": _parse_seconds,
    "retry_after_seconds": lambda raw: _parse_int(raw, 1, 3600),
    "shutdown_grace_seconds": _parse_seconds,
    "workers": lambda raw: _parse_int(raw, 1, 64),
    "log_level": _parse_choice(LOG_LEVELS),
    "change_capture": _parse_bool,
    "trust_user_header": _parse_bool,
    "auth_issuer": _parse_http_url,
    "auth_jwks_url": _parse_http_url,
    "auth_client_id": _parse_text,
    "cognito_user_pool_id": _parse_pool_id,
    "cognito_endpoint": _parse_http_url,
    "cursor_secret": _parse_secret,
    "access_log": _parse_bool,
    "git_revision": _parse_text,
    "module_types_file": _parse_text,
    "session_points": lambda raw: _parse_int(raw, 0, 1_000_000),
}


def cognito_issuer(pool_id: str) -> str:
    """The ``iss`` of a Cognito user pool's tokens."""
    return f"https://cognito-idp.{pool_id.partition('_')[0]}.amazonaws.com/{pool_id}"


def mask_url(url: str) -> str:
    """The URL with any password replaced, for logs and error messages."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}{sep}{user}:***@{host}"


def _load_profile(env: str, config_dir: Path) -> dict[str, Any]:
    path = config_dir / f"{env}.toml"
    with path.open("rb") as handle:
        profile = tomllib.load(handle)
    unknown = set(profile) - set(_PARSERS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(sorted(unknown))}")
    return profile


def load_settings(
    environ: Mapping[str, str] | None = None, config_dir: Path = CONFIG_DIR, **overrides: Any
) -> Settings:
    """Settings for ``STATS_ENV``'s profile, then environment variables, then ``overrides``."""
    environ = os.environ if environ is None else environ
    env = cast(str, _convert("env", environ.get("STATS_ENV", "local")))
    values: dict[str, Any] = {"env": env}
    for name, value in _load_profile(env, config_dir).items():
        values[name] = _convert(name, str(value), source=f"{config_dir / env}.toml: {name}")
    for name in _PARSERS:
        raw = environ.get(_env_name(name))
        if name == "aws_region" and not raw:
            raw = environ.get("AWS_DEFAULT_REGION")
        if raw is not None and raw != "":
            values[name] = _convert(name, raw)
    values.update(overrides)
    if "module_types" not in values:
        try:
            values["module_types"] = module_types.load(Path(values.get("module_types_file", module_types.DEFAULT_FILE)))
        except module_types.ModuleTypesError as exc:
            raise ConfigError(str(exc)) from None
    _complete_user_pool(values)
    _check_cluster_url(values)
    if env == "production":
        _require_production_endpoints(values)
    return Settings(**values)


def _convert(name: str, raw: str, source: str | None = None) -> Any:
    try:
        return _PARSERS[name](raw)
    except ValueError as exc:
        raise ConfigError(f"{source or _env_name(name)}: {exc}") from None


def _complete_user_pool(values: dict[str, Any]) -> None:
    pool_id = values.get("cognito_user_pool_id")
    if pool_id is None:
        return
    if values.get("auth_client_id") is None:
        raise ConfigError("STATS_AUTH_CLIENT_ID: required with STATS_COGNITO_USER_POOL_ID (the app client)")
    if values.get("auth_issuer") is None:
        values["auth_issuer"] = cognito_issuer(pool_id)


def _check_cluster_url(values: Mapping[str, Any]) -> None:
    # Every script on a cluster runs on the lean channel, which must understand the URL's options.
    url = values.get("redis_url")
    if not values.get("redis_cluster"):
        return
    if url is None:
        # Local mode would start one redis-server, which a cluster client cannot use.
        raise ConfigError("STATS_REDIS_CLUSTER: names a cluster by STATS_REDIS_URL, which is unset")
    # Imported here: the settings of every other process load without the Redis client.
    from redis.asyncio import Redis  # noqa: PLC0415

    from service.redis.channel import ScriptChannel  # noqa: PLC0415

    if url.startswith("unix://"):
        raise ConfigError("STATS_REDIS_CLUSTER: a Redis Cluster is reached over TCP (redis:// or rediss://)")
    client = Redis.from_url(url)
    unsupported = ScriptChannel.unsupported(client)
    if unsupported is not None:
        raise ConfigError(f"STATS_REDIS_URL: a Redis Cluster's URL may not set {unsupported}")
    if client.connection_pool.connection_kwargs.get("db"):
        raise ConfigError("STATS_REDIS_URL: a Redis Cluster has database 0 only")


def _require_production_endpoints(values: Mapping[str, Any]) -> None:
    # Production never falls back to locally started servers or a default table.
    if values.get("redis_url") is None:
        raise ConfigError("STATS_REDIS_URL: required in production (local mode is refused)")
    if values.get("dynamodb_table") is None:
        raise ConfigError("STATS_DYNAMODB_TABLE: required in production")
    if values.get("aws_region") is None:
        raise ConfigError("AWS_REGION: required in production")
    if values.get("cursor_secret") is None:
        raise ConfigError("STATS_CURSOR_SECRET: required in production (every task must seal cursors alike)")
    if not values.get("trust_user_header"):
        # Without a gateway's header nobody could be authenticated.
        for name in ("auth_issuer", "auth_client_id"):
            if values.get(name) is None:
                raise ConfigError(f"{_env_name(name)}: required in production unless STATS_TRUST_USER_HEADER is true")
