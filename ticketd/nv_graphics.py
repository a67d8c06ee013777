"""What this dispenser keeps in the printer's NV graphics memory, and when it writes there.

With ``[printer] nv_graphics = true`` the blocks every ticket shares (the centre's header, each
service's name, the priority boxes, the rule, the QR caption, the footer) are written once into
the printer's non-volatile graphics memory (``GS ( L`` fn 67) and each ticket prints them by
key code (fn 69, 11 bytes). NV memory wears out: Epson asks for fewer than 10 writes a day. So
a block is written only when its pixels (their hash) differ from what the record says the
printer holds, at most :data:`MAX_WRITES_PER_DAY` writes a day (a block over the limit prints
as raster until the next day), and the record lives in the state dir, so a restart writes
nothing. NV graphics, not download (RAM) graphics: they survive the printer's power cycle and
``ESC @`` (which begins every job; some references say it clears download graphics).

With ``[printer] nv_digits = true`` the glyphs of the big number (each digit and prefix letter at
each font size the number takes) are kept the same way, under key codes of their own (``Y!`` …),
written as a number needs them and counted in the same daily writes; a number prints from them
(in page mode) once all its glyphs are stored, as raster until then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from PIL import Image

from ticketd.escpos_job import PageBand, PlacedGlyph, StoredBand, TicketBlock, band_rows, nv_define

log = logging.getLogger(__name__)

MAX_WRITES_PER_DAY = 9  # Epson recommends fewer than 10 NV writes a day
KEY_PREFIX = 0x58  # kc1 = "X": our key codes are "X!" … "X~" (94 graphics)
GLYPH_KEY_PREFIX = 0x59  # kc1 = "Y": the number's glyphs, "Y!" … "Y~" (94: ten digits at a few sizes)
RECORD_VERSION = 1


@dataclass(frozen=True, slots=True)
class PendingWrite:
    """A block written by the job about to be sent; recorded once the job went through."""

    key: str
    key_code: bytes
    digest: str
    nbytes: int


@dataclass(frozen=True, slots=True)
class GraphicsPlan:
    """For one ticket: the NV writes to send first (usually none), the bands printed by key code."""

    upload: bytes
    stored: tuple[StoredBand, ...]
    pending: tuple[PendingWrite, ...]
    pages: tuple[PageBand, ...] = ()  # numbers printed from stored glyphs (nv_digits)


class NvGraphicsRecord:
    """The record of the printer's NV graphics (``path``: a JSON file in the state dir; ``None``: in memory).

    :param today: the local date as ``YYYY-MM-DD`` (the write limit counts per day).
    :param printer: which printer the record is about (backend, address, profile, width): a
        record of another printer is forgotten, so a printer put in its place gets the blocks.
    """

    def __init__(self, path: Path | None = None, *, today: Callable[[], str] = lambda: date.today().isoformat(),
                 max_writes_per_day: int = MAX_WRITES_PER_DAY, printer: str = "") -> None:
        self.path = path
        self.today = today
        self.max_writes_per_day = max_writes_per_day
        self.printer = printer
        self.graphics: dict[str, dict[str, object]] = {}
        self.writes_day, self.writes_today = "", 0
        self.total_writes = 0
        if path is not None and path.exists():
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            data = json.loads(path.read_text())
            if data.get("version") != RECORD_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            graphics = data["graphics"]
            if not isinstance(graphics, dict) or not all(
                    isinstance(e, dict) and isinstance(e.get("kc"), str) and len(e["kc"]) == 2
                    and isinstance(e.get("sha256"), str) for e in graphics.values()):
                raise ValueError("malformed graphics entries")
            self.graphics = dict(graphics)
            self.writes_day, self.writes_today = str(data["writes_day"]), int(data["writes_today"])
            self.total_writes = int(data.get("total_writes", 0))
            if str(data.get("printer", "")) != self.printer:
                log.info("NV graphics record %s is about printer %r, not %r: the blocks will be stored again",
                         path, data.get("printer"), self.printer)
                self.graphics, self.writes_day, self.writes_today = {}, "", 0
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # an unreadable record: every block is written again (once), never referred to blindly
            log.warning("NV graphics record %s unreadable (%s): the blocks will be stored again", path, exc)
            self.graphics = {}

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"version": RECORD_VERSION, "printer": self.printer, "graphics": self.graphics, "writes_day": self.writes_day,
                "writes_today": self.writes_today, "total_writes": self.total_writes}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, self.path)

    def key_code(self, key: str) -> bytes | None:
        """The key code the record gives ``key`` (``None``: not stored)."""
        entry = self.graphics.get(key)
        return str(entry["kc"]).encode("latin-1") if entry else None

    def _free_key_code(self, extra: set[bytes], prefix: int = KEY_PREFIX) -> bytes | None:
        used = {str(e["kc"]).encode("latin-1") for e in self.graphics.values()} | extra
        for kc2 in range(0x21, 0x7F):
            kc = bytes([prefix, kc2])
            if kc not in used:
                return kc
        return None

    def _writes_left(self) -> int:
        return self.max_writes_per_day - (self.writes_today if self.writes_day == self.today() else 0)

    def plan(self, image: Image.Image, blocks: tuple[TicketBlock, ...], *, glyphs: bool = False) -> GraphicsPlan:
        """Which of ``blocks`` print by key code, and the NV writes to send before the job
        (a block whose pixels differ from the stored ones, while today's writes last). With
        ``glyphs``, also the blocks that are glyphs side by side (the number) whose glyphs are all
        stored, or written by this job, after the shared blocks."""
        upload = bytearray()
        stored: list[StoredBand] = []
        pending: list[PendingWrite] = []
        left = self._writes_left()
        for block in blocks:
            if not block.shared or block.height <= 0 or block.top + block.height > image.height:
                continue
            rows, wb = band_rows(image, block.top, block.height)
            if not any(rows):
                continue  # a white block is cheaper as a feed
            digest = hashlib.sha256(wb.to_bytes(2, "little") + rows).hexdigest()
            entry = self.graphics.get(block.key)
            kc = self.key_code(block.key)
            if entry is not None and entry.get("sha256") == digest and kc is not None:
                stored.append(StoredBand(top=block.top, height=block.height, key_code=kc))
                continue
            if left <= 0:
                log.info("NV graphics: %s changed but today's %d writes are used: printed as raster",
                         block.key, self.max_writes_per_day)
                continue
            kc = kc or self._free_key_code({p.key_code for p in pending})
            if kc is None:
                continue
            define = nv_define(kc, wb, rows)
            upload += define
            left -= 1
            pending.append(PendingWrite(key=block.key, key_code=kc, digest=digest, nbytes=len(define)))
            stored.append(StoredBand(top=block.top, height=block.height, key_code=kc))
        pages: list[PageBand] = []
        for block in blocks if glyphs else ():
            page, writes = self._glyph_page(block, left, pending)
            for define, write in writes:
                upload += define
                pending.append(write)
                left -= 1
            if page is not None:
                pages.append(page)
        return GraphicsPlan(upload=bytes(upload), stored=tuple(stored), pending=tuple(pending), pages=tuple(pages))

    def _glyph_page(self, block: TicketBlock, left: int, pending: list[PendingWrite]
                    ) -> tuple[PageBand | None, list[tuple[bytes, PendingWrite]]]:
        """``block``'s glyphs as a page of stored glyphs (``None``: one of them is not stored and
        cannot be written today), and the writes of those not stored yet. The page runs from the
        glyphs' first inked line to their last."""
        spots = block.glyphs
        if not spots:
            return None, []
        top = min(g.top for g in spots)
        height = max(g.top + g.image.height for g in spots) - top
        writes: list[tuple[bytes, PendingWrite]] = []
        planned = {p.key: p for p in pending}
        placed: list[PlacedGlyph] = []
        complete = True
        for g in spots:
            rows, wb = band_rows(g.image, 0, g.image.height)
            digest = hashlib.sha256(b"glyph" + g.image.width.to_bytes(2, "little") + rows).hexdigest()
            entry, kc = self.graphics.get(g.key), self.key_code(g.key)
            if g.key in planned and planned[g.key].digest == digest:
                kc = planned[g.key].key_code
            elif entry is None or entry.get("sha256") != digest or kc is None:
                if left - len(writes) <= 0:
                    log.info("NV graphics: glyph %s not stored and today's %d writes are used: the number "
                             "prints as raster", g.key, self.max_writes_per_day)
                    complete = False
                    continue
                kc = kc or self._free_key_code({p.key_code for p in pending} | {w.key_code for _, w in writes},
                                               GLYPH_KEY_PREFIX)
                if kc is None:
                    complete = False
                    continue
                define = nv_define(kc, wb, rows, width_dots=g.image.width)
                write = PendingWrite(key=g.key, key_code=kc, digest=digest, nbytes=len(define))
                writes.append((define, write))
                planned[g.key] = write
            placed.append(PlacedGlyph(key_code=kc, x=g.left, bottom=g.top + g.image.height - top))
        page = PageBand(top=top, height=height, glyphs=tuple(placed)) if complete else None
        return page, writes

    def commit(self, pending: tuple[PendingWrite, ...]) -> None:
        """Record the writes of a job that went through (the printer now holds those blocks)."""
        if not pending:
            return
        today = self.today()
        if self.writes_day != today:
            self.writes_day, self.writes_today = today, 0
        for p in pending:
            self.graphics[p.key] = {"kc": p.key_code.decode("latin-1"), "sha256": p.digest, "bytes": p.nbytes}
            self.writes_today += 1
            self.total_writes += 1
            log.info("NV graphics: stored %s as %r (%d bytes; %d writes today)", p.key, p.key_code, p.nbytes,
                     self.writes_today)
        try:
            self._save()
        except OSError as exc:  # the ticket is printed; after a restart the blocks would be written again
            log.warning("NV graphics record %s not saved: %s", self.path, exc)

    def forget(self) -> None:
        """Forget what the printer holds (another printer was installed): blocks are stored again,
        and today's writes count from zero (they wear the new printer's memory)."""
        self.graphics = {}
        self.writes_day, self.writes_today = "", 0
        try:
            self._save()
        except OSError as exc:
            log.warning("NV graphics record %s not saved: %s", self.path, exc)
