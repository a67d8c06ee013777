"""Helpers for counterd's stories: a hall on a fake bus with the real hub, and reading the
patterns the box played back from gpiozero's mock pins."""

from __future__ import annotations

import json
import time
from datetime import datetime
from time import monotonic

import pytest

from counterd.main import CounterDaemon, CounterdSettings
from hubd.main import HubDaemon, HubSettings
from xephang.bus import Bus
from xephang.clock import VN_TZ, ManualClock
from xephang.contract import IssueTicket, Topics, new_request_id
from xephang.hw import Pattern
from xephang.testing import FakeBus

SITE = "tuong-linh"
T = Topics(SITE)
MONDAY_9AM = datetime(2026, 1, 5, 9, 0, tzinfo=VN_TZ).timestamp()


def wait_for(pred, timeout: float = 5.0, step=None) -> bool:
    """Poll ``pred`` (running ``step`` between polls) until true or ``timeout``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if step is not None:
            step()
        if pred():
            return True
        if step is None:
            time.sleep(0.005)
    return False


# ---- reading patterns back from mock pins ----------------------------------------------------

def segments(pin) -> list[tuple[bool, float]]:
    """(state, seconds) runs of a mock output pin since its last clear; the last one still open."""
    st = list(pin.states)
    out: list[tuple[bool, float]] = []
    for i, s in enumerate(st):
        dur = st[i + 1].timestamp if i + 1 < len(st) else monotonic() - pin._last_change
        v = bool(s.state)
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + dur)
        else:
            out.append((v, dur))
    return out


def steps_of(p: Pattern, cycles: int = 1) -> list[tuple[bool, float]]:
    """The pattern's steps (finite: all repeats; forever: ``cycles`` cycles), equal states merged."""
    out: list[tuple[bool, float]] = []
    for on, sec in p.steps * (p.repeat or cycles):
        if out and out[-1][0] == on:
            out[-1] = (on, out[-1][1] + sec)
        else:
            out.append((on, sec))
    return out


def _fits(d: float, exp: float, bounded: bool) -> bool:
    lo, hi = exp * 0.7 - 0.012, exp * 1.6 + 0.08
    return d >= lo and (not bounded or d <= hi)


def played(pin, p: Pattern, *, strict: tuple[bool, ...] = (), cycles: int = 1) -> bool:
    """True when the pin went through pattern ``p``: the states in order, interior steps with
    their durations (±), the first and last steps at least as long (they may merge with the
    base) unless their state is in ``strict`` (a base that never has that state)."""
    want = steps_of(p, cycles)
    segs = segments(pin)
    for i in range(len(segs) - len(want) + 1):
        ok = True
        for j, (on, exp) in enumerate(want):
            s_on, d = segs[i + j]
            last_open = i + j == len(segs) - 1
            bounded = (0 < j < len(want) - 1 or on in strict) and not last_open
            if s_on != on or not _fits(d, exp, bounded):
                ok = False
                break
        if ok:
            return True
    return False


def assert_played(sig, name: str, *, strict: tuple[bool, ...] = (), timeout: float = 5.0, cycles: int = 1) -> None:
    """Wait until the signal ``sig`` has visibly played pattern ``name`` on its mock pin."""
    p = sig.patterns[name]
    if not wait_for(lambda: played(sig.pin, p, strict=strict, cycles=cycles), timeout):
        raise AssertionError(f"{sig.name}: pattern {name} not seen; segments "
                             f"{[(s, round(d, 3)) for s, d in segments(sig.pin)]}")


def assert_steady(sig, name: str, *, timeout: float = 5.0) -> None:
    """Wait until the mock pin of signal ``sig`` holds the one state of the steady pattern
    ``name`` (``ready``: steady on) with nothing else, once its flashes are over, for longer
    than any step of its patterns in that state lasts (so a slow blink, ``paused`` or a
    heartbeat, cannot pass for it)."""
    p = sig.patterns[name]
    assert p.forever and len(p.steps) == 1, f"{name} is not a steady pattern"
    want = p.steps[0][0]
    span = 1.5 * max(sec for q in sig.patterns.values() for on, sec in q.steps if on == want)
    deadline = monotonic() + timeout + span
    while True:
        wait_for(lambda: sig.wait_settled(0) and bool(sig.pin.state) == want, max(0.0, deadline - monotonic()))
        sig.pin.clear_states()
        changed = wait_for(lambda: len(segments(sig.pin)) > 1 or segments(sig.pin)[0][0] != want, span)
        segs = segments(sig.pin)
        if not changed and len(segs) == 1 and segs[0][0] == want and segs[0][1] >= span:
            return
        if monotonic() >= deadline:
            raise AssertionError(f"{sig.name}: never steady {'on' if want else 'off'} for {span:g} s ({name}); "
                                 f"last segments {[(s, round(d, 3)) for s, d in segs]}")


