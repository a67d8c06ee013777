"""`xephang bridge-config`: what a technician installs on a centre's broker."""

from __future__ import annotations

import re

import pytest

from xephang_ops.bridgeconf import BridgeConfigError, BridgeTls, bridge_conf_text
from xephang_ops.cli import main


def directives(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split(" ", 1)) for line in text.splitlines() if line and not line.startswith("#")]


def test_events_summary_and_node_state_go_out_and_nothing_comes_in(tmp_path):
    text = bridge_conf_text(site="tuong-linh", address="mqtt.tinh.example:8883", username="tuong-linh",
                            password="s3cret", tls=BridgeTls(tmp_path / "ca.crt"))
    d = directives(text)
    topics = [v for k, v in d if k == "topic"]
    assert topics == ["xephang/v1/tuong-linh/event/# out 1", "xephang/v1/tuong-linh/state/summary out 1",
                      "xephang/v1/tuong-linh/node/+/status out 1", "xephang/v1/tuong-linh/node/+/alert/+ out 1",
                      "xephang/v1/tuong-linh/node/+/health out 0"]  # health: never queued across a cut
    assert not any(re.search(r"\b(in|both)\b", t) for t in topics)
    got = dict(d)
    assert got["cleansession"] == "false" and got["local_cleansession"] == "false"
    assert got["remote_clientid"] == "xephang-bridge-tuong-linh"
    assert got["queue_qos0_messages"] == "false" and got["persistence"] == "true"
    assert int(got["max_queued_messages"]) >= 100_000  # a week of a busy centre's events
    # … within the site broker's byte cap, which the bridge's file (read last) must not lift to none
    from xephang_ops.brokerconf import MAX_QUEUED_BYTES

    assert int(got["max_queued_bytes"]) == MAX_QUEUED_BYTES
    assert got["bridge_cafile"] == str(tmp_path / "ca.crt") and got["bridge_insecure"] == "false"
    assert got["remote_username"] == "tuong-linh" and got["remote_password"] == "s3cret"
    # the link state goes to the province too (the bridge's Will there says 0): "centre unreachable"
    assert got["notifications"] == "true" and got["notifications_local_only"] == "false"
    assert got["notification_topic"] == "xephang/v1/tuong-linh/bridge/state"


def test_the_province_acl_lets_each_centre_write_only_its_own_topics():
    from xephang_ops.bridgeconf import province_acl_text

    d = directives(province_acl_text(ingest_users=("ingest",)))
    assert ("user", "ingest") in d
    writes = [v for k, v in d if k == "pattern"]
    # only the topics there are: a centre's account left 5,000 retained 60 KB messages at made-up
    # event/… levels under event/#, sent to the ingester again at each of its starts
    assert writes == ["write xephang/v1/%u/event/ticket/+", "write xephang/v1/%u/event/counter/+",
                      "write xephang/v1/%u/event/summary/hourly", "write xephang/v1/%u/state/summary",
                      "write xephang/v1/%u/node/+/status", "write xephang/v1/%u/node/+/alert/+",
                      "write xephang/v1/%u/node/+/health", "write xephang/v1/%u/bridge/state"]
    assert not [v for k, v in d if k == "topic" and not v.startswith("read ")]  # the ingester only reads


def test_cli_writes_the_province_acl(tmp_path):
    out = tmp_path / "acl"
    assert main(["province-acl", "--ingest-user", "ingest-a", "--ingest-user", "ingest-b", "--out", str(out)]) == 0
    d = directives(out.read_text())
    assert ("user", "ingest-a") in d and ("user", "ingest-b") in d
    assert main(["province-acl", "--ingest-user", "Ingest A", "--out", str(out)]) == 2


@pytest.mark.parametrize("kw, msg", [
    ({"site": "Tường Linh"}, "must match"),
    ({"address": "nohost"}, "host:port"),
    ({"username": "a"}, "both"),
])
def test_bad_inputs_are_refused_with_a_reason(kw, msg):
    args = {"site": "tuong-linh", "address": "h:1883", **kw}
    with pytest.raises(BridgeConfigError, match=msg):
        bridge_conf_text(**args)


def test_cli_writes_the_fragment_with_the_password_from_a_file(tmp_path, capsys):
    pw = tmp_path / "pw"
    pw.write_text("s3cret\n")
    (tmp_path / "ca.crt").write_text("x")  # a CA that is not there is refused (tests/tools/test_config_writers.py)
    out = tmp_path / "bridge.conf"
    rc = main(["bridge-config", "--site", "xuan-quang", "--address", "10.0.0.5:8883", "--username", "xuan-quang",
               "--password-file", str(pw), "--tls-ca", str(tmp_path / "ca.crt"), "--out", str(out)])
    assert rc == 0
    text = out.read_text()
    assert "remote_password s3cret\n" in text and "topic xephang/v1/xuan-quang/event/# out 1" in text
    assert out.stat().st_mode & 0o077 == 0o040  # the password is not world-readable
    assert main(["bridge-config", "--site", "x", "--address", "h:1", "--username", "u", "--out", str(out)]) == 2
