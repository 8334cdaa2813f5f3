"""`python -m rollout rehearse`: the complete rollout, unchanged, against the embedded emulator
(no credentials, no network), then a proof of its result. Its waits pass on the emulator's clock,
so a bake of ten minutes is rehearsed in moments, with CloudWatch evaluating the new alarms each
emulated minute from what the emulator's functions and schedules did."""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any

from emulator import advance_clock, enable_state_machines, running_emulator, websocket_url
from generator.intrinsics import Evaluator
from generator.model import ENDPOINT_VARIABLE
from generator.names import Names
from rollout import session
from rollout.artifacts import load_template
from rollout.aws import Aws
from rollout.factory import Factory
from rollout.options import Options
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings, SettingsError
from rollout.stacks import StageFailed, describe
from rollout.summary import Summary

ROUTE_KEYS = {"$connect", "$disconnect", "$default"}


class RehearsalFailed(StageFailed):
    pass


def reset_account(endpoint_url: str) -> None:
    """moto's state is the process's: forget what an earlier emulator here left behind."""
    urllib.request.urlopen(urllib.request.Request(f"{endpoint_url}/moto-api/reset", method="POST"), timeout=30).read()
    enable_state_machines(endpoint_url)


def prepare_account(aws: Aws, settings: EnvironmentSettings) -> None:
    """What a real account would already have: the artifacts bucket."""
    s3 = aws.client("s3")
    if settings.artifacts_bucket not in {b["Name"] for b in s3.list_buckets().get("Buckets", [])}:
        s3.create_bucket(
            Bucket=settings.artifacts_bucket, CreateBucketConfiguration={"LocationConstraint": settings.region}
        )


@dataclass(frozen=True)
class Expected:
    """What every function of the compute stack must have, for the parameters it was deployed with."""

    functions: frozenset[str]  # the compute stack's
    variables: frozenset[str]  # conditional variables included or not
    architecture: str  # the one the handlers zip was built for
    kms_key: str  # "" when the functions use Lambda's own key
    runner: str = ""  # the rollout stack's runner function: not an endpoint function
    name_prefix: str = "cc"


def expected(aws: Aws, settings: EnvironmentSettings, compute_template: str) -> Expected:
    template = load_template(compute_template)
    stack = describe(aws.client("cloudformation"), settings.stacks["compute"])
    assert stack is not None
    evaluator = Evaluator(template, stack.parameters)
    function = next(r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function")
    properties = function["Properties"]
    (architecture,) = evaluator.eval(properties["Architectures"])
    return Expected(
        functions=frozenset(v for k, v in stack.outputs.items() if k.endswith("FunctionName")),
        variables=frozenset(evaluator.eval(properties["Environment"]["Variables"])),
        architecture=architecture,
        kms_key=evaluator.eval(properties.get("KmsKeyArn")) or "",
        runner=Names(stack.parameters.get("NamePrefix", "cc")).runner,
        name_prefix=stack.parameters.get("NamePrefix", "cc"),
    )


def prove(aws: Aws, management_endpoint: str, expected: Expected) -> dict[str, Any]:
    """Check what the rollout left behind: the API, its routes, integrations and stage; every
    function carrying the endpoint with no other variable lost; the compute stack's functions on
    the handlers zip's architecture, under the chosen environment key, logging to a log group with
    a retention."""
    api_id = management_endpoint.split("//", 1)[1].split(".", 1)[0]
    apigw = aws.client("apigatewayv2")
    routes = {r["RouteKey"]: r for r in apigw.get_routes(ApiId=api_id)["Items"]}
    integrations = {i["IntegrationId"]: i for i in apigw.get_integrations(ApiId=api_id)["Items"]}
    stages = [s["StageName"] for s in apigw.get_stages(ApiId=api_id)["Items"]]
    problems = []
    if set(routes) != ROUTE_KEYS:
        problems.append(f"routes are {sorted(routes)}, expected {sorted(ROUTE_KEYS)}")
    for key, route in routes.items():
        target = integrations.get(route.get("Target", "").removeprefix("integrations/"))
        if target is None or target["IntegrationType"] != "AWS_PROXY":
            problems.append(f"route {key} has no AWS_PROXY integration")
    stage_name = management_endpoint.rsplit("/", 1)[1]
    if stages != [stage_name]:
        problems.append(f"stages are {stages}, expected [{stage_name}]")
    lambda_client = aws.client("lambda")
    pages = aws.client("logs").get_paginator("describe_log_groups").paginate()
    retention = {group["logGroupName"]: group.get("retentionInDays") for page in pages for group in page["logGroups"]}
    functions = {}
    for function in lambda_client.list_functions()["Functions"]:
        if function["FunctionName"] == expected.runner:
            continue
        functions[function["FunctionName"]] = function
        problems += _function_problems(function, management_endpoint, expected, retention)
    missing = expected.functions - set(functions)
    if missing:
        problems.append(f"functions {sorted(missing)} do not exist")
    if problems:
        raise RehearsalFailed("; ".join(problems))
    prefix = Names(expected.name_prefix).alarm_prefix
    pages = aws.client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmNamePrefix=prefix)
    alarms = Counter(a["StateValue"] for page in pages for a in page["MetricAlarms"])
    return {
        "api_id": api_id,
        "routes": sorted(routes),
        "integrations": len(integrations),
        "stage": stage_name,
        "functions": sorted(functions),
        "architecture": expected.architecture,
        "alarms": dict(sorted(alarms.items())),  # by state, as CloudWatch has evaluated them
    }


