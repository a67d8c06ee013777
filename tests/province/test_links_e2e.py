"""The province sees a centre become unreachable when its bridge link is cut, and reachable again.

Real brokers: a province Mosquitto with passwords and the ACL of ``province_acl_text``, a centre
Mosquitto running the ``xephang bridge-config`` fragment (with its own account), the ingester writing
into PostgreSQL with its read-only account. The link between the two brokers runs through a TCP relay
the test can cut (both sockets closed, new connections refused: a cable pulled at the centre's
router) and restore. While it is cut the centre's dispenser is shown *unreachable*, not online; when
it returns it is online again and the history holds the cut with its length. Another centre's
account can neither publish nor leave a Will on this centre's link state.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest

from province.db import connect
from province.devices import list_devices, list_links
from province.ingest import Ingester
from tests.province.helpers import province_accounts, publish, retained, wait_for
from xephang.contract import NodeStatus, Topics
from xephang.settings import BrokerSettings
from xephang_ops.bridgeconf import bridge_conf_text
from xephang_ops.mosquitto import Mosquitto, find_mosquitto, free_port

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITE, OTHER = "tuong-linh", "xuan-quang"
T = Topics(SITE)
PASSWORDS = {SITE: "centre-s3cret", OTHER: "other-s3cret", "ingest": "ingest-s3cret"}

# another centre's account connects with a Will on this centre's link state, then dies
FORGER = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, user, pw, topic = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="forger")
c.username_pw_set(user, pw)
c.will_set(topic, b"0", qos=1, retain=True)
c.on_connect = lambda cl, u, f, rc, p: print("connack", rc, flush=True)
c.connect("127.0.0.1", port, keepalive=5)
c.loop_start()
while True:
    time.sleep(1)
"""


class LinkRelay:
    """A TCP relay between the centre's bridge and the province broker that a test can cut and restore."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.target = target_port
        self._socks: list[socket.socket] = []
        self._lock = threading.Lock()
        self._open = threading.Event()
        self._stop = threading.Event()
        self.restore()

    def restore(self) -> None:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port))
        ls.listen(8)
        ls.settimeout(0.1)
        self._open.set()
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls: socket.socket) -> None:
        with ls:
            while self._open.is_set() and not self._stop.is_set():
                try:
                    c, _ = ls.accept()
                except TimeoutError:
                    continue
                u = socket.create_connection(("127.0.0.1", self.target))
                with self._lock:
                    self._socks += [c, u]
                for a, b in ((c, u), (u, c)):
                    threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """Refuse new connections and drop the open ones (no MQTT DISCONNECT: the Will fires)."""
        self._open.clear()
        time.sleep(0.2)  # the listener's loop closes it
        with self._lock:
            socks, self._socks = self._socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stop.set()
        self.cut()


def test_a_cut_link_shows_the_centre_unreachable_then_reachable_with_the_cut_in_its_history(tmp_path, pg_dsn):
    if not find_mosquitto() or not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto is not installed")
    pwfile, aclfile = province_accounts(tmp_path, PASSWORDS)
    with ExitStack() as stack:
        province = Mosquitto(tmp_path / "province", password_file=pwfile, acl_file=aclfile).start()
        stack.callback(province.kill)
        relay = LinkRelay(province.port)
        stack.callback(relay.close)
        centre = Mosquitto(tmp_path / "centre", extra_conf=bridge_conf_text(
            site=SITE, address=f"127.0.0.1:{relay.port}", username=SITE, password=PASSWORDS[SITE],
            restart_s=(1, 1))).start()
        stack.callback(centre.kill)
        pwd = tmp_path / "ingest.pw"
        pwd.write_text(PASSWORDS["ingest"])
        ing = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=province.port, username="ingest", password_file=pwd),
                       batch_wait_s=0.02)
        stop = threading.Event()
        th = threading.Thread(target=ing.run, args=(stop,), daemon=True)
        th.start()
        stack.callback(th.join, 10)
        stack.callback(stop.set)
        assert ing.connected.wait(10)
        publish(centre.port, [(T.status("dispenser-1"), NodeStatus(node="dispenser-1", online=True, session=1,
                                                                   role="dispenser").to_json())])

        def dispenser() -> dict | None:
            with connect(pg_dsn) as conn:
                now = datetime.now(UTC)
                found = list_devices(conn, start=now - timedelta(days=1), end=now + timedelta(seconds=1))
            return found[0] if found else None

        def links() -> dict[str, dict]:
            with connect(pg_dsn) as conn:
                now = datetime.now(UTC)
                return {c["site"]: c for c in list_links(conn, start=now - timedelta(days=1),
                                                         end=now + timedelta(seconds=1))}

        d = wait_for(lambda: (x := dispenser()) and x["reachable"] and x, 20, "the centre reachable, its dispenser")
        assert d["state"] == "online"

        t_cut = time.monotonic()
        relay.cut()  # the centre's router loses the line; the centre keeps working on its LAN
        d = wait_for(lambda: (x := dispenser()) and x["state"] == "unreachable" and x, 20, "the centre unreachable")
        t_seen_down = time.monotonic()
        assert d["reachable"] is False and d["online"]  # the last state seen is kept, not shown
        assert retained(province.port, T.bridge_state(), user="ingest", password=PASSWORDS["ingest"]) == b"0"  # the bridge's Will at the province
        assert retained(centre.port, T.bridge_state()) == b"0"  # and the centre knows it too
        wait_for(lambda: t_seen_down - t_cut >= 0 and time.monotonic() - t_cut >= 3, 10, "three seconds of cut")
        t_restore = time.monotonic()
        relay.restore()
        wait_for(lambda: (x := dispenser()) and x["state"] == "online" and x, 20, "the centre reachable again")
        t_back = time.monotonic()

        c = links()[SITE]
        assert c["reachable"] is True
        [cut] = c["cuts"]
        assert cut["up_at"] is not None
        # dated by the ingester: down after the cut began, up after the restore; no longer than we watched
        assert t_restore - t_seen_down - 0.5 <= cut["seconds"] <= t_back - t_cut + 0.5
        assert c["unreachable_s"] == cut["seconds"]

        # another centre's account tries to say this one is down: by a publish, then by a Will
        publish(province.port, [(T.bridge_state(), b"0")], user=OTHER, password=PASSWORDS[OTHER])
        forger = subprocess.Popen([sys.executable, "-c", FORGER, str(province.port), OTHER, PASSWORDS[OTHER],
                                   T.bridge_state()], stdout=subprocess.PIPE, text=True)
        stack.callback(forger.kill)
        assert forger.stdout is not None
        first = forger.stdout.readline().strip()
        forger.kill()
        forger.wait(10)
        print("forger:", first)
        if first == "connack Success":  # the broker accepted the connection: its Will fires now
            wait_for(lambda: "Client forger closed its connection" in province.log_path.read_text(), 10,
                     "the forger's disconnect at the province broker")
        # its own centre's link state it may write; it comes after the forged ones in the ingester's stream
        publish(province.port, [(Topics(OTHER).bridge_state(), b"0")], user=OTHER, password=PASSWORDS[OTHER])
        wait_for(lambda: links().get(OTHER, {}).get("reachable") is False, 20, "the other centre's own state")
        assert retained(province.port, T.bridge_state(), user="ingest", password=PASSWORDS["ingest"]) == b"1"
        c = links()[SITE]
        assert c["reachable"] is True and len(c["cuts"]) == 1


TAKEOVER = """
import sys, time
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, user, pw, cid = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid)
c.username_pw_set(user, pw)
c.on_connect = lambda cl, u, f, rc, p: print("connack", rc, flush=True)
c.connect("127.0.0.1", port, keepalive=5)
c.loop_start()
while True:
    time.sleep(1)
