"""The technicians' tools where they used to say something untrue or nothing at all: an order to an
offline node carried out later, a watch gone silent after a broker restart, exit codes that did not
match the table, a bad environment variable or Ctrl-C as a traceback, usage from another folder."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.tools.test_config_push import NODE, push, session_of, tool, wait_reconnected, wait_rev
from xephang import exits
from xephang_ops.cli import main as xephang
from xephang_reports import cli as report_cli

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]


def expired(sent: float, expiry_s: int) -> None:
    """Past a message's expiry at mosquitto, which counts it in whole seconds of its clock (a message
    may live up to a second longer than asked): a node restarted faster than that would still get it."""
    time.sleep(max(0.0, sent + expiry_s + 1.2 - time.monotonic()))


def test_a_push_to_an_offline_node_that_said_no_ack_is_not_applied_when_it_comes_back(secured_broker, sample_node,
                                                                                     capsys, tmp_path):
    """The node's persistent session keeps what was sent to it while it was away: the push the tool
    called unanswered used to be applied when the node came back, behind the technician's back."""
    n = sample_node()
    wait_rev(secured_broker, 0)
    n.stop()
    sent = time.monotonic()
    rc, _, err = push(secured_broker, capsys, tmp_path, 'greeting = "Không ai thấy"\n', "--timeout", "1")
    assert rc == exits.NO_ANSWER and "does not apply it" in err
    expired(sent, 1)
    before = session_of(secured_broker)
    n.start()
    wait_reconnected(secured_broker, before)
    # a session hands on what it kept before anything newer: had the old push been kept, it would
    # be applied first (rev 1), and this push against rev 0 would then be stale
    rc, out, err = push(secured_broker, capsys, tmp_path, 'greeting = "Lần này"\n')
    assert rc == exits.OK and "rev 0 → 1" in out, err


def test_a_press_to_an_offline_node_is_not_pressed_when_it_comes_back(secured_broker, sample_node, capsys):
    """A ticket printed an hour after a technician's unanswered test press would puzzle the hall."""
    from xephang.contract import SimPressAck

    n = sample_node(XEPHANG_SIM="true")
    wait_rev(secured_broker, 0)
    n.stop()
    capsys.readouterr()
    sent = time.monotonic()
    assert xephang(tool(secured_broker, "press", NODE, "next", "--timeout", "1")) == exits.NO_ANSWER
    assert "will not press it" in capsys.readouterr().err
    expired(sent, 1)
    with secured_broker.client("tech") as watch:
        watch.subscribe(watch.topics.sim_ack(NODE))
        before = session_of(secured_broker)
        n.start(XEPHANG_SIM="true")
        wait_reconnected(secured_broker, before)
        assert xephang(tool(secured_broker, "press", NODE, "recall")) == exits.OK
        acks = []
        while (m := watch.get(1.0)) is not None:
            acks.append(SimPressAck.model_validate_json(m.payload))
    # the node answers in order: a press kept while it was away would have been answered first
    assert [a.status for a in acks] == ["pressed"], acks


def test_tail_goes_on_after_the_broker_restarts_and_says_it_lost_it(secured_broker, capsys):
    """paho reconnects by itself, but a clean session forgets its subscriptions: `tail` sat silent
    for the rest of the day. Now it subscribes again and says the link went and came back."""
    done = threading.Event()
    rcs: list[int] = []

    def run() -> None:
        rcs.append(xephang(tool(secured_broker, "tail", "--count", "2", "--lang", "en")))
        done.set()

    paused = {"schema": "xephang.event.counter.v1", "event_id": "e1", "rev": 8, "at": 1795320060.0,
              "kind": "paused", "counter": 3, "reason": "Họp"}
    out: list[str] = []

    def publish_until(pred, what: str) -> None:
        """As the hub, an event every 0.2 s until `pred` (tail subscribes, or subscribes again, meanwhile)."""
        hub = None
        try:
            for _ in range(150):
                got = capsys.readouterr()
                out.append(got.out + got.err)
                if pred():
                    return
                try:
                    hub = hub or secured_broker.client("hub")
                    hub.publish("xephang/v1/tuong-linh/event/counter/paused", json.dumps(paused))
                except Exception:  # the broker is still starting
                    hub = None
                done.wait(0.2)
            raise AssertionError(f"tail: {what}")
        finally:
            if hub is not None:
                hub.close()

    threading.Thread(target=run, daemon=True).start()
    publish_until(lambda: "Counter 3" in "".join(out) or "counter 3" in "".join(out).lower(), "no first event")
    secured_broker.broker.restart()
    publish_until(done.is_set, "no event after the broker restarted")
    text = "".join(out) + capsys.readouterr().err
    assert rcs == [0] and "lost the broker" in text and "reconnected" in text


