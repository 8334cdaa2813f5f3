"""The schema as a release step (handlers/migrate.py): idempotent, never queueing behind an open
transaction, no table lock when there is nothing to do; and the handlers, running as a role with
DML grants only, never touch the schema and name the migration when the table is not ready."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from handlers import connect, migrate, notify
from handlers.schema import SCHEMA_VERSION
from tests.handlers.events import connect_event
from tests.handlers.test_store import JPA_DDL, scratch_schema

pytestmark = pytest.mark.postgres
NOTHING_TO_DO = {"version": SCHEMA_VERSION, "fromVersion": SCHEMA_VERSION, "changed": False, "steps": []}


@contextmanager
def open_transaction(url: str, statement: str) -> Iterator[None]:
    """Another session (the backend, a DBA) inside a transaction that holds locks on the table."""
    with psycopg.connect(url) as other:
        other.execute(statement.encode())
        try:
            yield
        finally:
            other.rollback()


def test_a_fresh_database_gets_the_table_then_nothing_more(postgres_server: str) -> None:
    with scratch_schema(postgres_server, "cc_migrate_fresh") as conn:
        first = migrate.migrate(conn)
        assert first["fromVersion"] is None and first["steps"][0] == "create the table"
        assert migrate.migrate(conn) == NOTHING_TO_DO


def test_with_nothing_to_do_it_does_not_wait_for_an_open_transaction(owner_url: str) -> None:
    """An uncommitted write holds ROW EXCLUSIVE on the table: any ACCESS EXCLUSIVE (or SHARE, for
    an index) request would wait and hit lock_timeout. With nothing to do there is none."""
    with (
        open_transaction(owner_url, "UPDATE websocket_connections SET last_activity_at = now()"),
        psycopg.connect(owner_url, autocommit=True) as conn,
    ):
        start = time.perf_counter()
        assert migrate.migrate(conn, lock_timeout_ms=200) == NOTHING_TO_DO
        assert time.perf_counter() - start < 1


def test_a_needed_change_gives_up_after_lock_timeout_and_changes_nothing(postgres_server: str) -> None:
    with scratch_schema(postgres_server, "cc_migrate_blocked") as conn:
        conn.execute(JPA_DDL.encode())  # JPA's table: our indexes and version mark still to add
        url = f"{postgres_server}{'&' if '?' in postgres_server else '?'}options=-csearch_path%3Dcc_migrate_blocked"
        with open_transaction(url, "UPDATE websocket_connections SET last_activity_at = now()"):
            start = time.perf_counter()
            with pytest.raises(migrate.MigrationFailed, match=r"lock_timeout = 300 ms.*nothing was changed"):
                migrate.migrate(conn, lock_timeout_ms=300)
            assert time.perf_counter() - start < 2
        assert migrate.migrate(conn)["fromVersion"] == 0  # still unmarked: the failed run left no trace


def test_the_entry_point_migrates_as_the_owner_and_answers_what_it_did(
    owner_url: str, handlers_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", handlers_url)
    monkeypatch.setenv("MIGRATION_DATABASE_URL", owner_url)
    answer = migrate.handler({}, None)
    assert answer == NOTHING_TO_DO and json.loads(json.dumps(answer)) == answer
    assert "lockTimeoutMs" in migrate.handler({"lockTimeoutMs": "soon"}, None)["error"]


def test_the_handlers_role_may_not_migrate_and_is_told_so(
    postgres_server: str, owner_url: str, handlers_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with psycopg.connect(owner_url, autocommit=True) as owner:
        owner.execute("COMMENT ON TABLE websocket_connections IS NULL")  # as if an older release
    try:
        monkeypatch.setenv("DATABASE_URL", handlers_url)
        monkeypatch.delenv("MIGRATION_DATABASE_URL", raising=False)
        answer = migrate.handler({}, None)
        assert "may not change websocket_connections" in answer["error"] and "MIGRATION_DATABASE_" in answer["error"]
    finally:
        with psycopg.connect(owner_url, autocommit=True) as owner:
            assert migrate.migrate(owner)["steps"] == [f"mark schema v{SCHEMA_VERSION}"]


@pytest.mark.usefixtures("lambda_env")
def test_a_cold_start_beside_an_open_transaction_neither_waits_nor_blocks(owner_url: str) -> None:
    """Every deploy makes every container cold; one holding no lock (no DDL) never queues behind
    the backend's open transaction, and so never blocks the backend's readers behind itself."""
    with open_transaction(owner_url, "LOCK TABLE websocket_connections IN ROW EXCLUSIVE MODE"):
        start = time.perf_counter()
        answer = connect.handler(connect_event("cold-1"), None)
        assert answer["statusCode"] == 200 and time.perf_counter() - start < 2
        with psycopg.connect(owner_url, autocommit=True) as backend:  # a plain SELECT is not blocked
            assert backend.execute("SELECT count(*) FROM websocket_connections").fetchone() == (1,)


@pytest.mark.usefixtures("lambda_env")
@pytest.mark.parametrize("table", ["missing", "JPA's, unmigrated"])
def test_without_the_migrated_table_the_handlers_fail_naming_the_migration(
    postgres_server: str, table: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from handlers import runtime

    with scratch_schema(postgres_server, "cc_unmigrated") as conn:
        if table != "missing":
            conn.execute(JPA_DDL.encode())
        monkeypatch.setenv("DATABASE_URL", f"{postgres_server}{'&' if '?' in postgres_server else '?'}"
                                           "options=-csearch_path%3Dcc_unmigrated")  # fmt: skip
        runtime.settings.cache_clear()
        runtime.store.cache_clear()
        with caplog.at_level(logging.ERROR):
            assert connect.handler(connect_event("c1"), None)["statusCode"] == 500
        answer: dict[str, Any] = notify.handler({"recipients": {"all": True},
                                                 "message": {"type": "system-announcement", "title": "t",
                                                             "message": "m"}}, None)  # fmt: skip
        runtime.store().db.close()
        runtime.store.cache_clear()
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'cc_unmigrated'").fetchone()
    assert "run the migration handlers.migrate.handler" in answer["error"]
    assert any("run the migration handlers.migrate.handler" in str(r.__dict__.get("reason")) for r in caplog.records)
    assert tables == ((0,) if table == "missing" else (1,))  # nothing created on the request path
