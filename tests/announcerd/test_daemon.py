"""announcerd as the hall hears it: events in, announcements out, alerts when the speaker is gone."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from announcerd import pcm
from announcerd.compose import Composer
from announcerd.main import Announcer, AnnouncerConfig, AnnouncerSettings
from announcerd.voicepack import VoicePack, phrase_parts
from xephang.bus import Bus, FakeBroker, FakeBus
from xephang.clock import ManualClock
from xephang.contract import ConfigSet, TicketEvent, TicketInfo, Topics
from xephang.settings import BrokerSettings

SITE = "tuong-linh"
T = Topics(SITE)


def ticket_event(rev: int, number: int, counter: int, *, kind: str = "called", at: float, display: str = "") -> TicketEvent:
    info = TicketInfo(id=number, day="2026-01-01", number=number, display=display or f"{number:04d}", service="ho-tich",
                      issued_at=at - 300, state="called", counter=counter, called_at=at)
    return TicketEvent(event_id=uuid.uuid4().hex, rev=rev, at=at, kind=kind, ticket=info, counter=counter)


def make_settings(tmp_path: Path, pack_dir: Path, **announcer: object) -> AnnouncerSettings:
    return AnnouncerSettings(site=SITE, node="announcer-hall", state_dir=tmp_path / "state", sim=True,
                             sim_out=tmp_path / "sim", announcer=AnnouncerConfig(voice_pack=pack_dir, **announcer))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def hub(fake_broker: FakeBroker) -> FakeBus:
    bus = FakeBus(fake_broker, site=SITE, node="hub", role="hub")
    bus.start()
    return bus


def start(settings: AnnouncerSettings, fake_broker: FakeBroker, clock: ManualClock) -> Announcer:
    d = Announcer(settings, bus=FakeBus(fake_broker, site=SITE, node="announcer-hall", role="announcer"), clock=clock)
    d.start()
    d.step(timeout=0)
    return d


def idle(d: Announcer) -> bool:
    return not d.scheduler.waiting and d.player is not None and d.player.state != "playing"


def settle(d: Announcer, until=idle, timeout: float = 5.0) -> None:
    """Run the owner loop until ``until(d)`` (default: speaker idle, queue empty)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        d.step(timeout=0.01)
        if until(d):
            return
    raise AssertionError("announcer did not settle")


def wavs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "sim" / "announcer-hall").glob("*.wav"))


def test_a_call_is_announced_with_chime_words_and_repeats(tmp_path, fake_broker, hub, clock, synthetic_pack_dir,
                                                          synthetic_pack: VoicePack) -> None:
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=2), fake_broker, clock)
    hub.publish(T.event("ticket", "called"), ticket_event(5, 1023, 3, at=clock.now()))
    settle(d)
    (wav,) = wavs(tmp_path)
    assert wav.name == "00001-1023-quay-3.wav"
    samples, rate = pcm.read_wav(wav)
    expected = Composer(synthetic_pack, repeats=2).compose(phrase_parts("vi", number=1023, counter=3))
    assert pcm.to_bytes(samples) == expected.pcm
    assert "audio-missing" not in json.dumps(list(fake_broker.retained))
    d.teardown()


def test_redelivered_stale_and_retained_calls_are_not_spoken(tmp_path, fake_broker, hub, clock, synthetic_pack_dir) -> None:
    # a retained call left on the broker by a misconfigured tool: never replayed on connect
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 1, at=clock.now()), retain=True)
    d = start(make_settings(tmp_path, synthetic_pack_dir, max_age_s=60), fake_broker, clock)
    ev = ticket_event(2, 1002, 2, at=clock.now())
    hub.publish(T.event("ticket", "called"), ev)
    hub.publish(T.event("ticket", "called"), ev)  # QoS 1 redelivery
    hub.publish(T.event("ticket", "called"), ticket_event(3, 1003, 2, at=clock.now() - 61))  # late
    hub.publish(T.event("ticket", "called"), b"{not json")  # a bad payload is shrugged off
    settle(d)
    assert [w.name for w in wavs(tmp_path)] == ["00001-1002-quay-2.wav"]
    assert (d.scheduler.stats.duplicate, d.scheduler.stats.stale) == (1, 1)
    d.teardown()


