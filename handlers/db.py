"""One PostgreSQL connection per Lambda container: opened lazily, reused, re-opened when broken.

Every statement the handlers run is a single autocommit statement, so a statement either wrote
its whole row or nothing. A statement that fails because a reused connection went stale (RDS
closed it while the container slept) is retried once on a fresh connection; all of them are
idempotent, so the retry cannot double a write.

Proxy-safe (RDS Proxy multiplexes a client connection over server connections between
transactions unless session state pins it): nothing on the request path leaves state in the
session. No prepared statements (`prepare_threshold=None`: psycopg would otherwise prepare a
query after its fifth execution), no SET, no advisory lock; the statement timeout travels in the
startup packet's `options`, set before the first statement.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from handlers import aws
from handlers.schema import require_current
from handlers.settings import ConfigurationError, DatabaseSettings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
# libpq URI parameters kept from a JDBC URL; JDBC-only ones (e.g. loginTimeout) are dropped.
LIBPQ_PARAMETERS = {
    "user",
    "password",
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "options",
}


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL could not be reached or failed mid-statement; nothing was half-written."""


def libpq_url(url: str) -> str:
    """Accept `postgresql://`, `postgres://` and the Java backend's `jdbc:postgresql://` URLs."""
    url = url.strip()
    if url.startswith("jdbc:"):
        url = url.removeprefix("jdbc:")
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres") or not parts.netloc:
        raise ConfigurationError(
            "DATABASE_URL must look like postgresql://user:password@host:5432/db "
            "(or jdbc:postgresql://host:5432/db?user=...&password=...)"
        )
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "ssl" and value.lower() == "true":
            query.append(("sslmode", "require"))
        elif key == "currentSchema":
            query.append(("options", f"-csearch_path={value}"))
        elif key in LIBPQ_PARAMETERS:
            query.append((key, value))
    return urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(query), ""))


def connection_arguments(
    settings: DatabaseSettings,
    secret_reader: Callable[[str], str] | None = None,
    token_maker: Callable[[DatabaseSettings], str] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for psycopg.connect, for the configured authentication method."""
    common: dict[str, Any] = {
        "connect_timeout": CONNECT_TIMEOUT_SECONDS,
        "application_name": "cc-websocket-handlers",
        "prepare_threshold": None,
    }
    if settings.auth == "url":
        conninfo = libpq_url(settings.url)
        options = startup_options(str(conninfo_to_dict(conninfo).get("options") or ""), settings.statement_timeout_ms)
        return {"conninfo": make_conninfo(conninfo, options=options) if options else conninfo, **common}
    if settings.statement_timeout_ms:
        # An explicit `options` replaces libpq's PGOPTIONS: keep what the environment gave.
        common["options"] = startup_options(os.environ.get("PGOPTIONS", ""), settings.statement_timeout_ms)
    if settings.auth == "secret":
        reader = secret_reader or aws.read_secret
        try:
            secret = json.loads(reader(settings.secret_arn))
            return {
                "host": settings.proxy_host or secret["host"],
                "port": int(secret.get("port", 5432)),
                "dbname": secret.get("dbname") or secret.get("database") or "postgres",
                "user": secret["username"],
                "password": secret["password"],
                "sslmode": settings.sslmode,
                **common,
            }
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigurationError(
                "the DATABASE_SECRET_ARN secret must be JSON with host, port, dbname, username "
                f"and password (problem: {type(error).__name__} {error})"
            ) from None
    maker = token_maker or _iam_token
    return {
        "host": settings.host,
        "port": settings.port,
        "dbname": settings.name,
        "user": settings.user,
        "password": maker(settings),
        "sslmode": settings.sslmode if settings.sslmode in ("require", "verify-ca", "verify-full") else "require",
        **common,
    }


def startup_options(given: str, statement_timeout_ms: int) -> str:
    """The given startup options with the statement timeout after them (0: none added)."""
    timeout = f"-c statement_timeout={statement_timeout_ms}" if statement_timeout_ms else ""
    return " ".join(part for part in (str(given).strip(), timeout) if part)


def _iam_token(settings: DatabaseSettings) -> str:
    return aws.rds_auth_token(settings.host, settings.port, settings.user, settings.region)


def schema_sql() -> str:
    """The current table, for a database without one (handlers.migrate runs it)."""
    return resources.files("handlers").joinpath("schema.sql").read_text(encoding="utf-8")


class Database:
    """The container's connection. `run` executes one statement and returns its rows."""

    def __init__(self, open_connection: Callable[[], psycopg.Connection[Any]]) -> None:
        self._open_connection = open_connection
        self._connection: psycopg.Connection[Any] | None = None
        self._schema_checked = False
        # Fan-out threads deactivate gone connections through the same Database: one statement
        # at a time, so none runs on a connection another thread is replacing.
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: DatabaseSettings, **kwargs: Any) -> Database:
        def open_connection() -> psycopg.Connection[Any]:
            return psycopg.connect(autocommit=True, **connection_arguments(settings, **kwargs))

        return cls(open_connection)

    def _fresh(self) -> psycopg.Connection[Any]:
        self.close()
        try:
            connection = self._open_connection()
        except psycopg.Error as error:
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {type(error).__name__}") from error
        if not self._schema_checked:
            try:
                require_current(connection)  # one catalog read per container: no DDL, no table lock
            except BaseException:
                connection.close()
                raise
            self._schema_checked = True
        self._connection = connection
        return connection

    def run(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._run(sql, params)

    def _run(self, sql: str, params: Sequence[Any] | dict[str, Any]) -> list[tuple[Any, ...]]:
        reused = self._connection is not None and not (self._connection.closed or self._connection.broken)
        connection = self._connection if reused and self._connection else self._fresh()
        try:
            return self._execute(connection, sql, params)
        except psycopg.errors.QueryCanceled as error:  # statement_timeout: a retry would only double the load
            raise DatabaseUnavailable("PostgreSQL cancelled the statement (statement_timeout)") from error
        except psycopg.OperationalError as error:
            self.close()
            if not reused:
                raise DatabaseUnavailable(f"PostgreSQL failed: {type(error).__name__}") from error
            log.warning("reused database connection failed; retrying once on a new one")
        try:
            return self._execute(self._fresh(), sql, params)
        except psycopg.OperationalError as error:
            self.close()
            raise DatabaseUnavailable(f"PostgreSQL failed: {type(error).__name__}") from error

    @staticmethod
    def _execute(connection: psycopg.Connection[Any], sql: str, params: Any) -> list[tuple[Any, ...]]:
        with connection.cursor() as cursor:
            cursor.execute(sql.encode(), params)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        if self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None
