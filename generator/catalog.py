"""Every template the generator produces, by file stem."""

from __future__ import annotations

from collections.abc import Callable

from troposphere import Template

from generator import compute, rollout_stack, websocket

TEMPLATES: dict[str, Callable[[], Template]] = {
    "compute": compute.build,
    "websocket": websocket.build,
    "rollout": rollout_stack.build,
}
