"""`xephang devices`, `press` and `tail` against a real, secured broker."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from xephang_ops.cli import main as xephang
from xephang_ops.tools import describe_event

pytestmark = pytest.mark.broker

R = "xephang/v1/tuong-linh"


def tool(sb, *args: str) -> list[str]:
    return [*args, "--port", str(sb.broker.tech_port), "--password-file", str(sb.files.passwords_dir / "tech.pw")]


def device_line(sb, capsys, node: str) -> str:
    capsys.readouterr()
    assert xephang(tool(sb, "devices", "--wait", "0.3")) == 0
    return next((ln for ln in capsys.readouterr().out.splitlines() if ln.startswith(node + " ")), "")


def until(pred, timeout: float = 15.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = pred()
        if got:
            return got
    raise AssertionError("condition not met in time")


def test_devices_shows_a_node_online_with_its_alerts_then_offline(secured_broker, sample_node, capsys):
    n = sample_node(XEPHANG_SIM="true")
    line = until(lambda: (ln := device_line(secured_broker, capsys, "display-lab")) and "rev 0" in ln and ln)
    assert "trực tuyến" in line and "sample" in line and "0.1.0" in line
    # a technician presses a key of the simulated node; the node shows it as an alert
    capsys.readouterr()
    assert xephang(tool(secured_broker, "press", "display-lab", "next", "--hold", "0.2")) == 0
    assert "pressed next" in capsys.readouterr().out
    until(lambda: "display-missing: Đã nhấn next" in device_line(secured_broker, capsys, "display-lab"))
    n.stop()
    line = until(lambda: (ln := device_line(secured_broker, capsys, "display-lab")) and "MẤT KẾT NỐI" in ln and ln)
    assert "display-lab" in line


def test_press_says_what_the_node_answered_and_fails_when_refused_or_unanswered(secured_broker, sample_node, capsys):
    """`press` used to say "pressed", exit 0, for a key that does not exist, a typo and a node that
    does not exist. Now the node answers, and the tool reports it."""
    sample_node(XEPHANG_SIM="true")
    until(lambda: "trực tuyến" in device_line(secured_broker, capsys, "display-lab"))
    capsys.readouterr()
    assert xephang(tool(secured_broker, "press", "display-lab", "next")) == 0
    assert "pressed next" in capsys.readouterr().out
    for key in ("fly", "nexxt"):
        assert xephang(tool(secured_broker, "press", "display-lab", key)) == 1
        err = capsys.readouterr().err
        assert f"refused {key!r}" in err and "keys: next, recall, finish" in err
    assert xephang(tool(secured_broker, "press", "display-lab", "Bad Key!")) == 1  # not even a key name
    assert "not a key name" in capsys.readouterr().err
    assert xephang(tool(secured_broker, "press", "counter-9", "next", "--timeout", "1")) == 3
    assert "no node of that name has ever connected" in capsys.readouterr().err


def test_press_on_a_node_not_in_sim_mode_is_unanswered(secured_broker, sample_node, capsys):
    sample_node()  # not in sim mode: it does not listen to presses at all
    until(lambda: "trực tuyến" in device_line(secured_broker, capsys, "display-lab"))
    capsys.readouterr()
    assert xephang(tool(secured_broker, "press", "display-lab", "next", "--timeout", "1")) == 3
    assert "does not run in sim mode" in capsys.readouterr().err


def test_press_with_a_board_password_is_refused_by_the_broker(secured_broker, capsys):
    args = ["press", "counter-1", "next", "--port", str(secured_broker.broker.tech_port), "--username", "counter-2",
            "--password-file", str(secured_broker.files.passwords_dir / "counter-2.pw")]
    assert xephang(args) == 4
    assert "is 'counter-2' a technician?" in capsys.readouterr().err


def test_devices_in_english_and_an_empty_site(secured_broker, capsys):
    capsys.readouterr()
    assert xephang(tool(secured_broker, "devices", "--wait", "0.2", "--lang", "en")) == 0
    assert "no node has reported yet" in capsys.readouterr().out


def test_tail_prints_one_vietnamese_line_per_event(secured_broker):
    p = subprocess.Popen([sys.executable, "-m", "xephang_ops.cli", *tool(secured_broker, "tail", "-n", "2")],
                         stdout=subprocess.PIPE, text=True)
    called = {"schema": "xephang.event.ticket.v1", "event_id": "e1", "rev": 7, "at": 1795320000.0, "kind": "called",
              "counter": 2, "ticket": {"id": 5, "day": "2026-11-23", "number": 1023, "display": "1023",
                                       "service": "ho-tich", "issued_at": 1795319000.0}}
    paused = {"schema": "xephang.event.counter.v1", "event_id": "e2", "rev": 8, "at": 1795320060.0, "kind": "paused",
              "counter": 3, "reason": "Họp"}
    try:
        with secured_broker.client("hub") as hub:
            # tail subscribes after it starts: publish until it has seen two events and exits
            end = time.monotonic() + 20
            while p.poll() is None and time.monotonic() < end:
                hub.publish(f"{R}/event/ticket/called", json.dumps(called))
                hub.publish(f"{R}/event/counter/paused", json.dumps(paused))
                time.sleep(0.2)
        out, _ = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0
    lines = out.splitlines()
    assert len(lines) == 2
    # HH:MM:SS in Vietnam time, then the sentence
    assert {ln[10:] for ln in lines} <= {"Mời số 1023 đến quầy 2", "Quầy 3 tạm nghỉ (Họp)"}
    assert all(ln[:8].count(":") == 2 for ln in lines)


@pytest.mark.parametrize(("kind", "extra", "vi"), [
    ("issued", {"people_ahead": 3, "service_name_vi": "Hộ tịch"}, "Cấp số 1023 — Hộ tịch, 3 người chờ trước"),
    ("called", {"counter": 2}, "Mời số 1023 đến quầy 2"),
    ("recalled", {"counter": 2}, "Gọi lại số 1023 đến quầy 2 (lần 1)"),
    ("finished", {"counter": 2, "inferred": True}, "Quầy 2 xong số 1023 (thời điểm suy ra)"),
    ("no-show", {"reason": "requeued"}, "Số 1023 vắng mặt — xếp lại cuối hàng"),
    ("transferred", {"service_name_vi": "Đất đai", "from_service": "ho-tich"}, "Số 1023 chuyển sang Đất đai"),
    ("voided", {"reason": "paper-out"}, "Huỷ số 1023 (paper-out)"),
    # the event does not say the site's scale: the score, not four stars of a guessed five
    ("rated", {"counter": 2, "score": 4}, "Số 1023 đánh giá quầy 2: 4 điểm"),
    ("arrived", {"counter": 2}, "Công dân số 1023 đã đến quầy 2"),
    ("expired", {}, "Số 1023 hết hạn cuối ngày"),
])
def test_every_event_kind_reads_as_a_sentence(kind, extra, vi):
    ev = {"kind": kind, "at": 1795320000.0, "ticket": {"display": "1023", "number": 1023, "recalls": 1}, **extra}
    assert describe_event(ev).endswith(vi)
    assert describe_event(json.dumps(ev).encode(), "en")[10:]  # an English line too


def test_no_ticket_event_of_the_contract_falls_back_to_its_bare_kind():
    """`arrived 2001` in `xephang tail`: a kind the tables lacked (a newcomer's walk)."""
    from xephang.contract import CounterEvent, TicketEvent

    for kind in TicketEvent.KINDS + CounterEvent.KINDS:
        ev = {"kind": kind, "at": 1795320000.0, "ticket": {"display": "1023", "number": 1023}, "counter": 2}
        for lang in ("vi", "en"):
            assert describe_event(ev, lang)[10:] != f"{kind} 1023", (kind, lang)


@pytest.mark.parametrize("cmd", [["devices"], ["press", "counter-1", "next"], ["tail", "-n", "1"],
                                 ["config", "get", "counter-1"]])
def test_a_missing_password_file_is_a_clear_error_not_a_traceback(tmp_path, capsys, cmd):
    assert xephang([*cmd, "--password-file", str(tmp_path / "tech.pw")]) == 2
    err = capsys.readouterr().err
    assert "cannot read the password file" in err and "No such file" in err and "Traceback" not in err


def test_devices_watch_reprints_on_changes_not_on_heartbeats(secured_broker, sample_node, capsys):
    """The sample node sends health twice a second; the table comes again only when something a
    technician watches for changes (here: the node goes offline)."""
    import threading

    n = sample_node(XEPHANG_SIM="true")
    until(lambda: "trực tuyến" in device_line(secured_broker, capsys, "display-lab"))
    p = subprocess.Popen([sys.executable, "-m", "xephang_ops.cli", *tool(secured_broker, "devices", "--watch")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(p.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        until(lambda: any(ln.startswith("display-lab ") for ln in lines))
        health_beats = 0
        with secured_broker.client("tech-lan") as c:  # count the heartbeats the watch sees meanwhile
            c.subscribe(f"{R}/node/display-lab/health")
            end = time.monotonic() + 2.5
            while time.monotonic() < end:
                if c.get(end - time.monotonic()) is not None:
                    health_beats += 1
        assert health_beats >= 4
        assert sum(ln.startswith("display-lab ") for ln in lines) == 1  # only the first table
        n.stop()
        until(lambda: any(ln.startswith("display-lab ") and "MẤT KẾT NỐI" in ln for ln in lines))
        assert sum(ln.startswith("display-lab ") for ln in lines) == 2
    finally:
        p.terminate()
        p.wait(10)


def test_a_boards_words_cannot_drive_the_technicians_terminal(secured_broker, capsys):
    """Counter 1's password writes its own status and alerts, and `xephang devices` prints them in a
    technician's terminal. Escape sequences in them (clear the screen, rewrite lines so the hub reads
    'online', set the clipboard by OSC 52) reached the terminal as they were; now every control
    character is shown as '?', and the rest of the table is intact."""
    from xephang.contract import Alert, NodeStatus

    evil = "\x1b[2J\x1b[H\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\r\nhub online"
    with secured_broker.client("counter-1") as board:
        t = board.topics
        assert board.publish(t.status("counter-1"), NodeStatus(node="counter-1", online=True, session=1,
                                                               role="\x1b[8m", version="\x1b]0;x\x07").to_json(),
                             retain=True) < 128
        assert board.publish(t.alert("counter-1", "counter-config"),
                             Alert(node="counter-1", id="counter-config", message_vi=evil).to_json(), retain=True) < 128
    line = until(lambda: (ln := device_line(secured_broker, capsys, "counter-1")) and "counter-config" in ln and ln)
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in line), repr(line)
    assert "counter-config: ?[2J?[H?]52;c;cm0gLXJmIH4=??31m??hub online" in line


def test_a_boards_answer_to_a_press_cannot_drive_the_technicians_terminal(secured_broker, capsys):
    """A board (its password) refuses a technician's simulated press with a reason of its own, and
    `xephang press` prints it: escape sequences in it reached the terminal; now they are '?'."""
    import threading

    from xephang.contract import SimPress, SimPressAck

    with secured_broker.client("counter-1") as board:
        board.subscribe(board.topics.sim_press("counter-1"))

        def refuse() -> None:
            m = board.get(10)
            if m is not None:
                press = SimPress.model_validate_json(m.payload)
                board.publish(board.topics.sim_ack("counter-1"), SimPressAck(
                    node="counter-1", press_id=press.press_id, button=press.button, status="refused",
                    reason="không có phím \x1b[2J\x9b31m\x07").to_json())

        answering = threading.Thread(target=refuse, daemon=True)
        answering.start()
        capsys.readouterr()
        assert xephang(tool(secured_broker, "press", "counter-1", "next", "--timeout", "5")) == 1
        answering.join(10)
    err = capsys.readouterr().err
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F for ch in err), repr(err)
    assert "refused 'next': không có phím ?[2J?31m?" in err


def test_the_hubs_events_cannot_drive_the_technicians_terminal_in_tail(secured_broker):
    """The hub's password writes the events `xephang tail` prints, as sentences or (--json) as they
    came. Escape sequences in a service's name reached the terminal either way; now a sentence shows
    them as '?', and the JSON escapes them, still the same value, Vietnamese as it reads."""
    evil = "Hộ tịch \x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\x7f"
    issued = {"kind": "issued", "at": 1795320000.0, "ticket": {"display": "1023", "number": 1023},
              "service_name_vi": evil}
    tails = [subprocess.Popen([sys.executable, "-m", "xephang_ops.cli", *tool(secured_broker, "tail", "-n", "1", *json_)],
                              stdout=subprocess.PIPE, text=True, encoding="utf-8") for json_ in ([], ["--json"])]
    try:
        with secured_broker.client("hub") as hub:
            end = time.monotonic() + 20
            while any(p.poll() is None for p in tails) and time.monotonic() < end:
                hub.publish(f"{R}/event/ticket/issued", json.dumps(issued, ensure_ascii=False))
                time.sleep(0.2)
        (said, _), (raw, _) = (p.communicate(timeout=10) for p in tails)
    finally:
        for p in tails:
            if p.poll() is None:
                p.kill()
    for out in (said, raw):
        assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F for ch in out), repr(out)
    assert said.rstrip("\n").endswith("Cấp số 1023 — Hộ tịch ?[2J?]52;c;cm0gLXJmIH4=??31m?")
    assert json.loads(raw) == issued and "Hộ tịch" in raw


def test_a_broker_ack_waited_for_in_vain_leaves_no_waiter_behind():
    """A tool that retries a timed-out publish keeps nothing per try: the waiter goes when it gives up,
    and the broker's late ack for it is dropped instead of parked for good."""
    from xephang_ops.tools import BrokerTarget, ToolClient, ToolError

    c = ToolClient(BrokerTarget(site="tuong-linh", port=1, username="tech", password="x"))
    for mid in range(1, 51):
        with pytest.raises(ToolError, match="no answer from the broker"):
            c._wait(mid, 0.001, "a publish")
        c._ack(mid, [0])  # late
    assert c._waiters == {} and c._given_up == set()
    c._ack(7, [0])  # the id used again, answered first this time: its waiter gets the codes
    assert c._wait(7, 1.0, "a publish") == [0] and c._waiters == {}
