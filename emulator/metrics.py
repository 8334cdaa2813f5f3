"""Metrics the emulator records as AWS's services publish them, at the emulator's clock, into
moto's CloudWatch (so GetMetricStatistics and the alarms see them): Lambda's Invocations, Errors
and Duration for every invocation it runs, EventBridge's Invocations/FailedInvocations per rule,
Lambda's AsyncEventsDropped, and API Gateway's counts of what the WebSocket server serves."""

from __future__ import annotations

from moto.cloudwatch.models import MetricDatum, cloudwatch_backends

from emulator import clock


def record(
    account: str, region: str, namespace: str, name: str, dimensions: dict[str, str], value: float, unit: str = "Count"
) -> None:
    named = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    datum = MetricDatum(namespace, name, float(value), named, clock.utc(), unit)
    cloudwatch_backends[account][region].metric_data.append(datum)


def lambda_invocation(account: str, region: str, function_name: str, failed: bool, duration_ms: float) -> None:
    """What Lambda publishes for one invocation (Errors 0 when it succeeded, as Lambda does)."""
    where = {"FunctionName": function_name}
    record(account, region, "AWS/Lambda", "Invocations", where, 1)
    record(account, region, "AWS/Lambda", "Errors", where, 1 if failed else 0)
    record(account, region, "AWS/Lambda", "Duration", where, duration_ms, "Milliseconds")


def api_gateway(account: str, region: str, api_id: str, stage: str, **counts: float) -> None:
    """API Gateway's metrics of one request on a stage: ConnectCount, MessageCount, IntegrationError..."""
    for name, value in counts.items():
        unit = "Milliseconds" if name.endswith("Latency") else "Count"
        record(account, region, "AWS/ApiGateway", name, {"ApiId": api_id, "Stage": stage}, value, unit)
