"""A review's attacks on the head's voice page (real hub, webd and mosquitto; 2026-12-07).

The hall speaker's password writes the speaker's config state (its reading options) and answers
the head's install pushes; the head's own browser may send a click twice. Neither may end an
install in a server error or put a device's words on the page as it sent them.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from voicekit import espeak_pack, take, wav_bytes
from webharness import HEAD_PASSWORD, HEAD_USER, http_get, login, post_form, wait_for

from xephang.bus import client_id_for, paho_client
from xephang.contract import ConfigAck, ConfigSet, ConfigState, decode
from xephang.settings import BrokerSettings

pytestmark = [pytest.mark.broker]
SPEAKER = "announcer-hall"


def record_every_clip(centre: Any, cookie: str, voices: Path) -> str:
    """The head records every clip the page asks for (the generated voice as the microphone); the
    page's CSRF token."""
    html = http_get(centre.base + "/head/voice", headers={"Cookie": cookie})[1].decode()
    csrf = re.search(r'data-csrf="([^"]+)"', html)[1]  # type: ignore[index]
    pack = espeak_pack(voices)
    for clip in re.findall(r'data-clip="([a-z_]+)"', html):
        req = urllib.request.Request(f"{centre.base}/head/voice/take?clip={clip}",
                                     data=wav_bytes(take(pack, clip), pack.sample_rate), method="POST",
                                     headers={"Cookie": cookie, "content-type": "audio/wav", "x-csrf": csrf,
                                              "x-requested-with": "xephang"})
        with urllib.request.urlopen(req, timeout=15) as r:
            assert r.status == 200 and json.loads(r.read())["ok"], clip
    return csrf


@contextmanager
def rogue_speaker(centre: Any, answer: Callable[[ConfigSet], ConfigAck]) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A client with the hall speaker's account: it reads the head's pushes (its ACL lets it) and
    answers each as ``answer`` says; yields ``state(config)``, which writes its retained config state."""
    c = paho_client(BrokerSettings(port=centre.mosquitto.port, username=SPEAKER), client_id_for(SPEAKER))
    topics = centre.web.bus.topics

    def on_message(cl: Any, _u: Any, m: Any) -> None:
        push = decode(ConfigSet, m.payload)
        cl.publish(topics.config_ack(SPEAKER), answer(push).to_json(), qos=1)

    subscribed = threading.Event()
    c.on_message = on_message
    c.on_subscribe = lambda *_a: subscribed.set()
    c.on_connect = lambda cl, *_a: cl.subscribe(topics.config_set(SPEAKER, "web"), qos=1)
    c.connect("127.0.0.1", centre.mosquitto.port)
    c.loop_start()

    def state(config: dict[str, Any]) -> None:
        c.publish(topics.config_state(SPEAKER), ConfigState(node=SPEAKER, rev=1, config=config).to_json(),
                  qos=1, retain=True).wait_for_publish(5)

    try:
        assert subscribed.wait(10)
        yield state
    finally:
        c.publish(topics.config_state(SPEAKER), b"", qos=1, retain=True).wait_for_publish(5)
        c.loop_stop()
        c.disconnect()


def applied(push: ConfigSet) -> ConfigAck:
    return ConfigAck(request_id=push.request_id, node=SPEAKER, status="applied", rev=2)


def test_the_speakers_reading_options_of_the_wrong_type_do_not_break_the_heads_install(centre, tmp_path):
    """The speaker's retained config state names its reading options (dialect, zero word, 24 = "tư"),
    which decide the clips to record and go into the pack's manifest. Its password wrote a dialect
    of 5 and a zero word that is a list: the page stood, but the head's "Install" ended in a 500
    (the manifest refused the dialect) after every clip was recorded. A value the speaker itself
    could not hold (announcerd's AnnouncerConfig) is read as the default: the pack is built,
    pushed and installed."""
    head, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
    with rogue_speaker(centre, applied) as speaker_state:
        speaker_state({"dialect": 5, "zero_word": ["lẻ"], "four_as_tu": "no", "digit_by_digit": {"x": 1}})
        wait_for(lambda: (centre.web.web.announcer_config or {}).get("dialect") == 5, 10, "webd reads the state")
        csrf = record_every_clip(centre, head, tmp_path / "voices")
        st, body, h = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, head, timeout=40)
        assert st == 303 and h["location"].startswith("/head/voice?note="), (st, body[:300])
        page = http_get(centre.base + h["location"], headers={"Cookie": head})[1].decode()
        assert "Loa gọi số đã dùng giọng mới" in page
        # "no" is not true: the plan asks no "tư" clip the speaker would not say (four_as_tu is a bool there)
        assert 'data-clip="tu"' not in page


def test_the_speakers_refusal_is_shown_as_a_devices_words(centre, tmp_path):
    """The speaker's password answers the head's install itself (it reads the push, its request id
    included): its refusal, up to 20 lines of the bus's 64 KiB, was shown as it came, a U+202E
    turning the head's page around and one line 20,000 characters long. Each line is now shown as
    an alert's text is: cut at 300 characters, control and direction characters as '?'."""
    head, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)

    def refuse(push: ConfigSet) -> ConfigAck:
        return ConfigAck(request_id=push.request_id, node=SPEAKER, status="rejected", rev=1,
                         errors=["\u202etrả lại" + "x" * 20_000, "<b>đậm</b>\x1b[2J"])

    with rogue_speaker(centre, refuse):
        csrf = record_every_clip(centre, head, tmp_path / "voices")
        st, page, _ = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, head, timeout=40)
    assert st == 409 and "Loa gọi số không nhận gói giọng" in page, st
    assert "\u202e" not in page and "\x1b" not in page and "?trả lại" + "x" * 290 in page
    assert "x" * 300 not in page and "&lt;b&gt;đậm&lt;/b&gt;?[2J" in page


