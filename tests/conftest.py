"""Shared fixtures: a real mosquitto on 127.0.0.1 (free port, generated config), a site,
settings for any daemon, and a FakeBroker for tests without the network."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("GPIOZERO_PIN_FACTORY", "mock")

from xephang.settings import load_site  # noqa: E402
from xephang.site import Site  # noqa: E402
from xephang.testing import FakeBroker  # noqa: E402
from xephang_ops.mosquitto import Mosquitto, find_mosquitto  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SITE_FILE = REPO / "config" / "site.example.toml"


@pytest.fixture(scope="session")
def site_file() -> Path:
    return SITE_FILE


@pytest.fixture(scope="session")
def site() -> Site:
    return load_site(SITE_FILE)


@pytest.fixture
def fake_broker() -> FakeBroker:
    return FakeBroker()


@pytest.fixture
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A fresh mosquitto per test (anonymous, persistence on) on a free loopback port."""
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed (the README's test command installs it)")
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.kill()


@pytest.fixture
def daemon_env(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    """XEPHANG_* variables that point a daemon process at the test broker and a temp state dir."""
    return {
        **os.environ,
        "XEPHANG_SITE": "tuong-linh",
        "XEPHANG_SITE_FILE": str(SITE_FILE),
        "XEPHANG_STATE_DIR": str(tmp_path / "state"),
        "XEPHANG_BROKER__HOST": "127.0.0.1",
        "XEPHANG_BROKER__PORT": str(mosquitto.port),
    }
