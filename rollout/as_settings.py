"""Whether a stack holds what the environment's settings say: every parameter the settings decide
(a value given, or the template's default for one left out) against its live value. `status`
reads this, so it and `deploy` (which applies any difference) never disagree on whether AWS is as
the settings say, e.g. after an update that rolled back (the stack then holds the release
before it). Parameters the rollout decides itself (code, wiring, the account's logging role when
the settings leave it out) are the plan's, not the settings', and are not compared here.
"""

from __future__ import annotations

import functools

from generator.stages import ACCOUNT_ROLE_PARAMETER, ROLLOUT_SET_PARAMETERS, STACK_TEMPLATES
from rollout import live
from rollout.settings import EnvironmentSettings


@functools.cache
def _defaults(stem: str) -> tuple[dict[str, str], frozenset[str]]:
    """The template's defaults (as DescribeStacks shows values) and its NoEcho parameters."""
    from generator.build import build_all

    template = build_all([stem])[stem]
    defaults = {
        n: live.effective(p.properties["Default"]) for n, p in template.parameters.items() if "Default" in p.properties
    }
    return defaults, frozenset(n for n, p in template.parameters.items() if p.properties.get("NoEcho"))


def wanted(settings: EnvironmentSettings, stage: str) -> dict[str, str]:
    """The values the settings decide for the stage's stack."""
    defaults, no_echo = _defaults(STACK_TEMPLATES[stage])
    given = settings.parameters.get(stage, {})
    values = defaults | {k: live.effective(v) for k, v in given.items()}
    decided_by_rollout = set(ROLLOUT_SET_PARAMETERS[stage])
    if ACCOUNT_ROLE_PARAMETER[0] == stage and ACCOUNT_ROLE_PARAMETER[1] not in given:
        decided_by_rollout.add(ACCOUNT_ROLE_PARAMETER[1])
    return {k: v for k, v in values.items() if k not in decided_by_rollout and k not in no_echo}


def differences(settings: EnvironmentSettings, stage: str, live_parameters: dict[str, str]) -> list[str]:
    """Each parameter whose live value is not the settings' ("" when the stack holds them)."""
    return live.differences(live_parameters, wanted(settings, stage))
