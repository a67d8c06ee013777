"""The highest number of each service this dispenser printed or saw on the hall, per service day,
kept on its own card (``numbers-seen.json`` in its state folder).

Sent with every issue request (``IssueTicket.seen_day``/``seen_number``): a hub whose ledger began
today (its card replaced) goes on after them instead of printing 1001 for a second citizen, who
would then both walk up when the speaker calls it. The hall state tells a dispenser what the other
dispensers printed; its own replies tell it what it printed when the hall state has not come (the
broker is on the hub's card too: its retained states die with it). Kept on the card because a
power cut that kills the hub's card restarts every dispenser too.

The record keeps the last ``DAYS_KEPT`` service days apart, and sends the numbers of the day the
hub last said: a hub whose clock ran behind (a Pi without its clock) said yesterday for a while, and
a single record then lost today's numbers to it (a drill).

Written only when a number goes up (a few hundred small writes a day), replaced atomically; a file
that cannot be read or written is a warning and the record goes on in memory.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

log = logging.getLogger(__name__)

FILE = "numbers-seen.json"
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")  # fullmatch: "$" let a day ending in a newline through
MAX_SERVICES = 64  # a record bigger than any site: a hall state from a broken hub cannot grow it for ever
DAYS_KEPT = 3
MAX_FILE_BYTES = 64 * 1024  # a record is a few hundred bytes


def is_day(day: object) -> bool:
    return isinstance(day, str) and _DAY.fullmatch(day) is not None


class SeenNumbers:
    def __init__(self, state_dir: Path | None, *, read_only: bool = False) -> None:
        """``read_only``: ``--check`` reads the record and never writes it."""
        self.path = state_dir / FILE if state_dir is not None else None
        self.read_only = read_only
        self.day = ""  # the service day the hub said last (the one sent)
        self.days: dict[str, dict[str, int]] = {}
        self._load()

    @property
    def numbers(self) -> dict[str, int]:
        return self.days.get(self.day, {})

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            with open(self.path, "rb") as f:
                raw_bytes = f.read(MAX_FILE_BYTES + 1)
            if len(raw_bytes) > MAX_FILE_BYTES:
                raise ValueError(f"over {MAX_FILE_BYTES} bytes")
            raw = json.loads(raw_bytes.decode("utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nesting thousands deep
            log.warning("%s cannot be read (%s): starting a new record of today's numbers", self.path,
                        type(exc).__name__ if isinstance(exc, RecursionError) else exc)
            return
        days = raw.get("days") if isinstance(raw, dict) else None
        if not isinstance(days, dict) or not is_day(raw.get("day")):
            log.warning("%s is not a record of today's numbers: starting a new one", self.path)
            return
        for day in sorted((d for d in days if is_day(d)), reverse=True)[:DAYS_KEPT]:
            numbers = days[day]
            if isinstance(numbers, dict):
                self.days[day] = {k: v for k, v in list(numbers.items())[:MAX_SERVICES]
                                  if isinstance(k, str) and type(v) is int and 0 <= v <= 9999}
        self.day = raw["day"] if raw["day"] in self.days else ""

    def seen(self, service: str) -> tuple[str, int] | None:
        """(day, number) to send with an issue request of ``service``, or None."""
        n = self.numbers.get(service)
        return (self.day, n) if self.day and n is not None else None

    def note(self, day: str, numbers: dict[str, int]) -> bool:
        """Numbers printed on ``day``, the hub's service day (which becomes the one sent); True when
        the record changed. Each day's numbers are kept apart: a hub that says an earlier day (its
        clock behind) or a later one (ahead) loses no other day's."""
        if not is_day(day):
            return False
        changed = day != self.day
        self.day = day
        mine = self.days.setdefault(day, {})
        for service, n in numbers.items():
            if not (0 <= n <= 9999) or n <= mine.get(service, -1):
                continue
            if service not in mine and len(mine) >= MAX_SERVICES:
                continue
            mine[service] = n
            changed = True
        for old in sorted(self.days, reverse=True)[DAYS_KEPT:]:
            if old != day:
                del self.days[old]
        if changed:
            self._save()
        return changed

    def _save(self) -> None:
        if self.path is None or self.read_only:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.unlink(missing_ok=True)  # a link left in its place is not followed: a new file
            with open(tmp, "x", encoding="utf-8") as f:  # on the card before it replaces the last: a power cut
                f.write(json.dumps({"day": self.day, "days": self.days}, sort_keys=True))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("today's numbers not kept in %s (%s): kept in memory", self.path, exc)
