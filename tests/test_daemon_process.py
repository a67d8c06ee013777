"""A daemon as systemd and a technician see it: sd_notify, stack dumps, permanent errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xephang import systemd

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.broker


def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(path)
    s.settimeout(0.2)
    return s, path


def recv_until(sock, want: str, timeout: float) -> list[str]:
    got: list[str] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            got += sock.recv(4096).decode().split("\n")
        except TimeoutError:
            continue
        if any(want in g for g in got):
            break
    return got


def test_notify_is_a_noop_outside_systemd(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.notify("READY=1") is False


def test_hub_says_ready_pings_watchdog_dumps_stacks_and_says_stopping(tmp_path, daemon_env):
    sock, path = notify_socket(tmp_path)
    env = {**daemon_env, "NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000", "XEPHANG_NODE": "hub"}
    proc = subprocess.Popen([sys.executable, "-m", "hubd.main"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        got = recv_until(sock, "READY=1", 15)
        assert "READY=1" in got
        got = recv_until(sock, "WATCHDOG=1", 5)
        assert "WATCHDOG=1" in got
        proc.send_signal(signal.SIGUSR1)
        got = recv_until(sock, "WATCHDOG=1", 2)  # still alive and pinging after the dump
        assert "WATCHDOG=1" in got
        proc.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in recv_until(sock, "STOPPING=1", 10)
        assert proc.wait(10) == 0
        err = proc.stderr.read()  # type: ignore[union-attr]
        assert "Thread" in err and "most recent call first" in err  # the SIGUSR1 stack dump
    finally:
        if proc.poll() is None:
            proc.kill()
        sock.close()


def test_wrong_password_exits_nonzero_at_once_without_a_hot_loop(tmp_path):
    from xephang_ops.mosquitto import Mosquitto

    pw = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "hub", "right"], check=True)
    mq = Mosquitto(tmp_path / "mq", password_file=pw).start()
    try:
        secret = tmp_path / "hub.pw"
        secret.write_text("wrong\n")
        env = {**os.environ, "XEPHANG_SITE_FILE": str(os.path.join(os.path.dirname(__file__), "..", "config", "site.example.toml")),
               "XEPHANG_STATE_DIR": str(tmp_path / "state"), "XEPHANG_BROKER__PORT": str(mq.port),
               "XEPHANG_BROKER__PASSWORD_FILE": str(secret), "XEPHANG_NODE": "hub"}
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "hubd.main"], env=env, capture_output=True, text=True, timeout=30)
        assert r.returncode == 76
        assert "check credentials/ACL" in r.stderr
        assert time.monotonic() - t0 < 15
    finally:
        mq.kill()


@pytest.mark.parametrize("module", ["hubd.main", "counterd.main", "ticketd.main", "displayd.main", "announcerd.main"])
@pytest.mark.parametrize("check", [True, False], ids=["--check", "start"])
def test_what_the_start_needs_is_checked_exit_78_every_problem_no_traceback(tmp_path, module, check):
    """A missing password file passed ``--check`` ("settings OK") and then crashed the start with a
    traceback and exit 1. Now both say every problem and exit 78 (EX_CONFIG), before connecting."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    env = {k: v for k, v in os.environ.items() if not k.startswith("XEPHANG_")}
    env.update({"XEPHANG_SITE_FILE": str(REPO / "config" / "site.example.toml"), "XEPHANG_SIM": "true",
                "XEPHANG_STATE_DIR": str(blocker / "state"), "XEPHANG_SIM_OUT": str(tmp_path / "sim"),
                "XEPHANG_BROKER__PASSWORD_FILE": str(tmp_path / "missing.pw"), "XEPHANG_BROKER__PORT": "1",
                "XEPHANG_COUNTER__NUMBER": "1", "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy",
                "GPIOZERO_PIN_FACTORY": "mock"})
    r = subprocess.run([sys.executable, "-m", module, *(["--check"] if check else [])], env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 78, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert "broker.password_file: không đọc được " in r.stderr and "/ cannot read " in r.stderr
    assert "missing.pw" in r.stderr
    # --check asks whether it could make the folder (it makes nothing); a start tries
    assert ("state_dir: không tạo được" if check else "state_dir: không ghi được vào") in r.stderr
