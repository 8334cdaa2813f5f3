"""What a rollout did, typed: built by the engines, printed by `Reporter.summary`, and written
as JSON with `--json` (the same keys, absent where they do not apply)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StageResult:
    stage: str  # a step of the plan (rollout.steps), or rollout | execution
    action: str  # created | updated | unchanged | planned | succeeded
    detail: str = ""
    stack: str | None = None
    changes: list[dict[str, str]] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)  # the endpoint stage: functions changed
    calls: dict[str, int] = field(default_factory=dict)  # the AWS calls the step made: "service:Operation target" -> n


@dataclass
class ArtifactSummary:
    s3_key: str
    sha256: str
    uploaded: bool


@dataclass
class Summary:
    environment: str
    region: str
    engine: str = "local"
    account: str = ""
    result: str = "failed"  # succeeded | planned | failed
    dry_run: bool = False
    stages: list[StageResult] = field(default_factory=list)
    artifact: ArtifactSummary | None = None
    management_endpoint: str = ""
    websocket_url: str = ""
    execution: str | None = None  # the Step Functions engine's execution ARN
    state_transitions: int | None = None
    state_machine_calls: dict[str, int] | None = None
    proof: dict[str, Any] | None = None  # what a rehearsal verified
    aws_calls: dict[str, Any] | None = None
    drift: dict[str, list[str]] = field(default_factory=dict)  # stack -> drifted resources, before the run

    def stage(self, name: str) -> StageResult:
        return next(s for s in self.stages if s.stage == name)

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}
