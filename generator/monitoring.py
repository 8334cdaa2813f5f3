"""Alarms, their topic, and the dashboard: what tells a release engineer that new code fails.

The original module names the metrics to watch and builds nothing for them. Here:
- the websocket template alarms on the stage (integration and execution errors, client errors as
  a rate of messages, integration latency p99 as a share of the integration timeout) and builds
  the dashboard;
- the compute template alarms on each handler function (errors, throttles, duration p99 as a share
  of its timeout) and on the scheduled cleanup failing to run, and owns the alarm topic: an existing
  topic's ARN, or one it creates, encrypted with a key CloudWatch may use (the AWS-managed
  `alias/aws/sns` key would silently drop every alarm notification), with an optional e-mail.
Every alarm is named `${NamePrefix}-websocket-alarm-...` (ALARM_PREFIX): the rollout's bake step
and `rollout status` find them by that prefix. Every threshold and period is a parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from awacs.aws import Action as AwacsAction
from awacs.aws import Allow, BoolIfExists, Condition, Deny, PolicyDocument, Principal, Statement
from troposphere import AWSHelperFn, Equals, GetAtt, If, Not, Parameter, Ref, Sub, Template
from troposphere.cloudwatch import Alarm, Dashboard, Metric, MetricDataQuery, MetricDimension, MetricStat
from troposphere.kms import Key
from troposphere.sns import Subscription, Topic

from generator.common import tags
from generator.model import ALARM_PREFIX, ALIAS, HandlerFunction
from generator.names import Names
from generator.parameters import ParameterSet
from generator.stages import VERSION_ALARM_SUFFIX

GROUP = "Alarms"
SNS_TOPIC_ARN_PATTERN = r"^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_-]{1,256}$"
PERIODS = [60, 300, 900, 3600]


def _number(params: ParameterSet, name: str, label: str, default: int, low: int, high: int, what: str) -> None:
    params.add(GROUP, name, label, Type="Number", Default=default, MinValue=low, MaxValue=high, Description=what)


def add_common_parameters(params: ParameterSet, topic: str) -> None:
    """The alarm topic (described as this template uses it) and the period every alarm shares."""
    params.add(
        GROUP,
        "AlarmTopicArn",
        "Alarm topic ARN",
        Type="String",
        Default="",
        AllowedPattern=SNS_TOPIC_ARN_PATTERN,
        Description=topic,
    )
    params.add(
        GROUP,
        "AlarmPeriodSeconds",
        "Alarm period (s)",
        Type="Number",
        Default=300,
        AllowedValues=PERIODS,
        Description="Period over which each alarm sums or takes percentiles; one period in breach raises it.",
    )


def add_websocket_parameters(params: ParameterSet) -> None:
    add_common_parameters(
        params, "SNS topic the stage's alarms notify (the rollout passes the compute stack's); empty: no actions."
    )
    _number(
        params,
        "ApiIntegrationErrorThreshold",
        "Integration errors",
        5,
        1,
        100000,
        "Integration errors (handler failures answered to clients) per period that raise the alarm.",
    )
    _number(
        params,
        "ApiExecutionErrorThreshold",
        "Execution errors",
        1,
        1,
        100000,
        "API Gateway execution errors (integration not called: permissions, timeouts) per period that raise it.",
    )
    _number(
        params,
        "ApiClientErrorRatePercent",
        "Client error rate (%)",
        10,
        1,
        100,
        "Client errors (4xx before the integration: throttling, too large, unauthorised) as a percentage of messages.",
    )
    _number(
        params,
        "ApiLatencyPercentOfTimeout",
        "Latency p99 (% of timeout)",
        80,
        1,
        100,
        "Integration latency p99 as a percentage of IntegrationTimeoutMillis that raises the alarm.",
    )


def add_compute_parameters(params: ParameterSet) -> None:
    add_common_parameters(params, "Existing SNS topic for every alarm; empty: this stack creates an encrypted one.")
    params.add(
        GROUP,
        "AlarmEmail",
        "Alarm e-mail",
        Type="String",
        Default="",
        AllowedPattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$",
        Description="E-mail address subscribed to the created topic (it must confirm); empty: none.",
    )
    _number(
        params,
        "FunctionErrorThreshold",
        "Function errors",
        1,
        1,
        100000,
        "Errors of one handler function per period that raise its alarm.",
    )
    _number(
        params,
        "FunctionThrottleThreshold",
        "Function throttles",
        1,
        1,
        100000,
        "Throttled invocations of one handler function per period that raise its alarm.",
    )
    _number(
        params,
        "FunctionDurationPercentOfTimeout",
        "Duration p99 (% of timeout)",
        80,
        1,
        100,
        "A function's duration p99 as a percentage of its timeout that raises its alarm.",
    )


def _alarm(
    title: str, suffix: str, description: str, actions: AWSHelperFn, *, missing: str, **properties: Any
) -> Alarm:
    return Alarm(
        title,
        AlarmName=Sub(f"{ALARM_PREFIX}{suffix}"),
        AlarmDescription=description,
        ActionsEnabled=True,
        AlarmActions=actions,
        OKActions=actions,
        EvaluationPeriods=1,
        TreatMissingData=missing,
        **properties,
    )


def _dimensions(dimensions: dict[str, Any]) -> list[MetricDimension]:
    return [MetricDimension(Name=k, Value=v) for k, v in dimensions.items()]


def _sum_alarm(
    p: Mapping[str, Parameter],
    title: str,
    suffix: str,
    description: str,
    actions: AWSHelperFn,
    namespace: str,
    metric: str,
    dimensions: dict[str, Any],
    threshold: str,
) -> Alarm:
    """Raised when the metric's sum over a period reaches the `threshold` parameter (no data: no error)."""
    return _alarm(
        title,
        suffix,
        description,
        actions,
        missing="notBreaching",
        Namespace=namespace,
        MetricName=metric,
        Dimensions=_dimensions(dimensions),
        Statistic="Sum",
        Period=Ref(p["AlarmPeriodSeconds"]),
        Threshold=Ref(p[threshold]),
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )


def _math_alarm(
    p: Mapping[str, Parameter],
    title: str,
    suffix: str,
    description: str,
    actions: AWSHelperFn,
    threshold: str,
    metrics: list[MetricDataQuery],
) -> Alarm:
    """Raised when the metric math's result goes over the `threshold` parameter (no data: no error)."""
    return _alarm(
        title,
        suffix,
        description,
        actions,
        missing="notBreaching",
        ComparisonOperator="GreaterThanThreshold",
        Threshold=Ref(p[threshold]),
        Metrics=metrics,
    )


def _stat(
    p: Mapping[str, Parameter], query_id: str, namespace: str, metric: str, dimensions: dict[str, Any], stat: str
) -> MetricDataQuery:
    return MetricDataQuery(
        Id=query_id,
        ReturnData=False,
        MetricStat=MetricStat(
            Metric=Metric(
                Namespace=namespace,
                MetricName=metric,
                Dimensions=_dimensions(dimensions),
            ),
            Period=Ref(p["AlarmPeriodSeconds"]),
            Stat=stat,
        ),
    )


def _expression(expression: str, label: str) -> MetricDataQuery:
    return MetricDataQuery(
        Id="e1", Expression=Sub(expression) if "${" in expression else expression, Label=label, ReturnData=True
    )


# --- websocket ------------------------------------------------------------------------------------


