"""A voice pack is checked before the hall hears it, and every fault is named."""

from __future__ import annotations

import json
import random
import shutil
import wave
from array import array
from pathlib import Path

import pytest

from xephang_voice import pcm
from xephang_voice.numbers import ReadingOptions, spoken
from xephang_voice.voicepack import (
    InvalidPack,
    Manifest,
    catalogue,
    load_pack,
    phrase_parts,
    required_clips,
    validate_pack,
)


@pytest.fixture
def pack_copy(synthetic_pack_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(synthetic_pack_dir, tmp_path / "pack"))


def codes(problems) -> set[tuple[str, str]]:
    return {(p.code, p.clip) for p in problems}


def test_a_built_pack_is_valid_trimmed_and_at_one_loudness(synthetic_pack_dir: Path) -> None:
    assert validate_pack(synthetic_pack_dir) == []
    manifest = Manifest.model_validate_json((synthetic_pack_dir / "manifest.json").read_bytes())
    assert set(manifest.clips) == set(catalogue("vi"))
    assert manifest.clips["moi_cong_dan_co_so_thu_tu"].text == "Mời công dân có số thứ tự"
    for clip in ("mot", "nghin", "moi_cong_dan_co_so_thu_tu"):
        samples, rate = pcm.read_wav(synthetic_pack_dir / f"{clip}.wav")
        assert abs(pcm.loudness_dbfs(samples, rate) - manifest.loudness_dbfs) < 0.5
        # trimmed: the synthetic source had 40 ms of silence in front; at most 10 ms + one window remain
        lead = next(i for i, s in enumerate(samples) if abs(s) > 100)
        assert lead <= rate * 0.016


def test_missing_clip_is_named(pack_copy: Path) -> None:
    (pack_copy / "nghin.wav").unlink()
    manifest = json.loads((pack_copy / "manifest.json").read_text())
    del manifest["clips"]["lam"]
    (pack_copy / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    assert codes(validate_pack(pack_copy)) == {("file-missing", "nghin"), ("clip-missing", "lam")}


def test_wrong_format_rate_and_channels_are_named(pack_copy: Path) -> None:
    with wave.open(str(pack_copy / "hai.wav"), "wb") as w:  # stereo
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\x10\x00" * 4000)
    with wave.open(str(pack_copy / "ba.wav"), "wb") as w:  # 8-bit
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000), w.writeframes(b"\x90" * 4000)
    samples, _ = pcm.read_wav(pack_copy / "bon.wav")
    pcm.write_wav(pack_copy / "bon.wav", samples, 16000)  # wrong rate
    (pack_copy / "sau.wav").write_bytes(b"not a wav at all")
    assert codes(validate_pack(pack_copy)) == {
        ("channels", "hai"), ("sample-width", "ba"), ("rate", "bon"), ("not-wav", "sau")}


def test_loudness_out_of_tolerance_and_empty_clips_are_named(pack_copy: Path) -> None:
    samples, rate = pcm.read_wav(pack_copy / "tam.wav")
    pcm.write_wav(pack_copy / "tam.wav", pcm.apply_gain(samples, -6.0), rate)
    pcm.write_wav(pack_copy / "chin.wav", pcm.silence(500, rate), rate)
    problems = validate_pack(pack_copy)
    assert codes(problems) == {("loudness", "tam"), ("empty", "chin")}
    assert "tam.wav loudness -26.0 dBFS" in str([p for p in problems if p.clip == "tam"][0])


def _dither(ms: float, rate: int) -> array:
    """A muted microphone, or `sox -n`: ±1 LSB of noise, far under −60 dBFS but not all zeros."""
    rnd = random.Random(7)
    return array("h", (rnd.choice((-1, 0, 1)) for _ in range(int(rate * ms / 1000))))


def test_a_clip_of_near_digital_silence_is_empty_not_a_crash(pack_copy: Path, synth) -> None:
    rate = Manifest.model_validate_json((pack_copy / "manifest.json").read_bytes()).sample_rate
    assert pcm.loudness_dbfs(_dither(500, rate), rate) == pcm.SILENCE_DBFS  # no frame passes the gate: no 0/0
    pcm.write_wav(pack_copy / "bay.wav", _dither(500, rate), rate)
    problems = validate_pack(pack_copy)
    assert codes(problems) == {("empty", "bay")}
    # `voice build` rebuilds a pack that is not valid (without --force): it repairs this one
    from xephang_voice.voice_build import build_default_pack

    build_default_pack(pack_copy, synth=synth)
    assert validate_pack(pack_copy) == []


