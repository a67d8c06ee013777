"""A province technician tells "centre unreachable" from "all quiet".

Each centre's bridge publishes its link state on ``xephang/v1/{site}/bridge/state`` (retained ``1``,
and its Will ``0`` at the province). Fed straight to the ingester's store here; the real brokers and
a real link cut are in ``test_links_e2e.py``. Stories: while a centre's link is down its devices say
*unreachable since …*, not online; when it returns they show their own state again and the history
holds the cut with its length; the retained copy delivered again adds no cut; another centre is not
touched; the time a centre was unreachable is counted inside the period asked.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from province.devices import list_devices, list_links
from province.ingest import Store
from xephang.contract import NodeStatus, Topics

A, B = Topics("tuong-linh"), Topics("xuan-quang")


def status(t: Topics, node: str, online: bool, session: int = 1) -> tuple[str, bytes]:
    return t.status(node), NodeStatus(node=node, online=online, session=session, role=node.split("-")[0]).to_json()


def link(t: Topics, up: bool) -> tuple[str, bytes]:
    return t.bridge_state(), b"1" if up else b"0"


def window() -> dict[str, datetime]:
    now = datetime.now(UTC)
    return {"start": now - timedelta(days=1), "end": now + timedelta(seconds=1)}


def states(conn) -> dict[tuple[str, str], str]:
    return {(d["site"], d["node"]): d["state"] for d in list_devices(conn, **window())}


def test_a_centre_whose_link_is_down_shows_its_devices_unreachable_then_the_cut_in_its_history(pg):
    store = Store(pg)
    store.write([link(A, True), link(B, True), status(A, "dispenser-1", True), status(A, "counter-1", False),
                 status(B, "dispenser-1", True)])
    assert states(pg) == {("tuong-linh", "dispenser-1"): "online", ("tuong-linh", "counter-1"): "offline",
                          ("xuan-quang", "dispenser-1"): "online"}

    res = store.write([link(A, False)])  # the bridge's Will at the province: tuong-linh's link died
    assert res.links == 1 and res.rejected == 0
    cut_at = pg.execute("SELECT since FROM site_links WHERE site = 'tuong-linh'").fetchone()[0]
    pg.commit()
    devs = {(d["site"], d["node"]): d for d in list_devices(pg, **window())}
    for node in ("dispenser-1", "counter-1"):
        d = devs[("tuong-linh", node)]
        assert d["state"] == "unreachable" and d["reachable"] is False and d["link_since"] == cut_at
    assert devs[("tuong-linh", "dispenser-1")]["online"]  # the last state the province saw is kept, not shown
    assert devs[("xuan-quang", "dispenser-1")]["state"] == "online"  # the other centre is untouched
    assert [d["node"] for d in list_devices(pg, **window(), only_unreachable=True)] == ["counter-1", "dispenser-1"]
    assert devs[("tuong-linh", "dispenser-1")]["downtime_s"] == 0  # unreachable is not the device's downtime

    store.write([link(A, False)])  # the retained Will delivered again (an ingester restart): no new cut
    time.sleep(0.3)
    store.write([link(A, True)])  # the link is back
    assert states(pg)[("tuong-linh", "dispenser-1")] == "online"
    [a, b] = list_links(pg, **window())
    assert a["site"] == "tuong-linh" and a["reachable"] is True and b["reachable"] is True and b["cuts"] == []
    [cut] = a["cuts"]
    assert cut["down_at"] == cut_at and cut["up_at"] is not None
    assert cut["seconds"] == round((cut["up_at"] - cut["down_at"]).total_seconds(), 1) >= 0.3
    assert a["unreachable_s"] == cut["seconds"]
    store.write([link(A, True)] * 2)  # the retained birth again
    assert len(list_links(pg, **window())[0]["cuts"]) == 1


def test_a_malformed_or_cleared_link_state_changes_nothing(pg):
    store = Store(pg)
    store.write([link(A, True)])
    res = store.write([(A.bridge_state(), b"down"), (A.bridge_state(), b""), (A.bridge_state(), b"{}")])
    assert res.rejected == 2
    [a] = list_links(pg, **window())
    assert a["reachable"] is True and a["cuts"] == []


def test_unreachable_time_is_counted_inside_the_period(pg):
    Store(pg).write([link(A, True), link(B, True), status(A, "dispenser-1", True), status(B, "dispenser-1", True)])
    t0 = datetime(2026, 10, 1, tzinfo=UTC)
    with pg.transaction(), pg.cursor() as cur:  # cut 2 h across the period's start, 30 min in it; one still open
        cur.executemany("INSERT INTO site_link_cuts (site, down_at, up_at) VALUES (%s, %s, %s)", [
            ("tuong-linh", t0 - timedelta(hours=1), t0 + timedelta(hours=1)),
            ("tuong-linh", t0 + timedelta(hours=5), t0 + timedelta(hours=5, minutes=30)),
            ("tuong-linh", t0 + timedelta(days=3), t0 + timedelta(days=3, hours=1)),  # after the period
            ("xuan-quang", t0 + timedelta(hours=23), None),
        ])
    end = t0 + timedelta(days=1)
    got = {c["site"]: (c["unreachable_s"], [x["seconds"] for x in c["cuts"]])
           for c in list_links(pg, start=t0, end=end)}
    # a cut's own length is whole; the period's total is clipped to the period
    assert got == {"tuong-linh": (1.5 * 3600, [7200.0, 1800.0]), "xuan-quang": (3600.0, [3600.0])}
    assert {d["site"]: d["unreachable_s"] for d in list_devices(pg, start=t0, end=end)} == {
        "tuong-linh": 1.5 * 3600, "xuan-quang": 3600.0}


def test_the_commands_show_an_unreachable_centre(pg, pg_dsn, capsys):
    from xephang_ops.cli import main

    Store(pg).write([link(A, True), status(A, "dispenser-1", True), status(B, "dispenser-1", True)])
    Store(pg).write([link(A, False)])
    assert main(["province", "devices", "--dsn", pg_dsn]) == 0
    out = capsys.readouterr().out
    [row] = [line for line in out.splitlines() if "tuong-linh" in line]
    assert "KHÔNG LIÊN LẠC ĐƯỢC" in row and "trực tuyến" not in row
    assert main(["province", "devices", "--dsn", pg_dsn, "--unreachable", "--json"]) == 0
    assert [(d["site"], d["state"]) for d in json.loads(capsys.readouterr().out)] == [("tuong-linh", "unreachable")]
    assert main(["province", "links", "--dsn", pg_dsn, "--lang", "en"]) == 0
    out = capsys.readouterr().out
    assert "tuong-linh): UNREACHABLE since" in out and "(still down)" in out
    assert "xuan-quang): unknown" in out  # its bridge never said: an old fragment without notifications
