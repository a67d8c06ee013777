"""A real mosquitto with the ACL and passwords `xephang broker-config` generates for the example site."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from xephang.brokerconf import BrokerFiles, site_accounts, write_broker_files
from xephang.mosquitto import Mosquitto, find_mosquitto
from xephang.site import Site
from xephang.tools import BrokerTarget, ToolClient


@dataclass
class SecuredBroker:
    broker: Mosquitto
    files: BrokerFiles
    site: str = "tuong-linh"

    def target(self, user: str, password: str | None = None) -> BrokerTarget:
        pw = self.files.passwords.get(user) if password is None else password
        return BrokerTarget(site=self.site, port=self.broker.port, username=user, password=pw)

    def client(self, user: str, password: str | None = None) -> ToolClient:
        return ToolClient(self.target(user, password)).connect()


@pytest.fixture
def secured_broker(tmp_path: Path, site: Site) -> Iterator[SecuredBroker]:
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    accounts = site_accounts(site, extra=["tech-lan", "display-lab"])
    files = write_broker_files(tmp_path / "broker", site, accounts)
    broker = Mosquitto(tmp_path / "mq", password_file=files.password_file, acl_file=files.acl_file,
                       persistence=False)
    broker.start()
    try:
        yield SecuredBroker(broker, files)
    finally:
        broker.kill()
