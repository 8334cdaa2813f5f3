"""Configuration: the three database methods the compute template offers, URLs in the forms the
Java backend uses, and clear errors for wrong settings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest

from handlers.db import Database, connection_arguments, libpq_url
from handlers.settings import ConfigurationError, DatabaseSettings, database_settings, load


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db:5432/cc", "postgresql://u:p@db:5432/cc"),
        ("postgres://u@db/cc", "postgresql://u@db/cc"),
        ("jdbc:postgresql://db.internal:5432/careconnect?user=app&password=s3cr%40t&ssl=true",
         "postgresql://db.internal:5432/careconnect?user=app&password=s3cr%40t&sslmode=require"),
        ("jdbc:postgresql://db/cc?currentSchema=care&loginTimeout=10",
         "postgresql://db/cc?options=-csearch_path%3Dcare"),
    ],
)  # fmt: skip
def test_urls_in_every_form_the_backend_uses(url: str, expected: str) -> None:
    assert libpq_url(url) == expected


@pytest.mark.parametrize("url", ["mysql://db/cc", "jdbc:mysql://db/cc", "db:5432/cc", "postgresql://"])
def test_other_urls_are_refused_with_the_expected_form(url: str) -> None:
    with pytest.raises(ConfigurationError, match="postgresql://user:password@host:5432/db"):
        libpq_url(url)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"DATABASE_AUTH": "kerberos"},
            "DATABASE_AUTH='kerberos' is not supported: expected one of url, secret, iam",
        ),
        ({"DATABASE_AUTH": "url"}, "DATABASE_AUTH=url needs DATABASE_URL"),
        (
            {"DATABASE_AUTH": "iam", "DATABASE_HOST": "h"},
            "DATABASE_AUTH=iam needs DATABASE_USER, DATABASE_NAME",
        ),
        (
            {"DATABASE_URL": "postgresql://x/y", "CONNECTION_TTL_MINUTES": "240"},
            "CONNECTION_TTL_MINUTES=240 is out of range",
        ),
        (
            {"DATABASE_URL": "postgresql://x/y", "DATABASE_PORT": "five"},
            "DATABASE_PORT='five' is not a whole number",
        ),
    ],
)
def test_wrong_settings_say_what_to_fix(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        load(env)
    assert message in str(raised.value)


def test_defaults_and_endpoint() -> None:
    settings = load(
        {
            "DATABASE_URL": "postgresql://x/y",
            "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": "https://a/prod/",
        }
    )
    assert settings.database.auth == "url" and settings.ttl_minutes == 120
    assert settings.management_endpoint == "https://a/prod"
    assert not settings.jwt.configured
    assert database_settings({"DATABASE_SECRET_ARN": "arn:x"}).auth == "secret"


@pytest.mark.postgres
def test_secret_method_reads_the_secret_and_connects(postgres_server: str, owner_url: str, moto_endpoint: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from handlers import aws

    monkeypatch.setenv("PGOPTIONS", parse_qs(urlsplit(owner_url).query)["options"][0])  # the migrated schema

    for name, value in {"AWS_ENDPOINT_URL": moto_endpoint, "AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t",
                        "AWS_DEFAULT_REGION": "eu-west-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    aws._client.cache_clear()
    parts = urlsplit(postgres_server)
    secret = {"engine": "postgres", "host": parts.hostname, "port": parts.port or 5432,
              "username": parts.username, "password": parts.password or "", "dbname": parts.path.lstrip("/")}  # fmt: skip
    arn = boto3.client("secretsmanager").create_secret(Name="cc/db-test", SecretString=json.dumps(secret))["ARN"]
    try:
        db = Database.from_settings(DatabaseSettings(auth="secret", secret_arn=arn, sslmode="prefer"))
        assert db.run("SELECT current_database(), current_user") == [(secret["dbname"], secret["username"])]
        db.close()
    finally:
        boto3.client("secretsmanager").delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
        aws._client.cache_clear()


def test_secret_without_the_expected_keys_is_explained() -> None:
    settings = DatabaseSettings(auth="secret", secret_arn="arn:x")
    with pytest.raises(ConfigurationError, match="JSON with host, port, dbname, username and password"):
        connection_arguments(settings, secret_reader=lambda _arn: json.dumps({"host": "h"}))


def test_iam_method_uses_a_fresh_token_over_tls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = DatabaseSettings(auth="iam", host="db.cluster.eu-west-1.rds.amazonaws.com", port=5432,
                                name="careconnect", user="ws_app", sslmode="prefer", region="eu-west-1")  # fmt: skip
    args: dict[str, Any] = connection_arguments(settings)
    assert (args["host"], args["user"], args["dbname"], args["sslmode"]) == (
        settings.host,
        "ws_app",
        "careconnect",
        "require",
    )
    assert "Action=connect" in args["password"] and "DBUser=ws_app" in args["password"]


def test_hs256_key_is_read_once_from_its_secret_and_decoded() -> None:
    from handlers.auth import TokenVerifier
    from handlers.settings import JwtSettings
    from tests.handlers.careconnect import BackendSecret, mint

    secret = BackendSecret.generate()
    reads: list[str] = []
    verifier = TokenVerifier(JwtSettings(hs256_secret_arn="arn:jwt", issuer="careconnect"),
                             secret_reader=lambda arn: reads.append(arn) or secret.text)  # fmt: skip
    token = mint(secret.key, "pat@example.org", "PATIENT")
    assert verifier.claims(token)["sub"] == "pat@example.org"
    assert verifier.claims(token)["role"] == "PATIENT"
    assert reads == ["arn:jwt"]


@pytest.mark.parametrize(("text", "problem"), [
    ("not base64 at all!", "is not base64"),
    ("c2hvcnQ=", "decodes to 5 bytes"),
])  # fmt: skip
def test_a_jwt_secret_the_backend_could_not_use_is_explained(text: str, problem: str) -> None:
    from handlers.auth import TokenVerifier
    from handlers.settings import ConfigurationError, JwtSettings

    verifier = TokenVerifier(JwtSettings(hs256_secret=text, issuer="careconnect"))
    with pytest.raises(ConfigurationError, match=problem):
        verifier.claims("a.b.c")


def test_the_issuer_defaults_to_the_backends() -> None:
    from handlers.settings import load

    env = {"DATABASE_URL": "postgresql://u@h/d", "JWT_SECRET": "x"}
    assert load(env).jwt.issuer == "careconnect"
    assert load({**env, "JWT_ISSUER": "other"}).jwt.issuer == "other"


def test_the_secret_method_through_rds_proxy_connects_to_the_proxy_with_the_secrets_user() -> None:
    settings = database_settings(
        {"DATABASE_SECRET_ARN": "arn:x", "DATABASE_PROXY_HOST": "cc.proxy-abc.rds.amazonaws.com"}
    )
    secret = {"host": "cc-db.abc.rds.amazonaws.com", "port": 5432, "dbname": "cc", "username": "u", "password": "p"}
    args = connection_arguments(settings, secret_reader=lambda _arn: json.dumps(secret))
    assert (args["host"], args["user"], args["password"]) == ("cc.proxy-abc.rds.amazonaws.com", "u", "p")
    assert args["prepare_threshold"] is None and "statement_timeout=5000" in args["options"]
