"""What the bake step (`rollout.steps.Bake`) reads: after the endpoint is set, the stacks' alarms
are watched for a while before the rollout is called good. Any alarm in ALARM fails the rollout
(exit 1), naming the alarm and CloudWatch's reason; a bake of 0 seconds is left out of the plan.
"""

from __future__ import annotations

import math
from typing import Any

from generator.names import Names
from generator.stages import VERSION_ALARM_SUFFIX
from rollout.stacks import StageFailed


class AlarmFired(StageFailed):
    """An alarm of the stacks was in ALARM during the bake."""


def alarm_prefix(name_prefix: str) -> str:
    """The name prefix of every alarm of an environment's stacks (generator/monitoring.py)."""
    return Names(name_prefix).alarm_prefix


def firing(cloudwatch: Any, prefix: str) -> list[dict[str, Any]]:
    """The stacks' metric alarms now in ALARM."""
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=prefix, StateValue="ALARM", AlarmTypes=["MetricAlarm"]
    )
    return [alarm for page in pages for alarm in page.get("MetricAlarms", [])]


def fresh_version_alarms(cloudwatch: Any, prefix: str) -> list[str]:
    """The version alarms (generator/monitoring.py) a release has just pointed at its new versions
    set to OK, when in ALARM: CloudFormation's update of an alarm keeps its state (PutMetricAlarm),
    so that ALARM speaks of the version before, which the alias no longer sends the new share to.
    Only an alarm reconfigured since its state last changed is reset; CloudWatch's next evaluation
    gives it the state the new version earns. The names reset."""
    reset = []
    for alarm in firing(cloudwatch, prefix):
        configured, judged = alarm.get("AlarmConfigurationUpdatedTimestamp"), alarm.get("StateUpdatedTimestamp")
        if alarm["AlarmName"].endswith(VERSION_ALARM_SUFFIX) and configured and judged and configured > judged:
            version = next((d["Value"] for d in alarm.get("Dimensions", []) if d["Name"] == "ExecutedVersion"), "?")
            cloudwatch.set_alarm_state(
                AlarmName=alarm["AlarmName"],
                StateValue="OK",
                StateReason=f"Reset by the rollout: it watches version {version} now; its ALARM was the version before's",
            )
            reset.append(alarm["AlarmName"])
    return reset


def checks(seconds: float, poll_seconds: float) -> int:
    """How many looks a bake of `seconds` takes at one look per poll interval (after the first)."""
    return 0 if seconds <= 0 else max(1, math.ceil(seconds / max(poll_seconds, 0.001)))
