"""``xephang demo``: a whole commune centre on this machine.

Its own Mosquitto on a free port, with passwords and the ACL of ``xephang broker-config``;
then every daemon as its own process, exactly as on the boards but on simulated hardware:
the hub with a fresh ledger, a dispenser, one box per counter, the hall board and the hall
speaker. All of them, and the simulation, share one accelerated clock (the simulated day
starts at 07:30 local, today), so the hub's times — and the day's report — follow the
simulation. The simulation (:mod:`xephang_ops.sim`) drives the centre only through
``R/sim/{node}/press`` and learns what happened only from the hub's events.

Output folder (default ``./demo-out/<timestamp>``): ``broker/`` (config, passwords, ACL),
``state/<node>/`` (the hub's ledger, node configs), ``sim/`` (tickets as PNG, board frames
as PNG, announcements as WAV), ``logs/<node>.log`` and ``summary.json``.

Ctrl-C (or SIGTERM) stops everything: each daemon runs in its own process group and is
stopped by it, so no process is left behind and another demo can start at once.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import logging
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any, TextIO

from xephang.clock import VN_TZ, ScaledClock
from xephang.contract import NodeStatus, SimPress
from xephang.settings import SettingsError, load_site
from xephang.site import Site
from xephang_ops.brokerconf import site_accounts, write_broker_files
from xephang_ops.mosquitto import BrokerError, Mosquitto, die_with_parent, find_mosquitto
from xephang_ops.sim import CentreSim, Press
from xephang_ops.tools import REFUSED, BrokerTarget, ToolClient, ToolError, describe_event

log = logging.getLogger(__name__)

REPO_SITE = Path(__file__).resolve().parent.parent / "config" / "site.example.toml"
DAY_START = dtime(7, 30)
DAY_END = dtime(17, 0)
DEFAULT_SPEED = 240.0  # 07:30–17:00 in 142 s of real time
TECH = "tech-demo"  # the simulation's account: a technician, the only kind that may press sim keys
MODULES = {"hubd": "hubd.main", "ticketd": "ticketd.main", "counterd": "counterd.main",
           "displayd": "displayd.main", "announcerd": "announcerd.main", "webd": "webd.main"}
# real-time guards of the boxes (double press, held keys): one physical key is not pressed again
# within this; on a counter box one key does two jobs (Recall short / No-show long, Pause / Resume)
SAME_KEY_GAP_S = {"dispenser": 0.35, "counter": 0.5}
COUNTER_KEY_OF = {"no-show": "recall", "resume": "pause"}
ANY_KEY_GAP_S = 0.06


# alerts by which a live board or speaker says it has no device although its process runs
LIVE_DEVICE_ALERTS = frozenset({"audio-missing", "display-missing"})


class DemoError(RuntimeError):
    """The demo cannot start (no mosquitto, no hub …)."""


@dataclass
class NodeSpec:
    node: str
    script: str
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class NodeProcess:
    """One daemon, in a process group of its own."""

    spec: NodeSpec
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    exit_code: int | None = None
    _log: Any = None

    def start(self, env: dict[str, str]) -> None:
        mod = MODULES[self.spec.script]
        cmd = [sys.executable, "-c", f"import sys; from {mod} import main; sys.exit(main())"]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True, preexec_fn=die_with_parent)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.exit_code = self.proc.wait(timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def close_log(self) -> None:
        if self._log:
            self._log.close()
            self._log = None


def presentation(env: Mapping[str, str], *, asound_cards: str | None, headless: bool = False) -> tuple[bool, bool]:
    """(the board in a window, the speaker on the sound card) on this machine; else PNG frames and WAVs."""
    if headless:
        return False, False
    window = bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))
    cards = (asound_cards or "").strip()
    speaker = bool(cards) and "no soundcards" not in cards
    return window, speaker


def _asound_cards() -> str | None:
    try:
        return Path("/proc/asound/cards").read_text()
    except OSError:
        return None


def available(script: str) -> bool:
    """True when the daemon's package is installed in this Python."""
    try:
        return importlib.util.find_spec(MODULES[script]) is not None
    except ModuleNotFoundError:
        return False


def node_plan(site: Site) -> list[NodeSpec]:
    """The centre: hub, dispenser, a box per counter, the hall board and speaker."""
    plan = [
        NodeSpec("hub", "hubd"),
        # the accelerated crowd presses faster than any rate guard meant for a real hall allows
        NodeSpec("dispenser-1", "ticketd", {"XEPHANG_HARDWARE__MAX_PRESSES": "100", "XEPHANG_HARDWARE__PER_S": "1",
                                            "XEPHANG_HARDWARE__MAX_PENDING": "20"}),
    ]
    plan += [NodeSpec(f"counter-{c.number}", "counterd", {"XEPHANG_COUNTER__NUMBER": str(c.number)})
             for c in site.counters]
    # the board keeps a frame of every call of the day, so the morning peak can be looked at afterwards
    plan += [NodeSpec("display-hall", "displayd", {"XEPHANG_SCREEN__PNG_KEEP": "100000",
                                                   "XEPHANG_SCREEN__PNG_CALLS_ONLY": "true"}),
             # a call is never too old to say in a demo: the clock runs hundreds of times faster
             NodeSpec("announcer-hall", "announcerd", {"XEPHANG_ANNOUNCER__MAX_AGE_S": "3600"}),
             NodeSpec("web", "webd")]  # the web pages (docs/web.md): port and secret from WebDemo
    return plan


