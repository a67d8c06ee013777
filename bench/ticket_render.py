"""Ticket render time at 576 px and 384 px, job build time, and memory.

    .venv/bin/python bench/ticket_render.py [--count 300]

For each width, printed as median / p99 in ms:
- ``render``: a warm TicketRenderer (fonts, header, service blocks, footer cached), a new
  number, time and queue figures per ticket, the QR cached (guide URL, no number in it);
- ``render+qr``: the same with a QR that carries the number (a new QR per ticket);
- ``baseline``: a cold renderer per ticket (nothing cached), measured in the same run; the
  ratio says what the caches buy;
- ``job``: building the ESC/POS job for the rendered ticket, the old one (python-escpos
  ``Dummy``: INIT + one ``GS v 0`` raster of every line + cut) next to the new one
  (:mod:`ticketd.escpos_job`: white bands fed, ink bands cut at their ink);
- bytes per ticket, old job next to the new encodings, over the same tickets (median and
  largest), and the time those bytes take on the wire: serial 8N1 (10 bits a byte) at 9,600,
  19,200 and 115,200 baud, and USB full speed at its bulk-transfer ceiling (19 packets of 64
  bytes per 1 ms frame: 1.216 MB/s; a printer may take them slower). The print itself (about
  0.4 s for a 100 mm ticket) comes on top, overlapped with the transfer on a real printer;
- with ``half_res_number``: the same tickets rendered with the number in 2x2-dot cells (what a
  dispenser with that printer capability renders), the number sent as quadruple rasters;
- with ``nv_graphics`` (the blocks every ticket shares kept in the printer's NV graphics
  memory): the per-ticket job once the blocks are stored, and, apart, the one-time upload
  (the NV writes: how many graphics, how many bytes, how long on each link);
- with ``nv_digits`` as well: the same tickets (the renderer says where the number's glyphs are;
  it draws the same number), the number printed from its glyphs stored in NV memory, placed in
  page mode; the one-time upload then holds the glyphs too;
- where the bytes go, block by block (header, number, service name, time, people ahead,
  wait, QR, caption, footer, …; mean over the tickets), and which blocks are the same on
  every ticket or come from a small fixed set (shared: what NV graphics can keep).
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
from ticketd.escpos_decode import DecodedJob, apply_command, split_commands  # noqa: E402
from ticketd.escpos_job import JobOptions, TicketBlock, build_ticket_job  # noqa: E402
from ticketd.nv_graphics import NvGraphicsRecord  # noqa: E402
from ticketd.printer import FakePrinter  # noqa: E402
from ticketd.render import TicketRenderer, TicketView  # noqa: E402
from xephang.clock import VN_TZ  # noqa: E402
from xephang.settings import load_site  # noqa: E402

SITE_FILE = Path(__file__).resolve().parent.parent / "config" / "site.example.toml"
ENCODINGS = {
    "new (default: feed, raster QR)": JobOptions(),
    "new + native_qr": JobOptions(native_qr=True),
    "new + native_qr + center_bands": JobOptions(native_qr=True, center_bands=True),
    "new + nv_graphics": JobOptions(nv_graphics=True),
    "new + native_qr + center + nv_graphics": JobOptions(native_qr=True, center_bands=True, nv_graphics=True),
    # the big number drawn in 2x2-dot cells and sent as quadruple rasters (GS v 0 m = 3)
    "new + half_res_number": JobOptions(half_res_number=True),
    "new + native_qr + center + half_res_number": JobOptions(native_qr=True, center_bands=True, half_res_number=True),
    "new + native_qr + center + nv_graphics + half_res_number": JobOptions(
        native_qr=True, center_bands=True, nv_graphics=True, half_res_number=True),
    # the number from its glyphs kept in NV memory, placed side by side in page mode (same paper)
    "new + nv_graphics + nv_digits": JobOptions(nv_graphics=True, nv_digits=True),
    "new + native_qr + center + nv_graphics + nv_digits": JobOptions(
        native_qr=True, center_bands=True, nv_graphics=True, nv_digits=True),
}
NAME_W = max(len(k) for k in ENCODINGS)
LINKS = {"9600 Bd": 9600 / 10, "19200 Bd": 19200 / 10, "115200 Bd": 115200 / 10, "USB FS": 1_216_000}


def old_job(image) -> bytes:  # noqa: ANN001
    """The job before issue 20, built as it was: python-escpos' Dummy, one raster, cut."""
    from escpos.printer import Dummy

    job = Dummy(profile="TM-T20II" if image.width == 576 else "RP-F10-58mm")
    job.hw("INIT")
    job.image(image, impl="bitImageRaster")
    job.cut()
    return job.output


