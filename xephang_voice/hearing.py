"""Hearing a clip with an offline recogniser: "was «bốn» heard as bốn?"

The recogniser is viet-asr (a PyPI wheel with its model inside, Apache-2.0 code, model
provenance not stated: a development and CI tool, **not shipped** on the Pi; see
``../shared/research/voice.md`` and ``bench/voice_intelligibility.py``). It runs in its own
Python (the bench's ASR venv, ``~/.cache/xephang/asr-venv``) as one long-lived worker process
fed one WAV path per line, so webd never imports it and works the same without it.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
import re
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from xephang_voice import pcm
from xephang_voice.numbers import (
    DEFAULT_OPTIONS,
    NUMBER_TEXT,
    ReadingOptions,
    read_number,
    read_ticket,
    spoken,
)
from xephang_voice.voicepack import Composer, VoicePack, phrase_parts

log = logging.getLogger(__name__)
NUMBER_WORDS = set(NUMBER_TEXT.values())

WORKER = Path(__file__).with_name("asr_worker.py")  # runs in the ASR venv (it imports nothing of ours)
# started with ``python -P``: the script's own folder must not come first on sys.path (our numbers.py would
# hide the standard library's numbers from numpy)
PAD_S = 0.25  # silence each side: a single word recorded right at the edge of a take is often lost


ASR_REQUIREMENT = "viet-asr==0.1.0.dev11"  # a pre-release: the only one on PyPI with the model inside


def default_venv() -> Path:
    """The ASR venv: ``$XDG_CACHE_HOME/xephang/asr-venv`` (``~/.cache/xephang/asr-venv``)."""
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "xephang" / "asr-venv"


def default_python() -> Path:
    """The ASR venv's Python (``ensure_venv`` or ``python -m xephang_voice.hearing install`` creates it)."""
    return default_venv() / "bin" / "python"


def imports_recogniser(python: Path) -> bool:
    """Whether ``python`` exists and imports viet-asr (a Python that hangs for a minute does not)."""
    try:
        return python.exists() and subprocess.run([str(python), "-c", "import vietasr, numpy"], capture_output=True,
                                                  check=False, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_venv(venv: Path | None = None, *, say: Callable[[str], None] = print) -> tuple[Path | None, str]:
    """Python of a venv holding viet-asr (created on demand), or (None, why not).

    Idempotent: a venv whose Python already imports viet-asr is used as it is.
    """
    venv = venv or default_venv()
    py = venv / "bin" / "python"
    if imports_recogniser(py):
        return py, ""
    say(f"installing {ASR_REQUIREMENT} into {venv} (dev and CI only, not on the Pi) …")
    try:
        r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, check=False)
    except OSError as exc:
        return None, f"cannot create a venv at {venv}: {exc}"
    if r.returncode != 0:
        return None, f"cannot create a venv at {venv}: {r.stderr.strip()[-300:]}"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--pre", ASR_REQUIREMENT], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        return None, f"pip install {ASR_REQUIREMENT} failed: {r.stderr.strip()[-400:]}"
    if not imports_recogniser(py):
        return None, "viet-asr installed but does not import"
    return py, ""


def words(text: str) -> list[str]:
    """Lower-case NFC words without punctuation."""
    return re.findall(r"\w+", unicodedata.normalize("NFC", text.lower()))


@dataclass(frozen=True)
class Heard:
    """What the recogniser made of a clip that should say ``expected``."""

    expected: str
    text: str
    at_end: bool = False  # the clip was heard after a context phrase: its words must end the transcript

    @property
    def understood(self) -> bool:
        """Every expected word heard, in order (other words around them allowed) — or, after a
        context phrase, exactly the last words heard."""
        want, got = words(self.expected), words(self.text)
        if self.at_end:
            return bool(want) and got[-len(want):] == want
        i = 0
        for w in got:
            if i < len(want) and w == want[i]:
                i += 1
        return i == len(want)


