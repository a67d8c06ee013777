"""The ACL `xephang broker-config` writes, on a real mosquitto: each node may publish only its
own topics; forbidden publishes get PUBACK 135 (MQTT 5) and change nothing."""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest
from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from xephang_ops.brokerconf import acl_text, check_password, hash_password, mosquitto_conf_text, site_accounts
from xephang_ops.mosquitto import Mosquitto, free_port
from xephang_ops.tools import REFUSED, ToolClient, ToolError

pytestmark = pytest.mark.broker

R = "xephang/v1/tuong-linh"
NOT_AUTHORIZED = 135

# (publisher, topic, retained?, a legitimate reader, the legitimate writer)
FORBIDDEN = [
    ("counter-1", f"{R}/state/hall", True, "display-hall", "hub"),
    ("counter-1", f"{R}/state/counter/2", True, "display-hall", "hub"),
    ("counter-1", f"{R}/event/ticket/called", False, "announcer-hall", "hub"),
    ("counter-1", f"{R}/reply/counter-2", False, "counter-2", "hub"),
    ("counter-1", f"{R}/node/counter-2/status", True, "tech", "counter-2"),
    ("counter-1", f"{R}/node/counter-2/alert/counter-config", True, "tech", "counter-2"),
    ("counter-1", f"{R}/config/counter-2/state", True, "tech", "counter-2"),
    ("counter-1", f"{R}/req/hub/issue-ticket/dispenser-1", False, "hub", "dispenser-1"),
    # a counter cannot ask as another counter, nor through the anonymous request form
    ("counter-1", f"{R}/req/hub/call-next/counter-2", False, "hub", "counter-2"),
    ("counter-1", f"{R}/req/hub/call-next", False, "hub", "tech"),
    ("counter-1", f"{R}/config/counter-1/set", False, "counter-1", "tech"),
    ("counter-1", f"{R}/config/counter-2/set", False, "counter-2", "tech"),
    ("counter-1", f"{R}/sim/counter-2/press", False, "counter-2", "tech"),
    ("dispenser-1", f"{R}/req/hub/call-next/counter-1", False, "hub", "counter-1"),
    ("dispenser-1", f"{R}/event/ticket/issued", False, "display-hall", "hub"),
    ("display-hall", f"{R}/req/hub/finish/counter-3", False, "hub", "counter-3"),
    ("display-hall", f"{R}/state/service/ho-tich", True, "display-hall", "hub"),
    ("announcer-hall", f"{R}/event/ticket/recalled", False, "display-hall", "hub"),
    ("tech", f"{R}/state/hall", True, "display-hall", "hub"),
    ("tech", f"{R}/event/ticket/called", False, "announcer-hall", "hub"),
    ("tech", f"{R}/reply/counter-1", False, "counter-1", "hub"),
    ("tech", f"{R}/node/hub/status", True, "display-hall", "hub"),
    ("hub", f"{R}/config/counter-1/set", False, "counter-1", "tech"),
    ("hub", f"{R}/sim/dispenser-1/press", False, "dispenser-1", "tech"),
    ("hub", f"{R}/node/counter-1/status", True, "tech", "counter-1"),
    # the hub's reading connections write nothing: its replies, events and states go the main way (hubd/lane.py)
    ("hub-lane", f"{R}/reply/counter-1", False, "counter-1", "hub"),
    ("hub-lane", f"{R}/reply/dispenser-1", False, "dispenser-1", "hub"),
    ("hub-lane", f"{R}/reply/web", False, "web", "hub"),
    ("hub-inbox", f"{R}/reply/dispenser-1", False, "dispenser-1", "hub"),
    ("hub-inbox", f"{R}/event/ticket/called", False, "announcer-hall", "hub"),
    ("hub-inbox", f"{R}/state/hall", True, "display-hall", "hub"),
    ("hub-inbox", f"{R}/req/hub/call-next/counter-1", False, "hub", "counter-1"),
    ("hub-counter-1", f"{R}/reply/counter-1", False, "counter-1", "hub"),
    ("hub-counter-1", f"{R}/req/hub/call-next/counter-1", False, "hub", "counter-1"),
    ("hub-counter-1", f"{R}/state/counter/1", True, "display-hall", "hub"),
    ("hub-dispenser-1", f"{R}/reply/dispenser-1", False, "dispenser-1", "hub"),
    ("hub-web", f"{R}/reply/web", False, "web", "hub"),
    ("hub-tech", f"{R}/reply/tech", False, "tech", "hub"),
    ("hub-tech", f"{R}/req/hub/resync/tech", False, "hub", "tech"),
    # webd's second connection writes nothing either (xephang/reader.py)
    ("web-watch", f"{R}/req/hub/report/web", False, "hub", "web"),
    ("web-watch", f"{R}/config/hub/set/web", False, "hub", "web"),
    ("web-watch", f"{R}/node/counter-1/status", True, "tech", "counter-1"),
    ("hub-lane", f"{R}/event/ticket/called", False, "announcer-hall", "hub"),
    ("hub-lane", f"{R}/state/hall", True, "display-hall", "hub"),
    ("hub-lane", f"{R}/req/hub/call-next/counter-1", False, "hub", "counter-1"),
]

