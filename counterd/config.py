"""The counter box's configuration: its keys (pins, short and long actions), lights, buzzer,
menus, rating window and the officer's pause reasons (``[counter]``, pushable over MQTT).

Validated as a whole with every error listed; ``counterd.keymap`` is the pure core that runs it.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from xephang.checktext import both
from xephang.contract import PlainText, Slug

PLAIN_ACTIONS = ("next", "recall", "no-show", "finish", "pause", "resume", "pause-menu", "transfer", "arrived", "none")
_RATE = re.compile(r"^rate-([1-5])$")
_TRANSFER_TO = re.compile(r"^transfer:([a-z0-9]+(-[a-z0-9]+)*)$")
MAX_CHOICES = 9  # the LED blinks an option's number: more than nine cannot be counted by eye

DEFAULT_PAUSE_REASONS = ("Nghỉ giải lao", "Họp", "Hỗ trợ nghiệp vụ", "Việc riêng")


def check_action(action: str) -> str:
    """Return ``action`` if the key map may use it; raise ``ValueError`` otherwise."""
    if action in PLAIN_ACTIONS or _RATE.fullmatch(action) or _TRANSFER_TO.fullmatch(action):
        return action
    allowed = f"{', '.join(PLAIN_ACTIONS)}, rate-1…rate-5, transfer:<service id>"
    raise ValueError(both(f"thao tác không có {action!r}, một trong: {allowed}",
                          f"unknown action {action!r}: one of {allowed}"))


def rate_score(action: str) -> int | None:
    """``rate-4`` → 4; any other action → None."""
    m = _RATE.fullmatch(action)
    return int(m.group(1)) if m else None


def transfer_target(action: str) -> str | None:
    """``transfer:dat-dai`` → ``dat-dai``; any other action → None."""
    m = _TRANSFER_TO.fullmatch(action)
    return m.group(1) if m else None


class KeySpec(BaseModel):
    """One key of the box: a pin, what a short press does and what a long press does."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=40,
                      description="key name (logs, sim presses): next, recall, rate-3, k1 …")
    pin: int | str = Field(description="gpiozero pin: BCM number or 'GPIO17'")
    short: str = Field(description="action of a short press")
    long: str | None = Field(default=None, description="action of a long press (held hold_s); none = the key "
                             "answers at its leading edge, fastest")

    @field_validator("short", "long")
    @classmethod
    def _action_ok(cls, v: str | None) -> str | None:
        return None if v is None else check_action(v)

    @property
    def needs_hold(self) -> bool:
        """A key that tells short from long (answers at release) instead of at its leading edge."""
        return self.long is not None or self.short in ("pause-menu", "transfer")


RatingScale = Literal[3, 5]
RATING_SCALES: tuple[int, ...] = get_args(RatingScale)

# A six-key officer box plus five rating keys facing the citizen (BCM pins of a Pi header).
DEFAULT_KEYS: tuple[KeySpec, ...] = (
    KeySpec(name="next", pin=5, short="next"),
    KeySpec(name="recall", pin=6, short="recall", long="no-show"),
    KeySpec(name="finish", pin=13, short="finish"),
    KeySpec(name="pause", pin=19, short="pause", long="pause-menu"),
    KeySpec(name="transfer", pin=26, short="transfer", long="transfer"),
    *(KeySpec(name=f"rate-{i}", pin=p, short=f"rate-{i}") for i, p in enumerate((12, 16, 20, 21, 25), start=1)),
)


def default_keys(rating_scale: int = 5) -> tuple[KeySpec, ...]:
    """The default key map for a site rating on ``rating_scale`` points (3: no rate-4/rate-5 keys)."""
    return tuple(k for k in DEFAULT_KEYS if (rate_score(k.short) or 0) <= rating_scale)


def keys_beyond_scale(keys: tuple[KeySpec, ...], rating_scale: int) -> list[str]:
    """``key 'rate-4' → rate-4`` for every key action scoring above ``rating_scale``."""
    return [f"key {k.name!r} → {a}" for k in keys for a in (k.short, k.long)
            if a is not None and (rate_score(a) or 0) > rating_scale]


