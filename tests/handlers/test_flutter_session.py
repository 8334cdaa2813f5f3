"""A scripted session replaying what the Flutter app does, through the three Lambda entry
points exactly as API Gateway invokes them: every frame each connection receives and the
table's rows are checked at the end."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from handlers import connect, default, disconnect, notify
from handlers.store import ConnectionStore
from tests.handlers.conftest import Inbox, TokenMaker, Users, table
from tests.handlers.events import connect_event, disconnect_event, message_event

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]
CONTEXT = SimpleNamespace(aws_request_id="lambda-req")


def say(connection_id: str, message: dict[str, Any]) -> None:
    assert default.handler(message_event(connection_id, json.dumps(message)), CONTEXT)["statusCode"] == 200


def without_timestamps(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for frame in frames:
        stamp = frame.pop("timestamp", None) or frame.pop("joinedAt", None)
        assert stamp is None or (isinstance(stamp, int) and stamp > 1_700_000_000_000)  # epoch ms
    return frames


def test_flutter_app_session(store: ConnectionStore, make_token: TokenMaker, users: Users, inbox: Inbox) -> None:
    pat = users.add("pat@example.org", "PATIENT", "Pat Patient")
    care = users.add("care@example.org", "CAREGIVER", None)
    # A patient on a phone, a caregiver, and a new user waiting for email verification.
    assert connect.handler(connect_event("patient-phone"), CONTEXT)["statusCode"] == 200
    assert connect.handler(connect_event("caregiver"), CONTEXT)["statusCode"] == 200
    assert connect.handler(connect_event("signup"), CONTEXT)["statusCode"] == 200  # the dialog sends no query

    # CareConnectWebSocketService sends its session's userId along; the backend ignores it.
    say(
        "patient-phone",
        {"type": "authenticate", "token": make_token("pat@example.org"), "userId": str(pat)},
    )
    say("caregiver", {"type": "authenticate", "token": make_token("care@example.org", "CAREGIVER")})
    say("patient-phone", {"type": "subscribe-to-updates", "updateTypes": ["medication", "ai-chat"]})
    say("patient-phone", {"type": "join-user-room", "userId": str(pat)})
    say("signup", {"type": "subscribe-email-verification", "email": "New@Example.org"})
    say("patient-phone", {"type": "ping"})
    say("caregiver", {"type": "medication-reminder", "patientId": str(pat), "medicationName": "Lisinopril",
                      "reminderTime": "09:00"})  # fmt: skip
    say("caregiver", {"type": "ai-chat-notification", "targetUserId": str(pat), "message": "Dr. Lee replied",
                      "conversationId": "c-1"})  # fmt: skip
    say("patient-phone", {"type": "vital-signs-alert", "heartRate": 130})
    say("caregiver", {"type": "heartbeat"})
    # AuthService verifies the address and pushes through the notify function.
    assert notify.handler({"message": {"type": "email-verified", "email": "new@example.org"}}, CONTEXT) == {
        "delivered": 1, "gone": 0, "failed": 0, "retried": 0}  # fmt: skip
    assert disconnect.handler(disconnect_event("patient-phone"), CONTEXT)["statusCode"] == 200
    say("caregiver", {"type": "family-member-request", "patientId": pat, "requestType": "access"})

    assert without_timestamps(inbox.all("patient-phone")) == [
        {"type": "connection-established", "message": default.GREETING, "sessionId": "patient-phone"},
        {"type": "authentication-success", "userId": pat, "userEmail": "pat@example.org", "userRole": "PATIENT"},
        {"type": "subscription-confirmed", "userId": pat, "subscribedTo": ["medication", "ai-chat"]},
        {"type": "user-joined", "userId": str(pat), "userEmail": "pat@example.org", "userRole": "PATIENT"},
        {"type": "heartbeat-response"},
        {"type": "medication-reminder", "medicationName": "Lisinopril", "reminderTime": "09:00",
         "message": "Time to take your Lisinopril"},
        {"type": "ai-chat-response", "fromUserId": care, "fromUserName": "care@example.org",
         "conversationId": "c-1", "message": "Dr. Lee replied"},
        # nothing after disconnect: the family-member-request found no active connection of the patient
    ]  # fmt: skip
    assert without_timestamps(inbox.all("caregiver")) == [
        {"type": "connection-established", "message": default.GREETING, "sessionId": "caregiver"},
        {
            "type": "authentication-success",
            "userId": care,
            "userEmail": "care@example.org",
            "userRole": "CAREGIVER",
        },
        {"type": "heartbeat-response"},
    ]
    assert without_timestamps(inbox.all("signup")) == [
        {"type": "connection-established", "message": default.GREETING, "sessionId": "signup"},
        {"type": "email-verification-subscription-confirmed", "email": "New@Example.org",  # as typed
         "message": "Subscribed to email verification notifications"},
        {"type": "email-verified", "email": "new@example.org", "verified": True,
         "message": "Your email has been verified successfully!"},
    ]  # fmt: skip

    rows = {r["connection_id"]: r for r in table(store)}
    assert {cid: (r["user_id"], r["user_email"], r["subscription_type"], r["is_active"])
            for cid, r in rows.items()} == {
        "patient-phone": (pat, "pat@example.org", "authenticated", False),
        "caregiver": (care, "care@example.org", "authenticated", True),
        "signup": (None, None, "email-verification", False),  # a subscription, no identity; dropped once notified
    }  # fmt: skip
    metadata = json.loads(rows["patient-phone"]["metadata"])
    assert metadata.pop("exp") > time.time()  # the token's expiry: the session ends then
    assert metadata == {"authenticated": True, "greeted": True, "role": "PATIENT", "name": "Pat Patient",
                        "service": "careconnect", "updateTypes": ["medication", "ai-chat"]}  # fmt: skip
    assert all(r["last_activity_at"] is not None and r["connection_type"] == "aws" for r in rows.values())
