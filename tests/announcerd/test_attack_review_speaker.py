"""The speaker against names SDL cannot take: a technician's push (or a stolen technician laptop)
with a NUL in the audio device or driver, or in a path.

Before: ``audio_device = "x\\x00y"`` was applied and saved; SDL's open raised ValueError (not
pygame.error) out of the player, the first call stayed "playing" in the queue for good and every
later call was a handler error: the hall silent until a technician found it, on every restart too.
A NUL in ``audio_driver`` was refused at apply, but the player had already been replaced: silent
as well, behind a config that still said the old one."""

from __future__ import annotations

import pytest

from announcerd.player import Player
from announcerd.scheduler import CallEvent, Scheduler
from tests.announcerd import test_daemon as daemon_tests
from tests.announcerd.test_daemon import T, make_settings, settle, start, ticket_event, wavs
from xephang.contract import ConfigAck, ConfigSet, decode, new_request_id

# the hall's clock, the hub's (the same) and a hub that answers the speaker's resync
clock, hub_clock, hub = daemon_tests.clock, daemon_tests.hub_clock, daemon_tests.hub

PUSHES = {
    "NUL in the device": {"audio_device": "USB Audio\x00"},
    "NUL in the driver": {"audio_driver": "alsa\x00"},
    "device on two lines": {"audio_device": "USB\nAudio"},
    "NUL in the CA path": {"voice_pack_ca_file": "/etc/xephang/ca.crt\x00"},
    "control in web_origin": {"web_origin": "http://hub\x01.local"},
}


@pytest.mark.parametrize("config", PUSHES.values(), ids=PUSHES.keys())
def test_a_pushed_name_sdl_cannot_take_is_refused_and_the_next_call_is_spoken(tmp_path, fake_broker, hub, clock,
                                                                             synthetic_pack_dir, config):
    d = start(make_settings(tmp_path, synthetic_pack_dir), fake_broker, clock)
    try:
        hub.publish(T.config_set("announcer-hall"), ConfigSet(request_id=new_request_id(), source="tech-1",
                                                              config=config))
        settle(d, until=lambda d: bool(fake_broker.messages(T.config_ack("announcer-hall"))))
        ack = decode(ConfigAck, fake_broker.messages(T.config_ack("announcer-hall"))[-1][1])
        assert ack.status == "rejected" and ack.errors and d.node_config.rev == 0
        hub.publish(T.event("ticket", "called"), ticket_event(7, 1023, 3, at=clock.now()))
        settle(d, until=lambda d: bool(wavs(tmp_path)) and d.player.state != "playing")
        assert [w.name for w in wavs(tmp_path)] == ["00001-1023-quay-3.wav"]
        assert d.bus.stats.dropped_by_code.get("handler-error", 0) == 0
    finally:
        d.teardown()


def test_a_device_name_sdl_refuses_is_a_missing_device_not_an_exception(tmp_path):
    """Whatever reaches the player (an old saved config, a settings file) opens as 'missing', with the reason."""
    player = Player(sample_rate=8000, driver="dummy", device="USB Audio\x00")
    try:
        assert player.open() is False
        assert player.state == "audio-missing" and "null" in player.last_error
    finally:
        player.close()


def test_one_counter_calling_at_the_hubs_pace_does_not_silence_the_other_counters() -> None:
    """A counter's stolen password calls the hub's whole burst (60 at once): before, its last 30 calls
    filled the speaker's queue and counter 2's call, 30th in line, went stale unsaid (~15 s each)."""
    t0 = 1_795_050_300.0
    s = Scheduler(max_age_s=90)
    s.observe_hub(t0, t0)
    for i in range(60):
        s.offer(CallEvent(event_id=f"e{i}", rev=i + 1, at=t0, kind="called", number=1001 + i, counter=1), t0)
    s.offer(CallEvent(event_id="c2", rev=61, at=t0 + 1, kind="called", number=2001, counter=2), t0 + 1)
    said, now = [], t0 + 1
    while (job := s.next_job(now)) is not None:
        said.append((job.call.number, job.call.counter))
        s.finished()
        now += 15  # one announcement: chime and the phrase twice
    assert said == [(1059, 1), (1060, 1), (2001, 2)]  # counter 1's newest two, then counter 2 in time
    assert s.stats.superseded == 58 and s.stats.stale == 0
