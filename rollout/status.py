"""`python -m rollout status --env NAME`: what is deployed for an environment, read-only.

Each stack's status and last update, the handlers artifact the compute stack runs, the
management endpoint each function carries (and any that differs from the API's), the code each
function runs (its CodeSha256 against the artifact its stack names), each stack's drift
(DetectStackDrift), the alarms' states, and the management endpoint and wss:// URL. Read calls
only (and drift detections, which change nothing). `healthy` is false when a stack is missing or
not in a stable state, a function does not carry the API's endpoint or runs other code, the
API may not invoke a route function (its permission went with a re-created function), a
resource drifted, a shift stopped part-way, or an alarm is in ALARM; each such finding says what
to do. A stack whose
last update rolled back (UPDATE_ROLLBACK_COMPLETE) is stable: a note says so.
"""

from __future__ import annotations

import base64
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from generator.model import ALIAS, ENDPOINT_VARIABLE
from generator.stages import ENDPOINT_UPDATE, SHIFT_PARAMETERS, SHIFTED_FUNCTIONS, STACK_TEMPLATES, SUCCESS, UPDATABLE
from rollout import as_settings, invoke_permissions, live
from rollout.aws import Aws
from rollout.bake import alarm_prefix
from rollout.settings import EnvironmentSettings
from rollout.stacks import describe, iso_time

ARTIFACT_HASH = re.compile(r"-([0-9a-f]{16,64})\.zip$")


@dataclass
class StackStatus:
    stage: str
    name: str
    status: str  # the stack's status, or DOES_NOT_EXIST
    last_update: str = ""  # ISO 8601, UTC
    reason: str = ""
    protected: bool = False  # termination protection (rollout/protection.py)


@dataclass
class FunctionEndpoint:
    function: str
    endpoint: str  # what the function carries ("" when unset, "(not found)" when no such function)
    matches: bool


@dataclass
class AliasState:
    function: str
    version: str  # the version the alias serves (all of it, less `weights`)
    weights: dict[str, float]  # other versions and the share of invocations each gets
    release_version: str  # the version the compute stack's last update published


@dataclass
class AlarmState:
    name: str
    state: str
    reason: str
    since: str


@dataclass
class Status:
    environment: str
    region: str
    account: str
    healthy: bool = True
    stacks: list[StackStatus] = field(default_factory=list)
    artifact: dict[str, str] = field(default_factory=dict)
    management_endpoint: str = ""
    websocket_url: str = ""
    functions: list[FunctionEndpoint] = field(default_factory=list)
    aliases: list[AliasState] = field(default_factory=list)  # each handler's live alias
    alarms: list[AlarmState] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # what is wrong, and what to do
    notes: list[str] = field(default_factory=list)  # worth knowing, not wrong
    code: dict[str, str] = field(default_factory=dict)  # function -> SHA-256 (hex) of the code it runs
    drift: dict[str, list[str]] = field(default_factory=dict)  # stack -> drifted resources

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _carried(lambda_client: Any, function: str) -> str:
    try:
        configuration = lambda_client.get_function_configuration(FunctionName=function)
    except ClientError as error:
        if error.response["Error"]["Code"] == "ResourceNotFoundException":
            return "(not found)"
        raise
    return str(configuration.get("Environment", {}).get("Variables", {}).get(ENDPOINT_VARIABLE, ""))


