"""CloudWatch Logs refuses a KMS key that does not exist or is disabled (emulator/log_keys.py), and
a stack update naming one fails its log group and rolls back, as on AWS."""

from __future__ import annotations

import json
from typing import Any

from tests.emulator.test_aws_rules import client, create, refusal

MISSING_KEY = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"


def test_a_missing_or_disabled_key_is_refused_and_an_enabled_one_taken(emulator: str) -> None:
    logs, kms = client(emulator, "logs"), client(emulator, "kms")
    code, message = refusal(lambda: logs.create_log_group(logGroupName="missing", kmsKeyId=MISSING_KEY))
    assert (code, message) == (
        "InvalidParameterException",
        f"The specified KMS key does not exist or is not allowed to be used with Arn '{MISSING_KEY}'",
    )
    disabled = kms.create_key()["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    assert refusal(lambda: logs.create_log_group(logGroupName="disabled", kmsKeyId=disabled["Arn"]))[0] == (
        "InvalidParameterException"
    )
    enabled = kms.create_key()["KeyMetadata"]["Arn"]
    logs.create_log_group(logGroupName="enabled", kmsKeyId=enabled)
    assert [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]] == ["enabled"]


def _group(key: str | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"LogGroupName": "keyed", "RetentionInDays": 7}
    if key:
        properties["KmsKeyId"] = key
    return {"Group": {"Type": "AWS::Logs::LogGroup", "Properties": properties}}


def test_a_stack_update_naming_a_missing_key_rolls_back(emulator: str) -> None:
    cf, logs = client(emulator, "cloudformation"), client(emulator, "logs")
    first = json.dumps({"Resources": _group(None)})
    cf.execute_change_set(ChangeSetName=create(emulator, "logged", first)["Id"], StackName="logged")
    update = cf.create_change_set(StackName="logged", ChangeSetName="keyed", ChangeSetType="UPDATE",
                                  TemplateBody=json.dumps({"Resources": _group(MISSING_KEY)}))  # fmt: skip
    cf.execute_change_set(ChangeSetName=update["Id"], StackName="logged")
    stack = cf.describe_stacks(StackName="logged")["Stacks"][0]
    assert stack["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE"
    assert stack["StackStatusReason"].startswith("The following resource(s) failed to update: [Group]")
    failed = [
        e for e in cf.describe_stack_events(StackName="logged")["StackEvents"] if e["ResourceStatus"] == "UPDATE_FAILED"
    ]
    assert [e["LogicalResourceId"] for e in failed] == ["Group"]
    assert "kmsKeyId" not in logs.describe_log_groups()["logGroups"][0]
    assert json.loads(json.dumps(cf.get_template(StackName="logged")["TemplateBody"])) == json.loads(first)
