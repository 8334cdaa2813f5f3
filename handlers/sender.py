"""Sending frames through the API Gateway management API.

One client per container and endpoint. A fan-out posts to many connections with bounded
concurrency; a 410 (GoneException) deactivates that connection while the others still get the
message; throttling is retried with exponential backoff and jitter; a payload over API
Gateway's 128 KB limit is refused before any post.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from enum import Enum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from handlers.protocol import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

THROTTLING_CODES = {
    "LimitExceededException",
    "TooManyRequestsException",
    "ThrottlingException",
    "Throttling",
}
GONE_CODES = {"GoneException"}


class Outcome(Enum):
    SENT = "sent"
    GONE = "gone"
    FAILED = "failed"


class PayloadTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"message is {size} bytes; the limit is {MAX_MESSAGE_BYTES}")


def encode(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(data) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(len(data))
    return data


class Sender:
    def __init__(
        self,
        client: Any,
        on_gone: Callable[[str], object],
        *,
        max_workers: int = 16,
        max_attempts: int = 5,
        base_delay: float = 0.05,
        max_delay: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.on_gone = on_gone
        self.max_workers = max_workers
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep

    def send(self, connection_id: str, payload: dict[str, Any]) -> Outcome:
        """Post one frame; raises PayloadTooLarge before posting anything too big."""
        return self._post(connection_id, encode(payload))

    def fan_out(self, connection_ids: Iterable[str], payload: dict[str, Any]) -> Counter[Outcome]:
        """Post one frame to many connections, at most `max_workers` at a time."""
        data = encode(payload)
        targets = list(dict.fromkeys(connection_ids))
        if len(targets) <= 1 or self.max_workers <= 1:
            return Counter(self._post(cid, data) for cid in targets)
        with ThreadPoolExecutor(max_workers=min(self.max_workers, len(targets))) as pool:
            return Counter(pool.map(lambda cid: self._post(cid, data), targets))

    def close(self, connection_id: str) -> None:
        """Close a connection from the server side; a connection already gone is fine."""
        try:
            self.client.delete_connection(ConnectionId=connection_id)
        except ClientError as error:
            if _code(error) not in GONE_CODES:
                log.warning("closing a connection failed", extra={"error": _code(error)})

    def _post(self, connection_id: str, data: bytes) -> Outcome:
        for attempt in range(1, self.max_attempts + 1):
            try:
                self.client.post_to_connection(ConnectionId=connection_id, Data=data)
                return Outcome.SENT
            except ClientError as error:
                code = _code(error)
                if code in GONE_CODES:
                    self.on_gone(connection_id)
                    return Outcome.GONE
                if code in THROTTLING_CODES and attempt < self.max_attempts:
                    self.sleep(random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt)))
                    continue
                log.warning("post to connection failed", extra={"error": code, "attempts": attempt})
                return Outcome.FAILED
            except BotoCoreError as error:
                log.warning("post to connection failed", extra={"error": type(error).__name__})
                return Outcome.FAILED
        return Outcome.FAILED  # pragma: no cover - the loop always returns


def _code(error: ClientError) -> str:
    if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 410:
        return "GoneException"  # whatever the body said: 410 means the connection is gone
    return str(error.response.get("Error", {}).get("Code", ""))
