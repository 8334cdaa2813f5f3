"""Every template the generator produces, by file stem. Each builder's module is imported when
that template is built: a deploy validates its settings against two templates and never pays for
the rollout stack's (awacs for every service it grants)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from troposphere import Template


def _builder(module: str) -> Callable[[], Template]:
    def build() -> Template:
        built: Template = importlib.import_module(f"generator.{module}").build()
        return built

    return build


TEMPLATES: dict[str, Callable[[], Template]] = {
    "compute": _builder("compute"),
    "websocket": _builder("websocket"),
    "rollout": _builder("rollout_stack"),
}
