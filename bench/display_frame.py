"""displayd figures: render time, event → frame latency, idle CPU, memory.

Run: ``.venv/bin/python bench/display_frame.py`` (about two minutes; ``--quick`` for ~20 s).
Prints:
- full-frame render time at 1920×1080 (cold first frame, warm redraw, a frame per new call,
  a ticker-only frame), with the ratio to a baseline measured in the same run: one full
  ``Surface.fill`` + ``blit`` of a 1920×1080 surface (the floor any frame pays);
- event received → frame presented, p50/p99, through the daemon's owner loop on the
  in-process FakeBus and, when mosquitto is installed, through a real broker;
- idle CPU seconds per minute with only the clock running (and with the ticker on);
- resident memory (VmRSS, VmHWM).
Numbers are from this machine; a Raspberry Pi is several times slower: re-measure there.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pygame  # noqa: E402

from displayd.config import BoardConfig, BoardLabels  # noqa: E402
from displayd.main import DisplayDaemon, DisplaySettings, ScreenSettings  # noqa: E402
from displayd.model import BoardEvent, BoardModel, Call, CounterView, HallSnapshot  # noqa: E402
from displayd.render import BoardRenderer  # noqa: E402
from displayd.screen import HeadlessScreen  # noqa: E402
from xephang.bus import Bus  # noqa: E402
from xephang.clock import Clock  # noqa: E402
from xephang.contract import CallInfo, CounterState, HallState, ServiceState, TicketEvent, TicketInfo  # noqa: E402
from xephang.settings import BrokerSettings, load_site  # noqa: E402
from xephang.testing import FakeBroker, FakeBus  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SITE_FILE = REPO / "config" / "site.example.toml"
SITE = "tuong-linh"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def show(name: str, xs: list[float], base: float | None = None) -> None:
    med = statistics.median(xs)
    ratio = f"  ({med / base:5.1f}× baseline)" if base else ""
    print(f"  {name:<38} p50 {med:7.2f} ms   p99 {pct(xs, 99):7.2f} ms   n={len(xs)}{ratio}")


def rss() -> tuple[float, float]:
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


# ---------------------------------------------------------------------------------------------


def board(now: float) -> BoardModel:
    m = BoardModel(now=now, last_calls=4)
    m.set_link(now=now, broker_connected=True, hub_online=True)
    m.load_snapshot(HallSnapshot(
        rev=10,
        counters=(CounterView(1, "open", "1023", "ho-tich"), CounterView(2, "paused", "3005", "chung-thuc"),
                  CounterView(3, "open", "2011", "dat-dai"), CounterView(4, "open", "4001", "van-hoa-xa-hoi")),
        waiting={"ho-tich": 5, "dat-dai": 2, "chung-thuc": 0, "van-hoa-xa-hoi": 7},
        last_calls=(Call("2011", 3, "dat-dai"), Call("1023", 1, "ho-tich"), Call("3005", 2, "chung-thuc")),
    ), now=now)
    return m


def bench_render(n: int) -> None:
    print("render at 1920×1080 (plain Surface)")
    labels = BoardLabels.from_site(load_site(SITE_FILE))
    surface = pygame.Surface((1920, 1080))
    other = pygame.Surface((1920, 1080))
    base = []
    for _ in range(n):
        t = time.perf_counter()
        surface.fill((0, 0, 0))
        surface.blit(other, (0, 0))
        base.append((time.perf_counter() - t) * 1000)
    b = statistics.median(base)
    show("baseline: fill + full blit", base)

    now = time.time()
    m = board(now)
    r = BoardRenderer(config=BoardConfig(), labels=labels)
    t = time.perf_counter()
    r.render(surface, m, now)
    print(f"  {'cold first frame (fonts load)':<38} {(time.perf_counter() - t) * 1000:7.2f} ms")

    warm = []
    for i in range(n):
        t = time.perf_counter()
        r.render(surface, m, now + i * 0.001, force=True)
        warm.append((time.perf_counter() - t) * 1000)
    show("warm full redraw (nothing new)", warm, b)

    calls = []
    for i in range(n):
        m.apply(BoardEvent(kind="called", rev=11 + i, number=f"{1024 + i % 900}", service="ho-tich", counter=1 + i % 4), now=now)
        t = time.perf_counter()
        r.render(surface, m, now + 0.01)
        calls.append((time.perf_counter() - t) * 1000)
    show("full frame after a new call", calls, b)

    m.set_ticker("Trung tâm làm việc từ 7 giờ 30 đến 17 giờ, từ Thứ Hai đến Thứ Bảy. Xin vui lòng giữ trật tự.")
    end = now + 120
    r.render(surface, m, end)  # the ticker's first (full) frame
    tick = []
    for i in range(n):
        t = time.perf_counter()
        f = r.render(surface, m, end + (i + 1) / 30)
        tick.append((time.perf_counter() - t) * 1000)
        assert not f.full
    show("ticker-only frame (dirty band)", tick, b)
    print(f"  text cache: {r.text.hits} hits, {r.text.misses} misses, {r.text.bytes / 2**20:.1f} MiB of surfaces")
    with tempfile.TemporaryDirectory() as tmpd:
        screen = HeadlessScreen(size=(1920, 1080), out_dir=tmpd)
        screen.surface.blit(surface, (0, 0))
        png = []
        for _ in range(max(5, n // 30)):
            t = time.perf_counter()
            screen.write_frame()
            png.append((time.perf_counter() - t) * 1000)
        show("sim mode: write the frame as PNG", png, b)
    cur, peak = rss()
    print(f"  resident memory after the render runs: {cur:.0f} MiB (peak {peak:.0f} MiB)")


# ---------------------------------------------------------------------------------------------


def ticket(number: int, service: str, counter: int | None) -> TicketInfo:
    return TicketInfo(id=number, day="2026-11-19", number=number, display=str(number), service=service,
                      issued_at=time.time(), state="called", counter=counter)


def hall_state() -> HallState:
    return HallState(
        rev=10, at=time.time(),
        counters=[CounterState(number=n, label_vi=f"Quầy {n}", state="open", serving=ticket(1000 + n, "ho-tich", n), rev=10)
                  for n in range(1, 5)],
        services=[ServiceState(id="ho-tich", waiting=5, rev=10)],
        last_calls=[CallInfo(rev=9, at=time.time(), display="1004", service="ho-tich", counter=4)],
    )


def make_daemon(tmp: Path, bus: Bus | None, broker: BrokerSettings, screen: HeadlessScreen, **display) -> DisplayDaemon:
    settings = DisplaySettings(site=SITE, node="display-hall", site_file=SITE_FILE, state_dir=tmp / "state", sim=True,
                               screen=ScreenSettings(size=screen.size), broker=broker, display=display)
    d = DisplayDaemon(settings, bus=bus, clock=Clock(), screen=screen)
    d.start()
    return d


def run_latency(d: DisplayDaemon, hub: Bus, n: int, gap_s: float, label: str) -> None:
    """A publisher thread sends ``n`` calls; the owner loop runs in this thread; latency is
    publish → present of the frame that shows that number."""
    published: dict[str, float] = {}
    seen: dict[str, float] = {}
    def note_shown() -> None:
        # right after the step that presented the frame; a number may show in a tile or the list
        f = d.last_frame
        if f is None:
            return
        t = time.perf_counter()
        for b in f.boxes:
            if b.role in ("call.number", "tile.number", "recent.number") and b.text in published and b.text not in seen:
                seen[b.text] = t

    # wait for the retained hall
    end = time.monotonic() + 10
    while d.model.rev != 10 and time.monotonic() < end:
        d.step()
        hub.process(timeout=0)

    def publisher() -> None:
        for i in range(n):
            num = 2000 + i
            ev = TicketEvent(event_id=f"b{i}", rev=11 + i, at=time.time(), kind="called",
                             ticket=ticket(num, "dat-dai", 1 + i % 4), counter=1 + i % 4)
            published[str(num)] = time.perf_counter()
            hub.publish(hub.topics.event("ticket", "called"), ev)
            time.sleep(gap_s)

    th = threading.Thread(target=publisher, daemon=True)
    th.start()
    end = time.monotonic() + n * gap_s + 10
    while (th.is_alive() or len(seen) < n) and time.monotonic() < end:
        d.step()
        note_shown()
    lat = [(seen[k] - published[k]) * 1000 for k in seen]
    if lat:
        show(f"event → frame presented ({label})", lat)
    if len(seen) < n:
        print(f"  ({n - len(seen)} of {n} calls never shown)")


def bench_latency(n: int, tmp: Path) -> None:
    print("event published → frame presented (daemon owner loop, 1920×1080 headless, no PNG writing)")
    fb = FakeBroker()
    hub = FakeBus(fb, site=SITE, node="hub", role="hub", state_dir=tmp / "hub")
    hub.start()
    hub.publish(hub.topics.state_hall(), hall_state(), retain=True)
    d = make_daemon(tmp / "fake", FakeBus(fb, site=SITE, node="display-hall", role="display", state_dir=tmp / "fake"),
                    BrokerSettings(), HeadlessScreen(size=(1920, 1080)))
    run_latency(d, hub, n, 0.05, "FakeBus")
    d.teardown()

    try:
        from xephang_ops.mosquitto import Mosquitto, find_mosquitto
    except ImportError:  # pragma: no cover
        return
    if not find_mosquitto():
        print("  (mosquitto not installed: real-broker latency skipped)")
        return
    mq = Mosquitto(tmp / "mq")
    mq.start()
    try:
        broker = BrokerSettings(port=mq.port)
        hub = Bus(site=SITE, node="hub", role="hub", broker=broker, state_dir=tmp / "hub2")
        hub.start()
        hub.wait_connected(10)
        hub.publish(hub.topics.state_hall(), hall_state(), retain=True)
        d = make_daemon(tmp / "real", None, broker, HeadlessScreen(size=(1920, 1080)))
        run_latency(d, hub, n, 0.05, "mosquitto")
        d.teardown()
        d.bus.stop()
        hub.stop()
    finally:
        mq.kill()


def bench_idle(seconds: float, tmp: Path) -> None:
    print(f"idle CPU (real clock, daemon loop; clock only for {seconds:.0f} s, with ticker for {seconds / 3:.0f} s)")
    runs = (("clock only", {}, seconds), ("clock + ticker", {"ticker": "Xin quý công dân vui lòng giữ trật tự."}, seconds / 3))
    for label, opts, secs in runs:
        fb = FakeBroker()
        hub = FakeBus(fb, site=SITE, node="hub", role="hub", state_dir=tmp / "hub-idle")
        hub.start()
        hub.publish(hub.topics.state_hall(), hall_state(), retain=True)
        d = make_daemon(tmp / f"idle-{len(label)}", FakeBus(fb, site=SITE, node="display-hall", role="display",
                        state_dir=tmp / f"idle-{len(label)}"), BrokerSettings(), HeadlessScreen(size=(1920, 1080)), **opts)
        end = time.monotonic() + 3
        while time.monotonic() < end:  # settle: snapshot, first frames
            d.step()
        frames0 = d.frames
        cpu0, wall0 = time.process_time(), time.monotonic()
        while time.monotonic() - wall0 < secs:
            d.step()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        print(f"  {label:<38} {cpu / wall * 60:6.2f} CPU-s/min ({cpu / wall * 100:5.2f} % of one core), "
              f"{d.frames - frames0} frames in {wall:.0f} s")
        d.teardown()


def child_rss(tmp: Path) -> None:
    """In a fresh process: one display daemon (1920×1080, sim, FakeBus) after 100 calls."""
    fb = FakeBroker()
    hub = FakeBus(fb, site=SITE, node="hub", role="hub", state_dir=tmp / "hub")
    hub.start()
    hub.publish(hub.topics.state_hall(), hall_state(), retain=True)
    d = make_daemon(tmp, FakeBus(fb, site=SITE, node="display-hall", role="display", state_dir=tmp),
                    BrokerSettings(), HeadlessScreen(size=(1920, 1080)))
    for i in range(100):
        ev = TicketEvent(event_id=f"r{i}", rev=11 + i, at=time.time(), kind="called",
                         ticket=ticket(3000 + i, "chung-thuc", 1 + i % 4), counter=1 + i % 4)
        hub.publish(hub.topics.event("ticket", "called"), ev)
        d.step(timeout=0)
    cur, peak = rss()
    print(f"resident memory of one display daemon (own process, after 100 calls): {cur:.0f} MiB, peak {peak:.0f} MiB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples, shorter idle runs")
    ap.add_argument("--child-rss", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_rss:
        with tempfile.TemporaryDirectory() as tmpd:
            child_rss(Path(tmpd))
        return
    n, events, idle = (50, 40, 6.0) if args.quick else (300, 200, 60.0)
    pygame.font.init()
    print(f"pygame-ce {pygame.version.ver}, SDL {'.'.join(map(str, pygame.get_sdl_version()))}, "
          f"{os.cpu_count()} CPUs, SDL_VIDEODRIVER={os.environ.get('SDL_VIDEODRIVER')}")
    with tempfile.TemporaryDirectory() as tmpd:
        tmp = Path(tmpd)
        bench_render(n)
        bench_latency(events, tmp)
        bench_idle(idle, tmp)
    cur, peak = rss()
    print(f"resident memory: {cur:.0f} MiB now, {peak:.0f} MiB peak (whole bench process)")
    sys.stdout.flush()
    subprocess.run([sys.executable, __file__, "--child-rss"], check=False, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
