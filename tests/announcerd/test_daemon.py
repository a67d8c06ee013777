"""announcerd as the hall hears it: events in, announcements out, alerts when the speaker is gone."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from announcerd.main import Announcer, AnnouncerConfig, AnnouncerSettings
from xephang.bus import Bus
from xephang.clock import Clock, ManualClock
from xephang.contract import ConfigSet, Reply, Resync, ServiceState, TicketEvent, TicketInfo, Topics, decode
from xephang.settings import BrokerSettings
from xephang.testing import FakeBroker, FakeBus
from xephang_voice import pcm
from xephang_voice.voicepack import Composer, VoicePack, phrase_parts

SITE = "tuong-linh"
T = Topics(SITE)


def ticket_event(rev: int, number: int, counter: int, *, kind: str = "called", at: float, display: str = "",
                 service: str = "ho-tich") -> TicketEvent:
    info = TicketInfo(id=number, day="2026-01-01", number=number, display=display or f"{number:04d}", service=service,
                      issued_at=at - 300, state="called", counter=counter, called_at=at)
    return TicketEvent(event_id=uuid.uuid4().hex, rev=rev, at=at, kind=kind, ticket=info, counter=counter)


def make_settings(tmp_path: Path, pack_dir: Path, site_file: Path | None = None, **announcer: object) -> AnnouncerSettings:
    return AnnouncerSettings(site=SITE, node="announcer-hall", state_dir=tmp_path / "state", sim=True,
                             sim_out=tmp_path / "sim", site_file=site_file,
                             announcer=AnnouncerConfig(voice_pack=pack_dir, **announcer))


def answer_resync(bus: Bus, hub_clock: Clock) -> None:
    """The hub's side of a resync that matters to the speaker: the reply carries the hub's clock."""

    def on_resync(msg) -> None:
        req = decode(Resync, msg.payload)
        bus.publish(req.reply_to, Reply(request_id=req.request_id, action="resync", status="ok",
                                        data={"hall": {"at": hub_clock.now()}}))

    bus.subscribe(f"{T.root}/req/hub/resync/+", on_resync)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def hub_clock(clock: ManualClock) -> ManualClock:
    """The hub's clock: the hall's own unless a test sets them apart."""
    return clock


@pytest.fixture
def hub(fake_broker: FakeBroker, hub_clock: ManualClock) -> FakeBus:
    bus = FakeBus(fake_broker, site=SITE, node="hub", role="hub")
    answer_resync(bus, hub_clock)
    bus.start()
    return bus


def start(settings: AnnouncerSettings, fake_broker: FakeBroker, clock: ManualClock) -> Announcer:
    d = Announcer(settings, bus=FakeBus(fake_broker, site=SITE, node="announcer-hall", role="announcer"), clock=clock)
    d.start()
    d.step(timeout=0)  # connected: asks the hub to resync
    hub = fake_broker.clients.get("hub")
    if hub is not None:
        hub.process(timeout=0)  # the hub answers with its clock
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
    answer_resync(hub, clock)
    d.start()
    hub.start()
    try:
        end = time.monotonic() + 10
        while not (d.bus.connected.is_set() and hub.connected.is_set()) and time.monotonic() < end:
            d.step(timeout=0.05)
            hub.process(timeout=0)
        while d.scheduler.hub.offset is None and time.monotonic() < end:  # the hub answers the resync
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
    assert "lam.wav is missing" in alert["message_en"] and "thiếu tệp lam.wav" in alert["message_vi"]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 15, 1, at=clock.now()))
    d.step(timeout=0)
    clock.advance(31)
    d.step(timeout=0)
    assert wavs(tmp_path) == [] and d.scheduler.waiting == () and d.scheduler.stats.stale == 1
    d.teardown()


SITE_WITH_PREFIX = """
[site]
slug = "tuong-linh"
name_vi = "UBND xã Tường Linh"

[[services]]
id = "ho-tich"
name_vi = "Hộ tịch"
band = [1, 999]
prefix = "A"

[[counters]]
number = 2
services = ["ho-tich"]
"""


def pack_without(tmp_path: Path, pack_dir: Path, clip: str) -> Path:
    """A centre's recorded pack that never got the clip (recorded without --letters)."""
    import shutil

    out = Path(shutil.copytree(pack_dir, tmp_path / f"no-{clip}"))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    del manifest["clips"][clip]
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    (out / f"{clip}.wav").unlink()
    return out


