"""Words that came over the bus, made fit for a technician's terminal.

A board's password writes that board's status, alerts, config state and acks; the hub's writes
events and reports. Printed as they came, an escape sequence in them (ESC, or a one-character C1
CSI such as U+009B) clears the screen, rewrites a line or sets the clipboard. Every tool prints
such words through :func:`shown` (text) or :func:`shown_json` (JSON); Vietnamese stays as it reads.
The bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069) go the same way: in a
terminal that honours them they turn the rest of a line around, so "counter-1 online" can be made
to read as something else ("Trojan Source"); no Vietnamese or English word needs them.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

from xephang.checktext import both

BIDI_CONTROLS = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))  # embeddings, overrides, isolates
_CONTROLS = dict.fromkeys([*range(0x20), *range(0x7F, 0xA0), *BIDI_CONTROLS], "?")  # C0, DEL, C1, bidi
_CONTROLS_BUT_NEWLINE = {c: v for c, v in _CONTROLS.items() if c != ord("\n")}
# json.dumps(ensure_ascii=False) escapes C0 but leaves DEL and C1 raw; escaped, the JSON stays the same value
_JSON_LEFT_RAW = {c: f"\\u{c:04x}" for c in (*range(0x7F, 0xA0), *BIDI_CONTROLS)}


def shown(text: str, *, lines: bool = False) -> str:
    """``text`` for a terminal: every control character (C0, DEL, C1, bidi) as '?', so no escape sequence
    in it can clear, rewrite or script the screen. ``lines`` keeps the newlines of a multi-line text
    whose lines we laid out ourselves (a table)."""
    return text.translate(_CONTROLS_BUT_NEWLINE if lines else _CONTROLS)


def shown_json(value: Any, *, indent: int | None = None, default: Callable[[Any], Any] | None = None) -> str:
    """``value`` as JSON for a terminal: Vietnamese as it reads, every control character escaped
    (``\\u001b``, ``\\u009b``, ``\\u202e``), so the text still parses to exactly the same value."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=default).translate(_JSON_LEFT_RAW)


_NOT_IN_A_LINE = frozenset(_CONTROLS)
# the same characters as a regex class, for pydantic patterns of one-line text (the contract's
# PlainText, the catalogue's lines): a field refused at the edge instead of shown as '?'
NOT_IN_A_LINE_CLASS = r"\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"


def one_line(text: str) -> str:
    """``text`` when it is one line a person can read as written: no control character (newline,
    tab, ESC, C1) and no text-direction override. For the names a site file and the head's pages
    give (services, counters, officers, the centre): they reach tickets, the board, the report
    tables, CSV/XLSX files and terminals, where a newline forges a row and U+202E turns a line
    around. Raises ``ValueError`` naming the first such character and where it is."""
    for i, ch in enumerate(text):
        if ord(ch) in _NOT_IN_A_LINE:
            raise ValueError(both(f"phải là một dòng chữ thường: U+{ord(ch):04X} ở ký tự thứ {i + 1} "
                                  "(ký tự điều khiển hoặc đảo chiều chữ) không được dùng",
                                  f"must be one line of plain text: U+{ord(ch):04X} at character {i + 1} "
                                  "(a control character or a text-direction override) is not allowed"))
    return text


TECH_PORT_VARS = ("XEPHANG_TECH_PORT", "XEPHANG_BROKER__PORT")


def tech_port_default() -> str:
    """The technicians' listener a tool connects to unless ``--port`` says: ``$XEPHANG_TECH_PORT``,
    ``$XEPHANG_BROKER__PORT`` or 1884. Returned as text: argparse checks it with :func:`port_number`
    only when ``--port`` is not given, so a bad variable is a usage error naming it, not a traceback
    of every command (``xephang --help`` included)."""
    return next((os.environ[v] for v in TECH_PORT_VARS if os.environ.get(v)), "1884")


def port_number(text: str) -> int:
    """argparse ``type``: a TCP port, 1–65535."""
    try:
        port = int(text.strip())
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"không phải số cổng / not a port number (1–65535): {text!r} (from --port, or ${' or $'.join(TECH_PORT_VARS)})")
    return port
