"""A scripted session replaying what the Flutter app does, through the three Lambda entry
points exactly as API Gateway invokes them: every frame each connection receives and the
table's rows are checked at the end."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest

from handlers import connect, default, disconnect
from handlers.store import ConnectionStore
from tests.handlers.conftest import Inbox, TokenMaker, table
from tests.handlers.events import connect_event, disconnect_event, message_event

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]
CONTEXT = SimpleNamespace(aws_request_id="lambda-req")


def say(connection_id: str, message: dict[str, Any]) -> None:
    assert (
        default.handler(message_event(connection_id, json.dumps(message)), CONTEXT)["statusCode"]
        == 200
    )


def without_timestamps(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for frame in frames:
        assert frame.pop("timestamp").endswith("Z")
    return frames


def test_flutter_app_session(
    store: ConnectionStore, make_token: TokenMaker, management: Any
) -> None:
    inbox = Inbox({})
    # A patient (user 7) on a phone, a caregiver (user 9), and a new user waiting for email verification.
    assert connect.handler(connect_event("patient-phone"), CONTEXT)["statusCode"] == 200
    assert connect.handler(connect_event("caregiver"), CONTEXT)["statusCode"] == 200
    assert connect.handler(connect_event("signup", {"email": "New@Example.org", "type": "email-verification"}),
                           CONTEXT)["statusCode"] == 200  # fmt: skip

    say(
        "patient-phone",
        {"type": "authenticate", "token": make_token(7, "pat@example.org", "PATIENT"), "userId": 7},
    )
    say(
        "caregiver",
        {
            "type": "authenticate",
            "token": make_token(9, "care@example.org", "CAREGIVER"),
            "userId": 9,
        },
    )
    say("patient-phone", {"type": "subscribe-to-updates", "updateTypes": ["medication", "ai-chat"]})
    say("patient-phone", {"type": "join-user-room", "userId": 7})
    say("signup", {"type": "subscribe-email-verification", "email": "New@Example.org"})
    say("patient-phone", {"type": "ping"})
    say(
        "caregiver",
        {
            "type": "medication-reminder",
            "patientId": 7,
            "medicationName": "Lisinopril",
            "reminderTime": "09:00",
        },
    )
    say(
        "caregiver",
        {
            "type": "ai-chat-notification",
            "targetUserId": 7,
            "message": "Dr. Lee replied",
            "conversationId": "c-1",
        },
    )
    say("patient-phone", {"type": "vital-signs-alert", "heartRate": 130})
    say("caregiver", {"type": "heartbeat"})
    assert disconnect.handler(disconnect_event("patient-phone"), CONTEXT)["statusCode"] == 200
    say("caregiver", {"type": "family-member-request", "patientId": 7, "requestType": "access"})

    assert without_timestamps(inbox.all("patient-phone")) == [
        {
            "type": "connection-established",
            "message": default.GREETING,
            "sessionId": "patient-phone",
        },
        {
            "type": "authentication-success",
            "userId": 7,
            "userEmail": "pat@example.org",
            "userRole": "PATIENT",
        },
        {"type": "subscription-confirmed", "updateTypes": ["medication", "ai-chat"]},
        {"type": "heartbeat-response"},
        {
            "type": "medication-reminder",
            "fromUserId": 9,
            "medicationName": "Lisinopril",
            "reminderTime": "09:00",
        },
        {
            "type": "ai-chat-response",
            "fromUserId": 9,
            "message": "Dr. Lee replied",
            "conversationId": "c-1",
        },
        # nothing after disconnect: the family-member-request found no active connection of user 7
    ]
    assert without_timestamps(inbox.all("caregiver")) == [
        {"type": "connection-established", "message": default.GREETING, "sessionId": "caregiver"},
        {
            "type": "authentication-success",
            "userId": 9,
            "userEmail": "care@example.org",
            "userRole": "CAREGIVER",
        },
        {"type": "heartbeat-response"},
    ]
    assert without_timestamps(inbox.all("signup")) == [
        {"type": "connection-established", "message": default.GREETING, "sessionId": "signup"},
        {"type": "email-verification-subscription-confirmed", "email": "new@example.org",
         "message": "You will be notified when this email address is verified"},
    ]  # fmt: skip

    rows = {r["connection_id"]: r for r in table(store)}
    assert {
        cid: (r["user_id"], r["user_email"], r["subscription_type"], r["is_active"])
        for cid, r in rows.items()
    } == {
        "patient-phone": (7, "pat@example.org", "authenticated", False),
        "caregiver": (9, "care@example.org", "authenticated", True),
        "signup": (None, "new@example.org", "email-verification", True),
    }
    assert json.loads(rows["patient-phone"]["metadata"]) == {
        "authenticated": True, "role": "PATIENT", "updateTypes": ["medication", "ai-chat"]}  # fmt: skip
    assert all(
        r["last_activity_at"] is not None and r["connection_type"] == "aws" for r in rows.values()
    )
