"""Handler fixtures: the real PostgreSQL, the management API served by moto (server mode, over
HTTP), and fault-injecting doubles for what moto cannot produce (410 Gone, throttling)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import psycopg
import pytest
from botocore.awsrequest import AWSResponse
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from moto.server import ThreadedMotoServer

from handlers.auth import TokenVerifier
from handlers.db import Database
from handlers.sender import Sender
from handlers.settings import JwtSettings
from handlers.store import ConnectionStore
from handlers.users import UserDirectory
from tests.handlers.careconnect import BackendSecret, mint

REGION = "eu-west-1"
SECRET = BackendSecret.generate()
JWT_SECRET = SECRET.text  # what JWT_SECRET / the JWT_SECRET_ARN secret holds


@pytest.fixture
def database(handlers_url: str, owner_db: Database) -> Iterator[Database]:
    """The handlers' connection: their role, DML grants only."""
    db = Database(lambda: psycopg.connect(handlers_url, autocommit=True))
    yield db
    db.close()


@pytest.fixture
def store(database: Database) -> ConnectionStore:
    return ConnectionStore(database)


class Users:
    """The backend's `users` table, for the tests to add people to."""

    def __init__(self, database: Database) -> None:
        self.db = database

    def add(self, email: str, role: str = "PATIENT", name: str | None = None, status: str = "ACTIVE", *,
            user_id: int | None = None, verified: bool = True) -> int:  # fmt: skip
        rows = self.db.run(
            """INSERT INTO users (id, email, password, role, email_verified, status, name, created_at)
               VALUES (COALESCE(%s, nextval(pg_get_serial_sequence('users', 'id'))), %s, '$2a$10$hash', %s, %s, %s,
                       %s, now()) RETURNING id""",
            (user_id, email, role, verified, status, name),
        )
        return int(rows[0][0])

    def set_status(self, user_id: int, status: str) -> None:
        """What the backend's admin does when suspending someone."""
        self.db.run("UPDATE users SET status = %s WHERE id = %s", (status, user_id))

    def person(self, n: int, role: str = "PATIENT") -> int:
        """The id of user n (`user<n>@example.org`, named "User <n>"), added on first use."""
        email = f"user{n}@example.org"
        found = self.db.run("SELECT id FROM users WHERE email = %s", (email,))
        return int(found[0][0]) if found else self.add(email, role, name=f"User {n}")


@pytest.fixture
def users(owner_db: Database) -> Users:
    return Users(owner_db)


@pytest.fixture
def directory(database: Database, users: Users) -> UserDirectory:
    return UserDirectory(database)


COLUMNS = (
    "id",
    "connection_id",
    "user_email",
    "user_id",
    "subscription_type",
    "connection_type",
    "api_gateway_endpoint",
    "metadata",
    "connected_at",
    "last_activity_at",
    "expires_at",
    "is_active",
)


def table(store: ConnectionStore) -> list[dict[str, Any]]:
    """The whole table, as dicts, ordered by id."""
    result = store.db.run(f"SELECT {', '.join(COLUMNS)} FROM websocket_connections ORDER BY id")
    return [dict(zip(COLUMNS, row, strict=True)) for row in result]


