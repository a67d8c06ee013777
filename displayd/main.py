"""displayd: the hall board (or one counter's screen) as a daemon.

The pygame frame loop is the owner thread: ``wait_for_work`` blocks on the bus inbox only
until the next redraw is due (clock minute, blink, ticker step), so an idle board sleeps;
``tick`` applies time, asks the hub for ``resync`` after a gap, and draws when the
picture changed. paho's thread never touches the model or pygame.

Data: the retained ``state/hall`` (plus ``state/counter/N``, ``state/service/ID`` and the
hub's status) on connect, then events. Board options (theme, layout, ticker …) are the
node config, pushable by technicians over ``R/config/{node}/set``.
"""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pygame
from pydantic import BaseModel, ConfigDict, Field

from displayd.config import BoardConfig, BoardLabels
from displayd.model import BoardEvent, BoardModel, Call, CounterView, HallSnapshot, Outcome
from displayd.render import BoardRenderer, Frame
from displayd.screen import DisplayScreen, DisplayUnavailable, HeadlessScreen, Screen
from xephang.bus import Bus, Inbound
from xephang.clock import Clock, ScaledClock
from xephang.contract import (
    BadPayload,
    CounterEvent,
    CounterState,
    HallState,
    Reply,
    Resync,
    ResyncData,
    ServiceState,
    SimPress,
    TicketEvent,
    decode,
    new_request_id,
    reply_data,
)
from xephang.daemon import EXIT_CONFIG, Daemon
from xephang.presence import NodeWatch
from xephang.settings import DaemonSettings
from xephang.waittext import WaitRange, wait_range

log = logging.getLogger(__name__)

MAX_IDLE_WAIT_S = 0.25  # wake at least this often to pump window events and check the bus
DISPLAY_MISSING = "display-missing"  # alert id


# ---- the wire → the board model ---------------------------------------------------------------
# The only place displayd reads the contract's models: the model and the renderer take small
# inputs of their own, so they do not move when the hub adds optional fields.


def counter_view(cs: CounterState) -> CounterView:
    """A counter's retained state as the board shows it."""
    serving = cs.serving
    return CounterView(
        number=cs.number,
        state=cs.state,
        ticket=serving.display if serving is not None else None,
        service=serving.service if serving is not None else None,
        label=cs.label_vi,
    )


def hall_snapshot(hs: HallState) -> HallSnapshot:
    """``state/hall`` → the model's snapshot."""
    return HallSnapshot(
        rev=hs.rev,
        at=hs.at,
        counters=tuple(counter_view(c) for c in hs.counters),
        waiting={s.id: s.waiting for s in hs.services},
        wait_ranges={s.id: r for s in hs.services if (r := service_wait_range(s)) is not None},
        last_calls=tuple(
            Call(number=c.display, counter=c.counter, service=c.service, at=c.at, recall=c.kind == "recalled")
            for c in hs.last_calls
        ),
    )


def ticket_event(ev: TicketEvent) -> BoardEvent:
    """``event/ticket/{kind}`` → a board event. For a transfer, ``ticket.service`` is the
    new service and ``from_service`` the old one."""
    t = ev.ticket
    if ev.kind == "transferred":
        return BoardEvent(kind=ev.kind, rev=ev.rev, at=ev.at, number=t.display, service=ev.from_service or t.service,
                          counter=ev.counter, to_service=t.service)
    return BoardEvent(kind=ev.kind, rev=ev.rev, at=ev.at, number=t.display, service=t.service,
                      counter=ev.counter if ev.counter is not None else t.counter)


def counter_event(ev: CounterEvent) -> BoardEvent:
    """``event/counter/{kind}`` (paused, resumed …) → a board event."""
    return BoardEvent(kind=ev.kind, rev=ev.rev, at=ev.at, counter=ev.counter)