class Recogniser:
    """One worker process, one clip at a time (a lock), restarted if it dies."""

    def __init__(self, python: Path | str, *, timeout_s: float = 30.0) -> None:
        self.python = str(python)
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def available(cls, python: Path | str | None = None) -> Recogniser | None:
        """A recogniser if ``python`` (default: the bench's ASR venv) imports viet-asr, else None."""
        py = Path(python) if python else default_python()
        return cls(py) if imports_recogniser(py) else None

    def _start(self) -> subprocess.Popen[str]:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([self.python, "-P", str(WORKER), "--lines", "--pad", str(PAD_S)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, encoding="utf-8", env=env)
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline() or "{}")
        if not first.get("ready"):
            proc.kill()
            raise RuntimeError("the recogniser did not start")
        return proc

    def hear(self, wav: Path, expected: str, *, at_end: bool = False) -> Heard:
        """Transcribe one clip. Raises RuntimeError if the recogniser cannot answer."""
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._proc = self._start()
            proc = self._proc
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(str(wav) + "\n")
                proc.stdin.flush()
                answer = json.loads(proc.stdout.readline() or "{}")
            except (OSError, ValueError) as exc:
                proc.kill()
                self._proc = None
                raise RuntimeError(f"the recogniser failed: {exc}") from None
        if "text" not in answer:
            raise RuntimeError(f"the recogniser failed: {answer.get('error', 'no answer')}")
        return Heard(expected, str(answer["text"]), at_end)

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._proc.kill()
                self._proc.wait(5)
                self._proc = None


# ---- scoring a call (the bench's, ``bench/voice_intelligibility.py``, and the voice page's) ---------
_DIGITS = ["không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín"]


def _spellings(w: str) -> list[list[str]]:
    """A digit string as a number ("23" → hai mươi ba) and digit by digit (hai ba)."""
    by_digit = [_DIGITS[int(c)] for c in w]
    if len(w) > 6:
        return [by_digit]
    full = spoken(read_number(int(w))).split()
    return [full] if full == by_digit else [full, by_digit]


def normalise_words(text: str, ref: list[str] | None = None) -> list[str]:
    """Lower-case NFC words without punctuation; digit strings spelled out (Whisper writes digits).

    With ``ref``, each digit string is spelled as a number or digit by digit, whichever aligns
    better with the reference (at most 4 digit strings are tried both ways).
    """
    text = unicodedata.normalize("NFC", text.lower())
    tokens = re.findall(r"\w+", text)
    choices = [_spellings(w) if w.isdigit() else [[w]] for w in tokens]
    n_multi = sum(1 for c in choices if len(c) > 1)
    if ref is None or n_multi == 0 or n_multi > 4:
        return [x for c in choices for x in c[0]]
    best: list[str] | None = None
    best_d = 10**9
    for combo in itertools.product(*choices):
        words = [x for c in combo for x in c]
        d = sum(1 for r, h in align(ref, words) if r is None or h is None or ref[r] != words[h])
        if d < best_d:
            best, best_d = words, d
    return best or []


def align(ref: list[str], hyp: list[str]) -> list[tuple[int | None, int | None]]:
    """Levenshtein alignment as (ref index | None, hyp index | None) pairs."""
    n, m = len(ref), len(hyp)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i or j:
        if i and j and d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif i and d[i][j] == d[i - 1][j] + 1:
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    return pairs[::-1]


def span_exact(ref: list[str], hyp: list[str], pairs: list[tuple[int | None, int | None]], lo: int, hi: int) -> bool:
    """Ref words [lo, hi) all matched; nothing inserted inside; no number word inserted next to it."""
    ks = [k for k, (ri, _) in enumerate(pairs) if ri is not None and lo <= ri < hi]
    first, last = ks[0], ks[-1]
    for k in range(first, last + 1):
        ri, hj = pairs[k]
        if ri is None or hj is None or ref[ri] != hyp[hj]:
            return False
    for k in (first - 1, last + 1):
        if 0 <= k < len(pairs) and pairs[k][0] is None and hyp[pairs[k][1]] in NUMBER_WORDS:  # type: ignore[index]
            return False
    return True


