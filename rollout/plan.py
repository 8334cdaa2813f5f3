"""One resolution, one plan: `resolve(settings, what AWS holds now)` decides every step's final
inputs once (the account's logging role, the endpoint consumers' roles, where the code and
templates are, the service role every change set names, outputs wired as references to earlier
steps) and returns the plan: an ordered list of typed steps (`rollout.steps`). Both orchestrators
run exactly this list; a dry run prints it with each stack's change set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from generator.model import HANDLER_FUNCTIONS, NOTIFY_FUNCTION_VARIABLE
from generator.names import Names
from generator.stages import (
    ACCOUNT_ROLE_ARN_OUTPUT,
    ACCOUNT_ROLE_LOGICAL_ID,
    ACCOUNT_ROLE_PARAMETER,
    ARTIFACT_PARAMETERS,
    CONSUMER_ROLES_PARAMETER,
    ENDPOINT_UPDATE,
    ROLLBACK_TRIGGER_ALARMS,
    STACK_INPUTS,
    STACK_TEMPLATES,
    STEP_ORDER,
    VERSION_PARAMETERS,
)
from rollout import protection, release_plan
from rollout.prune_step import PruneVersions  # also registers its kind for Plan.from_dict
from rollout.shift_step import Shift, weights_of
from rollout.stacks import StackState
from rollout.steps import (
    ACCOUNT_ROLE_SETTLE_SECONDS,
    Bake,
    Call,
    DeployStack,
    Migrate,
    SettleRole,
    SetVariables,
    Step,
    Where,
    configuration_digest,
    from_dict,
    ref,
    template_sha256,
)
from rollout.unlock_step import NAME as UNLOCK_STEP
from rollout.unlock_step import ReleaseLock  # also registers its kind for Plan.from_dict

STACK_WAIT_SECONDS = 5.0  # between looks at a stack inside AWS (the local executor looks every --poll-seconds)


class PlanRefused(RuntimeError):
    """What AWS holds rules this plan out; nothing was changed. The text says what to do."""


@dataclass(frozen=True)
class Consumer:
    """A function outside the stacks that gets the endpoint, and the role it runs as."""

    function: str  # as the settings name it
    function_arn: str
    role_arn: str

    @property
    def role_name(self) -> str:
        return self.role_arn.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Observed:
    """What AWS holds now, read once before anything changes."""

    account: str
    partition: str
    stacks: dict[str, StackState | None]  # by stage
    account_role: str  # the API Gateway account's CloudWatch role ARN ("" : none)
    consumers: tuple[Consumer, ...] = ()
    rollout: StackState | None = None  # the environment's rollout stack (Step Functions engine)


@dataclass(frozen=True)
class Artifacts:
    """Where the handlers' code and the templates are (content-hashed keys), decided before upload."""

    bucket: str
    code_key: str
    template_urls: dict[str, str]  # stem -> TemplateURL
    template_texts: dict[str, str] = field(repr=False, default_factory=dict)
    code_sha256: str = ""  # Lambda's CodeSha256 of the handlers zip
    defaults: dict[str, dict[str, str]] = field(default_factory=dict)  # stem -> its parameters' defaults
    no_echo: dict[str, tuple[str, ...]] = field(default_factory=dict)  # stem -> its NoEcho parameters


