"""Hub benchmark: durable operations per second, call latency against the raw broker, memory.

Runs a private mosquitto and the real ``hubd`` as a separate process, then:
1. raw two-hop broker time: publish → an echo client republishes → receive (the path a call
   takes through the broker: counter → broker → hub → broker → board), p50/p99;
2. call latency: ``call-next`` request sent → ``event/ticket/called`` received, p50/p99, and
   the ratio of its p99 to the raw two-hop p99;
3. throughput: issue + call-next + finish cycles from a dispenser and eight counters with a
   window of requests in flight; every op is committed to the ledger (synchronous=FULL)
   before its reply. Measured on an empty ledger and on one holding a year of history;
4. resident memory of the hub after a simulated day;
5. the wait estimate's cost: a third hub on an empty ledger whose engine prints the old single
   figure (``QueueEngine.estimate``, injected by the bench) instead of the range of
   ``hubd/wait_estimate.py``; its throughput runs alternate with the others.

    .venv/bin/python bench/hub_throughput.py [--ops 3000] [--history 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from paho.mqtt import client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from hubd.engine import QueueEngine  # noqa: E402
from hubd.ledger import Ledger  # noqa: E402
from xephang.bus import Bus, Inbound, _nodelay  # noqa: E402
from xephang.contract import CallNext, Finish, IssueTicket, Reply, TicketEvent, decode, new_request_id  # noqa: E402
from xephang.settings import BrokerSettings, load_site  # noqa: E402
from xephang_ops.mosquitto import Mosquitto  # noqa: E402

SITE_FILE = REPO / "config" / "site.example.toml"


def bench_site_file(tmp: Path) -> Path:
    """The example centre with wide number bands: a benchmark issues thousands of tickets a day."""
    text = SITE_FILE.read_text()
    for old, new in (("[1001, 1999]", "[1, 2499]"), ("[2001, 2999]", "[2500, 4999]"),
                     ("[3001, 3999]", "[5000, 7499]"), ("[4001, 4999]", "[7500, 9999]")):
        text = text.replace(old, new)
    # eight counters, two per service: a large centre pressing keys at once
    text += "".join(f'\n[[counters]]\nnumber = {n}\nservices = ["{sv}"]\nofficer = "Cán bộ {n}"\n'
                    for n, sv in ((5, "ho-tich"), (6, "dat-dai"), (7, "chung-thuc"), (8, "van-hoa-xa-hoi")))
    path = tmp / "site.bench.toml"
    path.write_text(text)
    return path


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def raw_two_hop(port: int, n: int = 500) -> list[float]:
    """publish → echo client republishes → receive, in ms."""
    got: dict[str, float] = {}
    ev = threading.Event()

    def mk(cid: str) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
        c.on_socket_open = _nodelay  # the same socket options as our bus: a fair baseline
        c.connect("127.0.0.1", port)
        c.loop_start()
        return c

    echo = mk("bench-echo")
    echo.on_message = lambda c, u, m: c.publish("bench/out", m.payload, qos=1)
    echo.subscribe("bench/in", qos=1)
    sink = mk("bench-sink")

    def on_sink(c, u, m):  # type: ignore[no-untyped-def]
        got[m.payload.decode()] = time.perf_counter()
        ev.set()

    sink.on_message = on_sink
    sink.subscribe("bench/out", qos=1)
    src = mk("bench-src")
    time.sleep(0.3)  # let the subscriptions land before measuring
    out = []
    for i in range(n):
        key = str(i)
        ev.clear()
        t0 = time.perf_counter()
        src.publish("bench/in", key, qos=1)
        ev.wait(2)
        if key in got:
            out.append((got[key] - t0) * 1000)
    for c in (echo, sink, src):
        c.loop_stop()
        c.disconnect()
    return out


class Driver:
    """Clients of the hub, pumped from this thread."""

    def __init__(self, port: int, tmp: Path, site: str) -> None:
        bs = BrokerSettings(port=port)
        self.disp = Bus(site=site, node="dispenser-1", broker=bs, state_dir=tmp)
        self.counters = {n: Bus(site=site, node=f"counter-{n}", broker=bs, state_dir=tmp) for n in range(1, 9)}
        self.board = Bus(site=site, node="display-hall", broker=bs, state_dir=tmp)
        self.called_at: dict[int, float] = {}
        self.board.subscribe(self.board.topics.event("ticket", "called"), self._on_called)
        self.all = [self.disp, *self.counters.values(), self.board]
        for b in self.all:
            b.start()
        for b in self.all:
            assert b.wait_connected(10)

    def _on_called(self, m: Inbound) -> None:
        ev = decode(TicketEvent, m.payload)
        self.called_at[ev.ticket.id] = time.perf_counter()

    def pump(self) -> None:
        for b in self.all:
            b.process(timeout=0)

    def close(self) -> None:
        for b in self.all:
            b.stop()


def call_latency(d: Driver, n: int) -> list[float]:
    """Sequential call-next on counter 3: request sent → called event received (ms)."""
    for _ in range(n):
        r = d.disp.request_sync(IssueTicket(request_id=new_request_id(), source="dispenser-1", service="dat-dai"))
        assert r is not None and r.status == "ok", r
    out = []
    c3 = d.counters[3]
    for _ in range(n):
        box: list[Reply | None] = []
        t0 = time.perf_counter()
        c3.request(CallNext(request_id=new_request_id(), source="counter-3", counter=3), on_reply=box.append)
        tid = None
        end = time.monotonic() + 5
        while time.monotonic() < end:
            c3.process(timeout=0.0005)
            d.board.process(timeout=0)
            if box and tid is None:
                tid = box[0].data["ticket"]["id"]  # type: ignore[union-attr]
            if tid is not None and tid in d.called_at:
                break
        assert tid is not None and tid in d.called_at
        out.append((d.called_at[tid] - t0) * 1000)
    c3.request_sync(Finish(request_id=new_request_id(), source="counter-3", counter=3))
    return out


def throughput(d: Driver, ops: int, window: int = 64) -> float:
    """issue → call-next → finish cycles on eight counters; returns durable ops per second."""
    services = {1: "ho-tich", 2: "chung-thuc", 3: "dat-dai", 4: "van-hoa-xa-hoi",
                5: "ho-tich", 6: "dat-dai", 7: "chung-thuc", 8: "van-hoa-xa-hoi"}
    done = [0]
    inflight = [0]
    plan: list[tuple[Bus, object]] = []
    for i in range(ops // 3):
        n = 1 + i % 8
        plan.append((d.disp, IssueTicket(request_id=new_request_id(), source="dispenser-1", service=services[n])))
        plan.append((d.counters[n], CallNext(request_id=new_request_id(), source=f"counter-{n}", counter=n)))
        plan.append((d.counters[n], Finish(request_id=new_request_id(), source=f"counter-{n}", counter=n)))
    errors: dict[str, int] = {}

    def cb(r: Reply | None) -> None:
        inflight[0] -= 1
        done[0] += 1
        if r is None or r.status != "ok":
            code = "timeout" if r is None else (r.error.code if r.error else "?")
            errors[code] = errors.get(code, 0) + 1

    t0 = time.perf_counter()
    i = 0
    # per counter, keep order: a counter's next request waits for its previous reply
    busy: dict[str, bool] = {}
    while done[0] < len(plan):
        while i < len(plan) and inflight[0] < window and not busy.get(plan[i][0].node):
            bus, req = plan[i]
            node = bus.node
            # counters press one key at a time; the dispenser's buttons are pressed by many citizens
            busy[node] = node != "dispenser-1"

            def mk(node: str = node):  # type: ignore[no-untyped-def]
                def f(r: Reply | None) -> None:
                    busy[node] = False
                    cb(r)
                return f

            bus.request(req, on_reply=mk(), timeout_s=5, attempts=3)  # type: ignore[arg-type]
            inflight[0] += 1
            i += 1
        d.pump()
        time.sleep(0.0002)
    dt = time.perf_counter() - t0
    if errors:
        print(f"  (refused or failed: {errors}; not-serving = a finish after an empty queue)")
    return len(plan) / dt


def fill_history(ledger_path: Path, tickets: int) -> None:
    """A year of closed history written straight into the ledger tables."""
    site = load_site(SITE_FILE)
    led = Ledger(ledger_path)
    eng = QueueEngine(site)
    rnd = random.Random(7)
    start = time.time() - 366 * 86400
    per_day = max(1, tickets // 300)
    trows, vrows, erows = [], [], []
    rev = 0
    tid = 0
    for day_i in range(400):
        if tid >= tickets:
            break
        day_t = start + day_i * 86400
        day = eng.service_day(day_t + 3600 * 3)
        seq: dict[str, int] = {}
        for _ in range(per_day):
            if tid >= tickets:
                break
            tid += 1
            svc = rnd.choice(site.services)
            seq[svc.id] = seq.get(svc.id, svc.band[0] - 1) + 1
            iss = day_t + rnd.uniform(0, 9 * 3600)
            call = iss + rnd.expovariate(1 / 900)
            fin = call + rnd.expovariate(1 / 480)
            c = next(c for c in site.counters if svc.id in c.services)
            trows.append((tid, day, svc.id, seq[svc.id], str(seq[svc.id]), None, iss, iss, svc.id, "done", c.number,
                          call, call, 0, fin, 0, 0, 0, rnd.choice([None, 4, 5, 3]), fin + 30, None, 0))
            vrows.append((tid, tid, day, c.number, site.officer_name(c.number), svc.id, call, fin, "served", 0, 0))
            for kind, at in (("issued", iss), ("called", call), ("finished", fin)):
                rev += 1
                erows.append((rev, f"h{rev}", at, "ticket", kind, tid, c.number, json.dumps({"rev": rev})))
    with led.transaction() as db:
        db.executemany(f"INSERT INTO tickets VALUES ({','.join('?' * 22)})", trows)
        db.executemany(f"INSERT INTO visits (id, ticket_id, day, counter, officer, service, called_at, ended_at, outcome, "
                           f"inferred, recalls) VALUES ({','.join('?' * 11)})", vrows)
        db.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", erows)
        eng.rev = rev
        eng.next_ticket_id = tid + 1
        eng.next_visit_id = tid + 1
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('engine', ?)", (json.dumps(eng.meta()),))
    led.close()


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used: a shared machine slows the clock, not this."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# the hub with the old single figure in place of the range: what the estimate costs, same code otherwise
POINT_HUB = """
from hubd.engine import QueueEngine
from hubd.wait_estimate import WaitRange

