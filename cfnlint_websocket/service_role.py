"""Rule for a CloudFormation service role: it must allow every call the resource providers of
the stacks it deploys make. With a service role (`RoleARN`) every such call runs as that role; a
missing read or delete permission surfaces only on a rollback (ROLLBACK_FAILED, DELETE_FAILED).

Which stacks a role deploys is not in its template, so the rule is configured:

    configure_rules:
      E9112:
        templates: templates_out/compute.yaml,templates_out/websocket.yaml
        exceptions: gates/permission_exceptions.yaml   # optional: [{type, actions, reason}]

Unconfigured, it checks nothing. It checks actions, not resource ARNs (the project's
permission gate, `python -m gates.permissions`, checks each ARN too).
"""

from __future__ import annotations

import fnmatch
import glob
import sys
from pathlib import Path
from typing import Any

import yaml
from cfnlint.decode import decode
from cfnlint.jsonschema import ValidationError, ValidationResult, Validator
from cfnlint.rules.jsonschema.CfnLintKeyword import CfnLintKeyword

try:
    from cfnlint_websocket import _support as support
except ImportError:  # loaded by path (`cfn-lint --append-rules <this folder>`) and not installed
    sys.path.append(str(Path(__file__).resolve().parents[1]))
    from cfnlint_websocket import _support as support


def _iam_action(action: str) -> str:
    lowered = action.lower()
    return support.IAM_ACTION_OF.get(lowered, lowered).lower()


class ServiceRoleMissingProviderPermissions(CfnLintKeyword):
    id = "E9112"
    shortdesc = "CloudFormation service role lacks permissions its stacks' resource providers call"
    description = (
        "Every permission a resource type's create, read, update and delete handlers list must be allowed to "
        "the service role that deploys it; configure `templates` with the templates the role deploys."
    )
    source_url = "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/using-iam-servicerole.html"
    tags = ["resources", "iam", "cloudformation"]

    def __init__(self) -> None:
        super().__init__(["Resources/AWS::IAM::Role/Properties"])
        self.config_definition = {
            "templates": {"default": "", "type": "string"},
            "exceptions": {"default": "", "type": "string"},
        }
        self.configure()

    def validate(self, validator: Validator, keywords: Any, instance: Any, schema: dict[str, Any]) -> ValidationResult:
        templates = self._deployed_templates()
        if not templates or not isinstance(instance, dict) or not self._trusts_cloudformation(validator, instance):
            return
        role = validator.context.path.path[1]
        allowed = self._allowed_actions(validator, instance, role)
        region = validator.context.regions[0] if validator.context.regions else "us-east-1"
        excused = self._exceptions()
        for resource_type in sorted(self._resource_types(templates)):
            try:
                permissions = support.provider_permissions(resource_type, region)
            except support.ProviderSchemasMissing as absent:
                yield ValidationError(f"E9112 cannot check service role {role}: {absent}", rule=self)
                return
            needed = {action for actions in permissions.values() for action in actions}
            missing = sorted(
                action
                for action in needed - excused.get(resource_type, set())
                if not any(fnmatch.fnmatchcase(_iam_action(action), pattern) for pattern in allowed)
            )
            if missing:
                yield ValidationError(
                    f"Service role {role} deploys {resource_type} ({', '.join(t.name for t in templates)}), whose "
                    f"provider calls {', '.join(missing)}; its policies do not allow them, so a create, update or "
                    "rollback fails. Allow them, or list them with a reason in the rule's exceptions file.",
                    rule=self,
                )

    def _deployed_templates(self) -> list[Path]:
        patterns = [p.strip() for p in str(self.config.get("templates", "")).split(",") if p.strip()]
        return sorted({Path(found) for pattern in patterns for found in glob.glob(pattern)})

    def _exceptions(self) -> dict[str, set[str]]:
        path = str(self.config.get("exceptions", "")).strip()
        if not path:
            return {}
        excused: dict[str, set[str]] = {}
        for entry in yaml.safe_load(Path(path).read_text()) or []:
            excused.setdefault(entry["type"], set()).update(entry["actions"])
        return excused

    @staticmethod
    def _resource_types(templates: list[Path]) -> set[str]:
        types = set()
        for template_path in templates:
            template, _ = decode(str(template_path))
            for resource in ((template or {}).get("Resources") or {}).values():
                if isinstance(resource, dict) and isinstance(resource.get("Type"), str):
                    types.add(resource["Type"])
        return types

    @staticmethod
    def _trusts_cloudformation(validator: Validator, instance: dict[str, Any]) -> bool:
        for document, branch in support.branches(validator, instance, "AssumeRolePolicyDocument"):
            for statement in support.as_list((document or {}).get("Statement") if isinstance(document, dict) else None):
                principal = statement.get("Principal") if isinstance(statement, dict) else None
                services = principal.get("Service") if isinstance(principal, dict) else None
                for service, _ in support.values(branch, {"s": services}, "s"):
                    if any(isinstance(s, str) and s.startswith("cloudformation.") for s in support.as_list(service)):
                        return True
        return False

    @staticmethod
    def _allowed_actions(validator: Validator, instance: dict[str, Any], role: str) -> set[str]:
        """Lower-cased Action patterns of every Allow statement the role gets: its inline policies
        and the AWS::IAM::Policy / ManagedPolicy resources of this template attached to it."""
        documents = [doc for doc, _ in support.branches(validator, instance, "Policies", "*", "PolicyDocument")]
        for resource in (validator.cfn.template.get("Resources") or {}).values():
            if resource.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                properties = resource.get("Properties") or {}
                if role in support.referenced(properties.get("Roles")):
                    documents.append(properties.get("PolicyDocument"))
        patterns: set[str] = set()
        for document in documents:
            for _, statement, branch in support.statements(validator, document):
                if statement.get("Effect") == "Allow":
                    for actions, _ in support.values(branch, statement, "Action"):
                        patterns.update(a.lower() for a in support.as_list(actions) if isinstance(a, str))
        return patterns
