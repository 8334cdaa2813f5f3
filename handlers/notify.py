"""`handlers.notify.handler`: how the CareConnect backend pushes to connected apps.

Invoked synchronously (AWS SDK `Invoke`, RequestResponse) with

    {"recipients": {"userIds": [...], "emails": [...], "roles": [...], "all": false},
     "message": {"type": "...", ...}}

it answers `{"delivered": n, "gone": m, "failed": k}` (connections reached, found closed and
deactivated, failed), or `{"error": "..."}` naming what was wrong, with nothing sent. Each
`WebSocketNotificationService` method maps to one message type (see the README). The message
is checked (a known type, its required fields, 128 KB) and gets a `timestamp` (epoch ms) when
it has none. `email-verified` goes to the connections subscribed for that email (recipients
are not needed); the unauthenticated ones are then deactivated, as the backend drops them. Every
other push reaches only connections authenticated as a recipient (unexpired token, user ACTIVE).
`{"recipients": ..., "text": "..."}` pushes plain text (NotificationController) to those of them
that registered their own id with `REGISTER_USER:<id>`. `{"query": ...}` answers the backend's
online-status queries (`answer_query`). Bodies are never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from handlers import runtime
from handlers.entry import invoke, logger
from handlers.protocol import EMAIL, EMAIL_VERIFIED_DEFAULTS, TEXT, timestamp
from handlers.sender import Outcome, PayloadTooLarge, Sender, encode
from handlers.store import ConnectionStore

# type -> fields the message must carry (from WebSocketNotificationService and AuthService).
PUSH_MESSAGES: dict[str, tuple[str, ...]] = {
    "email-verified": ("email",),
    "incoming-video-call": ("senderId", "senderName", "callId"),
    "incoming-sms": ("senderId", "senderName", "message"),
    "ai-chat-response": ("conversationId", "message"),
    "mood-pain-log-updated": ("patientId", "patientName"),
    "medication-reminder": ("medicationName", "reminderTime", "message"),
    "vital-signs-alert": ("patientId", "patientName", "alertType", "message", "severity"),
    "family-member-request": ("fromUserId", "fromUserName", "fromUserEmail"),
    "emergency-alert": ("patientId", "patientName", "message"),
    "appointment-reminder": ("appointmentTime", "providerName", "message"),
    "system-announcement": ("title", "message"),
    "sos-call": ("data",),
}
# The app's CareConnectWebSocketService waits for this name instead of incoming-video-call.
ALSO_SENT_AS = {"incoming-video-call": "video-call-invitation"}
MAX_RECIPIENTS = 10_000


class InvalidNotification(ValueError):
    """The invocation's payload is wrong; the text says what and how to fix it."""


@dataclass(frozen=True)
class Recipients:
    user_ids: tuple[int, ...] = ()
    emails: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    everyone: bool = False

    @property
    def empty(self) -> bool:
        return not (self.user_ids or self.emails or self.roles or self.everyone)


@dataclass(frozen=True)
class Notification:
    recipients: Recipients
    message: dict[str, Any] | str  # str: a plain-text push (NotificationController)

    @property
    def type(self) -> str:
        return TEXT if isinstance(self.message, str) else str(self.message["type"])


def _list(recipients: Mapping[str, Any], name: str) -> list[Any]:
    value = recipients.get(name, [])
    if not isinstance(value, list) or len(value) > MAX_RECIPIENTS:
        raise InvalidNotification(f"recipients.{name} must be a list of at most {MAX_RECIPIENTS} items")
    return value


def _user_id(value: Any, name: str = "recipients.userIds holds") -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidNotification(f"{name} {value!r}: user ids are positive integers")
    return value


def parse_recipients(raw: Any) -> Recipients:
    if raw is None:
        return Recipients()
    if not isinstance(raw, dict):
        raise InvalidNotification("'recipients' must be an object with userIds, emails, roles and/or all")
    unknown = set(raw) - {"userIds", "emails", "roles", "all"}
    if unknown:
        raise InvalidNotification(f"recipients has unknown keys {sorted(unknown)}: use userIds, emails, roles, all")
    emails = _list(raw, "emails")
    bad = [i for i, e in enumerate(emails) if not isinstance(e, str) or not EMAIL.match(e)]
    if bad:  # the value itself is not repeated: errors are logged, addresses are personal data
        raise InvalidNotification(f"recipients.emails[{bad[0]}] is not an email address")
    roles = _list(raw, "roles")
    if not all(isinstance(r, str) and r for r in roles):
        raise InvalidNotification("recipients.roles must be role names such as CAREGIVER")
    everyone = raw.get("all", False)
    if not isinstance(everyone, bool):
        raise InvalidNotification("recipients.all must be true or false")
    return Recipients(
        tuple(_user_id(u) for u in _list(raw, "userIds")),
        tuple(e.lower() for e in emails),
        tuple(r.upper() for r in roles),
        everyone,
    )


