"""hubd: the queue authority. Requests in, ledger commit, then replies, events and state out.

Per turn of the owner loop the hub takes the requests waiting in the inbox, runs them through
the engine one by one (each asker by turns, for ``TURN_BUDGET_S`` at most: the rest go first in the
next turn), commits them in ONE SQLite transaction (group commit), and only then publishes
replies and events (the outbox). A request id seen before from the same asker gets the stored
reply again and changes nothing; from another node it is refused. Retained state is
republished on every connect.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hubd import views
from hubd.engine import CommandError, Outcome, QueueEngine
from hubd.lane import (
    INBOX_USERNAME,
    Lane,
    LaneInbound,
    Twins,
    board_lane,
    covered,
    inbox,
    lane_board,
)
from hubd.ledger import Ledger, check_ledger, ledger_fault
from xephang.bus import Bus, BusFatal, Inbound
from xephang.checktext import both
from xephang.clock import Clock
from xephang.contract import (
    ASKED_BY,
    BOARD_BURST,
    BOARD_PER_MINUTE,
    CONSOLE_ACTIONS,
    COUNTER_BURST,
    COUNTER_PER_MINUTE,
    ISSUE_BURST,
    ISSUE_PER_HOUR,
    MAX_PAYLOAD_BYTES,
    READ_ONLY_ACTIONS,
    REPLY_DATA,
    REQUEST_MODELS,
    RESYNC_BURST,
    RESYNC_MAX_EVENTS,
    RESYNC_PER_MINUTE,
    Arrived,
    BadPayload,
    CallNext,
    CallTicket,
    ConfigSet,
    ContractError,
    CounterRequest,
    DailySummary,
    Finish,
    HourlySummary,
    IssueTicket,
    NoShow,
    Pause,
    Rate,
    Recall,
    Reply,
    ReplyError,
    ReportRequest,
    Request,
    Resume,
    Resync,
    TicketInfo,
    TicketWait,
    TicketWaitData,
    Transfer,
    VoidTicket,
    WaitOfTicket,
    check_level,
    counter_node,
    decode,
)
from xephang.daemon import Daemon
from xephang.limits import RateLimit
from xephang.nodeconfig import ConfigRefused
from xephang.reader import Reader
from xephang.settings import DaemonSettings, SettingsError, site_errors
from xephang.site import Site, changes_between

log = logging.getLogger(__name__)

STATE_MIN_INTERVAL_S = 0.1  # retained state at most 10 times a second; events carry the rest
CLOCK_JUMP_S = 30.0  # wall clock vs monotonic clock disagreement that counts as a jump
ACK_FLUSH_IDLE_S = 0.5
RECENT_REPLIES = 2000  # outbox acks ride along with the next batch's commit, or go alone when idle
OUTBOX_WINDOW = 1000  # events handed to paho and not yet acknowledged, at most: the rest wait in the ledger
REPORT_WORKERS = 2  # reports computed at once at most; more are answered `unavailable` (busy)
RESYNC_BUDGET_BYTES = MAX_PAYLOAD_BYTES - 8 * 1024  # … and never more than fits one message with room to spare
TICKETS_REFUSED_ALERT_AFTER = 5  # tickets refused to one dispenser before the technicians are alerted
RATE_LIMITED_SOURCES = 64  # sources named in the health's rate_limited counts at most (the rest: "(other)")
ROSTER_BURST, ROSTER_PER_MINUTE = 20, 1.0  # the web's roster pushes: 20 at once, then one a minute
# a turn runs its requests for this long at most, then commits and publishes; the rest go first in
# the next turn, each asker by turns with whoever asked meanwhile (two dispensers' bursts of tickets
# within their pace, 320 estimates of a long queue, held counter 2's call-next 7 s: its box gave up)
TURN_BUDGET_S = 0.25


class HubConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ledger: Path | None = Field(default=None, description="SQLite ledger; default STATE_DIR/ledger.sqlite")
    max_batch: int = Field(default=256, ge=1, le=5000, description="requests committed in one transaction at most")
    keep_replies_days: int = Field(default=7, ge=1, le=365)
    technicians: list[str] = Field(default_factory=lambda: ["tech"], description="node ids that may act for any counter")
    issue_burst: int = Field(default=ISSUE_BURST, ge=1, le=10_000, description="tickets of one service one dispenser may issue "
                             "at once; then `issue_per_hour` (more are refused `rate-limited`; docs/ticketd.md)")
    issue_per_hour: float = Field(default=ISSUE_PER_HOUR, gt=0, le=360_000, description="tickets of one service one dispenser may "
                                  "issue an hour after its burst (hub clock)")
    counter_burst: int = Field(default=COUNTER_BURST, ge=1, le=10_000, description="key presses of one counter (box and "
                               "web console together; rating keys apart) at once; then `counter_per_minute` "
                               "(more are refused `rate-limited`)")
    counter_per_minute: float = Field(default=COUNTER_PER_MINUTE, gt=0, le=100_000, description="key presses of one "
                                      "counter a minute after its burst (hub clock)")
    inbox_password_file: Path | None = Field(
        default=None, description="the `hub-inbox` account's password (`xephang broker-config` makes it): a "
        "connection that reads every request and publishes nothing, so that one board's password flooding its "
        "requests cannot hold the hub's replies, events and states (hubd/lane.py); none: the main connection reads "
        "the requests")
    lane_password_file: Path | None = Field(
        default=None, description="the `hub-lane` account's password (`xephang broker-config` makes it): a "
        "connection that reads the dispensers' and the web daemon's requests a second time, so that one board's "
        "flood cannot hold a citizen's ticket or an officer's console behind it (hubd/lane.py); none: no lane")
    lanes_dir: Path | None = Field(
        default=None, description="the folder with the boards' lane accounts' passwords (`hub-<board>.pw`: "
        "`xephang broker-config` makes one per board and technician): for each such file, a connection "
        "that reads that board's requests a second time in a queue of its own, so that one board's flood holds no "
        "other board's requests, nor a technician's (hubd/lane.py); a board added later is read by the inbox until "
        "the hub restarts")


class HubSettings(DaemonSettings):
    hub: HubConfig = HubConfig()


ROSTER_FIELDS = frozenset({"officer_id", "officer", "services"})  # what the head's web page may change


@dataclass(frozen=True)
class Answer:
    """What a request gets: its reply, where it goes, and whether the ledger keeps it (so that a
    retry of the same id is answered alike after a restart)."""

    topic: str
    reply: Reply
    req: Request | None = None
    store: bool = False
    remember: bool = False  # kept in memory only (``RECENT_REPLIES``): a refusal its retries get alike


def ledger_path(s: DaemonSettings) -> Path:
    """The ledger's file: ``hub.ledger``, else ``STATE_DIR/ledger.sqlite``."""
    ledger = s.hub.ledger if isinstance(s, HubSettings) else None
    return ledger or Path(s.state_dir) / "ledger.sqlite"


def _error(request_id: str, action: str, code: str, message: str, *, rev: int | None = None) -> Reply:
    return Reply(request_id=request_id, action=action, status="error", rev=rev,
                 error=ReplyError(code=code, message=message))


