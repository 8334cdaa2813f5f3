"""The notify entry point: every notification the backend sends reaches the app, addressed by
user id, email, role or everyone; bad invocations are answered with what is wrong, nothing sent."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace
from typing import Any

import pytest

from handlers import notify
from handlers.notify import PUSH_MESSAGES, InvalidNotification, parse_notification
from handlers.protocol import MAX_MESSAGE_BYTES
from handlers.sender import Sender
from handlers.store import ConnectionStore
from handlers.users import User
from tests.handlers.conftest import FaultyClient, Inbox, Users, row

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]
CONTEXT = SimpleNamespace(aws_request_id="invoke-1")
PAT = User(11, "Pat Patient", "pat@example.org", "PATIENT", "ACTIVE")
CARA = User(12, "Cara Giver", "cara@example.org", "CAREGIVER", "ACTIVE")
CAL = User(13, None, "cal@example.org", "CAREGIVER", "ACTIVE")

# One message per WebSocketNotificationService method (and AuthService's email-verified), with
# the fields the backend puts in it.
BACKEND_MESSAGES: dict[str, dict[str, Any]] = {
    "sendCallInvitation": {"type": "incoming-video-call", "senderId": "12", "senderName": "Cara Giver",
                           "callId": "call-1", "isVideoCall": True, "callType": "general"},
    "sendSMSNotification": {"type": "incoming-sms", "senderId": "12", "senderName": "Cara Giver",
                            "message": "On my way", "messageType": "general"},
    "sendAIChatNotification": {"type": "ai-chat-response", "conversationId": "conv-1", "message": "Results are in"},
    "sendMoodPainLogUpdate": {"type": "mood-pain-log-updated", "patientId": "11", "patientName": "Pat Patient",
                              "moodValue": 4, "painValue": 2},
    "sendMedicationReminder": {"type": "medication-reminder", "medicationName": "Metformin", "dosage": "500 mg",
                               "reminderTime": "08:00", "message": "Time to take your Metformin (500 mg)"},
    "sendVitalSignsAlert": {"type": "vital-signs-alert", "patientId": "11", "patientName": "Pat Patient",
                            "alertType": "heart-rate", "message": "Heart rate 140", "severity": "HIGH"},
    "sendFamilyMemberRequest": {"type": "family-member-request", "fromUserId": "13", "fromUserName": "Cal",
                                "fromUserEmail": "cal@example.org", "relationship": "son",
                                "requestType": "family-member-link"},
    "sendEmergencyAlert": {"type": "emergency-alert", "patientId": "11", "patientName": "Pat Patient",
                           "message": "Fall detected", "severity": "CRITICAL", "priority": "HIGH"},
    "sendAppointmentReminder": {"type": "appointment-reminder", "appointmentDetails": "Check-up",
                                "appointmentTime": "10:00", "providerName": "Dr. Lee",
                                "message": "Reminder: You have an appointment with Dr. Lee at 10:00"},
    "broadcastSystemAnnouncement": {"type": "system-announcement", "title": "Maintenance", "message": "Tonight",
                                    "announcementType": "info"},
    "sendSOSCallToAllCaregivers": {"type": "sos-call", "timestamp": "2026-11-26T08:00:00Z",
                                   "data": {"patientUserId": "11", "patientName": "Pat Patient", "callId": "sos-1",
                                            "priority": "CRITICAL"}},
}  # fmt: skip


@pytest.fixture
def people(store: ConnectionStore, users: Users) -> ConnectionStore:
    """pat-phone and pat-tablet (patient), cara (caregiver), cal (caregiver), anon, and a
    connection waiting for new@example.org to be verified."""
    for cid in ("pat-phone", "pat-tablet", "cara", "cal", "anon"):
        store.register(cid, subscription_type="notifications", email=None, endpoint="https://x/prod",
                       ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip
    store.register("signup", subscription_type="email-verification", email="new@example.org",
                   endpoint="https://x/prod", ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip
    for user in (PAT, CARA, CAL):
        users.add(user.email, user.role, user.name, user_id=user.id)
    for cid, user in (("pat-phone", PAT), ("pat-tablet", PAT), ("cara", CARA), ("cal", CAL)):
        store.authenticate(cid, user, time.time() + 3600)
    return store


def invoke(payload: Any) -> dict[str, Any]:
    return notify.handler(payload, CONTEXT)


def received(inbox: Inbox, *connection_ids: str) -> dict[str, list[str]]:
    return {cid: [f["type"] for f in inbox.new(cid)] for cid in connection_ids}


ALL = ("pat-phone", "pat-tablet", "cara", "cal", "anon", "signup")


@pytest.mark.parametrize("method", list(BACKEND_MESSAGES))
def test_every_backend_notification_reaches_its_recipients(people: ConnectionStore, inbox: Inbox,
                                                           method: str) -> None:  # fmt: skip
    message = BACKEND_MESSAGES[method]
    result = invoke({"recipients": {"userIds": [PAT.id]}, "message": message})
    assert result == {"delivered": 2, "gone": 0, "failed": 0, "retried": 0}
    for device in ("pat-phone", "pat-tablet"):
        frames = inbox.new(device)
        assert frames[0] == {**message, "timestamp": frames[0]["timestamp"]}  # every field kept
        if "timestamp" in message:
            assert frames[0]["timestamp"] == message["timestamp"]  # sos-call's own ISO time is kept
        else:
            assert isinstance(frames[0]["timestamp"], int)  # filled: epoch milliseconds
    others = received(inbox, "cara", "cal", "anon", "signup")
    assert others == {"cara": [], "cal": [], "anon": [], "signup": []}


def test_the_table_covers_every_push_type() -> None:
    assert {m["type"] for m in BACKEND_MESSAGES.values()} | {"email-verified"} == set(PUSH_MESSAGES)


def test_an_incoming_call_is_also_sent_as_the_apps_video_call_invitation(people: ConnectionStore,
                                                                          inbox: Inbox) -> None:  # fmt: skip
    invoke({"recipients": {"userIds": [CARA.id]}, "message": BACKEND_MESSAGES["sendCallInvitation"]})
    assert received(inbox, "cara")["cara"] == ["incoming-video-call", "video-call-invitation"]


@pytest.mark.parametrize(("recipients", "reached"), [
    ({"roles": ["caregiver"]}, {"cara", "cal"}),
    ({"emails": ["PAT@example.org"]}, {"pat-phone", "pat-tablet"}),
    ({"all": True}, {"pat-phone", "pat-tablet", "cara", "cal"}),  # authenticated users, as broadcastToAllUsers
    ({"userIds": [str(CAL.id)], "roles": ["CAREGIVER"]}, {"cara", "cal"}),  # each connection once
])  # fmt: skip
def test_recipients_by_role_email_and_everyone(people: ConnectionStore, inbox: Inbox, recipients: dict[str, Any],
                                               reached: set[str]) -> None:  # fmt: skip
    message = BACKEND_MESSAGES["broadcastSystemAnnouncement"]
    assert invoke({"recipients": recipients, "message": message})["delivered"] == len(reached)
    got = received(inbox, *ALL)
    assert {cid for cid, types in got.items() if types} == reached
    assert all(types == ["system-announcement"] for types in got.values() if types)


def test_email_verified_reaches_its_subscribers_then_drops_them(people: ConnectionStore, inbox: Inbox) -> None:
    assert invoke({"message": {"type": "email-verified", "email": "New@Example.org"}}) == {
        "delivered": 1, "gone": 0, "failed": 0, "retried": 0}  # fmt: skip
    (frame,) = inbox.new("signup")
    assert frame | {"timestamp": 0} == {"type": "email-verified", "email": "New@Example.org", "verified": True,
                                        "message": "Your email has been verified successfully!", "timestamp": 0}  # fmt: skip
    assert row(people, "signup")["is_active"] is False
    assert invoke({"message": {"type": "email-verified", "email": "new@example.org"}})["delivered"] == 0


def test_a_gone_connection_is_counted_and_deactivated(people: ConnectionStore, sender: Sender,
                                                      faulty: FaultyClient) -> None:  # fmt: skip
    """410s come from the fault-injecting client (moto never answers 410)."""
    faulty.gone.add("pat-tablet")
    notification = parse_notification({"recipients": {"userIds": [PAT.id]},
                                       "message": BACKEND_MESSAGES["sendEmergencyAlert"]})  # fmt: skip
    result = notify.notify(notification, people, sender)
    assert result == {"delivered": 1, "gone": 1, "failed": 0, "retried": 0}
    assert row(people, "pat-tablet")["is_active"] is False and row(people, "pat-phone")["is_active"] is True


BAD: list[tuple[Any, str]] = [
    ([], "must be a JSON object"),
    ({"message": "hi"}, "'message' must be an object"),
    ({"message": {"type": "launch-rockets"}, "recipients": {"all": True}}, "unknown message type 'launch-rockets'"),
    ({"message": {"type": "incoming-sms", "senderId": "1"}, "recipients": {"all": True}},
     "incoming-sms needs senderName, message"),
    ({"message": {"type": "system-announcement", "title": "t", "message": "m"}}, "no recipients"),
    ({"message": {"type": "system-announcement", "title": "t", "message": "m"}, "recipients": {"userIds": [0]}},
     "user ids are positive integers"),
    ({"message": {"type": "system-announcement", "title": "t", "message": "m"}, "recipients": {"emails": ["x"]}},
     "recipients.emails[0] is not an email address"),
    ({"message": {"type": "system-announcement", "title": "t", "message": "m"}, "recipients": {"group": "a"}},
     "unknown keys ['group']"),
    ({"message": {"type": "email-verified", "email": "nope"}}, "'email' must be an email address"),
    ({"message": {"type": "system-announcement", "title": "t", "message": "x" * MAX_MESSAGE_BYTES},
      "recipients": {"all": True}}, "the limit is 131072"),
]  # fmt: skip


@pytest.mark.parametrize(("payload", "error"), BAD)
def test_bad_invocations_are_answered_and_nothing_is_sent(people: ConnectionStore, inbox: Inbox,
                                                          faulty: FaultyClient, payload: Any, error: str) -> None:  # fmt: skip
    before = len(faulty.calls)
    answer = invoke(payload)
    assert set(answer) == {"error"} and error in answer["error"]
    assert len(faulty.calls) == before
    with pytest.raises(InvalidNotification):
        parse_notification(payload)


def test_without_the_endpoint_the_answer_says_what_to_set(people: ConnectionStore,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from handlers import runtime

    monkeypatch.setenv("AWS_WEBSOCKET_API_GATEWAY_ENDPOINT", "")
    runtime.settings.cache_clear()
    answer = invoke({"recipients": {"all": True}, "message": BACKEND_MESSAGES["broadcastSystemAnnouncement"]})
    assert "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT is not set" in answer["error"]


def test_logs_name_counts_never_bodies_or_addresses(people: ConnectionStore, inbox: Inbox,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    capsys.readouterr()
    invoke(
        {
            "recipients": {"emails": ["pat@example.org"]},
            "message": BACKEND_MESSAGES["sendEmergencyAlert"],
        }
    )
    invoke(
        {
            "recipients": {"emails": ["secret-person"]},
            "message": BACKEND_MESSAGES["sendEmergencyAlert"],
        }
    )
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert lines[0]["message"] == "notified" and lines[0]["delivered"] == 2 and lines[0]["awsRequestId"] == "invoke-1"
    for private in ("Fall detected", "pat@example.org", "Pat Patient", "secret-person"):
        assert private not in out


@pytest.mark.slow
def test_a_push_to_1000_connections_under_the_account_throttle_reports_what_was_retried(
    store: ConnectionStore, users: Users, sender: Sender, faulty: FaultyClient
) -> None:
    """API Gateway throttles @connections posts account-wide (LimitExceededException, 429): the
    double answers the first wave of posts so (as many as are in flight); each is retried with
    backoff and still delivered."""
    users.add(PAT.email, PAT.role, PAT.name, user_id=PAT.id)
    for n in range(1000):
        store.register(f"dev-{n}", subscription_type="notifications", email=None, endpoint="https://x/prod",
                       ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip
        store.authenticate(f"dev-{n}", PAT, time.time() + 3600)
    faulty.throttle = sender.max_workers
    notification = parse_notification({"recipients": {"userIds": [PAT.id]},
                                       "message": BACKEND_MESSAGES["sendEmergencyAlert"]})  # fmt: skip
    result = notify.notify(notification, store, sender)
    assert (result["delivered"], result["gone"], result["failed"]) == (1000, 0, 0)
    throttled = 8
    assert sender.max_workers == throttled  # the fixture's bound on posts in flight
    assert len(faulty.calls) == 1000 + throttled  # each throttled attempt retried once more, none posted twice
    assert throttled // 4 <= result["retried"] <= throttled  # botocore retries a post at most 4 times
