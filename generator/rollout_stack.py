"""The `rollout` template: the artifacts bucket, the CloudFormation service role the change sets
run under, and the Step Functions state machine that runs the rollout inside AWS (its
definition generated from the rollout plan, see generator/statemachine.py), with its own role
and log group. Roles are least privilege: the two target stacks, their change sets, the
handler functions and the resources those stacks own, by name prefix.
"""

from __future__ import annotations

import json

from awacs import awslambda as lambda_
from awacs import iam, logs, s3, xray
from awacs.aws import (
    Action,
    Allow,
    ArnEquals,
    Bool,
    Condition,
    Deny,
    Null,
    PolicyDocument,
    Principal,
    Statement,
    StringEquals,
    StringNotEquals,
)
from troposphere import Equals, GetAtt, If, Join, Not, Ref, Sub, Template
from troposphere.awslambda import Code, Environment, Function, LoggingConfig, TracingConfig
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

from generator import account_role, asl_checks, compute
from generator.common import (
    KMS_KEY_ARN_PATTERN,
    add_log_parameters,
    add_name_prefix,
    assume_role_policy,
    checkov_skips,
    finish,
    log_group,
    new_template,
    tags,
)
from generator.model import ALARM_PREFIX, APPLICATION_TAG, LAMBDA_RUNTIME
from generator.names import Names
from generator.parameters import ParameterSet
from generator.statemachine import RUNNER_TIMEOUT_SECONDS, definition
from rollout.plan import declared_calls
from rollout.steps import Where

NAMES = Names()  # in Fn::Sub texts: ${NamePrefix}
ARN = "arn:${AWS::Partition}"
HERE = "${AWS::Region}:${AWS::AccountId}"
STACK_NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9-]{0,127}$"
CONSUMER_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:function:[A-Za-z0-9_-]{1,64}$"
CONSUMER_ROLE_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$"
VENDED_LOGS_REASON = "CloudWatch Logs log delivery and X-Ray APIs take no resource ARN; AWS documents '*'."


def _parameters(params: ParameterSet) -> None:
    add_name_prefix(params, "Prefix of the rolled-out resources' names (the environment's NamePrefix).")
    for name, default, label in (
        ("ComputeStackName", "cc-websocket-compute", "Compute stack name"),
        ("WebSocketStackName", "cc-websocket-api", "WebSocket stack name"),
    ):
        params.add(
            "Target stacks",
            name,
            label,
            Type="String",
            Default=default,
            AllowedPattern=STACK_NAME_PATTERN,
            Description=f"{label} the state machine may change (and nothing else).",
            ConstraintDescription="a CloudFormation stack name",
        )
    params.add(
        "Artifacts",
        "ArtifactRetentionDays",
        "Old artifact retention (days)",
        Type="Number",
        Default=90,
        MinValue=1,
        MaxValue=3650,
        Description="Days a replaced (noncurrent) artifact version is kept before deletion.",
    )
    params.add(
        "Target stacks",
        "EnvironmentKmsKeyArn",
        "Functions' environment KMS key ARN",
        Type="String",
        Default="",
        AllowedPattern=KMS_KEY_ARN_PATTERN,
        Description="The compute stack's EnvironmentKmsKeyArn, if any: CloudFormation and the state "
        "machine then need the key to write and read the functions' environment.",
        ConstraintDescription="empty, or a KMS key ARN",
    )
    for name, label, pattern, what in (
        ("EndpointConsumerArns", "Endpoint consumers' function ARNs", CONSUMER_ARN_PATTERN, "Lambda function ARNs"),
        ("EndpointConsumerRoleArns", "Endpoint consumers' role ARNs", CONSUMER_ROLE_ARN_PATTERN, "IAM role ARNs"),
    ):  # fmt: skip
        params.add(
            "Target stacks",
            name,
            label,
            Type="CommaDelimitedList",
            Default="",
            AllowedPattern=pattern,
            Description=f"The environment's endpoint_consumers ({what}): the state machine may read and update "
            "exactly these functions' configuration, CloudFormation may attach the stage's management-API "
            "policy to exactly these roles. The rollout fills both.",
            ConstraintDescription=f"{what}, comma separated",
        )
    for name, label, description in (
        ("RunnerCodeBucket", "Runner code bucket", "Bucket holding the rollout runner's zip (the environment's artifacts bucket)."),
        ("RunnerCodeKey", "Runner code key", "S3 key of the rollout runner's zip (content-hashed; the rollout uploads it)."),
    ):  # fmt: skip
        params.add("Artifacts", name, label, Type="String", MinLength=1, Description=description)
    add_log_parameters(params, "Logs", "State machine and runner log")


