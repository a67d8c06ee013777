"""The head records the centre's voice in real headless Chromium, with a fake microphone fed
from a WAV made of the generated espeak-ng pack (no audio is committed): a carrier phrase is
recorded through getUserMedia, a clipped take is refused, the rest come as recorder files
(decoded by the browser), the pack is installed on the hall's announcer, a call is said with the
recorded clips and the recogniser (viet-asr, when installed) hears its number."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from voicekit import RunningSpeaker, espeak_pack, take, wav_bytes
from webharness import HEAD_PASSWORD, HEAD_USER, _chromium, phone_width, wait_for

from announcerd.pack_fetch import installed_dir
from xephang_voice import pcm
from xephang_voice.hearing import Recogniser, align, call_words, normalise_words
from xephang_voice.voicepack import load_pack

pytestmark = [pytest.mark.broker, pytest.mark.slow]
CARRIER = "moi_cong_dan_co_so_thu_tu"


def chromium_with_mic(wav: Path, extra: list[str] | None = None) -> Any:
    found = _chromium()
    if not found:
        pytest.skip("chromium and chromium-driver are not installed (./xephang.sh test installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    opts.binary_location = found[0]
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=412,915",
              "--disable-extensions", "--no-first-run", "--mute-audio", "--autoplay-policy=no-user-gesture-required",
              "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              f"--use-file-for-fake-audio-capture={wav}%noloop", *(extra or [])):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(found[1]), options=opts)
    drv.set_page_load_timeout(20)
    phone_width(drv)
    return drv


@pytest.fixture
def voices(tmp_path: Path):
    return espeak_pack(tmp_path / "voices")


def envelope_match(a: Any, b: Any, rate: int) -> float:
    """Correlation of two clips' 20 ms loudness envelopes (1 = the same words, same timing)."""
    def env(x: Any) -> list[float]:
        f = rate // 50
        return [sum(abs(v) for v in x[i:i + f]) / f for i in range(0, len(x) - f + 1, f)]
    ea, eb = env(a), env(b)
    n = min(len(ea), len(eb))
    ea, eb = ea[:n], eb[:n]
    ma, mb = sum(ea) / n, sum(eb) / n
    cov = sum((x - ma) * (y - mb) for x, y in zip(ea, eb, strict=True))
    va = sum((x - ma) ** 2 for x in ea) ** 0.5
    vb = sum((y - mb) ** 2 for y in eb) ** 0.5
    return cov / (va * vb) if va and vb else 0.0


def result(drv: Any, clip: str) -> str:
    return drv.execute_script(f"var li = document.getElementById('clip-{clip}'); "
                              "return li ? (li.getAttribute('data-result') || '') : '';")


def status(drv: Any, clip: str) -> str:
    return drv.execute_script(f"return document.querySelector('#clip-{clip} .status').textContent;")