# (publisher, topic): what each role needs to do its job
ALLOWED = [
    ("hub", f"{R}/state/hall"), ("hub", f"{R}/event/ticket/called"), ("hub", f"{R}/reply/counter-1"),
    ("dispenser-1", f"{R}/req/hub/issue-ticket/dispenser-1"), ("dispenser-1", f"{R}/req/hub/void-ticket/dispenser-1"),
    ("dispenser-1", f"{R}/node/dispenser-1/alert/paper-out"), ("counter-2", f"{R}/node/counter-2/alert/counter-config"),
    ("counter-2", f"{R}/req/hub/call-next/counter-2"), ("counter-2", f"{R}/req/hub/rate/counter-2"),
    ("counter-2", f"{R}/req/hub/resync/counter-2"),
    ("counter-2", f"{R}/config/counter-2/ack"), ("counter-2", f"{R}/config/counter-2/state"),
    ("display-hall", f"{R}/node/display-hall/health"), ("announcer-hall", f"{R}/req/hub/resync/announcer-hall"),
    ("tech", f"{R}/config/counter-2/set"), ("tech", f"{R}/sim/dispenser-1/press"), ("tech", f"{R}/req/hub/call-next"),
    ("tech-lan", f"{R}/sim/counter-4/press"),
]


def test_a_node_writes_only_the_alert_ids_of_its_role(secured_broker):
    """``alert/+`` let one display's password retain 3,000 alerts of 60 KB under ids it made up (the
    broker grew to 195 MB, and every reader takes them all at start). Each role writes only the ids
    it raises (contract.ALERT_IDS); a made-up id, or another role's, is refused and never retained."""
    from xephang.contract import ALERT_IDS

    for who, role in (("hub", "hub"), ("dispenser-1", "dispenser"), ("counter-2", "counter"),
                      ("display-hall", "display"), ("announcer-hall", "announcer")):
        with secured_broker.client(who) as c:
            for alert in ALERT_IDS[role]:
                assert c.publish(f"{R}/node/{who}/alert/{alert}", b"", retain=True) < REFUSED, (who, alert)
            others = [a for r, ids in ALERT_IDS.items() if r != role for a in ids if a not in ALERT_IDS[role]]
            for alert in ("x0", "made-up", others[0]):
                assert c.publish(f"{R}/node/{who}/alert/{alert}", b"{}", retain=True) == NOT_AUTHORIZED, (who, alert)
    for who in ("web", "tech"):  # they raise none
        with secured_broker.client(who) as c:
            assert c.publish(f"{R}/node/{who}/alert/paper-out", b"{}", retain=True) == NOT_AUTHORIZED