def read(settings: EnvironmentSettings, aws: Aws) -> Status:
    status = Status(settings.name, settings.region, aws.identity()["account"])
    cloudformation = aws.client("cloudformation")
    outputs: dict[str, dict[str, str]] = {}
    parameters: dict[str, dict[str, str]] = {}
    for stage in STACK_TEMPLATES:
        name = settings.stacks[stage]
        stack = describe(cloudformation, name)
        found = (
            StackStatus(stage, name, "DOES_NOT_EXIST")
            if stack is None
            else StackStatus(stage, name, stack.status, stack.last_update, stack.reason, stack.protected)
        )
        outputs[stage] = stack.outputs if stack else {}
        parameters[stage] = stack.parameters if stack else {}
        status.stacks.append(found)
        if found.status == "DOES_NOT_EXIST":
            status.findings.append(
                f"stack {found.name} does not exist: run `python -m rollout deploy --env {settings.name}`"
            )
        elif found.status == "UPDATE_ROLLBACK_COMPLETE":  # stable: it holds its previous template and parameters
            status.notes.append(
                f"stack {found.name}: its last update failed and was rolled back"
                + (f" ({found.reason})" if found.reason else "")
                + f"; it holds the release before it (`python -m rollout deploy --env {settings.name} --dry-run` "
                "shows whether that is what the settings say)"
            )
        elif found.status not in SUCCESS:
            status.findings.append(
                f"stack {found.name} is {found.status}"
                + (f" ({found.reason})" if found.reason else "")
                + ": see its events; `python -m rollout deploy` resumes or re-creates it"
            )
    for found in status.stacks:  # AWS as the settings say: what `deploy` would apply, if anything
        if found.status in UPDATABLE:
            status.findings += [
                f"stack {found.name} does not hold the settings: {line}; "
                f"`python -m rollout deploy --env {settings.name}` applies them"
                for line in as_settings.differences(settings, found.stage, parameters[found.stage])
            ]
    key = parameters["compute"].get("CodeS3Key", "")
    if key:
        digest = ARTIFACT_HASH.search(key)
        status.artifact = {"s3_key": key, "sha256_prefix": digest.group(1) if digest else ""}
        _code_findings(status, aws, settings, key)
    _aliases(status, aws, settings, outputs["compute"], parameters["compute"])
    _invoke_findings(status, aws, settings, parameters["websocket"], outputs["websocket"])
    stable = [s.name for s in status.stacks if s.status in UPDATABLE]
    status.drift = live.drift(cloudformation, stable, time.sleep, 2.0) if stable else {}
    for stack_name, drifted in status.drift.items():
        status.findings += [
            f"stack {stack_name} drifted: {line}: undo the change by hand (a deploy only changes what its plan changes)"
            for line in drifted
        ]
    websocket = outputs["websocket"]
    status.management_endpoint = websocket.get(ENDPOINT_UPDATE.value_from[1], "")
    status.websocket_url = websocket.get("WebSocketStageInvokeUrl", "")
    functions = [outputs[stage][k] for stage, k in ENDPOINT_UPDATE.functions_from if k in outputs.get(stage, {})]
    lambda_client = aws.client("lambda")
    carriers = [*functions, *settings.endpoint_consumers]
    for function, carried in zip(carriers, live.read_each(lambda f: _carried(lambda_client, f), carriers), strict=True):
        matches = bool(status.management_endpoint) and carried == status.management_endpoint
        status.functions.append(FunctionEndpoint(function, carried, matches))
        if status.management_endpoint and not matches:
            status.findings.append(
                f"{function} carries {ENDPOINT_VARIABLE}={carried or '(unset)'}, not "
                f"{status.management_endpoint}: run the rollout again (its endpoint stage sets it)"
            )
    cloudwatch = aws.client("cloudwatch")
    pages = cloudwatch.get_paginator("describe_alarms").paginate(
        AlarmNamePrefix=alarm_prefix(settings.parameters.get("compute", {}).get("NamePrefix", "cc"))
    )
    for page in pages:
        for alarm in page.get("MetricAlarms", []):
            state = AlarmState(
                alarm["AlarmName"],
                alarm["StateValue"],
                alarm.get("StateReason", ""),
                iso_time(alarm.get("StateUpdatedTimestamp")),
            )
            status.alarms.append(state)
            if state.state == "ALARM":
                status.findings.append(f"alarm {state.name} is in ALARM ({state.reason}): see the README's alarm table")
    status.healthy = not status.findings
    return status