def test_a_prefixed_services_call_is_said_with_its_letter(tmp_path, fake_broker, hub, clock, synthetic_pack_dir,
                                                          synthetic_pack: VoicePack) -> None:
    hub.publish(T.state_service("ho-tich"), ServiceState(id="ho-tich", name_vi="Hộ tịch", prefix="A"), retain=True)
    d = start(make_settings(tmp_path, synthetic_pack_dir), fake_broker, clock)
    assert d.letters() == "A" and d.pack is not None  # validated with letter_a
    hub.publish(T.event("ticket", "called"), ticket_event(4, 23, 2, at=clock.now(), display="A023"))
    settle(d)
    (wav,) = wavs(tmp_path)
    assert wav.name == "00001-A23-quay-2.wav"
    samples, _ = pcm.read_wav(wav)
    parts = phrase_parts("vi", number=23, counter=2, prefix="A")
    assert parts[1][0] == "letter_a"
    assert pcm.to_bytes(samples) == Composer(synthetic_pack, repeats=2).compose(parts).pcm
    d.teardown()


def test_a_pack_without_the_sites_prefix_letter_is_refused_at_load(tmp_path, fake_broker, hub, clock,
                                                                  synthetic_pack_dir) -> None:
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_WITH_PREFIX, encoding="utf-8")
    no_a = pack_without(tmp_path, synthetic_pack_dir, "letter_a")
    d = start(make_settings(tmp_path, no_a, site_file=site_file), fake_broker, clock)
    assert d.pack is None
    alert = json.loads(fake_broker.retained[T.alert("announcer-hall", "voice-pack")])
    assert alert["severity"] == "critical"
    assert "thiếu chữ cái A" in alert["message_vi"] and "ho-tich" in alert["message_vi"]
    assert "--only letter_a" in alert["message_vi"]
    assert "letter_a" in alert["message_en"]
    d.teardown()


def test_a_prefix_letter_the_hub_announces_later_revalidates_the_pack(tmp_path, fake_broker, hub, clock,
                                                                       synthetic_pack_dir) -> None:
    no_b = pack_without(tmp_path, synthetic_pack_dir, "letter_b")
    d = start(make_settings(tmp_path, no_b, max_age_s=30), fake_broker, clock)
    assert d.pack is not None  # no service prints a letter yet
    alert_topic = T.alert("announcer-hall", "voice-pack")
    # a technician gives "dat-dai" the letter B on the hub
    hub.publish(T.state_service("dat-dai"), ServiceState(id="dat-dai", name_vi="Đất đai", prefix="B"), retain=True)
    d.step(timeout=0)
    assert d.pack is None and "thiếu chữ cái B" in json.loads(fake_broker.retained[alert_topic])["message_vi"]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 7, 1, at=clock.now(), display="B007", service="dat-dai"))
    d.step(timeout=0)
    clock.advance(31)
    d.step(timeout=0)
    assert wavs(tmp_path) == [] and d.scheduler.stats.stale == 1  # not said wrong, not said late
    # the letter is dropped again: the pack is good again and the alert clears
    hub.publish(T.state_service("dat-dai"), ServiceState(id="dat-dai", name_vi="Đất đai", prefix=""), retain=True)
    d.step(timeout=0)
    assert d.pack is not None and alert_topic not in fake_broker.retained
    d.teardown()


def test_a_call_with_a_letter_nobody_announced_raises_the_alert_not_silence(tmp_path, fake_broker, hub, clock,
                                                                           synthetic_pack_dir) -> None:
    no_c = pack_without(tmp_path, synthetic_pack_dir, "letter_c")
    d = start(make_settings(tmp_path, no_c), fake_broker, clock)
    hub.publish(T.event("ticket", "called"), ticket_event(1, 12, 3, at=clock.now(), display="C012", service="cong-chung"))
    d.step(timeout=0)
    assert d.letters() == "C"
    alert = json.loads(fake_broker.retained[T.alert("announcer-hall", "voice-pack")])
    assert "thiếu chữ cái C" in alert["message_vi"] and "cong-chung" in alert["message_vi"]
    d.teardown()


