"""A technician pushes config to a node over a real, secured broker with `xephang config push`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from xephang_ops.cli import main as xephang
from xephang_ops.tools import fetch_config_state

pytestmark = pytest.mark.broker

NODE = "display-lab"


@pytest.fixture
def node(secured_broker, sample_node):
    n = sample_node()
    wait_rev(secured_broker, 0)
    return n


def wait_rev(sb, rev: int, timeout: float = 10.0):
    """The node's retained config state once it reaches ``rev``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with sb.client("tech") as c:
            st = fetch_config_state(c, NODE, timeout=0.5)
        if st is not None and st.rev == rev:
            return st
    raise AssertionError(f"{NODE} never reached config rev {rev}")


def session_of(sb) -> int:
    """The session of the node's retained online status (grows on every connect), or -1."""
    from xephang.contract import NodeStatus

    with sb.client("tech") as c:
        c.subscribe(c.topics.status(NODE))
        m = c.get(0.5)
    st = NodeStatus.model_validate_json(m.payload) if m and m.payload else None
    return st.session if st and st.online else -1


def wait_reconnected(sb, before: int, timeout: float = 10.0) -> None:
    """Until the restarted node is online with a newer session (so it listens for pushes)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if session_of(sb) > before:
            return
    raise AssertionError(f"{NODE} did not come back")


def tool(sb, *args: str) -> list[str]:
    return [*args, "--port", str(sb.broker.tech_port), "--password-file", str(sb.files.passwords_dir / "tech.pw")]


def push(sb, capsys, tmp_path: Path, body: str, *extra: str, name: str = "change.toml") -> tuple[int, str, str]:
    f = tmp_path / name
    f.write_text(body)
    capsys.readouterr()
    rc = xephang(tool(sb, "config", "push", NODE, str(f), "--timeout", "5", *extra))
    out = capsys.readouterr()
    return rc, out.out, out.err


def config_get(sb, capsys) -> dict:
    capsys.readouterr()
    assert xephang(tool(sb, "config", "get", NODE)) == 0
    return json.loads(capsys.readouterr().out)


def test_a_valid_push_is_applied_and_becomes_the_new_state(secured_broker, node, capsys, tmp_path):
    rc, out, _ = push(secured_broker, capsys, tmp_path, 'greeting = "Kính chào quý khách"\ntheme = "dark"\n')
    assert rc == 0 and "applied" in out and "rev 0 → 1" in out
    got = config_get(secured_broker, capsys)
    assert got["rev"] == 1 and got["config"]["greeting"] == "Kính chào quý khách" and got["config"]["theme"] == "dark"
    assert got["config"]["repeats"] == 1  # untouched keys merge through


def test_json_files_push_too(secured_broker, node, capsys, tmp_path):
    rc, out, _ = push(secured_broker, capsys, tmp_path, '{"repeats": 3}', name="change.json")
    assert rc == 0 and config_get(secured_broker, capsys)["config"]["repeats"] == 3


def test_an_invalid_push_lists_every_error_and_changes_nothing(secured_broker, node, capsys, tmp_path):
    before = config_get(secured_broker, capsys)
    rc, out, err = push(secured_broker, capsys, tmp_path, 'repeats = 9\ntheme = "neon"\ngreting = "x"\n')
    assert rc == 1 and "REJECTED, nothing changed (3 errors" in err
    assert "repeats" in err and "theme" in err and "did you mean 'greeting'" in err
    assert config_get(secured_broker, capsys) == before
    saved = node.state / f"{NODE}.config.json"
    assert not saved.exists() or json.loads(saved.read_text())["rev"] == 0


def test_a_push_made_against_an_old_revision_is_refused(secured_broker, node, capsys, tmp_path):
    assert push(secured_broker, capsys, tmp_path, "repeats = 2\n")[0] == 0
    # a second laptop still holding rev 0 pushes its change
    from xephang_ops.tools import push_config

    with secured_broker.client("tech-lan") as c:
        res = push_config(c, NODE, {"repeats": 4}, source="tech-lan", base_rev=0, timeout=5)
    assert res.exit_code == 2 and res.ack is not None and res.ack.status == "stale" and res.ack.rev == 1
    assert config_get(secured_broker, capsys)["config"]["repeats"] == 2


def test_a_change_that_needs_a_restart_says_so(secured_broker, node, capsys, tmp_path):
    rc, out, _ = push(secured_broker, capsys, tmp_path, 'serial_port = "/dev/ttyACM0"\n')
    assert rc == 0 and "RESTART REQUIRED" in out
    assert config_get(secured_broker, capsys)["restart_required"] is True


def test_a_node_killed_while_saving_boots_with_the_last_good_config(secured_broker, sample_node, tmp_path, capsys):
    n = sample_node()
    wait_rev(secured_broker, 0)
    assert push(secured_broker, capsys, tmp_path, 'greeting = "Lần một"\n')[0] == 0
    before = session_of(secured_broker)
    n.stop()
    n.start(SAMPLE_DIE_IN_WRITE="1")
    wait_reconnected(secured_broker, before)
    wait_rev(secured_broker, 1)
    rc, _, err = push(secured_broker, capsys, tmp_path, 'greeting = "Lần hai"\n', "--timeout", "3")
    assert rc == 3 and "no ack" in err  # it died before answering
    assert n.proc.wait(10) == -9
    assert (n.state / f"{NODE}.config.json.pending.tmp").exists()  # the torn half-file is there …
    before = session_of(secured_broker)  # the killed process's Will says offline; its session is the last one
    n.start()
    wait_reconnected(secured_broker, max(before, 0))
    st = wait_rev(secured_broker, 1)  # … and ignored: the last good config survives
    assert st.config["greeting"] == "Lần một"
    rc, out, _ = push(secured_broker, capsys, tmp_path, 'greeting = "Lần ba"\n')
    assert rc == 0 and "rev 1 → 2" in out


def test_a_node_killed_while_applying_boots_with_the_last_good_config(secured_broker, sample_node, tmp_path, capsys):
    n = sample_node()
    wait_rev(secured_broker, 0)
    assert push(secured_broker, capsys, tmp_path, 'greeting = "Lần một"\n')[0] == 0
    before = session_of(secured_broker)
    n.stop()
    n.start(SAMPLE_DIE_IN_APPLY="1")
    wait_reconnected(secured_broker, before)
    wait_rev(secured_broker, 1)
    rc, _, err = push(secured_broker, capsys, tmp_path, 'greeting = "Lần hai"\n', "--timeout", "3")
    assert rc == 3 and "no ack" in err  # it died applying it, before answering
    assert n.proc.wait(10) == -9
    before = session_of(secured_broker)
    n.start()
    wait_reconnected(secured_broker, max(before, 0))
    st = wait_rev(secured_broker, 1)  # the config it died applying is not the config it boots with
    assert st.config["greeting"] == "Lần một"
    failed = n.state / f"{NODE}.config.json.failed"
    assert json.loads(failed.read_text())["config"]["greeting"] == "Lần hai"  # set aside for the technician
    rc, out, _ = push(secured_broker, capsys, tmp_path, 'greeting = "Lần ba"\n')
    assert rc == 0 and "rev 1 → 2" in out


def test_pushing_to_a_node_that_never_reported_needs_force(secured_broker, capsys, tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("repeats = 2\n")
    # exit 3 (no answer), not 5: 5 is for a broker that cannot be reached (docs/tools.md, exit codes)
    assert xephang(tool(secured_broker, "config", "push", "display-nowhere", str(f))) == 3
    assert "no config state" in capsys.readouterr().err


def test_a_non_technician_cannot_push(secured_broker, node, capsys, tmp_path):
    f = tmp_path / "x.toml"
    f.write_text("repeats = 2\n")
    args = ["config", "push", NODE, str(f), "--force", "--port", str(secured_broker.broker.port), "--username",
            "counter-1", "--password-file", str(secured_broker.files.passwords_dir / "counter-1.pw")]
    assert xephang(args) == 4
    assert "refused" in capsys.readouterr().err


def test_the_shapes_the_docs_show_push_as_meant(secured_broker, node, capsys, tmp_path):
    """The MQTT payload's shape ``{"config": {…}}`` (docs/displayd.md) and a settings file's section
    (``[display]`` …) push their options; a whole settings file is refused with the right shape."""
    rc, out, _ = push(secured_broker, capsys, tmp_path, '{"config": {"repeats": 2}}', name="payload.json")
    assert rc == 0 and "applied" in out and config_get(secured_broker, capsys)["config"]["repeats"] == 2
    rc, out, _ = push(secured_broker, capsys, tmp_path, '[display]\nrepeats = 3\n', name="section.toml")
    assert rc == 0 and config_get(secured_broker, capsys)["config"]["repeats"] == 3
    rc, _, err = push(secured_broker, capsys, tmp_path, 'node = "display-lab"\n[display]\nrepeats = 4\n[screen]\nx = 1\n',
                      name="whole.toml")
    assert rc == 1 and "push only the node's options" in err and "'screen'" in err


def test_push_exits_as_the_table_says_for_a_board_account_and_a_missing_node(secured_broker, node, capsys, tmp_path):
    f = tmp_path / "c.toml"
    f.write_text("repeats = 2\n")
    capsys.readouterr()
    board = ["config", "push", NODE, str(f), "--port", str(secured_broker.broker.tech_port), "--username", "counter-1",
             "--password-file", str(secured_broker.files.passwords_dir / "counter-1.pw")]
    assert xephang(board) == 4
    assert "'counter-1' is not a technician account" in capsys.readouterr().err
    assert xephang(tool(secured_broker, "config", "push", "counter-9", str(f), "--timeout", "1")) == 3
    assert "no node of that name has ever connected" in capsys.readouterr().err


# a board's password writes its own config state and acks: these reached a technician's terminal raw
EVIL = "\x1b[2J\x1b]52;c;cm0gLXJmIH4=\x07\x9b31m\x7f\x85\r\nrev 9 applied"


def controls(text: str) -> list[str]:
    """The control characters (C0 but the newlines of our own layout, DEL, C1) that reach the terminal."""
    return [hex(ord(ch)) for ch in text if (ord(ch) < 0x20 and ch != "\n") or 0x7F <= ord(ch) <= 0x9F]


def test_a_boards_config_state_cannot_drive_the_technicians_terminal(secured_broker, capsys):
    """Display-lab's password writes its own retained config state, and `xephang config get` prints it.
    json.dumps escaped ESC but left DEL and C1 (U+009B, a one-character CSI) raw in the terminal; now
    they are escaped too, the JSON still reads back as what the board said, Vietnamese as it reads."""
    from xephang.contract import ConfigState

    state = ConfigState(node=NODE, rev=3, config={"greeting": "Kính chào " + EVIL, EVIL: 1})
    with secured_broker.client(NODE) as board:
        assert board.publish(board.topics.config_state(NODE), state.to_json(), retain=True) < 128
    capsys.readouterr()
    assert xephang(tool(secured_broker, "config", "get", NODE)) == 0
    out = capsys.readouterr().out
    assert controls(out) == [], out
    assert "Kính chào" in out and "\\u009b31m" in out
    assert json.loads(out)["config"] == state.config


def test_a_boards_reasons_for_refusing_a_push_cannot_drive_the_technicians_terminal(secured_broker, capsys, tmp_path):
    """A board (its password, not the daemon) answers a technician's push with its own 'errors'.
    They were printed as they came, ESC and all; now every control character in them is '?'."""
    import threading

    from xephang.contract import ConfigAck, ConfigSet

    with secured_broker.client(NODE) as board:
        board.subscribe(board.topics.config_set(NODE))

        def refuse() -> None:
            m = board.get(10)
            if m is not None:
                push = ConfigSet.model_validate_json(m.payload)
                board.publish(board.topics.config_ack(NODE), ConfigAck(
                    request_id=push.request_id, node=NODE, status="rejected", rev=0,
                    errors=["greeting: quá dài " + EVIL]).to_json())

        answering = threading.Thread(target=refuse, daemon=True)
        answering.start()
        rc, out, err = push(secured_broker, capsys, tmp_path, 'greeting = "x"\n', "--force")
        answering.join(10)
    assert rc == 1 and "REJECTED, nothing changed (1 error," in err
    assert controls(out + err) == [], err
    assert "  - greeting: quá dài ?[2J?]52;c;cm0gLXJmIH4=??31m????rev 9 applied" in err


def test_a_push_with_thousands_of_errors_gets_an_answer_that_fits_in_one_message(secured_broker, node, capsys,
                                                                                  tmp_path):
    """3,000 unknown keys made an ack of ~150 KB: over the broker's 64 KiB, it was never sent and the
    technician read "no answer — node offline?". The ack lists the first 100 and how many more."""
    body = json.dumps({f"khoa-{i:04d}": 1 for i in range(3000)})
    rc, _, err = push(secured_broker, capsys, tmp_path, body, name="many.json")
    assert rc == 1 and "REJECTED, nothing changed (101 errors" in err, err[-500:]
    assert "khoa-0000: khóa không có trong cấu hình / unknown key" in err
    assert "… và 2900 lỗi khác (sửa các lỗi trên rồi đẩy lại) / … and 2900 more" in err
    assert config_get(secured_broker, capsys)["rev"] == 0


def test_pushing_what_the_node_runs_changes_nothing_and_says_so(secured_broker, node, capsys, tmp_path):
    rc, out, _ = push(secured_broker, capsys, tmp_path, 'greeting = "Chào buổi sáng"\n')
    assert rc == 0 and "rev 0 → 1" in out
    rc, out, _ = push(secured_broker, capsys, tmp_path, 'greeting = "Chào buổi sáng"\n')
    assert rc == 0 and "không có gì thay đổi / nothing changed — the node runs this already, rev 1" in out, out
    assert config_get(secured_broker, capsys)["rev"] == 1
    assert json.loads((node.state / f"{NODE}.config.json").read_text())["rev"] == 1
