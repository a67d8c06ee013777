"""The printer seam: real ESC/POS backends, a fake that keeps the bytes, a sim that writes files.

Every backend prints the same job, built once in memory by :mod:`ticketd.escpos_job`
(``ESC @`` init, the ticket's ink bands as ``GS v 0`` rasters, white bands as paper feed,
the QR code drawn by the printer where it can, feed + cut) and handed to the device in
**one write**: tests get golden bytes, a retry resends the same job, and the device I/O is
one call. python-escpos is only imported for a real device (``Usb``, ``Serial``, …).

Two python-escpos traps handled here (see the research notes):

- profiles are shared between instances: we never write into ``profile.profile_data``;
  the width comes from choosing a profile that has it (``PrinterConfig.profile_for``);
- ``paper_status()`` answers 2 ("ok") when the printer says nothing. We read the status
  byte ourselves and call silence :attr:`PrinterState.UNKNOWN`, never OK.

A roll that runs out mid-ticket usually still takes the whole write (the printer buffers
it), so a real printer that can answer is asked again **after** each job: ``GS r 1``
(answered only once the data before it has been printed) and, if that gets no answer (a
printer stopped by a paper end does not process it), the real-time ``DLE EOT 4``. Paper end
then means the ticket did not come out whole: :class:`PaperOut`, and the daemon voids it.
Silence stays *unknown*: the ticket counts as printed, the state is not called ok.

Errors are rooted in :class:`PrinterError` with a builtin parent each, and carry the
alert id the daemon raises (``paper-out``, ``printer-offline``, ``printer-error``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from ticketd.config import PrinterConfig, profile_width
from ticketd.escpos_decode import decode_job
from ticketd.escpos_job import JobOptions, PageBand, QrSpot, StoredBand, TicketBlock, build_ticket_job
from ticketd.nv_graphics import GraphicsPlan, NvGraphicsRecord

if TYPE_CHECKING:
    from escpos.escpos import Escpos

log = logging.getLogger(__name__)

RT_STATUS_PAPER = b"\x10\x04\x04"  # DLE EOT 4: paper roll sensor status (real-time)
PAPER_SENSOR_STATUS = b"\x1dr\x01"  # GS r 1: paper sensor status, after the data before it


class PrinterError(Exception):
    """Root of the printer errors; ``code`` is the alert id to raise."""

    code = "printer-error"


class PaperOut(PrinterError, RuntimeError):
    """No paper: nothing (more) can be printed until someone loads a roll."""

    code = "paper-out"


class PrinterOffline(PrinterError, ConnectionError):
    """The printer cannot be reached (unplugged, powered off, network down)."""

    code = "printer-offline"


class PrintFailed(PrinterError, OSError):
    """The job broke off part-way for another reason (cover open, cutter jam, I/O error)."""

    code = "printer-error"


class PrinterConfigError(PrinterError, ValueError):
    """The printer settings cannot work (a permanent, local-config error)."""

    code = "printer-config"


class PrinterState(StrEnum):
    """What the printer says about itself before a ticket is issued."""

    OK = "ok"
    PAPER_LOW = "paper-low"
    PAPER_OUT = "paper-out"
    OFFLINE = "offline"
    UNKNOWN = "unknown"  # a printer that cannot or does not answer: issue, but do not claim "ok"

    @property
    def can_issue(self) -> bool:
        """Whether a ticket should be issued now (paper out or offline: no)."""
        return self not in (PrinterState.PAPER_OUT, PrinterState.OFFLINE)


def paper_state_from_byte(status: bytes) -> PrinterState:
    """Interpret a DLE EOT 4 answer; empty or malformed → UNKNOWN (unlike ``paper_status()``).

    Of several bytes (a late answer to an earlier query may come first) the last one that
    has the shape of a DLE EOT 4 answer counts."""
    for b in reversed(status):
        if b & 0x93 != 0x12:  # fixed bits of the answer: 0 x x 1 x x 1 0
            continue
        if b & 0x60:
            return PrinterState.PAPER_OUT
        if b & 0x0C:
            return PrinterState.PAPER_LOW
        return PrinterState.OK
    return PrinterState.UNKNOWN


def paper_state_from_sensor_byte(status: bytes) -> PrinterState:
    """Interpret a GS r 1 answer (bits 0-1 near end, 2-3 paper end, 4 and 7 always 0);
    empty or malformed → UNKNOWN. A DLE EOT answer (bit 4 set) is never taken for one."""
    for b in reversed(status):
        if b & 0x90:
            continue
        if b & 0x0C:
            return PrinterState.PAPER_OUT
        if b & 0x03:
            return PrinterState.PAPER_LOW
        return PrinterState.OK
    return PrinterState.UNKNOWN


class Printer(ABC):
    """A ticket printer. Subclasses implement :meth:`status` and :meth:`send`.

    :param width_px: dots per line the tickets are rendered at (576 / 384).
    :param profile: python-escpos profile: its width is checked against ``width_px``, a real
        device is opened with it (jobs are built without python-escpos).
    :param cut: "full" or "part" (when ``options`` is not given).
    :param options: how jobs are encoded (white bands, raster height, native QR, NV graphics, …).
    :param nv_record: what the printer holds in NV graphics memory (``options.nv_graphics``); by
        default a record in memory only (it is written again after a restart).
    """

    kind = "abstract"

    def __init__(self, *, width_px: int = 576, profile: str = "", cut: str = "full",
                 options: JobOptions | None = None, nv_record: NvGraphicsRecord | None = None) -> None:
        self.width_px = width_px
        self.profile = profile or PrinterConfig().profile_for(width_px)
        self.options = options or JobOptions(cut="part" if cut == "part" else "full")
        self.cut = self.options.cut
        self.nv_record = (nv_record or NvGraphicsRecord()) if self.options.nv_graphics else None
        self.printed = 0
        self.last_error = ""
        # what the printer said about its paper right after the last job (UNKNOWN: it did not say)
        self.last_job_state = PrinterState.UNKNOWN
        width = profile_width(self.profile)
        if width is not None and width < width_px:
            raise PrinterConfigError(f"profile {self.profile!r} is {width} px wide, tickets are {width_px} px")

    @abstractmethod
    def status(self) -> PrinterState:
        """Ask the printer (never raises; silence is UNKNOWN)."""

    @abstractmethod
    def send(self, job: bytes, *, label: str = "") -> None:
        """Hand ``job`` to the device in one write; raise a :class:`PrinterError` on failure."""

    def build(self, image: Image.Image, *, qr: QrSpot | None = None, stored: tuple[StoredBand, ...] = (),
              blocks: tuple[TicketBlock, ...] = (), pages: tuple[PageBand, ...] = ()) -> bytes:
        """The job bytes for ``image`` (``qr``: where its QR code is, for a printer that draws it;
        ``stored``: bands the printer holds as NV graphics; ``pages``: bands printed from stored glyphs;
        ``blocks``: where the ticket's blocks are, those drawn in 2 x 2-dot cells go as quadruple
        rasters with ``half_res_number``)."""
        if image.width > self.width_px:
            raise PrinterConfigError(f"image is {image.width} px wide, printer takes {self.width_px}")
        return build_ticket_job(image, qr=qr, options=self.options, stored=stored, blocks=blocks, pages=pages)

    def plan_graphics(self, image: Image.Image, blocks: tuple[TicketBlock, ...]) -> GraphicsPlan:
        """The NV writes to send before ``image``'s job, the bands it prints by key code and, with
        ``nv_digits``, the numbers it prints from stored glyphs."""
        digits = self.options.nv_digits
        kept = tuple(b for b in blocks if b.shared or (digits and b.glyphs))
        if self.nv_record is None or not kept:
            return GraphicsPlan(upload=b"", stored=(), pending=())
        return self.nv_record.plan(image, kept, glyphs=digits)

    def print_image(self, image: Image.Image, *, label: str = "", qr: QrSpot | None = None,
                    blocks: tuple[TicketBlock, ...] = ()) -> int:
        """Build and send one ticket; return the bytes sent. Counts successes, keeps the last error.

        ``blocks``: where the ticket's blocks are; with ``nv_graphics`` those every ticket shares
        print from the printer's memory, written first (in the same write) when they changed."""
        plan = self.plan_graphics(image, blocks)
        job = plan.upload + self.build(image, qr=qr, stored=plan.stored, blocks=blocks, pages=plan.pages)
        try:
            self.send(job, label=label)
        except PrinterError as exc:
            self.last_error = f"{exc.code}: {exc}"
            log.warning("print %s failed: %s", label or "job", self.last_error)
            raise
        if self.nv_record is not None:
            self.nv_record.commit(plan.pending)
        self.printed += 1
        return len(job)

    def close(self) -> None:  # noqa: B027 - optional hook: most printers hold nothing
        """Release the device."""


