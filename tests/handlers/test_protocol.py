"""Parsing client frames: every kind of bad input is named precisely."""

from __future__ import annotations

import json

import pytest

from handlers.protocol import MAX_MESSAGE_BYTES, ProtocolError, parse


@pytest.mark.parametrize(
    ("body", "binary", "expected"),
    [
        ("{not json", False, "malformed JSON"),
        # CallNotificationService's frame as the app sends it (Map.toString(), not jsonEncode)
        ("{type: register, userId: 5, userRole: CAREGIVER}", False, "Dart's Map.toString() text"),
        ("[1, 2]", False, "must be a JSON object, not an array"),
        ('"ping"', False, "not a string"),
        ("null", False, "not null"),
        ("", False, "empty frame"),
        (None, False, "empty frame"),
        ("AAEC", True, "binary frames are not supported"),
        ("{}", False, "missing 'type'"),
        ('{"type": 42}', False, "'type' must be a string"),
        ('{"type": "launch-missiles"}', False, "unknown message type 'launch-missiles'"),
        ('{"type": "authenticate"}', False, "'token' is required for authenticate"),
        ('{"type": "subscribe-email-verification", "email": "nope"}', False, "'email' must be an email address"),
        ('{"type": "ai-chat-notification", "targetUserId": "abc", "message": "hi"}', False,
         "'targetUserId' must be a positive integer"),
        ('{"type": "ai-chat-notification", "targetUserId": true, "message": "hi"}', False,
         "'targetUserId' must be a positive integer"),
        ('{"type": "ai-chat-notification", "targetUserId": 5, "message": ""}', False, "'message' must be a non-empty"),
        ('{"type": "subscribe-to-updates", "updateTypes": "all"}', False, "'updateTypes' must be a list"),
        ('{"type": "medication-reminder", "patientId": 3, "medicationName": "x"}', False,
         "'reminderTime' is required"),
    ],
)  # fmt: skip
def test_bad_frames_are_named(body: str | None, binary: bool, expected: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        parse(body, is_base64=binary)
    assert expected in str(raised.value)


def test_oversized_frame_is_refused_before_parsing() -> None:
    body = json.dumps({"type": "ping", "pad": "x" * MAX_MESSAGE_BYTES})
    with pytest.raises(ProtocolError, match=f"the limit is {MAX_MESSAGE_BYTES}"):
        parse(body)


def test_action_is_accepted_for_clients_that_route_by_it() -> None:
    assert parse('{"action": "heartbeat"}').type == "heartbeat"
    assert parse('{"type": "ping", "action": "ignored"}').type == "ping"


def test_fields_are_normalised() -> None:
    message = parse('{"type": "ai-chat-notification", "targetUserId": "42", "message": "hi", "conversationId": 9}')
    assert message.fields == {"targetUserId": 42, "message": "hi", "conversationId": "9"}
    assert parse('{"type": "subscribe-email-verification", "email": "A@B.org"}').fields == {"email": "a@b.org"}
