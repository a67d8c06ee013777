"""The counter box's light and sound language: pattern tables for its status LED, its
rating LED and its buzzer, built on the shared names of :mod:`xephang.hw.lights`.

Shared names keep their shared look (``ready``, ``working``, ``accepted``, ``hub_offline``,
``queue_empty``, ``error``); the box adds the names only it needs. Patterns differ by
*shape* (number of flashes, long vs short), not only by speed, so an officer can tell them
apart from the corner of an eye. ``docs/counterd.md`` shows this table; a test checks the
two agree.
"""

from __future__ import annotations

from xephang.hw.lights import BUZZER_PATTERNS, LED_PATTERNS, Pattern


def _beeps(n: int, on: float = 0.06, off: float = 0.1) -> Pattern:
    return Pattern(((True, on), (False, off)), repeat=n)


def _choose_led(n: int) -> Pattern:
    # n medium blinks, then a dark pause: the officer counts the option's number
    return Pattern(((True, 0.25), (False, 0.25)) * (n - 1) + ((True, 0.25), (False, 1.2)))


STATUS_PATTERNS: dict[str, Pattern] = {
    **{k: LED_PATTERNS[k] for k in ("off", "ready", "working", "accepted", "hub_offline", "queue_empty", "error")},
    "paused": Pattern(((True, 1.0), (False, 1.0))),
    "suggest_no_show": Pattern(((True, 0.1), (False, 0.1), (True, 0.1), (False, 0.1), (True, 0.1), (False, 0.9))),
    **{f"choose-{n}": _choose_led(n) for n in range(1, 10)},
}

RATING_PATTERNS: dict[str, Pattern] = {
    "off": LED_PATTERNS["off"],
    "rating_open": Pattern(((True, 0.5), (False, 0.5))),
    "rated": Pattern(((True, 0.6), (False, 0.1), (True, 0.6), (False, 0.0)), repeat=1),
    "rating_closed": Pattern(((True, 0.05), (False, 0.1)), repeat=3),
    "hub_offline": Pattern(((True, 0.1), (False, 0.15)), repeat=2),
    "busy": Pattern(((True, 0.05), (False, 0.0)), repeat=1),
    "error": LED_PATTERNS["error"],
}

BOX_BUZZER_PATTERNS: dict[str, Pattern] = {
    **{k: BUZZER_PATTERNS[k] for k in ("off", "accepted", "hub_offline", "error")},
    "queued": Pattern(((True, 0.02), (False, 0.0)), repeat=1),
    "busy": _beeps(2, 0.02, 0.08),
    "cancelled": Pattern(((True, 0.15), (False, 0.0)), repeat=1),
    "queue_empty": Pattern(((True, 0.3), (False, 0.0)), repeat=1),
    "suggest_no_show": _beeps(3, 0.08, 0.08),
    "rated": Pattern(((True, 0.05), (False, 0.05), (True, 0.15), (False, 0.0)), repeat=1),
    "rating_closed": _beeps(3, 0.02, 0.06),
    **{f"choose-{n}": _beeps(n, 0.04, 0.12) for n in range(1, 10)},
}

# what each name means, for docs/counterd.md (vi, en)
MEANING: dict[str, tuple[str, str]] = {
    "off": ("tắt", "off"),
    "ready": ("sẵn sàng", "ready (idle or serving)"),
    "working": ("đang gửi yêu cầu", "a request is in flight"),
    "accepted": ("trung tâm đã nhận", "the hub accepted the press"),
    "queued": ("bấm đã được xếp chờ", "press queued behind the one in flight"),
    "busy": ("đang bận, bấm bị bỏ qua", "ignored: the same press is in flight"),
    "cancelled": ("đã huỷ chọn", "menu cancelled / service key without transfer"),
    "queue_empty": ("hết người chờ", "nobody waiting for this counter"),
    "hub_offline": ("mất kết nối trung tâm", "hub offline: presses are not kept"),
    "error": ("lỗi", "refused or no reply"),
    "paused": ("quầy tạm dừng", "counter paused"),
    "suggest_no_show": ("gợi ý: vắng mặt", "recalled enough: suggest no-show"),
    "choose-N": ("đang chọn mục thứ N", "menu: option N selected"),
    "rating_open": ("mời đánh giá", "rating keys live"),
    "rated": ("cảm ơn đã đánh giá", "rating recorded"),
    "rating_closed": ("chưa thể đánh giá", "rating key outside the window"),
}


def describe(p: Pattern | None) -> str:
    """A pattern in words for the docs table: ``on 0.1 s · off 0.9 s, forever``."""
    if p is None:
        return "—"
    if p.forever and len(p.steps) == 1:
        return "steady on" if p.steps[0][0] else "off"
    steps = " · ".join(f"{'on' if on else 'off'} {sec:g} s" for on, sec in p.steps if sec or on)
    return f"{steps}, {'forever' if p.forever else ('once' if p.repeat == 1 else f'×{p.repeat}')}"


def patterns_table_md() -> str:
    """The Markdown table of every light/sound name of the box (``docs/counterd.md`` embeds it)."""
    rows = ["| name | meaning (vi / en) | status LED | rating LED | buzzer |", "|---|---|---|---|---|"]
    names = [n for n in MEANING if n != "choose-N"]
    for name in names:
        vi, en = MEANING[name]
        rows.append(f"| `{name}` | {vi} / {en} | {describe(STATUS_PATTERNS.get(name))} | "
                    f"{describe(RATING_PATTERNS.get(name))} | {describe(BOX_BUZZER_PATTERNS.get(name))} |")
    vi, en = MEANING["choose-N"]
    rows.append(f"| `choose-N` (N = 1…9) | {vi} / {en} | on 0.25 s · off 0.25 s ×N, then off 1.2 s, forever | — "
                f"| on 0.04 s · off 0.12 s ×N |")
    return "\n".join(rows) + "\n"
