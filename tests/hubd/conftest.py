"""The hub on a fake bus, at 9:00 on a Monday (``indirect`` parametrisation gives its ``[hub]`` config)."""

from __future__ import annotations

from datetime import datetime

import pytest

from hubd.main import HubDaemon, HubSettings
from xephang.clock import VN_TZ, ManualClock
from xephang.testing import FakeBus

SITE = "tuong-linh"
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


@pytest.fixture
def hub(tmp_path, site_file, fake_broker, request):
    own = getattr(request, "param", None)
    settings = HubSettings(site=SITE, node="hub", site_file=site_file, state_dir=tmp_path / "state",
                           **({"hub": own} if own else {}))
    h = HubDaemon(settings, bus=FakeBus(fake_broker, site=SITE, node="hub", role="hub", state_dir=tmp_path / "state"),
                  clock=ManualClock(MONDAY_9AM))
    h.start()
    assert h.bus.wait_connected(5)
    h.step(0)
    yield h
    h.bus.stop()
    h.ledger.close()
