"""`$default`: every client message, dispatched on its `type` (or `action`).

A bad frame gets an `error {message, timestamp}` frame naming the problem, the handler returns
normally, and the store is untouched. A valid message records activity; the first one from a
connection is greeted with `connection-established` (posting during `$connect` fails, because
the connection is not open yet). Messages addressed to another user need an authenticated
sender and reach every active connection of that user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from handlers import runtime
from handlers.auth import AuthenticationFailed, TokenVerifier
from handlers.entry import logger, run
from handlers.events import Request, response
from handlers.protocol import Message, ProtocolError, error_frame, frame, parse
from handlers.sender import Outcome, PayloadTooLarge, Sender
from handlers.store import Connection, ConnectionStore

GREETING = "Connected to CareConnect real-time updates"
LOGGED_ONLY = ("mood-pain-log-update", "vital-signs-alert")


@dataclass(frozen=True)
class Conversation:
    """One message being handled, with what handling it needs."""

    request: Request
    connection: Connection
    message: Message
    store: ConnectionStore
    sender: Sender
    verifier: TokenVerifier | None

    def reply(self, kind: str, **fields: Any) -> None:
        self.sender.send(self.request.connection_id, frame(kind, **fields))

    def error(self, text: str) -> None:
        self.sender.send(self.request.connection_id, error_frame(text))


def handle_message(
    request: Request, store: ConnectionStore, sender: Sender, verifier: TokenVerifier | None
) -> dict[str, Any]:
    try:
        message = parse(request.body, is_base64=request.is_base64)
    except ProtocolError as problem:
        logger().warning("rejected frame", extra={"reason": str(problem)[:200]})
        sender.send(request.connection_id, error_frame(str(problem)))
        return response(200)
    connection = store.touch(request.connection_id)
    if connection is None:
        logger().warning(
            "message from an unknown or expired connection", extra={"messageType": message.type}
        )
        sender.send(
            request.connection_id,
            error_frame("connection is not registered or has expired: reconnect"),
        )
        sender.close(request.connection_id)
        return response(200)
    if connection.first_message:
        sender.send(request.connection_id, frame("connection-established", message=GREETING,
                                                 sessionId=request.connection_id))  # fmt: skip
    logger().info("message", extra={"messageType": message.type})
    HANDLERS[message.type](Conversation(request, connection, message, store, sender, verifier))
    return response(200)


def authenticate(c: Conversation) -> None:
    if c.verifier is None:
        c.error("authentication is not configured on this server")
        return
    try:
        identity = c.verifier.verify(c.message.fields["token"], c.message.fields.get("userId"))
    except AuthenticationFailed as failure:
        logger().warning("authentication failed", extra={"reason": str(failure)})
        c.reply("authentication-failed", message=f"authentication failed: {failure}")
        c.store.deactivate(c.request.connection_id)
        c.sender.close(c.request.connection_id)
        return
    c.store.authenticate(
        c.request.connection_id, user_id=identity.user_id, email=identity.email, role=identity.role
    )
    c.reply(
        "authentication-success",
        userId=identity.user_id,
        userEmail=identity.email,
        userRole=identity.role,
    )


def subscribe_email_verification(c: Conversation) -> None:
    email = c.message.fields["email"]
    c.store.subscribe_email_verification(c.request.connection_id, email)
    c.reply("email-verification-subscription-confirmed", email=email,
            message="You will be notified when this email address is verified")  # fmt: skip


def subscribe_to_updates(c: Conversation) -> None:
    update_types = c.message.fields["updateTypes"]
    c.store.subscribe_updates(c.request.connection_id, update_types)
    c.reply("subscription-confirmed", updateTypes=update_types)


def heartbeat(c: Conversation) -> None:
    c.reply("heartbeat-response")


def log_only(c: Conversation) -> None:
    """Health updates are recorded by the REST API; here only their arrival is logged."""


def _authenticated(c: Conversation) -> bool:
    if not c.connection.authenticated:
        c.error(f"authenticate before sending {c.message.type}")
        return False
    return True


def deliver(c: Conversation, user_id: int, payload: dict[str, Any]) -> None:
    """Send to every active connection of a user; a too-large payload is refused to the sender."""
    targets = c.store.active_connections_of_user(user_id)
    try:
        outcomes = c.sender.fan_out(targets, payload)
    except PayloadTooLarge as error:
        c.error(f"cannot deliver {c.message.type}: {error}")
        return
    logger().info(
        "delivered",
        extra={"messageType": c.message.type, "targets": len(targets), "sent": outcomes[Outcome.SENT],
               "gone": outcomes[Outcome.GONE], "failed": outcomes[Outcome.FAILED]},
    )  # fmt: skip


def addressed(
    target_field: str, kind: str, fields: Callable[[Conversation], dict[str, Any]]
) -> Callable[[Conversation], None]:
    """A handler that forwards a message to the user named by `target_field`."""

    def forward(c: Conversation) -> None:
        if _authenticated(c):
            deliver(
                c,
                c.message.fields[target_field],
                frame(kind, fromUserId=c.connection.user_id, **fields(c)),
            )

    return forward


def join_user_room(c: Conversation) -> None:
    """Sent by the Flutter app; rooms are implicit here (a user's connections), so only check it."""
    if _authenticated(c) and c.message.fields["userId"] != c.connection.user_id:
        c.error("join-user-room: userId is not the authenticated user")


def send_video_call_invitation(c: Conversation) -> None:
    if not _authenticated(c):
        return
    fields = c.message.fields
    if fields.get("senderId", c.connection.user_id) != c.connection.user_id:
        c.error("send-video-call-invitation: senderId is not the authenticated user")
        return
    invitation = frame("video-call-invitation", callType=fields["callType"], callId=fields["callId"],
                       senderId=c.connection.user_id)  # fmt: skip
    deliver(c, fields["recipientId"], invitation)


HANDLERS: dict[str, Callable[[Conversation], None]] = {
    "authenticate": authenticate,
    "subscribe-email-verification": subscribe_email_verification,
    "subscribe-to-updates": subscribe_to_updates,
    "ai-chat-notification": addressed(
        "targetUserId", "ai-chat-response",
        lambda c: {"message": c.message.fields["message"], "conversationId": c.message.fields.get("conversationId")},
    ),
    "medication-reminder": addressed(
        "patientId", "medication-reminder",
        lambda c: {"medicationName": c.message.fields["medicationName"], "reminderTime": c.message.fields["reminderTime"]},
    ),
    "family-member-request": addressed(
        "patientId", "family-member-request", lambda c: {"requestType": c.message.fields["requestType"]}
    ),
    "mood-pain-log-update": log_only,
    "vital-signs-alert": log_only,
    "heartbeat": heartbeat,
    "ping": heartbeat,
    "join-user-room": join_user_room,
    "send-video-call-invitation": send_video_call_invitation,
}  # fmt: skip


def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(
        event, context,
        lambda request: handle_message(request, runtime.store(), runtime.sender_for(request), runtime.verifier()),
    )  # fmt: skip
