"""A thermal printer at the other end of a serial line, for tests: a pseudo-terminal.

``TtyPrinter`` is the printer's side: a thread reads the byte stream as it comes, command by
command (``ticketd.escpos_decode.split_commands``), "prints" rasters dot line by dot line
and feeds paper (``ESC J``, a printer-drawn QR) from a roll of ``paper_lines`` dot lines,
``paper_px`` dots wide, and answers the two paper status queries with the
bytes an Epson-compatible printer sends:

- ``DLE EOT 4`` (real-time: answered at once, even while the printer is stopped):
  ``0x12`` ok, ``+0x0C`` near end, ``+0x60`` paper end;
- ``GS r 1`` (processed in order, after the data before it is printed): ``0x00`` ok,
  ``0x03`` near end, ``0x0C`` paper end. A printer stopped by a paper end does not process
  it (no answer), as real ones do.

``TtyDevice`` is the host's side: a python-escpos device (``_raw`` / ``_read``) on the tty,
like ``escpos.printer.Serial`` on ``/dev/ttyUSB0`` (which needs pyserial, not installed in
the base dependencies), so ``EscposPrinter``'s real code path runs against real bytes.
"""

from __future__ import annotations

import os
import select
import threading
import tty

from escpos.escpos import Escpos

from ticketd.escpos_decode import DecodedJob, apply_command, split_commands


class TtyPrinter:
    """The printer's side of a pty. ``paper_lines=None``: an endless roll."""

    def __init__(self, *, paper_lines: int | None = None, near_end_lines: int = 0, paper_px: int = 576,
                 answers_sensor_query: bool = True, answers_realtime: bool = True) -> None:
        self.master, self._slave = os.openpty()  # the slave stays open: without it the master reads EIO
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)  # the host side opens it by name, as it would /dev/ttyUSB0
        self.paper_lines = paper_lines
        self.near_end_lines = near_end_lines
        self.answers_sensor_query = answers_sensor_query
        self.answers_realtime = answers_realtime
        self.paper = DecodedJob(paper_px=paper_px)  # what came out (cut at the paper end)
        self.lines_printed = 0
        self.queries: list[bytes] = []
        self.received = bytearray()
        self._buf = b""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tty-printer", daemon=True)
        self._thread.start()

    # --- the roll ---
    @property
    def paper_end(self) -> bool:
        return self.paper_lines is not None and self.paper_lines <= 0

    @property
    def near_end(self) -> bool:
        return self.paper_lines is not None and self.paper_lines <= self.near_end_lines

    def load_roll(self, lines: int | None = None) -> None:
        with self._lock:
            self.paper_lines = lines

    # --- firmware ---
    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self.master], [], [], 0.05)
                if not ready:
                    continue
                data = os.read(self.master, 65536)
            except OSError:
                return
            with self._lock:
                self.received += data
                self._buf += data
                cmds, used = split_commands(self._buf)
                self._buf = self._buf[used:]
                for cmd in cmds:
                    self._process(cmd)

    def _process(self, cmd: bytes) -> None:
        if cmd[:2] == b"\x10\x04":  # real-time: answered whatever the printer is doing
            self.queries.append(cmd)
            if self.answers_realtime and cmd[2] == 4:
                b = 0x12 | (0x0C if self.near_end else 0) | (0x60 if self.paper_end else 0)
                os.write(self.master, bytes([b]))
            return
        if cmd[:2] == b"\x1dr":
            self.queries.append(cmd)
            if self.paper_end:
                return  # stopped by the paper end: processes nothing in order, answers nothing
            if self.answers_sensor_query and cmd[2] in (1, 49):
                b = (0x03 if self.near_end else 0) | (0x0C if self.paper_end else 0)
                os.write(self.master, bytes([b]))
            return
        if self.paper_end:
            return  # stopped: waits for a roll
        if cmd[:2] == b"\x1dv":
            h = cmd[6] | cmd[7] << 8
            if self.paper_lines is not None and h > self.paper_lines:
                row = (cmd[4] | cmd[5] << 8)
                kept = self.paper_lines
                cmd = cmd[:6] + bytes([kept & 0xFF, kept >> 8]) + cmd[8:8 + row * kept]
                h = kept
            if self.paper_lines is not None:
                self.paper_lines -= h
            self.lines_printed += h
        before = self.paper.y
        apply_command(self.paper, cmd)
        moved = self.paper.y - before
        if moved and cmd[:2] != b"\x1dv":  # a feed or a printer-drawn QR: paper from the same roll
            if self.paper_lines is not None:
                kept = min(moved, self.paper_lines)
                self.paper.y -= moved - kept  # the roll ended during the feed
                self.paper_lines -= kept
                moved = kept
            self.lines_printed += moved

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)
        os.close(self._slave)


class TtyDevice(Escpos):
    """The host's side: a python-escpos device on a tty path (a serial printer)."""

    def __init__(self, path: str, *, timeout: float = 0.3, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.timeout = timeout
        self._device: int | bool | None = False

    def open(self, raise_not_found: bool = True) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        self.device = fd

    def _raw(self, msg: bytes) -> None:
        fd = self.device
        view = memoryview(msg)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def _read(self) -> bytes:
        fd = self.device
        ready, _, _ = select.select([fd], [], [], self.timeout)
        return os.read(fd, 16) if ready else b""  # a serial read that timed out returns nothing

    def close(self) -> None:
        if type(self._device) is int:  # an open fd (not False/None/True)
            os.close(self._device)
        self._device = False
