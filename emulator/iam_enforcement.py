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
- S3 requests are authorized by the IAM action AWS asks for (`s3:ListBucket` for ListObjectsV2,
  `s3:GetObjectVersion` for a GetObject with a version): moto's S3 responses name it in the
  request's data (moto 5.2.6 authorizes by the operation's name instead, `s3:ListObjectsV2`, which
  no policy grants). HeadBucket is `s3:ListBucket`, as AWS documents (moto names it
  `s3:HeadBucket`, which is no IAM action).
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
from moto.iam.access_control import IAMRequest, S3IAMRequest
from moto.s3 import responses as s3_responses
from moto.utilities.utils import get_partition

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


def _unenforced() -> bool:
    """moto's count of requests let through before enforcement starts (infinite unless `enforcing`)."""
    if ActionAuthenticatorMixin.request_count < settings.INITIAL_NO_AUTH_ACTION_COUNT:
        ActionAuthenticatorMixin.request_count += 1
        return True
    return False


def _request(self: Any, request_class: type, action: str) -> Any:
    path = self.raw_path + (f"?{urlparse(self.uri).query}" if urlparse(self.uri).query else "")
    return request_class(
        account_id=self.current_account,
        method=self.method,
        path=path,
        data=self.data,
        body=self.raw_body,
        headers=self.headers,
        action=action,
    )


def _authorize_s3(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
    """moto's `_authenticate_and_authorize_s3_action`, with the IAM action its S3 responses name."""
    if _unenforced():
        return
    target = f"{bucket_name or '*'}/{key_name}" if key_name else (bucket_name or "*")
    request = _request(self, S3IAMRequest, self.data.get("Action") or self._get_action())
    request.check_signature()
    request.check_action_permitted(f"arn:{get_partition(self.region)}:s3:::{target}")


def _authorize(self: Any, resource_arn: str = "*") -> None:
    """moto's `_authenticate_and_authorize_normal_action`, with the request's resource and action."""
    if _unenforced() or self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
        return
    service = _service(self)
    action = self.method if service == "apigateway" else self._get_action()
    request = _request(self, IAMRequest, action)
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
        ActionAuthenticatorMixin._authenticate_and_authorize_s3_action = _authorize_s3  # type: ignore[method-assign]
        s3_responses.ACTION_MAP["BUCKET"]["HEAD"]["DEFAULT"] = "ListBucket"
        _installed = True
