"""`$default`: CareConnect's protocol, authentication, delivery to users, and faults."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers import disconnect
from handlers.auth import TokenVerifier
from handlers.default import handle_message
from handlers.entry import run
from handlers.events import parse_event
from handlers.protocol import MAX_MESSAGE_BYTES
from handlers.sender import Sender
from handlers.settings import JwtSettings
from handlers.store import ConnectionStore
from handlers.users import UserDirectory
from rollout.pre_traffic import dialog_frame, session_event
from tests.handlers.careconnect import mint
from tests.handlers.conftest import FaultyClient, Inbox, TokenMaker, Users, row, table
from tests.handlers.events import message_event

pytestmark = pytest.mark.postgres
Send = Callable[..., dict[str, Any]]


@pytest.fixture
def send(store: ConnectionStore, directory: UserDirectory, sender: Sender, verifier: TokenVerifier) -> Send:
    def deliver(connection_id: str, body: Any, *, binary: bool = False) -> dict[str, Any]:
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        event = message_event(connection_id, text, binary=binary)
        return run(event, None, lambda request: handle_message(request, store, directory, sender, verifier))

    return deliver


def connect(store: ConnectionStore, *ids: str) -> None:
    for cid in ids:
        store.register(cid, subscription_type="notifications", email=None, endpoint="https://x/prod",
                       ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip


def login(send: Send, inbox: Inbox, make_token: TokenMaker, users: Users, cid: str, n: int) -> int:
    """Authenticate connection `cid` as user n, with a token the backend would issue."""
    user_id = users.person(n)
    send(cid, {"type": "authenticate", "token": make_token(f"user{n}@example.org")})
    assert [f["type"] for f in inbox.new(cid)][-1] == "authentication-success"
    return user_id


def types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


def test_first_message_is_greeted_then_answered(store: ConnectionStore, send: Send, inbox: Inbox) -> None:
    connect(store, "c1")
    send("c1", {"type": "ping"})
    frames = inbox.new("c1")
    assert types(frames) == ["connection-established", "heartbeat-response"]
    assert frames[0]["sessionId"] == "c1" and frames[0]["message"]
    send("c1", {"type": "heartbeat"})
    assert types(inbox.new("c1")) == ["heartbeat-response"]
    assert all(isinstance(f["timestamp"], int) and f["timestamp"] > 1.7e12 for f in frames)  # epoch ms


def test_rs256_public_key_verification(
    store: ConnectionStore, directory: UserDirectory, users: Users, sender: Sender, inbox: Inbox
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    rs_verifier = TokenVerifier(JwtSettings(rs256_public_key=public, issuer="careconnect"))
    users.person(5)
    connect(store, "c1", "c2")
    claims = {
        "iss": "careconnect",
        "sub": "user5@example.org",
        "role": "PATIENT",
        "exp": int(time.time()) + 600,
    }

    def auth(cid: str, token: str) -> str:
        event = parse_event(message_event(cid, json.dumps({"type": "authenticate", "token": token})))
        handle_message(event, store, directory, sender, rs_verifier)
        return inbox.new(cid)[-1]["type"]

    assert auth("c1", jwt.encode(claims, private, algorithm="RS256")) == "authentication-success"
    # An HS256 token "signed" with the public key (algorithm confusion) must not pass.
    forged = mint(public.encode(), "user5@example.org", "PATIENT")
    assert auth("c2", forged) == "authentication-failed"


def test_gone_connection_is_deactivated_and_others_still_receive(
    store: ConnectionStore,
    send: Send,
    inbox: Inbox,
    make_token: TokenMaker,
    faulty: FaultyClient,
    users: Users,
) -> None:
    connect(store, "sender", "t1", "t2", "t3")
    login(send, inbox, make_token, users, "sender", 1)
    for cid in ("t1", "t2", "t3"):
        login(send, inbox, make_token, users, cid, 2)
    faulty.gone.add("t2")
    send(
        "sender",
        {"type": "ai-chat-notification", "targetUserId": users.person(2), "message": "hello"},
    )
    assert types(inbox.new("t1")) == types(inbox.new("t3")) == ["ai-chat-response"]
    assert inbox.new("t2") == []
    assert row(store, "t2")["is_active"] is False
    assert row(store, "t1")["is_active"] is True and row(store, "t3")["is_active"] is True
    assert store.active_connections_of_user(users.person(2)) == ["t1", "t3"]


def test_throttling_is_retried_until_delivered(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker, faulty: FaultyClient
) -> None:
    connect(store, "c1")
    send("c1", {"type": "ping"})
    inbox.new("c1")
    faulty.throttle = 3
    calls_before = len(faulty.calls)
    send("c1", {"type": "ping"})
    assert types(inbox.new("c1")) == ["heartbeat-response"]
    assert len(faulty.calls) - calls_before == 4  # three throttled attempts, then delivered


def test_payload_over_128_kb_is_refused_with_an_error_frame(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker, users: Users
) -> None:
    connect(store, "a", "b")
    login(send, inbox, make_token, users, "a", 1)
    login(send, inbox, make_token, users, "b", 2)
    shell = {"type": "ai-chat-notification", "targetUserId": users.person(2), "message": ""}
    pad = MAX_MESSAGE_BYTES - len(json.dumps(shell, separators=(",", ":")))
    incoming = json.dumps(shell | {"message": "x" * pad}, separators=(",", ":"))
    assert len(incoming) == MAX_MESSAGE_BYTES  # accepted in; the reply adds sender and timestamp
    send("a", incoming)
    assert inbox.new("b") == []
    error = inbox.new("a")[-1]
    assert error["type"] == "error"
    found = re.fullmatch(
        r"cannot deliver ai-chat-notification: message is (\d+) bytes; the limit is 131072",
        error["message"],
    )
    assert found and int(found.group(1)) > MAX_MESSAGE_BYTES
    send("a", json.dumps(shell | {"message": "x" * (pad - 100)}, separators=(",", ":")))
    assert types(inbox.new("b")) == ["ai-chat-response"]


BAD_FRAMES = [
    ("{oops", False), ("[]", False), ("", False), ("AAEC", True),
    ('{"type": null}', False), ('{"type": "nope"}', False), ('{"type": "authenticate", "token": 5}', False),
    ('{"type": "subscribe-email-verification", "email": "\' OR 1=1 --"}', False),
    ('{"type": "ai-chat-notification", "targetUserId": "1; DROP TABLE websocket_connections", "message": "x"}', False),
]  # fmt: skip


@pytest.mark.parametrize(("body", "binary"), BAD_FRAMES)
def test_bad_frames_get_an_error_frame_and_leave_the_store_alone(
    store: ConnectionStore,
    send: Send,
    inbox: Inbox,
    body: str,
    binary: bool,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connect(store, "c1")
    before = table(store)
    result = send("c1", body, binary=binary)
    assert result["statusCode"] == 200
    (frame,) = inbox.new("c1")
    assert frame["type"] == "error" and frame["message"] and frame["timestamp"]
    assert table(store) == before
    log_line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert log_line["message"] == "rejected frame" and log_line["connectionId"] == "c1"


def test_oversized_frame_gets_an_error_frame(store: ConnectionStore, send: Send, inbox: Inbox) -> None:
    connect(store, "c1")
    send("c1", json.dumps({"type": "ping", "pad": "x" * MAX_MESSAGE_BYTES}))
    assert "the limit is 131072" in inbox.new("c1")[-1]["message"]


def test_unknown_connection_is_told_to_reconnect(
    store: ConnectionStore, send: Send, inbox: Inbox, faulty: FaultyClient
) -> None:
    send("ghost", {"type": "ping"})
    assert "reconnect" in inbox.all("ghost")[-1]["message"]
    assert "ghost" in faulty.closed
    assert table(store) == []


def test_logs_never_carry_bodies_tokens_or_emails(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker, users: Users,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    connect(store, "a", "b")
    users.add("private.person@example.org", name="Private Person")
    token = make_token("private.person@example.org")
    send("a", {"type": "authenticate", "token": token})
    login(send, inbox, make_token, users, "b", 2)
    send(
        "a",
        {
            "type": "ai-chat-notification",
            "targetUserId": users.person(2),
            "message": "diagnosis: confidential",
        },
    )
    send("a", {"type": "subscribe-email-verification", "email": "other.person@example.org"})
    send("a", '{"type": "ai-chat-notification", "message": "confidential too"}')
    out = capsys.readouterr().out
    lines = [json.loads(text) for text in out.strip().splitlines()]
    assert lines and all(line.get("connectionId") in ("a", "b") for line in lines)
    for secret in (
        token,
        "private.person",
        "Private Person",
        "other.person",
        "confidential",
        "@example.org",
    ):
        assert secret not in out


def test_fan_out_threads_keep_the_request_ids_in_their_log_lines(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker, users: Users, faulty: FaultyClient,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    connect(store, "sender", "t1", "t2", "t3")
    login(send, inbox, make_token, users, "sender", 1)
    for cid in ("t1", "t2", "t3"):
        login(send, inbox, make_token, users, cid, 2)
    faulty.broken |= {"t1", "t3"}  # 403s, logged by the pool threads
    capsys.readouterr()
    send(
        "sender",
        {"type": "ai-chat-notification", "targetUserId": users.person(2), "message": "hello"},
    )
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    failures = [line for line in lines if line["message"] == "post to connection failed"]
    assert len(failures) == 2 and {line["error"] for line in failures} == {"ForbiddenException"}
    assert all(line["requestId"] == lines[0]["requestId"] and line["connectionId"] == "sender" for line in failures)


def test_the_pre_traffic_hooks_reply_is_gone_and_its_session_leaves_no_row(
    store: ConnectionStore, directory: UserDirectory, sender: Sender, verifier: TokenVerifier, faulty: FaultyClient
) -> None:
    """On AWS the hook's connection (rollout/pre_traffic.py) exists nowhere but in the table: its
    replies get 410. The handler takes that as a client gone (row deactivated) and answers 200,
    what the hook expects; `$disconnect` then deletes the row."""
    cid = "pre-traffic-0a1b2c3d"
    connect(store, cid)
    faulty.gone.add(cid)
    where = {"domain_name": "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com", "stage": "prod", "connected_at": 1}
    event = session_event("Default", cid, "r-2", body=dialog_frame(), **where)
    answer = run(event, None, lambda request: handle_message(request, store, directory, sender, verifier))
    assert answer == {"statusCode": 200, "body": ""}
    assert faulty.calls.count(cid) >= 1  # the greeting was posted, and answered 410
    assert [(r["connection_id"], r["is_active"]) for r in table(store)] == [(cid, False)]
    request = parse_event(session_event("Disconnect", cid, "r-3", **where))
    assert disconnect.deactivate_connection(request, store)["statusCode"] == 200
    assert table(store) == []
