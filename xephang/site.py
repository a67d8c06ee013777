"""The site model: one commune centre's services, counters, priority rules and hours.

Loaded from TOML (``config/site.example.toml``) by the hub, and read by every daemon that
needs labels (ticket, board, speaker). Strict: unknown keys are errors.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import time as dtime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from xephang.checktext import both
from xephang.terminal import one_line

SLUG_RE = r"^[a-z0-9]+(-[a-z0-9]+)*$"
Slug = Annotated[str, Field(pattern=SLUG_RE, min_length=1, max_length=40)]
# a name people read (ticket, board, reports, terminals): one line, no control or direction characters
Text = Annotated[str, AfterValidator(one_line)]

# the fields a QR link template may name (ticketd fills them per ticket: ticketd/render.py qr_url)
QR_FIELDS = frozenset({"site", "service", "number", "day", "id", "token"})


def check_template(text: str, fields: frozenset[str]) -> str:
    """``text`` when it is one printable line whose ``{…}`` are only ``fields``, bare: no format spec
    (``{n:>100000000}`` filled a 100 MB line and froze the dispenser), conversion, attribute or
    index. Raises ``ValueError`` naming what is wrong."""
    one_line(text)
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:  # a lone { or }
        raise ValueError(both(f"dấu ngoặc nhọn lẻ ({exc}): viết {{{{ và }}}} để in một dấu ngoặc",
                              f"{exc} (write {{{{ and }}}} for a brace)")) from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if name not in fields or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            allowed = ", ".join("{" + f + "}" for f in sorted(fields))
            raise ValueError(both(f"{shown} không phải một trường được dùng ({allowed}, viết đúng như vậy, không định dạng)",
                                  f"{shown} is not one of its fields ({allowed}, each as it is, without a format)"))
    return text


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Service(Strict):
    """A service area (lĩnh vực): one button on the dispenser, one number band."""

    id: Slug
    name_vi: Text = Field(min_length=1, max_length=80)
    name_en: Text = Field(default="", max_length=80)
    short_vi: Text = Field(default="", max_length=24, description="short name where the full one does not fit (board tiles, report tables)")
    short_en: Text = Field(default="", max_length=24, description="short English name")
    band: tuple[int, int] = Field(description="first and last ticket number of the band, e.g. [1001, 1999]")
    prefix: str = Field(default="", pattern=r"^[A-Z]?$", description="optional letter printed before the number")
    target_wait_min: float = Field(default=15, gt=0, le=600, description="target wait (issue → call), minutes")
    mean_service_min: float = Field(default=8, gt=0, le=240, description="prior for the wait estimate, minutes")
    guide_url: str = Field(default="", max_length=300, description="procedure guide for the ticket's QR code "
                           "(a template like site.queue_url: {site} {service} {number} {day} {id} {token})")

    @field_validator("guide_url")
    @classmethod
    def _guide_template(cls, v: str) -> str:
        return check_template(v, QR_FIELDS)

    @field_validator("band")
    @classmethod
    def _band_ok(cls, v: tuple[int, int]) -> tuple[int, int]:
        lo, hi = v
        if not (0 <= lo < hi <= 9999):
            raise ValueError(both("dải số phải là [đầu, cuối] với 0 <= đầu < cuối <= 9999",
                                  "band must be [first, last] with 0 <= first < last <= 9999"))
        return v

    def label(self, lang: str = "vi") -> str:
        return self.name_en if lang == "en" and self.name_en else self.name_vi

    def short(self, lang: str = "vi") -> str:
        """The short name (the full one when the site gives none)."""
        if lang == "en":
            if self.short_en:
                return self.short_en
            return self.label("en") if self.name_en else (self.short_vi or self.name_vi)
        return self.short_vi or self.name_vi


class Officer(Strict):
    """An officer (cán bộ) who may sit at a counter. ``id`` is also the officer's web account
    (``xephang web user add ID --role officer``): the console acts only for the counters whose
    ``officer_id`` names it. A name and an id, never a citizen's data."""

    id: Slug
    name: Text = Field(min_length=1, max_length=80, description="full name, shown on reports and the console")


