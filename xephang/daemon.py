"""What every daemon's ``main()`` shares: arguments, settings, logging, signals, sd_notify,
the owner loop, health and alerts, and the technicians' node config over MQTT.

A daemon subclasses ``Daemon``: it sets ``role`` and ``settings_cls``, subscribes in
``setup()``, does periodic work in ``tick(now)`` and cleans up in ``teardown()``. The owner
loop (``run()``) is the only thread that touches the daemon's state: paho's and gpiozero's
threads only enqueue.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

from xephang import __version__, exits, systemd
from xephang.bus import Bus, BusFatal, Inbound
from xephang.checktext import both
from xephang.clock import Clock
from xephang.contract import (
    ALERT_IDS,
    Alert,
    BadPayload,
    ConfigSet,
    NodeHealth,
    SimPress,
    SimPressAck,
    decode,
)
from xephang.limits import RateLimit
from xephang.nodeconfig import NodeConfigManager, PrepareJob, deep_merge
from xephang.settings import DaemonSettings, SettingsError, load_settings

log = logging.getLogger(__name__)

SIM_PRESSES_REMEMBERED = 1024  # press ids kept to recognise a redelivered simulated press
EXIT_CONFIG = exits.DAEMON_CONFIG  # EX_CONFIG: bad local settings
EXIT_FATAL = exits.DAEMON_BROKER_REFUSED  # EX_PROTOCOL: permanent broker refusal (credentials, ACL)
# True while ``--check`` builds the daemon: built to prove the settings work, never run, it may sit
# beside the running daemon and must not touch its state (hubd's ledger, a pending node config push,
# the state folder itself: the preflight asks whether it could make and write it, and does neither). A
# daemon reads it as ``self.checking``.
CHECKING: ContextVar[bool] = ContextVar("xephang_daemon_checking", default=False)

S = TypeVar("S", bound=DaemonSettings)
C = TypeVar("C", bound=BaseModel)  # the node config a daemon declares (BaseModel: none)


LOG_BURST = 100  # lines of one kind (a logger and its message's template) at once …
LOG_PER_MINUTE = 60  # … then this many a minute; errors are never held back
LOG_KINDS_HELD = 1024


class PacedLog(logging.Filter):
    """What a remote party can make a daemon say, paced per kind of line (the logger and the message's
    template, not its arguments): a board's password sending junk within the hub's flood guard (20
    a second) got a warning each, ~1.7 million lines a day, and journald's own limit per service
    (10,000 in 30 s) then drops the daemon's other lines, the ones a technician needs. Past
    ``LOG_BURST`` at once then ``LOG_PER_MINUTE`` a minute a kind of line is counted, not written,
    and the next one written says how many were held back. ERROR and above always pass, and DEBUG
    (a technician who sets XEPHANG_LOG_LEVEL=DEBUG wants every line)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.clock = clock
        self.limit = RateLimit(burst=LOG_BURST, per_minute=LOG_PER_MINUTE, max_keys=LOG_KINDS_HELD)
        self.held: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR or record.levelno < logging.INFO:  # DEBUG: a technician asked for all
            return True
        key = (record.name, record.msg if isinstance(record.msg, str) else type(record.msg).__name__)
        with self._lock:
            if self.limit.take(key, self.clock()):
                if key in self.held or len(self.held) < LOG_KINDS_HELD:
                    self.held[key] = self.held.get(key, 0) + 1
                return False
            n = self.held.pop(key, 0)
        if n:
            record.msg = f"{record.msg} [{n} more like this not logged]"
        return True


def setup_logging(level: str = "INFO") -> None:
    """Plain lines to stderr: journald adds the time and the unit. Each kind of line paced (PacedLog)."""
    fmt = "%(levelname)s %(name)s: %(message)s" if os.environ.get("JOURNAL_STREAM") else \
        "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format=fmt, stream=sys.stderr, force=True)
    paced = PacedLog()
    for h in logging.getLogger().handlers:
        h.addFilter(paced)


