"""The alarms, their topic and the dashboard (generator/monitoring.py)."""

from __future__ import annotations

import json
import re
from typing import Any

from generator.intrinsics import Evaluator
from generator.model import ALARM_PREFIX, HANDLER_FUNCTIONS

PSEUDO = {"AWS::Region": "eu-west-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
CODE = {"CodeS3Bucket": "artifacts", "CodeS3Key": "handlers/handlers.zip"}


def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in template["Resources"].items() if v["Type"] == "AWS::CloudWatch::Alarm"}


def test_every_alarm_is_named_for_the_bake_step_and_notifies_both_ways(templates: dict[str, Any]) -> None:
    for stem in ("compute", "websocket"):
        given = {"AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops"} | (CODE if stem == "compute" else {})
        evaluator = Evaluator(templates[stem], given, pseudo=PSEUDO)
        for logical, alarm in alarms(templates[stem]).items():
            name = evaluator.eval(alarm["AlarmName"])
            assert name.startswith(ALARM_PREFIX.replace("${NamePrefix}", "cc")), (stem, logical)
            assert evaluator.eval(alarm["AlarmActions"]) == ["arn:aws:sns:eu-west-1:123456789012:ops"], logical
            assert alarm["OKActions"] == alarm["AlarmActions"]
            assert len(alarm["AlarmDescription"]) > 40 and "First:" in alarm["AlarmDescription"], logical


def test_the_stage_and_every_function_are_watched(templates: dict[str, Any]) -> None:
    websocket = {a["AlarmName"]["Fn::Sub"].removeprefix(ALARM_PREFIX) for a in alarms(templates["websocket"]).values()}
    assert websocket == {"api-integration-errors", "api-execution-errors", "api-client-error-rate", "api-latency-p99"}
    compute = {a["AlarmName"]["Fn::Sub"].removeprefix(ALARM_PREFIX) for a in alarms(templates["compute"]).values()}
    # The migrate function is the rollout's own step: it answers its failures to the rollout, and
    # alarms on it would only fire during a release, in the bake that follows.
    watched = [f for f in HANDLER_FUNCTIONS if f.suffix != "migrate"]
    expected = {
        f"{f.suffix}-{kind}" for f in watched for kind in ("errors", "throttles", "duration-p99", "version-errors")
    }
    assert compute == expected | {"cleanup-schedule-failed", "cleanup-dropped"}


def test_each_version_alarm_watches_the_new_version_through_the_live_alias(templates: dict[str, Any]) -> None:
    compute = templates["compute"]
    for function in (f for f in HANDLER_FUNCTIONS if f.suffix != "migrate"):
        alarm = compute["Resources"][f"{function.logical}VersionErrorsAlarm"]["Properties"]
        dimensions = {d["Name"]: d["Value"] for d in alarm["Dimensions"]}
        assert dimensions == {
            "FunctionName": {"Ref": f"{function.logical}Function"},
            "Resource": {"Fn::Sub": ["${Name}:live", {"Name": {"Ref": f"{function.logical}Function"}}]},
            "ExecutedVersion": {"Fn::GetAtt": [f"{function.logical}Version", "Version"]},
        }
        assert (alarm["MetricName"], alarm["Statistic"], alarm["TreatMissingData"]) == ("Errors", "Sum", "notBreaching")


def test_thresholds_and_periods_are_parameters_with_defaults(templates: dict[str, Any]) -> None:
    for stem in ("compute", "websocket"):
        parameters = templates[stem]["Parameters"]
        for logical, alarm in alarms(templates[stem]).items():
            if logical in ("CleanupScheduleFailedAlarm", "CleanupDroppedAlarm"):
                assert alarm["Threshold"] == 1, logical  # one dropped or undelivered run is one too many
            else:
                assert set(alarm["Threshold"]) == {"Ref"}, logical
                assert "Default" in parameters[alarm["Threshold"]["Ref"]], logical
            periods = [alarm.get("Period")] + [
                m["MetricStat"]["Period"] for m in alarm.get("Metrics", []) if "MetricStat" in m
            ]
            assert {json.dumps(p) for p in periods if p is not None} == {'{"Ref": "AlarmPeriodSeconds"}'}, logical


def test_a_new_stack_starts_with_every_alarm_ok(templates: dict[str, Any]) -> None:
    """On a new stack no metric has data yet (no traffic, no cleanup run): an alarm that treats
    missing data as breaching is in ALARM within its first period, and prod's bake fails on it."""
    treat = {k: a["TreatMissingData"] for stem in ("compute", "websocket") for k, a in alarms(templates[stem]).items()}
    assert {k for k, v in treat.items() if v != "notBreaching"} == set()


