"""The example configs in config/ (what docs/install-pi.md copies to /etc/xephang) load as
they are with each daemon's own settings class."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from xephang.settings import load_settings

CONFIG = Path(__file__).resolve().parents[2] / "config"
SETTINGS = {"hubd": ("hubd.main", "HubSettings"), "ticketd": ("ticketd.main", "TicketdSettings"),
            "counterd": ("counterd.main", "CounterdSettings"), "displayd": ("displayd.main", "DisplaySettings"),
            "announcerd": ("announcerd.main", "AnnouncerSettings"), "webd": ("webd.config", "WebSettings")}


@pytest.mark.parametrize("daemon", sorted(SETTINGS))
def test_the_example_config_of_each_daemon_loads(daemon, monkeypatch):
    for k in [k for k in __import__("os").environ if k.startswith("XEPHANG_")]:
        monkeypatch.delenv(k)
    mod, cls = SETTINGS[daemon]
    settings_cls = getattr(importlib.import_module(mod), cls)
    s = load_settings(settings_cls, CONFIG / f"{daemon}.example.toml")
    assert s.node and s.broker.password_file == Path(f"/etc/xephang/{s.node}.pw")


def test_the_shared_env_file_names_only_known_settings():
    keys = [ln.split("=", 1)[0] for ln in (CONFIG / "xephang.env.example").read_text().splitlines()
            if ln and not ln.startswith("#")]
    assert set(keys) <= {"XEPHANG_SITE", "XEPHANG_SITE_FILE", "XEPHANG_BROKER__HOST", "XEPHANG_BROKER__PORT",
                         "XEPHANG_LOG_LEVEL"}
