"""The ingester says when it cannot reach the province broker, keeps trying, and says when it
connects: at the tools' default level (WARNING) it was silent for ever against a closed port, the
same silence as a working ingester (found by a tools audit)."""

from __future__ import annotations

import logging
import threading

import pytest

from province.ingest import Ingester
from xephang.settings import BrokerSettings
from xephang_ops.mosquitto import Mosquitto, find_mosquitto, free_port

pytestmark = pytest.mark.broker

UNREACHABLE = "không kết nối được broker tỉnh / cannot reach the province broker"
CONNECTED = "đã kết nối broker tỉnh / connected to the province broker"


class Said(logging.Handler):
    """What the ingester logged at WARNING and above, with an event per line we wait for."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []
        self.unreachable = threading.Event()
        self.connected = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        if UNREACHABLE in line:
            self.unreachable.set()
        if CONNECTED in line:
            self.connected.set()


def test_an_unreachable_broker_is_said_once_retried_and_the_connection_said(tmp_path, pg_dsn):
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    port = free_port()  # nothing listens there yet: a wrong --port, or the province broker down
    ing = Ingester(dsn=pg_dsn, broker=BrokerSettings(port=port, reconnect_max_s=0.5))
    attempts = {"n": 0}
    retried = threading.Event()
    said_fail = ing._on_connect_fail

    def counting(client, userdata):  # the ingester's own callback, counted
        attempts["n"] += 1
        if attempts["n"] >= 4:
            retried.set()
        said_fail(client, userdata)

    ing._on_connect_fail = counting  # type: ignore[method-assign]
    said = Said()
    logger = logging.getLogger("province.ingest")
    logger.addHandler(said)
    stop = threading.Event()
    th = threading.Thread(target=ing.run, args=(stop,), daemon=True)
    try:
        th.start()
        assert said.unreachable.wait(15), said.lines
        assert f"127.0.0.1:{port}" in next(line for line in said.lines if UNREACHABLE in line)
        assert retried.wait(20), "the ingester should keep trying"
        # said once for the outage, not at every retry (paho retries every 0.5-2 s)
        assert sum(UNREACHABLE in line for line in said.lines) == 1, said.lines
        assert not said.connected.is_set()
        with Mosquitto(tmp_path / "province", port=port):
            assert ing.connected.wait(20), said.lines
            assert said.connected.wait(5), said.lines
            assert sum(CONNECTED in line for line in said.lines) == 1
    finally:
        stop.set()
        th.join(10)
        logger.removeHandler(said)
    assert not th.is_alive()