def default_out_dir(base: Path = Path("demo-out")) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = base / stamp
    n = 2
    while out.exists():
        out = base / f"{stamp}-{n}"
        n += 1
    return out


def day_origin(start: dtime, day: datetime | None = None) -> float:
    """Epoch seconds of ``start`` local (Vietnam) time on ``day`` (default today)."""
    d = (day or datetime.now(VN_TZ)).astimezone(VN_TZ).date()
    return datetime.combine(d, start, VN_TZ).timestamp()


def cached_voice_pack() -> Path | None:
    """The espeak-ng voice pack, built once per machine (the announcer would build it per state dir)."""
    try:
        from announcerd.voice_cli import ensure_default_pack
    except ImportError:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xephang" / "voice" / "espeak-vi-north"
    try:
        return ensure_default_pack(cache, language="vi", dialect="north")
    except Exception as exc:  # no espeak-ng: the announcer raises its own alert
        log.warning("no cached voice pack (%s): the announcer builds its own", exc)
        return None


# ---------------------------------------------------------------------------------------------
# Pressing keys in real time


UNACKNOWLEDGED_IN_A_ROW = 6  # presses the broker did not acknowledge, one after another: it is gone


class KeyPresser:
    """Publishes sim presses, keeping the boxes' real-time guards: the same key not twice within
    ``SAME_KEY_GAP_S``, and presses of one node in order."""

    def __init__(self, client: ToolClient) -> None:
        self.client = client
        self.pending: dict[str, list[Press]] = {}
        self.last_key: dict[tuple[str, str], float] = {}
        self.free_at: dict[str, float] = {}  # a node's previous key is released by then
        self.sent = 0
        self.refused = 0
        self.unacknowledged = 0  # the broker did not answer within the tool's 5 s (a loaded machine)
        self._in_a_row = 0

    def add(self, p: Press) -> None:
        self.pending.setdefault(p.node, []).append(p)

    def flush(self) -> None:
        now = time.monotonic()
        for node, q in self.pending.items():
            while q:
                p = q[0]
                role = node.split("-")[0]
                gap = SAME_KEY_GAP_S.get(role, 0.4)
                key = (node, COUNTER_KEY_OF.get(p.button, p.button) if role == "counter" else p.button)
                if now - self.last_key.get(key, -1e9) < gap or now < self.free_at.get(node, 0.0):
                    break
                q.pop(0)
                try:
                    rc = self.client.publish(self.client.topics.sim_press(node),
                                             SimPress(button=p.button, hold_s=p.hold_s).to_json())
                except ToolError as exc:
                    # a red team's flood on this machine left one press unacknowledged for 5 s and the
                    # whole demo stopped: a press may still arrive; the day goes on, and only a broker
                    # that answers nothing for UNACKNOWLEDGED_IN_A_ROW presses ends it
                    self.unacknowledged += 1
                    self._in_a_row += 1
                    log.warning("press %s on %s: %s", p.button, node, exc)
                    if self._in_a_row >= UNACKNOWLEDGED_IN_A_ROW:
                        raise DemoError(f"the broker answered none of the last {self._in_a_row} presses") from None
                    rc = 0
                else:
                    self._in_a_row = 0
                if rc >= REFUSED:
                    self.refused += 1
                    log.error("press %s on %s refused by the broker (%s)", p.button, node, rc)
                self.sent += 1
                now = time.monotonic()
                self.last_key[key] = now
                self.free_at[node] = now + p.hold_s + ANY_KEY_GAP_S

    def backlog(self) -> int:
        return sum(len(q) for q in self.pending.values())


# ---------------------------------------------------------------------------------------------
# The demo


@dataclass
class DemoOptions:
    out: Path
    site_file: Path = REPO_SITE
    speed: float = DEFAULT_SPEED
    minutes: float | None = None
    start: dtime = DAY_START
    seed: int = 1
    lang: str = "vi"
    verbose: bool = False
    ready_timeout_s: float = 40.0
    load: float = 1.0
    headless: bool = False
    speaker: str = "auto"  # auto: the sound card when the machine lists one; card: try it anyway; wav: never
    keep: bool = False  # after the day: the report, then the centre stays up until Ctrl-C (pages, console, tools)