def test_config_get_exits_as_the_table_says(secured_broker, sample_node, capsys):
    """It exited 1 ("refused") for all of them: a board's account is 4, a node that is not there is 3."""
    sample_node()
    wait_rev(secured_broker, 0)
    pw = str(secured_broker.files.passwords_dir / "counter-2.pw")
    capsys.readouterr()
    assert xephang(["config", "get", NODE, "--port", str(secured_broker.broker.tech_port), "--username", "counter-2",
                    "--password-file", pw]) == exits.NOT_ALLOWED
    assert "'counter-2' is not a technician account" in capsys.readouterr().err
    assert xephang(tool(secured_broker, "config", "get", "counter-9", "--timeout", "0.5")) == exits.NO_ANSWER
    assert "no node of that name has ever connected" in capsys.readouterr().err
    assert xephang(tool(secured_broker, "config", "get", NODE)) == exits.OK


def test_a_report_asked_with_a_boards_password_is_refused_by_the_broker_at_once(secured_broker, capsys):
    """It waited out both attempts and said "the hub did not answer" (3): the ACL said no (4)."""
    pw = str(secured_broker.files.passwords_dir / "counter-2.pw")
    rc = report_cli.main(["report", "--mqtt", "--port", str(secured_broker.broker.tech_port), "--site", "tuong-linh",
                          "--node", "counter-2", "--username", "counter-2", "--password-file", pw, "--timeout", "30"])
    err = capsys.readouterr().err
    assert rc == exits.NOT_ALLOWED and "refused the request" in err and "'counter-2'" in err


@pytest.mark.parametrize("var", ["XEPHANG_TECH_PORT", "XEPHANG_BROKER__PORT"])
def test_a_bad_port_in_the_environment_is_a_usage_error_naming_it(var, monkeypatch, capsys):
    monkeypatch.delenv("XEPHANG_TECH_PORT", raising=False)
    monkeypatch.setenv(var, "abc")
    for argv in (["devices"], ["report", "--mqtt"]):
        with pytest.raises(SystemExit) as e:
            xephang(argv)
        assert e.value.code == exits.USAGE
        assert f"${var}" in capsys.readouterr().err
    assert xephang(["devices", "--port", "1"]) == exits.NO_BROKER  # --port given: the variable is not read


def test_ctrl_c_and_a_file_error_end_any_command_in_one_line(monkeypatch, capsys):
    """The net under every command (`report`, `voice`, `web` … have no handler of their own for these):
    Ctrl-C is 130 and a file error is one line naming the file, not a traceback."""
    import errno

    for exc, code in ((KeyboardInterrupt(), exits.INTERRUPTED),
                      (OSError(errno.ENOSPC, "No space left on device", "/srv/bao-cao.xlsx"), exits.REFUSED)):
        def boom(args, exc=exc):
            raise exc

        monkeypatch.setattr(report_cli, "report_cmd", boom)
        try:
            rc = xephang(["report"])
        except BaseException as escaped:  # noqa: BLE001 - a KeyboardInterrupt would end the test run itself
            pytest.fail(f"{escaped!r} escaped the command line")
        assert rc == code
        err = capsys.readouterr().err
        assert "Traceback" not in err
        if code == exits.REFUSED:
            assert "lỗi / error: /srv/bao-cao.xlsx: No space left on device" in err
    monkeypatch.setattr(report_cli, "report_cmd", lambda args: (_ for _ in ()).throw(OSError(errno.EIO, "I/O error")))
    assert xephang(["report"]) == exits.REFUSED
    assert capsys.readouterr().err.strip() == "lỗi / error: I/O error"  # no file named: no empty place for one


def test_xephang_sh_prints_its_usage_when_run_from_another_folder(tmp_path):
    rel = Path(ROOT.name) / "xephang.sh"  # as `main/xephang.sh` typed from the folder above
    r = subprocess.run(["bash", str(rel), "help"], cwd=ROOT.parent, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "./xephang.sh demo" in r.stdout, r.stderr


@pytest.mark.parametrize("cmd", [["config", "push", "display-lab", "x.toml"], ["press", "display-lab", "next"]])
@pytest.mark.parametrize("timeout", ["0", "-1", "nan", "inf"])
def test_an_order_needs_a_wait_it_can_expire_with(cmd, timeout, capsys):
    """`--timeout 0` sent an order with no expiry at all, and said it had expired."""
    with pytest.raises(SystemExit) as e:
        xephang([*cmd, "--timeout", timeout])
    assert e.value.code == exits.USAGE and "--timeout" in capsys.readouterr().err


def test_a_report_asked_by_the_second_technicians_account_is_asked_as_it(secured_broker, capsys):
    """`report --mqtt -u tech-lan` asked as node `tech` (the default), which the broker refused to
    tech-lan, and the answer said tech-lan might not be a technician. It asks as tech-lan now: with
    no hub on this broker, the answer is that the hub did not answer (3), not a refusal (4)."""
    pw = str(secured_broker.files.passwords_dir / "tech-lan.pw")
    rc = report_cli.main(["report", "--mqtt", "--port", str(secured_broker.broker.tech_port), "--site", "tuong-linh",
                          "-u", "tech-lan", "--password-file", pw, "--timeout", "0.5"])
    err = capsys.readouterr().err
    assert rc == exits.NO_ANSWER and "refused" not in err, err