def wer(ref: list[str], hyp: list[str]) -> float:
    pairs = align(ref, hyp)
    errors = sum(1 for r, h in pairs if r is None or h is None or ref[r] != hyp[h])
    return errors / max(1, len(ref))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of k successes in n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)




@dataclass(frozen=True)
class PackScore:
    """How many random calls the recogniser heard exactly (number, counter, both)."""

    calls: int
    number: int
    counter: int
    both: int
    examples: tuple[tuple[str, str], ...]  # (said, heard) of the first calls

    def interval(self) -> tuple[float, float]:
        return wilson(self.both, self.calls)


def call_words(number: int, counter: int, options: ReadingOptions = DEFAULT_OPTIONS) -> tuple[list[str], tuple[int, int]]:
    """The words of a call and where its number is in them (the counter follows "đến quầy số")."""
    number_words = spoken(read_ticket(number, options=options)).split()
    ref = ["mời", "công", "dân", "có", "số", "thứ", "tự", *number_words, "đến", "quầy", "số",
           *spoken(read_number(counter, options=options)).split()]
    return ref, (7, 7 + len(number_words))


def score_pack(pack: VoicePack, recogniser: Recogniser, work: Path, *, count: int = 20, seed: int = 1,
               counters: int = 12, options: ReadingOptions = DEFAULT_OPTIONS) -> PackScore:
    """Random calls (seeded, as the bench makes them: no chime, one repeat, 0.5 s around) said with
    ``pack`` and heard by ``recogniser``; scored as the bench scores them."""
    rng = random.Random(seed)
    calls = [(rng.randint(1, 9999), rng.randint(1, counters)) for _ in range(count)]
    composer = Composer(pack, repeats=1, chime=pcm.silence(0, pack.sample_rate), after_chime_ms=0)
    pad = bytes(2 * int(pack.sample_rate * 0.5))
    work.mkdir(parents=True, exist_ok=True)
    number = counter = both = 0
    examples = []
    for number_, counter_ in calls:
        ref, (lo, hi) = call_words(number_, counter_, options)
        ann = composer.compose(phrase_parts("vi", number=number_, counter=counter_, options=options))
        wav = work / "call.wav"
        pcm.write_wav(wav, pad + ann.pcm + pad, ann.sample_rate)
        text = recogniser.hear(wav, " ".join(ref)).text
        hyp = normalise_words(text, ref)
        pairs = align(ref, hyp)
        a, b = span_exact(ref, hyp, pairs, lo, hi), span_exact(ref, hyp, pairs, hi + 3, len(ref))
        number, counter, both = number + a, counter + b, both + (a and b)
        if len(examples) < 3:
            examples.append((" ".join(ref), text))
    wav.unlink(missing_ok=True)
    return PackScore(count, number, counter, both, tuple(examples))


def main(argv: list[str] | None = None) -> int:
    """``python -m xephang_voice.hearing install [VENV]``: create the ASR venv (dev and CI).

    Exit 0 when the venv's Python imports viet-asr (installed now or already there), 1 with the
    reason otherwise: the recogniser tests then skip, saying so.
    """
    import argparse

    ap = argparse.ArgumentParser(prog="python -m xephang_voice.hearing",
                                 description="The offline recogniser's venv (viet-asr; dev and CI, not the Pi).")
    sub = ap.add_subparsers(dest="cmd", required=True)
    inst = sub.add_parser("install", help=f"install {ASR_REQUIREMENT} into its own venv")
    inst.add_argument("venv", nargs="?", type=Path, default=None, help=f"default: {default_venv()}")
    args = ap.parse_args(argv)
    py, why = ensure_venv(args.venv, say=lambda m: print(m, flush=True))
    if py is None:
        print(f"the recogniser is not installed: {why}", file=sys.stderr)
        return 1
    print(f"the recogniser is ready: {py}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
