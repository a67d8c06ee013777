"""A two-day story at the Tường Linh centre, written into a real ledger with known times.

The engine and the ledger are the hub's own (``QueueEngine`` + ``Ledger``); only the clock is
ours: every command gets its time. Minute 0 is Monday 23/11/2026 08:00 in Vietnam.

Day 1 (service day 2026-11-23)
  0  A issued (Hộ tịch)           5  counter 1 calls A (wait 5)
  1  B issued (Hộ tịch)           6  E voided
  2  C issued (Đất đai)           7  counter 3 calls C (wait 5)
  3  D issued (Chứng thực)        8  counter 2 calls D (wait 5)
  4  E issued (Hộ tịch)          12  counter 1 Finish A (service 7), 12.5 A rated 5
 13  counter 1 calls B (wait 12) 15  counter 3 transfers C to Hộ tịch (keeps arrival 2)
 16  counter 2: D no-show, back in the queue (requeue once)
 17  counter 2 calls D again     18  D no-show again: final
 20  counter 2 calls C           21  counter 1 pauses while serving B: B ends inferred (8)
 25  counter 2 Next, queue empty: C ends inferred (5); 26 a rating for C is refused (an
     inferred finish opens no rating window: the box was never told the service ended)
 30  counter 1 resumes (paused 9)
480  G issued (Văn hoá – Xã hội), never called: expires at the reset
510  H issued (Đất đai)          515 counter 3 calls H (wait 5), never finished: closed by the reset
525  counter 4 pauses (16:45), never resumed: counted until closing time 17:00
     (the next command comes 7 hours later: a quiet evening, not a clock jump — the hub tells
     jumps by its monotonic clock — so G and H are not flagged)
950  F issued (Chứng thực) at 23:50   970 counter 2 calls F at 00:10 (wait 20 > target 10)
980  counter 2 Finish F (service 10) — still service day 2026-11-23 (reset at 04:00); 981 F rated 3
Day 2 (2026-11-24)
1440 I issued (Hộ tịch)          1442 counter 1 calls I (wait 2)   1446 Finish (4)   1447 rated 1
1500 J issued (Chứng thực)       1490 the clock jumps back: counter 2 calls J (wait -10, flagged)
1495 counter 2 Finish J (service 5, flagged)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from hubd.engine import CommandError, QueueEngine
from hubd.ledger import Ledger
from xephang.clock import VN_TZ
from xephang.site import Site

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=VN_TZ).timestamp()
NOW = T0 + 1560 * 60  # Tuesday 24/11 10:00


def at(minute: float) -> float:
    return T0 + minute * 60


@dataclass
class Centre:
    """The hub's engine writing into a real ledger file, with times we choose."""

    engine: QueueEngine
    ledger: Ledger
    path: Path

    def do(self, command: str, *args: object, minute: float) -> dict:
        out = getattr(self.engine, command)(*args, now=at(minute))
        with self.ledger.transaction():
            self.ledger.write(self.engine, out)
        return out.data

    def issue(self, service: str, minute: float) -> int:
        return self.do("issue", service, None, minute=minute)["ticket"]["id"]


def open_centre(site: Site, path: Path) -> Centre:
    return Centre(QueueEngine(site), Ledger(path), path)


def play_story(c: Centre) -> dict[str, int]:
    """The story of the module docstring; returns ticket ids by letter."""
    t = {}
    t["A"] = c.issue("ho-tich", 0)
    t["B"] = c.issue("ho-tich", 1)
    t["C"] = c.issue("dat-dai", 2)
    t["D"] = c.issue("chung-thuc", 3)
    t["E"] = c.issue("ho-tich", 4)
    assert c.do("call_next", 1, minute=5)["ticket"]["id"] == t["A"]
    c.do("void", t["E"], "left", minute=6)
    assert c.do("call_next", 3, minute=7)["ticket"]["id"] == t["C"]
    assert c.do("call_next", 2, minute=8)["ticket"]["id"] == t["D"]
    c.do("finish", 1, minute=12)
    c.do("rate", 1, 5, minute=12.5)
    assert c.do("call_next", 1, minute=13)["ticket"]["id"] == t["B"]
    c.do("transfer", 3, "ho-tich", minute=15)
    assert c.do("no_show", 2, minute=16)["requeued"] is True
    assert c.do("call_next", 2, minute=17)["ticket"]["id"] == t["D"]
    assert c.do("no_show", 2, minute=18)["requeued"] is False
    assert c.do("call_next", 2, minute=20)["ticket"]["id"] == t["C"]
    c.do("pause", 1, "nghỉ", minute=21)
    assert c.do("call_next", 2, minute=25)["queue_empty"] is True
    with pytest.raises(CommandError, match="no service just finished"):
        c.do("rate", 2, 3, minute=26)
    c.do("resume", 1, minute=30)
    t["G"] = c.issue("van-hoa-xa-hoi", 480)
    t["H"] = c.issue("dat-dai", 510)
    assert c.do("call_next", 3, minute=515)["ticket"]["id"] == t["H"]
    c.do("pause", 4, "họp", minute=525)
    t["F"] = c.issue("chung-thuc", 950)
    assert c.do("call_next", 2, minute=970)["ticket"]["id"] == t["F"]
    c.do("finish", 2, minute=980)
    c.do("rate", 2, 3, minute=981)
    # day 2
    t["I"] = c.issue("ho-tich", 1440)
    assert c.do("call_next", 1, minute=1442)["ticket"]["id"] == t["I"]
    c.do("finish", 1, minute=1446)
    c.do("rate", 1, 1, minute=1447)
    t["J"] = c.issue("chung-thuc", 1500)
    assert c.do("call_next", 2, minute=1490)["ticket"]["id"] == t["J"]
    c.do("finish", 2, minute=1495)
    return t


@pytest.fixture(scope="module")
def story_ledger(tmp_path_factory: pytest.TempPathFactory, site: Site) -> Path:
    path = tmp_path_factory.mktemp("story") / "ledger.sqlite"
    c = open_centre(site, path)
    play_story(c)
    c.ledger.close()
    return path
