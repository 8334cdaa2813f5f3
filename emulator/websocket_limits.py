"""API Gateway's WebSocket limits as the emulator applies them: message size, the idle and
maximum connection durations, the integration timeout, and the stage's throttling (a token
bucket per route, from the route's settings or the stage's default route settings, else the
account's 10,000 requests/s with a burst of 5,000).

`LIMITS` holds AWS's values; tests and local runs may lower the durations (`LIMITS.idle_seconds
= 2`) so nothing waits ten minutes. The 32 KB frame limit is not applied: aiohttp reassembles
frames before the emulator sees them, so only the 128 KB message limit closes a connection."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Limits:
    idle_seconds: float = 600.0  # 10 minutes without a frame from the client
    max_seconds: float = 7200.0  # 2 hours at most per connection
    message_bytes: int = 128 * 1024  # larger: API Gateway closes with 1009 (message too big)
    integration_timeout_ms: int = 29_000  # the default, and the WebSocket maximum
    account_rate: float = 10_000.0
    account_burst: int = 5_000


LIMITS = Limits()


def integration_timeout(integration: Any) -> float:
    """Seconds the integration may take: its TimeoutInMillis, at most 29 s (the default)."""
    millis = getattr(integration, "timeout_in_millis", None) or LIMITS.integration_timeout_ms
    return min(int(millis), LIMITS.integration_timeout_ms) / 1000


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self.tokens, self.updated = float(burst), time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(self.burst), self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class Throttles:
    """One bucket per (API, stage, route), re-made when the stage's settings change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._buckets: dict[tuple[str, str, str], TokenBucket] = {}

    def allow(self, api_id: str, stage: Any, route_key: str) -> bool:
        rate, burst = throttling(stage, route_key)
        key = (api_id, str(stage.name), route_key)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None or (bucket.rate, bucket.burst) != (rate, burst):
                bucket = self._buckets[key] = TokenBucket(rate, burst)
            return bucket.take()


def throttling(stage: Any, route_key: str) -> tuple[float, int]:
    """(rate per second, burst) for a route: its own route settings, else the stage's default
    route settings, else the account's. A limit set to 0 throttles every request (as on AWS)."""
    settings = {**(stage.default_route_settings or {}), **((stage.route_settings or {}).get(route_key) or {})}
    rate, burst = settings.get("throttlingRateLimit"), settings.get("throttlingBurstLimit")
    return (
        LIMITS.account_rate if rate is None else float(rate),
        LIMITS.account_burst if burst is None else int(burst),
    )
