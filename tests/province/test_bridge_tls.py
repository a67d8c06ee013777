"""A centre's bridge to the province broker over TLS with its own username and password.

Everything is real: a CA and the province broker's certificate made with openssl in a temp dir,
a province Mosquitto with a TLS listener and a password file, a centre Mosquitto running the
fragment ``xephang bridge-config`` writes. An event published at the centre arrives at the
province; while the province broker is down the centre queues what it publishes, and the queue
flows when the link returns. A centre with a wrong password gets nothing through.
"""

from __future__ import annotations

import json
import queue
import shutil
import ssl
import subprocess
import time
from contextlib import ExitStack

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.province.helpers import publish, write_passwords
from xephang_ops.bridgeconf import BridgeTls, bridge_conf_text
from xephang_ops.mosquitto import Mosquitto, find_mosquitto, free_port, wait_port

pytestmark = pytest.mark.broker

SITE = "tuong-linh"
EVENTS = f"xephang/v1/{SITE}/event/ticket/issued"
LINK_STATE = f"xephang/v1/{SITE}/bridge/state"  # the bridge's notification_topic, on both brokers


def openssl(*args: str, cwd) -> None:
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


@pytest.fixture
def pki(tmp_path):
    """ca.crt, and the province broker's server.crt/server.key for 127.0.0.1, signed by it."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    d = tmp_path / "pki"
    d.mkdir()
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=xephang test province CA",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=d)
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key",
            "-out", "server.csr", cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-extfile", "san.ext", "-out", "server.crt", cwd=d)
    for f in d.iterdir():
        f.chmod(0o644)  # mosquitto may run as another user
    return d


class Watcher:
    """A persistent-session subscriber (QoS 1): messages land in a queue, read with timeouts."""

    def __init__(self, port: int, topic: str, *, client_id: str, username: str | None = None,
                 password: str | None = None, ca=None) -> None:
        self.q: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.subscribed = queue.Queue()
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False)
        if username:
            c.username_pw_set(username, password)
        if ca:
            c.tls_set(ca_certs=str(ca), tls_version=ssl.PROTOCOL_TLS_CLIENT)
        c.reconnect_delay_set(0.2, 1)
        c.on_connect = lambda cl, u, f, rc, p: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: self.subscribed.put(True)
        c.on_message = lambda cl, u, m: self.q.put((m.topic, bytes(m.payload)))
        c.connect("127.0.0.1", port)
        c.loop_start()
        self.client = c
        assert self.subscribed.get(timeout=10)

    def take(self, n: int, timeout: float) -> list[tuple[str, bytes]]:
        out, end = [], time.monotonic() + timeout
        while len(out) < n:
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                out.append(self.q.get(timeout=left))
            except queue.Empty:
                break
        return out

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def link_state(watcher: Watcher, want: bytes, timeout: float) -> None:
    """Wait until the centre broker reports the bridge link as ``want`` (b'1' up, b'0' down)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = watcher.take(1, end - time.monotonic())
        if got and got[0][1] == want:
            return
    raise AssertionError(f"bridge link state never became {want!r}")


def event(i: int) -> tuple[str, bytes]:
    return EVENTS, json.dumps({"event_id": f"e{i}", "rev": i}).encode()


def test_a_centre_bridges_over_tls_with_its_password_and_queues_through_a_cut(tmp_path, pki):
    if not find_mosquitto() or not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto is not installed")
    pwfile = tmp_path / "province.passwd"
    write_passwords(pwfile, {SITE: "centre-s3cret", "ingest": "ingest-s3cret", "xuan-quang": "right-one"})
    tls_port = free_port()
    tls_listener = (f"listener {tls_port} 127.0.0.1\ncafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\n"
                    f"keyfile {pki / 'server.key'}\ntls_version tlsv1.2\nmax_queued_messages 100000")
    with ExitStack() as stack:
        province = Mosquitto(tmp_path / "province", password_file=pwfile, extra_conf=tls_listener).start()
        stack.callback(province.kill)
        assert wait_port(tls_port, 10)
        conf = bridge_conf_text(site=SITE, address=f"127.0.0.1:{tls_port}", username=SITE, password="centre-s3cret",
                                tls=BridgeTls(pki / "ca.crt"), restart_s=(1, 1))
        assert "bridge_insecure false" in conf  # the certificate is checked against 127.0.0.1
        centre = Mosquitto(tmp_path / "centre", extra_conf=conf).start()
        stack.callback(centre.kill)
        # a second centre whose fragment carries a wrong password
        bad_conf = bridge_conf_text(site="xuan-quang", address=f"127.0.0.1:{tls_port}", username="xuan-quang",
                                    password="wrong", tls=BridgeTls(pki / "ca.crt"), restart_s=(1, 1))
        intruder = Mosquitto(tmp_path / "bad-centre", extra_conf=bad_conf).start()
        stack.callback(intruder.kill)

        # the province side reads over TLS too, with its own account and a persistent session
        ingest = Watcher(tls_port, "xephang/v1/+/event/#", client_id="ingest-test", username="ingest",
                         password="ingest-s3cret", ca=pki / "ca.crt")
        stack.callback(ingest.close)
        link = Watcher(centre.port, LINK_STATE, client_id="link-watch")
        stack.callback(link.close)
        link_state(link, b"1", 20)

        publish(centre.port, [event(0)], retain=False)
        [(topic, payload)] = ingest.take(1, 10)
        assert topic == EVENTS and json.loads(payload)["event_id"] == "e0"

        province.stop()  # the link is cut; the centre works on and queues
        link_state(link, b"0", 20)
        publish(centre.port, [event(i) for i in range(1, 201)], retain=False)
        province.start()
        assert wait_port(tls_port, 10)
        link_state(link, b"1", 20)
        got = ingest.take(200, 30)
        ids = [json.loads(p)["event_id"] for _, p in got]
        assert sorted(ids, key=lambda s: int(s[1:])) == [f"e{i}" for i in range(1, 201)]  # all, once each
        assert ingest.take(1, 0.5) == []  # and nothing twice

        # the intruder's broker has been retrying all along (once a second); every try was refused
        assert "not authorised" in (tmp_path / "province" / "mosquitto.log").read_text()
        its_link = Watcher(intruder.port, "xephang/v1/xuan-quang/bridge/state",
                           client_id="intruder-link-watch")
        stack.callback(its_link.close)
        assert [p for _, p in its_link.take(1, 5)] == [b"0"]  # its own broker says: not connected
        publish(intruder.port, [("xephang/v1/xuan-quang/event/ticket/issued", b"{}")], retain=False)
        assert ingest.take(1, 2.0) == []
