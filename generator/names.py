"""Every physical name the stacks give, from the environment's NamePrefix: one place for the
templates (given "${NamePrefix}", a Fn::Sub text), the rollout, status and bake (given the
prefix itself)."""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATE_PREFIX = "${NamePrefix}"


@dataclass(frozen=True)
class Names:
    prefix: str = TEMPLATE_PREFIX

    @property
    def stem(self) -> str:
        """What every named resource starts with."""
        return f"{self.prefix}-websocket"

    def function(self, suffix: str) -> str:
        return f"{self.stem}-{suffix}"

    @property
    def functions(self) -> str:
        """A pattern matching every handler function (IAM `*`)."""
        return f"{self.stem}-*"

    @property
    def alarm_prefix(self) -> str:
        return f"{self.stem}-alarm-"

    @property
    def api(self) -> str:
        return f"{self.stem}-api"

    @property
    def api_log_group(self) -> str:
        """The stage's access and execution log group."""
        return f"/aws/apigateway/{self.api}"

    @property
    def function_log_groups(self) -> str:
        """A pattern matching every handler function's log group (IAM `*`)."""
        return f"/aws/lambda/{self.functions}"

    @property
    def roles(self) -> str:
        """A pattern matching every role and managed policy the two stacks name (IAM `*`)."""
        return f"{self.stem}-*"

    def policy(self, suffix: str) -> str:
        return f"{self.stem}-{suffix}"

    @property
    def handlers_role(self) -> str:
        return f"{self.stem}-handlers"

    @property
    def runner(self) -> str:
        """The rollout runner function (the rollout stack's): outside `functions`, so no statement
        for the handlers' functions lets the runner (or CloudFormation) rewrite the runner."""
        return f"{self.prefix}-rollout-runner"

    @property
    def dashboard(self) -> str:
        return self.stem

    @property
    def state_machine(self) -> str:
        return f"{self.stem}-rollout"

    @property
    def state_machine_log_group(self) -> str:
        return f"/aws/vendedlogs/states/{self.state_machine}"
