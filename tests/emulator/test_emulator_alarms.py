"""Gap 8: the emulator creates a stack's `AWS::CloudWatch::Alarm`s (moto's CloudFormation skips
them), keeps their state across an update, deletes them with the stack, and lets a test drive
one into ALARM with SetAlarmState, as on AWS."""

from __future__ import annotations

import json
from typing import Any

import boto3

REGION = "eu-west-1"


def alarm_template(threshold: int) -> str:
    errors = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": "cc-websocket-alarm-connect-errors",
            "Namespace": "AWS/Lambda",
            "MetricName": "Errors",
            "Dimensions": [{"Name": "FunctionName", "Value": "cc-websocket-connect"}],
            "Statistic": "Sum",
            "Period": 300,
            "EvaluationPeriods": 1,
            "Threshold": threshold,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
        },
    }
    rate = {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmName": "cc-websocket-alarm-api-client-error-rate",
            "EvaluationPeriods": 1,
            "Threshold": 10,
            "ComparisonOperator": "GreaterThanThreshold",
            "Metrics": [{"Id": "e1", "Expression": "IF(m > 0, 100 * c / m, 0)", "ReturnData": True}],
        },
    }
    return json.dumps({"Resources": {"Errors": errors, "Rate": rate},
                       "Outputs": {"ErrorsAlarm": {"Value": {"Ref": "Errors"}}}})  # fmt: skip


def stack(emulator: str, action: str, threshold: int) -> None:
    cf = boto3.client("cloudformation", region_name=REGION, endpoint_url=emulator)
    getattr(cf, f"{action}_stack")(StackName="alarms", TemplateBody=alarm_template(threshold))


def alarms(emulator: str) -> dict[str, Any]:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator)
    return {
        a["AlarmName"]: a for a in cloudwatch.describe_alarms(AlarmNamePrefix="cc-websocket-alarm-")["MetricAlarms"]
    }


def test_a_stacks_alarms_exist_keep_their_state_and_go_with_the_stack(emulator: str) -> None:
    cf = boto3.client("cloudformation", region_name=REGION, endpoint_url=emulator)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator)
    stack(emulator, "create", 1)
    found = alarms(emulator)
    assert set(found) == {"cc-websocket-alarm-connect-errors", "cc-websocket-alarm-api-client-error-rate"}
    assert found["cc-websocket-alarm-connect-errors"]["Threshold"] == 1.0
    (output,) = cf.describe_stacks(StackName="alarms")["Stacks"][0]["Outputs"]
    assert output["OutputValue"] == "cc-websocket-alarm-connect-errors"  # Ref is the alarm's name

    cloudwatch.set_alarm_state(AlarmName="cc-websocket-alarm-connect-errors", StateValue="ALARM",
                               StateReason="Threshold Crossed: 3 datapoints")  # fmt: skip
    assert alarms(emulator)["cc-websocket-alarm-api-client-error-rate"]["StateValue"] == "INSUFFICIENT_DATA"
    both = cloudwatch.describe_alarms(AlarmNamePrefix="cc-websocket-alarm-", StateValue="ALARM")["MetricAlarms"]
    assert [a["AlarmName"] for a in both] == ["cc-websocket-alarm-connect-errors"]  # both filters, as on AWS
    assert cloudwatch.describe_alarms(AlarmNamePrefix="other-", StateValue="ALARM")["MetricAlarms"] == []
    stack(emulator, "update", 5)
    updated = alarms(emulator)["cc-websocket-alarm-connect-errors"]
    assert updated["Threshold"] == 5.0 and updated["StateValue"] == "ALARM"

    cf.delete_stack(StackName="alarms")
    assert alarms(emulator) == {}
