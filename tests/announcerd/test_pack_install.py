"""The head installs a recorded pack from the web: the push names a URL and a checksum, the
hall's announcer fetches and checks it before the push applies, and going back needs no download."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from announcerd.main import Announcer
from tests.announcerd.test_daemon import (  # noqa: F401 - fixtures
    SITE,
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
from xephang.contract import ConfigAck, ConfigSet, decode
from xephang.testing import FakeBus
from xephang_voice import pcm
from xephang_voice.voicepack import Composer, load_pack, pack_archive, phrase_parts


class PackServer:
    """webd's side, reduced to serving files by name (and counting what it served).

    A path in ``held`` is sent in two halves: the first, then ``started`` is set, and the rest
    only once ``release`` is set (a slow LAN, a busy hub). ``redirects`` answer 302 elsewhere;
    ``drip`` paths send one byte every 50 ms and never end (``dripping`` is set once one began);
    a ``silent`` path is not answered at all (``started`` set as it is asked) until ``release``."""

    def __init__(self, files: dict[str, bytes], tls: dict[str, Path] | None = None) -> None:
        self.files, self.served = files, []
        self.held: set[str] = set()
        self.redirects: dict[str, str] = {}
        self.drip: set[str] = set()
        self.silent: set[str] = set()
        self.started, self.release, self.closing = threading.Event(), threading.Event(), threading.Event()
        self.dripping = threading.Event()  # a drip path has begun to answer
        self.on_get: Callable[[str], None] | None = None  # told each path asked, as it is asked
        owner = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                if owner.on_get is not None:
                    owner.on_get(self.path)
                data = owner.files.get(self.path)
                owner.served.append(self.path)
                if self.path in owner.silent:
                    owner.started.set()
                    owner.release.wait(30)
                if self.path in owner.redirects:
                    self.send_response(302)
                    self.send_header("Location", owner.redirects[self.path])
                    self.end_headers()
                    return
                if self.path in owner.drip:
                    self.send_response(200)
                    self.end_headers()
                    owner.dripping.set()
                    while not owner.closing.wait(0.05):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                    return
                self.send_response(200 if data is not None else 404)
                if data is not None:
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data is not None and self.path in owner.held:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    owner.started.set()
                    owner.release.wait(30)
                    data = data[len(data) // 2:]
                self.wfile.write(data or b"")

            def log_message(self, *a: object) -> None:
                pass

            def handle(self) -> None:
                try:
                    super().handle()
                except OSError:  # the announcer gave up on a slow answer and closed the socket
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
    s.release.set()
    s.closing.set()
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


def send(d, rid: str, sender: str | None, config: dict) -> ConfigAck | None:
    """A push as it arrives (the ack, or None: it is being prepared off the loop)."""
    return d.node_config.handle(ConfigSet(request_id=rid, source=sender or "tech", by="truong-tt", config=config),
                                sender)


def answer(d, rid: str, timeout: float = 10.0) -> ConfigAck:
    """Run the announcer's loop until the push ``rid`` is answered on its ack topic."""
    found: list[ConfigAck] = []

    def answered(d) -> bool:
        found[:] = [a for _, raw in d.bus._fake_broker.messages(T.config_ack("announcer-hall"))
                    if (a := decode(ConfigAck, raw)).request_id == rid]
        return bool(found)

    settle(d, until=answered, timeout=timeout)
    return found[-1]


def push(d, rid: str, sender: str | None, config: dict) -> ConfigAck:
    """A push and its answer (a pack's comes once it is fetched and checked)."""
    return send(d, rid, sender, config) or answer(d, rid)


