"""Per-container singletons are created once, however many threads ask at the same moment (the
local API runs the handlers on a thread pool)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from handlers.once import created_once


def _slow_factory(calls: list[str], patience: float) -> object:
    """A factory whose first call lasts until a second call starts, or `patience` seconds: as long
    as building a boto3 client, and never shorter than a slow thread's start under load."""
    second_started = threading.Event()

    def make(key: str) -> object:
        calls.append(key)
        if len(calls) == 1:
            second_started.wait(patience)
        else:
            second_started.set()
        return object()

    return make


def _ask_at_once(get: object, threads: int = 8) -> set[int]:
    start = threading.Barrier(threads)

    def ask() -> int:
        start.wait()
        return id(get("endpoint"))  # type: ignore[operator]

    with ThreadPoolExecutor(threads) as pool:
        return set(pool.map(lambda _: ask(), range(threads)))


def test_threads_asking_at_once_share_one_creation() -> None:
    calls: list[str] = []
    get = created_once(_slow_factory(calls, patience=0.3))
    assert len(_ask_at_once(get)) == 1 and calls == ["endpoint"]
    assert get.cache_info().currsize == 1
    get.cache_clear()
    get("endpoint")
    assert calls == ["endpoint", "endpoint"]  # cleared: created again, as functools.cache does
