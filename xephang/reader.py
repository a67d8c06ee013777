"""A connection that only reads: a flood on what it reads cannot hold what its owner publishes.

The acknowledgements of what a client publishes, and the messages it is sent on other topics, come
behind what the broker is already sending it: a client fed a flood (a board's password publishing
as fast as ``mosquitto_pub -l`` goes) hears nothing else for as long as the flood's backlog lasts
(plain paho against mosquitto 2.0.11: 216 of 20 QoS 1 publishes a second unacknowledged after 14 s;
webd heard a call 44 s late under a flood of one display's status). So a daemon reads what the
boards may flood on connections of their own, each under its own account (the broker binds the
client id to the user name): the hub its requests (hubd/lane.py), webd the boards' statuses and
alerts (webd/main.py).

Why by hand and not a second ``Bus``: a reader publishes nothing (no birth, no Will, no health: its
owner's health says how it is) and needs none of the bus's request machinery; paho's client is the
library, this module only hands its messages to the owner's thread (``deliver``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from xephang.bus import Inbound, paho_client
from xephang.contract import CLIENT_ID_PREFIX, Topics
from xephang.limits import RateLimit
from xephang.settings import BrokerSettings

log = logging.getLogger(__name__)


@dataclass
class ReaderStats:
    received: int = 0
    retained_dropped: int = 0  # the lane's (the inbox hands retained requests on: the hub counts them)
    connects: int = 0
    refused: int = 0  # logins the broker refused
    paced: int = 0  # past a sender's burst and pace: a lane's left to the inbox's copy, web-watch's dropped


class Reader:
    """A connection that only reads ``filters`` (the hub's requests, webd's boards). ``deliver`` is
    called from paho's thread with each message; ``given_up`` (from paho's thread too) when the broker
    refuses this account for good (a wrong password, no such account, an ACL without its subscriptions)."""

    def __init__(self, broker: BrokerSettings, topics: Topics, deliver: Callable[[Inbound], None], *,
                 password_file: Path | None, username: str, filters: list[str], persistent: bool,
                 keep_retained: bool, given_up: Callable[[], None] | None = None,
                 pace: RateLimit | None = None, pace_key: Callable[[str], str] | None = None,
                 on_subscribed: Callable[[], None] | None = None,
                 refused_filters: Callable[[list[str]], None] | None = None) -> None:
        self.broker = broker.model_copy(update={"username": username, "password_file": password_file,
                                                "password": None})
        self.topics = topics
        self.deliver = deliver
        self.username = username
        self.filters = filters
        self.persistent = persistent  # the broker keeps what is published while the hub restarts
        self.keep_retained = keep_retained
        self.given_up = given_up
        # at most a burst and a pace per sender (``pace_key`` of the topic: its last level, the sender of a
        # request), the rest dropped here, before the owner's queue: one sender's flood then cannot
        # fill that queue and push out what the others say (webd lost other boards' alerts that way)
        self.pace = pace
        self.pace_key = pace_key or (lambda topic: topic.rsplit("/", 1)[-1])
        self.on_subscribed = on_subscribed  # each SUBACK (paho's thread): the retained messages follow it
        # some filters refused (a broker that says so; mosquitto 2.0 grants them and sends nothing):
        # the owner reads those elsewhere; all refused is ``given_up``
        self.refused_filters = refused_filters
        self.stats = ReaderStats()
        self.subscribed = threading.Event()
        self.gave_up = False
        self._client: Any = None

    @property
    def connected(self) -> bool:
        return self.subscribed.is_set()

    def start(self) -> None:
        c = self._client = paho_client(self.broker, f"{CLIENT_ID_PREFIX}{self.username}")
        c.reconnect_delay_set(0.5, max(1.0, self.broker.reconnect_max_s))
        c.on_connect, c.on_disconnect, c.on_message = self._on_connect, self._on_disconnect, self._on_message
        c.on_subscribe = self._on_subscribe
        props = None
        if self.persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.broker.session_expiry_s
        c.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s,
                        clean_start=not self.persistent, properties=props)
        c.loop_start()

    def refresh(self) -> bool:
        """Subscribe to the filters again (any thread): the broker sends their retained messages anew,
        after a SUBACK (``on_subscribed``). What a flood made the broker drop on its way here (its
        queue for this connection full) is then read again. False when not connected."""
        c = self._client
        if c is None or not self.subscribed.is_set():
            return False
        c.subscribe([(f, 1) for f in self.filters])
        return True

    def stop(self) -> None:
        c, self._client = self._client, None
        if c is not None:
            c.disconnect()
            c.loop_stop()
        self.subscribed.clear()

    # paho's thread
    def _give_up(self, client: Any, why: str) -> None:
        log.error("%s: given up (%s); install %s's password and ACL from `xephang broker-config`, then restart "
                  "the hub", self.username, why, self.username)
        self.gave_up = True
        client.disconnect()
        if self.given_up is not None:
            self.given_up()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if reason.is_failure:
            self.stats.refused += 1
            log.error("%s: the broker refused the login: %s", self.username, reason)
            if getattr(reason, "value", 0) in (134, 135):  # bad password, not authorised: it will not change
                self._give_up(client, str(reason))
            return
        self.stats.connects += 1
        client.subscribe([(f, 1) for f in self.filters])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused and (len(refused) == len(reasons) or self.refused_filters is None):
            self._give_up(client, f"the broker refused {len(refused)} subscriptions: "
                          + ", ".join(str(r) for r in refused))
            return
        if refused and self.refused_filters is not None:
            lost = [f for f, r in zip(self.filters, reasons, strict=False) if r.is_failure]
            log.warning("%s: the broker refused %s; read elsewhere (install the ACL from `xephang broker-config`)",
                        self.username, " ".join(lost))
            self.filters = [f for f in self.filters if f not in lost]  # not asked again on a refresh
            self.refused_filters(lost)
        log.info("%s: reads %s", self.username, " ".join(self.filters))
        self.subscribed.set()
        if self.on_subscribed is not None:
            self.on_subscribed()

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.subscribed.clear()
        if self._client is None or self.gave_up:  # stop(): the hub is ending
            log.info("%s: closed", self.username)
            return
        log.warning("%s: disconnected (%s); reconnecting", self.username, reason)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.retain and not self.keep_retained:
            self.stats.retained_dropped += 1
            return
        if self.pace is not None and self.pace.take(self.pace_key(msg.topic), time.monotonic()):
            self.stats.paced += 1  # a lane's: the inbox brings it too
            return
        self.stats.received += 1
        self.deliver(self.wrap(msg.topic, bytes(msg.payload), bool(msg.retain)))

    def wrap(self, topic: str, payload: bytes, retain: bool) -> Inbound:
        return Inbound(topic, payload, retain)