class EscposPrinter(Printer):
    """A real printer behind a python-escpos device (``Usb``, ``Serial``, ``Network``, ``File``).

    The device opens lazily on first use; after a failure it is closed and reopened on the
    next job, so a replugged printer comes back without restarting the daemon.
    """

    kind = "escpos"

    def __init__(self, device: Escpos, *, width_px: int = 576, profile: str = "", cut: str = "full",
                 options: JobOptions | None = None, nv_record: NvGraphicsRecord | None = None) -> None:
        super().__init__(width_px=width_px, profile=profile, cut=cut, options=options, nv_record=nv_record)
        self.device = device
        self._lock = threading.Lock()
        self._silent_until = 0.0  # a printer that timed out is not asked again for a while
        self._no_sensor_query = False  # True once the printer showed it ignores GS r

    SILENT_RETRY_S = 60.0

    @classmethod
    def from_config(cls, cfg: PrinterConfig, *, width_px: int, nv_record: NvGraphicsRecord | None = None) -> EscposPrinter:
        """Build the python-escpos device named by ``cfg.backend``."""
        profile = cfg.profile_for(width_px)
        if cfg.backend == "usb":
            from escpos.printer import Usb

            dev: Escpos = Usb(cfg.usb_vendor, cfg.usb_product, timeout=int(cfg.timeout_s * 1000), profile=profile)
        elif cfg.backend == "serial":
            dev = _serial_device(cfg, profile)
        elif cfg.backend == "network":
            from escpos.printer import Network

            dev = Network(cfg.host, port=cfg.port, timeout=cfg.timeout_s, profile=profile)
        elif cfg.backend == "file":
            from escpos.printer import File

            dev = File(cfg.device, profile=profile)
        else:
            raise PrinterConfigError(f"backend {cfg.backend!r} is not an ESC/POS device")
        return cls(dev, width_px=width_px, profile=profile, options=cfg.job_options(), nv_record=nv_record)

    def _reset(self) -> None:
        with contextlib.suppress(Exception):
            self.device.close()
        self.device._device = False  # python-escpos reopens on the next access

    @property
    def can_answer(self) -> bool:
        """Whether status queries may be sent now (File/LP cannot read; a silent printer rests)."""
        from escpos.escpos import Escpos  # loaded already: the device is a python-escpos one

        # File/LP have no _read: they cannot answer, which is UNKNOWN, not OK
        if type(self.device)._read is Escpos._read:
            return False
        return time.monotonic() >= self._silent_until  # do not make every press wait for a timeout

    def _query(self, command: bytes) -> bytes | None:
        """Send a status query and read the answer (caller holds the lock).
        ``b""`` = no answer; ``None`` = the device failed (it is reset)."""
        try:
            self.device._raw(command)
            return bytes(self.device._read() or b"")
        except Exception as exc:  # pyusb/pyserial/socket errors have no common root
            if isinstance(exc, TimeoutError) or "timeout" in type(exc).__name__.lower():
                return b""
            log.info("printer status: %s", exc)
            self._reset()
            return None

    def _went_silent(self) -> None:
        self._silent_until = time.monotonic() + self.SILENT_RETRY_S
        log.info("printer does not answer status queries: paper state unknown")

    def status(self) -> PrinterState:
        if not self.can_answer:
            return PrinterState.UNKNOWN
        with self._lock:
            answer = self._query(RT_STATUS_PAPER)
        if answer is None:
            return PrinterState.OFFLINE
        state = paper_state_from_byte(answer)
        if state is PrinterState.UNKNOWN:
            self._went_silent()
        return state

    def send(self, job: bytes, *, label: str = "") -> None:
        with self._lock:
            try:
                self.device._raw(job)
                flush = getattr(self.device, "flush", None)
                if callable(flush):
                    flush()
            except Exception as exc:  # any device error: the job did not (fully) reach the printer
                self._reset()
                raise PrinterOffline(f"{type(exc).__name__}: {exc}") from exc
            self.last_job_state = state = self._after_job_state()
        if state is PrinterState.PAPER_OUT:
            raise PaperOut("the printer reports paper end after the job: the ticket did not come out whole")

    def _after_job_state(self) -> PrinterState:
        """The paper after a job (caller holds the lock): GS r 1 first (answered once the job
        is printed), the real-time DLE EOT 4 when that gets no answer; silence → UNKNOWN."""
        if not self.can_answer:
            return PrinterState.UNKNOWN
        if not self._no_sensor_query:
            answer = self._query(PAPER_SENSOR_STATUS)
            if answer is None:
                return PrinterState.UNKNOWN  # the write went through; the next check says more
            state = paper_state_from_sensor_byte(answer)
            if state is not PrinterState.UNKNOWN:
                return state
        answer = self._query(RT_STATUS_PAPER)
        if answer is None:
            return PrinterState.UNKNOWN
        state = paper_state_from_byte(answer)
        if state is PrinterState.UNKNOWN:
            self._went_silent()
        elif state is not PrinterState.PAPER_OUT and not self._no_sensor_query:
            # answers in real time but not GS r (some clones): ask only DLE EOT 4 from now on
            log.info("printer does not answer GS r: checking paper after jobs with DLE EOT 4 only")
            self._no_sensor_query = True
        return state

    def close(self) -> None:
        self._reset()


