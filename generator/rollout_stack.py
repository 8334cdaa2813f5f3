"""The `rollout` template: the artifacts bucket, the CloudFormation service role the change sets
run under, and the Step Functions state machine that runs the rollout inside AWS (its
definition generated from the rollout plan, see generator/statemachine.py), with its own role
and log group. Roles are least privilege: the two target stacks, their change sets, the
handler functions and the resources those stacks own, by name prefix.
"""

from __future__ import annotations

from awacs import apigateway, cloudformation, events, iam, logs, s3, xray
from awacs import awslambda as lambda_
from awacs.aws import Allow, Bool, Condition, Deny, PolicyDocument, Principal, Statement
from troposphere import Equals, GetAtt, If, Ref, Sub, Template
from troposphere.iam import Policy, Role
from troposphere.s3 import AbortIncompleteMultipartUpload as AbortUploads
from troposphere.s3 import (
    Bucket,
    BucketEncryption,
    BucketPolicy,
    LifecycleConfiguration,
    LifecycleRule,
    NoncurrentVersionExpiration,
    PublicAccessBlockConfiguration,
    ServerSideEncryptionByDefault,
    ServerSideEncryptionRule,
    VersioningConfiguration,
)
from troposphere.stepfunctions import (
    CloudWatchLogsLogGroup,
    LogDestination,
    LoggingConfiguration,
    StateMachine,
    TracingConfiguration,
)

from generator import asl_checks, compute, websocket
from generator.common import (
    add_log_parameters,
    add_name_prefix,
    assume_role_policy,
    checkov_skips,
    finish,
    log_group,
    new_template,
    tags,
)
from generator.parameters import ParameterSet
from generator.statemachine import definition

ARN = "arn:${AWS::Partition}"
HERE = "${AWS::Region}:${AWS::AccountId}"
STACK_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,127}$"
VENDED_LOGS_REASON = (
    "CloudWatch Logs log delivery and X-Ray APIs take no resource ARN; AWS documents '*'."
)


def _parameters(params: ParameterSet) -> None:
    add_name_prefix(
        params, "Prefix of the rolled-out resources' names (the environment's NamePrefix)."
    )
    for name, default, label in (("ComputeStackName", "cc-websocket-compute", "Compute stack name"),
                                 ("WebSocketStackName", "cc-websocket-api", "WebSocket stack name")):  # fmt: skip
        params.add(
            "Target stacks", name, label,
            Type="String", Default=default, AllowedPattern=STACK_NAME_PATTERN,
            Description=f"{label} the state machine may change (and nothing else).",
            ConstraintDescription="a CloudFormation stack name",
        )  # fmt: skip
    params.add(
        "Artifacts", "ArtifactRetentionDays", "Old artifact retention (days)",
        Type="Number", Default=90, MinValue=1, MaxValue=3650,
        Description="Days a replaced (noncurrent) artifact version is kept before deletion.",
    )  # fmt: skip
    params.add(
        "Logs", "TracingEnabled", "X-Ray tracing",
        Type="String", Default="false", AllowedValues=["false", "true"],
        Description="Trace state machine executions with X-Ray.",
    )  # fmt: skip
    add_log_parameters(params, "Logs", "State machine log")


def _bucket(template: Template) -> Bucket:
    bucket = template.add_resource(
        Bucket(
            "ArtifactsBucket",
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            BucketEncryption=BucketEncryption(ServerSideEncryptionConfiguration=[ServerSideEncryptionRule(
                ServerSideEncryptionByDefault=ServerSideEncryptionByDefault(SSEAlgorithm="aws:kms"),
                BucketKeyEnabled=True)]),
            VersioningConfiguration=VersioningConfiguration(Status="Enabled"),
            PublicAccessBlockConfiguration=PublicAccessBlockConfiguration(
                BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True),
            LifecycleConfiguration=LifecycleConfiguration(Rules=[LifecycleRule(
                Id="expire-replaced-artifacts", Status="Enabled",
                NoncurrentVersionExpiration=NoncurrentVersionExpiration(NoncurrentDays=Ref("ArtifactRetentionDays")),
                AbortIncompleteMultipartUpload=AbortUploads(DaysAfterInitiation=7))]),
            Tags=tags("rollout"),
            Metadata=checkov_skips(("CKV_AWS_18", "Holds build artifacts only; CloudTrail records who read or "
                                                  "wrote them, server access logs would add nothing.")),
        )
    )  # fmt: skip
    template.add_resource(
        BucketPolicy(
            "ArtifactsBucketPolicy",
            Bucket=Ref(bucket),
            PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=[Statement(
                Sid="TlsOnly", Effect=Deny, Principal=Principal("*"), Action=[s3.Action("*")],
                Resource=[GetAtt(bucket, "Arn"), Sub("${ArtifactsBucket.Arn}/*")],
                Condition=Condition(Bool("aws:SecureTransport", False)))]),
        )
    )  # fmt: skip
    return bucket


