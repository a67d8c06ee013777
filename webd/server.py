"""The HTTP connection webd's listeners speak: uvicorn's h11 protocol with two limits it lacks.

Found from outside: a stranger on the LAN opened about 1,060 TCP connections and sent nothing (or
half a request line); uvicorn kept each open for good (it has no deadline before a connection's
first request) and ``limit_concurrency`` counts open connections, so every page, the head's and
the officers' included, answered 503 until the stranger let go. uvicorn has no setting for
either limit, so webd subclasses its protocol (the class uvicorn's ``Config(http=...)`` takes):

- a request's line and headers must arrive within ``HEADERS_DEADLINE_S`` of the connection
  opening, or of the previous response ending (uvicorn's keep-alive timer closes an idle one
  sooner; this one also ends a request trickled in a byte at a time);
- a request's body must keep coming: some of it every ``BODY_IDLE_S``, and all of it within
  ``BODY_IDLE_S`` plus its length at ``BODY_MIN_RATE`` (at most ``BODY_MAX_S``); a pipelined
  request too (uvicorn starts it in ``on_response_complete``). Found from
  outside: 1,049 connections from 17 addresses that sent a POST's headers with a Content-Length
  and never the body were held for good (the headers' deadline ended with the headers), and every
  page, the officers' included, answered 503. A response that is streaming is never cut;
- one address keeps at most ``PER_ADDRESS`` connections open at once (a phone opens a few, the
  hall's TV one); more are closed at once;
- on an HTTPS listener asyncio calls the protocol only once the TLS handshake is done: until then
  a connection has ``HANDSHAKE_DEADLINE_S`` (``tls_handshake_deadline``; asyncio's own default is
  60 s), and it is not counted per address (that would need the accept itself wrapped). So the
  open-files limit is what bounds them: found from outside, 150 silent connections a second from
  one address to the HTTPS port ran webd out of the 1,024 files systemd gives a service in 7 s,
  and each page then took seconds. webd raises its own limit to ``OPEN_FILES`` (``raise_open_files``:
  such a stranger now needs over 1,600 connections a second), listens with a backlog of
  ``ACCEPT_BACKLOG``, and says asyncio's "out of system resource" once per ``ACCEPT_ERROR_EVERY_S``
  with a count (``pace_accept_errors``): Python 3.11 logged it, with a traceback, once for every
  connection waiting in the backlog and again each second, 211 MB of log in 30 s, past journald's
  own limit, which then drops the lines a technician needs.

webd serves no websockets (``ws="none"`` in its uvicorn config): an upgrade handed the
connection to another protocol and its count here was never taken back.

Everything runs in the listeners' one event loop thread: the count needs no lock.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

HEADERS_DEADLINE_S = 10.0
BODY_IDLE_S = 20.0  # a phone roaming between the hall's access points stalls a few seconds
BODY_MIN_RATE = 8 * 1024  # bytes a second (64 kbit/s): a weak 3G uplink still makes it
BODY_MAX_S = 600.0  # an 8 MB take (the largest webd reads) at 14 KB/s
HANDSHAKE_DEADLINE_S = 10.0
PER_ADDRESS = 64
OPEN_FILES = 16384
ACCEPT_BACKLOG = 128  # uvicorn's 2,048 multiplied asyncio's accept error lines (a LAN needs few)
ACCEPT_ERROR_EVERY_S = 10.0

_open: dict[str, int] = {}  # address -> connections open now
refused: dict[str, int] = {"per-address": 0, "too-slow": 0, "body-too-slow": 0}  # counted for webd's health


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for k, v in headers:
        if k == b"content-length":
            try:
                return max(0, int(v))
            except ValueError:  # h11 refuses such a request before a cycle exists
                return None
    return None


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's headers and a cap per address."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = ""
        self._deadline: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._body_cycle: Any = None  # the request whose body the timer watches
        self._body_end = 0.0  # loop time by which all of its body must have come
        self._body_idle_until = 0.0  # … and by which some more of it must have come

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._address = self.client[0] if self.client else ""
        n = _open[self._address] = _open.get(self._address, 0) + 1
        if n > PER_ADDRESS:
            refused["per-address"] += 1
            if refused["per-address"] % 1000 == 1:
                log.warning("%s has %d connections open: more are closed (%d so far)", self._address, n - 1,
                            refused["per-address"])
            transport.close()
            return
        self._arm()

    def _waiting_for_a_request(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(HEADERS_DEADLINE_S, self._too_slow)

    def _too_slow(self) -> None:
        self._deadline = None
        if self._waiting_for_a_request() and not self.transport.is_closing():
            refused["too-slow"] += 1
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting_for_a_request():
            self._arm()  # part of a request came: the rest has until the deadline
        else:
            if self._deadline is not None:
                self._deadline.cancel()  # a request began: its body has its own deadlines, its response none
                self._deadline = None
            self._watch_body()

    def _body_pending(self) -> bool:
        c = self.cycle
        return c is not None and c.more_body and not c.response_complete and not self.transport.is_closing()

    def _watch_body(self) -> None:
        """Some of the body came (or the request began): the next part has until ``BODY_IDLE_S``
        from now, the whole body until the deadline set when the request began."""
        if not self._body_pending():
            self._stop_body_timer()
            return
        now = self.loop.time()
        if self._body_cycle is not self.cycle:
            self._body_cycle = self.cycle
            n = _declared_length(self.cycle.scope["headers"])  # type: ignore[union-attr]
            self._body_end = now + BODY_IDLE_S + (BODY_MAX_S if n is None else min(BODY_MAX_S, n / BODY_MIN_RATE))
        self._body_idle_until = now + BODY_IDLE_S
        if self._body_timer is None:
            self._body_timer = self.loop.call_at(min(self._body_idle_until, self._body_end), self._body_check)

    def _body_check(self) -> None:
        self._body_timer = None
        if not self._body_pending() or self._body_cycle is not self.cycle:
            return
        now = self.loop.time()
        if self.flow.read_paused and now < self._body_end:
            self._body_idle_until = now + BODY_IDLE_S  # webd has not read what came yet: not the client's delay
        if now >= self._body_end or now >= self._body_idle_until:
            refused["body-too-slow"] += 1
            if refused["body-too-slow"] % 1000 == 1:
                log.warning("%s: a request's body did not come in time: closed (%d so far)", self._address,
                            refused["body-too-slow"])
            self.transport.close()
            return
        self._body_timer = self.loop.call_at(min(self._body_idle_until, self._body_end), self._body_check)

    def _stop_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        self._body_cycle = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._stop_body_timer()  # answered without all of its body: the headers' deadline ends the rest
        # uvicorn starts a pipelined request (already read) here, not in data_received: its body has
        # the same deadlines (a GET and a POST's headers in one packet, then nothing, was held for good)
        self._watch_body()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._stop_body_timer()
        left = _open.get(self._address, 1) - 1
        if left > 0:
            _open[self._address] = left
        else:
            _open.pop(self._address, None)


def tls_handshake_deadline(loop: asyncio.AbstractEventLoop) -> None:
    """Make the HTTPS listeners ``loop`` opens give a TLS handshake ``HANDSHAKE_DEADLINE_S`` (uvicorn
    passes asyncio no handshake timeout: a silent connection was kept 60 s, and 1,100 of them from one
    address ran a Pi's 1,024 open files out before the first ones ended)."""
    original = loop.create_server

    async def create_server(*args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("ssl") is not None:
            kwargs.setdefault("ssl_handshake_timeout", HANDSHAKE_DEADLINE_S)
        return await original(*args, **kwargs)

    loop.create_server = create_server  # type: ignore[method-assign]


def raise_open_files(want: int = OPEN_FILES) -> tuple[int, int]:
    """Raise this process's soft limit of open files to ``want`` (at most its hard limit: systemd
    gives a service 1,024 soft and 524,288 hard); returns the limits now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:  # a container may refuse: said, and webd goes on
            log.warning("open files: cannot raise the limit from %s to %s (%s)", soft, target, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


ACCEPT_ERROR = "socket.accept() out of system resource"


def pace_accept_errors(loop: asyncio.AbstractEventLoop, clock: Any = time.monotonic) -> dict[str, int]:
    """Say asyncio's "out of system resource" on accepting at most once per ``ACCEPT_ERROR_EVERY_S``,
    with how many there were; every other error goes to the loop's own handler. Returns the count
    (``{"accept-errors": n}``, for webd's health)."""
    seen = {"accept-errors": 0}
    said = {"at": -ACCEPT_ERROR_EVERY_S, "held": 0}

    def handler(lp: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != ACCEPT_ERROR:
            lp.default_exception_handler(context)
            return
        seen["accept-errors"] += 1
        now = clock()
        if now - said["at"] < ACCEPT_ERROR_EVERY_S:
            said["held"] += 1
            return
        exc = context.get("exception")
        log.error("%s (%s): new connections wait until files are free%s", ACCEPT_ERROR, exc,
                  f" [{said['held']} more like this since the last line]" if said["held"] else "")
        said["at"], said["held"] = now, 0

    loop.set_exception_handler(handler)
    return seen