def _bucket(template: Template) -> Bucket:
    p = template.parameters
    bucket = template.add_resource(
        Bucket(
            "ArtifactsBucket",
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            BucketEncryption=BucketEncryption(
                ServerSideEncryptionConfiguration=[
                    ServerSideEncryptionRule(
                        ServerSideEncryptionByDefault=ServerSideEncryptionByDefault(SSEAlgorithm="aws:kms"),
                        BucketKeyEnabled=True,
                    )
                ]
            ),
            VersioningConfiguration=VersioningConfiguration(Status="Enabled"),
            PublicAccessBlockConfiguration=PublicAccessBlockConfiguration(
                BlockPublicAcls=True, BlockPublicPolicy=True, IgnorePublicAcls=True, RestrictPublicBuckets=True
            ),
            LifecycleConfiguration=LifecycleConfiguration(
                Rules=[
                    LifecycleRule(
                        Id="expire-replaced-artifacts",
                        Status="Enabled",
                        NoncurrentVersionExpiration=NoncurrentVersionExpiration(
                            NoncurrentDays=Ref(p["ArtifactRetentionDays"])
                        ),
                        AbortIncompleteMultipartUpload=AbortUploads(DaysAfterInitiation=7),
                    )
                ]
            ),
            Tags=tags("rollout"),
            Metadata=checkov_skips(
                (
                    "CKV_AWS_18",
                    "Holds build artifacts only; CloudTrail records who read or "
                    "wrote them, server access logs would add nothing.",
                )
            ),
        )
    )
    template.add_resource(
        BucketPolicy(
            "ArtifactsBucketPolicy",
            # Fn::Join, not the Fn::Sub cfn-lint prefers (I1022): the only object-ARN form CT.S3.PR.8 reads.
            Metadata={"cfn-lint": {"config": {"ignore_checks": ["I1022"]}}},
            Bucket=Ref(bucket),
            PolicyDocument=PolicyDocument(
                Version="2012-10-17",
                Statement=[
                    Statement(
                        Sid="TlsOnly",
                        Effect=Deny,
                        Principal=Principal("*"),
                        Action=[s3.Action("*")],
                        # The form Control Tower's CT.S3.PR.8 recognises: the bucket and its objects.
                        Resource=[GetAtt(bucket, "Arn"), Join("", [GetAtt(bucket, "Arn"), "/*"])],
                        Condition=Condition(Bool("aws:SecureTransport", "false")),
                    )
                ],
            ),
        )
    )
    return bucket


def _allow(actions: list[object], resources: list[object]) -> Statement:
    return Statement(Effect=Allow, Action=actions, Resource=resources)


def _actions(service: str, *names: str) -> list[object]:
    return [Action(service, name) for name in names]


def _when(condition: str, name: str, actions: list[object], resources: object) -> If:
    """An inline policy that exists only when `condition` holds."""
    document = PolicyDocument(Version="2012-10-17", Statement=[_allow(actions, resources)])  # type: ignore[arg-type]
    return If(condition, Policy(PolicyName=name, PolicyDocument=document), Ref("AWS::NoValue"))