def test_one_boards_password_cannot_fill_the_broker_with_connections(secured_broker):
    """Every account's password works on the technicians' listener (free client ids). One display's
    password opened 1,005 connections there until the broker ran out of open files and refused the
    boards and the technicians too. That listener takes TECH_MAX_CONNECTIONS at once; the boards'
    listener, where each account is one connection, is not touched."""
    from xephang_ops.brokerconf import TECH_MAX_CONNECTIONS

    held: list[ToolClient] = []
    try:
        with pytest.raises(ToolError):
            for _ in range(TECH_MAX_CONNECTIONS + 2):
                held.append(ToolClient(secured_broker.target("display-hall")).connect(2))
        # mosquitto 2.0 lets one more in than max_connections says (33 of 32 here, 3 of 3 with one listener)
        assert TECH_MAX_CONNECTIONS <= len(held) <= TECH_MAX_CONNECTIONS + 1
        # the boards keep working on their own listener
        with secured_broker.client("counter-2", port=secured_broker.broker.port) as board:
            assert board.publish(f"{R}/req/hub/resync/counter-2", b"{}") < REFUSED
    finally:
        for c in held:
            c.close()
    with secured_broker.client("tech") as tech:  # and once they let go, a technician gets in again
        assert tech.publish(f"{R}/config/counter-2/set", b"{}") < REFUSED


def test_every_alert_a_daemon_raises_is_one_its_role_may_write():
    """Each ``raise_alert(...)`` of the daemons names an id of ``contract.ALERT_IDS`` for its role
    (read from the source: string literals, module constants, and ticketd's ALERT_TEXT)."""
    import ast

    from ticketd.main import ALERT_TEXT
    from xephang.contract import ALERT_IDS

    root = Path(__file__).resolve().parents[2]
    for package, role in (("hubd", "hub"), ("ticketd", "dispenser"), ("counterd", "counter"),
                          ("displayd", "display"), ("announcerd", "announcer")):
        raised: set[str] = set()
        for f in (root / package).glob("*.py"):
            tree = ast.parse(f.read_text())
            consts = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                      for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)}
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "raise_alert":
                    for x in ast.walk(call.args[0]):
                        if isinstance(x, ast.Constant) and isinstance(x.value, str):
                            raised.add(x.value)
                        elif isinstance(x, ast.Name) and x.id in consts:
                            raised.add(consts[x.id])
        if role == "dispenser":
            raised |= set(ALERT_TEXT)
        assert raised and raised <= set(ALERT_IDS[role]), (package, raised - set(ALERT_IDS[role]))


def _first(c: ToolClient, topic: str, timeout: float = 3.0) -> bytes | None:
    while (m := c.get(timeout)) is not None:
        if m.topic == topic:
            return m.payload
    return None


@pytest.mark.parametrize(("who", "topic", "retained", "reader", "owner"), FORBIDDEN,
                         ids=[f"{w}->{t[len(R) + 1:]}" for w, t, *_ in FORBIDDEN])
def test_a_forbidden_publish_is_refused_and_changes_nothing(secured_broker, who, topic, retained, reader, owner):
    with secured_broker.client(owner) as legit, secured_broker.client(who) as intruder:
        if retained:
            assert legit.publish(topic, b"original", retain=True) < REFUSED
            assert intruder.publish(topic, b"forged", retain=True) == NOT_AUTHORIZED
            with secured_broker.client(reader) as r:
                r.subscribe(topic)
                assert _first(r, topic) == b"original"  # the retained value is untouched
        else:
            with secured_broker.client(reader) as r:
                r.subscribe(topic)
                assert intruder.publish(topic, b"forged") == NOT_AUTHORIZED
                # the owner's message, sent after the refusal, is the first thing the reader sees
                assert legit.publish(topic, b"sentinel") < REFUSED
                assert _first(r, topic) == b"sentinel"


@pytest.mark.parametrize(("who", "topic"), ALLOWED, ids=[f"{w}->{t[len(R) + 1:]}" for w, t in ALLOWED])
def test_each_role_may_publish_what_its_job_needs(secured_broker, who, topic):
    with secured_broker.client(who) as c:
        assert c.publish(topic, b"{}") < REFUSED


