"""API Gateway WebSocket events shaped as AWS documents them for Lambda proxy integrations."""

from __future__ import annotations

import itertools
from typing import Any

DOMAIN = "a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com"
_ids = itertools.count(1)


def _context(connection_id: str, route_key: str, event_type: str) -> dict[str, Any]:
    n = next(_ids)
    return {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": f"ext-{n}",
        "requestTime": "25/Nov/2026:19:00:00 +0000",
        "messageDirection": "IN",
        "stage": "prod",
        "connectedAt": 1795633200000,
        "requestTimeEpoch": 1795633200000 + n,
        "identity": {"sourceIp": "203.0.113.10", "userAgent": "Dart/3.5 (dart:io)"},
        "requestId": f"req-{n}",
        "domainName": DOMAIN,
        "connectionId": connection_id,
        "apiId": "a1b2c3d4e5",
    }


def connect_event(connection_id: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "headers": {
            "Host": DOMAIN,
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZQ==",
        },
        "multiValueHeaders": {"Host": [DOMAIN]},
        "queryStringParameters": query,
        "multiValueQueryStringParameters": {k: [v] for k, v in (query or {}).items()} or None,
        "requestContext": _context(connection_id, "$connect", "CONNECT"),
        "isBase64Encoded": False,
    }


def message_event(connection_id: str, body: str | None, *, binary: bool = False) -> dict[str, Any]:
    context = _context(connection_id, "$default", "MESSAGE")
    context["messageId"] = f"msg-{context['requestId']}"
    return {"requestContext": context, "body": body, "isBase64Encoded": binary}


def disconnect_event(connection_id: str) -> dict[str, Any]:
    context = _context(connection_id, "$disconnect", "DISCONNECT")
    context.update({"disconnectStatusCode": 1001, "disconnectReason": "Going away"})
    return {
        "headers": {"Host": DOMAIN},
        "multiValueHeaders": {"Host": [DOMAIN]},
        "requestContext": context,
        "isBase64Encoded": False,
    }