def websocket_alarms(template: Template, api: AWSHelperFn, stage: AWSHelperFn) -> None:
    p = template.parameters
    template.add_condition("AlarmTopicGiven", Not(Equals(Ref(p["AlarmTopicArn"]), "")))
    actions = If("AlarmTopicGiven", [Ref(p["AlarmTopicArn"])], Ref("AWS::NoValue"))
    stage_of = {"ApiId": api, "Stage": stage}
    for title, suffix, metric, threshold, meaning in (
        ("ApiIntegrationErrorsAlarm", "api-integration-errors", "IntegrationError", "ApiIntegrationErrorThreshold",
         "Handlers answered with errors (or failed): clients saw them. First: the handler's logs for the period."),
        ("ApiExecutionErrorsAlarm", "api-execution-errors", "ExecutionError", "ApiExecutionErrorThreshold",
         "API Gateway could not call a handler (permission, timeout, throttled function). First: the stage's "
         "access log (integrationError) and the function's throttles."),
    ):  # fmt: skip
        template.add_resource(
            _sum_alarm(p, title, suffix, meaning, actions, "AWS/ApiGateway", metric, stage_of, threshold)
        )
    template.add_resource(
        _math_alarm(
            p,
            "ApiClientErrorRateAlarm",
            "api-client-error-rate",
            "Too many messages refused before a handler runs (429 throttling, 413 too large, 403). First: the "
            "access log's status and errorMessage; raise throttling if it is 429.",
            actions,
            "ApiClientErrorRatePercent",
            [
                _stat(p, "errors", "AWS/ApiGateway", "ClientError", stage_of, "Sum"),
                _stat(p, "messages", "AWS/ApiGateway", "MessageCount", stage_of, "Sum"),
                _expression("IF(messages > 0, 100 * errors / messages, 0)", "client errors (% of messages)"),
            ],
        )
    )
    template.add_resource(
        _math_alarm(
            p,
            "ApiLatencyAlarm",
            "api-latency-p99",
            "Handlers are close to the integration timeout (then clients get 504s). First: the handler's duration "
            "and the database's latency.",
            actions,
            "ApiLatencyPercentOfTimeout",
            [
                _stat(p, "latency", "AWS/ApiGateway", "IntegrationLatency", stage_of, "p99"),
                _expression("100 * latency / ${IntegrationTimeoutMillis}", "integration latency p99 (% of timeout)"),
            ],
        )
    )


def _widget(title: str, metrics: list[list[Any]], x: int, y: int, stat: str = "Sum") -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 8,
        "height": 6,
        "properties": {
            "title": title,
            "region": "${AWS::Region}",
            "stat": stat,
            "period": 300,
            "view": "timeSeries",
            "metrics": metrics,
        },
    }


def _functions(metric: str, stat: str) -> list[list[Any]]:
    search = f"SEARCH('{{AWS/Lambda,FunctionName}} MetricName=\"{metric}\" \"{Names().stem}-\"', '{stat}', 300)"
    return [[{"expression": search, "id": "f", "label": ""}]]


def dashboard_body() -> str:
    """The dashboard as a Fn::Sub string: the stage's connections, messages, errors and latency,
    and every handler function's invocations, errors, duration and concurrency."""
    stage = ["ApiId", "${Api}", "Stage", "${Stage}"]
    api = "AWS/ApiGateway"
    widgets = [
        _widget("Connections ($connect)", [[api, "ConnectCount", *stage]], 0, 0),
        _widget("Messages", [[api, "MessageCount", *stage]], 8, 0),
        _widget(
            "Errors", [[api, name, *stage] for name in ("IntegrationError", "ExecutionError", "ClientError")], 16, 0
        ),
        _widget(
            "Integration latency (ms)",
            [[api, "IntegrationLatency", *stage, {"stat": s}] for s in ("p50", "p99")],
            0,
            6,
            "p99",
        ),
        _widget("Function invocations", _functions("Invocations", "Sum"), 8, 6),
        _widget("Function errors", _functions("Errors", "Sum"), 16, 6),
        _widget("Function duration p99 (ms)", _functions("Duration", "p99"), 0, 12, "p99"),
        _widget("Function concurrency", _functions("ConcurrentExecutions", "Maximum"), 8, 12, "Maximum"),
        _widget("Function throttles", _functions("Throttles", "Sum"), 16, 12),
    ]
    return json.dumps({"widgets": widgets}, separators=(",", ":"))


def dashboard(template: Template) -> None:
    template.add_resource(
        Dashboard("Dashboard", DashboardName=Sub(Names().dashboard), DashboardBody=Sub(dashboard_body()))
    )


# --- compute --------------------------------------------------------------------------------------


