"""Press → last byte handed to the printer, with a real mosquitto and the real hub.

    .venv/bin/python bench/ticket_press.py [--count 200]

A mosquitto on loopback, hubd in a thread (ledger on disk, SQLite ``synchronous=FULL``),
ticketd in a thread running its real owner loop (sim board: gpiozero mock pins, a
FakePrinter that stamps the moment each job's last byte was handed over). The benchmark
thread presses a service button by driving its mock pin low (the gpiozero callback runs
our debounce and enqueues, as on a Pi), waits for the job, releases, and goes on; the four
services take turns.

Printed, p50 / p99 in ms:
- ``press → printer``: drive_low() → the FakePrinter got the whole ticket (debounce, core,
  printer check, issue-ticket round trip through the broker and the hub's ledger commit,
  render, ESC/POS job build, the write);
- the same split inside ticketd: press → hub reply, reply → printed (render + job + write);
- ``baseline``: a bare ``issue-ticket`` request → reply from a plain bus client, measured
  in the same run (what the hub and broker alone cost); the ratio says what ticketd adds;
- memory: ticketd's own resident memory. The latency run above holds hub + ticketd + bench
  in one process, so ticketd is also started alone in a child process (spawned: a fresh
  interpreter) on the same broker and hub, prints ``--mem-presses`` tickets through its real
  loop, and reports its ``VmRSS`` (now) and ``VmHWM`` (peak) from ``/proc/self/status``. The
  bench's own process peak is printed too, labelled as what it is.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# only what ticketd itself loads at module level: the memory child (spawned, a fresh
# interpreter) imports this file, and must not carry the hub's or the bench's own modules
from ticketd.config import HardwareConfig  # noqa: E402
from ticketd.main import TicketDaemon, TicketdSettings  # noqa: E402
from ticketd.printer import FakePrinter  # noqa: E402
from xephang.clock import VN_TZ, ManualClock  # noqa: E402
from xephang.settings import BrokerSettings  # noqa: E402

SITE_FILE = Path(__file__).resolve().parent.parent / "config" / "site.example.toml"
SERVICES = ["ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"]


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs: list[float]) -> str:
    return f"p50 {statistics.median(xs) * 1000:7.2f} ms   p99 {pct(xs, 99) * 1000:7.2f} ms   (n={len(xs)})"


def proc_status_kib(field: str) -> int:
    """A ``kB`` line of ``/proc/self/status`` (VmRSS, VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def ticketd_alone(port: int, state_dir: str, presses: int, out: multiprocessing.Queue) -> None:
    """Child process: ticketd alone (real loop, sim board, FakePrinter) prints ``presses``
    tickets through the bench's broker and hub, then reports its own memory."""
    logging.basicConfig(level=logging.WARNING)
    try:
        start_rss = proc_status_kib("VmRSS")  # the interpreter with ticketd's imports loaded
        clock = ManualClock(start=datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp())
        printer = FakePrinter(width_px=576)
        hw = HardwareConfig(max_presses=100, per_s=1.0, double_press_s=0.0, max_pending=20)
        settings = TicketdSettings(site="tuong-linh", node="dispenser-2", site_file=SITE_FILE,
                                   state_dir=Path(state_dir), sim=True, hardware=hw,
                                   broker=BrokerSettings(port=port))
        tk = TicketDaemon(settings, clock=clock, printer=printer)
        runner = threading.Thread(target=tk.run, name="ticketd", daemon=True)
        runner.start()
        end = time.monotonic() + 10
        while not tk.hub_online and time.monotonic() < end:
            time.sleep(0.01)
        for i in range(presses):
            pin = tk.board.keys[SERVICES[i % 4]].pin
            n = len(printer.jobs)
            pin.drive_low()
            if not printer.wait_jobs(n + 1, timeout=10):
                out.put({"error": f"press {i}: no ticket (last error {tk.last_error!r})"})
                return
            time.sleep(0.05)
            pin.drive_high()
            time.sleep(0.04)
        held = sum(map(len, printer.jobs)) + len(printer.output)  # the fake keeps every job; a real printer none
        result = {"start_kib": start_rss, "rss_kib": proc_status_kib("VmRSS"),
                  "hwm_kib": proc_status_kib("VmHWM"), "printed": printer.printed, "held_kib": held / 1024,
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("escpos", "hubd", "pygame", "usb",
                                                                                 "serial", "numpy"))}
        tk.stop_event.set()
        runner.join(10)
        out.put(result)
    except Exception as exc:  # report, never hang the parent
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--mem-presses", type=int, default=50, help="tickets printed by ticketd alone before its RSS is read")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from hubd.main import HubConfig
    from hubd.testing import running_hub
    from xephang.bus import Bus
    from xephang.contract import IssueTicket, new_request_id
    from xephang_ops.mosquitto import Mosquitto, find_mosquitto

    if not find_mosquitto():
        print("mosquitto is not installed")
        return 1
    clock = ManualClock(start=datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp())  # a Monday, open
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        (tmpd / "hub").mkdir()
        (tmpd / "tk").mkdir()
        broker = Mosquitto(tmpd / "mosquitto")
        broker.start()
        try:
            with running_hub(broker.port, tmpd / "hub", SITE_FILE, clock=clock,
                             hub=HubConfig(issue_burst=10_000)):  # a bench floods one dispenser
                printer = FakePrinter(width_px=576)
                # the bench presses faster than a citizen may: lift the per-button bounds
                hw = HardwareConfig(max_presses=100, per_s=1.0, double_press_s=0.0, max_pending=20)
                settings = TicketdSettings(site="tuong-linh", node="dispenser-1", site_file=SITE_FILE,
                                           state_dir=tmpd / "tk", sim=True, hardware=hw,
                                           broker=BrokerSettings(port=broker.port))
                tk = TicketDaemon(settings, clock=clock, printer=printer)
                runner = threading.Thread(target=tk.run, name="ticketd", daemon=True)
                runner.start()
                client = Bus(site="tuong-linh", node="dispenser-9", role="bench", broker=BrokerSettings(port=broker.port))
                client.start()
                if not client.wait_connected(10):
                    print("bench client could not connect")
                    return 1
                end = time.monotonic() + 10
                while not tk.hub_online and time.monotonic() < end:
                    time.sleep(0.01)
                pins = {s: tk.board.keys[s].pin for s in SERVICES}
                lat: list[float] = []
                for i in range(args.count + 5):
                    pin = pins[SERVICES[i % 4]]
                    n = len(printer.jobs)
                    t0 = time.monotonic()
                    pin.drive_low()
                    if not printer.wait_jobs(n + 1, timeout=10):
                        print(f"press {i}: no ticket within 10 s (last error {tk.last_error!r})")
                        return 1
                    if i >= 5:  # the first presses warm caches and the broker session
                        lat.append(printer.sent_at[-1] - t0)
                    time.sleep(0.05)  # release after a human-ish press
                    pin.drive_high()
                    time.sleep(0.04)  # beyond the debounce window before the next press
                base: list[float] = []
                for i in range(args.count):
                    req = IssueTicket(request_id=new_request_id(), source="dispenser-9", service=SERVICES[i % 4])
                    t0 = time.monotonic()
                    reply = client.request_sync(req, timeout_s=2, attempts=1)
                    if reply is None or reply.status != "ok":
                        print(f"baseline request {i} failed: {reply}")
                        return 1
                    base.append(time.monotonic() - t0)
                tk.stop_event.set()
                runner.join(10)
                client.stop()
                (tmpd / "tk2").mkdir()
                ctx = multiprocessing.get_context("spawn")
                out: multiprocessing.Queue = ctx.Queue()
                child = ctx.Process(target=ticketd_alone, args=(broker.port, str(tmpd / "tk2"), args.mem_presses, out))
                child.start()
                try:
                    mem = out.get(timeout=120)
                finally:
                    child.join(15)
                    if child.is_alive():
                        child.kill()
        finally:
            broker.kill()
    print("ticketd press → last byte handed to the printer (real mosquitto + hub, 576 px tickets)")
    print(f"  press → printer   {fmt(lat)}")
    print(f"  baseline          {fmt(base)}   (bare issue-ticket request → reply)")
    print(f"  ratio             p50 press→printer / p50 baseline = {statistics.median(lat) / statistics.median(base):.2f}")
    t = list(tk.timings)[5:]
    print(f"  press → reply     {fmt([r - p for p, r, _ in t])}   (debounce, core, printer check, hub round trip)")
    print(f"  reply → printed   {fmt([d - r for _, r, d in t])}   (render, ESC/POS job, write)")
    print(f"  tickets printed   {printer.printed}, job size {len(printer.jobs[-1])} bytes")
    if "error" in mem:
        print(f"memory: ticketd alone failed: {mem['error']}")
        return 1
    print(f"memory: ticketd alone (own process, after {mem['printed']} tickets): RSS {mem['rss_kib'] / 1024:.1f} MiB, "
          f"peak {mem['hwm_kib'] / 1024:.1f} MiB (imports loaded, before setup: {mem['start_kib'] / 1024:.1f} MiB)")
    print(f"        of which job bytes the FakePrinter keeps: {mem['held_kib'] / 1024:.1f} MiB (a real printer keeps none); "
          f"heavy modules loaded: {mem['modules'] or 'none of escpos, hubd, pygame, usb, serial, numpy'}")
    print(f"        bench process peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB "
          "(hub + ticketd + bench client in one process: not ticketd's figure)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
