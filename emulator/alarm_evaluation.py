"""CloudWatch's evaluation of metric alarms, once a minute on the emulator's clock (moto never
evaluates: its alarms stay as created or as SetAlarmState left them).

As CloudWatch documents it (Alarm evaluation; Configuring how alarms treat missing data):
- each alarm's data point is its statistic over one Period; Evaluation Periods (N) is how many of
  the most recent data points decide, Datapoints to Alarm (M, default N) how many of them must
  breach for ALARM;
- CloudWatch retrieves more data points than N (the evaluation range; here N + 2). When at least
  N real data points are in the range, the most recent N decide and missing data does not matter.
  When none are, TreatMissingData decides: `missing` (the default) INSUFFICIENT_DATA, `ignore`
  the state stays, `breaching` ALARM, `notBreaching` OK. When some are, the missing ones are
  filled as `breaching` or `notBreaching` say (all real points count); with `missing`/`ignore`
  the real ones decide: M breaching is ALARM, any good one is OK, else the state stays;
- a metric-math alarm's data point is its returned expression over the queries' data points (a
  query without data makes the expression's point missing, unless IF's branch avoids it).
A new alarm is INSUFFICIENT_DATA until its first evaluation, the next minute."""

from __future__ import annotations

import ast
import json
import math
from typing import Any

from moto.cloudwatch.models import Alarm, CloudWatchBackend, MetricDatum, cloudwatch_backends

from emulator import clock

RANGE_EXTRA = 2  # data points CloudWatch retrieves beyond N (it does not document the number)
COMPARISONS = {
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}


def statistic(values: list[float], stat: str) -> float | None:
    if not values:
        return None
    if stat.startswith("p"):  # a percentile, nearest rank
        ordered = sorted(values)
        return ordered[max(0, math.ceil(float(stat[1:]) / 100 * len(ordered)) - 1)]
    known = {"Sum": sum, "Maximum": max, "Minimum": min, "SampleCount": len, "Average": lambda v: sum(v) / len(v)}
    if stat not in known:
        raise ValueError(f"the emulator does not evaluate statistic {stat!r}")
    return float(known[stat](values))  # type: ignore[operator]


def _points(backend: CloudWatchBackend, namespace: str, name: str, dimensions: list[Any]) -> list[tuple[float, float]]:
    """(time, value) of every recorded datum of the metric with exactly these dimensions."""
    wanted = sorted((d.name, d.value) for d in dimensions)
    return [
        (clock.seconds_of(d.timestamp), d.value)
        for d in backend.metric_data
        if isinstance(d, MetricDatum)
        and d.namespace == namespace
        and d.name == name
        and sorted((x.name, x.value) for x in d.dimensions) == wanted
    ]


def _series(points: list[tuple[float, float]], stat: str, end: float, period: int, count: int) -> list[float | None]:
    """The data points of the `count` periods ending at `end`, newest first."""
    windows = [(end - (k + 1) * period, end - k * period) for k in range(count)]
    return [statistic([v for t, v in points if low <= t < high], stat) for low, high in windows]


def expression(text: str, values: dict[str, float | None]) -> float | None:
    """The metric-math expressions alarms use: + - * /, comparisons, IF(condition, then, else)."""

    def ev(node: ast.AST) -> float | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            return float(node.value)
        if isinstance(node, ast.Name):
            if node.id not in values:
                raise ValueError(f"metric math {text!r}: no query {node.id!r}")
            return values[node.id]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            inner = ev(node.operand)
            return None if inner is None else -inner
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "IF"
            and len(node.args) == 3
        ):
            condition = ev(node.args[0])
            return None if condition is None else ev(node.args[1] if condition else node.args[2])
        if isinstance(node, ast.Compare) and len(node.ops) == 1:
            left, right = ev(node.left), ev(node.comparators[0])
            if left is None or right is None:
                return None
            test = {
                ast.Gt: left > right,
                ast.GtE: left >= right,
                ast.Lt: left < right,
                ast.LtE: left <= right,
                ast.Eq: left == right,
                ast.NotEq: left != right,
            }[type(node.ops[0])]
            return 1.0 if test else 0.0
        if isinstance(node, ast.BinOp) and type(node.op) in (ast.Add, ast.Sub, ast.Mult, ast.Div):
            left, right = ev(node.left), ev(node.right)
            if left is None or right is None or (isinstance(node.op, ast.Div) and right == 0):
                return None
            operations = {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}
            return operations[type(node.op)] if type(node.op) in operations else left / right
        raise ValueError(f"the emulator does not evaluate metric math {text!r}")

    return ev(ast.parse(text, mode="eval").body)


