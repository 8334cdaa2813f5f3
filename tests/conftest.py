"""Shared fixtures: generated templates as plain data, read the way any deploy tool reads them."""

from __future__ import annotations

import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from emulator import enable_state_machines, running_emulator
from generator.build import build_all, render_all
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