@dataclass(frozen=True)
class Plan:
    environment: str
    region: str
    account: str
    partition: str
    artifacts_bucket: str
    role_arn: str  # the CloudFormation service role of every change set ("" : none, the caller's rights)
    run_id: str
    steps: tuple[Step, ...]
    notes: tuple[str, ...] = ()  # decisions worth a line (the account role, the consumers)

    @property
    def where(self) -> Where:
        return Where(self.partition, self.region, self.account)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def calls(self) -> list[Call]:
        """Every call the steps may make, each once (the runner's role, the release engineer's policy)."""
        return sorted(
            {call for step in self.steps for call in step.calls(self.where)}, key=lambda c: (c.action, c.resource)
        )

    def lines(self) -> list[str]:
        role = self.role_arn or "none (the caller's own permissions)"
        head = [
            f"plan {self.run_id}: {len(self.steps)} step(s); service role {role}; artifacts in {self.artifacts_bucket}"
        ]
        return head + [f"  {i}. {s.name}: {s.description()}" for i, s in enumerate(self.steps, 1)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "region": self.region,
            "account": self.account,
            "partition": self.partition,
            "artifacts_bucket": self.artifacts_bucket,
            "role_arn": self.role_arn,
            "run_id": self.run_id,
            "steps": [s.to_dict() for s in self.steps],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        fields = {k: v for k, v in data.items() if k != "steps"}
        return cls(**fields, steps=tuple(from_dict(s) for s in data["steps"]))


def account_role_decision(explicit: str | None, current_role: str, our_stacks: tuple[str, ...]) -> tuple[str, str]:
    """CreateApiGatewayAccountRole for this account and region, and the line that says why.

    Access logging (always on) needs the account's API Gateway CloudWatch role. An explicit
    setting is kept: `false` in an account without the role is refused (the stage would fail).
    Left unset, the compute stack creates the role when the account has none (or has this
    environment's: made by its compute stack, or by its websocket stack before the role moved),
    and otherwise keeps the role someone else set.
    """
    ours = any(f":role/{stack}-{ACCOUNT_ROLE_LOGICAL_ID}-" in current_role for stack in our_stacks)
    if explicit == "false":
        if not current_role:
            raise PlanRefused(
                "this account and region have no API Gateway CloudWatch role, and the stage's access "
                "logging needs one: set CreateApiGatewayAccountRole: true, or set a role first "
                "(aws apigateway update-account --patch-operations op=replace,path=/cloudwatchRoleArn,value=<role ARN>)"
            )
        return "false", f"API Gateway CloudWatch role: keeping {current_role} (CreateApiGatewayAccountRole false)"
    if explicit == "true":
        replaced = f"; it replaces the account's role {current_role}" if current_role and not ours else ""
        return "true", f"API Gateway CloudWatch role: set by this stack (CreateApiGatewayAccountRole true){replaced}"
    if current_role and not ours:
        return "false", f"API Gateway CloudWatch role: keeping {current_role} (CreateApiGatewayAccountRole false)"
    return "true", "API Gateway CloudWatch role: set by this stack (CreateApiGatewayAccountRole true)"


def service_role(observed: Observed) -> tuple[str, str | None]:
    """The service role and artifacts bucket every change set uses: the rollout stack's when the
    environment has one (so both engines run as the same role, and CloudFormation's kept role is
    never switched), else none and the environment's bucket (None: the settings' bucket)."""
    rollout = observed.rollout
    if rollout is not None and rollout.outputs.get("CloudFormationRoleArn"):
        return rollout.outputs["CloudFormationRoleArn"], rollout.outputs.get("ArtifactsBucketName")
    return "", None


def check_kept_roles(observed: Observed, stacks: dict[str, str], role_arn: str) -> None:
    """CloudFormation runs every operation that names no role as the role it last saw: a plan with no
    role for a stack bound to one would run as that role (and fail once it is gone). A plan that
    names a role replaces the kept one."""
    for stage, state in observed.stacks.items():
        if state is not None and state.role_arn and not role_arn:
            raise PlanRefused(
                f"stack {stacks[stage]} is bound to the service role {state.role_arn} (CloudFormation keeps the last "
                "role it was given) and this environment has no rollout stack whose role would replace it: deploy "
                "with --engine stepfunctions to (re-)create the rollout stack, whose role both engines then use"
            )


def resolve(
    settings: Any,
    observed: Observed,
    artifacts: Artifacts,
    *,
    run_id: str,
    role_arn: str,
    bake_seconds: int,
    poll_seconds: float = STACK_WAIT_SECONDS,
    settle_seconds: float = ACCOUNT_ROLE_SETTLE_SECONDS,
    recreate: frozenset[str] = frozenset(),
    allow_replacement: bool = False,
) -> Plan:
    """The plan: every parameter of every stack assembled here and nowhere else."""
    names = Names(settings.parameters.get("compute", {}).get("NamePrefix", "cc"))
    role_stage, role_parameter = ACCOUNT_ROLE_PARAMETER
    role_value, role_note = account_role_decision(
        settings.parameters.get(role_stage, {}).get(role_parameter),
        observed.account_role,
        (settings.stacks["compute"], settings.stacks["websocket"]),
    )
    # Every parameter given (a default too): a change set that omits one uses its default, which moto
    # does not see as a change, and the dry run shows each value that will hold.
    decided: dict[str, dict[str, Any]] = {
        stage: artifacts.defaults.get(stem, {}) | dict(settings.parameters.get(stage, {}))
        for stage, stem in STACK_TEMPLATES.items()
    }
    decided[role_stage][role_parameter] = role_value
    decided[CONSUMER_ROLES_PARAMETER[0]][CONSUMER_ROLES_PARAMETER[1]] = ",".join(
        sorted({c.role_name for c in observed.consumers})
    )
    for stage, keys in ARTIFACT_PARAMETERS.items():
        decided[stage].update(zip(keys, (artifacts.bucket, artifacts.code_key), strict=True))
    for stage, (code_sha, _) in VERSION_PARAMETERS.items():
        decided[stage][code_sha] = artifacts.code_sha256  # the digest: DeployStack, once its inputs are filled
    earlier: set[str] = set()
    for stage in STACK_TEMPLATES:
        for parameter, (source, key) in STACK_INPUTS[stage].items():
            if source in earlier:  # produced by an earlier step of this run
                decided[stage][parameter] = ref(source, key)
            else:  # produced by a later step: what AWS holds now ("" before it exists)
                state = observed.stacks.get(source)
                decided[stage][parameter] = state.outputs.get(key, "") if state else ""
        earlier.add(stage)

    release = getattr(settings, "release", None)
    old_versions = _shift_from(release, observed, decided["compute"], artifacts.code_sha256)
    decided["compute"].update({release_plan.SHIFT_FROM: old_versions, release_plan.WEIGHT: "0"})

    def stack_step(step_name: str, stage: str, parameters: dict[str, Any]) -> DeployStack:
        stem = STACK_TEMPLATES[stage]
        # The code is checked (and restored) by the stack's own step; carry's change set leaves it as it is.
        code = ARTIFACT_PARAMETERS.get(stage, ()) if step_name == stage else ()
        return DeployStack(
            step_name,
            poll_seconds,
            settings.stacks[stage],
            artifacts.template_urls[stem],
            template_sha256(artifacts.template_texts[stem]),
            parameters,
            role_arn,
            f"rollout-{run_id}",
            settings.stacks[stage] in recreate,
            artifacts.code_sha256 if code else "",
            code,
            names.functions if code else "",
            artifacts.no_echo.get(stem, ()),
            protect=True,
            stack_policy=protection.POLICY if stage == "websocket" else "",
            allow_replacement=allow_replacement,
            digest_parameter=VERSION_PARAMETERS[stage][1] if stage in VERSION_PARAMETERS else "",
            rollback_alarms=tuple(names.alarm_prefix + alarm for alarm in ROLLBACK_TRIGGER_ALARMS),
            monitoring_minutes=release.monitoring_minutes if release is not None else 0,
        )

    update = ENDPOINT_UPDATE
    endpoint = ref(*update.value_from)
    carried_stage, carried_parameter = update.carried_by
    consumers = tuple(c.function_arn for c in observed.consumers)
    notify = ref(*update.notify_from)
    steps: dict[str, Step] = {
        "compute": stack_step("compute", "compute", decided["compute"]),
        "websocket": stack_step("websocket", "websocket", decided["websocket"]),
        "endpoint": SetVariables(
            "endpoint",
            min(poll_seconds, 1.0),
            {update.variable: endpoint},
            (*(ref(*source) for source in update.functions_from), *consumers),
            {arn: {NOTIFY_FUNCTION_VARIABLE: notify} for arn in consumers},
            names.functions,
        ),
        "carry": stack_step("carry", carried_stage, {**decided[carried_stage], carried_parameter: endpoint}),
    }
    if settings.migrate:
        # The release's version, through the live alias (the migrate function is never shifted by weight).
        steps["migrate"] = Migrate("migrate", 0, ref("compute", "MigrateAliasArn"), names.function("migrate"))
    if role_value == "true":
        steps["settle"] = SettleRole(
            "settle", 0, ref("compute", ACCOUNT_ROLE_ARN_OUTPUT), f"{settings.stacks['compute']}-*", settle_seconds
        )
    if old_versions and release is not None:
        steps["shift"] = Shift(
            "shift",
            max(poll_seconds, release.seconds / 100) if release.seconds else poll_seconds,
            steps["carry"].to_dict(),
            old_versions,
            weights_of(release.strategy, release.percent),
            release.seconds,
            names.alarm_prefix,
            release.pre_traffic,
        )
    if bake_seconds > 0:
        wait = max(poll_seconds, bake_seconds / 100)  # a long bake looks less often: a bounded history
        steps["bake"] = Bake("bake", wait, names.alarm_prefix, bake_seconds)
    if release_plan.publishes(observed.stacks.get("compute"), artifacts.code_sha256, _digest(decided["compute"])):
        steps["prune"] = prune_step(settings.stacks["compute"], names.functions)
    consumer_note = ", ".join(f"{c.function} (role {c.role_name})" for c in observed.consumers)
    notes = (role_note, *((f"endpoint consumers: {consumer_note}",) if consumer_note else ()))
    return Plan(
        settings.name,
        settings.region,
        observed.account,
        observed.partition,
        artifacts.bucket,
        role_arn,
        run_id,
        tuple(steps[name] for name in STEP_ORDER if name in steps),
        notes,
    )


def _digest(compute: dict[str, Any]) -> str:
    return configuration_digest({k: v for k, v in compute.items() if isinstance(v, str)})


def _shift_from(release: Any, observed: Observed, compute: dict[str, Any], code_sha256: str) -> str:
    """The versions a canary or linear release shifts from ("" : all at once)."""
    shifts = bool(release is not None and release.shifts)
    return release_plan.shift_from(shifts, observed.stacks.get("compute"), code_sha256, _digest(compute))


def prune_step(compute_stack: str, functions_pattern: str) -> PruneVersions:
    functions = tuple(ref("compute", f"{f.logical}FunctionName") for f in HANDLER_FUNCTIONS)
    return PruneVersions("prune", 0, functions, compute_stack, functions_pattern)


def declared_calls(
    where: Where, name_prefix: str, stacks: dict[str, str], role_arn: str, bucket: str, lock_bucket: str = ""
) -> list[Call]:
    """The calls of every step any plan can hold, for names given as patterns or template
    references (`${ComputeStackName}`): what the runner's role allows, generated, never written.
    With `lock_bucket` (the environment's bucket), the execution's release of its lock too."""
    names, url = Names(name_prefix), f"https://{bucket}.s3.{where.region}.amazonaws.com/templates/*"
    steps: list[Step] = [
        DeployStack(
            stage,
            0,
            stacks[stage],
            url,
            "",
            {},
            role_arn,
            "rollout-*",
            functions_pattern=names.functions if stage in ARTIFACT_PARAMETERS else "",
            protect=True,
            rollback_alarms=("*",),
        )
        for stage in stacks
    ]
    steps += [
        SetVariables("endpoint", 0, {}, (), own_functions=names.functions),
        Bake("bake", 0, names.alarm_prefix, 1),
        Migrate("migrate", 0, "", names.function("migrate")),
        SettleRole("settle", 0, "", f"{stacks['compute']}-*"),
    ]
    steps.append(prune_step(stacks["compute"], names.functions))
    compute = next(step for step in steps if step.name == "compute")
    steps.append(Shift("shift", 0, compute.to_dict(), "", (), 0, names.alarm_prefix, "pre-traffic"))
    if lock_bucket:
        steps.append(ReleaseLock(UNLOCK_STEP, 0, lock_bucket, "*", ""))
    return sorted({call for step in steps for call in step.calls(where)}, key=lambda c: (c.action, c.resource))
