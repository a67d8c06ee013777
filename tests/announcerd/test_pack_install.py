"""The head installs a recorded pack from the web: the push names a URL and a checksum, the
hall's announcer fetches and checks it before the push applies, and going back needs no download."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.announcerd.test_daemon import (  # noqa: F401 - fixtures
    T,
    clock,
    hub,
    hub_clock,
    make_settings,
    settle,
    start,
    ticket_event,
    wavs,
)
from xephang.contract import ConfigSet
from xephang_voice import pcm
from xephang_voice.compose import Composer
from xephang_voice.voicepack import load_pack, pack_archive, phrase_parts


class PackServer:
    """webd's side, reduced to serving files by name (and counting what it served)."""

    def __init__(self, files: dict[str, bytes], tls: dict[str, Path] | None = None) -> None:
        self.files, self.served = files, []
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                data = owner.files.get(self.path)
                owner.served.append(self.path)
                self.send_response(200 if data is not None else 404)
                self.end_headers()
                self.wfile.write(data or b"")

            def log_message(self, *a: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        if tls:
            import ssl

            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls["cert"], tls["key"])
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server() -> Iterator[PackServer]:
    s = PackServer({})
    yield s
    s.httpd.shutdown()


def _variant(src: Path, dst: Path, name: str) -> Path:
    """A second pack: the synthetic one, renamed and each clip a little quieter-shaped (other bytes)."""
    shutil.copytree(src, dst)
    mf = (dst / "manifest.json").read_text().replace('"name": "', f'"name": "{name}-', 1)
    (dst / "manifest.json").write_text(mf)
    for wav in dst.glob("*.wav"):
        s, r = pcm.read_wav(wav)
        pcm.write_wav(wav, pcm.silence(5, r) + s, r)
    return dst


def push(d, rid: str, sender: str | None, config: dict):
    return d.node_config.handle(ConfigSet(request_id=rid, source=sender or "tech", by="truong-tt", config=config),
                                sender)


def test_a_pushed_pack_is_fetched_checked_spoken_and_rolled_back_without_a_download(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    ours = _variant(synthetic_pack_dir, tmp_path / "ours", "our-voice")
    data = pack_archive(ours)
    assert pack_archive(ours) == data  # reproducible: the checksum names the pack
    sha = hashlib.sha256(data).hexdigest()
    server.files[f"/voice/pack/{sha}.zip"] = data
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1), fake_broker, clock)
    first = d.pack.manifest.name

    wrong = push(d, "web-0001", "web", {"voice_pack_url": f"{server.url}/voice/pack/{sha}.zip",
                                        "voice_pack_sha256": "0" * 64})
    assert wrong.status == "rejected" and "checksum" in wrong.errors[0] and d.pack.manifest.name == first
    gone = push(d, "web-0002", "web", {"voice_pack_url": f"{server.url}/nothing.zip", "voice_pack_sha256": sha})
    assert gone.status == "rejected" and "cannot fetch" in gone.errors[0]
    other = push(d, "web-0003", "web", {"repeats": 5})
    assert other.status == "rejected" and "may set only" in other.errors[0]

    ok = push(d, "web-0004", "web", {"voice_pack_url": f"{server.url}/voice/pack/{sha}.zip", "voice_pack_sha256": sha})
    assert ok.status == "applied", ok.errors
    assert d.pack.manifest.name.startswith("our-voice-")
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1023, 3, at=clock.now()))
    settle(d)
    (wav,) = wavs(tmp_path)
    parts = phrase_parts("vi", number=1023, counter=3, options=d.config.reading())
    assert pcm.to_bytes(pcm.read_wav(wav)[0]) == Composer(load_pack(ours), repeats=1).compose(parts).pcm

    back = push(d, "web-0005", "web", {"voice_pack_url": None, "voice_pack_sha256": None})
    assert back.status == "applied" and d.pack.manifest.name == first
    fetched = len(server.served)
    server.files.clear()  # webd is unreachable now: the installed pack is still on the hall's Pi
    again = push(d, "web-0006", "web", {"voice_pack_url": f"{server.url}/voice/pack/{sha}.zip",
                                        "voice_pack_sha256": sha})
    assert again.status == "applied" and d.pack.manifest.name.startswith("our-voice-")
    assert len(server.served) == fetched  # nothing downloaded for it
    d.teardown()
    d.bus.stop()

    # the hall's Pi lost its installed packs (a new SD card with the old config): fetched again at start
    shutil.rmtree(tmp_path / "state" / "voice" / "installed")
    server.files[f"/voice/pack/{sha}.zip"] = data
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1), fake_broker, clock)
    assert d.pack is not None and d.pack.manifest.name.startswith("our-voice-")
    assert len(server.served) == fetched + 1
    d.teardown()


def test_an_archive_that_escapes_its_folder_or_lacks_clips_is_refused(tmp_path, synthetic_pack_dir) -> None:
    import io
    import zipfile

    from xephang_voice.voicepack import InvalidPack, unpack_archive

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", (synthetic_pack_dir / "manifest.json").read_text())
        z.writestr("../evil.wav", b"x")
    with pytest.raises(InvalidPack, match="unexpected names"):
        unpack_archive(buf.getvalue(), tmp_path / "a")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", (synthetic_pack_dir / "manifest.json").read_text())
    with pytest.raises(InvalidPack, match="file .* is missing"):
        unpack_archive(buf.getvalue(), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_over_https_the_announcer_checks_webd_certificate_with_the_site_ca(tmp_path, synthetic_pack_dir) -> None:
    from announcerd.pack_fetch import fetch_problems
    from webd.tlscert import make_certificates

    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    tls = make_certificates(tmp_path / "tls", ["127.0.0.1"])
    data = pack_archive(synthetic_pack_dir)
    sha = hashlib.sha256(data).hexdigest()
    s = PackServer({f"/voice/pack/{sha}.zip": data}, tls)
    try:
        url = f"{s.url}/voice/pack/{sha}.zip"
        untrusted = fetch_problems(url, sha, tmp_path / "a")
        assert untrusted and "CERTIFICATE_VERIFY_FAILED" in untrusted[0]
        assert fetch_problems(url, sha, tmp_path / "b", ca_file=tls["ca"]) == []
    finally:
        s.httpd.shutdown()
