"""Gap 8 (see moto_gaps.py): moto's CloudFormation silently skips `AWS::CloudWatch::Alarm`,
and its CloudWatch differs from AWS's in two ways the bake step meets.

- The model below creates the alarm in moto's CloudWatch backend (its Ref is the alarm name) and
  deletes it with the stack. Created by the stack or by PutMetricAlarm, a new alarm starts
  INSUFFICIENT_DATA as CloudWatch does (moto starts alarms OK) and keeps its state across an update.
- DescribeAlarms applies only one of its filters in moto (a name prefix *or* a state); AWS applies
  all of them: `describe_alarms` below does.
- GetMetricStatistics answers the metric with exactly the dimensions asked for, as CloudWatch does
  (moto adds every metric that has them among others: a function's Errors would count the same
  invocation again by alias and by executed version).
moto never evaluates alarms: `alarm_evaluation` does, once a minute on the emulator's clock,
from the metrics the emulator records (`metrics`); DescribeAlarms first catches the clock up.
"""

from __future__ import annotations

from typing import Any

from moto.cloudwatch.models import (
    CloudWatchBackend,
    Dimension,
    Metric,
    MetricDataQuery,
    MetricStat,
    cloudwatch_backends,
)
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.common_models import CloudFormationModel
from moto.core.responses import ActionResult

from emulator import alarm_evaluation, clock, schedules


def _backend(account_id: str, region_name: str) -> CloudWatchBackend:
    return cloudwatch_backends[account_id][region_name]


def _stat(query: dict[str, Any]) -> MetricStat | None:
    if "MetricStat" not in query:
        return None
    stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
    dimensions = [Dimension(d["Name"], d["Value"]) for d in metric.get("Dimensions") or []]
    return MetricStat(
        Metric(metric["MetricName"], metric["Namespace"], dimensions),
        stat["Period"],
        stat["Stat"],
        stat.get("Unit", ""),
    )


def _put(props: dict[str, Any], name: str, account_id: str, region_name: str) -> Any:
    queries = [
        MetricDataQuery(
            query_id=q["Id"],
            label=q.get("Label", ""),
            period=q.get("Period"),
            return_data=str(q.get("ReturnData", True)).lower(),
            expression=q.get("Expression"),
            metric_stat=_stat(q),
        )
        for q in props.get("Metrics") or []
    ]
    alarm = _backend(account_id, region_name).put_metric_alarm(
        name=name,
        namespace=props.get("Namespace", ""),
        metric_name=props.get("MetricName", ""),
        metric_data_queries=queries or None,
        comparison_operator=props["ComparisonOperator"],
        evaluation_periods=int(props["EvaluationPeriods"]),
        datapoints_to_alarm=int(props["DatapointsToAlarm"]) if "DatapointsToAlarm" in props else None,
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
    return alarm


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
        if name != original_resource.name:  # a new name replaces the alarm
            _backend(account_id, region_name).delete_alarms([original_resource.name])
        _put(props, name, account_id, region_name)
        return cls(name)

    @classmethod
    def delete_from_cloudformation_json(
        cls, resource_name: str, cloudformation_json: dict[str, Any], account_id: str, region_name: str
    ) -> None:
        _backend(account_id, region_name).delete_alarms([resource_name])

    def is_created(self) -> bool:
        return True


def describe_alarms(self: CloudWatchResponse) -> ActionResult:
    """DescribeAlarms with every filter applied together, as CloudWatch does, after every
    evaluation due on the emulator's clock."""
    clock.catch_up()
    prefix = self._get_param("AlarmNamePrefix")
    names = self._get_param("AlarmNames", [])
    state = self._get_param("StateValue")
    action_prefix = self._get_param("ActionPrefix")
    types = self._get_param("AlarmTypes", [])
    alarms = [
        a
        for a in self.cloudwatch_backend.describe_alarms()
        if (not prefix or a.name.startswith(prefix))
        and (not names or a.name in names)
        and (not state or a.state_value == state)
        and (not action_prefix or any(action.startswith(action_prefix) for action in a.alarm_actions))
    ]
    metric = [a for a in alarms if a.rule is None] if not types or "MetricAlarm" in types else []
    composite = [a for a in alarms if a.rule is not None] if not types or "CompositeAlarm" in types else []
    return ActionResult({"MetricAlarms": metric, "CompositeAlarms": composite})


def _created_or_kept(original: Any) -> Any:
    """PutMetricAlarm: a new alarm starts INSUFFICIENT_DATA (moto: OK) and is evaluated from the
    next minute; updating one leaves its state as it was, as CloudWatch does."""

    def put_metric_alarm(self: CloudWatchBackend, name: str, *args: Any, **kwargs: Any) -> Any:
        before = self.alarms.get(name)
        alarm = original(self, name, *args, **kwargs)
        if before is None:
            alarm.state_value, alarm.state_reason = "INSUFFICIENT_DATA", "Unchecked: Initial alarm creation"
            alarm.__dict__["_emulator_created"] = clock.now()
        else:
            alarm.state_value, alarm.state_reason = before.state_value, before.state_reason
            alarm.state_reason_data = before.state_reason_data
            alarm.state_updated_timestamp = before.state_updated_timestamp  # its configuration changed, not its state
            alarm.__dict__["_emulator_created"] = before.__dict__.get("_emulator_created", clock.now())
        return alarm

    return put_metric_alarm


def _stamped(original: Any) -> Any:
    """PutMetricData without a Timestamp: now on the emulator's clock (moto stamps wall time)."""

    def put_metric_data(self: CloudWatchBackend, namespace: str, metric_data: list[dict[str, Any]]) -> None:
        original(self, namespace, [{**m, "Timestamp": m.get("Timestamp") or clock.utc()} for m in metric_data])

    return put_metric_data


class _Only:
    """A backend's metrics, narrowed: what moto's GetMetricStatistics reads (`get_all_metrics`)."""

    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def get_all_metrics(self) -> list[Any]:
        return self.metrics


def _exactly(original: Any) -> Any:
    def get_metric_statistics(
        self: CloudWatchBackend, namespace: str, metric_name: str, *args: Any, dimensions: Any = None, **kwargs: Any
    ) -> Any:
        wanted = sorted((d["Name"], d.get("Value")) for d in dimensions or [])
        same = [m for m in self.get_all_metrics() if sorted((d.name, d.value) for d in m.dimensions) == wanted]
        return original(_Only(same), namespace, metric_name, *args, dimensions=dimensions, **kwargs)

    return get_metric_statistics


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        CloudWatchBackend.put_metric_data = _stamped(CloudWatchBackend.put_metric_data)  # type: ignore[method-assign]
        CloudWatchBackend.put_metric_alarm = _created_or_kept(CloudWatchBackend.put_metric_alarm)  # type: ignore[method-assign]
        CloudWatchBackend.get_metric_statistics = _exactly(CloudWatchBackend.get_metric_statistics)  # type: ignore[method-assign]
        _installed = True
    CloudWatchResponse.describe_alarms = describe_alarms  # type: ignore[method-assign]
    schedules.install()
    clock.on_minute(schedules.run_due)  # a minute's scheduled runs first, then its evaluations
    clock.on_minute(alarm_evaluation.evaluate_all)
    clock.catch_up()  # the clock's minutes count from here
