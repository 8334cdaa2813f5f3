"""Property: whatever frame arrives, `$default` returns normally and the table stays sound."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handlers.auth import TokenVerifier
from handlers.default import handle_message
from handlers.entry import run
from handlers.protocol import MESSAGE_FIELDS
from handlers.sender import Sender
from handlers.store import ConnectionStore
from handlers.users import User, UserDirectory
from tests.handlers.conftest import Users, table
from tests.handlers.events import message_event

pytestmark = pytest.mark.postgres
SUBSCRIPTIONS = {"email-verification", "authenticated", "notifications"}
ONE = User(1, "One", "One@Example.org", "PATIENT", "ACTIVE")
TWO = User(2, None, "two@example.org", "CAREGIVER", "ACTIVE")
IDENTITIES = {(None, None), (ONE.id, ONE.email), (TWO.id, TWO.email)}
LATER = time.time() + 3600

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(sorted({f for fields in MESSAGE_FIELDS.values() for f in fields})) | st.text(max_size=12)
messages = st.fixed_dictionaries(
    {"type": st.sampled_from(sorted(MESSAGE_FIELDS)) | json_values},
    optional={"action": json_values},
).flatmap(
    lambda base: st.dictionaries(field_names, json_values | st.integers(1, 5), max_size=5).map(
        lambda extra: {**extra, **base}
    )
)
frames = (
    messages.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=200)
    | st.binary(max_size=64).map(lambda b: b.decode("latin-1"))
)


def snapshot(store: ConnectionStore) -> dict[str, dict[str, Any]]:
    return {r["connection_id"]: r for r in table(store)}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames, binary=st.booleans(), sender_id=st.sampled_from(["anon", "user1"]))
def test_any_frame_is_answered_and_the_table_stays_sound(
    store: ConnectionStore,
    directory: UserDirectory,
    users: Users,
    sender: Sender,
    verifier: TokenVerifier,
    frame: str,
    binary: bool,
    sender_id: str,
) -> None:
    if not table(store):
        for user in (ONE, TWO):
            users.add(user.email, user.role, user.name, user_id=user.id)
        for cid in ("anon", "user1", "user2"):
            store.register(cid, subscription_type="notifications", email=None, endpoint="https://x/prod",
                           ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip
        store.authenticate("user1", ONE, LATER)
        store.authenticate("user2", TWO, LATER)
    before = snapshot(store)
    result = run(message_event(sender_id, frame, binary=binary), None,
                 lambda request: handle_message(request, store, directory, sender, verifier))  # fmt: skip
    assert result["statusCode"] == 200
    after = snapshot(store)
    assert set(after) == set(before)
    for cid, r in after.items():
        if cid != sender_id:
            assert r == before[cid]  # nobody else's row changes
        assert r["subscription_type"] in SUBSCRIPTIONS
        assert (r["user_id"], r["user_email"]) in IDENTITIES  # only ever a users row's (no frame names one)
        if cid == "anon":
            assert r["user_id"] is None and r["user_email"] is None
        assert isinstance(json.loads(r["metadata"]), dict)
        assert r["expires_at"] == before[cid]["expires_at"] and r["connected_at"] == before[cid]["connected_at"]
    if not after[sender_id]["is_active"]:  # only a failed authenticate deactivates the sender
        store.register(sender_id, subscription_type="notifications", email=None, endpoint="https://x/prod",
                       ttl_minutes=120, metadata={"authenticated": False})  # fmt: skip
        if sender_id == "user1":
            store.authenticate("user1", ONE, LATER)
