"""The connection store: rows of `websocket_connections`, as the Java backend reads them.

Parameterised SQL only. Timestamps are UTC without time zone, as the JPA entity writes them.
A row is live when `is_active = TRUE` and it has not expired, the backend's own test.
`last_activity_at` is set at connect, as the backend does; whether a connection was greeted lives
in `metadata` (`greeted`).

Identity only from proof: `user_id`, `user_email` (as the `users` row stores it) and the role are
written only by `authenticate`, from the row of a verified token, with the token's expiry. An
address a client merely types is a subscription to `email-verified` (`metadata.verifyEmail`) and
nothing else. Pushes to users reach only connections authenticated as them whose token has not
expired and whose `users.status` is still ACTIVE, checked in the same query (no cache). Emails
are compared ignoring case.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handlers.db import Database
from handlers.users import ACTIVE, User

NOW = "(now() AT TIME ZONE 'utc')"
META = "COALESCE(NULLIF({0}metadata, ''), '{{}}')::jsonb"
# A connection that speaks for its user now: authenticated, token unexpired, user still ACTIVE.
SPEAKS_FOR_USER = f"""(c.user_id IS NOT NULL AND {META.format("c.")} ->> 'authenticated' = 'true'
    AND COALESCE(({META.format("c.")} ->> 'exp')::float8, 0) > extract(epoch FROM now())
    AND EXISTS (SELECT 1 FROM users u WHERE u.id = c.user_id AND upper(COALESCE(u.status, 'ACTIVE')) = 'ACTIVE'))"""
INACTIVE_RETENTION_DAYS = 7


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: int | None
    user_email: str | None
    subscription_type: str
    metadata: dict[str, Any]
    first_message: bool = False

    user_status: str | None = None  # the users row's status now (None: no user, or no row)

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None and bool(self.metadata.get("authenticated"))

    def session_problem(self, now: float) -> str | None:
        """Why an authenticated session no longer speaks for its user (None: it does)."""
        if not self.authenticated:
            return None
        if self.user_status is None or self.user_status.upper() != ACTIVE:
            return "User account is not active"
        if float(self.metadata.get("exp", 0)) <= now:
            return "Session expired"
        return None

    @property
    def role(self) -> str | None:
        return self.metadata.get("role")

    @property
    def display_name(self) -> str | None:
        """The user's name, else the email: the backend's `fromUserName`."""
        return self.metadata.get("name") or self.user_email


def _metadata(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class ConnectionStore:
    def __init__(self, database: Database) -> None:
        self.db = database

    def register(
        self,
        connection_id: str,
        *,
        subscription_type: str,
        email: str | None,
        endpoint: str,
        ttl_minutes: int,
        metadata: dict[str, Any],
    ) -> None:
        """One round trip; a retried $connect for the same id refreshes the row. An email given at
        connect is a subscription to `email-verified` for that address, not an identity."""
        self.db.run(
            f"""
            INSERT INTO websocket_connections
                (connection_id, user_email, subscription_type, connection_type, api_gateway_endpoint,
                 metadata, connected_at, last_activity_at, expires_at, is_active)
            VALUES (%(id)s, NULL, %(type)s, 'aws', %(endpoint)s, %(metadata)s,
                    {NOW}, {NOW}, {NOW} + make_interval(mins => %(ttl)s), TRUE)
            ON CONFLICT (connection_id) DO UPDATE SET
                user_email = EXCLUDED.user_email, user_id = NULL,
                subscription_type = EXCLUDED.subscription_type,
                connection_type = EXCLUDED.connection_type,
                api_gateway_endpoint = EXCLUDED.api_gateway_endpoint, metadata = EXCLUDED.metadata,
                connected_at = EXCLUDED.connected_at, last_activity_at = EXCLUDED.last_activity_at,
                expires_at = EXCLUDED.expires_at, is_active = TRUE
            """,
            {
                "id": connection_id,
                "type": subscription_type,
                "endpoint": endpoint,
                "metadata": json.dumps({**metadata, **({"verifyEmail": email} if email else {})}),
                "ttl": ttl_minutes,
            },
        )

    def deactivate(self, connection_id: str) -> bool:
        """Soft delete (the Java backend expects rows to stay); idempotent. True if it changed."""
        rows = self.db.run(
            f"""UPDATE websocket_connections SET is_active = FALSE, last_activity_at = {NOW}
                WHERE connection_id = %s AND is_active = TRUE RETURNING id""",
            (connection_id,),
        )
        return bool(rows)

    def delete(self, connection_id: str) -> bool:
        """Remove the row (only the pre-traffic hook's connections: no client holds them). True if
        there was one."""
        rows = self.db.run("DELETE FROM websocket_connections WHERE connection_id = %s RETURNING id", (connection_id,))
        return bool(rows)

    def touch(self, connection_id: str) -> Connection | None:
        """Record activity and return the live row; `first_message` is set until it was greeted."""
        rows = self.db.run(
            f"""
            UPDATE websocket_connections AS c SET last_activity_at = {NOW},
                metadata = (COALESCE(NULLIF(c.metadata, ''), '{{}}')::jsonb || '{{"greeted": true}}')::text
            FROM websocket_connections AS before
            WHERE c.id = before.id AND c.connection_id = %s AND c.is_active = TRUE
              AND c.expires_at > {NOW}
            RETURNING c.connection_id, c.user_id, c.user_email, c.subscription_type, c.metadata,
                      COALESCE(NULLIF(before.metadata, ''), '{{}}')::jsonb ->> 'greeted' IS NULL,
                      (SELECT COALESCE(u.status, 'ACTIVE') FROM users u WHERE u.id = c.user_id)
            """,
            (connection_id,),
        )
        if not rows:
            return None
        cid, user_id, email, subscription, metadata, first, status = rows[0]
        return Connection(cid, user_id, email, subscription, _metadata(metadata), bool(first), status)

    def authenticate(self, connection_id: str, user: User, expires: float) -> None:
        """The connection is now this user's until `expires` (the token's exp): the row the
        backend reads, and what frames show."""
        self.db.run(
            """
            UPDATE websocket_connections
            SET user_id = %(user_id)s, user_email = %(email)s, subscription_type = 'authenticated',
                metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || %(extra)s::jsonb)::text
            WHERE connection_id = %(id)s AND is_active = TRUE
            """,
            {
                "id": connection_id,
                "user_id": user.id,
                "email": user.email,
                "extra": json.dumps({"authenticated": True, "role": user.role, "name": user.name, "exp": expires}),
            },
        )

    def forget_user(self, connection_id: str) -> None:
        """The session ended (token expired, user suspended): the row no longer names a user."""
        self.db.run(
            """
            UPDATE websocket_connections
            SET user_id = NULL, user_email = NULL, subscription_type = 'notifications',
                metadata = ((COALESCE(NULLIF(metadata, ''), '{}')::jsonb - 'role' - 'name' - 'exp')
                            || '{"authenticated": false}')::text
            WHERE connection_id = %s AND is_active = TRUE
            """,
            (connection_id,),
        )

    def subscribe_email_verification(self, connection_id: str, email: str) -> None:
        """Wait for `email-verified` for this address; the connection's identity is unchanged (an
        unauthenticated one is marked `email-verification`, as the backend's rows are)."""
        self.db.run(
            """
            UPDATE websocket_connections
            SET metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || jsonb_build_object('verifyEmail', %s::text))::text,
                subscription_type = CASE WHEN user_id IS NULL THEN 'email-verification' ELSE subscription_type END
            WHERE connection_id = %s AND is_active = TRUE
            """,
            (email, connection_id),
        )

    def register_user_claim(self, connection_id: str, claimed: str) -> None:
        """`REGISTER_USER:<id>` on /ws/notifications: which user's text pushes this connection
        wants. A claim, not proof: pushes check it against the authenticated user."""
        self.db.run(
            """
            UPDATE websocket_connections
            SET metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || jsonb_build_object('registered', %s::text))::text
            WHERE connection_id = %s AND is_active = TRUE
            """,
            (claimed, connection_id),
        )

    def subscribe_updates(self, connection_id: str, update_types: list[str]) -> None:
        self.db.run(
            """
            UPDATE websocket_connections
            SET metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || %s::jsonb)::text
            WHERE connection_id = %s AND is_active = TRUE
            """,
            (json.dumps({"updateTypes": update_types}), connection_id),
        )

    def active_connections_of_user(self, user_id: int) -> list[str]:
        return self.recipients(user_ids=[user_id])

    def recipients(
        self,
        *,
        user_ids: Sequence[int] = (),
        emails: Sequence[str] = (),
        roles: Sequence[str] = (),
        everyone: bool = False,
        registered: bool = False,
    ) -> list[str]:
        """Live connections that speak for any of these users, emails (ignoring case) or roles, or
        for every user (`registered`: only those that sent REGISTER_USER for their own id, the
        text pushes' audience): one query, each connection once."""
        return [row[0] for row in self._live_users("c.connection_id", user_ids, emails, roles, everyone, registered)]

    def online_users(self, user_ids: Sequence[int] = (), everyone: bool = True) -> dict[int, str]:
        """User id -> email of every user (or of these users) with a connection that speaks for them."""
        rows = self._live_users("DISTINCT c.user_id, c.user_email", user_ids, (), (), everyone, False, order="")
        return {int(user_id): email for user_id, email in rows}

    def _live_users(
        self,
        columns: str,
        user_ids: Sequence[int],
        emails: Sequence[str],
        roles: Sequence[str],
        everyone: bool,
        registered: bool,
        order: str = "ORDER BY c.id",
    ) -> list[tuple[Any, ...]]:
        # Only the kinds asked for, so each is an index scan (user_id, lower(user_email)) of its own.
        kinds = {
            "c.user_id = ANY(%(ids)s)": bool(user_ids),
            "lower(c.user_email) = ANY(%(emails)s)": bool(emails),
            f"{META.format('c.')} ->> 'role' = ANY(%(roles)s)": bool(roles),
            "TRUE": everyone,
        }
        wanted = " OR ".join(condition for condition, asked in kinds.items() if asked)
        if not wanted:
            return []
        registered_only = f"AND {META.format('c.')} ->> 'registered' = c.user_id::text" if registered else ""
        return self.db.run(
            f"""SELECT {columns} FROM websocket_connections c
                WHERE c.is_active = TRUE AND c.expires_at > {NOW} AND ({wanted}) AND {SPEAKS_FOR_USER}
                  {registered_only}
                {order}""",
            {"ids": list(user_ids), "emails": [e.lower() for e in emails], "roles": list(roles)},
        )

    def email_verification_subscribers(self, email: str) -> list[str]:
        """Connections waiting for this address (ignoring case) to be verified."""
        rows = self.db.run(
            f"""SELECT connection_id FROM websocket_connections
                WHERE lower({META.format("")} ->> 'verifyEmail') = lower(%s)
                  AND is_active = TRUE AND expires_at > {NOW} ORDER BY id""",
            (email,),
        )
        return [row[0] for row in rows]

    def end_email_verification(self, email: str) -> None:
        """After `email-verified`, the backend drops the unauthenticated subscribers."""
        self.db.run(
            f"""UPDATE websocket_connections SET is_active = FALSE, last_activity_at = {NOW}
                WHERE lower({META.format("")} ->> 'verifyEmail') = lower(%s)
                  AND user_id IS NULL AND is_active = TRUE""",
            (email,),
        )

    def deactivate_expired(self) -> int:
        rows = self.db.run(
            f"""WITH changed AS (
                    UPDATE websocket_connections SET is_active = FALSE
                    WHERE is_active = TRUE AND expires_at <= {NOW} RETURNING 1)
                SELECT count(*) FROM changed"""
        )
        return int(rows[0][0])

    def delete_inactive_older_than(self, days: int = INACTIVE_RETENTION_DAYS) -> int:
        rows = self.db.run(
            f"""WITH gone AS (
                    DELETE FROM websocket_connections
                    WHERE is_active = FALSE AND connected_at < {NOW} - make_interval(days => %s)
                    RETURNING 1)
                SELECT count(*) FROM gone""",
            (days,),
        )
        return int(rows[0][0])