def test_a_pushed_pack_is_fetched_checked_spoken_and_rolled_back_without_a_download(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    ours = _variant(synthetic_pack_dir, tmp_path / "ours", "our-voice")
    data = pack_archive(ours)
    assert pack_archive(ours) == data  # reproducible: the checksum names the pack
    sha = hashlib.sha256(data).hexdigest()
    server.files[f"/voice/pack/{sha}.zip"] = data
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    first = d.pack.manifest.name

    server.files[f"/voice/pack/{'0' * 64}.zip"] = data  # served under another checksum than its own
    wrong = push(d, "web-0001", "web", {"voice_pack_url": f"{server.url}/voice/pack/{'0' * 64}.zip",
                                        "voice_pack_sha256": "0" * 64})
    assert wrong.status == "rejected" and "checksum" in wrong.errors[0] and d.pack.manifest.name == first
    gone = push(d, "web-0002", "web", {"voice_pack_url": f"{server.url}/voice/pack/{'9' * 64}.zip",
                                       "voice_pack_sha256": "9" * 64})
    assert gone.status == "rejected" and "cannot fetch" in gone.errors[0]
    # the web account names only webd's own pack path at webd's own origin (web_origin): its password
    # cannot make the speaker fetch (or probe) anything else on the LAN, and nothing is asked of anyone
    asked = len(server.served)
    port = int(server.url.rsplit(":", 1)[1])
    probes = {f"{server.url}/nothing.zip": "only a pack webd serves",
              f"{server.url}/voice/pack/{'9' * 64}.zip?x=/voice/pack/{sha}.zip": "only from webd at",
              f"http://192.168.1.1/admin/voice/pack/{sha}.zip": "only from webd at",
              f"http://127.0.0.1:{port + 1}/voice/pack/{sha}.zip": "only from webd at"}
    for n, (url, why) in enumerate(probes.items()):
        probe = push(d, f"web-001{n}", "web", {"voice_pack_url": url, "voice_pack_sha256": sha})
        assert probe.status == "rejected" and why in probe.errors[0], (url, probe.errors)
    assert len(server.served) == asked
    alone = push(d, "web-0019", "web", {"voice_pack_sha256": sha})  # would be fetched from a technician's URL
    assert alone.status == "rejected" and "together" in alone.errors[0]
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
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    assert d.pack is not None and d.pack.manifest.name.startswith("our-voice-")
    assert len(server.served) == fetched + 1
    d.teardown()


def test_without_web_origin_the_web_account_may_name_only_the_broker_host_on_webd_ports(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server, monkeypatch) -> None:  # noqa: F811 - fixtures
    """webd runs on the hub's Pi next to Mosquitto: with ``web_origin`` unset, the web account may name
    the broker's host on port 80 (or 443 for https) and nothing else. The test's server stands in for the
    hub's port 80 as the HTTP proxy of the download, so it sees the very URL the speaker asked for."""
    from xephang.settings import BrokerSettings

    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", server.url)
    ours = _variant(synthetic_pack_dir, tmp_path / "ours", "our-voice")
    data = pack_archive(ours)
    sha = hashlib.sha256(data).hexdigest()
    at = f"/voice/pack/{sha}.zip"
    hub_url = f"http://XEPHANG-HUB.local:80{at}"  # webd's public_url as a technician might have typed it
    server.files[hub_url] = data  # a proxy is asked for the whole URL
    settings = make_settings(tmp_path, synthetic_pack_dir, repeats=1)
    settings.broker = BrokerSettings(host="xephang-hub.local")
    d = start(settings, fake_broker, clock)
    first = d.pack.manifest.name

    probes = {  # another host, another port, and URLs a parser and the downloader could read two ways
        "another host": f"http://192.168.1.20{at}",
        "another port": f"http://xephang-hub.local:8080{at}",
        "https on another port": f"https://xephang-hub.local:8443{at}",
        "user part": f"http://xephang-hub.local@192.168.1.20{at}",
        "user part, reversed": f"http://192.168.1.20#@xephang-hub.local{at}",
        "escaped at": f"http://192.168.1.20%40xephang-hub.local{at}",
        "backslash": f"http://192.168.1.20\\@xephang-hub.local{at}",
        "port zero": f"http://xephang-hub.local:0{at}",
    }
    for n, (what, url) in enumerate(probes.items()):
        ack = push(d, f"web-06{n:02d}", "web", {"voice_pack_url": url, "voice_pack_sha256": sha})
        assert ack.status == "rejected", (what, ack)
        assert ack.errors[0].startswith("trang web chỉ được cài gói giọng từ webd ở http://xephang-hub.local"), ack.errors
        assert " / the web may install a pack only from webd at http://xephang-hub.local or https://xephang-hub.local " \
            "(web_origin unset, so the broker's host" in ack.errors[0], (what, ack.errors)
    assert server.served == [] and d.pack.manifest.name == first  # refused before any request
    # the web account cannot move the origin; a technician can (and may name any URL, as before)
    moved = push(d, "web-0690", "web", {"web_origin": "http://192.168.1.20"})
    assert moved.status == "rejected" and "may set only" in moved.errors[0]

    ok = push(d, "web-0699", "web", {"voice_pack_url": hub_url, "voice_pack_sha256": sha})
    assert ok.status == "applied", ok.errors
    assert server.served == [hub_url]  # asked at the hub's own origin, port 80
    assert d.pack.manifest.name.startswith("our-voice-")
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


def _lying_sizes(data: bytes, name: str, size: int) -> bytes:
    """The zip with ``name``'s uncompressed size rewritten to ``size`` in its local and central headers."""
    import struct

    out, nb = bytearray(data), name.encode()
    for sig, size_at, len_at, name_at in ((b"PK\x03\x04", 22, 26, 30), (b"PK\x01\x02", 24, 28, 46)):
        i = out.find(sig)
        while i >= 0:
            n = struct.unpack_from("<H", out, i + len_at)[0]
            if out[i + name_at:i + name_at + n] == nb:
                struct.pack_into("<I", out, i + size_at, size)
            i = out.find(sig, i + 4)
    return bytes(out)


def _archive_of(entries: list[tuple[str, bytes, int]], method: int) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw, attr in entries:
            info = zipfile.ZipInfo(name)
            info.compress_type, info.external_attr = method, attr
            if len(raw) == 1:  # a member of 200 MB of that byte, written in pieces (the test's memory stays small)
                with z.open(info, "w", force_zip64=False) as f:
                    for _ in range(200):
                        f.write(raw * (1 << 20))
            else:
                z.writestr(info, raw)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["symlink", "duplicate-wav", "duplicate-manifest", "absolute", "backslash", "folder",
                                  "manifest-outside", "lying-bomb", "lying-stored", "bzip2"])
