"""What a newcomer's walk through the technicians' tools found: `config push` had no real stale check
(and refused `config get`'s own output), `devices` with a board's password showed a false table,
`devices --site <typo>` did not say which site it looked at, and `tail` printed "? ?" for the hub's
hourly summary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tools.test_config_push import NODE, wait_rev
from xephang.contract import HourlySummary
from xephang_ops.cli import main as xephang
from xephang_ops.tools import describe_event, read_push_file


def tool(sb, *args: str, user: str = "tech") -> list[str]:
    return [*args, "--port", str(sb.broker.tech_port), "--username", user,
            "--password-file", str(sb.files.passwords_dir / f"{user}.pw")]


@pytest.fixture
def node(secured_broker, sample_node):
    n = sample_node()
    wait_rev(secured_broker, 0)
    return n


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = xephang(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def config_get(sb, capsys) -> tuple[str, dict]:
    rc, out, _ = run(capsys, tool(sb, "config", "get", NODE))
    assert rc == 0
    return out, json.loads(out)


def plain_push(sb, capsys, tmp_path: Path, body: str, *extra: str) -> tuple[int, str, str]:
    f = tmp_path / "plain.toml"
    f.write_text(body)
    return run(capsys, tool(sb, "config", "push", NODE, str(f), "--timeout", "5", *extra))


# ---------------------------------------------------------------------------------------------
# 1. config push: `config get`'s output is a push file with a real stale check; --base-rev


@pytest.mark.broker
def test_config_gets_output_pushes_against_its_rev_and_is_stale_after_another_change(secured_broker, node, capsys,
                                                                                       tmp_path):
    sb = secured_broker
    # the morning: `xephang config get display-lab > morning.json`
    text, _ = config_get(sb, capsys)
    morning = tmp_path / "morning.json"
    morning.write_text(text)
    # meanwhile someone else changes the node (as the head's roster page changes the hub): rev 0 → 1
    assert plain_push(sb, capsys, tmp_path, 'greeting = "Của trưởng bộ phận"\n')[0] == 0
    wait_rev(sb, 1)
    # the technician edits the morning file and pushes it: stale, nothing changes
    body = json.loads(morning.read_text())
    body["config"]["repeats"] = 3
    morning.write_text(json.dumps(body))
    rc, out, err = run(capsys, tool(sb, "config", "push", NODE, str(morning), "--timeout", "5"))
    assert rc == 2, (out, err)
    assert "STALE" in err and "rev 1" in err and "rev 0" in err and f"config get {NODE}" in err and "--force" in err
    _, now = config_get(sb, capsys)
    assert now["rev"] == 1 and now["config"]["greeting"] == "Của trưởng bộ phận" and now["config"]["repeats"] == 1
    # done the right way: `config get` again, redo the edit, push that → applied on top of the other change
    text, fresh = config_get(sb, capsys)
    fresh["config"]["repeats"] = 3
    morning.write_text(json.dumps(fresh))
    rc, out, err = run(capsys, tool(sb, "config", "push", NODE, str(morning), "--timeout", "5"))
    assert rc == 0 and "applied" in out and "rev 1 → 2" in out, (out, err)
    _, now = config_get(sb, capsys)
    assert now["config"]["greeting"] == "Của trưởng bộ phận" and now["config"]["repeats"] == 3


@pytest.mark.broker
def test_base_rev_makes_a_plain_file_stale_checked(secured_broker, node, capsys, tmp_path):
    sb = secured_broker
    assert plain_push(sb, capsys, tmp_path, "repeats = 2\n")[0] == 0
    wait_rev(sb, 1)
    rc, _, err = plain_push(sb, capsys, tmp_path, "repeats = 4\n", "--base-rev", "0")
    assert rc == 2 and "STALE" in err
    assert config_get(sb, capsys)[1]["config"]["repeats"] == 2
    rc, out, _ = plain_push(sb, capsys, tmp_path, "repeats = 4\n", "--base-rev", "1")
    assert rc == 0 and "rev 1 → 2" in out
    # a plain file without a rev keeps today's behaviour: against the rev read at push time
    rc, out, _ = plain_push(sb, capsys, tmp_path, "repeats = 5\n")
    assert rc == 0 and "rev 2 → 3" in out


@pytest.mark.broker
def test_a_config_get_file_of_another_node_or_a_contradicting_base_rev_is_refused(secured_broker, node, capsys,
                                                                                    tmp_path):
    sb = secured_broker
    text, body = config_get(sb, capsys)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**body, "node": "display-hall"}))
    rc, _, err = run(capsys, tool(sb, "config", "push", NODE, str(other), "--timeout", "5"))
    assert rc == 1 and "display-hall" in err
    mine = tmp_path / "mine.json"
    mine.write_text(text)
    rc, _, err = run(capsys, tool(sb, "config", "push", NODE, str(mine), "--base-rev", "7", "--timeout", "5"))
    assert rc == 2 and "--base-rev" in err
    assert config_get(sb, capsys)[1]["rev"] == 0


def test_read_push_file_takes_config_gets_output_with_its_rev(tmp_path):
    f = tmp_path / "hub.json"
    f.write_text(json.dumps({"node": "hub", "rev": 3, "restart_required": False, "config": {"rating_window_s": 60}}))
    pf = read_push_file(f)
    assert (pf.config, pf.base_rev, pf.node) == ({"rating_window_s": 60}, 3, "hub")
    f.write_text(json.dumps({"config": {"repeats": 2}}))
    assert read_push_file(f).base_rev is None and read_push_file(f).config == {"repeats": 2}
    f.write_text(json.dumps({"node": "hub", "rev": "3", "config": {}}))
    with pytest.raises(ValueError, match="rev"):
        read_push_file(f)


# ---------------------------------------------------------------------------------------------
# 2. devices with a board's password; a site that shows nothing


@pytest.mark.broker
def test_devices_with_a_boards_password_exits_4_instead_of_a_false_table(secured_broker, node, capsys):
    sb = secured_broker
    rc, out, err = run(capsys, tool(sb, "devices", "--wait", "0.3", user="counter-1"))
    assert rc == 4, out
    assert "'counter-1'" in err and "not a technician account" in err and NODE not in out


@pytest.mark.broker
def test_devices_watch_with_a_boards_password_exits_4_at_once(secured_broker):
    sb = secured_broker
    p = subprocess.run([sys.executable, "-m", "xephang_ops.cli", *tool(sb, "devices", "--watch", "--wait", "0.2",
                                                                         user="display-hall")],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 4 and "not a technician account" in p.stderr


@pytest.mark.broker
def test_devices_on_a_site_with_no_node_names_the_site_and_hints_at_the_option(secured_broker, node, capsys):
    sb = secured_broker
    rc, out, _ = run(capsys, tool(sb, "devices", "--wait", "0.3", "--site", "tuong-lin", "--lang", "en"))
    assert rc == 0
    assert "'tuong-lin'" in out and "--site" in out and NODE not in out


# ---------------------------------------------------------------------------------------------
# 3. tail: the hub's hourly summary reads as a line


def test_tail_describes_the_hubs_hourly_summary():
    s = HourlySummary(site="tuong-linh", day="2026-11-23", at=1795320000, issued=40, served=35, waiting=5,
                      event_id="summary-2026-11-23-9", hour=9,
                      this_hour={"issued": 12, "served": 10, "no_shows": 1, "voided": 0})
    vi = describe_event(s.to_json())
    en = describe_event(s.to_json(), "en")
    assert "?" not in vi and "?" not in en
    assert "Tổng hợp giờ 09:00–10:00" in vi and "cấp 12" in vi and "xong 10" in vi and "đang chờ 5" in vi
    assert "Hourly summary 09:00–10:00" in en and "12 issued" in en and "5 waiting" in en
    # an event without a kind that this tool does not know yet names its schema, not "? ?"
    assert describe_event({"schema": "xephang.event.other.v1", "at": 1795320000})[10:] == "xephang.event.other.v1"


def test_the_same_config_get_file_pushed_twice_changes_nothing_the_second_time(secured_broker, node, capsys, tmp_path):
    """The second push of one file was refused as stale, "someone changed it since (the head's roster on
    the web?)" — it was the technician's own change, on a board with no web roster at all."""
    sb = secured_broker
    text, _ = config_get(sb, capsys)
    body = json.loads(text)
    body["config"]["repeats"] = 3
    f = tmp_path / "mine.json"
    f.write_text(json.dumps(body))
    rc, out, err = run(capsys, tool(sb, "config", "push", NODE, str(f), "--timeout", "5"))
    assert rc == 0 and "rev 0 → 1" in out, (out, err)
    rc, out, err = run(capsys, tool(sb, "config", "push", NODE, str(f), "--timeout", "5"))
    assert rc == 0 and "không có gì thay đổi / nothing changed" in out and "rev 1" in out, (out, err)
    assert config_get(sb, capsys)[1]["rev"] == 1