def _aliases(
    status: Status, aws: Aws, settings: EnvironmentSettings, outputs: dict[str, str], parameters: dict[str, str]
) -> None:
    """Each live alias as Lambda holds it; a shift the compute stack holds part-way is a finding."""
    lambda_client = aws.client("lambda")
    for function in SHIFTED_FUNCTIONS:
        name = outputs.get(f"{function.logical}FunctionName")
        if not name:
            continue
        try:
            alias = lambda_client.get_alias(FunctionName=name, Name=ALIAS)
        except ClientError as error:
            code = error.response["Error"]["Code"]
            if code.startswith("AccessDenied"):  # a policy from before the aliases: say what to grant
                status.findings.append(
                    f"the live aliases cannot be read ({code}): grant lambda:GetAlias on {name} "
                    "(`python -m rollout policy` includes it)"
                )
                return
            if code != "ResourceNotFoundException":
                raise
            status.findings.append(f"{name} has no {ALIAS} alias: the API cannot invoke it; run the rollout again")
            continue
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        release = outputs.get(f"{function.logical}FunctionVersion", "")
        status.aliases.append(
            AliasState(name, alias["FunctionVersion"], {k: float(v) for k, v in weights.items()}, release)
        )
    shift_from, weight = (parameters.get(p, "") for p in SHIFT_PARAMETERS["compute"])
    if not shift_from:
        return
    share = float(weight or 0)
    where = (
        f"the live aliases send {share:.0%} of invocations to the new versions and the rest to versions {shift_from}"
        if share
        else f"its shift was rolled back: the live aliases serve versions {shift_from}, the new versions nothing"
    )
    status.findings.append(
        f"the last release is not fully out: {where}; `python -m rollout deploy --env {settings.name}` "
        f"shifts it again, `python -m rollout rollback --env {settings.name}` returns to the release before"
    )


def _invoke_findings(
    status: Status, aws: Aws, settings: EnvironmentSettings, parameters: dict[str, str], outputs: dict[str, str]
) -> None:
    """Each route function the API can no longer invoke (its permission went with a re-created function)."""
    try:
        cannot = invoke_permissions.missing(aws.client("lambda"), parameters, outputs)
    except ClientError as error:
        code = error.response["Error"]["Code"]
        if not code.startswith("AccessDenied"):
            raise
        status.findings.append(
            f"the functions' invoke permissions cannot be read ({code}): grant lambda:GetPolicy "
            "(`python -m rollout policy` includes it)"
        )
        return
    status.findings += [
        f"the API cannot invoke {gone.function} for {gone.route_key}: its invoke permission went with an earlier "
        f"function of that name (re-created after {settings.stacks['websocket']} last changed, which still lists "
        f"it, so a deploy does not restore it); restore it: {gone.restore_command()}"
        for gone in cannot
    ]


def _code_findings(status: Status, aws: Aws, settings: EnvironmentSettings, key: str) -> None:
    """Each function of the compute stack whose code (CodeSha256) is not the artifact its stack names."""
    prefix = status.artifact["sha256_prefix"]
    lambda_client = aws.client("lambda")
    functions = live.functions_of(aws.client("cloudformation"), settings.stacks["compute"])
    for function, configuration in zip(functions, live.configurations(lambda_client, functions), strict=True):
        hexdigest = base64.b64decode(configuration["CodeSha256"]).hex()
        status.code[function] = hexdigest
        if prefix and not hexdigest.startswith(prefix):
            status.findings.append(
                f"{function} runs code {hexdigest[:20]}..., not {key}: "
                f"`python -m rollout deploy --env {settings.name}` restores it"
            )


def lines(status: Status) -> list[str]:
    """The status as the terminal shows it."""
    out = [
        f"environment {status.environment} in {status.region} (account {status.account}): "
        + ("healthy" if status.healthy else f"{len(status.findings)} finding(s)")
    ]
    for stack in status.stacks:
        when = f"  last update {stack.last_update}" if stack.last_update else ""
        guard = "" if stack.status == "DOES_NOT_EXIST" else "  protected" if stack.protected else "  UNPROTECTED"
        out.append(f"  {stack.stage:9} {stack.name:28} {stack.status}{when}{guard}")
    if status.artifact:
        out.append(f"  artifact  {status.artifact['s3_key']}")
    if status.management_endpoint:
        carrying = sum(f.matches for f in status.functions)
        out.append(
            f"  endpoint  {status.management_endpoint} ({carrying} of {len(status.functions)} function(s) carry it)"
        )
        out.append(f"  wss url   {status.websocket_url}")
    for alias in status.aliases:
        shares = ", ".join(f"{share:.0%} to version {version}" for version, share in sorted(alias.weights.items()))
        out.append(
            f"  alias     {alias.function}:{ALIAS} -> version {alias.version}" + (f" ({shares})" if shares else "")
        )
    counts: dict[str, int] = {}
    for alarm in status.alarms:
        counts[alarm.state] = counts.get(alarm.state, 0) + 1
    out.append(
        f"  alarms    {len(status.alarms)}"
        + (": " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) if counts else "")
    )
    out += [f"  - {note}" for note in status.notes]
    out += [f"  ! {finding}" for finding in status.findings]
    return out
