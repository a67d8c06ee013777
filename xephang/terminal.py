"""Words that came over the bus, made fit for a technician's terminal.

A board's password writes that board's status, alerts, config state and acks; the hub's writes
events and reports. Printed as they came, an escape sequence in them (ESC, or a one-character C1
CSI such as U+009B) clears the screen, rewrites a line or sets the clipboard. Every tool prints
such words through :func:`shown` (text) or :func:`shown_json` (JSON); Vietnamese stays as it reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

_CONTROLS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0)], "?")  # C0, DEL, C1
_CONTROLS_BUT_NEWLINE = {c: v for c, v in _CONTROLS.items() if c != ord("\n")}
# json.dumps(ensure_ascii=False) escapes C0 but leaves DEL and C1 raw; escaped, the JSON stays the same value
_JSON_LEFT_RAW = {c: f"\\u{c:04x}" for c in range(0x7F, 0xA0)}


def shown(text: str, *, lines: bool = False) -> str:
    """``text`` for a terminal: every control character (C0, DEL, C1) as '?', so no escape sequence
    in it can clear, rewrite or script the screen. ``lines`` keeps the newlines of a multi-line text
    whose lines we laid out ourselves (a table)."""
    return text.translate(_CONTROLS_BUT_NEWLINE if lines else _CONTROLS)


def shown_json(value: Any, *, indent: int | None = None, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as JSON for a terminal: Vietnamese as it reads, every control character escaped
    (``\\u001b``, ``\\u009b``), so the text still parses to exactly the same value."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=default).translate(_JSON_LEFT_RAW)
