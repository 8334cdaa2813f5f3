"""Versions and aliases as CloudFormation and Lambda keep them (emulator/lambda_versions.py): a
version runs the code and configuration of the moment it was published, `NAME:live` runs the
alias's version, and an alias's weights choose the version per invocation."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from emulator import clock, lambda_versions
from tests.emulator.lambda_zips import LAMBDA_TRUST, REGION, client, invoke, zip_of

BUCKET = "versions-code"
STACK = "versions"
CODE = """
import os
def handler(event, context):
    return {"code": "%s", "greeting": os.environ.get("GREETING"), "version": context.function_version}
"""
TEMPLATE = {
    "Parameters": {
        "Key": {"Type": "String"},
        "Greeting": {"Type": "String"},
        "CodeSha256": {"Type": "String"},
        "Digest": {"Type": "String"},
    },
    "Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": json.loads(LAMBDA_TRUST)}},
        "Function": {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "FunctionName": "versioned",
                "Runtime": "python3.14",
                "Handler": "app.handler",
                "Role": {"Fn::GetAtt": ["Role", "Arn"]},
                "Code": {"S3Bucket": BUCKET, "S3Key": {"Ref": "Key"}},
                "Environment": {"Variables": {"GREETING": {"Ref": "Greeting"}}},
            },
        },
        "Version": {
            "Type": "AWS::Lambda::Version",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "FunctionName": {"Ref": "Function"},
                "CodeSha256": {"Ref": "CodeSha256"},
                "Description": {"Fn::Sub": "release ${Digest}"},
            },
        },
        "Alias": {
            "Type": "AWS::Lambda::Alias",
            "Properties": {
                "FunctionName": {"Ref": "Function"},
                "FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]},
                "Name": "live",
            },
        },
    },
    "Outputs": {
        "VersionArn": {"Value": {"Ref": "Version"}},
        "VersionNumber": {"Value": {"Fn::GetAtt": ["Version", "Version"]}},
        "AliasArn": {"Value": {"Ref": "Alias"}},
    },
}


def _upload(emulator: str, label: str) -> tuple[str, str]:
    """The key and Lambda's CodeSha256 of a zip whose handler answers `label`."""
    body = zip_of({"app.py": CODE % label})
    key = f"{label}.zip"
    client(emulator, "s3").put_object(Bucket=BUCKET, Key=key, Body=body)
    return key, base64.b64encode(hashlib.sha256(body).digest()).decode()


def _change(emulator: str, values: dict[str, str], update: bool, **extra: Any) -> dict[str, Any]:
    """The stack after a change set with these parameters ran (as the rollout runs one)."""
    cf = client(emulator, "cloudformation")
    name = f"c{time.monotonic_ns()}"
    cf.create_change_set(
        StackName=STACK,
        ChangeSetName=name,
        ChangeSetType="UPDATE" if update else "CREATE",
        TemplateBody=json.dumps(TEMPLATE),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
        Capabilities=["CAPABILITY_IAM"],
        **extra,
    )
    cf.execute_change_set(StackName=STACK, ChangeSetName=name)
    for _ in range(100):
        stack = cf.describe_stacks(StackName=STACK)["Stacks"][0]
        if not stack["StackStatus"].endswith("IN_PROGRESS"):
            break
        time.sleep(0.1)
    return dict(stack)


def _deploy(emulator: str, label: str, greeting: str, update: bool) -> dict[str, str]:
    key, sha = _upload(emulator, label)
    values = {
        "Key": key,
        "Greeting": greeting,
        "CodeSha256": sha,
        "Digest": hashlib.sha256(greeting.encode()).hexdigest(),
    }
    stack = _change(emulator, values, update)
    assert stack["StackStatus"] in ("CREATE_COMPLETE", "UPDATE_COMPLETE"), stack.get("StackStatusReason")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


