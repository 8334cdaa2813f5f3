"""The bake step: after the endpoint stage, watch the stacks' alarms for a while before calling
the rollout good. Any alarm in ALARM fails the rollout (exit 1), naming the alarm and CloudWatch's
reason; a bake of 0 seconds is skipped. The state machine runs the same step (generator/
statemachine.py `bake_states`): DescribeAlarms by the alarms' name prefix, every poll interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from generator.model import ALARM_PREFIX
from rollout.report import Reporter
from rollout.stacks import StageFailed
from rollout.summary import StageResult


class AlarmFired(StageFailed):
    """An alarm of the stacks was in ALARM during the bake."""


def alarm_prefix(name_prefix: str) -> str:
    """The name prefix of every alarm of an environment's stacks (generator/monitoring.py)."""
    return ALARM_PREFIX.replace("${NamePrefix}", name_prefix)


def firing(cloudwatch: Any, prefix: str) -> list[dict[str, Any]]:
    """The stacks' metric alarms now in ALARM."""
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm"]
    )
    return [alarm for page in pages for alarm in page.get("MetricAlarms", [])]


def checks(seconds: float, poll_seconds: float) -> int:
    """How many looks a bake of `seconds` takes at one look per poll interval (after the first)."""
    return 0 if seconds <= 0 else max(1, math.ceil(seconds / max(poll_seconds, 0.001)))


def bake(
    cloudwatch: Any,
    prefix: str,
    seconds: float,
    report: Reporter,
    *,
    poll_seconds: float,
    sleep: Callable[[float], None] = time.sleep,
    dry_run: bool = False,
) -> StageResult | None:
    """The bake's result; None when there is none to run (0 seconds)."""
    if seconds <= 0:
        return None
    if dry_run:
        return StageResult("bake", "planned", f"watch the {prefix}* alarms for {seconds:g} s")
    looks = checks(seconds, poll_seconds)
    for look in range(looks + 1):
        alarms = firing(cloudwatch, prefix)
        if alarms:
            details = [f"{a['AlarmName']}: {a.get('StateReason', 'no reason given')}" for a in alarms]
            for line in details:
                report.line("bake", f"ALARM {line}")
            raise AlarmFired(f"bake: {len(alarms)} alarm(s) in ALARM after the rollout", details)
        if look < looks:
            if look % max(1, looks // 10) == 0:
                report.line("bake", f"no alarm in ALARM ({look * poll_seconds:g} of {seconds:g} s)")
            sleep(poll_seconds)
    report.line("bake", f"no alarm in ALARM for {seconds:g} s")
    return StageResult("bake", "succeeded", f"{seconds:g} s, no alarm in ALARM ({prefix}*)")
