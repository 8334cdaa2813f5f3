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
    # Kept as typed (the backend echoes the address as sent); compared ignoring case elsewhere.
    assert parse('{"type": "subscribe-email-verification", "email": "A@B.org"}').fields == {"email": "A@B.org"}
    assert parse('{"type": "subscribe-email-verification", "email": "admin@localhost"}').fields["email"] == (
        "admin@localhost"  # an address the backend accepts (AuthService)
    )
    assert parse('{"type": "subscribe-to-updates", "updateTypes": []}').fields == {"updateTypes": []}


@pytest.mark.parametrize("body", ["REGISTER_USER:42", "hello", '"ping"', "null", "42"])
def test_text_that_does_not_start_like_json_is_the_notifications_protocol(body: str) -> None:
    """NotificationWebSocketHandler (/ws/notifications) treats every frame as text."""
    assert parse(body).type == "text" and parse(body).fields == {"text": body}