def test_the_audio_alert_clears_when_the_speaker_is_back_with_nothing_to_say(tmp_path, fake_broker, hub, clock,
                                                                             synthetic_pack_dir, monkeypatch) -> None:
    capture = tmp_path / "usb" / "out.raw"
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(capture))
    settings = make_settings(tmp_path, synthetic_pack_dir, audio_driver="disk", retry_s=5)
    d = start(settings.model_copy(update={"sim": False}), fake_broker, clock)
    alert_topic = T.alert("announcer-hall", "audio-missing")
    assert alert_topic in fake_broker.retained
    capture.parent.mkdir()  # plugged in; no call is waiting
    clock.advance(5)
    d.step(timeout=0)
    assert d.player is not None and d.player.state == "ready"
    assert alert_topic not in fake_broker.retained
    d.teardown()


def test_a_speaker_unplugged_while_open_raises_the_alert_and_speaks_when_back(tmp_path, fake_broker, hub, clock,
                                                                              synthetic_pack_dir, synthetic_pack,
                                                                              fifo_speaker, monkeypatch) -> None:
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(fifo_speaker.path))
    settings = make_settings(tmp_path, synthetic_pack_dir, audio_driver="disk", retry_s=5, max_age_s=60)
    fifo_speaker.plug()
    d = start(settings.model_copy(update={"sim": False}), fake_broker, clock)
    alert_topic = T.alert("announcer-hall", "audio-missing")
    assert d.player is not None and d.player.state == "ready" and alert_topic not in fake_broker.retained
    fifo_speaker.unplug()  # the USB speaker is pulled out while idle
    settle(d, until=lambda d: d.player.state == "audio-missing")
    alert = json.loads(fake_broker.retained[alert_topic])
    assert "Không có thiết bị âm thanh" in alert["message_vi"] and "removed" in alert["message_en"]
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 2, at=clock.now()))
    d.step(timeout=0)
    assert d.last_played == [] and len(d.scheduler.waiting) == 1  # waits for the speaker
    fifo_speaker.plug()
    clock.advance(5)
    settle(d, until=lambda d: bool(d.last_played) and d.player.state != "playing")
    assert alert_topic not in fake_broker.retained
    d.teardown()  # closes the device: the speaker's reader sees the end
    fifo_speaker.unplug()
    expected = Composer(synthetic_pack, repeats=2).compose(phrase_parts("vi", number=1001, counter=2))
    assert expected.pcm in fifo_speaker.captured


@pytest.mark.parametrize("skew_s", [600.0, -600.0], ids=["hall-10-min-ahead", "hall-10-min-behind"])
def test_a_hall_clock_ten_minutes_off_still_speaks_and_still_drops_old_calls(tmp_path, fake_broker, hub, hub_clock,
                                                                             synthetic_pack_dir, skew_s) -> None:
    hall_clock = ManualClock(start=hub_clock.now() + skew_s)  # the Pi's clock was never set right
    d = start(make_settings(tmp_path, synthetic_pack_dir, max_age_s=60), fake_broker, hall_clock)
    assert d.health_details()["clock_ahead_of_hub_s"] == pytest.approx(skew_s)

    def later(s: float) -> None:
        hub_clock.advance(s)
        hall_clock.advance(s)

    later(3)
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 1, at=hub_clock.now()))
    settle(d)
    # the broker redelivers a call the hub made five minutes ago (QoS 1, after a reconnect)
    hub.publish(T.event("ticket", "called"), ticket_event(2, 1002, 2, at=hub_clock.now() - 300))
    later(20)
    hub.publish(T.event("ticket", "called"), ticket_event(3, 1003, 3, at=hub_clock.now()))
    settle(d)
    assert [w.name for w in wavs(tmp_path)] == ["00001-1001-quay-1.wav", "00002-1003-quay-3.wav"]
    assert d.scheduler.stats.stale == 1
    d.teardown()


def test_calls_wait_for_the_hubs_clock_after_a_reboot(tmp_path, fake_broker, clock, synthetic_pack_dir) -> None:
    # the speaker reboots while the hub is slow to answer; its broker session hands over an old call first
    hub = FakeBus(fake_broker, site=SITE, node="hub", role="hub")
    answer_resync(hub, clock)
    hub.start()
    d = Announcer(make_settings(tmp_path, synthetic_pack_dir, max_age_s=60),
                  bus=FakeBus(fake_broker, site=SITE, node="announcer-hall", role="announcer"), clock=clock)
    d.start()
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 1, at=clock.now() - 300))
    d.step(timeout=0)
    assert d.scheduler.waiting and not d.last_played  # held: nothing to judge its age by yet
    hub.process(timeout=0)  # the hub's answer arrives
    d.step(timeout=0)
    assert not d.scheduler.waiting and d.scheduler.stats.stale == 1 and wavs(tmp_path) == []
    d.teardown()


