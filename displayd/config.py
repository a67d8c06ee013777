"""Board options (themes, layout, ticker) and the labels the board prints.

``BoardConfig`` is the part of the display node's config a technician can push over MQTT:
strict (unknown keys are errors), validated as a whole. ``BoardLabels`` are the names
taken from the site file (centre, services, counters) in both languages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from xephang.checktext import both
from xephang.site import Site
from xephang.terminal import one_line

RGB = tuple[int, int, int]
def _unknown_colours(unknown: list[str]) -> str:
    known = sorted(Theme.model_fields)
    return both(f"tên màu không có {unknown}, các tên có: {known}", f"unknown colour names {unknown}, known: {known}")


COUNTER_NEEDED = both("layout 'counter' cần 'counter' (số quầy)", "layout 'counter' needs 'counter' (the counter number)")
MIN_BLINK_S = 0.2  # a shorter blink period (but 0, steady) is refused

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})$")


def _parse_colour(v: Any) -> Any:
    """Accept "#ffd400" as well as [255, 212, 0]."""
    if isinstance(v, str):
        m = _HEX.match(v.strip())
        if not m:
            raise ValueError(both(f"màu {v!r} không có dạng #rrggbb", f"colour {v!r} is not #rrggbb"))
        h = m.group(1)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    return v


Colour = Annotated[tuple[Annotated[int, Field(ge=0, le=255)], ...], BeforeValidator(_parse_colour)]


class Theme(BaseModel):
    """Colours of the board. Every pair used for text keeps a high contrast ratio."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bg: Colour
    fg: Colour
    muted: Colour  # secondary text (service names, labels)
    accent: Colour  # numbers
    panel_bg: Colour  # the newest-call panel and the tiles
    border: Colour
    highlight_bg: Colour  # blinking newest call
    highlight_fg: Colour
    paused: Colour
    closed: Colour
    stale: Colour  # numbers while the hub or broker is unreachable
    banner_bg: Colour
    banner_fg: Colour
    header_bg: Colour
    header_fg: Colour
    ticker_bg: Colour
    ticker_fg: Colour

    @field_validator("*")
    @classmethod
    def _rgb(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if len(v) != 3:
            raise ValueError(both("một màu là ba số 0..255 hoặc #rrggbb", "a colour is three numbers 0..255 or #rrggbb"))
        return v


THEMES: dict[str, Theme] = {
    # white and yellow on black: readable from the back of a bright hall, and on cheap TVs
    "high-contrast": Theme(
        bg=(0, 0, 0), fg=(255, 255, 255), muted=(210, 210, 210), accent=(255, 214, 0),
        panel_bg=(18, 18, 18), border=(255, 255, 255), highlight_bg=(255, 214, 0), highlight_fg=(0, 0, 0),
        paused=(255, 150, 0), closed=(150, 150, 150), stale=(140, 140, 140),
        banner_bg=(200, 0, 0), banner_fg=(255, 255, 255), header_bg=(0, 40, 120), header_fg=(255, 255, 255),
        ticker_bg=(0, 40, 120), ticker_fg=(255, 255, 255),
    ),
    "dark-blue": Theme(
        bg=(6, 22, 58), fg=(255, 255, 255), muted=(200, 214, 240), accent=(255, 225, 90),
        panel_bg=(14, 40, 96), border=(120, 160, 230), highlight_bg=(255, 225, 90), highlight_fg=(6, 22, 58),
        paused=(255, 160, 40), closed=(150, 160, 180), stale=(130, 140, 160),
        banner_bg=(190, 0, 0), banner_fg=(255, 255, 255), header_bg=(160, 10, 20), header_fg=(255, 236, 160),
        ticker_bg=(160, 10, 20), ticker_fg=(255, 255, 255),
    ),
    "light": Theme(
        bg=(255, 255, 255), fg=(0, 0, 0), muted=(50, 50, 50), accent=(0, 40, 140),
        panel_bg=(236, 240, 248), border=(0, 40, 140), highlight_bg=(0, 40, 140), highlight_fg=(255, 255, 255),
        paused=(170, 80, 0), closed=(110, 110, 110), stale=(120, 120, 120),
        banner_bg=(190, 0, 0), banner_fg=(255, 255, 255), header_bg=(0, 40, 140), header_fg=(255, 255, 255),
        ticker_bg=(0, 40, 140), ticker_fg=(255, 255, 255),
    ),
}


class BoardConfig(BaseModel):
    """What a technician can set on a display node (pushable over MQTT)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layout: Literal["hall", "counter"] = Field(default="hall", description="whole hall, or one counter's screen")
    counter: int | None = Field(default=None, ge=1, le=99, description="counter shown by the counter layout")
    theme: Literal["high-contrast", "dark-blue", "light"] = Field(default="high-contrast", description="high-contrast, dark-blue or light")
    colours: dict[str, Colour] = Field(default_factory=dict, description="override single theme colours, e.g. {accent = '#ffd400'}")
    lang: Literal["vi", "en"] = Field(default="vi", description="language of the board's own words")
    orientation: Literal["auto", "landscape", "portrait"] = Field(default="auto", description="auto: call panel beside the counters on wide screens (≥ 3:2), above them otherwise")
    centre_name: str = Field(default="", max_length=160, description="shown in the header; empty = the site's name")
    ticker: str = Field(default="", max_length=1000, description="scrolling text at the bottom; empty = no ticker")
    ticker_speed: float = Field(default=0.08, gt=0, le=1, description="screen widths per second")
    ticker_fps: float = Field(default=30, ge=1, le=60, description="ticker steps per second (only the ticker band is redrawn)")
    highlight_s: float = Field(default=12, ge=0, le=300, description="how long the newest call stays highlighted")
    blink_period_s: float = Field(default=1.0, ge=0, le=10, description="blink period while highlighted; 0 = steady, "
                                  "else at least 0.2 s (faster is no blink an eye can follow, and redraws the "
                                  "board without end: 0.0001 took 92 % of a core)")
    last_calls: int = Field(default=4, ge=1, le=10, description="calls listed, the newest included")
    show_waiting: bool = Field(default=True, description="the people-waiting bar, per service")
    show_last_calls: bool = Field(default=True, description="the recent-calls list")

    @field_validator("centre_name", "ticker")
    @classmethod
    def _nfc(cls, v: str) -> str:
        # decomposed diacritics render, but compare and cache badly: keep one form; one line of
        # text (a NUL in a pushed ticker ended the daemon at its next frame, and at every start)
        return one_line(unicodedata.normalize("NFC", v))

    @field_validator("colours")
    @classmethod
    def _known_colours(cls, v: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        unknown = sorted(set(v) - set(Theme.model_fields))
        if unknown:
            raise ValueError(_unknown_colours(unknown))
        for k, c in v.items():
            if len(c) != 3:
                raise ValueError(both(f"màu {k!r} phải có ba phần", f"colour {k!r} must have three parts"))
        return v

    @field_validator("blink_period_s")
    @classmethod
    def _blink_an_eye_follows(cls, v: float) -> float:
        if 0 < v < MIN_BLINK_S:
            raise ValueError(both(f"0 (không nhấp nháy) hoặc ít nhất {MIN_BLINK_S} giây",
                                  f"0 (steady) or at least {MIN_BLINK_S} s"))
        return v

    @model_validator(mode="after")
    def _counter_needed(self) -> BoardConfig:
        if self.layout == "counter" and self.counter is None:
            raise ValueError(COUNTER_NEEDED)
        return self

    @classmethod
    def cross_check_errors(cls, data: Mapping[str, Any]) -> list[str]:
        """The checks pydantic skips while another field is invalid, on the raw config: a refusal
        listed the bad colour value alone, not the unknown colour name beside it nor the counter
        layout without its counter."""
        errors = []
        colours = data.get("colours")
        if isinstance(colours, Mapping):
            unknown = sorted(str(k) for k in set(colours) - set(Theme.model_fields))
            if unknown:
                errors.append("colours: " + _unknown_colours(unknown))
        if data.get("layout") == "counter" and data.get("counter") is None:
            errors.append(COUNTER_NEEDED)
        return errors

    def resolved_theme(self) -> Theme:
        """The named theme with the single-colour overrides applied."""
        base = THEMES[self.theme]
        return base.model_copy(update=dict(self.colours)) if self.colours else base


def options_table() -> str:
    """The Markdown reference of ``BoardConfig`` (docs/displayd.md embeds it; a test checks)."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    for name, f in BoardConfig.model_fields.items():
        default = "{}" if f.default_factory is not None else repr(f.default).replace("'", '"')
        rows.append(f"| `{name}` | `{default}` | {f.description or ''} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class BoardLabels:
    """Names the board prints, in Vietnamese and English."""

    centre_vi: str = "Trung tâm Phục vụ hành chính công"
    centre_en: str = "Public Administration Service Centre"
    services: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # id -> (vi, en)
    counters: Mapping[int, tuple[str, str]] = field(default_factory=dict)  # number -> (vi, en)
    short: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # service id -> short (vi, en)

    @classmethod
    def from_site(cls, site: Site) -> BoardLabels:
        """Labels from the site file."""
        return cls(
            centre_vi=site.site.name_vi,
            centre_en=site.site.name_en or site.site.name_vi,
            services={s.id: (s.label("vi"), s.label("en")) for s in site.services},
            counters={c.number: (c.label("vi"), c.label("en")) for c in site.counters},
            short={s.id: (s.short("vi"), s.short("en")) for s in site.services if s.short_vi or s.short_en},
        )

    def centre(self, lang: str) -> str:
        return self.centre_en if lang == "en" else self.centre_vi

    def service(self, service_id: str | None, lang: str) -> str:
        """A service's name; its id if the site does not know it (never a blank)."""
        if not service_id:
            return ""
        names = self.services.get(service_id)
        if names is None:
            return service_id
        return names[1] if lang == "en" and names[1] else names[0]

    def service_short(self, service_id: str | None, lang: str) -> str:
        """A service's short name from the site file, else its name."""
        names = self.short.get(service_id or "")
        if names is None:
            return self.service(service_id, lang)
        return names[1] if lang == "en" and names[1] else names[0]

    def counter(self, number: int, lang: str, hub_label: str = "") -> str:
        """'Quầy 3' (or the site's own label for that counter)."""
        names = self.counters.get(number)
        if names is not None:
            return names[1] if lang == "en" else names[0]
        if hub_label:
            return hub_label
        return f"Counter {number}" if lang == "en" else f"Quầy {number}"

    def service_order(self, waiting: Mapping[str, int]) -> list[str]:
        """Services in site order, then any the hub reports that the site file lacks. Once the hub has
        said any, only those it reports: a service the hub's site no longer has is not shown."""
        known = [k for k in self.services if not waiting or k in waiting]
        return known + sorted(k for k in waiting if k not in self.services)


# the board's own words; Vietnamese first
WORDS: dict[str, tuple[str, str]] = {
    "now_calling": ("MỜI CÔNG DÂN CÓ SỐ", "NOW CALLING"),
    "to_counter": ("đến", "to"),
    "recent": ("Vừa gọi", "Recent calls"),
    "waiting": ("Đang chờ", "Waiting"),
    "paused": ("Tạm dừng", "Paused"),
    "closed": ("Đã đóng", "Closed"),
    "free": ("—", "—"),
    "no_call": ("Chưa có số được gọi", "No number called yet"),
    "offline_broker": ("MẤT KẾT NỐI MẠNG — số hiển thị có thể chưa cập nhật", "CONNECTION LOST — numbers may be out of date"),
    "offline_hub": ("MÁY CHỦ XẾP HÀNG KHÔNG PHẢN HỒI — số hiển thị có thể chưa cập nhật", "QUEUE SERVER OFFLINE — numbers may be out of date"),
    "connecting": ("Đang kết nối với máy chủ…", "Connecting to the queue server…"),
    "stale_tag": ("chưa cập nhật", "not updated"),
    "people": ("người", "people"),
}


def word(key: str, lang: str) -> str:
    """One of the board's own words in ``lang``."""
    vi, en = WORDS[key]
    return en if lang == "en" else vi