class Demo:
    """Runs one demo; ``run()`` returns the exit code and leaves ``summary.json``."""

    def __init__(self, opts: DemoOptions, *, stream: TextIO | None = None) -> None:
        self.opts = opts
        self.out = opts.out.resolve()
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.stop = threading.Event()
        self.nodes: dict[str, NodeProcess] = {}
        self.skipped: dict[str, str] = {}
        self.broker: Mosquitto | None = None
        self.summary: dict[str, Any] = {}
        self.last_line = ""
        self._status_width = 0
        self.window, self.speaker = presentation(os.environ, asound_cards=_asound_cards(), headless=opts.headless)
        if opts.speaker != "auto":
            self.speaker = opts.speaker == "card"
        self.live: set[str] = set()  # nodes on the real screen / sound card (sim hardware if that fails)
        self.web: Any = None  # webd.demo_web.WebDemo when webd is installed
        self._reported_dead: set[str] = set()

    # ---- output ----------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.tty and self._status_width:
            self.stream.write("\r" + " " * self._status_width + "\r")
            self._status_width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def status(self, text: str) -> None:
        if self.tty:
            width = shutil.get_terminal_size((120, 20)).columns - 1
            text = text[:width]
            self.stream.write("\r" + text.ljust(self._status_width))
            self._status_width = len(text)
            self.stream.flush()
        else:
            self.say(text)

    # ---- set-up ----------------------------------------------------------------------------
    def _start_broker(self, site: Site) -> None:
        if not find_mosquitto():
            raise DemoError("mosquitto chưa được cài / not installed: sudo apt-get install -y mosquitto")
        accounts = site_accounts(site, technicians=["tech", TECH])
        self.files = write_broker_files(self.out / "broker", site, accounts)
        self.broker = Mosquitto(self.out / "broker" / "run", die_with_parent=True, password_file=self.files.password_file,
                                acl_file=self.files.acl_file, persistence=False,
                                bind_client_ids=True)
        self.broker.start()

    def _running_broker(self) -> Mosquitto:
        """The demo's own mosquitto (started first of all; a clear error if it is not)."""
        if self.broker is None:
            raise DemoError("the demo's broker is not running")
        return self.broker

    def _env(self, spec: NodeSpec, clock: ScaledClock, voice: Path | None) -> dict[str, str]:
        broker = self._running_broker()
        env = {k: v for k, v in os.environ.items() if not k.startswith("XEPHANG_")}
        env.update({
            "XEPHANG_SITE": self.site.site.slug,
            "XEPHANG_NODE": spec.node,
            "XEPHANG_SITE_FILE": str(self.opts.site_file.resolve()),
            "XEPHANG_STATE_DIR": str(self.out / "state" / spec.node),
            "XEPHANG_BROKER__HOST": "127.0.0.1",
            "XEPHANG_BROKER__PORT": str(broker.port),
            "XEPHANG_BROKER__USERNAME": spec.node,
            "XEPHANG_BROKER__PASSWORD_FILE": str(self.files.passwords_dir / f"{spec.node}.pw"),
            "XEPHANG_SIM": "true",
            "XEPHANG_SIM_OUT": str(self.out / "sim"),
            "XEPHANG_CLOCK__SPEED": repr(clock.speed),
            "XEPHANG_CLOCK__ORIGIN": repr(clock.origin),
            "XEPHANG_CLOCK__REAL_ORIGIN": repr(clock.real_origin),
            "XEPHANG_LANG": self.opts.lang,
            "GPIOZERO_PIN_FACTORY": "mock",
            "PYTHONUNBUFFERED": "1",
        })
        if spec.node == "hub":  # its reading connections (hubd/lane.py)
            env["XEPHANG_HUB__INBOX_PASSWORD_FILE"] = str(self.files.passwords_dir / "hub-inbox.pw")
            env["XEPHANG_HUB__LANES_DIR"] = str(self.files.passwords_dir)  # hub-<board>.pw: a lane per board
        if spec.node == "web":  # the boards' statuses and alerts on a connection of their own (xephang/reader.py)
            env["XEPHANG_WEB__WATCH_PASSWORD_FILE"] = str(self.files.passwords_dir / "web-watch.pw")
        if voice is not None and spec.script == "announcerd":
            # the pack where the docs say a speaker keeps it: its state folder (voice/espeak-vi-north);
            # the per-machine cache only saves building it again for every demo
            from announcerd.voice_cli import default_pack_dir

            shutil.copytree(voice, default_pack_dir(self.out / "state" / spec.node), dirs_exist_ok=True)
        if spec.node in self.live and spec.script == "displayd":
            # a window on the desktop instead of PNG frames (a display needs no keys: sim off is safe)
            env.update({"XEPHANG_SIM": "false", "XEPHANG_SCREEN__FULLSCREEN": "false", "XEPHANG_SCREEN__SIZE": "[1280, 720]"})
        elif spec.node in self.live and spec.script == "announcerd":
            env["XEPHANG_SIM"] = "false"  # the sound card instead of WAV files
        else:
            env.setdefault("SDL_VIDEODRIVER", "dummy")
            env.setdefault("SDL_AUDIODRIVER", "dummy")
        if self.web is not None and spec.script == "webd":
            env.update(self.web.web_env())
        if self.web is not None and spec.script == "ticketd":
            env.update(self.web.dispenser_env())  # the ticket's QR opens its live page on webd
        env.update(spec.env)
        return env

    def _launch(self, clock: ScaledClock) -> None:
        (self.out / "logs").mkdir(parents=True, exist_ok=True)
        self._voice = cached_voice_pack() if available("announcerd") else None
        if available("webd"):
            from webd.demo_web import WebDemo

            self.web = WebDemo(self.out, self.site.site.slug, officer=next(
                (c.officer_id for c in self.site.counters if c.officer_id), None))
        for spec in node_plan(self.site):
            if not available(spec.script):
                self.skipped[spec.node] = f"`{spec.script}` is not installed"
                self.say(f"⚠ bỏ qua / skipping {spec.node}: {self.skipped[spec.node]}")
                continue
            if (spec.script == "displayd" and self.window) or (spec.script == "announcerd" and self.speaker):
                self.live.add(spec.node)
            self._start_node(spec, clock)
        self._write_pids()

    def _start_node(self, spec: NodeSpec, clock: ScaledClock) -> None:
        np_ = NodeProcess(spec, self.out / "logs" / f"{spec.node}.log")
        np_.start(self._env(spec, clock, self._voice))
        self.nodes[spec.node] = np_

    def _write_pids(self) -> None:
        (self.out / "processes.json").write_text(json.dumps({n: p.pid for n, p in self.nodes.items()}, indent=1))

    def _fall_back(self) -> None:
        """A board that could not open the real screen or sound card runs on simulated hardware."""
        for n in list(self.live):
            p = self.nodes[n]
            if p.alive():
                continue
            p.wait(0)
            self._restart_simulated(n, f"code {p.exit_code}")

    def _restart_simulated(self, n: str, why: str) -> None:
        p = self.nodes[n]
        p.close_log()
        self.live.discard(n)
        self.say(f"  {n}: không mở được màn hình/loa thật / no real screen or speaker ({why}): PNG/WAV instead")
        self._start_node(p.spec, self.clock)
        self._write_pids()

    def _on_alert(self, topic: str, payload: bytes) -> bool:
        """A live board or speaker that stays up but says its device is missing goes back to sim."""
        parts = topic.split("/")
        if len(parts) < 2 or parts[-2] != "alert" or "/node/" not in topic:
            return False
        node, alert_id = parts[-3], parts[-1]
        if payload and node in self.live and alert_id in LIVE_DEVICE_ALERTS:
            p = self.nodes[node]
            p.signal_group(signal.SIGTERM)
            if not p.wait(5):
                p.signal_group(signal.SIGKILL)
                p.wait(5)
            self._restart_simulated(node, f"alert {alert_id}")
        return True

    def _watch_nodes(self) -> None:
        self._fall_back()
        for n, p in self.nodes.items():
            if n not in self._reported_dead and not p.alive():
                p.wait(0)
                self._reported_dead.add(n)
                self.say(f"⚠ {n} đã dừng / stopped (code {p.exit_code}): see {p.log_path}")

    def _wait_ready(self, client: ToolClient) -> None:
        """Until every launched node says it is online (or its process died)."""
        want = set(self.nodes)
        online: set[str] = set()
        end = time.monotonic() + self.opts.ready_timeout_s
        while want - online and time.monotonic() < end and not self.stop.is_set():
            self._fall_back()
            for n in list(want - online):
                p = self.nodes[n]
                if not p.alive():
                    p.wait(0)
                    self.skipped[n] = f"exited with code {p.exit_code} at start (see {p.log_path})"
                    self.say(f"⚠ {n} dừng khi khởi động / died at start: code {p.exit_code}, log {p.log_path}")
                    want.discard(n)
            m = client.get(0.1)
            if m is None or self._on_alert(m.topic, m.payload) or not m.payload or not m.topic.endswith("/status"):
                continue
            try:
                st = NodeStatus.model_validate_json(m.payload)
            except ValueError:
                continue
            if st.online:
                online.add(st.node)
        if "hub" not in online:
            raise DemoError(f"the hub did not come up (see {self.out / 'logs' / 'hub.log'})")
        for n in want - online:
            self.skipped[n] = "never came online"
            self.say(f"⚠ {n} không trực tuyến / never came online (see {self.nodes[n].log_path})")
        self.online = sorted(online)

    # ---- the run ---------------------------------------------------------------------------
    def run(self) -> int:
        o = self.opts
        t_wall = time.monotonic()
        try:
            self.site = load_site(o.site_file)
        except SettingsError as exc:
            self.say(str(exc))
            return 2
        self.out.mkdir(parents=True, exist_ok=True)
        origin = day_origin(o.start)
        # daemons boot in a few real seconds: the simulated day starts when they are up
        clock = ScaledClock(origin, time.time() + 3.0, o.speed)
        self.clock = clock
        code = 0
        reported = False
        try:
            self._start_broker(self.site)
            broker = self._running_broker()
            self.say(f"xephang demo — {self.site.site.name_vi}\n  thư mục / output: {self.out}\n"
                     f"  broker 127.0.0.1:{broker.port} (mật khẩu + ACL / passwords + ACL; "
                     f"kỹ thuật viên / technicians: {broker.tech_port}), "
                     f"tốc độ / speed ×{o.speed:g}")
            self._launch(clock)
            target = BrokerTarget(site=self.site.site.slug, port=broker.tech_port or broker.port, username=TECH,
                                  password=self.files.passwords[TECH])
            with ToolClient(target) as client:
                t = client.topics
                client.subscribe(t.all_status(), t.all_events(), t.all_service_states(), t.all_alerts())
                self._wait_ready(client)
                self.say(f"  {len(self.online)} nút trực tuyến / nodes online: {', '.join(self.online)}")
                exe = Path(sys.executable).with_name("xephang")  # runs as printed, without activating .venv
                self.say(f"  xem thiết bị / watch devices: {exe if exe.exists() else 'xephang'} devices --watch "
                         f"--port {broker.tech_port} --password-file {self.files.passwords_dir / 'tech.pw'}")
                if self.web is not None and "web" in self.online:
                    self.say(f"  trang web / web pages: {self.web.base}/hall — lãnh đạo / head: {self.web.base}/head "
                             f"(tài khoản / account in {self.web.dir / 'head-password.txt'}) — cán bộ quầy / "
                             f"officer: {self.web.base}/counter ({self.web.dir / 'officer-password.txt'})")
                while time.time() < clock.real_origin and not self.stop.is_set():
                    time.sleep(0.02)
                self._simulate(client, clock)
                if self.web is not None and "web" in self.online:
                    self.summary["web"] = self.web.finish()  # screenshots while webd still runs
                    self.say(f"  ảnh trang web / web screenshots: {len(self.summary['web']['screenshots'])} in {self.web.dir}")
            if self.stop.is_set():
                self.say("\nĐã dừng theo yêu cầu / stopped on request")
                code = 130
            elif o.keep:  # the report of the day (the ledger is read as the hub writes), then the centre stays
                self.summary["wall_s"] = round(time.monotonic() - t_wall, 2)
                self._report()
                reported = True
                web = f" — {self.web.base}/head, {self.web.base}/counter" if self.web is not None else ""
                self.say(f"\nTrung tâm vẫn chạy / the centre keeps running{web}; các cán bộ mô phỏng đã nghỉ / the "
                         "simulated officers have stopped. Ctrl-C để dừng / to stop.")
                while not self.stop.wait(0.5):  # a signal handler runs between waits
                    pass
                self.say("Đã dừng / stopped")
        except (DemoError, BrokerError, ToolError) as exc:
            self.say(f"lỗi / error: {exc}")
            code = 1
        finally:
            self._shutdown()
        self.summary.setdefault("wall_s", round(time.monotonic() - t_wall, 2))
        if code in (0, 130) and not reported and (self.out / "state" / "hub" / "ledger.sqlite").exists():
            self._report()
        self._write_summary()
        return code

    def _simulate(self, client: ToolClient, clock: ScaledClock) -> None:
        o = self.opts
        start = max(day_origin(o.start), clock.now())
        end = start + o.minutes * 60 if o.minutes else day_origin(DAY_END)
        if end <= start:
            raise DemoError("nothing to simulate: the day is over (use --start or --minutes)")
        span = end - start
        # citizens stop coming shortly before the end, so officers can clear most of the queue
        arrivals_until = end - min(15 * 60, 0.15 * span)
        nodes = {c.number: f"counter-{c.number}" for c in self.site.counters if f"counter-{c.number}" in self.online}
        sim = CentreSim(self.site, start=start, end=end, seed=o.seed, counters=nodes,
                        dispenser="dispenser-1", arrivals_until=arrivals_until, real_s=lambda s: s * o.speed,
                        load=o.load)
        if "dispenser-1" not in self.online:
            self.say("⚠ không có máy lấy số / no dispenser: no citizen can get a ticket")
        self.sim = sim
        keys = KeyPresser(client)
        t = client.topics
        svc_prefix = f"{t.root}/state/service/"
        next_status = 0.0
        self.sim_window = (start, end)
        self.say(f"  ngày mô phỏng / simulated: {datetime.fromtimestamp(start, VN_TZ):%d/%m/%Y %H:%M} → "
                 f"{datetime.fromtimestamp(end, VN_TZ):%H:%M}, {sim.stats.arrivals_planned} công dân / citizens planned")
        while not self.stop.is_set():
            now = clock.now()
            if now >= end:
                break
            for p in sim.due(now):
                if p.node in self.online:
                    keys.add(p)
            keys.flush()
            m = client.get(0.02)
            while m is not None:
                self._on_message(sim, m.topic, m.payload, svc_prefix, clock)
                m = client.get(0)
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + (0.25 if self.tty else max(2.0, span / o.speed / 10))
                self._watch_nodes()
                self.status(self._status_line(sim, now, start, end))
        # the last events of presses already made
        drain_until = time.monotonic() + 1.0
        while time.monotonic() < drain_until:
            m = client.get(0.1)
            if m is not None:
                self._on_message(sim, m.topic, m.payload, svc_prefix, clock)
        self.status(self._status_line(sim, min(clock.now(), end), start, end))
        if self.tty:
            self.say("")
        self.summary.update({"sim": sim.stats.as_dict(), "presses_sent": keys.sent, "presses_refused": keys.refused,
                             "presses_unacknowledged": keys.unacknowledged,
                             "sim_start": start, "sim_end": clock.now(), "sim_end_planned": end,
                             "clock_skew_s": getattr(self, "max_skew", 0.0)})

    def _on_message(self, sim: CentreSim, topic: str, payload: bytes, svc_prefix: str, clock: ScaledClock) -> None:
        if self._on_alert(topic, payload) or not payload:
            return
        if topic.startswith(svc_prefix):
            with contextlib.suppress(ValueError, TypeError):
                sim.on_waiting(topic[len(svc_prefix):], int(json.loads(payload).get("waiting", 0)))
            return
        if "/event/" not in topic:
            return
        try:
            ev = json.loads(payload)
        except ValueError:
            return
        now = clock.now()
        if isinstance(ev.get("at"), int | float):
            # the hub's clock and ours are the same scaled clock: only transport delay between them
            self.max_skew = max(getattr(self, "max_skew", 0.0), abs(now - ev["at"]))
        sim.on_event(ev, now)
        if self.web is not None:
            self.web.on_event(ev)
        self.last_line = describe_event(ev, self.opts.lang)
        if self.opts.verbose and not self.tty:
            self.say("  " + self.last_line)

    def _status_line(self, sim: CentreSim, now: float, start: float, end: float) -> str:
        pct = max(0.0, min(1.0, (now - start) / (end - start)))
        bar = "█" * int(pct * 12) + "░" * (12 - int(pct * 12))
        c = sim.counts()
        hhmm = datetime.fromtimestamp(now, VN_TZ).strftime("%H:%M")
        return (f"{hhmm} {bar} {pct * 100:3.0f}% │ cấp {c['issued']} · gọi {c['called']} · xong {c['finished']} · "
                f"báo vắng {c['no-show']} · chuyển {c['transferred']} · chờ {c['waiting']} │ {self.last_line}")

    # ---- stopping ----------------------------------------------------------------------------
    def _shutdown(self) -> None:
        """SIGTERM every daemon's process group, then SIGKILL what is left; then the broker."""
        for p in self.nodes.values():
            if p.alive():
                p.signal_group(signal.SIGTERM)
        deadline = time.monotonic() + 8.0
        for p in self.nodes.values():
            if not p.wait(max(0.1, deadline - time.monotonic())):
                log.warning("%s did not stop on SIGTERM: killing its process group", p.spec.node)
                p.signal_group(signal.SIGKILL)
                p.wait(5)
            p.signal_group(signal.SIGKILL)  # helpers a daemon may have left in its group
            p.close_log()
        if self.broker is not None:
            self.broker.stop()
        self.summary["nodes"] = {n: {"pid": p.pid, "exit_code": p.exit_code} for n, p in self.nodes.items()}
        self.summary["live"] = sorted(self.live)
        self.summary["skipped"] = self.skipped

    # ---- after the day -----------------------------------------------------------------------
    def _report(self) -> None:
        ledger = self.out / "state" / "hub" / "ledger.sqlite"
        end = self.summary.get("sim_end") or self.clock.now()
        self.summary["ledger"] = str(ledger)
        self.summary["accounting"] = ledger_accounting(ledger)
        self.say("")
        try:
            from xephang_reports import build as reports
        except ImportError:
            reports = None  # type: ignore[assignment]
        if reports is not None:
            try:
                rep = reports.report_from_ledger(ledger, self.site, period="today", group_by="service",
                                                 lang=self.opts.lang, now=end)
                self.say(render_report(rep, self.opts.lang))
                (self.out / "report.json").write_text(json.dumps(rep, ensure_ascii=False, indent=1))
                with contextlib.suppress(ImportError):
                    from xephang_reports.render import render_html

                    (self.out / "report.html").write_text(render_html(rep))
                    self.say(f"  báo cáo in được / printable report: {self.out / 'report.html'}")
            except Exception as exc:  # the report must not hide where the outputs are
                log.exception("report failed")
                self.say(f"(báo cáo lỗi / report failed: {exc}; tóm tắt riêng / own summary below)")
                self.say(render_accounting(self.summary["accounting"]))
        else:
            self.say("(xephang_reports.build chưa có / not installed: tóm tắt của demo / the demo's own summary)")
            self.say(render_accounting(self.summary["accounting"]))
        files = output_files(self.out / "sim")
        self.summary["files"] = {k: len(v) for k, v in files.items()}
        self.say("\nKết quả / outputs:")
        self.say(f"  vé / tickets (PNG):        {len(files['tickets'])} in {_dirs(files['tickets'])}")
        if "display-hall" in self.live:
            self.say("  bảng / board: trong cửa sổ / shown in a window (--headless for PNG frames)")
        else:
            self.say(f"  bảng / board frames (PNG): {len(files['frames'])} in {_dirs(files['frames'])}")
        if "announcer-hall" in self.live:
            self.say("  loa / announcements: phát qua loa / played on the sound card (--headless for WAVs)")
        else:
            self.say(f"  loa / announcements (WAV): {len(files['wavs'])} in {_dirs(files['wavs'])}")
        self.say(f"  sổ cái / ledger: {ledger}\n  nhật ký / logs: {self.out / 'logs'}")
        at = datetime.fromtimestamp(float(self.summary.get("sim_end") or self.clock.now()), VN_TZ)
        # the day ran on the demo's sped-up clock: the same report needs its end, not the real clock
        cmd = ["xephang", "report", "--ledger", str(ledger), "--site-file", str(self.opts.site_file.resolve()),
               "--now", f"{at:%Y-%m-%d %H:%M:%S.%f}", "--lang", self.opts.lang]
        self.say(f"  báo cáo này lại / this report again: {shlex.join(cmd)}")
        self.say(f"  thời gian thực / wall time: {self.summary['wall_s']:.1f} s")

    def _write_summary(self) -> None:
        with contextlib.suppress(OSError):
            (self.out / "summary.json").write_text(json.dumps(self.summary, ensure_ascii=False, indent=1, default=str))


