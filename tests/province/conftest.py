"""A real PostgreSQL for the province tests: the machine's server, or one this session starts.

Order: a server already answering on 127.0.0.1:5432 (user postgres, then root); Debian's
cluster started with pg_ctlcluster; a throwaway cluster (initdb in a temp dir, installed with
apt-get if needed) run as the postgres user on a free port. Otherwise the tests skip, saying why.
Every test gets a fresh database with a random name, dropped afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

psycopg = pytest.importorskip("psycopg", reason="the province extra is not installed: pip install -e '.[province]'")

from xephang_ops.mosquitto import free_port, wait_port  # noqa: E402


def _try(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as c:
            c.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _running(port: int = 5432) -> str | None:
    for user in ("postgres", "root", os.environ.get("USER", "")):
        if user:
            dsn = f"postgresql://{user}@127.0.0.1:{port}/postgres"
            if _try(dsn):
                return dsn
    return None


def _start_debian_cluster() -> str | None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    for v in versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", v, "main", "start"],
                       capture_output=True, timeout=60)
        if wait_port(5432, 10) and (dsn := _running()):
            return dsn
    return None


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return os.path.dirname(found[-1]) if found else None


def _throwaway_cluster(stack: contextlib.ExitStack) -> tuple[str | None, str]:
    if _bindir() is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], capture_output=True, timeout=600,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    bindir = _bindir()
    if bindir is None:
        return None, "no PostgreSQL server answers, and none could be installed (apt-get install postgresql)"
    data = Path(tempfile.mkdtemp(prefix="xephang-pg-"))
    port = free_port()
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(data, "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    r = subprocess.run([*run_as, f"{bindir}/initdb", "-D", str(data / "db"), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       capture_output=True, timeout=120)
    if r.returncode != 0:
        return None, f"initdb failed: {r.stderr.decode(errors='replace')[-300:]}"
    r = subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", str(data / "db"), "-l", str(data / "log"), "-w", "-o",
                        f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off", "start"],
                       capture_output=True, timeout=60)
    if r.returncode != 0:
        return None, f"pg_ctl start failed: {r.stderr.decode(errors='replace')[-300:]}"
    stack.callback(lambda: subprocess.run([*run_as, f"{bindir}/pg_ctl", "-D", str(data / "db"), "-m", "immediate",
                                           "stop"], capture_output=True, timeout=60))
    stack.callback(shutil.rmtree, data, True)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    return (dsn if _try(dsn) else None), "the throwaway cluster did not answer"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """DSN of the maintenance database of a running PostgreSQL server."""
    with contextlib.ExitStack() as stack:
        dsn = _running() or _start_debian_cluster()
        why = ""
        if dsn is None:
            dsn, why = _throwaway_cluster(stack)
        if dsn is None:
            pytest.skip(f"no PostgreSQL for the province tests: {why}")
        yield dsn


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """DSN of a fresh, empty database, dropped after the test."""
    name = "xephang_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_server, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(pg_server, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[object]:
    """A migrated connection to the fresh database."""
    from province.db import migrate

    with psycopg.connect(pg_dsn) as conn:
        migrate(conn)
        yield conn
