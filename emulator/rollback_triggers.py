"""A change set's `RollbackConfiguration`, honoured (moto reads and forgets it).

CloudFormation watches the rollback triggers (CloudWatch alarms) during the stack operation and for
`MonitoringTimeInMinutes` after it; one in ALARM rolls the operation back (`UPDATE_ROLLBACK_COMPLETE`,
or `ROLLBACK_COMPLETE` for a create). Here the operation runs at once, so the triggers are read when
it has finished (the monitoring time passes on the emulator's clock in no time: an alarm must be in
ALARM by then to count). A trigger that names no alarm is refused as CloudFormation refuses it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from moto.cloudformation.exceptions import ValidationError
from moto.cloudformation.models import CloudFormationBackend
from moto.cloudformation.responses import CloudFormationResponse
from moto.cloudwatch.models import cloudwatch_backends

from emulator import aws_rules

_installed = False
MAX_TRIGGERS = 5


def _recorded(original: Callable[..., Any]) -> Callable[..., Any]:
    def create(self: CloudFormationResponse) -> Any:
        configuration = self._get_param("RollbackConfiguration") or {}
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


def _watched(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(self: CloudFormationBackend, change_set_name: str, stack_name: str | None = None) -> None:
        change_set = self.describe_change_set(change_set_name)
        configuration = getattr(change_set, "rollback_configuration", None) or {}
        stack = change_set.stack if change_set is not None else None
        before = (stack.template, dict(stack.template_dict), dict(stack.parameters)) if stack is not None else None
        original(self, change_set_name, stack_name)
        if change_set is None or stack is None or before is None:
            return
        if stack.status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
            return
        fired = firing(self.account_id, self.region_name, configuration)
        if fired:
            reason = f"Rollback trigger(s) in ALARM: {', '.join(fired)}"
            failure = aws_rules.ResourceFailed(stack.name, "AWS::CloudFormation::Stack", reason)
            aws_rules._roll_back(stack, change_set.change_set_type, failure, before)
            stack.status_reason = reason  # type: ignore[attr-defined]

    return execute


def install() -> None:
    """Apply (idempotent); after aws_rules.install(), whose execute it wraps."""
    global _installed
    if _installed:
        return
    CloudFormationResponse.create_change_set = _recorded(CloudFormationResponse.create_change_set)  # type: ignore[method-assign]
    CloudFormationBackend.execute_change_set = _watched(CloudFormationBackend.execute_change_set)  # type: ignore[method-assign]
    _installed = True
