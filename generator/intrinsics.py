"""A small evaluator of CloudFormation intrinsics (Ref, Sub, Join, If, conditions, ...).

The rollout uses it to check an environment's parameters against a template's Rules before
anything is deployed; tests use it to assert what a template resolves to (names, ARNs, URLs)
for given parameters, not only how it is spelled. Resources resolve to `<LogicalId>-id`
unless their physical ids are given. A function it does not implement is an error, never a guess.
"""

from __future__ import annotations

import re
from typing import Any

PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "eu-west-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::StackName": "test-stack",
    "AWS::NoValue": None,
}


class Evaluator:
    def __init__(
        self,
        template: dict[str, Any],
        parameters: dict[str, Any] | None = None,
        physical_ids: dict[str, str] | None = None,
        pseudo: dict[str, Any] | None = None,
        attributes: dict[str, str] | None = None,
    ):
        self.template = template
        self.attributes = dict(attributes or {})  # "Logical.Attribute" -> value, for GetAtt
        self.values: dict[str, Any] = dict(PSEUDO, **(pseudo or {}))
        for name, spec in template.get("Parameters", {}).items():
            if "Default" in spec:
                self.values[name] = str(spec["Default"])
        self.values.update({k: str(v) for k, v in (parameters or {}).items()})
        missing = [n for n in template.get("Parameters", {}) if n not in self.values]
        if missing:
            raise KeyError(f"no value for parameters {missing}")
        for name, spec in template.get("Parameters", {}).items():
            if spec["Type"] == "CommaDelimitedList" or spec["Type"].startswith("List<"):
                self.values[name] = self.values[name].split(",")
        for logical in template.get("Resources", {}):
            self.values.setdefault(logical, (physical_ids or {}).get(logical, f"{logical}-id"))

    def condition(self, name: str) -> bool:
        return bool(self.eval(self.template["Conditions"][name]))

    def eval(self, node: Any) -> Any:
        """Resolve intrinsics; AWS::NoValue disappears from lists and maps, as in CloudFormation."""
        if isinstance(node, list):
            return [v for v in (self.eval(item) for item in node) if v is not None]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.values[arg]
            if key == "Fn::Sub":
                return self._sub(arg)
            if key == "Fn::Join":
                return arg[0].join(str(part) for part in self.eval(arg[1]))
            if key == "Fn::If":
                return self.eval(arg[1] if self.condition(arg[0]) else arg[2])
            if key == "Fn::Equals":
                return self.eval(arg[0]) == self.eval(arg[1])
            if key == "Fn::Not":
                return not self.eval(arg[0])
            if key == "Fn::And":
                return all(self.eval(a) for a in arg)
            if key == "Fn::Or":
                return any(self.eval(a) for a in arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                logical, attribute = arg if isinstance(arg, list) else arg.split(".", 1)
                return self._attribute(logical, attribute)
            if key == "Fn::FindInMap":
                mapping, top, second = (str(self.eval(part)) for part in arg)
                return self.template["Mappings"][mapping][top][second]
            if key == "Fn::Select":
                return self.eval(arg[1])[int(self.eval(arg[0]))]
            if key == "Fn::Split":
                return str(self.eval(arg[1])).split(arg[0])
            if key == "Fn::Contains":
                return self.eval(arg[1]) in self.eval(arg[0])
            if key == "Fn::EachMemberEquals":
                return all(member == self.eval(arg[1]) for member in self.eval(arg[0]))
            if key == "Fn::EachMemberIn":
                allowed = self.eval(arg[1])
                return all(member in allowed for member in self.eval(arg[0]))
            if key.startswith("Fn::"):
                raise NotImplementedError(f"{key} is not implemented by this evaluator")
        resolved = {key: self.eval(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not None}

    def _attribute(self, logical: str, attribute: str) -> str:
        return self.attributes.get(f"{logical}.{attribute}", f"{self.values[logical]}.{attribute}")

    def _sub(self, arg: Any) -> str:
        text, local = (arg, {}) if isinstance(arg, str) else (arg[0], arg[1])

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in local:
                return str(self.eval(local[name]))
            if "." in name:
                return self._attribute(*name.split(".", 1))
            return str(self.values[name])

        return re.sub(r"\$\{([^}!]+)\}", replace, text)


def failed_rules(template: dict[str, Any], parameters: dict[str, Any]) -> list[str]:
    """AssertDescriptions of the template's Rules that these parameters break."""
    evaluator = Evaluator(template, parameters)
    return [
        assertion.get("AssertDescription", name)
        for name, rule in template.get("Rules", {}).items()
        if "RuleCondition" not in rule or evaluator.eval(rule["RuleCondition"])
        for assertion in rule["Assertions"]
        if not evaluator.eval(assertion["Assert"])
    ]
