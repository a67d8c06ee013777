"""The dispenser's record of today's highest numbers (ticketd/seen.py), on its own."""

from __future__ import annotations

import json

from ticketd.seen import FILE, MAX_SERVICES, SeenNumbers


def test_numbers_only_go_up_and_another_day_earlier_too_starts_a_new_record(tmp_path):
    r = SeenNumbers(tmp_path)
    assert r.seen("ho-tich") is None
    assert r.note("2026-11-23", {"ho-tich": 1004}) and not r.note("2026-11-23", {"ho-tich": 1002})
    assert r.seen("ho-tich") == ("2026-11-23", 1004)
    assert json.loads((tmp_path / FILE).read_text()) == {"day": "2026-11-23", "numbers": {"ho-tich": 1004}}
    # a hub whose clock ran a day ahead, then was put right: the record follows it back
    assert r.note("2026-11-24", {"ho-tich": 1001})
    assert r.note("2026-11-23", {"ho-tich": 1006}) and r.seen("ho-tich") == ("2026-11-23", 1006)
    assert SeenNumbers(tmp_path).seen("ho-tich") == ("2026-11-23", 1006)  # kept on the card
    assert not r.note("23/11/2026", {"ho-tich": 1100}) and r.seen("ho-tich")[1] == 1006


def test_a_record_that_cannot_be_read_or_is_odd_starts_again_and_check_writes_nothing(tmp_path):
    (tmp_path / FILE).write_text(json.dumps({"day": "2026-11-23", "numbers": {
        "ho-tich": 1004, "x": "1005", "y": 1.5, "z": True, "w": 10**6, **{f"s{i}": i for i in range(200)}}}))
    r = SeenNumbers(tmp_path, read_only=True)
    assert r.seen("ho-tich") == ("2026-11-23", 1004)
    assert all(r.seen(k) is None for k in ("x", "y", "z", "w"))
    assert len(r.numbers) <= MAX_SERVICES
    before = (tmp_path / FILE).read_text()
    r.note("2026-11-23", {"ho-tich": 1010})
    assert (tmp_path / FILE).read_text() == before  # --check reads, never writes
    for junk in ("{not json", "[1, 2]", '{"day": 5, "numbers": {}}', ""):
        (tmp_path / FILE).write_text(junk)
        assert SeenNumbers(tmp_path).seen("ho-tich") is None, junk
    (tmp_path / FILE).unlink()
    (tmp_path / FILE).mkdir()  # not a file: a warning, and the record lives in memory
    r = SeenNumbers(tmp_path)
    assert r.note("2026-11-23", {"ho-tich": 1001}) and r.seen("ho-tich") == ("2026-11-23", 1001)