def _dirs(paths: list[Path]) -> str:
    ds = sorted({str(p.parent) for p in paths})
    return ", ".join(ds) if ds else "-"


def output_files(sim_dir: Path) -> dict[str, list[Path]]:
    """Tickets (PNG from the dispenser), board frames (PNG from displays) and announcements (WAV)."""
    pngs = sorted(sim_dir.rglob("*.png")) if sim_dir.exists() else []
    wavs = sorted(sim_dir.rglob("*.wav")) if sim_dir.exists() else []
    frames = [p for p in pngs if any(part.startswith("display-") for part in p.relative_to(sim_dir).parts)]
    tickets = [p for p in pngs if p not in set(frames)]
    return {"tickets": tickets, "frames": frames, "wavs": wavs}


def ledger_accounting(ledger: Path) -> dict[str, Any]:
    """Every ticket by state, and the visits' outcomes, straight from the hub's ledger."""
    from xephang_reports.build import open_readonly, quantile

    db = open_readonly(ledger)
    try:
        by_state = dict(db.execute("SELECT state, COUNT(*) FROM tickets GROUP BY state").fetchall())
        outcomes = dict(db.execute("SELECT COALESCE(outcome, 'open'), COUNT(*) FROM visits GROUP BY 1").fetchall())
        waits = [r[0] for r in db.execute("SELECT called_at - issued_at FROM tickets WHERE called_at IS NOT NULL")]
        rated = db.execute("SELECT COUNT(*), AVG(rating) FROM tickets WHERE rating IS NOT NULL").fetchone()
        pauses = db.execute("SELECT COUNT(*) FROM pauses").fetchone()[0]
    finally:
        db.close()
    waits.sort()
    return {"tickets": sum(by_state.values()), "by_state": by_state, "visits": outcomes, "pauses": pauses,
            "rated": rated[0], "mean_rating": round(rated[1], 2) if rated[1] else None,
            "mean_wait_min": round(sum(waits) / len(waits) / 60, 1) if waits else None,
            # the report's own percentile (interpolated): a floor rank here said 45.4 where it said 45.5
            "p90_wait_min": round(quantile(waits, 0.9) / 60, 1) if waits else None}


