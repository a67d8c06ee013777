"""webd and its open files, as a real process under the limits systemd gives a service.

Found from outside: 150 silent connections a second from one address to the HTTPS port (a TLS
connection is not webd's until its handshake is done, so the cap per address does not see it)
ran webd out of the 1,024 files systemd gives a service in 7 s, and asyncio then logged "socket.accept()
out of system resource" with a traceback some 10,000 times a second (211 MB in 30 s). webd raises
its own limit, and says that error once per ``ACCEPT_ERROR_EVERY_S`` with a count.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from webharness import wait_for

from webd import server
from webd.tlscert import make_certificates
from xephang_ops.mosquitto import free_port

REPO = Path(__file__).resolve().parents[2]
SITE = "tuong-linh"


def _open_files(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line")


def _start(tmp: Path, broker_port: int, nofile: tuple[int, int]) -> tuple[subprocess.Popen[bytes], int, dict]:
    tls = make_certificates(tmp / "tls", ["xephang.local", "127.0.0.1"], site=SITE)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XEPHANG_")}
    env.update({"XEPHANG_SITE_FILE": str(REPO / "config" / "site.example.toml"), "XEPHANG_STATE_DIR": str(tmp / "st"),
                "XEPHANG_BROKER__PORT": str(broker_port), "XEPHANG_WEB__LISTEN": "127.0.0.1",
                "XEPHANG_WEB__PORT": str(port), "XEPHANG_WEB__PUBLIC_URL": f"https://127.0.0.1:{port}",
                "XEPHANG_WEB__TLS_CERTFILE": str(tls["cert"]), "XEPHANG_WEB__TLS_KEYFILE": str(tls["key"])})
    p = subprocess.Popen([sys.executable, "-m", "webd.main"], env=env, stdout=subprocess.DEVNULL,
                         stderr=open(tmp / "webd.log", "wb"),  # noqa: SIM115 - the process writes it
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, nofile))
    return p, port, tls


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.broker
def test_webd_raises_the_open_files_systemd_gives_it(tmp_path, mosquitto):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < server.OPEN_FILES:
        pytest.skip(f"this machine's hard limit of open files is {hard}")
    p, port, _ = _start(tmp_path, mosquitto.port, (1024, hard))  # systemd's: 1,024 soft, 524,288 hard
    try:
        wait_for(lambda: _listening(port), 20, "webd listening")
        assert _open_files(p.pid) == server.OPEN_FILES
    finally:
        p.terminate()
        p.wait(10)


@pytest.mark.broker
def test_out_of_open_files_webd_says_so_once_a_while_and_serves_again_when_they_come_back(tmp_path, mosquitto):
    """A hard limit webd cannot pass (here 160 files): 300 silent TLS connections take them all. The
    log says it in a few lines, not one per waiting connection and second; the pages come back."""
    p, port, tls = _start(tmp_path, mosquitto.port, (160, 160))
    silent: list[socket.socket] = []
    try:
        wait_for(lambda: _listening(port), 20, "webd listening")
        assert _open_files(p.pid) == 160
        for _ in range(300):
            try:
                silent.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            except OSError:
                break
        log = tmp_path / "webd.log"
        wait_for(lambda: server.ACCEPT_ERROR in log.read_text(errors="replace"), 20, "webd out of open files")
        # the files stay taken over three of asyncio's accept retries (one a second), each of which
        # logged the error once for every connection waiting in the backlog: a window to look at
        # what was said, not a wait for an event
        time.sleep(3)
        said = log.read_text(errors="replace").count(server.ACCEPT_ERROR)
        assert 1 <= said <= 2, said
        assert p.poll() is None
    finally:
        for s in silent:
            s.close()
    try:
        ctx = ssl.create_default_context(cafile=str(tls["ca"]))

        def served() -> bool:
            try:
                with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", context=ctx, timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        wait_for(served, 20, "the login page again")
    finally:
        p.terminate()
        p.wait(10)


def test_accept_errors_are_said_once_per_period_with_how_many_and_others_go_on(caplog):
    now = [0.0]
    loop = asyncio.new_event_loop()
    try:
        seen = server.pace_accept_errors(loop, clock=lambda: now[0])
        ctx = {"message": server.ACCEPT_ERROR, "exception": OSError(24, "Too many open files")}
        with caplog.at_level(logging.ERROR):
            for _ in range(5000):
                loop.call_exception_handler(ctx)
            now[0] += server.ACCEPT_ERROR_EVERY_S
            loop.call_exception_handler(ctx)
            loop.call_exception_handler({"message": "something else went wrong"})
        lines = [r.getMessage() for r in caplog.records]
        assert seen["accept-errors"] == 5001
        assert [x for x in lines if server.ACCEPT_ERROR in x] == [
            f"{server.ACCEPT_ERROR} ([Errno 24] Too many open files): new connections wait until files are free",
            f"{server.ACCEPT_ERROR} ([Errno 24] Too many open files): new connections wait until files are free "
            f"[4999 more like this since the last line]"]
        assert "something else went wrong" in lines[-1]
    finally:
        loop.close()
