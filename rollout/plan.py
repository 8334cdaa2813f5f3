"""The rollout plan: which stacks, in which order, and how outputs feed parameters.

Defined once, as data: the local engine (`rollout.engine`) executes it with boto3, and the
Step Functions definition is generated from it, so stage order and wiring cannot drift.

1. compute   -> the handler functions (its ManagementEndpoint comes from the websocket stack
                once that exists, so a later compute deploy never erases the endpoint);
2. websocket -> the API, fed the compute stack's function ARNs and role name;
3. endpoint  -> AWS_WEBSOCKET_API_GATEWAY_ENDPOINT merged into every handler function, and
                carried into the compute stack's ManagementEndpoint parameter.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.model import ENDPOINT_VARIABLE, HANDLER_FUNCTIONS, ROUTE_HANDLERS

# Stage -> template stem, in deploy order.
STACK_TEMPLATES = {"compute": "compute", "websocket": "websocket"}

Source = tuple[str, str]  # (stage, output key)

# Stage -> {parameter: where its value comes from}.
STACK_INPUTS: dict[str, dict[str, Source]] = {
    "compute": {"ManagementEndpoint": ("websocket", "WebSocketManagementEndpoint")},
    "websocket": {
        **{f.arn_parameter: ("compute", f"{f.logical}FunctionArn") for f in ROUTE_HANDLERS},
        "HandlersRoleName": ("compute", "HandlersRoleName"),
    },
}
ARTIFACT_PARAMETERS = {"compute": ("CodeS3Bucket", "CodeS3Key")}
ROLLOUT_SET_PARAMETERS = {
    stage: set(STACK_INPUTS[stage]) | set(ARTIFACT_PARAMETERS.get(stage, ()))
    for stage in STACK_TEMPLATES
}


@dataclass(frozen=True)
class StackStage:
    stage: str
    template: str
    stack_name: str
    parameters: dict[str, str]  # from the environment's settings
    inputs: dict[str, Source]


@dataclass(frozen=True)
class EndpointUpdate:
    variable: str
    value_from: Source
    functions_from: tuple[Source, ...]
    carried_by: tuple[str, str]  # (stage, parameter) that keeps the value in CloudFormation


@dataclass(frozen=True)
class Plan:
    environment: str
    region: str
    artifacts_bucket: str
    stacks: tuple[StackStage, ...]
    endpoint: EndpointUpdate

    def stack(self, stage: str) -> StackStage:
        return next(s for s in self.stacks if s.stage == stage)


ENDPOINT_UPDATE = EndpointUpdate(
    variable=ENDPOINT_VARIABLE,
    value_from=("websocket", "WebSocketManagementEndpoint"),
    functions_from=tuple(("compute", f"{f.logical}FunctionName") for f in HANDLER_FUNCTIONS),
    carried_by=("compute", "ManagementEndpoint"),
)


def make_plan(environment: str, region: str, bucket: str, stacks: dict[str, str],
              parameters: dict[str, dict[str, str]]) -> Plan:  # fmt: skip
    return Plan(
        environment=environment,
        region=region,
        artifacts_bucket=bucket,
        stacks=tuple(
            StackStage(
                stage, template, stacks[stage], dict(parameters.get(stage, {})), STACK_INPUTS[stage]
            )
            for stage, template in STACK_TEMPLATES.items()
        ),
        endpoint=ENDPOINT_UPDATE,
    )


def wired_parameters(stage: StackStage, outputs: dict[str, dict[str, str]],
                     base: dict[str, str] | None = None) -> dict[str, str]:  # fmt: skip
    """The stage's parameters (from settings, or `base`) plus every input whose source exists."""
    wired = {
        param: outputs[src][key]
        for param, (src, key) in stage.inputs.items()
        if key in outputs.get(src, {})
    }
    return (stage.parameters if base is None else base) | wired
