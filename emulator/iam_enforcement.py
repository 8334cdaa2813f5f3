"""IAM enforcement in the emulator (off unless `enforcing()`): every request is authenticated by
its access key and authorized against the caller's identity policies, as AWS does. moto can do
this (INITIAL_NO_AUTH_ACTION_COUNT) but authorizes most services on the resource "*", so a
policy scoped to ARNs, as a least-privilege one is, is refused everything; here each request
carries the resource it acts on:

- CloudFormation: the stack (by name or id); Lambda: the function in the path; CloudWatch: the
  alarms named, else `alarm:*`; API Gateway: the path, with the HTTP method as the action
  (`apigateway:GET` on `arn:aws:apigateway:<region>::/account`); Step Functions: the state
  machine or execution. S3, IAM and STS as moto has them (GetCallerIdentity needs no permission).
- The action is named with the IAM prefix (CloudWatch signs as `monitoring`, authorizes as
  `cloudwatch:`).
- moto computes the SigV4 signature of API Gateway's and Lambda's REST requests differently from
  botocore: those are authenticated by their access key only (the key must exist), and
  authorized as any other.
- HeadBucket is authorized as `s3:ListBucket`, as AWS documents (moto asks for `s3:HeadBucket`,
  which is no IAM action).
- A refusal answers in the caller's protocol, naming the caller and the action
  (`AccessDeniedException` ... is not authorized to perform: cloudformation:CreateChangeSet).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote, urlparse

from moto import settings
from moto.core.authorization import ActionAuthenticatorMixin, enable_iam_authentication
from moto.core.exceptions import AccessDeniedError, JsonRESTError
from moto.iam.access_control import IAMRequest
from moto.s3 import responses as s3_responses

FUNCTION = re.compile(r"/functions/([^/?]+)")
IAM_PREFIX = {"monitoring": "cloudwatch"}
SIGNATURE_UNCHECKED = ("apigateway", "lambda")  # REST paths: moto's signature differs from botocore's


@contextmanager
def enforcing() -> Iterator[None]:
    """Every request from now on authorized as on AWS (the emulator's own set-up done first)."""
    with enable_iam_authentication():
        yield


def _arn(response: Any, service: str, rest: str, *, regional: bool = True) -> str:
    return f"arn:aws:{service}:{response.region if regional else ''}:{response.current_account}:{rest}"


def resource(response: Any, service: str) -> str:
    """The ARN the request acts on ("*" when the action takes none)."""
    param = response._get_param
    if service == "cloudformation":
        stack = param("StackName") or ""
        return stack if stack.startswith("arn:") else (_arn(response, service, f"stack/{stack}/*") if stack else "*")
    if service == "lambda":
        found = FUNCTION.search(response.path)
        if not found:
            return "*"
        name = unquote(found[1])
        return name.split(":qualifier")[0] if name.startswith("arn:") else _arn(response, service, f"function:{name}")
    if service == "monitoring":
        names = param("AlarmNames") or ([param("AlarmName")] if param("AlarmName") else [])
        return (
            _arn(response, "cloudwatch", f"alarm:{names[0]}")
            if len(names) == 1
            else _arn(response, "cloudwatch", "alarm:*")
        )
    if service == "apigateway":
        return f"arn:aws:apigateway:{response.region}::{urlparse(response.uri).path}"
    if service == "states":
        return str(param("executionArn") or param("stateMachineArn") or "*")
    return "*"


def _service(response: Any) -> str:
    scope = response.headers.get("Authorization", "").split("Credential=", 1)[-1].split(",", 1)[0]
    parts = scope.split("/")
    return parts[3] if len(parts) > 3 else ""


def _authorize(self: Any, resource_arn: str = "*") -> None:
    """moto's `_authenticate_and_authorize_normal_action`, with the request's resource and action."""
    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return
    if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    service = _service(self)
    path = self.raw_path + (f"?{urlparse(self.uri).query}" if urlparse(self.uri).query else "")
    action = self.method if service == "apigateway" else self._get_action()
    request = IAMRequest(
        account_id=self.current_account,
        method=self.method,
        path=path,
        data=self.data,
        body=self.raw_body,
        headers=self.headers,
        action=action,
    )
    if service in IAM_PREFIX:  # the signing name is not the IAM service prefix
        request._action = f"{IAM_PREFIX[service]}:{action}"
    if service not in SIGNATURE_UNCHECKED:
        request.check_signature()
    try:
        request.check_action_permitted(resource_arn if resource_arn != "*" else resource(self, service))
    except AccessDeniedError as denied:
        if "json" in self.headers.get("Content-Type", "") or service in ("lambda", "apigateway"):
            refused = JsonRESTError("AccessDeniedException", denied.message)
            refused.code = 403
            raise refused from None
        raise


_installed = False


def install() -> None:
    global _installed
    if not _installed:
        ActionAuthenticatorMixin._authenticate_and_authorize_normal_action = _authorize  # type: ignore[method-assign,assignment]
        s3_responses.ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
        _installed = True
