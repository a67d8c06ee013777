"""The province's sub-commands of ``xephang``: bridge-config (centre side), ingest, province-db, province-report,
province devices.

psycopg is imported only when a province command runs, so a centre's Pi (without the
``province`` extra) still lists and runs ``bridge-config``.
"""

from __future__ import annotations

from typing import Any


def register(sub: Any) -> None:
    """Add the province sub-commands."""
    from province import devices, ingest, reports
    from xephang_ops import bridgeconf

    bridgeconf.register(sub)
    ingest.register(sub)
    reports.register(sub)
    devices.register(sub)
