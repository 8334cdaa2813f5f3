"""Finding a real PostgreSQL for the tests.

In order: `CC_TEST_DATABASE_URL`; the local server at 127.0.0.1:5432 (database `test`, trust
auth, as on CI); a throwaway cluster started from the PostgreSQL server binaries (`initdb`,
`pg_ctl`) when they are installed. Without any, tests that need PostgreSQL skip, except when
`CI` is set: there they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

from tests.ports import free_port

LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/test"


def reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _server_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(candidates[-1]).parent if candidates else None


@contextmanager
def throwaway_cluster(settings: dict[str, str] | None = None) -> Iterator[str | None]:
    """Start a private cluster on a free port, with these server settings (e.g. max_connections);
    yields its URL, or None without the binaries."""
    bin_dir = _server_binaries()
    if bin_dir is None:
        yield None
        return
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        runuser = shutil.which("runuser")
        if runuser is None:
            yield None
            return
        as_user = [runuser, "-u", "postgres", "--"]
    work = Path(tempfile.mkdtemp(prefix="cc-pg-"))
    shutil.chown(work, "postgres") if as_user else None
    data, port = work / "data", free_port()
    subprocess.run([*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"],
                   check=True, capture_output=True)  # fmt: skip
    options = f"-p {port} -k {work} -c listen_addresses=127.0.0.1 -c fsync=off"
    options += "".join(f" -c {name}={value}" for name, value in (settings or {}).items())
    subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "start",
                    "-l", str(work / "log")], check=True, capture_output=True)  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(work, ignore_errors=True)


def with_schema(url: str, schema: str) -> str:
    """The same database, with `schema` first on the search path (isolates a test session)."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"
