"""The province's device table from the nodes' retained messages, fed straight to the ingester's store.

Stories: a late Will of an older connection does not mark a live node offline; a retained copy
delivered again adds no history; downtime is counted inside the period asked; a technician
filters the command's list by centre and alert; a malformed payload is counted and dropped.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from province.devices import SESSION_STALE_S, list_devices
from province.ingest import Store
from xephang.contract import Alert, NodeHealth, NodeStatus, Topics

A, B = Topics("tuong-linh"), Topics("xuan-quang")


def status(t: Topics, node: str, online: bool, session: int) -> tuple[str, bytes]:
    return t.status(node), NodeStatus(node=node, online=online, session=session, role=node.split("-")[0]).to_json()


def alert(t: Topics, node: str, aid: str) -> tuple[str, bytes]:
    return t.alert(node, aid), Alert(node=node, id=aid, severity="critical", message_vi="Hết giấy").to_json()


def everything(conn) -> list[dict]:
    now = datetime.now(UTC)
    return list_devices(conn, start=now - timedelta(days=1), end=now + timedelta(seconds=1))


def history(conn) -> list[tuple]:
    rows = conn.execute("SELECT site, node, online, session FROM device_status_log ORDER BY at, node").fetchall()
    conn.commit()
    return rows


def test_a_late_will_of_an_old_connection_does_not_mark_a_live_node_offline(pg):
    store = Store(pg)
    store.write([status(A, "counter-2", True, 3)])
    store.write([status(A, "counter-2", True, 4), status(A, "counter-2", False, 3)])  # reconnected; the old Will
    [d] = everything(pg)
    assert d["online"] and d["downtime_s"] == 0
    store.write([status(A, "counter-2", True, 4)] * 3)  # the retained birth again (an ingester restart)
    assert history(pg) == [("tuong-linh", "counter-2", True, 3)]  # one row: it never went down here
    store.write([status(A, "counter-2", False, 4)])  # now its own Will
    assert not everything(pg)[0]["online"]
    store.write([status(A, "counter-2", True, 3)])  # a stale birth of an older session changes nothing
    assert not everything(pg)[0]["online"]
    assert [r[2] for r in history(pg)] == [True, False]


def test_a_made_up_session_number_does_not_silence_a_node_for_good(pg):
    """Counter 3's password published its status with a session number no board will ever reach; the
    province believed it and, from then on, took every real birth of counter 3 for a stale copy of an
    older connection: the node stayed as the password left it, after the password was changed and even
    on a new board. Now a session beyond the province's clock (in ms, what a board without a state dir
    counts from) is rejected, and a birth of a lower session is believed once the province has not
    heard the number it believes for SESSION_STALE_S: a counter that went back (a new board, a fresh
    SD card, a number made up) is a new start, while the stale copies the rule is there for arrive
    right behind the message that made them stale."""
    store = Store(pg)
    store.write([status(A, "counter-3", True, 3)])
    res = store.write([status(A, "counter-3", False, 2**62)])  # a number no counter nor clock reaches
    assert res.rejected == 1 and everything(pg)[0]["online"]
    store.write([status(A, "counter-3", False, 4)])  # the real board goes on: down, up again
    store.write([status(A, "counter-3", True, 5)])
    assert everything(pg)[0]["online"]

    store.write([status(A, "counter-3", False, 10**12)])  # a plausible number, but not the board's
    assert not everything(pg)[0]["online"]
    store.write([status(A, "counter-3", True, 6)])  # the board's birth right after it: taken for a stale copy
    assert not everything(pg)[0]["online"]
    store.write([status(A, "counter-3", False, 5)])  # a late Will of a lower session is never believed
    assert not everything(pg)[0]["online"]
    # the password is changed; the province has not heard session 10**12 for a while
    pg.execute("UPDATE devices SET session_at = now() - interval '1 minute' * %s", (2 + SESSION_STALE_S / 60,))
    pg.commit()
    store.write([status(A, "counter-3", True, 7)])  # the board reconnects with its new password
    assert everything(pg)[0]["online"]
    store.write([status(A, "counter-3", False, 6), status(A, "counter-3", True, 6)])  # stale copies behind it
    assert everything(pg)[0]["online"]
    assert [r[2:] for r in history(pg)] == [(True, 3), (False, 4), (True, 5), (False, 10**12), (True, 7)]


def test_alerts_open_and_close_once_whatever_is_delivered_again(pg):
    store = Store(pg)
    store.write([status(A, "dispenser-1", True, 1), alert(A, "dispenser-1", "paper-out")])
    store.write([alert(A, "dispenser-1", "paper-out")])  # retained copy again
    store.write([(A.alert("dispenser-1", "paper-out"), b"")])  # cleared
    store.write([(A.alert("dispenser-1", "paper-out"), b"")])  # cleared again: nothing to close
    store.write([alert(A, "dispenser-1", "paper-out")])  # out of paper again
    log = pg.execute("SELECT alert, cleared_at IS NOT NULL FROM device_alert_log ORDER BY id").fetchall()
    assert log == [("paper-out", True), ("paper-out", False)]
    assert [a["alert"] for a in everything(pg)[0]["alerts"]] == ["paper-out"]


def test_health_is_kept_and_a_malformed_payload_is_dropped(pg):
    store = Store(pg)
    res = store.write([
        (A.health("announcer-hall"), NodeHealth(node="announcer-hall", role="announcer", version="2.1",
                                                details={"audio": "missing"}).to_json()),
        (A.status("display-hall"), b"{not json"),
        (A.alert("display-hall", "display-missing"), json.dumps({"node": "display-hall"}).encode()),  # no id
    ])
    assert res.rejected == 2 and res.nodes == 3
    [d] = everything(pg)
    assert d["node"] == "announcer-hall" and d["online"] and d["health"]["details"] == {"audio": "missing"}
    assert d["version"] == "2.1"


def test_a_boards_password_cannot_swamp_or_mislabel_the_provinces_alerts(pg):
    """Counter 3's password may write ``node/counter-3/alert/+`` at its centre, and the bridge carries
    it to the province. It could open any number of alerts there (one row per distinct level it
    makes up: 500 here), under names that are no alert id (spaces, markup, 2 000 characters), with a
    payload naming another node. As webd does (docs/protocol.md), the province now believes an alert
    only when its payload names the topic's node and id, an id is a slug, and a node keeps at most
    MAX_ALERTS_PER_NODE open; each other one is rejected and counted."""
    from xephang.contract import MAX_ALERTS_PER_NODE

    store = Store(pg)
    store.write([status(A, "counter-3", True, 1)])
    res = store.write([alert(A, "counter-3", f"junk-{i}") for i in range(500)])
    assert res.rejected == 500 - MAX_ALERTS_PER_NODE
    odd = [f"{A.root}/node/counter-3/alert/{level}" for level in ("Hết giấy", "<b>x</b>", "x" * 2000)]
    res = store.write([(t, Alert(node="counter-3", id="paper-out").to_json()) for t in odd])
    assert res.rejected == 3
    res = store.write([(A.alert("counter-3", "junk-0"), b""),  # one cleared: room for one more
                       (A.alert("counter-3", "counter-config"), Alert(node="hub", id="counter-config").to_json()),
                       (A.alert("counter-3", "paper-out"), Alert(node="counter-3", id="printer-error").to_json())])
    assert res.rejected == 2  # another node's alert, another id's alert
    [d] = everything(pg)
    assert len(d["alerts"]) == MAX_ALERTS_PER_NODE - 1
    assert all(a["alert"].startswith("junk-") for a in d["alerts"])
    store.write([alert(A, "counter-3", "counter-config")])  # the board's real alert still gets in
    assert "counter-config" in [a["alert"] for a in everything(pg)[0]["alerts"]]


def test_a_status_or_health_naming_another_node_is_not_believed(pg):
    """A status or health is the node's own word about itself: one that names another node (counter
    3's topic saying the hub is offline) is rejected, as webd does."""
    store = Store(pg)
    res = store.write([(A.status("counter-3"), NodeStatus(node="hub", online=False, session=9).to_json()),
                       (A.health("counter-3"), NodeHealth(node="hub", role="hub", version="6.6.6").to_json())])
    assert res.rejected == 2
    assert everything(pg) == []


