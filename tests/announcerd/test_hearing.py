"""Scoring what a recogniser heard against a call (shared by the bench and the voice page)."""

from __future__ import annotations

from xephang_voice.hearing import Heard, align, call_words, normalise_words, span_exact, wilson


def _exact(said: str, number: int, counter: int) -> tuple[bool, bool]:
    ref, (lo, hi) = call_words(number, counter)
    hyp = normalise_words(said, ref)
    pairs = align(ref, hyp)
    return span_exact(ref, hyp, pairs, lo, hi), span_exact(ref, hyp, pairs, hi + 3, len(ref))


def test_a_call_heard_right_wrong_or_in_digits_is_scored_per_number_and_counter() -> None:
    assert _exact("mời công dân có số thứ tự một nghìn không trăm hai mươi ba đến quầy số ba", 1023, 3) == (True, True)
    assert _exact("người tùm lum có số cứ một nghìn không trăm hai miu ba đến quầy phố ba", 1023, 3) == (False, True)
    assert _exact("mời công dân có số thứ tự 1023 đến quầy số 3", 1023, 3) == (True, True)  # digits written out
    assert _exact("mời công dân có số thứ tự một nghìn không trăm hai mươi ba đến quầy số ba bốn", 1023, 3) == (True, False)


def test_a_word_is_understood_when_heard_at_the_end_after_its_context() -> None:
    assert Heard("chín", "đến cuối rồi chín", at_end=True).understood
    assert not Heard("bốn", "đến cuối rồi bố", at_end=True).understood
    assert not Heard("bốn", "", at_end=True).understood
    assert Heard("Mời công dân có số thứ tự", "người mời công dân có số thứ tự à").understood
    lo, hi = wilson(17, 100)
    assert round(lo, 3) == 0.109 and round(hi, 3) == 0.255


def test_installing_the_recogniser_where_no_venv_can_be_made_says_why_and_fails(capsys) -> None:
    from xephang_voice.hearing import main

    assert main(["install", "/proc/xephang-no-venv-here"]) == 1
    err = capsys.readouterr().err
    assert "the recogniser is not installed" in err and "/proc/xephang-no-venv-here" in err


def test_installing_the_recogniser_keeps_a_venv_that_already_works(tmp_path, monkeypatch) -> None:
    """A venv whose Python already imports it is used as it is: nothing created, nothing installed."""
    import subprocess as sp

    from xephang_voice import hearing

    py = tmp_path / "venv" / "bin" / "python"
    py.parent.mkdir(parents=True)
    py.write_text("#!/bin/sh\nexit 0\n")  # "imports vietasr and numpy"
    py.chmod(0o755)
    ran: list[list[str]] = []
    real = sp.run

    def run(cmd, *a, **kw):
        ran.append([str(c) for c in cmd])
        return real(cmd, *a, **kw)

    monkeypatch.setattr(hearing.subprocess, "run", run)
    assert hearing.ensure_venv(tmp_path / "venv", say=lambda m: None) == (py, "")
    assert ran == [[str(py), "-c", "import vietasr, numpy"]]