def row(store: ConnectionStore, connection_id: str) -> dict[str, Any]:
    (found,) = [r for r in table(store) if r["connection_id"] == connection_id]
    return found


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def management(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The management client exactly as the handlers configure it (handlers/aws.py)."""
    from handlers import aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    backend = apigatewaymanagementapi_backends["123456789012"][REGION]
    backend.connections.clear()
    aws.management_client.cache_clear()
    return aws.management_client(moto_endpoint, REGION, 16)


def _backend() -> Any:
    return apigatewaymanagementapi_backends["123456789012"][REGION]


class Inbox:
    """What each connection received through the management API: every post API Gateway (moto's
    backend, whichever client sent it) accepted; JSON frames decoded, plain text (/ws/notifications)
    as text. Kept after the connection is closed."""

    def __init__(self) -> None:
        self._read: dict[str, int] = {}
        self.posts: dict[str, list[bytes]] = {}

    def record(self, connection_id: str, data: bytes) -> None:
        self.posts.setdefault(connection_id, []).append(bytes(data))

    def all(self, connection_id: str) -> list[Any]:
        return [json.loads(d) if d[:1] == b"{" else d.decode() for d in self.posts.get(connection_id, [])]

    def new(self, connection_id: str) -> list[Any]:
        frames = self.all(connection_id)
        start = self._read.get(connection_id, 0)
        self._read[connection_id] = len(frames)
        return frames[start:]


@pytest.fixture
def inbox(management: Any, monkeypatch: pytest.MonkeyPatch) -> Inbox:
    box, backend = Inbox(), type(_backend())
    accept = backend.post_to_connection

    def post_to_connection(self: Any, data: bytes, connection_id: str) -> None:
        accept(self, data, connection_id)
        box.record(connection_id, data)

    monkeypatch.setattr(backend, "post_to_connection", post_to_connection)
    return box


class FaultyClient:
    """The real (moto) client, except, as API Gateway answers: `gone` ids get a 410, `broken` ids
    a 403, and the first `throttle` posts an HTTP 429 LimitExceededException. Faults are HTTP
    responses injected under botocore, so its retry mode handles them as it would AWS's."""

    def __init__(self, client: Any, gone: set[str] | None = None, throttle: int = 0) -> None:
        self.client = client
        self.gone = gone or set()
        self.broken: set[str] = set()
        self.throttle = throttle
        self.calls: list[str] = []  # every HTTP attempt, retries included
        self.closed: set[str] = set()
        self._lock = threading.Lock()
        client.meta.events.register("before-send.apigatewaymanagementapi.PostToConnection", self._answer)

    def _answer(self, request: Any, **_: Any) -> AWSResponse | None:
        connection_id = unquote(request.url.rsplit("/", 1)[-1])
        with self._lock:
            self.calls.append(connection_id)
            throttled = self.throttle > 0
            self.throttle -= throttled
        fault = (410, "GoneException") if connection_id in self.gone else (
            (403, "ForbiddenException") if connection_id in self.broken else ((429, "LimitExceededException")
                                                                              if throttled else None))  # fmt: skip
        if fault is None:
            return None
        status, code = fault
        body = json.dumps({"message": code}).encode()
        return AWSResponse(request.url, status, {"x-amzn-ErrorType": code, "Content-Type": "application/json"},
                           _Raw(body))  # fmt: skip

    def post_to_connection(self, ConnectionId: str, Data: bytes) -> Any:
        return self.client.post_to_connection(ConnectionId=ConnectionId, Data=Data)

    def delete_connection(self, ConnectionId: str) -> Any:
        self.closed.add(ConnectionId)
        return self.client.delete_connection(ConnectionId=ConnectionId)


class _Raw:
    """The raw body botocore reads from an HTTP response."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def stream(self, **_: Any) -> Any:
        yield self.data


@pytest.fixture
def faulty(management: Any) -> Iterator[FaultyClient]:
    client = FaultyClient(management)
    yield client
    management.meta.events.unregister("before-send.apigatewaymanagementapi.PostToConnection", client._answer)


@pytest.fixture
def sender(faulty: FaultyClient, store: ConnectionStore) -> Sender:
    return Sender(faulty, on_gone=store.deactivate, max_workers=8)


@pytest.fixture
def verifier() -> TokenVerifier:
    return TokenVerifier(JwtSettings(hs256_secret=JWT_SECRET, issuer="careconnect"))


TokenMaker = Callable[..., str]


@pytest.fixture
def make_token() -> TokenMaker:
    """Tokens as the backend's JwtTokenProvider mints them (tests/handlers/careconnect.py)."""

    def make(email: str, role: str = "PATIENT", *, key: bytes = SECRET.key, **options: Any) -> str:
        return mint(key, email, role, **options)

    return make


@pytest.fixture
def lambda_env(handlers_url: str, moto_endpoint: str, management: Any, store: ConnectionStore, users: Users,
               monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:  # fmt: skip
    """The environment the compute template gives the functions, pointing at the test services;
    the entry points (`handlers.<route>.handler`) then run exactly as in Lambda."""
    from handlers import aws, runtime

    env = {
        "DATABASE_AUTH": "url", "DATABASE_URL": handlers_url, "DATABASE_SSLMODE": "prefer",
        "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": moto_endpoint, "CONNECTION_TTL_MINUTES": "120",
        "JWT_SECRET": JWT_SECRET, "AWS_REGION": REGION,
    }  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    caches = (
        runtime.settings,
        runtime.store,
        runtime._sender,
        runtime.verifier,
        runtime.users,
        aws.management_client,
    )

    def reset() -> None:
        if runtime.store.cache_info().currsize:
            runtime.store().db.close()
        for cached in caches:
            cached.cache_clear()

    reset()
    yield
    reset()