def _allow(actions: list[object], resources: list[object]) -> Statement:
    return Statement(Effect=Allow, Action=actions, Resource=resources)


def _service_role(logical_id: str, service: str, policy_name: str, statements: list[Statement],
                  description: str) -> Role:  # fmt: skip
    """A role only `service` may assume, with one inline policy."""
    return Role(
        logical_id,
        Description=description,
        AssumeRolePolicyDocument=assume_role_policy(service),
        Policies=[Policy(PolicyName=policy_name,
                         PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=statements))],
        Tags=tags("rollout"),
    )  # fmt: skip


def _cloudformation_role(template: Template) -> Role:
    """What CloudFormation needs to create, update and delete the two stacks' resources."""
    functions = Sub(f"{ARN}:lambda:{HERE}:function:${{NamePrefix}}-websocket-*")
    roles = [Sub(f"{ARN}:iam::${{AWS::AccountId}}:role/${{NamePrefix}}-websocket-*"),
             Sub(f"{ARN}:iam::${{AWS::AccountId}}:role/${{WebSocketStackName}}-*")]  # fmt: skip
    log_groups = [Sub(f"{ARN}:logs:{HERE}:log-group:/aws/lambda/${{NamePrefix}}-websocket-*"),
                  Sub(f"{ARN}:logs:{HERE}:log-group:/aws/apigateway/${{NamePrefix}}-websocket-api:*")]  # fmt: skip
    statements = [
        _allow([lambda_.CreateFunction, lambda_.DeleteFunction, lambda_.GetFunction, lambda_.GetFunctionConfiguration,
                lambda_.UpdateFunctionCode, lambda_.UpdateFunctionConfiguration, lambda_.AddPermission,
                lambda_.RemovePermission, lambda_.GetPolicy, lambda_.TagResource, lambda_.UntagResource,
                lambda_.ListTags], [functions]),
        _allow([iam.CreateRole, iam.DeleteRole, iam.GetRole, iam.PassRole, iam.PutRolePolicy, iam.DeleteRolePolicy,
                iam.GetRolePolicy, iam.AttachRolePolicy, iam.DetachRolePolicy, iam.TagRole, iam.UntagRole,
                iam.UpdateAssumeRolePolicy], roles),
        _allow([logs.CreateLogGroup, logs.DeleteLogGroup, logs.PutRetentionPolicy, logs.DeleteRetentionPolicy,
                logs.TagResource, logs.UntagResource, logs.AssociateKmsKey, logs.DisassociateKmsKey,
                logs.ListTagsForResource], log_groups),
        _allow([apigateway.GET, apigateway.POST, apigateway.PATCH, apigateway.PUT, apigateway.DELETE],
               [Sub(f"{ARN}:apigateway:${{AWS::Region}}::/apis"), Sub(f"{ARN}:apigateway:${{AWS::Region}}::/apis/*"),
                Sub(f"{ARN}:apigateway:${{AWS::Region}}::/account"), Sub(f"{ARN}:apigateway:${{AWS::Region}}::/tags/*")]),
        _allow([events.PutRule, events.DeleteRule, events.DescribeRule, events.PutTargets, events.RemoveTargets,
                events.TagResource, events.UntagResource],
               [Sub(f"{ARN}:events:{HERE}:rule/${{ComputeStackName}}-*")]),
        _allow([s3.GetObject, s3.GetObjectVersion], [Sub("${ArtifactsBucket.Arn}/handlers/*")]),
    ]  # fmt: skip
    return template.add_resource(_service_role(
        "CloudFormationRole", "cloudformation.amazonaws.com", "websocket-stacks", statements,
        "CloudFormation service role for the CareConnect WebSocket stacks' change sets"))  # fmt: skip


