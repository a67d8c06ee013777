"""The studio's pack build (webd/voice.py) names each problem in Vietnamese first, English after."""

from __future__ import annotations

import json
from array import array
from pathlib import Path

from webd.voice import VoiceStudio
from xephang_voice import pcm
from xephang_voice.numbers import DEFAULT_OPTIONS
from xephang_voice.voice_record import clip_plan

RATE = 24000


def _clip(ms: int, freq: int) -> array:
    return pcm.normalise(pcm.tone([(freq, 1.0)], ms, RATE, decay_s=1.0, peak=0.3), RATE, target_dbfs=-20.0)


def test_a_draft_that_does_not_validate_is_refused_with_bilingual_reasons(tmp_path: Path) -> None:
    studio = VoiceStudio(tmp_path / "voice-web", sample_rate=RATE)
    plan = clip_plan("vi", DEFAULT_OPTIONS, letters="")
    studio.draft.mkdir(parents=True)
    for i, (clip, _text) in enumerate(plan):
        pcm.write_wav(studio.draft / f"{clip}.wav", _clip(300, 300 + 20 * i), RATE)
    pcm.write_wav(studio.draft / "bay.wav", _clip(3200, 500), RATE)  # a word over 2.5 s
    (studio.draft / "draft.json").write_text(json.dumps({c: {} for c, _ in plan}))
    assert set(studio.recorded()) == {c for c, _ in plan}

    sha, problems = studio.build(plan, options=DEFAULT_OPTIONS, letters="", name="t")
    assert sha == "" and len(problems) == 1
    assert problems[0].startswith("bay: bay.wav dài 3.2 s, tối đa 2.5 s cho một từ")
    assert " / bay.wav lasts 3.2 s" in problems[0]
    pcm.write_wav(studio.draft / "bay.wav", _clip(300, 500), RATE)
    sha, problems = studio.build(plan, options=DEFAULT_OPTIONS, letters="", name="t")
    assert problems == [] and (studio.packs / f"{sha}.zip").is_file()