def test_install_clicked_twice_at_once_builds_one_pack_at_a_time(centre, tmp_path):
    """Two installs at once (a double click on a slow PC, the head and a technician, install beside
    "try 20 calls") built the pack in the same folder at the same time: one removed the other's
    files while it wrote or zipped them, and the install ended in a 500 (FileExistsError, EOFError)
    or a pack "missing" its clips. Builds now take turns: both clicks install the same pack."""
    head, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
    with rogue_speaker(centre, applied):
        csrf = record_every_clip(centre, head, tmp_path / "voices")
        for _ in range(3):
            got: list[tuple[int, str]] = []
            start = threading.Barrier(4)

            def install(got: list[tuple[int, str]] = got, start: threading.Barrier = start) -> None:
                start.wait(10)
                st, body, h = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, head, timeout=40)
                got.append((st, h.get("Location", "") or body[:200]))

            threads = [threading.Thread(target=install) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            assert [st for st, _ in got] == [303] * 4, got
    assert http_get(centre.base + "/healthz")[0] == 200


def test_a_webd_that_serves_only_https_marks_its_cookies_secure(mosquitto, site_file, tmp_path):
    """With its certificate on `port` (no HTTP listener) every cookie webd set lacked `Secure`: the
    browser sends such a cookie to any http:// URL of the host, so a LAN attacker who got the head's
    browser to open one (a link, an image, a spoofed redirect) read the head's session off the wire,
    TLS or not. Over TLS alone they are now `Secure`; webd serving HTTP beside HTTPS keeps them as
    they were (its http side shares the cookies' names and must still log in)."""
    import http.cookies
    import ssl
    import urllib.parse

    from webd.auth import Accounts
    from webd.config import WebConfig, WebSettings
    from webd.main import WebDaemon
    from webd.tlscert import make_certificates
    from xephang_ops.mosquitto import free_port

    tls = make_certificates(tmp_path / "tls", ["localhost", "127.0.0.1"], site="tuong-linh")
    accounts = tmp_path / "web" / "accounts.json"
    Accounts(accounts).set(HEAD_USER, "head", HEAD_PASSWORD)
    port = free_port()
    settings = WebSettings(site="tuong-linh", node="web", site_file=site_file, state_dir=tmp_path / "web",
                           broker=BrokerSettings(port=mosquitto.port),
                           web=WebConfig(listen="127.0.0.1", port=port, public_url=f"https://127.0.0.1:{port}",
                                         accounts_file=accounts, tls_certfile=tls["cert"], tls_keyfile=tls["key"]))
    web = WebDaemon(settings)
    t = threading.Thread(target=web.run, name="webd", daemon=True)
    t.start()
    ctx = ssl.create_default_context(cafile=str(tls["ca"]))

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a: Any, **k: Any) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), NoRedirect)

    def cookies(h: Any) -> dict[str, str]:
        """Each cookie set, by name: its attributes as the header says them."""
        return {c.split("=", 1)[0]: c for c in h.get_all("set-cookie") or []}

    def send(path: str, data: bytes | None = None, cookie: str = "") -> Any:
        req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data, headers={"Cookie": cookie})
        try:
            return opener.open(req, timeout=10)
        except urllib.error.HTTPError as exc:
            return exc

    try:
        def answering() -> bool:
            try:
                return send("/healthz").status in (200, 503)
            except urllib.error.URLError:  # not listening yet
                return False

        wait_for(answering, 15, "webd answering over TLS")
        r = send("/login")
        form = cookies(r.headers)
        csrf = re.search(r'name="csrf" value="([^"]+)"', r.read().decode())[1]  # type: ignore[index]
        login_cookie = form["xephang_login"].split(";", 1)[0]
        body = urllib.parse.urlencode({"username": HEAD_USER, "password": HEAD_PASSWORD, "csrf": csrf}).encode()
        r = send("/login", body, login_cookie)
        assert r.status == 303, r.status
        got = cookies(r.headers)
        assert {"xephang_session", f"xephang_device_{HEAD_USER}"} <= set(got), got
        for c in (form["xephang_login"], *got.values(), *cookies(send("/lang/en?next=/").headers).values()):
            assert "secure" in [a.strip().lower() for a in c.split(";")], c
        session = http.cookies.SimpleCookie(got["xephang_session"])["xephang_session"].value
        assert send("/head/roster", cookie=f"xephang_session={session}").status == 200  # a working session
    finally:
        web.stop_event.set()
        t.join(10)


