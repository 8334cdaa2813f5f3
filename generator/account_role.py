"""The account's API Gateway CloudWatch role (what access and execution logging need), split over
the two stacks so IAM has time to propagate it: the compute stack, deployed first, creates the
role; the websocket stack, deployed after it (and, in the rollout, after the `settle` step), sets
the account to it (`AWS::ApiGateway::Account`). Set in the same stack as its role, the setting
races IAM (API Gateway answers "The role ARN does not have required permissions set to API
Gateway" while the new role propagates), as CDK, rain and Serverless users report."""

from __future__ import annotations

from troposphere import Equals, GetAtt, If, Not, Ref, Sub, Template
from troposphere.apigateway import Account
from troposphere.cloudformation import WaitConditionHandle
from troposphere.iam import Role

from generator import stages
from generator.common import assume_role_policy, tags
from generator.parameters import ParameterSet

# The names the rollout (and its runner, which has no troposphere) shares live in generator/stages.py.
CREATE_PARAMETER = stages.ACCOUNT_ROLE_CREATE_PARAMETER
ARN_PARAMETER = stages.ACCOUNT_ROLE_ARN_PARAMETER
ARN_OUTPUT = stages.ACCOUNT_ROLE_ARN_OUTPUT
ROLE_LOGICAL_ID = stages.ACCOUNT_ROLE_LOGICAL_ID
POLICY = "arn:${AWS::Partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
READY = "ApiGatewayAccountReady"  # the websocket stack's handle the stage waits for


def add_role(template: Template, params: ParameterSet) -> If:
    """The compute stack's part: the parameter, the role (retained: deleting it would leave the
    account setting naming nothing and break logging for every API in the region) and its ARN,
    for the output of that name."""
    create = params.add(
        "Logs",
        CREATE_PARAMETER,
        "Create the account's API Gateway CloudWatch role",
        Type="String",
        Default="true",
        AllowedValues=["true", "false"],
        Description="Create the role API Gateway needs for access and execution logging; the websocket "
        "stack, given its ARN (output ApiGatewayCloudWatchRoleArn), sets it for the whole account and region "
        "(one per region: the last stack to set it wins). The role is retained when the stack is deleted "
        "or this is turned off, since the account setting keeps naming it. Set false when the account "
        "already has one.",
    )
    template.add_condition("CreateAccountRole", Equals(Ref(create), "true"))
    role = template.add_resource(
        Role(
            ROLE_LOGICAL_ID,
            Condition="CreateAccountRole",
            DeletionPolicy="Retain",
            UpdateReplacePolicy="Retain",
            AssumeRolePolicyDocument=assume_role_policy("apigateway.amazonaws.com"),
            ManagedPolicyArns=[Sub(POLICY)],
            Tags=tags("compute"),
        )
    )
    return If("CreateAccountRole", GetAtt(role, "Arn"), "")


def add_setting(template: Template, params: ParameterSet, wait_for: list[str]) -> None:
    """The websocket stack's part: the account set to the given role, after `wait_for`, and a
    handle the stage can wait for whether or not the setting is made (DependsOn cannot name a
    resource whose condition is false)."""
    arn = params.add(
        "Logs",
        ARN_PARAMETER,
        "API Gateway CloudWatch role to set for the account",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^arn:aws[a-z-]*:iam::[0-9]{12}:role/[A-Za-z0-9+=,.@_/-]{1,512}$",
        Description="The role API Gateway logs with, set for the whole account and region: the compute "
        "stack's output of this name (the rollout passes it). Empty (default): the account's setting is "
        "left as it is (it must already name a role: the stage's access logging needs one).",
        ConstraintDescription="empty, or an IAM role ARN",
    )
    template.add_condition("SetAccountRole", Not(Equals(Ref(arn), "")))
    account = template.add_resource(
        Account("ApiGatewayAccount", Condition="SetAccountRole", DependsOn=wait_for, CloudWatchRoleArn=Ref(arn))
    )
    template.add_resource(
        WaitConditionHandle(READY, Metadata={"AccountRoleSet": If("SetAccountRole", Ref(account), "")})
    )
