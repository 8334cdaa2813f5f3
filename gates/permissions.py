"""Permission gate: the roles of the `rollout` template allow every call AWS will make with them.

With a service role (`RoleARN`), every call a resource provider makes runs as that role. The
providers publish those calls (cfn-lint bundles them: `data/schemas/providers/<region>.json` ->
`resources/<id>.json`, `handlers.{create,read,update,delete}.permissions`). For every resource
of the compute and websocket templates, under every option (database methods, VPC, KMS keys,
account role on and off, another NamePrefix), each permission of those four handlers must be
allowed to the CloudFormation service role on the ARN the call names; and each aws-sdk Task of
the state machine (plus what its calls imply: PassRole, the template read, the key) to the state
machine's role. Policies are decided by moto's IAM policy evaluator, made case-insensitive for
actions and exact for resource wildcards (see `StrictStatement`). Permissions a provider lists
for a feature these stacks never use are in `permission_exceptions.yaml`, each with its reason;
an exception no check needs is itself a failure, so the file cannot rot.

Run: `python -m gates.permissions` (exit 1 naming resource, handler, action and ARN per miss).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from moto.iam.access_control import IAMPolicyStatement, PermissionResult

from cfnlint_websocket import _support as support
from generator.build import build_all
from generator.intrinsics import Evaluator
from generator.model import HANDLER_FUNCTIONS
from generator.names import Names
from rollout.artifacts import template_key
from rollout.plan import Artifacts, Consumer, Observed, resolve

EXCEPTIONS_FILE = Path(__file__).with_name("permission_exceptions.yaml")
PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
ARN_CONTEXT = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
STACKS = {"compute": "cc-websocket-compute", "websocket": "cc-websocket-api"}
BUCKET = "cc-websocket-rollout-artifactsbucket-1a2b3c4d5e6f"
CODE = {"CodeS3Bucket": BUCKET, "CodeS3Key": "handlers/handlers-arm64-py3.14-0123456789abcdef.zip"}
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:cc/db-AbCdEf"
ENVIRONMENT_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/66666666-7777-8888-9999-000000000000"
CONSUMER_FUNCTIONS = (f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:careconnect-backend",
                      f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:careconnect-notifications")  # fmt: skip
CONSUMER_ROLES = ("careconnect-backend-role",)


@dataclass(frozen=True)
class Option:
    """One way an environment can be configured: template parameters per template."""

    name: str
    compute: dict[str, str] = field(default_factory=dict)
    websocket: dict[str, str] = field(default_factory=dict)
    rollout: dict[str, str] = field(default_factory=dict)

    def parameters(self, stem: str) -> dict[str, str]:
        prefix = {"NamePrefix": self.compute.get("NamePrefix", "cc")}
        return {
            **prefix,
            **{"compute": CODE | self.compute, "websocket": self.websocket, "rollout": self.rollout}[stem],
        }


IAM_DB = {
    "DatabaseAuth": "iam",
    "DatabaseHost": "db.example.internal",
    "DatabaseUser": "ws_app",
    "DatabaseResourceId": "db-ABCDEFGH",
}
OPTIONS = (
    Option("database url", {"DatabaseAuth": "url", "DatabaseUrl": "postgresql://u:p@db/cc"}),
    Option("database secret", {"DatabaseAuth": "secret", "DatabaseSecretArn": SECRET, "JwtSecretArn": SECRET}),
    Option("database iam", IAM_DB),
    Option("vpc", {**IAM_DB, "SubnetIds": "subnet-0a1b,subnet-2c3d", "SecurityGroupIds": "sg-0e4f"}),
    Option(
        "environment key",
        {**IAM_DB, "EnvironmentKmsKeyArn": ENVIRONMENT_KEY},
        rollout={"EnvironmentKmsKeyArn": ENVIRONMENT_KEY},
    ),
    Option("log keys", {**IAM_DB, "LogsKmsKeyArn": LOGS_KEY}, {"LogsKmsKeyArn": LOGS_KEY}),
    Option("account role on", IAM_DB, {"CreateApiGatewayAccountRole": "true"}),
    Option("account role off", IAM_DB, {"CreateApiGatewayAccountRole": "false"}),
    Option("another prefix", {**IAM_DB, "NamePrefix": "staging"}, {"NamePrefix": "staging"}, {"NamePrefix": "staging"}),
    Option(
        "endpoint consumers",
        IAM_DB,
        {"ManageConnectionsRoleNames": ",".join(CONSUMER_ROLES)},
        {
            "EndpointConsumerArns": ",".join(CONSUMER_FUNCTIONS),
            "EndpointConsumerRoleArns": ",".join(f"arn:aws:iam::{ACCOUNT}:role/{r}" for r in CONSUMER_ROLES),
        },
    ),
)


# --- policy evaluation -------------------------------------------------------------------------


class StrictStatement(IAMPolicyStatement):
    """moto's statement evaluation, with IAM's matching: actions case-insensitive, resources
    with `*` and `?` as the only wildcards. NotAction/NotResource are refused, not guessed."""

    def __init__(self, statement: dict[str, Any]) -> None:
        unsupported = {"NotAction", "NotResource", "NotPrincipal"} & set(statement)
        if unsupported:
            raise ValueError(f"the gate does not evaluate {sorted(unsupported)}: {statement}")
        super().__init__(statement)

    def _check_element_matches(self, statement_element: Any, value: str) -> bool:
        patterns = self._statement[statement_element]
        fold = statement_element == "Action"
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if _wildcard(pattern.lower() if fold else pattern, value.lower() if fold else value):
                return True
        return False


def _wildcard(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def allowed(documents: list[dict[str, Any]], action: str, resource: str) -> bool:
    """Identity policies: allowed when some statement allows and none denies."""
    results = [
        StrictStatement(s).is_action_permitted(action, resource)
        for document in documents
        for s in _statements(document)
    ]
    return PermissionResult.DENIED not in results and PermissionResult.PERMITTED in results


def _statements(document: dict[str, Any]) -> list[dict[str, Any]]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


# --- what providers call: cfnlint_websocket._support.provider_permissions (the rule pack's E9112 reads it too)


@dataclass(frozen=True)
class Check:
    """One permission one role must have: who needs it, for what, on which ARN."""

    role: str  # CloudFormationRole | RunnerRole | StateMachineRole
    resource: str  # logical id and type, or the Task's state name
    handler: str
    action: str
    arn: str

    def explain(self) -> str:
        return f"{self.role}: {self.resource} {self.handler}: {self.action} on {self.arn}"


@dataclass(frozen=True)
class Exception_:
    resource_type: str
    actions: frozenset[str]
    reason: str


def load_exceptions(path: Path = EXCEPTIONS_FILE) -> list[Exception_]:
    entries = yaml.safe_load(path.read_text()) or []
    found = []
    for entry in entries:
        if not str(entry.get("reason", "")).strip():
            raise ValueError(f"{path}: every exception needs a reason: {entry}")
        found.append(Exception_(entry["type"], frozenset(a.lower() for a in entry["actions"]), entry["reason"]))
    return found


def _arn(service: str, resource: str, region: str = REGION, account: str = ACCOUNT) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


class StackResources:
    """The resources one template creates for one option, with their ARNs."""

    def __init__(self, stem: str, template: dict[str, Any], parameters: dict[str, str]) -> None:
        self.stem, self.template = stem, template
        self.stack = STACKS[stem]
        pseudo = {**ARN_CONTEXT, "AWS::StackName": self.stack}
        first = Evaluator(template, parameters, pseudo=pseudo, physical_ids=self._generated_names())
        named = {
            name: str(first.eval(resource["Properties"][NAME_PROPERTIES[resource["Type"]]]))
            for name, resource in template["Resources"].items()
            if NAME_PROPERTIES.get(resource["Type"]) in resource.get("Properties", {})
        }
        self.evaluator = Evaluator(template, parameters, pseudo=pseudo, physical_ids=self._generated_names() | named)
        self.resources = {
            name: self.evaluator.eval(resource)
            for name, resource in template["Resources"].items()
            if "Condition" not in resource or self.evaluator.condition(resource["Condition"])
        }

    def _generated_names(self) -> dict[str, str]:
        return {name: f"{self.stack}-{name}-GENERATED" for name in self.template["Resources"]}

    def role_arn(self, logical: str) -> str:
        props = self.resources[logical]["Properties"]
        return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{props.get('RoleName', f'{self.stack}-{logical}-GENERATED')}"

    def own_arns(self, logical: str, handler: str) -> list[str]:
        resource = self.resources[logical]
        kind, props = resource["Type"], resource.get("Properties", {})
        api = f"arn:{PARTITION}:apigateway:{REGION}::/apis/a1b2c3d4e5"
        if kind == "AWS::Lambda::Function":
            return [_arn("lambda", f"function:{props['FunctionName']}")]
        if kind == "AWS::Lambda::Permission":
            name = props["FunctionName"]
            return [name if name.startswith("arn:") else _arn("lambda", f"function:{name}")]
        if kind == "AWS::Logs::LogGroup":
            return [_arn("logs", f"log-group:{props['LogGroupName']}:*")]
        if kind == "AWS::IAM::Role":
            return [self.role_arn(logical)]
        if kind == "AWS::IAM::Policy":
            return [f"arn:{PARTITION}:iam::{ACCOUNT}:role/{role}" for role in props["Roles"]]
        if kind == "AWS::IAM::ManagedPolicy":
            return [f"arn:{PARTITION}:iam::{ACCOUNT}:policy/{props['ManagedPolicyName']}"]
        if kind == "AWS::Events::Rule":
            return [_arn("events", f"rule/{self.stack}-{logical}-GENERATED")]
        if kind == "AWS::ApiGateway::Account":
            return [f"arn:{PARTITION}:apigateway:{REGION}::/account"]
        if kind == "AWS::CloudWatch::Alarm":
            return [_arn("cloudwatch", f"alarm:{props['AlarmName']}")]
        if kind == "AWS::CloudWatch::Dashboard":
            return [f"arn:{PARTITION}:cloudwatch::{ACCOUNT}:dashboard/{props['DashboardName']}"]
        if kind == "AWS::SNS::Topic":
            topic = _arn("sns", props["TopicName"])
            return [topic, f"{topic}:0f1e2d3c-subscription"]
        if kind == "AWS::KMS::Key":
            return [_arn("kms", "key/1234abcd-12ab-34cd-56ef-1234567890ab")]
        children = {
            "AWS::ApiGatewayV2::Api": "",
            "AWS::ApiGatewayV2::Route": "/routes",
            "AWS::ApiGatewayV2::Integration": "/integrations",
            "AWS::ApiGatewayV2::Stage": "/stages",
        }
        if kind in children:
            collection = f"{api}{children[kind]}" if children[kind] else api.rsplit("/", 1)[0]
            return [collection] if handler == "create" else [f"{collection}/x1y2z3"]
        raise KeyError(f"the gate has no ARN for {kind}: teach StackResources.own_arns")

    def arns(self, logical: str, handler: str, action: str) -> list[str] | None:
        """The ARNs a provider's call names, or None when the call does not apply here."""
        resource = self.resources[logical]
        kind, props = resource["Type"], resource.get("Properties", {})
        service, name = action.lower().split(":", 1)
        if service == "ec2" or action.lower() == "logs:describeresourcepolicies":
            return ["*"]
        if action.lower() == "logs:describeloggroups":
            return [_arn("logs", "log-group:*")]
        if kind == "AWS::Logs::LogGroup" and name in (
            "tagresource",
            "untagresource",
            "listtagsforresource",
        ):
            return [_arn("logs", f"log-group:{props['LogGroupName']}")]  # tagging names the group without ':*'
        if kind == "AWS::Lambda::Function":
            if action.lower() == "iam:passrole":
                return [self.role_arn(_logical_of(self.template["Resources"][logical]["Properties"]["Role"]))]
            if service == "s3":
                return [f"arn:{PARTITION}:s3:::{props['Code']['S3Bucket']}/{props['Code']['S3Key']}"]
            if service == "kms":
                return [props["KmsKeyArn"]] if props.get("KmsKeyArn") else None
        if action.lower() == "kms:createkey":
            return ["*"]  # the key has no ARN before it exists
        if kind == "AWS::ApiGateway::Account" and service == "iam":
            return [self.role_arn(_logical_of(self.template["Resources"][logical]["Properties"]["CloudWatchRoleArn"]))]
        return self.own_arns(logical, handler)


