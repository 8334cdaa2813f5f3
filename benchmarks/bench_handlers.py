"""Handler figures, each against a baseline measured in the same run:

- cold import of each handler module in a fresh interpreter, against a bare interpreter start;
- $connect and $disconnect latency on the local PostgreSQL, against a `SELECT 1` round trip;
- fan-out of one message to 1,000 connections through the management API (moto server over
  HTTP), bounded-parallel against one-by-one; also with 10 ms added per post, closer to the
  real API Gateway round trip.

PostgreSQL: CC_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.
"""

from __future__ import annotations

import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import psycopg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from handlers.connect import register_connection  # noqa: E402
from handlers.db import Database  # noqa: E402
from handlers.disconnect import deactivate_connection  # noqa: E402
from handlers.events import parse_event  # noqa: E402
from handlers.migrate import migrate  # noqa: E402
from handlers.sender import Sender  # noqa: E402
from handlers.store import ConnectionStore  # noqa: E402
from tests.handlers.events import connect_event, disconnect_event  # noqa: E402

URL = os.environ.get("CC_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = "cc_bench"


def seconds(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def cold_imports() -> None:
    def fresh(code: str) -> float:
        return statistics.median(
            seconds(lambda: subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)) for _ in range(5)
        )

    base = fresh("pass")
    print(f"cold import (median of 5 fresh interpreters; bare interpreter {base * 1000:.0f} ms)")
    for module in (
        "handlers.connect",
        "handlers.disconnect",
        "handlers.default",
        "handlers.cleanup",
        "handlers.notify",
    ):
        took = fresh(f"import {module}")
        print(
            f"  {module:22s} {took * 1000:7.0f} ms  = {took / base:4.1f}x bare start, {(took - base) * 1000:5.0f} ms for the import"
        )


def latencies() -> None:
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}".encode())
        admin.execute(f"SET search_path = {SCHEMA}".encode())
        migrate(admin)  # the release step; the handlers never create the table
    db = Database(lambda: psycopg.connect(URL, autocommit=True, options=f"-csearch_path={SCHEMA}"))
    store = ConnectionStore(db)
    db.run("SELECT 1")
    rounds = 300
    select = [seconds(lambda: db.run("SELECT 1")) for _ in range(rounds)]
    connects, disconnects = [], []
    for i in range(rounds):
        request = parse_event(connect_event(f"bench-{i}", {"email": f"u{i}@example.org", "type": "email-verification"}))
        connects.append(
            seconds(lambda r=request: register_connection(r, store, endpoint="https://x/prod", ttl_minutes=120))
        )
    for i in range(rounds):
        request = parse_event(disconnect_event(f"bench-{i}"))
        disconnects.append(seconds(lambda r=request: deactivate_connection(r, store)))
    base = median_ms(select)
    print(f"latency on local PostgreSQL (median of {rounds}; SELECT 1 round trip {base:.3f} ms)")
    for name, samples in (("$connect", connects), ("$disconnect", disconnects)):
        p95 = statistics.quantiles(samples, n=20)[-1] * 1000
        print(
            f"  {name:12s} median {median_ms(samples):6.3f} ms  p95 {p95:6.3f} ms  = {median_ms(samples) / base:4.1f}x SELECT 1"
        )
    db.close()
    with psycopg.connect(URL, autocommit=True) as admin:
        admin.execute(f"DROP SCHEMA {SCHEMA} CASCADE".encode())


class Delayed:
    """A management client (or none) plus a fixed network delay per post."""

    def __init__(self, client: Any | None, delay: float) -> None:
        self.client, self.delay = client, delay

    def post_to_connection(self, **kwargs: Any) -> Any:
        time.sleep(self.delay)
        return self.client.post_to_connection(**kwargs) if self.client else {}


def fan_out() -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        host, port = server.get_host_and_port()
        client = boto3.client(
            "apigatewaymanagementapi",
            endpoint_url=f"http://{host}:{port}",
            region_name="eu-west-1",
            config=__import__("botocore.config").config.Config(max_pool_connections=16),
        )
        targets = [f"conn-{i}" for i in range(1000)]
        payload = {"type": "ai-chat-response", "message": "x" * 200}
        print("fan-out of one frame to 1,000 connections")
        cases = (
            ("moto server, loopback", client),
            ("moto + 10 ms per post", Delayed(client, 0.010)),
            ("10 ms per post, no server", Delayed(None, 0.010)),
        )
        for label, target in cases:
            serial = seconds(lambda t=target: Sender(t, on_gone=print, max_workers=1).fan_out(targets, payload))
            parallel = seconds(lambda t=target: Sender(t, on_gone=print, max_workers=16).fan_out(targets, payload))
            print(
                f"  {label:26s} one-by-one {serial:6.2f} s   16 in parallel {parallel:6.2f} s   speed-up {serial / parallel:4.1f}x"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    logging.getLogger("handlers").setLevel(logging.WARNING)  # one line per call would drown the figures
    cold_imports()
    latencies()
    fan_out()
