"""EventBridge's scheduled rules, run on the emulator's clock (moto stores them and never fires
them), and Lambda's handling of the asynchronous invocation they make.

- A `rate(N unit)` rule fires every N units counted from when it was put (EventBridge counts a
  rate from the rule's creation), at the first minute boundary its time has come, while it is
  ENABLED. A `cron(...)` rule fires at each minute its expression names, in UTC (EventBridge's
  six fields, `?`, `L`, `W` and `#` as pyawscron reads them), from the first such minute after it
  was put.
- For each Lambda target, the function's resource policy must let events.amazonaws.com invoke it
  for this rule (AWS:SourceArn); otherwise, or when the function is gone, the invocation fails:
  AWS/Events FailedInvocations. Else AWS/Events Invocations, and the function runs.
- Lambda runs an asynchronous event and, when it fails, retries it twice (one minute, then two
  minutes later); after the third failure, with no destination, the event is dropped:
  AWS/Lambda AsyncEventsDropped."""

from __future__ import annotations

import datetime
import fnmatch
import functools
import json
import re
import uuid
from dataclasses import dataclass
from typing import Any

from moto.awslambda.models import LambdaFunction, lambda_backends
from moto.events.models import EventsBackend, Rule, events_backends
from moto.moto_api._internal.models import MotoAPIBackend
from pyawscron import AWSCron

from emulator import clock, functions, metrics

RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
CRON = re.compile(r"^cron\((.+)\)$")
UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}
RETRY_DELAYS = (60, 120)  # Lambda's two retries of a failed asynchronous invocation


@dataclass
class Retry:
    due: float
    account: str
    region: str
    function_arn: str
    event: bytes
    attempt: int  # retries made so far


_retries: list[Retry] = []


def interval(expression: str | None) -> int | None:
    match = RATE.match(expression or "")
    return int(match[1]) * UNIT_SECONDS[match[2].rstrip("s")] if match else None


@functools.lru_cache(maxsize=64)
def _cron(fields: str) -> AWSCron:
    return AWSCron(fields)


def cron_fires_at(expression: str | None, minute: float) -> bool:
    """Whether a cron() expression names this minute (seconds since the epoch, on a boundary)."""
    match = CRON.match(expression or "")
    if not match:
        return False
    moment = datetime.datetime.fromtimestamp(minute, datetime.UTC)
    just_before = moment - datetime.timedelta(seconds=1)
    return bool(_cron(match[1]).occurrence(just_before).next() == moment)


def _anchor(rule: Rule) -> float:
    return float(rule.__dict__.setdefault("_emulator_anchor", clock.now()))


def allowed(function: LambdaFunction, rule_arn: str) -> bool:
    """Whether the function's resource policy lets EventBridge invoke it for this rule."""
    for statement in function.policy.statements:
        principal = statement.get("Principal", {})
        service = principal.get("Service") if isinstance(principal, dict) else principal
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        if statement.get("Effect") != "Allow" or service != "events.amazonaws.com":
            continue
        if not any(a in ("lambda:InvokeFunction", "lambda:*") for a in actions):
            continue
        condition = statement.get("Condition", {})
        sources = [v.get("AWS:SourceArn") for v in condition.values() if isinstance(v, dict)]
        if all(s is None or fnmatch.fnmatchcase(rule_arn, s) for s in sources):
            return True
    return False


def _event(rule: Rule, minute: float) -> bytes:
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": rule.account_id,
            "time": clock.utc(minute).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": rule.region_name,
            "resources": [rule.arn],
            "detail": {},
        }
    ).encode()


def _function(account: str, region: str, arn: str) -> LambdaFunction | None:
    try:
        return lambda_backends[account][region].get_function(arn)
    except Exception:  # gone: moto raises its own not-found errors
        return None


def _run(account: str, region: str, function: LambdaFunction, event: bytes, attempt: int, minute: float) -> None:
    result = functions.invoke(function, event)
    if not result.function_error:
        return
    if attempt < len(RETRY_DELAYS):
        _retries.append(
            Retry(minute + RETRY_DELAYS[attempt], account, region, function.function_arn, event, attempt + 1)
        )
    else:
        metrics.record(account, region, "AWS/Lambda", "AsyncEventsDropped", {"FunctionName": function.function_name}, 1)


def fire(rule: Rule, minute: float) -> None:
    """One scheduled event to each of the rule's targets."""
    for target in rule.targets:
        arn = str(target.get("Arn", ""))
        if ":lambda:" not in arn:
            continue
        function = _function(rule.account_id, rule.region_name, arn)
        ok = function is not None and allowed(function, rule.arn)
        name = "Invocations" if ok else "FailedInvocations"
        metrics.record(rule.account_id, rule.region_name, "AWS/Events", name, {"RuleName": rule.name}, 1)
        if function is not None and ok:
            _run(rule.account_id, rule.region_name, function, _event(rule, minute), 0, minute)


def _rules() -> list[Rule]:
    return [
        rule
        for regions in list(events_backends.values())
        for backend in list(regions.values())
        for bus in list(backend.event_buses.values())
        for rule in list(bus.rules.values())
    ]


def run_due(minute: float) -> None:
    """What is due by this minute: each rule's scheduled runs, then Lambda's retries."""
    for rule in _rules():
        if minute > _anchor(rule) and cron_fires_at(rule.scheduled_expression, minute):
            if rule.state == "ENABLED":
                fire(rule, minute)
            continue
        every = interval(rule.scheduled_expression)
        if every is None:
            continue
        due = int((minute - _anchor(rule)) // every)  # runs due since the rule was put
        if due > int(rule.__dict__.get("_emulator_fired", 0)):
            rule.__dict__["_emulator_fired"] = due  # a disabled rule's runs are not made up later
            if rule.state == "ENABLED":
                fire(rule, minute)
    for retry in [r for r in _retries if r.due <= minute]:
        _retries.remove(retry)
        function = _function(retry.account, retry.region, retry.function_arn)
        if function is not None:
            _run(retry.account, retry.region, function, retry.event, retry.attempt, minute)


def _anchored(original: Any) -> Any:
    def put_rule(self: EventsBackend, name: str, *args: Any, **kwargs: Any) -> Rule:
        rule = original(self, name, *args, **kwargs)
        rule.__dict__["_emulator_anchor"] = clock.now()  # a rate counts from when the rule was put
        return rule

    return put_rule


_installed = False


def _forgetting(original: Any) -> Any:
    def reset(self: MotoAPIBackend) -> None:
        original(self)
        _retries.clear()

    return reset


def install() -> None:
    global _installed
    if not _installed:
        EventsBackend.put_rule = _anchored(EventsBackend.put_rule)  # type: ignore[method-assign]
        MotoAPIBackend.reset = _forgetting(MotoAPIBackend.reset)  # type: ignore[method-assign]
        _installed = True
