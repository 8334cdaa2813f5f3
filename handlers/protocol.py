"""CareConnect's WebSocket message protocol: parsing client frames and building server frames.

Clients send JSON text frames `{"type": ...}` (some route by `action`; both are accepted). Every
problem with a frame becomes a ProtocolError whose text names it; the default handler turns
that into an `error {message, timestamp}` frame.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAX_MESSAGE_BYTES = 128 * 1024  # API Gateway's message limit; larger ones close with 1009
# What the backend accepts (a non-empty string; AuthService's addresses include admin@localhost),
# kept to one "@" and no spaces so a typo is answered; kept as typed, compared ignoring case.
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,190}$")
MAX_TEXT = 16 * 1024


class ProtocolError(ValueError):
    """A client frame the protocol does not accept; the text is safe to send back."""


def _text(limit: int = MAX_TEXT) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ProtocolError(f"'{name}' must be a non-empty string")
        if len(value) > limit:
            raise ProtocolError(f"'{name}' is longer than {limit} characters")
        return value

    return check


def _user_id(name: str, value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 2**63:
        raise ProtocolError(f"'{name}' must be a positive integer user id")
    return value


def _email(name: str, value: Any) -> str:
    if not isinstance(value, str) or not EMAIL.match(value):
        raise ProtocolError(f"'{name}' must be an email address")
    return value


def _identifier(name: str, value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _text(256)(name, value)


def _update_types(name: str, value: Any) -> list[str]:
    if not isinstance(value, list) or len(value) > 50:  # [] is confirmed as [], as the backend does
        raise ProtocolError(f"'{name}' must be a list of at most 50 strings")
    return [_text(64)(f"{name}[{i}]", item) for i, item in enumerate(value)]


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ProtocolError(f"'{name}' must be true or false")
    return value


def _anything(name: str, value: Any) -> Any:
    return value


Check = Callable[[str, Any], Any]
# type -> {field: (check, required)}. The two backend handlers' messages (/ws/careconnect and
# /ws/calls) and what the Flutter clients send; unknown fields are ignored, as the backend does.
MESSAGE_FIELDS: dict[str, dict[str, tuple[Check, bool]]] = {
    "authenticate": {"token": (_text(8192), True), "userId": (_user_id, False)},
    "subscribe-email-verification": {"email": (_email, True)},
    "subscribe-to-updates": {"updateTypes": (_update_types, False)},
    "ai-chat-notification": {
        # AI answers can be long: the frame limit is the only bound on the message.
        "targetUserId": (_user_id, True),
        "message": (_text(MAX_MESSAGE_BYTES), True),
        "conversationId": (_identifier, False),
    },
    "medication-reminder": {
        "patientId": (_user_id, True),
        "medicationName": (_text(256), True),
        "reminderTime": (_text(64), True),
    },
    "family-member-request": {"patientId": (_user_id, True), "requestType": (_text(64), True)},
    "mood-pain-log-update": {"moodValue": (_anything, False), "painValue": (_anything, False)},
    "vital-signs-alert": {
        "alertType": (_anything, False),
        "message": (_anything, False),
        "severity": (_anything, False),
    },
    "heartbeat": {},
    "ping": {},
    "join-user-room": {"userId": (_user_id, False)},
    "send-video-call-invitation": {
        "recipientId": (_user_id, True),
        "callId": (_identifier, True),
        "callType": (_text(32), False),
        "isVideoCall": (_flag, False),
        "senderId": (_user_id, False),
        "timestamp": (_anything, False),
    },
    "accept-call": {"callId": (_identifier, True), "senderId": (_user_id, True)},
    "decline-call": {"callId": (_identifier, True), "senderId": (_user_id, True), "reason": (_text(256), False)},
    "end-call": {"callId": (_identifier, True), "otherPartyId": (_user_id, True)},
    "send-sms-notification": {
        "recipientId": (_user_id, True),
        "message": (_text(MAX_TEXT), True),
        "messageType": (_text(64), False),
    },
}


# `{type: authenticate, token: ...}`: what a Dart Map's toString() gives, which one of the app's
# services sends instead of JSON (the backend drops it silently; we say why).
DART_MAP_TEXT = re.compile(r"^\s*\{\s*[A-Za-z_][\w-]*\s*:")


# `/ws/notifications` (NotificationWebSocketHandler) speaks plain text: a frame that does not
# start like JSON is one of its messages.
TEXT = "text"
REGISTER_USER = "REGISTER_USER:"
# AuthService's `email-verified` push (WebSocketNotificationService.sendEmailVerificationNotification).
EMAIL_VERIFIED_DEFAULTS = {"verified": True, "message": "Your email has been verified successfully!"}


@dataclass(frozen=True)
class Message:
    type: str
    fields: dict[str, Any]


def parse(body: str | None, *, is_base64: bool = False) -> Message:
    """Validate one client frame; raise ProtocolError naming the first problem."""
    if is_base64:
        raise ProtocolError("binary frames are not supported: send JSON text frames")
    if body is None or body == "":
        raise ProtocolError("empty frame: send a JSON object with a 'type'")
    size = len(body.encode("utf-8", errors="replace"))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")
    if body.lstrip()[:1] not in ("{", "["):
        return Message(TEXT, {"text": body})
    try:
        data = json.loads(body)
    except ValueError as error:
        if DART_MAP_TEXT.match(body):
            raise ProtocolError(
                "malformed JSON: this is Dart's Map.toString() text ({key: value}), not JSON; "
                "send jsonEncode(message) (the app's CallNotificationService sends map.toString())"
            ) from None
        raise ProtocolError(f"malformed JSON: {error}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"a message must be a JSON object, not {_json_kind(data)}")
    kind = data.get("type", data.get("action"))
    if kind is None:
        raise ProtocolError("missing 'type': every message needs one")
    if not isinstance(kind, str):
        raise ProtocolError("'type' must be a string")
    if kind not in MESSAGE_FIELDS:
        shown = kind if len(kind) <= 64 else kind[:64] + "..."
        raise ProtocolError(f"unknown message type {shown!r}; expected one of {', '.join(MESSAGE_FIELDS)}")
    fields: dict[str, Any] = {}
    for name, (check, required) in MESSAGE_FIELDS[kind].items():
        if name not in data or data[name] is None:
            if required:
                raise ProtocolError(f"'{name}' is required for {kind}")
            continue
        fields[name] = check(name, data[name])
    return Message(kind, fields)


def _json_kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def timestamp() -> int:
    """Epoch milliseconds, a number, as every backend frame carries (System.currentTimeMillis)."""
    return time.time_ns() // 1_000_000


def frame(kind: str, **fields: Any) -> dict[str, Any]:
    """A server frame: `type`, its fields, and a timestamp."""
    return {"type": kind, **fields, "timestamp": timestamp()}


def error_frame(message: str) -> dict[str, Any]:
    return frame("error", message=message)
