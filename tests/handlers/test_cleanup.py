"""The scheduled cleanup entry point, as EventBridge invokes it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from handlers import cleanup, connect
from handlers.db import DatabaseUnavailable
from handlers.store import ConnectionStore
from tests.handlers.conftest import table
from tests.handlers.events import connect_event

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]
SCHEDULED_EVENT = {"version": "0", "id": "e1", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "123456789012", "time": "2026-11-25T20:00:00Z", "region": "eu-west-1",
                   "resources": ["arn:aws:events:eu-west-1:123456789012:rule/cc-cleanup"], "detail": {}}  # fmt: skip


def test_cleanup_deactivates_expired_and_deletes_week_old_rows(
    store: ConnectionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for cid in ("live", "expired", "old"):
        connect.handler(connect_event(cid), SimpleNamespace(aws_request_id="r"))
    store.db.run("UPDATE websocket_connections SET expires_at = connected_at WHERE connection_id = 'expired'")
    store.db.run("""UPDATE websocket_connections SET is_active = false,
                    connected_at = connected_at - interval '7 days 1 minute' WHERE connection_id = 'old'""")
    capsys.readouterr()
    assert cleanup.handler(SCHEDULED_EVENT, SimpleNamespace(aws_request_id="r")) == {
        "deactivated": 1,
        "deleted": 1,
    }
    assert {r["connection_id"]: r["is_active"] for r in table(store)} == {
        "live": True,
        "expired": False,
    }
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["deleted"] == 1
    assert cleanup.handler(SCHEDULED_EVENT, None) == {"deactivated": 0, "deleted": 0}


def test_cleanup_fails_loudly_when_the_database_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import runtime

    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    runtime.settings.cache_clear()
    runtime.store.cache_clear()
    with pytest.raises(DatabaseUnavailable):
        cleanup.handler(SCHEDULED_EVENT, None)
