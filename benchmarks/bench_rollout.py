"""Rollout figures, each with a baseline measured in the same run:

- wall time and AWS calls of a fresh and of a no-op rehearsal (the no-op against the fresh);
- the delay between a stack reaching its final state and the rollout moving on, for the
  rollout's own polling against boto3's CloudFormation waiter (30 s between polls). The stack
  is held IN_PROGRESS for a few seconds by a double in front of DescribeStacks.
"""

from __future__ import annotations

import io
import logging
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from emulator import running_emulator
from rollout import engine, package, settings
from rollout.aws import Aws
from rollout.engine import LocalContext
from rollout.rehearsal import prepare_account
from rollout.report import Reporter
from rollout.steps import DeployStack

HOLD_SECONDS = 3.0


class _Ok:
    status_code = 200


class InProgressDouble:
    """In front of DescribeStacks: answers `status` (in progress) until `until`, then lets the
    emulator answer with the stack's real, final state."""

    def __init__(self, aws: Aws, stack: str, stack_id: str, status: str) -> None:
        self.stack, self.stack_id, self.status, self.until = stack, stack_id, status, 0.0
        aws.client("cloudformation").meta.events.register("before-call.cloudformation.DescribeStacks", self)

    def hold(self, seconds: float) -> float:
        self.until = time.monotonic() + seconds
        return self.until

    def __call__(self, **_: Any) -> Any:
        if time.monotonic() >= self.until:
            return None
        return _Ok(), {
            "Stacks": [
                {
                    "StackName": self.stack,
                    "StackId": self.stack_id,
                    "CreationTime": datetime.now(UTC),  # a datetime, as boto3 parses it
                    "StackStatus": self.status,
                }
            ]
        }


def rehearsals(env: settings.EnvironmentSettings, artifact: package.Artifact) -> None:
    with running_emulator() as url:
        aws = Aws(env.region, endpoint_url=url)
        prepare_account(aws, env)
        options = engine.Options(poll_seconds=2.0, build_package=lambda *_: artifact)
        rows = []
        for label in ("fresh", "no-op"):
            aws.counter.calls.clear()
            start = time.perf_counter()
            engine.run(env, aws, Reporter(io.StringIO()), options)
            rows.append(
                (
                    label,
                    time.perf_counter() - start,
                    aws.counter.total,
                    sum(aws.counter.mutating.values()),
                )
            )
        print("rehearsal (embedded emulator; handlers package prebuilt)")
        for label, seconds, total, mutating in rows:
            print(f"  {label:6s} {seconds:6.2f} s   {total:3d} AWS calls ({mutating} mutating)")
        print(f"  no-op / fresh: {rows[1][1] / rows[0][1]:.2f}x time, {rows[1][2] / rows[0][2]:.2f}x calls")
        print()
        delays(aws, env.stacks["websocket"])


def delays(aws: Aws, stack: str) -> None:
    cf = aws.client("cloudformation")
    (described,) = cf.describe_stacks(StackName=stack)["Stacks"]
    creating = described["StackStatus"] == "CREATE_COMPLETE"
    waiter_name = "stack_create_complete" if creating else "stack_update_complete"
    in_progress = "CREATE_IN_PROGRESS" if creating else "UPDATE_IN_PROGRESS"
    double = InProgressDouble(aws, stack, described["StackId"], in_progress)
    # The deploy step's watch, as the local executor runs it: a look every 2 s until the stack settles.
    step = DeployStack("bench", 2.0, stack, "https://b.s3.eu-west-1.amazonaws.com/t", "", {})
    ctx = LocalContext(aws, Reporter(io.StringIO()), lambda _q: True)
    work = {"phase": "executing", "stack_id": described["StackId"], "creating": creating, "changes": []}
    final_at = double.hold(HOLD_SECONDS)
    while not (progress := step.poll(ctx, {}, work)).done:
        time.sleep(progress.wait)
        work = progress.work
    ours = time.monotonic() - final_at
    final_at = double.hold(HOLD_SECONDS)
    cf.get_waiter(waiter_name).wait(StackName=described["StackId"])
    boto3_delay = time.monotonic() - final_at
    print(f"delay from final state to moving on (stack held {HOLD_SECONDS:.0f} s in progress)")
    print(f"  rollout polling (2 s):   {ours:6.2f} s")
    print(f"  boto3 waiter (30 s):     {boto3_delay:6.2f} s   = {boto3_delay / max(ours, 0.001):.0f}x the rollout's")


if __name__ == "__main__":
    logging.getLogger("moto").setLevel(logging.ERROR)
    env = settings.load("rehearsal")
    artifact = package.build(package.Target())
    rehearsals(env, artifact)
