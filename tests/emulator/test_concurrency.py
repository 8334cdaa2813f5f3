"""Lambda's concurrency in the emulator (emulator/functions.py): an environment per concurrent
invocation, at most the function's reserved concurrency of them, Lambda's throttle beyond,
warm re-use, and idle environments reclaimed."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import boto3
import pytest
from botocore.exceptions import ClientError

from emulator import functions, websocket_url
from tests.emulator.lambda_zips import client, deploy, invoke
from tests.emulator.test_websocket_apis import chat_api, refused

# Holds its invocation until the test lets it go (a file appears), so concurrency is exact.
HOLDER = """
import os, time
def handler(event, context):
    while not os.path.exists(event["release"]):
        time.sleep(0.01)
    return {"pid": os.getpid()}
"""


@pytest.fixture
def runtime(emulator: str) -> Iterator[functions.Functions]:
    (running,) = functions._running[-1:]
    idle = running.idle_seconds
    yield running
    running.idle_seconds = idle


def _hold(emulator: str, name: str, release: str, n: int) -> tuple[list[threading.Thread], list[Any]]:
    results: list[Any] = []
    threads = [threading.Thread(target=lambda: results.append(invoke(emulator, name, {"release": release})[1]))
               for _ in range(n)]  # fmt: skip
    for thread in threads:
        thread.start()
    return threads, results


def _until(condition: Any, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_beyond_reserved_concurrency_lambda_throttles(emulator: str, runtime: functions.Functions,
                                                      tmp_path: Any) -> None:  # fmt: skip
    arn = deploy(emulator, "held", {"app.py": HOLDER}, Timeout=30)
    client(emulator, "lambda").put_function_concurrency(FunctionName="held", ReservedConcurrentExecutions=2)
    release = str(tmp_path / "go")
    threads, results = _hold(emulator, "held", release, 2)
    _until(lambda: runtime.busy(arn) == 2)
    with pytest.raises(ClientError) as refused:
        invoke(emulator, "held", {"release": release})
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 429
    assert error["Error"]["Code"] == "TooManyRequestsException"
    assert error["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    open(release, "w").close()
    for thread in threads:
        thread.join(30)
    assert len({r["pid"] for r in results}) == 2  # each concurrent invocation had its own environment
    # Both stay warm: the next two run in them, one after the other, no new process.
    again = {invoke(emulator, "held", {"release": release})[1]["pid"] for _ in range(2)}
    assert again <= {r["pid"] for r in results} and runtime.environments(arn) == 2


def test_zero_reserved_concurrency_throttles_every_invocation(emulator: str) -> None:
    deploy(emulator, "off", {"app.py": HOLDER})
    client(emulator, "lambda").put_function_concurrency(FunctionName="off", ReservedConcurrentExecutions=0)
    refused = []  # every attempt boto3 makes (it retries throttling) is one refusal

    def count(**_: Any) -> None:
        refused.append(1)

    once = boto3.client("lambda", region_name="eu-west-1", endpoint_url=emulator)
    once.meta.events.register("before-send.lambda.Invoke", count)
    for _ in range(2):
        with pytest.raises(ClientError, match="TooManyRequestsException"):
            once.invoke(FunctionName="off", Payload=b"{}")
    # Each refusal is a Throttles datum, as Lambda publishes it (the functions' throttle alarms read it).
    throttles = client(emulator, "cloudwatch").get_metric_statistics(
        Namespace="AWS/Lambda", MetricName="Throttles", Dimensions=[{"Name": "FunctionName", "Value": "off"}],
        StartTime=datetime.now(UTC) - timedelta(days=1), EndTime=datetime.now(UTC) + timedelta(days=1),
        Period=86400, Statistics=["Sum"],
    )["Datapoints"]  # fmt: skip
    assert [d["Sum"] for d in throttles] == [float(len(refused))] and len(refused) >= 2


def test_an_event_invocation_waits_for_a_free_environment(emulator: str, runtime: functions.Functions,
                                                          tmp_path: Any) -> None:  # fmt: skip
    arn = deploy(
        emulator,
        "queued",
        {"app.py": HOLDER.replace('return {"pid"', 'open(event["release"] + ".done", "a").close(); return {"pid"')},
    )
    client(emulator, "lambda").put_function_concurrency(FunctionName="queued", ReservedConcurrentExecutions=1)
    release = str(tmp_path / "go")
    threads, _ = _hold(emulator, "queued", release, 1)
    _until(lambda: runtime.busy(arn) == 1)
    queued, _ = invoke(emulator, "queued", {"release": release}, InvocationType="Event")
    assert queued["StatusCode"] == 202  # accepted, not throttled
    open(release, "w").close()
    threads[0].join(30)
    _until(lambda: runtime.busy(arn) == 0 and os.path.exists(release + ".done"))
    assert runtime.environments(arn) == 1  # it ran in the environment the first one freed


def test_idle_environments_are_reclaimed(emulator: str, runtime: functions.Functions, tmp_path: Any) -> None:
    arn = deploy(emulator, "idle", {"app.py": HOLDER})
    release = str(tmp_path / "go")
    open(release, "w").close()
    pid = invoke(emulator, "idle", {"release": release})[1]["pid"]
    runtime.idle_seconds = 0.2
    _until(lambda: runtime.environments(arn) == 0 and not _alive(pid))
    assert invoke(emulator, "idle", {"release": release})[1]["pid"] != pid  # a cold start


async def _message_answer(url: str, lambda_api: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url + "?token=good") as socket:
        lambda_api.put_function_concurrency(FunctionName="chat", ReservedConcurrentExecutions=0)
        await socket.send_str("not json")  # $default, now throttled
        return dict(json.loads((await socket.receive(timeout=20)).data))


def test_a_throttled_route_is_answered_as_api_gateway_answers_a_failed_integration(emulator: str) -> None:
    """The app sees a 500 on the upgrade (and reconnects with backoff), or an error frame."""
    url = websocket_url(chat_api(emulator), "prod")
    lambda_api = client(emulator, "lambda")
    answer = asyncio.run(_message_answer(url, lambda_api))
    assert answer["message"] == "Internal server error" and answer["connectionId"]
    assert asyncio.run(refused(url)) == 500  # throttled: the function never ran
    lambda_api.delete_function_concurrency(FunctionName="chat")
    assert asyncio.run(refused(url)) == 401  # the function ran, and refused the bad token itself


def test_prewarmed_environments_take_the_next_invocations(emulator: str, runtime: functions.Functions,
                                                          tmp_path: Any) -> None:  # fmt: skip
    from moto.awslambda.models import lambda_backends

    arn = deploy(emulator, "warmed", {"app.py": HOLDER})
    client(emulator, "lambda").put_function_concurrency(FunctionName="warmed", ReservedConcurrentExecutions=2)
    release = str(tmp_path / "go")
    open(release, "w").close()
    function = lambda_backends["123456789012"]["eu-west-1"].get_function("warmed")
    assert runtime.prewarm(function, 5, json.dumps({"release": release}).encode()) == 2  # no more than reserved
    threads, results = _hold(emulator, "warmed", release, 2)
    for thread in threads:
        thread.join(30)
    assert len(results) == 2 and runtime.environments(arn) == 2
