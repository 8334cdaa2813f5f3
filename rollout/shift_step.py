"""A canary or linear release: the live aliases' weights moved step by step, each move a compute
stack update (`ShiftFromVersions` + `NewVersionWeight`, generator/versions.py), the environment's
alarms read between moves. An alarm in ALARM moves every alias back to its old version (one more
stack update, to weight 0) and fails the run naming the alarm; so does a move CloudFormation
rolled back (its rollback triggers fired: the stack is left at the move before); the last move empties
`ShiftFromVersions`, and the new versions serve alone.

Before any weight moves, a pre-traffic check runs against the new versions: `HOOKS[name]` called
as `hook(lambda_client, {logical: function name}, qualifier)`, raising to refuse (the rollout's
`rollout/pre_traffic.py` drives a WebSocket session). The step is data (it travels in the state
machine's input), so it names its hook; "" is none, and says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from generator.stages import SHIFTED_FUNCTIONS
from rollout import bake as baking
from rollout import pre_traffic
from rollout.release_plan import SHIFT_FROM, WEIGHT
from rollout.stacks import StageFailed
from rollout.steps import (
    KINDS,
    Call,
    Context,
    DeployStack,
    Progress,
    Step,
    Where,
    _result,
    alarm_calls,
    from_dict,
    reset_version_alarms,
)

Hook = Callable[[Any, dict[str, str], str], None]
# name -> pre-traffic check; "" (none) is never registered
HOOKS: dict[str, Hook] = {pre_traffic.NAME: pre_traffic.websocket_session}


class PreTrafficRefused(StageFailed):
    """The pre-traffic check refused the new versions: no weight moved."""


@dataclass(frozen=True)
class Shift(Step):
    """Move the live aliases from `old_versions` to this release's versions by `weights`."""

    stack: dict[str, Any]  # the compute DeployStack (carry's parameters), as a plan document
    old_versions: str  # ShiftFromVersions: the versions serving before this release
    weights: tuple[float, ...]  # each move's share for the new versions (below 1), in order
    hold_seconds: int  # how long the alarms are read after each move
    alarm_prefix: str
    pre_traffic: str = ""  # a name in HOOKS ("" : none)
    kind: ClassVar[str] = "shift"

    def description(self) -> str:
        moves = ", ".join(f"{w:.0%}" for w in self.weights)
        return f"shift the live aliases to the new versions: {moves}, then 100%; alarms read {self.hold_seconds} s after each"

    def _deploy(self, shift_from: str, weight: float, move: str) -> DeployStack:
        """The compute stack at this weight; each move's change set has a name of its own."""
        stack = from_dict(self.stack)
        assert isinstance(stack, DeployStack)
        parameters = {**stack.parameters, SHIFT_FROM: shift_from, WEIGHT: f"{weight:g}"}
        # Moving back happens because an alarm fired: that update must not be rolled back by it
        # (its change set names no trigger, which removes the stack's, and watches no time).
        back = move == "back"
        return replace(
            stack,
            name=self.name,
            parameters=parameters,
            change_set_name=f"{stack.change_set_name}-{move}",
            rollback_alarms=() if back else stack.rollback_alarms,
            monitoring_minutes=0 if back else stack.monitoring_minutes,
        )

    def max_wait_seconds(self) -> float:
        """A move waits on a compute stack update, which CloudFormation may monitor (DeployStack's);
        a hold reads the alarms for `hold_seconds`, which may be as long on its own."""
        return from_dict(self.stack).max_wait_seconds() + self.hold_seconds

    def calls(self, where: Where) -> list[Call]:
        deploy = self._deploy(self.old_versions, 0, "calls").calls(where)
        pattern = self.stack.get("functions_pattern") or "*"
        check = (
            [
                Call("lambda:InvokeFunction", where.arn("lambda", f"function:{pattern}:*")),
                Call("lambda:GetFunctionConfiguration", where.arn("lambda", f"function:{pattern}:*")),
            ]
            if self.pre_traffic
            else []
        )
        return [*deploy, *alarm_calls(where, self.alarm_prefix), *check]

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        self._pre_traffic(ctx, outputs)
        reset_version_alarms(ctx, self.name, self.alarm_prefix)
        return self._move(ctx, outputs, 0)

    def _pre_traffic(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> None:
        if not self.pre_traffic:
            ctx.report.line(self.name, "no pre-traffic hook")
            return
        hook = HOOKS.get(self.pre_traffic)
        if hook is None:  # named in the settings, not registered where the step runs: never skipped silently
            raise PreTrafficRefused(
                f"{self.name}: no pre-traffic hook named {self.pre_traffic!r} is registered here "
                f"({', '.join(sorted(HOOKS)) or 'none is'}); no traffic moved"
            )
        held = outputs.get("carry") or outputs.get("compute") or {}
        versions = {f.logical: held.get(f"{f.logical}FunctionVersion", "") for f in SHIFTED_FUNCTIONS}
        names = {f.logical: held.get(f"{f.logical}FunctionName", "") for f in SHIFTED_FUNCTIONS}
        groups: dict[str, dict[str, str]] = {}
        for logical, version in versions.items():  # published together: one qualifier, unless someone published
            groups.setdefault(version, {})[logical] = names[logical]
        for qualifier, functions in groups.items():
            try:
                hook(ctx.client("lambda"), functions, qualifier)
            except Exception as error:
                raise PreTrafficRefused(
                    f"{self.name}: the pre-traffic check {self.pre_traffic!r} refused version {qualifier}: {error}; "
                    "no traffic moved",
                    [str(error)],
                ) from error
        ctx.report.line(self.name, f"pre-traffic check {self.pre_traffic!r} passed on versions {sorted(groups)}")

    def _move(self, ctx: Context, outputs: dict[str, dict[str, str]], index: int) -> Progress:
        """Deploy move `index` (len(weights): all to the new versions)."""
        last = index >= len(self.weights)
        move = f"m{index}"
        deploy = self._deploy("", 0, move) if last else self._deploy(self.old_versions, self.weights[index], move)
        ctx.report.line(
            self.name, "100% to the new versions" if last else f"{self.weights[index]:.0%} to the new versions"
        )
        return self._sub(ctx, outputs, {"phase": "promoting" if last else "moving", "index": index}, deploy, None)

    def _sub(
        self,
        ctx: Context,
        outputs: dict[str, dict[str, str]],
        work: dict[str, Any],
        deploy: DeployStack,
        sub: dict[str, Any] | None,
    ) -> Progress:
        try:
            progress = deploy.start(ctx, outputs) if sub is None else deploy.poll(ctx, outputs, sub)
        except StageFailed as failed:
            if work["phase"] not in ("moving", "promoting"):
                raise
            return self._back_after_failed_move(ctx, outputs, work, failed)
        if not progress.done:
            return Progress(False, {**work, "sub": progress.work}, progress.wait)
        return self._moved(ctx, outputs, work)

    def _back_after_failed_move(
        self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any], failed: StageFailed
    ) -> Progress:
        """A move CloudFormation rolled back (a trigger fired, a resource failed) leaves the stack at
        the move before it, the new versions still serving part: every alias goes back, as for an alarm."""
        index = int(work["index"])
        at = "100%" if work["phase"] == "promoting" else f"{self.weights[index]:.0%}"
        ctx.report.line(self.name, f"the move to {at} failed ({failed})")
        ctx.report.line(self.name, f"rolling the live aliases back to versions {self.old_versions}")
        back = {"phase": "rolling back", "index": index, "at": at, "failed": str(failed), "fired": failed.details}
        return self._sub(ctx, outputs, back, self._deploy(self.old_versions, 0, "back"), None)

    def _moved(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        phase = work["phase"]
        if phase == "promoting":
            detail = f"the new versions serve alone after {len(self.weights)} move(s)"
            return Progress(True, result=_result(self.name, "succeeded", detail))
        if phase == "rolling back" and work.get("failed"):
            raise StageFailed(
                f"{self.name}: the move to {work['at']} failed ({work['failed']}): the live aliases are back on "
                f"versions {self.old_versions}",
                work["fired"],
            )
        if phase == "rolling back":
            raise baking.AlarmFired(
                f"{self.name}: {len(work['fired'])} alarm(s) in ALARM at {work['at']}: the live aliases are back on "
                f"versions {self.old_versions}",
                work["fired"],
            )
        looks = baking.checks(self.hold_seconds, self.wait) if self.hold_seconds else 0
        return Progress(False, {"phase": "holding", "index": work["index"], "looks": 0, "checks": looks}, 0)

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        work = self.bounded(work)
        phase = work["phase"]
        if phase == "holding":
            return self._hold(ctx, outputs, work)
        index = int(work.get("index", 0))
        if phase == "rolling back":
            deploy = self._deploy(self.old_versions, 0, "back")
        elif phase == "promoting":
            deploy = self._deploy("", 0, f"m{index}")
        else:
            deploy = self._deploy(self.old_versions, self.weights[index], f"m{index}")
        return self._sub(ctx, outputs, {k: v for k, v in work.items() if k != "sub"}, deploy, work["sub"])

    def _hold(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        index = int(work["index"])
        alarms = baking.firing(ctx.client("cloudwatch"), self.alarm_prefix)
        if alarms:
            fired = [f"{a['AlarmName']}: {a.get('StateReason', 'no reason given')}" for a in alarms]
            for line in fired:
                ctx.report.line(self.name, f"ALARM {line}")
            at = f"{self.weights[index]:.0%}"
            ctx.report.line(self.name, f"rolling the live aliases back to versions {self.old_versions}")
            work = {"phase": "rolling back", "index": index, "fired": fired, "at": at}
            return self._sub(ctx, outputs, work, self._deploy(self.old_versions, 0, "back"), None)
        if int(work["looks"]) >= int(work["checks"]):
            return self._move(ctx, outputs, index + 1)
        return Progress(False, {**work, "looks": int(work["looks"]) + 1}, self.wait)


def weights_of(strategy: str, percent: int) -> tuple[float, ...]:
    """The moves before 100%: canary one, linear every `percent` below 100."""
    if strategy == "canary":
        return (percent / 100,)
    if strategy == "linear":
        return tuple(step / 100 for step in range(percent, 100, percent))
    return ()


KINDS[Shift.kind] = Shift  # a plan document names it by kind
