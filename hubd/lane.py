"""The hub's reading connections: a board's flood cannot hold the hall, a ticket or the web.

Every board's requests reach the hub through MQTT in the broker's order, and mosquitto 2.0 has no
per-client rate. The hub drops a board's flood unread (``flood``) but cannot read faster than its
socket: counter 1's password piping QoS 1 requests through ``mosquitto_pub -l`` made a dispenser's
ticket take 17.6 s and lost the next press (the broker queued 200,000 of the flood for the hub;
``bench/request_flood.py``). The broker itself stayed quick (a message between two other clients
took 1-2 ms throughout): only the hub's queue was full.

Two things follow, each measured:

1. **A connection that reads a flood must not be the one that publishes.** The acknowledgements of
   what a client publishes come back slowly while the broker feeds it a flood (plain paho against
   mosquitto 2.0.11: a client reading a flood and publishing 20 QoS 1 messages a second had 216 of
   them unacknowledged after 14 s, with or without a small MQTT 5 receive maximum), and paho holds
   QoS 1 messages past its window of 50 unacknowledged ones. So while the hub's main connection
   read the requests, a counter's flood held the hub's events and states too: with the dispensers'
   lane answering a ticket in 46 ms (it sent their replies itself then), the hall board heard of
   that ticket 11-27 s later or not at all (``bench/request_flood.py``'s board line, 2026-12-07).
   Now the main connection reads no request:
   ``hub-inbox`` (a ``Reader`` with a persistent session, as the main one had) reads them all and
   publishes nothing, and the main connection publishes the replies, events and states with its
   acknowledgements out of the flood's way.
2. **A queue per kind of asker.** The broker keeps a queue per connection, so the dispensers' and
   the web daemon's requests are read a second time by ``hub-lane`` (``lane_filters``): a counter's
   flood fills the inbox's queue and not this one. Each request covered by both arrives twice and
   the hub handles one copy of each publish (``Twins``); a board's retry is a new publish and is
   answered again. Better, a lane per board (``board_lane``: ``hub-counter-2`` reads counter 2's
   requests, ``hub-dispenser-1`` dispenser 1's, ``hub-web`` the web daemon's, ``hub-display-hall``
   the hall board's resyncs): one board's flood then holds no other board's requests, counters,
   dispensers, the hall's screens and the officers' web console alike; and ``hub-tech`` a
   technician's (a red team found a technician's resync 12-16 s late behind a counter's flood, and 36
   of them never answered with a smaller broker queue; only a request on the short form without a
   sender, ``R/req/hub/{action}``, is the inbox's alone)
   (the shared ``hub-lane`` leaves the dispensers and the web daemon in one queue: one dispenser's
   flood held them all). A lane passes on at most a board's burst and pace (``BOARD_BURST``,
   ``BOARD_PER_MINUTE``, per sender) and drops the rest: the inbox's copy of each still reaches the
   hub, whose flood guard counts it, so a flooding board costs the hub one copy of its flood, not two.

Each reader needs its own account (the broker binds the client id to the user name, so two
connections under one name would push each other off). Without the inbox's account (a centre with
an older broker config) the hub reads the requests on its main connection as before.

The connections are ``xephang.reader.Reader`` (webd watches the boards the same way).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xephang.bus import Inbound
from xephang.contract import BOARD_BURST, BOARD_PER_MINUTE, DISPENSER_ACTIONS, Topics
from xephang.limits import RateLimit
from xephang.reader import Reader
from xephang.settings import BrokerSettings

LANE_USERNAME = "hub-lane"
INBOX_USERNAME = "hub-inbox"
TWIN_MEMORY = 5000  # request ids whose copies are counted (a dispenser makes a few hundred a day)


def lane_filters(topics: Topics, web: str = "web") -> list[str]:
    """What the lane reads: every dispenser's ticket requests and the web daemon's (the officers'
    console, the head's reports)."""
    return [f"{topics.root}/req/hub/{a}/+" for a in DISPENSER_ACTIONS] + [f"{topics.root}/req/hub/+/{web}"]


# the boards that ask the hub (the hall's boards and speakers only resync, but a flood of resyncs too
# would hold everything else the inbox alone reads), and the technicians' terminals; not the web daemon's
# reading connection (``web-watch``: it asks nothing). The one list: ``xephang broker-config`` makes a
# ``hub-<node>`` account for exactly these (xephang_ops/brokerconf.py imports it)
LANE_BOARD = re.compile(r"^(?!web(-[a-z0-9-]+)?-watch$)(dispenser-[a-z0-9-]+|counter-[0-9]+|display-[a-z0-9-]+"
                        r"|announcer-[a-z0-9-]+|web(-[a-z0-9-]+)?|tech(-[a-z0-9-]+)?)$")


def board_lane_username(node: str) -> str:
    """The account that reads board ``node``'s requests for the hub (``xephang broker-config``)."""
    return f"hub-{node}"


def lane_board(username: str) -> str | None:
    """The board a lane account reads for (``hub-counter-2`` → ``counter-2``), None for another name."""
    node = username.removeprefix("hub-")
    return node if node != username and LANE_BOARD.match(node) else None


def covered(action: str, sender: str | None, web: str = "web") -> bool:
    """Does the lane read this request topic too (``R/req/hub/{action}/{sender}``)?"""
    return sender is not None and (action in DISPENSER_ACTIONS or sender == web)


class Twins:
    """One copy of each publish: a request a lane covers arrives once through each connection that
    reads it (the inbox, ``hub-lane``, the board's own lane).

    Per request id, the copies seen through each connection (``via``: the lane's account, "" for the
    inbox or the main connection); a copy is a twin when another connection has already brought as
    many. The first publish comes through a lane (handled), then through the others (twins, dropped);
    a retry is a second publish (handled once more); with the lanes down every copy comes through the
    inbox alone and each is handled."""

    def __init__(self, memory: int = TWIN_MEMORY) -> None:
        self.memory = memory
        self._copies: OrderedDict[str, dict[str, int]] = OrderedDict()
        self.twins = 0

    def is_twin(self, request_id: str, via: str) -> bool:
        c = self._copies.get(request_id)
        if c is None:
            c = self._copies[request_id] = {}
            while len(self._copies) > self.memory:
                self._copies.popitem(last=False)
        c[via] = n = c.get(via, 0) + 1
        twin = n <= max((k for v, k in c.items() if v != via), default=0)
        self.twins += twin
        return twin


class Lane(Reader):
    """A second reading of some boards' requests in a queue of their own (``hub-lane``: the dispensers'
    and the web daemon's; ``board_lane``: one board's): a clean session (what is published while
    it is down reaches the hub through the inbox, or the main connection without one), paced per
    sender, retained requests dropped (the inbox counts them)."""

    def __init__(self, broker: BrokerSettings, topics: Topics, deliver: Callable[[Inbound], None], *,
                 password_file: Path, username: str = LANE_USERNAME, filters: list[str] | None = None) -> None:
        super().__init__(broker, topics, deliver, password_file=password_file, username=username,
                         filters=filters if filters is not None else lane_filters(topics), persistent=False,
                         keep_retained=False, pace=RateLimit(burst=BOARD_BURST, per_minute=BOARD_PER_MINUTE))

    def wrap(self, topic: str, payload: bytes, retain: bool) -> Inbound:
        return LaneInbound(topic, payload, retain, self.username)


def board_lane(broker: BrokerSettings, topics: Topics, deliver: Callable[[Inbound], None], node: str, *,
               password_file: Path) -> Lane:
    """``hub-{node}``: board ``node``'s requests (a counter's box, a dispenser, the web daemon, which
    sends the officers' web console and the head's reports)."""
    return Lane(broker, topics, deliver, password_file=password_file, username=board_lane_username(node),
                filters=[f"{topics.root}/req/hub/+/{node}"])


def inbox(broker: BrokerSettings, topics: Topics, deliver: Callable[[Inbound], None], *, password_file: Path,
          given_up: Callable[[], None], username: str = INBOX_USERNAME) -> Reader:
    """``hub-inbox``: every request, a persistent session (requests published while the hub restarts
    wait at the broker, as they did for the main connection); retained ones are handed on, for the hub
    to count and drop (``retained-command``)."""
    return Reader(broker, topics, deliver, password_file=password_file, username=username,
                  filters=[topics.all_requests()], persistent=True, keep_retained=True, given_up=given_up)


@dataclass(frozen=True)
class LaneInbound(Inbound):
    """A request as a lane brought it (its twins may come through the inbox and another lane)."""

    via: str = LANE_USERNAME
