"""`xephang devices` folds what boards retain; one board's password writes its own status, health and
alerts, with anything in them. Found from outside: a retained health with `uptime_s: NaN` ended the
tool, and 3,000 alerts of 60,000 characters made it print 180 MB on one line (885 MB of memory)."""

from __future__ import annotations

from xephang.contract import MAX_ALERTS_PER_NODE, Alert, NodeHealth, NodeStatus, Topics
from xephang_ops.tools import ALERT_TEXT_SHOWN, DeviceRegistry

T = Topics("tuong-linh")


def _registry_with_display() -> DeviceRegistry:
    reg = DeviceRegistry(T)
    reg.update(T.status("display-hall"), NodeStatus(node="display-hall", online=True, session=1, role="display").to_json())
    return reg


def _line(reg: DeviceRegistry, lang: str = "en") -> str:
    return next(ln for ln in reg.table(lang).splitlines() if ln.startswith("display-hall "))


def test_a_health_saying_nan_or_a_huge_uptime_does_not_end_the_table():
    reg = _registry_with_display()
    nan = b'{"schema":"xephang.node-health.v1","node":"display-hall","role":"display","version":"1","uptime_s":NaN}'
    reg.update(T.health("display-hall"), nan)  # not a number: ignored, logged
    assert reg.devices["display-hall"].health is None
    reg.update(T.health("display-hall"), NodeHealth(node="display-hall", role="display", version="1",
                                                    uptime_s=1e308).to_json())
    line = _line(reg)
    assert " ? " in line and "0" * 30 not in line  # not a 300-digit uptime


def test_alerts_are_kept_to_a_handful_per_node_and_each_is_cut():
    reg = _registry_with_display()
    for i in range(MAX_ALERTS_PER_NODE + 8):
        a = Alert(node="display-hall", id=f"x{i}", message_vi="á" * 60_000, message_en="a" * 60_000)
        reg.update(T.alert("display-hall", f"x{i}"), a.to_json())
    # another node's alert on this node's topic, and an alert whose id is not its topic's: not kept
    reg.update(T.alert("display-hall", "y"), Alert(node="counter-1", id="y", message_vi="z").to_json())
    reg.update(T.alert("display-hall", "w"), Alert(node="display-hall", id="v", message_vi="z").to_json())
    d = reg.devices["display-hall"]
    assert len(d.alerts) == MAX_ALERTS_PER_NODE and d.alerts_not_kept == 10
    line = _line(reg)
    assert line.endswith("(+10 alerts not kept)")
    assert len(line) < MAX_ALERTS_PER_NODE * (ALERT_TEXT_SHOWN + 10) + 200
    assert "(+10 cảnh báo không giữ)" in _line(reg, "vi")
    # clearing one makes room again, and an alert already kept may change
    reg.update(T.alert("display-hall", "x0"), b"")
    reg.update(T.alert("display-hall", "late"), Alert(node="display-hall", id="late", message_vi="mới").to_json())
    reg.update(T.alert("display-hall", "x1"), Alert(node="display-hall", id="x1", message_vi="ngắn").to_json())
    assert "late" in d.alerts and d.alerts["x1"].message_vi == "ngắn" and len(d.alerts) == MAX_ALERTS_PER_NODE
