"""The fault harness: a whole centre as PROCESSES over a real mosquitto, plus the books.

``Centre`` owns a temp folder, a broker (anonymous, or with the passwords and ACL of
``xephang broker-config``), and the daemons (hubd, ticketd, counterd, displayd, announcerd
in sim mode), each in its own process group with its own log. ``Observer`` is a
de-duplicating consumer (by ``rev``) of every event, and watches every node's status and
health. ``Loader`` drives the hub like busy boxes would (one request_id per press, retried
with the same id). ``account()`` reads the hub's ledger afterwards and says what was lost
or duplicated. ``Tally`` is one line of the bench table.

The daemons run unchanged; the launcher only (a) makes health come every second instead of
every 30 s, so tests can read ``dropped_messages`` without waiting, and (b) lets a test pull
paper or the printer cable of the sim printer through a control file
(``FAULTS_PRINTER_CTL``): the same faults the printer's own fakes raise.

Used by tests/faults/ (short forms) and bench/faults.py (long forms), both by import.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter as Multiset
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xephang.bus import Bus, Inbound
from xephang.contract import (
    BadPayload,
    CallNext,
    CounterEvent,
    Finish,
    IssueTicket,
    NodeHealth,
    NodeStatus,
    Reply,
    Request,
    Resync,
    TicketEvent,
    decode,
    new_request_id,
)
from xephang.settings import BrokerSettings, load_site
from xephang_ops.brokerconf import site_accounts, write_broker_files
from xephang_ops.mosquitto import Mosquitto, free_port

REPO = Path(__file__).resolve().parents[1]
SITE_FILE = REPO / "config" / "site.example.toml"
SITE = "tuong-linh"
MODULES = {"hub": "hubd.main", "dispenser": "ticketd.main", "counter": "counterd.main",
           "display": "displayd.main", "announcer": "announcerd.main"}
VOICE_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xephang" / "voice" / "espeak-vi-north"

# The launcher: health every FAULTS_HEALTH_S; the sim printer obeys a control file holding
# "" (fine), "paper-out", "paper-out-mid" (the roll ends during the next ticket) or "offline".
LAUNCH = r"""
import os, sys, importlib
mod = importlib.import_module(os.environ["FAULTS_MODULE"])
from xephang.daemon import Daemon
hs = float(os.environ.get("FAULTS_HEALTH_S", "0") or 0)
if hs:
    for cls in list(Daemon.__subclasses__()):
        cls.health_interval_s = hs
ctl = os.environ.get("FAULTS_PRINTER_CTL")
if ctl:
    from ticketd import printer as P
    orig_send, orig_status = P.FakePrinter._send, P.FakePrinter.status
    def _fault():
        try:
            return open(ctl).read().strip()
        except OSError:
            return ""
    def _send(self, job, label):
        f = _fault()
        if f == "paper-out":
            self.paper = "out"
        elif f == "paper-out-mid" and self.paper != "out":
            self.fail_next_job("paper-out")  # the roll ends halfway through this ticket
        elif f == "offline":
            raise P.PrinterOffline("printer unplugged (fault harness)")
        elif f == "" and self.paper == "out":
            self.paper = "ok"
        return orig_send(self, job, label)
    def _status(self):
        f = _fault()
        if f == "offline":
            return P.PrinterState.OFFLINE
        if f == "" and self.paper == "out":
            self.paper = "ok"
        return orig_status(self)
    P.FakePrinter._send, P.FakePrinter.status = _send, _status