def _service_role(
    logical_id: str,
    service: str,
    policy_name: str,
    statements: list[Statement],
    description: str,
    conditional: list[If],
) -> Role:
    """A role only `service` may assume, with one inline policy and the `conditional` ones."""
    return Role(
        logical_id,
        Path=ROLLOUT_ROLE_PATH,
        Description=description,
        AssumeRolePolicyDocument=assume_role_policy(service),
        Policies=[
            Policy(PolicyName=policy_name, PolicyDocument=PolicyDocument(Version="2012-10-17", Statement=statements)),
            *conditional,
        ],
        Tags=tags("rollout"),
    )


# What the resource providers of the two stacks call (cfn-lint's provider schemas, handlers
# create/read/update/delete), less what gates/permission_exceptions.yaml explains.
FUNCTION_ACTIONS = _actions(
    "lambda",
    "CreateFunction",
    "DeleteFunction",
    "GetFunction",
    "GetFunctionConfiguration",
    "UpdateFunctionCode",
    "UpdateFunctionConfiguration",
    "PublishVersion",
    "ListVersionsByFunction",
    "CreateAlias",
    "GetAlias",
    "UpdateAlias",
    "DeleteAlias",
    "AddPermission",
    "RemovePermission",
    "GetPolicy",
    "TagResource",
    "UntagResource",
    "ListTags",
    "PutFunctionConcurrency",
    "DeleteFunctionConcurrency",
    "GetFunctionCodeSigningConfig",
    "PutFunctionCodeSigningConfig",
    "DeleteFunctionCodeSigningConfig",
    "GetRuntimeManagementConfig",
    "PutRuntimeManagementConfig",
    "GetFunctionRecursionConfig",
    "PutFunctionRecursionConfig",
    "GetFunctionScalingConfig",
    "PutFunctionScalingConfig",
)
MANAGED_POLICY_ACTIONS = _actions(
    "iam",
    "CreatePolicy",
    "DeletePolicy",
    "GetPolicy",
    "GetPolicyVersion",
    "ListPolicyVersions",
    "CreatePolicyVersion",
    "DeletePolicyVersion",
    "ListEntitiesForPolicy",
    "TagPolicy",
    "UntagPolicy",
)
ROLE_ACTIONS = _actions(
    "iam",
    "CreateRole",
    "DeleteRole",
    "GetRole",
    "UpdateRole",
    "UpdateRoleDescription",
    "UpdateAssumeRolePolicy",
    "PutRolePolicy",
    "GetRolePolicy",
    "DeleteRolePolicy",
    "ListRolePolicies",
    "ListAttachedRolePolicies",
    "TagRole",
    "UntagRole",
)
# Attached only when iam:PolicyARN is one the stacks attach (never AdministratorAccess); passed
# only to the services the stacks give roles to.
ATTACHED_POLICIES = (compute.VPC_ACCESS_POLICY, account_role.POLICY)
PASSED_TO_SERVICES = ("lambda.amazonaws.com", "apigateway.amazonaws.com")
# The rollout stack's own roles live under this path: no pattern of the form role/<name>-* (the
# stacks' roles) can match role/rollout/..., because the path holds no '-'.
ROLLOUT_ROLE_PATH = "/rollout/"
LOG_GROUP_ACTIONS = _actions(
    "logs",
    "CreateLogGroup",
    "DeleteLogGroup",
    "PutRetentionPolicy",
    "DeleteRetentionPolicy",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "AssociateKmsKey",
    "DisassociateKmsKey",
    "GetDataProtectionPolicy",
    "DeleteDataProtectionPolicy",
)
RULE_ACTIONS = _actions(
    "events",
    "PutRule",
    "DeleteRule",
    "DescribeRule",
    "PutTargets",
    "RemoveTargets",
    "ListTargetsByRule",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)
API_ACTIONS = _actions("apigateway", "GET", "POST", "PATCH", "PUT", "DELETE")  # tagging is PUT/DELETE on /tags
ALARM_ACTIONS = _actions(
    "cloudwatch",
    "PutMetricAlarm",
    "DeleteAlarms",
    "DescribeAlarms",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)
