"""What a remote party can make a daemon log is paced per kind of line (xephang.daemon.PacedLog):
a board's junk within the hub's flood guard was a warning each, ~1.7 million lines a day, and
journald's limit per service then hides the lines a technician needs."""

from __future__ import annotations

import io
import logging

from xephang.daemon import LOG_BURST, LOG_PER_MINUTE, PacedLog, setup_logging


def _record(msg: str, *args: object, level: int = logging.WARNING, name: str = "hubd.main") -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args, None)


def test_one_kind_of_line_is_held_back_past_its_pace_and_the_next_one_says_how_many():
    now = [1000.0]
    paced = PacedLog(clock=lambda: now[0])
    kind = "dropped request on %s (%s): %s; payload %r"
    passed = [paced.filter(_record(kind, f"t/{i}", "bad-json", "x", b"junk")) for i in range(LOG_BURST + 500)]
    assert passed.count(True) == LOG_BURST  # the rest counted, not written
    # meanwhile another kind of line, and any error, is written
    assert paced.filter(_record("refused %s from %s", "call-next", "counter-1"))
    assert paced.filter(_record(kind, "t/x", "bad-json", "x", b"junk", level=logging.ERROR))
    now[0] += 60 / LOG_PER_MINUTE  # one more may go: it says how many were held back
    r = _record(kind, "t/last", "bad-json", "x", b"junk")
    assert paced.filter(r) and r.getMessage().endswith("[500 more like this not logged]")
    assert not paced.filter(_record(kind, "t/next", "bad-json", "x", b"junk"))


def test_the_daemons_logging_paces_every_line_it_writes(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr("sys.stderr", out)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging("INFO")
        log = logging.getLogger("hubd.main")
        for i in range(LOG_BURST + 50):
            log.warning("dropped request on %s (%s)", f"t/{i}", "bad-json")
        log.error("ledger commit failed: %s", "disk full")
        lines = out.getvalue().splitlines()
        assert sum("dropped request" in line for line in lines) == LOG_BURST
        assert "ledger commit failed: disk full" in lines[-1]
    finally:
        for h in root.handlers[:]:
            root.removeHandler(h)
        for h in handlers:  # as pytest had it
            root.addHandler(h)
        root.setLevel(level)