sys.exit(mod.main([]))
"""


def role_of(node: str) -> str:
    return "hub" if node == "hub" else node.split("-", 1)[0]


def write_site(path: Path, counters: int) -> Path:
    """The example site with ``counters`` counters (the first four as in the example)."""
    text = SITE_FILE.read_text()
    services = ["ho-tich", "chung-thuc", "dat-dai", "van-hoa-xa-hoi"]
    for n in range(5, counters + 1):
        a, b = services[n % 4], services[(n + 1) % 4]
        text += f'\n[[counters]]\nnumber = {n}\nservices = ["{a}", "{b}"]\nofficer = "Cán bộ {n}"\n'
    path.write_text(text)
    return path


@dataclass
class Proc:
    node: str
    popen: subprocess.Popen[bytes]
    log: Any
    started: float

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None


class Centre:
    """A broker and any daemons, as processes, in ``root``."""

    def __init__(self, root: Path, *, secured: bool = False, persistence: bool = True, counters: int = 4,
                 speed: float | None = None, origin: float | None = None, health_s: float = 1.0,
                 extra_accounts: Iterable[str] = ("tech-obs", "tech-load", "tech-fuzz")) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.site_file = SITE_FILE if counters == 4 else write_site(self.root / "site.toml", counters)
        self.site = load_site(self.site_file)
        self.secured = secured
        self.passwords: dict[str, str] = {}
        pw_file = acl_file = None
        if secured:
            accounts = site_accounts(self.site, extra=list(extra_accounts))
            files = write_broker_files(self.root / "broker-config", self.site, accounts)
            self.files = files
            self.passwords = dict(files.passwords)
            pw_file, acl_file = files.password_file, files.acl_file
        self.broker = Mosquitto(self.root / "mq", port=free_port(), password_file=pw_file, acl_file=acl_file,
                                persistence=persistence, bind_client_ids=secured)
        self.procs: dict[str, Proc] = {}
        self.env_extra: dict[str, dict[str, str]] = {}
        self.speed, self.origin = speed, origin
        self.real_origin = time.time()
        self.health_s = health_s
        (self.root / "logs").mkdir(exist_ok=True)
        self.sim_out = self.root / "sim"
        self.buses: list[Bus] = []

    # ---- broker ---------------------------------------------------------------------------
    def start_broker(self) -> Centre:
        self.broker.start()
        return self

    def broker_settings(self, user: str) -> BrokerSettings:
        if self.secured:
            return BrokerSettings(port=self.broker.port, username=user, password=self.passwords[user])
        return BrokerSettings(port=self.broker.port)

    def bus(self, node: str, *, port: int | None = None) -> Bus:
        """An in-process Bus as ``node`` (started, connected)."""
        bs = self.broker_settings(node)
        if port is not None:
            bs = bs.model_copy(update={"port": port})
        b = Bus(site=SITE, node=node, role=role_of(node), broker=bs, state_dir=self.root / "clients")
        b.start()
        if not b.wait_connected(10):
            raise RuntimeError(f"{node} did not connect")
        self.buses.append(b)
        return b

    # ---- daemons --------------------------------------------------------------------------
    def env(self, node: str, *, port: int | None = None) -> dict[str, str]:
        e = {k: v for k, v in os.environ.items() if not k.startswith("XEPHANG_")}
        e.update({
            "SDL_VIDEODRIVER": "dummy", "SDL_AUDIODRIVER": "dummy", "GPIOZERO_PIN_FACTORY": "mock",
            "XEPHANG_SITE": SITE, "XEPHANG_NODE": node, "XEPHANG_SITE_FILE": str(self.site_file),
            "XEPHANG_STATE_DIR": str(self.root / "state" / node),
            "XEPHANG_BROKER__HOST": "127.0.0.1", "XEPHANG_BROKER__PORT": str(port or self.broker.port),
            "XEPHANG_SIM": "true", "XEPHANG_SIM_OUT": str(self.sim_out), "XEPHANG_LOG_LEVEL": "INFO",
            "FAULTS_MODULE": MODULES[role_of(node)], "FAULTS_HEALTH_S": str(self.health_s),
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        if self.secured:
            e["XEPHANG_BROKER__USERNAME"] = node
            e["XEPHANG_BROKER__PASSWORD_FILE"] = str(self.files.passwords_dir / f"{node}.pw")
        if self.speed:
            e["XEPHANG_CLOCK__SPEED"] = repr(self.speed)
            e["XEPHANG_CLOCK__ORIGIN"] = repr(self.origin if self.origin is not None else self.real_origin)
            e["XEPHANG_CLOCK__REAL_ORIGIN"] = repr(self.real_origin)
        role = role_of(node)
        if role == "counter":
            e["XEPHANG_COUNTER__NUMBER"] = node.split("-", 1)[1]
        if role == "dispenser":
            # a busy hall: the rate guard of one button must not be what limits the test
            e.update({"XEPHANG_HARDWARE__MAX_PRESSES": "100", "XEPHANG_HARDWARE__PER_S": "1",
                      "XEPHANG_HARDWARE__MAX_PENDING": "20", "XEPHANG_HARDWARE__DOUBLE_PRESS_S": "0"})
        if role == "announcer":
            e["XEPHANG_ANNOUNCER__MAX_AGE_S"] = "3600"
            if (VOICE_CACHE / "manifest.toml").exists() or VOICE_CACHE.is_dir():
                e["XEPHANG_ANNOUNCER__VOICE_PACK"] = str(VOICE_CACHE)
        e.update(self.env_extra.get(node, {}))
        return e

    def start(self, node: str, *, port: int | None = None, **env: str) -> Proc:
        """Start the daemon ``node`` (its role from its id) as a process."""
        if env:
            self.env_extra.setdefault(node, {}).update(env)
        logf = open(self.root / "logs" / f"{node}.log", "ab")  # noqa: SIM115 - closed in stop()
        p = subprocess.Popen([sys.executable, "-c", LAUNCH], env=self.env(node, port=port), stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs[node] = Proc(node, p, logf, time.monotonic())
        return self.procs[node]

    def kill(self, node: str, sig: int = signal.SIGKILL, timeout: float = 10) -> int | None:
        p = self.procs.get(node)
        if p is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
        try:
            rc = p.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.popen.wait(5)
        p.log.close()
        return rc

    def stop(self) -> None:
        for b in self.buses:
            with contextlib.suppress(Exception):
                b.stop(0.5)
        for node in list(self.procs):
            if self.procs[node].alive():
                self.kill(node, signal.SIGTERM)
            else:
                self.procs[node].log.close()
        self.broker.kill()

    def log_text(self, node: str) -> str:
        p = self.root / "logs" / f"{node}.log"
        return p.read_text(errors="replace") if p.exists() else ""

    @property
    def ledger_path(self) -> Path:
        return self.root / "state" / "hub" / "ledger.sqlite"

    def wavs(self, node: str = "announcer-hall") -> list[Path]:
        return sorted((self.sim_out / node).glob("*.wav"))

    def __enter__(self) -> Centre:
        return self.start_broker()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# The consumer that de-duplicates, like every consumer must


class Observer:
    """Every event (de-duplicated by rev), every node's status and health; pumped by ``wait``."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        t = bus.topics
        self.revs: dict[int, dict[str, Any]] = {}
        self.deliveries = 0
        self.redelivered = 0
        self.repaired = 0
        self.garbage = 0
        self.status: dict[str, NodeStatus] = {}
        self.status_log: list[tuple[float, NodeStatus]] = []
        self.health: dict[str, NodeHealth] = {}
        self.retained: dict[str, bytes] = {}
        self.lock = threading.Lock()
        bus.subscribe(t.all_events(), self._on_event)
        bus.subscribe(t.all_status(), self._on_status)
        bus.subscribe(f"{t.root}/node/+/health", self._on_health)
        bus.subscribe(f"{t.root}/state/#", self._on_state)
        bus.subscribe(f"{t.root}/node/+/alert/+", self._on_state)

    def _on_event(self, m: Inbound) -> None:
        model = {"ticket": TicketEvent, "counter": CounterEvent}.get(m.topic.rsplit("/", 2)[-2])
        try:  # the contract's own check, as every consumer makes it: what fails it is not the hub's
            if model is None:
                raise BadPayload("topic", m.topic)
            decode(model, m.payload)
        except BadPayload:
            self.garbage += 1  # forged by the fuzzer
            return
        ev = json.loads(m.payload)  # kept as sent (the scenarios read the raw fields)
        self.deliveries += 1
        if ev["rev"] in self.revs:
            self.redelivered += 1  # QoS 1 may deliver twice; a consumer keys on rev
            return
        self.revs[ev["rev"]] = ev

    def _on_status(self, m: Inbound) -> None:
        if not m.payload:
            return
        try:
            st = NodeStatus.model_validate_json(m.payload)
        except ValueError:
            self.garbage += 1
            return
        self.status_log.append((time.monotonic(), st))
        cur = self.status.get(st.node)
        if cur is None or st.session >= cur.session or st.online:
            self.status[st.node] = st

    def _on_health(self, m: Inbound) -> None:
        try:
            h = NodeHealth.model_validate_json(m.payload)
        except ValueError:
            self.garbage += 1
            return
        self.health[h.node] = h

    def _on_state(self, m: Inbound) -> None:
        self.retained[m.topic] = m.payload

    def online(self, node: str) -> bool:
        st = self.status.get(node)
        return st is not None and st.online

    def pump(self, t: float = 0.02) -> None:
        self.bus.process(timeout=t)

    def wait(self, cond: Callable[[], bool], timeout: float, *others: Bus) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.pump(0.01)
            for b in others:
                b.process(timeout=0)
            if cond():
                return True
        return False

    def gaps(self) -> list[int]:
        """Revisions missing between the first and the last seen."""
        if not self.revs:
            return []
        return sorted(set(range(min(self.revs), max(self.revs) + 1)) - set(self.revs))

    def repair(self, upto: int, first: int = 1, timeout: float = 10.0) -> int:
        """What a consumer does after a gap: ``resync`` from the last rev it has in order and
        take the missed events from the reply. ``first``: the ledger's first revision
        (``Books.first_rev``). Returns how many events came that way."""
        got = 0
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            missing = sorted(set(range(first, upto + 1)) - set(self.revs))
            if not missing:
                break
            r = self.bus.request_sync(Resync(request_id=new_request_id(), source=self.bus.node,
                                             since_rev=missing[0] - 1), timeout_s=2, attempts=2)
            if r is None or r.status != "ok":
                continue
            for ev in r.data.get("events", []):
                if ev["rev"] not in self.revs:
                    self.revs[ev["rev"]] = ev
                    got += 1
        self.repaired += got
        return got

    def kinds(self) -> Multiset[str]:
        return Multiset(e["kind"] for e in self.revs.values())


