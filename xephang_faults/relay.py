"""A pausable TCP relay on loopback: the network between one node and the broker, for partition tests.

``Relay(target_port)`` listens on 127.0.0.1 on a free port and copies bytes both ways to
``127.0.0.1:target_port``. ``pause()`` stops copying (the bytes wait in the kernel buffers,
like a Wi-Fi link that stalls: neither side sees a reset), ``resume()`` lets them through,
``cut()`` resets every connection (a link that dies). Connections made while paused are
accepted and held. Used by the fault suite; never in production.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import threading

log = logging.getLogger(__name__)


class Relay:
    """Copy bytes between clients and ``host:target_port`` until paused or cut."""

    def __init__(self, target_port: int, *, host: str = "127.0.0.1", listen_port: int = 0) -> None:
        self.target = (host, target_port)
        self._listener = socket.create_server((host, listen_port))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._running = threading.Event()
        self._running.set()  # not paused
        self._lock = threading.Lock()
        self._stop = False
        self._wake_r, self._wake_w = socket.socketpair()
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self.connections = 0
        self._thread = threading.Thread(target=self._loop, name=f"relay-{self.port}", daemon=True)

    def start(self) -> Relay:
        """Start relaying in a background thread."""
        self._thread.start()
        return self

    def pause(self) -> None:
        """Stop copying bytes (a stalled link): nothing is lost, nothing is reset."""
        self._running.clear()
        self._wake()

    def resume(self) -> None:
        """Copy again whatever waited."""
        self._running.set()
        self._wake()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def cut(self) -> None:
        """Reset every open connection (the link died); new ones are accepted."""
        with self._lock:
            socks = list(self._peers)
            self._peers.clear()
        for s in socks:
            with contextlib.suppress(Exception):
                self._sel.unregister(s)
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()

    def close(self) -> None:
        """Stop the relay and close every socket."""
        self._stop = True
        self._wake()
        if self._thread.is_alive():
            self._thread.join(5)
        self.cut()
        for s in (self._listener, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                s.close()

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the loop
    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _interest(self) -> None:
        # while paused the client sockets are not watched, so their bytes stay in the kernel
        ev = selectors.EVENT_READ
        with self._lock:
            socks = list(self._peers)
        for s in socks:
            try:
                if self._running.is_set():
                    try:
                        self._sel.register(s, ev, "peer")
                    except KeyError:
                        pass
                else:
                    with contextlib.suppress(KeyError):
                        self._sel.unregister(s)
            except (ValueError, OSError):
                pass

    def _accept(self) -> None:
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()  # the broker is down: the client sees a refused-like close
            return
        for s in (client, upstream):
            s.setblocking(True)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._peers[client] = upstream
            self._peers[upstream] = client
        self.connections += 1
        if self._running.is_set():
            self._sel.register(client, selectors.EVENT_READ, "peer")
            self._sel.register(upstream, selectors.EVENT_READ, "peer")

    def _drop(self, s: socket.socket) -> None:
        with self._lock:
            other = self._peers.pop(s, None)
            if other is not None:
                self._peers.pop(other, None)
        for x in (s, other):
            if x is None:
                continue
            with contextlib.suppress(Exception):
                self._sel.unregister(x)
            with contextlib.suppress(OSError):
                x.close()

    def _loop(self) -> None:
        was_running = True
        while not self._stop:
            running = self._running.is_set()
            if running != was_running:
                self._interest()
                was_running = running
            for key, _ in self._sel.select(timeout=0.2):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                if key.data is None:
                    self._accept()
                elif key.data == "wake":
                    with contextlib.suppress(OSError):
                        s.recv(4096)
                elif self._running.is_set():
                    with self._lock:
                        other = self._peers.get(s)
                    if other is None:
                        continue
                    try:
                        data = s.recv(65536)
                        if not data:
                            raise ConnectionResetError("closed")
                        other.sendall(data)
                    except OSError:
                        self._drop(s)
