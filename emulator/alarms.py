"""Gap 8 (see moto_gaps.py): moto's CloudFormation silently skips `AWS::CloudWatch::Alarm`,
and its CloudWatch differs from AWS's in two ways the bake step meets.

- The model below creates the alarm in moto's CloudWatch backend (its Ref is the alarm name), in
  state INSUFFICIENT_DATA as CloudWatch does (moto starts alarms OK), keeps its state across an
  update, and deletes it with the stack.
- DescribeAlarms applies only one of its filters in moto (a name prefix *or* a state); AWS applies
  all of them: `describe_alarms` below does.
moto never evaluates alarms, so a test drives one into ALARM with the real API call,
`SetAlarmState`, which works the same on AWS.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import CloudWatchBackend, MetricDataQuery, cloudwatch_backends
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult


def _backend(account_id: str, region_name: str) -> CloudWatchBackend:
    return cloudwatch_backends[account_id][region_name]


def _put(props: dict[str, Any], name: str, account_id: str, region_name: str) -> Any:
    queries = [
        MetricDataQuery(query_id=q["Id"], label=q.get("Label", ""), period=q.get("Period"),
                        return_data=str(q.get("ReturnData", True)).lower(), expression=q.get("Expression"))
        for q in props.get("Metrics") or []
    ]  # fmt: skip
    return _backend(account_id, region_name).put_metric_alarm(
        name=name,
        namespace=props.get("Namespace", ""),
        metric_name=props.get("MetricName", ""),
        metric_data_queries=queries or None,
        comparison_operator=props["ComparisonOperator"],
        evaluation_periods=int(props["EvaluationPeriods"]),
        period=int(props["Period"]) if "Period" in props else None,  # type: ignore[arg-type]
        threshold=float(props["Threshold"]),
        statistic=props.get("Statistic", ""),
        extended_statistic=props.get("ExtendedStatistic"),
        description=props.get("AlarmDescription", ""),
        dimensions=props.get("Dimensions") or [],
        alarm_actions=props.get("AlarmActions") or [],
        ok_actions=props.get("OKActions") or [],
        treat_missing_data=props.get("TreatMissingData"),
        actions_enabled=str(props.get("ActionsEnabled", True)).lower() == "true",
    )


class CloudWatchAlarm(CloudFormationModel):
    def __init__(self, name: str) -> None:
        self.name = name

    @staticmethod
    def cloudformation_name_type() -> str:
        return "AlarmName"

    @staticmethod
    def cloudformation_type() -> str:
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def has_cfn_attr(cls, attr: str) -> bool:
        return False

    @property
    def physical_resource_id(self) -> str:
        return self.name

    @classmethod
    def create_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str, **kwargs: Any
    ) -> CloudWatchAlarm:
        props = cloudformation_json["Properties"]
        name = props.get("AlarmName", resource_name)
        alarm = _put(props, name, account_id, region_name)
        alarm.state_value, alarm.state_reason = "INSUFFICIENT_DATA", "Unchecked: Initial alarm creation"
        return cls(name)

    @classmethod
    def update_from_cloudformation_json(
        cls,
        original_resource: CloudWatchAlarm,
        new_resource_name: str,
        cloudformation_json: dict[str, Any],
        account_id: str,
        region_name: str,
    ) -> CloudWatchAlarm:
        props = cloudformation_json["Properties"]
        name = props.get("AlarmName", original_resource.name)
        backend = _backend(account_id, region_name)
        before = backend.alarms.get(original_resource.name)
        if name != original_resource.name:  # a new name replaces the alarm
            backend.delete_alarms([original_resource.name])
            before = None
        after = _put(props, name, account_id, region_name)
        if before is not None:  # updating an alarm leaves its state as it was
            after.state_value, after.state_reason = before.state_value, before.state_reason
        return cls(name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        _backend(account_id, region_name).delete_alarms([resource_name])

    def is_created(self) -> bool:
        return True


def describe_alarms(self: CloudWatchResponse) -> ActionResult:
    """DescribeAlarms with every filter applied together, as CloudWatch does."""
    prefix = self._get_param("AlarmNamePrefix")
    names = self._get_param("AlarmNames", [])
    state = self._get_param("StateValue")
    action_prefix = self._get_param("ActionPrefix")
    types = self._get_param("AlarmTypes", [])
    alarms = [
        a for a in self.cloudwatch_backend.describe_alarms()
        if (not prefix or a.name.startswith(prefix)) and (not names or a.name in names)
        and (not state or a.state_value == state)
        and (not action_prefix or any(action.startswith(action_prefix) for action in a.alarm_actions))
    ]  # fmt: skip
    metric = [a for a in alarms if a.rule is None] if not types or "MetricAlarm" in types else []
    composite = [a for a in alarms if a.rule is not None] if not types or "CompositeAlarm" in types else []
    return ActionResult({"MetricAlarms": metric, "CompositeAlarms": composite})


def install() -> None:
    CloudWatchResponse.describe_alarms = describe_alarms  # type: ignore[method-assign]