def test_packs_the_speaker_never_took_do_not_pile_up_on_the_card(centre, tmp_path):
    """Each install builds the pack and keeps its archive for the speaker to fetch; only a successful
    install deleted the ones not installed. A speaker that refuses (or is off, each try then waiting
    30 s) and a head trying again after each redo (or anyone with the head's session, looping) left
    one pack per try on the Pi's card, without end. The newest few are kept, the rest go."""
    from webd.voice import BUILDS_KEPT

    head, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)

    def refuse(push: ConfigSet) -> ConfigAck:
        return ConfigAck(request_id=push.request_id, node=SPEAKER, status="rejected", rev=1, errors=["không"])

    packs = centre.web.web.studio.packs
    answer: list[Callable[[ConfigSet], ConfigAck]] = [refuse]
    with rogue_speaker(centre, lambda push: answer[0](push)):
        csrf = record_every_clip(centre, head, tmp_path / "voices")
        voice = espeak_pack(tmp_path / "voices")
        for i in range(BUILDS_KEPT + 4):  # a redo of one word, then install: another pack each time
            req = urllib.request.Request(f"{centre.base}/head/voice/take?clip=hai",
                                         data=wav_bytes(take(voice, "hai", before_ms=300 + 40 * i), voice.sample_rate),
                                         method="POST", headers={"Cookie": head, "content-type": "audio/wav",
                                                                 "x-csrf": csrf, "x-requested-with": "xephang"})
            with urllib.request.urlopen(req, timeout=15) as r:
                assert r.status == 200
            st, _, _ = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, head, timeout=40)
            assert st == 409, st
        assert len(list(packs.glob("*.zip"))) == BUILDS_KEPT
        answer[0] = applied  # and an install still goes through, its pack kept for going back
        st, _, _ = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, head, timeout=40)
        assert st == 303, st
    sha = centre.web.web.studio.installs()[-1].sha256
    assert (packs / f"{sha}.zip").is_file() and len(list(packs.glob("*.zip"))) <= BUILDS_KEPT
    assert http_get(f"{centre.base}/voice/pack/{sha}.zip")[0] == 200


def test_a_request_id_of_letters_outside_ascii_gets_a_fresh_one_not_a_refusal() -> None:
    """`ệ`.isalnum(): a crafted `rid` passed, and the contract refused the click ("not valid")."""
    from webd import console

    assert not console.valid_rid("ệệệệệệệệ") and not console.valid_rid("١٢٣٤٥٦٧٨")
    assert console.valid_rid("abcDEF12-_x") and console.valid_rid(console.new_rid())


@pytest.mark.parametrize(("period", "part"), [("hôm nay", "hom-nay"), ("HÔM NAY", "HOM-NAY"), ("2026-11", "2026-11"),
                                               ("2026-11-01..2026-11-30", "2026-11-01--2026-11-30"),
                                               ("đ\u202e\r\n", "d---")])
def test_a_downloads_file_name_is_ascii_whatever_the_period_was_typed_in(period, part) -> None:
    from webd.app import _file_part

    assert _file_part(period) == part and part.encode("latin-1")
