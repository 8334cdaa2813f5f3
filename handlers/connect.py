"""`$connect`: register the connection, after checking the query string the client sends.

The client connects as `?email=...&type=email-verification` (both optional otherwise), and may
name the backend endpoint it means with `service` (`careconnect`, `calls`, `notifications`: API
Gateway has one URL where Spring had `/ws/careconnect`, `/ws/calls`, `/ws/notifications`; the
greeting follows it). Invalid parameters are refused with a 400 before anything is stored; a
valid connect is one INSERT.
"""

from __future__ import annotations

from typing import Any

from handlers import runtime
from handlers.entry import logger, run
from handlers.events import Request, response
from handlers.protocol import EMAIL
from handlers.store import ConnectionStore

SUBSCRIPTION_TYPES = ("email-verification", "authenticated", "notifications")
SERVICES = ("careconnect", "calls", "notifications")
DEFAULT_SUBSCRIPTION = "notifications"


class InvalidQuery(ValueError):
    pass


def connect_parameters(query: dict[str, str]) -> tuple[str, str | None, str]:
    """(subscription type, email as typed or None, service) from the query string. The email only
    subscribes to `email-verified` for that address: it is no identity."""
    subscription = query.get("type") or DEFAULT_SUBSCRIPTION
    if subscription not in SUBSCRIPTION_TYPES:
        raise InvalidQuery(f"type must be one of {', '.join(SUBSCRIPTION_TYPES)}")
    email = query.get("email") or None
    if email is not None and not EMAIL.match(email):
        raise InvalidQuery("email is not an email address")
    if subscription == "email-verification" and email is None:
        raise InvalidQuery("type=email-verification needs email")
    service = query.get("service") or SERVICES[0]
    if service not in SERVICES:
        raise InvalidQuery(f"service must be one of {', '.join(SERVICES)}")
    return subscription, email, service


def register_connection(request: Request, store: ConnectionStore, *, endpoint: str, ttl_minutes: int) -> dict[str, Any]:
    try:
        subscription, email, service = connect_parameters(request.query)
    except InvalidQuery as error:
        logger().warning("refused connect", extra={"reason": str(error)})
        return response(400, str(error))
    store.register(
        request.connection_id,
        subscription_type=subscription,
        email=email,
        endpoint=endpoint,
        ttl_minutes=ttl_minutes,
        metadata={"authenticated": False, "service": service},
    )
    logger().info("connected", extra={"subscriptionType": subscription})
    return response(200)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(
        event,
        context,
        lambda request: register_connection(
            request,
            runtime.store(),
            endpoint=runtime.endpoint_for(request),
            ttl_minutes=runtime.settings().ttl_minutes,
        ),
    )