# ---------------------------------------------------------------------------------------------
# Load: busy boxes


@dataclass
class Loader:
    """Issue tickets and call them, as boxes do: one request_id per press, retried with it."""

    bus: Bus
    counters: list[int]
    services: list[str]
    timeout_s: float = 1.0
    attempts: int = 30
    issued_ids: dict[str, int | None] = field(default_factory=dict)  # request_id -> ticket id
    issue_errors: int = 0
    called: list[int] = field(default_factory=list)
    sent: int = 0
    answers: int = 0
    gave_up: int = 0
    replies_by_rid: Multiset[str] = field(default_factory=Multiset)
    _i: int = 0  # next service
    _c: int = 0  # next counter

    def _send(self, req: Request, cb: Callable[[Reply | None], None]) -> None:
        self.sent += 1

        def wrapped(r: Reply | None) -> None:
            if r is None:
                self.gave_up += 1
            else:
                self.answers += 1
                self.replies_by_rid[r.request_id] += 1
            cb(r)

        self.bus.request(req, on_reply=wrapped, timeout_s=self.timeout_s, attempts=self.attempts)

    def issue(self) -> None:
        svc = self.services[self._i % len(self.services)]
        self._i += 1
        rid = new_request_id()
        self.issued_ids[rid] = None

        def done(r: Reply | None) -> None:
            if r is not None and r.status == "ok":
                self.issued_ids[rid] = int(r.data["ticket"]["id"])
            elif r is not None:
                self.issue_errors += 1

        self._send(IssueTicket(request_id=rid, source=self.bus.node, service=svc), done)

    def call(self) -> None:
        n = self.counters[self._c % len(self.counters)]
        self._c += 1

        def done(r: Reply | None) -> None:
            if r is not None and r.status == "ok" and r.data.get("ticket"):
                self.called.append(int(r.data["ticket"]["id"]))

        self._send(CallNext(request_id=new_request_id(), source=self.bus.node, counter=n), done)

    def finish(self, n: int) -> None:
        self._send(Finish(request_id=new_request_id(), source=self.bus.node, counter=n), lambda r: None)

    def idle(self) -> bool:
        return self.bus.pending_requests() == 0


