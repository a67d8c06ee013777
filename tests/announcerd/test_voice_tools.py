"""Technicians build the default pack and record a centre's own voice, and get a valid pack."""

from __future__ import annotations

import shutil
from array import array
from pathlib import Path

import pytest

from announcerd.voice_cli import main as voice_main
from xephang_voice import pcm
from xephang_voice.voice_record import RecordingAborted, RecordingError, record_pack
from xephang_voice.voicepack import InvalidPack, Manifest, required_clips, validate_pack

MIC_RATE = 16000


class SyntheticMic:
    """A USB microphone that 'hears' a tone per take, with room noise around it."""

    sample_rate = MIC_RATE

    def __init__(self, takes: list[str] | None = None) -> None:
        self.takes = list(takes or [])  # per take: "ok", "silent" or "clipped"; then always "ok"
        self.count = 0

    def record(self, seconds: float) -> array:
        self.count += 1
        kind = self.takes.pop(0) if self.takes else "ok"
        n = int(seconds * MIC_RATE)
        out = array("h", ((i * 7919) % 61 - 30 for i in range(n)))  # faint hiss
        if kind == "silent":
            return out
        peak = 1.0 if kind == "clipped" else 0.2
        word = pcm.tone([(180 + 10 * (self.count % 20), 1.0)], 400, MIC_RATE, decay_s=2.0, peak=peak)
        if kind == "clipped":
            word = array("h", (max(-32768, min(32767, s * 3)) for s in word))
        start = MIC_RATE // 2
        out[start : start + len(word)] = word
        return out


class Ears:
    def __init__(self) -> None:
        self.played: list[int] = []

    def play(self, samples: array, sample_rate: int) -> None:
        self.played.append(len(samples))


class Person:
    """Answers the prompts from a script; Enter (keep) when the script runs out."""

    def __init__(self, answers: list[str] | None = None) -> None:
        self.answers = list(answers or [])
        self.heard: list[str] = []

    def say(self, text: str) -> None:
        self.heard.append(text)

    def ask(self, text: str) -> str:
        self.heard.append(text)
        return self.answers.pop(0) if self.answers else ""


def test_guided_recording_writes_a_valid_pack(tmp_path: Path) -> None:
    mic, ears, person = SyntheticMic(), Ears(), Person()
    out = record_pack(tmp_path / "ours", recorder=mic, playback=ears, prompter=person, sample_rate=16000)
    assert validate_pack(out) == []
    manifest = Manifest.model_validate_json((out / "manifest.json").read_bytes())
    assert set(manifest.clips) == required_clips("vi")
    assert manifest.clips["den_quay_so"].text == "đến quầy số"
    assert len(ears.played) == len(manifest.clips)  # every take was played back
    assert any("«Mời công dân có số thứ tự»" in h for h in person.heard)
    samples, rate = pcm.read_wav(out / "mot.wav")
    assert rate == 16000 and len(samples) < 0.5 * rate  # trimmed from a 2 s take


def test_bad_takes_are_explained_and_redone(tmp_path: Path) -> None:
    mic = SyntheticMic(["silent", "clipped", "ok", "ok"])
    # Enter before each take; after the first good take the person asks to redo it, then keeps
    person = Person(["", "", "", "r", "", ""])
    with pytest.raises(InvalidPack) as err:  # a pack of one clip cannot validate: the rest is missing
        record_pack(tmp_path / "p", recorder=mic, playback=Ears(), prompter=person, only=["mot"], sample_rate=16000)
    assert {p.code for p in err.value.problems} == {"clip-missing"}
    assert mic.count == 4
    assert any("Không nghe thấy tiếng" in h for h in person.heard)
    assert any("méo" in h for h in person.heard)
    assert (tmp_path / "p" / "mot.wav").exists()


def test_rerecording_one_clip_keeps_the_others(tmp_path: Path) -> None:
    out = record_pack(tmp_path / "ours", recorder=SyntheticMic(), playback=Ears(), prompter=Person(), sample_rate=16000)
    before = (out / "hai.wav").read_bytes()
    mic = SyntheticMic()
    mic.count = 7  # another pitch
    record_pack(out, recorder=mic, playback=Ears(), prompter=Person(), only=["mot"], sample_rate=16000)
    assert (out / "hai.wav").read_bytes() == before
    assert mic.count == 1 + 7
    assert validate_pack(out) == []


