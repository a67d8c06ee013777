"""Run a real hub in a thread, for tests and benchmarks of other daemons."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hubd.main import HubConfig, HubDaemon, HubSettings
from xephang.clock import Clock
from xephang.settings import BrokerSettings


@contextmanager
def running_hub(port: int, state_dir: Path, site_file: Path, *, clock: Clock | None = None,
                site: str = "tuong-linh", timeout: float = 10.0, hub: HubConfig | None = None) -> Iterator[HubDaemon]:
    """A HubDaemon on 127.0.0.1:``port`` with its ledger in ``state_dir``; stopped on exit. ``hub``:
    its own settings (a flood of tickets from one test dispenser needs a wider ``issue_burst``)."""
    settings = HubSettings(site=site, node="hub", site_file=site_file, state_dir=state_dir,
                           broker=BrokerSettings(port=port), **({"hub": hub} if hub else {}))
    hub = HubDaemon(settings, clock=clock)
    t = threading.Thread(target=hub.run, name="hub", daemon=True)
    t.start()
    if not (hub.bus.connected.wait(timeout) and hub.bus.subscribed.wait(timeout)):
        hub.stop_event.set()
        t.join(5)
        raise RuntimeError(f"hub did not connect to 127.0.0.1:{port}")
    try:
        yield hub
    finally:
        hub.stop_event.set()
        t.join(10)
