"""A change set's `RollbackConfiguration`, honoured (moto reads and forgets it).

CloudFormation watches the rollback triggers (CloudWatch alarms) during the stack operation and for
`MonitoringTimeInMinutes` after it; one in ALARM rolls the operation back (`UPDATE_ROLLBACK_COMPLETE`,
or `ROLLBACK_COMPLETE` for a create). Here the operation's resources are done at once, so the
triggers are read when ExecuteChangeSet has applied them. With 0 minutes that is all: the stack
stands (`*_COMPLETE`) or is rolled back there and then. With more, the stack stays in progress
(`UPDATE_IN_PROGRESS`, `CREATE_IN_PROGRESS`; its completion event not yet written) until that many
minutes have passed on the emulator's clock (`emulator.clock`: the wall clock, moved on by
`advance_clock`), and the triggers are read again at every minute boundary the clock passes (after
that minute's alarm evaluations), whenever an alarm's state is set (SetAlarmState), and before
every CloudFormation call (DescribeStacks, DescribeStackEvents, ...): one in ALARM within the window
rolls the operation back as above; once the window has passed without one, the stack shows
`UPDATE_COMPLETE`/`CREATE_COMPLETE`. Meanwhile ExecuteChangeSet on it is refused, as AWS refuses an
update of a stack in progress. A change set that gives no RollbackConfiguration uses the stack's
last one, as CloudFormation does (an empty list of triggers removes them). More than five triggers are refused as CloudFormation refuses them; a
trigger naming an alarm that does not exist is not checked here (it never fires; CloudFormation
fails the operation).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend, Stack, cloudformation_backends
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudwatch.models import CloudWatchBackend, cloudwatch_backends

from emulator import aws_rules, clock

_installed = False
MAX_TRIGGERS = 5
WATCH = "_emulator_rollback_watch"  # the stack's attribute while its monitoring time runs
KEPT = "_emulator_rollback_configuration"  # the stack's attribute: its last operation's configuration
_claim = threading.Lock()  # one reader ends a watch: never two rollbacks of one operation


@dataclass(frozen=True)
class Watch:
    """An operation whose resources are done, its triggers watched until `until` (clock seconds)."""

    until: float
    configuration: dict[str, Any]
    change_set_type: str  # CREATE or UPDATE
    before: tuple[Any, dict[str, Any], dict[str, Any]]  # template, template_dict, parameters


def _recorded(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: CloudFormationResponse) -> Any:
        configuration = self._get_param("RollbackConfiguration")
        if configuration is None:  # none given: the stack's last one (none for a new stack)
            stack = self.cloudformation_backend.stacks.get(self._get_param("StackName"))
            if stack is None:
                by_name = [
                    s for s in self.cloudformation_backend.stacks.values() if s.name == self._get_param("StackName")
                ]
                stack = by_name[-1] if by_name else None
            configuration = getattr(stack, KEPT, None) or {} if stack is not None else {}
        triggers = configuration.get("RollbackTriggers") or []
        if len(triggers) > MAX_TRIGGERS:
            raise ValidationError(message=f"Rollback triggers must not exceed {MAX_TRIGGERS}")
        answer = original(self)
        name, stack = self._get_param("ChangeSetName"), self._get_param("StackName")
        for change_set in self.cloudformation_backend.change_sets.values():
            if change_set.change_set_name == name and stack in (change_set.stack_name, change_set.stack_id):
                change_set.rollback_configuration = configuration  # type: ignore[attr-defined]
        return answer

    return create


def firing(account_id: str, region: str, configuration: dict[str, Any]) -> list[str]:
    """The triggers' alarms now in ALARM, by ARN."""
    arns = {t.get("Arn") for t in configuration.get("RollbackTriggers") or []}
    alarms = cloudwatch_backends[account_id][region].describe_alarms()
    return sorted(a.alarm_arn for a in alarms if a.alarm_arn in arns and a.state_value == "ALARM")


def monitoring_seconds(configuration: dict[str, Any]) -> float:
    return float(configuration.get("MonitoringTimeInMinutes") or 0) * 60


