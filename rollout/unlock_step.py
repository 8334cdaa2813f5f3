"""The release of the environment's lock (rollout/lock.py) by the Step Functions execution itself:
its last state on success and on failure invokes the runner with this step, so the lock goes when
the execution ends, whether or not anyone still follows it (it would otherwise stay until its
expiry, or until the next run sees the execution has ended). Only the lock of this run (its run
id) is removed; a lock someone else took over is left alone.

The step is added to the plan by the Step Functions engine only (`with_release`); the local engine
releases its lock itself when the run ends. Its calls are declared like every step's, and the
runner's role is generated from them (`s3:GetObject`, `s3:DeleteObject` on `locks/*` of the
environment's bucket, the rollout stack's `RunnerCodeBucket`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from rollout.steps import KINDS, Call, Context, Progress, Step, Where

NAME = "unlock"  # the step's name, as the state machine's release states invoke it


@dataclass(frozen=True)
class ReleaseLock(Step):
    """Remove `locks/<environment>.json` from `bucket` if it is still this run's."""

    bucket: str
    environment: str
    run_id: str
    kind: ClassVar[str] = "unlock"

    @property
    def key(self) -> str:
        return f"locks/{self.environment}.json"

    def description(self) -> str:
        return f"release the lock s3://{self.bucket}/{self.key}"

    def calls(self, where: Where) -> list[Call]:
        lock = f"arn:{where.partition}:s3:::{self.bucket}/{self.key}"
        return [Call("s3:GetObject", lock), Call("s3:DeleteObject", lock)]

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        s3 = ctx.client("s3")
        try:
            held = json.loads(s3.get_object(Bucket=self.bucket, Key=self.key)["Body"].read())
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) not in ("NoSuchKey", "404"):
                raise
            held = None
        if held is None or held.get("run_id") != self.run_id:
            detail = "no lock held" if held is None else f"held by run {held.get('run_id')}: left alone"
            return Progress(True, result={"stage": self.name, "action": "unchanged", "detail": detail})
        s3.delete_object(Bucket=self.bucket, Key=self.key)
        ctx.report.line(self.name, f"released s3://{self.bucket}/{self.key}")
        return Progress(True, result={"stage": self.name, "action": "released", "detail": self.key})

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        raise AssertionError("the release finishes in start")  # pragma: no cover


KINDS[ReleaseLock.kind] = ReleaseLock  # a plan document names it by kind


def with_release(plan: Any, bucket: str) -> Any:
    """The plan with its lock's release appended (the Step Functions engine's plan)."""
    return replace(plan, steps=(*plan.steps, ReleaseLock(NAME, 0, bucket, plan.environment, plan.run_id)))
