"""Gap 8: the emulator creates a stack's `AWS::CloudWatch::Alarm`s (moto's CloudFormation skips
them), keeps their state across an update, deletes them with the stack, and evaluates them once a
minute on its clock as CloudWatch does, from the metrics it records (functions it runs, scheduled
rules it fires)."""

from __future__ import annotations

import asyncio
import datetime
import json
from typing import Any

import boto3

from emulator import clock, websocket_url
from tests.emulator.lambda_zips import deploy, invoke
from tests.emulator.test_websocket_apis import chat_api, session

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


# --- evaluation on the emulator's clock -----------------------------------------------------------


def put_alarm(emulator: str, name: str, missing: str | None, periods: int = 1, to_alarm: int = 1) -> None:
    extra = {"TreatMissingData": missing} if missing else {}
    boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator).put_metric_alarm(
        AlarmName=name,
        Namespace="Test",
        MetricName="Failures",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=periods,
        DatapointsToAlarm=to_alarm,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        **extra,
    )


def states(emulator: str) -> dict[str, str]:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator)
    return {a["AlarmName"]: a["StateValue"] for a in cloudwatch.describe_alarms()["MetricAlarms"]}


def failures(emulator: str, value: float) -> None:
    boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator).put_metric_data(
        Namespace="Test", MetricData=[{"MetricName": "Failures", "Value": value}]
    )


def test_with_no_data_each_missing_data_treatment_moves_a_new_alarm_as_cloudwatch_does(emulator: str) -> None:
    for treatment in ("breaching", "notBreaching", "ignore", "missing", None):
        put_alarm(emulator, f"no-data-{treatment}", treatment)
    assert set(states(emulator).values()) == {"INSUFFICIENT_DATA"}  # new, not evaluated yet
    clock.advance(60)
    assert states(emulator) == {
        "no-data-breaching": "ALARM", "no-data-notBreaching": "OK", "no-data-ignore": "INSUFFICIENT_DATA",
        "no-data-missing": "INSUFFICIENT_DATA", "no-data-None": "INSUFFICIENT_DATA",  # missing is the default
    }  # fmt: skip


def test_m_of_n_periods_decide_on_the_emulators_clock(emulator: str) -> None:
    put_alarm(emulator, "two-of-three", "missing", periods=3, to_alarm=2)
    clock.advance(60)
    failures(emulator, 1)
    clock.advance(60)
    assert states(emulator)["two-of-three"] == "INSUFFICIENT_DATA"  # 1 breaching of 1 real: not yet 2
    failures(emulator, 3)
    clock.advance(60)
    assert states(emulator)["two-of-three"] == "ALARM"  # 2 of the last 3 periods breached
    reason = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator).describe_alarms(
        AlarmNames=["two-of-three"]
    )["MetricAlarms"][0]["StateReason"]
    assert reason.startswith("Threshold Crossed: 2 of 2 datapoint(s)")
    for _ in range(3):
        failures(emulator, 0)
        clock.advance(60)
    assert states(emulator)["two-of-three"] == "OK"  # the last 3 periods are good


def test_a_functions_errors_recorded_by_the_emulator_raise_its_alarm(emulator: str) -> None:
    deploy(emulator, "fails", {"app.py": "def handler(event, context):\n    raise RuntimeError('no')\n"})
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator)
    cloudwatch.put_metric_alarm(
        AlarmName="fails-errors",
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
        Dimensions=[{"Name": "FunctionName", "Value": "fails"}],
        TreatMissingData="notBreaching",
    )
    clock.advance(60)
    assert states(emulator)["fails-errors"] == "OK"
    response, _ = invoke(emulator, "fails")
    assert response["FunctionError"] == "Unhandled"
    clock.advance(60)
    assert states(emulator)["fails-errors"] == "ALARM"
    clock.advance(300)
    # No invocation since: no data point in the latest period, and the most recent real one, still
    # in the evaluation range (N + 2 periods), decides, as CloudWatch documents.
    assert states(emulator)["fails-errors"] == "ALARM"
    clock.advance(600)
    assert states(emulator)["fails-errors"] == "OK"  # out of the range: missing, treated as not breaching


def schedule(emulator: str, function_arn: str, permitted: bool, expression: str = "rate(1 minute)") -> None:
    """A rule (every minute unless told) put a second after a minute boundary: it runs at the
    next boundaries its expression names."""
    clock.advance(61 - clock.now() % 60)
    events = boto3.client("events", region_name=REGION, endpoint_url=emulator)
    rule = events.put_rule(Name="every-minute", ScheduleExpression=expression)["RuleArn"]
    events.put_targets(Rule="every-minute", Targets=[{"Id": "f", "Arn": function_arn}])
    if permitted:
        boto3.client("lambda", region_name=REGION, endpoint_url=emulator).add_permission(
            FunctionName=function_arn,
            StatementId="events",
            Action="lambda:InvokeFunction",
            Principal="events.amazonaws.com",
            SourceArn=rule,
        )


