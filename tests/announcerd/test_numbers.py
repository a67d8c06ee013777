"""The speaker reads every ticket number the way a Vietnamese official would say it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from xephang_voice.numbers import (
    CLIP_TEXT,
    ReadingOptions,
    read_digits,
    read_letters,
    read_number,
    read_ticket,
    spoken,
    vocabulary,
)

NORTH = ReadingOptions()  # nghìn, lẻ
SOUTH = ReadingOptions(dialect="south")  # ngàn, linh
TU = ReadingOptions(four_as_tu=True)

# (n, options, expected speech). Every rule of the issue is a row.
TABLE = [
    (0, NORTH, "không"),
    (1, NORTH, "một"),
    (4, NORTH, "bốn"),
    (5, NORTH, "năm"),
    (10, NORTH, "mười"),
    (11, NORTH, "mười một"),  # mốt only after mươi
    (14, TU, "mười bốn"),  # tư only after mươi
    (15, NORTH, "mười lăm"),
    (20, NORTH, "hai mươi"),
    (21, NORTH, "hai mươi mốt"),
    (24, NORTH, "hai mươi bốn"),
    (24, TU, "hai mươi tư"),
    (25, NORTH, "hai mươi lăm"),
    (31, SOUTH, "ba mươi mốt"),
    (65, NORTH, "sáu mươi lăm"),  # vn-numberwords says "sáu mươi năm"
    (95, NORTH, "chín mươi lăm"),
    (100, NORTH, "một trăm"),
    (101, NORTH, "một trăm lẻ một"),
    (101, SOUTH, "một trăm linh một"),
    (101, ReadingOptions(zero_word="linh"), "một trăm linh một"),
    (101, ReadingOptions(dialect="south", zero_word="lẻ"), "một trăm lẻ một"),
    (104, TU, "một trăm lẻ bốn"),
    (105, NORTH, "một trăm lẻ năm"),  # not "lẻ lăm"
    (105, SOUTH, "một trăm linh năm"),
    (110, NORTH, "một trăm mười"),
    (111, NORTH, "một trăm mười một"),
    (115, NORTH, "một trăm mười lăm"),
    (121, NORTH, "một trăm hai mươi mốt"),
    (124, TU, "một trăm hai mươi tư"),
    (200, NORTH, "hai trăm"),
    (1000, NORTH, "một nghìn"),
    (1000, SOUTH, "một ngàn"),
    (1001, NORTH, "một nghìn không trăm lẻ một"),
    (1005, NORTH, "một nghìn không trăm lẻ năm"),
    (1005, SOUTH, "một ngàn không trăm linh năm"),
    (1010, NORTH, "một nghìn không trăm mười"),  # num2words says "một nghìn lẻ mười"
    (1015, NORTH, "một nghìn không trăm mười lăm"),
    (1023, NORTH, "một nghìn không trăm hai mươi ba"),  # num2words says "một nghìn lẻ hai mươi ba"
    (1023, SOUTH, "một ngàn không trăm hai mươi ba"),
    (1100, NORTH, "một nghìn một trăm"),
    (2024, TU, "hai nghìn không trăm hai mươi tư"),
    (4065, NORTH, "bốn nghìn không trăm sáu mươi lăm"),
    (9999, NORTH, "chín nghìn chín trăm chín mươi chín"),
    (10000, NORTH, "mười nghìn"),
    (15005, SOUTH, "mười lăm ngàn không trăm linh năm"),
    (21000, NORTH, "hai mươi mốt nghìn"),
]


@pytest.mark.parametrize(("n", "options", "expected"), TABLE, ids=[f"{n}-{o.dialect}-{o.zero_token}-{o.four_as_tu}" for n, o, _ in TABLE])
def test_reading_table(n: int, options: ReadingOptions, expected: str) -> None:
    assert spoken(read_number(n, options=options)) == expected


# What the libraries say, called for real (both are dev dependencies: a missing one fails the
# test, it does not skip).  Each row: (n, library, correct reading).
LIBRARY_MISTAKES = [
    (1023, "num2words", "một nghìn không trăm hai mươi ba"),  # num2words: "một nghìn lẻ hai mươi ba"
    (1010, "num2words", "một nghìn không trăm mười"),  # num2words: "một nghìn lẻ mười"
    (1005, "num2words", "một nghìn không trăm lẻ năm"),  # num2words: "một nghìn lẻ năm"
    (65, "vn-numberwords", "sáu mươi lăm"),  # vn-numberwords: "sáu mươi năm"
    (75, "vn-numberwords", "bảy mươi lăm"),  # vn-numberwords: "bảy mươi năm"
]


def _library_reading(library: str, n: int) -> str:
    if library == "num2words":
        from num2words import num2words

        return num2words(n, lang="vi")
    from vn_numberwords import number_to_words

    return number_to_words(n)


@pytest.mark.parametrize(("n", "library", "correct"), LIBRARY_MISTAKES, ids=[f"{lib}-{n}" for n, lib, _ in LIBRARY_MISTAKES])
def test_libraries_get_hall_numbers_wrong_and_ours_does_not(n: int, library: str, correct: str) -> None:
    theirs = _library_reading(library, n)
    assert theirs.strip() and theirs != correct, f"{library} now reads {n} correctly ({theirs!r}): update the docs"
    assert spoken(read_number(n)) == correct


def test_libraries_agree_with_us_on_easy_numbers() -> None:
    # the comparison is fair: same words, same spelling, where the libraries are right
    for n in (15, 21, 25, 9999):
        ours = spoken(read_number(n))
        assert _library_reading("num2words", n) == ours
        assert _library_reading("vn-numberwords", n) == ours


def test_one_token_per_clip() -> None:
    assert read_number(1023) == ["mot", "nghin", "khong", "tram", "hai", "muoi_ngang", "ba"]
    assert read_number(15) == ["muoi_huyen", "lam"]


def test_digit_by_digit_reads_what_is_printed() -> None:
    opts = ReadingOptions(digit_by_digit=True)
    assert spoken(read_ticket(1023, options=opts)) == "một không hai ba"
    assert spoken(read_ticket(23, options=opts)) == "không không hai ba"
    assert spoken(read_ticket(23, prefix="A", options=opts)) == "a không hai ba"


def test_prefix_letters_one_clip_each() -> None:
    assert read_ticket(105, prefix="B") == ["letter_b", "mot", "tram", "le", "nam"]
    assert spoken(read_letters("CX")) == "xê ích xì"
    with pytest.raises(ValueError):
        read_letters("Đ")


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        read_number(-1)
    with pytest.raises(ValueError):
        read_number(1_000_000)
    with pytest.raises(TypeError):
        read_number(True)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        read_digits("12a")


def test_vocabulary_is_small() -> None:
    # 0..9999 needs 17 clips: 10 digits, mười, mươi, trăm, nghìn, lẻ, mốt, lăm
    assert len(vocabulary(NORTH)) == 17
    assert len(vocabulary(TU)) == 18


options_st = st.builds(
    ReadingOptions,
    dialect=st.sampled_from(["north", "south"]),
    zero_word=st.sampled_from([None, "lẻ", "linh"]),
    four_as_tu=st.booleans(),
)


@given(n=st.integers(0, 9999), options=options_st)
def test_every_ticket_is_readable_from_the_vocabulary(n: int, options: ReadingOptions) -> None:
    tokens = read_number(n, options=options)
    assert tokens and set(tokens) <= vocabulary(options)
    assert all(t in CLIP_TEXT for t in tokens)


def test_all_tickets_0_to_9999_exhaustively() -> None:
    for options in (NORTH, SOUTH, TU):
        vocab = vocabulary(options)
        readings = set()
        for n in range(10000):
            tokens = read_number(n, options=options)
            assert set(tokens) <= vocab, n
            readings.add(tuple(tokens))
        assert len(readings) == 10000  # no two numbers sound the same


@given(n=st.integers(0, 9999))
def test_reading_parses_back_to_the_number(n: int) -> None:
    assert _parse(read_number(n)) == n


def _parse(tokens: list[str]) -> int:
    """An independent listener: turns the spoken tokens back into a number."""
    digit = {t: i for i, t in enumerate(["khong", "mot", "hai", "ba", "bon", "nam", "sau", "bay", "tam", "chin"])}
    digit |= {"mot_sac": 1, "lam": 5, "tu": 4}
    total, group, last = 0, 0, 0
    for t in tokens:
        if t in digit:
            last = digit[t]
            group += last
        elif t == "muoi_huyen":
            group += 10
        elif t == "muoi_ngang":
            group += last * 9  # the digit was already added once
        elif t == "tram":
            group += last * 99
        elif t in ("nghin", "ngan"):
            total, group = group * 1000, 0
        elif t in ("le", "linh"):
            pass
    return total + group