def alarm_topic(template: Template) -> AWSHelperFn:
    """The topic every alarm notifies: the one given, or one created with its own key."""
    p = template.parameters
    template.add_condition("CreateAlarmTopic", Equals(Ref(p["AlarmTopicArn"]), ""))
    template.add_condition("AlarmEmailGiven", Not(Equals(Ref(p["AlarmEmail"]), "")))
    root = Principal("AWS", Sub("arn:${AWS::Partition}:iam::${AWS::AccountId}:root"))
    key = template.add_resource(
        Key(
            "AlarmTopicKey",
            Condition="CreateAlarmTopic",
            DeletionPolicy="Delete",  # scheduled for deletion with its topic: nothing else is encrypted with it
            UpdateReplacePolicy="Delete",
            Description="Encrypts the WebSocket alarm topic; CloudWatch may use it to publish",
            EnableKeyRotation=True,
            KeyPolicy=PolicyDocument(
                Version="2012-10-17",
                Statement=[
                    Statement(
                        Sid="Account", Effect=Allow, Principal=root, Action=[AwacsAction("kms", "*")], Resource=["*"]
                    ),
                    # Grants only for AWS resources or services (Control Tower CT.KMS.PR.3): nothing here
                    # needs a grant, and a grant outlives the key policy's review.
                    Statement(
                        Sid="GrantsOnlyForAwsServices",
                        Effect=Deny,
                        Principal=Principal("*"),
                        Action=[AwacsAction("kms", "CreateGrant")],
                        Resource=["*"],
                        Condition=Condition(
                            BoolIfExists({"kms:GrantIsForAWSResource": "false", "aws:PrincipalIsAWSService": "false"})
                        ),
                    ),
                    Statement(
                        Sid="CloudWatchPublishes",
                        Effect=Allow,
                        Principal=Principal("Service", "cloudwatch.amazonaws.com"),
                        Action=[AwacsAction("kms", "Decrypt"), AwacsAction("kms", "GenerateDataKey*")],
                        Resource=["*"],
                    ),
                ],
            ),
            Tags=tags("compute"),
        )
    )
    topic = template.add_resource(
        Topic(
            "AlarmTopic",
            Condition="CreateAlarmTopic",
            TopicName=Sub(f"{ALARM_PREFIX}topic"),
            DisplayName="CareConnect WebSocket alarms",
            KmsMasterKeyId=GetAtt(key, "Arn"),
            Subscription=If(
                "AlarmEmailGiven", [Subscription(Endpoint=Ref(p["AlarmEmail"]), Protocol="email")], Ref("AWS::NoValue")
            ),
            Tags=tags("compute"),
        )
    )
    return If("CreateAlarmTopic", Ref(topic), Ref(p["AlarmTopicArn"]))


def function_alarms(
    template: Template, functions: list[tuple[HandlerFunction, Any]], timeouts: dict[str, str], topic: AWSHelperFn
) -> None:
    p = template.parameters
    actions = [topic]
    for function, resource in functions:
        name = {"FunctionName": Ref(resource)}
        for kind, metric, threshold, meaning in (
            ("Errors", "Errors", "FunctionErrorThreshold",
             f"{function.display_name} failed (an exception or timeout). First: its log group, filtered on ERROR."),
            ("Throttles", "Throttles", "FunctionThrottleThreshold",
             f"{function.display_name} was throttled (account or reserved concurrency). First: the account's "
             "concurrent executions; ask for a higher limit or reserve concurrency."),
        ):  # fmt: skip
            template.add_resource(
                _sum_alarm(
                    p,
                    f"{function.logical}{kind}Alarm",
                    f"{function.suffix}-{kind.lower()}",
                    meaning,
                    actions,
                    "AWS/Lambda",
                    metric,
                    name,
                    threshold,
                )
            )
        timeout = timeouts.get(function.logical, "Timeout")
        template.add_resource(
            _math_alarm(
                p,
                f"{function.logical}DurationAlarm",
                f"{function.suffix}-duration-p99",
                f"{function.display_name} runs close to its timeout. First: its slowest invocations (REPORT lines) "
                "and the database's latency.",
                actions,
                "FunctionDurationPercentOfTimeout",
                [
                    _stat(p, "duration", "AWS/Lambda", "Duration", name, "p99"),
                    _expression(f"100 * duration / (${{{timeout}}} * 1000)", "duration p99 (% of timeout)"),
                ],
            )
        )


