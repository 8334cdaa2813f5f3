"""The local WebSocket API under load, against the same work as direct handler calls, in one run:
1,000 concurrent clients each connect, authenticate with a backend-minted token and send two
heartbeats over real sockets (aiohttp's client) to `handlers.local` on the real PostgreSQL.
Figures: connects per second, round trip p50/p99, errors (must be 0), rows still active after
every client closed (must be 0). Baseline: the same events through the entry points directly,
the replies posted to a management endpoint that only accepts them.

PostgreSQL: CC_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import asyncio
import logging
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import aiohttp
import psycopg
from aiohttp import web

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench_handlers import URL  # noqa: E402

from handlers.migrate import migrate  # noqa: E402
from tests.handlers.careconnect import USERS_DDL, BackendSecret, mint  # noqa: E402
from tests.ports import free_port  # noqa: E402

CLIENTS = 1000
SCHEMA = "cc_bench_local"
SECRET = BackendSecret.generate()


def serve(app: web.Application, port: int) -> None:
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port, backlog=2048).start())
    threading.Thread(target=loop.run_forever, daemon=True).start()


def prepare_database() -> str:
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}".encode())
        admin.execute(f"SET search_path = {SCHEMA}".encode())
        admin.execute(USERS_DDL.encode())
        admin.execute("""INSERT INTO users (email, password, role, email_verified, status, name)
                         SELECT 'user' || n || '@example.org', 'x', 'PATIENT', TRUE, 'ACTIVE', 'User ' || n
                         FROM generate_series(1, %s) AS n""", (CLIENTS,))  # fmt: skip
        migrate(admin)  # the release step: the handlers only check the table's version
    return f"{URL}{'&' if '?' in URL else '?'}options=-csearch_path%3D{SCHEMA}"


async def client(base: str, n: int, trips: list[float], errors: list[str], connected: list[float]) -> None:
    try:
        async with aiohttp.ClientSession() as http:
            start = time.perf_counter()
            async with http.ws_connect(base.replace("http", "ws") + "/ws/careconnect", timeout=60) as ws:
                connected.append(time.perf_counter() - start)
                token = mint(SECRET.key, f"user{n}@example.org", "PATIENT")
                for message in ({"type": "authenticate", "token": token}, {"type": "heartbeat"}, {"type": "heartbeat"}):
                    sent = time.perf_counter()
                    await ws.send_json(message)
                    while True:  # the first message is also greeted
                        frame = await asyncio.wait_for(ws.receive_json(), timeout=60)
                        if frame["type"] in ("authentication-success", "heartbeat-response"):
                            break
                        if frame["type"] not in ("connection-established",):
                            errors.append(frame["type"])
                            break
                    trips.append(time.perf_counter() - sent)
    except Exception as error:
        errors.append(type(error).__name__)


def direct(count: int) -> float:
    """The same events through the entry points, no sockets."""
    from types import SimpleNamespace

    from handlers import connect, default, disconnect
    from tests.handlers.events import connect_event, disconnect_event, message_event

    context = SimpleNamespace(aws_request_id="bench")
    start = time.perf_counter()
    for n in range(1, count + 1):
        cid = f"direct-{n}"
        connect.handler(connect_event(cid), context)
        token = mint(SECRET.key, f"user{n}@example.org", "PATIENT")
        for body in (f'{{"type":"authenticate","token":"{token}"}}', '{"type":"heartbeat"}', '{"type":"heartbeat"}'):
            default.handler(message_event(cid, body), context)
        disconnect.handler(disconnect_event(cid), context)
    return time.perf_counter() - start


def main() -> None:
    logging.getLogger("handlers").setLevel(logging.WARNING)
    logging.getLogger("handlers.local").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    database_url = prepare_database()
    port, sink_port = free_port(), free_port()
    os.environ.update({"DATABASE_AUTH": "url", "DATABASE_URL": database_url, "JWT_SECRET": SECRET.text,
                       "AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_WEBSOCKET_API_GATEWAY_ENDPOINT": f"http://127.0.0.1:{port}"})  # fmt: skip
    from handlers import runtime
    from handlers.local import LocalApi

    base = f"http://127.0.0.1:{port}"
    serve(LocalApi(f"127.0.0.1:{port}").app(), port)
    trips: list[float] = []
    errors: list[str] = []
    connected: list[float] = []

    async def crowd() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(client(base, n, trips, errors, connected) for n in range(1, CLIENTS + 1)))
        return time.perf_counter() - start

    took = asyncio.run(crowd())
    for _ in range(50):  # the last $disconnects finish on the server after the clients' closes: up to 10 s
        active = runtime.store().db.run("SELECT count(*) FROM websocket_connections WHERE is_active")[0][0]
        if not active:
            break
        time.sleep(0.2)
    sink = web.Application()
    sink.router.add_post("/@connections/{id}", lambda _request: web.Response())
    serve(sink, sink_port)
    os.environ["AWS_WEBSOCKET_API_GATEWAY_ENDPOINT"] = f"http://127.0.0.1:{sink_port}"
    runtime.settings.cache_clear()
    runtime._sender.cache_clear()
    baseline = direct(CLIENTS)
    quantiles = statistics.quantiles(trips, n=100) if len(trips) > 1 else [0.0] * 99
    print(f"local WebSocket API: {CLIENTS:,} concurrent clients (connect, authenticate, 2 heartbeats, close)")
    print(f"  whole run {took:6.2f} s   {len(connected) / took:7.1f} connects/s   round trip p50 "
          f"{quantiles[49] * 1000:6.1f} ms  p99 {quantiles[98] * 1000:6.1f} ms")  # fmt: skip
    print(f"  errors {len(errors)} {sorted(set(errors))[:3]}   rows still active after close: {active}")
    print(f"  the same events through the entry points directly: {baseline:6.2f} s "
          f"(sockets cost {took / baseline:4.2f}x, with {CLIENTS:,} clients at once)")  # fmt: skip
    runtime.store().db.close()
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE".encode())


if __name__ == "__main__":
    main()
