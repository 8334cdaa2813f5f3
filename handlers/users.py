"""The CareConnect backend's `users` table (JPA entity `User`), read-only.

The Java WebSocket handlers take a client's identity from this table, never from the message:
the token names an email (`sub`), and the row with that email gives the id, name and role.
The handlers' database user needs exactly:

    GRANT SELECT (id, name, email, role, status, email_verified) ON users TO <handlers' role>;
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.db import Database

ACTIVE = "ACTIVE"


@dataclass(frozen=True)
class User:
    id: int
    name: str | None
    email: str
    role: str
    status: str

    @property
    def active(self) -> bool:
        return self.status.upper() == ACTIVE  # User.isActive() compares ignoring case

    @property
    def display_name(self) -> str:
        """What the backend shows as `fromUserName`: the name, else the email."""
        return self.name or self.email


COLUMNS = "id, name, email, role, status"


class UserDirectory:
    def __init__(self, database: Database) -> None:
        self.db = database

    def by_email(self, email: str) -> User | None:
        """The row whose email equals the token's subject, as `findByEmail` matches it."""
        return self._one(f"SELECT {COLUMNS} FROM users WHERE email = %s", (email,))

    def email_verified(self, email: str) -> bool:
        """Whether a user with this address (ignoring case) has verified it already."""
        rows = self.db.run("SELECT bool_or(email_verified) FROM users WHERE lower(email) = lower(%s)", (email,))
        return bool(rows and rows[0][0])

    def by_id(self, user_id: int) -> User | None:
        return self._one(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))

    def _one(self, sql: str, params: tuple[object, ...]) -> User | None:
        rows = self.db.run(sql, params)
        if not rows:
            return None
        user_id, name, email, role, status = rows[0]
        return User(int(user_id), name, email, str(role), str(status or ""))