def data_points(backend: CloudWatchBackend, alarm: Alarm, end: float, count: int) -> tuple[list[float | None], int]:
    """The alarm's data points for `count` periods ending at `end` (newest first) and its period."""
    if not alarm.metric_data_queries:
        points = _points(backend, alarm.namespace, alarm.metric_name, alarm.dimensions)
        stat = alarm.extended_statistic or alarm.statistic
        return _series(points, stat, end, int(alarm.period), count), int(alarm.period)
    stats = {q.id: q.metric_stat for q in alarm.metric_data_queries if q.metric_stat is not None}
    period = max(int(s.period) for s in stats.values())
    series = {
        query_id: _series(
            _points(backend, s.metric.namespace, s.metric.metric_name, s.metric.dimensions), s.stat, end, period, count
        )
        for query_id, s in stats.items()
    }
    (returned,) = [q for q in alarm.metric_data_queries if str(q.return_data).lower() != "false"]
    if returned.metric_stat is not None:
        return series[returned.id], period
    return [expression(str(returned.expression), {k: s[i] for k, s in series.items()}) for i in range(count)], period


def decide(points: list[float | None], alarm: Alarm) -> tuple[str, str]:
    """(state, reason) from the evaluation range's data points, newest first."""
    n = int(alarm.evaluation_periods)
    m = int(alarm.datapoints_to_alarm or n)
    breaches, words = COMPARISONS[alarm.comparison_operator]
    threshold = float(alarm.threshold)
    real = [p for p in points if p is not None]
    treatment = alarm.treat_missing_data or "missing"
    if len(real) >= n:
        recent = real[:n]
        bad = sum(breaches(p, threshold) for p in recent)
        shown = ", ".join(f"{p:g}" for p in recent)
        verb = "were" if bad >= m else "were not"
        return ("ALARM" if bad >= m else "OK"), (
            f"Threshold Crossed: {bad} out of the last {n} datapoints [{shown}] {verb} {words} the threshold "
            f"({threshold:g}) (minimum {m} datapoint(s) for ALARM)."
        )
    bad = sum(breaches(p, threshold) for p in real)
    missing = n - len(real)
    if treatment in ("breaching", "notBreaching"):
        filled = bad + (missing if treatment == "breaching" else 0)
        treated = "Breaching" if treatment == "breaching" else "NonBreaching"
        return ("ALARM" if filled >= m else "OK"), (
            f"Threshold Crossed: {len(real)} datapoint(s) were received for {n} period(s) and {missing} missing "
            f"datapoint(s) were treated as [{treated}]."
        )
    if not real:
        if treatment == "missing":
            return "INSUFFICIENT_DATA", f"Insufficient Data: {n} datapoint(s) were unknown."
        return alarm.state_value, alarm.state_reason  # ignore: the state stays
    if bad >= m:
        return "ALARM", f"Threshold Crossed: {bad} of {len(real)} datapoint(s) received were {words} the threshold."
    if bad < len(real):
        return "OK", f"Threshold Crossed: {len(real) - bad} datapoint(s) received were not {words} the threshold."
    return alarm.state_value, alarm.state_reason


def evaluate(backend: CloudWatchBackend, alarm: Alarm, minute: float) -> None:
    """One evaluation at `minute`; the state and its reason change only when the state does."""
    points, period = data_points(backend, alarm, minute, int(alarm.evaluation_periods) + RANGE_EXTRA)
    state, reason = decide(points, alarm)
    if state == alarm.state_value:
        return
    recent = [p for p in points if p is not None][:3]
    data = {
        "version": "1.0",
        "queryDate": clock.utc(minute).isoformat(),
        "period": period,
        "recentDatapoints": recent,
        "threshold": float(alarm.threshold),
    }
    alarm.update_state(reason, json.dumps(data), state)
    alarm.state_updated_timestamp = clock.utc(minute)


def created_at(alarm: Alarm) -> float:
    """When the alarm was made, on the emulator's clock (first seen, for one made by PutMetricAlarm)."""
    return float(alarm.__dict__.setdefault("_emulator_created", clock.now()))


def evaluate_all(minute: float) -> None:
    """Every metric alarm made before this minute, in every emulated account and region."""
    for regions in list(cloudwatch_backends.values()):
        for backend in list(regions.values()):
            for alarm in list(backend.alarms.values()):
                if alarm.rule is None and created_at(alarm) < minute:
                    evaluate(backend, alarm, minute)