def test_a_node_reads_its_own_replies_but_not_another_counters(secured_broker):
    with secured_broker.client("hub") as hub, secured_broker.client("counter-1") as c1:
        c1.subscribe(f"{R}/reply/counter-2", f"{R}/reply/counter-1")
        assert hub.publish(f"{R}/reply/counter-2", b"for-2") < REFUSED
        assert hub.publish(f"{R}/reply/counter-1", b"for-1") < REFUSED
        m = c1.get(3.0)
        assert m is not None and (m.topic, m.payload) == (f"{R}/reply/counter-1", b"for-1")


@pytest.mark.parametrize(("board", "action"), [("counter-1", "call-next"), ("dispenser-1", "issue-ticket"),
                                               ("web", "report"), ("tech", "resync")])
def test_a_boards_lane_reads_that_boards_requests_only(secured_broker, board, action):
    """``hub-<board>`` (hubd/lane.py) reads that board's requests, not another board's (a
    technician's terminal has its lane too, ``hub-tech``)."""
    others = [("counter-2", "call-next"), ("dispenser-1", "issue-ticket"), ("web", "report"), ("tech", "resync")]
    with secured_broker.client(f"hub-{board}") as lane, secured_broker.client(board) as own:
        lane.subscribe(*(f"{R}/req/hub/+/{n}" for n, _ in others), f"{R}/req/hub/+/{board}")
        for node, act in others:
            if node != board:
                with secured_broker.client(node) as other:
                    assert other.publish(f"{R}/req/hub/{act}/{node}", b"other") < REFUSED
        assert own.publish(f"{R}/req/hub/{action}/{board}", b"own") < REFUSED
        m = lane.get(3.0)
        assert m is not None and (m.topic, m.payload) == (f"{R}/req/hub/{action}/{board}", b"own")


def test_another_site_is_out_of_bounds(secured_broker):
    with secured_broker.client("counter-1") as c:
        assert c.publish("xephang/v1/other-commune/req/hub/call-next/counter-1", b"{}") == NOT_AUTHORIZED


@pytest.mark.parametrize(("user", "password"), [("counter-1", "wrong-password"), ("", None), ("nobody", "x"),
                                                ("counter-2", "use-counter-1s")])
def test_anonymous_and_wrong_passwords_are_refused(secured_broker, user, password):
    if password == "use-counter-1s":
        password = secured_broker.files.passwords["counter-1"]
    with pytest.raises(ToolError, match="refused"):
        secured_broker.client(user, password or None)


def test_our_password_hashes_match_mosquitto_passwd_format():
    h = hash_password("bí mật", salt=b"0123456789ab", iterations=101)
    assert h.startswith("$7$101$") and check_password("bí mật", h) and not check_password("bi mat", h)
    # a line written by mosquitto_passwd 2.0.11 for counter-1 / "secret"
    theirs = "$7$101$RsNSSpiDxDkWtVqL$MPvzP7KMSGo8FFTWI++oRCTeuM0DAdgBQBJYHgjGX+DyCbg2wdLaxMOHjwiE9bGAHE/VGBr2au9BGKcyr6547A=="
    assert check_password("secret", theirs)


