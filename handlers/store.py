"""The connection store: rows of `websocket_connections`, as the Java backend reads them.

Parameterised SQL only. Timestamps are UTC without time zone, as the JPA entity writes them.
Emails are lower-cased on write, as the Java backend expects. A row is live when `is_active =
TRUE` and it has not expired, the backend's own test. `last_activity_at` is set at connect, as
the backend does; whether a connection was greeted lives in `metadata` (`greeted`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from handlers.db import Database
from handlers.users import User

NOW = "(now() AT TIME ZONE 'utc')"
INACTIVE_RETENTION_DAYS = 7


@dataclass(frozen=True)
class Connection:
    connection_id: str
    user_id: int | None
    user_email: str | None
    subscription_type: str
    metadata: dict[str, Any]
    first_message: bool = False

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None and bool(self.metadata.get("authenticated"))

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
        """One round trip; a retried $connect for the same id refreshes the row."""
        self.db.run(
            f"""
            INSERT INTO websocket_connections
                (connection_id, user_email, subscription_type, connection_type, api_gateway_endpoint,
                 metadata, connected_at, last_activity_at, expires_at, is_active)
            VALUES (%(id)s, lower(%(email)s), %(type)s, 'aws', %(endpoint)s, %(metadata)s,
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
                "email": email,
                "type": subscription_type,
                "endpoint": endpoint,
                "metadata": json.dumps(metadata),
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
                      COALESCE(NULLIF(before.metadata, ''), '{{}}')::jsonb ->> 'greeted' IS NULL
            """,
            (connection_id,),
        )
        if not rows:
            return None
        cid, user_id, email, subscription, metadata, first = rows[0]
        return Connection(cid, user_id, email, subscription, _metadata(metadata), bool(first))

    def authenticate(self, connection_id: str, user: User) -> None:
        """The connection is now this user's: the row the backend reads, and what frames show."""
        self.db.run(
            """
            UPDATE websocket_connections
            SET user_id = %(user_id)s, user_email = lower(%(email)s), subscription_type = 'authenticated',
                metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || %(extra)s::jsonb)::text
            WHERE connection_id = %(id)s AND is_active = TRUE
            """,
            {
                "id": connection_id,
                "user_id": user.id,
                "email": user.email,
                "extra": json.dumps({"authenticated": True, "role": user.role, "name": user.name}),
            },
        )

    def subscribe_email_verification(self, connection_id: str, email: str) -> None:
        self.db.run(
            """UPDATE websocket_connections SET user_email = lower(%s), subscription_type = 'email-verification'
               WHERE connection_id = %s AND is_active = TRUE""",
            (email, connection_id),
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
    ) -> list[str]:
        """Live connections of any of these users, emails or roles (authenticated users' roles),
        or of every authenticated user: one query, each connection once."""
        rows = self.db.run(
            f"""SELECT connection_id FROM websocket_connections
                WHERE is_active = TRUE AND expires_at > {NOW}
                  AND (user_id = ANY(%(ids)s) OR user_email = ANY(%(emails)s)
                       OR (user_id IS NOT NULL AND COALESCE(NULLIF(metadata, ''), '{{}}')::jsonb ->> 'role' = ANY(%(roles)s))
                       OR (%(everyone)s AND user_id IS NOT NULL))
                ORDER BY id""",
            {"ids": list(user_ids), "emails": [e.lower() for e in emails], "roles": list(roles), "everyone": everyone},
        )
        return [row[0] for row in rows]

    def email_verification_subscribers(self, email: str) -> list[str]:
        """Connections waiting for this address to be verified."""
        rows = self.db.run(
            f"""SELECT connection_id FROM websocket_connections
                WHERE user_email = lower(%s) AND subscription_type = 'email-verification'
                  AND is_active = TRUE AND expires_at > {NOW} ORDER BY id""",
            (email,),
        )
        return [row[0] for row in rows]

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
