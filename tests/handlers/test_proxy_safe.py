"""The handlers keep no session state on their connection (what pins it behind RDS Proxy), and
their statement timeout is in effect from the startup packet: checked on the real PostgreSQL,
in the very session the Lambda entry points used."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from handlers import connect, default, disconnect, runtime
from handlers.db import Database, DatabaseUnavailable
from handlers.settings import DEFAULT_STATEMENT_TIMEOUT_MS, database_settings
from tests.handlers.conftest import TokenMaker, Users
from tests.handlers.events import connect_event, disconnect_event, message_event

CONTEXT = SimpleNamespace(aws_request_id="lambda-req-1")
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]
ROUNDS = 8  # psycopg would prepare a query after its fifth execution (prepare_threshold=5)


def _storm_of_requests(make_token: TokenMaker, users: Users) -> None:
    users.person(1)
    for n in range(ROUNDS):
        cid = f"proxy-{n}"
        assert connect.handler(connect_event(cid), CONTEXT)["statusCode"] == 200
        frame = json.dumps({"type": "authenticate", "token": make_token("user1@example.org")})
        assert default.handler(message_event(cid, frame), CONTEXT)["statusCode"] == 200
        assert default.handler(message_event(cid, json.dumps({"type": "ping"})), CONTEXT)["statusCode"] == 200
        assert disconnect.handler(disconnect_event(cid), CONTEXT)["statusCode"] == 200


def test_no_session_state_after_many_requests(make_token: TokenMaker, users: Users, owner_db: Database) -> None:
    _storm_of_requests(make_token, users)
    db = runtime.store().db  # the container's own connection, as the entry points left it
    assert db.run("SELECT name, statement FROM pg_prepared_statements") == []
    # A SET (or set_config) shows as source 'session'; the startup option as 'client'.
    assert db.run("SELECT name FROM pg_settings WHERE source = 'session'") == []
    assert db.run("SELECT setting::int, source FROM pg_settings WHERE name = 'statement_timeout'") == [
        (DEFAULT_STATEMENT_TIMEOUT_MS, "client")
    ]
    assert db.run("SELECT count(*) FROM pg_listening_channels()") == [(0,)]
    ((pid,),) = db.run("SELECT pg_backend_pid()")
    held = owner_db.run("SELECT locktype FROM pg_locks WHERE pid = %s AND locktype = 'advisory'", (pid,))
    assert held == []


def test_statement_timeout_cancels_without_a_retry(handlers_url: str) -> None:
    settings = replace(database_settings({"DATABASE_URL": handlers_url}), statement_timeout_ms=100)
    db = Database.from_settings(settings)
    try:
        ((pid,),) = db.run("SELECT pg_backend_pid()")
        with pytest.raises(DatabaseUnavailable, match="statement_timeout"):
            db.run("SELECT pg_sleep(2)")
        # The same session answers next: a timeout is not a broken connection to replace.
        assert db.run("SELECT pg_backend_pid(), current_setting('search_path')")[0][0] == pid
    finally:
        db.close()


def test_url_options_are_kept_beside_the_timeout(handlers_url: str) -> None:
    """The test URL carries `-csearch_path=<schema>` in its options: both reach the server."""
    db = Database.from_settings(database_settings({"DATABASE_URL": handlers_url}))
    try:
        schema, timeout = db.run("SELECT current_schema(), current_setting('statement_timeout')")[0]
        assert schema.startswith("cc_test_") and timeout == f"{DEFAULT_STATEMENT_TIMEOUT_MS // 1000}s"
    finally:
        db.close()


def test_zero_sends_no_timeout_so_the_role_setting_rules(handlers_url: str) -> None:
    db = Database.from_settings(replace(database_settings({"DATABASE_URL": handlers_url}), statement_timeout_ms=0))
    try:
        assert db.run("SELECT source FROM pg_settings WHERE name = 'statement_timeout'")[0][0] != "client"
    finally:
        db.close()