def test_the_generated_conf_fragment_runs_mosquitto_and_refuses_anonymous(tmp_path, site):
    from xephang_ops.brokerconf import write_broker_files

    files = write_broker_files(tmp_path, site, site_accounts(site))
    port, tech_port = free_port(), free_port()
    text = mosquitto_conf_text(password_file=files.password_file, acl_file=files.acl_file, listen="127.0.0.1",
                               port=port, tech_port=tech_port)
    assert "clientid_prefixes xephang-" in text and "use_username_as_clientid true" in text
    from xephang_ops.brokerconf import MAX_QUEUED_BYTES  # a flood's queues bounded (bench/broker_queue.py)

    assert f"max_queued_bytes {MAX_QUEUED_BYTES}" in text and 0 < MAX_QUEUED_BYTES <= 128 * 1024 * 1024
    # run the fragment as the whole config (Debian's main file adds persistence and logging)
    b = Mosquitto(tmp_path / "run", port=port, persistence=False)
    user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""  # root drops to 'mosquitto' otherwise
    b.write_conf = lambda: (b.conf_path.write_text(user + text + f"log_dest file {b.log_path}\n"), b.conf_path)[1]
    b.start()
    try:
        from xephang_ops.tools import BrokerTarget

        with pytest.raises(ToolError, match="refused"):
            ToolClient(BrokerTarget(port=port, username="tech", password=None)).connect()
        with ToolClient(BrokerTarget(port=port, username="tech", password=files.passwords["tech"])) as c:
            assert c.publish(f"{R}/sim/counter-1/press", b"{}") < REFUSED
        # the technicians' listener: two terminals under one account at once, both keep working
        tgt = BrokerTarget(port=tech_port, username="tech", password=files.passwords["tech"])
        with ToolClient(tgt) as one, ToolClient(tgt) as two:
            assert one.publish(f"{R}/sim/counter-1/press", b"{}") < REFUSED
            assert two.publish(f"{R}/sim/counter-1/press", b"{}") < REFUSED
            assert one.publish(f"{R}/sim/counter-2/press", b"{}") < REFUSED
    finally:
        b.kill()


def test_acl_lines_name_only_this_site():
    from xephang.site import Site  # noqa: F401

    text = acl_text("tuong-linh", [])
    assert all("xephang/v1/tuong-linh/" in ln for ln in text.splitlines() if ln.startswith("pattern"))


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_with_tls_the_lan_listener_speaks_tls_and_still_checks_passwords(tmp_path, site):
    from xephang_ops.brokerconf import TlsFiles, write_broker_files
    from xephang_ops.tools import BrokerTarget

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=tmp_path, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
            "-subj", "/CN=xephang test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "hub.key", "-out", "hub.csr", "-subj", "/CN=localhost")
    (tmp_path / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "hub.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "hub.crt",
            "-days", "2", "-extfile", "san.ext")
    plain, tls_port = free_port(), free_port()
    tls = TlsFiles(tmp_path / "ca.crt", tmp_path / "hub.crt", tmp_path / "hub.key", port=tls_port)
    files = write_broker_files(tmp_path / "b", site, site_accounts(site), listen="127.0.0.1", port=plain, tls=tls,
                               tech_port=free_port())
    b = Mosquitto(tmp_path / "run", port=tls_port, persistence=False)
    user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
    b.write_conf = lambda: (b.conf_path.write_text(user + files.conf.read_text() + f"log_dest file {b.log_path}\n"),
                            b.conf_path)[1]
    b.start()
    try:
        pw = files.passwords["tech"]
        with ToolClient(BrokerTarget(port=tls_port, username="tech", password=pw, tls=True,
                                     ca_file=tmp_path / "ca.crt")) as c:
            assert c.publish(f"{R}/sim/counter-1/press", b"{}") < REFUSED
        with pytest.raises(ToolError, match="refused"):
            ToolClient(BrokerTarget(port=tls_port, username="tech", password="wrong", tls=True,
                                    ca_file=tmp_path / "ca.crt")).connect()
        # plain MQTT stays on the loopback for the hub's own daemons
        with ToolClient(BrokerTarget(port=plain, username="tech", password=pw)) as c:
            assert c.publish(f"{R}/sim/counter-1/press", b"{}") < REFUSED
    finally:
        b.kill()


# ---------------------------------------------------------------------------------------------
# Client ids are bound to accounts: one board's password cannot push another node off the broker

ROLES = ["hub", "dispenser-1", "counter-1", "display-hall", "announcer-hall", "tech"]


