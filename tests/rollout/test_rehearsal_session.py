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

from rollout import cli, engine, package, rehearsal, session
from tests.rollout.test_cli import cached_package  # noqa: F401  (a fixture)


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[package.Target, package.Artifact]:
    return {}


@pytest.fixture
def built_for_each_target(
    monkeypatch: pytest.MonkeyPatch, packages: dict[package.Target, package.Artifact], tmp_path: Path
) -> None:
    """The zip for the target the rollout asks for (the session's: this machine's), built once."""
    original = engine.Options.__init__

    def build(target: package.Target, project: Any) -> package.Artifact:
        if target not in packages:
            packages[target] = package.build(target, tmp_path / "lambda", project=project)
        return packages[target]

    def init(self: engine.Options, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.build_package = build

    monkeypatch.setattr(engine.Options, "__init__", init)


@pytest.mark.postgres
@pytest.mark.parametrize("engine_name", ["local", pytest.param("stepfunctions", marks=pytest.mark.slow)])
@pytest.mark.usefixtures("built_for_each_target")
def test_the_rehearsal_proves_a_session_on_postgresql(
    postgres_server: str, engine_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["rehearse", "--engine", engine_name, "--poll-seconds", "0", "--database-url", postgres_server]
    assert cli.main(arguments) == 0
    text = capsys.readouterr().out
    assert "proven: a session through ws://127.0.0.1:" in text
    assert f"authenticated as {session.EMAIL} (a backend-minted token), heartbeat answered" in text
    assert "disconnected (its row inactive in PostgreSQL)" in text
    assert "migrate   updated" in text  # its throwaway database got the handlers' schema from the release step


@pytest.mark.usefixtures("cached_package")
def test_without_a_database_the_session_is_not_proven(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CC_REHEARSAL_DATABASE_URL", raising=False)
    assert cli.main(["rehearse", "--poll-seconds", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proof"]["session"] == rehearsal.NO_DATABASE
