"""The emulator's clock: the time its CloudWatch and EventBridge see. It runs with the wall
clock and can be moved forward (`advance`: what a rehearsal's waits do), so ten minutes of a
bake are rehearsed in a moment with CloudWatch's one evaluation a minute. At each minute boundary
passed, what runs on a schedule runs (`on_minute`: schedules, then alarms), in time order."""

from __future__ import annotations

import datetime
import math
import threading
import time
from collections.abc import Callable

_lock = threading.RLock()
_offset = 0.0
_processed: float | None = None  # the last moment whose minute work has run
_listeners: list[Callable[[float], None]] = []


def now() -> float:
    """Seconds since the epoch on the emulator's clock."""
    return time.time() + _offset


def utc(seconds: float | None = None) -> datetime.datetime:
    """A moment on the emulator's clock as moto keeps it (naive UTC)."""
    moment = now() if seconds is None else seconds
    return datetime.datetime.fromtimestamp(moment, datetime.UTC).replace(tzinfo=None)


def seconds_of(moment: datetime.datetime) -> float:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)
    return aware.timestamp()


def on_minute(listener: Callable[[float], None]) -> None:
    """Run `listener(minute)` at every minute boundary the clock passes (idempotent)."""
    if listener not in _listeners:
        _listeners.append(listener)


def catch_up() -> None:
    """Run the minute work of every boundary passed since the last call."""
    global _processed
    with _lock:
        until = now()
        start = until if _processed is None else _processed
        minute = math.floor(start / 60) * 60 + 60
        while minute <= until:
            for listener in _listeners:
                listener(minute)
            minute += 60
        _processed = until


def advance(seconds: float) -> None:
    """Move the clock forward (what sleeping would have let pass) and run what came due."""
    global _offset
    with _lock:
        catch_up()
        _offset += max(0.0, seconds)
        catch_up()