def render_accounting(a: dict[str, Any]) -> str:
    s = a["by_state"]
    return "\n".join([
        f"Vé cấp / tickets issued: {a['tickets']}  — xong / served {s.get('done', 0)}, đang phục vụ / in service "
        f"{s.get('called', 0)}, chờ / waiting {s.get('waiting', 0)}, vắng mặt sau cùng / final no-shows {s.get('no-show', 0)}, "
        f"huỷ / voided {s.get('voided', 0)}, hết hạn / expired {s.get('expired', 0)}",
        f"Chờ trung bình / mean wait: {a['mean_wait_min']} min (p90 {a['p90_wait_min']}); lượt chuyển / transfers "
        f"{a['visits'].get('transferred', 0)}; tạm nghỉ / pauses {a['pauses']}; đánh giá / ratings {a['rated']} "
        f"(trung bình / mean {a['mean_rating']})",
    ])


def render_report(rep: dict[str, Any], lang: str = "vi") -> str:
    """The hub's report dict (``xephang_reports.build``) as text: ``xephang report``'s own table when
    installed (the head sees the same page as on the hub), else a compact table of ours."""
    try:
        from xephang_reports.render import render_table
    except ImportError:
        return _own_table(rep, lang)
    try:
        return render_table(rep).rstrip("\n")
    except (KeyError, TypeError, ValueError) as exc:  # a report of another version: ours still reads it
        log.warning("report renderer failed (%s): using the demo's table", exc)
        return _own_table(rep, lang)


