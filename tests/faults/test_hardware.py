"""Hardware faults through the fakes, with the daemons as processes: no ghost number, the right
alert retained, one ticket for a stuck button, a board with no screen says so."""

from __future__ import annotations

import pytest

from xephang_faults import scenarios as S

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def test_paper_out_mid_ticket_printer_gone_stuck_button_no_screen(tmp_path):
    t, f = S.hardware(tmp_path)
    assert f["voided_mid"], "the number of the half-printed ticket must be voided"
    assert f["issued_while_out"] == 0 and f["issued_while_offline"] == 0  # no number without paper
    assert f["paper_back"] and f["offline_alert"] and f["printer_back"]
    assert f["stuck_tickets"] == 1
    assert f["printed"] == f["books"].by_state.get("waiting", 0)  # every waiting number is on paper
    assert f["display_alert"] and f["display_exit"] not in (None, 0)
    assert f["hub_alive"]
    assert (t.lost, t.duplicates) == (0, 0)


def test_no_audio_device_at_boot_the_speaker_stays_up_with_an_alert(tmp_path):
    t, f = S.audio_gone(tmp_path)
    assert f["announcer_alive"], f"announcerd exited with {f['exit']}"
    assert f["audio_alert"]


def test_the_speaker_loses_its_device_mid_run_holds_the_call_and_says_it_when_back(tmp_path):
    t, f = S.audio_gone_mid_run(tmp_path, rounds=2)
    assert f["alive"], "announcerd must stay up without its device"
    for r in f["rounds"]:
        assert r == {"said_before": True, "alert": True, "held": True, "said_after": True, "cleared": True}, f
    assert (t.lost, t.duplicates) == (0, 0) and f["wavs"] == t.operations == 4
