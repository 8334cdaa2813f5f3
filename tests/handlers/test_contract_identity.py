"""Round two of the contract (issue 21), against the origin's code (GitHub umgc/2025_fall,
careconnect2025): identity only from proof, sessions that end with their token or their user,
`/ws/notifications` as NotificationWebSocketHandler speaks it, the backend's tolerances, and the
online-status queries. Tokens are minted as JwtTokenProvider mints them and frames are sent as
the app's Dart code sends them (files cited per test, relative to
careconnect2025/backend/core/src/main/java/com/careconnect/ and careconnect2025/frontend/lib/)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from handlers.connect import register_connection
from handlers.events import parse_event
from handlers.notify import answer_query, notify, parse_notification
from handlers.store import ConnectionStore
from tests.handlers import test_contract
from tests.handlers.careconnect import mint
from tests.handlers.conftest import SECRET, Users, row
from tests.handlers.events import connect_event
from tests.handlers.test_contract import Cast

pytestmark = pytest.mark.postgres
cast = test_contract.cast  # the fixture: Pat and Cara authenticated, Dora offline, anon


def push(c: Cast, event: dict[str, Any]) -> dict[str, int]:
    """The backend's push, as the notify function handles it."""
    return notify(parse_notification(event), c.store, c.sender)


def types(frames: list[Any]) -> list[str]:
    return [f if isinstance(f, str) else f["type"] for f in frames]


def java_find_by_user_email(store: ConnectionStore, email: str) -> list[str]:
    """WebSocketConnectionRepository.findByUserEmailAndIsActiveTrue, as JPA runs it."""
    rows = store.db.run(
        "SELECT connection_id FROM websocket_connections WHERE user_email = %s AND is_active = true ORDER BY id",
        (email,),
    )
    return [r[0] for r in rows]


def test_a_typed_email_is_a_subscription_never_an_identity(cast: Cast) -> None:
    """email_verification_dialog.dart sends {type: subscribe-email-verification, email}; the
    backend (websocket/CareConnectWebSocketHandler.java) keeps it per session. Here an attacker
    signed in as Cara, and an anonymous client, type Pat's address."""
    victim = "pat@example.org"
    cast.send("cara", {"type": "subscribe-email-verification", "email": victim})
    cast.send("anon", {"type": "subscribe-email-verification", "email": victim})
    assert (
        types(cast.inbox.new("cara"))
        == types(cast.inbox.new("anon"))
        == ["email-verification-subscription-confirmed", "email-verified"]
    )  # fmt: skip (Pat is verified)
    cast.send("cara", {"type": "send-sms-notification", "recipientId": cast.ids["pat"], "message": "hi"})
    (sms,) = [f for f in cast.inbox.new("pat") if f["type"] == "incoming-sms"]
    assert types(cast.inbox.new("cara")) == ["sms-sent"]
    assert (sms["senderId"], sms["senderEmail"], sms["senderName"]) == (cast.ids["cara"], "cara@example.org",
                                                                        "Cara Giver")  # fmt: skip
    assert (row(cast.store, "cara")["user_email"], row(cast.store, "anon")["user_email"]) == ("cara@example.org", None)
    assert java_find_by_user_email(cast.store, victim) == ["pat"]
    alert = {"type": "emergency-alert", "patientId": str(cast.ids["pat"]), "patientName": "Pat", "message": "Fall"}
    assert push(cast, {"recipients": {"emails": [victim]}, "message": alert})["delivered"] == 1
    assert (types(cast.inbox.new("pat")), cast.inbox.new("cara"), cast.inbox.new("anon")) == (
        ["emergency-alert"],
        [],
        [],
    )
    # The email-verified push for that address is the one thing the subscription receives.
    push(cast, {"message": {"type": "email-verified", "email": victim}})
    assert types(cast.inbox.new("anon")) == ["email-verified"] and row(cast.store, "anon")["is_active"] is False