def _try_connect(secured_broker, user: str, client_id: str, port: int) -> mqtt.Client | None:
    """Connect as ``user`` presenting ``client_id`` exactly (MQTT 5, as the daemons do); the client,
    kept connected by its own loop, or None when the broker refuses."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    c.username_pw_set(user, secured_broker.files.passwords[user])
    got: list[int] = []
    c.on_connect = lambda cl, u, f, rc, p: got.append(int(rc.value))
    c.connect("127.0.0.1", port, keepalive=30)
    end = time.monotonic() + 5
    while not got and time.monotonic() < end:
        c.loop(timeout=0.05)  # our own loop: a refused client leaves no thread to wait for
    if got and got[0] == 0:
        c.loop_start()
        return c
    c.disconnect()
    return None


@pytest.mark.parametrize("victim", ROLES)
def test_no_account_can_take_a_nodes_client_id_on_either_listener(secured_broker, victim):
    """Every other role's password, on the boards' listener and on the technicians' one, tries the
    victim's id bare and with the prefix: bare ids are refused, prefixed ones get an id of their
    own; the victim, connected the way daemons connect, is never knocked off."""
    from xephang.bus import Bus
    from xephang.settings import BrokerSettings

    b = secured_broker.broker
    pw = secured_broker.files.passwords
    vbus = Bus(site="tuong-linh", node=victim, broker=BrokerSettings(port=b.port, username=victim, password=pw[victim]))
    seen: list[str] = []
    vbus.subscribe(f"{R}/node/+/status", lambda m: seen.append(m.topic))
    vbus.start()
    try:
        assert vbus.wait_connected(10)
        outcomes: dict[tuple[str, str, int], bool] = {}
        kept: list[mqtt.Client] = []
        for attacker in ROLES:
            if attacker == victim:
                continue  # an account's own id is its own to use
            for cid in (victim, f"xephang-{victim}"):
                for port in (b.port, b.tech_port):
                    c = _try_connect(secured_broker, attacker, cid, port)
                    outcomes[(attacker, cid, port)] = c is not None
                    if c is not None:
                        kept.append(c)  # stay connected: a takeover would have happened by now
        # bare node ids are refused everywhere; prefixed ones are admitted (and harmless)
        assert not any(ok for (_, cid, _), ok in outcomes.items() if not cid.startswith("xephang-")), outcomes
        assert all(ok for (_, cid, _), ok in outcomes.items() if cid.startswith("xephang-")), outcomes
        # a round trip after every attempt: the victim's first connection still receives
        seen.clear()
        with secured_broker.client("display-lab") as marker:
            assert marker.publish(f"{R}/node/display-lab/status", b"{}", retain=False) < REFUSED
        end = time.monotonic() + 5
        while f"{R}/node/display-lab/status" not in seen and time.monotonic() < end:
            vbus.process(timeout=0.05)
        assert f"{R}/node/display-lab/status" in seen
        assert vbus.stats.disconnects == 0 and vbus.stats.connects == 1 and vbus.connected.is_set()
        for c in kept:
            c.disconnect()
            c.loop_stop()
    finally:
        vbus.stop(1)


def test_on_the_boards_listener_a_client_id_becomes_the_username(secured_broker):
    """What makes the binding: counter-1 presenting ``xephang-hub`` is counter-1 on the broker, so a
    second login with counter-1's password replaces the first (its own account, nobody else)."""
    b = secured_broker.broker
    first = _try_connect(secured_broker, "counter-1", "xephang-whatever", b.port)
    assert first is not None
    gone = threading.Event()
    first.on_disconnect = lambda *a: gone.set()
    second = _try_connect(secured_broker, "counter-1", "xephang-hub", b.port)
    assert second is not None
    assert gone.wait(5)  # same account: the newer login wins, as for a rebooted board
    for c in (first, second):
        c.disconnect()
        c.loop_stop()


@pytest.mark.parametrize("command", ["broker-config", "province-broker-config"])
@pytest.mark.parametrize("given", [("--tls-ca",), ("--tls-cert", "--tls-key"), ("--tls-ca", "--tls-key")])
def test_half_a_tls_setup_is_refused_and_writes_nothing(tmp_path, capsys, command, given):
    """One rule for both brokers' commands: TLS needs the CA, the certificate and the key, or none."""
    from xephang_ops.cli import main

    out = tmp_path / "out"
    files = [f"{flag}={tmp_path / flag.strip('-')}" for flag in given]
    if command == "broker-config":
        site_file = Path(__file__).resolve().parents[2] / "config" / "site.example.toml"
        argv = [command, "--site-file", str(site_file), "--out", str(out), *files]
    else:
        argv = [command, "--password-file", "passwd", "--acl-file", "acl", "--out", str(out / "p.conf"), *files]
    assert main(argv) == 2
    assert "TLS needs --tls-ca, --tls-cert and --tls-key" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# Size: one board's password cannot park a huge retained message where every reader boots from


