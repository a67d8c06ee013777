"""The highest number of each service this dispenser printed or saw on the hall today, kept on
its own card (``numbers-seen.json`` in its state folder).

Sent with every issue request (``IssueTicket.seen_day``/``seen_number``): a hub whose ledger lost
today's numbers (its card replaced, a copy restored) goes on after them instead of printing 1001
for a second citizen, who would then both walk up when the speaker calls it. The hall state tells
a dispenser what the other dispensers printed; its own replies tell it what it printed when the
hall state has not come (the broker is on the hub's card too: its retained states die with it).
Kept on the card because a power cut that kills the hub's card restarts every dispenser too.

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
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_SERVICES = 64  # a record bigger than any site: a hall state from a broken hub cannot grow it for ever


class SeenNumbers:
    def __init__(self, state_dir: Path | None, *, read_only: bool = False) -> None:
        """``read_only``: ``--check`` reads the record and never writes it."""
        self.path = state_dir / FILE if state_dir is not None else None
        self.read_only = read_only
        self.day = ""
        self.numbers: dict[str, int] = {}
        self._load()

    def _load(self) -> None:
        if self.path is None:
            return
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("%s cannot be read (%s): starting a new record of today's numbers", self.path, exc)
            return
        day, numbers = (raw.get("day"), raw.get("numbers")) if isinstance(raw, dict) else (None, None)
        if not isinstance(day, str) or not _DAY.match(day) or not isinstance(numbers, dict):
            log.warning("%s is not a record of today's numbers: starting a new one", self.path)
            return
        self.day = day
        self.numbers = {k: v for k, v in list(numbers.items())[:MAX_SERVICES]
                        if isinstance(k, str) and type(v) is int and 0 <= v <= 9999}

    def seen(self, service: str) -> tuple[str, int] | None:
        """(day, number) to send with an issue request of ``service``, or None."""
        n = self.numbers.get(service)
        return (self.day, n) if self.day and n is not None else None

    def note(self, day: str, numbers: dict[str, int]) -> bool:
        """Numbers printed on ``day`` (the hub's service day); True when the record changed. Another
        day starts a new record, an earlier one too: a hub whose clock once ran a day ahead would
        otherwise have switched the record off until that date came."""
        if not _DAY.match(day):
            return False
        changed = day != self.day
        if changed:
            self.day, self.numbers = day, {}
        for service, n in numbers.items():
            if not (0 <= n <= 9999) or n <= self.numbers.get(service, -1):
                continue
            if service not in self.numbers and len(self.numbers) >= MAX_SERVICES:
                continue
            self.numbers[service] = n
            changed = True
        if changed:
            self._save()
        return changed

    def _save(self) -> None:
        if self.path is None or self.read_only:
            return
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:  # on the card before it replaces the last: a power cut
                f.write(json.dumps({"day": self.day, "numbers": self.numbers}, sort_keys=True))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("today's numbers not kept in %s (%s): kept in memory", self.path, exc)
