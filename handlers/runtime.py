"""Per-container singletons: settings, the store, senders and the token verifier.

Created on first use, not at import, so a cold start imports little and a bad setting is
reported by the invocation that needs it, with what to fix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from handlers.db import Database
from handlers.events import Request
from handlers.once import created_once
from handlers.settings import Settings, load
from handlers.store import ConnectionStore
from handlers.users import UserDirectory

if TYPE_CHECKING:  # imported where used: $connect and $disconnect need neither (cold start)
    from handlers.auth import TokenVerifier
    from handlers.sender import Sender

FAN_OUT_CONCURRENCY = 16


@created_once
def settings() -> Settings:
    return load()


@created_once
def store() -> ConnectionStore:
    return ConnectionStore(Database.from_settings(settings().database))


@created_once
def users() -> UserDirectory:
    """The backend's users table, through the same connection as the store."""
    return UserDirectory(store().db)


def endpoint_for(request: Request) -> str:
    """AWS_WEBSOCKET_API_GATEWAY_ENDPOINT, else the endpoint of the API that sent the event."""
    return settings().management_endpoint or request.event_endpoint


def sender_for(request: Request) -> Sender:
    return _sender(endpoint_for(request))


@created_once
def _sender(endpoint: str) -> Sender:
    from handlers import aws
    from handlers.sender import Sender

    client = aws.management_client(endpoint, settings().region or None, FAN_OUT_CONCURRENCY)
    return Sender(client, on_gone=store().deactivate, max_workers=FAN_OUT_CONCURRENCY)


def management_sender() -> Sender:
    """The sender for pushes that arrive with no WebSocket event (the notify path)."""
    from handlers.settings import ConfigurationError

    endpoint = settings().management_endpoint
    if not endpoint:
        raise ConfigurationError(
            "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT is not set: run the rollout (its endpoint stage sets it)"
        )
    return _sender(endpoint)


@created_once
def verifier() -> TokenVerifier | None:
    from handlers.auth import TokenVerifier

    jwt_settings = settings().jwt
    return TokenVerifier(jwt_settings) if jwt_settings.configured else None