def test_calls_queue_and_never_overlap_and_a_waiting_recall_is_merged(tmp_path, fake_broker, hub, clock,
                                                                      synthetic_pack_dir) -> None:
    settings = make_settings(tmp_path, synthetic_pack_dir, audio_driver="dummy")
    settings = settings.model_copy(update={"sim": False})  # SDL dummy plays in real time: the first call lasts
    d = start(settings, fake_broker, clock)
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 1, at=clock.now()))
    hub.publish(T.event("ticket", "called"), ticket_event(2, 2001, 3, at=clock.now()))
    hub.publish(T.event("ticket", "recalled"), ticket_event(3, 2001, 3, kind="recalled", at=clock.now()))
    for _ in range(5):
        d.step(timeout=0.01)
    assert d.player is not None and d.player.state == "playing"
    assert [c.number for c in d.last_played] == [1001]  # only one is speaking
    assert [c.number for c in d.scheduler.waiting] == [2001]  # the recall did not add a second entry
    assert d.scheduler.stats.merged == 1
    d.teardown()


def test_no_speaker_raises_a_retained_alert_and_plays_when_it_appears(tmp_path, fake_broker, hub, clock,
                                                                       synthetic_pack_dir, monkeypatch) -> None:
    capture = tmp_path / "usb" / "out.raw"  # the folder is missing: the "device" is unplugged
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(capture))
    settings = make_settings(tmp_path, synthetic_pack_dir, audio_driver="disk", retry_s=5, max_age_s=60)
    d = start(settings.model_copy(update={"sim": False}), fake_broker, clock)
    alert_topic = T.alert("announcer-hall", "audio-missing")
    alert = json.loads(fake_broker.retained[alert_topic])
    assert alert["severity"] == "critical" and "Không có thiết bị âm thanh" in alert["message_vi"]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 2, at=clock.now()))
    d.step(timeout=0)
    assert d.last_played == [] and len(d.scheduler.waiting) == 1  # waits, daemon still up
    capture.parent.mkdir()  # plugged in
    clock.advance(5)
    settle(d, until=lambda d: bool(d.last_played) and d.player.state != "playing")
    assert [c.number for c in d.last_played] == [1001]
    assert alert_topic not in fake_broker.retained  # alert cleared
    d.teardown()


def test_technician_changes_repeats_live(tmp_path, fake_broker, hub, clock, synthetic_pack_dir) -> None:
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=3), fake_broker, clock)
    hub.publish(T.config_set("announcer-hall"), ConfigSet(request_id="tech-0001", source="tech", config={"repeats": 1}))
    hub.publish(T.event("ticket", "called"), ticket_event(1, 7, 1, at=clock.now()))
    settle(d)
    (wav,) = wavs(tmp_path)
    samples, _ = pcm.read_wav(wav)
    assert d.config.repeats == 1
    assert len(samples) < 8000 * 6  # one phrase, not three
    d.teardown()


@pytest.mark.broker
def test_real_broker_end_to_end(tmp_path, mosquitto, clock, synthetic_pack_dir) -> None:
    broker = BrokerSettings(host="127.0.0.1", port=mosquitto.port)
    settings = make_settings(tmp_path, synthetic_pack_dir).model_copy(update={"broker": broker})
    d = Announcer(settings, clock=clock)
    hub = Bus(site=SITE, node="hub", role="hub", broker=broker)
    d.start()
    hub.start()
    try:
        end = time.monotonic() + 10
        while not (d.bus.connected.is_set() and hub.connected.is_set()) and time.monotonic() < end:
            d.step(timeout=0.05)
            hub.process(timeout=0)
        hub.publish(T.event("ticket", "called"), ticket_event(9, 2024, 4, at=clock.now(), display="2024"))
        settle(d, until=lambda d: bool(wavs(tmp_path)) and d.player.state != "playing", timeout=10)
        assert [w.name for w in wavs(tmp_path)] == ["00001-2024-quay-4.wav"]
    finally:
        d.teardown()
        d.bus.stop()
        hub.stop()


def test_an_invalid_voice_pack_raises_an_alert_and_the_daemon_stays_up(tmp_path, fake_broker, hub, clock,
                                                                       synthetic_pack_dir) -> None:
    import shutil

    broken = Path(shutil.copytree(synthetic_pack_dir, tmp_path / "broken"))
    (broken / "lam.wav").unlink()
    d = start(make_settings(tmp_path, broken, max_age_s=30), fake_broker, clock)
    alert = json.loads(fake_broker.retained[T.alert("announcer-hall", "voice-pack")])
    assert "lam.wav is missing" in alert["message_en"]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 15, 1, at=clock.now()))
    d.step(timeout=0)
    clock.advance(31)
    d.step(timeout=0)
    assert wavs(tmp_path) == [] and d.scheduler.waiting == () and d.scheduler.stats.stale == 1
    d.teardown()