def test_a_technician_turns_on_digit_by_digit_and_the_next_call_reads_the_printed_digits(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir, synthetic_pack: VoicePack) -> None:
    d = start(make_settings(tmp_path, synthetic_pack_dir, repeats=1), fake_broker, clock)
    ack = d.node_config.handle(ConfigSet(request_id="tech-0002", source="tech", config={"digit_by_digit": True}))
    assert ack.status == "applied"
    hub.publish(T.event("ticket", "called"), ticket_event(1, 23, 12, at=clock.now()))
    settle(d)
    (wav,) = wavs(tmp_path)
    samples, _ = pcm.read_wav(wav)
    parts = phrase_parts("vi", number=23, counter=12, options=d.config.reading())
    # ticket 0023 as printed, digit by digit; the counter still as a number ("mười hai")
    assert parts == [["moi_cong_dan_co_so_thu_tu"], ["khong", "khong", "hai", "ba"], ["den_quay_so"], ["muoi_huyen", "hai"]]
    assert pcm.to_bytes(samples) == Composer(synthetic_pack, repeats=1).compose(parts).pcm
    d.teardown()


def test_a_bad_reading_config_is_refused_with_every_error_listed(tmp_path, fake_broker, hub, clock,
                                                                 synthetic_pack_dir) -> None:
    d = start(make_settings(tmp_path, synthetic_pack_dir), fake_broker, clock)
    ack = d.node_config.handle(ConfigSet(request_id="tech-0003", source="tech", config={
        "digit_by_digits": True, "digit_by_digit": "sometimes", "word_gap_ms": -5, "zero_word": "không"}))
    assert ack.status == "rejected"
    assert "digit_by_digits: khóa không có trong cấu hình (có phải 'digit_by_digit'?) / " \
        "unknown key (did you mean 'digit_by_digit'?)" in ack.errors
    assert any(e.startswith("digit_by_digit = 'sometimes': phải là true hoặc false / ") for e in ack.errors), ack.errors
    assert any(e.startswith("word_gap_ms = -5:") for e in ack.errors)
    assert "zero_word = 'không': phải là một trong: 'lẻ' hoặc 'linh' / Input should be 'lẻ' or 'linh'" in ack.errors
    assert len(ack.errors) == 4
    assert d.config.digit_by_digit is False  # the running config is untouched
    d.teardown()


def test_a_technicians_push_of_another_pack_folder_is_checked_as_voice_check_checks_it(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir) -> None:
    """`voice check` refuses a clip with 30 s of silence after the word; a push naming that folder
    was applied and the pack played (only the pack already in use may keep such problems). And a
    folder with a clip missing left the hall speaker silent with a critical alert: now both are
    refused with every reason, in the voice the speaker has."""
    import shutil

    from xephang.contract import ConfigAck

    d = start(make_settings(tmp_path, synthetic_pack_dir), fake_broker, clock)
    before = d.pack.path
    bad = tmp_path / "bad-pack"
    shutil.copytree(synthetic_pack_dir, bad)
    samples, rate = pcm.read_wav(bad / "bay.wav")
    pcm.write_wav(bad / "bay.wav", samples + pcm.silence(30_000, rate), rate)
    gone = tmp_path / "gone-pack"
    shutil.copytree(synthetic_pack_dir, gone)
    (gone / "tam.wav").unlink()
    good = tmp_path / "good-pack"
    shutil.copytree(synthetic_pack_dir, good)

    def push(rid: str, folder: Path) -> ConfigAck:
        hub.publish(T.config_set("announcer-hall"), ConfigSet(request_id=rid, source="tech",
                                                              config={"voice_pack": str(folder)}))
        settle(d, until=lambda d: any(decode(ConfigAck, p).request_id == rid
                                      for _, p in fake_broker.messages(T.config_ack("announcer-hall"))))
        return next(a for _, p in fake_broker.messages(T.config_ack("announcer-hall"))
                    if (a := decode(ConfigAck, p)).request_id == rid)

    a = push("tech-bad-1", bad)
    assert a.status == "rejected" and any("[untrimmed] bay" in e for e in a.errors), a.errors
    assert any("[too-long] bay" in e for e in a.errors) and d.pack.path == before
    a = push("tech-gone-1", gone)
    assert a.status == "rejected" and any("tam" in e for e in a.errors) and d.pack.path == before
    assert T.alert("announcer-hall", "voice-pack") not in fake_broker.retained
    assert push("tech-good-1", good).status == "applied" and d.pack.path == good
    d.teardown()


