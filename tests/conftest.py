"""Shared fixtures: generated templates as plain data, read the way any deploy tool reads them."""

from __future__ import annotations

import os
import re
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
import yaml

from emulator import enable_state_machines, running_emulator
from generator.build import build_all, render_all
from handlers.db import Database
from handlers.migrate import migrate
from tests.handlers.careconnect import USERS_DDL
from tests.postgres import LOCAL_URL, reachable, throwaway_cluster, with_schema

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def rendered() -> dict[str, str]:
    return render_all(build_all(), "yaml")


@pytest.fixture(scope="session")
def templates(rendered: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Every template parsed with a plain YAML loader (long form needs no CloudFormation tags)."""
    return {name.removesuffix(".yaml"): yaml.safe_load(text) for name, text in rendered.items()}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of a real PostgreSQL (see tests/postgres.py for where it comes from)."""
    url = os.environ.get("CC_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if reachable(LOCAL_URL):
        yield LOCAL_URL
        return
    with throwaway_cluster() as cluster:
        if cluster is None:
            message = "no PostgreSQL: set CC_TEST_DATABASE_URL or install the server binaries"
            if os.environ.get("CI"):
                pytest.fail(message)
            pytest.skip(message)
        yield cluster


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A schema of its own for this test session, dropped afterwards."""
    schema = f"cc_test_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}".encode())
    yield with_schema(postgres_server, schema)
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


@pytest.fixture(scope="session")
def emulator_url() -> Iterator[str]:
    with running_emulator() as url:
        yield url


def reset_emulator(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).read()
    enable_state_machines(url)


@pytest.fixture
def emulator(emulator_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean emulated account for each test."""
    reset_emulator(emulator_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "rehearsal")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "rehearsal")
    return emulator_url


# The handlers' database, shared by the handlers' tests and the rollout's (the pre-traffic hook):
# one definition, so one xdist worker running both makes the role once.
README = REPO / "README.md"
HANDLERS_ROLE = "cc_websocket_handlers"  # the name README's GRANTs use


def documented_grants(role: str, as_role: str) -> list[str]:
    """README's GRANT statements for `role`, addressed to `as_role`: the tests run with exactly them."""
    grants = re.findall(rf"^(GRANT [^;]+ TO {role});", README.read_text(), flags=re.MULTILINE)
    assert grants, f"README lists no GRANT ... TO {role};"
    return [g.removesuffix(role) + as_role for g in grants]


@pytest.fixture(scope="session")
def owner_url(postgres_url: str) -> str:
    """The table's owner, as the release's migration step connects: the table migrated, and the
    backend's `users` table created."""
    with psycopg.connect(postgres_url, autocommit=True) as owner:
        migrate(owner)
        owner.execute(USERS_DDL.encode())
    return postgres_url


@pytest.fixture(scope="session")
def handlers_url(owner_url: str) -> Iterator[str]:
    """A role of its own that owns nothing and holds README's grants for the handlers' role, as
    in production: every handler test runs as it."""
    role, password = f"cc_handlers_{os.getpid()}", secrets.token_hex(12)
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute(f"DROP ROLE IF EXISTS {role}".encode())
        owner.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'".encode())
        owner.execute(
            f"DO $$ BEGIN EXECUTE format('GRANT USAGE ON SCHEMA %I TO {role}', current_schema()); END $$".encode()
        )
        for grant in documented_grants(HANDLERS_ROLE, role):
            owner.execute(grant.encode())
    parts = urlsplit(owner_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    yield urlunsplit(parts._replace(netloc=f"{role}:{quote(password)}@{host}"))
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute(f"DROP OWNED BY {role}; DROP ROLE {role}".encode())


@pytest.fixture
def owner_db(owner_url: str) -> Iterator[Database]:
    """The owner's connection, for what tests set up and the handlers may not do."""
    db = Database(lambda: psycopg.connect(owner_url, autocommit=True))
    db.run("TRUNCATE websocket_connections, users RESTART IDENTITY")
    yield db
    db.close()
