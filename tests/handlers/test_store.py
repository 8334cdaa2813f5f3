"""The connection store against the real PostgreSQL: schema compatibility with the Java
backend's table, its queries, reconnecting, and failing cleanly when the database is down."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from handlers.db import Database, DatabaseUnavailable
from handlers.migrate import migrate
from handlers.store import ConnectionStore
from handlers.users import User
from tests.handlers.conftest import Users, row, table

ENDPOINT = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod"
# The Java entity's columns (careconnect-system.md): name -> (type, nullable)
JAVA_COLUMNS = {
    "id": ("bigint", "NO"),
    "connection_id": ("character varying(128)", "NO"),
    "user_email": ("character varying(255)", "YES"),
    "user_id": ("bigint", "YES"),
    "subscription_type": ("character varying(50)", "NO"),
    "connection_type": ("character varying(20)", "NO"),
    "api_gateway_endpoint": ("character varying(512)", "YES"),
    "metadata": ("text", "YES"),
    "connected_at": ("timestamp without time zone", "NO"),
    "last_activity_at": ("timestamp without time zone", "YES"),
    "expires_at": ("timestamp without time zone", "NO"),
    "is_active": ("boolean", "NO"),
}
JPA_INDEXES = {"idx_connection_id": "connection_id", "idx_user_email": "user_email",
               "idx_subscription_type": "subscription_type", "idx_expires_at": "expires_at"}  # fmt: skip


def indexes(run: Callable[[str], Any]) -> dict[str, str]:
    """Index name -> indexed column, for the non-unique indexes of the table."""
    rows = run(
        """SELECT c.relname, a.attname FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
           WHERE t.relname = 'websocket_connections' AND t.relnamespace = current_schema()::regnamespace
             AND NOT i.indisprimary AND NOT i.indisunique""")  # fmt: skip
    return dict(rows)


def register(store: ConnectionStore, cid: str, **kw: object) -> None:
    args: dict[str, object] = {"subscription_type": "notifications", "email": None, "endpoint": ENDPOINT,
                               "ttl_minutes": 120, "metadata": {"authenticated": False}}  # fmt: skip
    args.update(kw)
    store.register(cid, **args)  # type: ignore[arg-type]


@pytest.mark.postgres
def test_schema_matches_the_java_entity(store: ConnectionStore) -> None:
    columns = store.db.run(
        """SELECT column_name,
                  CASE WHEN character_maximum_length IS NOT NULL
                       THEN data_type || '(' || character_maximum_length || ')' ELSE data_type END,
                  is_nullable, column_default
           FROM information_schema.columns
           WHERE table_name = 'websocket_connections' AND table_schema = current_schema()"""
    )
    found = {name: (kind, nullable) for name, kind, nullable, _ in columns}
    assert found == JAVA_COLUMNS
    defaults = {name: default for name, _, _, default in columns}
    assert defaults["connection_type"] is None and defaults["is_active"] is None  # none in JPA either
    # JPA's index names (a table JPA created gets no duplicates), plus ours on user_id.
    assert indexes(store.db.run) == JPA_INDEXES | {"idx_websocket_user_id": "user_id"}


@pytest.mark.postgres
def test_the_migration_is_idempotent_and_keeps_rows(store: ConnectionStore, owner_url: str) -> None:
    register(store, "c1")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        assert migrate(conn) == {"version": 2, "fromVersion": 2, "changed": False, "steps": []}
    assert [r["connection_id"] for r in table(store)] == ["c1"]


@pytest.mark.postgres
def test_register_writes_a_row_the_java_backend_understands(store: ConnectionStore) -> None:
    register(store, "c1", subscription_type="email-verification", email="Jane.Doe@Example.ORG")
    r = row(store, "c1")
    assert r["user_email"] is None  # a typed address is a subscription, no identity
    assert r["subscription_type"] == "email-verification"
    assert r["connection_type"] == "aws" and r["api_gateway_endpoint"] == ENDPOINT
    assert r["is_active"] is True and r["last_activity_at"] == r["connected_at"]  # set at connect, as Java does
    assert r["expires_at"] - r["connected_at"] == timedelta(minutes=120)
    assert json.loads(r["metadata"]) == {"authenticated": False, "verifyEmail": "Jane.Doe@Example.ORG"}
    assert store.email_verification_subscribers("jane.doe@example.org") == ["c1"]


@pytest.mark.postgres
def test_register_again_refreshes_the_row(store: ConnectionStore) -> None:
    register(store, "c1", email="a@example.org")
    store.deactivate("c1")
    register(store, "c1", ttl_minutes=30)
    (r,) = table(store)
    assert r["is_active"] is True and r["user_email"] is None
    assert r["expires_at"] - r["connected_at"] == timedelta(minutes=30)


@pytest.mark.postgres
def test_deactivate_is_a_soft_delete_and_idempotent(store: ConnectionStore) -> None:
    register(store, "c1")
    assert store.deactivate("c1") is True
    assert store.deactivate("c1") is False
    assert store.deactivate("never-seen") is False
    assert row(store, "c1")["is_active"] is False


@pytest.mark.postgres
def test_touch_reports_the_first_message_once(store: ConnectionStore) -> None:
    register(store, "c1")
    first = store.touch("c1")
    second = store.touch("c1")
    assert first is not None and first.first_message is True
    assert second is not None and second.first_message is False
    assert row(store, "c1")["last_activity_at"] >= row(store, "c1")["connected_at"]
    store.deactivate("c1")
    assert store.touch("c1") is None
    assert store.touch("unknown") is None


@pytest.mark.postgres
def test_authenticate_and_lookup_by_user(store: ConnectionStore, users: Users) -> None:
    for cid in ("c1", "c2", "c3"):
        register(store, cid)
    pat = User(users.add("P@Example.org", "PATIENT", "Pat"), "Pat", "P@Example.org", "PATIENT", "ACTIVE")
    quinn = User(users.add("q@example.org", "CAREGIVER"), None, "q@example.org", "CAREGIVER", "ACTIVE")
    later = time.time() + 3600
    store.authenticate("c1", pat, later)
    store.authenticate("c2", pat, later)
    store.authenticate("c3", quinn, later)
    store.deactivate("c2")
    assert store.active_connections_of_user(pat.id) == ["c1"]
    r = row(store, "c1")
    assert (r["user_id"], r["user_email"], r["subscription_type"]) == (pat.id, "P@Example.org", "authenticated")
    assert json.loads(r["metadata"]) == {"authenticated": True, "role": "PATIENT", "name": "Pat", "exp": later}
    touched = store.touch("c1")
    assert touched is not None and touched.authenticated and touched.display_name == "Pat"
    assert store.recipients(roles=["CAREGIVER"]) == ["c3"]
    # The email as the users row stores it, matched ignoring case.
    assert store.recipients(emails=["p@EXAMPLE.org"]) == ["c1"] and store.recipients(everyone=True) == ["c1", "c3"]


@pytest.mark.postgres
def test_cleanup_deactivates_expired_and_deletes_old_inactive(store: ConnectionStore) -> None:
    for cid in ("fresh", "expired", "old-inactive", "recent-inactive"):
        register(store, cid)
    store.db.run(
        "UPDATE websocket_connections SET expires_at = connected_at - interval '1 minute' WHERE connection_id = 'expired'"
    )
    # Retention counts from connected_at, as the backend's deleteInactiveConnectionsOlderThan does.
    store.db.run("""UPDATE websocket_connections SET is_active = false,
                    connected_at = connected_at - interval '8 days' WHERE connection_id = 'old-inactive'""")
    store.db.run("""UPDATE websocket_connections SET is_active = false,
                    connected_at = connected_at - interval '6 days' WHERE connection_id = 'recent-inactive'""")
    assert store.deactivate_expired() == 1
    assert store.delete_inactive_older_than() == 1
    state = {r["connection_id"]: r["is_active"] for r in table(store)}
    assert state == {"fresh": True, "expired": False, "recent-inactive": False}


@pytest.mark.postgres
def test_sql_looking_values_are_data(store: ConnectionStore) -> None:
    evil = "x'); DROP TABLE websocket_connections; --"
    register(store, evil, email="o'brien@example.org")
    store.subscribe_updates(evil, ["'; DELETE FROM websocket_connections; --"])
    assert [r["connection_id"] for r in table(store)] == [evil]
    assert json.loads(row(store, evil)["metadata"])["updateTypes"] == ["'; DELETE FROM websocket_connections; --"]


@pytest.mark.postgres
def test_a_broken_connection_is_reopened(database: Database, postgres_server: str, store: ConnectionStore) -> None:
    register(store, "c1")
    (pid,) = database.run("SELECT pg_backend_pid()")[0]
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    assert store.deactivate("c1") is True  # succeeded on a new connection
    assert database.run("SELECT pg_backend_pid()")[0][0] != pid


def test_database_down_is_reported_not_half_done() -> None:
    def refuse() -> psycopg.Connection:  # type: ignore[type-arg]
        return psycopg.connect("postgresql://postgres@127.0.0.1:1/none", connect_timeout=2)

    store = ConnectionStore(Database(refuse))
    with pytest.raises(DatabaseUnavailable, match="cannot connect to PostgreSQL"):
        register(store, "c1")


EARLIER_SCHEMA = (Path(__file__).parent / "fixtures" / "schema_before_jpa_parity.sql").read_text()


@contextmanager
def scratch_schema(server: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection working in a schema of its own, dropped afterwards."""
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE; CREATE SCHEMA {schema}".encode())
    try:
        with psycopg.connect(server, autocommit=True, options=f"-csearch_path={schema}") as conn:
            yield conn
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE".encode())