def test_a_hostile_archive_is_refused_with_a_reason_and_bounded_memory(tmp_path, synthetic_pack_dir, case) -> None:
    """Members that are links, twice there, outside the folder, or a size that lies (a zip bomb:
    200 MB of zeros declared as 1 KB) never reach the disk or the memory: an InvalidPack, not a crash."""
    import tracemalloc
    import zipfile

    from xephang_voice.voicepack import InvalidPack, unpack_archive

    files = [("manifest.json", (synthetic_pack_dir / "manifest.json").read_bytes(), 0)] + \
        [(p.name, p.read_bytes(), 0o644 << 16) for p in sorted(synthetic_pack_dir.glob("*.wav"))]
    first = files[1][0]
    rest = [f for f in files if f[0] != first]
    deflated = zipfile.ZIP_DEFLATED
    data = {
        "symlink": lambda: _archive_of(rest + [(first, b"/etc/passwd", 0o120777 << 16)], deflated),
        "duplicate-wav": lambda: _archive_of(files + [(first, b"RIFFjunk", 0)], deflated),
        "duplicate-manifest": lambda: _archive_of(files + [("manifest.json", b"{}", 0)], deflated),
        "absolute": lambda: _archive_of(files + [("/tmp/x.wav", b"x", 0)], deflated),
        "backslash": lambda: _archive_of(files + [("..\\x.wav", b"x", 0)], deflated),
        "folder": lambda: _archive_of(files + [("sub/", b"", 0)], deflated),
        "manifest-outside": lambda: _archive_of([("manifest.json", files[0][1].replace(
            f'"{first}"'.encode(), b'"../../etc/passwd"'), 0), *files[1:]], deflated),
        "lying-bomb": lambda: _lying_sizes(_archive_of(rest + [(first, b"\0", 0)], deflated), first, 1024),
        "lying-stored": lambda: _lying_sizes(_archive_of(files, zipfile.ZIP_STORED), first, 16),
        "bzip2": lambda: _archive_of(files, zipfile.ZIP_BZIP2),
    }[case]
    with pytest.warns(UserWarning) if case.startswith("duplicate") else contextlib.nullcontext():
        archive = data()
    tracemalloc.start()
    try:
        with pytest.raises(InvalidPack) as refused:
            unpack_archive(archive, tmp_path / "pack")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"{case}: {peak} bytes at the peak"
    assert refused.value.problems and not (tmp_path / "pack").exists() and not (tmp_path / "pack.tmp").exists()
    if case.startswith("lying"):
        assert f"{first}: Bad CRC-32" in str(refused.value), refused.value  # caught at its declared size
    if case == "manifest-outside":
        assert f"clips.{first.removesuffix('.wav')}.file: String should match pattern" in str(refused.value)
    assert not (tmp_path / "etc").exists() and not list(tmp_path.rglob("x.wav"))


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


