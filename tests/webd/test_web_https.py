"""HTTPS beside HTTP for the head's recording page: what webd's settings refuse, and what the
hub's install (`xephang web cert --auto --if-missing --config webd.toml`) makes and sets."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from webd.config import WebConfig, WebSettings
from webd.main import WebDaemon
from webd.tlscert import certificate_names, make_certificates
from xephang.settings import SettingsError, load_settings
from xephang_ops.cli import main as xephang

REPO = Path(__file__).resolve().parents[2]


def settings_errors(tmp_path: Path, web: str) -> list[str]:
    f = tmp_path / "webd.toml"
    f.write_text(f'site = "tuong-linh"\n[web]\n{web}\n')
    with pytest.raises(SettingsError) as exc:
        load_settings(WebSettings, f)
    return exc.value.errors


def test_settings_list_every_https_mistake_at_once(tmp_path) -> None:
    # an HTTPS port without a certificate, on the HTTP port, beside another bad key: three lines
    errors = settings_errors(tmp_path, 'port = 8080\nhttps_port = 8080\nwifi_name = "' + "x" * 41 + '"')
    assert errors == [
        "web.wifi_name = '" + "x" * 41 + "': tối đa 40 ký tự / String should have at most 40 characters",
        "web: https_port 8080 cần tls_certfile và tls_keyfile (`xephang web cert`) / "
        "https_port 8080 needs tls_certfile and tls_keyfile (`xephang web cert`)",
        "web: https_port và port đều là 8080: HTTP và HTTPS mỗi thứ cần một cổng riêng / "
        "https_port and port are both 8080: HTTP and HTTPS need a port each",
    ]
    assert settings_errors(tmp_path, 'https_port = 443\ntls_certfile = "/c.crt"') == [
        "web: tls_certfile và tls_keyfile phải đi cùng nhau / tls_certfile and tls_keyfile go together"]
    with pytest.raises(ValueError, match="https_port is for a centre's webd"):
        WebConfig(https_port=443, tls_certfile=Path("a"), tls_keyfile=Path("b"), province_dsn="postgresql://x@/x")
    ok = WebConfig(https_port=443, tls_certfile=Path("a"), tls_keyfile=Path("b"))
    assert ok.https_base() == "https://xephang.local" and ok.https_base("192.168.1.10") == "https://192.168.1.10"
    assert WebConfig(https_port=8443, tls_certfile=Path("a"), tls_keyfile=Path("b")).https_base("fe80::1") == \
        "https://[fe80::1]:8443"
    assert WebConfig().https_base("192.168.1.10") is None


def test_a_certificate_webd_cannot_load_stops_it_at_the_start_with_the_reason(tmp_path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    tls = make_certificates(tmp_path / "tls", ["xephang.local"])
    other = make_certificates(tmp_path / "other", ["xephang.local"])
    base = WebSettings(site="tuong-linh", state_dir=tmp_path / "state")
    good = base.model_copy(update={"web": WebConfig(https_port=8443, tls_certfile=tls["cert"], tls_keyfile=tls["key"])})
    assert WebDaemon.preflight_errors(good) == []
    for cert, key, why in ((tmp_path / "gone.crt", tls["key"], "No such file"),
                           (tls["cert"], other["key"], "KEY_VALUES_MISMATCH")):
        bad = base.model_copy(update={"web": WebConfig(https_port=8443, tls_certfile=cert, tls_keyfile=key)})
        (err,) = WebDaemon.preflight_errors(bad)
        assert err.startswith("web.tls_certfile/tls_keyfile: cannot load") and why in err, err


def test_the_hub_install_makes_the_certificate_once_keeps_the_ca_and_sets_webd(tmp_path, capsys) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    out, toml = tmp_path / "web-tls", tmp_path / "webd.toml"
    shutil.copy(REPO / "config" / "webd.example.toml", toml)
    install = ["web", "cert", "--auto", "--if-missing", "--out", str(out), "--config", str(toml)]

    assert xephang(install) == 0
    said = capsys.readouterr().out
    assert "no certificate yet; CA new" in said and "https_port, tls_certfile, tls_keyfile set" in said
    web = tomllib.loads(toml.read_text())["web"]
    assert (web["https_port"], web["tls_certfile"], web["tls_keyfile"]) == (443, str(out / "server.crt"),
                                                                           str(out / "server.key"))
    assert web["public_url"] == "http://xephang.local" and web["port"] == 80  # phones and posters unchanged
    assert "# the install sets these" in toml.read_text()  # the example's comments stay
    names = certificate_names(out / "server.crt")
    assert "xephang.local" in names  # public_url's host
    import socket

    assert socket.gethostname().split(".")[0].lower() + ".local" in names
    ca, crt = (out / "ca.crt").read_bytes(), (out / "server.crt").read_bytes()
    r = subprocess.run(["openssl", "verify", "-CAfile", str(out / "ca.crt"), str(out / "server.crt")],
                       capture_output=True, check=False)
    assert r.returncode == 0, r.stderr

    # the install run again (an update): nothing changes
    before = toml.read_text()
    assert xephang(install) == 0
    said = capsys.readouterr().out
    assert "kept" in said and "already names its certificate" in said
    assert (out / "server.crt").read_bytes() == crt and toml.read_text() == before

    # the hub got a new address: a new server certificate, signed by the same CA the PCs trust
    assert xephang([*install, "10.20.30.40"]) == 0
    assert "not for 10.20.30.40; CA kept" in capsys.readouterr().out
    assert (out / "ca.crt").read_bytes() == ca and (out / "server.crt").read_bytes() != crt
    assert "10.20.30.40" in certificate_names(out / "server.crt")

    # a webd.toml on which HTTPS cannot go (its HTTP port is 443 already): refused, the file untouched
    clash = tmp_path / "clash.toml"
    clash.write_text('[web]\nport = 443\n')
    assert xephang(["web", "cert", "--auto", "--if-missing", "--out", str(out), "--config", str(clash)]) == 1
    assert "https_port and port are both 443" in capsys.readouterr().err
    assert clash.read_text() == '[web]\nport = 443\n'


def test_an_https_port_that_is_taken_stops_webd_for_systemd_to_restart_it(tmp_path, site_file) -> None:
    import socket

    from webd.main import EXIT_WEB
    from xephang.settings import BrokerSettings
    from xephang_ops.mosquitto import free_port

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    tls = make_certificates(tmp_path / "tls", ["localhost"])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web = WebConfig(listen="127.0.0.1", port=free_port(), https_port=taken.getsockname()[1],
                        tls_certfile=tls["cert"], tls_keyfile=tls["key"])
        d = WebDaemon(WebSettings(site="tuong-linh", site_file=site_file, state_dir=tmp_path / "state",
                                  broker=BrokerSettings(port=free_port()), web=web))
        assert d.run() == EXIT_WEB  # the HTTP listener is closed too: nothing half-up