DASHBOARD_ACTIONS = _actions(
    "cloudwatch",
    "PutDashboard",
    "GetDashboard",
    "DeleteDashboards",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
)
TOPIC_ACTIONS = _actions(
    "sns",
    "CreateTopic",
    "DeleteTopic",
    "GetTopicAttributes",
    "SetTopicAttributes",
    "ListSubscriptionsByTopic",
    "Subscribe",
    "Unsubscribe",
    "TagResource",
    "UntagResource",
    "ListTagsForResource",
    "GetDataProtectionPolicy",
    "PutDataProtectionPolicy",
)
# The alarm topic's key: created with the application's tag, then managed only while it carries it.
KEY_ACTIONS = _actions(
    "kms",
    "DescribeKey",
    "GetKeyPolicy",
    "PutKeyPolicy",
    "GetKeyRotationStatus",
    "EnableKeyRotation",
    "DisableKeyRotation",
    "EnableKey",
    "DisableKey",
    "ListResourceTags",
    "TagResource",
    "UntagResource",
    "UpdateKeyDescription",
    "ScheduleKeyDeletion",
)
# Calls that take no resource ARN (the Service Authorization Reference lists none: "*"): read-only.
UNSCOPED_READS = [
    *_actions("ec2", "DescribeSecurityGroups", "DescribeSubnets", "DescribeVpcs", "DescribeNetworkInterfaces"),
    *_actions("logs", "DescribeResourcePolicies", "DescribeLogGroups", "DescribeIndexPolicies"),
]
ENVIRONMENT_KEY_ACTIONS = _actions("kms", "CreateGrant", "Decrypt", "DescribeKey", "Encrypt", "GenerateDataKey")
UNSCOPED_REASON = (
    "EC2 Describe* (VPC placement) and logs:DescribeResourcePolicies/DescribeLogGroups/DescribeIndexPolicies "
    "take no resource ARN; AWS documents '*'. Read-only. kms:CreateKey and tagging a key at its creation "
    "name no key (KMS requires a policy not restricted to keys): both only with the application's request tag."
)


