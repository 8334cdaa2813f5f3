"""What every Lambda entry point does around its plain function: parse the event, bind log ids,
and turn infrastructure failures into one log line and an answer (never a raised exception):
a 5xx for API Gateway's routes (`run`), an `{"error": ...}` for direct invocations (`invoke`)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from handlers import logs
from handlers.db import DatabaseUnavailable
from handlers.events import MalformedEvent, Request, parse_event, response
from handlers.settings import ConfigurationError

log = logs.setup()


def run(event: Any, context: Any, action: Callable[[Request], dict[str, Any]]) -> dict[str, Any]:
    aws_request_id = getattr(context, "aws_request_id", None)
    try:
        request = parse_event(event)
    except MalformedEvent as error:
        logs.bind(awsRequestId=aws_request_id)
        log.error("rejected a malformed event", extra={"reason": str(error)})
        return response(400, str(error))
    logs.bind(
        requestId=request.request_id,
        connectionId=request.connection_id,
        route=request.route_key,
        awsRequestId=aws_request_id,
    )
    try:
        return action(request)
    except DatabaseUnavailable as error:
        log.error("database unavailable", extra={"reason": str(error)})
        return response(500, "database unavailable")
    except ConfigurationError as error:
        log.error("function misconfigured", extra={"reason": str(error)})
        return response(500, "function misconfigured")
    except Exception as error:
        log.error("unexpected failure", extra={"error": type(error).__name__}, exc_info=True)
        return response(500, "internal error")


def invoke(context: Any, action: Callable[[], dict[str, Any]], *, raise_failures: bool = False) -> dict[str, Any]:
    """For functions invoked directly: ids bound, failures logged once and answered with
    `{"error": ...}` (the notify path), or raised (`raise_failures`: the scheduled cleanup, so a
    failed run counts in the function's Errors metric and EventBridge retries it)."""
    logs.bind(awsRequestId=getattr(context, "aws_request_id", None))
    try:
        return action()
    except Exception as error:
        if isinstance(error, DatabaseUnavailable):
            log.error("database unavailable", extra={"reason": str(error)})
            answer = "database unavailable"
        elif isinstance(error, ConfigurationError):
            log.error("function misconfigured", extra={"reason": str(error)})
            answer = f"function misconfigured: {error}"
        else:
            log.error("unexpected failure", extra={"error": type(error).__name__}, exc_info=True)
            answer = "internal error"
        if raise_failures:
            raise
        return {"error": answer}


def logger() -> logging.Logger:
    return log