def _run_generated_fragment(tmp_path: Path, site) -> tuple[Mosquitto, dict[str, str]]:
    """The conf fragment `xephang broker-config` writes, run as the whole config (as above)."""
    from xephang_ops.brokerconf import write_broker_files

    files = write_broker_files(tmp_path, site, site_accounts(site))
    port = free_port()
    text = mosquitto_conf_text(password_file=files.password_file, acl_file=files.acl_file, listen="127.0.0.1",
                               port=port, tech_port=None)
    b = Mosquitto(tmp_path / "run", port=port, persistence=False)
    user = f"user {getpass.getuser()}\n" if os.geteuid() == 0 else ""
    b.write_conf = lambda: (b.conf_path.write_text(user + text + f"log_dest file {b.log_path}\n"), b.conf_path)[1]
    return b.start(), files.passwords


def _publish_outcome(port: int, user: str, password: str, topic: str, payload: bytes) -> tuple[str, int]:
    """Publish once (QoS 1, retained, MQTT 5) and wait for the broker's answer: ("puback", reason) or
    ("disconnected", reason)."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"xephang-{user}", protocol=mqtt.MQTTv5)
    c.username_pw_set(user, password)
    c.reconnect_delay_set(60, 60)  # one answer is all we want: no quick reconnect re-sending it
    answered = threading.Event()
    got: list[tuple[str, int]] = []
    c.on_publish = lambda cl, u, mid, rc, p: (got.append(("puback", int(rc.value))), answered.set())
    c.on_disconnect = lambda cl, u, f, rc, p: (got.append(("disconnected", int(rc.value))), answered.set())
    connected = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: connected.set()
    c.connect("127.0.0.1", port, keepalive=30)
    c.loop_start()
    try:
        assert connected.wait(5)
        c.publish(topic, payload, qos=1, retain=True)
        assert answered.wait(10), "the broker neither acknowledged nor disconnected"
        return got[0]
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.mark.parametrize("size", [70_000, 2 * 1024 * 1024])
def test_a_payload_over_the_contracts_limit_is_refused_by_the_broker(tmp_path, site, size):
    """Counter 1's password may write its own retained status, which webd, technicians and (over the
    bridge) the province read at every start. Without a limit the broker took 2 MB there (up to MQTT's
    256 MB): kept in the Pi's memory and persistence, sent to every reader on every subscribe. The
    contract's limit (64 KiB, with the longest topic) is now the broker's: a bigger packet ends the
    sender's connection, and nothing reaches a reader; the largest honest message still passes."""
    from xephang.contract import MAX_PAYLOAD_BYTES
    from xephang_ops.tools import BrokerTarget

    b, pw = _run_generated_fragment(tmp_path, site)
    try:
        topic = f"{R}/node/counter-1/status"
        what, _ = _publish_outcome(b.port, "counter-1", pw["counter-1"], topic, b"x" * size)
        assert what == "disconnected"
        with ToolClient(BrokerTarget(port=b.port, username="web", password=pw["web"])) as reader:
            reader.subscribe(topic)
            assert reader.get(1.0) is None  # nothing retained: the huge one never landed
        what, code = _publish_outcome(b.port, "counter-1", pw["counter-1"], topic, b"y" * MAX_PAYLOAD_BYTES)
        assert what == "puback" and code < REFUSED
        with ToolClient(BrokerTarget(port=b.port, username="web", password=pw["web"])) as reader:
            reader.subscribe(topic)
            got = reader.get(5.0)
            assert got is not None and got.payload == b"y" * MAX_PAYLOAD_BYTES
    finally:
        b.kill()
