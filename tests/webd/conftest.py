"""Fixtures of tests/webd (they live in webharness.py, which bench/web_live.py reuses)."""

from webharness import browser, centre, proxy, secured  # noqa: F401