# ---- a hall on the fake bus --------------------------------------------------------------------

class Hall:
    """The real hub, counter boxes and a dispenser bus on one FakeBroker.

    The hub runs on a ManualClock inside opening hours; the boxes' keys and cores on a
    manual monotonic clock the tests move between presses (``press``)."""

    def __init__(self, tmp_path, broker, site_file, counters=(1,), **box):
        self.broker = broker
        self.clock = ManualClock(start=MONDAY_9AM)
        self.mono = ManualClock(start=1000.0)
        (tmp_path / "hub").mkdir()
        self.hub = HubDaemon(HubSettings(site=SITE, node="hub", site_file=site_file, state_dir=tmp_path / "hub"),
                             bus=FakeBus(broker, site=SITE, node="hub", role="hub", state_dir=tmp_path / "hub"),
                             clock=self.clock)
        self.boxes: dict[int, CounterDaemon] = {}
        for n in counters:
            d = tmp_path / f"c{n}"
            d.mkdir()
            s = CounterdSettings(site=SITE, site_file=site_file, state_dir=d, sim=True,
                                 request_timeout_s=0.3, request_attempts=2,
                                 counter={"number": n, **box})
            self.boxes[n] = CounterDaemon(s, bus=FakeBus(broker, site=SITE, node=f"counter-{n}", role="counter",
                                                         state_dir=d), clock=self.clock,
                                          monotonic=self.mono.monotonic)
        self.dispenser = FakeBus(broker, site=SITE, node="dispenser-1", role="dispenser")
        self.hub.start()
        for b in self.boxes.values():
            b.start()
        self.dispenser.start()
        self.until(lambda: all(b.hub_online for b in self.boxes.values()))

    @property
    def box(self) -> CounterDaemon:
        return next(iter(self.boxes.values()))

    def step(self):
        self.hub.step(timeout=0)
        for b in self.boxes.values():
            b.step(timeout=0)
        self.dispenser.process(timeout=0)

    def until(self, cond, timeout=5.0):
        if not wait_for(cond, timeout, step=self.step):
            raise AssertionError("condition not reached")

    def settle(self, rounds=10):
        for _ in range(rounds):
            self.step()

    def issue(self, service="ho-tich", n=1):
        out = []
        for _ in range(n):
            replies: list = []
            self.dispenser.request(IssueTicket(request_id=new_request_id(), source="dispenser-1", service=service),
                                   on_reply=replies.append, timeout_s=2, attempts=1)
            self.until(lambda r=replies: bool(r))
            assert replies[0] is not None and replies[0].status == "ok"
            out.append(replies[0].data["ticket"]["display"])
        self.settle()
        return out

    def press(self, key, *, counter=None, hold_s=0.05, gap_s=1.0, settle=True):
        box = self.boxes[counter] if counter else self.box
        pin = box.board.keys[key].pin
        pin.drive_low()
        self.mono.advance(hold_s)
        pin.drive_high()
        self.mono.advance(gap_s)
        if settle:
            self.settle()

    def events(self, kind):
        return [json.loads(p) for _, p in self.broker.messages(T.event("ticket", kind))]

    def requests(self, action):
        return [json.loads(p) for _, p in self.broker.messages(T.req(action) + "/#")]

    def close(self):
        for b in self.boxes.values():
            b.teardown()
            b.bus.stop()
        self.hub.teardown()


@pytest.fixture
def three_point_site(tmp_path, site_file):
    """The example site rating on a 3-point scale (three rating keys)."""
    text = site_file.read_text()
    assert "rating_scale = 5" in text
    path = tmp_path / "site-3.toml"
    path.write_text(text.replace("rating_scale = 5", "rating_scale = 3"))
    return path


@pytest.fixture
def hall_factory(tmp_path, fake_broker, site_file):
    made: list[Hall] = []

    def make(*, site=None, **kw):
        h = Hall(tmp_path, fake_broker, site or site_file, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def tech_bus(port: int, node: str = "tech-1") -> Bus:
    from xephang.settings import BrokerSettings
    return Bus(site=SITE, node=node, role="tech", broker=BrokerSettings(port=port))
