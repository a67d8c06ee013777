from __future__ import annotations

import tomllib
from datetime import datetime
from pathlib import Path

import pytest

from xephang.clock import VN_TZ
from xephang.site import Site

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def site() -> Site:
    with open(ROOT / "config" / "site.example.toml", "rb") as f:
        return Site.model_validate(tomllib.load(f))


@pytest.fixture
def issued_at() -> datetime:
    return datetime(2026, 11, 23, 8, 5, tzinfo=VN_TZ)
