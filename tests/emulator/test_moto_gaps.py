"""The gaps emulator/moto_gaps.py compensates still exist in moto. When one fails, moto
fixed that gap: drop the compensation (and this test) instead of keeping both."""

from __future__ import annotations

import inspect

import moto
from moto.cloudformation.models import CloudFormationBackend
from moto.core.common_models import CloudFormationModel

from emulator import moto_gaps

MODELED_TYPES = set(moto_gaps.MODELED_TYPES)
TEMPLATE = """
Parameters:
  Rate: {Type: Number, Default: 1}
  UseTopic: {Type: String, Default: "no"}
Conditions:
  WithTopic: {"Fn::Equals": [{Ref: UseTopic}, "yes"]}
Resources:
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      DelaySeconds: {Ref: Rate}
Outputs:
  QueueName: {Value: {"Fn::GetAtt": [Queue, QueueName]}}
"""


def test_moto_version_is_the_one_the_gaps_were_checked_against() -> None:
    assert moto.__version__.startswith("5.2."), "re-check every gap in moto_gaps against this moto"


def test_gap1_and_8_moto_has_no_apigatewayv2_or_alarm_cloudformation_models_of_its_own() -> None:
    theirs = {cls.cloudformation_type() for cls in CloudFormationModel.__subclasses__()
              if not cls.__module__.startswith("emulator.")}  # fmt: skip
    assert {"AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Alarm"} <= MODELED_TYPES
    assert not MODELED_TYPES & theirs


def _backend() -> CloudFormationBackend:
    return CloudFormationBackend("eu-west-1", "123456789012")


def test_gap2_and_3_execute_change_set_keeps_old_outputs_and_ignores_parameter_changes() -> None:
    backend = _backend()
    change_set_id, _ = backend.create_change_set("s", "c1", TEMPLATE, {}, "", "CREATE", tags={"t": "1"})
    moto_gaps._original_execute(backend, change_set_id)
    (stack,) = backend.stacks.values()
    assert stack.template_dict == {} and stack.outputs is None  # gap 2: template and outputs not rebuilt
    second, _ = backend.create_change_set("s", "c2", TEMPLATE, {"Rate": "5"}, "", "UPDATE", tags={"t": "2"})
    change_set = backend.describe_change_set(second)
    assert change_set is not None
    original_changes = stack.resource_map.build_change_set_actions(change_set.template_dict)
    assert original_changes["Modify"] == {}  # gap 3: a parameter-only change shows no change
    assert [c.logical_resource_id for c in moto_gaps._diff_with_parameters(change_set)] == ["Queue"]


def test_gap4_novalue_in_a_list_stays_null() -> None:
    backend = _backend()
    change_set_id, _ = backend.create_change_set("s", "c1", TEMPLATE, {}, "", "CREATE")
    moto_gaps._original_execute(backend, change_set_id)
    (stack,) = backend.stacks.values()
    no_value = [{"Fn::If": ["WithTopic", {"Key": "a"}, {"Ref": "AWS::NoValue"}]}]
    assert moto_gaps._original_clean_json(no_value, stack.resource_map) == [None]
    assert moto_gaps._clean_json_without_novalue(no_value, stack.resource_map) == []


def test_gap5_lambda_configuration_has_no_revision_id() -> None:
    # Read from moto's own code: when it starts returning a RevisionId, drop the compensation.
    assert "RevisionId" not in inspect.getsource(moto_gaps._original_get_configuration)


def test_gap6_cloudformation_state_machines_read_only_definition_string() -> None:
    from moto.stepfunctions.models import StateMachine

    create = inspect.getsource(StateMachine.__dict__["create_from_cloudformation_json"].__func__)
    if moto_gaps._installed:  # the compensation replaced it: read moto's original from the module
        create = inspect.getsource(inspect.getmodule(StateMachine))  # type: ignore[arg-type]
    assert 'properties.get("DefinitionString", "")' in create
    assert "DefinitionSubstitutions" not in create
    assert "stepfunctions_backends[account_id][region_name]" in create  # not the executing backend


