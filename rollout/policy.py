"""`python -m rollout policy --env NAME [--engine local|stepfunctions]`: the least-privilege IAM
policy a release engineer needs for an environment, generated from the calls the steps declare
(`rollout.steps`) and the calls the command line makes itself (declared below), never written.

- local: every step's calls (change sets on the two stacks, the endpoint on the functions and
  the consumers, the migrate function, the alarms), the preparation's reads and uploads, and what
  `status` and `watch` read. The change sets name the rollout stack's CloudFormation role when the
  environment has one (both engines then pass it); without one, CloudFormation creates the stacks'
  resources with the engineer's own rights, which this policy does not grant (README says which).
- stepfunctions: the rollout stack deployed from here, the dry run's change sets on the two
  stacks (shown before the execution starts), the execution started and followed, and the same
  reads.
"""

from __future__ import annotations

import json
from typing import Any

from awacs.aws import Action, Allow, Condition, PolicyDocument, Statement, StringEquals

from generator.names import Names
from rollout.destroy import CALLS as DESTROY_CALLS
from rollout.plan import declared_calls
from rollout.prepare import rollout_stack_name
from rollout.settings import EnvironmentSettings
from rollout.steps import Call, DeployStack, SetVariables, Where

ENGINES = ("local", "stepfunctions")


def _consumers(settings: EnvironmentSettings, where: Where) -> list[str]:
    return [c if c.startswith("arn:") else where.arn("lambda", f"function:{c}") for c in settings.endpoint_consumers]


def _reads(settings: EnvironmentSettings, where: Where, folders: tuple[str, ...]) -> list[Call]:
    """What the command line calls itself, before and after the steps, with the engineer's rights
    (`status` reads the stacks, functions and alarms the steps' calls cover)."""
    # The environment's bucket, and the rollout stack's (CloudFormation names it), which both
    # engines use once the stack exists.
    buckets = [
        f"arn:{where.partition}:s3:::{b}"
        for b in (settings.artifacts_bucket, f"{rollout_stack_name(settings)}-artifactsbucket-*")
    ]
    rollout = where.arn("cloudformation", f"stack/{rollout_stack_name(settings)}/*")
    stacks = [where.arn("cloudformation", f"stack/{name}/*") for name in settings.stacks.values()]
    locks = f"arn:{where.partition}:s3:::{settings.artifacts_bucket}/locks/*"  # rollout/lock.py
    return [
        *(
            Call(f"cloudformation:{a}", s)
            for a in ("DetectStackDrift", "DetectStackResourceDrift", "DescribeStackResourceDrifts")
            for s in stacks
        ),
        Call("cloudformation:DescribeStackDriftDetectionStatus", "*"),  # a detection id: no resource-level permission
        *(Call(f"s3:{a}", locks) for a in ("GetObject", "PutObject", "DeleteObject")),
        *(Call("s3:ListBucket", b) for b in buckets),  # the bucket's check; a missing key answers 404, not 403
        *(
            Call(f"s3:{a}", f"{b}/{folder}/*")
            for a in ("GetObject", "PutObject")
            for folder in folders
            for b in buckets
        ),
        Call("cloudformation:DescribeStacks", rollout),  # whether the environment has a rollout stack
        # The environment's lock (rollout/lock.py), in either bucket.
        *(
            Call(f"s3:{a}", f"{b}/locks/{settings.name}.json")
            for a in ("GetObject", "PutObject", "DeleteObject")
            for b in buckets
        ),
        # The environment's release records (rollout/releases.py): written at the end of every run,
        # read by `history` and `rollback` (which also reads the release's zip and templates).
        *(
            Call(f"s3:{a}", f"arn:{where.partition}:s3:::{settings.artifacts_bucket}/releases/{settings.name}/*")
            for a in ("GetObject", "PutObject")
        ),
        # What the stacks hold, read back (rollout/live.py): drift, their functions.
        *(
            Call(f"cloudformation:{a}", where.arn("cloudformation", f"stack/{name}/*"))
            for a in ("DetectStackDrift", "DescribeStackResourceDrifts", "ListStackResources")
            for name in settings.stacks.values()
        ),
        Call(
            "cloudformation:DescribeStackDriftDetectionStatus", "*"
        ),  # takes a detection id, no ARN (AWS documents "*")
        Call(
            "apigateway:GET", f"arn:{where.partition}:apigateway:{where.region}::/account"
        ),  # the account's logging role
        *(Call("lambda:GetFunctionConfiguration", arn) for arn in _consumers(settings, where)),
    ]