def test_an_email_given_at_connect_is_a_subscription_too(cast: Cast) -> None:
    request = parse_event(connect_event("typed", {"email": "Pat@Example.org"}))
    assert register_connection(request, cast.store, endpoint="https://x/prod", ttl_minutes=120)["statusCode"] == 200
    assert row(cast.store, "typed")["user_email"] is None
    alert = {"type": "emergency-alert", "patientId": "1", "patientName": "Pat", "message": "Fall"}
    assert push(cast, {"recipients": {"emails": ["pat@example.org"], "all": True}, "message": alert})["delivered"] == 2
    assert cast.inbox.new("typed") == []


def test_a_suspended_user_stops_receiving_and_speaking(cast: Cast, users: Users) -> None:
    """User.status (model/User.java) changes while the session is open: the next push and the
    next frame see it (no cache: both read the users row)."""
    users.set_status(cast.ids["pat"], "SUSPENDED")
    sms = {"type": "incoming-sms", "senderId": "2", "senderName": "Cara", "message": "x"}
    assert push(cast, {"recipients": {"userIds": [cast.ids["pat"]]}, "message": sms})["delivered"] == 0
    cast.send("pat", {"type": "send-sms-notification", "recipientId": cast.ids["cara"], "message": "still me?"})
    got = cast.inbox.new("pat")
    assert types(got) == ["authentication-required", "error"]
    assert got[0]["message"] == "User account is not active: authenticate again"
    assert got[1]["message"] == "User not authenticated" and cast.inbox.new("cara") == []
    assert row(cast.store, "pat")["user_id"] is None and row(cast.store, "pat")["user_email"] is None


def test_an_expired_token_ends_the_session_and_a_fresh_one_resumes_it(cast: Cast) -> None:
    """JwtTokenProvider's exp (3 h by default) bounds the session, as API Gateway's 2 h does not."""
    issued, ttl = int(time.time()), 3  # long enough to authenticate on a loaded machine
    cast.send("pat", {"type": "authenticate", "token": mint(SECRET.key, "pat@example.org", "PATIENT", ttl=ttl,
                                                            issued_at=issued)})  # fmt: skip
    assert types(cast.inbox.new("pat")) == ["authentication-success"]
    time.sleep(max(0.0, issued + ttl + 0.05 - time.time()))
    alert = {"type": "emergency-alert", "patientId": "1", "patientName": "Pat", "message": "Fall"}
    assert push(cast, {"recipients": {"userIds": [cast.ids["pat"]]}, "message": alert})["delivered"] == 0
    cast.send("pat", {"type": "heartbeat"})
    got = cast.inbox.new("pat")
    assert types(got) == ["authentication-required", "heartbeat-response"]
    assert got[0]["message"] == "Session expired: authenticate again"
    cast.login("pat", "pat@example.org")
    assert push(cast, {"recipients": {"userIds": [cast.ids["pat"]]}, "message": alert})["delivered"] == 1


def test_notifications_endpoint_speaks_plain_text_and_a_claim_alone_receives_nothing(cast: Cast) -> None:
    """services/messaging_service.dart sends 'REGISTER_USER:$userId' as a bare text frame after
    login; websocket/NotificationWebSocketHandler.java answers 'User registered: <id>' and
    'Echo: <text>'; controller/NotificationController.java pushes the body's message as text."""
    pat = str(cast.ids["pat"])
    for cid in ("anon", "cara", "pat"):  # anon and Cara claim to be Pat; only Pat proved it
        cast.send(cid, f"REGISTER_USER:{pat}")
        assert cast.inbox.new(cid) == [f"User registered: {pat}"]
    cast.send("anon", "hello there")
    assert cast.inbox.new("anon") == ["Echo: hello there"]
    answer = push(cast, {"recipients": {"userIds": [pat]}, "text": "You have a new message"})
    assert answer["delivered"] == 1 and cast.inbox.new("pat") == ["You have a new message"]
    assert cast.inbox.new("anon") == cast.inbox.new("cara") == []