@pytest.mark.postgres
def test_a_table_from_the_earlier_schema_is_migrated_in_place(postgres_server: str) -> None:
    """From the state the earlier schema.sql left (nullable columns, NULLs in them, its index
    names), the current schema fills the NULLs, adds NOT NULL, renames the indexes to JPA's,
    keeps every row, and is a no-op the second time."""
    with scratch_schema(postgres_server, "cc_migration_test") as conn:
        conn.execute(EARLIER_SCHEMA.encode())
        conn.execute("""INSERT INTO websocket_connections (connection_id, subscription_type, connected_at, expires_at,
                            connection_type, is_active) VALUES
                            ('kept', 'notifications', now(), now() + interval '1 hour', 'aws', TRUE),
                            ('null-type', 'notifications', now(), now() + interval '1 hour', NULL, TRUE),
                            ('null-active', 'notifications', now(), now() + interval '1 hour', 'aws', NULL)""")
        assert migrate(conn)["fromVersion"] == 0  # a table without our version mark
        assert migrate(conn)["changed"] is False  # idempotent
        rows = dict(
            conn.execute(
                "SELECT connection_id, connection_type || '/' || is_active::text FROM websocket_connections"
            ).fetchall()
        )
        names = indexes(lambda sql: conn.execute(sql.encode()).fetchall())
        nullable = dict(
            conn.execute("""SELECT column_name, is_nullable FROM information_schema.columns
                WHERE table_schema = current_schema() AND table_name = 'websocket_connections'
                  AND column_name IN ('connection_type', 'is_active')""").fetchall()
        )
    assert rows == {"kept": "aws/true", "null-type": "aws/true", "null-active": "aws/false"}
    assert nullable == {"connection_type": "NO", "is_active": "NO"}
    assert names == JPA_INDEXES | {"idx_websocket_user_id": "user_id"}


