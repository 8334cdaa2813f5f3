"""A change set's RollbackConfiguration is honoured (emulator/rollback_triggers.py): a trigger
alarm in ALARM when the update ends rolls it back; one not in ALARM, or no triggers, lets it stand.
With MonitoringTimeInMinutes the stack stays in progress that long on the emulator's clock: a
trigger going to ALARM meanwhile rolls the operation back, a quiet window completes it."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from emulator import advance_clock
from tests.emulator.lambda_zips import client

STACK = "triggered"
TEMPLATE = json.dumps({
    "Parameters": {"Value": {"Type": "String"}},
    "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"Tags": [{"Key": "v", "Value": {"Ref": "Value"}}]}}},
    "Outputs": {"Value": {"Value": {"Ref": "Value"}}},
})  # fmt: skip


def _alarm(emulator: str, state: str) -> str:
    cloudwatch = client(emulator, "cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="errors", Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    if state != "INSUFFICIENT_DATA":
        cloudwatch.set_alarm_state(AlarmName="errors", StateValue=state, StateReason="test")
    return str(cloudwatch.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]["AlarmArn"])


def _change(emulator: str, value: str, update: bool, **extra: Any) -> dict[str, Any]:
    cf = client(emulator, "cloudformation")
    name = f"c{time.monotonic_ns()}"
    cf.create_change_set(StackName=STACK, ChangeSetName=name, ChangeSetType="UPDATE" if update else "CREATE",
                         TemplateBody=TEMPLATE, Parameters=[{"ParameterKey": "Value", "ParameterValue": value}],
                         **extra)  # fmt: skip
    cf.execute_change_set(StackName=STACK, ChangeSetName=name)
    return dict(cf.describe_stacks(StackName=STACK)["Stacks"][0])


def _triggers(arn: str, minutes: int = 0) -> dict[str, Any]:
    return {"RollbackConfiguration": {"RollbackTriggers": [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"}],
                                      "MonitoringTimeInMinutes": minutes}}  # fmt: skip


def _stack(emulator: str) -> dict[str, Any]:
    return dict(client(emulator, "cloudformation").describe_stacks(StackName=STACK)["Stacks"][0])


def _values(stack: dict[str, Any]) -> dict[str, str]:
    return {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]}


def test_an_update_whose_trigger_is_in_alarm_is_rolled_back(emulator: str) -> None:
    _change(emulator, "one", update=False)
    arn = _alarm(emulator, "ALARM")
    stack = _change(emulator, "two", update=True, **_triggers(arn))
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert arn in stack["StackStatusReason"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == {"Value": "one"}


@pytest.mark.parametrize("state", ["OK", "INSUFFICIENT_DATA"])
def test_an_update_whose_triggers_are_quiet_stands(emulator: str, state: str) -> None:
    _change(emulator, "one", update=False)
    stack = _change(emulator, "two", update=True, **_triggers(_alarm(emulator, state)))
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == {"Value": "two"}


def test_without_triggers_an_alarm_does_not_roll_back(emulator: str) -> None:
    _change(emulator, "one", update=False)
    _alarm(emulator, "ALARM")
    assert _change(emulator, "two", update=True)["StackStatus"] == "UPDATE_COMPLETE"


def test_more_than_five_triggers_are_refused(emulator: str) -> None:
    arn = _alarm(emulator, "OK")
    configuration = {"RollbackTriggers": [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"}] * 6}
    with pytest.raises(client(emulator, "cloudformation").exceptions.ClientError, match="must not exceed 5"):
        _change(emulator, "one", update=False, RollbackConfiguration=configuration)


def test_an_update_stays_in_progress_for_its_monitoring_time_then_completes(emulator: str) -> None:
    _change(emulator, "one", update=False)
    stack = _change(emulator, "two", update=True, **_triggers(_alarm(emulator, "OK"), minutes=5))
    assert stack["StackStatus"] == "UPDATE_IN_PROGRESS"
    assert _values(stack) == {"Value": "two"}  # its resources are done: only the watch goes on
    advance_clock(4 * 60)
    assert _stack(emulator)["StackStatus"] == "UPDATE_IN_PROGRESS"
    advance_clock(60 + 1)  # the alarm, never in ALARM (no data since: INSUFFICIENT_DATA)
    stack = _stack(emulator)
    assert stack["StackStatus"] == "UPDATE_COMPLETE"
    assert _values(stack) == {"Value": "two"}
    events = client(emulator, "cloudformation").describe_stack_events(StackName=STACK)["StackEvents"]
    assert events[0]["ResourceStatus"] == "UPDATE_COMPLETE"  # newest first: written once the window passed


def test_a_trigger_in_alarm_during_the_monitoring_time_rolls_the_update_back(emulator: str) -> None:
    _change(emulator, "one", update=False)
    arn = _alarm(emulator, "OK")
    assert _change(emulator, "two", update=True, **_triggers(arn, minutes=5))["StackStatus"] == "UPDATE_IN_PROGRESS"
    advance_clock(2 * 60)
    assert _stack(emulator)["StackStatus"] == "UPDATE_IN_PROGRESS"
    client(emulator, "cloudwatch").set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="test")
    stack = _stack(emulator)
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert arn in stack["StackStatusReason"]
    assert _values(stack) == {"Value": "one"}


def test_a_create_whose_trigger_goes_to_alarm_while_monitored_is_rolled_back(emulator: str) -> None:
    arn = _alarm(emulator, "OK")
    assert _change(emulator, "one", update=False, **_triggers(arn, minutes=3))["StackStatus"] == "CREATE_IN_PROGRESS"
    client(emulator, "cloudwatch").set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="test")
    assert _stack(emulator)["StackStatus"] == "ROLLBACK_COMPLETE"
    assert client(emulator, "sqs").list_queues().get("QueueUrls", []) == []


def test_an_alarm_after_the_monitoring_time_changes_nothing(emulator: str) -> None:
    _change(emulator, "one", update=False)
    _change(emulator, "two", update=True, **_triggers(_alarm(emulator, "OK"), minutes=1))
    advance_clock(61)
    client(emulator, "cloudwatch").set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="test")
    assert _stack(emulator)["StackStatus"] == "UPDATE_COMPLETE"


def test_a_stack_being_monitored_refuses_another_change_set(emulator: str) -> None:
    _change(emulator, "one", update=False)
    _change(emulator, "two", update=True, **_triggers(_alarm(emulator, "OK"), minutes=5))
    with pytest.raises(client(emulator, "cloudformation").exceptions.ClientError, match="UPDATE_IN_PROGRESS state"):
        _change(emulator, "three", update=True)
    advance_clock(5 * 60 + 1)
    assert _values(_change(emulator, "three", update=True)) == {"Value": "three"}
