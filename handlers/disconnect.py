"""`$disconnect`: deactivate the row (a soft delete, as the Java backend expects). Idempotent:
API Gateway delivers `$disconnect` at most once, and a 410 may have deactivated it already.
The release's pre-traffic hook's connection (`pre-traffic-...`, an id API Gateway never gives)
is deleted instead: a release leaves no row behind."""

from __future__ import annotations

from typing import Any

from handlers import runtime
from handlers.entry import logger, run
from handlers.events import Request, response
from handlers.store import ConnectionStore


def deactivate_connection(request: Request, store: ConnectionStore) -> dict[str, Any]:
    if request.pre_traffic:
        logger().info("pre-traffic session ended", extra={"deleted": store.delete(request.connection_id)})
        return response(200)
    changed = store.deactivate(request.connection_id)
    logger().info("disconnected", extra={"wasActive": changed})
    return response(200)


def handler(event: Any, context: Any) -> dict[str, Any]:
    return run(event, context, lambda request: deactivate_connection(request, runtime.store()))