def _said_with(pack_dir: Path, wav: Path, number: int, counter: int, d) -> bool:
    parts = phrase_parts("vi", number=number, counter=counter, options=d.config.reading())
    return pcm.to_bytes(pcm.read_wav(wav)[0]) == Composer(load_pack(pack_dir), repeats=1).compose(parts).pcm


def test_calls_are_spoken_in_the_old_voice_while_a_new_pack_downloads_and_a_second_push_is_told_busy(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    ours = _variant(synthetic_pack_dir, tmp_path / "ours", "our-voice")
    data = pack_archive(ours)
    sha = hashlib.sha256(data).hexdigest()
    path = f"/voice/pack/{sha}.zip"
    server.files[path] = data
    server.held.add(path)  # half the archive, then the hub's Pi stalls until released
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    first = d.pack.manifest.name

    assert send(d, "web-0101", "web", {"voice_pack_url": server.url + path, "voice_pack_sha256": sha}) is None
    assert server.started.wait(10), "the announcer never started the download"
    published = time.monotonic()
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1023, 3, at=clock.now()))
    settle(d, until=lambda d: bool(d.last_played))
    delay = time.monotonic() - published
    assert not server.release.is_set()  # spoken while the download is still stalled
    (wav,) = wavs(tmp_path)
    assert _said_with(synthetic_pack_dir, wav, 1023, 3, d)  # in the old voice
    assert d.pack.manifest.name == first and d.node_config.preparing is not None
    assert not [m for m in fake_broker.messages(T.config_ack("announcer-hall")) if b"web-0101" in m[1]]
    print(f"call spoken {delay * 1000:.0f} ms after it was published, the pack download still stalled")

    # another push from the web meanwhile would be merged with the config before the pack: refused, busy
    busy = send(d, "web-0102", "web", {"voice_pack_url": None, "voice_pack_sha256": None})
    assert busy is not None and busy.status == "rejected" and busy.errors[0].startswith("đang bận: lần đẩy web-0101") \
        and " / busy: push web-0101" in busy.errors[0]
    assert d.config.voice_pack_url is None
    assert send(d, "web-0101", "web", {"voice_pack_url": server.url + path, "voice_pack_sha256": sha}) is None

    server.release.set()
    ok = answer(d, "web-0101")
    assert ok.status == "applied", ok.errors
    assert d.pack.manifest.name.startswith("our-voice-")
    hub.publish(T.event("ticket", "called"), ticket_event(2, 1024, 4, at=clock.now()))
    settle(d)
    assert _said_with(ours, wavs(tmp_path)[-1], 1024, 4, d)  # the next call in the new voice
    again = push(d, "web-0102", "web", {"voice_pack_url": None, "voice_pack_sha256": None})  # sent again once answered
    assert again.status == "applied" and d.pack.manifest.name == first
    d.teardown()