# Where a resource type takes its physical name (its Ref) from, when the template names it.
NAME_PROPERTIES = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Logs::LogGroup": "LogGroupName",
}


def _logical_of(get_att: dict[str, Any]) -> str:
    target = get_att["Fn::GetAtt"]
    return str(target[0] if isinstance(target, list) else target.split(".")[0])


def stack_checks(
    option: Option, templates: dict[str, dict[str, Any]], exceptions: list[Exception_], used: set[tuple[str, str]]
) -> Iterator[Check]:
    for stem in STACKS:
        stack = StackResources(stem, templates[stem], option.parameters(stem))
        for logical, resource in stack.resources.items():
            kind = resource["Type"]
            for handler, permissions in support.provider_permissions(kind, REGION).items():
                for permission in permissions:
                    excepted = next(
                        (e for e in exceptions if e.resource_type == kind and permission.lower() in e.actions), None
                    )
                    if excepted:
                        used.add((kind, permission.lower()))
                        continue
                    arns = stack.arns(logical, handler, permission)
                    if arns is None:
                        continue
                    action = support.IAM_ACTION_OF.get(permission.lower(), permission)
                    if action != permission:
                        arns = [
                            f"arn:{PARTITION}:apigateway:{REGION}::/tags/{a}" for a in stack.own_arns(logical, handler)
                        ]
                    for arn in arns:
                        yield Check("CloudFormationRole", f"{stem} {logical} ({kind})", handler, action, arn)