def test_the_scheduled_cleanup_is_watched_where_an_async_run_fails(templates: dict[str, Any]) -> None:
    """EventBridge invokes the cleanup asynchronously: undelivered events and events Lambda drops
    after its retries each raise an alarm on the rule and the function the template creates."""
    found = {a["Namespace"] + " " + a["MetricName"]: a["Dimensions"] for a in alarms(templates["compute"]).values()
             if "MetricName" in a}  # fmt: skip
    assert found["AWS/Events FailedInvocations"] == [{"Name": "RuleName", "Value": {"Ref": "CleanupScheduleRule"}}]
    assert found["AWS/Lambda AsyncEventsDropped"] == [{"Name": "FunctionName", "Value": {"Ref": "CleanupFunction"}}]


def test_rates_and_percentiles_are_metric_math_cloudwatch_accepts(templates: dict[str, Any]) -> None:
    math = {k: a for stem in ("compute", "websocket") for k, a in alarms(templates[stem]).items() if "Metrics" in a}
    assert {"ApiClientErrorRateAlarm", "ApiLatencyAlarm", "ConnectDurationAlarm", "CleanupDurationAlarm"} <= set(math)
    for logical, alarm in math.items():
        assert not {"MetricName", "Statistic", "ExtendedStatistic", "Period", "Namespace"} & set(alarm), logical
        returned = [m for m in alarm["Metrics"] if m.get("ReturnData")]
        assert len(returned) == 1 and "Expression" in returned[0], logical
        ids = {m["Id"] for m in alarm["Metrics"]}
        expression = json.dumps(returned[0]["Expression"])
        assert {i for i in ids if i != returned[0]["Id"]} <= set(re.findall(r"[a-z]+", expression)), logical
    duration = math["CleanupDurationAlarm"]["Metrics"][-1]["Expression"]
    assert duration == {"Fn::Sub": "100 * duration / (${CleanupTimeout} * 1000)"}
    assert math["ApiLatencyAlarm"]["Metrics"][-1]["Expression"] == {
        "Fn::Sub": "100 * latency / ${IntegrationTimeoutMillis}"
    }


def test_the_created_topic_is_encrypted_with_a_key_cloudwatch_may_use(templates: dict[str, Any]) -> None:
    compute = templates["compute"]
    resources = compute["Resources"]
    topic, key = resources["AlarmTopic"], resources["AlarmTopicKey"]
    assert topic["Condition"] == key["Condition"] == "CreateAlarmTopic"
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": ["AlarmTopicKey", "Arn"]}
    (cloudwatch,) = [s for s in key["Properties"]["KeyPolicy"]["Statement"] if s["Sid"] == "CloudWatchPublishes"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    created = Evaluator(compute, {"AlarmEmail": "ops@example.org"} | CODE, pseudo=PSEUDO)
    assert created.condition("CreateAlarmTopic")
    assert created.eval(topic["Properties"]["Subscription"]) == [{"Endpoint": "ops@example.org", "Protocol": "email"}]
    given = Evaluator(compute, {"AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:ops"} | CODE, pseudo=PSEUDO)
    assert not given.condition("CreateAlarmTopic")
    assert given.eval(compute["Outputs"]["AlarmTopicArn"]["Value"]) == "arn:aws:sns:eu-west-1:123456789012:ops"


def test_the_dashboard_shows_the_stage_and_the_functions_on_one_page(templates: dict[str, Any]) -> None:
    websocket = templates["websocket"]
    dashboard = websocket["Resources"]["Dashboard"]["Properties"]
    evaluator = Evaluator(websocket, {"NamePrefix": "staging"}, pseudo=PSEUDO,
                          physical_ids={"Api": "a1b2c3", "Stage": "prod"})  # fmt: skip
    assert evaluator.eval(dashboard["DashboardName"]) == "staging-websocket"
    body = json.loads(evaluator.eval(dashboard["DashboardBody"]))
    titles = [w["properties"]["title"] for w in body["widgets"]]
    for needed in ("Connections", "Messages", "Errors", "latency", "invocations", "errors", "duration", "concurrency"):
        assert any(needed in title for title in titles), needed
    text = json.dumps(body)
    assert '"a1b2c3"' in text and '"prod"' in text and "eu-west-1" in text and "staging-websocket-" in text
