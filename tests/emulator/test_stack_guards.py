"""CloudFormation's guards of a live stack, taught to the emulator (emulator/stack_guards.py)."""

from __future__ import annotations

import json
from typing import Any

from tests.emulator.lambda_zips import LAMBDA_TRUST, client, zip_of

BUCKET = "guards-code"


def function_stack(emulator: str, name: str, extra: dict[str, Any] | None = None) -> Any:
    """A stack holding one function (code from S3) with a variable and a memory size (and `extra`)."""
    s3, iam = client(emulator, "s3"), client(emulator, "iam")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket=BUCKET, Key="app.zip", Body=zip_of({"app.py": "def handler(e, c):\n    return 1\n"}))
    role = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=LAMBDA_TRUST)["Role"]["Arn"]
    body = {"Resources": {
        "Fn": {"Type": "AWS::Lambda::Function", "Properties": {
            "FunctionName": f"{name}-fn", "Runtime": "python3.12", "Handler": "app.handler", "Role": role,
            "MemorySize": 256, "Code": {"S3Bucket": BUCKET, "S3Key": "app.zip"},
            "Environment": {"Variables": {"MODE": "strict"}}}},
        "Topic": {"Type": "AWS::SNS::Topic"}, **(extra or {})}}  # fmt: skip
    cf = client(emulator, "cloudformation")
    created = cf.create_change_set(StackName=name, ChangeSetName="one", ChangeSetType="CREATE",
                                   TemplateBody=json.dumps(body))  # fmt: skip
    cf.execute_change_set(ChangeSetName=created["Id"], StackName=name)
    return cf


def drift(cf: Any, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    detection = cf.detect_stack_drift(StackName=name)["StackDriftDetectionId"]
    status = cf.describe_stack_drift_detection_status(StackDriftDetectionId=detection)
    drifts = cf.describe_stack_resource_drifts(StackName=name)["StackResourceDrifts"]
    return status, drifts


def test_drift_detection_finds_a_function_changed_behind_the_stack(emulator: str) -> None:
    cf = function_stack(emulator, "drifty")
    status, drifts = drift(cf, "drifty")
    assert (status["DetectionStatus"], status["StackDriftStatus"]) == ("DETECTION_COMPLETE", "IN_SYNC")
    assert {d["LogicalResourceId"]: d["StackResourceDriftStatus"] for d in drifts} == {
        "Fn": "IN_SYNC",
        "Topic": "NOT_CHECKED",
    }
    client(emulator, "lambda").update_function_configuration(
        FunctionName="drifty-fn", MemorySize=512, Environment={"Variables": {"MODE": "lax", "DEBUG": "1"}}
    )
    status, drifts = drift(cf, "drifty")
    assert (status["StackDriftStatus"], status["DriftedStackResourceCount"]) == ("DRIFTED", 1)
    (function,) = [d for d in drifts if d["LogicalResourceId"] == "Fn"]
    assert function["StackResourceDriftStatus"] == "MODIFIED"
    assert {(p["PropertyPath"], p["ExpectedValue"], p["ActualValue"]) for p in function["PropertyDifferences"]} == {
        ("/MemorySize", "256", "512"),
        ("/Environment/Variables/MODE", '"strict"', '"lax"'),
        ("/Environment/Variables/DEBUG", "null", '"1"'),
    }
    only = cf.describe_stack_resource_drifts(StackName="drifty", StackResourceDriftStatusFilters=["MODIFIED"])
    assert [d["LogicalResourceId"] for d in only["StackResourceDrifts"]] == ["Fn"]


def test_drift_detection_finds_an_alias_moved_behind_the_stack(emulator: str) -> None:
    """`update-alias` by hand moves traffic the stack does not know about: the alias drifts."""
    live = {"Version": {"Type": "AWS::Lambda::Version", "Properties": {"FunctionName": {"Ref": "Fn"}}},
            "Live": {"Type": "AWS::Lambda::Alias", "Properties": {
                "FunctionName": {"Ref": "Fn"}, "Name": "live", "FunctionVersion": {"Fn::GetAtt": ["Version", "Version"]}}}}  # fmt: skip
    cf = function_stack(emulator, "aliased", live)
    status, drifts = drift(cf, "aliased")
    assert status["StackDriftStatus"] == "IN_SYNC"
    assert {d["LogicalResourceId"]: d["StackResourceDriftStatus"] for d in drifts}["Live"] == "IN_SYNC"
    lambda_client = client(emulator, "lambda")
    lambda_client.update_function_configuration(FunctionName="aliased-fn", MemorySize=256, Description="hotfix")
    hotfix = lambda_client.publish_version(FunctionName="aliased-fn")["Version"]
    lambda_client.update_alias(FunctionName="aliased-fn", Name="live",
                               RoutingConfig={"AdditionalVersionWeights": {hotfix: 0.25}})  # fmt: skip
    _, drifts = drift(cf, "aliased")
    (alias,) = [d for d in drifts if d["LogicalResourceId"] == "Live"]
    assert alias["StackResourceDriftStatus"] == "MODIFIED"
    assert [(p["PropertyPath"], p["ExpectedValue"], p["ActualValue"]) for p in alias["PropertyDifferences"]] == [
        ("/RoutingConfig/AdditionalVersionWeights", "{}", json.dumps({hotfix: 0.25}))
    ]
    lambda_client.update_alias(FunctionName="aliased-fn", Name="live", FunctionVersion=hotfix, RoutingConfig={})
    _, drifts = drift(cf, "aliased")
    (alias,) = [d for d in drifts if d["LogicalResourceId"] == "Live"]
    assert [p["PropertyPath"] for p in alias["PropertyDifferences"]] == ["/FunctionVersion"]
    lambda_client.delete_alias(FunctionName="aliased-fn", Name="live")
    _, drifts = drift(cf, "aliased")
    assert {d["LogicalResourceId"]: d["StackResourceDriftStatus"] for d in drifts}["Live"] == "DELETED"


def test_drift_detection_finds_a_deleted_function(emulator: str) -> None:
    cf = function_stack(emulator, "gone")
    client(emulator, "lambda").delete_function(FunctionName="gone-fn")
    status, drifts = drift(cf, "gone")
    assert status["StackDriftStatus"] == "DRIFTED"
    assert {d["LogicalResourceId"]: d["StackResourceDriftStatus"] for d in drifts}["Fn"] == "DELETED"


def test_describe_stacks_shows_a_list_as_given_and_hides_a_no_echo_value(emulator: str) -> None:
    body = {"Parameters": {"Names": {"Type": "CommaDelimitedList"}, "Secret": {"Type": "String", "NoEcho": True}},
            "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}  # fmt: skip
    cf = client(emulator, "cloudformation")
    cf.create_stack(StackName="shown", TemplateBody=json.dumps(body), Parameters=[
        {"ParameterKey": "Names", "ParameterValue": "a,b"}, {"ParameterKey": "Secret", "ParameterValue": "pw-1"}])  # fmt: skip
    (stack,) = cf.describe_stacks(StackName="shown")["Stacks"]
    assert {p["ParameterKey"]: p["ParameterValue"] for p in stack["Parameters"]} == {"Names": "a,b", "Secret": "****"}
