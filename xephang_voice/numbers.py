"""Vietnamese number reading, one token per voice clip.

Our own reader because the libraries get the hall's numbers wrong: ``num2words`` reads 1023
as "một nghìn lẻ hai mươi ba" (it must be "một nghìn không trăm hai mươi ba") and
``vn-numberwords`` reads 65 as "sáu mươi năm" (it must be "sáu mươi lăm").

A token is a clip id (ASCII, stable, used as the WAV file name in a voice pack);
``CLIP_TEXT`` gives each token's Vietnamese text and :func:`spoken` joins them for humans
and tests.  Pure: no I/O.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Dialect = Literal["north", "south"]
ZeroWord = Literal["lẻ", "linh"]

DIGITS: tuple[str, ...] = ("khong", "mot", "hai", "ba", "bon", "nam", "sau", "bay", "tam", "chin")

#: Vietnamese text of every number token (NFC).
NUMBER_TEXT: dict[str, str] = {
    "khong": "không",
    "mot": "một",
    "hai": "hai",
    "ba": "ba",
    "bon": "bốn",
    "nam": "năm",
    "sau": "sáu",
    "bay": "bảy",
    "tam": "tám",
    "chin": "chín",
    "muoi_huyen": "mười",  # 10–19
    "muoi_ngang": "mươi",  # tens 20–90
    "tram": "trăm",
    "nghin": "nghìn",  # Northern
    "ngan": "ngàn",  # Southern
    "le": "lẻ",
    "linh": "linh",
    "mot_sac": "mốt",  # unit 1 after mươi (21, 31 …)
    "lam": "lăm",  # unit 5 after mười/mươi (15, 25 …)
    "tu": "tư",  # unit 4 after mươi when four_as_tu (24 …)
}

#: Vietnamese letter names, for ticket prefixes (A023 → "a không hai ba" …).
LETTER_TEXT: dict[str, str] = {
    "letter_a": "a",
    "letter_b": "bê",
    "letter_c": "xê",
    "letter_d": "dê",
    "letter_e": "e",
    "letter_f": "ép",
    "letter_g": "giê",
    "letter_h": "hát",
    "letter_i": "i",
    "letter_j": "gi",
    "letter_k": "ca",
    "letter_l": "e lờ",
    "letter_m": "em mờ",
    "letter_n": "en nờ",
    "letter_o": "o",
    "letter_p": "pê",
    "letter_q": "quy",
    "letter_r": "e rờ",
    "letter_s": "ét xì",
    "letter_t": "tê",
    "letter_u": "u",
    "letter_v": "vê",
    "letter_w": "vê kép",
    "letter_x": "ích xì",
    "letter_y": "i dài",
    "letter_z": "dét",
}

#: Every token the reader can produce → its Vietnamese text.
CLIP_TEXT: dict[str, str] = {**NUMBER_TEXT, **LETTER_TEXT}

MAX_NUMBER = 999_999


@dataclass(frozen=True, kw_only=True)
class ReadingOptions:
    """How numbers are read aloud.

    ``dialect`` picks nghìn/lẻ (north) or ngàn/linh (south); ``zero_word`` overrides the
    word for an empty tens place (101 = một trăm lẻ/linh một); ``four_as_tu`` reads a unit 4
    after mươi as "tư" (24 = hai mươi tư); ``digit_by_digit`` reads the printed number one
    digit at a time (1023 = một không hai ba).
    """

    dialect: Dialect = "north"
    zero_word: ZeroWord | None = None
    four_as_tu: bool = False
    digit_by_digit: bool = False

    @property
    def zero_token(self) -> str:
        word = self.zero_word or ("lẻ" if self.dialect == "north" else "linh")
        return "le" if word == "lẻ" else "linh"

    @property
    def thousand_token(self) -> str:
        return "nghin" if self.dialect == "north" else "ngan"


DEFAULT_OPTIONS = ReadingOptions()


def _units_after_tens(u: int, tens: int, options: ReadingOptions) -> list[str]:
    """The unit word after mười (tens=1) or mươi (tens≥2): mốt, tư, lăm have their own clips."""
    if u == 0:
        return []
    if u == 5:
        return ["lam"]
    if tens >= 2 and u == 1:
        return ["mot_sac"]
    if tens >= 2 and u == 4 and options.four_as_tu:
        return ["tu"]
    return [DIGITS[u]]


def _read_group(n: int, *, full: bool, options: ReadingOptions) -> list[str]:
    """Read 0 < n < 1000; ``full`` when a higher group precedes (then "không trăm" is said)."""
    h, rest = divmod(n, 100)
    t, u = divmod(rest, 10)
    tokens: list[str] = []
    said_hundreds = full or h > 0
    if said_hundreds:
        tokens += [DIGITS[h], "tram"]
    if t == 0:
        if u:
            # 105 = một trăm lẻ năm: after lẻ/linh a 5 stays "năm" and a 1 stays "một"
            tokens += ([options.zero_token] if said_hundreds else []) + [DIGITS[u]]
    elif t == 1:
        tokens += ["muoi_huyen", *_units_after_tens(u, 1, options)]
    else:
        tokens += [DIGITS[t], "muoi_ngang", *_units_after_tens(u, t, options)]
    return tokens


def read_number(n: int, *, options: ReadingOptions = DEFAULT_OPTIONS) -> list[str]:
    """Tokens (clip ids) reading ``n`` (0 ≤ n ≤ 999 999) in full words.

    ``options.digit_by_digit`` is ignored here (see :func:`read_ticket`): a counter
    number is always read as a number.
    """
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"number must be an int, not {type(n).__name__}")
    if not 0 <= n <= MAX_NUMBER:
        raise ValueError(f"number {n} out of range 0..{MAX_NUMBER}")
    if n == 0:
        return ["khong"]
    thousands, rest = divmod(n, 1000)
    tokens: list[str] = []
    if thousands:
        tokens += _read_group(thousands, full=False, options=options) + [options.thousand_token]
    if rest:
        tokens += _read_group(rest, full=bool(thousands), options=options)
    return tokens


def read_digits(text: str) -> list[str]:
    """One digit token per decimal digit of ``text`` (other characters are an error)."""
    if not text or not text.isascii() or not text.isdigit():
        raise ValueError(f"not a string of digits: {text!r}")
    return [DIGITS[int(c)] for c in text]


def read_letters(prefix: str) -> list[str]:
    """One letter-name token per letter of a ticket prefix ("A" → letter_a)."""
    out: list[str] = []
    for c in prefix:
        if not ("A" <= c.upper() <= "Z"):
            raise ValueError(f"prefix letter {c!r} is not A–Z")
        out.append(f"letter_{c.lower()}")
    return out


def read_ticket(number: int, *, prefix: str = "", options: ReadingOptions = DEFAULT_OPTIONS) -> list[str]:
    """Tokens for a ticket as printed: prefix letters, then the number.

    Digit by digit reads exactly the printed digits (``format_number``: 23 → "0023",
    A23 → "A023"), so the citizen hears what is on the paper.
    """
    tokens = read_letters(prefix)
    if options.digit_by_digit:
        printed = f"{number:04d}" if not prefix else f"{number:03d}"
        tokens += read_digits(printed)
    else:
        tokens += read_number(number, options=options)
    return tokens


def spoken(tokens: Iterable[str]) -> str:
    """The Vietnamese text of a token sequence, NFC ("một nghìn không trăm hai mươi ba")."""
    return unicodedata.normalize("NFC", " ".join(CLIP_TEXT[t] for t in tokens))


def vocabulary(options: ReadingOptions = DEFAULT_OPTIONS, *, letters: Sequence[str] = ()) -> set[str]:
    """The clip ids needed to read every ticket 0..9999 and counter 1..99 with ``options``."""
    vocab = {*DIGITS, "muoi_huyen", "muoi_ngang", "tram", options.thousand_token, options.zero_token,
             "mot_sac", "lam"}
    if options.four_as_tu:
        vocab.add("tu")
    vocab.update(read_letters("".join(letters)))
    return vocab