def test_the_head_records_with_the_microphone_and_files_installs_and_the_hall_speaks_it(
        centre, tmp_path: Path, voices) -> None:
    from selenium.webdriver.common.by import By

    mic = tmp_path / "mic.wav"
    mic.write_bytes(wav_bytes(take(voices, CARRIER, before_ms=600, after_ms=1500, rate=48000), 48000))
    files = tmp_path / "files"
    files.mkdir()
    speaker = RunningSpeaker(tmp_path, centre.site_file, centre.mosquitto.port, voices.path, web_origin=centre.base)
    drv = chromium_with_mic(mic)
    timings: list[float] = []
    try:
        drv.get(centre.base + "/login?next=/head/voice")
        drv.find_element(By.NAME, "username").send_keys(HEAD_USER)
        drv.find_element(By.NAME, "password").send_keys(HEAD_PASSWORD)
        drv.find_element(By.ID, "submit").click()
        wait_for(lambda: drv.execute_script("var l = document.getElementById('voice-clips');"
                                            "return l && l.getAttribute('data-ready');"), 15, "the recording page")
        clips = [li.get_attribute("data-clip") for li in drv.find_elements(By.CSS_SELECTOR, "li.clip")]
        assert drv.execute_script("return window.isSecureContext")  # http://127.0.0.1 is a secure origin
        assert not drv.find_element(By.ID, "voice-nomic").is_displayed()

        # the carrier phrase, through the microphone: recorded, uploaded, trimmed, kept, playable
        t0 = time.monotonic()
        drv.find_element(By.CSS_SELECTOR, f"#clip-{CARRIER} button.rec").click()
        wait_for(lambda: result(drv, CARRIER) not in ("", "recording"), 30, "the microphone take")
        timings.append(time.monotonic() - t0)
        assert result(drv, CARRIER) == "kept", status(drv, CARRIER)
        assert drv.find_elements(By.CSS_SELECTOR, f"#clip-{CARRIER} audio")

        # a take driven into clipping is refused with the reason, in Vietnamese
        bad = files / "mot-qua-to.wav"
        bad.write_bytes(wav_bytes(take(voices, "mot", gain=8.0), voices.sample_rate))
        drv.find_element(By.CSS_SELECTOR, "#clip-mot input[type=file]").send_keys(str(bad))
        wait_for(lambda: result(drv, "mot").startswith("refused"), 20, "the clipped take's verdict")
        assert result(drv, "mot") == "refused:clipped" and "méo" in status(drv, "mot")

        # every other clip as a recorder's file, decoded by the browser
        for clip in clips:
            if clip == CARRIER:
                continue
            f = files / f"{clip}.wav"
            f.write_bytes(wav_bytes(take(voices, clip), voices.sample_rate))
            drv.execute_script(f"document.getElementById('clip-{clip}').removeAttribute('data-result')")
            t0 = time.monotonic()
            drv.find_element(By.CSS_SELECTOR, f"#clip-{clip} input[type=file]").send_keys(str(f))
            wait_for(lambda clip=clip: result(drv, clip) in ("kept",) or result(drv, clip).startswith("refused"),
                     20, f"the take of {clip}")
            timings.append(time.monotonic() - t0)
            assert result(drv, clip) == "kept", (clip, status(drv, clip))
        assert drv.find_element(By.ID, "voice-progress").text == f"Đã thu {len(clips)}/{len(clips)} từ."

        drv.refresh()  # nothing is lost on a reload
        wait_for(lambda: drv.find_elements(By.ID, "voice-install-btn"), 10, "the page again")
        assert len(drv.find_elements(By.CSS_SELECTOR, "li.clip.done")) == len(clips)
        wait_for(lambda: centre.web.web.announcer_config is not None, 10, "webd hears the speaker's config")
        drv.find_element(By.ID, "voice-install-btn").click()
        wait_for(lambda: "Loa gọi số đã dùng giọng mới" in (drv.find_elements(By.ID, "voice-msg") or [None])[0].text
                 if drv.find_elements(By.ID, "voice-msg") else False, 40, "the install's answer")
        sha = speaker.d.config.voice_pack_sha256
        ours = load_pack(installed_dir(tmp_path / "announcer", sha))
        assert ours.pcm(CARRIER) != voices.pcm(CARRIER)  # the microphone's take, not the file …
        mine = pcm.resample(ours.samples(CARRIER), ours.sample_rate, voices.sample_rate)
        said_len = len(mine) / voices.sample_rate
        # … of the words the fake microphone said (not Chromium's beeps): same length, same envelope
        assert abs(said_len - len(voices.samples(CARRIER)) / voices.sample_rate) < 0.15, said_len
        match = envelope_match(mine, voices.samples(CARRIER), voices.sample_rate)
        assert match > 0.9, match

        number = int(centre.issue("ho-tich")["ticket"]["number"])
        assert centre.call(2).status == "ok"
        wav = wait_for(lambda: speaker.wavs(), 15, "the announcement")[-1]
        said = pcm.to_bytes(pcm.read_wav(wav)[0])
        assert ours.pcm(CARRIER) in said and ours.pcm("den_quay_so") in said
        print(f"\nenvelope match of the microphone take {match:.3f}; clips {len(clips)}; per clip upload+check: mic {timings[0]:.2f} s, files mean "
              f"{sum(timings[1:]) / max(1, len(timings) - 1):.2f} s")
        shutil.copyfile(wav, tmp_path / "announcement.wav")
    finally:
        drv.quit()
        speaker.stop()

    # … and the recogniser hears the number in what the hall's speaker said with the recorded pack
    rec = Recogniser.available()
    if rec is None:
        pytest.skip("recorded, refused, installed and spoken; not heard: viet-asr is not installed in the ASR venv "
                    "(python -m xephang_voice.hearing install)")
    try:
        heard = rec.hear(tmp_path / "announcement.wav", "").text
    finally:
        rec.close()
    ref, (lo, hi) = call_words(number, 2)
    said_number = ref[lo:hi]
    hyp = normalise_words(heard, ref)
    matched = sum(1 for r, h in align(said_number, hyp)
                  if r is not None and h is not None and said_number[r] == hyp[h])
    print(f"heard {heard!r}; the number's words ({' '.join(said_number)}) heard in order: {matched}/{len(said_number)}")
    # the generated espeak-ng voice the fake microphone speaks is heard poorly (docs/announcer.md: 42.0 % of calls
    # exactly), so the number's opening words and most of its words, not the whole call
    assert " ".join(said_number[:2]) in " ".join(hyp), heard
    assert matched >= len(said_number) // 2 + 1, heard
