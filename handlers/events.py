"""The parts of an API Gateway WebSocket event the handlers use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# The connection ids the release's pre-traffic hook (rollout/pre_traffic.py) gives its session.
# API Gateway's own ids are 16 base64 characters ending in "=" (never this prefix), so no client
# can hold one: `$disconnect` deletes such a row instead of keeping it inactive.
PRE_TRAFFIC_PREFIX = "pre-traffic-"


@dataclass(frozen=True)
class Request:
    connection_id: str
    request_id: str
    route_key: str
    domain_name: str
    stage: str
    body: str | None = None
    is_base64: bool = False
    query: dict[str, str] = field(default_factory=dict)

    @property
    def pre_traffic(self) -> bool:
        return self.connection_id.startswith(PRE_TRAFFIC_PREFIX)

    @property
    def event_endpoint(self) -> str:
        """The management endpoint of the API that sent this event."""
        return f"https://{self.domain_name}/{self.stage}"


class MalformedEvent(ValueError):
    """Not an API Gateway WebSocket event (e.g. invoked by hand with the wrong payload)."""


def parse_event(event: Any) -> Request:
    if not isinstance(event, dict) or not isinstance(event.get("requestContext"), dict):
        raise MalformedEvent("expected an API Gateway WebSocket event with a requestContext")
    context = event["requestContext"]
    connection_id = context.get("connectionId")
    if not isinstance(connection_id, str) or not connection_id:
        raise MalformedEvent("requestContext.connectionId is missing")
    query = event.get("queryStringParameters") or {}
    return Request(
        connection_id=connection_id,
        request_id=str(context.get("requestId", "")),
        route_key=str(context.get("routeKey", "")),
        domain_name=str(context.get("domainName", "")),
        stage=str(context.get("stage", "")),
        body=event.get("body"),
        is_base64=bool(event.get("isBase64Encoded")),
        query={str(k): str(v) for k, v in query.items()} if isinstance(query, dict) else {},
    )


def response(status: int, body: str = "") -> dict[str, Any]:
    return {"statusCode": status, "body": body}
