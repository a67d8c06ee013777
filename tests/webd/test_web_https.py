"""HTTPS beside HTTP for the head's recording page: what webd's settings refuse."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from webd.config import WebConfig, WebSettings
from webd.main import WebDaemon
from webd.tlscert import make_certificates
from xephang.settings import SettingsError, load_settings


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
        "web.wifi_name: String should have at most 40 characters (got '" + "x" * 41 + "')",
        "web: https_port 8080 needs tls_certfile and tls_keyfile (`xephang web cert`)",
        "web: https_port and port are both 8080: HTTP and HTTPS need a port each",
    ]
    assert settings_errors(tmp_path, 'https_port = 443\ntls_certfile = "/c.crt"') == [
        "web: tls_certfile and tls_keyfile go together"]
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