"""


@pytest.mark.parametrize("bound", [True, False], ids=["ids-bound-to-accounts", "control-ids-free"])
def test_another_centres_password_cannot_push_a_centres_bridge_off_the_province(tmp_path, bound):
    """An attacker holding one centre's password connects to the province broker under another
    centre's bridge client id. With the listener of ``province_broker_conf_text`` (client id :=
    username) the id is replaced and the bridge stays; the control (ids free, as before) shows the
    same attempt takes the bridge's session over."""
    if not find_mosquitto() or not shutil.which("mosquitto_passwd"):
        pytest.skip("mosquitto is not installed")
    from xephang_ops.bridgeconf import province_broker_conf_text

    pwfile, aclfile = province_accounts(tmp_path, PASSWORDS)
    conf = province_broker_conf_text(password_file=pwfile, acl_file=aclfile)
    assert "use_username_as_clientid true" in conf and "allow_anonymous false" in conf
    bridge_id = f"xephang-bridge-{SITE}"
    with ExitStack() as stack:
        # bind_client_ids gives the province listener the same lines the generator writes
        province = Mosquitto(tmp_path / "province", password_file=pwfile, acl_file=aclfile,
                             bind_client_ids=bound).start()
        stack.callback(province.kill)
        centre = Mosquitto(tmp_path / "centre", extra_conf=bridge_conf_text(
            site=SITE, address=f"127.0.0.1:{province.port}", username=SITE, password=PASSWORDS[SITE],
            restart_s=(30, 30))).start()  # a pushed-off bridge stays off long enough to be seen
        stack.callback(centre.kill)
        log = province.log_path
        wait_for(lambda: retained(centre.port, T.bridge_state()) == b"1", 20, "the bridge connected")
        before = log.read_text()
        attacker = subprocess.Popen([sys.executable, "-c", TAKEOVER, str(province.port), OTHER, PASSWORDS[OTHER],
                                     bridge_id], stdout=subprocess.PIPE, text=True)
        stack.callback(attacker.kill)
        assert attacker.stdout is not None
        print("attacker:", attacker.stdout.readline().strip())
        end = time.monotonic() + 3
        while time.monotonic() < end and retained(centre.port, T.bridge_state()) == b"1":
            time.sleep(0.1)
        after = log.read_text()[len(before):]
        taken = "already connected, closing old connection" in after
        print("taken over:", taken)
        if bound:
            assert not taken, after
            assert retained(centre.port, T.bridge_state()) == b"1"  # the centre's link never dropped
        else:
            assert taken or retained(centre.port, T.bridge_state()) == b"0", after  # the control: pushed off