def test_a_technician_push_stops_the_web_accounts_stalled_install_and_is_taken_at_once(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    """Someone with webd's password pushes a pack whose download stalls: without this, every push
    would be refused busy until the 20 s deadline, again and again. A technician's push stops it."""
    sha = _stuck_archive(server, synthetic_pack_dir)  # half the archive, then nothing until released
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    first = d.pack.manifest.name
    assert send(d, "web-0701", "web", {"voice_pack_url": f"{server.url}/voice/pack/{sha}.zip",
                                       "voice_pack_sha256": sha}) is None
    assert server.started.wait(10), "the announcer never started the download"

    t0 = time.monotonic()
    taken = send(d, "tech-0702", None, {"max_age_s": 120})
    took = time.monotonic() - t0
    assert taken is not None and taken.status == "applied" and d.config.max_age_s == 120, taken
    assert took < 2.5, took  # not waiting for the stalled read (5 s socket timeout): the loop never blocks
    assert not server.release.is_set() and d.node_config.preparing is None
    stopped = answer(d, "web-0701")  # the web's push is answered at once, refused
    assert stopped.status == "rejected" and stopped.errors[0].startswith(
        "đã dừng: lần đẩy tech-0702 của truong-tt (kỹ thuật viên) được nhận"), stopped.errors
    assert " / stopped: push tech-0702 by truong-tt (a technician) took over" in stopped.errors[0]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1023, 3, at=clock.now()))
    settle(d, until=lambda d: bool(d.last_played))  # spoken, in the old voice, the download still stalled
    assert _said_with(synthetic_pack_dir, wavs(tmp_path)[-1], 1023, 3, d) and d.pack.manifest.name == first

    server.release.set()  # the stopped worker ends; nothing of its push applies, late or not
    for t in [t for t in threading.enumerate() if t.name == "config-prepare-web-0701"]:
        t.join(10)
    d.step(timeout=0.05)
    assert d.config.voice_pack_url is None and d.pack.manifest.name == first and d.config.max_age_s == 120
    d.teardown()


