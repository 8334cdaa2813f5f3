"""How a rollout runs: dry or not, how it waits, how it asks, how it builds the handlers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from generator.project import Project
from rollout import package
from rollout.steps import ACCOUNT_ROLE_SETTLE_SECONDS


@dataclass
class Options:
    dry_run: bool = False
    poll_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    confirm: Callable[[str], bool] = field(default=lambda _question: True)
    build_package: Callable[[package.Target, Project], package.Artifact] = lambda target, project: package.build(
        target, project=project
    )
    # How long a role the compute stack just created gets to propagate in IAM before the websocket
    # stack hands it to API Gateway (tests on an emulator whose IAM is instant choose 0).
    role_settle_seconds: float = ACCOUNT_ROLE_SETTLE_SECONDS
    bake_seconds: int | None = None  # --bake-seconds: overrides the environment's bake_seconds
    allow_replacement: bool = False  # --allow-replacement: a plan may replace resources (rollout/protection.py)
    project: Project = field(default_factory=Project.find)  # made by the command's main
    # A rollback (rollout/rollback.py): the recorded release's templates (stem -> text) instead of the
    # project's, and the record's mark {"of": the release undone, "to": the release restored}.
    templates: dict[str, str] | None = None
    rollback: dict[str, str] | None = None
    max_minutes: float | None = None  # the whole run's bound: --max-minutes, else rollout.deadline.default_minutes
    clock: Callable[[], float] = time.monotonic  # what the bound is measured on (a test's own clock)
