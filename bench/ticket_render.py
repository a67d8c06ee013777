"""Ticket render time at 576 px and 384 px, job build time, and memory.

    .venv/bin/python bench/ticket_render.py [--count 300]

For each width, printed as median / p99 in ms:
- ``render``: a warm TicketRenderer (fonts, header, service blocks, footer cached), a new
  number, time and queue figures per ticket, the QR cached (guide URL, no number in it);
- ``render+qr``: the same with a QR that carries the number (a new QR per ticket);
- ``baseline``: a cold renderer per ticket (nothing cached), measured in the same run; the
  ratio says what the caches buy;
- ``job``: building the ESC/POS job (INIT + GS v 0 raster + cut) for the rendered ticket.
Then the resident memory of this process (VmRSS now, and max RSS).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ticketd.config import TicketLayout  # noqa: E402
from ticketd.printer import FakePrinter  # noqa: E402
from ticketd.render import TicketRenderer, TicketView  # noqa: E402
from xephang.clock import VN_TZ  # noqa: E402
from xephang.settings import load_site  # noqa: E402

SITE_FILE = Path(__file__).resolve().parent.parent / "config" / "site.example.toml"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:7.2f} ms   p99 {pct(xs, 99) * 1000:7.2f} ms"


def views(n: int) -> list[TicketView]:
    services = ["ho-tich", "dat-dai", "chung-thuc", "van-hoa-xa-hoi"]
    base = {"ho-tich": 1001, "dat-dai": 2001, "chung-thuc": 3001, "van-hoa-xa-hoi": 4001}
    out = []
    for i in range(n):
        s = services[i % 4]
        out.append(TicketView(number=base[s] + i // 4, service_id=s,
                              issued_at=datetime(2026, 11, 23, 8, i % 60, tzinfo=VN_TZ),
                              priority=i % 7 == 0, priority_group="cao-tuoi" if i % 7 == 0 else None,
                              people_ahead=i % 13, est_wait_min=(i % 13) * 6.5))
    return out


def timed(fn, items) -> list[float]:  # noqa: ANN001
    out = []
    for it in items:
        t = time.perf_counter()
        fn(it)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=300)
    args = ap.parse_args()
    site = load_site(SITE_FILE)
    vs = views(args.count)
    print(f"ticket render, {args.count} tickets per figure")
    for width in (576, 384):
        layout = TicketLayout(width_px=width)
        r = TicketRenderer(site, layout)
        r.render(vs[0])  # warm: the caches a running dispenser has after its first tickets
        for v in vs[:8]:
            r.render(v)
        warm = timed(r.render, vs)
        rq = TicketRenderer(site, TicketLayout(width_px=width, qr_url="http://xephang.local/q/{site}/{service}/{number}"))
        rq.render(vs[0])
        warm_qr = timed(rq.render, vs)
        cold = timed(lambda v, lay=layout: TicketRenderer(site, lay).render(v), vs[: max(20, args.count // 10)])
        printer = FakePrinter(width_px=width)
        imgs = [r.render(v) for v in vs[:50]]
        job = timed(printer.build, imgs)
        h = imgs[0].height
        print(f"\n{width} px (ticket {width}x{h}, job {len(printer.build(imgs[0]))} bytes)")
        print(f"  render       {fmt(warm)}")
        print(f"  render+qr    {fmt(warm_qr)}")
        print(f"  baseline     {fmt(cold)}   (a new renderer per ticket: no block cache; fonts stay loaded)")
        print(f"  ratio        cached/cold median = {statistics.median(warm) / statistics.median(cold):.2f}")
        print(f"  job build    {fmt(job)}")
    rss_now = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_now = int(line.split()[1])
    print(f"\nmemory: VmRSS {rss_now / 1024:.1f} MiB, max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
