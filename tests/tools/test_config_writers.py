"""The commands that write a broker's configuration (`broker-config`, `bridge-config`, `province-acl`,
`province-broker-config`) refuse what mosquitto could not run with, and say why in one line: a
"written" file must be one the broker starts with (found by a tools audit)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from xephang_ops.brokerconf import hash_password
from xephang_ops.cli import main
from xephang_ops.mosquitto import find_mosquitto, free_port, wait_port

SITE_FILE = Path(__file__).resolve().parents[2] / "config" / "site.example.toml"


def directives(text: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))


# ---------------------------------------------------------------------------------------------
# broker-config: listeners on one port


@pytest.mark.parametrize("ports", [
    ["--port", "19020", "--tech-port", "19020"],  # "--tech-port 1883" typed for 1884
    ["--port", "19020", "--tech-port", "0", "--tls-port", "19020"],
    ["--port", "1883", "--tech-port", "8883"],  # the TLS listener's default port
])
def test_broker_config_refuses_two_listeners_on_one_port(tmp_path, capsys, ports):
    tls = []
    if "--tls-port" in ports or "8883" in ports:
        for f in ("ca", "cert", "key"):
            (tmp_path / f).write_text("x")
        tls = ["--tls-ca", str(tmp_path / "ca"), "--tls-cert", str(tmp_path / "cert"), "--tls-key", str(tmp_path / "key")]
    out = tmp_path / "broker"
    assert main(["broker-config", "--site-file", str(SITE_FILE), "--out", str(out), *ports, *tls]) == 2
    err = capsys.readouterr().err
    assert "cùng cổng / share port" in err and "Traceback" not in err
    assert not out.exists()


def test_broker_config_without_tls_does_not_mind_the_unused_tls_port(tmp_path):
    out = tmp_path / "broker"
    assert main(["broker-config", "--site-file", str(SITE_FILE), "--out", str(out), "--port", "8883",
                 "--tech-port", "1884"]) == 0
    assert "listener 8883" in (out / "mosquitto.conf").read_text()


# ---------------------------------------------------------------------------------------------
# an output that cannot be written: one line, exit 2, no traceback


def _province_files(tmp_path: Path) -> tuple[Path, Path]:
    pw, acl = tmp_path / "passwd", tmp_path / "acl"
    pw.write_text(f"ingest:{hash_password('x' * 20)}\n")
    acl.write_text("user ingest\n")
    return pw, acl


@pytest.mark.parametrize("command", ["broker-config", "bridge-config", "province-acl", "province-broker-config"])
def test_an_output_under_a_file_is_refused_in_one_line(tmp_path, capsys, command):
    (tmp_path / "afile").write_text("")
    out = str(tmp_path / "afile" / "x")
    pw, acl = _province_files(tmp_path)
    argv = {
        "broker-config": ["--site-file", str(SITE_FILE)],
        "bridge-config": ["--site", "tuong-linh", "--address", "p.example:8883", "--username", "u",
                          "--password-file", str(pw)],
        "province-acl": [],
        "province-broker-config": ["--password-file", str(pw), "--acl-file", str(acl)],
    }[command]
    assert main([command, *argv, "--out", out]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("không ghi được / cannot write ") and "afile" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# bridge-config: a port that is not one, a CA that is not there


@pytest.mark.parametrize("address", ["p.example:88x3", "p.example:", "p.example:99999", ":8883"])
def test_bridge_config_refuses_an_address_without_a_usable_port(tmp_path, capsys, address):
    out = tmp_path / "b.conf"
    assert main(["bridge-config", "--site", "tuong-linh", "--address", address, "--out", str(out)]) == 2
    assert "host:port" in capsys.readouterr().err
    assert not out.exists()


def test_bridge_config_refuses_a_ca_that_does_not_exist_and_writes_an_absolute_one(tmp_path, capsys, monkeypatch):
    out = tmp_path / "b.conf"
    monkeypatch.chdir(tmp_path)
    assert main(["bridge-config", "--site", "tuong-linh", "--address", "p.example:8883", "--tls-ca", "ca.crt",
                 "--out", str(out)]) == 2
    assert "không có tệp / no such file: --tls-ca ca.crt" in capsys.readouterr().err
    assert not out.exists()
    (tmp_path / "ca.crt").write_text("x")
    assert main(["bridge-config", "--site", "tuong-linh", "--address", "p.example:8883", "--tls-ca", "ca.crt",
                 "--out", str(out)]) == 0
    assert directives(out.read_text())["bridge_cafile"] == str(tmp_path / "ca.crt")  # systemd starts it from /


# ---------------------------------------------------------------------------------------------
# province-broker-config: absolute paths to files that exist


def test_province_broker_config_refuses_files_that_do_not_exist(tmp_path, capsys):
    out = tmp_path / "p.conf"
    assert main(["province-broker-config", "--password-file", str(tmp_path / "passwd"), "--acl-file",
                 str(tmp_path / "acl"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "không có tệp / no such file: --password-file" in err and "--acl-file" in err
    assert not out.exists()


def test_province_broker_config_writes_absolute_paths_mosquitto_starts_with_from_root(tmp_path, monkeypatch):
    """The natural sequence (`province-acl` writes ./acl) in a folder, and mosquitto started from /
    as systemd starts it: with relative paths it stopped at once ("Unable to open pwfile")."""
    monkeypatch.chdir(tmp_path)
    assert main(["province-acl"]) == 0
    Path("passwd").write_text(f"ingest:{hash_password('x' * 20)}\n")
    port = free_port()
    assert main(["province-broker-config", "--password-file", "passwd", "--acl-file", "acl", "--port", str(port),
                 "--listen", "127.0.0.1", "--out", "prov.conf"]) == 0
    got = directives(Path("prov.conf").read_text())
    assert got["password_file"] == str(tmp_path / "passwd") and got["acl_file"] == str(tmp_path / "acl")
    mosquitto = find_mosquitto()
    if not mosquitto:
        pytest.skip("mosquitto is not installed")
    conf = tmp_path / "m.conf"
    conf.write_text("persistence false\n" + ("user root\n" if os.geteuid() == 0 else "")
                    + Path("prov.conf").read_text())
    proc = subprocess.Popen([mosquitto, "-c", str(conf)], cwd="/", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        started = wait_port(port, 10)
        assert started and proc.poll() is None, proc.communicate(timeout=5)[0].decode(errors="replace")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
