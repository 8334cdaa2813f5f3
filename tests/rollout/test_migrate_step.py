"""The migrate step, rehearsed for real: the rollout invokes the compute stack's migrate function
(the deployed handlers zip, run by the emulator's Lambda runtime), which brings a real PostgreSQL
database to the handlers' schema version; a second run changes nothing; a database it cannot
reach fails the rollout with the function's own words. Both orchestrators."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

from handlers.schema import SCHEMA_VERSION, installed_version
from rollout import settings
from rollout.aws import Aws
from rollout.stacks import StageFailed
from tests.rollout.conftest import Run

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    """A database of its own (the migrate function connects as its owner)."""
    name = f"cc_migrate_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}".encode())
        admin.execute(f"CREATE DATABASE {name}".encode())
    parts = urlsplit(postgres_server)
    yield f"{parts.scheme}://{parts.netloc}/{name}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


def with_database(env: settings.EnvironmentSettings, emulator: str, url: str) -> settings.EnvironmentSettings:
    """The rehearsal environment with the migrate step on and its database behind a secret."""
    parts = urlsplit(url)
    secret = {
        "host": parts.hostname,
        "port": parts.port or 5432,
        "dbname": parts.path.lstrip("/"),
        "username": parts.username,
        "password": parts.password or "trusted",
    }
    arn = (
        Aws(env.region, endpoint_url=emulator)
        .client("secretsmanager")
        .create_secret(Name="cc/db-owner", SecretString=json.dumps(secret))["ARN"]
    )
    compute = {
        k: v
        for k, v in env.parameters["compute"].items()
        if k not in ("DatabaseHost", "DatabaseName", "DatabaseUser", "DatabaseResourceId")
    }
    compute |= {"DatabaseAuth": "secret", "DatabaseSecretArn": arn, "DatabaseSslMode": "disable"}
    raw = {
        "region": env.region,
        "artifacts_bucket": env.artifacts_bucket,
        "stacks": env.stacks,
        "parameters": {**env.parameters, "compute": compute},
        "migrate": True,
    }
    return settings.validate(env.name, env.path, raw)


@pytest.mark.parametrize("engine_name", ["local", "stepfunctions"])
def test_the_rollout_migrates_the_table_then_changes_nothing(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, database: str, engine_name: str
) -> None:
    env = with_database(env_settings, emulator, database)
    summary, _, _ = rollout(env, engine_name)
    (migrate,) = [s for s in summary["stages"] if s["stage"] == "migrate"]
    assert migrate["action"] == "updated" and migrate["detail"] == f"schema version {SCHEMA_VERSION}, changed"
    with psycopg.connect(database) as connection:
        assert installed_version(connection) == SCHEMA_VERSION
    again, _, _ = rollout(env, engine_name)
    assert [s["action"] for s in again["stages"] if s["stage"] == "migrate"] == ["unchanged"]


def test_a_database_the_function_cannot_reach_fails_with_its_words(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str, database: str
) -> None:
    env = with_database(env_settings, emulator, database.replace(f":{urlsplit(database).port}", ":1"))
    with pytest.raises(
        StageFailed,
        match=r"migrate: arn:aws:lambda:[^ ]+:function:cc-websocket-migrate:live refused: database unavailable",
    ):
        rollout(env)
    stacks = Aws(env.region, endpoint_url=emulator).client("cloudformation").describe_stacks()["Stacks"]
    assert [s["StackName"] for s in stacks] == ["cc-websocket-compute"]  # the API was not deployed