@pytest.mark.postgres
def test_a_table_jpa_created_gets_no_duplicate_indexes(postgres_server: str) -> None:
    with scratch_schema(postgres_server, "cc_jpa_table_test") as conn:
        conn.execute(JPA_DDL.encode())
        migrate(conn)
        names = indexes(lambda sql: conn.execute(sql.encode()).fetchall())
    assert names == JPA_INDEXES | {"idx_websocket_user_id": "user_id"}


# What Hibernate 6 creates from the entity WebSocketConnection (ddl-auto=update in development).
JPA_DDL = """
CREATE TABLE websocket_connections (
    id bigint GENERATED BY DEFAULT AS IDENTITY, api_gateway_endpoint varchar(512), connected_at timestamp(6) NOT NULL,
    connection_id varchar(128) NOT NULL, connection_type varchar(20) NOT NULL, expires_at timestamp(6) NOT NULL,
    is_active boolean NOT NULL, last_activity_at timestamp(6), metadata TEXT, subscription_type varchar(50) NOT NULL,
    user_email varchar(255), user_id bigint, PRIMARY KEY (id), CONSTRAINT uk_connection_id UNIQUE (connection_id));
CREATE INDEX idx_connection_id ON websocket_connections (connection_id);
CREATE INDEX idx_user_email ON websocket_connections (user_email);
CREATE INDEX idx_subscription_type ON websocket_connections (subscription_type);
CREATE INDEX idx_expires_at ON websocket_connections (expires_at);
"""


@pytest.mark.postgres
def test_sixteen_threads_deactivate_while_the_connection_is_reopened(
    database: Database, postgres_server: str, store: ConnectionStore
) -> None:
    """Fan-out threads share the container's Database: after RDS drops the connection, all of
    them still get their statement through, each on the one fresh connection."""
    from concurrent.futures import ThreadPoolExecutor

    ids = [f"c{i}" for i in range(16)]
    for _ in range(10):  # a race: several rounds, so a missing lock shows
        for cid in ids:
            register(store, cid)
        (pid,) = database.run("SELECT pg_backend_pid()")[0]
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with ThreadPoolExecutor(max_workers=16) as pool:
            assert list(pool.map(store.deactivate, ids)) == [True] * 16
        assert {r["connection_id"]: r["is_active"] for r in table(store)} == dict.fromkeys(ids, False)
    assert database.run("SELECT count(*) FROM pg_stat_activity WHERE pid = pg_backend_pid()")[0][0] == 1
