"""A run's repeated reads (rollout.aws.RepeatedReads): answered once until the run changes
something, then every read reaches AWS again, as the waits that follow a change need."""

from __future__ import annotations

import json

import boto3

from rollout.aws import Aws

REGION = "eu-west-1"
TEMPLATE = json.dumps(
    {
        "Parameters": {"Note": {"Type": "String", "Default": "first"}},
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {"Note": {"Value": {"Ref": "Note"}}},
    }
)


def _note(cf: object) -> str:
    stack = cf.describe_stacks(StackName="reads")["Stacks"][0]  # type: ignore[attr-defined]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}["Note"]


def test_reads_are_repeated_from_the_first_answer_until_the_run_changes_something(emulator: str) -> None:
    outside = boto3.client("cloudformation", region_name=REGION, endpoint_url=emulator)
    outside.create_stack(StackName="reads", TemplateBody=TEMPLATE)
    aws = Aws(REGION, endpoint_url=emulator)
    cf, s3 = aws.client("cloudformation"), aws.client("s3")
    s3.create_bucket(Bucket="reads-bucket", CreateBucketConfiguration={"LocationConstraint": REGION})
    with aws.repeated_reads():
        first = cf.describe_stacks(StackName="reads")
        first["Stacks"].clear()  # what a caller does with its answer is not what the next caller gets
        s3.put_object(Bucket="reads-bucket", Key="lock.json", Body=b"{}")  # the run's own objects: no change
        assert _note(cf) == "first"
        assert aws.counter.calls["cloudformation:DescribeStacks"] == 1

        cf.update_stack(
            StackName="reads", TemplateBody=TEMPLATE, Parameters=[{"ParameterKey": "Note", "ParameterValue": "second"}]
        )
        assert _note(cf) == "second"  # read from AWS after the change
        assert _note(cf) == "second"
        assert aws.counter.calls["cloudformation:DescribeStacks"] == 3

    _note(cf), _note(cf)  # outside a run nothing is kept
    assert aws.counter.calls["cloudformation:DescribeStacks"] == 5


def test_a_new_run_reads_again_what_the_last_one_kept(emulator: str) -> None:
    outside = boto3.client("cloudformation", region_name=REGION, endpoint_url=emulator)
    outside.create_stack(StackName="reads", TemplateBody=TEMPLATE)
    aws = Aws(REGION, endpoint_url=emulator)
    cf = aws.client("cloudformation")
    with aws.repeated_reads():
        assert _note(cf) == "first"
    outside.update_stack(
        StackName="reads", TemplateBody=TEMPLATE, Parameters=[{"ParameterKey": "Note", "ParameterValue": "console"}]
    )
    with aws.repeated_reads():
        assert _note(cf) == "console"