def wire(nbytes: float) -> str:
    return "  ".join(f"{nbytes / rate:7.3f} s" for rate in LINKS.values())


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:7.2f} ms   p99 {pct(xs, 99) * 1000:7.2f} ms"


def nv_jobs(rendered, opts: JobOptions) -> tuple[list[int], int, int]:  # noqa: ANN001
    """Per-ticket job bytes once the shared blocks are stored, the one-time upload bytes and its NV writes.

    The upload is counted over all the tickets' shared blocks as if written at once; ticketd
    writes at most 9 a day (the rest print as raster until the next day)."""
    record = NvGraphicsRecord(max_writes_per_day=1000)
    upload, writes = 0, 0

    def kept(blocks: tuple[TicketBlock, ...]) -> tuple[TicketBlock, ...]:  # as Printer.plan_graphics picks them
        return tuple(b for b in blocks if b.shared or (opts.nv_digits and b.glyphs))

    for img, _qr, blocks in rendered:
        plan = record.plan(img, kept(blocks), glyphs=opts.nv_digits)
        upload += len(plan.upload)
        writes += len(plan.pending)
        record.commit(plan.pending)
    sizes = []
    for img, qr, blocks in rendered:
        plan = record.plan(img, kept(blocks), glyphs=opts.nv_digits)
        assert not plan.pending and len(plan.pages) == (1 if opts.nv_digits else 0)
        sizes.append(len(build_ticket_job(img, qr=qr, options=opts, stored=plan.stored, blocks=blocks,
                                          pages=plan.pages)))
    return sizes, upload, writes


