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


def test_a_multipart_body_of_too_many_parts_is_refused_before_it_is_parsed() -> None:
    """The stdlib parser took 29 s and 100 MB over 3 MB of empty parts (red team): more than
    ``MAX_PARTS`` boundaries, or none, is refused before parsing; the form's own three parts pass."""
    from webd.voice import MAX_PARTS, multipart_file

    def part(name: str, value: bytes, filename: str = "") -> bytes:
        fn = f'; filename="{filename}"' if filename else ""
        return f'--bb\r\nContent-Disposition: form-data; name="{name}"{fn}\r\n\r\n'.encode() + value + b"\r\n"

    form = part("csrf", b"tok") + part("clip", b"mot") + part("audio", b"RIFF....", "a.wav")
    assert multipart_file(form + b"--bb--\r\n", "multipart/form-data; boundary=bb", "audio") == \
        ({"csrf": "tok", "clip": "mot"}, b"RIFF....")
    assert multipart_file(form + b"--bb--\r\n", 'multipart/form-data; boundary="bb"', "audio")[1] == b"RIFF...."
    many = form + part("x", b"") * (MAX_PARTS - 2) + b"--bb--\r\n"
    assert multipart_file(many, "multipart/form-data; boundary=bb", "audio") == ({}, None)
    assert multipart_file(form, "multipart/form-data", "audio") == ({}, None)  # no boundary
    nested = form + b'--bb\r\nContent-Type: Multipart/Mixed; boundary=in\r\n\r\n' + b"--in\r\n\r\n\r\n" * 1000 + \
        b"--in--\r\n--bb--\r\n"  # one outer part holding a thousand: refused too
    assert multipart_file(nested, "multipart/form-data; boundary=bb", "audio") == ({}, None)