def test_untrimmed_and_over_long_clips_are_named(pack_copy: Path) -> None:
    samples, rate = pcm.read_wav(pack_copy / "bay.wav")
    pcm.write_wav(pack_copy / "bay.wav", samples + pcm.silence(30_000, rate), rate)  # 30 s after the word
    lead, _ = pcm.read_wav(pack_copy / "tam.wav")
    pcm.write_wav(pack_copy / "tam.wav", _dither(200, rate) + lead, rate)  # 200 ms of hiss before it
    word, _ = pcm.read_wav(pack_copy / "chin.wav")
    pcm.write_wav(pack_copy / "chin.wav", array("h", list(word) * (1 + int(2.6 * rate / len(word)))), rate)
    # within the bound: 25 ms more at each end (a clip trimmed by hand) is still a good clip
    ok, _ = pcm.read_wav(pack_copy / "hai.wav")
    pcm.write_wav(pack_copy / "hai.wav", pcm.silence(25, rate) + ok + pcm.silence(25, rate), rate)
    problems = validate_pack(pack_copy)
    assert codes(problems) == {("untrimmed", "bay"), ("too-long", "bay"), ("untrimmed", "tam"), ("too-long", "chin")}
    says = {(p.code, p.clip): p.message for p in problems}
    assert "ms at the end, at most 50 ms" in says[("untrimmed", "bay")]
    assert "lasts 30.3 s, at most 2.5 s for a word" in says[("too-long", "bay")]
    # a pack already in use is still played (a pause in a call, not a silent hall after an upgrade);
    # a broken one is not
    assert load_pack(pack_copy).clips["bay"]
    (pack_copy / "hai.wav").unlink()
    with pytest.raises(InvalidPack):
        load_pack(pack_copy)


def test_a_phrase_has_the_longer_limit(pack_copy: Path) -> None:
    phrase, rate = pcm.read_wav(pack_copy / "moi_cong_dan_co_so_thu_tu.wav")
    longer = array("h", list(phrase) * (1 + int(3.0 * rate / len(phrase))))  # over 2.5 s, under 5 s
    assert 2.5 < len(longer) / rate < 5.0
    pcm.write_wav(pack_copy / "moi_cong_dan_co_so_thu_tu.wav", longer, rate)
    assert validate_pack(pack_copy) == []


def test_a_file_instead_of_a_pack_folder_is_named(tmp_path: Path) -> None:
    (tmp_path / "afile").touch()
    problems = validate_pack(tmp_path / "afile")
    assert [p.code for p in problems] == ["manifest-missing"] and "not a folder" in problems[0].message


def test_broken_manifest_is_reported_not_raised(pack_copy: Path) -> None:
    (pack_copy / "manifest.json").write_text('{"name": "x", "sample_rate": 3, "clips": {}}')
    problems = validate_pack(pack_copy)
    assert {p.code for p in problems} == {"manifest-invalid"}
    assert any("sample_rate" in p.message for p in problems)
    (pack_copy / "manifest.json").unlink()
    assert [p.code for p in validate_pack(pack_copy)] == ["manifest-missing"]


def test_load_refuses_an_invalid_pack_with_every_reason(pack_copy: Path) -> None:
    (pack_copy / "mot.wav").unlink()
    (pack_copy / "hai.wav").unlink()
    with pytest.raises(InvalidPack) as err:
        load_pack(pack_copy)
    assert codes(err.value.problems) == {("file-missing", "mot"), ("file-missing", "hai")}
    assert isinstance(err.value, ValueError)


def test_a_south_pack_needs_ngan_and_linh_only_when_asked() -> None:
    south = ReadingOptions(dialect="south")
    assert {"ngan", "linh"} <= required_clips("vi", south)
    assert "nghin" not in required_clips("vi", south)
    assert {"letter_a"} <= required_clips("vi", letters="A")


