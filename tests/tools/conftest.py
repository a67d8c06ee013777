"""A real mosquitto with the ACL and passwords `xephang broker-config` generates for the example site."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xephang.site import Site
from xephang_ops.brokerconf import BrokerFiles, site_accounts, write_broker_files
from xephang_ops.mosquitto import Mosquitto, find_mosquitto
from xephang_ops.tools import BrokerTarget, ToolClient


@dataclass
class SecuredBroker:
    broker: Mosquitto
    files: BrokerFiles
    site: str = "tuong-linh"

    def target(self, user: str, password: str | None = None, *, port: int | None = None) -> BrokerTarget:
        """As ``user`` on the technicians' listener (free client ids, several clients per account:
        the same ACL as the boards' listener), or on ``port``."""
        pw = self.files.passwords.get(user) if password is None else password
        return BrokerTarget(site=self.site, port=port or self.broker.tech_port or self.broker.port, username=user,
                            password=pw)

    def client(self, user: str, password: str | None = None, *, port: int | None = None) -> ToolClient:
        return ToolClient(self.target(user, password, port=port)).connect()


@pytest.fixture
def secured_broker(tmp_path: Path, site: Site) -> Iterator[SecuredBroker]:
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    accounts = site_accounts(site, extra=["tech-lan", "display-lab"])
    files = write_broker_files(tmp_path / "broker", site, accounts)
    broker = Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file,
                       persistence=False, bind_client_ids=True)
    broker.start()
    try:
        yield SecuredBroker(broker, files)
    finally:
        broker.kill()


SAMPLE = Path(__file__).with_name("sample_node.py")


class SampleNode:
    """The sample daemon (``sample_node.py``) as a process, restartable on the same state dir."""

    def __init__(self, broker: SecuredBroker, state: Path, node: str = "display-lab") -> None:
        self.broker, self.state, self.node = broker, state, node
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, **env: str) -> SampleNode:
        e = {**os.environ, "XEPHANG_SITE": "tuong-linh", "XEPHANG_NODE": self.node, "XEPHANG_STATE_DIR": str(self.state),
             "XEPHANG_BROKER__PORT": str(self.broker.broker.port),
             "XEPHANG_BROKER__PASSWORD_FILE": str(self.broker.files.passwords_dir / f"{self.node}.pw"), **env}
        self.proc = subprocess.Popen([sys.executable, str(SAMPLE)], env=e, stderr=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def sample_node(secured_broker: SecuredBroker, tmp_path: Path) -> Iterator[Callable[..., SampleNode]]:
    """Factory: ``sample_node(**env)`` starts the sample daemon; every one is stopped at the end."""
    made: list[SampleNode] = []

    def make(**env: str) -> SampleNode:
        n = SampleNode(secured_broker, tmp_path / "state").start(**env)
        made.append(n)
        return n

    try:
        yield make
    finally:
        for n in made:
            n.stop()