def test_a_technicians_pack_waits_for_the_stopped_web_install_and_the_web_is_busy_meanwhile(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    ours = _variant(synthetic_pack_dir, tmp_path / "ours", "tech-voice")
    tech_sha = _stuck_archive(server, ours)  # the technician's pack, held until released
    drip = f"/voice/pack/{'7' * 64}.zip"
    server.drip.add(drip)  # the web's URL sends a byte every 50 ms and never ends
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    first = d.pack.manifest.name
    assert send(d, "web-0801", "web", {"voice_pack_url": server.url + drip, "voice_pack_sha256": "7" * 64}) is None
    assert server.dripping.wait(10)
    web_worker = next(t for t in threading.enumerate() if t.name == "config-prepare-web-0801")

    tech_url = f"http://127.0.0.1:{server.httpd.server_port}/voice/pack/{tech_sha}.zip"  # any URL, for a technician
    assert send(d, "tech-0802", None, {"voice_pack_url": tech_url, "voice_pack_sha256": tech_sha}) is None
    assert answer(d, "web-0801").errors[0].startswith("đã dừng: lần đẩy tech-0802")
    web_worker.join(5)  # it stops at its next read (the drip would go on for the whole 20 s deadline)
    assert not web_worker.is_alive()
    assert server.started.wait(10), "the technician's download never started"

    # now the technician's install runs: a push from the web is refused busy, it does not stop it
    busy = send(d, "web-0803", "web", {"voice_pack_url": None, "voice_pack_sha256": None})
    assert busy is not None and busy.status == "rejected" and busy.errors[0].startswith("đang bận: lần đẩy tech-0802"), busy
    assert d.node_config.preparing is not None and d.node_config.preparing.push.request_id == "tech-0802"
    server.release.set()
    ok = answer(d, "tech-0802")
    assert ok.status == "applied", ok.errors
    assert d.pack.manifest.name.startswith("tech-voice-") and d.pack.manifest.name != first
    assert d.config.voice_pack_sha256 == tech_sha
    d.teardown()


def test_a_technicians_pack_is_fetched_only_once_the_stopped_web_download_has_ended(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server, monkeypatch) -> None:  # noqa: F811 - fixtures
    """A download blocked in a read notices the stop only when the read times out: the technician's
    install waits for it on its own worker (never two downloads writing the installed packs at once),
    the loop does not."""
    import announcerd.pack_fetch as pack_fetch

    monkeypatch.setattr(pack_fetch, "SOCKET_TIMEOUT_S", 3.0)  # how long the web's unanswered request blocks
    web_sha = "b" * 64
    server.silent.add(f"/voice/pack/{web_sha}.zip")  # asked, never answered here: blocked until the timeout
    ours = _variant(synthetic_pack_dir, tmp_path / "ours", "tech-voice")
    data = pack_archive(ours)
    tech_sha = hashlib.sha256(data).hexdigest()
    server.files[f"/voice/pack/{tech_sha}.zip"] = data
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    assert send(d, "web-0901", "web", {"voice_pack_url": f"{server.url}/voice/pack/{web_sha}.zip",
                                       "voice_pack_sha256": web_sha}) is None
    assert server.started.wait(10)
    web_worker = next(t for t in threading.enumerate() if t.name == "config-prepare-web-0901")
    asked: list[tuple[str, bool]] = []
    server.on_get = lambda path: asked.append((path, web_worker.is_alive()))

    assert send(d, "tech-0902", None, {"voice_pack_url": f"{server.url}/voice/pack/{tech_sha}.zip",
                                       "voice_pack_sha256": tech_sha}) is None
    ok = answer(d, "tech-0902")
    assert ok.status == "applied", ok.errors
    assert asked == [(f"/voice/pack/{tech_sha}.zip", False)]  # asked for once the web's worker had ended
    assert d.pack.manifest.name.startswith("tech-voice-")
    d.teardown()


def test_a_stopped_download_that_does_not_end_in_time_refuses_the_technicians_pack_and_nothing_hangs(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server, monkeypatch) -> None:  # noqa: F811 - fixtures
    import announcerd.pack_fetch as pack_fetch

    monkeypatch.setattr(pack_fetch, "SOCKET_TIMEOUT_S", 3.0)  # the web's unanswered request outlasts the wait
    web_sha = "c" * 64
    server.silent.add(f"/voice/pack/{web_sha}.zip")
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    d.node_config.yield_wait_s = 0.3
    assert send(d, "web-1001", "web", {"voice_pack_url": f"{server.url}/voice/pack/{web_sha}.zip",
                                       "voice_pack_sha256": web_sha}) is None
    assert server.started.wait(10)
    asked: list[str] = []
    server.on_get = asked.append
    assert send(d, "tech-1002", None, {"voice_pack_url": f"{server.url}/voice/pack/{'a' * 64}.zip",
                                       "voice_pack_sha256": "a" * 64}) is None
    ack = answer(d, "tech-1002")
    assert ack.status == "rejected" and ack.errors[0] == ("push web-1001, stopped for this one, has not ended after "
                                                          "0.3 s; try again"), ack.errors
    assert asked == [] and d.node_config.preparing is None  # nothing fetched; the next push is taken
    assert push(d, "tech-1003", None, {"repeats": 2}).status == "applied"
    d.teardown()


def _zip(entries: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, raw in entries.items():
            z.writestr(name, raw)
    return buf.getvalue()


def test_hostile_urls_and_archives_are_refused_and_the_hall_keeps_its_voice(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server, monkeypatch) -> None:  # noqa: F811 - fixtures
    import announcerd.pack_fetch as pack_fetch

    monkeypatch.setattr(pack_fetch, "FETCH_DEADLINE_S", 1.0)
    manifest = (synthetic_pack_dir / "manifest.json").read_bytes()
    bodies = {
        "/not-a-zip": b"<html>hello</html>",
        "/escapes": _zip({"manifest.json": manifest, "../evil.wav": b"x"}),
        "/no-clips": _zip({"manifest.json": manifest}),
        "/garbage-wav": _zip({"manifest.json": manifest, **{f.name: b"RIFF????WAVEfmt " for f in
                                                            synthetic_pack_dir.glob("*.wav")}}),
    }
    shas = {p: hashlib.sha256(b).hexdigest() for p, b in bodies.items()} | {"/to-ftp": "1" * 64, "/drip": "2" * 64}
    at = {p: f"/voice/pack/{sha}.zip" for p, sha in shas.items()}  # webd's pack path: the web may name no other
    server.files.update({at[p]: b for p, b in bodies.items()})
    server.redirects[at["/to-ftp"]] = "ftp://127.0.0.1/pack.zip"
    server.drip.add(at["/drip"])
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    first = d.pack.manifest.name
    cases = {
        **{p: (server.url + at[p], shas[p]) for p in shas},
        "bad-port": (f"http://127.0.0.1:port/voice/pack/{'3' * 64}.zip", "3" * 64),
        "bad-host": (f"http://[::1/voice/pack/{'4' * 64}.zip", "4" * 64),
        "nobody": (f"http://127.0.0.1:9/voice/pack/{'5' * 64}.zip", "5" * 64),
    }
    expect = {"/not-a-zip": "not a pack archive", "/escapes": "unexpected names", "/no-clips": "is missing",
              "/garbage-wav": "not a PCM WAV file", "/to-ftp": "redirect", "/drip": "took over 1 s",
              "bad-port": "cannot fetch", "bad-host": "only from webd at", "nobody": "cannot fetch"}
    for n, (case, (url, sha)) in enumerate(cases.items()):
        sender = None if case in ("bad-port", "nobody") else "web"  # a technician's URL may name any host
        ack = push(d, f"web-02{n:02d}", sender, {"voice_pack_url": url, "voice_pack_sha256": sha})
        assert ack.status == "rejected" and expect[case] in " ".join(ack.errors), (case, ack.errors)
        assert d.node_config.preparing is None
    assert d.pack.manifest.name == first and d.config.voice_pack_url is None

    # a job that fails outright (a bug, a full disk) refuses its push; the daemon goes on
    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(pack_fetch, "fetch_pack", broken)
    ack = push(d, "web-0300", "web", {"voice_pack_url": f"{server.url}/voice/pack/{'6' * 64}.zip",
                                      "voice_pack_sha256": "6" * 64})
    assert ack.status == "rejected" and "RuntimeError: disk on fire" in ack.errors[0]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1023, 3, at=clock.now()))
    settle(d)
    assert _said_with(synthetic_pack_dir, wavs(tmp_path)[-1], 1023, 3, d)
    assert not [t for t in threading.enumerate() if t.name.startswith("config-prepare-") and t.is_alive()]
    d.teardown()