def test_loaded_pack_holds_pcm_in_memory(synthetic_pack: object) -> None:
    pack = synthetic_pack
    assert pack.sample_rate == 8000  # type: ignore[attr-defined]
    assert len(pack.pcm("mot")) > 0  # type: ignore[attr-defined]
    with pytest.raises(KeyError, match="no clip 'nope'"):
        pack.pcm("nope")  # type: ignore[attr-defined]


def test_vietnamese_phrase_template() -> None:
    parts = phrase_parts("vi", number=1023, counter=3)
    assert parts[0] == ["moi_cong_dan_co_so_thu_tu"] and parts[2] == ["den_quay_so"]
    assert spoken(parts[1]) == "một nghìn không trăm hai mươi ba"
    assert spoken(parts[3]) == "ba"


def test_english_phrase_template() -> None:
    parts = phrase_parts("en", number=23, counter=12, prefix="A")
    assert parts == [["en_ticket_number"], ["letter_a", "en_0", "en_2", "en_3"], ["en_please_go_to_counter"], ["en_12"]]
    assert phrase_parts("en", number=1023, counter=45)[3] == ["en_40", "en_5"]
    assert required_clips("en") >= {"en_0", "en_19", "en_90", "en_ticket_number"}


def test_every_problem_reads_in_vietnamese_too(pack_copy: Path, tmp_path: Path) -> None:
    """The head's recording page and the announcer's alert show the Vietnamese; the CLI both."""
    samples, rate = pcm.read_wav(pack_copy / "tam.wav")
    pcm.write_wav(pack_copy / "tam.wav", pcm.apply_gain(samples, -6.0), rate)  # loudness
    pcm.write_wav(pack_copy / "chin.wav", pcm.silence(500, rate), rate)  # empty
    pcm.write_wav(pack_copy / "bay.wav", pcm.read_wav(pack_copy / "bay.wav")[0] + pcm.silence(30_000, rate), rate)
    pcm.write_wav(pack_copy / "bon.wav", pcm.read_wav(pack_copy / "bon.wav")[0], 16000)  # rate
    with wave.open(str(pack_copy / "hai.wav"), "wb") as w:  # stereo
        w.setnchannels(2), w.setsampwidth(2), w.setframerate(8000), w.writeframes(b"\x10\x00" * 4000)
    with wave.open(str(pack_copy / "ba.wav"), "wb") as w:  # 8-bit
        w.setnchannels(1), w.setsampwidth(1), w.setframerate(8000), w.writeframes(b"\x90" * 4000)
    (pack_copy / "sau.wav").write_bytes(b"not a wav at all")
    (pack_copy / "nghin.wav").unlink()
    loud, _ = pcm.read_wav(pack_copy / "mot.wav")
    pcm.write_wav(pack_copy / "mot.wav", array("h", [32767, -32768] * 2000) + loud, rate)  # clipped
    manifest = json.loads((pack_copy / "manifest.json").read_text())
    del manifest["clips"]["lam"]
    (pack_copy / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    (tmp_path / "afile").touch()
    (tmp_path / "badmf").mkdir()
    (tmp_path / "badmf" / "manifest.json").write_text('{"name": "x", "sample_rate": 3, "clips": {}}')
    problems = [*validate_pack(pack_copy, language="en"), *validate_pack(tmp_path / "afile"),
                *validate_pack(tmp_path / "nothing"), *validate_pack(tmp_path / "badmf")]
    assert {p.code for p in problems} >= {"language", "loudness", "empty", "untrimmed", "too-long", "rate",
                                          "channels", "sample-width", "not-wav", "file-missing", "clip-missing",
                                          "clipping", "manifest-missing", "manifest-invalid"}
    for p in problems:
        assert p.vi and p.vi != p.message, p
        assert p.text("vi").endswith(p.vi) and p.text("en").endswith(p.message) and str(p) == p.text("en")
    with pytest.raises(InvalidPack) as err:
        load_pack(pack_copy)
    assert "thiếu tệp nghin.wav" in err.value.text_vi() and "file nghin.wav is missing" in str(err.value)
    from xephang_voice.voicepack import unpack_archive

    for junk in (b"not a zip", b"PK\x05\x06" + bytes(18)):
        with pytest.raises(InvalidPack) as err:
            unpack_archive(junk, tmp_path / "unpacked")
        assert [p.code for p in err.value.problems] == ["archive"] and "không phải tệp gói" in err.value.text_vi()
