"""Building blocks more than one template uses: tags, log groups, service roles, checkov notes."""

from __future__ import annotations

from typing import Any

from awacs.aws import Allow, PolicyDocument, Principal, Statement
from awacs.sts import AssumeRole
from troposphere import AWSHelperFn, Equals, If, Not, Output, Ref, Tags, Template
from troposphere.logs import LogGroup

from generator.model import APPLICATION_TAG, LOG_RETENTION_DAYS, NAME_PREFIX_PATTERN
from generator.parameters import ParameterSet

KMS_KEY_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$"


def tags(component: str) -> Tags:
    return Tags(Application=APPLICATION_TAG, Component=component)


def tag_map(component: str) -> dict[str, str]:
    """Tags for resource types that take a plain map (ApiGatewayV2)."""
    return {"Application": APPLICATION_TAG, "Component": component}


def checkov_skips(*skips: tuple[str, str]) -> dict[str, Any]:
    """Resource metadata that tells checkov which checks do not apply, and why."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in skips]}}


def add_name_prefix(params: ParameterSet, description: str) -> None:
    """`NamePrefix`, the same constraint in every template (an environment's names derive from it)."""
    params.add(
        "Naming",
        "NamePrefix",
        "Name prefix",
        Type="String",
        Default="cc",
        AllowedPattern=NAME_PREFIX_PATTERN,
        Description=description,
        ConstraintDescription="lower-case letter, then up to 19 lower-case letters, digits or '-'",
    )


def add_log_parameters(params: ParameterSet, group: str, what: str) -> None:
    """`LogRetentionInDays` and `LogsKmsKeyArn`, with the condition `LogsKmsKeyGiven`."""
    p = params.template.parameters
    params.add(
        group,
        "LogRetentionInDays",
        f"{what} retention (days)",
        Type="Number",
        Default=30,
        AllowedValues=list(LOG_RETENTION_DAYS),
        Description=f"Days CloudWatch keeps the {what.lower()} (only the values CloudWatch accepts).",
    )
    params.add(
        group,
        "LogsKmsKeyArn",
        f"{what} KMS key ARN",
        Type="String",
        Default="",
        AllowedPattern=KMS_KEY_ARN_PATTERN,
        Description=f"Customer managed KMS key for the {what.lower()}. Empty: CloudWatch's default encryption.",
        ConstraintDescription="empty, or a KMS key ARN",
    )
    params.template.add_condition("LogsKmsKeyGiven", Not(Equals(Ref(p["LogsKmsKeyArn"]), "")))


def log_group(template: Template, logical_id: str, name: AWSHelperFn, component: str) -> LogGroup:
    """A log group owned by its stack, with the retention and key of `add_log_parameters`."""
    p = template.parameters
    return LogGroup(
        logical_id,
        # Stated on purpose: the name is fixed, so a retained group would block re-creating
        # the stack (e.g. after a first create rolled back). Retention bounds the data.
        DeletionPolicy="Delete",
        UpdateReplacePolicy="Delete",
        LogGroupName=name,
        RetentionInDays=Ref(p["LogRetentionInDays"]),
        KmsKeyId=If("LogsKmsKeyGiven", Ref(p["LogsKmsKeyArn"]), Ref("AWS::NoValue")),
        Tags=tags(component),
    )


def assume_role_policy(service: str) -> PolicyDocument:
    """Trust policy letting one AWS service (e.g. `lambda.amazonaws.com`) assume a role."""
    return PolicyDocument(
        Version="2012-10-17",
        Statement=[Statement(Effect=Allow, Action=[AssumeRole], Principal=Principal("Service", service))],
    )


def deployed_by_template_url(template: Template) -> None:
    """Mark a template that is over TemplateBody's 51,200 bytes on purpose: both engines deploy
    it by TemplateURL from the artifacts bucket (rollout/artifacts.py), which answers the rule
    pack's W9111 (cfnlint_websocket/template.py); any other tool must do the same."""
    template.set_metadata({**template.metadata, "cfn-lint": {"config": {"ignore_checks": ["W9111"]}}})


def new_template(description: str) -> tuple[Template, ParameterSet]:
    """An empty template of the current format version, and the set its parameters go into."""
    template = Template(Description=description)
    template.set_version("2010-09-09")
    return template, ParameterSet(template)


def finish(template: Template, params: ParameterSet, outputs: dict[str, tuple[str, object]]) -> Template:
    """Add the outputs (key -> description, value) and the console's parameter groups."""
    for key, (description, value) in outputs.items():
        template.add_output(Output(key, Description=description, Value=value))
    template.set_metadata({**template.metadata, "AWS::CloudFormation::Interface": params.interface()})
    return template
