"""Run a private Mosquitto broker: for tests, the demo and technicians' laptops.

Writes a config in a folder of its own, listens on 127.0.0.1 on a free port, and can be
stopped, killed and restarted on the same port (fault tests). Authentication and the ACL
are optional (``xephang broker-config`` generates them for a real site).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from xephang_ops.brokerconf import MAX_QUEUED_BYTES, client_id_lines, listener_lines, size_limit_lines

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto")


class BrokerError(RuntimeError):
    pass


def die_with_parent() -> None:
    """In a child, before exec: SIGTERM when the parent dies, even by SIGKILL (Linux prctl)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def find_mosquitto() -> str | None:
    for c in MOSQUITTO_CANDIDATES:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("mosquitto")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return True
        time.sleep(0.02)
    return False


class Mosquitto:
    """A mosquitto process on 127.0.0.1:``port`` with a generated config in ``workdir``."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        password_file: Path | None = None,
        acl_file: Path | None = None,
        persistence: bool = True,
        extra_conf: str = "",
        die_with_parent: bool = False,
        bind_client_ids: bool = False,
        tech_port: int | None = None,
    ) -> None:
        exe = find_mosquitto()
        if not exe:
            raise BrokerError("mosquitto not found: install it (apt-get install -y mosquitto)")
        self.exe = exe
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self._ports_chosen = port is None and tech_port is None  # ours to pick again if another took them
        # bind_client_ids: as on a site's broker (``xephang broker-config``), client ids are bound to
        # accounts on this listener (technicians' tools, several at once under one account, use a
        # second) and a packet over the contract's size ends its sender's connection
        self.bind_client_ids = bind_client_ids
        self.tech_port = (tech_port or free_port()) if bind_client_ids else None
        self.password_file = password_file
        self.acl_file = acl_file
        self.persistence = persistence
        self.extra_conf = extra_conf
        self.die_with_parent = die_with_parent
        self.proc: subprocess.Popen[bytes] | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"

    def write_conf(self) -> Path:
        lines = []
        if os.geteuid() == 0:
            lines.append(f"user {getpass.getuser()}")  # else it drops to 'mosquitto' and cannot write here
        if self.bind_client_ids:
            lines += [*client_id_lines(), *size_limit_lines(), *listener_lines(self.port, "127.0.0.1")]
            if self.tech_port:
                lines += listener_lines(self.tech_port, "127.0.0.1", tech=True)
        else:
            lines.append(f"listener {self.port} 127.0.0.1")
        lines += [
            "max_queued_messages 10000",
            # as a site's broker (xephang broker-config): floods in tests meet the same per-client cap
            f"max_queued_bytes {MAX_QUEUED_BYTES}",
            "max_inflight_messages 100",
            "persistent_client_expiration 1d",
            "set_tcp_nodelay true",
        ]
        if self.password_file:
            lines += ["allow_anonymous false", f"password_file {self.password_file}"]
        else:
            lines.append("allow_anonymous true")
        if self.acl_file:
            lines.append(f"acl_file {self.acl_file}")
        if self.persistence:
            lines += [
                "persistence true",
                f"persistence_location {self.workdir}/",
                "autosave_interval 1",
                "autosave_on_changes false",
            ]
        else:
            lines.append("persistence false")
        lines.append(f"log_dest file {self.log_path}")
        lines.append("log_type error\nlog_type warning\nlog_type notice")
        if self.extra_conf:
            lines.append(self.extra_conf)
        self.conf_path.write_text("\n".join(lines) + "\n")
        return self.conf_path

    def start(self, timeout: float = 10.0) -> Mosquitto:
        for attempt in range(3):
            self.write_conf()
            self.proc = subprocess.Popen([self.exe, "-c", str(self.conf_path)], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, start_new_session=True,
                                         preexec_fn=die_with_parent if self.die_with_parent else None)
            # every listener must answer before a client is told the broker is up (the technicians' too)
            if all(wait_port(p, timeout) for p in (self.port, self.tech_port) if p):
                return self
            err = b""
            if self.proc.poll() is not None and self.proc.stderr:
                err = self.proc.stderr.read()
            self.kill()
            log = self.log_path.read_text() if self.log_path.exists() else ""
            why = f"{err.decode(errors='replace')} {log[-500:]}"
            if self._ports_chosen and "in use" in why and attempt < 2:
                # a free port we picked was taken by another process before mosquitto bound it: pick again
                self.port = free_port()
                self.tech_port = free_port() if self.bind_client_ids else None
                continue
            raise BrokerError(f"mosquitto did not start on port {self.port}: {why}")
        raise AssertionError("unreachable")  # pragma: no cover

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        if self.proc and self.proc.stderr:
            self.proc.stderr.close()

    def restart(self, *, hard: bool = False) -> None:
        (self.kill if hard else self.stop)()
        # the port may linger in TIME_WAIT; mosquitto sets SO_REUSEADDR so it can bind again
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