def _cloudformation_role(template: Template) -> Role:
    """What CloudFormation needs to create, read, update and delete the two stacks' resources."""
    p = template.parameters
    functions = Sub(f"{ARN}:lambda:{HERE}:function:{NAMES.functions}")
    roles = [
        Sub(f"{ARN}:iam::${{AWS::AccountId}}:role/{NAMES.roles}"),
        Sub(f"{ARN}:iam::${{AWS::AccountId}}:role/${{ComputeStackName}}-*"),
    ]
    # Tagging calls name a log group without the trailing ':*', the others with it.
    log_groups = [
        Sub(f"{ARN}:logs:{HERE}:log-group:{NAMES.function_log_groups}"),
        Sub(f"{ARN}:logs:{HERE}:log-group:{NAMES.api_log_group}"),
        Sub(f"{ARN}:logs:{HERE}:log-group:{NAMES.api_log_group}:*"),
    ]
    api_paths = [
        Sub(f"{ARN}:apigateway:${{AWS::Region}}::{path}") for path in ("/apis", "/apis/*", "/account", "/tags/*")
    ]
    statements = [
        _allow(FUNCTION_ACTIONS, [functions]),
        _allow(ROLE_ACTIONS, roles),
        Statement(
            Effect=Allow,
            Action=_actions("iam", "AttachRolePolicy", "DetachRolePolicy"),
            Resource=roles,
            Condition=Condition(ArnEquals("iam:PolicyARN", [Sub(p) for p in ATTACHED_POLICIES])),
        ),
        Statement(
            Effect=Allow,
            Action=[iam.PassRole],
            Resource=roles,
            Condition=Condition(StringEquals("iam:PassedToService", list(PASSED_TO_SERVICES))),
        ),
        _allow(MANAGED_POLICY_ACTIONS, [Sub(f"{ARN}:iam::${{AWS::AccountId}}:policy/{NAMES.roles}")]),
        _allow(LOG_GROUP_ACTIONS, log_groups),
        _allow(API_ACTIONS, api_paths),
        _allow(RULE_ACTIONS, [Sub(f"{ARN}:events:{HERE}:rule/${{ComputeStackName}}-*")]),
        _allow(
            _actions("s3", "GetObject", "GetObjectVersion"),
            [Sub("${ArtifactsBucket.Arn}/handlers/*"), Sub("${ArtifactsBucket.Arn}/templates/*")],
        ),
        _allow(UNSCOPED_READS, ["*"]),
        _allow(ALARM_ACTIONS, [Sub(f"{ARN}:cloudwatch:{HERE}:alarm:{ALARM_PREFIX}*")]),
        _allow(DASHBOARD_ACTIONS, [Sub(f"{ARN}:cloudwatch::${{AWS::AccountId}}:dashboard/{NAMES.dashboard}")]),
        _allow(
            TOPIC_ACTIONS,
            [Sub(f"{ARN}:sns:{HERE}:{ALARM_PREFIX}topic"), Sub(f"{ARN}:sns:{HERE}:{ALARM_PREFIX}topic:*")],
        ),
        # A key being created has no tags yet: creating and tagging it at creation are authorized on
        # "*" with the request's tag (aws:ResourceTag would never match); existing keys as below.
        Statement(
            Effect=Allow,
            Action=_actions("kms", "CreateKey", "TagResource"),
            Resource=["*"],
            Condition=Condition(StringEquals("aws:RequestTag/Application", APPLICATION_TAG)),
        ),
        # ... but no retagging of a key another application tagged (to bring it under KEY_ACTIONS).
        Statement(
            Effect=Deny,
            Action=_actions("kms", "TagResource", "UntagResource"),
            Resource=["*"],
            Condition=Condition(
                [
                    Null("aws:ResourceTag/Application", "false"),
                    StringNotEquals("aws:ResourceTag/Application", APPLICATION_TAG),
                ]
            ),
        ),
        Statement(
            Effect=Allow,
            Action=KEY_ACTIONS,
            Resource=[Sub(f"{ARN}:kms:{HERE}:key/*")],
            Condition=Condition(StringEquals("aws:ResourceTag/Application", APPLICATION_TAG)),
        ),
    ]
    role = _service_role(
        "CloudFormationRole",
        "cloudformation.amazonaws.com",
        "websocket-stacks",
        statements,
        "CloudFormation service role for the CareConnect WebSocket stacks' change sets",
        [
            _when("EnvironmentKeyGiven", "environment-key", ENVIRONMENT_KEY_ACTIONS, [Ref(p["EnvironmentKmsKeyArn"])]),
            # The stage's management-API policy on the endpoint consumers' own roles.
            _when(
                "ConsumersGiven",
                "endpoint-consumer-roles",
                _actions("iam", "PutRolePolicy", "GetRolePolicy", "DeleteRolePolicy"),
                Ref(p["EndpointConsumerRoleArns"]),
            ),
        ],
    )
    role.Metadata = checkov_skips(("CKV_AWS_111", UNSCOPED_REASON), ("CKV_AWS_356", UNSCOPED_REASON))
    return template.add_resource(role)


