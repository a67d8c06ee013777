"""`xephang demo` in a short form: every daemon a process, a real secured broker, citizens and
officers pressing simulated keys — and the ledger agrees with everything the simulation did."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from xephang_ops.mosquitto import find_mosquitto

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SPEED = 120.0
FINAL_STATES = {"done", "waiting", "called", "no-show", "voided", "expired"}


def demo_cmd(out: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "xephang_ops.cli", "demo", "--out", str(out), "--speed", str(SPEED), *args]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone for our purposes only once reaped: look at its state
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def assert_no_strays(out: Path) -> None:
    pids = json.loads((out / "processes.json").read_text())
    alive = {n: p for n, p in pids.items() if not gone(p)}
    assert not alive, f"daemons still running after the demo: {alive}"


@pytest.fixture(scope="module")
def short_day(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    if not find_mosquitto():
        pytest.skip("mosquitto is not installed")
    out = tmp_path_factory.mktemp("demo") / "run"
    t0 = time.monotonic()
    res = subprocess.run(demo_cmd(out, "--start", "08:30", "--minutes", "40", "--seed", "3", "--load", "1.5"),
                         capture_output=True, text=True, timeout=110)
    res.wall_s = time.monotonic() - t0  # type: ignore[attr-defined]
    return out, res


def test_a_short_day_runs_end_to_end_and_says_where_everything_is(short_day):
    out, res = short_day
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert not s["skipped"], s["skipped"]  # every daemon came up
    assert s["presses_refused"] == 0  # the simulation only pressed keys the ACL lets it press
    assert "Tổng cộng" in res.stdout and (out / "report.json").exists()  # the day's report, printed and kept
    for what in ("vé / tickets (PNG)", "bảng / board frames (PNG)", "loa / announcements (WAV)"):
        assert what in res.stdout
    assert s["files"]["tickets"] == s["accounting"]["tickets"]  # one printed ticket per issued number
    assert s["files"]["frames"] > 0 and s["files"]["wavs"] > 0
    # the speaker's voice pack where the docs say a node keeps it, and no CRITICAL line in a normal run
    assert (out / "state" / "announcer-hall" / "voice" / "espeak-vi-north" / "manifest.json").exists()
    assert not [p.name for p in (out / "logs").glob("*.log") if "CRITICAL" in p.read_text(errors="replace")]
    assert_no_strays(out)


def test_the_command_the_demo_prints_for_its_report_gives_the_same_report(short_day, tmp_path):
    """docs/demo.md pointed at `xephang report --ledger … --site-file …`: on the demo's ledger that
    ends "today" at the real clock, hours before or after the simulated day, and every counter hour
    came out "outside opening hours" (a newcomer's walk). The demo prints the command with its own
    end (``--now``), and that command gives its report (but for when it was made)."""
    import shlex

    out, res = short_day
    (line,) = [x for x in res.stdout.splitlines() if "báo cáo này lại / this report again:" in x]
    cmd = shlex.split(line.split("this report again:", 1)[1])
    assert cmd[:2] == ["xephang", "report"] and "--now" in cmd
    got = tmp_path / "again.json"
    r = subprocess.run([sys.executable, "-m", "xephang_ops.cli", *cmd[1:], "--json", str(got), "-q"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    mine, again = json.loads((out / "report.json").read_text()), json.loads(got.read_text())
    for rep in (mine, again):
        for k in [k for k in rep if k.startswith("generated")]:
            del rep[k]
    assert again == mine


def test_every_issued_ticket_is_accounted_for_in_the_ledger(short_day):
    from xephang_reports.build import open_readonly

    out, _ = short_day
    s = json.loads((out / "summary.json").read_text())
    db = open_readonly(s["ledger"])
    states = dict(db.execute("SELECT state, COUNT(*) FROM tickets GROUP BY state").fetchall())
    total = sum(states.values())
    assert set(states) <= FINAL_STATES
    assert total >= 12, states  # a morning peak makes a crowd
    # every service-button press became exactly one ticket, and the simulation saw each one issued
    assert total == s["sim"]["presses"]["ticket"] == s["sim"]["issued"]
    assert s["sim"]["priority_issued"] == db.execute("SELECT COUNT(*) FROM tickets WHERE priority_group IS NOT NULL").fetchone()[0] > 0
    # what the simulation watched happen is what the ledger recorded, event by event
    ledger_events = dict(db.execute("SELECT kind, COUNT(*) FROM events GROUP BY kind").fetchall())
    assert ledger_events == s["sim"]["events"]
    # the day had what the demo promises: a no-show, a recall, a pause, a transfer, ratings
    visits = dict(db.execute("SELECT outcome, COUNT(*) FROM visits GROUP BY outcome").fetchall())
    assert visits.get("no-show", 0) >= 1 and visits.get("transferred", 0) >= 1 and visits.get("served", 0) >= 5
    assert db.execute("SELECT SUM(recalls) FROM visits").fetchone()[0] >= 1
    assert db.execute("SELECT COUNT(*) FROM pauses WHERE ended_at IS NOT NULL").fetchone()[0] >= 1
    assert db.execute("SELECT COUNT(*) FROM tickets WHERE rating IS NOT NULL").fetchone()[0] >= 1
    assert s["sim"]["gave_up"] == 0  # no press of an officer went unanswered


def test_no_ticket_is_called_twice(short_day):
    from xephang_reports.build import open_readonly

    out, _ = short_day
    db = open_readonly(json.loads((out / "summary.json").read_text())["ledger"])
    calls = dict(db.execute("SELECT ticket_id, COUNT(*) FROM events WHERE kind='called' GROUP BY ticket_id").fetchall())
    for tid, requeued, transfers, nvisits in db.execute(
            "SELECT t.id, t.requeued, t.transfers, (SELECT COUNT(*) FROM visits v WHERE v.ticket_id=t.id) FROM tickets t"):
        # a ticket is called again only after it went back to a queue (no-show requeue, transfer)
        assert calls.get(tid, 0) == nvisits <= 1 + requeued + transfers, tid
    # one counter serves one citizen at a time, one citizen stands at one counter at a time
    for key in ("counter", "ticket_id"):
        rows = db.execute(f"SELECT {key}, called_at, ended_at FROM visits ORDER BY {key}, called_at").fetchall()
        for (k1, _, end1), (k2, start2, _) in zip(rows, rows[1:], strict=False):
            if k1 == k2:
                assert end1 is not None and end1 <= start2, (key, k1)


def test_waits_follow_the_simulated_clock(short_day):
    from xephang_reports.build import open_readonly

    out, _ = short_day
    s = json.loads((out / "summary.json").read_text())
    start, end = s["sim_start"], s["sim_end"]
    # the hub stamped everything with the simulation's clock (08:30 today, ×120), not the wall clock
    assert s["clock_skew_s"] < 2 * SPEED  # under two real seconds of transport between hub and simulation
    db = open_readonly(s["ledger"])
    for issued, called, finished in db.execute("SELECT issued_at, called_at, finished_at FROM tickets"):
        assert start - 60 <= issued <= end + 60
        assert called is None or issued <= called <= end + 60
        assert finished is None or called is not None and called <= finished <= end + 60
    # the report's waits are the ledger's waits
    rep = json.loads((out / "report.json").read_text())
    waits = [r[0] for r in db.execute("SELECT called_at - issued_at FROM tickets WHERE called_at IS NOT NULL")]
    assert rep["totals"]["issued"] == s["accounting"]["tickets"]
    assert rep["totals"]["wait"]["n"] == len(waits)
    assert rep["totals"]["wait"]["mean"] == pytest.approx(sum(waits) / len(waits), abs=0.1)
    assert 0 < rep["totals"]["wait"]["mean"] < 40 * 60  # nobody waits longer than the simulated span


def test_ctrl_c_stops_every_process_and_another_demo_starts_at_once(tmp_path, short_day):
    first = tmp_path / "first"
    p = subprocess.Popen(demo_cmd(first, "--minutes", "600"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert p.stdout is not None
        for line in p.stdout:  # wait until the simulated day is under way
            if "công dân / citizens planned" in line:
                break
        time.sleep(1.0)  # a little of the day, so presses are in flight when Ctrl-C comes
        p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, rest[-2000:]
    assert "stopped on request" in rest
    assert_no_strays(first)
    # the second one believes there is a desktop (DISPLAY set, but no X server answers) and a sound
    # card (--speaker card, but SDL cannot open any): the board exits at start, the speaker stays up
    # with its audio-missing alert; both go on simulated hardware, so frames and WAVs are written
    # … and with --keep its centre stays up after the day and its report, until Ctrl-C (a newcomer could
    # not compare the final web report with the printed one: everything stopped as the report printed)
    env = {**os.environ, "DISPLAY": ":99", "SDL_AUDIODRIVER": "no-such-driver"}
    p = subprocess.Popen(demo_cmd(tmp_path / "second", "--start", "09:00", "--minutes", "6", "--speaker", "card",
                                  "--keep"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    said: list[str] = []
    try:
        assert p.stdout is not None
        for line in p.stdout:
            said.append(line)
            if "the centre keeps running" in line:
                break
        base = re.search(r"(http://127\.0\.0\.1:\d+)/head", "".join(said))
        assert base and "Tổng cộng" in "".join(said), "".join(said)[-2000:]  # the report came first
        with urllib.request.urlopen(base[1] + "/hall", timeout=10) as r:  # the pages still answer
            assert r.status == 200
        assert p.poll() is None
        p.send_signal(signal.SIGINT)
        rest, _ = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
    out = "".join(said) + rest
    assert p.returncode == 0, out[-2000:]
    assert out.count("báo cáo này lại / this report again") == 1  # one report, not a second one at the stop
    assert "display-hall: không mở được màn hình" in out
    assert "announcer-hall: không mở được màn hình/loa thật / no real screen or speaker (alert audio-missing)" in out
    s = json.loads((tmp_path / "second" / "summary.json").read_text())
    assert s["live"] == [] and not s["skipped"] and s["files"]["frames"] > 0 and s["files"]["wavs"] > 0
    assert_no_strays(tmp_path / "second")


@pytest.mark.parametrize(("env", "cards", "headless", "want"), [
    ({"DISPLAY": ":0"}, " 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n", False, (True, True)),
    ({"WAYLAND_DISPLAY": "wayland-0"}, None, False, (True, False)),
    ({}, "--- no soundcards ---\n", False, (False, False)),
    ({"DISPLAY": ":0"}, " 0 [PCH ]: HDA-Intel\n", True, (False, False)),
])
def test_the_board_uses_a_window_and_the_speaker_only_when_the_machine_has_them(env, cards, headless, want):
    from xephang_ops.demo import presentation

    assert presentation(env, asound_cards=cards, headless=headless) == want