def test_the_backends_tolerances(cast: Cast, users: Users) -> None:
    """jjwt (JwtTokenProvider.validateToken) checks signature and exp only: an iat a few seconds
    ahead (a backend clock running fast) is fine. Emails are kept as stored and compared ignoring
    case; CareConnectWebSocketHandler accepts any non-empty address and confirms updateTypes as sent."""
    mixed = users.add("Mixed.Case@Example.org", "PATIENT", "Mixed")
    cast.connect("m")
    ahead = mint(SECRET.key, "Mixed.Case@Example.org", "PATIENT", issued_at=int(time.time()) + 30)
    cast.send("m", {"type": "authenticate", "token": ahead})
    success = cast.inbox.new("m")[-1]
    assert success == {"type": "authentication-success", "userId": mixed, "userEmail": "Mixed.Case@Example.org",
                       "userRole": "PATIENT"}  # fmt: skip
    sms = {"type": "incoming-sms", "senderId": "2", "senderName": "Cara", "message": ""}  # Java sends "" as is
    assert push(cast, {"recipients": {"emails": ["mixed.case@example.ORG"]}, "message": sms})["delivered"] == 1
    assert cast.inbox.new("m")[0]["message"] == ""
    cast.send("m", {"type": "subscribe-to-updates", "updateTypes": []})
    assert cast.inbox.new("m")[0]["subscribedTo"] == []
    cast.send("anon", {"type": "subscribe-email-verification", "email": "admin@localhost"})
    assert cast.inbox.new("anon")[0]["email"] == "admin@localhost"


def test_the_calls_endpoint_greets_as_call_notification_handler(cast: Cast) -> None:
    """websocket/CallNotificationHandler.java greets "Connected to CareConnect call service"."""
    request = parse_event(connect_event("dashboard", {"service": "calls"}))
    register_connection(request, cast.store, endpoint="https://x/prod", ttl_minutes=120)
    cast.send("dashboard", {"type": "heartbeat"})
    greeting = cast.inbox.new("dashboard")[0]
    assert (greeting["type"], greeting["message"]) == (
        "connection-established",
        "Connected to CareConnect call service",
    )


def test_a_subscription_for_an_already_verified_address_is_answered_at_once(cast: Cast, users: Users) -> None:
    """The dialog (widgets/email_verification_dialog.dart) never reconnects by itself and API
    Gateway closes it after 10 idle minutes: a new dialog for a verified user hears so at once."""
    users.add("done@example.org", verified=True)
    users.add("waiting@example.org", verified=False)
    cast.send("anon", {"type": "subscribe-email-verification", "email": "Done@Example.org"})
    got = cast.inbox.new("anon")
    assert types(got) == ["email-verification-subscription-confirmed", "email-verified"]
    assert (got[1]["email"], got[1]["verified"]) == ("Done@Example.org", True)
    cast.send("anon", {"type": "subscribe-email-verification", "email": "waiting@example.org"})
    assert types(cast.inbox.new("anon")) == ["email-verification-subscription-confirmed"]


def test_the_online_status_queries(cast: Cast, users: Users) -> None:
    """service/WebSocketNotificationService.java: isUserOnline, getOnlineUsers (id -> email, as
    CallNotificationHandler.getOnlineUsers builds it) and getOnlineUsersCount."""
    ids = cast.ids
    assert answer_query({"query": "isUserOnline", "userId": str(ids["pat"])}, cast.store) == {"online": True}
    assert answer_query({"query": "isUserOnline", "userId": ids["dora"]}, cast.store) == {"online": False}
    assert answer_query({"query": "getOnlineUsers"}, cast.store) == {
        "users": {str(ids["pat"]): "pat@example.org", str(ids["cara"]): "cara@example.org"}}  # fmt: skip
    users.set_status(ids["cara"], "SUSPENDED")
    assert answer_query({"query": "getOnlineUsersCount"}, cast.store) == {"count": 1}
