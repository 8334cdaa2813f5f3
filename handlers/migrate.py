"""`handlers.migrate.handler`: the release step that brings `websocket_connections` to the version
the handlers need (handlers/schema.py). Never on the request path: the rollout invokes it before
the new handler code takes traffic, and the handlers only check the version.

Idempotent. One transaction under an advisory lock (two runs never interleave), with
`lock_timeout` so it never queues for long behind an open transaction (queued DDL would block
every reader behind it). Each step first reads the catalog and runs only when needed, so a run
with nothing to do takes no lock on the table beyond reading the catalog. It connects as the
table's owner: `MIGRATION_DATABASE_URL`, `MIGRATION_DATABASE_SECRET_ARN` or
`MIGRATION_DATABASE_USER` replace the handlers' `DATABASE_*` (which hold DML grants only).

Event: `{}` (optionally `{"lockTimeoutMs": 5000}`, 100..60000). Answer: `{"version": 2,
"fromVersion": 1, "changed": true, "steps": ["..."]}`, or `{"error": "..."}` with nothing changed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from handlers import db
from handlers.entry import invoke, logger
from handlers.schema import MARKER, SCHEMA_VERSION, TABLE, installed_version
from handlers.settings import ConfigurationError, database_settings

DEFAULT_LOCK_TIMEOUT_MS = 5000
MIGRATION_LOCK_KEY = 0x63635F7773  # "cc_ws": one migration at a time
# Does this column have the property? (FALSE when there is no such column)
_COLUMN_HAS = f"""SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema()
                  AND table_name = '{TABLE}' AND column_name = %s AND {{}})"""


@dataclass(frozen=True)
class Step:
    """One change: `needed` is a catalog query answering a boolean; `apply` is the DDL."""

    name: str
    needed: str
    apply: str
    params: tuple[str, ...] = ()


def _not_null(column: str, fill: str) -> Step:
    # A NULL is_active already counted as inactive in the backend's queries (is_active = true).
    return Step(
        f"{column}: fill NULLs with {fill}, NOT NULL",
        _COLUMN_HAS.format("is_nullable = 'YES'"),
        f"UPDATE {TABLE} SET {column} = {fill} WHERE {column} IS NULL; "
        f"ALTER TABLE {TABLE} ALTER COLUMN {column} SET NOT NULL",
        (column,),
    )


def _no_default(column: str) -> Step:
    return Step(
        f"{column}: drop the default (JPA has none)",
        _COLUMN_HAS.format("column_default IS NOT NULL"),
        f"ALTER TABLE {TABLE} ALTER COLUMN {column} DROP DEFAULT",
        (column,),
    )


def _renamed(old: str, new: str) -> Step:
    """This project's earlier index names become JPA's (dropped when JPA's already exists)."""
    return Step(
        f"index {old} -> {new}",
        "SELECT to_regclass(%s) IS NOT NULL",
        f"DO $$ BEGIN IF to_regclass('{new}') IS NULL THEN ALTER INDEX {old} RENAME TO {new}; "
        f"ELSE DROP INDEX {old}; END IF; END $$",
        (old,),
    )


def _index(name: str, expression: str) -> Step:
    return Step(
        f"index {name}",
        "SELECT to_regclass(%s) IS NULL",
        f"CREATE INDEX {name} ON {TABLE} ({expression})",
        (name,),
    )


STEPS = (
    Step("create the table", "SELECT to_regclass(%s) IS NULL", db.schema_sql(), (TABLE,)),
    _not_null("connection_type", "'aws'"),
    _not_null("is_active", "FALSE"),
    _no_default("connection_type"),
    _no_default("is_active"),
    *(_renamed(f"idx_websocket_{c}", f"idx_{c}") for c in ("connection_id", "user_email", "subscription_type",
                                                          "expires_at")),
    *(_index(f"idx_{c}", c) for c in ("connection_id", "user_email", "subscription_type", "expires_at")),
    _index("idx_websocket_user_id", "user_id"),
    _index("idx_websocket_user_email_lower", "lower(user_email)"),
    Step(
        f"mark schema v{SCHEMA_VERSION}",
        f"SELECT obj_description(to_regclass('{TABLE}'), 'pg_class') IS DISTINCT FROM %s",
        f"COMMENT ON TABLE {TABLE} IS '{MARKER}'",
        (MARKER,),
    ),
)  # fmt: skip


class MigrationFailed(RuntimeError):
    """The migration did not complete; nothing was changed (one transaction)."""


def migrate(connection: psycopg.Connection[Any], lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS) -> dict[str, Any]:
    """Run the needed steps in one transaction; what was done, by step name."""
    done: list[str] = []
    try:
        with connection.transaction():
            connection.execute(f"SET LOCAL lock_timeout = {int(lock_timeout_ms)}".encode())
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            before = installed_version(connection)
            for step in STEPS:
                row = connection.execute(step.needed.encode(), step.params).fetchone()
                if row and row[0]:
                    connection.execute(step.apply.encode())
                    done.append(step.name)
    except psycopg.errors.LockNotAvailable:
        raise MigrationFailed(
            f"another session holds a lock on {TABLE} (waited lock_timeout = {lock_timeout_ms} ms); "
            "nothing was changed: run the migration again when that transaction ends"
        ) from None
    except psycopg.errors.InsufficientPrivilege as error:
        raise MigrationFailed(
            f"the migration's database user may not change {TABLE} ({error.diag.message_primary}); "
            "nothing was changed: connect as the table's owner (MIGRATION_DATABASE_*)"
        ) from None
    return {"version": SCHEMA_VERSION, "fromVersion": before, "changed": bool(done), "steps": done}


def migration_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The handlers' DATABASE_* settings with the migration's own MIGRATION_DATABASE_* over them."""
    overrides = {k.removeprefix("MIGRATION_"): v for k, v in env.items() if k.startswith("MIGRATION_DATABASE_") and v}
    return {**env, **overrides}


def _lock_timeout(event: Any) -> int:
    value = event.get("lockTimeoutMs", DEFAULT_LOCK_TIMEOUT_MS) if isinstance(event, dict) else None
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 60_000:
        raise ConfigurationError('the event must be {} or {"lockTimeoutMs": 100..60000}')
    return value


def handler(event: Any, context: Any) -> dict[str, Any]:
    def action() -> dict[str, Any]:
        lock_timeout = _lock_timeout(event)
        # No handlers' statement timeout: the DDL's lock_timeout bounds the wait, index builds take long.
        settings = replace(database_settings(migration_environment(os.environ)), statement_timeout_ms=0)
        arguments = db.connection_arguments(settings)
        try:
            connection = psycopg.connect(autocommit=True, **arguments)
        except psycopg.Error as error:
            raise db.DatabaseUnavailable(f"cannot connect to PostgreSQL: {type(error).__name__}") from error
        with connection:
            try:
                result = migrate(connection, lock_timeout)
            except MigrationFailed as failure:
                logger().error("migration failed", extra={"reason": str(failure)})
                return {"error": f"migration failed: {failure}"}
        logger().info("migration done", extra=result)
        return result

    return invoke(context, action)
