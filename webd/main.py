"""webd: the centre in a browser — citizens' live ticket and hall pages, the head's dashboard
and reports, the procedure guides — served on the LAN from the hub's Pi.

Two threads, one owner each:

- the daemon's owner thread (``Daemon.run``) owns the MQTT bus and the ``LiveHall`` model: it
  applies retained state and events, asks the hub for ``resync`` after a gap and for reports,
  and after every change hands an immutable ``Snapshot`` to the web side;
- the web thread runs uvicorn's event loop with the Starlette app (``webd.app``): pages read
  the latest snapshot, live pages wait for the next one (Server-Sent Events), and a report is
  asked through the owner thread (``bus.call_soon``) and awaited as a future.

webd writes nothing but its own status/health and its ``report``/``resync`` requests (ACL).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel

from webd.config import WebSettings
from webd.live import LiveHall
from webd.server import (  # deadlines, a cap per address, the open files
    ACCEPT_BACKLOG,
    GuardedH11Protocol,
    pace_accept_errors,
    raise_open_files,
    tls_handshake_deadline,
)
from webd.server import refused as connections_closed
from xephang.bus import Bus, Inbound
from xephang.checktext import both
from xephang.clock import Clock
from xephang.contract import (
    MAX_ALERTS_PER_NODE,
    REQUEST_MODELS,
    TICKET_WAIT_MAX,
    Alert,
    BadPayload,
    ConfigAck,
    ConfigSet,
    ConfigState,
    CounterEvent,
    CounterState,
    HallState,
    NodeStatus,
    Reply,
    ReplyError,
    ReportRequest,
    Resync,
    ResyncData,
    ServiceState,
    TicketEvent,
    TicketWait,
    TicketWaitData,
    decode,
    loads,
    new_request_id,
    packed_refused,
    reply_data,
)
from xephang.daemon import CHECKING, Daemon
from xephang.limits import RateLimit
from xephang.reader import Reader
from xephang.settings import DaemonSettings
from xephang.site import Site

log = logging.getLogger(__name__)

# what one node may say of itself (status, alerts) that webd reads: at once, then a minute (_paced)
WATCH_USERNAME = "web-watch"  # the account of webd's second connection (xephang broker-config)
NODE_BURST = 60
NODE_PER_MINUTE = 60
FLOOD_QUIET_S = 5.0  # web-watch paced nothing for this long: the flood is over, read the retained again
REREAD_SETTLE_S = 3.0  # after the SUBACK, the retained alerts have come (a few hundred at most)

RESYNC_RETRY_S = 3.0
# the phone page's wait: the hub's range for each watched waiting ticket (``ticket-wait``), asked
# at most once per WAIT_ASK_GAP_S (one request, up to TICKET_WAIT_MAX tickets, in flight at a
# time); a ticket's range is asked again when the hall moved and WAIT_MOVED_S passed, or after
# WAIT_REFRESH_S; a page or stream keeps its ticket watched for WATCH_S
WAIT_ASK_GAP_S = 2.0
WAIT_MOVED_S = 10.0
WAIT_REFRESH_S = 60.0
WATCH_S = 90.0
CONFIG_WAIT_S = 8.0  # a roster change waits this long for the hub's ack
VOICE_WAIT_S = 30.0  # a voice pack install: the announcer downloads and checks the pack first
EXIT_WEB = 1  # the HTTP server could not run (port taken, …): a failure, so systemd restarts webd


def _node_level(root: str, topic: str) -> str:
    """The node a board's message is of: ``{root}/node/{node}/…`` or ``{root}/config/{node}/…``."""
    levels = topic[len(root) + 1:].split("/")
    return levels[1] if len(levels) > 1 else topic