def _function_problems(
    function: dict[str, Any], management_endpoint: str, expected: Expected, retention: dict[str, int | None]
) -> list[str]:
    name, problems = function["FunctionName"], []
    variables = function.get("Environment", {}).get("Variables", {})
    if variables.get(ENDPOINT_VARIABLE) != management_endpoint:
        problems.append(f"{name} does not carry the endpoint")
    lost = expected.variables - set(variables)
    if lost:
        problems.append(f"{name} lost {sorted(lost)}")
    if name not in expected.functions:
        return problems
    architectures = function.get("Architectures", ["x86_64"])
    if architectures != [expected.architecture]:
        problems.append(f"{name} runs on {architectures}, the handlers zip was built for {expected.architecture}")
    key = function.get("KMSKeyArn") or ""
    if key != expected.kms_key:
        problems.append(
            f"{name} environment key is {key or 'the default'}, expected {expected.kms_key or 'the default'}"
        )
    log_group = function.get("LoggingConfig", {}).get("LogGroup", f"/aws/lambda/{name}")
    if not retention.get(log_group):
        state = "has no retention" if log_group in retention else "does not exist"
        problems.append(f"{name} logs to {log_group}, which {state} (the stack's log groups keep logs for a set time)")
    return problems


def as_principal(admin: Aws, policy: dict[str, Any], factory: Factory) -> Aws:
    """Clients of a new user holding exactly `policy` (created with the emulator's own rights)."""
    iam = admin.client("iam")
    iam.create_user(UserName="release-engineer")
    iam.put_user_policy(UserName="release-engineer", PolicyName="rollout", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="release-engineer")["AccessKey"]
    return factory.aws(
        admin.region, endpoint_url=admin.endpoint_url, credentials=(key["AccessKeyId"], key["SecretAccessKey"])
    )


NO_DATABASE = "not proven: no database given (--database-url postgresql://...)"


@dataclass
class Rehearsed:
    """A rollout done into a running emulator: what it reported, the emulated account, and the
    session's database and key when it was given one."""

    settings: EnvironmentSettings
    summary: Summary
    aws: Aws
    setup: session.SessionSetup | None
    engineer: Aws  # whose calls the summary counts: the principal's with a policy, else `aws`


@contextmanager
def rehearsed(
    settings: EnvironmentSettings,
    report: Reporter,
    options: Options,
    engine_name: str = "local",
    factory: Factory | None = None,
    database_url: str | None = None,
    principal_policy: dict[str, Any] | None = None,
    *,
    database_as_is: bool = False,
    jwt_key: bytes | None = None,
) -> Iterator[Rehearsed]:
    """The rollout into a fresh emulator, which serves what it deployed until the block ends; with
    a PostgreSQL server's URL, the functions run on a throwaway database there (or on that
    database itself: `database_as_is`, with the tokens' `jwt_key`, for a local server); with
    `principal_policy` (`rollout policy`'s), as a user holding exactly it, every call authorized
    by the emulator as IAM would."""
    factory = factory or Factory()
    if principal_policy is not None and engine_name != "local":
        raise SettingsError(
            "a least-privilege rehearsal runs the local engine: the emulator's state machines and functions "
            "call it with no IAM identity of their own"
        )
    with running_emulator() as endpoint_url, ExitStack() as stack:
        from emulator.iam_enforcement import enforcing  # moto is there once the emulator runs

        reset_account(endpoint_url)  # an empty account even where this process ran an emulator before
        options = replace(options, sleep=advance_clock)  # waits pass on the emulator's clock
        admin = factory.aws(settings.region, endpoint_url=endpoint_url)
        prepare_account(admin, settings)
        setup = None
        if database_url and not options.dry_run:
            database = database_url if database_as_is else stack.enter_context(session.throwaway_database(database_url))
            settings, setup = session.with_session(settings, admin, database, jwt_key)
        aws = admin if principal_policy is None else as_principal(admin, principal_policy, factory)
        with enforcing() if principal_policy is not None else nullcontext():
            summary = factory.orchestrator(engine_name)(settings, aws, report, options)
        yield Rehearsed(settings, summary, admin, setup, aws)


def rehearse(
    settings: EnvironmentSettings,
    report: Reporter,
    options: Options,
    engine_name: str = "local",
    factory: Factory | None = None,
    principal_policy: dict[str, Any] | None = None,
    database_url: str | None = None,
) -> Summary:
    """The rollout into a fresh emulator, then its proof; with a PostgreSQL server's URL, also a
    session through the deployed stage (rollout/session.py) on a throwaway database there; with
    `principal_policy`, run as a user holding exactly it (see `rehearsed`)."""
    with rehearsed(settings, report, options, engine_name, factory, database_url, principal_policy) as done:
        summary = done.summary
        if not options.dry_run:
            summary.proof = prove_all(done.aws, done.settings, summary, options, done.setup)
        summary.aws_calls = {"total": done.engineer.counter.total, "mutating": done.engineer.counter.mutating}
    return summary


def prove_all(
    aws: Aws,
    settings: EnvironmentSettings,
    summary: Summary,
    options: Options,
    setup: session.SessionSetup | None,
) -> dict[str, Any]:
    """What the stacks hold (`prove`), then the session through the deployed stage, if it can run."""
    from rollout.preflight import rendered_templates

    proof = prove(
        aws, summary.management_endpoint, expected(aws, settings, rendered_templates(options.project)["compute"])
    )
    if setup is None:
        proof["session"] = NO_DATABASE
        return proof
    compute = describe(aws.client("cloudformation"), settings.stacks["compute"])
    assert compute is not None
    url = websocket_url(proof["api_id"], proof["stage"])
    try:
        proof["session"] = session.prove_session(aws, setup, url, compute.outputs["NotifyAliasArn"])
    except session.SessionFailed as error:
        raise RehearsalFailed(f"session through {url}: {error}") from None
    return proof
