"""Announcer latency, compose time and memory.

    .venv/bin/python bench/announce_latency.py [--count 200]

1. compose: one announcement (chime + phrase × 2) from the default espeak-ng pack, median/p99,
   against a baseline measured in the same run: joining the clip bytes with ``b"".join``
   (the research prototype, which does not know the length up front).
2. latency: a hub client publishes ``event/ticket/called`` on a real mosquitto (loopback);
   announcerd (in this process, SDL ``dummy`` audio driver, device kept open as on a Pi)
   receives, schedules, composes and hands the buffer to the mixer.  Printed: publish →
   ``Channel.play()`` returned, and announcerd's own event handled → play; p50/p99.  SDL then
   pulls the first samples within one device buffer (``buffer_samples`` / rate, printed).
   Each announcement is stopped right after it starts so the next measure is not queued.
3. sim mode: the same with the ``disk`` driver (opened per announcement) for comparison.
4. resident memory (max RSS) of this process after it all.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

from announcerd.main import Announcer, AnnouncerConfig, AnnouncerSettings  # noqa: E402
from xephang.bus import Bus  # noqa: E402
from xephang.contract import Reply, Resync, TicketEvent, TicketInfo, Topics, decode  # noqa: E402
from xephang.settings import BrokerSettings  # noqa: E402
from xephang_ops.mosquitto import Mosquitto, find_mosquitto  # noqa: E402
from xephang_voice.voice_build import build_default_pack  # noqa: E402
from xephang_voice.voicepack import (  # noqa: E402
    Composer,  # noqa: E402
    load_pack,
    phrase_parts,
)

SITE = "bench"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_compose(pack_dir: Path, count: int) -> None:
    pack = load_pack(pack_dir)
    composer = Composer(pack, repeats=2)
    rng = random.Random(1)
    calls = [(rng.randint(1, 9999), rng.randint(1, 12)) for _ in range(count)]
    ours, base = [], []
    for n, c in calls:
        parts = phrase_parts("vi", number=n, counter=c)
        t0 = time.perf_counter()
        ann = composer.compose(parts)
        ours.append((time.perf_counter() - t0) * 1000)
        gap_w = bytes(2 * int(pack.sample_rate * 0.06))
        t0 = time.perf_counter()
        joined = b"".join([composer.chime] + [pack.pcm(x) + gap_w for _ in range(2) for part in parts for x in part])
        base.append((time.perf_counter() - t0) * 1000)
        assert len(joined) > 0 and ann.n_samples > 0
    print(f"compose (chime + phrase x2, {count} random calls, {pack.sample_rate} Hz, mean length "
          f"{statistics.mean(len(composer.compose(phrase_parts('vi', number=n, counter=c)).pcm) for n, c in calls[:20]) / 2 / pack.sample_rate:.1f} s):")
    print(f"  ours (planned, one buffer): median {statistics.median(ours):.3f} ms  p99 {pct(ours, 99):.3f} ms")
    print(f"  baseline b''.join          : median {statistics.median(base):.3f} ms  p99 {pct(base, 99):.3f} ms")
    print(f"  ratio ours/baseline (median): {statistics.median(ours) / statistics.median(base):.2f}")


def ticket_event(rev: int, number: int, counter: int, at: float) -> TicketEvent:
    info = TicketInfo(id=rev, day="2026-01-01", number=number, display=f"{number:04d}", service="ho-tich",
                      issued_at=at - 60, state="called", counter=counter, called_at=at)
    return TicketEvent(event_id=uuid.uuid4().hex, rev=rev, at=at, kind="called", ticket=info, counter=counter)


def answer_resync(hub: Bus) -> None:
    """The hub's answer the announcer waits for on connect: its clock (``hall.at``)."""

    def on_resync(msg) -> None:
        req = decode(Resync, msg.payload)
        hub.publish(req.reply_to, Reply(request_id=req.request_id, action="resync", status="ok",
                                        data={"hall": {"at": time.time()}}))

    hub.subscribe(f"{hub.topics.root}/req/hub/resync/+", on_resync)


