"""The head records the centre's voice on /head/voice (over real HTTP, real hub, real broker),
installs it on the hall's announcer by a config push, hears a call in it, and goes back."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path

import pytest
from voicekit import RunningSpeaker, espeak_pack, take, wav_bytes
from webharness import HEAD_PASSWORD, HEAD_USER, http_get, login, post_form, wait_for

from announcerd.pack_fetch import installed_dir
from xephang_voice import pcm
from xephang_voice.voicepack import load_pack, read_manifest

pytestmark = [pytest.mark.broker]


def post_take(base: str, cookie: str, csrf: str, clip: str, data: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(f"{base}/head/voice/take?clip={clip}", data=data, method="POST", headers={
        "Cookie": cookie, "content-type": "audio/wav", "x-csrf": csrf, "x-requested-with": "xephang"})
    try:
        with urllib.request.urlopen(req, timeout=15) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def post_multipart(base: str, cookie: str, fields: dict[str, str], filename: str, data: bytes) -> tuple[int, str, dict]:
    b = "----xephangtest"
    body = b"".join(f'--{b}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields.items())
    body += (f'--{b}\r\nContent-Disposition: form-data; name="audio"; filename="{filename}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{b}--\r\n".encode()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *a, **k):
            return None

    req = urllib.request.Request(f"{base}/head/voice/take", data=body, method="POST", headers={
        "Cookie": cookie, "content-type": f"multipart/form-data; boundary={b}"})
    try:
        with urllib.request.build_opener(NoRedirect).open(req, timeout=15) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def speakers(web) -> str:
    """The pack the hall speaker's retained config names, as webd heard it ("" the default)."""
    return (web.announcer_config or {}).get("voice_pack_sha256") or ""


def page(base: str, cookie: str) -> str:
    st, body, _ = http_get(base + "/head/voice", headers={"Cookie": cookie})
    assert st == 200, st
    return body.decode()


