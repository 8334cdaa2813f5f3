"""botocore for the rollout: one session (region, profile, endpoint URL), throttling retried by
botocore's standard retry mode, and every API call counted (reads and mutations). botocore, not
boto3: the rollout needs only clients, and boto3 (with s3transfer) costs a tenth of a second at
every start."""

from __future__ import annotations

import copy
import json
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session
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
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # reads run in parallel

    def __call__(self, model: Any, **_: Any) -> None:
        with self.lock:
            self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def record(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        target = next((str(params[key]) for key in TARGETS if key in params), "")
        self.log.append(f"{model.service_model.service_name}:{model.name} {target}".rstrip())

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    @property
    def mutating(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if is_mutating(k)}


# Reads a run makes more than once (each step looks at the stacks and functions it may change).
REPEATABLE_READS = frozenset(
    {
        "lambda:GetFunctionConfiguration",
        "cloudformation:DescribeStacks",
        "cloudformation:GetTemplate",
        "cloudformation:GetStackPolicy",
        "cloudformation:ListStackResources",
    }
)


def is_mutating(call: str) -> bool:
    return call.split(":", 1)[1].startswith(MUTATING_PREFIXES)


@dataclass
class RepeatedReads:
    """A read made again before the run has changed anything is answered from its first answer
    (a no-op run's steps read the same stacks and functions). From the first change on (anything
    but an object in S3: the lock, a record) every read goes to AWS, as a wait's polls must. (A
    run reads nothing it keeps before it holds the environment's lock: rollout.prepare.)"""

    answers: dict[str, Any] = field(default_factory=dict)
    active: bool = False
    changed: bool = False

    def key(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        call = f"{model.service_model.service_name}:{model.name}"
        if not self.active:
            return
        if is_mutating(call) and not call.startswith("s3:"):
            self.changed = True
            self.answers.clear()
        elif call in REPEATABLE_READS and not self.changed:
            context["repeated_read"] = f"{call} {json.dumps(params, sort_keys=True, default=str)}"

    def answer(self, context: dict[str, Any], **_: Any) -> Any:
        found = self.answers.get(context.get("repeated_read", ""))
        if found is not None:
            context["repeated_read"] = ""  # answered here: nothing to keep after the call
            return found[0], copy.deepcopy(found[1])  # the caller may change what it is given
        return None

    def keep(self, http_response: Any, parsed: Any, context: dict[str, Any], **_: Any) -> None:
        key = context.get("repeated_read")
        if key and self.active and not self.changed and http_response.status_code < 300:
            self.answers[key] = (http_response, copy.deepcopy(parsed))


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
        self.session = botocore.session.Session(profile=profile)
        self.session.set_config_variable("region", region)
        if credentials:
            self.session.set_credentials(*credentials)
        try:
            self.session.get_scoped_config()  # a profile that does not exist is named now, not at the first call
        except ProfileNotFound as error:
            raise CredentialsError(f"{error}; check --profile or ~/.aws/config") from None
        self.region = region
        self.endpoint_url = endpoint_url
        self.config = config or RETRIES
        self.counter = CallCounter()
        self.reads = RepeatedReads()  # inactive until `repeated_reads()`
        self.events = events = self.session.get_component("event_emitter")  # clients copy it when made: hook here
        events.register("provide-client-params", self.reads.key)
        events.register_first("before-call", self.reads.answer)  # before the counter: a kept answer is no call
        events.register("after-call", self.reads.keep)
        events.register("before-call", self.counter)
        events.register("provide-client-params", self.counter.record)
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.create_client(
                service, region_name=self.region, endpoint_url=self.endpoint_url, config=self.config
            )
        return self._clients[service]

    @contextmanager
    def repeated_reads(self) -> Iterator[None]:
        """Within the block, a read repeated before the first change is answered once (RepeatedReads);
        the counter counts only the calls that reach AWS."""
        self.reads.active, self.reads.changed = True, False
        try:
            yield
        finally:
            self.reads.active = False
            self.reads.answers.clear()

    def identity(self) -> dict[str, str]:
        try:
            found = self.client("sts").get_caller_identity()
        except (NoCredentialsError, NoRegionError) as error:
            raise CredentialsError(
                f"{error}: configure credentials (aws configure, AWS_PROFILE or --profile, or environment variables)"
            ) from None
        return {"account": found["Account"], "arn": found["Arn"]}
