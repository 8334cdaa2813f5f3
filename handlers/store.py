"""The connection store: rows of `websocket_connections`, as the Java backend reads them.

Parameterised SQL only. Timestamps are UTC without time zone, as the JPA entity writes them.
Emails are lower-cased on write, as the Java backend expects.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from handlers.db import Database

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
        self, connection_id: str, *, subscription_type: str, email: str | None, endpoint: str,
        ttl_minutes: int, metadata: dict[str, Any],
    ) -> None:  # fmt: skip
        """One round trip; a retried $connect for the same id refreshes the row."""
        self.db.run(
            f"""
            INSERT INTO websocket_connections
                (connection_id, user_email, subscription_type, connection_type, api_gateway_endpoint,
                 metadata, connected_at, last_activity_at, expires_at, is_active)
            VALUES (%(id)s, lower(%(email)s), %(type)s, 'aws', %(endpoint)s, %(metadata)s,
                    {NOW}, NULL, {NOW} + make_interval(mins => %(ttl)s), TRUE)
            ON CONFLICT (connection_id) DO UPDATE SET
                user_email = EXCLUDED.user_email, user_id = NULL,
                subscription_type = EXCLUDED.subscription_type,
                connection_type = EXCLUDED.connection_type,
                api_gateway_endpoint = EXCLUDED.api_gateway_endpoint, metadata = EXCLUDED.metadata,
                connected_at = EXCLUDED.connected_at, last_activity_at = NULL,
                expires_at = EXCLUDED.expires_at, is_active = TRUE
            """,
            {"id": connection_id, "email": email, "type": subscription_type, "endpoint": endpoint,
             "metadata": json.dumps(metadata), "ttl": ttl_minutes},
        )  # fmt: skip

    def deactivate(self, connection_id: str) -> bool:
        """Soft delete (the Java backend expects rows to stay); idempotent. True if it changed."""
        rows = self.db.run(
            f"""UPDATE websocket_connections SET is_active = FALSE, last_activity_at = {NOW}
                WHERE connection_id = %s AND is_active IS NOT FALSE RETURNING id""",
            (connection_id,),
        )
        return bool(rows)

    def touch(self, connection_id: str) -> Connection | None:
        """Record activity and return the live row; `first_message` is set on its first message."""
        rows = self.db.run(
            f"""
            UPDATE websocket_connections AS c SET last_activity_at = {NOW}
            FROM websocket_connections AS before
            WHERE c.id = before.id AND c.connection_id = %s AND c.is_active IS NOT FALSE
              AND c.expires_at > {NOW}
            RETURNING c.connection_id, c.user_id, c.user_email, c.subscription_type, c.metadata,
                      before.last_activity_at IS NULL
            """,
            (connection_id,),
        )
        if not rows:
            return None
        cid, user_id, email, subscription, metadata, first = rows[0]
        return Connection(cid, user_id, email, subscription, _metadata(metadata), bool(first))

    def authenticate(
        self, connection_id: str, *, user_id: int, email: str | None, role: str | None
    ) -> None:
        self.db.run(
            """
            UPDATE websocket_connections
            SET user_id = %(user_id)s, user_email = lower(%(email)s), subscription_type = 'authenticated',
                metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || %(extra)s::jsonb)::text
            WHERE connection_id = %(id)s AND is_active IS NOT FALSE
            """,
            {"id": connection_id, "user_id": user_id, "email": email,
             "extra": json.dumps({"authenticated": True, "role": role})},
        )  # fmt: skip

    def subscribe_email_verification(self, connection_id: str, email: str) -> None:
        self.db.run(
            """UPDATE websocket_connections SET user_email = lower(%s), subscription_type = 'email-verification'
               WHERE connection_id = %s AND is_active IS NOT FALSE""",
            (email, connection_id),
        )

    def subscribe_updates(self, connection_id: str, update_types: list[str]) -> None:
        self.db.run(
            """
            UPDATE websocket_connections
            SET metadata = (COALESCE(NULLIF(metadata, ''), '{}')::jsonb || %s::jsonb)::text
            WHERE connection_id = %s AND is_active IS NOT FALSE
            """,
            (json.dumps({"updateTypes": update_types}), connection_id),
        )

    def active_connections_of_user(self, user_id: int) -> list[str]:
        rows = self.db.run(
            f"""SELECT connection_id FROM websocket_connections
                WHERE user_id = %s AND is_active IS NOT FALSE AND expires_at > {NOW}
                ORDER BY id""",
            (user_id,),
        )
        return [row[0] for row in rows]

    def deactivate_expired(self) -> int:
        rows = self.db.run(
            f"""WITH changed AS (
                    UPDATE websocket_connections SET is_active = FALSE
                    WHERE is_active IS NOT FALSE AND expires_at <= {NOW} RETURNING 1)
                SELECT count(*) FROM changed"""
        )
        return int(rows[0][0])

    def delete_inactive_older_than(self, days: int = INACTIVE_RETENTION_DAYS) -> int:
        rows = self.db.run(
            f"""WITH gone AS (
                    DELETE FROM websocket_connections
                    WHERE is_active = FALSE
                      AND COALESCE(last_activity_at, connected_at) < {NOW} - make_interval(days => %s)
                    RETURNING 1)
                SELECT count(*) FROM gone""",
            (days,),
        )
        return int(rows[0][0])