def test_the_head_records_every_clip_installs_the_pack_hears_a_call_and_goes_back(centre, tmp_path: Path) -> None:
    espeak = espeak_pack(tmp_path / "voices")
    speaker = RunningSpeaker(tmp_path, centre.site_file, centre.mosquitto.port, espeak.path, web_origin=centre.base)
    try:
        cookie, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
        html = page(centre.base, cookie)
        csrf = re.search(r'data-csrf="([^"]+)"', html)[1]
        clips = re.findall(r'data-clip="([a-z_]+)"', html)
        texts = dict(re.findall(r'data-clip="([a-z_]+)".*?«([^»]+)»', html))
        assert clips[:2] == ["moi_cong_dan_co_so_thu_tu", "den_quay_so"] and "mot_sac" in clips
        assert texts["moi_cong_dan_co_so_thu_tu"] == "Mời công dân có số thứ tự" and texts["lam"] == "lăm"
        assert f"Đã thu 0/{len(clips)} từ" in html and 'id="voice-install-btn" disabled' in html

        # bad takes are refused, each with its reason in Vietnamese, and nothing is kept
        st, d = post_take(centre.base, cookie, csrf, "mot", wav_bytes(pcm.silence(1500, 24000), 24000))
        assert (st, d["ok"], d["problem"]) == (422, False, "silent") and "Không nghe thấy" in d["text"]
        loud = take(espeak, "mot", gain=8.0)
        st, d = post_take(centre.base, cookie, csrf, "mot", wav_bytes(loud, espeak.sample_rate))
        assert (st, d["problem"]) == (422, "clipped") and "méo" in d["text"] and d["done"] == 0
        st, d = post_take(centre.base, cookie, "wrong-csrf", "mot", wav_bytes(take(espeak, "mot"), espeak.sample_rate))
        assert st == 403
        st, body, _ = post_multipart(centre.base, cookie, {"csrf": csrf, "clip": "mot"}, "ghi-am.m4a", b"\x00\x00ftypM4A ")
        assert st == 400 and "Tệp không đọc được" in body

        # installing before every clip is there is refused
        st, body, _ = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, cookie)
        assert st == 409 and "Cần thu đủ" in body

        # every clip: the browser's own WAV at 48 kHz (one in stereo), and one through the form without script
        for i, clip in enumerate(clips):
            if clip == "lam":
                st, _, h = post_multipart(centre.base, cookie, {"csrf": csrf, "clip": clip}, "lam.wav",
                                          wav_bytes(take(espeak, clip), espeak.sample_rate))
                assert st == 303 and h["location"].startswith("/head/voice")
                st, body, _ = http_get(centre.base + h["location"], headers={"Cookie": cookie})
                assert st == 200 and "Đã giữ bản thu" in body.decode()
                continue
            st, d = post_take(centre.base, cookie, csrf, clip,
                              wav_bytes(take(espeak, clip, rate=48000), 48000, channels=2 if i == 3 else 1))
            assert st == 200 and d["ok"], (clip, d)
        # a redo (here another word, plainly different) replaces the kept take, and the count stays
        before = http_get(centre.base + "/head/voice/clip/hai.wav", headers={"Cookie": cookie})[1]
        st, d = post_take(centre.base, cookie, csrf, "hai", wav_bytes(take(espeak, "ba"), espeak.sample_rate))
        assert st == 200 and d["ok"] and d["done"] == len(clips)
        assert http_get(centre.base + "/head/voice/clip/hai.wav", headers={"Cookie": cookie})[1] != before
        html = page(centre.base, cookie)  # a reload: the draft is on the server
        assert f"Đã thu {len(clips)}/{len(clips)} từ" in html and 'id="voice-install-btn" disabled' not in html
        st, wav_data, h = http_get(centre.base + "/head/voice/clip/lam.wav", headers={"Cookie": cookie})
        assert st == 200 and wav_data[:4] == b"RIFF"
        assert http_get(centre.base + "/head/voice/clip/lam.wav")[0] == 303  # not without a login

        wait_for(lambda: centre.web.web.announcer_config is not None, 10, "webd hears the speaker's config")
        first = speaker.d.pack.manifest.name
        st, _, h = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, cookie, timeout=40)
        assert st == 303 and h["location"].startswith("/head/voice?note="), h
        done = http_get(centre.base + h["location"], headers={"Cookie": cookie})[1].decode()
        assert "Loa gọi số đã dùng giọng mới (giong-tuong-linh-" in done
        sha = speaker.d.config.voice_pack_sha256
        assert sha and speaker.d.pack.manifest.name.startswith("giong-tuong-linh-")
        ours = load_pack(installed_dir(tmp_path / "announcer", sha))
        assert read_manifest(ours.path).source == "recorded in the browser (webd /head/voice)"
        assert ours.pcm("moi_cong_dan_co_so_thu_tu") != espeak.pcm("moi_cong_dan_co_so_thu_tu")  # our takes, not a copy
        wait_for(lambda: "Loa gọi số đang dùng: giong-" in page(centre.base, cookie), 10, "the page shows the new voice")

        # a call is said with the recorded clips
        centre.issue("ho-tich")
        assert centre.call(1).status == "ok"
        wav = wait_for(lambda: speaker.wavs(), 15, "the announcement")[-1]
        said = pcm.to_bytes(pcm.read_wav(wav)[0])
        assert ours.pcm("moi_cong_dan_co_so_thu_tu") in said and ours.pcm("den_quay_so") in said
        assert espeak.pcm("den_quay_so") not in said

        # one click back to the voice before (the generated one)
        html = page(centre.base, cookie)
        assert "Giọng trước: giọng máy mặc định" in html
        st, _, h = post_form(centre.base + "/head/voice/rollback", {"csrf": csrf}, cookie, timeout=40)
        assert st == 303 and h["location"].startswith("/head/voice?note=")
        done = http_get(centre.base + h["location"], headers={"Cookie": cookie})[1].decode()
        assert "Loa gọi số đã quay lại giọng trước (giọng máy mặc định" in done
        assert speaker.d.config.voice_pack_sha256 is None and speaker.d.pack.manifest.name == first
        wait_for(lambda: "Giọng trước: giong-" in page(centre.base, cookie), 10, "the page offers the recorded voice again")

        # the speaker's ack lost (QoS 0, on webd's reading connection): the speaker's own state naming the
        # new pack is its answer; with neither ack nor a changed state the head is told nobody answered
        web, real_ask = centre.web.web, centre.web.web.ask

        def ask_losing_the_ack(kind, params, done):
            if kind != "voice":
                return real_ask(kind, params, done)
            sha = params["config"]["voice_pack_sha256"] or ""

            def lost(reply):  # the ack came: dropped, and the wait times out once the state is in
                threading.Thread(target=lambda: (wait_for(lambda: speakers(web) == sha, 15, "the state"),
                                                 done(None)), daemon=True).start()
            real_ask(kind, params, lost)

        web.ask = ask_losing_the_ack
        try:
            st, _, h = post_form(centre.base + "/head/voice/install", {"csrf": csrf}, cookie, timeout=40)
            assert st == 303 and h["location"].startswith("/head/voice?note="), h
            done = http_get(centre.base + h["location"], headers={"Cookie": cookie})[1].decode()
            assert "Loa gọi số đã dùng giọng mới (giong-tuong-linh-" in done
            assert speaker.d.config.voice_pack_sha256 == speakers(web) != ""
            web.ask = lambda kind, params, done: done(None)  # nobody answers, nothing changes
            st, body, _ = post_form(centre.base + "/head/voice/rollback", {"csrf": csrf}, cookie, timeout=40)
            assert st == 409 and "Loa gọi số không trả lời" in body, body[:300]
            assert speaker.d.config.voice_pack_sha256 == speakers(web) != ""
        finally:
            web.ask = real_ask
    finally:
        speaker.stop()
