"""DescribeStacks' LastUpdatedTime, taught to the emulator (emulator/stack_times.py)."""

from __future__ import annotations

import json

from tests.emulator.lambda_zips import client

TOPIC = {"Parameters": {"Name": {"Type": "String"}},
         "Resources": {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {"TopicName": {"Ref": "Name"}}}}}  # fmt: skip


def test_an_update_through_a_change_set_sets_last_updated_time(emulator: str) -> None:
    cf = client(emulator, "cloudformation")

    def change(kind: str, name: str) -> None:
        created = cf.create_change_set(StackName="timed", ChangeSetName=f"c-{name}", ChangeSetType=kind,
                                       TemplateBody=json.dumps(TOPIC),
                                       Parameters=[{"ParameterKey": "Name", "ParameterValue": name}])  # fmt: skip
        cf.execute_change_set(ChangeSetName=created["Id"], StackName="timed")

    change("CREATE", "first")
    (created,) = cf.describe_stacks(StackName="timed")["Stacks"]
    assert "LastUpdatedTime" not in created  # as AWS: only once updated
    change("UPDATE", "second")
    (updated,) = cf.describe_stacks(StackName="timed")["Stacks"]
    assert updated["LastUpdatedTime"] >= updated["CreationTime"]
    change("UPDATE", "third")
    (again,) = cf.describe_stacks(StackName="timed")["Stacks"]
    assert again["LastUpdatedTime"] > updated["LastUpdatedTime"] and again["StackStatus"] == "UPDATE_COMPLETE"
