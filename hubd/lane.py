"""The hub's second connection: the citizens' button and the web daemon do not wait behind a flood.

Every board's requests reach the hub through one MQTT connection, in the broker's order, and
mosquitto 2.0 has no per-client rate. The hub drops a board's flood unread (``flood``) but cannot
read faster than its socket: counter 1's password piping QoS 1 requests through ``mosquitto_pub
-l`` made a dispenser's ticket take 17.6 s and lost the next press (the broker queued 200,000 of the
flood for the hub; ``bench/request_flood.py``). The broker itself stayed quick (a message between
two other clients took 1–2 ms throughout): only the hub's queue was full.

So the hub holds a second connection under its own account (``hub-lane``) that subscribes to the
dispensers' requests and the web daemon's (``lane_filters``) and sends their replies (the ACL lets
it write only ``R/reply/{dispenser}`` and ``R/reply/web``): the broker keeps a queue per
connection, so a counter's flood fills the hub's main queue and not this one. Replies must go this
way too: the main connection's acknowledgements come back behind the flood, and paho holds QoS 1
messages past its window of 50 unacknowledged ones (a reply handled at once through the lane
still took 11-25 s the main way).
The main connection still subscribes to every request: it is the safety net while the lane is
down (a clean session: what was published meanwhile reaches the hub through the main one), and
each request covered by both arrives twice. The hub handles one copy of each publish
(``Twins``) and drops its twin silently; a board's retry is a new publish and is answered again.

Why by hand and not a second ``Bus``: the lane publishes only replies (no birth, no Will, no
health: the hub's own health says how it is) and needs none of the bus's request machinery; paho's
client is the library, this module only feeds its messages to the hub's thread.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xephang.bus import Inbound, paho_client
from xephang.contract import CLIENT_ID_PREFIX, DISPENSER_ACTIONS, Topics
from xephang.settings import BrokerSettings

log = logging.getLogger(__name__)

LANE_USERNAME = "hub-lane"
TWIN_MEMORY = 5000  # request ids whose copies are counted (a dispenser makes a few hundred a day)


def lane_filters(topics: Topics, web: str = "web") -> list[str]:
    """What the lane reads: every dispenser's ticket requests and the web daemon's (the officers'
    console, the head's reports)."""
    return [f"{topics.root}/req/hub/{a}/+" for a in DISPENSER_ACTIONS] + [f"{topics.root}/req/hub/+/{web}"]


def covered(action: str, sender: str | None, web: str = "web") -> bool:
    """Does the lane read this request topic too (``R/req/hub/{action}/{sender}``)?"""
    return sender is not None and (action in DISPENSER_ACTIONS or sender == web)


def lane_answers(asker: str, web: str = "web") -> bool:
    """Is ``R/reply/{asker}`` one the lane may write (the ACL's: the dispensers' and the web daemon's)?"""
    return asker.startswith("dispenser-") or asker == web


class Twins:
    """One copy of each publish: a request the lane covers arrives once through each connection.

    Per request id, the copies seen through each; a copy is a twin when the other connection has
    already brought as many. The first publish comes through the lane (handled), then through the
    main connection (a twin, dropped); a retry is a second publish (handled once more); with the
    lane down every copy comes through the main connection alone and each is handled."""

    def __init__(self, memory: int = TWIN_MEMORY) -> None:
        self.memory = memory
        self._copies: OrderedDict[str, list[int]] = OrderedDict()
        self.twins = 0

    def is_twin(self, request_id: str, via_lane: bool) -> bool:
        c = self._copies.get(request_id)
        if c is None:
            c = self._copies[request_id] = [0, 0]
            while len(self._copies) > self.memory:
                self._copies.popitem(last=False)
        i = 1 if via_lane else 0
        c[i] += 1
        twin = c[i] <= c[1 - i]
        self.twins += twin
        return twin


@dataclass
class LaneStats:
    received: int = 0
    retained_dropped: int = 0  # a retained request is the main connection's to count (retained-command)
    connects: int = 0
    refused: int = 0  # logins the broker refused
    replies: int = 0  # replies sent through the lane
    replies_refused: int = 0  # by the broker (an ACL older than the lane): replies go the main way from then on


class Lane:
    """The second connection. ``deliver`` is called from paho's thread with each request."""

    def __init__(self, broker: BrokerSettings, topics: Topics, deliver: Callable[[Inbound], None], *,
                 password_file: Path, username: str = LANE_USERNAME) -> None:
        self.broker = broker.model_copy(update={"username": username, "password_file": password_file,
                                                "password": None})
        self.topics = topics
        self.deliver = deliver
        self.username = username
        self.stats = LaneStats()
        self.subscribed = threading.Event()
        self.may_reply = True  # until the broker refuses a reply of ours
        self._client: Any = None

    @property
    def connected(self) -> bool:
        return self.subscribed.is_set()

    def start(self) -> None:
        c = self._client = paho_client(self.broker, f"{CLIENT_ID_PREFIX}{self.username}")
        c.reconnect_delay_set(0.5, max(1.0, self.broker.reconnect_max_s))
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_subscribe, c.on_publish = self._on_subscribe, self._on_publish
        c.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s, clean_start=True)
        c.loop_start()

    def stop(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()
        self.subscribed.clear()

    def publish(self, topic: str, payload: bytes) -> bool:
        """Send a reply to a dispenser or the web daemon this way (QoS 1): its acknowledgement comes back
        on this connection, not behind a flood on the main one (where the hub's replies waited for
        acknowledgements queued behind 200,000 flood messages: 11-25 s). False: send it the main way."""
        if self._client is None or not self.may_reply or not self.subscribed.is_set():
            return False
        try:
            info = self._client.publish(topic, payload, qos=1)
        except Exception:  # never into the hub's turn: the main way is still there
            log.exception("lane: a reply on %s could not be handed to paho", topic[:120])
            return False
        if info.rc != 0:
            return False
        self.stats.replies += 1
        return True

    # paho's thread
    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if reason.is_failure:
            # the board retries the request and gets the stored reply the main way
            self.stats.replies_refused += 1
            self.may_reply = False
            log.error("lane: the broker refused a reply of %s (%s): replies go through the main connection; "
                      "regenerate the broker's ACL (xephang broker-config)", self.username, reason)

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.refused += 1
            log.error("lane: the broker refused %s: %s (the hub reads every request on its main connection)",
                      self.username, reason)
            if getattr(reason, "value", 0) in (134, 135):  # bad password, not authorised: it will not change
                log.error("lane: given up; install %s's password from `xephang broker-config` and its ACL, "
                          "then restart the hub", self.username)
                client.disconnect()
            return
        self.stats.connects += 1
        client.subscribe([(f, 1) for f in lane_filters(self.topics)])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error("lane: the broker refused %d subscriptions of %s (%s): regenerate the broker's ACL "
                      "(xephang broker-config)", len(refused), self.username, ", ".join(str(r) for r in refused))
            return
        log.info("lane: %s reads the dispensers' and the web daemon's requests", self.username)
        self.subscribed.set()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.subscribed.clear()
        if self._client is None:  # stop(): the hub is ending
            log.info("lane: closed")
            return
        log.warning("lane: disconnected (%s); the main connection carries every request meanwhile", reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.retain:
            self.stats.retained_dropped += 1
            return
        self.stats.received += 1
        self.deliver(LaneInbound(msg.topic, bytes(msg.payload), False))


@dataclass(frozen=True)
class LaneInbound(Inbound):
    """A request as the lane brought it (its twin may come through the main connection)."""
