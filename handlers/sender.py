"""Sending frames through the API Gateway management API.

One client per container and endpoint. A fan-out posts to many connections with bounded
concurrency, each post in a copy of the caller's context (so its log lines keep the request
ids); a 410 (GoneException) deactivates that connection while the others still get the
message; throttling is retried by the client (botocore's standard retry mode, handlers/aws.py,
with backoff and jitter) and counted (`Outcome.RETRIED`);
a payload over API Gateway's 128 KB limit is refused before any post.
"""

from __future__ import annotations

import contextvars
import json
import logging
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.protocol import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

GONE_CODES = {"GoneException"}


class Outcome(Enum):
    SENT = "sent"
    GONE = "gone"
    FAILED = "failed"
    # Also counted, beside one of the above: a post API Gateway throttled (or answered 5xx) and
    # botocore retried with backoff (its RetryAttempts).
    RETRIED = "retried"


class PayloadTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")


def encode(payload: dict[str, Any] | str) -> bytes:
    """A JSON frame, or a plain-text one (`/ws/notifications` speaks text)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    data = text.encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(len(data))
    return data


class Sender:
    def __init__(self, client: Any, on_gone: Callable[[str], object], *, max_workers: int = 16) -> None:
        self.client = client
        self.on_gone = on_gone
        self.max_workers = max_workers

    def send(self, connection_id: str, payload: dict[str, Any] | str) -> Outcome:
        """Post one frame; raises PayloadTooLarge before posting anything too big."""
        return self._post(connection_id, encode(payload))

    def fan_out(self, connection_ids: Iterable[str], payload: dict[str, Any] | str) -> Counter[Outcome]:
        """Post one frame to many connections, at most `max_workers` at a time."""
        data = encode(payload)
        targets = list(dict.fromkeys(connection_ids))
        if len(targets) <= 1 or self.max_workers <= 1:
            results = [self._attempted(cid, data) for cid in targets]
        else:
            # One copy of the caller's context per post: a context cannot be entered by two threads.
            contexts = [contextvars.copy_context() for _ in targets]
            with ThreadPoolExecutor(max_workers=min(self.max_workers, len(targets))) as pool:
                results = list(pool.map(lambda ctx, cid: ctx.run(self._attempted, cid, data), contexts, targets))
        return Counter([outcome for outcome, _ in results] + [Outcome.RETRIED for _, retried in results if retried])

    def close(self, connection_id: str) -> None:
        """Close a connection from the server side; a connection already gone is fine."""
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            if _code(error) not in GONE_CODES:
                log.warning("closing a connection failed", extra={"error": _code(error)})

    def _post(self, connection_id: str, data: bytes) -> Outcome:
        return self._attempted(connection_id, data)[0]

    def _attempted(self, connection_id: str, data: bytes) -> tuple[Outcome, bool]:
        """The post's outcome, and whether botocore retried it (throttled or 5xx first)."""
        try:
            answer = self.client.post_to_connection(ConnectionId=connection_id, Data=data)
            return Outcome.SENT, _retried(answer)
        except ClientError as error:
            code = _code(error)
            if code in GONE_CODES:
                self.on_gone(connection_id)
                return Outcome.GONE, _retried(error.response)
            log.warning("post to connection failed", extra={"error": code})
            return Outcome.FAILED, _retried(error.response)
        except BotoCoreError as error:
            log.warning("post to connection failed", extra={"error": type(error).__name__})
            return Outcome.FAILED, False


def _retried(answer: Any) -> bool:
    return bool(isinstance(answer, dict) and answer.get("ResponseMetadata", {}).get("RetryAttempts"))


def _code(error: ClientError) -> str:
    if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
        return "GoneException"  # whatever the body said: 410 means the connection is gone
    return str(error.response.get("Error", {}).get("Code", ""))