# ---------------------------------------------------------------------------------------------
# The books


@dataclass
class Books:
    tickets: int
    by_state: dict[str, int]
    max_rev: int
    revs_missing: list[int]
    outbox: int
    numbers_reused: int
    issued_events: int
    called_twice: int
    ids: set[int] = field(default_factory=set)
    first_rev: int = 1  # a new ledger starts after the hub's clock (hubd.ledger.numbering_base)


def read_ledger(path: Path) -> Books:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tickets = db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        by_state = dict(db.execute("SELECT state, COUNT(*) FROM tickets GROUP BY state").fetchall())
        revs = [r[0] for r in db.execute("SELECT rev FROM events ORDER BY rev")]
        base = db.execute("SELECT value FROM meta WHERE key='numbering_base'").fetchone()
        first = int(json.loads(base[0])) + 1 if base else 1
        max_rev = revs[-1] if revs else first - 1
        missing = sorted(set(range(first, max_rev + 1)) - set(revs))
        outbox = db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        reused = db.execute("SELECT COUNT(*) FROM (SELECT day, service, number FROM tickets "
                            "GROUP BY day, first_service, number HAVING COUNT(*) > 1)").fetchone()[0]
        issued = db.execute("SELECT COUNT(*) FROM events WHERE kind='issued'").fetchone()[0]
        # a ticket called twice without a recall/no-show/transfer between is a double call
        twice = db.execute("SELECT COUNT(*) FROM (SELECT ticket_id FROM events WHERE kind='called' "
                           "GROUP BY ticket_id HAVING COUNT(*) > 1)").fetchone()[0]
        ids = {r[0] for r in db.execute("SELECT id FROM tickets")}
        return Books(tickets, by_state, max_rev, missing, outbox, reused, issued, twice, ids, first)
    finally:
        db.close()


