"""The contract with CareConnect: tokens minted exactly as the backend's JwtTokenProvider mints
them, a `users` table shaped like the JPA entity, and one table of every message the backend's
two handlers (CareConnectWebSocketHandler, CallNotificationHandler) and the Flutter clients
know: the frame in, and the frames (types and fields) each party receives."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from handlers.auth import TokenVerifier
from handlers.default import HANDLERS, handle_message
from handlers.entry import run
from handlers.protocol import MESSAGE_FIELDS, TEXT
from handlers.sender import Sender
from handlers.store import ConnectionStore
from handlers.users import UserDirectory
from tests.handlers.careconnect import BackendSecret, mint
from tests.handlers.conftest import SECRET, Inbox, Users, row
from tests.handlers.events import message_event

pytestmark = pytest.mark.postgres

Ids = dict[str, int]
Frame = dict[str, Any]


@dataclass
class Cast:
    """Pat (patient) and Cara (caregiver) connected and authenticated; Dora exists but is offline;
    `anon` is a connection that never authenticated."""

    store: ConnectionStore
    directory: UserDirectory
    sender: Sender
    verifier: TokenVerifier
    inbox: Inbox
    ids: Ids = field(default_factory=dict)

    def send(self, connection_id: str, body: Any) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        run(message_event(connection_id, text), None,
            lambda request: handle_message(request, self.store, self.directory, self.sender, self.verifier))  # fmt: skip

    def connect(self, *connection_ids: str) -> None:
        for cid in connection_ids:
            self.store.register(cid, subscription_type="notifications", email=None, endpoint="https://x/prod",
                                ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip

    def login(self, connection_id: str, email: str) -> None:
        self.send(connection_id, {"type": "authenticate", "token": mint(SECRET.key, email, "PATIENT")})


@pytest.fixture
def cast(store: ConnectionStore, directory: UserDirectory, users: Users, sender: Sender, verifier: TokenVerifier,
         inbox: Inbox) -> Cast:  # fmt: skip
    c = Cast(store, directory, sender, verifier, inbox)
    c.ids = {"pat": users.add("pat@example.org", "PATIENT", "Pat Patient"),
             "cara": users.add("cara@example.org", "CAREGIVER", "Cara Giver"),
             "dora": users.add("dora@example.org", "FAMILY_MEMBER", None)}  # fmt: skip
    c.connect("pat", "cara", "anon")
    c.login("pat", "pat@example.org")
    c.login("cara", "cara@example.org")
    for cid in ("pat", "cara", "anon"):
        c.send(cid, {"type": "heartbeat"})  # greeted and answered: start every case with empty inboxes
        inbox.new(cid)
    return c


Expect = dict[str, list[tuple[str, Frame]]]  # connection -> [(type, fields it must carry)]
P, C = "{pat}", "{cara}"


def fill(value: Any, ids: Ids) -> Any:
    """Replace "{pat}" style placeholders with ids (as numbers; "str:{pat}" as text)."""
    if isinstance(value, dict):
        return {k: fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, ids) for v in value]
    if isinstance(value, str) and value.startswith("str:{"):
        return str(ids[value[5:-1]])
    if isinstance(value, str) and value.startswith("{") and value.endswith("}") and value[1:-1] in ids:
        return ids[value[1:-1]]
    return value


UNAUTHENTICATED = [("error", {"message": "User not authenticated"})]
CALL = {"callId": "call-7", "isVideoCall": True, "callType": "general", "senderId": P, "senderName": "Pat Patient",
        "senderEmail": "pat@example.org", "senderRole": "PATIENT"}  # fmt: skip
CASES: list[tuple[str, str, Frame, Expect]] = [
    # /ws/careconnect (CareConnectWebSocketHandler)
    ("heartbeat", "pat", {"type": "heartbeat"}, {"pat": [("heartbeat-response", {})]}),
    ("ping (Flutter)", "pat", {"type": "ping"}, {"pat": [("heartbeat-response", {})]}),
    ("subscribe-to-updates, all", "pat", {"type": "subscribe-to-updates"},
     {"pat": [("subscription-confirmed", {"userId": P, "subscribedTo": ["all"]})]}),
    ("subscribe-to-updates, some", "pat", {"type": "subscribe-to-updates", "updateTypes": ["vitals"]},
     {"pat": [("subscription-confirmed", {"userId": P, "subscribedTo": ["vitals"]})]}),
    ("subscribe-to-updates, anonymous", "anon", {"type": "subscribe-to-updates"}, {"anon": UNAUTHENTICATED}),
    ("subscribe-email-verification", "anon", {"type": "subscribe-email-verification", "email": "new@example.org"},
     {"anon": [("email-verification-subscription-confirmed",
                {"email": "new@example.org", "message": "Subscribed to email verification notifications"})]}),
    ("subscribe-email-verification, no email", "anon", {"type": "subscribe-email-verification"},
     {"anon": [("error", {})]}),
    ("ai-chat-notification", "pat", {"type": "ai-chat-notification", "targetUserId": "str:{cara}", "message": "Hi",
                                     "conversationId": "conv-1"},
     {"cara": [("ai-chat-response", {"fromUserId": P, "fromUserName": "Pat Patient", "conversationId": "conv-1",
                                     "message": "Hi"})], "pat": []}),
    ("ai-chat-notification, anonymous", "anon", {"type": "ai-chat-notification", "targetUserId": C, "message": "x"},
     {"anon": UNAUTHENTICATED, "cara": []}),
    ("medication-reminder", "cara", {"type": "medication-reminder", "patientId": "str:{pat}",
                                     "medicationName": "Metformin", "reminderTime": "08:00"},
     {"pat": [("medication-reminder", {"medicationName": "Metformin", "reminderTime": "08:00",
                                       "message": "Time to take your Metformin"})], "cara": []}),
    ("family-member-request", "cara", {"type": "family-member-request", "patientId": P, "requestType": "link"},
     {"pat": [("family-member-request", {"fromUserId": C, "fromUserName": "Cara Giver",
                                         "fromUserEmail": "cara@example.org", "requestType": "link"})]}),
    ("mood-pain-log-update", "pat", {"type": "mood-pain-log-update", "moodValue": 3}, {"pat": [], "cara": []}),
    ("mood-pain-log-update, anonymous", "anon", {"type": "mood-pain-log-update"}, {"anon": UNAUTHENTICATED}),
    ("vital-signs-alert", "pat", {"type": "vital-signs-alert", "severity": "HIGH"}, {"pat": [], "cara": []}),
    ("vital-signs-alert, anonymous", "anon", {"type": "vital-signs-alert"}, {"anon": UNAUTHENTICATED}),
    ("unknown type", "pat", {"type": "make-coffee"}, {"pat": [("error", {})]}),
    ("bad JSON", "pat", "{not json", {"pat": [("error", {})]}),
    # /ws/calls (CallNotificationHandler) and the app's CareConnectWebSocketService
    ("join-user-room", "pat", {"type": "join-user-room", "userId": "str:{pat}"},
     {"pat": [("user-joined", {"userId": "str:{pat}", "userEmail": "pat@example.org", "userRole": "PATIENT"})]}),
    ("join-user-room, anonymous", "anon", {"type": "join-user-room"}, {"anon": UNAUTHENTICATED}),
    ("send-video-call-invitation", "pat", {"type": "send-video-call-invitation", "recipientId": "str:{cara}",
                                           "callId": "call-7", "senderId": "str:{pat}"},
     {"cara": [("incoming-video-call", CALL), ("video-call-invitation", CALL)],
      "pat": [("call-invitation-sent", {"callId": "call-7", "recipientId": "str:{cara}", "recipientName": "Cara Giver",
                                        "status": "delivered"})]}),
    ("send-video-call-invitation, offline", "pat", {"type": "send-video-call-invitation", "recipientId": "{dora}",
                                                    "callId": "call-8", "callType": "video"},
     {"pat": [("call-invitation-failed", {"callId": "call-8", "reason": "Recipient not online",
                                          "recipientId": "str:{dora}"})]}),
    ("send-video-call-invitation, unknown recipient", "pat", {"type": "send-video-call-invitation",
                                                              "recipientId": 999999, "callId": "c"},
     {"pat": [("error", {"message": "Recipient not found"})]}),
    ("send-video-call-invitation, impersonating", "pat", {"type": "send-video-call-invitation", "recipientId": C,
                                                          "callId": "c", "senderId": C},
     {"pat": [("error", {})], "cara": []}),
    ("accept-call", "cara", {"type": "accept-call", "callId": "call-7", "senderId": "str:{pat}"},
     {"pat": [("call-answered", {"callId": "call-7", "answeredBy": C, "answeredByName": "Cara Giver"})], "cara": []}),
    ("decline-call", "cara", {"type": "decline-call", "callId": "call-7", "senderId": P},
     {"pat": [("call-declined", {"callId": "call-7", "declinedBy": C, "declinedByName": "Cara Giver",
                                 "reason": "declined"})]}),
    ("end-call", "pat", {"type": "end-call", "callId": "call-7", "otherPartyId": C},
     {"cara": [("call-ended", {"callId": "call-7", "endedBy": P, "endedByName": "Pat Patient"})]}),
    ("send-sms-notification", "pat", {"type": "send-sms-notification", "recipientId": C, "message": "On my way"},
     {"cara": [("incoming-sms", {"senderId": P, "senderName": "Pat Patient", "senderEmail": "pat@example.org",
                                 "senderRole": "PATIENT", "message": "On my way", "messageType": "general"})],
      "pat": [("sms-sent", {"recipientId": "str:{cara}", "recipientName": "Cara Giver", "status": "delivered"})]}),
    ("send-sms-notification, offline", "pat", {"type": "send-sms-notification", "recipientId": "{dora}",
                                               "message": "x"},
     {"pat": [("sms-failed", {"reason": "Recipient not online", "recipientId": "str:{dora}"})]}),
    ("heartbeat, anonymous", "anon", {"type": "heartbeat"}, {"anon": [("heartbeat-response", {})]}),
]  # fmt: skip
TIMED = {"heartbeat-response", "subscription-confirmed", "email-verification-subscription-confirmed",
         "ai-chat-response", "medication-reminder", "family-member-request", "incoming-video-call",
         "video-call-invitation", "call-answered", "call-declined", "call-ended", "incoming-sms", "error"}  # fmt: skip


@pytest.mark.parametrize(("sender_id", "frame", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_message_gets_the_backends_answer(cast: Cast, sender_id: str, frame: Frame | str,
                                                expected: Expect) -> None:  # fmt: skip
    cast.send(sender_id, fill(frame, cast.ids))
    for connection_id, frames in expected.items():
        got = cast.inbox.new(connection_id)
        assert [f["type"] for f in got] == [kind for kind, _ in frames], connection_id
        for received, (kind, fields) in zip(got, frames, strict=True):
            wanted = fill(fields, cast.ids)
            assert {k: received.get(k) for k in wanted} == wanted, kind
            if kind in TIMED:  # System.currentTimeMillis(): a number of milliseconds
                assert isinstance(received["timestamp"], int) and received["timestamp"] > 1_700_000_000_000


def test_the_table_covers_every_message_type_and_the_dispatch_table_matches() -> None:
    sent = {c[2]["type"] for c in CASES if isinstance(c[2], dict)} - {"make-coffee"} | {"authenticate"}  # below
    # and the plain text of /ws/notifications (tests/handlers/test_contract_identity.py)
    assert sent == set(MESSAGE_FIELDS) == set(HANDLERS) - {TEXT}


def authenticate(cast: Cast, token: str, connection_id: str = "new", **extra: Any) -> Frame:
    cast.connect(connection_id)
    cast.send(connection_id, {"type": "authenticate", "token": token, **extra})
    return cast.inbox.new(connection_id)[-1]


def test_a_backend_token_authenticates_as_that_user_from_the_users_table(cast: Cast) -> None:
    reply = authenticate(cast, mint(SECRET.key, "cara@example.org", "PATIENT"))  # the role claim is not trusted
    assert reply == {"type": "authentication-success", "userId": cast.ids["cara"], "userEmail": "cara@example.org",
                     "userRole": "CAREGIVER"}  # fmt: skip
    r = row(cast.store, "new")
    assert (r["user_id"], r["user_email"], r["subscription_type"]) == (cast.ids["cara"], "cara@example.org",
                                                                       "authenticated")  # fmt: skip


Refusal = Callable[[Cast, Users], str]
REFUSALS: dict[str, tuple[Refusal, str]] = {
    "expired": (lambda c, u: mint(SECRET.key, "pat@example.org", "PATIENT", ttl=-60), "Invalid or missing token"),
    "wrong issuer": (lambda c, u: mint(SECRET.key, "pat@example.org", "PATIENT", issuer="someone-else"),
                     "Invalid or missing token"),
    "no issuer": (lambda c, u: mint(SECRET.key, "pat@example.org", "PATIENT", issuer=None), "Invalid or missing token"),
    "wrong key": (lambda c, u: mint(BackendSecret.generate().key, "pat@example.org", "PATIENT"),
                  "Invalid or missing token"),
    # What the earlier handlers did: the secret's text as the key. The backend never signs so.
    "secret text as key": (lambda c, u: mint(SECRET.text.encode(), "pat@example.org", "PATIENT"),
                           "Invalid or missing token"),
    "unknown user": (lambda c, u: mint(SECRET.key, "nobody@example.org", "PATIENT"), "User not found"),
    "inactive user": (lambda c, u: (u.add("gone@example.org", status="SUSPENDED"),
                                    mint(SECRET.key, "gone@example.org", "PATIENT"))[1], "User account is not active"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(REFUSALS))
def test_refused_tokens_fail_close_and_leave_no_identity(cast: Cast, users: Users, case: str) -> None:
    make, message = REFUSALS[case]
    reply = authenticate(cast, make(cast, users))
    assert reply["type"] == "authentication-failed" and reply["message"] == message
    r = row(cast.store, "new")
    assert r["user_id"] is None and r["is_active"] is False


def test_impersonation_by_user_id_is_refused(cast: Cast) -> None:
    """The backend ignores the message's userId; here a userId naming someone else is refused."""
    reply = authenticate(cast, mint(SECRET.key, "pat@example.org", "PATIENT"), userId=cast.ids["cara"])
    assert reply["type"] == "authentication-failed"
    assert authenticate(cast, mint(SECRET.key, "pat@example.org", "PATIENT"), "again",
                        userId=cast.ids["pat"])["type"] == "authentication-success"  # fmt: skip


def test_the_backends_unpadded_secret_is_decoded_as_java_decodes_it() -> None:
    from handlers.auth import hmac_key

    secret = BackendSecret.generate(59)  # 79 base64 characters, no padding, like the dev secret
    assert len(secret.text) % 4 == 3 and hmac_key(secret.text) == secret.key