def test_gap7_moto_adds_resources_in_template_order_ignoring_depends_on() -> None:
    source = inspect.getsource(moto_gaps._original_update)
    assert 'for logical_name in resource_names_by_action["Add"]' in source
    assert "DependsOn" not in source


def test_dependency_order_puts_depends_on_targets_first() -> None:
    resources = {"Stage": {"DependsOn": ["Account"]}, "Role": {}, "Account": {"DependsOn": "Role"}}
    assert list(moto_gaps.in_dependency_order(resources)) == ["Role", "Account", "Stage"]


def test_gap9_a_kms_key_with_cloudformation_tags_crashes_moto_and_is_handed_api_tags() -> None:
    import pytest
    from moto import mock_aws

    key = {"Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": []},
                          "Tags": [{"Key": "Application", "Value": "CareConnect"}]}}  # fmt: skip
    with mock_aws():
        with pytest.raises(KeyError, match="TagKey"):
            moto_gaps._original_key_create("AlarmTopicKey", key, "123456789012", "eu-west-1")
        created = moto_gaps._key_with_api_tags(None, "AlarmTopicKey", key, "123456789012", "eu-west-1")  # type: ignore[arg-type]
        assert created.arn.startswith("arn:aws:kms:eu-west-1:123456789012:key/")


def test_gap10_a_function_from_cloudformation_loses_architecture_key_tracing_and_logging_and_gets_them_back() -> None:
    import json

    import boto3
    from moto import mock_aws

    with mock_aws():
        role = boto3.client("iam", region_name="eu-west-1").create_role(
            RoleName="fn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
        )["Role"]["Arn"]
        key = "arn:aws:kms:eu-west-1:123456789012:key/00000000-0000-0000-0000-000000000000"
        properties = {"Code": {"ZipFile": "def handler(event, context): pass"}, "Handler": "index.handler",
                      "Runtime": "python3.12", "Role": role, "Architectures": ["arm64"], "KmsKeyArn": key,
                      "TracingConfig": {"Mode": "Active"}, "LoggingConfig": {"LogGroup": "/cc/connect"}}  # fmt: skip
        dropped = moto_gaps._original_function_create(
            "dropped", {"Properties": properties}, "123456789012", "eu-west-1"
        )
        assert (dropped.architectures, dropped.kms_key_arn, dropped.tracing_config["Mode"]) == (
            ["x86_64"], None, "PassThrough")  # fmt: skip
        assert "LoggingConfig" not in moto_gaps._original_get_configuration(dropped)
        kept = moto_gaps._function_created(None, "kept", {"Properties": properties}, "123456789012", "eu-west-1")  # type: ignore[arg-type]
        configuration = moto_gaps._configuration_with_revision(kept)
        assert (configuration["Architectures"], configuration["KMSKeyArn"], configuration["TracingConfig"]) == (
            ["arm64"], key, {"Mode": "Active"})  # fmt: skip
        assert configuration["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/cc/connect"}
        without = {k: v for k, v in properties.items() if k not in ("KmsKeyArn", "Architectures", "LoggingConfig")}
        updated = moto_gaps._function_updated(None, kept, "kept", {"Properties": without}, "123456789012", "eu-west-1")  # type: ignore[arg-type]
        assert (updated.architectures, updated.kms_key_arn) == (["x86_64"], None)  # removed: Lambda's defaults
        assert moto_gaps._configuration_with_revision(kept)["LoggingConfig"]["LogGroup"] == "/aws/lambda/kept"


def test_gap11_moto_cannot_update_a_log_group_so_a_modified_one_would_vanish() -> None:
    """moto's update sets a modified resource to what parse_and_update_resource returns: None for a
    type without an update handler, as moto's log group is (tests/rollout/test_rollout_e2e.py shows
    the stack then)."""
    assert hasattr(moto_gaps._original_log_group_update, "__isabstractmethod__")
