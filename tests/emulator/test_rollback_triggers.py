"""A change set's RollbackConfiguration is honoured (emulator/rollback_triggers.py): a trigger
alarm in ALARM when the update ends rolls it back; one not in ALARM, or no triggers, lets it stand."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

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


def _triggers(arn: str) -> dict[str, Any]:
    return {"RollbackConfiguration": {"RollbackTriggers": [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"}],
                                      "MonitoringTimeInMinutes": 0}}  # fmt: skip


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
