"""The bus: one MQTT client per daemon, on paho-mqtt 2.x with MQTT 5.

- Connecting never blocks boot: ``start()`` returns at once and paho retries in the
  background (back-off capped at ``reconnect_max_s``, so a broker that comes back is
  reached within a few seconds).
- On every connect, in this order: subscribe everything, publish the retained birth
  (``online: true`` with a growing ``session``), then run the owner's on-connect hooks
  (republish retained state, …). The Will says ``online: false`` with the same session.
- paho's thread only puts items on ``inbox``; the owner thread calls ``process()``, which
  runs handlers inside a blast shield: a bad payload is logged (truncated) and counted,
  never raised into paho, never kills the daemon.
- ``request()`` sends a hub request: the ``request_id`` is made once, retried with the same
  id, late replies are dropped.
- Bad credentials or a refused subscription are permanent: ``process()`` raises ``BusFatal``
  and the daemon exits non-zero (systemd's restart limits apply), no hot loop.
- ``publish()`` never raises into its caller for what a remote party can put in a topic or a
  payload: a topic outside the contract's alphabet (a wildcard, a NUL), a payload over 64 KiB,
  paho refusing it, or the broker refusing it (PUBACK ≥ 128) is logged, counted in
  ``stats.publish_failed`` (the node's health) and dropped; the daemon goes on.
- Command subscriptions (requests, replies, sim presses, config pushes, events) take no
  retained message: one left retained by a misbehaving client would replay on every restart.
  It is dropped and counted (``retained-command``).
- The client id is ``xephang-{node}`` (``CLIENT_ID_PREFIX``): a site's broker replaces it by the
  username on the boards' listener, so one account can never take another's place there.

``xephang.testing`` has ``FakeBroker``/``FakeBus``: the same interface with no network.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paho.mqtt import client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.matcher import MQTTMatcher
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from xephang import __version__
from xephang.contract import (
    CLIENT_ID_PREFIX,
    MAX_PAYLOAD_BYTES,
    BadPayload,
    ContractError,
    Message,
    NodeStatus,
    Reply,
    Request,
    Topics,
    check_topic,
    decode,
)
from xephang.settings import BrokerSettings

log = logging.getLogger(__name__)

# CONNACK / SUBACK reason codes that no retry can fix
_PERMANENT = {133, 134, 135, 138, 140}  # bad client id, bad user/password, not authorized, banned, bad auth method
def client_id_for(name: str) -> str:
    """The MQTT client id a daemon or tool presents for ``name`` (a node id or ``tech-…``)."""
    return name if name.startswith(CLIENT_ID_PREFIX) else CLIENT_ID_PREFIX + name


class BusError(RuntimeError):
    """Root of bus errors."""


class BusFatal(BusError):
    """A permanent bus error (credentials, ACL): the daemon must exit non-zero."""


class QueueFull(BusError):
    """paho's queue of unacknowledged messages is full (``MAX_QUEUED``): this one was not taken."""


CHATTER_MAX = 2000  # messages received at QoS 0 waiting for the owner at most; more are dropped (counted)
CHATTER_PER_TURN = 200  # QoS 0 messages handled per process() turn, after everything else waiting
MAX_QUEUED = 5000  # messages paho keeps for the broker (in flight and waiting) before it refuses more
# our status re-said at most this often when our own status topic says otherwise (a late Will; or a
# board's password on the technicians' listener flooding "offline": one birth per message filled the
# out-queue ahead of the board's requests, a press took 11 s; red team 2026-12-07)
OWN_STATUS_EVERY_S = 2.0
# ... and once more this long after the last such word: the broker drops what a flood puts behind
# a reader (QoS 0), so the flood's last word may never reach us while it stays retained
OWN_STATUS_SETTLE_S = 5.0
QUEUE_FULL = -2  # what ``publish()`` returns for a message the full queue refused (other failures: -1)


@dataclass(frozen=True)
class Inbound:
    """A message handed from paho's thread to the owner thread."""

    topic: str
    payload: bytes
    retain: bool = False


