"""A bound on the whole run (`--max-minutes`; default MAX_MINUTES plus the run's bake and the
monitoring time its change sets ask of CloudFormation, `default_minutes`), on top of each AWS
call's own (rollout/aws.py: connect 3 s, read READ_TIMEOUT_SECONDS, standard retries) and each
step's (rollout/steps.py MAX_WAIT_SECONDS, plus a stack step's monitoring time). Checked before
every AWS call and before every wait of either engine (the factory wraps each orchestrator,
rollout/factory.py): a run past its bound stops at the next one with `RunOutOfTime`, naming the
bound and how it was chosen, what it was waiting on and what AWS still shows in progress (read
back), and saying that CloudFormation, or the Step Functions execution, carries on by itself:
stopping here stops nothing in AWS. One call that hangs is bounded by the read timeout and its
retries, not cut short.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from rollout.stacks import StageFailed, describe

MAX_MINUTES = 90  # a rollout of both stacks takes minutes; the lock (rollout/lock.py HOLD) lasts 2 hours
# The stack updates of a run whose change sets name rollback triggers, besides a shift's moves: the
# compute, websocket and carry steps (rollout/plan.py stack_step).
MONITORED_UPDATES = 3


class RunOutOfTime(StageFailed):
    """The run passed its bound; AWS carries on with whatever it had started."""


@dataclass
class Deadline:
    minutes: float
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    waiting_on: str = "the first call"
    expired: bool = False
    basis: str = "--max-minutes"  # how the bound was chosen, said when it is passed

    def __post_init__(self) -> None:
        self.started = self.clock()

    @property
    def left(self) -> float:
        return self.started + self.minutes * 60 - self.clock()

    def check(self) -> None:
        if not self.expired and self.left < 0:
            self.expired = True
            raise RunOutOfTime(f"the run passed its bound of {self.minutes:g} min ({self.basis})", [])

    def before_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        if self.expired:  # the reads that record and report the stop: what it waited on stays named
            return
        # Named before the check: a call the bound stops is the one the run was waiting to make.
        target = next((str(params[k]) for k in ("StackName", "executionArn", "FunctionName") if k in params), "")
        self.waiting_on = f"{model.service_model.service_name}:{model.name} {target}".rstrip()
        self.check()

    def sleeping(self, sleep: Callable[[float], None]) -> Callable[[float], None]:
        def bounded(seconds: float) -> None:
            self.check()
            sleep(seconds)
            self.check()

        return bounded


def still_running(aws: Any, stacks: list[str]) -> list[str]:
    """What AWS shows in progress now: each stack mid-operation, and a Step Functions execution."""
    cloudformation, found = aws.client("cloudformation"), []
    for name in stacks:
        state = describe(cloudformation, name)
        if state is not None and state.status.endswith("_IN_PROGRESS"):
            found.append(f"{name} is {state.status}")
    return found


def monitoring_minutes(settings: Any) -> int:
    """How long CloudFormation may keep this run's updates in progress after their resources are
    done: `release.monitoring_minutes` after each update whose change set names rollback triggers
    (MONITORED_UPDATES, and each move of a canary or linear shift but the move back)."""
    release: Any = getattr(settings, "release", None)
    minutes = int(getattr(release, "monitoring_minutes", 0) or 0)
    if not minutes:
        return 0
    moves = _held_moves(release) + 1 if release.shifts else 0  # and the last, which is not held
    return minutes * (MONITORED_UPDATES + moves)


def hold_minutes(settings: Any) -> float:
    """How long a canary or linear shift reads the alarms: `release.seconds` after each move but the last."""
    release: Any = getattr(settings, "release", None)
    return release.seconds * _held_moves(release) / 60 if release is not None else 0


def _held_moves(release: Any) -> int:
    """A shift's moves before 100%, each followed by a hold (none for all at once)."""
    if not release.shifts:
        return 0
    from rollout.shift_step import weights_of

    return len(weights_of(release.strategy, release.percent))


def default_minutes(settings: Any, bake_seconds: float) -> tuple[float, str]:
    """The bound of a run given no --max-minutes, and how it is made: MAX_MINUTES plus the bake,
    the monitoring time and the shift's holds, each of which may be longer on its own."""
    monitored, holds = monitoring_minutes(settings), hold_minutes(settings)
    if not monitored and not holds:
        return MAX_MINUTES + bake_seconds / 60, "--max-minutes"
    release = settings.release
    parts = [f"{MAX_MINUTES} min", f"the bake's {bake_seconds / 60:g}"]
    if monitored:
        parts.append(
            f"{monitored} min of CloudFormation monitoring, release.monitoring_minutes {release.monitoring_minutes} "
            f"after each of up to {monitored // release.monitoring_minutes} updates"
        )
    if holds:
        parts.append(f"{holds:g} min of the shift's holds, release.seconds {release.seconds} after each move")
    basis = f"the default: {', '.join(parts)}; --max-minutes sets another"
    return MAX_MINUTES + bake_seconds / 60 + monitored + holds, basis


def bounded(orchestrator: Callable[..., Any]) -> Callable[..., Any]:
    """The orchestrator with the run's bound: `options.max_minutes` (None: `default_minutes`)."""

    def run(settings: Any, aws: Any, report: Any, options: Any) -> Any:
        bake = settings.bake_seconds if options.bake_seconds is None else options.bake_seconds
        minutes, basis = default_minutes(settings, bake)
        if options.max_minutes is not None:
            minutes, basis = options.max_minutes, "--max-minutes"
        deadline = Deadline(minutes, options.clock, basis=basis)
        aws.events.register("provide-client-params", deadline.before_call)
        try:
            # The orchestrator knows its bound (the lock holds at least as long).
            bound = replace(options, sleep=deadline.sleeping(options.sleep), max_minutes=minutes)
            return orchestrator(settings, aws, report, bound)
        except RunOutOfTime as error:
            from rollout.prepare import rollout_stack_name

            waited = deadline.waiting_on  # before the reads below (clients made earlier keep the hook)
            running = still_running(aws, [*settings.stacks.values(), rollout_stack_name(settings)])
            if waited.startswith("stepfunctions:"):
                running.append(f"the Step Functions execution ({waited.split(' ', 1)[-1]})")
            raise RunOutOfTime(
                f"{error}, waiting on {waited}: stopped here. AWS carries on with what it started "
                "(CloudFormation finishes or rolls back each stack by itself; an execution runs to its end): "
                f"follow it with `python -m rollout watch --env {settings.name}`, then `rollout status`",
                [f"still running: {r}" for r in running] or ["nothing shows in progress in AWS now"],
            ) from None
        finally:
            aws.events.unregister("provide-client-params", deadline.before_call)

    return run