def _runner_role(template: Template) -> Role:
    """The runner's rights: exactly the calls the rollout's steps declare (rollout/steps.py), for
    this environment's stacks, functions and alarms, generated from them, never written here."""
    p = template.parameters
    where = Where("${AWS::Partition}", "${AWS::Region}", "${AWS::AccountId}")
    stacks = {"compute": "${ComputeStackName}", "websocket": "${WebSocketStackName}"}
    calls = declared_calls(
        where, "${NamePrefix}", stacks, "${CloudFormationRole.Arn}", "${ArtifactsBucket}", "${RunnerCodeBucket}"
    )
    by_resource: dict[str, list[str]] = {}
    for call in calls:
        by_resource.setdefault(call.resource, []).append(call.action)
    statements = [
        Statement(
            Effect=Allow,
            Action=[Action(*a.split(":", 1)) for a in sorted(set(actions))],
            Resource=[Sub(resource)],
            # The service role goes to CloudFormation and nowhere else.
            **(
                {"Condition": Condition(StringEquals("iam:PassedToService", "cloudformation.amazonaws.com"))}
                if actions == ["iam:PassRole"]
                else {}
            ),
        )
        for resource, actions in sorted(by_resource.items())
    ]
    statements.append(
        _allow(
            _actions("logs", "CreateLogStream", "PutLogEvents"),
            [Sub(f"{ARN}:logs:{HERE}:log-group:/aws/lambda/{NAMES.runner}:*")],
        )
    )
    statements.append(_allow([xray.PutTraceSegments, xray.PutTelemetryRecords], ["*"]))  # X-Ray takes no ARN
    role = _service_role(
        "RunnerRole",
        "lambda.amazonaws.com",
        "rollout-steps",
        statements,
        "Role of the CareConnect WebSocket rollout runner (the steps' declared calls)",
        [
            # Reading and writing an environment encrypted with a customer managed key needs the key.
            _when(
                "EnvironmentKeyGiven",
                "environment-key",
                _actions("kms", "CreateGrant", "Decrypt", "Encrypt"),
                [Ref(p["EnvironmentKmsKeyArn"])],
            ),
            _when(
                "ConsumersGiven",
                "endpoint-consumers",
                [lambda_.GetFunctionConfiguration, lambda_.UpdateFunctionConfiguration],
                Ref(p["EndpointConsumerArns"]),
            ),
        ],
    )
    role.RoleName = Sub(NAMES.runner)
    return template.add_resource(role)


def _runner(template: Template, role: Role, bucket: Bucket) -> Function:
    p = template.parameters
    logs_group = template.add_resource(
        log_group(template, "RunnerLogGroup", Sub(f"/aws/lambda/{NAMES.runner}"), "rollout")
    )
    return template.add_resource(
        Function(
            "RunnerFunction",
            FunctionName=Sub(NAMES.runner),
            Description="Runs one phase of one rollout step for the state machine (rollout/runner.py)",
            Runtime=LAMBDA_RUNTIME,
            Handler="rollout.runner.handler",
            Architectures=["arm64"],
            MemorySize=256,
            Timeout=RUNNER_TIMEOUT_SECONDS - 10,
            Role=GetAtt(role, "Arn"),
            Code=Code(S3Bucket=Ref(p["RunnerCodeBucket"]), S3Key=Ref(p["RunnerCodeKey"])),
            LoggingConfig=LoggingConfig(LogGroup=Ref(logs_group)),
            # The only bucket the plan's templates may come from (rollout/runner.py refuses others).
            Environment=Environment(Variables={"ROLLOUT_ARTIFACTS_BUCKET": Ref(bucket)}),
            # Traced, as the state machine that invokes it: one trace follows a rollout step by step.
            TracingConfig=TracingConfig(Mode="Active"),
            Tags=tags("rollout"),
            Metadata=checkov_skips(
                ("CKV_AWS_116", "Invoked synchronously by the state machine, which catches its errors."),
                ("CKV_AWS_115", "One execution at a time per environment; a reserved limit adds nothing."),
                ("CKV_AWS_117", "Calls only AWS APIs (CloudFormation, Lambda, CloudWatch): no VPC resource."),
                ("CKV_AWS_173", "One variable, the artifacts bucket's name: nothing secret to encrypt."),
            ),
        )
    )


