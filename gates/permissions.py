"""Permission gate: the roles of the `rollout` template allow every call AWS will make with them.

With a service role (`RoleARN`), every call a resource provider makes runs as that role. The
providers publish those calls (cfn-lint bundles them: `data/schemas/providers/<region>.json` ->
`resources/<id>.json`, `handlers.{create,read,update,delete}.permissions`). For every resource
of the compute and websocket templates, under every option (database methods, VPC, KMS keys,
account role on and off, another NamePrefix), each permission of those four handlers must be
allowed to the CloudFormation service role on the ARN the call names; and each aws-sdk Task of
the state machine (plus what its calls imply: PassRole, the template read, the key) to the state
machine's role. Each request carries the context its caller sends (`request_context`): request
tags on a create or tag call, resource tags only on a resource that exists, iam:PassedToService,
iam:PolicyARN, kms:ViaService, aws:CalledVia, cloudformation:RoleArn/TemplateUrl. Policies are
decided twice: by `gates.iam_eval` (a key the request lacks fails a condition, as on AWS) and by
@cloud-copilot/iam-simulate (gates/node/simulate.mjs); any disagreement fails, naming the
request. Permissions a provider lists
for a feature these stacks never use are in `permission_exceptions.yaml`, each with its reason;
an exception no check needs is itself a failure, so the file cannot rot.

Run: `python -m gates.permissions` (exit 1 naming resource, handler, action and ARN per miss).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from cfnlint_websocket import _support as support
from gates import iam_eval
from gates.iam_eval import Request
from generator.build import build_all
from generator.intrinsics import Evaluator
from generator.model import HANDLER_FUNCTIONS
from generator.names import Names
from generator.rollout_stack import ROLLOUT_ROLE_PATH
from rollout.artifacts import template_key
from rollout.plan import Artifacts, Consumer, Observed, resolve
from rollout.unlock_step import with_release

EXCEPTIONS_FILE = Path(__file__).with_name("permission_exceptions.yaml")
PARTITION, REGION, ACCOUNT = "aws", "eu-west-1", "123456789012"
ARN_CONTEXT = {"AWS::Partition": PARTITION, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
STACKS = {"compute": "cc-websocket-compute", "websocket": "cc-websocket-api"}
BUCKET = "cc-websocket-rollout-artifactsbucket-1a2b3c4d5e6f"
CODE = {"CodeS3Bucket": BUCKET, "CodeS3Key": "handlers/handlers-arm64-py3.14-0123456789abcdef.zip"}
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:cc/db-AbCdEf"
ENVIRONMENT_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/11111111-2222-3333-4444-555555555555"
LOGS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/66666666-7777-8888-9999-000000000000"
CONSUMER_FUNCTIONS = (
    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:careconnect-backend",
    f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:careconnect-notifications",
)
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
    Option(
        "account role on",
        {**IAM_DB, "CreateApiGatewayAccountRole": "true"},
        {
            "ApiGatewayCloudWatchRoleArn": f"arn:aws:iam::{ACCOUNT}:role/cc-websocket-compute-ApiGatewayCloudWatchRole-A1"
        },
    ),
    Option("account role off", {**IAM_DB, "CreateApiGatewayAccountRole": "false"}),
    Option("connect authorizer", IAM_DB, {"ConnectAuthorizerFunctionArn": CONSUMER_FUNCTIONS[0]}),
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


def allowed(
    documents: list[dict[str, Any]], action: str, resource: str, context: Mapping[str, Any] | None = None
) -> bool:
    """Identity policies, decided by gates.iam_eval (conditions as AWS decides them)."""
    return iam_eval.allowed(documents, Request(action, resource, dict(context or {})))


# --- what providers call: cfnlint_websocket._support.provider_permissions (the rule pack's E9112 reads it too)


@dataclass(frozen=True)
class Check:
    """One permission one role must have: who needs it, for what, on which ARN."""

    role: str  # CloudFormationRole | RunnerRole | StateMachineRole
    resource: str  # logical id and type, or the Task's state name
    handler: str
    action: str
    arn: str
    context: tuple[tuple[str, str | tuple[str, ...]], ...] = ()

    def explain(self) -> str:
        keys = f" with {', '.join(k for k, _ in self.context)}" if self.context else ""
        return f"{self.role}: {self.resource} {self.handler}: {self.action} on {self.arn}{keys}"

    def request(self) -> Request:
        return Request(self.action, self.arn, dict(self.context))


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
        second = Evaluator(template, parameters, pseudo=pseudo, physical_ids=self._generated_names() | named)
        qualified = {  # a version's and an alias's Ref is the function's ARN with its qualifier
            name: _arn("lambda", f"function:{second.eval(resource['Properties']['FunctionName'])}:")
            + str(resource["Properties"].get("Name", "1"))
            for name, resource in template["Resources"].items()
            if resource["Type"] in ("AWS::Lambda::Version", "AWS::Lambda::Alias")
        }
        self.evaluator = Evaluator(
            template, parameters, pseudo=pseudo, physical_ids=self._generated_names() | named | qualified
        )
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
        if kind in ("AWS::Lambda::Version", "AWS::Lambda::Alias"):
            name = props["FunctionName"]
            function = name if name.startswith("arn:") else _arn("lambda", f"function:{name}")
            qualifier = props.get("Name") or "1"  # the alias, or a version it published
            return [function] if handler == "create" else [function, f"{function}:{qualifier}"]
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
            "AWS::ApiGatewayV2::Authorizer": "/authorizers",
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
        if service == "ec2" or action.lower() in WILDCARD_ONLY:
            return ["*"]
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
            return [str(self.evaluator.eval(props["CloudWatchRoleArn"]))]  # the role a parameter names
        return self.own_arns(logical, handler)


# Calls the Service Authorization Reference lists with no resource type: IAM decides them on "*".
WILDCARD_ONLY = frozenset({"logs:describeresourcepolicies", "logs:describeloggroups", "logs:describeindexpolicies"})

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
                    tagging = action != permission or permission.split(":", 1)[1].lower().startswith("tag")
                    if action != permission:
                        arns = [
                            f"arn:{PARTITION}:apigateway:{REGION}::/tags/{a}" for a in stack.own_arns(logical, handler)
                        ]
                    for arn in arns:
                        for context in request_context(resource, handler, permission, arn, tagging=tagging):
                            yield Check(
                                "CloudFormationRole", f"{stem} {logical} ({kind})", handler, action, arn, context
                            )


Context = tuple[tuple[str, str | tuple[str, ...]], ...]
# Calls that create the resource they name (it has no tags yet: the request carries them).
CREATING = ("create", "putrule", "putmetricalarm", "putdashboard")
# Who a role is passed to, by the resource type whose provider passes it.
PASSED_TO = {
    "AWS::Lambda::Function": "lambda.amazonaws.com",
    "AWS::ApiGateway::Account": "apigateway.amazonaws.com",
    "AWS::ApiGatewayV2::Authorizer": "apigateway.amazonaws.com",
}


def resource_tags(resource: dict[str, Any]) -> dict[str, str]:
    """The tags a template gives a resource (a Key/Value list, or a map for API Gateway V2)."""
    tags = resource.get("Properties", {}).get("Tags") or {}
    if isinstance(tags, dict):
        return {str(k): str(v) for k, v in tags.items()}
    return {str(t["Key"]): str(t["Value"]) for t in tags}


def request_context(
    resource: dict[str, Any], handler: str, permission: str, arn: str, *, tagging: bool
) -> Iterator[Context]:
    """The condition keys the provider's call carries (one context per distinct request).

    Request tags (aws:RequestTag/*, aws:TagKeys) ride on a call that creates or tags; resource
    tags (aws:ResourceTag/*) only on a resource that exists: not on the call creating it, nor on
    an ARN pattern. A key the provider does not send is absent, and AWS fails a condition on it."""
    kind = resource["Type"]
    service, name = permission.lower().split(":", 1)
    tags = resource_tags(resource)
    creating = handler == "create" and (name.startswith(CREATING) or (service == "apigateway" and name == "post"))
    context: dict[str, str | tuple[str, ...]] = {}
    if tags and (tagging or creating) and handler in ("create", "update"):
        context |= {f"aws:RequestTag/{k}": v for k, v in tags.items()}
        context["aws:TagKeys"] = tuple(sorted(tags))
    tag_on_create = handler == "create" and tagging  # tags the resource being created (KMS: TagResource)
    if tags and not (creating or tag_on_create) and "*" not in arn:
        context |= {f"aws:ResourceTag/{k}": v for k, v in tags.items()}
    if permission.lower() == "iam:passrole":
        if kind not in PASSED_TO:
            raise KeyError(f"the gate does not know whom {kind} passes a role to: teach PASSED_TO")
        context["iam:PassedToService"] = PASSED_TO[kind]
    if kind == "AWS::Lambda::Function" and service in ("kms", "s3"):
        context["aws:ViaAWSService"] = "true"  # Lambda reads the code, uses the key on the caller's behalf
        if service == "kms":
            context["kms:ViaService"] = f"lambda.{REGION}.amazonaws.com"
    if kind == "AWS::IAM::Role" and name in ("attachrolepolicy", "detachrolepolicy"):
        for policy in resource["Properties"].get("ManagedPolicyArns") or []:
            yield tuple(sorted({**context, "iam:PolicyARN": str(policy)}.items()))
        return  # a role without managed policies attaches none
    yield tuple(sorted(context.items()))


RUNNER_ARN = f"arn:{PARTITION}:lambda:{REGION}:{ACCOUNT}:function:{Names('cc').runner}"
SAMPLE_ID = "0f1e2d3c"  # what a `*` in a declared resource stands for (a stack id, a change-set name)


def runner_checks(option: Option, rollout_parameters: dict[str, str]) -> Iterator[Check]:
    """Every call every step of a plan for this option declares (rollout/steps.py), as the runner
    makes it; the key on each environment write; the state machine's one call, the runner."""
    prefix = rollout_parameters.get("NamePrefix", "cc")
    consumers = tuple(arn for arn in rollout_parameters.get("EndpointConsumerArns", "").split(",") if arn)
    functions = [_arn("lambda", f"function:{Names(prefix).function(f.suffix)}") for f in HANDLER_FUNCTIONS]
    settings = SimpleNamespace(
        migrate=True,
        name="gate",
        region=REGION,
        stacks=STACKS,
        bake_seconds=60,
        parameters={"compute": option.parameters("compute"), "websocket": option.websocket},
    )
    observed = Observed(
        ACCOUNT,
        PARTITION,
        dict.fromkeys(STACKS),
        f"arn:{PARTITION}:iam::{ACCOUNT}:role/logging",
        tuple(Consumer(arn, arn, f"arn:{PARTITION}:iam::{ACCOUNT}:role/r") for arn in consumers),
    )
    urls = {stem: f"https://{BUCKET}.s3.{REGION}.amazonaws.com/{template_key(stem, '')}" for stem in STACKS}
    plan = resolve(
        settings,
        observed,
        Artifacts(BUCKET, CODE["CodeS3Key"], urls, dict.fromkeys(STACKS, "")),
        run_id="1-a",
        role_arn=SERVICE_ROLE_ARN,
        bake_seconds=60,
    )
    # The execution's last state releases the environment's lock (rollout/unlock_step.py).
    plan = with_release(plan, rollout_parameters["RunnerCodeBucket"])
    key = rollout_parameters.get("EnvironmentKmsKeyArn", "")
    for step in plan.steps:
        for call in step.calls(plan.where):
            own = call.action.startswith("lambda:") and call.resource.endswith("-*")
            for arn in functions if own else [call.resource.replace("*", SAMPLE_ID)]:
                yield Check("RunnerRole", step.name, "step", call.action, arn, _runner_context(step, call.action))
                if key and call.action == "lambda:UpdateFunctionConfiguration":
                    via = (("aws:ViaAWSService", "true"), ("kms:ViaService", f"lambda.{REGION}.amazonaws.com"))
                    for kms in ("kms:Decrypt", "kms:Encrypt", "kms:CreateGrant"):
                        yield Check("RunnerRole", step.name, "step", kms, key, via)
    yield Check("StateMachineRole", "every Task", "task", "lambda:InvokeFunction", RUNNER_ARN)


def _runner_context(step: Any, action: str) -> Context:
    """The condition keys the runner's call carries, as AWS documents them for the call."""
    if action == "cloudformation:CreateChangeSet":
        return (("cloudformation:RoleArn", step.role_arn), ("cloudformation:TemplateUrl", step.template_url))
    if action == "iam:PassRole":
        return (("iam:PassedToService", "cloudformation.amazonaws.com"),)
    if action == "s3:GetObject":  # CloudFormation reads the TemplateURL on the caller's behalf
        return (("aws:CalledVia", ("cloudformation.amazonaws.com",)), ("aws:ViaAWSService", "true"))
    return ()


ROLLOUT_STACK = "cc-websocket-rollout"


def rollout_role_arn(logical: str, stack: str = ROLLOUT_STACK) -> str:
    """A rollout role's physical ARN: CloudFormation names it <stack>-<logical>-<suffix>, under its path."""
    return f"arn:{PARTITION}:iam::{ACCOUNT}:role{ROLLOUT_ROLE_PATH}{stack}-{logical}-GENERATED"


SERVICE_ROLE_ARN = rollout_role_arn("CloudFormationRole")


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
    condition_keys: Counter[str] = field(default_factory=Counter)  # requests carrying each key
    disagreements: list[str] = field(default_factory=list)  # the two evaluators differ
    unvalidated: int = 0  # decided by iam-simulate without its resource-type validation
    second_opinion: bool = False


NODE_DIR = Path(__file__).with_name("node")
SIMULATE = NODE_DIR / "simulate.mjs"
# The key policy the gate assumes on every key: the account's root delegates to IAM policies
# (AlarmTopicKey's own; the default for the environment and log keys an environment passes).
DELEGATING_KEY_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:{PARTITION}:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        }
    ],
}
ROLE_PRINCIPALS = {role: rollout_role_arn(role) for role in ("CloudFormationRole", "RunnerRole", "StateMachineRole")}


def second_opinion(
    decided: list[tuple[str, Check, bool]], policy_sets: dict[str, list[dict[str, Any]]], report: Report
) -> list[str]:
    """@cloud-copilot/iam-simulate decides the same requests (one node process for all): the
    requests it decides differently, or refuses, each named."""
    if not (NODE_DIR / "node_modules" / "@cloud-copilot" / "iam-simulate").is_dir():
        raise RuntimeError(f"{NODE_DIR}/node_modules is missing: run `npm ci --prefix {NODE_DIR}` (scripts/test does)")
    requests = []
    for policy_set, check, _ in decided:
        context = {k: list(v) if isinstance(v, tuple) else v for k, v in check.context}
        kms_key = check.arn.startswith(f"arn:{PARTITION}:kms:") and ":key/" in check.arn
        requests.append(
            {
                "set": policy_set,
                "principal": ROLE_PRINCIPALS[check.role],
                "action": check.action,
                "resource": check.arn,
                "account": ACCOUNT,
                "context": context,
                **({"resourcePolicy": DELEGATING_KEY_POLICY} if kms_key else {}),
            }
        )
    completed = subprocess.run(
        ["node", str(SIMULATE)],
        input=json.dumps({"policySets": policy_sets, "requests": requests}),
        capture_output=True,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"iam-simulate failed: {completed.stderr.strip()}")
    found = []
    for (_, check, ours), theirs in zip(decided, json.loads(completed.stdout), strict=True):
        report.unvalidated += bool(theirs.get("unvalidated"))
        if theirs["result"] == "error":
            found.append(f"{check.explain()}: iam-simulate refused the request: {theirs['detail']}")
        elif (theirs["result"] == "Allowed") != ours:
            verdict = "allows" if ours else "denies"
            found.append(f"{check.explain()}: the gate {verdict}, iam-simulate says {theirs['result']}")
    return found


def run(
    exceptions_path: Path = EXCEPTIONS_FILE,
    rollout_override: dict[str, Any] | None = None,
    *,
    second: bool = False,
) -> Report:
    """Every check under every option; with `second`, iam-simulate decides them too."""
    templates = {stem: template.to_dict() for stem, template in build_all().items()}
    rollout = rollout_override or templates["rollout"]
    exceptions = load_exceptions(exceptions_path)
    used: set[tuple[str, str]] = set()
    report = Report(second_opinion=second)
    decided: list[tuple[str, Check, bool]] = []
    policy_sets: dict[str, list[dict[str, Any]]] = {}
    for option in OPTIONS:
        rollout_parameters = {**STACK_NAMES, **option.parameters("rollout")}
        documents = {
            role: role_documents(rollout, rollout_parameters, role)
            for role in ("CloudFormationRole", "RunnerRole", "StateMachineRole")
        }
        policy_sets |= {f"{option.name}/{role}": docs for role, docs in documents.items()}
        checks = [*stack_checks(option, templates, exceptions, used), *runner_checks(option, rollout_parameters)]
        for check in checks:
            arn = SERVICE_ROLE_ARN if check.arn == "CloudFormationRole" else check.arn
            check = Check(check.role, check.resource, check.handler, check.action, arn, check.context)
            report.checked += 1
            report.resources.add(check.resource)
            report.condition_keys.update(_key_family(k) for k, _ in check.context)
            verdict = allowed(documents[check.role], check.action, arn, dict(check.context))
            decided.append((f"{option.name}/{check.role}", check, verdict))
            if not verdict:
                report.misses.append(check)
        report.by_option[option.name] = len(checks)
    if second:
        report.disagreements = second_opinion(decided, policy_sets, report)
    report.unused_exceptions = sorted(
        f"{e.resource_type}: {action}"
        for e in exceptions
        for action in e.actions
        if (e.resource_type, action) not in used
    )
    return report


def _key_family(key: str) -> str:
    """aws:RequestTag/Application -> aws:RequestTag/* (the report counts families)."""
    return key.split("/", 1)[0] + "/*" if "/" in key else key


STACK_NAMES = {
    "ComputeStackName": STACKS["compute"],
    "WebSocketStackName": STACKS["websocket"],
    "RunnerCodeBucket": "cc-websocket-artifacts",
    "RunnerCodeKey": "runner/rollout-runner-0123.zip",
}


def main() -> int:
    report = run(second=True)
    misses = sorted({m.explain() for m in report.misses})
    for line in misses:
        print(f"MISSING {line}")
    for line in report.unused_exceptions:
        print(f"UNUSED EXCEPTION {line} (no resource under any option needs it: remove it)")
    for line in sorted(set(report.disagreements)):
        print(f"DISAGREEMENT {line}")
    exceptions = load_exceptions()
    print(
        f"permission gate: {report.checked} checks over {len(OPTIONS)} options "
        f"({len(report.resources)} resources and tasks), {len(misses)} missing, "
        f"{sum(len(e.actions) for e in exceptions)} excepted permissions in {EXCEPTIONS_FILE.name}"
    )
    carried = ", ".join(f"{key} {count}" for key, count in sorted(report.condition_keys.items()))
    print(f"condition keys (requests carrying each): {carried or 'none'}")
    print(
        f"second evaluator (@cloud-copilot/iam-simulate): {len(set(report.disagreements))} disagreements over "
        f"{report.checked} requests ({report.unvalidated} without its resource-type tables: API Gateway V2 paths)"
    )
    return 1 if misses or report.unused_exceptions or report.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