Handler = Callable[[Inbound], None]


# What paho's thread (and other threads) hand to the owner thread, one type per kind.
@dataclass(frozen=True)
class Connected:
    """The link is up (subscribed, birth published): run the connect hooks."""


@dataclass(frozen=True)
class Disconnected:
    """The link went down: run the disconnect hooks."""


@dataclass(frozen=True)
class Published:
    """The broker acknowledged publish ``mid``."""

    mid: int


@dataclass(frozen=True)
class Refused:
    """The broker refused publish ``mid`` (PUBACK >= 128): counted, never fatal."""

    mid: int
    reason: str


@dataclass(frozen=True)
class Fatal:
    """A permanent refusal (credentials, a subscription): ``process()`` raises BusFatal."""

    text: str


@dataclass(frozen=True)
class Call:
    """Run ``fn`` in the owner thread (a worker's result, a key press)."""

    fn: Callable[[], None]


@dataclass(frozen=True)
class Wake:
    """Only end the owner's wait."""


InboxItem = Inbound | Connected | Disconnected | Published | Refused | Fatal | Call | Wake


@dataclass
class _Pending:
    request_id: str
    action: str
    topic: str
    payload: bytes
    timeout_s: float
    attempts_left: int
    deadline: float
    on_reply: Callable[[Reply | None], None]
    expiry_s: int


@dataclass
class BusStats:
    received: int = 0
    dropped: int = 0  # malformed or failing inbound messages
    dropped_by_code: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    publish_failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # reason -> count
    late_replies: int = 0
    retries: int = 0
    connects: int = 0
    disconnects: int = 0


def _session_counter(state_dir: Path | None, node: str) -> Callable[[], int]:
    """A counter that grows on every call and survives restarts when a state dir is set."""
    lock = threading.Lock()
    path = state_dir / f"{node}.session" if state_dir else None
    mem = [int(time.time() * 1000)]  # without a state dir: the wall clock is the best we have

    def nxt() -> int:
        with lock:
            if path is None:
                mem[0] += 1
                return mem[0]
            try:
                cur = int(path.read_text().strip() or 0)
            except (FileNotFoundError, ValueError):
                cur = 0
            cur += 1
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(str(cur))
            os.replace(tmp, path)
            return cur

    return nxt