def _state_machine_role(template: Template, cloudformation_role: Role) -> Role:
    stacks = [
        Sub(f"{ARN}:cloudformation:{HERE}:stack/${{{name}}}/*")
        for name in ("ComputeStackName", "WebSocketStackName")
    ]
    statements = [
        _allow([cloudformation.DescribeStacks, cloudformation.CreateChangeSet, cloudformation.DescribeChangeSet,
                cloudformation.ExecuteChangeSet, cloudformation.DeleteChangeSet, cloudformation.DeleteStack],
               [*stacks, Sub(f"{ARN}:cloudformation:{HERE}:changeSet/rollout-*/*")]),
        _allow([iam.PassRole], [GetAtt(cloudformation_role, "Arn")]),
        _allow([lambda_.GetFunctionConfiguration, lambda_.UpdateFunctionConfiguration],
               [Sub(f"{ARN}:lambda:{HERE}:function:${{NamePrefix}}-websocket-*")]),
        _allow([logs.CreateLogDelivery, logs.GetLogDelivery, logs.UpdateLogDelivery, logs.DeleteLogDelivery,
                logs.ListLogDeliveries, logs.PutResourcePolicy, logs.DescribeResourcePolicies, logs.DescribeLogGroups,
                xray.PutTraceSegments, xray.PutTelemetryRecords, xray.GetSamplingRules, xray.GetSamplingTargets], ["*"]),
    ]  # fmt: skip
    role = _service_role("StateMachineRole", "states.amazonaws.com", "rollout", statements,
                         "Role of the CareConnect WebSocket rollout state machine")  # fmt: skip
    role.Metadata = checkov_skips(
        ("CKV_AWS_111", VENDED_LOGS_REASON), ("CKV_AWS_356", VENDED_LOGS_REASON)
    )
    return template.add_resource(role)


def checked_definition() -> dict[str, object]:
    """The generated definition, refused if the static checks (generator/asl_checks.py) fail."""
    machine = definition(template_parameters())
    found = asl_checks.problems(machine)
    if found:
        raise ValueError("the generated state machine is unsound: " + "; ".join(found))
    return machine


def template_parameters() -> dict[str, list[str]]:
    return {
        "compute": list(compute.build().parameters),
        "websocket": list(websocket.build().parameters),
    }


def build() -> Template:
    template, params = new_template(
        "CareConnect WebSocket rollout inside AWS: artifacts bucket, CloudFormation service role "
        "and the Step Functions state machine that runs compute -> websocket -> endpoint."
    )
    _parameters(params)
    template.add_condition("Tracing", Equals(Ref("TracingEnabled"), "true"))
    bucket = _bucket(template)
    cloudformation_role = _cloudformation_role(template)
    machine_role = _state_machine_role(template, cloudformation_role)
    logs_group = template.add_resource(
        log_group(
            "StateMachineLogGroup",
            Sub("/aws/vendedlogs/states/${NamePrefix}-websocket-rollout"),
            "rollout",
        )
    )
    machine = template.add_resource(
        StateMachine(
            "RolloutStateMachine",
            StateMachineName=Sub("${NamePrefix}-websocket-rollout"),
            StateMachineType="STANDARD",
            RoleArn=GetAtt(machine_role, "Arn"),
            Definition=checked_definition(),
            DefinitionSubstitutions={"CloudFormationRoleArn": GetAtt(cloudformation_role, "Arn")},
            # Execution data holds templates and parameters: errors only, without the data.
            LoggingConfiguration=LoggingConfiguration(
                Level="ERROR", IncludeExecutionData=False,
                Destinations=[LogDestination(CloudWatchLogsLogGroup=CloudWatchLogsLogGroup(
                    LogGroupArn=GetAtt(logs_group, "Arn")))]),
            TracingConfiguration=TracingConfiguration(Enabled=If("Tracing", True, False)),
            Tags=tags("rollout"),
        )
    )  # fmt: skip
    outputs = {
        "ArtifactsBucketName": ("Bucket for handler zips and templates", Ref(bucket)),
        "StateMachineArn": ("The rollout state machine", Ref(machine)),
        "CloudFormationRoleArn": (
            "Service role the change sets run under",
            GetAtt(cloudformation_role, "Arn"),
        ),
    }
    return finish(template, params, outputs)