class Counter(Strict):
    """A counter (quầy): served by one officer, calling from its services in order."""

    number: int = Field(ge=1, le=99)
    label_vi: Text = Field(default="", max_length=40)
    label_en: Text = Field(default="", max_length=40)
    services: tuple[Slug, ...] = Field(min_length=1, description="services it calls from, first = preferred")
    officer: Text = Field(default="", max_length=80, description="officer's name, for reports (never a citizen's); "
                         "with officer_id, the name comes from [[officers]]")
    officer_id: Slug | None = Field(default=None, description="the officer sitting here today (an [[officers]] id): "
                                    "the only web account whose console may act for this counter")

    def label(self, lang: str = "vi") -> str:
        if lang == "en":
            return self.label_en or f"Counter {self.number}"
        return self.label_vi or f"Quầy {self.number}"


class PriorityGroup(Strict):
    id: Slug
    name_vi: Text
    name_en: Text = ""


class PriorityRule(Strict):
    """Fairness, per service: a waiting priority ticket goes before normal ones, but after
    ``priority_per_normal`` priority calls in a row a waiting normal ticket is called (so a
    stream of priority tickets never starves normal citizens); nobody waits beyond
    ``max_wait_min`` while later tickets are called (the earliest-arrived overdue ticket of the
    counter's services goes first, whatever its class or service)."""

    groups: tuple[PriorityGroup, ...] = ()
    priority_per_normal: int = Field(default=2, ge=1, le=20, description="priority tickets called before one waiting normal ticket must be called")
    max_wait_min: float = Field(default=60, gt=0, le=24 * 60)


