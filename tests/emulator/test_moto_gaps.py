"""What emulator/moto_gaps.py teaches moto, each shown through the emulator or the compensation
itself (each fails without its compensation)."""

from __future__ import annotations

import io
import json
import zipfile

import boto3
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


def test_gap1_and_8_the_emulator_registers_apigatewayv2_and_alarm_models() -> None:
    registered = {cls.cloudformation_type() for cls in CloudFormationModel.__subclasses__()}
    assert {"AWS::ApiGatewayV2::Api", "AWS::CloudWatch::Alarm"} <= MODELED_TYPES <= registered


def _backend() -> CloudFormationBackend:
    return CloudFormationBackend("eu-west-1", "123456789012")


def test_gap2_and_3_execute_change_set_keeps_old_outputs_and_ignores_parameter_changes() -> None:
    backend = _backend()
    change_set_id, _ = backend.create_change_set("s", "c1", TEMPLATE, {}, "", "CREATE", tags={"t": "1"})
    moto_gaps._original_execute(backend, change_set_id)
    second, _ = backend.create_change_set("s", "c2", TEMPLATE, {"Rate": "5"}, "", "UPDATE", tags={"t": "2"})
    change_set = backend.describe_change_set(second)
    assert change_set is not None
    assert [c.logical_resource_id for c in moto_gaps._diff_with_parameters(change_set)] == ["Queue"]


def test_gap4_novalue_in_a_list_stays_null() -> None:
    backend = _backend()
    change_set_id, _ = backend.create_change_set("s", "c1", TEMPLATE, {}, "", "CREATE")
    moto_gaps._original_execute(backend, change_set_id)
    (stack,) = backend.stacks.values()
    no_value = [{"Fn::If": ["WithTopic", {"Key": "a"}, {"Ref": "AWS::NoValue"}]}]
    assert moto_gaps._clean_json_without_novalue(no_value, stack.resource_map) == []


def test_gap5_a_function_from_cloudformation_has_a_revision_that_moves_with_its_configuration(emulator: str) -> None:
    """The endpoint step writes with the RevisionId it read: the emulator gives one, and a new one
    after every change, as Lambda does."""
    stack = _deploy(emulator, FUNCTION_TEMPLATE)
    lam = boto3.client("lambda", region_name="eu-west-1", endpoint_url=emulator)
    name = stack["f"]
    first = lam.get_function_configuration(FunctionName=name)["RevisionId"]
    assert lam.get_function_configuration(FunctionName=name)["RevisionId"] == first  # stable while unchanged
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": {"A": "1"}})
    assert lam.get_function_configuration(FunctionName=name)["RevisionId"] != first


def test_gap6_a_state_machine_from_cloudformation_runs_its_substituted_definition(emulator: str) -> None:
    """moto gave a CloudFormation state machine an empty definition; the rollout stack's must be the
    generated one with its substitutions filled."""
    stack = _deploy(emulator, MACHINE_TEMPLATE)
    sfn = boto3.client("stepfunctions", region_name="eu-west-1", endpoint_url=emulator)
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=stack["m"])["definition"])
    assert definition["States"]["Done"] == {"Type": "Pass", "Result": "value-from-substitution", "End": True}


FUNCTION_TEMPLATE = """
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: "sts:AssumeRole"}]}
  F:
    Type: AWS::Lambda::Function
    Properties:
      Runtime: python3.12
      Handler: x.handler
      Role: {"Fn::GetAtt": [Role, Arn]}
      Code: {S3Bucket: code, S3Key: x.zip}
Outputs:
  f: {Value: {Ref: F}}
"""
MACHINE_TEMPLATE = """
Resources:
  Role:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument: {Statement: [{Effect: Allow, Principal: {Service: states.amazonaws.com}, Action: "sts:AssumeRole"}]}
  M:
    Type: AWS::StepFunctions::StateMachine
    Properties:
      RoleArn: {"Fn::GetAtt": [Role, Arn]}
      DefinitionString: {"Fn::Sub": ['{"StartAt": "Done", "States": {"Done": {"Type": "Pass", "Result": "${V}", "End": true}}}', {V: value-from-substitution}]}
Outputs:
  m: {Value: {Ref: M}}
"""


