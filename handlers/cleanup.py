"""Scheduled cleanup (EventBridge, hourly by default): deactivate connections past their TTL and
delete inactive rows older than 7 days, the same housekeeping the Java backend does."""

from __future__ import annotations

from typing import Any

from handlers import runtime
from handlers.entry import invoke, logger
from handlers.store import INACTIVE_RETENTION_DAYS, ConnectionStore


def clean(store: ConnectionStore, retention_days: int = INACTIVE_RETENTION_DAYS) -> dict[str, int]:
    expired = store.deactivate_expired()
    deleted = store.delete_inactive_older_than(retention_days)
    return {"deactivated": expired, "deleted": deleted}


def handler(event: Any, context: Any) -> dict[str, Any]:
    def action() -> dict[str, int]:
        result = clean(runtime.store())
        logger().info("cleanup done", extra=result)
        return result

    return invoke(context, action, raise_failures=True)
