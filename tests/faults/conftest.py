"""Fixtures of the fault suite: a centre of real daemon processes over a real mosquitto."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from xephang_faults.harness import Centre  # noqa: E402
from xephang_ops.mosquitto import find_mosquitto  # noqa: E402


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[Centre]:
    """An anonymous broker with persistence; start daemons with ``centre.start(node)``."""
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    c = Centre(tmp_path / "centre")
    c.start_broker()
    try:
        yield c
    finally:
        c.stop()