@pytest.fixture
def two_releases(emulator: str) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    client(emulator, "s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    first = _deploy(emulator, "one", "hello", update=False)
    second = _deploy(emulator, "two", "bonjour", update=True)
    yield first, second


def _run(emulator: str, name: str) -> Any:
    response, answer = invoke(emulator, name)
    assert "FunctionError" not in response, answer
    return answer


def test_each_release_publishes_a_version_the_live_alias_follows_and_the_old_one_stays(
    emulator: str, two_releases: tuple[dict[str, str], dict[str, str]]
) -> None:
    first, second = two_releases
    assert first["VersionNumber"] != second["VersionNumber"]
    assert first["VersionArn"].endswith(f":function:versioned:{first['VersionNumber']}")
    assert second["AliasArn"].endswith(":function:versioned:live")
    alias = client(emulator, "lambda").get_alias(FunctionName="versioned", Name="live")
    assert alias["FunctionVersion"] == second["VersionNumber"]
    listed = client(emulator, "lambda").list_versions_by_function(FunctionName="versioned")["Versions"]
    assert {first["VersionNumber"], second["VersionNumber"]} <= {v["Version"] for v in listed}  # retained
    assert _run(emulator, "versioned:live") == {
        "code": "two",
        "greeting": "bonjour",
        "version": second["VersionNumber"],
    }
    assert _run(emulator, second["AliasArn"])["code"] == "two"


def test_an_old_version_runs_its_own_code_and_configuration(
    emulator: str, two_releases: tuple[dict[str, str], dict[str, str]]
) -> None:
    first, _ = two_releases
    # Published while $LATEST held "one"/"hello": $LATEST has changed since, the version has not.
    assert _run(emulator, f"versioned:{first['VersionNumber']}") == {
        "code": "one",
        "greeting": "hello",
        "version": first["VersionNumber"],
    }
    config = client(emulator, "lambda").get_function_configuration(
        FunctionName="versioned", Qualifier=first["VersionNumber"]
    )
    assert config["Environment"]["Variables"] == {"GREETING": "hello"}


def test_a_version_whose_code_sha256_is_not_the_codes_is_refused(emulator: str) -> None:
    client(emulator, "s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    key, _ = _upload(emulator, "one")
    _, other = _upload(emulator, "other")
    stack = _change(emulator, {"Key": key, "Greeting": "hi", "CodeSha256": other, "Digest": "0"}, update=False)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    events = client(emulator, "cloudformation").describe_stack_events(StackName=STACK)["StackEvents"]
    (failed,) = [e for e in events if e.get("ResourceStatus") == "CREATE_FAILED"]
    assert failed["LogicalResourceId"] == "Version" and "CodeSha256" in failed["ResourceStatusReason"]


def _weighted(emulator: str, first: str, second: str, weight: float) -> None:
    client(emulator, "lambda").update_alias(
        FunctionName="versioned",
        Name="live",
        FunctionVersion=first,
        RoutingConfig={"AdditionalVersionWeights": {second: weight}},
    )


def test_an_alias_weights_choose_the_version_per_invocation(
    emulator: str, two_releases: tuple[dict[str, str], dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = (r["VersionNumber"] for r in two_releases)
    _weighted(emulator, first, second, 0.25)
    seen: list[list[tuple[str, float]]] = []

    def last(weights: list[tuple[str, float]]) -> str:
        seen.append(weights)
        return weights[-1][0]

    monkeypatch.setattr(lambda_versions, "chooser", last)
    assert _run(emulator, "versioned:live")["code"] == "two"
    assert seen == [[(first, 0.75), (second, 0.25)]]
    monkeypatch.setattr(lambda_versions, "chooser", lambda weights: weights[0][0])
    assert _run(emulator, "versioned:live")["code"] == "one"
    # Lambda's metrics by function, by alias, and by the version an alias invocation ran (what a
    # canary's alarm on the new version watches); CloudWatch answers each dimension set exactly.
    by = {"FunctionName": "versioned"}
    live = {**by, "Resource": "versioned:live"}
    assert _invocations(emulator, by) == 2 and _invocations(emulator, live) == 2
    assert _invocations(emulator, {**live, "ExecutedVersion": second}) == 1
    assert _invocations(emulator, {**live, "ExecutedVersion": first}) == 1


def _invocations(emulator: str, dimensions: dict[str, str]) -> float:
    now = clock.utc()
    points = client(emulator, "cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Invocations", Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
        StartTime=now - datetime.timedelta(hours=1), EndTime=now + datetime.timedelta(hours=1), Period=60,
        Statistics=["Sum"],
    )["Datapoints"]  # fmt: skip
    return sum(p["Sum"] for p in points)


def test_with_lambdas_own_choice_both_versions_serve(
    emulator: str, two_releases: tuple[dict[str, str], dict[str, str]]
) -> None:
    first, second = (r["VersionNumber"] for r in two_releases)
    _weighted(emulator, first, second, 0.5)
    codes = {_run(emulator, "versioned:live")["code"] for _ in range(30)}
    assert codes == {"one", "two"}  # each invocation chosen anew (all alike: 2 in 2**30)


def test_an_update_rolled_back_returns_to_the_version_it_replaced(emulator: str) -> None:
    client(emulator, "s3").create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    first = _deploy(emulator, "one", "hello", update=False)
    cloudwatch = client(emulator, "cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="errors", Namespace="AWS/Lambda", MetricName="Errors", Statistic="Sum",
                                Period=60, EvaluationPeriods=1, Threshold=1, ComparisonOperator="GreaterThanThreshold")  # fmt: skip
    cloudwatch.set_alarm_state(AlarmName="errors", StateValue="ALARM", StateReason="failing")
    arn = cloudwatch.describe_alarms(AlarmNames=["errors"])["MetricAlarms"][0]["AlarmArn"]
    key, sha = _upload(emulator, "two")
    values = {"Key": key, "Greeting": "bonjour", "CodeSha256": sha, "Digest": "2"}
    triggers = {"RollbackTriggers": [{"Arn": arn, "Type": "AWS::CloudWatch::Alarm"}]}
    stack = _change(emulator, values, update=True, RollbackConfiguration=triggers)
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    assert (
        client(emulator, "lambda").get_alias(FunctionName="versioned", Name="live")["FunctionVersion"]
        == first["VersionNumber"]
    )
    assert outputs.get("VersionNumber", first["VersionNumber"]) == first["VersionNumber"]
