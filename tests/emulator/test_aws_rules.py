"""The emulator refuses what AWS refuses (emulator/aws_rules.py), with AWS's error codes."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from emulator import advance_clock
from emulator.aws_rules import (
    ACCOUNT_ROLE_REFUSED,
    LOGGING_NEEDS_ROLE,
    TEMPLATE_BODY_LIMIT,
    TEMPLATE_URL_LIMIT,
    iam_propagation,
)

REGION = "eu-west-1"
BUCKET = "rules-test-bucket"
TOPIC = {"Topic": {"Type": "AWS::SNS::Topic"}}
TRUST = {"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "apigateway.amazonaws.com"}, "Action": "sts:AssumeRole"}]}  # fmt: skip


def client(emulator: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=emulator)


def template(resources: dict[str, Any], **sections: Any) -> str:
    return json.dumps({"AWSTemplateFormatVersion": "2010-09-09", **sections, "Resources": resources})


def create(emulator: str, name: str, body: str, change_set: str = "first", **extra: Any) -> dict[str, Any]:
    cf = client(emulator, "cloudformation")
    return cf.create_change_set(StackName=name, ChangeSetName=change_set, ChangeSetType="CREATE",
                                TemplateBody=body, Capabilities=["CAPABILITY_NAMED_IAM"], **extra)  # fmt: skip


def refusal(call: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


def test_a_template_body_over_51200_bytes_is_refused(emulator: str) -> None:
    padded = template(TOPIC, Description="x" * 1000, Metadata={"pad": "y" * TEMPLATE_BODY_LIMIT})
    code, message = refusal(lambda: create(emulator, "big", padded))
    assert code == "ValidationError" and "less than or equal to 51200" in message
    assert create(emulator, "small", template(TOPIC))["Id"]


def test_a_template_url_over_1_mb_is_refused(emulator: str) -> None:
    s3 = client(emulator, "s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    huge = template(TOPIC, Metadata={"pad": "y" * TEMPLATE_URL_LIMIT})
    s3.put_object(Bucket=BUCKET, Key="huge.json", Body=huge.encode())
    s3.put_object(
        Bucket=BUCKET,
        Key="fine.json",
        Body=template(TOPIC, Metadata={"pad": "y" * 60_000}).encode(),
    )
    cf = client(emulator, "cloudformation")

    def by_url(key: str) -> Any:
        return cf.create_change_set(StackName=key.split(".")[0], ChangeSetName="first", ChangeSetType="CREATE",
                                    TemplateURL=f"https://{BUCKET}.s3.{REGION}.amazonaws.com/{key}")  # fmt: skip

    assert refusal(lambda: by_url("huge.json")) == (
        "ValidationError",
        "Template may not exceed 1048576 bytes in size.",
    )
    assert by_url("fine.json")["Id"]  # over the TemplateBody limit, fine from S3


@pytest.mark.parametrize("function", ["Fn::Join", "Fn::Sub", "Fn::If"])
def test_rules_refuse_functions_rules_do_not_support(emulator: str, function: str) -> None:
    arguments = {
        "Fn::Join": ["", {"Ref": "Subnets"}],
        "Fn::Sub": "${Env}",
        "Fn::If": ["C", "a", "b"],
    }
    rules = {
        "Check": {"Assertions": [{"Assert": {"Fn::Not": [{"Fn::Equals": [{function: arguments[function]}, ""]}]}}]}
    }
    parameters = {
        "Subnets": {"Type": "CommaDelimitedList", "Default": ""},
        "Env": {"Type": "String", "Default": "x"},
    }
    code, message = refusal(lambda: create(emulator, "rules", template(TOPIC, Parameters=parameters, Rules=rules)))
    assert code == "ValidationError" and function in message and "Check" in message


def test_rules_accept_each_member_equals(emulator: str) -> None:
    rules = {"Vpc": {"RuleCondition": {"Fn::Not": [{"Fn::EachMemberEquals": [{"Ref": "Subnets"}, ""]}]},
                     "Assertions": [{"Assert": {"Fn::Contains": [["a"], "a"]}}]}}  # fmt: skip
    parameters = {"Subnets": {"Type": "CommaDelimitedList", "Default": ""}}
    assert create(emulator, "rules-ok", template(TOPIC, Parameters=parameters, Rules=rules))["Id"]


def test_a_change_set_name_is_used_once_per_stack_and_execute_keeps_only_the_executed_one(
    emulator: str,
) -> None:
    cf = client(emulator, "cloudformation")
    first = create(emulator, "names", template(TOPIC))
    cf.execute_change_set(ChangeSetName=first["Id"], StackName="names")

    def update(name: str, topics: int) -> dict[str, Any]:
        resources = {f"Topic{i}": {"Type": "AWS::SNS::Topic"} for i in range(topics)}
        return cf.create_change_set(StackName="names", ChangeSetName=name, ChangeSetType="UPDATE",
                                    TemplateBody=template(resources))  # fmt: skip

    code, message = refusal(lambda: update("first", 2))
    assert code == "AlreadyExistsException" and "first" in message
    update("second", 2)
    third = update("third", 3)
    cf.execute_change_set(ChangeSetName=third["Id"], StackName="names")
    remaining = [summary["ChangeSetName"] for summary in cf.list_change_sets(StackName="names")["Summaries"]]
    assert remaining == ["third"]
    assert refusal(lambda: update("third", 4))[0] == "AlreadyExistsException"
    assert create(emulator, "other-stack", template(TOPIC), change_set="third")["Id"]  # names are per stack


def function_spec(variables: dict[str, str]) -> dict[str, Any]:
    return {"FunctionName": "env-test", "Runtime": "python3.12", "Handler": "x.handler", "Role":
            "arn:aws:iam::123456789012:role/r", "Code": {"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
            "Environment": {"Variables": variables}}  # fmt: skip


def test_a_lambda_environment_over_4_kb_is_refused(emulator: str) -> None:
    lam = client(emulator, "lambda")
    iam = client(emulator, "iam")
    iam.create_role(RoleName="r", AssumeRolePolicyDocument=json.dumps(TRUST))
    too_big = {"A": "x" * 4090}  # {"A":"..."} measures 4,098 bytes
    code, message = refusal(lambda: lam.create_function(**function_spec(too_big)))
    assert code == "InvalidParameterValueException" and "exceeded the 4KB limit" in message
    lam.create_function(**function_spec({"A": "x" * 4000}))
    code, _ = refusal(lambda: lam.update_function_configuration(FunctionName="env-test",
                                                                Environment={"Variables": too_big}))  # fmt: skip
    assert code == "InvalidParameterValueException"


STAGE_TEMPLATE = {
    "Api": {"Type": "AWS::ApiGatewayV2::Api",
            "Properties": {"Name": "a", "ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"}},
    "Logs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "/aws/apigateway/a"}},
    "Stage": {"Type": "AWS::ApiGatewayV2::Stage",
              "Properties": {"ApiId": {"Ref": "Api"}, "StageName": "prod", "DefaultRouteSettings": {"LoggingLevel": "OFF"},
                             "AccessLogSettings": {"DestinationArn": {"Fn::GetAtt": ["Logs", "Arn"]},
                                                   "Format": "$context.requestId"}}},
}  # fmt: skip


def run_to_end(emulator: str, name: str, resources: dict[str, Any]) -> dict[str, Any]:
    cf = client(emulator, "cloudformation")
    created = create(emulator, name, template(resources))
    cf.execute_change_set(ChangeSetName=created["Id"], StackName=name)
    return cf.describe_stacks(StackName=name)["Stacks"][0]


def test_access_logging_without_the_account_role_fails_the_stage_and_rolls_back(
    emulator: str,
) -> None:
    apigw = client(emulator, "apigatewayv2")
    api = apigw.create_api(Name="direct", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")
    code, message = refusal(lambda: apigw.create_stage(ApiId=api["ApiId"], StageName="prod", AccessLogSettings={
        "DestinationArn": "arn:aws:logs:eu-west-1:123456789012:log-group:x", "Format": "$context.requestId"}))  # fmt: skip
    assert (code, message) == ("BadRequestException", LOGGING_NEEDS_ROLE)
    stack = run_to_end(emulator, "no-role", STAGE_TEMPLATE)
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert stack["StackStatusReason"].startswith("The following resource(s) failed to create: [Stage]")
    events = client(emulator, "cloudformation").describe_stack_events(StackName="no-role")["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"] == "CREATE_FAILED"]
    assert [(e["LogicalResourceId"], e["ResourceStatusReason"]) for e in failed] == [("Stage", LOGGING_NEEDS_ROLE)]
    assert client(emulator, "logs").describe_log_groups()["logGroups"] == []  # rolled back


def account_resources(trust: dict[str, Any]) -> dict[str, Any]:
    return {
        **STAGE_TEMPLATE,
        "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}},
        "Account": {"Type": "AWS::ApiGateway::Account", "Properties": {"CloudWatchRoleArn": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Stage": {**STAGE_TEMPLATE["Stage"], "DependsOn": ["Account"]},
    }  # fmt: skip


def test_the_account_resource_sets_the_role_the_stage_needs(emulator: str) -> None:
    stack = run_to_end(emulator, "with-role", account_resources(TRUST))
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    role = client(emulator, "apigateway").get_account()["cloudwatchRoleArn"]
    assert role.startswith("arn:aws:iam::123456789012:role/with-role-Role-")


def test_the_account_resource_refuses_a_role_api_gateway_cannot_assume(emulator: str) -> None:
    lambda_trust = yaml.safe_load(json.dumps(TRUST).replace("apigateway", "lambda"))
    stack = run_to_end(emulator, "bad-role", account_resources(lambda_trust))
    assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
    assert client(emulator, "apigateway").get_account().get("cloudwatchRoleArn") is None


def test_removing_a_retained_resource_keeps_it(emulator: str) -> None:
    cf, iam = client(emulator, "cloudformation"), client(emulator, "iam")
    role = {"Type": "AWS::IAM::Role", "DeletionPolicy": "Retain",
            "Properties": {"RoleName": "kept", "AssumeRolePolicyDocument": TRUST}}  # fmt: skip
    run_to_end(emulator, "retain", {**TOPIC, "Role": role})
    update = cf.create_change_set(StackName="retain", ChangeSetName="drop", ChangeSetType="UPDATE",
                                  TemplateBody=template(TOPIC), Capabilities=["CAPABILITY_NAMED_IAM"])  # fmt: skip
    cf.execute_change_set(ChangeSetName=update["Id"], StackName="retain")
    assert iam.get_role(RoleName="kept")["Role"]["RoleName"] == "kept"
    cf.delete_stack(StackName="retain")
    assert iam.get_role(RoleName="kept")["Role"]["RoleName"] == "kept"


def test_an_update_that_changes_nothing_is_refused_as_aws_does(emulator: str) -> None:
    cf = client(emulator, "cloudformation")
    body = template(TOPIC, Parameters={"Name": {"Type": "String", "Default": "a"}})
    cf.create_stack(
        StackName="same",
        TemplateBody=body,
        Parameters=[{"ParameterKey": "Name", "ParameterValue": "b"}],
    )
    code, message = refusal(lambda: cf.update_stack(StackName="same", TemplateBody=body, Parameters=[
        {"ParameterKey": "Name", "ParameterValue": "b"}]))  # fmt: skip
    assert (code, message) == ("ValidationError", "No updates are to be performed.")
    code, _ = refusal(lambda: cf.update_stack(StackName="same", TemplateBody=body, Parameters=[
        {"ParameterKey": "Name", "UsePreviousValue": True}]))  # fmt: skip
    assert code == "ValidationError"
    cf.update_stack(
        StackName="same",
        TemplateBody=body,
        Parameters=[{"ParameterKey": "Name", "ParameterValue": "c"}],
    )


def service_role(emulator: str, name: str, service: str = "cloudformation") -> str:
    trust = yaml.safe_load(json.dumps(TRUST).replace("apigateway", service))
    return str(client(emulator, "iam").create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
               ["Role"]["Arn"])  # fmt: skip


def stack_role(emulator: str, name: str) -> str | None:
    return client(emulator, "cloudformation").describe_stacks(StackName=name)["Stacks"][0].get("RoleARN")


def test_a_stack_keeps_its_service_role_and_refuses_one_that_cannot_be_assumed(emulator: str) -> None:
    """The engine-switch failure of issue 20: a stack bound to a role keeps using it, and once the
    role is gone every operation that names no other role is refused."""
    cf = client(emulator, "cloudformation")
    deployer = service_role(emulator, "deployer")
    created = create(emulator, "bound", template(TOPIC), RoleARN=deployer)
    cf.execute_change_set(ChangeSetName=created["Id"], StackName="bound")
    assert stack_role(emulator, "bound") == deployer
    update = cf.create_change_set(StackName="bound", ChangeSetName="second", ChangeSetType="UPDATE",
                                  TemplateBody=template({**TOPIC, "Other": TOPIC["Topic"]}))  # fmt: skip
    cf.execute_change_set(ChangeSetName=update["Id"], StackName="bound")
    assert stack_role(emulator, "bound") == deployer  # an operation naming no role keeps the stack's

    not_for_cloudformation = service_role(emulator, "lambda-only", service="lambda")
    code, message = refusal(lambda: cf.update_stack(StackName="bound", TemplateBody=template(TOPIC),
                                                    RoleARN=not_for_cloudformation))  # fmt: skip
    assert (code, message) == ("ValidationError", f"Role {not_for_cloudformation} is invalid or cannot be assumed")

    client(emulator, "iam").delete_role(RoleName="deployer")
    gone = ("ValidationError", f"Role {deployer} is invalid or cannot be assumed")
    assert refusal(lambda: cf.update_stack(StackName="bound", TemplateBody=template(TOPIC))) == gone
    assert refusal(lambda: cf.create_change_set(StackName="bound", ChangeSetName="third", ChangeSetType="UPDATE",
                                                TemplateBody=template(TOPIC))) == gone  # fmt: skip
    assert refusal(lambda: cf.delete_stack(StackName="bound")) == gone
    assert cf.describe_stacks(StackName="bound")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"

    replacement = service_role(emulator, "replacement")
    cf.update_stack(StackName="bound", TemplateBody=template(TOPIC), RoleARN=replacement)
    assert stack_role(emulator, "bound") == replacement
    cf.delete_stack(StackName="bound")  # runs as the replacement


def test_a_change_set_runs_as_the_role_it_was_created_with(emulator: str) -> None:
    cf = client(emulator, "cloudformation")
    first = service_role(emulator, "first")
    cf.execute_change_set(ChangeSetName=create(emulator, "roles", template(TOPIC))["Id"], StackName="roles")
    assert stack_role(emulator, "roles") is None
    pending = cf.create_change_set(StackName="roles", ChangeSetName="as-first", ChangeSetType="UPDATE",
                                   TemplateBody=template({**TOPIC, "Other": TOPIC["Topic"]}), RoleARN=first)  # fmt: skip
    client(emulator, "iam").delete_role(RoleName="first")
    code, message = refusal(lambda: cf.execute_change_set(ChangeSetName=pending["Id"], StackName="roles"))
    assert (code, message) == ("ValidationError", f"Role {first} is invalid or cannot be assumed")
    assert stack_role(emulator, "roles") is None


def test_the_emulator_finds_its_models_even_when_moto_listed_its_own_first() -> None:
    """moto caches its model list the first time it parses a template; a test (or tool) that made it
    do so before the emulator started used to leave the Account and Stage resources unmodelled."""
    import subprocess
    import sys

    code = (
        "from moto.cloudformation import parsing\n"
        "assert 'AWS::ApiGateway::Account' not in parsing.get_model_map()\n"
        "from emulator import running_emulator\n"
        "with running_emulator():\n"
        "    models = parsing.get_model_map()\n"
        "    missing = {'AWS::ApiGateway::Account', 'AWS::ApiGatewayV2::Stage', 'AWS::CloudWatch::Alarm'} - set(models)\n"
        "    assert not missing, missing\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_role_is_not_usable_until_iam_has_propagated_it(emulator: str) -> None:
    cf = client(emulator, "cloudformation")
    with iam_propagation(60):
        fresh = service_role(emulator, "fresh")
        young = ("ValidationError", f"Role {fresh} is invalid or cannot be assumed")
        assert refusal(lambda: create(emulator, "young", template(TOPIC), RoleARN=fresh)) == young
        stack = run_to_end(emulator, "young-account", account_resources(TRUST))  # its role made a moment ago
        assert stack["StackStatus"] == "ROLLBACK_COMPLETE"
        events = cf.describe_stack_events(StackName="young-account")["StackEvents"]
        assert [e["ResourceStatusReason"] for e in events if e["LogicalResourceId"] == "Account" and
                e["ResourceStatus"] == "CREATE_FAILED"] == [ACCOUNT_ROLE_REFUSED]  # fmt: skip
        advance_clock(60)
        created = create(emulator, "young", template(TOPIC), RoleARN=fresh)  # propagated now
        cf.execute_change_set(ChangeSetName=created["Id"], StackName="young")
        assert stack_role(emulator, "young") == fresh
