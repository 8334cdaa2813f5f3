"""An old and a new version of the handlers side by side on one table: during a canary or linear
release the live alias weights apply per invocation, so one connection's `$connect`, its frames
(`$default`) and its `$disconnect` may each run on another version. Here the alias is weighted
50/50 between two versions of different code (the real handlers zip; the new one also answers
with its release in the log), and the emulator's chooser sends each route to a chosen version:
the connection's row in PostgreSQL must come out as one version alone would leave it."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import boto3
import psycopg
import pytest

from emulator import lambda_versions, websocket_url
from handlers.migrate import migrate
from rollout import package, session
from tests.emulator.lambda_zips import LAMBDA_TRUST, REGION

pytestmark = [pytest.mark.postgres]
ROUTES = {"connect": "$connect", "default": "$default", "disconnect": "$disconnect"}
BUCKET = "side-by-side-code"
MARKER = "handlers/release_marker.py"


def client(emulator: str, service: str) -> Any:
    return boto3.client(service, region_name=REGION, endpoint_url=emulator)


@pytest.fixture(scope="module")
def zips(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """The handlers zip for this machine, and a new release of it: other code (its package prints
    its release when a handler module is imported)."""
    machine = next(name for name, m in package.ARCHITECTURES.items() if m == package.os_machine())
    old = Path(package.build(package.Target(machine), tmp_path_factory.mktemp("zip")).path).read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(old)) as source, zipfile.ZipFile(buffer, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "handlers/__init__.py":
                data += b'\nprint("release: new", flush=True)\n'
            target.writestr(item, data)
        target.writestr(MARKER, 'RELEASE = "new"\n')
    return old, buffer.getvalue()


@pytest.fixture
def database(postgres_server: str) -> Iterator[str]:
    with session.throwaway_database(postgres_server) as url:
        with psycopg.connect(url, autocommit=True) as owner:
            migrate(owner)
        yield url


def _wait_updated(lam: Any, name: str) -> None:
    deadline = time.monotonic() + 30
    while lam.get_function_configuration(FunctionName=name).get("LastUpdateStatus") not in (None, "Successful"):
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _deploy(emulator: str, zips: tuple[bytes, bytes], database: str, key: bytes) -> tuple[str, dict[str, list[str]]]:
    """Three route functions with versions 1 (old) and 2 (new), their live aliases weighted 50/50,
    and a WebSocket API invoking the aliases; the API id and each function's versions."""
    s3, lam, apis = client(emulator, "s3"), client(emulator, "lambda"), client(emulator, "apigatewayv2")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for label, body in zip(("old", "new"), zips, strict=True):
        s3.put_object(Bucket=BUCKET, Key=f"{label}.zip", Body=body)
    role = client(emulator, "iam").create_role(RoleName="side-by-side", AssumeRolePolicyDocument=LAMBDA_TRUST)
    api_id = apis.create_api(Name="side", ProtocolType="WEBSOCKET", RouteSelectionExpression="$request.body.action")[
        "ApiId"
    ]
    variables = {
        "DATABASE_AUTH": "url",
        "DATABASE_URL": database,
        "DATABASE_SSLMODE": "disable",
        "JWT_SECRET": base64.b64encode(key).decode(),
        "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": f"https://{api_id}.execute-api.{REGION}.amazonaws.com/prod",
        "CONNECTION_TTL_MINUTES": "120",
    }
    versions: dict[str, list[str]] = {}
    for module, route in ROUTES.items():
        name = f"side-{module}"
        lam.create_function(FunctionName=name, Runtime="python3.14", Role=role["Role"]["Arn"],
                            Handler=f"handlers.{module}.handler", Timeout=20, Environment={"Variables": variables},
                            Code={"S3Bucket": BUCKET, "S3Key": "old.zip"})  # fmt: skip
        _wait_updated(lam, name)
        first = lam.publish_version(FunctionName=name)["Version"]
        lam.update_function_code(FunctionName=name, S3Bucket=BUCKET, S3Key="new.zip")
        _wait_updated(lam, name)
        second = lam.publish_version(FunctionName=name)["Version"]
        versions[module] = [first, second]
        alias = lam.create_alias(FunctionName=name, Name="live", FunctionVersion=first,
                                 RoutingConfig={"AdditionalVersionWeights": {second: 0.5}})["AliasArn"]  # fmt: skip
        uri = f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{alias}/invocations"
        integration = apis.create_integration(ApiId=api_id, IntegrationType="AWS_PROXY", IntegrationUri=uri)
        apis.create_route(ApiId=api_id, RouteKey=route, Target=f"integrations/{integration['IntegrationId']}")
    apis.create_stage(ApiId=api_id, StageName="prod")
    return str(api_id), versions


async def _one_connection(url: str, key: bytes) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:

        async def until(kind: str) -> dict[str, Any]:
            while True:
                frame = json.loads((await socket.receive(timeout=60)).data)
                if frame.get("type") == kind:
                    return dict(frame)

        await socket.send_json({"type": "authenticate", "token": session.mint(key, session.EMAIL, session.ROLE)})
        authenticated = await until("authentication-success")
        await socket.send_json({"type": "heartbeat"})
        await until("heartbeat-response")
    return authenticated


def _row(database: str) -> tuple[Any, ...]:
    with psycopg.connect(database) as connection:
        rows = connection.execute(
            "SELECT user_email, user_id IS NOT NULL, is_active, last_activity_at >= connected_at FROM websocket_connections"
        ).fetchall()
    assert len(rows) == 1, rows
    return tuple(rows[0])


@pytest.mark.parametrize("plan", [("old", "new", "old", "new"), ("new", "old", "new", "old")])
def test_one_connections_routes_on_two_versions_leave_a_consistent_row(
    emulator: str,
    zips: tuple[bytes, bytes],
    database: str,
    monkeypatch: pytest.MonkeyPatch,
    plan: tuple[str, ...],
) -> None:
    key = os.urandom(48)
    api_id, versions = _deploy(emulator, zips, database, key)
    chosen: list[str] = []
    order = list(plan)  # $connect, authenticate, heartbeat, $disconnect

    def choose(weights: list[tuple[str, float]]) -> str:
        assert [w for _, w in weights] == [0.5, 0.5]  # the alias's weights, as configured
        pick = weights[0][0] if order.pop(0) == "old" else weights[1][0]
        chosen.append(pick)
        return pick

    monkeypatch.setattr(lambda_versions, "chooser", choose)
    authenticated = asyncio.run(_one_connection(websocket_url(api_id, "prod"), key))
    assert authenticated["userEmail"] == session.EMAIL
    deadline = time.monotonic() + 20
    while order and time.monotonic() < deadline:  # $disconnect runs after the socket closed
        time.sleep(0.1)
    assert not order, f"routes not run: {order}"
    old, new = versions["connect"]
    assert chosen == [old if p == "old" else new for p in plan]  # each route on the version planned
    deadline = time.monotonic() + 20
    while _row(database)[2] and time.monotonic() < deadline:
        time.sleep(0.1)
    # Registered by one version, authenticated and touched by the other, closed: one row, as one version leaves it.
    assert _row(database) == (session.EMAIL, True, False, True)
    logs = client(emulator, "logs")
    printed = [
        event["message"]
        for module in ROUTES
        for event in logs.filter_log_events(logGroupName=f"/aws/lambda/side-{module}").get("events", [])
    ]
    assert any("release: new" in line for line in printed)  # the new code ran