RUNNER_ARN = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{Names('cc').runner}"
SAMPLE_ID = "0f1e2d3c"  # what a `*` in a declared resource stands for (a stack id, a change-set name)


def runner_checks(option: Option, rollout_parameters: dict[str, str]) -> Iterator[Check]:
    """Every call every step of a plan for this option declares (rollout/steps.py), as the runner
    makes it; the key on each environment write; the state machine's one call, the runner."""
    prefix = rollout_parameters.get("NamePrefix", "cc")
    consumers = tuple(arn for arn in rollout_parameters.get("EndpointConsumerArns", "").split(",") if arn)
    functions = [_arn("lambda", f"function:{Names(prefix).function(f.suffix)}") for f in HANDLER_FUNCTIONS]
    settings = SimpleNamespace(name="gate", region=REGION, stacks=STACKS, bake_seconds=60,
                               parameters={"compute": option.parameters("compute"), "websocket": option.websocket})  # fmt: skip
    observed = Observed(ACCOUNT, PARTITION, dict.fromkeys(STACKS), f"arn:{PARTITION}:iam::{ACCOUNT}:role/logging",
                        tuple(Consumer(arn, arn, f"arn:{PARTITION}:iam::{ACCOUNT}:role/r") for arn in consumers))  # fmt: skip
    urls = {stem: f"https://{BUCKET}.s3.{REGION}.amazonaws.com/{template_key(stem, '')}" for stem in STACKS}
    plan = resolve(settings, observed, Artifacts(BUCKET, CODE["CodeS3Key"], urls, dict.fromkeys(STACKS, "")),
                   run_id="1-a", role_arn=SERVICE_ROLE_ARN, bake_seconds=60)  # fmt: skip
    key = rollout_parameters.get("EnvironmentKmsKeyArn", "")
    for step in plan.steps:
        for call in step.calls(plan.where):
            own = call.action.startswith("lambda:") and call.resource.endswith("-*")
            for arn in functions if own else [call.resource.replace("*", SAMPLE_ID)]:
                yield Check("RunnerRole", step.name, "step", call.action, arn)
                if key and call.action == "lambda:UpdateFunctionConfiguration":
                    for kms in ("kms:Decrypt", "kms:Encrypt", "kms:CreateGrant"):
                        yield Check("RunnerRole", step.name, "step", kms, key)
    yield Check("StateMachineRole", "every Task", "task", "lambda:InvokeFunction", RUNNER_ARN)


