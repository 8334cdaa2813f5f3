"""Per-container singletons, created once even when threads ask for one at the same moment.

`functools.cache` may call a factory again while its first call is still running; on Lambda only
one invocation runs per container, but the local WebSocket API runs the handlers on a thread pool,
and at start-up every pool thread built its own boto3 client (seconds of CPU under load).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from functools import _CacheInfo, cache, update_wrapper
from typing import Generic, TypeVar

T = TypeVar("T")


class created_once(Generic[T]):
    def __init__(self, factory: Callable[..., T]) -> None:
        self._cached = cache(factory)
        self._lock = threading.RLock()
        update_wrapper(self, factory)

    def __call__(self, *args: Hashable) -> T:
        with self._lock:
            return self._cached(*args)

    def cache_clear(self) -> None:
        with self._lock:
            self._cached.cache_clear()

    def cache_info(self) -> _CacheInfo:
        return self._cached.cache_info()
