"""The embedded AWS emulator: a moto server in this process, taught what a rollout needs that
moto lacks (`moto_gaps`), as strict as AWS where moto forgives (`aws_rules`), parsing each
template once (`template_cache`) and running Lambda functions for real (`functions`).

Public entry points: `running_emulator`, `websocket_url`, `enable_state_machines`, `advance_clock`
(the emulator's CloudWatch and EventBridge time, moved on as a wait would let it pass),
`EMULATOR_ACCOUNT`, `EMULATOR_REGION`, `EmulatorUnavailable`. Nothing here imports the rollout."""

from __future__ import annotations

import json
import logging
import os
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from emulator.clock import advance as advance_clock

__all__ = [
    "EMULATOR_ACCOUNT",
    "EMULATOR_REGION",
    "EmulatorUnavailable",
    "advance_clock",
    "enable_state_machines",
    "running_emulator",
    "websocket_url",
]
EMULATOR_REGION = "eu-west-1"
EMULATOR_ACCOUNT = "123456789012"


class EmulatorUnavailable(RuntimeError):
    """The emulator cannot start here (its extra is not installed); the text says what to do."""


_websocket_servers: list[Any] = []  # one per running emulator in this process, innermost last


def websocket_url(api_id: str, stage: str) -> str:
    """Where the running emulator serves a deployed WebSocket API's stage."""
    if not _websocket_servers:
        raise EmulatorUnavailable("no emulator is running in this process: start one with running_emulator()")
    return str(_websocket_servers[-1].url(api_id, stage))


def _find_our_models() -> None:
    """moto finds CloudFormation models by CloudFormationModel.__subclasses__(), cached the first
    time it parses a template: if that happened before our modules defined theirs (Api, Stage,
    Alarm, ApiGateway::Account...), moto would skip those resources. Forget the cache."""
    from moto.cloudformation import parsing

    for cached in (parsing.get_model_list, parsing.get_model_map, parsing.get_name_type_map):
        cached.cache_clear()


@contextmanager
def running_emulator(port: int = 0) -> Iterator[str]:
    """Start moto's server on a loopback port (0: a free one); yields its endpoint URL. State
    machines run for real there (their aws-sdk tasks call this same server)."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise EmulatorUnavailable(
            "the embedded emulator needs moto: pip install 'careconnect-websocket[emulator]'"
        ) from None

    from emulator import (
        aws_rules,
        functions,
        iam_enforcement,
        lambda_versions,
        log_keys,
        moto_gaps,
        rollback_triggers,
        stack_guards,
        stack_protection,
        stack_times,
        template_cache,
        websocket_apis,
    )
    from emulator.https_proxy import HttpsProxy

    moto_gaps.install()
    functions.install()
    lambda_versions.install()
    websocket_apis.install()
    aws_rules.install()
    rollback_triggers.install()
    log_keys.install()
    iam_enforcement.install()
    stack_guards.install()
    stack_protection.install()
    stack_times.install()
    template_cache.install()
    _find_our_models()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    # moto says it skips WaitConditionHandle: expected (it has nothing to create).
    logging.getLogger("moto").setLevel(logging.ERROR)
    # moto's state machine interpreter logs an ERROR for every IsPresent test of a missing path
    # (the endpoint consumers' empty slots), although it answers false as AWS does.
    logging.getLogger("moto.stepfunctions.parser").setLevel(logging.CRITICAL)
    warnings.filterwarnings("ignore", message="Tried to parse AWS::", category=UserWarning)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    enable_state_machines(f"http://{host}:{port}")
    proxy = HttpsProxy(port)
    lambda_runtime = functions.start(function_network(proxy.url, proxy.ca_bundle))
    sockets = websocket_apis.WebSocketServer()
    _websocket_servers.append(sockets)
    saved = {
        name: os.environ.get(name)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "MOTO_PORT")
    }
    os.environ["MOTO_PORT"] = str(port)  # where moto's state machines send their aws-sdk calls
    # Credentials the emulator accepts; never real ones, so a rehearsal cannot reach AWS.
    os.environ.update({"AWS_ACCESS_KEY_ID": "rehearsal", "AWS_SECRET_ACCESS_KEY": "rehearsal"})
    os.environ.pop("AWS_SESSION_TOKEN", None)
    try:
        yield f"http://{host}:{port}"
    finally:
        _websocket_servers.remove(sockets)
        sockets.stop()
        functions.stop(lambda_runtime)
        proxy.stop()
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def function_network(proxy_url: str, ca_bundle: str) -> dict[str, str]:
    """What a function's environment gets so its code reaches the emulator at AWS's own host names
    (no AWS_ENDPOINT_URL: code that builds an endpoint from the event must reach it too)."""
    return {
        "HTTPS_PROXY": proxy_url,
        "https_proxy": proxy_url,
        "AWS_CA_BUNDLE": ca_bundle,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


def enable_state_machines(url: str) -> None:
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode()
    request = urllib.request.Request(
        f"{url}/moto-api/config", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    urllib.request.urlopen(request, timeout=10).read()