def bench_latency(pack_dir: Path, count: int, port: int, tmp: Path, *, sim: bool) -> None:
    import pygame

    broker = BrokerSettings(host="127.0.0.1", port=port)
    cfg = AnnouncerConfig(voice_pack=pack_dir, audio_driver=None if sim else "dummy")
    settings = AnnouncerSettings(site=SITE, node="announcer-hall", state_dir=tmp / ("st-sim" if sim else "st"),
                                 sim=sim, sim_out=tmp / "sim", broker=broker, announcer=cfg)
    d = Announcer(settings)
    hub = Bus(site=SITE, node="hub", role="hub", broker=broker)
    answer_resync(hub)
    d.start()
    hub.start()
    end = time.monotonic() + 10
    while d.scheduler.hub.offset is None and time.monotonic() < end:  # connected, hub clock learned
        d.step(timeout=0.05)
        hub.process(timeout=0)
    assert d.player is not None
    started: list[float] = []
    real_start = d.player.start

    def timed_start(*a, **kw):  # the moment Channel.play() returned
        r = real_start(*a, **kw)
        started.append(time.monotonic())
        if not sim:
            pygame.mixer.stop()  # don't wait seconds of real-time audio before the next measure
        return r

    d.player.start = timed_start  # type: ignore[method-assign]
    topic = Topics(SITE).event("ticket", "called")
    e2e: list[float] = []
    rng = random.Random(2)
    for i in range(count):
        t_pub = time.monotonic()
        hub.publish(topic, ticket_event(i + 1, rng.randint(1, 9999), rng.randint(1, 12), time.time()))
        deadline = t_pub + 5
        while len(started) <= i and time.monotonic() < deadline:
            d.step(timeout=0.05)
        if len(started) <= i:
            raise SystemExit(f"announcement {i} never started")
        e2e.append(started[i] - t_pub)
        while d.player.state == "playing" and time.monotonic() < deadline + 5:
            d.step(timeout=0.01)
    own = list(d.latencies)
    buf_ms = d.player.buffer_samples / d.player.sample_rate * 1000
    mode = "sim (disk driver, opened per announcement)" if sim else "device kept open (SDL dummy driver)"
    print(f"latency, {mode}, {count} calls over mosquitto on loopback:")
    print(f"  publish -> play()      : p50 {pct(e2e, 50) * 1000:.1f} ms  p99 {pct(e2e, 99) * 1000:.1f} ms")
    print(f"  event handled -> play(): p50 {pct(own, 50) * 1000:.1f} ms  p99 {pct(own, 99) * 1000:.1f} ms")
    print(f"  compose inside daemon  : p50 {pct(list(d.compose_ms), 50):.2f} ms  p99 {pct(list(d.compose_ms), 99):.2f} ms")
    print(f"  + up to one device buffer before the first sample leaves SDL: {buf_ms:.0f} ms")
    d.teardown()
    d.bus.stop()
    hub.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--pack", help="voice pack (default: build the espeak-ng pack in a temp dir)")
    args = ap.parse_args(argv)
    rss0 = rss_mb()
    with tempfile.TemporaryDirectory(prefix="xephang-lat-") as tmp_s:
        tmp = Path(tmp_s)
        pack_dir = Path(args.pack) if args.pack else build_default_pack(tmp / "pack")
        bench_compose(pack_dir, args.count)
        if not find_mosquitto():
            print("latency: NOT MEASURED — mosquitto is not installed")
        else:
            with Mosquitto(tmp / "broker") as broker:
                bench_latency(pack_dir, args.count, broker.port, tmp, sim=False)
                bench_latency(pack_dir, max(20, args.count // 4), broker.port, tmp, sim=True)
    print(f"max RSS of this process: {rss_mb():.1f} MB (after imports only: {rss0:.1f} MB; "
          "includes the bench's hub client)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