class BoxConfig(BaseModel):
    """The counter box's node config: local settings ``[counter]``, pushable over MQTT."""

    model_config = ConfigDict(extra="forbid")
    number: int = Field(default=1, ge=1, le=99, description="counter number (the hub lets counter-N act for N only)")
    officer: PlainText = Field(default="", description="officer at this counter (health, logs); "
                         "reports take it from the site file")
    services: tuple[Slug, ...] = Field(default=(), description="services the counter calls from (informational); "
                                      "empty = the site file's, else the hub's counter state")
    transfer_to: tuple[Slug, ...] = Field(default=(), description="transfer targets in the order the transfer key "
                                         "steps through; empty = every service of the site")
    # what the hub takes as a pause's reason (contract.PlainText): one longer than 80 characters, or
    # with a newline, made a Pause the box could not send, and the box stayed busy with it for good
    pause_reasons: tuple[PlainText, ...] = Field(default=DEFAULT_PAUSE_REASONS, max_length=MAX_CHOICES,
                                           description="first = the reason of a short Pause press")
    rating_scale: RatingScale = Field(default=5, description="the site's rating scale: 3 or 5 rating keys (a box "
                                      "with a site file takes the site's); a rating key above it is refused")
    keys: tuple[KeySpec, ...] = Field(default=DEFAULT_KEYS, description="the key map (default: as many rating "
                                      "keys as rating_scale)")
    status_led_pin: int | str | None = Field(default=17, description="the officer's status LED")
    rating_led_pin: int | str | None = Field(default=27, description="LED lighting the rating keys")
    buzzer_pin: int | str | None = 18
    pin_factory: str = Field(default="", description="gpiozero pin factory: '' (default: lgpio on a Pi), mock, …")
    debounce_s: float = Field(default=0.03, ge=0, le=0.5)
    double_press_s: float = Field(default=0.4, ge=0, le=5, description="a press this soon after the previous press of the same key is dropped (at the key)")
    hold_s: float = Field(default=1.0, gt=0.05, le=10, description="a press held this long is a long press")
    max_presses: int = Field(default=20, ge=1, le=10_000, description="per key, per 10 s: more is electrical noise")
    select_timeout_s: float = Field(default=8.0, gt=0, le=120, description="a menu with no press this long is cancelled")
    recalls_before_no_show: int = Field(default=2, ge=0, le=20, description="suggest no-show after this many recalls; 0 = never")
    rating_window_s: float | None = Field(default=None, gt=0, le=3600, description="shorten the hub's rating window")

    @model_validator(mode="before")
    @classmethod
    def _default_keys_follow_the_scale(cls, data: Any) -> Any:
        if isinstance(data, dict) and "keys" not in data and data.get("rating_scale") in RATING_SCALES:
            data = {**data, "keys": default_keys(int(data["rating_scale"]))}
        return data

    @model_validator(mode="after")
    def _unique(self) -> BoxConfig:
        errors: list[str] = []
        beyond = keys_beyond_scale(self.keys, self.rating_scale)
        if beyond:
            keys, scale = ", ".join(beyond), self.rating_scale
            errors.append("keys: " + both(f"{keys} vượt thang đánh giá {scale} mức của trung tâm (rating_scale): "
                                          "đặt phím đó là none hoặc bỏ nó đi",
                                          f"{keys} is beyond the site's {scale}-point rating scale (rating_scale): "
                                          "map the key to none or remove it"))
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            errors.append(f"keys: {both(f'tên phím bị trùng {dup}', f'duplicate key names {dup}')}")
        pins = [str(k.pin) for k in self.keys] + [str(p) for p in (self.status_led_pin, self.rating_led_pin,
                                                                  self.buzzer_pin) if p is not None]
        if len(set(pins)) != len(pins):
            twice = sorted({p for p in pins if pins.count(p) > 1})
            errors.append(f"keys/LEDs: {both(f'chân dùng hai lần {twice}', f'a pin is used twice {twice}')}")
        if self.debounce_s >= self.hold_s:
            errors.append(both("hold_s phải dài hơn debounce_s", "hold_s must be longer than debounce_s"))
        if errors:
            raise ValueError("\n".join(errors))  # a line each: format_validation_errors
        return self

    def key(self, name: str) -> KeySpec | None:
        return next((k for k in self.keys if k.name == name), None)