def _state_machine_role(template: Template, runner: Function) -> Role:
    statements = [
        _allow([lambda_.InvokeFunction], [GetAtt(runner, "Arn"), Sub("${RunnerFunction.Arn}:*")]),
        _allow(
            [
                logs.CreateLogDelivery,
                logs.GetLogDelivery,
                logs.UpdateLogDelivery,
                logs.DeleteLogDelivery,
                logs.ListLogDeliveries,
                logs.PutResourcePolicy,
                logs.DescribeResourcePolicies,
                logs.DescribeLogGroups,
                xray.PutTraceSegments,
                xray.PutTelemetryRecords,
                xray.GetSamplingRules,
                xray.GetSamplingTargets,
            ],
            ["*"],
        ),
    ]
    role = _service_role(
        "StateMachineRole",
        "states.amazonaws.com",
        "rollout",
        statements,
        "Role of the CareConnect WebSocket rollout state machine: it invokes the runner, nothing else",
        [],
    )
    role.Metadata = checkov_skips(("CKV_AWS_111", VENDED_LOGS_REASON), ("CKV_AWS_356", VENDED_LOGS_REASON))
    return template.add_resource(role)


def checked_definition() -> dict[str, object]:
    """The generated definition, refused if the static checks (generator/asl_checks.py) fail."""
    machine = definition()
    found = asl_checks.problems(machine)
    if found:
        raise ValueError("the generated state machine is unsound: " + "; ".join(found))
    return machine


def build() -> Template:
    template, params = new_template(
        "CareConnect WebSocket rollout inside AWS: artifacts bucket, CloudFormation service role "
        "and the Step Functions state machine that runs compute -> websocket -> endpoint."
    )
    _parameters(params)
    p = template.parameters
    template.add_condition("EnvironmentKeyGiven", Not(Equals(Ref(p["EnvironmentKmsKeyArn"]), "")))
    template.add_condition("ConsumersGiven", Not(Equals(Join("", Ref(p["EndpointConsumerArns"])), "")))
    bucket = _bucket(template)
    cloudformation_role = _cloudformation_role(template)
    runner = _runner(template, _runner_role(template), bucket)
    machine_role = _state_machine_role(template, runner)
    logs_group = template.add_resource(
        log_group(
            template,
            "StateMachineLogGroup",
            Sub(NAMES.state_machine_log_group),
            "rollout",
        )
    )
    machine = template.add_resource(
        StateMachine(
            "RolloutStateMachine",
            StateMachineName=Sub(NAMES.state_machine),
            StateMachineType="STANDARD",
            RoleArn=GetAtt(machine_role, "Arn"),
            # A string, so the partition can be substituted: cfn-lint's E3601 refuses anything but
            # `aws` in a Task resource (tests/generator/test_statemachine.py lints the object form).
            DefinitionString=Sub(
                json.dumps(checked_definition(), separators=(",", ":")),
                Partition=Ref("AWS::Partition"),
                RunnerArn=GetAtt(runner, "Arn"),
            ),
            # Execution data holds templates and parameters: errors only, without the data.
            LoggingConfiguration=LoggingConfiguration(
                Level="ERROR",
                IncludeExecutionData=False,
                Destinations=[
                    LogDestination(CloudWatchLogsLogGroup=CloudWatchLogsLogGroup(LogGroupArn=GetAtt(logs_group, "Arn")))
                ],
            ),
            # Always traced (Control Tower CT.STEPFUNCTIONS.PR.2): the role may write X-Ray segments.
            TracingConfiguration=TracingConfiguration(Enabled=True),
            Tags=tags("rollout"),
        )
    )
    outputs = {
        "ArtifactsBucketName": ("Bucket for handler zips and templates", Ref(bucket)),
        "StateMachineArn": ("The rollout state machine", Ref(machine)),
        "RunnerFunctionArn": ("The rollout runner function", GetAtt(runner, "Arn")),
        "CloudFormationRoleArn": (
            "Service role the change sets run under",
            GetAtt(cloudformation_role, "Arn"),
        ),
    }
    return finish(template, params, outputs)
