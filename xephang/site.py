"""The site model: one commune centre's services, counters, priority rules and hours.

Loaded from TOML (``config/site.example.toml``) by the hub, and read by every daemon that
needs labels (ticket, board, speaker). Strict: unknown keys are errors.
"""

from __future__ import annotations

import re
from datetime import time as dtime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG_RE = r"^[a-z0-9]+(-[a-z0-9]+)*$"
Slug = Annotated[str, Field(pattern=SLUG_RE, min_length=1, max_length=40)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(Strict):
    """A service area (lĩnh vực): one button on the dispenser, one number band."""

    id: Slug
    name_vi: str = Field(min_length=1, max_length=80)
    name_en: str = Field(default="", max_length=80)
    band: tuple[int, int] = Field(description="first and last ticket number of the band, e.g. [1001, 1999]")
    prefix: str = Field(default="", pattern=r"^[A-Z]?$", description="optional letter printed before the number")
    target_wait_min: float = Field(default=15, gt=0, le=600, description="target wait (issue → call), minutes")
    mean_service_min: float = Field(default=8, gt=0, le=240, description="prior for the wait estimate, minutes")
    guide_url: str = Field(default="", max_length=300, description="procedure guide for the ticket's QR code")

    @field_validator("band")
    @classmethod
    def _band_ok(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if not (0 <= lo < hi <= 9999):
            raise ValueError("band must be [first, last] with 0 <= first < last <= 9999")
        return v

    def label(self, lang: str = "vi") -> str:
        return self.name_en if lang == "en" and self.name_en else self.name_vi


class Counter(Strict):
    """A counter (quầy): served by one officer, calling from its services in order."""

    number: int = Field(ge=1, le=99)
    label_vi: str = Field(default="", max_length=40)
    label_en: str = Field(default="", max_length=40)
    services: tuple[Slug, ...] = Field(min_length=1, description="services it calls from, first = preferred")
    officer: str = Field(default="", max_length=80, description="officer's name, for reports (never a citizen's)")

    def label(self, lang: str = "vi") -> str:
        if lang == "en":
            return self.label_en or f"Counter {self.number}"
        return self.label_vi or f"Quầy {self.number}"


class PriorityGroup(Strict):
    id: Slug
    name_vi: str
    name_en: str = ""


class PriorityRule(Strict):
    """Fairness: after ``every_n_normal`` normal tickets in a row a waiting priority ticket
    goes first; priority tickets otherwise go first; nobody waits beyond ``max_wait_min``
    while later tickets are called (the longest-waiting overdue ticket goes first)."""

    groups: tuple[PriorityGroup, ...] = ()
    priority_per_normal: int = Field(default=2, ge=1, le=20, description="priority tickets called before one waiting normal ticket must be called")
    max_wait_min: float = Field(default=60, gt=0, le=24 * 60)


class OpeningHours(Strict):
    open: dtime = dtime(7, 30)
    close: dtime = dtime(17, 0)
    days: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), description="weekdays open, Monday = 0")


class SiteInfo(Strict):
    slug: Slug
    name_vi: str = Field(min_length=1, max_length=120)
    name_en: str = Field(default="", max_length=120)
    address: str = Field(default="", max_length=200)
    timezone: str = "Asia/Ho_Chi_Minh"
    daily_reset: dtime = Field(default=dtime(4, 0), description="local time when numbering restarts")
    queue_url: str = Field(default="", max_length=300, description="live-queue page template, {site} and {number}")


class Site(Strict):
    site: SiteInfo
    services: tuple[Service, ...] = Field(min_length=1)
    counters: tuple[Counter, ...] = Field(min_length=1)
    priority: PriorityRule = PriorityRule()
    hours: OpeningHours = OpeningHours()
    no_show_requeue: bool = Field(default=False, description="a no-show goes back to the queue once")
    rating_window_s: float = Field(default=120, ge=0, le=3600)
    rating_scale: int = Field(default=5, description="3 or 5 rating keys")

    @model_validator(mode="after")
    def _cross_checks(self) -> Site:
        errors: list[str] = []
        ids = [s.id for s in self.services]
        dup = {i for i in ids if ids.count(i) > 1}
        if dup:
            errors.append(f"services: duplicate id {sorted(dup)}")
        nums = [c.number for c in self.counters]
        dupc = {n for n in nums if nums.count(n) > 1}
        if dupc:
            errors.append(f"counters: duplicate number {sorted(dupc)}")
        bands = sorted((s.band[0], s.band[1], s.id) for s in self.services)
        for (_lo1, hi1, a), (lo2, _hi2, b) in zip(bands, bands[1:], strict=False):
            if lo2 <= hi1:
                errors.append(f"services: bands of {a!r} and {b!r} overlap")
        for c in self.counters:
            for s in c.services:
                if s not in ids:
                    errors.append(f"counters: counter {c.number} names unknown service {s!r}")
        if self.rating_scale not in (3, 5):
            errors.append("rating_scale must be 3 or 5")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def service(self, service_id: str) -> Service:
        for s in self.services:
            if s.id == service_id:
                return s
        raise KeyError(service_id)

    def counter(self, number: int) -> Counter:
        for c in self.counters:
            if c.number == number:
                return c
        raise KeyError(number)

    def service_ids(self) -> list[str]:
        return [s.id for s in self.services]


def format_number(number: int, prefix: str = "") -> str:
    """Ticket number as printed and shown: '1023', or 'A023' style when a prefix is set."""
    return f"{prefix}{number:04d}" if not prefix else f"{prefix}{number:03d}" if number < 1000 else f"{prefix}{number}"


_slug_re = re.compile(SLUG_RE)


def is_slug(s: str) -> bool:
    return bool(_slug_re.match(s))
