from __future__ import annotations

from datetime import datetime

import pytest

from xephang.clock import VN_TZ


@pytest.fixture
def issued_at() -> datetime:
    """A Monday morning in Hà Nội time (the `site` and `site_file` fixtures come from tests/conftest.py)."""
    return datetime(2026, 11, 23, 8, 5, tzinfo=VN_TZ)