def wait_range(self, service, now, ticket=None):
    ahead = self.people_ahead(ticket) if ticket is not None else len(self.waiting([service]))
    m = self.estimate(service, ahead)
    return WaitRange(int(m // 5 * 5), int(m // 5 * 5) + 5, m)

QueueEngine.wait_range = wait_range
from hubd.main import main
raise SystemExit(main())
"""


def start_hub(port: int, state: Path, site: str, *, estimator: str = "range") -> subprocess.Popen[bytes]:
    """The real hub; ``estimator="point"`` swaps the wait range for the old single figure."""
    env = {**os.environ, "XEPHANG_SITE_FILE": str(bench_site_file(state)), "XEPHANG_STATE_DIR": str(state), "XEPHANG_SITE": site,
           "XEPHANG_BROKER__PORT": str(port), "XEPHANG_NODE": "hub", "XEPHANG_LOG_LEVEL": "WARNING",
           "XEPHANG_HUB__ISSUE_BURST": "10000"}  # a bench's flood from one dispenser is what the hub refuses
    cmd = ["-m", "hubd.main"] if estimator == "range" else ["-c", POINT_HUB]
    return subprocess.Popen([sys.executable, *cmd], env=env, cwd=REPO)


def wait_hub_online(d_port: int, tmp: Path, site: str) -> None:
    b = Bus(site=site, node="tech-bench", broker=BrokerSettings(port=d_port), state_dir=tmp)
    online = [False]
    b.subscribe(b.topics.status("hub"), lambda m: online.__setitem__(0, bool(m.payload) and json.loads(m.payload)["online"]))
    b.start()
    end = time.monotonic() + 20
    while not online[0] and time.monotonic() < end:
        b.process(timeout=0.05)
    b.stop()
    assert online[0], "hub did not come online"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=3000)
    ap.add_argument("--latency-samples", type=int, default=300)
    ap.add_argument("--history", type=int, default=100_000)
    ap.add_argument("--day", type=int, default=1000, help="tickets in the simulated day for the memory figure")
    ap.add_argument("--rounds", type=int, default=3, help="throughput runs per hub (alternating between the hubs)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="xephang-bench-"))
    mq = Mosquitto(tmp / "mq").start()
    print(f"hub benchmark — mosquitto on 127.0.0.1:{mq.port}, {os.cpu_count()} cores")
    try:
        raw = raw_two_hop(mq.port)
        print(f"raw two-hop broker (publish → echo → receive): p50 {statistics.median(raw):.2f} ms, "
              f"p99 {pct(raw, 99):.2f} ms (n={len(raw)})")
        hubs, drivers = {}, {}
        # one broker per hub: client ids are node ids, unique per broker (one broker per site)
        brokers = {"empty": mq, "history": Mosquitto(tmp / "mq2").start(), "point": Mosquitto(tmp / "mq3").start()}
        for label, site, history in (("empty", "bench-empty", 0), ("history", "bench-history", a.history),
                                     ("point", "bench-point", 0)):
            port = brokers[label].port
            state = tmp / f"hub-{site}"
            state.mkdir()
            if history:
                t0 = time.perf_counter()
                fill_history(state / "ledger.sqlite", history)
                size = (state / "ledger.sqlite").stat().st_size / 1e6
                print(f"(history: {history:,} tickets written in {time.perf_counter() - t0:.1f} s, ledger {size:.1f} MB)")
            hubs[label] = (start_hub(port, state, site, estimator="point" if label == "point" else "range"), state)
            wait_hub_online(port, tmp, site)
            drivers[label] = Driver(port, tmp / f"clients-{site}", site)
        try:
            lat = {k: call_latency(d, a.latency_samples) for k, d in drivers.items()}
            rates: dict[str, list[float]] = {k: [] for k in drivers}
            cpu_ms: dict[str, list[float]] = {k: [] for k in drivers}  # the hub's CPU per op
            for _ in range(a.rounds):  # alternate, so machine noise hits every hub alike
                for k, d in drivers.items():
                    c0 = cpu_s(hubs[k][0].pid)
                    rates[k].append(throughput(d, a.ops))
                    cpu_ms[k].append((cpu_s(hubs[k][0].pid) - c0) * 1000 / a.ops)
            results = {}
            for k in drivers:
                name = {"empty": "empty ledger", "history": f"ledger holding {a.history:,} tickets of history",
                        "point": "empty ledger, the old single figure instead of the wait range"}[k]
                rate = statistics.median(rates[k])
                results[k] = rate
                print(f"{name}:")
                print(f"  call latency (call-next → event/ticket/called): p50 {statistics.median(lat[k]):.2f} ms, "
                      f"p99 {pct(lat[k], 99):.2f} ms; p99 / raw two-hop p99 = {pct(lat[k], 99) / pct(raw, 99):.2f}×")
                print(f"  durable ops/s (issue+call+finish, 8 counters + dispenser): median {rate:.0f} "
                      f"(runs: {', '.join(f'{r:.0f}' for r in rates[k])})")
                print(f"  hub CPU per op: median {statistics.median(cpu_ms[k]):.2f} ms "
                      f"(runs: {', '.join(f'{c:.2f}' for c in cpu_ms[k])})")
            hub, state = hubs["empty"]
            before = rss_kb(hub.pid)
            throughput(drivers["empty"], a.day * 3)
            after = rss_kb(hub.pid)
            db = sqlite3.connect(state / "ledger.sqlite")
            n = db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
            db.close()
            print(f"hub RSS: {before / 1024:.1f} MiB before, {after / 1024:.1f} MiB after a simulated day of "
                  f"{a.day} more tickets ({n} tickets in its ledger)")
        finally:
            for d in drivers.values():
                d.close()
            for hub, _ in hubs.values():
                hub.terminate()
                hub.wait(10)
            brokers["history"].kill()
            brokers["point"].kill()
        print(f"history / empty throughput ratio: {results['history'] / results['empty']:.2f}")
        print(f"wait estimate's cost: {results['empty']:.0f} durable ops/s with the range, {results['point']:.0f} with"
              f" the old single figure (range / single = {results['empty'] / results['point']:.2f}); hub CPU per op"
              f" {statistics.median(cpu_ms['empty']):.2f} ms with the range, {statistics.median(cpu_ms['point']):.2f} ms"
              f" with the single figure")
    finally:
        mq.kill()


if __name__ == "__main__":
    main()
