"""The box's light and sound language: every buzzer answer has its own rhythm (not only its
own length), and the pin-reading helpers the stories rely on can say no."""

from __future__ import annotations

import itertools

import pytest
from gpiozero import LED

from counterd.lights import BOX_BUZZER_PATTERNS, STATUS_PATTERNS, rhythm, tune, tune_length
from tests.counterd.conftest import assert_played, assert_steady
from xephang.hw import Pattern, Signal, make_pin_factory
from xephang.hw.lights import BUZZER_PATTERNS

ANSWERS = {name: p for name, p in BOX_BUZZER_PATTERNS.items() if name != "off"}


def collisions(table: dict[str, Pattern]) -> list[tuple[str, str, str]]:
    """Pairs of names the ear cannot tell apart: the same rhythm (beep count, short/long order,
    tight/wide spacing), whatever their exact lengths."""
    shapes = {name: rhythm(p) for name, p in table.items()}
    return [(a, b, shapes[a]) for a, b in itertools.combinations(shapes, 2) if shapes[a] == shapes[b]]


def test_every_buzzer_answer_has_its_own_rhythm():
    assert collisions(ANSWERS) == []
    counts = {name: len(rhythm(p).replace(" ", "")) for name, p in ANSWERS.items()}
    assert counts["accepted"] == counts["error"] == 1 and rhythm(ANSWERS["accepted"]) != rhythm(ANSWERS["error"])
    assert {counts["busy"], counts["suggest_no_show"], counts["hub_offline"]} == {4, 3, 2}


def test_a_table_that_differs_only_by_length_is_caught():
    # the old box table: accepted, queued, cancelled, queue_empty, error were all one beep
    old = {"accepted": BUZZER_PATTERNS["accepted"], "queued": Pattern(((True, 0.02), (False, 0.0)), repeat=1),
           "queue_empty": Pattern(((True, 0.3), (False, 0.0)), repeat=1), "error": BUZZER_PATTERNS["error"]}
    assert ("accepted", "queued", "·") in collisions(old) and ("queue_empty", "error", "—") in collisions(old)
    with pytest.raises(ValueError, match="neither short nor long"):   # a beep the ear cannot place
        rhythm(Pattern(((True, 0.15), (False, 0.0)), repeat=1))


def test_the_menu_beeps_count_the_option_after_a_long_lead_in():
    for n in range(1, 10):
        r = rhythm(ANSWERS[f"choose-{n}"])
        assert r == "—" + " ·" * n
        assert tune_length(ANSWERS[f"choose-{n}"]) <= 0.3 + 0.28 * n


def test_every_other_answer_is_short():
    for name, p in ANSWERS.items():
        if not name.startswith("choose-"):
            assert tune_length(p) <= 0.6, name


def test_tune_writes_the_rhythm_it_reads():
    for notes in ("·", "—", "··", "· ·", "—··", "— · ·"):
        assert rhythm(tune(notes)) == notes
    with pytest.raises(ValueError):
        tune("·x")


@pytest.fixture
def status_led():
    sig = Signal(LED(17, pin_factory=make_pin_factory("mock")), patterns=STATUS_PATTERNS, name="status")
    yield sig
    sig.close()


def test_assert_steady_accepts_ready_and_refuses_a_slow_blink(status_led):
    status_led.show("ready")
    assert_steady(status_led, "ready")
    status_led.show("paused")             # on 1 s, off 1 s: on for a while, but not steady
    with pytest.raises(AssertionError, match="never steady on"):
        assert_steady(status_led, "ready", timeout=0.2)


def test_assert_steady_refuses_a_blink_that_ends_on(status_led):
    status_led.show("working")
    status_led.show("accepted")           # ends on an on step, then the blinking base again
    with pytest.raises(AssertionError, match="never steady on"):
        assert_steady(status_led, "ready", timeout=0.2)


def test_assert_played_needs_the_pattern_on_the_pin(status_led):
    status_led.show("paused")
    with pytest.raises(AssertionError):
        assert_played(status_led, "suggest_no_show", timeout=0.5)