def test_downtime_is_counted_inside_the_period(pg):
    Store(pg).write([status(A, "dispenser-1", True, 1), status(B, "dispenser-1", True, 1)])
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    with pg.transaction(), pg.cursor() as cur:  # a known history: down 2 h across the period's start, 30 min in it
        cur.execute("DELETE FROM device_status_log")
        cur.executemany("INSERT INTO device_status_log (site, node, at, online, session) VALUES (%s,%s,%s,%s,1)", [
            ("tuong-linh", "dispenser-1", t0 - timedelta(hours=1), False),
            ("tuong-linh", "dispenser-1", t0 + timedelta(hours=1), True),
            ("tuong-linh", "dispenser-1", t0 + timedelta(hours=5), False),
            ("tuong-linh", "dispenser-1", t0 + timedelta(hours=5, minutes=30), True),
            ("xuan-quang", "dispenser-1", t0 + timedelta(hours=23), False),
        ])
    got = {d["site"]: d["downtime_s"] for d in list_devices(pg, start=t0, end=t0 + timedelta(days=1))}
    assert got == {"tuong-linh": 1.5 * 3600, "xuan-quang": 3600}  # the second one is still down at the end


def test_the_devices_command_filters_by_centre_and_alert(pg, pg_dsn, capsys):
    from xephang_ops.cli import main

    Store(pg).write([status(A, "dispenser-1", True, 1), alert(A, "dispenser-1", "paper-out"),
                     status(A, "counter-1", True, 1), status(B, "dispenser-1", False, 2)])
    assert main(["province", "devices", "--dsn", pg_dsn, "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 3
    assert main(["province", "devices", "--dsn", pg_dsn, "--json", "--alert", "paper-out"]) == 0
    assert [(d["site"], d["node"]) for d in json.loads(capsys.readouterr().out)] == [("tuong-linh", "dispenser-1")]
    assert main(["province", "devices", "--dsn", pg_dsn, "--json", "--site", "xuan-quang"]) == 0
    assert [d["online"] for d in json.loads(capsys.readouterr().out)] == [False]
    assert main(["province", "devices", "--dsn", pg_dsn, "--offline", "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "OFFLINE" in out and "xuan-quang" in out and "counter-1" not in out
    assert main(["province", "devices", "--dsn", pg_dsn, "--alerts"]) == 0
    out = capsys.readouterr().out
    assert "paper-out" in out and "counter-1" not in out


def test_a_boards_words_cannot_drive_the_province_technicians_terminal(pg, pg_dsn, capsys):
    """A counter's password writes its own role and version; the province keeps them and `xephang
    province devices` prints them. An escape sequence (or a newline forging a row) reached the
    terminal; now the table shows each control character as '?', and --json escapes them."""
    from xephang_ops.cli import main

    evil = "1.0\n\x1b[2Jhub  online\x9b"
    Store(pg).write([(A.status("counter-1"), NodeStatus(node="counter-1", online=True, session=1, role="\x1b[8m",
                                                        version=evil).to_json())])
    assert main(["province", "devices", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    assert not any(ord(ch) < 0x20 and ch != "\n" or 0x7F <= ord(ch) <= 0x9F for ch in out), repr(out)
    assert len(out.splitlines()) == 3  # head, rule, one row: no forged one
    assert "?[8m" in out and "1.0??[2Jhub  online?" in out
    assert main(["province", "devices", "--dsn", pg_dsn, "--json"]) == 0
    out = capsys.readouterr().out
    assert "\\u009b" in out and json.loads(out)[0]["version"] == evil