class WebDaemon(Daemon[WebSettings, BaseModel]):  # no node config
    """webd — the centre's web pages."""

    role: ClassVar[str] = "web"
    settings_cls: ClassVar[type[DaemonSettings]] = WebSettings
    health_interval_s: ClassVar[float] = 30.0
    tick_interval_s: ClassVar[float] = 0.5

    def __init__(self, settings: WebSettings, *, bus: Bus | None = None, clock: Clock | None = None,
                 serve: bool = True) -> None:
        super().__init__(settings, bus=bus, clock=clock)
        self._own_bus = bus is None  # a real broker: the watcher too (setup)
        self.watcher: Reader | None = None
        self._reread_from: float | None = None  # monotonic: web-watch's SUBACK, the retained alerts follow
        self._reread_paced = 0
        self._alerts_heard: set[tuple[str, str]] = set()
        self._paced_seen, self._paced_changed, self._flooded = 0, 0.0, False
        self.rereads = 0  # web-watch's filters read again after a flood
        from webd.app import WebApp

        self.site = settings.load_site()
        self.model = LiveHall()
        self.web = WebApp(settings, self.site, ask=self.ask_from_web, now=self.clock.now, watch=self.watch_from_web)
        self._serve = serve
        self._servers: list[Any] = []  # uvicorn servers: HTTP, and HTTPS beside it
        self._thread: threading.Thread | None = None
        self._shown_version = -1
        self._resync_inflight = False
        self._resync_next = 0.0
        self._resync_since: int | None = None
        self._resync_retry = False
        self.web_failed = False
        self.resyncs = 0
        self.site_rev: int | None = None  # rev of the hub's pushed site webd shows (None: the site file)
        self._config_waits: dict[str, tuple[float, Callable[[Reply | None], None]]] = {}
        # applied pushes whose new site has not reached webd yet: answered when it does (or at the
        # deadline), so the page the head lands on shows what the hub applied
        self._site_waits: list[tuple[float, int, Reply, Callable[[Reply | None], None]]] = []
        self.clock_speed = settings.clock.speed if settings.clock.origin is not None else 1.0
        self._watched: dict[int, float] = {}  # ticket id → watched until (monotonic)
        self._wait_asked: dict[int, tuple[float, int]] = {}  # ticket id → (when, hall rev) last asked
        self._wait_inflight = False
        self._wait_next = 0.0
        self.wait_asks = 0
        self.accept_errors: dict[str, int] = {"accept-errors": 0}  # out of open files on accepting (webd.server)
        self._node_limit = RateLimit(burst=NODE_BURST, per_minute=NODE_PER_MINUTE)

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        t = self.bus.topics
        self.bus.subscribe(t.state_hall(), self._on_hall)
        self.bus.subscribe(t.all_counter_states(), self._on_counter)
        self.bus.subscribe(t.all_service_states(), self._on_service)
        self.bus.subscribe(t.state_summary(), self._on_summary)
        self.bus.subscribe(t.ticket_events(), self._on_ticket_event, retained=False)
        self.bus.subscribe(t.counter_events(), self._on_counter_event, retained=False)
        # what the boards say of themselves: QoS 0 (bus.subscribe), and paced per node (_paced); with
        # web.watch_password_file read by a connection of its own (a board's flood of its own status
        # then holds nothing else: webd heard a call 44 s late behind one display's flood)
        pw = self.settings.web.watch_password_file
        ann = self.settings.web.announcer
        # … and the hall speaker's config (its voice pack) and its answers to the head's voice
        # installs: its own password writes them (config/{ann}/state, ack), and a flood of its state
        # on the main connection held webd's events and the officers' replies 10-30 s (officers were
        # told "not done" of what the hub had done), so they are read the same way, and paced
        self._watch_filters = [t.all_status(), t.all_alerts(), t.config_state(ann), t.config_ack(ann)]
        elsewhere = pw is not None and self._own_bus
        self.bus.subscribe(t.all_status(), self._on_status, qos=0, elsewhere=elsewhere)
        self.bus.subscribe(t.all_alerts(), self._on_alert, qos=0, elsewhere=elsewhere)
        self.bus.subscribe(t.config_state(ann), self._on_announcer_config, qos=0, elsewhere=elsewhere)
        self.bus.subscribe(t.config_ack(ann), self._on_announcer_ack, retained=False, qos=0, elsewhere=elsewhere)
        # web-watch's SUBACK, handed in behind nothing and before the retained messages that follow it
        self._mark_topic = f"{t.root}/local/{WATCH_USERNAME}/subscribed"
        self.bus.subscribe(self._mark_topic, self._watch_subscribed, qos=0, elsewhere=True, retained=False)
        if elsewhere:
            for f in self._watch_filters:  # the main session (persistent) may hold them from an older webd
                self.bus.forget(f)
            # paced per node as it comes, before webd's queue of what boards say (2,000, shared): one
            # board's status at 3,000 a second filled it, and another board's alert (or its clear)
            # was dropped with the flood and never shown (red team, 2026-12-07)
            self.watcher = Reader(self.settings.broker, t, self.bus.hand_in, password_file=pw, username=WATCH_USERNAME,
                                  filters=self._watch_filters, persistent=False, keep_retained=True,
                                  given_up=lambda: self.bus.call_soon(self._watch_here),
                                  pace=RateLimit(burst=NODE_BURST, per_minute=NODE_PER_MINUTE),
                                  pace_key=functools.partial(_node_level, t.root),
                                  on_subscribed=self._watch_subscribed_mark,
                                  refused_filters=lambda fs: self.bus.call_soon(lambda: [self.bus.read_here(f)
                                                                                         for f in fs]))
            self.watcher.start()
        # the hub's live site (retained) and the answers to the head's roster changes (the hub's own
        # account alone writes them)
        self.bus.subscribe(t.config_state("hub"), self._on_hub_config)
        self.bus.subscribe(t.config_ack("hub"), self._on_hub_ack, retained=False)
        self.bus.add_connect_hook(self._on_connected)
        self.bus.add_disconnect_hook(lambda: self.model.set_link(False))
        if self._serve:
            self._start_server()

    # ---- what a flood made the broker drop on its way to web-watch, read again
    def _watch_subscribed_mark(self) -> None:
        """(paho's thread) web-watch's SUBACK: a mark in the same queue as the retained messages that
        follow it, with how many it had paced by then (so a retained one paced after it is known)."""
        w = self.watcher
        self.bus.hand_in(Inbound(self._mark_topic, str(w.stats.paced if w is not None else 0).encode(), False))

    def _watch_subscribed(self, msg: Inbound) -> None:
        """web-watch's filters are (re)subscribed: the retained alerts follow. For REREAD_SETTLE_S,
        the alerts heard are noted; an alert webd shows that none of them names was cleared while
        it was not heard (a reconnect, or the broker dropped the clear behind a flood)."""
        self._reread_from = time.monotonic()
        self._reread_paced = int(msg.payload or b"0")
        self._alerts_heard = set()

    def _reread_after_flood(self, mono: float) -> None:
        """A board's flood (web-watch paced some of it) may have filled the broker's queue for
        web-watch, which then dropped what came behind, another board's alert or its clear, and
        a clean session never hears a retained message again: FLOOD_QUIET_S after the flood, read
        them all again (``Reader.refresh``) and drop the alerts nobody holds any more."""
        w = self.watcher
        if w is None:
            return
        if w.stats.paced != self._paced_seen:
            self._paced_seen, self._paced_changed, self._flooded = w.stats.paced, mono, True
        elif self._flooded and mono - self._paced_changed >= FLOOD_QUIET_S and self._reread_from is None:
            self._flooded = False
            # the buckets full again: the retained copies are not paced (the flooder's, five seconds
            # after its flood, would be, and that would count as a flood and read again, for ever)
            w.pace = RateLimit(burst=NODE_BURST, per_minute=NODE_PER_MINUTE)
            if w.refresh():
                self.rereads += 1
                log.info("%s: a flood ended; the boards' retained statuses and alerts read again", WATCH_USERNAME)
        if self._reread_from is not None and mono - self._reread_from >= REREAD_SETTLE_S:
            if w.stats.paced != self._reread_paced:
                self._flooded = True  # flooded again meanwhile: what came may be short; read again later
            else:
                for node, alert_id in [k for k in self.model.alerts if k not in self._alerts_heard]:
                    log.info("alert %s/%s: cleared while it was not heard", node, alert_id)
                    self.model.on_alert(node, alert_id, None)
            self._reread_from = None

    def _watch_here(self) -> None:
        """The broker refused ``web-watch`` for good: the main connection reads the boards' statuses
        and alerts, as before xephang/reader.py (a board's flood of them then holds the hub's calls)."""
        log.warning("%s is refused: the main connection reads the boards' statuses and alerts", WATCH_USERNAME)
        for f in self._watch_filters:
            self.bus.read_here(f)

    def teardown(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.web.studio.recogniser is not None:
            self.web.studio.recogniser.close()
        for srv in self._servers:
            srv.should_exit = True
        if self._thread is not None:
            self._thread.join(5)

    def _start_server(self) -> None:
        """The listeners, in one thread and one event loop (the app's live pages belong to one loop):
        HTTP on ``port`` and, with ``https_port``, HTTPS there too; or HTTPS alone on ``port``."""
        import uvicorn

        w = self.settings.web
        tls = {"ssl_certfile": str(w.tls_certfile), "ssl_keyfile": str(w.tls_keyfile)} if w.tls_certfile else {}

        def listener(port: int, *, https: bool, lifespan: str) -> uvicorn.Server:
            return uvicorn.Server(uvicorn.Config(
                self.web.asgi, host=w.listen, port=port, log_level="warning", access_log=False, proxy_headers=False,
                log_config=None,  # uvicorn's lines through the daemon's own (paced) handler
                server_header=False, timeout_graceful_shutdown=2, lifespan=lifespan, http=GuardedH11Protocol,
                ws="none", loop="asyncio", backlog=ACCEPT_BACKLOG,
                limit_concurrency=w.max_streams + 50, **(tls if https else {})))  # type: ignore[arg-type]

        soft, _ = raise_open_files()
        log.info("open files: up to %s", soft)

        if w.https_port is None:
            self._servers = [listener(w.port, https=bool(tls), lifespan="on")]
        else:  # the app's startup runs once, with the first listener
            self._servers = [listener(w.port, https=False, lifespan="on"),
                             listener(w.https_port, https=True, lifespan="off")]
        self._thread = threading.Thread(target=self._serve_all, name="web", daemon=True)
        self._thread.start()
        for srv in self._servers:
            log.info("web pages on %s://%s:%s/ (public %s)", "https" if srv.config.is_ssl else "http", w.listen,
                     srv.config.port, w.public_url)

    def _serve_all(self) -> None:
        """The web thread: every listener in one loop; the second opens once the first (and the
        app's startup) is up. One that cannot open its port ends the thread: tick() sees it."""
        servers = self._servers

        async def listen(srv: Any) -> None:
            try:
                await srv.serve()
            except SystemExit:  # uvicorn's answer to a port it cannot open (it logged why): close the others
                for other in servers:
                    other.should_exit = True

        async def serve() -> None:
            tls_handshake_deadline(asyncio.get_running_loop())
            self.accept_errors = pace_accept_errors(asyncio.get_running_loop())
            first = asyncio.create_task(listen(servers[0]))
            while not servers[0].started and not first.done():
                await asyncio.sleep(0.02)
            await asyncio.gather(first, *(listen(s) for s in servers[1:] if not first.done()))

        with asyncio.Runner(loop_factory=servers[0].config.get_loop_factory()) as runner:
            runner.run(serve())

    def run(self) -> int:
        code = super().run()
        return EXIT_WEB if self.web_failed and code == 0 else code

    def wait_for_work(self, timeout: float) -> None:
        self.bus.process(timeout=timeout)
        self._show()

    def tick(self, now: float) -> None:
        if self._thread is not None and not self._thread.is_alive() and not self.stop_event.is_set():
            w = self.settings.web
            log.error("the web server stopped (port %s%s taken?): exiting so systemd restarts webd", w.port,
                      f" or {w.https_port}" if w.https_port else "")
            self.web_failed = True
            self.stop_event.set()
        mono = time.monotonic()
        for rid, (until, done) in list(self._config_waits.items()):
            if mono >= until:  # the hub did not answer the push
                del self._config_waits[rid]
                done(None)
        self._ask_waits(mono)
        self._reread_after_flood(mono)
        for w in [w for w in self._site_waits if mono >= w[0]]:
            self._site_waits.remove(w)
            w[3](w[2])
        if (self.model.gap or self._resync_retry) and not self._resync_inflight \
                and time.monotonic() >= self._resync_next:
            self._ask_resync(self._resync_since if self._resync_retry else self.model.missing_from())

    def health_details(self) -> dict[str, Any]:
        return {"rev": self.model.rev, "synced": self.model.synced, "tickets": len(self.model.tickets),
                "resyncs": self.resyncs, "streams": self.web.streams, "sessions": len(self.web.sessions),
                "connections_closed": {**connections_closed, **self.accept_errors},
                "watch": None if self.watcher is None else {"connected": self.watcher.connected,
                                                            "received": self.watcher.stats.received,
                                                            "paced": self.watcher.stats.paced,
                                                            "rereads": self.rereads,
                                                            "gave_up": self.watcher.gave_up}}

    def _show(self) -> None:
        """Hand the web side a new snapshot after a change (one reference swap there)."""
        if self.model.version != self._shown_version:
            self._shown_version = self.model.version
            self.web.publish(self.model.snapshot())

    # ------------------------------------------------------------------ inbound
    def _on_connected(self) -> None:
        self.model.set_link(True)
        # what happened while we were away: the events we missed, or (first time) today's
        self._ask_resync(self.model.rev if self.model.begun else None)

    def _on_hall(self, msg: Inbound) -> None:
        if msg.payload:
            self.model.on_hall(decode(HallState, msg.payload))

    def _on_counter(self, msg: Inbound) -> None:
        if msg.payload:
            self.model.on_counter(decode(CounterState, msg.payload))

    def _on_service(self, msg: Inbound) -> None:
        if msg.payload:
            self.model.on_service(decode(ServiceState, msg.payload))

    def _on_summary(self, msg: Inbound) -> None:
        if msg.payload:
            self.model.on_summary(loads(msg.payload))  # the contract's reading: no NaN, no lone surrogate

    def _on_ticket_event(self, msg: Inbound) -> None:
        self._event(decode(TicketEvent, msg.payload))

    def _on_counter_event(self, msg: Inbound) -> None:
        self._event(decode(CounterEvent, msg.payload))

    def _event(self, ev: TicketEvent | CounterEvent) -> None:
        if self.model.on_event(ev) and not self._resync_inflight:
            self._ask_resync(self.model.missing_from())
        self._show()  # a call reaches the phones now, not at the end of the inbox

    def _on_hub_config(self, msg: Inbound) -> None:
        """The hub's retained config state: its live site (a roster pushed today). The pages and
        the console's "which counter is mine" follow it; a site that does not validate is kept
        out (the hub validated it; this is a reader's guard)."""
        if not msg.payload:
            return
        st = decode(ConfigState, msg.payload)
        try:
            site = Site.model_validate(st.config)
        except ValueError as exc:
            raise BadPayload("invalid", f"the hub's site rev {st.rev} does not validate here: {str(exc)[:200]}") from None
        self.site = site
        self.site_rev = st.rev
        self.web.set_site(site, st.rev)
        for w in [w for w in self._site_waits if w[1] <= st.rev]:
            self._site_waits.remove(w)
            w[3](w[2])

    def _on_hub_ack(self, msg: Inbound) -> None:
        ack = decode(ConfigAck, msg.payload)
        wait = self._config_waits.pop(ack.request_id, None)
        if wait is None:
            return  # another tool's push
        ok = ack.status in ("applied", "restart-required")
        reply = Reply(request_id=ack.request_id, action="config", status="ok" if ok else "error",
                      data={"rev": ack.rev, "changed": ack.changed},
                      rev=ack.rev, error=None if ok else ReplyError(code=ack.status, message="\n".join(ack.errors)))
        if ok and (self.site_rev is None or self.site_rev < ack.rev):
            self._site_waits.append((time.monotonic() + CONFIG_WAIT_S, ack.rev, reply, wait[1]))
            return
        wait[1](reply)

    def _on_announcer_config(self, msg: Inbound) -> None:
        self._paced(self.settings.web.announcer)
        if msg.payload:
            config = dict(decode(ConfigState, msg.payload).config)
            # the voice page reads these as text (the speaker's own account writes this state)
            bad = [k for k in ("voice_pack", "voice_pack_url", "voice_pack_sha256")
                   if config.get(k) is not None and not isinstance(config[k], str)]
            if bad:
                raise BadPayload("invalid", f"the announcer's config state has {', '.join(bad)} that is not text")
            from webd.voice import odd_reading_options

            odd = odd_reading_options(config)
            if odd:  # kept (its pack is right), read as the defaults (webd.voice.reading_options)
                log.warning("the announcer's reading options %s are none it could hold: the voice page reads the "
                            "defaults", ", ".join(odd))
            self.web.set_announcer_config(config)

    def _on_announcer_ack(self, msg: Inbound) -> None:
        self._paced(self.settings.web.announcer)
        ack = decode(ConfigAck, msg.payload)
        wait = self._config_waits.pop(ack.request_id, None)
        if wait is None:
            return  # a technician's push
        ok = ack.status in ("applied", "restart-required")
        wait[1](Reply(request_id=ack.request_id, action="config", status="ok" if ok else "error", data={"rev": ack.rev},
                      rev=ack.rev, error=None if ok else ReplyError(code=ack.status, message="\n".join(ack.errors))))

    def _push_voice(self, params: dict[str, Any], done: Callable[[Reply | None], None]) -> None:
        """The head's recorded pack (or the one before it), pushed to the hall's announcer as webd
        (``R/config/{announcer}/set/web``): only its URL and checksum."""
        if not self.bus.connected.is_set():
            done(Reply(request_id=params["request_id"], action="config", status="error",
                       error=ReplyError(code="unreachable", message="webd is not connected to the broker")))
            return
        push = ConfigSet(request_id=params["request_id"], source=self.node, by=params["by"], config=params["config"])
        self._config_waits[push.request_id] = (time.monotonic() + VOICE_WAIT_S, done)
        # expires with the wait (as `xephang config push`): a speaker that is off now would otherwise
        # install it when it comes back, after the head was told it did not answer
        self.bus.publish(self.bus.topics.config_set(self.settings.web.announcer, self.node), push, qos=1,
                         expiry_s=int(VOICE_WAIT_S))

    def _push_site(self, params: dict[str, Any], done: Callable[[Reply | None], None]) -> None:
        """The head's roster change, pushed to the hub as webd (``R/config/hub/set/web``)."""
        if not self.bus.connected.is_set():
            done(Reply(request_id=params["request_id"], action="config", status="error",
                       error=ReplyError(code="unreachable", message="webd is not connected to the broker")))
            return
        push = ConfigSet(request_id=params["request_id"], source=self.node, by=params["by"],
                         base_rev=params["base_rev"], config={"counters": params["counters"]})
        self._config_waits[push.request_id] = (time.monotonic() + CONFIG_WAIT_S, done)
        self.bus.publish(self.bus.topics.config_set("hub", self.node), push, qos=1, expiry_s=int(CONFIG_WAIT_S))

    def _node_of(self, msg: Inbound, levels_wanted: int) -> list[str]:
        levels = self.bus.topics.parse(msg.topic)  # node/{node}/status, node/{node}/alert/{id}
        if len(levels) != levels_wanted:
            raise BadPayload("bad-topic", f"unexpected topic {msg.topic[:120]!r}")
        return levels

    def _paced(self, node: str) -> None:
        """What one node says of itself (status, alerts, the speaker's config state and acks): at most ``NODE_BURST`` messages at once,
        then ``NODE_PER_MINUTE``. Each one rebuilds the snapshot every open page reads and wakes
        every stream: one board's password flooding its own retained status at 35,000 messages
        a second left webd minutes behind the hub. A board says a few things an hour."""
        if self._node_limit.take(node, time.monotonic()):
            raise BadPayload("flood", f"{node} says more than {NODE_PER_MINUTE} things a minute of itself")

    def _on_status(self, msg: Inbound) -> None:
        self._paced(self._node_of(msg, 3)[1])
        if msg.payload:
            st = decode(NodeStatus, msg.payload)
            # a board may write its own status topic only (ACL): what it says of another node
            # (the hub "offline", which would grey every page) is not believed
            if st.node != self._node_of(msg, 3)[1]:
                raise BadPayload("wrong-sender", f"status of {st.node!r} on {msg.topic[:120]!r}")
            was = self.model.hub_online
            self.model.on_status(st)
            if st.node == "hub" and st.online and not was and self.bus.connected.is_set() \
                    and not self._resync_inflight:
                self._ask_resync(self.model.rev if self.model.begun else None)

    def _on_alert(self, msg: Inbound) -> None:
        levels = self._node_of(msg, 4)
        node, alert_id = levels[1], levels[3]
        if self._reread_from is not None:  # (heard, even if paced below: not a clear)
            self._alerts_heard.add((node, alert_id))
        self._paced(node)
        alert = decode(Alert, msg.payload) if msg.payload else None
        if alert is not None and (alert.node, alert.id) != (node, alert_id):  # shown under its payload's name
            raise BadPayload("wrong-sender", f"alert {alert.node!r}/{alert.id!r} on {msg.topic[:120]!r}")
        if alert is not None and (node, alert_id) not in self.model.alerts and \
                sum(1 for n, _ in self.model.alerts if n == node) >= MAX_ALERTS_PER_NODE:
            raise BadPayload("too-many", f"{node} already has {MAX_ALERTS_PER_NODE} open alerts: {alert_id!r} not kept")
        self.model.on_alert(node, alert_id, alert)

    # ------------------------------------------------------------------ resync
    def _ask_resync(self, since: int | None) -> None:
        self._resync_inflight = True
        self._resync_since = since
        self.resyncs += 1
        req = Resync(request_id=new_request_id(), source=self.node, since_rev=since)
        # each reply is read against what *it* asked (another resync may have been sent since)
        self.bus.request(req, on_reply=lambda r: self._on_resync(r, since), timeout_s=2.0, attempts=2)

    def _on_resync(self, reply: Reply | None, since: int | None) -> None:
        self._resync_inflight = False
        if reply is None or reply.status != "ok":
            log.warning("resync not answered (%s): will ask again", reply.error if reply else "timeout")
            # the hub says when it will answer again (``rate-limited``): asking sooner only wastes a turn
            later = reply.error.retry_after_s if reply is not None and reply.error is not None else None
            self._resync_next = time.monotonic() + max(RESYNC_RETRY_S, later or 0)
            self._resync_retry = True  # tick asks again, from where this one asked
            return
        try:
            data = reply_data(reply, ResyncData)
            hall, events = data.hall, data.typed_events()
        except BadPayload as exc:  # a reply we cannot read: logged, asked again later
            log.warning("resync reply unreadable: %s", str(exc)[:200])
            self._resync_next = time.monotonic() + RESYNC_RETRY_S
            self._resync_retry = True
            return
        self._resync_retry = False
        if since is None:  # a snapshot only (no events by design)
            if not self.model.begun:
                first = self.model.begin(hall, self.settings.web.catchup_events)  # today's events, read back
                if first is not None:
                    self._ask_resync(first)
            else:
                self.model.on_hall(hall)
            self._show()
            return
        more = self.model.on_resync(hall, events, data.more)
        if more or self.model.gap:
            self._ask_resync(self.model.missing_from())
        self._show()

    # ------------------------------------------------------------------ the phones' waits
    def _ask_waits(self, mono: float) -> None:
        """Ask the hub for the ranges of the waiting tickets phones are looking at (owner thread)."""
        for tid in [t for t, until in self._watched.items() if until < mono]:
            del self._watched[tid]
            self._wait_asked.pop(tid, None)
        if self._wait_inflight or mono < self._wait_next or not self._watched or not self.bus.connected.is_set() \
                or not self.model.synced:
            return
        rev = self.model.rev

        def due(tid: int) -> float | None:
            t = self.model.tickets.get(tid)
            if t is not None and t.state != "waiting":
                return None
            last = self._wait_asked.get(tid)
            if last is None:
                return 0.0  # never asked: first (a ticket webd never saw too: the hub's answer carries it)
            when, at_rev = last
            lost = self.model.adopted.get(tid)
            if lost is not None and lost[0] is None and at_rev < lost[1]:
                return 0.0  # an adopted ticket's own event (a requeue, a transfer) hid its count: ask now
            if mono - when >= WAIT_REFRESH_S or (t is not None and at_rev != rev and mono - when >= WAIT_MOVED_S):
                return when
            return None

        ids = sorted((d, tid) for tid in self._watched if (d := due(tid)) is not None)
        ids_ = [tid for _, tid in ids[:TICKET_WAIT_MAX]]
        if not ids_:
            return
        for tid in ids_:
            self._wait_asked[tid] = (mono, rev)
        self._wait_inflight = True
        self._wait_next = mono + WAIT_ASK_GAP_S
        self.wait_asks += 1
        req = TicketWait(request_id=new_request_id(), source=self.node, ticket_ids=ids_)
        self.bus.request(req, on_reply=self._on_waits, timeout_s=3.0, attempts=1)

    def _on_waits(self, reply: Reply | None) -> None:
        self._wait_inflight = False
        if reply is None or reply.status != "ok":
            log.info("ticket-wait not answered: %s", reply.error if reply is not None else "timeout")
            return
        try:
            waits = reply_data(reply, TicketWaitData).waits
        except BadPayload as exc:  # a hub of another version: the pages keep the printed ranges
            self.bus.stats.dropped += 1
            log.warning("ticket-wait reply does not read: %s", exc)
            return
        self.model.on_waits(waits, reply.rev if reply.rev is not None else self.model.rev)
        self._show()

    def watch_from_web(self, ticket_id: int) -> None:
        """Called from the web thread: a phone shows this ticket; keep its range fresh."""
        self.bus.call_soon(lambda: self._watch(ticket_id))

    def _watch(self, ticket_id: int) -> None:
        fresh = ticket_id not in self._watched
        if fresh and len(self._watched) >= 2000:
            return  # more phones than a hall holds: the rest show the printed range
        self._watched[ticket_id] = time.monotonic() + WATCH_S
        if fresh:
            self._ask_waits(time.monotonic())

    # ------------------------------------------------------------------ from the web thread
    def ask_from_web(self, kind: str, params: dict[str, Any], done: Callable[[Reply | None], None]) -> None:
        """Called from the web thread: run a hub request in the owner thread; ``done`` runs in the
        owner thread with the reply (or None)."""
        if kind == "act":  # an officer's console click (webd.app.WebApp.act)
            self.bus.call_soon(lambda: self._act(params, done))
            return
        if kind == "site":  # the head's roster change (webd.app.WebApp.roster_post)
            self.bus.call_soon(lambda: self._push_site(params, done))
            return
        if kind == "voice":  # the head's voice pack install (webd.app.WebApp.voice_install)
            self.bus.call_soon(lambda: self._push_voice(params, done))
            return
        if kind != "report":
            raise ValueError(kind)
        req = ReportRequest(request_id=new_request_id(), source=self.node, packed=True, **params)  # unpack_report

        def answered(reply: Reply | None) -> None:
            if packed_refused(reply):  # a hub from before packed reports: as it was asked then
                again = req.model_copy(update={"request_id": new_request_id(), "packed": False})
                self.bus.request(again, on_reply=done, timeout_s=8.0, attempts=2)
            else:
                done(reply)

        self.bus.call_soon(lambda: self.bus.request(req, on_reply=answered, timeout_s=8.0, attempts=2))

    def _act(self, params: dict[str, Any], done: Callable[[Reply | None], None]) -> None:
        """Send one console action in the officer's name (owner thread). Not connected to the
        broker: nothing is sent (a queued publish could act later, by surprise)."""
        from webd.app import ACT_ATTEMPT_S, ACT_ATTEMPTS

        p = dict(params)
        action = p.pop("action")
        if not self.bus.connected.is_set():
            done(Reply(request_id=p["request_id"], action=action, status="error",
                       error=ReplyError(code="unreachable", message="webd is not connected to the broker")))
            return
        # the hub refuses it (`expired`) once this thread has stopped waiting: an officer told "not
        # done" never finds it done later (hub and webd share the Pi's clock; a demo clock runs faster)
        wait_s = ACT_ATTEMPT_S * ACT_ATTEMPTS
        req = REQUEST_MODELS[action](source=self.node, valid_until=self.clock.now() + wait_s * self.clock_speed, **p)
        self.bus.request(req, on_reply=done, timeout_s=ACT_ATTEMPT_S, attempts=ACT_ATTEMPTS)

    @classmethod
    def default_node(cls, settings: DaemonSettings) -> str:
        return "web"

    @classmethod
    def preflight_errors(cls, s: DaemonSettings) -> list[str]:
        """Besides the base's: the HTTPS certificate and key read, and belong together."""
        errors = super().preflight_errors(s)
        w = s.web if isinstance(s, WebSettings) else None
        if w is not None and w.link_secret_file is not None and CHECKING.get():
            # a start runs without it (the console and the head's pages go on, ticket pages cannot open, the
            # log says so); a check that said "settings OK" beside that error was not a check
            from xephang.ticketlink import LinkSecretError, load_secret

            try:
                load_secret(w.link_secret_file)
            except LinkSecretError as exc:
                errors.append("web.link_secret_file: " + both(f"{exc}: trang của phiếu sẽ không mở được",
                                                               f"{exc}: ticket pages would not open"))
        if w is None or w.tls_certfile is None or w.tls_keyfile is None:
            return errors
        import ssl

        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(w.tls_certfile, w.tls_keyfile)
        except (OSError, ssl.SSLError) as exc:
            errors.append(f"web.tls_certfile/tls_keyfile: cannot load {w.tls_certfile} with {w.tls_keyfile}: "
                          f"{getattr(exc, 'strerror', None) or exc} (`xephang web cert` makes them; the key must "
                          "be readable by webd's user)")
        return errors


def main(argv: Sequence[str] | None = None) -> int:
    """``webd``: the centre's pages, or with ``[web] province_dsn`` the province's (no hub, no MQTT)."""
    import argparse
    import os
    import sys

    from xephang.daemon import EXIT_CONFIG, setup_logging
    from xephang.settings import SettingsError, load_settings

    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--config", "-c")
    p.add_argument("--check", action="store_true")
    args, _ = p.parse_known_args(argv)
    try:
        settings = load_settings(WebSettings, args.config)
    except SettingsError:
        return WebDaemon.main(argv)  # it says what is wrong, as for every daemon
    if not settings.web.province_dsn:
        return WebDaemon.main(argv)
    setup_logging(os.environ.get("XEPHANG_LOG_LEVEL", settings.log_level))
    try:
        import psycopg  # noqa: F401

        from webd.province import serve
    except ImportError as exc:  # psycopg: pip install 'xephang[province]'
        print(f"webd: the province pages need the province extra: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check:
        print("webd: settings OK (province)")
        return 0
    return serve(settings)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

