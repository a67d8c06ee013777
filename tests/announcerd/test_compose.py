"""One announcement is one buffer: chime, then the words in order, with the pauses between."""

from __future__ import annotations

from xephang_voice import pcm
from xephang_voice.numbers import spoken
from xephang_voice.voice_build import build_default_pack
from xephang_voice.voicepack import Composer, VoicePack, load_pack, make_chime, phrase_parts


def test_composed_samples_are_chime_clips_and_gaps_in_order(synthetic_pack: VoicePack) -> None:
    rate = synthetic_pack.sample_rate
    composer = Composer(synthetic_pack, repeats=2, after_chime_ms=250, repeat_gap_ms=900, word_gap_ms=50, phrase_gap_ms=200)
    parts = phrase_parts("vi", number=1023, counter=3)
    ann = composer.compose(parts)

    # the expected buffer, built independently of the planner
    def gap(ms: float) -> bytes:
        return bytes(2 * int(rate * ms / 1000))

    def phrase() -> bytes:
        out = b""
        for p, part in enumerate(parts):
            out += gap(200) if p else b""
            out += gap(50).join(synthetic_pack.pcm(c) for c in part)
        return out

    chime = pcm.to_bytes(make_chime(rate, loudness_dbfs=synthetic_pack.manifest.loudness_dbfs))
    expected = chime + gap(250) + phrase() + gap(900) + phrase()
    assert ann.pcm == expected
    assert ann.sample_rate == rate
    clips = [s.name for s in ann.segments if s.kind == "clip"]
    assert spoken(clips[1:8]) == "một nghìn không trăm hai mươi ba"
    assert clips.count("moi_cong_dan_co_so_thu_tu") == 2


def test_length_is_known_before_copying(synthetic_pack: VoicePack) -> None:
    composer = Composer(synthetic_pack, repeats=3, chime_each_repeat=True)
    parts = phrase_parts("vi", number=9999, counter=12)
    plan = composer.plan(parts)
    ann = composer.compose(parts)
    assert ann.n_samples == plan[-1].start + plan[-1].length
    assert [s.kind for s in plan].count("chime") == 3
    # segments tile the buffer with no hole or overlap
    assert all(a.start + a.length == b.start for a, b in zip(plan, plan[1:], strict=False))


def test_chime_is_two_tones_at_the_pack_loudness() -> None:
    chime = make_chime(16000, loudness_dbfs=-20)
    assert 1.3 < len(chime) / 16000 < 1.7
    assert abs(pcm.loudness_dbfs(chime, 16000) - (-22)) < 0.5
    assert pcm.peak_dbfs(chime) <= -0.9


def test_an_english_pack_announces_in_english(tmp_path, synth) -> None:
    pack = load_pack(build_default_pack(tmp_path / "en", language="en", synth=synth))
    ann = Composer(pack, repeats=1).compose(phrase_parts("en", number=1023, counter=21))
    clips = [s.name for s in ann.segments if s.kind == "clip"]
    assert clips == ["en_ticket_number", "en_1", "en_0", "en_2", "en_3", "en_please_go_to_counter", "en_20", "en_1"]
    assert pack.manifest.clips["en_please_go_to_counter"].text == "please go to counter"