def _roll_back(stack: Stack, change_set_type: str, fired: list[str], before: Any) -> None:
    reason = f"Rollback trigger(s) in ALARM: {', '.join(fired)}"
    failure = aws_rules.ResourceFailed(stack.name, "AWS::CloudFormation::Stack", reason)
    aws_rules._roll_back(stack, change_set_type, failure, before)
    stack.status_reason = reason  # type: ignore[attr-defined]


def _watched(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        configuration = getattr(change_set, "rollback_configuration", None) or {}
        stack = change_set.stack if change_set is not None else None
        if stack is not None and WATCH in stack.__dict__:
            raise ValidationError(message=f"Stack:{stack.stack_id} is in {stack.status} state and can not be updated.")
        before = (stack.template, dict(stack.template_dict), dict(stack.parameters)) if stack is not None else None
        original(self, change_set_name, stack_name)
        if change_set is None or stack is None or before is None:
            return
        if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return
        fired = firing(self.account_id, self.region_name, configuration)
        if fired:
            _roll_back(stack, change_set.change_set_type, fired, before)
            return
        stack.__dict__[KEPT] = configuration  # what the next change set naming none uses
        seconds = monitoring_seconds(configuration)
        if seconds <= 0:
            return
        done = stack.status
        if (
            stack.events
            and stack.events[-1].resource_status == done
            and stack.events[-1].logical_resource_id == stack.name
        ):
            stack.events.pop()  # written once the window has passed
        stack.status = done.replace("_COMPLETE", "_IN_PROGRESS")
        watch = Watch(clock.now() + seconds, configuration, change_set.change_set_type, before)
        stack.__dict__[WATCH] = watch

    return execute


def _watching() -> list[tuple[CloudFormationBackend, Stack]]:
    """Every stack of the emulated accounts whose monitoring time runs."""
    return [
        (backend, stack)
        for regions in list(cloudformation_backends.values())
        for backend in list(regions.values())
        for stack in list(backend.stacks.values())
        if WATCH in stack.__dict__
    ]


def settle(moment: float) -> None:
    """Each watched operation as of `moment`: rolled back if a trigger is in ALARM within its
    window, complete once the window has passed."""
    for backend, stack in _watching():
        with _claim:
            watch = stack.__dict__.get(WATCH)
            if watch is None:  # another reader ended it
                continue
            fired = []
            if moment < watch.until:
                fired = firing(backend.account_id, backend.region_name, watch.configuration)
                if not fired:
                    continue
            del stack.__dict__[WATCH]
        if fired:
            _roll_back(stack, watch.change_set_type, fired, watch.before)
        else:
            stack.status = f"{watch.change_set_type}_COMPLETE"
            stack._add_stack_event(stack.status)


def settle_now() -> None:
    """Due minute work first (its alarm evaluations, each minute's reading of the triggers), then now."""
    if _watching():
        clock.catch_up()
        settle(clock.now())


def _settled_first(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_action(self: CloudFormationResponse) -> Any:
        settle_now()
        return original(self)

    return call_action


def _alarm_watched(original: Callable[..., Any]) -> Callable[..., Any]:
    def set_alarm_state(self: CloudWatchBackend, *args: Any, **kwargs: Any) -> None:
        settle_now()  # a window that has passed ends before the new state counts
        original(self, *args, **kwargs)
        settle_now()

    return set_alarm_state


def install() -> None:
    """Apply (idempotent); after aws_rules.install(), whose execute it wraps, and after
    alarms.install() (moto_gaps), so each minute's evaluations come before the triggers are read."""
    global _installed
    if _installed:
        return
    CloudFormationResponse.create_change_set = _recorded(CloudFormationResponse.create_change_set)  # type: ignore[method-assign]
    CloudFormationResponse.call_action = _settled_first(CloudFormationResponse.call_action)  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = _watched(CloudFormationBackend.execute_change_set)  # type: ignore[method-assign]
    CloudWatchBackend.set_alarm_state = _alarm_watched(CloudWatchBackend.set_alarm_state)  # type: ignore[method-assign]
    clock.on_minute(settle)
    _installed = True