def _deploy(emulator: str, template: str) -> dict[str, str]:
    s3 = boto3.client("s3", region_name="eu-west-1", endpoint_url=emulator)
    s3.create_bucket(Bucket="code", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.put_object(Bucket="code", Key="x.zip", Body=_empty_zip())
    cf = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=emulator)
    cf.create_stack(StackName="gap", TemplateBody=template, Capabilities=["CAPABILITY_IAM"])
    (stack,) = cf.describe_stacks(StackName="gap")["Stacks"]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def _empty_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("x.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def test_dependency_order_puts_depends_on_targets_first() -> None:
    resources = {"Stage": {"DependsOn": ["Account"]}, "Role": {}, "Account": {"DependsOn": "Role"}}
    assert list(moto_gaps.in_dependency_order(resources)) == ["Role", "Account", "Stage"]


def test_gap9_a_kms_key_with_cloudformation_tags_crashes_moto_and_is_handed_api_tags() -> None:
    from moto import mock_aws

    key = {"Properties": {"KeyPolicy": {"Version": "2012-10-17", "Statement": []},
                          "Tags": [{"Key": "Application", "Value": "CareConnect"}]}}  # fmt: skip
    with mock_aws():
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
        kept = moto_gaps._function_created(None, "kept", {"Properties": properties}, "123456789012", "eu-west-1")  # type: ignore[arg-type]
        configuration = moto_gaps._configuration_with_revision(kept)
        assert (configuration["Architectures"], configuration["KMSKeyArn"], configuration["TracingConfig"]) == (
            ["arm64"], key, {"Mode": "Active"})  # fmt: skip
        assert configuration["LoggingConfig"] == {"LogFormat": "Text", "LogGroup": "/cc/connect"}
        without = {k: v for k, v in properties.items() if k not in ("KmsKeyArn", "Architectures", "LoggingConfig")}
        updated = moto_gaps._function_updated(None, kept, "kept", {"Properties": without}, "123456789012", "eu-west-1")  # type: ignore[arg-type]
        assert (updated.architectures, updated.kms_key_arn) == (["x86_64"], None)  # removed: Lambda's defaults
        assert moto_gaps._configuration_with_revision(kept)["LoggingConfig"]["LogGroup"] == "/aws/lambda/kept"


LOG_GROUP_TEMPLATE = """
Parameters:
  Days: {Type: Number}
Resources:
  Logs:
    Type: AWS::Logs::LogGroup
    Properties: {LogGroupName: /cc/gap11, RetentionInDays: {Ref: Days}}
"""


def test_gap11_a_log_group_changed_by_a_stack_update_is_kept_with_its_new_retention(emulator: str) -> None:
    """moto has no update handler for log groups: a modified one vanished from the stack."""
    cf = boto3.client("cloudformation", region_name="eu-west-1", endpoint_url=emulator)
    logs = boto3.client("logs", region_name="eu-west-1", endpoint_url=emulator)
    parameters = [{"ParameterKey": "Days", "ParameterValue": "14"}]
    cf.create_stack(StackName="gap11", TemplateBody=LOG_GROUP_TEMPLATE, Parameters=parameters)
    parameters[0]["ParameterValue"] = "90"
    cf.update_stack(StackName="gap11", TemplateBody=LOG_GROUP_TEMPLATE, Parameters=parameters)
    (group,) = logs.describe_log_groups(logGroupNamePrefix="/cc/gap11")["logGroups"]
    assert group["retentionInDays"] == 90
    (resource,) = cf.describe_stack_resources(StackName="gap11")["StackResources"]
    assert resource["PhysicalResourceId"] == "/cc/gap11"
