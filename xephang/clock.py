"""Time for the whole project: one zone (Asia/Ho_Chi_Minh), injectable clocks.

Cores never read the clock; shells pass ``now`` in. A ``Clock`` is the seam: the real one
reads the system clock, ``ManualClock`` is moved by tests, ``ScaledClock`` runs faster
than real time for the demo (the hub and the simulation share the same origin and speed).
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from zoneinfo import ZoneInfo

VN_TZ = ZoneInfo("Asia/Ho_Chi_Minh")

WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
WEEKDAYS_EN = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Clock:
    """Wall clock as epoch seconds. Subclasses change where the seconds come from."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    def local(self, ts: float | None = None) -> datetime:
        """Aware datetime in Vietnam time for ``ts`` (default: now)."""
        return datetime.fromtimestamp(self.now() if ts is None else ts, VN_TZ)


class ManualClock(Clock):
    """A clock tests move by hand."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01 07:00 +07
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def monotonic(self) -> float:
        return self.now()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds

    def set(self, ts: float) -> None:
        with self._lock:
            self._t = float(ts)


class ScaledClock(Clock):
    """Simulated time: ``origin + (real elapsed since real_origin) * speed``.

    Every process of a demo gets the same ``origin``, ``real_origin`` and ``speed`` (through
    settings), so they agree on the simulated time without talking to each other.
    """

    def __init__(self, origin: float, real_origin: float, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.origin, self.real_origin, self.speed = float(origin), float(real_origin), float(speed)

    def now(self) -> float:
        return self.origin + (time.time() - self.real_origin) * self.speed

    def monotonic(self) -> float:
        return self.now()


def format_vi_datetime(dt: datetime, *, lang: str = "vi") -> str:
    """'Thứ Hai, 23/11/2026 08:05' (vi) or 'Monday, 23/11/2026 08:05' (en)."""
    names = WEEKDAYS_VI if lang == "vi" else WEEKDAYS_EN
    return f"{names[dt.weekday()]}, {dt:%d/%m/%Y %H:%M}"
