"""boto3 for the rollout: one session (region, profile, endpoint URL), throttling retried by
botocore's standard retry mode, and every API call counted (reads and mutations)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoCredentialsError, NoRegionError, ProfileNotFound

MUTATING_PREFIXES = (
    "Create",
    "Update",
    "Delete",
    "Execute",
    "Put",
    "Continue",
    "Cancel",
    "Tag",
    "Untag",
    "Start",
    "Set",  # SetStackPolicy
)
# Throttling is retried with backoff; an unreachable endpoint fails in seconds, not half a minute.
# A read waits longer than the migrate function may run (its MaxValue): a retried read would invoke
# the migration a second time.
READ_TIMEOUT_SECONDS = 120
MAX_ATTEMPTS = 5  # a constant, not read back from the Config: botocore rewrites its retries dict in place
RETRIES = Config(
    retries={"mode": "standard", "max_attempts": MAX_ATTEMPTS}, connect_timeout=3, read_timeout=READ_TIMEOUT_SECONDS
)


class CredentialsError(RuntimeError):
    """No usable credentials or profile: says what to set."""


TARGETS = ("StackName", "FunctionName", "AlarmNamePrefix", "RoleName", "Bucket", "stateMachineArn", "executionArn")


@dataclass
class CallCounter:
    calls: Counter[str] = field(default_factory=Counter)
    log: list[str] = field(default_factory=list)  # "service:Operation target", in order

    def __call__(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        target = next((str(params[key]) for key in TARGETS if key in params), "")
        self.log.append(f"{model.service_model.service_name}:{model.name} {target}".rstrip())

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def mutating(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if k.split(":", 1)[1].startswith(MUTATING_PREFIXES)}


class Aws:
    """Clients sharing one session; `counter` sees every call made through them."""

    def __init__(
        self,
        region: str,
        profile: str | None = None,
        endpoint_url: str | None = None,
        credentials: tuple[str, str] | None = None,  # an access key id and secret, instead of the chain
        config: Config | None = None,  # the clients' timeouts and retries (default RETRIES)
    ) -> None:
        keys = {"aws_access_key_id": credentials[0], "aws_secret_access_key": credentials[1]} if credentials else {}
        try:
            self.session = boto3.Session(region_name=region, profile_name=profile, **keys)
        except ProfileNotFound as error:
            raise CredentialsError(f"{error}; check --profile or ~/.aws/config") from None
        self.region = region
        self.endpoint_url = endpoint_url
        self.config = config or RETRIES
        self.counter = CallCounter()
        self.session.events.register("before-call", self.counter)
        self.session.events.register("provide-client-params", self.counter.record)
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url, config=self.config)
        return self._clients[service]

    def identity(self) -> dict[str, str]:
        try:
            found = self.client("sts").get_caller_identity()
        except (NoCredentialsError, NoRegionError) as error:
            raise CredentialsError(
                f"{error}: configure credentials (aws configure, AWS_PROFILE or --profile, or environment variables)"
            ) from None
        return {"account": found["Account"], "arn": found["Arn"]}
