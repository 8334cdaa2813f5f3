"""What keeps a live environment from being broken by accident:

- termination protection on every stack the rollout deploys (compute, websocket, and the
  rollout stack of the Step Functions engine), enabled once a stack exists;
- a stack policy on the websocket stack refusing Update:Replace and Update:Delete of the API,
  its stage and its access log group: the public wss:// URL and the access logs live there;
- a plan that replaces any resource (a change set's Replacement True or Conditional: a new
  StageName, a re-created API, a NamePrefix change) refused before it executes unless the run
  says --allow-replacement, which lifts the stack policy for that one update and restores it after.

The steps call these (`rollout.steps.DeployStack`), so both engines enforce the same rules.
"""

from __future__ import annotations

import json
from typing import Any

from rollout.stacks import StageFailed

PROTECTED = ("Api", "Stage", "AccessLogGroup")  # the websocket stack's logical ids (generator/websocket.py)
POLICY = json.dumps(
    {
        "Statement": [
            {"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"},
            {
                "Effect": "Deny",
                "Action": ["Update:Replace", "Update:Delete"],
                "Principal": "*",
                "Resource": [f"LogicalResourceId/{name}" for name in PROTECTED],
            },
        ]
    },
    sort_keys=True,
)
LIFTED = json.dumps({"Statement": [{"Effect": "Allow", "Action": "Update:*", "Principal": "*", "Resource": "*"}]})
CALLS = ("UpdateTerminationProtection", "SetStackPolicy", "GetStackPolicy")  # on the stack's ARN


class ReplacementRefused(StageFailed):
    """A plan that replaces resources, run without --allow-replacement: nothing was executed."""


# Replaced on every release by design, holding nothing a client sees: a Lambda version is immutable,
# so new code is a new version (CloudFormation reports its CodeSha256 change as a replacement).
ROUTINE = ("AWS::Lambda::Version",)


# Removed, they take what clients or operators hold with them: the wss:// URL (an API or its stage),
# the logs (a log group). A removal is a template change (a resource dropped, or a condition turned
# off); other removals (an alarm, an authorizer switched off in the settings) are ordinary changes.
HOLDING = ("AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Stage", "AWS::Logs::LogGroup")


def replacing(changes: list[dict[str, str]]) -> list[dict[str, str]]:
    """The changes that replace a resource (Replacement True or Conditional), routine ones aside,
    and those that delete one holding the URL or logs."""
    return [
        c
        for c in changes
        if (c.get("replacement") in ("True", "Conditional") and c.get("type") not in ROUTINE)
        or (c.get("action") == "Remove" and c.get("type") in HOLDING)
    ]


def describe_replacements(stack_name: str, changes: list[dict[str, str]]) -> list[str]:
    return [
        f"{stack_name}: {c['resource']} ({c['type']}) is "
        + ("deleted" if c.get("action") == "Remove" else f"replaced (Replacement {c['replacement']})")
        + (": the public wss:// URL changes" if c["resource"] in ("Api", "Stage") else "")
        + (": its logs go with it" if c.get("type") == "AWS::Logs::LogGroup" else "")
        for c in replacing(changes)
    ]


def refuse(stack_name: str, changes: list[dict[str, str]]) -> None:
    """Raise ReplacementRefused naming every replaced resource, when there is one."""
    lines = describe_replacements(stack_name, changes)
    if lines:
        raise ReplacementRefused(
            f"{stack_name}: the plan replaces or deletes {len(lines)} resource(s); a replaced or deleted API or "
            "stage changes the wss:// URL every client uses, a replaced or deleted log group loses its logs. "
            "Nothing was executed: "
            "run again with --allow-replacement if that is meant",
            lines,
        )


def refuse_results(results: list[dict[str, Any]]) -> None:
    """The previews of a whole plan (the Step Functions engine, before its execution starts)."""
    for result in results:
        refuse(result.get("stack", result["stage"]), result.get("changes") or [])


def lift(cf: Any, stack_name: str) -> None:
    """Allow every update of this stack for one update (ExecuteChangeSet takes no
    StackPolicyDuringUpdateBody): `hold` sets the policy again once the update ended."""
    cf.set_stack_policy(StackName=stack_name, StackPolicyBody=LIFTED)


def hold(cf: Any, stack_name: str, protected: bool, policy: str) -> list[str]:
    """Termination protection on, and the stack's policy as planned: what was changed, as lines
    (none when the stack holds both already: a read, no write)."""
    done = []
    if not protected:
        cf.update_termination_protection(StackName=stack_name, EnableTerminationProtection=True)
        done.append(f"{stack_name}: termination protection enabled")
    if policy:
        held = cf.get_stack_policy(StackName=stack_name).get("StackPolicyBody") or ""
        if _normal(held) != _normal(policy):
            cf.set_stack_policy(StackName=stack_name, StackPolicyBody=policy)
            done.append(f"{stack_name}: stack policy set (no replacement or deletion of {', '.join(PROTECTED)})")
    return done


def _normal(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def planned_url(live_url: str, stage_name: str, api_replaced: bool, region: str) -> str:
    """The wss:// URL the plan produces: the live API's host with the plan's stage, or a new API's."""
    host = live_url.split("//", 1)[1].split("/", 1)[0] if live_url else ""
    if api_replaced or not host:
        host = f"<new API id>.execute-api.{region}.amazonaws.com"
    return f"wss://{host}/{stage_name}"


def dry_run_url(plan: Any, results: list[dict[str, Any]], live_url: str, report: Any) -> str:
    """The wss:// URL the previewed plan produces, said, and flagged when it is not the live one."""
    step = plan.step("websocket")
    stage_name = str(step.parameters.get("StageName", "")) if step is not None else ""
    changes = [c for r in results if r.get("stage") in ("websocket", "carry") for c in r.get("changes") or []]
    api_replaced = any(c["resource"] == "Api" and (c["action"] == "Add" or c in replacing(changes)) for c in changes)
    url = planned_url(live_url, stage_name, api_replaced, plan.region)
    if report is not None:
        report.line("plan", f"wss:// URL after this plan: {url}")
        if live_url and url != live_url:
            report.line(
                "plan", f"WARNING the public wss:// URL changes from {live_url} to {url}: every client must move"
            )
    return url
