"""`$default`: CareConnect's protocol, authentication, delivery to users, and faults."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from handlers.auth import TokenVerifier
from handlers.default import handle_message
from handlers.entry import run
from handlers.events import parse_event
from handlers.protocol import MAX_MESSAGE_BYTES
from handlers.sender import Sender
from handlers.settings import JwtSettings
from handlers.store import ConnectionStore
from tests.handlers.conftest import FaultyClient, Inbox, TokenMaker, row, table
from tests.handlers.events import message_event

pytestmark = pytest.mark.postgres
Send = Callable[..., dict[str, Any]]


@pytest.fixture
def send(store: ConnectionStore, sender: Sender, verifier: TokenVerifier) -> Send:
    def deliver(connection_id: str, body: Any, *, binary: bool = False) -> dict[str, Any]:
        text = body if isinstance(body, str) or body is None else json.dumps(body)
        event = message_event(connection_id, text, binary=binary)
        return run(event, None, lambda request: handle_message(request, store, sender, verifier))

    return deliver


def connect(store: ConnectionStore, *ids: str) -> None:
    for cid in ids:
        store.register(cid, subscription_type="notifications", email=None, endpoint="https://x/prod",
                       ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip


def login(send: Send, inbox: Inbox, make_token: TokenMaker, cid: str, user_id: int) -> None:
    send(
        cid,
        {
            "type": "authenticate",
            "token": make_token(user_id, f"user{user_id}@example.org"),
            "userId": user_id,
        },
    )
    assert [f["type"] for f in inbox.new(cid)][-1] == "authentication-success"


def types(frames: list[dict[str, Any]]) -> list[str]:
    return [f["type"] for f in frames]


def test_first_message_is_greeted_then_answered(
    store: ConnectionStore, send: Send, inbox: Inbox
) -> None:
    connect(store, "c1")
    send("c1", {"type": "ping"})
    frames = inbox.new("c1")
    assert types(frames) == ["connection-established", "heartbeat-response"]
    assert frames[0]["sessionId"] == "c1" and frames[0]["message"]
    send("c1", {"type": "heartbeat"})
    assert types(inbox.new("c1")) == ["heartbeat-response"]
    assert all(f["timestamp"].endswith("Z") for f in frames)


def test_authenticate_success_marks_the_connection(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker
) -> None:
    connect(store, "c1")
    send(
        "c1",
        {
            "type": "authenticate",
            "token": make_token(42, "Pat@Example.org", "PATIENT"),
            "userId": 42,
        },
    )
    reply = inbox.new("c1")[-1]
    assert reply | {"timestamp": None} == {"type": "authentication-success", "userId": 42,
                                           "userEmail": "pat@example.org", "userRole": "PATIENT", "timestamp": None}  # fmt: skip
    r = row(store, "c1")
    assert (r["user_id"], r["user_email"], r["subscription_type"]) == (
        42,
        "pat@example.org",
        "authenticated",
    )


@pytest.mark.parametrize(
    ("token_args", "reason"),
    [
        ({"expires_in": -60}, "token expired"),
        ({"key": "not-the-server-secret-but-long-enough-0123456789"}, "invalid token"),
        ({"algorithm": "none", "key": ""}, "invalid token"),
    ],
)
def test_forged_or_expired_tokens_fail_and_close(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker, faulty: FaultyClient,
    token_args: dict[str, Any], reason: str, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    connect(store, "c1")
    token = make_token(42, **token_args)
    send("c1", {"type": "authenticate", "token": token, "userId": 42})
    reply = inbox.new("c1")[-1]
    assert reply["type"] == "authentication-failed" and reason in reply["message"]
    r = row(store, "c1")
    assert r["user_id"] is None and r["is_active"] is False
    assert token not in capsys.readouterr().out


def test_token_for_another_user_id_fails(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker
) -> None:
    connect(store, "c1")
    send("c1", {"type": "authenticate", "token": make_token(42), "userId": 43})
    assert (
        inbox.new("c1")[-1]["message"] == "authentication failed: userId does not match the token"
    )


def test_rs256_public_key_verification(
    store: ConnectionStore, sender: Sender, inbox: Inbox, make_token: TokenMaker
) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()  # fmt: skip
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()  # fmt: skip
    rs_verifier = TokenVerifier(JwtSettings(rs256_public_key=public))
    connect(store, "c1", "c2")

    def auth(cid: str, token: str) -> str:
        event = parse_event(
            message_event(cid, json.dumps({"type": "authenticate", "token": token}))
        )
        handle_message(event, store, sender, rs_verifier)
        return inbox.new(cid)[-1]["type"]

    assert auth("c1", make_token(5, key=pem, algorithm="RS256")) == "authentication-success"
    # An HS256 token "signed" with the public key (algorithm confusion) must not pass.
    assert auth("c2", make_token(5, key="x" * 64, algorithm="HS256")) == "authentication-failed"


def test_subscriptions_are_confirmed_and_stored(
    store: ConnectionStore, send: Send, inbox: Inbox
) -> None:
    connect(store, "c1", "c2")
    send("c1", {"type": "subscribe-email-verification", "email": "Verify.Me@Example.org"})
    assert inbox.new("c1")[-1]["type"] == "email-verification-subscription-confirmed"
    assert (row(store, "c1")["user_email"], row(store, "c1")["subscription_type"]) == (
        "verify.me@example.org", "email-verification")  # fmt: skip
    send("c2", {"type": "subscribe-to-updates", "updateTypes": ["medication", "vitals"]})
    reply = inbox.new("c2")[-1]
    assert reply["type"] == "subscription-confirmed" and reply["updateTypes"] == [
        "medication",
        "vitals",
    ]
    assert json.loads(row(store, "c2")["metadata"])["updateTypes"] == ["medication", "vitals"]


@pytest.mark.parametrize(
    ("message", "target_field", "received"),
    [
        ({"type": "ai-chat-notification", "targetUserId": 2, "message": "Your results are in", "conversationId": "conv-9"},
         "targetUserId", {"type": "ai-chat-response", "message": "Your results are in", "conversationId": "conv-9"}),
        ({"type": "medication-reminder", "patientId": 2, "medicationName": "Metformin", "reminderTime": "08:00"},
         "patientId", {"type": "medication-reminder", "medicationName": "Metformin", "reminderTime": "08:00"}),
        ({"type": "family-member-request", "patientId": 2, "requestType": "access"},
         "patientId", {"type": "family-member-request", "requestType": "access"}),
        ({"type": "send-video-call-invitation", "recipientId": 2, "callType": "video", "callId": "call-1",
          "senderId": 1, "timestamp": "2026-11-25T19:00:00Z"},
         "recipientId", {"type": "video-call-invitation", "callType": "video", "callId": "call-1", "senderId": 1}),
    ],
)  # fmt: skip
def test_addressed_messages_reach_every_connection_of_the_target(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker,
    message: dict[str, Any], target_field: str, received: dict[str, Any],
) -> None:  # fmt: skip
    connect(store, "sender", "phone", "tablet", "other")
    login(send, inbox, make_token, "sender", 1)
    login(send, inbox, make_token, "phone", 2)
    login(send, inbox, make_token, "tablet", 2)
    login(send, inbox, make_token, "other", 3)
    send("sender", message)
    for device in ("phone", "tablet"):
        (frame,) = inbox.new(device)
        assert {k: frame[k] for k in received} == received
        assert frame.get("fromUserId", frame.get("senderId")) == 1
    assert inbox.new("other") == [] and inbox.new("sender") == []


def test_addressed_messages_need_an_authenticated_sender(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker
) -> None:
    connect(store, "anon", "target")
    login(send, inbox, make_token, "target", 2)
    send("anon", {"type": "ai-chat-notification", "targetUserId": 2, "message": "hi"})
    assert inbox.new("anon")[-1] == {"type": "error", "message": "authenticate before sending ai-chat-notification",
                                     "timestamp": inbox.all("anon")[-1]["timestamp"]}  # fmt: skip
    assert inbox.new("target") == []


def test_impersonation_in_video_invitation_is_refused(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker
) -> None:
    connect(store, "a", "b")
    login(send, inbox, make_token, "a", 1)
    login(send, inbox, make_token, "b", 2)
    send(
        "a",
        {
            "type": "send-video-call-invitation",
            "recipientId": 2,
            "callType": "video",
            "callId": "x",
            "senderId": 2,
        },
    )
    assert "senderId is not the authenticated user" in inbox.new("a")[-1]["message"]
    assert inbox.new("b") == []


def test_logged_only_and_room_messages_send_nothing(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker
) -> None:
    connect(store, "c1")
    login(send, inbox, make_token, "c1", 1)
    for message in ({"type": "mood-pain-log-update", "mood": 3}, {"type": "vital-signs-alert", "bp": "180/110"},
                    {"type": "join-user-room", "userId": 1}):  # fmt: skip
        send("c1", message)
    assert inbox.new("c1") == []
    send("c1", {"type": "join-user-room", "userId": 99})
    assert inbox.new("c1")[-1]["type"] == "error"


def test_gone_connection_is_deactivated_and_others_still_receive(
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker, faulty: FaultyClient
) -> None:
    connect(store, "sender", "t1", "t2", "t3")
    login(send, inbox, make_token, "sender", 1)
    for cid in ("t1", "t2", "t3"):
        login(send, inbox, make_token, cid, 2)
    faulty.gone.add("t2")
    send("sender", {"type": "ai-chat-notification", "targetUserId": 2, "message": "hello"})
    assert types(inbox.new("t1")) == types(inbox.new("t3")) == ["ai-chat-response"]
    assert inbox.new("t2") == []
    assert row(store, "t2")["is_active"] is False
    assert row(store, "t1")["is_active"] is True and row(store, "t3")["is_active"] is True
    assert store.active_connections_of_user(2) == ["t1", "t3"]


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
    store: ConnectionStore, send: Send, inbox: Inbox, make_token: TokenMaker
) -> None:
    connect(store, "a", "b")
    login(send, inbox, make_token, "a", 1)
    login(send, inbox, make_token, "b", 2)
    shell = {"type": "ai-chat-notification", "targetUserId": 2, "message": ""}
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
    ("{oops", False), ("[]", False), ("42", False), ('"text"', False), ("", False), ("AAEC", True),
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


def test_oversized_frame_gets_an_error_frame(
    store: ConnectionStore, send: Send, inbox: Inbox
) -> None:
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
    store: ConnectionStore,
    send: Send,
    inbox: Inbox,
    make_token: TokenMaker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    connect(store, "a", "b")
    token = make_token(1, "private.person@example.org")
    send("a", {"type": "authenticate", "token": token})
    login(send, inbox, make_token, "b", 2)
    send(
        "a",
        {"type": "ai-chat-notification", "targetUserId": 2, "message": "diagnosis: confidential"},
    )
    send("a", {"type": "subscribe-email-verification", "email": "other.person@example.org"})
    send("a", '{"type": "ai-chat-notification", "message": "confidential too"}')
    out = capsys.readouterr().out
    lines = [json.loads(text) for text in out.strip().splitlines()]
    assert lines and all(line.get("connectionId") in ("a", "b") for line in lines)
    for secret in (token, "private.person", "other.person", "confidential", "@example.org"):
        assert secret not in out