def parse_notification(event: Any) -> Notification:
    """Validate an invocation; raise InvalidNotification naming the first problem."""
    if not isinstance(event, dict):
        raise InvalidNotification("the payload must be a JSON object with 'recipients' and 'message'")
    if "text" in event:
        return _text_push(event)
    message = event.get("message")
    if not isinstance(message, dict):
        raise InvalidNotification("'message' must be an object with a 'type'")
    kind = message.get("type")
    if kind not in PUSH_MESSAGES:
        raise InvalidNotification(f"unknown message type {kind!r}; expected one of {', '.join(PUSH_MESSAGES)}")
    missing = [name for name in PUSH_MESSAGES[kind] if message.get(name) is None]  # "" is sent, as Java does
    if missing:
        raise InvalidNotification(f"{kind} needs {', '.join(missing)}")
    recipients = parse_recipients(event.get("recipients"))
    if kind == "email-verified":
        if not isinstance(message["email"], str) or not EMAIL.match(message["email"]):
            raise InvalidNotification("email-verified: 'email' must be an email address")
        message = {
            **message,
            **{k: v for k, v in EMAIL_VERIFIED_DEFAULTS.items() if k not in message},
        }
    elif recipients.empty:
        raise InvalidNotification("no recipients: give recipients.userIds, emails, roles, or all: true")
    message = {**message, "timestamp": message.get("timestamp", timestamp())}
    try:
        encode(message)
    except PayloadTooLarge as error:
        raise InvalidNotification(f"{kind}: {error}") from None
    return Notification(recipients, message)


def _text_push(event: dict[str, Any]) -> Notification:
    """`{"recipients": {"userIds": [42]}, "text": "..."}`: NotificationController's plain text."""
    if "message" in event:
        raise InvalidNotification("give 'text' (a plain-text push) or 'message' (a JSON push), not both")
    text = event["text"]
    if not isinstance(text, str):
        raise InvalidNotification("'text' must be a string")
    recipients = parse_recipients(event.get("recipients"))
    if recipients.empty:
        raise InvalidNotification("no recipients: give recipients.userIds (or all: true) for a text push")
    try:
        encode(text)
    except PayloadTooLarge as error:
        raise InvalidNotification(f"text: {error}") from None
    return Notification(recipients, text)


def notify(notification: Notification, store: ConnectionStore, sender: Sender) -> dict[str, int]:
    message = notification.message
    r = notification.recipients
    if isinstance(message, str):
        targets = store.recipients(
            user_ids=r.user_ids, emails=r.emails, roles=r.roles, everyone=r.everyone, registered=True
        )
    elif notification.type == "email-verified":
        targets = store.email_verification_subscribers(message["email"])
    else:
        targets = store.recipients(user_ids=r.user_ids, emails=r.emails, roles=r.roles, everyone=r.everyone)
    outcomes = sender.fan_out(targets, message)
    also = ALSO_SENT_AS.get(notification.type)
    if also and isinstance(message, dict):
        sender.fan_out(targets, {**message, "type": also})
    if isinstance(message, dict) and notification.type == "email-verified":
        store.end_email_verification(message["email"])
    result = {
        "delivered": outcomes[Outcome.SENT],
        "gone": outcomes[Outcome.GONE],
        "failed": outcomes[Outcome.FAILED],
        "retried": outcomes[Outcome.RETRIED],  # throttled (or 5xx) first, then delivered or failed
    }
    logger().info("notified", extra={"messageType": notification.type, "targets": len(targets), **result})
    return result


QUERIES = ("isUserOnline", "getOnlineUsers", "getOnlineUsersCount")


def answer_query(event: dict[str, Any], store: ConnectionStore) -> dict[str, Any]:
    """WebSocketNotificationService's online-status queries: `{"query": "isUserOnline", "userId":
    42}` -> `{"online": true}`; `getOnlineUsers` -> `{"users": {"42": "pat@example.org"}}` (id ->
    email, as CallNotificationHandler answers); `getOnlineUsersCount` -> `{"count": 1}`. Online:
    a live connection authenticated as that user (unexpired token, ACTIVE)."""
    query = event["query"]
    if query == "isUserOnline":
        return {
            "online": bool(
                store.online_users([_user_id(event.get("userId"), "isUserOnline: userId is")], everyone=False)
            )
        }
    if query in ("getOnlineUsers", "getOnlineUsersCount"):
        users = store.online_users()
        return (
            {"count": len(users)}
            if query == "getOnlineUsersCount"
            else {"users": {str(k): v for k, v in users.items()}}
        )
    raise InvalidNotification(f"unknown query {query!r}; expected one of {', '.join(QUERIES)}")


def handler(event: Any, context: Any) -> dict[str, Any]:
    def action() -> dict[str, Any]:
        try:
            if isinstance(event, dict) and "query" in event:
                return answer_query(event, runtime.store())
            notification = parse_notification(event)
        except InvalidNotification as problem:
            logger().warning("refused notification", extra={"reason": str(problem)[:300]})
            return {"error": str(problem)}
        return notify(notification, runtime.store(), runtime.management_sender())

    return invoke(context, action)
