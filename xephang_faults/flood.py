"""One board's password flooding the hub with requests, as fast as the broker takes them.

``mosquitto_pub -l`` (C, one connection, QoS 1, a message per line) outruns any Python publisher,
so it is what an attacker would use; when the broker throws it out it connects again. Used by
``tests/tools/test_hub_lane.py`` and ``bench/request_flood.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import threading

from xephang.contract import Topics


class RequestFlood:
    """Board ``node``'s requests on ``port`` until ``stop()`` (a counter's pause, a dispenser's ticket:
    what its ACL lets it send); ``kicked`` counts reconnects."""

    def __init__(self, port: int, password: str, *, site: str = "tuong-linh", node: str = "counter-1",
                 lines: int = 20_000) -> None:
        self.port, self.password, self.node = port, password, node
        action = "issue-ticket" if node.startswith("dispenser-") else "pause"
        self.topic = Topics(site).req(action, node)
        self.kicked = 0
        self._stop = threading.Event()
        what = '"service": "ho-tich"' if action == "issue-ticket" else '"counter": ' + node.rsplit("-", 1)[-1]
        line = ('{"schema": "xephang.req.' + action + '.v1", "request_id": "flood-%08d", "source": "' + node
                + '", ' + what + "}")
        self._block = ("\n".join(line % i for i in range(lines)) + "\n").encode()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def available() -> bool:
        return shutil.which("mosquitto_pub") is not None

    def start(self) -> RequestFlood:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            p = subprocess.Popen(["mosquitto_pub", "-p", str(self.port), "-u", self.node, "-P", self.password,
                                  "-i", f"xephang-{self.node}", "-q", "1", "-V", "mqttv5", "-l", "-t", self.topic],
                                 stdin=subprocess.PIPE, stderr=subprocess.DEVNULL)
            try:
                while not self._stop.is_set():
                    assert p.stdin is not None
                    p.stdin.write(self._block)
            except (BrokenPipeError, OSError):
                self.kicked += 1
            p.kill()
            p.wait()
