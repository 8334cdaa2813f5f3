"""Metrics the emulator records as AWS's services publish them, at the emulator's clock, into
moto's CloudWatch (so GetMetricStatistics and the alarms see them): Lambda's Invocations, Errors
and Duration for every invocation it runs, EventBridge's Invocations/FailedInvocations per rule,
Lambda's AsyncEventsDropped, and API Gateway's counts of what the WebSocket server serves."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from moto.cloudwatch.models import MetricDatum, cloudwatch_backends

from emulator import clock

# The alias an invocation came through and the version it ran, while it runs (set by
# lambda_versions' Invoke): Lambda then also publishes by Resource (`name:alias`) and ExecutedVersion.
_through_alias: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("through_alias", default=None)


@contextlib.contextmanager
def through_alias(resource: str, executed_version: str) -> Iterator[None]:
    token = _through_alias.set((resource, executed_version))
    try:
        yield
    finally:
        _through_alias.reset(token)


def record(
    account: str, region: str, namespace: str, name: str, dimensions: dict[str, str], value: float, unit: str = "Count"
) -> None:
    named = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    datum = MetricDatum(namespace, name, float(value), named, clock.utc(), unit)
    cloudwatch_backends[account][region].metric_data.append(datum)


def lambda_invocation(account: str, region: str, function_name: str, failed: bool, duration_ms: float) -> None:
    """What Lambda publishes for one invocation (Errors 0 when it succeeded, as Lambda does): by
    function, and for one through an alias also by {function, alias} and {function, alias, the
    version it ran} (the dimensions a canary's alarm on the new version watches)."""
    sets = [{"FunctionName": function_name}]
    alias = _through_alias.get()
    if alias is not None:
        resource, version = alias
        sets += [{**sets[0], "Resource": resource}, {**sets[0], "Resource": resource, "ExecutedVersion": version}]
    for where in sets:
        record(account, region, "AWS/Lambda", "Invocations", where, 1)
        record(account, region, "AWS/Lambda", "Errors", where, 1 if failed else 0)
        record(account, region, "AWS/Lambda", "Duration", where, duration_ms, "Milliseconds")


def api_gateway(account: str, region: str, api_id: str, stage: str, **counts: float) -> None:
    """API Gateway's metrics of one request on a stage: ConnectCount, MessageCount, IntegrationError..."""
    for name, value in counts.items():
        unit = "Milliseconds" if name.endswith("Latency") else "Count"
        record(account, region, "AWS/ApiGateway", name, {"ApiId": api_id, "Stage": stage}, value, unit)