@dataclass
class Tally:
    """One line of the bench table."""

    scenario: str
    operations: int = 0
    faults: int = 0
    lost: int = 0
    duplicates: int = 0
    recoveries: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def p99(self) -> float | None:
        if not self.recoveries:
            return None
        s = sorted(self.recoveries)
        return s[min(len(s) - 1, int(round(0.99 * (len(s) - 1))))]

    def row(self) -> str:
        p = self.p99()
        rec = f"{p:7.2f} s" if p is not None else "      –  "
        return f"{self.scenario:<34} {self.operations:>7} {self.faults:>7} {self.lost:>6} {self.duplicates:>6} {rec}"


HEADER = f"{'scenario':<34} {'ops':>7} {'faults':>7} {'lost':>6} {'dups':>6} recovery p99"


def account(books: Books, obs: Observer, loader: Loader | None, tally: Tally, *, other_issues: int = 0) -> Tally:
    """Lost = a ticket a box was told about that is not in the ledger, or an event the consumer
    never got; duplicates = more tickets than presses, a number reused, a ticket called twice."""
    lost = len(books.revs_missing)
    got = set(obs.revs)
    lost += len(set(range(books.first_rev, books.max_rev + 1)) - got)
    dups = books.numbers_reused + books.called_twice
    if loader is not None:
        acked = {t for t in loader.issued_ids.values() if t is not None}
        lost += len(acked - books.ids)
        dups += max(0, books.issued_events - len(loader.issued_ids) - other_issues)
        dups += len(loader.called) - len(set(loader.called))
    tally.lost += lost
    tally.duplicates += dups
    return tally