SERVICE_ROLE_ARN = f"arn:{PARTITION}:iam::{ACCOUNT}:role/cc-websocket-rollout-CloudFormationRole-GENERATED"


def role_documents(rollout: dict[str, Any], parameters: dict[str, str], role: str) -> list[dict[str, Any]]:
    evaluator = Evaluator(
        rollout,
        parameters,
        pseudo=ARN_CONTEXT,
        physical_ids={"ArtifactsBucket": BUCKET},
        attributes={
            "ArtifactsBucket.Arn": f"arn:{PARTITION}:s3:::{BUCKET}",
            "CloudFormationRole.Arn": SERVICE_ROLE_ARN,
            "RunnerFunction.Arn": RUNNER_ARN,
        },
    )
    policies = evaluator.eval(rollout["Resources"][role]["Properties"]["Policies"])
    return [policy["PolicyDocument"] for policy in policies]


@dataclass
class Report:
    checked: int = 0
    misses: list[Check] = field(default_factory=list)
    by_option: dict[str, int] = field(default_factory=dict)
    unused_exceptions: list[str] = field(default_factory=list)
    resources: set[str] = field(default_factory=set)


def run(exceptions_path: Path = EXCEPTIONS_FILE, rollout_override: dict[str, Any] | None = None) -> Report:
    templates = {stem: template.to_dict() for stem, template in build_all().items()}
    rollout = rollout_override or templates["rollout"]
    exceptions = load_exceptions(exceptions_path)
    used: set[tuple[str, str]] = set()
    report = Report()
    for option in OPTIONS:
        rollout_parameters = {**STACK_NAMES, **option.parameters("rollout")}
        documents = {
            role: role_documents(rollout, rollout_parameters, role)
            for role in ("CloudFormationRole", "RunnerRole", "StateMachineRole")
        }
        checks = [*stack_checks(option, templates, exceptions, used), *runner_checks(option, rollout_parameters)]
        for check in checks:
            arn = SERVICE_ROLE_ARN if check.arn == "CloudFormationRole" else check.arn
            report.checked += 1
            report.resources.add(check.resource)
            if not allowed(documents[check.role], check.action, arn):
                report.misses.append(Check(check.role, check.resource, check.handler, check.action, arn))
        report.by_option[option.name] = len(checks)
    report.unused_exceptions = sorted(
        f"{e.resource_type}: {action}"
        for e in exceptions
        for action in e.actions
        if (e.resource_type, action) not in used
    )
    return report


STACK_NAMES = {
    "ComputeStackName": STACKS["compute"],
    "WebSocketStackName": STACKS["websocket"],
    "RunnerCodeBucket": "cc-websocket-artifacts",
    "RunnerCodeKey": "runner/rollout-runner-0123.zip",
}


def main() -> int:
    report = run()
    misses = sorted({m.explain() for m in report.misses})
    for line in misses:
        print(f"MISSING {line}")
    for line in report.unused_exceptions:
        print(f"UNUSED EXCEPTION {line} (no resource under any option needs it: remove it)")
    exceptions = load_exceptions()
    print(
        f"permission gate: {report.checked} checks over {len(OPTIONS)} options "
        f"({len(report.resources)} resources and tasks), {len(misses)} missing, "
        f"{sum(len(e.actions) for e in exceptions)} excepted permissions in {EXCEPTIONS_FILE.name}"
    )
    return 1 if misses or report.unused_exceptions else 0


if __name__ == "__main__":
    sys.exit(main())
