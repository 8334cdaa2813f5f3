"""CloudFormation's protection of a live stack, taught to the emulator (emulator/stack_protection.py):
termination protection, Replacement in change sets, stack policies enforced on execution."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.lambda_zips import client

TEMPLATE = json.dumps({
    "Parameters": {"Name": {"Type": "String"}, "Days": {"Type": "Number", "Default": "7"}},
    "Resources": {
        "Logs": {"Type": "AWS::Logs::LogGroup",
                 "Properties": {"LogGroupName": {"Fn::Sub": "/app/${Name}"}, "RetentionInDays": {"Ref": "Days"}}},
        "Topic": {"Type": "AWS::SNS::Topic"}}})  # fmt: skip
KEEP_LOGS = json.dumps({"Statement": [
    {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
    {"Effect": "Deny", "Action": ["Update:Replace", "Update:Delete"], "Principal": "*",
     "Resource": "LogicalResourceId/Logs"}]})  # fmt: skip


def stack(emulator: str, name: str = "guarded") -> Any:
    cf = client(emulator, "cloudformation")
    cf.create_stack(StackName=name, TemplateBody=TEMPLATE, Parameters=[{"ParameterKey": "Name", "ParameterValue": "a"}])
    return cf


def change(cf: Any, name: str, number: int, **values: str) -> dict[str, Any]:
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in ({"Name": "a"} | values).items()]
    cf.create_change_set(
        StackName=name, ChangeSetName=f"c{number}", ChangeSetType="UPDATE", TemplateBody=TEMPLATE, Parameters=parameters
    )
    return dict(cf.describe_change_set(StackName=name, ChangeSetName=f"c{number}"))


def test_a_protected_stack_is_not_deleted(emulator: str) -> None:
    cf = stack(emulator)
    assert cf.describe_stacks(StackName="guarded")["Stacks"][0]["EnableTerminationProtection"] is False
    cf.update_termination_protection(StackName="guarded", EnableTerminationProtection=True)
    assert cf.describe_stacks(StackName="guarded")["Stacks"][0]["EnableTerminationProtection"] is True
    with pytest.raises(ClientError) as refused:
        cf.delete_stack(StackName="guarded")
    assert refused.value.response["Error"]["Code"] == "ValidationError"
    assert refused.value.response["Error"]["Message"] == (
        "Stack [guarded] cannot be deleted while TerminationProtection is enabled"
    )
    assert cf.describe_stacks(StackName="guarded")["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    cf.update_termination_protection(StackName="guarded", EnableTerminationProtection=False)
    cf.delete_stack(StackName="guarded")
    assert all(
        s["StackName"] != "guarded" or s["StackStatus"] == "DELETE_COMPLETE" for s in cf.list_stacks()["StackSummaries"]
    )


def test_a_change_set_says_which_changes_replace_a_resource(emulator: str) -> None:
    cf = stack(emulator)
    renamed = {
        c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]
        for c in change(cf, "guarded", 1, Name="b")["Changes"]
    }
    assert renamed["Logs"]["Replacement"] == "True"  # LogGroupName is createOnly
    kept = {
        c["ResourceChange"]["LogicalResourceId"]: c["ResourceChange"]
        for c in change(cf, "guarded", 2, Days="30")["Changes"]
    }
    assert kept["Logs"]["Replacement"] == "False"  # RetentionInDays is updated in place


def test_a_stack_policy_refuses_a_replacement_and_the_update_rolls_back(emulator: str) -> None:
    cf = stack(emulator)
    cf.set_stack_policy(StackName="guarded", StackPolicyBody=KEEP_LOGS)
    renamed = change(cf, "guarded", 1, Name="b")
    cf.execute_change_set(StackName="guarded", ChangeSetName=renamed["ChangeSetId"])
    held = cf.describe_stacks(StackName="guarded")["Stacks"][0]
    assert held["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert {p["ParameterKey"]: p["ParameterValue"] for p in held["Parameters"]}["Name"] == "a"
    failed = [
        e
        for e in cf.describe_stack_events(StackName="guarded")["StackEvents"]
        if e["ResourceStatus"] == "UPDATE_FAILED"
    ]
    assert failed[0]["LogicalResourceId"] == "Logs"
    assert failed[0]["ResourceStatusReason"] == (
        "Action denied by stack policy: Statement [#2] does not allow [Update:Replace] for resource [LogicalResourceId/Logs]"
    )
    assert (
        client(emulator, "logs").describe_log_groups(logGroupNamePrefix="/app/")["logGroups"][0]["logGroupName"]
        == "/app/a"
    )
    # an update in place is allowed by the first statement
    kept = change(cf, "guarded", 2, Days="30")
    cf.execute_change_set(StackName="guarded", ChangeSetName=kept["ChangeSetId"])
    assert cf.describe_stacks(StackName="guarded")["Stacks"][0]["StackStatus"] == "UPDATE_COMPLETE"


def test_a_policy_without_an_allow_protects_every_resource(emulator: str) -> None:
    cf = stack(emulator)
    deny_only = {"Statement": [{"Effect": "Deny", "Action": "Update:Delete", "Principal": "*", "Resource": "*"}]}
    cf.set_stack_policy(StackName="guarded", StackPolicyBody=json.dumps(deny_only))
    kept = change(cf, "guarded", 1, Days="30")
    cf.execute_change_set(StackName="guarded", ChangeSetName=kept["ChangeSetId"])
    assert cf.describe_stacks(StackName="guarded")["Stacks"][0]["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"


def test_a_policy_naming_no_resource_of_the_stack_is_refused(emulator: str) -> None:
    cf = stack(emulator)
    wrong = {
        "Statement": [{"Effect": "Deny", "Action": "Update:*", "Principal": "*", "Resource": "LogicalResourceId/Nope"}]
    }
    with pytest.raises(ClientError, match=r"Unknown logical id 'LogicalResourceId/Nope'"):
        cf.set_stack_policy(StackName="guarded", StackPolicyBody=json.dumps(wrong))
    with pytest.raises(ClientError, match="Error validating stack policy"):
        cf.set_stack_policy(StackName="guarded", StackPolicyBody="{not json")