def labels_from_hall(hs: HallState, base: BoardLabels | None = None) -> BoardLabels:
    """Labels from the hall state, for a display without the site file; names from the
    site file (``base``) win where both exist."""
    base = base or BoardLabels()
    services = {s.id: (s.name_vi or s.id, s.name_en or s.name_vi or s.id) for s in hs.services if s.name_vi or s.name_en}
    counters = {
        c.number: (c.label_vi or f"Quầy {c.number}", c.label_en or f"Counter {c.number}") for c in hs.counters
    }
    return BoardLabels(
        centre_vi=base.centre_vi if base.services else (hs.site_name_vi or base.centre_vi),
        centre_en=base.centre_en if base.services else (hs.site_name_en or hs.site_name_vi or base.centre_en),
        services={**services, **base.services},
        counters={**counters, **base.counters},
        short=base.short,
    )


def service_waiting(ss: ServiceState) -> tuple[str, int, int]:
    """``state/service/{id}`` → (service id, people waiting, rev)."""
    return ss.id, ss.waiting, ss.rev


def service_wait_range(ss: ServiceState) -> WaitRange | None:
    """``state/service/{id}`` → the wait of a ticket taken now, if the hub sent one."""
    return wait_range(ss.est_wait_low_min, ss.est_wait_high_min, ss.est_wait_open)


class ScreenSettings(BaseModel):
    """Local screen options (not pushable: they need the process to reopen the display)."""

    model_config = ConfigDict(extra="forbid")
    size: tuple[int, int] | None = Field(default=None, description="pixels; empty = the screen's own size (sim: 1920×1080)")
    fullscreen: bool = True
    png_keep: int = Field(default=100, ge=1, le=100_000, description="sim: numbered PNG frames kept in the output folder")
    png_min_interval_s: float = Field(default=0.0, ge=0, le=3600, description="sim: at most one PNG per interval (0 = every change); the last change is always written")
    png_calls_only: bool = Field(default=False, description="sim: numbered PNG frames only for calls and recalls (a whole day in a folder); latest.png still follows every change")


class DisplaySettings(DaemonSettings):
    """displayd's settings: the shared ones, the board options and the screen."""

    display: BoardConfig = BoardConfig()
    screen: ScreenSettings = ScreenSettings()


def open_screen(settings: DisplaySettings, node: str) -> Screen:
    """Headless PNG screen in sim mode; the real display (driver checked) otherwise."""
    if settings.sim:
        out = settings.sim_out / node if settings.sim_out else Path(settings.state_dir) / "frames" / node
        return HeadlessScreen(size=settings.screen.size or (1920, 1080), out_dir=out, keep=settings.screen.png_keep,
                              min_interval_s=settings.screen.png_min_interval_s,
                              calls_only=settings.screen.png_calls_only)
    return DisplayScreen(size=settings.screen.size, fullscreen=settings.screen.fullscreen)


