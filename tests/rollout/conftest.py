"""Rollout fixtures: the handlers package built once per session, settings for a test environment
and a rollout run against the emulator (tests/conftest.py: a clean emulated account per test)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rollout import package, settings
from rollout.aws import Aws
from rollout.factory import Factory
from rollout.rehearsal import prepare_account
from rollout.report import Reporter
from tests.emulator.lambda_zips import zip_of

HOTFIX = zip_of({"app.py": "def handler(event, context):\n    return {'statusCode': 200}\n"})  # other code


@pytest.fixture(scope="session")
def built_artifact(tmp_path_factory: pytest.TempPathFactory) -> package.Artifact:
    return package.build(package.Target(), tmp_path_factory.mktemp("lambda"))


@pytest.fixture
def env_settings() -> settings.EnvironmentSettings:
    return settings.load("rehearsal")


def with_parameters(base: settings.EnvironmentSettings, stage: str, **values: str) -> settings.EnvironmentSettings:
    raw = {"region": base.region, "artifacts_bucket": base.artifacts_bucket, "stacks": base.stacks,
           "parameters": {**base.parameters, stage: {**base.parameters[stage], **values}},
           "endpoint_consumers": list(base.endpoint_consumers), "migrate": base.migrate,
           "bake_seconds": base.bake_seconds}  # fmt: skip
    return settings.validate(base.name, base.path, raw)


class Run:
    """One rollout against the emulator, with its own call counter and captured report."""

    def __init__(self, emulator: str, built: package.Artifact, tmp_path: Path) -> None:
        self.emulator, self.built, self.tmp_path = emulator, built, tmp_path

    def __call__(
        self,
        env: settings.EnvironmentSettings,
        engine_name: str = "local",
        on_session: Callable[[Aws], None] | None = None,
        **option_overrides: Any,
    ) -> tuple[dict[str, Any], Aws, str]:
        """`on_session`: a hook on the run's boto3 session (fault injection, observers)."""
        factory = Factory(build_package=lambda *_: self.built, on_session=on_session)
        aws = factory.aws(env.region, endpoint_url=self.emulator)
        prepare_account(aws, env)
        aws.counter.calls.clear()
        log = self.tmp_path / "report.log"
        with log.open("w") as stream:
            # The emulator's IAM is instant unless a test injects propagation (which then names
            # the settle time it rehearses).
            options = factory.options(**({"poll_seconds": 0, "role_settle_seconds": 0} | option_overrides))
            summary = factory.orchestrator(engine_name)(env, aws, Reporter(stream), options).to_dict()
        return summary, aws, log.read_text()


@pytest.fixture
def rollout(emulator: str, built_artifact: package.Artifact, tmp_path: Path) -> Run:
    return Run(emulator, built_artifact, tmp_path)
