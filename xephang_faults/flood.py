"""One board's password flooding the broker, as fast as the broker takes it.

``mosquitto_pub -l`` (C, one connection, a message per line) outruns any Python publisher, so it
is what an attacker would use; when the broker throws it out it connects again. A flood from a
separate process also leaves the test's own Python threads (webd, the hub's bus) their share of
the interpreter, which a flooding thread in the same process did not. Used by
``tests/tools/test_hub_lane.py``, ``tests/webd/test_web_attack.py`` and ``bench/request_flood.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

from xephang.contract import Topics


class LineFlood:
    """``lines`` published on ``topic`` over and over until ``stop()`` as board ``node`` (its password,
    or none for a broker without accounts); ``kicked`` counts reconnects."""

    def __init__(self, port: int, node: str, topic: str, lines: list[str], *, password: str | None = None,
                 qos: int = 1, retain: bool = False) -> None:
        self.port, self.node, self.topic, self.password = port, node, topic, password
        self.qos, self.retain = qos, retain
        self.kicked = 0
        self._stop = threading.Event()
        self._block = ("\n".join(lines) + "\n").encode()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def available() -> bool:
        return shutil.which("mosquitto_pub") is not None

    def start(self) -> LineFlood:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        cmd = ["mosquitto_pub", "-p", str(self.port), "-i", f"xephang-{self.node}", "-q", str(self.qos),
               "-V", "mqttv5", "-l", "-t", self.topic]
        if self.password is not None:
            cmd += ["-u", self.node, "-P", self.password]
        if self.retain:
            cmd.append("-r")
        while not self._stop.is_set():
            p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                while not self._stop.is_set():
                    assert p.stdin is not None
                    p.stdin.write(self._block)
            except (BrokenPipeError, OSError):
                self.kicked += 1
            p.kill()
            p.wait()


class RequestFlood(LineFlood):
    """Board ``node``'s requests to the hub, QoS 1 (a counter's pause, a dispenser's ticket: what its
    ACL lets it send)."""

    def __init__(self, port: int, password: str, *, site: str = "tuong-linh", node: str = "counter-1",
                 lines: int = 20_000) -> None:
        action = "issue-ticket" if node.startswith("dispenser-") else "pause"
        what = '"service": "ho-tich"' if action == "issue-ticket" else '"counter": ' + node.rsplit("-", 1)[-1]
        line = ('{"schema": "xephang.req.' + action + '.v1", "request_id": "flood-%08d", "source": "' + node
                + '", ' + what + "}")
        super().__init__(port, node, Topics(site).req(action, node), [line % i for i in range(lines)],
                         password=password)