def _stuck_archive(server, pack_dir) -> str:
    """The pack served at webd's path for it by a server that holds the answer until released; its SHA-256."""
    data = pack_archive(pack_dir)
    sha = hashlib.sha256(data).hexdigest()
    server.files[f"/voice/pack/{sha}.zip"] = data
    server.held.add(f"/voice/pack/{sha}.zip")
    return sha


def test_a_download_that_never_answers_is_given_up_and_the_next_push_is_taken(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    sha = _stuck_archive(server, synthetic_pack_dir)
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url), fake_broker, clock)
    d.node_config.prepare_timeout_s = 0.5  # the safety net behind the download's own deadline
    assert send(d, "web-0401", "web", {"voice_pack_url": f"{server.url}/voice/pack/{sha}.zip", "voice_pack_sha256": sha}) is None
    ack = answer(d, "web-0401")
    assert ack.status == "rejected" and "took over 0.5 s" in ack.errors[0]
    assert push(d, "tech-0402", None, {"repeats": 2}).status == "applied"
    server.release.set()  # the abandoned worker ends; its late verdict changes nothing
    for t in [t for t in threading.enumerate() if t.name == "config-prepare-web-0401"]:
        t.join(10)
    d.step(timeout=0.05)
    assert d.config.voice_pack_url is None and d.config.repeats == 2
    d.teardown()


