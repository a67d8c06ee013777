"""The dispenser's record of today's highest numbers (ticketd/seen.py), on its own."""

from __future__ import annotations

import json

from ticketd.seen import DAYS_KEPT, FILE, MAX_FILE_BYTES, MAX_SERVICES, SeenNumbers


def test_numbers_only_go_up_and_each_day_is_kept_apart(tmp_path):
    r = SeenNumbers(tmp_path)
    assert r.seen("ho-tich") is None
    assert r.note("2026-11-23", {"ho-tich": 1004}) and not r.note("2026-11-23", {"ho-tich": 1002})
    assert r.seen("ho-tich") == ("2026-11-23", 1004)
    assert json.loads((tmp_path / FILE).read_text()) == {"day": "2026-11-23", "days": {"2026-11-23": {"ho-tich": 1004}}}
    # a hub whose clock ran behind says yesterday for a while: today's numbers are not lost to it (a drill)
    assert r.note("2026-11-22", {"ho-tich": 1001}) and r.seen("ho-tich") == ("2026-11-22", 1001)
    assert r.note("2026-11-23", {}) and r.seen("ho-tich") == ("2026-11-23", 1004)
    # … nor to one a day ahead
    assert r.note("2026-11-24", {"dat-dai": 2001}) and r.seen("ho-tich") is None
    assert r.note("2026-11-23", {"ho-tich": 1006}) and r.seen("ho-tich") == ("2026-11-23", 1006)
    assert SeenNumbers(tmp_path).seen("ho-tich") == ("2026-11-23", 1006)  # kept on the card
    for d in range(25, 30):
        r.note(f"2026-11-{d}", {"ho-tich": 1000 + d})
    assert len(r.days) == DAYS_KEPT and r.seen("ho-tich") == ("2026-11-29", 1029)
    # a day ending in a newline (Python's "$" let it through, and the contract then refused every
    # request: the dispenser printed nothing until restarted)
    assert not r.note("2026-11-29\n", {"ho-tich": 1100}) and r.seen("ho-tich") == ("2026-11-29", 1029)


def test_a_record_that_cannot_be_read_or_is_odd_starts_again_and_check_writes_nothing(tmp_path):
    (tmp_path / FILE).write_text(json.dumps({"day": "2026-11-23", "days": {"2026-11-23": {
        "ho-tich": 1004, "x": "1005", "y": 1.5, "z": True, "w": 10**6, **{f"s{i}": i for i in range(200)}}}}))
    r = SeenNumbers(tmp_path, read_only=True)
    assert r.seen("ho-tich") == ("2026-11-23", 1004)
    assert all(r.seen(k) is None for k in ("x", "y", "z", "w"))
    assert len(r.numbers) <= MAX_SERVICES
    before = (tmp_path / FILE).read_text()
    r.note("2026-11-23", {"ho-tich": 1010})
    assert (tmp_path / FILE).read_text() == before  # --check reads, never writes
    for junk in ("{not json", "[1, 2]", '{"day": 5, "days": {}}', "", '{"day": "2026-11-23\\n", "days": {}}',
                 "[" * 100_000, " " * (MAX_FILE_BYTES + 1)):
        (tmp_path / FILE).write_text(junk)
        assert SeenNumbers(tmp_path).seen("ho-tich") is None, junk[:20]  # a warning, never a crash at start
    (tmp_path / FILE).unlink()
    (tmp_path / FILE).mkdir()  # not a file: a warning, and the record lives in memory
    r = SeenNumbers(tmp_path)
    assert r.note("2026-11-23", {"ho-tich": 1001}) and r.seen("ho-tich") == ("2026-11-23", 1001)


def test_a_link_left_where_the_record_is_written_is_not_followed(tmp_path):
    target = tmp_path / "elsewhere"
    target.write_text("keep me")
    (tmp_path / (FILE + ".tmp")).symlink_to(target)
    SeenNumbers(tmp_path).note("2026-11-23", {"ho-tich": 1001})
    assert target.read_text() == "keep me"
    assert json.loads((tmp_path / FILE).read_text())["days"] == {"2026-11-23": {"ho-tich": 1001}}