def _whole_site(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` when it is a valid site; else every error at once: each field's, then each cross
    check's on its own line (pydantic folds the cross checks into one)."""
    errors = site_errors(raw)
    if errors:
        raise ConfigRefused(errors)
    return raw


def _same(a: Any, b: Any) -> bool:
    """Two sites (as JSON data) say the same."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _site_or_none(raw: Any) -> Site | None:
    """``raw`` as a site, or None when it is none this version reads (a ledger of an older version)."""
    try:
        return Site.model_validate(raw)
    except (ValidationError, TypeError):
        return None


def is_web(source: str) -> bool:
    return source == "web" or source.startswith("web-")


def is_dispenser(source: str) -> bool:
    """A ticket dispenser's node id (``dispenser-*``, as the broker's ACL names them)."""
    return source.startswith("dispenser-")


def is_trusted(source: str, technicians: Sequence[str]) -> bool:
    """The hub itself and the technicians (``tech``, ``tech-…``): they may ask anything, unthrottled."""
    return source == "hub" or source in technicians or any(source.startswith(t + "-") for t in technicians)


def may_act(source: str, req: Request, technicians: Sequence[str], site: Site | None = None) -> bool:
    """Defence in depth behind the broker's ACL: who may ask what (``contract.ASKED_BY``, the same
    table the ACL is generated from; docs/protocol.md, "Who may ask what"). The web console acts
    for a counter only in the name of the officer the site seats there today (``officer``):
    a session of counter 3's officer cannot drive counter 2, whatever the page sends."""
    if is_trusted(source, technicians):
        return True
    who = ASKED_BY.get(req.ACTION, "tech")
    if who == "counter":
        if not isinstance(req, CounterRequest):
            return False
        if is_web(source):
            return (req.ACTION in CONSOLE_ACTIONS and req.officer is not None and site is not None
                    and req.counter in site.counters_of(req.officer))
        return source == counter_node(req.counter)
    if who == "dispenser":
        return is_dispenser(source)
    if who == "web":
        return is_web(source)
    return who == "any"


class HubDaemon(Daemon[HubSettings, Site]):
    """The hub: queue engine + ledger + MQTT shell."""

    role: ClassVar[str] = "hub"
    settings_cls: ClassVar[type[DaemonSettings]] = HubSettings
    health_interval_s: ClassVar[float] = 15.0
    # the site, live: technicians push it whole (``xephang config push hub site.toml``), the web
    # daemon pushes the head's roster (who sits where, which services a counter calls) on its own topic
    node_config_model: ClassVar[type[BaseModel] | None] = Site
    node_config_senders: ClassVar[tuple[str, ...]] = ("web",)

    def __init__(self, settings: HubSettings, *, bus: Bus | None = None, clock: Clock | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 new_event_id: Callable[[], str] | None = None) -> None:
        """``clock`` is the queue's time (tickets, visits, reports); ``monotonic`` paces the shell's
        own work (state publishing, ack flushes); ``new_event_id`` makes event ids (default: uuid4)."""
        self.engine: QueueEngine | None = None  # the node config's check runs against it once built
        self._mono = monotonic
        self._own_bus = bus is None  # a bus of its own: a real broker, so real readers too (setup)
        super().__init__(settings, bus=bus, clock=clock)
        self.site: Site = self.require_node_config().current  # type: ignore[assignment]  # the last pushed site, or the file
        self.engine = QueueEngine(self.site, **({"new_event_id": new_event_id} if new_event_id else {}))
        path = ledger_path(settings)
        try:
            # ``--check`` never makes or writes the ledger (preflight_errors read it): the build goes on
            # with an empty one in memory
            self.ledger = Ledger(":memory:" if self.checking else path)
            self.ledger.load(self.engine, now=self.clock.now())
        except sqlite3.Error as exc:  # a ledger that can never open as it is: exit 78, one line
            fault = ledger_fault(path, exc)
            if fault is None:
                raise
            raise SettingsError([fault], "the ledger", "sổ hàng đợi (ledger)") from None
        self.site_file_refused: list[str] = []  # why the edited site file was not taken at this start
        self._gone_at_start: tuple[set[int], set[str]] = (set(), set())  # counters, services the file removed
        if not self.checking:
            self._site_at_start(new_event_id)
        self._batch: list[Inbound] = []
        self._report_slots = threading.BoundedSemaphore(REPORT_WORKERS)
        self._inflight: dict[int, int] = {}  # mid -> rev of events published, awaiting PUBACK
        # events committed but not handed to paho yet (its queue was full, or the window): they go
        # out from the ledger's outbox in rev order, and newer events wait behind them
        self._outbox_behind = False
        self._acked: list[int] = []
        self._last_ack_flush = 0.0
        # request id -> (its asker, the reply's JSON): a retry is answered from here, else from the ledger
        self._recent_replies: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self._last_wall: float | None = None
        self._last_mono = 0.0
        self.clock_speed = settings.clock.speed if settings.clock.origin is not None else 1.0
        self._state_dirty = True
        self._dirty_counters: set[int] = {c.number for c in self.site.counters}
        self._dirty_services: set[str] = set(self.engine.services)
        self._last_state = 0.0
        self._next_summary = 0.0
        self._next_prune = 0.0
        self.ops = 0
        # what one board may ask that costs the hall (xephang/limits.py): resyncs by the hub's own pace,
        # tickets by the queue's clock (a simulated day runs faster, and so do its citizens)
        self._resync_limit = RateLimit(burst=RESYNC_BURST, per_minute=RESYNC_PER_MINUTE)
        h = settings.hub
        self._issue_limit = RateLimit(burst=h.issue_burst, per_minute=h.issue_per_hour / 60)
        self._counter_limit = RateLimit(burst=h.counter_burst, per_minute=h.counter_per_minute)
        self._board_limit = RateLimit(burst=BOARD_BURST, per_minute=BOARD_PER_MINUTE)
        self._roster_limit = RateLimit(burst=ROSTER_BURST, per_minute=ROSTER_PER_MINUTE)
        self.rate_limited: dict[str, dict[str, int]] = {"resync": {}, "issue-ticket": {}}
        self.flooded: dict[str, int] = {}  # board -> requests dropped unread (over BOARD_PER_MINUTE)
        self._tickets_refused: dict[str, int] = {}  # dispenser -> refused since its alert was last clear
        self.lane: Lane | None = None  # hub.lane_password_file's connection, started by setup()
        self.inbox: Reader | None = None  # hub.inbox_password_file's connection, started by setup()
        self.board_lanes: dict[str, Lane] = {}  # board node id -> its lane (hub.lanes_dir)
        self._requests_on_main = False
        self.twins = Twins()
        if not self.checking:  # --check read the ledger, it did not load it
            log.info("ledger %s: rev %s, day %s, %s open tickets", path, self.engine.rev, self.engine.day or "-",
                     sum(1 for t in self.engine.tickets.values() if t.state in ("waiting", "called")))

    @classmethod
    def preflight_errors(cls, s: DaemonSettings) -> list[str]:
        errors = super().preflight_errors(s)
        if isinstance(s, HubSettings):
            errors += [f"hub.ledger: {e}" for e in check_ledger(ledger_path(s))]
        for key in ("inbox_password_file", "lane_password_file", "lanes_dir"):
            pw = getattr(s.hub, key) if isinstance(s, HubSettings) else None
            if pw is not None:
                try:
                    os.listdir(pw) if key == "lanes_dir" else pw.read_bytes()
                except OSError as exc:
                    errors.append(f"hub.{key}: cannot read {pw}: {exc.strerror or exc}")
        return errors

    # ------------------------------------------------------------------ the site, live
    def _site_at_start(self, new_event_id: Callable[[], str] | None) -> None:
        """The site this start runs, checked against the queue the ledger holds.

        The site file edited since the last start (or the last push) is the site now — unless it cannot
        apply to today's queue, checked as a live push is (a service removed while citizens wait for it,
        a band that leaves out today's numbers, a counter removed while it serves …; the slug, time zone
        and daily reset may change at a restart): then the site the queue ran with runs on, hubd's log
        names every reason, the ``site-file`` alert says so, and the file wins at a later start, once it
        can. What the queue ran with is the ledger's ``running_site`` (every start and every applied push
        write it), so a hub that never had a push is checked too. A queue of an earlier day is not
        today's: its tickets expire at the day's turn, and the file is taken. The ledger's history of
        the site goes on after its highest rev, never over it."""
        config = self.require_node_config()
        now = self.clock.now()
        last_rev, last_site = self.ledger.last_site()
        ran = self.ledger.get_meta("running_site")
        ran_raw, ran_rev = (ran.get("site"), ran.get("rev")) if isinstance(ran, dict) else (None, None)
        # the site file was edited since what ran was made on it (its fingerprint differs); a meta of an
        # older version has no fingerprint: the file counts as edited when this start took it
        edited = ran.get("origin") != config.origin if isinstance(ran, dict) and "origin" in ran else config.took_file
        if _site_or_none(ran_raw) is None:
            # a ledger of an older version (no running_site yet): what ran is the last push, else the
            # ledger's last recorded site
            ran_raw, ran_rev = (config.file_won[1], config.file_won[0]) if config.file_won is not None else \
                (last_site, last_rev) if last_site is not None else (None, None)
        before = _site_or_none(ran_raw)
        ran_rev = ran_rev if isinstance(ran_rev, int) and not isinstance(ran_rev, bool) else None
        mine = self.site.model_dump(mode="json")
        changed = before is not None and not _same(before.model_dump(mode="json"), mine)
        today = self.engine.day == self.engine.service_day(now)
        if changed and not edited:
            # the file is as it was: what this start chose is a stale copy (a saved push behind the ledger, a
            # restored hub.config.json) or the file itself where the saved pushes were lost: what ran runs on
            assert before is not None
            log.warning("hub.config.json does not hold the site the queue ran with (rev %s): that site runs on "
                        "and is saved again", ran_rev)
            config.run_instead(ran_rev if ran_rev is not None else max(last_rev, config.rev), before.model_dump(mode="json"),
                               keep_origin=True)
            config.save()
            self.site = config.current  # type: ignore[assignment]
            self.engine = QueueEngine(self.site, **({"new_event_id": new_event_id} if new_event_id else {}))
            self.ledger.load(self.engine, now=now)
            self._note_running_site()
            return
        if changed and today:
            assert before is not None
            refusals = self.engine.site_change_refusals(self.site, old=before, restart=True)
            if refusals:
                log.error("the site file %s changed since the queue last ran, but it cannot apply to today's "
                          "queue; the site it ran with runs on (%s)", self.settings.site_file, " | ".join(refusals))
                config.run_instead(ran_rev if ran_rev is not None else config.rev, before.model_dump(mode="json"))
                self.site = config.current  # type: ignore[assignment]
                self.engine = QueueEngine(self.site, **({"new_event_id": new_event_id} if new_event_id else {}))
                self.ledger.load(self.engine, now=now)
                self.site_file_refused = refusals
                return
        if changed:
            assert before is not None
            # the file's site is a new rev after every rev there has been (the ledger's, what ran, the saved
            # push): a form or a file made on an older one is stale, never applied over this
            saved_rev = config.file_won[0] if config.file_won is not None else 0
            config.rev = max(last_rev, ran_rev or 0, saved_rev) + 1
            # what the file removed keeps no retained state (cleared once connected, as a live change does)
            self._gone_at_start = ({c.number for c in before.counters} - {c.number for c in self.site.counters},
                                   {s.id for s in before.services} - {s.id for s in self.site.services})
            self._record_file_site(config.rev, now, changes_between(before, self.site))
            config.save()
        elif ran_rev is not None and config.rev != ran_rev:
            # the same site as ran, under another rev (the saved push lost, damaged or behind the ledger, or a
            # file edited in a way that changes nothing): the rev it ran at
            config.rev = ran_rev
            config.save()
        self._note_running_site()

    def _clear_gone_at_start(self) -> None:
        counters, services = self._gone_at_start
        for n in sorted(counters):
            self.bus.publish(self.bus.topics.state_counter(n), b"", retain=True)
        for sid in sorted(services):
            self.bus.publish(self.bus.topics.state_service(sid), b"", retain=True)

    def _record_file_site(self, rev: int, now: float, changes: list[str]) -> None:
        self.ledger.record_site_change(rev=rev, at=now, by="site file", source="file", changes=changes,
                                       site=self.site.model_dump(mode="json"))
        log.info("site rev %s: the site file %s (%s)", rev, self.settings.site_file, "; ".join(changes) or "no change")

    def _note_running_site_at(self, rev: int) -> None:
        # with the fingerprint of the site file it was made on: a later start tells an edited file from a
        # stale saved copy by it
        self.ledger.set_meta_now("running_site", {"rev": rev, "site": self.site.model_dump(mode="json"),
                                                  "origin": self.require_node_config().origin})

    def _note_running_site(self) -> None:
        """What the queue runs with now, for the check of the next start (``_site_at_start``)."""
        self._note_running_site_at(self.require_node_config().rev)

    def initial_node_config(self) -> dict[str, Any]:
        return self.settings.load_site().model_dump(mode="json")

    def node_config_origin(self) -> str | None:
        """The site file's fingerprint: a file edited since the last push wins at the next start."""
        f = self.settings.site_file
        return hashlib.sha256(Path(f).read_bytes()).hexdigest()[:16] if f else None

    def merge_node_config(self, current: dict[str, Any], push: ConfigSet, sender: str | None) -> dict[str, Any]:
        """Technicians' pushes merge like any node's (tables merge, lists replace whole: push the
        whole ``[[counters]]``); the web daemon's push is the head's roster only — counters by
        number, and only who sits there and which services it calls."""
        if sender is None:
            return _whole_site(super().merge_node_config(current, push, sender))
        wait = self._roster_limit.take(sender, self._mono())
        if wait:  # a head saves a roster a few times a morning; a stolen web password, a thousand times a minute
            raise ConfigRefused([both(f"quá nhiều lần đổi phân công liền nhau: thử lại sau {wait:.0f} giây",
                                      f"too many roster changes in a row: try again in {wait:.0f} s")])
        if not is_web(sender) or set(push.config) != {"counters"} or not isinstance(push.config["counters"], list):
            shape = '{"counters": [{number, officer_id, officer, services}]}'
            raise ConfigRefused([both(f"{sender} chỉ được đẩy {shape}", f"{sender} may push only {shape}")])
        out = copy.deepcopy(current)
        by_number = {c.get("number"): c for c in out["counters"]}
        errors = []
        for i, patch in enumerate(push.config["counters"]):
            if not isinstance(patch, dict) or not set(patch) <= ROSTER_FIELDS | {"number"}:
                fields = ", ".join(sorted(ROSTER_FIELDS))
                errors.append(f"counters[{i}]: " + both(f"từ trang web chỉ đổi được number, {fields}",
                                                        f"only number, {fields} may change from the web"))
                continue
            target = by_number.get(patch.get("number"))
            if target is None:
                number = repr(patch.get("number"))
                errors.append(f"counters[{i}]: {both(f'trung tâm không có quầy {number}', f'no counter {number} in the site')}")
                continue
            target.update({k: v for k, v in patch.items() if k != "number"})
        if errors:
            raise ConfigRefused(errors)
        return _whole_site(out)

    def check_node_config(self, new: Site) -> list[str]:
        return self.engine.site_change_refusals(new) if self.engine is not None else []

    def apply_node_config(self, new: Site, old: Site | None) -> bool:
        """Swap the site between two batches: the queue stays, the change is in the ledger with
        who made it, and every retained state is sent again (names, officers, services)."""
        if self.engine is None:  # the node config applies pushes only, and only to a built hub
            raise RuntimeError("a site push reached the hub before its queue was built")
        config = self.require_node_config()
        applying = config.applying
        push, sender, rev = applying if applying else (None, None, config.rev + 1)
        changes = changes_between(self.engine.site, new)
        self.ledger.record_site_change(rev=rev, at=self.clock.now(), by=(push.by or push.source) if push else "?",
                                       source=sender or (push.source if push else "?"), changes=changes,
                                       site=new.model_dump(mode="json"))
        removed = {c.number for c in self.engine.site.counters} - {c.number for c in new.counters}
        gone = {s.id for s in self.engine.site.services} - {s.id for s in new.services}
        self.engine.swap_site(new)
        self.site = new
        self._note_running_site_at(rev)
        for n in sorted(removed):  # a counter no longer in the site: its retained state goes too
            self.bus.publish(self.bus.topics.state_counter(n), b"", retain=True)
        for sid in sorted(gone):  # … and a service's (the hall board kept showing it, waiting 0, until restarted)
            self.bus.publish(self.bus.topics.state_service(sid), b"", retain=True)
        log.info("site rev %s applied (by %s): %s", rev, push.by if push else "?", "; ".join(changes) or "no change")
        self._state_dirty = True
        self._dirty_counters |= {c.number for c in new.counters}
        self._dirty_services |= set(self.engine.services)
        return False

    # ------------------------------------------------------------------ lifecycle
    def setup(self) -> None:
        hub = self.settings.hub
        if hub.inbox_password_file is not None and self._own_bus:  # a real broker: real readers
            # the main session (persistent) may still hold the requests' filter from an older hub
            self.bus.forget(self.bus.topics.all_requests())
            self.inbox = inbox(self.settings.broker, self.bus.topics, self._inbox_in,
                               password_file=hub.inbox_password_file,
                               given_up=lambda: self.bus.call_soon(self._read_requests_on_main))
            self.inbox.start()
        else:
            self._read_requests_on_main()
        if hub.lane_password_file is not None and self._own_bus:
            self.lane = Lane(self.settings.broker, self.bus.topics, self._lane_in, password_file=hub.lane_password_file)
            self.lane.start()
        if hub.lanes_dir is not None and self._own_bus:
            for pw in sorted(hub.lanes_dir.glob("hub-*.pw")):
                node = lane_board(pw.stem)
                if node is None:  # hub-inbox.pw, hub-lane.pw, another file
                    continue
                self.board_lanes[node] = lane = board_lane(self.settings.broker, self.bus.topics, self._lane_in, node,
                                                           password_file=pw)
                lane.start()
            missing = [c.number for c in self.engine.site.counters if f"counter-{c.number}" not in self.board_lanes]
            if missing:
                log.warning("no hub-counter-N.pw in %s for counters %s: the inbox alone reads their requests "
                            "(xephang broker-config makes them)",
                            hub.lanes_dir, ", ".join(map(str, missing)))
        if self.inbox is None and (self.lane is not None or self.board_lanes):
            log.warning("lanes without hub.inbox_password_file: the main connection reads every request, and a "
                        "board's flood there holds every reply, event and state; install passwords/hub-inbox.pw "
                        "from `xephang broker-config` and set it (docs/install-pi.md)")
        if self.site_file_refused:
            n = len(self.site_file_refused)
            rev = self.require_node_config().rev
            self.raise_alert("site-file", f"Tệp site đã sửa nhưng chưa áp dụng được cho hàng đợi hôm nay ({n} lý do, "
                             f"xem nhật ký hubd); đang chạy site phiên bản {rev}. Khi không còn ai chờ phần bị bỏ "
                             f"(hoặc sang ngày mới), khởi động lại hubd. {self.site_file_refused[0].split(' / ')[0][:160]}",
                             f"The edited site file cannot apply to today's queue yet ({n} reason{'s' if n != 1 else ''}, "
                             f"see hubd's log); site rev {rev} runs on. Restart hubd once nobody waits for what it "
                             "removes (or on the next day)", "critical")
        else:  # one an earlier start left retained: this start took the file, or had no edited file
            self.bus.add_connect_hook(lambda: None if "site-file" in self.alerts else
                                      self.bus.clear(self.bus.topics.alert(self.node, "site-file")))
        if any(self._gone_at_start):
            self.bus.add_connect_hook(self._clear_gone_at_start)
        self.bus.add_connect_hook(self._republish_all)
        self.bus.add_published_hook(self._on_published)
        self.bus.add_refused_hook(self._on_refused)

    def _enqueue_request(self, msg: Inbound) -> None:
        self._batch.append(msg)  # handled together after this turn's drain: one commit per batch

    def _read_requests_on_main(self) -> None:
        """No inbox (none set, or the broker refused its account): the main connection reads the
        requests, as before hubd/lane.py (a board's flood then holds what the hub publishes)."""
        if self._requests_on_main:
            return
        if self.inbox is not None:
            log.warning("%s is refused: the main connection reads the requests", INBOX_USERNAME)
        self._requests_on_main = True
        self.bus.subscribe(self.bus.topics.all_requests(), self._enqueue_request, retained=False)

    def _lane_in(self, msg: Inbound) -> None:
        """paho's thread of the lane: into this batch through the bus's inbox (which wakes the loop)."""
        self.bus.call_soon(lambda: self._batch.append(msg))

    def _inbox_in(self, msg: Inbound) -> None:
        """paho's thread of the inbox: as the main connection's subscription would have (counted
        received; a retained request dropped and counted), into this batch."""
        def take() -> None:
            self.bus.stats.received += 1
            if msg.retain:
                self.bus.drop_retained_command(msg)
            else:
                self._batch.append(msg)
        self.bus.call_soon(take)

    def teardown(self) -> None:
        for reader in (self.lane, self.inbox, *self.board_lanes.values()):
            if reader is not None:
                reader.stop()
        self._flush_acks()
        self.ledger.close()

    def wait_for_work(self, timeout: float) -> None:
        # requests left from the last turn: take what came meanwhile without waiting, and go on
        self.bus.process(timeout=0 if self._batch else timeout, max_items=self.settings.hub.max_batch)
        if self._batch:
            batch, self._batch = self._batch, []
            self._batch = self.handle_batch(batch) + self._batch
        elif self._acked and self._mono() - self._last_ack_flush > ACK_FLUSH_IDLE_S:
            self._flush_acks()  # idle: no batch commit to ride along with
        self._drain_outbox()
        self._publish_state()

    def tick(self, now: float) -> None:
        mono = self._mono()
        if self._last_wall is not None:
            drift = (now - self._last_wall) - (mono - self._last_mono) * self.clock_speed
            if abs(drift) > CLOCK_JUMP_S:
                log.warning("wall clock jumped by %+.0f s: open tickets are flagged", drift)
                self._commit_and_publish(self.engine.clock_jumped(), [])
        self._last_wall, self._last_mono = now, mono
        if self.engine.service_day(now) != self.engine.day and self.engine.day:
            out = self.engine.roll_day(now)
            self._commit_and_publish(out, [])
        if mono >= self._next_summary and self.bus.connected.is_set():
            self._next_summary = mono + 60
            self.publish_summary(now)
        if self._tickets_refused:
            self._clear_tickets_refused(now)
        if mono >= self._next_prune:
            self._next_prune = mono + 3600
            with self.ledger.transaction():
                self.ledger.prune_requests(now - self.settings.hub.keep_replies_days * 86400)

    def health_details(self) -> dict[str, Any]:
        waiting = sum(1 for t in self.engine.tickets.values() if t.state == "waiting")
        return {"rev": self.engine.rev, "day": self.engine.day, "waiting": waiting, "ops": self.ops,
                "outbox": self.ledger.outbox_size(), "outbox_in_flight": len(self._inflight),
                "outbox_behind": self._outbox_behind, "dropped_by_code": dict(self.bus.stats.dropped_by_code),
                "rate_limited": {a: dict(by) for a, by in self.rate_limited.items()}, "flooded": dict(self.flooded),
                "requests_on_main": self._requests_on_main,
                "inbox": None if self.inbox is None else {"connected": self.inbox.connected,
                                                          "received": self.inbox.stats.received,
                                                          "gave_up": self.inbox.gave_up},
                "lane": None if self.lane is None else {"connected": self.lane.connected,
                                                        "received": self.lane.stats.received,
                                                        "paced": self.lane.stats.paced, "gave_up": self.lane.gave_up},
                "board_lanes": {n: {"connected": c.connected, "received": c.stats.received, "paced": c.stats.paced,
                                    "gave_up": c.gave_up} for n, c in self.board_lanes.items()},
                "twins": self.twins.twins}

    # ------------------------------------------------------------------ requests
    def handle_batch(self, batch: list[Inbound]) -> list[Inbound]:
        """Run the batch's requests, each asker by turns (``in_turns``), for ``TURN_BUDGET_S`` at
        most; commit once, then publish replies and events. Returns the requests not run yet (the
        caller runs them first in its next turn, with what arrived meanwhile)."""
        now = self.clock.now()
        start = self._mono()
        merged = Outcome()
        answers: list[Answer] = []
        seen: dict[str, tuple[str, Reply]] = {}  # request id -> (its asker, its answer) in this batch
        batch = in_turns(batch)
        rest: list[Inbound] = []
        for i, msg in enumerate(batch):
            if i and self._mono() - start > TURN_BUDGET_S:
                rest = batch[i:]
                break
            try:
                a = self._handle_one(msg, now, merged, seen)
            except BadPayload as exc:
                self.bus.stats.dropped += 1
                self.bus.stats.dropped_by_code[exc.code] += 1
                if exc.code != "flood":  # a flood is logged by _flood_guard, once per thousand
                    log.warning("dropped request on %s (%s): %s; payload %r", msg.topic, exc.code, exc, msg.payload[:200])
                continue
            except Exception:  # the blast shield: one bad message never stops the hub or its batch
                self.bus.stats.dropped += 1
                self.bus.stats.dropped_by_code["internal"] += 1
                log.exception("request on %s could not be handled; payload %r", msg.topic, msg.payload[:200])
                continue
            if a is not None:
                answers.append(a)
        self._commit_and_publish(merged, answers)
        return rest

    def _handle_one(self, msg: Inbound, now: float, merged: Outcome, seen: dict[str, tuple[str, Reply]]) -> Answer | None:
        """One request through its named stages, each of which may answer and stop it:
        parse (the topic) → decode (the payload) → authenticate (topic vs payload) → de-duplicate
        (retries, expiry) → authorise (the role) → execute (the hub's own actions, then the engine's
        command table). The reply always goes to ``R/reply/{asker}`` of this site: the sender named
        by the topic (the ACL vouches for it) or, on the short topic form that only technicians may
        write, the payload's ``source``. ``reply_to`` never picks another topic."""
        action, sender = self._parse(msg.topic)
        via = msg.via if isinstance(msg, LaneInbound) else ""
        self._flood_guard(sender, via)
        req = self._decode(action, sender, msg.payload, via)
        if req is None:
            return None  # an unreadable request's twin: answered (and said) once, as it came the other way
        if isinstance(req, Answer):
            return req
        if self._read_twice(action, sender) and self.twins.is_twin(f"{sender}/{req.request_id}", via):
            return None  # this publish was handled as it came through the other connection
        topic = self.bus.topics.reply(sender or req.source)
        return (self._authenticate(req, sender, topic)
                or self._deduplicate(req, topic, now, seen)
                or self._authorise(req, topic, seen)
                or self._throttle(req, topic, now, seen)
                or self._run(req, topic, now, merged, seen))

    def _read_twice(self, action: str, sender: str | None) -> bool:
        """Does a lane read this request too (its copies are then counted: ``Twins``)?"""
        return (self.lane is not None and covered(action, sender)) or (sender is not None and sender in self.board_lanes)

    # ---- the stages
    def _parse(self, topic: str) -> tuple[str, str | None]:
        """``R/req/hub/{action}[/{node}]`` → (action, sender named by the topic, if any)."""
        levels = topic[len(self.bus.topics.root) + len("/req/hub/"):].split("/")
        if len(levels) > 2 or not all(_is_level(x) for x in levels):
            raise BadPayload("bad-topic", f"unexpected request topic {topic[:120]!r}")
        return levels[0], (levels[1] if len(levels) == 2 else None)

    def _flood_guard(self, sender: str | None, via: str = "") -> None:
        """A board's requests, before they are read: at most ``BOARD_BURST`` at once, then
        ``BOARD_PER_MINUTE``; the rest are dropped unanswered (``flood``), so a flood from one
        board's password costs the hub neither decoding nor a reply on paho's queue. The hub, the
        technicians and the web daemon (on the hub's own machine, not in the hall) are not held.
        Counted per connection that brings the copy (``via``: a lane's account, "" for the inbox or
        the main connection): a board's request read twice spends one of its burst, not two (its
        twin is dropped after ``_decode``), and a flood still costs each connection at most its pace."""
        if sender is None or is_trusted(sender, self.settings.hub.technicians) or is_web(sender):
            return
        if not self._board_limit.take((sender, via), self._mono()):
            return
        n = self.flooded.get(sender, 0) + 1
        if sender in self.flooded or len(self.flooded) < RATE_LIMITED_SOURCES:
            self.flooded[sender] = n
        if n == 1 or n % 1000 == 0:
            log.warning("%s sends more than %d requests a minute: dropped unread (%d so far)", sender,
                        BOARD_PER_MINUTE, n)
        raise BadPayload("flood", f"{sender} floods the hub")

    def _decode(self, action: str, sender: str | None, payload: bytes, via: str = "") -> Request | Answer | None:
        """The action's model; an unreadable request is answered when we can read who asked,
        otherwise it is a counted drop (``BadPayload`` up to the batch). None: the twin of an
        unreadable request read twice (a lane's copy and the inbox's), answered once (a drill saw two
        replies and two log lines for each)."""
        model = REQUEST_MODELS.get(action)
        try:
            if model is None:
                raise BadPayload("unknown-action", f"unknown action {action!r}")
            return decode(model, payload)
        except BadPayload as exc:
            head = _peek(payload)
            if head is None:
                raise
            rid, source = head
            if self._read_twice(action, sender) and self.twins.is_twin(f"{sender}/{rid}", via):
                return None
            self.bus.stats.dropped += 1
            self.bus.stats.dropped_by_code[exc.code] += 1
            log.warning("bad %s request %r from %s: %s", action, rid, sender or source, exc)
            return Answer(self.bus.topics.reply(sender or source), _error(rid, action, exc.code, str(exc)))

    def _authenticate(self, req: Request, sender: str | None, topic: str) -> Answer | None:
        """The payload may not speak for someone else than the topic (and the ACL) say: refused
        before any action, read-only ones too; not stored (the id may be another node's)."""
        if sender is None or sender == req.source:
            return None
        self.bus.stats.dropped_by_code["forbidden"] += 1
        log.warning("refused %s %s: topic says %s, payload says %s", req.ACTION, req.request_id, sender, req.source)
        return Answer(topic, _error(req.request_id, req.ACTION, "forbidden", f"{sender} may not ask as {req.source}"),
                      req)

    def _deduplicate(self, req: Request, topic: str, now: float, seen: dict[str, tuple[str, Reply]]) -> Answer | None:
        """A retry or a redelivery gets the same answer and nothing is done twice; a request that
        arrives after its ``valid_until`` (the asker was told "not done") is never executed late."""
        asked = seen.get(req.request_id)
        if asked is None:
            stored = self._recent_replies.get(req.request_id) or self.ledger.lookup_request(req.request_id)
            asked = (stored[0], Reply.model_validate_json(stored[1])) if stored is not None else None
        if asked is not None:
            owner, reply = asked
            return Answer(topic, reply, req) if owner == req.source else self._not_its_id(req, topic, owner)
        if req.valid_until is None or now <= req.valid_until:
            return None
        reply = _error(req.request_id, req.ACTION, "expired",
                       f"arrived {now - req.valid_until:.1f} s after its valid_until: not done", rev=self.engine.rev)
        log.warning("expired %s %s from %s", req.ACTION, req.request_id, req.source)
        seen[req.request_id] = (req.source, reply)
        # not in the ledger: a copy that comes later is past its valid_until as well (one counter's
        # password stored 20 such refusals a second, ~0.9 GB a day, each batch fsynced: red team)
        return Answer(topic, reply, req, remember=True)

    def _not_its_id(self, req: Request, topic: str, owner: str) -> Answer:
        """A request id is its asker's: another node's id (a replay of what it saw, or a guess) gets
        neither that node's answer nor a say over it. Refused, and neither stored nor remembered, so
        the owner's retries are still answered as before."""
        self.bus.stats.dropped_by_code["forbidden"] += 1
        log.warning("refused %s %s from %s: that request id is %s's", req.ACTION, req.request_id, req.source, owner)
        return Answer(topic, _error(req.request_id, req.ACTION, "forbidden",
                                    f"request id {req.request_id} is another node's: make a new one"), req)

    def _authorise(self, req: Request, topic: str, seen: dict[str, tuple[str, Reply]]) -> Answer | None:
        """Every account may do only its role (``may_act``); a refusal of a write is remembered, so
        its retries are refused the same way (in memory: the ledger would take every refusal a
        board's password asks for, 20 a second within the flood guard; after a restart a retry is
        judged again, alike unless the site changed meanwhile)."""
        if may_act(req.source, req, self.settings.hub.technicians, self.engine.site):
            return None
        counter = req.counter if isinstance(req, CounterRequest) else None
        who = f" as {req.officer}" if isinstance(req, CounterRequest) and req.officer else ""
        what = f"for counter {counter}" if counter is not None else ""
        reply = _error(req.request_id, req.ACTION, "forbidden", f"{req.source}{who} may not {req.ACTION} {what}".strip())
        log.warning("refused %s from %s", req.ACTION, req.source)
        seen[req.request_id] = (req.source, reply)
        return Answer(topic, reply, req, remember=req.ACTION not in READ_ONLY_ACTIONS)

    def _throttle(self, req: Request, topic: str, now: float, seen: dict[str, tuple[str, Reply]]) -> Answer | None:
        """A board asks what costs the hall at a bounded pace (``xephang.limits``): a resync (a snapshot, up
        to 56 KB of events and every retained state again) per node, a ticket per dispenser and service
        (a number of the band, paper, a citizen the officers will call). Over the pace: ``rate-limited``
        with ``retry_after_s``, not stored (a retry of the same id later may go), counted in the health."""
        if is_trusted(req.source, self.settings.hub.technicians):
            return None
        if isinstance(req, Resync):
            wait = self._resync_limit.take(req.source, self._mono())
            what = "resync"
        elif isinstance(req, IssueTicket) and req.service in self.engine.services:  # an unknown one: refused below
            wait = self._issue_limit.take((req.source, req.service), now)
            what = f"tickets of {req.service}"
        elif isinstance(req, CounterRequest):  # the ACL and _authorise pinned the counter to the asker
            rating = isinstance(req, Rate)  # a citizen leaning on the rating keys never holds up the officer
            wait = self._counter_limit.take((req.counter, rating), now)
            what = f"counter {req.counter}'s {'ratings' if rating else 'keys'}"
        else:
            return None
        if not wait:
            return None
        by = self.rate_limited.setdefault(req.ACTION, {})
        name = req.source if req.source in by or len(by) < RATE_LIMITED_SOURCES else "(other)"
        by[name] = by.get(name, 0) + 1
        log.warning("rate-limited %s %s from %s: ask again in %.0f s", req.ACTION, req.request_id, req.source, wait)
        reply = Reply(request_id=req.request_id, action=req.ACTION, status="error", rev=self.engine.rev,
                      error=ReplyError(code="rate-limited", retry_after_s=wait,
                                       message=f"{req.source} asks for {what} too often: ask again in {wait:.0f} s"))
        seen[req.request_id] = (req.source, reply)
        if isinstance(req, IssueTicket):
            self._ticket_refused(req.source)
        return Answer(topic, reply, req)

    def _ticket_refused(self, dispenser: str) -> None:
        """Many tickets refused to one dispenser: someone leans on its button, or uses its password.
        The technicians are told (the hub's alert ``tickets-refused``), once per dispenser and bout."""
        self._tickets_refused[dispenser] = self._tickets_refused.get(dispenser, 0) + 1
        if self._tickets_refused[dispenser] == TICKETS_REFUSED_ALERT_AFTER:
            self._tickets_refused_alert()

    def _tickets_refused_alert(self) -> None:
        flagged = sorted(d for d, n in self._tickets_refused.items() if n >= TICKETS_REFUSED_ALERT_AFTER)
        if not flagged:
            self.clear_alert("tickets-refused")
            return
        names = ", ".join(flagged)
        self.raise_alert("tickets-refused",
                         f"Máy cấp số {names} xin quá nhiều số liên tục: hub tạm từ chối. Kiểm tra nút bấm "
                         f"(bị kẹt, trẻ em bấm) hoặc đổi mật khẩu của máy.",
                         f"{names} asked for tickets too fast: the hub refuses some. Check the buttons (stuck, "
                         f"pressed by a child) or change the board's password.")

    def _clear_tickets_refused(self, now: float) -> None:
        """A dispenser quiet for long enough (every bucket of it full again) is forgotten; the alert follows."""
        quiet = [d for d in self._tickets_refused
                 if all(self._issue_limit.full((d, s), now) for s in self.engine.services)]
        if not quiet:
            return
        was_flagged = any(self._tickets_refused[d] >= TICKETS_REFUSED_ALERT_AFTER for d in quiet)
        for d in quiet:
            del self._tickets_refused[d]
        if was_flagged:
            self._tickets_refused_alert()

    def _run(self, req: Request, topic: str, now: float, merged: Outcome, seen: dict[str, tuple[str, Reply]]) -> Answer | None:
        """The hub's own read-only actions answer from memory or a worker (``_own_actions``); every
        other action is the engine's command (``COMMANDS``), merged into the batch's commit."""
        own = self._own_actions.get(type(req))
        if own is not None:
            return own(req, topic, now)
        try:
            out = self._execute(req, now)
        except CommandError as exc:
            # a refusal changed nothing: remembered for its retries, not written to the ledger (a
            # dispenser's password asking for an unknown service or another's ticket, unpaced, wrote
            # a row each, 20 a second within the flood guard)
            reply = _error(req.request_id, req.ACTION, exc.code, str(exc), rev=self.engine.rev)
            seen[req.request_id] = (req.source, reply)
            return Answer(topic, reply, req, remember=True)
        merged.merge(out)
        self.ops += 1
        reply = Reply(request_id=req.request_id, action=req.ACTION, status="ok",
                      data=typed_data(req.ACTION, out.data), rev=self.engine.rev)
        self._dirty_counters |= out.counters
        self._dirty_services |= out.services
        self._state_dirty = True
        seen[req.request_id] = (req.source, reply)
        return Answer(topic, reply, req, store=True)

    @functools.cached_property
    def _own_actions(self) -> dict[type, Callable[[Any, str, float], Answer | None]]:
        return {
            Resync: lambda req, topic, now: Answer(topic, self._resync(req, now), req),
            TicketWait: lambda req, topic, now: Answer(topic, self._ticket_wait(req, now), req),
            ReportRequest: self._start_report,
        }

    def _start_report(self, req: ReportRequest, topic: str, now: float) -> Answer | None:
        """A quarter takes ~0.2 s of CPU: computed off the owner thread so presses never wait; at
        most REPORT_WORKERS at once, so a flood of report requests cannot starve the hall."""
        if not self._report_slots.acquire(blocking=False):
            return Answer(topic, _error(req.request_id, req.ACTION, "unavailable",
                                        "the hub is busy with other reports: ask again"), req)
        threading.Thread(target=self._report_worker, args=(req, topic), name="report", daemon=True).start()
        return None  # the worker publishes the reply

    def _execute(self, req: Request, now: float) -> Outcome:
        command = COMMANDS.get(type(req))
        if command is None:  # pragma: no cover - resync and report never reach here
            raise CommandError("unknown-action", f"unsupported action {req.ACTION}")
        return command(self.engine, req, now)

    def _resync(self, req: Resync, now: float) -> Reply:
        """The hall snapshot and, from ``since_rev``, the missed events in rev order: as many as
        fit one message (at most RESYNC_MAX_EVENTS, within RESYNC_BUDGET_BYTES). ``more`` says
        whether events after the last one sent exist: the requester asks again from there, or
        takes the retained state (the snapshot is always whole)."""
        self._state_dirty = True
        self._dirty_counters |= set(self.engine.counters)
        self._dirty_services |= set(self.engine.services)
        self._last_state = 0.0
        hall = views.hall_state(self.engine, now).model_dump(mode="json", by_alias=True)
        data: dict[str, Any] = {"hall": hall}
        if req.since_rev is not None and req.since_rev < self.engine.rev:
            budget = RESYNC_BUDGET_BYTES - len(json.dumps(hall, ensure_ascii=False).encode())
            events: list[Any] = []
            rows = self.ledger.events_since(req.since_rev, limit=RESYNC_MAX_EVENTS)
            for _, _, _, payload in rows:
                budget -= len(payload.encode()) + 2
                if budget < 0:
                    break
                events.append(json.loads(payload))
            data["events"] = events
            # no event after since_rev at all: nothing more (a new ledger's revisions start after its
            # base, so "since_rev < rev" alone said "more" for ever to a webd asking from below it)
            last = events[-1]["rev"] if events else req.since_rev if rows else self.engine.rev
            data["more"] = last < self.engine.rev
        return Reply(request_id=req.request_id, action=req.ACTION, status="ok", data=typed_data(req.ACTION, data),
                     rev=self.engine.rev)

    def _ticket_wait(self, req: TicketWait, now: float) -> Reply:
        """Each waiting ticket's range as the hub plays the day forward now (the engine keeps one
        estimate per ticket and hall revision for a minute: phones refreshing cost nothing new)."""
        e = self.engine
        waits: list[WaitOfTicket] = []
        for tid in dict.fromkeys(req.ticket_ids):
            t = e.tickets.get(tid)
            if t is None or t.day != e.day:
                waits.append(WaitOfTicket(ticket_id=tid, state="unknown"))
            elif t.state != "waiting":
                waits.append(WaitOfTicket(ticket_id=tid, state=t.state, ticket=TicketInfo(**t.info())))
            else:
                waits.append(WaitOfTicket(ticket_id=tid, state="waiting", people_ahead=e.people_ahead(t),
                                          ticket=TicketInfo(**t.info()), **e.wait_range(t.service, now, t).fields()))
        return Reply(request_id=req.request_id, action=req.ACTION, status="ok",
                     data=TicketWaitData(waits=waits).model_dump(mode="json", by_alias=True), rev=e.rev)

    def _report_worker(self, req: ReportRequest, topic: str) -> None:
        try:
            reply = self._report(req)
        except Exception as exc:  # an unreadable ledger must not kill the worker silently
            log.exception("report failed")
            reply = Reply(request_id=req.request_id, action=req.ACTION, status="error",
                          error=ReplyError(code="unavailable", message=str(exc)[:300]))
        finally:
            self._report_slots.release()
        self.bus.call_soon(lambda: self.bus.publish(topic, fit_reply(reply)))

    def _report(self, req: ReportRequest) -> Reply:
        try:
            from xephang_reports import build as reports
        except ImportError:
            return Reply(request_id=req.request_id, action=req.ACTION, status="error",
                         error=ReplyError(code="unavailable", message="reports are not installed on this hub"))
        try:
            data = reports.report_over_mqtt(self.ledger.path, self.site, period=req.period, group_by=req.group_by,
                                            lang=req.lang, now=self.clock.now(), packed=req.packed)
        except ValueError as exc:
            code = "too-large" if isinstance(exc, reports.ReportTooLarge) else "invalid"
            return Reply(request_id=req.request_id, action=req.ACTION, status="error",
                         error=ReplyError(code=code, message=str(exc)))
        return Reply(request_id=req.request_id, action=req.ACTION, status="ok", data=data)

    # ------------------------------------------------------------------ commit, then publish
    def _commit_and_publish(self, out: Outcome, answers: list[Answer]) -> None:
        to_store = [(a.reply, a.req) for a in answers if a.store and a.req is not None]
        stored_now: list[tuple[str, str, str]] = []  # (request id, its asker, the reply's JSON)
        if out.events or out.tickets or out.counters or to_store:
            acked, self._acked = self._acked, []
            try:
                with self.ledger.transaction():
                    self.ledger.mark_published(acked)  # outbox acks ride along: no extra fsync
                    self.ledger.write(self.engine, out)
                    for reply, req in to_store:
                        text = reply.model_dump_json(by_alias=True)
                        self.ledger.save_reply(req.request_id, req.source, req.ACTION, self.clock.now(), text)
                        stored_now.append((req.request_id, req.source, text))
            except Exception as exc:
                # memory is now ahead of the ledger: restart and reload what was committed
                log.critical("ledger commit failed: %s", exc)
                raise BusFatal(f"ledger commit failed: {exc}") from exc
        stored_now += [(a.reply.request_id, a.req.source, a.reply.model_dump_json(by_alias=True))
                       for a in answers if a.remember and a.req is not None]
        for rid, source, text in stored_now:  # retries are answered from memory, the ledger is the fallback
            self._recent_replies[rid] = (source, text)
        while len(self._recent_replies) > RECENT_REPLIES:
            self._recent_replies.popitem(last=False)
        # closed tickets leave memory once written (the ledger keeps them): the engine stays small
        self.engine.prune()
        for e in out.events:
            self._publish_event(e.rev, e.family, e.kind, json.dumps(_event_json(e), ensure_ascii=False).encode())
        for a in answers:
            self.bus.publish(a.topic, fit_reply(a.reply).to_json())
        if out.events:
            self._state_dirty = True
            self._dirty_counters |= out.counters
            self._dirty_services |= out.services

    def _publish_event(self, rev: int, family: str, kind: str, payload: bytes) -> None:
        """A new event goes out now, unless older ones still wait in the outbox (then it waits behind
        them: consumers see revs in order) or the window is full."""
        if self._outbox_behind or len(self._inflight) >= OUTBOX_WINDOW or not self._send_event(rev, family, kind, payload):
            self._outbox_behind = True

    def _send_event(self, rev: int, family: str, kind: str, payload: bytes) -> bool:
        """Hand one event to paho; False when it was not taken (it stays in the ledger's outbox)."""
        mid = self.bus.publish(self.bus.topics.event(family, kind), payload)  # type: ignore[arg-type]
        if mid < 0:
            return False
        self._inflight[mid] = rev
        return True

    def _drain_outbox(self) -> None:
        """Send what waits in the ledger's outbox, oldest first, while the window has room. Asked
        again on every turn of the loop; it queries the ledger only once half the window is free."""
        if not self._outbox_behind or not self.bus.connected.is_set():
            return
        room = OUTBOX_WINDOW - len(self._inflight)
        if room < OUTBOX_WINDOW // 2:
            return
        skip = set(self._inflight.values()) | set(self._acked)  # out already (acks not yet in the ledger)
        limit = room + len(skip)
        rows = self.ledger.unpublished(limit=limit)
        for rev, family, kind, payload in rows:
            if rev in skip:
                continue
            if room == 0 or not self._send_event(rev, family, kind, payload.encode()):
                return
            room -= 1
        if len(rows) < limit:
            self._outbox_behind = False
            log.info("outbox drained: events go out as they happen again")

    def _on_published(self, mid: int) -> None:
        rev = self._inflight.pop(mid, None)
        if rev is not None:
            self._acked.append(rev)

    def _on_refused(self, mid: int) -> None:
        # the broker refused it (the ACL): it stays in the outbox for the next connect; its mid is
        # forgotten, or a later message given the same id would mark it published
        self._inflight.pop(mid, None)

    def _flush_acks(self) -> None:
        if self._acked:
            acked, self._acked = self._acked, []
            with self.ledger.transaction():
                self.ledger.mark_published(acked)
        self._last_ack_flush = self._mono()

    def _republish_all(self) -> None:
        """On every (re)connect: the outbox first (through the window, in rev order), then all retained state."""
        self._outbox_behind = True
        self._drain_outbox()
        self._state_dirty = True
        self._dirty_counters |= set(self.engine.counters)
        self._dirty_services |= set(self.engine.services)
        self._last_state = 0.0
        self._publish_state()
        self.publish_summary(self.clock.now())

    def _publish_state(self) -> None:
        if not self._state_dirty or not self.bus.connected.is_set():
            return
        mono = self._mono()
        if mono - self._last_state < STATE_MIN_INTERVAL_S:
            return
        self._last_state = mono
        now = self.clock.now()
        t = self.bus.topics
        # every retained state goes out through its contract model (the schema is the model's); one
        # that paho could not take (its queue full) stays dirty and goes with the next turn
        hall_owed = self.bus.publish(t.state_hall(), views.hall_state(self.engine, now), retain=True) < 0
        counters_owed: set[int] = set()
        for n in sorted(self._dirty_counters & set(self.engine.counters)):
            if self.bus.publish(t.state_counter(n), views.counter_state(self.engine, n), retain=True) < 0:
                counters_owed.add(n)
        services_owed: set[str] = set()
        for sid in sorted(self._dirty_services & set(self.engine.services)):
            if self.bus.publish(t.state_service(sid), views.service_state(self.engine, sid), retain=True) < 0:
                services_owed.add(sid)
        self._dirty_counters, self._dirty_services = counters_owed, services_owed
        self._state_dirty = hall_owed or bool(counters_owed or services_owed)

    _hourly_mark: tuple[str, int] | None = None  # (day, hour) of the last summary: a new hour sends the hourly event

    def publish_summary(self, now: float) -> None:
        """The retained daily summary and, once an hour has ended, an hourly summary event.

        Both carry the figures of the centre's report for the service day so far
        (``xephang_reports.build.build_report`` on the live ledger: one day, a few ms), so the province
        sees the same issued/served/no-show/wait figures the centre's head prints. The hourly
        event goes under ``event/`` (QoS 1), which the province bridge carries out; its
        ``event_id`` names the site's day and hour, so a replay after a restart changes nothing.
        """
        from datetime import date, datetime

        from xephang_reports.build import Period, build_report

        day = self.engine.day or self.engine.service_day(now)
        d = date.fromisoformat(day)
        rep = build_report(self.ledger.db, self.site, period=Period(day, "day", d, d), group_by="hour", now=now)
        waiting = sum(1 for t in self.engine.tickets.values() if t.state == "waiting" and t.day == day)
        body = summary_body(rep, site=self.settings.site, day=day, at=now, waiting=waiting)
        self.bus.publish(self.bus.topics.state_summary(), DailySummary.model_validate(body), retain=True)
        hour = datetime.fromtimestamp(now, self.engine.tz).hour
        mark = (day, hour)
        last, self._hourly_mark = self._hourly_mark, mark
        if last == mark or not (rep["totals"]["issued"] or rep["totals"]["calls"]):
            return  # same hour as last time, or nothing happened today yet
        ended = (hour - 1) % 24  # the hour that just ended (after a restart: sent again, stored once)
        row = next((r for r in rep["rows"] if r["key"] == ended), None)
        hourly = HourlySummary.model_validate({
            **body, "event_id": f"summary-{day}-{ended:02d}", "hour": ended,
            "this_hour": {k: row[k] if row else 0 for k in ("issued", "served", "no_shows", "voided")}})
        self.bus.publish(self.bus.topics.event("summary", "hourly"), hourly, qos=1)


# The command table: each state-changing request to its engine command (resync and report are
# answered by the hub itself). A new action is a model in the contract and a line here.
COMMANDS: dict[type[Request], Callable[[QueueEngine, Any, float], Outcome]] = {
    IssueTicket: lambda e, r, now: e.issue(r.service, r.priority_group, now, issued_by=r.source,
                                           seen=(r.seen_day, r.seen_number) if r.seen_day and r.seen_number else None),
    CallNext: lambda e, r, now: e.call_next(r.counter, now),
    Recall: lambda e, r, now: e.recall(r.counter, now),
    NoShow: lambda e, r, now: e.no_show(r.counter, now),
    Finish: lambda e, r, now: e.finish(r.counter, now),
    Transfer: lambda e, r, now: e.transfer(r.counter, r.to_service, now),
    Pause: lambda e, r, now: e.pause(r.counter, r.reason, now),
    Resume: lambda e, r, now: e.resume(r.counter, now),
    Rate: lambda e, r, now: e.rate(r.counter, r.score, now, ticket_id=r.ticket_id),
    CallTicket: lambda e, r, now: e.call_ticket(r.counter, r.ticket_id, r.reason, now),
    Arrived: lambda e, r, now: e.arrived(r.counter, now),
    # a dispenser voids only what it issued, just now; the hub and technicians any waiting ticket
    VoidTicket: lambda e, r, now: e.void(r.ticket_id, r.reason, now,
                                         by=r.source if is_dispenser(r.source) else None),
}


_SUMMARY_FIGURES = ("issued", "served", "no_shows", "voided", "expired", "transferred", "open", "calls", "wait",
                    "service_time", "within_target", "ratings", "rated", "satisfaction")


def summary_body(report: dict[str, Any], *, site: str, day: str, at: float, waiting: int) -> dict[str, Any]:
    """The daily summary payload: the report's day totals (same definitions), plus what is waiting now.

    ``wait``/``service_time`` are the report's dicts (seconds: n, mean, p50, p90);
    ``mean_wait_min`` repeats the mean wait in minutes for readers of the first version.
    """
    t = report["totals"]
    mean = t["wait"]["mean"]
    return {"site": site, "day": day, "at": at, "waiting": waiting,
            **{k: t[k] for k in _SUMMARY_FIGURES},
            "mean_wait_min": round(mean / 60, 2) if mean is not None else None}


def in_turns(batch: list[Inbound]) -> list[Inbound]:
    """Each asker's requests in their order, the askers by turns (the asker: the node level of
    ``…/req/hub/{action}/{node}``; the short form's requests, technicians' and the hub's, are one
    asker, kept in their order): one board's burst waits behind nobody's single request."""
    queues: dict[str, list[Inbound]] = {}
    for msg in batch:
        parts = msg.topic.split("/")
        queues.setdefault(parts[6] if len(parts) == 7 else "", []).append(msg)
    if len(queues) < 2:
        return batch
    out: list[Inbound] = []
    for i in range(max(len(q) for q in queues.values())):
        out += [q[i] for q in queues.values() if i < len(q)]
    return out


def _event_json(e: Any) -> dict[str, Any]:
    from hubd.ledger import event_json

    return event_json(e)


def typed_data(action: str, data: dict[str, Any]) -> dict[str, Any]:
    """An ok reply's data through the contract's model of that action (``REPLY_DATA``): what
    the hub answers is what docs/protocol.md says, field for field."""
    model = REPLY_DATA.get(action)
    return data if model is None else model.model_validate(data).model_dump(mode="json", by_alias=True)


def fit_reply(reply: Reply) -> Reply:
    """A reply that does not fit one message becomes an error reply that does (``too-large``):
    the asker gets an answer it can act on, and no reply can make a publish fail."""
    size = len(reply.to_json())
    if size <= MAX_PAYLOAD_BYTES:
        return reply
    log.error("reply to %s %s is %d bytes: answered too-large instead", reply.action, reply.request_id, size)
    return Reply(request_id=reply.request_id, action=reply.action, status="error", rev=reply.rev,
                 error=ReplyError(code="too-large", message=f"the answer ({size} bytes) does not fit one message "
                                  f"({MAX_PAYLOAD_BYTES}); ask for less"))


def _is_level(x: str) -> bool:
    """One topic level of the contract's alphabet, the whole string (``tech\\n`` as a reply topic's
    last level made the broker drop the hub's connection: a control character in a topic, its stuck
    reply re-sent on every reconnect; ``check_level`` matched before a final newline until 2026-12-07)."""
    try:
        check_level(x)
    except ContractError:
        return False
    return True


def _encodable(x: object) -> bool:
    if not isinstance(x, str):
        return True
    try:
        x.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _peek(payload: bytes) -> tuple[str, str] | None:
    """request_id and source of a payload that failed validation, if readable and well-formed."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    rid, source = obj.get("request_id"), obj.get("source")
    if not all(_encodable(x) for x in (rid, source)):
        return None  # JSON escapes can smuggle lone surrogates: such a reply could not even be sent
    if not (isinstance(rid, str) and 0 < len(rid) <= 64 and isinstance(source, str) and _is_level(source)):
        return None
    return rid, source


def main(argv: Sequence[str] | None = None) -> int:
    return HubDaemon.main(argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
