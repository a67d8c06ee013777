"""A LAN address over http gives the recording page no microphone (the page says so and the
file button still records); the same page over HTTPS, with the certificate `xephang web cert`
makes for that address, gets the microphone."""

from __future__ import annotations

import base64
import hashlib
import socket
import ssl
import subprocess
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from test_voice_browser import CARRIER, chromium_with_mic, result, status
from voicekit import espeak_pack, take, wav_bytes
from webharness import HEAD_PASSWORD, HEAD_USER, SITE, wait_for

from webd.auth import Accounts
from webd.config import WebConfig, WebSettings
from webd.main import WebDaemon
from webd.tlscert import make_certificates
from xephang.settings import BrokerSettings
from xephang_ops.mosquitto import free_port
from xephang_voice import pcm

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def lan_address() -> str:
    """This machine's first non-loopback IPv4 address (what a PC on the LAN would type)."""
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            ip = str(info[4][0])
            if not ip.startswith("127."):
                return ip
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split()
        return next(ip for ip in out if "." in ip and not ip.startswith("127."))
    except (OSError, StopIteration):
        pytest.skip("no LAN address on this machine")


@contextmanager
def webd(tmp: Path, site_file: Path, broker_port: int, node: str, **web: object) -> Iterator[str]:
    accounts = tmp / "accounts.json"
    if not accounts.exists():
        Accounts(accounts).set(HEAD_USER, "head", HEAD_PASSWORD)
    port = free_port()
    scheme = "https" if web.get("tls_certfile") and not web.get("https_port") else "http"
    settings = WebSettings(site=SITE, node=node, site_file=site_file, state_dir=tmp / node,
                           broker=BrokerSettings(port=broker_port),
                           web=WebConfig(listen="0.0.0.0", port=port, public_url=f"{scheme}://{lan_address()}:{port}",
                                         accounts_file=accounts, **web))
    (tmp / node).mkdir()
    d = WebDaemon(settings)
    t = threading.Thread(target=d.run, daemon=True)
    t.start()
    try:
        wait_for(lambda: _listening(port), 15, "webd listening")
        if web.get("https_port"):
            wait_for(lambda: _listening(int(web["https_port"])), 15, "webd listening on its HTTPS port")
        yield f"{scheme}://{lan_address()}:{port}"
    finally:
        d.stop_event.set()
        t.join(10)


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def spki_hash(cert: Path) -> str:
    pub = subprocess.run(["openssl", "x509", "-in", str(cert), "-pubkey", "-noout"], capture_output=True, check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, capture_output=True, check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def open_voice_page(drv, base: str) -> None:
    from selenium.webdriver.common.by import By

    drv.get(base + "/login?next=/head/voice")
    drv.find_element(By.NAME, "username").send_keys(HEAD_USER)
    drv.find_element(By.NAME, "password").send_keys(HEAD_PASSWORD)
    drv.find_element(By.ID, "submit").click()
    wait_for(lambda: drv.execute_script("var l = document.getElementById('voice-clips');"
                                        "return l && l.getAttribute('data-ready');"), 15, "the recording page")


def test_http_on_the_lan_has_no_microphone_but_files_and_https_with_our_certificate_has_it(
        mosquitto, site_file, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    voices = espeak_pack(tmp_path / "voices")
    ip = lan_address()
    mic = tmp_path / "mic.wav"
    mic.write_bytes(wav_bytes(take(voices, CARRIER, before_ms=600, after_ms=1500, rate=48000), 48000))
    word = tmp_path / "hai.wav"
    word.write_bytes(wav_bytes(take(voices, "hai"), voices.sample_rate))
    tls = make_certificates(tmp_path / "tls", ["xephang.local", ip], site=SITE)

    with webd(tmp_path, site_file, mosquitto.port, "web") as base:
        drv = chromium_with_mic(mic)
        try:
            open_voice_page(drv, base)
            assert drv.execute_script("return window.isSecureContext") is False
            assert drv.find_element(By.ID, "voice-nomic").is_displayed()
            assert "https://" in drv.find_element(By.ID, "voice-nomic").text
            assert not drv.find_element(By.CSS_SELECTOR, f"#clip-{CARRIER} button.rec").is_displayed()
            drv.find_element(By.CSS_SELECTOR, "#clip-hai input[type=file]").send_keys(str(word))
            wait_for(lambda: result(drv, "hai") not in ("",), 20, "the file's verdict")
            assert result(drv, "hai") == "kept", status(drv, "hai")
        finally:
            drv.quit()

    with webd(tmp_path, site_file, mosquitto.port, "web-tls", tls_certfile=tls["cert"], tls_keyfile=tls["key"]) as base:
        # a PC that trusts our CA accepts the certificate for the LAN address (chain and name checked)
        ctx = ssl.create_default_context(cafile=str(tls["ca"]))
        with urllib.request.urlopen(base + "/login", context=ctx, timeout=10) as r:
            assert r.status == 200
        with pytest.raises(urllib.error.URLError):  # and one that does not, refuses it
            urllib.request.urlopen(base + "/login", context=ssl.create_default_context(), timeout=10)
        drv = chromium_with_mic(mic, extra=[f"--ignore-certificate-errors-spki-list={spki_hash(tls['cert'])}"])
        try:
            open_voice_page(drv, base)
            assert drv.execute_script("return window.isSecureContext") is True
            assert not drv.find_element(By.ID, "voice-nomic").is_displayed()
            drv.find_element(By.CSS_SELECTOR, f"#clip-{CARRIER} button.rec").click()
            wait_for(lambda: result(drv, CARRIER) not in ("", "recording"), 30, "the microphone take")
            assert result(drv, CARRIER) == "kept", status(drv, CARRIER)
        finally:
            drv.quit()


def test_one_webd_serves_http_and_https_side_by_side_and_the_head_goes_to_https_to_record(
        mosquitto, site_file, tmp_path: Path) -> None:
    """Phones and posters keep http://; the head's menu sends the recording page to the HTTPS
    listener of the same webd, where the browser gives it the microphone."""
    from selenium.webdriver.common.by import By
    from webharness import http_get, login

    ip = lan_address()
    tls = make_certificates(tmp_path / "tls", ["xephang.local", ip], site=SITE)
    https_port = free_port()
    mic = tmp_path / "mic.wav"
    mic.write_bytes(wav_bytes(pcm.silence(100, 48000), 48000))
    with webd(tmp_path, site_file, mosquitto.port, "web-both", tls_certfile=tls["cert"], tls_keyfile=tls["key"],
              https_port=https_port) as base:
        secure = f"https://{ip}:{https_port}"
        assert base.startswith("http://")
        st, body, _ = http_get(base + "/login")  # plain HTTP on `port`, as the phones use it
        assert st == 200 and b'name="csrf"' in body
        ctx = ssl.create_default_context(cafile=str(tls["ca"]))
        with urllib.request.urlopen(secure + "/login", context=ctx, timeout=10) as r:  # HTTPS, our CA trusted
            assert r.status == 200 and b'name="csrf"' in r.read()
        with pytest.raises(urllib.error.URLError):  # a client that does not trust our CA refuses it
            urllib.request.urlopen(secure + "/login", context=ssl.create_default_context(), timeout=10)
        cookie, _ = login(base, HEAD_USER, HEAD_PASSWORD)
        st, body, _ = http_get(base + "/head/voice", headers={"Cookie": cookie})
        assert st == 200 and f'href="{secure}/head/voice" id="nav-voice"'.encode() in body  # the head's menu
        assert f'id="voice-https" href="{secure}/head/voice"'.encode() in body  # the no-microphone banner

        drv = chromium_with_mic(mic, extra=[f"--ignore-certificate-errors-spki-list={spki_hash(tls['cert'])}"])
        try:
            open_voice_page(drv, base)  # logged in over http: no microphone here
            assert drv.execute_script("return window.isSecureContext") is False
            assert drv.find_element(By.ID, "voice-https").is_displayed()
            drv.find_element(By.ID, "voice-https").click()
            wait_for(lambda: drv.current_url.startswith(secure), 15, "the HTTPS listener")
            if "/login" in drv.current_url:  # http's session cookie is SameSite=Strict: another site for the browser
                drv.find_element(By.NAME, "username").send_keys(HEAD_USER)
                drv.find_element(By.NAME, "password").send_keys(HEAD_PASSWORD)
                drv.find_element(By.ID, "submit").click()
            wait_for(lambda: drv.execute_script("var l = document.getElementById('voice-clips');"
                                                "return l && l.getAttribute('data-ready');"), 15, "the recording page")
            assert drv.current_url == secure + "/head/voice"
            assert drv.execute_script("return window.isSecureContext") is True
            assert not drv.find_element(By.ID, "voice-nomic").is_displayed()
            assert drv.find_element(By.CSS_SELECTOR, f"#clip-{CARRIER} button.rec").is_displayed()
            assert drv.find_element(By.ID, "nav-voice").get_attribute("href") == secure + "/head/voice"
        finally:
            drv.quit()


def test_a_silent_connection_to_the_https_listener_is_closed_at_the_handshake_deadline(
        mosquitto, site_file, tmp_path: Path, monkeypatch) -> None:
    """asyncio hands a TLS connection to webd's protocol only after the handshake, and uvicorn gave
    the handshake asyncio's 60 s: silent connections to 443 were kept, 1,100 ran out a Pi's open
    files. Now the handshake has HANDSHAKE_DEADLINE_S (here 1 s); a PC that speaks TLS is served."""
    from webd import server

    monkeypatch.setattr(server, "HANDSHAKE_DEADLINE_S", 1.0)
    tls = make_certificates(tmp_path / "tls", ["xephang.local", "127.0.0.1"], site=SITE)
    with webd(tmp_path, site_file, mosquitto.port, "web-tls", tls_certfile=tls["cert"], tls_keyfile=tls["key"]) as base:
        port = int(base.rsplit(":", 1)[1])
        silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
        try:
            for s in silent:
                s.settimeout(4)
                assert s.recv(1) == b""  # closed by webd, not by our 4 s timeout
        finally:
            for s in silent:
                s.close()
        ctx = ssl.create_default_context(cafile=str(tls["ca"]))
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/login", context=ctx, timeout=10) as r:
            assert r.status == 200