class Bus:
    """MQTT client owned by one daemon thread. See module docstring."""

    def __init__(
        self,
        *,
        site: str,
        node: str,
        role: str = "",
        broker: BrokerSettings | None = None,
        state_dir: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        version: str = __version__,
    ) -> None:
        self.topics = Topics(site)
        self.node = node
        self.role = role
        self.version = version
        self.broker = broker or BrokerSettings()
        self.inbox: queue.Queue[InboxItem] = queue.Queue()
        # what comes at QoS 0 (what boards say of themselves, subscribed with qos=0) waits apart, in a
        # bounded queue handled after the rest: one board's password flooding its own status topic
        # (35,000 a second) then costs a bounded memory and never holds up the hub's events and replies
        self.chatter: queue.Queue[Inbound] = queue.Queue(maxsize=CHATTER_MAX)
        self.chatter_dropped = 0  # written by paho's thread only; the owner counts what it has not yet
        self._chatter_counted = 0
        # what the broker delivers that none of our filters asked for: a subscription someone else put
        # in this node's persistent session (one login with its password, `R/#`, then gone: the session
        # keeps it through every reconnect), dropped in paho's thread before any queue (it filled the
        # board's inbox with 9,695 messages of another board's status flood). Written by paho's thread only
        self.foreign_dropped = 0
        self._foreign_counted = 0
        self._foreign_logged = -1e9
        self._matcher = MQTTMatcher()  # our filters; replaced whole (paho's thread reads it), never changed
        self.stats = BusStats()
        self._monotonic = clock
        self._subs: list[tuple[str, Handler, bool]] = []  # (filter, handler, takes retained)
        self._forgotten: set[str] = set()  # filters an earlier session may hold: unsubscribed at connect (forget)
        self._elsewhere: set[str] = set()  # filters another connection reads for us (subscribe(elsewhere=True))
        # this connection's subscriptions were sent (set with the snapshot in _paho_connect, under the
        # lock): a later subscribe() sends its own, an earlier one is in the snapshot. `connected` is set
        # after the snapshot: a subscribe() between the two was once in neither
        self._subs_sent = False
        self._sub_qos: dict[str, int] = {}  # filter -> the QoS asked (1 unless a subscriber said 0)
        self._connect_hooks: list[Callable[[], None]] = []
        self._disconnect_hooks: list[Callable[[], None]] = []
        self._published_hooks: list[Callable[[int], None]] = []
        self._refused_hooks: list[Callable[[int], None]] = []
        self._pending: dict[str, _Pending] = {}
        self._next_session = _session_counter(state_dir, node)
        self.session = 0
        self.connected = threading.Event()
        self.ever_connected = threading.Event()
        # the broker acknowledged the connect-time subscriptions (their SUBACK): from here on a
        # message another client publishes to one of our filters reaches us; our own requests
        # need not wait for it (the broker handles one connection's packets in order)
        self.subscribed = threading.Event()
        self._connect_sub_mid: int | None = None
        self._fatal: str | None = None
        self._stopping = False
        self._started = False
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self.reply_topic = self.topics.reply(node)
        self.subscribe(self.reply_topic, self._on_reply, retained=False)
        # QoS 0, and only its newest message is kept (_paho_message): a flood on it waits nowhere
        self._own_status_topic = self.topics.status(node)
        self._own_status_latest: Inbound | None = None
        self.subscribe(self._own_status_topic, self._on_own_status, qos=0)
        self._status_next = 0.0  # monotonic: when our status may be re-said again
        self._status_due: float | None = None  # a re-say held back by OWN_STATUS_EVERY_S
        self._status_settle: float | None = None  # the re-say after the last foreign word (OWN_STATUS_SETTLE_S)
        self.status_resaid = 0

    # ------------------------------------------------------------------ owner-thread API
    def subscribe(self, topic_filter: str, handler: Handler, *, retained: bool = True, qos: int = 1,
                  elsewhere: bool = False) -> None:
        """Route messages matching ``topic_filter`` to ``handler`` (run in the owner thread).

        ``retained=False`` for commands (requests, replies, presses, pushes, events): a retained
        message there is a replay nobody meant, dropped and counted as ``retained-command``.
        ``qos=0`` for what other boards write and only the latest of matters (their retained
        status, health, alerts): a board's password flooding its own topic then cannot fill the
        broker's window of unacknowledged QoS 1 messages to us, ahead of the hub's replies.
        ``elsewhere=True``: another connection of this node reads them (``xephang.reader``) and hands
        them in (``hand_in``); this one does not subscribe (``read_here`` makes it, if that one fails)."""
        with self._lock:
            self._subs.append((topic_filter, handler, retained))
            self._sub_qos[topic_filter] = min(qos, self._sub_qos.get(topic_filter, qos))
            matcher = MQTTMatcher()
            for flt in dict.fromkeys(f for f, _, _ in self._subs):
                matcher[flt] = True
            self._matcher = matcher
            if elsewhere:
                self._elsewhere.add(topic_filter)
            else:  # asked for again here: never unsubscribed at a later connect
                self._forgotten.discard(topic_filter)
            already = self._subs_sent and not elsewhere
        if already:
            self._transport_subscribe([topic_filter])

    def hand_in(self, msg: Inbound) -> None:
        """From any thread: a message another connection of this node read (``subscribe(elsewhere=True)``),
        handled as the boards' chatter is (bounded, after the rest: ``process``)."""
        self._take(msg, qos=0)

    def read_here(self, topic_filter: str) -> None:
        """The other connection is gone for good: this one subscribes to ``topic_filter`` itself."""
        with self._lock:
            self._elsewhere.discard(topic_filter)
            self._forgotten.discard(topic_filter)
            connected = self._subs_sent
        if connected:
            self._transport_subscribe([topic_filter])

    def forget(self, topic_filter: str) -> None:
        """A filter this node no longer reads that a session of an earlier version may still hold at the
        broker (a persistent session keeps its subscriptions, and reconnecting keeps the session): it
        is unsubscribed at every connect while no ``subscribe`` asks for it. Call before ``start``."""
        with self._lock:
            self._forgotten.add(topic_filter)

    def add_connect_hook(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` in the owner thread after every (re)connect, after birth."""
        self._connect_hooks.append(hook)

    def add_disconnect_hook(self, hook: Callable[[], None]) -> None:
        self._disconnect_hooks.append(hook)

    def add_published_hook(self, hook: Callable[[int], None]) -> None:
        """Run ``hook(mid)`` in the owner thread when the broker acknowledged a publish."""
        self._published_hooks.append(hook)

    def add_refused_hook(self, hook: Callable[[int], None]) -> None:
        """Run ``hook(mid)`` in the owner thread when the broker refused a publish (PUBACK >= 128)."""
        self._refused_hooks.append(hook)

    def publish(
        self,
        topic: str,
        payload: Message | bytes | str | None,
        *,
        retain: bool = False,
        qos: int = 1,
        expiry_s: int | None = None,
    ) -> int:
        """Publish (QoS 1 by default). Queued by paho while offline. Returns the message id, or a
        negative number when the message could not be sent (logged and counted in
        ``stats.publish_failed``): ``QUEUE_FULL`` when paho's queue had no room (a caller that must
        not lose the message keeps it and sends it again later), -1 for anything else."""
        if isinstance(payload, Message):
            data: bytes = payload.to_json()
        elif isinstance(payload, str):
            data = payload.encode()
        else:
            data = payload or b""
        return self._guarded_publish(topic, data, qos=qos, retain=retain, expiry_s=expiry_s)

    def _guarded_publish(self, topic: str, data: bytes, *, qos: int, retain: bool, expiry_s: int | None) -> int:
        """The one way out: what cannot be sent is logged, counted and dropped, never raised."""
        reason = ""
        try:
            check_topic(topic)
        except ContractError:
            reason = "bad-topic"
        else:
            if len(data) > MAX_PAYLOAD_BYTES:
                reason = "too-large"
        if not reason:
            try:
                return self._transport_publish(topic, data, qos=qos, retain=retain, expiry_s=expiry_s)
            except QueueFull:
                reason = "queue-full"
            except BusError as exc:
                reason = "not-started" if "not started" in str(exc) else "bus-error"
            except Exception:  # paho's own refusals (ValueError, …): never into the caller
                log.exception("paho refused a publish on %r", topic[:120])
                reason = "paho-error"
        self.stats.publish_failed[reason] += 1
        n = self.stats.publish_failed[reason]
        if n <= 10 or n % 1000 == 0:  # a flood fails thousands in a row: the log gets the first and every 1000th
            log.error("not published (%s, %d so far): %d bytes on %r", reason, n, len(data), topic[:120])
        return QUEUE_FULL if reason == "queue-full" else -1

    def clear(self, topic: str) -> int:
        """Clear a retained topic (empty payload)."""
        return self.publish(topic, b"", retain=True)

    def request(
        self,
        req: Request,
        *,
        on_reply: Callable[[Reply | None], None],
        timeout_s: float = 2.0,
        attempts: int = 3,
    ) -> str:
        """Send ``req`` to the hub; ``on_reply(reply)`` runs once in the owner thread, with None
        after ``attempts`` timeouts. Retries reuse the same ``request_id``."""
        if not req.reply_to:
            req = req.model_copy(update={"reply_to": self.reply_topic})
        payload = req.to_json()
        topic = self.topics.req(req.ACTION, self.node)  # the requester in the topic: the ACL can check it
        expiry = max(1, int(timeout_s * attempts + 1))  # the broker drops it when nobody waits any more
        p = _Pending(req.request_id, req.ACTION, topic, payload, timeout_s, attempts - 1,
                     self._monotonic() + timeout_s, on_reply, expiry)
        self._pending[req.request_id] = p
        self._guarded_publish(topic, payload, qos=1, retain=False, expiry_s=expiry)
        return req.request_id

    def request_sync(self, req: Request, *, timeout_s: float = 2.0, attempts: int = 3) -> Reply | None:
        """Blocking request for CLIs and tests: pumps ``process()`` until the reply or give-up."""
        box: list[Reply | None] = []
        self.request(req, on_reply=box.append, timeout_s=timeout_s, attempts=attempts)
        end = time.monotonic() + timeout_s * attempts + 1
        while not box and time.monotonic() < end:
            self.process(timeout=0.05)
        return box[0] if box else None

    def wake(self) -> None:
        """Make the owner's ``process()`` return now (another source, e.g. a key queue, has work)."""
        self.inbox.put(Wake())

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the owner thread (from any thread): how a worker hands back its result."""
        self.inbox.put(Call(fn))

    def pending_requests(self) -> int:
        return len(self._pending)

    def process(self, timeout: float = 0.1, max_items: int = 1000) -> int:
        """Drain the inbox in the owner thread; run handlers; retry requests. Returns items handled."""
        n = 0
        try:
            item = self.inbox.get(timeout=timeout) if timeout > 0 else self.inbox.get_nowait()
        except queue.Empty:
            item = None
        while item is not None:
            self._dispatch(item)
            n += 1
            if n >= max_items:
                break
            try:
                item = self.inbox.get_nowait()
            except queue.Empty:
                item = None
        with self._lock:
            own, self._own_status_latest = self._own_status_latest, None
        if own is not None:
            self._dispatch(own)
            n += 1
        for _ in range(CHATTER_PER_TURN):
            try:
                msg = self.chatter.get_nowait()
            except queue.Empty:
                break
            self._dispatch(msg)
            n += 1
        if self.chatter_dropped != self._chatter_counted:
            seen = self.chatter_dropped
            dropped, self._chatter_counted = seen - self._chatter_counted, seen
            self.stats.dropped += dropped
            self.stats.dropped_by_code["backlog"] += dropped
        if self.foreign_dropped != self._foreign_counted:
            self._count_foreign()
        self._tick_requests()
        self._tick_status()
        if self._fatal:
            raise BusFatal(self._fatal)
        return n

    def _count_foreign(self) -> None:
        seen = self.foreign_dropped
        dropped, self._foreign_counted = seen - self._foreign_counted, seen
        self.stats.dropped += dropped
        self.stats.dropped_by_code["foreign"] += dropped
        now = self._monotonic()
        if now - self._foreign_logged >= 60:  # a flood writes a line a minute
            self._foreign_logged = now
            log.warning("dropped %d message(s) that no filter of %s asked for (%d in all): a subscription someone "
                        "else put in this node's session at the broker (was its password used elsewhere?)",
                        dropped, self.node, seen)

    def wait_connected(self, timeout: float) -> bool:
        """Pump until connected and subscribed (for tools and tests: another client may publish
        to us as soon as this returns)."""
        end = time.monotonic() + timeout
        while not (self.connected.is_set() and self.subscribed.is_set()) and time.monotonic() < end:
            self.process(timeout=0.05)
        return self.connected.is_set() and self.subscribed.is_set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Connect in the background; never blocks when the broker is down."""
        self._started = True
        self._transport_start()

    def stop(self, timeout: float = 2.0) -> None:
        """Publish a retained offline status ourselves (a clean disconnect suppresses the Will)."""
        self._stopping = True
        if self.connected.is_set():
            with contextlib.suppress(Exception):
                self._publish_status(online=False, wait=timeout)
        self._transport_stop(timeout)

    @property
    def started(self) -> bool:
        return self._started

    @property
    def fatal(self) -> str | None:
        return self._fatal

    # ------------------------------------------------------------------ internals
    def _status_payload(self, online: bool) -> bytes:
        return NodeStatus(node=self.node, online=online, session=self.session, role=self.role,
                          version=self.version, at=time.time()).to_json()

    def _dispatch(self, item: InboxItem) -> None:
        match item:
            case Inbound():
                self._deliver(item)
            case Connected():
                for hook in list(self._connect_hooks):
                    self._shielded_hook(hook)
            case Disconnected():
                for hook in list(self._disconnect_hooks):
                    self._shielded_hook(hook)
            case Published(mid):
                for hook in list(self._published_hooks):
                    hook(mid)
            case Refused(mid, reason):
                self.stats.publish_failed["refused"] += 1
                log.error("the broker refused publish %s: %s (check the ACL)", mid, reason)
                for hook in list(self._refused_hooks):
                    hook(mid)
            case Fatal(text):
                self._fatal = text
            case Call(fn):
                self._shielded_hook(fn)
            case Wake():
                pass

    def _deliver(self, msg: Inbound) -> None:
        self.stats.received += 1
        for flt, handler, takes_retained in list(self._subs):
            if not mqtt.topic_matches_sub(flt, msg.topic):
                continue
            if msg.retain and not takes_retained:
                self.drop_retained_command(msg)
                continue
            self._shielded(handler, msg)

    def drop_retained_command(self, msg: Inbound) -> None:
        """A retained message on a command topic (a request, a reply, a push): a replay nobody meant,
        counted as ``retained-command``. Also for what reached the owner through another connection."""
        self.stats.dropped += 1
        self.stats.dropped_by_code["retained-command"] += 1
        log.warning("dropped a retained message on command topic %s (%d bytes)", msg.topic[:120], len(msg.payload))

    def _shielded(self, handler: Handler, msg: Inbound) -> None:
        try:
            handler(msg)
        except BadPayload as exc:
            self.stats.dropped += 1
            self.stats.dropped_by_code[exc.code] += 1
            log.warning("dropped message on %s (%s): %s; payload %r", msg.topic, exc.code, exc, msg.payload[:200])
        except BusFatal:
            raise
        except Exception:
            self.stats.dropped += 1
            self.stats.dropped_by_code["handler-error"] += 1
            log.exception("handler %s failed on %s; payload %r", getattr(handler, "__qualname__", handler),
                          msg.topic, msg.payload[:200])

    def _shielded_hook(self, hook: Callable[[], None]) -> None:
        try:
            hook()
        except BusFatal:
            raise
        except Exception:
            log.exception("bus hook %s failed", getattr(hook, "__qualname__", hook))

    def _on_reply(self, msg: Inbound) -> None:
        reply = decode(Reply, msg.payload)
        p = self._pending.pop(reply.request_id, None)
        if p is None:
            self.stats.late_replies += 1
            log.debug("late or unknown reply %s dropped", reply.request_id)
            return
        p.on_reply(reply)

    def _on_own_status(self, msg: Inbound) -> None:
        # a late Will of an older connection must not leave us marked offline
        if not msg.payload or self._stopping or not self.connected.is_set():
            return
        st = decode(NodeStatus, msg.payload)
        if st.online and st.session == self.session:
            return  # our own birth
        # a late Will of an older connection, or words on our topic that are not ours (a forged
        # session kept consumers from believing our later Will): re-said, but at most every
        # OWN_STATUS_EVERY_S, and the last word is ours (_tick_status)
        now = self._monotonic()
        self._status_settle = now + OWN_STATUS_SETTLE_S
        if now < self._status_next:
            self._status_due = self._status_next
            return
        log.info("status says %s (session %s, ours %s): re-publishing birth", "online" if st.online else "offline",
                 st.session, self.session)
        self._resay_status(now)

    def _resay_status(self, now: float) -> None:
        self._status_next, self._status_due = now + OWN_STATUS_EVERY_S, None
        self.status_resaid += 1
        self._publish_status(online=True)

    def _tick_status(self) -> None:
        if self._status_due is None and self._status_settle is None:
            return
        now = self._monotonic()
        due = self._status_due is not None and now >= self._status_due
        settled = self._status_settle is not None and now >= self._status_settle
        if not (due or settled):
            return
        if settled:
            self._status_settle = None
        if self._stopping or not self.connected.is_set():
            self._status_due = self._status_settle = None  # the next connect says it anyway
            return
        if now >= self._status_next or settled:
            self._resay_status(now)

    def _tick_requests(self) -> None:
        if not self._pending:
            return
        now = self._monotonic()
        for rid, p in list(self._pending.items()):
            if now < p.deadline:
                continue
            if p.attempts_left > 0:
                p.attempts_left -= 1
                p.deadline = now + p.timeout_s
                self.stats.retries += 1
                log.info("retrying %s %s", p.action, rid)
                self._guarded_publish(p.topic, p.payload, qos=1, retain=False, expiry_s=p.expiry_s)
            else:
                del self._pending[rid]
                log.warning("no reply to %s %s: giving up", p.action, rid)
                p.on_reply(None)

    # ------------------------------------------------------------------ transport (paho)
    def _make_client(self) -> mqtt.Client:
        b = self.broker
        c = paho_client(b, client_id_for(self.node), default_username=self.node)
        c.reconnect_delay_set(min_delay=1, max_delay=max(1, int(b.reconnect_max_s)))
        c.max_inflight_messages_set(50)
        c.max_queued_messages_set(MAX_QUEUED)
        c.on_connect = self._paho_connect
        c.on_disconnect = self._paho_disconnect
        c.on_message = self._paho_message
        c.on_publish = self._paho_publish
        c.on_subscribe = self._paho_subscribe
        c.on_connect_fail = lambda *_: log.debug("connect to %s:%s failed; retrying", b.host, b.port)
        return c

    def _set_will(self, c: mqtt.Client) -> None:
        c.will_set(self.topics.status(self.node), self._status_payload(False), qos=1, retain=True)

    def _transport_start(self) -> None:
        self._client = c = self._make_client()
        self.session = self._next_session()
        self._set_will(c)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.broker.session_expiry_s
        c.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                        clean_start=False, properties=props)
        c.loop_start()

    def _transport_stop(self, timeout: float) -> None:
        c = self._client
        if c is None:
            return
        with contextlib.suppress(Exception):
            c.disconnect()
        c.loop_stop()
        self.connected.clear()

    def _transport_subscribe(self, filters: list[str]) -> None:
        if self._client is not None and filters:
            self._client.subscribe([(f, self._sub_qos.get(f, 1)) for f in filters])

    def _transport_publish(self, topic: str, data: bytes, *, qos: int, retain: bool, expiry_s: int | None) -> int:
        if self._client is None:
            raise BusError("bus not started")
        props = None
        if expiry_s:
            props = Properties(PacketTypes.PUBLISH)
            props.MessageExpiryInterval = int(expiry_s)
        info = self._client.publish(topic, data, qos=qos, retain=retain, properties=props)
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            # paho still hands out a message id for a message it did not keep: that id must never
            # be waited on (a later message may get it and its PUBACK would look like this one's)
            raise QueueFull(f"paho's queue is full ({MAX_QUEUED} messages)")
        return info.mid

    def _publish_status(self, *, online: bool, wait: float = 0) -> None:
        if self._client is None:
            raise BusError("bus not started")
        info = self._client.publish(self.topics.status(self.node), self._status_payload(online), qos=1, retain=True)
        if wait:
            with contextlib.suppress(Exception):
                info.wait_for_publish(wait)

    # paho thread ---------------------------------------------------------------
    def _paho_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if rc.is_failure:
            code = getattr(rc, "value", 0)
            text = f"broker {self.broker.host}:{self.broker.port} refused {self.node!r}: {rc}"
            if code in _PERMANENT:
                log.error("%s (permanent: check the node's username/password and the ACL)", text)
                self.inbox.put(Fatal(text + " — check credentials/ACL"))
                client.disconnect()
            else:
                log.warning("%s", text)
            return
        self.stats.connects += 1
        with self._lock:
            filters = list(dict.fromkeys(f for f, _, _ in self._subs if f not in self._elsewhere))
            stale = sorted(self._forgotten - set(filters))
            # both packets go out before the lock is let go: a subscribe() of a forgotten filter in the
            # owner thread (the hub reading requests on main when its inbox is refused) waits for the
            # lock, so its SUBSCRIBE follows this UNSUBSCRIBE and is not undone by it
            if stale:  # "no subscription existed" when the session is new: harmless
                client.unsubscribe(stale)
            if filters:
                _, self._connect_sub_mid = client.subscribe([(f, self._sub_qos.get(f, 1)) for f in filters])
            self._subs_sent = True
        if not filters:
            self.subscribed.set()
        client.publish(self.topics.status(self.node), self._status_payload(True), qos=1, retain=True)
        self.connected.set()
        self.ever_connected.set()
        log.info("connected to %s:%s as %s (session %s, session_present=%s)", self.broker.host,
                 self.broker.port, self.node, self.session, flags.session_present)
        self.inbox.put(Connected())

    def _paho_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        was = self.connected.is_set()
        with self._lock:
            self._subs_sent = False
        self.connected.clear()
        self.subscribed.clear()
        if was:
            self.stats.disconnects += 1
            # our own stop is routine; anything else is worth a technician's attention
            log.log(logging.INFO if self._stopping else logging.WARNING, "disconnected from broker: %s", rc)
            self.inbox.put(Disconnected())
        if not self._stopping:
            # the next connection is a new session: its Will must carry the new number
            self.session = self._next_session()
            self._set_will(client)

    def _paho_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        item = Inbound(msg.topic, bytes(msg.payload), bool(msg.retain))
        if msg.topic == self._own_status_topic:
            # only the newest matters: one slot, never lost behind a flood, never growing
            with self._lock:
                wake, self._own_status_latest = self._own_status_latest is None, item
            if wake:
                self.inbox.put(Wake())
            return
        if not self._ours(msg.topic):
            self.foreign_dropped += 1  # counted as `foreign` by the owner (process)
            return
        self._take(item, msg.qos)

    def _ours(self, topic: str) -> bool:
        """Whether one of our filters matches ``topic`` (from any thread)."""
        try:
            next(self._matcher.iter_match(topic))
        except StopIteration:
            return False
        return True

    def _take(self, item: Inbound, qos: int) -> None:
        if qos > 0:
            self.inbox.put(item)
            return
        try:
            self.chatter.put_nowait(item)
        except queue.Full:
            self.chatter_dropped += 1  # counted as `backlog` by the owner (process)
            return
        if self.chatter.qsize() == 1:
            self.inbox.put(Wake())  # the owner may be waiting on the inbox

    def _paho_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        if rc.is_failure:
            # a refused publish (the ACL, a quota) is dropped and counted: a remote party must not
            # be able to end a daemon by making it publish somewhere it may not
            self.inbox.put(Refused(mid, str(rc)))
            return
        self.inbox.put(Published(mid))

    def _paho_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: list[Any], props: Any) -> None:
        for rc in rcs:
            if rc.is_failure and getattr(rc, "value", 0) in _PERMANENT:
                self.inbox.put(Fatal(f"broker refused a subscription of {self.node!r}: {rc} — check the ACL"))
        if mid == self._connect_sub_mid:
            self.subscribed.set()


def paho_client(broker: BrokerSettings, client_id: str, *, default_username: str | None = None,
                manual_ack: bool = False) -> mqtt.Client:
    """The one paho client builder (daemons, tools, the province ingester): MQTT 5, the account
    (``broker.username``, else ``default_username``; none: anonymous) with its password, TLS when
    asked, and TCP_NODELAY. Callers add their callbacks and reconnect policy."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=manual_ack)
    user = broker.username or default_username
    if user:
        c.username_pw_set(user, broker.secret())
    if broker.tls:
        c.tls_set(ca_certs=str(broker.ca_file) if broker.ca_file else None)
    c.on_socket_open = _nodelay
    return c


def _nodelay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    # Nagle + the broker's delayed ACK hold a PUBLISH written right after a PUBACK for ~40 ms:
    # a call would reach the board 80 ms late. Small control messages must go out at once.
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
