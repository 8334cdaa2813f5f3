"""CareConnect contract figures, each against a baseline measured in the same run:

- `authenticate` as the backend does it (HS256 over the decoded secret, then the `users` row
  by email, then the connection marked), against `$connect` (one INSERT), on local PostgreSQL;
- the notify function's push to 1,000 connections of one role (one query for the recipients,
  then 16 posts in parallel), against the same push one connection at a time; with 10 ms per
  post (an API Gateway round trip) and on moto's server.

PostgreSQL: CC_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import logging
import os
import sys

import psycopg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench_handlers import URL, Delayed, median_ms, seconds  # noqa: E402

from handlers.auth import TokenVerifier, authenticate  # noqa: E402
from handlers.connect import register_connection  # noqa: E402
from handlers.db import Database  # noqa: E402
from handlers.events import parse_event  # noqa: E402
from handlers.migrate import migrate  # noqa: E402
from handlers.notify import notify, parse_notification  # noqa: E402
from handlers.sender import Sender  # noqa: E402
from handlers.settings import JwtSettings  # noqa: E402
from handlers.store import ConnectionStore  # noqa: E402
from handlers.users import UserDirectory  # noqa: E402
from tests.handlers.careconnect import USERS_DDL, BackendSecret, mint  # noqa: E402
from tests.handlers.events import connect_event  # noqa: E402

SCHEMA = "cc_bench_contract"
ROUNDS = 300


def fresh_store() -> tuple[Database, ConnectionStore]:
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}".encode())
        admin.execute(f"SET search_path = {SCHEMA}".encode())
        migrate(admin)  # the release step; the handlers never create the table
    db = Database(lambda: psycopg.connect(URL, autocommit=True, options=f"-csearch_path={SCHEMA}"))
    db.run(USERS_DDL)
    return db, ConnectionStore(db)


def authenticate_against_connect(db: Database, store: ConnectionStore) -> None:
    secret = BackendSecret.generate()
    verifier = TokenVerifier(JwtSettings(hs256_secret=secret.text, issuer="careconnect"))
    users = UserDirectory(db)
    db.run(
        """INSERT INTO users (email, password, role, email_verified, status, name)
              SELECT 'user' || n || '@example.org', 'x', 'PATIENT', TRUE, 'ACTIVE', 'User ' || n
              FROM generate_series(1, %s) AS n""",
        (ROUNDS,),
    )
    connects, authenticates = [], []
    for i in range(ROUNDS):
        request = parse_event(connect_event(f"auth-{i}"))
        connects.append(
            seconds(lambda r=request: register_connection(r, store, endpoint="https://x/prod", ttl_minutes=120))
        )
    tokens = [mint(secret.key, f"user{i + 1}@example.org", "PATIENT") for i in range(ROUNDS)]
    verifier.claims(tokens[0])  # the first call imports PyJWT and reads the key: a cold start's cost
    for i, token in enumerate(tokens):
        authenticates.append(
            seconds(lambda t=token, cid=f"auth-{i}": store.authenticate(cid, *authenticate(verifier, users, t, None)))
        )
    base = median_ms(connects)
    print(f"authenticate as the backend does it (median of {ROUNDS}; $connect {base:.3f} ms)")
    print(
        f"  authenticate (HS256 + users row + mark)  {median_ms(authenticates):6.3f} ms  "
        f"= {median_ms(authenticates) / base:4.1f}x $connect"
    )


def notify_a_role(db: Database, store: ConnectionStore) -> None:
    db.run("TRUNCATE websocket_connections, users RESTART IDENTITY")
    db.run("""INSERT INTO users (email, password, role, email_verified, status, name)
              SELECT 'Care' || n || '@example.org', 'x', 'CAREGIVER', TRUE, 'ACTIVE', 'Care ' || n
              FROM generate_series(1, 1000) AS n""")
    # Authenticated as those users, tokens valid an hour (every push checks exp and users.status).
    db.run("""INSERT INTO websocket_connections (connection_id, user_id, user_email, subscription_type,
                   connection_type, metadata, connected_at, last_activity_at, expires_at, is_active)
               SELECT 'care-' || n, n, 'Care' || n || '@example.org', 'authenticated', 'aws',
                      jsonb_build_object('authenticated', true, 'role', 'CAREGIVER',
                                         'exp', extract(epoch FROM now()) + 3600)::text,
                      now(), now(), now() + interval '2 hours', TRUE
               FROM generate_series(1, 1000) AS n""")
    by_email = parse_notification(
        {
            "recipients": {"emails": ["care500@example.org"]},  # stored as Care500@...: compared ignoring case
            "message": {"type": "emergency-alert", "patientId": "7", "patientName": "Pat", "message": "Fall detected"},
        }
    )
    no_delay = Sender(Delayed(None, 0.0), on_gone=store.deactivate, max_workers=16)
    assert notify(by_email, store, no_delay)["delivered"] == 1
    pushes = [seconds(lambda: notify(by_email, store, no_delay)) for _ in range(ROUNDS)]
    print(f"notify function: one emergency-alert by email among 1,000 authenticated connections (median of {ROUNDS})")
    print(f"  push by email (recipients query + checks + 1 post, no network)  {median_ms(pushes):6.3f} ms")
    notification = parse_notification(
        {
            "recipients": {"roles": ["CAREGIVER"]},
            "message": {"type": "emergency-alert", "patientId": "7", "patientName": "Pat", "message": "Fall detected"},
        }
    )
    print("notify function: one emergency-alert to 1,000 connections of one role")
    for label, client in (("10 ms per post, no server", Delayed(None, 0.010)),):
        one = seconds(lambda c=client: notify(notification, store, Sender(c, on_gone=store.deactivate, max_workers=1)))
        many = seconds(
            lambda c=client: notify(notification, store, Sender(c, on_gone=store.deactivate, max_workers=16))
        )
        print(f"  {label:26s} one-by-one {one:6.2f} s   16 in parallel {many:6.2f} s   speed-up {one / many:4.1f}x")


if __name__ == "__main__":
    logging.getLogger("handlers").setLevel(logging.WARNING)  # one line per call would drown the figures
    database, connection_store = fresh_store()
    try:
        authenticate_against_connect(database, connection_store)
        notify_a_role(database, connection_store)
    finally:
        database.close()
        with psycopg.connect(URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE".encode())
