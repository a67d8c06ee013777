"""Fakes of the MQTT link for tests, the demo's tools and benches (as gpiozero ships pins/mock.py).

``FakeBroker`` routes publishes between ``FakeBus`` clients in memory, keeps retained messages,
can go down and come back, and publishes a client's Will when it "dies". ``FakeBus`` is a real
``Bus`` (the owner-thread inbox, the blast shield, the request retries) whose transport is the
fake broker: a daemon under test runs its production code with no socket.
"""

from __future__ import annotations

import fnmatch
import threading
from typing import Any

from paho.mqtt import client as mqtt

from xephang.bus import MAX_QUEUED, Bus, Connected, Disconnected, Inbound, Published, QueueFull


class FakeBroker:
    """Routes publishes between FakeBus clients; keeps retained messages; can go down."""

    def __init__(self) -> None:
        self.retained: dict[str, bytes] = {}
        self.clients: dict[str, FakeBus] = {}
        self.log: list[tuple[str, bytes, bool]] = []
        self.up = True
        self._lock = threading.RLock()

    def deliver(self, topic: str, payload: bytes, retain: bool, sender: str | None = None) -> None:
        with self._lock:
            self.log.append((topic, payload, retain))
            if retain:
                if payload:
                    self.retained[topic] = payload
                else:
                    self.retained.pop(topic, None)
            for c in list(self.clients.values()):
                if c.connected.is_set() and any(mqtt.topic_matches_sub(f, topic) for f in c._fake_filters):
                    c.inbox.put(Inbound(topic, payload, False))

    def messages(self, pattern: str) -> list[tuple[str, bytes]]:
        """Logged publishes whose topic matches the MQTT filter (or fnmatch pattern)."""
        with self._lock:
            return [(t, p) for t, p, _ in self.log if mqtt.topic_matches_sub(pattern, t) or fnmatch.fnmatch(t, pattern)]

    def go_down(self) -> None:
        with self._lock:
            self.up = False
            for c in list(self.clients.values()):
                c._fake_drop(will=False)

    def go_up(self) -> None:
        with self._lock:
            self.up = True
            for c in list(self.clients.values()):
                if c._started and not c._stopping:
                    c._fake_connect()

    def kill(self, node: str) -> None:
        """The client's connection dies: the broker publishes its Will."""
        with self._lock:
            c = self.clients.get(node)
            if c:
                c._fake_drop(will=True)


class FakeBus(Bus):
    """A Bus on a FakeBroker: same owner-thread semantics, no sockets."""

    def __init__(self, broker: FakeBroker, **kw: Any) -> None:
        self._fake_broker = broker
        self._fake_filters: set[str] = set()
        self._fake_mid = 0
        # hold(): the broker stops acknowledging, as one swamped by a flood; paho's queue fills
        # (at most ``fake_queue_limit`` messages) and then refuses (QueueFull); release() lets them go
        self.fake_queue_limit = MAX_QUEUED
        self._fake_holding = False
        self._fake_held: list[tuple[int, str, bytes, bool]] = []
        super().__init__(**kw)

    def hold(self, limit: int | None = None) -> None:
        if limit is not None:
            self.fake_queue_limit = limit
        self._fake_holding = True

    def release(self) -> int:
        """Deliver and acknowledge every held message, in order; how many there were."""
        self._fake_holding = False
        held, self._fake_held = self._fake_held, []
        for mid, topic, data, retain in held:
            self._fake_broker.deliver(topic, data, retain, self.node)
            self.inbox.put(Published(mid))
        return len(held)

    def _transport_start(self) -> None:
        self._fake_broker.clients[self.node] = self
        if self._fake_broker.up:
            self._fake_connect()

    def _fake_connect(self) -> None:
        self.session = self._next_session()
        with self._lock:
            self._fake_filters = {f for f, _, _ in self._subs}
            self._subs_sent = True
        self.connected.set()
        self.ever_connected.set()
        self.subscribed.set()
        self.stats.connects += 1
        self._fake_broker.deliver(self.topics.status(self.node), self._status_payload(True), True, self.node)
        for t, p in list(self._fake_broker.retained.items()):
            if any(mqtt.topic_matches_sub(f, t) for f in self._fake_filters):
                self.inbox.put(Inbound(t, p, True))
        self.inbox.put(Connected())

    def _fake_drop(self, will: bool) -> None:
        if self.connected.is_set():
            with self._lock:
                self._subs_sent = False
            self.connected.clear()
            self.subscribed.clear()
            self.stats.disconnects += 1
            self.inbox.put(Disconnected())
            if will:
                self._fake_broker.deliver(self.topics.status(self.node), self._status_payload(False), True)

    def _transport_stop(self, timeout: float) -> None:
        with self._lock:
            self._subs_sent = False
        self.connected.clear()
        self._fake_broker.clients.pop(self.node, None)

    def _transport_subscribe(self, filters: list[str]) -> None:
        self._fake_filters.update(filters)
        for t, p in list(self._fake_broker.retained.items()):
            if any(mqtt.topic_matches_sub(f, t) for f in filters):
                self.inbox.put(Inbound(t, p, True))

    def _transport_publish(self, topic: str, data: bytes, *, qos: int, retain: bool, expiry_s: int | None) -> int:
        if self._fake_holding:
            if len(self._fake_held) >= self.fake_queue_limit:
                raise QueueFull(f"the fake queue is full ({self.fake_queue_limit} messages)")
            self._fake_mid += 1
            self._fake_held.append((self._fake_mid, topic, data, retain))
            return self._fake_mid
        self._fake_mid += 1
        if self.connected.is_set():
            self._fake_broker.deliver(topic, data, retain, self.node)
            self.inbox.put(Published(self._fake_mid))
        return self._fake_mid

    def _publish_status(self, *, online: bool, wait: float = 0) -> None:
        if self.connected.is_set():
            self._fake_broker.deliver(self.topics.status(self.node), self._status_payload(online), True, self.node)