def dump_stacks(out: Any = None) -> None:
    """Write every thread's stack, newest frame first, with the thread's name."""
    out = out or sys.stderr
    names = {t.ident: t.name for t in threading.enumerate()}
    lines: list[str] = []
    for ident, frame in sys._current_frames().items():
        lines.append(f"Thread 0x{ident:016x} {names.get(ident, '?')!r} (most recent call first):\n")
        lines.extend(f"  File \"{fs.filename}\", line {fs.lineno} in {fs.name}\n"
                     for fs in reversed(traceback.extract_stack(frame)))
        lines.append("\n")
    out.write("".join(lines))
    out.flush()


def install_stack_dump() -> None:
    """SIGUSR1 dumps every thread's stack to stderr: cheap, and priceless on a box in a hall.

    A Python-level handler, not ``faulthandler.register``: faulthandler's C handler walks the
    other threads' frames while they run, and it crashed the hub (SIGSEGV inside paho's thread)
    about one dump in twenty-five. Here the main thread holds the GIL while it reads them.
    """
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda _signum, _frame: dump_stacks())


def folder_problem(folder: Path) -> str | None:
    """Why this user could not make ``folder`` (if missing) and write in it, asked without doing
    either (``--check`` beside a running daemon, or before its first start: a folder made by root's
    check would belong to root). ``os.access`` asks with the real uid, the one ``sudo -u`` sets."""
    probe = folder
    while not probe.exists():
        if probe.is_symlink():  # a dangling link: mkdir would fail on it
            return both(f"không tạo được {folder}: {probe} là liên kết tượng trưng hỏng",
                        f"cannot make {folder}: {probe} is a broken symbolic link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        return both(f"không tạo được {folder}: {probe} không phải thư mục",
                    f"cannot make {folder}: {probe} is not a folder") if probe != folder else \
            both(f"không ghi được vào {folder}: không phải thư mục", f"cannot write in {folder}: not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        return both(f"không ghi được vào {folder}: không có quyền", f"cannot write in {folder}: permission denied") \
            if probe == folder else both(f"không tạo được {folder}: không ghi được vào {probe}",
                                         f"cannot make {folder}: {probe} is not writable")
    return None


def local_fault(exc: BaseException) -> str | None:
    """The line to say (exit 78) when building a daemon ran into a permanent fault of this box
    that its settings cannot show: no GPIO pin factory loads (lgpio missing from the OS or the
    venv). None for any other error, which stays a traceback (a bug, or a passing fault)."""
    if "gpiozero" not in sys.modules:  # no board was built: hubd and webd never load gpiozero
        return None
    from xephang.hw.factory import pin_factory_fault

    return pin_factory_fault(exc)


class BusPressSink:
    """Where a board's keys put their presses (gpiozero's threads): a call of ``handler`` in the
    owner thread, through the bus inbox. One queue for MQTT and keys, so a press wakes the loop at
    once and nothing polls; a handler that fails is logged by the bus's shield, never raised."""

    def __init__(self, bus: Bus, handler: Callable[[Any], None]) -> None:
        self._bus, self._handler = bus, handler

    def put(self, item: Any, /) -> None:
        self._bus.call_soon(lambda: self._handler(item))