def bytes_by_block(job: bytes, blocks: tuple[TicketBlock, ...], width: int) -> dict[str, int]:
    """The job's bytes by the block whose dot lines they print (white feeds and set-up apart)."""
    out: dict[str, int] = {}
    dj = DecodedJob(paper_px=width)
    cmds, _ = split_commands(job)
    for cmd in cmds:
        y = dj.y
        name = "set-up, cut"
        if cmd[:2] == b"\x1bJ":
            name = "white (ESC J feeds)"
        elif (cmd[:2] == b"\x1dv" or cmd[:3] in (b"\x1d(k", b"\x1d(L") or dj.page is not None
              or cmd in (b"\x1bL", b"\x1dP\xcb\xcb")):  # page mode (and the GS P before it): the block it prints
            name = next((b.key for b in blocks if b.top <= y < b.top + b.height), "white (narrow rasters)")
            if cmd[:3] == b"\x1d(k":
                name = "qr"
        apply_command(dj, cmd)
        out[name] = out.get(name, 0) + len(cmd)
    return out


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
        rendered = [r.render_with_qr(v) for v in vs[:100]]
        imgs = [img for img, _ in rendered]
        job_old = timed(old_job, imgs[:50])
        job = timed(lambda it, p=printer: p.build(it[0], qr=it[1]), rendered[:50])
        h = imgs[0].height
        print(f"\n{width} px (ticket {width}x{h})")
        print(f"  render       {fmt(warm)}")
        print(f"  render+qr    {fmt(warm_qr)}")
        print(f"  baseline     {fmt(cold)}   (a new renderer per ticket: no block cache; fonts stay loaded)")
        print(f"  ratio        cached/cold median = {statistics.median(warm) / statistics.median(cold):.2f}")
        print(f"  job build    old {fmt(job_old)}")
        print(f"               new {fmt(job)}")
        sizes = {"old (one raster, python-escpos)": [len(old_job(img)) for img in imgs]}
        printed = [r.render_for_print(v) for v in vs[:100]]
        rh = TicketRenderer(site, layout, half_res_number=True)  # what a half_res_number printer's dispenser renders
        printed_half = [rh.render_for_print(v) for v in vs[:100]]
        rd = TicketRenderer(site, layout, nv_digits=True)  # what an nv_digits printer's dispenser renders
        printed_digits = [rd.render_for_print(v) for v in vs[:100]]
        assert all(a[0].tobytes() == b[0].tobytes() for a, b in zip(printed, printed_digits, strict=True))
        uploads: dict[str, tuple[int, int]] = {}
        for name, opts in ENCODINGS.items():
            tickets = printed_half if opts.half_res_number else printed_digits if opts.nv_digits else printed
            if opts.nv_graphics:
                sizes[name], *up = nv_jobs(tickets, opts)
                uploads[name] = (up[0], up[1])
            else:
                sizes[name] = [len(build_ticket_job(img, qr=qr, options=opts, blocks=blocks))
                               for img, qr, blocks in tickets]
        print(f"  bytes per ticket ({len(imgs)} tickets, 1 in 7 priority) and time on the wire (median ticket)")
        print(f"    {'job':{NAME_W}s} {'median':>7s} {'largest':>8s}   " + "  ".join(f"{k:>9s}" for k in LINKS))
        for name, xs in sizes.items():
            med = statistics.median(xs)
            print(f"    {name:{NAME_W}s} {med:7.0f} {max(xs):8d}   {wire(med)}")
            if name in uploads:
                nbytes, writes = uploads[name]
                print(f"    {'  + once: ' + str(writes) + ' NV graphics written':{NAME_W}s} {nbytes:7d} {'':8s}   "
                      f"{wire(nbytes)}")
        print("    (NV graphics: the shared blocks are written into the printer once, and again only when they"
              " change, at most 9 a day; the ticket rows are the tickets after that)")
        opts = ENCODINGS["new + native_qr + center_bands"]
        by_block: dict[str, list[int]] = {}
        shared: dict[str, bool] = {}
        for img, qr, blocks in printed:
            for b in blocks:
                shared[b.key] = b.shared
            for k, n in bytes_by_block(build_ticket_job(img, qr=qr, options=opts), blocks, width).items():
                by_block.setdefault(k, []).append(n)
        total = statistics.mean(sizes["new + native_qr + center_bands"])
        half_number = [bytes_by_block(build_ticket_job(img, qr=qr, options=ENCODINGS[
            "new + native_qr + center + half_res_number"], blocks=blocks), blocks, width).get("number", 0)
            for img, qr, blocks in printed_half]
        digits_opts = ENCODINGS["new + native_qr + center + nv_graphics + nv_digits"]
        record = NvGraphicsRecord(max_writes_per_day=100_000)
        digits_number = []
        for img, qr, blocks in printed_digits:
            plan = record.plan(img, tuple(b for b in blocks if b.glyphs), glyphs=True)
            record.commit(plan.pending)
            job = build_ticket_job(img, qr=qr, options=digits_opts, stored=plan.stored, blocks=blocks, pages=plan.pages)
            digits_number.append(bytes_by_block(job, blocks, width).get("number", 0))
        print(f"  where the bytes go, native_qr + center_bands (mean over {len(printed)} tickets; a block on "
              "some tickets only: mean where printed, and its share of all tickets)")
        print(f"    {'block':24s} {'bytes':>6s} {'on':>5s} {'share':>6s}  same on every ticket?")
        for k, xs in sorted(by_block.items(), key=lambda kv: -sum(kv[1])):
            kind = ("per ticket" if not shared.get(k, True) or k == "qr"
                    else "—" if k.startswith(("white", "set-up")) else
                    "one of a few" if ":" in k else "every ticket")
            print(f"    {k:24s} {statistics.mean(xs):6.0f} {len(xs):4d}x {sum(xs) / len(printed) / total:6.1%}  {kind}")
        print(f"    {'number, half_res_number':24s} {statistics.mean(half_number):6.0f} {len(half_number):4d}x "
              f"{'':6s}  per ticket (2x2-dot cells as quadruple rasters, GS v 0 m = 3)")
        print(f"    {'number, nv_digits':24s} {statistics.mean(digits_number):6.0f} {len(digits_number):4d}x "
              f"{'':6s}  per ticket (stored glyphs placed in page mode; the glyphs written once)")
    rss_now = 0
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss_now = int(line.split()[1])
    print(f"\nmemory: VmRSS {rss_now / 1024:.1f} MiB, max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
