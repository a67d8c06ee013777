"""The counter box's light and sound language: pattern tables for its status LED, its
rating LED and its buzzer, built on the shared names of :mod:`xephang.hw.lights`.

Shared names keep their shared look (``ready``, ``working``, ``accepted``, ``hub_offline``,
``queue_empty`` on the LED, ``error``); the box adds the names only it needs. Patterns differ
by *shape* (number of flashes, long vs short), not only by speed, so an officer can tell them
apart from the corner of an eye.

The buzzer speaks a two-letter rhythm alphabet, so every answer is its own little tune and
never just a longer or shorter beep: a beep is short ``·`` (0.05 s) or long ``—`` (0.25 s and
more), and beeps of one figure follow tightly (0.07 s) while separate beats are spaced wide
(0.22 s). :func:`rhythm` reads a pattern back into that notation (``·—``, ``— · ·``);
every answer has its own rhythm (beep count, short/long order, tight/wide spacing), and a
test checks it. Each is over within 0.6 s, except ``choose-N``, which counts.

``docs/counterd.md`` shows this table; a test checks the two agree.
"""

from __future__ import annotations

from xephang.hw.lights import BUZZER_PATTERNS, LED_PATTERNS, Pattern

SHORT_S, LONG_S = 0.05, 0.25    # a short beep ·, a long beep —
TIGHT_S, WIDE_S = 0.07, 0.22    # the gap inside a figure, the gap between beats
SHORT_MAX, LONG_MIN = 0.1, 0.2  # how rhythm() reads a beep (and a gap) back: nothing in between


def tune(notes: str) -> Pattern:
    """A finite buzzer pattern from a rhythm: ``·`` short beep, ``—`` long beep, a space = a wide
    gap; beeps written together follow tightly. ``tune("·—")``, ``tune("— · ·")``."""
    steps: list[tuple[bool, float]] = []
    for ch in notes:
        if ch == " ":
            steps[-1] = (False, WIDE_S)
            continue
        if ch not in "·—":
            raise ValueError(f"tune {notes!r}: only ·, — and spaces")
        steps += [(True, SHORT_S if ch == "·" else LONG_S), (False, TIGHT_S)]
    steps[-1] = (False, 0.0)  # the buzzer falls silent at the end
    return Pattern(tuple(steps), repeat=1)


def rhythm(p: Pattern) -> str:
    """A finite buzzer pattern read back as a rhythm (``··``, ``· ·``, ``—··``): what the ear
    tells apart. Raises ``ValueError`` for a beep or gap too close to the short/long boundary to
    be heard as either."""
    if p.forever:
        raise ValueError("a forever pattern has no rhythm")
    out: list[str] = []
    steps = [(on, sec) for on, sec in p.steps * (p.repeat or 1) if sec > 0]
    while steps and not steps[-1][0]:
        steps.pop()  # the silence after the last beep is not part of the tune
    for on, sec in steps:
        if SHORT_MAX < sec < LONG_MIN:
            raise ValueError(f"{'beep' if on else 'gap'} of {sec:g} s is neither short nor long")
        if on:
            out.append("·" if sec <= SHORT_MAX else "—")
        elif sec >= LONG_MIN:
            out.append(" ")
    return "".join(out)


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
    "off": BUZZER_PATTERNS["off"],
    # the shared ones: accepted ·, hub_offline ··, error — (0.6 s)
    **{k: BUZZER_PATTERNS[k] for k in ("accepted", "hub_offline", "error")},
    "queued": tune("· ·"),            # two slow ticks: noted, after the one in flight
    "busy": tune("····"),             # a quick trill: already doing that
    "cancelled": tune("——"),          # two long: the menu is closed
    "queue_empty": tune("—··"),       # long, then two short: nobody waiting
    "suggest_no_show": tune("···"),   # three quick: recalled enough
    "rated": tune("·—"),              # rising: thank you
    "rating_closed": tune("—·"),      # falling: not now
    # a long lead-in, then the option's number in short beats the officer can count
    **{f"choose-{n}": tune("— " + " ".join("·" * n)) for n in range(1, 10)},
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


def describe_tune(p: Pattern | None) -> str:
    """A buzzer pattern for the docs table: its rhythm and how long it sounds (`` `·—` 0.37 s``)."""
    if p is None:
        return "—"
    if p.forever:
        return describe(p)
    return f"`{rhythm(p)}` {tune_length(p):.2g} s"


def tune_length(p: Pattern) -> float:
    """Seconds from the first beep to the end of the last one (the trailing silence is not heard)."""
    steps = list(p.steps * (p.repeat or 1))
    while steps and not steps[-1][0]:
        steps.pop()
    return sum(sec for _, sec in steps)


def patterns_table_md() -> str:
    """The Markdown table of every light/sound name of the box (``docs/counterd.md`` embeds it)."""
    rows = ["| name | meaning (vi / en) | status LED | rating LED | buzzer (rhythm, length) |", "|---|---|---|---|---|"]
    names = [n for n in MEANING if n != "choose-N"]
    for name in names:
        vi, en = MEANING[name]
        rows.append(f"| `{name}` | {vi} / {en} | {describe(STATUS_PATTERNS.get(name))} | "
                    f"{describe(RATING_PATTERNS.get(name))} | {describe_tune(BOX_BUZZER_PATTERNS.get(name))} |")
    vi, en = MEANING["choose-N"]
    c1, c3 = BOX_BUZZER_PATTERNS["choose-1"], BOX_BUZZER_PATTERNS["choose-3"]
    rows.append(f"| `choose-N` (N = 1…9) | {vi} / {en} | on 0.25 s · off 0.25 s ×N, then off 1.2 s, forever | — "
                f"| `{rhythm(c1)} …`: a long lead-in, then N short beats (N = 3: "
                f"{describe_tune(c3)}) |")
    return "\n".join(rows) + "\n"