class OpeningHours(Strict):
    open: dtime = dtime(7, 30)
    close: dtime = Field(default=dtime(17, 0), description="after `open`, the same day")
    days: tuple[int, ...] = Field(default=(0, 1, 2, 3, 4), min_length=1, max_length=7,
                                  description="weekdays open, Monday = 0 … Sunday = 6, each once")

    @field_validator("days")
    @classmethod
    def _weekdays(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        wrong = [d for d in v if not 0 <= d <= 6]
        if wrong:
            raise ValueError(both(f"ngày trong tuần là 0 (thứ Hai) … 6 (Chủ nhật), không phải {wrong}",
                                  f"weekdays are 0 (Monday) … 6 (Sunday), not {wrong}"))
        if len(set(v)) != len(v):
            raise ValueError(both(f"có ngày ghi hai lần: {sorted(d for d in set(v) if v.count(d) > 1)}",
                                  f"a day is named twice: {sorted(d for d in set(v) if v.count(d) > 1)}"))
        return v

    @model_validator(mode="after")
    def _close_after_open(self) -> OpeningHours:
        if self.close <= self.open:
            raise ValueError(both(f"hours.close ({self.close:%H:%M}) phải sau hours.open ({self.open:%H:%M})",
                                  f"hours.close ({self.close:%H:%M}) must be after hours.open ({self.open:%H:%M})"))
        return self


class SiteInfo(Strict):
    slug: Slug
    name_vi: Text = Field(min_length=1, max_length=120)
    name_en: Text = Field(default="", max_length=120)
    address: Text = Field(default="", max_length=200)
    timezone: str = "Asia/Ho_Chi_Minh"
    daily_reset: dtime = Field(default=dtime(4, 0), description="local time when numbering restarts")
    queue_url: str = Field(default="", max_length=300, description="live-queue page template: {site} {service} {number} "
                           "{day} {id} {token}, each bare (no format)")

    @field_validator("queue_url")
    @classmethod
    def _queue_template(cls, v: str) -> str:
        return check_template(v, QR_FIELDS)


class Site(Strict):
    site: SiteInfo
    services: tuple[Service, ...] = Field(min_length=1)
    counters: tuple[Counter, ...] = Field(min_length=1)
    officers: tuple[Officer, ...] = Field(default=(), description="officers who may sit at counters (web console accounts)")
    priority: PriorityRule = PriorityRule()
    hours: OpeningHours = OpeningHours()
    no_show_requeue: bool = Field(default=False, description="a no-show goes back to the queue once")
    rating_window_s: float = Field(default=120, ge=0, le=3600)
    rating_scale: int = Field(default=5, description="3 or 5 rating keys")

    @model_validator(mode="after")
    def _cross_checks(self) -> Site:
        errors = cross_check_errors(self.model_dump())
        if errors:
            raise ValueError("\n".join(errors))  # a line each: format_validation_errors
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

    def officer_name(self, number: int) -> str:
        """The name reports and the board show for counter ``number`` today."""
        c = self.counter(number)
        if c.officer_id is not None:
            for o in self.officers:
                if o.id == c.officer_id:
                    return c.officer or o.name
        return c.officer

    def counters_of(self, officer_id: str) -> list[int]:
        """The counters the officer ``officer_id`` sits at today (their console acts only for these)."""
        return [c.number for c in self.counters if c.officer_id is not None and c.officer_id == officer_id]


def changes_between(old: Site, new: Site) -> list[str]:
    """What a live site change does, one line per counter or section (the ledger and the log
    keep it next to who made it)."""
    out: list[str] = []
    olds = {c.number: c for c in old.counters}
    news = {c.number: c for c in new.counters}
    for n in sorted(olds.keys() | news.keys()):
        a, b = olds.get(n), news.get(n)
        if a is None:
            out.append(f"quầy {n}: mới ({new.officer_name(n) or '—'}; {', '.join(b.services) if b else ''})")
        elif b is None:
            out.append(f"quầy {n}: bỏ")
        else:
            if old.officer_name(n) != new.officer_name(n) or a.officer_id != b.officer_id:
                out.append(f"quầy {n}: {old.officer_name(n) or '—'} → {new.officer_name(n) or '—'}")
            if a.services != b.services:
                out.append(f"quầy {n}: {', '.join(a.services)} → {', '.join(b.services)}")
            if (a.label_vi, a.label_en) != (b.label_vi, b.label_en):
                out.append(f"quầy {n}: tên quầy → {b.label('vi')}")
    # each service and officer by id, and what changed in it ("services: đổi" said nothing of a band,
    # a removed service or a target, in the head's record of who changed what)
    for what, label, a_items, b_items in (("lĩnh vực", "services", old.services, new.services),
                                          ("cán bộ", "officers", old.officers, new.officers)):
        a_by, b_by = {x.id: x for x in a_items}, {x.id: x for x in b_items}
        for i in [x.id for x in a_items] + [x.id for x in b_items if x.id not in a_by]:
            if i not in b_by:
                out.append(f"{what} {i}: bỏ")
            elif i not in a_by:
                out.append(f"{what} {i}: mới")
            else:
                out += [f"{what} {i}: {c}" for c in _field_changes(a_by[i], b_by[i])]
        if [x.id for x in a_items] != [x.id for x in b_items] and set(a_by) == set(b_by):
            out.append(f"{label}: thứ tự {', '.join(x.id for x in b_items)}")
    for key in ("priority", "hours", "site"):
        out += [f"{key}.{c}" for c in _field_changes(getattr(old, key), getattr(new, key))]
    for key in ("no_show_requeue", "rating_window_s", "rating_scale"):
        if getattr(old, key) != getattr(new, key):
            out.append(f"{key}: {_shown(getattr(old, key))} → {_shown(getattr(new, key))}")
    return out


def _shown(v: Any) -> str:
    if isinstance(v, tuple | list):
        return "[" + ", ".join(_shown(x) for x in v) + "]"
    if isinstance(v, BaseModel):  # a priority group, an officer …: by its id when it has one
        return str(getattr(v, "id", "{…}"))
    return str(v)[:60]


def _field_changes(a: BaseModel, b: BaseModel) -> list[str]:
    """``field: old → new`` for each field of two models of one kind that differs."""
    return [f"{name}: {_shown(getattr(a, name))} → {_shown(getattr(b, name))}"
            for name in type(a).model_fields if getattr(a, name) != getattr(b, name)]


def _int(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _entries(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    v = data.get(key)
    return [e for e in v if isinstance(e, Mapping)] if isinstance(v, list | tuple) else []


def _who(counter: Mapping[str, Any], i: int) -> tuple[str, str]:
    """A counter as the technician knows it: its number, or its place in the list."""
    if _int(counter.get("number")) is not None:
        return f"quầy {counter['number']}", f"counter {counter['number']}"
    return f"counters.{i}", f"counters.{i}"


def cross_check_errors(data: Mapping[str, Any]) -> list[str]:
    """The checks across sections (duplicate ids, overlapping bands, counters naming unknown
    services, the rating scale), on raw site data that may be invalid elsewhere: whatever is
    readable is checked, so these errors are listed together with every field error."""
    errors: list[str] = []

    def add(where: str, vi: str, en: str) -> None:
        errors.append(f"{where}: {both(vi, en)}")

    services = _entries(data, "services")
    ids = [s["id"] for s in services if isinstance(s.get("id"), str)]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        add("services", f"mã lĩnh vực bị trùng {sorted(dup)}", f"duplicate id {sorted(dup)}")
    bands = []
    for s in services:
        band = s.get("band")
        pair = [_int(x) for x in band] if isinstance(band, list | tuple) and len(band) == 2 else []
        if len(pair) == 2 and pair[0] is not None and pair[1] is not None and pair[0] < pair[1]:
            bands.append((pair[0], pair[1], str(s.get("id", "?"))))
    bands.sort()
    for (_lo1, hi1, a), (lo2, _hi2, b) in zip(bands, bands[1:], strict=False):
        if lo2 <= hi1:
            add("services", f"dải số của {a!r} và {b!r} chồng lên nhau", f"bands of {a!r} and {b!r} overlap")
    counters = _entries(data, "counters")
    nums = [n for c in counters if (n := _int(c.get("number"))) is not None]
    dupc = {n for n in nums if nums.count(n) > 1}
    if dupc:
        add("counters", f"số quầy bị trùng {sorted(dupc)}", f"duplicate number {sorted(dupc)}")
    if isinstance(data.get("services"), list | tuple):  # unreadable services: nothing to compare with
        for i, c in enumerate(counters):
            named = c.get("services")
            for s in named if isinstance(named, list | tuple) else ():
                if isinstance(s, str) and s not in ids:
                    vi, en = _who(c, i)
                    add("counters", f"{vi} ghi lĩnh vực không có {s!r}", f"{en} names unknown service {s!r}")
    oids = [o["id"] for o in _entries(data, "officers") if isinstance(o.get("id"), str)]
    dupo = {o for o in oids if oids.count(o) > 1}
    if dupo:
        add("officers", f"mã cán bộ bị trùng {sorted(dupo)}", f"duplicate id {sorted(dupo)}")
    for i, c in enumerate(counters):
        oid = c.get("officer_id")
        if isinstance(oid, str) and oid not in oids:
            vi, en = _who(c, i)
            add("counters", f"{vi} ghi cán bộ không có {oid!r} (thêm vào [[officers]])",
                f"{en} names unknown officer {oid!r} (add it to [[officers]])")
    priority = data.get("priority")
    groups = _entries(priority, "groups") if isinstance(priority, Mapping) else []
    gids = [g["id"] for g in groups if isinstance(g.get("id"), str)]
    dupg = {g for g in gids if gids.count(g) > 1}
    if dupg:
        add("priority.groups", f"mã nhóm bị trùng {sorted(dupg)}", f"duplicate id {sorted(dupg)}")
    scale = _int(data.get("rating_scale", 5))
    if scale is not None and scale not in (3, 5):
        add("rating_scale", "phải là 3 hoặc 5", "must be 3 or 5")
    return errors


def format_number(number: int, prefix: str = "") -> str:
    """Ticket number as printed and shown: '1023', or 'A023' style when a prefix is set."""
    return f"{prefix}{number:04d}" if not prefix else f"{prefix}{number:03d}" if number < 1000 else f"{prefix}{number}"


_slug_re = re.compile(SLUG_RE)


def is_slug(s: str) -> bool:
    return bool(_slug_re.match(s))