def _prefix(settings: EnvironmentSettings) -> str:
    return str(settings.parameters.get("compute", {}).get("NamePrefix", "cc"))


def calls(settings: EnvironmentSettings, engine: str, where: Where) -> list[Call]:
    """Every call the engineer's credentials make for this environment with this engine."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: one of {', '.join(ENGINES)}")
    rollout = rollout_stack_name(settings)
    role = where.arn("iam", f"role/rollout/{rollout}-CloudFormationRole-*", regional=False)
    steps = declared_calls(where, _prefix(settings), settings.stacks, role, settings.artifacts_bucket)
    if not settings.migrate:  # the environment's plans hold no migrate step
        steps = [c for c in steps if c.action != "lambda:InvokeFunction"]
    folders = ("handlers", "templates") if engine == "local" else ("handlers", "templates", "runner")
    found = set(_reads(settings, where, folders))
    found.add(Call("cloudwatch:DescribeAlarms", where.arn("cloudwatch", "alarm:*")))  # status, and the bake
    functions = Names(_prefix(settings)).functions
    found.add(Call("lambda:GetAlias", where.arn("lambda", f"function:{functions}")))  # status: the live aliases
    found.add(Call("lambda:GetPolicy", where.arn("lambda", f"function:{functions}")))  # status: invoke permissions
    for name in (*settings.stacks.values(), rollout):  # `rollout destroy` (rollout/destroy.py)
        found |= {Call(f"cloudformation:{a}", where.arn("cloudformation", f"stack/{name}/*")) for a in DESTROY_CALLS}
    machine = where.arn("states", f"stateMachine:{Names(_prefix(settings)).state_machine}")
    found.add(Call("states:ListExecutions", machine))  # both engines refuse to run beside an execution
    # whether the execution a lock names has ended (rollout/lock.py)
    found.add(
        Call("states:DescribeExecution", where.arn("states", f"execution:{Names(_prefix(settings)).state_machine}:*"))
    )
    if engine == "local":
        consumers = tuple(_consumers(settings, where))
        found |= set(steps) | set(SetVariables("endpoint", 0, {}, consumers).calls(where))
    else:
        url = f"https://{settings.artifacts_bucket}.s3.{where.region}.amazonaws.com/templates/*"
        rollout_stack = DeployStack("rollout", 0, rollout, url, "", {}, "", "rollout-*", protect=True)
        previews = [c for c in steps if c.action.startswith(("cloudformation:", "iam:PassRole", "s3:"))]
        executions = where.arn("states", f"execution:{Names(_prefix(settings)).state_machine}:*")
        found |= set(rollout_stack.calls(where)) | set(previews)
        found |= {
            Call("states:StartExecution", machine),
            Call("states:DescribeExecution", executions),
            Call("states:GetExecutionHistory", executions),
        }
    return sorted(found, key=lambda c: (c.action, c.resource))


def document(settings: EnvironmentSettings, engine: str, where: Where) -> dict[str, Any]:
    """The policy: one statement per resource with its actions; the service role passed only to
    CloudFormation."""
    by_resource: dict[str, set[str]] = {}
    for call in calls(settings, engine, where):
        by_resource.setdefault(call.resource, set()).add(call.action)
    statements = []
    for resource, actions in sorted(by_resource.items()):
        passing = actions == {"iam:PassRole"}
        condition = Condition(StringEquals("iam:PassedToService", "cloudformation.amazonaws.com")) if passing else None
        statements.append(
            Statement(
                Effect=Allow,
                Action=[Action(*a.split(":", 1)) for a in sorted(actions)],
                Resource=[resource],
                **({"Condition": condition} if condition else {}),
            )
        )
    return dict(json.loads(PolicyDocument(Version="2012-10-17", Statement=statements).to_json()))