def test_a_stopping_announcer_does_not_wait_for_a_stalled_download(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, server) -> None:  # noqa: F811 - fixtures
    sha = _stuck_archive(server, synthetic_pack_dir)
    settings = make_settings(tmp_path, synthetic_pack_dir, repeats=1, web_origin=server.url)
    d = Announcer(settings, bus=FakeBus(fake_broker, site=SITE, node="announcer-hall", role="announcer"), clock=clock)
    code: list[int] = []
    loop = threading.Thread(target=lambda: code.append(d.run()), name="announcer-loop")
    loop.start()
    assert d.bus.connected.wait(10)
    hub.publish(T.config_set("announcer-hall", "web"), ConfigSet(
        request_id="web-0501", source="web", by="truong-tt",
        config={"voice_pack_url": f"{server.url}/voice/pack/{sha}.zip", "voice_pack_sha256": sha}), qos=1)
    assert server.started.wait(10), "the push over MQTT never started the download"
    t0 = time.monotonic()
    d.stop_event.set()  # SIGTERM (systemd stopping the unit)
    loop.join(10)
    assert not loop.is_alive() and code == [0]
    assert time.monotonic() - t0 < 3.5  # close() asks the worker to stop and waits for it at most 2 s
    assert not [m for m in fake_broker.messages(T.config_ack("announcer-hall")) if b"web-0501" in m[1]]


def test_a_site_asking_for_clips_the_installed_pack_never_had_does_not_download_it_again(
        tmp_path, synthetic_pack_dir, server) -> None:
    """A new prefix letter in the site: the web-installed pack lacks its clip. The speaker's loop
    deleted the pack and fetched the same bytes again (up to 20 s silent), to lack it again."""
    import json

    from announcerd.pack_fetch import fetch_pack
    from xephang_voice.voicepack import InvalidPack

    pack = Path(shutil.copytree(synthetic_pack_dir, tmp_path / "no-b"))  # recorded for a site without B
    manifest = json.loads((pack / "manifest.json").read_text())
    del manifest["clips"]["letter_b"]
    (pack / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    (pack / "letter_b.wav").unlink()
    data = pack_archive(pack)
    sha = hashlib.sha256(data).hexdigest()
    server.files[f"/voice/pack/{sha}.zip"] = data
    url = f"{server.url}/voice/pack/{sha}.zip"
    dest = fetch_pack(url, sha, tmp_path / "state")
    assert server.served == [f"/voice/pack/{sha}.zip"]
    with pytest.raises(InvalidPack) as err:
        fetch_pack(url, sha, tmp_path / "state", letters="B")
    assert [(p.code, p.clip) for p in err.value.problems] == [("clip-missing", "letter_b")]
    assert len(server.served) == 1 and dest.is_dir()  # not fetched again, kept
    assert fetch_pack(url, sha, tmp_path / "state") == dest and len(server.served) == 1  # the letter gone: usable again
    (dest / "hai.wav").unlink()  # damaged on the card: fetched anew
    assert fetch_pack(url, sha, tmp_path / "state") == dest and len(server.served) == 2 and (dest / "hai.wav").is_file()
