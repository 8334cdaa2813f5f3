"""Which version of `websocket_connections` these handlers need, and the check they make.

The handlers never change the schema: a release runs the migration (`handlers.migrate`) first.
A container checks once, on its first database connection, that the table exists at the version
it needs (the table's comment, one catalog read, no lock), and otherwise fails naming the
migration to run.
"""

from __future__ import annotations

import re
from typing import Any

import psycopg

from handlers.settings import ConfigurationError

SCHEMA_VERSION = 2
TABLE = "websocket_connections"
MARKER = f"cc-websocket schema v{SCHEMA_VERSION} (handlers.migrate)"
MIGRATION = "handlers.migrate.handler (the <NamePrefix>-websocket-migrate function)"
_VERSION = re.compile(r"^cc-websocket schema v(\d+)\b")


class SchemaNotReady(ConfigurationError):
    """The table is missing or older than these handlers need; says which migration to run."""


def installed_version(connection: psycopg.Connection[Any]) -> int | None:
    """The version the table's comment records; None without a table, 0 for an unmarked one."""
    row = connection.execute(
        "SELECT to_regclass(%s) IS NOT NULL, obj_description(to_regclass(%s), 'pg_class')", (TABLE, TABLE)
    ).fetchone()
    if row is None or not row[0]:
        return None
    found = _VERSION.match(row[1] or "")
    return int(found.group(1)) if found else 0


def require_current(connection: psycopg.Connection[Any]) -> None:
    version = installed_version(connection)
    if version is None:
        raise SchemaNotReady(f"table {TABLE} does not exist: run the migration {MIGRATION}")
    if version < SCHEMA_VERSION:
        raise SchemaNotReady(
            f"table {TABLE} is at schema v{version}, these handlers need v{SCHEMA_VERSION}: "
            f"run the migration {MIGRATION}"
        )
