"""The connection store against the real PostgreSQL: schema compatibility with the Java
backend's table, its queries, reconnecting, and failing cleanly when the database is down."""

from __future__ import annotations

import json
from datetime import timedelta

import psycopg
import pytest

from handlers.db import Database, DatabaseUnavailable, schema_sql
from handlers.store import ConnectionStore
from tests.handlers.conftest import row, table

ENDPOINT = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod"
# The Java entity's columns (careconnect-system.md): name -> (type, nullable)
JAVA_COLUMNS = {
    "id": ("bigint", "NO"),
    "connection_id": ("character varying(128)", "NO"),
    "user_email": ("character varying(255)", "YES"),
    "user_id": ("bigint", "YES"),
    "subscription_type": ("character varying(50)", "NO"),
    "connection_type": ("character varying(20)", "YES"),
    "api_gateway_endpoint": ("character varying(512)", "YES"),
    "metadata": ("text", "YES"),
    "connected_at": ("timestamp without time zone", "NO"),
    "last_activity_at": ("timestamp without time zone", "YES"),
    "expires_at": ("timestamp without time zone", "NO"),
    "is_active": ("boolean", "YES"),
}


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
    assert "local" in defaults["connection_type"] and defaults["is_active"] == "true"
    indexed = {r[0] for r in store.db.run(
        """SELECT a.attname FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid
           JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY(i.indkey)
           WHERE t.relname = 'websocket_connections' AND t.relnamespace = current_schema()::regnamespace""")}  # fmt: skip
    assert {"connection_id", "user_email", "subscription_type", "expires_at"} <= indexed


@pytest.mark.postgres
def test_schema_creation_is_idempotent_and_keeps_rows(
    store: ConnectionStore, postgres_url: str
) -> None:
    register(store, "c1")
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(schema_sql().encode())
        conn.execute(schema_sql().encode())
    assert [r["connection_id"] for r in table(store)] == ["c1"]


@pytest.mark.postgres
def test_register_writes_a_row_the_java_backend_understands(store: ConnectionStore) -> None:
    register(store, "c1", subscription_type="email-verification", email="Jane.Doe@Example.ORG")
    r = row(store, "c1")
    assert r["user_email"] == "jane.doe@example.org"
    assert r["subscription_type"] == "email-verification"
    assert r["connection_type"] == "aws" and r["api_gateway_endpoint"] == ENDPOINT
    assert r["is_active"] is True and r["last_activity_at"] is None
    assert r["expires_at"] - r["connected_at"] == timedelta(minutes=120)
    assert json.loads(r["metadata"]) == {"authenticated": False}
    # The Java backend's queries, as it runs them:
    found = store.db.run("SELECT connection_id FROM websocket_connections WHERE user_email = %s AND is_active = true",
                         ("jane.doe@example.org",))  # fmt: skip
    assert found == [("c1",)]


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
    assert row(store, "c1")["last_activity_at"] is not None
    store.deactivate("c1")
    assert store.touch("c1") is None
    assert store.touch("unknown") is None


@pytest.mark.postgres
def test_authenticate_and_lookup_by_user(store: ConnectionStore) -> None:
    register(store, "c1")
    register(store, "c2")
    register(store, "c3")
    store.authenticate("c1", user_id=7, email="P@Example.org", role="PATIENT")
    store.authenticate("c2", user_id=7, email="p@example.org", role="PATIENT")
    store.authenticate("c3", user_id=8, email="q@example.org", role="CAREGIVER")
    store.deactivate("c2")
    assert store.active_connections_of_user(7) == ["c1"]
    r = row(store, "c1")
    assert (r["user_id"], r["user_email"], r["subscription_type"]) == (
        7,
        "p@example.org",
        "authenticated",
    )
    assert json.loads(r["metadata"]) == {"authenticated": True, "role": "PATIENT"}
    touched = store.touch("c1")
    assert touched is not None and touched.authenticated


@pytest.mark.postgres
def test_cleanup_deactivates_expired_and_deletes_old_inactive(store: ConnectionStore) -> None:
    for cid in ("fresh", "expired", "old-inactive", "recent-inactive"):
        register(store, cid)
    store.db.run(
        "UPDATE websocket_connections SET expires_at = connected_at - interval '1 minute' WHERE connection_id = 'expired'"
    )
    store.db.run("""UPDATE websocket_connections SET is_active = false,
                    last_activity_at = connected_at - interval '8 days' WHERE connection_id = 'old-inactive'""")
    store.db.run("""UPDATE websocket_connections SET is_active = false,
                    last_activity_at = connected_at - interval '6 days' WHERE connection_id = 'recent-inactive'""")
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
    assert json.loads(row(store, evil)["metadata"])["updateTypes"] == [
        "'; DELETE FROM websocket_connections; --"
    ]


@pytest.mark.postgres
def test_a_broken_connection_is_reopened(
    database: Database, postgres_server: str, store: ConnectionStore
) -> None:
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