def sums(emulator: str, namespace: str, metric: str, dimension: tuple[str, str], minutes: int) -> float:
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator)
    end = clock.utc() + datetime.timedelta(minutes=1)
    points = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName=metric,
        Dimensions=[{"Name": dimension[0], "Value": dimension[1]}],
        StartTime=end - datetime.timedelta(minutes=minutes),
        EndTime=end,
        Period=60 * minutes,
        Statistics=["Sum"],
    )["Datapoints"]
    return sum(p["Sum"] for p in points)


def test_a_schedule_without_permission_to_invoke_fails_each_time(emulator: str) -> None:
    arn = deploy(emulator, "scheduled", {"app.py": "def handler(event, context):\n    return 'ran'\n"})
    schedule(emulator, arn, permitted=False)
    clock.advance(240)
    assert sums(emulator, "AWS/Events", "FailedInvocations", ("RuleName", "every-minute"), 5) == 3
    assert sums(emulator, "AWS/Lambda", "Invocations", ("FunctionName", "scheduled"), 5) == 0


def test_a_cron_rule_runs_at_the_utc_minutes_it_names(emulator: str) -> None:
    arn = deploy(emulator, "scheduled", {"app.py": "def handler(event, context):\n    return 'ran'\n"})
    schedule(emulator, arn, permitted=True, expression="cron(0/5 * * * ? *)")
    start = clock.now()
    clock.advance(20 * 60)
    # The minutes 0, 5, 10... of each hour passed in those twenty minutes, and no other minute.
    named = sum(1 for m in range(1, 21) if (int(start // 60) + m) % 5 == 0)
    assert named == 4
    assert sums(emulator, "AWS/Events", "Invocations", ("RuleName", "every-minute"), 25) == named
    assert sums(emulator, "AWS/Lambda", "Invocations", ("FunctionName", "scheduled"), 25) == named


def test_a_failing_scheduled_run_is_retried_twice_then_dropped(emulator: str) -> None:
    arn = deploy(
        emulator,
        "scheduled",
        {
            "app.py": "def handler(event, context):\n    assert event['detail-type'] == 'Scheduled Event'\n    raise RuntimeError('no')\n"
        },
    )
    schedule(emulator, arn, permitted=True)
    boto3.client("events", region_name=REGION, endpoint_url=emulator).disable_rule(Name="every-minute")
    clock.advance(60)  # disabled: nothing runs
    assert sums(emulator, "AWS/Lambda", "Invocations", ("FunctionName", "scheduled"), 5) == 0
    boto3.client("events", region_name=REGION, endpoint_url=emulator).enable_rule(Name="every-minute")
    clock.advance(60)
    boto3.client("events", region_name=REGION, endpoint_url=emulator).disable_rule(Name="every-minute")
    clock.advance(60)  # the first retry a minute later
    assert sums(emulator, "AWS/Lambda", "AsyncEventsDropped", ("FunctionName", "scheduled"), 10) == 0
    clock.advance(120)  # the second two minutes after that; then the event is dropped
    assert sums(emulator, "AWS/Lambda", "Errors", ("FunctionName", "scheduled"), 10) == 3
    assert sums(emulator, "AWS/Lambda", "AsyncEventsDropped", ("FunctionName", "scheduled"), 10) == 1


def test_what_a_websocket_stage_serves_is_counted_as_api_gateway_publishes_it(emulator: str) -> None:
    api_id = chat_api(emulator)
    asyncio.run(session(websocket_url(api_id, "prod")))  # a $connect and two messages
    stage = [{"Name": "ApiId", "Value": api_id}, {"Name": "Stage", "Value": "prod"}]
    cloudwatch = boto3.client("cloudwatch", region_name=REGION, endpoint_url=emulator)
    end = clock.utc() + datetime.timedelta(minutes=1)

    def total(metric: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="AWS/ApiGateway",
            MetricName=metric,
            Dimensions=stage,
            Statistics=["Sum"],
            StartTime=end - datetime.timedelta(minutes=10),
            EndTime=end,
            Period=600,
        )["Datapoints"]
        return sum(p["Sum"] for p in points)

    counts = {m: total(m) for m in ("ConnectCount", "MessageCount", "IntegrationError", "ClientError")}
    assert counts == {"ConnectCount": 1, "MessageCount": 2, "IntegrationError": 0, "ClientError": 0}