def _own_table(rep: dict[str, Any], lang: str) -> str:
    vi = lang == "vi"
    period = rep.get("period") or {}
    head = ("Báo cáo trong ngày" if vi else "The day's report") + (f" — {period.get('label')}" if period.get("label") else "")
    cols = (("Cấp", "Issued"), ("Xong", "Served"), ("Vắng", "No-show"), ("Chuyển", "Transf."), ("Chờ TB", "Wait avg"),
            ("Chờ p90", "Wait p90"), ("Đạt hạn", "On time"), ("Phục vụ TB", "Service"), ("Hài lòng", "Satisf."))
    names = [c[0] if vi else c[1] for c in cols]
    lines = [head, f"{'':30}" + "".join(f"{n:>11}" for n in names)]
    rows = [*(rep.get("rows") or []), *([rep["totals"]] if isinstance(rep.get("totals"), dict) else [])]
    for r in rows:
        wait, svc = r.get("wait") or {}, r.get("service_time") or {}
        cells = [r.get("issued"), r.get("served"), r.get("no_shows"), r.get("transferred"), _minutes(wait.get("mean")),
                 _minutes(wait.get("p90")), _percent((r.get("within_target") or {}).get("share")),
                 _minutes(svc.get("mean")), _percent(r.get("satisfaction"))]
        lines.append(f"{str(r.get('label') or r.get('key'))[:29]:30}" + "".join(f"{_cell(c):>11}" for c in cells))
    load = rep.get("counter_load") or []
    if load:
        lines.append("")
        for c in load:
            lines.append(f"  {c.get('label')} ({c.get('officer')}): {c.get('visits')} " + ("lượt" if vi else "visits")
                         + f", {'bận' if vi else 'busy'} {_minutes(c.get('busy_s'))}, "
                         + f"{'tạm nghỉ' if vi else 'paused'} {_minutes(c.get('paused_s'))} ({c.get('pauses')}×)")
    return "\n".join(lines)


