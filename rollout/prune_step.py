"""Old versions deleted once a release is out: every release publishes a version of each handler
function (generator/versions.py), and a version the compute stack replaced is retained (a shift
serves it until the new one takes over), so without pruning they pile up, each holding its zip
against the region's code storage quota.

Kept: every version a live alias serves (its version and any weighted one), every version the
compute stack holds, and the KEEP_VERSIONS newest of the rest (an engineer can still point an alias
back at one by hand). Deleted: the older ones. The step is planned only when the release publishes
new versions, and runs after the shift and the bake: a release still shifting or refused has not
made its old versions unused. It never fails the release it follows: a version Lambda will not
delete (an alias moved to it meanwhile, a policy without DeleteFunction) is a WARNING and stays
for the next release's prune.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from rollout import live
from rollout.steps import KINDS, Call, Context, Progress, Ref, Step, Where, _result, value_of

KEEP_VERSIONS = 3  # unused versions kept per function, newest first


def served(lambda_client: Any, function: str) -> set[str]:
    """The versions the function's aliases send invocations to."""
    found = set()
    for page in lambda_client.get_paginator("list_aliases").paginate(FunctionName=function):
        for alias in page["Aliases"]:
            found.add(alias["FunctionVersion"])
            found |= set((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})
    return found


def published(lambda_client: Any, function: str) -> list[str]:
    """The function's numbered versions, oldest first ($LATEST is not one)."""
    pages = lambda_client.get_paginator("list_versions_by_function").paginate(FunctionName=function)
    numbers = [v["Version"] for page in pages for v in page["Versions"] if v["Version"] != "$LATEST"]
    return sorted(numbers, key=int)


def prunable(versions: list[str], keep: set[str], newest_unused: int) -> list[str]:
    """The versions to delete: unused ones, less the `newest_unused` newest of them."""
    unused = [v for v in versions if v not in keep]
    return unused[: max(len(unused) - newest_unused, 0)]


@dataclass(frozen=True)
class PruneVersions(Step):
    """Delete each handler function's old unused versions (module docstring)."""

    functions: tuple[str | Ref, ...]  # the compute stack's function names (outputs)
    stack_name: str  # the compute stack: the versions it holds are kept
    functions_pattern: str  # the functions' names as a pattern, for the declared calls
    keep: int = KEEP_VERSIONS
    kind: ClassVar[str] = "prune"

    def description(self) -> str:
        return f"delete old versions no alias serves (keeping the {self.keep} newest of them per function)"

    def calls(self, where: Where) -> list[Call]:
        function = where.arn("lambda", f"function:{self.functions_pattern}")
        version = where.arn("lambda", f"function:{self.functions_pattern}:*")
        return [
            Call("lambda:ListAliases", function),
            Call("lambda:ListVersionsByFunction", function),
            Call("lambda:DeleteFunction", version),
            Call("cloudformation:ListStackResources", where.arn("cloudformation", f"stack/{self.stack_name}/*")),
        ]

    def start(self, ctx: Context, outputs: dict[str, dict[str, str]]) -> Progress:
        lambda_client = ctx.client("lambda")
        names = [name for name in (value_of(f, outputs) for f in self.functions) if name]
        try:
            versions_arns = live.resources_of(ctx.client("cloudformation"), self.stack_name, "AWS::Lambda::Version")
            answers = live.read_each(lambda f: (published(lambda_client, f), served(lambda_client, f)), names)
        except ClientError as error:  # the release is out: what cannot be read is pruned next time
            code = error.response["Error"]["Code"]
            detail = f"WARNING old versions not pruned: the versions cannot be read ({code}); left for the next release"
            ctx.report.line(self.name, detail)
            return Progress(True, result=_result(self.name, "unchanged", detail))
        held = {tuple(arn.split(":")[6:8]) for arn in versions_arns}  # (function, version)
        deleted, left = 0, 0
        for function, (versions, serving) in zip(names, answers, strict=True):
            kept = serving | {version for name, version in held if name == function}
            for version in prunable(versions, kept, self.keep):
                try:
                    lambda_client.delete_function(FunctionName=function, Qualifier=version)
                    deleted += 1
                except ClientError as error:  # the release is out: a version left is no failure
                    left += 1
                    code = error.response["Error"]["Code"]
                    ctx.report.line(
                        self.name, f"WARNING {function}:{version} not deleted ({code}): left for the next release"
                    )
        detail = f"{deleted} old version(s) deleted across {len(names)} function(s)" + (
            f", {left} left" if left else ""
        )
        ctx.report.line(self.name, detail)
        return Progress(True, result=_result(self.name, "updated" if deleted else "unchanged", detail))

    def poll(self, ctx: Context, outputs: dict[str, dict[str, str]], work: dict[str, Any]) -> Progress:
        raise AssertionError("pruning finishes in start")  # pragma: no cover


KINDS[PruneVersions.kind] = PruneVersions  # a plan document names it by kind
