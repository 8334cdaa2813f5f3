"""The calls a rehearsal makes are a subset of what its steps declare: the runner's role and the
release engineer's policy are generated from the declarations, so an undeclared call is a call AWS
would refuse."""

from __future__ import annotations

import io
from fnmatch import fnmatchcase
from typing import Any

import pytest

from rollout import engine, package, settings
from rollout.aws import Aws
from rollout.plan import Plan
from rollout.prepare import prepare, upload
from rollout.rehearsal import prepare_account
from rollout.report import Reporter
from rollout.steps import DeployStack
from tests.rollout.conftest import with_parameters


def resource(plan: Plan, operation: str, target: str) -> str:
    """The ARN a call acts on, from the target it named (a name, an id or a prefix)."""
    if target.startswith("arn:"):
        return target
    service = operation.split(":")[0]
    kind = {"cloudformation": f"stack/{target}/id", "lambda": f"function:{target}", "cloudwatch": f"alarm:{target}"}
    if service == "iam":
        return plan.where.arn(service, f"role/{target}", regional=False)
    return plan.where.arn(service, kind[service])


def undeclared(plan: Plan, results: list[dict[str, Any]]) -> list[str]:
    """Each call ("service:Operation target") that no declaration of its own step allows."""
    found = []
    for result in results:
        step = plan.step(result["stage"])
        assert step is not None
        declared = step.calls(plan.where)
        for call in result["calls"]:
            operation, _, target = call.partition(" ")
            arn = resource(plan, operation, target)
            if not any(c.action == operation and fnmatchcase(arn, c.resource) for c in declared):
                found.append(f"{step.name}: {call}")
    return found


def rehearse(
    emulator: str, env: settings.EnvironmentSettings, artifact: package.Artifact
) -> tuple[Plan, list[dict[str, Any]]]:
    aws, report = Aws(env.region, endpoint_url=emulator), Reporter(io.StringIO())
    prepare_account(aws, env)
    options = engine.Options(poll_seconds=0, build_package=lambda *_: artifact, bake_seconds=1, sleep=lambda _s: None)
    with prepare(env, aws, report, options, "local") as prepared:
        plan = prepared.plan(options)
        upload(aws, plan, prepared, report, dry_run=False)
        results = engine.execute(
            plan, engine.LocalContext(aws, report, options.confirm), engine.current_outputs(prepared), options.sleep
        )
    return plan, results


def test_every_call_of_a_fresh_and_a_changed_rollout_is_declared(
    emulator: str, env_settings: settings.EnvironmentSettings, built_artifact: package.Artifact
) -> None:
    plan, results = rehearse(emulator, env_settings, built_artifact)
    assert {r["stage"] for r in results} == {"compute", "settle", "websocket", "endpoint", "carry", "bake"}
    assert sum(sum(r["calls"].values()) for r in results) > 30 and undeclared(plan, results) == []
    plan, results = rehearse(
        emulator, with_parameters(env_settings, "websocket", ThrottlingRateLimit="3"), built_artifact
    )
    assert undeclared(plan, results) == []


def test_a_step_making_an_undeclared_call_is_caught(
    emulator: str,
    env_settings: settings.EnvironmentSettings,
    built_artifact: package.Artifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    declared = DeployStack.calls
    monkeypatch.setattr(
        DeployStack,
        "calls",
        lambda self, where: [c for c in declared(self, where) if c.action != "cloudformation:DescribeStackEvents"],
    )
    plan, results = rehearse(emulator, env_settings, built_artifact)
    assert "compute: cloudformation:DescribeStackEvents cc-websocket-compute" in undeclared(plan, results)
