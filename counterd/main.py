"""counterd: the officer's call box and the citizen's rating keys.

The path of a press, all in the owner thread (gpiozero's threads only enqueue presses):

    key (debounced, short/long) → CounterBox core (key map, menus, one request at a time,
    rating window, hub offline) → hub request via the bus (one request_id per press, retried
    with the same id) → reply → core → LED/buzzer patterns.

The box knows the hub's availability from the hub's retained status, what the counter is
serving (and whether it is paused) from the hub's retained ``state/counter/{n}``, and
whether anyone waits for it from ``state/service/{id}``. It never needs a screen.

In sim mode the keys are gpiozero mock pins and ``R/sim/{node}/press`` presses them (drive
low, hold, release), so the whole real path runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import Field, ValidationError

from counterd.board import CounterBoard, sim_config
from counterd.config import BoxConfig
from counterd.keymap import CounterBox, Effect, Flash, Send
from xephang.bus import Bus, Inbound
from xephang.checktext import both
from xephang.clock import Clock
from xephang.contract import (
    REQUEST_MODELS,
    BadPayload,
    CounterState,
    Reply,
    ReplyError,
    ServiceState,
    SimPress,
    counter_node,
    decode,
    new_request_id,
)
from xephang.daemon import BusPressSink, Daemon
from xephang.hw import KeyPress, board_pin_factory
from xephang.presence import NodeWatch
from xephang.settings import DaemonSettings, SettingsError, format_validation_errors
from xephang.site import Site

log = logging.getLogger(__name__)

CONFIG_ALERT = "counter-config"
SCALE_ALERT = "counter-rating-scale"
CONFIG_CODES = ("forbidden", "unknown-counter")
UNSENDABLE = "unsendable"  # a request the box could not build (counted by that code, like a hub's refusal)


class CounterdSettings(DaemonSettings):
    """counterd's settings: the shared ones plus ``[counter]`` (the pushable box config)."""

    counter: BoxConfig = BoxConfig()
    request_timeout_s: float = Field(default=1.0, gt=0, le=30, description="wait per hub request attempt")
    request_attempts: int = Field(default=3, ge=1, le=10)