def test_quitting_stops_and_a_dead_mic_gives_up(tmp_path: Path) -> None:
    with pytest.raises(RecordingAborted):
        record_pack(tmp_path / "q", recorder=SyntheticMic(), playback=Ears(), prompter=Person(["q"]))
    with pytest.raises(RecordingError, match="no usable take"):
        record_pack(tmp_path / "d", recorder=SyntheticMic(["silent"] * 5), playback=Ears(), prompter=Person(),
                    max_takes=5)


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")
def test_voice_build_command_makes_the_default_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert voice_main(["voice", "build", "--state-dir", str(tmp_path)]) == 0
    pack = tmp_path / "voice" / "espeak-vi-north"
    assert validate_pack(pack) == []
    manifest = Manifest.model_validate_json((pack / "manifest.json").read_bytes())
    assert manifest.source.startswith("eSpeak NG")
    assert voice_main(["voice", "check", str(pack)]) == 0
    (pack / "lam.wav").unlink()
    assert voice_main(["voice", "check", str(pack)]) == 1
    assert "[file-missing] lam: thiếu tệp lam.wav / file lam.wav is missing" in capsys.readouterr().out
    assert voice_main(["voice", "build", "--state-dir", str(tmp_path)]) == 0  # repaired
    assert validate_pack(pack) == []


def test_per_word_amplitude_reaches_espeak_and_every_clip_still_ends_at_the_pack_loudness(tmp_path: Path) -> None:
    from xephang_voice.voice_build import TUNING, Tuning, build_default_pack, tuning_for

    table = TUNING | {"khong": {**TUNING["khong"], "amplitude": 20}, "mot": {**TUNING["mot"], "amplitude": 120}}
    assert tuning_for("khong", table=table).args()[-4:-2] == ["-a", "20"]
    raw: dict[str, float] = {}

    def loud_or_soft(text: str, tuning: Tuning) -> tuple[array, int]:  # espeak's -a scales the waveform
        body = pcm.tone([(300, 1.0)], 200, MIC_RATE, decay_s=1.0, peak=0.4 * tuning.amplitude / 120)
        raw[text] = pcm.loudness_dbfs(body, MIC_RATE)
        return pcm.silence(30, MIC_RATE) + body + pcm.silence(30, MIC_RATE), MIC_RATE

    pack = build_default_pack(tmp_path / "pack", synth=loud_or_soft, table=table)
    assert raw["một"] - raw["không"] > 15  # the synthesiser gave them very different levels …
    manifest = Manifest.model_validate_json((pack / "manifest.json").read_bytes())
    for clip in ("khong", "mot", "hai"):  # … the pack evens them out (gated RMS), and validation checks it
        samples, rate = pcm.read_wav(pack / f"{clip}.wav")
        assert pcm.loudness_dbfs(samples, rate) == pytest.approx(manifest.loudness_dbfs, abs=0.5)


@pytest.mark.skipif(not shutil.which("espeak-ng"), reason="espeak-ng not installed")
def test_the_default_pack_builds_at_install_in_well_under_a_minute_and_a_table_may_reshape_clips(tmp_path: Path) -> None:
    import time

    from xephang_voice.voice_build import TUNING, build_default_pack, tuning_for

    t0 = time.perf_counter()
    pack = build_default_pack(tmp_path / "espeak-vi-north")
    assert time.perf_counter() - t0 < 60
    assert validate_pack(pack) == []
    # what bench/voice_search.py tries reaches espeak-ng: another voice, phoneme input, a tone contour
    table = TUNING | {"ba": {"voice": "vi-vn-x-central"}, "muoi_ngang": {"phonemes": "m'y@:7j"},
                      "bon": {"tone": 1.0, "pitch": 70}}
    assert tuning_for("ba", table=table).args()[:2] == ["-v", "vi-vn-x-central"]
    assert tuning_for("muoi_ngang", table=table).input_text("mươi") == "[[m'y@:7j]]"
    shaped = build_default_pack(tmp_path / "shaped", table=table)
    assert validate_pack(shaped) == []
    samples, rate = pcm.read_wav(shaped / "muoi_ngang.wav")
    assert len(samples) > rate * 0.2  # the phoneme input said something, not silence