def _minutes(seconds: Any) -> str | None:
    return None if seconds is None else f"{seconds / 60:.1f} ph" if isinstance(seconds, int | float) else None


def _percent(share: Any) -> str | None:
    return f"{share * 100:.0f}%" if isinstance(share, int | float) else None


def _cell(v: Any) -> str:
    return "-" if v is None else str(v)


# ---------------------------------------------------------------------------------------------
# CLI


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C and SIGTERM end the day cleanly (the loop sees ``stop``)."""
    def handler(signum: int, _frame: Any) -> None:
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _hhmm(text: str) -> dtime:
    try:
        return dtime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: use HH:MM") from None


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``demo`` to the ``xephang`` command line."""
    p = sub.add_parser("demo", help="a whole centre on this machine / cả trung tâm trên máy này",
                       description="Start a broker, the hub, a dispenser, the counters, the hall board and speaker "
                                   "as processes on simulated hardware, and simulate a working day.")
    p.add_argument("--speed", type=float, default=DEFAULT_SPEED,
                   help=f"simulated seconds per real second (default {DEFAULT_SPEED:g}: 07:30–17:00 in ~2.5 min)")
    p.add_argument("--minutes", type=float, default=None, help="simulated minutes to run (default: until 17:00)")
    p.add_argument("--start", type=_hhmm, default=DAY_START, help="simulated start time, local (default 07:30)")
    p.add_argument("--seed", type=int, default=1, help="random seed of citizens and officers")
    p.add_argument("--out", type=Path, default=None, help="output folder (default ./demo-out/<timestamp>)")
    p.add_argument("--site-file", type=Path, default=Path(os.environ.get("XEPHANG_SITE_FILE", REPO_SITE)))
    p.add_argument("--load", type=float, default=1.0, help="citizen arrivals × this (default 1)")
    p.add_argument("--lang", choices=("vi", "en"), default="vi")
    p.add_argument("--verbose", "-v", action="store_true", help="print every event (not only the live line)")
    p.add_argument("--headless", action="store_true",
                   help="board as PNG frames and announcements as WAVs even when a display / sound card exists")
    p.add_argument("--speaker", choices=("auto", "card", "wav"), default="auto",
                   help="announcements on the sound card (card: try it even when none is listed) or as WAV files; "
                        "a card that fails falls back to WAVs (default auto)")
    p.add_argument("--keep", action="store_true",
                   help="after the simulated day and its report, keep the centre running (web pages, the officer's "
                        "console, the tools) until Ctrl-C")
    p.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    if args.speed <= 0 or args.speed > 10_000:
        print("--speed must be in (0, 10000]", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(logging.WARNING)  # the live line is the output; daemons log to files
    opts = DemoOptions(out=args.out or default_out_dir(), site_file=args.site_file, speed=args.speed,
                       minutes=args.minutes, start=args.start, seed=args.seed, lang=args.lang, verbose=args.verbose,
                       load=args.load, headless=args.headless, speaker=args.speaker, keep=args.keep)
    demo = Demo(opts)
    with _stop_on_signals(demo.stop):
        return demo.run()
