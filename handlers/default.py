"""`$default`: every client message, dispatched on its `type` (or `action`), with the replies the
CareConnect backend's two WebSocket handlers give (CareConnectWebSocketHandler, /ws/careconnect,
and CallNotificationHandler, /ws/calls), field for field; every timestamp is epoch milliseconds.

A bad frame gets an `error {message, timestamp}` frame naming the problem and the store is
untouched. A valid message records activity; the first one from a connection is greeted with
`connection-established` (posting during `$connect` fails, because the connection is not open
yet). Messages to another user need an authenticated sender (else `error "User not
authenticated"`, the backend's words) and reach every live connection of that user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from handlers import runtime
from handlers.auth import AuthenticationFailed, TokenVerifier, authenticate
from handlers.entry import logger, run
from handlers.events import Request, response
from handlers.protocol import (
    EMAIL_VERIFIED_DEFAULTS,
    REGISTER_USER,
    TEXT,
    Message,
    ProtocolError,
    error_frame,
    frame,
    parse,
    timestamp,
)
from handlers.sender import Outcome, PayloadTooLarge, Sender
from handlers.store import Connection, ConnectionStore
from handlers.users import UserDirectory

GREETING = "Connected to CareConnect real-time service"  # CareConnectWebSocketHandler
CALLS_GREETING = "Connected to CareConnect call service"  # CallNotificationHandler (/ws/calls)
NOT_AUTHENTICATED = "User not authenticated"
NOT_ONLINE = "Recipient not online"


@dataclass(frozen=True)
class Conversation:
    """One message being handled, with what handling it needs."""

    request: Request
    connection: Connection
    message: Message
    store: ConnectionStore
    users: UserDirectory
    sender: Sender
    verifier: TokenVerifier | None

    @property
    def fields(self) -> dict[str, Any]:
        return self.message.fields

    def reply(self, kind: str, **fields: Any) -> None:
        self.sender.send(self.request.connection_id, frame(kind, **fields))

    def reply_untimed(self, kind: str, **fields: Any) -> None:
        """The few backend replies that carry no timestamp (call-invitation-sent, sms-sent...)."""
        self.sender.send(self.request.connection_id, {"type": kind, **fields})

    def error(self, text: str) -> None:
        self.sender.send(self.request.connection_id, error_frame(text))


def handle_message(
    request: Request, store: ConnectionStore, users: UserDirectory, sender: Sender, verifier: TokenVerifier | None
) -> dict[str, Any]:
    try:
        message = parse(request.body, is_base64=request.is_base64)
    except ProtocolError as problem:
        logger().warning("rejected frame", extra={"reason": str(problem)[:200]})
        sender.send(request.connection_id, error_frame(str(problem)))
        return response(200)
    connection = store.touch(request.connection_id)
    if connection is None:
        logger().warning("message from an unknown or expired connection", extra={"messageType": message.type})
        sender.send(
            request.connection_id,
            error_frame("connection is not registered or has expired: reconnect"),
        )
        sender.close(request.connection_id)
        return response(200)
    if connection.first_message and message.type != TEXT:  # /ws/notifications greets no one
        greeting = CALLS_GREETING if connection.metadata.get("service") == "calls" else GREETING
        sender.send(
            request.connection_id, frame("connection-established", message=greeting, sessionId=request.connection_id)
        )
    ended = connection.session_problem(time.time())
    if ended:
        # The token expired or the user was suspended since authenticating: no longer that user.
        logger().info("session ended", extra={"reason": ended})
        store.forget_user(request.connection_id)
        sender.send(request.connection_id, frame("authentication-required", message=f"{ended}: authenticate again"))
        connection = replace(connection, user_id=None, user_email=None, metadata={"authenticated": False})
    logger().info("message", extra={"messageType": message.type})
    HANDLERS[message.type](Conversation(request, connection, message, store, users, sender, verifier))
    return response(200)


def on_authenticate(c: Conversation) -> None:
    if c.verifier is None:
        c.error("authentication is not configured on this server")
        return
    try:
        user, expires = authenticate(c.verifier, c.users, c.fields["token"], c.fields.get("userId"))
    except AuthenticationFailed as failure:
        logger().warning("authentication failed", extra={"reason": failure.reason})
        c.reply_untimed("authentication-failed", message=failure.message, reason=failure.reason)
        c.store.deactivate(c.request.connection_id)
        c.sender.close(c.request.connection_id)
        return
    c.store.authenticate(c.request.connection_id, user, expires)
    c.reply_untimed("authentication-success", userId=user.id, userEmail=user.email, userRole=user.role)


def subscribe_email_verification(c: Conversation) -> None:
    """A subscription for this address, nothing more. When its user is verified already (the
    dialog reconnected after API Gateway's idle close), `email-verified` comes at once."""
    email = c.fields["email"]
    c.store.subscribe_email_verification(c.request.connection_id, email)
    c.reply(
        "email-verification-subscription-confirmed",
        email=email,
        message="Subscribed to email verification notifications",
    )
    if c.users.email_verified(email):
        c.reply("email-verified", email=email, **EMAIL_VERIFIED_DEFAULTS)


def on_text(c: Conversation) -> None:
    """`/ws/notifications`, as NotificationWebSocketHandler answers. A REGISTER_USER claim is
    recorded, but text pushes reach it only while the connection is authenticated as that user."""
    text = c.fields["text"]
    if text.startswith(REGISTER_USER):
        claimed = text.removeprefix(REGISTER_USER)
        c.store.register_user_claim(c.request.connection_id, claimed)
        c.sender.send(c.request.connection_id, f"User registered: {claimed}")
    else:
        c.sender.send(c.request.connection_id, f"Echo: {text}")


def _authenticated(c: Conversation) -> bool:
    if not c.connection.authenticated:
        c.error(NOT_AUTHENTICATED)
        return False
    return True


def subscribe_to_updates(c: Conversation) -> None:
    if not _authenticated(c):
        return
    update_types = c.fields.get("updateTypes", ["all"])
    c.store.subscribe_updates(c.request.connection_id, update_types)
    c.reply("subscription-confirmed", userId=c.connection.user_id, subscribedTo=update_types)


def heartbeat(c: Conversation) -> None:
    c.reply("heartbeat-response")


def log_only(c: Conversation) -> None:
    """Health updates are recorded by the REST API; the backend only logs their arrival."""
    _authenticated(c)


def deliver(c: Conversation, user_id: int, *payloads: dict[str, Any]) -> int:
    """Send each payload to every live connection of a user; the number of connections reached.
    A too-large payload is refused to the sender."""
    targets = c.store.active_connections_of_user(user_id)
    sent = 0
    for payload in payloads:
        try:
            outcomes = c.sender.fan_out(targets, payload)
        except PayloadTooLarge as error:
            c.error(f"cannot deliver {c.message.type}: {error}")
            return 0
        sent = max(sent, outcomes[Outcome.SENT])
        logger().info(
            "delivered",
            extra={
                "messageType": payload["type"],
                "targets": len(targets),
                "sent": outcomes[Outcome.SENT],
                "gone": outcomes[Outcome.GONE],
                "failed": outcomes[Outcome.FAILED],
            },
        )
    return sent


def _sender_fields(c: Conversation) -> dict[str, Any]:
    return {
        "senderId": c.connection.user_id,
        "senderName": c.connection.display_name,
        "senderEmail": c.connection.user_email,
        "senderRole": c.connection.role,
    }


def ai_chat_notification(c: Conversation) -> None:
    if _authenticated(c):
        deliver(
            c,
            c.fields["targetUserId"],
            frame(
                "ai-chat-response",
                fromUserId=c.connection.user_id,
                fromUserName=c.connection.display_name,
                conversationId=c.fields.get("conversationId"),
                message=c.fields["message"],
            ),
        )


def medication_reminder(c: Conversation) -> None:
    if _authenticated(c):
        name = c.fields["medicationName"]
        deliver(
            c,
            c.fields["patientId"],
            frame(
                "medication-reminder",
                medicationName=name,
                reminderTime=c.fields["reminderTime"],
                message=f"Time to take your {name}",
            ),
        )


def family_member_request(c: Conversation) -> None:
    if _authenticated(c):
        deliver(
            c,
            c.fields["patientId"],
            frame(
                "family-member-request",
                fromUserId=c.connection.user_id,
                fromUserName=c.connection.display_name,
                fromUserEmail=c.connection.user_email,
                requestType=c.fields["requestType"],
            ),
        )


def join_user_room(c: Conversation) -> None:
    """Rooms are implicit here (a user's connections): confirm the join as the backend does."""
    if not _authenticated(c):
        return
    claimed = c.fields.get("userId")
    if claimed is not None and claimed != c.connection.user_id:
        c.error("join-user-room: userId is not the authenticated user")
        return
    c.reply_untimed(
        "user-joined",
        userId=str(c.connection.user_id),
        userEmail=c.connection.user_email,
        userRole=c.connection.role,
        joinedAt=timestamp(),
    )


def _recipient(c: Conversation) -> Any:
    recipient = c.users.by_id(c.fields["recipientId"])
    if recipient is None:
        c.error("Recipient not found")
    return recipient


def send_video_call_invitation(c: Conversation) -> None:
    if not _authenticated(c):
        return
    if c.fields.get("senderId", c.connection.user_id) != c.connection.user_id:
        c.error("send-video-call-invitation: senderId is not the authenticated user")
        return
    recipient = _recipient(c)
    if recipient is None:
        return
    call = {
        **_sender_fields(c),
        "callId": c.fields["callId"],
        "isVideoCall": c.fields.get("isVideoCall", True),
        "callType": c.fields.get("callType", "general"),
    }
    # The backend sends incoming-video-call; the app's CareConnectWebSocketService listens for
    # video-call-invitation: each client gets the frame it understands.
    reached = deliver(
        c,
        recipient.id,
        frame("incoming-video-call", **call),
        frame("video-call-invitation", **call),
    )
    recipient_id = str(c.fields["recipientId"])
    if reached:
        c.reply_untimed(
            "call-invitation-sent",
            callId=c.fields["callId"],
            recipientId=recipient_id,
            recipientName=recipient.display_name,
            status="delivered",
        )
    else:
        c.reply_untimed(
            "call-invitation-failed", callId=c.fields["callId"], reason=NOT_ONLINE, recipientId=recipient_id
        )


def send_sms_notification(c: Conversation) -> None:
    if not _authenticated(c):
        return
    recipient = _recipient(c)
    if recipient is None:
        return
    reached = deliver(
        c,
        recipient.id,
        frame(
            "incoming-sms",
            **_sender_fields(c),
            message=c.fields["message"],
            messageType=c.fields.get("messageType", "general"),
        ),
    )
    recipient_id = str(c.fields["recipientId"])
    if reached:
        c.reply_untimed(
            "sms-sent",
            recipientId=recipient_id,
            recipientName=recipient.display_name,
            status="delivered",
        )
    else:
        c.reply_untimed("sms-failed", reason=NOT_ONLINE, recipientId=recipient_id)


def call_answer(kind: str, target: str, by: str, **extra: str) -> Callable[[Conversation], None]:
    """accept-call / decline-call / end-call: tell the other party, as the backend does."""

    def answer(c: Conversation) -> None:
        if _authenticated(c):
            more = {name: c.fields.get(name, default) for name, default in extra.items()}
            deliver(
                c,
                c.fields[target],
                frame(
                    kind,
                    callId=c.fields["callId"],
                    **{by: c.connection.user_id},
                    **{f"{by}Name": c.connection.display_name},
                    **more,
                ),
            )

    return answer


HANDLERS: dict[str, Callable[[Conversation], None]] = {
    TEXT: on_text,
    "authenticate": on_authenticate,
    "subscribe-email-verification": subscribe_email_verification,
    "subscribe-to-updates": subscribe_to_updates,
    "ai-chat-notification": ai_chat_notification,
    "medication-reminder": medication_reminder,
    "family-member-request": family_member_request,
    "mood-pain-log-update": log_only,
    "vital-signs-alert": log_only,
    "heartbeat": heartbeat,
    "ping": heartbeat,
    "join-user-room": join_user_room,
    "send-video-call-invitation": send_video_call_invitation,
    "send-sms-notification": send_sms_notification,
    "accept-call": call_answer("call-answered", "senderId", "answeredBy"),
    "decline-call": call_answer("call-declined", "senderId", "declinedBy", reason="declined"),
    "end-call": call_answer("call-ended", "otherPartyId", "endedBy"),
}


def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(
        event,
        context,
        lambda request: handle_message(
            request, runtime.store(), runtime.users(), runtime.sender_for(request), runtime.verifier()
        ),
    )
