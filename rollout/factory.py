"""One factory builds what a command runs: its AWS clients, its options and its orchestrator.

Every command gets it from `cli.main`; a test substitutes here (a package already built, a hook
on every botocore session it opens, an orchestrator that fails) instead of patching module globals.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from botocore.config import Config

from generator.project import Project
from rollout import package
from rollout.aws import Aws
from rollout.options import Options
from rollout.report import Reporter
from rollout.settings import EnvironmentSettings
from rollout.summary import Summary

ENGINES = ("local", "stepfunctions")


class Orchestrator(Protocol):
    def __call__(self, settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary: ...


def _local(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    from rollout import engine

    return engine.run(settings, aws, report, options)


def _stepfunctions(settings: EnvironmentSettings, aws: Aws, report: Reporter, options: Options) -> Summary:
    from rollout import sfn_engine  # imported when chosen: the local engine never needs it

    return sfn_engine.run(settings, aws, report, options)


@dataclass(frozen=True)
class Factory:
    build_package: Callable[[package.Target, Project], package.Artifact] | None = None
    on_session: Callable[[Aws], None] | None = None  # e.g. a test's fault injection on every session
    client_config: Config | None = None  # timeouts and retries (default rollout.aws.RETRIES)
    # How long a new account logging role settles (default ACCOUNT_ROLE_SETTLE_SECONDS): a test on
    # the emulator, whose IAM is instant unless it injects propagation, chooses 0.
    role_settle_seconds: float | None = None
    orchestrators: Mapping[str, Orchestrator] = field(
        default_factory=lambda: {"local": _local, "stepfunctions": _stepfunctions}
    )

    def aws(
        self,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> Aws:
        aws = Aws(
            region, profile=profile, endpoint_url=endpoint_url, credentials=credentials, config=self.client_config
        )
        if self.on_session is not None:
            self.on_session(aws)
        return aws

    def options(self, **values: Any) -> Options:
        if self.build_package is not None:
            values.setdefault("build_package", self.build_package)
        if self.role_settle_seconds is not None:
            values.setdefault("role_settle_seconds", self.role_settle_seconds)
        return Options(**values)

    def orchestrator(self, engine: str) -> Orchestrator:
        if engine not in self.orchestrators:
            raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
        from rollout.deadline import bounded

        return bounded(self.orchestrators[engine])  # every run within its bound (--max-minutes)
