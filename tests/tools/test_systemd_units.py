"""The units in systemd/ pass `systemd-analyze verify` with no output at all (it exits 0 even for
invalid values, so any output is a failure) and keep the hardening they promise."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = sorted((Path(__file__).resolve().parents[2] / "systemd").glob("xephang-*.service"))
DAEMONS = {"hubd", "ticketd", "counterd", "displayd", "announcerd"}
DAEMON_UNITS = [u for u in UNITS if u.stem.removeprefix("xephang-") in DAEMONS]  # the boards' daemons


def read_unit(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path)
    return cp


def test_there_is_a_unit_per_daemon():
    assert {u.stem.removeprefix("xephang-") for u in DAEMON_UNITS} == DAEMONS


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed (apt-get install systemd)")
@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_systemd_analyze_verify_says_nothing(unit, tmp_path):
    # verify checks that ExecStart exists: point it at this venv's console scripts instead of /opt
    text = unit.read_text().replace("/opt/xephang/venv/bin/", str(Path(sys.executable).parent) + "/")
    copy = tmp_path / unit.name
    copy.write_text(text)
    res = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    assert (res.stdout + res.stderr).strip() == ""
    assert res.returncode == 0


@pytest.mark.parametrize("unit", DAEMON_UNITS, ids=[u.name for u in DAEMON_UNITS])
def test_each_unit_is_a_watched_hardened_service_of_its_own_user(unit):
    s = read_unit(unit)["Service"]
    assert s["Type"] == "notify" and int(s["WatchdogSec"]) > 0 and s["Restart"] == "on-failure"
    # 78 (the settings cannot work) is not restarted: at RestartSec=5 the start limit (5 in 10 s) is
    # never reached, and such a daemon was started again every 5 s for ever
    assert s["RestartPreventExitStatus"] == "78"
    daemon = unit.stem.removeprefix("xephang-")
    assert s["User"] == s["Group"] == f"xephang-{daemon}" and s["DynamicUser"] == "no"
    assert s["StateDirectory"] == f"xephang/{daemon}"
    assert f"\nEnvironment=XEPHANG_STATE_DIR=/var/lib/xephang/{daemon}\n" in unit.read_text()  # a key may repeat
    for key, want in {"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes", "ProtectHome": "yes",
                      "ReadWritePaths": f"/var/lib/xephang/{daemon}", "CapabilityBoundingSet": ""}.items():
        assert s[key] == want, key
    u = read_unit(unit)["Unit"]
    assert int(u["StartLimitBurst"]) > 0 and int(u["StartLimitIntervalSec"]) > 0
    groups = set(s.get("SupplementaryGroups", "").split())
    assert "xephang" in groups and groups <= {"xephang", "gpio", "lp", "audio", "video", "render"}


def test_no_two_daemons_share_a_user_or_a_writable_folder():
    users = [read_unit(u)["Service"]["User"] for u in UNITS]
    writable = [read_unit(u)["Service"].get("ReadWritePaths") for u in DAEMON_UNITS]
    assert len(set(users)) == len(users) and len(set(writable)) == len(writable)


def test_groups_are_only_what_each_board_needs():
    groups = {u.stem.removeprefix("xephang-"): set(read_unit(u)["Service"].get("SupplementaryGroups", "").split())
              - {"xephang"} for u in DAEMON_UNITS}
    assert groups == {"hubd": set(), "ticketd": {"gpio", "lp"}, "counterd": {"gpio"}, "displayd": {"video", "render"},
                      "announcerd": {"audio"}}


def test_the_hub_waits_for_the_clock():
    u = read_unit(next(u for u in UNITS if u.stem == "xephang-hubd"))["Unit"]
    assert "time-sync.target" in u["After"].split() and "time-sync.target" in u["Wants"].split()
