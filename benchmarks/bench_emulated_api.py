"""The project's WebSocket API as the emulator serves it (deployed by the rehearsal's rollout, each
frame through API Gateway's emulation into the deployed zip under AWS's runtime client, pushes
back through the management API) against `handlers.local` (the handlers in its own process), in
one run: 1,000 clients each connect, authenticate with a backend-minted token, send a heartbeat
and close, at most CONCURRENT at once (each emulated connection in flight holds an execution
environment per function, a process: 1,000 at once would be 3,000 processes), after a warm-up of
CONCURRENT clients that is not counted. Figures: connects per second, round trip p50/p99 (the
authenticate and the heartbeat), errors (must be 0), rows still active after every close (must be
0), and the emulator's time against handlers.local's.

PostgreSQL: CC_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_handlers import URL  # noqa: E402
from bench_local import SECRET, prepare_database, serve  # noqa: E402

from tests.ports import free_port  # noqa: E402

CLIENTS = 1000
CONCURRENT = 25


@dataclass
class Run:
    trips: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connects: int = 0
    seconds: float = 0.0


async def one_client(url: str, key: bytes, n: int, run: Run) -> None:
    from rollout.session import mint

    try:
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as socket:
            run.connects += 1
            token = mint(key, f"user{n}@example.org", "PATIENT")
            for message, answer in (({"type": "authenticate", "token": token}, "authentication-success"),
                                    ({"type": "heartbeat"}, "heartbeat-response")):  # fmt: skip
                sent = time.perf_counter()
                await socket.send_json(message)
                while True:  # the first message is also greeted
                    frame = await socket.receive_json(timeout=60)
                    if frame["type"] == answer:
                        break
                    if frame["type"] != "connection-established":
                        run.errors.append(frame["type"])
                        break
                run.trips.append(time.perf_counter() - sent)
    except Exception as error:
        run.errors.append(type(error).__name__)


async def crowd(url: str, key: bytes, first: int, count: int) -> Run:
    run, gate = Run(), asyncio.Semaphore(CONCURRENT)

    async def gated(n: int) -> None:
        async with gate:
            await one_client(url, key, n, run)

    start = time.perf_counter()
    await asyncio.gather(*(gated(n) for n in range(first, first + count)))
    run.seconds = time.perf_counter() - start
    return run


def measured(url: str, key: bytes) -> Run:
    asyncio.run(crowd(url, key, CLIENTS + 1, CONCURRENT))  # warm-up: users beyond the counted ones
    return asyncio.run(crowd(url, key, 1, CLIENTS))


def active_rows(database_url: str) -> int:
    for _ in range(100):  # the last $disconnects run after the clients' closes
        with psycopg.connect(database_url) as connection:
            active = int(connection.execute("SELECT count(*) FROM websocket_connections WHERE is_active").fetchone()[0])  # type: ignore[index]
        if not active:
            return 0
        time.sleep(0.2)
    return active


def add_users(database_url: str, first: int, last: int) -> None:
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute("""INSERT INTO users (email, password, role, email_verified, status, name)
                              SELECT 'user' || n || '@example.org', 'x', 'PATIENT', TRUE, 'ACTIVE', 'User ' || n
                              FROM generate_series(%s::int, %s::int) AS n""", (first, last))  # fmt: skip


def local_run() -> tuple[Run, int]:
    database_url = prepare_database()  # bench_local's schema: CLIENTS users (the warm-up's are added)
    add_users(database_url, CLIENTS + 1, CLIENTS + CONCURRENT)
    port = free_port()
    os.environ.update({"DATABASE_AUTH": "url", "DATABASE_URL": database_url, "JWT_SECRET": SECRET.text,
                       "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": f"http://127.0.0.1:{port}"})  # fmt: skip
    from handlers.local import LocalApi

    serve(LocalApi(f"127.0.0.1:{port}").app(), port)
    run = measured(f"ws://127.0.0.1:{port}/ws/careconnect", SECRET.key)
    return run, active_rows(database_url)


def emulated_run() -> tuple[Run, int, str]:
    from emulator import websocket_url
    from rollout import package, settings
    from rollout.factory import Factory
    from rollout.rehearsal import rehearsed
    from rollout.report import Reporter

    factory = Factory(build_package=lambda target, project: package.build(target, project=project))
    options = factory.options(poll_seconds=0)
    with rehearsed(settings.load("rehearsal"), Reporter(io.StringIO()), options, "local", factory, URL) as done:
        assert done.setup is not None
        add_users(done.setup.database_url, 1, CLIENTS + CONCURRENT)
        endpoint = done.summary.management_endpoint
        api_id, stage = endpoint.split("//", 1)[1].split(".", 1)[0], endpoint.rsplit("/", 1)[1]
        url = websocket_url(api_id, stage)
        run = measured(url, done.setup.jwt_key)
        return run, active_rows(done.setup.database_url), url


def line(name: str, run: Run, active: int) -> str:
    q = statistics.quantiles(run.trips, n=100) if len(run.trips) > 1 else [0.0] * 99
    return (f"  {name:<15s} {run.seconds:7.2f} s  {run.connects / run.seconds:7.1f} connects/s  round trip p50 "
            f"{q[49] * 1000:7.1f} ms  p99 {q[98] * 1000:7.1f} ms  errors {len(run.errors)} "
            f"{sorted(set(run.errors))[:3]}  rows active after close {active}")  # fmt: skip


def main() -> None:
    for name in ("handlers", "handlers.local", "aiohttp.access", "emulator", "moto", "werkzeug"):
        logging.getLogger(name).setLevel(logging.ERROR)
    local, local_active = local_run()
    emulated, emulated_active, url = emulated_run()
    print(f"WebSocket API: {CLIENTS:,} clients, {CONCURRENT} at once (connect, authenticate, heartbeat, close)")
    print(line("handlers.local", local, local_active))
    print(line("emulated API", emulated, emulated_active) + f"  ({url})")
    print(f"  the emulated API takes {emulated.seconds / local.seconds:5.2f}x handlers.local's time "
          "(each frame a Lambda invocation of the deployed zip, each reply a management-API call)")  # fmt: skip
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(b"DROP SCHEMA IF EXISTS cc_bench_local CASCADE")


if __name__ == "__main__":
    main()