class DisplayDaemon(Daemon[DisplaySettings, BoardConfig]):
    """The hall board / counter screen daemon."""

    role = "display"
    settings_cls = DisplaySettings
    node_config_model = BoardConfig

    def __init__(
        self,
        settings: DisplaySettings,
        *,
        bus: Bus | None = None,
        clock: Clock | None = None,
        screen: Screen | None = None,
    ) -> None:
        super().__init__(settings, bus=bus, clock=clock)
        pygame.font.init()
        self.site_labels = BoardLabels.from_site(settings.load_site()) if settings.site_file else BoardLabels()
        self.labels = self.site_labels
        cfg = self.board_config
        # effects (blink, highlight, reorder window, retries) run on real time even when the
        # demo's simulated clock runs fast; tests' ManualClock drives both
        self._fx = time.monotonic if isinstance(self.clock, ScaledClock) else self.clock.monotonic
        self._wall_rate = self.clock.speed if isinstance(self.clock, ScaledClock) else 1.0
        now = self._fx()
        self.model = BoardModel(now=now, last_calls=cfg.last_calls, highlight_s=cfg.highlight_s)
        self.model.set_ticker(cfg.ticker)
        self.renderer = BoardRenderer(config=cfg, labels=self.labels)
        self.screen = screen
        self._hub_watch = NodeWatch("hub")  # the hub's availability, proof against late Wills
        self._next_draw = 0.0
        self._force_full = True  # next frame redraws everything (new screen, config, expose)
        self._drawn_content: tuple[int, int] | None = None
        self._drawn_call: tuple[str, int, float, bool] | None = None  # the newest call in the last frame
        self._received_at: float | None = None  # perf_counter of the first event not yet on screen
        self.event_to_frame_ms: deque[float] = deque(maxlen=10_000)
        self.frames = 0
        self.last_frame: Frame | None = None
        self._config_gen = 0

    @property
    def board_config(self) -> BoardConfig:
        return self.node_config.current if self.node_config else self.settings.display

    @classmethod
    def default_node(cls, settings: DaemonSettings) -> str:
        d = getattr(settings, "display", None)
        if isinstance(d, BoardConfig) and d.layout == "counter" and d.counter is not None:
            return f"display-counter-{d.counter}"
        return "display-hall"

    # ------------------------------------------------------------------ node config

    def initial_node_config(self) -> dict[str, Any]:
        return self.settings.display.model_dump(mode="json")

    def check_node_config(self, new: BoardConfig) -> list[str]:
        """A counter screen of a counter the centre does not have is refused (a typo showed "Quầy 9 —"
        for good, and the push said applied). The counters known: the site file's and the hub's."""
        if new.layout != "counter" or new.counter is None:
            return []
        known = set(self.labels.counters) | {c.number for c in self.model.counters}
        if known and new.counter not in known:
            have = ", ".join(map(str, sorted(known)))
            return [f"counter {new.counter}: trung tâm không có quầy này (có {have}) / the centre has no counter "
                    f"{new.counter} (it has {have})"]
        return []

    def apply_node_config(self, new: BoardConfig, old: BoardConfig | None) -> bool:
        """Themes, layout, ticker, timings: all applied live, no restart."""
        self.renderer.configure(config=new)
        self.model.configure(last_calls=new.last_calls, highlight_s=new.highlight_s)
        self.model.set_ticker(new.ticker)
        self._config_gen += 1
        self._force_full = True
        return False

    # ------------------------------------------------------------------ setup

    def start(self) -> None:
        """Open the screen, subscribe, connect. With no usable screen, tell the technicians
        (retained alert ``display-missing``) before the process exits."""
        try:
            super().start()
        except DisplayUnavailable as exc:
            self._report_display_missing(exc)
            raise

    def _report_display_missing(self, exc: DisplayUnavailable, wait_s: float = 3.0) -> None:
        try:
            self.bus.start()
            if self.bus.wait_connected(wait_s):
                self.raise_alert(DISPLAY_MISSING, f"Không mở được màn hình: {exc}", f"No screen: {exc}", "critical")
        except Exception:  # the alert is a courtesy: the exit code and the journal carry the error
            log.exception("could not publish the display-missing alert")
        finally:
            self.bus.stop()

    def setup(self) -> None:
        if self.screen is None:
            self.screen = open_screen(self.settings, self.node)
        t = self.bus.topics
        # the screen works: clear a display-missing alert left by an earlier failed start
        self.bus.add_connect_hook(lambda: self.bus.clear(t.alert(self.node, DISPLAY_MISSING)))
        self.bus.subscribe(t.state_hall(), self._on_hall)
        self.bus.subscribe(t.all_counter_states(), self._on_counter_state)
        self.bus.subscribe(t.all_service_states(), self._on_service_state)
        self.bus.subscribe(t.ticket_events(), self._on_ticket_event, retained=False)
        self.bus.subscribe(t.counter_events(), self._on_counter_event, retained=False)
        self.bus.subscribe(t.status("hub"), self._on_hub_status)
        self.bus.add_connect_hook(lambda: self.model.set_link(now=self._fx(), broker_connected=True))
        self.bus.add_disconnect_hook(lambda: self.model.set_link(now=self._fx(), broker_connected=False))
        self.draw()  # "connecting…" at once, not a black screen

    def teardown(self) -> None:
        if self.screen is not None:
            self.screen.close()

    def health_details(self) -> dict[str, Any]:
        lat = sorted(self.event_to_frame_ms)
        return {
            "layout": self.board_config.layout,
            "screen": list(self.screen.size) if self.screen else None,
            "driver": getattr(self.screen, "driver", "headless"),
            "rev": self.model.rev,
            "stale": self.model.stale,
            "frames": self.frames,
            "event_to_frame_ms_p50": round(lat[len(lat) // 2], 2) if lat else None,
            "events": dict(self.model.stats),
        }

    # ------------------------------------------------------------------ inbound (owner thread)

    def _mark_received(self) -> None:
        if self._received_at is None:
            self._received_at = time.perf_counter()

    def _on_hall(self, msg: Inbound) -> None:
        if not msg.payload:
            return
        hs = decode(HallState, msg.payload)
        if not self.settings.site_file:  # no site file: the hub's names are all we have
            self.labels = labels_from_hall(hs, self.site_labels)
            self.renderer.configure(labels=self.labels)
        first, gap = not self.model.synced, self.model.gap
        # a retained delivery is the broker's current state; without the flag it may be one the
        # broker queued for our session while we were away (it ends no catch-up)
        outcome = self.model.load_snapshot(hall_snapshot(hs), now=self._fx(), current=msg.retain)
        # the hub republishes after every change: only the first one and a repair are news
        level = logging.INFO if first or (gap is not None and self.model.gap is None) else logging.DEBUG
        log.log(level, "hall state rev %s: %s", hs.rev, outcome.value)
        self._mark_received()

    def _on_counter_state(self, msg: Inbound) -> None:
        if not msg.payload:
            return
        cs = decode(CounterState, msg.payload)
        if self.model.set_counter(counter_view(cs), rev=cs.rev):
            self._mark_received()

    def _on_service_state(self, msg: Inbound) -> None:
        if not msg.payload:  # the service left the site: its bar goes (it stayed, "0", until a restart)
            self.model.clear_service(msg.topic.rsplit("/", 1)[-1])
            return
        ss = decode(ServiceState, msg.payload)
        sid, waiting, rev = service_waiting(ss)
        if self.model.set_waiting(sid, waiting, rev=rev, wait_range=service_wait_range(ss)):
            self._mark_received()

    def _on_ticket_event(self, msg: Inbound) -> None:
        ev = decode(TicketEvent, msg.payload)
        self._apply(ticket_event(ev))

    def _on_counter_event(self, msg: Inbound) -> None:
        ev = decode(CounterEvent, msg.payload)
        self._apply(counter_event(ev))

    def _apply(self, ev: Any) -> None:
        outcome = self.model.apply(ev, now=self._fx())
        if outcome in (Outcome.APPLIED, Outcome.GAP):
            self._mark_received()
        elif outcome is Outcome.HELD:
            log.info("event rev %s arrived before rev %s: held", ev.rev, (self.model.rev or 0) + 1)

    def _on_hub_status(self, msg: Inbound) -> None:
        online = self._hub_watch.update(msg.payload)
        if online is not None:  # None: the late Will of an older connection, the hub is back already
            self.model.set_link(now=self._fx(), hub_online=online)

    def on_sim_press(self, press: SimPress) -> None:
        if press.button not in ("snapshot", "screenshot"):
            raise BadPayload("unknown-button", f"no key {press.button!r} on the board (it has: snapshot)")
        if not isinstance(self.screen, HeadlessScreen):
            raise BadPayload("unknown-button", "snapshot: this board draws on a real screen, not to PNG files")
        path = self.screen.write_frame()
        log.info("snapshot written to %s", path)

    # ------------------------------------------------------------------ resync

    def _ask_resync(self, now: float) -> None:
        gap = self.model.gap
        # the last rev up to which the board has seen everything (not the newest it applied)
        since = gap[0] - 1 if gap is not None else self.model.rev
        req = Resync(request_id=new_request_id(), source=self.node, since_rev=since)
        log.warning("asking the hub to resync (board rev %s, gap %s)", self.model.rev, self.model.gap)
        self.model.resync_requested(now)
        self.bus.request(req, on_reply=self._on_resync_reply, timeout_s=2.0, attempts=2)

    def _on_resync_reply(self, reply: Reply | None) -> None:
        if reply is None or reply.status != "ok":
            log.warning("resync not answered (%s); will ask again", reply.error if reply else "timeout")
            return
        hs = reply_data(reply, ResyncData).hall  # BadPayload: logged and counted, asked again later
        self.model.load_snapshot(hall_snapshot(hs), now=self._fx())
        self._mark_received()

    # ------------------------------------------------------------------ the frame loop

    def _next_redraw(self, fx: float) -> float:
        return self.renderer.next_redraw_at(self.model, fx, wall=self.clock.now(), wall_rate=self._wall_rate)

    def wait_for_work(self, timeout: float) -> None:
        """Sleep on the bus inbox until the next redraw is due (at most MAX_IDLE_WAIT_S)."""
        fx = self._fx()
        due = fx if self._force_full else min(self._next_draw, self._next_redraw(fx))
        wait = min(max(0.0, due - fx), MAX_IDLE_WAIT_S, max(0.0, timeout))
        if self._received_at is not None:
            wait = 0.0
        self.bus.process(timeout=wait)
        if self.screen is not None:
            for req in self.screen.pump():
                if req == "quit":
                    self.stop_event.set()
                elif req == "redraw":
                    self._force_full = True
                elif req == "snapshot" and isinstance(self.screen, HeadlessScreen):
                    self.screen.write_frame()

    def tick(self, now: float) -> None:
        """Owner-loop turn (``now`` is the wall clock; the board runs on effects time)."""
        fx = self._fx()
        self.model.tick(fx)
        if self.model.resync_due(fx):
            self._ask_resync(fx)
        if self.screen is None:
            return
        if self._force_full or fx >= self._next_draw or self.renderer.needs_full_redraw(self.screen.surface, self.model, fx, wall=now):
            self.draw()
        else:
            self._received_at = None  # what arrived changed nothing visible

    def draw(self) -> Frame | None:
        """Render and present one frame; a PNG is written (sim) when the content changed."""
        if self.screen is None:
            return None
        fx, wall = self._fx(), self.clock.now()
        frame = self.renderer.render(self.screen.surface, self.model, fx, wall=wall, force=self._force_full)
        self._force_full = False
        content = (self.model.version, self._config_gen)
        changed = content != self._drawn_content
        newest = self.model.newest
        call = (newest.number, newest.counter, newest.at, newest.recall) if newest is not None else None
        new_call = changed and call is not None and call != self._drawn_call
        self._drawn_call = call if changed else self._drawn_call
        self.screen.present(None if frame.full else frame.dirty, changed=changed, new_call=new_call)
        self._drawn_content = content
        if self._received_at is not None:
            self.event_to_frame_ms.append((time.perf_counter() - self._received_at) * 1000)
            self._received_at = None
        self.frames += 1
        self.last_frame = frame
        self._next_draw = self._next_redraw(fx)
        return frame


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``displayd --config PATH``."""
    try:
        return DisplayDaemon.main(argv)
    except DisplayUnavailable as exc:
        # a black TV is worse than a restart: exit non-zero with the reason in the journal
        log.error("%s", exc)
        print(f"displayd: {exc}", file=sys.stderr, flush=True)
        return EXIT_CONFIG


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