def _push_and_ack(d, hub, fake_broker, rid: str, config: dict):
    from xephang.contract import ConfigAck

    def acks():
        return [a for _, p in fake_broker.messages(T.config_ack("announcer-hall")) if (a := decode(ConfigAck, p))]

    hub.publish(T.config_set("announcer-hall"), ConfigSet(request_id=rid, source="tech", config=config))
    settle(d, until=lambda d: any(a.request_id == rid for a in acks()))
    return next(a for a in acks() if a.request_id == rid)


def test_the_pack_in_use_read_anew_is_judged_as_at_a_start_and_a_push_can_still_repair_it(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir) -> None:
    """The same folder read with other options (four_as_tu needs the clip 'tu') was acked "applied"
    and its reload left the hall silent; and once nothing was loaded, every push was judged by all
    of voice check's problems, so an older pack with an untrimmed clip refused even the repair."""
    import shutil

    older = tmp_path / "older-pack"
    shutil.copytree(synthetic_pack_dir, older)
    samples, rate = pcm.read_wav(older / "bay.wav")
    pcm.write_wav(older / "bay.wav", samples + pcm.silence(3_000, rate), rate)  # played as it is (advisory)
    manifest = json.loads((older / "manifest.json").read_text())
    manifest["clips"].pop("tu")
    (older / "manifest.json").write_text(json.dumps(manifest))
    d = start(make_settings(tmp_path, older), fake_broker, clock)
    assert d.pack is not None and d.pack.path == older
    a = _push_and_ack(d, hub, fake_broker, "tech-tu-0001", {"four_as_tu": True})
    assert a.status == "rejected" and any("tu" in e and "clip-missing" in e for e in a.errors), a.errors
    assert not any("untrimmed" in e for e in a.errors)  # the folder in use: only what it cannot play with
    assert d.pack is not None and d.pack.path == older and not d.config.four_as_tu
    assert _push_and_ack(d, hub, fake_broker, "tech-vol-0001", {"volume": 0.5}).status == "applied"
    d.pack = None  # as after a failed load (a card pulled, a file gone): a push must still get through
    assert _push_and_ack(d, hub, fake_broker, "tech-vol-0002", {"volume": 0.6}).status == "applied"
    d.teardown()


def test_a_pack_path_that_cannot_be_read_is_refused_and_the_speaker_goes_on(
        tmp_path, fake_broker, hub, clock, synthetic_pack_dir) -> None:
    """A technician's path with a NUL in it, or a symlink loop: refused with the reason (the check
    raised, and the push went unanswered), and calls are still spoken."""
    loop = tmp_path / "loop-a"
    loop.symlink_to(tmp_path / "loop-b")
    (tmp_path / "loop-b").symlink_to(loop)
    d = start(make_settings(tmp_path, synthetic_pack_dir), fake_broker, clock)
    for i, bad in enumerate((str(loop), "/tmp/goi\x00giong")):
        a = _push_and_ack(d, hub, fake_broker, f"tech-path-{i:04d}", {"voice_pack": bad})
        assert a.status == "rejected" and "cannot be read" in a.errors[0], a.errors
    assert d.pack is not None and d.pack.path == synthetic_pack_dir
    hub.publish(T.event("ticket", "called"), ticket_event(1, 1001, 2, at=clock.now()))
    settle(d, until=lambda d: bool(d.last_played))
    assert [c.number for c in d.last_played] == [1001]
    d.teardown()


def test_a_silent_hall_is_refused(tmp_path, fake_broker, clock, synthetic_pack_dir):
    """{"volume": 0} was applied: every call after it was "spoken" into silence, and nothing said so."""
    d = start(make_settings(tmp_path, synthetic_pack_dir), fake_broker, clock)
    ack = d.node_config.handle(ConfigSet(request_id="tech-mute-0001", source="tech", config={"volume": 0}))
    assert ack.status == "rejected" and ack.errors == ["volume = 0: phải lớn hơn 0 / Input should be greater than 0"]
    assert d.node_config.rev == 0 and d.config.volume == 1.0