class FakePrinter(Printer):
    """A printer in memory: keeps every byte, answers status, injects faults.

    Used by tests, the demo and technicians. Faults:

    - ``paper`` = ``"ok" | "low" | "out"``; out refuses jobs with :class:`PaperOut`;
    - ``offline = True``: status OFFLINE, jobs raise :class:`PrinterOffline`;
    - ``answers_status = False``: a printer that stays silent (status UNKNOWN, still prints);
    - :meth:`fail_next_job` (``"paper-out"``, ``"offline"``, ``"error"``): the next job
      breaks off after part of its bytes, as a roll running out mid-ticket does;
    - ``send_delay_s``: how long a job takes (to test presses while printing).
    """

    kind = "fake"

    def __init__(self, *, width_px: int = 576, profile: str = "", cut: str = "full",
                 options: JobOptions | None = None, paper: str = "ok", answers_status: bool = True,
                 send_delay_s: float = 0.0, keep_last: int | None = None,
                 nv_record: NvGraphicsRecord | None = None) -> None:
        super().__init__(width_px=width_px, profile=profile, cut=cut, options=options, nv_record=nv_record)
        self.keep_last = keep_last  # None: every job's bytes stay (tests); N: only the last N (the sim)
        self.job_count = 0  # whole jobs printed, kept or not
        self.paper = paper
        self.offline = False
        self.answers_status = answers_status
        self.send_delay_s = send_delay_s
        self.jobs: list[bytes] = []
        self.labels: list[str] = []
        self.sent_at: list[float] = []  # time.monotonic() when each job's last byte was handed over
        self.output = bytearray()  # every byte received, partial jobs included
        self.nv: dict[bytes, Image.Image] = {}  # the printer's NV graphics memory, by key code
        self.nv_writes = 0  # NV graphics definitions received (each one wears the NV memory)
        self._nv_before_jobs: dict[bytes, Image.Image] = {}  # the NV memory before the first kept job
        self._fault: str | None = None
        self._fault_fraction = 0.5
        self._cond = threading.Condition()
        self.printing = threading.Event()  # set while a job is being "printed" (tests press meanwhile)

    def fail_next_job(self, fault: str, *, fraction: float = 0.5) -> None:
        """Break the next job off after ``fraction`` of its bytes with ``fault``."""
        if fault not in ("paper-out", "offline", "error"):
            raise ValueError(f"unknown fault {fault!r}")
        with self._cond:
            self._fault, self._fault_fraction = fault, fraction

    def status(self) -> PrinterState:
        with self._cond:
            if self.offline:
                return PrinterState.OFFLINE
            if not self.answers_status:
                return PrinterState.UNKNOWN
            return {"out": PrinterState.PAPER_OUT, "low": PrinterState.PAPER_LOW}.get(self.paper, PrinterState.OK)

    def send(self, job: bytes, *, label: str = "") -> None:
        self.printing.set()
        try:
            self._send(job, label)
        finally:
            self.printing.clear()

    def _send(self, job: bytes, label: str) -> None:
        if self.send_delay_s:
            time.sleep(self.send_delay_s)  # the fake's print time, not a test wait
        with self._cond:
            if self.offline:
                raise PrinterOffline("fake printer is offline")
            if self.paper == "out":
                raise PaperOut("fake printer has no paper")
            fault, self._fault = self._fault, None
            if fault:
                self.output += job[: int(len(job) * self._fault_fraction)]
                if fault == "paper-out":
                    self.paper = "out"
                    raise PaperOut("paper ran out during the job")
                if fault == "offline":
                    self.offline = True
                    raise PrinterOffline("printer went offline during the job")
                raise PrintFailed("printer error during the job")
            self.output += job
            if not self.jobs:
                self._nv_before_jobs = dict(self.nv)
            if b"\x1d(L" in job or b"\x1d8L" in job:  # keeps what the job stores (a raster may hold the bytes too)
                self.nv_writes += len(decode_job(job, paper_px=self.width_px, nv=self.nv).nv_defines)
            self.jobs.append(job)
            self.labels.append(label)
            self.sent_at.append(time.monotonic())
            self.job_count += 1
            if self.keep_last is not None:  # a day of tickets is megabytes: the sim keeps files instead
                for kept in (self.jobs, self.labels, self.sent_at):
                    del kept[:-self.keep_last or len(kept)]
                self.output = bytearray(job) if self.keep_last else bytearray()
            self._cond.notify_all()
        self._after_job(job, label)

    def _after_job(self, job: bytes, label: str) -> None:
        """Hook for subclasses (the sim writes files)."""

    def wait_jobs(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least ``count`` whole jobs were printed."""
        with self._cond:
            return self._cond.wait_for(lambda: self.job_count >= count, timeout)

    def images(self) -> list[Image.Image]:
        """Each printed job decoded back into the image the paper shows (NV graphics as the jobs stored them)."""
        nv = dict(self._nv_before_jobs)
        return [img for job in self.jobs if (img := decode_job(job, paper_px=self.width_px, nv=nv).image()) is not None]


class SimPrinter(FakePrinter):
    """The fake, plus a file per ticket: ``NNNN-label.bin`` (the ESC/POS bytes) and ``.png``.

    The PNG is decoded from the bytes, so it shows what a real printer would print.
    """

    kind = "sim"

    def __init__(self, out_dir: Path | str, *, width_px: int = 576, profile: str = "", cut: str = "full",
                 options: JobOptions | None = None, paper: str = "ok", keep_last: int | None = 1,
                 nv_record: NvGraphicsRecord | None = None) -> None:
        # a sim dispenser prints all day long: its tickets live in the folder, not in memory
        super().__init__(width_px=width_px, profile=profile, cut=cut, options=options, paper=paper,
                         keep_last=keep_last, nv_record=nv_record)
        self.out_dir = Path(out_dir)  # made at the first ticket: ``ticketd --check`` builds one and prints none
        existing = sorted(self.out_dir.glob("[0-9][0-9][0-9][0-9]-*.bin"))
        self._seq = int(existing[-1].name[:4]) if existing else 0
        self.last_file: Path | None = None

    def _after_job(self, job: bytes, label: str) -> None:
        self._seq += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label) or "ticket"
        stem = self.out_dir / f"{self._seq % 10000:04d}-{safe}"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".bin").write_bytes(job)
        img = decode_job(job, paper_px=self.width_px, nv=dict(self.nv)).image()
        if img is not None:
            img.save(stem.with_suffix(".png"))
        self.last_file = stem.with_suffix(".bin")
        log.info("sim printer: wrote %s", stem.with_suffix(".bin"))


def _serial_device(cfg: PrinterConfig, profile: str) -> Escpos:
    """python-escpos' ``Serial`` at the configured speed and flow control."""
    from escpos.printer import Serial

    class FlowSerial(Serial):
        # python-escpos hands pyserial xonxoff and dsrdtr, never rtscts: set it on the opened port
        def open(self, raise_not_found: bool = True) -> None:
            super().open(raise_not_found)
            if self.device:
                self.device.rtscts = cfg.serial_flow == "rts-cts"

        # python-escpos reads 16 bytes, which waits out the whole timeout for a 1-byte status
        # answer (every paper check would stall the daemon for timeout_s): take what has come
        def _read(self) -> bytes:
            assert self.device
            first = self.device.read(1)
            return first + self.device.read(self.device.in_waiting) if first else b""

    return FlowSerial(devfile=cfg.serial_device, baudrate=cfg.serial_baud, timeout=cfg.timeout_s, profile=profile,
                      xonxoff=cfg.serial_flow == "xon-xoff", dsrdtr=cfg.serial_flow == "dtr-dsr")


NV_RECORD_FILE = "printer-nv-graphics.json"


def printer_identity(cfg: PrinterConfig, width_px: int) -> str:
    """What tells one configured printer from another (a printer of the same model on the same
    port looks the same: after such a swap, delete the record, docs/printers.md)."""
    where = {"usb": f"{cfg.usb_vendor:04x}:{cfg.usb_product:04x}", "serial": cfg.serial_device,
             "network": f"{cfg.host}:{cfg.port}", "file": cfg.device, "sim": str(cfg.sim_dir)}.get(cfg.backend, "")
    return f"{cfg.backend} {where} {cfg.profile_for(width_px)} {width_px}px"


def open_printer(cfg: PrinterConfig, *, width_px: int, state_dir: Path | None = None) -> Printer:
    """The printer named by ``cfg.backend`` (``sim`` and ``fake`` need no hardware); with
    ``nv_graphics`` the record of the printer's NV graphics is kept in ``state_dir``."""
    record = None
    if cfg.nv_graphics:
        record = NvGraphicsRecord(state_dir / NV_RECORD_FILE if state_dir is not None else None,
                                  printer=printer_identity(cfg, width_px))
    if cfg.backend == "sim":
        return SimPrinter(cfg.sim_dir, width_px=width_px, profile=cfg.profile, options=cfg.job_options(),
                          nv_record=record)
    if cfg.backend == "fake":
        return FakePrinter(width_px=width_px, profile=cfg.profile, options=cfg.job_options(), nv_record=record)
    return EscposPrinter.from_config(cfg, width_px=width_px, nv_record=record)
