"""An environment's release strategy (`release:` in environments/<name>.yaml), checked up front.

    release: {strategy: all-at-once}                                   # the default
    release: {strategy: canary, percent: 10, bake_seconds: 300}        # 10%, alarms read 300 s, then 100%
    release: {strategy: linear, percent: 25, interval_seconds: 120}    # 25, 50, 75% (120 s each), then 100%

`monitoring_minutes` (any strategy, default 0) is how long CloudFormation keeps watching the
change sets' rollback triggers after each update (0: during the update only). `pre_traffic` (optional) names the check run against the new versions before any weight moves
(rollout/shift_step.py HOOKS).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

STRATEGIES = ("all-at-once", "canary", "linear")
WAIT_KEY = {"canary": "bake_seconds", "linear": "interval_seconds"}
MAX_WAIT_SECONDS = 3_600  # per move: longer watches belong to the bake
MAX_MONITORING_MINUTES = 180  # CloudFormation's own maximum
HOOK_NAME = r"^[a-z][a-z0-9-]{0,39}$"


class StrategyError(ValueError):
    """A release setting that is not one: the text names it and what it accepts."""


@dataclass(frozen=True)
class Release:
    strategy: str = "all-at-once"
    percent: int = 0  # the new versions' share (canary), or each step's (linear)
    seconds: int = 0  # alarms read this long after each move
    pre_traffic: str = ""
    monitoring_minutes: int = 0  # RollbackConfiguration: alarms watched this long after each update

    @property
    def shifts(self) -> bool:
        return self.strategy != "all-at-once"


def _whole(raw: dict[str, Any], key: str, low: int, high: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise StrategyError(f"release.{key}: {value!r} is not a whole number from {low} to {high}")
    return value


def parse(raw: Any) -> Release:
    """The strategy the settings give (none: all at once)."""
    if raw is None:
        return Release()
    if not isinstance(raw, dict):
        raise StrategyError(f"release: expected a mapping with strategy ({', '.join(STRATEGIES)}), not {raw!r}")
    strategy = raw.get("strategy")
    if strategy not in STRATEGIES:
        raise StrategyError(f"release.strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    hook = raw.get("pre_traffic", "")
    if not isinstance(hook, str) or (hook and not re.match(HOOK_NAME, hook)):
        raise StrategyError(f"release.pre_traffic: {hook!r} is not a hook name")
    allowed = {"strategy", "pre_traffic", "monitoring_minutes"}
    allowed |= {"percent", WAIT_KEY[strategy]} if strategy in WAIT_KEY else set()
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise StrategyError(
            f"release.{unknown[0]}: not a setting of the {strategy} strategy ({', '.join(sorted(allowed))})"
        )
    minutes = _whole(raw, "monitoring_minutes", 0, MAX_MONITORING_MINUTES) if "monitoring_minutes" in raw else 0
    if strategy == "all-at-once":
        return Release(pre_traffic=hook, monitoring_minutes=minutes)
    percent = _whole(raw, "percent", 1, 99 if strategy == "canary" else 50)
    return Release(strategy, percent, _whole(raw, WAIT_KEY[strategy], 0, MAX_WAIT_SECONDS), hook, minutes)
