"""One recorded take becomes a pack clip the same way from the console wizard and the web page."""

from __future__ import annotations

import random
from array import array

from xephang_voice import pcm
from xephang_voice.numbers import ReadingOptions
from xephang_voice.voice_record import MIN_SNR_DB, clip_plan, process_take

RATE = 16000


def _word(seconds: float = 0.5, amp: float = 0.3) -> array:
    return pcm.tone([(220, 1.0), (660, 0.5)], seconds * 1000, RATE, decay_s=10, peak=amp)


def _take(word: array, *, pause_s: float = 0.4, noise: float = 0.0) -> array:
    rnd = random.Random(7)
    n = int(pause_s * RATE)
    out = array("h", [0] * n) + word + array("h", [0] * n)
    if noise:
        out = array("h", [max(-32768, min(32767, s + int(rnd.gauss(0, noise * 32768)))) for s in out])
    return out


def test_a_clean_take_is_trimmed_evened_and_resampled_to_the_pack() -> None:
    take = process_take(_take(_word()), RATE, phrase=False, sample_rate=24000, loudness_dbfs=-20.0)
    assert take.ok, take.message
    assert abs(len(take.samples) / 24000 - 0.5) < 0.05  # the pauses are gone
    assert abs(pcm.loudness_dbfs(take.samples, 24000) + 20.0) < 0.5
    assert take.snr_db is not None and take.snr_db > 60


def test_silence_clipping_length_and_noise_are_refused_with_a_vietnamese_reason() -> None:
    silent = process_take(array("h", [0] * RATE), RATE, phrase=False)
    assert silent.problem == "silent" and "Không nghe thấy" in silent.message_vi
    clipped = array("h", [max(-32767, min(32767, 3 * s)) for s in _take(_word(amp=0.9))])
    assert process_take(clipped, RATE, phrase=False).problem == "clipped"
    long = process_take(_take(_word(3.0)), RATE, phrase=False)
    assert long.problem == "long" and "quá dài" in long.message_vi
    assert process_take(_take(_word(3.0)), RATE, phrase=True).ok  # a carrier phrase may be longer
    noisy = process_take(_take(_word(amp=0.3), noise=0.01), RATE, phrase=False)
    assert noisy.problem == "noisy" and noisy.snr_db is not None and noisy.snr_db < MIN_SNR_DB
    assert "ồn" in noisy.message_vi
    assert process_take(_take(_word(amp=0.3), noise=0.0005), RATE, phrase=False).ok  # a quiet room passes


def test_the_plan_lists_the_site_letters_and_carriers_first() -> None:
    plan = clip_plan("vi", ReadingOptions(), letters="B")
    ids = [c for c, _ in plan]
    assert ids[:2] == ["moi_cong_dan_co_so_thu_tu", "den_quay_so"]
    assert "letter_b" in ids and "letter_a" not in ids
    assert dict(plan)["muoi_huyen"] == "mười"
