"""On the spot, the recogniser says when a recorded word was not heard as the word it should be.
Needs viet-asr in the ASR venv (``./xephang.sh test`` creates it with ``python -m xephang_voice.hearing
install``); skipped without it (it is a development tool, not shipped)."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_voice_http import page, post_take
from voicekit import espeak_pack, take, wav_bytes
from webharness import HEAD_PASSWORD, HEAD_USER, login, post_form

from xephang_voice.hearing import Recogniser

pytestmark = [pytest.mark.broker, pytest.mark.slow]


@pytest.fixture(scope="module")
def recogniser():
    rec = Recogniser.available()
    if rec is None:
        pytest.skip("viet-asr is not installed in the ASR venv (python -m xephang_voice.hearing install makes it)")
    yield rec
    rec.close()


def test_a_word_said_wrong_is_kept_but_flagged_say_it_again(centre, tmp_path: Path, recogniser) -> None:
    import re

    espeak = espeak_pack(tmp_path / "voices")
    centre.web.web.studio.recogniser = recogniser
    cookie, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
    csrf = re.search(r'data-csrf="([^"]+)"', page(centre.base, cookie))[1]
    st, d = post_take(centre.base, cookie, csrf, "den_quay_so", wav_bytes(take(espeak, "den_quay_so"), espeak.sample_rate))
    assert st == 200 and d["ok"] and d["heard"] is not None
    # "chín" said where "chín" belongs: heard after the centre's own "đến quầy số"
    st, d = post_take(centre.base, cookie, csrf, "chin", wav_bytes(take(espeak, "chin"), espeak.sample_rate))
    assert st == 200 and d["understood"] is True and d["heard"].split()[-1] == "chín", d
    # "chín" said where "bốn" belongs: kept (the take itself is clean) but the head is told to say it again
    st, d = post_take(centre.base, cookie, csrf, "bon", wav_bytes(take(espeak, "chin"), espeak.sample_rate))
    assert st == 200 and d["ok"] and d["understood"] is False
    assert "Không nghe ra «bốn»" in d["text"] and "hãy đọc lại" in d["text"]
    assert "Không nghe ra «bốn»" in page(centre.base, cookie)  # the verdict stays with the draft


@pytest.mark.timeout(400)  # 40 calls through the real recogniser: about 100 s on a busy 2-core VM
def test_twenty_random_calls_score_the_draft_and_a_pack_of_wrong_words_scores_lower(centre, tmp_path: Path,
                                                                                    recogniser) -> None:
    import re


    espeak = espeak_pack(tmp_path / "voices")
    studio = centre.web.web.studio
    studio.recogniser = recogniser
    cookie, _ = login(centre.base, HEAD_USER, HEAD_PASSWORD)
    html = page(centre.base, cookie)
    csrf = re.search(r'data-csrf="([^"]+)"', html)[1]
    clips = re.findall(r'data-clip="([a-z_]+)"', html)
    digits = ["khong", "mot", "hai", "ba", "bon", "nam", "sau", "bay", "tam", "chin"]

    def record(said: dict[str, str]) -> dict:
        for clip in clips:
            st, d = post_take(centre.base, cookie, csrf, clip, wav_bytes(take(espeak, said.get(clip, clip)), espeak.sample_rate))
            assert st == 200 and d["ok"], (clip, d)
        st, _, h = post_form(centre.base + "/head/voice/score", {"csrf": csrf}, cookie, timeout=300)
        assert st == 303, st
        return studio.last_score()

    good = record({})
    assert good["calls"] == 20
    text = page(centre.base, cookie)
    assert f"Máy nghe đúng cả số và quầy {good['both']}/20 lời gọi" in text
    wrong = record({d: "chin" for d in digits})  # every digit said as "chín"
    assert wrong["number"] < good["number"], (good, wrong)
    print(f"\n20 calls, espeak-ng clips through the page: both {good['both']}, number {good['number']}, "
          f"counter {good['counter']}; digits all 'chín': number {wrong['number']}")
