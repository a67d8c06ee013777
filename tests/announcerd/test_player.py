"""The hall speaker, played through SDL's disk driver: what reaches the device is the announcement."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from announcerd.player import AudioError, AudioMissing, Player
from xephang_voice import pcm
from xephang_voice.voicepack import Composer, VoicePack, phrase_parts


def wait_until(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


@pytest.fixture
def announcement(synthetic_pack: VoicePack):
    return Composer(synthetic_pack, repeats=2).compose(phrase_parts("vi", number=1023, counter=3))


def test_sim_mode_plays_the_composed_buffer_and_writes_a_wav(tmp_path: Path, announcement, capfd) -> None:
    player = Player(sample_rate=announcement.sample_rate, sim_dir=tmp_path / "sim")
    started = player.start(announcement, label="1023 quay 3")
    assert wait_until(player.poll), "announcement never finished"
    captured = (tmp_path / "sim" / "capture.raw").read_bytes()
    # the disk driver pads with silence around it; the announcement itself arrives byte for byte
    assert announcement.pcm in captured
    assert started.wav is not None and started.wav.name == "00001-1023-quay-3.wav"
    samples, rate = pcm.read_wav(started.wav)
    assert rate == announcement.sample_rate and pcm.to_bytes(samples) == announcement.pcm
    assert player.state == "closed"  # sim closes the disk device between announcements
    # SDL's disk driver announces itself as CRITICAL on stderr; in sim mode we chose it: not a word
    assert "CRITICAL" not in capfd.readouterr().err


def test_a_second_announcement_is_refused_while_one_plays(announcement) -> None:
    # SDL's dummy driver consumes audio in real time, so the first one is still playing
    player = Player(sample_rate=announcement.sample_rate, driver="dummy")
    assert player.ensure_open(now=0.0)
    player.start(announcement)
    try:
        assert player.busy() and player.state == "playing"
        assert player.poll() is False
        with pytest.raises(AudioError, match="already playing"):
            player.start(announcement)
    finally:
        player.close()


def test_volume_applies_to_what_is_played(tmp_path: Path, announcement) -> None:
    player = Player(sample_rate=announcement.sample_rate, sim_dir=tmp_path / "sim")
    player.start(announcement, volume=0.5)
    assert wait_until(player.poll)
    (wav,) = sorted((tmp_path / "sim").glob("*.wav"))
    quiet, _ = pcm.read_wav(wav)
    loud = pcm.from_bytes(announcement.pcm)
    assert max(quiet) == pytest.approx(max(loud) / 2, abs=1)
    captured = pcm.from_bytes((tmp_path / "sim" / "capture.raw").read_bytes())
    assert max(captured) == pytest.approx(max(loud) / 2, rel=0.02)


def test_no_audio_device_is_reported_not_raised_and_retried(tmp_path: Path, announcement) -> None:
    # a disk "device" whose folder does not exist yet behaves like an unplugged speaker
    capture = tmp_path / "usb-speaker" / "out.raw"
    player = Player(sample_rate=announcement.sample_rate, driver="disk", disk_file=capture, retry_s=10)
    assert player.ensure_open(now=100.0) is False
    assert player.state == "audio-missing" and "out.raw" in player.last_error
    with pytest.raises(AudioMissing):
        player.start(announcement)
    capture.parent.mkdir()  # the speaker is plugged in
    assert player.ensure_open(now=105.0) is False  # not yet time to retry
    assert player.ensure_open(now=110.0) is True
    player.start(announcement)
    assert wait_until(player.poll)
    player.close()
    assert announcement.pcm in capture.read_bytes()


def test_an_unknown_driver_is_audio_missing() -> None:
    player = Player(sample_rate=22050, driver="no-such-driver")
    assert player.open() is False
    assert player.state == "audio-missing"


def test_a_speaker_unplugged_while_open_is_noticed_and_retried(fifo_speaker, announcement) -> None:
    fifo_speaker.plug()
    player = Player(sample_rate=announcement.sample_rate, driver="disk", disk_file=fifo_speaker.path, retry_s=10)
    try:
        assert player.ensure_open(now=100.0)
        assert player.device_lost(100.0) is False and player.state == "ready"
        fifo_speaker.unplug()  # pulled out while the mixer holds it open
        assert wait_until(lambda: player.device_lost(100.5)), "SDL never reported the device gone"
        assert player.state == "audio-missing" and "removed" in player.last_error
        assert player.device_lost(100.6) is False  # reported once
        assert player.ensure_open(now=105.0) is False  # tried again only after retry_s
        fifo_speaker.plug()
        assert player.ensure_open(now=110.5) is True
        player.start(announcement)
        assert wait_until(player.poll)
    finally:
        player.close()
    fifo_speaker.unplug()
    assert announcement.pcm in fifo_speaker.captured
