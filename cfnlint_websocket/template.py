"""Rules on the template as a whole: its Rules section and its size."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cfnlint.rules import CloudFormationLintRule, RuleMatch
from cfnlint.template import Template

try:
    from cfnlint_websocket.limits import RULE_FUNCTIONS, TEMPLATE_BODY_LIMIT
except ImportError:  # loaded by path (`cfn-lint --append-rules <this folder>`) and not installed
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    from cfnlint_websocket.limits import RULE_FUNCTIONS, TEMPLATE_BODY_LIMIT


def functions_in(node: Any, path: list[str | int]) -> Iterator[tuple[str, list[str | int]]]:
    """Every intrinsic function used in `node`, with its path."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and (key.startswith("Fn::") or key == "Ref"):
                yield key, [*path, key]
            yield from functions_in(value, [*path, key])
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from functions_in(value, [*path, index])


class RuleFunctionRefused(CloudFormationLintRule):
    id = "E9110"
    shortdesc = "Rules section uses a function Rules do not accept"
    description = (
        "Rules conditions and assertions accept only Fn::And, Fn::Contains, Fn::EachMemberEquals, "
        "Fn::EachMemberIn, Fn::Equals, Fn::Not, Fn::Or, Fn::RefAll, Fn::ValueOf, Fn::ValueOfAll and Ref; "
        "CloudFormation refuses the template otherwise (Fn::Join, Fn::Sub and Fn::If among the refused)."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/rules-section-structure.html"
    tags = ["rules", "functions"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        matches = []
        rules = cfn.template.get("Rules")
        for name, rule in (rules or {}).items() if isinstance(rules, dict) else ():
            for function, path in functions_in(rule, ["Rules", name]):
                if function not in RULE_FUNCTIONS:
                    matches.append(
                        RuleMatch(
                            path,
                            f"Rule {name} uses {function}, which Rules do not accept: "
                            "CloudFormation refuses the template. Use only "
                            f"{', '.join(sorted(RULE_FUNCTIONS))}.",
                        )
                    )
        return matches


class TemplateTooBigForBody(CloudFormationLintRule):
    id = "W9111"
    shortdesc = "Template too big to deploy as TemplateBody"
    description = (
        "CreateStack, UpdateStack and CreateChangeSet take at most 51,200 bytes as TemplateBody; a larger "
        "template must go by TemplateURL (S3, up to 1 MB), and whoever deploys needs s3:GetObject on it."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cloudformation-limits.html"
    tags = ["limits"]

    def match(self, cfn: Template) -> list[RuleMatch]:
        if not cfn.filename or not Path(cfn.filename).is_file():
            return []
        size = Path(cfn.filename).stat().st_size
        if size <= TEMPLATE_BODY_LIMIT:
            return []
        return [
            RuleMatch(
                ["Resources"],
                f"The template is {size:,} bytes, over the {TEMPLATE_BODY_LIMIT:,}-byte "
                "TemplateBody limit: upload it to S3 and deploy with TemplateURL "
                "(aws cloudformation deploy --s3-bucket ..., sam deploy, cdk deploy do).",
            )
        ]
