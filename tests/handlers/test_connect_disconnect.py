"""`$connect` and `$disconnect` through their Lambda entry points, on the real PostgreSQL."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from handlers import connect, disconnect
from handlers.store import ConnectionStore
from tests.handlers.conftest import row, table
from tests.handlers.events import connect_event, disconnect_event

CONTEXT = SimpleNamespace(aws_request_id="lambda-req-1")
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("lambda_env")]


def test_connect_registers_with_query_parameters(store: ConnectionStore, moto_endpoint: str) -> None:
    result = connect.handler(
        connect_event("c1", {"email": "New.User@Example.org", "type": "email-verification"}),
        CONTEXT,
    )
    assert result["statusCode"] == 200
    r = row(store, "c1")
    # The typed address subscribes to email-verified for it; it is never the row's user.
    assert (r["user_email"], r["subscription_type"], r["connection_type"]) == (None, "email-verification", "aws")
    assert json.loads(r["metadata"]) == {"authenticated": False, "service": "careconnect",
                                         "verifyEmail": "New.User@Example.org"}  # fmt: skip
    assert store.email_verification_subscribers("new.user@example.org") == ["c1"]
    assert r["api_gateway_endpoint"] == moto_endpoint  # the configured management endpoint


def test_connect_without_query_is_a_plain_connection(store: ConnectionStore) -> None:
    assert connect.handler(connect_event("c1"), CONTEXT)["statusCode"] == 200
    r = row(store, "c1")
    assert r["user_email"] is None and r["subscription_type"] == "notifications"


def test_endpoint_falls_back_to_the_event_when_unset(store: ConnectionStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from handlers import runtime

    monkeypatch.setenv("AWS_WEBSOCKET_API_GATEWAY_ENDPOINT", "")
    runtime.settings.cache_clear()
    connect.handler(connect_event("c1"), CONTEXT)
    assert row(store, "c1")["api_gateway_endpoint"] == "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"type": "everything"}, "type must be one of"),
        ({"type": "email-verification"}, "needs email"),
        ({"email": "not-an-email", "type": "email-verification"}, "not an email address"),
        ({"email": "x@example.org'; DROP TABLE websocket_connections; --"}, "not an email address"),
    ],
)
def test_connect_refuses_invalid_query_before_storing(
    store: ConnectionStore, query: dict[str, str], reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = connect.handler(connect_event("c1", query), CONTEXT)
    assert result["statusCode"] == 400 and reason in result["body"]
    assert table(store) == []
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["connectionId"] == "c1" and line["message"] == "refused connect"


def test_disconnect_soft_deletes_idempotently(store: ConnectionStore) -> None:
    connect.handler(connect_event("c1"), CONTEXT)
    assert disconnect.handler(disconnect_event("c1"), CONTEXT)["statusCode"] == 200
    assert disconnect.handler(disconnect_event("c1"), CONTEXT)["statusCode"] == 200
    assert disconnect.handler(disconnect_event("never-connected"), CONTEXT)["statusCode"] == 200
    assert [(r["connection_id"], r["is_active"]) for r in table(store)] == [("c1", False)]


def test_disconnect_deletes_the_pre_traffic_hooks_row_only(store: ConnectionStore) -> None:
    """The release's hook (rollout/pre_traffic.py) leaves no row; a client's row stays, inactive."""
    connect.handler(connect_event("pre-traffic-0a1b2c"), CONTEXT)
    connect.handler(connect_event("L0SM9cOFvHcCIhw="), CONTEXT)  # an id as API Gateway gives them
    for connection_id in ("pre-traffic-0a1b2c", "L0SM9cOFvHcCIhw=", "pre-traffic-0a1b2c"):
        assert disconnect.handler(disconnect_event(connection_id), CONTEXT)["statusCode"] == 200
    assert [(r["connection_id"], r["is_active"]) for r in table(store)] == [("L0SM9cOFvHcCIhw=", False)]


def test_database_down_gives_500_and_one_log_line(
    store: ConnectionStore, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from handlers import runtime

    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:1/test?connect_timeout=1")
    runtime.settings.cache_clear()
    runtime.store.cache_clear()
    result = connect.handler(
        connect_event("c1", {"email": "secret.patient@example.org", "type": "email-verification"}),
        CONTEXT,
    )
    assert result["statusCode"] == 500
    out = capsys.readouterr().out
    (line,) = [json.loads(text) for text in out.strip().splitlines()]
    assert line["level"] == "ERROR" and line["message"] == "database unavailable"
    assert line["requestId"] and line["connectionId"] == "c1" and line["awsRequestId"] == "lambda-req-1"
    assert "secret.patient" not in out
    assert table(store) == []


def test_a_malformed_event_is_refused() -> None:
    assert connect.handler({"not": "an api gateway event"}, CONTEXT)["statusCode"] == 400