class CounterDaemon(Daemon[CounterdSettings, BoxConfig]):
    """counterd — the counter call box."""

    role = "counter"
    settings_cls = CounterdSettings
    node_config_model = BoxConfig

    def __init__(self, settings: CounterdSettings, *, bus: Bus | None = None, clock: Clock | None = None,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if not settings.node:
            settings = settings.model_copy(update={"node": self.default_node(settings)})
        self.site_services: tuple[str, ...] = ()
        self.site_rating_scale: int | None = None  # the site file's rating_scale, when the box has one
        self.site_counters: tuple[int, ...] = ()  # the site file's counter numbers, when the box has one
        super().__init__(settings, bus=bus, clock=clock)  # loads the node config (and the site file)
        self._mono = monotonic
        self.presses = BusPressSink(self.bus, self._on_press)  # the keys' presses, handled in the owner thread
        # the core and the board are built up front, so neither is ever missing
        cfg = self.box
        if self.settings.site_file and not self.site_services:
            self._load_site()
        problems = self.number_problems(cfg)
        if problems and self.checking:  # found at the first key press before ("forbidden"): --check says it
            raise SettingsError(problems, "the box's counter number", "số quầy của hộp bấm")
        if problems:  # a running box stays up and says so: a technician's push can put it right
            log.error("%s", "; ".join(problems))
            self.raise_alert(CONFIG_ALERT, f"Hộp bấm {self.node} không thao tác được cho quầy {cfg.number}: kiểm tra số "
                             "quầy của hộp bấm", f"{self.node} cannot act for counter {cfg.number}: check the box's "
                             "counter number", "critical")
        if self.site_counters and cfg.number not in self.site_counters:  # the box's copy may be older than the hub's
            log.warning("counter %s is not in this box's site file (%s): the hub decides", cfg.number,
                        ", ".join(map(str, self.site_counters)))
        self.core: CounterBox = CounterBox(cfg, new_request_id=new_request_id, site_services=self.site_services,
                                           site_rating_scale=self.site_rating_scale)
        self.board: CounterBoard = self._new_board(cfg)
        self._hub_watch = NodeWatch("hub")  # the hub's availability, proof against late Wills
        self.sent: list[Send] = []  # recent requests (tests, health)

    @classmethod
    def default_node(cls, settings: DaemonSettings) -> str:
        assert isinstance(settings, CounterdSettings)
        return counter_node(settings.counter.number)

    @property
    def box(self) -> BoxConfig:
        return self.node_config.current if self.node_config else self.settings.counter

    # ---- node config -------------------------------------------------------------------------
    def initial_node_config(self) -> dict[str, Any]:
        """``[counter]`` completed from the site file: officer, services and the rating scale
        (the default key map then has as many rating keys as the scale; a key map of its own
        with a rating key beyond it is a settings error, every problem listed)."""
        cfg = self.settings.counter
        data = cfg.model_dump(mode="json", exclude_unset=True)
        site = self._load_site()
        if site is None:
            return cfg.model_dump(mode="json")
        site_counter = next((c for c in site.counters if c.number == cfg.number), None)
        if site_counter is not None:
            data["officer"] = cfg.officer or site_counter.officer
            data["services"] = list(cfg.services or site_counter.services)
        if "rating_scale" in cfg.model_fields_set and cfg.rating_scale != site.rating_scale:
            raise SettingsError([f"counter.rating_scale: {cfg.rating_scale}, but the site file rates on "
                                 f"{site.rating_scale} points (rating_scale): leave it out or make them agree"])
        data["rating_scale"] = site.rating_scale
        try:
            return BoxConfig.model_validate(data).model_dump(mode="json")
        except ValidationError as exc:
            raise SettingsError([f"counter.{e}" for e in format_validation_errors(exc, BoxConfig)],
                                f"[counter] on this {site.rating_scale}-point site") from None

    def apply_node_config(self, new: BoxConfig, old: BoxConfig | None) -> bool:
        if self.site_rating_scale is not None and new.rating_scale != self.site_rating_scale:
            raise ValueError(both(f"rating_scale {new.rating_scale}: trung tâm đánh giá theo {self.site_rating_scale} mức",
                                  f"rating_scale {new.rating_scale}: the site rates on {self.site_rating_scale} points"))
        self.clear_alert(SCALE_ALERT)
        if old is not None and new.number != old.number:
            return True  # the node id and the hub's permission follow the number: restart
        if old is None or _hardware(new) != _hardware(old):
            self.board.close()  # a new key map: release the old pins, claim the new ones
            try:
                board = self._new_board(new)
            except Exception:
                # a pin the board refuses (GPIO99, one another program holds): the old key map again,
                # or the box would stay deaf while the push's answer says nothing changed
                if old is not None:
                    try:
                        self.board = self._new_board(old)
                    except Exception:  # the old pins are gone too: said, and the push's own reason answered
                        log.critical("the old key map cannot be claimed again either: the box has no keys "
                                     "until it is restarted", exc_info=True)
                raise
            self.board = board
            self._run(self.core.reconfigure(new.model_copy(update={"keys": self.core.config.keys})))
        else:
            self._run(self.core.reconfigure(new.model_copy(update={"keys": self.board.config.keys})))
        self._refresh_lights()
        return False

    def _load_site(self) -> Site | None:
        """The site file (optional on a box): its services and rating scale are remembered."""
        if not self.settings.site_file:
            return None
        try:
            site = self.settings.load_site()
        except SettingsError as exc:
            log.warning("site file unusable (%s): counter details come from the hub", exc)
            return None
        self.site_services = tuple(site.service_ids())
        self.site_rating_scale = site.rating_scale
        self.site_counters = tuple(c.number for c in site.counters)
        return site

    def number_problems(self, cfg: BoxConfig) -> list[str]:
        """Why this box cannot act as counter ``cfg.number``: the hub and the broker let the account
        counter-N act for counter N only (``contract.counter_node``), and its node is what it logs in as."""
        if self.node == counter_node(cfg.number):
            return []
        saved = self.node_config is not None and self.node_config.rev > 0 and cfg.number != self.settings.counter.number
        where = (f" (từ cấu hình đã đẩy, rev {self.node_config.rev}, trong {self.node_config.path} / from the pushed "
                 f"config rev {self.node_config.rev} in {self.node_config.path})") if saved and self.node_config else ""
        return [f"counter.number {cfg.number}{where}: hộp bấm {self.node} chỉ được thao tác cho quầy của node mình, "
                f"node của quầy {cfg.number} là {counter_node(cfg.number)}; sửa number hoặc node cho khớp / "
                f"{self.node} may act only for the counter its node names (the hub and the broker's ACL let "
                f"{counter_node(cfg.number)} act for counter {cfg.number}): make number and node agree"]

    def check_node_config(self, new: BoxConfig) -> list[str]:
        """A pushed number another box's account acts for is refused (after the restart it asks for, the
        box's password would no longer be its node's); so are services the site does not have (a
        transfer key to one was applied, and every press of it was refused by the hub)."""
        return self.number_problems(new) + self.unknown_services(new.model_dump(mode="json"))

    def check_raw_node_config(self, raw: dict[str, Any]) -> list[str]:
        return self.unknown_services(raw)

    def unknown_services(self, cfg: dict[str, Any]) -> list[str]:
        """Service ids of a box config (raw or dumped) that the site file does not have (none known
        without a site file)."""
        if not self.site_services:
            return []

        def ids(key: str) -> list[str]:
            v = cfg.get(key)
            return [s for s in v if isinstance(s, str)] if isinstance(v, list | tuple) else []

        keys = [k for k in cfg.get("keys") or () if isinstance(k, dict)] if isinstance(cfg.get("keys"), list | tuple) else []
        named = [("services", s) for s in ids("services")] + [("transfer_to", s) for s in ids("transfer_to")]
        named += [(f"keys.{k.get('name')}", a.split(":", 1)[1]) for k in keys for a in (k.get("short"), k.get("long"))
                  if isinstance(a, str) and a.startswith("transfer:")]
        known = sorted(self.site_services)
        return [f"{where}: " + both(f"trung tâm không có lĩnh vực {sid!r} (các lĩnh vực: {known})",
                                    f"the site has no service {sid!r} (its services: {known})")
                for where, sid in named if sid not in self.site_services]

    # ---- lifecycle -------------------------------------------------------------------------
    def setup(self) -> None:
        cfg = self.box
        if self.site_rating_scale is not None and cfg.rating_scale != self.site_rating_scale:
            # a saved config from before the site changed its scale: keys above it stay refused locally
            log.error("node config rates on %s points, the site on %s: push a config with rating_scale = %s",
                      cfg.rating_scale, self.site_rating_scale, self.site_rating_scale)
            self.raise_alert(SCALE_ALERT, f"Hộp bấm quầy {cfg.number}: thang đánh giá {cfg.rating_scale} điểm, "
                             f"trung tâm dùng {self.site_rating_scale} điểm",
                             f"Counter {cfg.number} box rates on {cfg.rating_scale} points, the site on "
                             f"{self.site_rating_scale}", "warning")
        t = self.bus.topics
        self.bus.subscribe(t.status("hub"), self._on_hub_status)
        self.bus.subscribe(t.state_counter(cfg.number), self._on_counter_state)
        self.bus.subscribe(t.all_service_states(), self._on_service_state)
        self.bus.add_disconnect_hook(lambda: self._set_hub_online())
        self.bus.add_connect_hook(lambda: self._set_hub_online())
        log.info("counter %s (%s): keys %s", cfg.number, cfg.officer or "no officer set",
                 ", ".join(f"{k.name}@{k.pin}" for k in self.board.config.keys))
        self._refresh_lights()

    def _new_board(self, cfg: BoxConfig) -> CounterBoard:
        services = self.site_services or self.core.services
        hw = sim_config(cfg, services) if self.settings.sim else cfg
        factory = board_pin_factory(hw.pin_factory, sim=self.settings.sim, checking=self.checking)
        board = CounterBoard(hw, events=self.presses, pin_factory=factory, clock=self._mono)
        # the sim board's extra keys must be known to the core's key map too
        self.core.config = self.core.config.model_copy(update={"keys": hw.keys})
        return board

    def teardown(self) -> None:
        self.board.close()

    # ---- the owner loop ----------------------------------------------------------------------
    def tick(self, now: float) -> None:
        self._run(self.core.tick(self._mono()))
        self._refresh_lights()

    def _on_press(self, press: KeyPress) -> None:
        effects = self.core.press(press.name, press.kind, self._mono())
        log.info("key %s (%s) → %s", press.name, press.kind,
                 ", ".join(_describe(e) for e in effects) or "nothing (double press)")
        self._run(effects)

    def on_sim_press(self, press: SimPress) -> None:
        if press.button == "resume" and not self.core.paused and self.box.key("resume") is None \
                and not any("resume" in (k.short, k.long) for k in self.box.keys):
            # "resume" is reached through the pause toggle, which pauses an open counter
            raise BadPayload("not-paused", f"counter {self.box.number} is not paused: the pause key would pause it, "
                                           "not resume it")
        if not self.board.simulate_press(press.button, press.hold_s):
            raise BadPayload("unknown-button", f"no key for {press.button!r} on this counter box")

    # ---- effects -----------------------------------------------------------------------------
    def _run(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Send):
                self._send(e)
            elif isinstance(e, Flash):
                self.board.flash(e)
        self._refresh_lights()

    def _send(self, s: Send) -> None:
        model = REQUEST_MODELS[s.action]
        try:
            req = model(request_id=s.request_id, source=self.node, counter=self.box.number,
                        sent_at=self.clock.now(), **s.fields)
        except ValidationError as exc:
            # a request the contract refuses (a service id from the hub's state that is no slug, …):
            # answered here as refused, so the box flashes the error and takes the next press; it was
            # left in flight for ever, every later press "busy"
            errors = "; ".join(format_validation_errors(exc, model))
            log.error("cannot send %s (key %s): %s", s.action, s.press, errors)
            refusal = Reply(request_id=s.request_id, action=s.action, status="error",
                            error=ReplyError(code=UNSENDABLE, message=errors[:300]))
            self._run(self.core.on_reply(s.request_id, refusal, self._mono()))
            return
        self.sent.append(s)
        del self.sent[:-50]
        self.bus.request(req, on_reply=lambda reply: self._on_reply(s, reply),
                         timeout_s=self.settings.request_timeout_s, attempts=self.settings.request_attempts)

    def _on_reply(self, s: Send, reply: Reply | None) -> None:
        if reply is not None and reply.status == "error" and reply.error and reply.error.code in CONFIG_CODES:
            self.raise_alert(CONFIG_ALERT, f"Trung tâm từ chối quầy {self.box.number}: kiểm tra số quầy của hộp bấm",
                             f"The hub refuses counter {self.box.number}: check the box's counter number", "critical")
        elif reply is not None and reply.status == "ok":
            self.clear_alert(CONFIG_ALERT)
        log.info("%s %s → %s", s.action, s.request_id[:8],
                 "no reply" if reply is None else reply.status if reply.status == "ok" else
                 f"error {reply.error.code if reply.error else ''}")
        self._run(self.core.on_reply(s.request_id, reply, self._mono()))

    # ---- hub state ---------------------------------------------------------------------------
    def _on_hub_status(self, msg: Inbound) -> None:
        if self._hub_watch.update(msg.payload) is not None:
            self._set_hub_online()

    def _set_hub_online(self) -> None:
        online = self._hub_watch.online and self.bus.connected.is_set()
        self._run(self.core.set_hub_online(online, self._mono()))

    def _on_counter_state(self, msg: Inbound) -> None:
        if not msg.payload:
            return
        self._run(self.core.on_counter_state(decode(CounterState, msg.payload)))

    def _on_service_state(self, msg: Inbound) -> None:
        if not msg.payload:
            return
        st = decode(ServiceState, msg.payload)
        if st.id not in self.site_services:
            self.site_services = (*self.site_services, st.id)
            self.core.site_services = self.site_services
        self.core.on_service_waiting(st.id, st.waiting)
        self._refresh_lights()

    # ---- lights and health --------------------------------------------------------------------
    def _refresh_lights(self) -> None:
        mono = self._mono()
        self.board.show_bases(self.core.status_light(mono), self.core.rating_light(mono))

    @property
    def hub_online(self) -> bool:
        return self.core.hub_online

    def health_details(self) -> dict[str, Any]:
        c, st = self.core, self.core.stats
        keys = {name: {"accepted": k.stats.accepted, "bounces": k.stats.bounces,
                       "double_presses": k.stats.double_presses}
                for name, k in self.board.keys.items()}
        return {
            "counter": self.box.number,
            "officer": self.box.officer,
            "hub_online": c.hub_online,
            "last_action": c.last_action,
            "last_result": c.last_result,
            "last_ticket": c.last_ticket,
            "serving": c.serving.display if c.serving else None,
            "paused": c.paused,
            "in_flight": c.in_flight.action if c.in_flight else None,
            "lights": {"status": c.status_light(self._mono()), "rating": c.rating_light(self._mono())},
            "sent": st.sent, "queued": st.queued, "busy": st.busy,
            "double_presses": sum(k.stats.double_presses for k in self.board.keys.values()),
            "hub_offline_presses": st.hub_offline, "rating_closed": st.rating_closed,
            "errors": st.errors, "timeouts": st.timeouts,
            "keys": keys,
        }


def _hardware(cfg: BoxConfig) -> tuple[Any, ...]:
    return (cfg.keys, cfg.status_led_pin, cfg.rating_led_pin, cfg.buzzer_pin, cfg.pin_factory,
            cfg.debounce_s, cfg.double_press_s, cfg.hold_s, cfg.max_presses)


def _describe(e: Effect) -> str:
    return f"send {e.action}" if isinstance(e, Send) else f"{e.name}"


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``counterd --config FILE``."""
    return CounterDaemon.main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