class Daemon(Generic[S, C]):
    """Base of hubd, ticketd, counterd, displayd, announcerd and webd: ``S`` its settings, ``C`` the
    node config technicians may push (``node_config_model``; the hooks below receive it typed)."""

    role: ClassVar[str] = "node"
    settings_cls: ClassVar[type[DaemonSettings]] = DaemonSettings
    node_config_model: ClassVar[type[BaseModel] | None] = None  # the part technicians may push
    node_config_senders: ClassVar[tuple[str, ...]] = ()  # named senders besides technicians (…/set/{sender})
    node_config_yielding: ClassVar[tuple[str, ...]] = ()  # those whose push being prepared a technician's stops
    health_interval_s: ClassVar[float] = 30.0
    tick_interval_s: ClassVar[float] = 0.2

    def __init__(self, settings: S, *, bus: Bus | None = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.checking = CHECKING.get()  # built by ``--check``: read what the start needs, touch none of its state
        self.clock = clock or settings.clock.make()
        self.node = settings.node or self.role
        self.started_at = time.monotonic()
        self.stop_event = threading.Event()
        self.bus = bus or Bus(site=settings.site, node=self.node, role=self.role, broker=settings.broker,
                              state_dir=settings.state_dir)
        self.alerts: dict[str, Alert] = {}
        self._sim_seen: OrderedDict[str, str | None] = OrderedDict()  # press id -> refusal (None: pressed)
        self.sim_presses_repeated = 0
        self._next_health = 0.0
        self.node_config: NodeConfigManager[C] | None = None
        if self.node_config_model is not None:
            self.node_config = NodeConfigManager(
                model=self.node_config_model,
                path=Path(settings.state_dir) / f"{self.node}.config.json",
                initial=self.initial_node_config(),
                apply=self.apply_node_config,
                bus=self.bus,
                node=self.node,
                clock=self.clock.now,
                check=self.check_node_config,
                raw_check=self.check_raw_node_config,
                prepare=self.prepare_node_config,
                merge=self.merge_node_config,
                senders=self.node_config_senders,
                yielding=self.node_config_yielding,
                origin=self.node_config_origin(),
                read_only=self.checking,
            )

    # ---- for subclasses -----------------------------------------------------------------
    def setup(self) -> None:
        """Subscribe and prepare hardware. Runs once, before the bus starts."""

    def tick(self, now: float) -> None:
        """Periodic work in the owner thread (timers, blink, retries)."""

    def teardown(self) -> None:
        """Release hardware. Runs once, after the loop ends."""

    def health_details(self) -> dict[str, Any]:
        return {}

    def require_node_config(self) -> NodeConfigManager[C]:
        """The node config of a daemon that declares ``node_config_model`` (a clear error otherwise)."""
        if self.node_config is None:
            raise TypeError(f"{type(self).__name__} declares no node_config_model: it has no node config")
        return self.node_config

    def initial_node_config(self) -> dict[str, Any]:
        """The node config from the local settings file (technicians' pushes merge into it)."""
        return {}

    def apply_node_config(self, new: C, old: C | None) -> bool:
        """Apply a validated node config; return True when a restart is needed."""
        return False

    def check_node_config(self, new: C) -> list[str]:
        """Why a valid pushed config cannot apply now (every reason; empty: it can)."""
        return []

    def check_raw_node_config(self, raw: dict[str, Any]) -> list[str]:
        """``check_node_config``'s reasons that can be told from a config pydantic refused (another
        field wrong): listed with the field errors. Empty by default."""
        return []

    def prepare_node_config(self, new: C) -> PrepareJob | None:
        """The slow part of checking a push (a download), as a job for a worker thread: it gets a
        stop event and returns every refusal. The owner loop goes on meanwhile; the push applies
        (or is refused) and is acked when the job is done. None: nothing slow, apply now."""
        return None

    def merge_node_config(self, current: dict[str, Any], push: ConfigSet, sender: str | None) -> dict[str, Any]:
        """The whole new config from the current one and a push: tables merge, values and lists
        replace. Raise ``ConfigRefused`` for a push this sender may not make."""
        return deep_merge(current, push.config)

    def node_config_origin(self) -> str | None:
        """A fingerprint of the local file the node config comes from (None: no such file):
        when the file changed since the last push, the file wins."""
        return None

    def on_sim_press(self, press: SimPress) -> None:
        """Simulated hardware input (only subscribed in sim mode). Raise ``BadPayload`` for a key
        this board does not have: the presser is told why (``R/sim/{node}/ack``)."""
        raise BadPayload("unknown-button", f"{self.node} has no simulated keys")

    def wait_for_work(self, timeout: float) -> None:
        """Block until bus work or ``timeout`` (displayd overrides: its frame loop owns the thread)."""
        self.bus.process(timeout=timeout)

    # ---- alerts and health --------------------------------------------------------------
    def raise_alert(self, alert_id: str, message_vi: str, message_en: str, severity: str = "warning") -> None:
        """Retained alert; published once per change. Its id must be one of the role's
        (``contract.ALERT_IDS``): the broker's ACL refuses any other."""
        if alert_id not in ALERT_IDS.get(self.role, (alert_id,)):
            log.error("alert id %r is not one of the %s role's (contract.ALERT_IDS): the broker will refuse it",
                      alert_id, self.role)
        cur = self.alerts.get(alert_id)
        if cur and cur.message_vi == message_vi and cur.severity == severity:
            return
        a = Alert(node=self.node, id=alert_id, severity=severity, message_vi=message_vi,  # type: ignore[arg-type]
                  message_en=message_en, at=self.clock.now())
        self.alerts[alert_id] = a
        log.warning("alert %s: %s", alert_id, message_en)
        if self.bus.started:  # before the bus starts (setup), the connect hook publishes it
            self.bus.publish(self.bus.topics.alert(self.node, alert_id), a, retain=True)

    def clear_alert(self, alert_id: str) -> None:
        if self.alerts.pop(alert_id, None) is not None:
            log.info("alert %s cleared", alert_id)
            if self.bus.started:
                self.bus.clear(self.bus.topics.alert(self.node, alert_id))

    def publish_health(self) -> None:
        h = NodeHealth(node=self.node, role=self.role, version=__version__,
                       uptime_s=round(time.monotonic() - self.started_at, 1),
                       config_rev=self.node_config.rev if self.node_config else 0,
                       at=self.clock.now(), dropped_messages=self.bus.stats.dropped,
                       dropped_by_code=dict(self.bus.stats.dropped_by_code),
                       publish_failed=dict(self.bus.stats.publish_failed),
                       details=self.health_details())
        self.bus.publish(self.bus.topics.health(self.node), h, retain=True)

    def _on_connect(self) -> None:
        for a in self.alerts.values():  # alerts survive a broker that lost its retained store
            self.bus.publish(self.bus.topics.alert(self.node, a.id), a, retain=True)
        self.publish_health()
        if self.node_config:
            self.node_config.publish_state()
        systemd.notify("READY=1", f"STATUS={self.role} {self.node} connected")

    def _on_sim(self, msg: Inbound) -> None:
        press = decode(SimPress, msg.payload)
        if press.press_id in self._sim_seen:  # the same press delivered again: one press, one action
            self.sim_presses_repeated += 1
            log.info("simulated press %s (%s) delivered again: ignored", press.press_id, press.button)
            self._answer_press(press, self._sim_seen[press.press_id], repeated=True)
            return
        try:
            self.on_sim_press(press)
        except BadPayload as exc:  # no such key here: say so to whoever pressed, then count the drop
            self._remember_press(press, str(exc))
            self._answer_press(press, str(exc))
            raise
        self._remember_press(press, None)
        self._answer_press(press, None)

    def _remember_press(self, press: SimPress, refusal: str | None) -> None:
        self._sim_seen[press.press_id] = refusal
        while len(self._sim_seen) > SIM_PRESSES_REMEMBERED:
            self._sim_seen.popitem(last=False)

    def _answer_press(self, press: SimPress, refusal: str | None, *, repeated: bool = False) -> None:
        ack = SimPressAck(node=self.node, press_id=press.press_id, button=press.button, repeated=repeated,
                          status="refused" if refusal else "pressed", reason=(refusal or "")[:300])
        self.bus.publish(self.bus.topics.sim_ack(self.node), ack)

    # ---- the loop -------------------------------------------------------------------------
    def start(self) -> None:
        """Setup, then connect in the background (never blocks boot)."""
        self.setup()
        self.bus.add_connect_hook(self._on_connect)
        if self.node_config:
            self.node_config.subscribe()
        if self.settings.sim:
            self.bus.subscribe(self.bus.topics.sim_press(self.node), self._on_sim, retained=False)
        self.bus.start()

    def step(self, timeout: float | None = None) -> None:
        """One turn of the owner loop: bus work, tick, health, watchdog."""
        self.wait_for_work(self.tick_interval_s if timeout is None else timeout)
        now = self.clock.now()
        self.tick(now)
        mono = time.monotonic()
        if mono >= self._next_health and self.bus.connected.is_set():
            self._next_health = mono + self.health_interval_s
            self.publish_health()

    def run(self) -> int:
        """Run until SIGTERM/SIGINT. Returns the process exit code."""
        wd = systemd.watchdog_interval()
        next_wd = 0.0
        self.start()
        try:
            while not self.stop_event.is_set():
                self.step()
                if wd and time.monotonic() >= next_wd:
                    systemd.notify("WATCHDOG=1")
                    next_wd = time.monotonic() + wd
        except BusFatal as exc:
            log.error("%s", exc)
            return EXIT_FATAL
        finally:
            systemd.notify("STOPPING=1")
            try:
                if self.node_config:
                    self.node_config.close()
                self.teardown()
            finally:
                self.bus.stop()
        return 0

    # ---- console script -------------------------------------------------------------------
    @classmethod
    def main(cls, argv: Sequence[str] | None = None, *, extra_args: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
        p = argparse.ArgumentParser(prog=cls.role, description=(cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else None)
        p.add_argument("--config", "-c", help="TOML settings file (XEPHANG_* variables override it)")
        p.add_argument("--check", action="store_true", help="validate the settings and exit")
        if extra_args:
            extra_args(p)
        args = p.parse_args(argv)
        setup_logging(os.environ.get("XEPHANG_LOG_LEVEL", "INFO"))
        try:
            settings = load_settings(cls.settings_cls, args.config)
            if not settings.node:
                settings = settings.model_copy(update={"node": cls.default_node(settings)})
            setup_logging(settings.log_level)
            checking = CHECKING.set(args.check)
            try:
                problems = cls.preflight_errors(settings)
                if problems:  # what the start needs, checked now: exit 78 with every problem, never a traceback later
                    raise SettingsError(problems, "what the start needs", "những gì cần để khởi động")
                try:
                    daemon = cls(settings)  # type: ignore[arg-type]
                except Exception as exc:
                    fault = local_fault(exc)
                    if fault is None:
                        raise
                    raise SettingsError([fault], "this board's hardware", "phần cứng của thiết bị này") from None
            finally:
                CHECKING.reset(checking)
        except SettingsError as exc:
            print(f"{cls.role}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if args.check:
            print(f"{cls.role}: settings OK")
            return 0
        install_stack_dump()

        def _stop(signum: int, _frame: Any) -> None:
            log.info("signal %s: stopping", signum)
            daemon.stop_event.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        log.info("%s %s starting (node %s, site %s, broker %s:%s%s)", cls.role, __version__, daemon.node,
                 settings.site, settings.broker.host, settings.broker.port, ", SIM" if settings.sim else "")
        return daemon.run()

    @classmethod
    def preflight_errors(cls, s: DaemonSettings) -> list[str]:
        """Everything the start needs that valid settings do not prove: files readable, folders
        writable. Runs before the daemon is built, at every start and for ``--check``; a start makes a
        missing folder and writes a probe file in it, ``--check`` only asks (``folder_problem``)."""
        errors: list[str] = []
        for name, path in (("broker.password_file", s.broker.password_file), ("broker.ca_file", s.broker.ca_file)):
            if path is None:
                continue
            try:
                path.read_bytes()
            except OSError as exc:
                why = exc.strerror or str(exc)
                errors.append(f"{name}: " + both(f"không đọc được {path} ({why}): kiểm tra đường dẫn và quyền đọc",
                                                 f"cannot read {path}: {why}"))
        for name, folder in (("state_dir", s.state_dir), ("sim_out", s.sim_out if s.sim else None)):
            if folder is None:
                continue
            if CHECKING.get():
                if (problem := folder_problem(Path(folder))) is not None:
                    errors.append(f"{name}: {problem}")
                continue
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
                    pass
            except OSError as exc:
                why = exc.strerror or str(exc)
                errors.append(f"{name}: " + both(f"không ghi được vào {folder} ({why})", f"cannot write in {folder}: {why}"))
        return errors

    @classmethod
    def default_node(cls, settings: DaemonSettings) -> str:
        return cls.role
