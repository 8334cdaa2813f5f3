"""How a rollout runs: dry or not, how it waits, how it asks, how it builds the handlers."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from generator.project import Project
from rollout import package


@dataclass
class Options:
    dry_run: bool = False
    poll_seconds: float = 2.0
    sleep: Callable[[float], None] = time.sleep
    confirm: Callable[[str], bool] = field(default=lambda _question: True)
    build_package: Callable[[package.Target, Project], package.Artifact] = lambda target, project: package.build(
        target, project=project
    )
    bake_seconds: int | None = None  # --bake-seconds: overrides the environment's bake_seconds
    project: Project = field(default_factory=Project.find)  # made by the command's main
    max_minutes: float | None = None  # --max-minutes: the whole run's bound (None: rollout.deadline.MAX_MINUTES)
    clock: Callable[[], float] = time.monotonic  # what the bound is measured on (a test's own clock)
