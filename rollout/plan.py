"""The rollout plan for one environment: the stages of `generator.stages` with the
environment's stack names and parameters, built once, immutable."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from generator.stages import (
    ENDPOINT_UPDATE,
    STACK_INPUTS,
    STACK_TEMPLATES,
    EndpointUpdate,
    Source,
)


@dataclass(frozen=True)
class StackStage:
    stage: str
    template: str
    stack_name: str
    parameters: Mapping[str, str]  # from the environment's settings (read-only)
    inputs: Mapping[str, Source]


@dataclass(frozen=True)
class Plan:
    environment: str
    region: str
    artifacts_bucket: str
    stacks: tuple[StackStage, ...]
    endpoint: EndpointUpdate
    bake_seconds: int = 0  # how long the bake step watches the alarms (0: skipped)

    @property
    def name_prefix(self) -> str:
        return str(self.stack("compute").parameters.get("NamePrefix", "cc"))

    def stack(self, stage: str) -> StackStage:
        return next(s for s in self.stacks if s.stage == stage)


def frozen(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy: a plan is built once and never changed."""
    return MappingProxyType(dict(values))


def make_plan(
    environment: str,
    region: str,
    bucket: str,
    stacks: dict[str, str],
    parameters: dict[str, dict[str, str]],
    bake_seconds: int = 0,
) -> Plan:
    return Plan(
        environment=environment,
        region=region,
        artifacts_bucket=bucket,
        stacks=tuple(
            StackStage(
                stage,
                template,
                stacks[stage],
                frozen(parameters.get(stage, {})),
                frozen(STACK_INPUTS[stage]),
            )
            for stage, template in STACK_TEMPLATES.items()
        ),
        endpoint=ENDPOINT_UPDATE,
        bake_seconds=bake_seconds,
    )


def wired_parameters(
    stage: StackStage, outputs: dict[str, dict[str, str]], base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The stage's parameters (from settings, or `base`) plus every input whose source exists."""
    wired = {param: outputs[src][key] for param, (src, key) in stage.inputs.items() if key in outputs.get(src, {})}
    return {**(stage.parameters if base is None else base), **wired}
