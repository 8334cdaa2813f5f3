"""`release.monitoring_minutes` rehearsed: the emulator keeps the updated stack in progress that
long on its clock (emulator/rollback_triggers.py), and the deploy step waits it out (each wait
moving the clock on): a quiet window ends the update UPDATE_COMPLETE, a trigger going to ALARM
within it rolls the update back and fails the run with the stack's reason."""

from __future__ import annotations

import dataclasses

import boto3
import pytest

from emulator import advance_clock, clock
from rollout import settings, strategy
from rollout.stacks import StageFailed
from tests.rollout.conftest import Run, with_parameters
from tests.rollout.test_bake import on_a_minute

ALARM = "cc-websocket-alarm-default-errors"  # one of the change sets' rollback triggers


def monitored(base: settings.EnvironmentSettings, minutes: int) -> settings.EnvironmentSettings:
    """A compute update (a new configuration), its change set monitored `minutes` after it."""
    changed = with_parameters(base, "compute", MemorySize="512")
    return dataclasses.replace(changed, release=strategy.Release(monitoring_minutes=minutes))


def test_a_monitored_update_completes_once_its_monitoring_time_has_passed(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)  # the alarms exist from here: the next change sets name them
    on_a_minute()
    start = clock.now()
    summary, _, _ = rollout(monitored(env_settings, 2), sleep=advance_clock)
    assert {s["stage"]: s["action"] for s in summary["stages"]}["compute"] == "updated"
    assert clock.now() - start >= 2 * 60  # the step waited while CloudFormation watched
    cf = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=emulator)
    assert cf.describe_stacks(StackName="cc-websocket-compute")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"


def test_a_trigger_in_alarm_within_the_monitoring_time_rolls_the_update_back(
    rollout: Run, env_settings: settings.EnvironmentSettings, emulator: str
) -> None:
    rollout(env_settings)
    on_a_minute()
    cloudwatch = boto3.client("cloudwatch", region_name="eu-west-1", endpoint_url=emulator)
    waited: list[float] = []

    def sleep(seconds: float) -> None:
        """Only the watch of the executed update waits here (the rehearsal polls every 0 s): a
        minute into its two, the trigger goes to ALARM."""
        advance_clock(seconds)
        waited.append(seconds)
        if sum(waited) >= 60 > sum(waited) - seconds:
            cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="Threshold Crossed")

    with pytest.raises(StageFailed, match="ended UPDATE_ROLLBACK_COMPLETE: Rollback trigger") as failed:
        rollout(monitored(env_settings, 2), sleep=sleep)
    assert ALARM in str(failed.value) and 60 <= sum(waited) < 2 * 60
