"""Gap 8 (see moto_gaps.py): moto's CloudFormation silently skips `AWS::CloudWatch::Alarm`.

This model creates the alarm in moto's CloudWatch backend (PutMetricAlarm's rules: its Ref is the
alarm name), keeps its state across an update as CloudWatch does, and deletes it with the
stack. moto never evaluates alarms, so a test drives one into ALARM with the real API call,
`SetAlarmState`, which works the same on AWS.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import CloudWatchBackend, MetricDataQuery, cloudwatch_backends
from moto.core.common_models import CloudFormationModel


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
        _put(props, name, account_id, region_name)
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
