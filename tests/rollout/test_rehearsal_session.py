"""The rehearsal proves a session through what it deployed (rollout/session.py): a client on the
emulated stage authenticates with a backend-minted token, exchanges a message, receives a push
sent by the deployed notify function and disconnects, the deployed functions keeping its row in
a real PostgreSQL. Both orchestrators; without a database the summary says the session is not
proven."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rollout import cli, package, rehearsal, session
from rollout.factory import Factory
from tests.rollout.test_cli import cached_package  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def packages() -> dict[package.Target, package.Artifact]:
    return {}


@pytest.fixture
def built_for_each_target(packages: dict[package.Target, package.Artifact], tmp_path: Path) -> Factory:
    """The zip for the target the rollout asks for (the session's: this machine's), built once."""

    def build(target: package.Target, project: Any) -> package.Artifact:
        if target not in packages:
            packages[target] = package.build(target, tmp_path / "lambda", project=project)
        return packages[target]

    return Factory(build_package=build, role_settle_seconds=0)


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
def test_the_rehearsal_proves_a_session_on_postgresql(
    postgres_server: str, engine_name: str, built_for_each_target: Factory, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["rehearse", "--engine", engine_name, "--poll-seconds", "0", "--database-url", postgres_server]
    assert cli.main(arguments, built_for_each_target) == 0
    text = capsys.readouterr().out
    assert "proven: a session through ws://127.0.0.1:" in text
    assert f"authenticated as {session.EMAIL} (a backend-minted token), heartbeat answered" in text
    assert "disconnected (its row inactive in PostgreSQL)" in text
    assert "migrate   updated" in text  # its throwaway database got the handlers' schema from the release step


def test_without_a_database_the_session_is_not_proven(
    cached_package: Factory,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("CC_REHEARSAL_DATABASE_URL", raising=False)
    assert cli.main(["rehearse", "--poll-seconds", "0", "--json"], cached_package) == 0
    assert json.loads(capsys.readouterr().out)["proof"]["session"] == rehearsal.NO_DATABASE
