"""Configuration from the environment, read once per container and checked early.

The names match what the compute template sets (generator/compute.py `_environment`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

ENDPOINT_VARIABLE = "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"
DATABASE_AUTH_METHODS = ("url", "secret", "iam")
MAX_TTL_MINUTES = 120  # API Gateway closes every connection after 2 hours
DEFAULT_JWT_ISSUER = "careconnect"  # JwtTokenProvider's ISSUER
# Every handler statement is a one-row read or write by index: 5 s is far beyond any healthy one,
# and well within the 29 s API Gateway waits, so a stuck statement fails the request, not the Lambda.
DEFAULT_STATEMENT_TIMEOUT_MS = 5000


class ConfigurationError(RuntimeError):
    """The function's environment is missing or has a wrong setting; says which and how to fix."""


@dataclass(frozen=True)
class DatabaseSettings:
    auth: str
    url: str = ""
    secret_arn: str = ""
    host: str = ""
    port: int = 5432
    name: str = ""
    user: str = ""
    sslmode: str = "prefer"
    region: str = ""
    # Sent as a startup option (no SET on the request path); 0 sends none: the role's setting rules.
    statement_timeout_ms: int = DEFAULT_STATEMENT_TIMEOUT_MS
    proxy_host: str = ""  # secret method: RDS Proxy's endpoint instead of the secret's host


@dataclass(frozen=True)
class JwtSettings:
    hs256_secret: str = ""
    hs256_secret_arn: str = ""
    rs256_public_key: str = ""
    issuer: str = ""
    audience: str = ""

    @property
    def configured(self) -> bool:
        return bool(self.hs256_secret or self.hs256_secret_arn or self.rs256_public_key)


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings
    jwt: JwtSettings
    management_endpoint: str
    ttl_minutes: int
    region: str


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number ({low}..{high})") from None
    if not low <= value <= high:
        raise ConfigurationError(f"{name}={value} is out of range: expected {low}..{high}")
    return value


def database_settings(env: Mapping[str, str]) -> DatabaseSettings:
    auth = env.get("DATABASE_AUTH", "") or ("secret" if env.get("DATABASE_SECRET_ARN") else "url")
    if auth not in DATABASE_AUTH_METHODS:
        raise ConfigurationError(
            f"DATABASE_AUTH={auth!r} is not supported: expected one of {', '.join(DATABASE_AUTH_METHODS)}"
        )
    needs = {
        "url": ["DATABASE_URL"],
        "secret": ["DATABASE_SECRET_ARN"],
        "iam": ["DATABASE_HOST", "DATABASE_USER", "DATABASE_NAME"],
    }[auth]
    missing = [name for name in needs if not env.get(name)]
    if missing:
        raise ConfigurationError(f"DATABASE_AUTH={auth} needs {', '.join(missing)} to be set")
    return DatabaseSettings(
        auth=auth,
        url=env.get("DATABASE_URL", ""),
        secret_arn=env.get("DATABASE_SECRET_ARN", ""),
        host=env.get("DATABASE_HOST", ""),
        port=_int(env, "DATABASE_PORT", 5432, 1, 65535),
        name=env.get("DATABASE_NAME", ""),
        user=env.get("DATABASE_USER", ""),
        sslmode=env.get("DATABASE_SSLMODE", "") or "prefer",
        region=env.get("AWS_REGION", ""),
        statement_timeout_ms=_int(env, "DATABASE_STATEMENT_TIMEOUT_MS", DEFAULT_STATEMENT_TIMEOUT_MS, 0, 900_000),
        proxy_host=env.get("DATABASE_PROXY_HOST", ""),
    )


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    return Settings(
        database=database_settings(env),
        jwt=JwtSettings(
            hs256_secret=env.get("JWT_SECRET", ""),
            hs256_secret_arn=env.get("JWT_SECRET_ARN", ""),
            rs256_public_key=env.get("JWT_PUBLIC_KEY", "").replace("\\n", "\n"),
            issuer=env.get("JWT_ISSUER", "") or DEFAULT_JWT_ISSUER,
            audience=env.get("JWT_AUDIENCE", ""),
        ),
        management_endpoint=env.get(ENDPOINT_VARIABLE, "").rstrip("/"),
        ttl_minutes=_int(env, "CONNECTION_TTL_MINUTES", MAX_TTL_MINUTES, 1, MAX_TTL_MINUTES),
        region=env.get("AWS_REGION", "") or env.get("AWS_DEFAULT_REGION", ""),
    )
