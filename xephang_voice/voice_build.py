"""Build the default voice pack with espeak-ng (a separate program, never linked: GPL-3.0+).

Each clip is synthesised alone with its own tuning from :data:`TUNING` (voice variant, speed,
pitch, amplitude, word gap, optionally phoneme input and a tone contour imposed afterwards by
:mod:`xephang_voice.tone`), then trimmed and normalised in Python and written as a pack.
espeak-ng's Vietnamese renders tones weakly (research/voice.md: *mười*/*mươi* and *năm*/*lăm*
are easily confused), so words are spoken slower than its default 175 wpm and the tone-carrying
words get a pitch nudge in the direction of their tone.  Judge a table with
bench/voice_intelligibility.py; bench/voice_search.py searches clips one syllable at a time.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from array import array
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from xephang_voice import pcm, tone
from xephang_voice.voicepack import ClipEntry, Language, Manifest, catalogue, validate_pack, write_pack

log = logging.getLogger(__name__)

ESPEAK = "espeak-ng"


class VoiceBuildError(RuntimeError):
    """The pack could not be built (espeak-ng missing or failing, or validation failed)."""


@dataclass(frozen=True, kw_only=True)
class Tuning:
    """espeak-ng settings for one clip: ``-v voice -s speed -p pitch -a amplitude -g gap``."""

    voice: str = "vi"
    speed: int = 130  # words per minute; espeak's 175 is too fast for a hall
    pitch: int = 65  # 0..99; above espeak's 50 the recogniser heard the digits better (46 % vs 18 %)
    amplitude: int = 70  # 100 clips on Vietnamese (research/voice.md)
    word_gap: int = 0  # ×10 ms between words of a multi-word clip
    phonemes: str = ""  # espeak phoneme mnemonics said instead of the text ("m'y@:1j"), sent as [[…]]
    tone: float = 0.0  # > 0: impose the syllable's tone contour (xephang_voice/tone.py) × this range
    stretch: float = 1.0  # duration factor applied with the tone contour

    def input_text(self, text: str) -> str:
        """What espeak-ng is given: the text, or the phoneme override in ``[[…]]``."""
        return f"[[{self.phonemes}]]" if self.phonemes else text

    def args(self) -> list[str]:
        return ["-v", self.voice, "-s", str(self.speed), "-p", str(self.pitch), "-a", str(self.amplitude),
                "-g", str(self.word_gap)]


BASE = Tuning()

#: clip id → changes from BASE (any ``Tuning`` field)
TuningTable = dict[str, dict[str, int | float | str]]

#: Per-clip tuning of the default pack (clip id → change from BASE). The hand tuning
#: (bench/voice_intelligibility.py ``OLD_TUNING``), then the rows a whole-call search changed
#: (bench/voice_search.py --whole-calls: each candidate heard in 40 whole development calls, the rest
#: of the pack unchanged; docs/voice-packs.md): both exact 27.0 % → 39.0 % on 200 fresh development
#: calls. A per-syllable search in short utterances chose clips that lost in whole calls: not used.
TUNING: TuningTable = {
    # carrier phrases: slower with a little gap so "công dân" and "thứ tự" separate; the first one
    # slower and higher still (search: "ba" after "thứ tự" was heard "cứ mà"), the second with wider gaps
    "moi_cong_dan_co_so_thu_tu": {"speed": 110, "pitch": 73, "word_gap": 2},
    "den_quay_so": {"speed": 120, "word_gap": 5},
    # huyền (falling) "mười" vs ngang (level) "mươi": the falling one lower, with its tone contour
    # (search: heard 26 → 30 %), the level one higher than BASE
    "muoi_huyen": {"speed": 115, "pitch": 53, "tone": 1.0},
    "muoi_ngang": {"speed": 100, "pitch": 73},  # slower: heard as "mi"/"miu" at 115 (bench 26 → 44 %)
    # sắc (rising) "mốt" is barely rising in espeak: start higher
    "mot_sac": {"speed": 115, "pitch": 75},
    # "năm" is clipped at speed; "lăm" must stay distinct from it
    "nam": {"speed": 105},
    "lam": {"speed": 105},
    # nasal-final words that the recogniser drops: slower ("không" was heard as "ông"/"âm" until
    # slower and higher; a higher "nghìn" made it worse)
    "nghin": {"speed": 110},
    "ngan": {"speed": 110},
    "khong": {"speed": 100, "pitch": 72},
    "tram": {"speed": 105},
    # one-syllable digits are short: slow them a little so each is heard; bốn and hai at espeak's
    # base speed (search: "bố" and "ai" less often), sáu higher (heard "tham"/"tám" less often)
    "mot": {"speed": 115},
    "hai": {"speed": 130},
    "ba": {"speed": 115},
    "bon": {"speed": 130},
    "sau": {"speed": 130, "pitch": 75},
    "bay": {"speed": 115},
    "tam": {"speed": 115},
    "chin": {"speed": 115},
}

#: Pauses of the espeak pack: robotic words need more air between them than a human voice
#: (bench: 100/300 ms beat 60/220 ms, 14 % vs 10 % both exact; 140/350 ms was worse again).
WORD_GAP_MS = 100
PHRASE_GAP_MS = 300

#: English clips use espeak's English voice.
EN_BASE = Tuning(voice="en-gb", speed=140, pitch=50)


def tuning_for(clip: str, *, language: Language = "vi", dialect: str = "north", base: Tuning | None = None,
               table: TuningTable | None = None) -> Tuning:
    """The tuning of one clip for a pack of ``language``/``dialect`` (``base``/``table``: experiments)."""
    if language == "en":
        return base or EN_BASE
    b = replace(base or BASE, voice="vi-vn-x-south" if dialect == "south" else (base or BASE).voice)
    return replace(b, **(TUNING if table is None else table).get(clip, {}))  # type: ignore[arg-type]


Synth = Callable[[str, Tuning], tuple[array, int]]


def espeak_synth(text: str, tuning: Tuning) -> tuple[array, int]:
    """Run espeak-ng once; returns (samples, sample_rate) of its 16-bit mono WAV."""
    exe = shutil.which(ESPEAK)
    if not exe:
        raise VoiceBuildError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="xephang-espeak-") as tmp:
        out = Path(tmp) / "clip.wav"
        cmd = [exe, *tuning.args(), "-w", str(out), "--", tuning.input_text(text)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=30, check=False)
        except subprocess.TimeoutExpired as exc:
            raise VoiceBuildError(f"espeak-ng timed out on {text!r}") from exc
        if proc.returncode != 0 or not out.exists():
            raise VoiceBuildError(f"espeak-ng failed on {text!r}: {proc.stderr.decode(errors='replace')[:200]}")
        return pcm.read_wav(out)


def espeak_version() -> str:
    """'eSpeak NG 1.51' style version string, or '' when espeak-ng is missing."""
    exe = shutil.which(ESPEAK)
    if not exe:
        return ""
    proc = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10, check=False)
    m = re.search(r"(\d+\.\d+[\w.+-]*)", proc.stdout)  # "eSpeak NG text-to-speech: 1.51  Data at: …"
    return f"eSpeak NG {m.group(1)}" if m else "espeak-ng"


def build_default_pack(out_dir: Path | str, *, language: Language = "vi", dialect: str = "north",
                       loudness_dbfs: float = -20.0, synth: Synth | None = None, force: bool = False,
                       base: Tuning | None = None, table: TuningTable | None = None) -> Path:
    """Synthesise every clip of ``language``, trim, normalise, write and validate a pack.

    ``synth`` replaces espeak-ng (tests); the real one runs the espeak-ng program.  ``base``
    and ``table`` replace :data:`BASE`/:data:`TUNING` (bench/voice_intelligibility.py sweeps).
    Returns ``out_dir``.  An existing valid pack is kept unless ``force``.
    """
    out = Path(out_dir)
    if not force and (out / "manifest.json").exists() and not validate_pack(out):
        log.info("voice pack at %s is present and valid; not rebuilt", out)
        return out
    synth = synth or espeak_synth
    texts = catalogue(language)
    clips: dict[str, array] = {}
    rate = 0
    for clip, text in texts.items():
        tuning = tuning_for(clip, language=language, dialect=dialect, base=base, table=table)
        samples, sr = synth(text, tuning)
        if rate and sr != rate:
            samples = pcm.resample(samples, sr, rate)
        rate = rate or sr
        trimmed = pcm.trim_silence(samples, rate)
        if not trimmed:
            raise VoiceBuildError(f"clip {clip!r} ({text!r}) came out silent")
        if tuning.tone > 0:
            trimmed = pcm.trim_silence(tone.impose_tone(trimmed, rate, tone.tone_of(text), range_scale=tuning.tone,
                                                        stretch=tuning.stretch), rate)
        clips[clip] = pcm.normalise(trimmed, rate, target_dbfs=loudness_dbfs)
    version = espeak_version() if synth is espeak_synth else "synthetic"
    manifest = Manifest(
        name=f"espeak-{language}-{dialect}" if language == "vi" else f"espeak-{language}",
        language=language, dialect=dialect if language == "vi" else "", sample_rate=rate,
        loudness_dbfs=loudness_dbfs, word_gap_ms=WORD_GAP_MS, phrase_gap_ms=PHRASE_GAP_MS, source=f"{version}, tuned per word (xephang_voice/voice_build.py)",
        licence="generated output; espeak-ng is GPL-3.0-or-later and runs as a separate program",
        clips={clip: ClipEntry(text=text, file=f"{clip}.wav") for clip, text in texts.items()},
    )
    write_pack(out, manifest, clips)
    problems = validate_pack(out)
    if problems:
        raise VoiceBuildError(f"built pack at {out} is invalid: " + "; ".join(map(str, problems)))
    log.info("voice pack %s built at %s: %d clips, %d Hz", manifest.name, out, len(clips), rate)
    return out