def version_alarms(template: Template, released: list[tuple[HandlerFunction, Any, Any]], topic: AWSHelperFn) -> None:
    """Per function, the errors of the version this release published, counted through the live
    alias only (Lambda's Resource and ExecutedVersion dimensions, as SAM's canary alarms): during a
    canary the function's own alarm sees the old version's traffic too, and 10% failing can stay
    under its threshold; this one sees the new version alone. The shift and the bake read it as
    every alarm; it follows each release (ExecutedVersion is the Version resource's number)."""
    p = template.parameters
    for function, resource, version in released:
        dimensions = {
            "FunctionName": Ref(resource),
            "Resource": Sub(f"${{Name}}:{ALIAS}", Name=Ref(resource)),
            "ExecutedVersion": GetAtt(version, "Version"),
        }
        template.add_resource(
            _sum_alarm(
                p,
                f"{function.logical}VersionErrorsAlarm",
                f"{function.suffix}{VERSION_ALARM_SUFFIX}",
                f"{function.display_name}'s newest version failed through the {ALIAS} alias (an exception or "
                "timeout). During a canary or linear shift it moves the aliases back. First: that version's "
                "log streams (the version is in their names), filtered on ERROR.",
                [topic],
                "AWS/Lambda",
                "Errors",
                dimensions,
                "FunctionErrorThreshold",
            )
        )


def cleanup_alarms(template: Template, cleanup: Any, rule: Any, topic: AWSHelperFn) -> None:
    """The cleanup runs asynchronously: EventBridge hands each event to Lambda (FailedInvocations
    when it cannot), Lambda retries a failed run twice and then drops the event
    (AsyncEventsDropped). Both metrics only exist once something went wrong, so missing data is
    not breaching: a new stack, on which no cleanup has run yet, starts OK (an alarm on "no
    invocation", breaching on missing data, was in ALARM on every new stack and failed the first
    prod bake). The cleanup's errors, throttles and duration have their function alarms."""
    p = template.parameters
    template.add_resource(
        _alarm(
            "CleanupScheduleFailedAlarm",
            "cleanup-schedule-failed",
            "EventBridge could not invoke the cleanup (the function or its invoke permission is gone, or Lambda "
            "refused the event): stale connections pile up. First: the rule's target and CleanupInvokePermission.",
            [topic],
            missing="notBreaching",
            Namespace="AWS/Events",
            MetricName="FailedInvocations",
            Dimensions=_dimensions({"RuleName": Ref(rule)}),
            Statistic="Sum",
            Period=Ref(p["AlarmPeriodSeconds"]),
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    )
    template.add_resource(
        _alarm(
            "CleanupDroppedAlarm",
            "cleanup-dropped",
            "A scheduled cleanup failed three times (the first run and Lambda's two retries) and its event was "
            "dropped. First: the cleanup's log group, filtered on ERROR; the next scheduled run retries the work.",
            [topic],
            missing="notBreaching",
            Namespace="AWS/Lambda",
            MetricName="AsyncEventsDropped",
            Dimensions=_dimensions({"FunctionName": Ref(cleanup)}),
            Statistic="Sum",
            Period=Ref(p["AlarmPeriodSeconds"]),
            Threshold=1,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    )


def compute_monitoring(
    template: Template, functions: list[tuple[HandlerFunction, Any]], timeouts: dict[str, str], cleanup_rule: Any
) -> AWSHelperFn:
    """Topic, function alarms and the cleanup alarms; returns the topic ARN (an output)."""
    topic = alarm_topic(template)
    function_alarms(template, functions, timeouts, topic)
    by_name = {f.logical: resource for f, resource in functions}
    cleanup_alarms(template, by_name["Cleanup"], cleanup_rule, topic)
    return topic
